//! The command lines: `bwrap … -- [setpriv … --] prlimit … -- <runtime> <script>`, or, unsandboxed,
//! `prlimit … -- <runtime> <script>`.
//!
//! Two ways to start bubblewrap, depending on who the worker is:
//! - not root: `bwrap` runs as the worker and maps it to uid 65534 in a new user namespace, then disables
//!   further user namespaces (`--disable-userns`);
//! - root: jobs must not run as host root (root is exempt from `RLIMIT_NPROC` and owns every root-owned
//!   file the sandbox shows), but `bwrap` resolves every bind source as the user it runs as, so it cannot
//!   simply be started as `nobody` (a private side directory would be unreachable). So `bwrap` runs as root,
//!   stops after creating the user namespace (`--userns-block-fd`), the worker writes a map of two ids
//!   (0 → 0 for bwrap's own set-up, 65534 → 65534 for the job) and lets it go on, and util-linux's `setpriv`
//!   drops the job to 65534 with no capabilities and `no_new_privs` before anything of the job runs.
//!   `--disable-userns` cannot be combined with that; the seccomp filter refuses new user namespaces in
//!   both modes.
//!
//! Resource limits are applied by util-linux's `prlimit` *inside* the sandbox, after bubblewrap has created
//! the user namespace, rather than by the worker before starting `bwrap`. The kernel counts `RLIMIT_NPROC`
//! per user *per user namespace, and in every ancestor namespace* against the limit that was in force when
//! each namespace was created. Set before `bwrap`, a limit of 64 would also cap the host-wide count of the
//! sandbox uid, so two concurrent jobs would share 64 processes (measured: the second job could fork 8).
//! Set inside, it caps each job's own namespace only.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::spec::{JOB_DIR, SCRIPT_DIR};
use crate::{JobSpec, Limits, Tools};

/// The uid and gid a job runs as, inside the sandbox and, when the worker runs as root, on the host
/// (`nobody`/`nogroup`). Files the job must read (the assets) must be readable by them.
pub const SANDBOX_UID: u32 = 65534;
/// See [`SANDBOX_UID`].
pub const SANDBOX_GID: u32 = 65534;

/// The user-namespace maps written for a root worker: bwrap's own root (needed to create its mount
/// points) and the job's uid, each to itself.
pub(crate) const ROOT_MAPPED_ID_MAP: &str = "0 0 1\n65534 65534 1\n";

/// How `bwrap` gets its privileges (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Privilege {
    /// The worker is not root.
    Unprivileged,
    /// The worker is root; `block` is a socket bwrap waits on (and reports its status to) until the
    /// worker has written the id maps.
    RootMapped {
        /// The descriptor, as numbered in the spawned process.
        block: RawFd,
    },
}

/// The `PATH` jobs get unless their runtime sets one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Descriptors handed to `bwrap` (numbers valid in the spawned process).
pub(crate) struct BwrapFds {
    /// Each input's (name, descriptor).
    pub inputs: Vec<(String, RawFd)>,
    /// `outputs/`.
    pub outputs: RawFd,
    /// The script's text (read until end of file).
    pub script: RawFd,
    /// Where `bwrap` writes its JSON info (the sandbox's init pid and namespaces).
    pub info: RawFd,
    /// The seccomp program, to read until end of file.
    pub seccomp: RawFd,
}

/// How one of the runtime's `ro_paths` appears in the sandbox.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RoMount {
    /// Bound read-only at the same path.
    Bind(PathBuf),
    /// Recreated as a symbolic link (target, path), as on the host.
    Symlink(PathBuf, PathBuf),
}

/// Resolves `ro_paths` on the host: links are recreated as links, missing paths are left out.
pub(crate) fn ro_mounts(ro_paths: &[PathBuf]) -> Vec<RoMount> {
    let mut mounts = Vec::new();
    for path in ro_paths {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
                Ok(target) => mounts.push(RoMount::Symlink(target, path.clone())),
                Err(e) => tracing::debug!(path = %path.display(), error = %e, "skipping ro_path"),
            },
            Ok(_) => mounts.push(RoMount::Bind(path.clone())),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "skipping ro_path"),
        }
    }
    mounts
}

