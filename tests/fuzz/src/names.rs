//! Target `urls_and_headers`: what an application hands the API as text: remote URLs (and the
//! request target made of them), local names, byte ranges, custom headers, Basic credentials, and
//! proxy and bypass lists with the route they give a URL.

use arbitrary::{Result, Unstructured};
use openbits_core::fuzzing;
use openbits_core::http_options::{self, PROXY_USAGE_OVERRIDE};
use openbits_core::job::{FileRange, LENGTH_TO_EOF};

/// Remote names the fuzzer's text is spliced into, so it reaches hosts, ports and paths.
const URLS: &[&str] = &[
    "",
    "http://",
    "https://",
    "file://",
    "http://example.com/",
    "http://[::1]:",
];
const PROXIES: &[&str] = &[
    "proxy:8080",
    "http://proxy:3128",
    "<local>",
    "*.example.com",
    ";",
    " ",
];

pub fn urls_and_headers(data: &[u8]) {
    let _ = run(&mut Unstructured::new(data));
}

fn run(u: &mut Unstructured) -> Result<()> {
    let url_text = format!("{}{}", u.choose(URLS)?, u.arbitrary::<&str>()?);
    let url = match fuzzing::remote_url(&url_text) {
        Ok((url, uri)) => {
            match url.scheme() {
                "http" | "https" => assert!(uri.is_some(), "{url_text:?}: no request target"),
                "file" => {}
                other => panic!("{url_text:?}: scheme {other} accepted"),
            }
            Some(url)
        }
        Err(e) => {
            assert!(e.code.0 < 0, "{url_text:?}: {e}");
            None
        }
    };

    let list = proxy_list(u)?;
    let bypass = if u.arbitrary()? {
        Some(proxy_list(u)?)
    } else {
        None
    };
    let usage = u.int_in_range(-1..=4)?;
    let checked = http_options::check_proxy(usage, Some(&list), bypass.as_deref());
    if checked.is_ok() && usage == PROXY_USAGE_OVERRIDE {
        let target = url
            .clone()
            .unwrap_or_else(|| url::Url::parse("http://example.com/x").expect("a valid URL"));
        if let Some(proxy) = http_options::proxy_for(usage, Some(&list), bypass.as_deref(), &target)
        {
            assert_eq!(proxy.scheme_str(), Some("http"), "{list:?} for {target}");
        }
    }

    let text: &str = u.arbitrary()?;
    if let Ok(headers) = http_options::parse_headers(text) {
        // What was accepted prints back in BITS's form and parses to the same headers.
        let printed: String = headers
            .iter()
            .map(|(n, v)| {
                // Values came from a &str: UTF-8, though not all ASCII (HTTP's obs-text).
                let v = std::str::from_utf8(v.as_bytes()).expect("accepted values are UTF-8");
                format!("{n}: {v}\r\n")
            })
            .collect();
        let again = http_options::parse_headers(&printed).map_err(|(_, why)| why);
        assert_eq!(
            again.as_ref(),
            Ok(&headers),
            "{text:?} printed as {printed:?}"
        );
    }
    let user: &str = u.arbitrary()?;
    let password: &str = u.arbitrary()?;
    let _ = http_options::basic(user, password);

    let local = format!("/{}", u.arbitrary::<&str>()?);
    if let Ok(path) = fuzzing::local_name(&local) {
        assert!(path.is_absolute() && path.parent().is_some(), "{local:?}");
    }

    let mut ranges = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        let offset = crate::input::number(u)?;
        let length = if u.ratio(1, 5)? {
            LENGTH_TO_EOF
        } else {
            crate::input::number(u)?
        };
        ranges.push(FileRange { offset, length });
    }
    if fuzzing::ranges(&ranges).is_ok() {
        // Accepted ranges are non-empty and pairwise disjoint.
        for (i, a) in ranges.iter().enumerate() {
            assert!(a.length > 0);
            for b in &ranges[i + 1..] {
                let a_end = a.offset.saturating_add(a.length);
                let b_end = b.offset.saturating_add(b.length);
                assert!(a_end <= b.offset || b_end <= a.offset, "{ranges:?}");
            }
        }
    }
    Ok(())
}

/// A proxy or bypass list: entries from `PROXIES` and fuzzed text, in BITS's separators.
fn proxy_list(u: &mut Unstructured) -> Result<String> {
    let mut list = String::new();
    for _ in 0..u.int_in_range(0..=4)? {
        if u.arbitrary()? {
            list.push_str(u.choose(PROXIES)?);
        } else {
            list.push_str(u.arbitrary()?);
        }
        list.push(*u.choose(&[' ', ';', ','])?);
    }
    Ok(list)
}
