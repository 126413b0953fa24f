//! Staging: entries stream from the decryptor into files under `work/.import-<id>/`, so that importing a large
//! mock or result never holds it in memory. The directory is removed when the sink is dropped; entries that
//! should stay are moved out before.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_bundle::BundleError;
use sha2::{Digest, Sha256};

/// An entry staged on disk while a bundle is imported.
pub(crate) struct StagedEntry {
    /// The staged file.
    pub file: PathBuf,
    /// Its length, as the manifest gives it.
    pub len: u64,
    /// The SHA-256 (hex) of the staged bytes, computed while staging them: records name files by it.
    pub sha256: String,
}

/// An [`ferry_bundle::EntrySink`] writing each entry to a numbered file in a fresh staging directory, and
/// hashing it on the way (the bundle authenticates the bytes; the records name them by SHA-256, which the
/// bundle format no longer carries).
pub(crate) struct StagingSink {
    dir: PathBuf,
    /// Each staged file and its SHA-256 (hex).
    files: Vec<(PathBuf, String)>,
    /// Unbuffered: the reader hands over whole STREAM chunks (64 KiB), so a buffer would only copy them again.
    current: Option<(File, Sha256)>,
}

impl StagingSink {
    /// A sink staging into `dir`, which it creates.
    pub fn new(dir: PathBuf) -> std::io::Result<StagingSink> {
        std::fs::create_dir_all(&dir)?;
        Ok(StagingSink {
            dir,
            files: Vec::new(),
            current: None,
        })
    }

    /// The staged files and their SHA-256 (hex), in bundle order.
    pub fn take(&mut self) -> Vec<(PathBuf, String)> {
        std::mem::take(&mut self.files)
    }

    /// The staging directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn staging_error(context: String, source: std::io::Error) -> BundleError {
    BundleError::Io { context, source }
}

impl ferry_bundle::EntrySink for StagingSink {
    fn begin(&mut self, _path: &str, _len: u64) -> Result<(), BundleError> {
        let file = self.dir.join(format!("{:06}", self.files.len()));
        let f = File::create(&file)
            .map_err(|e| staging_error(format!("staging {}", file.display()), e))?;
        self.files.push((file, String::new()));
        self.current = Some((f, Sha256::new()));
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        let (w, hasher) = self.current.as_mut().expect("begin before write");
        hasher.update(chunk);
        w.write_all(chunk)
            .map_err(|e| staging_error("staging an entry".into(), e))
    }

    fn end(&mut self) -> Result<(), BundleError> {
        if let Some((mut w, hasher)) = self.current.take() {
            w.flush()
                .map_err(|e| staging_error("staging an entry".into(), e))?;
            if let Some((_, sha256)) = self.files.last_mut() {
                *sha256 = hex::encode(hasher.finalize());
            }
        }
        Ok(())
    }

    fn abort(&mut self) {
        self.current = None;
        self.files.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for StagingSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `path` is a staging directory name (`.import-*`), for cleaning up after a killed import.
pub(crate) fn is_staging_dir(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".import-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_bundle::EntrySink;

    #[test]
    fn staged_entries_are_removed_with_the_sink() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join(".import-test");
        let mut sink = StagingSink::new(dir.clone()).unwrap();
        sink.begin("a", 3).unwrap();
        sink.write(b"abc").unwrap();
        sink.end().unwrap();
        let files = sink.take();
        assert_eq!(std::fs::read(&files[0].0).unwrap(), b"abc");
        assert_eq!(files[0].1, ferry_core::sha256_hex(b"abc"));
        assert!(is_staging_dir(sink.dir()));
        drop(sink);
        assert!(!dir.exists());
    }
}
