//! `ferry export`: everything pending for the other side in one signed, encrypted bundle in `outbox/`, and
//! `--resend`, which signs a past bundle's content anew.
//!
//! What to carry is collected in a read transaction, which takes no write lock, so intake, decisions and the
//! notifier commit while the bundle is written under a temporary name and fsynced. Only then does a short write
//! transaction move the state (jobs become `exported`, reports, cancellations, the catalog and acknowledgements are
//! marked sent, exactly as carried) and record the bundle; the file is renamed into place after that commit. A job
//! that changed in between (an approved job cancelled meanwhile) makes the export start again without it. Exports
//! and resends take the side's export lock, a file lock, for the whole of their run. Bundles chain by content
//! ([`content_hash`]), so a resent bundle keeps its place in the chain.

use std::fs::File;
use std::path::{Path, PathBuf};

use ferry_bundle::{Channel, Entry, EntrySource, HeaderParams, PublicIdentity};
use ferry_core::decision::DecisionKind;
use ferry_core::names::OutputNames;
use ferry_core::records::{self, Batch, Record, StatusTransfer};
use ferry_core::store::{
    ExportRecord, OutputRow, PendingAck, ReleasedFile, Store, StoreError, StoredResult, Tx,
};
use ferry_core::{now, sha256_hex, ContentHash, JobState, Seq, Side};
use ferry_review::escape;

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

/// How often an export starts again when what it collected changed before it could commit.
const EXPORT_ATTEMPTS: usize = 3;

