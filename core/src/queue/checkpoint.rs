//! Durable progress, written in batches. The durability rule: the store never claims bytes the
//! disk does not hold, and a SIGKILL at any instant loses at most one checkpoint per file.
//!
//! The transfer engine hands over a checkpoint in one of two ways:
//! - already flushed (the pipelined fdatasync of a large download): the checkpoint waits here for
//!   the next batch;
//! - with the file still to flush (a file that just finished, or stopped): the batch flushes every
//!   such file first, with as few sync calls as the platform allows (`localfile::sync_batch`), so
//!   a thousand small files cost one syncfs and one commit instead of a thousand of each.
//!
//! A batch is written every `checkpoint_interval`, at once when a transfer reports its first
//! checkpoint (so a process that dies a second after starting still leaves progress behind), as
//! soon as a job becomes TRANSFERRED (its complete will need its files durable; its new row goes
//! in the same transaction as the checkpoints), as soon as `BATCH_FILES` checkpoints wait (files
//! finishing faster than the interval are synced as they pile up, while the transfers go on,
//! rather than all at once when the job ends and the application waits in complete), when
//! complete needs a job's files durable (`make_durable`), and whenever `write_now` is called.
//! Complete and cancel also leave their jobs here to retire: their folders are synced and their
//! rows deleted in the next batch, one sync per folder and one transaction for all of them.
//!
//! Batches asked for back to back start at least `GATHER` apart while transfers run. Without
//! that, a queue of one-file jobs finishing thousands a second, each completed as soon as it is
//! TRANSFERRED, cost a sync and a transaction per job or two; with it, one per few dozen jobs. A
//! batch asked for after a quiet spell (a first checkpoint), or when no transfer runs (no more
//! files are about to finish: the last batch of a queue, which its last complete waits for),
//! starts at once.

use super::Shared;
use crate::hresult as hr;
use crate::job::{JobId, JobRecord};
use crate::localfile;
use crate::store::{Checkpoint, Store, StoreError};
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::Notify;

/// Checkpoints waiting that start a batch before the interval ends.
const BATCH_FILES: usize = 64;

/// The least time from the end of one batch to the start of the next (see the module doc).
const GATHER: std::time::Duration = std::time::Duration::from_millis(3);

/// How long `make_durable` waits for the batch task before it writes the batch itself (the task
/// is gone once the manager is closed).
const TASK_ANSWERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long after an application's call (or a batch) its write waits in the store's log before
/// the batch task folds it into the tables (`Store::fold`): the writes of that time share one
/// transaction, and a job created and completed within it never reaches the tables at all (see
/// `store/sqlite/fold.rs`). The store asks for a fold at once when its log holds many bytes.
///
/// A second rather than a quarter: a fold inside a burst of calls (2,000 one-file jobs created,
/// moved and completed in 0.3 s) ran statements for jobs a later fold would have dropped, on the
/// cores the transfers needed (b of bench/many.sh, 9 alternating rounds: 0.323 s at 250 ms,
/// 0.287 s at 1 s). What waits is bounded by the store's own limit (4 MB), not by this time.
const FOLD_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Files the queue keeps open until their batch syncs them. Past this many, a file is closed at
/// once and its file system is synced whole (`syncfs`) through one file kept open on it: a batch
/// of two or more files syncs that way anyway (`localfile::SYNCFS_FROM`), so it needs one
/// descriptor per file system, not one per file (Linux; elsewhere every file is synced by itself
/// and stays open). Descriptors once piled up by the hundred while small files finished faster
/// than the batches (a process limited to 1,024 could run out), and each time the process's
/// descriptor table grew (past 64, 128, 256, ...) every thread that opened a file waited for an
/// RCU grace period (Linux's `expand_files`): in one traced run of bench/many.sh's b, 20 ms for
/// both transfer workers at once. 32 keeps the queue's own share under the first table's 64.
/// Not 1: the close (and the fstat that tells the file system) is the transfer workers' work,
/// where the batch thread did it before. A queue of one-file jobs gets a batch as each job
/// finishes (`job_row`), so its files rarely pass 32; a job of many small files closes the 33rd
/// to 64th of each batch (`BATCH_FILES`) early, and more only while a batch is slow.
const KEEP_OPEN: usize = 32;

