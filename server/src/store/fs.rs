//! Sessions and files in a folder: `ROOT/.bits-sessions/{id}/{meta.json,data,reply}`, the upload
//! written in place at its offsets, `fsync`ed before each Ack, and renamed (or hard-linked, when
//! overwrites are refused, so that an existing file is never replaced) into place on close.

use super::{client_key, etag_for, ByteStream, Error, FileInfo, SessionMeta, Stored, Version};
use crate::paths::{valid_session_id, SafePath, SESSIONS_DIR};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;
/// Bytes received between requests to the kernel to start writing a fragment back.
const WRITEBACK: u64 = 1024 * 1024;

/// Asks the kernel to start (not wait for) writeback of a byte range; only a hint, so errors
/// are left to the fsync that follows.
fn start_writeback(f: &tokio::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    #[cfg(target_os = "linux")]
    // SAFETY: the descriptor is open for the life of `f`; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f.as_raw_fd(), offset, len);
}

pub struct FsStore {
    root: PathBuf,
    sessions: PathBuf,
    /// Holds an exclusive flock for the life of the process: sessions are serialised in memory,
    /// so a second process on the same folder would corrupt them.
    _lock: std::fs::File,
}

impl FsStore {
    /// Creates the root if needed; everything is resolved against its canonical path so that a
    /// symlink check compares like with like.
    pub fn open(root: &Path) -> Result<FsStore, Error> {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", root.display())))?;
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::Storage(format!("{}: {e}", root.display())))?;
        let sessions = root.join(SESSIONS_DIR);
        std::fs::create_dir_all(sessions.join(".clients"))
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", sessions.display())))?;
        let lock_path = sessions.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::Storage(format!("{}: {e}", lock_path.display())))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; released by the kernel when the process ends.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::Storage(format!(
                "{} is in use by another openbits-server ({})",
                root.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(FsStore {
            root,
            sessions,
            _lock: lock,
        })
    }

    fn dir(&self, id: &str) -> Result<PathBuf, Error> {
        if !valid_session_id(id) {
            return Err(Error::NotFound);
        }
        Ok(self.sessions.join(id))
    }

    /// Where a by-reference application reads the upload.
    pub fn request_file(&self, id: &str) -> Result<PathBuf, Error> {
        Ok(self.dir(id)?.join("data"))
    }

    /// Where a by-reference application writes its reply.
    pub fn response_file(&self, id: &str) -> Result<PathBuf, Error> {
        Ok(self.dir(id)?.join("reply"))
    }

    /// Walks the destination's folders from the root, creating missing ones only if `create`,
    /// and refuses a symlink that resolves outside the root or a file where a folder should be.
    async fn parent_of(&self, path: &SafePath, create: bool) -> Result<PathBuf, Error> {
        let comps = path.components();
        let mut cur = self.root.clone();
        for c in &comps[..comps.len() - 1] {
            cur.push(c);
            match tokio::fs::symlink_metadata(&cur).await {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    let real = tokio::fs::canonicalize(&cur)
                        .await
                        .map_err(|_| Error::Escape)?;
                    if !real.starts_with(&self.root)
                        || real.starts_with(&self.sessions)
                        || !real.is_dir()
                    {
                        return Err(Error::Escape);
                    }
                }
                Ok(_) => return Err(Error::Exists),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if !create {
                        return Ok(cur);
                    }
                    match tokio::fs::create_dir(&cur).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(cur)
    }

    pub async fn check_destination(&self, path: &SafePath) -> Result<(), Error> {
        let parent = self.parent_of(path, false).await?;
        let dest = parent.join(path.file_name());
        match tokio::fs::symlink_metadata(&dest).await {
            Ok(m) if m.file_type().is_symlink() || m.is_dir() => Err(Error::Escape),
            _ => Ok(()),
        }
    }

    pub async fn exists(&self, path: &SafePath) -> Result<bool, Error> {
        let dest = self.root.join(path.as_str());
        Ok(tokio::fs::symlink_metadata(&dest).await.is_ok())
    }

    pub async fn create(&self, meta: &SessionMeta) -> Result<(), Error> {
        let dir = self.dir(&meta.id)?;
        tokio::fs::create_dir(&dir).await?;
        // Before meta.json: the folder sync that makes meta.json's name durable covers it too.
        write_progress(dir.join("progress"), encode_progress(meta)).await?;
        write_durably(
            &dir.join("meta.json"),
            &serde_json::to_vec(meta).map_err(|e| Error::Storage(e.to_string()))?,
        )
        .await?;
        let clients = self
            .sessions
            .join(".clients")
            .join(client_key(&meta.client));
        tokio::fs::create_dir_all(&clients).await?;
        tokio::fs::write(clients.join(&meta.id), b"").await?;
        sync_dir(&self.sessions).await
    }

    pub async fn load(&self, id: &str) -> Result<Option<(SessionMeta, Version)>, Error> {
        let Ok(dir) = self.dir(id) else {
            return Ok(None);
        };
        match tokio::fs::read(dir.join("meta.json")).await {
            Ok(b) => {
                let mut meta: SessionMeta = serde_json::from_slice(&b)
                    .map_err(|e| Error::Storage(format!("session {id}: {e}")))?;
                match tokio::fs::read(dir.join("progress")).await {
                    Ok(p) => match decode_progress(&p) {
                        Some((received, total, updated)) => {
                            (meta.received, meta.total, meta.updated) = (received, total, updated)
                        }
                        // Nothing counts as received: the client sends it again.
                        None => meta.received = 0,
                    },
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Some((meta, Version::default())))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn save(&self, meta: &SessionMeta, _version: &Version) -> Result<Version, Error> {
        let dir = self.dir(&meta.id)?;
        if tokio::fs::metadata(&dir).await.is_err() {
            return Err(Error::NotFound);
        }
        write_durably(
            &dir.join("meta.json"),
            &serde_json::to_vec(meta).map_err(|e| Error::Storage(e.to_string()))?,
        )
        .await?;
        Ok(Version::default())
    }

    pub async fn write_fragment(
        &self,
        mut meta: SessionMeta,
        version: Version,
        w: super::NewBytes,
        body: &mut super::BodyReader,
    ) -> Result<Stored, Error> {
        let super::NewBytes {
            mut discard,
            offset,
            len,
            total,
        } = w;
        let dir = self.dir(&meta.id)?;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join("data"))
            .await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut remaining = len;
        let (mut pos, mut started) = (offset, offset);
        while let Some(c) = body.new_bytes(&mut discard, &mut remaining).await? {
            f.write_all(&c).await?;
            pos += c.len() as u64;
            if pos - started >= WRITEBACK {
                // Start writing back what arrived so far, so the fsync before the Ack waits for
                // the tail of the fragment only, not all of it.
                f.flush().await?;
                start_writeback(&f, started, pos - started);
                started = pos;
            }
        }
        f.flush().await?;
        // The Ack promises the bytes survive a crash: data first, then the record that counts them.
        f.sync_data().await?;
        drop(f);
        meta.received = offset + len;
        meta.total = Some(total);
        meta.updated = super::now();
        write_progress(dir.join("progress"), encode_progress(&meta)).await?;
        Ok(Stored::Done(meta, version))
    }

    pub async fn close(
        &self,
        meta: &SessionMeta,
        version: &Version,
        allow_overwrites: bool,
    ) -> Result<(), Error> {
        let dir = self.dir(&meta.id)?;
        let data = dir.join("data");
        let place = meta.places_file();
        if place {
            let dest_path = meta.dest()?;
            let parent = self.parent_of(&dest_path, true).await?;
            let dest = parent.join(dest_path.file_name());
            if meta.closing && !present(&data).await? {
                // An earlier Close-Session renamed the data into place (or placed it and had
                // begun removing the session) and stopped before the session was gone: the
                // upload is where it belongs. Make its name durable and finish the removal.
                sync_dir(&parent).await?;
                return self.remove(&meta.id).await;
            }
            if !meta.closing {
                if meta.total.unwrap_or(0) == 0 {
                    // Before the marker, so that a marked session always had its data file.
                    let f = tokio::fs::File::create(&data).await?;
                    f.sync_all().await?;
                }
                // The marker goes down before the file moves; its folder sync also makes an
                // empty data file's name durable.
                let mut marked = meta.clone();
                marked.closing = true;
                self.save(&marked, version).await?;
            }
            if matches!(tokio::fs::symlink_metadata(&dest).await, Ok(m) if m.file_type().is_symlink() || m.is_dir())
            {
                return Err(Error::Escape);
            }
            if allow_overwrites {
                // Also right when an earlier attempt linked the data there: rename(2) between
                // two names of one file does nothing.
                tokio::fs::rename(&data, &dest).await?;
            } else {
                // link(2) fails if the name exists: the check and the placement are one step.
                match tokio::fs::hard_link(&data, &dest).await {
                    Ok(()) => {}
                    // Our own earlier link, made before a crash: placed already.
                    Err(e)
                        if e.kind() == ErrorKind::AlreadyExists
                            && same_file(&data, &dest).await => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        self.remove(&meta.id).await?;
                        return Err(Error::Exists);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            sync_dir(&parent).await?;
        }
        self.remove(&meta.id).await
    }

    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        let dir = self.dir(id)?;
        if let Ok(b) = tokio::fs::read(dir.join("meta.json")).await {
            if let Ok(meta) = serde_json::from_slice::<SessionMeta>(&b) {
                let _ = tokio::fs::remove_file(
                    self.sessions
                        .join(".clients")
                        .join(client_key(&meta.client))
                        .join(id),
                )
                .await;
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        sync_dir(&self.sessions).await
    }

    pub async fn list(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut rd = tokio::fs::read_dir(&self.sessions).await?;
        while let Some(e) = rd.next_entry().await? {
            if let Some(name) = e.file_name().to_str() {
                if valid_session_id(name) {
                    out.push(name.to_owned());
                }
            }
        }
        Ok(out)
    }

    pub async fn count_client(&self, client: &str) -> Result<u64, Error> {
        let mut n = 0;
        match tokio::fs::read_dir(self.sessions.join(".clients").join(client_key(client))).await {
            Ok(mut rd) => {
                while rd.next_entry().await?.is_some() {
                    n += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(n)
    }

    pub async fn upload_stream(&self, meta: &SessionMeta) -> Result<ByteStream, Error> {
        let path = self.dir(&meta.id)?.join("data");
        file_stream(path, 0, meta.total.unwrap_or(0)).await
    }

    pub async fn put_reply(&self, id: &str, mut body: ByteStream) -> Result<(), Error> {
        let dir = self.dir(id)?;
        let tmp = dir.join("reply.tmp");
        let mut f = tokio::fs::File::create(&tmp).await?;
        while let Some(c) = body.next().await {
            f.write_all(&c?).await?;
        }
        f.sync_all().await?;
        tokio::fs::rename(&tmp, dir.join("reply")).await?;
        sync_dir(&dir).await
    }

    /// Makes a reply written by a by-reference application durable before it is announced.
    pub async fn sync_reply(&self, id: &str) -> Result<(), Error> {
        let dir = self.dir(id)?;
        tokio::fs::File::open(dir.join("reply"))
            .await?
            .sync_all()
            .await?;
        sync_dir(&dir).await
    }

    pub async fn reply_info(&self, id: &str) -> Result<Option<FileInfo>, Error> {
        let Ok(dir) = self.dir(id) else {
            return Ok(None);
        };
        info(&dir.join("reply")).await
    }

    pub async fn reply_stream(&self, id: &str, start: u64, end: u64) -> Result<ByteStream, Error> {
        file_stream(self.dir(id)?.join("reply"), start, end).await
    }

    /// A download: the file must resolve (symlinks followed) to a regular file inside the root
    /// and outside the session folder.
    async fn resolve(&self, path: &SafePath) -> Result<Option<PathBuf>, Error> {
        let p = self.root.join(path.as_str());
        let real = match tokio::fs::canonicalize(&p).await {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if !real.starts_with(&self.root) || real.starts_with(&self.sessions) {
            return Err(Error::Escape);
        }
        Ok(Some(real))
    }

    pub async fn file_info(&self, path: &SafePath) -> Result<Option<FileInfo>, Error> {
        match self.resolve(path).await? {
            Some(p) => info(&p).await,
            None => Ok(None),
        }
    }

    pub async fn file_stream(
        &self,
        path: &SafePath,
        start: u64,
        end: u64,
    ) -> Result<ByteStream, Error> {
        match self.resolve(path).await? {
            Some(p) => file_stream(p, start, end).await,
            None => Err(Error::NotFound),
        }
    }
}

/// Whether a name exists (a dangling symlink counts); errors other than "not found" are errors.
async fn present(p: &Path) -> Result<bool, Error> {
    match tokio::fs::symlink_metadata(p).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether two names are links to one file (same device and inode).
async fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        tokio::fs::symlink_metadata(a).await,
        tokio::fs::symlink_metadata(b).await,
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

async fn info(p: &Path) -> Result<Option<FileInfo>, Error> {
    match tokio::fs::metadata(p).await {
        Ok(m) if m.is_file() => {
            let modified = m.modified()?;
            Ok(Some(FileInfo {
                len: m.len(),
                modified,
                etag: etag_for(m.len(), modified),
            }))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Bytes `start..end` of a file, read 64 KiB at a time.
pub async fn file_stream(path: PathBuf, start: u64, end: u64) -> Result<ByteStream, Error> {
    let mut f = tokio::fs::File::open(&path).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::NotFound
        } else {
            e.into()
        }
    })?;
    f.seek(std::io::SeekFrom::Start(start)).await?;
    let s = futures_util::stream::unfold((f, end - start), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) => Some((
                Err(Error::Storage("file shorter than expected".into())),
                (f, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e.into()), (f, 0))),
        }
    });
    Ok(s.boxed())
}

/// The `progress` record: received, total (`u64::MAX` while unknown), last progress, and a check
/// word, 32 bytes little-endian, rewritten in place after each fragment: one fdatasync instead of
/// replacing meta.json (write, fsync, rename, folder fsync). A 32-byte write at offset 0 does not
/// straddle a sector, so a crash leaves the old record or the new one.
const PROGRESS_LEN: usize = 32;
const PROGRESS_CHECK: u64 = 0x6f70_656e_6269_7473;

fn encode_progress(meta: &SessionMeta) -> [u8; PROGRESS_LEN] {
    let total = meta.total.unwrap_or(u64::MAX);
    let mut b = [0u8; PROGRESS_LEN];
    b[0..8].copy_from_slice(&meta.received.to_le_bytes());
    b[8..16].copy_from_slice(&total.to_le_bytes());
    b[16..24].copy_from_slice(&meta.updated.to_le_bytes());
    b[24..32].copy_from_slice(
        &(meta.received ^ total.rotate_left(17) ^ meta.updated.rotate_left(41) ^ PROGRESS_CHECK)
            .to_le_bytes(),
    );
    b
}

fn decode_progress(b: &[u8]) -> Option<(u64, Option<u64>, u64)> {
    let word = |i: usize| {
        b.get(i * 8..i * 8 + 8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let (received, total, updated, check) = (word(0)?, word(1)?, word(2)?, word(3)?);
    if check != received ^ total.rotate_left(17) ^ updated.rotate_left(41) ^ PROGRESS_CHECK
        || (total != u64::MAX && received > total)
    {
        return None;
    }
    Some((received, (total != u64::MAX).then_some(total), updated))
}

async fn write_progress(path: PathBuf, record: [u8; PROGRESS_LEN]) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        f.write_all_at(&record, 0)?;
        f.sync_data()
    })
    .await
    .map_err(|e| Error::Storage(e.to_string()))??;
    Ok(())
}

/// Replaces a small file so that a crash leaves the old or the new content, never a mix.
async fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = tokio::fs::File::create(&tmp).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).await?;
    }
    Ok(())
}

/// Makes a rename or a new name in `dir` durable.
async fn sync_dir(dir: &Path) -> Result<(), Error> {
    let d = tokio::fs::File::open(dir).await?;
    d.sync_all().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_records_round_trip_and_refuse_damage() {
        let mut m = SessionMeta {
            id: String::new(),
            path: String::new(),
            url: String::new(),
            client: String::new(),
            created: 1,
            updated: 1_700_000_000,
            total: None,
            received: 0,
            parts: vec![],
            reply_url: None,
            copy_to_destination: false,
            reply_mode: false,
            closing: false,
        };
        assert_eq!(
            decode_progress(&encode_progress(&m)),
            Some((0, None, 1_700_000_000))
        );
        m.total = Some(10);
        m.received = 7;
        let mut b = encode_progress(&m);
        assert_eq!(decode_progress(&b), Some((7, Some(10), 1_700_000_000)));
        b[0] = 9;
        assert_eq!(decode_progress(&b), None);
        assert_eq!(decode_progress(&b[..31]), None);
        assert_eq!(decode_progress(&[0u8; 32]), None);
    }
}
