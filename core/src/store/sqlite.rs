//! The durable store: one SQLite database (`openbits.db`, mode 0600) in the state folder.
//!
//! - WAL journal with `synchronous = NORMAL`: every committed transaction survives the process
//!   being killed at any instant; a power cut can lose the last commits but never corrupts the
//!   database. (FULL would fsync every create and could not meet 10,000 creates in 2 s.)
//! - A writer's calls (`insert`, `update_job`, `append_files`, `update_files`, `remove`,
//!   `set_setting`) and the engine's checkpoint batches (`checkpoint`) append their statements to
//!   the operation log (`oplog.rs`) with one `write()` and return; `fold` runs them in one
//!   transaction, leaving out what later records replace (`fold.rs`). Reading (`load_all`,
//!   `setting`) folds first, and opening runs what a crash left in the log. Tools reading beside
//!   the holder (`readonly.rs`) apply the log's unfolded records to what they read
//!   (`apply_records`), so they see every call that returned, even after the holder died.
//! - The schema version lives in `PRAGMA user_version`; `MIGRATIONS` brings any older database
//!   forward, each step in its own transaction. A newer database is refused, never downgraded.
//! - A file that is not an openbits database (not SQLite, corrupt, or another program's tables)
//!   is refused with BITS_E_DATABASE_CORRUPT and left untouched. The integrity check reads every
//!   page; at today's schema it runs on a connection of its own while the first read loads the
//!   queue (`open_and_load`, the manager's open), and nothing writes the file until it has
//!   passed; `open` checks before it returns.

use super::{Checkpoint, Store, StoreError};
use crate::hresult::{self as hr, HResult};
use crate::job::{
    rare_box, FileExtras, FileRange, FileRecord, JobError, JobExtras, JobId, JobRecord, NonMaxU64,
    Reply, Settle, LENGTH_TO_EOF,
};
use crate::state::{ErrorContext, JobState, JobType, Priority};
use parking_lot::Mutex;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DB_FILE: &str = "openbits.db";

// The writer's operation log (a child: its records are this file's statements).
mod fold;
mod oplog;
// Reading without the folder's lock, for tools beside the holder (a child: it builds a store).
mod readonly;

pub use oplog::LOG_FILE;
use oplog::{AppendError, Bind, BindExt, Encoder, OpLog, Stmt};

/// Schema steps; step i takes the database from version i to i + 1.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE jobs (
        id BLOB PRIMARY KEY NOT NULL,
        seq INTEGER NOT NULL,
        job_type INTEGER NOT NULL,
        display_name TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state INTEGER NOT NULL,
        minimum_retry_delay_s INTEGER NOT NULL,
        no_progress_timeout_s INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        transfer_completed_ms INTEGER,
        error_count INTEGER NOT NULL,
        retry_at_ms INTEGER,
        no_progress_since_ms INTEGER,
        error_context INTEGER,
        error_code INTEGER,
        error_description TEXT,
        error_file INTEGER
    ) STRICT;
    CREATE TABLE files (
        job_id BLOB NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        remote_url TEXT NOT NULL,
        local_path TEXT NOT NULL,
        temp_path TEXT,
        bytes_total INTEGER,
        bytes_checkpointed INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        etag TEXT,
        last_modified TEXT,
        committed INTEGER NOT NULL,
        PRIMARY KEY (job_id, idx)
    ) STRICT;",
    // 2: description and owner (IBackgroundCopyJob properties), and the settle intent that makes
    // complete and cancel atomic across a crash.
    "ALTER TABLE jobs ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN settling INTEGER;",
    // 3: creation order is read on every insert (max(seq)); without an index that is a scan of
    // every job, and creating n jobs costs O(n^2).
    "CREATE INDEX jobs_seq ON jobs (seq);",
    // 4: notify flags and the minimum notification interval (IBackgroundCopyJob, Job5 properties).
    "ALTER TABLE jobs ADD COLUMN notify_flags INTEGER NOT NULL DEFAULT 3;
    ALTER TABLE jobs ADD COLUMN min_notification_interval_ms INTEGER NOT NULL DEFAULT 500;",
    // 5: HTTP options (IBackgroundCopyJobHttpOptions). Credentials are never stored.
    "ALTER TABLE jobs ADD COLUMN custom_headers TEXT;
    ALTER TABLE jobs ADD COLUMN security_flags INTEGER NOT NULL DEFAULT 0;",
    // 6: Job5 properties (dynamic content, maximum download size), the maximum download time and
    // its bookkeeping, and the notification command line.
    "ALTER TABLE jobs ADD COLUMN dynamic_content INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN max_download_size INTEGER;
    ALTER TABLE jobs ADD COLUMN max_download_time_s INTEGER NOT NULL DEFAULT 7776000;
    ALTER TABLE jobs ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN resumed_once INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN notify_program TEXT;
    ALTER TABLE jobs ADD COLUMN notify_parameters TEXT;",
    // 7: proxy settings.
    "ALTER TABLE jobs ADD COLUMN proxy_usage INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN proxy_list TEXT;
    ALTER TABLE jobs ADD COLUMN proxy_bypass TEXT;",
    // 8: byte ranges of a file ("offset:length;..." with "eof" for BG_LENGTH_TO_EOF).
    "ALTER TABLE files ADD COLUMN ranges TEXT;",
    // 9: both tables keyed by creation order (`seq`, which the manager assigns and keeps in the
    // record), each in one b-tree: a new job and its files are appended at the end of their
    // trees instead of at random places (a random GUID key, plus an index on seq, plus a rowid),
    // so creating a job and adding its file dirty two or three pages that are already in the
    // cache, instead of six scattered ones. Ids are unique in memory (the queue's map); no index
    // on them. The new files table refers to the new jobs table (dropping the old one would
    // otherwise cascade into it: the bundled SQLite has foreign keys on by default); the rename
    // carries the reference along.
    "CREATE TABLE jobs9 (
        seq INTEGER PRIMARY KEY NOT NULL,
        id BLOB NOT NULL,
        job_type INTEGER NOT NULL,
        display_name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL,
        state INTEGER NOT NULL,
        minimum_retry_delay_s INTEGER NOT NULL,
        no_progress_timeout_s INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        transfer_completed_ms INTEGER,
        error_count INTEGER NOT NULL,
        retry_at_ms INTEGER,
        no_progress_since_ms INTEGER,
        error_context INTEGER,
        error_code INTEGER,
        error_description TEXT,
        error_file INTEGER,
        settling INTEGER,
        notify_flags INTEGER NOT NULL DEFAULT 3,
        min_notification_interval_ms INTEGER NOT NULL DEFAULT 500,
        custom_headers TEXT,
        security_flags INTEGER NOT NULL DEFAULT 0,
        dynamic_content INTEGER NOT NULL DEFAULT 0,
        max_download_size INTEGER,
        max_download_time_s INTEGER NOT NULL DEFAULT 7776000,
        active_ms INTEGER NOT NULL DEFAULT 0,
        resumed_once INTEGER NOT NULL DEFAULT 0,
        notify_program TEXT,
        notify_parameters TEXT,
        proxy_usage INTEGER NOT NULL DEFAULT 0,
        proxy_list TEXT,
        proxy_bypass TEXT
    ) STRICT;
    INSERT INTO jobs9 (id, seq, job_type, display_name, description, owner, priority, state,
        minimum_retry_delay_s, no_progress_timeout_s, created_ms, modified_ms,
        transfer_completed_ms, error_count, retry_at_ms, no_progress_since_ms, error_context,
        error_code, error_description, error_file, settling, notify_flags,
        min_notification_interval_ms, custom_headers, security_flags, dynamic_content,
        max_download_size, max_download_time_s, active_ms, resumed_once, notify_program,
        notify_parameters, proxy_usage, proxy_list, proxy_bypass)
    SELECT id, seq, job_type, display_name, description, owner, priority, state,
        minimum_retry_delay_s, no_progress_timeout_s, created_ms, modified_ms,
        transfer_completed_ms, error_count, retry_at_ms, no_progress_since_ms, error_context,
        error_code, error_description, error_file, settling, notify_flags,
        min_notification_interval_ms, custom_headers, security_flags, dynamic_content,
        max_download_size, max_download_time_s, active_ms, resumed_once, notify_program,
        notify_parameters, proxy_usage, proxy_list, proxy_bypass FROM jobs;
    CREATE TABLE files9 (
        job_seq INTEGER NOT NULL REFERENCES jobs9(seq) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        remote_url TEXT NOT NULL,
        local_path TEXT NOT NULL,
        temp_path TEXT,
        bytes_total INTEGER,
        bytes_checkpointed INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        etag TEXT,
        last_modified TEXT,
        committed INTEGER NOT NULL,
        ranges TEXT,
        PRIMARY KEY (job_seq, idx)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO files9 (job_seq, idx, remote_url, local_path, temp_path, bytes_total,
        bytes_checkpointed, completed, etag, last_modified, committed, ranges)
    SELECT j.seq, f.idx, f.remote_url, f.local_path, f.temp_path, f.bytes_total,
        f.bytes_checkpointed, f.completed, f.etag, f.last_modified, f.committed, f.ranges
    FROM files f JOIN jobs j ON j.id = f.job_id;
    DROP TABLE files;
    DROP TABLE jobs;
    ALTER TABLE jobs9 RENAME TO jobs;
    ALTER TABLE files9 RENAME TO files;",
    // 10: a job's own rate limit and its cost policy (NULL: BITS's default, ALWAYS), and the
    // manager's settings that outlive a process (its rate limit, its bandwidth schedule).
    "ALTER TABLE jobs ADD COLUMN max_bandwidth INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN transfer_policy INTEGER;
    CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;",
    // 11: an upload's session on the server.
    "ALTER TABLE files ADD COLUMN upload_session TEXT;",
    // 12: upload-reply jobs: the reply file's name the application chose (NULL: beside the
    // upload), and the reply's URL and progress (so a restart fetches the rest of it).
    "ALTER TABLE jobs ADD COLUMN reply_file_name TEXT;
    ALTER TABLE files ADD COLUMN reply_url TEXT;
    ALTER TABLE files ADD COLUMN reply_total INTEGER;
    ALTER TABLE files ADD COLUMN reply_received INTEGER NOT NULL DEFAULT 0;",
    // 13: TLS settings (paths of PEM files, never their contents), whether the job needs a server
    // certificate callback again, and write-only custom headers. The headers themselves stay in
    // `custom_headers`, as BITS keeps them: the database is 0600 in a 0700 folder.
    "ALTER TABLE jobs ADD COLUMN custom_headers_write_only INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN trusted_roots TEXT;
    ALTER TABLE jobs ADD COLUMN client_certificate TEXT;
    ALTER TABLE jobs ADD COLUMN client_key TEXT;
    ALTER TABLE jobs ADD COLUMN crl_file TEXT;
    ALTER TABLE jobs ADD COLUMN certificate_callback_required INTEGER NOT NULL DEFAULT 0;",
    // 14: the sequence number of the last record of the operation log whose statements are in
    // the tables (`oplog.rs`): written in the same transaction as they are.
    "CREATE TABLE oplog (one INTEGER PRIMARY KEY CHECK (one = 1), folded INTEGER NOT NULL) STRICT;
    INSERT INTO oplog (one, folded) VALUES (1, 0);",
    // 15: no table changes; the operation log may now hold checkpoint batches (statements 8-10),
    // which a library knowing only schema 14 would read as a damaged record and stop at, losing
    // the calls after it. Raising the version makes such a library refuse the folder instead.
    "UPDATE oplog SET folded = folded;",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The writer's operation log; None in a read-only store, whose writes then run their own
    /// transaction (and fail).
    log: Option<OpLog>,
    /// `Store::close` ran: every write is refused, and dropping the store touches no file.
    closed: std::sync::atomic::AtomicBool,
}

/// The integrity check running on a connection of its own beside the first read
/// (`open_and_load`). It reads every page: a sixth of opening a queue of 100,000 jobs, which on
/// two cores it need not add to. Dropped without its verdict asked (an open failing on
/// another step), it still waits for the thread, so no connection outlives a failed open.
struct PendingCheck(Option<std::thread::JoinHandle<Result<(), StoreError>>>);

