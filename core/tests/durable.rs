//! Jobs outlive their manager: reopen rules, close-and-reopen in the middle of transfers,
//! reconciliation of temporary files, interrupted completes and cancels, the folder lock,
//! inactivity, and refusal of damaged databases. (Killing a real process is tests/crash/.)

mod common;
use common::{temp_files, wait_until};

use openbits_core::hresult::{self as hr, HResult};
use openbits_core::job::{NonMaxU64, Settle};
use openbits_core::store::SqliteStore;
use openbits_core::{Config, FileRecord, JobId, JobRecord, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::path::Path;
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn config() -> Config {
    Config {
        stall_timeout: Duration::from_millis(800),
        checkpoint_interval: Duration::from_millis(50),
        checkpoint_bytes: 64 << 10,
        ..Config::default()
    }
}

fn open(state: &Path) -> Manager {
    Manager::open(Some(state), config()).unwrap()
}

/// A manager whose checkpoint interval is far beyond any test: whatever reaches the store got
/// there by another trigger.
fn open_without_interval(state: &Path, config: Config) -> Manager {
    let config = Config {
        checkpoint_interval: Duration::from_secs(3600),
        ..config
    };
    Manager::open(Some(state), config).unwrap()
}

#[test]
fn jobs_and_their_properties_survive_close_and_reopen() {
    let server = TestServer::start();
    server.add("/f", pattern(1000, 1));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let dest = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (suspended, errored, transferred);
    {
        let m = open(&state);
        let j = m.create_job("stays suspended", JobType::Download).unwrap();
        j.set_minimum_retry_delay(17).unwrap();
        j.set_no_progress_timeout(4242).unwrap();
        j.add_file(&server.url("/f"), &dest("s")).unwrap();
        suspended = j.id();
        let j = m.create_job("errors", JobType::Download).unwrap();
        j.add_file(&server.url("/missing"), &dest("e")).unwrap();
        j.resume().unwrap();
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Error);
        errored = j.id();
        let j = m.create_job("transferred", JobType::Download).unwrap();
        j.add_file(&server.url("/f"), &dest("t")).unwrap();
        j.resume().unwrap();
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
        transferred = j.id();
        m.close();
    }
    let m = open(&state);
    assert_eq!(m.jobs().unwrap().len(), 3);
    let s = m.get_job(&suspended).unwrap().record().unwrap();
    assert_eq!(
        (
            s.state,
            &*s.display_name,
            s.minimum_retry_delay_s,
            s.no_progress_timeout_s
        ),
        (JobState::Suspended, "stays suspended", 17, 4242)
    );
    assert_eq!(*s.files[0].remote_url, server.url("/f"));
    let e = m.get_job(&errored).unwrap();
    assert_eq!(e.state().unwrap(), JobState::Error);
    assert_eq!(e.error().unwrap().code, HResult::http(404));
    let t = m.get_job(&transferred).unwrap();
    assert_eq!(
        t.state().unwrap(),
        JobState::Transferred,
        "TRANSFERRED waits for complete"
    );
    assert_eq!(t.complete().unwrap(), hr::S_OK);
    assert!(std::fs::read(dest("t")).unwrap() == pattern(1000, 1));
    drop(m);
    // Completed jobs leave the store.
    let m = open(&state);
    assert_eq!(m.jobs().unwrap().len(), 2);
    assert_eq!(m.get_job(&transferred).unwrap_err().code, hr::E_NOT_FOUND);
}

