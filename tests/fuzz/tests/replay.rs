//! Replays every fuzz target over its committed corpus (`fuzz/corpus/TARGET/*`): the seeds and
//! every input fuzzing found a bug with. A panic on any thread fails the input's target.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Counts panics on every thread (a manager's or a runtime's too), then reports them as usual.
fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            report(info);
        }));
    });
}

fn replay(name: &str) {
    // One target at a time, so that a panic on another thread is charged to the right one.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    count_panics();
    let (_, target) = openbits_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    let dir = root().join("corpus").join(name);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} is empty", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).expect("a corpus file");
        let before = PANICS.load(Ordering::SeqCst);
        let result = std::panic::catch_unwind(|| target(&data));
        assert!(
            result.is_ok() && PANICS.load(Ordering::SeqCst) == before,
            "{name} panicked on {}",
            input.display()
        );
    }
}

#[test]
fn http_decision() {
    replay("http_decision");
}

#[test]
fn header_values() {
    replay("header_values");
}

#[test]
fn urls_and_headers() {
    replay("urls_and_headers");
}

#[test]
fn upload_protocol() {
    replay("upload_protocol");
}

#[test]
fn upload_server() {
    replay("upload_server");
}

#[test]
fn state_db() {
    replay("state_db");
}

/// Every target has a cargo-fuzz entry and a corpus, and nothing else is there.
#[test]
fn targets_and_fuzz_entries_agree() {
    let names = |dir: &str, ext: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root().join(dir))
            .expect("the fuzz folder")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter_map(|n| n.strip_suffix(ext).map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    let mut targets: Vec<String> = openbits_fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    targets.sort();
    assert_eq!(names("fuzz_targets", ".rs"), targets);
    assert_eq!(names("corpus", ""), targets);
}
