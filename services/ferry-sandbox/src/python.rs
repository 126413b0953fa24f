//! Python environments as runtimes: what an interpreter (a virtualenv's or an installation's) needs the sandbox to
//! show, what it has installed, and whether it starts in the sandbox.
//!
//! [`inspect`] asks the interpreter itself, outside the sandbox, for its prefixes, `sys.path` and installed
//! distributions; [`PythonEnv::runtime`] is the sandbox [`Runtime`] that binds those paths read-only beside the
//! system's; [`PythonEnv::verify_in_sandbox`] runs the same question inside the sandbox and requires the same
//! answer, so that a registered runtime is one that jobs can use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::spec::{Isolation, JobSpec, Limits, Runtime, RESERVED_PATHS};
use crate::{SandboxError, Tools};

/// Prints, as one JSON object, what the sandbox must show and what the environment offers. Run with `-I` (no
/// user site, no environment variables), as jobs are.
const PROBE: &str = r#"
import json, sys
try:
    from importlib import metadata
    packages = sorted({(d.metadata["Name"] or "", d.version or "") for d in metadata.distributions()})
except Exception as e:
    packages = [["?", "could not list: %s" % e]]
print(json.dumps({
    "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "exec_prefix": sys.exec_prefix,
    "base_exec_prefix": sys.base_exec_prefix,
    "path": [p for p in sys.path if p],
    "packages": [list(p) for p in packages if p[0]],
}))
"#;

#[derive(serde::Deserialize, PartialEq, Eq, Debug)]
struct Probe {
    version: String,
    prefix: PathBuf,
    base_prefix: PathBuf,
    exec_prefix: PathBuf,
    base_exec_prefix: PathBuf,
    path: Vec<PathBuf>,
    packages: Vec<(String, String)>,
}

/// A Python environment, as its interpreter describes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonEnv {
    /// The interpreter as given (a virtualenv's `bin/python` is kept as the link it is: the link is what makes
    /// it the virtualenv's).
    pub program: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
    /// `sys.prefix`: the virtualenv, or the installation.
    pub prefix: PathBuf,
    /// `sys.base_prefix`: the installation a virtualenv was made from (the prefix itself otherwise).
    pub base_prefix: PathBuf,
    /// Installed distributions as (name, version), sorted.
    pub packages: Vec<(String, String)>,
    /// Host paths to bind read-only beyond the system's: the prefixes and any `sys.path` entry outside them, the
    /// fewest that cover them all.
    pub mounts: Vec<PathBuf>,
}

impl PythonEnv {
    /// Whether this is a virtual environment (its prefix differs from its base's).
    pub fn is_virtualenv(&self) -> bool {
        self.prefix != self.base_prefix
    }

    /// The environment's version (`docs/runtimes.md`, "The content hash"): the tree hash of a virtualenv's
    /// directory, or, for an installation (whose prefix is all of `/usr`, say), SHA-256 over the version, the
    /// interpreter's bytes and the package list.
    pub fn content_sha256(&self) -> Result<String, SandboxError> {
        let io = |context: &str, e: String| SandboxError::RuntimeUnavailable {
            name: self.program.display().to_string(),
            reason: format!("{context}: {e}"),
        };
        if self.is_virtualenv() {
            return ferry_core::tree::tree_sha256(&self.prefix)
                .map_err(|e| io("hashing the environment", e.to_string()));
        }
        let real = std::fs::canonicalize(&self.program)
            .map_err(|e| io("resolving the interpreter", e.to_string()))?;
        let mut listing = format!(
            "python {}\nprogram {}\n",
            self.version,
            ferry_core::tree::file_sha256(&real)
                .map_err(|e| io("hashing the interpreter", e.to_string()))?
        );
        for (name, version) in &self.packages {
            listing.push_str(&format!("package {name} {version}\n"));
        }
        Ok(ferry_core::sha256_hex(listing.as_bytes()))
    }

    /// The sandbox runtime named `name` that runs this interpreter: the default Python runtime's system paths,
    /// `-I -B`, and [`PythonEnv::mounts`].
    pub fn runtime(&self, name: &str) -> Runtime {
        runtime_with(name, &self.program, &self.mounts)
    }
}

