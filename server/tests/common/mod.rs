//! Helpers for the integration tests: the real binary on a free port, a small blocking HTTP
//! client, and an upload driver built on openbits-protocol's client session.
#![allow(dead_code)]

use http::{HeaderMap, HeaderName, HeaderValue};
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use openbits_protocol::ProtocolError;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts the server and returns once it printed its `listening on` line.
    pub fn start(args: &[&str], envs: &[(&str, &str)], log: PathBuf) -> Server {
        let err = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_openbits-server"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(err);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn openbits-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .or_else(|| line.trim().strip_prefix("listening on https://"))
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .expect("address");
        Server { child, addr, log }
    }

    pub fn root(dir: &Path, extra: &[&str]) -> Server {
        let root = dir.join("root");
        let mut args = vec!["--root", root.to_str().unwrap()];
        args.extend_from_slice(extra);
        Server::start(
            &args,
            &[],
            dir.join(format!(
                "server-{}.log",
                std::process::id() as u64 * 1000 + rand_u16() as u64
            )),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (t ^ (t >> 16)) as u16
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request on a new connection (`Connection: close`). Adds `Content-Length` unless the
/// caller gave one (or passed `Content-Length: none` to omit it).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") {
            has_len = true;
            if *v == "none" {
                continue;
            }
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    let _ = s.write_all(body);
    read_response(&mut s, method == "HEAD")
}

pub fn read_response(s: &mut TcpStream, head_only: bool) -> Resp {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("status line {line:?}"))
        .parse()
        .expect("status");
    let mut headers = HeaderMap::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("header line");
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; if head_only || status == 304 { 0 } else { len }];
    r.read_exact(&mut body).expect("body");
    Resp {
        status,
        headers,
        body,
    }
}

pub fn bits(
    addr: SocketAddr,
    path: &str,
    packet: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut h = vec![("BITS-Packet-Type", packet)];
    h.extend_from_slice(extra);
    request(addr, "BITS_POST", path, &h, body)
}

pub fn create(addr: SocketAddr, path: &str) -> Resp {
    bits(
        addr,
        path,
        "Create-Session",
        &[("BITS-Supported-Protocols", GUID)],
        b"",
    )
}

pub fn create_id(addr: SocketAddr, path: &str) -> String {
    let r = create(addr, path);
    assert_eq!(r.status, 200, "{r:?}");
    r.h("bits-session-id").expect("session id").to_owned()
}

pub fn fragment(
    addr: SocketAddr,
    path: &str,
    id: &str,
    first: u64,
    total: u64,
    bytes: &[u8],
) -> Resp {
    let range = format!(
        "bytes {}-{}/{}",
        first,
        first + bytes.len() as u64 - 1,
        total
    );
    bits(
        addr,
        path,
        "Fragment",
        &[("BITS-Session-Id", id), ("Content-Range", &range)],
        bytes,
    )
}

pub fn close(addr: SocketAddr, path: &str, id: &str) -> Resp {
    bits(addr, path, "Close-Session", &[("BITS-Session-Id", id)], b"")
}

pub fn data(n: usize, seed: u8) -> Vec<u8> {
    let mut x = seed as u32 | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends a request the client session asked for, with its body taken from `bytes`.
pub fn send(
    addr: SocketAddr,
    path: &str,
    req: &openbits_protocol::client::Request,
    bytes: &[u8],
) -> Resp {
    // `request` adds Content-Length itself.
    let hs: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "content-length")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let hv: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let body = req
        .body
        .map_or(&[][..], |r| &bytes[r.first as usize..=r.last as usize]);
    request(addr, req.method, path, &hv, body)
}

/// How an upload driver picks the server for each request (several nodes share sessions).
pub type Pick<'a> = &'a mut dyn FnMut(usize) -> SocketAddr;

