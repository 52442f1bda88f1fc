//! Complete and cancel: the protocol (`complete`, `cancel`: intent, then files, then retire), the
//! file side of it, and `recover`: what `open` does with whatever a crash left behind.
//!
//! Complete is made atomic across a crash by its order: the data of every transferred file is
//! flushed (by the checkpoint batch, one sync for many files) before anything is renamed (or,
//! for a one-file job whose file finished unnamed, linked: one file, one atomic step);
//! `complete` records the intent (`Settle::Completing`) before `commit_files` renames anything;
//! the job leaves the queue (ACKNOWLEDGED) once every file is renamed, and its row, intent and
//! all, is deleted by the next checkpoint batch after one sync of each destination folder. Cancel
//! records its intent (`Settle::Cancelling`) before deleting anything. What a crash leaves, and
//! what the next open (`recover`) does with it:
//!
//! | Crash point | The store says | `recover` |
//! |---|---|---|
//! | after the intent, before any file is touched | the intent, old state | completing: does every rename; cancelling: deletes the temporary files; then removes the job |
//! | between renames (complete) | the intent; some files `committed` | finishes the renames (a file whose temporary file is gone but whose destination exists counts as renamed), syncs the folders, removes the job |
//! | after complete or cancel returned, before the batch | the intent | as above: settling is idempotent |
//! | a one-file job's unnamed file linked to its destination (`link_held`: no intent), before the next batch | the job as the batch last wrote it, its file not finished | nothing: the destination holds the file, and the job fetches it again |
//!
//! If the renames cannot be finished at open, the intent is dropped and the job stays as it was,
//! so complete can be called again.

