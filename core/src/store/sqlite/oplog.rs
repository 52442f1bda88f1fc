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
//! On Linux, on file systems that overwrite allocated blocks in place (ext4, XFS, tmpfs), the
//! file is allocated ahead (`fallocate`) and mapped shared, so an append is a copy into the page
//! cache, with no system call: what a SIGKILL cannot undo, as it cannot undo a `write()` that
//! returned (the pages are the kernel's, not the process's), and the same against a power cut
//! (written back as any dirty page is). A record write was a fifth of the cost of an
//! application's call on a queue of small jobs. Copy-on-write file systems (btrfs, ZFS) need new
//! space for every page written, which a mapping could only report as SIGBUS: there, and wherever
//! allocating ahead or mapping fails, records are written with `pwrite`, as on other platforms.
//! The mapping relies on nobody shrinking the file under it: the manager holds the folder's lock
//! while its store is open, and drops the mapping before it empties the file or closes.
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
//! damaged ends the log: it and anything after it are ignored, and so do the zeros past the last
//! record of a file allocated ahead (a zero length cannot frame a record).

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
        // A body starts with its sequence number: a shorter one (the zeros allocated past the
        // last record, whose empty body's CRC is 0) ends the log.
        if len < 8 {
            break;
        }
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
    file: LogFile,
    /// Bytes of records in the file (the file may be longer: zeros allocated ahead).
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
                file: LogFile::new(file, bytes.len() as u64),
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
        inner.file.put(inner.len, buf).map_err(AppendError::Io)?;
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
        self.file.truncate()?;
        self.len = 0;
        Ok(())
    }

    /// The file's pages leave the process's resident set (its records were taken for a fold, or
    /// the store is closing); the next append maps the file again.
    pub(super) fn drop_mapping(&mut self) {
        self.file.unmap();
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

/// The log's file, written through a shared mapping of its allocated start where the platform
/// allows (Linux), else with `pwrite`.
struct LogFile {
    file: File,
    /// The file's length: records, then zeros allocated ahead.
    size: u64,
    /// The whole file, mapped; None until an append needs it, after a fold, and for good once
    /// the file system refused to allocate ahead.
    #[cfg(target_os = "linux")]
    map: Option<memmap2::MmapMut>,
    /// The file system overwrites allocated blocks in place (learnt once, at open), and
    /// allocating ahead and mapping have not failed.
    #[cfg(target_os = "linux")]
    mappable: bool,
}

/// The least the file grows by when a record does not fit (then it doubles).
#[cfg(target_os = "linux")]
const GROW_FROM: u64 = 1 << 20;

impl LogFile {
    fn new(file: File, size: u64) -> LogFile {
        LogFile {
            size,
            #[cfg(target_os = "linux")]
            map: None,
            #[cfg(target_os = "linux")]
            mappable: overwrites_in_place(&file),
            file,
        }
    }

    /// Writes `rec` at `at`, the end of the records. On failure no reader finds it: the file is
    /// cut back to `at`, or, where zeros were allocated past it, a part written stops the log
    /// there (its checksum fails) until the next record overwrites it.
    fn put(&mut self, at: u64, rec: &[u8]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.mappable {
            match self.mapped(at + rec.len() as u64) {
                Ok(map) => {
                    // `mapped` made the map at least this long.
                    map[at as usize..at as usize + rec.len()].copy_from_slice(rec);
                    return Ok(());
                }
                Err(e) if is_full(&e) => return Err(e),
                // No allocating ahead here (or no mapping): records are written instead.
                Err(_) => {
                    self.map = None;
                    self.mappable = false;
                }
            }
        }
        // One write for the whole record (the file is not O_APPEND: `at` is the end, so a failed
        // write can be cut off at the same place).
        use std::os::unix::fs::FileExt;
        if let Err(e) = self.file.write_all_at(rec, at) {
            if self.size <= at {
                let _ = self.file.set_len(at);
            } else {
                // Zeros were allocated past `at`: a zero length there ends the log at `at`.
                let _ = self.file.write_all_at(&[0; HEADER], at);
            }
            return Err(e);
        }
        self.size = self.size.max(at + rec.len() as u64);
        Ok(())
    }

    /// The file mapped, allocated up to at least `end`.
    #[cfg(target_os = "linux")]
    fn mapped(&mut self, end: u64) -> io::Result<&mut memmap2::MmapMut> {
        if end > self.size {
            self.map = None;
            let ahead = end.max(self.size * 2).max(GROW_FROM).next_power_of_two();
            if let Err(e) = self.allocate(ahead) {
                // What a failed call allocated stays allocated: give it back, then try for no
                // more than this record needs (a full disk must not lose its last megabytes to
                // the log, which a fold needs to empty it).
                let _ = self.file.set_len(self.size);
                if !is_full(&e) {
                    return Err(e);
                }
                let just = end.div_ceil(4096) * 4096;
                if let Err(e) = self.allocate(just) {
                    let _ = self.file.set_len(self.size);
                    return Err(e);
                }
            }
        }
        if self
            .map
            .as_ref()
            .is_none_or(|m| (m.len() as u64) < self.size)
        {
            let len = usize::try_from(self.size).map_err(|_| io::Error::other("log too long"))?;
            // SAFETY: nothing shrinks the file while it is mapped: it is the store's own (mode
            // 0600), the manager holds the folder's lock for as long as its store is open, and
            // the store drops the mapping before it empties the file or closes.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&self.file)? };
            self.map = Some(map);
        }
        self.map
            .as_mut()
            .ok_or_else(|| io::Error::other("no mapping"))
    }

    /// Allocates the file's blocks up to `len` (its length becomes `len`): blocks, not a sparse
    /// tail, so a page the mapping dirties needs no new space, and a full disk fails here, as an
    /// error, never later as a SIGBUS.
    #[cfg(target_os = "linux")]
    fn allocate(&mut self, len: u64) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;
        let off = libc::off_t::try_from(len).map_err(|_| io::Error::other("log too long"))?;
        // SAFETY: fallocate on a descriptor we own for the duration of the call.
        if unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, off) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.size = len;
        Ok(())
    }

    fn unmap(&mut self) {
        #[cfg(target_os = "linux")]
        {
            self.map = None;
        }
    }

    fn truncate(&mut self) -> io::Result<()> {
        self.unmap();
        self.file.set_len(0)?;
        self.size = 0;
        Ok(())
    }
}

