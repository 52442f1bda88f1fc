//! One job's cell (`JobCell`, its `JobSlot`) and the two ways a change leaves it: `publish` (the
//! record in place, the store for what the change touched, then events) and `emit` (an event for the queue and the callback).

use super::events::{self, Event, Registration};
use super::Shared;
use crate::error::Result;
use crate::job::{now_ms, FileRecord, JobRecord};
pub(crate) use crate::localfile::Destination;
use crate::policy::bandwidth::Bucket;
use crate::state::JobState;
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One job: its record and what the engines keep beside it. Shared by the queue (`Shared::jobs`,
/// until the job reaches a final state), the job's transfer task, and every handle to it.
pub(crate) struct JobCell {
    /// The record and the live per-job state. Written by the API, the scheduler, the transfer
    /// task and settle, always under this lock (see the lock order on `Shared`).
    pub(crate) slot: Mutex<JobSlot>,
    /// Signalled when the state changes, when a transfer task exits, and at close: what
    /// `Job::wait` and settling wait for (not on progress).
    pub(crate) changed: Condvar,
    /// Serialises the calls that do file I/O outside `slot` (complete, cancel): held by settle.
    pub(crate) settle: Mutex<()>,
    /// The push callback, if one is registered (not persisted, as in BITS). Set by
    /// `set_notify_callback`; taken by the last application handle's drop and by close; read by
    /// `emit` and `publish`.
    pub(crate) notify: Mutex<Option<Arc<Registration>>>,
    /// Application handles (`Job`s given out by the manager, and their clones) still alive; when
    /// the last is dropped the callback registration goes too. Counted by the manager's `Job`.
    /// (32 bits: with the byte of `settle` it keeps the cell, one per job in memory, 16 bytes
    /// smaller in the allocator.)
    pub(crate) app_handles: AtomicU32,
}

pub(crate) struct JobSlot {
    pub(crate) rec: JobRecord,
    /// Present while a transfer task runs for this job (boxed: an idle job pays a pointer).
    pub(crate) runner: Option<Box<Runner>>,
    /// Set while complete or cancel works on the files; the scheduler leaves the job alone.
    pub(crate) settling: bool,
    /// The job came from the store with files already finished: an earlier process (perhaps an
    /// older openbits, or one that crashed before its sync kept the time stamp) finished them,
    /// so complete gives them the server's time stamp by name; files finished by this process got
    /// it on their open file (`FileTransfer::finish`).
    pub(crate) finished_before_open: bool,
    /// The job came from the store: an earlier process may have left a file under a derived
    /// temporary name before recording it, which opening that name again reuses, so its new
    /// files are not opened unnamed (`FileTransfer::open_sink`).
    pub(crate) from_store: bool,
    /// The job waits for a transfer slot in `Shared::waiting` (keyed by its priority, last turn
    /// and creation order), not in `Shared::scheduled`: passes look at it only when its turn may
    /// have come. Cleared by any `publish` (which puts a job still in a scheduler state back in
    /// `scheduled`), so an entry in `waiting` whose job is not parked, or whose key is not the
    /// job's current one, is stale.
    pub(crate) parked: bool,
    /// Basic credentials (`Authorization` values) for the server and the proxy. Never stored:
    /// the application sets them again after a reopen.
    pub(crate) credentials: Credentials,
    /// The application's server certificate callback (never stored; see
    /// `JobExtras::certificate_callback_required`).
    pub(crate) certificate_callback: Option<Arc<crate::tls::ServerCertificateCallback>>,
    /// The start counter's value when the job's last task started (round-robin order).
    pub(crate) last_ran: u64,
    /// An upload's fragment length in KiB as the last task left it (0: not measured yet), so
    /// the next attempt after a failure starts smaller. Memory only: a restart measures anew.
    pub(crate) fragment_kib: u32,
    /// The destinations of the job's files, built when a file is first added after open (so idle
    /// jobs hold none): one lookup per new file instead of a comparison with every file. Boxed
    /// so that the idle job's `None` costs one word in the slot, not a set's 48 bytes.
    #[allow(clippy::box_collection)]
    pub(crate) destinations: Option<Box<HashSet<Destination>>>,
}

impl JobSlot {
    /// The job's TLS settings as its next request uses them.
    pub(crate) fn tls(&self) -> crate::tls::TlsSettings {
        let e = self.rec.extras();
        crate::tls::TlsSettings {
            trusted_roots: e.trusted_roots.clone(),
            client_certificate: e.client_certificate.clone().zip(e.client_key.clone()),
            crl_file: e.crl_file.clone(),
            ssl_flags: self.rec.security_flags & crate::tls::SSL_MASK,
            callback_required: e.certificate_callback_required,
            callback: self.certificate_callback.clone(),
        }
    }
}

/// A job's transfer task, from the job's side.
pub(crate) struct Runner {
    /// Sending `true` asks the task to stop.
    pub(crate) stop: watch::Sender<bool>,
    /// When the task started (its time counts against the maximum download time).
    pub(crate) started: Instant,
    /// The job's own rate limit (`JobExtras::max_bandwidth`), shared by its files in flight.
    pub(crate) bucket: Arc<Bucket>,
}

/// The server's (0) and the proxy's (1) `Authorization` values, boxed: most jobs have none, and
/// an idle job's slot should cost a pointer for them, not two header values.
#[derive(Default)]
pub(crate) struct Credentials(Option<Box<[Option<hyper::header::HeaderValue>; 2]>>);

impl Credentials {
    pub(crate) fn get(&self, target: usize) -> Option<hyper::header::HeaderValue> {
        self.0.as_ref().and_then(|c| c[target].clone())
    }
    pub(crate) fn set(&mut self, target: usize, value: hyper::header::HeaderValue) {
        self.0.get_or_insert_with(Default::default)[target] = Some(value);
    }
    pub(crate) fn take(&mut self, target: usize) -> Option<hyper::header::HeaderValue> {
        self.0.as_mut().and_then(|c| c[target].take())
    }
}

impl JobCell {
    /// A job's cell with no task, no credentials and no callback; `from_store`: loaded at open.
    pub(crate) fn new(rec: JobRecord, from_store: bool) -> JobCell {
        JobCell {
            slot: Mutex::new(JobSlot {
                finished_before_open: rec.files.iter().any(|f| f.completed),
                from_store,
                parked: false,
                rec,
                runner: None,
                settling: false,
                credentials: Credentials::default(),
                certificate_callback: None,
                last_ran: 0,
                fragment_kib: 0,
                destinations: None,
            }),
            changed: Condvar::new(),
            settle: Mutex::new(()),
            notify: Mutex::new(None),
            app_handles: AtomicU32::new(0),
        }
    }

    /// Asks the transfer task, if any, to stop. Returns at once.
    pub(crate) fn signal_stop(slot: &JobSlot) {
        if let Some(r) = &slot.runner {
            let _ = r.stop.send(true);
        }
    }
}

/// What a change to a job's record touched, so the store writes only that.
pub(crate) enum Touch {
    /// The job's own row. Nothing is written if no field the store keeps changed (a move between
    /// QUEUED, CONNECTING and TRANSFERRING, a file finished in memory: see `JobRecord::same_row`).
    Job,
    /// The job's row and the files added at the end of its list.
    Appended,
    /// The job's row and the names, temporary file and committed flag of these files.
    Files(Vec<usize>),
    /// Nothing: the record changes in memory only (a job leaving the queue, whose row the
    /// checkpoint batch deletes; a file finished, which its checkpoint records once flushed).
    Nothing,
}

/// What `publish` puts back if the change cannot be kept.
struct Undo {
    head: JobRecord,
    files_len: usize,
    files: Vec<(usize, FileRecord)>,
}

impl Undo {
    fn restore(self, rec: &mut JobRecord) {
        let mut files = std::mem::take(&mut rec.files);
        files.truncate(self.files_len);
        for (i, f) in self.files {
            files[i] = f;
        }
        *rec = self.head;
        rec.files = files;
    }
}

/// Applies `edit` to the job's record in place and writes what `touch` names to the store; if the
/// edit refuses or the store fails, the record is put back as it was, so the caller's error is the
/// whole truth. Then the events, the notification command line, and the waiters. Costs what the
/// edit touched, never a copy of every file.
pub(crate) fn publish<R>(
    shared: &Arc<Shared>,
    cell: &Arc<JobCell>,
    slot: &mut JobSlot,
    touch: Touch,
    edit: impl FnOnce(&mut JobRecord) -> Result<R>,
) -> Result<R> {
    let undo = Undo {
        head: slot.rec.head(),
        files_len: slot.rec.files.len(),
        files: match &touch {
            Touch::Files(ix) => ix
                .iter()
                .filter_map(|&i| Some((i, slot.rec.files.get(i)?.clone())))
                .collect(),
            _ => Vec::new(),
        },
    };
    let r = match edit(&mut slot.rec) {
        Ok(r) => r,
        Err(e) => {
            undo.restore(&mut slot.rec);
            return Err(e);
        }
    };
    // Strictly later than the last change: a row written from an older record can tell it is
    // older (`Store::checkpoint`'s job rows).
    slot.rec.modified_ms = now_ms().max(undo.head.modified_ms + 1);
    let rec = &mut slot.rec;
    let written = match &touch {
        Touch::Job if undo.head.same_row(rec) => Ok(()),
        Touch::Job => shared.store.update_job(rec),
        Touch::Appended => shared.store.append_files(rec, undo.files_len),
        Touch::Files(ix) => shared.store.update_files(rec, ix),
        Touch::Nothing => Ok(()),
    };
    if let Err(e) = written {
        undo.restore(&mut slot.rec);
        return Err(e.into());
    }
    let was_parked = std::mem::take(&mut slot.parked);
    let (old, rec) = (&undo.head, &slot.rec);
    if super::needs_scheduler(rec.state) && (was_parked || !super::needs_scheduler(old.state)) {
        shared.scheduled.lock().insert(rec.id, cell.clone());
    }
    let interval = rec.min_notification_interval_ms;
    for event in events::for_change(old, rec) {
        emit(shared, cell, event, interval);
    }
    // The command line stands in for a callback (as in BITS) when none is registered.
    let reached =
        rec.state != old.state && matches!(rec.state, JobState::Transferred | JobState::Error);
    if let (true, Some(program)) = (reached, &rec.extras().notify_program) {
        if cell.notify.lock().is_none() {
            super::cmdline::launch(
                shared.clone(),
                rec.id,
                program.clone(),
                rec.extras().notify_parameters.clone(),
            );
        }
    }
    // Only a new state is worth waking `Job::wait` for: progress and a finished file are not,
    // and an application waiting on a job of thousands of files would be woken for each.
    if rec.state != old.state {
        cell.changed.notify_all();
    }
    Ok(r)
}

/// Queues an event for `next_event`, and for the job's callback if it wants this kind.
pub(crate) fn emit(shared: &Arc<Shared>, cell: &Arc<JobCell>, event: Event, interval_ms: u32) {
    let registration = cell.notify.lock().clone();
    if let Some(r) = registration.filter(|r| r.wants(event.kind)) {
        let interval = Duration::from_millis(interval_ms.into());
        shared
            .dispatcher
            .send(r.deliver.clone(), event.clone(), interval);
    }
    shared.events.push(event);
}
