//! Directory assets (a model folder: config, tokenizer, weight shards): the checks `ferry asset add` makes of a
//! private or mock tree, and the deterministic tar archive a mock directory crosses and is served as.
//!
//! A private tree is bound read-only into the sandbox as it is; its version is its tree hash
//! (`ferry_core::tree::tree_sha256`). A symbolic link in it must stay inside it (a relative target that does not
//! climb out: the Hugging Face cache's `snapshots/…/model.safetensors -> ../../blobs/…` is fine), and is kept as a
//! link; an absolute link or one leading out is refused, as are sockets, FIFOs and devices. A hard link is an
//! ordinary file: its content is part of the asset (resolved, not refused).
//!
//! A mock tree may hold only directories and regular files (no links: it is copied to the other side and to
//! researchers' machines). It crosses as a ustar archive with entries in byte order of their paths, every
//! directory before what it holds, modes 0755 and 0644, owner 0, mtime 0: the same tree always makes the same
//! bytes, so its SHA-256 is its version and an unchanged mock is never sent again.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, TransferError};

/// Most entries a mock archive may hold.
pub const MAX_TREE_ENTRIES: usize = 100_000;
/// Longest path in a mock archive, bytes.
pub const MAX_TREE_PATH: usize = 1024;

fn invalid(why: String) -> TransferError {
    TransferError::Invalid(why)
}

/// Every entry under `root`, relative, in byte order of the paths (directories before what they hold), at most
/// [`MAX_TREE_ENTRIES`].
fn entries(root: &Path) -> Result<Vec<PathBuf>> {
    ferry_core::tree::walk(root, MAX_TREE_ENTRIES).map_err(|e| invalid(e.to_string()))
}

/// The text files under a directory, read one after another with a newline between them (for the echo index):
/// regular files in byte order of their paths, skipping links and any file with a NUL byte in its first 8 KiB.
pub struct TextFiles {
    root: PathBuf,
    files: std::vec::IntoIter<PathBuf>,
    current: Option<std::fs::File>,
    separator: bool,
}

impl TextFiles {
    /// Lists `root`'s files (not yet reading them).
    pub fn new(root: &Path) -> Result<TextFiles> {
        let mut files = Vec::new();
        for rel in entries(root)? {
            let full = root.join(&rel);
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| TransferError::io("reading", &full, e))?;
            if meta.is_file() {
                files.push(rel);
            }
        }
        Ok(TextFiles {
            root: root.to_path_buf(),
            files: files.into_iter(),
            current: None,
            separator: false,
        })
    }

    fn next_text_file(&mut self) -> std::io::Result<Option<std::fs::File>> {
        use std::io::Seek;
        for rel in self.files.by_ref() {
            let mut file = std::fs::File::open(self.root.join(&rel))?;
            let mut head = vec![0u8; 8192];
            let n = file.read(&mut head)?;
            if memchr_nul(&head[..n]) {
                continue;
            }
            file.seek(std::io::SeekFrom::Start(0))?;
            return Ok(Some(file));
        }
        Ok(None)
    }
}

fn memchr_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
}

impl Read for TextFiles {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.separator {
                if buf.is_empty() {
                    return Ok(0);
                }
                self.separator = false;
                buf[0] = b'\n';
                return Ok(1);
            }
            if self.current.is_none() {
                match self.next_text_file()? {
                    Some(f) => self.current = Some(f),
                    None => return Ok(0),
                }
            }
            let n = self.current.as_mut().expect("a file is open").read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.current = None;
            self.separator = true;
        }
    }
}