#[test]
fn closing_mid_transfer_and_reopening_continues_from_the_checkpoint() {
    let server = TestServer::start();
    let data: Vec<Vec<u8>> = (0..3)
        .map(|i| pattern(600_000 + i * 1000, i as u64))
        .collect();
    for (i, d) in data.iter().enumerate() {
        server.add(&format!("/f{i}"), d.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut ids = Vec::new();
    {
        let m = open(&state);
        for i in 0..3 {
            let j = m.create_job("slow", JobType::Download).unwrap();
            j.add_file(
                &server.url(&format!("/f{i}?rate=300000")),
                dir.path().join(format!("f{i}")).to_str().unwrap(),
            )
            .unwrap();
            j.resume().unwrap();
            ids.push(j.id());
        }
        let jobs = m.jobs().unwrap();
        wait_until("every job has a checkpoint", || {
            jobs.iter()
                .all(|j| j.record().unwrap().files[0].bytes_checkpointed > 100_000)
        });
        m.close();
    }
    let sent_before = server.bytes_sent();
    let m = open(&state);
    for (i, id) in ids.iter().enumerate() {
        let j = m.get_job(id).unwrap();
        let r = j.record().unwrap();
        assert!(r.files[0].bytes_checkpointed > 100_000, "progress survived");
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
        assert_eq!(j.complete().unwrap(), hr::S_OK);
        assert!(
            std::fs::read(dir.path().join(format!("f{i}"))).unwrap() == data[i],
            "f{i} differs"
        );
    }
    // After the reopen each file was asked for from its checkpoint, not from 0.
    let resumed: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.range.is_some())
        .collect();
    assert_eq!(resumed.len(), 3, "{resumed:?}");
    let total: u64 = data.iter().map(|d| d.len() as u64).sum();
    assert!(server.bytes_sent() - sent_before < total - 300_000);
    assert!(temp_files(dir.path()).is_empty());
}

/// A download's later checkpoints reach the store with the batch of each checkpoint interval, even
/// while the application's calls keep asking the store's log to be folded (a fold must not put
/// the interval's batch off).
#[test]
fn interval_batches_come_while_calls_keep_the_log_busy() {
    let server = TestServer::start();
    // 10 s at the rate below: the download cannot end (and write its last checkpoint at once)
    // within the test's 8 s.
    server.add("/slow", pattern(4_000_000, 7));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = Config {
        checkpoint_interval: Duration::from_millis(600),
        checkpoint_bytes: 1 << 40,
        ..config()
    };
    let m = Manager::open(Some(&state), config).unwrap();
    let j = m.create_job("slow", JobType::Download).unwrap();
    j.add_file(
        &server.url("/slow?rate=400000"),
        dir.path().join("slow").to_str().unwrap(),
    )
    .unwrap();
    j.resume().unwrap();
    let busy = m.create_job("busy", JobType::Download).unwrap();
    let reader = SqliteStore::open_read_only(&state).unwrap();
    let stored = || {
        let jobs = reader.snapshot().unwrap();
        jobs.iter()
            .find(|r| r.id == j.id())
            .map_or(0, |r| r.files[0].bytes_checkpointed)
    };
    wait_until("the first checkpoint", || stored() > 0);
    let first = stored();
    // A call every 100 ms: each one after a fold asks for the next fold.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut calls = 0;
    while stored() <= first && std::time::Instant::now() < deadline {
        busy.set_description(&format!("call {calls}")).unwrap();
        calls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let later = stored();
    assert!(
        later > first,
        "after {calls} calls the store still holds the first checkpoint ({first} bytes)"
    );
    assert_eq!(j.cancel().unwrap(), hr::S_OK);
}

/// TRANSFERRED is written by the checkpoint batch that makes the files durable (no transaction
/// of its own), and that batch comes at once: another process reading the folder sees the state
/// and its time while the manager is still open.
#[test]
fn a_transferred_job_reaches_the_store_with_its_batch() {
    let server = TestServer::start();
    server.add("/t", pattern(20_000, 3));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Only the TRANSFERRED batch can write it.
    let m = open_without_interval(&state, config());
    let j = m.create_job("t", JobType::Download).unwrap();
    j.add_file(&server.url("/t"), dir.path().join("t").to_str().unwrap())
        .unwrap();
    j.resume().unwrap();
    assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
    let mine = j.record().unwrap();
    let reader = SqliteStore::open_read_only(&state).unwrap();
    wait_until("the store says TRANSFERRED", || {
        reader.snapshot().unwrap()[0].state == JobState::Transferred
    });
    let stored = reader.snapshot().unwrap().remove(0);
    assert_eq!(stored.transfer_completed_ms, mine.transfer_completed_ms);
    assert!(stored.files[0].completed && stored.files[0].temp_path.is_some());
    assert_eq!(j.complete().unwrap(), hr::S_OK);
}

/// A completed file carries the server's Last-Modified (as in BITS). A file finished by this process
/// has it on its temporary file already (set on the open file, so complete does not pay for it);
/// one finished by an earlier process gets it by name at complete, even if the earlier process
/// did not leave it (an older openbits, or a sync that did not keep it). A server that sends none
/// leaves the download time.
#[test]
fn completed_files_carry_the_servers_time_stamp() {
    let server = TestServer::start();
    server.add("/t", pattern(30_000, 7));
    // The test server's fixed Last-Modified.
    let stamp = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mtime = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let m = open(&state);
    let job = |name: &str, query: &str| {
        let j = m.create_job(name, JobType::Download).unwrap();
        let local = dir.path().join(name);
        j.add_file(&server.url(&format!("/t{query}")), local.to_str().unwrap())
            .unwrap();
        j.resume().unwrap();
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
        j
    };
    let now = job("now", "");
    let later = job("later", "");
    let unstamped = job("unstamped", "?nolastmod=1");
    let temp_of = |j: &openbits_core::Job| {
        j.record().unwrap().files[0]
            .temp_path
            .as_deref()
            .map(std::path::PathBuf::from)
            .unwrap()
    };
    let stamp_of = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    // A one-file job's file finishes without a name and gets it from a batch when complete has
    // not come for it within a moment: it has the stamp then too.
    wait_until("the finished file gets its name", || temp_of(&now).exists());
    assert_eq!(stamp_of(&temp_of(&now)), stamp, "stamped when it finished");
    assert_eq!(now.complete().unwrap(), hr::S_OK);
    assert_eq!(mtime("now"), stamp);
    assert_eq!(unstamped.complete().unwrap(), hr::S_OK);
    let age = std::time::SystemTime::now()
        .duration_since(mtime("unstamped"))
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "{age:?}");
    let later_id = later.id();
    // As an older openbits would have left it: no stamp on the finished file.
    let later_temp = temp_of(&later);
    drop((now, later, unstamped, m));
    std::fs::File::options()
        .write(true)
        .open(&later_temp)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let m = open(&state);
    let later = m.get_job(&later_id).unwrap();
    assert_eq!(later.complete().unwrap(), hr::S_OK);
    assert_eq!(mtime("later"), stamp);
}

/// Files that finish faster than the checkpoint interval are made durable and recorded as they
/// pile up, not only at the interval or at the end of the job: with an interval far beyond the
/// test and the job's last file hanging, another process sees the finished files' checkpoints
/// while the job is still transferring.
#[test]
fn finished_files_are_recorded_as_they_pile_up() {
    let server = TestServer::start();
    server.add("/s", pattern(2_000, 5));
    server.add("/hang", pattern(10_000, 6));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let m = open_without_interval(
        &state,
        Config {
            stall_timeout: Duration::from_secs(3600),
            max_files_per_job: 2000,
            ..config()
        },
    );
    let j = m.create_job("pile", JobType::Download).unwrap();
    let url = server.url("/s");
    let mut files: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let local = dir.path().join(format!("f{i}"));
            (url.clone(), local.to_str().unwrap().to_string())
        })
        .collect();
    let hang = dir.path().join("hang");
    files.push((
        server.url("/hang?stall=0"),
        hang.to_str().unwrap().to_string(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(u, l)| (u.as_str(), l.as_str()))
        .collect();
    j.add_file_set(&refs).unwrap();
    j.resume().unwrap();
    let reader = SqliteStore::open_read_only(&state).unwrap();
    let recorded = || {
        reader.snapshot().unwrap()[0]
            .files
            .iter()
            .filter(|f| f.completed && f.bytes_checkpointed == 2_000)
            .count()
    };
    // With the trigger every 64 waiting (BATCH_FILES) start a batch, so at most 63 of the 1,000
    // finished files wait for the interval. Without it only the batches of the task's first
    // checkpoints would be there: the files that finished before they were taken.
    wait_until("finished files recorded before the job ends", || {
        recorded() >= 1000 - 63
    });
    assert_eq!(j.state().unwrap(), JobState::Transferring);
    assert_eq!(j.cancel().unwrap(), hr::S_OK);
}

#[test]
fn one_manager_per_folder() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let err = Manager::open(Some(dir.path()), config()).err().unwrap();
    assert_eq!(err.code.as_u32(), 0x8007_0020);
    assert!(err.message.contains("in use"), "{}", err.message);
    drop(m);
    drop(open(dir.path()));
}

