//! The scheduler: one task per manager. It turns TRANSIENT_ERROR jobs back into QUEUED when their
//! retry delay has passed (or into ERROR when their no-progress timeout has), and gives QUEUED jobs
//! transfer slots: by priority, then in creation order, at most `max_concurrent_jobs` at once.
//!
//! It sleeps until woken (`Shared::wake`) or until the next retry or timeout is due.

use crate::job::now_ms;
use crate::manager::{publish, Job, JobCell, Shared};
use crate::state::{engine, JobState};
use crate::transfer;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let next_due_ms = pass(&shared);
        shared
            .next_due_ms
            .store(next_due_ms.unwrap_or(u64::MAX), Ordering::SeqCst);
        let notified = shared.wake.notified();
        // Creating a job wakes the scheduler only if its inactivity deadline is the earliest, which
        // races with a pass publishing `next_due_ms`; a bounded sleep makes a missed wake cost at
        // most this much delay on an inactivity cancel.
        let cap = shared
            .config
            .inactivity_timeout
            .min(Duration::from_secs(60));
        let wait = next_due_ms.map_or(cap, |due| {
            Duration::from_millis(due.saturating_sub(now_ms())).min(cap)
        });
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One scheduling pass. Returns when the next time-based decision is due.
fn pass(shared: &Arc<Shared>) -> Option<u64> {
    let now = now_ms();
    let mut next_due: Option<u64> = None;
    let mut due = |t: u64| next_due = Some(next_due.map_or(t, |n| n.min(t)));
    let cells: Vec<Arc<JobCell>> = shared.jobs.lock().values().cloned().collect();
    let mut running = 0usize;
    let mut waiting = Vec::new();
    let inactive_after = shared.config.inactivity_timeout.as_millis() as u64;
    for cell in cells {
        let mut slot = cell.slot.lock();
        if slot.runner.is_some() {
            running += 1;
            continue;
        }
        if slot.settling {
            continue;
        }
        let rec = &slot.rec;
        let idle_until = rec.modified_ms.saturating_add(inactive_after);
        if idle_until <= now {
            // Abandoned (BITS's JobInactivityTimeout): cancel it. Cancel blocks, so not here.
            drop(slot);
            let job = Job::from_cell(shared.clone(), cell);
            tokio::task::spawn_blocking(move || job.cancel());
            continue;
        }
        due(idle_until);
        match rec.state {
            JobState::TransientError => {
                let give_up_at = rec
                    .no_progress_since_ms
                    .map(|s| s.saturating_add(rec.no_progress_timeout_s as u64 * 1000));
                let retry_at = rec.retry_at_ms.unwrap_or(now);
                if give_up_at.is_some_and(|g| g <= now && g <= retry_at) {
                    let mut next = rec.clone();
                    if let Some(s) = engine::no_progress_timeout(next.state) {
                        next.state = s;
                    }
                    // A store failure leaves the job as it was; the next pass tries again.
                    let _ = publish(shared, &cell, &mut slot, next);
                } else if retry_at <= now {
                    let mut next = rec.clone();
                    if let Some(s) = engine::retry_due(next.state) {
                        next.state = s;
                        next.retry_at_ms = None;
                    }
                    if publish(shared, &cell, &mut slot, next).is_ok() {
                        waiting.push((slot.rec.priority, slot.seq, cell.clone()));
                    }
                } else {
                    due(retry_at);
                    if let Some(g) = give_up_at {
                        due(g);
                    }
                }
            }
            // Connecting/Transferring without a task: a task ended while the job stayed active
            // (only a stale report can do that); it goes back to the queue.
            JobState::Queued | JobState::Connecting | JobState::Transferring => {
                waiting.push((rec.priority, slot.seq, cell.clone()))
            }
            _ => {}
        }
    }
    waiting.sort_by_key(|(prio, seq, _)| (*prio, *seq));
    for (_, _, cell) in waiting {
        if running >= shared.config.max_concurrent_jobs {
            break;
        }
        if start(shared, &cell) {
            running += 1;
        }
    }
    next_due
}

/// Gives the job a transfer task. False if the job changed since the pass looked at it.
fn start(shared: &Arc<Shared>, cell: &Arc<JobCell>) -> bool {
    let mut slot = cell.slot.lock();
    if slot.runner.is_some() || slot.settling {
        return false;
    }
    let mut next = slot.rec.clone();
    let Some(state) = engine::start(next.state) else {
        return false;
    };
    next.state = state;
    if publish(shared, cell, &mut slot, next).is_err() {
        return false;
    }
    let (tx, rx) = watch::channel(false);
    slot.runner = Some(tx);
    drop(slot);
    tokio::spawn(transfer::run_job(shared.clone(), cell.clone(), rx));
    true
}
