//! Durable progress. The transfer engine flushes a temporary file (fdatasync) and only then hands
//! the offset it covered to `Shared::pending`; this task writes every pending checkpoint of every
//! job in one transaction per interval, so a busy queue costs one database commit a second, not one
//! per file or per chunk.

use super::Shared;
use crate::store::Checkpoint;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.config.checkpoint_interval).await;
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let batch = drain(&shared);
        if batch.is_empty() {
            continue;
        }
        let s = shared.clone();
        // SQLite blocks; keep it off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || write(&s, batch)).await;
    }
}

pub(crate) fn drain(shared: &Shared) -> Vec<Checkpoint> {
    shared.pending.lock().drain().map(|(_, c)| c).collect()
}

/// Writes a batch. If the store refuses (disk full), the batch goes back to wait for the next try,
/// except where a newer checkpoint of the same file arrived meanwhile. Progress already stored is
/// never lost: a failed batch only leaves the store at its previous, still true, checkpoint.
pub(crate) fn write(shared: &Shared, batch: Vec<Checkpoint>) {
    if batch.is_empty() || shared.store.checkpoint(&batch).is_ok() {
        return;
    }
    let mut pending = shared.pending.lock();
    for c in batch {
        pending.entry((c.job, c.file)).or_insert(c);
    }
}
