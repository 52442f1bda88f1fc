//! The queue the verbs act on: which state folder, opening it to change it, reading it beside
//! the process that holds it, and naming that process.
//!
//! Changing verbs open a `Manager`, which takes the folder's lock; the lock is an OS `flock`, so
//! a held queue refuses at once and we exit 3 naming the holder. Reading verbs never take the
//! lock (even briefly, which could make an application's own open fail at that instant): they
//! read the database read-only, which in WAL mode never blocks the holder.

use crate::fail::Fail;
use openbits_core::hresult::HResult;
use openbits_core::store::SqliteStore;
use openbits_core::{Config, JobRecord, JobState, Manager};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION): what `Manager::open` answers on a held folder.
const HELD: HResult = HResult::from_win32(32);
/// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND): no database yet.
const NO_DATABASE: HResult = HResult::from_win32(2);
/// HRESULT_FROM_WIN32(ERROR_REVISION_MISMATCH): a schema other than this library's.
const REVISION_MISMATCH: HResult = HResult::from_win32(1306);
const LOCK_TABLE: &str = "/proc/locks";

/// The state folder: `--state-dir` / `$OPENBITS_HOME` (clap reads both), else the library's
/// per-user default. Made absolute, as the library requires.
pub fn state_dir(given: Option<&Path>) -> Result<PathBuf, Fail> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => openbits_core::manager::default_state_dir().map_err(Fail::call("state folder"))?,
    };
    if dir.is_absolute() {
        return Ok(dir);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Fail::Other(format!("cannot read the current folder: {e}")))?;
    Ok(cwd.join(dir))
}

/// How long a verb holds the queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// To make one change and close (`create`, `set`, ...): background jobs are given no
    /// transfer slot, so opening the queue does not start transfers only to stop them a moment
    /// later (FOREGROUND jobs start whatever the slots, as in BITS).
    Briefly,
    /// To transfer (`transfer`, `resume --wait`, `run`): the library's defaults.
    ToTransfer,
}

/// Opens the queue to change it. A queue held by another process is exit status 3, with the
/// holder's process id and what to do.
pub fn open(dir: &Path, hold: Hold) -> Result<Manager, Fail> {
    let config = match hold {
        Hold::Briefly => Config {
            max_concurrent_jobs: 0,
            worker_threads: 1,
            ..Config::default()
        },
        Hold::ToTransfer => Config::default(),
    };
    match Manager::open(Some(dir), config) {
        Ok(m) => Ok(m),
        Err(e) if e.code == HELD => Err(held(dir)),
        Err(e) => Err(Fail::call(format!(
            "cannot open the queue {}",
            dir.display()
        ))(e)),
    }
}

fn held(dir: &Path) -> Fail {
    let who = match holder(dir) {
        Some(h) => format!("process {} ({})", h.pid, h.name),
        None => "another process".to_string(),
    };
    Fail::Held(format!(
        "the queue {} is held by {who}, so it cannot be changed from here.\n\
         Make the change in that application, or stop it and run this again; \
         `openbits list`, `info` and `monitor` work meanwhile.",
        dir.display()
    ))
}

/// The jobs as recorded (progress as of the holder's last checkpoint), in creation order; no
/// database yet is an empty queue. Never locks, never writes.
pub fn read(dir: &Path) -> Result<Vec<JobRecord>, Fail> {
    // A manager opening the queue at this instant may be creating or migrating its database, one
    // schema step per transaction; an older schema is read again until the steps are done.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match read_once(dir) {
            Err((code, _)) if code == REVISION_MISMATCH && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((code, message)) => return Err(store_fail(dir, code, message)),
            Ok(mut jobs) => {
                // QUEUED, CONNECTING and TRANSFERRING are one state to the store (the manager
                // writes whichever it is in): with nobody holding the queue, nothing is
                // connecting or transferring, and reopening makes each of them QUEUED.
                if lock_table_readable() && holder(dir).is_none() {
                    for j in jobs.iter_mut().filter(|j| j.state.is_active()) {
                        j.state = JobState::Queued;
                    }
                }
                moving_is_transferring(&mut jobs);
                return Ok(jobs);
            }
        }
    }
}

