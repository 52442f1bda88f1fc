//! openbits-server over real HTTP: each packet, each error code, paths, overwrites, limits.

mod common;
use common::*;

#[test]
fn each_packet_gets_its_ack() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let p = bits(s.addr, "/x/f.bin", "Ping", &[], b"");
    assert_eq!(
        (p.status, p.h("bits-packet-type"), p.h("content-length")),
        (200, Some("Ack"), Some("0"))
    );

    let c = create(s.addr, "/x/f.bin");
    assert_eq!(c.status, 200);
    assert_eq!(c.h("bits-protocol"), Some(GUID));
    assert_eq!(c.h("accept-encoding"), Some("identity"));
    let id = c.h("bits-session-id").unwrap().to_owned();
    assert!(id.starts_with('{') && id.len() == 38, "{id}");

    let bytes = data(3000, 1);
    let f = fragment(s.addr, "/x/f.bin", &id, 0, 3000, &bytes[..1000]);
    assert_eq!(
        (
            f.status,
            f.h("bits-received-content-range"),
            f.h("bits-packet-type")
        ),
        (200, Some("1000"), Some("Ack"))
    );
    let f = fragment(s.addr, "/x/f.bin", &id, 1000, 3000, &bytes[1000..]);
    assert_eq!(f.h("bits-received-content-range"), Some("3000"));
    assert!(
        f.h("bits-reply-url").is_none(),
        "no reply URL for a plain upload"
    );
    assert!(
        !dir.path().join("root/x/f.bin").exists(),
        "nothing at the destination before Close-Session"
    );

    let close = close(s.addr, "/x/f.bin", &id);
    assert_eq!(
        (close.status, close.h("bits-session-id")),
        (200, Some(id.as_str()))
    );
    assert_eq!(
        std::fs::read(dir.path().join("root/x/f.bin")).unwrap(),
        bytes
    );
    assert!(
        !dir.path().join("root/.bits-sessions").join(&id).exists(),
        "session data freed"
    );

    let id = create_id(s.addr, "/x/g.bin");
    fragment(s.addr, "/x/g.bin", &id, 0, 10, &bytes[..5]);
    let cancel = bits(
        s.addr,
        "/x/g.bin",
        "Cancel-Session",
        &[("BITS-Session-Id", &id)],
        b"",
    );
    assert_eq!(cancel.status, 200);
    assert!(!dir.path().join("root/x/g.bin").exists());
    assert!(!dir.path().join("root/.bits-sessions").join(&id).exists());

    // Packet names in any case, POST with the method override, the spec's comma list.
    let r = request(
        s.addr,
        "POST",
        "/x/h.bin",
        &[
            ("X-HTTP-Method-Override", "BITS_POST"),
            ("bits-packet-type", "CREATE-SESSION"),
            (
                "BITS-Supported-Protocols",
                &format!(
                    "{{00000000-0000-0000-0000-000000000000}},{}",
                    GUID.to_uppercase()
                ),
            ),
        ],
        b"",
    );
    assert_eq!((r.status, r.h("bits-protocol")), (200, Some(GUID)));
}

fn assert_error(r: &Resp, status: u16, code: &str, ctx: &str) {
    assert_eq!(
        (
            r.status,
            r.h("bits-error-code"),
            r.h("bits-error-context"),
            r.h("bits-packet-type")
        ),
        (status, Some(code), Some(ctx), Some("Ack")),
        "{r:?}"
    );
}

