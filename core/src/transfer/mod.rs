//! The transfer engine: one task per active job moves its files in order, from the source into the
//! file's `BIT*.tmp`, and reports what happened through the state machine's engine rules.
//!
//! `file.rs` is one file's transfer (progress, flushes, checkpoints, the temporary file);
//! `download/` holds the HTTP download loops, `http/` the HTTP requests, decisions and connection
//! pools, `local.rs` the file:// source. A task stops at its next
//! await point when asked (suspend, cancel, complete, close): writes are synchronous within a poll,
//! so a stopped task never leaves a write half-done behind it.

mod download;
mod file;
pub(crate) mod http;
mod local;

pub(crate) use file::{FileTransfer, FileView};

use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, JobError};
use crate::queue::events::{Event, EventKind};
use crate::queue::{emit, publish, JobCell, Shared};
use crate::state::{engine, ErrorContext};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

/// Why a file's transfer failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub transient: bool,
    pub context: ErrorContext,
    pub code: HResult,
    pub description: String,
}

impl Failure {
    pub(crate) fn transient(
        context: ErrorContext,
        code: HResult,
        description: impl Into<String>,
    ) -> Failure {
        Failure {
            transient: true,
            context,
            code,
            description: description.into(),
        }
    }
    pub(crate) fn fatal(
        context: ErrorContext,
        code: HResult,
        description: impl Into<String>,
    ) -> Failure {
        Failure {
            transient: false,
            context,
            code,
            description: description.into(),
        }
    }
    /// A local I/O error: running out of space is worth retrying, anything else is not.
    pub(crate) fn local_io(what: &str, path: &Path, e: &std::io::Error) -> Failure {
        let code = hr::from_io(e);
        let transient = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        Failure {
            transient,
            context: ErrorContext::LocalFile,
            code,
            description: format!("{what} {}: {e}", path.display()),
        }
    }
}

/// Clears the job's task slot however the task ends (return, stop, or the runtime dropping it), and
/// tells waiters and the scheduler.
struct TaskExit {
    shared: Arc<Shared>,
    cell: Arc<JobCell>,
}

impl Drop for TaskExit {
    fn drop(&mut self) {
        let mut slot = self.cell.slot.lock();
        slot.runner = None;
        // CONNECTING + TRANSFERRING time counts against the maximum download time.
        if let Some(started) = slot.started_at.take() {
            slot.rec.active_ms = slot
                .rec
                .active_ms
                .saturating_add(started.elapsed().as_millis() as u64);
        }
        drop(slot);
        self.cell.changed.notify_all();
        self.shared.wake.notify_one();
    }
}

pub(crate) async fn run_job(
    shared: Arc<Shared>,
    clients: Arc<http::Clients>,
    cell: Arc<JobCell>,
    mut stop: watch::Receiver<bool>,
) {
    let _exit = TaskExit {
        shared: shared.clone(),
        cell: cell.clone(),
    };
    loop {
        let index = {
            let mut slot = cell.slot.lock();
            if *stop.borrow() || !slot.rec.state.is_active() {
                return;
            }
            match slot.rec.files.iter().position(|f| !f.completed) {
                Some(i) => i,
                None => {
                    let mut next = slot.rec.clone();
                    if let Some(s) = engine::all_done(next.state) {
                        next.state = s;
                        next.error = None;
                        next.no_progress_since_ms = None;
                        next.transfer_completed_ms = Some(now_ms());
                    }
                    if let Err(e) = publish(&shared, &cell, &mut slot, next) {
                        drop(slot);
                        fail(
                            &shared,
                            &cell,
                            None,
                            Failure::transient(
                                ErrorContext::GeneralQueueManager,
                                e.code,
                                e.message,
                            ),
                        );
                    }
                    return;
                }
            }
        };
        let mut file = FileTransfer::new(&shared, &clients, &cell, index);
        let outcome = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = file.run() => r,
        };
        match outcome {
            Ok(()) => {
                let mut slot = cell.slot.lock();
                if let Some(f) = slot.rec.files.get_mut(index) {
                    f.completed = true;
                }
                let rec = slot.rec.clone();
                if let Err(e) = publish(&shared, &cell, &mut slot, rec) {
                    drop(slot);
                    fail(
                        &shared,
                        &cell,
                        Some(index),
                        Failure::transient(ErrorContext::GeneralQueueManager, e.code, e.message),
                    );
                    return;
                }
                let event = Event {
                    job: slot.rec.id,
                    kind: EventKind::FileTransferred,
                    state: slot.rec.state,
                    code: hr::S_OK,
                    file_index: index as u32,
                    owner: slot.rec.owner.clone(),
                };
                emit(&shared, &cell, event, slot.rec.min_notification_interval_ms);
            }
            Err(failure) => {
                fail(&shared, &cell, Some(index), failure);
                return;
            }
        }
    }
}

/// Records a failure and moves the job to TRANSIENT_ERROR (retry after the minimum retry delay) or ERROR.
fn fail(shared: &Arc<Shared>, cell: &Arc<JobCell>, file_index: Option<usize>, f: Failure) {
    let mut slot = cell.slot.lock();
    let mut rec = slot.rec.clone();
    let now = now_ms();
    let next = if f.transient {
        let since = *rec.no_progress_since_ms.get_or_insert(now);
        let expired = now.saturating_sub(since) >= rec.no_progress_timeout_s as u64 * 1000;
        engine::transient_failure(rec.state, expired)
    } else {
        engine::fatal_failure(rec.state)
    };
    let Some(next) = next else { return };
    rec.state = next;
    rec.retry_at_ms = (next == crate::state::JobState::TransientError)
        .then(|| now.saturating_add(rec.minimum_retry_delay_s as u64 * 1000));
    rec.error_count = rec.error_count.saturating_add(1);
    rec.error = Some(JobError {
        context: f.context,
        code: f.code,
        description: f.description,
        file_index: file_index.map(|i| i as u32),
    });
    if publish(shared, cell, &mut slot, rec.clone()).is_err() {
        // The store refused; the job still must not look healthy to the application.
        slot.rec = rec;
        cell.changed.notify_all();
    }
}
