//! The door the fuzz targets (`tests/fuzz`, run by `fuzz/` and replayed by `cargo test`) come in
//! by: the crate's parsers and decisions that hostile input reaches, behind plain public types.
//!
//! Not an API: hidden from the documentation and free to change with the targets. It exists so
//! that the internals stay `pub(crate)` instead of being opened one by one for the fuzzer.
//!
//! Layer 5: above the API, as only a test door may be; nothing in the crate uses it.

use crate::error::Result;
use crate::hresult::HResult;
use crate::job::FileRange;
use crate::transfer::http::{self, Want};
use hyper::header::{HeaderMap, HeaderValue};
use std::path::PathBuf;

/// The longest pause a `Retry-After` can ask for.
pub const MAX_RETRY_AFTER_MS: u64 = crate::policy::hosts::MAX_RETRY_AFTER_MS;

/// What the download engine does with a response, without the texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write the body from byte `start`; it ends before `end` (None: whenever the body ends) of
    /// a file of `total` bytes (None: unknown).
    Write {
        start: u64,
        end: Option<u64>,
        total: Option<u64>,
    },
    /// Start the file (or every range) again.
    Restart,
    Fail {
        code: HResult,
        transient: bool,
        retry_after_ms: Option<u64>,
    },
}

impl Outcome {
    fn failed(f: crate::transfer::Failure) -> Outcome {
        Outcome::Fail {
            code: f.code,
            transient: f.transient,
            retry_after_ms: f.retry_after_ms,
        }
    }
}

/// The decision for a response to a request of the whole file from `offset`.
pub fn evaluate(
    status: u16,
    headers: &HeaderMap,
    offset: u64,
    known_total: Option<u64>,
    known_etag: Option<&str>,
    dynamic: bool,
) -> Outcome {
    match http::evaluate(status, headers, offset, known_total, known_etag, dynamic) {
        http::Decision::Write {
            start, end, total, ..
        } => Outcome::Write {
            start,
            end: Some(end),
            total: Some(total),
        },
        http::Decision::WriteToEnd { .. } => Outcome::Write {
            start: 0,
            end: None,
            total: None,
        },
        http::Decision::Restart(_) => Outcome::Restart,
        http::Decision::Fail(f) => Outcome::failed(f),
    }
}

/// The decision for a response to a request of bytes `from..=to` (to None: to the end) of a file
/// added with ranges; `end` in the outcome is one past the last byte.
pub fn evaluate_range(
    status: u16,
    headers: &HeaderMap,
    from: u64,
    to: Option<u64>,
    known_etag: Option<&str>,
    sent_if_range: bool,
) -> Outcome {
    let want = Want { from, to };
    match http::evaluate_range(status, headers, want, known_etag, sent_if_range) {
        http::RangeDecision::Write {
            start, last, total, ..
        } => Outcome::Write {
            start,
            end: last.checked_add(1),
            total: Some(total),
        },
        http::RangeDecision::Restart(_) => Outcome::Restart,
        http::RangeDecision::Fail(f) => Outcome::failed(f),
    }
}

/// A response's `Content-Range`: (first, last, total).
pub fn content_range(value: &HeaderValue) -> Option<(u64, u64, u64)> {
    http::parse_content_range(value)
}

/// `Retry-After` (seconds or an HTTP date) as milliseconds from `now`.
pub fn retry_after_ms(value: &str, now: std::time::SystemTime) -> Option<u64> {
    http::retry_after_ms(value, now)
}

/// The check `add_file` makes of a remote name, and the request target the engine would send.
pub fn remote_url(remote: &str) -> Result<(url::Url, Option<hyper::Uri>)> {
    let url = super::validate::validate_remote(remote)?;
    let uri = http::request_uri(&url).ok();
    Ok((url, uri))
}

/// The check `add_file` makes of a local name (it looks at the folder on disk).
pub fn local_name(local: &str) -> Result<PathBuf> {
    super::validate::validate_local(local).map(|(path, _)| path)
}

/// The check `add_file_with_ranges` makes of its ranges.
pub fn ranges(ranges: &[FileRange]) -> Result<()> {
    super::validate::check_ranges(ranges)
}
