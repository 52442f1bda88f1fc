//! Upload jobs against the real openbits-server (run in-process on 127.0.0.1): an upload byte for
//! byte, a restart of the application mid-upload continuing the same session, BITS's file rules,
//! the server's refusals (an existing file, the maximum size) reaching the job as BITS codes, a
//! local file that changes during the upload, and upload-reply jobs with a small application
//! behind the server (their reply, its file, its data, a restart while it is being fetched).

mod common;
use common::wait_until;
use openbits_core::hresult as hr;
use openbits_core::job::FileRange;
use openbits_core::{Config, JobState, JobType, Manager};
use openbits_server::embedded::Embedded;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(60));
const MIB: u64 = 1 << 20;

/// An openbits-server on a free port, storing into `root` (stopped on drop).
fn server(root: &Path, extra: &[&str]) -> Embedded {
    let mut args = vec!["--listen", "127.0.0.1:0", "--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Embedded::start(&args).unwrap()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn manager(state: &Path) -> Manager {
    let config = Config {
        checkpoint_interval: Duration::from_millis(100),
        ..Config::default()
    };
    Manager::open(Some(state), config).unwrap()
}

fn source(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn an_upload_arrives_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = server(&root, &[]);
    let bytes = data(5 * MIB as usize + 12_345, 1);
    let src = source(dir.path(), "report.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("report", JobType::Upload).unwrap();
    job.add_file(&server.url("/in/report.bin"), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let p = job.progress().unwrap();
    assert_eq!(
        (p.bytes_total, p.bytes_transferred),
        (bytes.len() as u64, bytes.len() as u64)
    );
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(root.join("in/report.bin")).unwrap(), bytes);
    // The local file is read, never changed.
    assert_eq!(std::fs::read(&src).unwrap(), bytes);
}

#[test]
fn a_restart_mid_upload_continues_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = server(&root, &[]);
    let bytes = data(24 * MIB as usize, 2);
    let src = source(dir.path(), "big.bin", &bytes);
    let state = dir.path().join("state");
    let (id, session) = {
        let m = manager(&state);
        let job = m.create_job("big", JobType::Upload).unwrap();
        job.add_file(&server.url("/big.bin"), src.to_str().unwrap())
            .unwrap();
        job.set_max_bandwidth(8 * MIB).unwrap(); // 3 s in all: time to stop it half way
        job.resume().unwrap();
        wait_until("4 MiB acknowledged", || {
            job.progress().unwrap().bytes_transferred >= 4 * MIB
        });
        let session = job.record().unwrap().files[0]
            .extras()
            .upload_session
            .clone();
        assert!(session.is_some());
        (job.id(), session)
        // The manager closes here, mid-upload, as an application that exits would.
    };
    let m = manager(&state);
    let job = m.get_job(&id).unwrap();
    let rec = job.record().unwrap();
    assert_eq!(
        rec.files[0].extras().upload_session,
        session,
        "the session id was kept"
    );
    assert!(
        rec.files[0].bytes_transferred >= 4 * MIB,
        "the acknowledged offset was kept"
    );
    job.set_max_bandwidth(0).unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(
        job.record().unwrap().files[0].extras().upload_session,
        session,
        "same session"
    );
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), bytes);
}

