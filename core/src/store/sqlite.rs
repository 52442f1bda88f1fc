//! The durable store: one SQLite database (`openbits.db`, mode 0600) in the state folder.
//!
//! - WAL journal with `synchronous = NORMAL`: every committed transaction survives the process
//!   being killed at any instant; a power cut can lose the last commits but never corrupts the
//!   database. (FULL would fsync every create and could not meet 10,000 creates in 2 s.)
//! - The schema version lives in `PRAGMA user_version`; `MIGRATIONS` brings any older database
//!   forward, each step in its own transaction. A newer database is refused, never downgraded.
//! - A file that is not an openbits database (not SQLite, corrupt, or another program's tables)
//!   is refused with BITS_E_DATABASE_CORRUPT and left untouched.

use super::{Checkpoint, Store, StoreError};
use crate::hresult::{self as hr, HResult};
use crate::job::{FileRange, FileRecord, JobError, JobId, JobRecord, Settle, LENGTH_TO_EOF};
use crate::state::{ErrorContext, JobState, JobType, Priority};
use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

pub const DB_FILE: &str = "openbits.db";

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
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
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
        Self::check_and_migrate(&conn, &path)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| db_error("foreign_keys", e))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Everything that reads the file before anything writes it: a foreign or broken file is
    /// refused before WAL mode or a migration could change it.
    fn check_and_migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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
        if version > 0 {
            let check: String = conn
                .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
                .map_err(|_| corrupt(path, "integrity check failed"))?;
            if check != "ok" {
                return Err(corrupt(path, &format!("integrity check: {check}")));
            }
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_error("journal_mode", e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_error("synchronous", e))?;
        migrate(conn, version, SCHEMA_VERSION)
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

fn opt_u64(v: Option<i64>) -> Option<u64> {
    v.map(|x| x as u64)
}

fn decode_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let id: Vec<u8> = row.get("id")?;
    let bad = |what: &str| {
        rusqlite::Error::InvalidColumnType(0, what.to_string(), rusqlite::types::Type::Integer)
    };
    let id = JobId::from_slice(&id).map_err(|_| bad("id"))?;
    let job_type = JobType::from_i32(row.get("job_type")?).ok_or_else(|| bad("job_type"))?;
    let priority = Priority::from_i32(row.get("priority")?).ok_or_else(|| bad("priority"))?;
    let state = JobState::from_i32(row.get("state")?).ok_or_else(|| bad("state"))?;
    let error = match row.get::<_, Option<i32>>("error_context")? {
        Some(ctx) => Some(JobError {
            context: ErrorContext::from_i32(ctx).ok_or_else(|| bad("error_context"))?,
            code: HResult(row.get::<_, Option<i32>>("error_code")?.unwrap_or(0)),
            description: row
                .get::<_, Option<String>>("error_description")?
                .unwrap_or_default(),
            file_index: row.get::<_, Option<u32>>("error_file")?,
        }),
        None => None,
    };
    let settling = match row.get::<_, Option<i32>>("settling")? {
        Some(1) => Some(Settle::Completing),
        Some(2) => Some(Settle::Cancelling),
        _ => None,
    };
    Ok(JobRecord {
        id,
        job_type,
        display_name: row.get("display_name")?,
        description: row.get("description")?,
        owner: row.get("owner")?,
        priority,
        state,
        files: Vec::new(),
        error,
        minimum_retry_delay_s: row.get("minimum_retry_delay_s")?,
        no_progress_timeout_s: row.get("no_progress_timeout_s")?,
        notify_flags: row.get("notify_flags")?,
        min_notification_interval_ms: row.get("min_notification_interval_ms")?,
        custom_headers: row.get("custom_headers")?,
        security_flags: row.get("security_flags")?,
        dynamic_content: row.get("dynamic_content")?,
        max_download_size: opt_u64(row.get("max_download_size")?),
        max_download_time_s: row.get("max_download_time_s")?,
        active_ms: row.get::<_, i64>("active_ms")? as u64,
        resumed_once: row.get("resumed_once")?,
        notify_program: row.get("notify_program")?,
        notify_parameters: row.get("notify_parameters")?,
        proxy_usage: row.get("proxy_usage")?,
        proxy_list: row.get("proxy_list")?,
        proxy_bypass: row.get("proxy_bypass")?,
        created_ms: row.get::<_, i64>("created_ms")? as u64,
        modified_ms: row.get::<_, i64>("modified_ms")? as u64,
        transfer_completed_ms: opt_u64(row.get("transfer_completed_ms")?),
        error_count: row.get("error_count")?,
        retry_at_ms: opt_u64(row.get("retry_at_ms")?),
        no_progress_since_ms: opt_u64(row.get("no_progress_since_ms")?),
        settling,
    })
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

fn decode_file(row: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    let done = row.get::<_, i64>("bytes_checkpointed")? as u64;
    Ok(FileRecord {
        remote_url: row.get("remote_url")?,
        local_path: row.get("local_path")?,
        temp_path: row.get("temp_path")?,
        bytes_total: opt_u64(row.get("bytes_total")?),
        bytes_transferred: done,
        bytes_checkpointed: done,
        completed: row.get("completed")?,
        etag: row.get("etag")?,
        last_modified: row.get("last_modified")?,
        committed: row.get("committed")?,
        ranges: row
            .get::<_, Option<String>>("ranges")?
            .map(|s| decode_ranges(&s)),
    })
}

impl Store for SqliteStore {
    fn load_all(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut jobs: Vec<JobRecord> = {
            let mut st = conn
                .prepare("SELECT * FROM jobs ORDER BY seq")
                .map_err(|e| db_error("load", e))?;
            let rows = st
                .query_map([], decode_job)
                .map_err(|e| db_error("load", e))?;
            rows.collect::<Result<_, _>>()
                .map_err(|e| db_error("load jobs", e))?
        };
        let index: std::collections::HashMap<JobId, usize> =
            jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
        let mut st = conn
            .prepare("SELECT * FROM files ORDER BY job_id, idx")
            .map_err(|e| db_error("load", e))?;
        let mut rows = st.query([]).map_err(|e| db_error("load", e))?;
        while let Some(row) = rows.next().map_err(|e| db_error("load files", e))? {
            let id: Vec<u8> = row.get("job_id").map_err(|e| db_error("load files", e))?;
            let file = decode_file(row).map_err(|e| db_error("load files", e))?;
            if let Some(&i) = JobId::from_slice(&id).ok().and_then(|id| index.get(&id)) {
                jobs[i].files.push(file);
            }
        }
        Ok(jobs)
    }

    fn save(&self, job: &JobRecord) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| db_error("save", e))?;
        let id = job.id.as_bytes().as_slice();
        let err = job.error.as_ref();
        tx.prepare_cached(
            "INSERT INTO jobs (id, seq, job_type, display_name, description, owner, priority, state,
                minimum_retry_delay_s, no_progress_timeout_s, created_ms, modified_ms, transfer_completed_ms,
                error_count, retry_at_ms, no_progress_since_ms, error_context, error_code, error_description,
                error_file, settling, notify_flags, min_notification_interval_ms, custom_headers,
                security_flags, dynamic_content, max_download_size, max_download_time_s, active_ms,
                resumed_once, notify_program, notify_parameters, proxy_usage, proxy_list, proxy_bypass)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM jobs), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)
             ON CONFLICT (id) DO UPDATE SET job_type = ?2, display_name = ?3, description = ?4, owner = ?5,
                priority = ?6, state = ?7, minimum_retry_delay_s = ?8, no_progress_timeout_s = ?9,
                created_ms = ?10, modified_ms = ?11, transfer_completed_ms = ?12, error_count = ?13,
                retry_at_ms = ?14, no_progress_since_ms = ?15, error_context = ?16, error_code = ?17,
                error_description = ?18, error_file = ?19, settling = ?20, notify_flags = ?21,
                min_notification_interval_ms = ?22, custom_headers = ?23, security_flags = ?24,
                dynamic_content = ?25, max_download_size = ?26, max_download_time_s = ?27, active_ms = ?28,
                resumed_once = ?29, notify_program = ?30, notify_parameters = ?31, proxy_usage = ?32,
                proxy_list = ?33, proxy_bypass = ?34",
        )
        .and_then(|mut st| {
            st.execute(params![
                id,
                job.job_type as i32,
                job.display_name,
                job.description,
                job.owner,
                job.priority as i32,
                job.state as i32,
                job.minimum_retry_delay_s,
                job.no_progress_timeout_s,
                job.created_ms as i64,
                job.modified_ms as i64,
                job.transfer_completed_ms.map(|v| v as i64),
                job.error_count,
                job.retry_at_ms.map(|v| v as i64),
                job.no_progress_since_ms.map(|v| v as i64),
                err.map(|e| e.context as i32),
                err.map(|e| e.code.0),
                err.map(|e| e.description.as_str()),
                err.and_then(|e| e.file_index),
                job.settling.map(|s| s as i32),
                job.notify_flags,
                job.min_notification_interval_ms,
                job.custom_headers,
                job.security_flags,
                job.dynamic_content,
                job.max_download_size.map(|v| v as i64),
                job.max_download_time_s,
                job.active_ms as i64,
                job.resumed_once,
                job.notify_program,
                job.notify_parameters,
                job.proxy_usage,
                job.proxy_list,
                job.proxy_bypass,
            ])
        })
        .map_err(|e| db_error("save job", e))?;
        tx.prepare_cached("DELETE FROM files WHERE job_id = ?1")
            .and_then(|mut st| st.execute([id]))
            .map_err(|e| db_error("save files", e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO files (job_id, idx, remote_url, local_path, temp_path, bytes_total,
                        bytes_checkpointed, completed, etag, last_modified, committed, ranges)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(|e| db_error("save files", e))?;
            for (i, f) in job.files.iter().enumerate() {
                st.execute(params![
                    id,
                    i as u32,
                    f.remote_url,
                    f.local_path,
                    f.temp_path,
                    f.bytes_total.map(|v| v as i64),
                    f.bytes_checkpointed as i64,
                    f.completed,
                    f.etag,
                    f.last_modified,
                    f.committed,
                    f.ranges.as_deref().map(encode_ranges),
                ])
                .map_err(|e| db_error("save files", e))?;
            }
        }
        tx.commit().map_err(|e| db_error("save", e))
    }

    fn remove(&self, id: &JobId) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM jobs WHERE id = ?1", [id.as_bytes().as_slice()])
            .map(|_| ())
            .map_err(|e| db_error("remove job", e))
    }

    fn checkpoint(&self, points: &[Checkpoint]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| db_error("checkpoint", e))?;
        {
            let mut file = tx
                .prepare_cached(
                    "UPDATE files SET bytes_checkpointed = ?3, bytes_total = ?4, etag = ?5, last_modified = ?6
                     WHERE job_id = ?1 AND idx = ?2",
                )
                .map_err(|e| db_error("checkpoint", e))?;
            let mut job = tx
                .prepare_cached("UPDATE jobs SET modified_ms = max(modified_ms, ?2) WHERE id = ?1")
                .map_err(|e| db_error("checkpoint", e))?;
            for p in points {
                let id = p.job.as_bytes().as_slice();
                file.execute(params![
                    id,
                    p.file,
                    p.bytes as i64,
                    p.total.map(|v| v as i64),
                    p.etag,
                    p.last_modified
                ])
                .map_err(|e| db_error("checkpoint", e))?;
                job.execute(params![id, p.at_ms as i64])
                    .map_err(|e| db_error("checkpoint", e))?;
            }
        }
        tx.commit().map_err(|e| db_error("checkpoint", e))
    }
}

