//! What an application can add to a job's HTTP requests (IBackgroundCopyJobHttpOptions,
//! IBackgroundCopyJob2::SetCredentials): custom headers, Basic credentials, the redirect policy.
//! Validation lives here so the setters refuse what the engine could not send safely.

use crate::hresult::{self as hr, HResult};
use crate::job::{
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP, REDIRECT_POLICY_DISALLOW, REDIRECT_POLICY_MASK,
};
use hyper::header::{HeaderName, HeaderValue};

type Refusal = (HResult, String);

/// Headers the engine owns: setting them would break resume, framing or the connection.
const RESERVED: &[&str] = &[
    "host",
    "range",
    "if-range",
    "accept-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// Headers that carry credentials: allowed, as BITS allows them (a bearer token is sent this
/// way), but marked sensitive, and sent only to the origin of the file's URL, never to a host it
/// redirects to.
const CREDENTIALS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

pub fn is_credential(name: &HeaderName) -> bool {
    CREDENTIALS.contains(&name.as_str())
}

/// Parses BITS's `"Name: value\r\nName: value\r\n"` form (the last CR/LF optional). A line that
/// is not `Name: value`, a bare CR or LF inside a line (it would split the request), or a header
/// the engine owns is refused with BITS_E_INVALIDARG.
pub fn parse_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, Refusal> {
    let invalid = |why: String| (hr::E_INVALIDARG, why);
    let mut headers = Vec::new();
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    if body.is_empty() {
        return Ok(headers);
    }
    for (i, line) in body.split("\r\n").enumerate() {
        if line.contains(['\r', '\n']) {
            return Err(invalid(format!(
                "header line {} contains a bare CR or LF",
                i + 1
            )));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!(
                "header line {} is not \"Name: value\"",
                i + 1
            )));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            invalid(format!(
                "header line {}: {name:?} is not a header name",
                i + 1
            ))
        })?;
        if RESERVED.contains(&name.as_str()) {
            return Err(invalid(format!(
                "the {name} header is set by openbits itself"
            )));
        }
        // The message names the header, never its value: it may be a secret.
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            invalid(format!(
                "header line {}: the value of {name} has characters HTTP forbids",
                i + 1
            ))
        })?;
        value.set_sensitive(is_credential(&name));
        headers.push((name, value));
    }
    Ok(headers)
}

/// BG_AUTH_TARGET.
pub const AUTH_TARGET_SERVER: i32 = 1;
pub const AUTH_TARGET_PROXY: i32 = 2;
/// BG_AUTH_SCHEME.
pub const AUTH_SCHEME_BASIC: i32 = 1;
const AUTH_SCHEME_PASSPORT: i32 = 5;
pub const MAX_USER_NAME_CHARS: usize = 300;
pub const MAX_PASSWORD_CHARS: usize = 65_536;

/// Checks a SetCredentials call's target and scheme (BITS's codes) and returns the index of the
/// target's slot (0 server, 1 proxy).
pub fn check_target_and_scheme(target: i32, scheme: i32) -> Result<usize, Refusal> {
    let slot = match target {
        AUTH_TARGET_SERVER => 0,
        AUTH_TARGET_PROXY => 1,
        _ => {
            return Err((
                hr::E_INVALID_AUTH_TARGET,
                format!("undefined authentication target {target}"),
            ))
        }
    };
    match scheme {
        AUTH_SCHEME_BASIC => Ok(slot),
        2..=AUTH_SCHEME_PASSPORT => Err((
            hr::E_NOTIMPL,
            format!("authentication scheme {scheme} is not supported here; only BASIC (1) is"),
        )),
        _ => Err((
            hr::E_INVALID_AUTH_SCHEME,
            format!("undefined authentication scheme {scheme}"),
        )),
    }
}

