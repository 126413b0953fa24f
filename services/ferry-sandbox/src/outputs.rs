//! Measuring `outputs/` while the job runs and collecting it afterwards, without following links.
//!
//! The directory is on the host and the job controls what is in it, so every step goes through
//! descriptors: `openat(O_NOFOLLOW)` relative to the parent directory, `fstat` on what was opened. A job
//! that swaps a directory for a symbolic link to `/etc` (or `/proc/1/root`) gets it skipped, never
//! followed, even while it is still running; only directories and regular files count, FIFOs and devices
//! are never opened for reading in a way that blocks.

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};

use crate::OutputFile;

/// Most entries (files and directories) `outputs/` may hold.
pub const MAX_OUTPUT_ENTRIES: u64 = 10_000;

/// Deepest directory nesting under `outputs/`.
pub const MAX_OUTPUT_DEPTH: usize = 32;

/// `outputs/`, opened once when the job starts.
pub(crate) struct OutputsDir {
    fd: OwnedFd,
}

/// How big `outputs/` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Files and directories.
    pub entries: u64,
    /// Sum of the regular files' sizes.
    pub bytes: u64,
    /// Something was nested deeper than [`MAX_OUTPUT_DEPTH`].
    pub too_deep: bool,
}

impl Usage {
    /// Whether this passes a cap of `max_bytes` or the entry and depth caps.
    pub(crate) fn over(&self, max_bytes: u64) -> bool {
        self.bytes > max_bytes || self.entries > MAX_OUTPUT_ENTRIES || self.too_deep
    }
}

/// What `collect` found.
pub(crate) struct Collected {
    /// Regular files that fit under the cap, sorted by name.
    pub files: Vec<OutputFile>,
    /// The caps were exceeded (some files were left out).
    pub over_limit: bool,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl OutputsDir {
    /// Opens `path`, which must be a real directory.
    pub(crate) fn open(path: &Path) -> std::io::Result<OutputsDir> {
        Ok(OutputsDir {
            fd: openat(CWD, path, DIR_FLAGS, Mode::empty())?,
        })
    }

    /// The descriptor, to hand to `bwrap`.
    pub(crate) fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    /// Measures the tree, stopping early once `max_bytes` or the entry cap is passed. Entries that vanish
    /// or change type while being measured are skipped (the job may still be writing).
    pub(crate) fn usage(&self, max_bytes: u64) -> Usage {
        let mut usage = Usage::default();
        measure(self.fd.as_fd(), 0, max_bytes, &mut usage);
        usage
    }

    /// Reads every regular file, keeping at most `max_bytes` in total. Call only once the job's processes
    /// are all dead.
    pub(crate) fn collect(&self, max_bytes: u64) -> std::io::Result<Collected> {
        let mut walk = Collect {
            files: Vec::new(),
            budget: max_bytes,
            entries: 0,
            over_limit: false,
        };
        walk.dir(self.fd.as_fd(), "", 0)?;
        walk.files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Collected {
            files: walk.files,
            over_limit: walk.over_limit,
        })
    }
}

/// The names in a directory, without `.` and `..`, sorted (so results do not depend on the file system's
/// order).
fn names(dir: impl AsFd) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

fn cstr(name: &[u8]) -> Option<std::ffi::CString> {
    std::ffi::CString::new(name).ok()
}

fn measure(dir: std::os::fd::BorrowedFd<'_>, depth: usize, max_bytes: u64, usage: &mut Usage) {
    let Ok(names) = names(dir) else { return };
    for name in names {
        if usage.over(max_bytes) {
            return;
        }
        let Some(name) = cstr(&name) else { continue };
        let Ok(stat) = statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        usage.entries += 1;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {
                usage.bytes = usage
                    .bytes
                    .saturating_add(u64::try_from(stat.st_size).unwrap_or(0));
            }
            FileType::Directory => {
                if depth + 1 > MAX_OUTPUT_DEPTH {
                    usage.too_deep = true;
                    return;
                }
                // If it was swapped for a link since the stat, O_NOFOLLOW makes this fail: skipped.
                if let Ok(sub) = openat(dir, name.as_c_str(), DIR_FLAGS, Mode::empty()) {
                    measure(sub.as_fd(), depth + 1, max_bytes, usage);
                }
            }
            _ => {}
        }
    }
}

