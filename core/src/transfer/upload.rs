//! Upload jobs: one file sent with the BITS upload protocol. `openbits-protocol`'s client session
//! decides each packet; this file sends them (`http::send_packet`), reads the fragments from the
//! local file, and records what the server acknowledged.
//!
//! What is durable: the session id, as soon as the server gives it (so a restart continues the
//! same session), and the offset the server acknowledged, as a checkpoint (the server only acks
//! bytes it holds, so there is nothing to flush here). On a restart the session resumes at the
//! recorded offset and the server's 416 corrects it if it has more or less.

use super::file::FileTransfer;
use super::{http, Failure};
use crate::hresult::HResult;
use crate::state::{ErrorContext, JobType};
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use openbits_protocol::error::ProtocolError;
use std::os::unix::fs::FileExt;
use url::Url;

/// The first fragment's size (the protocol shrinks it after 413s).
const FRAGMENT: u64 = 8 << 20;

/// What the record says about the upload when the task starts.
pub(crate) struct UploadStart {
    pub path: String,
    pub session: Option<String>,
    /// Upload-reply: the reply's URL, if the server had named it before the interruption.
    pub reply_url: Option<String>,
    pub acked: u64,
    /// The size recorded by an earlier attempt (None on the first).
    pub total: Option<u64>,
    pub job_type: JobType,
}

fn failure(e: &ProtocolError, transient: bool) -> Failure {
    let context = ErrorContext::from_i32(e.context.0 as i32).unwrap_or(ErrorContext::RemoteFile);
    let code = HResult(e.code.0 as i32);
    let description = format!("{} ({})", code.description(), e.message);
    if transient {
        Failure::transient(context, code, description)
    } else {
        Failure::fatal(context, code, description)
    }
}

fn local_changed(path: &str) -> Failure {
    Failure::fatal(
        ErrorContext::LocalFile,
        crate::hresult::E_LOCAL_FILE_CHANGED,
        format!("{path} changed during the upload"),
    )
}

/// Uploads the job's file to `url`, continuing its session if it has one.
pub(crate) async fn upload(t: &mut FileTransfer<'_>, url: &Url) -> Result<(), Failure> {
    let start = t.upload_start();
    let file = std::fs::File::open(&start.path)
        .map_err(|e| Failure::local_io("cannot read", std::path::Path::new(&start.path), &e))?;
    let meta = file
        .metadata()
        .map_err(|e| Failure::local_io("cannot read", std::path::Path::new(&start.path), &e))?;
    let size = meta.len();
    let mtime = meta.modified().ok();
    if start.total.is_some_and(|t| t != size) {
        return Err(local_changed(&start.path));
    }
    t.upload_size(size);
    let mut cfg = ClientConfig::new(url.as_str(), size);
    cfg.upload_reply = start.job_type == JobType::UploadReply;
    // Each fragment costs a round trip and, on the server, a flush before its Ack: 8 MiB keeps
    // that to about 2% of the time on a fast link (bench/upload.sh: 1 MiB fragments took 4x curl's
    // time), within Windows's 13 MB, and a lost connection costs at most 8 MiB again.
    cfg.fragment_len = FRAGMENT;
    cfg.content_name = std::path::Path::new(&start.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut session = match start.session {
        Some(id) => {
            let s = ClientSession::resume(cfg, id, start.acked, None);
            match start.reply_url {
                Some(url) => s.with_reply_url(url),
                None => s,
            }
        }
        None => ClientSession::new(cfg),
    };
    let stall = t.shared_arc().config.stall_timeout;
    loop {
        let request = match session.next() {
            Next::Send(r) => r,
            Next::DownloadReply { url } => {
                super::reply::fetch(t, &url).await?;
                session.reply_downloaded();
                continue;
            }
            Next::Done => {
                t.upload_acked(size, true);
                return Ok(());
            }
            Next::Cancelled => {
                return Err(Failure::fatal(
                    ErrorContext::RemoteFile,
                    crate::hresult::E_SESSION_NOT_FOUND,
                    "the server cancelled the upload session",
                ))
            }
            Next::Failed(e) => return Err(failure(&e, false)),
        };
        // The fragment's bytes, read now: the file must still be the one being uploaded.
        let body = match request.body {
            Some(r) => {
                let now = std::fs::metadata(&start.path).ok();
                let unchanged = now
                    .as_ref()
                    .is_some_and(|m| m.len() == size && m.modified().ok() == mtime);
                if !unchanged {
                    return Err(local_changed(&start.path));
                }
                let mut buf = vec![0u8; r.len() as usize];
                file.read_exact_at(&mut buf, r.first).map_err(|e| {
                    Failure::local_io("cannot read", std::path::Path::new(&start.path), &e)
                })?;
                bytes::Bytes::from(buf)
            }
            None => bytes::Bytes::new(),
        };
        let sent = body.len() as u64;
        let target = match &request.host {
            // BITS-Host-Id: later packets go to that host (same scheme, port and path).
            Some(host) => {
                let mut u = url.clone();
                if u.set_host(Some(host)).is_err() {
                    url.clone()
                } else {
                    u
                }
            }
            None => url.clone(),
        };
        let view = t.view();
        let answer = http::send_packet(
            t.clients(),
            &t.shared_arc().config,
            &target,
            request.method,
            &request.headers,
            body,
            &view.request,
            stall,
        )
        .await;
        let event = match answer {
            Ok((status, headers)) => session.on_response(status, &headers),
            Err(f) => {
                session.on_transport_error(&f.description);
                return Err(f);
            }
        };
        match event {
            Event::SessionCreated { id } => t.upload_session(Some(id))?,
            Event::Progress { received } => {
                t.upload_acked(received, false);
                t.pace_bytes(sent).await;
            }
            Event::Resync { received } => t.upload_acked(received, false),
            Event::NewSession => {
                t.upload_session(None)?;
                t.upload_acked(0, false);
            }
            Event::Retry(e) => return Err(failure(&e, true)),
            Event::Fatal(e) => return Err(failure(&e, false)),
            Event::Authenticate { .. } => {
                return Err(Failure::fatal(
                    ErrorContext::RemoteFile,
                    HResult::http(401),
                    "the server refused the job's credentials (or the job has none)",
                ))
            }
            Event::Continue
            | Event::ShrinkFragment { .. }
            | Event::ReplyReady { .. }
            | Event::Complete
            | Event::Cancelled => {}
        }
    }
}