/// The full `bwrap` argument list (without `bwrap` itself).
pub(crate) fn bwrap_args(
    spec: &JobSpec,
    mounts: &[RoMount],
    fds: &BwrapFds,
    tools: &Tools,
    privilege: Privilege,
    scratch: Option<(&Path, &Path)>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRefOs]| {
        for item in items {
            args.push(item.as_os().to_owned());
        }
    };
    let scratch_size = spec.limits.max_output_bytes.to_string();
    let script = format!("{SCRIPT_DIR}/{}", spec.runtime.script_name());
    // Namespaces: user, pid, network (no route anywhere, not even the host's loopback), IPC, UTS, cgroup,
    // mount.
    push(&[&"--unshare-all", &"--unshare-user"]);
    let uid = SANDBOX_UID.to_string();
    let gid = SANDBOX_GID.to_string();
    match privilege {
        Privilege::Unprivileged => {
            push(&[&"--disable-userns", &"--uid", &uid, &"--gid", &gid]);
            push(&[&"--cap-drop", &"ALL"]);
        }
        Privilege::RootMapped { block } => {
            let block = block.to_string();
            // The same socket for both: bwrap's sandbox child closes its status descriptor, so the block
            // descriptor does not leak into the job (bwrap does not close it otherwise).
            push(&[&"--userns-block-fd", &block, &"--json-status-fd", &block]);
            // Only what `setpriv` needs to drop to the job's uid; it then clears them all.
            push(&[&"--cap-drop", &"ALL", &"--cap-add", &"CAP_SETUID"]);
            push(&[&"--cap-add", &"CAP_SETGID", &"--cap-add", &"CAP_SETPCAP"]);
        }
    }
    // Lifetime: the whole sandbox dies if the worker does; a new session (no terminal injection).
    push(&[
        &"--die-with-parent",
        &"--new-session",
        &"--hostname",
        &"ferry-job",
    ]);
    // The runtime's files, read-only. A path deeper than the root's children (a virtualenv under /opt/envs) gets
    // its parents made first, traversable, since bwrap would otherwise create them for root alone.
    let mut made: Vec<&Path> = Vec::new();
    for mount in mounts {
        let RoMount::Bind(path) = mount else { continue };
        let mut parents: Vec<&Path> = path.ancestors().skip(1).collect();
        parents.pop(); // "/"
        for parent in parents.into_iter().rev() {
            let covered = mounts
                .iter()
                .any(|m| matches!(m, RoMount::Bind(b) if parent.starts_with(b)));
            if !covered && !made.contains(&parent) {
                made.push(parent);
                push(&[&"--perms", &"0755", &"--dir", &parent]);
            }
        }
    }
    for mount in mounts {
        match mount {
            RoMount::Bind(path) => push(&[&"--ro-bind", path, path]),
            RoMount::Symlink(target, path) => push(&[&"--symlink", target, path]),
        }
    }
    // Kernel interfaces: a /proc of the job's own pid namespace, a minimal /dev, size-capped scratch.
    push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
    // Sticky and world-writable: for a root worker they belong to the namespace's root, not the job.
    if let Some((tmp, shm)) = scratch {
        // A root worker's: tmpfs it mounted itself, sized and with inode caps (`sys::mount_scratch`).
        push(&[&"--bind", &tmp, &"/tmp", &"--bind", &shm, &"/dev/shm"]);
    } else {
        for dir in ["/tmp", "/dev/shm"] {
            push(&[
                &"--perms",
                &"1777",
                &"--size",
                &scratch_size,
                &"--tmpfs",
                &dir,
            ]);
        }
    }
    // Devices the runtime lists (a GPU's), at the same path; validated as character devices under /dev.
    for device in &spec.runtime.devices {
        push(&[&"--dev-bind", device, device]);
    }
    push(&[&"--remount-ro", &"/dev"]);
    // The working directory: read-only inputs bound from open descriptors (no copy), writable outputs.
    // Directories are made explicitly: bwrap would create the parents of a bind as 0700 and the job's
    // unprivileged user could not enter them.
    let inputs_dir = format!("{JOB_DIR}/inputs");
    push(&[
        &"--dir",
        &JOB_DIR,
        &"--dir",
        &inputs_dir,
        &"--dir",
        &SCRIPT_DIR,
    ]);
    for (name, fd) in &fds.inputs {
        push(&[
            &"--ro-bind-fd",
            &fd.to_string(),
            &format!("{inputs_dir}/{name}"),
        ]);
    }
    let outputs_dir = format!("{JOB_DIR}/outputs");
    push(&[&"--bind-fd", &fds.outputs.to_string(), &outputs_dir]);
    // The script is copied (it is small; intake caps it) from a memfd into the sandbox's own tmpfs.
    push(&[
        &"--perms",
        &"0444",
        &"--ro-bind-data",
        &fds.script.to_string(),
        &script,
    ]);
    // Everything else (the sandbox's root, /job itself, /ferry) is read-only.
    push(&[&"--remount-ro", &"/"]);
    push(&[&"--chdir", &JOB_DIR, &"--info-fd", &fds.info.to_string()]);
    push(&[&"--seccomp", &fds.seccomp.to_string()]);
    push(&[&"--"]);
    if let Privilege::RootMapped { .. } = privilege {
        push(&[&tools.setpriv]);
        push(&[
            &format!("--reuid={SANDBOX_UID}"),
            &format!("--regid={SANDBOX_GID}"),
        ]);
        push(&[
            &"--clear-groups",
            &"--inh-caps=-all",
            &"--bounding-set=-all",
        ]);
        push(&[&"--no-new-privs", &"--"]);
    }
    args.extend(job_command(spec, &tools.prlimit, &script, true));
    args
}