impl PendingCheck {
    /// The check's verdict. One that could not say (its connection failed to open, a busy or
    /// I/O error, a panic) is run again on the writer's `conn`: only damage refuses a database.
    fn verdict(mut self, conn: &Connection, path: &Path) -> Result<(), StoreError> {
        match self.0.take().map(|thread| thread.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) if e.0 == hr::E_DATABASE_CORRUPT => Err(e),
            Some(_) => quick_check(conn, path),
        }
    }

    /// `e`, unless the check refused the database: then the check's reason, which says why.
    fn or(self, conn: &Connection, path: &Path, e: StoreError) -> StoreError {
        self.verdict(conn, path).err().unwrap_or(e)
    }
}

impl Drop for PendingCheck {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// A database refused at open stays as it was: when this, its last connection, closes, SQLite
/// must not checkpoint a WAL a crash left into it. Nothing before the refusal wrote a frame, so
/// a WAL of no frames is ours (empty): closing then only deletes it and its index, as before.
fn leave_untouched(conn: &Connection, path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    // 32 bytes: a WAL's header, written with its first frame.
    if std::fs::metadata(&wal).map_or(true, |m| m.len() > 32) {
        let _ = conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
    }
}

/// Maps an SQLite failure to the HRESULT a caller can act on.
fn db_error(what: &str, e: rusqlite::Error) -> StoreError {
    let code = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => HResult::from_win32(hr::win32::ERROR_DISK_FULL),
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => hr::E_DATABASE_CORRUPT,
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            HResult::from_win32(hr::win32::ERROR_SHARING_VIOLATION)
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::PermissionDenied)
        | Some(ErrorCode::CannotOpen) => hr::E_ACCESSDENIED,
        Some(ErrorCode::OutOfMemory) => hr::E_OUTOFMEMORY,
        _ => hr::E_FAIL,
    };
    (code, format!("state database: {what}: {e}"))
}

/// A read-only connection for one scan beside the writer's. Its page cache is small: a scan
/// reads each page once, and SQLite's default 2 MiB would stay with the thread's allocator
/// after the connection closes (a megabyte more resident at 10,000 jobs).
fn open_beside(path: &Path, what: &str) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| db_error(&format!("open for {what}"), e))?;
    conn.pragma_update(None, "cache_size", -64)
        .map_err(|e| db_error(&format!("cache_size for {what}"), e))?;
    Ok(conn)
}

/// `PRAGMA quick_check(1)`: every page read, the structure of every table and index checked.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                corrupt(path, "integrity check failed")
            }
            _ => db_error("integrity check", e),
        })?;
    if check != "ok" {
        return Err(corrupt(path, &format!("integrity check: {check}")));
    }
    Ok(())
}

fn corrupt(path: &Path, why: &str) -> StoreError {
    (
        hr::E_DATABASE_CORRUPT,
        format!(
            "{} is not a usable openbits database ({why}); it was left untouched",
            path.display()
        ),
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_checking(dir, false).map(|(store, _)| store)
    }

    /// `open` and then `load_all`, with the integrity check running beside the read (see
    /// `PendingCheck`); a store refused by the check is shut (it writes nothing, not even at
    /// drop) and only its verdict is returned.
    pub fn open_and_load(dir: &Path) -> Result<(SqliteStore, Vec<JobRecord>), StoreError> {
        let (store, check) = Self::open_checking(dir, true)?;
        let loaded = store.load_all();
        let conn = store.conn.lock();
        if let Err(e) = check.verdict(&conn, &store.path) {
            store.shut();
            leave_untouched(&conn, &store.path);
            return Err(e);
        }
        drop(conn);
        Ok((store, loaded?))
    }

    /// `open`, its integrity check left running when `beside` allows (`check_and_migrate`).
    fn open_checking(dir: &Path, beside: bool) -> Result<(SqliteStore, PendingCheck), StoreError> {
        let path = dir.join(DB_FILE);
        // Created by us, so it gets 0600; SQLite gives its -wal and -shm files the same mode.
        crate::localfile::open_private(&path).map_err(|e| {
            (
                hr::from_io(&e),
                format!("cannot open {}: {e}", path.display()),
            )
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| db_error("open", e))?;
        let check = match Self::check_and_migrate(&conn, &path, beside) {
            Ok(check) => check,
            Err(e) => {
                leave_untouched(&conn, &path);
                return Err(e);
            }
        };
        let rest = || {
            conn.pragma_update(None, "foreign_keys", "ON")
                .map_err(|e| db_error("foreign_keys", e))?;
            OpLog::open(dir).map_err(|e| {
                let log = dir.join(LOG_FILE);
                (hr::from_io(&e), format!("{}: {e}", log.display()))
            })
        };
        let (log, bytes) = match rest() {
            Ok(opened) => opened,
            Err(e) => {
                let e = check.or(&conn, &path, e);
                leave_untouched(&conn, &path);
                return Err(e);
            }
        };
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path,
            log: Some(log),
            closed: Default::default(),
        };
        // A crash's calls are written into the tables now: not before the check has passed.
        let check = if bytes.is_empty() {
            check
        } else {
            let conn = store.conn.lock();
            if let Err(e) = check.verdict(&conn, &store.path) {
                store.shut();
                leave_untouched(&conn, &store.path);
                return Err(e);
            }
            PendingCheck(None)
        };
        if let Err(e) = store.replay(&bytes) {
            // The log still holds calls the tables do not: dropping the store must not fold an
            // empty queue and then empty the file under them.
            store.shut();
            let conn = store.conn.lock();
            let e = check.or(&conn, &store.path, e);
            leave_untouched(&conn, &store.path);
            return Err(e);
        }
        Ok((store, check))
    }

    /// Runs what the log holds past the database's last fold (a crash's calls), then empties it.
    fn replay(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let (records, _) = oplog::records(bytes);
        let conn = self.conn.lock();
        let folded = folded_seq(&conn).map_err(|e| db_error("read the log's position", e))?;
        // Numbers only grow within a log, so what is past the fold is a tail.
        let from = records.iter().position(|r| r.seq > folded);
        if let Some(from) = from {
            let run = |careful: bool| -> rusqlite::Result<()> {
                conn.prepare_cached("BEGIN")?.execute([])?;
                run_records(&conn, &records[from..], careful)?;
                conn.prepare_cached("COMMIT")?.execute([]).map(|_| ())
            };
            let rollback = || {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
            };
            // As a fold does (`transaction`): a record the database refuses is skipped rather
            // than making every later open fail.
            let mut result = run(false);
            if result.is_err() {
                rollback();
                result = run(true);
            }
            if let Err(e) = result {
                rollback();
                return Err(db_error("run the operation log", e));
            }
        }
        let last = records.last().map_or(0, |r| r.seq).max(folded);
        let Some(log) = &self.log else { return Ok(()) };
        let mut inner = log.inner.lock();
        inner.next_seq = last + 1;
        if !bytes.is_empty() {
            self.sync_tables()
                .and_then(|()| inner.truncate())
                .map_err(|e| (hr::from_io(&e), format!("operation log: {e}")))?;
        }
        Ok(())
    }

    /// Makes every committed transaction durable (the WAL's data, or the database file when
    /// there is no WAL), so the log may be emptied.
    fn sync_tables(&self) -> std::io::Result<()> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.path)?.sync_data()
            }
            Err(e) => Err(e),
        }
    }

    /// Everything that reads the file before anything writes it: a foreign or broken file is
    /// refused before WAL mode or a migration could change it. A database already at this
    /// schema and in WAL mode needs no write here, so with `beside` its integrity check is left
    /// running on a thread of its own, returned, while the caller goes on reading.
    fn check_and_migrate(
        conn: &Connection,
        path: &Path,
        beside: bool,
    ) -> Result<PendingCheck, StoreError> {
        let version: i64 = match conn.pragma_query_value(None, "user_version", |r| r.get(0)) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
                ) =>
            {
                return Err(corrupt(path, "not an SQLite database"))
            }
            Err(e) => return Err(db_error("read the schema version", e)),
        };
        if version > SCHEMA_VERSION {
            return Err((
                HResult::from_win32(1306), // ERROR_REVISION_MISMATCH
                format!(
                    "{} has schema version {version}, newer than the {SCHEMA_VERSION} this library knows: \
                     use a newer openbits (the database was not changed)",
                    path.display()
                ),
            ));
        }
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                    corrupt(path, "damaged")
                }
                _ => db_error("read the schema", e),
            })?;
        if version == 0 && tables > 0 {
            return Err(corrupt(path, "it holds another program's tables"));
        }
        if beside && version == SCHEMA_VERSION {
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .map_err(|e| db_error("read the journal mode", e))?;
            if mode.eq_ignore_ascii_case("wal") {
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(|e| db_error("synchronous", e))?;
                let db = path.to_path_buf();
                let spawned = std::thread::Builder::new()
                    .name("openbits-check".into())
                    .spawn(move || quick_check(&open_beside(&db, "the integrity check")?, &db));
                if let Ok(thread) = spawned {
                    return Ok(PendingCheck(Some(thread)));
                }
                // No thread to be had: check here, as a migrating open does.
                quick_check(conn, path)?;
                return Ok(PendingCheck(None));
            }
        }
        if version > 0 {
            quick_check(conn, path)?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_error("journal_mode", e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_error("synchronous", e))?;
        migrate(conn, version, SCHEMA_VERSION)?;
        Ok(PendingCheck(None))
    }

    /// Refuses every later write, and leaves the files to whoever holds the folder next.
    fn shut(&self) {
        if let Some(log) = &self.log {
            // Under the log's lock, so no append is half-way past the check. The mapping goes
            // too: the folder's next holder may empty the file while this store lives on.
            let mut inner = log.inner.lock();
            inner.closed = true;
            inner.drop_mapping();
        }
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Applies the migration steps from `from` up to `to`, each in its own transaction.
fn migrate(conn: &Connection, from: i64, to: i64) -> Result<(), StoreError> {
    for v in from..to {
        let step = MIGRATIONS[v as usize];
        let sql = format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {}; COMMIT;",
            v + 1
        );
        if let Err(e) = conn.execute_batch(&sql) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(db_error(&format!("migrate to schema version {}", v + 1), e));
        }
    }
    Ok(())
}

/// The columns of a job's own row, in the order `decode_job` reads them after `id`. Every write
/// binds them by name (`:display_name`), so the order matters only to the decoder, and the
/// round-trip test fails if a field is missing from either side.
const JOB_COLUMNS: [&str; 42] = [
    "job_type",
    "display_name",
    "description",
    "owner",
    "priority",
    "state",
    "minimum_retry_delay_s",
    "no_progress_timeout_s",
    "created_ms",
    "modified_ms",
    "transfer_completed_ms",
    "error_count",
    "retry_at_ms",
    "no_progress_since_ms",
    "error_context",
    "error_code",
    "error_description",
    "error_file",
    "settling",
    "notify_flags",
    "min_notification_interval_ms",
    "custom_headers",
    "security_flags",
    "dynamic_content",
    "max_download_size",
    "max_download_time_s",
    "active_ms",
    "resumed_once",
    "notify_program",
    "notify_parameters",
    "proxy_usage",
    "proxy_list",
    "proxy_bypass",
    "max_bandwidth",
    "transfer_policy",
    "reply_file_name",
    "custom_headers_write_only",
    "trusted_roots",
    "client_certificate",
    "client_key",
    "crl_file",
    "certificate_callback_required",
];

/// The columns of a file row, in the order `decode_file` reads them after `job_seq`.
const FILE_COLUMNS: [&str; 15] = [
    "idx",
    "remote_url",
    "local_path",
    "temp_path",
    "bytes_total",
    "bytes_checkpointed",
    "completed",
    "etag",
    "last_modified",
    "committed",
    "ranges",
    "upload_session",
    "reply_url",
    "reply_total",
    "reply_received",
];

/// The statements, built once from the column lists.
struct Sql {
    select_jobs: String,
    select_files: String,
    insert_job: String,
    update_job: String,
    /// `update_job`, unless the stored row is newer (`modified_ms`).
    update_job_unless_newer: String,
    insert_file: String,
}

