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
use crate::queue::HostAffinity;
use crate::state::{ErrorContext, JobType};
use openbits_protocol::client::{ClientConfig, ClientSession, Event, Next};
use openbits_protocol::error::ProtocolError;
use std::os::unix::fs::FileExt;
use url::Url;

/// The first fragment's length when the link is not measured yet: small enough that a slow link
/// loses little to an interruption; fast links double it per fragment up to the protocol's 13 MB.
const FIRST_FRAGMENT: u64 = 1 << 20;
/// A fragment acknowledged faster than this doubles the next ones; one slower than
/// `SLOW_FRAGMENT` halves them, so an interruption costs about that much time again. On a fast
/// link each fragment costs a round trip and, on the server, a flush before its Ack: the largest
/// fragments keep that small (bench/upload.sh: 1 MiB fragments took 4x curl's time, 8 MiB 1.9x).
const FAST_FRAGMENT: std::time::Duration = std::time::Duration::from_millis(500);
const SLOW_FRAGMENT: std::time::Duration = std::time::Duration::from_secs(2);

/// The next fragment length after one of `len` bytes took `took` to be acknowledged.
fn adapt(len: u64, took: std::time::Duration) -> u64 {
    if took < FAST_FRAGMENT {
        len.saturating_mul(2)
    } else if took > SLOW_FRAGMENT {
        len / 2
    } else {
        len
    }
}

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
    /// The fragment length the job's last attempt ended with (None: not measured yet).
    pub fragment: Option<u64>,
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
    cfg.fragment_len = start.fragment.unwrap_or(FIRST_FRAGMENT);
    cfg.content_name = std::path::Path::new(&start.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let shared = t.shared_arc();
    let mut session = match start.session {
        Some(id) => {
            let host = shared.upload_hosts.lock().get(&id).map(|a| a.host.clone());
            let s = ClientSession::resume(cfg, id, start.acked, host);
            match start.reply_url {
                Some(url) => s.with_reply_url(url),
                None => s,
            }
        }
        None => ClientSession::new(cfg),
    };
    let source = Source {
        file,
        path: &start.path,
        size,
        mtime,
    };
    let result = exchange(t, &mut session, url, &source).await;
    // The next attempt starts from what this one measured, halved if it failed.
    let len = session.fragment_len();
    t.upload_fragment(if result.is_ok() { len } else { len / 2 });
    result
}

/// The local file being uploaded, as it was when the attempt started.
struct Source<'a> {
    file: std::fs::File,
    path: &'a str,
    size: u64,
    mtime: Option<std::time::SystemTime>,
}

