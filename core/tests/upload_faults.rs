//! Upload jobs against a BITS server that misbehaves on purpose (tests/server's `bits` module: the
//! upload URL's query string picks the fault). Each test checks what upload-protocol.md §1.11
//! says the client must do: transient faults end with the exact bytes on the server, fatal ones
//! with the job in ERROR carrying the server's code and context; a 416 is followed even
//! backwards, a lost session is replaced, a 413 shrinks fragments, `BITS-Host-Id` is honoured.

mod common;
use common::wait_until;
use openbits_core::hresult as hr;
use openbits_core::{Config, ErrorContext, HResult, Job, JobState, JobType, Manager};
use openbits_protocol::PacketType;
use openbits_testserver::bits::Packet;
use openbits_testserver::{pattern, TestServer};
use std::time::{Duration, Instant};

const WAIT: Option<Duration> = Some(Duration::from_secs(60));
const MIB: usize = 1 << 20;

/// An upload of `len` pattern bytes to `path_and_query` on `server`, resumed, retrying at once
/// after transient errors. The manager and the folder live as long as the returned values.
struct Upload {
    job: Job,
    bytes: Vec<u8>,
    _manager: Manager,
    _dir: tempfile::TempDir,
}

fn upload(server: &TestServer, path_and_query: &str, len: usize) -> Upload {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(len, len as u64);
    let src = dir.path().join("source.bin");
    std::fs::write(&src, &bytes).unwrap();
    let manager = Manager::open(Some(&dir.path().join("state")), Config::default()).unwrap();
    let job = manager.create_job("faulty", JobType::Upload).unwrap();
    job.set_minimum_retry_delay(0).unwrap();
    job.add_file(&server.url(path_and_query), src.to_str().unwrap())
        .unwrap();
    job.resume().unwrap();
    Upload {
        job,
        bytes,
        _manager: manager,
        _dir: dir,
    }
}

/// Waits for TRANSFERRED, completes, and checks the server holds exactly the source's bytes.
fn finish(u: &Upload, server: &TestServer, path: &str) {
    let state = u.job.wait(WAIT).unwrap();
    assert_eq!(
        state,
        JobState::Transferred,
        "{:?}",
        u.job.error().ok().map(|e| e.description)
    );
    assert_eq!(u.job.complete().unwrap(), hr::S_OK);
    let got = server.uploaded(path).expect("the file was placed");
    assert!(
        got == u.bytes,
        "{} bytes on the server, {} sent",
        got.len(),
        u.bytes.len()
    );
}

fn fragments(packets: &[Packet]) -> Vec<&Packet> {
    packets
        .iter()
        .filter(|p| p.packet == Some(PacketType::Fragment))
        .collect()
}

fn sessions_created(packets: &[Packet]) -> Vec<String> {
    packets.iter().filter_map(|p| p.created.clone()).collect()
}

fn errors(job: &Job) -> u32 {
    job.record().unwrap().error_count
}

#[test]
fn a_connection_cut_mid_fragment_resumes_the_session() {
    let server = TestServer::start();
    // Under the first fragment's 1 MiB, and the second attempt's 512 KiB.
    let cut = 500_000;
    let u = upload(&server, &format!("/cut.bin?cut={cut}:2"), 20 * MIB);
    finish(&u, &server, "/cut.bin");
    let packets = server.bits_packets();
    assert_eq!(
        sessions_created(&packets).len(),
        1,
        "one session throughout"
    );
    let cuts = packets.iter().filter(|p| p.status == 0).count();
    assert_eq!(cuts, 2);
    assert_eq!(errors(&u.job), 2, "each cut is one transient error");
    // After each cut the session is resumed (a Ping) from the acknowledged offset: 0, so the
    // server, which kept the bytes before the cut, takes only what is new from the overlap.
    for (i, p) in packets.iter().enumerate().filter(|(_, p)| p.status == 0) {
        assert_eq!(
            packets[i + 1].packet,
            Some(PacketType::Ping),
            "{packets:#?}"
        );
        assert_eq!(packets[i + 2].range.map(|r| r.first), Some(0));
        assert_eq!(p.body, cut);
    }
    // What a cut costs: the bytes sent before it, and those the server kept are sent once more
    // (the client never heard of them: BITS has no offset query), so at most 3 cuts' worth.
    let extra = server.bits_bytes_received() - u.bytes.len() as u64;
    assert!(
        (cut..=3 * cut).contains(&extra),
        "{extra} bytes beyond the file"
    );
}

