//! What a response means: the pure decisions of the HTTP resume logic (`evaluate` for a whole
//! file, `evaluate_range` for AddFileWithRanges), the headers a request for some bytes carries, and
//! the parsing they need. No I/O here: everything is tested on its own below.

use crate::hresult::{self as hr, HResult};
use crate::policy::hosts::MAX_RETRY_AFTER_MS;
use crate::state::ErrorContext;
use crate::transfer::Failure;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::StatusCode;

/// What a response means for the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write the body at `start`; it ends before `end`; the file has `total` bytes.
    Write {
        start: u64,
        end: u64,
        total: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// Dynamic content without a length: write the whole body from 0, until it ends.
    WriteToEnd {
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The partial content cannot be continued: truncate and ask for the whole file.
    Restart(String),
    Fail(Failure),
}

/// Decides what to do with a response to a request for the file from `offset` (0: no Range sent).
/// `known_total` and `known_etag` describe the bytes already on disk; `dynamic` is the job's
/// BITS_JOB_PROPERTY_DYNAMIC_CONTENT.
pub(crate) fn evaluate(
    status: u16,
    headers: &HeaderMap,
    offset: u64,
    known_total: Option<u64>,
    known_etag: Option<&str>,
    dynamic: bool,
) -> Decision {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = text(header::ETAG);
    let last_modified = text(header::LAST_MODIFIED);
    let length = content_length(headers);
    let invalid = |why: String| {
        Decision::Fail(Failure::transient(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            why,
        ))
    };
    if let Some(f) = encoded(status, headers) {
        return Decision::Fail(f);
    }
    match status {
        200 => {
            // A 200 that carries a partial Content-Range is a mislabelled 206; writing it at 0 corrupts.
            if let Some(cr) = headers.get(header::CONTENT_RANGE) {
                if parse_content_range(cr).is_none_or(|(start, _, _)| start != 0) {
                    return Decision::Restart("200 response with a partial Content-Range".into());
                }
            }
            match length {
                Ok(Some(len)) => Decision::Write {
                    start: 0,
                    end: len,
                    total: len,
                    etag,
                    last_modified,
                },
                Ok(None) if dynamic => Decision::WriteToEnd {
                    etag,
                    last_modified,
                },
                Ok(None) => Decision::Fail(Failure::fatal(
                    ErrorContext::RemoteFile,
                    hr::E_MISSING_FILE_SIZE,
                    "the server did not send the file size (Content-Length)",
                )),
                Err(why) => invalid(why),
            }
        }
        206 => {
            if offset == 0 {
                return invalid("206 Partial Content to a request without Range".into());
            }
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if content_type.to_ascii_lowercase().starts_with("multipart/") {
                return Decision::Restart(
                    "multipart 206 response to a single-range request".into(),
                );
            }
            let Some((start, last, total)) = headers
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range)
            else {
                return Decision::Restart("206 response without a usable Content-Range".into());
            };
            if start != offset {
                return Decision::Restart(format!(
                    "206 response starts at byte {start}, requested {offset}"
                ));
            }
            if known_total.is_some_and(|t| t != total) {
                return Decision::Restart(format!("the file's size changed to {total} bytes"));
            }
            if let (Some(known), Some(now)) = (known_etag, etag.as_deref()) {
                if known != now {
                    return Decision::Restart("the file's ETag changed".into());
                }
            }
            match length {
                Ok(Some(len)) if len != last - start + 1 => invalid(format!(
                    "206 Content-Length {len} does not match Content-Range {start}-{last}"
                )),
                Err(why) => invalid(why),
                _ => Decision::Write {
                    start,
                    end: last + 1,
                    total,
                    etag: etag.or_else(|| known_etag.map(str::to_owned)),
                    last_modified,
                },
            }
        }
        412 | 416 => Decision::Restart(format!(
            "the server answered {status} to the resume request"
        )),
        _ => Decision::Fail(status_failure(status, headers)),
    }
}

