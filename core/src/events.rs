//! The manager's event queue (the pull side of BITS's notifications): what happened to which job,
//! for the application to take with `Manager::next_event`.
//!
//! Events are never dropped: TRANSFERRED, ERROR and FILE_TRANSFERRED are always queued;
//! MODIFICATION events coalesce, so a job has at most one waiting (carrying its latest state),
//! which bounds the queue by the number of jobs plus the events that matter.

use crate::hresult::{self as hr, HResult};
use crate::job::{JobId, JobRecord};
use crate::state::JobState;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The kind of an event; the values are BITS's BG_NOTIFY_* flags.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    JobTransferred = 0x1,
    JobError = 0x2,
    JobModification = 0x8,
    FileTransferred = 0x10,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub job: JobId,
    pub kind: EventKind,
    /// The job's state when the event was queued (updated while a MODIFICATION waits).
    pub state: JobState,
    /// The job's error code for JobError, else S_OK.
    pub code: HResult,
    /// The file, for FileTransferred; else 0.
    pub file_index: u32,
    /// The job's owner: a manager sees its owner's events (every owner's in service mode).
    pub owner: String,
}

#[derive(Default)]
pub(crate) struct EventQueue {
    queue: Mutex<VecDeque<Event>>,
    ready: Condvar,
}

impl EventQueue {
    pub(crate) fn push(&self, event: Event) {
        let mut q = self.queue.lock();
        if event.kind == EventKind::JobModification {
            if let Some(waiting) = q
                .iter_mut()
                .find(|e| e.job == event.job && e.kind == EventKind::JobModification)
            {
                waiting.state = event.state;
                return;
            }
        }
        q.push_back(event);
        drop(q);
        self.ready.notify_one();
    }

    /// The oldest event, waiting up to `timeout` (None: no limit) for one; None on timeout or
    /// when `stop` says the manager is closing.
    pub(crate) fn next(
        &self,
        timeout: Option<Duration>,
        stop: impl Fn() -> bool,
        visible: impl Fn(&Event) -> bool,
    ) -> Option<Event> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.queue.lock();
        loop {
            if stop() {
                return None;
            }
            if let Some(i) = q.iter().position(&visible) {
                return q.remove(i);
            }
            match deadline {
                None => self.ready.wait(&mut q),
                Some(d) => {
                    if self.ready.wait_until(&mut q, d).timed_out() && !q.iter().any(&visible) {
                        return None;
                    }
                }
            }
        }
    }

    /// Wakes every waiter (the manager is closing).
    pub(crate) fn wake_all(&self) {
        let _q = self.queue.lock();
        self.ready.notify_all();
    }

    /// The events a change of a job's record means.
    pub(crate) fn record_changed(&self, old: &JobRecord, new: &JobRecord) {
        let event = |kind, code| Event {
            job: new.id,
            kind,
            state: new.state,
            code,
            file_index: 0,
            owner: new.owner.clone(),
        };
        if new.state != old.state {
            match new.state {
                JobState::Transferred => self.push(event(EventKind::JobTransferred, hr::S_OK)),
                JobState::Error => {
                    let code = new.error.as_ref().map_or(hr::E_FAIL, |e| e.code);
                    self.push(event(EventKind::JobError, code));
                }
                _ => {}
            }
        }
        self.push(event(EventKind::JobModification, hr::S_OK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(job: JobId, kind: EventKind, state: JobState) -> Event {
        Event {
            job,
            kind,
            state,
            code: hr::S_OK,
            file_index: 0,
            owner: "me".into(),
        }
    }

    #[test]
    fn modifications_coalesce_per_job_and_important_events_stay() {
        let q = EventQueue::default();
        let (a, b) = (JobId::new_v4(), JobId::new_v4());
        q.push(ev(a, EventKind::JobModification, JobState::Queued));
        q.push(ev(b, EventKind::JobModification, JobState::Queued));
        q.push(ev(a, EventKind::JobModification, JobState::Transferring));
        q.push(ev(a, EventKind::JobTransferred, JobState::Transferred));
        q.push(ev(a, EventKind::JobTransferred, JobState::Transferred));
        let got: Vec<_> =
            std::iter::from_fn(|| q.next(Some(Duration::ZERO), || false, |_| true)).collect();
        assert_eq!(
            got,
            vec![
                ev(a, EventKind::JobModification, JobState::Transferring),
                ev(b, EventKind::JobModification, JobState::Queued),
                ev(a, EventKind::JobTransferred, JobState::Transferred),
                ev(a, EventKind::JobTransferred, JobState::Transferred),
            ]
        );
        assert_eq!(
            q.next(Some(Duration::from_millis(10)), || false, |_| true),
            None
        );
        assert_eq!(
            q.next(None, || true, |_| true),
            None,
            "a closing manager ends the wait"
        );
        q.push(ev(a, EventKind::JobError, JobState::Error));
        let other_owner = |e: &Event| e.owner != "me";
        assert_eq!(
            q.next(Some(Duration::ZERO), || false, other_owner),
            None,
            "another owner's event"
        );
    }
}
