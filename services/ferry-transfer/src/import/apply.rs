//! Applying a decrypted bundle: every record checked against the entries it names and the side it arrives on,
//! then applied in one transaction with the ledger entry. Records apply monotonically (a status never moves a
//! job backwards, an older catalog never replaces a newer one), so a lost bundle may arrive late.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_bundle::Header;
use ferry_core::records::{self, Batch, Record};
use ferry_core::store::{AssetRow, LedgerEntry, OutputFile};
use ferry_core::{names, now, JobState, Seq, Side};

use super::staging::StagedEntry;
use crate::refusal::Refusal;
use crate::side_dir::SideDir;

/// The largest single output file a low side accepts into its state store.
pub const MAX_OUTPUT_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The longest comment a side accepts.
pub const MAX_COMMENT_BYTES: usize = 64 * 1024;

/// A verified, decrypted bundle with its entries staged on disk.
pub(crate) struct Decrypted<'a> {
    /// Its verified header.
    pub header: &'a Header,
    /// SHA-256 of the whole file.
    pub bundle_hash: [u8; 32],
    /// Its entries by path.
    pub entries: BTreeMap<String, StagedEntry>,
    /// The bundle's file, for the ledger.
    pub path: &'a Path,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Refusal + '_ {
    move |e| Refusal::Io(format!("reading {}: {e}", path.display()))
}

