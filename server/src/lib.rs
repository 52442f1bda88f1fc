//! openbits-server: the BITS upload protocol ([MC-BUP]) on hyper, storing uploads in a folder or
//! an object store shared by many nodes. The protocol rules live in `openbits-protocol`.

pub mod auth;
pub mod body;
pub mod config;
pub mod embedded;
pub mod notify;
pub mod paths;
pub mod service;
pub mod store;

use config::{Config, Storage};
use hyper_util::rt::{TokioIo, TokioTimer};
use service::App;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest request head (line and headers) hyper buffers; also bounds per-connection memory.
const MAX_BUF: usize = 64 * 1024;
/// Headers per request; Windows sends about ten. hyper answers 431 past it.
pub const MAX_HEADERS: usize = 64;
/// Request line and headers together (BITS values are at most 4 KB each).
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

pub fn open_store(cfg: &Config) -> Result<store::Store, String> {
    match &cfg.storage {
        Storage::Dir(d) => store::fs::FsStore::open(d).map(store::Store::Fs),
        Storage::Url(u) => store::object::ObjectStoreBackend::open(u).map(store::Store::Object),
    }
    .map_err(|e| e.to_string())
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate/key: {e}"))?;
    // BITS uploads are HTTP/1.1 only ([MC-BUP] §2.2.1).
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

/// Removes expired sessions now and then; lookups also refuse expired sessions on their own.
async fn sweep(app: Arc<App>) {
    let every =
        (app.cfg.session_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        tokio::time::sleep(every).await;
        let Ok(ids) = app.store.list().await else {
            continue;
        };
        let now = store::now();
        for id in ids {
            if let Ok(Some((m, _))) = app.store.load(&id).await {
                if m.expired(app.cfg.session_timeout, now) {
                    if let Err(e) = app.store.remove(&id).await {
                        eprintln!("cannot remove expired session {id}: {e}");
                    }
                }
            }
        }
    }
}

/// One HTTP/1.1 connection from `peer` on `io` (TCP, TLS, or an in-memory pipe for tests and
/// the fuzz targets), served by the request handler with the server's limits on request heads.
pub fn connection<I>(
    app: Arc<App>,
    io: I,
    peer: SocketAddr,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = app.cfg.read_timeout;
    let svc = hyper::service::service_fn(move |req| service::handle(app.clone(), req, peer));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_BUF)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    http.serve_connection(TokioIo::new(io), svc)
}

/// Serves one connection until it closes, logging what hyper refused without calling the
/// request handler (431 and the like, a request head that timed out).
async fn serve<I>(
    app: Arc<App>,
    io: I,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let head_started = Arc::new(AtomicBool::new(false));
    let io = HeadProbe {
        io,
        head_started: head_started.clone(),
    };
    if let Err(e) = watcher.watch(connection(app.clone(), io, peer)).await {
        service::log_refused(&app.cfg, peer, &e, head_started.load(Ordering::Relaxed));
    }
}

/// A connection's stream that notes whether the client sent bytes since the server last wrote:
/// whether a header read timeout cut a request short or only ended an idle connection. (Bytes
/// of a pipelined request read before the previous answer went out are not seen; such a
/// request is then not logged if its head never completes.)
struct HeadProbe<I> {
    io: I,
    head_started: Arc<AtomicBool>,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for HeadProbe<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.head_started.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HeadProbe<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.head_started.store(false, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.head_started.store(false, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets requests in flight finish
/// (at most [`DRAIN`]) and returns. `ready` gets the bound address once connections are accepted.
pub async fn run(
    cfg: Config,
    ready: impl FnOnce(SocketAddr, bool),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let store = open_store(&cfg)?;
    let auth = match &cfg.htpasswd {
        Some(p) => Some(auth::Htpasswd::load(p)?),
        None => None,
    };
    if let Some(u) = &cfg.notify_url {
        if notify::target(u, "http://localhost/").is_none() {
            return Err(format!(
                "--notify-url {u}: must be an http URL (absolute or relative)"
            ));
        }
    }
    let tls = match &cfg.tls {
        Some((c, k)) => Some(tls_acceptor(c, k)?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Arc::new(App::new(cfg, store, auth, tls.is_some()));
    let sweeper = tokio::spawn(sweep(app.clone()));
    let limit = Arc::new(tokio::sync::Semaphore::new(app.cfg.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    ready(addr, tls.is_some());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let read_timeout = app.cfg.read_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(read_timeout, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    serve(app, stream, peer, watcher).await;
                }
                None => serve(app, tcp, peer, watcher).await,
            }
        });
    }
    drop(listener);
    sweeper.abort();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "requests still running after {}s; stopping anyway",
            DRAIN.as_secs()
        );
    }
    Ok(())
}
