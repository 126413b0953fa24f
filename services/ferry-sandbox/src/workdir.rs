//! The per-job host directory, removed (with everything the job wrote) on drop.
//!
//! Sandboxed, it is only the job's `outputs/` (the script reaches bwrap through a memfd, the inputs through
//! descriptors): one directory to create, because creating inodes is what costs on slow disks.
//!
//! ```text
//! <work_root>/<job_id>.<pid>.<n>/     0700, owned by the sandbox user; bound read-write at /job/outputs
//! ```
//!
//! A root worker also makes the mount points of the job's scratch tmpfs beside it (empty on the host: the tmpfs
//! are mounted in bubblewrap's own mount namespace, see `sys::mount_scratch`):
//!
//! ```text
//! <work_root>/<job_id>.<pid>.<n>.scratch/     0700, root's
//!     tmp/  shm/                              bound at /tmp and /dev/shm
//! ```
//!
//! Unsandboxed (development only), it holds the whole working directory:
//!
//! ```text
//! <work_root>/<job_id>.<pid>.<n>/     0700
//!     job.py                          the script
//!     work/                           the job's cwd and HOME
//!         inputs/<name>               symbolic links to the assets (read-only is not enforced)
//!         outputs/
//! ```

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SandboxError;

/// Distinguishes job directories created by this process.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A job's host directory.
pub(crate) struct JobDir {
    root: PathBuf,
    outputs: PathBuf,
    /// Unsandboxed runs only: the script and the working directory.
    script: Option<PathBuf>,
    work: Option<PathBuf>,
}

impl JobDir {
    /// For a sandboxed run: a fresh directory that is the job's `outputs/`, owned by `owner` (uid, gid)
    /// when given.
    pub(crate) fn for_sandbox(
        work_root: &Path,
        job_id: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<JobDir, SandboxError> {
        let root = create_unique(work_root, job_id)?;
        let dir = JobDir {
            outputs: root.clone(),
            root,
            script: None,
            work: None,
        };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir.root, Some(uid), Some(gid))
                .map_err(|e| SandboxError::io("handing outputs/ to the sandbox user", e))?;
        }
        Ok(dir)
    }

    /// For an unsandboxed run: the script, and a working directory with `inputs/` (symbolic links to the
    /// host files) and `outputs/`.
    pub(crate) fn for_unsandboxed(
        work_root: &Path,
        job_id: &str,
        script_name: &str,
        code: &str,
        inputs: &[(String, PathBuf)],
    ) -> Result<JobDir, SandboxError> {
        let root = create_unique(work_root, job_id)?;
        // From here on, dropping `dir` cleans up whatever was created.
        let work = root.join("work");
        let dir = JobDir {
            outputs: work.join("outputs"),
            script: Some(root.join(script_name)),
            work: Some(work.clone()),
            root,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.root.join(script_name))
            .map_err(|e| SandboxError::io("creating the job's script", e))?;
        file.write_all(code.as_bytes())
            .map_err(|e| SandboxError::io("writing the job's script", e))?;
        let inputs_dir = work.join("inputs");
        for path in [&work, &inputs_dir, &dir.outputs] {
            DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|e| SandboxError::io("creating the job's working directory", e))?;
        }
        for (name, path) in inputs {
            let target = fs::canonicalize(path)
                .map_err(|e| SandboxError::io(format!("resolving input {name:?}"), e))?;
            std::os::unix::fs::symlink(target, inputs_dir.join(name))
                .map_err(|e| SandboxError::io(format!("linking input {name:?}"), e))?;
        }
        Ok(dir)
    }

    /// `outputs/` on the host.
    pub(crate) fn outputs(&self) -> &Path {
        &self.outputs
    }

    /// The script on the host (unsandboxed runs).
    pub(crate) fn script(&self) -> Option<&Path> {
        self.script.as_deref()
    }

    /// The working directory (unsandboxed runs).
    pub(crate) fn work(&self) -> Option<&Path> {
        self.work.as_deref()
    }
}

/// Creates `<work_root>/<job_id>.<pid>.<n>` (mode 0700), with a name no other job of any process uses.
fn create_unique(work_root: &Path, job_id: &str) -> Result<PathBuf, SandboxError> {
    if !work_root.is_dir() {
        fs::create_dir_all(work_root).map_err(|e| {
            SandboxError::io(format!("creating work root {}", work_root.display()), e)
        })?;
    }
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let candidate = work_root.join(format!("{job_id}.{}.{n}", std::process::id()));
        match DirBuilder::new().mode(0o700).create(&candidate) {
            Ok(()) => return Ok(candidate),
            // Left behind by an earlier process with the same pid; pick the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(SandboxError::io(
                    format!("creating job directory under {}", work_root.display()),
                    e,
                ))
            }
        }
    }
}

/// The inodes a job's `/tmp` may hold (about a kilobyte of kernel memory each): as many files as `outputs/`
/// may hold, three times over.
pub const SCRATCH_INODES: u64 = 3 * crate::MAX_OUTPUT_ENTRIES;

/// The inodes a job's `/dev/shm` may hold (POSIX shared memory and semaphores).
pub const SHM_INODES: u64 = 4096;

/// A root worker's mount points for a job's `/tmp` and `/dev/shm`, removed on drop.
pub(crate) struct ScratchDirs {
    root: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) shm: PathBuf,
}

impl ScratchDirs {
    /// Beside the job directory `job`.
    pub(crate) fn create(job: &JobDir) -> Result<ScratchDirs, SandboxError> {
        let mut root = job.root.clone().into_os_string();
        root.push(".scratch");
        let root = PathBuf::from(root);
        let dirs = ScratchDirs {
            tmp: root.join("tmp"),
            shm: root.join("shm"),
            root,
        };
        let made = |p: &Path| {
            DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(|e| SandboxError::io(format!("creating {}", p.display()), e))
        };
        made(&dirs.root)?;
        // From here on, dropping `dirs` removes what was made.
        made(&dirs.tmp)?;
        made(&dirs.shm)?;
        Ok(dirs)
    }

