//! The committer: applies the workers' reports ([`WorkerReport`], on `ferry.worker.results`) to the state store,
//! each once. A run's chunks are spooled to disk (one file each, so that a chunk delivered twice is written
//! twice to the same place, and memory holds one at a time) until its `finished` report, which reassembles and
//! checks them, runs the disclosure checks (they need this side's echo indexes) and stores the result, the checks
//! and the run facts in one transaction. A report about another attempt, or a job no longer running, is dropped:
//! the first run to finish wins.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ferry_broker::{Incoming, Session};
use ferry_core::store::{output_row, OutputRow, StoredResult};
use ferry_core::wire::{
    ReportedFile, RunKey, WorkerReport, HIGH_JOBS_DEAD_QUEUE, HIGH_WORKER_RESULTS_QUEUE,
};
use ferry_core::{Config, JobState, Side, Store};
use ferry_review::checks::Check;
use tokio::sync::watch;

use super::open_store;
use crate::error::{Result, ServeError};
use crate::supervise::stopped;

/// Reports in flight from the broker at once.
const PREFETCH: u16 = 32;

/// What to do with a report's message.
enum Settle {
    /// Applied, or nothing to apply: ack.
    Done,
    /// Not yet applicable (a chunk is still on its way): requeue.
    Later,
}

pub(super) async fn committer(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let spool = spool_root(&config);
    let mut sub = session.consume(HIGH_WORKER_RESULTS_QUEUE, PREFETCH).await?;
    loop {
        let msg = tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            msg = sub.next() => msg?,
        };
        let report = match serde_json::from_slice::<WorkerReport>(&msg.body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "a message on {HIGH_WORKER_RESULTS_QUEUE} is not a worker report ({e}): dead-lettered to \
                     {HIGH_JOBS_DEAD_QUEUE}"
                );
                msg.reject(false).await?;
                continue;
            }
        };
        match apply(&config, &mut store, &spool, report, msg.redelivered).await {
            Ok(Settle::Done) => msg.ack().await?,
            Ok(Settle::Later) => requeue(&msg).await?,
            Err(e) if msg.redelivered => {
                // Not retried for ever: kept for the operators in the dead-letter queue.
                tracing::error!(
                    "applying a worker report: {e}, twice; dead-lettered to {HIGH_JOBS_DEAD_QUEUE}"
                );
                msg.reject(false).await?;
            }
            Err(e) => {
                tracing::error!("applying a worker report: {e}; trying it again");
                requeue(&msg).await?;
            }
        }
    }
}

async fn requeue(msg: &Incoming) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(msg.reject(true).await?)
}

fn spool_root(config: &Config) -> PathBuf {
    config.dir.join("work").join("reports")
}

fn run_dir(spool: &Path, run: &RunKey) -> PathBuf {
    spool
        .join(&run.job_id)
        .join(format!("{}-{}", run.attempt, run.run_id))
}

fn chunk_path(dir: &Path, file: &str, index: u32) -> PathBuf {
    dir.join(format!("{}.{index}", hex_name(file)))
}

fn hex_name(file: &str) -> String {
    file.bytes().map(|b| format!("{b:02x}")).collect()
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = format!("{what} {}", path.display());
    move |e| ServeError::Setup(format!("{what}: {e}"))
}

