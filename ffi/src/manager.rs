//! Manager exports: open, close, create and look up jobs.

use crate::boundary::{arg, call, call_void, out, text};
use crate::types::{
    bits_event, bits_guid, bits_hresult, bits_job, bits_manager, bits_manager_options,
};
use openbits_core::hresult as hr;
use openbits_core::HResult;
use openbits_core::{Config, Error, JobType, Manager};
use std::ffi::c_char;
use std::path::Path;
use std::time::Duration;

/// Opens a manager on a state folder and starts its transfer threads.
///
/// - `state_dir`: UTF-8 absolute path, borrowed for the call; created (mode 0700) if missing. NULL
///   selects the per-user default: `$OPENBITS_HOME`, else `$XDG_DATA_HOME/openbits`, else
///   `~/.local/share/openbits`.
/// - `out_manager`: receives a new manager, owned by the caller and freed with
///   `bits_manager_close`; set to NULL on failure.
///
/// The folder holds the job database (`openbits.db`, mode 0600). Every job stored there comes back:
/// jobs that were queued, transferring or waiting to retry are QUEUED again and continue from the
/// bytes already on disk; SUSPENDED, ERROR and TRANSFERRED jobs stay as they were; a complete or
/// cancel that a crash interrupted is finished now. Only one manager may have a folder open.
///
/// Thread: any. Blocks while the folder is locked, the database is opened and checked, and
/// interrupted completes are finished (renames).
///
/// Returns BITS_S_OK; BITS_E_POINTER (`out_manager` NULL); BITS_E_INVALIDARG (relative path, bad
/// UTF-8, not a folder); HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION) 0x80070020 (another manager,
/// in this or another process, has the folder open); BITS_E_DATABASE_CORRUPT (the database file is
/// damaged or is not an openbits database: it is left untouched);
/// HRESULT_FROM_WIN32(ERROR_REVISION_MISMATCH) 0x8007051A (the database was written by a newer
/// openbits); BITS_E_ACCESSDENIED or another HRESULT_FROM_WIN32 code when the folder or database
/// cannot be created or written (0x80070070: disk full).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_open(
    state_dir: *const c_char,
    out_manager: *mut *mut bits_manager,
) -> bits_hresult {
    call("bits_manager_open", || {
        let out_manager = out(out_manager, "out_manager")?;
        let dir = if state_dir.is_null() {
            None
        } else {
            Some(text(state_dir, "state_dir")?)
        };
        let inner = Manager::open(dir.map(Path::new), Config::default())?;
        *out_manager = Box::into_raw(Box::new(bits_manager { inner }));
        Ok(hr::S_OK)
    })
}

/// Opens a manager with options (see `bits_manager_options`); `bits_manager_open` is this with
/// every option at its default.
///
/// - `options`: borrowed for the call; `struct_size` must cover at least `struct_size`,
///   `required_version` and `state_dir`; a larger struct than this library's is accepted when the
///   fields it does not know are zero.
/// - `out_manager`: as for `bits_manager_open`.
///
/// Thread: any. Blocks as `bits_manager_open` does.
///
/// Returns what `bits_manager_open` returns, and BITS_E_INVALIDARG (`struct_size` too small, or
/// unknown fields set);
/// REGDB_E_CLASSNOTREG 0x80040154 (`required_version` is newer than this library).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_open_ex(
    options: *const bits_manager_options,
    out_manager: *mut *mut bits_manager,
) -> bits_hresult {
    call("bits_manager_open_ex", || {
        let out_manager = out(out_manager, "out_manager")?;
        let o = read_options(options)?;
        let dir = if o.state_dir.is_null() {
            None
        } else {
            Some(text(o.state_dir, "state_dir")?)
        };
        let mut config = Config::default();
        if o.max_concurrent_jobs > 0 {
            config.max_concurrent_jobs = o.max_concurrent_jobs as usize;
        }
        if o.checkpoint_interval_ms > 0 {
            config.checkpoint_interval = Duration::from_millis(o.checkpoint_interval_ms.into());
        }
        if o.checkpoint_bytes > 0 {
            config.checkpoint_bytes = o.checkpoint_bytes;
        }
        if o.inactivity_timeout_s > 0 {
            config.inactivity_timeout = Duration::from_secs(o.inactivity_timeout_s.into());
        }
        if o.time_slice_ms > 0 {
            config.time_slice = Duration::from_millis(o.time_slice_ms.into());
        }
        if o.max_connections_per_host > 0 {
            config.max_connections_per_host = o.max_connections_per_host as usize;
        }
        if o.files_in_flight > 0 {
            config.files_in_flight = o.files_in_flight as usize;
        }
        if !o.owner.is_null() {
            config.owner = Some(text(o.owner, "owner")?.to_string());
        }
        config.service_mode = o.service_mode != 0;
        for (value, setting) in [
            (o.max_jobs, &mut config.max_jobs),
            (o.max_jobs_per_owner, &mut config.max_jobs_per_owner),
            (o.max_files_per_job, &mut config.max_files_per_job),
            (o.max_ranges_per_file, &mut config.max_ranges_per_file),
        ] {
            if value > 0 {
                *setting = value;
            }
        }
        let inner = Manager::open(dir.map(Path::new), config)?;
        *out_manager = Box::into_raw(Box::new(bits_manager { inner }));
        Ok(hr::S_OK)
    })
}

