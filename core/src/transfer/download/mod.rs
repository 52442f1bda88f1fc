//! The download loops: `download` resumes a whole file (`mod.rs`), `download_ranges` fetches
//! the byte ranges of AddFileWithRanges (`ranges.rs`). Both feed `stream_body`, which writes a
//! response body into the file's sink and reports progress to the `FileTransfer`.

pub(crate) mod ranges;

use super::http::{evaluate, get, timeout_failure, with_url, Decision, Want};
use super::{Failure, FileTransfer};
use crate::hresult as hr;
use crate::job;
use crate::localfile::Sink;
use crate::state::ErrorContext;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;
use url::Url;

/// A transfer that receives fewer bytes than this within the stall timeout has stalled.
pub(crate) const LOW_SPEED_BYTES: u64 = 1024;

/// Restarts of one file within one attempt before the server is called broken.
const MAX_RESTARTS: u32 = 3;

/// Downloads the rest of the file into `sink`, resuming from the bytes it holds.
pub(crate) async fn download(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    url: &Url,
) -> Result<(), Failure> {
    let (shared, clients) = (t.shared_arc(), t.clients_arc());
    let stall = shared.config.stall_timeout;
    let mut restarts = 0;
    loop {
        let view = t.view();
        if view.dynamic_content && sink.offset() > 0 {
            // Dynamic content is never resumed: what the server sends now may differ.
            t.restart(sink).await?;
        }
        let offset = sink.offset();
        let (resp, final_url) = get(
            &clients,
            &shared.config,
            url,
            Want::rest_from(offset),
            &view,
            stall,
        )
        .await?;
        if view.request.security_flags & job::REDIRECT_POLICY_MASK
            == job::REDIRECT_POLICY_ALLOW_REPORT
            && &final_url != url
        {
            t.report_final_url(&final_url);
        }
        let decision = evaluate(
            resp.status().as_u16(),
            resp.headers(),
            offset,
            view.bytes_total,
            view.etag.as_deref(),
            view.dynamic_content,
        );
        let too_large = |size: u64| {
            view.max_download_size.filter(|max| size > *max).map(|max| {
                with_url(
                    Failure::fatal(
                        ErrorContext::RemoteFile,
                        hr::E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
                        format!(
                            "the file has {size} bytes; the job's maximum download size is {max}"
                        ),
                    ),
                    &final_url,
                )
            })
        };
        let (start, end, total) = match decision {
            Decision::Fail(f) => return Err(with_url(f, &final_url)),
            Decision::Restart(why) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(with_url(
                        Failure::transient(
                            ErrorContext::RemoteFile,
                            hr::E_INVALID_SERVER_RESPONSE,
                            why,
                        ),
                        &final_url,
                    ));
                }
                t.restart(sink).await?;
                continue;
            }
            Decision::WriteToEnd {
                etag,
                last_modified,
            } => {
                t.learn(None, etag, last_modified);
                let limit = view.max_download_size.unwrap_or(u64::MAX);
                // Past `limit` stream_body reports "more bytes than announced": here that means
                // the maximum download size was reached.
                let result = stream_body(t, sink, resp.into_body(), limit, stall).await;
                if let Err(f) = result {
                    let over =
                        f.code == hr::E_INVALID_SERVER_RESPONSE && view.max_download_size.is_some();
                    return Err(match too_large(limit.saturating_add(1)).filter(|_| over) {
                        Some(failure) => failure,
                        None => with_url(f, &final_url),
                    });
                }
                t.size_known(sink.offset());
                return Ok(());
            }
            Decision::Write {
                start,
                end,
                total,
                etag,
                last_modified,
            } => {
                if let Some(failure) = too_large(total) {
                    return Err(failure);
                }
                if start == 0 && offset > 0 {
                    t.restart(sink).await?;
                }
                t.learn(Some(total), etag, last_modified);
                (start, end, total)
            }
        };
        debug_assert_eq!(start, sink.offset());
        stream_body(t, sink, resp.into_body(), end, stall)
            .await
            .map_err(|f| with_url(f, &final_url))?;
        if sink.offset() == total {
            return Ok(());
        }
        if sink.offset() < end {
            return Err(with_url(
                Failure::transient(
                    ErrorContext::GeneralTransport,
                    hr::E_CONNECTION_CLOSED,
                    format!(
                        "the connection closed after {} of {total} bytes",
                        sink.offset()
                    ),
                ),
                &final_url,
            ));
        }
        // The server sent a shorter range than asked for; ask for the rest.
    }
}

/// Writes the body into `sink` until `end`. Each chunk hyper hands over is written where it
/// belongs, with no copy and no allocation of ours.
pub(super) async fn stream_body(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    mut body: Incoming,
    end: u64,
    stall: Duration,
) -> Result<(), Failure> {
    let timer = tokio::time::sleep(stall);
    tokio::pin!(timer);
    // The stall timer restarts only once LOW_SPEED_BYTES more have arrived: a server that sends
    // a byte now and then (hostile, or a dying link's trickle) times out like a silent one.
    let mut mark = sink.offset();
    loop {
        if sink.offset() - mark >= LOW_SPEED_BYTES {
            mark = sink.offset();
            timer.as_mut().reset(tokio::time::Instant::now() + stall);
        }
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = &mut timer => return Err(timeout_failure(&format!(
                "{} s (or fewer than {LOW_SPEED_BYTES} bytes)",
                stall.as_secs_f64()
            ))),
        };
        let frame = match frame {
            None => return Ok(()),
            Some(Err(e)) => {
                return Err(Failure::transient(
                    ErrorContext::GeneralTransport,
                    hr::E_CONNECTION_CLOSED,
                    format!("the connection failed after {} bytes ({e})", sink.offset()),
                ))
            }
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.len() as u64 > end - sink.offset() {
            return Err(Failure::transient(
                ErrorContext::RemoteFile,
                hr::E_INVALID_SERVER_RESPONSE,
                "the server sent more bytes than it announced",
            ));
        }
        sink.write(&data).map_err(|e| {
            Failure::local_io(
                "cannot write",
                std::path::Path::new("the temporary file"),
                &e,
            )
        })?;
        t.progress(sink).await?;
    }
}