/// A checkpoint, and how its data reaches the disk before it may be written.
struct Pending {
    point: Checkpoint,
    flush: Flush,
}

enum Flush {
    /// Already flushed (the pipelined fdatasync of a large download).
    Done,
    /// The file, open for its own sync.
    Open(File),
    /// Written and closed: the batch syncs its file system whole, through the file `Queue::whole`
    /// keeps open there.
    Closed,
}

/// Jobs in a final state whose rows wait to be deleted, and the folders their files were renamed
/// into (synced first).
#[derive(Default)]
struct Retiring {
    /// By `JobRecord::seq`, the store's key.
    jobs: Vec<u64>,
    dirs: HashSet<PathBuf>,
}

impl Retiring {
    fn add(
        &mut self,
        jobs: impl IntoIterator<Item = u64>,
        dirs: impl IntoIterator<Item = PathBuf>,
    ) {
        self.jobs.extend(jobs);
        self.dirs.extend(dirs);
    }
}

/// Checkpoints not yet in the store.
#[derive(Default)]
struct Queue {
    /// The newest checkpoint per file (a newer one replaces an older one, flush and all).
    pending: HashMap<(JobId, u32), Pending>,
    /// Job rows the engine changed (a job became TRANSFERRED), written after the checkpoints
    /// unless the application's own call wrote a newer row meanwhile.
    rows: HashMap<JobId, JobRecord>,
    /// The jobs of the batch being flushed and written.
    in_flight: Vec<JobId>,
    /// Files of `pending` held open (`Flush::Open`): at most `KEEP_OPEN` but after a failed batch
    /// (`put_back` returns its files on top), and every one where there is no syncfs.
    open: usize,
    /// One open file on each file system that `Flush::Closed` names.
    whole: Vec<(u64, File)>,
}

impl Queue {
    /// Adds `p`, replacing an older checkpoint of its file (flush and all), which it returns for
    /// the caller to drop (a file to close) once it has let go of the queue.
    fn insert(&mut self, p: Pending) -> Option<Pending> {
        self.open += usize::from(matches!(p.flush, Flush::Open(_)));
        let old = self.pending.insert((p.point.job, p.point.file), p);
        if let Some(Pending {
            flush: Flush::Open(_),
            ..
        }) = old
        {
            self.open -= 1;
        }
        old
    }

    /// Adds `p` unless its file has a newer checkpoint waiting.
    fn insert_if_absent(&mut self, p: Pending) {
        if let std::collections::hash_map::Entry::Vacant(v) =
            self.pending.entry((p.point.job, p.point.file))
        {
            self.open += usize::from(matches!(p.flush, Flush::Open(_)));
            v.insert(p);
        }
    }

    /// How `file` is to be flushed: kept open while fewer than `KEEP_OPEN` are, else closed with
    /// its file system remembered (one of its files kept open in `whole`). Returns the file to
    /// close, for the caller to drop once it has let go of the queue.
    fn flush_of(&mut self, file: File) -> (Flush, Option<File>) {
        if self.open < KEEP_OPEN {
            return (Flush::Open(file), None);
        }
        match localfile::syncfs_device(&file) {
            Some(dev) => (Flush::Closed, self.keep_whole(dev, file)),
            None => (Flush::Open(file), None),
        }
    }

    /// Keeps `file` open as the one through which file system `dev` is synced, unless one is
    /// kept already; then returns it, to close.
    fn keep_whole(&mut self, dev: u64, file: File) -> Option<File> {
        if self.whole.iter().any(|(d, _)| *d == dev) {
            return Some(file);
        }
        self.whole.push((dev, file));
        None
    }
}

/// Batches written so far, and the error of the newest with the jobs it held, if it failed.
type Written = (u64, Option<(StoreError, Vec<JobId>)>);

