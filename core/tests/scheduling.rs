//! Scheduling by priority, end to end: a HIGH job overtakes a LOW one that started earlier,
//! FOREGROUND runs beside the background, and equal priorities take turns.

mod common;
use common::wait_until;
use openbits_core::hresult as hr;
use openbits_core::{Config, JobState, JobType, Manager, Priority};
use openbits_testserver::{pattern, TestServer};
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(60));

fn manager(dir: &std::path::Path, slots: usize, slice_ms: u64) -> Manager {
    let config = Config {
        max_concurrent_jobs: slots,
        time_slice: Duration::from_millis(slice_ms),
        checkpoint_interval: Duration::from_millis(50),
        ..Config::default()
    };
    Manager::open(Some(&dir.join("state")), config).unwrap()
}

#[test]
fn a_high_job_finishes_before_a_low_one_that_started_earlier() {
    let server = TestServer::start();
    server.add("/low", pattern(1_500_000, 1));
    server.add("/high", pattern(300_000, 2));
    let dir = tempfile::tempdir().unwrap();
    // Four slots: the LOW job is not starved of a slot, it yields to the higher priority.
    let m = manager(dir.path(), 4, 30_000);
    let low = m.create_job("low", JobType::Download).unwrap();
    low.set_priority(Priority::Low).unwrap();
    low.add_file(
        &server.url("/low?rate=1000000"),
        dir.path().join("low").to_str().unwrap(),
    )
    .unwrap();
    low.resume().unwrap();
    wait_until("LOW transfers", || {
        low.progress().unwrap().bytes_transferred > 100_000
    });
    let high = m.create_job("high", JobType::Download).unwrap();
    high.set_priority(Priority::High).unwrap();
    high.add_file(
        &server.url("/high?rate=1000000"),
        dir.path().join("high").to_str().unwrap(),
    )
    .unwrap();
    high.resume().unwrap();
    wait_until("LOW gives up its slot", || {
        low.state().unwrap() == JobState::Queued
    });
    let low_paused_at = low.progress().unwrap().bytes_transferred;
    assert_eq!(high.wait(WAIT).unwrap(), JobState::Transferred);
    assert!(
        low.state().unwrap() != JobState::Transferred,
        "HIGH finished first"
    );
    assert!(
        low.progress().unwrap().bytes_transferred <= low_paused_at + 70_000,
        "LOW waited meanwhile"
    );
    assert_eq!(low.wait(WAIT).unwrap(), JobState::Transferred);
    let (h, l) = (high.record().unwrap(), low.record().unwrap());
    assert!(h.transfer_completed_ms < l.transfer_completed_ms);
    // LOW resumed from its bytes on disk, not from 0.
    let low_requests: Vec<_> = server
        .seen()
        .into_iter()
        .filter(|s| s.path_and_query.starts_with("/low"))
        .collect();
    assert!(
        low_requests.len() >= 2 && low_requests.last().unwrap().range.is_some(),
        "{low_requests:?}"
    );
    assert_eq!(low.complete().unwrap(), hr::S_OK);
    assert!(std::fs::read(dir.path().join("low")).unwrap() == pattern(1_500_000, 1));
}

#[test]
fn foreground_transfers_beside_background() {
    let server = TestServer::start();
    server.add("/bg", pattern(600_000, 3));
    server.add("/fg", pattern(100_000, 4));
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1, 30_000);
    let bg = m.create_job("bg", JobType::Download).unwrap();
    bg.add_file(
        &server.url("/bg?rate=300000"),
        dir.path().join("bg").to_str().unwrap(),
    )
    .unwrap();
    bg.resume().unwrap();
    wait_until("bg transfers", || {
        bg.progress().unwrap().bytes_transferred > 0
    });
    let fg = m.create_job("fg", JobType::Download).unwrap();
    fg.set_priority(Priority::Foreground).unwrap();
    fg.add_file(&server.url("/fg"), dir.path().join("fg").to_str().unwrap())
        .unwrap();
    fg.resume().unwrap();
    assert_eq!(fg.wait(WAIT).unwrap(), JobState::Transferred);
    assert!(
        bg.state().unwrap() == JobState::Transferring,
        "the background job kept its slot"
    );
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|s| s.path_and_query.starts_with("/bg"))
            .count(),
        1,
        "never interrupted"
    );
}

