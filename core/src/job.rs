//! The job model: plain data, with nothing live inside (no handles, no timers, no Instants), so the
//! store can persist it as it is.

use crate::hresult::HResult;
use crate::state::{ErrorContext, JobState, JobType, Priority};
use std::sync::{Arc, OnceLock};

/// A size or a time that is never `u64::MAX`, so an optional one takes 8 bytes (`Option<u64>`
/// takes 16): a queue holds every idle job in memory, and its records' five optional numbers
/// (a file's size, a job's size limit and three times) cost 40 bytes less a job. `u64::MAX` is no
/// real value of any of them: it is BITS's own SIZE_UNKNOWN, and BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE's
/// "no limit".
pub use nonmax::NonMaxU64;

pub type JobId = uuid::Uuid;

/// BG_SIZE_UNKNOWN.
pub const SIZE_UNKNOWN: u64 = u64::MAX;

/// BITS's defaults (bits-api.md §4.3).
pub const DEFAULT_MINIMUM_RETRY_DELAY_S: u32 = 600;
pub const DEFAULT_NO_PROGRESS_TIMEOUT_S: u32 = 1_209_600;
pub const DEFAULT_NOTIFY_FLAGS: u32 = 0x3;
/// BITS's default maximum download time: 90 days.
pub const DEFAULT_MAX_DOWNLOAD_TIME_S: u32 = 7_776_000;
pub const MAX_NOTIFY_PARAMETERS_CHARS: usize = 4_000;
pub const DEFAULT_MIN_NOTIFICATION_INTERVAL_MS: u32 = 500;
/// Every defined BG_NOTIFY_* flag.
pub const NOTIFY_FLAGS_MASK: u32 = 0x3F;
pub const MAX_DISPLAY_NAME_CHARS: usize = 256;
/// BG_HTTP_REDIRECT_POLICY_*: the redirect policy is `security_flags & REDIRECT_POLICY_MASK`.
pub const REDIRECT_POLICY_ALLOW_SILENT: u32 = 0x0000;
pub const REDIRECT_POLICY_ALLOW_REPORT: u32 = 0x0100;
pub const REDIRECT_POLICY_DISALLOW: u32 = 0x0200;
pub const REDIRECT_POLICY_MASK: u32 = 0x0700;
pub const REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP: u32 = 0x0800;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// BITS_COST_STATE_*: what the network costs (the manager is told one of the eight states).
pub const COST_STATE_UNRESTRICTED: u32 = 0x1;
pub const COST_STATE_CAPPED_USAGE_UNKNOWN: u32 = 0x2;
pub const COST_STATE_BELOW_CAP: u32 = 0x4;
pub const COST_STATE_NEAR_CAP: u32 = 0x8;
pub const COST_STATE_OVERCAP_CHARGED: u32 = 0x10;
pub const COST_STATE_OVERCAP_THROTTLED: u32 = 0x20;
pub const COST_STATE_USAGE_BASED: u32 = 0x40;
pub const COST_STATE_ROAMING: u32 = 0x80;
/// BITS_COST_OPTION_IGNORE_CONGESTION: set in every BITS_JOB_TRANSFER_POLICY value.
pub const COST_OPTION_IGNORE_CONGESTION: u32 = 0x8000_0000;
/// BITS_JOB_TRANSFER_POLICY_*: the usual cost masks (ALWAYS is BITS's default).
pub const TRANSFER_POLICY_ALWAYS: u32 = 0x8000_00FF;
pub const TRANSFER_POLICY_NOT_ROAMING: u32 = 0x8000_007F;
pub const TRANSFER_POLICY_NO_SURCHARGE: u32 = 0x8000_006F;
pub const TRANSFER_POLICY_STANDARD: u32 = 0x8000_0067;
pub const TRANSFER_POLICY_UNRESTRICTED: u32 = 0x8000_0021;
/// Every bit a transfer policy may hold.
pub const TRANSFER_POLICY_MASK: u32 = 0x8000_00FF;
pub const MAX_REMOTE_URL_CHARS: usize = 2_200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub job_type: JobType,
    /// Creation order (BITS enumerates jobs in it; equal priorities are served in it). Given by the
    /// manager, kept by the store.
    pub seq: u64,
    /// `Box<str>`, like the file names: two words instead of a `String`'s three, for every job.
    pub display_name: Box<str>,
    pub description: Box<str>,
    /// The user the job belongs to (the OS user name of the process that created it). Shared:
    /// a queue's jobs almost all have the same owner, and a clone costs no allocation.
    pub owner: Arc<str>,
    pub priority: Priority,
    pub state: JobState,
    pub files: Vec<FileRecord>,
    /// Boxed, like the rarely set strings below (`Box<str>`, two words instead of three): a queue
    /// holds every idle job in memory, and most jobs never have these.
    pub error: Option<Box<JobError>>,
    pub minimum_retry_delay_s: u32,
    pub no_progress_timeout_s: u32,
    /// BG_NOTIFY_* flags for push callbacks (BITS's default: JOB_TRANSFERRED | JOB_ERROR).
    pub notify_flags: u32,
    /// Progress MODIFICATION events come at most this often (BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS).
    pub min_notification_interval_ms: u32,
    /// BG_HTTP_REDIRECT_POLICY_* / BG_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP bits.
    pub security_flags: u32,
    /// BITS_JOB_PROPERTY_DYNAMIC_CONTENT: no Content-Length needed; an interruption restarts the
    /// file from 0.
    pub dynamic_content: bool,
    /// BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE, per file.
    pub max_download_size: Option<NonMaxU64>,
    /// SetMaximumDownloadTime: seconds of CONNECTING + TRANSFERRING allowed since the last resume
    /// (0: no limit).
    pub max_download_time_s: u32,
    /// CONNECTING + TRANSFERRING time since the last resume, counted when a transfer task ends.
    pub active_ms: u64,
    /// Set by the first resume: some properties are fixed from then on.
    pub resumed_once: bool,
    /// SetProxySettings: BG_JOB_PROXY_USAGE (0 PRECONFIG: the http_proxy / https_proxy / no_proxy
    /// environment; 1 NO_PROXY; 2 OVERRIDE with the extras' `proxy_list` and `proxy_bypass`).
    pub proxy_usage: i32,
    /// Custom headers, the notification command line and the proxy override: most jobs have
    /// none, so they live in one box (None when every one is None; see `set_extras`).
    pub extras: Option<Box<JobExtras>>,
    /// Times are milliseconds since the Unix epoch, UTC.
    pub created_ms: u64,
    pub modified_ms: u64,
    pub transfer_completed_ms: Option<NonMaxU64>,
    pub error_count: u32,
    /// When a TRANSIENT_ERROR job goes back to QUEUED.
    pub retry_at_ms: Option<NonMaxU64>,
    /// Start of the current no-progress period: set by the first transient error, cleared by progress.
    pub no_progress_since_ms: Option<NonMaxU64>,
    /// A complete or cancel that was decided but whose files may not all be settled yet; whoever
    /// opens the store next finishes it.
    pub settling: Option<Settle>,
}

