//! TLS end to end against a real nginx on 127.0.0.1, with certificates generated per test: the
//! library's certificate checks (each failure with BITS's code and a sentence that says which),
//! revocation through a CRL file, the HTTPS to HTTP redirect rule, per-job trusted roots (no
//! environment variable), client certificates, the server certificate callback, and tokens in
//! custom headers that never reach error texts.

mod common;
use common::nginx::{self, Nginx};
use common::wait_until;
use openbits_core::hresult::{self as hr, HResult};
use openbits_core::tls::{SSL_ENABLE_CRL_CHECK, SSL_IGNORE_CERT_CN_INVALID};
use openbits_core::{Config, ErrorContext, Job, JobState, JobType, Manager};
use openbits_testserver::pattern;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INTERMEDIATE_SERIAL: u64 = 4242;
const TOKEN: &str = "s3cr3t-t0k3n-7f1c";

struct Fixture {
    dir: tempfile::TempDir,
    _nginx: Nginx,
    data: Vec<u8>,
    /// The chain localhost <- intermediate <- root.
    good: u16,
    /// An expired certificate for localhost, from the same root.
    expired: u16,
    /// `ssl_verify_client on`, clients of the root.
    mtls: u16,
    /// Plain HTTP, two origins.
    plain: u16,
    plain2: u16,
    leaf_der: Vec<u8>,
}

