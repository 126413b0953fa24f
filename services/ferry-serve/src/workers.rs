//! Workers: take jobs from the per-runtime job queues, run them in the sandbox and report over the broker to
//! `ferry serve`, which commits. One code path for the workers inside `ferry serve` (`[worker] count >= 1`) and
//! for stateless `ferry worker` processes on other machines: a worker never opens the state store or the keys;
//! the job message carries what it needs ([`HighJob`]), the results go back as [`WorkerReport`]s.
//!
//! A job's message is acked only once its reports were confirmed by the broker: a worker that dies mid-job has
//! its job redelivered to another, which runs it again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use ferry_broker::{topology, Outgoing, Session};
use ferry_core::config::WorkerSideConfig;
use ferry_core::receipt::{AssetVersion, RunFacts, RunLimits};
use ferry_core::wire::{
    CancelJob, HighJob, ReportedFile, RunKey, WorkerReport, CHUNK_BYTES, HIGH_CANCEL_EXCHANGE,
    HIGH_JOBS_DEAD_QUEUE, HIGH_WORKER_RESULTS_QUEUE,
};
use ferry_sandbox::{Isolation, JobOutcome, Limits, Runtime, Termination};
use tokio::sync::watch;
use tracing::Instrument;

use crate::error::Result;
use crate::jobrun;
use crate::supervise::stopped;

/// A runtime a worker has, with its content hash for receipts.
#[derive(Clone, Debug)]
pub struct WorkerRuntime {
    /// The sandbox's description.
    pub runtime: Runtime,
    /// Its SHA-256 (empty when unknown).
    pub sha256: String,
}

/// What a worker runs jobs with.
#[derive(Clone, Debug)]
pub struct WorkerSetup {
    /// Its name in histories and receipts (each worker task adds `worker-N@`).
    pub name: String,
    /// The runtimes it has: it consumes only their job queues.
    pub runtimes: BTreeMap<String, WorkerRuntime>,
    /// It reads no asset outside this directory.
    pub assets_root: PathBuf,
    /// The sandbox, or none (development only).
    pub isolation: Isolation,
    /// Where job working directories are made.
    pub work_root: PathBuf,
    /// The type of the job queues it declares (the high side's `[broker] queue_type`).
    pub queue_type: ferry_core::config::QueueType,
}

impl WorkerSetup {
    /// Before taking jobs: warns when jobs would run unsandboxed, else starts each of `names` that this setup has
    /// in the sandbox once, so that a broken sandbox stops the process instead of failing every job.
    pub fn check_sandbox<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<()> {
        if matches!(self.isolation, Isolation::Unsandboxed) {
            tracing::warn!(
                "worker.sandbox = \"off\": jobs run WITHOUT isolation; development only"
            );
            return Ok(());
        }
        for name in names {
            if let Some(rt) = self.runtimes.get(name) {
                ferry_sandbox::check_available(&rt.runtime)?;
            }
        }
        Ok(())
    }

    /// Before taking jobs: removes the job directories that workers no longer running (killed mid-job) left in
    /// the work directory.
    pub fn sweep_work_root(&self) {
        let removed = ferry_sandbox::sweep_work_root(&self.work_root);
        if !removed.is_empty() {
            tracing::info!(
                count = removed.len(),
                dir = %self.work_root.display(),
                "removed the job directories of workers no longer running"
            );
        }
    }

    /// The setup of a `ferry worker` process from its configuration.
    pub fn from_config(config: &WorkerSideConfig) -> WorkerSetup {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        let name = config.name.clone().unwrap_or(host);
        let runtimes = config
            .runtimes
            .iter()
            .map(|(n, rt)| {
                let (runtime, sha256) = jobrun::configured_runtime(n, rt);
                (n.clone(), WorkerRuntime { runtime, sha256 })
            })
            .collect();
        WorkerSetup {
            name: format!("{name}:{}", std::process::id()),
            runtimes,
            assets_root: config.assets.clone(),
            isolation: jobrun::isolation(&config.worker),
            work_root: config.dir.join("work"),
            queue_type: config.broker.queue_type,
        }
    }
}

/// How running a job ended.
pub enum Execution {
    /// It ran (whatever its exit).
    Ran(Box<JobOutcome>, Box<RunFacts>),
    /// Stopped on a cancel.
    Cancelled,
    /// This worker could not run it; why.
    CouldNotRun(String),
}

/// The sandbox limits of a job message.
pub fn limits_of(job: &HighJob) -> Limits {
    let l = &job.limits;
    Limits {
        wall_time: std::time::Duration::from_secs(l.wall_secs),
        cpu_seconds: l.cpu_secs,
        memory_bytes: l.memory_mb * 1024 * 1024,
        max_processes: l.max_processes,
        max_open_files: l.max_open_files,
        max_output_bytes: l.max_output_bytes,
        max_stdio_bytes: l.max_stdio_bytes,
        cpus: l.cpus,
    }
}

