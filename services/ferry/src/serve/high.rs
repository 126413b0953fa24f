//! High-side services: the dispatcher, the workers and the inbox watcher.
//!
//! Imported jobs sit in the `dispatch` table (a transactional outbox) until the dispatcher publishes them to the
//! durable `ferry.jobs` queue with publisher confirms. Workers share that queue with a prefetch of one; a worker
//! marks the job `running`, runs it in the sandbox, stores the result as `finished` and only then acks.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_broker::{topology, Incoming, Outgoing, Session};
use ferry_core::wire::HIGH_JOBS_QUEUE;
use ferry_core::{Config, JobState, Side, Store};
use tokio::sync::watch;
use tracing::Instrument;

use super::{inbox_watcher, OUTBOX_POLL};
use crate::jobrun;

pub async fn run(
    config_path: &Path,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    if matches!(
        jobrun::isolation(&config.worker),
        ferry_sandbox::Isolation::Unsandboxed
    ) {
        tracing::warn!("worker.sandbox = \"off\": jobs run WITHOUT isolation; development only");
    } else if let Some(rt) = config.runtimes.get("python") {
        if let Err(e) = ferry_sandbox::check_available(&jobrun::runtime("python", rt)) {
            tracing::error!(
                "the sandbox cannot be set up here, every job will fail until it can: {e}"
            );
        }
    }
    let session = Arc::new(Session::connect(&config.amqp_url).await?);
    topology::declare_high(&session)
        .await
        .context("declaring the high side's queues")?;
    tracing::info!(
        workers = config.worker.count,
        "high side serving: workers on {HIGH_JOBS_QUEUE}"
    );
    let config_path = config_path.to_path_buf();
    let result = super::supervise(shutdown, |stop, services| {
        let (s, c, st) = (session.clone(), config.clone(), stop.clone());
        services.spawn(async move { ("dispatcher", dispatcher(s, c, st).await) });
        for n in 0..config.worker.count {
            let (s, c, st) = (session.clone(), config.clone(), stop.clone());
            services.spawn(async move { ("worker", worker(n, s, c, st).await) });
        }
        services.spawn(async move {
            inbox_watcher(config_path, stop).await;
            ("inbox watcher", Ok(()))
        });
    })
    .await;
    session.close().await;
    result
}

fn open_store(config: &Config) -> Result<Store> {
    Store::open(&config.state_db())
        .with_context(|| format!("opening {}", config.state_db().display()))
}

async fn dispatcher(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let store = open_store(&config)?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
        }
        for job_id in store.pending_dispatch()? {
            let body = serde_json::json!({ "job_id": job_id }).to_string();
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

async fn worker(
    n: usize,
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session.consume(HIGH_JOBS_QUEUE, 1).await?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            msg = sub.next() => msg?,
        };
        let span = tracing::info_span!(
            "job",
            worker = n,
            job_id = msg.message_id.as_deref().unwrap_or("-")
        );
        let actor = format!("worker-{n}@{}", std::process::id());
        if let Err(e) = handle_job(&config, &mut store, &msg, &actor)
            .instrument(span)
            .await
        {
            tracing::error!("worker {n}: {e:#}; requeueing the job");
            tokio::time::sleep(Duration::from_secs(1)).await;
            msg.reject(true).await?;
            continue;
        }
        msg.ack().await?;
    }
}

async fn handle_job(config: &Config, store: &mut Store, msg: &Incoming, actor: &str) -> Result<()> {
    let body: serde_json::Value = match serde_json::from_slice(&msg.body) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("a message on {HIGH_JOBS_QUEUE} is not JSON ({e}): dropped");
            return Ok(());
        }
    };
    let Some(job_id) = body
        .get("job_id")
        .and_then(|v| v.as_str())
        .map(str::to_string)
    else {
        tracing::warn!("a message on {HIGH_JOBS_QUEUE} has no job_id: dropped");
        return Ok(());
    };
    let Some(job) = store.job(&job_id)? else {
        tracing::warn!(job_id, "no such job here: dropped");
        return Ok(());
    };
    match job.state {
        JobState::Exported => {}
        // Redelivered after a worker stopped mid-run: run it again.
        JobState::Running if msg.redelivered => {}
        state => {
            tracing::info!(job_id, %state, "not runnable any more: skipped");
            return Ok(());
        }
    }
    let fail = |store: &mut Store, reason: String| -> Result<()> {
        tracing::warn!(job_id, reason, "job failed");
        let tx = store.begin(Side::High)?;
        tx.transition(
            &job_id,
            &[JobState::Exported, JobState::Running],
            JobState::Failed,
            actor,
            Some(&reason),
        )?;
        tx.commit()?;
        Ok(())
    };
    let Some(rt_config) = config.runtimes.get(&job.runtime) else {
        return fail(
            store,
            format!(
                "runtime {:?} is not configured on the high side",
                job.runtime
            ),
        );
    };
    let mut inputs = Vec::new();
    for name in &job.assets {
        match store.asset(name)?.and_then(|a| a.private_path) {
            Some(p) => inputs.push((name.clone(), p.into())),
            None => {
                return fail(
                    store,
                    format!("asset {name:?} is not registered on the high side"),
                )
            }
        }
    }
    {
        let tx = store.begin(Side::High)?;
        if job.state != JobState::Running {
            match tx.transition(
                &job_id,
                &[JobState::Exported],
                JobState::Running,
                actor,
                None,
            ) {
                Ok(_) => {}
                // Another worker took it first (the job was queued twice): nothing to do here.
                Err(ferry_core::StoreError::WrongState { state, .. }) => {
                    tracing::info!(job_id, %state, "taken by another worker: skipped");
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit()?;
    }
    tracing::info!("running");
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_cancel(config.clone(), job_id.clone(), cancel.clone()));
    let outcome = jobrun::run(
        jobrun::Job {
            job_id: job_id.clone(),
            code: job.code.clone(),
            inputs,
        },
        jobrun::runtime(&job.runtime, rt_config),
        jobrun::limits(&config.worker),
        jobrun::isolation(&config.worker),
        config.work_dir(),
        cancel.clone(),
    )
    .await;
    watcher.abort();
    match outcome {
        Err(e) => fail(store, format!("the job could not be run: {e}")),
        Ok(outcome) if matches!(outcome.termination, ferry_sandbox::Termination::Cancelled) => {
            let tx = store.begin(Side::High)?;
            tx.transition(
                &job_id,
                &[JobState::Running],
                JobState::Cancelled,
                &job.researcher,
                Some("cancelled by the researcher while running"),
            )?;
            tx.commit()?;
            tracing::info!("cancelled");
            Ok(())
        }
        Ok(outcome) => {
            let (result, outputs) = jobrun::stored(&outcome);
            let tx = store.begin(Side::High)?;
            tx.store_result(&job_id, &result, &outputs)?;
            tx.transition(
                &job_id,
                &[JobState::Running],
                JobState::Finished,
                actor,
                None,
            )?;
            tx.commit()?;
            tracing::info!(summary = %result.summary, outputs = outputs.len(), "finished; awaiting release");
            Ok(())
        }
    }
}

async fn watch_cancel(config: Config, job_id: String, cancel: Arc<AtomicBool>) {
    let Ok(store) = open_store(&config) else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(Some(job)) = store.job(&job_id) {
            if job.cancel_requested {
                cancel.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}
