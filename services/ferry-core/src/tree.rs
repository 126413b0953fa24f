//! Content hashes of files and directory trees: the version of an asset or a runtime.
//!
//! The tree hash of a directory is the SHA-256 of a listing of everything under it, in byte order of the paths
//! relative to it, one line per entry:
//!
//! ```text
//! D <path>\n                  a directory
//! F <path>\0<sha256 hex>\n    a regular file and the SHA-256 of its content
//! L <path>\0<target>\n        a symbolic link and what it points at (not followed)
//! ```
//!
//! Anything else (a socket, a FIFO, a device) is refused: it has no content to hash. The hash of a regular file
//! given instead of a directory is the SHA-256 of its content. Both are computed streaming, in bounded memory.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a tree could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// More entries than the caller allows.
    #[error("{} holds more than {max} entries", path.display())]
    TooMany {
        /// The tree.
        path: PathBuf,
        /// The cap.
        max: usize,
    },
    /// An entry that is neither a file, a directory nor a link.
    #[error("{} is a {kind}, which has no content to hash", path.display())]
    Special {
        /// Where.
        path: PathBuf,
        /// Socket, FIFO, device.
        kind: &'static str,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of a file's content, hex, streamed.
pub fn file_sha256(path: &Path) -> Result<String, TreeError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(path))?;
    Ok(hex::encode(hasher.finalize()))
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: std::io::Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written, their SHA-256 (hex) and the inner writer.
    pub fn finish(self) -> (u64, String, W) {
        let digest = self.hasher.finalize();
        (self.len, hex::encode(digest), self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Every entry under the directory `root`, as paths relative to it, in byte order (so each directory comes
/// before what it holds); links are listed, not followed. More than `max` entries is [`TreeError::TooMany`].
pub fn walk(root: &Path, max: usize) -> Result<Vec<PathBuf>, TreeError> {
    let mut entries: Vec<PathBuf> = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = rel.join(entry.file_name());
            if entry.file_type().map_err(io(&dir))?.is_dir() {
                stack.push(path.clone());
            }
            entries.push(path);
            if entries.len() > max {
                return Err(TreeError::TooMany {
                    path: root.to_path_buf(),
                    max,
                });
            }
        }
    }
    entries.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    Ok(entries)
}

/// What kind of special file `meta` is, if it is one.
pub fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_socket() {
        Some("socket")
    } else if t.is_fifo() {
        Some("FIFO")
    } else if t.is_block_device() || t.is_char_device() {
        Some("device")
    } else {
        None
    }
}

/// The tree hash of `root` (a directory), or the content hash of `root` (a file); see the module's doc.
pub fn tree_sha256(root: &Path) -> Result<String, TreeError> {
    let meta = std::fs::symlink_metadata(root).map_err(io(root))?;
    if meta.is_file() {
        return file_sha256(root);
    }
    let mut listing = Sha256::new();
    for rel in walk(root, usize::MAX)? {
        let bytes = rel.as_os_str().as_bytes();
        let full = root.join(&rel);
        let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
        if meta.is_dir() {
            listing.update(b"D ");
            listing.update(bytes);
            listing.update(b"\n");
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).map_err(io(&full))?;
            listing.update(b"L ");
            listing.update(bytes);
            listing.update(b"\0");
            listing.update(target.as_os_str().as_bytes());
            listing.update(b"\n");
        } else if meta.is_file() {
            listing.update(b"F ");
            listing.update(bytes);
            listing.update(b"\0");
            listing.update(file_sha256(&full)?.as_bytes());
            listing.update(b"\n");
        } else {
            return Err(TreeError::Special {
                path: full,
                kind: special_kind(&meta).unwrap_or("special file"),
            });
        }
    }
    Ok(hex::encode(listing.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_hash_follows_the_documented_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("b")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("b/c"), b"").unwrap();
        std::os::unix::fs::symlink("../a.txt", root.join("b/l")).unwrap();
        let hello = hex::encode(Sha256::digest(b"hello"));
        let empty = hex::encode(Sha256::digest(b""));
        let listing = format!("F a.txt\0{hello}\nD b\nF b/c\0{empty}\nL b/l\0../a.txt\n");
        assert_eq!(
            tree_sha256(root).unwrap(),
            hex::encode(Sha256::digest(listing.as_bytes()))
        );
        assert_eq!(tree_sha256(&root.join("a.txt")).unwrap(), hello);
    }

    #[test]
    fn a_changed_byte_or_name_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("x"), b"1").unwrap();
        let first = tree_sha256(root).unwrap();
        std::fs::write(root.join("x"), b"2").unwrap();
        let second = tree_sha256(root).unwrap();
        std::fs::rename(root.join("x"), root.join("y")).unwrap();
        let third = tree_sha256(root).unwrap();
        assert_ne!(first, second);
        assert_ne!(second, third);
    }

    #[test]
    fn a_fifo_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = tree_sha256(dir.path()).unwrap_err();
        assert!(err.to_string().contains("pipe is a FIFO"), "{err}");
    }
}