fn sql() -> &'static Sql {
    static SQL: std::sync::OnceLock<Sql> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let names = |cols: &[&str]| cols.join(", ");
        let set = JOB_COLUMNS
            .iter()
            .map(|c| format!("{c} = :{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let params = |cols: &[&str]| {
            cols.iter()
                .map(|c| format!(":{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Sql {
            // Both in creation order, which is the order the tables are stored in: no sort, and
            // `load_all` joins them in one pass.
            select_jobs: format!(
                "SELECT seq, id, {} FROM jobs ORDER BY seq",
                names(&JOB_COLUMNS)
            ),
            select_files: format!(
                "SELECT job_seq, {} FROM files ORDER BY job_seq, idx",
                names(&FILE_COLUMNS)
            ),
            insert_job: format!(
                "INSERT INTO jobs (seq, id, {}) VALUES (:seq, :id, {})",
                names(&JOB_COLUMNS),
                params(&JOB_COLUMNS)
            ),
            update_job: format!("UPDATE jobs SET {set} WHERE seq = :seq"),
            // The second `:modified_ms` is the same parameter as the first (SQLite numbers a
            // repeated name once), so the row binds as `update_job`'s does.
            update_job_unless_newer: format!(
                "UPDATE jobs SET {set} WHERE seq = :seq AND modified_ms <= :modified_ms"
            ),
            insert_file: format!(
                "INSERT INTO files (job_seq, {}) VALUES (:job_seq, {})",
                names(&FILE_COLUMNS),
                params(&FILE_COLUMNS)
            ),
        }
    })
}

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.map(|x| x as u64)
}

/// An optional size or time as the records keep it (a stored -1, u64::MAX, reads as none).
fn opt_nonmax(v: Option<i64>) -> Option<NonMaxU64> {
    v.and_then(|x| NonMaxU64::new(x as u64))
}

/// A row's values by index: a row of a query, or the values of a log record's step (which are
/// in the same order: see `oplog::Stmt`).
trait Source {
    fn value(&self, i: usize) -> rusqlite::Result<ValueRef<'_>>;
    fn col<T: rusqlite::types::FromSql>(&self, i: usize) -> rusqlite::Result<T> {
        let v = self.value(i)?;
        T::column_result(v)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e)))
    }
}

impl Source for rusqlite::Row<'_> {
    fn value(&self, i: usize) -> rusqlite::Result<ValueRef<'_>> {
        self.get_ref(i)
    }
}

impl Source for [ValueRef<'_>] {
    fn value(&self, i: usize) -> rusqlite::Result<ValueRef<'_>> {
        self.get(i)
            .copied()
            .ok_or(rusqlite::Error::InvalidColumnIndex(i))
    }
}

/// Reads a row's columns in order: by index, because looking each one up by name costs a scan
/// of the column names per field, which is most of the time of opening a queue of 100,000 jobs.
struct Columns<'a, S: Source + ?Sized> {
    row: &'a S,
    next: usize,
}

impl<S: Source + ?Sized> Columns<'_, S> {
    fn get<T: rusqlite::types::FromSql>(&mut self) -> rusqlite::Result<T> {
        self.next += 1;
        self.row.col(self.next - 1)
    }
}

fn invalid(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(column, what.to_string(), rusqlite::types::Type::Integer)
}

/// A job id from a BLOB column, without an allocation.
fn job_id<S: Source + ?Sized>(row: &S, column: usize) -> rusqlite::Result<JobId> {
    let bytes = row.value(column)?.as_blob()?;
    JobId::from_slice(bytes).map_err(|_| invalid(column, "id"))
}

/// The owner of the job decoded last: a queue's jobs almost all share one, so they share one
/// allocation too.
#[derive(Default)]
struct Owners(Option<Arc<str>>);

impl Owners {
    fn get(&mut self, name: &str) -> Arc<str> {
        match &self.0 {
            Some(o) if **o == *name => o.clone(),
            _ => self.0.insert(Arc::from(name)).clone(),
        }
    }
}

fn decode_job<S: Source + ?Sized>(row: &S, owners: &mut Owners) -> rusqlite::Result<JobRecord> {
    let seq = row.col::<i64>(0)? as u64;
    let id = job_id(row, 1)?;
    let mut c = Columns { row, next: 2 };
    let job_type = JobType::from_i32(c.get()?).ok_or_else(|| invalid(c.next, "job_type"))?;
    let display_name = c.get()?;
    let description = c.get()?;
    c.next += 1;
    let owner = owners.get(row.value(c.next - 1)?.as_str()?);
    let priority = Priority::from_i32(c.get()?).ok_or_else(|| invalid(c.next, "priority"))?;
    let state = JobState::from_i32(c.get()?).ok_or_else(|| invalid(c.next, "state"))?;
    let minimum_retry_delay_s = c.get()?;
    let no_progress_timeout_s = c.get()?;
    let created_ms = c.get::<i64>()? as u64;
    let modified_ms = c.get::<i64>()? as u64;
    let transfer_completed_ms = opt_nonmax(c.get()?);
    let error_count = c.get()?;
    let retry_at_ms = opt_nonmax(c.get()?);
    let no_progress_since_ms = opt_nonmax(c.get()?);
    let error_context: Option<i32> = c.get()?;
    let error_code: Option<i32> = c.get()?;
    let error_description: Option<String> = c.get()?;
    let error_file: Option<u32> = c.get()?;
    let error = match error_context {
        Some(ctx) => Some(Box::new(JobError {
            context: ErrorContext::from_i32(ctx).ok_or_else(|| invalid(c.next, "error_context"))?,
            code: HResult(error_code.unwrap_or(0)),
            description: error_description.unwrap_or_default(),
            file_index: error_file,
        })),
        None => None,
    };
    let settling = match c.get::<Option<i32>>()? {
        Some(1) => Some(Settle::Completing),
        Some(2) => Some(Settle::Cancelling),
        _ => None,
    };
    let notify_flags = c.get()?;
    let min_notification_interval_ms = c.get()?;
    let mut extras = JobExtras::NONE;
    extras.custom_headers = c.get()?;
    let security_flags = c.get()?;
    let dynamic_content = c.get()?;
    let max_download_size = opt_nonmax(c.get()?);
    let max_download_time_s = c.get()?;
    let active_ms = c.get::<i64>()? as u64;
    let resumed_once = c.get()?;
    extras.notify_program = c.get()?;
    extras.notify_parameters = c.get()?;
    let proxy_usage = c.get()?;
    extras.proxy_list = c.get()?;
    extras.proxy_bypass = c.get()?;
    extras.max_bandwidth = c.get::<i64>()? as u64;
    extras.transfer_policy = c.get()?;
    extras.reply_file_name = c.get()?;
    extras.custom_headers_write_only = c.get()?;
    extras.trusted_roots = c.get()?;
    extras.client_certificate = c.get()?;
    extras.client_key = c.get()?;
    extras.crl_file = c.get()?;
    extras.certificate_callback_required = c.get()?;
    Ok(JobRecord {
        id,
        job_type,
        seq,
        display_name,
        description,
        owner,
        priority,
        state,
        files: Vec::new(),
        error,
        minimum_retry_delay_s,
        no_progress_timeout_s,
        notify_flags,
        min_notification_interval_ms,
        security_flags,
        dynamic_content,
        max_download_size,
        max_download_time_s,
        active_ms,
        resumed_once,
        proxy_usage,
        extras: rare_box(extras, &JobExtras::NONE),
        created_ms,
        modified_ms,
        transfer_completed_ms,
        error_count,
        retry_at_ms,
        no_progress_since_ms,
        settling,
    })
}

/// Binds the named parameters of a statement built from the column lists, in their order: by
/// position, because looking a name up scans every parameter's name (34 for a job's row, a tenth
/// of the cost of creating a job). Debug builds check each name against its position.
struct Binder<'s, 'c> {
    st: &'s mut rusqlite::Statement<'c>,
    next: usize,
}

impl Bind for Binder<'_, '_> {
    fn bind(
        &mut self,
        name: &std::ffi::CStr,
        value: rusqlite::types::ValueRef<'_>,
    ) -> rusqlite::Result<()> {
        let at = self.next;
        self.next += 1;
        debug_assert_eq!(
            self.st.parameter_name(at).map(str::as_bytes),
            Some(name.to_bytes()),
            "parameter {at}"
        );
        self.st
            .raw_bind_parameter(at, rusqlite::types::ToSqlOutput::Borrowed(value))
    }
}

/// Binds every job column (`JOB_COLUMNS`) and `:seq`, and for an insert `:id`: the insert
/// starts with `:seq, :id`, the update ends with `:seq` (the key; the id never changes).
fn bind_job(st: &mut dyn Bind, job: &JobRecord, insert: bool) -> rusqlite::Result<()> {
    let err = job.error.as_ref();
    if insert {
        st.put(c":seq", job.seq as i64)?;
        st.put(c":id", job.id.as_bytes().as_slice())?;
    }
    st.put(c":job_type", job.job_type as i32)?;
    st.put(c":display_name", &job.display_name)?;
    st.put(c":description", &job.description)?;
    st.put(c":owner", &*job.owner)?;
    st.put(c":priority", job.priority as i32)?;
    st.put(c":state", job.state as i32)?;
    st.put(c":minimum_retry_delay_s", job.minimum_retry_delay_s)?;
    st.put(c":no_progress_timeout_s", job.no_progress_timeout_s)?;
    st.put(c":created_ms", job.created_ms as i64)?;
    st.put(c":modified_ms", job.modified_ms as i64)?;
    st.put(
        c":transfer_completed_ms",
        job.transfer_completed_ms.map(|v| v.get() as i64),
    )?;
    st.put(c":error_count", job.error_count)?;
    st.put(c":retry_at_ms", job.retry_at_ms.map(|v| v.get() as i64))?;
    st.put(
        c":no_progress_since_ms",
        job.no_progress_since_ms.map(|v| v.get() as i64),
    )?;
    st.put(c":error_context", err.map(|e| e.context as i32))?;
    st.put(c":error_code", err.map(|e| e.code.0))?;
    st.put(c":error_description", err.map(|e| e.description.as_str()))?;
    st.put(c":error_file", err.and_then(|e| e.file_index))?;
    st.put(c":settling", job.settling.map(|s| s as i32))?;
    st.put(c":notify_flags", job.notify_flags)?;
    st.put(
        c":min_notification_interval_ms",
        job.min_notification_interval_ms,
    )?;
    let extras = job.extras();
    st.put(c":custom_headers", &extras.custom_headers)?;
    st.put(c":security_flags", job.security_flags)?;
    st.put(c":dynamic_content", job.dynamic_content)?;
    st.put(
        c":max_download_size",
        job.max_download_size.map(|v| v.get() as i64),
    )?;
    st.put(c":max_download_time_s", job.max_download_time_s)?;
    st.put(c":active_ms", job.active_ms as i64)?;
    st.put(c":resumed_once", job.resumed_once)?;
    st.put(c":notify_program", &extras.notify_program)?;
    st.put(c":notify_parameters", &extras.notify_parameters)?;
    st.put(c":proxy_usage", job.proxy_usage)?;
    st.put(c":proxy_list", &extras.proxy_list)?;
    st.put(c":proxy_bypass", &extras.proxy_bypass)?;
    st.put(c":max_bandwidth", extras.max_bandwidth as i64)?;
    st.put(c":transfer_policy", extras.transfer_policy)?;
    st.put(c":reply_file_name", &extras.reply_file_name)?;
    st.put(
        c":custom_headers_write_only",
        extras.custom_headers_write_only,
    )?;
    st.put(c":trusted_roots", &extras.trusted_roots)?;
    st.put(c":client_certificate", &extras.client_certificate)?;
    st.put(c":client_key", &extras.client_key)?;
    st.put(c":crl_file", &extras.crl_file)?;
    st.put(
        c":certificate_callback_required",
        extras.certificate_callback_required,
    )?;
    if !insert {
        st.put(c":seq", job.seq as i64)?;
    }
    Ok(())
}

fn encode_ranges(ranges: &[FileRange]) -> String {
    let one = |r: &FileRange| match r.length {
        LENGTH_TO_EOF => format!("{}:eof", r.offset),
        n => format!("{}:{n}", r.offset),
    };
    ranges.iter().map(one).collect::<Vec<_>>().join(";")
}

/// The inverse of `encode_ranges`; a malformed entry (only a foreign writer could make one) is
/// skipped rather than trusted.
fn decode_ranges(text: &str) -> Vec<FileRange> {
    text.split(';')
        .filter_map(|e| {
            let (o, l) = e.split_once(':')?;
            let length = if l == "eof" {
                LENGTH_TO_EOF
            } else {
                l.parse().ok()?
            };
            Some(FileRange {
                offset: o.parse().ok()?,
                length,
            })
        })
        .collect()
}

