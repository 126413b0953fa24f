//! The side's SQLite state store: jobs, decisions, catalog, channel ledger and researcher notifications.
//!
//! Every change that the researcher should hear about enqueues a notification in the same transaction
//! (a transactional outbox): the low side's `serve` publishes them with publisher confirms, so a crash between
//! the database and the broker loses nothing and at worst repeats a message.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use crate::job::JobState;
use crate::records::{AssetTransfer, JobTransfer, ResultTransfer, StatusTransfer};
use crate::wire::{JobRequest, JobResult, JobUpdate, OutputFileData};
use crate::{now, sha256_hex};

/// A failure of the state store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// No job has this id.
    #[error("no job {0}")]
    NoSuchJob(String),
    /// The job is not in a state that allows the change.
    #[error("job {job_id} is {state}; {action} needs it to be {expected}")]
    WrongState {
        /// The job.
        job_id: String,
        /// Its current state.
        state: JobState,
        /// What was attempted.
        action: String,
        /// The states that would allow it.
        expected: String,
    },
    /// A stored value could not be read back.
    #[error("state database holds a bad value: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// UUID, hyphenated.
    pub job_id: String,
    /// Broker user that submitted it.
    pub researcher: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Runtime name.
    pub runtime: String,
    /// The script.
    pub code: String,
    /// Asset names.
    pub assets: Vec<String>,
    /// Where it stands.
    pub state: JobState,
    /// Reason of a rejection, withholding, failure or cancellation.
    pub reason: Option<String>,
    /// Unix seconds.
    pub submitted_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// The result, once the job has run (high side) or been released (low side).
    pub result: Option<StoredResult>,
    /// The researcher asked to cancel it.
    pub cancel_requested: bool,
}

/// A job's result as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResult {
    /// Exit code, when the process exited.
    pub exit_code: Option<i32>,
    /// How it ended, one line.
    pub summary: String,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// stdout was cut.
    pub stdout_truncated: bool,
    /// stderr was cut.
    pub stderr_truncated: bool,
    /// The job ran without isolation (development only).
    pub unsandboxed: bool,
}

/// A result file as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRow {
    /// Path under `outputs/`.
    pub name: String,
    /// Content.
    pub data: Vec<u8>,
    /// SHA-256, hex.
    pub sha256: String,
}

/// An entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    /// Who: a researcher, `owner:<user>`, `intake`, `worker`, `import`, `export`.
    pub actor: String,
    /// The state reached.
    pub state: JobState,
    /// The reason given, if any.
    pub reason: Option<String>,
}

/// A catalog entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetRow {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Private file (high side only).
    pub private_path: Option<String>,
    /// Mock file on this side.
    pub mock_path: String,
    /// Mock size.
    pub mock_size: u64,
    /// Mock SHA-256, hex.
    pub mock_sha256: String,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A notification waiting to be published to a researcher's results queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Its row id.
    pub id: i64,
    /// The routing key: the researcher.
    pub researcher: String,
    /// The job, if any.
    pub job_id: Option<String>,
    /// The [`JobUpdate`] JSON.
    pub body: String,
}

/// What happened to a submitted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// A new job.
    New(JobRow),
    /// The same request again: nothing changed.
    Repeat(JobRow),
    /// Another request already used this job id.
    Conflict(JobRow),
}

/// A bundle recorded in the import ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Bundle id, hex.
    pub bundle_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Bundle hash, hex.
    pub bundle_hash: String,
    /// Content hash (what the next bundle's `prev_hash` names), hex.
    pub content_hash: String,
    /// Unix seconds.
    pub imported_at: i64,
}

/// A bundle this side made, kept so that it can be rebuilt when the other side reports it lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    /// Sequence number.
    pub seq: u64,
    /// Content hash, hex.
    pub content_hash: String,
    /// The previous bundle's content hash, hex (empty for the first).
    pub prev_hash: String,
    /// The postcard records entry.
    pub records: Vec<u8>,
    /// JSON list of the other entries and where to read them again.
    pub files: String,
    /// Where it was written.
    pub path: String,
}