#[test]
fn each_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--max-upload-size", "1000"]);
    let a = s.addr;
    let unknown = "{00000000-0000-4000-8000-000000000000}";
    for packet in ["Fragment", "Close-Session", "Cancel-Session"] {
        let mut h = vec![("BITS-Session-Id", unknown)];
        if packet == "Fragment" {
            h.push(("Content-Range", "bytes 0-0/1"));
        }
        let r = bits(
            a,
            "/f",
            packet,
            &h,
            if packet == "Fragment" { b"x" } else { b"" },
        );
        assert_error(&r, 500, "0x8020001F", "0x5");
    }
    // A session id that is not one of ours cannot name anything either.
    assert_error(
        &fragment(a, "/f", "../../etc", 0, 1, b"x"),
        500,
        "0x8020001F",
        "0x5",
    );
    // No common protocol.
    assert_error(
        &bits(
            a,
            "/f",
            "Create-Session",
            &[(
                "BITS-Supported-Protocols",
                "{00000000-0000-0000-0000-000000000001}",
            )],
            b"",
        ),
        400,
        "0x80070057",
        "0x5",
    );
    assert_error(
        &bits(a, "/f", "Create-Session", &[], b""),
        400,
        "0x80070057",
        "0x5",
    );
    // Unknown packet type, missing Content-Length, header over 4 KB.
    assert_error(&bits(a, "/f", "Dance", &[], b""), 400, "0x80070057", "0x5");
    assert_error(
        &bits(a, "/f", "Ping", &[("Content-Length", "none")], b""),
        400,
        "0x80070057",
        "0x5",
    );
    assert_error(
        &bits(a, "/f", "Ping", &[("X-Long", &"a".repeat(5000))], b""),
        400,
        "0x80070057",
        "0x5",
    );

    // Every Ack to a Fragment of a known session, errors included, says where it stands.
    let at = |r: &Resp, received: &str| {
        assert_eq!(r.h("bits-received-content-range"), Some(received), "{r:?}");
    };
    let id = create_id(a, "/f");
    // Bad or missing Content-Range, length mismatch.
    let r = bits(a, "/f", "Fragment", &[("BITS-Session-Id", &id)], b"abc");
    assert_error(&r, 400, "0x80070057", "0x5");
    at(&r, "0");
    let r = bits(
        a,
        "/f",
        "Fragment",
        &[("BITS-Session-Id", &id), ("Content-Range", "bytes 0-5/10")],
        b"abc",
    );
    assert_error(&r, 400, "0x80070057", "0x5");
    at(&r, "0");
    // Over the maximum upload size.
    let r = fragment(a, "/f", &id, 0, 1001, b"abc");
    assert_error(&r, 413, "0x80200020", "0x5");
    at(&r, "0");
    let ok = fragment(a, "/f", &id, 0, 1000, b"abc");
    at(&ok, "3");
    // A gap: 416 with the next offset.
    let gap = fragment(a, "/f", &id, 10, 1000, b"abc");
    assert_eq!(gap.status, 416);
    at(&gap, "3");
    // A different total.
    let r = fragment(a, "/f", &id, 3, 999, b"abc");
    assert_error(&r, 400, "0x80070057", "0x5");
    at(&r, "3");
    // Storage failing under a fragment (here the data file cannot be opened, being a folder):
    // 500 E_FAIL, and the offset is the one before the failed write.
    let broken = create_id(a, "/g");
    assert_eq!(fragment(a, "/g", &broken, 0, 10, b"abcd").status, 200);
    let data = dir
        .path()
        .join("root/.bits-sessions")
        .join(&broken)
        .join("data");
    std::fs::remove_file(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    let r = fragment(a, "/g", &broken, 4, 10, b"efgh");
    assert_error(&r, 500, "0x80004005", "0x5");
    at(&r, "4");
    // An unknown session has no offset to give.
    let r = fragment(a, "/f", unknown, 0, 1, b"x");
    assert_eq!(r.h("bits-received-content-range"), None, "{r:?}");
    // Other methods.
    assert_eq!(request(a, "PUT", "/f", &[], b"x").status, 405);
}

#[test]
fn overlapping_fragments_store_only_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/o.bin");
    assert_eq!(
        fragment(s.addr, "/o.bin", &id, 0, 20, b"0123456789").h("bits-received-content-range"),
        Some("10")
    );
    // Bytes 5..10 differ from what was stored: they must not be written again.
    assert_eq!(
        fragment(s.addr, "/o.bin", &id, 5, 20, b"XXXXXabcde").h("bits-received-content-range"),
        Some("15")
    );
    // A fragment entirely received already is acknowledged without change.
    assert_eq!(
        fragment(s.addr, "/o.bin", &id, 0, 20, b"YYYYY").h("bits-received-content-range"),
        Some("15")
    );
    assert_eq!(
        fragment(s.addr, "/o.bin", &id, 15, 20, b"fghij").h("bits-received-content-range"),
        Some("20")
    );
    close(s.addr, "/o.bin", &id);
    assert_eq!(
        std::fs::read(dir.path().join("root/o.bin")).unwrap(),
        b"0123456789abcdefghij"
    );
}

