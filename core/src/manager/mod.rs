//! The public Rust API (what ffi calls): the manager and job handles, the operations an
//! application calls, applied through the state machine (`state.rs`), written through the store,
//! and handed to the scheduler. Layer 4: it may use every module; nothing but `lib.rs` uses it.
//!
//! `mod.rs`: `Manager` (open, close, create, get, enumerate) and `Events`. `job.rs`: the `Job`
//! handle. `validate.rs`: the argument checks both use.
//!
//! Threads and locks. Application calls run on the caller's thread and never `block_on`; they only
//! take short locks and signal the scheduler, except `complete`, `cancel` and `wait`, which block the
//! caller (not a runtime thread) while a transfer winds down, files are renamed, or the state changes.
//! The lock order and who owns what: see `Shared` in `queue/mod.rs`.

#[doc(hidden)]
pub mod fuzzing;
mod job;
mod schedule;
mod validate;

pub use job::{Callback, Job, ServerCertificateCheck};

// Re-exported so the paths `openbits_core::manager::{Config, Error, Result}` keep working.
use crate::config::BandwidthSchedule;
pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, JobId, JobRecord, COST_STATE_ROAMING};
use crate::queue::checkpoint;
use crate::queue::events::{Dispatcher, Event};
use crate::queue::{check_open, JobCell, Shared};
use crate::scheduler;
use crate::settle;
use crate::state::JobType;
use crate::store::{SqliteStore, Store};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use validate::check_chars;

/// The settings keys of the manager-wide rate limit and of the bandwidth schedule.
const MAX_BANDWIDTH: &str = "max_bandwidth";
const SCHEDULE: &str = "bandwidth_schedule";

pub struct Manager {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    state_dir: PathBuf,
    /// Holds the folder's lock for as long as the manager lives; the OS drops it if the process dies.
    _lock: std::fs::File,
    /// Tells the scheduler when the machine loses or regains its network (None: no watcher could
    /// be started; jobs then retry on their timers).
    _network: Option<crate::network::Watcher>,
}

