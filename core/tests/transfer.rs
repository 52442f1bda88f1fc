//! The transfer engine and the state rules, end to end, against a real HTTP server
//! (openbits-testserver) that misbehaves on request. Every wait is on a condition with a deadline.

mod common;
use common::{temp_files, wait_until};

use openbits_core::hresult::{self as hr, HResult};
use openbits_core::{Config, ErrorContext, Job, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

struct Fixture {
    server: TestServer,
    dir: tempfile::TempDir,
    manager: Manager,
}

fn fixture() -> Fixture {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        stall_timeout: Duration::from_millis(800),
        connect_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let manager = Manager::open(Some(&dir.path().join("state")), config).unwrap();
    Fixture {
        server,
        dir,
        manager,
    }
}

impl Fixture {
    fn dest(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn dest_str(&self, name: &str) -> String {
        self.dest(name).to_str().unwrap().to_string()
    }
    /// A job with one file, retry delay 0, resumed.
    fn start(&self, url: &str, dest: &str) -> Job {
        let job = self.manager.create_job("t", JobType::Download).unwrap();
        job.set_minimum_retry_delay(0).unwrap();
        job.add_file(url, &self.dest_str(dest)).unwrap();
        job.resume().unwrap();
        job
    }
    fn temp_files(&self) -> Vec<PathBuf> {
        temp_files(self.dir.path())
    }
}

fn assert_file(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).unwrap();
    assert_eq!(got.len(), expected.len(), "length of {}", path.display());
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{} differs first at byte {i}", path.display());
    }
}

#[test]
fn multi_file_download_commits_only_on_complete() {
    let f = fixture();
    let a = pattern(3 << 20, 1);
    let b = pattern(70_001, 2);
    f.server.add("/a", a.clone());
    f.server.add("/b", b.clone());
    let job = f
        .manager
        .create_job("two files", JobType::Download)
        .unwrap();
    assert_eq!(job.state().unwrap(), JobState::Suspended);
    job.add_file(&f.server.url("/a"), &f.dest_str("a")).unwrap();
    job.add_file(&f.server.url("/b"), &f.dest_str("b")).unwrap();
    assert_eq!(
        job.progress().unwrap().bytes_total,
        openbits_core::SIZE_UNKNOWN
    );
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let p = job.progress().unwrap();
    assert_eq!(
        (
            p.bytes_total,
            p.bytes_transferred,
            p.files_total,
            p.files_transferred
        ),
        (
            a.len() as u64 + b.len() as u64,
            a.len() as u64 + b.len() as u64,
            2,
            2
        )
    );
    assert!(
        !f.dest("a").exists() && !f.dest("b").exists(),
        "destinations appear only at complete"
    );
    assert_eq!(f.temp_files().len(), 2);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(job.state().unwrap(), JobState::Acknowledged);
    assert_file(&f.dest("a"), &a);
    assert_file(&f.dest("b"), &b);
    assert!(f.temp_files().is_empty());
    assert_eq!(job.complete().unwrap_err().code, hr::E_INVALID_STATE);
    assert_eq!(
        f.manager.get_job(&job.id()).unwrap_err().code,
        hr::E_NOT_FOUND
    );
    // Every request asked for the identity encoding.
    assert!(f
        .server
        .seen()
        .iter()
        .all(|s| s.accept_encoding.as_deref() == Some("identity")));
}

