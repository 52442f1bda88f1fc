//! Target `state_db`: a state folder whose `openbits.db` is the fuzzer's bytes (the corpus starts
//! from a real database, `examples/state_db_seed.rs`, so mutations land in its pages and rows).
//! Opening it must give a clean error or a manager whose jobs can all be read; never a panic.

use openbits_core::{Config, Manager};
use std::time::Duration;

pub fn state_db(data: &[u8]) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let state = scratch.path().join("state");
    std::fs::create_dir(&state).expect("the state folder");
    std::fs::write(state.join("openbits.db"), data).expect("the database file");
    let config = Config {
        worker_threads: 1,
        connect_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    match Manager::open(Some(&state), config) {
        Ok(manager) => {
            let jobs = manager.jobs().expect("the jobs of an open manager");
            for job in jobs {
                // A job that settles (or is retired) meanwhile may refuse; nothing may panic.
                let _ = job.record();
                let _ = job.state();
                let _ = job.progress();
                let _ = job.error();
            }
            manager.close();
        }
        Err(e) => assert!(e.code.0 < 0, "an error that is not a failure: {e}"),
    }
}
