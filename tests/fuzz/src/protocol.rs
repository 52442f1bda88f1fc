//! Target `upload_protocol`: the BITS upload protocol's two state machines fed by the fuzzer. A
//! client session gets a fuzzed answer to each request it makes (or a transport error, a cancel,
//! a Host-Id fall-back); the in-memory server gets fuzzed requests, with the session id it handed
//! out spliced back in; and the server's fragment rules get fuzzed ranges and progress.

use crate::input;
use arbitrary::{Result, Unstructured};
use http::{HeaderMap, HeaderValue};
use openbits_protocol::client::{
    ClientConfig, ClientSession, Event, Next, MAX_FRAGMENT, MIN_FRAGMENT,
};
use openbits_protocol::headers::{self as h, PROTOCOL_GUID};
use openbits_protocol::memory::MemoryServer;
use openbits_protocol::server::{self, FragmentPlan, Progress};
use openbits_protocol::ContentRange;

const STATUSES: &[u16] = &[200, 201, 400, 401, 404, 407, 413, 416, 500, 501, 503];
const NAMES: &[&str] = &[
    h::PACKET_TYPE,
    h::SESSION_ID,
    h::PROTOCOL,
    h::SUPPORTED_PROTOCOLS,
    h::RECEIVED_CONTENT_RANGE,
    h::REPLY_URL,
    h::ERROR_CODE,
    h::ERROR_CODE_SPEC,
    h::ERROR_CONTEXT,
    h::HOST_ID,
    h::HOST_ID_FALLBACK_TIMEOUT,
    "content-length",
    "content-range",
    "content-encoding",
    h::X_HTTP_METHOD_OVERRIDE,
];
/// Where the fuzzer puts the session id the server handed out.
const SESSION: &str = "{SESSION}";
const TOKENS: &[&str] = &[
    "Ack",
    "Ping",
    "Create-Session",
    "Fragment",
    "Close-Session",
    "Cancel-Session",
    PROTOCOL_GUID,
    "0x8020001F",
    "0x5",
    "0x7",
    "reply.bin",
    "http://other/reply",
    "..\\x",
    "otherhost",
    SESSION,
    "identity",
    "BITS_POST",
];

pub fn upload_protocol(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = match u.int_in_range(0..=2) {
        Ok(0) => client(&mut u),
        Ok(1) => memory_server(&mut u),
        Ok(_) => fragment_rules(&mut u),
        Err(e) => Err(e),
    };
}

fn client(u: &mut Unstructured) -> Result<()> {
    let total = input::number(u)?;
    let mut cfg = ClientConfig::new(
        *u.choose(&[
            "http://host/up/file.bin",
            "https://h:1/a/b?c",
            "http://[::1]/x",
        ])?,
        total,
    );
    cfg.upload_reply = u.arbitrary()?;
    cfg.content_name = u.arbitrary()?;
    cfg.fragment_len = input::number(u)?;
    let mut s = if u.arbitrary()? {
        ClientSession::resume(cfg, u.arbitrary()?, input::number(u)?, u.arbitrary()?)
    } else {
        ClientSession::new(cfg)
    };
    for _ in 0..64 {
        check_client(&s);
        match s.next() {
            Next::Send(req) => {
                let len = req
                    .headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok());
                let body_len = req.body.map_or(0, |r| r.len());
                assert_eq!(len, Some(body_len.to_string().as_str()), "{req:?}");
                if let Some(r) = req.body {
                    assert!(r.first == s.offset() && r.end() <= total, "{req:?}");
                    assert!(r.len() <= s.fragment_len(), "{req:?}");
                }
                match u.int_in_range(0..=9)? {
                    0 => {
                        let _ = s.on_transport_error("fuzzed");
                    }
                    1 => s.cancel(),
                    2 => s.fall_back_to_origin(),
                    _ => {
                        let status = input::status(u, STATUSES)?;
                        let headers = input::headers(u, NAMES, TOKENS, 6)?;
                        let before = s.fragment_len();
                        if let Event::ShrinkFragment { len } = s.on_response(status, &headers) {
                            assert!(len < before && len == s.fragment_len());
                        }
                    }
                }
            }
            Next::DownloadReply { url } => {
                assert!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "{url}"
                );
                if u.arbitrary()? {
                    s.reply_downloaded();
                } else {
                    s.cancel();
                }
            }
            Next::Done | Next::Cancelled | Next::Failed(_) => {
                // A finished session stays finished.
                let again = s.next();
                assert!(
                    matches!(again, Next::Done | Next::Cancelled | Next::Failed(_)),
                    "{again:?}"
                );
                return Ok(());
            }
        }
    }
    Ok(())
}

fn check_client(s: &ClientSession) {
    assert!(
        s.offset() <= s.total(),
        "offset {} of {}",
        s.offset(),
        s.total()
    );
    assert!((MIN_FRAGMENT..=MAX_FRAGMENT).contains(&s.fragment_len()));
}

fn memory_server(u: &mut Unstructured) -> Result<()> {
    let mut srv = MemoryServer::new();
    srv.allow_overwrites = u.arbitrary()?;
    srv.max_size = u.arbitrary()?;
    let mut session = String::new();
    for _ in 0..u.int_in_range(1..=12)? {
        let method = *u.choose(&["BITS_POST", "bits_post", "POST", "GET"])?;
        let path = *u.choose(&["/up/a.bin", "/up/b.bin", "/"])?;
        let mut headers = input::headers(u, NAMES, TOKENS, 8)?;
        splice_session(&mut headers, &session);
        let body: &[u8] = u.arbitrary()?;
        let reply = srv.handle(method, path, &headers, body);
        assert!((100..600).contains(&reply.status), "{reply:?}");
        assert!(
            reply.header(h::ERROR_CODE).is_some() == reply.header(h::ERROR_CONTEXT).is_some(),
            "error code and context go together: {reply:?}"
        );
        if let Some(id) = reply.header(h::SESSION_ID) {
            session = id.to_owned();
        }
    }
    for s in srv.sessions.values() {
        if let Some(t) = s.total {
            assert!(s.data.len() as u64 <= t, "stored past the total");
        }
    }
    Ok(())
}

/// Replaces the `{SESSION}` token in header values by the id the server gave.
fn splice_session(headers: &mut HeaderMap, session: &str) {
    for v in headers.values_mut() {
        if let Ok(text) = v.to_str() {
            if text.contains(SESSION) {
                if let Ok(new) = HeaderValue::from_str(&text.replace(SESSION, session)) {
                    *v = new;
                }
            }
        }
    }
}

fn fragment_rules(u: &mut Unstructured) -> Result<()> {
    let headers = input::headers(u, NAMES, TOKENS, 8)?;
    if let Ok(req) = server::parse_request(&headers) {
        if let Some(r) = req.range {
            assert_eq!(r.len(), req.content_length);
        }
    }
    let (first, len, total) = (input::number(u)?, input::number(u)?, input::number(u)?);
    let Some(range) = ContentRange::new(first, len, total) else {
        return Ok(());
    };
    let progress = Progress {
        total: u.arbitrary()?,
        received: input::number(u)?,
    };
    let max_size: Option<u64> = u.arbitrary()?;
    if let Ok(FragmentPlan::Write {
        discard,
        offset,
        len,
        total,
    }) = server::plan_fragment(range, progress, max_size)
    {
        // The new bytes are the range's tail, right after what the server has.
        assert_eq!(offset, progress.received);
        assert_eq!(discard + len, range.len());
        assert_eq!(offset + len, range.end());
        assert_eq!(total, range.total);
    }
    Ok(())
}
