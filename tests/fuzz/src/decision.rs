//! Target `http_decision`: a response's status and headers → what the download engine does with
//! it, for a whole file (`evaluate`) and for a range of it (`evaluate_range`).

use crate::input;
use arbitrary::{Result, Unstructured};
use openbits_core::fuzzing::{self, Outcome, MAX_RETRY_AFTER_MS};

const STATUSES: &[u16] = &[200, 206, 204, 301, 304, 404, 408, 412, 416, 429, 500, 503];
const NAMES: &[&str] = &[
    "content-range",
    "content-length",
    "content-type",
    "etag",
    "last-modified",
    "retry-after",
];
const TOKENS: &[&str] = &[
    "\"a\"",
    "W/\"a\"",
    "multipart/byteranges; boundary=x",
    "bytes */10",
    "Mon, 01 Jan 2024 00:00:00 GMT",
];

pub fn http_decision(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}

fn run(u: &mut Unstructured) -> Result<()> {
    let status = input::status(u, STATUSES)?;
    let headers = input::headers(u, NAMES, TOKENS, 6)?;
    let offset = input::number(u)?;
    let known_total: Option<u64> = if u.arbitrary()? {
        Some(input::number(u)?)
    } else {
        None
    };
    let known_etag: Option<&str> = if u.arbitrary()? {
        Some(u.choose(TOKENS)?)
    } else {
        None
    };
    let dynamic: bool = u.arbitrary()?;

    let outcome = fuzzing::evaluate(status, &headers, offset, known_total, known_etag, dynamic);
    match outcome {
        Outcome::Write {
            start,
            end: Some(end),
            total: Some(total),
        } => {
            assert!(start <= end && end <= total, "{outcome:?}");
            match status {
                // A 200 is the whole file, written from its first byte.
                200 => assert!(start == 0 && end == total, "{outcome:?}"),
                // A 206 continues where the bytes on disk end, of the same file.
                206 => {
                    assert_eq!(start, offset, "{outcome:?}");
                    assert!(start < end, "{outcome:?}");
                    assert!(known_total.is_none_or(|t| t == total), "{outcome:?}");
                }
                _ => panic!("status {status} written: {outcome:?}"),
            }
        }
        Outcome::Write {
            start: 0,
            end: None,
            total: None,
        } => assert!(status == 200 && dynamic, "{outcome:?}"),
        Outcome::Write { .. } => panic!("{outcome:?}"),
        Outcome::Restart => assert!(matches!(status, 200 | 206 | 412 | 416), "{outcome:?}"),
        Outcome::Fail { retry_after_ms, .. } => {
            assert!(retry_after_ms.is_none_or(|ms| ms <= MAX_RETRY_AFTER_MS));
        }
    }

    let from = offset;
    let to: Option<u64> = if u.arbitrary()? {
        Some(from.saturating_add(input::number(u)?))
    } else {
        None
    };
    let sent_if_range: bool = u.arbitrary()?;
    let outcome = fuzzing::evaluate_range(status, &headers, from, to, known_etag, sent_if_range);
    if let Outcome::Write { start, end, total } = outcome {
        assert_eq!(status, 206, "{outcome:?}");
        let (Some(end), Some(total)) = (end, total) else {
            panic!("{outcome:?}")
        };
        // Exactly the range asked for, or its beginning, and inside the file.
        assert_eq!(start, from, "{outcome:?}");
        assert!(start < end && end <= total, "{outcome:?}");
        assert!(to.is_none_or(|to| end - 1 <= to), "{outcome:?}");
    }
    Ok(())
}
