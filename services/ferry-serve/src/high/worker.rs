//! A worker: takes one job at a time from `ferry.jobs` (prefetch 1), marks it `running`, runs it in the sandbox,
//! stores the result as `finished` and only then acks. A job redelivered after a worker stopped mid-run runs
//! again; one already taken by another worker is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_broker::{Incoming, Session};
use ferry_core::store::{OutputRow, StoredResult};
use ferry_core::wire::{HighJob, HIGH_JOBS_DEAD_QUEUE, HIGH_JOBS_QUEUE};
use ferry_core::{Config, JobState, Side, Store};
use ferry_review::checks::Check;
use tokio::sync::watch;
use tracing::Instrument;

use super::open_store;
use crate::error::Result;
use crate::jobrun;
use crate::supervise::stopped;

pub(super) async fn worker(
    n: usize,
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session.consume(HIGH_JOBS_QUEUE, 1).await?;
    loop {
        let msg = tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            msg = sub.next() => msg?,
        };
        let span = tracing::info_span!(
            "job",
            worker = n,
            job_id = msg.message_id.as_deref().unwrap_or("-")
        );
        let actor = format!("worker-{n}@{}", std::process::id());
        // A message that is no job message at all goes to the dead-letter queue, where operators see it.
        if serde_json::from_slice::<HighJob>(&msg.body).is_err() {
            tracing::warn!(
                "a message on {HIGH_JOBS_QUEUE} is not a job message: dead-lettered to {HIGH_JOBS_DEAD_QUEUE}"
            );
            msg.reject(false).await?;
            continue;
        }
        if let Err(e) = handle_job(&config, &mut store, &msg, &actor)
            .instrument(span)
            .await
        {
            // A second failure of the same delivery is not retried for ever: the job fails with the reason,
            // visibly, and the message is settled; when even that cannot be recorded, it is dead-lettered.
            if msg.redelivered {
                let job_id = serde_json::from_slice::<HighJob>(&msg.body)
                    .ok()
                    .map(|m| m.job_id);
                let reason = format!("the high side could not handle this job twice: {e}");
                if let Some(job_id) = &job_id {
                    if fail_job(&mut store, job_id, &actor, &reason).is_ok() {
                        tracing::error!(job_id, "worker {n}: {e}; the job failed");
                        msg.ack().await?;
                        continue;
                    }
                }
                // Not even its failure can be recorded: it goes to the dead-letter queue for the operators
                // rather than round again.
                tracing::error!(
                    job_id = job_id.as_deref().unwrap_or("-"),
                    "worker {n}: {e}, twice; the message is dead-lettered to {HIGH_JOBS_DEAD_QUEUE}"
                );
                msg.reject(false).await?;
                continue;
            }
            tracing::error!("worker {n}: {e}; requeueing the job");
            tokio::time::sleep(Duration::from_secs(1)).await;
            msg.reject(true).await?;
            continue;
        }
        msg.ack().await?;
    }
}

/// Marks `job_id` failed from whatever non-final state it is in on the high side.
fn fail_job(store: &mut Store, job_id: &str, actor: &str, reason: &str) -> Result<()> {
    let tx = store.begin(Side::High)?;
    tx.transition(
        job_id,
        &[JobState::Exported, JobState::Running],
        JobState::Failed,
        actor,
        Some(reason),
    )?;
    tx.mark_retryable(job_id)?;
    tx.commit()?;
    Ok(())
}

