//! Target `upload_server`: openbits-server's request handler, behind hyper's HTTP/1.1 parser, over
//! an in-memory pipe, storing into a fresh folder. An input is a few requests (method, path,
//! headers, body), the session id the server handed out spliced back in.

use crate::input;
use arbitrary::{Result, Unstructured};
use openbits_protocol::headers::{self as h, PROTOCOL_GUID};
use openbits_server::config::Options;
use openbits_server::service::App;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAMES: &[&str] = &[
    h::PACKET_TYPE,
    h::SESSION_ID,
    h::SUPPORTED_PROTOCOLS,
    h::X_HTTP_METHOD_OVERRIDE,
    "content-range",
    "content-encoding",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "authorization",
    "transfer-encoding",
];
const SESSION: &str = "{SESSION}";
const TOKENS: &[&str] = &[
    "Ping",
    "Create-Session",
    "Fragment",
    "Close-Session",
    "Cancel-Session",
    "Ack",
    PROTOCOL_GUID,
    SESSION,
    "BITS_POST",
    "bytes=0-",
    "bytes=-5",
    "chunked",
    "*",
];
const METHODS: &[&str] = &["BITS_POST", "POST", "GET", "HEAD", "PUT", "bits_post"];
const PATHS: &[&str] = &[
    "/up/a.bin",
    "/up/b.bin",
    "/a.bin",
    "/",
    "/up/../../escape",
    "/%2e%2e/x",
    "/up/a.bin?x=1",
    "//double",
];
/// The server configurations an input picks from (beside `--root`).
const CONFIGS: &[&[&str]] = &[
    &[],
    &["--allow-overwrites", "--serve-downloads"],
    &["--max-upload-size", "100", "--max-sessions", "2"],
    &["--host-id", "node-1", "--host-id-fallback-timeout", "5"],
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

pub fn upload_server(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(config) = u.choose(CONFIGS) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let root = scratch.path().join("root");
    let app = app(&root, config);
    let _ = runtime().block_on(run(&mut u, app));
    // Nothing a request said may put a file beside the root.
    let beside: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("the scratch folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "root")
        .collect();
    assert!(beside.is_empty(), "written outside the root: {beside:?}");
}

fn app(root: &Path, config: &[&str]) -> Arc<App> {
    let root = root.to_str().expect("a UTF-8 temporary folder");
    // Nothing listens: requests come through `connection`, but the configuration needs an address.
    let args = [
        "openbits-server",
        "--listen",
        "127.0.0.1:0",
        "--root",
        root,
        "--read-timeout",
        "5",
    ];
    let cfg = <Options as clap::Parser>::try_parse_from(args.iter().chain(config))
        .expect("valid options")
        .resolve()
        .expect("a valid configuration");
    let store = openbits_server::open_store(&cfg).expect("a store in the scratch folder");
    Arc::new(App::new(cfg, store, None, false))
}

async fn run(u: &mut Unstructured<'_>, app: Arc<App>) -> Result<()> {
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let mut session = String::new();
    for _ in 0..u.int_in_range(1..=8)? {
        let request = request(u, &session)?;
        let response = exchange(&app, peer, &request).await;
        let text = String::from_utf8_lossy(&response);
        // hyper answers even what it cannot parse; only a pipe that closes early gets nothing.
        if text.is_empty() {
            continue;
        }
        assert!(text.starts_with("HTTP/1.1 "), "{text:?}");
        let status: u16 = text[9..].get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((100..600).contains(&status), "{text:?}");
        if let Some(id) = header(&text, h::SESSION_ID) {
            session = id.to_owned();
        }
    }
    Ok(())
}

/// One request in wire form.
fn request(u: &mut Unstructured, session: &str) -> Result<Vec<u8>> {
    let method = if u.ratio(7, 8)? {
        u.choose(METHODS)?.to_string()
    } else {
        u.arbitrary()?
    };
    let path = if u.ratio(7, 8)? {
        u.choose(PATHS)?.to_string()
    } else {
        format!("/{}", u.arbitrary::<&str>()?)
    };
    let headers = input::headers(u, NAMES, TOKENS, 8)?;
    let body: &[u8] = u.arbitrary()?;
    let mut wire = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\n").into_bytes();
    for (name, value) in &headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        let v = value.as_bytes();
        match std::str::from_utf8(v) {
            Ok(t) => wire.extend_from_slice(t.replace(SESSION, session).as_bytes()),
            Err(_) => wire.extend_from_slice(v),
        }
        wire.extend_from_slice(b"\r\n");
    }
    // Usually the body's true length; sometimes the fuzzer's claim.
    let length = if u.ratio(3, 4)? {
        body.len().to_string()
    } else {
        input::value(u, &[])?
    };
    wire.extend_from_slice(format!("content-length: {length}\r\n\r\n").as_bytes());
    wire.extend_from_slice(body);
    Ok(wire)
}

/// Writes the request, closes the sending half, and reads the whole answer.
async fn exchange(app: &Arc<App>, peer: SocketAddr, request: &[u8]) -> Vec<u8> {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let conn = openbits_server::connection(app.clone(), server, peer);
    let talk = async {
        let _ = client.write_all(request).await;
        let _ = client.shutdown().await;
        let mut response = Vec::new();
        let _ = client.read_to_end(&mut response).await;
        response
    };
    // Driven on this task, so a panic in the handler is this target's panic.
    let (_, response) = tokio::join!(conn, talk);
    response
}

/// A header's value in a response head.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
