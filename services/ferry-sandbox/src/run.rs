//! Running one job: prepare, spawn, watch (exit, wall clock, cancellation, outputs size), kill, collect.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{fstat, open, FileType, Mode, OFlags};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::capture::Capture;
use crate::cgroup::JobCgroup;
use crate::command::{self, BwrapFds, Privilege, ROOT_MAPPED_ID_MAP, SANDBOX_GID, SANDBOX_UID};
use crate::outputs::OutputsDir;
use crate::spec::JOB_DIR;
use crate::workdir::{JobDir, ScratchDirs};
use crate::{Isolation, JobOutcome, JobSpec, SandboxError, Termination, Tools};

/// The watch loop's longest sleep: how late cancellation is noticed at worst.
const TICK: Duration = Duration::from_millis(25);

/// How long killed processes get to disappear before the run is declared a failure.
const DEATH_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a failure that looks like bubblewrap's own should be confirmed with a fresh self-check.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recheck {
    Yes,
    No,
}

/// Runs `spec` to completion.
pub(crate) fn run(
    spec: &JobSpec,
    cancel: &AtomicBool,
    tools: &Tools,
    recheck: Recheck,
) -> Result<JobOutcome, SandboxError> {
    spec.validate()?;
    let sandboxed = spec.isolation == Isolation::Sandbox;
    let as_root = rustix::process::geteuid().is_root();
    check_program(spec)?;
    check_tool(&tools.prlimit, "prlimit (util-linux)", spec, sandboxed)?;
    if sandboxed {
        check_tool(&tools.bwrap, "bubblewrap (bwrap)", spec, false)?;
        if as_root {
            check_tool(&tools.setpriv, "setpriv (util-linux)", spec, true)?;
        }
    }
    // A root worker's jobs run as the sandbox uid (see `command.rs`), which must be able to read the inputs.
    let job_user = (sandboxed && as_root).then_some((SANDBOX_UID, SANDBOX_GID));
    let inputs = open_inputs(spec, job_user)?;
    if !sandboxed {
        tracing::warn!(
            job_id = %spec.job_id,
            "RUNNING JOB WITHOUT SANDBOX: no namespaces, the job can read and reach whatever the worker can; \
             development only (sandbox = \"off\")"
        );
    }
    if cancel.load(Ordering::SeqCst) {
        return Ok(outcome_without_run(spec, Termination::Cancelled));
    }

    let dir = if sandboxed {
        JobDir::for_sandbox(&spec.work_root, &spec.job_id, job_user)?
    } else {
        JobDir::for_unsandboxed(
            &spec.work_root,
            &spec.job_id,
            spec.runtime.script_name(),
            &spec.code,
            &spec.inputs,
        )?
    };
    let outputs = OutputsDir::open(dir.outputs())
        .map_err(|e| SandboxError::io("opening the job's outputs directory", e))?;

    let cgroup = if sandboxed {
        let memory_max = crate::outcome::job_memory_limit(&spec.limits);
        match JobCgroup::create(&spec.job_id, memory_max, spec.limits.max_processes) {
            Ok(cgroup) => cgroup,
            Err(reason) => {
                tracing::warn!(job_id = %spec.job_id, "the job runs without a cgroup of its own: {reason}");
                None
            }
        }
    } else {
        None
    };
    // A root worker that may mount gives the job's /tmp and /dev/shm inode caps too (bubblewrap cannot).
    let scratch = if sandboxed && as_root && may_mount() {
        Some(ScratchDirs::create(&dir)?)
    } else {
        None
    };
    let mut job = if sandboxed {
        spawn_sandboxed(
            spec,
            tools,
            &inputs,
            &outputs,
            as_root,
            cgroup.as_ref(),
            scratch.as_ref(),
        )?
    } else {
        spawn_unsandboxed(spec, tools, &dir)?
    };
    drop(inputs);
    let stdout = job.child.stdout.take().expect("stdout is piped");
    let stderr = job.child.stderr.take().expect("stderr is piped");
    let captures = Capture::start("stdout", stdout, spec.limits.max_stdio_bytes).and_then(|out| {
        Capture::start("stderr", stderr, spec.limits.max_stdio_bytes).map(|err| (out, err))
    });
    let (stdout, stderr) = match captures {
        Ok(captures) => captures,
        Err(e) => {
            let _ = job.end(true);
            return Err(SandboxError::io("starting the output readers", e));
        }
    };

    let watched = job.watch(spec, cancel, &outputs);
    let duration = job.started.elapsed();
    // Whatever happened, nothing of the job may outlive this point.
    let ended = job.end(!matches!(watched, Ok(None)));
    let stopped = watched?;
    let status = ended?;
    let cgroup_version = cgroup.as_ref().map(JobCgroup::version);
    let cgroup_end = cgroup.map(JobCgroup::finish).unwrap_or_default();

    let streams_deadline = Instant::now() + Duration::from_secs(2);
    let (stdout, stdout_truncated) = stdout.finish(streams_deadline);
    let (stderr, stderr_truncated) = stderr.finish(streams_deadline);

    if sandboxed && job.init_pid.is_none() && stopped.is_none() {
        // bwrap never reported a sandbox: it could not create the namespaces.
        return Err(SandboxError::SandboxUnavailable(describe_failure(
            status, &stderr,
        )));
    }
    let mut termination = stopped.unwrap_or_else(|| termination_of(status, sandboxed));
    if cgroup_end.oom_killed && matches!(termination, Termination::Signaled(_)) {
        termination = Termination::JobMemoryLimit;
    }
    if sandboxed
        && recheck == Recheck::Yes
        && looks_like_bwrap_failure(termination, &stdout, &stderr)
    {
        // Bubblewrap reports set-up failures (a mount it could not make) as status 1 and "bwrap: ..." on
        // stderr, which a job can print too. Only a failing self-check makes it the sandbox's fault, so a
        // job cannot get the sandbox declared broken.
        crate::check_available_with(&spec.runtime, tools).map_err(|e| {
            SandboxError::SandboxUnavailable(format!(
                "{}; self-check: {e}",
                String::from_utf8_lossy(&stderr).trim()
            ))
        })?;
    }

    let collected = outputs
        .collect(spec.limits.max_output_bytes)
        .map_err(|e| SandboxError::io("collecting the job's outputs", e))?;
    if collected.over_limit
        && matches!(
            termination,
            Termination::Exited(_) | Termination::Signaled(_)
        )
    {
        termination = Termination::OutputLimit;
    }
    tracing::debug!(job_id = %spec.job_id, ?termination, ?duration, "job finished");
    Ok(JobOutcome {
        termination,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
        outputs: collected.files,
        refused_outputs: collected.refused,
        output_limit: collected.over,
        unsandboxed: !sandboxed,
        cgroup: cgroup_version,
        job_memory_limit_hit: cgroup_end.oom_killed,
        duration,
        limits: spec.limits,
    })
}

