//! HTTP downloads that resume correctly.
//!
//! The rules (the AOSP DownloadManager rules; peers.md §4 lists the bugs each one prevents):
//! - A retry continues from the bytes on disk with `Range: bytes=N-` and `If-Range` (a strong ETag,
//!   else Last-Modified), and always sends `Accept-Encoding: identity` so offsets mean bytes of the file.
//! - A 206 is accepted only if its Content-Range starts at N and its total matches what we know; its
//!   Content-Length must match the range. Anything else restarts the file from 0 instead of splicing.
//! - A 200 means "here is the whole file": the temporary file is truncated, never appended to.
//! - 412 and 416 restart the file; no range is ever asked for at the end of a complete file.
//! - The body may never run past the length announced, and the file is done only when its length
//!   equals the expected size.
//! - 408, 429, 5xx and transport failures are transient; other statuses are fatal (0x8019xxxx).
//!
//! `decide.rs` holds the decision for a response (`evaluate`, `evaluate_range`), pure functions
//! tested on their own; `client.rs` the connection pools; `proxy.rs` the forwarding proxy
//! connector; this file sends a request (`get`: redirects, credentials, the proxy route) and
//! classifies what goes wrong. The download loops that use them are in `transfer/download/`.

mod client;
mod decide;
mod proxy;

pub(crate) use client::Clients;
pub(crate) use decide::{
    evaluate, evaluate_range, if_range, parse_content_range, resume_headers, retry_after_ms,
    told_retry_after, Decision, RangeDecision, Want,
};

use super::{Failure, FileView};
use crate::config::Config;
use crate::hresult::{self as hr, HResult};
use crate::job;
use crate::state::ErrorContext;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use std::time::Duration;
use url::Url;

const MAX_REDIRECTS: usize = 10;
/// The most of an upload Ack's body that is read.
const MAX_ACK_BODY: usize = 64 << 10;
const USER_AGENT: &str = concat!("openbits/", env!("CARGO_PKG_VERSION"));

/// What the application added to the job's requests.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestOptions {
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// `Authorization` for the server: sent only to the origin of the file's URL.
    pub server_auth: Option<HeaderValue>,
    pub security_flags: u32,
    /// The job's proxy settings (see `http_options::proxy_for`) and `Proxy-Authorization`.
    pub proxy_usage: i32,
    pub proxy_list: Option<Box<str>>,
    pub proxy_bypass: Option<Box<str>>,
    pub proxy_auth: Option<HeaderValue>,
    /// Roots, client certificate, CRL, BG_SSL_* flags and the server certificate callback.
    pub tls: crate::tls::TlsSettings,
}

/// A URL for messages: user and password removed.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

pub(crate) fn with_url(mut f: Failure, url: &Url) -> Failure {
    f.description = format!("{}: {}", f.description, shown(url));
    f
}

/// Finds a rustls error anywhere in `e`'s chain. `io::Error`s are looked into with `get_ref`,
/// because an `io::Error`'s `source()` skips the error it wraps.
pub(super) fn find_tls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return find_tls_error(inner);
    }
    e.source().and_then(find_tls_error)
}

/// Whether hyper gave up the request because its connection closed before carrying it.
fn canceled(e: &hyper_util::client::legacy::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_canceled())
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Classifies a failure to get a response.
fn request_failure(failed: &client::RequestError) -> Failure {
    use std::error::Error as _;
    let e = &failed.error;
    let tls = e.source().and_then(find_tls_error).or_else(|| {
        // The connection's own TLS error explains a request it never carried.
        failed.connection_tls.as_ref().filter(|_| canceled(e))
    });
    if let Some(tls) = tls {
        let (context, code, sentence, transient) = crate::tls::classify(tls);
        return if transient {
            Failure::transient(context, code, sentence)
        } else {
            Failure::fatal(context, code, sentence)
        };
    }
    let mut io_kind = None;
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    if e.is_connect() {
        // hyper-util's connector reports resolver failures only as text.
        if detail.contains("dns error") {
            return Failure::transient(
                ErrorContext::GeneralTransport,
                HResult::from_win32(hr::win32::ERROR_INTERNET_NAME_NOT_RESOLVED),
                format!("cannot resolve the server name ({detail})"),
            );
        }
        if io_kind == Some(std::io::ErrorKind::TimedOut) {
            return Failure::transient(
                ErrorContext::GeneralTransport,
                hr::E_TIMEOUT,
                "connection timed out",
            );
        }
        return Failure::transient(
            ErrorContext::GeneralTransport,
            hr::E_CONNECT_FAILURE,
            format!("cannot connect ({detail})"),
        );
    }
    Failure::transient(
        ErrorContext::GeneralTransport,
        hr::E_CONNECTION_CLOSED,
        format!("connection failed ({detail})"),
    )
}

