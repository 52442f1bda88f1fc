//! Header names, packet types and protocol negotiation.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The extension method every upload request uses.
pub const BITS_POST: &str = "BITS_POST";
/// Deployments that cannot pass an extension method send `POST` with this header set to `BITS_POST`
/// (OneDrive's endpoint did).
pub const X_HTTP_METHOD_OVERRIDE: &str = "x-http-method-override";

/// "BITS 1.5 Upload Protocol", the only protocol GUID defined; Windows sends it lower-case.
pub const PROTOCOL_GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

// Names are stored lower-case because `HeaderName` is; the wire is case-insensitive and hyper
// writes them as given, which every known client accepts.
pub const PACKET_TYPE: &str = "bits-packet-type";
pub const SUPPORTED_PROTOCOLS: &str = "bits-supported-protocols";
pub const PROTOCOL: &str = "bits-protocol";
pub const SESSION_ID: &str = "bits-session-id";
pub const RECEIVED_CONTENT_RANGE: &str = "bits-received-content-range";
pub const REPLY_URL: &str = "bits-reply-url";
/// The wire name used by Windows, IIS and every peer.
pub const ERROR_CODE: &str = "bits-error-code";
/// The name [MC-BUP] §2.2.1.2 gives the same field; read, never sent.
pub const ERROR_CODE_SPEC: &str = "bits-error";
pub const ERROR_CONTEXT: &str = "bits-error-context";
pub const HOST_ID: &str = "bits-host-id";
pub const HOST_ID_FALLBACK_TIMEOUT: &str = "bits-host-id-fallback-timeout";
pub const CONTENT_NAME: &str = "content-name";
pub const ORIGINAL_REQUEST_URL: &str = "bits-original-request-url";
pub const REQUEST_DATAFILE_NAME: &str = "bits-request-datafile-name";
pub const RESPONSE_DATAFILE_NAME: &str = "bits-response-datafile-name";
pub const STATIC_RESPONSE_URL: &str = "bits-static-response-url";
pub const COPY_FILE_TO_DESTINATION: &str = "bits-copy-file-to-destination";

/// Header values longer than this are refused (Windows server limit, [MC-BUP] §6 <2>).
pub const MAX_HEADER_VALUE: usize = 4096;
/// At most this many GUIDs are read from `BITS-Supported-Protocols` (Windows accepts 100).
pub const MAX_PROTOCOLS: usize = 100;
/// Session ids longer than this are not legal ([U2]: "up to 100 characters").
pub const MAX_SESSION_ID: usize = 100;

/// The packet types; parsing ignores case, [`PacketType::as_str`] gives the Windows spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    Ping,
    CreateSession,
    Fragment,
    CloseSession,
    CancelSession,
    Ack,
}

impl PacketType {
    pub const ALL: [PacketType; 6] = [
        PacketType::Ping,
        PacketType::CreateSession,
        PacketType::Fragment,
        PacketType::CloseSession,
        PacketType::CancelSession,
        PacketType::Ack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PacketType::Ping => "Ping",
            PacketType::CreateSession => "Create-Session",
            PacketType::Fragment => "Fragment",
            PacketType::CloseSession => "Close-Session",
            PacketType::CancelSession => "Cancel-Session",
            PacketType::Ack => "Ack",
        }
    }

    pub fn parse(s: &str) -> Option<PacketType> {
        let s = s.trim();
        PacketType::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header's value as text, if present and visible ASCII.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Sets a header whose name is one of this module's constants.
pub fn set(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), http::header::InvalidHeaderValue> {
    let value = HeaderValue::from_str(value)?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

/// The packet type of a message, if present and known.
pub fn packet_type(headers: &HeaderMap) -> Option<PacketType> {
    get(headers, PACKET_TYPE).and_then(PacketType::parse)
}

/// Splits `BITS-Supported-Protocols` (space- or comma-separated, in preference order) into GUIDs,
/// normalised to the lower-case braced form. Entries that are not GUIDs are dropped; at most
/// [`MAX_PROTOCOLS`] are read.
pub fn parse_protocol_list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
        .take(MAX_PROTOCOLS)
        .filter_map(normalise_guid)
        .collect()
}

/// `{7DF0354D-…}` or `7df0354d-…` → `{7df0354d-…}`; anything else → None.
pub fn normalise_guid(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5
        || groups
            .iter()
            .zip(lens)
            .any(|(g, n)| g.len() != n || !g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(format!("{{{}}}", inner.to_ascii_lowercase()))
}

/// The first protocol in the client's list that this implementation speaks.
pub fn negotiate(value: &str) -> Option<&'static str> {
    parse_protocol_list(value)
        .iter()
        .any(|g| g == PROTOCOL_GUID)
        .then_some(PROTOCOL_GUID)
}

/// A header that is too long to accept ([`MAX_HEADER_VALUE`]), by name.
pub fn oversized_header(headers: &HeaderMap) -> Option<&HeaderName> {
    headers
        .iter()
        .find(|(_, v)| v.len() > MAX_HEADER_VALUE)
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_types_ignore_case_and_print_the_windows_spelling() {
        for p in PacketType::ALL {
            assert_eq!(PacketType::parse(&p.as_str().to_ascii_uppercase()), Some(p));
            assert_eq!(PacketType::parse(&p.as_str().to_ascii_lowercase()), Some(p));
        }
        assert_eq!(
            PacketType::parse(" create-SESSION "),
            Some(PacketType::CreateSession)
        );
        assert_eq!(PacketType::parse("Create Session"), None);
        assert_eq!(PacketType::CreateSession.to_string(), "Create-Session");
    }

    #[test]
    fn protocol_lists_split_on_spaces_and_commas_in_any_case() {
        let other = "{00000000-0000-0000-0000-000000000001}";
        assert_eq!(negotiate(PROTOCOL_GUID), Some(PROTOCOL_GUID));
        assert_eq!(
            negotiate(&PROTOCOL_GUID.to_ascii_uppercase()),
            Some(PROTOCOL_GUID)
        );
        assert_eq!(
            negotiate(&format!("{other} {PROTOCOL_GUID}")),
            Some(PROTOCOL_GUID)
        );
        assert_eq!(
            negotiate(&format!("{other},{PROTOCOL_GUID}")),
            Some(PROTOCOL_GUID)
        );
        assert_eq!(
            negotiate(&format!(
                "{other} ,  {}",
                PROTOCOL_GUID.to_ascii_uppercase()
            )),
            Some(PROTOCOL_GUID)
        );
        assert_eq!(
            negotiate("7DF0354D-249B-430F-820D-3D2A9BEF4931"),
            Some(PROTOCOL_GUID)
        );
        assert_eq!(negotiate(other), None);
        assert_eq!(negotiate(""), None);
        assert_eq!(negotiate("{7df0354d-249b-430f-820d-3d2a9bef493}"), None);
        assert_eq!(
            parse_protocol_list(&format!("x {other} {PROTOCOL_GUID}")).len(),
            2
        );
    }

    #[test]
    fn header_lookup_ignores_case() {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(b"BITS-PACKET-TYPE").expect("valid name"),
            HeaderValue::from_static("fragment"),
        );
        assert_eq!(packet_type(&h), Some(PacketType::Fragment));
    }
}