/// Sends the session's packets until it is done or fails, adapting the fragment length to how
/// fast the server acknowledges them.
async fn exchange(
    t: &mut FileTransfer<'_>,
    session: &mut ClientSession,
    url: &Url,
    source: &Source<'_>,
) -> Result<(), Failure> {
    let Source {
        file,
        path,
        size,
        mtime,
    } = source;
    let (size, mtime) = (*size, *mtime);
    let shared = t.shared_arc();
    let stall = shared.config.stall_timeout;
    // The largest fragment the server may take: lowered by its 413s.
    let mut accepted = u64::MAX;
    loop {
        let request = match session.next() {
            Next::Send(r) => r,
            Next::DownloadReply { url } => {
                super::reply::fetch(t, &url).await?;
                session.reply_downloaded();
                continue;
            }
            Next::Done => {
                if let Some(id) = session.session_id() {
                    shared.upload_hosts.lock().remove(id);
                }
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
                let now = std::fs::metadata(path).ok();
                let unchanged = now
                    .as_ref()
                    .is_some_and(|m| m.len() == size && m.modified().ok() == mtime);
                if !unchanged {
                    return Err(local_changed(path));
                }
                let mut buf = vec![0u8; r.len() as usize];
                file.read_exact_at(&mut buf, r.first).map_err(|e| {
                    Failure::local_io("cannot read", std::path::Path::new(path), &e)
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
        let sent_at = std::time::Instant::now();
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
        let retry_after_ms;
        let event = match answer {
            Ok((status, headers)) => {
                if let (Some(_), Some(id)) = (&request.host, session.session_id()) {
                    if let Some(a) = shared.upload_hosts.lock().get_mut(id) {
                        a.failing_since = None;
                    }
                }
                retry_after_ms = http::told_retry_after(status, &headers);
                session.on_response(status, &headers)
            }
            Err(f) => {
                session.on_transport_error(&f.description);
                if request.host.is_some() && host_given_up(&shared, session) {
                    // The session lives on the host that cannot be reached: a new one, here.
                    session.fall_back_to_origin();
                    t.upload_session(None)?;
                    t.upload_acked(0, false);
                    continue;
                }
                return Err(f);
            }
        };
        match event {
            Event::SessionCreated { id } => {
                if let Some(host) = session.host_id() {
                    let affinity = HostAffinity {
                        host: host.to_owned(),
                        fallback: session
                            .host_id_fallback_timeout()
                            .map(std::time::Duration::from_secs),
                        failing_since: None,
                    };
                    shared.upload_hosts.lock().insert(id.clone(), affinity);
                }
                t.upload_session(Some(id))?
            }
            Event::Progress { received } => {
                t.upload_acked(received, false);
                // Only whole fragments say how the link copes with that length. Under a rate
                // limit a fragment is at most a second of it: pacing then spreads the bytes
                // instead of sending bursts.
                if sent == session.fragment_len() {
                    let cap = t.pace_rate().unwrap_or(u64::MAX).min(accepted);
                    session.set_fragment_len(adapt(sent, sent_at.elapsed()).min(cap));
                }
                t.pace_bytes(sent).await;
            }
            Event::Resync { received } => t.upload_acked(received, false),
            Event::NewSession => {
                t.upload_session(None)?;
                t.upload_acked(0, false);
            }
            Event::Retry(e) => {
                return Err(Failure {
                    retry_after_ms,
                    ..failure(&e, true)
                })
            }
            Event::Fatal(e) => return Err(failure(&e, false)),
            Event::Authenticate { .. } => {
                return Err(Failure::fatal(
                    ErrorContext::RemoteFile,
                    HResult::http(401),
                    "the server refused the job's credentials (or the job has none)",
                ))
            }
            // Growing back past what the server refused would only earn the same 413 again.
            Event::ShrinkFragment { len } => accepted = len,
            // The last fragment's Ack names the reply: every byte is acknowledged, and a restart
            // must know it (it then fetches the reply instead of sending the file again).
            Event::ReplyReady { .. } => t.upload_acked(session.offset(), false),
            Event::Continue | Event::Complete | Event::Cancelled => {}
        }
    }
}

/// Starts the session's fall-back timer at its host's first failure; true (and the host is
/// forgotten) once the timer has run for the `BITS-Host-Id-Fallback-Timeout`.
fn host_given_up(shared: &crate::queue::Shared, session: &ClientSession) -> bool {
    let Some(id) = session.session_id() else {
        return false;
    };
    let mut hosts = shared.upload_hosts.lock();
    let Some(a) = hosts.get_mut(id) else {
        return false;
    };
    let since = *a.failing_since.get_or_insert_with(std::time::Instant::now);
    if a.fallback.is_none_or(|t| since.elapsed() < t) {
        return false;
    }
    hosts.remove(id);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fragments_grow_on_fast_links_and_shrink_on_slow_ones() {
        assert_eq!(adapt(1 << 20, Duration::from_millis(20)), 2 << 20);
        assert_eq!(adapt(4 << 20, Duration::from_secs(1)), 4 << 20);
        assert_eq!(adapt(4 << 20, Duration::from_secs(5)), 2 << 20);
        // The protocol clamps what this proposes to 5 KB..13 MB.
        let mut s = ClientSession::new(ClientConfig::new("http://h/f", 1 << 30));
        s.set_fragment_len(adapt(13 << 20, Duration::ZERO));
        assert_eq!(s.fragment_len(), openbits_protocol::client::MAX_FRAGMENT);
        s.set_fragment_len(adapt(6 << 10, Duration::from_secs(9)));
        assert_eq!(s.fragment_len(), openbits_protocol::client::MIN_FRAGMENT);
    }
}
