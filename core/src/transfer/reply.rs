//! The reply of an upload-reply job: an ordinary GET of the URL the server named in its last Ack,
//! into a temporary file beside the job's reply file. Fetched before Close-Session (the server
//! drops the reply with the session) and flushed before it, so a reply the server no longer has
//! is never one the disk might not hold. A retry fetches it again from its start: replies are
//! small, and the server keeps them until Close-Session.

use super::download::LOW_SPEED_BYTES;
use super::http::{evaluate, get, timeout_failure, with_url, Decision, Want};
use super::{Failure, FileTransfer};
use crate::hresult as hr;
use crate::state::ErrorContext;
use http_body_util::BodyExt;
use std::io::Write;
use std::path::Path;
use url::Url;

pub(crate) async fn fetch(t: &mut FileTransfer<'_>, reply_url: &str) -> Result<(), Failure> {
    let temp = t.reply_begin(reply_url)?;
    let url = Url::parse(reply_url).map_err(|e| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALID_SERVER_RESPONSE,
            format!("the server's reply URL {reply_url} is malformed: {e}"),
        )
    })?;
    let (shared, clients) = (t.shared_arc(), t.clients_arc());
    let stall = shared.config.stall_timeout;
    let mut view = t.view();
    // The uploaded file's validators say nothing about the reply.
    (view.etag, view.last_modified, view.bytes_total) = (None, None, None);
    let (resp, final_url) = get(
        &clients,
        &shared.config,
        &url,
        Want::rest_from(0),
        &view,
        stall,
    )
    .await?;
    // A reply may come without a length (an application's streamed answer): it ends with its body.
    let total = match evaluate(resp.status().as_u16(), resp.headers(), 0, None, None, true) {
        Decision::Write { total, .. } => Some(total),
        Decision::WriteToEnd { .. } => None,
        Decision::Fail(f) => return Err(with_url(f, &final_url)),
        Decision::Restart(why) => {
            return Err(with_url(
                Failure::transient(ErrorContext::RemoteFile, hr::E_INVALID_SERVER_RESPONSE, why),
                &final_url,
            ))
        }
    };
    let local = |what: &str, e: &std::io::Error| Failure::local_io(what, &temp, e);
    let mut file = std::fs::File::create(&temp).map_err(|e| local("cannot create", &e))?;
    t.reply_progress(0, total);
    let mut body = resp.into_body();
    let mut received = 0u64;
    // As a download's: the stall timer restarts only after LOW_SPEED_BYTES more.
    let (mut mark, mut deadline) = (0u64, tokio::time::Instant::now() + stall);
    loop {
        if received - mark >= LOW_SPEED_BYTES {
            (mark, deadline) = (received, tokio::time::Instant::now() + stall);
        }
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(with_url(timeout_failure("the reply"), &final_url)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(with_url(
                    Failure::transient(
                        ErrorContext::GeneralTransport,
                        hr::E_CONNECTION_CLOSED,
                        format!("the connection failed after {received} bytes of the reply ({e})"),
                    ),
                    &final_url,
                ))
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if total.is_some_and(|t| received > t) {
            return Err(with_url(
                Failure::transient(
                    ErrorContext::RemoteFile,
                    hr::E_INVALID_SERVER_RESPONSE,
                    "the server sent more reply bytes than it announced",
                ),
                &final_url,
            ));
        }
        file.write_all(&data)
            .map_err(|e| local("cannot write", &e))?;
        t.reply_progress(received, total);
        t.pace_bytes(data.len() as u64).await;
    }
    if total.is_some_and(|t| received < t) {
        return Err(with_url(
            Failure::transient(
                ErrorContext::GeneralTransport,
                hr::E_CONNECTION_CLOSED,
                format!("the connection closed after {received} bytes of the reply"),
            ),
            &final_url,
        ));
    }
    // Durable before Close-Session lets the server forget it: the file, and its name.
    file.sync_data().map_err(|e| local("cannot flush", &e))?;
    if let Some(dir) = temp.parent() {
        crate::localfile::sync_dirs([&dir.to_path_buf()])
            .map_err(|e| Failure::local_io("cannot flush the folder of", Path::new(&temp), &e))?;
    }
    t.reply_done(received)
}
