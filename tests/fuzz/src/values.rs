//! Target `header_values`: the header values both halves parse on their own: Content-Range (the
//! download engine's and the upload protocol's), Retry-After and HTTP dates, the upload protocol's
//! numbers, GUID lists, error codes and packet types, and the server's Range handling.

use arbitrary::{Result, Unstructured};
use http::{HeaderMap, HeaderValue};
use openbits_core::fuzzing::{self, MAX_RETRY_AFTER_MS};
use openbits_protocol::{headers, range, ContentRange, ErrorContext, Hresult, PacketType};
use openbits_server::body::{self, Plan};
use openbits_server::store::FileInfo;
use std::time::{Duration, UNIX_EPOCH};

pub fn header_values(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}

fn run(u: &mut Unstructured) -> Result<()> {
    let now = UNIX_EPOCH + Duration::from_secs(u.arbitrary::<u32>()?.into());
    let text: &str = u.arbitrary()?;

    if let Ok(v) = HeaderValue::from_str(text) {
        if let Some((first, last, total)) = fuzzing::content_range(&v) {
            assert!(first <= last && last < total, "{text:?}");
            let again = HeaderValue::from_str(&format!("bytes {first}-{last}/{total}"))
                .ok()
                .and_then(|v| fuzzing::content_range(&v));
            assert_eq!(again, Some((first, last, total)), "{text:?}");
        }
    }
    if let Some(r) = ContentRange::parse(text) {
        assert!(
            r.first <= r.last && r.last < r.total && !r.is_empty(),
            "{text:?}"
        );
        assert_eq!(ContentRange::parse(&r.to_string()), Some(r), "{text:?}");
    }

    if let Some(ms) = fuzzing::retry_after_ms(text, now) {
        assert!(ms <= MAX_RETRY_AFTER_MS, "{text:?}: {ms}");
    }
    if let Ok(at) = httpdate::parse_http_date(text) {
        assert_eq!(
            httpdate::parse_http_date(&httpdate::fmt_http_date(at)).ok(),
            Some(at),
            "{text:?}"
        );
    }

    if let Some(n) = range::parse_received(text) {
        assert_eq!(n.to_string().parse::<u64>(), Ok(n));
    }
    let list = headers::parse_protocol_list(text);
    assert!(list.len() <= headers::MAX_PROTOCOLS);
    for g in &list {
        assert_eq!(headers::normalise_guid(g).as_ref(), Some(g), "{text:?}");
    }
    let _ = headers::negotiate(text);
    if let Some(p) = PacketType::parse(text) {
        assert_eq!(PacketType::parse(p.as_str()), Some(p));
    }
    let _ = Hresult::parse(text);
    let _ = ErrorContext::parse(text);

    // The server's single-range GET/HEAD answer to this Range (and If-Range) for a file.
    let info = FileInfo {
        len: crate::input::number(u)?,
        modified: now,
        etag: "\"e\"".into(),
    };
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(text) {
        h.insert("range", v);
    }
    if u.arbitrary()? {
        let ir = if u.arbitrary()? {
            httpdate::fmt_http_date(now)
        } else {
            info.etag.clone()
        };
        if let Ok(v) = HeaderValue::from_str(&ir) {
            h.insert("if-range", v);
        }
    }
    if let Plan::Partial { start, end } = body::plan(&h, &info) {
        assert!(
            start <= end && end <= info.len,
            "{text:?}: {start}-{end} of {}",
            info.len
        );
    }
    Ok(())
}