#[test]
fn bits_rules_for_an_upload_jobs_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = manager(&dir.path().join("state"));
    let src = source(dir.path(), "a.bin", b"abc");
    let job = m.create_job("rules", JobType::Upload).unwrap();
    let url = "http://127.0.0.1:9/a.bin";
    // The local file must exist and be a regular file; its name is in the message.
    let missing = job
        .add_file(url, dir.path().join("missing.bin").to_str().unwrap())
        .unwrap_err();
    assert!(
        missing.message.contains("missing.bin"),
        "{}",
        missing.message
    );
    assert_eq!(
        job.add_file(url, dir.path().to_str().unwrap())
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    assert_eq!(
        job.add_file("file:///tmp/x", src.to_str().unwrap())
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    // One file: a set of two adds none; a second file is refused.
    let (a, b) = (src.to_str().unwrap(), src.to_str().unwrap());
    assert_eq!(
        job.add_file_set(&[(url, a), (url, b)]).unwrap_err().code,
        hr::E_TOO_MANY_FILES
    );
    assert!(job.record().unwrap().files.is_empty());
    job.add_file(url, a).unwrap();
    assert_eq!(job.add_file(url, a).unwrap_err().code, hr::E_TOO_MANY_FILES);
    let range = [FileRange {
        offset: 0,
        length: 1,
    }];
    assert_eq!(
        job.add_file_with_ranges(url, a, &range).unwrap_err().code,
        hr::E_NOTIMPL
    );
    // The reply calls belong to upload-reply jobs.
    assert_eq!(job.reply_data().unwrap_err().code, hr::E_NOTIMPL);
    assert_eq!(job.reply_progress().unwrap_err().code, hr::E_NOTIMPL);
    assert_eq!(
        job.set_reply_file_name(None).unwrap_err().code,
        hr::E_NOTIMPL
    );
}

#[test]
fn the_servers_refusals_reach_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("taken.bin"), b"already here").unwrap();
    let server = server(&root, &["--max-upload-size", "1000"]);
    let m = manager(&dir.path().join("state"));
    // An existing file is not overwritten (the server's default).
    let src = source(dir.path(), "small.bin", b"new content");
    let taken = m.create_job("taken", JobType::Upload).unwrap();
    taken
        .add_file(&server.url("/taken.bin"), src.to_str().unwrap())
        .unwrap();
    taken.resume().unwrap();
    assert_eq!(taken.wait(WAIT).unwrap(), JobState::Error);
    let e = taken.error().unwrap();
    // What IIS answers: 409 with BITS-Error-Code E_ACCESSDENIED, context REMOTE_FILE.
    assert_eq!(e.code, hr::E_ACCESSDENIED, "{}", e.description);
    assert_eq!(e.context, openbits_core::ErrorContext::RemoteFile);
    assert_eq!(
        std::fs::read(root.join("taken.bin")).unwrap(),
        b"already here"
    );
    // Over the maximum size: BITS_E_TOO_LARGE.
    let big = source(dir.path(), "big.bin", &data(5000, 3));
    let job = m.create_job("too big", JobType::Upload).unwrap();
    job.add_file(&server.url("/big.bin"), big.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::E_TOO_LARGE);
    assert!(!root.join("big.bin").exists());
}

#[test]
fn a_local_file_that_changes_stops_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = server(&root, &[]);
    let bytes = data(16 * MIB as usize, 4);
    let src = source(dir.path(), "moving.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("moving", JobType::Upload).unwrap();
    job.add_file(&server.url("/moving.bin"), src.to_str().unwrap())
        .unwrap();
    job.set_max_bandwidth(4 * MIB).unwrap();
    job.resume().unwrap();
    wait_until("some bytes acknowledged", || {
        job.progress().unwrap().bytes_transferred > 0
    });
    std::fs::OpenOptions::new()
        .append(true)
        .open(&src)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"more"))
        .unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::E_LOCAL_FILE_CHANGED);
}

#[test]
fn cancel_cancels_the_session_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = server(&root, &[]);
    let src = source(dir.path(), "slow.bin", &data(16 * MIB as usize, 5));
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("cancelled", JobType::Upload).unwrap();
    job.add_file(&server.url("/slow.bin"), src.to_str().unwrap())
        .unwrap();
    job.set_max_bandwidth(2 * MIB).unwrap();
    job.resume().unwrap();
    wait_until("some bytes acknowledged", || {
        job.progress().unwrap().bytes_transferred > 0
    });
    let session = job.record().unwrap().files[0]
        .extras()
        .upload_session
        .clone()
        .unwrap();
    let on_server = root.join(".bits-sessions").join(&*session);
    assert!(on_server.exists(), "{}", on_server.display());
    assert_eq!(job.cancel().unwrap(), hr::S_OK);
    wait_until("the server dropped the session", || !on_server.exists());
    assert!(!root.join("slow.bin").exists());
}