fn decode_file<S: Source + ?Sized>(row: &S) -> rusqlite::Result<FileRecord> {
    // Column 0 is the job id, read by the caller.
    let mut c = Columns { row, next: 2 };
    let remote_url = c.get()?;
    let local_path = c.get()?;
    let temp_path = c.get()?;
    let bytes_total = opt_nonmax(c.get()?);
    let done = c.get::<i64>()? as u64;
    Ok(FileRecord {
        remote_url,
        local_path,
        temp_path,
        bytes_total,
        bytes_transferred: done,
        bytes_checkpointed: done,
        completed: c.get()?,
        etag: c.get()?,
        last_modified: c.get()?,
        committed: c.get()?,
        extras: rare_box(
            FileExtras {
                ranges: c.get::<Option<String>>()?.map(|s| decode_ranges(&s).into()),
                upload_session: c.get()?,
                reply: decode_reply(c.get()?, opt_u64(c.get()?), c.get::<i64>()? as u64),
            },
            &FileExtras::NONE,
        ),
    })
}

/// Binds `:job_seq` and every file column (`FILE_COLUMNS`), in that order.
fn bind_file(st: &mut dyn Bind, job_seq: u64, idx: usize, f: &FileRecord) -> rusqlite::Result<()> {
    st.put(c":job_seq", job_seq as i64)?;
    st.put(c":idx", idx as u32)?;
    st.put(c":remote_url", &f.remote_url)?;
    st.put(c":local_path", &f.local_path)?;
    st.put(c":temp_path", &f.temp_path)?;
    st.put(c":bytes_total", f.bytes_total.map(|v| v.get() as i64))?;
    st.put(c":bytes_checkpointed", f.bytes_checkpointed as i64)?;
    st.put(c":completed", f.completed)?;
    st.put(c":etag", &f.etag)?;
    st.put(c":last_modified", &f.last_modified)?;
    st.put(c":committed", f.committed)?;
    st.put(c":ranges", f.extras().ranges.as_deref().map(encode_ranges))?;
    st.put(c":upload_session", &f.extras().upload_session)?;
    bind_reply(st, f)
}

fn decode_reply(url: Option<Box<str>>, total: Option<u64>, received: u64) -> Option<Reply> {
    url.map(|url| Reply {
        url,
        total,
        received,
    })
}

/// The values of `:reply_url`, `:reply_total` and `:reply_received` (inserts and updates).
fn reply_columns(f: &FileRecord) -> (Option<&str>, Option<i64>, i64) {
    let r = f.extras().reply.as_ref();
    (
        r.map(|r| &*r.url),
        r.and_then(|r| r.total).map(|v| v as i64),
        r.map_or(0, |r| r.received as i64),
    )
}

fn bind_reply(st: &mut dyn Bind, f: &FileRecord) -> rusqlite::Result<()> {
    let (url, total, received) = reply_columns(f);
    st.put(c":reply_url", url)?;
    st.put(c":reply_total", total)?;
    st.put(c":reply_received", received)
}

/// The SQL of a statement a write runs (at once, or from the log).
fn stmt_sql(stmt: Stmt) -> &'static str {
    match stmt {
        Stmt::InsertJob => &sql().insert_job,
        Stmt::UpdateJob => &sql().update_job,
        Stmt::InsertFile => &sql().insert_file,
        Stmt::UpdateFileNames => {
            "UPDATE files SET remote_url = :remote_url, local_path = :local_path,
                temp_path = :temp_path, committed = :committed,
                upload_session = :upload_session, reply_url = :reply_url,
                reply_total = :reply_total, reply_received = :reply_received
             WHERE job_seq = :job_seq AND idx = :idx"
        }
        Stmt::DeleteJob => "DELETE FROM jobs WHERE seq = :seq",
        Stmt::PutSetting => {
            "INSERT INTO settings (key, value) VALUES (:key, :value)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        }
        Stmt::DeleteSetting => "DELETE FROM settings WHERE key = :key",
        Stmt::Checkpoint => {
            "UPDATE files SET bytes_checkpointed = :bytes, bytes_total = :total, etag = :etag,
                last_modified = :last_modified, completed = :completed,
                temp_path = coalesce(:temp_path, temp_path)
             WHERE job_seq = :job_seq AND idx = :idx"
        }
        // A moving job's row also takes its state (QUEUED, CONNECTING or TRANSFERRING: one
        // state to the manager's writes, see `JobRecord::same_row`) from its newest checkpoint,
        // so a reader beside the holder sees it move; a row a call wrote later than the
        // checkpoint, or in another state, stays (SET reads the old `modified_ms`).
        Stmt::JobProgress => {
            "UPDATE jobs SET modified_ms = max(modified_ms, :at),
                state = CASE WHEN state IN (0, 1, 2) AND :state IN (0, 1, 2)
                    AND modified_ms <= :at THEN :state ELSE state END
             WHERE seq = :seq"
        }
        Stmt::UpdateJobUnlessNewer => &sql().update_job_unless_newer,
    }
}

/// Where a write's statements go: run at once (`Run`), or into a log record (`Encoder`).
trait Steps {
    fn step(
        &mut self,
        stmt: Stmt,
        values: &dyn Fn(&mut dyn Bind) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()>;
}

struct Run<'c>(&'c Connection);

impl Steps for Run<'_> {
    fn step(
        &mut self,
        stmt: Stmt,
        values: &dyn Fn(&mut dyn Bind) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut st = self.0.prepare_cached(stmt_sql(stmt))?;
        values(&mut Binder {
            st: &mut st,
            next: 1,
        })?;
        st.raw_execute().map(|_| ())
    }
}

impl Steps for Encoder<'_> {
    fn step(
        &mut self,
        stmt: Stmt,
        values: &dyn Fn(&mut dyn Bind) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        self.begin(stmt);
        values(self)
    }
}

/// Runs log records in the open transaction, then records the last one's number as folded.
/// A plain run leaves out the steps a later step of the same records replaces (`fold::plan`).
/// `careful`: every step of each record, each record in a savepoint, and one the database
/// refuses (`refused`) is skipped (its call was accepted, so only a bug can make one; the others
/// must not be lost with it). Any other failure (a full disk, an I/O error) ends the run: the
/// caller rolls back and the records wait, since skipping one that could pass later would lose a
/// call that returned.
fn run_records<'r>(
    conn: &Connection,
    records: &[oplog::Record<'r>],
    careful: bool,
) -> rusqlite::Result<()> {
    if careful {
        for rec in records {
            conn.prepare_cached("SAVEPOINT record")?.execute([])?;
            if let Err(e) = run_record(conn, rec) {
                if !refused(&e) {
                    return Err(e);
                }
                conn.prepare_cached("ROLLBACK TO record")?.execute([])?;
            }
            conn.prepare_cached("RELEASE record")?.execute([])?;
        }
    } else {
        let plan = fold::plan(records.iter());
        let mut row = Vec::new();
        for (step, action) in &plan {
            match *action {
                fold::Action::Run => run_step(conn, step.stmt, &step.values)?,
                fold::Action::Skip => {}
                fold::Action::InsertWith(update) => {
                    // [seq, id] of the insert, then the update's JOB_COLUMNS (its last value
                    // is the seq again).
                    let newest = &plan[update].0.values;
                    let (Some(key), Some((_, columns))) =
                        (step.values.get(..2), newest.split_last())
                    else {
                        return Err(rusqlite::Error::InvalidParameterCount(
                            step.values.len(),
                            newest.len(),
                        ));
                    };
                    row.clear();
                    row.extend_from_slice(key);
                    row.extend_from_slice(columns);
                    run_step(conn, Stmt::InsertJob, &row)?;
                }
            }
        }
    }
    if let Some(rec) = records.last() {
        conn.prepare_cached("UPDATE oplog SET folded = :seq")?
            .execute(rusqlite::named_params! {":seq": rec.seq as i64})?;
    }
    Ok(())
}

/// A failure that running the same record again would meet again: a constraint, a value of the
/// wrong type, a statement the record does not fit.
fn refused(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::Unknown
        ),
        rusqlite::Error::InvalidParameterCount(..)
        | rusqlite::Error::InvalidParameterName(_)
        | rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::InvalidColumnType(..) => true,
        _ => false,
    }
}

fn run_record(conn: &Connection, rec: &oplog::Record<'_>) -> rusqlite::Result<()> {
    for step in &rec.steps {
        run_step(conn, step.stmt, &step.values)?;
    }
    Ok(())
}

fn run_step(conn: &Connection, stmt: Stmt, values: &[ValueRef<'_>]) -> rusqlite::Result<()> {
    let mut st = conn.prepare_cached(stmt_sql(stmt))?;
    if st.parameter_count() != values.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            values.len(),
            st.parameter_count(),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        st.raw_bind_parameter(i + 1, rusqlite::types::ToSqlOutput::Borrowed(*v))?;
    }
    st.raw_execute()?;
    Ok(())
}

/// A reader beside the holder (`readonly.rs`): the holder's calls still in its log, applied to
/// the jobs of a snapshot (by `seq`) as its fold will write them. Stops at a record it cannot
/// read: a later one would apply to the wrong state.
fn apply_records<'r>(
    jobs: &mut std::collections::HashMap<u64, JobRecord>,
    records: impl Iterator<Item = &'r oplog::Record<'r>>,
) {
    let mut owners = Owners::default();
    for rec in records {
        if apply_record(jobs, rec, &mut owners).is_err() {
            return;
        }
    }
}

fn apply_record(
    jobs: &mut std::collections::HashMap<u64, JobRecord>,
    rec: &oplog::Record<'_>,
    owners: &mut Owners,
) -> rusqlite::Result<()> {
    for step in &rec.steps {
        let v = &step.values[..];
        match step.stmt {
            // [seq, id, JOB_COLUMNS]: a row as `select_jobs` reads it.
            Stmt::InsertJob => {
                let job = decode_job(v, owners)?;
                jobs.insert(job.seq, job);
            }
            // [JOB_COLUMNS, seq]: the row is rebuilt in `select_jobs` order, with the stored id.
            Stmt::UpdateJob | Stmt::UpdateJobUnlessNewer => {
                let seq = v.col::<i64>(v.len().saturating_sub(1))? as u64;
                let Some(old) = jobs.get_mut(&seq) else {
                    continue;
                };
                if step.stmt == Stmt::UpdateJobUnlessNewer {
                    let at = JOB_COLUMNS
                        .iter()
                        .position(|c| *c == "modified_ms")
                        .ok_or(rusqlite::Error::InvalidColumnIndex(0))?;
                    if old.modified_ms > v.col::<i64>(at)? as u64 {
                        continue;
                    }
                }
                let id = *old.id.as_bytes();
                let mut row = Vec::with_capacity(v.len() + 1);
                row.push(ValueRef::Integer(seq as i64));
                row.push(ValueRef::Blob(&id));
                row.extend_from_slice(&v[..v.len() - 1]);
                let mut new = decode_job(&row[..], owners)?;
                new.files = std::mem::take(&mut old.files);
                *old = new;
            }
            // [job_seq, FILE_COLUMNS]: a row as `select_files` reads it.
            Stmt::InsertFile => {
                let (seq, idx) = (v.col::<i64>(0)? as u64, v.col::<u32>(1)? as usize);
                let file = decode_file(v)?;
                if let Some(job) = jobs.get_mut(&seq) {
                    match job.files.get_mut(idx) {
                        Some(f) => *f = file,
                        None => job.files.push(file),
                    }
                }
            }
            // In `bind_file_names` order.
            Stmt::UpdateFileNames => {
                let (seq, idx) = (v.col::<i64>(8)? as u64, v.col::<u32>(9)? as usize);
                if let Some(f) = jobs.get_mut(&seq).and_then(|j| j.files.get_mut(idx)) {
                    f.remote_url = v.col(0)?;
                    f.local_path = v.col(1)?;
                    f.temp_path = v.col(2)?;
                    f.committed = v.col(3)?;
                    let session = v.col(4)?;
                    let reply =
                        decode_reply(v.col(5)?, opt_u64(v.col(6)?), v.col::<i64>(7)? as u64);
                    f.set_extras(|e| (e.upload_session, e.reply) = (session, reply));
                }
            }
            Stmt::DeleteJob => {
                jobs.remove(&(v.col::<i64>(0)? as u64));
            }
            // [bytes, total, etag, last_modified, completed, temp_path, job_seq, idx]
            Stmt::Checkpoint => {
                let (seq, idx) = (v.col::<i64>(6)? as u64, v.col::<u32>(7)? as usize);
                if let Some(f) = jobs.get_mut(&seq).and_then(|j| j.files.get_mut(idx)) {
                    let bytes = v.col::<i64>(0)? as u64;
                    f.bytes_checkpointed = bytes;
                    f.bytes_transferred = bytes;
                    f.bytes_total = opt_nonmax(v.col(1)?);
                    f.etag = v.col(2)?;
                    f.last_modified = v.col(3)?;
                    f.completed = v.col(4)?;
                    if let Some(t) = v.col::<Option<Box<str>>>(5)? {
                        f.temp_path = Some(t);
                    }
                }
            }
            // [at, state, seq]: as the statement's CASE, on the row as it stood.
            Stmt::JobProgress => {
                let (at, seq) = (v.col::<i64>(0)? as u64, v.col::<i64>(2)? as u64);
                let state = JobState::from_i32(v.col(1)?).ok_or_else(|| invalid(1, "state"))?;
                if let Some(job) = jobs.get_mut(&seq) {
                    let moving = |s: JobState| (s as i32) <= 2;
                    if moving(job.state) && moving(state) && job.modified_ms <= at {
                        job.state = state;
                    }
                    job.modified_ms = job.modified_ms.max(at);
                }
            }
            Stmt::PutSetting | Stmt::DeleteSetting => {}
        }
    }
    Ok(())
}

