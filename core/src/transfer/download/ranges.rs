//! AddFileWithRanges: only some byte ranges of the remote file, one after another.

use super::{stream_body, MAX_RESTARTS};
use crate::hresult as hr;
use crate::job::{FileRange, LENGTH_TO_EOF};
use crate::localfile::Sink;
use crate::state::ErrorContext;
use crate::transfer::http::{evaluate_range, get, if_range, with_url, RangeDecision, Want};
use crate::transfer::{Failure, FileTransfer};
use url::Url;

/// AddFileWithRanges: downloads `ranges` of the file one after another into `sink`. Where the
/// sink stands says which range is under way and how far; a retry asks for the rest of that range
/// with If-Range, as a whole-file resume does.
pub(crate) async fn download_ranges(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    url: &Url,
    ranges: &[FileRange],
) -> Result<(), Failure> {
    let (shared, clients) = (t.shared_arc(), t.clients_arc());
    let stall = shared.config.stall_timeout;
    let finite: Option<u64> = ranges.iter().try_fold(0u64, |sum, r| {
        (r.length != LENGTH_TO_EOF).then(|| sum + r.length)
    });
    let mut restarts = 0;
    loop {
        let view = t.view();
        let done = sink.offset();
        if finite == Some(done) || (finite.is_none() && view.bytes_total == Some(done) && done > 0)
        {
            return Ok(());
        }
        // The range the next byte belongs to, and where in the local file that range begins.
        let mut begins = 0u64;
        let Some(range) = ranges.iter().find(|r| {
            let inside = r.length == LENGTH_TO_EOF || done < begins + r.length;
            if !inside {
                begins += r.length;
            }
            inside
        }) else {
            return Ok(());
        };
        let want = Want {
            from: range.offset + (done - begins),
            to: (range.length != LENGTH_TO_EOF).then(|| range.offset + range.length - 1),
        };
        let (resp, final_url) = get(&clients, &shared.config, url, want, &view, stall).await?;
        let sent_if_range = if_range(view.etag.as_deref(), view.last_modified.as_deref()).is_some();
        let fail = |f: Failure| with_url(f, &final_url);
        match evaluate_range(
            resp.status().as_u16(),
            resp.headers(),
            want,
            view.etag.as_deref(),
            sent_if_range,
        ) {
            RangeDecision::Fail(f) => return Err(fail(f)),
            RangeDecision::Restart(why) => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(fail(Failure::transient(
                        ErrorContext::RemoteFile,
                        hr::E_INVALID_SERVER_RESPONSE,
                        why,
                    )));
                }
                t.restart(sink).await?;
            }
            RangeDecision::Write {
                start,
                last,
                total,
                etag,
                last_modified,
            } => {
                if let Some(r) = ranges
                    .iter()
                    .find(|r| r.length != LENGTH_TO_EOF && r.offset + r.length > total)
                {
                    return Err(fail(Failure::fatal(
                        ErrorContext::RemoteFile,
                        hr::E_INVALID_RANGE,
                        format!(
                            "the range {}+{} passes the end of the {total}-byte file",
                            r.offset, r.length
                        ),
                    )));
                }
                // The local file's size: the ranges' lengths, the last one to the end if it says so.
                let size = finite.unwrap_or_else(|| {
                    let (last_range, before) = ranges
                        .split_last()
                        .map_or((0, &[][..]), |(l, b)| (l.offset, b));
                    before.iter().map(|r| r.length).sum::<u64>() + total.saturating_sub(last_range)
                });
                t.learn(Some(size), etag, last_modified);
                stream_body(t, sink, resp.into_body(), done + (last - start + 1), stall)
                    .await
                    .map_err(&fail)?;
            }
        }
    }
}