/// The `Authorization` (or `Proxy-Authorization`) value for Basic credentials.
pub fn basic(user: &str, password: &str) -> Result<HeaderValue, Refusal> {
    if user.chars().count() > MAX_USER_NAME_CHARS {
        return Err((
            hr::E_USERNAME_TOO_LARGE,
            format!("user names are limited to {MAX_USER_NAME_CHARS} characters"),
        ));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err((
            hr::E_PASSWORD_TOO_LARGE,
            format!("passwords are limited to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if user.contains(':') {
        return Err((
            hr::E_INVALID_CREDENTIALS,
            "a Basic user name cannot contain ':'".into(),
        ));
    }
    let token = base64(format!("{user}:{password}").as_bytes());
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
        (
            hr::E_INVALID_CREDENTIALS,
            "credentials cannot be encoded".to_string(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Checks SetSecurityFlags: the redirect policy and the BG_SSL_* bits (see `tls`: an IGNORE flag
/// lets a failure through only to the application's server certificate callback).
pub fn check_security_flags(flags: u32) -> Result<(), Refusal> {
    let supported =
        REDIRECT_POLICY_MASK | REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP | crate::tls::SSL_MASK;
    if flags & !supported != 0 {
        return Err((
            hr::E_NOTIMPL,
            format!(
                "security flags 0x{:X} are not supported",
                flags & !supported
            ),
        ));
    }
    if flags & REDIRECT_POLICY_MASK > REDIRECT_POLICY_DISALLOW {
        return Err((
            hr::E_NOTIMPL,
            format!(
                "undefined redirect policy 0x{:X}",
                flags & REDIRECT_POLICY_MASK
            ),
        ));
    }
    Ok(())
}

/// Standard base64 (RFC 4648), for the Basic scheme only.
fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_bits_form() {
        let h = parse_headers("X-Token: abc\r\nX-Other:  two words \r\n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].0.as_str(), h[0].1.to_str().unwrap()),
            ("x-token", "abc")
        );
        assert_eq!(h[1].1.to_str().unwrap(), "two words");
        assert!(parse_headers("").unwrap().is_empty());
        let auth = parse_headers("Authorization: Bearer t0k3n\r\n").unwrap();
        assert!(auth[0].1.is_sensitive(), "a credential is marked sensitive");
        assert!(!h[0].1.is_sensitive());
        assert_eq!(
            parse_headers("X-A: 1").unwrap().len(),
            1,
            "the last CR/LF is optional"
        );
        for bad in [
            "X-A: 1\nX-B: 2",
            "X-A: 1\rX-B: 2",
            "no colon",
            "Bad Name: 1",
            "X-A: 1\r\n\r\nX-B: 2",
            "Range: bytes=0-",
            "Host: evil",
            "X-Token: a\x01b",
        ] {
            assert_eq!(
                parse_headers(bad).unwrap_err().0,
                hr::E_INVALIDARG,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials() {
        assert_eq!(
            basic("Aladdin", "open sesame").unwrap().to_str().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(
            basic(&"u".repeat(301), "p").unwrap_err().0,
            hr::E_USERNAME_TOO_LARGE
        );
        assert_eq!(
            basic("u", &"p".repeat(65_537)).unwrap_err().0,
            hr::E_PASSWORD_TOO_LARGE
        );
        assert_eq!(check_target_and_scheme(1, 1), Ok(0));
        assert_eq!(check_target_and_scheme(2, 1), Ok(1));
        assert_eq!(
            check_target_and_scheme(3, 1).unwrap_err().0,
            hr::E_INVALID_AUTH_TARGET
        );
        assert_eq!(check_target_and_scheme(1, 3).unwrap_err().0, hr::E_NOTIMPL);
        assert_eq!(
            check_target_and_scheme(1, 9).unwrap_err().0,
            hr::E_INVALID_AUTH_SCHEME
        );
    }

    #[test]
    fn security_flags() {
        for ok in [0, 0x1, 0x8, 0x1F, 0x100, 0x200, 0x800, 0x91F] {
            assert!(check_security_flags(ok).is_ok(), "{ok:#x}");
        }
        for bad in [0x20, 0x300, 0x400, 0x1000] {
            assert_eq!(
                check_security_flags(bad).unwrap_err().0,
                hr::E_NOTIMPL,
                "{bad:#x}"
            );
        }
    }
}

/// BG_JOB_PROXY_USAGE.
pub const PROXY_USAGE_PRECONFIG: i32 = 0;
pub const PROXY_USAGE_NO_PROXY: i32 = 1;
pub const PROXY_USAGE_OVERRIDE: i32 = 2;
const PROXY_USAGE_AUTODETECT: i32 = 3;
pub const MAX_PROXY_LIST_CHARS: usize = 32_000;

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split([' ', ';', ',', '\t']).filter(|e| !e.is_empty())
}

/// Checks SetProxySettings with BITS's rules and codes: OVERRIDE needs a proxy list; the other
/// usages take no lists; lists are at most 32,000 characters; every proxy must be `host[:port]`
/// (or an http:// URL).
pub fn check_proxy(usage: i32, list: Option<&str>, bypass: Option<&str>) -> Result<(), Refusal> {
    match usage {
        PROXY_USAGE_PRECONFIG | PROXY_USAGE_NO_PROXY => {
            if list.is_some() || bypass.is_some() {
                return Err((
                    hr::E_INVALIDARG,
                    "proxy lists are given only with BITS_PROXY_USAGE_OVERRIDE".into(),
                ));
            }
            Ok(())
        }
        PROXY_USAGE_OVERRIDE => {
            let list = list
                .filter(|l| entries(l).next().is_some())
                .ok_or_else(|| {
                    (
                        hr::E_INVALIDARG,
                        "BITS_PROXY_USAGE_OVERRIDE needs a proxy list".to_string(),
                    )
                })?;
            if list.chars().count() > MAX_PROXY_LIST_CHARS {
                return Err((
                    hr::E_PROXY_LIST_TOO_LARGE,
                    format!("the proxy list exceeds {MAX_PROXY_LIST_CHARS} characters"),
                ));
            }
            if bypass.is_some_and(|b| b.chars().count() > MAX_PROXY_LIST_CHARS) {
                return Err((
                    hr::E_PROXY_BYPASS_LIST_TOO_LARGE,
                    format!("the bypass list exceeds {MAX_PROXY_LIST_CHARS} characters"),
                ));
            }
            for e in entries(list) {
                proxy_uri(e)
                    .ok_or_else(|| (hr::E_INVALID_PROXY_INFO, format!("not a proxy: {e:?}")))?;
            }
            for e in bypass.map(entries).into_iter().flatten() {
                if e != "<local>"
                    && (e.contains("://") || e.contains('/') || e.chars().any(char::is_control))
                {
                    return Err((
                        hr::E_INVALID_PROXY_INFO,
                        format!("not a bypass entry: {e:?}"),
                    ));
                }
            }
            Ok(())
        }
        PROXY_USAGE_AUTODETECT => Err((
            hr::E_NOTIMPL,
            "proxy auto-detection is not supported here".into(),
        )),
        _ => Err((hr::E_INVALIDARG, format!("undefined proxy usage {usage}"))),
    }
}

/// `host[:port]` or `http://host[:port]` as the proxy's URI.
fn proxy_uri(entry: &str) -> Option<hyper::Uri> {
    let with_scheme = if entry.contains("://") {
        entry.to_string()
    } else {
        format!("http://{entry}")
    };
    let uri: hyper::Uri = with_scheme.parse().ok()?;
    (uri.scheme_str() == Some("http")
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.path() == "/")
        .then_some(uri)
}

/// Where a job's requests go: the proxy for `url`, or None (direct), for its proxy settings.
/// PRECONFIG reads the environment (`http_proxy`, `https_proxy`, `no_proxy`, upper case too) as
/// curl and most tools do; OVERRIDE uses the first proxy of the list for every scheme, and its
/// bypass list (entries separated by spaces, `;` or `,`; `<local>` means host names without dots).
/// Loopback destinations always go direct: a proxy elsewhere cannot reach this machine's loopback.
pub fn proxy_for(
    usage: i32,
    list: Option<&str>,
    bypass: Option<&str>,
    url: &url::Url,
) -> Option<hyper::Uri> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => true,
    };
    if loopback {
        return None;
    }
    let uri: hyper::Uri = url.as_str().parse().ok()?;
    match usage {
        PROXY_USAGE_PRECONFIG => hyper_util::client::proxy::matcher::Matcher::from_env()
            .intercept(&uri)
            .map(|i| i.uri().clone()),
        PROXY_USAGE_OVERRIDE => {
            let host = url.host_str().unwrap_or("");
            let bypass = bypass.unwrap_or("");
            if entries(bypass).any(|e| e == "<local>") && !host.contains('.') {
                return None;
            }
            let no: Vec<&str> = entries(bypass)
                .filter(|e| *e != "<local>")
                .map(|e| e.trim_start_matches("*."))
                .collect();
            let first = entries(list?).next()?;
            let proxy = proxy_uri(first)?;
            hyper_util::client::proxy::matcher::Matcher::builder()
                .all(proxy.to_string())
                .no(no.join(","))
                .build()
                .intercept(&uri)
                .map(|i| i.uri().clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::*;

    #[test]
    fn proxy_settings() {
        assert!(check_proxy(PROXY_USAGE_PRECONFIG, None, None).is_ok());
        assert_eq!(
            check_proxy(PROXY_USAGE_NO_PROXY, Some("p:1"), None)
                .unwrap_err()
                .0,
            hr::E_INVALIDARG
        );
        assert_eq!(
            check_proxy(PROXY_USAGE_OVERRIDE, None, None).unwrap_err().0,
            hr::E_INVALIDARG
        );
        assert!(check_proxy(
            PROXY_USAGE_OVERRIDE,
            Some("proxy:3128 http://other:80"),
            Some("<local>;*.corp")
        )
        .is_ok());
        assert_eq!(
            check_proxy(PROXY_USAGE_OVERRIDE, Some("bad proxy/x"), None)
                .unwrap_err()
                .0,
            hr::E_INVALID_PROXY_INFO
        );
        assert_eq!(
            check_proxy(PROXY_USAGE_OVERRIDE, Some("socks5://p:1"), None)
                .unwrap_err()
                .0,
            hr::E_INVALID_PROXY_INFO
        );
        assert_eq!(
            check_proxy(PROXY_USAGE_OVERRIDE, Some(&"p".repeat(32_001)), None)
                .unwrap_err()
                .0,
            hr::E_PROXY_LIST_TOO_LARGE
        );
        assert_eq!(
            check_proxy(PROXY_USAGE_OVERRIDE, Some("p:1"), Some(&"b".repeat(32_001)))
                .unwrap_err()
                .0,
            hr::E_PROXY_BYPASS_LIST_TOO_LARGE
        );
        assert_eq!(check_proxy(3, None, None).unwrap_err().0, hr::E_NOTIMPL);
        assert_eq!(check_proxy(9, None, None).unwrap_err().0, hr::E_INVALIDARG);
    }

    #[test]
    fn routes() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let p = |url: &str| {
            proxy_for(
                PROXY_USAGE_OVERRIDE,
                Some("proxy:3128 backup:1"),
                Some("<local> *.corp.example"),
                &u(url),
            )
        };
        assert_eq!(
            p("http://files.example/x").map(|u| u.to_string()),
            Some("http://proxy:3128/".into())
        );
        assert_eq!(
            p("https://files.example/x").map(|u| u.to_string()),
            Some("http://proxy:3128/".into())
        );
        assert_eq!(p("http://intranet/x"), None, "<local>");
        assert_eq!(p("http://a.corp.example/x"), None, "bypassed domain");
        assert_eq!(
            proxy_for(
                PROXY_USAGE_NO_PROXY,
                None,
                None,
                &u("http://files.example/")
            ),
            None
        );
        for local in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
        ] {
            assert_eq!(p(local), None, "{local} is never proxied");
        }
    }
}