#[derive(Default)]
pub(crate) struct Checkpoints {
    /// Written by the transfer engine, drained by `write_now`.
    queue: Mutex<Queue>,
    /// Filled by complete and cancel, drained by `write_now`.
    retiring: Mutex<Retiring>,
    /// Held while a batch is flushed and written: when `write_now` returns, every batch taken
    /// before it was called is on disk.
    writing: Mutex<()>,
    /// Asks the task for a batch now.
    now: Notify,
    /// The last running transfer task ended (`Shared::transfers` fell to 0): a batch gathering
    /// files need not wait for more.
    transfers_ended: Notify,
    /// Waits to gather (tests).
    #[cfg(test)]
    gathered: std::sync::atomic::AtomicU64,
    /// The store's log holds writes to fold (`Store::on_unfolded`).
    pub(crate) fold: Arc<Notify>,
    /// Batches written so far, and, if the newest failed, its error and the jobs it held:
    /// `make_durable` waits on `batch_done` for the count to move.
    written: Mutex<Written>,
    batch_done: Condvar,
}

impl Checkpoints {
    /// Queues `point` for the next batch; `flush`, if given, is synced before it is written.
    /// `first`: the transfer's first checkpoint, written without waiting for the interval.
    pub(crate) fn record(&self, point: Checkpoint, flush: Option<File>, first: bool) {
        let (added, waiting, close) = {
            let mut q = self.queue.lock();
            let (flush, close) = match flush {
                Some(file) => q.flush_of(file),
                None => (Flush::Done, None),
            };
            let replaced = q.insert(Pending { point, flush });
            (replaced.is_none(), q.pending.len(), (close, replaced))
        };
        drop(close);
        // Each time BATCH_FILES more wait (see the module doc): not whenever they exceed it, or
        // each file finishing while a batch is written would ask for another.
        if first || (added && waiting % BATCH_FILES == 0) {
            self.now.notify_one();
        }
    }

    /// Makes every byte the engine handed over for `job` durable and recorded. Free when that is
    /// done already; otherwise asks the batch task for a batch and waits for one that holds the
    /// job (so completes that follow one another share batches), or writes the batch itself if
    /// the task does not answer. Blocks.
    pub(crate) fn make_durable(&self, job: &JobId, store: &dyn Store) -> Result<(), StoreError> {
        let mine = |q: &Queue| q.pending.keys().any(|(j, _)| j == job);
        loop {
            // `written` before the check: a batch that ends after it cannot notify unseen.
            let mut written = self.written.lock();
            {
                let q = self.queue.lock();
                if !mine(&q) && !q.in_flight.contains(job) {
                    return Ok(());
                }
            }
            let seen = written.0;
            self.now.notify_one();
            let _ =
                self.batch_done
                    .wait_while_for(&mut written, |w| w.0 == seen, TASK_ANSWERS_WITHIN);
            if written.0 == seen {
                drop(written);
                let _one_batch_at_a_time = self.writing.lock();
                if !mine(&self.queue.lock()) {
                    return Ok(());
                }
                return self.write(store);
            }
            // A batch that held the job failed before writing its checkpoints (they are back in
            // the queue); a batch that failed after them (retiring other jobs), or did not hold
            // it, says nothing about it, and the loop looks again.
            if let Some((e, held)) = &written.1 {
                if held.contains(job) && mine(&self.queue.lock()) {
                    return Err(e.clone());
                }
            }
        }
    }

    /// The engine finished the job (TRANSFERRED): `head`, its record without files, goes in the
    /// next batch rather than in a transaction of its own, and that batch comes now rather than
    /// at the end of the interval, since the application is likely to call complete, which needs
    /// the files durable. Batches follow one another, so jobs finishing while one is written
    /// share the next (one sync for all of them). What a crash before that batch loses
    /// is only the state change: the job reopens QUEUED with its files' checkpoints, and becomes
    /// TRANSFERRED again when the scheduler next gives it a slot (no byte is fetched again if its
    /// files' last checkpoints made it; a crash before those fetches what they did not cover).
    pub(crate) fn job_row(&self, head: JobRecord) {
        self.queue.lock().rows.insert(head.id, head);
        self.now.notify_one();
    }

    /// The last running transfer task ended: a gathering batch need not wait for more files.
    pub(crate) fn no_transfer_running(&self) {
        self.transfers_ended.notify_one();
    }

    /// Drops the waiting checkpoints of `job` (it is being cancelled: its files are deleted).
    pub(crate) fn forget(&self, job: &JobId) {
        let mut q = self.queue.lock();
        let mut closed = 0;
        q.pending.retain(|(j, _), p| {
            let keep = j != job;
            closed += usize::from(!keep && matches!(p.flush, Flush::Open(_)));
            keep
        });
        q.open -= closed;
        q.rows.remove(job);
    }

