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
//! `evaluate` holds the decision for a response and is a pure function, tested on its own.

use super::proxy::ForwardProxy;
use super::{Failure, FileTransfer, FileView};
use crate::config::Config;
use crate::hresult::{self as hr, HResult};
use crate::job::{self, FileRange, LENGTH_TO_EOF};
use crate::localfile::Sink;
use crate::state::ErrorContext;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use url::Url;

type PlainClient = hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>;
type TlsClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;
type ForwardClient = hyper_util::client::legacy::Client<ForwardProxy, Empty<Bytes>>;
type TunnelClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>,
    Empty<Bytes>,
>;

/// A proxy and the credentials sent to it.
type ProxyKey = (String, Option<HeaderValue>);

/// The manager's connection pools: direct http and https, and per proxy (and proxy credentials)
/// a forwarding pool for http and a tunnelling one for https. Pools are built on first use, so
/// plain-http users never pay for reading the certificate store.
#[derive(Default)]
pub(crate) struct Clients {
    plain: OnceLock<PlainClient>,
    tls: OnceLock<TlsClient>,
    proxied: parking_lot::Mutex<HashMap<ProxyKey, (ForwardClient, TunnelClient)>>,
}

impl Clients {
    fn request(
        &self,
        config: &Config,
        req: Request<Empty<Bytes>>,
        proxy: Option<(&hyper::Uri, Option<&HeaderValue>)>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        let https = req.uri().scheme_str() == Some("https");
        match proxy {
            None if https => self.tls.get_or_init(|| tls_client(config)).request(req),
            None => self
                .plain
                .get_or_init(|| pool(http_connector(config)))
                .request(req),
            Some((proxy, auth)) => {
                let key = (proxy.to_string(), auth.cloned());
                let (forward, tunnel) = self
                    .proxied
                    .lock()
                    .entry(key)
                    .or_insert_with(|| {
                        let forward = pool(ForwardProxy {
                            http: http_connector(config),
                            proxy: proxy.clone(),
                        });
                        let mut tunnel = Tunnel::new(proxy.clone(), http_connector(config));
                        if let Some(a) = auth {
                            tunnel = tunnel.with_auth(a.clone());
                        }
                        (forward, pool(tls_over(tunnel)))
                    })
                    .clone();
                if https {
                    tunnel.request(req)
                } else {
                    forward.request(req)
                }
            }
        }
    }
}

const MAX_REDIRECTS: usize = 10;
/// Restarts of one file within one attempt before the server is called broken.
const MAX_RESTARTS: u32 = 3;
const USER_AGENT: &str = concat!("openbits/", env!("CARGO_PKG_VERSION"));

/// The platform's root certificates, loaded once per process. If none can be loaded the store is
/// empty and HTTPS fails with a certificate error, while HTTP keeps working.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
                // ring supports the default versions; this arm exists so no panic is possible.
                Err(_) => rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            }
        })
        .clone()
}

fn http_connector(config: &Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http
}

fn pool<C>(connector: C) -> hyper_util::client::legacy::Client<C, Empty<Bytes>>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

fn tls_over<C>(connector: C) -> hyper_rustls::HttpsConnector<C> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config())
        .https_only()
        .enable_http1()
        .wrap_connector(connector)
}

fn tls_client(config: &Config) -> TlsClient {
    pool(tls_over(http_connector(config)))
}

/// What the application added to the job's requests.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestOptions {
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// `Authorization` for the server: sent only to the origin of the file's URL.
    pub server_auth: Option<HeaderValue>,
    pub security_flags: u32,
    /// The job's proxy settings (see `http_options::proxy_for`) and `Proxy-Authorization`.
    pub proxy_usage: i32,
    pub proxy_list: Option<String>,
    pub proxy_bypass: Option<String>,
    pub proxy_auth: Option<HeaderValue>,
}

