//! The kernel: the state the scheduler, the transfer engine, settle and the public API share, and
//! the services on it (publishing a record, events, checkpoint batching, the notification command
//! line). Layer 2: it imports only layers 0 and 1 (`config`, `error`, `hresult`, `job`, `state`,
//! `store`, `http_options`, `localfile`); nothing here names the engines or the API.
//!
//! `cell.rs`: one job's cell and `publish`/`emit`. `events.rs`: the event queue and the callback
//! thread. `checkpoint.rs`: batched durable progress. `cmdline.rs`: SetNotifyCmdLine.

pub(crate) mod cell;
pub(crate) mod checkpoint;
pub(crate) mod cmdline;
pub mod events;

pub(crate) use cell::{emit, publish, Destination, JobCell, JobSlot, Runner, Touch};

use crate::config::{BandwidthSchedule, Config};
use crate::error::{Error, Result};
use crate::hresult as hr;
use crate::job::{self, JobId, JobRecord};
use crate::policy::Limits;
use crate::state::JobState;
use crate::store::Store;
use checkpoint::Checkpoints;
use events::{Dispatcher, EventQueue};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What the scheduler, the transfer engine and settle share with the application-facing handles.
///
/// Who writes and who reads each field:
///
/// | Field | Written by | Read by |
/// |---|---|---|
/// | `jobs` | `Manager::open` (filled), `Manager::create_job` (insert), `settle` retire (remove) | scheduler pass, `Manager` get/enum/limits/close, `cmdline` retries |
/// | `scheduled` | `Shared::new` (filled), `publish` (insert, when a job enters a state the scheduler works on, or a parked job changes), scheduler pass (remove, when it leaves them or parks) | scheduler pass |
/// | `waiting` | scheduler pass (park; drop stale and started entries) | scheduler pass |
/// | `idle_due_ms` | scheduler full pass (store), `create_job` and the pass's removals (fetch_min) | scheduler pass |
/// | `transfers` | transfer tasks (count themselves in at their start, out when they end) | checkpoint batch task (gathers only while some run) |
/// | `closed` | `Manager::close` (once) | `check_open` (every API call), the scheduler and checkpoint loops, `Events::next`, `cmdline` |
/// | `wake` | notified by API calls that move a scheduling decision, settle, a transfer task's exit, close | awaited by the scheduler only |
/// | `config`, `owner` | set once by `Shared::new` | everyone |
/// | `store` | `publish` (what a change touched), `create_job` (insert), `Checkpoints::write_now` (progress, rows of jobs that became TRANSFERRED, removal of retired jobs), `settle::recover` (before `Shared` exists) | `Manager::open` (before `Shared` exists) |
/// | `checkpoints` | `FileTransfer` (checkpoints, with the file to flush when it finished), `run_job` (the row of a job that became TRANSFERRED), settle complete/cancel (retire, forget) | `Checkpoints::write_now` (the checkpoint loop, close), `make_durable` (complete) |
/// | `events` | `emit` (push), close (`wake_all`) | `Events::next` |
/// | `dispatcher` | `emit` and `set_notify_callback` (send), close (stop) | its own thread |
/// | `closing` | close (fire) | `cmdline` threads waiting to run a command line again |
/// | `next_due_ms` | the scheduler, after each pass | `create_job` (whether to wake the scheduler) |
/// | `next_seq` | `create_job` (fetch_add) | — |
/// | `limits` | `Manager::open` and `set_max_bandwidth` (rates) | transfer tasks after each write |
/// | `network_cost` | `Manager::set_network_cost` | `Shared::cost_now` |
/// | `system_cost` | `Manager::open`'s NetworkManager task (`metered::follow`) | `Shared::cost_now` |
/// | `schedule` | `Manager::open`, `set_bandwidth_schedule` | scheduler pass (which sets `limits.by_priority`) |
/// | `network_up`, `reconnects` | `Manager::open` and its network watcher | scheduler pass, `transfer::fail` |
/// | `reconnects_seen` | scheduler pass | scheduler pass |
/// | `cancel_sessions` | `settle::cancel` (push) | scheduler loop (drain) |
/// | `upload_hosts` | upload tasks (a session's `BITS-Host-Id` and its fall-back timer) | upload tasks |
/// | `starts` | scheduler `start` (fetch_add) | — |
///
/// Lock order (a lock may be taken while holding only locks to its left):
/// `JobCell::settle` → `Shared::jobs` → `JobCell::slot` → one leaf at a time: `JobCell::notify`,
/// `Shared::scheduled`, `Shared::waiting`, `Shared::schedule`, the checkpoint queue, the event
/// queue's lock, the dispatcher's sender, the store's connection (then its log), the store's log.
/// `Checkpoints::writing` is taken with no other lock held, then the checkpoint queue, the retire
/// list, and the store's connection, one at a time.
/// `Clients`' proxy map, `CloseSignal` and the manager's runtime slot are taken with no other lock
/// held. No lock is held across an `.await`; the slot's condvar (`JobCell::changed`) is waited on
/// only by application threads (complete, cancel, wait), never by a runtime worker.
///
/// Durable versus live: a change that must survive a crash goes through `publish`, which writes
/// what the change touched (`Touch`) and puts the record back if the store refused. The transfer engine
/// also edits live fields in place under the slot lock (bytes transferred, the size and
/// validators it learnt, the Transferring state, `active_ms`, `bytes_checkpointed`, a download's
/// derived temporary file name); those reach the store through a checkpoint or the next
/// `publish`, and `settle::recover` reconciles them with the temporary files after a crash. A job
/// the engine finished (TRANSFERRED) is published in memory only; its row goes in the next
/// checkpoint batch (`Checkpoints::job_row`), unless a call wrote a newer row first.
pub(crate) struct Shared {
    /// Jobs not yet in a final state.
    pub(crate) jobs: Mutex<HashMap<JobId, Arc<JobCell>>>,
    /// The jobs a scheduler pass must look at every time (`needs_scheduler`): queued, running or
    /// waiting to retry. A pass visits only these, so its cost follows the jobs in motion, not
    /// the queue; the others matter to it only for the inactivity timeout (`idle_due_ms`).
    pub(crate) scheduled: Mutex<HashMap<JobId, Arc<JobCell>>>,
    /// Queued jobs waiting for a transfer slot, parked here by a pass in the order they would
    /// get one (`Waiting`), so a pass peeks at the first few where they wait instead of visiting
    /// thousands, and removes an entry only when its job starts or the entry is stale (see
    /// `JobSlot::parked`, which says whether an entry is current).
    pub(crate) waiting: Mutex<std::collections::BTreeMap<Waiting, Arc<JobCell>>>,
    /// The earliest inactivity deadline of any job not in `scheduled` (ms since the epoch), as
    /// far as the scheduler knows: when it passes, a pass visits every job.
    pub(crate) idle_due_ms: AtomicU64,
    /// Transfer tasks alive. While none runs no new checkpoint is coming, so the checkpoint batch
    /// an application waits for in complete starts at once instead of gathering
    /// (`checkpoint::run`).
    pub(crate) transfers: AtomicUsize,
    pub(crate) closed: AtomicBool,
    /// Wakes the scheduler: something it decides on changed.
    pub(crate) wake: Notify,
    pub(crate) config: Config,
    /// `config.owner`, or the OS user name.
    pub(crate) owner: Arc<str>,
    pub(crate) store: Box<dyn Store>,
    /// Checkpoints waiting for the next batch write, and settled jobs waiting to leave the store.
    pub(crate) checkpoints: Checkpoints,
    pub(crate) events: EventQueue,
    pub(crate) dispatcher: Dispatcher,
    /// Fired by close: ends the waits of the notification command lines.
    pub(crate) closing: CloseSignal,
    /// When the scheduler wakes up next on its own (ms since the epoch; u64::MAX: never).
    pub(crate) next_due_ms: AtomicU64,
    /// Creation order of the next job.
    next_seq: AtomicU64,
    /// The manager's rate limits for background jobs.
    pub(crate) limits: Limits,
    /// The network's cost as the application last said (one BITS_COST_STATE_* bit; 0: it has
    /// not said, or asked to follow the system again).
    pub(crate) network_cost: AtomicU32,
    /// The network's cost as the system says (NetworkManager's metered flag; 0: unknown).
    pub(crate) system_cost: AtomicU32,
    /// Whether the machine has a network (`network::is_up`), kept by the manager's watcher; and
    /// how many times it came back, so the scheduler retries every waiting job once per return.
    pub(crate) network_up: AtomicBool,
    pub(crate) reconnects: AtomicU64,
    pub(crate) reconnects_seen: AtomicU64,
    /// Upload sessions of cancelled jobs, for the scheduler to cancel on their servers (a leaf
    /// lock; best effort, not kept across a restart).
    pub(crate) cancel_sessions: Mutex<Vec<CancelSession>>,
    /// The bandwidth schedule, if one is set (a leaf lock).
    pub(crate) schedule: Mutex<Option<BandwidthSchedule>>,
    /// The `BITS-Host-Id` of upload sessions, by session id, so a retry goes on talking to that
    /// host (a leaf lock; not kept across a restart, as the store has no column for it).
    pub(crate) upload_hosts: Mutex<HashMap<String, HostAffinity>>,
    /// Counts task starts (round-robin order).
    pub(crate) starts: AtomicU64,
}

