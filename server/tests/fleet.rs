//! Several stateless nodes sharing sessions through S3 (moto's server on loopback).

mod common;
use common::*;
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

struct Moto {
    child: Child,
    addr: SocketAddr,
    /// Unique per test, so tests that end up sharing one moto do not see each other's objects.
    bucket: String,
}

impl Moto {
    /// GETs a key under the servers' prefix (`/a.bin` → `BUCKET/uploads/a.bin`), or a listing.
    fn get(&self, key_or_query: &str) -> Resp {
        let path = match key_or_query.strip_prefix('?') {
            Some(q) => format!("/{}?{q}", self.bucket),
            None => format!("/{}/uploads{key_or_query}", self.bucket),
        };
        request(self.addr, "GET", &path, &[], b"")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's S3 server, or None (with a loud message) where it is not installed outside CI;
/// scripts/test.sh installs it, and under CI a missing moto fails the test.
static BUCKETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn moto() -> Option<Moto> {
    // The console script, or the module where only the package is on the path.
    let candidates: [&[&str]; 2] = [&["moto_server"], &["python3", "-m", "moto.server"]];
    let found = candidates.into_iter().find(|c| {
        Command::new(c[0])
            .args(&c[1..])
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let Some(cmd) = found else {
        let msg = "moto_server not found: pip install \"moto[server]\" (scripts/test.sh does)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("\n!!!!!!!! SKIPPING the S3 fleet test: {msg} !!!!!!!!\n");
        return None;
    };
    // moto has no "port 0": take a free port from the kernel and hand it over. Another test may
    // take the same port in between, so a moto that exits at once is started again elsewhere.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(cmd[0])
            .args(&cmd[1..])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let bucket = format!(
            "fleet-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut m = Moto {
            child,
            addr,
            bucket,
        };
        let mut exited = false;
        wait_for("moto_server to accept connections", || {
            exited = m.child.try_wait().ok().flatten().is_some();
            exited || std::net::TcpStream::connect(addr).is_ok()
        });
        if exited {
            continue;
        }
        let r = request(addr, "PUT", &format!("/{}", m.bucket), &[], b"");
        assert_eq!(
            r.status,
            200,
            "create bucket: {}",
            String::from_utf8_lossy(&r.body)
        );
        return Some(m);
    }
    panic!("moto_server did not start");
}

fn node(m: &Moto, dir: &std::path::Path, name: &str) -> Server {
    node_with(m, dir, name, &[])
}

fn node_with(m: &Moto, dir: &std::path::Path, name: &str, extra: &[&str]) -> Server {
    let endpoint = format!("http://{}", m.addr);
    let storage = format!("s3://{}/uploads", m.bucket);
    let mut args = vec!["--storage", storage.as_str()];
    args.extend_from_slice(extra);
    Server::start(
        &args,
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ],
        dir.join(format!("{name}.log")),
    )
}

fn session_objects(m: &Moto) -> Vec<String> {
    let r = m.get("?list-type=2&prefix=uploads/.bits-sessions/");
    let xml = String::from_utf8_lossy(&r.body).into_owned();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

/// Drives a session (possibly shared with another thread) until the server has every byte.
fn send_all(session: &mut ClientSession, addr: SocketAddr, path: &str, bytes: &[u8]) {
    while session.offset() < session.total() {
        let Next::Send(req) = session.next() else {
            panic!("session stopped: {:?}", session.next())
        };
        let r = send(addr, path, &req, bytes);
        match session.on_response(r.status, &r.headers) {
            Event::Fatal(e) => panic!("{e}"),
            Event::NewSession => panic!("session lost"),
            _ => {}
        }
    }
}

#[test]
fn nodes_share_sessions_through_s3() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        node(&m, dir.path(), "a"),
        node(&m, dir.path(), "b"),
        node(&m, dir.path(), "c"),
    );

    // Create on A, fragments alternating B, A, B, …, Close-Session on C.
    let bytes = data(3 * 1024 * 1024 + 123, 11);
    let frag = 256 * 1024;
    let fragments = bytes.len().div_ceil(frag);
    let mut cfg = ClientConfig::new(
        format!("http://{}/a/b/file.bin", a.addr),
        bytes.len() as u64,
    );
    cfg.fragment_len = frag as u64;
    let mut session = ClientSession::new(cfg);
    let nodes = [a.addr, b.addr];
    upload_with(
        &mut session,
        &mut |n| {
            if n == 0 {
                a.addr
            } else if n > fragments {
                c.addr
            } else {
                nodes[n % 2]
            }
        },
        "/a/b/file.bin",
        &bytes,
    )
    .unwrap();
    let got = m.get("/a/b/file.bin");
    assert_eq!(got.status, 200);
    assert!(
        got.body == bytes,
        "object differs from the upload ({} bytes)",
        got.body.len()
    );
    assert!(
        session_objects(&m).is_empty(),
        "session objects left: {:?}",
        session_objects(&m)
    );

    // Fragments over 8 MiB are streamed to S3 as multipart uploads, and a file over 5 MiB is
    // composed from several multipart parts.
    let big = data(12 * 1024 * 1024 + 5, 12);
    let mut cfg = ClientConfig::new(format!("http://{}/big.bin", a.addr), big.len() as u64);
    cfg.fragment_len = 9 * 1024 * 1024;
    upload_with(
        &mut ClientSession::new(cfg),
        &mut |n| nodes[n % 2],
        "/big.bin",
        &big,
    )
    .unwrap();
    let got = m.get("/big.bin");
    assert!(
        got.status == 200 && got.body == big,
        "big object differs ({} bytes)",
        got.body.len()
    );

    // The file exists now: a new session for it is refused on any node.
    assert_eq!(create(b.addr, "/a/b/file.bin").status, 409);

    // A single-fragment upload (one part, copied into place) and an empty one.
    upload(b.addr, "/small.txt", b"small", 5 * 1024).unwrap();
    let small = m.get("/small.txt");
    assert_eq!((small.status, small.body.as_slice()), (200, &b"small"[..]));
    upload(c.addr, "/empty", b"", 5 * 1024).unwrap();
    // (moto answers a GET of a zero-byte object with 403, so look at the listing.)
    let all = m.get("?list-type=2&prefix=uploads/empty");
    assert!(
        String::from_utf8_lossy(&all.body).contains("<Key>uploads/empty</Key><LastModified>"),
        "{}",
        String::from_utf8_lossy(&all.body)
    );
    assert!(String::from_utf8_lossy(&all.body).contains("<Size>0</Size>"));
}

#[test]
fn concurrent_fragments_on_two_nodes_do_not_corrupt_a_session() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (node(&m, dir.path(), "a"), node(&m, dir.path(), "b"));
    for round in 0..3 {
        let path = format!("/race/{round}.bin");
        let bytes = data(1024 * 1024 + 777, round as u8 + 20);
        let id = create_id(a.addr, &path);
        // Two clients push the same session at once through different nodes, with different
        // fragment sizes so that their fragments overlap rather than coincide.
        let threads: Vec<_> = [(a.addr, 64 * 1024), (b.addr, 100 * 1024)]
            .into_iter()
            .map(|(addr, frag)| {
                let (id, path, bytes) = (id.clone(), path.clone(), bytes.clone());
                std::thread::spawn(move || {
                    let mut cfg =
                        ClientConfig::new(format!("http://{addr}{path}"), bytes.len() as u64);
                    cfg.fragment_len = frag;
                    let mut s = ClientSession::resume(cfg, id, 0, None);
                    send_all(&mut s, addr, &path, &bytes);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let close = close(b.addr, &path, &id);
        assert_eq!(close.status, 200, "{close:?}");
        let got = m.get(&path);
        assert!(
            got.body == bytes,
            "round {round}: object differs ({} of {} bytes)",
            got.body.len(),
            bytes.len()
        );
    }
    assert!(session_objects(&m).is_empty(), "{:?}", session_objects(&m));
}

#[test]
fn s3_sessions_survive_a_node_being_killed() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut a = node(&m, dir.path(), "a");
    let b = node(&m, dir.path(), "b");
    let bytes = data(600 * 1024, 3);
    let id = create_id(a.addr, "/k.bin");
    assert_eq!(
        fragment(
            a.addr,
            "/k.bin",
            &id,
            0,
            bytes.len() as u64,
            &bytes[..300 * 1024]
        )
        .status,
        200
    );
    a.kill9();
    // B knows the session and its offset.
    let r = fragment(
        b.addr,
        "/k.bin",
        &id,
        400 * 1024,
        bytes.len() as u64,
        &bytes[400 * 1024..],
    );
    assert_eq!(
        (r.status, r.h("bits-received-content-range")),
        (416, Some("307200"))
    );
    assert_eq!(
        fragment(
            b.addr,
            "/k.bin",
            &id,
            300 * 1024,
            bytes.len() as u64,
            &bytes[300 * 1024..]
        )
        .status,
        200
    );
    assert_eq!(close(b.addr, "/k.bin", &id).status, 200);
    assert!(m.get("/k.bin").body == bytes);
}

#[test]
fn upload_reply_and_downloads_on_s3() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|_, body, _| {
        Some((
            200,
            vec![("BITS-Copy-File-To-Destination".into(), "yes".into())],
            body.iter().rev().copied().collect(),
        ))
    });
    let notify = format!("http://{}/app", app.addr);
    let opts = [
        "--notify-type",
        "by-value",
        "--notify-url",
        notify.as_str(),
        "--serve-downloads",
    ];
    let (a, b) = (
        node_with(&m, dir.path(), "a", &opts),
        node_with(&m, dir.path(), "b", &opts),
    );
    let bytes = data(40_000, 6);
    let id = create_id(a.addr, "/rr/in.bin");
    assert_eq!(
        fragment(b.addr, "/rr/in.bin", &id, 0, 40_000, &bytes[..20_000]).status,
        200
    );
    let last = fragment(a.addr, "/rr/in.bin", &id, 20_000, 40_000, &bytes[20_000..]);
    let reply_url = last
        .h("bits-reply-url")
        .expect("reply URL")
        .replace('\\', "/")
        .replace('{', "%7B")
        .replace('}', "%7D");
    // The application got the whole upload, assembled from parts stored by two nodes.
    assert!(app.seen.lock().unwrap()[0].1 == bytes);
    // The reply is in the object store: the other node serves it, with ranges.
    let reply = request(
        b.addr,
        "GET",
        &format!("/rr/{reply_url}"),
        &[("Range", "bytes=100-199")],
        b"",
    );
    assert_eq!(reply.status, 206);
    assert_eq!(
        reply.body,
        bytes
            .iter()
            .rev()
            .copied()
            .skip(100)
            .take(100)
            .collect::<Vec<u8>>()
    );
    assert_eq!(close(b.addr, "/rr/in.bin", &id).status, 200);
    // BITS-Copy-File-To-Destination: the upload is at its name, and downloads come from S3.
    let dl = request(
        a.addr,
        "GET",
        "/rr/in.bin",
        &[("Range", "bytes=39990-")],
        b"",
    );
    assert_eq!((dl.status, dl.body.as_slice()), (206, &bytes[39_990..]));
    assert!(dl.h("etag").is_some() && dl.h("last-modified").is_some());
    assert!(session_objects(&m).is_empty(), "{:?}", session_objects(&m));
}

/// A request path for an object key as S3 lists it (object_store writes `{` as `%7B` in keys).
fn key_path(m: &Moto, key: &str) -> String {
    format!("/{}/{}", m.bucket, key.replace('%', "%25"))
}

/// moto refuses unsigned requests for keys with `%` in them (403) but does not check
/// signatures: any AWS4 Authorization header will do. (It also stores an empty object for a
/// PUT whose body looks like a form, hence the content type.)
const MOTO_AUTH: [(&str, &str); 2] = [
    (
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
    ),
    ("Content-Type", "application/octet-stream"),
];

#[test]
fn s3_close_resent_after_a_crash_between_placing_and_removing_succeeds() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut a = node(&m, dir.path(), "a");
    let b = node(&m, dir.path(), "b");