fn outcome_without_run(spec: &JobSpec, termination: Termination) -> JobOutcome {
    JobOutcome {
        termination,
        stdout: Vec::new(),
        stderr: Vec::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        outputs: Vec::new(),
        refused_outputs: Vec::new(),
        output_limit: None,
        unsandboxed: spec.isolation == Isolation::Unsandboxed,
        cgroup: None,
        job_memory_limit_hit: false,
        duration: Duration::ZERO,
        limits: spec.limits,
    }
}

/// Whether this process holds `CAP_SYS_ADMIN` (bit 21 of `CapEff` in /proc/self/status), which mounting the
/// job's scratch in a mount namespace of its own needs: a root worker in a container may lack it.
fn may_mount() -> bool {
    static MAY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MAY.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status.lines().find_map(|l| {
                    l.strip_prefix("CapEff:")
                        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                })
            })
            .is_some_and(|caps| caps & (1 << 21) != 0)
    })
}

/// A tool must be an executable file and, when it runs inside the sandbox, visible there.
fn check_tool(path: &Path, what: &str, spec: &JobSpec, inside: bool) -> Result<(), SandboxError> {
    let unavailable = |reason: String| SandboxError::SandboxUnavailable(reason);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(unavailable(format!(
                "{what} at {} is not an executable file",
                path.display()
            )))
        }
        Err(e) => {
            return Err(unavailable(format!(
                "{what} not found at {}: {e}",
                path.display()
            )))
        }
    }
    if inside && !spec.runtime.ro_paths.iter().any(|p| path.starts_with(p)) {
        return Err(unavailable(format!(
            "{what} at {} is not under the runtime's ro_paths, so the sandbox could not run it",
            path.display()
        )));
    }
    Ok(())
}

