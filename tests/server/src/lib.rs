//! A real HTTP/1.1 server on 127.0.0.1 for tests. Files live in memory; the query string of each
//! request picks a misbehaviour, so one server serves every scenario:
//!
//! | query          | effect |
//! |----------------|--------|
//! | `norange=1`    | ignore Range and If-Range: always 200 with the whole file |
//! | `drop=N[:K]`   | cut the response body after N bytes (connection aborted); only the first K requests if K given |
//! | `fail=S:K`     | answer the first K requests for this URL with status S |
//! | `retryafter=V` | with `fail`: the failing answers carry `Retry-After: V` |
//! | `status=S`     | always answer status S |
//! | `etag=change`  | a different ETag on every request (the representation "changed") |
//! | `noetag=1`     | no ETag; `nolastmod=1`: no Last-Modified |
//! | `stall=N`      | on the first request, stop sending after N body bytes and hang |
//! | `wrongoffset=N`| answer a Range request with a 206 starting N bytes before the asked offset |
//! | `nolength=1`   | no Content-Length (chunked) |
//! | `rate=B`       | send at most B bytes per second |
//! | `redirect=P`   | 302 to P (a path on this server, or an absolute URL) |
//! | `auth=U:P`     | 401 unless the request has `Authorization: Basic` for U:P |
//! | `delay=MS`     | wait MS milliseconds before answering (the request holds its connection meanwhile) |
//!
//! It is also a BITS upload server: `BITS_POST` packets go to [`bits`], whose own table lists the
//! faults an upload URL's query string injects, and which records what it received.
//!
//! It is also an HTTP proxy: an absolute-form request (`GET http://any-host/path`) is served from
//! its own files, as if it had forwarded it, and `CONNECT host:port` opens a tunnel to that address
//! (a host ending in `.test` stands for 127.0.0.1, so tests can name "remote" origins).
//!
//! It counts the body bytes it sends and records each request's Range-related headers, for other
//! processes too:
//!
//! - `GET /_stats`: `bytes_sent=<n>` and `requests=<n>` (requests received before this one), one a line;
//! - `POST /_reverse`: answers the body reversed (an upload-reply application behind
//!   openbits-server's `--notify-type by-value`);
//! - `GET /_requests`: one line per request received before this one, in arrival order, four fields
//!   separated by tabs: `<status>\t<path-and-query>\t<Range>\t<If-Range>` (`-` for a header the
//!   request did not carry; a CONNECT shows as `CONNECT host:port`).

pub mod app;
pub mod bits;
pub mod raw;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// What a request asked for, as the server saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub path_and_query: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub accept_encoding: Option<String>,
    pub status: u16,
    /// Every request header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// When the request's head arrived (None only in a `Seen` made by hand).
    pub at: Option<std::time::Instant>,
}

#[derive(Default)]
pub struct State {
    files: Mutex<HashMap<String, Bytes>>,
    hits: Mutex<HashMap<String, u32>>,
    seen: Mutex<Vec<Seen>>,
    bits: Mutex<bits::Bits>,
    bytes_sent: AtomicU64,
    /// Response bodies not yet finished or dropped (a dropped body means the connection closed).
    open_bodies: AtomicU64,
    /// The most bodies open at once, and the connections accepted.
    max_open_bodies: AtomicU64,
    connections: AtomicU64,
    /// TCP connections open now, and the most that were open at once.
    live_connections: AtomicU64,
    max_live_connections: AtomicU64,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 on a free port, on its own thread.
    pub fn start() -> TestServer {
        Self::start_on(0).expect("bind 127.0.0.1")
    }

