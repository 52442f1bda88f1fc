//! Sessions and files in an object store (S3, GCS, Azure) shared by any number of nodes.
//!
//! Each acknowledged fragment is its own object (`.bits-sessions/{id}/parts/…`); the session
//! record `meta.json` lists them and is only ever replaced with a conditional put (If-Match on
//! its ETag), so two nodes storing fragments of one session at once cannot both win: the loser
//! deletes its part and answers with the winner's offset. Close-Session composes the parts into
//! the destination with a multipart upload, which appears atomically when completed.

use super::{
    client_key, etag_for, ByteStream, Error, FileInfo, Part, SessionMeta, Stored, Version,
};
use crate::paths::{valid_session_id, SafePath, SESSIONS_DIR};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use std::sync::Arc;
use std::time::SystemTime;

/// Fragments up to this size are sent in one PUT; larger ones stream as multipart uploads, so a
/// node holds at most this much of any fragment in memory.
const SINGLE_PUT: u64 = 8 * 1024 * 1024;
/// S3's smallest multipart part (except the last).
const PART_CHUNK: usize = 5 * 1024 * 1024;
/// S3 allows 10,000 parts per upload; aim below that so that a total a little off (a store
/// that splits differently) still fits.
const MAX_PARTS: u64 = 9000;
/// User metadata (`x-amz-meta-bits-session`) on a placed object: the session it came from, so
/// a Close-Session resent after a crash recognises its own earlier placement.
const SESSION_ATTR: &str = "bits-session";

/// The multipart part size for an object of `total` bytes: S3's smallest, or larger where
/// 5 MiB parts would need more than [`MAX_PARTS`] (uploads over about 44 GiB). A node holds
/// up to about three parts in memory while it uploads.
pub fn part_size(total: u64) -> usize {
    let size = total.div_ceil(MAX_PARTS).max(PART_CHUNK as u64);
    usize::try_from(size).unwrap_or(usize::MAX)
}

pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl ObjectStoreBackend {
    /// `s3://bucket/prefix` (with the `AWS_*` environment, `AWS_ENDPOINT_URL` included),
    /// `gs://bucket/prefix`, `az://container/prefix`, or `memory:///` for tests.
    pub fn open(url: &url::Url) -> Result<ObjectStoreBackend, Error> {
        let bad = |e: object_store::Error| Error::Storage(format!("{url}: {e}"));
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url.as_str());
                // An S3-compatible server on plain HTTP (moto, MinIO on loopback) needs this;
                // the endpoint is the operator's own choice, so follow it.
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .unwrap_or_default();
                if endpoint.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(bad)?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(bad)?,
            ),
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            s => return Err(Error::Storage(format!("unsupported storage scheme {s}"))),
        };
        let prefix = match url.scheme() {
            "memory" => Path::default(),
            _ => Path::from_iter(
                url.path()
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(PathPart::from),
            ),
        };
        Ok(ObjectStoreBackend { store, prefix })
    }

    /// A backend on a store built elsewhere, its keys under `prefix` (tests build one on a
    /// local S3 server without touching the process's environment).
    pub fn from_store(store: Arc<dyn ObjectStore>, prefix: Path) -> ObjectStoreBackend {
        ObjectStoreBackend { store, prefix }
    }

    fn key(&self, parts: &[&str]) -> Path {
        Path::from_iter(
            self.prefix
                .parts()
                .chain(parts.iter().map(|p| PathPart::from(*p))),
        )
    }
    fn session(&self, id: &str, name: &str) -> Result<Path, Error> {
        if !valid_session_id(id) {
            return Err(Error::NotFound);
        }
        Ok(self.key(&[SESSIONS_DIR, id, name]))
    }
    fn dest(&self, path: &SafePath) -> Path {
        let comps: Vec<&str> = path.components().iter().map(String::as_str).collect();
        self.key(&comps)
    }
    fn marker(&self, client: &str, id: &str) -> Path {
        self.key(&[SESSIONS_DIR, ".clients", &client_key(client), id])
    }

    pub async fn check_destination(&self, _path: &SafePath) -> Result<(), Error> {
        Ok(())
    }

    pub async fn exists(&self, path: &SafePath) -> Result<bool, Error> {
        match self.store.head(&self.dest(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create(&self, meta: &SessionMeta) -> Result<(), Error> {
        let body = serde_json::to_vec(meta).map_err(|e| Error::Storage(e.to_string()))?;
        self.store
            .put_opts(
                &self.session(&meta.id, "meta.json")?,
                body.into(),
                PutOptions::from(PutMode::Create),
            )
            .await?;
        self.store
            .put(&self.marker(&meta.client, &meta.id), PutPayload::default())
            .await?;
        Ok(())
    }

    pub async fn load(&self, id: &str) -> Result<Option<(SessionMeta, Version)>, Error> {
        let Ok(key) = self.session(id, "meta.json") else {
            return Ok(None);
        };
        let r = match self.store.get(&key).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let version = object_store::UpdateVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let bytes = r.bytes().await?;
        let meta: SessionMeta = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Storage(format!("session {id}: {e}")))?;
        Ok(Some((meta, Version(Some(version)))))
    }

    pub async fn save(&self, meta: &SessionMeta, version: &Version) -> Result<Version, Error> {
        let body = serde_json::to_vec(meta).map_err(|e| Error::Storage(e.to_string()))?;
        let mode = match &version.0 {
            Some(v) => PutMode::Update(v.clone()),
            None => PutMode::Overwrite,
        };
        let r = self
            .store
            .put_opts(
                &self.session(&meta.id, "meta.json")?,
                body.into(),
                PutOptions::from(mode),
            )
            .await?;
        Ok(Version(Some(r.into())))
    }

    pub async fn write_fragment(
        &self,
        meta: SessionMeta,
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
        let name = format!(
            "parts/{:020}-{:020}-{}",
            offset,
            offset + len,
            uuid::Uuid::new_v4().simple()
        );
        let key = self.session(&meta.id, &name)?;
        let mut remaining = len;
        if len <= SINGLE_PUT {
            let mut chunks = Vec::new();
            while let Some(c) = body.new_bytes(&mut discard, &mut remaining).await? {
                chunks.push(c);
            }
            self.store.put(&key, PutPayload::from_iter(chunks)).await?;
        } else {
            let mut w = WriteMultipart::new_with_chunk_size(
                self.store.put_multipart(&key).await?,
                part_size(len),
            );
            loop {
                match body.new_bytes(&mut discard, &mut remaining).await {
                    Ok(Some(c)) => {
                        w.put(c);
                        if let Err(e) = w.wait_for_capacity(2).await {
                            return Err(e.into());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = w.abort().await;
                        return Err(e);
                    }
                }
            }
            w.finish().await?;
        }
        // The part is stored; it counts once the record lists it. Retry while nobody else made
        // progress (another node may have refreshed the record), give way if someone did.
        let (mut cur, mut ver) = (meta, version);
        loop {
            if cur.received != offset || cur.total.is_some_and(|t| t != total) {
                let _ = self.store.delete(&key).await;
                return Ok(Stored::Raced(cur));
            }
            let mut next = cur.clone();
            next.parts.push(Part {
                key: name.clone(),
                offset,
                len,
            });
            next.received = offset + len;
            next.total = Some(total);
            next.updated = super::now();
            match self.save(&next, &ver).await {
                Ok(v) => return Ok(Stored::Done(next, v)),
                Err(Error::Conflict) => match self.load(&cur.id).await? {
                    Some((m, v)) => (cur, ver) = (m, v),
                    None => {
                        let _ = self.store.delete(&key).await;
                        return Err(Error::NotFound);
                    }
                },
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn close(
        &self,
        meta: &SessionMeta,
        version: &Version,
        allow_overwrites: bool,
    ) -> Result<(), Error> {
        let place = meta.places_file();
        if place {
            let dest = self.dest(&meta.dest()?);
            if !meta.closing {
                // The marker goes down before the object appears (conditionally: a node that
                // stored a fragment meanwhile makes this Close-Session retry).
                let mut marked = meta.clone();
                marked.closing = true;
                self.save(&marked, version).await?;
            }
            match self.placed_by(&dest).await? {
                // An earlier Close-Session composed it and stopped before removing the session.
                Some(owner) if owner == meta.id => return self.remove(&meta.id).await,
                Some(_) if !allow_overwrites => {
                    self.remove(&meta.id).await?;
                    return Err(Error::Exists);
                }
                _ => {}
            }
            match self.compose(meta, &dest, allow_overwrites).await {
                Ok(()) => {}
                // Parts are deleted only once the file is in place (or on cancel or expiry,
                // which drop the marker with them): an earlier Close-Session placed it, and
                // the object was replaced since.
                Err(Error::NotFound) if meta.closing => {}
                Err(e) => return Err(e),
            }
        }
        self.remove(&meta.id).await
    }

    /// Which session's Close-Session wrote the object at `dest`: None if there is none, an
    /// empty name if it was not one of ours.
    async fn placed_by(&self, dest: &Path) -> Result<Option<String>, Error> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.store.get_opts(dest, opts).await {
            Ok(r) => Ok(Some(
                r.attributes
                    .get(&Attribute::Metadata(SESSION_ATTR.into()))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the session's parts to `dest` as one object, tagged with the session id.
    async fn compose(
        &self,
        meta: &SessionMeta,
        dest: &Path,
        allow_overwrites: bool,
    ) -> Result<(), Error> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SESSION_ATTR.into()),
            meta.id.clone().into(),
        );
        let parts = match meta.parts.as_slice() {
            [] => {
                let mode = if allow_overwrites {
                    PutMode::Overwrite
                } else {
                    PutMode::Create
                };
                let opts = PutOptions {
                    mode,
                    attributes,
                    ..Default::default()
                };
                self.store
                    .put_opts(dest, PutPayload::default(), opts)
                    .await?;
                return Ok(());
            }
            // A server-side copy would do for one part, but S3-compatible servers disagree on
            // escaping the copy source (session ids have braces), so every upload is composed
            // the same way.
            parts => parts,
        };
        // Multipart completion is atomic: readers see the old object or the whole new one.
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let mut w = WriteMultipart::new_with_chunk_size(
            self.store.put_multipart_opts(dest, opts).await?,
            part_size(meta.total.unwrap_or(0)),
        );
        let copied = async {
            for p in parts {
                let mut s = self
                    .store
                    .get(&self.session(&meta.id, &p.key)?)
                    .await?
                    .into_stream();
                while let Some(c) = s.next().await {
                    w.put(c?);
                    w.wait_for_capacity(2).await?;
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        match copied {
            Ok(()) => {
                w.finish().await?;
                Ok(())
            }
            Err(e) => {
                // Not completed, so nothing appears; abort so that S3 frees the parts sent.
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        let meta = self.load(id).await?.map(|(m, _)| m);
        let dir = self.key(&[SESSIONS_DIR, id]);
        let objects: Vec<Path> = self
            .store
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        // meta.json last: while it exists the session is still listed and can be swept again.
        let (metas, others): (Vec<Path>, Vec<Path>) = objects
            .into_iter()
            .partition(|p| p.filename() == Some("meta.json"));
        for p in others.into_iter().chain(metas) {
            match self.store.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(m) = meta {
            let _ = self.store.delete(&self.marker(&m.client, id)).await;
        }
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<String>, Error> {
        let dir = self.key(&[SESSIONS_DIR]);
        let r = self.store.list_with_delimiter(Some(&dir)).await?;
        // Listed names come back as stored, with object_store's escapes (`{` is `%7B`).
        Ok(r.common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(unescape))
            .filter(|n| valid_session_id(n))
            .collect())
    }

    pub async fn count_client(&self, client: &str) -> Result<u64, Error> {
        let dir = self.key(&[SESSIONS_DIR, ".clients", &client_key(client)]);
        let n = self
            .store
            .list(Some(&dir))
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await?;
        Ok(n)
    }

    pub async fn upload_stream(&self, meta: &SessionMeta) -> Result<ByteStream, Error> {
        let store = self.store.clone();
        let keys = meta
            .parts
            .iter()
            .map(|p| self.session(&meta.id, &p.key))
            .collect::<Result<Vec<_>, _>>()?;
        let s = futures_util::stream::iter(keys)
            .then(move |k| {
                let store = store.clone();
                async move { store.get(&k).await.map(|r| r.into_stream()) }
            })
            .try_flatten()
            .map_err(Error::from);
        Ok(s.boxed())
    }

    pub async fn put_reply(&self, id: &str, mut body: ByteStream) -> Result<(), Error> {
        let mut w = WriteMultipart::new_with_chunk_size(
            self.store
                .put_multipart(&self.session(id, "reply")?)
                .await?,
            PART_CHUNK,
        );
        while let Some(c) = body.next().await {
            match c {
                Ok(c) => w.put(c),
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            }
            w.wait_for_capacity(2).await?;
        }
        w.finish().await?;
        Ok(())
    }

    async fn info(&self, key: &Path) -> Result<Option<FileInfo>, Error> {
        match self.store.head(key).await {
            Ok(m) => {
                let modified: SystemTime = m.last_modified.into();
                let etag = m
                    .e_tag
                    .clone()
                    .map(|e| {
                        if e.starts_with('"') {
                            e
                        } else {
                            format!("\"{e}\"")
                        }
                    })
                    .unwrap_or_else(|| etag_for(m.size, modified));
                Ok(Some(FileInfo {
                    len: m.size,
                    modified,
                    etag,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn range(&self, key: &Path, start: u64, end: u64) -> Result<ByteStream, Error> {
        if start == end {
            return Ok(futures_util::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end)),
            ..Default::default()
        };
        Ok(self
            .store
            .get_opts(key, opts)
            .await?
            .into_stream()
            .map_err(Error::from)
            .boxed())
    }

    pub async fn reply_info(&self, id: &str) -> Result<Option<FileInfo>, Error> {
        let Ok(k) = self.session(id, "reply") else {
            return Ok(None);
        };
        self.info(&k).await
    }
    pub async fn reply_stream(&self, id: &str, start: u64, end: u64) -> Result<ByteStream, Error> {
        self.range(&self.session(id, "reply")?, start, end).await
    }
    pub async fn file_info(&self, path: &SafePath) -> Result<Option<FileInfo>, Error> {
        self.info(&self.dest(path)).await
    }
    pub async fn file_stream(
        &self,
        path: &SafePath,
        start: u64,
        end: u64,
    ) -> Result<ByteStream, Error> {
        self.range(&self.dest(path), start, end).await
    }
}

/// Undoes object_store's percent-escaping of one path part; None if it is not valid.
fn unescape(part: &str) -> Option<String> {
    let b = part.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn memory() -> ObjectStoreBackend {
        ObjectStoreBackend::open(&url::Url::parse("memory:///").expect("url"))
            .expect("memory store")
    }

    /// A complete session of "abcdef" in two parts, stored as a node would have stored it.
    async fn complete_session(b: &ObjectStoreBackend) -> SessionMeta {
        let id = crate::paths::new_session_id();
        let meta = SessionMeta {
            id: id.clone(),
            path: "a/f.bin".into(),
            url: "http://localhost/a/f.bin".into(),
            client: "127.0.0.1".into(),
            created: 1,
            updated: super::super::now(),
            total: Some(6),
            received: 6,
            parts: vec![
                Part {
                    key: "parts/0".into(),
                    offset: 0,
                    len: 3,
                },
                Part {
                    key: "parts/1".into(),
                    offset: 3,
                    len: 3,
                },
            ],
            reply_url: None,
            copy_to_destination: false,
            reply_mode: false,
            closing: false,
        };
        b.create(&meta).await.unwrap();
        for (key, bytes) in [("parts/0", "abc"), ("parts/1", "def")] {
            b.store
                .put(&b.session(&id, key).unwrap(), bytes.into())
                .await
                .unwrap();
        }
        meta
    }

    /// The placed upload, `a/f.bin`.
    async fn placed(b: &ObjectStoreBackend) -> Option<Vec<u8>> {
        match b.store.get(&b.key(&["a", "f.bin"])).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn sessions_are_listed_and_counted() {
        let b = memory();
        let meta = complete_session(&b).await;
        assert_eq!(b.list().await.unwrap(), vec![meta.id.clone()]);
        assert_eq!(b.count_client("127.0.0.1").await.unwrap(), 1);
        assert_eq!(unescape("%7Bx%7D").as_deref(), Some("{x}"));
        assert_eq!(unescape("%7"), None);
    }

    #[test]
    fn part_size_keeps_every_upload_within_s3s_10000_parts() {
        let min = PART_CHUNK as u64;
        assert_eq!(part_size(0), PART_CHUNK);
        assert_eq!(part_size(1), PART_CHUNK);
        assert_eq!(part_size(min * MAX_PARTS), PART_CHUNK);
        assert_eq!(part_size(min * MAX_PARTS + 1), PART_CHUNK + 1);
        // 48.8 GiB was the old ceiling (10,000 parts of 5 MiB); 5 TiB is S3's largest object.
        for total in [48 * GIB + 800 * 1024 * 1024, 100 * GIB, 5 * 1024 * GIB] {
            let p = part_size(total) as u64;
            assert!(p >= min, "{total}: part {p}");
            assert!(
                total.div_ceil(p) <= 10_000,
                "{total}: {} parts",
                total.div_ceil(p)
            );
        }
    }

    #[tokio::test]
    async fn a_save_with_a_stale_version_is_a_conflict() {
        let b = memory();
        let meta = complete_session(&b).await;
        let (m, stale) = b.load(&meta.id).await.unwrap().unwrap();
        let mut next = m.clone();
        next.updated += 1;
        b.save(&next, &stale).await.unwrap();
        // Another node still holding the first version loses, and the record is the winner's.
        let mut other = m.clone();
        other.received = 3;
        assert!(matches!(b.save(&other, &stale).await, Err(Error::Conflict)));
        assert_eq!(b.load(&meta.id).await.unwrap().unwrap().0, next);
    }

    /// What the first Close-Session of `meta` does before it removes the session: the closing
    /// marker, then the object composed at its destination.
    async fn mark_and_compose(
        b: &ObjectStoreBackend,
        meta: &SessionMeta,
        allow_overwrites: bool,
    ) -> Path {
        let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
        let mut marked = m.clone();
        marked.closing = true;
        b.save(&marked, &v).await.unwrap();
        let dest = b.dest(&marked.dest().unwrap());
        b.compose(&marked, &dest, allow_overwrites).await.unwrap();
        dest
    }

    #[tokio::test]
    async fn close_is_idempotent_after_a_crash_between_placing_and_removing() {
        for allow_overwrites in [false, true] {
            let b = memory();
            let meta = complete_session(&b).await;
            // The first Close-Session wrote its marker and composed the object, then the node
            // died before removing the session.
            mark_and_compose(&b, &meta, allow_overwrites).await;

            let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
            b.close(&m, &v, allow_overwrites).await.unwrap();
            assert_eq!(placed(&b).await.as_deref(), Some(&b"abcdef"[..]));
            assert!(b.load(&meta.id).await.unwrap().is_none());
            assert!(b.list().await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn close_resent_after_a_crash_mid_removal_succeeds() {
        let b = memory();
        let meta = complete_session(&b).await;
        let dest = mark_and_compose(&b, &meta, false).await;
        // The removal had deleted one part when the node died; then someone replaced the
        // object (with overwrites allowed, so that it is not refused as someone else's).
        b.store
            .delete(&b.session(&meta.id, "parts/0").unwrap())
            .await
            .unwrap();
        b.store.put(&dest, "other".into()).await.unwrap();
        let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
        b.close(&m, &v, true).await.unwrap();
        assert!(b.load(&meta.id).await.unwrap().is_none());
        assert_eq!(placed(&b).await.as_deref(), Some(&b"other"[..]));
    }

    #[tokio::test]
    async fn a_marked_session_still_refuses_someone_elses_file() {
        let b = memory();
        let meta = complete_session(&b).await;
        let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
        let mut marked = m.clone();
        marked.closing = true;
        b.save(&marked, &v).await.unwrap();
        // The node died after the marker, before composing; the name was taken meanwhile.
        b.store
            .put(&b.key(&["a", "f.bin"]), "theirs".into())
            .await
            .unwrap();
        let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
        assert!(matches!(b.close(&m, &v, false).await, Err(Error::Exists)));
        assert_eq!(placed(&b).await.as_deref(), Some(&b"theirs"[..]));
        // With overwrites allowed the same state is composed and placed.
        let meta = complete_session(&b).await;
        let (m, v) = b.load(&meta.id).await.unwrap().unwrap();
        let mut marked = m.clone();
        marked.closing = true;
        let v = b.save(&marked, &v).await.unwrap();
        b.close(&marked, &v, true).await.unwrap();
        assert_eq!(placed(&b).await.as_deref(), Some(&b"abcdef"[..]));
    }
}