struct Collect {
    files: Vec<OutputFile>,
    budget: u64,
    entries: u64,
    over_limit: bool,
}

impl Collect {
    fn dir(
        &mut self,
        dir: std::os::fd::BorrowedFd<'_>,
        prefix: &str,
        depth: usize,
    ) -> std::io::Result<()> {
        // A directory the job made unreadable (possible when the worker is not root) is skipped, like
        // anything else that is not a regular file: the job only hurts its own results.
        let names = match names(dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::debug!(dir = %prefix, error = %e, "skipping an unreadable output directory");
                return Ok(());
            }
        };
        for raw in names {
            self.entries += 1;
            if self.entries > MAX_OUTPUT_ENTRIES {
                self.over_limit = true;
                return Ok(());
            }
            let Some(name) = cstr(&raw) else { continue };
            let Ok(text) = std::str::from_utf8(&raw) else {
                tracing::warn!(name = %String::from_utf8_lossy(&raw), "skipping an output whose name is not UTF-8");
                continue;
            };
            let path = format!("{prefix}{text}");
            let fd = match open_entry(dir, name.as_c_str()) {
                Some(fd) => fd,
                None => continue,
            };
            let stat = rustix::fs::fstat(&fd)?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    if depth + 1 > MAX_OUTPUT_DEPTH {
                        self.over_limit = true;
                        continue;
                    }
                    self.dir(fd.as_fd(), &format!("{path}/"), depth + 1)?;
                }
                FileType::RegularFile => {
                    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
                    if size > self.budget {
                        self.over_limit = true;
                        continue;
                    }
                    // Read at most what fits, plus one byte to notice a file that grew since the stat.
                    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    std::fs::File::from(fd)
                        .take(self.budget.saturating_add(1))
                        .read_to_end(&mut data)?;
                    let len = data.len() as u64;
                    if len > self.budget {
                        self.over_limit = true;
                        continue;
                    }
                    self.budget -= len;
                    self.files.push(OutputFile { name: path, data });
                }
                other => {
                    tracing::debug!(name = %path, kind = ?other, "skipping an output that is not a regular file");
                }
            }
        }
        Ok(())
    }
}

/// Opens a directory entry without following a link and without blocking on a FIFO; `None` for what
/// cannot be opened that way (links, sockets, entries that vanished).
fn open_entry(dir: std::os::fd::BorrowedFd<'_>, name: &CStr) -> Option<OwnedFd> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    openat(dir, name, flags, Mode::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn collects_files_and_skips_links_and_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::write(out.join("a.txt"), b"alpha").unwrap();
        fs::create_dir(out.join("sub")).unwrap();
        fs::write(out.join("sub/b.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", out.join("passwd")).unwrap();
        std::os::unix::fs::symlink("/etc", out.join("etc")).unwrap();
        rustix::fs::mknodat(
            CWD,
            out.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let dir = OutputsDir::open(out).unwrap();
        let usage = dir.usage(1 << 20);
        assert_eq!(usage.bytes, 7);
        let collected = dir.collect(1 << 20).unwrap();
        let names: Vec<_> = collected.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "sub/b.json"]);
        assert_eq!(collected.files[0].data, b"alpha");
        assert!(!collected.over_limit);
    }

    #[test]
    fn files_past_the_cap_are_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), vec![0u8; 600]).unwrap();
        fs::write(tmp.path().join("b"), vec![0u8; 600]).unwrap();
        let dir = OutputsDir::open(tmp.path()).unwrap();
        assert!(dir.usage(1000).over(1000));
        let collected = dir.collect(1000).unwrap();
        assert_eq!(collected.files.len(), 1);
        assert!(collected.over_limit);
    }

    #[test]
    fn outputs_dir_itself_must_not_be_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("out")).unwrap();
        assert!(OutputsDir::open(&tmp.path().join("out")).is_err());
    }
}