/// The side's state store.
pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    researcher TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    runtime TEXT NOT NULL,
    code TEXT NOT NULL,
    assets TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    submitted_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    has_result INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    summary TEXT,
    stdout BLOB,
    stderr BLOB,
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0,
    unsandboxed INTEGER NOT NULL DEFAULT 0,
    reported_state TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS outputs (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    researcher TEXT NOT NULL,
    job_id TEXT,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE TABLE IF NOT EXISTS dispatch (
    job_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    published_at INTEGER
);
CREATE TABLE IF NOT EXISTS assets (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    private_path TEXT,
    mock_path TEXT NOT NULL,
    mock_size INTEGER NOT NULL,
    mock_sha256 TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS channel_out (
    channel TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS channel_in (
    channel TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    bundle_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    bundle_hash TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    file_name TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    needs_ack INTEGER NOT NULL DEFAULT 1,
    UNIQUE (channel, seq)
);
CREATE TABLE IF NOT EXISTS peer_acks (
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    acked_at INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
);
CREATE TABLE IF NOT EXISTS peer_missing (
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (channel, seq)
);
CREATE TABLE IF NOT EXISTS exports (
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    bundle_id TEXT NOT NULL,
    bundle_hash TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    records BLOB NOT NULL,
    files TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, seq)
);
"#;

const JOB_COLUMNS: &str =
    "job_id, researcher, title, description, runtime, code, assets, state, reason, \
    submitted_at, updated_at, has_result, exit_code, summary, stdout, stderr, stdout_truncated, \
    stderr_truncated, unsandboxed, cancel_requested";

fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRow, String, String)> {
    let assets: String = row.get(6)?;
    let state: String = row.get(7)?;
    let has_result: bool = row.get(11)?;
    let result = if has_result {
        Some(StoredResult {
            exit_code: row.get(12)?,
            summary: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            stdout: row.get::<_, Option<Vec<u8>>>(14)?.unwrap_or_default(),
            stderr: row.get::<_, Option<Vec<u8>>>(15)?.unwrap_or_default(),
            stdout_truncated: row.get(16)?,
            stderr_truncated: row.get(17)?,
            unsandboxed: row.get(18)?,
        })
    } else {
        None
    };
    Ok((
        JobRow {
            job_id: row.get(0)?,
            researcher: row.get(1)?,
            title: row.get(2)?,
            description: row.get(3)?,
            runtime: row.get(4)?,
            code: row.get(5)?,
            assets: Vec::new(),
            state: JobState::Submitted,
            reason: row.get(8)?,
            submitted_at: row.get(9)?,
            updated_at: row.get(10)?,
            result,
            cancel_requested: row.get(19)?,
        },
        assets,
        state,
    ))
}

fn finish_job(parts: (JobRow, String, String)) -> Result<JobRow> {
    let (mut job, assets, state) = parts;
    job.assets = serde_json::from_str(&assets)
        .map_err(|e| StoreError::Corrupt(format!("assets of job {}: {e}", job.job_id)))?;
    job.state = state
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("job {}: {e}", job.job_id)))?;
    Ok(job)
}

fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn get_job_in(conn: &Connection, job_id: &str) -> Result<Option<JobRow>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1");
    let parts = conn
        .query_row(&sql, params![job_id], job_from_row)
        .optional()?;
    parts.map(finish_job).transpose()
}

