//! The limits the transfer engine and the scheduler consult: rate limits (`bandwidth`).
//!
//! Layer 2 beside `queue`: `Shared` holds the manager's limits, and a job's running task holds its
//! own bucket (`queue::Runner`).

pub(crate) mod bandwidth;

use crate::state::Priority;
use bandwidth::Bucket;

/// The manager's rate limits for background jobs (FOREGROUND jobs are exempt, as in BITS).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// The manager-wide limit: every background job together.
    pub(crate) manager: Bucket,
}

impl Limits {
    /// The shared buckets a job of `priority` draws from.
    pub(crate) fn for_priority(&self, priority: Priority) -> Option<&Bucket> {
        (priority != Priority::Foreground).then_some(&self.manager)
    }
}