#[test]
fn dropped_connections_resume_with_range_and_if_range() {
    let f = fixture();
    let data = pattern(1 << 20, 3);
    f.server.add("/f", data.clone());
    let job = f.start(&f.server.url("/f?drop=150000"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 7, "1 MiB in 150,000-byte pieces");
    for (i, s) in seen.iter().enumerate().skip(1) {
        assert_eq!(
            s.range.as_deref(),
            Some(format!("bytes={}-", i * 150_000).as_str())
        );
        assert_eq!(
            s.if_range.as_deref(),
            Some(format!("\"{}-fixed\"", data.len()).as_str())
        );
    }
    assert_eq!(
        f.server.bytes_sent(),
        data.len() as u64,
        "no byte was downloaded twice"
    );
}

#[test]
fn server_without_range_support_restarts_from_zero_never_appends() {
    let f = fixture();
    let data = pattern(600_000, 4);
    f.server.add("/f", data.clone());
    // The first response stalls after 200,000 bytes; the retry's Range is ignored and a 200 comes.
    let job = f.start(&f.server.url("/f?norange=1&stall=200000"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].range.as_deref(), Some("bytes=200000-"));
    assert_eq!(seen[1].status, 200);
}

#[test]
fn etag_change_between_requests_restarts_the_file() {
    let f = fixture();
    let data = pattern(500_000, 5);
    f.server.add("/f", data.clone());
    let job = f.start(&f.server.url("/f?drop=200000:1&etag=change"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_eq!(
        seen[1].status, 200,
        "If-Range failed, so the whole file came again"
    );
    assert_eq!(f.server.bytes_sent(), 200_000 + data.len() as u64);
}

#[test]
fn misplaced_206_is_never_spliced() {
    let f = fixture();
    let data = pattern(400_000, 6);
    f.server.add("/f", data.clone());
    // After the drop, the server answers the Range request with bytes from 1,000 earlier.
    let job = f.start(&f.server.url("/f?drop=100000:1&wrongoffset=1000"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (seen[1].range.as_deref(), seen[1].status),
        (Some("bytes=100000-"), 206)
    );
    assert_eq!(
        (seen[2].range.as_deref(), seen[2].status),
        (None, 200),
        "restarted with a plain GET"
    );
}

#[test]
fn stalled_transfer_times_out_and_resumes() {
    let f = fixture();
    let data = pattern(300_000, 7);
    f.server.add("/f", data.clone());
    let job = f.start(&f.server.url("/f?stall=65536"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen[1].range.as_deref(), Some("bytes=65536-"));
}

#[test]
fn transient_503_then_200() {
    let f = fixture();
    let data = pattern(10_000, 8);
    f.server.add("/f", data.clone());
    let job = f.start(&f.server.url("/f?fail=503:2"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.record().unwrap().error_count, 2);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
}

#[test]
fn transient_error_waits_for_the_retry_delay_and_reports_its_error() {
    let f = fixture();
    f.server.add("/f", pattern(10, 9));
    let url = f.server.url("/f?fail=503:1");
    let job = f.manager.create_job("t", JobType::Download).unwrap();
    job.add_file(&url, &f.dest_str("f")).unwrap();
    job.resume().unwrap();
    wait_until("TRANSIENT_ERROR", || {
        job.state().unwrap() == JobState::TransientError
    });
    let e = job.error().unwrap();
    assert_eq!(
        (e.context, e.code),
        (ErrorContext::RemoteFile, HResult::http(503))
    );
    assert_eq!(
        e.description,
        format!("HTTP 503 Service Unavailable: {url}")
    );
    // A transient error does not end a wait; the default retry delay is 600 s.
    assert_eq!(
        job.wait(Some(Duration::from_millis(200))).unwrap_err().code,
        hr::E_TIMEOUT
    );
    // Shortening the delay lets the waiting job retry now.
    job.set_minimum_retry_delay(0).unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(
        job.error().unwrap_err().code,
        hr::E_ERROR_INFORMATION_UNAVAILABLE
    );
}

#[test]
fn not_found_is_fatal_with_remote_file_context() {
    let f = fixture();
    let url = f.server.url("/missing");
    let job = f.start(&url, "x");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    let e = job.error().unwrap();
    assert_eq!(
        (e.context, e.code, e.file_index),
        (ErrorContext::RemoteFile, HResult::http(404), Some(0))
    );
    assert_eq!(e.description, format!("HTTP 404 Not Found: {url}"));
    // Resume retries the failed file.
    f.server.add("/missing", pattern(5, 1));
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
}

#[test]
fn no_progress_timeout_turns_transient_errors_fatal() {
    let f = fixture();
    let job = f.manager.create_job("t", JobType::Download).unwrap();
    job.set_no_progress_timeout(0).unwrap();
    job.add_file(&f.server.url("/x?status=503"), &f.dest_str("x"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, HResult::http(503));

    // With a 1 s timeout and retries at once, the job retries until the timeout expires.
    let job = f.start(&f.server.url("/y?status=500"), "y");
    job.set_no_progress_timeout(1).unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert!(job.record().unwrap().error_count >= 2);
}

#[test]
fn connection_refused_is_transient() {
    let f = fixture();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let job = f.manager.create_job("t", JobType::Download).unwrap();
    job.add_file(&format!("http://127.0.0.1:{port}/f"), &f.dest_str("f"))
        .unwrap();
    job.resume().unwrap();
    wait_until("TRANSIENT_ERROR", || {
        job.state().unwrap() == JobState::TransientError
    });
    let e = job.error().unwrap();
    assert_eq!(
        (e.context, e.code),
        (ErrorContext::GeneralTransport, hr::E_CONNECT_FAILURE)
    );
}

#[test]
fn missing_content_length_is_reported() {
    let f = fixture();
    f.server.add("/f", pattern(1000, 1));
    let job = f.start(&f.server.url("/f?nolength=1"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::E_MISSING_FILE_SIZE);
}

#[test]
fn redirects_are_followed() {
    let f = fixture();
    let data = pattern(1234, 10);
    f.server.add("/real", data.clone());
    let job = f.start(&f.server.url("/old?redirect=/real"), "f");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
}

#[test]
fn suspend_aborts_at_once_and_resume_continues_from_disk() {
    let f = fixture();
    let data = pattern(400_000, 11);
    f.server.add("/f", data.clone());
    let job = f.start(&f.server.url("/f?rate=400000"), "f");
    wait_until("some bytes", || {
        job.progress().unwrap().bytes_transferred > 50_000
    });
    let t = Instant::now();
    job.suspend().unwrap();
    assert_eq!(job.state().unwrap(), JobState::Suspended);
    wait_until("the server sees the connection close", || {
        f.server.open_bodies() == 0
    });
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "suspend took {:?} to close the connection",
        t.elapsed()
    );
    let done = job.progress().unwrap().bytes_transferred;
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("f"), &data);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    let from: u64 = seen[1]
        .range
        .as_deref()
        .unwrap()
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        from > 0 && from <= done,
        "resumed from {from}, {done} were recorded"
    );
}

#[test]
fn state_rules_through_the_api() {
    let f = fixture();
    f.server.add("/a", pattern(100, 1));
    f.server.add("/b", pattern(200, 2));
    let job = f.manager.create_job("rules", JobType::Download).unwrap();
    assert_eq!(job.resume().unwrap_err().code, hr::E_EMPTY);
    assert_eq!(job.state().unwrap(), JobState::Suspended);
    assert_eq!(
        job.error().unwrap_err().code,
        hr::E_ERROR_INFORMATION_UNAVAILABLE
    );
    job.add_file(&f.server.url("/a"), &f.dest_str("a")).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    // Adding a file to a TRANSFERRED job is allowed; resume transfers it.
    job.add_file(&f.server.url("/b"), &f.dest_str("b")).unwrap();
    assert_eq!(job.state().unwrap(), JobState::Transferred);
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.progress().unwrap().files_transferred, 2);
    // Suspend of a transferred job, then complete from SUSPENDED with every file done: S_OK.
    job.suspend().unwrap();
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    for call in [
        job.resume(),
        job.suspend(),
        job.add_file(&f.server.url("/a"), &f.dest_str("c")),
    ] {
        assert_eq!(call.unwrap_err().code, hr::E_INVALID_STATE);
    }
    assert_eq!(job.cancel().unwrap_err().code, hr::E_INVALID_STATE);
    assert_eq!(
        job.set_minimum_retry_delay(1).unwrap_err().code,
        hr::E_INVALID_STATE
    );

    let job = f
        .manager
        .create_job("cancel me", JobType::Download)
        .unwrap();
    job.add_file(&f.server.url("/a"), &f.dest_str("d")).unwrap();
    job.resume().unwrap();
    job.wait(WAIT).unwrap();
    // Finished unnamed, then named by a batch when no complete came for it.
    wait_until("the finished file gets its name", || {
        f.temp_files().len() == 1
    });
    assert_eq!(job.cancel().unwrap(), hr::S_OK);
    assert_eq!(job.state().unwrap(), JobState::Cancelled);
    assert!(f.temp_files().is_empty() && !f.dest("d").exists());
    assert_eq!(job.cancel().unwrap_err().code, hr::E_INVALID_STATE);
    assert_eq!(job.complete().unwrap_err().code, hr::E_INVALID_STATE);
}

/// A one-file job's file is written without a name and complete links it to its destination,
/// replacing a file already there (then it takes its temporary name and is renamed, as before);
/// cancel leaves nothing behind; a file still partial when complete comes is dropped. However
/// complete and the checkpoint batch meet (the batch names a file complete has not taken within
/// a moment), the folder ends with the destinations alone.
#[test]
fn one_file_jobs_complete_by_link_replace_what_is_there_and_leave_nothing_behind() {
    let f = fixture();
    let (a, b) = (pattern(20_000, 1), pattern(30_000, 2));
    f.server.add("/a", a.clone());
    f.server.add("/b", b.clone());
    f.server.add("/slow", pattern(2_000_000, 3));
    std::fs::write(f.dest("there"), b"an older file").unwrap();
    let fresh = f.start(&f.server.url("/a"), "fresh");
    let there = f.start(&f.server.url("/b"), "there");
    let cancelled = f.start(&f.server.url("/a"), "cancelled");
    for j in [&fresh, &there, &cancelled] {
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
    }
    assert_eq!(fresh.complete().unwrap(), hr::S_OK);
    assert_eq!(there.complete().unwrap(), hr::S_OK);
    assert_eq!(cancelled.cancel().unwrap(), hr::S_OK);
    assert_file(&f.dest("fresh"), &a);
    assert_file(&f.dest("there"), &b);
    assert!(!f.dest("cancelled").exists());
    // Partial when complete comes: the file, named at its first checkpoint, goes.
    let partial = f.start(&f.server.url("/slow?rate=200000"), "partial");
    wait_until("the file started", || {
        partial.record().unwrap().files[0].bytes_transferred > 0
    });
    assert_eq!(partial.complete().unwrap(), hr::S_PARTIAL_COMPLETE);
    assert!(!f.dest("partial").exists());
    assert!(f.temp_files().is_empty(), "{:?}", f.temp_files());
    let mut names: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["fresh", "state", "there"]);
}

#[test]
fn complete_before_transferred_keeps_whole_files_and_drops_partial_ones() {
    let f = fixture();
    let a = pattern(1000, 1);
    f.server.add("/a", a.clone());
    f.server.add("/slow", pattern(2_000_000, 2));
    let job = f.manager.create_job("partial", JobType::Download).unwrap();
    job.add_file(&f.server.url("/a"), &f.dest_str("a")).unwrap();
    job.add_file(&f.server.url("/slow?rate=200000"), &f.dest_str("slow"))
        .unwrap();
    job.resume().unwrap();
    wait_until("the second file started", || {
        let r = job.record().unwrap();
        r.files[0].completed && r.files[1].bytes_transferred > 0
    });
    assert_eq!(job.complete().unwrap(), hr::S_PARTIAL_COMPLETE);
    assert_file(&f.dest("a"), &a);
    assert!(!f.dest("slow").exists());
    assert!(f.temp_files().is_empty());
}

#[test]
fn add_file_validation() {
    let f = fixture();
    let job = f.manager.create_job("v", JobType::Download).unwrap();
    let dest = f.dest_str("ok");
    let url = f.server.url("/x");
    let bad_args = [
        ("ftp://host/x", dest.as_str()),
        ("not a url", dest.as_str()),
        ("http://", dest.as_str()),
        (url.as_str(), "relative/path"),
        (url.as_str(), f.dir.path().to_str().unwrap()),
    ];
    for (remote, local) in bad_args {
        assert_eq!(
            job.add_file(remote, local).unwrap_err().code,
            hr::E_INVALIDARG,
            "{remote} -> {local}"
        );
    }
    let long = format!("http://h/{}", "a".repeat(2200));
    assert_eq!(
        job.add_file(&long, &dest).unwrap_err().code,
        hr::E_INVALIDARG
    );
    let missing = f.dir.path().join("no/such/folder/f");
    assert_eq!(
        job.add_file(&url, missing.to_str().unwrap())
            .unwrap_err()
            .code
            .as_u32(),
        0x8007_0003
    );
    job.add_file(&url, &dest).unwrap();
    let same = f.dir.path().join(".").join("ok");
    assert_eq!(
        job.add_file(&url, same.to_str().unwrap()).unwrap_err().code,
        hr::E_INVALIDARG,
        "same destination twice"
    );
    assert_eq!(
        job.record().unwrap().files.len(),
        1,
        "rejected files are not added"
    );
}

#[test]
fn create_job_validation() {
    let f = fixture();
    assert!(f
        .manager
        .create_job(&"é".repeat(256), JobType::Download)
        .is_ok());
    assert_eq!(
        f.manager
            .create_job(&"a".repeat(257), JobType::Download)
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    assert_eq!(
        f.manager
            .create_job("u", JobType::Upload)
            .unwrap()
            .record()
            .unwrap()
            .job_type,
        JobType::Upload
    );
    assert_eq!(
        f.manager
            .create_job("u", JobType::UploadReply)
            .unwrap()
            .record()
            .unwrap()
            .job_type,
        JobType::UploadReply
    );
    let a = f.manager.create_job("same", JobType::Download).unwrap();
    let b = f.manager.create_job("same", JobType::Download).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(f.manager.get_job(&a.id()).unwrap().id(), a.id());
    assert_eq!(
        f.manager.jobs().unwrap().len(),
        5,
        "the upload and upload-reply jobs, the first one and these two"
    );
}

#[test]
fn file_urls_are_copied_and_resumed() {
    let f = fixture();
    let data = pattern(3 << 20, 12);
    let src = f.dir.path().join("source.bin");
    std::fs::write(&src, &data).unwrap();
    let url = url::Url::from_file_path(&src).unwrap().to_string();
    let job = f.start(&url, "copy");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("copy"), &data);
    let job = f.start(&format!("{url}.missing"), "none");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code.as_u32(), 0x8007_0002);
}

#[test]
fn local_write_failure_is_a_local_file_error() {
    let f = fixture();
    f.server.add("/f", pattern(100, 1));
    let sub = f.dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let job = f.manager.create_job("t", JobType::Download).unwrap();
    job.add_file(&f.server.url("/f"), sub.join("f").to_str().unwrap())
        .unwrap();
    // The folder disappears after the file was added: creating the temporary file fails.
    std::fs::remove_dir(&sub).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    let e = job.error().unwrap();
    assert_eq!(
        (e.context, e.code.as_u32()),
        (ErrorContext::LocalFile, 0x8007_0002)
    );
}

#[test]
fn close_stops_transfers_and_invalidates_handles() {
    let f = fixture();
    f.server.add("/slow", pattern(5_000_000, 1));
    let job = f.start(&f.server.url("/slow?rate=100000"), "slow");
    wait_until("transferring", || {
        job.progress().unwrap().bytes_transferred > 0
    });
    let waiter = {
        let job = job.clone();
        std::thread::spawn(move || job.wait(None))
    };
    let t = Instant::now();
    f.manager.close();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!(
        waiter.join().unwrap().unwrap_err().code,
        hr::E_INVALID_STATE,
        "a blocked wait returns"
    );
    assert_eq!(job.state().unwrap_err().code, hr::E_INVALID_STATE);
    assert_eq!(job.resume().unwrap_err().code, hr::E_INVALID_STATE);
    assert_eq!(
        f.manager
            .create_job("x", JobType::Download)
            .unwrap_err()
            .code,
        hr::E_INVALID_STATE
    );
    f.manager.close();
}

#[test]
fn many_jobs_at_once() {
    let f = fixture();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| pattern(50_000 + i * 1000, i as u64))
        .collect();
    let jobs: Vec<Job> = files
        .iter()
        .enumerate()
        .map(|(i, d)| {
            f.server.add(&format!("/f{i}"), d.clone());
            f.start(
                &f.server.url(&format!("/f{i}?drop=20000")),
                &format!("f{i}"),
            )
        })
        .collect();
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
        assert_eq!(job.complete().unwrap(), hr::S_OK);
        assert_file(&f.dest(&format!("f{i}")), &files[i]);
    }
}

