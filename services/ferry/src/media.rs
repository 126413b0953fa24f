//! Removable media: `ferry media write DIR` and `ferry media read DIR`, and splitting bundles into parts.
//!
//! Every copy goes through a temporary name, fsync and rename, and is read back and compared by SHA-256 before it
//! counts. Parts (see `schemas/bundle-format.md`, "Parts") each carry a signed header naming their bundle, index
//! and count, and the SHA-256 of the whole bundle; `media read` joins complete sets into `inbox/` and names what
//! is missing or foreign.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::Digest;

use crate::side::SideDir;

/// Files a side's outbox holds for the couriers: whole bundles and parts, complete ones only.
fn carried_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        if name.ends_with(".bundle") || name.contains(".part-") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A progress line on stderr: redrawn in place on a terminal, one line per file otherwise.
struct Progress {
    total: u64,
    done: u64,
    label: String,
    tty: bool,
    last_percent: u64,
}

impl Progress {
    fn new(label: String, total: u64) -> Progress {
        let tty = std::io::stderr().is_terminal();
        Progress {
            total: total.max(1),
            done: 0,
            label,
            tty,
            last_percent: u64::MAX,
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let percent = self.done * 100 / self.total;
        if self.tty && percent != self.last_percent {
            let filled = (percent / 5) as usize;
            eprint!(
                "\r{:<40} [{}{}] {:>3}% {}",
                self.label,
                "#".repeat(filled),
                " ".repeat(20 - filled),
                percent,
                human(self.done)
            );
            let _ = std::io::stderr().flush();
            self.last_percent = percent;
        }
    }

    fn finish(&self, note: &str) {
        if self.tty {
            eprintln!();
        }
        eprintln!("{}: {} {note}", self.label, human(self.done));
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn sha256_file(path: &Path, progress: Option<&mut Progress>) -> Result<[u8; 32]> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut progress = progress;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(p) = progress.as_deref_mut() {
            p.advance(n as u64);
        }
    }
    Ok(hasher.finalize().into())
}

/// Copies `src` to `dest_dir/<same name>` via a temporary name, fsync and rename, then reads the copy back and
/// compares SHA-256; returns the destination.
fn copy_verified(src: &Path, dest_dir: &Path) -> Result<PathBuf> {
    let name = src
        .file_name()
        .context("file without a name")?
        .to_string_lossy()
        .into_owned();
    let dest = dest_dir.join(&name);
    let tmp = dest_dir.join(format!(".{name}.tmp"));
    let len = std::fs::metadata(src)?.len();
    let mut progress = Progress::new(format!("copying {name}"), len * 2);
    let result = (|| -> Result<()> {
        let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut output =
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("reading {}", src.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            output
                .write_all(&buf[..n])
                .with_context(|| format!("writing {}", tmp.display()))?;
            progress.advance(n as u64);
        }
        output
            .sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        drop(output);
        let written: [u8; 32] = hasher.finalize().into();
        let read_back = sha256_file(&tmp, Some(&mut progress))?;
        if read_back != written {
            bail!(
                "read-back of {} does not match what was written: the medium is faulty",
                tmp.display()
            );
        }
        std::fs::rename(&tmp, &dest)
            .with_context(|| format!("renaming into {}", dest.display()))?;
        if let Ok(d) = File::open(dest_dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    progress.finish("copied and verified");
    Ok(dest)
}

/// `ferry media write DIR --config CFG`: copies everything in outbox/ onto the medium mounted at DIR, verifies it,
/// and moves the originals to outbox/sent/ (kept for the record; `export --resend` rebuilds from the database).
pub fn write_cmd(config: &Path, medium: &Path) -> Result<()> {
    let side = SideDir::open(config)?;
    if !medium.is_dir() {
        bail!(
            "{} is not a directory: mount the medium and name its directory",
            medium.display()
        );
    }
    let outbox = side.config.outbox();
    let files = carried_files(&outbox)?;
    if files.is_empty() {
        println!("nothing in {} to write", outbox.display());
        return Ok(());
    }
    let sent = outbox.join("sent");
    std::fs::create_dir_all(&sent).with_context(|| format!("creating {}", sent.display()))?;
    for file in &files {
        let dest = copy_verified(file, medium)?;
        let name = file.file_name().expect("named");
        std::fs::rename(file, sent.join(name))
            .with_context(|| format!("moving {} to sent/", file.display()))?;
        println!("{}", dest.display());
    }
    println!(
        "{} file(s) written to {} and verified",
        files.len(),
        medium.display()
    );
    Ok(())
}

/// `ferry media read DIR --config CFG`: copies every bundle on the medium into inbox/ (verified), and joins parts
/// whose sets are complete. Exit code 1 when a part set is incomplete or a part is foreign.
pub fn read_cmd(config: &Path, medium: &Path) -> Result<i32> {
    let side = SideDir::open(config)?;
    let peer = side.peer()?;
    let inbox = side.config.inbox();
    let files = carried_files(medium)?;
    if files.is_empty() {
        println!("no bundles or parts on {}", medium.display());
        return Ok(0);
    }
    let mut problems = 0;
    let mut sets: BTreeMap<[u8; 16], Vec<(PathBuf, ferry_bundle::PartInfo)>> = BTreeMap::new();
    for file in &files {
        if ferry_bundle::is_part_file(file) {
            match ferry_bundle::read_part_info(file, &peer.signing) {
                Ok(info) => sets
                    .entry(info.bundle_id)
                    .or_default()
                    .push((file.clone(), info)),
                Err(e) => {
                    problems += 1;
                    eprintln!("error: {}: {e}", file.display());
                }
            }
        } else {
            let dest = copy_verified(file, &inbox)?;
            println!("{}", dest.display());
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
        let tmp = inbox.join(format!(".{stem}.bundle.tmp"));
        let dest = inbox.join(format!("{stem}.bundle"));
        match ferry_bundle::join_parts(&paths, &peer.signing, &tmp) {
            Ok(_) => {
                std::fs::rename(&tmp, &dest)
                    .with_context(|| format!("renaming into {}", dest.display()))?;
                println!("{} (joined from {count} parts)", dest.display());
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                problems += 1;
                eprintln!("error: bundle {}: {e}", hex::encode(bundle_id));
            }
        }
    }
    Ok(if problems == 0 { 0 } else { 1 })
}

/// Splits a freshly written bundle into parts in the same directory and removes the whole file.
pub fn split_in_outbox(side: &SideDir, bundle: &Path, max_part_size: u64) -> Result<Vec<PathBuf>> {
    let keys = side.keys()?;
    let dir = bundle.parent().context("bundle without a directory")?;
    let size = std::fs::metadata(bundle)?.len();
    if size <= max_part_size {
        return Ok(vec![bundle.to_path_buf()]);
    }
    let parts = ferry_bundle::split_bundle(bundle, max_part_size, dir, &keys)
        .with_context(|| format!("splitting {}", bundle.display()))?;
    std::fs::remove_file(bundle).with_context(|| format!("removing {}", bundle.display()))?;
    Ok(parts)
}