async fn apply(
    config: &Config,
    store: &mut Store,
    spool: &Path,
    report: WorkerReport,
    redelivered: bool,
) -> Result<Settle> {
    let run = report.run().clone();
    let job_id = run.job_id.as_str();
    let Some(job) = store.job(job_id)? else {
        tracing::warn!(job_id, "a report on no job of this side: dropped");
        return Ok(Settle::Done);
    };
    let attempt = store.read(Side::High)?.attempt(job_id)?;
    if run.attempt != attempt {
        tracing::info!(
            job_id,
            attempt = run.attempt,
            "a report on an earlier attempt: dropped"
        );
        return Ok(Settle::Done);
    }
    let dir = run_dir(spool, &run);
    let over = |dir: &Path| {
        let _ = std::fs::remove_dir_all(dir);
        tracing::info!(job_id, state = %job.state, "a report on a job no longer running: dropped");
        Ok(Settle::Done)
    };
    match report {
        WorkerReport::Started {
            worker,
            redelivered: again,
            ..
        } => {
            match job.state {
                JobState::Exported => {
                    let tx = store.begin(Side::High)?;
                    tx.transition(
                        job_id,
                        &[JobState::Exported],
                        JobState::Running,
                        &worker,
                        None,
                    )?;
                    tx.commit()?;
                }
                // The run's directory says this very report was applied before (delivered twice).
                JobState::Running if dir.exists() => return Ok(Settle::Done),
                JobState::Running => {
                    let why = if again {
                        "run again: the broker redelivered the job (the worker before stopped mid-run)"
                    } else {
                        "run again: the job was queued twice"
                    };
                    let tx = store.begin(Side::High)?;
                    tx.record_rerun(job_id, &worker, &format!("{why}; run {}", run.run_id))?;
                    tx.commit()?;
                    tracing::warn!(job_id, worker, "{why}");
                }
                _ => return over(&dir),
            }
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            tracing::info!(job_id, worker, "running");
            Ok(Settle::Done)
        }
        WorkerReport::Chunk {
            file, index, data, ..
        } => {
            if job.state != JobState::Running {
                return over(&dir);
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|e| ServeError::Setup(format!("a chunk of {file} is not base64: {e}")))?;
            std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
            let path = chunk_path(&dir, &file, index);
            ferry_transfer::fs::write_atomically(&path, &bytes)?;
            Ok(Settle::Done)
        }
        WorkerReport::Cancelled { .. } => {
            if job.state != JobState::Running {
                return over(&dir);
            }
            let tx = store.begin(Side::High)?;
            tx.transition(
                job_id,
                &[JobState::Running],
                JobState::Cancelled,
                &job.researcher,
                Some("cancelled by the researcher while running"),
            )?;
            tx.commit()?;
            let _ = std::fs::remove_dir_all(&dir);
            tracing::info!(job_id, "cancelled");
            Ok(Settle::Done)
        }
        WorkerReport::Failed { worker, reason, .. } => {
            if !matches!(job.state, JobState::Exported | JobState::Running) {
                return over(&dir);
            }
            tracing::warn!(job_id, worker, reason, "job failed");
            fail_retryable(
                store,
                job_id,
                &[JobState::Exported, JobState::Running],
                &worker,
                &reason,
                &dir,
            )
        }
        WorkerReport::Finished {
            worker,
            exit_code,
            summary,
            stdout_truncated,
            stderr_truncated,
            unsandboxed,
            files,
            facts,
            ..
        } => {
            if job.state != JobState::Running {
                return over(&dir);
            }
            let mut read = match reassemble(&dir, &files) {
                Ok(read) => read,
                Err(missing) if !redelivered => {
                    tracing::info!(job_id, missing, "a chunk is still on its way");
                    return Ok(Settle::Later);
                }
                Err(missing) => {
                    let reason = format!(
                        "the worker's result arrived incomplete ({missing}); retry the job"
                    );
                    tracing::error!(job_id, reason);
                    return fail_retryable(
                        store,
                        job_id,
                        &[JobState::Running],
                        &worker,
                        &reason,
                        &dir,
                    );
                }
            };
            let stdout = read.remove("stdout").unwrap_or_default();
            let stderr = read.remove("stderr").unwrap_or_default();
            let result = StoredResult {
                exit_code,
                summary,
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                unsandboxed,
            };
            let outputs: Vec<OutputRow> = files
                .iter()
                .filter_map(|f| {
                    let name = f.file.strip_prefix("outputs/")?;
                    Some(output_row(name, read.remove(&f.file).unwrap_or_default()))
                })
                .collect();
            let (result, outputs, checks) =
                disclosure_checks(config, job.assets.clone(), result, outputs).await?;
            let tx = store.begin(Side::High)?;
            tx.store_result(job_id, &result, &outputs)?;
            tx.store_checks(job_id, &checks)?;
            tx.set_run_facts(job_id, &facts)?;
            tx.transition(
                job_id,
                &[JobState::Running],
                JobState::Finished,
                &worker,
                None,
            )?;
            tx.commit()?;
            let _ = std::fs::remove_dir_all(&dir);
            tracing::info!(
                job_id,
                worker,
                summary = %result.summary,
                outputs = outputs.len(),
                findings = checks.len(),
                "finished; awaiting release"
            );
            Ok(Settle::Done)
        }
    }
}

/// Every file of a finished run from its spooled chunks, checked against its size and hash; `Err` names what is
/// missing or wrong.
fn reassemble(
    dir: &Path,
    files: &[ReportedFile],
) -> std::result::Result<std::collections::BTreeMap<String, Vec<u8>>, String> {
    let mut out = std::collections::BTreeMap::new();
    for f in files {
        let mut data = Vec::with_capacity(usize::try_from(f.size).unwrap_or(0));
        for index in 0..f.chunks {
            let path = chunk_path(dir, &f.file, index);
            let chunk =
                std::fs::read(&path).map_err(|_| format!("chunk {index} of {} missing", f.file))?;
            data.extend_from_slice(&chunk);
        }
        if data.len() as u64 != f.size || ferry_core::sha256_hex(&data) != f.sha256 {
            return Err(format!("{} does not match its size and SHA-256", f.file));
        }
        out.insert(f.file.clone(), data);
    }
    Ok(out)
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
        .map_err(|e| ServeError::Panicked(format!("the disclosure checks: {e}")))?
}

/// Fails `job_id` (from one of `from`) for a reason not its own, so that `ferry review retry` may run it again, and
/// drops its spooled reports.
fn fail_retryable(
    store: &mut Store,
    job_id: &str,
    from: &[JobState],
    worker: &str,
    reason: &str,
    dir: &Path,
) -> Result<Settle> {
    let tx = store.begin(Side::High)?;
    tx.transition(job_id, from, JobState::Failed, worker, Some(reason))?;
    tx.mark_retryable(job_id)?;
    tx.commit()?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(Settle::Done)
}
