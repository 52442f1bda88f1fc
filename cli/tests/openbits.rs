//! The `openbits` binary, run as a real process against the real test server (in this process)
//! and real queues in temporary folders. Every wait polls a condition with a deadline.

use openbits_core::{Config, JobType, Manager};
use openbits_testserver::{pattern, TestServer};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_openbits");

/// Polls `cond` until it holds; fails the test after 30 s.
/// The exit statuses as `--help` lists them (the top level's and the waiting verbs').
const EXIT_STATUS_LINES: [&str; 5] = [
    "0    done",
    "1    the job failed",
    "2    usage",
    "3    the queue is held",
    "130  interrupted",
];

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Fixture {
    server: TestServer,
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run_of(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            server: TestServer::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("queue")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--state-dir")
            .arg(self.state())
            .args(args)
            .env_remove("OPENBITS_HOME")
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Run {
        run_of(self.command(args).output().unwrap())
    }
    /// Runs and expects exit status `code`.
    fn expect(&self, code: i32, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, code, "openbits {args:?}: {r:?}");
        r
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
    fn jobs(&self) -> Vec<Value> {
        let doc = self.expect(0, &["--json", "list"]).json();
        doc["jobs"].as_array().unwrap().clone()
    }
    fn info(&self, job: &str) -> Value {
        self.expect(0, &["--json", "info", job]).json()
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill on the pid of a child we spawned and have not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Ctrl-C to a child whose output is already being read elsewhere; returns its exit code once it
/// has stopped.
fn interrupt(child: &mut Child) -> Option<i32> {
    signal(child, libc::SIGINT);
    let mut status = None;
    wait_until("the interrupted command to stop", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap().code()
}

/// Waits for a child with a deadline; returns its status and output.
fn finish(mut child: Child) -> Run {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = None;
    wait_until("the child to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    Run {
        code: status.unwrap().code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The `info` line for `key` (`Key   value`).
fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with("  "))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

fn assert_file(path: &Path, expected: &[u8]) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        got == expected,
        "{} differs from what the server has",
        path.display()
    );
}

#[test]
fn transfer_downloads_every_file_and_completes() {
    let f = Fixture::new();
    f.server.add("/a.bin", pattern(300_000, 1));
    f.server.add("/b.bin", pattern(5_000, 2));
    std::fs::create_dir(f.path("into")).unwrap();
    let r = f.expect(
        0,
        &[
            "transfer",
            &f.server.url("/a.bin"),
            &f.p("a.bin"),
            &f.server.url("/b.bin"),
            &format!("{}/", f.p("into")),
        ],
    );
    assert_file(&f.path("a.bin"), &pattern(300_000, 1));
    // A folder as DEST takes the URL's file name, as Start-BitsTransfer does.
    assert_file(&f.path("into/b.bin"), &pattern(5_000, 2));
    assert!(r.stdout.contains("transferred 297.9 KiB"), "{r:?}");
    // Not a terminal: no control character anywhere.
    assert!(
        !r.stderr.contains('\x1b') && !r.stderr.contains('\r'),
        "{r:?}"
    );
    // Completed jobs leave the queue.
    assert!(f.jobs().is_empty());
}

#[test]
fn transfer_json_is_one_document_and_quiet_prints_nothing() {
    let f = Fixture::new();
    f.server.add("/x", pattern(10_000, 3));
    let r = f.expect(0, &["--json", "transfer", &f.server.url("/x"), &f.p("x")]);
    let doc = r.json();
    assert_eq!(doc["state"], "ACKNOWLEDGED");
    assert_eq!(doc["bytes_transferred"], 10_000);
    assert_eq!(doc["priority"], "FOREGROUND");
    assert_eq!(doc["files"][0]["local_path"], f.p("x"));
    assert_eq!(doc["result"], "0x00000000 BITS_S_OK");
    let r = f.expect(0, &["--quiet", "transfer", &f.server.url("/x"), &f.p("y")]);
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    assert_file(&f.path("y"), &pattern(10_000, 3));
}

#[test]
fn transfer_failure_reports_the_bits_error_and_a_rerun_continues_the_job() {
    let f = Fixture::new();
    let url = f.server.url("/later.bin");
    let r = f.expect(1, &["transfer", "--name", "fails", &url, &f.p("later.bin")]);
    for part in [
        "0x80190194",
        "BITS_E_HTTP_ERROR(404)",
        "HTTP 404 Not Found",
        "remote file",
    ] {
        assert!(r.stderr.contains(part), "{part}: {r:?}");
    }
    let jobs = f.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "ERROR");
    assert_eq!(jobs[0]["error"]["name"], "BITS_E_HTTP_ERROR(404)");
    let id = jobs[0]["id"].as_str().unwrap().to_string();
    // info's text shows the error with its context and its file.
    let r = f.expect(0, &["info", &id]);
    assert!(line_of(&r.stdout, "State").ends_with(" ERROR"), "{r:?}");
    for part in [
        "Error\n  0x80190194 BITS_E_HTTP_ERROR(404)\n  HTTP 404 Not Found",
        "remote file",
        &format!("  file: {url} -> {}", f.p("later.bin")),
    ] {
        assert!(r.stdout.contains(part), "{part:?} in {r:?}");
    }
    // The same transfer again continues that job, once the file exists.
    f.server.add("/later.bin", pattern(4_000, 4));
    let r = f.expect(0, &["transfer", "--name", "fails", &url, &f.p("later.bin")]);
    assert!(r.stderr.contains(&format!("continuing job {id}")), "{r:?}");
    assert_file(&f.path("later.bin"), &pattern(4_000, 4));
    assert!(f.jobs().is_empty());
}

#[test]
fn ctrl_c_suspends_and_the_same_transfer_continues_with_a_range() {
    let f = Fixture::new();
    let data = pattern(1_500_000, 5);
    f.server.add("/slow.bin", data.clone());
    let url = f.server.url("/slow.bin?rate=400000");
    let dest = f.p("slow.bin");
    let child = f.spawn(&["transfer", &url, &dest]);
    // The transfer's process holds the queue; what it has recorded is readable meanwhile.
    wait_until("a checkpoint of the transfer", || {
        let jobs = f.jobs();
        jobs.len() == 1 && jobs[0]["bytes_transferred"].as_u64().unwrap() > 0
    });
    signal(&child, libc::SIGINT);
    let r = finish(child);
    assert_eq!(r.code, 130, "{r:?}");
    assert!(
        r.stderr.contains("is suspended; continue it with:"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!("transfer '{url}' {dest}")),
        "the command that continues: {r:?}"
    );
    let jobs = f.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["state"], "SUSPENDED");
    let kept = jobs[0]["bytes_transferred"].as_u64().unwrap();
    assert!(
        kept > 0 && kept < data.len() as u64,
        "progress recorded at suspend: {kept}"
    );
    assert!(
        !f.path("slow.bin").exists(),
        "nothing in place before complete"
    );

    let r = f.expect(0, &["transfer", &url, &dest]);
    let id = jobs[0]["id"].as_str().unwrap();
    assert!(
        r.stderr
            .contains(&format!("continuing job {id} (SUSPENDED")),
        "{r:?}"
    );
    assert_file(&f.path("slow.bin"), &data);
    let resumed = f
        .server
        .seen()
        .iter()
        .filter_map(|s| s.range.clone())
        .filter_map(|r| {
            r.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        resumed >= kept,
        "continued from {resumed}, {kept} were kept"
    );
}

#[test]
fn every_changing_verb_on_a_free_queue() {
    let f = Fixture::new();
    f.server.add("/v.bin", pattern(50_000, 6));
    let id = f.expect(0, &["create", "verbs"]).stdout.trim().to_string();
    assert!(id.starts_with('{') && id.len() == 38, "{id}");
    f.expect(
        0,
        &["addfile", "verbs", &f.server.url("/v.bin"), &f.p("v.bin")],
    );
    // Every property the core supports, read back through info --json.
    let sets: &[(&str, &str, &str, Value)] = &[
        ("priority", "high", "priority", "HIGH".into()),
        (
            "description",
            "for the test",
            "description",
            "for the test".into(),
        ),
        ("retry-delay", "7", "retry_delay_s", 7.into()),
        (
            "no-progress-timeout",
            "99",
            "no_progress_timeout_s",
            99.into(),
        ),
        (
            "max-download-time",
            "1234",
            "max_download_time_s",
            1234.into(),
        ),
        (
            "max-download-size",
            "1000000",
            "max_download_size",
            1_000_000.into(),
        ),
        (
            "custom-headers",
            "X-A: 1\\nX-B: 2",
            "custom_headers",
            "X-A: 1\r\nX-B: 2\r\n".into(),
        ),
        ("proxy", "no-proxy", "proxy_usage", "NO_PROXY".into()),
        (
            "notify-cmdline",
            "/bin/true done",
            "notify_program",
            "/bin/true".into(),
        ),
        ("notify-flags", "0x1", "notify_flags", 1.into()),
        ("dynamic-content", "false", "dynamic_content", false.into()),
    ];
    for (property, value, field, expected) in sets {
        f.expect(0, &["set", &id, property, value]);
        assert_eq!(&f.info(&id)[*field], expected, "{property}");
    }
    f.expect(
        0,
        &[
            "set",
            &id,
            "proxy",
            "proxy.test:3128",
            "--bypass",
            "<local>",
        ],
    );
    let doc = f.info(&id);
    assert_eq!(
        (doc["proxy_usage"].as_str(), doc["proxy_list"].as_str()),
        (Some("OVERRIDE"), Some("proxy.test:3128"))
    );
    f.expect(0, &["set", &id, "proxy", "preconfig"]);
    f.expect(0, &["set", &id, "display-name", "renamed"]);
    assert_eq!(f.info("renamed")["display_name"], "renamed");
    // What the core refuses, with its code.
    f.expect(2, &["set", &id, "priority", "urgent"]);
    let r = f.expect(1, &["set", &id, "description", &"x".repeat(2000)]);
    assert!(r.stderr.contains("0x80070057 BITS_E_INVALIDARG"), "{r:?}");
    f.expect(0, &["set", &id, "max-bandwidth", "2MiB"]);
    f.expect(0, &["set", &id, "transfer-policy", "unrestricted"]);
    let doc = f.info(&id);
    assert_eq!(
        (
            doc["max_bandwidth"].as_u64(),
            doc["transfer_policy"].as_u64()
        ),
        (Some(2 << 20), Some(0x8000_0021))
    );
    f.expect(2, &["set", &id, "transfer-policy", "sometimes"]);
    let r = f.expect(1, &["set", &id, "transfer-policy", "0x40000001"]);
    assert!(r.stderr.contains("0x80070057 BITS_E_INVALIDARG"), "{r:?}");
    let r = f.expect(2, &["set", &id, "credentials", "server:me"]);
    assert!(r.stderr.contains("--password-env"), "{r:?}");
    f.expect(0, &["set", &id, "custom-headers", ""]);
    f.expect(0, &["set", &id, "notify-cmdline", ""]);
    assert_eq!(f.info(&id)["custom_headers"], Value::Null);

    // resume without --wait queues the job; nobody holds the queue, so it waits there.
    f.expect(0, &["resume", &id]);
    assert_eq!(f.info(&id)["state"], "QUEUED");
    f.expect(0, &["suspend", &id]);
    assert_eq!(f.info(&id)["state"], "SUSPENDED");
    let r = f.expect(0, &["resume", &id, "--wait"]);
    assert!(r.stdout.contains("complete"), "{r:?}");
    assert_eq!(f.info(&id)["state"], "TRANSFERRED");
    assert!(!f.path("v.bin").exists());
    // Reply data is for upload-reply jobs only: BITS's answer for a download.
    let r = f.expect(1, &["getreplydata", &id]);
    assert!(r.stderr.contains("0x80004001 BITS_E_NOTIMPL"), "{r:?}");
    f.expect(0, &["complete", &id]);
    assert_file(&f.path("v.bin"), &pattern(50_000, 6));
    assert!(f.jobs().is_empty());

    let other = f.expect(0, &["--json", "create", "to cancel"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.expect(0, &["cancel", &other]);
    assert!(f.jobs().is_empty());
}

#[test]
fn uploads_and_upload_replies_go_to_openbits_server() {
    let f = Fixture::new();
    let root = f.path("root");
    std::fs::create_dir(&root).unwrap();
    let server = openbits_server::embedded::Embedded::start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
    ])
    .unwrap();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(f.path("up.bin"), &content).unwrap();
    let r = f.expect(
        0,
        &[
            "transfer",
            "--upload",
            "--max-bandwidth",
            "10M",
            &f.p("up.bin"),
            &server.url("/in/up.bin"),
        ],
    );
    assert!(
        r.stdout.contains("transferred") || r.stderr.is_empty(),
        "{r:?}"
    );
    assert_eq!(std::fs::read(root.join("in/up.bin")).unwrap(), content);
    // Upload-reply: the server's application answers; the reply lands beside the upload.
    let app = openbits_testserver::app::reply_application(|b| b.iter().rev().copied().collect());
    let reply_root = f.path("reply-root");
    std::fs::create_dir(&reply_root).unwrap();
    let reply_server = openbits_server::embedded::Embedded::start(&[
        "--listen",
        "127.0.0.1:0",
        "--root",
        reply_root.to_str().unwrap(),
        "--notify-type",
        "by-value",
        "--notify-url",
        &app,
    ])
    .unwrap();
    let r = f.expect(
        0,
        &[
            "transfer",
            "--upload-reply",
            &f.p("up.bin"),
            &reply_server.url("/r"),
        ],
    );
    let reply = r
        .stderr
        .lines()
        .chain(r.stdout.lines())
        .find_map(|l| l.strip_prefix("reply: "))
        .unwrap_or_else(|| panic!("no reply line: {r:?}"))
        .to_string();
    let reversed: Vec<u8> = content.iter().rev().copied().collect();
    assert_eq!(std::fs::read(&reply).unwrap(), reversed);
    assert!(f.jobs().is_empty());
    // getreplydata on a transferred upload-reply job writes the reply.
    let id = f
        .expect(0, &["--json", "create", "--upload-reply", "ask"])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.expect(
        0,
        &["addfile", &id, &reply_server.url("/r2"), &f.p("up.bin")],
    );
    f.expect(0, &["resume", &id, "--wait"]);
    f.expect(0, &["getreplydata", &id, "--output", &f.p("answer.bin")]);
    assert_eq!(std::fs::read(f.path("answer.bin")).unwrap(), reversed);
    // Without --output the reply goes to stdout, byte for byte.
    let out = f.command(&["getreplydata", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", run_of(out.clone()));
    assert!(out.stdout == reversed, "stdout is the reply");
    // info shows where the reply goes and how much of it came.
    let r = f.expect(0, &["info", &id]);
    assert!(r.stdout.contains("Reply file"), "{r:?}");
    let progress = line_of(&r.stdout, "Reply progress");
    assert!(
        progress.contains("293.0 KiB / 293.0 KiB from http://127.0.0.1:"),
        "{progress:?}"
    );
    f.expect(0, &["complete", &id]);
    assert!(f.jobs().is_empty());
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new();
    f.expect(2, &["transfer", &f.server.url("/x")]);
    f.expect(
        2,
        &[
            "transfer",
            &f.server.url("/x"),
            &f.p("x"),
            &f.server.url("/y"),
        ],
    );
    f.expect(2, &["frobnicate"]);
    f.expect(2, &["info", "nothing-by-that-name"]);
    let r = f.expect(0, &["--help"]);
    for line in EXIT_STATUS_LINES {
        assert!(r.stdout.contains(line), "{line}: {r:?}");
    }
    let r = f.expect(0, &["list", "--help"]);
    assert!(
        r.stdout
            .contains("as fresh as that process's last checkpoint"),
        "{r:?}"
    );
}

#[test]
fn job_names_prefixes_and_ambiguity() {
    let f = Fixture::new();
    let a = f.expect(0, &["create", "twin"]).stdout.trim().to_string();
    let b = f.expect(0, &["create", "twin"]).stdout.trim().to_string();
    let c = f.expect(0, &["create", "single"]).stdout.trim().to_string();
    let r = f.expect(2, &["info", "twin"]);
    assert!(
        r.stderr.contains("names 2 jobs") && r.stderr.contains(&a) && r.stderr.contains(&b),
        "{r:?}"
    );
    let r = f.expect(2, &["suspend", "twin"]);
    assert!(r.stderr.contains(&a) && r.stderr.contains(&b), "{r:?}");
    assert_eq!(f.info("single")["id"], c.as_str());
    // A prefix long enough to tell the GUIDs apart (they are random: find the shortest).
    let (a_bare, b_bare) = (a[1..].to_lowercase(), b[1..].to_lowercase());
    let n = (1..36)
        .find(|&n| a_bare[..n] != b_bare[..n] && !c[1..].to_lowercase().starts_with(&a_bare[..n]))
        .unwrap();
    assert_eq!(f.info(&a_bare[..n])["id"], a.as_str());
    f.expect(0, &["cancel", &a_bare[..n]]);
    let left: Vec<Value> = f.jobs().iter().map(|j| j["id"].clone()).collect();
    assert_eq!(left, [Value::from(b.as_str()), Value::from(c.as_str())]);
}

/// The test process holds the queue through the core, as an application would; the tool, a
/// second process, reads it and is refused changes with status 3 and our process id.
#[test]
fn a_held_queue_is_read_but_not_changed() {
    let f = Fixture::new();
    f.server.add("/held.bin", pattern(2_000_000, 7));
    let manager = Manager::open(Some(&f.state()), Config::default()).unwrap();
    let job = manager.create_job("held", JobType::Download).unwrap();
    job.add_file(&f.server.url("/held.bin?rate=500000"), &f.p("held.bin"))
        .unwrap();
    job.resume().unwrap();
    let pid = std::process::id();

    let doc = f.expect(0, &["--json", "list"]).json();
    assert_eq!(doc["holder"]["pid"], pid);
    assert_eq!(doc["jobs"][0]["display_name"], "held");
    let r = f.expect(0, &["list"]);
    assert!(r.stdout.contains("held"), "{r:?}");
    assert!(
        r.stderr.contains(&format!("held by process {pid}")),
        "{r:?}"
    );
    // Progress shows as the holder checkpoints it.
    wait_until("the holder's progress to show", || {
        f.info("held")["bytes_transferred"].as_u64().unwrap() > 0
    });
    let r = f.expect(0, &["info", "held"]);
    assert!(r.stdout.contains("Files (1)"), "{r:?}");
    // The holder wrote the job's row when it was CONNECTING; its checkpoints write only file
    // rows. Bytes recorded past 0 read as TRANSFERRING, in every reader (the transfer takes 4 s,
    // so it is still under way).
    assert_eq!(f.info("held")["state"], "TRANSFERRING");
    assert_eq!(f.jobs()[0]["state"], "TRANSFERRING");
    assert!(r.stdout.contains("TRANSFERRING"), "{r:?}");
    let r = f.expect(0, &["list"]);
    assert!(r.stdout.contains("TRANSFERRING"), "{r:?}");
    // monitor, in text mode, not on a terminal: the table and the holder, until Ctrl-C.
    let mut child = f.spawn(&["monitor", "--interval", "0.1"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while !(seen.contains("held by process") && seen.contains("TRANSFERRING")) {
        match lines.next() {
            Some(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            other => panic!("monitor stopped ({other:?}) after:\n{seen}"),
        }
    }
    assert!(seen.contains(&format!("held by process {pid}")), "{seen}");
    assert!(
        !seen.contains('\x1b'),
        "no control characters in a pipe: {seen:?}"
    );
    assert_eq!(interrupt(&mut child), Some(130));

    let id = job.record().unwrap().id.to_string();
    let url = f.server.url("/held.bin");
    let writes: Vec<Vec<&str>> = vec![
        vec!["create", "x"],
        vec!["addfile", &id, &url, "/tmp/x"],
        vec!["resume", &id],
        vec!["suspend", &id],
        vec!["cancel", &id],
        vec!["complete", &id],
        vec!["set", &id, "priority", "low"],
        vec!["getreplydata", &id],
        vec!["transfer", &url, "/tmp/y"],
        vec!["run", "--until-idle"],
    ];
    for args in &writes {
        let r = f.expect(3, args);
        assert!(
            r.stderr.contains(&format!("held by process {pid}")),
            "{args:?}: {r:?}"
        );
    }
    // Nothing the tool did disturbed the holder: it goes on and finishes.
    assert_eq!(
        job.wait(Some(Duration::from_secs(30))).unwrap(),
        openbits_core::JobState::Transferred
    );
    drop(job);
    drop(manager);
    // Once released, the same verbs work.
    f.expect(0, &["complete", "held"]);
    assert_file(&f.path("held.bin"), &pattern(2_000_000, 7));
}

#[test]
fn run_until_idle_transfers_the_queue_and_run_holds_it() {
    let f = Fixture::new();
    f.server.add("/r.bin", pattern(20_000, 8));
    let id = f.expect(0, &["create", "queued"]).stdout.trim().to_string();
    f.expect(0, &["addfile", &id, &f.server.url("/r.bin"), &f.p("r.bin")]);
    f.expect(0, &["resume", &id]);
    let r = f.expect(0, &["run", "--until-idle"]);
    assert!(
        r.stdout.contains(&format!("{id} queued: TRANSFERRED")),
        "{r:?}"
    );
    assert_eq!(f.info(&id)["state"], "TRANSFERRED");

    // `run` without --until-idle holds the queue until SIGTERM (what systemd sends).
    let child = f.spawn(&["run"]);
    let pid = child.id();
    wait_until("run to hold the queue", || {
        f.expect(0, &["--json", "list"]).json()["holder"]["pid"] == pid
    });
    let r = f.expect(3, &["complete", &id]);
    assert!(
        r.stderr
            .contains(&format!("held by process {pid} (openbits)")),
        "{r:?}"
    );
    signal(&child, libc::SIGTERM);
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    // Ctrl-C is an interruption: 130.
    let child = f.spawn(&["run"]);
    let pid = child.id();
    wait_until("run to hold the queue again", || {
        f.expect(0, &["--json", "list"]).json()["holder"]["pid"] == pid
    });
    signal(&child, libc::SIGINT);
    let r = finish(child);
    assert_eq!(r.code, 130, "{r:?}");
    f.expect(0, &["complete", &id]);
    assert_file(&f.path("r.bin"), &pattern(20_000, 8));
}

#[test]
fn monitor_prints_a_json_line_per_refresh_until_ctrl_c() {
    let f = Fixture::new();
    f.expect(0, &["create", "watched"]);
    let mut child = f.spawn(&["--json", "monitor", "--interval", "0.1"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let line = lines.next().unwrap().unwrap();
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["jobs"][0]["display_name"], "watched");
        assert!(doc["time"].is_string());
    }
    // Interrupted, as the exit statuses say.
    assert_eq!(interrupt(&mut child), Some(130));
}

#[test]
fn completions_for_each_shell() {
    let f = Fixture::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = f.expect(0, &["completions", shell]);
        assert!(
            r.stdout.contains("transfer") && r.stdout.contains("getreplydata"),
            "{shell}: {r:?}"
        );
    }
}

/// Runs `openbits ARGS` in a pseudo-terminal of 80 columns (`script` from util-linux); returns
/// the exit status and the raw screen.
fn in_terminal(f: &Fixture, args: &[String]) -> (Option<i32>, String) {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let cmd = format!(
        "stty cols 80 rows 30; exec {BIN} --state-dir '{}' {}",
        f.state().display(),
        quoted.join(" ")
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("OPENBITS_HOME")
        .output()
        .expect("script(1) from util-linux runs the terminal test");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// What a screen shows, line by line: the escape sequences removed, split at every carriage
/// return and line feed (each piece is one drawing of a line).
fn drawn_lines(screen: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            text.push(c);
            continue;
        }
        // CSI: ESC [ parameters, ended by a byte in @..~; any other escape is two characters.
        if chars.next_if_eq(&'[').is_some() {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    text.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// On a terminal (a pseudo-terminal from `script`) of 80 columns, with two files: the bars
/// advance, the job's bar has a total from the first file's size before the second's is known,
/// no line is wider than the terminal, and the last line reports the size. A failing job's error
/// line is red.
#[test]
fn terminal_shows_advancing_bars() {
    let f = Fixture::new();
    f.server.add("/tty.bin", pattern(1 << 20, 9));
    f.server.add("/tty2.bin", pattern(1 << 19, 13));
    let (code, screen) = in_terminal(
        &f,
        &[
            "transfer".into(),
            f.server.url("/tty.bin?rate=700000"),
            f.p("tty.bin"),
            // Files go several at a time: the second answers late, so for a while only the
            // first one's size is known.
            f.server.url("/tty2.bin?rate=700000&delay=800"),
            f.p("a-name-longer-than-the-column.bin"),
        ],
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains('\x1b'),
        "bars are drawn with escape sequences: {screen:?}"
    );
    let lines = drawn_lines(&screen);
    // Each redraw of the first file's bar (and of the job's, while only that size is known)
    // shows "<done>/1.0 MiB"; collect the <done> values in order.
    let mut shown = Vec::new();
    for line in &lines {
        for (i, _) in line.match_indices("/1.0 MiB") {
            let before = line[..i].trim_end();
            let token = before.rsplit(']').next().unwrap_or("").trim();
            if let Some((number, unit)) = token.rsplit_once(' ').or(Some((token, "B"))) {
                let scale = match unit {
                    "KiB" => 1024.0,
                    "MiB" => 1048576.0,
                    _ => 1.0,
                };
                if let Ok(n) = number.trim().parse::<f64>() {
                    shown.push((n * scale) as u64);
                }
            }
        }
    }
    let distinct: std::collections::BTreeSet<u64> = shown.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the bar advanced: {shown:?}\n{lines:#?}"
    );
    assert_eq!(distinct.last(), Some(&(1 << 20)), "{shown:?}");
    // The job's bar: a bar (not a spinner) with the first file's size as its total while the
    // second file's is unknown, then both.
    let job_bars: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("job ["))
        .collect();
    assert!(
        job_bars.iter().any(|l| l.contains("/1.0 MiB")),
        "the job's bar had a total before every size was known: {lines:#?}"
    );
    assert!(
        job_bars.iter().any(|l| l.contains("/1.5 MiB")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("…")),
        "the long name is shortened: {lines:#?}"
    );
    for line in &lines {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal ({}): {line:?}",
            line.chars().count()
        );
    }
    assert!(screen.contains("transferred 1.5 MiB"), "{screen:?}");
    assert_file(&f.path("tty.bin"), &pattern(1 << 20, 9));
    assert_file(
        &f.path("a-name-longer-than-the-column.bin"),
        &pattern(1 << 19, 13),
    );

    // A job that fails: its error line is red (SGR 31), with BITS's code.
    let (code, screen) = in_terminal(
        &f,
        &[
            "transfer".into(),
            f.server.url("/missing.bin"),
            f.p("missing.bin"),
        ],
    );
    assert_eq!(code, Some(1), "{screen}");
    let red = screen
        .split("\x1b[31m")
        .nth(1)
        .and_then(|rest| rest.split("\x1b[0m").next())
        .unwrap_or_else(|| panic!("no red line: {screen:?}"));
    assert!(
        red.starts_with("openbits: job {") && red.contains("0x80190194 BITS_E_HTTP_ERROR(404)"),
        "{red:?}"
    );
}

/// A bad `--header`, an unset `--password-env` or a user name Basic cannot carry is found before
/// the queue is touched: the failed transfer leaves no job behind.
#[test]
fn a_transfer_refused_on_its_arguments_leaves_no_job() {
    let f = Fixture::new();
    f.server.add("/n.bin", pattern(1_000, 10));
    let url = f.server.url("/n.bin");
    let dest = f.p("n.bin");
    // A header the engine owns: the library's refusal, with its code.
    let r = f.expect(1, &["transfer", "--header", "Range: bytes=0-", &url, &dest]);
    assert!(r.stderr.contains("0x80070057 BITS_E_INVALIDARG"), "{r:?}");
    assert!(f.jobs().is_empty(), "{:?}", f.jobs());
    // Not a header at all.
    f.expect(1, &["transfer", "--header", "no colon here", &url, &dest]);
    assert!(f.jobs().is_empty(), "{:?}", f.jobs());
    // The password's variable is not set.
    let r = run_of(
        f.command(&[
            "transfer",
            "--user",
            "me",
            "--password-env",
            "OPENBITS_TEST_UNSET_PASSWORD",
            &url,
            &dest,
        ])
        .env_remove("OPENBITS_TEST_UNSET_PASSWORD")
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("OPENBITS_TEST_UNSET_PASSWORD"), "{r:?}");
    assert!(f.jobs().is_empty(), "{:?}", f.jobs());
    // A Basic user name cannot hold ':'.
    let r = run_of(
        f.command(&[
            "transfer",
            "--user",
            "a:b",
            "--password-env",
            "OPENBITS_TEST_PASSWORD",
            &url,
            &dest,
        ])
        .env("OPENBITS_TEST_PASSWORD", "pw")
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(f.jobs().is_empty(), "{:?}", f.jobs());
    assert!(!f.path("n.bin").exists());
}

/// `--header`, `--user` with `--password-env`, and `--priority` reach the server and the job.
#[test]
fn transfer_sends_headers_and_credentials_at_the_priority_asked() {
    let f = Fixture::new();
    f.server.add("/secret.bin", pattern(20_000, 11));
    // The server answers 401 unless the request carries Basic me:s3cret.
    let url = f.server.url("/secret.bin?auth=me:s3cret");
    let out = f
        .command(&[
            "--json",
            "transfer",
            "--priority",
            "high",
            "--header",
            "X-Openbits-Test: one",
            "--header",
            "X-Other: two",
            "--user",
            "me",
            "--password-env",
            "OPENBITS_TEST_PASSWORD",
            &url,
            &f.p("secret.bin"),
        ])
        .env("OPENBITS_TEST_PASSWORD", "s3cret")
        .output()
        .unwrap();
    let r = run_of(out);
    assert_eq!(r.code, 0, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["priority"], "HIGH");
    assert_eq!(
        doc["custom_headers"],
        "X-Openbits-Test: one\r\nX-Other: two\r\n"
    );
    assert_file(&f.path("secret.bin"), &pattern(20_000, 11));
    let ok = f
        .server
        .seen()
        .into_iter()
        .find(|s| s.path_and_query.starts_with("/secret.bin") && s.status == 200)
        .expect("a 200 for the file");
    let header = |name: &str| {
        ok.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-openbits-test").as_deref(), Some("one"));
    assert_eq!(header("x-other").as_deref(), Some("two"));
    // The credentials never reach stdout or stderr (the password itself is in the URL, which
    // the test server needs; its Basic token is what must not leak).
    let token = "bWU6czNjcmV0"; // base64("me:s3cret")
    assert!(
        !r.stdout.contains(token) && !r.stderr.contains(token),
        "{r:?}"
    );

    // A wrong password: the server's 401 is the job's error.
    let r = run_of(
        f.command(&[
            "transfer",
            "--user",
            "me",
            "--password-env",
            "OPENBITS_TEST_PASSWORD",
            &url,
            &f.p("denied.bin"),
        ])
        .env("OPENBITS_TEST_PASSWORD", "wrong")
        .output()
        .unwrap(),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("BITS_E_HTTP_ERROR(401)"), "{r:?}");
}

/// Every verb that changes a job prints one JSON document with `--json`; `create` prints the
/// GUID even with `--quiet`.
#[test]
fn changing_verbs_print_json_and_create_prints_its_guid_when_quiet() {
    let f = Fixture::new();
    f.server.add("/j.bin", pattern(3_000, 12));
    let r = f.expect(0, &["-q", "create", "quiet one"]);
    let id = r.stdout.trim().to_string();
    assert!(id.starts_with('{') && id.len() == 38, "{r:?}");
    assert_eq!(r.stderr, "");
    assert_eq!(f.info(&id)["display_name"], "quiet one");

    let state_of = |args: &[&str]| -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let doc = f.expect(0, &all).json();
        assert_eq!(doc["id"], id.as_str(), "{args:?}: {doc}");
        doc
    };
    let doc = state_of(&["addfile", &id, &f.server.url("/j.bin"), &f.p("j.bin")]);
    assert_eq!(doc["state"], "SUSPENDED");
    assert_eq!(doc["local_path"], f.p("j.bin"));
    let doc = state_of(&["set", &id, "priority", "low"]);
    assert_eq!(
        (doc["state"].as_str(), doc["property"].as_str()),
        (Some("SUSPENDED"), Some("priority"))
    );
    assert_eq!(state_of(&["resume", &id])["state"], "QUEUED");
    assert_eq!(state_of(&["suspend", &id])["state"], "SUSPENDED");
    f.expect(0, &["resume", &id, "--wait"]);
    let doc = state_of(&["complete", &id]);
    assert_eq!(doc["state"], "ACKNOWLEDGED");
    assert_eq!(doc["result"], "0x00000000 BITS_S_OK");
    assert_file(&f.path("j.bin"), &pattern(3_000, 12));

    let other = f.expect(0, &["--json", "create", "to cancel"]).json();
    assert_eq!(other["state"], "SUSPENDED");
    let other_id = other["id"].as_str().unwrap();
    let doc = f.expect(0, &["--json", "cancel", other_id]).json();
    assert_eq!(
        (doc["id"].as_str(), doc["state"].as_str()),
        (Some(other_id), Some("CANCELLED"))
    );
    // Nothing else on stdout: exactly one document each time (parsed above), and text mode
    // keeps its remarks on stderr.
    let r = f.expect(0, &["create", "plain"]);
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
}

/// Jobs of other owners show only with --all-users (with an OWNER column).
#[test]
fn list_all_users_shows_other_owners() {
    let f = Fixture::new();
    {
        let config = Config {
            owner: Some("someone-else".into()),
            ..Config::default()
        };
        let manager = Manager::open(Some(&f.state()), config).unwrap();
        manager.create_job("theirs", JobType::Download).unwrap();
        manager.close();
    }
    f.expect(0, &["create", "mine"]);
    let names = |doc: Value| -> Vec<String> {
        doc["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["display_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(f.expect(0, &["--json", "list"]).json()), ["mine"]);
    assert_eq!(
        names(f.expect(0, &["--json", "list", "--all-users"]).json()),
        ["theirs", "mine"]
    );
    let r = f.expect(0, &["list", "--all-users"]);
    assert!(r.stdout.contains("OWNER"), "{r:?}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("someone-else") && l.contains("theirs")),
        "{r:?}"
    );
    let r = f.expect(0, &["list"]);
    assert!(!r.stdout.contains("theirs"), "{r:?}");
}

/// Without --state-dir the queue is $OPENBITS_HOME.
#[test]
fn openbits_home_chooses_the_queue() {
    let f = Fixture::new();
    let home = f.path("home-queue");
    let out = Command::new(BIN)
        .args(["create", "from the environment"])
        .env("OPENBITS_HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = run_of(out);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        home.join("openbits.db").exists(),
        "the queue is in $OPENBITS_HOME"
    );
    // The same queue, named by --state-dir: the job is there.
    let doc = run_of(
        Command::new(BIN)
            .arg("--state-dir")
            .arg(&home)
            .args(["--json", "list"])
            .env_remove("OPENBITS_HOME")
            .output()
            .unwrap(),
    )
    .json();
    assert_eq!(doc["jobs"][0]["display_name"], "from the environment");
    assert_eq!(doc["jobs"][0]["id"], r.stdout.trim());
    // --state-dir wins over $OPENBITS_HOME.
    let r = run_of(
        f.command(&["--json", "list"])
            .env("OPENBITS_HOME", &home)
            .output()
            .unwrap(),
    );
    assert_eq!(r.json()["jobs"].as_array().map(Vec::len), Some(0), "{r:?}");
}

#[test]
fn transfer_and_run_help_list_the_exit_statuses() {
    let f = Fixture::new();
    for verb in ["transfer", "run", "resume"] {
        let r = f.expect(0, &[verb, "--help"]);
        for line in EXIT_STATUS_LINES {
            assert!(r.stdout.contains(line), "{verb}: {line}: {r:?}");
        }
    }
    let r = f.expect(0, &["transfer", "--help"]);
    assert!(
        !r.stdout.contains("not in this openbits yet"),
        "no stale 'not yet' text: {r:?}"
    );
}

/// `man --dir` writes the top page and one per verb (what scripts/install.sh installs).
#[test]
fn man_pages_for_the_tool_and_each_verb() {
    let f = Fixture::new();
    let dir = f.path("man1");
    std::fs::create_dir(&dir).unwrap();
    f.expect(0, &["man", "--dir", dir.to_str().unwrap()]);
    for verb in [
        "",
        "-transfer",
        "-create",
        "-addfile",
        "-resume",
        "-suspend",
        "-cancel",
        "-complete",
        "-set",
        "-getreplydata",
        "-list",
        "-info",
        "-monitor",
        "-run",
        "-completions",
    ] {
        let page = dir.join(format!("openbits{verb}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.contains(&format!(".TH openbits{verb} 1")),
            "{}",
            page.display()
        );
    }
    let install = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/install.sh"
    ))
    .unwrap();
    assert!(
        install.contains("man --dir"),
        "scripts/install.sh installs every page"
    );
}

/// The example user unit: a user manager cannot see the system's network-online.target, so the
/// unit must not claim to wait for it.
#[test]
fn the_systemd_user_unit_makes_no_system_target_claims() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/systemd/openbits-run.service"
    ))
    .unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        !directives
            .iter()
            .any(|l| l.contains("network-online.target")),
        "{directives:?}"
    );
    assert!(
        directives.contains(&"ExecStart=%h/.local/bin/openbits run --until-idle"),
        "{directives:?}"
    );
}

/// The README's quick start, run as written (in a shell with no terminal, as a script runs it):
/// its build line is checked, not run (this test's cargo built the tool); the port and the
/// destination are moved to free ones.
#[test]
fn the_readme_quick_start_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme
        .find("\n## Quick start\n")
        .expect("README has a Quick start section")..];
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block in the quick start");
    let mut lines = block.lines();
    let build = lines.next().unwrap_or("");
    assert!(
        build.starts_with("cargo build")
            && build.contains("-p openbits-cli")
            && build.contains("-p openbits-testserver"),
        "the quick start builds the tool and the server first: {build}"
    );
    let script: String = lines.map(|l| format!("{l}\n")).collect();
    assert!(
        script.contains("target/debug/openbits transfer"),
        "the quick start shows `openbits transfer`:\n{script}"
    );

    // The binaries, where the README says they are (target/debug under the folder it runs in).
    let bin_dir = Path::new(BIN).parent().unwrap();
    let server_bin = bin_dir.join("openbits-testserver");
    if !server_bin.exists() {
        // `cargo test -p openbits-cli` builds the server's library only; its binary is one
        // cargo build away.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "openbits-testserver"])
            .current_dir(&root)
            .status()
            .unwrap();
        assert!(
            status.success() && server_bin.exists(),
            "{}",
            server_bin.display()
        );
    }
    let f = Fixture::new();
    let run_dir = f.path("cwd");
    std::fs::create_dir_all(run_dir.join("target")).unwrap();
    std::os::unix::fs::symlink(bin_dir, run_dir.join("target/debug")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let dest = f.p("big.bin");
    let script = script
        .replace(":8000", &format!(":{port}"))
        .replace("--port 8000", &format!("--port {port}"))
        .replace("/tmp/big.bin", &dest);
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(&run_dir)
        .env("OPENBITS_HOME", f.state())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a hung run can be stopped whole.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its last line stops the server (checked before the clean-up below would stop it too).
    let server_stopped = status.is_some_and(|s| s.success()) && {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Whatever happened, nothing the script started outlives the test.
    // SAFETY: signals the process group of the shell we spawned (its pid is the group id).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let mut out = String::new();
    let mut err = String::new();
    // The pipes close once every process of the group is gone.
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    let status = status.unwrap_or_else(|| panic!("the quick start hung:\n{out}\n{err}"));
    assert!(
        status.success(),
        "{status}:\n{script}\n--- stdout\n{out}--- stderr\n{err}"
    );
    assert_file(Path::new(&dest), &pattern(20 * 1024 * 1024, 1));
    assert!(out.contains("transferred 20.0 MiB"), "{out}\n{err}");
    assert!(
        server_stopped,
        "the server still listens after the quick start"
    );
}
