//! A client session against a server session, in memory: every packet, every error.

use http::{HeaderMap, HeaderName, HeaderValue};
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next, Request, MIN_FRAGMENT};
use openbits_protocol::memory::MemoryServer;
use openbits_protocol::server::{HostId, Reply};
use openbits_protocol::{ErrorContext, Hresult, PacketType, PROTOCOL_GUID};
use std::sync::atomic::{AtomicU32, Ordering};

const URL: &str = "http://server.example/up/dir/file.bin";
const PATH: &str = "/up/dir/file.bin";

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn config(total: usize, fragment: u64) -> ClientConfig {
    let mut c = ClientConfig::new(URL, total as u64);
    c.fragment_len = fragment;
    c.content_name = Some("file.bin".into());
    c
}

/// Runs the client until it stops; `fault` may change the server (or swallow the answer,
/// returning false, to simulate a lost response) before each request is handled.
fn drive(
    client: &mut ClientSession,
    server: &mut MemoryServer,
    bytes: &[u8],
    mut fault: impl FnMut(usize, &Request, &mut MemoryServer) -> Fault,
) -> (Vec<Event>, Next) {
    let mut events = Vec::new();
    for step in 0..10_000 {
        match client.next() {
            Next::Send(req) => {
                let body = req
                    .body
                    .map_or(&[][..], |r| &bytes[r.first as usize..=r.last as usize]);
                let fault = fault(step, &req, server);
                let ev = match fault {
                    Fault::Reply(r) => client.on_response(r.status, &r.headers),
                    Fault::LoseAnswer => {
                        server.handle(req.method, PATH, &req.headers, body);
                        client.on_transport_error("connection reset")
                    }
                    Fault::None => {
                        let r = server.handle(req.method, PATH, &req.headers, body);
                        client.on_response(r.status, &r.headers)
                    }
                };
                events.push(ev);
            }
            Next::DownloadReply { url } => {
                let path = url
                    .split_once("/up/dir/")
                    .map(|(_, p)| p.replace("%7B", "{").replace("%7D", "}"))
                    .expect("reply under the upload folder");
                assert!(server.replies.contains_key(&path), "reply {path} exists");
                client.reply_downloaded();
            }
            end => return (events, end),
        }
        assert!(step < 9_999, "client never finished: {events:?}");
    }
    unreachable!()
}

enum Fault {
    None,
    /// Answer with this instead of the server.
    Reply(Reply),
    /// The server handles the request but the answer never arrives.
    LoseAnswer,
}

/// A fault that happens once, at the first request matching `when`.
fn once(
    when: impl Fn(&Request) -> bool,
    then: impl Fn(&mut MemoryServer) -> Fault,
) -> impl FnMut(usize, &Request, &mut MemoryServer) -> Fault {
    let mut done = false;
    move |_, req, server| {
        if done || !when(req) {
            return Fault::None;
        }
        done = true;
        then(server)
    }
}

fn none(_: usize, _: &Request, _: &mut MemoryServer) -> Fault {
    Fault::None
}

fn packets(server: &MemoryServer) -> Vec<PacketType> {
    server.log.clone()
}

