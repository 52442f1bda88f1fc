//! `openbits-testserver [--daemon] [--port P] [--file URLPATH=LOCALFILE]... [--pattern URLPATH=LEN[:SEED]]...`
//!
//! Serves files from memory on 127.0.0.1 (see the library docs for the fault-injecting query
//! strings). Prints `port=<P>` on its first line once it listens, then serves until stdin closes
//! or it is killed. `GET /_stats` returns `bytes_sent=<n>` and `requests=<n>`; `GET /_requests`
//! lists the requests received so far, one a line: `<status>\t<path-and-query>\t<Range>\t<If-Range>`
//! (`-` for an absent header).
//!
//! With `--daemon` it serves in a process of its own, which never reads stdin and serves until it
//! is killed, and returns once that process listens, printing its process id on stdout (and
//! `listening on 127.0.0.1:<P>` on stderr): `server=$(openbits-testserver --daemon …)` then
//! `kill "$server"`, from an interactive shell or a script alike. (A plain `openbits-testserver &`
//! reads a terminal from the background, which stops it, or a script's /dev/null, which ends it;
//! and the command after the `&` may run before it listens.)

use openbits_testserver::{pattern, TestServer};
use std::io::{BufRead, Write};

fn main() {
    let mut port = 0u16;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut daemon = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--daemon" {
            daemon = true;
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--port" => port = value.parse().unwrap_or_else(|_| fail("bad --port")),
            "--file" => {
                let (url, path) = value
                    .split_once('=')
                    .unwrap_or_else(|| fail("--file URLPATH=LOCALFILE"));
                let data = std::fs::read(path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
                files.push((url.to_string(), data));
            }
            "--pattern" => {
                let (url, spec) = value
                    .split_once('=')
                    .unwrap_or_else(|| fail("--pattern URLPATH=LEN[:SEED]"));
                let (len, seed) = spec.split_once(':').unwrap_or((spec, "1"));
                let len = len.parse().unwrap_or_else(|_| fail("bad length"));
                let seed = seed.parse().unwrap_or_else(|_| fail("bad seed"));
                files.push((url.to_string(), pattern(len, seed)));
            }
            _ => fail(&format!("unknown argument {a}")),
        }
    }
    if daemon {
        // Before the server starts any thread: fork is only safe in a single-threaded process.
        daemonize();
    }
    let server =
        TestServer::start_on(port).unwrap_or_else(|e| fail(&format!("cannot listen: {e}")));
    for (url, data) in files {
        server.add(&url, data);
    }
    println!("port={}", server.addr.port());
    let _ = std::io::stdout().flush();
    if daemon {
        // `port=` went to the pipe the parent reads (stdout is that pipe), and closing it tells
        // the parent we listen. The server's threads do the work from here; the default action
        // of SIGTERM and SIGINT ends the process. park() may return spuriously: a loop.
        // SAFETY: replaces our own stdout descriptor; nothing writes to it afterwards.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(null, 1);
            libc::close(null);
        }
        loop {
            std::thread::park();
        }
    }
    // Serve until stdin reaches EOF (the parent closed it or died).
    let stdin = std::io::stdin();
    for _ in stdin.lock().lines() {}
    drop(server);
}

/// Splits into a parent, which waits until the child reports that it listens, prints the
/// child's pid and exits, and the child, which returns to serve with stdout going to the parent
/// and stdin and stderr on /dev/null (so that `$(…)` in a shell does not wait for it).
fn daemonize() {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe fills the two-element array we pass.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        fail(&format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: the process has one thread here (see the caller), so the child may go on running
    // Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: descriptor shuffling on our own descriptors, in the child.
        unsafe {
            libc::close(read_end);
            libc::dup2(write_end, 1);
            libc::close(write_end);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
        return;
    }
    // SAFETY: the write end is the child's now; the read end becomes a File we own.
    unsafe { libc::close(write_end) };
    use std::io::Read;
    use std::os::fd::FromRawFd;
    // SAFETY: read_end is an open descriptor nothing else owns.
    let mut from_child = unsafe { std::fs::File::from_raw_fd(read_end) };
    let mut said = String::new();
    let _ = from_child.read_to_string(&mut said);
    match said.lines().find_map(|l| l.strip_prefix("port=")) {
        Some(port) => {
            eprintln!("listening on 127.0.0.1:{port}");
            println!("{pid}");
            std::process::exit(0);
        }
        // The child failed (its message went to /dev/null with its stderr; the usual cause is a
        // port in use).
        None => fail("the server did not start (is the port in use?)"),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("openbits-testserver: {msg}");
    std::process::exit(2);
}
