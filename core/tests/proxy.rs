//! Proxies, through the test server acting as one: forwarding for http://, a CONNECT tunnel for
//! https://, the bypass list, the PRECONFIG environment, and proxy credentials. One test, because
//! it sets process-wide environment variables.

mod common;
use common::{serve_tls, wait_until};
use openbits_core::hresult::{self as hr, HResult};
use openbits_core::http_options::{PROXY_USAGE_NO_PROXY, PROXY_USAGE_OVERRIDE};
use openbits_core::{Config, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::time::Duration;

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

#[test]
fn requests_go_through_the_proxy_the_job_names() {
    let proxy = TestServer::start();
    proxy.add("/f", pattern(50_000, 1));
    let tls_data = pattern(70_000, 2);
    let (tls_port, ca, tls_dir) = serve_tls(tls_data.clone());
    // SAFETY: one test in this binary; set before any manager reads the environment.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &ca);
        std::env::set_var("http_proxy", format!("http://{}", proxy.addr));
        std::env::set_var("no_proxy", "");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let m = Manager::open(Some(&dir.path().join("state")), config).unwrap();
    let dest = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let list = proxy.addr.to_string();

    // OVERRIDE, http: forwarded (the target host does not even resolve), with proxy credentials.
    let job = m.create_job("forward", JobType::Download).unwrap();
    assert_eq!(
        job.set_proxy_settings(PROXY_USAGE_OVERRIDE, None, None)
            .unwrap_err()
            .code,
        hr::E_INVALIDARG
    );
    assert_eq!(
        job.set_proxy_settings(PROXY_USAGE_OVERRIDE, Some("not a/proxy"), None)
            .unwrap_err()
            .code,
        hr::E_INVALID_PROXY_INFO
    );
    job.set_proxy_settings(PROXY_USAGE_OVERRIDE, Some(&list), Some("<local>"))
        .unwrap();
    job.set_credentials(2, 1, "proxyuser", "pw").unwrap();
    job.add_file("http://files.invalid/f", &dest("f")).unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert!(std::fs::read(dest("f")).unwrap() == pattern(50_000, 1));
    let seen = proxy.seen();
    assert!(
        seen[0]
            .headers
            .iter()
            .any(|(n, v)| n == "proxy-authorization" && v.starts_with("Basic ")),
        "{:?}",
        seen[0].headers
    );

    // OVERRIDE, https: a CONNECT tunnel, TLS to the origin inside it.
    let job = m.create_job("tunnel", JobType::Download).unwrap();
    job.set_proxy_settings(PROXY_USAGE_OVERRIDE, Some(&list), None)
        .unwrap();
    // A name the client cannot resolve; only the proxy knows it (loopback would go direct).
    job.add_file(&format!("https://tls.test:{tls_port}/t"), &dest("t"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert_eq!(job.complete().unwrap(), hr::S_OK);
    assert!(std::fs::read(dest("t")).unwrap() == tls_data);
    assert!(proxy
        .seen()
        .iter()
        .any(|s| s.path_and_query == format!("CONNECT tls.test:{tls_port}")));

    // The bypass list sends the request direct: the name does not resolve.
    let job = m.create_job("bypassed", JobType::Download).unwrap();
    job.set_proxy_settings(PROXY_USAGE_OVERRIDE, Some(&list), Some("*.invalid"))
        .unwrap();
    job.add_file("http://files.invalid/f", &dest("b")).unwrap();
    job.resume().unwrap();
    wait_until("TRANSIENT_ERROR", || {
        job.state().unwrap() == JobState::TransientError
    });
    assert_eq!(
        job.error().unwrap().code,
        HResult::from_win32(12007),
        "{}",
        job.error().unwrap().description
    );
    assert_eq!(job.cancel().unwrap(), hr::S_OK);

    // PRECONFIG (the default): http_proxy from the environment.
    let before = proxy.seen().len();
    let job = m.create_job("environment", JobType::Download).unwrap();
    job.add_file("http://elsewhere.invalid/f", &dest("e"))
        .unwrap();
    job.resume().unwrap();
    assert_eq!(job.wait(WAIT).unwrap(), JobState::Transferred);
    assert!(proxy.seen().len() > before);

    // NO_PROXY ignores the environment.
    let job = m.create_job("direct", JobType::Download).unwrap();
    job.set_proxy_settings(PROXY_USAGE_NO_PROXY, None, None)
        .unwrap();
    job.add_file("http://direct.invalid/f", &dest("d")).unwrap();
    job.resume().unwrap();
    wait_until("TRANSIENT_ERROR", || {
        job.state().unwrap() == JobState::TransientError
    });
    let r = job.record().unwrap();
    assert_eq!(
        (r.proxy_usage, &r.extras().proxy_list),
        (PROXY_USAGE_NO_PROXY, &None)
    );
    drop(tls_dir);
}