/// A job handle can keep a closed manager's store alive after the folder's lock is gone and
/// another manager holds the folder: that store must not write into the folder any more, in
/// particular not empty the operation log the new holder appends to (its later records would
/// then sit past a hole and be lost to the next open).
#[test]
fn a_store_kept_alive_past_close_leaves_the_next_holders_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let kept = first.create_job("kept", JobType::Download).unwrap();
    drop(first);
    let err = kept.resume().err().unwrap();
    assert_eq!(err.code, hr::E_INVALID_STATE, "{}", err.message);
    let second = open(dir.path());
    let job = second.create_job("second", JobType::Download).unwrap();
    let log = dir.path().join("openbits.oplog");
    let before = std::fs::metadata(&log).unwrap().len();
    assert!(before > 0, "the new holder's call is in its log");
    drop(kept);
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(
        after >= before,
        "the log went from {before} to {after} bytes"
    );
    job.set_display_name("still here").unwrap();
    drop(job);
    drop(second);
    let third = open(dir.path());
    let names: Vec<String> = third
        .jobs()
        .unwrap()
        .iter()
        .map(|j| j.record().unwrap().display_name.to_string())
        .collect();
    assert!(names.contains(&"still here".to_string()), "{names:?}");
}

#[test]
fn state_folder_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a/b/state");
    let m = open(&state);
    m.create_job("x", JobType::Download).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("openbits.db")), 0o600);
}

