//! The network watcher's thread ends with its manager (alone in this binary: it counts threads).

mod common;
use openbits_core::{Config, Manager};

/// Threads of this process named `name` (the kernel keeps 15 bytes of a thread's name).
fn threads_named(name: &str) -> usize {
    let name = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn a_closed_manager_leaves_no_network_watcher_behind() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let m = Manager::open(Some(&dir.path().join(format!("s{i}"))), Config::default()).unwrap();
        // The thread names itself once it runs.
        common::wait_until("the watcher runs", || {
            threads_named("openbits-network") == 1
        });
        drop(m);
        // Drop joins the watcher's thread; the kernel removes its /proc entry a moment after the
        // join returns. Gone within 100 ms, not up to a second later as a polling thread would be.
        let closed = std::time::Instant::now();
        while threads_named("openbits-network") != 0 {
            assert!(
                closed.elapsed() < std::time::Duration::from_millis(100),
                "a watcher thread outlived close {i}"
            );
            std::thread::yield_now();
        }
    }
}
