//! The manager's connection pools (`Clients`): direct http and https, and per proxy a forwarding
//! pool and a tunnelling one; per job TLS settings, an https pool; the connectors under them, each
//! wrapped in `Capped`, which holds `max_connections_per_host` over every pool.

use super::proxy::ForwardProxy;
use crate::config::Config;
use crate::policy::hosts::Connections;
use crate::tls::{self, TlsKey, TlsSettings};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request the pools send. It can carry data (uploads will), and an empty one
/// is sent exactly like no body: a GET gets no Content-Length and no payload.
pub(crate) type Body = Full<Bytes>;

type PlainClient = hyper_util::client::legacy::Client<Capped<HttpConnector>, Body>;
type TlsClient =
    hyper_util::client::legacy::Client<Capped<hyper_rustls::HttpsConnector<HttpConnector>>, Body>;
type ForwardClient = hyper_util::client::legacy::Client<Capped<ForwardProxy>, Body>;
type TunnelClient = hyper_util::client::legacy::Client<
    Capped<hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>>,
    Body,
>;

/// A proxy and the credentials sent to it.
type ProxyKey = (String, Option<HeaderValue>);

/// A pool for jobs with their own TLS settings, and the callback its verifier refers to (weakly):
/// once the job drops that callback, the pool is dropped at the next insertion.
type JobTls = (
    TlsClient,
    Option<std::sync::Weak<crate::tls::ServerCertificateCallback>>,
);

/// The manager's connection pools: direct http and https, and per proxy (and proxy credentials)
/// a forwarding pool for http and a tunnelling one for https. Pools are built on first use, so
/// plain-http users never pay for reading the certificate store. Jobs with default TLS settings
/// share one https pool (and its kept-alive connections); jobs with their own (roots, client
/// certificate, CRL, flags, callback) share a pool per distinct setting.
///
/// Every pool's connector takes a connection permit of the destination's origin from the same
/// `Connections` (`Capped`), so `max_connections_per_host` bounds the sockets open to an origin
/// over all of them, idle kept-alive ones included.
pub(crate) struct Clients {
    plain: OnceLock<PlainClient>,
    tls: OnceLock<TlsClient>,
    job_tls: parking_lot::Mutex<HashMap<TlsKey, JobTls>>,
    proxied: parking_lot::Mutex<HashMap<(ProxyKey, TlsKey), (ForwardClient, TunnelClient)>>,
    connections: Arc<Connections>,
}

/// Why a request could not be sent: the job's TLS files cannot be used.
pub(crate) type TlsRefusal = (crate::hresult::HResult, String);

/// A request that got no response: hyper's error, and the TLS error that ended the connection
/// the request started, if one did.
///
/// hyper reports a connection that broke before it carried the request only as "canceled: connection
/// was not ready", and keeps the reason to itself. With TLS 1.3 that is how a server's refusal of the
/// client's certificate arrives: the handshake is over on the client's side when the server
/// reads the certificate (or its absence) and answers with an alert, which the connection's
/// task reads while the request waits for it. The alert is why the request failed.
pub(crate) struct RequestError {
    pub(crate) error: hyper_util::client::legacy::Error,
    pub(crate) connection_tls: Option<rustls::Error>,
}

impl Clients {
    /// Pools whose connections take their permits from `connections` (the manager's `Hosts`).
    pub(crate) fn new(connections: Arc<Connections>) -> Clients {
        Clients {
            plain: OnceLock::new(),
            tls: OnceLock::new(),
            job_tls: Default::default(),
            proxied: Default::default(),
            connections,
        }
    }

    /// Sends `req` on the pool for its route and TLS settings. The future is the response head;
    /// while it is pending, a connection this request started is wanted (see `Capped`).
    pub(super) fn request(
        &self,
        config: &Config,
        req: Request<Body>,
        proxy: Option<(&hyper::Uri, Option<&HeaderValue>)>,
        tls: &TlsSettings,
    ) -> Result<impl Future<Output = Result<Response<Incoming>, RequestError>> + Send, TlsRefusal>
    {
        let pending = self.route(config, req, proxy, tls)?;
        let (answered, wanted) = watch::channel(());
        let tls_failure = TlsFailure::default();
        let scope = Started {
            wanted,
            tls_failure: tls_failure.clone(),
        };
        Ok(async move {
            let response = STARTED.scope(scope, pending).await;
            // The request has its answer (or failed): a connection it started and no longer
            // needs stops waiting for a permit.
            drop(answered);
            response.map_err(|error| RequestError {
                error,
                connection_tls: tls_failure.0.get().cloned(),
            })
        })
    }

