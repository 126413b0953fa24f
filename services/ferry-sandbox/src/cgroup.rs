//! A cgroup per job, where the worker can make one: the job as a whole (every process, its shared memory, its
//! tmpfs pages and the kernel memory of its inodes) is then bounded by the cgroup's memory limit, and its
//! process count by `pids.max`, on top of the per-process rlimits.
//!
//! - **cgroup v2**: the worker's own cgroup must have the `memory` and `pids` controllers available (a systemd
//!   unit with `Delegate=yes`, or a root worker). The worker enables them for its children, moving itself into
//!   a `ferry-worker` leaf first when its cgroup holds processes (the "no internal processes" rule), and makes
//!   `ferry-job-*` siblings with `memory.max`, `memory.swap.max = 0` and `pids.max`.
//! - **cgroup v1** (hybrid hosts): a `ferry-job-*` child of the worker's cgroup in the `memory` hierarchy
//!   (`memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` where swap is accounted) and, when mounted,
//!   in the `pids` hierarchy (`pids.max`).
//!
//! The job's first process joins the cgroup between `fork` and `exec` of bubblewrap (see `sys::join_cgroups`),
//! so nothing of the job ever runs outside it. After the job the cgroup's OOM kills are read (a kill there is
//! reported as the job's memory limit) and the cgroup is removed. Where no cgroup can be made, the job runs
//! with the other bounds alone (see ISOLATION.md) and the outcome says so.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The prefix of every job cgroup's directory name; leftovers of a crashed worker are removed by it.
const JOB_PREFIX: &str = "ferry-job-";

/// The directory name of a job cgroup this process makes: `ferry-job-LABEL-PID-SERIAL`. The owner's pid in the
/// name lets a worker starting beside others sweep only what a dead worker left (see [`remove_leftovers`]).
fn owned_name(label: &str) -> String {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    format!(
        "{JOB_PREFIX}{label}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid that made the job cgroup `name` (see [`owned_name`]), if the name has one.
fn owner_pid(name: &str) -> Option<u32> {
    crate::maker::pid_in(name.strip_prefix(JOB_PREFIX)?, '-')
}

/// Processes the sandbox itself adds to the job's count: bubblewrap's monitor and the namespace's init.
const SANDBOX_PROCESSES: u64 = 2;

/// Where job cgroups are made on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// Children of this directory of the unified hierarchy, which has `memory` and `pids` enabled.
    V2 { parent: PathBuf },
    /// Children of the worker's cgroup in the memory hierarchy, and in the pids hierarchy when it is mounted.
    V1 {
        memory: PathBuf,
        pids: Option<PathBuf>,
    },
}

impl Hierarchy {
    /// `v2` or `v1`, for logs and reports.
    pub(crate) fn version(&self) -> &'static str {
        match self {
            Hierarchy::V2 { .. } => "v2",
            Hierarchy::V1 { .. } => "v1",
        }
    }
}

/// This process's cgroup hierarchy for jobs, found (and prepared) once; the error says why there is none.
pub(crate) fn hierarchy() -> &'static Result<Hierarchy, String> {
    static FOUND: OnceLock<Result<Hierarchy, String>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let found = discover();
        match &found {
            Ok(h) => {
                remove_leftovers(h);
                tracing::info!(cgroup = h.version(), "each job runs in a cgroup of its own");
            }
            Err(reason) => tracing::info!(
                "jobs run without a cgroup of their own ({reason}); each process is bounded by its rlimits, \
                 memfd and System V shared memory are refused and every tmpfs is sized (see ISOLATION.md)"
            ),
        }
        found
    })
}

/// Whether jobs started by this process run in a cgroup of their own, and if not, why not.
pub fn job_cgroups() -> Result<&'static str, String> {
    hierarchy()
        .as_ref()
        .map(Hierarchy::version)
        .map_err(Clone::clone)
}