/// Writes one bundle with everything pending; `None` when nothing is.
pub fn export(side: &mut SideDir) -> Result<Option<Exported>> {
    let lock = export_lock(side)?;
    for attempt in 1..=EXPORT_ATTEMPTS {
        match export_once(side)? {
            Attempt::Done(exported) => {
                drop(lock);
                return Ok(exported);
            }
            Attempt::Changed(why) if attempt < EXPORT_ATTEMPTS => {
                tracing::info!(%why, "the state changed while the bundle was written: exporting again");
            }
            Attempt::Changed(why) => {
                return Err(TransferError::Invalid(format!(
                    "the state kept changing while the bundle was written ({why}); export again"
                )))
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Takes the side's export lock (`.export.lock`), held until the returned file is dropped: one export or resend
/// at a time, so that none takes another's temporary file for a stopped export's, or its sequence number.
fn export_lock(side: &SideDir) -> Result<File> {
    let path = side.layout.export_lock();
    let lock = File::create(&path).at("creating", &path)?;
    lock.lock().at("taking the export lock", &path)?;
    Ok(lock)
}

/// One export's outcome: done (with a bundle, or nothing to carry), or to be started again because what it
/// collected changed before it committed (nothing moved, nothing left behind).
enum Attempt {
    Done(Option<Exported>),
    Changed(String),
}

/// What the export's commit marks, exactly as the bundle carried it.
#[derive(Default)]
struct Carried {
    /// Low side: approved jobs, now exported.
    approved: Vec<String>,
    /// Low side: cancellations.
    cancels: Vec<String>,
    /// High side: jobs reported, in the state reported.
    reported: Vec<(String, JobState)>,
    /// High side: the catalog version sent.
    catalog: Option<i64>,
    /// The acknowledgement sent.
    ack: Option<PendingAck>,
    /// High side: released jobs the bundle reports failed instead, because their release could not be carried as
    /// recorded, with the reason.
    failed: Vec<(String, String)>,
    /// The reviewer list version sent.
    reviewers: Option<i64>,
    /// The runtime list version sent.
    runtimes: Option<i64>,
    /// High side: the mocks the bundle carries (SHA-256), recorded with its sequence number.
    mocks: Vec<String>,
    /// High side: the comments carried (their ids).
    comments: Vec<i64>,
    /// What the audit log records of this export.
    audit: Option<String>,
}

impl Carried {
    /// Moves the state as the bundle says, in the export's write transaction; [`Changed::Job`] when a job is no
    /// longer where the bundle says it was.
    fn mark(&self, tx: &Tx<'_>) -> std::result::Result<(), Changed> {
        // Moves a job the bundle carries; one that is no longer where the bundle says it was makes the export
        // start again.
        let step = |job_id: &str, from: JobState, to: JobState, reason: Option<&str>| match tx
            .transition(job_id, &[from], to, "export", reason)
        {
            Ok(_) => Ok(()),
            Err(StoreError::WrongState { state, .. }) => {
                Err(Changed::Job(format!("job {job_id} is {state} now")))
            }
            Err(e) => Err(Changed::Store(e)),
        };
        // A release that cannot cross as recorded fails its job, which the bundle reports as failed.
        for (job_id, reason) in &self.failed {
            step(job_id, JobState::Released, JobState::Failed, Some(reason))?;
        }
        for job_id in &self.approved {
            step(job_id, JobState::Approved, JobState::Exported, None)?;
        }
        tx.cancels_sent(&self.cancels)?;
        tx.reported(&self.reported)?;
        if let Some(version) = self.catalog {
            tx.catalog_sent(version)?;
        }
        if let Some(ack) = &self.ack {
            tx.acked(ack)?;
        }
        if let Some(version) = self.reviewers {
            tx.reviewers_sent(version)?;
        }
        if let Some(version) = self.runtimes {
            tx.runtimes_sent(version)?;
        }
        tx.comments_sent(&self.comments)?;
        if let Some(detail) = &self.audit {
            tx.audit_append("export", "export", None, detail)?;
        }
        Ok(())
    }
}

/// Why an export's commit did not happen.
enum Changed {
    /// What the bundle carries changed meanwhile: export again.
    Job(String),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Changed {
    fn from(e: StoreError) -> Changed {
        Changed::Store(e)
    }
}

fn export_once(side: &mut SideDir) -> Result<Attempt> {
    let keys = side.keys()?;
    let peer = side.peer()?;
    let channel = side.outgoing();
    let rotation = crate::rotation::pending_statement(&side.layout)?;
    let SideDir {
        config,
        store,
        layout,
    } = side;
    let mut carried = Carried::default();
    let tx = store.read(config.side)?;
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
                    approvals: decisions_of(&tx, &job.job_id, &[DecisionKind::Approve])?,
                    revises: tx.revises(&job.job_id)?,
                    resources: tx.resources(&job.job_id)?,
                }));
                carried.approved.push(job.job_id.clone());
            }
            carried.cancels = tx.cancels_to_send()?;
            for job_id in &carried.cancels {
                batch.records.push(Record::Cancel {
                    job_id: job_id.clone(),
                    at: now(),
                });
            }
        }
        Side::High => {
            for job in tx.status_changes()? {
                let mut status = StatusTransfer {
                    job_id: job.job_id.clone(),
                    state: job.state.as_str().to_string(),
                    reason: job.reason.clone(),
                    at: job.updated_at,
                    result: None,
                    decisions: decisions_of(
                        &tx,
                        &job.job_id,
                        &[
                            DecisionKind::Release,
                            DecisionKind::Withhold,
                            DecisionKind::Return,
                        ],
                    )?,
                    attempt: tx.attempt(&job.job_id)?,
                };
                let mut reported = job.state;
                if job.state == JobState::Released {
                    let r = job.result.as_ref().ok_or_else(|| {
                        TransferError::Invalid(format!(
                            "released job {} has no stored result",
                            job.job_id
                        ))
                    })?;
                    let released = tx.released_files(&job.job_id)?;
                    match pack_release(&job.job_id, r, tx.outputs(&job.job_id)?, &released) {
                        Ok(packed) => {
                            // The receipt goes first, so that the result it belongs to is delivered with it.
                            if let Some(run) = tx.run_facts(&job.job_id)? {
                                let receipt = receipt_for(&job.job_id, run, &packed.result);
                                batch.records.push(Record::Receipt {
                                    job_id: job.job_id.clone(),
                                    receipt: receipt
                                        .sign(&keys.public().signing, |m| keys.sign_statement(m)),
                                });
                            }
                            status.result = Some(packed.result);
                            sources.extend(packed.sources);
                            blobs.extend(packed.blobs);
                        }
                        Err(why) => {
                            // This job cannot cross as the owner released it: it fails, visibly, and the rest of
                            // the bundle crosses.
                            let reason = format!("the release cannot be exported: {why}");
                            tracing::warn!(job_id = %job.job_id, reason, "release refused at export");
                            status.state = JobState::Failed.as_str().to_string();
                            status.reason = Some(reason.clone());
                            status.at = now();
                            reported = JobState::Failed;
                            carried.failed.push((job.job_id.clone(), reason));
                        }
                    }
                }
                carried.reported.push((job.job_id.clone(), reported));
                batch.records.push(Record::Status(status));
            }
            for (id, job_id, comment) in tx.comments_to_send()? {
                carried.comments.push(id);
                batch.records.push(Record::Comment { job_id, comment });
            }
            if let Some((version, assets)) = tx.catalog_to_send()? {
                carried.catalog = Some(version);
                let mut list = Vec::new();
                for a in assets {
                    // Content-addressed: a mock a bundle the low side acknowledged carried is not sent again (the
                    // low side keeps mocks by hash); the record names it with no entry.
                    if tx.mock_delivered(config.side.outgoing(), &a.mock_sha256)? {
                        list.push(ferry_core::store::asset_transfer(&a, String::new()));
                        continue;
                    }
                    let entry = records::mock_entry(&a.name);
                    sources.push(EntrySourceRef::File {
                        entry: entry.clone(),
                        path: a.mock_path.clone(),
                    });
                    files.push((entry.clone(), PathBuf::from(&a.mock_path)));
                    carried.mocks.push(a.mock_sha256.clone());
                    list.push(ferry_core::store::asset_transfer(&a, entry));
                }
                batch.records.push(Record::Catalog {
                    version,
                    assets: list,
                });
            }
            if let Some((version, runtimes)) = tx.runtimes_to_send()? {
                carried.runtimes = Some(version);
                batch.records.push(Record::Runtimes { version, runtimes });
            }
        }
    }
    // Acknowledge what arrived from the other side; a bundle of nothing but acknowledgements is still worth
    // carrying, since it tells the other side what to resend.
    if let Some(ack) = tx.ack_to_send(config.side.incoming())? {
        batch.records.push(Record::Ack {
            received: records::to_ranges(&ack.seen),
            missing: ack.missing.iter().map(|s| s.get()).collect(),
        });
        carried.ack = Some(ack);
    }
    // The reviewers first, so that the decisions after them are checked against the list they arrived with: when
    // the list changed, and in every bundle that carries signed decisions, so that a decision never arrives
    // before the list that makes it count (the bundle that changed the list may be lost and arrive late).
    let carries_decisions = batch.records.iter().any(|r| match r {
        Record::Job(j) => !j.approvals.is_empty(),
        Record::Status(s) => !s.decisions.is_empty(),
        _ => false,
    });
    let reviewers = match tx.reviewers_to_send()? {
        Some(changed) => Some(changed),
        None if carries_decisions => Some(tx.reviewers_now()?),
        None => None,
    };
    if let Some((version, reviewers)) = reviewers {
        batch
            .records
            .insert(0, Record::Reviewers { version, reviewers });
        carried.reviewers = Some(version);
    }
    let rotating = rotation.is_some();
    if let Some(statement) = rotation {
        batch.records.push(Record::Rotate { statement });
    }
    if batch.records.is_empty() {
        return Ok(Attempt::Done(None));
    }
    // A bundle that says anything but acknowledgements is in this side's audit log (when it commits), and carries
    // the log's head so that the other side witnesses it (an acknowledgement-only bundle does not, or the two
    // sides would trade bundles for ever).
    if batch
        .records
        .iter()
        .any(|r| !matches!(r, Record::Ack { .. }))
    {
        if let Some((seq, hash)) = tx.audit_head()? {
            batch.records.push(Record::AuditHead { seq, hash });
        }
        carried.audit = Some(format!(
            "bundle {} of channel {}: {} record(s)",
            last_seq + 1,
            config.side.outgoing().as_str(),
            batch.records.len()
        ));
    }
    // The read transaction ends here: the bundle is written holding no lock on the store.
    drop(tx);
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
    let commit = Commit {
        store,
        side: config.side,
        last_seq: Some(Seq(last_seq)),
        carried: &carried,
    };
    let path = match write_and_record(
        &outbox, expiry, commit, &keys, &peer, channel, export, &entries,
    )? {
        Ok(path) => path,
        Err(why) => return Ok(Attempt::Changed(why)),
    };
    tracing::info!(bundle = %path.display(), seq, records = batch.records.len(), "exported");
    let rotated_to = if rotating {
        let public = crate::rotation::complete(side)?;
        let tx = side.store.begin(side.config.side)?;
        tx.audit_append(
            "export",
            "key-rotation",
            None,
            &format!("this side's key is now {}", public.key_id()),
        )?;
        tx.commit()?;
        tracing::info!(key = %public.key_id(), "keys rotated: later bundles are signed with the new key");
        Some(public)
    } else {
        None
    };
    Ok(Attempt::Done(Some(Exported {
        path,
        seq,
        records: batch.records.len(),
        summary: batch.summary(),
        rotated_to,
    })))
}

