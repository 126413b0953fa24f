//! `ferry export`: everything pending for the other side in one signed, encrypted bundle in `outbox/`, and
//! `--resend`, which signs a past bundle's content anew.
//!
//! The bundle is written under a temporary name, fsynced and renamed; the state moves (jobs become `exported`,
//! reports are marked sent) in the same SQLite transaction that records the bundle, committed only once the file
//! is in place. Bundles chain by content ([`content_hash`]), so a resent bundle keeps its place in the chain.

use std::fs::File;
use std::path::{Path, PathBuf};

use ferry_bundle::{Channel, Entry, EntrySource, HeaderParams, PublicIdentity};
use ferry_core::records::{self, Batch, Record, StatusTransfer};
use ferry_core::store::{ExportRecord, Tx};
use ferry_core::{now, ContentHash, JobState, Seq, Side};

use crate::error::{IoContext, Result, TransferError};
use crate::fs::{sync_dir, temp_path};
use crate::side_dir::{BundleName, SideDir};

/// A bundle written into `outbox/`.
#[derive(Debug)]
pub struct Exported {
    /// Its file.
    pub path: PathBuf,
    /// Its sequence number.
    pub seq: u64,
    /// How many records it carries.
    pub records: usize,
    /// What they are, for people ([`Batch::summary`]).
    pub summary: Vec<String>,
    /// The new identity, when this bundle announced a key rotation (now in force).
    pub rotated_to: Option<PublicIdentity>,
}

/// What `ferry export` would carry now, one phrase per kind.
pub fn pending_summary(side: &SideDir) -> Result<Vec<String>> {
    let mut out = Vec::new();
    match side.config.side {
        Side::Low => {
            let n = side.store.jobs(Some(JobState::Approved), None)?.len();
            if n > 0 {
                out.push(format!("{n} approved job(s)"));
            }
            let c = side.store.pending_cancels()?;
            if c > 0 {
                out.push(format!("{c} cancellation(s)"));
            }
        }
        Side::High => {
            let n = side.store.pending_reports()?;
            if n > 0 {
                out.push(format!("{n} job status report(s)"));
            }
            let (v, sent) = side.store.catalog_versions()?;
            if v != sent {
                out.push("the asset catalog and mocks".into());
            }
        }
    }
    if side.store.acks_pending()? {
        out.push("an acknowledgement of bundles received".into());
    }
    Ok(out)
}

