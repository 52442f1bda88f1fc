//! Hostile servers (raw bytes from tests/server's `raw` module): each gets a clear error, never a
//! hang, and memory that does not grow with what the server sends. 100 jobs against such servers
//! at once stay under 100 MiB resident (`many_hostile_servers_at_once`, alone in its binary's
//! process would be cleaner; here the other tests are small and the bound is generous).

mod common;
use openbits_core::hresult::{self as hr, HResult};
use openbits_core::{Config, ErrorContext, Job, JobState, JobType, Manager};
use openbits_testserver::raw::{serve_raw, Raw, RawServer};
use std::path::Path;
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(60));

/// A manager whose transfers stall after 1 s without (enough) data.
fn manager(state: &Path) -> Manager {
    let config = Config {
        stall_timeout: Duration::from_secs(1),
        max_jobs_per_owner: 1000,
        ..Config::default()
    };
    Manager::open(Some(state), config).unwrap()
}

fn raw(head: &str, repeat: &str, times: Option<u64>) -> RawServer {
    serve_raw(Raw {
        head: head.as_bytes().to_vec(),
        repeat: repeat.as_bytes().to_vec(),
        times,
        every: Duration::ZERO,
        hang: false,
    })
}

/// A job of one file from `url`, resumed.
fn start(m: &Manager, url: &str, dir: &Path, name: &str) -> Job {
    let job = m.create_job(name, JobType::Download).unwrap();
    job.add_file(url, dir.join(name).to_str().unwrap()).unwrap();
    job
}

/// Resumes `job` and waits until it fails; returns its error (code, description).
fn failure(job: &Job) -> (HResult, String, JobState) {
    job.resume().unwrap();
    common::wait_until(&format!("the job failed ({:?})", job.state()), || {
        matches!(
            job.state().unwrap(),
            JobState::Error | JobState::TransientError
        )
    });
    let e = job.error().unwrap();
    (e.code, e.description, job.state().unwrap())
}

#[test]
fn endless_headers_fail_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = raw(
        "HTTP/1.1 200 OK\r\n",
        &format!("X-Filler: {}\r\n", "a".repeat(100)),
        None,
    );
    let (code, text, state) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!(state, JobState::TransientError);
    assert_eq!(code, hr::E_CONNECTION_CLOSED, "{text}");
    assert!(text.contains("too large"), "{text}");
}

#[test]
fn a_header_block_over_64_kib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n");
    for i in 0..20 {
        head.push_str(&format!("X-Big-{i}: {}\r\n", "b".repeat(4000)));
    }
    head.push_str("\r\nhello");
    let s = raw(&head, "", Some(0));
    let (code, text, _) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!(code, hr::E_INVALID_SERVER_RESPONSE, "{text}");
    assert!(text.contains("headers are too large"), "{text}");
}

#[test]
fn bytes_past_the_content_length_are_not_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        &"garbage ".repeat(128),
        None,
    );
    let job = start(&m, &s.url("/f"), dir.path(), "f");
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"0123456789");
}

#[test]
fn a_chunked_body_that_never_ends() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let chunk = format!("400\r\n{}\r\n", "c".repeat(1024));
    let s = raw(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunk,
        None,
    );
    // No length: BITS refuses the file unless the job takes dynamic content...
    let (code, _, state) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!((code, state), (hr::E_MISSING_FILE_SIZE, JobState::Error));
    // ...and then the job's maximum download size ends it.
    let job = start(&m, &s.url("/g"), dir.path(), "g");
    job.set_dynamic_content(true).unwrap();
    job.set_max_download_size(1 << 20).unwrap();
    let (code, text, state) = failure(&job);
    assert_eq!(
        (code, state),
        (hr::E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED, JobState::Error),
        "{text}"
    );
}

#[test]
fn fifty_redirects_are_too_many() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = raw(
        "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "",
        Some(0),
    );
    let (code, text, state) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!(state, JobState::Error);
    assert_eq!(code, HResult::from_win32(302), "{text}");
    assert!(text.contains("too many redirects"), "{text}");
}

#[test]
fn a_redirect_to_a_file_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = raw(
        "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
        "",
        Some(0),
    );
    let (_, text, state) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!(state, JobState::Error);
    assert!(
        text.contains("redirect to file:///etc/passwd refused"),
        "{text}"
    );
    assert!(!dir.path().join("f").exists());
}

#[test]
fn a_gzip_answer_to_identity_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Encoding: gzip\r\n\r\n\x1fgz!",
        "",
        Some(0),
    );
    let job = start(&m, &s.url("/f"), dir.path(), "f");
    let (code, text, state) = failure(&job);
    assert_eq!(
        (code, state),
        (hr::E_INVALID_SERVER_RESPONSE, JobState::TransientError)
    );
    assert!(text.contains("Content-Encoding: gzip"), "{text}");
    assert_eq!(job.error().unwrap().context, ErrorContext::RemoteFile);
    assert_eq!(job.progress().unwrap().bytes_transferred, 0);
}

/// One byte every 200 ms: each byte would restart a per-read timer; the job must still time out.
fn trickle() -> RawServer {
    serve_raw(Raw {
        head: b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec(),
        repeat: b"x".to_vec(),
        times: None,
        every: Duration::from_millis(200),
        hang: false,
    })
}

#[test]
fn a_server_that_trickles_bytes_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let s = trickle();
    let (code, text, state) = failure(&start(&m, &s.url("/f"), dir.path(), "f"));
    assert_eq!(
        (code, state),
        (hr::E_TIMEOUT, JobState::TransientError),
        "{text}"
    );
}

/// VmRSS of this process, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn many_hostile_servers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let slow = trickle();
    let endless = raw(
        "HTTP/1.1 200 OK\r\n",
        &format!("X-F: {}\r\n", "e".repeat(200)),
        None,
    );
    let chunks = raw(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        &format!("4000\r\n{}\r\n", "c".repeat(16384)),
        None,
    );
    let jobs: Vec<Job> = (0..100)
        .map(|i| {
            let url = match i % 3 {
                0 => slow.url(&format!("/{i}")),
                1 => endless.url(&format!("/{i}")),
                _ => chunks.url(&format!("/{i}")),
            };
            let job = start(&m, &url, dir.path(), &format!("f{i}"));
            job.set_priority(openbits_core::Priority::Foreground)
                .unwrap();
            if i % 3 == 2 {
                job.set_dynamic_content(true).unwrap();
                job.set_max_download_size(8 << 20).unwrap();
            }
            job.resume().unwrap();
            job
        })
        .collect();
    let mut peak = 0;
    common::wait_until("every job failed", || {
        peak = peak.max(resident_kib());
        jobs.iter().all(|j| {
            matches!(
                j.state().unwrap(),
                JobState::Error | JobState::TransientError
            )
        })
    });
    println!(
        "100 jobs against hostile servers: peak resident {} MiB",
        peak / 1024
    );
    assert!(peak < 100 * 1024, "resident {peak} KiB");
    for j in &jobs {
        assert_eq!(j.cancel().unwrap(), hr::S_OK);
    }
}