/// The job's TLS files (roots, client certificate, CRL) cannot be used: the application must
/// fix them, so the job stops in ERROR.
fn tls_files_failure((code, sentence): client::TlsRefusal) -> Failure {
    Failure::fatal(ErrorContext::GeneralTransport, code, sentence)
}

pub(crate) fn timeout_failure(what: &str) -> Failure {
    Failure::transient(
        ErrorContext::GeneralTransport,
        hr::E_TIMEOUT,
        format!("no data from the server for {what}"),
    )
}

/// Refuses a response whose header block is over `MAX_RESPONSE_HEAD`. hyper's buffer limit
/// already ends a head that keeps coming, but one that arrives in a single read can exceed it.
fn check_head(headers: &hyper::HeaderMap, url: &Url) -> Result<(), Failure> {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size <= client::MAX_RESPONSE_HEAD {
        return Ok(());
    }
    Err(with_url(
        Failure::transient(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            format!(
                "the response's headers are too large ({size} bytes; at most {} are read)",
                client::MAX_RESPONSE_HEAD
            ),
        ),
        url,
    ))
}

/// The request target for `url` (a URL hyper cannot send is a fatal error of the job).
pub(crate) fn request_uri(url: &Url) -> Result<hyper::Uri, Failure> {
    url.as_str().parse().map_err(|e| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALIDARG,
            format!("URL cannot be requested ({e})"),
        )
    })
}

/// Sends `req` by the route `proxy` (with the job's TLS settings) and waits up to `stall` for the
/// response headers.
async fn send(
    clients: &Clients,
    config: &Config,
    req: Request<client::Body>,
    proxy: Option<&hyper::Uri>,
    options: &RequestOptions,
    url: &Url,
    stall: Duration,
) -> Result<Response<Incoming>, Failure> {
    let pending = clients
        .request(
            config,
            req,
            proxy.map(|p| (p, options.proxy_auth.as_ref())),
            &options.tls,
        )
        .map_err(|r| with_url(tls_files_failure(r), url))?;
    match tokio::time::timeout(stall, pending).await {
        Err(_) => Err(with_url(timeout_failure("the response headers"), url)),
        Ok(Err(e)) => Err(with_url(request_failure(&e), url)),
        Ok(Ok(r)) => {
            check_head(r.headers(), url)?;
            Ok(r)
        }
    }
}