#[test]
fn a_file_is_uploaded_in_fragments_and_closed() {
    let bytes = data(50_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let (events, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(end, Next::Done);
    assert_eq!(server.files.get(PATH), Some(&bytes));
    assert!(server.sessions.is_empty(), "close frees the session");
    let p = packets(&server);
    assert_eq!(p.first(), Some(&PacketType::CreateSession));
    assert_eq!(p.last(), Some(&PacketType::CloseSession));
    assert_eq!(
        p.iter().filter(|p| **p == PacketType::Fragment).count(),
        50_000usize.div_ceil(MIN_FRAGMENT as usize)
    );
    assert!(events.contains(&Event::Progress { received: 50_000 }));
    assert_eq!(events.last(), Some(&Event::Complete));
}

#[test]
fn requests_carry_the_windows_headers() {
    let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
    let Next::Send(create) = client.next() else {
        panic!()
    };
    assert_eq!(create.method, "BITS_POST");
    let h = |r: &Request, n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        h(&create, "BITS-Packet-Type").as_deref(),
        Some("Create-Session")
    );
    assert_eq!(
        h(&create, "BITS-Supported-Protocols").as_deref(),
        Some(PROTOCOL_GUID)
    );
    assert_eq!(h(&create, "Content-Length").as_deref(), Some("0"));
    let mut server = MemoryServer::new();
    let ack = server.handle("BITS_POST", PATH, &create.headers, &[]);
    assert_eq!(ack.header("bits-protocol"), Some(PROTOCOL_GUID));
    assert_eq!(ack.header("accept-encoding"), Some("identity"));
    assert_eq!(ack.header("bits-packet-type"), Some("Ack"));
    assert!(matches!(
        client.on_response(ack.status, &ack.headers),
        Event::SessionCreated { .. }
    ));
    let Next::Send(frag) = client.next() else {
        panic!()
    };
    assert_eq!(
        h(&frag, "Content-Range").as_deref(),
        Some("bytes 0-5119/10000")
    );
    assert_eq!(h(&frag, "Content-Length").as_deref(), Some("5120"));
    assert_eq!(h(&frag, "Content-Name").as_deref(), Some("file.bin"));
    assert_eq!(h(&frag, "BITS-Session-Id").as_deref(), client.session_id());
}

#[test]
fn ping_resumes_a_stored_session_and_overlap_is_written_once() {
    let bytes = data(30_000);
    let mut server = MemoryServer::new();
    let mut first = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    // Stop after two fragments are acknowledged.
    let mut acked = 0;
    loop {
        let Next::Send(req) = first.next() else {
            panic!()
        };
        let body = req
            .body
            .map_or(&[][..], |r| &bytes[r.first as usize..=r.last as usize]);
        let reply = server.handle(req.method, PATH, &req.headers, body);
        if let Event::Progress { .. } = first.on_response(reply.status, &reply.headers) {
            acked += 1;
            if acked == 2 {
                break;
            }
        }
    }
    let id = first.session_id().unwrap().to_owned();
    // The client stored an older offset than the server has: the resent bytes overlap.
    let mut client = ClientSession::resume(config(bytes.len(), 7_000), id, 3_000, None);
    let (_, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(end, Next::Done);
    assert_eq!(
        server.files.get(PATH),
        Some(&bytes),
        "overlapping bytes are not written twice"
    );
    let p = packets(&server);
    let resumed = &p[3..];
    assert_eq!(resumed.first(), Some(&PacketType::Ping));
    assert_eq!(resumed[1], PacketType::Fragment);
}

#[test]
fn a_gap_is_416_and_the_client_goes_back() {
    let bytes = data(40_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    // The server loses everything past 3,000 bytes once (a restore from backup).
    let fault = once(
        |req| req.body.is_some_and(|r| r.first >= 20_000),
        |server| {
            for s in server.sessions.values_mut() {
                s.data.truncate(3_000);
            }
            Fault::None
        },
    );
    let (events, end) = drive(&mut client, &mut server, &bytes, fault);
    assert_eq!(end, Next::Done);
    assert!(
        events.contains(&Event::Resync { received: 3_000 }),
        "{events:?}"
    );
    assert_eq!(server.files.get(PATH), Some(&bytes));
}

#[test]
fn a_lost_session_is_recreated_and_restarts_from_zero() {
    let bytes = data(25_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let fault = once(
        |req| req.body.is_some_and(|r| r.first >= 10_000),
        |server| {
            server.sessions.clear();
            Fault::None
        },
    );
    let (events, end) = drive(&mut client, &mut server, &bytes, fault);
    assert_eq!(end, Next::Done);
    let i = events
        .iter()
        .position(|e| *e == Event::NewSession)
        .expect("new session");
    assert!(matches!(events[i + 1], Event::SessionCreated { .. }));
    assert_eq!(events[i + 2], Event::Resync { received: 0 });
    assert_eq!(server.files.get(PATH), Some(&bytes));
}

#[test]
fn the_spec_error_header_name_is_understood() {
    let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
    let mut server = MemoryServer::new();
    let (events, end) = drive(&mut client, &mut server, &data(10_000), |step, _, _| {
        if step == 1 {
            let mut r = Reply::ack(500);
            r.headers
                .insert("bits-error", HeaderValue::from_static("x8020001f"));
            r.headers
                .insert("bits-error-context", HeaderValue::from_static("0x5"));
            return Fault::Reply(r);
        }
        Fault::None
    });
    assert_eq!(end, Next::Done);
    assert_eq!(events[1], Event::NewSession);
}

#[test]
fn a_changed_total_is_400() {
    let bytes = data(20_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let Next::Send(c) = client.next() else {
        panic!()
    };
    let r = server.handle("BITS_POST", PATH, &c.headers, &[]);
    client.on_response(r.status, &r.headers);
    let Next::Send(f) = client.next() else {
        panic!()
    };
    let body = &bytes[..MIN_FRAGMENT as usize];
    let r = server.handle("BITS_POST", PATH, &f.headers, body);
    assert_eq!(r.status, 200);
    let mut other = ClientSession::resume(
        config(30_000, MIN_FRAGMENT),
        client.session_id().unwrap().into(),
        MIN_FRAGMENT,
        None,
    );
    let (events, end) = drive(&mut other, &mut server, &data(30_000), none);
    let Next::Failed(e) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        (e.status, e.code, e.context),
        (400, Hresult::E_INVALIDARG, ErrorContext::REMOTE_FILE)
    );
    assert!(matches!(events.last(), Some(Event::Fatal(_))));
}

#[test]
fn over_the_maximum_is_413_then_too_large() {
    let bytes = data(100_000);
    let mut server = MemoryServer::new();
    server.max_size = Some(99_999);
    let mut client = ClientSession::new(config(bytes.len(), 4 * MIN_FRAGMENT));
    let (events, end) = drive(&mut client, &mut server, &bytes, none);
    assert!(events.contains(&Event::ShrinkFragment {
        len: 2 * MIN_FRAGMENT
    }));
    assert!(events.contains(&Event::ShrinkFragment { len: MIN_FRAGMENT }));
    let Next::Failed(e) = end else {
        panic!("{end:?}")
    };
    assert_eq!((e.status, e.code), (413, Hresult::BG_E_TOO_LARGE));
    assert!(server.files.is_empty());
}

#[test]
fn overwrites_are_refused_unless_allowed() {
    let bytes = data(6_000);
    let mut server = MemoryServer::new();
    let (_, end) = drive(
        &mut ClientSession::new(config(bytes.len(), MIN_FRAGMENT)),
        &mut server,
        &bytes,
        none,
    );
    assert_eq!(end, Next::Done);
    let (_, end) = drive(
        &mut ClientSession::new(config(bytes.len(), MIN_FRAGMENT)),
        &mut server,
        &bytes,
        none,
    );
    let Next::Failed(e) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        (e.status, e.code, e.packet),
        (409, Hresult::E_ACCESSDENIED, PacketType::CreateSession)
    );
    server.allow_overwrites = true;
    let other = data(7_000);
    let (_, end) = drive(
        &mut ClientSession::new(config(other.len(), MIN_FRAGMENT)),
        &mut server,
        &other,
        none,
    );
    assert_eq!(end, Next::Done);
    assert_eq!(server.files.get(PATH), Some(&other));
}

#[test]
fn no_common_protocol_is_400_context_5() {
    let mut server = MemoryServer::new();
    let mut h = HeaderMap::new();
    h.insert(
        "bits-packet-type",
        HeaderValue::from_static("create-session"),
    );
    h.insert(
        "bits-supported-protocols",
        HeaderValue::from_static("{00000000-0000-0000-0000-000000000001}"),
    );
    h.insert("content-length", HeaderValue::from_static("0"));
    let r = server.handle("BITS_POST", PATH, &h, &[]);
    assert_eq!(
        (
            r.status,
            r.header("bits-error-code"),
            r.header("bits-error-context")
        ),
        (400, Some("0x80070057"), Some("0x5"))
    );
    h.insert(
        "bits-supported-protocols",
        HeaderValue::from_static(
            "{00000000-0000-0000-0000-000000000001},{7DF0354D-249B-430F-820D-3D2A9BEF4931}",
        ),
    );
    let r = server.handle(
        "POST",
        PATH,
        &{
            let mut h = h.clone();
            h.insert(
                HeaderName::from_static("x-http-method-override"),
                HeaderValue::from_static("BITS_POST"),
            );
            h
        },
        &[],
    );
    assert_eq!(
        (r.status, r.header("bits-protocol")),
        (200, Some(PROTOCOL_GUID))
    );
}

#[test]
fn a_zero_byte_file_is_created_and_closed() {
    let mut server = MemoryServer::new();
    let (events, end) = drive(
        &mut ClientSession::new(config(0, MIN_FRAGMENT)),
        &mut server,
        &[],
        none,
    );
    assert_eq!(end, Next::Done, "{events:?}");
    assert_eq!(server.files.get(PATH), Some(&Vec::new()));
    assert_eq!(
        packets(&server),
        [PacketType::CreateSession, PacketType::CloseSession]
    );
}

fn echo_app(upload: &[u8]) -> Result<Vec<u8>, u16> {
    Ok(format!("got {} bytes", upload.len()).into_bytes())
}

#[test]
fn upload_reply_gives_a_reply_url_before_close() {
    let bytes = data(12_000);
    let mut server = MemoryServer::new();
    server.application = Some(echo_app);
    let mut cfg = config(bytes.len(), MIN_FRAGMENT);
    cfg.upload_reply = true;
    let mut client = ClientSession::new(cfg);
    let (events, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(end, Next::Done);
    let url = events
        .iter()
        .find_map(|e| {
            if let Event::ReplyReady { url } = e {
                Some(url.clone())
            } else {
                None
            }
        })
        .expect("reply");
    assert!(
        url.starts_with("http://server.example/up/dir/BITS-Sessions/Replies/%7B"),
        "{url}"
    );
    assert_eq!(client.reply_url(), Some(url.as_str()));
    // By default the upload itself is not placed in upload-reply mode.
    assert!(server.files.is_empty());
}

#[test]
fn a_lost_final_ack_in_upload_reply_is_answered_from_the_cache() {
    let bytes = data(12_000);
    let mut server = MemoryServer::new();
    server.application = Some(echo_app);
    let mut cfg = config(bytes.len(), MIN_FRAGMENT);
    cfg.upload_reply = true;
    let mut client = ClientSession::new(cfg);
    let fault = once(
        |req| req.body.is_some_and(|r| r.end() == 12_000),
        |_| Fault::LoseAnswer,
    );
    let (events, end) = drive(&mut client, &mut server, &bytes, fault);
    assert_eq!(end, Next::Done, "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::ReplyReady { .. })));
    assert_eq!(
        server.replies.len(),
        1,
        "the application is not notified twice"
    );
}

static FAILS: AtomicU32 = AtomicU32::new(0);
fn flaky_app(upload: &[u8]) -> Result<Vec<u8>, u16> {
    if FAILS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err(503)
    } else {
        echo_app(upload)
    }
}
fn refusing_app(_: &[u8]) -> Result<Vec<u8>, u16> {
    Err(404)
}

#[test]
fn application_errors_have_context_7_and_are_classified() {
    let bytes = data(6_000);
    let mut cfg = config(bytes.len(), MIN_FRAGMENT);
    cfg.upload_reply = true;
    let mut server = MemoryServer::new();
    server.application = Some(flaky_app);
    let (events, end) = drive(
        &mut ClientSession::new(cfg.clone()),
        &mut server,
        &bytes,
        none,
    );
    assert_eq!(end, Next::Done);
    let retry = events
        .iter()
        .find_map(|e| {
            if let Event::Retry(e) = e {
                Some(e.clone())
            } else {
                None
            }
        })
        .expect("retry");
    assert_eq!(
        (retry.status, retry.context),
        (503, ErrorContext::REMOTE_APPLICATION)
    );

    let mut server = MemoryServer::new();
    server.application = Some(refusing_app);
    let (_, end) = drive(&mut ClientSession::new(cfg), &mut server, &bytes, none);
    let Next::Failed(e) = end else {
        panic!("{end:?}")
    };
    assert_eq!(
        (e.status, e.code, e.context),
        (404, Hresult(0x8019_0194), ErrorContext::REMOTE_APPLICATION)
    );
}

#[test]
fn upload_reply_without_a_reply_url_is_an_invalid_response() {
    let bytes = data(6_000);
    let mut cfg = config(bytes.len(), MIN_FRAGMENT);
    cfg.upload_reply = true;
    let mut server = MemoryServer::new();
    let (_, end) = drive(&mut ClientSession::new(cfg), &mut server, &bytes, none);
    let Next::Failed(e) = end else {
        panic!("{end:?}")
    };
    assert_eq!(e.code, Hresult::BG_E_INVALID_SERVER_RESPONSE);
}

#[test]
fn cancel_frees_the_session() {
    let bytes = data(30_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    for _ in 0..3 {
        let Next::Send(req) = client.next() else {
            panic!()
        };
        let body = req
            .body
            .map_or(&[][..], |r| &bytes[r.first as usize..=r.last as usize]);
        let r = server.handle(req.method, PATH, &req.headers, body);
        client.on_response(r.status, &r.headers);
    }
    assert_eq!(server.sessions.len(), 1);
    client.cancel();
    let (events, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(
        (events.as_slice(), end),
        (&[Event::Cancelled][..], Next::Cancelled)
    );
    assert!(server.sessions.is_empty() && server.files.is_empty());
    assert_eq!(packets(&server).last(), Some(&PacketType::CancelSession));

    // Cancelling a session the server no longer has is still a cancel.
    let mut client = ClientSession::resume(config(10, MIN_FRAGMENT), "{gone}".into(), 0, None);
    client.cancel();
    let (_, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(end, Next::Cancelled);
    // Without a session there is nothing to send.
    let mut client = ClientSession::new(config(10, MIN_FRAGMENT));
    client.cancel();
    assert_eq!(client.next(), Next::Cancelled);
}

#[test]
fn host_id_redirects_later_packets_and_falls_back() {
    let bytes = data(12_000);
    let mut server = MemoryServer::new();
    server.host_id = Some(HostId {
        name: "node7".into(),
        fallback_timeout: Some(110),
    });
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let Next::Send(c) = client.next() else {
        panic!()
    };
    assert_eq!(c.host, None);
    let r = server.handle("BITS_POST", PATH, &c.headers, &[]);
    client.on_response(r.status, &r.headers);
    assert_eq!(
        (client.host_id(), client.host_id_fallback_timeout()),
        (Some("node7"), Some(110))
    );
    let Next::Send(ping) = client.next() else {
        panic!()
    };
    assert_eq!(
        (ping.packet, ping.host.as_deref()),
        (PacketType::Ping, Some("node7"))
    );
    assert_eq!(client.target_url(), "http://node7/up/dir/file.bin");
    client.fall_back_to_origin();
    assert_eq!(client.target_url(), URL);
    let Next::Send(again) = client.next() else {
        panic!()
    };
    assert_eq!(
        (again.packet, again.host),
        (PacketType::CreateSession, None)
    );
    server.host_id = None;
    let r = server.handle("BITS_POST", PATH, &again.headers, &[]);
    client.on_response(r.status, &r.headers);
    let (_, end) = drive(&mut client, &mut server, &bytes, none);
    assert_eq!(end, Next::Done);
    assert_eq!(server.files.get(PATH), Some(&bytes));
}

#[test]
fn authentication_is_answered_once() {
    let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
    let Next::Send(c1) = client.next() else {
        panic!()
    };
    assert_eq!(
        client.on_response(401, &HeaderMap::new()),
        Event::Authenticate { proxy: false }
    );
    let Next::Send(c2) = client.next() else {
        panic!()
    };
    assert_eq!(c1, c2, "the same request is resent");
    let Event::Fatal(e) = client.on_response(401, &HeaderMap::new()) else {
        panic!()
    };
    assert_eq!((e.status, e.code), (401, Hresult(0x8019_0191)));
    let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
    client.next();
    assert_eq!(
        client.on_response(407, &HeaderMap::new()),
        Event::Authenticate { proxy: true }
    );
}

#[test]
fn a_lost_close_ack_is_not_an_error() {
    let bytes = data(6_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let fault = once(
        |req| req.packet == PacketType::CloseSession,
        |_| Fault::LoseAnswer,
    );
    let (events, end) = drive(&mut client, &mut server, &bytes, fault);
    assert_eq!(end, Next::Done, "{events:?}");
    assert_eq!(server.files.get(PATH), Some(&bytes));
}

#[test]
fn a_broken_connection_mid_fragment_resumes_with_ping() {
    let bytes = data(20_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let fault = once(
        |req| req.body.is_some_and(|r| r.first > 0),
        |_| Fault::LoseAnswer,
    );
    let (_, end) = drive(&mut client, &mut server, &bytes, fault);
    assert_eq!(end, Next::Done);
    let p = packets(&server);
    let i = p
        .iter()
        .position(|p| *p == PacketType::Ping)
        .expect("ping after the failure");
    assert_eq!(p[i - 1], PacketType::Fragment);
    assert_eq!(server.files.get(PATH), Some(&bytes));
}

#[test]
fn server_errors_are_transient_or_fatal() {
    let cases: [(u16, Option<&str>, bool); 9] = [
        (500, None, true),
        (503, None, true),
        (500, Some("0x80070112"), true),
        (500, Some("0x80200020"), false),
        (501, Some("0x80070005"), false),
        (403, Some("0x80070005"), false),
        (404, None, false),
        (400, Some("0x80070057"), false),
        (408, None, true),
    ];
    for (status, code, transient) in cases {
        let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
        client.next();
        let mut h = HeaderMap::new();
        if let Some(c) = code {
            h.insert("bits-error-code", HeaderValue::from_str(c).unwrap());
            h.insert("bits-error-context", HeaderValue::from_static("0x5"));
        }
        let ev = client.on_response(status, &h);
        assert_eq!(
            matches!(ev, Event::Retry(_)),
            transient,
            "{status} {code:?}: {ev:?}"
        );
        assert_eq!(
            matches!(ev, Event::Fatal(_)),
            !transient,
            "{status} {code:?}: {ev:?}"
        );
    }
}

#[test]
fn invalid_acks_are_reported() {
    let mut client = ClientSession::new(config(10_000, MIN_FRAGMENT));
    client.next();
    let Event::Fatal(e) = client.on_response(200, &HeaderMap::new()) else {
        panic!()
    };
    assert_eq!(
        e.code,
        Hresult::BG_E_INVALID_SERVER_RESPONSE,
        "no session id"
    );

    let mut client = ClientSession::resume(config(10_000, MIN_FRAGMENT), "{s}".into(), 0, None);
    client.next();
    client.on_response(200, &HeaderMap::new());
    let Next::Send(f) = client.next() else {
        panic!()
    };
    assert_eq!(f.packet, PacketType::Fragment);
    let Event::Fatal(e) = client.on_response(200, &HeaderMap::new()) else {
        panic!()
    };
    assert_eq!(
        e.code,
        Hresult::BG_E_INVALID_SERVER_RESPONSE,
        "no received range"
    );

    let mut client = ClientSession::resume(config(10_000, MIN_FRAGMENT), "{s}".into(), 0, None);
    client.next();
    client.on_response(200, &HeaderMap::new());
    client.next();
    let mut h = HeaderMap::new();
    h.insert(
        "bits-received-content-range",
        HeaderValue::from_static("10001"),
    );
    assert!(
        matches!(client.on_response(200, &h), Event::Fatal(_)),
        "offset past the end"
    );
}

#[test]
fn a_server_stuck_in_416_is_given_up() {
    let mut client = ClientSession::resume(config(10_000, MIN_FRAGMENT), "{s}".into(), 0, None);
    client.next();
    client.on_response(200, &HeaderMap::new());
    let mut h = HeaderMap::new();
    h.insert("bits-received-content-range", HeaderValue::from_static("0"));
    let mut last = Event::Continue;
    for _ in 0..5 {
        if client.is_finished() {
            break;
        }
        client.next();
        last = client.on_response(416, &h);
    }
    assert!(matches!(last, Event::Fatal(_)), "{last:?}");
}

#[test]
fn error_headers_on_success_are_ignored() {
    let bytes = data(6_000);
    let mut server = MemoryServer::new();
    let mut client = ClientSession::new(config(bytes.len(), MIN_FRAGMENT));
    let Next::Send(c) = client.next() else {
        panic!()
    };
    let mut r = server.handle("BITS_POST", PATH, &c.headers, &[]);
    r.headers
        .insert("bits-error-code", HeaderValue::from_static("0x8020001F"));
    assert!(matches!(
        client.on_response(r.status, &r.headers),
        Event::SessionCreated { .. }
    ));
}