#[test]
fn a_503_is_transient() {
    let server = TestServer::start();
    let u = upload(&server, "/busy.bin?fail=503:3", 3 * MIB);
    finish(&u, &server, "/busy.bin");
    let statuses: Vec<u16> = server.bits_packets().iter().map(|p| p.status).collect();
    assert_eq!(&statuses[..4], &[503, 503, 503, 200], "{statuses:?}");
    assert_eq!(errors(&u.job), 3);
}

#[test]
fn a_503_with_retry_after_waits_that_long() {
    let server = TestServer::start();
    let u = upload(&server, "/later.bin?fail=503:1&retryafter=2", MIB);
    wait_until("the 503", || {
        u.job.state().unwrap() == JobState::TransientError
    });
    let e = u.job.error().unwrap();
    assert_eq!(
        (e.code, e.context),
        (HResult::http(503), ErrorContext::RemoteFile)
    );
    finish(&u, &server, "/later.bin");
    let packets = server.bits_packets();
    let waited = packets[1].at - packets[0].at;
    // The job's own retry delay is 0: only the server's Retry-After explains a pause.
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
}

#[test]
fn a_416_moving_the_offset_backwards_is_followed() {
    let server = TestServer::start();
    let (at, to) = (6 * MIB as u64, 5 * MIB as u64);
    let u = upload(
        &server,
        &format!("/back.bin?rewind={at}:{to}"),
        20 * MIB + 77,
    );
    finish(&u, &server, "/back.bin");
    let packets = server.bits_packets();
    let i = packets.iter().position(|p| p.status == 416).expect("a 416");
    assert!(packets[i].range.is_some_and(|r| r.first >= at));
    assert_eq!(
        packets[i + 1].range.map(|r| r.first),
        Some(to),
        "the next fragment starts where the 416 said"
    );
    assert_eq!(errors(&u.job), 0, "a 416 is not an error");
    assert_eq!(sessions_created(&packets).len(), 1);
}

#[test]
fn a_lost_session_is_replaced_by_a_new_one() {
    let server = TestServer::start();
    let u = upload(&server, &format!("/lost.bin?lose={}", 4 * MIB), 20 * MIB);
    finish(&u, &server, "/lost.bin");
    let packets = server.bits_packets();
    let created = sessions_created(&packets);
    assert_eq!(created.len(), 2, "{packets:#?}");
    let i = packets.iter().position(|p| p.status == 500).expect("a 500");
    assert_eq!(packets[i + 1].packet, Some(PacketType::CreateSession));
    // The new session starts empty: the client's next fragment is corrected to 0 (416) or
    // starts there.
    let first_of_new: Vec<_> = fragments(&packets[i + 1..])
        .into_iter()
        .filter(|p| p.status == 200)
        .collect();
    assert_eq!(first_of_new[0].range.map(|r| r.first), Some(0));
    assert!(first_of_new
        .iter()
        .all(|p| p.session.as_deref() == Some(created[1].as_str())));
    assert_eq!(errors(&u.job), 0, "a new session is not an error");
    assert!(server.bits_open_sessions().is_empty());
}

#[test]
fn a_413_shrinks_fragments() {
    let server = TestServer::start();
    let max = 100_000;
    let u = upload(&server, &format!("/small.bin?maxfrag={max}"), MIB + 3);
    finish(&u, &server, "/small.bin");
    let packets = server.bits_packets();
    let frags = fragments(&packets);
    let refused: Vec<u64> = frags
        .iter()
        .filter(|p| p.status == 413)
        .map(|p| p.body)
        .collect();
    // Halved from the first 1 MiB after each 413 until a fragment fits (65,536 bytes), and
    // never grown back past that, however fast the fragments go through.
    assert_eq!(refused, [1 << 20, 512 << 10, 256 << 10, 128 << 10]);
    let accepted: Vec<u64> = frags
        .iter()
        .filter(|p| p.status == 200)
        .map(|p| p.body)
        .collect();
    assert!(accepted[..accepted.len() - 1].iter().all(|&n| n == 65_536));
    assert_eq!(errors(&u.job), 0, "a 413 is not an error");
}

