//! The store's operation log (`openbits.oplog`, mode 0600): what makes an application's call
//! durable with one `write()` instead of an SQLite commit.
//!
//! Why: a commit in WAL mode costs about 17 µs of the caller's thread (locks on the shared
//! memory, a frame per page, the index update), and creating a job of one file took five of them
//! (create, a property, add_file, resume, the intent of complete), the whole cost of a queue of
//! small jobs. A record appended here is in the kernel when `append` returns, so a SIGKILL at any
//! later instant keeps it, which is the store's durability rule (`synchronous = NORMAL` gives no
//! more against a power cut: the log is not fsynced either).
//!
//! A record is the statements a write would have run, with their values in the order of their
//! parameters (the engine's checkpoints too); `SqliteStore::fold` runs the waiting records in one
//! transaction, leaving out the steps later ones replace (`fold.rs`), and stores the sequence
//! number of the last one in the same transaction, so each record reaches the tables exactly once: at open, records past
//! that number are run before anything is read (a crash lost none of them), and older ones are
//! skipped. The file is emptied only after the folded tables are synced (`fdatasync` of the WAL),
//! so no power cut can leave a record neither in the log nor on disk.
//!
//! Record: `[u32 body length][u32 CRC-32 of body][body]`, little-endian; body: `[u64 seq]` then
//! steps, each `[u8 statement][u16 value count][values]`; a value is a tag byte (0 NULL,
//! 1 integer + i64, 2 real + f64, 3 text + u32 length + UTF-8, 4 blob + u32 length + bytes). A
//! record cut short (a kill inside a large `write`, which returned nothing to its caller) or
//! damaged ends the log: it and anything after it are ignored.

use parking_lot::Mutex;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

pub const LOG_FILE: &str = "openbits.oplog";

/// Log size past which a fold empties the file (holding appends back for one sync).
pub(super) const TRUNCATE_AT: u64 = 8 << 20;

/// Unfolded bytes past which (and past each further such amount) the waker is called again, so
/// that a fold comes at once: what waits is kept in memory too.
const WAKE_AGAIN_EVERY: usize = 4 << 20;

const HEADER: usize = 8;

/// A statement a record may run. The values of a step are its parameters in order (SQLite
/// numbers parameters by first appearance in the text, which is the order the binders use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Stmt {
    InsertJob = 1,
    UpdateJob = 2,
    InsertFile = 3,
    UpdateFileNames = 4,
    DeleteJob = 5,
    PutSetting = 6,
    DeleteSetting = 7,
    /// A file's flushed progress (`Store::checkpoint`).
    Checkpoint = 8,
    /// A moving job's state and modification time from its newest checkpoint.
    JobProgress = 9,
    /// `UpdateJob`, unless the stored row is newer (a row the engine wrote).
    UpdateJobUnlessNewer = 10,
}

impl Stmt {
    fn from_u8(b: u8) -> Option<Stmt> {
        use Stmt::*;
        [
            InsertJob,
            UpdateJob,
            InsertFile,
            UpdateFileNames,
            DeleteJob,
            PutSetting,
            DeleteSetting,
            Checkpoint,
            JobProgress,
            UpdateJobUnlessNewer,
        ]
        .into_iter()
        .find(|s| *s as u8 == b)
    }
}

/// Where a row's values go: a statement's parameters, or a step of a log record.
pub(super) trait Bind {
    /// The next parameter; `name` is its name in the statement (checked in debug builds where a
    /// statement is at hand).
    fn bind(&mut self, name: &CStr, value: ValueRef<'_>) -> rusqlite::Result<()>;
}

/// `Bind` for any value (a trait object cannot have the generic method). The conversion is
/// compiled for each type, so a value costs one call through `Bind`'s table and no second one
/// through `ToSql`'s: a job's row is 43 values, written several times per job.
pub(super) trait BindExt: Bind {
    #[inline]
    fn put<T: ToSql>(&mut self, name: &CStr, value: T) -> rusqlite::Result<()> {
        match value.to_sql()? {
            ToSqlOutput::Borrowed(v) => self.bind(name, v),
            ToSqlOutput::Owned(v) => self.bind(name, ValueRef::from(&v)),
            _ => Err(rusqlite::Error::ToSqlConversionFailure("value kind".into())),
        }
    }
}

impl<B: Bind + ?Sized> BindExt for B {}

/// A record being built: steps are appended to `buf` after its header.
pub(super) struct Encoder<'b> {
    buf: &'b mut Vec<u8>,
    /// Where the current step's value count goes.
    count_at: usize,
    count: u16,
}

