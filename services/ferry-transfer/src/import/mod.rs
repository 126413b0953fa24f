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

pub use apply::{MAX_COMMENT_BYTES, MAX_OUTPUT_FILE_BYTES};

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
    /// The very file was imported before: archived, nothing applied; a one-line summary.
    AlreadyImported(String),
    /// Moved to `quarantine/` (the path given) with this reason.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Where the file now is.
        quarantined: PathBuf,
    },
}

/// How long a bundle shorter than its header declares may stay unchanged in `inbox/` before it is taken as
/// truncated rather than still being copied.
pub const STALLED_COPY: std::time::Duration = std::time::Duration::from_secs(600);

/// Bundles waiting in `inbox/`, in name order (which is sequence order per channel).
///
/// With `settled` (the inbox watcher), a file is taken only once it is complete: as long as its header's
/// declared length, and unchanged for a second. A file shorter than declared (or too short to hold a header) is
/// left to grow, and taken (to be refused as `truncated`) only once it has not changed for [`STALLED_COPY`].
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
        if settled && !is_settled(&entry.path(), &meta, STALLED_COPY) {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    Ok(files)
}

/// Whether a file in `inbox/` is complete (by its header's declared length) and has stopped changing, or has
/// stopped changing for `stalled` whatever its length.
pub fn is_settled(path: &Path, meta: &std::fs::Metadata, stalled: std::time::Duration) -> bool {
    let age = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .unwrap_or_default();
    if age >= stalled {
        return true;
    }
    if age < std::time::Duration::from_secs(1) {
        return false;
    }
    let declared = File::open(path)
        .ok()
        .and_then(|f| ferry_bundle::inspect(f).ok())
        .and_then(|h| h.bundle_len());
    // A file whose header cannot be read at all is junk or still arriving: only the stall timeout takes it.
    declared.is_some_and(|len| meta.len() >= len)
}

/// Imports each file under the side's import lock; moves each to `archive/` or `quarantine/` (a file named from
/// outside `inbox/` is copied there instead, and stays where it was).
///
/// A local fault (the disk is full, a file cannot be read or staged, the state store fails) is not the bundle's
/// fault: the file stays where it is and the error is returned, naming what failed, so that it can be imported
/// again once the fault is fixed.
pub fn import_files(
    side: &mut SideDir,
    files: &[PathBuf],
    options: ImportOptions,
) -> Result<Vec<(PathBuf, ImportOutcome)>> {
    let lock_path = side.layout.import_lock();
    let lock = File::create(&lock_path).at("creating", &lock_path)?;
    lock.lock().at("taking the import lock", &lock_path)?;
    let keys = side.keys()?;
    remove_stale_staging(&side.layout.work_dir());
    let inbox = side.layout.inbox();
    let mut results = Vec::new();
    for file in files {
        // Reloaded for every file: a bundle earlier in the batch may have rotated the other side's key.
        let peer = side.peer()?;
        if !file.exists() {
            // Another importer took it between listing and locking.
            continue;
        }
        // Only what was carried into inbox/ is moved; a file named from elsewhere is copied and left alone.
        let carried =
            file.parent().and_then(|p| p.canonicalize().ok()) == inbox.canonicalize().ok();
        let place = |dir: &Path| -> Result<PathBuf> {
            if carried {
                crate::fs::move_into(file, dir)
            } else {
                crate::fs::copy_into(file, dir)
            }
        };
        let outcome = match import_one(side, &peer, &keys, file, options) {
            Ok(summary) => {
                place(&side.layout.archive())?;
                tracing::info!(file = %file.display(), "imported");
                ImportOutcome::Accepted(summary)
            }
            Err(Failure::Local(e)) => return Err(e),
            Err(Failure::Refused(refusal @ Refusal::AlreadyImported { .. })) => {
                place(&side.layout.archive())?;
                tracing::info!(file = %file.display(), "already imported: archived");
                ImportOutcome::AlreadyImported(refusal.to_string())
            }
            Err(Failure::Refused(refusal)) => {
                let cap = side.config.bundle.max_quarantine_mb.saturating_mul(1 << 20);
                let quarantined =
                    match crate::quarantine::room_for(&side.layout.quarantine(), file, cap) {
                        Ok(()) => {
                            let quarantined = place(&side.layout.quarantine())?;
                            crate::quarantine::write_reason(&quarantined, &refusal)?;
                            quarantined
                        }
                        // Quarantine is full (a courier or a diode dropping junk must not fill the disk): the refusal
                        // is recorded with the file's size and SHA-256, and its bytes are not kept.
                        Err(held) => {
                            let reason = crate::quarantine::record_unkept(
                                &side.layout.quarantine(),
                                file,
                                &refusal,
                                held,
                                cap,
                            )?;
                            if carried {
                                std::fs::remove_file(file).at("removing", file)?;
                            }
                            reason
                        }
                    };
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

/// Why one file did not import.
enum Failure {
    /// The bundle's fault: it is quarantined (or archived, when it is a file imported before).
    Refused(Refusal),
    /// This side's fault: the file stays and the import fails.
    Local(crate::TransferError),
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        match r {
            // Reading the file or staging its entries failed here, on this side's disk.
            Refusal::Bundle(ferry_bundle::BundleError::Io { context, source }) => {
                Failure::Local(crate::TransferError::Local { context, source })
            }
            Refusal::Io(what) | Refusal::Store(what) => {
                Failure::Local(crate::TransferError::Invalid(what))
            }
            r => Failure::Refused(r),
        }
    }
}

/// Removes staging directories (`work/.import-*`) that an import killed mid-way left behind; called under the
/// import lock, so no import is using them.
fn remove_stale_staging(work: &Path) {
    let Ok(dir) = std::fs::read_dir(work) else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        if staging::is_staging_dir(&entry.path()) {
            tracing::warn!(dir = %entry.path().display(), "removing the staging directory of a stopped import");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn import_one(
    side: &mut SideDir,
    peer: &ferry_bundle::PublicIdentity,
    keys: &ferry_bundle::SideKeys,
    path: &Path,
    options: ImportOptions,
) -> std::result::Result<String, Failure> {
    let local = |context: &'static str| {
        move |e: std::io::Error| Failure::Local(crate::TransferError::io(context, path, e))
    };
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
    let staging = side.layout.staging_dir(&uuid::Uuid::new_v4());
    let mut sink = StagingSink::new(staging.clone())
        .map_err(|e| Failure::Local(crate::TransferError::io("creating", &staging, e)))?;
    // open_file: the bundle's segments are read, verified and decrypted on helper threads.
    let file = File::open(path).map_err(local("opening"))?;
    let result = ferry_bundle::open_file(
        &file,
        ferry_bundle::OpenOptions::new(peer.signing, &candidates, &mut sink)
            .limits(limits)
            .header_check(|header, hash| policy.check(header, hash)),
    );
    let opened = match result {
        Ok(opened) => opened,
        Err(Refusal::Bundle(e @ ferry_bundle::BundleError::UntrustedSigner { .. })) => {
            return Err(untrusted(side, path, e).into())
        }
        Err(r) => return Err(r.into()),
    };
    let entries: BTreeMap<String, StagedEntry> = opened
        .entries
        .iter()
        .zip(sink.take())
        .map(|(m, (file, sha256))| {
            (
                m.path.clone(),
                StagedEntry {
                    file,
                    len: m.len,
                    sha256,
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
    crate::failpoint::hit("import-after-stage");
    let applied = apply::apply(side, &peer.signing, decrypted).map_err(Failure::from);
    if applied.is_ok() {
        crate::failpoint::hit("import-after-commit");
    }
    applied
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
