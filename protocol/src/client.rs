//! The client's half: a session state machine ([MC-BUP] §3.1) driven by an HTTP engine.
//!
//! The engine loops: [`ClientSession::next`] says what to do (send a request, download the
//! reply, stop); the engine does it and reports the answer with [`ClientSession::on_response`]
//! (or [`ClientSession::on_transport_error`], [`ClientSession::reply_downloaded`]); the returned
//! [`Event`] says what happened. Timers (retry delays, the Host-Id fall-back) belong to the
//! engine, which calls [`ClientSession::fall_back_to_origin`] when its fall-back timer expires.
//!
//! ```
//! use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
//! use openbits_protocol::memory::MemoryServer;
//!
//! let bytes = vec![7u8; 20_000];
//! let mut server = MemoryServer::new(); // stands in for HTTP here
//! let mut session = ClientSession::new(ClientConfig::new("http://host/up/file.bin", bytes.len() as u64));
//! loop {
//!     match session.next() {
//!         Next::Send(req) => {
//!             // An engine sends req.method to the URL (req.host replacing its host if set)
//!             // with req.headers and, for a Fragment, the bytes req.body names.
//!             let body = req.body.map_or(&[][..], |r| &bytes[r.first as usize..=r.last as usize]);
//!             let ack = server.handle(req.method, "/up/file.bin", &req.headers, body);
//!             match session.on_response(ack.status, &ack.headers) {
//!                 Event::Retry(_) => { /* wait the job's retry delay */ }
//!                 Event::Fatal(e) => panic!("{e}"),
//!                 _ => {}
//!             }
//!         }
//!         Next::DownloadReply { .. } => session.reply_downloaded(), // after a GET of the URL
//!         Next::Done => break,
//!         other => panic!("{other:?}"),
//!     }
//! }
//! assert_eq!(server.files["/up/file.bin"], bytes);
//! ```

use crate::error::{application_status_is_transient, ErrorContext, Hresult, ProtocolError};
use crate::headers::{self, PacketType, BITS_POST, PROTOCOL_GUID};
use crate::range::{parse_received, ContentRange};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Smallest fragment the client shrinks to after 413s ([MC-BUP] §6 <10>: 5 KB).
pub const MIN_FRAGMENT: u64 = 5 * 1024;
/// Largest fragment Windows (BITS 2.5+) sends ([MC-BUP] §6 <16>: 13 MB).
pub const MAX_FRAGMENT: u64 = 13 * 1024 * 1024;
/// First fragment size unless configured: large enough to amortise a round trip, small enough
/// that a lost connection costs little.
pub const DEFAULT_FRAGMENT: u64 = 1024 * 1024;
/// Reply URLs longer than this are refused ([MC-BUP] §2.2.1.2).
pub const MAX_REPLY_URL: usize = 2200;
/// 416s in a row that do not move the offset before the server is declared broken.
const MAX_STALLS: u32 = 3;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The remote name (`http://host/path/file`): reply URLs are resolved against it.
    pub url: String,
    /// Size of the entity to upload.
    pub total: u64,
    /// Upload-reply job: the last Ack must carry `BITS-Reply-URL`.
    pub upload_reply: bool,
    /// Local file name without its path; Windows sends it with every Fragment.
    pub content_name: Option<String>,
    /// First fragment size, clamped to `MIN_FRAGMENT..=MAX_FRAGMENT`.
    pub fragment_len: u64,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>, total: u64) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            total,
            upload_reply: false,
            content_name: None,
            fragment_len: DEFAULT_FRAGMENT,
        }
    }
}

/// A request for the engine to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Always `BITS_POST`; an engine configured for proxies that refuse extension methods may send
    /// `POST` with `X-Http-Method-Override: BITS_POST` instead.
    pub method: &'static str,
    pub packet: PacketType,
    /// Every header of the packet, `Content-Length` included.
    pub headers: HeaderMap,
    /// For a Fragment: the bytes of the local file to send as the body.
    pub body: Option<ContentRange>,
    /// When the server gave a `BITS-Host-Id`: the host to send to instead of the URL's.
    pub host: Option<String>,
}

