//! Manager settings. Layer 0: plain data, no imports from the rest of the crate.

use std::time::Duration;

/// Manager settings. The defaults are what a BITS user expects; tests shorten the timeouts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Background jobs transferring at once. BITS runs one background job at a time; the default
    /// (6) is what one host allows (`max_connections_per_host`), so a queue of one-file jobs keeps
    /// as many transfers going as one job of many files does (`files_in_flight`): with 4, a queue
    /// of 2,000 small jobs took about 4% longer (bench/many.c b, order swapped each round, README).
    pub max_concurrent_jobs: usize,
    /// Files of one job transferring at once, each on its own kept-alive connection. BITS moves
    /// a job's files one after another (1); the default (6, as many as `max_connections_per_host`
    /// allows by default) hides the round trip of each small file, so a job of thousands of them
    /// moves at the network's speed. Files are still
    /// reported transferred in order; later files' bytes may count in the job's progress before
    /// an earlier file is reported transferred.
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
    /// Transfers to one origin (scheme, host, port) at once, over every job and file of the
    /// manager: each file being transferred from an origin holds one. It also bounds the TCP
    /// connections open to the origin over all of the manager's pools, idle kept-alive ones
    /// included (through a proxy, per origin behind it).
    pub max_connections_per_host: usize,
    /// The local time the bandwidth schedule is read against (None: the machine's clock and time
    /// zone). For tests.
    pub local_clock: Option<fn() -> LocalTime>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_jobs: 6,
            files_in_flight: 6,
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
            max_connections_per_host: 6,
            local_clock: None,
        }
    }
}

/// BITS's bandwidth schedule (Group Policy's EnableBandwidthLimits and EnableMaintenanceLimits):
/// limits for background jobs by priority, inside the work hours and outside them, and a
/// maintenance window that overrides both. Times are the machine's local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandwidthSchedule {
    pub work: Window,
    /// Limits outside the work hours, HIGH, NORMAL, LOW (bytes per second; see `Window::limits`).
    pub other_limits: [u64; 3],
    /// When present, its limits apply inside it, whatever the work hours say.
    pub maintenance: Option<Window>,
}

/// A weekly window: the days it starts on, and its minutes of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bit 0 Sunday ... bit 6 Saturday: the days the window starts on.
    pub days: u8,
    /// Minutes after local midnight, 0-1439. The window is [start, end); an end before the start
    /// runs past midnight into the next day; an end equal to the start is the whole day.
    pub start_minute: u16,
    pub end_minute: u16,
    /// HIGH, NORMAL, LOW, in bytes per second: 0 is no limit, `BANDWIDTH_BLOCKED` is no
    /// background transfer at all.
    pub limits: [u64; 3],
}

/// A schedule limit meaning "no background transfer": the jobs wait in TRANSIENT_ERROR with
/// BITS_E_BLOCKED_BY_POLICY (BITS's MaxInternetBandwidth of 0).
pub const BANDWIDTH_BLOCKED: u64 = u64::MAX;

/// A local time as the schedule sees it: the day of the week (0 Sunday) and the minute of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub weekday: u8,
    pub minute: u16,
}