#[test]
fn events_tell_what_happened_in_order() {
    use openbits_core::EventKind::*;
    let f = fixture();
    f.server.add("/a", pattern(700_000, 1));
    f.server.add("/b", pattern(10, 2));
    let job = f.manager.create_job("events", JobType::Download).unwrap();
    job.add_file(&f.server.url("/a?rate=1000000"), &f.dest_str("a"))
        .unwrap();
    job.add_file(&f.server.url("/b"), &f.dest_str("b")).unwrap();
    job.resume().unwrap();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &openbits_core::Event| e.kind == JobTransferred)
    {
        let e = f.manager.next_event(Some(Duration::from_secs(20))).unwrap();
        assert_eq!(e.job, job.id());
        seen.push(e);
    }
    let files: Vec<u32> = seen
        .iter()
        .filter(|e| e.kind == FileTransferred)
        .map(|e| e.file_index)
        .collect();
    assert_eq!(files, vec![0, 1], "each file once, in order");
    assert!(
        seen.iter()
            .any(|e| e.kind == JobModification && e.state == JobState::Transferring),
        "progress"
    );
    assert_eq!(seen.last().unwrap().state, JobState::Transferred);

    let bad = f.start(&f.server.url("/missing"), "m");
    let e = loop {
        let e = f.manager.next_event(Some(Duration::from_secs(20))).unwrap();
        if e.kind == JobError {
            break e;
        }
    };
    assert_eq!(
        (e.job, e.state, e.code),
        (bad.id(), JobState::Error, HResult::http(404))
    );
    // Nothing else is waiting but modifications; then the queue times out.
    while let Ok(e) = f.manager.next_event(Some(Duration::from_millis(100))) {
        assert_eq!(e.kind, JobModification);
    }
    assert_eq!(
        f.manager
            .next_event(Some(Duration::from_millis(10)))
            .unwrap_err()
            .code,
        hr::E_TIMEOUT
    );
}