/// The holder's checkpoints carry a moving job's state into its row, as it was when the bytes
/// were flushed: a job whose first checkpoint came while it was CONNECTING may stay CONNECTING
/// in its row until the next one. Bytes recorded past 0 mean the connection was made (or had
/// been, before a retry), so it reads TRANSFERRING, as the holder itself would say.
fn moving_is_transferring(jobs: &mut [JobRecord]) {
    for j in jobs
        .iter_mut()
        .filter(|j| j.state == JobState::Connecting && j.progress().bytes_transferred > 0)
    {
        j.state = JobState::Transferring;
    }
}

fn read_once(dir: &Path) -> Result<Vec<JobRecord>, (HResult, String)> {
    match SqliteStore::open_read_only(dir) {
        Ok(store) => store.snapshot(),
        Err((code, _)) if code == NO_DATABASE => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn store_fail(dir: &Path, code: HResult, message: String) -> Fail {
    Fail::call(format!("cannot read the queue {}", dir.display()))(openbits_core::Error::new(
        code, message,
    ))
}

/// The process holding a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
}

/// Who holds the folder's lock, from the kernel's lock table (`/proc/locks`): it reads without
/// taking any lock, so it cannot disturb the holder. None when nobody does, or on a system
/// without that table.
pub fn holder(dir: &Path) -> Option<Holder> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.join("openbits.lock")).ok()?;
    let table = std::fs::read_to_string(LOCK_TABLE).ok()?;
    let pid = lock_holder(&table, meta.dev(), meta.ino())?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|_| "unknown program".into());
    Some(Holder { pid, name })
}

/// Whether `holder` can know (Linux): elsewhere "no holder found" proves nothing.
fn lock_table_readable() -> bool {
    std::fs::metadata(LOCK_TABLE).is_ok()
}

/// The pid of the FLOCK on device `dev`, inode `ino` in a `/proc/locks` text. Lines look like
/// `3: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`; the device is `major:minor` in hex.
fn lock_holder(table: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A waiter is marked `->` after the ordinal; we only want the lock that is granted.
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let pid: u32 = fields.get(4)?.parse().ok()?;
        let mut id = fields.get(5)?.split(':');
        let lmajor = u64::from_str_radix(id.next()?, 16).ok()?;
        let lminor = u64::from_str_radix(id.next()?, 16).ok()?;
        let lino: u64 = id.next()?.parse().ok()?;
        (lmajor == major && lminor == minor && lino == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connecting_row_with_recorded_bytes_reads_transferring() {
        use openbits_core::{FileRecord, JobType};
        let job = |state: JobState, bytes: u64| {
            let mut j = JobRecord::new(uuid_of(1), JobType::Download, "j".into(), 0);
            let mut f = FileRecord::new("http://h/f".into(), "/tmp/f".into());
            f.bytes_transferred = bytes;
            j.files.push(f);
            j.state = state;
            j
        };
        let mut jobs = vec![
            job(JobState::Connecting, 0),
            job(JobState::Connecting, 10),
            job(JobState::Queued, 10),
            job(JobState::TransientError, 10),
        ];
        moving_is_transferring(&mut jobs);
        let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        assert_eq!(
            states,
            [
                JobState::Connecting,
                JobState::Transferring,
                JobState::Queued,
                JobState::TransientError
            ]
        );
    }

    fn uuid_of(n: u128) -> openbits_core::JobId {
        openbits_core::JobId::from_u128(n)
    }

    #[test]
    fn finds_the_granted_flock_of_the_file() {
        let dev = libc::makedev(0xfd, 1);
        let table = "1: POSIX  ADVISORY  WRITE 10 fd:01:77 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 99 fd:01:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 7 fd:01:78 0 EOF\n";
        assert_eq!(lock_holder(table, dev, 77), Some(4242));
        assert_eq!(lock_holder(table, dev, 78), Some(7));
        assert_eq!(lock_holder(table, dev, 79), None);
        assert_eq!(lock_holder(table, libc::makedev(8, 1), 77), None);
    }
}
