//! The transfer engine: one task per active job starts its files in order, each in a task of its
//! own, from the source into the file's `BIT*.tmp`, and reports what happened through the state
//! machine's engine rules.
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
mod reply;
mod upload;

pub(crate) use file::{FileTransfer, FileView};

use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, JobError, NonMaxU64};
use crate::queue::events::{Event, EventKind};
use crate::queue::{emit, publish, JobCell, Shared, Touch};
use crate::state::{engine, ErrorContext};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// Why a file's transfer failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub transient: bool,
    pub context: ErrorContext,
    pub code: HResult,
    pub description: String,
    /// The server said when to come back (429 or 503 with Retry-After), in ms from now: the
    /// retry waits that long instead of the job's minimum retry delay.
    pub retry_after_ms: Option<u64>,
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
            retry_after_ms: None,
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
            retry_after_ms: None,
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
            retry_after_ms: None,
        }
    }
}

/// Clears the job's task slot however the task ends (return, stop, or the runtime dropping it), and
/// tells waiters and the scheduler. Shared by the job's task and each of its files' tasks: the slot
/// is cleared when the last of them is gone, so whoever waits for it (complete, cancel) owns the
/// files even when the runtime drops the job's task while a file's task still runs.
struct TaskExit {
    shared: Arc<Shared>,
    cell: Arc<JobCell>,
}

impl TaskExit {
    /// The task counts itself among the running transfers (`Shared::transfers`) until it ends.
    fn begin(shared: &Arc<Shared>, cell: &Arc<JobCell>) -> TaskExit {
        shared
            .transfers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        TaskExit {
            shared: shared.clone(),
            cell: cell.clone(),
        }
    }
}

impl Drop for TaskExit {
    fn drop(&mut self) {
        let before = self
            .shared
            .transfers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if before == 1 {
            self.shared.checkpoints.no_transfer_running();
        }
        let mut slot = self.cell.slot.lock();
        // CONNECTING + TRANSFERRING time counts against the maximum download time.
        if let Some(runner) = slot.runner.take() {
            slot.rec.active_ms = slot
                .rec
                .active_ms
                .saturating_add(runner.started.elapsed().as_millis() as u64);
        }
        drop(slot);
        self.cell.changed.notify_all();
        self.shared.wake.notify_one();
    }
}

/// A job's transfer task: its files in order, up to `Config::files_in_flight` of them at once (so
/// a job of many small files is not one round trip per file), then TRANSFERRED. It returns only
/// once every file's task has ended. Files are reported transferred in order, as BITS does: a
/// file that finishes before an earlier one waits for it.
pub(crate) async fn run_job(
    shared: Arc<Shared>,
    clients: Arc<http::Clients>,
    cell: Arc<JobCell>,
    mut stop: watch::Receiver<bool>,
) {
    let exit = Arc::new(TaskExit::begin(&shared, &cell));
    let mut files = JoinSet::new();
    drive(&shared, &clients, &cell, &mut stop, &mut files, &exit).await;
    // Every file's task has stopped before the job's runner is released (the last `exit`):
    // whoever settles the job owns its files only once nothing can write to them.
    files.shutdown().await;
}

/// What one file's task hands back: its index, how it ended, and whether its first checkpoint is
/// still to come.
type FileEnd = (usize, Result<(), Failure>, bool);