impl SqliteStore {
    /// The stored schema version (for tests and diagnostics).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| db_error("version", e))
    }

    /// Whether a job is stored (for tests).
    pub fn contains(&self, id: &JobId) -> Result<bool, StoreError> {
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
        j.description = "desc".into();
        j.owner = "someone".into();
        j.priority = Priority::High;
        j.state = JobState::TransientError;
        j.minimum_retry_delay_s = 7;
        j.no_progress_timeout_s = 9;
        j.modified_ms = 1_700_000_000_500;
        j.transfer_completed_ms = Some(1_700_000_000_900);
        j.error_count = 3;
        j.retry_at_ms = Some(1_700_000_001_000);
        j.no_progress_since_ms = Some(1_700_000_000_100);
        j.settling = Some(Settle::Completing);
        j.notify_flags = 0x1B;
        j.min_notification_interval_ms = 1234;
        j.custom_headers = Some("X-A: 1\r\nX-B: two\r\n".into());
        j.security_flags = 0x0900;
        j.dynamic_content = true;
        j.max_download_size = Some(1 << 40);
        j.max_download_time_s = 99;
        j.active_ms = 12_345;
        j.resumed_once = true;
        j.notify_program = Some("/bin/echo".into());
        j.notify_parameters = Some("/bin/echo \"done now\"".into());
        j.proxy_usage = 2;
        j.proxy_list = Some("proxy.example:3128".into());
        j.proxy_bypass = Some("<local>;*.example".into());
        j.error = Some(JobError {
            context: ErrorContext::RemoteFile,
            code: HResult::http(503),
            description: "HTTP 503 Service Unavailable: http://h/x".into(),
            file_index: Some(1),
        });
        let mut a = FileRecord::new("http://h/a".into(), "/d/a".into());
        a.temp_path = Some("/d/BIT0.tmp".into());
        a.bytes_total = Some(100);
        a.bytes_transferred = 100;
        a.bytes_checkpointed = 100;
        a.completed = true;
        a.committed = true;
        a.etag = Some("\"e\"".into());
        a.last_modified = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
        let mut b = FileRecord::new("http://h/b".into(), "/d/b".into());
        b.bytes_total = Some(u64::MAX - 1);
        b.bytes_transferred = 40;
        b.bytes_checkpointed = 40;
        b.ranges = Some(vec![
            FileRange {
                offset: 5,
                length: 10,
            },
            FileRange {
                offset: 100,
                length: LENGTH_TO_EOF,
            },
        ]);
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
        plain
            .files
            .push(FileRecord::new("file:///x".into(), "/y".into()));
        store.save(&plain).unwrap();
        drop(store);
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![j.clone(), plain.clone()]);
        // Saving again replaces, files included; creation order is kept.
        let mut j2 = j.clone();
        j2.files.pop();
        j2.state = JobState::Suspended;
        store.save(&j2).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![j2, plain.clone()]);
        store.remove(&j.id).unwrap();
        assert_eq!(store.load_all().unwrap(), vec![plain]);
    }

    #[test]
    fn checkpoints_update_progress_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let j = full_record();
        store.save(&j).unwrap();
        let p = Checkpoint {
            job: j.id,
            file: 1,
            bytes: 77,
            total: Some(1000),
            etag: Some("\"n\"".into()),
            last_modified: None,
            at_ms: 1_800_000_000_000,
        };
        let gone = Checkpoint {
            job: JobId::new_v4(),
            ..p.clone()
        };
        store.checkpoint(&[p, gone]).unwrap();
        let back = &store.load_all().unwrap()[0];
        let f = &back.files[1];
        assert_eq!(
            (
                f.bytes_checkpointed,
                f.bytes_transferred,
                f.bytes_total,
                f.etag.as_deref()
            ),
            (77, 77, Some(1000), Some("\"n\""))
        );
        assert_eq!(back.modified_ms, 1_800_000_000_000);
    }

    #[test]
    fn migrates_from_the_first_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            migrate(&conn, 0, 1).unwrap();
            let id = JobId::new_v4();
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
                jobs[0].display_name.as_str(),
                jobs[0].description.as_str(),
                jobs[0].settling
            ),
            ("old", "", None)
        );
        assert_eq!(
            (jobs[0].files[0].bytes_checkpointed, jobs[0].state),
            (4, JobState::Suspended)
        );
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
