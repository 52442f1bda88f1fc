//! The application behind an upload-reply server (openbits-server's `--notify-type by-value
//! --notify-url URL`): each POST carries an upload, and the answer's body is its reply.

use std::io::{BufRead, BufReader, Read, Write};

/// Starts the application on a free port of 127.0.0.1, answering each upload with `reply` of it
/// (one connection at a time, `Connection: close`). Returns its URL; it runs until the process
/// exits.
pub fn reply_application(reply: fn(&[u8]) -> Vec<u8>) -> String {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => panic!("cannot listen on 127.0.0.1: {e}"),
    };
    let url = match listener.local_addr() {
        Ok(a) => format!("http://{a}/app"),
        Err(e) => panic!("no local address: {e}"),
    };
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let Ok(read_half) = s.try_clone() else {
                continue;
            };
            let mut r = BufReader::new(read_half);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let answer = reply(&body);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                answer.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&answer);
        }
    });
    url
}
