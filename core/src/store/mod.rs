//! Where job records live: `sqlite.rs` is the durable store every manager uses.
//!
//! Every write touches only what changed, so no call's cost grows with the number of files in its
//! job or of jobs in the queue:
//! - `insert`: a new job (one row, plus its files if it has any);
//! - `update_job`: the job's own row, after a property or state change;
//! - `append_files`: the job's row and its new files (a file set in one transaction);
//! - `update_files`: the job's row and the descriptive columns (names, temporary file, committed)
//!   of the named files;
//! - `checkpoint`: progress, for many files of many jobs in one transaction, and the rows of jobs
//!   the transfer engine finished (TRANSFERRED rides with the batch that made its files durable);
//! - `remove`: jobs that are settled;
//! - `set_setting`: one manager setting (rate limit, bandwidth schedule).
//!
//! Progress columns (bytes, size, validators, completed) are written only by `checkpoint` (which
//! also writes the temporary file's name, so starting a file costs no write of its own), whose
//! caller makes the bytes durable first: so nothing but a checkpoint can make the store claim data
//! the disk does not hold.

mod sqlite;

use crate::hresult::HResult;
use crate::job::{JobId, JobRecord};
pub use sqlite::SqliteStore;

/// A store failure: the HRESULT (disk full, corrupt database, …) and what happened.
pub type StoreError = (HResult, String);

/// Durable progress of one file: `bytes` are flushed to disk in the temporary file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub job: JobId,
    /// The job's creation order (`JobRecord::seq`): its key in the store.
    pub seq: u64,
    pub file: u32,
    pub bytes: u64,
    pub total: Option<u64>,
    pub etag: Option<Box<str>>,
    pub last_modified: Option<Box<str>>,
    /// The whole file is on disk (and flushed).
    pub completed: bool,
    /// The temporary file holding the bytes (a download's derived name reaches the store here,
    /// with the first checkpoint that needs it).
    pub temp: Option<Box<str>>,
    /// The job's state when the checkpoint was taken: a moving job's row shows it (QUEUED,
    /// CONNECTING and TRANSFERRING only; see `Store::checkpoint`).
    pub state: crate::state::JobState,
    /// The job's modification time (BITS counts transferred bytes as a modification).
    pub at_ms: u64,
}

pub trait Store: Send + Sync {
    /// Every job the store holds, as last written, in no particular order (`seq` is the
    /// creation order).
    fn load_all(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Adds a new job with its files (a fresh job has none).
    fn insert(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Writes the job's own row (every job-level field); its files are left alone.
    fn update_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Writes the job's row and appends `job.files[from..]`, atomically.
    fn append_files(&self, job: &JobRecord, from: usize) -> Result<(), StoreError>;
    /// Writes the job's row and, for each index in `files`, that file's remote and local names,
    /// temporary file, committed flag and upload session, atomically. Progress is left to
    /// `checkpoint`.
    fn update_files(&self, job: &JobRecord, files: &[usize]) -> Result<(), StoreError>;
    /// Forgets jobs, named by `JobRecord::seq` (they reached a final state and their files are
    /// settled), in one transaction.
    fn remove(&self, jobs: &[u64]) -> Result<(), StoreError>;
    /// Records the progress of many files (and, for a job whose stored state is QUEUED,
    /// CONNECTING or TRANSFERRING, the state of its newest checkpoint), and then the rows of
    /// `jobs` (job-level fields, as `update_job`), atomically (one record of the log). A row in
    /// `jobs` is written only if the stored one is not newer (its `modified_ms` is not later): a
    /// row the application's call wrote since stays.
    /// Checkpoints and rows of jobs or files that no longer exist are ignored.
    fn checkpoint(&self, points: &[Checkpoint], jobs: &[JobRecord]) -> Result<(), StoreError>;
    /// A manager setting kept in the state folder (None: never set).
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Keeps a manager setting (None: forgets it).
    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError>;
    /// Every write above is durable against a kill when it returns, but may wait in the store's
    /// log until this call moves it into the tables (`sqlite.rs`), which keeps the log short and
    /// lets many calls share one transaction. Blocks (one transaction);
    /// free when nothing waits.
    fn fold(&self) -> Result<(), StoreError>;
    /// `wake` is called (on the writer's thread, so it must be quick) when a write starts to
    /// wait for `fold` while none did, and again whenever what waits has grown by some megabytes
    /// (a fold is then due at once).
    fn on_unfolded(&self, wake: Box<dyn Fn() + Send + Sync>);
    /// Folds what waits, empties the log, and from then on refuses every write and leaves the
    /// files alone when dropped: the manager calls it while it still holds the state folder's
    /// lock, since a write after the lock is gone could land in another holder's files (a job,
    /// an `Events` handle or a leftover blocking task can keep the store alive past the
    /// manager). Blocks (one transaction and one sync).
    fn close(&self) -> Result<(), StoreError>;
}