/// What a response means for the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write the body at `start`; it ends before `end`; the file has `total` bytes.
    Write {
        start: u64,
        end: u64,
        total: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// Dynamic content without a length: write the whole body from 0, until it ends.
    WriteToEnd {
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The partial content cannot be continued: truncate and ask for the whole file.
    Restart(String),
    Fail(Failure),
}

/// Decides what to do with a response to a request for the file from `offset` (0: no Range sent).
/// `known_total` and `known_etag` describe the bytes already on disk; `dynamic` is the job's
/// BITS_JOB_PROPERTY_DYNAMIC_CONTENT.
pub(crate) fn evaluate(
    status: u16,
    headers: &HeaderMap,
    offset: u64,
    known_total: Option<u64>,
    known_etag: Option<&str>,
    dynamic: bool,
) -> Decision {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = text(header::ETAG);
    let last_modified = text(header::LAST_MODIFIED);
    let length = content_length(headers);
    let invalid = |why: String| {
        Decision::Fail(Failure::transient(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            why,
        ))
    };
    match status {
        200 => {
            // A 200 that carries a partial Content-Range is a mislabelled 206; writing it at 0 corrupts.
            if let Some(cr) = headers.get(header::CONTENT_RANGE) {
                if parse_content_range(cr).is_none_or(|(start, _, _)| start != 0) {
                    return Decision::Restart("200 response with a partial Content-Range".into());
                }
            }
            match length {
                Ok(Some(len)) => Decision::Write {
                    start: 0,
                    end: len,
                    total: len,
                    etag,
                    last_modified,
                },
                Ok(None) if dynamic => Decision::WriteToEnd {
                    etag,
                    last_modified,
                },
                Ok(None) => Decision::Fail(Failure::fatal(
                    ErrorContext::RemoteFile,
                    hr::E_MISSING_FILE_SIZE,
                    "the server did not send the file size (Content-Length)",
                )),
                Err(why) => invalid(why),
            }
        }
        206 => {
            if offset == 0 {
                return invalid("206 Partial Content to a request without Range".into());
            }
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if content_type.to_ascii_lowercase().starts_with("multipart/") {
                return Decision::Restart(
                    "multipart 206 response to a single-range request".into(),
                );
            }
            let Some((start, last, total)) = headers
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range)
            else {
                return Decision::Restart("206 response without a usable Content-Range".into());
            };
            if start != offset {
                return Decision::Restart(format!(
                    "206 response starts at byte {start}, requested {offset}"
                ));
            }
            if known_total.is_some_and(|t| t != total) {
                return Decision::Restart(format!("the file's size changed to {total} bytes"));
            }
            if let (Some(known), Some(now)) = (known_etag, etag.as_deref()) {
                if known != now {
                    return Decision::Restart("the file's ETag changed".into());
                }
            }
            match length {
                Ok(Some(len)) if len != last - start + 1 => invalid(format!(
                    "206 Content-Length {len} does not match Content-Range {start}-{last}"
                )),
                Err(why) => invalid(why),
                _ => Decision::Write {
                    start,
                    end: last + 1,
                    total,
                    etag: etag.or_else(|| known_etag.map(str::to_owned)),
                    last_modified,
                },
            }
        }
        412 | 416 => Decision::Restart(format!(
            "the server answered {status} to the resume request"
        )),
        _ => Decision::Fail(status_failure(status)),
    }
}

/// 408, 429 and 5xx are worth retrying; any other status the resume logic does not handle is fatal.
fn status_failure(status: u16) -> Failure {
    let f = if matches!(status, 408 | 429 | 500..=599) {
        Failure::transient
    } else {
        Failure::fatal
    };
    f(
        ErrorContext::RemoteFile,
        HResult::http(status),
        status_text(status),
    )
}

/// What a response to a request for a byte range of the file (AddFileWithRanges) means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeDecision {
    /// Write the body: it holds bytes `start..=last` of a remote file of `total` bytes.
    Write {
        start: u64,
        last: u64,
        total: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The remote file changed (an If-Range failed, or another ETag): every range starts again.
    Restart(String),
    Fail(Failure),
}

