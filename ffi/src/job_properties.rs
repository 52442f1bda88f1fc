//! Job properties (IBackgroundCopyJob1-5): getters and setters. Every setter is refused with
//! BITS_E_INVALID_STATE in a final state (ACKNOWLEDGED, CANCELLED) and after the manager closed;
//! every value set is persisted with the job.

use crate::boundary::{arg, call, out, owned_string, text, Zero};
use crate::types::{bits_guid, bits_hresult, bits_job, bits_job_times};
use openbits_core::hresult as hr;
use openbits_core::{Error, JobRecord, Priority};
use std::ffi::c_char;

/// Reads one value of the job's record into an out-parameter (zeroed first).
unsafe fn get<T: Zero>(
    name: &str,
    job: *mut bits_job,
    out_value: *mut T,
    read: impl FnOnce(&JobRecord) -> T,
) -> bits_hresult {
    call(name, || {
        let out_value = out(out_value, "out-parameter")?;
        *out_value = read(&arg(job, "job")?.inner.record()?);
        Ok(hr::S_OK)
    })
}

/// The job's id. Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER,
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_id(
    job: *mut bits_job,
    out_id: *mut bits_guid,
) -> bits_hresult {
    get("bits_job_get_id", job, out_id, |r| r.id.into())
}

/// The job's type, a BITS_JOB_TYPE_* value. Thread: any; does not block. Returns as
/// `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_type(job: *mut bits_job, out_type: *mut i32) -> bits_hresult {
    get("bits_job_get_type", job, out_type, |r| r.job_type as i32)
}

/// The job's display name: a new UTF-8 string the caller frees with `bits_free_string`. Thread:
/// any; does not block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_display_name(
    job: *mut bits_job,
    out_name: *mut *mut c_char,
) -> bits_hresult {
    get("bits_job_get_display_name", job, out_name, |r| {
        owned_string(&r.display_name)
    })
}

/// Sets the display name (UTF-8, at most 256 characters, borrowed for the call). Thread: any;
/// does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALIDARG (too long, bad UTF-8),
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_display_name(
    job: *mut bits_job,
    name: *const c_char,
) -> bits_hresult {
    call("bits_job_set_display_name", || {
        arg(job, "job")?
            .inner
            .set_display_name(text(name, "name")?)?;
        Ok(hr::S_OK)
    })
}

/// The job's description (empty by default): a new string freed with `bits_free_string`.
/// Thread: any; does not block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_description(
    job: *mut bits_job,
    out_text: *mut *mut c_char,
) -> bits_hresult {
    get("bits_job_get_description", job, out_text, |r| {
        owned_string(&r.description)
    })
}

/// Sets the description (UTF-8, at most 1,024 characters, borrowed). Thread: any; does not
/// block. Returns as `bits_job_set_display_name`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_description(
    job: *mut bits_job,
    description: *const c_char,
) -> bits_hresult {
    call("bits_job_set_description", || {
        arg(job, "job")?
            .inner
            .set_description(text(description, "description")?)?;
        Ok(hr::S_OK)
    })
}

/// The job's owner (the user name given in the manager's options, or the OS user name of the
/// process that created it): a new string freed with `bits_free_string`. Thread: any; does not
/// block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_owner(
    job: *mut bits_job,
    out_owner: *mut *mut c_char,
) -> bits_hresult {
    get("bits_job_get_owner", job, out_owner, |r| {
        owned_string(&r.owner)
    })
}

/// The job's priority, a BITS_JOB_PRIORITY_* value (default NORMAL). Thread: any; does not
/// block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_priority(
    job: *mut bits_job,
    out_priority: *mut i32,
) -> bits_hresult {
    get("bits_job_get_priority", job, out_priority, |r| {
        r.priority as i32
    })
}

/// Sets the priority: BITS_JOB_PRIORITY_FOREGROUND, _HIGH, _NORMAL or _LOW. The scheduler applies
/// it at once (a running transfer is stopped only if a higher priority needs its slot). Thread:
/// any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_NOTIMPL (undefined value, as in
/// BITS), BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_priority(job: *mut bits_job, priority: i32) -> bits_hresult {
    call("bits_job_set_priority", || {
        let job = arg(job, "job")?;
        let p = Priority::from_i32(priority)
            .ok_or_else(|| Error::new(hr::E_NOTIMPL, format!("undefined priority {priority}")))?;
        job.inner.set_priority(p)?;
        Ok(hr::S_OK)
    })
}