/// Whether the file system writes a page of allocated blocks in place, needing no new space:
/// ext4 (and ext2/3), XFS and tmpfs. A copy-on-write one (btrfs, ZFS) allocates anew for every
/// page written back, and a mapping could only report that failure as SIGBUS.
#[cfg(target_os = "linux")]
fn overwrites_in_place(file: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const TMPFS: i64 = 0x0102_1994;
    // SAFETY: fstatfs fills the struct it is given, on a descriptor we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    matches!(st.f_type as i64, EXT4 | XFS | TMPFS)
}

/// A full disk or quota: the append fails, as a write would.
#[cfg(target_os = "linux")]
fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
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

    /// Appends a record of one text value of `size` bytes and returns it as framed.
    fn append_text(log: &OpLog, size: usize, fill: u8) -> Vec<u8> {
        let text = vec![fill; size];
        log.append(|enc| {
            enc.begin(Stmt::PutSetting);
            enc.bind(c"v", ValueRef::Text(&text))
        })
        .map_err(|_| "append failed")
        .unwrap();
        let seq = log.inner.lock().next_seq - 1;
        framed(&body(seq, Stmt::PutSetting, &[ValueRef::Text(&text)]))
    }

    /// What a reader of the file finds (the next open, `fold_store`, the read-only store) is
    /// every record appended, in order, then nothing it could take for a record, across the
    /// file's growth (a record larger than a whole step, then many small ones), after the
    /// mapping is dropped (a fold) and after the log is emptied.
    #[test]
    fn the_file_holds_every_record_appended_and_nothing_after_them() {
        // Mapped (this test's folder is on ext4 or tmpfs), and written with pwrite, as on a
        // copy-on-write file system.
        for mapped in [true, false] {
            records_appended(mapped);
        }
    }

    fn records_appended(mapped: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let (log, bytes) = OpLog::open(dir.path()).unwrap();
        assert!(bytes.is_empty());
        #[cfg(target_os = "linux")]
        if !mapped {
            log.inner.lock().file.mappable = false;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = mapped;
        let mut expect = Vec::new();
        expect.extend(append_text(&log, 3 << 20, b'x'));
        for i in 0..5_000 {
            expect.extend(append_text(&log, 300, b'a' + (i % 26) as u8));
            if i == 2_500 {
                log.inner.lock().drop_mapping();
            }
        }
        let on_disk = std::fs::read(&path).unwrap();
        let (found, end) = records(&on_disk);
        assert_eq!(found.len(), 5_001);
        assert_eq!(end, expect.len());
        assert_eq!(&on_disk[..end], &expect[..]);
        assert_eq!(log.inner.lock().len, expect.len() as u64);
        assert!(
            on_disk[end..].iter().all(|&b| b == 0),
            "only zeros after the records"
        );

        let mut inner = log.inner.lock();
        inner.truncate().unwrap();
        inner.waiting.clear();
        drop(inner);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        let again = append_text(&log, 10, b'z');
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(records(&on_disk).1, again.len());
        assert_eq!(&on_disk[..again.len()], &again[..]);
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