/// Decides what to do with a response to a request for `want`; `sent_if_range` says whether the
/// request carried If-Range (then a 200 means "changed", else "no range support").
pub(crate) fn evaluate_range(
    status: u16,
    headers: &HeaderMap,
    want: Want,
    known_etag: Option<&str>,
    sent_if_range: bool,
) -> RangeDecision {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = text(header::ETAG);
    let invalid = |why: String| {
        RangeDecision::Fail(Failure::transient(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            why,
        ))
    };
    match status {
        206 => {
            let Some((start, last, total)) = headers
                .get(header::CONTENT_RANGE)
                .and_then(parse_content_range)
            else {
                return invalid("206 response without a single usable Content-Range".into());
            };
            if start != want.from || want.to.is_some_and(|to| last > to) {
                return invalid(format!(
                    "206 response holds bytes {start}-{last}, not the range asked for"
                ));
            }
            if let (Some(known), Some(now)) = (known_etag, etag.as_deref()) {
                if known != now {
                    return RangeDecision::Restart("the file's ETag changed".into());
                }
            }
            match content_length(headers) {
                Ok(Some(len)) if len != last - start + 1 => invalid(format!(
                    "206 Content-Length {len} does not match Content-Range {start}-{last}"
                )),
                Err(why) => invalid(why),
                _ => RangeDecision::Write {
                    start,
                    last,
                    total,
                    etag: etag.or_else(|| known_etag.map(str::to_owned)),
                    last_modified: text(header::LAST_MODIFIED),
                },
            }
        }
        200 if sent_if_range => RangeDecision::Restart("the file changed on the server".into()),
        200 => RangeDecision::Fail(Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INSUFFICIENT_RANGE_SUPPORT,
            "the server does not support byte ranges",
        )),
        416 => RangeDecision::Fail(Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALID_RANGE,
            format!(
                "the range from byte {} is outside the remote file",
                want.from
            ),
        )),
        412 => RangeDecision::Restart("the server answered 412 to the range request".into()),
        _ => RangeDecision::Fail(status_failure(status)),
    }
}

/// AddFileWithRanges: downloads `ranges` of the file one after another into `sink`. Where the
/// sink stands says which range is under way and how far; a retry asks for the rest of that range
/// with If-Range, as a whole-file resume does.
pub(crate) async fn download_ranges(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    url: &Url,
    ranges: &[FileRange],
) -> Result<(), Failure> {
    let (shared, clients) = (t.shared_arc(), t.clients_arc());
    let stall = shared.config.stall_timeout;
    let finite: Option<u64> = ranges.iter().try_fold(0u64, |sum, r| {
        (r.length != LENGTH_TO_EOF).then(|| sum + r.length)
    });
    let mut restarts = 0;
    loop {
        let view = t.view();
        let done = sink.offset();
        if finite == Some(done) || (finite.is_none() && view.bytes_total == Some(done) && done > 0)
        {
            return Ok(());
        }
        // The range the next byte belongs to, and where in the local file that range begins.
        let mut begins = 0u64;
        let Some(range) = ranges.iter().find(|r| {
            let inside = r.length == LENGTH_TO_EOF || done < begins + r.length;
            if !inside {
                begins += r.length;
            }
            inside
        }) else {
            return Ok(());
        };
        let want = Want {
            from: range.offset + (done - begins),
            to: (range.length != LENGTH_TO_EOF).then(|| range.offset + range.length - 1),
        };
        let (resp, final_url) = get(&clients, &shared.config, url, want, &view, stall).await?;
        let sent_if_range = if_range(view.etag.as_deref(), view.last_modified.as_deref()).is_some();
        let fail = |f: Failure| with_url(f, &final_url);
        match evaluate_range(
            resp.status().as_u16(),
            resp.headers(),
            want,
            view.etag.as_deref(),
            sent_if_range,
        ) {
            RangeDecision::Fail(f) => return Err(fail(f)),
            RangeDecision::Restart(why) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(fail(Failure::transient(
                        ErrorContext::RemoteFile,
                        hr::E_INVALID_SERVER_RESPONSE,
                        why,
                    )));
                }
                t.restart(sink).await?;
            }
            RangeDecision::Write {
                start,
                last,
                total,
                etag,
                last_modified,
            } => {
                if let Some(r) = ranges
                    .iter()
                    .find(|r| r.length != LENGTH_TO_EOF && r.offset + r.length > total)
                {
                    return Err(fail(Failure::fatal(
                        ErrorContext::RemoteFile,
                        hr::E_INVALID_RANGE,
                        format!(
                            "the range {}+{} passes the end of the {total}-byte file",
                            r.offset, r.length
                        ),
                    )));
                }
                // The local file's size: the ranges' lengths, the last one to the end if it says so.
                let size = finite.unwrap_or_else(|| {
                    let (last_range, before) = ranges
                        .split_last()
                        .map_or((0, &[][..]), |(l, b)| (l.offset, b));
                    before.iter().map(|r| r.length).sum::<u64>() + total.saturating_sub(last_range)
                });
                t.learn(Some(size), etag, last_modified);
                stream_body(t, sink, resp.into_body(), done + (last - start + 1), stall)
                    .await
                    .map_err(&fail)?;
            }
        }
    }
}

