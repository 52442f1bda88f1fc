//! One HTTP request: authentication, BITS packets, reply and file downloads, the log line.

use crate::body::{self, Body};
use crate::config::{Config, LogFormat, NotifyType};
use crate::paths::{self, SafePath};
use crate::store::{BodyReader, Error, NewBytes, SessionMeta, Store, Stored, Version};
use openbits_protocol::server::{self as proto, FragmentPlan, HostId, Progress, Reply};
use openbits_protocol::{ErrorContext, Hresult, PacketType};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES): the session caps are reached (transient).
const NO_RESOURCES: Hresult = Hresult(0x8007_05AA);
/// E_FAIL: storage failed; the client retries.
const E_FAIL: Hresult = Hresult(0x8000_4005);

pub struct App {
    pub cfg: Config,
    pub store: Store,
    pub auth: Option<crate::auth::Htpasswd>,
    pub notifier: crate::notify::Notifier,
    /// One writer per session on this node; other nodes are kept out by conditional writes.
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    pub tls: bool,
}

impl App {
    pub fn new(cfg: Config, store: Store, auth: Option<crate::auth::Htpasswd>, tls: bool) -> App {
        let notifier = crate::notify::Notifier::new(cfg.notify_timeout);
        App {
            cfg,
            store,
            auth,
            notifier,
            locks: Mutex::new(HashMap::new()),
            tls,
        }
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock();
        if let Some(l) = locks.get(id).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(id.to_owned(), Arc::downgrade(&l));
        if locks.len() > 4096 {
            locks.retain(|_, w| w.strong_count() > 0);
        }
        l
    }

    /// The session if it exists and has not expired (an expired one is removed now rather
    /// than at the next sweep, so expiry does not depend on the sweep's timing). With
    /// authentication, another user's session does not exist for this one.
    async fn live_session(
        &self,
        id: &str,
        client: &str,
    ) -> Result<Option<(SessionMeta, Version)>, Error> {
        match self.store.load(id).await? {
            Some((m, _)) if m.expired(self.cfg.session_timeout, crate::store::now()) => {
                self.store.remove(id).await?;
                Ok(None)
            }
            Some((m, _)) if self.auth.is_some() && m.client != client => Ok(None),
            other => Ok(other),
        }
    }
}

/// What the log line reports about a request.
#[derive(Default)]
struct Note {
    packet: Option<PacketType>,
    session: Option<String>,
    user: Option<String>,
    error: Option<String>,
}

pub async fn handle(
    app: Arc<App>,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let bytes_in = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut note = Note::default();
    let resp = route(&app, req, peer, &mut note).await;
    log(
        &app.cfg,
        peer,
        &method,
        &path,
        resp.status().as_u16(),
        bytes_in,
        start,
        &note,
    );
    Ok(resp)
}

async fn route(
    app: &Arc<App>,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    note: &mut Note,
) -> hyper::Response<Body> {
    if let Some(auth) = &app.auth {
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match auth.check(header).await {
            Some(user) => note.user = Some(user),
            None => {
                let mut r = reply_response(Reply::ack(401));
                r.headers_mut().insert(
                    "www-authenticate",
                    hyper::header::HeaderValue::from_static(
                        "Basic realm=\"openbits\", charset=\"UTF-8\"",
                    ),
                );
                return r;
            }
        }
    }
    let client = note.user.clone().unwrap_or_else(|| peer.ip().to_string());
    if proto::is_bits_request(req.method().as_str(), req.headers()) {
        return reply_response(bits(app, req, &client, note).await);
    }
    let is_head = req.method() == hyper::Method::HEAD;
    if req.method() == hyper::Method::GET || is_head {
        if let Some(id) = paths::reply_id(req.uri().path()) {
            note.session = Some(id.clone());
            return serve_reply(app, &id, &client, req.headers(), is_head).await;
        }
        if app.cfg.serve_downloads {
            return serve_file(app, req.uri().path(), req.headers(), is_head).await;
        }
        return body::response(
            hyper::StatusCode::NOT_FOUND,
            vec![("content-length", "0".into())],
            body::empty(),
        );
    }
    body::response(
        hyper::StatusCode::METHOD_NOT_ALLOWED,
        vec![
            ("allow", "BITS_POST, GET, HEAD".into()),
            ("content-length", "0".into()),
        ],
        body::empty(),
    )
}

fn reply_response(r: Reply) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(body::empty());
    *resp.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    *resp.headers_mut() = r.headers;
    resp
}

