//! Crashes, restarts, shutdown, load and abuse.

mod common;
use common::*;
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Runs a client session until `stop` acknowledged fragments, returning the session.
fn upload_some(
    addr: std::net::SocketAddr,
    path: &str,
    bytes: &[u8],
    fragment: u64,
    stop: usize,
) -> ClientSession {
    let mut cfg = ClientConfig::new(format!("http://{addr}{path}"), bytes.len() as u64);
    cfg.fragment_len = fragment;
    let mut session = ClientSession::new(cfg);
    let mut acked = 0;
    while acked < stop {
        let Next::Send(req) = session.next() else {
            panic!("finished early")
        };
        let r = send(addr, path, &req, bytes);
        if let Event::Progress { .. } = session.on_response(r.status, &r.headers) {
            acked += 1;
        }
    }
    session
}

#[test]
fn sigkill_mid_upload_then_resume_is_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3 * 1024 * 1024 + 17, 9);
    let mut s = Server::root(dir.path(), &[]);
    let session = upload_some(s.addr, "/k/f.bin", &bytes, 256 * 1024, 5);
    let id = session.session_id().unwrap().to_owned();
    // A fragment in flight when the process dies: half its body is sent, no answer comes.
    let mut half = TcpStream::connect(s.addr).unwrap();
    let range = format!(
        "bytes {}-{}/{}",
        session.offset(),
        session.offset() + 99_999,
        bytes.len()
    );
    write!(half, "BITS_POST /k/f.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: {range}\r\nContent-Length: 100000\r\n\r\n").unwrap();
    half.write_all(&bytes[session.offset() as usize..session.offset() as usize + 50_000])
        .unwrap();
    s.kill9();

    let s = Server::root(dir.path(), &[]);
    // The client resumes from an older offset than the server has: 416 or overlap both work.
    let mut cfg = ClientConfig::new(s.url("/k/f.bin"), bytes.len() as u64);
    cfg.fragment_len = 300 * 1024;
    let mut resumed = ClientSession::resume(cfg, id, session.offset() - 1000, None);
    upload_with(&mut resumed, &mut |_| s.addr, "/k/f.bin", &bytes).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("root/k/f.bin")).unwrap(),
        bytes
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("root/.bits-sessions"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".clients" && n != ".lock")
        .collect();
    assert!(left.is_empty(), "session data left: {left:?}");
}

#[test]
fn a_restart_keeps_sessions_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/r.bin");
    assert_eq!(fragment(s.addr, "/r.bin", &id, 0, 10, b"abcd").status, 200);
    s.signal(libc::SIGTERM);
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    let s = Server::root(dir.path(), &[]);
    let r = fragment(s.addr, "/r.bin", &id, 8, 10, b"ij");
    assert_eq!(
        (r.status, r.h("bits-received-content-range")),
        (416, Some("4"))
    );
    assert_eq!(
        fragment(s.addr, "/r.bin", &id, 4, 10, b"efghij").h("bits-received-content-range"),
        Some("10")
    );
    close(s.addr, "/r.bin", &id);
    assert_eq!(
        std::fs::read(dir.path().join("root/r.bin")).unwrap(),
        b"abcdefghij"
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    finishes_the_request_in_flight(libc::SIGTERM);
}

#[test]
fn sigint_finishes_the_request_in_flight() {
    finishes_the_request_in_flight(libc::SIGINT);
}

fn finishes_the_request_in_flight(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/g.bin");
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(c, "BITS_POST /g.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n01234").unwrap();
    // Wait until the server has the request (its log line comes after the answer, so watch the
    // session's data file instead).
    let data = dir
        .path()
        .join("root/.bits-sessions")
        .join(&id)
        .join("data");
    wait_for("the fragment to start", || data.exists());
    s.signal(signal);
    c.write_all(b"56789").unwrap();
    let r = read_response(&mut c, false);
    assert_eq!(
        (r.status, r.h("bits-received-content-range")),
        (200, Some("10"))
    );
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
}

#[test]
fn two_hundred_concurrent_sessions_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let n = 200;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let addr = s.addr;
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let bytes = data(1024 * 1024, i as u8);
                barrier.wait();
                upload(addr, &format!("/many/{i}.bin"), &bytes, 256 * 1024).map(|_| bytes)
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let bytes = t
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        assert_eq!(
            std::fs::read(dir.path().join(format!("root/many/{i}.bin"))).unwrap(),
            bytes,
            "file {i}"
        );
    }
    let hwm = vm_hwm_kib(s.pid());
    eprintln!("200 sessions x 1 MiB: server VmHWM {} KiB", hwm);
    assert!(hwm < 100 * 1024, "server peak RSS {hwm} KiB");
}

#[test]
fn a_huge_fragment_is_streamed_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/big.bin");
    let len: u64 = 200 * 1024 * 1024;
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(c, "BITS_POST /big.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 0-{}/{len}\r\nContent-Length: {len}\r\n\r\n", len - 1).unwrap();
    let chunk = data(1024 * 1024, 5);
    for _ in 0..200 {
        c.write_all(&chunk).unwrap();
    }
    let r = read_response(&mut c, false);
    assert_eq!(
        r.h("bits-received-content-range"),
        Some(len.to_string().as_str())
    );
    let hwm = vm_hwm_kib(s.pid());
    eprintln!("one 200 MiB fragment: server VmHWM {} KiB", hwm);
    assert!(hwm < 50 * 1024, "memory grew with the fragment: {hwm} KiB");
}

