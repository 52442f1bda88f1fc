//! Upload-reply: notification by value and by reference, static replies, copies, errors.

mod common;
use common::*;

fn reversed(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

#[test]
fn by_value_posts_the_upload_and_serves_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|_, body, _| Some((200, vec![], reversed(body))));
    let url = format!("http://{}/app/echo", app.addr);
    let s = Server::root(
        dir.path(),
        &["--notify-type", "by-value", "--notify-url", &url],
    );
    let bytes = data(20_000, 4);
    let (reply_url, reply) = upload_reply(s.addr, "/up/doc.bin?user=7", &bytes).unwrap();
    assert!(
        reply_url.contains("/up/BITS-Sessions/Replies/%7B"),
        "{reply_url}"
    );
    assert_eq!(reply, reversed(&bytes));
    let seen = app.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "notified once");
    let (h, body) = &seen[0];
    assert_eq!(body, &bytes);
    assert_eq!(
        h.get("bits-original-request-url")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("http://{}/up/doc.bin?user=7", s.addr)
    );
    // Without BITS-Copy-File-To-Destination the upload is not stored at its name.
    assert!(!dir.path().join("root/up/doc.bin").exists());
    // The reply is gone with the session.
    let gone = request(
        s.addr,
        "GET",
        url::Url::parse(&reply_url).unwrap().path(),
        &[],
        b"",
    );
    assert_eq!(gone.status, 404);
}

#[test]
fn a_resent_last_fragment_does_not_notify_again() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|_, body, _| Some((200, vec![], reversed(body))));
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/n", app.addr),
        ],
    );
    let id = create_id(s.addr, "/r");
    let first = fragment(s.addr, "/r", &id, 0, 4, b"abcd");
    let again = fragment(s.addr, "/r", &id, 0, 4, b"abcd");
    assert!(first.h("bits-reply-url").is_some());
    assert_eq!(first.h("bits-reply-url"), again.h("bits-reply-url"));
    assert_eq!(app.seen.lock().unwrap().len(), 1);
}

#[test]
fn by_reference_passes_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|h, _, _| {
        let req = h
            .get("bits-request-datafile-name")?
            .to_str()
            .ok()?
            .to_owned();
        let resp = h
            .get("bits-response-datafile-name")?
            .to_str()
            .ok()?
            .to_owned();
        let upload = std::fs::read(req).ok()?;
        std::fs::write(resp, reversed(&upload)).ok()?;
        Some((
            200,
            vec![("BITS-Copy-File-To-Destination".into(), "1".into())],
            vec![],
        ))
    });
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-ref",
            "--notify-url",
            &format!("http://{}/app", app.addr),
        ],
    );
    let bytes = data(12_345, 2);
    let (_, reply) = upload_reply(s.addr, "/byref/in.bin", &bytes).unwrap();
    assert_eq!(reply, reversed(&bytes));
    let (h, body) = &app.seen.lock().unwrap()[0];
    assert!(body.is_empty());
    assert_eq!(h.get("content-length").unwrap(), "0");
    // BITS-Copy-File-To-Destination: the upload is stored at its name too.
    assert_eq!(
        std::fs::read(dir.path().join("root/byref/in.bin")).unwrap(),
        bytes
    );
}

#[test]
fn a_static_response_url_is_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|_, _, _| {
        Some((
            200,
            vec![(
                "BITS-Static-Response-URL".into(),
                "http://static.example/replies/42".into(),
            )],
            b"ignored".to_vec(),
        ))
    });
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/app", app.addr),
        ],
    );
    let (url, _) = upload_reply(s.addr, "/s.bin", b"hello").unwrap();
    assert_eq!(url, "http://static.example/replies/42");
}

#[test]
fn application_errors_are_classified_with_context_7() {
    let dir = tempfile::tempdir().unwrap();
    // 503 the first time (transient), then a reply.
    let app = App::start(|_, body, n| {
        Some(if n == 0 {
            (503, vec![], vec![])
        } else {
            (200, vec![], reversed(body))
        })
    });
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/app", app.addr),
        ],
    );
    let id = create_id(s.addr, "/e");
    let r = fragment(s.addr, "/e", &id, 0, 3, b"abc");
    assert_eq!(
        (
            r.status,
            r.h("bits-error-code"),
            r.h("bits-error-context"),
            r.h("bits-received-content-range")
        ),
        (503, Some("0x801901F7"), Some("0x7"), Some("3"))
    );
    // The client resends the last fragment; the application is asked again.
    let r = fragment(s.addr, "/e", &id, 0, 3, b"abc");
    assert_eq!(r.status, 200);
    assert!(r.h("bits-reply-url").is_some());
    drop(s);

    let app = App::start(|_, _, _| Some((404, vec![], vec![])));
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/app", app.addr),
        ],
    );
    let e = upload_reply(s.addr, "/e2", b"abc").unwrap_err();
    assert_eq!((e.status, e.code.0, e.context.0), (404, 0x8019_0194, 7));
    drop(s);

    // 307 is fatal for IIS; it is carried as a 4xx so the client stops too.
    let app =
        App::start(|_, _, _| Some((307, vec![("Location".into(), "http://x/".into())], vec![])));
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/app", app.addr),
        ],
    );
    let id = create_id(s.addr, "/e3");
    let r = fragment(s.addr, "/e3", &id, 0, 3, b"abc");
    assert_eq!(
        (
            r.status,
            r.h("bits-error-code"),
            r.h("bits-error-context"),
            r.h("bits-received-content-range")
        ),
        (400, Some("0x80190133"), Some("0x7"), Some("3"))
    );
}

#[test]
fn a_silent_application_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(|_, _, _| None);
    let s = Server::root(
        dir.path(),
        &[
            "--notify-type",
            "by-value",
            "--notify-url",
            &format!("http://{}/app", app.addr),
            "--notify-timeout",
            "1",
        ],
    );
    let id = create_id(s.addr, "/t");
    let r = fragment(s.addr, "/t", &id, 0, 3, b"abc");
    assert_eq!(
        (
            r.status,
            r.h("bits-error-context"),
            r.h("bits-received-content-range")
        ),
        (504, Some("0x7"), Some("3"))
    );
}
