//! HTTPS through rustls with the platform's roots: a local TLS server whose self-signed certificate
//! is made "the platform's" by SSL_CERT_FILE (honoured by rustls-native-certs). Its own test binary,
//! because the certificate store is loaded once per process.

use openbits_core::hresult::{self as hr, HResult};
use openbits_core::{Config, ErrorContext, JobState, JobType, Manager};
use openbits_testserver::pattern;

mod common;
use common::serve_tls;
use std::time::Duration;

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

    // The certificate names "localhost", not 127.0.0.1: ERROR_INTERNET_SEC_CERT_CN_INVALID, fatal.
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
        (ErrorContext::GeneralTransport, HResult::from_win32(12038))
    );
    assert!(
        e.description.contains("for another host name"),
        "{}",
        e.description
    );
}