/// openbits asks for identity (`Accept-Encoding: identity`): a success whose body is encoded
/// (gzip, …) does not hold the file's bytes, and writing it would corrupt the file.
fn encoded(status: u16, headers: &HeaderMap) -> Option<Failure> {
    let coding = headers.get(header::CONTENT_ENCODING)?;
    let coding = String::from_utf8_lossy(coding.as_bytes());
    if !(200..300).contains(&status) || coding.trim().eq_ignore_ascii_case("identity") {
        return None;
    }
    Some(Failure::transient(
        ErrorContext::RemoteFile,
        hr::E_INVALID_SERVER_RESPONSE,
        format!("the server sent the file encoded (Content-Encoding: {coding}), not as asked (identity)"),
    ))
}

/// 408, 429 and 5xx are worth retrying; any other status the resume logic does not handle is fatal.
/// A 429 or 503 with Retry-After says when to retry.
pub(super) fn status_failure(status: u16, headers: &HeaderMap) -> Failure {
    let f = if matches!(status, 408 | 429 | 500..=599) {
        Failure::transient
    } else {
        Failure::fatal
    };
    let mut failure = f(
        ErrorContext::RemoteFile,
        HResult::http(status),
        status_text(status),
    );
    failure.retry_after_ms = told_retry_after(status, headers);
    failure
}

/// When a 429 or 503 says to come back (Retry-After), in ms from now.
pub(crate) fn told_retry_after(status: u16, headers: &HeaderMap) -> Option<u64> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after_ms(v, std::time::SystemTime::now()))
}

/// Retry-After: delay-seconds or an HTTP date, as milliseconds from `now`, at most
/// `MAX_RETRY_AFTER_MS`. None for anything else (the job's own retry delay applies).
pub(crate) fn retry_after_ms(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let value = value.trim();
    let ms = if let Ok(secs) = value.parse::<u64>() {
        secs.saturating_mul(1000)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).map_or(0, |d| d.as_millis() as u64)
    };
    Some(ms.min(MAX_RETRY_AFTER_MS))
}

/// What a response to a request for a byte range of the file (AddFileWithRanges) means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeDecision {
    /// Write the body: it holds bytes `start..=last` of a remote file of `total` bytes.
    Write {
        start: u64,
        last: u64,
        total: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The remote file changed (an If-Range failed, or another ETag): every range starts again.
    Restart(String),
    Fail(Failure),
}

/// Decides what to do with a response to a request for `want`; `sent_if_range` says whether the
/// request carried If-Range (then a 200 means "changed", else "no range support").
pub(crate) fn evaluate_range(
    status: u16,
    headers: &HeaderMap,
    want: Want,
    known_etag: Option<&str>,
    sent_if_range: bool,
) -> RangeDecision {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = text(header::ETAG);
    let invalid = |why: String| {
        RangeDecision::Fail(Failure::transient(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            why,
        ))
    };
    if let Some(f) = encoded(status, headers) {
        return RangeDecision::Fail(f);
    }
    match status {
        206 => {
            let Some((start, last, total)) = headers
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range)
            else {
                return invalid("206 response without a single usable Content-Range".into());
            };
            if start != want.from || want.to.is_some_and(|to| last > to) {
                return invalid(format!(
                    "206 response holds bytes {start}-{last}, not the range asked for"
                ));
            }
            if let (Some(known), Some(now)) = (known_etag, etag.as_deref()) {
                if known != now {
                    return RangeDecision::Restart("the file's ETag changed".into());
                }
            }
            match content_length(headers) {
                Ok(Some(len)) if len != last - start + 1 => invalid(format!(
                    "206 Content-Length {len} does not match Content-Range {start}-{last}"
                )),
                Err(why) => invalid(why),
                _ => RangeDecision::Write {
                    start,
                    last,
                    total,
                    etag: etag.or_else(|| known_etag.map(str::to_owned)),
                    last_modified: text(header::LAST_MODIFIED),
                },
            }
        }
        200 if sent_if_range => RangeDecision::Restart("the file changed on the server".into()),
        200 => RangeDecision::Fail(Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INSUFFICIENT_RANGE_SUPPORT,
            "the server does not support byte ranges",
        )),
        416 => RangeDecision::Fail(Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALID_RANGE,
            format!(
                "the range from byte {} is outside the remote file",
                want.from
            ),
        )),
        412 => RangeDecision::Restart("the server answered 412 to the range request".into()),
        _ => RangeDecision::Fail(status_failure(status, headers)),
    }
}