    /// The job (by `seq`) reached a final state: its row goes in the next batch, after `dirs`
    /// are synced.
    pub(crate) fn retire(&self, job: u64, dirs: Vec<PathBuf>) {
        self.retiring.lock().add([job], dirs);
    }

    /// Flushes and writes every waiting checkpoint, then retires the settled jobs. Blocks (file
    /// syncs and a transaction). On failure (disk full) what was not written waits for the next
    /// try, except where something newer arrived meanwhile: what the store holds stays true.
    pub(crate) fn write_now(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_batch_at_a_time = self.writing.lock();
        self.write(store)
    }

    /// `write_now`, with `writing` held by the caller.
    fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        let (batch, whole, rows) = {
            let mut q = self.queue.lock();
            debug_assert_eq!(
                q.open,
                q.pending
                    .values()
                    .filter(|p| matches!(p.flush, Flush::Open(_)))
                    .count()
            );
            let batch: Vec<Pending> = q.pending.drain().map(|(_, p)| p).collect();
            let rows: Vec<JobRecord> = q.rows.drain().map(|(_, r)| r).collect();
            q.in_flight = batch.iter().map(|p| p.point.job).collect();
            q.open = 0;
            (batch, std::mem::take(&mut q.whole), rows)
        };
        let retiring = std::mem::take(&mut *self.retiring.lock());
        let result = self.write_batch(store, batch, whole, rows, retiring);
        let held = std::mem::take(&mut self.queue.lock().in_flight);
        let mut written = self.written.lock();
        written.0 += 1;
        written.1 = result.as_ref().err().map(|e| (e.clone(), held));
        self.batch_done.notify_all();
        drop(written);
        result
    }

    fn write_batch(
        &self,
        store: &dyn Store,
        batch: Vec<Pending>,
        whole: Vec<(u64, File)>,
        rows: Vec<JobRecord>,
        retiring: Retiring,
    ) -> Result<(), StoreError> {
        let files: Vec<&File> = batch
            .iter()
            .filter_map(|p| match &p.flush {
                Flush::Open(f) => Some(f),
                _ => None,
            })
            .collect();
        let through: Vec<&File> = whole.iter().map(|(_, f)| f).collect();
        // The settled jobs' folders in the same sync: their renames happened before they were
        // handed over, so whatever makes the files durable now makes the renames durable too.
        let synced = localfile::sync_batch(&files, &through, &retiring.dirs);
        drop((files, through));
        if let Err(e) = synced {
            self.put_back(batch, whole, rows, retiring);
            return Err((
                hr::from_io(&e),
                format!("cannot flush downloaded data or a folder: {e}"),
            ));
        }
        // The files are flushed: their handles close here, and only the checkpoints remain.
        drop(whole);
        let points: Vec<Checkpoint> = batch.into_iter().map(|p| p.point).collect();
        if !points.is_empty() || !rows.is_empty() {
            if let Err(e) = store.checkpoint(&points, &rows) {
                let flushed = points.into_iter().map(|point| Pending {
                    point,
                    flush: Flush::Done,
                });
                self.put_back(flushed.collect(), Vec::new(), rows, retiring);
                return Err(e);
            }
        }
        if retiring.jobs.is_empty() {
            return Ok(());
        }
        let result = store.remove(&retiring.jobs);
        if result.is_err() {
            self.put_back(Vec::new(), Vec::new(), Vec::new(), retiring);
        }
        result
    }

    /// Puts what a failed batch held back, behind anything newer that arrived meanwhile.
    fn put_back(
        &self,
        batch: Vec<Pending>,
        whole: Vec<(u64, File)>,
        rows: Vec<JobRecord>,
        retiring: Retiring,
    ) {
        let mut q = self.queue.lock();
        for p in batch {
            q.insert_if_absent(p);
        }
        let extra: Vec<File> = whole
            .into_iter()
            .filter_map(|(dev, file)| q.keep_whole(dev, file))
            .collect();
        for r in rows {
            q.rows.entry(r.id).or_insert(r);
        }
        drop(q);
        drop(extra);
        self.retiring.lock().add(retiring.jobs, retiring.dirs);
    }
}