/// Runs the probe inside the sandbox under `runtime` (normally [`PythonEnv::runtime`]) and requires the answer `env`
/// gave outside: the same prefixes and the same packages. A runtime that fails here would fail every job.
pub fn verify(env: &PythonEnv, runtime: &Runtime) -> Result<(), SandboxError> {
    let name = runtime.name.as_str();
    let spec = JobSpec {
        job_id: "ferry-runtime-check".into(),
        code: PROBE.to_string(),
        inputs: Vec::new(),
        runtime: runtime.clone(),
        limits: Limits {
            wall_time: Duration::from_secs(60),
            cpu_seconds: 60,
            ..Limits::default()
        },
        isolation: Isolation::Sandbox,
        work_root: std::env::temp_dir(),
    };
    let outcome = crate::run::run(
        &spec,
        &AtomicBool::new(false),
        &Tools::locate(),
        crate::run::Recheck::No,
    )?;
    let unavailable = |why: String| SandboxError::RuntimeUnavailable {
        name: name.to_string(),
        reason: why,
    };
    if !outcome.succeeded() {
        return Err(unavailable(format!(
            "it does not start in the sandbox ({}): {}",
            outcome.summary(),
            tail(&String::from_utf8_lossy(&outcome.stderr))
        )));
    }
    let inside: Probe = serde_json::from_slice(&outcome.stdout).map_err(|e| {
        unavailable(format!(
            "its answer in the sandbox is not what the probe prints ({e})"
        ))
    })?;
    if inside.prefix != env.prefix || inside.base_prefix != env.base_prefix {
        return Err(unavailable(format!(
            "in the sandbox it runs from {} (base {}), outside from {} (base {}): the sandbox does not see \
             the same environment",
            inside.prefix.display(),
            inside.base_prefix.display(),
            env.prefix.display(),
            env.base_prefix.display()
        )));
    }
    if inside.packages != env.packages {
        let missing: Vec<String> = env
            .packages
            .iter()
            .filter(|p| !inside.packages.contains(p))
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        return Err(unavailable(format!(
            "in the sandbox it lacks packages it has outside: {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The sandbox runtime for the interpreter `program` with `mounts` beyond the system's paths.
pub fn runtime_with(name: &str, program: &Path, mounts: &[PathBuf]) -> Runtime {
    let mut rt = Runtime::python_default();
    rt.name = name.to_string();
    rt.program = program.to_path_buf();
    for m in mounts {
        if !rt.ro_paths.iter().any(|p| m.starts_with(p)) {
            rt.ro_paths.push(m.clone());
        }
    }
    rt
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

/// Asks the interpreter at `program` (outside the sandbox) what it is. Refuses a path that is not an absolute
/// path to an executable file, an interpreter that does not answer, and an environment that lies where the
/// sandbox puts its own directories (`/tmp`, `/dev`, `/proc`, `/job`, `/ferry`), where a job could never see it.
pub fn inspect(program: &Path) -> Result<PythonEnv, SandboxError> {
    let unavailable = |why: String| SandboxError::RuntimeUnavailable {
        name: program.display().to_string(),
        reason: why,
    };
    if !program.is_absolute() {
        return Err(unavailable("give the interpreter's absolute path".into()));
    }
    let meta = std::fs::metadata(program).map_err(|e| unavailable(format!("{e}")))?;
    if !meta.is_file() {
        return Err(unavailable(
            "it is not a file (give the interpreter, e.g. VENV/bin/python)".into(),
        ));
    }
    let out = Command::new(program)
        .args(["-I", "-B", "-c", PROBE])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .map_err(|e| unavailable(format!("it does not run: {e}")))?;
    if !out.status.success() {
        return Err(unavailable(format!(
            "it does not run as Python 3 ({}): {}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    let probe: Probe = serde_json::from_slice(&out.stdout).map_err(|e| {
        unavailable(format!(
            "it is not a Python 3 interpreter Ferry can use ({e})"
        ))
    })?;
    let mut wanted = vec![
        probe.prefix.clone(),
        probe.base_prefix.clone(),
        probe.exec_prefix.clone(),
        probe.base_exec_prefix.clone(),
    ];
    // `sys.path` entries that exist (a zip of the standard library often does not).
    wanted.extend(probe.path.iter().filter(|p| p.exists()).cloned());
    // Where the link chain of the interpreter ends: a virtualenv's `python` points at the base interpreter.
    if let Ok(real) = std::fs::canonicalize(program) {
        if let Some(dir) = real.parent() {
            wanted.push(dir.to_path_buf());
        }
    }
    let system = Runtime::python_default().ro_paths;
    let mut mounts: Vec<PathBuf> = Vec::new();
    for path in wanted {
        if !path.is_absolute() {
            continue;
        }
        for reserved in RESERVED_PATHS {
            if path.starts_with(reserved) {
                return Err(unavailable(format!(
                    "it lives under {} ({}), which the sandbox replaces with its own: put the environment \
                     elsewhere (e.g. under /opt)",
                    reserved,
                    path.display()
                )));
            }
        }
        if path == Path::new("/") {
            return Err(unavailable(
                "its prefix is /, which the sandbox cannot show whole".into(),
            ));
        }
        if system
            .iter()
            .chain(mounts.iter())
            .any(|p| path.starts_with(p))
        {
            continue;
        }
        mounts.retain(|m| !m.starts_with(&path));
        mounts.push(path);
    }
    mounts.sort();
    Ok(PythonEnv {
        program: program.to_path_buf(),
        version: probe.version,
        prefix: probe.prefix,
        base_prefix: probe.base_prefix,
        packages: probe.packages,
        mounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_interpreter_needs_no_mount_beyond_the_system_paths() {
        let env = inspect(Path::new("/usr/bin/python3")).unwrap();
        assert_eq!(env.prefix, PathBuf::from("/usr"));
        assert!(!env.is_virtualenv());
        assert!(env.mounts.is_empty(), "{:?}", env.mounts);
        assert!(env.version.starts_with("3."), "{}", env.version);
    }

    #[test]
    fn a_missing_or_non_python_program_is_refused_naming_why() {
        let err = inspect(Path::new("/nonexistent/bin/python")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bin/python"), "{err}");
        let err = inspect(Path::new("/usr/bin")).unwrap_err();
        assert!(err.to_string().contains("not a file"), "{err}");
        let err = inspect(Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().contains("not a Python 3"), "{err}");
        let err = inspect(Path::new("bin/python")).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn a_virtualenv_under_tmp_is_refused_because_the_sandbox_hides_tmp() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let venv = dir.path().join("venv");
        let made = Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success());
        let err = inspect(&venv.join("bin/python")).unwrap_err();
        assert!(
            err.to_string()
                .contains("which the sandbox replaces with its own"),
            "{err}"
        );
    }
}