/// What the engine should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    Send(Request),
    /// Download the reply (an ordinary GET, ranges allowed), then call `reply_downloaded`.
    DownloadReply {
        url: String,
    },
    /// The session is closed: the upload is in place on the server.
    Done,
    /// The session was cancelled (or never existed).
    Cancelled,
    /// A fatal error; the job goes to ERROR.
    Failed(ProtocolError),
}

/// What a response meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A Ping or control Ack that needs no attention.
    Continue,
    SessionCreated {
        id: String,
    },
    /// A fragment was acknowledged: the server has `0..received`.
    Progress {
        received: u64,
    },
    /// 416: the server expects `received` next (it may have moved backwards).
    Resync {
        received: u64,
    },
    /// The server lost the session (BG_E_SESSION_NOT_FOUND); a new one is created next.
    NewSession,
    /// 413: fragments are now `len` bytes.
    ShrinkFragment {
        len: u64,
    },
    /// 401 / 407: resend the same request with credentials (only once in a row).
    Authenticate {
        proxy: bool,
    },
    /// Every byte is acknowledged and the reply is at `url`.
    ReplyReady {
        url: String,
    },
    /// Transient: wait the retry delay, then call `next` again.
    Retry(ProtocolError),
    /// Fatal: the job goes to ERROR.
    Fatal(ProtocolError),
    Complete,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    CreateSession,
    Ping,
    Fragment,
    GetReply,
    CloseSession,
    CancelSession,
    Done,
    Cancelled,
    Failed(ProtocolError),
}

#[derive(Clone, Debug)]
pub struct ClientSession {
    cfg: ClientConfig,
    state: State,
    session_id: Option<String>,
    offset: u64,
    fragment_len: u64,
    host_id: Option<String>,
    host_id_fallback: Option<u64>,
    reply_url: Option<String>,
    /// The last request handed out and not yet answered.
    sent: Option<(PacketType, Option<ContentRange>)>,
    auth_retried: bool,
    close_attempts: u32,
    stalls: u32,
}

impl ClientSession {
    pub fn new(cfg: ClientConfig) -> ClientSession {
        let fragment_len = cfg.fragment_len.clamp(MIN_FRAGMENT, MAX_FRAGMENT);
        ClientSession {
            cfg,
            state: State::CreateSession,
            session_id: None,
            offset: 0,
            fragment_len,
            host_id: None,
            host_id_fallback: None,
            reply_url: None,
            sent: None,
            auth_retried: false,
            close_attempts: 0,
            stalls: 0,
        }
    }

    /// Continues a session stored by an earlier process: resumes with a Ping then a Fragment
    /// from `offset` (the server corrects the offset with 416 if it differs).
    pub fn resume(
        cfg: ClientConfig,
        session_id: String,
        offset: u64,
        host_id: Option<String>,
    ) -> ClientSession {
        let mut s = ClientSession::new(cfg);
        s.offset = offset.min(s.cfg.total);
        s.session_id = Some(session_id);
        s.host_id = host_id;
        s.state = State::Ping;
        if s.offset == s.cfg.total {
            // Every byte was acknowledged before the interruption, so a Close-Session may have
            // reached the server already (its Ack lost, or the process killed before it was
            // recorded): a "session not found" on the next Close is that Close's work done.
            s.close_attempts = 1;
        }
        s
    }