    // A normal Close-Session tags the object with its session (read back through S3's HEAD),
    // which is how a resent one recognises its own earlier placement.
    let id = create_id(a.addr, "/t/normal.bin");
    assert_eq!(
        fragment(a.addr, "/t/normal.bin", &id, 0, 5, b"12345").status,
        200
    );
    assert_eq!(close(a.addr, "/t/normal.bin", &id).status, 200);
    let head = request(
        m.addr,
        "HEAD",
        &format!("/{}/uploads/t/normal.bin", m.bucket),
        &[],
        b"",
    );
    assert_eq!(
        head.h("x-amz-meta-bits-session"),
        Some(id.as_str()),
        "{head:?}"
    );

    // A complete session whose first Close-Session marked it, composed the object, and died
    // before removing the session.
    let bytes = data(200_000, 8);
    let id = create_id(a.addr, "/t/f.bin");
    let r = fragment(a.addr, "/t/f.bin", &id, 0, bytes.len() as u64, &bytes);
    assert_eq!(r.status, 200, "{r:?}");
    a.kill9();
    let meta_key = session_objects(&m)
        .into_iter()
        .find(|k| k.ends_with("/meta.json"))
        .expect("meta.json");
    let got = request(m.addr, "GET", &key_path(&m, &meta_key), &MOTO_AUTH, b"");
    assert_eq!(got.status, 200, "{meta_key}: {got:?}");
    let mut meta: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    meta["closing"] = true.into();
    let put = request(
        m.addr,
        "PUT",
        &key_path(&m, &meta_key),
        &MOTO_AUTH,
        &serde_json::to_vec(&meta).unwrap(),
    );
    assert_eq!(put.status, 200);
    let put = request(
        m.addr,
        "PUT",
        &format!("/{}/uploads/t/f.bin", m.bucket),
        &[MOTO_AUTH[0], MOTO_AUTH[1], ("x-amz-meta-bits-session", &id)],
        &bytes,
    );
    assert_eq!(put.status, 200);