/// The asset file `path` of asset `name`, if it lies inside `root`.
fn asset_path(root: &Path, name: &str, path: &str) -> std::result::Result<PathBuf, String> {
    let real = std::fs::canonicalize(path).map_err(|e| {
        format!("asset {name:?}: {path} cannot be read on this worker ({e}); is the asset store mounted here?")
    })?;
    if !real.starts_with(root) {
        return Err(format!(
            "asset {name:?}: {path} is outside this worker's asset store {}",
            root.display()
        ));
    }
    Ok(real)
}

/// Runs one self-contained job: the one code path of every worker.
pub async fn execute(
    setup: &WorkerSetup,
    worker: &str,
    job: &HighJob,
    cancel: Arc<AtomicBool>,
) -> Execution {
    let Some(rt) = setup.runtimes.get(&job.runtime) else {
        return Execution::CouldNotRun(format!("worker {worker} has no runtime {:?}", job.runtime));
    };
    let mut inputs = Vec::new();
    for a in &job.assets {
        match asset_path(&setup.assets_root, &a.name, &a.path) {
            Ok(p) => inputs.push((a.name.clone(), p)),
            Err(why) => return Execution::CouldNotRun(why),
        }
    }
    let limits = limits_of(job);
    let started_at = ferry_core::time::rfc3339(ferry_core::now());
    let outcome = jobrun::run(
        jobrun::Job {
            job_id: job.job_id.clone(),
            code: job.code.clone(),
            inputs,
        },
        rt.runtime.clone(),
        limits,
        setup.isolation,
        setup.work_root.clone(),
        cancel,
    )
    .await;
    let outcome = match outcome {
        Err(e) => return Execution::CouldNotRun(format!("the job could not be run: {e}")),
        Ok(o) if matches!(o.termination, Termination::Cancelled) => return Execution::Cancelled,
        Ok(o) => o,
    };
    let facts = RunFacts {
        attempt: job.attempt,
        code_sha256: ferry_core::sha256_hex(job.code.as_bytes()),
        runtime: job.runtime.clone(),
        runtime_sha256: rt.sha256.clone(),
        assets: job
            .assets
            .iter()
            .map(|a| AssetVersion {
                name: a.name.clone(),
                version: a.version.clone(),
            })
            .collect(),
        limits: RunLimits {
            memory_mb: job.limits.memory_mb,
            wall_secs: job.limits.wall_secs,
            cpu_secs: job.limits.cpu_secs,
            cpus: job.limits.cpus,
            max_output_bytes: job.limits.max_output_bytes,
        },
        worker: worker.to_string(),
        started_at,
        ended_at: ferry_core::time::rfc3339(ferry_core::now()),
        exit_code: outcome.exit_code(),
        summary: outcome.summary(),
        sandboxed: !outcome.unsandboxed,
    };
    Execution::Ran(Box::new(outcome), Box::new(facts))
}

/// The reports of one run's end, chunks first.
pub fn reports(run: &RunKey, worker: &str, execution: Execution) -> Vec<WorkerReport> {
    let (outcome, facts) = match execution {
        Execution::Cancelled => {
            return vec![WorkerReport::Cancelled {
                run: run.clone(),
                worker: worker.into(),
            }]
        }
        Execution::CouldNotRun(reason) => {
            return vec![WorkerReport::Failed {
                run: run.clone(),
                worker: worker.into(),
                reason,
            }]
        }
        Execution::Ran(o, f) => (o, f),
    };
    let mut out = Vec::new();
    let mut files = Vec::new();
    let mut file = |name: String, data: &[u8]| {
        let chunks = data.chunks(CHUNK_BYTES);
        files.push(ReportedFile {
            file: name.clone(),
            size: data.len() as u64,
            sha256: ferry_core::sha256_hex(data),
            chunks: chunks.len() as u32,
        });
        for (index, c) in chunks.enumerate() {
            out.push(WorkerReport::Chunk {
                run: run.clone(),
                file: name.clone(),
                index: index as u32,
                data: base64::engine::general_purpose::STANDARD.encode(c),
            });
        }
    };
    file("stdout".into(), &outcome.stdout);
    file("stderr".into(), &outcome.stderr);
    for o in &outcome.outputs {
        file(format!("outputs/{}", o.name), &o.data);
    }
    out.push(WorkerReport::Finished {
        run: run.clone(),
        worker: worker.into(),
        exit_code: outcome.exit_code(),
        summary: outcome.summary(),
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        unsandboxed: outcome.unsandboxed,
        files,
        facts,
    });
    out
}