fn storage_error(e: &Error) -> Reply {
    match e {
        Error::NotFound => Reply::session_not_found(),
        Error::Escape | Error::Client(_) => Reply::invalid(),
        Error::Exists => Reply::error(409, Hresult::E_ACCESSDENIED, ErrorContext::REMOTE_FILE),
        Error::Conflict => Reply::error(503, E_FAIL, ErrorContext::REMOTE_FILE),
        Error::Storage(s) if s.contains("No space left") => {
            Reply::error(500, Hresult::ERROR_DISK_FULL, ErrorContext::REMOTE_FILE)
        }
        Error::Storage(_) => Reply::error(500, E_FAIL, ErrorContext::REMOTE_FILE),
    }
}

/// How much of a refused fragment's body is read and dropped before the answer.
const DRAIN_LIMIT: u64 = 32 << 20;

async fn bits(
    app: &Arc<App>,
    req: hyper::Request<hyper::body::Incoming>,
    client: &str,
    note: &mut Note,
) -> Reply {
    let parsed = match proto::parse_request(req.headers()) {
        Ok(p) => p,
        Err(r) => {
            // A malformed Fragment (bad Content-Range, wrong length) for a session we have is
            // still answered with where that session stands.
            if openbits_protocol::headers::packet_type(req.headers()) == Some(PacketType::Fragment)
            {
                let id = openbits_protocol::headers::get(
                    req.headers(),
                    openbits_protocol::headers::SESSION_ID,
                );
                if let Some(id) = id {
                    if let Ok(Some((m, _))) = app.live_session(id, client).await {
                        return r.with_received(m.received);
                    }
                }
            }
            return r;
        }
    };
    note.packet = Some(parsed.packet);
    note.session = parsed.session_id.clone();
    let result = match parsed.packet {
        PacketType::Ping => Ok(proto::ack_session(None)),
        PacketType::CreateSession => create(app, &req, client).await,
        PacketType::Fragment => {
            let (id, range) = (parsed.session_id.unwrap_or_default(), parsed.range);
            // What a refused fragment's client still sends is read and dropped before the answer
            // (`BodyReader::drain`), so the answer is not lost to a reset connection
            // (tests/packets.rs checks this with 12 MiB bodies, curl_compat.sh through nginx).
            let mut body =
                BodyReader::new(req.into_body(), app.cfg.read_timeout, parsed.content_length);
            let mut known = None;
            let result = match range {
                Some(range) => fragment(app, &id, client, range, &mut body, &mut known).await,
                None => Ok(Reply::invalid()),
            };
            let reply = match result {
                Ok(r) => r,
                Err(e) => {
                    note.error = Some(e.to_string());
                    storage_error(&e)
                }
            };
            // Beyond the largest fragment a client sends (Windows: 13 MB), the connection is
            // left to close: reading gigabytes to refuse them is worse than a reset.
            body.drain(DRAIN_LIMIT).await;
            // Every Ack to a Fragment of a known session says where it stands, errors
            // (413, 400, storage failures, the application's context-0x7 errors) included.
            // A session that vanished meanwhile is not known any more: its Ack stays bare.
            return match known {
                Some(received)
                    if reply
                        .header(openbits_protocol::headers::RECEIVED_CONTENT_RANGE)
                        .is_none()
                        && openbits_protocol::error::error_code(&reply.headers)
                            != Some(Hresult::BG_E_SESSION_NOT_FOUND) =>
                {
                    reply.with_received(received)
                }
                _ => reply,
            };
        }
        PacketType::CloseSession => {
            close(app, &parsed.session_id.unwrap_or_default(), client).await
        }
        PacketType::CancelSession => {
            cancel(app, &parsed.session_id.unwrap_or_default(), client).await
        }
        PacketType::Ack => Ok(Reply::invalid()),
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            note.error = Some(e.to_string());
            storage_error(&e)
        }
    }
}

/// `http(s)://host/path?query` as the client addressed it.
fn original_url(app: &App, req: &hyper::Request<hyper::body::Incoming>) -> String {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{}://{host}{pq}", if app.tls { "https" } else { "http" })
}