#[test]
fn damaged_databases_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("openbits.db");
    std::fs::write(
        &db,
        b"SQLite format 3\0 but then garbage follows ................",
    )
    .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = Manager::open(Some(dir.path()), config()).err().unwrap();
    assert_eq!(err.code, hr::E_DATABASE_CORRUPT, "{}", err.message);
    assert_eq!(std::fs::read(&db).unwrap(), before);
    // The lock is released after the failed open: fixing the file lets the next open work.
    std::fs::remove_file(&db).unwrap();
    drop(open(dir.path()));
}

/// The integrity check of a database at today's schema runs beside the first read (on a
/// connection of its own) and still decides the open: a damaged free-page list, which no row
/// read touches, is refused as a damaged header is, and the file is left as it was.
#[test]
fn damage_only_the_integrity_check_sees_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = open(dir.path());
        let long = "d".repeat(1000);
        for i in 0..60 {
            let j = m.create_job(&format!("j{i}"), JobType::Download).unwrap();
            j.set_description(&long).unwrap();
        }
    }
    {
        // Another manager: the rows are in the tables now, so removing them frees pages.
        let m = open(dir.path());
        for j in &m.jobs().unwrap()[..45] {
            assert_eq!(j.cancel().unwrap(), hr::S_OK);
        }
    }
    let db = dir.path().join("openbits.db");
    assert!(
        !dir.path().join("openbits.db-wal").exists(),
        "a clean close leaves no WAL"
    );
    let mut bytes = std::fs::read(&db).unwrap();
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        n => n as usize,
    };
    let (trunk, free) = (be32(&bytes, 32) as usize, be32(&bytes, 36));
    assert!(trunk > 0 && free > 0, "the cancelled jobs freed pages");
    // The trunk page's count of leaves, far past what a page can list.
    let at = (trunk - 1) * page_size + 4;
    bytes[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    // Every row still reads: only the check can tell.
    let rows = SqliteStore::open_read_only(dir.path())
        .unwrap()
        .snapshot()
        .unwrap();
    assert_eq!(rows.len(), 15);

    let err = Manager::open(Some(dir.path()), config()).err().unwrap();
    assert_eq!(err.code, hr::E_DATABASE_CORRUPT, "{}", err.message);
    assert!(err.message.contains("integrity"), "{}", err.message);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    // No WAL of a crash to keep: the empty WAL and its index (the snapshot's reader left
    // them) go with the refused open's connection, as they would have after a passed one.
    assert_eq!(listing(), before);
    // The store alone (tools, the crash harness's fold) checks before it returns.
    let err = SqliteStore::open(dir.path()).err().unwrap();
    assert_eq!(err.0, hr::E_DATABASE_CORRUPT, "{}", err.1);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    // The lock is released: the repaired file opens.
    std::fs::remove_file(&db).unwrap();
    drop(open(dir.path()));
}

/// A record as a crash may have left it: written straight into the store of a closed folder.
fn plant(state: &Path, rec: &JobRecord) {
    drop(open(state));
    SqliteStore::open(state).unwrap().save(rec).unwrap();
}

