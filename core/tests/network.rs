//! Network awareness in real network namespaces: a client namespace joined to a server namespace
//! by a veth pair. The client's only link goes down mid-transfer: the job waits in TRANSIENT_ERROR
//! with BITS_E_NETWORK_DISCONNECTED; the link comes back: the transfer continues at once, though
//! the job's retry delay is 600 s. A job waiting out its retry delay with a 3 s no-progress
//! timeout lives through a longer outage, and neither job counts the outage as an error. Needs
//! root (ip netns); says so on stderr (uncaptured, so `cargo test --quiet` shows it) and passes
//! vacuously otherwise, except under CI, where it must run.

mod common;
use common::wait_until;
use openbits_core::hresult as hr;
use openbits_core::{Config, JobState, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use std::process::Command;
use std::time::{Duration, Instant};

/// Two namespaces and a veth pair between them, deleted on drop.
struct Net {
    client: String,
    server: String,
    client_link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    fn new() -> Result<Net, String> {
        let id = std::process::id() % 100_000;
        let net = Net {
            client: format!("obc{id}"),
            server: format!("obs{id}"),
            client_link: format!("vc{id}"),
        };
        let server_link = format!("vs{id}");
        ip(&["netns", "add", &net.client])?;
        ip(&["netns", "add", &net.server])?;
        ip(&[
            "link",
            "add",
            &net.client_link,
            "netns",
            &net.client,
            "type",
            "veth",
            "peer",
            "name",
            &server_link,
            "netns",
            &net.server,
        ])?;
        for (ns, link, addr) in [
            (&net.client, &net.client_link, "10.231.7.2/24"),
            (&net.server, &server_link, "10.231.7.1/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", link])?;
            ip(&["-n", ns, "link", "set", link, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn client_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.client, "link", "set", &self.client_link, state]).unwrap();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.client]);
        let _ = ip(&["netns", "del", &self.server]);
    }
}

/// Moves the calling thread into the named network namespace (sockets it creates, and threads
/// it starts, live there).
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: setns on a descriptor we own; it changes only this thread's namespace.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Says why the test cannot run: on stderr itself (libtest captures println! and eprintln!, and
/// `cargo test --quiet` would hide the skip), or as a failure under CI, where it must run.
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and the network namespace test cannot run: {why}"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED a_job_waits_for_the_network_and_continues_when_it_returns: {why}"
    );
}

#[test]
fn a_job_waits_for_the_network_and_continues_when_it_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("network namespaces need root");
        return;
    }
    let net = match Net::new() {
        Ok(n) => n,
        Err(e) => {
            skip(&format!("cannot make network namespaces here ({e})"));
            return;
        }
    };
    let server_ns = net.server.clone();
    let server = std::thread::spawn(move || {
        enter(&server_ns);
        TestServer::start_at("10.231.7.1:0".parse().unwrap()).unwrap()
    })
    .join()
    .unwrap();
    let size = 8 << 20;
    server.add("/big", pattern(size, 7));
    server.add("/busy", pattern(1000, 8));
    let busy_url = server.url("/busy?fail=503:1");
    let dir = tempfile::tempdir().unwrap();
    let client_ns = net.client.clone();
    let state = dir.path().join("state");
    let dest = dir.path().join("big");
    let url = server.url("/big?rate=2097152"); // 2 MiB/s: 4 s in all
                                               // The manager's threads (and its network watcher) start in the client namespace.
    let busy_dest = dir.path().join("busy");
    let (m, job, busy) = std::thread::spawn(move || {
        enter(&client_ns);
        let m = Manager::open(Some(&state), Config::default()).unwrap();
        let job = m.create_job("across an outage", JobType::Download).unwrap();
        job.add_file(&url, dest.to_str().unwrap()).unwrap();
        // Its first answer is a 503: it waits out its 600 s retry delay with a no-progress
        // timeout of 3 s, which the outage below outlasts.
        let busy = m
            .create_job("busy before the outage", JobType::Download)
            .unwrap();
        busy.add_file(&busy_url, busy_dest.to_str().unwrap())
            .unwrap();
        busy.set_no_progress_timeout(3).unwrap();
        (m, job, busy)
    })
    .join()
    .unwrap();
    assert_eq!(job.record().unwrap().minimum_retry_delay_s, 600);
    busy.resume().unwrap();
    wait_until("the busy job's 503", || {
        busy.state().unwrap() == JobState::TransientError
    });
    assert_eq!(
        busy.error().unwrap().code,
        openbits_core::HResult::http(503)
    );
    let busy_errors = busy.record().unwrap().error_count;
    job.resume().unwrap();
    wait_until("1 MiB transferred", || {
        job.progress().unwrap().bytes_transferred >= 1 << 20
    });
    net.client_link(false);
    let down = Instant::now();
    wait_until("the job sees the outage", || {
        job.state().unwrap() == JobState::TransientError
    });
    assert_eq!(job.error().unwrap().code, hr::E_NETWORK_DISCONNECTED);
    wait_until("the busy job waits for the network", || {
        busy.error().unwrap().code == hr::E_NETWORK_DISCONNECTED
    });
    // The outage itself is what is tested: it lasts longer than the busy job's no-progress
    // timeout (3 s after its 503) plus a scheduler pass.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(down.elapsed()));
    assert_eq!(busy.state().unwrap(), JobState::TransientError);
    assert_eq!(busy.error().unwrap().code, hr::E_NETWORK_DISCONNECTED);
    // Neither job counts the outage as an error.
    assert_eq!(job.record().unwrap().error_count, 0);
    assert_eq!(busy.record().unwrap().error_count, busy_errors);
    let before = job.progress().unwrap().bytes_transferred;
    net.client_link(true);
    let back = Instant::now();
    wait_until("the transfer continues", || {
        job.progress().unwrap().bytes_transferred > before
    });
    let resumed = back.elapsed();
    println!(
        "link up -> transfer moving again after {:.2} s",
        resumed.as_secs_f64()
    );
    assert!(resumed < Duration::from_secs(2), "{resumed:?}");
    // The busy job retries at once too (its retry delay is 600 s), and the server now serves it.
    assert_eq!(
        busy.wait(Some(Duration::from_secs(2))).unwrap(),
        JobState::Transferred
    );
    assert_eq!(
        job.wait(Some(Duration::from_secs(60))).unwrap(),
        JobState::Transferred
    );
    // It continued from its bytes on disk rather than starting over.
    assert!(
        server.bytes_sent() < 2 * size as u64,
        "{} bytes sent",
        server.bytes_sent()
    );
    assert_eq!(job.complete().unwrap(), openbits_core::hresult::S_OK);
    assert_eq!(
        std::fs::read(dir.path().join("big")).unwrap(),
        pattern(size, 7)
    );
    drop(m);
}
