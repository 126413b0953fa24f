//! Quarantine: a refused bundle moves to `quarantine/` under a name that never overwrites another, with a
//! `<name>.reason` file beside it naming the refusal kind, the message and the time.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fs::{move_into, write_atomically};
use crate::refusal::Refusal;

/// The `.reason` file beside a quarantined bundle.
pub fn reason_file(quarantined: &Path) -> PathBuf {
    PathBuf::from(format!("{}.reason", quarantined.display()))
}

/// The text of a `.reason` file: `refused: KIND`, `reason: MESSAGE`, `at: RFC 3339 time`.
pub fn reason_text(refusal: &Refusal) -> String {
    format!(
        "refused: {}\nreason: {}\nat: {}\n",
        refusal.kind(),
        refusal,
        chrono::Utc::now().to_rfc3339()
    )
}

/// Moves `file` into `dir` and writes its reason beside it; returns where it went.
pub fn quarantine(file: &Path, dir: &Path, refusal: &Refusal) -> Result<PathBuf> {
    let moved = move_into(file, dir)?;
    write_reason(&moved, refusal)?;
    Ok(moved)
}

/// Writes the `.reason` file beside a file already placed in quarantine.
pub fn write_reason(quarantined: &Path, refusal: &Refusal) -> Result<()> {
    write_atomically(&reason_file(quarantined), reason_text(refusal).as_bytes())
}

/// Whether `dir` has room for `file` under `cap` bytes; `Err(held)` with what it holds when it has not.
pub fn room_for(dir: &Path, file: &Path, cap: u64) -> std::result::Result<(), u64> {
    let held: u64 = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if held.saturating_add(len) > cap {
        Err(held)
    } else {
        Ok(())
    }
}

/// Records the refusal of a file that quarantine has no room for: `quarantine/<name>.reason` (never overwriting)
/// names the refusal, the file's size and SHA-256, and that its bytes were not kept; returns that file.
pub fn record_unkept(
    dir: &Path,
    file: &Path,
    refusal: &Refusal,
    held: u64,
    cap: u64,
) -> Result<PathBuf> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut f =
        std::fs::File::open(file).map_err(|e| crate::TransferError::io("reading", file, e))?;
    let len = std::io::copy(&mut f, &mut hasher)
        .map_err(|e| crate::TransferError::io("reading", file, e))?;
    let name = file
        .file_name()
        .map(|n| format!("{}.reason", n.to_string_lossy()))
        .unwrap_or_else(|| "refused.reason".into());
    let path = crate::fs::unique_name(dir, &name);
    let text = format!(
        "{}kept: no: quarantine holds {held} bytes and its cap is {cap} bytes ([bundle] max_quarantine_mb); the \
         file was {len} bytes, sha256 {}\n",
        reason_text(refusal),
        hex::encode(hasher.finalize())
    );
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// The refusal kind recorded for a quarantined file, read back from its `.reason` file.
pub fn recorded_kind(quarantined: &Path) -> Option<String> {
    let text = std::fs::read_to_string(reason_file(quarantined)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("refused: "))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_refusals_of_one_name_keep_both_reasons() {
        let inbox = tempfile::tempdir().unwrap();
        let q = tempfile::tempdir().unwrap();
        let mut moved = Vec::new();
        for kind in [
            Refusal::ChainMismatch("one".into()),
            Refusal::BadRecords("two".into()),
        ] {
            let f = inbox.path().join("x.bundle");
            std::fs::write(&f, b"junk").unwrap();
            moved.push(quarantine(&f, q.path(), &kind).unwrap());
        }
        assert_ne!(moved[0], moved[1]);
        assert_eq!(recorded_kind(&moved[0]).as_deref(), Some("chain_mismatch"));
        assert_eq!(recorded_kind(&moved[1]).as_deref(), Some("bad_records"));
    }
}