/// The settings of a job that most jobs never set (`JobRecord::extras`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobExtras {
    /// Extra request headers in BITS's `"Name: value\r\n..."` form (validated when set).
    pub custom_headers: Option<Box<str>>,
    /// SetNotifyCmdLine: a program run when the job is TRANSFERRED or in ERROR (if no callback is
    /// registered), and its parameters (argv[0] first).
    pub notify_program: Option<Box<str>>,
    pub notify_parameters: Option<Box<str>>,
    /// SetProxySettings with BG_JOB_PROXY_USAGE_OVERRIDE: the proxies and the bypass list.
    pub proxy_list: Option<Box<str>>,
    pub proxy_bypass: Option<Box<str>>,
    /// The job's own rate limit in bytes per second, foreground or not (0: none). Beyond BITS.
    pub max_bandwidth: u64,
    /// BITS_JOB_PROPERTY_ID_COST_FLAGS: the network costs (BITS_COST_STATE_* bits) the job may
    /// transfer on. None: BITS's default, TRANSFER_POLICY_ALWAYS.
    pub transfer_policy: Option<u32>,
    /// SetReplyFileName (upload-reply jobs): where `complete` puts the reply. None: beside the
    /// uploaded file (`JobRecord::reply_path`).
    pub reply_file_name: Option<Box<str>>,
    /// HttpOptions3::MakeCustomHeadersWriteOnly: the headers are sent (and stored, as BITS
    /// stores them) but no API reads them back. Cannot be undone.
    pub custom_headers_write_only: bool,
    /// Beyond BITS: a PEM file of root certificates the job trusts instead of the platform's.
    pub trusted_roots: Option<Box<str>>,
    /// SetClientCertificateByName with files: PEM files of the client certificate (chain) and key.
    pub client_certificate: Option<Box<str>>,
    pub client_key: Option<Box<str>>,
    /// Beyond BITS: a PEM file of certificate revocation lists the server's chain is checked
    /// against (there is no system revocation service to ask).
    pub crl_file: Option<Box<str>>,
    /// The job had a server certificate callback. Callbacks live in the process only (as in
    /// BITS); until the application sets one again, HTTPS transfers stop with
    /// BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED.
    pub certificate_callback_required: bool,
}

