//! File-system steps that other processes (couriers, the other side, a restarted import) may observe: every file
//! that matters is written under a temporary name, fsynced, renamed, and its directory fsynced.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, TransferError};

/// The temporary name `write_atomically` and the bundle writers use beside `path`: `.<name>.tmp`. Files with a
/// leading dot are never carried, imported or listed.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `data` to `path` through a temporary file, fsync, rename and a directory fsync.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = File::create(&tmp).at("creating", &tmp)?;
        f.write_all(data).at("writing", &tmp)?;
        f.sync_all().at("syncing", &tmp)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).at("renaming into", path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a rename or creation in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("syncing directory", dir)
}

/// Moves `file` into `dir` under its own name, or under `<name>.<n>` when that is taken, so that nothing already
/// there is ever overwritten; copies across file systems. Returns the new path.
pub fn move_into(file: &Path, dir: &Path) -> Result<PathBuf> {
    let target = unique_name(dir, &file_name(file)?);
    if std::fs::rename(file, &target).is_err() {
        std::fs::copy(file, &target).at("copying into", &target)?;
        std::fs::remove_file(file).at("removing", file)?;
    }
    sync_dir(dir)?;
    Ok(target)
}

fn file_name(file: &Path) -> Result<String> {
    Ok(file
        .file_name()
        .ok_or_else(|| TransferError::Invalid(format!("{} has no file name", file.display())))?
        .to_string_lossy()
        .into_owned())
}

/// Copies `file` into `dir` like [`move_into`], leaving the original where it is.
pub fn copy_into(file: &Path, dir: &Path) -> Result<PathBuf> {
    let target = unique_name(dir, &file_name(file)?);
    let tmp = temp_path(&target);
    std::fs::copy(file, &tmp).at("copying into", &tmp)?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .at("syncing", &tmp)?;
    std::fs::rename(&tmp, &target).at("renaming into", &target)?;
    sync_dir(dir)?;
    Ok(target)
}

/// `dir/name`, or the first of `dir/stem.1.ext`, `dir/stem.2.ext`, ... that does not exist (the extension
/// kept, so that a `.bundle` stays a `.bundle`).
pub fn unique_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (1u64..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomically_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
    }

    #[test]
    fn move_into_never_overwrites() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        for content in [b"first", b"secnd"] {
            let f = src.path().join("x.bundle");
            std::fs::write(&f, content).unwrap();
            move_into(&f, dest.path()).unwrap();
        }
        assert_eq!(
            std::fs::read(dest.path().join("x.bundle")).unwrap(),
            b"first"
        );
        assert_eq!(
            std::fs::read(dest.path().join("x.1.bundle")).unwrap(),
            b"secnd"
        );
    }
}
