//! `ferry export`, `ferry import`, `ferry bundle inspect|verify`, `ferry keys rotate`, `ferry media write|read`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferry_review::escape;
use ferry_transfer::import::{ImportOptions, ImportOutcome};
use ferry_transfer::{export, import, media, rotation, SideDir};
use serde::Serialize;

use crate::progress::{human, temporary_bytes, Activity, Bar};

/// A path as a message shows it: escaped in line mode (a file name on a medium is anyone's).
fn shown(p: &Path) -> String {
    escape::line(&p.display().to_string()).into_owned()
}

/// `ferry export --config CFG [--resend SEQ] [--max-part-size SIZE]`.
pub fn export_cmd(
    config: &Path,
    resend: Option<u64>,
    max_part_size: Option<u64>,
    metrics_file: Option<&Path>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut side = SideDir::open(config)?;
    let outbox = side.layout.outbox();
    let packing = Activity::start(
        format!(
            "packing a bundle for the {} side",
            side.config.side.peer().as_str()
        ),
        move || temporary_bytes(&outbox),
    );
    let written = match resend {
        Some(seq) => Some(export::resend(&mut side, seq)?),
        None => export::export(&mut side)?,
    };
    drop(packing);
    match written {
        Some(exported) => {
            let took = started.elapsed();
            print_exported(&side, &exported, max_part_size)?;
            if let Some(file) = metrics_file {
                let bytes = std::fs::metadata(&exported.path)
                    .map(|m| m.len())
                    .with_context(|| format!("reading {}", shown(&exported.path)))?;
                let text = ferry_serve::metrics::export_textfile(
                    side.config.side.as_str(),
                    bytes,
                    took,
                    ferry_core::now(),
                );
                // Whole or not at all: its temporary name starts with `.` and does not end in `.prom`, so
                // node_exporter skips it while it is written.
                ferry_transfer::fs::write_atomically(file, text.as_bytes()).with_context(|| {
                    format!(
                        "the bundle is written, but its metrics could not be: writing {}",
                        shown(file)
                    )
                })?;
            }
        }
        None => println!(
            "nothing pending for the {} side: no bundle written",
            side.config.side.peer().as_str()
        ),
    }
    Ok(())
}

fn print_exported(
    side: &SideDir,
    exported: &export::Exported,
    max_part_size: Option<u64>,
) -> Result<()> {
    let size = std::fs::metadata(&exported.path)
        .map(|m| m.len())
        .with_context(|| format!("reading {}", shown(&exported.path)))?;
    let files = match max_part_size {
        Some(part) => {
            let outbox = side.layout.outbox();
            let _splitting = Activity::start(
                format!(
                    "splitting the bundle ({}) into parts of at most {}: written",
                    human(size),
                    human(part)
                ),
                move || temporary_bytes(&outbox),
            );
            media::split_in_outbox(side, &exported.path, part)?
        }
        None => vec![exported.path.clone()],
    };
    for f in &files {
        println!("{}", shown(f));
    }
    // The paths alone on stdout, for scripts; what was packed for people, on stderr.
    eprintln!(
        "ferry: bundle {} for the {} side: {}; {}{}",
        exported.seq,
        side.config.side.peer().as_str(),
        if exported.summary.is_empty() {
            "nothing but its header".to_string()
        } else {
            exported.summary.join(", ")
        },
        human(size),
        if files.len() > 1 {
            format!(" in {} parts", files.len())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `ferry keys rotate --config CFG`: makes new keys, and writes the bundle that announces them (with anything
/// else pending); prints the bundle's path.
pub fn rotate_cmd(config: &Path) -> Result<()> {
    let mut side = SideDir::open(config)?;
    let prepared = rotation::prepare(&side)?;
    let exported = export::export(&mut side)?.context("the rotation bundle was not written")?;
    println!("{}", shown(&exported.path));
    println!(
        "keys rotated: {} replaces {}; carry this bundle to the {} side, which will pin the new key",
        prepared.new.key_id(),
        prepared.old.key_id(),
        side.config.side.peer().as_str()
    );
    Ok(())
}

/// `ferry import --config CFG [--accept-gap] [FILE...]`: exit code 0 only when every bundle was accepted.
pub fn import_cmd(config: &Path, files: &[PathBuf], accept_gap: bool) -> Result<i32> {
    if accept_gap && files.is_empty() {
        bail!("--accept-gap needs the bundle files named: accept a sequence jump one reviewed bundle at a time");
    }
    let mut side = SideDir::open(config)?;
    let files = if files.is_empty() {
        import::inbox_files(&side, false)?
    } else {
        files.to_vec()
    };
    if files.is_empty() {
        println!("no bundles in {}", side.layout.inbox().display());
        return Ok(0);
    }
    // One file at a time, so that each shows its own progress.
    let mut results = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let work = side.layout.work_dir();
        let importing = Activity::start(
            format!(
                "importing {} ({}): unpacked",
                shown(file.file_name().map(Path::new).unwrap_or(file)),
                human(size)
            ),
            move || staged_bytes(&work),
        );
        let outcome = import::import_files(
            &mut side,
            std::slice::from_ref(file),
            ImportOptions { accept_gap },
        );
        drop(importing);
        results.extend(outcome?);
    }
    let mut refused = 0;
    for (file, outcome) in results {
        match outcome {
            ImportOutcome::Accepted(summary) => {
                println!("imported {}: {}", shown(&file), escape::line(&summary))
            }
            ImportOutcome::Refused {
                refusal,
                quarantined,
            } => {
                refused += 1;
                eprintln!(
                    "refused {} ({}): {}; moved to {}",
                    shown(&file),
                    refusal.kind(),
                    escape::line(&refusal.to_string()),
                    shown(&quarantined)
                );
            }
            ImportOutcome::AlreadyImported(summary) => println!(
                "{}: {}; archived, nothing applied",
                shown(&file),
                escape::line(&summary)
            ),
        }
    }
    Ok(if refused == 0 { 0 } else { 1 })
}

/// The bytes an import has staged so far: the files under `work/.import-*`.
fn staged_bytes(work: &Path) -> Option<u64> {
    fn tree(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => tree(&e.path()),
                        Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                        _ => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let entries = std::fs::read_dir(work).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".import-"))
            .map(|e| tree(&e.path()))
            .sum(),
    )
}

/// The header of a bundle as `ferry bundle inspect --json` prints it.
#[derive(Serialize)]
struct InspectedHeader {
    format_version: u16,
    bundle_id: String,
    channel: &'static str,
    sequence: u64,
    previous_bundle_hash: String,
    created_at: String,
    expires_at: String,
    signer: String,
    payload_len: u64,
    segment_table_sha256: String,
    verified: bool,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| format!("unix time {t}"))
}