/// Whether a link at `rel` (relative to the tree's root) with `target` stays inside the tree.
fn stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// What a tree holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Checks a private tree for `ferry asset add`: links stay inside it, nothing is a socket, FIFO or device, and
/// `job_uid` (the sandbox's user, as "others") can read every file and enter every directory.
pub fn check_private_tree(root: &Path, job_uid: u32) -> Result<TreeStats> {
    use std::os::unix::fs::PermissionsExt;
    let mut stats = TreeStats::default();
    let root_mode = std::fs::metadata(root)
        .map_err(|e| TransferError::io("reading", root, e))?
        .permissions()
        .mode();
    if root_mode & 0o005 != 0o005 {
        return Err(invalid(format!(
            "{} is not readable and enterable by others (mode {:o}): sandboxed jobs run as uid {job_uid}; \
             `chmod -R o+rX` it and keep the directory above it closed (0700) instead",
            root.display(),
            root_mode & 0o777
        )));
    }
    for rel in entries(root)? {
        let full = root.join(&rel);
        let meta =
            std::fs::symlink_metadata(&full).map_err(|e| TransferError::io("reading", &full, e))?;
        let mode = meta.permissions().mode();
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target =
                std::fs::read_link(&full).map_err(|e| TransferError::io("reading", &full, e))?;
            if !stays_inside(&rel, &target) {
                return Err(invalid(format!(
                    "{} is a link to {}, outside the asset: a job could not see it; copy the file in instead",
                    full.display(),
                    target.display()
                )));
            }
        } else if ft.is_dir() {
            if mode & 0o005 != 0o005 {
                return Err(invalid(format!(
                    "directory {} is not readable and enterable by others (mode {:o}): `chmod -R o+rX` the asset",
                    full.display(),
                    mode & 0o777
                )));
            }
        } else if ft.is_file() {
            if mode & 0o004 == 0 {
                return Err(invalid(format!(
                    "{} is not readable by others (mode {:o}): `chmod -R o+rX` the asset",
                    full.display(),
                    mode & 0o777
                )));
            }
            stats.files += 1;
            stats.bytes += meta.len();
        } else {
            return Err(invalid(format!(
                "{} is a {}: an asset holds only files, directories and links inside it",
                full.display(),
                ferry_core::tree::special_kind(&meta).unwrap_or("special file")
            )));
        }
    }
    Ok(stats)
}

/// Writes the mock tree at `root` as its deterministic ustar archive to `out` (see the module's doc), streaming
/// each file; refuses links and special files.
pub fn pack_mock_tree(root: &Path, out: impl Write) -> Result<TreeStats> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut stats = TreeStats::default();
    for rel in entries(root)? {
        let full = root.join(&rel);
        let shown = rel.display().to_string();
        if rel.as_os_str().len() > MAX_TREE_PATH
            || std::str::from_utf8(rel.as_os_str().as_bytes()).is_err()
        {
            return Err(invalid(format!(
                "{} has a path that is not UTF-8 or over {MAX_TREE_PATH} bytes",
                full.display()
            )));
        }
        let meta =
            std::fs::symlink_metadata(&full).map_err(|e| TransferError::io("reading", &full, e))?;
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{shown}/"), std::io::empty())
                .map_err(|e| TransferError::io("archiving", &full, e))?;
        } else if meta.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(meta.len());
            let file =
                std::fs::File::open(&full).map_err(|e| TransferError::io("opening", &full, e))?;
            builder
                .append_data(&mut header, &shown, file)
                .map_err(|e| TransferError::io("archiving", &full, e))?;
            stats.files += 1;
            stats.bytes += meta.len();
        } else {
            return Err(invalid(format!(
                "{} is {}: a mock directory holds only files and directories (it is copied to researchers)",
                full.display(),
                if meta.file_type().is_symlink() {
                    "a link".to_string()
                } else {
                    format!(
                        "a {}",
                        ferry_core::tree::special_kind(&meta).unwrap_or("special file")
                    )
                }
            )));
        }
    }
    builder
        .into_inner()
        .map_err(|e| TransferError::io("finishing the archive of", root, e))?;
    Ok(stats)
}

