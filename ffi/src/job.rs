//! Job exports: files, the state-changing calls, and what a job reports.

use crate::boundary::{arg, call, call_void, null, out, out_opt, owned_string, text};
use crate::types::{bits_hresult, bits_job, bits_job_progress};
use openbits_core::hresult as hr;
use std::ffi::c_char;
use std::time::Duration;

/// BITS_INFINITE as a `bits_job_wait` timeout: wait for ever.
pub const BITS_INFINITE: u32 = 0xFFFF_FFFF;

/// Adds a file to a job (IBackgroundCopyJob::AddFile).
///
/// - `remote_url`: UTF-8 `http://`, `https://` or `file://` URL, at most 2,200 characters.
/// - `local_path`: UTF-8 absolute path of the destination; its folder must exist and be writable.
///   The destination is written only by `bits_complete`; until then bytes go to a `BIT*.tmp` file
///   in the same folder.
///
/// For an upload job, `remote_url` is where the file goes (http or https) and `local_path` is the
/// source: an existing regular file this process can read (read, never locked or changed; if it
/// changes during the upload the job goes to ERROR with BITS_E_LOCAL_FILE_CHANGED). An upload job
/// has exactly one file: a second one is BITS_E_TOO_MANY_FILES.
///
/// Both strings are borrowed for the call. Allowed in every non-final state, including
/// TRANSFERRED and ERROR (call `bits_resume` to transfer the new file).
///
/// Thread: any. Does not block (beyond checking the folder).
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (malformed URL, unsupported scheme,
/// relative local path, local path that is a folder, same local path twice in the job, bad UTF-8);
/// HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) 0x80070003 (folder missing); BITS_E_ACCESSDENIED
/// (folder not writable); BITS_E_TOO_MANY_FILES_IN_JOB (the manager's max_files_per_job, outside
/// service mode); BITS_E_TOO_MANY_FILES (a second file of an upload job); for an upload's source,
/// HRESULT_FROM_WIN32 of the error opening it (0x80070002 missing, 0x80070005 unreadable) and
/// BITS_E_INVALIDARG (not a regular file); BITS_E_INVALID_STATE (final state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_add_file(
    job: *mut bits_job,
    remote_url: *const c_char,
    local_path: *const c_char,
) -> bits_hresult {
    call("bits_add_file", || {
        let job = arg(job, "job")?;
        let remote = text(remote_url, "remote_url")?;
        let local = text(local_path, "local_path")?;
        job.inner.add_file(remote, local)?;
        Ok(hr::S_OK)
    })
}

/// Starts or restarts the transfer (IBackgroundCopyJob::Resume): SUSPENDED, ERROR and
/// TRANSIENT_ERROR become QUEUED; active states are unchanged.
///
/// Thread: any. Does not block: the transfer runs on the manager's threads.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_EMPTY (no files; the job stays SUSPENDED);
/// BITS_E_INVALID_STATE (ACKNOWLEDGED or CANCELLED, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_resume(job: *mut bits_job) -> bits_hresult {
    call("bits_resume", || {
        arg(job, "job")?.inner.resume()?;
        Ok(hr::S_OK)
    })
}

/// Suspends the job (IBackgroundCopyJob::Suspend). In-flight requests are aborted at once; bytes
/// already written are kept and a later `bits_resume` continues from them.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK (also when already suspended); BITS_E_POINTER; BITS_E_INVALID_STATE (final
/// state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_suspend(job: *mut bits_job) -> bits_hresult {
    call("bits_suspend", || {
        arg(job, "job")?.inner.suspend()?;
        Ok(hr::S_OK)
    })
}

/// Cancels the job (IBackgroundCopyJob::Cancel): the transfer stops, every temporary file is
/// deleted, and the job becomes CANCELLED and leaves the queue. The reference stays valid.
///
/// Thread: any. Blocks until the job's transfer has stopped (milliseconds).
///
/// Returns BITS_S_OK; BITS_S_UNABLE_TO_DELETE_FILES (cancelled, but some temporary file remains);
/// BITS_E_POINTER; BITS_E_INVALID_STATE (already ACKNOWLEDGED or CANCELLED, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_cancel(job: *mut bits_job) -> bits_hresult {
    call("bits_cancel", || arg(job, "job")?.inner.cancel())
}

/// Completes the job (IBackgroundCopyJob::Complete): each fully transferred temporary file is
/// flushed to disk and renamed onto its destination, then the folder is flushed; the job becomes
/// ACKNOWLEDGED and leaves the queue. Partially transferred files are deleted.
///
/// Thread: any. Blocks while the transfer stops and the files are flushed and renamed.
///
/// Returns BITS_S_OK; BITS_S_PARTIAL_COMPLETE (the job was not TRANSFERRED: complete files were
/// kept, partial ones deleted); BITS_E_POINTER; BITS_E_INVALID_STATE (already ACKNOWLEDGED or
/// CANCELLED, or manager closed); an HRESULT_FROM_WIN32 code if a rename fails, in which case the
/// job keeps its state and `bits_complete` may be called again.
#[no_mangle]
pub unsafe extern "C" fn bits_complete(job: *mut bits_job) -> bits_hresult {
    call("bits_complete", || arg(job, "job")?.inner.complete())
}