    /// For [`resume`](Self::resume) of an upload-reply whose reply URL the earlier process had
    /// recorded: once every byte is acknowledged the session fetches that reply, instead of
    /// resending the last byte to learn the URL again.
    pub fn with_reply_url(mut self, url: String) -> ClientSession {
        if self.cfg.upload_reply {
            self.reply_url = Some(url);
        }
        self
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    /// Bytes the server has acknowledged (the next fragment starts here).
    pub fn offset(&self) -> u64 {
        self.offset
    }
    pub fn total(&self) -> u64 {
        self.cfg.total
    }
    pub fn fragment_len(&self) -> u64 {
        self.fragment_len
    }
    /// The engine's choice for the next fragments (it measures the link), clamped to
    /// `MIN_FRAGMENT..=MAX_FRAGMENT`.
    pub fn set_fragment_len(&mut self, len: u64) {
        self.fragment_len = len.clamp(MIN_FRAGMENT, MAX_FRAGMENT);
    }
    pub fn host_id(&self) -> Option<&str> {
        self.host_id.as_deref()
    }
    /// `BITS-Host-Id-Fallback-Timeout` in seconds; None means never fall back.
    pub fn host_id_fallback_timeout(&self) -> Option<u64> {
        self.host_id_fallback
    }
    pub fn reply_url(&self) -> Option<&str> {
        self.reply_url.as_deref()
    }
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state,
            State::Done | State::Cancelled | State::Failed(_)
        )
    }

    /// What to do now. Calling it again before answering returns the same request.
    // Not an Iterator: the session never ends by returning None, and each step needs an answer.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next {
        let packet = match &self.state {
            State::Done => return Next::Done,
            State::Cancelled => return Next::Cancelled,
            State::Failed(e) => return Next::Failed(e.clone()),
            State::GetReply => match &self.reply_url {
                Some(url) => return Next::DownloadReply { url: url.clone() },
                None => {
                    return Next::Failed(ProtocolError::invalid_response(
                        PacketType::Fragment,
                        200,
                        "no reply URL",
                    ))
                }
            },
            State::CreateSession => PacketType::CreateSession,
            State::Ping => PacketType::Ping,
            State::Fragment => PacketType::Fragment,
            State::CloseSession => PacketType::CloseSession,
            State::CancelSession => PacketType::CancelSession,
        };
        let mut h = HeaderMap::new();
        put(&mut h, headers::PACKET_TYPE, packet.as_str());
        let mut body = None;
        match packet {
            PacketType::CreateSession => {
                put(&mut h, headers::SUPPORTED_PROTOCOLS, PROTOCOL_GUID);
                self.put_content_name(&mut h);
            }
            PacketType::Fragment => {
                let len = self.fragment_len.min(self.cfg.total - self.offset);
                // offset < total in this state, so the range is never empty.
                body = ContentRange::new(self.offset, len, self.cfg.total);
                if let Some(r) = body {
                    put(&mut h, "content-range", &r.to_string());
                }
                self.put_content_name(&mut h);
            }
            _ => {}
        }
        if packet != PacketType::CreateSession {
            if let Some(id) = &self.session_id {
                put(&mut h, headers::SESSION_ID, id);
            }
        }
        put(
            &mut h,
            "content-length",
            &body.map_or(0, |r| r.len()).to_string(),
        );
        if packet == PacketType::CloseSession {
            self.close_attempts += 1;
        }
        self.sent = Some((packet, body));
        let host = if packet == PacketType::CreateSession {
            None
        } else {
            self.host_id.clone()
        };
        Next::Send(Request {
            method: BITS_POST,
            packet,
            headers: h,
            body,
            host,
        })
    }

    fn put_content_name(&self, h: &mut HeaderMap) {
        if let Some(n) = &self.cfg.content_name {
            put(h, headers::CONTENT_NAME, n);
        }
    }

    /// The response to the request `next` returned.
    pub fn on_response(&mut self, status: u16, headers: &HeaderMap) -> Event {
        let Some((packet, body)) = self.sent.take() else {
            return Event::Continue;
        };
        if status == 401 || status == 407 {
            if !self.auth_retried {
                self.auth_retried = true;
                self.sent = Some((packet, body));
                return Event::Authenticate {
                    proxy: status == 407,
                };
            }
            return self.fail(ProtocolError::from_ack(packet, status, headers));
        }
        self.auth_retried = false;
        let ok = (200..300).contains(&status);
        if !ok && crate::error::error_code(headers) == Some(Hresult::BG_E_SESSION_NOT_FOUND) {
            return self.session_lost(packet, status, headers);
        }
        match packet {
            PacketType::Fragment if ok || status == 416 => {
                self.on_fragment_ack(status, headers, body)
            }
            PacketType::Fragment if status == 413 => {
                if self.fragment_len <= MIN_FRAGMENT {
                    let mut e = ProtocolError::from_ack(packet, status, headers);
                    e.code = Hresult::BG_E_TOO_LARGE;
                    return self.fail(e);
                }
                self.fragment_len = (self.fragment_len / 2).max(MIN_FRAGMENT);
                Event::ShrinkFragment {
                    len: self.fragment_len,
                }
            }
            _ if !ok => {
                let e = ProtocolError::from_ack(packet, status, headers);
                if is_transient(&e) {
                    Event::Retry(e)
                } else {
                    self.fail(e)
                }
            }
            PacketType::Ping => {
                self.state = match (&self.session_id, self.offset == self.cfg.total) {
                    (None, _) => State::CreateSession,
                    (Some(_), false) => State::Fragment,
                    // Everything was acknowledged before the interruption: only the reply (if
                    // any) and the close remain; a resent last fragment would be 416, not a reply.
                    (Some(_), true) if self.cfg.upload_reply && self.reply_url.is_some() => {
                        State::GetReply
                    }
                    (Some(_), true) if self.cfg.upload_reply && self.cfg.total > 0 => {
                        State::Fragment
                    }
                    (Some(_), true) => State::CloseSession,
                };
                if self.state == State::Fragment && self.offset == self.cfg.total {
                    // Upload-reply whose reply URL was lost: resend the last byte so the server
                    // answers again from its cached result.
                    self.offset -= 1;
                }
                Event::Continue
            }
            PacketType::CreateSession => self.on_create_ack(status, headers),
            PacketType::CloseSession => {
                self.state = State::Done;
                Event::Complete
            }
            PacketType::CancelSession => {
                self.state = State::Cancelled;
                Event::Cancelled
            }
            PacketType::Fragment | PacketType::Ack => Event::Continue,
        }
    }

    fn on_create_ack(&mut self, status: u16, headers: &HeaderMap) -> Event {
        let id = match headers::get(headers, headers::SESSION_ID) {
            Some(id) if !id.is_empty() && id.len() <= headers::MAX_SESSION_ID => id.to_owned(),
            _ => {
                return self.fail(ProtocolError::invalid_response(
                    PacketType::CreateSession,
                    status,
                    "no usable BITS-Session-Id",
                ))
            }
        };
        if let Some(p) = headers::get(headers, headers::PROTOCOL) {
            if headers::normalise_guid(p).as_deref() != Some(PROTOCOL_GUID) {
                return self.fail(ProtocolError::invalid_response(
                    PacketType::CreateSession,
                    status,
                    "unknown BITS-Protocol",
                ));
            }
        }
        self.host_id = headers::get(headers, headers::HOST_ID)
            .filter(|h| !h.is_empty())
            .map(str::to_owned);
        self.host_id_fallback =
            headers::get(headers, headers::HOST_ID_FALLBACK_TIMEOUT).and_then(parse_received);
        self.session_id = Some(id.clone());
        self.stalls = 0;
        self.close_attempts = 0;
        self.reply_url = None;
        self.state = if self.host_id.is_some() {
            State::Ping
        } else if self.cfg.total == 0 {
            self.zero_length_next()
        } else {
            // The offset is kept from the old session: a new session answers 416 with 0 and the
            // client resyncs ([MC-BUP] §3.1.5.1.4 keeps FRAGMENT-START-OFFSET across sessions).
            if self.offset >= self.cfg.total {
                self.offset = 0;
            }
            State::Fragment
        };
        Event::SessionCreated { id }
    }

    /// A zero-byte entity has no valid Content-Range; the session is closed straight away and the
    /// server places an empty file (how Windows does this is not documented).
    fn zero_length_next(&mut self) -> State {
        if self.cfg.upload_reply {
            State::Failed(ProtocolError::invalid_response(
                PacketType::CreateSession,
                0,
                "an upload-reply needs at least one byte",
            ))
        } else {
            State::CloseSession
        }
    }

    fn on_fragment_ack(
        &mut self,
        status: u16,
        headers: &HeaderMap,
        sent: Option<ContentRange>,
    ) -> Event {
        let received =
            match headers::get(headers, headers::RECEIVED_CONTENT_RANGE).and_then(parse_received) {
                Some(r) if r <= self.cfg.total => r,
                _ => {
                    return self.fail(ProtocolError::invalid_response(
                        PacketType::Fragment,
                        status,
                        "missing or invalid BITS-Received-Content-Range",
                    ))
                }
            };
        let before = self.offset;
        self.offset = received;
        if status == 416 {
            let stalled = sent.is_some_and(|r| r.first == received)
                || received == before && received != self.cfg.total;
            self.stalls = if stalled { self.stalls + 1 } else { 0 };
            if self.stalls >= MAX_STALLS {
                return self.fail(ProtocolError::invalid_response(
                    PacketType::Fragment,
                    status,
                    "416 without moving the offset",
                ));
            }
        } else {
            self.stalls = 0;
        }
        if received < self.cfg.total {
            self.state = State::Fragment;
            return if status == 416 {
                Event::Resync { received }
            } else {
                Event::Progress { received }
            };
        }
        if !self.cfg.upload_reply {
            self.state = State::CloseSession;
            return if status == 416 {
                Event::Resync { received }
            } else {
                Event::Progress { received }
            };
        }
        let Some(raw) = headers::get(headers, headers::REPLY_URL).filter(|u| !u.is_empty()) else {
            return self.fail(ProtocolError::invalid_response(
                PacketType::Fragment,
                status,
                "upload-reply without BITS-Reply-URL",
            ));
        };
        match resolve_reply_url(&self.base_url(), raw) {
            Some(url) => {
                self.reply_url = Some(url.clone());
                self.state = State::GetReply;
                Event::ReplyReady { url }
            }
            None => self.fail(ProtocolError::invalid_response(
                PacketType::Fragment,
                status,
                "unusable BITS-Reply-URL",
            )),
        }
    }

    /// Where to send the next packet: the upload URL, with the host replaced by the
    /// `BITS-Host-Id` while one is in force ([MC-BUP] §2.2.3.2).
    pub fn target_url(&self) -> String {
        self.base_url()
    }

    /// The upload URL with the Host-Id applied: where the server said it lives.
    fn base_url(&self) -> String {
        if let (Some(h), Ok(mut u)) = (&self.host_id, url::Url::parse(&self.cfg.url)) {
            if u.set_host(Some(h)).is_ok() {
                return u.to_string();
            }
        }
        self.cfg.url.clone()
    }

    fn session_lost(&mut self, packet: PacketType, status: u16, headers: &HeaderMap) -> Event {
        match packet {
            PacketType::CancelSession => {
                self.state = State::Cancelled;
                Event::Cancelled
            }
            // A resent Close whose first attempt reached the server finds no session: the first
            // one placed the file and its Ack was lost.
            PacketType::CloseSession if self.close_attempts > 1 => {
                self.state = State::Done;
                Event::Complete
            }
            PacketType::CreateSession => {
                self.fail(ProtocolError::from_ack(packet, status, headers))
            }
            _ => {
                self.session_id = None;
                self.reply_url = None;
                self.state = State::CreateSession;
                Event::NewSession
            }
        }
    }

    /// The connection failed or timed out before an answer. The request is repeated; after an
    /// interrupted fragment the session is resumed with a Ping first ([MC-BUP] §3.1.5.1.1).
    pub fn on_transport_error(&mut self, why: &str) -> Event {
        let packet = self.sent.take().map_or(PacketType::Ping, |(p, _)| p);
        if packet == PacketType::Fragment && self.session_id.is_some() {
            self.state = State::Ping;
        }
        Event::Retry(ProtocolError {
            packet,
            status: 0,
            code: Hresult::http(0),
            context: ErrorContext::REMOTE_FILE,
            message: format!("{packet}: {why}"),
        })
    }

    /// The reply was downloaded; the session can be closed.
    pub fn reply_downloaded(&mut self) {
        if self.state == State::GetReply {
            self.state = State::CloseSession;
        }
    }

    /// The user cancelled the job: Cancel-Session if there is a session, else done.
    pub fn cancel(&mut self) {
        if matches!(self.state, State::Done | State::Cancelled) {
            return;
        }
        self.state = if self.session_id.is_some() {
            State::CancelSession
        } else {
            State::Cancelled
        };
    }

    /// The Host-Id fall-back timer expired: go back to the URL's own host, where the session
    /// does not exist, and start a new one.
    pub fn fall_back_to_origin(&mut self) {
        if self.host_id.take().is_some() && !self.is_finished() {
            self.session_id = None;
            self.host_id_fallback = None;
            self.reply_url = None;
            self.state = State::CreateSession;
        }
    }

    fn fail(&mut self, e: ProtocolError) -> Event {
        self.state = State::Failed(e.clone());
        Event::Fatal(e)
    }
}