#[test]
fn a_413_below_the_smallest_fragment_is_fatal() {
    let server = TestServer::start();
    // [MC-BUP] §6 <10>: never below 5 KB.
    let u = upload(&server, "/tiny.bin?maxfrag=4000", 100_000);
    assert_eq!(u.job.wait(WAIT).unwrap(), JobState::Error);
    let e = u.job.error().unwrap();
    assert_eq!(
        (e.code, e.context),
        (hr::E_TOO_LARGE, ErrorContext::RemoteFile)
    );
    let sizes: Vec<u64> = fragments(&server.bits_packets())
        .iter()
        .map(|p| p.body)
        .collect();
    assert_eq!(sizes.last(), Some(&5120), "{sizes:?}");
    assert!(sizes.iter().all(|&n| n >= 5120), "{sizes:?}");
}

#[test]
fn a_host_id_takes_the_later_packets_even_after_a_fault() {
    let server = TestServer::start();
    let port = server.addr.port();
    // The origin is 127.0.0.1; the Host-Id names the same server as "localhost". The first
    // fragment is cut, so the session is resumed after a transient error.
    let u = upload(&server, "/farm.bin?hostid=localhost&cut=1000000", 10 * MIB);
    finish(&u, &server, "/farm.bin");
    let packets = server.bits_packets();
    assert_eq!(packets[0].packet, Some(PacketType::CreateSession));
    assert_eq!(packets[0].host, format!("127.0.0.1:{port}"));
    let hosts: Vec<&str> = packets[1..].iter().map(|p| p.host.as_str()).collect();
    assert!(
        hosts.iter().all(|h| *h == format!("localhost:{port}")),
        "{hosts:?}"
    );
    // [MC-BUP] §3.1: a Ping goes to the Host-Id first.
    assert_eq!(packets[1].packet, Some(PacketType::Ping));
    assert_eq!(sessions_created(&packets).len(), 1);
}

#[test]
fn an_unreachable_host_id_falls_back_to_the_origin_after_its_timeout() {
    let server = TestServer::start();
    // 127.0.0.2 is loopback too, but nothing listens there on this port: connections are refused.
    let u = upload(&server, "/gone.bin?hostid=127.0.0.2:1", 2 * MIB);
    finish(&u, &server, "/gone.bin");
    let packets = server.bits_packets();
    let created = sessions_created(&packets);
    assert_eq!(
        created.len(),
        2,
        "a new session at the origin: {packets:#?}"
    );
    assert_eq!(packets[1].packet, Some(PacketType::CreateSession));
    let waited = packets[1].at - packets[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "fell back after {waited:?}, before the 1 s BITS-Host-Id-Fallback-Timeout"
    );
    assert!(errors(&u.job) >= 1);
}

#[test]
fn without_a_fallback_timeout_the_host_id_is_kept() {
    let server = TestServer::start();
    let u = upload(&server, "/stay.bin?hostid=127.0.0.2", 2 * MIB);
    let mut error = None;
    wait_until("three failed attempts", || {
        let r = u.job.record().unwrap();
        if r.error_count >= 3 && r.state == JobState::TransientError {
            error = r.error;
        }
        error.is_some()
    });
    let e = error.unwrap();
    assert_eq!(e.code, hr::E_CONNECT_FAILURE, "{}", e.description);
    assert!(e.description.contains("127.0.0.2"), "{}", e.description);
    let packets = server.bits_packets();
    assert_eq!(
        packets.len(),
        1,
        "nothing but the Create-Session reached the origin: {packets:#?}"
    );
    assert_eq!(u.job.cancel().unwrap(), hr::S_OK);
}

#[test]
fn a_lost_fragment_ack_is_answered_again() {
    // The server stored the fragment; the client, which never heard so, resends it.
    let server = TestServer::start();
    let u = upload(&server, "/dup.bin?noack=fragment:2", 12 * MIB);
    finish(&u, &server, "/dup.bin");
    let packets = server.bits_packets();
    assert_eq!(sessions_created(&packets).len(), 1);
    assert_eq!(errors(&u.job), 2);
}

