//! Where job records live: `sqlite.rs` is the durable store every manager uses. The manager writes
//! a whole record through `save` on every change it must not lose; the transfer engine records
//! progress through `checkpoint`, in batches.

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
    pub file: u32,
    pub bytes: u64,
    pub total: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The job's modification time (BITS counts transferred bytes as a modification).
    pub at_ms: u64,
}

pub trait Store: Send + Sync {
    /// Every job the store holds, as last saved, in creation order.
    fn load_all(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// Inserts or replaces a job, atomically.
    fn save(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Forgets a job (it reached a final state and its files are settled).
    fn remove(&self, id: &JobId) -> Result<(), StoreError>;
    /// Records the progress of many files in one transaction. Checkpoints of jobs or files that no
    /// longer exist are ignored.
    fn checkpoint(&self, points: &[Checkpoint]) -> Result<(), StoreError>;
}
