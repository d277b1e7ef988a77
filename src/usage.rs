//! Usage persistence (SPEC §4.6): requests update usage in memory (`KeyIndex::touch`); this task
//! writes what changed to the store every `storage.usage_flush_interval`, as one batch and one flush,
//! and once more at shutdown. A crash loses at most one interval of usage and nothing else.

use std::time::Duration;

use tokio::sync::watch;

use crate::state::State;

/// Writes the usage of every key touched since the last flush; returns how many keys were written.
pub async fn flush(state: &State) -> Result<usize, crate::store::StoreError> {
    let batch = state.index().take_dirty();
    if batch.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let store = state.registry.store();
    store.put_usage(&batch)?;
    store.durable().await?;
    state.metrics.observe_usage_flush(started.elapsed());
    Ok(batch.len())
}

/// Flushes every `interval` until `stop` turns true.
pub async fn run(state: &State, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = flush(state).await {
                    tracing::error!(error = %e, "usage flush failed; will retry with the next batch");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