/// Writes one bundle with everything pending; `None` when nothing is.
pub fn export(side: &mut SideDir) -> Result<Option<Exported>> {
    let keys = side.keys()?;
    let peer = side.peer()?;
    let channel = side.outgoing();
    let rotation = crate::rotation::pending_statement(&side.layout)?;
    let SideDir {
        config,
        store,
        layout,
    } = side;
    let tx = store.begin(config.side)?;
    let (last_seq, last_hash) = tx.channel_out(config.side.outgoing())?;
    let last_seq = last_seq.get();
    recover_outbox(&tx, &layout.outbox(), channel)?;
    remove_orphans(&layout.outbox(), channel, last_seq);
    let mut batch = Batch::default();
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut sources: Vec<EntrySourceRef> = Vec::new();
    match config.side {
        Side::Low => {
            for job in tx.jobs_in_state(JobState::Approved)? {
                let (approved_by, approved_at) = tx.approval(&job.job_id)?.ok_or_else(|| {
                    TransferError::Invalid(format!(
                        "job {} is approved but the audit trail records no approval for it",
                        job.job_id
                    ))
                })?;
                batch.records.push(Record::Job(records::JobTransfer {
                    job_id: job.job_id.clone(),
                    researcher: job.researcher.clone(),
                    title: job.title.clone(),
                    description: job.description.clone(),
                    runtime: job.runtime.clone(),
                    code: job.code.clone(),
                    assets: job.assets.clone(),
                    approved_by,
                    approved_at,
                }));
                tx.transition(
                    &job.job_id,
                    &[JobState::Approved],
                    JobState::Exported,
                    "export",
                    None,
                )?;
            }
            for job_id in tx.take_cancels()? {
                batch.records.push(Record::Cancel { job_id, at: now() });
            }
        }
        Side::High => {
            for job in tx.take_status_changes()? {
                let mut status = StatusTransfer {
                    job_id: job.job_id.clone(),
                    state: job.state.as_str().to_string(),
                    reason: job.reason.clone(),
                    at: job.updated_at,
                    result: None,
                };
                if job.state == JobState::Released {
                    let r = job.result.as_ref().ok_or_else(|| {
                        TransferError::Invalid(format!(
                            "released job {} has no stored result",
                            job.job_id
                        ))
                    })?;
                    let mut outputs = Vec::new();
                    for o in tx.outputs(&job.job_id)? {
                        let entry = records::output_entry(&job.job_id, &o.name);
                        outputs.push(records::FileRef {
                            name: o.name.clone(),
                            entry: entry.clone(),
                            size: o.data.len() as u64,
                            sha256: o.sha256.clone(),
                        });
                        sources.push(EntrySourceRef::Output {
                            entry: entry.clone(),
                            job_id: job.job_id.clone(),
                            name: o.name.clone(),
                        });
                        blobs.push((entry, o.data));
                    }
                    status.result = Some(records::ResultTransfer {
                        exit_code: r.exit_code,
                        summary: r.summary.clone(),
                        stdout: r.stdout.clone(),
                        stderr: r.stderr.clone(),
                        stdout_truncated: r.stdout_truncated,
                        stderr_truncated: r.stderr_truncated,
                        outputs,
                    });
                }
                batch.records.push(Record::Status(status));
            }
            if let Some(assets) = tx.take_catalog_change()? {
                let mut list = Vec::new();
                for a in assets {
                    let entry = records::mock_entry(&a.name);
                    sources.push(EntrySourceRef::File {
                        entry: entry.clone(),
                        path: a.mock_path.clone(),
                    });
                    files.push((entry.clone(), PathBuf::from(&a.mock_path)));
                    list.push(ferry_core::store::asset_transfer(&a, entry));
                }
                batch.records.push(Record::Catalog {
                    version: tx.catalog_version()?,
                    assets: list,
                });
            }
        }
    }
    // Acknowledge what arrived from the other side; a bundle of nothing but acknowledgements is still worth
    // carrying, since it tells the other side what to resend.
    if let Some((seen, missing)) = tx.take_ack(config.side.incoming())? {
        batch.records.push(Record::Ack {
            received: records::to_ranges(&seen),
            missing: missing.into_iter().map(Seq::get).collect(),
        });
    }
    let rotating = rotation.is_some();
    if let Some(statement) = rotation {
        batch.records.push(Record::Rotate { statement });
    }
    if batch.records.is_empty() {
        return Ok(None);
    }
    let records_bytes = batch.encode();
    let entries = bundle_entries(&records_bytes, &blobs, &files);
    let seq = last_seq + 1;
    let export = ExportRecord {
        seq: Seq(seq),
        content_hash: content_hash(seq, &records_bytes),
        prev_hash: last_hash,
        records: records_bytes.clone(),
        files: serde_json::to_string(&sources).expect("sources serialize"),
        path: String::new(),
    };
    let outbox = layout.outbox();
    let expiry = config.bundle.expiry_hours;
    let path = write_and_record(&outbox, expiry, tx, &keys, &peer, channel, export, &entries)?;
    tracing::info!(bundle = %path.display(), seq, records = batch.records.len(), "exported");
    let rotated_to = if rotating {
        let public = crate::rotation::complete(side)?;
        tracing::info!(key = %public.key_id(), "keys rotated: later bundles are signed with the new key");
        Some(public)
    } else {
        None
    };
    Ok(Some(Exported {
        path,
        seq,
        records: batch.records.len(),
        summary: batch.summary(),
        rotated_to,
    }))
}

