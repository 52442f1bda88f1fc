//! The files of a job (IBackgroundCopyJob::AddFileSet / EnumFiles, IBackgroundCopyFile1-3,
//! IBackgroundCopyJob3::ReplaceRemotePrefix) and the error's detail (IBackgroundCopyError).

use crate::boundary::{arg, call, out, out_opt, owned_string, text};
use crate::types::{bits_file_info, bits_file_progress, bits_file_range, bits_hresult, bits_job};
use openbits_core::hresult as hr;
use openbits_core::job::FileRange;
use openbits_core::{Error, SIZE_UNKNOWN};
use std::ffi::c_char;

/// Adds `count` files at once (IBackgroundCopyJob::AddFileSet): all of them or, if any is
/// refused, none. Each is checked as `bits_add_file` checks it. `files` is borrowed for the call.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER (`files` NULL with `count` > 0,
/// or a NULL string); what `bits_add_file` returns for the first file refused;
/// BITS_E_TOO_MANY_FILES_IN_JOB (more than the manager's max_files_per_job, outside service mode).
#[no_mangle]
pub unsafe extern "C" fn bits_add_file_set(
    job: *mut bits_job,
    count: u32,
    files: *const bits_file_info,
) -> bits_hresult {
    call("bits_add_file_set", || {
        let job = arg(job, "job")?;
        if count == 0 {
            return Ok(hr::S_OK);
        }
        if files.is_null() {
            return Err(crate::boundary::null("files"));
        }
        let items = std::slice::from_raw_parts(files, count as usize);
        let mut pairs = Vec::with_capacity(items.len());
        for (i, f) in items.iter().enumerate() {
            pairs.push((
                text(f.remote_url, &format!("files[{i}].remote_url"))?,
                text(f.local_path, &format!("files[{i}].local_path"))?,
            ));
        }
        job.inner.add_file_set(&pairs)?;
        Ok(hr::S_OK)
    })
}

/// The number of files in the job. Thread: any; does not block. Returns BITS_S_OK,
/// BITS_E_POINTER, BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_file_count(
    job: *mut bits_job,
    out_count: *mut u32,
) -> bits_hresult {
    call("bits_job_get_file_count", || {
        let out_count = out(out_count, "out_count")?;
        *out_count = arg(job, "job")?.inner.record()?.files.len() as u32;
        Ok(hr::S_OK)
    })
}

/// One file of the job, by index (0 .. count-1, in the order they were added). Each out-parameter
/// may be NULL when not wanted; strings are new UTF-8 strings freed with `bits_free_string`.
/// - `out_remote_url`, `out_local_path`: the names (GetRemoteName, GetLocalName);
/// - `out_temporary_path`: the `BIT*.tmp` file the bytes go to; an empty string until the
///   transfer of the file first starts (GetTemporaryName). On Linux a one-file job's file is
///   written without a name until its first checkpoint (a file that finishes first gets the name
///   a moment later, unless `bits_complete` has moved it to its local name by then);
/// - `out_progress`: bytes total (BITS_SIZE_UNKNOWN until known), bytes transferred, completed.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (index out
/// of range); BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_file(
    job: *mut bits_job,
    index: u32,
    out_remote_url: *mut *mut c_char,
    out_local_path: *mut *mut c_char,
    out_temporary_path: *mut *mut c_char,
    out_progress: *mut bits_file_progress,
) -> bits_hresult {
    call("bits_job_get_file", || {
        let (remote, local, temp) = (
            out_opt(out_remote_url),
            out_opt(out_local_path),
            out_opt(out_temporary_path),
        );
        let progress = out_opt(out_progress);
        let rec = arg(job, "job")?.inner.record()?;
        let count = rec.files.len();
        let f = rec.files.get(index as usize).ok_or_else(|| {
            Error::new(
                hr::E_INVALIDARG,
                format!("file index {index} is out of range (the job has {count})"),
            )
        })?;
        if let Some(p) = progress {
            *p = bits_file_progress {
                bytes_total: f.bytes_total.map_or(SIZE_UNKNOWN, |v| v.get()),
                bytes_transferred: f.bytes_transferred,
                completed: f.completed as i32,
            };
        }
        if let Some(r) = remote {
            *r = owned_string(&f.remote_url);
        }
        if let Some(l) = local {
            *l = owned_string(&f.local_path);
        }
        if let Some(t) = temp {
            *t = owned_string(f.temp_path.as_deref().unwrap_or(""));
        }
        Ok(hr::S_OK)
    })
}