#[test]
fn custom_headers_are_sent_and_checked() {
    let f = fixture();
    f.server.add("/f", pattern(100, 1));
    let job = f.manager.create_job("headers", JobType::Download).unwrap();
    for bad in ["X-A: 1\nX-B: 2", "Range: bytes=5-", "no colon"] {
        assert_eq!(
            job.set_custom_headers(Some(bad)).unwrap_err().code,
            hr::E_INVALIDARG,
            "{bad:?}"
        );
    }
    job.set_custom_headers(Some("X-Token: secret\r\nX-Trace: 42\r\n"))
        .unwrap();
    job.add_file(&f.server.url("/f"), &f.dest_str("f")).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let seen = &f.server.seen()[0];
    assert!(
        seen.headers.contains(&("x-token".into(), "secret".into())),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers.contains(&("x-trace".into(), "42".into())));
    assert_eq!(
        job.record().unwrap().extras().custom_headers.as_deref(),
        Some("X-Token: secret\r\nX-Trace: 42\r\n")
    );
}

#[test]
fn basic_credentials_reach_only_their_origin() {
    let f = fixture();
    let other = TestServer::start();
    f.server.add("/f", pattern(100, 1));
    other.add("/g", pattern(200, 2));
    // Without credentials: 401 is fatal.
    let job = f.start(&f.server.url("/f?auth=ann:pw"), "a");
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, HResult::http(401));
    // With them it works.
    job.set_credentials(1, 1, "ann", "pw").unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    // A redirect to another origin does not carry them.
    let job = f
        .manager
        .create_job("redirected", JobType::Download)
        .unwrap();
    job.set_credentials(1, 1, "ann", "pw").unwrap();
    let to = other.url("/g");
    job.add_file(
        &f.server.url(&format!("/r?redirect={to}")),
        &f.dest_str("b"),
    )
    .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let first = f
        .server
        .seen()
        .into_iter()
        .find(|s| s.path_and_query.starts_with("/r"))
        .unwrap();
    assert!(
        first.headers.iter().any(|(n, _)| n == "authorization"),
        "sent to the origin"
    );
    assert!(
        other.seen()[0]
            .headers
            .iter()
            .all(|(n, _)| n != "authorization"),
        "not to the redirect target"
    );
    // Codes for what is not supported.
    assert_eq!(
        job.set_credentials(1, 3, "u", "p").unwrap_err().code,
        hr::E_NOTIMPL
    );
    assert_eq!(
        job.set_credentials(7, 1, "u", "p").unwrap_err().code,
        hr::E_INVALID_AUTH_TARGET
    );
    assert_eq!(job.remove_credentials(1, 1).unwrap(), hr::S_OK);
    assert_eq!(job.remove_credentials(1, 1).unwrap(), hr::S_FALSE);
}

