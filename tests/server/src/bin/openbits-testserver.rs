//! `openbits-testserver [--port P] [--file URLPATH=LOCALFILE]... [--pattern URLPATH=LEN[:SEED]]...`
//!
//! Serves files from memory on 127.0.0.1 (see the library docs for the fault-injecting query
//! strings). Prints `port=<P>` on its first line once it listens, then serves until stdin closes
//! or it is killed. `GET /_stats` returns `bytes_sent=<n>` and `requests=<n>`; `GET /_requests`
//! lists the requests received so far, one a line: `<status>\t<path-and-query>\t<Range>\t<If-Range>`
//! (`-` for an absent header).

use openbits_testserver::{pattern, TestServer};
use std::io::{BufRead, Write};

fn main() {
    let mut port = 0u16;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
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
    let server =
        TestServer::start_on(port).unwrap_or_else(|e| fail(&format!("cannot listen: {e}")));
    for (url, data) in files {
        server.add(&url, data);
    }
    println!("port={}", server.addr.port());
    let _ = std::io::stdout().flush();
    // Serve until stdin reaches EOF (the parent closed it or died).
    let stdin = std::io::stdin();
    for _ in stdin.lock().lines() {}
    drop(server);
}

fn fail(msg: &str) -> ! {
    eprintln!("openbits-testserver: {msg}");
    std::process::exit(2);
}