/// The job's BITS_NOTIFY_* flags (default BITS_NOTIFY_JOB_TRANSFERRED | BITS_NOTIFY_JOB_ERROR).
/// Thread: any; does not block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_notify_flags(
    job: *mut bits_job,
    out_flags: *mut u32,
) -> bits_hresult {
    get("bits_job_get_notify_flags", job, out_flags, |r| {
        r.notify_flags
    })
}

/// Sets the BITS_NOTIFY_* flags (they select the events of push callbacks; the pull queue gets
/// every event). Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_NOTIMPL
/// (undefined bits), BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_notify_flags(job: *mut bits_job, flags: u32) -> bits_hresult {
    call("bits_job_set_notify_flags", || {
        arg(job, "job")?.inner.set_notify_flags(flags)?;
        Ok(hr::S_OK)
    })
}

/// The minimum retry delay in seconds (default 600). Thread: any; does not block. Returns as
/// `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_minimum_retry_delay(
    job: *mut bits_job,
    out_seconds: *mut u32,
) -> bits_hresult {
    get("bits_job_get_minimum_retry_delay", job, out_seconds, |r| {
        r.minimum_retry_delay_s
    })
}

/// The no-progress timeout in seconds (default 1,209,600). Thread: any; does not block. Returns as
/// `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_no_progress_timeout(
    job: *mut bits_job,
    out_seconds: *mut u32,
) -> bits_hresult {
    get("bits_job_get_no_progress_timeout", job, out_seconds, |r| {
        r.no_progress_timeout_s
    })
}

/// BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS: progress events of the job come at most
/// this often (default 500 ms). Thread: any; does not block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_minimum_notification_interval(
    job: *mut bits_job,
    out_ms: *mut u32,
) -> bits_hresult {
    get(
        "bits_job_get_minimum_notification_interval",
        job,
        out_ms,
        |r| r.min_notification_interval_ms,
    )
}

/// Sets the minimum notification interval in milliseconds; it may change during a transfer.
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_minimum_notification_interval(
    job: *mut bits_job,
    ms: u32,
) -> bits_hresult {
    call("bits_job_set_minimum_notification_interval", || {
        arg(job, "job")?
            .inner
            .set_minimum_notification_interval(ms)?;
        Ok(hr::S_OK)
    })
}

/// The job's times (BG_JOB_TIMES), in milliseconds since 1970-01-01 UTC. Thread: any; does not
/// block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_times(
    job: *mut bits_job,
    out_times: *mut bits_job_times,
) -> bits_hresult {
    get("bits_job_get_times", job, out_times, |r| bits_job_times {
        creation_ms: r.created_ms,
        modification_ms: r.modified_ms,
        transfer_completion_ms: r.transfer_completed_ms.map_or(0, |v| v.get()),
    })
}

/// How many times the job failed (transient and fatal errors). Thread: any; does not block.
/// Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_error_count(
    job: *mut bits_job,
    out_count: *mut u32,
) -> bits_hresult {
    get("bits_job_get_error_count", job, out_count, |r| {
        r.error_count
    })
}

/// Makes the job belong to the manager's owner (IBackgroundCopyJob::TakeOwnership). Needs a
/// manager opened in service mode. Thread: any; does not block. Returns BITS_S_OK,
/// BITS_E_POINTER, BITS_E_ACCESSDENIED (not service mode), BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_take_ownership(job: *mut bits_job) -> bits_hresult {
    call("bits_job_take_ownership", || {
        arg(job, "job")?.inner.take_ownership()?;
        Ok(hr::S_OK)
    })
}

/// BITS_JOB_PROPERTY_DYNAMIC_CONTENT (non-zero: on): the server need not send Content-Length or
/// honour Range; the body is taken until it ends, and an interruption restarts the file from 0.
/// Only before the first `bits_resume`.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER,
/// BITS_E_READ_ONLY_PROPERTY_AFTER_RESUME, BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_dynamic_content(
    job: *mut bits_job,
    enable: i32,
) -> bits_hresult {
    call("bits_job_set_dynamic_content", || {
        arg(job, "job")?.inner.set_dynamic_content(enable != 0)?;
        Ok(hr::S_OK)
    })
}

/// Whether the job has dynamic content (1) or not (0). Thread: any; does not block. Returns as
/// `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_dynamic_content(
    job: *mut bits_job,
    out_enabled: *mut i32,
) -> bits_hresult {
    get("bits_job_get_dynamic_content", job, out_enabled, |r| {
        r.dynamic_content as i32
    })
}

/// BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE: a file larger than `bytes` puts the job in ERROR with
/// BITS_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED. Only before the first `bits_resume`.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER,
/// BITS_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE (0), BITS_E_READ_ONLY_PROPERTY_AFTER_RESUME,
/// BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_max_download_size(
    job: *mut bits_job,
    bytes: u64,
) -> bits_hresult {
    call("bits_job_set_max_download_size", || {
        arg(job, "job")?.inner.set_max_download_size(bytes)?;
        Ok(hr::S_OK)
    })
}

/// The maximum download size; UINT64_MAX when none is set. Thread: any; does not block. Returns
/// as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_max_download_size(
    job: *mut bits_job,
    out_bytes: *mut u64,
) -> bits_hresult {
    get("bits_job_get_max_download_size", job, out_bytes, |r| {
        r.max_download_size.map_or(u64::MAX, |v| v.get())
    })
}

/// SetMaximumDownloadTime: after `seconds` of CONNECTING and TRANSFERRING since the last
/// `bits_resume`, the job goes to ERROR with BITS_E_MAXDOWNLOAD_TIMEOUT. 0: no limit. Default
/// 7,776,000 (90 days).
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_E_POINTER, BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_maximum_download_time(
    job: *mut bits_job,
    seconds: u32,
) -> bits_hresult {
    call("bits_job_set_maximum_download_time", || {
        arg(job, "job")?.inner.set_maximum_download_time(seconds)?;
        Ok(hr::S_OK)
    })
}

/// The maximum download time in seconds. Thread: any; does not block. Returns as `bits_job_get_id`.
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_maximum_download_time(
    job: *mut bits_job,
    out_seconds: *mut u32,
) -> bits_hresult {
    get(
        "bits_job_get_maximum_download_time",
        job,
        out_seconds,
        |r| r.max_download_time_s,
    )
}

/// SetNotifyCmdLine: `program` (a full path; NULL removes the command line) runs when the job
/// becomes TRANSFERRED or goes to ERROR, unless a callback is registered. `parameters` (may be
/// NULL) is BITS's parameter string: it starts with the program (argv[0]), words are split at
/// spaces and double quotes group them; at most 4,000 characters. If the program exits with a
/// non-zero code it runs again after the job's minimum retry delay, until it succeeds or the job
/// is completed or cancelled. Persisted. Strings are UTF-8, borrowed.
///
/// Thread: any; does not block (the program runs on a thread of its own). Returns BITS_S_OK,
/// BITS_E_POINTER, BITS_E_INVALIDARG (not a full path; parameters too long or not starting with
/// the program), BITS_E_INVALID_STATE.
#[no_mangle]
pub unsafe extern "C" fn bits_job_set_notify_cmdline(
    job: *mut bits_job,
    program: *const c_char,
    parameters: *const c_char,
) -> bits_hresult {
    call("bits_job_set_notify_cmdline", || {
        let job = arg(job, "job")?;
        let program = if program.is_null() {
            None
        } else {
            Some(text(program, "program")?)
        };
        let parameters = if parameters.is_null() {
            None
        } else {
            Some(text(parameters, "parameters")?)
        };
        job.inner.set_notify_cmdline(program, parameters)?;
        Ok(hr::S_OK)
    })
}

/// The notification command line: new strings freed with `bits_free_string` (each out-parameter
/// may be NULL). Returns BITS_S_FALSE with NULL strings when none is set.
///
/// Thread: any; does not block. Returns BITS_S_OK, BITS_S_FALSE, BITS_E_POINTER,
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_job_get_notify_cmdline(
    job: *mut bits_job,
    out_program: *mut *mut c_char,
    out_parameters: *mut *mut c_char,
) -> bits_hresult {
    call("bits_job_get_notify_cmdline", || {
        let (program_out, parameters_out) = (
            crate::boundary::out_opt(out_program),
            crate::boundary::out_opt(out_parameters),
        );
        let rec = arg(job, "job")?.inner.record()?;
        let extras = rec.extras();
        let Some(program) = &extras.notify_program else {
            return Ok(hr::S_FALSE);
        };
        if let Some(p) = program_out {
            *p = owned_string(program);
        }
        if let (Some(p), Some(params)) = (parameters_out, &extras.notify_parameters) {
            *p = owned_string(params);
        }
        Ok(hr::S_OK)
    })
}
