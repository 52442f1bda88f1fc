//! Reading a state folder's database without taking the folder's lock: for tools that show a
//! queue while an application holds it (`openbits list`, `info`, `monitor`).
//!
//! Why this is safe beside the holder: the connection is opened read-only and `query_only`, so it
//! can write nothing; the database is in WAL mode, where a reader never blocks the writer (it
//! only keeps the WAL from being reset past its snapshot while a read is under way, which lasts
//! one `snapshot`); and a read-only connection never checkpoints or deletes the WAL when it
//! closes. What it sees is every call of the holder that returned (the tables, and the calls
//! still in its operation log, applied as its fold will apply them: `apply_records`), with
//! progress as of the holder's last checkpoint.

use super::{
    apply_records, corrupt, db_error, folded_seq, oplog, SqliteStore, DB_FILE, LOG_FILE,
    SCHEMA_VERSION,
};
use crate::hresult::{self as hr, HResult};
use crate::job::JobRecord;
use crate::store::{Store, StoreError};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

impl SqliteStore {
    /// Opens the database in `dir` for reading only. Never creates, migrates or locks anything:
    /// a missing database is ERROR_FILE_NOT_FOUND (0x80070002). Writes through the result fail.
    pub fn open_read_only(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err((
                HResult::from_win32(hr::win32::ERROR_FILE_NOT_FOUND),
                format!("no openbits database at {}", path.display()),
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| db_error("open", e))?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| db_error("query_only", e))?;
        // The holder's commits take microseconds; waiting briefly rides over one instead of
        // failing (a WAL reader is only ever kept waiting by a WAL being recovered).
        conn.busy_timeout(Duration::from_secs(2))
            .map_err(|e| db_error("busy_timeout", e))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
            log: None,
            closed: Default::default(),
        })
    }

    /// Every job, as one consistent snapshot (one read transaction, and the holder's calls not
    /// yet folded), in creation order, without write-only custom headers. A
    /// database whose schema is not this library's is refused with the reason (an older one is
    /// brought forward by the next manager that opens it; this reader may not write).
    pub fn snapshot(&self) -> Result<Vec<JobRecord>, StoreError> {
        // The log before the tables: the holder empties its log only after folding it, so any
        // record past the folded position the tables show was in the log when it was read
        // (unless its call returned after this read began). Unreadable: the tables alone.
        let log = self
            .path
            .parent()
            .and_then(|dir| std::fs::read(dir.join(LOG_FILE)).ok())
            .unwrap_or_default();
        self.conn
            .lock()
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| db_error("begin a read", e))?;
        let result = self.read_in_transaction();
        // Ends the read whatever happened: nothing was written, so there is nothing to keep.
        let _ = self.conn.lock().execute_batch("ROLLBACK");
        let (jobs, folded) = result?;
        let mut by_seq: HashMap<u64, JobRecord> = jobs.into_iter().map(|j| (j.seq, j)).collect();
        let (records, _) = oplog::records(&log);
        // Records are numbered one after another from the folded position; a gap means the
        // holder emptied the log and wrote again while it was read (whole records can meet
        // at the seam), and what follows it would apply to a state the reader never saw.
        let mut next = folded + 1;
        let unfolded = records
            .iter()
            .skip_while(|r| r.seq <= folded)
            .take_while(|r| {
                let in_order = r.seq == next;
                next += 1;
                in_order
            });
        apply_records(&mut by_seq, unfolded);
        let mut jobs: Vec<JobRecord> = by_seq.into_values().collect();
        jobs.sort_by_key(|j| j.seq);
        jobs.iter_mut().for_each(JobRecord::redact_write_only);
        Ok(jobs)
    }

    /// The jobs and the log position the tables hold.
    fn read_in_transaction(&self) -> Result<(Vec<JobRecord>, u64), StoreError> {
        let version: i64 = self
            .conn
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                    corrupt(&self.path, "not an SQLite database")
                }
                _ => db_error("read the schema version", e),
            })?;
        if version == 0 {
            // Created but never given a schema (a manager stopped at that instant): no jobs.
            return Ok((Vec::new(), 0));
        }
        if version != SCHEMA_VERSION {
            let why = if version > SCHEMA_VERSION {
                "newer than this library knows: use a newer openbits"
            } else {
                "older than this library's: it is brought forward when a manager opens the queue"
            };
            return Err((
                HResult::from_win32(1306), // ERROR_REVISION_MISMATCH, as the manager reports it
                format!(
                    "{} has schema version {version}, {why} (schema {SCHEMA_VERSION})",
                    self.path.display()
                ),
            ));
        }
        let jobs = self.load_all()?;
        let folded =
            folded_seq(&self.conn.lock()).map_err(|e| db_error("read the log's position", e))?;
        Ok((jobs, folded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{now_ms, FileRecord, JobId};
    use crate::state::JobType;

    fn record(seq: u64, name: &str) -> JobRecord {
        let mut j = JobRecord::new(JobId::new_v4(), JobType::Download, name.into(), now_ms());
        j.seq = seq;
        j.files
            .push(FileRecord::new("http://h/a".into(), "/d/a".into()));
        j
    }

    #[test]
    fn reads_what_a_writer_commits_while_the_writer_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteStore::open(dir.path()).unwrap();
        writer.save(&record(2, "second")).unwrap();
        writer.save(&record(1, "first")).unwrap();
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let names = |r: &SqliteStore| -> Vec<String> {
            r.snapshot()
                .unwrap()
                .iter()
                .map(|j| j.display_name.to_string())
                .collect()
        };
        assert_eq!(names(&reader), ["first", "second"]);
        // The writer goes on writing while the reader is open, and the reader sees it.
        writer.save(&record(3, "third")).unwrap();
        assert_eq!(names(&reader), ["first", "second", "third"]);
        assert_eq!(reader.snapshot().unwrap()[0].files.len(), 1);
    }

    /// Calls still in the holder's operation log are seen as the fold will write them: a new
    /// job, a changed row, added and renamed files, a removal; and after the holder is killed,
    /// before anyone opens the folder again.
    #[test]
    fn sees_the_holders_calls_before_they_are_folded() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteStore::open(dir.path()).unwrap();
        writer.save(&record(1, "folded")).unwrap();
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let mut j = record(2, "logged");
        j.files.clear();
        writer.insert(&j).unwrap();
        j.description = "changed".into();
        j.state = crate::state::JobState::Suspended;
        writer.update_job(&j).unwrap();
        j.files
            .push(FileRecord::new("http://h/x".into(), "/d/x".into()));
        j.files
            .push(FileRecord::new("http://h/y".into(), "/d/y".into()));
        writer.append_files(&j, 0).unwrap();
        j.files[1].local_path = "/d/renamed".into();
        writer.update_files(&j, &[1]).unwrap();
        writer.insert(&record(3, "gone")).unwrap();
        writer.remove(&[3]).unwrap();
        let check = |reader: &SqliteStore| {
            let jobs = reader.snapshot().unwrap();
            let names: Vec<&str> = jobs.iter().map(|j| &*j.display_name).collect();
            assert_eq!(names, ["folded", "logged"]);
            let l = &jobs[1];
            assert_eq!(l.id, j.id);
            assert_eq!(&*l.description, "changed");
            assert_eq!(l.state, crate::state::JobState::Suspended);
            let locals: Vec<&str> = l.files.iter().map(|f| &*f.local_path).collect();
            assert_eq!(locals, ["/d/x", "/d/renamed"]);
        };
        check(&reader);
        // The holder dies: nothing folds the log; the reader still sees every call.
        std::mem::forget(writer);
        check(&SqliteStore::open_read_only(dir.path()).unwrap());
        // A new holder runs the log into the tables; the reader sees the same.
        let writer = SqliteStore::open(dir.path()).unwrap();
        check(&reader);
        drop(writer);
        check(&reader);
    }

    #[test]
    fn write_only_headers_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SqliteStore::open(dir.path()).unwrap();
        let mut j = record(1, "token");
        j.set_extras(|e| {
            e.custom_headers = Some("Authorization: Bearer t\r\n".into());
            e.custom_headers_write_only = true;
        });
        writer.save(&j).unwrap();
        let mut open = record(2, "open");
        open.set_extras(|e| e.custom_headers = Some("X-A: 1\r\n".into()));
        writer.save(&open).unwrap();
        let jobs = SqliteStore::open_read_only(dir.path())
            .unwrap()
            .snapshot()
            .unwrap();
        assert_eq!(jobs[0].extras().custom_headers, None);
        assert!(jobs[0].extras().custom_headers_write_only);
        assert_eq!(
            jobs[1].extras().custom_headers.as_deref(),
            Some("X-A: 1\r\n")
        );
    }

    #[test]
    fn never_writes() {
        let dir = tempfile::tempdir().unwrap();
        SqliteStore::open(dir.path())
            .unwrap()
            .save(&record(1, "a"))
            .unwrap();
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let err = reader.save(&record(2, "b")).unwrap_err();
        assert!(err.0.failed(), "{err:?}");
        assert_eq!(reader.snapshot().unwrap().len(), 1);
    }

    #[test]
    fn refuses_a_missing_database_without_creating_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open_read_only(dir.path())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.0, HResult::from_win32(hr::win32::ERROR_FILE_NOT_FOUND));
        assert!(!dir.path().join(DB_FILE).exists());
    }

    #[test]
    fn refuses_another_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .conn
            .lock()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let reader = SqliteStore::open_read_only(dir.path()).unwrap();
        let err = reader.snapshot().unwrap_err();
        assert_eq!(err.0, HResult::from_win32(1306), "{err:?}");
    }
}