/// The job's signed decisions of the given kinds, as they cross.
fn decisions_of(
    tx: &Tx<'_>,
    job_id: &str,
    kinds: &[DecisionKind],
) -> Result<Vec<ferry_core::decision::SignedDecision>> {
    Ok(tx
        .decisions(job_id)?
        .into_iter()
        .filter(|d| kinds.contains(&d.decision.kind))
        .collect())
}

/// A released job's result as it crosses, with the entries carrying its files.
/// The receipt of a release: the run's facts and the SHA-256 of every file it carries (withheld ones are not
/// listed: a hash of withheld bytes could confirm a guess at them).
fn receipt_for(
    job_id: &str,
    run: ferry_core::receipt::RunFacts,
    result: &records::ResultTransfer,
) -> ferry_core::receipt::Receipt {
    use ferry_core::receipt::CarriedFile;
    let withheld = |name: &str| result.withheld.iter().any(|w| w.name == name);
    let mut released = Vec::new();
    for (name, data) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
        if !withheld(name) {
            released.push(CarriedFile {
                name: name.to_string(),
                sha256: sha256_hex(data),
            });
        }
    }
    for o in &result.outputs {
        released.push(CarriedFile {
            name: format!("outputs/{}", o.name),
            sha256: o.sha256.clone(),
        });
    }
    released.sort_by(|a, b| a.name.cmp(&b.name));
    ferry_core::receipt::Receipt {
        job_id: job_id.to_string(),
        run,
        released,
        signed_at: ferry_core::time::rfc3339(now()),
    }
}

