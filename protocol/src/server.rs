//! The server's half of the protocol: request validation, the fragment rules and the Acks.
//!
//! The caller owns storage. It asks [`parse_request`] what a request is, consults its session
//! record, asks [`plan_fragment`] which bytes of a fragment are new, writes them, and answers with
//! the [`Reply`] built here, so every server (in memory or openbits-server) sends the same Acks.

use crate::error::{ErrorContext, Hresult};
use crate::headers::{self, PacketType};
use crate::range::{parse_u64, ContentRange};
use http::{HeaderMap, HeaderName, HeaderValue};

/// An Ack: status and headers; the body is always empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
}

impl Reply {
    pub fn ack(status: u16) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(headers::PACKET_TYPE),
            HeaderValue::from_static("Ack"),
        );
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        Reply { status, headers }
    }

    /// An error Ack: `BITS-Error-Code` (the name Windows uses) and `BITS-Error-Context`, always
    /// together ([MC-BUP] §2.2.1.2: the context is present iff the code is).
    pub fn error(status: u16, code: Hresult, context: ErrorContext) -> Reply {
        Reply::ack(status)
            .with(headers::ERROR_CODE, &code.to_string())
            .with(headers::ERROR_CONTEXT, &context.to_string())
    }

    /// 400 + E_INVALIDARG, context REMOTE_FILE: the answer to every malformed request.
    pub fn invalid() -> Reply {
        Reply::error(400, Hresult::E_INVALIDARG, ErrorContext::REMOTE_FILE)
    }

    /// 500 + BG_E_SESSION_NOT_FOUND ([MC-BUP] §3.2.5.2.3).
    pub fn session_not_found() -> Reply {
        Reply::error(
            500,
            Hresult::BG_E_SESSION_NOT_FOUND,
            ErrorContext::REMOTE_FILE,
        )
    }

    /// 413 + BG_E_TOO_LARGE: the entity exceeds the server's maximum upload size.
    pub fn too_large() -> Reply {
        Reply::error(413, Hresult::BG_E_TOO_LARGE, ErrorContext::REMOTE_FILE)
    }

    /// 416: out of sync; the client must continue at `received`.
    pub fn out_of_sync(received: u64) -> Reply {
        Reply::ack(416).with_received(received)
    }

    /// Adds `BITS-Received-Content-Range`, which every Ack to a Fragment of a known session
    /// carries, errors included, so that the client always learns where to continue.
    pub fn with_received(self, received: u64) -> Reply {
        self.with(headers::RECEIVED_CONTENT_RANGE, &received.to_string())
    }

    /// Adds a header. Values here are built by the server (ids, offsets, URLs it made), so an
    /// unrepresentable one is a bug; it is dropped rather than sending a broken header.
    pub fn with(mut self, name: &'static str, value: &str) -> Reply {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        headers::get(&self.headers, name)
    }
}

/// Whether a request is a BITS upload packet: `BITS_POST`, or `POST` with
/// `X-Http-Method-Override: BITS_POST`.
pub fn is_bits_request(method: &str, headers: &HeaderMap) -> bool {
    method.eq_ignore_ascii_case(headers::BITS_POST)
        || (method.eq_ignore_ascii_case("POST")
            && headers::get(headers, headers::X_HTTP_METHOD_OVERRIDE)
                .is_some_and(|m| m.eq_ignore_ascii_case(headers::BITS_POST)))
}

/// A validated upload request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub packet: PacketType,
    pub session_id: Option<String>,
    pub content_length: u64,
    /// Present (and consistent with `content_length`) for every Fragment.
    pub range: Option<ContentRange>,
}

