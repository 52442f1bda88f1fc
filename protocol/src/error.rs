//! HRESULTs and error contexts carried in `BITS-Error-Code` / `BITS-Error-Context`.

use crate::headers::{self, PacketType};
use http::HeaderMap;

/// An HRESULT as BITS puts it on the wire (`0x80070057`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hresult(pub u32);

impl Hresult {
    pub const S_OK: Hresult = Hresult(0);
    pub const E_ACCESSDENIED: Hresult = Hresult(0x8007_0005);
    pub const E_INVALIDARG: Hresult = Hresult(0x8007_0057);
    pub const ERROR_DISK_FULL: Hresult = Hresult(0x8007_0112);
    pub const BG_E_INVALID_SERVER_RESPONSE: Hresult = Hresult(0x8020_001B);
    pub const BG_E_SESSION_NOT_FOUND: Hresult = Hresult(0x8020_001F);
    pub const BG_E_TOO_LARGE: Hresult = Hresult(0x8020_0020);
    /// ERROR_TIMEOUT as an HRESULT, for the server application not answering in time.
    pub const E_TIMEOUT: Hresult = Hresult(0x8007_05B4);

    /// BG_E_HTTP_ERROR_xxx: what BITS reports for an HTTP status without a BITS error code.
    pub fn http(status: u16) -> Hresult {
        Hresult(0x8019_0000 | u32::from(status))
    }

    /// Accepts `0x80070057`, `80070057` and the spec's `x80070057`, any case; decimal is not a
    /// form anybody sends, so bare digits are read as hex like Windows does.
    pub fn parse(s: &str) -> Option<Hresult> {
        let s = s.trim();
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .or_else(|| s.strip_prefix('x'))
            .or_else(|| s.strip_prefix('X'))
            .unwrap_or(s);
        if hex.is_empty() || hex.len() > 8 {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(Hresult)
    }
}

impl std::fmt::Display for Hresult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

/// BG_ERROR_CONTEXT values that appear in `BITS-Error-Context`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorContext(pub u32);

impl ErrorContext {
    /// BG_ERROR_CONTEXT_REMOTE_FILE: the server.
    pub const REMOTE_FILE: ErrorContext = ErrorContext(0x5);
    /// BG_ERROR_CONTEXT_REMOTE_APPLICATION: the server application behind an upload-reply.
    pub const REMOTE_APPLICATION: ErrorContext = ErrorContext(0x7);

    pub fn parse(s: &str) -> Option<ErrorContext> {
        Hresult::parse(s).map(|h| ErrorContext(h.0))
    }
}

impl std::fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:X}", self.0)
    }
}

/// The BITS error code of an Ack, from `BITS-Error-Code` or the spec's `BITS-Error`.
pub fn error_code(headers: &HeaderMap) -> Option<Hresult> {
    headers::get(headers, headers::ERROR_CODE)
        .or_else(|| headers::get(headers, headers::ERROR_CODE_SPEC))
        .and_then(Hresult::parse)
}

pub fn error_context(headers: &HeaderMap) -> Option<ErrorContext> {
    headers::get(headers, headers::ERROR_CONTEXT).and_then(ErrorContext::parse)
}

/// A failed request as the job layer sees it: the HTTP status, the BITS code (from the Ack, or
/// BG_E_HTTP_ERROR_xxx when the server sent none) and the context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub packet: PacketType,
    pub status: u16,
    pub code: Hresult,
    pub context: ErrorContext,
    pub message: String,
}

impl ProtocolError {
    /// The error an Ack describes; error headers are only meaningful on a non-2xx status.
    pub fn from_ack(packet: PacketType, status: u16, headers: &HeaderMap) -> ProtocolError {
        let code = error_code(headers)
            .filter(|c| c.0 != 0)
            .unwrap_or_else(|| Hresult::http(status));
        let context = error_context(headers).unwrap_or(ErrorContext::REMOTE_FILE);
        ProtocolError {
            packet,
            status,
            code,
            context,
            message: format!("{packet}: HTTP {status}, BITS error {code}, context {context}"),
        }
    }

    /// The server sent something the protocol does not allow.
    pub fn invalid_response(packet: PacketType, status: u16, why: &str) -> ProtocolError {
        ProtocolError {
            packet,
            status,
            code: Hresult::BG_E_INVALID_SERVER_RESPONSE,
            context: ErrorContext::REMOTE_FILE,
            message: format!("{packet}: invalid server response (HTTP {status}): {why}"),
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// How a server application's HTTP status is reported to the client ([U11]): true when the job
/// should retry later.
pub fn application_status_is_transient(status: u16) -> bool {
    match status {
        300..=305 | 307 => false,
        300..=399 => true,
        408 | 409 => true,
        400..=499 => false,
        501 | 505 => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    #[test]
    fn hresults_parse_in_every_form_seen() {
        for s in [
            "0x8020001F",
            "0x8020001f",
            "8020001F",
            "x8020001F",
            " 0X8020001F ",
        ] {
            assert_eq!(
                Hresult::parse(s),
                Some(Hresult::BG_E_SESSION_NOT_FOUND),
                "{s}"
            );
        }
        assert_eq!(Hresult::parse(""), None);
        assert_eq!(Hresult::parse("0x"), None);
        assert_eq!(Hresult::parse("0x123456789"), None);
        assert_eq!(Hresult::parse("zz"), None);
        assert_eq!(Hresult::BG_E_TOO_LARGE.to_string(), "0x80200020");
        assert_eq!(ErrorContext::REMOTE_APPLICATION.to_string(), "0x7");
    }

    #[test]
    fn both_error_header_names_are_read() {
        for name in ["BITS-Error-Code", "bits-error", "BITS-ERROR"] {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("0x80070057"),
            );
            h.insert("bits-error-context", HeaderValue::from_static("0x7"));
            let e = ProtocolError::from_ack(PacketType::Fragment, 400, &h);
            assert_eq!(e.code, Hresult::E_INVALIDARG, "{name}");
            assert_eq!(e.context, ErrorContext::REMOTE_APPLICATION);
        }
        let e = ProtocolError::from_ack(PacketType::Ping, 503, &HeaderMap::new());
        assert_eq!(e.code, Hresult(0x8019_01F7));
        assert_eq!(e.context, ErrorContext::REMOTE_FILE);
    }

    #[test]
    fn application_errors_are_classified_as_iis_does() {
        for s in [300, 305, 307, 400, 403, 404, 501, 505] {
            assert!(!application_status_is_transient(s), "{s}");
        }
        for s in [306, 308, 408, 409, 500, 502, 503, 504, 600] {
            assert!(application_status_is_transient(s), "{s}");
        }
    }
}
