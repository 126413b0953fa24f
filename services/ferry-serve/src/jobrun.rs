//! Running one job in the sandbox, from a side's configuration: shared by the high-side workers and
//! `ferry run --mock`, so that a script behaves the same on the mock as on the private asset.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::config::{RuntimeConfig, WorkerConfig};
use ferry_core::store::{output_row, OutputRow, StoredResult};
use ferry_sandbox::{Isolation, JobOutcome, JobSpec, Limits, Runtime, SandboxError};

/// The sandbox's runtime description for a configured interpreter.
pub fn runtime(name: &str, config: &RuntimeConfig) -> Runtime {
    let env = outside_system_paths(config)
        .then(|| ferry_sandbox::python::inspect(&config.program).ok())
        .flatten();
    runtime_from(name, config, env.as_ref())
}

/// A configured runtime and its content hash, for a worker's setup: its interpreter inspected once for both.
/// The hash is the version `ferry runtime add` would record for the interpreter (`PythonEnv::content_sha256`), so
/// that serve's workers and `ferry worker` name the same environment alike in receipts; empty when the
/// interpreter cannot be inspected.
pub fn configured_runtime(name: &str, config: &RuntimeConfig) -> (Runtime, String) {
    let env = ferry_sandbox::python::inspect(&config.program).ok();
    let sha256 = env
        .as_ref()
        .and_then(|env| env.content_sha256().ok())
        .unwrap_or_default();
    let env = env.filter(|_| outside_system_paths(config));
    (runtime_from(name, config, env.as_ref()), sha256)
}

fn outside_system_paths(config: &RuntimeConfig) -> bool {
    !Runtime::python_default()
        .ro_paths
        .iter()
        .any(|p| config.program.starts_with(p))
}

/// An interpreter outside the system's paths (a virtualenv under /opt, say) gets the mounts its environment
/// (`env`) needs, as `ferry runtime add` works them out; one that could not be inspected keeps the system's paths,
/// and the sandbox's self-check at start says why it cannot run.
fn runtime_from(
    name: &str,
    config: &RuntimeConfig,
    env: Option<&ferry_sandbox::python::PythonEnv>,
) -> Runtime {
    let mut rt = env.map_or_else(Runtime::python_default, |env| env.runtime(name));
    rt.name = name.to_string();
    rt.program = config.program.clone();
    rt.args = config.args.clone();
    rt.env = config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    rt
}

/// The sandbox runtime a job names: one of `[runtimes]` in the configuration, else one the owner registered
/// (`ferry runtime add`), with the paths its registration found it needs; `None` when neither has it.
pub fn runtime_named(
    config: &ferry_core::Config,
    store: &ferry_core::Store,
    name: &str,
) -> Result<Option<Runtime>, ferry_core::StoreError> {
    if let Some(rt) = config.runtimes.get(name) {
        return Ok(Some(runtime(name, rt)));
    }
    Ok(store.runtime(name)?.and_then(|row| {
        let program = row.program?;
        let mounts: Vec<std::path::PathBuf> = row.mounts.iter().map(Into::into).collect();
        let mut rt = ferry_sandbox::python::runtime_with(name, program.as_ref(), &mounts);
        rt.devices = row.info.devices.iter().map(Into::into).collect();
        Some(rt)
    }))
}

/// A runtime's content hash, for run receipts: a registered runtime's recorded one, or a configured runtime's
/// ([`configured_runtime`]).
pub fn runtime_sha256(
    config: &ferry_core::Config,
    store: &ferry_core::Store,
    name: &str,
) -> Result<String, ferry_core::StoreError> {
    if let Some(rt) = config.runtimes.get(name) {
        return Ok(configured_runtime(name, rt).1);
    }
    Ok(store
        .runtime(name)?
        .map(|row| row.info.sha256)
        .unwrap_or_default())
}

