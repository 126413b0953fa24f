//! The notifier: publishes the state store's pending notifications (its transactional outbox) to each
//! researcher's results queue with publisher confirms, and marks them published only once confirmed.

use std::sync::Arc;

use ferry_broker::{topology, BrokerError, Outgoing, Session};
use ferry_core::wire::RESULTS_EXCHANGE;
use ferry_core::Config;
use tokio::sync::watch;

use super::open_store;
use crate::error::Result;
use crate::supervise::stopped;
use crate::OUTBOX_POLL;

/// Notifications published (and confirmed) per round, at most.
const BATCH: usize = 500;

pub(super) async fn notifier(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    // A full batch means more may be waiting: the next one is read at once. Only an empty (or failed) round waits
    // for the poll interval, so the rate is the broker's confirm rate, not one batch per interval.
    let mut idle = false;
    loop {
        if idle {
            tokio::select! {
                () = stopped(&mut shutdown) => return Ok(()),
                _ = tokio::time::sleep(OUTBOX_POLL) => {}
            }
        } else if *shutdown.borrow() {
            return Ok(());
        }
        idle = true;
        let pending = match store.pending_notifications(BATCH) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("reading notifications: {e}");
                continue;
            }
        };
        if pending.is_empty() {
            continue;
        }
        // An update that carries result files has them read in now, one such update per round, so that the
        // notifier holds one job's results at a time.
        let mut pending = pending;
        if let Some(first) = pending.iter().position(|n| n.fill_outputs) {
            pending.truncate(first + 1);
        }
        let full = pending.len() == BATCH;
        let bodies: Vec<String> = match pending
            .iter()
            .map(|n| store.filled_body(n))
            .collect::<std::result::Result<_, _>>()
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("reading a job update's result files: {e}");
                continue;
            }
        };
        let ids: Vec<String> = pending.iter().map(|n| format!("update-{}", n.id)).collect();
        let msgs: Vec<Outgoing<'_>> = pending
            .iter()
            .zip(&ids)
            .zip(&bodies)
            .map(|((n, id), body)| Outgoing {
                exchange: RESULTS_EXCHANGE,
                routing_key: &n.researcher,
                body: body.as_bytes(),
                message_id: Some(id),
                kind: Some("job-update"),
                persistent: true,
                ..Outgoing::default()
            })
            .collect();
        // All confirmed, or none marked: a failure part-way publishes some twice later, never loses one
        // (updates carry the job's whole state, so a repeat is harmless).
        match session.publish_many(&msgs).await {
            Ok(()) => {
                store.notifications_published(&pending)?;
                idle = !full && !pending.last().is_some_and(|n| n.fill_outputs);
            }
            Err(BrokerError::Unroutable { routing_key, .. }) => {
                tracing::info!(researcher = %routing_key, "declaring the missing results queue");
                topology::declare_results_queue(&session, &routing_key, config.broker.queue_type)
                    .await?;
            }
            Err(e) => tracing::error!("publishing job updates: {e}"),
        }
    }
}