async fn create(
    app: &Arc<App>,
    req: &hyper::Request<hyper::body::Incoming>,
    client: &str,
) -> Result<Reply, Error> {
    let protocol = match proto::negotiate(req.headers()) {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let Some(path) = SafePath::from_url_path(req.uri().path()) else {
        return Ok(Reply::invalid());
    };
    app.store.check_destination(&path).await?;
    let reply_mode = app.cfg.notify_type != NotifyType::None;
    if !app.cfg.allow_overwrites && !reply_mode && app.store.exists(&path).await? {
        return Ok(Reply::error(
            409,
            Hresult::E_ACCESSDENIED,
            ErrorContext::REMOTE_FILE,
        ));
    }
    if app.store.list().await?.len() as u64 >= app.cfg.max_sessions {
        return Ok(Reply::error(503, NO_RESOURCES, ErrorContext::REMOTE_FILE));
    }
    if let Some(max) = app.cfg.max_sessions_per_client {
        if app.store.count_client(client).await? >= max {
            return Ok(Reply::error(503, NO_RESOURCES, ErrorContext::REMOTE_FILE));
        }
    }
    let now = crate::store::now();
    let meta = SessionMeta {
        id: paths::new_session_id(),
        path: path.as_str(),
        url: original_url(app, req),
        client: client.to_owned(),
        created: now,
        updated: now,
        total: None,
        received: 0,
        parts: Vec::new(),
        reply_url: None,
        copy_to_destination: false,
        reply_mode,
        closing: false,
    };
    app.store.create(&meta).await?;
    let host = app.cfg.host_id.as_ref().map(|name| HostId {
        name: name.clone(),
        fallback_timeout: app.cfg.host_id_fallback_timeout,
    });
    Ok(proto::ack_create(&meta.id, protocol, host.as_ref()))
}

async fn fragment(
    app: &Arc<App>,
    id: &str,
    client: &str,
    range: openbits_protocol::ContentRange,
    body: &mut BodyReader,
    known: &mut Option<u64>,
) -> Result<Reply, Error> {
    let lock = app.lock_for(id);
    let _guard = lock.lock().await;
    let Some((meta, version)) = app.live_session(id, client).await? else {
        return Ok(Reply::session_not_found());
    };
    // A failed write records nothing, so this stays right until a write succeeds.
    *known = Some(meta.received);
    let progress = Progress {
        total: meta.total,
        received: meta.received,
    };
    let plan = match proto::plan_fragment(range, progress, app.cfg.max_upload_size) {
        Ok(p) => p,
        Err(r) => return Ok(r),
    };
    let (meta, version) = match plan {
        FragmentPlan::Duplicate => (meta, version),
        FragmentPlan::Write {
            discard,
            offset,
            len,
            total,
        } => match app
            .store
            .write_fragment(
                meta,
                version,
                NewBytes {
                    discard,
                    offset,
                    len,
                    total,
                },
                body,
            )
            .await?
        {
            Stored::Done(m, v) => {
                *known = Some(m.received);
                (m, v)
            }
            Stored::Raced(cur) => {
                return Ok(if cur.received >= range.first {
                    proto::ack_fragment(id, cur.received, cur.reply_url.as_deref())
                } else {
                    Reply::out_of_sync(cur.received)
                });
            }
        },
    };
    if meta.reply_mode && meta.complete() && meta.reply_url.is_none() && meta.total.is_some() {
        // NotifyCache: the application is told once per successful answer; a resent last
        // fragment after a failed notification tells it again.
        return match crate::notify::notify(app, meta, version).await {
            Ok(m) => Ok(proto::ack_fragment(id, m.received, m.reply_url.as_deref())),
            Err(r) => Ok(r),
        };
    }
    Ok(proto::ack_fragment(
        id,
        meta.received,
        meta.reply_url.as_deref(),
    ))
}

async fn close(app: &Arc<App>, id: &str, client: &str) -> Result<Reply, Error> {
    let lock = app.lock_for(id);
    let _guard = lock.lock().await;
    let Some((meta, version)) = app.live_session(id, client).await? else {
        return Ok(Reply::session_not_found());
    };
    app.store
        .close(&meta, &version, app.cfg.allow_overwrites)
        .await?;
    Ok(proto::ack_session(Some(id)))
}

async fn cancel(app: &Arc<App>, id: &str, client: &str) -> Result<Reply, Error> {
    let lock = app.lock_for(id);
    let _guard = lock.lock().await;
    if app.live_session(id, client).await?.is_none() {
        return Ok(Reply::session_not_found());
    }
    app.store.remove(id).await?;
    Ok(proto::ack_session(Some(id)))
}

async fn serve_reply(
    app: &Arc<App>,
    id: &str,
    client: &str,
    headers: &hyper::HeaderMap,
    is_head: bool,
) -> hyper::Response<Body> {
    let not_found = || {
        body::response(
            hyper::StatusCode::NOT_FOUND,
            vec![("content-length", "0".into())],
            body::empty(),
        )
    };
    match app.live_session(id, client).await {
        Ok(Some(_)) => {}
        _ => return not_found(),
    }
    let info = match app.store.reply_info(id).await {
        Ok(Some(i)) => i,
        _ => return not_found(),
    };
    let head = body::head(&info, &body::plan(headers, &info));
    let b = match (head.range, is_head) {
        (Some((s, e)), false) => match app.store.reply_stream(id, s, e).await {
            Ok(st) => body::stream(st),
            Err(_) => return not_found(),
        },
        _ => body::empty(),
    };
    body::response(head.status, head.headers, b)
}

async fn serve_file(
    app: &Arc<App>,
    raw: &str,
    headers: &hyper::HeaderMap,
    is_head: bool,
) -> hyper::Response<Body> {
    let plain = |status: hyper::StatusCode| {
        body::response(status, vec![("content-length", "0".into())], body::empty())
    };
    let Some(path) = SafePath::from_url_path(raw) else {
        return plain(hyper::StatusCode::BAD_REQUEST);
    };
    let info = match app.store.file_info(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return plain(hyper::StatusCode::NOT_FOUND),
        Err(Error::Escape) => return plain(hyper::StatusCode::FORBIDDEN),
        Err(_) => return plain(hyper::StatusCode::INTERNAL_SERVER_ERROR),
    };
    let head = body::head(&info, &body::plan(headers, &info));
    let b = match (head.range, is_head) {
        (Some((s, e)), false) => match app.store.file_stream(&path, s, e).await {
            Ok(st) => body::stream(st),
            Err(_) => return plain(hyper::StatusCode::INTERNAL_SERVER_ERROR),
        },
        _ => body::empty(),
    };
    body::response(head.status, head.headers, b)
}

/// Logs a request that hyper refused before it reached [`handle`] (the connection's error):
/// a head over the limits (hyper answers 431, or 414 for the request line), a malformed one
/// (400), or a head that did not arrive within `--read-timeout` (closed without an answer;
/// logged as 408). `head_started` says whether bytes of a request had arrived since the last
/// answer: an idle keep-alive connection timing out, or a client going away, is no request
/// and gets no line.
pub fn log_refused(cfg: &Config, peer: SocketAddr, e: &hyper::Error, head_started: bool) {
    let status = if e.is_parse_too_large() {
        // hyper's public error has no finer kind; its message names the request line.
        if e.to_string().contains("URI too long") {
            414
        } else {
            431
        }
    } else if e.is_parse() {
        400
    } else if e.is_timeout() && head_started {
        408
    } else {
        return;
    };
    let note = Note {
        error: Some(e.to_string()),
        ..Note::default()
    };
    log(cfg, peer, "-", "-", status, 0, Instant::now(), &note);
}

#[allow(clippy::too_many_arguments)]
fn log(
    cfg: &Config,
    peer: SocketAddr,
    method: &str,
    path: &str,
    status: u16,
    bytes_in: u64,
    start: Instant,
    note: &Note,
) {
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let time = httpdate::fmt_http_date(std::time::SystemTime::now());
    let line = match cfg.log_format {
        LogFormat::Json => serde_json::json!({
            "time": time,
            "peer": peer.to_string(),
            "user": note.user,
            "method": method,
            "path": path,
            "status": status,
            "bytes_in": bytes_in,
            "ms": (ms * 10.0).round() / 10.0,
            "packet": note.packet.map(|p| p.as_str()),
            "session": note.session,
            "error": note.error,
        })
        .to_string(),
        LogFormat::Text => format!(
            "{time} {peer} {} \"{method} {path}\" {status} in={bytes_in} {ms:.1}ms{}{}{}",
            note.user.as_deref().unwrap_or("-"),
            note.packet
                .map(|p| format!(" packet={p}"))
                .unwrap_or_default(),
            note.session
                .as_ref()
                .map(|s| format!(" session={s}"))
                .unwrap_or_default(),
            note.error
                .as_ref()
                .map(|s| format!(" error=\"{s}\""))
                .unwrap_or_default(),
        ),
    };
    eprintln!("{line}");
}