#[test]
fn a_lost_close_session_ack_still_completes_the_job() {
    // The Close-Session placed the file and its Ack was lost: the resent Close finds no session,
    // which means the first one did its work, not that the upload must start again (a new
    // Create-Session would be refused now that the file exists).
    let server = TestServer::start();
    let u = upload(&server, "/closed.bin?noack=close-session", 3 * MIB);
    finish(&u, &server, "/closed.bin");
    let packets = server.bits_packets();
    assert_eq!(sessions_created(&packets).len(), 1, "{packets:#?}");
}

#[test]
fn acks_without_session_ids_are_accepted() {
    let server = TestServer::start();
    let u = upload(&server, "/iis.bin?nosid=1", 9 * MIB);
    finish(&u, &server, "/iis.bin");
    let packets = server.bits_packets();
    let id = sessions_created(&packets).pop().unwrap();
    assert!(packets[1..]
        .iter()
        .all(|p| p.session.as_deref() == Some(id.as_str())));
    assert_eq!(errors(&u.job), 0);
}

#[test]
fn error_headers_on_a_200_are_ignored() {
    let server = TestServer::start();
    let u = upload(&server, "/noisy.bin?errok=1", 9 * MIB);
    finish(&u, &server, "/noisy.bin");
    assert_eq!(errors(&u.job), 0);
}

#[test]
fn server_errors_are_transient_or_fatal_as_bits_says() {
    let server = TestServer::start();
    let (access, invalid) = (hr::E_ACCESSDENIED, hr::E_INVALIDARG);
    // (query, code, context) of fatal answers: the server's BITS error code and context when it
    // sends them (either header name), BG_E_HTTP_ERROR_xxx when it does not.
    let fatal = [
        (
            "fail=403:99&errcode=0x80070005",
            access,
            ErrorContext::RemoteFile,
        ),
        (
            "fail=400:99&errcode=0x80070057&errctx=0x7&errname=spec",
            invalid,
            ErrorContext::RemoteApplication,
        ),
        ("fail=404:99", HResult::http(404), ErrorContext::RemoteFile),
        ("fail=501:99", HResult::http(501), ErrorContext::RemoteFile),
        (
            "fail=500:99&errcode=0x80200020",
            hr::E_TOO_LARGE,
            ErrorContext::RemoteFile,
        ),
    ];
    let jobs: Vec<_> = fatal
        .iter()
        .enumerate()
        .map(|(i, (q, ..))| upload(&server, &format!("/fatal{i}.bin?{q}"), 10_000))
        .collect();
    for (u, (q, code, context)) in jobs.iter().zip(fatal) {
        assert_eq!(u.job.wait(WAIT).unwrap(), JobState::Error, "{q}");
        let e = u.job.error().unwrap();
        assert_eq!(
            (e.code, e.context),
            (code, context),
            "{q}: {}",
            e.description
        );
        assert!(!e.description.is_empty());
        assert_eq!(errors(&u.job), 1, "{q}: fatal at once");
    }
    // 500 and a server application's 503 are transient.
    for (i, q) in ["fail=500:2", "fail=503:2&errcode=0x80070005&errctx=0x7"]
        .iter()
        .enumerate()
    {
        let path = format!("/transient{i}.bin");
        let u = upload(&server, &format!("{path}?{q}"), 10_000);
        finish(&u, &server, &path);
        assert_eq!(errors(&u.job), 2, "{q}");
    }
}

#[test]
fn a_clean_upload_is_create_fragments_in_order_close() {
    // The recorder itself: a clean upload is Create-Session, Fragments in order, Close-Session.
    let server = TestServer::start();
    let started = Instant::now();
    let u = upload(&server, "/clean.bin", 17 * MIB);
    finish(&u, &server, "/clean.bin");
    let packets = server.bits_packets();
    assert_eq!(packets[0].packet, Some(PacketType::CreateSession));
    assert_eq!(
        packets.last().unwrap().packet,
        Some(PacketType::CloseSession)
    );
    // Each fragment starts where the one before ended, all acknowledged, and they cover the file.
    let frags = fragments(&packets);
    assert_eq!(frags.len(), packets.len() - 2);
    let mut next = 0;
    for p in frags {
        let r = p.range.unwrap();
        assert_eq!((r.first, p.status, p.body), (next, 200, r.len()));
        next = r.end();
    }
    assert_eq!(next, u.bytes.len() as u64);
    println!("17 MiB clean upload: {:?}", started.elapsed());
}
