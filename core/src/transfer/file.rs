//! One file's transfer: `FileTransfer` is the bridge between a source (`download/`, `local.rs`)
//! and the job's record. It keeps the progress, rate-limits progress events, runs the flush
//! pipeline (fdatasync off the runtime, then a checkpoint), and owns the temporary file's naming.

use super::{download, http, local, Failure};
use crate::hresult::{self as hr, HResult};
use crate::job::{now_ms, NonMaxU64};
use crate::localfile::{self, Sink};
use crate::policy::bandwidth::{self, Bucket};
use crate::queue::events::{Event, EventKind};
use crate::queue::{emit, publish, JobCell, JobSlot, Shared, Touch};
use crate::state::{engine, ErrorContext, JobType, Priority};
use crate::store::Checkpoint;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A task's first checkpoint is flushed after this many bytes of a file, or this long into it,
/// and committed at once: a process that dies (or is killed) a fraction of a second after it
/// started still resumes further on the next time.
const FIRST_CHECKPOINT_BYTES: u64 = 256 << 10;
const FIRST_CHECKPOINT_AFTER: Duration = Duration::from_millis(50);

/// The transfer of one file of a job: the bridge between a source (download/, local.rs) and the record.
pub(crate) struct FileTransfer<'a> {
    shared: &'a Arc<Shared>,
    /// The manager's connection pools (owned by the scheduler).
    clients: &'a Arc<http::Clients>,
    cell: &'a Arc<JobCell>,
    index: usize,
    /// The offset the last flush started at, and when.
    flushed_from: u64,
    flushed_at: Instant,
    /// A flush in flight: the offset it covers and the blocking task doing it.
    flushing: Option<(u64, tokio::task::JoinHandle<std::io::Result<()>>)>,
    /// When the last progress event was queued (progress events are rate-limited).
    progress_event_at: Option<Instant>,
    /// No checkpoint of this task reached the batch yet: the first is flushed as soon as data is
    /// written and committed at once, so a process that dies within a second still made progress.
    pub(crate) first_checkpoint: bool,
    /// The job's own rate limit (from its task's runner), and the offset up to which written
    /// bytes were charged to the buckets.
    bucket: Option<Arc<Bucket>>,
    paced: u64,
}

/// What a source needs to know about the file, copied out of the record.
#[derive(Clone, Debug)]
pub(crate) struct FileView {
    pub remote_url: String,
    pub bytes_total: Option<u64>,
    pub etag: Option<Box<str>>,
    pub last_modified: Option<Box<str>>,
    pub request: http::RequestOptions,
    pub dynamic_content: bool,
    pub max_download_size: Option<u64>,
    pub ranges: Option<Box<[crate::job::FileRange]>>,
}

impl<'a> FileTransfer<'a> {
    pub(super) fn new(
        shared: &'a Arc<Shared>,
        clients: &'a Arc<http::Clients>,
        cell: &'a Arc<JobCell>,
        index: usize,
        first_checkpoint: bool,
    ) -> FileTransfer<'a> {
        let bucket = cell.slot.lock().runner.as_ref().map(|r| r.bucket.clone());
        FileTransfer {
            shared,
            clients,
            cell,
            index,
            flushed_from: 0,
            flushed_at: Instant::now(),
            flushing: None,
            progress_event_at: None,
            first_checkpoint,
            bucket,
            paced: 0,
        }
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub(crate) fn clients_arc(&self) -> Arc<http::Clients> {
        self.clients.clone()
    }

