//! What a job is: its code, inputs, runtime, limits and isolation mode, and the checks made before it runs.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::SandboxError;

/// Where the job's working directory appears inside the sandbox (its cwd and `HOME`).
pub const JOB_DIR: &str = "/job";

/// Where the job's script is bound, read-only, inside the sandbox (outside the working directory).
pub const SCRIPT_DIR: &str = "/ferry";

/// Mount points the sandbox sets up itself; a runtime's `ro_paths` may not overlap them.
pub(crate) const RESERVED_PATHS: [&str; 5] = [JOB_DIR, SCRIPT_DIR, "/proc", "/dev", "/tmp"];

/// An interpreter jobs run under, and the host paths it needs to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// The name jobs give as their `runtime`, e.g. `"python"`.
    pub name: String,
    /// The interpreter's absolute path, e.g. `/usr/bin/python3`. It must lie under one of `ro_paths`.
    pub program: PathBuf,
    /// Arguments placed before the script's path, e.g. `["-I", "-B"]`.
    pub args: Vec<String>,
    /// Environment variables the job sees besides `FERRY_JOB_ID` (they may override `PATH`, `HOME`, `LANG`).
    pub env: Vec<(String, String)>,
    /// Host paths bound read-only into the sandbox at the same place. A path that is a symbolic link on the
    /// host (`/lib -> usr/lib` on merged-/usr systems) is recreated as the same link; a missing path is skipped.
    pub ro_paths: Vec<PathBuf>,
    /// Device nodes under `/dev` passed into the sandbox at the same path (a GPU's `/dev/nvidia0`,
    /// `/dev/nvidiactl`, `/dev/nvidia-uvm`); each must be a character device. None by default.
    pub devices: Vec<PathBuf>,
}

impl Runtime {
    /// Debian's `python3` with `-I -B` (isolated mode, no bytecode files), seeing `/usr`, the `/lib*` and
    /// `/bin` links, and the few files of `/etc` the interpreter and the dynamic loader read. Nothing else
    /// of the host (no `/etc/passwd`, `/home`, `/root`, `/var`) is visible.
    pub fn python_default() -> Runtime {
        let mut ro_paths: Vec<PathBuf> = [
            "/usr",
            "/lib",
            "/lib64",
            "/lib32",
            "/bin",
            "/sbin",
            "/etc/alternatives",
            "/etc/ld.so.cache",
            "/etc/localtime",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        // Debian keeps the interpreter's `sitecustomize.py` under /etc/python3.X.
        if let Ok(entries) = std::fs::read_dir("/etc") {
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
                .map(|e| e.path())
                .collect();
            found.sort();
            ro_paths.extend(found);
        }
        Runtime {
            name: "python".into(),
            program: "/usr/bin/python3".into(),
            args: vec!["-I".into(), "-B".into()],
            env: Vec::new(),
            ro_paths,
            devices: Vec::new(),
        }
    }

    /// The file name the script gets at [`SCRIPT_DIR`]: `job.py` for Python, `job` otherwise.
    pub(crate) fn script_name(&self) -> &'static str {
        if self.name == "python" {
            "job.py"
        } else {
            "job"
        }
    }
}

/// Resource limits for one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from start to kill; the outcome is then [`crate::Termination::TimedOut`].
    pub wall_time: Duration,
    /// CPU seconds per process (`RLIMIT_CPU`): `SIGXCPU` at the limit, `SIGKILL` one second later.
    pub cpu_seconds: u64,
    /// Address space per process in bytes (`RLIMIT_AS`); Python raises `MemoryError` beyond it.
    pub memory_bytes: u64,
    /// Processes and threads the job may have at once (`RLIMIT_NPROC`, counted inside the job's own user
    /// namespace, so concurrent jobs do not share the count). Not enforced by [`Isolation::Unsandboxed`].
    pub max_processes: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
    /// Total bytes of everything under `outputs/`; also the largest single file (`RLIMIT_FSIZE`) and the
    /// size of the job's `/tmp` and `/dev/shm`.
    pub max_output_bytes: u64,
    /// Bytes kept of each of stdout and stderr; the rest is read and dropped.
    pub max_stdio_bytes: u64,
    /// CPUs the job is bound to (the first N of the machine's, with `taskset`; seccomp keeps the job from
    /// widening its affinity), and the thread count numeric libraries are told; `None`: every CPU.
    pub cpus: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(60),
            cpu_seconds: 60,
            memory_bytes: 1 << 30,
            max_processes: 64,
            max_open_files: 256,
            max_output_bytes: 64 << 20,
            max_stdio_bytes: 1 << 20,
            cpus: None,
        }
    }
}

