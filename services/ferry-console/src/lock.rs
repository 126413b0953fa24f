//! One console per side: `console.lock` in the side's directory, locked (an advisory `flock`) for as long as the
//! console runs and holding its process id. The operating system drops the lock when the process ends, however
//! it ends, so a crashed console never leaves a side locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use crate::ConsoleError;

/// The lock file's name in the side's directory.
pub const LOCK_FILE: &str = "console.lock";

/// The side's console lock, held until dropped.
#[derive(Debug)]
pub struct SideLock {
    _file: File,
    path: PathBuf,
}

impl SideLock {
    /// Takes the lock of the side in `dir`, or says which process holds it.
    pub fn take(dir: &Path) -> Result<SideLock, ConsoleError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| ConsoleError::Io {
            context: "opening the console lock",
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(ConsoleError::Locked {
                    path,
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(SideLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_console_on_one_side_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = SideLock::take(dir.path()).unwrap();
        let err = SideLock::take(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another `ferry console`"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("console.lock"), "{err}");
        drop(first);
        SideLock::take(dir.path()).expect("the lock is free again once the first console ends");
    }
}