    pub fn start_on(port: u16) -> std::io::Result<TestServer> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Serves on `addr` (for tests that give the server an address of a network namespace they
    /// made: the listening socket belongs to the calling thread's namespace).
    pub fn start_at(addr: SocketAddr) -> std::io::Result<TestServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(State::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("testserver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(serve(std_listener, st, rx));
            })?;
        Ok(TestServer {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn add(&self, path: &str, content: impl Into<Bytes>) {
        self.state
            .files
            .lock()
            .insert(path.to_string(), content.into());
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Body bytes handed to the connection so far.
    pub fn bytes_sent(&self) -> u64 {
        self.state.bytes_sent.load(Ordering::SeqCst)
    }

    pub fn open_bodies(&self) -> u64 {
        self.state.open_bodies.load(Ordering::SeqCst)
    }

    /// The most response bodies that were being sent at once.
    pub fn max_open_bodies(&self) -> u64 {
        self.state.max_open_bodies.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most TCP connections that were open at once (idle keep-alive ones included).
    pub fn max_live_connections(&self) -> u64 {
        self.state.max_live_connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().clone()
    }

    /// Every upload packet received, in arrival order.
    pub fn bits_packets(&self) -> Vec<bits::Packet> {
        self.state.bits.lock().packets()
    }

    /// The file an upload placed at `path` (by Close-Session), if any.
    pub fn uploaded(&self, path: &str) -> Option<Vec<u8>> {
        self.state.bits.lock().uploaded(path)
    }

    /// Upload body bytes read for `session`, kept or not.
    pub fn bits_received(&self, session: &str) -> u64 {
        self.state.bits.lock().received(session)
    }

    /// Upload body bytes read, all sessions together.
    pub fn bits_bytes_received(&self) -> u64 {
        self.state.bits.lock().total_received()
    }

    /// Upload sessions neither closed nor cancelled nor lost.
    pub fn bits_open_sessions(&self) -> Vec<String> {
        self.state.bits.lock().open_sessions()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves until `stop` fires (or forever if its sender is dropped without firing... it fires on drop).
pub async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        let live = state.live_connections.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_live_connections.fetch_max(live, Ordering::SeqCst);
        let st = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn({
                let st = st.clone();
                move |req| handle(st.clone(), req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
            // The connection is closed (by either side) once serve_connection returns.
            st.live_connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    let q = req.uri().query().unwrap_or("");
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn text_response(status: u16, body: &str) -> Response<Chunks> {
    let mut r = Response::new(Chunks::whole(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// CONNECT: answer 200, then copy bytes both ways between the client and `authority`.
fn tunnel(req: Request<Incoming>) -> Response<Chunks> {
    let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
        return text_response(400, "CONNECT needs host:port");
    };
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let address = match authority.rsplit_once(':') {
            Some((host, port)) if host.ends_with(".test") => format!("127.0.0.1:{port}"),
            _ => authority,
        };
        let Ok(mut target) = tokio::net::TcpStream::connect(&address).await else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
    });
    text_response(200, "")
}

/// Answers a request; an error aborts the connection without an answer (the `bits` faults).
async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Chunks>, std::io::Error> {
    let at = std::time::Instant::now();
    let q = query(&req);
    let key = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let hit = {
        let mut hits = state.hits.lock();
        let n = hits.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let hdr = |n: header::HeaderName| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = Seen {
        path_and_query: key.clone(),
        range: hdr(header::RANGE),
        if_range: hdr(header::IF_RANGE),
        accept_encoding: hdr(header::ACCEPT_ENCODING),
        status: 0,
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        at: Some(at),
    };
    if let Some(ms) = q.get("delay").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if openbits_protocol::server::is_bits_request(req.method().as_str(), req.headers()) {
        // Recorded there, as `bits::Packet`s.
        return bits::handle(state, req, q, hit).await;
    }
    if req.method() == hyper::Method::CONNECT {
        seen.path_and_query = format!("CONNECT {}", req.uri());
        seen.status = 200;
        state.seen.lock().push(seen);
        return Ok(tunnel(req));
    }
    if req.method() == hyper::Method::POST && req.uri().path() == "/_reverse" {
        // An upload-reply application for openbits-server (`--notify-url .../_reverse`).
        let mut body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return Ok(text_response(400, "body")),
        };
        body.reverse();
        seen.status = 200;
        state.seen.lock().push(seen);
        return Ok(Response::new(Chunks::whole(Bytes::from(body))));
    }
    let resp = respond(&state, &req, &q, hit);
    seen.status = resp.status().as_u16();
    state.seen.lock().push(seen);
    let _ = req.into_body().collect().await;
    Ok(resp)
}

fn respond(
    state: &Arc<State>,
    req: &Request<Incoming>,
    q: &HashMap<String, String>,
    hit: u32,
) -> Response<Chunks> {
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    if req.uri().path() == "/_requests" {
        let lines: String = state
            .seen
            .lock()
            .iter()
            .map(|s| {
                let field = |v: &Option<String>| v.as_deref().unwrap_or("-").replace('\t', " ");
                format!(
                    "{}\t{}\t{}\t{}\n",
                    s.status,
                    s.path_and_query,
                    field(&s.range),
                    field(&s.if_range)
                )
            })
            .collect();
        return text_response(200, &lines);
    }
    if req.uri().path() == "/_stats" {
        let n = state.seen.lock().len();
        return text_response(
            200,
            &format!(
                "bytes_sent={}\nrequests={n}\n",
                state.bytes_sent.load(Ordering::SeqCst)
            ),
        );
    }
    if let Some(to) = q.get("redirect") {
        let mut r = text_response(302, "");
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    if let Some(expected) = q.get("auth") {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given != format!("Basic {}", base64(expected.as_bytes())) {
            let mut r = text_response(401, "authentication required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"test\""),
            );
            return r;
        }
    }
    if let Some(s) = num("status") {
        return text_response(s as u16, "status requested");
    }
    if let Some((s, k)) = q.get("fail").and_then(|f| f.split_once(':')) {
        if let (Ok(s), Ok(k)) = (s.parse::<u16>(), k.parse::<u32>()) {
            if hit <= k {
                let mut r = text_response(s, "failing on purpose");
                if let Some(v) = q
                    .get("retryafter")
                    .and_then(|v| HeaderValue::from_str(v).ok())
                {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
        }
    }
    let Some(content) = state.files.lock().get(req.uri().path()).cloned() else {
        return text_response(404, "no such file");
    };
    let total = content.len() as u64;
    let etag = if q.get("etag").map(String::as_str) == Some("change") {
        format!("\"v{hit}\"")
    } else {
        format!("\"{total}-fixed\"")
    };
    let last_modified = "Wed, 21 Oct 2015 07:28:00 GMT";
    let mut start = 0u64;
    let mut end = total; // exclusive
    let mut partial = false;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let if_range_ok = match req
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(v) if v.starts_with('"') || v.starts_with("W/") => v == etag,
        Some(v) => v == last_modified,
    };
    if let (Some(r), false, true) = (range, q.contains_key("norange"), if_range_ok) {
        // bytes=N- or bytes=N-M (one range).
        let parsed = r
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| {
                let from = a.parse::<u64>().ok()?;
                let to = if b.is_empty() {
                    None
                } else {
                    Some(b.parse::<u64>().ok()?)
                };
                Some((from, to))
            });
        let Some((from, to)) = parsed else {
            return text_response(416, "only bytes=N- and bytes=N-M are supported");
        };
        if let Some(to) = to {
            end = end.min(to.saturating_add(1));
        }
        if from >= total {
            let mut resp = text_response(416, "");
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).unwrap(),
            );
            return resp;
        }
        start = from.saturating_sub(num("wrongoffset").unwrap_or(0));
        partial = true;
    }
    let body = content.slice(start as usize..end as usize);
    let len = body.len() as u64;
    let mut chunks = Chunks::whole(body);
    let open = state.open_bodies.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_open_bodies.fetch_max(open, Ordering::SeqCst);
    chunks.stats = Some(state.clone());
    chunks.drop_after = match q.get("drop").and_then(|d| d.split_once(':')) {
        Some((n, k)) => n
            .parse()
            .ok()
            .filter(|_| k.parse::<u32>().is_ok_and(|k| hit <= k)),
        None => num("drop"),
    };
    chunks.stall_after = num("stall").filter(|_| hit == 1);
    chunks.rate = num("rate");
    let mut resp = Response::new(chunks);
    let h = resp.headers_mut();
    if !q.contains_key("noetag") {
        h.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    }
    if !q.contains_key("nolastmod") {
        h.insert(
            header::LAST_MODIFIED,
            HeaderValue::from_static(last_modified),
        );
    }
    if !q.contains_key("norange") {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!("bytes {start}-{}/{total}", end - 1);
        resp.headers_mut()
            .insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).unwrap());
    }
    if q.contains_key("nolength") {
        resp.body_mut().hide_length = true;
    } else {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}

/// A response body sent in 64 KiB chunks, with the faults the query asked for.
pub struct Chunks {
    data: Bytes,
    pos: usize,
    stats: Option<Arc<State>>,
    drop_after: Option<u64>,
    stall_after: Option<u64>,
    rate: Option<u64>,
    hide_length: bool,
    dropping: bool,
    delay: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Chunks {
    fn whole(data: Bytes) -> Chunks {
        Chunks {
            data,
            pos: 0,
            stats: None,
            drop_after: None,
            stall_after: None,
            rate: None,
            hide_length: false,
            dropping: false,
            delay: None,
        }
    }
}

const CHUNK: usize = 64 * 1024;

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Some(d) = this.delay.as_mut() {
            if d.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.delay = None;
        }
        if this.pos >= this.data.len() {
            return Poll::Ready(None);
        }
        let sent = this.pos as u64;
        if this.drop_after.is_some_and(|n| sent >= n) {
            // hyper discards unflushed output when a body fails; give it time to send what it has,
            // so the client really receives N bytes before the connection dies.
            if !this.dropping {
                this.dropping = true;
                this.delay = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "dropping on purpose",
            ))));
        }
        if this.stall_after.is_some_and(|n| sent >= n) {
            // Hang: no more bytes, connection kept open, until the client gives up.
            this.delay = Some(Box::pin(tokio::time::sleep(Duration::from_secs(24 * 3600))));
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut n = this.data.len() - this.pos;
        if this.rate.is_none() {
            n = n.min(CHUNK);
        }
        for limit in [this.drop_after, this.stall_after].into_iter().flatten() {
            if sent < limit {
                n = n.min((limit - sent) as usize);
            }
        }
        if let Some(rate) = this.rate {
            // Chunks of 1/20 s worth of bytes (slices: no copy), each followed by a 50 ms pause.
            n = n.min((rate / 20).max(1) as usize);
            this.delay = Some(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
        }
        let chunk = this.data.slice(this.pos..this.pos + n);
        this.pos += n;
        if let Some(s) = &this.stats {
            s.bytes_sent.fetch_add(n as u64, Ordering::SeqCst);
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.hide_length {
            return hyper::body::SizeHint::default();
        }
        hyper::body::SizeHint::with_exact((self.data.len() - self.pos) as u64)
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if let Some(s) = &self.stats {
            s.open_bodies.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Deterministic test content: byte i is a function of i and `seed`, so misplaced bytes show.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