#[test]
fn a_silent_client_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--read-timeout", "1"]);
    let id = create_id(s.addr, "/slow.bin");
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(c, "BITS_POST /slow.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 0-99/100\r\nContent-Length: 100\r\n\r\n0123456789").unwrap();
    // The server answers (400) or closes; either way the read ends instead of waiting forever.
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 400"), "{text}");
    // The session lock was released: the next fragment goes through.
    assert_eq!(
        fragment(s.addr, "/slow.bin", &id, 0, 100, &[7; 100]).status,
        200
    );
    // Connections that send nothing, a whole request and then nothing (an idle keep-alive),
    // or half a request head, are closed too.
    let ping = b"BITS_POST /slow.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\nContent-Length: 0\r\n\r\n";
    for opening in [
        &b""[..],
        ping,
        b"BITS_POST /slow.bin HTTP/1.1\r\nHost: x\r\n",
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        c.write_all(opening).unwrap();
        let mut buf = Vec::new();
        let n = c.read_to_end(&mut buf);
        assert!(
            n.is_ok(),
            "closed by the server, not by our 120 s guard: {n:?}"
        );
        if opening == ping {
            assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        }
    }
    // Only the half head was a request, and it has its log line (as 408: no answer is sent).
    // The idle connections ended (and would have been logged) a second before it timed out.
    wait_for("the timed-out head's log line", || {
        s.log_text().contains("\"- -\" 408")
    });
    let log = s.log_text();
    assert_eq!(log.matches("\"- -\" 408").count(), 1, "{log}");
}

#[test]
fn too_many_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    let mut head = String::from(
        "BITS_POST /h HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\nContent-Length: 0\r\n",
    );
    for i in 0..200 {
        head.push_str(&format!("X-{i}: y\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // hyper answers this itself, before the request handler; the server still logs it.
    wait_for("the 431's log line", || {
        s.log_text().contains("\"- -\" 431")
    });
    let mut c = TcpStream::connect(s.addr).unwrap();
    let huge = format!(
        "BITS_POST /h HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let _ = c.write_all(huge.as_bytes());
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431") || buf.is_empty(), "{text}");
}

/// Sends every byte of an upload in one fragment and leaves the session open.
fn upload_unclosed(addr: std::net::SocketAddr, path: &str, bytes: &[u8]) -> String {
    let id = create_id(addr, path);
    let r = fragment(addr, path, &id, 0, bytes.len() as u64, bytes);
    assert_eq!(
        r.h("bits-received-content-range"),
        Some(&*bytes.len().to_string())
    );
    id
}

/// Sets the marker Close-Session writes into meta.json before it places the file.
fn mark_closing(session: &std::path::Path) {
    let p = session.join("meta.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["closing"] = true.into();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn close_resent_after_a_crash_between_placing_and_removing_succeeds() {
    for allow in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let extra: &[&str] = if allow { &["--allow-overwrites"] } else { &[] };
        let mut s = Server::root(dir.path(), extra);
        let bytes = data(300_000, 4);
        let id = upload_unclosed(s.addr, "/c/f.bin", &bytes);
        s.kill9();
        // What the first Close-Session leaves when the process dies after placing the file:
        // the marker, the file at its name (renamed there with --allow-overwrites,
        // hard-linked without), and the session.
        let session = dir.path().join("root/.bits-sessions").join(&id);
        mark_closing(&session);
        std::fs::create_dir_all(dir.path().join("root/c")).unwrap();
        let dest = dir.path().join("root/c/f.bin");
        if allow {
            std::fs::rename(session.join("data"), &dest).unwrap();
        } else {
            std::fs::hard_link(session.join("data"), &dest).unwrap();
        }
        let s = Server::root(dir.path(), extra);
        // The client never saw the first Ack and sends Close-Session again.
        let r = close(s.addr, "/c/f.bin", &id);
        assert_eq!(
            (r.status, r.h("bits-session-id")),
            (200, Some(id.as_str())),
            "allow-overwrites {allow}: {r:?}"
        );
        assert!(std::fs::read(&dest).unwrap() == bytes, "file differs");
        assert!(!session.exists(), "session left behind");
    }
}

#[test]
fn a_close_marked_but_not_placed_places_or_refuses_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::root(dir.path(), &[]);
    let bytes = data(70_000, 5);
    let placed = upload_unclosed(s.addr, "/m/placed.bin", &bytes);
    let taken = upload_unclosed(s.addr, "/m/taken.bin", &bytes);
    s.kill9();
    // Both died after the marker, before the file moved; meanwhile someone else wrote the
    // second one's name.
    let sessions = dir.path().join("root/.bits-sessions");
    mark_closing(&sessions.join(&placed));
    mark_closing(&sessions.join(&taken));
    std::fs::create_dir_all(dir.path().join("root/m")).unwrap();
    std::fs::write(dir.path().join("root/m/taken.bin"), b"theirs").unwrap();
    let s = Server::root(dir.path(), &[]);
    assert_eq!(close(s.addr, "/m/placed.bin", &placed).status, 200);
    assert!(std::fs::read(dir.path().join("root/m/placed.bin")).unwrap() == bytes);
    let r = close(s.addr, "/m/taken.bin", &taken);
    assert_eq!(
        (r.status, r.h("bits-error-code")),
        (409, Some("0x80070005")),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("root/m/taken.bin")).unwrap(),
        b"theirs"
    );
}
