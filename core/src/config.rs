//! Manager settings. Layer 0: plain data, no imports from the rest of the crate.

use std::time::Duration;

/// Manager settings. The defaults are what a BITS user expects; tests shorten the timeouts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Background jobs transferring at once.
    pub max_concurrent_jobs: usize,
    /// Files of one job transferring at once, each on its own kept-alive connection. BITS moves
    /// a job's files one after another, and so does the default (1): with more, later files'
    /// bytes count in the job's progress before an earlier file is reported transferred. More
    /// than one hides the round trip of each small file.
    pub files_in_flight: usize,
    /// How long a background job keeps its slot while others of its priority wait.
    pub time_slice: Duration,
    /// Runtime worker threads owned by the manager.
    pub worker_threads: usize,
    /// TCP (and TLS) connection establishment limit.
    pub connect_timeout: Duration,
    /// No byte for this long (waiting for headers or body) is a transient error.
    pub stall_timeout: Duration,
    /// Progress of a file is made durable (fdatasync, then recorded) at most this often...
    pub checkpoint_interval: Duration,
    /// ...or after this many bytes, whichever comes first.
    pub checkpoint_bytes: u64,
    /// Jobs with no progress and no change for this long are cancelled (BITS's JobInactivityTimeout).
    pub inactivity_timeout: Duration,
    /// The user new jobs belong to, and whose jobs this manager sees (None: the OS user name).
    pub owner: Option<String>,
    /// BITS's "administrators and services": every owner's jobs are visible and the limits below
    /// do not apply.
    pub service_mode: bool,
    /// BITS's MaxJobsPerMachine, MaxJobsPerUser, MaxFilesPerJob, MaxRangesPerFile.
    pub max_jobs: u32,
    pub max_jobs_per_owner: u32,
    pub max_files_per_job: u32,
    pub max_ranges_per_file: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_jobs: 4,
            files_in_flight: 1,
            time_slice: Duration::from_secs(30),
            worker_threads: 2,
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_bytes: 8 << 20,
            inactivity_timeout: Duration::from_secs(90 * 24 * 3600),
            owner: None,
            service_mode: false,
            max_jobs: 300,
            max_jobs_per_owner: 60,
            max_files_per_job: 200,
            max_ranges_per_file: 500,
        }
    }
}
