//! The limits the transfer engine and the scheduler consult: rate limits (`bandwidth`), and
//! per-origin permits and Retry-After pauses (`hosts`).
//!
//! Layer 2 beside `queue`: `Shared` holds the manager's limits, and a job's running task holds its
//! own bucket (`queue::Runner`).

pub(crate) mod bandwidth;
pub(crate) mod hosts;

use crate::state::Priority;
use bandwidth::Bucket;

/// The manager's rate limits for background jobs (FOREGROUND jobs are exempt, as in BITS).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// The manager-wide limit: every background job together.
    pub(crate) manager: Bucket,
    /// The bandwidth schedule's limits in force, HIGH, NORMAL, LOW: the jobs of a priority
    /// together. Set by the scheduler's passes.
    pub(crate) by_priority: [Bucket; 3],
    /// Transfers per origin, and the pauses origins asked for.
    pub(crate) hosts: hosts::Hosts,
}

impl Limits {
    /// The shared buckets a job of `priority` draws from.
    pub(crate) fn for_priority(&self, priority: Priority) -> [Option<&Bucket>; 2] {
        match priority_index(priority) {
            Some(i) => [Some(&self.manager), Some(&self.by_priority[i])],
            None => [None, None],
        }
    }
}

/// HIGH 0, NORMAL 1, LOW 2: a background priority's place in the schedule's limits.
pub(crate) fn priority_index(priority: Priority) -> Option<usize> {
    match priority {
        Priority::Foreground => None,
        Priority::High => Some(0),
        Priority::Normal => Some(1),
        Priority::Low => Some(2),
    }
}
