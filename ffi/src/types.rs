//! The types that cross the boundary. Handles are opaque to C; structs are `repr(C)` with the
//! layouts the header promises.

use openbits_core::{Job, JobId, Manager, Progress};

/// An HRESULT: >= 0 success, < 0 failure.
#[allow(non_camel_case_types)]
pub type bits_hresult = i32;

/// A manager: one queue of jobs, its state folder and its transfer threads. Opaque.
#[allow(non_camel_case_types)]
pub struct bits_manager {
    pub(crate) inner: Manager,
}

/// A reference to a job. Opaque. Each `bits_create_job` / `bits_get_job` returns a new reference,
/// released with `bits_job_release`.
#[allow(non_camel_case_types)]
pub struct bits_job {
    pub(crate) inner: Job,
}

/// A job id. Same layout as a Windows GUID and .NET's System.Guid.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_guid {
    pub data1: u32,
    pub data2: u16,
    pub data3: u16,
    pub data4: [u8; 8],
}

impl From<JobId> for bits_guid {
    fn from(id: JobId) -> bits_guid {
        let (data1, data2, data3, d4) = id.as_fields();
        bits_guid {
            data1,
            data2,
            data3,
            data4: *d4,
        }
    }
}

impl From<bits_guid> for JobId {
    fn from(g: bits_guid) -> JobId {
        JobId::from_fields(g.data1, g.data2, g.data3, &g.data4)
    }
}

/// A job's progress (BG_JOB_PROGRESS).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_job_progress {
    /// BITS_SIZE_UNKNOWN (UINT64_MAX) while any file's size is unknown.
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub files_total: u32,
    pub files_transferred: u32,
}

/// BG_JOB_REPLY_PROGRESS: an upload-reply job's reply (`bits_job_get_reply_progress`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_job_reply_progress {
    /// BITS_SIZE_UNKNOWN (UINT64_MAX) until the reply's size is known.
    pub bytes_total: u64,
    pub bytes_transferred: u64,
}

impl From<Progress> for bits_job_progress {
    fn from(p: Progress) -> bits_job_progress {
        bits_job_progress {
            bytes_total: p.bytes_total,
            bytes_transferred: p.bytes_transferred,
            files_total: p.files_total,
            files_transferred: p.files_transferred,
        }
    }
}

/// Options for `bits_manager_open_ex`. Set `struct_size` to `sizeof(bits_manager_options)`: the
/// struct grows at its end in later versions, and the library reads only the fields the caller's
/// size covers. Zero in any other field means its default.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone)]
pub struct bits_manager_options {
    /// sizeof(bits_manager_options) as the caller compiled it.
    pub struct_size: u32,
    /// The library version the caller needs, `(major << 16) | minor`; 0: any. An older library
    /// fails the open with REGDB_E_CLASSNOTREG (0x80040154).
    pub required_version: u32,
    /// State folder (UTF-8, absolute), borrowed for the call; NULL: the per-user default.
    pub state_dir: *const std::ffi::c_char,
    /// Background jobs transferring at once. Default 6 (BITS runs one). Background jobs go
    /// strictly by priority: a lower priority gets no slot while a higher one is active;
    /// FOREGROUND jobs do not count.
    pub max_concurrent_jobs: u32,
    /// Progress is made durable at most this often per file, in milliseconds. Default 1000.
    pub checkpoint_interval_ms: u32,
    /// ...or after this many bytes of a file, whichever comes first. Default 8 MiB.
    pub checkpoint_bytes: u64,
    /// Jobs with no progress and no change for this many seconds are cancelled. Default 7,776,000
    /// (90 days, BITS's JobInactivityTimeout).
    pub inactivity_timeout_s: u32,
    /// The user this manager acts for (UTF-8, borrowed): new jobs belong to it and it sees only its
    /// own jobs. NULL: the OS user name of the process.
    pub owner: *const std::ffi::c_char,
    /// Non-zero: BITS's "administrators and services": every owner's jobs are visible
    /// (BITS_JOB_ENUM_ALL_USERS, bits_get_job, bits_job_take_ownership) and the limits below do
    /// not apply.
    pub service_mode: i32,
    /// Jobs in the queue, all owners together (BITS's MaxJobsPerMachine). Default 300.
    pub max_jobs: u32,
    /// Jobs per owner (MaxJobsPerUser). Default 60.
    pub max_jobs_per_owner: u32,
    /// Files per job (MaxFilesPerJob). Default 200.
    pub max_files_per_job: u32,
    /// Byte ranges per file (MaxRangesPerFile). Default 500.
    pub max_ranges_per_file: u32,
    /// How long a background job keeps its transfer slot while others of its priority wait, in
    /// milliseconds (round-robin turns). Default 30,000.
    pub time_slice_ms: u32,
    /// Files transferred from one origin (scheme, host, port) at once, over every job of the
    /// manager, and TCP connections open to it, idle kept-alive ones included (through a proxy,
    /// counted per origin behind it). Default 6.
    pub max_connections_per_host: u32,
    /// Files of one job transferring at once, each on its own kept-alive connection (within
    /// `max_connections_per_host`). Default 6, which hides each small file's round trip; 1 moves
    /// a job's files one after another, as BITS does. Either way files are reported transferred
    /// (events, `files_transferred`) in the job's order, and complete keeps only whole files.
    pub files_in_flight: u32,
}

/// An event of a job (see `bits_manager_next_event`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_event {
    pub job_id: bits_guid,
    /// BITS_NOTIFY_JOB_TRANSFERRED, BITS_NOTIFY_JOB_ERROR, BITS_NOTIFY_JOB_MODIFICATION or
    /// BITS_NOTIFY_FILE_TRANSFERRED.
    pub kind: i32,
    /// The job's state (BITS_JOB_STATE_*) when the event was queued.
    pub state: i32,
    /// For BITS_NOTIFY_JOB_ERROR the job's error code; else BITS_S_OK.
    pub code: bits_hresult,
    /// For BITS_NOTIFY_FILE_TRANSFERRED the file's index in the job; for a progress
    /// BITS_NOTIFY_JOB_MODIFICATION the file transferring; else 0.
    pub file_index: u32,
}

impl From<openbits_core::Event> for bits_event {
    fn from(e: openbits_core::Event) -> bits_event {
        bits_event {
            job_id: e.job.into(),
            kind: e.kind as i32,
            state: e.state as i32,
            code: e.code.0,
            file_index: e.file_index,
        }
    }
}

/// A job's times (BG_JOB_TIMES), in milliseconds since 1970-01-01 UTC.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_job_times {
    pub creation_ms: u64,
    /// Last change of a property or the state, or the last recorded progress.
    pub modification_ms: u64,
    /// When the job last became TRANSFERRED; 0 if it has not.
    pub transfer_completion_ms: u64,
}

/// A file's progress (BG_FILE_PROGRESS).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_file_progress {
    /// BITS_SIZE_UNKNOWN until the size is known.
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    /// Non-zero once the whole file is transferred.
    pub completed: i32,
}

/// One file for `bits_add_file_set` (BG_FILE_INFO). Both strings are UTF-8, borrowed for the call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone)]
pub struct bits_file_info {
    pub remote_url: *const std::ffi::c_char,
    pub local_path: *const std::ffi::c_char,
}

/// A byte range of a remote file (BG_FILE_RANGE); `length` BITS_LENGTH_TO_EOF runs to the end.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct bits_file_range {
    pub initial_offset: u64,
    pub length: u64,
}