    fn route(
        &self,
        config: &Config,
        req: Request<Body>,
        proxy: Option<(&hyper::Uri, Option<&HeaderValue>)>,
        tls: &TlsSettings,
    ) -> Result<hyper_util::client::legacy::ResponseFuture, TlsRefusal> {
        let https = req.uri().scheme_str() == Some("https");
        let default_tls = tls.is_default();
        Ok(match proxy {
            None if https && default_tls => self
                .tls
                .get_or_init(|| {
                    pool(
                        config,
                        self.capped(
                            config,
                            tls_over(http_connector(config), tls::default_client_config()),
                        ),
                    )
                })
                .request(req),
            None if https => {
                let key = tls.key();
                let mut pools = self.job_tls.lock();
                let client = match pools.get(&key) {
                    Some((c, _)) => c.clone(),
                    None => {
                        let c = pool(
                            config,
                            self.capped(
                                config,
                                tls_over(http_connector(config), tls.client_config()?),
                            ),
                        );
                        pools.retain(|_, (_, cb)| cb.as_ref().is_none_or(|w| w.strong_count() > 0));
                        pools.insert(key, (c.clone(), tls.callback.as_ref().map(Arc::downgrade)));
                        c
                    }
                };
                drop(pools);
                client.request(req)
            }
            None => self
                .plain
                .get_or_init(|| pool(config, self.capped(config, http_connector(config))))
                .request(req),
            Some((proxy, auth)) => {
                let key = (
                    (proxy.to_string(), auth.cloned()),
                    if https { tls.key() } else { TlsKey::default() },
                );
                let mut pools = self.proxied.lock();
                let (forward, tunnel) = match pools.get(&key) {
                    Some(p) => p.clone(),
                    None => {
                        let tls_config = if https && !default_tls {
                            tls.client_config()?
                        } else {
                            tls::default_client_config()
                        };
                        let forward = pool(
                            config,
                            self.capped(
                                config,
                                ForwardProxy {
                                    http: http_connector(config),
                                    proxy: proxy.clone(),
                                },
                            ),
                        );
                        let mut tunnel = Tunnel::new(proxy.clone(), http_connector(config));
                        if let Some(a) = auth {
                            tunnel = tunnel.with_auth(a.clone());
                        }
                        let p = (
                            forward,
                            pool(config, self.capped(config, tls_over(tunnel, tls_config))),
                        );
                        pools.insert(key, p.clone());
                        p
                    }
                };
                drop(pools);
                if https {
                    tunnel.request(req)
                } else {
                    forward.request(req)
                }
            }
        })
    }
}

/// The largest response head (status line and headers) openbits reads.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 << 10;

impl Clients {
    fn capped<C>(&self, config: &Config, inner: C) -> Capped<C> {
        Capped {
            inner,
            connections: self.connections.clone(),
            limit: config.max_connections_per_host,
        }
    }
}

/// How long a pool keeps an idle connection. An idle connection holds one of its origin's
/// connection permits, and a request from another pool to that origin (other TLS settings, or
/// through a proxy) cannot use it: it waits for the permit until the connection is closed, at
/// most about twice this (hyper's reaper looks every `IDLE_TIMEOUT`), well within the 60 s
/// stall timeout that bounds the wait for a response head. Within one pool an idle connection
/// is reused at once, and files of a job or queued jobs follow each other far faster than this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connect timeout (`Config::connect_timeout`) is the TCP connect's, inside the HttpConnector:
/// the wait for a connection permit (`Capped`) comes before and is not counted.
fn http_connector(config: &Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http
}

fn pool<C>(config: &Config, connector: C) -> hyper_util::client::legacy::Client<C, Body>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        // Without a timer hyper drops an expired idle connection only when a request of its
        // pool looks at it, so its permit could stay taken for good.
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        // More could not be open anyway; said so hyper never keeps one beyond the cap.
        .pool_max_idle_per_host(config.max_connections_per_host.max(1))
        // A response head larger than this (a hostile server's endless headers) fails the
        // request instead of growing the buffer; it also caps each read of a body.
        .http1_max_buf_size(MAX_RESPONSE_HEAD)
        .build(connector)
}

fn tls_over<C>(connector: C, config: rustls::ClientConfig) -> hyper_rustls::HttpsConnector<C> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(connector)
}

/// The first TLS error read or written on a connection (see `RequestError`).
#[derive(Clone, Default)]
struct TlsFailure(Arc<OnceLock<rustls::Error>>);