    /// `(mount point, tmpfs options)` for each: sized at `size` bytes, with their inode caps.
    pub(crate) fn mounts(&self, size: u64) -> Vec<(std::ffi::CString, std::ffi::CString)> {
        use std::os::unix::ffi::OsStrExt;
        // size=0 would mean no limit at all.
        let size = size.max(4096);
        [(&self.tmp, SCRATCH_INODES), (&self.shm, SHM_INODES)]
            .into_iter()
            .map(|(path, inodes)| {
                (
                    std::ffi::CString::new(path.as_os_str().as_bytes())
                        .expect("a path made here has no NUL"),
                    std::ffi::CString::new(format!("mode=1777,size={size},nr_inodes={inodes}"))
                        .expect("no NUL"),
                )
            })
            .collect()
    }
}

impl Drop for ScratchDirs {
    fn drop(&mut self) {
        for dir in [&self.tmp, &self.shm, &self.root] {
            if let Err(e) = fs::remove_dir(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(dir = %dir.display(), error = %e, "could not remove a job's scratch mount point");
                }
            }
        }
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.root) {
            tracing::error!(dir = %self.root.display(), error = %e, "could not remove a job directory");
        }
    }
}

/// Removes what workers no longer running left in `work_root`: the job directories and scratch mount points
/// (`<job_id>.<pid>.<n>`, `<job_id>.<pid>.<n>.scratch`) of a process that has exited, as a worker killed
/// mid-job leaves them, outputs and all. Those of a live process are left alone: other workers on this host may
/// share the directory. Returns what was removed. (A worker in another pid namespace sharing the directory would
/// look dead from here: give each its own work directory, as `ferry init` does.)
pub fn sweep_work_root(work_root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(work_root) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(maker_pid) else {
            continue;
        };
        if crate::maker::alive(pid) {
            continue;
        }
        let path = entry.path();
        match remove_tree(&path) {
            Ok(()) => removed.push(path),
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove a dead worker's job directory")
            }
        }
    }
    removed
}

/// The pid in a job directory's name (see [`create_unique`]), if `name` is one.
fn maker_pid(name: &str) -> Option<u32> {
    crate::maker::pid_in(name.strip_suffix(".scratch").unwrap_or(name), '.')
}

/// Removes `root` even when the job left directories without write permission (which stops a non-root
/// worker from deleting their entries). `remove_dir_all` does not follow symbolic links.
fn remove_tree(root: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(root) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    make_writable(root, 0);
    fs::remove_dir_all(root)
}

fn make_writable(dir: &Path, depth: usize) {
    if depth > 64 {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path(), depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_removes_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let root;
        {
            let dir = JobDir::for_sandbox(tmp.path(), "job-1", None).unwrap();
            root = dir.root.clone();
            assert!(dir.outputs().is_dir());
            // A directory the job made unwritable must not survive.
            let locked = dir.outputs().join("locked");
            fs::create_dir(&locked).unwrap();
            fs::write(locked.join("f"), b"x").unwrap();
            fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).unwrap();
        }
        assert!(!root.exists());
    }

    #[test]
    fn unsandboxed_layout_holds_script_inputs_and_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let asset = tmp.path().join("asset");
        fs::write(&asset, b"data").unwrap();
        let dir = JobDir::for_unsandboxed(
            &tmp.path().join("work"),
            "j",
            "job.py",
            "print(1)\n",
            &[("x".into(), asset)],
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(dir.script().unwrap()).unwrap(),
            "print(1)\n"
        );
        let work = dir.work().unwrap();
        assert_eq!(fs::read(work.join("inputs/x")).unwrap(), b"data");
        assert_eq!(dir.outputs(), work.join("outputs"));
    }

    #[test]
    fn a_worker_killed_mid_job_has_its_job_directories_swept_at_the_next_start_and_live_ones_kept()
    {
        let tmp = tempfile::tempdir().unwrap();
        // This (live) process's job, and a dead worker's job with its scratch mount points and a locked directory.
        let live = JobDir::for_sandbox(tmp.path(), "0f3a-live", None).unwrap();
        let dead = tmp.path().join(format!("0f3a-dead.{}.3", u32::MAX));
        fs::create_dir_all(dead.join("locked")).unwrap();
        fs::write(dead.join("locked/result.csv"), b"x").unwrap();
        fs::set_permissions(dead.join("locked"), fs::Permissions::from_mode(0o500)).unwrap();
        let scratch = tmp.path().join(format!("0f3a-dead.{}.3.scratch", u32::MAX));
        fs::create_dir_all(scratch.join("tmp")).unwrap();
        // Not a job directory's name: not ours to remove.
        let other = tmp.path().join("notes.1234");
        fs::create_dir(&other).unwrap();

        let mut removed = sweep_work_root(tmp.path());
        removed.sort();
        assert_eq!(removed, vec![dead.clone(), scratch.clone()]);
        assert!(!dead.exists() && !scratch.exists());
        assert!(live.outputs().is_dir() && other.is_dir());
        assert_eq!(maker_pid("j.12.0.scratch"), Some(12));
        assert_eq!(maker_pid(".12.0"), None);
    }

    #[test]
    fn two_jobs_with_the_same_id_get_different_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let a = JobDir::for_sandbox(tmp.path(), "same", None).unwrap();
        let b = JobDir::for_sandbox(tmp.path(), "same", None).unwrap();
        assert_ne!(a.root, b.root);
    }
}