impl Encoder<'_> {
    /// Starts a step; its values follow through `Bind`.
    pub(super) fn begin(&mut self, stmt: Stmt) {
        self.end_step();
        self.buf.push(stmt as u8);
        self.count_at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.count = 0;
    }

    fn end_step(&mut self) {
        if self.count_at != 0 {
            self.buf[self.count_at..self.count_at + 2].copy_from_slice(&self.count.to_le_bytes());
        }
    }
}

impl Bind for Encoder<'_> {
    fn bind(&mut self, _name: &CStr, v: ValueRef<'_>) -> rusqlite::Result<()> {
        let buf = &mut *self.buf;
        let bytes = |buf: &mut Vec<u8>, tag: u8, b: &[u8]| {
            buf.push(tag);
            buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
            buf.extend_from_slice(b);
        };
        match v {
            ValueRef::Null => buf.push(0),
            ValueRef::Integer(i) => {
                buf.push(1);
                buf.extend_from_slice(&i.to_le_bytes());
            }
            ValueRef::Real(f) => {
                buf.push(2);
                buf.extend_from_slice(&f.to_le_bytes());
            }
            ValueRef::Text(t) => bytes(buf, 3, t),
            ValueRef::Blob(b) => bytes(buf, 4, b),
        }
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| rusqlite::Error::ToSqlConversionFailure("too many values".into()))?;
        Ok(())
    }
}

/// One step of a decoded record: the statement and its values, borrowed from the record.
pub(super) struct Step<'r> {
    pub stmt: Stmt,
    pub values: Vec<ValueRef<'r>>,
}

/// A decoded record.
pub(super) struct Record<'r> {
    pub seq: u64,
    pub steps: Vec<Step<'r>>,
}

struct Cursor<'r> {
    b: &'r [u8],
}

impl<'r> Cursor<'r> {
    fn take(&mut self, n: usize) -> Option<&'r [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

fn decode_body(body: &[u8]) -> Option<Record<'_>> {
    let mut c = Cursor { b: body };
    let seq = c.u64()?;
    let mut steps = Vec::new();
    while !c.b.is_empty() {
        let stmt = Stmt::from_u8(c.u8()?)?;
        let n = c.u16()?;
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(match c.u8()? {
                0 => ValueRef::Null,
                1 => ValueRef::Integer(c.u64()? as i64),
                2 => ValueRef::Real(f64::from_bits(c.u64()?)),
                3 => {
                    let len = c.u32()? as usize;
                    ValueRef::Text(c.take(len)?)
                }
                4 => {
                    let len = c.u32()? as usize;
                    ValueRef::Blob(c.take(len)?)
                }
                _ => return None,
            });
        }
        steps.push(Step { stmt, values });
    }
    Some(Record { seq, steps })
}

/// The whole records at the start of `bytes`, in order, up to the first one cut short or
/// damaged; and how many bytes they take.
pub(super) fn records(bytes: &[u8]) -> (Vec<Record<'_>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Some(rec) = decode_body(body) else { break };
        out.push(rec);
        at += HEADER + len;
    }
    (out, at)
}

/// The log of one writer. Appends and folds take `inner` in that order of need: a fold takes
/// the store's connection first, then `inner` (see `SqliteStore::transaction`).
pub(super) struct OpLog {
    pub(super) inner: Mutex<Inner>,
    /// Called when a record arrives while none waits, and when those waiting pass another
    /// `WAKE_AGAIN_EVERY` bytes (see `Store::on_unfolded`).
    waker: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

pub(super) struct Inner {
    file: File,
    /// Bytes in the file.
    pub(super) len: u64,
    /// The number the next record takes.
    pub(super) next_seq: u64,
    /// Records appended and not yet folded, back to back, as written to the file.
    pub(super) waiting: Vec<u8>,
    /// Reused to build each record.
    scratch: Vec<u8>,
    /// The store was closed: appends are refused (the folder's lock is about to go, and another
    /// holder may own this file next).
    pub(super) closed: bool,
}

impl OpLog {
    /// Opens (creating) the log in `dir` and reads its whole records; `next_seq` is set by the
    /// caller once it knows what the database folded.
    pub(super) fn open(dir: &Path) -> io::Result<(OpLog, Vec<u8>)> {
        let path = dir.join(LOG_FILE);
        let mut file = crate::localfile::open_private(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let log = OpLog {
            inner: Mutex::new(Inner {
                len: bytes.len() as u64,
                file,
                next_seq: 1,
                waiting: Vec::new(),
                scratch: Vec::new(),
                closed: false,
            }),
            waker: OnceLock::new(),
        };
        Ok((log, bytes))
    }

    pub(super) fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(wake);
    }

