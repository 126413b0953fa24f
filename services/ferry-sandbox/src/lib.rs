//! Runs one untrusted job (a researcher's script) in a bubblewrap sandbox, with limits, and collects what it
//! printed and wrote.
//!
//! Start from [`run_job`]: it takes a [`JobSpec`] (code, inputs, [`Runtime`], [`Limits`], [`Isolation`])
//! and returns a [`JobOutcome`] (a [`Termination`], capped stdout and stderr, the [`OutputFile`]s), or a
//! [`SandboxError`] when the job could not be run at all. [`check_available`] is the start-up self-check
//! that lets a service fail closed before taking work.
//!
//! What the job sees: a working directory `/job` holding only `inputs/<asset>` (bind-mounted read-only from
//! the host file, never copied) and `outputs/` (every file written there is a result); its script at
//! `/ferry/job.py`, read-only; the runtime's read-only paths; a private `/proc`, a minimal `/dev`, a small
//! `/tmp`; an environment of `FERRY_JOB_ID`, `PATH`, `HOME=/job`, `LANG`, `PWD` and what the runtime sets.
//! It has no network at all (not even the host's loopback), no capabilities, uid 65534, a seccomp
//! deny-list, and dies with every process it started when it exits, times out or is cancelled.
//! `ISOLATION.md` explains the choices and what each limit stops.
//!
//! Modules:
//! - `spec`: the job description and its validation (asset names, limits, runtime paths).
//! - `command`: the `bwrap`, `setpriv` and `prlimit` command lines and the job's environment.
//! - `run`: spawning, the watch loop (exit, wall clock, cancellation, outputs size), killing, reaping.
//! - `capture`: stdout and stderr kept up to a cap and drained beyond it.
//! - `outputs`: measuring and collecting `outputs/` through descriptors, never following links.
//! - `workdir`: the per-job host directory, removed afterwards.
//! - `outcome`: [`JobOutcome`] and its one-line summary.
//! - `error`: [`SandboxError`].
//! - `python`: Python environments as runtimes: what they need mounted, what they have installed.
//! - `seccomp`: the system-call deny-list bubblewrap installs.
//! - `sys`: the crate's only `unsafe`, a `pre_exec` hook that lets only chosen descriptors cross `exec`.
//!
//! **Invariant:** with [`Isolation::Sandbox`], a job either runs inside bubblewrap or does not run; every
//! failure to set up isolation is a [`SandboxError::SandboxUnavailable`], never a silent fallback.

mod capture;
mod cgroup;
mod command;
mod error;
mod maker;
mod outcome;
mod outputs;
pub mod python;
mod run;
mod seccomp;
mod spec;
mod sys;
mod workdir;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use cgroup::job_cgroups;
pub use command::{SANDBOX_GID, SANDBOX_UID};
pub use error::SandboxError;
pub use outcome::{JobOutcome, OutputCap, OutputFile, RefusedOutput, Termination};
pub use outputs::{MAX_OUTPUT_DEPTH, MAX_OUTPUT_ENTRIES};
pub use spec::{Isolation, JobSpec, Limits, Runtime, JOB_DIR, SCRIPT_DIR};
pub use workdir::{sweep_work_root, SCRATCH_INODES, SHM_INODES};

/// The host programs the sandbox relies on: bubblewrap, and util-linux's `prlimit` and `setpriv`, which
/// run inside the sandbox (so they must lie under the runtime's `ro_paths`, as `/usr/bin` does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    /// `bwrap`.
    pub bwrap: PathBuf,
    /// `prlimit`: applies the resource limits.
    pub prlimit: PathBuf,
    /// `setpriv`: drops the job to the sandbox uid when the worker runs as root.
    pub setpriv: PathBuf,
}

impl Tools {
    /// Looks in the standard places (`/usr/bin`, `/bin`, `/usr/local/bin`; never `$PATH`, which the worker's
    /// environment could point anywhere). A tool found nowhere keeps its `/usr/bin` path, so that running a
    /// job reports it missing.
    pub fn locate() -> Tools {
        let find = |name: &str| {
            ["/usr/bin", "/bin", "/usr/local/bin"]
                .iter()
                .map(|dir| PathBuf::from(dir).join(name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("/usr/bin").join(name))
        };
        Tools {
            bwrap: find("bwrap"),
            prlimit: find("prlimit"),
            setpriv: find("setpriv"),
        }
    }
}

/// Runs one job to completion (blocking; the caller uses `spawn_blocking`). `cancel` is polled; when it
/// becomes true the job's whole process tree is killed and the outcome is [`Termination::Cancelled`].
///
/// The per-job directory under `spec.work_root` is removed before this returns, whatever happened, and no
/// process of the job is left. The sandbox is also tied to the calling thread (bubblewrap's
/// `--die-with-parent`), which this call keeps busy until the job is over.
pub fn run_job(spec: &JobSpec, cancel: &AtomicBool) -> Result<JobOutcome, SandboxError> {
    run_job_with(spec, cancel, &Tools::locate())
}

/// [`run_job`] with explicit tool locations.
pub fn run_job_with(
    spec: &JobSpec,
    cancel: &AtomicBool,
    tools: &Tools,
) -> Result<JobOutcome, SandboxError> {
    run::run(spec, cancel, tools, run::Recheck::Yes)
}

/// Quick self-check that isolation can be set up here (used at service start to fail closed early): runs
/// an empty script under `runtime` in the sandbox (about as long as starting the interpreter) and
/// requires it to exit 0.
pub fn check_available(runtime: &Runtime) -> Result<(), SandboxError> {
    check_available_with(runtime, &Tools::locate())
}

/// [`check_available`] with explicit tool locations.
pub fn check_available_with(runtime: &Runtime, tools: &Tools) -> Result<(), SandboxError> {
    let spec = JobSpec {
        job_id: "ferry-sandbox-self-check".into(),
        code: String::new(),
        inputs: Vec::new(),
        runtime: runtime.clone(),
        limits: Limits {
            wall_time: Duration::from_secs(10),
            ..Limits::default()
        },
        isolation: Isolation::Sandbox,
        work_root: std::env::temp_dir(),
    };
    let outcome = run::run(&spec, &AtomicBool::new(false), tools, run::Recheck::No)?;
    if outcome.succeeded() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&outcome.stderr);
    Err(SandboxError::SandboxUnavailable(format!(
        "an empty {} script failed in the sandbox ({}): {}",
        runtime.name,
        outcome.summary(),
        stderr.trim()
    )))
}