#[test]
fn paths_that_leave_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(dir.path().join("root/inside")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("root/escape")).unwrap();
    std::os::unix::fs::symlink(
        outside.join("victim"),
        dir.path().join("root/inside/link.bin"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("root/inside"),
        dir.path().join("root/alias"),
    )
    .unwrap();
    let s = Server::root(dir.path(), &["--allow-overwrites"]);
    for p in [
        "/../outside/x",
        "/a/../../outside/x",
        "/%2e%2e/outside/x",
        "/a/%2E%2E/%2e%2e/x",
        "/a%2f..%2f..%2fx",
        "/a%5c..%5cx",
        "/a\\..\\x",
        "/%00",
        "/a/%00b",
        "/a//b",
        "/.bits-sessions/x",
        "/escape/x",
        "/escape/sub/x",
        "/inside/link.bin",
        "/dir/",
    ] {
        let r = create(s.addr, p);
        assert_eq!(
            (r.status, r.h("bits-error-code")),
            (400, Some("0x80070057")),
            "{p}: {r:?}"
        );
    }
    // A symlink that stays inside the root is just a folder.
    let id = create_id(s.addr, "/alias/ok.bin");
    fragment(s.addr, "/alias/ok.bin", &id, 0, 2, b"ok");
    assert_eq!(close(s.addr, "/alias/ok.bin", &id).status, 200);
    assert_eq!(
        std::fs::read(dir.path().join("root/inside/ok.bin")).unwrap(),
        b"ok"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside the root"
    );
}

#[test]
fn overwrites_are_409_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    upload(s.addr, "/d/f.bin", b"first", 5 * 1024).unwrap();
    let r = create(s.addr, "/d/f.bin");
    assert_eq!(
        (r.status, r.h("bits-error-code"), r.h("bits-error-context")),
        (409, Some("0x80070005"), Some("0x5"))
    );
    // A file that appears while a session is open is not replaced either.
    let id = create_id(s.addr, "/d/g.bin");
    fragment(s.addr, "/d/g.bin", &id, 0, 3, b"new");
    std::fs::write(dir.path().join("root/d/g.bin"), b"someone else's").unwrap();
    assert_eq!(close(s.addr, "/d/g.bin", &id).status, 409);
    assert_eq!(
        std::fs::read(dir.path().join("root/d/g.bin")).unwrap(),
        b"someone else's"
    );
    drop(s);

    let s = Server::root(dir.path(), &["--allow-overwrites"]);
    upload(s.addr, "/d/f.bin", b"second", 5 * 1024).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("root/d/f.bin")).unwrap(),
        b"second"
    );
}

#[test]
fn a_zero_byte_upload_is_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    upload(s.addr, "/empty", b"", 5 * 1024).unwrap();
    assert_eq!(std::fs::read(dir.path().join("root/empty")).unwrap(), b"");
}

#[test]
fn expired_sessions_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--session-timeout", "1"]);
    let id = create_id(s.addr, "/t.bin");
    assert_eq!(fragment(s.addr, "/t.bin", &id, 0, 10, b"12345").status, 200);
    let sdir = dir.path().join("root/.bits-sessions").join(&id);
    wait_for("the sweeper to remove the session", || !sdir.exists());
    let r = fragment(s.addr, "/t.bin", &id, 5, 10, b"67890");
    assert_eq!(
        (r.status, r.h("bits-error-code")),
        (500, Some("0x8020001F"))
    );
    assert!(!dir.path().join("root/t.bin").exists());
}

#[test]
fn sessions_per_client_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--max-sessions-per-client", "2"]);
    let a = create_id(s.addr, "/1");
    create_id(s.addr, "/2");
    let r = create(s.addr, "/3");
    assert_eq!(
        (r.status, r.h("bits-error-code")),
        (503, Some("0x800705AA"))
    );
    bits(
        s.addr,
        "/1",
        "Cancel-Session",
        &[("BITS-Session-Id", &a)],
        b"",
    );
    create_id(s.addr, "/3");
}

#[test]
fn sessions_are_capped_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("file://{}", dir.path().join("root").display());
    let s = Server::start(
        &["--storage", &root, "--max-sessions", "1"],
        &[],
        dir.path().join("log"),
    );
    let a = create_id(s.addr, "/1");
    assert_eq!(create(s.addr, "/2").status, 503);
    close(s.addr, "/1", &a);
    create_id(s.addr, "/2");
}

#[test]
fn host_id_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(
        dir.path(),
        &[
            "--host-id",
            "node7.example",
            "--host-id-fallback-timeout",
            "110",
        ],
    );
    let r = create(s.addr, "/h");
    assert_eq!(
        (r.h("bits-host-id"), r.h("bits-host-id-fallback-timeout")),
        (Some("node7.example"), Some("110"))
    );
}

