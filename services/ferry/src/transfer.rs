//! Crossing the gap: `ferry export`, `ferry import`, `ferry bundle inspect|verify`.
//!
//! Export gathers everything pending for the other side into one signed, encrypted bundle in `outbox/`, written
//! under a temporary name, fsynced and renamed; the state moves (jobs become `exported`, reports are marked sent)
//! in the same SQLite transaction that records the bundle, committed only once the file is in place.
//!
//! Import checks, in order: the signature against the pinned peer key and the payload hash (before anything is
//! decrypted); the channel; the ledger (replays); the sequence (rollback, gaps past the configured limit); the
//! chain to the previous bundle; expiry with clock slack. Only then it decrypts, checks every entry against the
//! inner manifest, and applies the records in one transaction. A refused bundle moves to `quarantine/` with a
//! `.reason` file; nothing of it is applied.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferry_bundle::{Channel, Entry, EntrySource, HeaderParams, Limits};
use ferry_core::records::{self, Batch, Record, StatusTransfer};
use ferry_core::store::{output_row, AssetRow, ExportRecord, LedgerEntry, OutputRow, Role};
use ferry_core::{names, now, JobState, Side};

use crate::side::SideDir;

fn role(side: Side) -> Role {
    match side {
        Side::Low => Role::Low,
        Side::High => Role::High,
    }
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

/// `ferry export --config CFG [--resend SEQ]`.
pub fn export_cmd(config: &Path, resend: Option<u64>, max_part_size: Option<u64>) -> Result<()> {
    let mut side = SideDir::open(config)?;
    let written = match resend {
        Some(seq) => Some(resend_bundle(&mut side, seq)?),
        None => export(&mut side)?,
    };
    match written {
        Some(path) => {
            let files = match max_part_size {
                Some(size) => crate::media::split_in_outbox(&side, &path, size)?,
                None => vec![path],
            };
            for f in files {
                println!("{}", f.display());
            }
        }
        None => println!(
            "nothing pending for the {} side: no bundle written",
            side.config.side.peer().as_str()
        ),
    }
    Ok(())
}

/// Writes one bundle with everything pending; `None` when nothing is.
pub fn export(side: &mut SideDir) -> Result<Option<PathBuf>> {
    let keys = side.keys()?;
    let peer = side.peer()?;
    let channel = side.outgoing();
    let SideDir { config, store } = side;
    let tx = store.begin(role(config.side))?;
    let (last_seq, last_hash) = tx.channel_out(channel.as_str())?;
    remove_orphans(&config.outbox(), channel, last_seq);
    let mut batch = Batch::default();
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut sources: Vec<EntrySourceRef> = Vec::new();
    match config.side {
        Side::Low => {
            for job in tx.jobs_in_state(JobState::Approved)? {
                let approved = tx.approval(&job.job_id)?;
                batch.records.push(Record::Job(records::JobTransfer {
                    job_id: job.job_id.clone(),
                    researcher: job.researcher.clone(),
                    title: job.title.clone(),
                    description: job.description.clone(),
                    runtime: job.runtime.clone(),
                    code: job.code.clone(),
                    assets: job.assets.clone(),
                    approved_by: approved.0,
                    approved_at: approved.1,
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
                    let r = job.result.as_ref().with_context(|| {
                        format!("released job {} has no stored result", job.job_id)
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
    if let Some((seen, missing)) =
        tx.take_ack(crate::side::outgoing_channel(config.side.peer()).as_str())?
    {
        batch.records.push(Record::Ack {
            received: records::to_ranges(&seen),
            missing,
        });
    }
    let rotating = match crate::rotate::pending_statement(config)? {
        Some(statement) => {
            batch.records.push(Record::Rotate { statement });
            true
        }
        None => false,
    };
    if batch.records.is_empty() {
        return Ok(None);
    }
    let records_bytes = batch.encode();
    let entries = bundle_entries(&records_bytes, &blobs, &files);
    let seq = last_seq + 1;
    let export = ExportRecord {
        seq,
        content_hash: content_hash(seq, &records_bytes),
        prev_hash: last_hash,
        records: records_bytes.clone(),
        files: serde_json::to_string(&sources).expect("sources serialize"),
        path: String::new(),
    };
    let final_path = write_and_record(config, tx, &keys, &peer, channel, export, &entries)?;
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tracing::info!(bundle = %name, seq, records = batch.records.len(), "exported");
    if rotating {
        let public = crate::rotate::complete(side)?;
        tracing::info!(key = %public.key_id(), "keys rotated: later bundles are signed with the new key");
    }
    Ok(Some(final_path))
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

/// Bundles in `outbox` numbered past the channel's recorded last sequence: left by an export that stopped between
/// renaming its file and committing. Their numbers are about to be reused, so they must not travel.
fn remove_orphans(outbox: &Path, channel: Channel, last_seq: u64) {
    let prefix = format!("ferry-{}-", channel.as_str());
    let Ok(dir) = std::fs::read_dir(outbox) else {
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let seq = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split(['-', '.']).next())
            .and_then(|n| n.parse::<u64>().ok());
        if seq.is_some_and(|seq| seq > last_seq) {
            tracing::warn!(file = %name, "removing a bundle whose export never committed");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What chains one bundle to the next: SHA-256 over the sequence number and the records entry (which names every
/// other entry by its SHA-256). Unlike the file's hash it survives a resend, which signs the same content anew.
fn content_hash(seq: u64, records: &[u8]) -> String {
    let mut data = b"ferry content v1\0".to_vec();
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(records);
    ferry_core::sha256_hex(&data)
}

/// Writes the bundle into outbox/ (temporary name, fsync, rename) and commits `tx` with the export recorded; on
/// any failure nothing is left behind and the state does not move.
fn write_and_record(
    config: &ferry_core::Config,
    tx: ferry_core::store::Tx<'_>,
    keys: &ferry_bundle::SideKeys,
    peer: &ferry_bundle::PublicIdentity,
    channel: Channel,
    mut export: ExportRecord,
    entries: &[Entry<'_>],
) -> Result<PathBuf> {
    let mut bundle_id = [0u8; 16];
    bundle_id.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let mut prev_hash = [0u8; 32];
    if !export.prev_hash.is_empty() {
        hex::decode_to_slice(&export.prev_hash, &mut prev_hash)
            .context("stored channel hash is corrupt")?;
    }
    let created_at = now();
    let params = HeaderParams {
        bundle_id,
        channel,
        seq: export.seq,
        prev_hash,
        created_at,
        expires_at: created_at + (config.bundle.expiry_hours as i64) * 3600,
    };
    let name = format!(
        "ferry-{}-{:06}-{}.bundle",
        channel.as_str(),
        export.seq,
        &hex::encode(bundle_id)[..8]
    );
    let outbox = config.outbox();
    let final_path = outbox.join(&name);
    let tmp_path = outbox.join(format!(".{name}.tmp"));
    let written = (|| -> Result<ferry_bundle::WrittenBundle> {
        let file =
            File::create(&tmp_path).with_context(|| format!("creating {}", tmp_path.display()))?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let written = ferry_bundle::write_bundle(&mut writer, keys, peer, &params, entries)
            .context("writing the bundle")?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp_path.display()))?;
        Ok(written)
    })();
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
    };
    std::fs::rename(&tmp_path, &final_path)
        .with_context(|| format!("renaming into {}", final_path.display()))?;
    sync_dir(&outbox);
    export.path = final_path.display().to_string();
    tx.record_export(
        channel.as_str(),
        &export,
        &hex::encode(bundle_id),
        &hex::encode(written.bundle_hash),
    )?;
    if let Err(e) = tx.commit() {
        // The state did not move, so the bundle must not exist either.
        let _ = std::fs::remove_file(&final_path);
        return Err(e).context("recording the export");
    }
    tracing::info!(bundle = %name, seq = export.seq, "exported");
    Ok(final_path)
}

/// `ferry export --resend SEQ`: signs the content of bundle SEQ anew (fresh id and expiry, same sequence number
/// and chain), for a bundle the other side reports missing. Importing it where the original arrived changes
/// nothing.
pub fn resend_bundle(side: &mut SideDir, seq: u64) -> Result<PathBuf> {
    let keys = side.keys()?;
    let peer = side.peer()?;
    let channel = side.outgoing();
    let SideDir { config, store } = side;
    let export = store
        .export_record(channel.as_str(), seq)?
        .with_context(|| {
            format!(
                "this side never exported sequence {seq} on {}",
                channel.as_str()
            )
        })?;
    let sources: Vec<EntrySourceRef> =
        serde_json::from_str(&export.files).context("the stored export's file list is corrupt")?;
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
                    .with_context(|| {
                        format!("output {name} of job {job_id} is no longer stored")
                    })?;
                blobs.push((entry, data));
            }
            EntrySourceRef::File { entry, path } => files.push((entry, PathBuf::from(path))),
        }
    }
    let records_bytes = export.records.clone();
    let entries = bundle_entries(&records_bytes, &blobs, &files);
    let tx = store.begin(role(config.side))?;
    write_and_record(config, tx, &keys, &peer, channel, export, &entries)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Why a bundle was refused.
#[derive(Debug)]
pub struct Refusal {
    /// Short stable name, e.g. `bad_signature`, `replay`.
    pub kind: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    fn new(kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
        }
    }
}

impl From<ferry_bundle::BundleError> for Refusal {
    fn from(e: ferry_bundle::BundleError) -> Refusal {
        Refusal {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// What happened to one file.
pub enum ImportOutcome {
    /// Applied and archived; a one-line summary.
    Accepted(String),
    /// Quarantined with this reason.
    Refused(Refusal),
}

/// `ferry import --config CFG [FILE...]`: exit code 0 only when every bundle was accepted.
pub fn import_cmd(config: &Path, files: &[PathBuf], accept_gap: bool) -> Result<i32> {
    if accept_gap && files.is_empty() {
        bail!("--accept-gap needs the bundle files named: accept a sequence jump one reviewed bundle at a time");
    }
    let mut side = SideDir::open(config)?;
    let files = if files.is_empty() {
        inbox_files(&side, false)?
    } else {
        files.to_vec()
    };
    if files.is_empty() {
        println!("no bundles in {}", side.config.inbox().display());
        return Ok(0);
    }
    let results = import_files(&mut side, &files, accept_gap)?;
    let mut refused = 0;
    for (file, outcome) in results {
        match outcome {
            ImportOutcome::Accepted(summary) => println!("imported {}: {summary}", file.display()),
            ImportOutcome::Refused(r) => {
                refused += 1;
                eprintln!(
                    "refused {} ({}): {}; moved to {}",
                    file.display(),
                    r.kind,
                    r.message,
                    side.config.quarantine().display()
                );
            }
        }
    }
    Ok(if refused == 0 { 0 } else { 1 })
}

/// Complete bundles waiting in `inbox/`, in name order (which is sequence order per channel). With `settled`,
/// only files unchanged for a second, so that a copy in progress is left alone.
pub fn inbox_files(side: &SideDir, settled: bool) -> Result<Vec<PathBuf>> {
    let inbox = side.config.inbox();
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(&inbox).with_context(|| format!("reading {}", inbox.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".bundle") {
            continue;
        }
        let meta = entry.metadata()?;
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
    accept_gap: bool,
) -> Result<Vec<(PathBuf, ImportOutcome)>> {
    let lock_path = side.config.dir.join(".import.lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock().context("taking the import lock")?;
    let keys = side.keys()?;
    let mut results = Vec::new();
    for file in files {
        // Reloaded for every file: a bundle earlier in the batch may have rotated the other side's key.
        let peer = side.peer()?;
        if !file.exists() {
            // Another importer took it between listing and locking.
            continue;
        }
        let outcome = match import_one(side, &peer, &keys, file, accept_gap) {
            Ok(summary) => {
                move_into(file, &side.config.archive())?;
                tracing::info!(file = %file.display(), "imported");
                ImportOutcome::Accepted(summary)
            }
            Err(refusal) => {
                let moved = move_into(file, &side.config.quarantine())?;
                let reason = format!(
                    "refused: {}\nreason: {}\nat: {}\n",
                    refusal.kind,
                    refusal.message,
                    chrono::Utc::now().to_rfc3339()
                );
                let reason_path = PathBuf::from(format!("{}.reason", moved.display()));
                std::fs::write(&reason_path, reason)
                    .with_context(|| format!("writing {}", reason_path.display()))?;
                tracing::warn!(file = %file.display(), kind = refusal.kind, reason = %refusal.message, "bundle refused");
                ImportOutcome::Refused(refusal)
            }
        };
        results.push((file.clone(), outcome));
    }
    drop(lock);
    Ok(results)
}

fn move_into(file: &Path, dir: &Path) -> Result<PathBuf> {
    let name = file.file_name().context("bundle path has no file name")?;
    let mut target = dir.join(name);
    if target.exists() {
        target = dir.join(format!("{}.{}", name.to_string_lossy(), now()));
    }
    if std::fs::rename(file, &target).is_err() {
        std::fs::copy(file, &target)
            .with_context(|| format!("copying {} to {}", file.display(), target.display()))?;
        std::fs::remove_file(file).with_context(|| format!("removing {}", file.display()))?;
    }
    sync_dir(dir);
    Ok(target)
}

fn import_one(
    side: &mut SideDir,
    peer: &ferry_bundle::PublicIdentity,
    keys: &ferry_bundle::SideKeys,
    path: &Path,
    accept_gap: bool,
) -> std::result::Result<String, Refusal> {
    let io = |e: std::io::Error| Refusal::new("io", format!("reading {}: {e}", path.display()));
    let store_err = |e: ferry_core::StoreError| Refusal::new("store", e.to_string());
    let expected = side.incoming();
    // 1. Signature and payload hash against the pinned key, then the header policy, before anything is
    //    decrypted; 2. decryption, streaming every entry to disk and checking it against the inner manifest.
    let max = side.config.bundle.max_bundle_mb.saturating_mul(1024 * 1024);
    let limits = Limits {
        max_total_len: max,
        ..Limits::default()
    };
    // Our current keys first; then keys we retired, for bundles made before the other side learned of it.
    let retired = crate::rotate::retired_own_keys(side);
    let mut candidates: Vec<&ferry_bundle::SideKeys> = vec![keys];
    candidates.extend(retired.iter());
    let mut seen_header = None;
    let mut sink = StagingSink::new(&side.config.work_dir()).map_err(io)?;
    let result = ferry_bundle::open(
        File::open(path).map_err(io)?,
        ferry_bundle::OpenOptions::new(peer.signing, &candidates, &mut sink)
            .limits(limits)
            .header_check(|header, _hash| {
                seen_header = Some(header.clone());
                header_policy(side, header, accept_gap)
            }),
    );
    let opened = match result {
        Ok(opened) => opened,
        Err(r) if r.kind == "untrusted_signer" => {
            let signer = File::open(path)
                .ok()
                .and_then(|f| ferry_bundle::inspect(f).ok())
                .map(|h| h.signer);
            if let Some(signer) =
                signer.filter(|s| crate::rotate::retired_peer_keys(&side.config).contains(s))
            {
                return Err(Refusal::new(
                    "retired_key",
                    format!(
                        "signed by {}, a key the {} side retired: bundles after a rotation must carry the new key",
                        ferry_bundle::key_id(&signer),
                        side.config.side.peer().as_str()
                    ),
                ));
            }
            return Err(r);
        }
        Err(r) => return Err(r),
    };
    let header = seen_header.unwrap_or_else(|| opened.header.clone());
    let bundle_hash = opened.bundle_hash;
    let bundle_id = hex::encode(header.bundle_id);
    let t = now();
    // 3. The records, then every other entry as a record names it.
    let mut entries: BTreeMap<String, StagedEntry> = BTreeMap::new();
    for (m, staged) in opened.entries.iter().zip(sink.take()) {
        entries.insert(
            m.path.clone(),
            StagedEntry {
                file: staged,
                len: m.len,
                sha256: hex::encode(m.sha256),
            },
        );
    }
    let records_entry = entries
        .remove(records::RECORDS_ENTRY)
        .ok_or_else(|| Refusal::new("bad_records", "the bundle has no records entry"))?;
    if records_entry.len > records::MAX_RECORDS_BYTES {
        return Err(Refusal::new(
            "bad_records",
            "the records entry is too large",
        ));
    }
    let records_bytes = std::fs::read(&records_entry.file).map_err(io)?;
    let batch =
        Batch::decode(&records_bytes).map_err(|e| Refusal::new("bad_records", e.to_string()))?;
    // The chain: this bundle names its predecessor's content hash; check it when the predecessor is here.
    let this_content = content_hash(header.seq, &records_bytes);
    let named_prev = hex::encode(header.prev_hash);
    if header.seq == 1 && header.prev_hash != [0u8; 32] {
        return Err(Refusal::new(
            "chain_mismatch",
            "the first bundle of a channel names a predecessor",
        ));
    }
    if header.seq > 1 {
        let prev = side
            .store
            .imported_seq(expected.as_str(), header.seq - 1)
            .map_err(store_err)?;
        if let Some(prev) = prev {
            if prev.content_hash != named_prev {
                return Err(Refusal::new(
                    "chain_mismatch",
                    format!(
                        "bundle {} names {named_prev} as its predecessor, but sequence {} as imported hashes to {}",
                        header.seq,
                        header.seq - 1,
                        prev.content_hash
                    ),
                ));
            }
        }
    }
    // 4. Apply everything in one transaction.
    let SideDir { config, store } = side;
    let tx = store.begin(role(config.side)).map_err(store_err)?;
    let mut summary = Vec::new();
    let mut rotation = None;
    let mut mock_moves: Vec<(PathBuf, PathBuf)> = Vec::new();
    let bad = |m: String| Refusal::new("bad_records", m);
    // A record names each file by entry, size and SHA-256; the manifest (checked by the reader) gave the
    // entry's own, so the two must agree.
    let mut take = |file: &records::FileRef| -> std::result::Result<StagedEntry, Refusal> {
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
                if tx.import_job(job).map_err(store_err)? {
                    summary.push(format!("job {}", job.job_id));
                }
            }
            (Side::High, Record::Cancel { job_id, .. }) => {
                if let Some(job) = tx.job(job_id).map_err(store_err)? {
                    match job.state {
                        JobState::Exported => {
                            tx.transition(
                                job_id,
                                &[JobState::Exported],
                                JobState::Cancelled,
                                &job.researcher,
                                Some("cancelled by the researcher before it ran"),
                            )
                            .map_err(store_err)?;
                        }
                        JobState::Running => tx.request_cancel(job_id).map_err(store_err)?,
                        _ => {}
                    }
                    summary.push(format!("cancellation of {job_id}"));
                }
            }
            (Side::Low, Record::Status(status)) => {
                let mut outputs: Vec<OutputRow> = Vec::new();
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
                        let data = std::fs::read(&staged.file).map_err(io)?;
                        outputs.push(output_row(&file.name, data));
                    }
                }
                if tx.apply_status(status, &outputs).map_err(store_err)? {
                    summary.push(format!("job {} {}", status.job_id, status.state));
                }
            }
            (Side::Low, Record::Catalog { version, assets }) => {
                let mut rows = Vec::new();
                for a in assets {
                    names::asset(&a.name).map_err(|e| bad(e.to_string()))?;
                    let staged = take(&a.mock)?;
                    let mock_path = crate::setup::mock_store_path(config, &a.mock.sha256)
                        .map_err(|e| Refusal::new("io", format!("{e:#}")))?;
                    // Moved into place (same file system, no copy) only once the import has committed.
                    mock_moves.push((staged.file.clone(), mock_path.clone()));
                    rows.push(AssetRow {
                        name: a.name.clone(),
                        description: a.description.clone(),
                        private_path: None,
                        mock_path: mock_path.display().to_string(),
                        mock_size: staged.len,
                        mock_sha256: a.mock.sha256.clone(),
                        updated_at: a.updated_at,
                    });
                }
                if tx.apply_catalog(*version, &rows).map_err(store_err)? {
                    summary.push(format!("catalog of {} asset(s)", rows.len()));
                } else {
                    mock_moves.clear();
                    summary.push(format!("an older catalog (version {version}), ignored"));
                }
            }
            (_, Record::Rotate { statement }) => {
                let parsed = ferry_bundle::RotationStatement::from_bytes(statement)?;
                parsed.verify(&peer.signing)?;
                if crate::rotate::retired_peer_keys(config).contains(&parsed.new.signing) {
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
                rotation = Some(parsed);
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
                tx.apply_ack(
                    crate::side::outgoing_channel(config.side).as_str(),
                    received,
                    missing,
                )
                .map_err(store_err)?;
                summary.push(format!("acknowledgement of {count} bundle(s)"));
            }
            (side, record) => {
                return Err(Refusal::new(
                    "wrong_scope",
                    format!(
                        "a {} record may not arrive on the {} side",
                        record.kind(),
                        side.as_str()
                    ),
                ))
            }
        }
    }
    if let Some(extra) = entries.keys().next() {
        return Err(Refusal::new(
            "unlisted_entry",
            format!("entry {extra} is not named by any record"),
        ));
    }
    tx.record_import(
        expected.as_str(),
        &LedgerEntry {
            bundle_id,
            seq: header.seq,
            bundle_hash: hex::encode(bundle_hash),
            content_hash: this_content,
            imported_at: t,
        },
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        batch
            .records
            .iter()
            .any(|r| !matches!(r, Record::Ack { .. })),
    )
    .map_err(store_err)?;
    // The new key is pinned before the import commits: if pinning fails, the bundle is refused whole and can be
    // imported again; the other way round, a committed rotation with the old key still pinned would strand the
    // channel.
    let pinned_before = match &rotation {
        Some(statement) => Some(
            crate::rotate::accept(config, statement)
                .map_err(|e| Refusal::new("io", format!("pinning the rotated key: {e:#}")))?,
        ),
        None => None,
    };
    if let Err(e) = tx.commit() {
        if let Some(before) = &pinned_before {
            crate::rotate::undo_accept(config, before);
        }
        return Err(store_err(e));
    }
    for (from, to) in mock_moves {
        std::fs::rename(&from, &to).map_err(io)?;
    }
    if summary.is_empty() {
        summary.push("nothing new".into());
    }
    Ok(format!("sequence {}: {}", header.seq, summary.join(", ")))
}

/// The largest single output file a low side accepts into its state store.
const MAX_OUTPUT_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The checks on a verified header, made before anything is decrypted: channel, ledger (replay), sequence
/// (rollback, gaps past the configured limit), expiry and clock slack.
fn header_policy(
    side: &SideDir,
    header: &ferry_bundle::Header,
    accept_gap: bool,
) -> std::result::Result<(), Refusal> {
    let store_err = |e: ferry_core::StoreError| Refusal::new("store", e.to_string());
    let expected = side.incoming();
    if header.channel != expected {
        return Err(Refusal::new(
            "wrong_channel",
            format!(
                "bundle is for channel {}, but this side receives on {}",
                header.channel.as_str(),
                expected.as_str()
            ),
        ));
    }
    let bundle_id = hex::encode(header.bundle_id);
    if let Some(prev) = side.store.imported(&bundle_id).map_err(store_err)? {
        return Err(Refusal::new(
            "replay",
            format!(
                "bundle {bundle_id} (sequence {}) was imported already at {}",
                prev.seq,
                chrono::DateTime::from_timestamp(prev.imported_at, 0).unwrap_or_default()
            ),
        ));
    }
    if let Some(prev) = side
        .store
        .imported_seq(expected.as_str(), header.seq)
        .map_err(store_err)?
    {
        return Err(Refusal::new(
            "rollback",
            format!(
                "sequence {} on {} was imported already (bundle {}): an old or repeated sequence number changes nothing",
                header.seq,
                expected.as_str(),
                prev.bundle_id
            ),
        ));
    }
    let (last_seq, _) = side
        .store
        .channel_in(expected.as_str())
        .map_err(store_err)?;
    let gap = header.seq.saturating_sub(last_seq);
    if gap > side.config.bundle.max_seq_gap && !accept_gap {
        return Err(Refusal::new(
            "sequence_gap",
            format!(
                "sequence {} jumps {gap} past the last imported {last_seq}, more than bundle.max_seq_gap = {}; held for \
                 the owner, who may import it with `ferry import --accept-gap FILE`",
                header.seq, side.config.bundle.max_seq_gap
            ),
        ));
    }
    let t = now();
    let slack = side.config.bundle.clock_slack_secs as i64;
    if t > header.expires_at + slack {
        return Err(Refusal::new(
            "expired",
            format!(
                "bundle expired at {} (clock slack {slack} s)",
                chrono::DateTime::from_timestamp(header.expires_at, 0).unwrap_or_default()
            ),
        ));
    }
    if header.created_at > t + slack {
        return Err(Refusal::new(
            "not_yet_valid",
            format!(
                "bundle claims to be made at {}, in the future beyond the clock slack of {slack} s",
                chrono::DateTime::from_timestamp(header.created_at, 0).unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// An entry staged on disk while a bundle is imported.
struct StagedEntry {
    file: PathBuf,
    len: u64,
    sha256: String,
}

/// Streams entries into files under `work/`, so that importing a large mock or result never holds it in memory.
/// The directory is removed when the sink is dropped; entries that should stay are moved out before.
struct StagingSink {
    dir: PathBuf,
    files: Vec<PathBuf>,
    current: Option<std::io::BufWriter<File>>,
}

impl StagingSink {
    fn new(work: &Path) -> std::io::Result<StagingSink> {
        let dir = work.join(format!(".import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(StagingSink {
            dir,
            files: Vec::new(),
            current: None,
        })
    }

    /// The staged files, in bundle order.
    fn take(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.files)
    }
}

impl ferry_bundle::EntrySink for StagingSink {
    fn begin(
        &mut self,
        _path: &str,
        _len: u64,
    ) -> std::result::Result<(), ferry_bundle::BundleError> {
        let file = self.dir.join(format!("{:06}", self.files.len()));
        let f = File::create(&file).map_err(|e| ferry_bundle::BundleError::Io {
            context: format!("staging {}", file.display()),
            source: e,
        })?;
        self.files.push(file);
        self.current = Some(std::io::BufWriter::with_capacity(1 << 20, f));
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> std::result::Result<(), ferry_bundle::BundleError> {
        use std::io::Write;
        let w = self.current.as_mut().expect("begin before write");
        w.write_all(chunk)
            .map_err(|e| ferry_bundle::BundleError::Io {
                context: "staging an entry".into(),
                source: e,
            })
    }

    fn end(&mut self) -> std::result::Result<(), ferry_bundle::BundleError> {
        use std::io::Write;
        if let Some(mut w) = self.current.take() {
            w.flush().map_err(|e| ferry_bundle::BundleError::Io {
                context: "staging an entry".into(),
                source: e,
            })?;
        }
        Ok(())
    }

    fn abort(&mut self) {
        self.current = None;
        self.files.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for StagingSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ferry bundle inspect FILE [--json]`.
pub fn inspect_cmd(file: &Path, json: bool) -> Result<()> {
    let f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let h = ferry_bundle::inspect(f)
        .with_context(|| format!("reading the header of {}", file.display()))?;
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .to_rfc3339()
    };
    let v = serde_json::json!({
        "format_version": h.version,
        "bundle_id": hex::encode(h.bundle_id),
        "channel": h.channel.as_str(),
        "sequence": h.seq,
        "previous_bundle_hash": hex::encode(h.prev_hash),
        "created_at": at(h.created_at),
        "expires_at": at(h.expires_at),
        "signer": hex::encode(h.signer),
        "payload_len": h.payload_len,
        "segment_table_sha256": hex::encode(h.table_sha256),
        "verified": false,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("(header as written; NOT verified: use `ferry bundle verify` for that)");
        for (k, val) in v.as_object().expect("object") {
            println!(
                "{k:<22} {}",
                val.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| val.to_string())
            );
        }
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
        file.display(),
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