/// The number of the last log record the tables hold.
fn folded_seq(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT folded FROM oplog", [], |r| r.get::<_, i64>(0))
        .map(|v| v as u64)
}

/// A write refused because the store was closed (`Store::close`).
fn closed_error(what: &str) -> StoreError {
    (
        hr::E_INVALID_STATE,
        format!("state database: {what}: the manager was closed"),
    )
}

impl SqliteStore {
    fn check_open(&self, what: &str) -> Result<(), StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(closed_error(what));
        }
        Ok(())
    }

    /// Runs `f` in one transaction, after the log's waiting records (so what the tables hold is
    /// always a prefix of the calls, in order); any error rolls it all back and the records wait
    /// for the next try.
    ///
    /// BEGIN and COMMIT are cached statements: rusqlite's `Transaction` parses both anew each
    /// time, which was a tenth of the cost of creating a job.
    fn transaction(
        &self,
        what: &str,
        f: &dyn Fn(&Connection) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        self.check_open(what)?;
        let conn = self.conn.lock();
        // A log past its size is emptied by this fold: appends wait for it and one sync.
        let mut held = None;
        let taken = match &self.log {
            Some(log) => {
                let mut inner = log.inner.lock();
                let taken = std::mem::take(&mut inner.waiting);
                if !taken.is_empty() {
                    inner.drop_mapping();
                }
                if inner.len >= oplog::TRUNCATE_AT {
                    held = Some(inner);
                }
                taken
            }
            None => Vec::new(),
        };
        let (records, _) = oplog::records(&taken);
        let run = |careful: bool| -> rusqlite::Result<()> {
            conn.prepare_cached("BEGIN")?.execute([])?;
            run_records(&conn, &records, careful)?;
            f(&conn)?;
            conn.prepare_cached("COMMIT")?.execute([]).map(|_| ())
        };
        let rollback = || {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        };
        let mut result = run(false);
        if result.is_err() && !records.is_empty() {
            rollback();
            result = run(true);
        }
        match result {
            Ok(()) => {
                if let Some(mut inner) = held {
                    // Best effort: a log that stays is only longer (its records are folded).
                    if self.sync_tables().is_ok() {
                        let _ = inner.truncate();
                    }
                }
                Ok(())
            }
            Err(e) => {
                rollback();
                drop(records);
                if let Some(log) = &self.log {
                    match held {
                        Some(mut inner) => inner.put_back(taken),
                        None => log.inner.lock().put_back(taken),
                    }
                    log.wake();
                }
                Err(db_error(what, e))
            }
        }
    }

    /// A write: appended to the log (a writer), or run in a transaction of its own (read-only).
    fn write(
        &self,
        what: &str,
        steps: &dyn Fn(&mut dyn Steps) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let Some(log) = &self.log else {
            return self.transaction(what, &|tx| steps(&mut Run(tx)));
        };
        log.append(|enc| steps(enc)).map_err(|e| match e {
            AppendError::Closed => closed_error(what),
            AppendError::Encode(e) => db_error(what, e),
            AppendError::Io(e) => (
                hr::from_io(&e),
                format!("state database: {what}: operation log: {e}"),
            ),
        })
    }

    /// Writes a whole record, files included, replacing what was stored under its id: for tests
    /// and repair tools. The manager never calls it (see the module doc of `store`). A stored job
    /// keeps its creation order; a new one takes `job.seq`, or the next free one if that is 0
    /// (a record made by hand) or taken. Finding the id is a scan: fine for a tool, which is why
    /// the manager never needs it.
    pub fn save(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.transaction("save", &|tx| {
            let w = &mut Run(tx);
            let id = job.id.as_bytes().as_slice();
            let stored: Option<i64> = tx
                .query_row("SELECT seq FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let mut rec = job.clone();
            if let Some(seq) = stored {
                rec.seq = seq as u64;
                update_job(w, &rec)?;
                tx.execute("DELETE FROM files WHERE job_seq = ?1", [seq])?;
                return insert_files(w, &rec, 0);
            }
            let taken = rec.seq == 0
                || tx
                    .query_row(
                        "SELECT 1 FROM jobs WHERE seq = ?1",
                        [rec.seq as i64],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
            if taken {
                let last: i64 =
                    tx.query_row("SELECT coalesce(max(seq), 0) FROM jobs", [], |r| r.get(0))?;
                rec.seq = last as u64 + 1;
            }
            insert_job(w, &rec)
        })
    }
}

fn insert_job(w: &mut dyn Steps, job: &JobRecord) -> rusqlite::Result<()> {
    w.step(Stmt::InsertJob, &|b| bind_job(b, job, true))?;
    insert_files(w, job, 0)
}

fn insert_files(w: &mut dyn Steps, job: &JobRecord, from: usize) -> rusqlite::Result<()> {
    for (i, f) in job.files.iter().enumerate().skip(from) {
        w.step(Stmt::InsertFile, &|b| bind_file(b, job.seq, i, f))?;
    }
    Ok(())
}

fn update_job(w: &mut dyn Steps, job: &JobRecord) -> rusqlite::Result<()> {
    w.step(Stmt::UpdateJob, &|b| bind_job(b, job, false))
}

/// The values of `Stmt::UpdateFileNames`, in its parameters' order.
fn bind_file_names(
    b: &mut dyn Bind,
    job_seq: u64,
    idx: usize,
    f: &FileRecord,
) -> rusqlite::Result<()> {
    b.put(c":remote_url", &f.remote_url)?;
    b.put(c":local_path", &f.local_path)?;
    b.put(c":temp_path", &f.temp_path)?;
    b.put(c":committed", f.committed)?;
    b.put(c":upload_session", &f.extras().upload_session)?;
    bind_reply(b, f)?;
    b.put(c":job_seq", job_seq as i64)?;
    b.put(c":idx", idx as u32)
}

/// From this many jobs on, `load_all` reads the files beside the jobs: below it a second
/// connection (its open and its own schema parse) costs more than it saves.
const PARALLEL_LOAD_AT: usize = 4096;

/// Every job, in creation order, without files.
fn read_jobs(conn: &Connection, count: usize) -> Result<Vec<JobRecord>, StoreError> {
    let mut jobs: Vec<JobRecord> = Vec::with_capacity(count);
    let mut st = conn
        .prepare(&sql().select_jobs)
        .map_err(|e| db_error("load", e))?;
    let mut owners = Owners::default();
    let rows = st
        .query_map([], |row| decode_job(row, &mut owners))
        .map_err(|e| db_error("load", e))?;
    for job in rows {
        jobs.push(job.map_err(|e| db_error("load jobs", e))?);
    }
    Ok(jobs)
}

/// Every file with its job's number, in creation order (the jobs', then the files' within).
fn each_file(conn: &Connection, mut f: impl FnMut(u64, FileRecord)) -> Result<(), StoreError> {
    let mut st = conn
        .prepare(&sql().select_files)
        .map_err(|e| db_error("load", e))?;
    let mut rows = st.query([]).map_err(|e| db_error("load", e))?;
    while let Some(row) = rows.next().map_err(|e| db_error("load files", e))? {
        let seq = row
            .get::<_, i64>(0)
            .map_err(|e| db_error("load files", e))? as u64;
        f(
            seq,
            decode_file(row).map_err(|e| db_error("load files", e))?,
        );
    }
    Ok(())
}

/// Gives a file to its job. Jobs and files both come in creation order: a merge join, with no
/// index to build; `at` is where the last file's job was.
fn attach(jobs: &mut [JobRecord], at: &mut usize, seq: u64, file: FileRecord) {
    while *at < jobs.len() && jobs[*at].seq < seq {
        *at += 1;
    }
    let Some(job) = jobs.get_mut(*at).filter(|j| j.seq == seq) else {
        return; // a file without its job: only a foreign writer could leave one
    };
    // A vector's first push makes room for 4 files; most jobs have one, and a queue of 100,000
    // jobs would keep 50 MiB of that room for ever. Later pushes double (and are trimmed by
    // `load_all`), so a job of many files is not copied once per file.
    if job.files.is_empty() {
        job.files.reserve_exact(1);
    }
    job.files.push(file);
}

impl Store for SqliteStore {
    /// Every job with its files, in creation order.
    /// A large queue's files are read on a second connection while this one reads the jobs:
    /// both are scans of a table, and the writer's lock held meanwhile keeps them one snapshot
    /// (no other connection writes this database: the folder's lock says so).
    fn load_all(&self) -> Result<Vec<JobRecord>, StoreError> {
        self.fold()?;
        let conn = self.conn.lock();
        // Sized up front: growing a vector of 100,000 records by doubling copies it 17 times.
        let count: i64 = conn
            .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
            .map_err(|e| db_error("load", e))?;
        let count = count.max(0) as usize;
        let mut jobs = if count >= PARALLEL_LOAD_AT && self.log.is_some() {
            std::thread::scope(|scope| {
                let beside = scope.spawn(|| {
                    let files = open_beside(&self.path, "loading files")?;
                    let mut all = Vec::with_capacity(count);
                    each_file(&files, |seq, file| all.push((seq, file)))?;
                    Ok::<_, StoreError>(all)
                });
                let jobs = read_jobs(&conn, count);
                let files = beside.join().unwrap_or_else(|_| {
                    Err((
                        hr::E_FAIL,
                        "state database: load files: the reader failed".into(),
                    ))
                });
                let mut jobs = jobs?;
                let mut at = 0;
                for (seq, file) in files? {
                    attach(&mut jobs, &mut at, seq, file);
                }
                Ok::<_, StoreError>(jobs)
            })?
        } else {
            let mut jobs = read_jobs(&conn, count)?;
            let mut at = 0;
            each_file(&conn, |seq, file| attach(&mut jobs, &mut at, seq, file))?;
            jobs
        };
        for j in jobs.iter_mut().filter(|j| j.files.len() > 1) {
            j.files.shrink_to_fit();
        }
        // The scan filled the page cache with every page of both tables; later writes touch
        // only the newest pages, so give the rest back (best effort: only memory is at stake).
        let _ = conn.execute_batch("PRAGMA shrink_memory");
        Ok(jobs)
    }

    fn insert(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.write("add job", &|w| insert_job(w, job))
    }

    fn update_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.write("save job", &|w| update_job(w, job))
    }

    fn append_files(&self, job: &JobRecord, from: usize) -> Result<(), StoreError> {
        self.write("add files", &|w| {
            update_job(w, job)?;
            insert_files(w, job, from)
        })
    }

    fn update_files(&self, job: &JobRecord, files: &[usize]) -> Result<(), StoreError> {
        self.write("save files", &|w| {
            update_job(w, job)?;
            for &i in files {
                let Some(f) = job.files.get(i) else { continue };
                w.step(Stmt::UpdateFileNames, &|b| {
                    bind_file_names(b, job.seq, i, f)
                })?;
            }
            Ok(())
        })
    }

    fn remove(&self, jobs: &[u64]) -> Result<(), StoreError> {
        self.write("remove job", &|w| {
            for &seq in jobs {
                w.step(Stmt::DeleteJob, &|b| b.put(c":seq", seq as i64))?;
            }
            Ok(())
        })
    }

    fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.fold()?;
        self.conn
            .lock()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| db_error("read a setting", e))
    }

    fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.write("save a setting", &|w| match value {
            Some(v) => w.step(Stmt::PutSetting, &|b| {
                b.put(c":key", key)?;
                b.put(c":value", v)
            }),
            None => w.step(Stmt::DeleteSetting, &|b| b.put(c":key", key)),
        })
    }

    fn fold(&self) -> Result<(), StoreError> {
        let Some(log) = &self.log else { return Ok(()) };
        if log.inner.lock().waiting.is_empty() {
            return Ok(());
        }
        self.transaction("fold the operation log", &|_| Ok(()))
    }

    fn on_unfolded(&self, wake: Box<dyn Fn() + Send + Sync>) {
        if let Some(log) = &self.log {
            log.set_waker(wake);
        }
    }

    fn close(&self) -> Result<(), StoreError> {
        let folded = self.fold_and_empty();
        self.shut();
        folded
    }

    fn checkpoint(&self, points: &[Checkpoint], jobs: &[JobRecord]) -> Result<(), StoreError> {
        // The newest checkpoint of each job moves its row: one row write per job, however many
        // of its files the batch holds.
        let mut latest: Vec<(u64, u64, JobState)> = Vec::new();
        {
            let mut at: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
            for p in points {
                let i = *at.entry(p.seq).or_insert_with(|| {
                    latest.push((p.seq, 0, p.state));
                    latest.len() - 1
                });
                if p.at_ms >= latest[i].1 {
                    latest[i] = (p.seq, p.at_ms, p.state);
                }
            }
        }
        self.write("checkpoint", &|w| {
            for p in points {
                w.step(Stmt::Checkpoint, &|b| {
                    b.put(c":bytes", p.bytes as i64)?;
                    b.put(c":total", p.total.map(|v| v as i64))?;
                    b.put(c":etag", &p.etag)?;
                    b.put(c":last_modified", &p.last_modified)?;
                    b.put(c":completed", p.completed)?;
                    b.put(c":temp_path", &p.temp)?;
                    b.put(c":job_seq", p.seq as i64)?;
                    b.put(c":idx", p.file)
                })?;
            }
            for &(seq, at, state) in &latest {
                w.step(Stmt::JobProgress, &|b| {
                    b.put(c":at", at as i64)?;
                    b.put(c":state", state as i32)?;
                    b.put(c":seq", seq as i64)
                })?;
            }
            for j in jobs {
                w.step(Stmt::UpdateJobUnlessNewer, &|b| bind_job(b, j, false))?;
            }
            Ok(())
        })
    }
}