impl Manager {
    /// Opens a manager on `state_dir` (None: the per-user default folder, see `default_state_dir`):
    /// locks the folder, opens its database, finishes what a crash interrupted, and continues every
    /// job that was active.
    pub fn open(state_dir: Option<&Path>, config: Config) -> Result<Manager> {
        let state_dir = match state_dir {
            Some(p) => p.to_path_buf(),
            None => default_state_dir()?,
        };
        if !state_dir.is_absolute() {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!(
                    "state folder must be an absolute path: {}",
                    state_dir.display()
                ),
            ));
        }
        create_private_dir(&state_dir)?;
        let lock = lock_folder(&state_dir)?;
        let (store, loaded) = SqliteStore::open_and_load(&state_dir).map_err(Error::from)?;
        let records = settle::recover(&store, loaded, config.inactivity_timeout);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("openbits-worker")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    hr::from_io(&e),
                    format!("cannot start the transfer threads: {e}"),
                )
            })?;
        let dispatcher = Dispatcher::start().map_err(|e| {
            Error::new(
                hr::from_io(&e),
                format!("cannot start the notification thread: {e}"),
            )
        })?;
        let max_bandwidth = match store.setting(MAX_BANDWIDTH).map_err(Error::from)? {
            Some(v) => v.parse::<u64>().map_err(|_| {
                Error::new(
                    hr::E_DATABASE_CORRUPT,
                    format!("the stored manager rate limit is not a number: {v:?}"),
                )
            })?,
            None => 0,
        };
        let schedule = match store.setting(SCHEDULE).map_err(Error::from)? {
            Some(text) => Some(schedule::decode(&text).ok_or_else(|| {
                Error::new(
                    hr::E_DATABASE_CORRUPT,
                    format!("the stored bandwidth schedule is damaged: {text:?}"),
                )
            })?),
            None => None,
        };
        let shared = Arc::new(Shared::new(config, Box::new(store), records, dispatcher));
        shared.limits.manager.set_rate(max_bandwidth);
        *shared.schedule.lock() = schedule;
        shared
            .network_up
            .store(crate::network::is_up(), Ordering::SeqCst);
        let weak = Arc::downgrade(&shared);
        let network = crate::network::watch(move |up| {
            if let Some(shared) = weak.upgrade() {
                shared.network_up.store(up, Ordering::SeqCst);
                if up {
                    shared.reconnects.fetch_add(1, Ordering::SeqCst);
                }
                shared.wake.notify_one();
            }
        })
        .ok();
        // NetworkManager's metered flag (Linux, when a system bus and NetworkManager are there).
        let weak = Arc::downgrade(&shared);
        runtime.spawn(crate::metered::follow(move |cost| {
            if let Some(shared) = weak.upgrade() {
                if shared.system_cost.swap(cost, Ordering::SeqCst) != cost {
                    shared.wake.notify_one();
                }
            }
        }));
        runtime.spawn(scheduler::run(shared.clone()));
        runtime.spawn(checkpoint::run(shared.clone()));
        Ok(Manager {
            shared,
            runtime: Mutex::new(Some(runtime)),
            state_dir,
            _lock: lock,
            _network: network,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn check_open(&self) -> Result<()> {
        check_open(&self.shared)
    }

    /// CreateJob: a new SUSPENDED job with a random GUID.
    pub fn create_job(&self, display_name: &str, job_type: JobType) -> Result<Job> {
        self.check_open()?;
        check_chars(
            "display name",
            display_name,
            crate::job::MAX_DISPLAY_NAME_CHARS,
        )?;
        self.check_job_limits()?;
        let mut rec = JobRecord::new(
            JobId::new_v4(),
            job_type,
            display_name.to_string(),
            now_ms(),
        );
        rec.owner = self.shared.owner.clone();
        rec.seq = self.shared.next_seq();
        self.shared.store.insert(&rec).map_err(Error::from)?;
        let id = rec.id;
        let cell = Arc::new(JobCell::new(rec, false));
        self.shared.jobs.lock().insert(id, cell.clone());
        // The scheduler keeps time for every job (inactivity); it needs waking only if this job's
        // deadline comes before every deadline it already waits for.
        let idle_at =
            now_ms().saturating_add(self.shared.config.inactivity_timeout.as_millis() as u64);
        self.shared.idle_due_ms.fetch_min(idle_at, Ordering::SeqCst);
        if idle_at < self.shared.next_due_ms.load(Ordering::SeqCst) {
            self.shared.wake.notify_one();
        }
        Ok(Job::for_app(self.shared.clone(), cell))
    }

    /// MaxJobsPerMachine and MaxJobsPerUser (not in service mode, as in BITS).
    fn check_job_limits(&self) -> Result<()> {
        let c = &self.shared.config;
        if c.service_mode {
            return Ok(());
        }
        let jobs = self.shared.jobs.lock();
        if jobs.len() >= c.max_jobs as usize {
            return Err(Error::new(
                hr::E_TOO_MANY_JOBS_PER_MACHINE,
                format!(
                    "the queue holds {} jobs; the limit is {}",
                    jobs.len(),
                    c.max_jobs
                ),
            ));
        }
        // The owner's jobs are at most all the jobs: count them (a lock per job) only when that
        // many could reach the limit, so creating many jobs under a raised limit stays O(1).
        if jobs.len() < c.max_jobs_per_owner as usize {
            return Ok(());
        }
        let mine = jobs
            .values()
            .filter(|cell| cell.slot.lock().rec.owner == self.shared.owner)
            .count();
        if mine >= c.max_jobs_per_owner as usize {
            return Err(Error::new(
                hr::E_TOO_MANY_JOBS_PER_USER,
                format!(
                    "{} has {mine} jobs; the limit is {}",
                    self.shared.owner, c.max_jobs_per_owner
                ),
            ));
        }
        Ok(())
    }

    /// The manager-wide rate limit in bytes per second (0: none): every background job together
    /// (FOREGROUND jobs are exempt, as in BITS). Kept in the state folder; transfers in flight
    /// follow a change within a quarter of a second.
    pub fn set_max_bandwidth(&self, bytes_per_second: u64) -> Result<()> {
        self.check_open()?;
        let value = (bytes_per_second > 0).then(|| bytes_per_second.to_string());
        self.shared
            .store
            .set_setting(MAX_BANDWIDTH, value.as_deref())
            .map_err(Error::from)?;
        self.shared.limits.manager.set_rate(bytes_per_second);
        Ok(())
    }

    pub fn max_bandwidth(&self) -> u64 {
        self.shared.limits.manager.rate()
    }

    /// Sets (None: removes) the bandwidth schedule for background jobs: limits by priority inside
    /// and outside the work hours, and a maintenance window that overrides both
    /// (`BANDWIDTH_BLOCKED`: no background transfer, the jobs wait with BITS_E_BLOCKED_BY_POLICY).
    /// It bounds background jobs together with `set_max_bandwidth`. Kept in the state folder.
    pub fn set_bandwidth_schedule(&self, schedule: Option<BandwidthSchedule>) -> Result<()> {
        self.check_open()?;
        if let Some(s) = &schedule {
            schedule::check(s)?;
        }
        let text = schedule.as_ref().map(schedule::encode);
        self.shared
            .store
            .set_setting(SCHEDULE, text.as_deref())
            .map_err(Error::from)?;
        *self.shared.schedule.lock() = schedule;
        self.shared.wake.notify_one();
        Ok(())
    }

    pub fn bandwidth_schedule(&self) -> Option<BandwidthSchedule> {
        *self.shared.schedule.lock()
    }

    /// The network's cost now: one BITS_COST_STATE_* value, which outranks NetworkManager's
    /// metered flag until the application gives 0 (follow the system again). Jobs whose transfer
    /// policy excludes the cost wait in TRANSIENT_ERROR with
    /// BITS_E_BLOCKED_BY_COST_TRANSFER_POLICY, and start again as soon as a cost they allow holds.
    /// Not kept: a new manager starts by following the system (UNRESTRICTED where it says
    /// nothing).
    pub fn set_network_cost(&self, cost_state: u32) -> Result<()> {
        self.check_open()?;
        if cost_state != 0 && (!cost_state.is_power_of_two() || cost_state > COST_STATE_ROAMING) {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!(
                    "network cost {cost_state:#x}: give one BITS_COST_STATE_* value (0x01-0x80), or 0 to follow the system"
                ),
            ));
        }
        self.shared.network_cost.store(cost_state, Ordering::SeqCst);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The cost the scheduler works with: the application's, else NetworkManager's, else
    /// UNRESTRICTED.
    pub fn network_cost(&self) -> u32 {
        self.shared.cost_now()
    }

    /// The owner this manager acts for.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// GetJob: a new handle to a job that is not in a final state.
    pub fn get_job(&self, id: &JobId) -> Result<Job> {
        self.check_open()?;
        let cell = self.shared.jobs.lock().get(id).cloned();
        let Some(cell) = cell else {
            return Err(Error::new(
                hr::E_NOT_FOUND,
                format!("no job with id {}", crate::job::braced(id)),
            ));
        };
        let owner = cell.slot.lock().rec.owner.clone();
        if owner != self.shared.owner && !self.shared.config.service_mode {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                format!(
                    "job {} belongs to {owner}; only a manager in service mode may open it",
                    crate::job::braced(id)
                ),
            ));
        }
        Ok(Job::for_app(self.shared.clone(), cell))
    }

    /// EnumJobs: the owner's jobs not in a final state, in creation order; with `all_users`
    /// every owner's (service mode only, else BITS_E_ACCESSDENIED).
    pub fn jobs_of(&self, all_users: bool) -> Result<Vec<Job>> {
        self.check_open()?;
        if all_users && !self.shared.config.service_mode {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                "listing every user's jobs needs service mode",
            ));
        }
        let mut cells: Vec<(u64, Arc<JobCell>)> = self
            .shared
            .jobs
            .lock()
            .values()
            .filter_map(|c| {
                let slot = c.slot.lock();
                (all_users || slot.rec.owner == self.shared.owner)
                    .then(|| (slot.rec.seq, c.clone()))
            })
            .collect();
        cells.sort_by_key(|(seq, _)| *seq);
        Ok(cells
            .into_iter()
            .map(|(_, cell)| Job::for_app(self.shared.clone(), cell))
            .collect())
    }

    /// The owner's jobs not in a final state, in creation order.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        self.jobs_of(false)
    }

    /// The manager's event queue, as a handle of its own: a thread waiting on it keeps what it
    /// needs alive, so the manager may be closed and dropped meanwhile (the wait then ends).
    pub fn events(&self) -> Events {
        Events {
            shared: self.shared.clone(),
        }
    }

    /// The next event of any of the manager's jobs, waiting up to `timeout` (None: no limit).
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Event> {
        self.events().next(timeout)
    }

    /// Stops every transfer and joins the manager's threads (bounded by 5 s). Job handles held
    /// afterwards fail with BITS_E_INVALID_STATE. Calling it again does nothing.
    pub fn close(&self) {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let cells: Vec<Arc<JobCell>> = self.shared.jobs.lock().values().cloned().collect();
        for cell in cells {
            JobCell::signal_stop(&cell.slot.lock());
            cell.changed.notify_all();
        }
        self.shared.wake.notify_one();
        self.shared.events.wake_all();
        self.shared.closing.fire();
        if let Some(rt) = self.runtime.lock().take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropping a runtime inside another runtime's thread would panic.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(5));
            }
        }
        // The transfers are stopped: flush and record the progress they handed over, and retire the settled jobs (their folders synced, their rows deleted).
        let _ = self.shared.checkpoints.write_now(&*self.shared.store);
        // Last, while the folder's lock is held: anything that outlives the manager (a job or
        // events handle, a blocking task) can no longer write into the folder.
        let _ = self.shared.store.close();
        // Then the callbacks: deliveries under way finish, and each registration's user data is
        // freed (outside every lock).
        self.shared.dispatcher.stop();
        let cells: Vec<Arc<JobCell>> = self.shared.jobs.lock().values().cloned().collect();
        for cell in cells {
            let registration = cell.notify.lock().take();
            drop(registration);
            let check = cell.slot.lock().certificate_callback.take();
            drop(check);
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.close();
    }
}

