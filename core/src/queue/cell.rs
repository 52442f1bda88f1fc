//! One job's cell (`JobCell`, its `JobSlot`) and the two ways a change leaves it: `publish` (the
//! store, then memory, then events) and `emit` (an event for the queue and the callback).

use super::events::{self, Event, Registration};
use super::Shared;
use crate::error::{Error, Result};
use crate::job::{now_ms, JobRecord};
use crate::state::JobState;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One job: its record and what the engines keep beside it. Shared by the queue (`Shared::jobs`,
/// until the job reaches a final state), the job's transfer task, and every handle to it.
pub(crate) struct JobCell {
    /// The record and the live per-job state. Written by the API, the scheduler, the transfer
    /// task and settle, always under this lock (see the lock order on `Shared`).
    pub(crate) slot: Mutex<JobSlot>,
    /// Signalled on every state change and when a transfer task exits.
    pub(crate) changed: Condvar,
    /// Serialises the calls that do file I/O outside `slot` (complete, cancel): held by settle.
    pub(crate) settle: Mutex<()>,
    /// The push callback, if one is registered (not persisted, as in BITS). Set by
    /// `set_notify_callback`; taken by the last application handle's drop and by close; read by
    /// `emit` and `publish`.
    pub(crate) notify: Mutex<Option<Registration>>,
    /// Application handles (`Job`s given out by the manager, and their clones) still alive; when
    /// the last is dropped the callback registration goes too. Counted by the manager's `Job`.
    pub(crate) app_handles: AtomicUsize,
}

pub(crate) struct JobSlot {
    pub(crate) rec: JobRecord,
    /// Present while a transfer task runs for this job; sending `true` asks it to stop.
    pub(crate) runner: Option<watch::Sender<bool>>,
    /// Set while complete or cancel works on the files; the scheduler leaves the job alone.
    pub(crate) settling: bool,
    /// Creation order, the tie-break among equal priorities.
    pub(crate) seq: u64,
    /// Basic credentials (`Authorization` values) for the server and the proxy. Never stored:
    /// the application sets them again after a reopen.
    pub(crate) credentials: [Option<hyper::header::HeaderValue>; 2],
    /// When the current task started, and the start counter's value then (round-robin order).
    pub(crate) started_at: Option<Instant>,
    pub(crate) last_ran: u64,
}

impl JobCell {
    /// A job's cell with no task, no credentials and no callback; `seq` is its creation order.
    pub(crate) fn new(rec: JobRecord, seq: u64) -> JobCell {
        JobCell {
            slot: Mutex::new(JobSlot {
                rec,
                runner: None,
                settling: false,
                seq,
                credentials: [None, None],
                started_at: None,
                last_ran: 0,
            }),
            changed: Condvar::new(),
            settle: Mutex::new(()),
            notify: Mutex::new(None),
            app_handles: AtomicUsize::new(0),
        }
    }

    /// Asks the transfer task, if any, to stop. Returns at once.
    pub(crate) fn signal_stop(slot: &JobSlot) {
        if let Some(tx) = &slot.runner {
            let _ = tx.send(true);
        }
    }
}

/// Saves `rec` to the store and, only if that worked, makes it the job's record; waiters are woken.
/// A failed save leaves memory as it was, so the caller's error is the whole truth.
pub(crate) fn publish(
    shared: &Arc<Shared>,
    cell: &Arc<JobCell>,
    slot: &mut JobSlot,
    mut rec: JobRecord,
) -> Result<()> {
    rec.modified_ms = now_ms();
    shared.store.save(&rec).map_err(Error::from)?;
    let interval = rec.min_notification_interval_ms;
    for event in events::for_change(&slot.rec, &rec) {
        emit(shared, cell, event, interval);
    }
    // The command line stands in for a callback (as in BITS) when none is registered.
    let reached =
        rec.state != slot.rec.state && matches!(rec.state, JobState::Transferred | JobState::Error);
    if let (true, Some(program)) = (reached, &rec.notify_program) {
        if cell.notify.lock().is_none() {
            super::cmdline::launch(
                shared.clone(),
                rec.id,
                program.clone(),
                rec.notify_parameters.clone(),
            );
        }
    }
    slot.rec = rec;
    cell.changed.notify_all();
    Ok(())
}

/// Queues an event for `next_event`, and for the job's callback if it wants this kind.
pub(crate) fn emit(shared: &Arc<Shared>, cell: &Arc<JobCell>, event: Event, interval_ms: u32) {
    let registration = cell.notify.lock().clone();
    if let Some(r) = registration.filter(|r| r.wants(event.kind)) {
        let interval = Duration::from_millis(interval_ms.into());
        shared.dispatcher.send(r.deliver, event.clone(), interval);
    }
    shared.events.push(event);
}