fn discover() -> Result<Hierarchy, String> {
    let cgroups = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let mounts = parse_mountinfo(&mountinfo);
    let v2 = match own_dir(&cgroups, &mounts, None) {
        Some(dir) => match prepare_v2(&dir) {
            Ok(parent) => return Ok(Hierarchy::V2 { parent }),
            Err(e) => Some(e),
        },
        None => None,
    };
    match own_dir(&cgroups, &mounts, Some("memory")) {
        Some(memory) => {
            probe(&memory)?;
            Ok(Hierarchy::V1 {
                memory,
                pids: own_dir(&cgroups, &mounts, Some("pids")).filter(|p| probe(p).is_ok()),
            })
        }
        None => Err(v2.unwrap_or_else(|| "no cgroup v2 or v1 memory hierarchy is mounted".into())),
    }
}

/// One line of `/proc/self/mountinfo` that mounts a cgroup file system.
#[derive(Debug, PartialEq, Eq)]
struct CgroupMount {
    /// The hierarchy's directory shown at the mount point.
    root: String,
    mount_point: PathBuf,
    /// `None` for cgroup2; for v1, the controllers in the super options.
    controllers: Option<Vec<String>>,
}

fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(root), Some(mount_point), Some(fstype), Some(options)) = (
            fields.get(3),
            fields.get(4),
            fields.get(dash + 1),
            fields.get(dash + 3),
        ) else {
            continue;
        };
        let controllers = match *fstype {
            "cgroup2" => None,
            "cgroup" => Some(options.split(',').map(str::to_owned).collect()),
            _ => continue,
        };
        mounts.push(CgroupMount {
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
            controllers,
        });
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(d)) = (bytes[i], octal) {
            let code = d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of this process's cgroup: in the unified hierarchy (`controller` None) or in the v1
/// hierarchy that has `controller`.
fn own_dir(cgroups: &str, mounts: &[CgroupMount], controller: Option<&str>) -> Option<PathBuf> {
    let path = cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match controller {
            None => list.is_empty(),
            Some(c) => list.split(',').any(|l| l == c),
        };
        wanted.then_some(path)
    })?;
    let mount = mounts.iter().find(|m| match (&m.controllers, controller) {
        (None, None) => true,
        (Some(list), Some(c)) => list.iter().any(|l| l == c),
        _ => false,
    })?;
    // Inside a container the mount may show a sub-tree: the process's path is then below the mount's root.
    let relative = if mount.root == "/" {
        path
    } else {
        path.strip_prefix(mount.root.as_str())?
    };
    let mut dir = mount.mount_point.clone();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        if part == ".." {
            return None;
        }
        dir.push(part);
    }
    Some(dir)
}

/// A child can be made (and removed) in `dir`.
fn probe(dir: &Path) -> Result<(), String> {
    let test = dir.join(owned_name("probe"));
    fs::create_dir(&test)
        .map_err(|e| format!("cannot make a cgroup under {}: {e}", dir.display()))?;
    let _ = fs::remove_dir(&test);
    Ok(())
}

/// Enables `memory` and `pids` for the children of `dir`, moving this process into a leaf first if it must.
fn prepare_v2(dir: &Path) -> Result<PathBuf, String> {
    let available = fs::read_to_string(dir.join("cgroup.controllers"))
        .map_err(|e| format!("reading {}: {e}", dir.join("cgroup.controllers").display()))?;
    let has = |c: &str| available.split_whitespace().any(|a| a == c);
    if !has("memory") || !has("pids") {
        return Err(format!(
            "cgroup v2 at {} lacks the memory or pids controller (has: {})",
            dir.display(),
            available.trim()
        ));
    }
    let enable = || write_file(&dir.join("cgroup.subtree_control"), "+memory +pids");
    if enable().is_err() {
        // "No internal processes": a cgroup with processes cannot hand controllers to children. Move this
        // process into a leaf of its own (its threads follow), then enable them.
        let leaf = dir.join("ferry-worker");
        match fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot make {}: {e}", leaf.display())),
        }
        write_file(&leaf.join("cgroup.procs"), "0")
            .map_err(|e| format!("cannot move the worker into {}: {e}", leaf.display()))?;
        enable().map_err(|e| {
            format!(
                "cannot enable memory and pids in {}: {e}",
                dir.join("cgroup.subtree_control").display()
            )
        })?;
    }
    probe(dir)?;
    Ok(dir.to_path_buf())
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

