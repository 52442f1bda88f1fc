//! The manager's event queue (the pull side of BITS's notifications): what happened to which job,
//! for the application to take with `Manager::next_event`.
//!
//! Events are never dropped: TRANSFERRED, ERROR and FILE_TRANSFERRED are always queued;
//! MODIFICATION events coalesce, so a job has at most one waiting (carrying its latest state),
//! which bounds the queue by the number of jobs plus the events that matter.
//!
//! The push side (BITS's SetNotifyInterface): a job may have one callback `Registration`; the
//! `Dispatcher` calls it on the manager's notification thread, outside every lock, so a callback
//! may call anything, including cancel, complete or release of its own job.

use crate::hresult::{self as hr, HResult};
use crate::job::{JobId, JobRecord};
use crate::state::JobState;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc};
use std::thread::{JoinHandle, ThreadId};
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
    pub owner: std::sync::Arc<str>,
}

#[derive(Default)]
pub(crate) struct EventQueue {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// The latest state of each job whose MODIFICATION event waits in `events`: coalescing is a
    /// map update, not a scan of the queue.
    modified: HashMap<JobId, JobState>,
}

impl Queue {
    fn take(&mut self, i: usize) -> Option<Event> {
        let mut e = self.events.remove(i)?;
        if e.kind == EventKind::JobModification {
            if let Some(state) = self.modified.remove(&e.job) {
                e.state = state;
            }
        }
        Some(e)
    }
}

impl EventQueue {
    pub(crate) fn push(&self, event: Event) {
        let mut q = self.queue.lock();
        if event.kind == EventKind::JobModification {
            if let Some(state) = q.modified.get_mut(&event.job) {
                *state = event.state;
                return;
            }
            q.modified.insert(event.job, event.state);
        }
        q.events.push_back(event);
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
            if let Some(i) = q.events.iter().position(&visible) {
                return q.take(i);
            }
            match deadline {
                None => self.ready.wait(&mut q),
                Some(d) => {
                    if self.ready.wait_until(&mut q, d).timed_out()
                        && !q.events.iter().any(&visible)
                    {
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
}

/// The events a change of a job's record means: TRANSFERRED or ERROR when it reaches them, and a
/// MODIFICATION for any change.
pub(crate) fn for_change(old: &JobRecord, new: &JobRecord) -> impl Iterator<Item = Event> {
    let event = |kind, code| Event {
        job: new.id,
        kind,
        state: new.state,
        code,
        file_index: 0,
        owner: new.owner.clone(),
    };
    let reached = match new.state {
        _ if new.state == old.state => None,
        JobState::Transferred => Some(event(EventKind::JobTransferred, hr::S_OK)),
        JobState::Error => Some(event(
            EventKind::JobError,
            new.error.as_ref().map_or(hr::E_FAIL, |e| e.code),
        )),
        _ => None,
    };
    reached
        .into_iter()
        .chain(std::iter::once(event(EventKind::JobModification, hr::S_OK)))
}

/// What a job's current state means to a callback registered now: BITS delivers an event that
/// already happened.
pub(crate) fn already_happened(rec: &JobRecord) -> Option<Event> {
    let (kind, code) = match rec.state {
        JobState::Transferred => (EventKind::JobTransferred, hr::S_OK),
        JobState::Error => (
            EventKind::JobError,
            rec.error.as_ref().map_or(hr::E_FAIL, |e| e.code),
        ),
        _ => return None,
    };
    Some(Event {
        job: rec.id,
        kind,
        state: rec.state,
        code,
        file_index: 0,
        owner: rec.owner.clone(),
    })
}

/// What delivers an event to a job's push callback, on the notification thread. The manager wraps
/// the application's callback in one (see `Job::set_notify_callback`), so the queue never names
/// the API's types.
pub(crate) type Deliver = Arc<dyn Fn(&Event) + Send + Sync>;

/// BG_NOTIFY_DISABLE: no callback is called.
pub const NOTIFY_DISABLE: u32 = 0x4;

struct Delivery {
    deliver: Deliver,
    event: Event,
    /// MODIFICATION deliveries of this job come at most this often.
    interval: Duration,
}

/// The notification thread: calls callbacks one at a time, in order, outside every lock.
pub(crate) struct Dispatcher {
    tx: Mutex<Option<mpsc::Sender<Delivery>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Option<ThreadId>,
}

impl Dispatcher {
    pub(crate) fn start() -> std::io::Result<Dispatcher> {
        let (tx, rx) = mpsc::channel::<Delivery>();
        let thread = std::thread::Builder::new()
            .name("openbits-notify".into())
            .spawn(move || {
                let mut last_modification: HashMap<JobId, Instant> = HashMap::new();
                for d in rx {
                    if d.event.kind == EventKind::JobModification {
                        let now = Instant::now();
                        if last_modification
                            .get(&d.event.job)
                            .is_some_and(|t| now.duration_since(*t) < d.interval)
                        {
                            continue;
                        }
                        last_modification.insert(d.event.job, now);
                    }
                    // A panicking Rust callback must not end the thread that serves every job.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (d.deliver)(&d.event)
                    }));
                }
            })?;
        let thread_id = Some(thread.thread().id());
        Ok(Dispatcher {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            thread_id,
        })
    }

    pub(crate) fn send(&self, deliver: Deliver, event: Event, interval: Duration) {
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.send(Delivery {
                deliver,
                event,
                interval,
            });
        }
    }

    /// Stops the thread once it has delivered what it had; joins it unless called from it (a
    /// callback closing its manager).
    pub(crate) fn stop(&self) {
        drop(self.tx.lock().take());
        let thread = self.thread.lock().take();
        if let Some(t) = thread {
            if Some(std::thread::current().id()) != self.thread_id {
                let _ = t.join();
            }
        }
    }
}

/// A callback registered on a job, with the BG_NOTIFY_* flags that select its events.
///
/// `deliver` holds the job's cell, and the cell holds the registration: that cycle is cut where the
/// registration is dropped (a new registration replacing it, the application's last handle to
/// the job going, and the manager's close).
#[derive(Clone)]
pub(crate) struct Registration {
    pub flags: u32,
    pub deliver: Deliver,
}

impl Registration {
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.flags & NOTIFY_DISABLE == 0 && self.flags & kind as u32 != 0
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
        let other_owner = |e: &Event| &*e.owner != "me";
        assert_eq!(
            q.next(Some(Duration::ZERO), || false, other_owner),
            None,
            "another owner's event"
        );
    }
}