/// Every runtime jobs may give on this side, by name: the configured ones, then the registered (or, on the low
/// side, received) ones that no configured one shadows.
pub fn runtime_infos(
    config: &ferry_core::Config,
    store: &ferry_core::Store,
) -> Result<Vec<ferry_core::wire::RuntimeInfo>, ferry_core::StoreError> {
    use ferry_core::wire::RuntimeInfo;
    let mut list: Vec<RuntimeInfo> = config
        .runtimes
        .keys()
        .map(|name| RuntimeInfo::configured(name))
        .collect();
    for row in store.runtimes()? {
        if !config.runtimes.contains_key(&row.info.name) {
            list.push(RuntimeInfo::from(row.info));
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(list)
}

/// The names of [`runtime_infos`].
pub fn runtime_names(
    config: &ferry_core::Config,
    store: &ferry_core::Store,
) -> Result<Vec<String>, ferry_core::StoreError> {
    Ok(runtime_infos(config, store)?
        .into_iter()
        .map(|info| info.name)
        .collect())
}

/// The sandbox's limits from `[worker]`.
pub fn limits(w: &WorkerConfig) -> Limits {
    Limits {
        wall_time: Duration::from_secs(w.wall_time_secs),
        cpu_seconds: w.cpu_secs,
        memory_bytes: w.memory_mb * 1024 * 1024,
        max_processes: w.max_processes,
        max_open_files: w.max_open_files,
        max_output_bytes: w.max_output_mb * 1024 * 1024,
        max_stdio_bytes: w.max_stdio_kb * 1024,
        cpus: None,
    }
}

/// `limits` with what a job asked for (already checked against the caps): its memory, its wall time (and as
/// many CPU seconds), its CPUs.
pub fn apply_resources(limits: &mut Limits, asked: &ferry_core::wire::Resources) {
    if let Some(m) = asked.memory_mb {
        limits.memory_bytes = m * 1024 * 1024;
    }
    if let Some(w) = asked.wall_secs {
        limits.wall_time = Duration::from_secs(w);
        limits.cpu_seconds = w;
    }
    if let Some(c) = asked.cpus {
        limits.cpus = Some(c);
    }
}

/// Isolation from `[worker] sandbox`.
pub fn isolation(w: &WorkerConfig) -> Isolation {
    if w.sandbox == "off" {
        Isolation::Unsandboxed
    } else {
        Isolation::Sandbox
    }
}

/// A job to run.
pub struct Job {
    /// Its id (becomes `FERRY_JOB_ID`).
    pub job_id: String,
    /// The script.
    pub code: String,
    /// `inputs/<name>` and the host file behind it.
    pub inputs: Vec<(String, PathBuf)>,
}

/// Runs `job` on a blocking thread; `cancel` stops it.
pub async fn run(
    job: Job,
    runtime: Runtime,
    limits: Limits,
    isolation: Isolation,
    work_root: PathBuf,
    cancel: Arc<AtomicBool>,
) -> Result<JobOutcome, SandboxError> {
    let spec = JobSpec {
        job_id: job.job_id,
        code: job.code,
        inputs: job.inputs,
        runtime,
        limits,
        isolation,
        work_root,
    };
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || ferry_sandbox::run_job(&spec, &cancel))
        .await
        .unwrap_or_else(|e| {
            Err(SandboxError::SandboxUnavailable(format!(
                "the job's thread failed: {e}"
            )))
        });
    crate::metrics::JOB_RUN_SECONDS.observe_since(started);
    outcome
}

/// The stored form of an outcome.
pub fn stored(outcome: &JobOutcome) -> (StoredResult, Vec<OutputRow>) {
    let result = StoredResult {
        exit_code: outcome.exit_code(),
        summary: outcome.summary(),
        stdout: outcome.stdout.clone(),
        stderr: outcome.stderr.clone(),
        stdout_truncated: outcome.stdout_truncated,
        stderr_truncated: outcome.stderr_truncated,
        unsandboxed: outcome.unsandboxed,
    };
    let outputs = outcome
        .outputs
        .iter()
        .map(|o| output_row(&o.name, o.data.clone()))
        .collect();
    (result, outputs)
}
