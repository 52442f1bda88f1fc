//! Per-origin manners: a cap on the transfers to one origin at once (over every job and file of
//! the manager), and the "not before" time an origin asked for with Retry-After.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest Retry-After honoured: a server may ask for a pause, not for a job's lifetime.
pub(crate) const MAX_RETRY_AFTER_MS: u64 = 6 * 3600 * 1000;

#[derive(Debug, Default)]
pub(crate) struct Hosts {
    /// Origin (scheme://host:port) -> its permits and its "not before" time (ms since the epoch).
    origins: Mutex<HashMap<String, Origin>>,
}

#[derive(Debug)]
struct Origin {
    permits: Arc<Semaphore>,
    not_before_ms: u64,
    /// The HTTP status that asked for the pause (429 or 503).
    status: u16,
}

impl Hosts {
    fn with<R>(&self, origin: &str, limit: usize, f: impl FnOnce(&mut Origin) -> R) -> R {
        let mut map = self.origins.lock();
        let o = map.entry(origin.to_string()).or_insert_with(|| Origin {
            permits: Arc::new(Semaphore::new(limit.max(1))),
            not_before_ms: 0,
            status: 0,
        });
        f(o)
    }

    /// Waits for one of the origin's `limit` transfer permits; dropping it gives it back. (None
    /// only if the semaphore were closed, which nothing does.)
    pub(crate) async fn permit(&self, origin: &str, limit: usize) -> Option<OwnedSemaphorePermit> {
        let permits = self.with(origin, limit, |o| o.permits.clone());
        permits.acquire_owned().await.ok()
    }

    /// The origin asked, with `status`, for no request before `until_ms` (a 429 or 503 with
    /// Retry-After).
    pub(crate) fn hold_off(&self, origin: &str, limit: usize, until_ms: u64, status: u16) {
        self.with(origin, limit, |o| {
            if until_ms > o.not_before_ms {
                (o.not_before_ms, o.status) = (until_ms, status);
            }
        });
    }

    /// When the origin may be asked again and the status that asked for the pause, if the
    /// pause is not over at `now_ms`.
    pub(crate) fn not_before(&self, origin: &str, now_ms: u64) -> Option<(u64, u16)> {
        let map = self.origins.lock();
        map.get(origin)
            .filter(|o| o.not_before_ms > now_ms)
            .map(|o| (o.not_before_ms, o.status))
    }
}
