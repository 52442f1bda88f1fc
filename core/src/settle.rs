//! The file side of complete and cancel, shared by the API calls and by `recover`: what `open`
//! does with whatever a crash left behind.
//!
//! Complete is made atomic across a crash by its order: the data of every transferred file was
//! flushed by the transfer engine before the file was recorded as completed; the manager records
//! the intent (`Settle::Completing`) before `commit_files` renames anything; the job is marked
//! ACKNOWLEDGED only after every rename and the folder flush. A crash in between leaves the intent
//! in the store, and the next open finishes the renames.

use crate::config::Config;
use crate::error::Error;
use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, JobRecord, Settle};
use crate::localfile;
use crate::state::{self, JobState};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Renames each transferred file onto its destination and deletes the partial ones, marking files
/// `committed` as it goes, then flushes the folders. On error the files already renamed stay
/// renamed (their flag says so) and the rest wait for the next attempt.
///
/// `recovering`: a crash may have struck between a rename and the record of it, so a transferred
/// file whose temporary file is gone but whose destination exists counts as renamed.
pub(crate) fn commit_files(rec: &mut JobRecord, recovering: bool) -> Result<(), Error> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in rec.files.iter_mut().filter(|f| !f.committed) {
        let dest = PathBuf::from(&f.local_path);
        let result = match (&f.temp_path, f.completed) {
            (Some(t), true) if recovering && !Path::new(t).exists() && dest.exists() => Ok(()),
            (Some(t), true) => {
                let mtime = f
                    .last_modified
                    .as_deref()
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                localfile::commit(Path::new(t), &dest, mtime)
            }
            (Some(t), false) => localfile::remove(Path::new(t)),
            (None, _) => Ok(()),
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
    for d in &dirs {
        localfile::sync_dir(d).map_err(|e| {
            Error::new(
                hr::from_io(&e),
                format!("cannot flush the folder {}: {e}", d.display()),
            )
        })?;
    }
    Ok(())
}

/// Deletes every temporary file of the job. S_OK, or BITS_S_UNABLE_TO_DELETE_FILES if some remain.
pub(crate) fn discard_files(rec: &JobRecord) -> HResult {
    let mut code = hr::S_OK;
    for f in rec.files.iter().filter(|f| !f.committed) {
        if let Some(t) = &f.temp_path {
            if localfile::remove(Path::new(t)).is_err() {
                code = hr::S_UNABLE_TO_DELETE_FILES;
            }
        }
    }
    code
}

/// Makes each unfinished file's record agree with its temporary file: the shorter of the
/// checkpoint and the length on disk wins; a missing temporary file (or a completed one of the
/// wrong length) restarts that file.
pub(crate) fn reconcile_files(rec: &mut JobRecord) {
    for f in rec.files.iter_mut().filter(|f| !f.committed) {
        let on_disk = f
            .temp_path
            .as_ref()
            .and_then(|t| std::fs::metadata(t).ok())
            .map(|m| m.len());
        match on_disk {
            None if f.temp_path.is_some() || f.bytes_checkpointed > 0 || f.completed => {
                f.restart();
                f.temp_path = None;
            }
            None => {}
            Some(len) if f.completed && Some(len) != f.bytes_total => f.restart(),
            Some(_) if f.completed => {}
            Some(len) => {
                f.bytes_checkpointed = f.bytes_checkpointed.min(len);
                f.bytes_transferred = f.bytes_checkpointed;
            }
        }
    }
}

/// What `open` does with what it finds: finishes interrupted completes and cancels, removes final
/// and inactive jobs, reconciles each temporary file with its checkpoint, and puts jobs that were
/// active back in the queue. Returns the jobs that stay. A job whose repair fails stays as stored.
pub(crate) fn recover(
    store: &dyn Store,
    records: Vec<JobRecord>,
    config: &Config,
) -> Vec<JobRecord> {
    let now = now_ms();
    let inactive_after = config.inactivity_timeout.as_millis() as u64;
    let mut kept = Vec::with_capacity(records.len());
    for mut rec in records {
        let inactive =
            !rec.state.is_final() && now.saturating_sub(rec.modified_ms) > inactive_after;
        let gone = match (rec.settling, rec.state) {
            (Some(Settle::Completing), _) => match commit_files(&mut rec, true) {
                Ok(()) => true,
                Err(_) => {
                    // The renames cannot be finished (say, a folder became read-only): the job stays
                    // as it was, and bits_complete can be called again.
                    rec.settling = None;
                    false
                }
            },
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
            let _ = store.remove(&rec.id);
            continue;
        }
        let before = rec.clone();
        reconcile_files(&mut rec);
        rec.state = state::reopen(rec.state, rec.all_files_done());
        if rec.state == JobState::Queued {
            rec.retry_at_ms = None;
        }
        if rec != before {
            let _ = store.save(&rec);
        }
        kept.push(rec);
    }
    kept
}