impl Shared {
    /// The shared state of a manager that has just opened its store: `records` are the jobs that
    /// stayed after recovery, in creation order.
    pub(crate) fn new(
        config: Config,
        store: Box<dyn Store>,
        records: Vec<JobRecord>,
        dispatcher: Dispatcher,
    ) -> Shared {
        let mut jobs = HashMap::with_capacity(records.len());
        let mut scheduled = HashMap::new();
        let mut seq = 0;
        for rec in records {
            seq = seq.max(rec.seq);
            let (id, moving) = (rec.id, needs_scheduler(rec.state));
            let cell = Arc::new(JobCell::new(rec, true));
            if moving {
                scheduled.insert(id, cell.clone());
            }
            jobs.insert(id, cell);
        }
        let checkpoints = Checkpoints::default();
        let fold = checkpoints.fold.clone();
        store.on_unfolded(Box::new(move || fold.notify_one()));
        Shared {
            jobs: Mutex::new(jobs),
            scheduled: Mutex::new(scheduled),
            waiting: Mutex::new(std::collections::BTreeMap::new()),
            // The first pass visits every job and learns the earliest deadline.
            idle_due_ms: AtomicU64::new(0),
            transfers: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            owner: config
                .owner
                .as_deref()
                .map_or_else(job::process_user, Arc::from),
            config,
            store,
            checkpoints,
            events: EventQueue::default(),
            dispatcher,
            closing: CloseSignal::default(),
            next_due_ms: AtomicU64::new(u64::MAX),
            next_seq: AtomicU64::new(seq + 1),
            limits: Limits::default(),
            network_cost: AtomicU32::new(0),
            system_cost: AtomicU32::new(0),
            schedule: Mutex::new(None),
            cancel_sessions: Mutex::new(Vec::new()),
            upload_hosts: Mutex::new(HashMap::new()),
            network_up: AtomicBool::new(true),
            reconnects: AtomicU64::new(0),
            reconnects_seen: AtomicU64::new(0),
            starts: AtomicU64::new(0),
        }
    }