fn status_text(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("HTTP {status} {reason}").trim_end().to_string()
}

/// Content-Length: Ok(None) when absent; an error when present but not one number.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, String> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let parse = |v: &HeaderValue| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
    let n = parse(first).ok_or("malformed Content-Length")?;
    if values.any(|v| parse(v) != Some(n)) {
        return Err("conflicting Content-Length headers".into());
    }
    Ok(Some(n))
}

/// `bytes first-last/total` with a known total; None for anything else (including `*` totals).
pub(crate) fn parse_content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    let (first, last, total) = (
        first.trim().parse::<u64>().ok()?,
        last.trim().parse::<u64>().ok()?,
        total.trim().parse::<u64>().ok()?,
    );
    (first <= last && last < total).then_some((first, last, total))
}

/// Headers for a request of the file from `offset`.
/// The bytes a request asks for: `from` to `to` inclusive (None: to the end of the file).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    pub from: u64,
    pub to: Option<u64>,
}

impl Want {
    pub(crate) fn rest_from(from: u64) -> Want {
        Want { from, to: None }
    }
}

/// Headers for a request of `want`. A Range header goes out whenever less than the whole file is
/// wanted; If-Range with it when the bytes on disk have a validator.
pub(crate) fn resume_headers(
    want: Want,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> Vec<(header::HeaderName, String)> {
    let mut h = vec![(header::ACCEPT_ENCODING, "identity".to_string())];
    if want.from > 0 || want.to.is_some() {
        let range = match want.to {
            Some(to) => format!("bytes={}-{to}", want.from),
            None => format!("bytes={}-", want.from),
        };
        h.push((header::RANGE, range));
        if let Some(v) = if_range(etag, last_modified) {
            h.push((header::IF_RANGE, v.to_string()));
        }
    }
    h
}

/// A weak ETag may not be used with If-Range (RFC 9110 §13.1.5); Last-Modified then stands in.
fn if_range<'a>(etag: Option<&'a str>, last_modified: Option<&'a str>) -> Option<&'a str> {
    etag.filter(|e| !e.starts_with("W/")).or(last_modified)
}

/// A URL for messages: user and password removed.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn with_url(mut f: Failure, url: &Url) -> Failure {
    f.description = format!("{}: {}", f.description, shown(url));
    f
}

/// Finds a rustls error anywhere in `e`'s chain. `io::Error`s are looked into with `get_ref`,
/// because an `io::Error`'s `source()` skips the error it wraps.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
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