/// The transient/fatal split ([MC-BUP] §3.1.5.2.1, [U8], [U11] for the server application).
fn is_transient(e: &ProtocolError) -> bool {
    if e.context == ErrorContext::REMOTE_APPLICATION {
        return application_status_is_transient(e.status);
    }
    match e.status {
        408 | 429 => true,
        501 | 505 => false,
        500..=599 => {
            e.code != Hresult::BG_E_TOO_LARGE
                && e.code != Hresult::E_INVALIDARG
                && e.code != Hresult::E_ACCESSDENIED
        }
        _ => false,
    }
}

fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    // Values come from the job (URL-safe ids, numbers, the file name): a name the header
    // cannot carry is left out, as Content-Name is optional and the rest are ASCII.
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Resolves a `BITS-Reply-URL` the way Windows does: backslashes become slashes, a relative
/// reference is resolved against the upload URL, `{` and `}` are percent-encoded.
pub fn resolve_reply_url(base: &str, reply: &str) -> Option<String> {
    if reply.len() > MAX_REPLY_URL {
        return None;
    }
    let reply = reply.replace('\\', "/");
    let base = url::Url::parse(base).ok()?;
    let u = base.join(&reply).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_urls_resolve_like_windows() {
        let base = "http://frankcao8/upload/2000mb-rfc2119.txt";
        assert_eq!(
            resolve_reply_url(base, r"BITS-Sessions\Replies\{C85B}\responsefile.bin").as_deref(),
            Some("http://frankcao8/upload/BITS-Sessions/Replies/%7BC85B%7D/responsefile.bin")
        );
        assert_eq!(
            resolve_reply_url(base, "/r/1").as_deref(),
            Some("http://frankcao8/r/1")
        );
        assert_eq!(
            resolve_reply_url(base, "https://other/x?y=1").as_deref(),
            Some("https://other/x?y=1")
        );
        assert_eq!(resolve_reply_url(base, "file:///etc/passwd"), None);
        assert_eq!(resolve_reply_url(base, &"a".repeat(2201)), None);
    }

    #[test]
    fn fragments_are_clamped_to_the_windows_bounds() {
        let mut c = ClientConfig::new("http://h/f", 100);
        c.fragment_len = 1;
        assert_eq!(ClientSession::new(c.clone()).fragment_len(), MIN_FRAGMENT);
        c.fragment_len = u64::MAX;
        assert_eq!(ClientSession::new(c).fragment_len(), MAX_FRAGMENT);
    }
}