struct PackedRelease {
    result: records::ResultTransfer,
    blobs: Vec<(String, Vec<u8>)>,
    sources: Vec<EntrySourceRef>,
}

/// Packs what the owner released of a job: exactly the files the release recorded, each with the bytes it
/// recorded, and none it withheld. `Err` says why the job cannot cross: a file whose bytes differ from those
/// released, a file added or gone since, or an output name the other side would refuse. A release recorded
/// before releases recorded their files (`released` empty) carries every file.
fn pack_release(
    job_id: &str,
    r: &StoredResult,
    outputs: Vec<OutputRow>,
    released: &[ReleasedFile],
) -> std::result::Result<PackedRelease, String> {
    let legacy = released.is_empty();
    if legacy {
        tracing::warn!(
            job_id,
            "released before releases recorded their files: carrying every file"
        );
    }
    let mut withheld = Vec::new();
    let mut seen = Vec::new();
    // Whether `name` crosses; Err when its bytes are not those released.
    let mut carries = |name: &str, data: &[u8]| -> std::result::Result<bool, String> {
        if legacy {
            return Ok(true);
        }
        seen.push(name.to_string());
        let shown = escape::line(name);
        let Some(file) = released.iter().find(|f| f.name == name) else {
            return Err(format!("{shown} was not among the files released"));
        };
        if let Some(reason) = &file.withheld {
            withheld.push(records::Withheld {
                name: name.to_string(),
                reason: reason.clone(),
            });
            return Ok(false);
        }
        let now = sha256_hex(data);
        if file.sha256.as_deref() != Some(now.as_str()) {
            return Err(format!(
                "the bytes of {shown} differ from those released (sha256 {} released, {now} now)",
                file.sha256.as_deref().unwrap_or("none")
            ));
        }
        Ok(true)
    };
    let stdout = if carries("stdout", &r.stdout)? {
        r.stdout.clone()
    } else {
        Vec::new()
    };
    let stderr = if carries("stderr", &r.stderr)? {
        r.stderr.clone()
    } else {
        Vec::new()
    };
    let mut names = OutputNames::new();
    let mut files = Vec::new();
    let mut blobs = Vec::new();
    let mut sources = Vec::new();
    for o in outputs {
        names
            .insert(&o.name)
            .map_err(|e| format!("output {}: {}", e.name, e.why))?;
        if !carries(&format!("outputs/{}", o.name), &o.data)? {
            continue;
        }
        let entry = records::output_entry(job_id, &o.name);
        files.push(records::FileRef {
            name: o.name.clone(),
            entry: entry.clone(),
            size: o.data.len() as u64,
            sha256: sha256_hex(&o.data),
        });
        sources.push(EntrySourceRef::Output {
            entry: entry.clone(),
            job_id: job_id.to_string(),
            name: o.name,
        });
        blobs.push((entry, o.data));
    }
    if let Some(gone) = released.iter().find(|f| !seen.contains(&f.name)) {
        return Err(format!(
            "{} was released but is no longer stored",
            escape::line(&gone.name)
        ));
    }
    Ok(PackedRelease {
        result: records::ResultTransfer {
            exit_code: r.exit_code,
            summary: r.summary.clone(),
            stdout,
            stderr,
            stdout_truncated: r.stdout_truncated,
            stderr_truncated: r.stderr_truncated,
            outputs: files,
            withheld,
        },
        blobs,
        sources,
    })
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

/// Finishes or removes what a stopped export left in `outbox/`, under the export lock: a temporary file
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

/// The write transaction that ends an export: what it marks, on which store, and the channel's last sequence
/// number it was collected against (`None` for a resend, which moves nothing).
struct Commit<'s, 'c> {
    store: &'s mut Store,
    side: Side,
    last_seq: Option<Seq>,
    carried: &'c Carried,
}

/// Writes the bundle into outbox/ (temporary name, fsync), then, in one short write transaction, moves the state
/// as `commit` says, records the export and commits, and renames the file into place. On any failure nothing is
/// left behind and the state does not move; `Ok(Err(why))` when what the bundle carries changed since it was
/// collected (nothing moved, nothing left: export again).
#[allow(clippy::too_many_arguments)]
fn write_and_record(
    outbox: &Path,
    expiry_hours: u64,
    commit: Commit<'_, '_>,
    keys: &ferry_bundle::SideKeys,
    peer: &PublicIdentity,
    channel: Channel,
    mut export: ExportRecord,
    entries: &[Entry<'_>],
) -> Result<std::result::Result<PathBuf, String>> {
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
        // Straight to the file, unbuffered: the helper threads write the segments they encrypt in place.
        let mut file = File::create(&tmp_path).at("creating", &tmp_path)?;
        let written = ferry_bundle::write_bundle_file(&mut file, keys, peer, &params, entries)
            .map_err(|e| TransferError::bundle("writing the bundle", e))?;
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
    #[cfg(test)]
    tests::while_writing();
    crate::failpoint::hit("export-after-write");
    // Recorded first, renamed after: a crash in between leaves a temporary file that the state store knows
    // (recover_outbox puts it in place), never a carried bundle that it does not.
    export.path = final_path.display().to_string();
    let recorded = (|| -> std::result::Result<(), Changed> {
        let tx = commit.store.begin(commit.side)?;
        if let Some(last) = commit.last_seq {
            let (now_last, _) = tx.channel_out(channel_of(channel))?;
            if now_last != last {
                return Err(Changed::Job(format!(
                    "another export took sequence {}",
                    now_last.get()
                )));
            }
        }
        commit.carried.mark(&tx)?;
        tx.mocks_carried(channel_of(channel), export.seq.get(), &commit.carried.mocks)?;
        tx.record_export(
            channel_of(channel),
            &export,
            &hex::encode(bundle_id),
            &hex::encode(written.bundle_hash),
        )?;
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = recorded {
        let _ = std::fs::remove_file(&tmp_path);
        return match e {
            Changed::Job(why) => Ok(Err(why)),
            Changed::Store(e) => Err(e.into()),
        };
    }
    crate::failpoint::hit("export-after-commit");
    std::fs::rename(&tmp_path, &final_path).at("renaming into", &final_path)?;
    sync_dir(outbox)?;
    Ok(Ok(final_path))
}

/// `ferry export --resend SEQ`: signs the content of bundle SEQ anew (fresh id and expiry, same sequence number
/// and chain), for a bundle the other side reports missing. Importing it where the original arrived changes
/// nothing.
pub fn resend(side: &mut SideDir, seq: u64) -> Result<Exported> {
    let _lock = export_lock(side)?;
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
    let tx = store.read(config.side)?;
    recover_outbox(&tx, &layout.outbox(), channel)?;
    drop(tx);
    let commit = Commit {
        store,
        side: config.side,
        last_seq: None,
        carried: &Carried::default(),
    };
    let path = write_and_record(
        &layout.outbox(),
        config.bundle.expiry_hours,
        commit,
        &keys,
        &peer,
        channel,
        export,
        &entries,
    )?
    .map_err(|why| TransferError::Invalid(format!("resending sequence {seq}: {why}")))?;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use ferry_core::wire::JobRequest;
    use ferry_core::{JobState, Side, Store};

    use crate::{setup, SideDir};

    thread_local! {
        static WHILE_WRITING: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    /// Runs the step a test set, once, after the bundle is written and before the export commits.
    pub(super) fn while_writing() {
        if let Some(step) = WHILE_WRITING.with(|h| h.borrow_mut().take()) {
            step();
        }
    }

    fn set_while_writing(step: impl FnOnce() + 'static) {
        WHILE_WRITING.with(|h| *h.borrow_mut() = Some(Box::new(step)));
    }

    /// A low side that pins a high side, in `dir`.
    fn low_side(dir: &std::path::Path) -> SideDir {
        let amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
        let low = setup::init(Side::Low, &dir.join("low"), amqp).unwrap();
        let high = setup::init(Side::High, &dir.join("high"), amqp).unwrap();
        let side = SideDir::open(&low.config_file).unwrap();
        setup::trust_add(&side, &high.public_file).unwrap();
        side
    }

    fn request(title: &str) -> JobRequest {
        JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: title.into(),
            description: String::new(),
            runtime: "python".into(),
            code: "print(1)\n".into(),
            assets: vec!["data.csv".into()],
            revises: None,
            resources: None,
        }
    }

    /// Submits and approves a job; returns its id.
    fn approved(store: &mut Store, title: &str) -> String {
        let tx = store.begin(Side::Low).unwrap();
        let r = request(title);
        tx.submit(&r, "alice").unwrap();
        let id = r.job_id.hyphenated().to_string();
        tx.transition(
            &id,
            &[JobState::Submitted],
            JobState::Approved,
            "owner:o",
            None,
        )
        .unwrap();
        tx.commit().unwrap();
        id
    }

    fn state(store: &Store, id: &str) -> JobState {
        store.job(id).unwrap().unwrap().state
    }

    #[test]
    fn intake_commits_while_an_export_writes_its_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let mut low = low_side(dir.path());
        let exported = approved(&mut low.store, "exported");
        let db = low.layout.state_db();
        let submitted = request("arrives during the export");
        let id = submitted.job_id.hyphenated().to_string();
        set_while_writing(move || {
            // Another connection, as intake has: it must not wait for the export.
            let mut store = Store::open(&db).unwrap();
            let tx = store.begin(Side::Low).unwrap();
            tx.submit(&submitted, "bob").unwrap();
            tx.commit().unwrap();
        });
        let bundle = super::export(&mut low).unwrap().expect("a bundle");
        // The job and the audit log's head.
        assert_eq!(bundle.records, 2);
        assert_eq!(state(&low.store, &exported), JobState::Exported);
        assert_eq!(state(&low.store, &id), JobState::Submitted);
    }

    #[test]
    fn an_approved_job_cancelled_while_its_bundle_is_written_is_not_exported() {
        let dir = tempfile::tempdir().unwrap();
        let mut low = low_side(dir.path());
        let kept = approved(&mut low.store, "kept");
        let cancelled = approved(&mut low.store, "cancelled");
        let db = low.layout.state_db();
        let id = cancelled.clone();
        set_while_writing(move || {
            let mut store = Store::open(&db).unwrap();
            let tx = store.begin(Side::Low).unwrap();
            tx.transition(
                &id,
                &[JobState::Approved],
                JobState::Cancelled,
                "alice",
                None,
            )
            .unwrap();
            tx.commit().unwrap();
        });
        let bundle = super::export(&mut low).unwrap().expect("a bundle");
        // Exported again without the cancelled job, under the same sequence number; nothing else left behind.
        assert_eq!(
            (bundle.seq, bundle.records),
            (1, 2),
            "the kept job and the audit head"
        );
        assert_eq!(state(&low.store, &kept), JobState::Exported);
        assert_eq!(state(&low.store, &cancelled), JobState::Cancelled);
        let bundles: Vec<_> = std::fs::read_dir(low.layout.outbox())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(bundles, vec![bundle.path.file_name().unwrap().to_owned()]);
    }
}
