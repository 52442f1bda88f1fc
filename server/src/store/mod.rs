//! Where sessions and files live: a folder ([`fs::FsStore`]) or an object store
//! ([`object::ObjectStoreBackend`]). Both keep the same session record and give the same
//! guarantee: a fragment is acknowledged only after its bytes would survive a `kill -9`.

pub mod fs;
pub mod object;

use crate::paths::SafePath;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A session's record, stored next to its data (`meta.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionMeta {
    pub id: String,
    /// Destination below the root, `a/b/file.bin`.
    pub path: String,
    /// The URL the client uploads to, for the application notification.
    pub url: String,
    /// Who opened it (user name, or address), for the per-client cap.
    pub client: String,
    pub created: u64,
    /// Last progress, seconds since the epoch; the session expires `session_timeout` later.
    pub updated: u64,
    pub total: Option<u64>,
    pub received: u64,
    /// Object stores: acknowledged fragments in offset order, contiguous from 0.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Upload-reply: `BITS-Reply-URL` once the application answered (the notify cache).
    #[serde(default)]
    pub reply_url: Option<String>,
    /// The application asked for the upload to be stored at its name as well.
    #[serde(default)]
    pub copy_to_destination: bool,
    /// Upload-reply session: the upload is placed only if the application asks for it.
    #[serde(default)]
    pub reply_mode: bool,
    /// Close-Session has begun putting the upload in place. Written durably before the file is
    /// placed, so a Close-Session resent after a crash between placing the file and removing the
    /// session can tell "already placed" from "someone else's file" and answer 200 again.
    #[serde(default)]
    pub closing: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    pub key: String,
    pub offset: u64,
    pub len: u64,
}