impl JobExtras {
    pub const NONE: JobExtras = JobExtras {
        custom_headers: None,
        notify_program: None,
        notify_parameters: None,
        proxy_list: None,
        proxy_bypass: None,
        max_bandwidth: 0,
        transfer_policy: None,
        reply_file_name: None,
        custom_headers_write_only: false,
        trusted_roots: None,
        client_certificate: None,
        client_key: None,
        crl_file: None,
        certificate_callback_required: false,
    };
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    Completing = 1,
    Cancelling = 2,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    pub remote_url: Box<str>,
    pub local_path: Box<str>,
    /// `BIT*.tmp` beside the destination; chosen when the transfer of this file first starts.
    /// (`Box<str>` here and below: two words instead of three, for every idle file.)
    pub temp_path: Option<Box<str>>,
    /// None until the server (or the source file) has told us.
    pub bytes_total: Option<NonMaxU64>,
    pub bytes_transferred: u64,
    /// Bytes known to be flushed to disk (fdatasync) and the only progress the store records, so
    /// the record can never claim data the disk does not hold.
    pub bytes_checkpointed: u64,
    /// Set only once the whole file is flushed to disk.
    pub completed: bool,
    /// Validators of the representation the temp file holds bytes of.
    pub etag: Option<Box<str>>,
    pub last_modified: Option<Box<str>>,
    /// Set once `complete` has renamed this file onto its destination.
    pub committed: bool,
    /// What few files have (byte ranges, an upload session, a reply): None when they have none
    /// of it (see `extras`, `set_extras`). One box for the three keeps an idle download's record
    /// at 120 bytes instead of 152, a queue of 100,000 one-file jobs 3 MB smaller.
    pub extras: Option<Box<FileExtras>>,
}

/// The parts of a file's record that most files never have (`FileRecord::extras`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileExtras {
    /// AddFileWithRanges: only these byte ranges of the remote file, written one after another
    /// into the local file. None: the whole file.
    pub ranges: Option<Box<[FileRange]>>,
    /// Upload jobs: the server's session id (BITS-Session-Id), recorded as soon as the session
    /// is created, so a restart continues the same session. `bytes_checkpointed` is then the
    /// offset the server acknowledged.
    pub upload_session: Option<Box<str>>,
    /// Upload-reply jobs: the reply, once the server has named it. Its bytes go to `temp_path`
    /// until `complete` renames that onto the job's reply file.
    pub reply: Option<Reply>,
}

impl FileExtras {
    pub const NONE: FileExtras = FileExtras {
        ranges: None,
        upload_session: None,
        reply: None,
    };
}

/// The reply of an upload-reply job (BG_JOB_REPLY_PROGRESS and where to fetch it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The absolute URL the server's `BITS-Reply-URL` resolved to.
    pub url: Box<str>,
    /// None until the reply's response says.
    pub total: Option<u64>,
    pub received: u64,
}

/// BG_JOB_REPLY_PROGRESS: `bytes_total` is SIZE_UNKNOWN until the reply's size is known.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyProgress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
}

/// GetReplyData hands over at most this much (BITS's 1 MB); a longer reply is read from its file.
pub const MAX_REPLY_DATA: u64 = 1 << 20;

/// BG_FILE_RANGE: `length` LENGTH_TO_EOF means "to the end of the remote file".
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FileRange {
    pub offset: u64,
    pub length: u64,
}

/// BG_LENGTH_TO_EOF.
pub const LENGTH_TO_EOF: u64 = u64::MAX;

/// Rarely set fields as a record keeps them: boxed, or None when none of them is set (so a record
/// that had some and lost them equals one that never had any, and costs no box).
pub(crate) fn rare_box<T: PartialEq>(rare: T, none: &T) -> Option<Box<T>> {
    (rare != *none).then(|| Box::new(rare))
}

/// Changes a box of rarely set fields (see `rare_box`); a record without one gets one only if
/// the change leaves something set.
fn change_rare<T: Default + PartialEq>(
    rare: &mut Option<Box<T>>,
    none: &T,
    change: impl FnOnce(&mut T),
) {
    match rare.as_deref_mut() {
        Some(e) => {
            change(e);
            if *e == *none {
                *rare = None;
            }
        }
        None => {
            let mut e = T::default();
            change(&mut e);
            *rare = rare_box(e, none);
        }
    }
}