/// Changes the URL of file `index` (IBackgroundCopyFile2::SetRemoteName), e.g. for a fresh signed
/// URL. The bytes already transferred are kept: the next request asks the new URL for the rest
/// with If-Range, so the file continues if the new URL serves the same content (same validators)
/// and starts again if not. A transfer of the job in progress restarts at once with the new URL.
/// `remote_url` is borrowed.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (bad URL,
/// index out of range); BITS_E_INVALID_STATE (final state, manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_file_set_remote_name(
    job: *mut bits_job,
    index: u32,
    remote_url: *const c_char,
) -> bits_hresult {
    call("bits_file_set_remote_name", || {
        arg(job, "job")?
            .inner
            .set_remote_name(index, text(remote_url, "remote_url")?)?;
        Ok(hr::S_OK)
    })
}

/// Replaces `old_prefix` by `new_prefix` at the start of every file URL that begins with it
/// (IBackgroundCopyJob3::ReplaceRemotePrefix), keeping partial data as `bits_file_set_remote_name`
/// does. All or none: if one resulting URL is invalid, nothing changes. Strings are borrowed.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_S_FALSE (no URL began with the prefix);
/// BITS_E_POINTER; BITS_E_INVALIDARG (empty prefix, an invalid resulting URL);
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_replace_remote_prefix(
    job: *mut bits_job,
    old_prefix: *const c_char,
    new_prefix: *const c_char,
) -> bits_hresult {
    call("bits_job_replace_remote_prefix", || {
        let job = arg(job, "job")?;
        job.inner.replace_remote_prefix(
            text(old_prefix, "old_prefix")?,
            text(new_prefix, "new_prefix")?,
        )
    })
}

/// The detail of the job's error (IBackgroundCopyError::GetFile, GetProtocol,
/// GetErrorContextDescription), available when `bits_job_get_error` is. Each out-parameter may be
/// NULL; strings are new and freed with `bits_free_string`; all are NULL / zero on failure.
/// - `out_file_index`: the file the error belongs to;
/// - `out_protocol`: `http`, `https` or `file`;
/// - `out_context_description`: a sentence describing the error's context (always available).
///
/// When the error belongs to no file and the file or the protocol is asked for, the call fails
/// with BITS_E_FILE_NOT_AVAILABLE (BITS_E_PROTOCOL_NOT_AVAILABLE when only the protocol is), as
/// BITS does; ask for the context description alone to get it in that case.
///
/// Thread: any; does not block. Returns BITS_S_OK; BITS_E_POINTER;
/// BITS_E_ERROR_INFORMATION_UNAVAILABLE (not in ERROR or TRANSIENT_ERROR); BITS_E_FILE_NOT_AVAILABLE;
/// BITS_E_PROTOCOL_NOT_AVAILABLE; BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_error_detail(
    job: *mut bits_job,
    out_file_index: *mut u32,
    out_protocol: *mut *mut c_char,
    out_context_description: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_error_detail", || {
        let (file_out, protocol_out, context_out) = (
            out_opt(out_file_index),
            out_opt(out_protocol),
            out_opt(out_context_description),
        );
        let job = &arg(job, "job")?.inner;
        let error = job.error()?;
        let file = error
            .file_index
            .and_then(|i| job.record().ok()?.files.get(i as usize).cloned());
        // Everything is decided before anything is written, so a failure leaves nothing to free.
        if file.is_none() && (file_out.is_some() || protocol_out.is_some()) {
            let code = if file_out.is_none() {
                hr::E_PROTOCOL_NOT_AVAILABLE
            } else {
                hr::E_FILE_NOT_AVAILABLE
            };
            return Err(Error::new(code, "the error does not belong to a file"));
        }
        if let (Some(i), Some(_)) = (file_out, &file) {
            *i = error.file_index.unwrap_or(0);
        }
        if let (Some(p), Some(f)) = (protocol_out, &file) {
            let scheme = f
                .remote_url
                .split(':')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            *p = owned_string(&scheme);
        }
        if let Some(c) = context_out {
            *c = owned_string(&error.context.description());
        }
        Ok(hr::S_OK)
    })
}