    /// Calls the waker: records put back after a failed fold still wait, and the appends that
    /// follow will not call it (they do only when nothing waited).
    pub(super) fn wake(&self) {
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }

    /// Appends one record whose steps `build` writes, and keeps it for the next fold. When this
    /// returns Ok the record is in the kernel. On failure nothing of it stays in the file.
    pub(super) fn append(
        &self,
        build: impl FnOnce(&mut Encoder<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), AppendError> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        if inner.closed {
            return Err(AppendError::Closed);
        }
        let seq = inner.next_seq;
        let buf = &mut inner.scratch;
        buf.clear();
        buf.extend_from_slice(&[0; HEADER]);
        buf.extend_from_slice(&seq.to_le_bytes());
        let mut enc = Encoder {
            buf,
            count_at: 0,
            count: 0,
        };
        build(&mut enc).map_err(AppendError::Encode)?;
        enc.end_step();
        let body_len = buf.len() - HEADER;
        let len = u32::try_from(body_len)
            .map_err(|_| AppendError::Io(io::Error::other("a record over 4 GiB")))?;
        let crc = crc32fast::hash(&buf[HEADER..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        // One write for the whole record (the file is not O_APPEND: `len` is the end, kept
        // here, so a failed write can be cut off at the same place).
        use std::os::unix::fs::FileExt;
        if let Err(e) = inner.file.write_all_at(buf, inner.len) {
            let _ = inner.file.set_len(inner.len);
            return Err(AppendError::Io(e));
        }
        inner.len += buf.len() as u64;
        let before = inner.waiting.len();
        inner.waiting.extend_from_slice(buf);
        let first =
            before == 0 || before / WAKE_AGAIN_EVERY != inner.waiting.len() / WAKE_AGAIN_EVERY;
        inner.next_seq += 1;
        // Not kept large: one AddFileSet of 2,000 files makes a record of ~300 KB.
        if inner.scratch.capacity() > 1 << 20 {
            inner.scratch = Vec::new();
        }
        drop(g);
        if first {
            if let Some(wake) = self.waker.get() {
                wake();
            }
        }
        Ok(())
    }
}

impl Inner {
    /// Empties the file: the caller has made every folded record durable in the database.
    pub(super) fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }

    /// Puts records taken for a fold that failed back in front of any appended since.
    pub(super) fn put_back(&mut self, mut taken: Vec<u8>) {
        if taken.is_empty() {
            return;
        }
        taken.extend_from_slice(&self.waiting);
        self.waiting = taken;
    }
}

pub(super) enum AppendError {
    Closed,
    Encode(rusqlite::Error),
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as `OpLog::append` frames it, from raw body bytes.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// A body of `seq` with one step of `values`, encoded as `append` does.
    fn body(seq: u64, stmt: Stmt, values: &[ValueRef<'_>]) -> Vec<u8> {
        let mut buf = seq.to_le_bytes().to_vec();
        let mut enc = Encoder {
            buf: &mut buf,
            count_at: 0,
            count: 0,
        };
        enc.begin(stmt);
        for v in values {
            enc.bind(c"v", *v).unwrap();
        }
        enc.end_step();
        buf
    }

    #[test]
    fn records_decode_with_their_values_and_a_bad_one_ends_the_log() {
        let first = [ValueRef::Integer(7), ValueRef::Text(b"a"), ValueRef::Null];
        let second = [ValueRef::Real(1.5), ValueRef::Blob(b"\x00\x01")];
        let mut log = framed(&body(1, Stmt::InsertJob, &first));
        log.extend(framed(&body(2, Stmt::UpdateJob, &second)));
        let whole = log.len();
        // Framed correctly (its CRC holds) but with a value tag no writer makes: it ends the log,
        // and what follows it is not read.
        let mut bad = body(3, Stmt::UpdateJob, &first);
        let tag_of_second_value = 8 + 1 + 2 + 9;
        bad[tag_of_second_value] = 9;
        log.extend(framed(&bad));
        log.extend(framed(&body(4, Stmt::DeleteJob, &[ValueRef::Integer(4)])));

        let (records, len) = records(&log);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(records[0].steps.len(), 1);
        assert_eq!(records[0].steps[0].stmt, Stmt::InsertJob);
        assert_eq!(records[0].steps[0].values, first);
        assert_eq!(len, whole);
        assert_eq!(records[1].steps[0].stmt, Stmt::UpdateJob);
        assert_eq!(records[1].steps[0].values, second);
    }
}