fn check_program(spec: &JobSpec) -> Result<(), SandboxError> {
    let runtime = &spec.runtime;
    let unavailable = |reason: String| SandboxError::RuntimeUnavailable {
        name: runtime.name.clone(),
        reason,
    };
    match std::fs::metadata(&runtime.program) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(unavailable(format!(
            "{} is not an executable file",
            runtime.program.display()
        ))),
        Err(e) => Err(unavailable(format!("{}: {e}", runtime.program.display()))),
    }
}

/// Opens every input (following links: these are the side's own paths) and checks it is a regular file or a
/// directory that `job_user`, when given, will be able to read.
fn open_inputs(
    spec: &JobSpec,
    job_user: Option<(u32, u32)>,
) -> Result<Vec<(String, OwnedFd)>, SandboxError> {
    let mut opened = Vec::with_capacity(spec.inputs.len());
    for (name, path) in &spec.inputs {
        let unavailable = |reason: String| SandboxError::InputUnavailable {
            name: name.clone(),
            path: path.clone(),
            reason,
        };
        let fd = open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| unavailable(std::io::Error::from(e).to_string()))?;
        let stat = fstat(&fd).map_err(|e| unavailable(std::io::Error::from(e).to_string()))?;
        // A file, or a directory (a model folder), bound read-only as a whole tree.
        let is_dir = match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => false,
            FileType::Directory => true,
            _ => return Err(unavailable("neither a regular file nor a directory".into())),
        };
        if let Some((uid, gid)) = job_user {
            let mode = stat.st_mode;
            // A directory must be listable and enterable; `ferry asset add` checked what is under it.
            let need = if is_dir { 0o5 } else { 0o4 };
            let readable = mode & need == need
                || (stat.st_uid == uid && (mode >> 6) & need == need)
                || (stat.st_gid == gid && (mode >> 3) & need == need);
            if !readable {
                return Err(unavailable(format!(
                    "not readable by the sandbox user (uid {uid}): jobs never run as root, so make the file \
                     readable by it (e.g. chmod 0644; the directories above it may stay private)"
                )));
            }
        }
        opened.push((name.clone(), fd));
    }
    Ok(opened)
}

/// A started job.
struct Running {
    child: Child,
    /// The direct child: `bwrap`'s monitor process, or the job's process when unsandboxed.
    pidfd: OwnedFd,
    sandboxed: bool,
    started: Instant,
    /// `bwrap`'s info pipe, until its JSON has been read.
    info: Option<(OwnedFd, Vec<u8>)>,
    /// For a root worker: the socket `bwrap` waits on until the id maps are written. Kept open until
    /// `bwrap` exits, which writes its final status there.
    block: Option<UnixStream>,
    /// The sandbox's init (pid 1 of the job's pid namespace), seen from the host; when it is gone, every
    /// process of the job is gone.
    init_pid: Option<i32>,
    init: Option<OwnedFd>,
}