/// `$OPENBITS_HOME`, else `$XDG_DATA_HOME/openbits`, else `~/.local/share/openbits` (macOS:
/// `~/Library/Application Support/openbits`).
pub fn default_state_dir() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("OPENBITS_HOME") {
        return Ok(p);
    }
    if cfg!(target_os = "macos") {
        if let Some(h) = env("HOME") {
            return Ok(h.join("Library/Application Support/openbits"));
        }
    } else {
        if let Some(x) = env("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
            return Ok(x.join("openbits"));
        }
        if let Some(h) = env("HOME") {
            return Ok(h.join(".local/share/openbits"));
        }
    }
    Err(Error::new(
        hr::E_INVALIDARG,
        "no state folder given and neither OPENBITS_HOME nor HOME is set",
    ))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() && !dir.is_dir() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("state folder is not a folder: {}", dir.display()),
        ));
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) if dir.is_dir() => Ok(()),
        Ok(()) => Err(Error::new(
            hr::E_INVALIDARG,
            format!("state folder is not a folder: {}", dir.display()),
        )),
        Err(e) => Err(Error::io("cannot create the state folder", dir, &e)),
    }
}

/// Takes the folder's exclusive lock: one manager per state folder, in this process or any other.
/// flock belongs to the open file, so a second open in the same process is refused too, and the
/// OS releases it when the process dies: there is never a stale lock to clean up.
fn lock_folder(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("openbits.lock");
    let file =
        crate::localfile::open_private(&path).map_err(|e| Error::io("cannot open", &path, &e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_SHARING_VIOLATION),
                format!("the state folder {} is in use by another openbits manager (in this or another process)", dir.display()),
            ));
        }
        return Err(Error::io("cannot lock", &path, &e));
    }
    Ok(file)
}

