//! The side's SQLite state store: jobs, decisions, catalog, channel ledger and researcher notifications.
//!
//! Every change that the researcher should hear about enqueues a notification in the same transaction
//! (a transactional outbox): the low side's `serve` publishes them with publisher confirms, so a crash between
//! the database and the broker loses nothing and at worst repeats a message.
//!
//! [`Store`] and [`Tx`] are defined here; their methods live with the tables they touch: `jobs` (jobs, results,
//! the audit trail), `outbox` (notifications and dispatch), `catalog` (assets) and `channel` (what was sent,
//! acknowledged and imported).

mod catalog;
mod channel;
mod jobs;
mod outbox;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use crate::job::JobState;
use crate::now;

pub use catalog::{asset_transfer, AssetRow, AssetTransferRow};
pub use channel::{ExportRecord, LedgerEntry};
pub use jobs::{
    output_row, stored_from_transfer, Event, JobRow, OutputRow, StoredResult, Submitted,
};
pub use outbox::Notification;

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

fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}
