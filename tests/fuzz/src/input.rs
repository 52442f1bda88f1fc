//! Decoding the fuzzer's bytes into HTTP pieces: statuses, numbers, header maps. Biased towards
//! the values the code under test compares against, so the fuzzer reaches past the first check.

use arbitrary::{Result, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue};

/// A status: usually one the code distinguishes, sometimes any.
pub fn status(u: &mut Unstructured, interesting: &[u16]) -> Result<u16> {
    if u.ratio(3, 4)? {
        u.choose(interesting).copied()
    } else {
        u.arbitrary()
    }
}

/// A number near the edges the parsers care about, or any.
pub fn number(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=4)? {
        0 => u.int_in_range(0..=16)?,
        1 => u64::MAX - u.int_in_range(0..=2)?,
        2 => u.int_in_range(0..=1_000_000)?,
        _ => u.arbitrary()?,
    })
}

/// Text for a header value: a number, a byte range, one of `tokens`, or arbitrary text.
pub fn value(u: &mut Unstructured, tokens: &[&str]) -> Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => number(u)?.to_string(),
        1 => format!("bytes {}-{}/{}", number(u)?, number(u)?, number(u)?),
        2 if !tokens.is_empty() => u.choose(tokens)?.to_string(),
        _ => u.arbitrary()?,
    })
}

/// Up to `max` headers, named from `names` (or anything), valued by [`value`]. Names and values
/// that HTTP cannot carry are skipped: no peer could send them.
pub fn headers(
    u: &mut Unstructured,
    names: &[&'static str],
    tokens: &[&str],
    max: usize,
) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=max)? {
        let name = if u.ratio(7, 8)? {
            HeaderName::from_static(u.choose(names)?)
        } else {
            let raw: &[u8] = u.arbitrary()?;
            match HeaderName::from_bytes(raw) {
                Ok(n) => n,
                Err(_) => continue,
            }
        };
        if let Ok(v) = HeaderValue::from_str(&value(u, tokens)?) {
            h.append(name, v);
        }
    }
    Ok(h)
}