#[test]
fn an_upload_obeys_the_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = server(&root, &[]);
    let bytes = data(8 * MIB as usize, 6);
    let src = source(dir.path(), "paced.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    m.set_max_bandwidth(4 * MIB).unwrap(); // the manager's limit binds background uploads
    let job = m.create_job("paced", JobType::Upload).unwrap();
    job.add_file(&server.url("/paced.bin"), src.to_str().unwrap())
        .unwrap();
    let start = std::time::Instant::now();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let secs = start.elapsed().as_secs_f64();
    println!("8 MiB uploaded under a 4 MiB/s manager limit: {secs:.2} s");
    // 8 MiB at 4 MiB/s: 2 s (each acknowledged fragment is paced, as a download's writes are).
    assert!((1.6..=2.4).contains(&secs), "{secs:.2} s");
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(root.join("paced.bin")).unwrap(), bytes);
}

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

/// A server whose application answers each upload with `reply` of it.
fn reply_server(root: &Path, reply: fn(&[u8]) -> Vec<u8>) -> Embedded {
    let app = openbits_testserver::app::reply_application(reply);
    server(root, &["--notify-type", "by-value", "--notify-url", &app])
}

#[test]
fn an_upload_reply_brings_back_the_applications_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = reply_server(&root, reversed);
    let bytes = data(300_000, 7);
    let src = source(dir.path(), "question.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("ask", JobType::UploadReply).unwrap();
    assert_eq!(job.reply_file_name().unwrap(), None, "no file, no default");
    job.add_file(&server.url("/ask/question.bin"), src.to_str().unwrap())
        .unwrap();
    let default = format!("{}.{}.reply", src.display(), job.id().hyphenated());
    assert_eq!(job.reply_file_name().unwrap().as_deref(), Some(&*default));
    let before = job.reply_progress().unwrap();
    assert_eq!(
        (before.bytes_total, before.bytes_transferred),
        (u64::MAX, 0),
        "BG_SIZE_UNKNOWN before the reply"
    );
    assert_eq!(job.reply_data().unwrap_err().code, hr::E_INVALID_STATE);
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    let p = job.reply_progress().unwrap();
    assert_eq!((p.bytes_total, p.bytes_transferred), (300_000, 300_000));
    assert_eq!(job.reply_data().unwrap(), reversed(&bytes));
    // The reply waits in a temporary file until complete puts it at its name.
    assert!(!Path::new(&default).exists());
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(&default).unwrap(), reversed(&bytes));
    assert_eq!(
        job.reply_data().unwrap(),
        reversed(&bytes),
        "after complete"
    );
    assert!(
        common::temp_files(dir.path()).is_empty(),
        "no temporary file left"
    );
    // The session was closed after the reply was fetched: the server dropped it.
    let session = job.record().unwrap().files[0]
        .extras()
        .upload_session
        .clone()
        .unwrap();
    assert!(!root.join(".bits-sessions").join(&*session).exists());
}

#[test]
fn a_reply_goes_to_the_name_the_application_chose_and_large_ones_stay_in_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // 1.5 MiB of reply: more than GetReplyData hands over.
    let server = reply_server(&root, |b| b.repeat(3));
    let bytes = data(512 * 1024, 8);
    let src = source(dir.path(), "q.bin", &bytes);
    let replies = dir.path().join("replies");
    std::fs::create_dir(&replies).unwrap();
    let chosen = replies.join("answer.bin");
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("big answer", JobType::UploadReply).unwrap();
    job.add_file(&server.url("/q.bin"), src.to_str().unwrap())
        .unwrap();
    assert_eq!(
        job.set_reply_file_name(Some("relative/name"))
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    job.set_reply_file_name(Some(chosen.to_str().unwrap()))
        .unwrap();
    assert_eq!(job.reply_file_name().unwrap().as_deref(), chosen.to_str());
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(
        job.set_reply_file_name(None).unwrap_err().code,
        hr::E_INVALID_STATE,
        "the reply is already there"
    );
    let e = job.reply_data().unwrap_err();
    assert_eq!(e.code, hr::E_TOO_LARGE, "{}", e.message);
    assert_eq!(job.reply_progress().unwrap().bytes_total, 3 * 512 * 1024);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(&chosen).unwrap(), bytes.repeat(3));
}