impl SessionMeta {
    /// Whether the session has been idle longer than `timeout`. The times are whole seconds, so
    /// "at least `timeout` whole seconds later" could come a moment after the last progress (an
    /// update at 10.99 s is 1 s old at 11.0 s): a session is expired only once more than
    /// `timeout` whole seconds have passed, which gives it between `timeout` and `timeout` + 1 s.
    pub fn expired(&self, timeout: Duration, now: u64) -> bool {
        self.updated.saturating_add(timeout.as_secs()) < now
    }
    pub fn complete(&self) -> bool {
        self.received == self.total.unwrap_or(0)
    }
    /// Whether Close-Session puts the upload at its destination: a complete upload, unless it is
    /// an upload-reply that keeps it (BITS-Copy-File-To-Destination not set).
    pub fn places_file(&self) -> bool {
        self.complete() && (!self.reply_mode || self.copy_to_destination)
    }
    pub fn dest(&self) -> Result<SafePath, Error> {
        SafePath::from_stored(&self.path)
            .ok_or_else(|| Error::Storage(format!("session {} has a bad path", self.id)))
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
pub enum Error {
    /// The client's fault (body shorter than announced, too slow): 400.
    Client(String),
    /// Path resolves outside the root (a symlink): 400 E_INVALIDARG.
    Escape,
    /// The destination exists and may not be replaced: 409.
    Exists,
    /// The session record changed under us (another node): retry or re-read.
    Conflict,
    NotFound,
    Storage(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Client(s) => write!(f, "client: {s}"),
            Error::Escape => f.write_str("path leaves the root"),
            Error::Exists => f.write_str("destination exists"),
            Error::Conflict => f.write_str("concurrent update"),
            Error::NotFound => f.write_str("not found"),
            Error::Storage(s) => write!(f, "storage: {s}"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Storage(e.to_string())
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound,
            object_store::Error::AlreadyExists { .. } => Error::Exists,
            object_store::Error::Precondition { .. } => Error::Conflict,
            e => Error::Storage(e.to_string()),
        }
    }
}

/// A request body read frame by frame with a deadline for each frame, so a client that stops
/// sending cannot hold a connection (and a session lock) for ever; nothing is buffered beyond
/// one frame.
pub struct BodyReader {
    body: hyper::body::Incoming,
    idle: Duration,
    /// A client trickling a byte just before each idle timeout still has to finish by then.
    deadline: tokio::time::Instant,
    /// The body ended or failed; nothing more to read.
    done: bool,
}

/// The slowest average rate a fragment body may arrive at (1 KiB/s): a 13 MB fragment, the
/// largest Windows sends, may take about 3.6 hours, no longer.
const MIN_RATE: u64 = 1024;

impl BodyReader {
    pub fn new(body: hyper::body::Incoming, idle: Duration, len: u64) -> BodyReader {
        let deadline = tokio::time::Instant::now() + idle + Duration::from_secs(len / MIN_RATE);
        BodyReader {
            body,
            idle,
            deadline,
            done: false,
        }
    }

    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        let r = self.next_chunk().await;
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.done {
            return Ok(None);
        }
        loop {
            let wait = self.idle.min(
                self.deadline
                    .saturating_duration_since(tokio::time::Instant::now()),
            );
            let frame = match tokio::time::timeout(wait, self.body.frame()).await {
                Err(_) => return Err(Error::Client("request body timed out".into())),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(Error::Client(format!("request body: {e}"))),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }

    /// Reads and drops what is left of the body, up to `limit` bytes. A refused fragment's client
    /// is still sending it; a connection closed with bytes unread is reset, and the reset can
    /// destroy the answer on its way (hyper reads only what has already arrived before it gives
    /// up; nginx in front, still streaming the body, then answered 502 instead of our 416).
    pub async fn drain(&mut self, limit: u64) {
        let mut read = 0u64;
        while read <= limit {
            match self.chunk().await {
                Ok(Some(c)) => read += c.len() as u64,
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// The next bytes to store of a fragment whose first `discard` bytes are already stored and
    /// whose next `remaining` bytes are new; None once all new bytes were returned.
    pub async fn new_bytes(
        &mut self,
        discard: &mut u64,
        remaining: &mut u64,
    ) -> Result<Option<Bytes>, Error> {
        while *remaining > 0 {
            let Some(mut c) = self.chunk().await? else {
                return Err(Error::Client("request body ended early".into()));
            };
            let skip = (*discard).min(c.len() as u64);
            *discard -= skip;
            let c2 = c.split_off(skip as usize);
            drop(c);
            if c2.is_empty() {
                continue;
            }
            let take = (*remaining).min(c2.len() as u64) as usize;
            *remaining -= take as u64;
            return Ok(Some(c2.slice(..take)));
        }
        Ok(None)
    }
}

/// The part of a fragment to store: skip `discard` bytes of the body, then store `len` bytes at
/// `offset` of an entity of `total` bytes (openbits-protocol's `FragmentPlan::Write`).
#[derive(Clone, Copy, Debug)]
pub struct NewBytes {
    pub discard: u64,
    pub offset: u64,
    pub len: u64,
    pub total: u64,
}

/// Facts about a stored file for downloads.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub len: u64,
    pub modified: SystemTime,
    pub etag: String,
}

pub type ByteStream = BoxStream<'static, Result<Bytes, Error>>;

/// The outcome of storing a fragment.
pub enum Stored {
    /// The record after the write (`received` advanced) and its version.
    Done(SessionMeta, Version),
    /// Another node changed the session first; this is its record now.
    Raced(SessionMeta),
}

pub enum Store {
    Fs(fs::FsStore),
    Object(object::ObjectStoreBackend),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Fs($s) => $e,
            Store::Object($s) => $e,
        }
    };
}

impl Store {
    pub async fn exists(&self, path: &SafePath) -> Result<bool, Error> {
        dispatch!(self, s => s.exists(path).await)
    }
    /// Fails with [`Error::Escape`] if the destination's folders leave the root.
    pub async fn check_destination(&self, path: &SafePath) -> Result<(), Error> {
        dispatch!(self, s => s.check_destination(path).await)
    }
    pub async fn create(&self, meta: &SessionMeta) -> Result<(), Error> {
        dispatch!(self, s => s.create(meta).await)
    }
    /// The session's record and the version a conditional save must match.
    pub async fn load(&self, id: &str) -> Result<Option<(SessionMeta, Version)>, Error> {
        dispatch!(self, s => s.load(id).await)
    }
    pub async fn save(&self, meta: &SessionMeta, version: &Version) -> Result<Version, Error> {
        dispatch!(self, s => s.save(meta, version).await)
    }
    /// Stores the new bytes of a fragment, makes them durable, then records the progress.
    pub async fn write_fragment(
        &self,
        meta: SessionMeta,
        version: Version,
        w: NewBytes,
        body: &mut BodyReader,
    ) -> Result<Stored, Error> {
        dispatch!(self, s => s.write_fragment(meta, version, w, body).await)
    }
    /// Puts the complete upload in place atomically (unless it is an upload-reply that keeps
    /// it), then deletes the session. Idempotent: a session left behind by a crash after its
    /// file was placed closes again with success (see [`SessionMeta::closing`]).
    pub async fn close(
        &self,
        meta: &SessionMeta,
        version: &Version,
        allow_overwrites: bool,
    ) -> Result<(), Error> {
        dispatch!(self, s => s.close(meta, version, allow_overwrites).await)
    }
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        dispatch!(self, s => s.remove(id).await)
    }
    pub async fn list(&self) -> Result<Vec<String>, Error> {
        dispatch!(self, s => s.list().await)
    }
    pub async fn count_client(&self, client: &str) -> Result<u64, Error> {
        dispatch!(self, s => s.count_client(client).await)
    }
    /// The uploaded bytes of a complete session, for a by-value notification.
    pub async fn upload_stream(&self, meta: &SessionMeta) -> Result<ByteStream, Error> {
        dispatch!(self, s => s.upload_stream(meta).await)
    }
    /// Stores the application's reply for a session.
    pub async fn put_reply(&self, id: &str, body: ByteStream) -> Result<(), Error> {
        dispatch!(self, s => s.put_reply(id, body).await)
    }
    pub async fn reply_info(&self, id: &str) -> Result<Option<FileInfo>, Error> {
        dispatch!(self, s => s.reply_info(id).await)
    }
    pub async fn reply_stream(&self, id: &str, start: u64, end: u64) -> Result<ByteStream, Error> {
        dispatch!(self, s => s.reply_stream(id, start, end).await)
    }
    pub async fn file_info(&self, path: &SafePath) -> Result<Option<FileInfo>, Error> {
        dispatch!(self, s => s.file_info(path).await)
    }
    pub async fn file_stream(
        &self,
        path: &SafePath,
        start: u64,
        end: u64,
    ) -> Result<ByteStream, Error> {
        dispatch!(self, s => s.file_stream(path, start, end).await)
    }
}

/// What a conditional save must match: nothing for a folder (one process owns it and
/// serialises each session), the ETag/version for an object store.
#[derive(Clone, Debug, Default)]
pub struct Version(pub Option<object_store::UpdateVersion>);

/// An ETag from size and modification time, like most file servers.
pub fn etag_for(len: u64, modified: SystemTime) -> String {
    let t = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{t:x}\"")
}

/// Hex of a client name, safe as one path component.
pub fn client_key(client: &str) -> String {
    client.bytes().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session lives at least its timeout after its last progress, though times are whole
    /// seconds: with a 1 s timeout, one updated in second 100 is still alive in second 101.
    #[test]
    fn a_session_lives_at_least_its_timeout() {
        let m = SessionMeta {
            id: "{1}".into(),
            path: "a.bin".into(),
            url: "/a.bin".into(),
            client: "c".into(),
            created: 100,
            updated: 100,
            total: None,
            received: 0,
            parts: Vec::new(),
            reply_url: None,
            copy_to_destination: false,
            reply_mode: false,
            closing: false,
        };
        let one = Duration::from_secs(1);
        assert!(!m.expired(one, 100));
        assert!(!m.expired(one, 101), "expired within its timeout");
        assert!(m.expired(one, 102));
        assert!(!m.expired(Duration::from_secs(60), 160));
        assert!(m.expired(Duration::from_secs(60), 161));
    }
}