/// Whether the job runs isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Under bubblewrap: own user, pid, network, IPC, UTS, cgroup and mount namespaces, no capabilities,
    /// an unprivileged uid. See `ISOLATION.md`.
    Sandbox,
    /// Development only: runs without namespaces; logs a loud warning and marks the outcome
    /// ([`crate::JobOutcome::unsandboxed`]). Environment clearing, limits (except `max_processes`),
    /// timeouts and output caps still apply.
    Unsandboxed,
}

/// Everything needed to run one job.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The job's id: 1–128 characters of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-` (a UUID fits).
    /// The job sees it as `FERRY_JOB_ID`.
    pub job_id: String,
    /// The script's source text.
    pub code: String,
    /// Assets, as (name, host file): the file is bound read-only at `inputs/<name>` (never copied). Names
    /// are single path components: no `/`, not `.` or `..`, no control characters, at most 255 bytes.
    pub inputs: Vec<(String, PathBuf)>,
    /// The interpreter.
    pub runtime: Runtime,
    /// Resource limits.
    pub limits: Limits,
    /// Sandboxed or (development only) not.
    pub isolation: Isolation,
    /// A fresh per-job directory is created under here (created if missing) and removed afterwards.
    pub work_root: PathBuf,
}

impl JobSpec {
    /// Checks everything that can be checked without touching the job's files.
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        validate_job_id(&self.job_id)?;
        let mut seen = std::collections::BTreeSet::new();
        for (name, _) in &self.inputs {
            validate_asset_name(name)?;
            if !seen.insert(name.as_str()) {
                return Err(bad(format!("asset {name:?} is listed twice")));
            }
        }
        validate_limits(&self.limits)?;
        validate_runtime(&self.runtime)?;
        if !self.work_root.is_absolute() {
            return Err(bad(format!(
                "work_root {} is not an absolute path",
                self.work_root.display()
            )));
        }
        Ok(())
    }
}

fn bad(message: String) -> SandboxError {
    SandboxError::BadSpec(message)
}

fn validate_job_id(id: &str) -> Result<(), SandboxError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty()
        || id.len() > 128
        || id.starts_with('.')
        || id.starts_with('-')
        || !id.chars().all(ok_char)
    {
        return Err(bad(format!(
            "job id {id:?} must be 1-128 characters of A-Z a-z 0-9 . _ - and not start with . or -"
        )));
    }
    Ok(())
}

/// Asset names become a file name under `inputs/`, so anything that could climb out of it is refused.
pub(crate) fn validate_asset_name(name: &str) -> Result<(), SandboxError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is a relative directory name")
    } else if name.contains('/') {
        Some("contains '/'")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(bad(format!("asset name {name:?} {problem}"))),
        None => Ok(()),
    }
}

fn validate_limits(limits: &Limits) -> Result<(), SandboxError> {
    let fields = [
        ("wall_time", limits.wall_time.as_nanos().min(1) as u64),
        ("cpu_seconds", limits.cpu_seconds),
        ("memory_bytes", limits.memory_bytes),
        ("max_processes", limits.max_processes),
        ("max_open_files", limits.max_open_files),
        ("max_output_bytes", limits.max_output_bytes),
        ("max_stdio_bytes", limits.max_stdio_bytes),
    ];
    for (field, value) in fields {
        if value == 0 {
            return Err(bad(format!("limit {field} must be greater than zero")));
        }
    }
    // `RLIMIT_FSIZE` is set one byte above the cap (see `command.rs`); keep that from overflowing.
    if limits.max_output_bytes >= u64::MAX / 2 || limits.cpu_seconds >= u64::MAX / 2 {
        return Err(bad("limits are too large".into()));
    }
    Ok(())
}

