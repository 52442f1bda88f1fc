//! IBackgroundCopyJob2's reply calls for BITS_JOB_TYPE_UPLOAD_REPLY jobs: the reply's progress,
//! its bytes, and the file `bits_complete` puts it in. On any other job type each returns
//! BITS_E_NOTIMPL, as BITS does.

use crate::boundary::{alloc_array, arg, call, out, owned_string, text};
use crate::types::{bits_hresult, bits_job, bits_job_reply_progress};
use openbits_core::hresult as hr;
use std::ffi::c_char;

/// Reads the reply's progress into `out_progress` (zero on failure): `bytes_total` is
/// BITS_SIZE_UNKNOWN until the server's answer gives the reply's size; `bytes_transferred` counts
/// the bytes fetched so far.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_NOTIMPL (not an upload-reply job);
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_reply_progress(
    job: *mut bits_job,
    out_progress: *mut bits_job_reply_progress,
) -> bits_hresult {
    call("bits_job_get_reply_progress", || {
        let out_progress = out(out_progress, "out_progress")?;
        let p = arg(job, "job")?.inner.reply_progress()?;
        *out_progress = bits_job_reply_progress {
            bytes_total: p.bytes_total,
            bytes_transferred: p.bytes_transferred,
        };
        Ok(hr::S_OK)
    })
}

/// The whole reply, once the job is TRANSFERRED (also after `bits_complete`, read from the reply
/// file): `*out_data` receives a new buffer of `*out_length` bytes, owned by the caller and freed
/// with `bits_free` (non-NULL even for an empty reply). NULL and 0 on failure.
///
/// Thread: any. Blocks while it reads the reply from disk (at most 1 MiB).
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_NOTIMPL (not an upload-reply job);
/// BITS_E_INVALID_STATE (the reply is not there yet; manager closed); BITS_E_TOO_LARGE (the reply
/// is over 1 MiB: read the reply file, `bits_job_get_reply_file_name`, after `bits_complete`;
/// `bits_job_get_reply_progress` gives its size); an I/O error as an HRESULT.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_reply_data(
    job: *mut bits_job,
    out_data: *mut *mut u8,
    out_length: *mut u64,
) -> bits_hresult {
    call("bits_job_get_reply_data", || {
        let out_data = out(out_data, "out_data")?;
        let out_length = out(out_length, "out_length")?;
        let data = arg(job, "job")?.inner.reply_data()?;
        *out_data = alloc_array(&data)?;
        *out_length = data.len() as u64;
        Ok(hr::S_OK)
    })
}

/// Sets where `bits_complete` puts the reply: an absolute path (UTF-8, borrowed for the call)
/// whose folder exists; NULL goes back to the default, `<uploaded file>.<job id>.reply` beside the
/// uploaded file. Set it before `bits_resume`: once the reply is being fetched (into a temporary
/// file in that folder) it is refused. Persisted.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_NOTIMPL (not an upload-reply job);
/// BITS_E_INVALIDARG (not an absolute path, a folder, bad UTF-8); the HRESULT of
/// ERROR_PATH_NOT_FOUND (no such folder); BITS_E_INVALID_STATE (the reply is being fetched or is
/// there; final state; manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_reply_file_name(
    job: *mut bits_job,
    path: *const c_char,
) -> bits_hresult {
    call("bits_job_set_reply_file_name", || {
        let job = arg(job, "job")?;
        let path = if path.is_null() {
            None
        } else {
            Some(text(path, "path")?)
        };
        job.inner.set_reply_file_name(path)?;
        Ok(hr::S_OK)
    })
}

/// The reply file's name: the one set, or the default once the job has its file. A new string
/// freed with `bits_free_string`; BITS_S_FALSE and NULL when the job has neither.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_S_FALSE; BITS_E_POINTER; BITS_E_NOTIMPL (not an upload-reply job);
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_reply_file_name(
    job: *mut bits_job,
    out_path: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_reply_file_name", || {
        let out_path = out(out_path, "out_path")?;
        match arg(job, "job")?.inner.reply_file_name()? {
            Some(p) => {
                *out_path = owned_string(&p);
                Ok(hr::S_OK)
            }
            None => Ok(hr::S_FALSE),
        }
    })
}