/// Unpacks a mock archive read from `input` into the new directory `dest`: only directories and regular files
/// whose paths are relative and climb nowhere; anything else is refused and `dest` removed.
pub fn unpack_mock_tree(input: impl Read, dest: &Path) -> Result<TreeStats> {
    let result = unpack_into(input, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn unpack_into(input: impl Read, dest: &Path) -> Result<TreeStats> {
    std::fs::create_dir(dest).map_err(|e| TransferError::io("creating", dest, e))?;
    let mut archive = tar::Archive::new(input);
    let mut stats = TreeStats::default();
    let mut count = 0usize;
    for entry in archive
        .entries()
        .map_err(|e| TransferError::io("reading the archive for", dest, e))?
    {
        let mut entry = entry.map_err(|e| TransferError::io("reading the archive for", dest, e))?;
        count += 1;
        if count > MAX_TREE_ENTRIES {
            return Err(invalid(format!(
                "the mock archive holds more than {MAX_TREE_ENTRIES} entries"
            )));
        }
        let path = entry
            .path()
            .map_err(|e| TransferError::io("reading the archive for", dest, e))?
            .into_owned();
        let clean = !path.as_os_str().is_empty()
            && path.as_os_str().len() <= MAX_TREE_PATH
            && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !clean {
            return Err(invalid(format!(
                "the mock archive names {:?}, which is not a plain relative path",
                path.display().to_string()
            )));
        }
        let target = dest.join(&path);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target)
                    .map_err(|e| TransferError::io("creating", &target, e))?;
            }
            tar::EntryType::Regular => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| TransferError::io("creating", parent, e))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(|e| TransferError::io("creating", &target, e))?;
                let n = std::io::copy(&mut entry, &mut file)
                    .map_err(|e| TransferError::io("writing", &target, e))?;
                stats.files += 1;
                stats.bytes += n;
            }
            other => {
                return Err(invalid(format!(
                "the mock archive holds {:?} as {other:?}: only directories and files are unpacked",
                path.display().to_string()
            )))
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("tok")).unwrap();
        std::fs::write(root.join("config.json"), b"{}").unwrap();
        std::fs::write(root.join("tok/vocab.txt"), b"a\nb\n").unwrap();
    }

    #[test]
    fn the_same_mock_tree_always_makes_the_same_archive_and_unpacks_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        tree(&a);
        let mut first = Vec::new();
        let stats = pack_mock_tree(&a, &mut first).unwrap();
        assert_eq!(stats, TreeStats { files: 2, bytes: 6 });
        // Touching the files (new mtimes) changes nothing.
        std::fs::write(a.join("config.json"), b"{}").unwrap();
        let mut second = Vec::new();
        pack_mock_tree(&a, &mut second).unwrap();
        assert_eq!(first, second);
        let out = dir.path().join("out");
        unpack_mock_tree(first.as_slice(), &out).unwrap();
        assert_eq!(
            ferry_core::tree::tree_sha256(&out).unwrap(),
            ferry_core::tree::tree_sha256(&a).unwrap()
        );
    }

    #[test]
    fn a_link_leading_out_of_a_private_tree_is_refused_and_one_inside_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("model");
        tree(&root);
        std::os::unix::fs::symlink("../config.json", root.join("tok/config.json")).unwrap();
        check_private_tree(&root, 65534).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("tok/out")).unwrap();
        let err = check_private_tree(&root, 65534).unwrap_err();
        assert!(err.to_string().contains("outside the asset"), "{err}");
        std::fs::remove_file(root.join("tok/out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        let err = check_private_tree(&root, 65534).unwrap_err();
        assert!(err.to_string().contains("outside the asset"), "{err}");
    }

    #[test]
    fn a_mock_tree_with_a_link_or_a_fifo_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mock");
        tree(&root);
        std::os::unix::fs::symlink("config.json", root.join("link")).unwrap();
        let err = pack_mock_tree(&root, std::io::sink()).unwrap_err();
        assert!(err.to_string().contains("is a link"), "{err}");
        std::fs::remove_file(root.join("link")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap()
            .success());
        let err = check_private_tree(&root, 65534).unwrap_err();
        assert!(err.to_string().contains("is a FIFO"), "{err}");
    }

    #[test]
    fn an_archive_climbing_out_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        {
            let mut b = tar::Builder::new(&mut bytes);
            let mut h = tar::Header::new_gnu();
            h.set_size(1);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..` itself; write the name into the header directly.
            h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
            b.finish().unwrap();
        }
        let out = dir.path().join("out");
        let err = unpack_mock_tree(bytes.as_slice(), &out).unwrap_err();
        assert!(
            err.to_string().contains("not a plain relative path"),
            "{err}"
        );
        assert!(!out.exists());
        assert!(!dir.path().join("evil").exists());
    }
}
