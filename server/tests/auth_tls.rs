//! Basic authentication (htpasswd -B) and HTTPS.

mod common;
use common::*;
use std::process::Command;

fn basic(user: &str, pass: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = format!("{user}:{pass}").into_bytes();
    let mut s = String::from("Basic ");
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            s.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

fn check_auth(s: &Server, user: &str, pass: &str) {
    let anon = bits(s.addr, "/a.bin", "Ping", &[], b"");
    assert_eq!(anon.status, 401);
    assert!(
        anon.h("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "{anon:?}"
    );
    let wrong = basic(user, "not-the-password");
    assert_eq!(
        bits(s.addr, "/a.bin", "Ping", &[("Authorization", &wrong)], b"").status,
        401
    );
    let good = basic(user, pass);
    let r = bits(
        s.addr,
        "/a.bin",
        "Create-Session",
        &[("Authorization", &good), ("BITS-Supported-Protocols", GUID)],
        b"",
    );
    assert_eq!(r.status, 200);
    let id = r.h("bits-session-id").unwrap().to_owned();
    let f = bits(
        s.addr,
        "/a.bin",
        "Fragment",
        &[
            ("Authorization", &good),
            ("BITS-Session-Id", &id),
            ("Content-Range", "bytes 0-2/3"),
        ],
        b"abc",
    );
    assert_eq!(f.status, 200);
    // Downloads and replies are behind the same door.
    assert_eq!(request(s.addr, "GET", "/a.bin", &[], b"").status, 401);
}

#[test]
fn basic_auth_with_bcrypt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("correct horse", 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let other = bcrypt::hash("battery staple", 5).unwrap();
    std::fs::write(&file, format!("alice:{hash}\nmallory:{other}\n")).unwrap();
    let s = Server::root(dir.path(), &["--htpasswd", file.to_str().unwrap()]);
    check_auth(&s, "alice", "correct horse");
    assert!(s.log_text().contains(" alice "), "the user is logged");
    // One user's session does not exist for another.
    let (alice, mallory) = (
        basic("alice", "correct horse"),
        basic("mallory", "battery staple"),
    );
    let r = bits(
        s.addr,
        "/m.bin",
        "Create-Session",
        &[
            ("Authorization", &alice),
            ("BITS-Supported-Protocols", GUID),
        ],
        b"",
    );
    let id = r.h("bits-session-id").unwrap().to_owned();
    let r = bits(
        s.addr,
        "/m.bin",
        "Fragment",
        &[
            ("Authorization", &mallory),
            ("BITS-Session-Id", &id),
            ("Content-Range", "bytes 0-2/3"),
        ],
        b"bad",
    );
    assert_eq!(
        (r.status, r.h("bits-error-code")),
        (500, Some("0x8020001F"))
    );
    let r = bits(
        s.addr,
        "/m.bin",
        "Cancel-Session",
        &[("Authorization", &mallory), ("BITS-Session-Id", &id)],
        b"",
    );
    assert_eq!(r.status, 500);
    let r = bits(
        s.addr,
        "/m.bin",
        "Fragment",
        &[
            ("Authorization", &alice),
            ("BITS-Session-Id", &id),
            ("Content-Range", "bytes 0-2/3"),
        ],
        b"abc",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_file_written_by_apache_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let made = Command::new("htpasswd")
        .args(["-B", "-b", "-c", file.to_str().unwrap(), "bob", "s3cret!"])
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "htpasswd (apache2-utils) is required in CI"
            );
            eprintln!("\n!!!!!!!! SKIPPING: htpasswd not installed (apt-get install apache2-utils) !!!!!!!!\n");
            return;
        }
    }
    let s = Server::root(dir.path(), &["--htpasswd", file.to_str().unwrap()]);
    check_auth(&s, "bob", "s3cret!");
}

#[test]
fn https_with_a_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ])
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let root = dir.path().join("root");
    let s = Server::start(
        &[
            "--root",
            root.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
        dir.path().join("log"),
    );
    let base = format!("https://{}/tls/f.txt", s.addr);
    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--cacert",
                cert.to_str().unwrap(),
                "-X",
                "BITS_POST",
            ])
            .args(args)
            .arg(&base)
            .output()
            .expect("curl");
        assert!(
            o.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).replace('\r', "")
    };
    let created = curl(&[
        "-H",
        "BITS-Packet-Type: Create-Session",
        "-H",
        &format!("BITS-Supported-Protocols: {GUID}"),
        "-H",
        "Content-Length: 0",
    ]);
    assert!(created.starts_with("HTTP/1.1 200"), "{created}");
    let id = created
        .lines()
        .find_map(|l| l.strip_prefix("bits-session-id: "))
        .expect("session id")
        .to_owned();
    let frag = curl(&[
        "-H",
        "BITS-Packet-Type: Fragment",
        "-H",
        &format!("BITS-Session-Id: {id}"),
        "-H",
        "Content-Range: bytes 0-4/5",
        "--data-binary",
        "hello",
    ]);
    assert!(frag.contains("bits-received-content-range: 5"), "{frag}");
    curl(&[
        "-H",
        "BITS-Packet-Type: Close-Session",
        "-H",
        &format!("BITS-Session-Id: {id}"),
        "-H",
        "Content-Length: 0",
    ]);
    assert_eq!(std::fs::read(root.join("tls/f.txt")).unwrap(), b"hello");
    // The original request URL seen by an application would be https.
    assert!(s.log_text().contains("Close-Session"));
}
