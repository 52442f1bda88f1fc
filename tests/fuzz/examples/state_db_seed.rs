//! Writes the `state_db` target's seed: a state database with jobs of every kind (download with
//! files, ranges and custom headers, upload; suspended, queued, cancelled) and the
//! manager's settings. `cargo run -p openbits-fuzz-targets --example state_db_seed -- OUT.db`
//!
//! The files name a folder that is removed before the database is copied, so a fuzzed open can
//! neither find nor change anything on disk through them.

use openbits_core::{JobType, Manager, Priority};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .ok_or("usage: state_db_seed OUT.db")?;
    let scratch = tempfile::tempdir()?;
    let state = scratch.path().join("state");
    let files = Path::new("/tmp/openbits-fuzz-seed-files");
    std::fs::create_dir_all(files)?;
    let local = |name: &str| files.join(name).to_string_lossy().into_owned();
    let upload_source = local("source.bin");
    std::fs::write(&upload_source, b"upload")?;
    {
        let m = Manager::open(Some(&state), Default::default())?;
        let a = m.create_job("download", JobType::Download)?;
        a.add_file("http://127.0.0.1:9/a.bin", &local("a.bin"))?;
        a.add_file("https://example.invalid/b.bin", &local("b.bin"))?;
        a.set_description("two files")?;
        a.set_priority(Priority::High)?;
        a.set_custom_headers(Some("X-Test: 1\r\nX-Other: two\r\n"))?;
        let b = m.create_job("ranges", JobType::Download)?;
        b.add_file_with_ranges(
            "http://127.0.0.1:9/r.bin",
            &local("r.bin"),
            &[
                openbits_core::job::FileRange {
                    offset: 0,
                    length: 10,
                },
                openbits_core::job::FileRange {
                    offset: 100,
                    length: u64::MAX,
                },
            ],
        )?;
        b.resume()?;
        let c = m.create_job("upload", JobType::Upload)?;
        c.add_file("http://127.0.0.1:9/up/source.bin", &upload_source)?;
        let e = m.create_job("cancelled", JobType::Download)?;
        e.add_file("http://127.0.0.1:9/e.bin", &local("e.bin"))?;
        let _ = e.cancel()?;
        let _ = m.set_max_bandwidth(1_000_000);
        b.suspend()?;
        m.close();
    }
    std::fs::remove_dir_all(files)?;
    std::fs::copy(state.join("openbits.db"), &out)?;
    Ok(())
}
