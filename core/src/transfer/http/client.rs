//! The manager's connection pools (`Clients`): direct http and https, and per proxy a forwarding
//! pool and a tunnelling one; per job TLS settings, an https pool; the connectors under them.

use super::proxy::ForwardProxy;
use crate::config::Config;
use crate::tls::{self, TlsKey, TlsSettings};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::Request;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The body of every request the pools send. It can carry data (uploads will), and an empty one
/// is sent exactly like no body: a GET gets no Content-Length and no payload.
pub(crate) type Body = Full<Bytes>;

type PlainClient = hyper_util::client::legacy::Client<HttpConnector, Body>;
type TlsClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;
type ForwardClient = hyper_util::client::legacy::Client<ForwardProxy, Body>;
type TunnelClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>, Body>;

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
#[derive(Default)]
pub(crate) struct Clients {
    plain: OnceLock<PlainClient>,
    tls: OnceLock<TlsClient>,
    job_tls: parking_lot::Mutex<HashMap<TlsKey, JobTls>>,
    proxied: parking_lot::Mutex<HashMap<(ProxyKey, TlsKey), (ForwardClient, TunnelClient)>>,
}

/// Why a request could not be sent: the job's TLS files cannot be used.
pub(crate) type TlsRefusal = (crate::hresult::HResult, String);

impl Clients {
    pub(super) fn request(
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
                    pool(tls_over(
                        http_connector(config),
                        tls::default_client_config(),
                    ))
                })
                .request(req),
            None if https => {
                let key = tls.key();
                let mut pools = self.job_tls.lock();
                let client = match pools.get(&key) {
                    Some((c, _)) => c.clone(),
                    None => {
                        let c = pool(tls_over(http_connector(config), tls.client_config()?));
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
                .get_or_init(|| pool(http_connector(config)))
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
                        let forward = pool(ForwardProxy {
                            http: http_connector(config),
                            proxy: proxy.clone(),
                        });
                        let mut tunnel = Tunnel::new(proxy.clone(), http_connector(config));
                        if let Some(a) = auth {
                            tunnel = tunnel.with_auth(a.clone());
                        }
                        let p = (forward, pool(tls_over(tunnel, tls_config)));
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

fn http_connector(config: &Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http
}

fn pool<C>(connector: C) -> hyper_util::client::legacy::Client<C, Body>
where
    C: hyper_util::client::legacy::connect::Connect + Clone,
{
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
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
