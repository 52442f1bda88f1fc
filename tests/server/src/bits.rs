//! The BITS upload side of the test server ([MC-BUP]): `BITS_POST` packets (or `POST` with
//! `X-Http-Method-Override: BITS_POST`) go to an in-memory upload server built from
//! `openbits-protocol`'s own server rules (`memory::MemoryServer`), so the Acks are the ones
//! openbits-server sends; the query string of the upload URL (every packet of an upload carries
//! it) adds the faults a client must survive:
//!
//! | query            | effect |
//! |------------------|--------|
//! | `fail=S:K`       | the first K packets to this URL are answered S (an Ack without BITS error headers, unless `errcode`) |
//! | `retryafter=V`   | with `fail`: the failing Acks carry `Retry-After: V` |
//! | `errcode=H`      | with `fail`: the failing Acks carry `BITS-Error-Code: H` and `BITS-Error-Context: 0x5` |
//! | `errctx=C`       | with `errcode`: that context instead (`0x7`: the server application) |
//! | `errname=spec`   | with `errcode`: the code in `BITS-Error`, [MC-BUP]'s name, instead of `BITS-Error-Code` |
//! | `cut=N[:K]`      | the first K Fragments (1 if K is not given) are cut after N body bytes: the session keeps those bytes and the connection is aborted without an Ack |
//! | `rewind=AT:TO`   | once, when a session holds AT bytes or more: its next Fragment is answered 416 with `BITS-Received-Content-Range: TO` and the session is cut back to TO bytes (a server restored from a backup) |
//! | `lose=AT`        | once, when a session holds AT bytes or more: it is forgotten, and its next packet is answered 500 + BG_E_SESSION_NOT_FOUND (0x8020001F) |
//! | `noack=P[:K]`    | the first K packets of type P (1 if K is not given; any case, e.g. `close-session`) are carried out, then the connection is aborted instead of the Ack (the Ack was lost) |
//! | `early=N[:K]`    | the first K Fragments (1 if K is not given) of N bytes or more are answered 503 with `Connection: close` as soon as their headers arrive, body unread (the client is still writing it when the connection closes) |
//! | `maxfrag=B`      | Fragments of more than B body bytes are answered 413 (no BITS error headers, as a request filter does) |
//! | `hostid=NAME[:T]`| the first Create-Session Ack carries `BITS-Host-Id: NAME` (and `BITS-Host-Id-Fallback-Timeout: T`); later sessions get none, as from a farm whose node went away |
//! | `nosid=1`        | no `BITS-Session-Id` on any Ack but Create-Session's (IIS's Fragment and Close Acks have none) |
//! | `errok=1`        | every 2xx Ack carries `BITS-Error-Code: 0x80070005` and `BITS-Error-Context: 0x7`, which a client must ignore |
//!
//! Every packet is recorded ([`Packet`]: type, session, `Host`, range, body bytes read, status),
//! with the body bytes read per session; Close-Session places the file, readable with
//! [`crate::TestServer::uploaded`].

use crate::{Chunks, State};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use openbits_protocol::error::{ErrorContext, Hresult};
use openbits_protocol::headers::{self, PacketType};
use openbits_protocol::memory::MemoryServer;
use openbits_protocol::server::{self, HostId, Reply};
use openbits_protocol::ContentRange;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One upload packet as the server saw it.
#[derive(Clone, Debug)]
pub struct Packet {
    /// `BITS-Packet-Type` as sent (None if absent).
    pub packet: Option<PacketType>,
    pub session: Option<String>,
    /// The `Host` header: where the client sent it (a `BITS-Host-Id` changes it).
    pub host: String,
    pub range: Option<ContentRange>,
    /// Body bytes read (fewer than the range's length when `cut` struck).
    pub body: u64,
    /// The Ack's status; 0 when the connection was cut instead.
    pub status: u16,
    /// For a Create-Session Ack: the session id it gave.
    pub created: Option<String>,
    pub at: std::time::Instant,
}