#[test]
fn downloads_serve_single_ranges_with_validators() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--serve-downloads"]);
    let bytes = data(100_000, 3);
    upload(s.addr, "/dl/f.bin", &bytes, 64 * 1024).unwrap();
    let full = request(s.addr, "GET", "/dl/f.bin", &[], b"");
    assert_eq!((full.status, full.body.len()), (200, bytes.len()));
    assert_eq!(full.body, bytes);
    let etag = full.h("etag").unwrap().to_owned();
    assert!(full.h("last-modified").is_some());
    let part = request(
        s.addr,
        "GET",
        "/dl/f.bin",
        &[("Range", "bytes=1000-1999")],
        b"",
    );
    assert_eq!(
        (part.status, part.h("content-range")),
        (206, Some("bytes 1000-1999/100000"))
    );
    assert_eq!(part.body, &bytes[1000..2000]);
    let tail = request(s.addr, "GET", "/dl/f.bin", &[("Range", "bytes=-10")], b"");
    assert_eq!(tail.body, &bytes[99_990..]);
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/dl/f.bin",
            &[("Range", "bytes=200000-")],
            b""
        )
        .status,
        416
    );
    assert_eq!(
        request(s.addr, "GET", "/dl/f.bin", &[("If-None-Match", &etag)], b"").status,
        304
    );
    let head = request(s.addr, "HEAD", "/dl/f.bin", &[], b"");
    assert_eq!(
        (head.status, head.h("content-length"), head.body.len()),
        (200, Some("100000"), 0)
    );
    assert_eq!(request(s.addr, "GET", "/dl/missing", &[], b"").status, 404);
    assert_eq!(
        request(s.addr, "GET", "/.bits-sessions/x", &[], b"").status,
        400
    );
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("root/dl/out")).unwrap();
    assert_eq!(request(s.addr, "GET", "/dl/out", &[], b"").status, 403);
}

#[test]
fn downloads_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    upload(s.addr, "/f", b"abc", 5 * 1024).unwrap();
    assert_eq!(request(s.addr, "GET", "/f", &[], b"").status, 404);
}

#[test]
fn config_file_and_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = \"{}\"\nlog-format = \"json\"\nallow-overwrites = true\n",
            dir.path().join("r").display()
        ),
    )
    .unwrap();
    let s = Server::start(
        &["--config", cfg.to_str().unwrap()],
        &[],
        dir.path().join("log"),
    );
    upload(s.addr, "/c.bin", b"config", 5 * 1024).unwrap();
    upload(s.addr, "/c.bin", b"again", 5 * 1024).unwrap();
    assert_eq!(std::fs::read(dir.path().join("r/c.bin")).unwrap(), b"again");
    let log = s.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["packet"] == "Fragment" && v["status"] == 200 && v["method"] == "BITS_POST"),
        "{log}"
    );
    assert_eq!(lines.len(), 6, "one line per request: {log}");
}

#[test]
fn a_folder_serves_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::root(dir.path(), &[]);
    let root = dir.path().join("root");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openbits-server"))
        .args(["--listen", "127.0.0.1:0", "--root", root.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another openbits-server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_configuration_is_reported() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openbits-server"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--root"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openbits-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--root",
            "/tmp/x",
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            "/nonexistent.key",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonexistent.pem"));
    // By reference hands the application file names, which an object store does not have.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_openbits-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--storage",
            "s3://bucket/prefix",
            "--notify-type",
            "by-ref",
            "--notify-url",
            "http://127.0.0.1:1/app",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("by-ref")
            && String::from_utf8_lossy(&out.stderr).contains("--root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn text_log_lines_name_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/log/t.bin");
    assert_eq!(
        fragment(s.addr, "/log/t.bin", &id, 0, 3, b"abc").status,
        200
    );
    assert_eq!(
        fragment(s.addr, "/log/t.bin", &id, 0, 4, b"abc").status,
        400
    );
    let log = s.log_text();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "one line per request: {log}");
    // DATE PEER USER "METHOD PATH" STATUS in=BYTES TIMEms packet=… session=… [error="…"]
    let date_end = "Thu, 01 Jan 1970 00:00:00 GMT".len();
    for l in &lines {
        assert!(httpdate::parse_http_date(&l[..date_end]).is_ok(), "{l}");
    }
    let rest: Vec<&str> = lines[1][date_end + 1..].split(' ').collect();
    assert_eq!(
        rest[0]
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .ip()
            .to_string(),
        "127.0.0.1"
    );
    assert_eq!(
        (rest[1], rest[2], rest[3], rest[4], rest[5]),
        ("-", "\"BITS_POST", "/log/t.bin\"", "200", "in=3"),
        "{}",
        lines[1]
    );
    assert!(rest[6].ends_with("ms") && rest[6].trim_end_matches("ms").parse::<f64>().is_ok());
    assert_eq!(rest[7..9], ["packet=Fragment", &format!("session={id}")]);
    assert_eq!(rest.len(), 9, "{}", lines[1]);
    // A refused fragment has its line too, with its status.
    assert!(lines[2].contains(" 400 in=3 "), "{}", lines[2]);
}