/// Uploads `bytes` to `path` with the protocol crate's client session, sending each request to
/// `pick(n)`; returns the reply URL for upload-reply sessions.
pub fn upload_with(
    session: &mut ClientSession,
    pick: Pick,
    path: &str,
    bytes: &[u8],
) -> Result<Option<String>, ProtocolError> {
    let mut reply = None;
    let mut retries = 0;
    for n in 0.. {
        match session.next() {
            Next::Send(req) => {
                let addr = pick(n);
                let r = send(addr, path, &req, bytes);
                match session.on_response(r.status, &r.headers) {
                    Event::Retry(e) => {
                        retries += 1;
                        assert!(retries < 50, "too many retries: {e}");
                    }
                    Event::Fatal(e) => return Err(e),
                    Event::ReplyReady { url } => reply = Some(url),
                    _ => {}
                }
            }
            Next::DownloadReply { .. } => session.reply_downloaded(),
            Next::Done | Next::Cancelled => return Ok(reply),
            Next::Failed(e) => return Err(e),
        }
    }
    unreachable!()
}

pub fn upload(
    addr: SocketAddr,
    path: &str,
    bytes: &[u8],
    fragment: u64,
) -> Result<Option<String>, ProtocolError> {
    let mut cfg = ClientConfig::new(format!("http://{addr}{path}"), bytes.len() as u64);
    cfg.fragment_len = fragment;
    upload_with(&mut ClientSession::new(cfg), &mut |_| addr, path, bytes)
}

/// Peak resident memory of a process (VmHWM), in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Waits for a condition, failing the test (not timing it) if it never becomes true.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Uploads in upload-reply mode, downloading the reply (with a Range GET, as Windows does)
/// before Close-Session. Returns the reply URL and the reply's bytes.
pub fn upload_reply(
    addr: SocketAddr,
    path: &str,
    bytes: &[u8],
) -> Result<(String, Vec<u8>), ProtocolError> {
    let mut cfg = ClientConfig::new(format!("http://{addr}{path}"), bytes.len() as u64);
    cfg.upload_reply = true;
    cfg.fragment_len = 5 * 1024;
    let mut session = ClientSession::new(cfg);
    let mut got = None;
    loop {
        match session.next() {
            Next::Send(req) => {
                let r = send(addr, path, &req, bytes);
                match session.on_response(r.status, &r.headers) {
                    Event::Fatal(e) | Event::Retry(e) => return Err(e),
                    _ => {}
                }
            }
            Next::DownloadReply { url } => {
                let u = url::Url::parse(&url).expect("reply URL");
                let reply = if u.host_str() == Some("127.0.0.1") {
                    let head = request(addr, "HEAD", u.path(), &[], b"");
                    assert_eq!(head.status, 200, "reply HEAD {url}");
                    let len: usize = head.h("content-length").unwrap().parse().unwrap();
                    let r = request(
                        addr,
                        "GET",
                        u.path(),
                        &[("Range", &format!("bytes=0-{}", len.saturating_sub(1)))],
                        b"",
                    );
                    assert!(
                        r.status == 206 || (len == 0 && r.status == 416),
                        "reply GET {url}: {}",
                        r.status
                    );
                    r.body
                } else {
                    Vec::new()
                };
                got = Some((url, reply));
                session.reply_downloaded();
            }
            Next::Done => return Ok(got.expect("a reply before Close-Session")),
            Next::Cancelled => panic!("cancelled"),
            Next::Failed(e) => return Err(e),
        }
    }
}

/// A minimal HTTP application server: each request is answered by `answer` (status, headers,
/// body), given the request headers and body; answers `None` means hang until the peer goes.
pub struct App {
    pub addr: SocketAddr,
    pub seen: Seen,
}

/// Every request an [`App`] received: headers and body.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

impl App {
    pub fn start(
        answer: impl Fn(&HeaderMap, &[u8], usize) -> Option<Answer> + Send + 'static,
    ) -> App {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for (n, conn) in l.incoming().enumerate() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = HeaderMap::new();
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    let l = l.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    let (k, v) = l.split_once(':').unwrap();
                    headers.append(
                        HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                        HeaderValue::from_str(v.trim()).unwrap(),
                    );
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                seen2.lock().unwrap().push((headers.clone(), body.clone()));
                match answer(&headers, &body, n) {
                    Some((status, hs, b)) => {
                        let mut out = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                            b.len()
                        );
                        for (k, v) in hs {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        let _ = s.write_all(out.as_bytes());
                        let _ = s.write_all(&b);
                    }
                    None => {
                        let mut sink = Vec::new();
                        let _ = s.read_to_end(&mut sink);
                    }
                }
            }
        });
        App { addr, seen }
    }
}