    /// The network's cost the scheduler works with: the application's value once it gave one
    /// (an explicit choice outranks a guess from the system), else NetworkManager's, else
    /// UNRESTRICTED.
    pub(crate) fn cost_now(&self) -> u32 {
        [
            self.network_cost.load(Ordering::SeqCst),
            self.system_cost.load(Ordering::SeqCst),
        ]
        .into_iter()
        .find(|&c| c != 0)
        .unwrap_or(job::COST_STATE_UNRESTRICTED)
    }

    /// The creation order of a new job.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// An upload session's `BITS-Host-Id` ([MC-BUP] §3.1.2.3): later packets go to `host`; once it
/// has been unreachable for `fallback` (None: never give up on it), the upload goes back to the
/// URL's own host with a new session.
#[derive(Clone, Debug)]
pub(crate) struct HostAffinity {
    pub(crate) host: String,
    pub(crate) fallback: Option<Duration>,
    /// When the host was first unreachable since its last answer.
    pub(crate) failing_since: Option<std::time::Instant>,
}

/// An upload session to cancel on its server (Cancel-Session), with the credentials the job had.
pub(crate) struct CancelSession {
    pub(crate) url: String,
    pub(crate) session: String,
    pub(crate) auth: Option<hyper::header::HeaderValue>,
}

/// States the scheduler acts on at every pass: it gives QUEUED jobs slots, watches running ones,
/// and retries or gives up TRANSIENT_ERROR ones. (A job with a task is watched whatever its state.)
pub(crate) fn needs_scheduler(state: JobState) -> bool {
    state.is_active() || state == JobState::TransientError
}

/// A parked job's place among those waiting for a slot: its priority, then the round-robin
/// order of `scheduler::plan` (when it last had a slot, then its creation order).
pub(crate) type Waiting = (crate::state::Priority, u64, u64);

/// BITS_E_INVALID_STATE once the manager is closed.
pub(crate) fn check_open(shared: &Shared) -> Result<()> {
    if shared.closed.load(Ordering::SeqCst) {
        return Err(Error::new(
            hr::E_INVALID_STATE,
            "the manager of this job was closed",
        ));
    }
    Ok(())
}

/// A one-way signal: fired once, waited on with a timeout.
#[derive(Default)]
pub(crate) struct CloseSignal {
    fired: Mutex<bool>,
    cond: Condvar,
}

impl CloseSignal {
    pub(crate) fn fire(&self) {
        *self.fired.lock() = true;
        self.cond.notify_all();
    }

    /// Waits up to `timeout`; true if the signal fired.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut fired = self.fired.lock();
        if !*fired {
            self.cond.wait_for(&mut fired, timeout);
        }
        *fired
    }
}