/// Adds a file of which only `ranges` are downloaded (IBackgroundCopyJob3::AddFileWithRanges):
/// the ranges' bytes are written one after another into the local file, in the order given. The
/// last range may have length BITS_LENGTH_TO_EOF. Checked as `bits_add_file` checks a file, and
/// more: `count` 0 -> BITS_E_INVALIDARG; a range starting at BITS_LENGTH_TO_EOF, empty, or with
/// BITS_LENGTH_TO_EOF before the last -> BITS_E_INVALID_RANGE; overlapping or duplicate ranges ->
/// BITS_E_OVERLAPPING_RANGES; more than the manager's max_ranges_per_file (default 500) ->
/// BITS_E_TOO_MANY_RANGES_IN_FILE; a file:// URL -> BITS_E_NOTIMPL; a job with dynamic content ->
/// BITS_E_UNSUPPORTED_JOB_CONFIGURATION. During the transfer, a range past the end of the remote
/// file puts the job in ERROR with BITS_E_INVALID_RANGE, and a server that ignores Range with
/// BITS_E_INSUFFICIENT_RANGE_SUPPORT. `ranges` and the strings are borrowed.
///
/// Thread: any; does not block. Returns BITS_S_OK or one of the codes above, BITS_E_POINTER,
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_add_file_with_ranges(
    job: *mut bits_job,
    remote_url: *const c_char,
    local_path: *const c_char,
    count: u32,
    ranges: *const bits_file_range,
) -> bits_hresult {
    call("bits_add_file_with_ranges", || {
        let job = arg(job, "job")?;
        let (remote, local) = (
            text(remote_url, "remote_url")?,
            text(local_path, "local_path")?,
        );
        if count > 0 && ranges.is_null() {
            return Err(crate::boundary::null("ranges"));
        }
        let given = if count == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(ranges, count as usize)
        };
        let ranges: Vec<FileRange> = given
            .iter()
            .map(|r| FileRange {
                offset: r.initial_offset,
                length: r.length,
            })
            .collect();
        job.inner.add_file_with_ranges(remote, local, &ranges)?;
        Ok(hr::S_OK)
    })
}

/// The byte ranges of file `index` (IBackgroundCopyFile2::GetFileRanges): an array of `*out_count`
/// ranges freed with `bits_free`. A file added without ranges has none: BITS_S_FALSE, NULL, 0.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_S_FALSE, BITS_E_POINTER,
/// BITS_E_INVALIDARG (index out of range), BITS_E_OUTOFMEMORY, BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_file_ranges(
    job: *mut bits_job,
    index: u32,
    out_ranges: *mut *mut bits_file_range,
    out_count: *mut u32,
) -> bits_hresult {
    call("bits_job_get_file_ranges", || {
        let (ranges_out, count_out) = (out_opt(out_ranges), out_opt(out_count));
        let (Some(ranges_out), Some(count_out)) = (ranges_out, count_out) else {
            return Err(crate::boundary::null("out_ranges or out_count"));
        };
        let rec = arg(job, "job")?.inner.record()?;
        let count = rec.files.len();
        let f = rec.files.get(index as usize).ok_or_else(|| {
            Error::new(
                hr::E_INVALIDARG,
                format!("file index {index} is out of range (the job has {count})"),
            )
        })?;
        let Some(ranges) = &f.extras().ranges else {
            return Ok(hr::S_FALSE);
        };
        let c: Vec<bits_file_range> = ranges
            .iter()
            .map(|r| bits_file_range {
                initial_offset: r.offset,
                length: r.length,
            })
            .collect();
        *ranges_out = crate::boundary::alloc_array(&c)?;
        *count_out = c.len() as u32;
        Ok(hr::S_OK)
    })
}
