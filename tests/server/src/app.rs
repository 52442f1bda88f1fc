//! The application behind an upload-reply server (openbits-server's `--notify-type by-value|by-ref
//! --notify-url URL`): each POST announces an upload, and the answer makes its reply.

use std::io::{BufRead, BufReader, Read, Write};

/// A request's headers (names in lower case) and body; the answer's extra headers and body.
type Handler = Box<dyn Fn(&[(String, String)], &[u8]) -> (Vec<(String, String)>, Vec<u8>) + Send>;

/// By value: answers each upload (the POST's body) with `reply` of it. Returns its URL.
pub fn reply_application(reply: fn(&[u8]) -> Vec<u8>) -> String {
    serve(Box::new(move |_, body| (Vec::new(), reply(body))))
}

/// By reference: reads the upload from the file `BITS-Request-DataFile-Name` names, writes `reply`
/// of it to the file `BITS-Response-DataFile-Name` names, and asks for the upload to be stored at
/// its URL too (`BITS-Copy-File-To-Destination`). Returns its URL.
pub fn by_reference_application(reply: fn(&[u8]) -> Vec<u8>) -> String {
    serve(Box::new(move |headers, _| {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let upload = std::fs::read(get("bits-request-datafile-name")).unwrap_or_default();
        let _ = std::fs::write(get("bits-response-datafile-name"), reply(&upload));
        let copy = ("BITS-Copy-File-To-Destination".to_string(), "1".to_string());
        (vec![copy], Vec::new())
    }))
}

/// Starts the application on a free port of 127.0.0.1 (one connection at a time, `Connection:
/// close`); it runs until the process exits.
fn serve(handler: Handler) -> String {
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
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0usize);
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let (extra, answer) = handler(&headers, &body);
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n",
                answer.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&answer);
        }
    });
    url
}