fn record_with_file(dir: &Path, name: &str, content: &[u8], completed: bool) -> JobRecord {
    let mut rec = JobRecord::new(
        JobId::new_v4(),
        JobType::Download,
        "planted".into(),
        openbits_core::job::now_ms(),
    );
    let temp = dir.join(format!("BIT{name}.tmp"));
    std::fs::write(&temp, content).unwrap();
    let mut f = FileRecord::new(
        format!("http://127.0.0.1:9/{name}"),
        dir.join(name).to_str().unwrap().into(),
    );
    f.temp_path = Some(temp.to_str().unwrap().into());
    f.bytes_total = NonMaxU64::new(content.len() as u64);
    f.bytes_transferred = content.len() as u64;
    f.bytes_checkpointed = content.len() as u64;
    f.completed = completed;
    rec.files.push(f);
    rec
}

#[test]
fn an_interrupted_complete_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut rec = record_with_file(dir.path(), "a", b"first", true);
    let second = record_with_file(dir.path(), "b", b"second", true);
    rec.files.push(second.files[0].clone());
    rec.state = JobState::Transferred;
    rec.settling = Some(Settle::Completing);
    // The crash struck after the first rename.
    std::fs::rename(dir.path().join("BITa.tmp"), dir.path().join("a")).unwrap();
    plant(&state, &rec);
    let m = open(&state);
    assert_eq!(m.get_job(&rec.id).unwrap_err().code, hr::E_NOT_FOUND);
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"first");
    assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"second");
    assert!(temp_files(dir.path()).is_empty());
    drop(m);
    assert!(
        !SqliteStore::open(&state)
            .unwrap()
            .contains(&rec.id)
            .unwrap(),
        "the job left the store"
    );
}

/// A crash between creating a file's temporary file and its first checkpoint leaves a file the
/// store never named: its name follows from the job and the file (`BIT<GUID>_<index>.tmp`), so
/// the next attempt starts it again from 0 and cancel deletes it.
#[test]
fn a_temporary_file_the_store_never_named_is_found_by_its_derived_name() {
    let server = TestServer::start();
    let data = pattern(300_000, 7);
    server.add("/d", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let planted = |dir: &Path, job: &JobId, i: usize| {
        let temp = dir.join(format!("BIT{:X}_{i:X}.tmp", job.simple()));
        std::fs::write(&temp, b"left by a crash, never checkpointed").unwrap();
        temp
    };
    let record = |name: &str| {
        let mut rec = JobRecord::new(
            JobId::new_v4(),
            JobType::Download,
            name.into(),
            openbits_core::job::now_ms(),
        );
        rec.files.push(FileRecord::new(
            server.url("/d"),
            dir.path().join(name).to_str().unwrap().into(),
        ));
        rec.state = JobState::Suspended;
        rec
    };
    let (resumed, cancelled) = (record("resumed"), record("cancelled"));
    let resumed_temp = planted(dir.path(), &resumed.id, 0);
    let cancelled_temp = planted(dir.path(), &cancelled.id, 0);
    plant(&state, &resumed);
    SqliteStore::open(&state).unwrap().save(&cancelled).unwrap();

    let m = open(&state);
    assert_eq!(
        m.get_job(&cancelled.id).unwrap().cancel().unwrap(),
        hr::S_OK
    );
    assert!(
        !cancelled_temp.exists(),
        "cancel deletes the unnamed leftover"
    );
    let j = m.get_job(&resumed.id).unwrap();
    j.resume().unwrap();
    assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(
        j.record().unwrap().files[0].temp_path.as_deref(),
        resumed_temp.to_str()
    );
    assert_eq!(j.complete().unwrap(), hr::S_OK);
    assert!(
        std::fs::read(dir.path().join("resumed")).unwrap() == data,
        "the leftover's bytes were dropped, not kept"
    );
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn an_interrupted_cancel_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut rec = record_with_file(dir.path(), "c", b"partial", false);
    rec.state = JobState::Cancelled;
    rec.settling = Some(Settle::Cancelling);
    plant(&state, &rec);
    let m = open(&state);
    assert_eq!(m.get_job(&rec.id).unwrap_err().code, hr::E_NOT_FOUND);
    assert!(temp_files(dir.path()).is_empty());
    assert!(!dir.path().join("c").exists());
}

#[test]
fn temporary_files_are_reconciled_with_their_checkpoints() {
    let server = TestServer::start();
    let data = pattern(300_000, 9);
    server.add("/f", data.clone());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let url = server.url("/f");
    // Checkpoint says 200,000 but only 50,000 bytes reached the disk: continue at 50,000.
    let mut short = record_with_file(dir.path(), "short", &data[..50_000], false);
    short.files[0].remote_url = url.as_str().into();
    short.files[0].bytes_total = NonMaxU64::new(data.len() as u64);
    short.files[0].bytes_checkpointed = 200_000;
    short.files[0].etag = Some(format!("\"{}-fixed\"", data.len()).into());
    short.state = JobState::Transferring;
    plant(&state, &short);
    // A transferred job whose temporary file vanished transfers that file again.
    let mut lost = record_with_file(dir.path(), "lost", &data, true);
    lost.files[0].remote_url = url.as_str().into();
    lost.state = JobState::Transferred;
    std::fs::remove_file(dir.path().join("BITlost.tmp")).unwrap();
    SqliteStore::open(&state).unwrap().save(&lost).unwrap();

    let m = open(&state);
    for (id, name) in [(short.id, "short"), (lost.id, "lost")] {
        let j = m.get_job(&id).unwrap();
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred, "{name}");
        assert_eq!(j.complete().unwrap(), hr::S_OK);
        assert!(
            std::fs::read(dir.path().join(name)).unwrap() == data,
            "{name} differs"
        );
    }
    let ranges: Vec<_> = server.seen().into_iter().map(|s| s.range).collect();
    assert!(ranges.contains(&Some("bytes=50000-".into())), "{ranges:?}");
    assert!(
        ranges.contains(&None),
        "the lost file started from 0: {ranges:?}"
    );
}