/// `ferry bundle inspect FILE [--json]`.
pub fn inspect_cmd(file: &Path, json: bool) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let h = ferry_bundle::inspect(f)
        .with_context(|| format!("reading the header of {}", file.display()))?;
    let v = InspectedHeader {
        format_version: h.version,
        bundle_id: hex::encode(h.bundle_id),
        channel: h.channel.as_str(),
        sequence: h.seq,
        previous_bundle_hash: hex::encode(h.prev_hash),
        created_at: rfc3339(h.created_at),
        expires_at: rfc3339(h.expires_at),
        signer: hex::encode(h.signer),
        payload_len: h.payload_len,
        segment_table_sha256: hex::encode(h.table_sha256),
        verified: false,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("(header as written; NOT verified: use `ferry bundle verify` for that)");
    let value = serde_json::to_value(&v)?;
    for (k, val) in value.as_object().expect("a struct serializes to an object") {
        println!(
            "{k:<22} {}",
            escape::line(
                &val.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| val.to_string())
            )
        );
    }
    Ok(())
}

/// `ferry bundle verify --config CFG FILE`.
pub fn verify_cmd(config: &Path, file: &Path) -> Result<()> {
    let side = SideDir::open(config)?;
    let peer = side.peer()?;
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let (h, hash) = ferry_bundle::verify_bundle(f, &peer.signing)
        .with_context(|| format!("verifying {}", file.display()))?;
    if h.channel != side.incoming() {
        bail!(
            "{} is signed correctly but travels on {}, not on {} which this side receives",
            file.display(),
            h.channel.as_str(),
            side.incoming().as_str()
        );
    }
    let imported = side.store.imported(&hex::encode(h.bundle_id))?;
    println!(
        "{}: signature by {} and payload hash OK; channel {}, sequence {}, bundle hash {}{}",
        shown(file),
        peer.key_id(),
        h.channel.as_str(),
        h.seq,
        hex::encode(hash),
        if imported.is_some() {
            " (already imported)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `ferry media write --config CFG DIR`.
pub fn media_write_cmd(config: &Path, medium: &Path) -> Result<()> {
    let side = SideDir::open(config)?;
    let written = media::write_medium(&side, medium, &mut Bar::new())?;
    if written.is_empty() {
        println!("nothing in {} to write", side.layout.outbox().display());
        return Ok(());
    }
    for dest in &written {
        println!("{}", shown(dest));
    }
    println!(
        "{} file(s) written to {} and verified",
        written.len(),
        shown(medium)
    );
    Ok(())
}

/// `ferry media read --config CFG DIR`: exit code 1 when a part set is incomplete or a part is foreign.
pub fn media_read_cmd(config: &Path, medium: &Path) -> Result<i32> {
    let side = SideDir::open(config)?;
    let read = media::read_medium(&side, medium, &mut Bar::new())?;
    if read.copied.is_empty() && read.joined.is_empty() && read.problems.is_empty() {
        println!("no bundles or parts on {}", shown(medium));
        return Ok(0);
    }
    for dest in &read.copied {
        println!("{}", shown(dest));
    }
    for (dest, count) in &read.joined {
        println!("{} (joined from {count} parts)", shown(dest));
    }
    for problem in &read.problems {
        eprintln!("error: {}", escape::line(&problem.to_string()));
    }
    Ok(if read.problems.is_empty() { 0 } else { 1 })
}