/// Validates the headers of a BITS request ([MC-BUP] §3.2.5.2.3). Errors are the Ack to send.
pub fn parse_request(headers: &HeaderMap) -> Result<Request, Reply> {
    if headers::oversized_header(headers).is_some() {
        return Err(Reply::invalid());
    }
    let packet = match headers::packet_type(headers) {
        Some(PacketType::Ack) | None => return Err(Reply::invalid()),
        Some(p) => p,
    };
    // Windows answers a missing Content-Length with 400 where the spec says 411 ([MC-BUP] §6 <23>).
    let content_length = headers::get(headers, "content-length")
        .and_then(parse_u64)
        .ok_or_else(Reply::invalid)?;
    let session_id = headers::get(headers, headers::SESSION_ID).map(str::to_owned);
    if session_id
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > headers::MAX_SESSION_ID)
    {
        return Err(Reply::invalid());
    }
    let needs_session = matches!(
        packet,
        PacketType::Fragment | PacketType::CloseSession | PacketType::CancelSession
    );
    if needs_session && session_id.is_none() {
        return Err(Reply::invalid());
    }
    let mut range = None;
    if packet == PacketType::Fragment {
        let r = headers::get(headers, "content-range")
            .and_then(ContentRange::parse)
            .ok_or_else(Reply::invalid)?;
        if r.len() != content_length {
            return Err(Reply::invalid());
        }
        // Only identity is supported ([MC-BUP] §6 <12>); Windows never sends Content-Encoding.
        if headers::get(headers, "content-encoding")
            .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
        {
            return Err(Reply::invalid());
        }
        range = Some(r);
    }
    Ok(Request {
        packet,
        session_id,
        content_length,
        range,
    })
}

/// The protocol to use for a Create-Session, or the 400 / E_INVALIDARG / context 0x5 Ack when
/// the client offers none this server speaks.
pub fn negotiate(headers: &HeaderMap) -> Result<&'static str, Reply> {
    headers::get(headers, headers::SUPPORTED_PROTOCOLS)
        .and_then(headers::negotiate)
        .ok_or_else(Reply::invalid)
}

/// Host affinity announced in the Create-Session Ack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostId {
    pub name: String,
    pub fallback_timeout: Option<u64>,
}

/// The Create-Session Ack, as IIS writes it.
pub fn ack_create(session_id: &str, protocol: &str, host: Option<&HostId>) -> Reply {
    let mut r = Reply::ack(200)
        .with(headers::PROTOCOL, protocol)
        .with(headers::SESSION_ID, session_id)
        .with("accept-encoding", "identity");
    if let Some(h) = host {
        r = r.with(headers::HOST_ID, &h.name);
        if let Some(t) = h.fallback_timeout {
            r = r.with(headers::HOST_ID_FALLBACK_TIMEOUT, &t.to_string());
        }
    }
    r
}

/// What the server has of a session's entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Set by the first fragment; every later fragment must name the same total.
    pub total: Option<u64>,
    /// Bytes `0..received` are stored.
    pub received: u64,
}

/// What to do with a fragment's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentPlan {
    /// Skip the first `discard` bytes of the body (already stored), then store `len` bytes at
    /// `offset`; afterwards the session has received `offset + len`.
    Write {
        discard: u64,
        offset: u64,
        len: u64,
        total: u64,
    },
    /// Every byte is already stored: answer with the current offset (a resent fragment, or the
    /// last fragment resent after the reply was made).
    Duplicate,
}

/// Applies the fragment rules ([MC-BUP] §3.2.5.2.6): a gap is 416 with the next offset, an
/// overlap stores only the new bytes, a changed total is 400, a total over `max_size` is 413.
/// Every refusal carries `BITS-Received-Content-Range`, as every Ack to a Fragment must.
pub fn plan_fragment(
    range: ContentRange,
    progress: Progress,
    max_size: Option<u64>,
) -> Result<FragmentPlan, Reply> {
    if max_size.is_some_and(|m| range.total > m) {
        return Err(Reply::too_large().with_received(progress.received));
    }
    if progress.total.is_some_and(|t| t != range.total) {
        return Err(Reply::invalid().with_received(progress.received));
    }
    if range.first > progress.received {
        return Err(Reply::out_of_sync(progress.received));
    }
    if range.end() <= progress.received {
        return Ok(FragmentPlan::Duplicate);
    }
    let offset = progress.received;
    Ok(FragmentPlan::Write {
        discard: offset - range.first,
        offset,
        len: range.end() - offset,
        total: range.total,
    })
}

/// The Fragment Ack: always `BITS-Received-Content-Range`; `BITS-Reply-URL` only on the Ack of
/// the last fragment of an upload-reply session.
pub fn ack_fragment(session_id: &str, received: u64, reply_url: Option<&str>) -> Reply {
    let mut r = Reply::ack(200)
        .with(headers::SESSION_ID, session_id)
        .with(headers::RECEIVED_CONTENT_RANGE, &received.to_string());
    if let Some(u) = reply_url {
        r = r.with(headers::REPLY_URL, u);
    }
    r
}

