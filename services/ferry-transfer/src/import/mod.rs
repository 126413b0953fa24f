//! `ferry import`: bundles from `inbox/` (or named files) verified, checked and applied, each moved to
//! `archive/` or `quarantine/`.
//!
//! Order, for each file: the signature against the pinned key and the payload hash; then [`policy`] (channel,
//! replay, rollback, sequence gap, chain, expiry), all before anything is decrypted; then decryption, streaming
//! every entry to [`staging`] and checking it against the inner manifest; then [`apply`], one transaction.

mod apply;
pub mod policy;
mod staging;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::refusal::Refusal;
use crate::side_dir::SideDir;
use staging::{StagedEntry, StagingSink};

pub use apply::MAX_OUTPUT_FILE_BYTES;

/// How to import.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Accept a sequence jump past `bundle.max_seq_gap` (the owner reviewed these bundles).
    pub accept_gap: bool,
}

/// What happened to one file.
#[derive(Debug)]
pub enum ImportOutcome {
    /// Applied and moved to `archive/`; a one-line summary.
    Accepted(String),
    /// Moved to `quarantine/` (the path given) with this reason.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Where the file now is.
        quarantined: PathBuf,
    },
}

/// Bundles waiting in `inbox/`, in name order (which is sequence order per channel). With `settled`, only files
/// unchanged for a second, so that a copy in progress is left alone.
pub fn inbox_files(side: &SideDir, settled: bool) -> Result<Vec<PathBuf>> {
    let inbox = side.layout.inbox();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&inbox).at("reading", &inbox)? {
        let entry = entry.at("reading", &inbox)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".bundle") {
            continue;
        }
        let meta = entry.metadata().at("reading", &entry.path())?;
        if !meta.is_file() {
            continue;
        }
        if settled {
            let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
            if age.is_none_or(|a| a < std::time::Duration::from_secs(1)) {
                continue;
            }
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

/// Imports each file under the side's import lock; moves each to `archive/` or `quarantine/`.
pub fn import_files(
    side: &mut SideDir,
    files: &[PathBuf],
    options: ImportOptions,
) -> Result<Vec<(PathBuf, ImportOutcome)>> {
    let lock_path = side.layout.import_lock();
    let lock = File::create(&lock_path).at("creating", &lock_path)?;
    lock.lock().at("taking the import lock", &lock_path)?;
    let keys = side.keys()?;
    let mut results = Vec::new();
    for file in files {
        // Reloaded for every file: a bundle earlier in the batch may have rotated the other side's key.
        let peer = side.peer()?;
        if !file.exists() {
            // Another importer took it between listing and locking.
            continue;
        }
        let outcome = match import_one(side, &peer, &keys, file, options) {
            Ok(summary) => {
                crate::fs::move_into(file, &side.layout.archive())?;
                tracing::info!(file = %file.display(), "imported");
                ImportOutcome::Accepted(summary)
            }
            Err(refusal) => {
                let quarantined =
                    crate::quarantine::quarantine(file, &side.layout.quarantine(), &refusal)?;
                tracing::warn!(file = %file.display(), kind = refusal.kind(), reason = %refusal, "bundle refused");
                ImportOutcome::Refused {
                    refusal,
                    quarantined,
                }
            }
        };
        results.push((file.clone(), outcome));
    }
    drop(lock);
    Ok(results)
}

fn import_one(
    side: &mut SideDir,
    peer: &ferry_bundle::PublicIdentity,
    keys: &ferry_bundle::SideKeys,
    path: &Path,
    options: ImportOptions,
) -> std::result::Result<String, Refusal> {
    let io = |e: std::io::Error| Refusal::Io(format!("reading {}: {e}", path.display()));
    let max = side.config.bundle.max_bundle_mb.saturating_mul(1024 * 1024);
    let limits = ferry_bundle::Limits {
        max_total_len: max,
        ..ferry_bundle::Limits::default()
    };
    // Our current keys first; then keys we retired, for bundles made before the other side learned of it.
    let retired = crate::rotation::retired_own_keys(&side.layout);
    let mut candidates: Vec<&ferry_bundle::SideKeys> = vec![keys];
    candidates.extend(retired.iter());
    let policy = policy::Policy {
        store: &side.store,
        expected: side.incoming(),
        bundle: &side.config.bundle,
        accept_gap: options.accept_gap,
        now: ferry_core::now(),
    };
    let mut sink = StagingSink::new(side.layout.staging_dir(&uuid::Uuid::new_v4())).map_err(io)?;
    let result = ferry_bundle::open(
        File::open(path).map_err(io)?,
        ferry_bundle::OpenOptions::new(peer.signing, &candidates, &mut sink)
            .limits(limits)
            .header_check(|header, _hash| policy.check(header)),
    );
    let opened = match result {
        Ok(opened) => opened,
        Err(Refusal::Bundle(e @ ferry_bundle::BundleError::UntrustedSigner { .. })) => {
            return Err(untrusted(side, path, e))
        }
        Err(r) => return Err(r),
    };
    let entries: BTreeMap<String, StagedEntry> = opened
        .entries
        .iter()
        .zip(sink.take())
        .map(|(m, file)| {
            (
                m.path.clone(),
                StagedEntry {
                    file,
                    len: m.len,
                    sha256: hex::encode(m.sha256),
                },
            )
        })
        .collect();
    let decrypted = apply::Decrypted {
        header: &opened.header,
        bundle_hash: opened.bundle_hash,
        entries,
        path,
    };
    apply::apply(side, &peer.signing, decrypted)
}

/// A bundle signed by a key other than the pinned one: a retired key is named as such.
fn untrusted(side: &SideDir, path: &Path, error: ferry_bundle::BundleError) -> Refusal {
    let signer = File::open(path)
        .ok()
        .and_then(|f| ferry_bundle::inspect(f).ok())
        .map(|h| h.signer);
    match signer {
        Some(signer) if crate::rotation::retired_peer_keys(&side.layout).contains(&signer) => {
            Refusal::RetiredKey {
                key_id: ferry_bundle::key_id(&signer),
                peer: side.config.side.peer().as_str(),
            }
        }
        _ => Refusal::Bundle(error),
    }
}
