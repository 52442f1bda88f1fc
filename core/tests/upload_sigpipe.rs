//! An upload whose server closes the connection while a fragment is being written must not end
//! the application with SIGPIPE. Rust programs ignore SIGPIPE, C programs do not: this test binary
//! (on its own, as the setting is process-wide) puts back the default action, as in a C program.

mod common;
use openbits_core::{Config, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::time::Duration;

#[test]
fn a_connection_closed_under_a_fragment_does_not_raise_sigpipe() {
    // SAFETY: no other thread of this binary is handling signals.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(24 << 20, 9);
    let src = dir.path().join("source.bin");
    std::fs::write(&src, &bytes).unwrap();
    let m = Manager::open(Some(&dir.path().join("state")), Config::default()).unwrap();
    let job = m.create_job("early", JobType::Upload).unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    // Each of the first 4 fragments is answered 503 before its 8 MiB are read, and the
    // connection closed under the client's writes.
    job.add_file(&server.url("/early.bin?early=4"), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(
        job.wait(Some(Duration::from_secs(60))).unwrap(),
        JobState::Transferred
    );
    let _ = job.complete().unwrap();
    assert!(server.uploaded("/early.bin").unwrap() == bytes);
}