/// The Ack to Ping, Close-Session and Cancel-Session.
pub fn ack_session(session_id: Option<&str>) -> Reply {
    match session_id {
        Some(id) => Reply::ack(200).with(headers::SESSION_ID, id),
        None => Reply::ack(200),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn requests_are_validated() {
        let ok = parse_request(&req(&[
            ("BITS-Packet-Type", "PING"),
            ("Content-Length", "0"),
        ]))
        .unwrap();
        assert_eq!(ok.packet, PacketType::Ping);
        for bad in [
            req(&[("Content-Length", "0")]),
            req(&[("BITS-Packet-Type", "Ack"), ("Content-Length", "0")]),
            req(&[("BITS-Packet-Type", "Dance"), ("Content-Length", "0")]),
            req(&[("BITS-Packet-Type", "Ping")]),
            req(&[
                ("BITS-Packet-Type", "Fragment"),
                ("Content-Length", "2"),
                ("BITS-Session-Id", "s"),
                ("Content-Range", "bytes 0-2/3"),
            ]),
            req(&[
                ("BITS-Packet-Type", "Fragment"),
                ("Content-Length", "3"),
                ("Content-Range", "bytes 0-2/3"),
            ]),
            req(&[
                ("BITS-Packet-Type", "Fragment"),
                ("Content-Length", "3"),
                ("BITS-Session-Id", "s"),
            ]),
            req(&[
                ("BITS-Packet-Type", "Fragment"),
                ("Content-Length", "3"),
                ("BITS-Session-Id", "s"),
                ("Content-Range", "bytes 0-2/3"),
                ("Content-Encoding", "gzip"),
            ]),
            req(&[
                ("BITS-Packet-Type", "Close-Session"),
                ("Content-Length", "0"),
            ]),
            req(&[
                ("BITS-Packet-Type", "Ping"),
                ("Content-Length", "0"),
                ("X-Big", &"a".repeat(4097)),
            ]),
            req(&[
                ("BITS-Packet-Type", "Cancel-Session"),
                ("Content-Length", "0"),
                ("BITS-Session-Id", &"a".repeat(101)),
            ]),
        ] {
            let r = parse_request(&bad).unwrap_err();
            assert_eq!(
                (
                    r.status,
                    r.header("bits-error-code"),
                    r.header("bits-error-context")
                ),
                (400, Some("0x80070057"), Some("0x5")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn method_override_is_accepted() {
        assert!(is_bits_request("BITS_POST", &HeaderMap::new()));
        assert!(is_bits_request(
            "POST",
            &req(&[("X-Http-Method-Override", "bits_post")])
        ));
        assert!(!is_bits_request("POST", &HeaderMap::new()));
        assert!(!is_bits_request(
            "GET",
            &req(&[("X-Http-Method-Override", "BITS_POST")])
        ));
    }

    #[test]
    fn fragment_rules() {
        let r = |a, b, t| ContentRange {
            first: a,
            last: b,
            total: t,
        };
        let p = |total, received| Progress { total, received };
        assert_eq!(
            plan_fragment(r(0, 9, 20), p(None, 0), None),
            Ok(FragmentPlan::Write {
                discard: 0,
                offset: 0,
                len: 10,
                total: 20
            })
        );
        assert_eq!(
            plan_fragment(r(5, 14, 20), p(Some(20), 10), None),
            Ok(FragmentPlan::Write {
                discard: 5,
                offset: 10,
                len: 5,
                total: 20
            })
        );
        assert_eq!(
            plan_fragment(r(0, 9, 20), p(Some(20), 10), None),
            Ok(FragmentPlan::Duplicate)
        );
        let gap = plan_fragment(r(11, 14, 20), p(Some(20), 10), None).unwrap_err();
        assert_eq!(
            (gap.status, gap.header("bits-received-content-range")),
            (416, Some("10"))
        );
        let changed = plan_fragment(r(10, 14, 21), p(Some(20), 10), None).unwrap_err();
        assert_eq!(
            (
                changed.status,
                changed.header("bits-received-content-range")
            ),
            (400, Some("10"))
        );
        let big = plan_fragment(r(0, 9, 20), p(None, 0), Some(19)).unwrap_err();
        assert_eq!(
            (
                big.status,
                big.header("bits-error-code"),
                big.header("bits-received-content-range")
            ),
            (413, Some("0x80200020"), Some("0"))
        );
        let big = plan_fragment(r(10, 19, 30), p(Some(30), 10), Some(29)).unwrap_err();
        assert_eq!(big.header("bits-received-content-range"), Some("10"));
        assert!(plan_fragment(r(0, 9, 20), p(None, 0), Some(20)).is_ok());
    }
}