/// Publishes `reports` to serve with confirms, a few at a time (chunks are large).
pub async fn publish_reports(session: &Session, reports: &[WorkerReport]) -> Result<()> {
    for batch in reports.chunks(8) {
        let bodies: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|r| {
                let run = r.run();
                (
                    format!("{}:{}:{}", run.job_id, run.attempt, run.run_id),
                    serde_json::to_vec(r).expect("a report serializes"),
                )
            })
            .collect();
        let msgs: Vec<Outgoing<'_>> = bodies
            .iter()
            .map(|(id, body)| Outgoing {
                exchange: "",
                routing_key: HIGH_WORKER_RESULTS_QUEUE,
                body,
                message_id: Some(id),
                kind: Some("worker-report"),
                persistent: true,
                ..Outgoing::default()
            })
            .collect();
        session.publish_many(&msgs).await?;
    }
    Ok(())
}

/// One worker: takes a job at a time from the queues of its runtimes, runs it and reports, until `shutdown` (the
/// job in hand is finished first).
pub async fn worker(
    n: usize,
    setup: Arc<WorkerSetup>,
    session: Arc<Session>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut queues = Vec::new();
    for name in setup.runtimes.keys() {
        queues.push(topology::declare_jobs_queue(&session, name, setup.queue_type).await?);
    }
    let shared = setup.queue_type == ferry_core::config::QueueType::Classic;
    let mut jobs = session.consume_many(&queues, 1, shared).await?;
    let mut cancels = session.listen(HIGH_CANCEL_EXCHANGE).await?;
    let actor = format!("worker-{n}@{}", setup.name);
    loop {
        let msg = tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            // Cancels of jobs this worker is not running are for others.
            c = cancels.next() => { c?; continue; }
            msg = jobs.next() => msg?,
        };
        let Ok(job) = serde_json::from_slice::<HighJob>(&msg.body) else {
            tracing::warn!(
                worker = actor,
                "a message on a job queue is not a job message: dead-lettered to {HIGH_JOBS_DEAD_QUEUE}"
            );
            msg.reject(false).await?;
            continue;
        };
        let run = RunKey {
            job_id: job.job_id.clone(),
            attempt: job.attempt,
            run_id: uuid::Uuid::new_v4().to_string(),
        };
        let span =
            tracing::info_span!("job", worker = actor, job_id = job.job_id, run = run.run_id);
        async {
            publish_reports(
                &session,
                &[WorkerReport::Started {
                    run: run.clone(),
                    worker: actor.clone(),
                    redelivered: msg.redelivered,
                }],
            )
            .await?;
            tracing::info!(redelivered = msg.redelivered, "running");
            let cancel = Arc::new(AtomicBool::new(false));
            let exec = execute(&setup, &actor, &job, cancel.clone());
            tokio::pin!(exec);
            let execution = loop {
                tokio::select! {
                    e = &mut exec => break e,
                    c = cancels.next() => {
                        let c = c?;
                        if serde_json::from_slice::<CancelJob>(&c.body)
                            .is_ok_and(|c| c.job_id == job.job_id)
                        {
                            tracing::info!("cancel asked: stopping the job");
                            cancel.store(true, Ordering::SeqCst);
                        }
                    }
                }
            };
            match &execution {
                Execution::Ran(o, _) => tracing::info!(summary = %o.summary(), "ran"),
                Execution::Cancelled => tracing::info!("cancelled"),
                Execution::CouldNotRun(why) => tracing::warn!(why, "could not run"),
            }
            publish_reports(&session, &reports(&run, &actor, execution)).await?;
            // Only now: the reports are with the broker.
            msg.ack().await?;
            Ok::<(), crate::ServeError>(())
        }
        .instrument(span)
        .await?;
    }
}

/// `ferry worker`: `count` workers on the high side's broker until `shutdown`, connecting again while the broker
/// is away. Checks the sandbox with every runtime first.
pub async fn run_worker(
    config: WorkerSideConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let setup = Arc::new(WorkerSetup::from_config(&config));
    setup.check_sandbox(setup.runtimes.keys())?;
    std::fs::create_dir_all(&setup.work_root).map_err(|e| {
        crate::ServeError::Setup(format!(
            "creating the work directory {}: {e}",
            setup.work_root.display()
        ))
    })?;
    setup.sweep_work_root();
    let url = config.amqp_url.clone();
    let count = config.worker.count;
    crate::reconnecting(&config.amqp_url, shutdown, move |rx| {
        let setup = setup.clone();
        let url = url.clone();
        async move {
            let session = Arc::new(Session::connect(&url).await?);
            topology::declare_high(&session, setup.queue_type)
                .await
                .map_err(|source| crate::ServeError::Topology {
                    side: "high",
                    source: Box::new(source),
                })?;
            tracing::info!(
                workers = count,
                runtimes = ?setup.runtimes.keys().collect::<Vec<_>>(),
                name = setup.name,
                "worker serving"
            );
            let result = crate::supervise::supervise(rx, |services| {
                for n in 0..count {
                    let (s, st) = (session.clone(), setup.clone());
                    services.spawn("worker", move |stop| worker(n, st, s, stop));
                }
            })
            .await;
            session.close().await;
            result
        }
    })
    .await
}
