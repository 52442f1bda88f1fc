//! URL paths to storage paths, refusing anything that could leave the root.

/// Session data lives here under the root; no upload or download may name it.
pub const SESSIONS_DIR: &str = ".bits-sessions";
/// Reply URLs are `…/BITS-Sessions/Replies/{id}/responsefile.bin`, as IIS sends them; uploads may
/// not use the name so that a reply and a file never share a URL.
pub const REPLIES_DIR: &str = "BITS-Sessions";

/// A path below the root: non-empty components, none of them `.`, `..`, reserved, or holding
/// `/`, `\` or NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafePath(Vec<String>);

impl SafePath {
    /// Decodes the path of a request URL. Every way of spelling a parent or a separator is
    /// refused after decoding, so `%2e%2e`, `%2f` and `%5c` are caught like their plain forms.
    pub fn from_url_path(raw: &str) -> Option<SafePath> {
        let raw = raw.split(['?', '#']).next().unwrap_or("");
        let rest = raw.strip_prefix('/')?;
        let mut parts = Vec::new();
        for seg in rest.split('/') {
            let bytes = percent_decode(seg)?;
            let s = String::from_utf8(bytes).ok()?;
            if s.is_empty()
                || s == "."
                || s == ".."
                || s.contains(['/', '\\', '\0'])
                || s.eq_ignore_ascii_case(SESSIONS_DIR)
                || s.eq_ignore_ascii_case(REPLIES_DIR)
                || s.len() > 255
            {
                return None;
            }
            parts.push(s);
        }
        (!parts.is_empty()).then_some(SafePath(parts))
    }

    /// Rebuilds a path stored by [`SafePath::as_str`], checking it again.
    pub fn from_stored(s: &str) -> Option<SafePath> {
        let parts: Vec<String> = s.split('/').map(str::to_owned).collect();
        let ok = parts.iter().all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && !p.contains(['\\', '\0'])
                && !p.eq_ignore_ascii_case(SESSIONS_DIR)
                && !p.eq_ignore_ascii_case(REPLIES_DIR)
        });
        (ok && !parts.is_empty()).then_some(SafePath(parts))
    }

    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// `a/b/file.bin`
    pub fn as_str(&self) -> String {
        self.0.join("/")
    }

    pub fn file_name(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The id in a reply URL path `…/BITS-Sessions/Replies/{id}/responsefile.bin`.
pub fn reply_id(raw: &str) -> Option<String> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    let segs: Vec<&str> = raw.split('/').collect();
    let n = segs.len();
    if n < 4
        || !segs[n - 4].eq_ignore_ascii_case(REPLIES_DIR)
        || !segs[n - 3].eq_ignore_ascii_case("Replies")
        || segs[n - 1] != "responsefile.bin"
    {
        return None;
    }
    let id = String::from_utf8(percent_decode(segs[n - 2])?).ok()?;
    valid_session_id(&id).then_some(id)
}

/// Session ids this server makes: `{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}` upper-case, as IIS.
/// Anything else cannot name a session, which also keeps ids out of storage paths.
pub fn valid_session_id(id: &str) -> bool {
    id.len() == 38
        && id.starts_with('{')
        && !id.bytes().any(|b| b.is_ascii_lowercase())
        && openbits_protocol::headers::normalise_guid(id).is_some()
}

pub fn new_session_id() -> String {
    format!(
        "{{{}}}",
        uuid::Uuid::new_v4()
            .hyphenated()
            .to_string()
            .to_ascii_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused_in_every_spelling() {
        for bad in [
            "/",
            "/a/../b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E%2E",
            "/a%2f..%2fb",
            "/a/b%5c..%5cc",
            "/a\\..\\b",
            "/a/%00",
            "/a//b",
            "/a/./b",
            "/.bits-sessions/x",
            "/a/BITS-Sessions/Replies/x",
            "relative",
            "/a/%zz",
            "/a/%ff%fe",
            "/a/",
        ] {
            assert_eq!(SafePath::from_url_path(bad), None, "{bad}");
        }
        assert_eq!(
            SafePath::from_url_path("/a/b%20c/file.bin?x=1").map(|p| p.as_str()),
            Some("a/b c/file.bin".into())
        );
        assert_eq!(
            SafePath::from_url_path("/..a/b..").map(|p| p.as_str()),
            Some("..a/b..".into())
        );
    }

    #[test]
    fn session_ids_are_guids_in_braces() {
        let id = new_session_id();
        assert!(valid_session_id(&id), "{id}");
        assert!(!valid_session_id(&id.to_ascii_lowercase()));
        assert!(!valid_session_id("{../../etc}"));
        assert!(!valid_session_id(&id[1..37]));
        assert_eq!(
            reply_id(&format!(
                "/up/BITS-Sessions/Replies/{}/responsefile.bin",
                id.replace('{', "%7B").replace('}', "%7D")
            )),
            Some(id.clone())
        );
        assert_eq!(
            reply_id(&format!("/BITS-Sessions/Replies/{id}/other")),
            None
        );
    }
}