/// Where a bundle entry other than the records can be read again, for `ferry export --resend`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
enum EntrySourceRef {
    /// A job's output file, kept in state.db.
    Output {
        /// Entry name.
        entry: String,
        /// The job.
        job_id: String,
        /// The file under outputs/.
        name: String,
    },
    /// A file on disk (mocks, stored by content hash so they never change).
    File {
        /// Entry name.
        entry: String,
        /// The file.
        path: String,
    },
}

/// The records entry first, then blobs from memory, then files streamed from disk.
fn bundle_entries<'a>(
    records_bytes: &'a [u8],
    blobs: &'a [(String, Vec<u8>)],
    files: &'a [(String, PathBuf)],
) -> Vec<Entry<'a>> {
    let mut entries = vec![Entry {
        path: records::RECORDS_ENTRY.to_string(),
        source: EntrySource::Bytes(records_bytes),
    }];
    entries.extend(blobs.iter().map(|(path, data)| Entry {
        path: path.clone(),
        source: EntrySource::Bytes(data),
    }));
    entries.extend(files.iter().map(|(path, file)| Entry {
        path: path.clone(),
        source: EntrySource::File(file),
    }));
    entries
}

/// The state store's name for a bundle channel.
pub(crate) fn channel_of(channel: Channel) -> ferry_core::Channel {
    match channel {
        Channel::LowToHigh => ferry_core::Channel::LowToHigh,
        Channel::HighToLow => ferry_core::Channel::HighToLow,
    }
}

/// Finishes or removes what a stopped export left in `outbox/`, under the export's write lock: a temporary file
/// whose export was recorded is renamed into place (the crash came between commit and rename); one whose export
/// was not is removed (the crash came before commit, and its sequence number will be used again).
fn recover_outbox(tx: &Tx<'_>, outbox: &Path, channel: Channel) -> Result<()> {
    let Ok(dir) = std::fs::read_dir(outbox) else {
        return Ok(());
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(parsed) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(BundleName::parse)
        else {
            continue;
        };
        if parsed.channel != channel {
            continue;
        }
        let final_path = outbox.join(parsed.to_string());
        let recorded = tx.export_path(channel_of(channel), Seq(parsed.seq))?;
        if recorded.as_deref() == Some(final_path.to_string_lossy().as_ref())
            && !final_path.exists()
        {
            std::fs::rename(entry.path(), &final_path).at("renaming into", &final_path)?;
            tracing::warn!(bundle = %final_path.display(), "finished an export that stopped after its commit");
        } else {
            std::fs::remove_file(entry.path()).at("removing", &entry.path())?;
            tracing::warn!(file = %name, "removed the temporary file of an export that never committed");
        }
    }
    sync_dir(outbox)
}

