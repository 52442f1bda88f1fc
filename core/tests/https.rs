//! HTTPS through rustls with the platform's roots: a local TLS server whose self-signed certificate
//! is made "the platform's" by SSL_CERT_FILE (honoured by rustls-native-certs). Its own test binary,
//! because the certificate store is loaded once per process.

use http_body_util::Full;
use openbits_core::hresult::{self as hr, HResult};
use openbits_core::{Config, ErrorContext, JobState, JobType, Manager};
use openbits_testserver::pattern;
use std::sync::Arc;
use std::time::Duration;

fn serve_tls(content: Vec<u8>) -> (u16, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let content = bytes::Bytes::from(content);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, content) = (acceptor.clone(), content.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |_req| {
                        let body = Full::new(content.clone());
                        async move { Ok::<_, std::convert::Infallible>(hyper::Response::new(body)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    });
    (port, ca, dir)
}

#[test]
fn https_download_with_trusted_roots_and_refusal_of_untrusted_names() {
    let data = pattern(200_000, 42);
    let (port, ca, dir) = serve_tls(data.clone());
    // SAFETY: this test binary has a single test, and no other thread reads the environment yet.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca) };
    let config = Config {
        stall_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let manager = Manager::open(Some(&dir.path().join("state")), config).unwrap();

    let job = manager.create_job("tls", JobType::Download).unwrap();
    let dest = dir.path().join("out");
    job.add_file(
        &format!("https://localhost:{port}/f"),
        dest.to_str().unwrap(),
    )
    .unwrap();
    job.resume().unwrap();
    assert_eq!(
        job.wait(Some(Duration::from_secs(30))).unwrap(),
        JobState::Transferred
    );
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // The certificate names "localhost", not 127.0.0.1: a TLS failure, which is fatal.
    let job = manager
        .create_job("tls-bad-name", JobType::Download)
        .unwrap();
    job.add_file(
        &format!("https://127.0.0.1:{port}/f"),
        dir.path().join("bad").to_str().unwrap(),
    )
    .unwrap();
    job.resume().unwrap();
    let s = job
        .wait(Some(Duration::from_secs(10)))
        .map_err(|e| (e, job.record().unwrap().error));
    assert_eq!(s.unwrap(), JobState::Error);
    let e = job.error().unwrap();
    assert_eq!(
        (e.context, e.code),
        (ErrorContext::GeneralTransport, HResult::from_win32(12175))
    );
    assert!(e.description.contains("TLS error"), "{}", e.description);
}