fn spawn_sandboxed(
    spec: &JobSpec,
    tools: &Tools,
    inputs: &[(String, OwnedFd)],
    outputs: &OutputsDir,
    as_root: bool,
    cgroup: Option<&JobCgroup>,
    scratch: Option<&ScratchDirs>,
) -> Result<Running, SandboxError> {
    let pipe_error = |e| SandboxError::io("creating a pipe for bwrap", e);
    let script = memfd("ferry-job-script", spec.code.as_bytes())
        .map_err(|e| SandboxError::io("passing the job's script to bwrap", e))?;
    let (info_read, info_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(pipe_error)?;
    rustix::io::ioctl_fionbio(&info_read, true).map_err(pipe_error)?;
    let program = crate::seccomp::program().ok_or_else(|| {
        SandboxError::SandboxUnavailable(format!(
            "no seccomp filter for this architecture ({})",
            std::env::consts::ARCH
        ))
    })?;
    // The filter is a few hundred bytes: it fits in the pipe, so it can be written before bwrap starts.
    let (seccomp_read, seccomp_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(pipe_error)?;
    std::fs::File::from(seccomp_write)
        .write_all(&program)
        .map_err(|e| SandboxError::io("passing the seccomp filter to bwrap", e))?;
    let (block_ours, block_theirs, privilege) = if as_root {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| SandboxError::io("creating a socket for bwrap", e))?;
        let block = theirs.as_raw_fd();
        (Some(ours), Some(theirs), Privilege::RootMapped { block })
    } else {
        (None, None, Privilege::Unprivileged)
    };
    let fds = BwrapFds {
        inputs: inputs
            .iter()
            .map(|(name, fd)| (name.clone(), fd.as_raw_fd()))
            .collect(),
        outputs: outputs.as_raw_fd(),
        script: script.as_raw_fd(),
        info: info_write.as_raw_fd(),
        seccomp: seccomp_read.as_raw_fd(),
    };
    let mounts = command::ro_mounts(&spec.runtime.ro_paths);
    let args = command::bwrap_args(
        spec,
        &mounts,
        &fds,
        tools,
        privilege,
        scratch.map(|s| (s.tmp.as_path(), s.shm.as_path())),
    );
    let mut cmd = Command::new(&tools.bwrap);
    cmd.args(&args);
    if let Privilege::RootMapped { .. } = privilege {
        // Same ids, but std clears the supplementary groups when a uid is given: root's groups must not
        // reach the sandbox.
        cmd.gid(0).uid(0);
    }
    let mut inherited: Vec<_> = fds.inputs.iter().map(|(_, fd)| *fd).collect();
    inherited.extend([fds.outputs, fds.script, fds.info, fds.seccomp]);
    if let Some(block) = &block_theirs {
        inherited.push(block.as_raw_fd());
    }
    crate::sys::pass_only(&mut cmd, inherited);
    if let Some(scratch) = scratch {
        crate::sys::mount_scratch(&mut cmd, scratch.mounts(spec.limits.max_output_bytes));
    }
    if let Some(cgroup) = cgroup {
        crate::sys::join_cgroups(
            &mut cmd,
            cgroup.procs().iter().map(AsRawFd::as_raw_fd).collect(),
        );
    }
    if let Some(n) = spec.limits.cpus {
        crate::sys::bind_cpus(&mut cmd, n).map_err(|source| SandboxError::Io {
            context: "reading this process's CPUs".into(),
            source,
        })?;
    }
    tracing::debug!(job_id = %spec.job_id, ?args, "starting bwrap");
    let running = spawn(cmd, spec, JOB_DIR, true).map_err(|e| match e {
        SandboxError::Io { source, .. } => SandboxError::SandboxUnavailable(format!(
            "cannot start {}: {source}",
            tools.bwrap.display()
        )),
        other => other,
    })?;
    // Only bwrap may hold these now: an end left open here would keep bwrap's reads from ever finishing.
    drop((info_write, seccomp_read, block_theirs, script));
    Ok(Running {
        info: Some((info_read, Vec::new())),
        block: block_ours,
        ..running
    })
}

fn spawn_unsandboxed(spec: &JobSpec, tools: &Tools, dir: &JobDir) -> Result<Running, SandboxError> {
    let (Some(script), Some(work)) = (dir.script(), dir.work()) else {
        unreachable!("an unsandboxed job directory has a script and a working directory")
    };
    let script = script.to_string_lossy().into_owned();
    let argv = command::job_command(spec, &tools.prlimit, &script, false);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(work);
    crate::sys::pass_only(&mut cmd, Vec::new());
    if let Some(n) = spec.limits.cpus {
        crate::sys::bind_cpus(&mut cmd, n).map_err(|source| SandboxError::Io {
            context: "reading this process's CPUs".into(),
            source,
        })?;
    }
    let home = work.to_string_lossy().into_owned();
    spawn(cmd, spec, &home, false)
}

/// An in-memory file holding `data`, positioned at its start: what bwrap copies into the sandbox (no
/// inode on the worker's disk, whose metadata operations can cost a millisecond each).
fn memfd(name: &str, data: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data)?;
    std::io::Seek::rewind(&mut file)?;
    Ok(file.into())
}

/// Common spawning: empty environment plus the job's, no stdin, piped stdout and stderr, own process group.
fn spawn(
    mut cmd: Command,
    spec: &JobSpec,
    home: &str,
    sandboxed: bool,
) -> Result<Running, SandboxError> {
    cmd.env_clear()
        .envs(command::job_env(spec, home))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if sandboxed {
        // Nothing of the worker's working directory is needed (or should be held) by bwrap.
        cmd.current_dir("/");
    }
    let child = cmd
        .spawn()
        .map_err(|e| SandboxError::io("starting the job", e))?;
    let started = Instant::now();
    let pidfd = match pidfd_open(Pid::from_child(&child), PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::io("watching the job's process", e));
        }
    };
    Ok(Running {
        child,
        pidfd,
        sandboxed,
        started,
        info: None,
        block: None,
        init_pid: None,
        init: None,
    })
}