/// Bundles in `outbox` numbered past the channel's recorded last sequence: left by an export that stopped between
/// renaming its file and committing. Their numbers are about to be reused, so they must not travel.
fn remove_orphans(outbox: &Path, channel: Channel, last_seq: u64) {
    let Ok(dir) = std::fs::read_dir(outbox) else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(parsed) = BundleName::parse(&name) else {
            continue;
        };
        if parsed.channel == channel && parsed.seq > last_seq {
            tracing::warn!(file = %name, "removing a bundle whose export never committed");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What chains one bundle to the next: SHA-256 over the sequence number and the records entry (which names every
/// other entry by its SHA-256). Unlike the file's hash it survives a resend, which signs the same content anew.
pub fn content_hash(seq: u64, records: &[u8]) -> ContentHash {
    let mut data = b"ferry content v1\0".to_vec();
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(records);
    ContentHash::sha256(&data)
}

/// Writes the bundle into outbox/ (temporary name, fsync, rename) and commits `tx` with the export recorded; on
/// any failure nothing is left behind and the state does not move.
#[allow(clippy::too_many_arguments)]
fn write_and_record(
    outbox: &Path,
    expiry_hours: u64,
    tx: Tx<'_>,
    keys: &ferry_bundle::SideKeys,
    peer: &PublicIdentity,
    channel: Channel,
    mut export: ExportRecord,
    entries: &[Entry<'_>],
) -> Result<PathBuf> {
    let mut bundle_id = [0u8; 16];
    bundle_id.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let prev_hash = export.prev_hash.map_or([0u8; 32], <[u8; 32]>::from);
    let created_at = now();
    let params = HeaderParams {
        bundle_id,
        channel,
        seq: export.seq.get(),
        prev_hash,
        created_at,
        expires_at: created_at + (expiry_hours as i64) * 3600,
    };
    let final_path =
        outbox.join(BundleName::new(channel, export.seq.get(), &bundle_id).to_string());
    let tmp_path = temp_path(&final_path);
    let written = (|| -> Result<ferry_bundle::WrittenBundle> {
        let file = File::create(&tmp_path).at("creating", &tmp_path)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let written = ferry_bundle::write_bundle(&mut writer, keys, peer, &params, entries)
            .map_err(|e| TransferError::bundle("writing the bundle", e))?;
        let file = writer
            .into_inner()
            .map_err(|e| TransferError::io("writing", &tmp_path, e.into_error()))?;
        file.sync_all().at("syncing", &tmp_path)?;
        Ok(written)
    })();
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
    };
    // Recorded first, renamed after: a crash in between leaves a temporary file that the state store knows
    // (recover_outbox puts it in place), never a carried bundle that it does not.
    export.path = final_path.display().to_string();
    let recorded = tx
        .record_export(
            channel_of(channel),
            &export,
            &hex::encode(bundle_id),
            &hex::encode(written.bundle_hash),
        )
        .and_then(|()| tx.commit());
    if let Err(e) = recorded {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e.into());
    }
    std::fs::rename(&tmp_path, &final_path).at("renaming into", &final_path)?;
    sync_dir(outbox)?;
    Ok(final_path)
}

/// `ferry export --resend SEQ`: signs the content of bundle SEQ anew (fresh id and expiry, same sequence number
/// and chain), for a bundle the other side reports missing. Importing it where the original arrived changes
/// nothing.
pub fn resend(side: &mut SideDir, seq: u64) -> Result<Exported> {
    let keys = side.keys()?;
    let peer = side.peer()?;
    let channel = side.outgoing();
    let SideDir {
        config,
        store,
        layout,
    } = side;
    let export = store
        .export_record(config.side.outgoing(), Seq(seq))?
        .ok_or_else(|| {
            TransferError::Invalid(format!(
                "this side never exported sequence {seq} on {}",
                channel.as_str()
            ))
        })?;
    let sources: Vec<EntrySourceRef> = serde_json::from_str(&export.files).map_err(|_| {
        TransferError::Invalid("the stored export's file list is corrupt".to_string())
    })?;
    let mut blobs = Vec::new();
    let mut files = Vec::new();
    for source in sources {
        match source {
            EntrySourceRef::Output {
                entry,
                job_id,
                name,
            } => {
                let data = store
                    .outputs(&job_id)?
                    .into_iter()
                    .find(|o| o.name == name)
                    .map(|o| o.data)
                    .ok_or_else(|| {
                        TransferError::Invalid(format!(
                            "output {name} of job {job_id} is no longer stored"
                        ))
                    })?;
                blobs.push((entry, data));
            }
            EntrySourceRef::File { entry, path } => files.push((entry, PathBuf::from(path))),
        }
    }
    let records_bytes = export.records.clone();
    let records = Batch::decode(&records_bytes)
        .map(|b| b.records.len())
        .unwrap_or(0);
    let entries = bundle_entries(&records_bytes, &blobs, &files);
    let tx = store.begin(config.side)?;
    recover_outbox(&tx, &layout.outbox(), channel)?;
    let path = write_and_record(
        &layout.outbox(),
        config.bundle.expiry_hours,
        tx,
        &keys,
        &peer,
        channel,
        export,
        &entries,
    )?;
    tracing::info!(bundle = %path.display(), seq, "resent");
    Ok(Exported {
        path,
        seq,
        records,
        summary: Batch::decode(&records_bytes)
            .map(|b| b.summary())
            .unwrap_or_default(),
        rotated_to: None,
    })
}