    pub(crate) fn view(&self) -> FileView {
        let slot = self.cell.slot.lock();
        let f = &slot.rec.files[self.index];
        let rec = &slot.rec;
        FileView {
            remote_url: f.remote_url.to_string(),
            bytes_total: f.bytes_total.map(|v| v.get()),
            etag: f.etag.clone(),
            last_modified: f.last_modified.clone(),
            request: http::RequestOptions {
                // Validated when set; a header that fails now is dropped rather than sent.
                headers: rec
                    .extras()
                    .custom_headers
                    .as_deref()
                    .and_then(|h| crate::http_options::parse_headers(h).ok())
                    .unwrap_or_default(),
                server_auth: slot.credentials.get(0),
                security_flags: rec.security_flags,
                proxy_usage: rec.proxy_usage,
                proxy_list: rec.extras().proxy_list.clone(),
                proxy_bypass: rec.extras().proxy_bypass.clone(),
                proxy_auth: slot.credentials.get(1),
                tls: slot.tls(),
            },
            dynamic_content: rec.dynamic_content,
            max_download_size: rec.max_download_size.map(|v| v.get()),
            ranges: f.extras().ranges.clone(),
        }
    }

    /// BG_HTTP_REDIRECT_POLICY_ALLOW_REPORT: the file's remote name becomes the final URL.
    pub(crate) fn report_final_url(&mut self, url: &url::Url) {
        let same = *self.cell.slot.lock().rec.files[self.index].remote_url == *url.as_str();
        if !same {
            self.change_file(|f| f.remote_url = url.as_str().into());
        }
    }

    /// Changes this file's record, in memory and in the store (its row only). A store that
    /// refuses undoes it (`publish`): the record stays what the store holds.
    fn change_file(&self, change: impl FnOnce(&mut crate::job::FileRecord)) {
        let i = self.index;
        let mut slot = self.cell.slot.lock();
        let _ = publish(
            self.shared,
            self.cell,
            &mut slot,
            Touch::Files(vec![i]),
            |rec| {
                change(&mut rec.files[i]);
                Ok(())
            },
        );
    }

    /// The source learnt the file's size and validators (from the response it is about to write).
    pub(crate) fn learn(
        &mut self,
        total: Option<u64>,
        etag: Option<String>,
        last_modified: Option<String>,
    ) {
        let mut slot = self.cell.slot.lock();
        self.receiving(&mut slot);
        let f = &mut slot.rec.files[self.index];
        f.bytes_total = total.and_then(NonMaxU64::new);
        f.etag = etag.map(Box::from);
        f.last_modified = last_modified.map(Box::from);
    }

    /// Bytes are coming: CONNECTING becomes TRANSFERRING (in memory; the checkpoints carry it to
    /// the store), and `Job::wait` hears of it only if the state did change.
    fn receiving(&self, slot: &mut JobSlot) {
        let was = slot.rec.state;
        if let Some(s) = engine::receiving(was).filter(|&s| s != was) {
            slot.rec.state = s;
            self.cell.changed.notify_all();
        }
    }

    /// Dynamic content: the size is known once the body has ended.
    pub(crate) fn size_known(&mut self, total: u64) {
        self.cell.slot.lock().rec.files[self.index].bytes_total = NonMaxU64::new(total);
    }

    /// The partial content is void (validators changed, server restarted the body).
    pub(crate) async fn restart(&mut self, sink: &mut Sink) -> Result<(), Failure> {
        // A flush of the old content must not be recorded after the truncation.
        if let Some((_, task)) = self.flushing.take() {
            let _ = task.await;
        }
        sink.reset().map_err(|e| {
            Failure::local_io("cannot truncate", Path::new("the temporary file"), &e)
        })?;
        self.cell.slot.lock().rec.files[self.index].restart();
        self.flushed_from = 0;
        self.paced = 0;
        self.checkpointed(0);
        Ok(())
    }

