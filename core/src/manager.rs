//! The manager and job handles: the operations an application calls, applied through the state
//! machine (`state.rs`), written through the store, and handed to the scheduler.
//!
//! Threads and locks. Application calls run on the caller's thread and never `block_on`; they only
//! take short locks and signal the scheduler, except `complete`, `cancel` and `wait`, which block the
//! caller (not a runtime thread) while a transfer winds down, files are renamed, or the state changes.
//! The lock order and who owns what: see `Shared` in `queue/mod.rs`.

// Re-exported so the paths `openbits_core::manager::{Config, Error, Result}` keep working.
pub use crate::config::Config;
pub use crate::error::{Error, Result};
use crate::hresult::{self as hr, HResult};
use crate::http_options;
use crate::job::{self, now_ms, FileRange, FileRecord, JobError, JobId, JobRecord, Progress};
use crate::queue::checkpoint;
use crate::queue::events::{self, Deliver, Dispatcher, Event, Registration};
use crate::queue::{check_open, publish, JobCell, Shared};
use crate::scheduler;
use crate::settle;
use crate::state::{self, JobState, JobType, Priority, Refusal};
use crate::store::{SqliteStore, Store};
use parking_lot::Mutex;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Manager {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    state_dir: PathBuf,
    /// Holds the folder's lock for as long as the manager lives; the OS drops it if the process dies.
    _lock: std::fs::File,
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
        let store = SqliteStore::open(&state_dir).map_err(Error::from)?;
        let records = settle::recover(
            &store,
            store.load_all().map_err(Error::from)?,
            config.inactivity_timeout,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("openbits-worker")
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
        let shared = Arc::new(Shared::new(config, Box::new(store), records, dispatcher));
        runtime.spawn(scheduler::run(shared.clone()));
        runtime.spawn(checkpoint::run(shared.clone()));
        Ok(Manager {
            shared,
            runtime: Mutex::new(Some(runtime)),
            state_dir,
            _lock: lock,
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
        check_chars("display name", display_name, job::MAX_DISPLAY_NAME_CHARS)?;
        if job_type != JobType::Download {
            return Err(Error::new(
                hr::E_NOTIMPL,
                "upload and upload-reply jobs are not implemented yet",
            ));
        }
        self.check_job_limits()?;
        let mut rec = JobRecord::new(
            JobId::new_v4(),
            job_type,
            display_name.to_string(),
            now_ms(),
        );
        rec.owner = self.shared.owner.clone();
        self.shared.store.save(&rec).map_err(Error::from)?;
        let id = rec.id;
        let cell = Arc::new(JobCell::new(rec, self.shared.next_seq()));
        self.shared.jobs.lock().insert(id, cell.clone());
        // The scheduler keeps time for every job (inactivity); it needs waking only if this job's
        // deadline comes before every deadline it already waits for.
        let idle_at =
            now_ms().saturating_add(self.shared.config.inactivity_timeout.as_millis() as u64);
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
                format!("no job with id {}", job::braced(id)),
            ));
        };
        let owner = cell.slot.lock().rec.owner.clone();
        if owner != self.shared.owner && !self.shared.config.service_mode {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                format!(
                    "job {} belongs to {owner}; only a manager in service mode may open it",
                    job::braced(id)
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
                (all_users || slot.rec.owner == self.shared.owner).then(|| (slot.seq, c.clone()))
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
        // The transfers are stopped: record the last durable progress they reported.
        checkpoint::write(&self.shared, checkpoint::drain(&self.shared));
        // Then the callbacks: deliveries under way finish, and each registration's user data is
        // freed (outside every lock).
        self.shared.dispatcher.stop();
        let cells: Vec<Arc<JobCell>> = self.shared.jobs.lock().values().cloned().collect();
        for cell in cells {
            let registration = cell.notify.lock().take();
            drop(registration);
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

fn check_ranges(ranges: &[FileRange]) -> Result<()> {
    let invalid = |why: String| Err(Error::new(hr::E_INVALID_RANGE, why));
    if ranges.is_empty() {
        return Err(Error::new(hr::E_INVALIDARG, "at least one range is needed"));
    }
    for (i, r) in ranges.iter().enumerate() {
        if r.offset == job::LENGTH_TO_EOF {
            return invalid(format!("range {i} starts at BITS_LENGTH_TO_EOF"));
        }
        if r.length == 0 {
            return invalid(format!("range {i} is empty"));
        }
        if r.length == job::LENGTH_TO_EOF && i + 1 != ranges.len() {
            return invalid(format!(
                "range {i}: only the last range may run to the end of the file"
            ));
        }
        if r.length != job::LENGTH_TO_EOF && r.offset.checked_add(r.length).is_none() {
            return invalid(format!("range {i} runs past the largest offset"));
        }
    }
    let mut sorted: Vec<&FileRange> = ranges.iter().collect();
    sorted.sort_by_key(|r| r.offset);
    for pair in sorted.windows(2) {
        let end = pair[0].offset.saturating_add(pair[0].length);
        if pair[0].length == job::LENGTH_TO_EOF || end > pair[1].offset {
            return Err(Error::new(
                hr::E_OVERLAPPING_RANGES,
                format!(
                    "the ranges at {} and {} overlap",
                    pair[0].offset, pair[1].offset
                ),
            ));
        }
    }
    Ok(())
}

/// A string limited to `limit` characters (BITS counts characters, not bytes).
fn check_chars(what: &str, text: &str, limit: usize) -> Result<()> {
    let chars = text.chars().count();
    if chars > limit {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("{what} has {chars} characters; the limit is {limit}"),
        ));
    }
    Ok(())
}

/// BITS's "only before the first resume" properties.
fn before_first_resume(rec: &JobRecord) -> std::result::Result<(), Refusal> {
    if rec.resumed_once {
        return Err((
            hr::E_READ_ONLY_PROPERTY_AFTER_RESUME,
            "this property can be set only before the job is first resumed".into(),
        ));
    }
    Ok(())
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
        let visible = |e: &Event| all || e.owner == self.shared.owner;
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

/// A push callback: called on the manager's notification thread with a handle to the job (valid
/// for the call) and the event.
pub type Callback = Arc<dyn Fn(&Job, &Event) + Send + Sync>;

/// A handle to one job. Cloning gives another handle to the same job.
pub struct Job {
    cell: Arc<JobCell>,
    shared: Arc<Shared>,
    /// Whether this handle counts as the application's (see `JobCell::app_handles`).
    counted: bool,
}

impl Clone for Job {
    fn clone(&self) -> Job {
        if self.counted {
            self.cell.app_handles.fetch_add(1, Ordering::SeqCst);
        }
        Job {
            cell: self.cell.clone(),
            shared: self.shared.clone(),
            counted: self.counted,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.counted && self.cell.app_handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The application released the job for the last time: its callback goes (BITS
            // releases the notify interface with the last reference).
            let registration = self.cell.notify.lock().take();
            drop(registration);
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({})", job::braced(&self.id()))
    }
}

impl Job {
    /// A handle for the library's own use: it does not keep a callback registered.
    pub(crate) fn from_cell(shared: Arc<Shared>, cell: Arc<JobCell>) -> Job {
        Job {
            cell,
            shared,
            counted: false,
        }
    }

    /// A handle given to the application.
    fn for_app(shared: Arc<Shared>, cell: Arc<JobCell>) -> Job {
        cell.app_handles.fetch_add(1, Ordering::SeqCst);
        Job {
            cell,
            shared,
            counted: true,
        }
    }

    /// Another handle to the job that does not count as the application's: what a callback is
    /// given for the duration of its call.
    pub fn borrowed(&self) -> Job {
        Job::from_cell(self.shared.clone(), self.cell.clone())
    }

    /// SetNotifyInterface + SetNotifyFlags: registers `callback` (None: removes it) for the events
    /// `flags` selects (BITS_NOTIFY_*; BG_NOTIFY_DISABLE silences it). The last registration wins;
    /// the previous callback is dropped once no delivery uses it. An event that already happened
    /// (the job is TRANSFERRED or in ERROR) is delivered at once, as in BITS. Not persisted.
    pub fn set_notify_callback(&self, flags: u32, callback: Option<Callback>) -> Result<()> {
        self.set_notify_flags(flags)?;
        let registration = callback.map(|callback| {
            // The handle is built at delivery time. The manager is held weakly: a registration
            // must not keep it alive (the cell -> registration -> cell cycle is cut where the
            // registration is dropped, see `Registration`).
            let shared = Arc::downgrade(&self.shared);
            let cell = self.cell.clone();
            let deliver: Deliver = Arc::new(move |event: &Event| {
                if let Some(shared) = shared.upgrade() {
                    callback(&Job::from_cell(shared, cell.clone()), event);
                }
            });
            Registration { flags, deliver }
        });
        let previous = std::mem::replace(&mut *self.cell.notify.lock(), registration.clone());
        drop(previous);
        if let Some(r) = registration {
            let (happened, interval) = {
                let slot = self.cell.slot.lock();
                (
                    events::already_happened(&slot.rec),
                    slot.rec.min_notification_interval_ms,
                )
            };
            if let Some(e) = happened.filter(|e| r.wants(e.kind)) {
                self.shared
                    .dispatcher
                    .send(r.deliver, e, Duration::from_millis(interval.into()));
            }
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        check_open(&self.shared)
    }

    pub fn id(&self) -> JobId {
        self.cell.slot.lock().rec.id
    }

    /// A copy of the job's record.
    pub fn record(&self) -> Result<JobRecord> {
        self.check_open()?;
        Ok(self.cell.slot.lock().rec.clone())
    }

    pub fn state(&self) -> Result<JobState> {
        self.check_open()?;
        Ok(self.cell.slot.lock().rec.state)
    }

    pub fn progress(&self) -> Result<Progress> {
        self.check_open()?;
        Ok(self.cell.slot.lock().rec.progress())
    }

    /// GetError: only in ERROR / TRANSIENT_ERROR.
    pub fn error(&self) -> Result<JobError> {
        self.check_open()?;
        let slot = self.cell.slot.lock();
        match (&slot.rec.error, slot.rec.state) {
            (Some(e), JobState::Error | JobState::TransientError) => Ok(e.clone()),
            _ => Err(Error::new(
                hr::E_ERROR_INFORMATION_UNAVAILABLE,
                format!("no error information: the job is {}", slot.rec.state.name()),
            )),
        }
    }

    /// Applies `f` to a copy of the record and publishes it. The scheduler is not woken: callers
    /// whose change can move one of its decisions call `wake_scheduler`.
    fn update<R>(
        &self,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<R, Refusal>,
    ) -> Result<R> {
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        let mut rec = slot.rec.clone();
        let r = f(&mut rec)?;
        publish(&self.shared, &self.cell, &mut slot, rec)?;
        Ok(r)
    }

    /// A property change: refused in a final state, published otherwise.
    fn change(&self, set: impl FnOnce(&mut JobRecord)) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            set(rec);
            Ok(())
        })
    }

    fn wake_scheduler(&self) {
        self.shared.wake.notify_one();
    }

    /// AddFile: http, https or file URL to an absolute local path whose folder exists.
    pub fn add_file(&self, remote_url: &str, local_path: &str) -> Result<()> {
        self.add_file_set(&[(remote_url, local_path)])
    }

    /// AddFileSet: every file, or none (the first invalid one is reported).
    pub fn add_file_set(&self, files: &[(&str, &str)]) -> Result<()> {
        self.check_open()?;
        let mut checked = Vec::with_capacity(files.len());
        for (remote, local) in files {
            checked.push((validate_remote(remote)?, validate_local(local)?));
        }
        let config = &self.shared.config;
        self.update(|rec| {
            state::modify(rec.state, "add a file to")?;
            if !config.service_mode
                && rec.files.len() + checked.len() > config.max_files_per_job as usize
            {
                return Err((
                    hr::E_TOO_MANY_FILES_IN_JOB,
                    format!(
                        "the job has {} files; {} more would pass the limit of {}",
                        rec.files.len(),
                        checked.len(),
                        config.max_files_per_job
                    ),
                ));
            }
            for (url, local) in &checked {
                if rec
                    .files
                    .iter()
                    .any(|f| same_destination(Path::new(&f.local_path), local))
                {
                    return Err((
                        hr::E_INVALIDARG,
                        format!(
                            "the job already has a file with local name {}",
                            local.display()
                        ),
                    ));
                }
                rec.files.push(FileRecord::new(
                    url.to_string(),
                    local.to_string_lossy().into_owned(),
                ));
            }
            Ok(())
        })
    }

    /// AddFileWithRanges: only `ranges` of the remote file are downloaded, one after another, into
    /// the local file. BITS's codes: no range -> BITS_E_INVALIDARG; a range starting at
    /// LENGTH_TO_EOF, of length 0, overflowing, or LENGTH_TO_EOF anywhere but last ->
    /// BITS_E_INVALID_RANGE; overlapping or duplicate -> BITS_E_OVERLAPPING_RANGES; more than the
    /// manager's max_ranges_per_file -> BITS_E_TOO_MANY_RANGES_IN_FILE. http and https only.
    pub fn add_file_with_ranges(
        &self,
        remote_url: &str,
        local_path: &str,
        ranges: &[FileRange],
    ) -> Result<()> {
        self.check_open()?;
        let config = &self.shared.config;
        if !config.service_mode && ranges.len() > config.max_ranges_per_file as usize {
            return Err(Error::new(
                hr::E_TOO_MANY_RANGES_IN_FILE,
                format!(
                    "{} ranges; the limit is {}",
                    ranges.len(),
                    config.max_ranges_per_file
                ),
            ));
        }
        check_ranges(ranges)?;
        let url = validate_remote(remote_url)?;
        if url.scheme() == "file" {
            return Err(Error::new(
                hr::E_NOTIMPL,
                "byte ranges are supported for http and https files only",
            ));
        }
        let local = validate_local(local_path)?;
        self.update(|rec| {
            state::modify(rec.state, "add a file to")?;
            if rec.dynamic_content {
                return Err((
                    hr::E_UNSUPPORTED_JOB_CONFIGURATION,
                    "a job with dynamic content cannot have byte ranges".into(),
                ));
            }
            if !config.service_mode && rec.files.len() >= config.max_files_per_job as usize {
                return Err((
                    hr::E_TOO_MANY_FILES_IN_JOB,
                    format!("the job has {} files already", rec.files.len()),
                ));
            }
            if rec
                .files
                .iter()
                .any(|f| same_destination(Path::new(&f.local_path), &local))
            {
                return Err((
                    hr::E_INVALIDARG,
                    format!(
                        "the job already has a file with local name {}",
                        local.display()
                    ),
                ));
            }
            let mut f = FileRecord::new(url.to_string(), local.to_string_lossy().into_owned());
            f.ranges = Some(ranges.to_vec());
            rec.files.push(f);
            Ok(())
        })
    }

    /// IBackgroundCopyFile2::SetRemoteName, e.g. a fresh signed URL. The partial data stays: the
    /// next request asks for the rest with If-Range, so the new URL continues the file if it serves
    /// the same representation and restarts it if not.
    pub fn set_remote_name(&self, index: u32, remote_url: &str) -> Result<()> {
        let url = validate_remote(remote_url)?;
        self.update(|rec| {
            state::modify(rec.state, "change a file of")?;
            let count = rec.files.len();
            let f = rec.files.get_mut(index as usize).ok_or_else(|| {
                (
                    hr::E_INVALIDARG,
                    format!("file index {index} is out of range (the job has {count})"),
                )
            })?;
            f.remote_url = url.to_string();
            Ok(())
        })?;
        // A transfer in flight uses the old URL: stop it; the scheduler starts it again.
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(())
    }

    /// IBackgroundCopyJob3::ReplaceRemotePrefix: every file whose URL starts with `old` gets `new`
    /// instead; all or none. S_FALSE when no file matched.
    pub fn replace_remote_prefix(&self, old: &str, new: &str) -> Result<HResult> {
        if old.is_empty() {
            return Err(Error::new(hr::E_INVALIDARG, "the old prefix is empty"));
        }
        let matched = self.update(|rec| {
            state::modify(rec.state, "change the files of")?;
            let mut replaced = Vec::new();
            for f in &rec.files {
                if let Some(rest) = f.remote_url.strip_prefix(old) {
                    let url = validate_remote(&format!("{new}{rest}"))
                        .map_err(|e| (e.code, e.message))?;
                    replaced.push(Some(url.to_string()));
                } else {
                    replaced.push(None);
                }
            }
            let matched = replaced.iter().filter(|r| r.is_some()).count();
            for (f, r) in rec.files.iter_mut().zip(replaced) {
                if let Some(url) = r {
                    f.remote_url = url;
                }
            }
            Ok(matched)
        })?;
        if matched == 0 {
            return Ok(hr::S_FALSE);
        }
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(hr::S_OK)
    }

    pub fn set_display_name(&self, name: &str) -> Result<()> {
        check_chars("display name", name, job::MAX_DISPLAY_NAME_CHARS)?;
        self.change(|rec| rec.display_name = name.to_string())
    }

    pub fn set_description(&self, description: &str) -> Result<()> {
        check_chars("description", description, job::MAX_DESCRIPTION_CHARS)?;
        self.change(|rec| rec.description = description.to_string())
    }

    /// SetPriority; the scheduler applies it at once, stopping a transfer only if it must.
    pub fn set_priority(&self, priority: Priority) -> Result<()> {
        self.change(|rec| rec.priority = priority)?;
        self.wake_scheduler();
        Ok(())
    }

    /// SetNotifyFlags: undefined bits give BITS_E_NOTIMPL, as in BITS.
    pub fn set_notify_flags(&self, flags: u32) -> Result<()> {
        if flags & !job::NOTIFY_FLAGS_MASK != 0 {
            return Err(Error::new(
                hr::E_NOTIMPL,
                format!("undefined notify flags 0x{flags:X}"),
            ));
        }
        self.change(|rec| rec.notify_flags = flags)
    }

    /// BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS; may change during a transfer.
    pub fn set_minimum_notification_interval(&self, ms: u32) -> Result<()> {
        self.change(|rec| rec.min_notification_interval_ms = ms)
    }

    /// SetCustomHeaders: BITS's `"Name: value\r\n..."` form; None or "" clears them.
    pub fn set_custom_headers(&self, headers: Option<&str>) -> Result<()> {
        let headers = headers.filter(|h| !h.is_empty());
        if let Some(h) = headers {
            http_options::parse_headers(h).map_err(Error::from)?;
        }
        self.change(|rec| rec.custom_headers = headers.map(str::to_owned))
    }

    /// SetSecurityFlags: the redirect policy (BG_HTTP_REDIRECT_POLICY_*); certificate-relaxing
    /// flags are not supported.
    pub fn set_security_flags(&self, flags: u32) -> Result<()> {
        http_options::check_security_flags(flags).map_err(Error::from)?;
        self.change(|rec| rec.security_flags = flags)
    }

    /// SetProxySettings: PRECONFIG (the environment, as curl reads it), NO_PROXY, or OVERRIDE with
    /// a proxy list and a bypass list.
    pub fn set_proxy_settings(
        &self,
        usage: i32,
        list: Option<&str>,
        bypass: Option<&str>,
    ) -> Result<()> {
        http_options::check_proxy(usage, list, bypass).map_err(Error::from)?;
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.proxy_usage = usage;
            rec.proxy_list = list.map(str::to_owned);
            rec.proxy_bypass = bypass.map(str::to_owned);
            Ok(())
        })
    }

    /// SetCredentials (BASIC only; kept in memory, never stored).
    pub fn set_credentials(
        &self,
        target: i32,
        scheme: i32,
        user: &str,
        password: &str,
    ) -> Result<()> {
        let slot_index =
            http_options::check_target_and_scheme(target, scheme).map_err(Error::from)?;
        let value = http_options::basic(user, password).map_err(Error::from)?;
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        state::modify(slot.rec.state, "change")?;
        slot.credentials[slot_index] = Some(value);
        Ok(())
    }

    /// RemoveCredentials: S_FALSE when none were set for that target and scheme.
    pub fn remove_credentials(&self, target: i32, scheme: i32) -> Result<HResult> {
        let slot_index =
            http_options::check_target_and_scheme(target, scheme).map_err(Error::from)?;
        self.check_open()?;
        let mut slot = self.cell.slot.lock();
        state::modify(slot.rec.state, "change")?;
        Ok(if slot.credentials[slot_index].take().is_some() {
            hr::S_OK
        } else {
            hr::S_FALSE
        })
    }

    /// BITS_JOB_PROPERTY_DYNAMIC_CONTENT: the server need not send Content-Length or honour
    /// Range; an interruption restarts the file from 0. Only before the first resume.
    pub fn set_dynamic_content(&self, enable: bool) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            before_first_resume(rec)?;
            if enable && rec.files.iter().any(|f| f.ranges.is_some()) {
                return Err((
                    hr::E_UNSUPPORTED_JOB_CONFIGURATION,
                    "a job with byte ranges cannot have dynamic content".into(),
                ));
            }
            rec.dynamic_content = enable;
            Ok(())
        })
    }

    /// BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE (per file; 1..UINT64_MAX). Only before the first resume.
    pub fn set_max_download_size(&self, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Err(Error::new(
                hr::E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
                "the maximum download size must be at least 1",
            ));
        }
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            before_first_resume(rec)?;
            rec.max_download_size = Some(bytes);
            Ok(())
        })
    }

    /// SetMaximumDownloadTime: seconds of CONNECTING + TRANSFERRING after which the job goes to
    /// ERROR with BITS_E_MAXDOWNLOAD_TIMEOUT (0: no limit). Counted from the last resume.
    pub fn set_maximum_download_time(&self, seconds: u32) -> Result<()> {
        self.change(|rec| rec.max_download_time_s = seconds)?;
        self.wake_scheduler();
        Ok(())
    }

    /// SetNotifyCmdLine: `program` (an absolute path; None removes the command line) runs when the
    /// job becomes TRANSFERRED or goes to ERROR and no callback is registered; `parameters`, if
    /// given, start with the program (argv[0]) and are split at spaces (double quotes group).
    pub fn set_notify_cmdline(
        &self,
        program: Option<&str>,
        parameters: Option<&str>,
    ) -> Result<()> {
        if let Some(p) = program {
            crate::queue::cmdline::check(p, parameters).map_err(Error::from)?;
        }
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.notify_program = program.map(str::to_owned);
            rec.notify_parameters = program.and(parameters).map(str::to_owned);
            Ok(())
        })
    }

    /// TakeOwnership: a manager in service mode makes the job its owner's.
    pub fn take_ownership(&self) -> Result<()> {
        if !self.shared.config.service_mode {
            return Err(Error::new(
                hr::E_ACCESSDENIED,
                "taking ownership of a job needs service mode",
            ));
        }
        let owner = self.shared.owner.clone();
        self.update(|rec| {
            state::modify(rec.state, "take ownership of")?;
            rec.owner = owner;
            Ok(())
        })
    }

    pub fn resume(&self) -> Result<()> {
        self.update(|rec| {
            let next = state::resume(rec.state, rec.files.len(), rec.all_files_done())?;
            if next == JobState::Queued && !rec.state.is_active() {
                rec.error = None;
                rec.retry_at_ms = None;
                rec.no_progress_since_ms = None;
                // SetMaximumDownloadTime counts from the last resume.
                rec.active_ms = 0;
            }
            rec.state = next;
            rec.resumed_once = true;
            Ok(())
        })?;
        self.wake_scheduler();
        Ok(())
    }

    /// Suspend: the transfer stops at once; the bytes stay for a later resume.
    pub fn suspend(&self) -> Result<()> {
        self.update(|rec| {
            rec.state = state::suspend(rec.state)?;
            rec.retry_at_ms = None;
            Ok(())
        })?;
        JobCell::signal_stop(&self.cell.slot.lock());
        Ok(())
    }

    /// Complete: renames every fully transferred file onto its destination and deletes partial ones.
    /// Returns S_OK, or BITS_S_PARTIAL_COMPLETE when some files were incomplete. If a rename fails the
    /// job keeps its state and complete can be called again. A crash after the intent is recorded is
    /// finished by the next open (see `settle.rs`).
    pub fn complete(&self) -> Result<HResult> {
        settle::complete(&self.shared, &self.cell)
    }

    /// Cancel: deletes the temporary files; the job becomes CANCELLED. Returns S_OK, or
    /// BITS_S_UNABLE_TO_DELETE_FILES when some temporary file could not be removed.
    pub fn cancel(&self) -> Result<HResult> {
        settle::cancel(&self.shared, &self.cell)
    }

    /// Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED, or `timeout` passes
    /// (None: no limit).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<JobState> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut slot = self.cell.slot.lock();
        loop {
            self.check_open()?;
            if slot.rec.state.ends_wait() {
                return Ok(slot.rec.state);
            }
            match deadline {
                None => self.cell.changed.wait(&mut slot),
                Some(d) => {
                    if self.cell.changed.wait_until(&mut slot, d).timed_out()
                        && !slot.rec.state.ends_wait()
                    {
                        self.check_open()?;
                        return Err(Error::new(
                            hr::E_TIMEOUT,
                            format!(
                                "the job is still {} after the timeout",
                                slot.rec.state.name()
                            ),
                        ));
                    }
                }
            }
        }
    }

    pub fn set_minimum_retry_delay(&self, seconds: u32) -> Result<()> {
        self.update(|rec| {
            state::modify(rec.state, "change")?;
            rec.minimum_retry_delay_s = seconds;
            // A shorter delay takes effect for a job already waiting to retry.
            if let Some(at) = rec.retry_at_ms {
                rec.retry_at_ms = Some(at.min(now_ms() + seconds as u64 * 1000));
            }
            Ok(())
        })?;
        self.wake_scheduler();
        Ok(())
    }

    pub fn set_no_progress_timeout(&self, seconds: u32) -> Result<()> {
        self.change(|rec| rec.no_progress_timeout_s = seconds)?;
        self.wake_scheduler();
        Ok(())
    }
}