impl FileRecord {
    pub fn new(remote_url: String, local_path: String) -> FileRecord {
        FileRecord {
            remote_url: remote_url.into(),
            local_path: local_path.into(),
            temp_path: None,
            bytes_total: None,
            bytes_transferred: 0,
            bytes_checkpointed: 0,
            completed: false,
            etag: None,
            last_modified: None,
            committed: false,
            extras: None,
        }
    }

    /// What few files have (all None if this one has none of it).
    pub fn extras(&self) -> &FileExtras {
        self.extras.as_deref().unwrap_or(&FileExtras::NONE)
    }

    /// Changes what few files have (see `change_rare`).
    pub fn set_extras(&mut self, change: impl FnOnce(&mut FileExtras)) {
        change_rare(&mut self.extras, &FileExtras::NONE, change);
    }

    /// Forget the partial content: the next attempt starts this file from byte 0.
    pub fn restart(&mut self) {
        self.bytes_transferred = 0;
        self.bytes_checkpointed = 0;
        self.bytes_total = None;
        self.etag = None;
        self.last_modified = None;
        self.completed = false;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub context: ErrorContext,
    pub code: HResult,
    pub description: String,
    /// Index into `files` of the file the error belongs to.
    pub file_index: Option<u32>,
}

/// BG_JOB_PROGRESS.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub files_total: u32,
    pub files_transferred: u32,
}

impl JobRecord {
    pub fn new(id: JobId, job_type: JobType, display_name: String, now_ms: u64) -> JobRecord {
        JobRecord {
            id,
            job_type,
            seq: 0,
            display_name: display_name.into(),
            description: "".into(),
            owner: process_user(),
            priority: Priority::Normal,
            state: JobState::Suspended,
            files: Vec::new(),
            error: None,
            minimum_retry_delay_s: DEFAULT_MINIMUM_RETRY_DELAY_S,
            no_progress_timeout_s: DEFAULT_NO_PROGRESS_TIMEOUT_S,
            notify_flags: DEFAULT_NOTIFY_FLAGS,
            min_notification_interval_ms: DEFAULT_MIN_NOTIFICATION_INTERVAL_MS,
            security_flags: 0,
            dynamic_content: false,
            max_download_size: None,
            max_download_time_s: DEFAULT_MAX_DOWNLOAD_TIME_S,
            active_ms: 0,
            resumed_once: false,
            proxy_usage: 0,
            extras: None,
            created_ms: now_ms,
            modified_ms: now_ms,
            transfer_completed_ms: None,
            error_count: 0,
            retry_at_ms: None,
            no_progress_since_ms: None,
            settling: None,
        }
    }

    /// Leaves write-only custom headers out of a copy given to a reader (the API, tools reading
    /// the database beside the queue): they are sent, never shown.
    pub fn redact_write_only(&mut self) {
        if self.extras().custom_headers_write_only {
            self.set_extras(|e| e.custom_headers = None);
        }
    }

    /// The rarely set settings (all None if the job has none).
    pub fn extras(&self) -> &JobExtras {
        self.extras.as_deref().unwrap_or(&JobExtras::NONE)
    }

    /// Changes the rarely set settings (see `change_rare`).
    pub fn set_extras(&mut self, change: impl FnOnce(&mut JobExtras)) {
        change_rare(&mut self.extras, &JobExtras::NONE, change);
    }

    /// A copy of everything but the files (what a change must be able to put back).
    pub fn head(&mut self) -> JobRecord {
        let files = std::mem::take(&mut self.files);
        let head = self.clone();
        self.files = files;
        head
    }

    /// Whether the job's own row, as the store keeps it, is the same in `self` (a head) and `new`:
    /// the modification and active times are refreshed with the next write anyway, and QUEUED,
    /// CONNECTING and TRANSFERRING are one state to the store (reopening makes each QUEUED). A
    /// `self` with files is never the same (the answer is only ever "write the row").
    pub fn same_row(&self, new: &mut JobRecord) -> bool {
        let class = |s: JobState| match s {
            JobState::Connecting | JobState::Transferring => JobState::Queued,
            s => s,
        };
        if class(self.state) != class(new.state) {
            return false;
        }
        // `new` takes `self`'s values of what the row does not tell apart for the comparison, and
        // gets its own back: no copy of either record (this runs on every change of a job).
        let files = std::mem::take(&mut new.files);
        let own = (new.state, new.modified_ms, new.active_ms);
        (new.state, new.modified_ms, new.active_ms) =
            (self.state, self.modified_ms, self.active_ms);
        let same = *self == *new;
        (new.state, new.modified_ms, new.active_ms) = own;
        new.files = files;
        same
    }