impl Drop for SqliteStore {
    /// Folds and empties the log, so the next open has nothing to run (best effort: whatever
    /// stays is run then). Not after `close`: the folder may have another holder by now.
    fn drop(&mut self) {
        if !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.fold_and_empty();
        }
    }
}

impl SqliteStore {
    /// Folds what waits and, if nothing arrived meanwhile (a call that slipped in stays in the
    /// file for the next open), empties the log after syncing the tables. Returns the fold's
    /// result; emptying is best effort (a log that stays is only longer).
    fn fold_and_empty(&self) -> Result<(), StoreError> {
        self.fold()?;
        let Some(log) = &self.log else { return Ok(()) };
        let mut inner = log.inner.lock();
        if inner.len > 0 && inner.waiting.is_empty() && self.sync_tables().is_ok() {
            let _ = inner.truncate();
        }
        Ok(())
    }

    /// The stored schema version (for tests and diagnostics).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| db_error("version", e))
    }

    /// Whether a job is stored (for tests).
    pub fn contains(&self, id: &JobId) -> Result<bool, StoreError> {
        self.fold()?;
        self.conn
            .lock()
            .query_row(
                "SELECT 1 FROM jobs WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| db_error("lookup", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::now_ms;

    fn full_record() -> JobRecord {
        let mut j = JobRecord::new(
            JobId::new_v4(),
            JobType::Download,
            "name ✓".into(),
            1_700_000_000_000,
        );
        j.seq = 41;
        j.description = "desc".into();
        j.owner = "someone".into();
        j.priority = Priority::High;
        j.state = JobState::TransientError;
        j.minimum_retry_delay_s = 7;
        j.no_progress_timeout_s = 9;
        j.modified_ms = 1_700_000_000_500;
        j.transfer_completed_ms = NonMaxU64::new(1_700_000_000_900);
        j.error_count = 3;
        j.retry_at_ms = NonMaxU64::new(1_700_000_001_000);
        j.no_progress_since_ms = NonMaxU64::new(1_700_000_000_100);
        j.settling = Some(Settle::Completing);
        j.notify_flags = 0x1B;
        j.min_notification_interval_ms = 1234;
        j.set_extras(|e| {
            *e = JobExtras {
                custom_headers: Some("X-A: 1\r\nX-B: two\r\n".into()),
                notify_program: Some("/bin/echo".into()),
                notify_parameters: Some("/bin/echo \"done now\"".into()),
                proxy_list: Some("proxy.example:3128".into()),
                proxy_bypass: Some("<local>;*.example".into()),
                max_bandwidth: 4_000_000,
                transfer_policy: Some(crate::job::TRANSFER_POLICY_UNRESTRICTED),
                reply_file_name: Some("/d/reply ✓.bin".into()),
                custom_headers_write_only: true,
                trusted_roots: Some("/etc/roots.pem".into()),
                client_certificate: Some("/etc/client.pem".into()),
                client_key: Some("/etc/client.key".into()),
                crl_file: Some("/etc/crl.pem".into()),
                certificate_callback_required: true,
            }
        });
        j.security_flags = 0x0900;
        j.dynamic_content = true;
        j.max_download_size = NonMaxU64::new(1 << 40);
        j.max_download_time_s = 99;
        j.active_ms = 12_345;
        j.resumed_once = true;
        j.proxy_usage = 2;
        j.error = Some(Box::new(JobError {
            context: ErrorContext::RemoteFile,
            code: HResult::http(503),
            description: "HTTP 503 Service Unavailable: http://h/x".into(),
            file_index: Some(1),
        }));
        let mut a = FileRecord::new("http://h/a".into(), "/d/a".into());
        a.temp_path = Some("/d/BIT0.tmp".into());
        a.bytes_total = NonMaxU64::new(100);
        a.bytes_transferred = 100;
        a.bytes_checkpointed = 100;
        a.completed = true;
        a.committed = true;
        a.set_extras(|e| {
            e.upload_session = Some("{2C5D3F6A-0000-4000-8000-000000000000}".into());
            e.reply = Some(Reply {
                url: "http://h/BITS-Sessions/Replies/%7B1%7D/r.bin".into(),
                total: Some(1 << 33),
                received: 77,
            });
        });
        a.etag = Some("\"e\"".into());
        a.last_modified = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
        let mut b = FileRecord::new("http://h/b".into(), "/d/b".into());
        b.bytes_total = NonMaxU64::new(u64::MAX - 1);
        b.bytes_transferred = 40;
        b.bytes_checkpointed = 40;
        b.set_extras(|e| {
            e.ranges = Some(Box::new([
                FileRange {
                    offset: 5,
                    length: 10,
                },
                FileRange {
                    offset: 100,
                    length: LENGTH_TO_EOF,
                },
            ]))
        });
        j.files = vec![a, b];
        j
    }

    #[test]
    fn round_trip_of_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let j = full_record();
        store.save(&j).unwrap();
        let mut plain = JobRecord::new(JobId::new_v4(), JobType::Download, String::new(), now_ms());
        plain.seq = j.seq + 1;
        plain
            .files
            .push(FileRecord::new("file:///x".into(), "/y".into()));
        store.save(&plain).unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        let in_order = || {
            let mut all = store.load_all().unwrap();
            all.sort_by_key(|j| j.seq);
            all
        };
        assert_eq!(in_order(), vec![j.clone(), plain.clone()]);
        // Saving again replaces, files included; creation order is kept.
        let mut j2 = j.clone();
        j2.files.pop();
        j2.state = JobState::Suspended;
        store.save(&j2).unwrap();
        assert_eq!(in_order(), vec![j2, plain.clone()]);
        store.remove(&[j.seq]).unwrap();
        assert_eq!(in_order(), vec![plain]);
    }

    /// The writes the manager uses, each checked against a record whose every field differs from
    /// a new job's: a field that `update_job`, `append_files` or `checkpoint` forgets fails here.
    #[test]
    fn incremental_writes_store_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let full = full_record();
        let mut fresh = JobRecord::new(full.id, JobType::Download, String::new(), 1);
        fresh.seq = full.seq; // creation order is written once, by the insert
        store.insert(&fresh).unwrap();
        let reload = || store.load_all().unwrap().remove(0);
        assert_eq!(reload(), fresh);

        // The job's row alone: every job-level field, and the files stay as they are (none).
        let mut head = full.clone();
        head.files.clear();
        store.update_job(&head).unwrap();
        assert_eq!(reload(), head);

        // Files appended, one at a time and as a set: every file column.
        let mut with_files = head.clone();
        with_files.files.push(full.files[0].clone());
        store.append_files(&with_files, 0).unwrap();
        with_files.files.push(full.files[1].clone());
        store.append_files(&with_files, 1).unwrap();
        assert_eq!(reload(), full);

        // update_files writes names, temporary file and committed, never progress.
        let mut renamed = full.clone();
        renamed.files[1].remote_url = "http://h/b2".into();
        renamed.files[1].local_path = "/d/b2".into();
        renamed.files[1].temp_path = Some("/d/BIT1.tmp".into());
        renamed.files[1].committed = true;
        renamed.files[1].set_extras(|e| {
            e.upload_session = Some("{2C5D3F6A-0000-4000-8000-000000000001}".into());
            e.reply = Some(Reply {
                url: "http://h/reply".into(),
                total: None,
                received: 3,
            });
        });
        let mut claimed = renamed.clone();
        claimed.files[1].bytes_checkpointed = 999;
        claimed.files[1].bytes_transferred = 999;
        claimed.files[1].completed = true;
        store.update_files(&claimed, &[1]).unwrap();
        assert_eq!(reload(), renamed);

        // Checkpoints write progress, completion included, and the job's modification time.
        let done = Checkpoint {
            job: full.id,
            seq: full.seq,
            file: 1,
            bytes: 1234,
            total: Some(1234),
            etag: Some("\"z\"".into()),
            last_modified: Some("Thu, 01 Jan 2026 00:00:00 GMT".into()),
            completed: true,
            at_ms: 1_900_000_000_000,
            temp: Some("/d/BITdone.tmp".into()),
            state: JobState::Transferring,
        };
        store.checkpoint(&[done], &[]).unwrap();
        let f = &mut renamed.files[1];
        f.temp_path = Some("/d/BITdone.tmp".into());
        (f.bytes_checkpointed, f.bytes_transferred, f.bytes_total) =
            (1234, 1234, NonMaxU64::new(1234));
        f.completed = true;
        f.etag = Some("\"z\"".into());
        f.last_modified = Some("Thu, 01 Jan 2026 00:00:00 GMT".into());
        renamed.modified_ms = 1_900_000_000_000;
        assert_eq!(reload(), renamed);

        fresh.id = JobId::new_v4();
        fresh.seq += 1;
        store.insert(&fresh).unwrap();
        store.remove(&[full.seq, fresh.seq]).unwrap();
        assert!(store.load_all().unwrap().is_empty());
    }

    /// What each write costs in rows does not depend on the size of the job: appending to a job
    /// of 2,000 files and checkpointing one of them change one or two rows.
    #[test]
    fn writes_touch_only_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut j = JobRecord::new(JobId::new_v4(), JobType::Download, "big".into(), 1);
        store.insert(&j).unwrap();
        for i in 0..2000 {
            j.files
                .push(FileRecord::new(format!("http://h/{i}"), format!("/d/{i}")));
        }
        store.append_files(&j, 0).unwrap();
        store.fold().unwrap();
        // Rows changed by a write, once folded; a fold also moves the log's position (one row).
        let changes = |f: &dyn Fn()| {
            let conn = store.conn.lock();
            let before = conn.total_changes();
            drop(conn);
            f();
            store.fold().unwrap();
            store.conn.lock().total_changes() - before
        };
        j.files
            .push(FileRecord::new("http://h/last".into(), "/d/last".into()));
        assert_eq!(changes(&|| store.append_files(&j, 2000).unwrap()), 2 + 1);
        j.state = JobState::Queued;
        assert_eq!(changes(&|| store.update_job(&j).unwrap()), 1 + 1);
        j.files[7].temp_path = Some("/d/BIT7.tmp".into());
        assert_eq!(changes(&|| store.update_files(&j, &[7]).unwrap()), 2 + 1);
        let p = Checkpoint {
            job: j.id,
            seq: j.seq,
            file: 7,
            bytes: 5,
            total: None,
            etag: None,
            last_modified: None,
            completed: false,
            at_ms: 2,
            temp: j.files[7].temp_path.clone(),
            state: j.state,
        };
        // The file's row and the job's (its modification time), through the log like the rest.
        assert_eq!(
            changes(&|| store.checkpoint(std::slice::from_ref(&p), &[]).unwrap()),
            2 + 1
        );
        assert_eq!(store.load_all().unwrap()[0].files.len(), 2001);
    }

    /// A queue past `PARALLEL_LOAD_AT` reads its files on a second connection (and, opened as the
    /// manager opens it, checks itself on a third): every job gets
    /// exactly its own files, in order, whatever their number (none, one, several), and jobs
    /// removed between leave no file behind.
    #[test]
    fn a_large_queue_loads_its_files_beside_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let n = PARALLEL_LOAD_AT as u64 * 7 / 6 + 100;
        let files_of = |seq: u64| (seq % 4) as usize; // 0, 1, 2 or 3 files
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            for seq in 1..=n {
                let mut j = job(seq, &format!("j{seq}"));
                store.insert(&j).unwrap();
                for i in 0..files_of(seq) {
                    j.files.push(FileRecord::new(
                        format!("http://h/{seq}/{i}"),
                        format!("/d/{seq}.{i}"),
                    ));
                }
                if !j.files.is_empty() {
                    store.append_files(&j, 0).unwrap();
                }
            }
            let gone: Vec<u64> = (1..=n).filter(|s| s % 7 == 0).collect();
            store.remove(&gone).unwrap();
        }
        // As the manager opens: the integrity check and the files' reader both beside the jobs'.
        let (_store, all) = SqliteStore::open_and_load(dir.path()).unwrap();
        let kept: Vec<u64> = (1..=n).filter(|s| s % 7 != 0).collect();
        assert_eq!(all.iter().map(|j| j.seq).collect::<Vec<_>>(), kept);
        assert!(
            all.len() >= PARALLEL_LOAD_AT,
            "the test must take the parallel path"
        );
        for j in &all {
            assert_eq!(j.display_name.as_ref(), format!("j{}", j.seq));
            let urls: Vec<String> = j.files.iter().map(|f| f.remote_url.to_string()).collect();
            let want: Vec<String> = (0..files_of(j.seq))
                .map(|i| format!("http://h/{}/{i}", j.seq))
                .collect();
            assert_eq!(urls, want, "job {}", j.seq);
        }
    }

    #[test]
    fn checkpoints_update_progress_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let j = full_record();
        store.save(&j).unwrap();
        let p = Checkpoint {
            job: j.id,
            seq: j.seq,
            file: 1,
            bytes: 77,
            total: Some(1000),
            etag: Some("\"n\"".into()),
            last_modified: None,
            completed: false,
            at_ms: 1_800_000_000_000,
            temp: Some("/d/BITn.tmp".into()),
            state: JobState::Transferring,
        };
        let gone = Checkpoint {
            job: JobId::new_v4(),
            seq: 999,
            ..p.clone()
        };
        store.checkpoint(&[p, gone], &[]).unwrap();
        let back = &store.load_all().unwrap()[0];
        let f = &back.files[1];
        assert_eq!(
            (
                f.bytes_checkpointed,
                f.bytes_transferred,
                f.bytes_total.map(|v| v.get()),
                f.etag.as_deref()
            ),
            (77, 77, Some(1000), Some("\"n\""))
        );
        assert_eq!(back.modified_ms, 1_800_000_000_000);
    }

    #[test]
    fn a_checkpoint_moves_a_moving_jobs_state_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut j = full_record();
        j.state = JobState::Queued;
        store.save(&j).unwrap();
        let at = j.modified_ms;
        let point = |state| Checkpoint {
            job: j.id,
            seq: j.seq,
            file: 0,
            bytes: 10,
            total: None,
            etag: None,
            last_modified: None,
            completed: false,
            at_ms: at,
            temp: j.files[0].temp_path.clone(),
            state,
        };
        let stored = || store.load_all().unwrap()[0].state;
        store
            .checkpoint(&[point(JobState::Transferring)], &[])
            .unwrap();
        assert_eq!(stored(), JobState::Transferring);
        // A call wrote another state since (say, SUSPENDED): an older checkpoint leaves it.
        j.state = JobState::Suspended;
        j.modified_ms += 1;
        store.update_job(&j).unwrap();
        store
            .checkpoint(&[point(JobState::Transferring)], &[])
            .unwrap();
        assert_eq!(stored(), JobState::Suspended);
        // Nor a moving state a call wrote later (files added after TRANSFERRED: QUEUED).
        j.state = JobState::Queued;
        store.update_job(&j).unwrap();
        store
            .checkpoint(&[point(JobState::Transferring)], &[])
            .unwrap();
        assert_eq!(stored(), JobState::Queued);
    }

    /// An upload-reply's name is recorded by `update_files` while the checkpoint of its last
    /// acknowledgement (which knows no name) may still be on its way: the checkpoint keeps it.
    #[test]
    fn a_checkpoint_without_a_name_keeps_the_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut j = full_record();
        j.files[0].temp_path = Some("/d/BITreply.tmp".into());
        store.save(&j).unwrap();
        let p = Checkpoint {
            job: j.id,
            seq: j.seq,
            file: 0,
            bytes: 3,
            total: Some(3),
            etag: None,
            last_modified: None,
            completed: true,
            at_ms: j.modified_ms,
            temp: None,
            state: j.state,
        };
        store.checkpoint(&[p], &[]).unwrap();
        let back = store.load_all().unwrap().remove(0);
        assert_eq!(back.files[0].temp_path.as_deref(), Some("/d/BITreply.tmp"));
        assert_eq!(back.files[0].bytes_checkpointed, 3);
    }

    #[test]
    fn a_batch_writes_an_engine_row_unless_a_newer_row_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut j = full_record();
        store.save(&j).unwrap();
        let reload = || store.load_all().unwrap().remove(0);
        // The engine's row (every job-level field) lands with the batch.
        let mut done = j.head();
        done.state = JobState::Transferred;
        done.transfer_completed_ms = NonMaxU64::new(1_800_000_000_123);
        done.error = None;
        done.modified_ms = j.modified_ms + 1;
        store.checkpoint(&[], std::slice::from_ref(&done)).unwrap();
        done.files = j.files.clone();
        assert_eq!(reload(), done);
        // The application wrote a newer row (say, a file added: QUEUED again) before an older
        // engine row reached the store: the newer one stays.
        j.state = JobState::Queued;
        j.modified_ms = done.modified_ms + 5;
        store.update_job(&j).unwrap();
        let mut stale = done.head();
        stale.modified_ms = done.modified_ms + 4;
        store.checkpoint(&[], &[stale]).unwrap();
        assert_eq!(reload(), j);
    }

    #[test]
    fn migrates_from_the_first_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let id = JobId::new_v4();
        {
            let conn = Connection::open(&path).unwrap();
            migrate(&conn, 0, 1).unwrap();
            conn.execute(
                "INSERT INTO jobs VALUES (?1, 1, 0, 'old', 2, 3, 600, 1209600, 5, 6, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL)",
                [id.as_bytes().as_slice()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO files VALUES (?1, 0, 'http://h/x', '/d/x', NULL, 10, 4, 0, NULL, NULL, 0)",
                [id.as_bytes().as_slice()],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let jobs = store.load_all().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (
                &*jobs[0].display_name,
                &*jobs[0].description,
                jobs[0].settling
            ),
            ("old", "", None)
        );
        assert_eq!(
            (jobs[0].files[0].bytes_checkpointed, jobs[0].state),
            (4, JobState::Suspended)
        );
        // The files still belong to the jobs table (migration 9 rebuilt both): removing the
        // job removes them.
        store.remove(&[jobs[0].seq]).unwrap();
        store.fold().unwrap();
        let files: i64 = store
            .conn
            .lock()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(files, 0);
    }

    #[test]
    fn refuses_corrupt_and_foreign_files_without_touching_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let garbage = b"this is not a database, and it must stay exactly like this".repeat(100);
        std::fs::write(&path, &garbage).unwrap();
        let err = SqliteStore::open(dir.path()).err().unwrap();
        assert_eq!(err.0, hr::E_DATABASE_CORRUPT, "{}", err.1);
        assert_eq!(std::fs::read(&path).unwrap(), garbage);

        std::fs::remove_file(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE photos (x)")
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(dir.path()).err().unwrap();
        assert_eq!(err.0, hr::E_DATABASE_CORRUPT);
        assert!(err.1.contains("another program"), "{}", err.1);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    fn job(seq: u64, name: &str) -> JobRecord {
        let mut j = JobRecord::new(JobId::new_v4(), JobType::Download, name.into(), 1);
        j.seq = seq;
        j
    }

    fn names(store: &SqliteStore) -> Vec<String> {
        let mut jobs = store.load_all().unwrap();
        jobs.sort_by_key(|j| j.seq);
        jobs.iter().map(|j| j.display_name.to_string()).collect()
    }

    /// A process killed after its calls returned: the store is never dropped (no fold, no
    /// emptying of the log), and the tables do not hold the calls.
    fn killed(store: SqliteStore) {
        std::mem::forget(store);
    }

    /// Where the log's records end: the file may be longer (zeros allocated ahead).
    fn log_end(log: &Path) -> usize {
        oplog::records(&std::fs::read(log).unwrap()).1
    }

    /// Calls that returned are in the log before they are in the tables, and a crash keeps
    /// them: the next open runs them, in order, and empties the log.
    #[test]
    fn a_crash_keeps_every_call_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut a = job(1, "a");
        store.insert(&a).unwrap();
        a.files
            .push(FileRecord::new("http://h/a".into(), "/d/a".into()));
        store.append_files(&a, 0).unwrap();
        a.description = "second write".into();
        store.update_job(&a).unwrap();
        store.insert(&job(2, "b")).unwrap();
        store.remove(&[2]).unwrap();
        store.set_setting("k", Some("v")).unwrap();
        let raw = |store: &SqliteStore| -> i64 {
            store
                .conn
                .lock()
                .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(raw(&store), 0, "nothing folded yet");
        assert!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() > 0);
        killed(store);

        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(raw(&store), 1);
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(),
            0
        );
        let jobs = store.load_all().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(&*jobs[0].description, "second write");
        assert_eq!(jobs[0].files.len(), 1);
        assert_eq!(store.setting("k").unwrap().as_deref(), Some("v"));
        // Numbering goes on after what the log held: a new call after a restart is not taken
        // for one already run.
        store.insert(&job(3, "c")).unwrap();
        killed(store);
        assert_eq!(names(&SqliteStore::open(dir.path()).unwrap()), ["a", "c"]);
    }

    /// Records already folded are never run twice, even when the log still holds them (a crash
    /// after a fold, before the log was emptied): an insert run again would fail, an update run
    /// again would undo a later write.
    #[test]
    fn folded_records_are_not_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut a = job(1, "a");
        store.insert(&a).unwrap();
        a.description = "old".into();
        store.update_job(&a).unwrap();
        store.fold().unwrap();
        // Written straight to the tables after the fold: what a checkpoint batch does.
        store
            .conn
            .lock()
            .execute("UPDATE jobs SET description = 'newer'", [])
            .unwrap();
        // And a call after it, which the next open must run.
        store.insert(&job(2, "b")).unwrap();
        killed(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(names(&store), ["a", "b"]);
        assert_eq!(&*store.load_all().unwrap()[0].description, "newer");
    }

    /// A record cut short (a kill inside a large write, which returned nothing to its caller)
    /// or damaged ends the log: what came before it is run, nothing after it.
    #[test]
    fn a_torn_or_damaged_record_ends_the_log() {
        for damage in ["cut", "flip"] {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path()).unwrap();
            let log = dir.path().join(LOG_FILE);
            store.insert(&job(1, "a")).unwrap();
            let first = log_end(&log);
            store.insert(&job(2, "b")).unwrap();
            let second = log_end(&log);
            store.insert(&job(3, "c")).unwrap();
            killed(store);
            let mut bytes = std::fs::read(&log).unwrap();
            match damage {
                "cut" => bytes.truncate(second as usize - 5),
                _ => bytes[first as usize + 20] ^= 0x40,
            }
            std::fs::write(&log, &bytes).unwrap();
            assert_eq!(
                names(&SqliteStore::open(dir.path()).unwrap()),
                ["a"],
                "{damage}"
            );
        }
    }

    /// A log cut at any byte (a kill inside a write, or a power cut) opens: the jobs are the
    /// calls whose records are whole, in order.
    #[test]
    fn a_log_cut_anywhere_opens_with_the_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let log = dir.path().join(LOG_FILE);
        let mut ends = Vec::new();
        for (seq, name) in [(1, "a"), (2, "b"), (3, "c")] {
            store.insert(&job(seq, name)).unwrap();
            ends.push(log_end(&log));
        }
        killed(store);
        let bytes = std::fs::read(&log).unwrap();
        let db = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        // Every cut inside the records, and the whole file (with what was allocated past them).
        let cuts = (0..=ends[2]).step_by(5).chain([bytes.len()]);
        for cut in cuts {
            let copy = tempfile::tempdir().unwrap();
            std::fs::write(copy.path().join(DB_FILE), &db).unwrap();
            std::fs::write(copy.path().join(LOG_FILE), &bytes[..cut]).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            let want = &["a", "b", "c"][..whole];
            assert_eq!(
                names(&SqliteStore::open(copy.path()).unwrap()),
                want,
                "cut at {cut}"
            );
        }
    }

    /// A record the database refuses (a file of a job that is not there: only a bug can write
    /// one) does not make every later open fail: the next open skips it, as a fold would, and
    /// runs the calls around it.
    #[test]
    fn an_open_skips_a_record_the_database_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.insert(&job(1, "a")).unwrap();
        let mut ghost = job(7, "ghost");
        ghost
            .files
            .push(FileRecord::new("http://h/g".into(), "/d/g".into()));
        store.append_files(&ghost, 0).unwrap();
        store.insert(&job(2, "b")).unwrap();
        killed(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(names(&store), ["a", "b"]);
    }

    /// A fold leaves out the steps later ones replace: a one-file job created, given its file
    /// and resumed runs two statements (the insert with the newest row, the file), and a job
    /// created and removed within one fold runs none.
    #[test]
    fn a_fold_runs_only_the_steps_that_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut a = job(1, "a");
        store.insert(&a).unwrap();
        a.no_progress_timeout_s = 0;
        store.update_job(&a).unwrap();
        a.files
            .push(FileRecord::new("http://h/a".into(), "/d/a".into()));
        store.append_files(&a, 0).unwrap();
        a.state = JobState::Queued;
        store.update_job(&a).unwrap();
        let counted = |dir: &Path| -> Vec<fold::Action> {
            let bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
            let (records, _) = oplog::records(&bytes);
            fold::plan(records.iter())
                .into_iter()
                .map(|(_, a)| a)
                .collect()
        };
        use fold::Action::{InsertWith, Run, Skip};
        // insert, update, (update, file), update
        assert_eq!(counted(dir.path()), [InsertWith(4), Skip, Skip, Run, Skip]);
        store.remove(&[1]).unwrap();
        assert_eq!(counted(dir.path()), [Skip; 6]);
        store.insert(&job(2, "b")).unwrap();
        store.fold().unwrap();
        assert_eq!(names(&store), ["b"]);
    }

    /// Whatever a fold leaves out, the tables end as if every call had been folded on its own:
    /// a few hundred calls and checkpoint batches on a few jobs, folded at uneven points, against
    /// the same writes folded one by one. A reader beside the holder, which applies the log's
    /// records in memory, sees the same before each fold.
    #[test]
    fn a_fold_ends_as_every_step_would() {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (batched, one_by_one) = (
            SqliteStore::open(dir_a.path()).unwrap(),
            SqliteStore::open(dir_b.path()).unwrap(),
        );
        let reader = SqliteStore::open_read_only(dir_a.path()).unwrap();
        let by_seq = |mut v: Vec<JobRecord>| {
            v.sort_by_key(|j| j.seq);
            v
        };
        let mut jobs: Vec<Option<JobRecord>> = vec![None; 5];
        let mut next_seq = 1;
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut roll = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let (mut checkpoints, mut rows) = (0, 0);
        // `next_seq` counts created jobs, not steps: only a step that lands on an empty place
        // creates one.
        #[allow(clippy::explicit_counter_loop)]
        for step in 0..600 {
            let k = roll(jobs.len() as u64) as usize;
            let Some(j) = &mut jobs[k] else {
                let mut j = job(next_seq, &format!("job {next_seq}"));
                next_seq += 1;
                if roll(2) == 0 {
                    j.files
                        .push(FileRecord::new("http://h/first".into(), "/d/first".into()));
                }
                for store in [&batched, &one_by_one] {
                    store.insert(&j).unwrap();
                }
                jobs[k] = Some(j);
                continue;
            };
            match roll(10) {
                0 => {
                    j.display_name = format!("{} {step}", j.display_name).into();
                    j.priority = [Priority::High, Priority::Low][roll(2) as usize];
                    j.modified_ms += 1;
                    for store in [&batched, &one_by_one] {
                        store.update_job(j).unwrap();
                    }
                }
                1 => {
                    j.files.push(FileRecord::new(
                        format!("http://h/{step}"),
                        format!("/d/{step}"),
                    ));
                    for store in [&batched, &one_by_one] {
                        store.append_files(j, j.files.len() - 1).unwrap();
                    }
                }
                2 if !j.files.is_empty() => {
                    let i = roll(j.files.len() as u64) as usize;
                    j.files[i].committed = !j.files[i].committed;
                    j.files[i].temp_path = Some(format!("/d/t{step}").into());
                    for store in [&batched, &one_by_one] {
                        store.update_files(j, &[i]).unwrap();
                    }
                }
                3..=5 => {
                    j.state = [
                        JobState::Queued,
                        JobState::Suspended,
                        JobState::Transferring,
                    ][roll(3) as usize];
                    j.settling = (roll(2) == 0).then_some(Settle::Completing);
                    j.modified_ms += 1;
                    for store in [&batched, &one_by_one] {
                        store.update_job(j).unwrap();
                    }
                }
                // A checkpoint batch: progress of some files, maybe the engine's row, at times
                // before or after the stored row's.
                6..=8 => {
                    let at = j.modified_ms + roll(3) - 1;
                    let chosen: Vec<usize> = (0..j.files.len()).filter(|_| roll(2) == 0).collect();
                    let points: Vec<Checkpoint> = chosen
                        .into_iter()
                        .map(|i| Checkpoint {
                            job: j.id,
                            seq: j.seq,
                            file: i as u32,
                            bytes: step,
                            total: (roll(2) == 0).then_some(step * 2),
                            etag: Some(format!("e{step}").into()),
                            last_modified: None,
                            completed: roll(2) == 0,
                            temp: (roll(2) == 0).then(|| format!("/d/c{step}").into()),
                            state: [JobState::Connecting, JobState::Transferring][roll(2) as usize],
                            at_ms: at,
                        })
                        .collect();
                    let mut row = j.clone();
                    row.state = JobState::Transferred;
                    row.modified_ms = at;
                    let engine_rows = if roll(2) == 0 { vec![row] } else { Vec::new() };
                    checkpoints += points.len();
                    rows += engine_rows.len();
                    for store in [&batched, &one_by_one] {
                        store.checkpoint(&points, &engine_rows).unwrap();
                    }
                    // The record as the store now holds it.
                    one_by_one.fold().unwrap();
                    let seq = j.seq;
                    let stored = one_by_one
                        .load_all()
                        .unwrap()
                        .into_iter()
                        .find(|r| r.seq == seq);
                    *j = stored.unwrap();
                }
                9 => {
                    for store in [&batched, &one_by_one] {
                        store.remove(&[j.seq]).unwrap();
                    }
                    jobs[k] = None;
                }
                _ => {}
            }
            one_by_one.fold().unwrap();
            let expected = by_seq(one_by_one.load_all().unwrap());
            assert_eq!(
                by_seq(reader.snapshot().unwrap()),
                expected,
                "the reader, step {step}"
            );
            if roll(37) == 0 {
                batched.fold().unwrap();
                assert_eq!(by_seq(batched.load_all().unwrap()), expected, "step {step}");
            }
        }
        assert!(
            checkpoints > 50 && rows > 10,
            "{checkpoints} checkpoints, {rows} rows"
        );
        let seen = by_seq(reader.snapshot().unwrap());
        batched.fold().unwrap();
        let all = by_seq(batched.load_all().unwrap());
        assert!(!all.is_empty() && all.iter().any(|j| j.files.len() > 1));
        assert_eq!(all, by_seq(one_by_one.load_all().unwrap()));
        assert_eq!(seen, all);
    }

    /// After `close` the store writes nothing: calls are refused with BITS_E_INVALID_STATE, and
    /// dropping it leaves the log as it was (another holder may own the folder by then).
    #[test]
    fn a_closed_store_refuses_writes_and_drops_without_touching_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.insert(&job(1, "a")).unwrap();
        store.close().unwrap();
        let log = dir.path().join(LOG_FILE);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        let (code, message) = store.insert(&job(2, "b")).unwrap_err();
        assert_eq!(code, hr::E_INVALID_STATE, "{message}");
        let (code, _) = store.checkpoint(&[], &[job(1, "a")]).unwrap_err();
        assert_eq!(code, hr::E_INVALID_STATE);
        // Bytes another holder appended meanwhile stay where they are.
        std::fs::write(&log, b"another holder's records").unwrap();
        drop(store);
        assert_eq!(std::fs::read(&log).unwrap(), b"another holder's records");
        assert_eq!(
            names(&SqliteStore::open_read_only(dir.path()).unwrap()),
            ["a"]
        );
    }

    /// A reader beside the holder stops at a gap in the log's numbering: what it read after a
    /// record it missed (the holder emptied the log and wrote again during the read) would
    /// apply to a state it never saw.
    #[test]
    fn a_reader_stops_at_a_gap_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let log = dir.path().join(LOG_FILE);
        let mut ends = vec![0];
        for (seq, name) in [(1, "a"), (2, "b"), (3, "c")] {
            store.insert(&job(seq, name)).unwrap();
            ends.push(log_end(&log));
        }
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let seen = |reader: &SqliteStore| -> Vec<String> {
            let jobs = reader.snapshot().unwrap();
            jobs.iter().map(|j| j.display_name.to_string()).collect()
        };
        assert_eq!(seen(&reader), ["a", "b", "c"]);
        let bytes = std::fs::read(&log).unwrap();
        std::fs::write(&log, [&bytes[..ends[1]], &bytes[ends[2]..]].concat()).unwrap();
        assert_eq!(seen(&reader), ["a"]);
        killed(store);
    }

    /// A closed store leaves nothing in its log, and every call in its tables.
    #[test]
    fn closing_folds_and_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.insert(&job(1, "a")).unwrap();
        drop(store);
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(),
            0
        );
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = SqliteStore::open(dir.path()).err().unwrap();
        assert_eq!(err.0.as_u32(), 0x8007_051A);
        assert!(err.1.contains("newer"), "{}", err.1);
        let v: i64 = Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION + 1, "not downgraded");
    }

    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.save(&full_record()).unwrap();
        assert_eq!(
            std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