#[test]
fn connections_beyond_max_connections_wait() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &["--max-connections", "1"]);
    let ping =
        b"BITS_POST /p HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\nContent-Length: 0\r\n\r\n";
    // The first connection is served and stays open (keep-alive).
    let mut first = std::net::TcpStream::connect(s.addr).unwrap();
    first.write_all(ping).unwrap();
    assert_eq!(read_response(&mut first, false).status, 200);
    // The second is accepted by the kernel but not served while the first holds the only slot.
    // (Checking that nothing comes is a wait by nature: a bound that did not hold would answer
    // within milliseconds; a slow machine can only make this pass, not fail.)
    let mut second = std::net::TcpStream::connect(s.addr).unwrap();
    second.write_all(ping).unwrap();
    second
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 1];
    let r = second.read(&mut b);
    assert!(
        matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served beyond --max-connections 1: {r:?}"
    );
    // Once the first goes, the second is served.
    drop(first);
    second
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    assert_eq!(read_response(&mut second, false).status, 200);
}

#[test]
fn a_refused_large_fragment_still_gets_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let id = create_id(s.addr, "/big");
    let body = data(4 * 1024 * 1024, 8);
    let big = data(12 * 1024 * 1024, 9);
    // A gap, a duplicate and a wrong total are answered before their bodies are read; the client,
    // still sending, must get the answer rather than a reset connection.
    assert_eq!(
        fragment(s.addr, "/big", &id, 0, 100 * 1024 * 1024, &body).status,
        200
    );
    for _ in 0..3 {
        let gap = fragment(
            s.addr,
            "/big",
            &id,
            5 * 1024 * 1024,
            100 * 1024 * 1024,
            &big,
        );
        assert_eq!(
            (gap.status, gap.h("bits-received-content-range")),
            (416, Some("4194304"))
        );
        let dup = fragment(s.addr, "/big", &id, 0, 100 * 1024 * 1024, &body);
        assert_eq!(
            (dup.status, dup.h("bits-received-content-range")),
            (200, Some("4194304"))
        );
        assert_eq!(
            fragment(
                s.addr,
                "/big",
                &id,
                4 * 1024 * 1024,
                110 * 1024 * 1024,
                &big
            )
            .status,
            400
        );
    }
}

/// The exchange of [MC-BUP] §4.1 as Windows sends it: one keep-alive connection, Windows'
/// headers and spelling, a Ping between the fragments, Content-Name on every packet.
#[test]
fn a_windows_style_session_on_one_connection() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::root(dir.path(), &[]);
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    let common = "Accept: */*\r\nUser-Agent: Microsoft BITS/6.7\r\nHost: frankcao8\r\nConnection: Keep-Alive\r\nContent-Name: rfc2119.txt\r\n";
    let send = |c: &mut std::net::TcpStream, extra: &str, body: &[u8]| {
        write!(c, "BITS_POST /upload/2000mb-rfc2119.txt HTTP/1.1\r\n{common}{extra}Content-Length: {}\r\n\r\n", body.len()).unwrap();
        c.write_all(body).unwrap();
        read_response(c, false)
    };
    let created = send(
        &mut c,
        &format!("BITS-Packet-Type: Create-Session\r\nBITS-Supported-Protocols: {GUID}\r\n"),
        b"",
    );
    assert_eq!(
        (created.status, created.h("bits-protocol")),
        (200, Some(GUID))
    );
    let id = created.h("bits-session-id").unwrap().to_owned();
    let text = data(4892, 21);
    let half = send(&mut c, &format!("BITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 0-2445/4892\r\n"), &text[..2446]);
    assert_eq!(half.h("bits-received-content-range"), Some("2446"));
    assert_eq!(send(&mut c, "BITS-Packet-Type: Ping\r\n", b"").status, 200);
    // A resend from an older offset on the same connection: the overlap is skipped.
    let rest = send(&mut c, &format!("BITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 2000-4891/4892\r\n"), &text[2000..]);
    assert_eq!(rest.h("bits-received-content-range"), Some("4892"));
    let closed = send(
        &mut c,
        &format!("BITS-Packet-Type: Close-Session\r\nBITS-Session-Id: {id}\r\n"),
        b"",
    );
    assert_eq!(closed.status, 200);
    assert_eq!(
        std::fs::read(dir.path().join("root/upload/2000mb-rfc2119.txt")).unwrap(),
        text
    );
}
