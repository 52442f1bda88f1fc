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
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    WriteMultipart,
};
use std::sync::Arc;
use std::time::SystemTime;

/// Fragments up to this size are sent in one PUT; larger ones stream as multipart uploads, so a
/// node holds at most this much of any fragment in memory.
const SINGLE_PUT: u64 = 8 * 1024 * 1024;
/// S3's smallest multipart part (except the last).
const PART_CHUNK: usize = 5 * 1024 * 1024;

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
                PART_CHUNK,
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

    pub async fn close(&self, meta: &SessionMeta, allow_overwrites: bool) -> Result<(), Error> {
        let place = meta.complete() && (!meta.reply_mode || meta.copy_to_destination);
        if place {
            let dest = self.dest(&meta.dest()?);
            if !allow_overwrites && self.store.head(&dest).await.is_ok() {
                self.remove(&meta.id).await?;
                return Err(Error::Exists);
            }
            let mode = if allow_overwrites {
                PutMode::Overwrite
            } else {
                PutMode::Create
            };
            match meta.parts.as_slice() {
                [] => {
                    self.store
                        .put_opts(&dest, PutPayload::default(), PutOptions::from(mode))
                        .await?;
                }
                // A server-side copy would do for one part, but S3-compatible servers disagree on
                // escaping the copy source (session ids have braces), so every upload is
                // composed the same way.
                parts => {
                    // Multipart completion is atomic: readers see the old object or the whole new one.
                    let mut w = WriteMultipart::new_with_chunk_size(
                        self.store.put_multipart(&dest).await?,
                        PART_CHUNK,
                    );
                    for p in parts {
                        let mut s = self
                            .store
                            .get(&self.session(&meta.id, &p.key)?)
                            .await?
                            .into_stream();
                        while let Some(c) = s.next().await {
                            match c {
                                Ok(c) => w.put(c),
                                Err(e) => {
                                    let _ = w.abort().await;
                                    return Err(e.into());
                                }
                            }
                            w.wait_for_capacity(2).await?;
                        }
                    }
                    w.finish().await?;
                }
            }
        }
        self.remove(&meta.id).await
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
        Ok(r.common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
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