use crate::error::{Error, Result};
use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, FileRecord, JobId, JobRecord, Settle};
use crate::localfile;
use crate::queue::{check_open, publish, CancelSession, JobCell, Shared, Touch};
use crate::state::{self, JobState, JobType, Refusal};
use crate::store::{Checkpoint, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Complete: renames every fully transferred file onto its destination and deletes partial ones.
/// Returns S_OK, or BITS_S_PARTIAL_COMPLETE when some files were incomplete. If a rename fails the
/// job keeps its state and complete can be called again. Blocks while the transfer winds down and
/// the files are renamed.
pub(crate) fn complete(shared: &Arc<Shared>, cell: &Arc<JobCell>) -> Result<HResult> {
    let _one_at_a_time = cell.settle.lock();
    let mut rec = begin_settling(shared, cell, |s| state::complete(s, true).map(|_| ()))?;
    let (final_state, code) = match state::complete(rec.state, rec.all_files_done()) {
        Ok(r) => r,
        Err(refusal) => {
            end_settling(shared, cell, None)?;
            return Err(refusal.into());
        }
    };
    // The files' data is durable before anything is renamed (free if the batch did it already).
    let durable = shared.checkpoints.make_durable(&rec.id, &*shared.store);
    let linked = durable
        .map_err(Error::from)
        .and_then(|()| link_held(shared, &mut rec));
    // A linked file needs no intent: its one link was the commit (see `link_held`).
    let intent = linked.and_then(|linked| match linked {
        Some(i) => Ok(Some(i)),
        None => record_intent(shared, cell, Settle::Completing).map(|()| None),
    });
    let linked = match intent {
        Ok(linked) => linked,
        Err(e) => {
            end_settling(shared, cell, None)?;
            return Err(e);
        }
    };
    let stamp = cell.slot.lock().finished_before_open;
    let dirs = match commit_files(&mut rec, false, stamp) {
        Ok(mut dirs) => {
            let folder = linked.and_then(|i| Path::new(&*rec.files[i].local_path).parent());
            dirs.extend(folder.map(Path::to_path_buf));
            dirs
        }
        Err(e) => {
            // The files renamed so far stay renamed; their flags say so.
            rec.settling = None;
            let all = (0..rec.files.len()).collect();
            end_settling(shared, cell, Some((Touch::Files(all), rec)))?;
            return Err(e);
        }
    };
    rec.state = final_state;
    rec.settling = None;
    retire(shared, cell, rec, dirs);
    Ok(code)
}

/// Cancel: deletes the temporary files; the job becomes CANCELLED. Returns S_OK, or
/// BITS_S_UNABLE_TO_DELETE_FILES when some temporary file could not be removed. Blocks while the
/// transfer winds down.
pub(crate) fn cancel(shared: &Arc<Shared>, cell: &Arc<JobCell>) -> Result<HResult> {
    let _one_at_a_time = cell.settle.lock();
    let mut rec = begin_settling(shared, cell, |s| state::cancel(s).map(|_| ()))?;
    let final_state = match state::cancel(rec.state) {
        Ok(s) => s,
        Err(refusal) => {
            end_settling(shared, cell, None)?;
            return Err(refusal.into());
        }
    };
    // The intent is recorded with the state unchanged: CANCELLED appears only in `retire`,
    // once the job has left the queue.
    if let Err(e) = record_intent(shared, cell, Settle::Cancelling) {
        end_settling(shared, cell, None)?;
        return Err(e);
    }
    shared.checkpoints.forget(&rec.id);
    // An upload's session is cancelled on its server too (best effort: the server also
    // expires it).
    let auth = cell.slot.lock().credentials.get(0);
    let sessions: Vec<CancelSession> = rec
        .files
        .iter()
        .filter_map(|f| {
            Some(CancelSession {
                url: f.remote_url.to_string(),
                session: f.extras().upload_session.as_deref()?.to_string(),
                auth: auth.clone(),
            })
        })
        .collect();
    if !sessions.is_empty() {
        shared.cancel_sessions.lock().extend(sessions);
        shared.wake.notify_one();
    }
    let code = discard_files(&rec);
    rec.settling = None;
    rec.state = final_state;
    retire(shared, cell, rec, Vec::new());
    Ok(code)
}

/// Marks the job as settling, stops its transfer and waits for the task to exit, so the caller
/// owns the files. Returns the record as it stands then.
fn begin_settling(
    shared: &Shared,
    cell: &JobCell,
    check: impl FnOnce(JobState) -> std::result::Result<(), Refusal>,
) -> Result<JobRecord> {
    check_open(shared)?;
    let mut slot = cell.slot.lock();
    check(slot.rec.state)?;
    slot.settling = true;
    JobCell::signal_stop(&slot);
    let deadline = Instant::now() + Duration::from_secs(5);
    while slot.runner.is_some() && !cell.changed.wait_until(&mut slot, deadline).timed_out() {}
    Ok(slot.rec.clone())
}

/// Ends settling; `rec`, if given, becomes the job's record, writing what `touch` names.
fn end_settling(
    shared: &Arc<Shared>,
    cell: &Arc<JobCell>,
    rec: Option<(Touch, JobRecord)>,
) -> Result<()> {
    let mut slot = cell.slot.lock();
    slot.settling = false;
    let r = match rec {
        Some((touch, rec)) => publish(shared, cell, &mut slot, touch, |r| {
            *r = rec;
            Ok(())
        }),
        None => Ok(()),
    };
    let id = slot.rec.id;
    cell.changed.notify_all();
    drop(slot);
    // The scheduler skipped the job while it settled, or must drop it from its set now it is
    // final: only a job in that set needs a pass (the end of a transfer task wakes it anyway),
    // and a queue completing thousands of TRANSFERRED jobs should not cost a pass each.
    if shared.scheduled.lock().contains_key(&id) {
        shared.wake.notify_one();
    }
    r
}

/// The job reached its final state `rec`: it leaves the queue before anyone can see that
/// state (so a job seen CANCELLED or ACKNOWLEDGED is never found by `get_job`). The store keeps
/// its row, with the intent, until the next checkpoint batch has synced `dirs` (the folders its
/// files were renamed into) and deleted it: a crash before then is finished by the next open, as
/// a crash during the call would be.
fn retire(shared: &Arc<Shared>, cell: &Arc<JobCell>, rec: JobRecord, dirs: Vec<PathBuf>) {
    let (id, rec_seq) = (rec.id, rec.seq);
    shared.jobs.lock().remove(&id);
    // Memory only: nothing to refuse.
    let _ = end_settling(shared, cell, Some((Touch::Nothing, rec)));
    shared.checkpoints.retire(rec_seq, dirs);
}

/// Records the intent of complete or cancel while the job is settling: its row only.
fn record_intent(shared: &Arc<Shared>, cell: &Arc<JobCell>, intent: Settle) -> Result<()> {
    let mut slot = cell.slot.lock();
    publish(shared, cell, &mut slot, Touch::Job, |r| {
        r.settling = Some(intent);
        Ok(())
    })
}

/// A one-file job whose file finished unnamed (`Sink::open_unnamed`), flushed and held by the
/// checkpoint batch: the file is linked straight to its destination, one new entry in the folder
/// where a temporary file costs two changes (created, then renamed). Returns its index. The link
/// is the whole commit (one file: nothing to make atomic), so no intent is recorded: the store
/// still has the job as the batch last wrote it (its file never recorded, since it had no name),
/// and the next batch syncs the folder, then deletes the job's row. A crash before that batch
/// leaves the destination in place and the job to fetch its file again (and be completed again);
/// at no point does the store say a file is where it may not be.
///
/// A file that cannot go there at once (its destination exists and is to be replaced, a job with
/// more files since, a failed link) is given its temporary name and goes back to the batch, and
/// complete goes on as for a named file: one more batch. None also when there is nothing held.
fn link_held(shared: &Arc<Shared>, rec: &mut JobRecord) -> Result<Option<usize>> {
    let held = loop {
        if let Some(held) = shared.checkpoints.take_held(&rec.id) {
            break held;
        }
        // Not held, or being named by a batch: `make_durable` waits for that batch, which may
        // also have failed to name it and held it again.
        shared.checkpoints.make_durable(&rec.id, &*shared.store)?;
        if !shared.checkpoints.holds(&rec.id) {
            return Ok(None);
        }
    };
    let i = held.point.file as usize;
    let alone = rec.files.len() == 1 && rec.reply_path().is_none();
    if let Some(f) = rec.files.get_mut(i).filter(|f| alone && !f.committed) {
        // Complete stopped the transfer between the file's last byte and the job counting it
        // done, and decided on the job as it stood then (BITS_S_PARTIAL_COMPLETE): the file
        // goes unkept, as a named one's temporary file is deleted (`commit_files`), and being
        // unnamed it vanishes with `held`.
        if !f.completed {
            return Ok(None);
        }
        if localfile::link_unnamed(&held.file, Path::new(&*f.local_path)).is_ok() {
            f.committed = true;
            return Ok(Some(i));
        }
    }
    let temp = held.point.temp.clone().unwrap_or_default();
    if let Err(e) = localfile::name_unnamed(&held.file, Path::new(&*temp)) {
        shared.checkpoints.hold_again(held);
        return Err(Error::io(
            "cannot name the temporary file",
            Path::new(&*temp),
            &e,
        ));
    }
    shared.checkpoints.give_back(held);
    shared.checkpoints.make_durable(&rec.id, &*shared.store)?;
    Ok(None)
}

/// Renames each transferred file onto its destination and deletes the partial ones, marking files
/// `committed` as it goes. Returns the destination folders, which the caller syncs once each. On
/// error the files already renamed stay renamed (their flag says so) and the rest wait for the
/// next attempt.
///
/// `recovering`: a crash may have struck between a rename and the record of it, so a transferred
/// file whose temporary file is gone but whose destination exists counts as renamed.
/// `stamp`: the files were finished by an earlier process, so each gets the server's time stamp
/// by name before its rename (see `JobSlot::finished_before_open`).
pub(crate) fn commit_files(
    rec: &mut JobRecord,
    recovering: bool,
    stamp: bool,
) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    // An upload-reply's one temporary file is its reply, which goes to the reply file; an
    // upload's local file is its source and is never touched.
    let reply = rec.reply_path();
    let (job, kind) = (rec.id, rec.job_type);
    for (i, f) in rec
        .files
        .iter_mut()
        .enumerate()
        .filter(|(_, f)| !f.committed)
    {
        let dest = reply
            .clone()
            .unwrap_or_else(|| PathBuf::from(&*f.local_path));
        let result = match (&f.temp_path, f.completed) {
            (Some(t), true) if recovering && !Path::new(&**t).exists() && dest.exists() => Ok(()),
            (Some(t), true) => {
                let mtime = f
                    .last_modified
                    .as_deref()
                    .filter(|_| stamp)
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                localfile::commit(Path::new(&**t), &dest, mtime)
            }
            (Some(t), false) => localfile::remove(Path::new(&**t)),
            // A download's file started before a crash, before its first checkpoint named it:
            // best effort, as it most likely never existed (a folder that refuses the delete
            // must not make complete fail for a file nobody recorded).
            (None, false) => {
                if let Some(t) = derived_temp(kind, &job, i, f) {
                    let _ = localfile::remove(&t);
                }
                Ok(())
            }
            (None, true) => Ok(()),
        };
        if let Err(e) = result {
            return Err(Error::new(
                hr::from_io(&e),
                format!(
                    "cannot move the temporary file onto {}: {e}",
                    dest.display()
                ),
            ));
        }
        if f.completed {
            f.committed = true;
        }
        if let Some(d) = dest.parent() {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    Ok(dirs)
}

/// Deletes every temporary file of the job. S_OK, or BITS_S_UNABLE_TO_DELETE_FILES if some remain.
pub(crate) fn discard_files(rec: &JobRecord) -> HResult {
    let mut code = hr::S_OK;
    for (i, f) in rec.files.iter().enumerate().filter(|(_, f)| !f.committed) {
        let failed = match &f.temp_path {
            Some(t) => localfile::remove(Path::new(&**t)).is_err(),
            // Unrecorded: it counts only if it is there and stays.
            None => derived_temp(rec.job_type, &rec.id, i, f).is_some_and(|t| {
                localfile::remove(&t).is_err() && std::fs::symlink_metadata(&t).is_ok()
            }),
        };
        if failed {
            code = hr::S_UNABLE_TO_DELETE_FILES;
        }
    }
    code
}

/// The name a download's file without a recorded temporary file would have used
/// (`localfile::temp_name_of`): a crash can leave that file behind before its first checkpoint
/// records the name.
fn derived_temp(kind: JobType, job: &JobId, i: usize, f: &FileRecord) -> Option<PathBuf> {
    (kind == JobType::Download)
        .then(|| localfile::temp_name_of(Path::new(&*f.local_path), job, i).ok())
        .flatten()
}

/// Makes each unfinished file's record agree with its temporary file: the shorter of the
/// checkpoint and the length on disk wins; a missing temporary file (or a completed one of the
/// wrong length) restarts that file. Returns the indices of the files it changed.
pub(crate) fn reconcile_files(rec: &mut JobRecord) -> Vec<usize> {
    let mut changed = Vec::new();
    if rec.job_type != crate::state::JobType::Download {
        // An upload has no temporary file: its checkpoint is what the server acknowledged, and
        // the server corrects it (416) if it holds more or less.
        return changed;
    }
    for (i, f) in rec
        .files
        .iter_mut()
        .enumerate()
        .filter(|(_, f)| !f.committed)
    {
        let seen = |f: &crate::job::FileRecord| {
            let t = (f.bytes_total, f.temp_path.is_some());
            (f.bytes_checkpointed, f.bytes_transferred, f.completed, t)
        };
        let before = seen(f);
        let on_disk = f
            .temp_path
            .as_ref()
            .and_then(|t| std::fs::metadata(&**t).ok())
            .map(|m| m.len());
        match on_disk {
            None if f.temp_path.is_some() || f.bytes_checkpointed > 0 || f.completed => {
                f.restart();
                f.temp_path = None;
            }
            None => {}
            Some(len) if f.completed && Some(len) != f.bytes_total.map(|v| v.get()) => f.restart(),
            Some(_) if f.completed => {}
            Some(len) => {
                f.bytes_checkpointed = f.bytes_checkpointed.min(len);
                f.bytes_transferred = f.bytes_checkpointed;
            }
        }
        if seen(f) != before {
            changed.push(i);
        }
    }
    changed
}

/// What `open` does with what it finds: finishes interrupted completes and cancels, removes final
/// and inactive jobs, reconciles each temporary file with its checkpoint, and puts jobs that were
/// active back in the queue. Returns the jobs that stay. A job whose repair fails stays as stored.
pub(crate) fn recover(
    store: &dyn Store,
    records: Vec<JobRecord>,
    inactivity: Duration,
) -> Vec<JobRecord> {
    let now = now_ms();
    let inactive_after = inactivity.as_millis() as u64;
    let mut kept = Vec::with_capacity(records.len());
    for mut rec in records {
        let inactive =
            !rec.state.is_final() && now.saturating_sub(rec.modified_ms) > inactive_after;
        let gone = match (rec.settling, rec.state) {
            (Some(Settle::Completing), _) => {
                match commit_files(&mut rec, true, true).and_then(|dirs| {
                    localfile::sync_dirs(&dirs).map_err(|e| {
                        Error::new(hr::from_io(&e), format!("cannot flush a folder: {e}"))
                    })
                }) {
                    Ok(()) => true,
                    Err(_) => {
                        // The renames cannot be finished (say, a folder became read-only):
                        // the job stays as it was, and bits_complete can be called again.
                        rec.settling = None;
                        false
                    }
                }
            }
            (Some(Settle::Cancelling), _) | (None, JobState::Cancelled) => {
                let _ = discard_files(&rec);
                true
            }
            (None, JobState::Acknowledged) => true,
            (None, _) if inactive => {
                let _ = discard_files(&rec);
                true
            }
            (None, _) => false,
        };
        if gone {
            // If this fails the row stays, and the next open settles it again (settling is idempotent).
            let _ = store.remove(&[rec.seq]);
            continue;
        }
        let (state, retry_at) = (rec.state, rec.retry_at_ms);
        let changed = reconcile_files(&mut rec);
        rec.state = state::reopen(rec.state, rec.all_files_done());
        if rec.state == JobState::Queued {
            rec.retry_at_ms = None;
        }
        // Only what changed is written; a failure leaves the store as it was, which the next open
        // reconciles again.
        if !changed.is_empty() {
            let points: Vec<Checkpoint> = changed
                .iter()
                .map(|&i| {
                    let f = &rec.files[i];
                    Checkpoint {
                        job: rec.id,
                        seq: rec.seq,
                        file: i as u32,
                        bytes: f.bytes_checkpointed,
                        total: f.bytes_total.map(|v| v.get()),
                        etag: f.etag.clone(),
                        last_modified: f.last_modified.clone(),
                        completed: f.completed,
                        at_ms: rec.modified_ms,
                        temp: f.temp_path.clone(),
                        state: rec.state,
                    }
                })
                .collect();
            let _ = store
                .checkpoint(&points, &[])
                .and_then(|()| store.update_files(&rec, &changed));
        } else if (rec.state, rec.retry_at_ms) != (state, retry_at) {
            let _ = store.update_job(&rec);
        }
        kept.push(rec);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::localfile::Sink;
    use crate::queue::events::Dispatcher;
    use crate::store::SqliteStore;

    /// A one-file job whose file finished unnamed and is held by its batch: complete links it
    /// onto the destination only when the job counts the file transferred. Complete can stop the
    /// transfer between the two (the file held, the job not yet told), and then decides
    /// BITS_S_PARTIAL_COMPLETE: the file must not appear (tests/c/threads.c caught it there).
    #[test]
    fn a_held_file_is_linked_only_when_the_job_counts_it_transferred() {
        for counted in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            std::fs::create_dir(&state).unwrap();
            let store = SqliteStore::open(&state).unwrap();
            let dest = dir.path().join("f.bin");
            let temp = dir.path().join("BITf.tmp");
            let mut rec = JobRecord::new(JobId::new_v4(), JobType::Download, "j".into(), 1);
            rec.seq = 1;
            rec.files.push(FileRecord::new(
                "http://h/f".into(),
                dest.to_string_lossy().into(),
            ));
            store.save(&rec).unwrap();
            let shared = Arc::new(Shared::new(
                Config::default(),
                Box::new(store),
                vec![rec.clone()],
                Dispatcher::start().unwrap(),
            ));
            let mut sink = Sink::open_unnamed(&temp).unwrap().unwrap();
            sink.write(b"data").unwrap();
            let point = Checkpoint {
                job: rec.id,
                seq: rec.seq,
                file: 0,
                bytes: 4,
                total: Some(4),
                etag: None,
                last_modified: None,
                completed: true,
                temp: Some(temp.to_string_lossy().into()),
                state: JobState::Transferring,
                at_ms: 1,
            };
            // The batch task, as a manager runs it: it flushes the file, then holds it.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.spawn(crate::queue::checkpoint::run(shared.clone()));
            shared.checkpoints.record_unnamed(point, sink.into_file());
            let deadline = Instant::now() + Duration::from_secs(10);
            while shared.checkpoints.held_due().is_none() {
                assert!(Instant::now() < deadline, "the batch never held the file");
                std::thread::sleep(Duration::from_millis(1));
            }
            // Stopped, so it cannot name the file when its hold runs out before complete's turn.
            drop(runtime);
            rec.files[0].completed = counted;
            let linked = link_held(&shared, &mut rec).unwrap();
            if counted {
                assert_eq!(linked, Some(0));
                assert_eq!(std::fs::read(&dest).unwrap(), b"data");
            } else {
                assert_eq!(linked, None);
                assert!(!dest.exists(), "a file complete did not count was linked");
            }
            assert!(!temp.exists(), "never named");
            assert!(!shared.checkpoints.holds(&rec.id));
            shared
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
