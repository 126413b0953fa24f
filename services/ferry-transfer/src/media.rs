//! Removable media: copying `outbox/` onto a medium and a medium into `inbox/`, and splitting bundles into parts.
//!
//! Every copy goes through a temporary name, fsync and rename, and is read back and compared by SHA-256 before it
//! counts. Parts (see `schemas/bundle-format.md`, "Parts") each carry a signed header naming their bundle, index
//! and count, and the SHA-256 of the whole bundle; reading a medium joins complete sets into `inbox/` and names
//! what is missing or foreign.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::error::{IoContext, Result, TransferError};
use crate::fs::{sync_dir, temp_path};
use crate::side_dir::SideDir;

/// Told how a long copy advances; the binary draws it on a terminal.
pub trait Progress {
    /// A new task over `total` bytes begins.
    fn start(&mut self, label: &str, total: u64);
    /// The task begins another pass over its bytes (`verifying` after copying): counting starts again at 0.
    fn phase(&mut self, _what: &str) {}
    /// `n` more bytes are done.
    fn advance(&mut self, n: u64);
    /// The task is done.
    fn finish(&mut self, note: &str);
}

/// Progress that nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self, _: &str) {}
}

/// Files a directory holds for the couriers: whole bundles and parts, complete ones only.
fn carried_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).at("reading", dir)? {
        let entry = entry.at("reading", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type().at("reading", &entry.path())?.is_file() {
            continue;
        }
        if name.ends_with(".bundle") || name.contains(".part-") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path, progress: &mut dyn Progress) -> Result<[u8; 32]> {
    let mut f = File::open(path).at("opening", path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).at("reading", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    Ok(hasher.finalize().into())
}

/// Copies `src` to `dest_dir/<same name>` via a temporary name, fsync and rename, then reads the copy back and
/// compares SHA-256; returns the destination.
fn copy_verified(src: &Path, dest_dir: &Path, progress: &mut dyn Progress) -> Result<PathBuf> {
    let name = src
        .file_name()
        .ok_or_else(|| TransferError::Invalid(format!("{} has no file name", src.display())))?
        .to_string_lossy()
        .into_owned();
    // Never over a file already there (a bundle waiting in inbox/ with the same name, say).
    let dest = crate::fs::unique_name(dest_dir, &name);
    let tmp = temp_path(&dest);
    let len = std::fs::metadata(src).at("reading", src)?.len();
    progress.start(&name, len);
    let result = (|| -> Result<()> {
        let mut input = File::open(src).at("opening", src)?;
        let mut output = File::create(&tmp).at("creating", &tmp)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).at("reading", src)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            output.write_all(&buf[..n]).at("writing", &tmp)?;
            progress.advance(n as u64);
        }
        output.sync_all().at("syncing", &tmp)?;
        drop(output);
        let written: [u8; 32] = hasher.finalize().into();
        progress.phase("verifying");
        if sha256_file(&tmp, progress)? != written {
            return Err(TransferError::Invalid(format!(
                "read-back of {} does not match what was written: the medium is faulty",
                tmp.display()
            )));
        }
        std::fs::rename(&tmp, &dest).at("renaming into", &dest)?;
        sync_dir(dest_dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    progress.finish("copied and verified");
    Ok(dest)
}

/// Copies everything in `outbox/` onto the medium mounted at `medium`, verifies it, and moves the originals to
/// `outbox/sent/` (kept for the record; `export --resend` rebuilds from the database). Returns the copies.
pub fn write_medium(
    side: &SideDir,
    medium: &Path,
    progress: &mut dyn Progress,
) -> Result<Vec<PathBuf>> {
    if !medium.is_dir() {
        return Err(TransferError::Invalid(format!(
            "{} is not a directory: mount the medium and name its directory",
            medium.display()
        )));
    }
    let files = carried_files(&side.layout.outbox())?;
    let sent = side.layout.sent_dir();
    if !files.is_empty() {
        std::fs::create_dir_all(&sent).at("creating", &sent)?;
    }
    let mut written = Vec::new();
    for file in &files {
        written.push(copy_verified(file, medium, progress)?);
        let name = file.file_name().expect("carried files have names");
        std::fs::rename(file, sent.join(name)).at("moving into outbox/sent/", file)?;
    }
    Ok(written)
}

/// What reading a medium did.
#[derive(Debug, Default)]
pub struct MediumRead {
    /// Whole bundles copied into `inbox/`.
    pub copied: Vec<PathBuf>,
    /// Bundles joined from parts into `inbox/`, with their part count.
    pub joined: Vec<(PathBuf, u32)>,
    /// Bundles skipped because the very same file is already waiting in `inbox/` (the path there).
    pub already: Vec<PathBuf>,
    /// What could not be read or joined: a foreign or damaged part, an incomplete set, a file that is not a
    /// bundle or is larger than this side accepts.
    pub problems: Vec<String>,
}

/// Copies every bundle on the medium into `inbox/` (verified), and joins parts whose sets are complete.
pub fn read_medium(
    side: &SideDir,
    medium: &Path,
    progress: &mut dyn Progress,
) -> Result<MediumRead> {
    let peer = side.peer()?;
    let inbox = side.layout.inbox();
    let mut out = MediumRead::default();
    let mut sets: BTreeMap<[u8; 16], Vec<(PathBuf, ferry_bundle::PartInfo)>> = BTreeMap::new();
    for file in carried_files(medium)? {
        if ferry_bundle::is_part_file(&file) {
            match ferry_bundle::read_part_info(&file, &peer.signing) {
                Ok(info) => sets.entry(info.bundle_id).or_default().push((file, info)),
                Err(e) => out.problems.push(format!("{}: {e}", file.display())),
            }
        } else {
            match check_before_copy(side, &file, &inbox) {
                Ok(Check::Copy) => out.copied.push(copy_verified(&file, &inbox, progress)?),
                Ok(Check::AlreadyThere(at)) => out.already.push(at),
                Err(problem) => out.problems.push(problem),
            }
        }
    }
    for (bundle_id, parts) in sets {
        let count = parts[0].1.count;
        let paths: Vec<PathBuf> = parts.iter().map(|(p, _)| p.clone()).collect();
        let stem = parts[0]
            .0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .and_then(|n| n.split(".part-").next().map(str::to_string))
            .unwrap_or_else(|| hex::encode(bundle_id));
        let dest = inbox.join(format!("{stem}.bundle"));
        let tmp = temp_path(&dest);
        match ferry_bundle::join_parts(&paths, &peer.signing, &tmp) {
            Ok(_) => {
                std::fs::rename(&tmp, &dest).at("renaming into", &dest)?;
                out.joined.push((dest, count));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                out.problems
                    .push(format!("bundle {}: {e}", hex::encode(bundle_id)));
            }
        }
    }
    Ok(out)
}

/// What to do with a whole bundle found on a medium.
enum Check {
    Copy,
    AlreadyThere(PathBuf),
}

/// Reads a bundle's header on the medium before anything is copied: a file that is not a bundle, whose length is
/// not the one its header declares, or that is larger than `bundle.max_bundle_mb`, is named and not copied; one
/// identical to a file already in `inbox/` is skipped.
fn check_before_copy(side: &SideDir, file: &Path, inbox: &Path) -> Result<Check, String> {
    let shown = file.display();
    let header = File::open(file)
        .map_err(|e| format!("{shown}: {e}"))
        .and_then(|f| ferry_bundle::inspect(f).map_err(|e| format!("{shown}: not copied: {e}")))?;
    let len = std::fs::metadata(file)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    let declared = header
        .bundle_len()
        .ok_or_else(|| format!("{shown}: not copied: its header's layout is invalid"))?;
    if len != declared {
        return Err(format!(
            "{shown}: not copied: it is {len} bytes but its header declares {declared} (truncated or padded)"
        ));
    }
    let max = side.config.bundle.max_bundle_mb.saturating_mul(1024 * 1024);
    if len > max {
        return Err(format!(
            "{shown}: not copied: {len} bytes is over bundle.max_bundle_mb = {}",
            side.config.bundle.max_bundle_mb
        ));
    }
    // The same file copied before, under its own name or a numbered one beside a different file of that name.
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".bundle").unwrap_or(&name).to_string();
    let mut ours = None;
    for entry in std::fs::read_dir(inbox)
        .map_err(|e| format!("{}: {e}", inbox.display()))?
        .flatten()
    {
        let other = entry.file_name().to_string_lossy().into_owned();
        if !other.starts_with(&stem)
            || !entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() == len)
        {
            continue;
        }
        let mine = match ours {
            Some(h) => h,
            None => {
                let h = sha256_file(file, &mut NoProgress).map_err(|e| e.to_string())?;
                ours = Some(h);
                h
            }
        };
        if sha256_file(&entry.path(), &mut NoProgress).ok() == Some(mine) {
            return Ok(Check::AlreadyThere(entry.path()));
        }
    }
    Ok(Check::Copy)
}

/// Splits a freshly written bundle into parts of at most `max_part_size` bytes in the same directory and removes
/// the whole file; a bundle that fits stays whole.
pub fn split_in_outbox(side: &SideDir, bundle: &Path, max_part_size: u64) -> Result<Vec<PathBuf>> {
    let keys = side.keys()?;
    let dir = bundle
        .parent()
        .ok_or_else(|| TransferError::Invalid(format!("{} has no directory", bundle.display())))?;
    let size = std::fs::metadata(bundle).at("reading", bundle)?.len();
    if size <= max_part_size {
        return Ok(vec![bundle.to_path_buf()]);
    }
    let parts = ferry_bundle::split_bundle(bundle, max_part_size, dir, &keys)
        .map_err(|e| TransferError::bundle(format!("splitting {}", bundle.display()), e))?;
    std::fs::remove_file(bundle).at("removing", bundle)?;
    Ok(parts)
}
