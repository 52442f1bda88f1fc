//! A hostile server for the tests: raw bytes on a TCP socket, for answers hyper would never
//! send (a header block that never ends, a body longer than its Content-Length, a chunked body
//! that never ends). Each connection gets `head`, then `repeat` again and again (`times` times,
//! or until the client goes away), then the connection is held open or closed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a raw server sends to every connection.
#[derive(Clone)]
pub struct Raw {
    pub head: Vec<u8>,
    pub repeat: Vec<u8>,
    /// None: forever (until the client closes the connection).
    pub times: Option<u64>,
    /// A pause after each `repeat` (a slow server).
    pub every: Duration,
    /// After the last `repeat`: keep the connection open (true) or close it.
    pub hang: bool,
}

/// A running raw server: its address, and the bytes it has written in all.
pub struct RawServer {
    pub addr: SocketAddr,
    pub written: Arc<AtomicU64>,
}

impl RawServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Starts a raw server on a free port of 127.0.0.1; it runs until the process exits. A thread
/// per connection: tests open at most a few hundred.
pub fn serve_raw(raw: Raw) -> RawServer {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("cannot listen on 127.0.0.1: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("no local address: {e}"),
    };
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let raw = raw.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                // Read the request head first, as a server would.
                let Ok(read_half) = s.try_clone() else { return };
                let mut r = BufReader::new(read_half);
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" || line == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let mut send = |b: &[u8]| {
                    let ok = s.write_all(b).is_ok();
                    if ok {
                        counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    ok
                };
                if !send(&raw.head) {
                    return;
                }
                let mut n = 0;
                while raw.times.is_none_or(|t| n < t) {
                    if !send(&raw.repeat) {
                        return;
                    }
                    n += 1;
                    if !raw.every.is_zero() {
                        std::thread::sleep(raw.every);
                    }
                }
                if raw.hang {
                    // Until the client gives up.
                    let mut sink = String::new();
                    while r.read_line(&mut sink).is_ok_and(|n| n > 0) {}
                }
            });
        }
    });
    RawServer { addr, written }
}