/// Classifies a failure to get a response.
fn request_failure(e: &hyper_util::client::legacy::Error) -> Failure {
    use std::error::Error as _;
    if let Some(tls) = e.source().and_then(find_tls_error) {
        return Failure::fatal(
            ErrorContext::GeneralTransport,
            HResult::from_win32(hr::win32::ERROR_INTERNET_SECURE_FAILURE),
            format!("TLS error: {tls}"),
        );
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

fn timeout_failure(what: &str) -> Failure {
    Failure::transient(
        ErrorContext::GeneralTransport,
        hr::E_TIMEOUT,
        format!("no data from the server for {what}"),
    )
}

/// Sends a GET for `want` of the file, following redirects; `view` gives the validators and
/// the application's request options.
async fn get(
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
        let uri: hyper::Uri = url.as_str().parse().map_err(|e| {
            Failure::fatal(
                ErrorContext::RemoteFile,
                hr::E_INVALIDARG,
                format!("URL cannot be requested ({e})"),
            )
        })?;
        let mut req = Request::get(uri).header(header::USER_AGENT, USER_AGENT);
        for (name, value) in resume_headers(want, etag, last_modified) {
            req = req.header(name, value);
        }
        for (name, value) in &options.headers {
            req = req.header(name, value);
        }
        // Credentials go only to the origin they were given for, never to where it redirects.
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
        let req = req.body(Empty::new()).map_err(|e| {
            Failure::fatal(
                ErrorContext::RemoteFile,
                hr::E_INVALIDARG,
                format!("cannot build the request ({e})"),
            )
        })?;
        let resp = match tokio::time::timeout(
            stall,
            clients.request(
                config,
                req,
                proxy.as_ref().map(|p| (p, options.proxy_auth.as_ref())),
            ),
        )
        .await
        {
            Err(_) => return Err(with_url(timeout_failure("the response headers"), &url)),
            Ok(Err(e)) => return Err(with_url(request_failure(&e), &url)),
            Ok(Ok(r)) => r,
        };
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
                        format!("{} without a usable Location", status_text(status)),
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

/// Downloads the rest of the file into `sink`, resuming from the bytes it holds.
pub(crate) async fn download(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    url: &Url,
) -> Result<(), Failure> {
    let (shared, clients) = (t.shared_arc(), t.clients_arc());
    let stall = shared.config.stall_timeout;
    let mut restarts = 0;
    loop {
        let view = t.view();
        if view.dynamic_content && sink.offset() > 0 {
            // Dynamic content is never resumed: what the server sends now may differ.
            t.restart(sink).await?;
        }
        let offset = sink.offset();
        let (resp, final_url) = get(
            &clients,
            &shared.config,
            url,
            Want::rest_from(offset),
            &view,
            stall,
        )
        .await?;
        if view.request.security_flags & job::REDIRECT_POLICY_MASK
            == job::REDIRECT_POLICY_ALLOW_REPORT
            && &final_url != url
        {
            t.report_final_url(&final_url);
        }
        let decision = evaluate(
            resp.status().as_u16(),
            resp.headers(),
            offset,
            view.bytes_total,
            view.etag.as_deref(),
            view.dynamic_content,
        );
        let too_large = |size: u64| {
            view.max_download_size.filter(|max| size > *max).map(|max| {
                with_url(
                    Failure::fatal(
                        ErrorContext::RemoteFile,
                        hr::E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
                        format!(
                            "the file has {size} bytes; the job's maximum download size is {max}"
                        ),
                    ),
                    &final_url,
                )
            })
        };
        let (start, end, total) = match decision {
            Decision::Fail(f) => return Err(with_url(f, &final_url)),
            Decision::Restart(why) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(with_url(
                        Failure::transient(
                            ErrorContext::RemoteFile,
                            hr::E_INVALID_SERVER_RESPONSE,
                            why,
                        ),
                        &final_url,
                    ));
                }
                t.restart(sink).await?;
                continue;
            }
            Decision::WriteToEnd {
                etag,
                last_modified,
            } => {
                t.learn(None, etag, last_modified);
                let limit = view.max_download_size.unwrap_or(u64::MAX);
                // Past `limit` stream_body reports "more bytes than announced": here that means
                // the maximum download size was reached.
                let result = stream_body(t, sink, resp.into_body(), limit, stall).await;
                if let Err(f) = result {
                    let over =
                        f.code == hr::E_INVALID_SERVER_RESPONSE && view.max_download_size.is_some();
                    return Err(match too_large(limit.saturating_add(1)).filter(|_| over) {
                        Some(failure) => failure,
                        None => with_url(f, &final_url),
                    });
                }
                t.size_known(sink.offset());
                return Ok(());
            }
            Decision::Write {
                start,
                end,
                total,
                etag,
                last_modified,
            } => {
                if let Some(failure) = too_large(total) {
                    return Err(failure);
                }
                if start == 0 && offset > 0 {
                    t.restart(sink).await?;
                }
                t.learn(Some(total), etag, last_modified);
                (start, end, total)
            }
        };
        debug_assert_eq!(start, sink.offset());
        stream_body(t, sink, resp.into_body(), end, stall)
            .await
            .map_err(|f| with_url(f, &final_url))?;
        if sink.offset() == total {
            return Ok(());
        }
        if sink.offset() < end {
            return Err(with_url(
                Failure::transient(
                    ErrorContext::GeneralTransport,
                    hr::E_CONNECTION_CLOSED,
                    format!(
                        "the connection closed after {} of {total} bytes",
                        sink.offset()
                    ),
                ),
                &final_url,
            ));
        }
        // The server sent a shorter range than asked for; ask for the rest.
    }
}

/// Writes the body into `sink` until `end`. Each chunk hyper hands over is written where it
/// belongs, with no copy and no allocation of ours.
async fn stream_body(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    mut body: Incoming,
    end: u64,
    stall: Duration,
) -> Result<(), Failure> {
    let timer = tokio::time::sleep(stall);
    tokio::pin!(timer);
    loop {
        timer.as_mut().reset(tokio::time::Instant::now() + stall);
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = &mut timer => return Err(timeout_failure(&format!("{} s", stall.as_secs_f64()))),
        };
        let frame = match frame {
            None => return Ok(()),
            Some(Err(e)) => {
                return Err(Failure::transient(
                    ErrorContext::GeneralTransport,
                    hr::E_CONNECTION_CLOSED,
                    format!("the connection failed after {} bytes ({e})", sink.offset()),
                ))
            }
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.len() as u64 > end - sink.offset() {
            return Err(Failure::transient(
                ErrorContext::RemoteFile,
                hr::E_INVALID_SERVER_RESPONSE,
                "the server sent more bytes than it announced",
            ));
        }
        sink.write(&data).map_err(|e| {
            Failure::local_io(
                "cannot write",
                std::path::Path::new("the temporary file"),
                &e,
            )
        })?;
        t.progress(sink).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    /// The decision for a job without dynamic content.
    fn evaluate(
        status: u16,
        headers: &HeaderMap,
        offset: u64,
        total: Option<u64>,
        etag: Option<&str>,
    ) -> Decision {
        super::evaluate(status, headers, offset, total, etag, false)
    }

    #[test]
    fn dynamic_content_needs_no_length() {
        assert!(matches!(
            super::evaluate(200, &h(&[]), 0, None, None, true),
            Decision::WriteToEnd { .. }
        ));
        // A length, when sent, is still used.
        assert_eq!(
            super::evaluate(200, &h(&[("content-length", "3")]), 0, None, None, true),
            write(0, 3, 3, None)
        );
    }

    fn write(start: u64, end: u64, total: u64, etag: Option<&str>) -> Decision {
        Decision::Write {
            start,
            end,
            total,
            etag: etag.map(Into::into),
            last_modified: None,
        }
    }

    #[test]
    fn fresh_200() {
        let d = evaluate(
            200,
            &h(&[("content-length", "10"), ("etag", "\"a\"")]),
            0,
            None,
            None,
        );
        assert_eq!(d, write(0, 10, 10, Some("\"a\"")));
    }

    #[test]
    fn missing_length_is_fatal() {
        match evaluate(200, &h(&[]), 0, None, None) {
            Decision::Fail(f) => assert!(!f.transient && f.code == hr::E_MISSING_FILE_SIZE),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn good_206_continues() {
        let d = evaluate(
            206,
            &h(&[("content-range", "bytes 4-9/10"), ("content-length", "6")]),
            4,
            Some(10),
            Some("\"a\""),
        );
        assert_eq!(d, write(4, 10, 10, Some("\"a\"")));
    }

    #[test]
    fn resume_answered_with_200_starts_over() {
        // The server ignored Range (or If-Range failed): the whole file comes, written from 0.
        let d = evaluate(
            200,
            &h(&[("content-length", "12")]),
            4,
            Some(10),
            Some("\"a\""),
        );
        assert_eq!(d, write(0, 12, 12, None));
    }

    #[test]
    fn wrong_206_restarts() {
        let cases: &[(&[(&str, &str)], u64)] = &[
            (&[("content-range", "bytes 0-9/10")], 4), // starts before the offset
            (&[("content-range", "bytes 5-9/10")], 4), // starts after
            (&[("content-range", "bytes 4-9/11")], 4), // total changed
            (&[("content-range", "bytes */10")], 4),   // unusable
            (&[("content-type", "multipart/byteranges; boundary=x")], 4),
            (&[("content-range", "bytes 4-9/10"), ("etag", "\"b\"")], 4), // other representation
        ];
        for (hs, off) in cases {
            assert!(
                matches!(
                    evaluate(206, &h(hs), *off, Some(10), Some("\"a\"")),
                    Decision::Restart(_)
                ),
                "{hs:?}"
            );
        }
        assert!(matches!(
            evaluate(412, &h(&[]), 4, Some(10), None),
            Decision::Restart(_)
        ));
        assert!(matches!(
            evaluate(416, &h(&[]), 4, Some(10), None),
            Decision::Restart(_)
        ));
        // A 200 claiming a mid-file range is a mislabelled 206.
        assert!(matches!(
            evaluate(
                200,
                &h(&[("content-range", "bytes 4-9/10"), ("content-length", "6")]),
                4,
                Some(10),
                None
            ),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn inconsistent_206_fails() {
        let d = evaluate(
            206,
            &h(&[("content-range", "bytes 4-9/10"), ("content-length", "5")]),
            4,
            Some(10),
            None,
        );
        assert!(
            matches!(d, Decision::Fail(f) if f.transient && f.code == hr::E_INVALID_SERVER_RESPONSE)
        );
        let d = evaluate(206, &h(&[("content-range", "bytes 0-9/10")]), 0, None, None);
        assert!(matches!(d, Decision::Fail(f) if f.code == hr::E_INVALID_SERVER_RESPONSE));
    }

    #[test]
    fn status_classes() {
        for s in [408u16, 429, 500, 502, 503, 504] {
            assert!(
                matches!(evaluate(s, &h(&[]), 0, None, None), Decision::Fail(f) if f.transient && f.code == HResult::http(s))
            );
        }
        for s in [400u16, 401, 403, 404, 410, 204, 304] {
            assert!(
                matches!(evaluate(s, &h(&[]), 0, None, None), Decision::Fail(f) if !f.transient && f.code == HResult::http(s))
            );
        }
        match evaluate(404, &h(&[]), 0, None, None) {
            Decision::Fail(f) => assert_eq!(f.description, "HTTP 404 Not Found"),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn range_decisions() {
        let want = Want {
            from: 100,
            to: Some(199),
        };
        let ok = h(&[
            ("content-range", "bytes 100-199/1000"),
            ("content-length", "100"),
        ]);
        assert!(matches!(
            evaluate_range(206, &ok, want, None, false),
            RangeDecision::Write {
                start: 100,
                last: 199,
                total: 1000,
                ..
            }
        ));
        // A shorter answer is fine (the rest is asked for next); a longer or misplaced one is not.
        let short = h(&[("content-range", "bytes 100-149/1000")]);
        assert!(matches!(
            evaluate_range(206, &short, want, None, false),
            RangeDecision::Write { last: 149, .. }
        ));
        for bad in ["bytes 100-299/1000", "bytes 90-199/1000"] {
            assert!(
                matches!(
                    evaluate_range(206, &h(&[("content-range", bad)]), want, None, false),
                    RangeDecision::Fail(_)
                ),
                "{bad}"
            );
        }
        let other = h(&[("content-range", "bytes 100-199/1000"), ("etag", "\"b\"")]);
        assert!(matches!(
            evaluate_range(206, &other, want, Some("\"a\""), true),
            RangeDecision::Restart(_)
        ));
        // 200: no range support, unless it answers a failed If-Range.
        assert!(
            matches!(evaluate_range(200, &h(&[]), want, None, false), RangeDecision::Fail(f) if f.code == hr::E_INSUFFICIENT_RANGE_SUPPORT)
        );
        assert!(matches!(
            evaluate_range(200, &h(&[]), want, Some("\"a\""), true),
            RangeDecision::Restart(_)
        ));
        assert!(
            matches!(evaluate_range(416, &h(&[]), want, None, false), RangeDecision::Fail(f) if f.code == hr::E_INVALID_RANGE)
        );
        assert_eq!(
            resume_headers(want, None, None)[1],
            (header::RANGE, "bytes=100-199".to_string())
        );
    }

    #[test]
    fn request_headers() {
        let fresh = resume_headers(Want::rest_from(0), Some("\"a\""), None);
        assert_eq!(
            fresh,
            vec![(header::ACCEPT_ENCODING, "identity".to_string())]
        );
        let r = resume_headers(
            Want::rest_from(5),
            Some("\"a\""),
            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        assert!(r.contains(&(header::RANGE, "bytes=5-".into())));
        assert!(r.contains(&(header::IF_RANGE, "\"a\"".into())));
        let weak = resume_headers(
            Want::rest_from(5),
            Some("W/\"a\""),
            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        );
        assert!(weak.contains(&(header::IF_RANGE, "Mon, 01 Jan 2024 00:00:00 GMT".into())));
        let none = resume_headers(Want::rest_from(5), None, None);
        assert!(!none.iter().any(|(n, _)| n == header::IF_RANGE));
    }

    #[test]
    fn content_range_parsing() {
        let p = |s: &str| parse_content_range(&HeaderValue::from_str(s).unwrap());
        assert_eq!(p("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(p("bytes 9-9/10"), Some((9, 9, 10)));
        assert_eq!(p("bytes 9-10/10"), None);
        assert_eq!(p("bytes 5-4/10"), None);
        assert_eq!(p("bytes 0-9/*"), None);
        assert_eq!(p("items 0-9/10"), None);
    }
}