/// `prlimit <limits> -- <program> <args> <script>`.
pub(crate) fn job_command(
    spec: &JobSpec,
    prlimit: &Path,
    script: &str,
    sandboxed: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![prlimit.into()];
    args.extend(
        prlimit_args(&spec.limits, sandboxed)
            .into_iter()
            .map(OsString::from),
    );
    args.push("--".into());
    args.push(spec.runtime.program.clone().into());
    args.extend(spec.runtime.args.iter().map(OsString::from));
    args.push(script.into());
    args
}

/// Soft and hard limits, so the job cannot raise them again.
pub(crate) fn prlimit_args(limits: &Limits, sandboxed: bool) -> Vec<String> {
    let mut args = vec![
        format!("--as={}", limits.memory_bytes),
        // SIGXCPU at the limit (catchable), SIGKILL a second later.
        format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds + 1),
        format!("--nofile={}", limits.max_open_files),
        // One byte over the outputs cap: a single file reaching it proves the cap was passed, which the
        // final measurement reports as `OutputLimit` (Python ignores SIGXFSZ and gets EFBIG instead).
        format!("--fsize={}", limits.max_output_bytes + 1),
        "--core=0".into(),
    ];
    if sandboxed {
        // Outside a user namespace this would count every process of the worker's user (and nothing for
        // root), so it is only applied in the sandbox.
        args.insert(0, format!("--nproc={}", limits.max_processes));
    }
    args
}

/// The job's whole environment: nothing of the worker's own.
pub(crate) fn job_env(spec: &JobSpec, home: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), home.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (key, value) in &spec.runtime.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env.retain(|(k, _)| k != "FERRY_JOB_ID");
    env.push(("FERRY_JOB_ID".into(), spec.job_id.clone()));
    // A job bound to N CPUs tells the numeric libraries so, or they start a thread per CPU of the machine.
    if let Some(n) = spec.limits.cpus {
        for key in [
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMEXPR_MAX_THREADS",
        ] {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), n.to_string()));
        }
    }
    env
}

