//! The endpoints that let other processes see what the server did: `/_stats` and `/_requests`.

use openbits_testserver::TestServer;
use std::io::{Read, Write};
use std::net::TcpStream;

/// One request on its own connection; returns (status line, body).
fn get(server: &TestServer, path: &str, extra_headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(server.addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn requests_lists_each_request_with_its_range_headers() {
    let server = TestServer::start();
    server.add("/f", vec![7u8; 1000]);
    let (status, body) = get(&server, "/f", "");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body.len(), 1000);
    let (status, _) = get(
        &server,
        "/f?x=1",
        "Range: bytes=600-\r\nIf-Range: \"1000-fixed\"\r\n",
    );
    assert!(status.contains(" 206 "), "{status}");
    get(&server, "/missing", "");

    let (status, listing) = get(&server, "/_requests", "");
    assert!(status.contains(" 200 "), "{status}");
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines,
        [
            "200\t/f\t-\t-",
            "206\t/f?x=1\tbytes=600-\t\"1000-fixed\"",
            "404\t/missing\t-\t-",
        ]
    );

    // /_stats is unchanged, and counts the /_requests call like any other request.
    let (_, stats) = get(&server, "/_stats", "");
    assert_eq!(stats, "bytes_sent=1400\nrequests=4\n");
    let (_, listing) = get(&server, "/_requests", "");
    assert_eq!(listing.lines().count(), 5);
    assert_eq!(listing.lines().nth(3), Some("200\t/_requests\t-\t-"));
}
