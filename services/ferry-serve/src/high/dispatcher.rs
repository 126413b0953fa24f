//! The dispatcher: jobs imported into the `dispatch` table (a transactional outbox) are published to the durable
//! `ferry.jobs` queue with publisher confirms, and marked dispatched only once confirmed.

use std::sync::Arc;

use ferry_broker::{Outgoing, Session};
use ferry_core::wire::{HighJob, HIGH_JOBS_QUEUE};
use ferry_core::Config;
use tokio::sync::watch;

use super::open_store;
use crate::error::Result;
use crate::supervise::stopped;
use crate::OUTBOX_POLL;

pub(super) async fn dispatcher(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let store = open_store(&config)?;
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
        }
        for job_id in store.pending_dispatch()? {
            let body = serde_json::to_string(&HighJob {
                job_id: job_id.clone(),
            })
            .expect("a job message serializes");
            let out = Outgoing {
                exchange: "",
                routing_key: HIGH_JOBS_QUEUE,
                body: body.as_bytes(),
                message_id: Some(&job_id),
                kind: Some("job"),
                persistent: true,
                ..Outgoing::default()
            };
            match session.publish(&out).await {
                Ok(()) => {
                    store.dispatched(&job_id)?;
                    tracing::info!(job_id, "queued for the workers");
                }
                Err(e) => {
                    tracing::error!(job_id, "queueing a job: {e}");
                    break;
                }
            }
        }
    }
}