fn validate_runtime(runtime: &Runtime) -> Result<(), SandboxError> {
    let nul = |s: &str| s.contains('\0');
    if runtime.args.iter().any(|a| nul(a)) {
        return Err(bad(format!(
            "runtime {:?} has an argument containing NUL",
            runtime.name
        )));
    }
    for (key, value) in &runtime.env {
        if key.is_empty() || key.contains('=') || nul(key) || nul(value) {
            return Err(bad(format!(
                "runtime {:?} sets an invalid environment variable {key:?}",
                runtime.name
            )));
        }
    }
    if !is_clean_absolute(&runtime.program) {
        return Err(bad(format!(
            "runtime {:?}: program {} must be an absolute path without '..'",
            runtime.name,
            runtime.program.display()
        )));
    }
    for path in &runtime.ro_paths {
        if !is_clean_absolute(path) || path == Path::new("/") {
            return Err(bad(format!(
                "runtime {:?}: ro_path {} must be an absolute path other than / and without '..'",
                runtime.name,
                path.display()
            )));
        }
        for reserved in RESERVED_PATHS {
            if path.starts_with(reserved) {
                return Err(bad(format!(
                    "runtime {:?}: ro_path {} overlaps {reserved}, which the sandbox sets up itself",
                    runtime.name,
                    path.display()
                )));
            }
        }
    }
    for device in &runtime.devices {
        let under_dev = is_clean_absolute(device)
            && device.starts_with("/dev")
            && device.components().count() > 2;
        if !under_dev {
            return Err(bad(format!(
                "runtime {:?}: device {} must be a path under /dev",
                runtime.name,
                device.display()
            )));
        }
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(device) {
            Ok(meta) if meta.file_type().is_char_device() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "runtime {:?}: device {} is not a character device",
                    runtime.name,
                    device.display()
                )))
            }
            Err(e) => {
                return Err(bad(format!(
                    "runtime {:?}: device {}: {e}",
                    runtime.name,
                    device.display()
                )))
            }
        }
    }
    if !runtime
        .ro_paths
        .iter()
        .any(|p| runtime.program.starts_with(p))
    {
        return Err(bad(format!(
            "runtime {:?}: program {} is not under any of its ro_paths, so the sandbox could not see it",
            runtime.name,
            runtime.program.display()
        )));
    }
    Ok(())
}

/// Absolute, and made only of normal components (no `.`, `..`).
fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            job_id: "0b7c6f7e-1c1e-4c43-9d43-3f5d1d0e6a10".into(),
            code: String::new(),
            inputs: vec![("data.csv".into(), "/srv/data.csv".into())],
            runtime: Runtime::python_default(),
            limits: Limits::default(),
            isolation: Isolation::Sandbox,
            work_root: "/tmp".into(),
        }
    }

    #[test]
    fn default_spec_is_valid() {
        spec().validate().unwrap();
    }

    #[test]
    fn asset_names_that_climb_out_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc",
            "a\nb",
            &"x".repeat(256),
        ] {
            let mut s = spec();
            s.inputs = vec![(name.to_string(), "/srv/x".into())];
            assert!(
                matches!(s.validate(), Err(SandboxError::BadSpec(_))),
                "{name:?}"
            );
        }
        for name in ["..x", "x..", ".hidden", "data set (v2).csv", "données.csv"] {
            validate_asset_name(name).unwrap();
        }
    }

    #[test]
    fn duplicate_asset_names_are_refused() {
        let mut s = spec();
        s.inputs.push(("data.csv".into(), "/srv/other.csv".into()));
        assert!(matches!(s.validate(), Err(SandboxError::BadSpec(_))));
    }

    #[test]
    fn job_ids_are_checked() {
        for id in ["", "../x", "a/b", ".x", "-x", "a b", &"x".repeat(129)] {
            let mut s = spec();
            s.job_id = id.into();
            assert!(
                matches!(s.validate(), Err(SandboxError::BadSpec(_))),
                "{id:?}"
            );
        }
    }

    #[test]
    fn ro_paths_may_not_expose_root_or_overlap_the_sandbox() {
        for path in [
            "/",
            "/job",
            "/ferry/x",
            "/proc",
            "/dev",
            "/tmp",
            "/usr/../etc",
            "usr",
        ] {
            let mut s = spec();
            s.runtime.ro_paths.push(path.into());
            assert!(
                matches!(s.validate(), Err(SandboxError::BadSpec(_))),
                "{path:?}"
            );
        }
    }

    #[test]
    fn program_must_be_visible() {
        let mut s = spec();
        s.runtime.program = "/opt/python/bin/python3".into();
        assert!(matches!(s.validate(), Err(SandboxError::BadSpec(_))));
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut s = spec();
        s.limits.max_processes = 0;
        assert!(matches!(s.validate(), Err(SandboxError::BadSpec(_))));
        let mut s = spec();
        s.limits.wall_time = Duration::ZERO;
        assert!(matches!(s.validate(), Err(SandboxError::BadSpec(_))));
    }
}