fn outputs_in(conn: &Connection, job_id: &str) -> Result<Vec<OutputRow>> {
    let mut stmt =
        conn.prepare("SELECT name, data, sha256 FROM outputs WHERE job_id = ?1 ORDER BY name")?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok(OutputRow {
            name: r.get(0)?,
            data: r.get(1)?,
            sha256: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The researcher's view of a job; the result is included only once released.
fn update_for(conn: &Connection, job: &JobRow) -> Result<JobUpdate> {
    let result = match (&job.result, job.state) {
        (Some(r), JobState::Released | JobState::Delivered) => {
            let outputs = outputs_in(conn, &job.job_id)?;
            Some(JobResult {
                exit_code: r.exit_code,
                summary: r.summary.clone(),
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                stdout_truncated: r.stdout_truncated,
                stderr_truncated: r.stderr_truncated,
                outputs: outputs
                    .into_iter()
                    .map(|o| OutputFileData {
                        size: o.data.len() as u64,
                        data_base64: base64_encode(&o.data),
                        name: o.name,
                        sha256: o.sha256,
                    })
                    .collect(),
            })
        }
        _ => None,
    };
    Ok(JobUpdate {
        job_id: Some(job.job_id.clone()),
        title: job.title.clone(),
        state: job.state.as_str().to_string(),
        reason: job.reason.clone(),
        updated_at: rfc3339(job.updated_at),
        result,
    })
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn enqueue(
    conn: &Connection,
    researcher: &str,
    job_id: Option<&str>,
    update: &JobUpdate,
) -> Result<()> {
    let body = serde_json::to_string(update).expect("update serializes");
    conn.execute(
        "INSERT INTO notifications (researcher, job_id, body, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![researcher, job_id, body, now()],
    )?;
    Ok(())
}

fn event(
    conn: &Connection,
    job_id: &str,
    actor: &str,
    state: JobState,
    reason: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO events (job_id, at, actor, state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![job_id, now(), actor, state.as_str(), reason],
    )?;
    Ok(())
}

fn meta_get(conn: &Connection, key: &str) -> Result<i64> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

fn meta_set(conn: &Connection, key: &str, value: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

/// Which side's bookkeeping a store does: the low side notifies researchers of every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Low side: notifies researchers.
    Low,
    /// High side: reports changes low-ward in bundles instead.
    High,
}

/// An open transaction on the store; dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    role: Role,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Starts an immediate (write-locking) transaction.
    pub fn begin(&mut self, role: Role) -> Result<Tx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Tx { tx, role })
    }

    /// One job.
    pub fn job(&self, job_id: &str) -> Result<Option<JobRow>> {
        get_job_in(&self.conn, job_id)
    }

    /// Jobs, newest first, optionally only those in `state` and/or of `researcher`.
    pub fn jobs(&self, state: Option<JobState>, researcher: Option<&str>) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR researcher = ?2) ORDER BY submitted_at DESC, rowid DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![state.map(|s| s.as_str()), researcher], job_from_row)?;
        rows.map(|r| finish_job(r?)).collect()
    }

    /// Number of jobs in each state.
    pub fn counts(&self) -> Result<Vec<(JobState, u64)>> {
        let mut out = Vec::new();
        for st in JobState::ALL {
            let n: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM jobs WHERE state = ?1",
                params![st.as_str()],
                |r| r.get(0),
            )?;
            out.push((st, n as u64));
        }
        Ok(out)
    }

    /// A job's result files.
    pub fn outputs(&self, job_id: &str) -> Result<Vec<OutputRow>> {
        outputs_in(&self.conn, job_id)
    }

    /// A job's audit trail, oldest first.
    pub fn events(&self, job_id: &str) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, actor, state, reason FROM events WHERE job_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![job_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
            ))
        })?;
        rows.map(|r| {
            let (at, actor, state, reason) = r?;
            Ok(Event {
                at,
                actor,
                state: state
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("event: {e}")))?,
                reason,
            })
        })
        .collect()
    }

    /// The researcher's view of a job (with the result once released).
    pub fn update_for(&self, job: &JobRow) -> Result<JobUpdate> {
        update_for(&self.conn, job)
    }

    /// The catalog, by name.
    pub fn assets(&self) -> Result<Vec<AssetRow>> {
        assets_in(&self.conn)
    }

    /// One catalog entry.
    pub fn asset(&self, name: &str) -> Result<Option<AssetRow>> {
        Ok(self.assets()?.into_iter().find(|a| a.name == name))
    }

    /// Notifications not yet published, oldest first.
    pub fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, researcher, job_id, body FROM notifications WHERE published_at IS NULL \
             ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(Notification {
                id: r.get(0)?,
                researcher: r.get(1)?,
                job_id: r.get(2)?,
                body: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks notifications published (after the broker confirmed them), in one transaction. A released job whose
    /// result was just published becomes `delivered`.
    pub fn notifications_published(&mut self, published: &[Notification]) -> Result<()> {
        let tx = self.begin(Role::Low)?;
        for n in published {
            tx.tx.execute(
                "UPDATE notifications SET published_at = ?2 WHERE id = ?1",
                params![n.id, now()],
            )?;
            let Some(job_id) = &n.job_id else { continue };
            let update: Option<JobUpdate> = serde_json::from_str(&n.body).ok();
            let carried_result =
                update.is_some_and(|u| u.state == "released" && u.result.is_some());
            if !carried_result {
                continue;
            }
            if let Some(job) = get_job_in(&tx.tx, job_id)? {
                if job.state == JobState::Released {
                    tx.tx.execute(
                        "UPDATE jobs SET state = 'delivered', updated_at = ?2 WHERE job_id = ?1",
                        params![job_id, now()],
                    )?;
                    event(&tx.tx, job_id, "delivery", JobState::Delivered, None)?;
                }
            }
        }
        tx.commit()
    }

    /// Jobs imported on the high side and not yet published to the workers' queue.
    pub fn pending_dispatch(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT job_id FROM dispatch WHERE published_at IS NULL ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks a job published to the workers' queue (after the broker confirmed it).
    pub fn dispatched(&self, job_id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE dispatch SET published_at = ?2 WHERE job_id = ?1",
            params![job_id, now()],
        )?;
        Ok(())
    }

    /// The last sequence number and bundle hash received on `channel` (0 and empty when none).
    pub fn channel_in(&self, channel: &str) -> Result<(u64, String)> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seq, last_hash FROM channel_in WHERE channel = ?1",
                params![channel],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, String::new())))
    }

    /// The last sequence number and content hash sent on `channel` (0 and empty when none).
    pub fn channel_out(&self, channel: &str) -> Result<(u64, String)> {
        channel_out_in(&self.conn, channel)
    }

    /// Whether `bundle_id` (hex) was imported already.
    pub fn imported(&self, bundle_id: &str) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_id, seq, bundle_hash, content_hash, imported_at FROM ledger WHERE bundle_id = ?1",
                params![bundle_id],
                ledger_row,
            )
            .optional()?)
    }

    /// High side: jobs whose state changed since the last report low-ward.
    pub fn pending_reports(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE reported_state IS NOT state \
             AND state IN ('running', 'finished', 'released', 'withheld', 'failed', 'cancelled')",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Low side: cancellations not yet carried to the high side.
    pub fn pending_cancels(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE cancel_requested = 1 AND cancel_sent = 0 \
             AND state IN ('exported', 'running', 'finished')",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The bundle imported on `channel` with sequence `seq`, if any.
    pub fn imported_seq(&self, channel: &str, seq: u64) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_id, seq, bundle_hash, content_hash, imported_at FROM ledger \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq as i64],
                ledger_row,
            )
            .optional()?)
    }

    /// Every sequence number imported on `channel`, ascending.
    pub fn imported_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        imported_seqs_in(&self.conn, channel)
    }

    /// Sequence numbers below the highest imported on `channel` that never arrived.
    pub fn missing_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        Ok(gaps(&self.imported_seqs(channel)?))
    }

    /// Sequence numbers of `channel` (outgoing) that the other side acknowledged, ascending.
    pub fn acked_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM peer_acks WHERE channel = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|s| s as u64))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Sequence numbers of `channel` (outgoing) that the other side reported missing.
    pub fn peer_missing(&self, channel: &str) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM peer_missing WHERE channel = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|s| s as u64))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Whether imports since the last export wait for an acknowledgement.
    pub fn acks_pending(&self) -> Result<bool> {
        let n: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM ledger WHERE needs_ack = 1", [], |r| {
                    r.get(0)
                })?;
        Ok(n > 0)
    }

    /// A bundle this side made.
    pub fn export_record(&self, channel: &str, seq: u64) -> Result<Option<ExportRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, content_hash, prev_hash, records, files, path FROM exports \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq as i64],
                |r| {
                    Ok(ExportRecord {
                        seq: r.get::<_, i64>(0)? as u64,
                        content_hash: r.get(1)?,
                        prev_hash: r.get(2)?,
                        records: r.get(3)?,
                        files: r.get(4)?,
                        path: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// The catalog version last applied from the high side (low side).
    pub fn received_catalog_version(&self) -> Result<i64> {
        meta_get(&self.conn, "catalog_received_version")
    }

    /// Owner-side catalog version and the version last exported (high side).
    pub fn catalog_versions(&self) -> Result<(i64, i64)> {
        Ok((
            meta_get(&self.conn, "catalog_version")?,
            meta_get(&self.conn, "catalog_sent_version")?,
        ))
    }
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }

    /// One job, inside the transaction.
    pub fn job(&self, job_id: &str) -> Result<Option<JobRow>> {
        get_job_in(&self.tx, job_id)
    }

    fn notify(&self, job: &JobRow) -> Result<()> {
        if self.role == Role::Low {
            let update = update_for(&self.tx, job)?;
            enqueue(&self.tx, &job.researcher, Some(&job.job_id), &update)?;
        }
        Ok(())
    }

    /// Records a validated request from `researcher` as `submitted` (low side).
    pub fn submit(&self, request: &JobRequest, researcher: &str) -> Result<Submitted> {
        let job_id = request.job_id.hyphenated().to_string();
        let digest = request.digest();
        if let Some(existing) = get_job_in(&self.tx, &job_id)? {
            let existing_digest: String = self.tx.query_row(
                "SELECT request_sha256 FROM jobs WHERE job_id = ?1",
                params![job_id],
                |r| r.get(0),
            )?;
            return Ok(
                if existing_digest == digest && existing.researcher == researcher {
                    Submitted::Repeat(existing)
                } else {
                    Submitted::Conflict(existing)
                },
            );
        }
        let at = now();
        self.tx.execute(
            "INSERT INTO jobs (job_id, researcher, title, description, runtime, code, assets, \
             request_sha256, state, submitted_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'submitted', ?9, ?9)",
            params![
                job_id,
                researcher,
                request.title,
                request.description,
                request.runtime,
                request.code,
                serde_json::to_string(&request.assets).expect("names serialize"),
                digest,
                at
            ],
        )?;
        event(&self.tx, &job_id, researcher, JobState::Submitted, None)?;
        let job = get_job_in(&self.tx, &job_id)?.ok_or_else(|| StoreError::NoSuchJob(job_id))?;
        self.notify(&job)?;
        Ok(Submitted::New(job))
    }

    /// Tells `researcher` that a request was refused. When the request carried a job id that is not taken yet, the
    /// job is recorded as `failed` with the reason, so that `ferry status` finds it later.
    pub fn refuse(
        &self,
        researcher: &str,
        job_id: Option<&str>,
        title: &str,
        reason: &str,
    ) -> Result<()> {
        let at = now();
        let valid_id = job_id
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(|u| u.hyphenated().to_string());
        if let Some(id) = &valid_id {
            if get_job_in(&self.tx, id)?.is_none() {
                self.tx.execute(
                    "INSERT INTO jobs (job_id, researcher, title, description, runtime, code, assets, \
                     request_sha256, state, reason, submitted_at, updated_at) \
                     VALUES (?1, ?2, ?3, '', '', '', '[]', '', 'failed', ?4, ?5, ?5)",
                    params![id, researcher, title, reason, at],
                )?;
                event(&self.tx, id, "intake", JobState::Failed, Some(reason))?;
            }
        }
        let update = JobUpdate {
            job_id: job_id.map(str::to_string),
            title: title.to_string(),
            state: JobState::Failed.as_str().to_string(),
            reason: Some(reason.to_string()),
            updated_at: rfc3339(at),
            result: None,
        };
        enqueue(&self.tx, researcher, job_id, &update)
    }

    /// Moves a job from one of `from` to `to`, recording who and why, and notifying the researcher (low side).
    pub fn transition(
        &self,
        job_id: &str,
        from: &[JobState],
        to: JobState,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<JobRow> {
        let job = get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        if !from.contains(&job.state) {
            return Err(StoreError::WrongState {
                job_id: job_id.to_string(),
                state: job.state,
                action: format!("moving it to {to}"),
                expected: from
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            });
        }
        self.tx.execute(
            "UPDATE jobs SET state = ?2, reason = COALESCE(?3, reason), updated_at = ?4 WHERE job_id = ?1",
            params![job_id, to.as_str(), reason, now()],
        )?;
        event(&self.tx, job_id, actor, to, reason)?;
        let job = get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        self.notify(&job)?;
        Ok(job)
    }

    /// Jobs in `state`, oldest first, inside the transaction.
    pub fn jobs_in_state(&self, state: JobState) -> Result<Vec<JobRow>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 ORDER BY submitted_at, rowid");
        let mut stmt = self.tx.prepare(&sql)?;
        let rows = stmt.query_map(params![state.as_str()], job_from_row)?;
        rows.map(|r| finish_job(r?)).collect()
    }

    /// Who approved a job and when, from the audit trail.
    pub fn approval(&self, job_id: &str) -> Result<(String, i64)> {
        Ok(self
            .tx
            .query_row(
                "SELECT actor, at FROM events WHERE job_id = ?1 AND state = 'approved' ORDER BY id DESC LIMIT 1",
                params![job_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or_else(|| ("unknown".to_string(), now())))
    }

    /// Flags a cancellation request that must cross to the high side.
    pub fn request_cancel(&self, job_id: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?1",
            params![job_id],
        )?;
        Ok(())
    }

    /// Cancellations to carry to the high side, marking them sent.
    pub fn take_cancels(&self) -> Result<Vec<String>> {
        let mut stmt = self.tx.prepare(
            "SELECT job_id FROM jobs WHERE cancel_requested = 1 AND cancel_sent = 0 \
             AND state IN ('exported', 'running', 'finished')",
        )?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in &ids {
            self.tx.execute(
                "UPDATE jobs SET cancel_sent = 1 WHERE job_id = ?1",
                params![id],
            )?;
        }
        Ok(ids)
    }

    /// Records a high-side job imported from a bundle (state `exported`) and queues it for dispatch. Returns false
    /// when the job is known already.
    pub fn import_job(&self, job: &JobTransfer) -> Result<bool> {
        if get_job_in(&self.tx, &job.job_id)?.is_some() {
            return Ok(false);
        }
        let at = now();
        self.tx.execute(
            "INSERT INTO jobs (job_id, researcher, title, description, runtime, code, assets, \
             request_sha256, state, submitted_at, updated_at, reported_state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', 'exported', ?8, ?8, 'exported')",
            params![
                job.job_id,
                job.researcher,
                job.title,
                job.description,
                job.runtime,
                job.code,
                serde_json::to_string(&job.assets).expect("names serialize"),
                at
            ],
        )?;
        event(
            &self.tx,
            &job.job_id,
            &format!("import (approved by {})", job.approved_by),
            JobState::Exported,
            None,
        )?;
        self.tx.execute(
            "INSERT INTO dispatch (job_id, created_at) VALUES (?1, ?2)",
            params![job.job_id, at],
        )?;
        Ok(true)
    }

    /// Stores a job's result (high side, after the run).
    pub fn store_result(
        &self,
        job_id: &str,
        result: &StoredResult,
        outputs: &[OutputRow],
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET has_result = 1, exit_code = ?2, summary = ?3, stdout = ?4, stderr = ?5, \
             stdout_truncated = ?6, stderr_truncated = ?7, unsandboxed = ?8 WHERE job_id = ?1",
            params![
                job_id,
                result.exit_code,
                result.summary,
                result.stdout,
                result.stderr,
                result.stdout_truncated,
                result.stderr_truncated,
                result.unsandboxed
            ],
        )?;
        self.tx
            .execute("DELETE FROM outputs WHERE job_id = ?1", params![job_id])?;
        for o in outputs {
            self.tx.execute(
                "INSERT INTO outputs (job_id, name, data, sha256) VALUES (?1, ?2, ?3, ?4)",
                params![job_id, o.name, o.data, o.sha256],
            )?;
        }
        Ok(())
    }

    /// Applies a status report from the high side (low side). Reports that would move a job backwards, or out of a
    /// final state, change nothing; returns whether it changed the job.
    pub fn apply_status(&self, status: &StatusTransfer, files: &[OutputRow]) -> Result<bool> {
        let Some(job) = get_job_in(&self.tx, &status.job_id)? else {
            return Ok(false);
        };
        let to: JobState = status
            .state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("status report: {e}")))?;
        // Final states never change; otherwise only forward (a cancellation may come at any point).
        if job.state.is_final() || (to.rank() <= job.state.rank() && to != JobState::Cancelled) {
            return Ok(false);
        }
        if let (JobState::Released, Some(r)) = (to, &status.result) {
            self.store_result(&status.job_id, &stored_from_transfer(r), files)?;
        }
        self.tx.execute(
            "UPDATE jobs SET state = ?2, reason = COALESCE(?3, reason), updated_at = ?4 WHERE job_id = ?1",
            params![status.job_id, to.as_str(), status.reason, status.at],
        )?;
        event(
            &self.tx,
            &status.job_id,
            "import",
            to,
            status.reason.as_deref(),
        )?;
        let job = get_job_in(&self.tx, &status.job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(status.job_id.clone()))?;
        self.notify(&job)?;
        Ok(true)
    }

    /// Jobs whose high-side state changed since the last report, marking them reported (high side).
    pub fn take_status_changes(&self) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE reported_state IS NOT state \
             AND state IN ('running', 'finished', 'released', 'withheld', 'failed', 'cancelled') \
             ORDER BY updated_at"
        );
        let jobs: Vec<JobRow> = {
            let mut stmt = self.tx.prepare(&sql)?;
            let rows = stmt.query_map([], job_from_row)?;
            rows.map(|r| finish_job(r?)).collect::<Result<_>>()?
        };
        for job in &jobs {
            self.tx.execute(
                "UPDATE jobs SET reported_state = state WHERE job_id = ?1",
                params![job.job_id],
            )?;
        }
        Ok(jobs)
    }

    /// A job's result files, inside the transaction.
    pub fn outputs(&self, job_id: &str) -> Result<Vec<OutputRow>> {
        outputs_in(&self.tx, job_id)
    }

    /// Adds or replaces a catalog entry; on the high side this bumps the catalog version so the next export
    /// carries it.
    pub fn put_asset(&self, asset: &AssetRow) -> Result<()> {
        self.tx.execute(
            "INSERT INTO assets (name, description, private_path, mock_path, mock_size, mock_sha256, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO UPDATE SET description = ?2, \
             private_path = ?3, mock_path = ?4, mock_size = ?5, mock_sha256 = ?6, updated_at = ?7",
            params![
                asset.name,
                asset.description,
                asset.private_path,
                asset.mock_path,
                asset.mock_size as i64,
                asset.mock_sha256,
                asset.updated_at
            ],
        )?;
        let v = meta_get(&self.tx, "catalog_version")?;
        meta_set(&self.tx, "catalog_version", v + 1)
    }

    /// Replaces the whole catalog with one received from the high side (low side).
    pub fn replace_catalog(&self, assets: &[AssetRow]) -> Result<()> {
        self.tx.execute("DELETE FROM assets", [])?;
        for a in assets {
            self.put_asset(a)?;
        }
        Ok(())
    }

    /// The catalog if it changed since the last export, marking it sent (high side).
    pub fn take_catalog_change(&self) -> Result<Option<Vec<AssetTransferRow>>> {
        let version = meta_get(&self.tx, "catalog_version")?;
        let sent = meta_get(&self.tx, "catalog_sent_version")?;
        if version == sent {
            return Ok(None);
        }
        meta_set(&self.tx, "catalog_sent_version", version)?;
        Ok(Some(assets_in(&self.tx)?))
    }

    /// Records a bundle made on `channel` (a resend keeps the channel's last sequence where it is).
    pub fn record_export(
        &self,
        channel: &str,
        export: &ExportRecord,
        bundle_id: &str,
        bundle_hash: &str,
    ) -> Result<()> {
        let (last, _) = channel_out_in(&self.tx, channel)?;
        let resend = export.seq <= last;
        if !resend {
            self.tx.execute(
                "INSERT INTO channel_out (channel, last_seq, last_hash) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(channel) DO UPDATE SET last_seq = ?2, last_hash = ?3",
                params![channel, export.seq as i64, export.content_hash],
            )?;
        }
        self.tx.execute(
            "INSERT INTO exports (channel, seq, bundle_id, bundle_hash, content_hash, prev_hash, records, files, path, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT(channel, seq) DO UPDATE SET bundle_id = ?3, bundle_hash = ?4, path = ?9, resent = resent + 1 \
             WHERE ?11",
            params![
                channel,
                export.seq as i64,
                bundle_id,
                bundle_hash,
                export.content_hash,
                export.prev_hash,
                export.records,
                export.files,
                export.path,
                now(),
                resend
            ],
        )?;
        Ok(())
    }

    /// The last sequence number and content hash sent on `channel`, inside the transaction (an export reads it
    /// here, under the write lock, so that two exports never take the same number).
    pub fn channel_out(&self, channel: &str) -> Result<(u64, String)> {
        channel_out_in(&self.tx, channel)
    }

    /// Records an imported bundle in the ledger and advances the channel. `needs_ack` is false for bundles that
    /// carried nothing but acknowledgements, so that two sides never acknowledge each other's acknowledgements.
    pub fn record_import(
        &self,
        channel: &str,
        entry: &LedgerEntry,
        file_name: &str,
        needs_ack: bool,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO ledger (bundle_id, channel, seq, bundle_hash, content_hash, file_name, imported_at, needs_ack) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.bundle_id,
                channel,
                entry.seq as i64,
                entry.bundle_hash,
                entry.content_hash,
                file_name,
                entry.imported_at,
                needs_ack
            ],
        )?;
        self.tx.execute(
            "INSERT INTO channel_in (channel, last_seq, last_hash) VALUES (?1, ?2, ?3) \
             ON CONFLICT(channel) DO UPDATE SET last_seq = MAX(last_seq, ?2), \
             last_hash = CASE WHEN ?2 >= last_seq THEN ?3 ELSE last_hash END",
            params![channel, entry.seq as i64, entry.content_hash],
        )?;
        Ok(())
    }

    /// The acknowledgement to send for `channel` (incoming), marking imports acknowledged; None when nothing new
    /// was imported since the last one.
    pub fn take_ack(&self, channel: &str) -> Result<Option<(Vec<u64>, Vec<u64>)>> {
        let pending: i64 =
            self.tx
                .query_row("SELECT COUNT(*) FROM ledger WHERE needs_ack = 1", [], |r| {
                    r.get(0)
                })?;
        if pending == 0 {
            return Ok(None);
        }
        self.tx.execute("UPDATE ledger SET needs_ack = 0", [])?;
        let seen = imported_seqs_in(&self.tx, channel)?;
        let missing = gaps(&seen);
        Ok(Some((seen, missing)))
    }

    /// Applies the other side's acknowledgement of `channel` (outgoing).
    pub fn apply_ack(&self, channel: &str, received: &[(u64, u64)], missing: &[u64]) -> Result<()> {
        let at = now();
        for &(start, end) in received {
            for seq in start..=end {
                self.tx.execute(
                    "INSERT OR IGNORE INTO peer_acks (channel, seq, acked_at) VALUES (?1, ?2, ?3)",
                    params![channel, seq as i64, at],
                )?;
            }
        }
        self.tx.execute(
            "DELETE FROM peer_missing WHERE channel = ?1",
            params![channel],
        )?;
        for &seq in missing {
            self.tx.execute(
                "INSERT OR IGNORE INTO peer_missing (channel, seq) VALUES (?1, ?2)",
                params![channel, seq as i64],
            )?;
        }
        self.tx.execute(
            "DELETE FROM peer_missing WHERE channel = ?1 AND seq IN (SELECT seq FROM peer_acks WHERE channel = ?1)",
            params![channel],
        )?;
        Ok(())
    }

    /// Replaces the catalog if `version` is newer than the last one applied (low side); returns whether it did.
    pub fn apply_catalog(&self, version: i64, assets: &[AssetRow]) -> Result<bool> {
        if version <= meta_get(&self.tx, "catalog_received_version")? {
            return Ok(false);
        }
        self.replace_catalog(assets)?;
        meta_set(&self.tx, "catalog_received_version", version)?;
        Ok(true)
    }

    /// The catalog version to send with the current catalog (high side).
    pub fn catalog_version(&self) -> Result<i64> {
        meta_get(&self.tx, "catalog_version")
    }
}