/// The batch writer: one `write_now` per interval, or sooner when asked (but `GATHER` after the
/// previous one); and a fold of the store's log `FOLD_AFTER` after a write reached it, or at once
/// when the store asks again meanwhile (its log grew large), but never sooner than `FOLD_AFTER`
/// after a fold that failed.
pub(crate) async fn run(shared: Arc<Shared>) {
    use tokio::time::{sleep_until, Instant};
    let c = &shared.checkpoints;
    let interval = shared.config.checkpoint_interval;
    let mut last_end: Option<Instant> = None;
    // Fixed across passes: folds and fold requests must not put the interval's batch off.
    let mut batch_at = Instant::now() + interval;
    let mut fold_at: Option<Instant> = None;
    let mut fold_not_before = Instant::now();
    loop {
        let fold_due = async {
            match fold_at {
                Some(t) => sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let fold = tokio::select! {
            _ = sleep_until(batch_at) => false,
            _ = c.now.notified() => false,
            _ = c.fold.notified() => {
                let now = Instant::now();
                let at = fold_at.map_or(now + FOLD_AFTER, |_| now);
                fold_at = Some(at.max(fold_not_before));
                continue;
            }
            _ = fold_due => true,
        };
        if fold {
            fold_at = None;
        } else if let Some(end) = last_end {
            // Gathering waits for files about to finish. With no transfer running none will: the
            // batch (most likely the one an application's complete waits for) starts now.
            let until = end + GATHER;
            while shared.transfers.load(Ordering::SeqCst) > 0 && Instant::now() < until {
                #[cfg(test)]
                c.gathered.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = sleep_until(until) => {}
                    _ = c.transfers_ended.notified() => {}
                }
            }
        }
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let s = shared.clone();
        // Syncs and SQLite block; keep them off the runtime's workers.
        let done = tokio::task::spawn_blocking(move || {
            if fold {
                s.store.fold()
            } else {
                s.checkpoints.write_now(&*s.store)
            }
        })
        .await;
        let now = Instant::now();
        if fold {
            // The records wait in the log (a full disk): try again later, not at once.
            if !matches!(done, Ok(Ok(()))) {
                fold_not_before = now + FOLD_AFTER;
                fold_at = Some(fold_not_before);
            }
        } else {
            last_end = Some(now);
            batch_at = now + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::job::FileRecord;
    use crate::queue::events::Dispatcher;
    use crate::state::{JobState, JobType};
    use crate::store::SqliteStore;

    /// `n` completes that each need a batch of their own, one after the other, while
    /// `transfers` transfer tasks run. Returns how long they took, how many batches were
    /// written and how many times the batch task waited to gather.
    fn back_to_back(n: u32, transfers: usize) -> (std::time::Duration, u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut rec = JobRecord::new(JobId::new_v4(), JobType::Download, "paced".into(), 1);
        rec.seq = 1;
        rec.files
            .push(FileRecord::new("http://h/x".into(), "/d/x".into()));
        store.save(&rec).unwrap();
        let shared = Arc::new(Shared::new(
            Config::default(),
            Box::new(store),
            vec![rec.clone()],
            Dispatcher::start().unwrap(),
        ));
        shared.transfers.store(transfers, Ordering::SeqCst);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.spawn(run(shared.clone()));
        let c = &shared.checkpoints;
        let batches_before = c.written.lock().0;
        let start = std::time::Instant::now();
        for i in 1..=n {
            let point = Checkpoint {
                job: rec.id,
                seq: rec.seq,
                file: 0,
                bytes: u64::from(i),
                total: Some(1 << 20),
                etag: None,
                last_modified: None,
                completed: false,
                temp: None,
                state: JobState::Transferring,
                at_ms: u64::from(i),
            };
            c.record(point, None, false);
            c.make_durable(&rec.id, &*shared.store).unwrap();
        }
        let took = start.elapsed();
        let batches = c.written.lock().0 - batches_before;
        shared.store.fold().unwrap();
        let stored = shared.store.load_all().unwrap();
        assert_eq!(stored[0].files[0].bytes_checkpointed, u64::from(n));
        shared.closed.store(true, Ordering::SeqCst);
        (took, batches, c.gathered.load(Ordering::SeqCst))
    }

    /// While transfers run, completes that each need a batch of their own get batches that
    /// start `GATHER` apart: n of them take at least (n - 1) × GATHER. Only a lower bound, which
    /// a correct pacing meets by construction (a sleep never ends early); without the pacing the
    /// same batches take a small fraction of it.
    #[test]
    fn batches_asked_for_back_to_back_start_gather_apart() {
        let n: u32 = 40;
        let (took, batches, gathered) = back_to_back(n, 1);
        // Each call needed its own batch (its checkpoint was not in the one before).
        assert!(batches >= u64::from(n), "{batches} batches for {n} calls");
        assert!(gathered > 0, "no batch waited to gather");
        assert!(
            took >= GATHER * (n - 1),
            "{n} batches back to back took {took:?}, less than {:?} apart",
            GATHER
        );
    }

    /// With no transfer running no file is about to finish: a batch asked for starts at once,
    /// however soon after the one before.
    #[test]
    fn with_no_transfer_running_a_batch_does_not_gather() {
        let n: u32 = 10;
        let (_, batches, gathered) = back_to_back(n, 0);
        assert!(batches >= u64::from(n), "{batches} batches for {n} calls");
        assert_eq!(
            gathered, 0,
            "batches waited to gather with no transfer running"
        );
    }

    /// Files waiting for a batch do not hold a descriptor each: past `KEEP_OPEN` they are closed,
    /// and their file system is synced whole through one file kept open on it; the batch still
    /// writes every checkpoint. (Small files finishing faster than the batches once held
    /// hundreds of descriptors, and could run a process out of them.)
    #[test]
    fn waiting_files_do_not_hold_a_descriptor_each() {
        use std::io::Write;
        let n = 200u32;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut rec = JobRecord::new(JobId::new_v4(), JobType::Download, "many".into(), 1);
        rec.seq = 1;
        for i in 0..n {
            let dest = dir.path().join(format!("f{i}"));
            rec.files.push(FileRecord::new(
                format!("http://h/f{i}"),
                dest.to_string_lossy().into(),
            ));
        }
        store.save(&rec).unwrap();
        let c = Checkpoints::default();
        let point = |job: JobId, i: u32, temp: &std::path::Path| Checkpoint {
            job,
            seq: rec.seq,
            file: i,
            bytes: 4,
            total: Some(4),
            etag: None,
            last_modified: None,
            completed: true,
            temp: Some(temp.to_string_lossy().into()),
            state: JobState::Transferring,
            at_ms: 2,
        };
        let written = |name: &str| {
            let temp = dir.path().join(name);
            let mut f = File::create(&temp).unwrap();
            f.write_all(b"0123").unwrap();
            (f, temp)
        };
        for i in 0..n {
            let (f, temp) = written(&format!("BIT{i}.tmp"));
            c.record(point(rec.id, i, &temp), Some(f), false);
        }
        // A newer checkpoint of a file held open replaces it, and a cancelled job's go: the count
        // of open files follows.
        let (f, temp) = written("BIT0.again.tmp");
        c.record(point(rec.id, 0, &temp), Some(f), false);
        let other = JobId::new_v4();
        for i in 0..3 {
            let (f, temp) = written(&format!("other{i}.tmp"));
            c.record(point(other, i, &temp), Some(f), false);
        }
        c.forget(&other);
        {
            let q = c.queue.lock();
            assert_eq!(q.pending.len(), n as usize);
            let held = q
                .pending
                .values()
                .filter(|p| matches!(p.flush, Flush::Open(_)))
                .count();
            assert_eq!(held, q.open);
            if cfg!(target_os = "linux") {
                assert!(q.open <= KEEP_OPEN, "{} files held open", q.open);
                assert_eq!(
                    q.whole.len(),
                    1,
                    "one file kept open on the one file system"
                );
            } else {
                assert_eq!(
                    q.open, n as usize,
                    "no syncfs: every file is synced by itself"
                );
            }
        }
        c.write_now(&store).unwrap();
        {
            let q = c.queue.lock();
            assert!(q.pending.is_empty() && q.whole.is_empty() && q.open == 0);
        }
        store.fold().unwrap();
        let stored = store.load_all().unwrap();
        assert!(stored[0]
            .files
            .iter()
            .all(|f| f.completed && f.bytes_checkpointed == 4));
    }
}
