//! `fold_store STATE_DIR`: opens the store in STATE_DIR (migrating it, and running the calls its
//! operation log holds past the database's last fold, as the next `bits_manager_open` would) and
//! closes it, which folds and empties the log. Nothing else: no recovery of transfers or files.
//!
//! For the crash tests (`tests/crash/run.py`), which read a copy of a killed process's database
//! with sqlite3 "as the next open will find it": the calls of the last moments before a kill are
//! in the log, not yet in the tables. Never point it at a folder a manager holds: it takes no
//! lock (a copy of one is what it is for).
//!
//! Exit status 0, or 1 with the store's error on stderr; 2 on bad usage.

use openbits_core::store::SqliteStore;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: fold_store STATE_DIR");
        return ExitCode::from(2);
    };
    match SqliteStore::open(Path::new(dir)) {
        // Dropping the store folds the log and empties it.
        Ok(store) => {
            drop(store);
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("fold_store: {dir}: 0x{:08X} {message}", code.0 as u32);
            ExitCode::from(1)
        }
    }
}