fn imported_seqs_in(conn: &Connection, channel: &str) -> Result<Vec<u64>> {
    let mut stmt = conn.prepare("SELECT seq FROM ledger WHERE channel = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|s| s as u64))
        .collect::<rusqlite::Result<_>>()?)
}

/// The numbers below the largest of `seen` (sorted) that it lacks.
fn gaps(seen: &[u64]) -> Vec<u64> {
    let set: std::collections::BTreeSet<u64> = seen.iter().copied().collect();
    let max = seen.last().copied().unwrap_or(0);
    (1..max).filter(|s| !set.contains(s)).collect()
}

fn channel_out_in(conn: &Connection, channel: &str) -> Result<(u64, String)> {
    Ok(conn
        .query_row(
            "SELECT last_seq, last_hash FROM channel_out WHERE channel = ?1",
            params![channel],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, String::new())))
}

fn assets_in(conn: &Connection) -> Result<Vec<AssetRow>> {
    let mut stmt = conn.prepare(
        "SELECT name, description, private_path, mock_path, mock_size, mock_sha256, updated_at \
         FROM assets ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AssetRow {
            name: r.get(0)?,
            description: r.get(1)?,
            private_path: r.get(2)?,
            mock_path: r.get(3)?,
            mock_size: r.get::<_, i64>(4)? as u64,
            mock_sha256: r.get(5)?,
            updated_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        bundle_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        bundle_hash: r.get(2)?,
        content_hash: r.get(3)?,
        imported_at: r.get(4)?,
    })
}

