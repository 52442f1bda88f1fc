//! Who transfers when: `plan` is a pure function of the jobs waiting for or holding a slot, tested
//! on its own below.

use crate::state::Priority;
use std::time::Duration;

/// A job the plan considers: waiting for a transfer slot, or holding one.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub key: usize,
    pub priority: Priority,
    /// Some(how long its task has run) if it holds a slot.
    pub running_for: Option<Duration>,
    /// Round-robin order: (when it last got a slot, creation order); smaller goes first.
    pub order: (u64, u64),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub start: Vec<usize>,
    pub preempt: Vec<usize>,
    /// When a running job's time slice ends while others of its priority wait.
    pub next_slice_end: Option<Duration>,
}

/// Who transfers (bits-api.md §6): FOREGROUND jobs all at once, besides the background ones;
/// background jobs strictly by priority (a lower priority gets no slot while a higher one has a job
/// running or waiting, and gives up its slot when one arrives); equal priorities share the
/// `slots` in turns of `slice` when more of them wait than there are slots.
pub(crate) fn plan(candidates: &[Candidate], slots: usize, slice: Duration) -> Plan {
    let mut plan = Plan::default();
    let (foreground, background): (Vec<&Candidate>, Vec<&Candidate>) = candidates
        .iter()
        .partition(|c| c.priority == Priority::Foreground);
    plan.start.extend(
        foreground
            .iter()
            .filter(|c| c.running_for.is_none())
            .map(|c| c.key),
    );
    let Some(top) = background.iter().map(|c| c.priority).min() else {
        return plan;
    };
    let running: Vec<&&Candidate> = background
        .iter()
        .filter(|c| c.running_for.is_some())
        .collect();
    plan.preempt
        .extend(running.iter().filter(|c| c.priority > top).map(|c| c.key));
    let mut waiting: Vec<&&Candidate> = background
        .iter()
        .filter(|c| c.running_for.is_none() && c.priority == top)
        .collect();
    // Preempted jobs keep their slot until their task has stopped; the next pass fills it.
    let free = slots.saturating_sub(running.len());
    let still_waiting = waiting.len().saturating_sub(free);
    // Only the first `free` in round-robin order matter: a queue of thousands is partitioned
    // (linear), not sorted, on every pass.
    if free < waiting.len() {
        waiting.select_nth_unstable_by_key(free, |c| c.order);
        waiting.truncate(free);
    }
    waiting.sort_by_key(|c| c.order);
    plan.start.extend(waiting.iter().take(free).map(|c| c.key));
    if still_waiting > 0 {
        let mut turns: Vec<&&&Candidate> = running.iter().filter(|c| c.priority == top).collect();
        turns.sort_by_key(|c| std::cmp::Reverse(c.running_for));
        for c in &turns {
            let ran = c.running_for.unwrap_or_default();
            if ran >= slice && plan.preempt.len() < still_waiting {
                plan.preempt.push(c.key);
            } else {
                let left = slice.saturating_sub(ran);
                plan.next_slice_end = Some(plan.next_slice_end.map_or(left, |n| n.min(left)));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::*;

    fn c(key: usize, priority: Priority, running_ms: Option<u64>, order: u64) -> Candidate {
        Candidate {
            key,
            priority,
            running_for: running_ms.map(Duration::from_millis),
            order: (order, 0),
        }
    }
    const SLICE: Duration = Duration::from_millis(1000);

    #[test]
    fn foreground_runs_at_once_beside_background() {
        let p = plan(
            &[
                c(0, Normal, Some(5), 1),
                c(1, Foreground, None, 0),
                c(2, Foreground, None, 0),
            ],
            1,
            SLICE,
        );
        assert_eq!(
            p,
            Plan {
                start: vec![1, 2],
                preempt: vec![],
                next_slice_end: None
            }
        );
    }

    #[test]
    fn higher_priority_takes_the_slot_and_lower_waits() {
        // LOW runs; HIGH arrives: LOW is preempted, HIGH starts once LOW's task has stopped.
        let p = plan(&[c(0, Low, Some(5000), 1), c(1, High, None, 0)], 1, SLICE);
        assert_eq!((p.start, p.preempt), (vec![], vec![0]));
        let p = plan(&[c(0, Low, None, 1), c(1, High, None, 0)], 1, SLICE);
        assert_eq!((p.start, p.preempt), (vec![1], vec![]));
        // With spare slots a lower priority still waits while a higher one is active.
        let p = plan(&[c(0, Low, None, 0), c(1, High, Some(10), 1)], 4, SLICE);
        assert_eq!((p.start, p.preempt), (vec![], vec![]));
    }

    #[test]
    fn equal_priorities_take_turns() {
        // Two NORMAL jobs, one slot: the running one keeps it until its slice ends.
        let p = plan(
            &[c(0, Normal, Some(400), 1), c(1, Normal, None, 0)],
            1,
            SLICE,
        );
        assert_eq!(
            p,
            Plan {
                start: vec![],
                preempt: vec![],
                next_slice_end: Some(Duration::from_millis(600))
            }
        );
        let p = plan(
            &[c(0, Normal, Some(1000), 1), c(1, Normal, None, 0)],
            1,
            SLICE,
        );
        assert_eq!((p.start, p.preempt), (vec![], vec![0]));
        // The one that waited longest (never ran: order 0) goes first.
        let p = plan(
            &[
                c(0, Normal, None, 5),
                c(1, Normal, None, 0),
                c(2, Normal, None, 3),
            ],
            2,
            SLICE,
        );
        assert_eq!(p.start, vec![1, 2]);
        // No one waits: no turns.
        let p = plan(&[c(0, Normal, Some(5000), 1)], 1, SLICE);
        assert_eq!(p, Plan::default());
    }
}
