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
//! A one-file job's file that finished without a name (`Sink::open_unnamed`) is flushed by its
//! batch like any other, but neither it nor the job's new row is written then: the batch holds
//! the open file (`Held`) for `HOLD`, for complete to link straight to its destination
//! (`take_held`). A batch that starts after that, or the last one at close, names it and writes
//! both. The store never names a file that has no name, so a crash before then loses that
//! file's one checkpoint, as it would a file's last one.
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

/// How long a flushed unnamed file waits for complete before a batch names and records it (see
/// the module doc). Long enough for an application that completes each job as it becomes
/// TRANSFERRED to get there first, short against the checkpoint interval: what a crash loses
/// meanwhile is the file's one checkpoint.
const HOLD: std::time::Duration = std::time::Duration::from_millis(20);

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

/// Unnamed files (waiting for their batch, or held for complete) the queue keeps open, all files
/// it keeps open counted. Past it a finished unnamed file is named at once and handed over as any
/// other. More than `KEEP_OPEN`: an unnamed file cannot be closed early (closing it deletes it),
/// and what waits is bounded by time (a batch, then `HOLD`) more than by count. In bench/many.sh's
/// b (one-file jobs finishing ten a millisecond while the application is still creating the
/// rest, so none is completed for the first 50 ms) the queue peaked at 176-192 open files, about
/// 150 of them held. Capped at 32 (`KEEP_OPEN`) b took 0.208 s against 0.188 s uncapped, at 128
/// 0.194 s (10 alternating rounds): the files past the cap are named on the transfer's path and
/// renamed at complete. 256 is a quarter of the usual 1,024-descriptor limit.
const KEEP_UNNAMED: usize = 256;

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
    /// A finished file with no name yet: synced like `Open`, then held (`Held`), not written.
    Unnamed(File),
}

/// A one-file job's finished unnamed file, flushed, waiting for complete (see the module doc):
/// its checkpoint and the job's newest row, written once a batch has named it.
pub(crate) struct Held {
    pub(crate) point: Checkpoint,
    pub(crate) file: File,
    row: Option<JobRecord>,
    since: std::time::Instant,
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
    /// Files of `pending` held open (`Flush::Open`, `Flush::Unnamed`): with `held`, at most
    /// `KEEP_OPEN` but after a failed batch (`put_back` returns its files on top), and every one
    /// where there is no syncfs.
    open: usize,
    /// One open file on each file system that `Flush::Closed` names.
    whole: Vec<(u64, File)>,
    /// Flushed unnamed files waiting for complete, by job (one file each).
    held: HashMap<JobId, Held>,
    /// Folders where files were given names since the last batch (`give_back`): synced with it.
    named_in: HashSet<PathBuf>,
}

/// True for a flush that keeps its file open in the queue.
fn holds_open(f: &Flush) -> bool {
    matches!(f, Flush::Open(_) | Flush::Unnamed(_))
}

impl Queue {
    /// Open files the queue keeps: waiting (`open`) and held.
    fn descriptors(&self) -> usize {
        self.open + self.held.len()
    }

    /// Adds `p`, replacing an older checkpoint of its file (flush and all), which it returns for
    /// the caller to drop (a file to close) once it has let go of the queue.
    fn insert(&mut self, p: Pending) -> Option<Pending> {
        self.open += usize::from(holds_open(&p.flush));
        let old = self.pending.insert((p.point.job, p.point.file), p);
        if old.as_ref().is_some_and(|o| holds_open(&o.flush)) {
            self.open -= 1;
        }
        old
    }

    /// Adds `p` unless its file has a newer checkpoint waiting.
    fn insert_if_absent(&mut self, p: Pending) {
        if let std::collections::hash_map::Entry::Vacant(v) =
            self.pending.entry((p.point.job, p.point.file))
        {
            self.open += usize::from(holds_open(&p.flush));
            v.insert(p);
        }
    }