/// Sends a GET for `want` of the file, following redirects; `view` gives the validators and
/// the application's request options.
pub(crate) async fn get(
    clients: &Clients,
    config: &Config,
    url: &Url,
    want: Want,
    view: &FileView,
    stall: Duration,
) -> Result<(Response<Incoming>, Url), Failure> {
    let (etag, last_modified, options) = (
        view.etag.as_deref(),
        view.last_modified.as_deref(),
        &view.request,
    );
    let origin = url.origin();
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let uri = request_uri(&url)?;
        let mut req = Request::get(uri).header(header::USER_AGENT, USER_AGENT);
        for (name, value) in resume_headers(want, etag, last_modified) {
            req = req.header(name, value);
        }
        // Credentials go only to the origin they were given for, never to where it redirects;
        // those of SetCredentials replace an Authorization custom header.
        let same_origin = url.origin() == origin;
        for (name, value) in &options.headers {
            if crate::http_options::is_credential(name)
                && (!same_origin
                    || (name == header::AUTHORIZATION && options.server_auth.is_some()))
            {
                continue;
            }
            req = req.header(name, value);
        }
        if let Some(auth) = options
            .server_auth
            .as_ref()
            .filter(|_| url.origin() == origin)
        {
            req = req.header(header::AUTHORIZATION, auth);
        }
        // Each hop has its own route: a redirect may lead to a host the bypass list names.
        let proxy = crate::http_options::proxy_for(
            options.proxy_usage,
            options.proxy_list.as_deref(),
            options.proxy_bypass.as_deref(),
            &url,
        );
        if let (Some(_), Some(auth), "http") = (&proxy, &options.proxy_auth, url.scheme()) {
            // A forwarding proxy reads it from the request; a tunnel sends it with CONNECT.
            req = req.header(header::PROXY_AUTHORIZATION, auth);
        }
        let req = req.body(client::Body::default()).map_err(|e| {
            Failure::fatal(
                ErrorContext::RemoteFile,
                hr::E_INVALIDARG,
                format!("cannot build the request ({e})"),
            )
        })?;
        let resp = send(clients, config, req, proxy.as_ref(), options, &url, stall).await?;
        let status = resp.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let Some(next) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Err(with_url(
                    Failure::fatal(
                        ErrorContext::RemoteFile,
                        HResult::http(status),
                        format!("{} without a usable Location", decide::status_text(status)),
                    ),
                    &url,
                ));
            };
            let policy = options.security_flags & job::REDIRECT_POLICY_MASK;
            let downgrade = url.scheme() == "https"
                && next.scheme() == "http"
                && options.security_flags & job::REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP == 0;
            if policy == job::REDIRECT_POLICY_DISALLOW
                || downgrade
                || !matches!(next.scheme(), "http" | "https")
            {
                return Err(with_url(
                    Failure::fatal(
                        ErrorContext::RemoteFile,
                        HResult::from_win32(status as u32),
                        format!("redirect to {} refused", shown(&next)),
                    ),
                    &url,
                ));
            }
            url = next;
            continue;
        }
        return Ok((resp, url));
    }
    Err(with_url(
        Failure::fatal(
            ErrorContext::RemoteFile,
            HResult::from_win32(302),
            "too many redirects",
        ),
        &url,
    ))
}

/// Sends one BITS upload packet (`method`, normally BITS_POST) with `headers` and `body` to `url`
/// (no redirects: [MC-BUP] forbids following them for packets) and reads the answer, an Ack with
/// a small body, to its end so the connection can be reused. Returns the status and headers.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_packet(
    clients: &Clients,
    config: &Config,
    url: &Url,
    method: &str,
    headers: &hyper::HeaderMap,
    body: bytes::Bytes,
    options: &RequestOptions,
    stall: Duration,
) -> Result<(u16, hyper::HeaderMap), Failure> {
    use http_body_util::BodyExt;
    let uri = request_uri(url)?;
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALIDARG,
            format!("method: {e}"),
        )
    })?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::USER_AGENT, USER_AGENT);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    for (name, value) in &options.headers {
        if name == header::AUTHORIZATION && options.server_auth.is_some() {
            continue;
        }
        req = req.header(name, value);
    }
    if let Some(auth) = &options.server_auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let proxy = crate::http_options::proxy_for(
        options.proxy_usage,
        options.proxy_list.as_deref(),
        options.proxy_bypass.as_deref(),
        url,
    );
    if let (Some(_), Some(auth), "http") = (&proxy, &options.proxy_auth, url.scheme()) {
        req = req.header(header::PROXY_AUTHORIZATION, auth);
    }
    let req = req.body(client::Body::new(body)).map_err(|e| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALIDARG,
            format!("cannot build the request ({e})"),
        )
    })?;
    let resp = send(clients, config, req, proxy.as_ref(), options, url, stall).await?;
    let (parts, body) = resp.into_parts();
    // An Ack's body is empty or a few words; a server that sends more is not believed, and
    // never makes this buffer grow.
    let body = http_body_util::Limited::new(body, MAX_ACK_BODY);
    match tokio::time::timeout(stall, body.collect()).await {
        Err(_) => return Err(with_url(timeout_failure("the response body"), url)),
        Ok(Err(e)) => {
            return Err(with_url(
                Failure::transient(
                    ErrorContext::GeneralTransport,
                    hr::E_CONNECT_FAILURE,
                    format!("the connection broke while reading the answer ({e})"),
                ),
                url,
            ))
        }
        Ok(Ok(_)) => {}
    }
    Ok((parts.status.as_u16(), parts.headers))
}