async fn handle_job(config: &Config, store: &mut Store, msg: &Incoming, actor: &str) -> Result<()> {
    let job_id = match serde_json::from_slice::<HighJob>(&msg.body) {
        Ok(m) => m.job_id,
        Err(e) => {
            tracing::warn!("a message on {HIGH_JOBS_QUEUE} is not a job message ({e}): dropped");
            return Ok(());
        }
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
    // Every failure here is the high side's, not the job's (a runtime or asset missing, the sandbox unable to
    // start): `ferry review retry` may queue the job again once it is fixed.
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
        tx.mark_retryable(&job_id)?;
        tx.commit()?;
        Ok(())
    };
    let Some(runtime) = jobrun::runtime_named(config, store, &job.runtime)? else {
        return fail(
            store,
            format!(
                "runtime {:?} is neither configured nor registered on the high side",
                job.runtime
            ),
        );
    };
    let mut limits = jobrun::limits(&config.worker);
    if let Some(asked) = store.resources(&job_id)? {
        // Checked against this side's own caps: the low side's may differ. The job's own request, so a
        // refusal is not retryable.
        if let Err(why) = asked.check(&config.worker) {
            let tx = store.begin(Side::High)?;
            tx.transition(
                &job_id,
                &[JobState::Exported, JobState::Running],
                JobState::Failed,
                actor,
                Some(&format!("not run: {why}")),
            )?;
            tx.commit()?;
            return Ok(());
        }
        jobrun::apply_resources(&mut limits, &asked);
    }
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
    let mut asset_versions = Vec::new();
    for name in &job.assets {
        asset_versions.push(ferry_core::receipt::AssetVersion {
            name: name.clone(),
            version: store
                .asset_version(name)?
                .unwrap_or_else(|| "unrecorded (registered before asset versions)".into()),
        });
    }
    let run_limits = ferry_core::receipt::RunLimits {
        memory_mb: limits.memory_bytes / (1024 * 1024),
        wall_secs: limits.wall_time.as_secs(),
        cpu_secs: limits.cpu_seconds,
        cpus: limits.cpus,
        max_output_bytes: limits.max_output_bytes,
    };
    let runtime_sha256 = jobrun::runtime_sha256(config, store, &job.runtime)?;
    let started_at = ferry_core::time::rfc3339(ferry_core::now());
    let cancel = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_cancel(config.clone(), job_id.clone(), cancel.clone()));
    let outcome = jobrun::run(
        jobrun::Job {
            job_id: job_id.clone(),
            code: job.code.clone(),
            inputs,
        },
        runtime,
        limits,
        jobrun::isolation(&config.worker),
        ferry_transfer::Layout::new(&config.dir).work_dir(),
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
            let (result, outputs, checks) =
                disclosure_checks(config, job.assets.clone(), result, outputs).await?;
            let tx = store.begin(Side::High)?;
            tx.store_result(&job_id, &result, &outputs)?;
            tx.store_checks(&job_id, &checks)?;
            tx.set_run_facts(
                &job_id,
                &ferry_core::receipt::RunFacts {
                    attempt: tx.attempt(&job_id)?,
                    code_sha256: ferry_core::sha256_hex(job.code.as_bytes()),
                    runtime: job.runtime.clone(),
                    runtime_sha256,
                    assets: asset_versions,
                    limits: run_limits,
                    worker: actor.to_string(),
                    started_at,
                    ended_at: ferry_core::time::rfc3339(ferry_core::now()),
                    exit_code: result.exit_code,
                    summary: result.summary.clone(),
                    sandboxed: !result.unsandboxed,
                },
            )?;
            tx.transition(
                &job_id,
                &[JobState::Running],
                JobState::Finished,
                actor,
                None,
            )?;
            tx.commit()?;
            tracing::info!(
                summary = %result.summary,
                outputs = outputs.len(),
                findings = checks.len(),
                "finished; awaiting release"
            );
            Ok(())
        }
    }
}

/// The disclosure checks of a finished job, run off the async threads (they read every output and may build an
/// asset's echo index), before the job is stored as finished: the owner never sees a finished job unchecked.
async fn disclosure_checks(
    config: &Config,
    assets: Vec<String>,
    result: StoredResult,
    outputs: Vec<OutputRow>,
) -> Result<(StoredResult, Vec<OutputRow>, Vec<Check>)> {
    let config = config.clone();
    let task = tokio::task::spawn_blocking(move || -> Result<_> {
        let store = open_store(&config)?;
        let layout = ferry_transfer::Layout::new(&config.dir);
        let checks = ferry_transfer::review::check_job(
            &store,
            &layout,
            &config.review,
            &assets,
            &result,
            &outputs,
        );
        Ok((result, outputs, checks))
    });
    task.await
        .map_err(|e| crate::error::ServeError::Panicked(format!("the disclosure checks: {e}")))?
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