    /// How `file` is to be flushed: kept open while fewer than `KEEP_OPEN` are, else closed with
    /// its file system remembered (one of its files kept open in `whole`). Returns the file to
    /// close, for the caller to drop once it has let go of the queue.
    fn flush_of(&mut self, file: File) -> (Flush, Option<File>) {
        if self.descriptors() < KEEP_OPEN {
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
        self.add(
            point,
            |q| match flush {
                Some(file) => q.flush_of(file),
                None => (Flush::Done, None),
            },
            first,
        );
    }

    /// Queues the checkpoint of a one-file job's file that finished unnamed (`file`, which is all
    /// there is of it): flushed by the next batch, then held for complete (see the module doc).
    pub(crate) fn record_unnamed(&self, point: Checkpoint, file: File) {
        self.add(point, |_| (Flush::Unnamed(file), None), false);
    }

    fn add(
        &self,
        point: Checkpoint,
        flush: impl FnOnce(&mut Queue) -> (Flush, Option<File>),
        first: bool,
    ) {
        let (added, waiting, close) = {
            let mut q = self.queue.lock();
            let (flush, close) = flush(&mut q);
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
                return self.write(store, false);
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

    /// Drops the waiting checkpoints of `job`, and its held file (it is being cancelled: its files
    /// are deleted).
    pub(crate) fn forget(&self, job: &JobId) {
        // A batch that took the job's files ends first: it could hold one of them, unnamed, and
        // name it later, a temporary file nobody would delete. Checked and forgotten under one
        // lock of the queue, so no batch takes them in between.
        let mut written = self.written.lock();
        let mut q = loop {
            let q = self.queue.lock();
            if !q.in_flight.contains(job) {
                break q;
            }
            drop(q);
            let _ = self.batch_done.wait_for(&mut written, TASK_ANSWERS_WITHIN);
        };
        drop(written);
        let mut closed = 0;
        q.pending.retain(|(j, _), p| {
            let keep = j != job;
            closed += usize::from(!keep && holds_open(&p.flush));
            keep
        });
        q.open -= closed;
        q.rows.remove(job);
        let held = q.held.remove(job);
        drop(q);
        drop(held);
    }

    /// Whether a file that finished unnamed may wait so (`record_unnamed`): its descriptor stays
    /// open until complete or a batch names it, and the queue keeps at most `KEEP_UNNAMED`. If
    /// not, the engine names it and hands it over as any other file.
    pub(crate) fn can_hold(&self) -> bool {
        self.queue.lock().descriptors() < KEEP_UNNAMED
    }

    /// Whether the job's unnamed file is held, or waits for its batch to flush and hold it, or a
    /// batch has the job (it may be naming the file).
    pub(crate) fn holds(&self, job: &JobId) -> bool {
        let q = self.queue.lock();
        q.held.contains_key(job)
            || q.in_flight.contains(job)
            || q.pending
                .iter()
                .any(|((j, _), p)| j == job && matches!(p.flush, Flush::Unnamed(_)))
    }

    /// Takes the job's flushed unnamed file (see the module doc), if a batch holds it: complete
    /// links it to its destination, or names it and hands it back (`give_back`). Call after
    /// `make_durable`; None also when a batch is naming it (`make_durable` again waits for that).
    pub(crate) fn take_held(&self, job: &JobId) -> Option<Held> {
        self.queue.lock().held.remove(job)
    }

    /// Hands back a file `take_held` gave, now named: the next batch syncs its folder and writes
    /// its checkpoint (its data is durable already) and the job's row.
    pub(crate) fn give_back(&self, held: Held) {
        let folder = held
            .point
            .temp
            .as_deref()
            .and_then(|t| std::path::Path::new(t).parent().map(PathBuf::from));
        let mut q = self.queue.lock();
        q.named_in.extend(folder);
        if let Some(row) = held.row {
            q.rows.entry(row.id).or_insert(row);
        }
        let old = q.insert(Pending {
            point: held.point,
            flush: Flush::Done,
        });
        drop(q);
        drop(old);
    }

    /// Returns an unnamed file `take_held` gave, still unnamed (it could not be named).
    pub(crate) fn hold_again(&self, mut held: Held) {
        held.since = std::time::Instant::now();
        self.queue.lock().held.insert(held.point.job, held);
    }

    /// When the oldest held file's wait ends (the batch task starts a batch then).
    pub(crate) fn held_due(&self) -> Option<std::time::Instant> {
        self.queue
            .lock()
            .held
            .values()
            .map(|h| h.since + HOLD)
            .min()
    }

    /// The job (by `seq`) reached a final state: its row goes in the next batch, after `dirs`
    /// are synced.
    pub(crate) fn retire(&self, job: u64, dirs: Vec<PathBuf>) {
        self.retiring.lock().add([job], dirs);
    }

    /// Flushes and writes every waiting checkpoint, then retires the settled jobs. Blocks (file
    /// syncs and a transaction). On failure (disk full) what was not written waits for the next
    /// try, except where something newer arrived meanwhile: what the store holds stays true.
    /// Every held unnamed file is named and written too (close).
    pub(crate) fn write_now(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_batch_at_a_time = self.writing.lock();
        self.write(store, false)
    }

    /// `write_now` for the batch task: held files wait out their `HOLD`.
    fn write_pass(&self, store: &dyn Store) -> Result<(), StoreError> {
        let _one_batch_at_a_time = self.writing.lock();
        self.write(store, true)
    }

    /// `write_now`, with `writing` held by the caller. `hold`: leave held files younger than
    /// `HOLD` held.
    fn write(&self, store: &dyn Store, hold: bool) -> Result<(), StoreError> {
        let now = std::time::Instant::now();
        let (mut batch, whole, mut rows, due, mut named_in) = {
            let mut q = self.queue.lock();
            debug_assert_eq!(
                q.open,
                q.pending.values().filter(|p| holds_open(&p.flush)).count()
            );
            let batch: Vec<Pending> = q.pending.drain().map(|(_, p)| p).collect();
            let rows: Vec<JobRecord> = q.rows.drain().map(|(_, r)| r).collect();
            let due: Vec<JobId> = q
                .held
                .iter()
                .filter(|(_, h)| !hold || now >= h.since + HOLD)
                .map(|(id, _)| *id)
                .collect();
            let due: Vec<Held> = due.iter().filter_map(|id| q.held.remove(id)).collect();
            q.in_flight = batch.iter().map(|p| p.point.job).collect();
            q.in_flight.extend(due.iter().map(|h| h.point.job));
            q.open = 0;
            let named_in = std::mem::take(&mut q.named_in);
            (batch, std::mem::take(&mut q.whole), rows, due, named_in)
        };
        // Held files whose wait is over get their names now; the batch syncs their folders and
        // writes their checkpoints. One that cannot be named (a full folder) stays held for the
        // next batch: its data is there, only its name is missing.
        for h in due {
            if name_held(&h.file, &h.point, &mut named_in) {
                // Unless a newer row of the job came meanwhile.
                if let Some(row) = h.row.filter(|r| rows.iter().all(|n| n.id != r.id)) {
                    rows.push(row);
                }
                batch.push(Pending {
                    point: h.point,
                    flush: Flush::Done,
                });
            } else {
                self.hold_again(h);
            }
        }
        if !hold {
            // Nothing waits past this batch (close): unnamed files get their names now (one
            // that cannot is flushed and held, as above).
            for p in &mut batch {
                let named = matches!(&p.flush,
                    Flush::Unnamed(file) if name_held(file, &p.point, &mut named_in));
                if named {
                    if let Flush::Unnamed(file) = std::mem::replace(&mut p.flush, Flush::Done) {
                        p.flush = Flush::Open(file);
                    }
                }
            }
        }
        let mut retiring = std::mem::take(&mut *self.retiring.lock());
        retiring.dirs.extend(named_in);
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
                Flush::Open(f) | Flush::Unnamed(f) => Some(f),
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
        // The files are flushed: their handles close here, and only the checkpoints remain, but
        // for the unnamed files, which wait for complete with their jobs' rows.
        drop(whole);
        let (points, rows) = self.hold_unnamed(batch, rows);
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

    /// Splits a flushed batch: the unnamed files (and the rows of their jobs) are held, the rest
    /// is to be written.
    fn hold_unnamed(
        &self,
        batch: Vec<Pending>,
        rows: Vec<JobRecord>,
    ) -> (Vec<Checkpoint>, Vec<JobRecord>) {
        let since = std::time::Instant::now();
        let mut points = Vec::with_capacity(batch.len());
        let mut q = self.queue.lock();
        for p in batch {
            match p.flush {
                Flush::Unnamed(file) => {
                    let held = Held {
                        point: p.point,
                        file,
                        row: None,
                        since,
                    };
                    q.held.insert(held.point.job, held);
                }
                _ => points.push(p.point),
            }
        }
        let rows = rows
            .into_iter()
            .filter_map(|r| match q.held.get_mut(&r.id) {
                Some(h) => {
                    h.row = Some(r);
                    None
                }
                None => Some(r),
            })
            .collect();
        (points, rows)
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

/// Gives an unnamed file the temporary name its checkpoint records, and notes the folder, whose
/// new entry the batch syncs. False if it cannot be named.
fn name_held(file: &File, point: &Checkpoint, named_in: &mut HashSet<PathBuf>) -> bool {
    let Some(temp) = point.temp.as_deref().map(std::path::Path::new) else {
        return false;
    };
    if localfile::name_unnamed(file, temp).is_err() {
        return false;
    }
    named_in.extend(temp.parent().map(PathBuf::from));
    true
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
                s.checkpoints.write_pass(&*s.store)
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
            // Held unnamed files are named by the first batch after their wait.
            if let Some(due) = c.held_due() {
                batch_at = batch_at.min(Instant::from_std(due));
            }
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

    /// A one-file job's file finished unnamed: the batch that flushes it writes neither its
    /// checkpoint nor the job's row and holds the file; complete can take it and link it to its
    /// destination. Left alone, the first batch after `HOLD` names it and writes both; at close
    /// (`write_now`) it is named at once. The store never names a file that is not there.
    #[test]
    #[cfg(target_os = "linux")]
    fn unnamed_files_are_held_for_complete_then_named_and_written() {
        use crate::localfile::Sink;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let store = SqliteStore::open(&state).unwrap();
        let c = Checkpoints::default();
        let seq = std::sync::atomic::AtomicU64::new(1);
        // One-file jobs, each with a finished unnamed file and the row saying TRANSFERRED.
        let job = |name: &str| {
            let dest = dir.path().join(name);
            let temp = dir.path().join(format!("BIT{name}.tmp"));
            let mut rec = JobRecord::new(JobId::new_v4(), JobType::Download, name.into(), 1);
            rec.files.push(FileRecord::new(
                format!("http://h/{name}"),
                dest.to_string_lossy().into(),
            ));
            rec.seq = seq.fetch_add(1, Ordering::SeqCst);
            rec.state = JobState::Queued;
            store.save(&rec).unwrap();
            let mut sink = Sink::open_unnamed(&temp).unwrap().unwrap();
            sink.write(name.as_bytes()).unwrap();
            let point = Checkpoint {
                job: rec.id,
                seq: rec.seq,
                file: 0,
                bytes: name.len() as u64,
                total: Some(name.len() as u64),
                etag: None,
                last_modified: None,
                completed: true,
                temp: Some(temp.to_string_lossy().into()),
                state: JobState::Transferring,
                at_ms: rec.modified_ms,
            };
            c.record_unnamed(point, sink.into_file());
            rec.state = JobState::Transferred;
            c.job_row(rec.head());
            (rec, dest, temp)
        };
        let stored = |rec: &JobRecord| {
            store.fold().unwrap();
            let all = store.load_all().unwrap();
            let r = all.into_iter().find(|r| r.id == rec.id).unwrap();
            (r.state, r.files[0].completed, r.files[0].temp_path.clone())
        };
        let (linked, linked_dest, linked_temp) = job("linked");
        let (named, _, named_temp) = job("named");
        c.write_pass(&store).unwrap();
        for (rec, temp) in [(&linked, &linked_temp), (&named, &named_temp)] {
            assert_eq!(
                stored(rec),
                (JobState::Queued, false, None),
                "nothing written"
            );
            assert!(!temp.exists(), "no name yet");
        }
        // Complete's part: the held file goes to its destination by one link.
        let held = c.take_held(&linked.id).unwrap();
        crate::localfile::link_unnamed(&held.file, &linked_dest).unwrap();
        drop(held);
        assert_eq!(std::fs::read(&linked_dest).unwrap(), b"linked");
        assert!(c.take_held(&linked.id).is_none());
        // The other waits out HOLD (a sleep never ends early), then the next batch names it and
        // writes its checkpoint and its row.
        assert!(c.held_due().is_some());
        c.write_pass(&store).unwrap();
        if c.queue.lock().held.contains_key(&named.id) {
            std::thread::sleep(HOLD);
            c.write_pass(&store).unwrap();
        }
        assert!(c.held_due().is_none());
        assert_eq!(std::fs::read(&named_temp).unwrap(), b"named");
        let temp = Some(named_temp.to_string_lossy().into());
        assert_eq!(stored(&named), (JobState::Transferred, true, temp));
        // At close nothing waits: named and written by that batch.
        let (closing, _, closing_temp) = job("closing");
        c.write_now(&store).unwrap();
        assert_eq!(std::fs::read(&closing_temp).unwrap(), b"closing");
        let temp = Some(closing_temp.to_string_lossy().into());
        assert_eq!(stored(&closing), (JobState::Transferred, true, temp));
        // Unnamed files keep their descriptors open, waiting or held: at most KEEP_UNNAMED of them
        // (past that the engine names a finished file at once), and cancel lets go of its job's.
        let mut many = Vec::new();
        while c.can_hold() {
            many.push(job(&format!("m{}", many.len())));
        }
        assert_eq!(many.len(), KEEP_UNNAMED);
        c.write_pass(&store).unwrap();
        assert!(!c.can_hold());
        for (rec, _, temp) in &many {
            assert!(c.holds(&rec.id));
            c.forget(&rec.id);
            assert!(!c.holds(&rec.id) && !temp.exists());
        }
        assert!(c.can_hold() && c.held_due().is_none());
    }
}