impl Running {
    /// Waits until the job's main process exits, or stops it. Returns why it was stopped, if it was.
    fn watch(
        &mut self,
        spec: &JobSpec,
        cancel: &AtomicBool,
        outputs: &OutputsDir,
    ) -> Result<Option<Termination>, SandboxError> {
        let deadline = self.started + spec.limits.wall_time;
        let mut next_measure = Instant::now();
        loop {
            let now = Instant::now();
            if cancel.load(Ordering::SeqCst) {
                return Ok(Some(Termination::Cancelled));
            }
            if now >= deadline {
                return Ok(Some(Termination::TimedOut));
            }
            if now >= next_measure {
                let usage = outputs.usage(spec.limits.max_output_bytes);
                if usage.over(spec.limits.max_output_bytes) {
                    return Ok(Some(Termination::OutputLimit));
                }
                // A huge tree must not keep the worker busy: measure at most a fifth of the time.
                next_measure = Instant::now() + TICK.max(now.elapsed() * 5);
            }
            let wait = TICK.min(deadline.saturating_duration_since(Instant::now()));
            if self.wait_ready(wait)? {
                return Ok(None);
            }
        }
    }

    /// Polls the process (and bwrap's info pipe) for up to `timeout`; true once the main process exited.
    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, SandboxError> {
        let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 25_000_000,
        });
        let (exited, info_ready) = {
            let mut fds = vec![PollFd::new(&self.pidfd, PollFlags::IN)];
            if let Some((fd, _)) = &self.info {
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => return Ok(false),
                Err(e) => return Err(SandboxError::io("waiting for the job", e)),
            }
            let info_ready = fds.get(1).is_some_and(|f| !f.revents().is_empty());
            (!fds[0].revents().is_empty(), info_ready)
        };
        if info_ready {
            self.read_info(true)?;
        }
        Ok(exited)
    }

    /// Reads what is available of bwrap's info JSON. Once the sandbox's pid is in it: takes hold of that
    /// process and, for a root worker when `resume` is set, writes the id maps and lets bwrap go on.
    fn read_info(&mut self, resume: bool) -> Result<(), SandboxError> {
        let Some((fd, buf)) = &mut self.info else {
            return Ok(());
        };
        let mut chunk = [0u8; 1024];
        let done = loop {
            match rustix::io::read(&*fd, &mut chunk) {
                Ok(0) => break true,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break false,
            }
            if buf.len() > 64 * 1024 {
                break true;
            }
        };
        let Some(info) = parse_info(buf) else {
            if done {
                self.info = None;
            }
            return Ok(());
        };
        self.info = None;
        self.init_pid = Some(info.pid);
        self.init = open_sandbox_child(info.pid, self.child.id());
        if let Some(block) = self.block.as_mut().filter(|_| resume) {
            if self.init.is_none() {
                return Err(SandboxError::SandboxUnavailable(
                    "bwrap's sandbox process vanished during set-up".into(),
                ));
            }
            write_id_maps(info.pid).map_err(|e| {
                SandboxError::SandboxUnavailable(format!(
                    "cannot write the sandbox's user namespace maps: {e}"
                ))
            })?;
            block.write_all(b"1").map_err(|e| {
                SandboxError::SandboxUnavailable(format!("cannot resume bwrap: {e}"))
            })?;
        }
        Ok(())
    }

    /// Kills what is left (everything, when `kill` is set; otherwise the stragglers of a job whose main
    /// process exited), makes sure it is gone, and reaps the direct child.
    fn end(&mut self, kill: bool) -> Result<ExitStatus, SandboxError> {
        if self.sandboxed && self.info.is_some() {
            // Take hold of bwrap's sandbox process while its parent is alive (the check that its pid still
            // names it relies on that); killed very early, bwrap may not have reported it yet.
            let deadline = Instant::now() + Duration::from_millis(200);
            while self.info.is_some() && Instant::now() < deadline {
                let _ = self.read_info(false);
                if self.info.is_some() {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        if kill {
            let _ = pidfd_send_signal(&self.pidfd, Signal::KILL);
            if let Some(init) = &self.init {
                let _ = pidfd_send_signal(init, Signal::KILL);
            }
        }
        // Kill the process group while the direct child is still unreaped, so its id cannot have been reused.
        let _ = rustix::process::kill_process_group(Pid::from_child(&self.child), Signal::KILL);
        let status = self
            .child
            .wait()
            .map_err(|e| SandboxError::io("waiting for the job", e))?;
        self.block = None;
        if self.sandboxed {
            // bwrap's init keeps the namespace alive while background processes run; killing it kills them
            // all (the kernel tears down a pid namespace whose init dies, and reports the init's exit only
            // after that). Its death is awaited so no job process can still touch outputs/.
            if let Some(init) = self.init.take() {
                let _ = pidfd_send_signal(&init, Signal::KILL);
                if !wait_exit(&init, DEATH_TIMEOUT) {
                    return Err(SandboxError::KillFailed(format!(
                        "the sandbox's init (pid {}) was still alive {}s after SIGKILL",
                        self.init_pid.unwrap_or(0),
                        DEATH_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        Ok(status)
    }
}

/// What bwrap's `--info-fd` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Info {
    pid: i32,
}

/// Reads `"child-pid"` from bwrap's info JSON, once it is complete.
fn parse_info(json: &[u8]) -> Option<Info> {
    let text = std::str::from_utf8(json).ok()?;
    if !text.contains('}') {
        return None;
    }
    let rest = &text[text.find("\"child-pid\"")? + "\"child-pid\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some(Info {
        pid: rest[..end].parse().ok()?,
    })
}

/// A pidfd on bwrap's sandbox process (which becomes the job's init), after checking that the pid still
/// names it: its parent is bwrap's monitor (our unreaped child, whose pid cannot have been reused), and it
/// is still alive after that check, so the pid was not recycled in between. `None` if it is gone already.
fn open_sandbox_child(pid: i32, monitor: u32) -> Option<OwnedFd> {
    let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ppid = status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))?
        .trim()
        .parse::<u32>()
        .ok()?;
    if ppid != monitor || wait_exit(&pidfd, Duration::ZERO) {
        return None;
    }
    Some(pidfd)
}

/// For a root worker: the sandbox's user namespace maps root to root (bwrap's own set-up needs it) and the
/// sandbox uid to itself (the job); nothing else exists in it.
fn write_id_maps(pid: i32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/uid_map"), ROOT_MAPPED_ID_MAP)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), ROOT_MAPPED_ID_MAP)
}

/// Whether the process behind `pidfd` exits within `timeout`.
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(_) if !fds[0].revents().is_empty() => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

fn termination_of(status: ExitStatus, sandboxed: bool) -> Termination {
    match (status.code(), status.signal()) {
        // bwrap turns death by signal N into status 128+N.
        (Some(code), _) if sandboxed && (129..=192).contains(&code) => {
            Termination::Signaled(code - 128)
        }
        (Some(code), _) => Termination::Exited(code),
        (None, Some(signal)) => Termination::Signaled(signal),
        (None, None) => Termination::Exited(-1),
    }
}

fn looks_like_bwrap_failure(termination: Termination, stdout: &[u8], stderr: &[u8]) -> bool {
    termination == Termination::Exited(1)
        && stdout.is_empty()
        && stderr.starts_with(b"bwrap: ")
        && stderr.iter().filter(|&&b| b == b'\n').count() <= 1
}

fn describe_failure(status: ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        format!("bwrap failed before starting the job ({status})")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bwrap_info() {
        let json = b"{\n    \"child-pid\": 13602,\n    \"cgroup-namespace\": 4026532182,\n    \"pid-namespace\": 4026532181\n}\n";
        assert_eq!(parse_info(json), Some(Info { pid: 13602 }));
        assert_eq!(parse_info(b"{\n    \"child-pid\": 13602"), None);
    }

    #[test]
    fn signal_statuses_are_mapped_back() {
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(termination_of(exited(137), true), Termination::Signaled(9));
        assert_eq!(termination_of(exited(137), false), Termination::Exited(137));
        assert_eq!(termination_of(exited(1), true), Termination::Exited(1));
        assert_eq!(
            termination_of(ExitStatus::from_raw(9), false),
            Termination::Signaled(9)
        );
    }

    #[test]
    fn only_a_lone_bwrap_line_looks_like_a_set_up_failure() {
        let exited = Termination::Exited(1);
        assert!(looks_like_bwrap_failure(
            exited,
            b"",
            b"bwrap: Can't mount proc\n"
        ));
        assert!(!looks_like_bwrap_failure(
            exited,
            b"x",
            b"bwrap: Can't mount proc\n"
        ));
        assert!(!looks_like_bwrap_failure(
            exited,
            b"",
            b"Traceback\nbwrap: x\n"
        ));
        assert!(!looks_like_bwrap_failure(
            Termination::Exited(2),
            b"",
            b"bwrap: x\n"
        ));
    }
}
