//! Token buckets: the rate limits the transfer engine consults after each write.
//!
//! A bucket holds at most one second of its rate (so no burst exceeds one second's worth) and may
//! go into debt: a writer takes the bytes it just wrote, and if that leaves the bucket below zero
//! it waits until the debt is paid. Writers that share a bucket share its rate, because each one's
//! debt is there for the next. The rate is read at every take, and a change clamps the debt to
//! what the new rate pays in `MAX_WAIT`, so a new limit governs transfers in flight within that.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a writer sleeps before it looks at the bucket again: a limit changed (or lifted)
/// meanwhile takes effect within this.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(250);

/// A shared rate limit in bytes per second (0: none).
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    rate: AtomicU64,
    state: Mutex<Fill>,
}

#[derive(Debug, Default)]
struct Fill {
    /// Bytes that may pass now; negative: bytes owed.
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new(rate: u64) -> Bucket {
        let b = Bucket::default();
        b.set_rate(rate);
        b
    }

    pub(crate) fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Sets the rate (0: none). A debt larger than what the new rate pays in `MAX_WAIT` is
    /// forgiven, so raising or lifting a limit is felt at once.
    pub(crate) fn set_rate(&self, rate: u64) {
        let mut fill = self.state.lock();
        self.rate.store(rate, Ordering::Relaxed);
        let floor = -(rate as f64) * MAX_WAIT.as_secs_f64();
        fill.tokens = fill.tokens.max(floor).min(rate as f64);
    }

    /// Charges `bytes` (just written) and returns how long the writer should wait before its next
    /// write, if at all.
    pub(crate) fn take(&self, bytes: u64, now: Instant) -> Option<Duration> {
        let rate = self.rate();
        if rate == 0 {
            return None;
        }
        let mut fill = self.state.lock();
        refill(&mut fill, rate, now);
        fill.tokens -= bytes as f64;
        debt(&fill, rate)
    }

    /// How long until the bucket is out of debt (None: it is, or there is no limit).
    pub(crate) fn owed(&self, now: Instant) -> Option<Duration> {
        let rate = self.rate();
        if rate == 0 {
            return None;
        }
        let mut fill = self.state.lock();
        refill(&mut fill, rate, now);
        debt(&fill, rate)
    }
}

fn refill(fill: &mut Fill, rate: u64, now: Instant) {
    let elapsed = fill
        .at
        .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
    fill.tokens = (fill.tokens + elapsed * rate as f64).min(rate as f64);
    fill.at = Some(now);
}

fn debt(fill: &Fill, rate: u64) -> Option<Duration> {
    (fill.tokens < 0.0).then(|| Duration::from_secs_f64(-fill.tokens / rate as f64))
}

/// Charges `bytes` to every bucket in `buckets` and waits until all of them are out of debt,
/// looking again at least every `MAX_WAIT` (limits may change meanwhile).
pub(crate) async fn pace(buckets: &[Option<&Bucket>], bytes: u64) {
    let now = Instant::now();
    let mut wait = buckets
        .iter()
        .flatten()
        .filter_map(|b| b.take(bytes, now))
        .max();
    while let Some(w) = wait {
        tokio::time::sleep(w.min(MAX_WAIT)).await;
        let now = Instant::now();
        wait = buckets.iter().flatten().filter_map(|b| b.owed(now)).max();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated writers against one bucket: the bytes that pass in any window follow the rate.
    fn simulate(rate: u64, chunk: u64, writers: usize, secs: u64) -> Vec<u64> {
        let b = Bucket::new(rate);
        let start = Instant::now();
        let mut next = vec![start; writers];
        let mut per_second = vec![0u64; secs as usize];
        loop {
            // The writer whose turn comes first writes a chunk at that instant.
            let (i, &at) = next.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            let s = at.duration_since(start).as_secs();
            if s >= secs {
                return per_second;
            }
            per_second[s as usize] += chunk;
            next[i] = at + b.take(chunk, at).unwrap_or(Duration::ZERO);
            if next[i] == at {
                // No debt: the writer is limited by nothing but its own pace (1 ms per chunk).
                next[i] = at + Duration::from_millis(1);
            }
        }
    }

    #[test]
    fn average_rate_follows_the_limit_for_one_and_many_writers() {
        for writers in [1, 2, 5] {
            let rate = 4_000_000;
            let seconds = simulate(rate, 64 * 1024, writers, 12);
            // After the first second (which may hold the initial burst), every 5 s window is
            // within 5% of the rate, and no second exceeds two seconds' worth (burst + rate).
            for w in seconds[1..].windows(5) {
                let avg = w.iter().sum::<u64>() as f64 / 5.0;
                assert!(
                    (avg / rate as f64 - 1.0).abs() < 0.05,
                    "{writers} writers: {avg}"
                );
            }
            assert!(
                seconds.iter().all(|&s| s <= 2 * rate + 64 * 1024),
                "{seconds:?}"
            );
        }
    }

    #[test]
    fn no_limit_no_wait_and_a_change_clamps_the_debt() {
        let b = Bucket::new(0);
        let now = Instant::now();
        assert_eq!(b.take(u64::MAX / 2, now), None);
        b.set_rate(1000);
        // A huge write at a small rate owes a long time...
        assert!(b.take(1_000_000, now).unwrap() > Duration::from_secs(900));
        // ...until the limit is raised: the debt is cut to MAX_WAIT at the new rate.
        b.set_rate(10_000_000);
        assert!(b.owed(now).unwrap() <= MAX_WAIT);
        b.set_rate(0);
        assert_eq!(b.owed(now), None);
    }
}