/// `run_job`'s loop. Each file runs as a task of its own, so the files of a job share the
/// runtime's workers (a job of small files creates, writes and parses on every core, not on one).
async fn drive(
    shared: &Arc<Shared>,
    clients: &Arc<http::Clients>,
    cell: &Arc<JobCell>,
    stop: &mut watch::Receiver<bool>,
    in_flight: &mut JoinSet<FileEnd>,
    exit: &Arc<TaskExit>,
) {
    let width = shared.config.files_in_flight.max(1);
    let mut next = 0;
    // The task's first checkpoint is written at once (see `checkpoint.rs`); later ones in batches.
    let mut first_checkpoint = true;
    // Started and not yet reported; `finished` holds those whose transfer is over.
    let mut running: Vec<usize> = Vec::new();
    let mut finished: Vec<usize> = Vec::new();
    // Files before this one are all completed: reporting in order scans on from here, so a job
    // of n files costs n steps, not n² (a completed file never becomes incomplete in a task).
    let mut first_open = 0;
    loop {
        {
            let mut slot = cell.slot.lock();
            if *stop.borrow() || !slot.rec.state.is_active() {
                return;
            }
            // Files start in order: the search starts after the last one started.
            let files = &slot.rec.files;
            while running.len() < width {
                next = next.min(files.len());
                let Some(i) = (next..files.len())
                    .chain(0..next)
                    .find(|&i| !files[i].completed && !running.contains(&i))
                else {
                    break;
                };
                next = i + 1;
                running.push(i);
                let first = first_checkpoint;
                let (s, c, j) = (shared.clone(), clients.clone(), cell.clone());
                let exit = exit.clone();
                in_flight.spawn(async move {
                    let _exit = exit;
                    let mut file = FileTransfer::new(&s, &c, &j, i, first);
                    let outcome = file.run().await;
                    (i, outcome, file.first_checkpoint)
                });
            }
            if running.is_empty() {
                // The row is written by the checkpoint batch (`Checkpoints::job_row`), which
                // comes at once and also holds the files' last checkpoints: one transaction for
                // many jobs instead of one each.
                let was = slot.rec.state;
                let _ = publish(shared, cell, &mut slot, Touch::Nothing, |next| {
                    if let Some(s) = engine::all_done(next.state) {
                        next.state = s;
                        next.error = None;
                        next.no_progress_since_ms = None;
                        next.transfer_completed_ms = NonMaxU64::new(now_ms());
                    }
                    Ok(())
                });
                if slot.rec.state != was {
                    shared.checkpoints.job_row(slot.rec.head());
                }
                return;
            }
        }
        let ended = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            Some(r) = in_flight.join_next() => r,
        };
        let (index, outcome, first) = match ended {
            Ok(end) => end,
            Err(e) => {
                // Cancelled: only stopping or closing aborts a file's task.
                if e.is_cancelled()
                    || *stop.borrow()
                    || shared.closed.load(std::sync::atomic::Ordering::SeqCst)
                {
                    return;
                }
                let failure = Failure::fatal(
                    ErrorContext::GeneralQueueManager,
                    hr::E_UNEXPECTED,
                    format!("a file's transfer task failed: {e}"),
                );
                fail(shared, cell, None, failure);
                return;
            }
        };
        first_checkpoint &= first;
        match outcome {
            Ok(()) => {
                finished.push(index);
                let mut slot = cell.slot.lock();
                // Every finished file with no unfinished one before it is reported, in order.
                loop {
                    let files = &slot.rec.files;
                    while files.get(first_open).is_some_and(|f| f.completed) {
                        first_open += 1;
                    }
                    let i = first_open;
                    if i >= files.len() {
                        break;
                    }
                    let Some(at) = finished.iter().position(|&f| f == i) else {
                        break;
                    };
                    finished.swap_remove(at);
                    running.retain(|&r| r != i);
                    // In memory now; the store learns it from the file's checkpoint, once its data
                    // is flushed (`FileTransfer::finish`).
                    let _ = publish(shared, cell, &mut slot, Touch::Nothing, |rec| {
                        rec.files[i].completed = true;
                        Ok(())
                    });
                    let event = Event {
                        job: slot.rec.id,
                        kind: EventKind::FileTransferred,
                        state: slot.rec.state,
                        code: hr::S_OK,
                        file_index: i as u32,
                        owner: slot.rec.owner.clone(),
                    };
                    emit(shared, cell, event, slot.rec.min_notification_interval_ms);
                }
            }
            Err(failure) => {
                // A task told to stop (suspend, preemption, close) may see its connection torn
                // down first: that is not the job's error, and must not cost it a retry delay.
                if *stop.borrow() || shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                // The other files stop where they are (dropped at their next await).
                fail(shared, cell, Some(index), failure);
                return;
            }
        }
    }
}

