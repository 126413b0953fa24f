//! Measuring `outputs/` while the job runs and collecting it afterwards, without following links.
//!
//! The directory is on the host and the job controls what is in it, so every step goes through
//! descriptors: `openat(O_NOFOLLOW)` relative to the parent directory, `fstat` on what was opened. A job
//! that swaps a directory for a symbolic link to `/etc` (or `/proc/1/root`) gets it skipped, never
//! followed, even while it is still running; only directories and regular files count, FIFOs and devices
//! are never opened for reading in a way that blocks.
//!
//! Collection applies the one output-name rule, `ferry_core::names`: a file or directory whose name is
//! not valid UTF-8, holds a control, bidi or invisible character, is too long, or collides with an
//! earlier output once case, compatibility forms and invisible characters are set aside, is not
//! collected, and is reported in [`Collected::refused`] with why.

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat, statat, AtFlags, Dir, FileType, Mode, OFlags, CWD};

use ferry_core::names::{self, OutputNames};

use crate::{OutputCap, OutputFile, RefusedOutput};

/// Most entries (files and directories) `outputs/` may hold.
pub const MAX_OUTPUT_ENTRIES: u64 = 10_000;

/// Deepest directory nesting under `outputs/`: the output-name rule's depth cap (a file may sit under at
/// most this many directories).
pub const MAX_OUTPUT_DEPTH: usize = names::MAX_OUTPUT_DEPTH;

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
        self.exceeded(max_bytes).is_some()
    }

    /// Which cap this passes, if any (the byte cap first).
    pub(crate) fn exceeded(&self, max_bytes: u64) -> Option<OutputCap> {
        if self.bytes > max_bytes {
            Some(OutputCap::Bytes)
        } else if self.entries > MAX_OUTPUT_ENTRIES {
            Some(OutputCap::Entries)
        } else if self.too_deep {
            Some(OutputCap::Depth)
        } else {
            None
        }
    }
}

/// What `collect` found.
pub(crate) struct Collected {
    /// Regular files that fit under the cap, sorted by name.
    pub files: Vec<OutputFile>,
    /// The caps were exceeded (some files were left out).
    pub over_limit: bool,
    /// The first cap found exceeded, when `over_limit`.
    pub over: Option<OutputCap>,
    /// Files and directories not collected because of their names, in the order met.
    pub refused: Vec<RefusedOutput>,
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
            over: None,
            names: OutputNames::new(),
            refused: Vec::new(),
        };
        walk.dir(self.fd.as_fd(), b"", 0)?;
        walk.files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Collected {
            files: walk.files,
            over_limit: walk.over.is_some(),
            over: walk.over,
            refused: walk.refused,
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
    over: Option<OutputCap>,
    names: OutputNames,
    refused: Vec<RefusedOutput>,
}

impl Collect {
    fn exceeded(&mut self, cap: OutputCap) {
        self.over.get_or_insert(cap);
    }

    fn refuse(&mut self, error: names::NameError, is_dir: bool) {
        let mut name = error.name;
        if is_dir {
            name.push('/');
        }
        let why = if is_dir {
            format!("{} (nothing under it was collected)", error.why)
        } else {
            error.why
        };
        tracing::info!(name = %name, why = %why, "not collecting an output");
        self.refused.push(RefusedOutput {
            name_escaped: name,
            why,
        });
    }

    /// `prefix` is the directory's path under `outputs/` with a trailing `/`, or empty for `outputs/`.
    fn dir(
        &mut self,
        dir: std::os::fd::BorrowedFd<'_>,
        prefix: &[u8],
        depth: usize,
    ) -> std::io::Result<()> {
        // A directory the job made unreadable (possible when the worker is not root) is skipped, like
        // anything else that is not a regular file: the job only hurts its own results.
        let names = match names(dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::debug!(dir = %String::from_utf8_lossy(prefix), error = %e, "skipping an unreadable output directory");
                return Ok(());
            }
        };
        for raw in names {
            self.entries += 1;
            if self.entries > MAX_OUTPUT_ENTRIES {
                self.exceeded(OutputCap::Entries);
                return Ok(());
            }
            let Some(name) = cstr(&raw) else { continue };
            let path = [prefix, &raw].concat();
            let fd = match open_entry(dir, name.as_c_str()) {
                Some(fd) => fd,
                None => continue,
            };
            let stat = rustix::fs::fstat(&fd)?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => {
                    if depth + 1 > MAX_OUTPUT_DEPTH {
                        self.exceeded(OutputCap::Depth);
                        continue;
                    }
                    if let Err(e) = names::output_path_bytes(&path) {
                        self.refuse(e, true);
                        continue;
                    }
                    self.dir(fd.as_fd(), &[&path[..], b"/"].concat(), depth + 1)?;
                }
                FileType::RegularFile => {
                    let text = match names::output_path_bytes(&path) {
                        Ok(text) => text.to_string(),
                        Err(e) => {
                            self.refuse(e, false);
                            continue;
                        }
                    };
                    if let Err(e) = self.names.insert(&text) {
                        self.refuse(e, false);
                        continue;
                    }
                    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
                    if size > self.budget {
                        self.exceeded(OutputCap::Bytes);
                        continue;
                    }
                    // Read at most what fits, plus one byte to notice a file that grew since the stat.
                    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                    std::fs::File::from(fd)
                        .take(self.budget.saturating_add(1))
                        .read_to_end(&mut data)?;
                    let len = data.len() as u64;
                    if len > self.budget {
                        self.exceeded(OutputCap::Bytes);
                        continue;
                    }
                    self.budget -= len;
                    self.files.push(OutputFile { name: text, data });
                }
                other => {
                    tracing::debug!(name = %String::from_utf8_lossy(&path), kind = ?other, "skipping an output that is not a regular file");
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

    fn collect(out: &Path) -> Collected {
        OutputsDir::open(out).unwrap().collect(1 << 20).unwrap()
    }

    fn refused(collected: &Collected) -> Vec<(&str, &str)> {
        collected
            .refused
            .iter()
            .map(|r| (r.name_escaped.as_str(), r.why.as_str()))
            .collect()
    }

    #[test]
    fn non_utf8_output_names_are_reported_not_just_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("ok.txt"), b"ok").unwrap();
        fs::write(
            tmp.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
            b"x",
        )
        .unwrap();
        let collected = collect(tmp.path());
        assert_eq!(collected.files.len(), 1);
        assert_eq!(
            refused(&collected),
            [("caf\\xe9.txt", "it is not valid UTF-8 (byte 4 is \\xe9)")]
        );
    }