pub(super) fn status_text(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("HTTP {status} {reason}").trim_end().to_string()
}

/// Content-Length: Ok(None) when absent; an error when present but not one number.
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &HeaderValue| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
    let n = parse(first).ok_or("malformed Content-Length")?;
    if values.any(|v| parse(v) != Some(n)) {
        return Err("conflicting Content-Length headers".into());
    }
    Ok(Some(n))
}

/// `bytes first-last/total` with a known total; None for anything else (including `*` totals).
pub(crate) fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let (first, last, total) = (
        first.trim().parse::<u64>().ok()?,
        last.trim().parse::<u64>().ok()?,
        total.trim().parse::<u64>().ok()?,
    );
    (first <= last && last < total).then_some((first, last, total))
}

/// Headers for a request of the file from `offset`.
/// The bytes a request asks for: `from` to `to` inclusive (None: to the end of the file).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    pub from: u64,
    pub to: Option<u64>,
}

impl Want {
    pub(crate) fn rest_from(from: u64) -> Want {
        Want { from, to: None }
    }
}

/// Headers for a request of `want`. A Range header goes out whenever less than the whole file is
/// wanted; If-Range with it when the bytes on disk have a validator.
pub(crate) fn resume_headers(
    want: Want,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Vec<(header::HeaderName, String)> {
    let mut h = vec![(header::ACCEPT_ENCODING, "identity".to_string())];
    if want.from > 0 || want.to.is_some() {
        let range = match want.to {
            Some(to) => format!("bytes={}-{to}", want.from),
            None => format!("bytes={}-", want.from),
        };
        h.push((header::RANGE, range));
        if let Some(v) = if_range(etag, last_modified) {
            h.push((header::IF_RANGE, v.to_string()));
        }
    }
    h
}

/// A weak ETag may not be used with If-Range (RFC 9110 §13.1.5); Last-Modified then stands in.
pub(crate) fn if_range<'a>(
    etag: Option<&'a str>,
    last_modified: Option<&'a str>,
) -> Option<&'a str> {
    etag.filter(|e| !e.starts_with("W/")).or(last_modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    /// The decision for a job without dynamic content.
    fn evaluate(
        status: u16,
        headers: &HeaderMap,
        offset: u64,
        total: Option<u64>,
        etag: Option<&str>,
    ) -> Decision {
        super::evaluate(status, headers, offset, total, etag, false)
    }

    #[test]
    fn an_encoded_body_is_not_the_file() {
        let gz = h(&[("content-length", "3"), ("content-encoding", "gzip")]);
        let Decision::Fail(f) = super::evaluate(200, &gz, 0, None, None, false) else {
            panic!("gzip accepted")
        };
        assert_eq!(f.code, hr::E_INVALID_SERVER_RESPONSE);
        assert!(f.description.contains("gzip"), "{}", f.description);
        let id = h(&[("content-length", "3"), ("content-encoding", "Identity")]);
        assert_eq!(
            super::evaluate(200, &id, 0, None, None, false),
            write(0, 3, 3, None)
        );
    }

    #[test]
    fn dynamic_content_needs_no_length() {
        assert!(matches!(
            super::evaluate(200, &h(&[]), 0, None, None, true),
            Decision::WriteToEnd { .. }
        ));
        // A length, when sent, is still used.
        assert_eq!(
            super::evaluate(200, &h(&[("content-length", "3")]), 0, None, None, true),
            write(0, 3, 3, None)
        );
    }

    fn write(start: u64, end: u64, total: u64, etag: Option<&str>) -> Decision {
        Decision::Write {
            start,
            end,
            total,
            etag: etag.map(Into::into),
            last_modified: None,
        }
    }

    #[test]
    fn fresh_200() {
        let d = evaluate(
            200,
            &h(&[("content-length", "10"), ("etag", "\"a\"")]),
            0,
            None,
            None,
        );
        assert_eq!(d, write(0, 10, 10, Some("\"a\"")));
    }

    #[test]
    fn missing_length_is_fatal() {
        match evaluate(200, &h(&[]), 0, None, None) {
            Decision::Fail(f) => assert!(!f.transient && f.code == hr::E_MISSING_FILE_SIZE),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn good_206_continues() {
        let d = evaluate(
            206,
            &h(&[("content-range", "bytes 4-9/10"), ("content-length", "6")]),
            4,
            Some(10),
            Some("\"a\""),
        );
        assert_eq!(d, write(4, 10, 10, Some("\"a\"")));
    }

    #[test]
    fn resume_answered_with_200_starts_over() {
        // The server ignored Range (or If-Range failed): the whole file comes, written from 0.
        let d = evaluate(
            200,
            &h(&[("content-length", "12")]),
            4,
            Some(10),
            Some("\"a\""),
        );
        assert_eq!(d, write(0, 12, 12, None));
    }

    #[test]
    fn wrong_206_restarts() {
        let cases: &[(&[(&str, &str)], u64)] = &[
            (&[("content-range", "bytes 0-9/10")], 4), // starts before the offset
            (&[("content-range", "bytes 5-9/10")], 4), // starts after
            (&[("content-range", "bytes 4-9/11")], 4), // total changed
            (&[("content-range", "bytes */10")], 4),   // unusable
            (&[("content-type", "multipart/byteranges; boundary=x")], 4),
            (&[("content-range", "bytes 4-9/10"), ("etag", "\"b\"")], 4), // other representation
        ];
        for (hs, off) in cases {
            assert!(
                matches!(
                    evaluate(206, &h(hs), *off, Some(10), Some("\"a\"")),
                    Decision::Restart(_)
                ),
                "{hs:?}"
            );
        }
        assert!(matches!(
            evaluate(412, &h(&[]), 4, Some(10), None),
            Decision::Restart(_)
        ));
        assert!(matches!(
            evaluate(416, &h(&[]), 4, Some(10), None),
            Decision::Restart(_)
        ));
        // A 200 claiming a mid-file range is a mislabelled 206.
        assert!(matches!(
            evaluate(
                200,
                &h(&[("content-range", "bytes 4-9/10"), ("content-length", "6")]),
                4,
                Some(10),
                None
            ),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn inconsistent_206_fails() {
        let d = evaluate(
            206,
            &h(&[("content-range", "bytes 4-9/10"), ("content-length", "5")]),
            4,
            Some(10),
            None,
        );
        assert!(
            matches!(d, Decision::Fail(f) if f.transient && f.code == hr::E_INVALID_SERVER_RESPONSE)
        );
        let d = evaluate(206, &h(&[("content-range", "bytes 0-9/10")]), 0, None, None);
        assert!(matches!(d, Decision::Fail(f) if f.code == hr::E_INVALID_SERVER_RESPONSE));
    }

    #[test]
    fn status_classes() {
        for s in [408u16, 429, 500, 502, 503, 504] {
            assert!(
                matches!(evaluate(s, &h(&[]), 0, None, None), Decision::Fail(f) if f.transient && f.code == HResult::http(s))
            );
        }
        for s in [400u16, 401, 403, 404, 410, 204, 304] {
            assert!(
                matches!(evaluate(s, &h(&[]), 0, None, None), Decision::Fail(f) if !f.transient && f.code == HResult::http(s))
            );
        }
        match evaluate(404, &h(&[]), 0, None, None) {
            Decision::Fail(f) => assert_eq!(f.description, "HTTP 404 Not Found"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn range_decisions() {
        let want = Want {
            from: 100,
            to: Some(199),
        };
        let ok = h(&[
            ("content-range", "bytes 100-199/1000"),
            ("content-length", "100"),
        ]);
        assert!(matches!(
            evaluate_range(206, &ok, want, None, false),
            RangeDecision::Write {
                start: 100,
                last: 199,
                total: 1000,
                ..
            }
        ));
        // A shorter answer is fine (the rest is asked for next); a longer or misplaced one is not.
        let short = h(&[("content-range", "bytes 100-149/1000")]);
        assert!(matches!(
            evaluate_range(206, &short, want, None, false),
            RangeDecision::Write { last: 149, .. }
        ));
        for bad in ["bytes 100-299/1000", "bytes 90-199/1000"] {
            assert!(
                matches!(
                    evaluate_range(206, &h(&[("content-range", bad)]), want, None, false),
                    RangeDecision::Fail(_)
                ),
                "{bad}"
            );
        }
        let other = h(&[("content-range", "bytes 100-199/1000"), ("etag", "\"b\"")]);
        assert!(matches!(
            evaluate_range(206, &other, want, Some("\"a\""), true),
            RangeDecision::Restart(_)
        ));
        // 200: no range support, unless it answers a failed If-Range.
        assert!(
            matches!(evaluate_range(200, &h(&[]), want, None, false), RangeDecision::Fail(f) if f.code == hr::E_INSUFFICIENT_RANGE_SUPPORT)
        );
        assert!(matches!(
            evaluate_range(200, &h(&[]), want, Some("\"a\""), true),
            RangeDecision::Restart(_)
        ));
        assert!(
            matches!(evaluate_range(416, &h(&[]), want, None, false), RangeDecision::Fail(f) if f.code == hr::E_INVALID_RANGE)
        );
        assert_eq!(
            resume_headers(want, None, None)[1],
            (header::RANGE, "bytes=100-199".to_string())
        );
    }

    #[test]
    fn request_headers() {
        let fresh = resume_headers(Want::rest_from(0), Some("\"a\""), None);
        assert_eq!(
            fresh,
            vec![(header::ACCEPT_ENCODING, "identity".to_string())]
        );
        let r = resume_headers(
            Want::rest_from(5),
            Some("\"a\""),
            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        assert!(r.contains(&(header::RANGE, "bytes=5-".into())));
        assert!(r.contains(&(header::IF_RANGE, "\"a\"".into())));
        let weak = resume_headers(
            Want::rest_from(5),
            Some("W/\"a\""),
            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        assert!(weak.contains(&(header::IF_RANGE, "Mon, 01 Jan 2024 00:00:00 GMT".into())));
        let none = resume_headers(Want::rest_from(5), None, None);
        assert!(!none.iter().any(|(n, _)| n == header::IF_RANGE));
    }

    #[test]
    fn content_range_parsing() {
        let p = |s: &str| parse_content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(p("bytes 9-9/10"), Some((9, 9, 10)));
        assert_eq!(p("bytes 9-10/10"), None);
        assert_eq!(p("bytes 5-4/10"), None);
        assert_eq!(p("bytes 0-9/*"), None);
        assert_eq!(p("items 0-9/10"), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_and_bounded() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after_ms("2", now), Some(2000));
        assert_eq!(retry_after_ms(" 120 ", now), Some(120_000));
        let later = httpdate::fmt_http_date(now + std::time::Duration::from_secs(90));
        assert_eq!(retry_after_ms(&later, now), Some(90_000));
        let earlier = httpdate::fmt_http_date(now - std::time::Duration::from_secs(90));
        assert_eq!(retry_after_ms(&earlier, now), Some(0));
        assert_eq!(retry_after_ms("99999999999", now), Some(MAX_RETRY_AFTER_MS));
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("-5", now), None);
        // Only 429 and 503 carry it into the failure.
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(status_failure(429, &h).retry_after_ms, Some(7000));
        assert_eq!(status_failure(503, &h).retry_after_ms, Some(7000));
        assert_eq!(status_failure(500, &h).retry_after_ms, None);
    }
}