/// What a request gives the connections it starts.
struct Started {
    /// Closed (the sender dropped) once the request has its response head. hyper races a new
    /// connection against its pool's idle ones, and when an idle one wins it lets the connect it
    /// started finish in the background, as a spare for the pool; `Capped` gives up such a
    /// connect while it still waits for a permit, so spares never queue for permits ahead of
    /// requests that need them.
    wanted: watch::Receiver<()>,
    /// Where the connection records the TLS error that ends it.
    tls_failure: TlsFailure,
}

tokio::task_local! {
    /// Set while a request waits for its response head.
    static STARTED: Started;
}

/// A connector that takes one of the destination origin's connection permits
/// (`max_connections_per_host` of them, shared by every pool) before it dials, and gives it
/// back when the connection is dropped (`Permitted`): hyper's pools keep idle connections and
/// return them asynchronously, so a cap on transfers alone let a third connection through.
///
/// The origin counted is the request's destination (scheme, host, port; the port always
/// written), also through a proxy: hyper pools by destination, so each connection to a proxy,
/// forwarding or tunnelling, carries the requests of one origin only, and a tunnel is that
/// origin's connection end to end. A proxy may thus see `max_connections_per_host` connections
/// per origin behind it, not in all.
///
/// It wraps a whole connector (TLS included), so the permit is taken before the TCP connect
/// and its `connect_timeout` does not count the wait; the wait is bounded by the response head's
/// stall timeout around the request (see `IDLE_TIMEOUT` for what it waits for).
#[derive(Clone)]
pub(crate) struct Capped<C> {
    inner: C,
    connections: Arc<Connections>,
    limit: usize,
}

/// A connection and its origin's connection permit, given back when the connection is dropped
/// (hyper drops it once the socket is closed, by either side or by the pool).
pub(crate) struct Permitted<T> {
    // Fields drop in order: the socket is closed (its FIN sent) before the permit lets the next
    // connection dial, so the origin never sees the two overlap.
    io: T,
    _permit: Option<OwnedSemaphorePermit>,
    /// The request that started this connection, told of a TLS error that ends it.
    tls_failure: Option<TlsFailure>,
}

impl<T> Permitted<T> {
    fn note<R>(&self, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let (Poll::Ready(Err(e)), Some(slot)) = (&r, &self.tls_failure) {
            if let Some(tls) = super::find_tls_error(e) {
                let _ = slot.0.set(tls.clone());
            }
        }
        r
    }
}

/// The key of `dst`'s origin in `Connections`.
fn origin_of(dst: &Uri) -> Result<String, BoxError> {
    let scheme = dst.scheme_str().ok_or("the destination has no scheme")?;
    let host = dst.host().ok_or("the destination has no host")?;
    let port = match (dst.port_u16(), scheme) {
        (Some(p), _) => p,
        (None, "https") => 443,
        (None, _) => 80,
    };
    Ok(format!(
        "{}://{}:{port}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    ))
}

/// Resolves once the request that started this connect has its answer (never if there is no
/// such request: a connect made outside `Clients::request`).
async fn answered(wanted: Option<watch::Receiver<()>>) {
    let Some(mut w) = wanted else {
        return std::future::pending().await;
    };
    // Nothing is ever sent: `changed` returns only an error, when the sender is dropped.
    while w.changed().await.is_ok() {}
}

impl<C> tower_service::Service<Uri> for Capped<C>
where
    C: tower_service::Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    C::Response: Send,
{
    type Response = Permitted<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // The connector made ready by `poll_ready` is the one to call; a clone takes its place.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let (connections, limit) = (self.connections.clone(), self.limit);
        // `call` runs inside the request's first poll, so this is that request's scope.
        let (wanted, tls_failure) = STARTED
            .try_with(|s| (s.wanted.clone(), s.tls_failure.clone()))
            .ok()
            .unzip();
        Box::pin(async move {
            let origin = origin_of(&dst)?;
            let permit = tokio::select! {
                biased;
                p = connections.permit(&origin, limit) => p,
                _ = answered(wanted) => {
                    return Err("not needed: the request was answered on a pooled connection".into())
                }
            };
            let io = inner.call(dst).await.map_err(Into::into)?;
            Ok(Permitted {
                io,
                _permit: permit,
                tls_failure,
            })
        })
    }
}

impl<T: Connection> Connection for Permitted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Permitted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.note(r)
    }
}

impl<T: Write + Unpin> Write for Permitted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note(r)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(r)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