/// Records a failure and moves the job to TRANSIENT_ERROR (retry after the minimum retry delay) or ERROR.
fn fail(shared: &Arc<Shared>, cell: &Arc<JobCell>, file_index: Option<usize>, mut f: Failure) {
    if f.transient && !shared.network_up.load(std::sync::atomic::Ordering::SeqCst) {
        // No network at all: that is the error, and the job waits for the network rather than
        // for its retry delay (the scheduler queues it when a link comes back).
        f.context = ErrorContext::GeneralTransport;
        f.code = hr::E_NETWORK_DISCONNECTED;
        f.description = format!("no network connection is active ({})", f.description);
    }
    let offline = f.code == hr::E_NETWORK_DISCONNECTED;
    let mut slot = cell.slot.lock();
    let now = now_ms();
    let rec = &slot.rec;
    let next = if f.transient {
        let since = rec.no_progress_since_ms.map_or(now, |v| v.get());
        let expired =
            !offline && now.saturating_sub(since) >= rec.no_progress_timeout_s as u64 * 1000;
        engine::transient_failure(rec.state, expired)
    } else {
        engine::fatal_failure(rec.state)
    };
    let Some(next) = next else { return };
    let apply = |rec: &mut crate::job::JobRecord| {
        if offline {
            // An outage is not the job's failure: its no-progress clock stops (as when the
            // scheduler holds a job for the network) and the error is not counted.
            rec.no_progress_since_ms = None;
        } else {
            if rec.no_progress_since_ms.is_none() {
                rec.no_progress_since_ms = NonMaxU64::new(now);
            }
            rec.error_count = rec.error_count.saturating_add(1);
        }
        rec.state = next;
        let own_ms = rec.minimum_retry_delay_s as u64 * 1000;
        // A Retry-After replaces the retry delay, raised to its floor (FileTransfer::note_pause
        // already did for files; this also covers failures that came another way).
        let delay_ms = f
            .retry_after_ms
            .map_or(own_ms, |told| crate::policy::hosts::pause_ms(told, own_ms));
        rec.retry_at_ms = (next == crate::state::JobState::TransientError && !offline)
            .then(|| now.saturating_add(delay_ms))
            .and_then(NonMaxU64::new);
        rec.error = Some(Box::new(JobError {
            context: f.context,
            code: f.code,
            description: f.description.clone(),
            file_index: file_index.map(|i| i as u32),
        }));
    };
    if publish(shared, cell, &mut slot, Touch::Job, |rec| {
        apply(rec);
        Ok(())
    })
    .is_err()
    {
        // The store refused; the job still must not look healthy to the application.
        apply(&mut slot.rec);
        cell.changed.notify_all();
    }
}

/// Cancel-Session for an upload whose job was cancelled: a few tries over about half a minute
/// (best effort; the server expires abandoned sessions anyway).
pub(crate) async fn cancel_session(
    shared: Arc<Shared>,
    clients: Arc<http::Clients>,
    c: crate::queue::CancelSession,
) {
    use openbits_protocol::headers::{BITS_POST, PACKET_TYPE, SESSION_ID};
    let Ok(url) = url::Url::parse(&c.url) else {
        return;
    };
    let mut headers = hyper::HeaderMap::new();
    let (Ok(session), Ok(packet)) = (
        hyper::header::HeaderValue::from_str(&c.session),
        hyper::header::HeaderValue::from_str("Cancel-Session"),
    ) else {
        return;
    };
    headers.insert(PACKET_TYPE, packet);
    headers.insert(SESSION_ID, session);
    headers.insert(
        hyper::header::CONTENT_LENGTH,
        hyper::header::HeaderValue::from(0),
    );
    let options = http::RequestOptions {
        server_auth: c.auth,
        ..Default::default()
    };
    for wait in [0u64, 2, 8, 20] {
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
        if shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let sent = http::send_packet(
            &clients,
            &shared.config,
            &url,
            BITS_POST,
            &headers,
            bytes::Bytes::new(),
            &options,
            shared.config.stall_timeout,
        )
        .await;
        // Any answer settles it: an Ack, or "no such session" (already gone).
        if sent.is_ok() {
            return;
        }
    }
}
