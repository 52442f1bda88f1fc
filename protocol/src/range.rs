//! `Content-Range: bytes a-b/total` and `BITS-Received-Content-Range: n`.

/// The range of one fragment: bytes `first..=last` of an entity of `total` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: u64,
}

impl ContentRange {
    /// A range of `len` (> 0) bytes from `offset`; None when it would be empty or pass `total`.
    pub fn new(offset: u64, len: u64, total: u64) -> Option<ContentRange> {
        let last = offset.checked_add(len)?.checked_sub(1)?;
        (len > 0 && last < total).then_some(ContentRange {
            first: offset,
            last,
            total,
        })
    }

    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// A range is never empty: `bytes a-b` with b < a is not valid (RFC 7233).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The offset after the range.
    pub fn end(&self) -> u64 {
        self.last + 1
    }

    /// Parses `bytes a-b/total` (whitespace around the parts allowed, unit any case). The total
    /// must be known: `*` is refused because a session needs its size.
    pub fn parse(s: &str) -> Option<ContentRange> {
        let s = s.trim();
        let (unit, rest) = s.split_once(|c: char| c.is_ascii_whitespace() || c == '=')?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return None;
        }
        let (span, total) = rest.trim().split_once('/')?;
        let (first, last) = span.split_once('-')?;
        let first = parse_u64(first)?;
        let last = parse_u64(last)?;
        let total = parse_u64(total)?;
        (first <= last && last < total).then_some(ContentRange { first, last, total })
    }
}

impl std::fmt::Display for ContentRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bytes {}-{}/{}", self.first, self.last, self.total)
    }
}

/// Digits only (no sign, no spaces inside), so `-5` or `+5` never parse as offsets.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `BITS-Received-Content-Range`: the next offset the server expects.
pub fn parse_received(s: &str) -> Option<u64> {
    parse_u64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_print() {
        let r = ContentRange::parse("bytes 0-4891/4892").unwrap();
        assert_eq!(
            (r.first, r.last, r.total, r.len(), r.end()),
            (0, 4891, 4892, 4892, 4892)
        );
        assert_eq!(r.to_string(), "bytes 0-4891/4892");
        assert_eq!(
            ContentRange::parse(" BYTES  128-212 / 300 "),
            Some(ContentRange {
                first: 128,
                last: 212,
                total: 300
            })
        );
        for bad in [
            "bytes 5-4/10",
            "bytes 0-10/10",
            "bytes 0-1/*",
            "bits 0-1/2",
            "bytes -1-2/3",
            "bytes 0-/3",
            "bytes 0-1",
            "",
            "bytes 0-+1/3",
        ] {
            assert_eq!(ContentRange::parse(bad), None, "{bad}");
        }
        assert_eq!(ContentRange::new(10, 0, 20), None);
        assert_eq!(ContentRange::new(10, 11, 20), None);
        assert_eq!(
            ContentRange::new(10, 10, 20).map(|r| r.to_string()),
            Some("bytes 10-19/20".into())
        );
        assert_eq!(parse_received("213"), Some(213));
        assert_eq!(parse_received("-1"), None);
        assert_eq!(parse_received("bytes 0-212"), None);
    }
}
