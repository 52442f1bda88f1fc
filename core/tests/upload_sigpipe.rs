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
    let bytes = pattern(48 << 20, 9);
    let src = dir.path().join("source.bin");
    std::fs::write(&src, &bytes).unwrap();
    let m = Manager::open(Some(&dir.path().join("state")), Config::default()).unwrap();
    let job = m.create_job("early", JobType::Upload).unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    // The first two fragments of 6 MiB or more (fragments grow from 1 MiB on a fast link) are
    // answered 503 before their bodies are read, and the connection closed under the client's
    // writes: a body that large does not fit in the sockets' buffers.
    let six = 6 << 20;
    job.add_file(
        &server.url(&format!("/early.bin?early={six}:2")),
        src.to_str().unwrap(),
    )
    .unwrap();
    job.resume().unwrap();
    assert_eq!(
        job.wait(Some(Duration::from_secs(60))).unwrap(),
        JobState::Transferred
    );
    let _ = job.complete().unwrap();
    assert!(server.uploaded("/early.bin").unwrap() == bytes);
    let early: Vec<_> = server
        .bits_packets()
        .into_iter()
        .filter(|p| p.status == 503)
        .collect();
    assert_eq!(early.len(), 2, "fragments never reached 6 MiB: {early:?}");
}