    /// Where `complete` puts an upload-reply job's reply: the name the application set, or
    /// `<uploaded file>.<job id>.reply` beside the uploaded file (BITS also picks a name in that
    /// folder). None for other job types, and before the job has its file.
    pub fn reply_path(&self) -> Option<std::path::PathBuf> {
        if self.job_type != JobType::UploadReply {
            return None;
        }
        if let Some(name) = &self.extras().reply_file_name {
            return Some(std::path::PathBuf::from(&**name));
        }
        let f = self.files.first()?;
        Some(std::path::PathBuf::from(format!(
            "{}.{}.reply",
            f.local_path,
            self.id.hyphenated()
        )))
    }

    pub fn all_files_done(&self) -> bool {
        self.files.iter().all(|f| f.completed)
    }

    /// BITS reports BG_SIZE_UNKNOWN while any file's size is unknown.
    pub fn progress(&self) -> Progress {
        let mut p = Progress {
            files_total: self.files.len() as u32,
            ..Progress::default()
        };
        let mut total = Some(0u64);
        for f in &self.files {
            p.bytes_transferred += f.bytes_transferred;
            total = total.and_then(|t| f.bytes_total.map(|b| t + b.get()));
            p.files_transferred += f.completed as u32;
        }
        p.bytes_total = total.unwrap_or(SIZE_UNKNOWN);
        p
    }
}

/// `current_user`, looked up once per process: a new record's default owner.
pub fn process_user() -> Arc<str> {
    static USER: OnceLock<Arc<str>> = OnceLock::new();
    USER.get_or_init(|| current_user().into()).clone()
}

/// The OS user name of this process (BITS's job owner).
pub fn current_user() -> String {
    // SAFETY: getpwuid_r writes into the buffers we pass and nothing else.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut out = std::ptr::null_mut();
        if libc::getpwuid_r(
            libc::geteuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        ) == 0
            && !out.is_null()
        {
            if let Ok(name) = std::ffi::CStr::from_ptr(pw.pw_name).to_str() {
                return name.to_string();
            }
        }
        format!("uid:{}", libc::geteuid())
    }
}

/// A job id as Windows writes a GUID: `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}`.
pub fn braced(id: &JobId) -> String {
    format!("{{{}}}", id.hyphenated()).to_uppercase()
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_row_ignores_only_what_the_row_does_not_keep() {
        let mut new = JobRecord::new(JobId::new_v4(), JobType::Download, "x".into(), 1);
        new.files
            .push(FileRecord::new("http://a/1".into(), "/tmp/1".into()));
        new.state = JobState::Queued;
        let old = new.head();
        // The times, a move among QUEUED, CONNECTING and TRANSFERRING, and the files: the same row.
        new.state = JobState::Transferring;
        new.modified_ms = 99;
        new.active_ms = 7;
        new.files[0].bytes_transferred = 5;
        assert!(old.same_row(&mut new));
        // ... and `new` is left as it was.
        assert_eq!(
            (new.state, new.modified_ms, new.active_ms, new.files.len()),
            (JobState::Transferring, 99, 7, 1)
        );
        // Anything else is a new row.
        new.state = JobState::Suspended;
        assert!(!old.same_row(&mut new));
        new.state = JobState::Queued;
        new.description = "d".into();
        assert!(!old.same_row(&mut new));
        new.description = "".into();
        new.error_count = 1;
        assert!(!old.same_row(&mut new));
        new.error_count = 0;
        assert!(old.same_row(&mut new));
        // A record with files is never taken for a head.
        assert!(!new.clone().same_row(&mut new));
    }

    #[test]
    fn progress_unknown_until_every_size_known() {
        let mut j = JobRecord::new(JobId::new_v4(), JobType::Download, "x".into(), 1);
        assert_eq!(
            j.progress(),
            Progress {
                bytes_total: 0,
                ..Default::default()
            }
        );
        j.files
            .push(FileRecord::new("http://a/1".into(), "/tmp/1".into()));
        j.files
            .push(FileRecord::new("http://a/2".into(), "/tmp/2".into()));
        j.files[0].bytes_total = NonMaxU64::new(10);
        j.files[0].bytes_transferred = 10;
        j.files[0].completed = true;
        assert_eq!(j.progress().bytes_total, SIZE_UNKNOWN);
        j.files[1].bytes_total = NonMaxU64::new(5);
        j.files[1].bytes_transferred = 2;
        assert_eq!(
            j.progress(),
            Progress {
                bytes_total: 15,
                bytes_transferred: 12,
                files_total: 2,
                files_transferred: 1
            }
        );
    }
}