/// Copies the part of the caller's options its `struct_size` covers; the rest stays zero (default).
unsafe fn read_options(
    options: *const bits_manager_options,
) -> Result<bits_manager_options, Error> {
    if options.is_null() {
        return Err(crate::boundary::null("options"));
    }
    let size = options.cast::<u32>().read_unaligned() as usize;
    let (major, minor) = library_version();
    // The version comes first (it is in the first 8 bytes every size covers): a program built
    // against a newer header must hear "too old", not "bad size".
    if size >= 8 {
        let required = options.cast::<u32>().add(1).read_unaligned();
        if required > (major << 16 | minor) {
            return Err(Error::new(
                HResult::from_u32(0x8004_0154),
                format!(
                    "version {}.{} of openbits is required; this is {major}.{minor}",
                    required >> 16,
                    required & 0xFFFF
                ),
            ));
        }
    }
    let minimum = std::mem::offset_of!(bits_manager_options, state_dir);
    let ours = std::mem::size_of::<bits_manager_options>();
    if size < minimum {
        return Err(Error::new(
            hr::E_INVALIDARG,
            format!("options.struct_size is {size}; at least {minimum} is needed"),
        ));
    }
    // A newer caller's larger struct is fine as long as it leaves the fields this library does not
    // know at zero (their defaults); otherwise it asks for something this library cannot do.
    if size > ours {
        let extra = std::slice::from_raw_parts(options.cast::<u8>().add(ours), size - ours);
        if extra.iter().any(|b| *b != 0) {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("options set fields this library does not know (struct_size {size}, known {ours})"),
            ));
        }
    }
    let size = size.min(ours);
    let mut o: bits_manager_options = std::mem::zeroed();
    std::ptr::copy_nonoverlapping(
        options.cast::<u8>(),
        (&mut o as *mut bits_manager_options).cast::<u8>(),
        size,
    );
    Ok(o)
}

fn library_version() -> (u32, u32) {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Stops every transfer, records the progress already flushed to disk, joins the manager's threads
/// (within 5 s) and frees the manager. Consumes `manager`; NULL does nothing. The jobs stay in the
/// state folder: the next `bits_manager_open` on it continues them.
///
/// Job references obtained from this manager stay valid memory: release them as usual. Every call
/// on them afterwards fails with BITS_E_INVALID_STATE, and `bits_job_wait` calls blocked on them
/// return BITS_E_INVALID_STATE.
///
/// Thread: any thread except one of the manager's own. No other call may use `manager` at the
/// same time or afterwards. Blocks up to 5 s.
#[no_mangle]
pub unsafe extern "C" fn bits_manager_close(manager: *mut bits_manager) {
    call_void("bits_manager_close", || {
        if !manager.is_null() {
            drop(Box::from_raw(manager));
        }
    })
}

/// Creates a job (IBackgroundCopyManager::CreateJob). The job starts SUSPENDED with a new random
/// id.
///
/// - `display_name`: UTF-8, at most 256 characters, need not be unique; borrowed for the call.
/// - `job_type`: BITS_JOB_TYPE_DOWNLOAD; BITS_JOB_TYPE_UPLOAD (one file, sent with the BITS upload
///   protocol to an IIS BITS extension or openbits-server; resumes its server session after a
///   failure, a restart or a crash); or BITS_JOB_TYPE_UPLOAD_REPLY (an upload whose server
///   application answers: the reply is fetched before the session closes, read with
///   `bits_job_get_reply_data`, and put in its file by `bits_complete`).
/// - `out_job_id`: receives the id (may be NULL if not wanted); zeroed on failure.
/// - `out_job`: receives a new job reference, released with `bits_job_release`; NULL on failure.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG (name too long, bad UTF-8, undefined
/// `job_type`); BITS_E_TOO_MANY_JOBS_PER_MACHINE / BITS_E_TOO_MANY_JOBS_PER_USER
/// (the manager's max_jobs / max_jobs_per_owner, outside service mode); BITS_E_INVALID_STATE
/// (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_create_job(
    manager: *mut bits_manager,
    display_name: *const c_char,
    job_type: i32,
    out_job_id: *mut bits_guid,
    out_job: *mut *mut bits_job,
) -> bits_hresult {
    call("bits_create_job", || {
        // Every out-parameter is zeroed before any check can fail.
        let out_id = crate::boundary::out_opt(out_job_id);
        let out_job = out(out_job, "out_job")?;
        let manager = arg(manager, "manager")?;
        let name = text(display_name, "display_name")?;
        let job_type = JobType::from_i32(job_type).ok_or_else(|| {
            Error::new(hr::E_INVALIDARG, format!("undefined job type {job_type}"))
        })?;
        let job = manager.inner.create_job(name, job_type)?;
        if let Some(id) = out_id {
            *id = job.id().into();
        }
        *out_job = Box::into_raw(Box::new(bits_job { inner: job }));
        Ok(hr::S_OK)
    })
}