/// Removes the empty job cgroups that workers no longer running left behind (a cgroup with processes refuses to
/// go). A job cgroup whose maker is alive is left alone: another worker on this host may have made it a moment
/// ago, its job not yet joined (removing it then failed that job's start, CI saw it).
fn remove_leftovers(h: &Hierarchy) {
    let parents: Vec<&PathBuf> = match h {
        Hierarchy::V2 { parent } => vec![parent],
        Hierarchy::V1 { memory, pids } => std::iter::once(memory).chain(pids).collect(),
    };
    for parent in parents {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(JOB_PREFIX) {
                continue;
            }
            if !owner_pid(name).is_some_and(crate::maker::alive) {
                let _ = fs::remove_dir(entry.path());
            }
        }
    }
}

/// One job's cgroup (one directory per hierarchy), removed by [`JobCgroup::finish`] or on drop.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    version: &'static str,
    /// The directory holding the memory controller's files.
    memory: PathBuf,
    /// Every directory made for the job (the memory one first).
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, open for the child to write "0" to before `exec`.
    procs: Vec<OwnedFd>,
}

/// How a job's cgroup ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupEnd {
    /// The kernel killed a process of the job because the job as a whole reached its memory limit.
    pub(crate) oom_killed: bool,
}

impl JobCgroup {
    /// Makes the cgroup of job `job_id`, limited to `memory_max` bytes and `max_processes` (plus the sandbox's
    /// own processes). `Ok(None)` when this host has no cgroup for jobs.
    pub(crate) fn create(
        job_id: &str,
        memory_max: u64,
        max_processes: u64,
    ) -> Result<Option<JobCgroup>, String> {
        let Ok(h) = hierarchy() else { return Ok(None) };
        let safe: String = job_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let name = owned_name(&safe);
        let pids_max = (max_processes + SANDBOX_PROCESSES).to_string();
        let mut cgroup = JobCgroup {
            version: h.version(),
            memory: PathBuf::new(),
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let limit = memory_max.to_string();
        match h {
            Hierarchy::V2 { parent } => {
                let dir = cgroup.make(parent, &name)?;
                cgroup.set(&dir, "memory.max", &limit, true)?;
                cgroup.set(&dir, "memory.swap.max", "0", false)?;
                cgroup.set(&dir, "pids.max", &pids_max, true)?;
                cgroup.memory = dir;
            }
            Hierarchy::V1 { memory, pids } => {
                let dir = cgroup.make(memory, &name)?;
                cgroup.set(&dir, "memory.limit_in_bytes", &limit, true)?;
                cgroup.set(&dir, "memory.memsw.limit_in_bytes", &limit, false)?;
                cgroup.memory = dir;
                if let Some(pids) = pids {
                    let dir = cgroup.make(pids, &name)?;
                    cgroup.set(&dir, "pids.max", &pids_max, true)?;
                }
            }
        }
        for dir in &cgroup.dirs {
            let procs = rustix::fs::open(
                dir.join("cgroup.procs"),
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| format!("opening {}/cgroup.procs: {e}", dir.display()))?;
            cgroup.procs.push(procs);
        }
        Ok(Some(cgroup))
    }

    fn make(&mut self, parent: &Path, name: &str) -> Result<PathBuf, String> {
        let dir = parent.join(name);
        fs::create_dir(&dir)
            .map_err(|e| format!("making the job's cgroup {}: {e}", dir.display()))?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    fn set(&self, dir: &Path, file: &str, value: &str, required: bool) -> Result<(), String> {
        match write_file(&dir.join(file), value) {
            Ok(()) => Ok(()),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!(
                "setting {file} = {value} in {}: {e}",
                dir.display()
            )),
        }
    }

    /// `v1` or `v2`.
    pub(crate) fn version(&self) -> &'static str {
        self.version
    }