/// Applies the bundle's records in one transaction; returns a one-line summary.
pub(crate) fn apply(
    side: &mut SideDir,
    peer_signing: &[u8; 32],
    mut bundle: Decrypted<'_>,
) -> Result<String, Refusal> {
    let records_entry = bundle
        .entries
        .remove(records::RECORDS_ENTRY)
        .ok_or_else(|| Refusal::BadRecords("the bundle has no records entry".into()))?;
    if records_entry.len > records::MAX_RECORDS_BYTES {
        return Err(Refusal::BadRecords("the records entry is too large".into()));
    }
    let records_bytes = std::fs::read(&records_entry.file).map_err(io(&records_entry.file))?;
    let batch = Batch::decode(&records_bytes).map_err(|e| Refusal::BadRecords(e.to_string()))?;
    let this_content = crate::export::content_hash(bundle.header.seq, &records_bytes);
    let SideDir {
        config,
        store,
        layout,
    } = side;
    let tx = store.begin(config.side)?;
    let mut summary = Vec::new();
    let mut rotation = None;
    let mut mock_moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let bad = Refusal::BadRecords;
    let entries = &mut bundle.entries;
    // A record names each file by entry, size and SHA-256; the staging sink hashed the entry's bytes (which the
    // bundle reader authenticated), so the two must agree.
    let mut take = |file: &records::FileRef| -> Result<StagedEntry, Refusal> {
        let staged = entries.remove(&file.entry).ok_or_else(|| {
            bad(format!(
                "entry {} is named by a record but missing",
                file.entry
            ))
        })?;
        if staged.len != file.size || staged.sha256 != file.sha256 {
            return Err(bad(format!(
                "entry {} does not match its record's size and hash",
                file.entry
            )));
        }
        Ok(staged)
    };
    for record in &batch.records {
        match (config.side, record) {
            (Side::High, Record::Job(job)) => {
                names::researcher(&job.researcher).map_err(|e| bad(e.to_string()))?;
                for a in &job.assets {
                    names::asset(a).map_err(|e| bad(e.to_string()))?;
                }
                uuid::Uuid::parse_str(&job.job_id)
                    .map_err(|e| bad(format!("job id {:?}: {e}", job.job_id)))?;
                if tx.import_job(job)? {
                    summary.push(format!("job {}", job.job_id));
                    for d in &job.approvals {
                        tx.add_decision(d)?;
                    }
                    if let Some(previous) = &job.revises {
                        tx.set_revises(&job.job_id, previous)?;
                    }
                    if let Some(resources) = &job.resources {
                        tx.set_resources(&job.job_id, resources)?;
                    }
                    // The job runs only when its approvals verify and count under this side's policy.
                    if let Err(why) = crate::review::verify_approvals(
                        job,
                        &tx.peer_reviewers()?,
                        config.review.approvals_required,
                    ) {
                        tx.transition(
                            &job.job_id,
                            &[JobState::Exported],
                            JobState::Failed,
                            "import",
                            Some(&format!("not run: {why}")),
                        )?;
                        summary.push(format!("job {} refused by policy", job.job_id));
                    }
                }
            }
            (Side::High, Record::Cancel { job_id, .. }) => {
                if let Some(job) = tx.job(job_id)? {
                    match job.state {
                        JobState::Exported => {
                            tx.transition(
                                job_id,
                                &[JobState::Exported],
                                JobState::Cancelled,
                                &job.researcher,
                                Some("cancelled by the researcher before it ran"),
                            )?;
                        }
                        JobState::Running => tx.request_cancel(job_id)?,
                        _ => {}
                    }
                    summary.push(format!("cancellation of {job_id}"));
                }
            }
            (Side::Low, Record::Status(status)) => {
                let mut outputs: Vec<OutputFile> = Vec::new();
                if let Some(result) = &status.result {
                    for file in &result.outputs {
                        names::output_path(&file.name).map_err(|e| bad(e.to_string()))?;
                        let staged = take(file)?;
                        if staged.len > MAX_OUTPUT_FILE_BYTES {
                            return Err(bad(format!(
                                "output {} is {} bytes, over the {MAX_OUTPUT_FILE_BYTES} bytes kept per file",
                                file.name, staged.len
                            )));
                        }
                        // Stored from the staged file in pieces: a result's size is never this process's memory.
                        outputs.push(OutputFile {
                            name: file.name.clone(),
                            path: staged.file.clone(),
                            len: staged.len,
                            sha256: staged.sha256.clone(),
                        });
                    }
                }
                let mut status = status.clone();
                if let Some(job) = tx.job(&status.job_id)? {
                    // A retried job starts again from `exported`, whatever its first run ended as.
                    if status.attempt > tx.attempt(&job.job_id)? && job.state == JobState::Failed {
                        tx.reopen(
                            &job.job_id,
                            status.attempt,
                            "import",
                            &format!(
                                "run again on the high side (attempt {})",
                                status.attempt + 1
                            ),
                        )?;
                    }
                }
                for d in &status.decisions {
                    tx.add_decision(d)?;
                }
                if let Some(result) = &status.result {
                    // Delivered only when its releases verify and count under this side's policy.
                    if let Err(why) = crate::review::verify_releases(
                        &status.job_id,
                        result,
                        &status.decisions,
                        &tx.peer_reviewers()?,
                        config.review.releases_required,
                        tx.job(&status.job_id)?.map(|j| j.researcher).as_deref(),
                    ) {
                        status.state = JobState::Withheld.as_str().to_string();
                        status.reason = Some(format!("withheld by policy: {why}"));
                        status.result = None;
                        outputs.clear();
                    }
                }
                if tx.apply_status(&status, &outputs)? {
                    summary.push(format!("job {} {}", status.job_id, status.state));
                }
            }
            (Side::Low, Record::Catalog { version, assets }) => {
                let mut rows = Vec::new();
                for a in assets {
                    names::asset(&a.name).map_err(|e| bad(e.to_string()))?;
                    let mock_path = layout.mock_file(&a.mock.sha256);
                    let len = if a.mock.entry.is_empty() {
                        // Not carried: a bundle this side acknowledged did, and mocks are kept by content hash.
                        if !ferry_core::names::is_hex_sha256(&a.mock.sha256) {
                            return Err(bad(format!(
                                "the mock of {} has no entry and no valid SHA-256",
                                a.name
                            )));
                        }
                        match std::fs::metadata(&mock_path) {
                            Ok(m) if m.len() == a.mock.size => m.len(),
                            _ => {
                                return Err(bad(format!(
                                    "the mock of {} (sha256 {}) is not in the bundle and not kept here: the high \
                                     side believes an earlier bundle delivered it",
                                    a.name, a.mock.sha256
                                )))
                            }
                        }
                    } else {
                        let staged = take(&a.mock)?;
                        // Moved into place (same file system, no copy) only once the import has committed.
                        mock_moves.push((staged.file.clone(), mock_path.clone()));
                        staged.len
                    };
                    rows.push(AssetRow {
                        name: a.name.clone(),
                        description: a.description.clone(),
                        private_path: None,
                        mock_path: mock_path.display().to_string(),
                        mock_size: len,
                        mock_sha256: a.mock.sha256.clone(),
                        updated_at: a.updated_at,
                        mock_tree: a.mock_tree,
                    });
                }
                if tx.apply_catalog(*version, &rows)? {
                    summary.push(format!("catalog of {} asset(s)", rows.len()));
                } else {
                    mock_moves.clear();
                    summary.push(format!("an older catalog (version {version}), ignored"));
                }
            }
            (_, Record::Rotate { statement }) => {
                let parsed = ferry_bundle::RotationStatement::from_bytes(statement)?;
                parsed.verify(peer_signing)?;
                if crate::rotation::retired_peer_keys(layout).contains(&parsed.new.signing) {
                    return Err(bad(format!(
                        "the rotation names {} as the new key, but that key was retired before: a retired key never comes back",
                        parsed.new.key_id()
                    )));
                }
                if parsed.side != config.side.peer().as_str() {
                    return Err(bad(format!(
                        "a rotation for the {} side arrived from the {} side",
                        parsed.side,
                        config.side.peer().as_str()
                    )));
                }
                summary.push(format!("key rotation to {}", parsed.new.key_id()));
                tx.audit_append(
                    "import",
                    "peer-key-rotation",
                    None,
                    &format!("the other side's key is now {}", parsed.new.key_id()),
                )?;
                rotation = Some(parsed);
            }
            (_, Record::Reviewers { version, reviewers }) => {
                for r in reviewers {
                    names::reviewer(&r.name).map_err(|e| bad(e.to_string()))?;
                }
                if tx.apply_peer_reviewers(*version, reviewers)? {
                    summary.push(format!("{} reviewer(s)", reviewers.len()));
                }
            }
            (Side::Low, Record::Runtimes { version, runtimes }) => {
                if runtimes.len() > records::MAX_RUNTIMES {
                    return Err(bad(format!(
                        "{} runtimes listed, over the limit of {}",
                        runtimes.len(),
                        records::MAX_RUNTIMES
                    )));
                }
                for r in runtimes {
                    names::runtime(&r.name).map_err(|e| bad(e.to_string()))?;
                }
                if tx.apply_peer_runtimes(*version, runtimes)? {
                    summary.push(format!("{} runtime(s)", runtimes.len()));
                }
            }
            (Side::Low, Record::Receipt { job_id, receipt }) => {
                // Signed by the key this bundle verified under; a receipt that does not verify is a forgery in
                // a signed bundle, which refuses the whole bundle.
                receipt
                    .verify_for(job_id, Some(peer_signing))
                    .map_err(|e| bad(format!("the receipt of job {job_id}: {e}")))?;
                if tx.job(job_id)?.is_none() {
                    return Err(bad(format!(
                        "a receipt for job {job_id}, which is not known here"
                    )));
                }
                tx.put_receipt(job_id, receipt)?;
            }
            (_, Record::AuditHead { seq, hash }) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("the audit head's hash is not 64 hex digits".into()));
                }
                tx.record_peer_head(*seq, hash)?;
            }
            (Side::Low, Record::Comment { job_id, comment }) => {
                if comment.text.len() > MAX_COMMENT_BYTES {
                    return Err(bad(format!(
                        "a comment on job {job_id} is over {MAX_COMMENT_BYTES} bytes"
                    )));
                }
                if tx.comment_received(job_id, comment)? {
                    summary.push(format!("comment on {job_id}"));
                }
            }
            (_, Record::Ack { received, missing }) => {
                // Every range is checked before anything is summed, so no arithmetic can wrap (R7).
                let count = received.iter().try_fold(0u64, |total, &(a, b)| {
                    (a <= b && b - a < records::MAX_ACKED)
                        .then(|| total + (b - a + 1))
                        .filter(|t| *t <= records::MAX_ACKED)
                });
                let Some(count) = count else {
                    return Err(bad(
                        "acknowledgement ranges are malformed or too large".into()
                    ));
                };
                if missing.len() as u64 > records::MAX_ACKED {
                    return Err(bad("too many missing sequence numbers".into()));
                }
                let received: Vec<(Seq, Seq)> =
                    received.iter().map(|&(a, b)| (Seq(a), Seq(b))).collect();
                let missing: Vec<Seq> = missing.iter().copied().map(Seq).collect();
                tx.apply_ack(config.side.outgoing(), &received, &missing)?;
                summary.push(format!("acknowledgement of {count} bundle(s)"));
            }
            (side, record) => {
                return Err(Refusal::WrongScope {
                    record: record.kind(),
                    side: side.as_str(),
                })
            }
        }
    }
    if let Some(extra) = entries.keys().next() {
        return Err(Refusal::UnlistedEntry(extra.clone()));
    }
    let header = bundle.header;
    if batch
        .records
        .iter()
        .any(|r| !matches!(r, Record::Ack { .. } | Record::AuditHead { .. }))
    {
        tx.audit_append(
            "import",
            "import",
            None,
            &format!(
                "bundle {} of channel {}: {}",
                header.seq,
                config.side.incoming().as_str(),
                if summary.is_empty() {
                    "nothing new".to_string()
                } else {
                    summary.join(", ")
                }
            ),
        )?;
    }
    tx.record_import(
        config.side.incoming(),
        &LedgerEntry {
            bundle_id: hex::encode(header.bundle_id),
            seq: Seq(header.seq),
            bundle_hash: hex::encode(bundle.bundle_hash),
            content_hash: this_content,
            imported_at: now(),
        },
        &bundle
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        batch
            .records
            .iter()
            .any(|r| !matches!(r, Record::Ack { .. } | Record::AuditHead { .. })),
    )?;
    // The new key is pinned before the import commits: if pinning fails, the bundle is refused whole and can be
    // imported again; the other way round, a committed rotation with the old key still pinned would strand the
    // channel.
    let pinned_before = match &rotation {
        Some(statement) => Some(
            crate::rotation::accept(layout, statement)
                .map_err(|e| Refusal::Io(format!("pinning the rotated key: {e}")))?,
        ),
        None => None,
    };
    if let Err(e) = tx.commit() {
        if let Some(before) = &pinned_before {
            crate::rotation::undo_accept(layout, before);
        }
        return Err(e.into());
    }
    if !mock_moves.is_empty() {
        std::fs::create_dir_all(layout.mocks_dir()).map_err(io(&layout.mocks_dir()))?;
    }
    for (from, to) in mock_moves {
        std::fs::rename(&from, &to).map_err(io(&from))?;
    }
    if summary.is_empty() {
        summary.push("nothing new".into());
    }
    Ok(format!("sequence {}: {}", header.seq, summary.join(", ")))
}
