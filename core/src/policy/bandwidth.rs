//! Token buckets: the rate limits the transfer engine consults after each write.
//!
//! A bucket holds at most one second of its rate (so no burst exceeds one second's worth) and may
//! go into debt: a writer takes the bytes it just wrote, and if that leaves the bucket below zero
//! it waits until the debt is paid. Writers that share a bucket take turns in the order they came
//! (a FIFO lock held while a writer pays its debt): without the queue, whichever writer's timer
//! fired first when a debt was paid wrote again, so a writer quick to come back could take nearly
//! every turn (`writers_sharing_a_bucket_take_turns` saw 10 MB, 65 KB, 10 MB). The rate is read at
//! every take, and a change clamps the debt to what the new rate pays in `MAX_WAIT`, so a new
//! limit governs transfers in flight within that.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
// tokio's clock (the system's monotonic clock, which tests may pause and advance).
use tokio::time::Instant;

/// The longest a writer sleeps before it looks at the bucket again: a limit changed (or lifted)
/// meanwhile takes effect within this.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(250);

/// A shared rate limit in bytes per second (0: none).
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    rate: AtomicU64,
    state: Mutex<Fill>,
    /// The writers waiting to pay for what they wrote, in the order they came (tokio's mutex
    /// grants its lock first-in first-out).
    turn: tokio::sync::Mutex<()>,
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

/// Charges `bytes` to each bucket in `buckets` in turn, and after each waits until that bucket is
/// out of debt, looking again at least every `MAX_WAIT` (limits may change meanwhile). A writer
/// waits its turn at a bucket behind the writers that came before it, and holds no bucket's turn
/// while it waits at another, so a job slowed by its own limit does not hold back the jobs it
/// shares the manager's with.
pub(crate) async fn pace(buckets: &[Option<&Bucket>], bytes: u64) {
    for bucket in buckets.iter().flatten() {
        if bucket.rate() == 0 {
            continue;
        }
        let _turn = bucket.turn.lock().await;
        let mut wait = bucket.take(bytes, Instant::now());
        while let Some(w) = wait {
            tokio::time::sleep(w.min(MAX_WAIT)).await;
            wait = bucket.owed(Instant::now());
        }
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

    /// Writers sharing a bucket, each of which writes `chunk` bytes, pays for them, and then
    /// thinks for its own time before it writes again: the bytes each moved in `secs`.
    async fn share(rate: u64, chunk: u64, think_ms: &[u64], secs: u64) -> Vec<u64> {
        let bucket = std::sync::Arc::new(Bucket::new(rate));
        let end = Instant::now() + Duration::from_secs(secs);
        let writers: Vec<_> = think_ms
            .iter()
            .map(|&ms| {
                let bucket = bucket.clone();
                tokio::spawn(async move {
                    let mut moved = 0;
                    while Instant::now() < end {
                        moved += chunk;
                        pace(&[Some(&bucket)], chunk).await;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    moved
                })
            })
            .collect();
        let mut moved = Vec::new();
        for w in writers {
            moved.push(w.await.unwrap());
        }
        moved
    }

    /// A writer that is quick to write again gets no more than its share: writers that think
    /// for 0, 1 and 3 ms between chunks each move a third of the rate, within a chunk or two.
    #[tokio::test(start_paused = true)]
    async fn writers_sharing_a_bucket_take_turns() {
        let (rate, chunk) = (1_000_000, 64 * 1024);
        let moved = share(rate, chunk, &[0, 1, 3], 20).await;
        let total: u64 = moved.iter().sum();
        for &m in &moved {
            assert!(
                m.abs_diff(total / 3) <= 2 * chunk,
                "{moved:?}: not a third each of {total}"
            );
        }
        assert!(
            total.abs_diff(20 * rate) <= 4 * chunk,
            "{total} bytes in 20 s at {rate}"
        );
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
