//! Per-origin manners: a cap on the transfers to one origin at once (over every job and file of
//! the manager), a cap on the TCP connections open to it (`Connections`, taken by the connection
//! pools' connectors), and the "not before" time an origin asked for with Retry-After.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest Retry-After honoured: a server may ask for a pause, not for a job's lifetime.
pub(crate) const MAX_RETRY_AFTER_MS: u64 = 6 * 3600 * 1000;
/// The shortest pause a Retry-After makes (`pause_ms`): 2 s (as short as the shortest pauses
/// servers ask for in practice, 1-2 s, so an explicit value is never lengthened), or the job's
/// minimum retry delay if that is shorter, but never under 1 s.
pub(crate) const RETRY_AFTER_FLOOR_MS: u64 = 2000;
pub(crate) const RETRY_AFTER_LEAST_MS: u64 = 1000;

/// How long a job (and every job's new transfers to the origin) waits after a 429 or 503 that
/// said Retry-After `told_ms` (already bounded by `MAX_RETRY_AFTER_MS`).
///
/// `Retry-After: 0`, or a date already past, parses to 0 ms; taken as it is, a server that
/// answers every request that way would get them in a tight loop. So the pause is at least
/// `RETRY_AFTER_FLOOR_MS`, or the job's own minimum retry delay where the application chose a
/// shorter one (it asked for quick retries, and a server saying "now" agrees), and never under
/// `RETRY_AFTER_LEAST_MS`: one request a second is the most a busy server gets from a job.
pub(crate) fn pause_ms(told_ms: u64, min_retry_delay_ms: u64) -> u64 {
    let floor = min_retry_delay_ms.clamp(RETRY_AFTER_LEAST_MS, RETRY_AFTER_FLOOR_MS);
    told_ms.max(floor)
}

#[derive(Debug, Default)]
pub(crate) struct Hosts {
    /// Origin (scheme://host:port) -> its permits and its "not before" time (ms since the epoch).
    origins: Mutex<HashMap<String, Origin>>,
    /// Connections per origin: a second set of semaphores, apart from the transfer permits. A
    /// transfer may wait here while it holds a transfer permit, but a connection permit is held
    /// only by an open connection, which waits for no permit of either set (an idle one closes
    /// within the pools' idle timeout), so the two sets cannot deadlock.
    connections: Arc<Connections>,
}

/// The connection permits of every origin: one is held by each open connection (idle kept-alive
/// ones included) for as long as its socket is open. Shared by `Hosts` and the connectors of the
/// pools (`http::client::Capped`), which outlive no manager but are built apart from it.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    /// Origin (scheme://host:port, the port always written) -> its connection permits.
    origins: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Connections {
    /// Waits for one of the origin's `limit` connection permits; dropping it gives it back.
    /// (None only if the semaphore were closed, which nothing does.)
    pub(crate) async fn permit(&self, origin: &str, limit: usize) -> Option<OwnedSemaphorePermit> {
        let permits = self
            .origins
            .lock()
            .entry(origin.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))))
            .clone();
        permits.acquire_owned().await.ok()
    }
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

    /// The connection permits, for the pools' connectors.
    pub(crate) fn connections(&self) -> Arc<Connections> {
        self.connections.clone()
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

#[cfg(test)]
mod tests {
    use super::pause_ms;

    #[test]
    fn a_retry_after_of_zero_or_past_still_pauses() {
        // Retry-After: 0 (or a past date) with BITS's default 600 s retry delay: 2 s.
        assert_eq!(pause_ms(0, 600_000), 2000);
        assert_eq!(pause_ms(1000, 600_000), 2000);
        // The application asked for 1.5 s retries: 1.5 s.
        assert_eq!(pause_ms(0, 1500), 1500);
        // ...or for none at all: still 1 s, not a tight loop.
        assert_eq!(pause_ms(0, 0), 1000);
        assert_eq!(pause_ms(300, 0), 1000);
        // A longer Retry-After is honoured as said.
        assert_eq!(pause_ms(7000, 600_000), 7000);
        assert_eq!(pause_ms(7000, 0), 7000);
        assert_eq!(pause_ms(2000, 600_000), 2000);
    }
}