    /// The open `cgroup.procs` files the child joins before `exec`.
    pub(crate) fn procs(&self) -> &[OwnedFd] {
        &self.procs
    }

    /// After every process of the job is gone: reads whether the kernel killed one for memory, and removes the
    /// cgroup.
    pub(crate) fn finish(mut self) -> CgroupEnd {
        let end = CgroupEnd {
            oom_killed: self.oom_kills() > 0,
        };
        self.remove();
        end
    }

    fn oom_kills(&self) -> u64 {
        let file = match self.version {
            "v2" => "memory.events",
            _ => "memory.oom_control",
        };
        fs::read_to_string(self.memory.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
            })
            .unwrap_or(0)
    }

    fn remove(&mut self) {
        self.procs.clear();
        for dir in std::mem::take(&mut self.dirs) {
            // The processes are dead but may not have left the cgroup yet.
            let deadline = Instant::now() + Duration::from_secs(2);
            if self.version == "v2" {
                let _ = write_file(&dir.join("cgroup.kill"), "1");
            }
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= deadline => {
                        tracing::warn!("could not remove the job's cgroup {}: {e}", dir.display());
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const HYBRID_CGROUP: &str = "\
8:pids:/
4:memory:/process_api/038f
1:cpu:/
0::/
";

    #[test]
    fn finds_the_worker_cgroup_in_each_hierarchy_of_a_hybrid_host() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mounts.len(), 4, "{mounts:?}");
        assert_eq!(
            own_dir(HYBRID_CGROUP, &mounts, Some("memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/038f"))
        );
        assert_eq!(
            own_dir(HYBRID_CGROUP, &mounts, Some("pids")),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            own_dir(HYBRID_CGROUP, &mounts, None),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(own_dir(HYBRID_CGROUP, &mounts, Some("hugetlb")), None);
    }

    #[test]
    fn a_container_mount_showing_a_subtree_strips_its_root_and_refuses_dot_dot() {
        let mounts = parse_mountinfo(
            "50 40 0:40 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(
            own_dir("0::/kubepods/pod1/worker\n", &mounts, None),
            Some(PathBuf::from("/sys/fs/cgroup/worker"))
        );
        assert_eq!(own_dir("0::/elsewhere\n", &mounts, None), None);
        let root = parse_mountinfo("50 40 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(own_dir("0::/a/../../etc\n", &root, None), None);
    }

    #[test]
    fn a_worker_starting_beside_another_leaves_its_fresh_job_cgroups_alone_and_sweeps_the_dead_ones(
    ) {
        let parent = tempfile::tempdir().unwrap();
        // Made by this (live) process a moment ago, its job not yet joined; and by a pid that cannot be alive.
        let live = owned_name("0f3a-job");
        let dead = format!("{JOB_PREFIX}0f3a-job-{}-7", u32::MAX);
        let unnamed = format!("{JOB_PREFIX}from-an-older-worker");
        for name in [&live, &dead, &unnamed, &"someone-else".to_string()] {
            fs::create_dir(parent.path().join(name)).unwrap();
        }
        assert_eq!(owner_pid(&live), Some(std::process::id()));
        remove_leftovers(&Hierarchy::V2 {
            parent: parent.path().to_path_buf(),
        });
        let mut left: Vec<String> = fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec![live, "someone-else".to_string()]);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        let mounts = parse_mountinfo("50 40 0:40 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n");
        assert_eq!(mounts[0].mount_point, PathBuf::from("/mnt/my cgroups"));
    }
}
