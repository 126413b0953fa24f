//! The side's SQLite state store: jobs, decisions, catalog, channel ledger and researcher notifications.
//!
//! Every change that the researcher should hear about enqueues a notification in the same transaction
//! (a transactional outbox): the low side's `serve` publishes them with publisher confirms, so a crash between
//! the database and the broker loses nothing and at worst repeats a message.
//!
//! [`Store`] and [`Tx`] are defined here; their methods live with the tables they touch: `jobs` (jobs, results,
//! the audit trail), `outbox` (notifications and dispatch), `catalog` (assets), `channel` (what was sent,
//! acknowledged and imported), `review` (disclosure checks, what releases carry, canaries), `reviewers`
//! (reviewers, signed decisions, comments) and `audit` (the hash chain of everything). `migrations` holds the
//! schema as ordered migrations; [`Store::open`] applies the ones a database lacks.
//!
//! A transaction does one side's bookkeeping ([`Store::begin`] takes the [`Side`]): only the low side notifies
//! researchers. Jobs move only along [`JobState`]'s transition table.

mod audit;
mod catalog;
mod channel;
mod jobs;
mod migrations;
mod outbox;
mod pending;
mod receipts;
mod review;
mod reviewers;
mod runtimes;

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

use crate::config::Side;
use crate::job::JobState;
use crate::time::{now, rfc3339};

pub use audit::{check_heads, verify_chain, AuditEntry, GENESIS};
pub use catalog::{asset_transfer, AssetRow, AssetTransferRow};
pub use channel::{ExportRecord, LedgerEntry};
pub use jobs::{
    output_row, stored_from_transfer, Event, JobRow, OutputFile, OutputRow, StoredResult, Submitted,
};
pub use migrations::SCHEMA_VERSION;
pub use outbox::Notification;
pub use pending::PendingAck;
pub use review::ReleasedFile;
pub use reviewers::{Comment, ReviewerRow};
pub use runtimes::RuntimeRow;

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
    /// The job state machine has no step from the job's state to the one asked for.
    #[error(
        "job {job_id} cannot move from {from} to {to}: the job state machine has no such step"
    )]
    NoSuchStep {
        /// The job.
        job_id: String,
        /// Its current state.
        from: JobState,
        /// The state asked for.
        to: JobState,
    },
    /// A stored value could not be read back.
    #[error("state database holds a bad value: {0}")]
    Corrupt(String),
    /// The database was written by a newer Ferry, with a schema this build does not know.
    #[error(
        "state database has schema version {found}, but this build of ferry knows versions up to {known}: \
         it was written by a newer ferry, which is the one to use with it"
    )]
    SchemaTooNew {
        /// The database's version (`PRAGMA user_version`).
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A schema migration failed; the database is left as it was.
    #[error("state database: applying schema migration {version} ({what}): {source}")]
    Migration {
        /// The migration's version.
        version: i64,
        /// What it does.
        what: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The change conflicts with what is stored; the message says how.
    #[error("{0}")]
    Conflict(String),
    /// The database has no schema version but is not the unversioned store's schema either.
    #[error("state database has no schema version and is not a ferry state store as ferry made them before: {0}")]
    SchemaUnrecognised(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// The side's state store.
pub struct Store {
    conn: Connection,
}

/// `state IN ('a', 'b', ...)`, from the states' own names (lower-case words, so nothing needs quoting).
fn state_in(states: &[JobState]) -> String {
    let names: Vec<String> = states
        .iter()
        .map(|s| {
            debug_assert!(s.as_str().bytes().all(|b| b.is_ascii_lowercase()));
            format!("'{}'", s.as_str())
        })
        .collect();
    format!("state IN ({})", names.join(", "))
}

fn event(
    conn: &Connection,
    job_id: &str,
    actor: &str,
    state: JobState,
    reason: Option<&str>,
) -> Result<()> {
    let at = now();
    conn.execute(
        "INSERT INTO events (job_id, at, actor, state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![job_id, at, actor, state.as_str(), reason],
    )?;
    // Every row of the audit trail is in the hash chain too, so that an edit to either shows.
    let id = conn.last_insert_rowid();
    audit::append(
        conn,
        at,
        actor,
        &format!("state:{}", state.as_str()),
        Some(job_id),
        reason.unwrap_or_default(),
        Some(&format!("event:{id}")),
    )
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

/// An open transaction on the store; dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
    side: Side,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema to [`SCHEMA_VERSION`]. A database
    /// written by a newer Ferry is refused untouched.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        migrations::refuse_newer(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Up to 32 MiB of pages cached per connection (SQLite's default is 2 MiB): an export or import of ten
        // thousand jobs then works on cached pages instead of re-reading them from the file (measured by
        // `scripts/bench transfer`: 20-30% less time at 10,000 jobs).
        conn.pragma_update(None, "cache_size", -32768)?;
        migrations::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// Copies every page the write-ahead log holds into the database file and empties the log (SQLite's
    /// `wal_checkpoint(TRUNCATE)`). SQLite does this by itself once the log passes 1,000 pages, inside whichever
    /// commit passes them; a benchmark calls it so that each step it times pays for the pages it wrote, not for
    /// those of the steps before it.
    pub fn checkpoint(&self) -> Result<()> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err(StoreError::Conflict(
                "the write-ahead log is in use by another connection: not checkpointed".into(),
            ));
        }
        Ok(())
    }

    /// Starts an immediate (write-locking) transaction doing `side`'s bookkeeping: on the low side every change
    /// of a job notifies its researcher; the high side reports changes low-ward in bundles instead.
    pub fn begin(&mut self, side: Side) -> Result<Tx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Ok(Tx { tx, side })
    }

    /// Starts a read transaction doing `side`'s bookkeeping: a consistent snapshot that takes no write lock while
    /// it only reads, so other writers (intake, decisions, the notifier) carry on meanwhile. For collecting what
    /// to do before a long step (an export's bundle), then doing it in a short [`Store::begin`] transaction.
    pub fn read(&mut self, side: Side) -> Result<Tx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
        Ok(Tx { tx, side })
    }
}

impl Tx<'_> {
    /// Commits.
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }
}