#[test]
fn redirect_policies() {
    use openbits_core::job::{REDIRECT_POLICY_ALLOW_REPORT, REDIRECT_POLICY_DISALLOW};
    let f = fixture();
    f.server.add("/real", pattern(100, 1));
    let job = f.manager.create_job("disallow", JobType::Download).unwrap();
    job.set_security_flags(REDIRECT_POLICY_DISALLOW).unwrap();
    job.add_file(&f.server.url("/old?redirect=/real"), &f.dest_str("a"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(
        job.error().unwrap().code.as_u32(),
        0x8007_012E,
        "HRESULT_FROM_WIN32(302)"
    );
    let job = f.manager.create_job("report", JobType::Download).unwrap();
    job.set_security_flags(REDIRECT_POLICY_ALLOW_REPORT)
        .unwrap();
    job.add_file(&f.server.url("/old?redirect=/real"), &f.dest_str("b"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(
        job.record().unwrap().files[0].remote_url,
        f.server.url("/real").into()
    );
    assert_eq!(
        job.set_security_flags(0x20).unwrap_err().code,
        hr::E_NOTIMPL,
        "undefined flags"
    );
}

#[test]
fn dynamic_content_and_maximum_download_size() {
    let f = fixture();
    let data = pattern(300_000, 7);
    f.server.add("/dyn", data.clone());
    // Without the property a missing Content-Length is fatal (covered above); with it the body is
    // taken until it ends, and an interruption restarts from 0 without Range.
    let job = f.manager.create_job("dynamic", JobType::Download).unwrap();
    job.set_dynamic_content(true).unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    job.add_file(
        &f.server.url("/dyn?nolength=1&drop=100000:1"),
        &f.dest_str("d"),
    )
    .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.progress().unwrap().bytes_total, data.len() as u64);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("d"), &data);
    assert!(
        f.server.seen().iter().all(|s| s.range.is_none()),
        "dynamic content is never resumed"
    );
    // Only before the first resume.
    assert_eq!(
        job.set_dynamic_content(false).unwrap_err().code,
        hr::E_INVALID_STATE
    );
    let job = f.manager.create_job("late", JobType::Download).unwrap();
    job.add_file(&f.server.url("/dyn"), &f.dest_str("late"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(
        job.set_dynamic_content(true).unwrap_err().code,
        hr::E_READ_ONLY_PROPERTY_AFTER_RESUME
    );
    assert_eq!(
        job.set_max_download_size(10).unwrap_err().code,
        hr::E_READ_ONLY_PROPERTY_AFTER_RESUME
    );

    // A file larger than the maximum download size: ERROR, for a known and an unknown length.
    for (name, query, dynamic) in [("known", "", false), ("unknown", "?nolength=1", true)] {
        let job = f.manager.create_job(name, JobType::Download).unwrap();
        assert_eq!(
            job.set_max_download_size(0).unwrap_err().code,
            hr::E_MAX_DOWNLOAD_SIZE_INVALID_VALUE
        );
        job.set_max_download_size(100_000).unwrap();
        job.set_dynamic_content(dynamic).unwrap();
        job.add_file(&f.server.url(&format!("/dyn{query}")), &f.dest_str(name))
            .unwrap();
        job.resume().unwrap();
        assert_eq!(job.wait(WAIT).unwrap(), JobState::Error, "{name}");
        assert_eq!(
            job.error().unwrap().code,
            hr::E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
            "{name}"
        );
    }
}

#[test]
fn maximum_download_time_ends_a_slow_transfer() {
    let f = fixture();
    f.server.add("/slow", pattern(2_000_000, 8));
    let job = f.manager.create_job("slow", JobType::Download).unwrap();
    job.set_maximum_download_time(1).unwrap();
    job.add_file(&f.server.url("/slow?rate=200000"), &f.dest_str("s"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    let e = job.error().unwrap();
    assert_eq!(
        (e.code, e.context),
        (hr::E_MAXDOWNLOAD_TIMEOUT, ErrorContext::GeneralQueueManager)
    );
    let done = job.progress().unwrap().bytes_transferred;
    assert!(done > 0 && done < 2_000_000, "{done}");
    // Resume starts the count again; without a limit it finishes.
    job.set_maximum_download_time(0).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
}

#[test]
fn notification_command_line_runs_and_reruns_on_failure() {
    let f = fixture();
    f.server.add("/f", pattern(100, 9));
    let marker = f.dest("marker");
    let job = f.manager.create_job("cmd", JobType::Download).unwrap();
    assert_eq!(
        job.set_notify_cmdline(Some("sh"), None).unwrap_err().code,
        hr::E_INVALIDARG,
        "not a full path"
    );
    assert_eq!(
        job.set_notify_cmdline(Some("/bin/sh"), Some("other -c x"))
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    // Appends a line and fails, so it runs again after the retry delay (0 here).
    let params = format!("/bin/sh -c \"echo ran >> {}; exit 1\"", marker.display());
    job.set_notify_cmdline(Some("/bin/sh"), Some(&params))
        .unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    job.add_file(&f.server.url("/f"), &f.dest_str("f")).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    wait_until("the command ran twice", || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.lines().count() >= 2)
    });
    let r = job.record().unwrap();
    assert_eq!(
        (
            r.extras().notify_program.as_deref(),
            r.extras().notify_parameters.as_deref()
        ),
        (Some("/bin/sh"), Some(params.as_str()))
    );
    assert_eq!(job.complete().unwrap(), hr::S_OK);
}

#[test]
fn byte_ranges_are_written_one_after_another_and_resume_inside_a_range() {
    use openbits_core::job::{FileRange, LENGTH_TO_EOF};
    let f = fixture();
    let data = pattern(70_000, 11);
    f.server.add("/r", data.clone());
    let r = |offset, length| FileRange { offset, length };
    let ranges = [r(10, 100), r(5_000, 20_000), r(60_000, LENGTH_TO_EOF)];
    let job = f.manager.create_job("ranges", JobType::Download).unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    // The first response is cut inside the second range.
    job.add_file_with_ranges(&f.server.url("/r?drop=5000:2"), &f.dest_str("r"), &ranges)
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let expected: Vec<u8> = [&data[10..110], &data[5_000..25_000], &data[60_000..]].concat();
    assert_eq!(job.progress().unwrap().bytes_total, expected.len() as u64);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_file(&f.dest("r"), &expected);
    let asked: Vec<String> = f
        .server
        .seen()
        .into_iter()
        .filter_map(|s| s.range)
        .collect();
    assert_eq!(asked[0], "bytes=10-109");
    assert!(
        asked.contains(&"bytes=10000-24999".to_string()),
        "resumed inside the range: {asked:?}"
    );
    assert_eq!(asked.last().unwrap(), "bytes=60000-");

    // BITS's codes.
    let job = f
        .manager
        .create_job("bad ranges", JobType::Download)
        .unwrap();
    let url = f.server.url("/r");
    let code = |rs: &[FileRange]| {
        job.add_file_with_ranges(&url, &f.dest_str("x"), rs)
            .unwrap_err()
            .code
    };
    assert_eq!(code(&[]), hr::E_INVALIDARG);
    assert_eq!(code(&[r(LENGTH_TO_EOF, 1)]), hr::E_INVALID_RANGE);
    assert_eq!(code(&[r(0, 0)]), hr::E_INVALID_RANGE);
    assert_eq!(code(&[r(0, LENGTH_TO_EOF), r(100, 5)]), hr::E_INVALID_RANGE);
    assert_eq!(code(&[r(0, 10), r(5, 10)]), hr::E_OVERLAPPING_RANGES);
    assert_eq!(code(&[r(0, 10), r(0, 10)]), hr::E_OVERLAPPING_RANGES);
    assert_eq!(
        code(
            &vec![r(0, 1); 501]
                .iter()
                .enumerate()
                .map(|(i, _)| r(i as u64 * 2, 1))
                .collect::<Vec<_>>()
        ),
        hr::E_TOO_MANY_RANGES_IN_FILE
    );
    // A range past the end of the remote file, and a server without range support.
    job.add_file_with_ranges(&url, &f.dest_str("past"), &[r(69_990, 100)])
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::E_INVALID_RANGE);
    let job = f
        .manager
        .create_job("no ranges", JobType::Download)
        .unwrap();
    job.add_file_with_ranges(&f.server.url("/r?norange=1"), &f.dest_str("n"), &[r(5, 5)])
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::E_INSUFFICIENT_RANGE_SUPPORT);
    assert_eq!(
        job.set_dynamic_content(true).unwrap_err().code,
        hr::E_READ_ONLY_PROPERTY_AFTER_RESUME
    );
}

/// A job of many small files names their temporary files ahead in batches but creates each one
/// only when its turn comes: a suspend, or a close and reopen, in the middle leaves no file behind
/// that the record does not name, and the next task opens the names the first one recorded.
#[test]
fn many_files_across_suspend_and_reopen() {
    let f = fixture();
    const N: usize = 150;
    let data: Vec<Vec<u8>> = (0..N).map(|i| pattern(3_000 + i * 7, i as u64)).collect();
    for (i, d) in data.iter().enumerate() {
        f.server.add(&format!("/m{i}"), d.clone());
    }
    let pairs: Vec<(String, String)> = (0..N)
        .map(|i| {
            // Slow enough that the job is still going when it is suspended.
            (
                f.server.url(&format!("/m{i}?rate=200000")),
                f.dest_str(&format!("m{i}")),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(u, d)| (&**u, &**d)).collect();
    let job = f.manager.create_job("many", JobType::Download).unwrap();
    job.add_file_set(&refs).unwrap();
    job.resume().unwrap();
    wait_until("a few files", || {
        job.progress().unwrap().files_transferred >= 5
    });
    job.suspend().unwrap();
    let p = job.progress().unwrap();
    assert!(
        p.files_transferred < N as u32,
        "the job finished before the suspend"
    );
    // Names were recorded ahead (64 at a time) but files exist only for those started.
    let on_disk = f.temp_files().len();
    assert!(
        on_disk >= p.files_transferred as usize && on_disk < 64,
        "{on_disk} temporary files with {} files transferred",
        p.files_transferred
    );
    job.resume().unwrap();
    wait_until("more files", || {
        job.progress().unwrap().files_transferred >= p.files_transferred + 5
    });
    let id = job.id();
    drop(job);
    let state = f.dir.path().join("state");
    let Fixture {
        server: _server,
        dir,
        manager,
    } = f;
    drop(manager);
    let dest = |name: &str| dir.path().join(name);
    let manager = Manager::open(Some(&state), Config::default()).unwrap();
    let job = manager.get_job(&id).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    for (i, d) in data.iter().enumerate() {
        assert_file(&dest(&format!("m{i}")), d);
    }
    assert!(temp_files(dir.path()).is_empty());
}

/// A job's files go several at a time by default, and one after another (as in BITS) with
/// `files_in_flight = 1`; either way they are reported transferred in order.
#[test]
fn files_in_flight_bounds_a_jobs_parallel_files() {
    for (width, expect) in [(None, 3), (Some(1), 1)] {
        let server = TestServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        if let Some(w) = width {
            config.files_in_flight = w;
        }
        let manager = Manager::open(Some(&dir.path().join("state")), config).unwrap();
        let job = manager.create_job("width", JobType::Download).unwrap();
        let data = pattern(60_000, 3);
        server.add("/w", data.clone());
        for i in 0..3 {
            let dest = dir.path().join(format!("w{i}"));
            job.add_file(&server.url("/w?rate=200000"), dest.to_str().unwrap())
                .unwrap();
        }
        job.resume().unwrap();
        assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
        assert_eq!(
            server.max_open_bodies(),
            expect,
            "files_in_flight {width:?}"
        );
        assert_eq!(job.complete().unwrap(), hr::S_OK);
        for i in 0..3 {
            assert_file(&dir.path().join(format!("w{i}")), &data);
        }
    }
}