/// Finds a job by id (IBackgroundCopyManager::GetJob).
///
/// - `job_id`: borrowed for the call.
/// - `out_job`: receives a new job reference, released with `bits_job_release`; NULL on failure.
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_NOT_FOUND (no such job, or it was completed or
/// cancelled); BITS_E_ACCESSDENIED (another owner's job, and the manager is not in service mode);
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_get_job(
    manager: *mut bits_manager,
    job_id: *const bits_guid,
    out_job: *mut *mut bits_job,
) -> bits_hresult {
    call("bits_get_job", || {
        let out_job = out(out_job, "out_job")?;
        let manager = arg(manager, "manager")?;
        let id = *arg(job_id, "job_id")?;
        let job = manager.inner.get_job(&id.into())?;
        *out_job = Box::into_raw(Box::new(bits_job { inner: job }));
        Ok(hr::S_OK)
    })
}

/// BG_JOB_ENUM_ALL_USERS: list every owner's jobs (service mode only; see `bits_enum_jobs`).
pub const BITS_JOB_ENUM_ALL_USERS: u32 = 0x1;

/// Lists the ids of the manager's jobs that are not in a final state, in creation order
/// (IBackgroundCopyManager::EnumJobs).
///
/// - `flags`: 0 for the manager's owner's jobs; BITS_JOB_ENUM_ALL_USERS for every owner's, which
///   needs a manager in service mode (else BITS_E_ACCESSDENIED). Any other bit: BITS_E_INVALIDARG.
/// - `out_ids`: receives an array of `*out_count` ids owned by the caller and freed with
///   `bits_free` (NULL when the count is 0, and on failure).
/// - `out_count`: receives the number of ids (0 on failure).
///
/// Thread: any. Does not block.
///
/// Returns BITS_S_OK; BITS_E_POINTER; BITS_E_INVALIDARG; BITS_E_ACCESSDENIED; BITS_E_OUTOFMEMORY;
/// BITS_E_INVALID_STATE (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_enum_jobs(
    manager: *mut bits_manager,
    flags: u32,
    out_ids: *mut *mut bits_guid,
    out_count: *mut u32,
) -> bits_hresult {
    call("bits_enum_jobs", || {
        let out_ids = crate::boundary::out_opt(out_ids);
        let out_count = crate::boundary::out_opt(out_count);
        let (Some(out_ids), Some(out_count)) = (out_ids, out_count) else {
            return Err(crate::boundary::null("out_ids or out_count"));
        };
        let manager = arg(manager, "manager")?;
        if flags & !BITS_JOB_ENUM_ALL_USERS != 0 {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!("undefined flags 0x{flags:X}"),
            ));
        }
        let all_users = flags & BITS_JOB_ENUM_ALL_USERS != 0;
        let ids: Vec<bits_guid> = manager
            .inner
            .jobs_of(all_users)?
            .iter()
            .map(|j| j.id().into())
            .collect();
        if !ids.is_empty() {
            *out_ids = crate::boundary::alloc_array(&ids)?;
        }
        *out_count = ids.len() as u32;
        Ok(hr::S_OK)
    })
}

/// Takes the next event of any of the manager's jobs, waiting up to `timeout_ms` milliseconds
/// (0: do not wait; BITS_INFINITE: no limit). This is the pull side of BITS's notifications:
/// - BITS_NOTIFY_JOB_TRANSFERRED when a job becomes TRANSFERRED;
/// - BITS_NOTIFY_JOB_ERROR when a job goes to ERROR (a transient error is not one), with the code;
/// - BITS_NOTIFY_FILE_TRANSFERRED when a file of a job is completely transferred;
/// - BITS_NOTIFY_JOB_MODIFICATION when a job's state or properties change, and for progress (at
///   most every 500 ms per job).
///
/// Events come in order and are never dropped: while one MODIFICATION event of a job waits, later
/// ones merge into it (it carries the latest state); the other kinds always queue. Every kind is
/// queued whatever the job's notify flags.
///
/// - `out_event`: receives the event; zeroed on failure. Borrowed.
///
/// Thread: any; several threads may wait at once (each event goes to one of them). Blocks up to
/// `timeout_ms`. `bits_manager_close` from another thread while this call waits is allowed: the
/// wait ends with BITS_E_INVALID_STATE.
///
/// Returns BITS_S_OK; BITS_E_TIMEOUT (no event came); BITS_E_POINTER; BITS_E_INVALID_STATE
/// (manager closed).
#[no_mangle]
pub unsafe extern "C" fn bits_manager_next_event(
    manager: *mut bits_manager,
    timeout_ms: u32,
    out_event: *mut bits_event,
) -> bits_hresult {
    call("bits_manager_next_event", || {
        let out_event = out(out_event, "out_event")?;
        // A handle of its own: `manager` may be closed and freed while this call waits.
        let events = arg(manager, "manager")?.inner.events();
        let timeout = (timeout_ms != crate::job::BITS_INFINITE)
            .then(|| Duration::from_millis(timeout_ms.into()));
        *out_event = events.next(timeout)?.into();
        Ok(hr::S_OK)
    })
}