impl Fixture {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
    fn manager(&self) -> Manager {
        let config = Config {
            stall_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        Manager::open(Some(&self.dir.path().join("state")), config).unwrap()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn fixture() -> Fixture {
    // The root is made here, so nothing in the environment (SSL_CERT_FILE may name the system's
    // bundle) can trust it: only a job's own roots can.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = nginx::root("openbits test root");
    let inter = nginx::intermediate("openbits test intermediate", INTERMEDIATE_SERIAL, &root);
    let (leaf, leaf_key) = nginx::leaf(&["localhost"], false, false, &inter);
    let (old, old_key) = nginx::leaf(&["localhost"], false, true, &root);
    let (client, client_key) = nginx::leaf(&["openbits client"], true, false, &root);
    let other = nginx::root("some other root");
    write(d, "root.pem", &root.cert.pem());
    write(d, "other-root.pem", &other.cert.pem());
    write(d, "chain.pem", &format!("{leaf}{}", inter.cert.pem()));
    write(d, "leaf.key", &leaf_key);
    write(d, "expired.pem", &old);
    write(d, "expired.key", &old_key);
    write(d, "client.pem", &client);
    write(d, "client.key", &client_key);
    write(
        d,
        "wrong.key",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    write(
        d,
        "crl-revoked.pem",
        &nginx::crl(&root, &[INTERMEDIATE_SERIAL]),
    );
    write(d, "crl-none.pem", &nginx::crl(&root, &[]));
    let leaf_der = rustls::pki_types::CertificateDer::from_pem_slice(leaf.as_bytes())
        .unwrap()
        .to_vec();
    let data = pattern(300_000, 7);
    std::fs::create_dir_all(d.join("www/token")).unwrap();
    std::fs::create_dir_all(d.join("www/noauth")).unwrap();
    for f in ["www/f", "www/token/f", "www/noauth/f"] {
        std::fs::write(d.join(f), &data).unwrap();
    }
    let [good, expired, mtls, plain, plain2] = [(); 5].map(|_| nginx::free_port());
    let servers = format!(
        "server {{ listen 127.0.0.1:{good} ssl; ssl_certificate DIR/chain.pem; ssl_certificate_key DIR/leaf.key; root DIR/www;
             location = /to-http {{ return 302 http://127.0.0.1:{plain}/f; }} }}
         server {{ listen 127.0.0.1:{expired} ssl; ssl_certificate DIR/expired.pem; ssl_certificate_key DIR/expired.key; root DIR/www; }}
         server {{ listen 127.0.0.1:{mtls} ssl; ssl_certificate DIR/chain.pem; ssl_certificate_key DIR/leaf.key; root DIR/www;
             ssl_verify_client on; ssl_client_certificate DIR/root.pem; }}
         server {{ listen 127.0.0.1:{plain}; root DIR/www;
             location /token/ {{ if ($http_authorization != \"Bearer {TOKEN}\") {{ return 401; }} }}
             location = /hop {{ return 302 http://127.0.0.1:{plain2}/noauth/f; }} }}
         server {{ listen 127.0.0.1:{plain2}; root DIR/www;
             location /noauth/ {{ if ($http_authorization) {{ return 403; }} }} }}"
    );
    let nginx = Nginx::start(d, &servers, &[good, expired, mtls, plain, plain2]);
    Fixture {
        dir,
        _nginx: nginx,
        data,
        good,
        expired,
        mtls,
        plain,
        plain2,
        leaf_der,
    }
}

use rustls::pki_types::pem::PemObject;

/// Runs a job for `url` (set up by `setup`) until TRANSFERRED, ERROR or TRANSIENT_ERROR.
fn run(m: &Manager, f: &Fixture, url: &str, setup: impl FnOnce(&Job)) -> Job {
    let job = m.create_job("tls", JobType::Download).unwrap();
    let out = f.dir.path().join(format!("out-{}", job.id()));
    job.add_file(url, out.to_str().unwrap()).unwrap();
    setup(&job);
    job.resume().unwrap();
    settle(&job);
    job
}

fn settle(job: &Job) {
    wait_until("the job to settle", || {
        matches!(
            job.state().unwrap(),
            JobState::Transferred | JobState::Error | JobState::TransientError
        )
    });
}

fn transferred(job: &Job, f: &Fixture) {
    let e = job.error().ok();
    assert_eq!(job.state().unwrap(), JobState::Transferred, "{e:?}");
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    let out = job.record().unwrap().files[0].local_path.to_string();
    assert_eq!(std::fs::read(out).unwrap(), f.data);
}

fn failed(job: &Job, state: JobState, context: ErrorContext, code: HResult, words: &str) {
    assert_eq!(job.state().unwrap(), state, "{:?}", job.error());
    let e = job.error().unwrap();
    assert_eq!((e.context, e.code), (context, code), "{}", e.description);
    assert!(
        e.description.contains(words),
        "{:?} does not say {words:?}",
        e.description
    );
    assert_eq!(job.cancel().unwrap(), hr::S_OK);
}

fn cert_failure(job: &Job, win32: u32, words: &str) {
    failed(
        job,
        JobState::Error,
        ErrorContext::GeneralTransport,
        HResult::from_win32(win32),
        words,
    );
}

#[test]
fn each_certificate_failure_has_its_code_and_sentence() {
    let f = fixture();
    let m = f.manager();
    let url = format!("https://localhost:{}/f", f.good);
    let roots = f.path("root.pem");

    // The platform's roots do not include the test root, and another root does not sign it.
    cert_failure(
        &run(&m, &f, &url, |_| {}),
        12045,
        "not issued by a trusted root",
    );
    let other = f.path("other-root.pem");
    let job = run(&m, &f, &url, |j| j.set_trusted_roots(Some(&other)).unwrap());
    cert_failure(&job, 12045, "not issued by a trusted root");

    // The job's own root: it works, with no environment variable.
    let job = run(&m, &f, &url, |j| j.set_trusted_roots(Some(&roots)).unwrap());
    transferred(&job, &f);

    let by_ip = format!("https://127.0.0.1:{}/f", f.good);
    let job = run(&m, &f, &by_ip, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap()
    });
    cert_failure(&job, 12038, "for another host name");

    let old = format!("https://localhost:{}/f", f.expired);
    let job = run(&m, &f, &old, |j| j.set_trusted_roots(Some(&roots)).unwrap());
    cert_failure(&job, 12037, "has expired");

    // Revocation: the root's CRL revokes the intermediate.
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_certificate_revocation_list(Some(&f.path("crl-revoked.pem")))
            .unwrap();
    });
    cert_failure(&job, 12170, "is revoked");

    // A CRL that revokes nothing: the chain is good...
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_certificate_revocation_list(Some(&f.path("crl-none.pem")))
            .unwrap();
    });
    transferred(&job, &f);
    // ...but with BG_SSL_ENABLE_CRL_CHECK the server's certificate needs its issuer's list too.
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_certificate_revocation_list(Some(&f.path("crl-none.pem")))
            .unwrap();
        j.set_security_flags(SSL_ENABLE_CRL_CHECK).unwrap();
    });
    cert_failure(&job, 12057, "cannot be checked");

    // Files are checked when set.
    let job = m.create_job("bad files", JobType::Download).unwrap();
    assert_eq!(
        job.set_trusted_roots(Some(&f.path("missing.pem")))
            .unwrap_err()
            .code,
        HResult::from_win32(2)
    );
    assert_eq!(
        job.set_trusted_roots(Some(&f.path("leaf.key")))
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    assert_eq!(
        job.set_certificate_revocation_list(Some(&roots))
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    assert_eq!(
        job.set_trusted_roots(Some("root.pem")).unwrap_err().code,
        hr::E_INVALIDARG,
        "relative"
    );
}

#[test]
fn https_to_http_redirect_needs_the_flag() {
    let f = fixture();
    let m = f.manager();
    let url = format!("https://localhost:{}/to-http", f.good);
    let roots = f.path("root.pem");
    let job = run(&m, &f, &url, |j| j.set_trusted_roots(Some(&roots)).unwrap());
    failed(
        &job,
        JobState::Error,
        ErrorContext::RemoteFile,
        HResult::from_win32(302),
        &format!("redirect to http://127.0.0.1:{}/f refused", f.plain),
    );
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_security_flags(0x0800).unwrap(); // BG_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP
    });
    transferred(&job, &f);
}

#[test]
fn client_certificates() {
    let f = fixture();
    let m = f.manager();
    let url = format!("https://localhost:{}/f", f.mtls);
    let roots = f.path("root.pem");
    let (cert, key) = (f.path("client.pem"), f.path("client.key"));

    // nginx answers 400 to a client without a certificate.
    let job = run(&m, &f, &url, |j| j.set_trusted_roots(Some(&roots)).unwrap());
    failed(
        &job,
        JobState::Error,
        ErrorContext::RemoteFile,
        HResult::http(400),
        "HTTP 400",
    );

    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_client_certificate_file(&cert, &key).unwrap();
        assert_eq!(
            j.client_certificate_file().unwrap(),
            Some((cert.clone(), key.clone()))
        );
    });
    transferred(&job, &f);

    // Removed, it is not sent any more.
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_client_certificate_file(&cert, &key).unwrap();
        assert_eq!(j.remove_client_certificate().unwrap(), hr::S_OK);
        assert_eq!(j.remove_client_certificate().unwrap(), hr::S_FALSE);
        assert_eq!(j.client_certificate_file().unwrap(), None);
    });
    failed(
        &job,
        JobState::Error,
        ErrorContext::RemoteFile,
        HResult::http(400),
        "HTTP 400",
    );

    let job = m.create_job("bad pair", JobType::Download).unwrap();
    let e = job
        .set_client_certificate_file(&cert, &f.path("wrong.key"))
        .unwrap_err();
    assert_eq!(e.code, hr::E_INVALIDARG, "{}", e.message);
    let e = job
        .set_client_certificate_file(&f.path("none.pem"), &key)
        .unwrap_err();
    assert_eq!(e.code, HResult::from_win32(2), "{}", e.message);
}

type Seen = Arc<Mutex<Vec<(String, usize, Vec<u8>, HResult)>>>;

fn recording(answer: HResult) -> (Seen, openbits_core::ServerCertificateCheck) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let check: openbits_core::ServerCertificateCheck = Box::new(move |_job, c| {
        s.lock().unwrap().push((
            c.host.to_string(),
            c.chain.len(),
            c.chain[0].to_vec(),
            c.library_result,
        ));
        answer
    });
    (seen, check)
}

#[test]
fn server_certificate_callback() {
    let f = fixture();
    let url = format!("https://localhost:{}/f", f.good);
    let roots = f.path("root.pem");
    let m = f.manager();

    // After the library's checks: it sees the host name and the chain, and accepts.
    let (seen, check) = recording(hr::S_OK);
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_server_certificate_callback(Some(check)).unwrap();
    });
    transferred(&job, &f);
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert_eq!(
        seen[0],
        ("localhost".to_string(), 2, f.leaf_der.clone(), hr::S_OK)
    );

    // A refusal: TRANSIENT_ERROR in the callback's context with the callback's code.
    let refusal = HResult(0x8004_0201u32 as i32);
    let (_, check) = recording(refusal);
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_server_certificate_callback(Some(check)).unwrap();
    });
    failed(
        &job,
        JobState::TransientError,
        ErrorContext::ServerCertificateCallback,
        refusal,
        "refused the certificate of localhost",
    );

    // A panic in the callback is a refusal too, and goes no further.
    let job = run(&m, &f, &url, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_server_certificate_callback(Some(Box::new(|_, _| panic!("application bug"))))
            .unwrap();
    });
    failed(
        &job,
        JobState::TransientError,
        ErrorContext::ServerCertificateCallback,
        hr::E_UNEXPECTED,
        "refused",
    );

    // The library's failures never reach the callback...
    let by_ip = format!("https://127.0.0.1:{}/f", f.good);
    let (seen, check) = recording(hr::S_OK);
    let job = run(&m, &f, &by_ip, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_server_certificate_callback(Some(check)).unwrap();
    });
    cert_failure(&job, 12038, "for another host name");
    assert!(seen.lock().unwrap().is_empty());
    // ...unless a BG_SSL_IGNORE_* flag hands that one to it: the callback decides instead.
    let (seen, check) = recording(hr::S_OK);
    let job = run(&m, &f, &by_ip, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_security_flags(SSL_IGNORE_CERT_CN_INVALID).unwrap();
        j.set_server_certificate_callback(Some(check)).unwrap();
    });
    transferred(&job, &f);
    assert_eq!(seen.lock().unwrap()[0].3, HResult::from_win32(12038));
    // The flag alone weakens nothing.
    let job = run(&m, &f, &by_ip, |j| {
        j.set_trusted_roots(Some(&roots)).unwrap();
        j.set_security_flags(SSL_IGNORE_CERT_CN_INVALID).unwrap();
    });
    failed(
        &job,
        JobState::TransientError,
        ErrorContext::ServerCertificateCallback,
        hr::E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED,
        "server certificate callback",
    );

    // Not kept across a restart: the job asks for it again.
    let (_, check) = recording(hr::S_OK);
    let job = m.create_job("restart", JobType::Download).unwrap();
    let out = f.dir.path().join("restart.out");
    job.add_file(&url, out.to_str().unwrap()).unwrap();
    job.set_trusted_roots(Some(&roots)).unwrap();
    job.set_server_certificate_callback(Some(check)).unwrap();
    let id = job.id();
    drop(job);
    m.close();
    drop(m);
    let m = f.manager();
    let job = m.get_job(&id).unwrap();
    job.resume().unwrap();
    settle(&job);
    assert_eq!(job.state().unwrap(), JobState::TransientError);
    assert_eq!(
        job.error().unwrap().code,
        hr::E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED
    );
    job.suspend().unwrap();
    let (seen, check) = recording(hr::S_OK);
    job.set_server_certificate_callback(Some(check)).unwrap();
    job.resume().unwrap();
    settle(&job);
    transferred(&job, &f);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn tokens_reach_their_server_and_nothing_else() {
    let f = fixture();
    let m = f.manager();
    let token_url = format!("http://127.0.0.1:{}/token/f", f.plain);

    // A bearer token in the custom headers, as BITS allows.
    let job = run(&m, &f, &token_url, |j| {
        j.set_custom_headers(Some(&format!("Authorization: Bearer {TOKEN}\r\n")))
            .unwrap();
        j.make_custom_headers_write_only().unwrap();
        assert_eq!(
            j.custom_headers().unwrap_err().code,
            hr::E_ACCESSDENIED,
            "write-only"
        );
        let rec = j.record().unwrap();
        assert_eq!(rec.extras().custom_headers, None);
        assert!(rec.extras().custom_headers_write_only);
    });
    transferred(&job, &f);

    // A redirect to another origin does not carry it (nginx there refuses any Authorization).
    let hop = format!("http://127.0.0.1:{}/hop", f.plain);
    let with_token = |j: &Job| {
        j.set_custom_headers(Some(&format!("Authorization: Bearer {TOKEN}\r\n")))
            .unwrap()
    };
    transferred(&run(&m, &f, &hop, with_token), &f);
    let direct = format!("http://127.0.0.1:{}/noauth/f", f.plain2);
    let job = run(&m, &f, &direct, with_token);
    failed(
        &job,
        JobState::Error,
        ErrorContext::RemoteFile,
        HResult::http(403),
        "HTTP 403",
    );

    // A refused token, write-only headers and Basic credentials: the error text, the events and
    // the job's readable record hold none of them.
    let wrong = "wr0ng-t0k3n-91ab";
    let password = "pa55-w0rd-c3d8";
    let job = run(&m, &f, &token_url, |j| {
        j.set_custom_headers(Some(&format!(
            "Authorization: Bearer {wrong}\r\nX-Api-Key: {wrong}\r\n"
        )))
        .unwrap();
        j.make_custom_headers_write_only().unwrap();
    });
    assert_eq!(job.state().unwrap(), JobState::Error);
    let e = job.error().unwrap();
    assert_eq!(e.code, HResult::http(401));
    let basic = run(&m, &f, &token_url, |j| {
        j.set_credentials(1, 1, "someone", password).unwrap()
    });
    assert_eq!(basic.state().unwrap(), JobState::Error);
    let mut texts = vec![
        e.description.clone(),
        format!("{e:?}"),
        format!("{:?}", job.record().unwrap()),
        format!("{:?}", basic.error().unwrap()),
        format!("{:?}", basic.record().unwrap()),
    ];
    while let Ok(ev) = m.next_event(Some(Duration::ZERO)) {
        texts.push(format!("{ev:?}"));
    }
    for t in &texts {
        for secret in [wrong, password, TOKEN] {
            assert!(!t.contains(secret), "{secret} leaked into {t}");
        }
    }
    assert!(texts.len() > 5, "events were delivered");
    let id = job.id();
    drop((job, basic));
    m.close();
    drop(m);

    // Write-only survives a restart.
    let m = f.manager();
    let job = m.get_job(&id).unwrap();
    assert_eq!(job.custom_headers().unwrap_err().code, hr::E_ACCESSDENIED);
}