#[test]
fn inactive_jobs_are_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // At open: a job untouched for longer than the timeout is cancelled and its files removed.
    let mut old = record_with_file(dir.path(), "old", b"abc", false);
    old.state = JobState::Suspended;
    old.modified_ms -= 91 * 24 * 3600 * 1000;
    plant(&state, &old);
    let m = open(&state);
    assert_eq!(m.get_job(&old.id).unwrap_err().code, hr::E_NOT_FOUND);
    assert!(temp_files(dir.path()).is_empty());
    drop(m);
    // While open: the scheduler notices.
    let cfg = Config {
        inactivity_timeout: Duration::from_millis(300),
        ..config()
    };
    let m = Manager::open(Some(&state), cfg).unwrap();
    let j = m.create_job("idle", JobType::Download).unwrap();
    assert_eq!(j.state().unwrap(), JobState::Suspended);
    wait_until("the idle job is cancelled", || {
        j.state().unwrap() == JobState::Cancelled
    });
    assert_eq!(m.get_job(&j.id()).unwrap_err().code, hr::E_NOT_FOUND);
}

/// A job that was in motion (the scheduler watches it at every pass) and then stopped is still
/// cancelled when it stays untouched for the inactivity timeout: leaving the scheduler's set of
/// moving jobs hands its deadline to the pass that visits every job.
#[test]
fn jobs_that_stopped_moving_are_cancelled_when_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        inactivity_timeout: Duration::from_millis(600),
        ..config()
    };
    let m = Manager::open(Some(&dir.path().join("state")), cfg).unwrap();
    let j = m.create_job("moved", JobType::Download).unwrap();
    // Nothing listens on port 9: the job goes to TRANSIENT_ERROR and waits to retry.
    j.add_file(
        "http://127.0.0.1:9/x",
        dir.path().join("x").to_str().unwrap(),
    )
    .unwrap();
    j.resume().unwrap();
    wait_until("a transient error", || {
        j.state().unwrap() == JobState::TransientError
    });
    // Keep it touched past its creation deadline, so the pass that visits every job at that
    // deadline finds it in motion and learns no deadline from it.
    let created = std::time::Instant::now();
    wait_until("the creation deadline is past, the job kept busy", || {
        j.set_description("still here").unwrap();
        created.elapsed() >= Duration::from_millis(900)
    });
    assert_eq!(j.state().unwrap(), JobState::TransientError);
    j.suspend().unwrap();
    let suspended_at = std::time::Instant::now();
    wait_until("the stopped job is cancelled", || {
        j.state().unwrap() == JobState::Cancelled
    });
    assert!(
        suspended_at.elapsed() >= Duration::from_millis(500),
        "cancelled too early"
    );
}
