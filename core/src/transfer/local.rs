//! file:// sources. The source's size and modification time play the part of HTTP's validators: if
//! either changed since the partial copy was made, the copy starts again from 0.

use super::{Failure, FileTransfer, FileView};
use crate::hresult as hr;
use crate::localfile::Sink;
use crate::state::ErrorContext;
use std::os::unix::fs::FileExt;
use std::time::UNIX_EPOCH;
use url::Url;

const CHUNK: usize = 1 << 20;

pub(crate) async fn copy(
    t: &mut FileTransfer<'_>,
    sink: &mut Sink,
    url: &Url,
    view: &FileView,
) -> Result<(), Failure> {
    let remote = |e: &std::io::Error| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::from_io(e),
            format!("cannot read {url}: {e}"),
        )
    };
    let path = url.to_file_path().map_err(|_| {
        Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_INVALIDARG,
            format!("file URL has no local path: {url}"),
        )
    })?;
    let src = std::fs::File::open(&path).map_err(|e| remote(&e))?;
    let meta = src.metadata().map_err(|e| remote(&e))?;
    let total = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let validator = format!("\"{total}-{mtime}\"");
    let last_modified = meta.modified().ok().map(httpdate::fmt_http_date);
    if sink.offset() > 0
        && (view.bytes_total != Some(total) || view.etag.as_deref() != Some(validator.as_str()))
    {
        t.restart(sink).await?;
    }
    if let Some(max) = view.max_download_size.filter(|max| total > *max) {
        return Err(Failure::fatal(
            ErrorContext::RemoteFile,
            hr::E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
            format!("{url} has {total} bytes; the job's maximum download size is {max}"),
        ));
    }
    t.learn(Some(total), Some(validator), last_modified);
    // One buffer per file, reused for every chunk.
    let mut buf = vec![0u8; CHUNK];
    while sink.offset() < total {
        let want = CHUNK.min((total - sink.offset()) as usize);
        let n = src
            .read_at(&mut buf[..want], sink.offset())
            .map_err(|e| remote(&e))?;
        if n == 0 {
            return Err(Failure::transient(
                ErrorContext::RemoteFile,
                hr::E_REMOTE_FILE_CHANGED,
                format!("{url} shrank during the copy"),
            ));
        }
        sink.write(&buf[..n]).map_err(|e| {
            Failure::local_io(
                "cannot write",
                std::path::Path::new("the temporary file"),
                &e,
            )
        })?;
        t.progress(sink).await?;
        // Let a stop request (suspend, cancel) in between chunks.
        tokio::task::yield_now().await;
    }
    Ok(())
}
