//! The dispatcher: jobs imported into the `dispatch` table (a transactional outbox) are published, with
//! everything a worker needs ([`HighJob`]), to the durable job queue of their runtime with publisher confirms,
//! and marked dispatched only once confirmed. A job the high side cannot run as it stands (its runtime or an
//! asset unknown here, resources over this side's caps) fails here, visibly. The canceller tells the workers to
//! stop the running jobs the researchers cancelled.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_broker::{topology, BrokerError, Outgoing, Session};
use ferry_core::wire::{CancelJob, HighJob, HighJobAsset, HighJobLimits, HIGH_CANCEL_EXCHANGE};
use ferry_core::{Config, JobState, Side, Store};
use tokio::sync::watch;

use super::open_store;
use crate::error::Result;
use crate::jobrun;
use crate::supervise::stopped;
use crate::OUTBOX_POLL;

/// What becomes of a job the dispatcher looked at.
enum Dispatch {
    /// Publish it.
    Queue(Box<HighJob>),
    /// It failed here (already recorded).
    Failed,
    /// Not runnable any more (cancelled, say).
    Skip,
}

pub(super) async fn dispatcher(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut declared = BTreeSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
        }
        for job_id in store.pending_dispatch()? {
            let job = match prepare(&config, &mut store, &job_id)? {
                Dispatch::Queue(job) => job,
                Dispatch::Failed | Dispatch::Skip => {
                    store.dispatched(&job_id)?;
                    continue;
                }
            };
            if !declared.contains(&job.runtime) {
                topology::declare_jobs_queue(&session, &job.runtime, config.broker.queue_type)
                    .await?;
                declared.insert(job.runtime.clone());
            }
            let body = serde_json::to_string(&*job).expect("a job message serializes");
            let queue = ferry_core::wire::high_jobs_queue(&job.runtime);
            let out = Outgoing {
                exchange: "",
                routing_key: &queue,
                body: body.as_bytes(),
                message_id: Some(&job_id),
                kind: Some("job"),
                persistent: true,
                ..Outgoing::default()
            };
            match session.publish(&out).await {
                Ok(()) => {
                    store.dispatched(&job_id)?;
                    tracing::info!(job_id, queue, "queued for the workers");
                }
                Err(e) => {
                    tracing::error!(job_id, "queueing a job: {e}");
                    break;
                }
            }
        }
    }
}

/// The job message of `job_id`, or its failure recorded when this side cannot run it.
fn prepare(config: &Config, store: &mut Store, job_id: &str) -> Result<Dispatch> {
    let Some(job) = store.job(job_id)? else {
        tracing::warn!(job_id, "no such job here: not queued");
        return Ok(Dispatch::Skip);
    };
    if job.state != JobState::Exported {
        tracing::info!(job_id, state = %job.state, "not runnable any more: not queued");
        return Ok(Dispatch::Skip);
    }
    // A failure of the high side, not the job's: `ferry review retry` may queue it again once it is fixed.
    let fail = |store: &mut Store, reason: String, retryable: bool| -> Result<Dispatch> {
        tracing::warn!(job_id, reason, "job failed");
        let tx = store.begin(Side::High)?;
        tx.transition(
            job_id,
            &[JobState::Exported],
            JobState::Failed,
            "dispatcher",
            Some(&reason),
        )?;
        if retryable {
            tx.mark_retryable(job_id)?;
        }
        tx.commit()?;
        Ok(Dispatch::Failed)
    };
    if !jobrun::runtime_names(config, store)?.contains(&job.runtime) {
        return fail(
            store,
            format!(
                "runtime {:?} is neither configured nor registered on the high side",
                job.runtime
            ),
            true,
        );
    }
    let mut limits = jobrun::limits(&config.worker);
    if let Some(asked) = store.resources(job_id)? {
        // Checked against this side's own caps: the low side's may differ. The job's own request, so a refusal
        // is not retryable.
        if let Err(why) = asked.check(&config.worker) {
            return fail(store, format!("not run: {why}"), false);
        }
        jobrun::apply_resources(&mut limits, &asked);
    }
    let mut assets = Vec::new();
    for name in &job.assets {
        let Some(path) = store.asset(name)?.and_then(|a| a.private_path) else {
            return fail(
                store,
                format!("asset {name:?} is not registered on the high side"),
                true,
            );
        };
        assets.push(HighJobAsset {
            name: name.clone(),
            path,
            version: store
                .asset_version(name)?
                .unwrap_or_else(|| "unrecorded (registered before asset versions)".into()),
        });
    }
    let attempt = store.read(Side::High)?.attempt(job_id)?;
    Ok(Dispatch::Queue(Box::new(HighJob {
        job_id: job_id.to_string(),
        attempt,
        runtime: job.runtime,
        code: job.code,
        assets,
        limits: HighJobLimits {
            wall_secs: limits.wall_time.as_secs(),
            cpu_secs: limits.cpu_seconds,
            memory_mb: limits.memory_bytes / (1024 * 1024),
            max_processes: limits.max_processes,
            max_open_files: limits.max_open_files,
            max_output_bytes: limits.max_output_bytes,
            max_stdio_bytes: limits.max_stdio_bytes,
            cpus: limits.cpus,
        },
    })))
}

/// Tells every worker, every half second, to stop each running job whose researcher asked to cancel it, until it
/// is no longer running (the worker that runs it reports it cancelled).
pub(super) async fn canceller(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let running = store.read(Side::High)?.jobs_in_state(JobState::Running)?;
        for job in running.into_iter().filter(|j| j.cancel_requested) {
            let body = serde_json::to_vec(&CancelJob {
                job_id: job.job_id.clone(),
            })
            .expect("a cancel serializes");
            let out = Outgoing {
                exchange: HIGH_CANCEL_EXCHANGE,
                routing_key: "",
                body: &body,
                kind: Some("cancel"),
                ..Outgoing::default()
            };
            match session.publish(&out).await {
                // No worker listens right now: the next round tells the one that takes it.
                Ok(()) | Err(BrokerError::Unroutable { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}
