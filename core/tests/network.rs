//! Network awareness in real network namespaces: a client namespace joined to a server namespace
//! by a veth pair. The client's only link goes down mid-transfer: the job waits in TRANSIENT_ERROR
//! with BITS_E_NETWORK_DISCONNECTED; the link comes back: the transfer continues at once, though
//! the job's retry delay is 600 s. Needs root (ip netns); says so and passes vacuously otherwise.

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

#[test]
fn a_job_waits_for_the_network_and_continues_when_it_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: network namespaces need root");
        return;
    }
    let net = match Net::new() {
        Ok(n) => n,
        Err(e) => {
            println!("SKIPPED: cannot make network namespaces here ({e})");
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
    let dir = tempfile::tempdir().unwrap();
    let client_ns = net.client.clone();
    let state = dir.path().join("state");
    let dest = dir.path().join("big");
    let url = server.url("/big?rate=2097152"); // 2 MiB/s: 4 s in all
                                               // The manager's threads (and its network watcher) start in the client namespace.
    let (m, job) = std::thread::spawn(move || {
        enter(&client_ns);
        let m = Manager::open(Some(&state), Config::default()).unwrap();
        let job = m.create_job("across an outage", JobType::Download).unwrap();
        job.add_file(&url, dest.to_str().unwrap()).unwrap();
        (m, job)
    })
    .join()
    .unwrap();
    assert_eq!(job.record().unwrap().minimum_retry_delay_s, 600);
    job.resume().unwrap();
    wait_until("1 MiB transferred", || {
        job.progress().unwrap().bytes_transferred >= 1 << 20
    });
    net.client_link(false);
    wait_until("the job sees the outage", || {
        job.state().unwrap() == JobState::TransientError
    });
    assert_eq!(job.error().unwrap().code, hr::E_NETWORK_DISCONNECTED);
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