    // The client sends Close-Session again (to another node).
    let r = close(b.addr, "/t/f.bin", &id);
    assert_eq!(
        (r.status, r.h("bits-session-id")),
        (200, Some(id.as_str())),
        "{r:?}"
    );
    let got = request(
        m.addr,
        "GET",
        &format!("/{}/uploads/t/f.bin", m.bucket),
        &MOTO_AUTH,
        b"",
    );
    assert!(got.body == bytes, "object differs: {got:?}");
    assert!(session_objects(&m).is_empty(), "{:?}", session_objects(&m));
}

#[test]
fn s3_sessions_expire() {
    let Some(m) = moto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = node_with(&m, dir.path(), "a", &["--session-timeout", "1"]);
    let id = create_id(a.addr, "/x/old.bin");
    assert_eq!(
        fragment(a.addr, "/x/old.bin", &id, 0, 10, b"abcd").status,
        200
    );
    assert!(!session_objects(&m).is_empty());
    // The sweep removes the record, the part and the per-client marker without any request.
    wait_for("the sweep to remove the expired session", || {
        session_objects(&m).is_empty()
    });
    let r = fragment(a.addr, "/x/old.bin", &id, 4, 10, b"efghij");
    assert_eq!(
        (r.status, r.h("bits-error-code")),
        (500, Some("0x8020001F")),
        "{r:?}"
    );
}

