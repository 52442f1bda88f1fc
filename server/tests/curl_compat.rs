//! Runs `curl_compat.sh` (curl speaking the BITS upload protocol by hand) from `cargo test`, so
//! the compatibility check is part of `cargo test --workspace`, not only of `scripts/test.sh`.
//! Directly always; through nginx when nginx is installed (mandatory when `CI` is set).

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/curl_compat.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .arg(env!("CARGO_BIN_EXE_openbits-server"))
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "curl_compat.sh {args:?} failed:\n{text}"
    );
    assert!(text.contains("curl_compat: ok"), "{text}");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn curl_speaks_the_protocol_by_hand() {
    if !have("curl") {
        assert!(std::env::var_os("CI").is_none(), "curl is missing");
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    run(&[]);
}

#[test]
fn curl_through_nginx() {
    if !have("curl") || !have("nginx") {
        assert!(std::env::var_os("CI").is_none(), "curl or nginx is missing");
        eprintln!("SKIPPED: curl or nginx is not installed");
        return;
    }
    run(&["--via-nginx"]);
}