    /// Called after each write: updates the progress, collects a finished flush, and starts the
    /// next one when a checkpoint is due. The download goes on while a flush runs; only the bytes
    /// written before it started are recorded when it ends.
    pub(crate) async fn progress(&mut self, sink: &mut Sink) -> Result<(), Failure> {
        let offset = sink.offset();
        let (unfinished, priority) = {
            let mut slot = self.cell.slot.lock();
            let rec = &mut slot.rec;
            let priority = rec.priority;
            let f = &mut rec.files[self.index];
            if offset > f.bytes_transferred {
                rec.no_progress_since_ms = None;
            }
            f.bytes_transferred = offset;
            let unfinished = f.bytes_total.is_none_or(|total| offset < total.get());
            let interval = Duration::from_millis(rec.min_notification_interval_ms.into());
            if self
                .progress_event_at
                .is_none_or(|t| t.elapsed() >= interval)
            {
                self.progress_event_at = Some(Instant::now());
                let event = Event {
                    job: rec.id,
                    kind: EventKind::JobModification,
                    state: rec.state,
                    code: hr::S_OK,
                    file_index: self.index as u32,
                    owner: rec.owner.clone(),
                };
                emit(
                    self.shared,
                    self.cell,
                    event,
                    rec.min_notification_interval_ms,
                );
            }
            (unfinished, priority)
        };
        self.pace(offset, priority).await;
        if self
            .flushing
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
        {
            self.collect_flush().await?;
        }
        let config = &self.shared.config;
        // The first flush of a task comes early (256 KiB or 50 ms into the file), unless the file
        // is finished by then: a finished file is flushed with the others in the next batch.
        let written = offset.saturating_sub(self.flushed_from);
        let first_due = self.first_checkpoint
            && unfinished
            && (written >= FIRST_CHECKPOINT_BYTES
                || self.flushed_at.elapsed() >= FIRST_CHECKPOINT_AFTER);
        let due = written >= config.checkpoint_bytes
            || (written > 0
                && (first_due || self.flushed_at.elapsed() >= config.checkpoint_interval));
        if due && self.flushing.is_none() {
            self.start_flush(sink)?;
        }
        Ok(())
    }

    /// An upload job's file: the same origin manners as a download (Retry-After pauses, one of the
    /// origin's permits), then the upload protocol.
    async fn run_upload(&mut self) -> Result<(), Failure> {
        let remote = self.view().remote_url;
        let url = url::Url::parse(&remote).map_err(|e| {
            Failure::fatal(
                ErrorContext::RemoteFile,
                hr::E_INVALIDARG,
                format!("malformed URL {remote}: {e}"),
            )
        })?;
        let origin = url.origin().ascii_serialization();
        let _permit = self.origin_permit(&origin).await?;
        let mut result = super::upload::upload(self, &url).await;
        self.note_pause(&origin, &mut result);
        result
    }

    /// Fails (TRANSIENT_ERROR with the HTTP code, retrying when the pause ends) if the origin
    /// asked for a pause with Retry-After that is not over: this file waits it out like the job
    /// that was told.
    fn origin_pause(&self, origin: &str) -> Result<(), Failure> {
        let now = now_ms();
        let Some((until, status)) = self.shared.limits.hosts.not_before(origin, now) else {
            return Ok(());
        };
        Err(Failure {
            retry_after_ms: Some(until - now),
            ..Failure::transient(
                ErrorContext::RemoteFile,
                HResult::http(status),
                format!(
                    "{origin} asked for a pause (HTTP {status} with Retry-After); {} ms left",
                    until - now
                ),
            )
        })
    }