#[test]
fn a_restart_while_the_reply_is_fetched_fetches_it_again_from_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // 8 MiB of reply at 2 MiB/s: seconds to stop the manager while it comes.
    let server = reply_server(&root, |b| b.repeat(64));
    let bytes = data(128 * 1024, 9);
    let src = source(dir.path(), "q.bin", &bytes);
    let state = dir.path().join("state");
    let (id, session) = {
        let m = manager(&state);
        let job = m.create_job("restart", JobType::UploadReply).unwrap();
        job.add_file(&server.url("/q.bin"), src.to_str().unwrap())
            .unwrap();
        job.set_max_bandwidth(2 * MIB).unwrap();
        job.resume().unwrap();
        wait_until("part of the reply", || {
            job.reply_progress().unwrap().bytes_transferred >= MIB
        });
        let session = job.record().unwrap().files[0]
            .extras()
            .upload_session
            .clone();
        (job.id(), session)
    };
    let m = manager(&state);
    let job = m.get_job(&id).unwrap();
    let rec = job.record().unwrap();
    assert_eq!(rec.files[0].extras().upload_session, session);
    assert!(
        rec.files[0].extras().reply.is_some(),
        "the reply's URL was kept"
    );
    assert_eq!(
        rec.files[0].bytes_transferred,
        bytes.len() as u64,
        "every acknowledged byte was kept"
    );
    job.set_max_bandwidth(0).unwrap();
    let end = job.wait(WAIT);
    assert_eq!(end.ok(), Some(JobState::Transferred), "{:?}", job.error());
    assert_eq!(
        job.record().unwrap().files[0].extras().upload_session,
        session
    );
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    let reply = job.reply_file_name().unwrap().unwrap();
    assert_eq!(std::fs::read(reply).unwrap(), bytes.repeat(64));
}

#[test]
fn cancel_removes_the_fetched_reply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = reply_server(&root, reversed);
    let src = source(dir.path(), "q.bin", &data(10_000, 10));
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("cancelled", JobType::UploadReply).unwrap();
    job.add_file(&server.url("/q.bin"), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(common::temp_files(dir.path()).len(), 1, "the reply waits");
    assert_eq!(job.cancel().unwrap(), hr::S_OK);
    assert!(common::temp_files(dir.path()).is_empty());
    assert!(!Path::new(&job.reply_file_name().unwrap().unwrap()).exists());
}

#[test]
fn an_upload_to_a_server_that_wants_basic_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // The password file as Apache's `htpasswd -B` writes it.
    let users = dir.path().join("htpasswd");
    let made = std::process::Command::new("htpasswd")
        .args(["-cbB", users.to_str().unwrap(), "ann", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils) is needed; scripts/test.sh installs it");
    assert!(made.status.success(), "{made:?}");
    let server = server(&root, &["--htpasswd", users.to_str().unwrap()]);
    let bytes = data(100_000, 11);
    let src = source(dir.path(), "private.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    // Without credentials: the server's 401 is the job's error.
    let job = m.create_job("no credentials", JobType::Upload).unwrap();
    job.add_file(&server.url("/a.bin"), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    assert_eq!(job.error().unwrap().code, hr::HResult::http(401));
    // With the wrong password, the same; with the right one, the upload goes through.
    let job = m.create_job("credentials", JobType::Upload).unwrap();
    job.add_file(&server.url("/b.bin"), src.to_str().unwrap())
        .unwrap();
    job.set_credentials(1, 1, "ann", "wrong").unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Error);
    job.set_credentials(1, 1, "ann", "s3cret").unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(root.join("b.bin")).unwrap(), bytes);
    assert!(!root.join("a.bin").exists());
}

#[test]
fn an_upload_reply_by_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let app = openbits_testserver::app::by_reference_application(reversed);
    let server = server(&root, &["--notify-type", "by-ref", "--notify-url", &app]);
    let bytes = data(70_000, 12);
    let src = source(dir.path(), "doc.bin", &bytes);
    let m = manager(&dir.path().join("state"));
    let job = m.create_job("by reference", JobType::UploadReply).unwrap();
    job.add_file(&server.url("/docs/doc.bin"), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.reply_data().unwrap(), reversed(&bytes));
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    let reply = job.reply_file_name().unwrap().unwrap();
    assert_eq!(std::fs::read(reply).unwrap(), reversed(&bytes));
    // The application asked for the upload to be stored at its URL too.
    assert_eq!(std::fs::read(root.join("docs/doc.bin")).unwrap(), bytes);
}