/// Lets `bwrap_args` mix `&str`, `String` and `PathBuf` items.
trait AsRefOs {
    fn as_os(&self) -> &std::ffi::OsStr;
}

impl<T: AsRef<std::ffi::OsStr> + ?Sized> AsRefOs for T {
    fn as_os(&self) -> &std::ffi::OsStr {
        self.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Isolation, Runtime};

    fn spec() -> JobSpec {
        JobSpec {
            job_id: "j1".into(),
            code: String::new(),
            inputs: vec![("x".into(), "/srv/x".into())],
            runtime: Runtime {
                env: vec![
                    ("FERRY_JOB_ID".into(), "spoof".into()),
                    ("LANG".into(), "fr_FR.UTF-8".into()),
                ],
                ..Runtime::python_default()
            },
            limits: Limits::default(),
            isolation: Isolation::Sandbox,
            work_root: "/tmp".into(),
        }
    }

    fn tools() -> Tools {
        Tools {
            bwrap: "/usr/bin/bwrap".into(),
            prlimit: "/usr/bin/prlimit".into(),
            setpriv: "/usr/bin/setpriv".into(),
        }
    }

    fn args(privilege: Privilege) -> Vec<String> {
        let fds = BwrapFds {
            inputs: vec![("x".into(), 7)],
            outputs: 8,
            script: 9,
            info: 10,
            seccomp: 11,
        };
        let mounts = vec![
            RoMount::Bind("/usr".into()),
            RoMount::Symlink("usr/lib".into(), "/lib".into()),
        ];
        bwrap_args(&spec(), &mounts, &fds, &tools(), privilege, None)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn bwrap_isolates_everything_and_shares_nothing() {
        let args = args(Privilege::Unprivileged);
        for flag in [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
        for forbidden in ["--share-net", "--bind", "--dev-bind", "--cap-add"] {
            assert!(!args.iter().any(|a| a == forbidden), "{forbidden}");
        }
        let joined = args.join(" ");
        assert!(joined.contains("--ro-bind /usr /usr --symlink usr/lib /lib"));
        assert!(joined.contains("--ro-bind-fd 7 /job/inputs/x"));
        assert!(joined.contains("--bind-fd 8 /job/outputs"));
        assert!(joined.contains("--perms 0444 --ro-bind-data 9 /ferry/job.py"));
        assert!(joined.contains("--seccomp 11 --"));
        // The root is made read-only after everything is mounted on it.
        let remount = args.iter().rposition(|a| a == "/").unwrap();
        assert!(remount > args.iter().position(|a| a == "/ferry/job.py").unwrap());
        assert!(joined.ends_with(
            "-- /usr/bin/prlimit --nproc=64 --as=1073741824 --cpu=60:61 --nofile=256 \
             --fsize=67108865 --core=0 -- /usr/bin/python3 -I -B /ferry/job.py"
        ));
    }

    #[test]
    fn a_root_worker_maps_ids_itself_and_drops_to_the_sandbox_user() {
        let joined = args(Privilege::RootMapped { block: 12 }).join(" ");
        assert!(joined.contains("--userns-block-fd 12 --json-status-fd 12"));
        assert!(!joined.contains("--uid"));
        assert!(joined.contains(
            "-- /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
             --bounding-set=-all --no-new-privs -- /usr/bin/prlimit --nproc=64"
        ));
    }

    #[test]
    fn env_is_minimal_and_job_id_cannot_be_overridden() {
        let env = job_env(&spec(), "/job");
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("FERRY_JOB_ID"), Some("j1"));
        assert_eq!(get("LANG"), Some("fr_FR.UTF-8"));
        assert_eq!(get("HOME"), Some("/job"));
        assert_eq!(env.len(), 4);
    }

    #[test]
    fn unsandboxed_runs_do_not_limit_processes() {
        assert!(!prlimit_args(&Limits::default(), false)
            .iter()
            .any(|a| a.starts_with("--nproc")));
    }
}