    /// One of the origin's transfer permits, for the whole file (one connection at a time), with
    /// the origin's pause checked before the wait and again once the permit is granted: a file
    /// queued behind a transfer that just got a 429 must not go straight to the origin when that
    /// transfer gives its permit back. (None only if the semaphore were closed.)
    async fn origin_permit(
        &self,
        origin: &str,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, Failure> {
        self.origin_pause(origin)?;
        let limit = self.shared.config.max_connections_per_host;
        let permit = self.shared.limits.hosts.permit(origin, limit).await;
        self.origin_pause(origin)?;
        Ok(permit)
    }

    /// A 429 or 503 with Retry-After: the pause is raised to its floor (`hosts::pause_ms`: a
    /// `Retry-After: 0` must not make a tight loop), and every job's next request to the origin
    /// waits too.
    fn note_pause(&self, origin: &str, result: &mut Result<(), Failure>) {
        if let Err(f) = result {
            if let (Some(told), Some(status @ (429 | 503))) =
                (f.retry_after_ms, f.code.http_status())
            {
                let job_delay_ms = self.cell.slot.lock().rec.minimum_retry_delay_s as u64 * 1000;
                let ms = crate::policy::hosts::pause_ms(told, job_delay_ms);
                f.retry_after_ms = Some(ms);
                let limit = self.shared.config.max_connections_per_host;
                let until = now_ms().saturating_add(ms);
                self.shared
                    .limits
                    .hosts
                    .hold_off(origin, limit, until, status);
            }
        }
    }

    pub(crate) fn clients(&self) -> &http::Clients {
        self.clients
    }

    pub(crate) fn upload_start(&self) -> super::upload::UploadStart {
        let slot = self.cell.slot.lock();
        let f = &slot.rec.files[self.index];
        super::upload::UploadStart {
            path: f.local_path.to_string(),
            session: f.extras().upload_session.as_deref().map(str::to_owned),
            reply_url: f.extras().reply.as_ref().map(|r| r.url.to_string()),
            acked: f.bytes_checkpointed,
            total: f.bytes_total.map(|v| v.get()),
            job_type: slot.rec.job_type,
            fragment: (slot.fragment_kib > 0).then(|| u64::from(slot.fragment_kib) << 10),
        }
    }

    /// The fragment length the next upload attempt of this job starts with.
    pub(crate) fn upload_fragment(&mut self, len: u64) {
        self.cell.slot.lock().fragment_kib = u32::try_from(len >> 10).unwrap_or(u32::MAX).max(1);
    }

    /// The size of the file being uploaded (its bytes_total).
    pub(crate) fn upload_size(&mut self, size: u64) {
        let mut slot = self.cell.slot.lock();
        self.receiving(&mut slot);
        slot.rec.files[self.index].bytes_total = NonMaxU64::new(size);
    }

    /// Records the server's session id (None: forget it, a new session comes), durably, before
    /// any fragment of it is sent.
    pub(crate) fn upload_session(&mut self, id: Option<String>) -> Result<(), Failure> {
        let mut slot = self.cell.slot.lock();
        self.record_file(&mut slot, |f| {
            f.set_extras(|e| {
                if id.is_none() {
                    // A new session gives a new reply.
                    e.reply = None;
                }
                e.upload_session = id.map(Box::from);
            })
        })
    }

    /// Changes this file's record and writes its row (an upload's session and reply).
    fn record_file(
        &self,
        slot: &mut JobSlot,
        change: impl FnOnce(&mut crate::job::FileRecord),
    ) -> Result<(), Failure> {
        let i = self.index;
        publish(self.shared, self.cell, slot, Touch::Files(vec![i]), |rec| {
            change(&mut rec.files[i]);
            Ok(())
        })
        .map(|_| ())
        .map_err(|e| Failure::transient(ErrorContext::GeneralQueueManager, e.code, e.message))
    }

    /// The server holds `received` bytes (acknowledged by an Ack, or corrected by a 416, even
    /// backwards): that is the progress, and the checkpoint (nothing local to flush).
    pub(crate) fn upload_acked(&mut self, received: u64, completed: bool) {
        {
            let mut slot = self.cell.slot.lock();
            let rec = &mut slot.rec;
            if received > rec.files[self.index].bytes_transferred {
                rec.no_progress_since_ms = None;
            }
            let f = &mut rec.files[self.index];
            f.bytes_transferred = received;
            f.bytes_checkpointed = received;
        }
        let point = self.point(received, completed);
        self.first_checkpoint = false;
        // Written at once rather than in the next batch: an Ack the store does not hold yet is a
        // whole fragment (up to 13 MB) sent again after a crash; one commit per fragment is cheap.
        self.shared.checkpoints.record(point, None, true);
    }

    /// Upload-reply: the server named the reply at `url`. Records the URL and a temporary file
    /// beside the job's reply file (the one an earlier attempt chose, if any) in one store write
    /// before a byte is fetched, so a restart knows both. Returns the temporary file.
    pub(crate) fn reply_begin(&mut self, url: &str) -> Result<PathBuf, Failure> {
        let i = self.index;
        let mut slot = self.cell.slot.lock();
        let dest = slot.rec.reply_path().ok_or_else(|| {
            Failure::fatal(
                ErrorContext::LocalFile,
                hr::E_INVALIDARG,
                "the job has no reply file name",
            )
        })?;
        let temp = match &slot.rec.files[i].temp_path {
            Some(t) => PathBuf::from(&**t),
            None => localfile::temp_name_beside(&dest)
                .map_err(|e| Failure::local_io("cannot name a temporary file beside", &dest, &e))?,
        };
        let name: Box<str> = temp.to_string_lossy().into();
        self.record_file(&mut slot, |f| {
            f.temp_path = Some(name);
            f.set_extras(|e| {
                e.reply = Some(crate::job::Reply {
                    url: url.into(),
                    total: None,
                    received: 0,
                })
            });
        })?;
        Ok(temp)
    }

    /// Bytes of the reply fetched so far (kept in memory; `reply_done` records the end).
    pub(crate) fn reply_progress(&mut self, received: u64, total: Option<u64>) {
        let mut slot = self.cell.slot.lock();
        slot.rec.files[self.index].set_extras(|e| {
            if let Some(r) = e.reply.as_mut() {
                r.received = received;
                r.total = total.or(r.total);
            }
        });
    }

    /// The reply, `size` bytes, is flushed in its temporary file.
    pub(crate) fn reply_done(&mut self, size: u64) -> Result<(), Failure> {
        let mut slot = self.cell.slot.lock();
        self.record_file(&mut slot, |f| {
            f.set_extras(|e| {
                if let Some(r) = e.reply.as_mut() {
                    (r.received, r.total) = (size, Some(size));
                }
            })
        })
    }

    /// Paces `bytes` just sent against the rate limits, as a download's writes are.
    pub(crate) async fn pace_bytes(&mut self, bytes: u64) {
        let priority = self.cell.slot.lock().rec.priority;
        let offset = self.paced + bytes;
        self.pace(offset, priority).await;
    }

    /// The lowest rate limit that binds this job now (bytes per second), if any.
    pub(crate) fn pace_rate(&self) -> Option<u64> {
        let priority = self.cell.slot.lock().rec.priority;
        let [manager, scheduled] = self.shared.limits.for_priority(priority);
        [self.bucket.as_deref(), manager, scheduled]
            .iter()
            .flatten()
            .map(|b| b.rate())
            .filter(|&r| r > 0)
            .min()
    }

    /// Charges the bytes written since the last call to the job's bucket and, for a background
    /// job, the manager's, and waits for them: the source reads no faster than the limits.
    async fn pace(&mut self, offset: u64, priority: Priority) {
        let bytes = offset.saturating_sub(self.paced);
        self.paced = offset;
        let [manager, scheduled] = self.shared.limits.for_priority(priority);
        let buckets = [self.bucket.as_deref(), manager, scheduled];
        if bytes > 0 && buckets.iter().flatten().any(|b| b.rate() > 0) {
            bandwidth::pace(&buckets, bytes).await;
        }
    }

    fn start_flush(&mut self, sink: &mut Sink) -> Result<(), Failure> {
        self.name_sink(sink)?;
        let file = sink
            .handle()
            .map_err(|e| Failure::local_io("cannot flush", Path::new("the temporary file"), &e))?;
        self.flushing = Some((
            sink.offset(),
            tokio::task::spawn_blocking(move || file.sync_data()),
        ));
        self.flushed_from = sink.offset();
        self.flushed_at = Instant::now();
        Ok(())
    }

    /// Waits for the flush in flight, if any, and records what it covered.
    async fn collect_flush(&mut self) -> Result<(), Failure> {
        let Some((offset, task)) = self.flushing.take() else {
            return Ok(());
        };
        match task.await {
            Ok(Ok(())) => {
                self.checkpointed(offset);
                Ok(())
            }
            Ok(Err(e)) => Err(Failure::local_io(
                "cannot flush",
                Path::new("the temporary file"),
                &e,
            )),
            Err(e) => Err(Failure::fatal(
                ErrorContext::LocalFile,
                hr::E_UNEXPECTED,
                format!("flush task failed: {e}"),
            )),
        }
    }

    /// The transfer of this file stops here (finished, or failed): what reached the file goes to
    /// the checkpoint batch with the file to flush, so a crash or a retry resumes from it without
    /// this task waiting for a sync of its own. `completed`: the whole file is here.
    async fn finish(&mut self, mut sink: Sink, completed: bool) -> Result<(), Failure> {
        self.collect_flush().await?;
        let recorded = self.cell.slot.lock().rec.files[self.index].bytes_checkpointed;
        if sink.offset() == recorded && !completed {
            // An unnamed file goes with its handle: nothing recorded it, nothing is left behind.
            return Ok(());
        }
        // A completed unnamed file stays unnamed for complete to link to its destination (the
        // batch flushes it and holds it a while: `Checkpoints::record_unnamed`), if the queue
        // may keep one more descriptor; the part of a file that stopped is recorded, so it needs
        // its name first.
        let unnamed = completed && sink.is_unnamed() && self.shared.checkpoints.can_hold();
        if !unnamed {
            self.name_sink(&mut sink)?;
        }
        let point = self.point(sink.offset(), completed);
        let file = sink.into_file();
        if completed {
            // BITS gives the file the server's Last-Modified. Set here, on the open file, rather
            // than by name at complete, where the application waits for every file of the job;
            // a courtesy, so a failure to set it is not the file's failure.
            let stamp = point.last_modified.as_deref();
            if let Some(t) = stamp.and_then(|v| httpdate::parse_http_date(v).ok()) {
                let _ = file.set_modified(t);
            }
        }
        let first = std::mem::replace(&mut self.first_checkpoint, false);
        if unnamed {
            self.shared.checkpoints.record_unnamed(point, file);
        } else {
            self.shared.checkpoints.record(point, Some(file), first);
        }
        Ok(())
    }

    /// Gives the file its temporary name if it has none yet (`Sink::open_unnamed`).
    fn name_sink(&self, sink: &mut Sink) -> Result<(), Failure> {
        if !sink.is_unnamed() {
            return Ok(());
        }
        sink.name().map_err(|e| {
            let temp = self.cell.slot.lock().rec.files[self.index]
                .temp_path
                .clone();
            let temp = temp.unwrap_or_default();
            Failure::local_io("cannot name", Path::new(&*temp), &e)
        })
    }

    /// The checkpoint of `offset` bytes, with what the record knows of the file.
    fn point(&self, offset: u64, completed: bool) -> Checkpoint {
        let now = now_ms();
        let mut slot = self.cell.slot.lock();
        let rec = &mut slot.rec;
        rec.modified_ms = rec.modified_ms.max(now);
        let f = &rec.files[self.index];
        Checkpoint {
            job: rec.id,
            seq: rec.seq,
            file: self.index as u32,
            bytes: offset,
            total: f.bytes_total.map(|v| v.get()),
            etag: f.etag.clone(),
            last_modified: f.last_modified.clone(),
            completed,
            at_ms: now,
            temp: f.temp_path.clone(),
            state: rec.state,
        }
    }

    /// `offset` bytes of the file are flushed to disk: the record may say so, and the store will.
    fn checkpointed(&mut self, offset: u64) {
        let point = self.point(offset, false);
        self.cell.slot.lock().rec.files[self.index].bytes_checkpointed = offset;
        let first = std::mem::replace(&mut self.first_checkpoint, false) && offset > 0;
        self.shared.checkpoints.record(point, None, first);
    }

    /// Opens the file's temporary file at its recorded length, creating it if needed. A file
    /// that has none yet takes its derived name (`localfile::temp_name_of`), in memory only: the
    /// store learns it with the file's first checkpoint, and until then the name is found again
    /// from the job and the file, so starting a file costs no store write.
    fn open_sink(&mut self) -> Result<Sink, Failure> {
        let i = self.index;
        let (temp, recorded, fresh, one_file) = {
            let slot = self.cell.slot.lock();
            let one_file = slot.rec.files.len() == 1 && !slot.from_store;
            let f = &slot.rec.files[i];
            match &f.temp_path {
                Some(t) => (PathBuf::from(&**t), f.bytes_transferred, false, one_file),
                None => {
                    let dest = Path::new(&*f.local_path);
                    let t = localfile::temp_name_of(dest, &slot.rec.id, i).map_err(|e| {
                        Failure::local_io("cannot name a temporary file beside", dest, &e)
                    })?;
                    (t, f.bytes_transferred, true, one_file)
                }
            }
        };
        // A one-file job's new file starts without a name (see `Sink::open_unnamed`); where the
        // folder cannot have unnamed files, or with anything to resume, it is opened by name.
        let unnamed = match fresh && recorded == 0 && one_file {
            true => Sink::open_unnamed(&temp).ok().flatten(),
            false => None,
        };
        let sink = match unnamed {
            Some(sink) => sink,
            None => Sink::open(&temp, recorded)
                .map_err(|e| Failure::local_io("cannot open", &temp, &e))?,
        };
        let mut slot = self.cell.slot.lock();
        let f = &mut slot.rec.files[i];
        if fresh {
            f.temp_path = Some(temp.to_string_lossy().into());
        }
        if sink.offset() != recorded {
            f.bytes_transferred = sink.offset();
            f.bytes_checkpointed = f.bytes_checkpointed.min(sink.offset());
        }
        drop(slot);
        self.flushed_from = sink.offset();
        Ok(sink)
    }

    pub(super) async fn run(&mut self) -> Result<(), Failure> {
        if self.cell.slot.lock().rec.job_type != JobType::Download {
            return self.run_upload().await;
        }
        let mut sink = self.open_sink()?;
        let view = self.view();
        if view
            .bytes_total
            .is_some_and(|t| t == sink.offset() && t > 0)
        {
            // Every byte is already here: asking for a range at the end would only earn a 416.
            return self.finish(sink, true).await;
        }
        let url = url::Url::parse(&view.remote_url).map_err(|e| {
            Failure::fatal(
                ErrorContext::RemoteFile,
                hr::E_INVALIDARG,
                format!("malformed URL {}: {e}", view.remote_url),
            )
        })?;
        let origin = url.origin().ascii_serialization();
        // A file:// source has no origin to spare.
        let _permit = match url.scheme() {
            "file" => None,
            _ => self.origin_permit(&origin).await?,
        };
        let mut result = match (url.scheme(), &view.ranges) {
            ("file", _) => local::copy(self, &mut sink, &url, &view).await,
            (_, Some(ranges)) => {
                download::ranges::download_ranges(self, &mut sink, &url, ranges).await
            }
            _ => download::download(self, &mut sink, &url).await,
        };
        self.note_pause(&origin, &mut result);
        // Whatever happened, what reached the file is made durable and recorded, so a crash or a
        // retry resumes from it. A completed file is entirely on disk before it is called completed.
        let finished = self.finish(sink, result.is_ok()).await;
        result.and(finished)
    }
}