/// Reads the job's state, a BITS_JOB_STATE_* value, into `out_state` (0 on failure).
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_state(
    job: *mut bits_job,
    out_state: *mut i32,
) -> bits_hresult {
    call("bits_job_get_state", || {
        let out_state = out(out_state, "out_state")?;
        *out_state = arg(job, "job")?.inner.state()? as i32;
        Ok(hr::S_OK)
    })
}

/// Reads the job's progress into `out_progress` (all zero on failure). `bytes_total` is
/// BITS_SIZE_UNKNOWN while the size of any file is not yet known.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_progress(
    job: *mut bits_job,
    out_progress: *mut bits_job_progress,
) -> bits_hresult {
    call("bits_job_get_progress", || {
        let out_progress = out(out_progress, "out_progress")?;
        *out_progress = arg(job, "job")?.inner.progress()?.into();
        Ok(hr::S_OK)
    })
}

/// Reads the job's error (IBackgroundCopyJob::GetError), available only in ERROR and
/// TRANSIENT_ERROR.
///
/// - `out_context`: a BITS_ERROR_CONTEXT_* value.
/// - `out_code`: the failure's HRESULT, e.g. BITS_E_HTTP_ERROR(404).
/// - `out_description`: may be NULL; else receives a new UTF-8 string such as
///   `HTTP 404 Not Found: http://host/x.bin`, owned by the caller and freed with
///   `bits_free_string`.
///
/// All are zero / NULL on failure.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_ERROR_INFORMATION_UNAVAILABLE (not in an error state);
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_error(
    job: *mut bits_job,
    out_context: *mut i32,
    out_code: *mut bits_hresult,
    out_description: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_error", || {
        // Every out-parameter is zeroed before any check can fail.
        let out_description = out_opt(out_description);
        let (ctx, code) = (out_opt(out_context), out_opt(out_code));
        let out_context = ctx.ok_or_else(|| null("out_context"))?;
        let out_code = code.ok_or_else(|| null("out_code"))?;
        let e = arg(job, "job")?.inner.error()?;
        *out_context = e.context as i32;
        *out_code = e.code.0;
        if let Some(d) = out_description {
            *d = owned_string(&e.description);
        }
        Ok(hr::S_OK)
    })
}

/// Blocks until the job is TRANSFERRED, ERROR, ACKNOWLEDGED or CANCELLED (a transient error does
/// not end the wait), or until `timeout_ms` milliseconds pass; BITS_INFINITE waits for ever.
/// `out_state` (may be NULL) receives the state that ended the wait; 0 on failure.
///
/// Thread: any thread except the manager's own. Blocks.
///
/// Returns BITS_S_OK; BITS_E_TIMEOUT; BITS_E_POINTER; BITS_E_INVALID_STATE (manager closed, also
/// while waiting).
#[no_mangle]
pub unsafe extern "C" fn bits_job_wait(
    job: *mut bits_job,
    timeout_ms: u32,
    out_state: *mut i32,
) -> bits_hresult {
    call("bits_job_wait", || {
        let out_state = out_opt(out_state);
        let timeout =
            (timeout_ms != BITS_INFINITE).then(|| Duration::from_millis(timeout_ms as u64));
        let state = arg(job, "job")?.inner.wait(timeout)?;
        if let Some(s) = out_state {
            *s = state as i32;
        }
        Ok(hr::S_OK)
    })
}

/// Sets how long a job in TRANSIENT_ERROR waits before it retries
/// (IBackgroundCopyJob::SetMinimumRetryDelay). Default 600 s. Any value is accepted, 0 included
/// (retry at once).
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (final state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_minimum_retry_delay(
    job: *mut bits_job,
    seconds: u32,
) -> bits_hresult {
    call("bits_job_set_minimum_retry_delay", || {
        arg(job, "job")?.inner.set_minimum_retry_delay(seconds)?;
        Ok(hr::S_OK)
    })
}

/// Sets how long transient errors may last without any progress before the job goes to ERROR
/// (IBackgroundCopyJob::SetNoProgressTimeout). Default 1,209,600 s (14 days); 0 makes every error
/// fatal.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALID_STATE (final state, or manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_no_progress_timeout(
    job: *mut bits_job,
    seconds: u32,
) -> bits_hresult {
    call("bits_job_set_no_progress_timeout", || {
        arg(job, "job")?.inner.set_no_progress_timeout(seconds)?;
        Ok(hr::S_OK)
    })
}

/// Another reference to the same job, released separately with `bits_job_release` (COM's AddRef;
/// unlike `bits_get_job` it works for a job already completed or cancelled). `out_job` is NULL on
/// failure.
///
/// Thread: any. Does not block. Returns BITS_S_OK, BITS_E_POINTER.
#[no_mangle]
pub unsafe extern "C" fn bits_job_add_ref(
    job: *mut bits_job,
    out_job: *mut *mut bits_job,
) -> bits_hresult {
    call("bits_job_add_ref", || {
        let out_job = out(out_job, "out_job")?;
        let inner = arg(job, "job")?.inner.clone();
        *out_job = Box::into_raw(Box::new(bits_job { inner }));
        Ok(hr::S_OK)
    })
}

/// Releases a job reference. The job itself goes on (it lives in its manager's queue until it is
/// completed or cancelled). Consumes `job`; NULL does nothing.
///
/// Thread: any. Does not block. `job` must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn bits_job_release(job: *mut bits_job) {
    call_void("bits_job_release", || {
        if !job.is_null() {
            drop(Box::from_raw(job));
        }
    })
}
