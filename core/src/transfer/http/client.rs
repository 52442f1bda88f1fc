//! The manager's connection pools (`Clients`): direct http and https, and per proxy a forwarding
//! pool and a tunnelling one; the TLS configuration and the connectors under them.

use super::proxy::ForwardProxy;
use crate::config::Config;
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
    pub(super) fn request(
        &self,
        config: &Config,
        req: Request<Body>,
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

/// The largest response head (status line and headers) openbits reads.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 << 10;

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
