//! Response bodies and single-range GET/HEAD serving (downloads and replies).

use crate::store::{ByteStream, Error, FileInfo};
use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::{HeaderMap, Response, StatusCode};
use std::time::SystemTime;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn stream(s: ByteStream) -> Body {
    StreamBody::new(
        s.map_ok(Frame::data)
            .map_err(|e: Error| std::io::Error::other(e.to_string())),
    )
    .boxed_unsync()
}

/// What a GET/HEAD with these headers should return for a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    NotModified,
    Full,
    Partial { start: u64, end: u64 },
    Unsatisfiable,
}

pub fn plan(headers: &HeaderMap, info: &FileInfo) -> Plan {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(inm) = get("if-none-match") {
        if inm
            .split(',')
            .any(|t| t.trim() == info.etag || t.trim() == "*")
        {
            return Plan::NotModified;
        }
    } else if let Some(ims) =
        get("if-modified-since").and_then(|d| httpdate::parse_http_date(d).ok())
    {
        if truncate(info.modified) <= ims {
            return Plan::NotModified;
        }
    }
    let Some(range) = get("range") else {
        return Plan::Full;
    };
    // If-Range: the range applies only to the representation the client already has.
    if let Some(ir) = get("if-range") {
        let same = ir == info.etag
            || httpdate::parse_http_date(ir).is_ok_and(|d| d == truncate(info.modified));
        if !same {
            return Plan::Full;
        }
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Plan::Full;
    };
    if spec.contains(',') {
        // Only single ranges are served; RFC 9110 allows ignoring Range altogether.
        return Plan::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let num = |s: &str| openbits_protocol::range::parse_u64(s);
    let len = info.len;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) | None => return Plan::Unsatisfiable,
            Some(n) => (len.saturating_sub(n), len),
        },
        (s, "") => match num(s) {
            Some(s) => (s, len),
            None => return Plan::Full,
        },
        (s, e) => match (num(s), num(e)) {
            // `bytes=0-18446744073709551615` is legal: the last byte of the largest file.
            (Some(s), Some(e)) if s <= e => (s, e.saturating_add(1).min(len)),
            _ => return Plan::Full,
        },
    };
    if start >= len {
        return Plan::Unsatisfiable;
    }
    Plan::Partial { start, end }
}

fn truncate(t: SystemTime) -> SystemTime {
    httpdate::parse_http_date(&httpdate::fmt_http_date(t)).unwrap_or(t)
}

/// A response head for a file; the caller adds the body (bytes `range`) for GET.
pub struct Head {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub range: Option<(u64, u64)>,
}

pub fn head(info: &FileInfo, plan: &Plan) -> Head {
    let (status, headers, range) = head_parts(info, plan);
    Head {
        status,
        headers,
        range,
    }
}

type Parts = (StatusCode, Vec<(&'static str, String)>, Option<(u64, u64)>);

fn head_parts(info: &FileInfo, plan: &Plan) -> Parts {
    let mut h = vec![
        ("accept-ranges", "bytes".to_owned()),
        ("etag", info.etag.clone()),
        ("last-modified", httpdate::fmt_http_date(info.modified)),
    ];
    match *plan {
        Plan::NotModified => (StatusCode::NOT_MODIFIED, h, None),
        Plan::Unsatisfiable => {
            h.push(("content-range", format!("bytes */{}", info.len)));
            h.push(("content-length", "0".into()));
            (StatusCode::RANGE_NOT_SATISFIABLE, h, None)
        }
        Plan::Full => {
            h.push(("content-length", info.len.to_string()));
            (StatusCode::OK, h, Some((0, info.len)))
        }
        Plan::Partial { start, end } => {
            h.push((
                "content-range",
                format!("bytes {}-{}/{}", start, end - 1, info.len),
            ));
            h.push(("content-length", (end - start).to_string()));
            (StatusCode::PARTIAL_CONTENT, h, Some((start, end)))
        }
    }
}

pub fn response(
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Body,
) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn single_ranges_and_validators() {
        let info = FileInfo {
            len: 100,
            modified: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
            etag: "\"e\"".into(),
        };
        assert_eq!(plan(&with(&[]), &info), Plan::Full);
        assert_eq!(
            plan(&with(&[("range", "bytes=0-9")]), &info),
            Plan::Partial { start: 0, end: 10 }
        );
        assert_eq!(
            plan(&with(&[("range", "bytes=90-")]), &info),
            Plan::Partial {
                start: 90,
                end: 100
            }
        );
        assert_eq!(
            plan(&with(&[("range", "bytes=-5")]), &info),
            Plan::Partial {
                start: 95,
                end: 100
            }
        );
        assert_eq!(
            plan(&with(&[("range", "bytes=50-500")]), &info),
            Plan::Partial {
                start: 50,
                end: 100
            }
        );
        assert_eq!(
            plan(&with(&[("range", "bytes=100-")]), &info),
            Plan::Unsatisfiable
        );
        assert_eq!(
            plan(&with(&[("range", "bytes=0-1,5-6")]), &info),
            Plan::Full
        );
        assert_eq!(
            plan(&with(&[("if-none-match", "\"e\"")]), &info),
            Plan::NotModified
        );
        assert_eq!(
            plan(
                &with(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
                &info
            ),
            Plan::Full
        );
        assert_eq!(
            plan(
                &with(&[("range", "bytes=0-9"), ("if-range", "\"e\"")]),
                &info
            ),
            Plan::Partial { start: 0, end: 10 }
        );
        let date = httpdate::fmt_http_date(info.modified);
        assert_eq!(
            plan(&with(&[("if-modified-since", &date)]), &info),
            Plan::NotModified
        );
    }
}