/// A handle to the manager's event queue.
#[derive(Clone)]
pub struct Events {
    shared: Arc<Shared>,
}

impl Events {
    /// The next event, waiting up to `timeout` (None: no limit): BITS_E_TIMEOUT if none came,
    /// BITS_E_INVALID_STATE once the manager is closed.
    pub fn next(&self, timeout: Option<Duration>) -> Result<Event> {
        check_open(&self.shared)?;
        let closed = || self.shared.closed.load(Ordering::SeqCst);
        let all = self.shared.config.service_mode;
        let visible = |e: &Event| all || *e.owner == *self.shared.owner;
        match self.shared.events.next(timeout, closed, visible) {
            Some(e) => Ok(e),
            None => {
                check_open(&self.shared)?;
                Err(Error::new(
                    hr::E_TIMEOUT,
                    "no event came before the timeout",
                ))
            }
        }
    }
}

/// A write to a connection the server has closed raises SIGPIPE in the writing thread (hyper
/// writes with writev, which has no MSG_NOSIGNAL), and its default action ends the process: Rust
/// programs ignore it, C programs usually do not. Blocked in the library's own threads, the signal
/// stays pending there and the write fails with EPIPE, a transport error like any other.
fn block_sigpipe() {
    // SAFETY: plain libc calls on a local signal set; they only change this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}