/// The conditional write that keeps two nodes from both advancing a session, against S3 itself:
/// a save made with a version that another save has replaced is refused.
#[test]
fn s3_refuses_a_save_with_a_stale_version() {
    use openbits_server::store::{object::ObjectStoreBackend, Error, SessionMeta};
    let Some(m) = moto() else { return };
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", m.addr))
        .with_allow_http(true)
        .with_bucket_name(&m.bucket)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let b = ObjectStoreBackend::from_store(std::sync::Arc::new(s3), "uploads".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let meta = SessionMeta {
            id: openbits_server::paths::new_session_id(),
            path: "v/f.bin".into(),
            url: "http://localhost/v/f.bin".into(),
            client: "127.0.0.1".into(),
            created: 1,
            updated: 1,
            total: Some(10),
            received: 0,
            parts: vec![],
            reply_url: None,
            copy_to_destination: false,
            reply_mode: false,
            closing: false,
        };
        b.create(&meta).await.unwrap();
        let (first, stale) = b.load(&meta.id).await.unwrap().unwrap();
        // Node A saves progress; node B, still holding the version it read before, loses.
        let mut a = first.clone();
        a.received = 4;
        b.save(&a, &stale).await.unwrap();
        let mut late = first.clone();
        late.received = 6;
        let r = b.save(&late, &stale).await;
        assert!(matches!(r, Err(Error::Conflict)), "{r:?}");
        assert_eq!(b.load(&meta.id).await.unwrap().unwrap().0.received, 4);
        b.remove(&meta.id).await.unwrap();
    });
    assert!(session_objects(&m).is_empty(), "{:?}", session_objects(&m));
}
