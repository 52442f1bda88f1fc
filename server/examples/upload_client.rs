//! A small BITS upload client for benchmarks and manual tests: drives openbits-protocol's client
//! session over one keep-alive HTTP/1.1 connection, reading each fragment from the file as it
//! is sent. Usage: upload_client URL FILE [FRAGMENT_BYTES]

use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("upload_client: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(path)) = (args.get(1), args.get(2)) else {
        return Err("usage: upload_client URL FILE [FRAGMENT_BYTES]".into());
    };
    let fragment: u64 = args
        .get(3)
        .map_or(Ok(8 << 20), |f| f.parse())
        .map_err(|e| format!("fragment size: {e}"))?;
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let addr = format!(
        "{}:{}",
        u.host_str().ok_or("no host")?,
        u.port_or_known_default().ok_or("no port")?
    );
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let total = file.metadata().map_err(|e| e.to_string())?.len();
    let mut cfg = ClientConfig::new(url.clone(), total);
    cfg.fragment_len = fragment;
    let mut session = ClientSession::new(cfg);
    let mut conn = BufReader::new(TcpStream::connect(&addr).map_err(|e| format!("{addr}: {e}"))?);
    let mut buf = Vec::new();
    let start = Instant::now();
    loop {
        match session.next() {
            Next::Send(req) => {
                let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", req.method, u.path());
                for (k, v) in &req.headers {
                    head.push_str(&format!(
                        "{k}: {}\r\n",
                        v.to_str().map_err(|e| e.to_string())?
                    ));
                }
                head.push_str("\r\n");
                let s = conn.get_mut();
                s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
                if let Some(r) = req.body {
                    buf.resize(r.len() as usize, 0);
                    file.read_exact_at(&mut buf, r.first)
                        .map_err(|e| e.to_string())?;
                    s.write_all(&buf).map_err(|e| e.to_string())?;
                }
                let (status, headers) = read_head(&mut conn)?;
                match session.on_response(status, &headers) {
                    Event::Fatal(e) | Event::Retry(e) => return Err(e.to_string()),
                    _ => {}
                }
            }
            Next::DownloadReply { url } => {
                println!("reply at {url}");
                session.reply_downloaded();
            }
            Next::Done => break,
            other => return Err(format!("{other:?}")),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} bytes in {secs:.2} s: {:.0} MiB/s",
        total as f64 / secs / 1048576.0
    );
    Ok(())
}

/// Reads a response head and its (empty, for Acks) body.
fn read_head(r: &mut BufReader<TcpStream>) -> Result<(u16, http::HeaderMap), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad status line {line:?}"))?;
    let mut headers = http::HeaderMap::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).map_err(|e| e.to_string())?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                headers.append(k, v);
            }
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((status, headers))
}