/// A catalog row, as read for export.
pub type AssetTransferRow = AssetRow;

/// The stored form of a transferred result.
pub fn stored_from_transfer(r: &ResultTransfer) -> StoredResult {
    StoredResult {
        exit_code: r.exit_code,
        summary: r.summary.clone(),
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        stdout_truncated: r.stdout_truncated,
        stderr_truncated: r.stderr_truncated,
        unsandboxed: false,
    }
}

/// Builds an [`OutputRow`] for `data`.
pub fn output_row(name: &str, data: Vec<u8>) -> OutputRow {
    OutputRow {
        name: name.to_string(),
        sha256: sha256_hex(&data),
        data,
    }
}

/// A catalog entry as it travels, for a stored row whose mock lives at `mock_entry`.
pub fn asset_transfer(row: &AssetRow, mock_entry: String) -> AssetTransfer {
    AssetTransfer {
        name: row.name.clone(),
        description: row.description.clone(),
        mock: crate::records::FileRef {
            name: row.name.clone(),
            entry: mock_entry,
            size: row.mock_size,
            sha256: row.mock_sha256.clone(),
        },
        updated_at: row.updated_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> JobRequest {
        JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: "t".into(),
            description: "d".into(),
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec!["a".into()],
        }
    }

    #[test]
    fn submit_is_idempotent_and_conflicts_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let tx = store.begin(Role::Low).unwrap();
        assert!(matches!(
            tx.submit(&req, "alice").unwrap(),
            Submitted::New(_)
        ));
        assert!(matches!(
            tx.submit(&req, "alice").unwrap(),
            Submitted::Repeat(_)
        ));
        let mut other = req.clone();
        other.code = "print(2)".into();
        assert!(matches!(
            tx.submit(&other, "alice").unwrap(),
            Submitted::Conflict(_)
        ));
        assert!(matches!(
            tx.submit(&req, "mallory").unwrap(),
            Submitted::Conflict(_)
        ));
        tx.commit().unwrap();
        assert_eq!(store.pending_notifications(10).unwrap().len(), 1);
    }

    #[test]
    fn transitions_check_the_current_state_and_keep_an_audit_trail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Role::Low).unwrap();
        tx.submit(&req, "alice").unwrap();
        tx.transition(
            &id,
            &[JobState::Submitted],
            JobState::Rejected,
            "owner:root",
            Some("uses the network"),
        )
        .unwrap();
        let err = tx
            .transition(
                &id,
                &[JobState::Submitted],
                JobState::Approved,
                "owner:root",
                None,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::WrongState {
                    state: JobState::Rejected,
                    ..
                }
            ),
            "{err}"
        );
        tx.commit().unwrap();
        let events = store.events(&id).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].reason.as_deref(), Some("uses the network"));
        let notes = store.pending_notifications(10).unwrap();
        assert_eq!(notes.len(), 2);
        assert!(notes[1].body.contains("uses the network"));
    }

    #[test]
    fn late_status_reports_never_move_a_job_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Role::Low).unwrap();
        tx.submit(&req, "alice").unwrap();
        tx.transition(&id, &[JobState::Submitted], JobState::Approved, "o", None)
            .unwrap();
        tx.transition(
            &id,
            &[JobState::Approved],
            JobState::Exported,
            "export",
            None,
        )
        .unwrap();
        let status = |state: &str| StatusTransfer {
            job_id: id.clone(),
            state: state.into(),
            reason: None,
            at: 1,
            result: None,
        };
        assert!(tx.apply_status(&status("finished"), &[]).unwrap());
        assert!(!tx.apply_status(&status("running"), &[]).unwrap());
        assert_eq!(tx.job(&id).unwrap().unwrap().state, JobState::Finished);
        tx.commit().unwrap();
    }
}
