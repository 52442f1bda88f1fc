//! Where job records live. The manager writes through this interface on every change it must not
//! lose; the durable (SQLite) store implements the same trait.

use crate::hresult::HResult;
use crate::job::{JobId, JobRecord};
use parking_lot::Mutex;
use std::collections::HashMap;

pub trait Store: Send + Sync {
    /// Every job the store holds, as last saved.
    fn load_all(&self) -> Result<Vec<JobRecord>, (HResult, String)>;
    /// Insert or replace a job.
    fn save(&self, job: &JobRecord) -> Result<(), (HResult, String)>;
    /// Forget a job (it reached a final state and its files are settled).
    fn remove(&self, id: &JobId) -> Result<(), (HResult, String)>;
}

/// Keeps records in memory: jobs do not outlive the process.
#[derive(Default)]
pub struct MemoryStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
}

impl Store for MemoryStore {
    fn load_all(&self) -> Result<Vec<JobRecord>, (HResult, String)> {
        Ok(self.jobs.lock().values().cloned().collect())
    }
    fn save(&self, job: &JobRecord) -> Result<(), (HResult, String)> {
        self.jobs.lock().insert(job.id, job.clone());
        Ok(())
    }
    fn remove(&self, id: &JobId) -> Result<(), (HResult, String)> {
        self.jobs.lock().remove(id);
        Ok(())
    }
}