#[derive(Default)]
pub(crate) struct Bits {
    server: MemoryServer,
    packets: Vec<Packet>,
    /// Body bytes read, by session id (what the client sent, kept or not).
    received: HashMap<String, u64>,
    total_received: u64,
    /// Fragments seen per URL (for `cut`).
    fragments: HashMap<String, u32>,
    /// One-shot faults already fired, as "fault URL".
    fired: HashSet<String>,
    /// Fragments answered before their body per URL (for `early`).
    answered_early: HashMap<String, u32>,
    /// Acks not sent so far per URL (for `noack`).
    acks_lost: HashMap<String, u32>,
}

impl Bits {
    pub(crate) fn packets(&self) -> Vec<Packet> {
        self.packets.clone()
    }
    pub(crate) fn uploaded(&self, path: &str) -> Option<Vec<u8>> {
        self.server.files.get(path).cloned()
    }
    pub(crate) fn received(&self, session: &str) -> u64 {
        self.received.get(session).copied().unwrap_or(0)
    }
    pub(crate) fn total_received(&self) -> u64 {
        self.total_received
    }
    pub(crate) fn open_sessions(&self) -> Vec<String> {
        self.server.sessions.keys().cloned().collect()
    }
}

fn pair(v: Option<&String>) -> Option<(u64, u64)> {
    let (a, b) = v?.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn ack_response(reply: Reply) -> Response<Chunks> {
    let mut r = Response::new(Chunks::whole(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    r.headers_mut().extend(reply.headers);
    r
}

/// Handles one upload packet; `Err` aborts the connection without an answer (hyper closes it).
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    q: HashMap<String, String>,
    hit: u32,
) -> Result<Response<Chunks>, std::io::Error> {
    let key = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let (parts, mut body) = req.into_parts();
    let h = &parts.headers;
    let packet = headers::packet_type(h);
    let session = headers::get(h, headers::SESSION_ID).map(str::to_owned);
    let range = headers::get(h, "content-range").and_then(ContentRange::parse);
    let host = headers::get(h, "host").unwrap_or("").to_owned();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());

    // `cut` and `early` apply to this request if it is one of the first K Fragments of the URL.
    let fragment_no = (packet == Some(PacketType::Fragment)).then(|| {
        let mut b = state.bits.lock();
        let n = b.fragments.entry(key.clone()).or_insert(0);
        *n += 1;
        *n
    });
    let early = q.get("early").and_then(|e| {
        let (n, k) = e.split_once(':').unwrap_or((e, "1"));
        Some((n.parse::<u64>().ok()?, k.parse::<u32>().ok()?))
    });
    let long = |n: u64| range.is_some_and(|r| r.len() >= n);
    if let (Some(_), Some((_, k))) = (fragment_no, early.filter(|&(n, _)| long(n))) {
        let mut b = state.bits.lock();
        let answered = b.answered_early.entry(key.clone()).or_insert(0);
        if *answered < k {
            *answered += 1;
            b.packets.push(Packet {
                packet,
                session,
                host,
                range,
                body: 0,
                status: 503,
                created: None,
                at: std::time::Instant::now(),
            });
            let mut r = ack_response(Reply::ack(503));
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return Ok(r);
        }
    }
    let cut_at = if let Some(n) = fragment_no {
        q.get("cut").and_then(|c| {
            let (at, k) = c.split_once(':').unwrap_or((c, "1"));
            let (at, k) = (at.parse::<u64>().ok()?, k.parse::<u32>().ok()?);
            (n <= k).then_some(at)
        })
    } else {
        None
    };
    let mut data = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(chunk) = frame.into_data() {
            data.extend_from_slice(&chunk);
        }
        if let Some(n) = cut_at.filter(|&n| data.len() as u64 >= n) {
            data.truncate(n as usize);
            cut = true;
            break;
        }
    }
    let mut record = Packet {
        packet,
        session: session.clone(),
        host,
        range,
        body: data.len() as u64,
        status: 0,
        created: None,
        at: std::time::Instant::now(),
    };
    let mut b = state.bits.lock();
    b.total_received += data.len() as u64;
    if let Some(s) = &session {
        *b.received.entry(s.clone()).or_insert(0) += data.len() as u64;
    }
    if cut {
        if let (Some(r), Some(s)) = (range, &session) {
            // The bytes that arrived before the cut stay, as with a server that writes as it reads.
            if let Some(sess) = b.server.sessions.get_mut(s) {
                let have = sess.data.len() as u64;
                let end = r.first + data.len() as u64;
                if r.first <= have && end > have {
                    sess.data
                        .extend_from_slice(&data[(have - r.first) as usize..]);
                    sess.total = Some(r.total);
                }
            }
        }
        b.packets.push(record);
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "cutting the fragment on purpose",
        ));
    }

    let reply = 'reply: {
        if let Some((status, k)) = pair(q.get("fail")) {
            if u64::from(hit) <= k {
                let mut r = Reply::ack(status as u16);
                if let Some(code) = q
                    .get("errcode")
                    .map(String::as_str)
                    .and_then(Hresult::parse)
                {
                    let context = q
                        .get("errctx")
                        .map(String::as_str)
                        .and_then(ErrorContext::parse)
                        .unwrap_or(ErrorContext::REMOTE_FILE);
                    let name = if q.get("errname").map(String::as_str) == Some("spec") {
                        headers::ERROR_CODE_SPEC
                    } else {
                        headers::ERROR_CODE
                    };
                    r = r
                        .with(name, &code.to_string())
                        .with(headers::ERROR_CONTEXT, &context.to_string());
                }
                if let Some(v) = q.get("retryafter") {
                    r = r.with("retry-after", v);
                }
                break 'reply r;
            }
        }
        let held = session
            .as_ref()
            .and_then(|s| b.server.sessions.get(s))
            .map(|s| s.data.len() as u64);
        if let (Some(at), Some(held), Some(s)) = (num("lose"), held, &session) {
            if held >= at && b.fired.insert(format!("lose {key}")) {
                b.server.sessions.remove(s);
                break 'reply Reply::session_not_found();
            }
        }
        if let (Some((at, to)), Some(held), Some(s), Some(PacketType::Fragment)) =
            (pair(q.get("rewind")), held, &session, packet)
        {
            if held >= at && b.fired.insert(format!("rewind {key}")) {
                if let Some(sess) = b.server.sessions.get_mut(s) {
                    sess.data.truncate(to.min(held) as usize);
                }
                break 'reply Reply::out_of_sync(to.min(held));
            }
        }
        if let (Some(max), Some(PacketType::Fragment)) = (num("maxfrag"), packet) {
            if data.len() as u64 > max {
                break 'reply Reply::ack(413);
            }
        }
        let mut reply = b.server.handle(&method, &path, h, &data);
        if packet == Some(PacketType::CreateSession) && reply.status == 200 {
            record.created = reply.header(headers::SESSION_ID).map(str::to_owned);
            if let Some(spec) = q.get("hostid") {
                if b.fired.insert(format!("hostid {key}")) {
                    let (name, timeout) = match spec.split_once(':') {
                        Some((n, t)) => (n, t.parse().ok()),
                        None => (spec.as_str(), None),
                    };
                    let id = record.created.clone().unwrap_or_default();
                    let host = HostId {
                        name: name.to_owned(),
                        fallback_timeout: timeout,
                    };
                    reply = server::ack_create(&id, openbits_protocol::PROTOCOL_GUID, Some(&host));
                }
            }
        } else if q.contains_key("nosid") {
            reply.headers.remove(headers::SESSION_ID);
        }
        if q.contains_key("errok") && (200..300).contains(&reply.status) {
            reply = reply
                .with(headers::ERROR_CODE, &Hresult::E_ACCESSDENIED.to_string())
                .with(
                    headers::ERROR_CONTEXT,
                    &ErrorContext::REMOTE_APPLICATION.to_string(),
                );
        }
        reply
    };
    record.status = reply.status;
    let noack = q
        .get("noack")
        .map(|v| v.split_once(':').unwrap_or((v, "1")));
    if let (Some(p), Some((lost, k))) = (packet, noack) {
        let lost_so_far = b.acks_lost.entry(key.clone()).or_insert(0);
        if PacketType::parse(lost) == Some(p) && k.parse::<u32>().is_ok_and(|k| *lost_so_far < k) {
            *lost_so_far += 1;
            record.status = 0;
            b.packets.push(record);
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "losing the Ack on purpose",
            ));
        }
    }
    b.packets.push(record);
    Ok(ack_response(reply))
}