/// Two local names are the same destination if they name the same entry of the same folder; the
/// folder is compared by device and inode, so `..`, `.` and symbolic links cannot disguise it.
fn same_destination(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    let folder = |p: &Path| {
        std::fs::metadata(p.parent()?)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    match (folder(a), folder(b)) {
        (Some(fa), Some(fb)) => fa == fb && a.file_name() == b.file_name(),
        _ => false,
    }
}

fn validate_remote(remote: &str) -> Result<url::Url> {
    let chars = remote.chars().count();
    if chars > job::MAX_REMOTE_URL_CHARS {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!(
                "remote URL has {chars} characters; the limit is {}",
                job::MAX_REMOTE_URL_CHARS
            ),
        ));
    }
    let url = url::Url::parse(remote)
        .map_err(|e| Error::new(hr::E_INVALIDARG, format!("malformed URL {remote:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::new(
                    hr::E_INVALIDARG,
                    format!("URL has no host: {remote}"),
                ));
            }
            // The request line must be expressible as an HTTP URI.
            url.as_str().parse::<hyper::Uri>().map_err(|e| {
                Error::new(
                    hr::E_INVALIDARG,
                    format!("URL cannot be requested: {remote}: {e}"),
                )
            })?;
        }
        "file" => {
            url.to_file_path().map_err(|_| {
                Error::new(
                    hr::E_INVALIDARG,
                    format!("file URL has no local path: {remote}"),
                )
            })?;
        }
        other => {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("unsupported protocol {other:?}: only http, https and file are supported"),
            ));
        }
    }
    Ok(url)
}

fn validate_local(local: &str) -> Result<PathBuf> {
    let path = Path::new(local);
    if !path.is_absolute() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name must be an absolute path: {local:?}"),
        ));
    }
    // Lexical normalisation, so "/a/./b" and "/a/b" count as the same destination.
    let norm: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if local.ends_with('/') || norm.is_dir() {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name is a folder: {local}"),
        ));
    }
    let Some(dir) = norm.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("local name has no folder: {local}"),
        ));
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND),
                format!("not a folder: {}", dir.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                HResult::from_win32(hr::win32::ERROR_PATH_NOT_FOUND),
                format!("the destination folder does not exist: {}", dir.display()),
            ))
        }
        Err(e) => return Err(Error::io("the destination folder is not usable:", dir, &e)),
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::new(hr::E_INVALIDARG, "local name contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(Error::new(
            hr::E_ACCESSDENIED,
            format!("no permission to write into {}", dir.display()),
        ));
    }
    Ok(norm)
}