    #[test]
    fn names_with_controls_or_invisible_characters_are_refused_with_why() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::write(out.join("summary.txt"), b"real").unwrap();
        fs::write(out.join("summary\u{200b}.txt"), b"decoy").unwrap();
        fs::write(out.join("bad\x1b[2K\rname"), b"x").unwrap();
        fs::write(out.join("x".repeat(201)), b"x").unwrap();
        let collected = collect(out);
        let names: Vec<_> = collected.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["summary.txt"]);
        let mut got = refused(&collected);
        got.sort();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            (
                "bad\\x1b[2K\\x0dname",
                "it contains the control character \\x1b (character 4)"
            )
        );
        assert_eq!(
            got[1],
            (
                "summary\\u{200b}.txt",
                "it contains the invisible character \\u{200b} (character 8)"
            )
        );
        assert!(got[2].0.starts_with("xxx"));
        assert_eq!(got[2].1, "it is 201 bytes long; the limit is 200 bytes");
        assert!(!collected.over_limit);
    }

    #[test]
    fn outputs_that_collide_after_case_folding_and_nfkc_keep_only_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::write(out.join("Summary.txt"), b"first in byte order").unwrap();
        fs::write(out.join("summary.txt"), b"second").unwrap();
        fs::write(out.join("ｓummary.txt"), b"third").unwrap();
        let collected = collect(out);
        assert_eq!(collected.files.len(), 1);
        assert_eq!(collected.files[0].name, "Summary.txt");
        assert_eq!(collected.refused.len(), 2);
        for r in &collected.refused {
            assert!(r
                .why
                .starts_with("it looks the same as the output `Summary.txt`"));
        }
    }

    #[test]
    fn a_directory_with_a_bad_name_is_reported_once_and_not_entered() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::create_dir(out.join("d\u{202e}ir")).unwrap();
        fs::write(out.join("d\u{202e}ir/a.txt"), b"a").unwrap();
        fs::write(out.join("d\u{202e}ir/b.txt"), b"b").unwrap();
        let collected = collect(out);
        assert!(collected.files.is_empty());
        assert_eq!(
            refused(&collected),
            [(
                "d\\u{202e}ir/",
                "it contains the bidirectional control \\u{202e} (character 2) (nothing under it \
                 was collected)"
            )]
        );
    }

    #[test]
    fn entry_and_depth_caps_are_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let mut deep = tmp.path().to_path_buf();
        for _ in 0..=MAX_OUTPUT_DEPTH {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        let dir = OutputsDir::open(tmp.path()).unwrap();
        assert_eq!(dir.usage(1 << 20).exceeded(1 << 20), Some(OutputCap::Depth));
        let collected = dir.collect(1 << 20).unwrap();
        assert_eq!(collected.over, Some(OutputCap::Depth));

        let tmp = tempfile::tempdir().unwrap();
        for i in 0..=MAX_OUTPUT_ENTRIES {
            fs::write(tmp.path().join(i.to_string()), b"").unwrap();
        }
        let dir = OutputsDir::open(tmp.path()).unwrap();
        assert_eq!(
            dir.usage(1 << 20).exceeded(1 << 20),
            Some(OutputCap::Entries)
        );
        let collected = dir.collect(1 << 20).unwrap();
        assert_eq!(collected.over, Some(OutputCap::Entries));
        assert!(collected.over_limit);

        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("big"), vec![0u8; 2000]).unwrap();
        let dir = OutputsDir::open(tmp.path()).unwrap();
        assert_eq!(dir.usage(1000).exceeded(1000), Some(OutputCap::Bytes));
        assert_eq!(dir.collect(1000).unwrap().over, Some(OutputCap::Bytes));
    }

    #[test]
    fn outputs_dir_itself_must_not_be_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("out")).unwrap();
        assert!(OutputsDir::open(&tmp.path().join("out")).is_err());
    }
}