#[test]
fn equal_priorities_take_turns_in_time_slices() {
    let server = TestServer::start();
    server.add("/a", pattern(1_000_000, 5));
    server.add("/b", pattern(1_000_000, 6));
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1, 300);
    let jobs: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let j = m.create_job(n, JobType::Download).unwrap();
            j.add_file(
                &server.url(&format!("/{n}?rate=500000")),
                dir.path().join(n).to_str().unwrap(),
            )
            .unwrap();
            j.resume().unwrap();
            j
        })
        .collect();
    // One slot, 2 s of data each: with 300 ms turns both make progress long before either ends.
    wait_until("both jobs have transferred bytes", || {
        jobs.iter()
            .all(|j| j.progress().unwrap().bytes_transferred > 100_000)
    });
    assert!(jobs
        .iter()
        .all(|j| j.state().unwrap() != JobState::Transferred));
    for (j, n) in jobs.iter().zip(["a", "b"]) {
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
        assert_eq!(j.complete().unwrap(), hr::S_OK);
        let seed = if n == "a" { 5 } else { 6 };
        assert!(
            std::fs::read(dir.path().join(n)).unwrap() == pattern(1_000_000, seed),
            "{n}"
        );
    }
}

/// Jobs waiting for a slot are parked in their turn order and a pass looks only at the first
/// few: a parked job whose priority is raised, or that is suspended and resumed, or cancelled,
/// must still be seen at once. One slot; job 0 transfers slowly while 20 small jobs wait.
#[test]
fn a_waiting_job_changed_behind_many_others_is_seen_at_once() {
    let server = TestServer::start();
    server.add("/slow", pattern(300_000, 1));
    server.add("/small", pattern(1_000, 2));
    let dir = tempfile::tempdir().unwrap();
    let m = manager(dir.path(), 1, 30_000);
    let job = |name: &str, url: &str| {
        let j = m.create_job(name, JobType::Download).unwrap();
        j.add_file(url, dir.path().join(name).to_str().unwrap())
            .unwrap();
        j.resume().unwrap();
        j
    };
    let first = job("first", &server.url("/slow?rate=300000"));
    wait_until("the first job transfers", || {
        first.progress().unwrap().bytes_transferred > 0
    });
    let waiting: Vec<_> = (1..=20)
        .map(|i| job(&format!("w{i}"), &server.url("/small")))
        .collect();
    // Passes come (each resume wakes one) and park the 20 behind the first job.
    wait_until("the first job moves on", || {
        first.progress().unwrap().bytes_transferred > 60_000
    });
    assert!(waiting
        .iter()
        .all(|j| j.state().unwrap() == JobState::Queued));
    // The last in line is cancelled, the one before it suspended and resumed, and the one
    // before that overtakes everyone.
    assert_eq!(waiting[19].cancel().unwrap(), hr::S_OK);
    waiting[18].suspend().unwrap();
    waiting[18].resume().unwrap();
    waiting[17].set_priority(Priority::High).unwrap();
    assert_eq!(waiting[17].wait(WAIT).unwrap(), JobState::Transferred);
    let done = waiting[..17]
        .iter()
        .filter(|j| j.state().unwrap() == JobState::Transferred)
        .count();
    assert_eq!(done, 0, "HIGH went first, while the others waited");
    assert_eq!(first.wait(WAIT).unwrap(), JobState::Transferred);
    for j in &waiting[..19] {
        assert_eq!(j.wait(WAIT).unwrap(), JobState::Transferred);
        assert_eq!(j.complete().unwrap(), hr::S_OK);
    }
    assert_eq!(first.complete().unwrap(), hr::S_OK);
}
