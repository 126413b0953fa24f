//! The schema, as ordered migrations. A database records the last migration applied in `PRAGMA user_version`;
//! opening it applies the ones after that, all in one transaction.
//!
//! Migration 1 is the schema of the stores made before the schema had a version: such a database (user_version 0,
//! tables present) is compared table by table with migration 1 and, when it matches, carried forward like any
//! other. A database with a version above [`SCHEMA_VERSION`] was written by a newer Ferry and is refused untouched.
//!
//! A released migration never changes: a change to the schema is a new migration appended to [`MIGRATIONS`].

use rusqlite::{params, Connection, TransactionBehavior};

use super::{Result, StoreError};

/// One step of the schema.
pub(super) struct Migration {
    /// The `user_version` a database has once this migration is applied.
    pub version: i64,
    /// What it does, for people.
    pub what: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, in order: the one at index `i` has version `i + 1`.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "the tables of the store as it was before it had a schema version",
        sql: SCHEMA_1,
    },
    Migration {
        version: 2,
        what:
            "indexes for the audit trail, the outbox, reports, cancellations and acknowledgements",
        sql: SCHEMA_2,
    },
    Migration {
        version: 3,
        what: "disclosure checks, the files each release carries or withholds, and asset canaries",
        sql: SCHEMA_3,
    },
    Migration {
        version: 4,
        what: "reviewers and their signed decisions, the audit log's hash chain, comments, revisions and retries",
        sql: SCHEMA_4,
    },
    Migration {
        version: 5,
        what: "requests refused before a job id could be read, kept for their researcher",
        sql: SCHEMA_5,
    },
    Migration {
        version: 6,
        what: "result files stored and published without being held in memory",
        sql: SCHEMA_6,
    },
    Migration {
        version: 7,
        what: "the resources a job asked for",
        sql: SCHEMA_7,
    },
    Migration {
        version: 8,
        what: "runtimes the owner registers, or the high side's as received on the low side",
        sql: SCHEMA_8,
    },
    Migration {
        version: 9,
        what: "asset versions, the facts of each run (high side) and run receipts (low side)",
        sql: SCHEMA_9,
    },
];

/// The schema version this build writes, and the newest it can open.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration 1: the schema exactly as the unversioned store created it, `IF NOT EXISTS` included.
const SCHEMA_1: &str = r#"
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

/// Migration 2: what the queries that grow with the number of jobs need, so that an export or an audit trail
/// reads what it is about rather than every row. The partial indexes hold only what is still pending.
const SCHEMA_2: &str = r#"
CREATE INDEX events_job ON events(job_id, id);
CREATE INDEX notifications_pending ON notifications(id) WHERE published_at IS NULL;
CREATE INDEX dispatch_pending ON dispatch(created_at) WHERE published_at IS NULL;
CREATE INDEX jobs_unreported ON jobs(state) WHERE reported_state IS NOT state;
CREATE INDEX jobs_cancel_pending ON jobs(state) WHERE cancel_requested = 1 AND cancel_sent = 0;
CREATE INDEX ledger_needs_ack ON ledger(channel) WHERE needs_ack = 1;
"#;

/// Migration 3: what output review keeps. `checks` holds the findings of a job's disclosure checks (a job with
/// `checks_run = 0` finished before they existed, or has not finished); `released_files` the SHA-256 of every file
/// a release carries (`stdout`, `stderr`, `outputs/<name>`), or the reason it is withheld (on the low side, where a
/// withheld file's bytes never arrive, with no SHA-256); `canaries` the strings
/// the owner planted in an asset (high side only: they never cross).
const SCHEMA_3: &str = r#"
ALTER TABLE jobs ADD COLUMN checks_run INTEGER NOT NULL DEFAULT 0;
CREATE TABLE checks (
    job_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    kind TEXT NOT NULL,
    output TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);
CREATE TABLE released_files (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT,
    withheld_reason TEXT,
    PRIMARY KEY (job_id, name)
);
CREATE TABLE canaries (
    asset TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (asset, value)
);
"#;

/// Migration 4: decisions that prove who made them. `reviewers` are this side's (a removed one keeps its row);
/// `peer_reviewers` the other side's, as its last bundle said; `decisions` every signed decision, by either side's
/// reviewers, as postcard bytes; `audit` the hash chain of everything that happened here, and `peer_audit_heads`
/// the other side's chain heads as its bundles carried them; `comments` the conversation with the researcher.
const SCHEMA_4: &str = r#"
CREATE TABLE reviewers (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    added_at INTEGER NOT NULL,
    removed_at INTEGER
);
CREATE TABLE peer_reviewers (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    removed INTEGER NOT NULL
);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX decisions_job ON decisions(job_id, id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT,
    detail TEXT NOT NULL,
    ref TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_ref ON audit(ref) WHERE ref IS NOT NULL;
CREATE TABLE peer_audit_heads (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    author TEXT NOT NULL,
    side TEXT NOT NULL,
    text TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX comments_job ON comments(job_id, id);
ALTER TABLE jobs ADD COLUMN revises TEXT;
ALTER TABLE jobs ADD COLUMN retryable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
"#;

/// Migration 5: a request refused with no readable job id leaves a row its researcher's `ferry results` lists.
const SCHEMA_5: &str = r#"
CREATE TABLE refusals (
    id INTEGER PRIMARY KEY,
    researcher TEXT NOT NULL,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX refusals_researcher ON refusals(researcher, id);
"#;

/// Migration 6: result files that never pass through memory whole. A job update that carries them is kept
/// without their bytes (`fill_outputs = 1`; the notifier reads them from `outputs` when it publishes), and
/// `outputs` keeps `data` as its last column, so that SQLite writes an imported file's `zeroblob` without
/// allocating it and the file streams into it in pieces.
const SCHEMA_6: &str = r#"
ALTER TABLE notifications ADD COLUMN fill_outputs INTEGER NOT NULL DEFAULT 0;
CREATE TABLE outputs_v6 (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);
INSERT INTO outputs_v6 (job_id, name, sha256, data) SELECT job_id, name, sha256, data FROM outputs;
DROP TABLE outputs;
ALTER TABLE outputs_v6 RENAME TO outputs;
"#;

/// Migration 7: what a job asked for beyond the defaults (`ferry submit --memory-mb/--wall-secs/--cpus`), as
/// the JSON of [`crate::wire::Resources`]; NULL when it asked for nothing.
const SCHEMA_7: &str = r#"
ALTER TABLE jobs ADD COLUMN resources TEXT;
"#;

/// Migration 8: runtimes (`ferry runtime add`). On the high side a row is one the owner registered, with the
/// interpreter and the host paths the sandbox mounts for it; on the low side the high side's list as received
/// (no `program`, no `mounts`). `packages`, `mounts` and `devices` are JSON arrays.
const SCHEMA_8: &str = r#"
CREATE TABLE runtimes (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    program TEXT,
    python TEXT NOT NULL,
    packages TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    mounts TEXT NOT NULL,
    devices TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
"#;

/// Migration 9: directory assets, content-addressed mocks and run receipts. `assets.mock_tree` marks a mock that
/// is a directory (kept and sent as its tar archive); `mocks_carried` which bundle carried which mock, so that a
/// mock the other side acknowledged is never sent again. `asset_versions` holds each asset's private content hash as registered (high side);
/// `run_facts` what the worker recorded of a job's last run, as the JSON of [`crate::receipt::RunFacts`] (high
/// side); `receipts` the signed receipts received with released results (low side).
const SCHEMA_9: &str = r#"
ALTER TABLE assets ADD COLUMN mock_tree INTEGER NOT NULL DEFAULT 0;
CREATE TABLE asset_versions (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
CREATE TABLE run_facts (
    job_id TEXT PRIMARY KEY,
    facts TEXT NOT NULL
);
CREATE TABLE mocks_carried (
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (channel, seq, sha256)
);
CREATE INDEX mocks_carried_sha ON mocks_carried(sha256);
CREATE TABLE receipts (
    job_id TEXT PRIMARY KEY,
    receipt TEXT NOT NULL,
    signature TEXT NOT NULL,
    public_key TEXT NOT NULL
);
"#;

/// The database's schema version.
pub(super) fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Fails, changing nothing, when the database was written by a newer Ferry.
pub(super) fn refuse_newer(conn: &Connection) -> Result<()> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`], in one write transaction (so that two processes opening it at once
/// never both migrate).
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    refuse_newer(&tx)?;
    let mut version = user_version(&tx)?;
    if version == 0 && has_tables(&tx)? {
        check_unversioned(&tx)?;
        version = 1;
        tx.pragma_update(None, "user_version", version)?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > version) {
        tx.execute_batch(m.sql)
            .map_err(|source| StoreError::Migration {
                version: m.version,
                what: m.what,
                source,
            })?;
        tx.pragma_update(None, "user_version", m.version)?;
    }
    tx.commit()?;
    Ok(())
}

fn has_tables(conn: &Connection) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// A column as `PRAGMA table_info` gives it: name, type, not null, default, position in the primary key.
type Column = (String, String, bool, Option<String>, i64);

/// Each column of `table`, in order; empty when there is no such table.
fn columns(conn: &Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
    )?;
    let rows = stmt.query_map(params![table], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Fails unless an unversioned database holds every table of migration 1 with exactly its columns.
fn check_unversioned(conn: &Connection) -> Result<()> {
    let reference = Connection::open_in_memory()?;
    reference.execute_batch(SCHEMA_1)?;
    let tables: Vec<String> = {
        let mut stmt = reference
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut problems = Vec::new();
    for table in &tables {
        let expected = columns(&reference, table)?;
        let found = columns(conn, table)?;
        if found.is_empty() {
            problems.push(format!("table {table} is missing"));
        } else if found != expected {
            let names = |cols: &[Column]| {
                cols.iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            problems.push(format!(
                "table {table} has columns ({}) where ({}) were expected",
                names(&found),
                names(&expected)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StoreError::SchemaUnrecognised(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::Side;
    use crate::{Channel, ContentHash, JobState, Seq};

    const FIXTURE_V0: &str = include_str!("../../tests/fixtures/state-v0.sql");
    const JOB: &str = "6f1c2a7e-3b4d-4e8f-9a01-2b3c4d5e6f70";

    /// A database file holding the fixture's unversioned store.
    fn unversioned_db(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("state.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(FIXTURE_V0).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 0);
        path
    }

    fn schema_of(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    /// SQLite's plan for `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(std::iter::repeat_n("x", n)),
                |r| r.get::<_, String>(3),
            )
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    }

    #[test]
    fn queries_that_grow_with_the_jobs_use_their_indexes() {
        use crate::store::{channel, jobs, outbox};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let queries = [
            (jobs::EVENTS_SQL.to_string(), "events_job"),
            (jobs::LATEST_EVENT_SQL.to_string(), "events_job"),
            (
                format!("SELECT job_id FROM jobs WHERE {}", jobs::unreported()),
                "jobs_unreported",
            ),
            (
                format!("SELECT job_id FROM jobs WHERE {}", jobs::cancels_pending()),
                "jobs_cancel_pending",
            ),
            (
                "SELECT job_id FROM jobs WHERE state = ?1 ORDER BY submitted_at".to_string(),
                "jobs_state",
            ),
            (
                outbox::PENDING_NOTIFICATIONS_SQL.to_string(),
                "notifications_pending",
            ),
            (outbox::PENDING_DISPATCH_SQL.to_string(), "dispatch_pending"),
            (channel::ACKS_PENDING_SQL.to_string(), "ledger_needs_ack"),
        ];
        for (sql, index) in queries {
            let plan = plan(&store.conn, &sql);
            assert!(plan.contains(&format!("INDEX {index}")), "{sql}\n{plan}");
        }
    }

    #[test]
    fn migrations_are_numbered_one_after_another() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.what);
        }
        assert_eq!(SCHEMA_VERSION, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_fresh_database_gets_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn an_unversioned_database_is_recognised_and_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = unversioned_db(dir.path());
        let mut store = Store::open(&path).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);

        let job = store.job(JOB).unwrap().expect("the fixture's job");
        assert_eq!(job.researcher, "alice");
        assert_eq!(job.title, "mean of the training data");
        assert_eq!(job.state, JobState::Exported);
        assert_eq!(job.assets, vec!["training-data".to_string()]);
        let states: Vec<JobState> = store.events(JOB).unwrap().iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [JobState::Submitted, JobState::Approved, JobState::Exported]
        );
        assert_eq!(store.events(JOB).unwrap()[1].actor, "owner:root");
        assert_eq!(store.jobs(None, None).unwrap().len(), 2);
        let asset = store
            .asset("training-data")
            .unwrap()
            .expect("the fixture's asset");
        assert_eq!(asset.mock_size, 42);
        assert_eq!(asset.mock_path, "/srv/ferry/low/assets/mocks/ab12");
        let entry = store
            .imported("ffeeddccbbaa99887766554433221100")
            .unwrap()
            .expect("the fixture's ledger row");
        assert_eq!(entry.seq, Seq(1));
        let incoming: ContentHash =
            "7686d19c1ce195c82d41e995014ffe10be844001b853b6670b63941d296b69b5"
                .parse()
                .unwrap();
        assert_eq!(entry.content_hash, incoming);
        assert_eq!(
            store.channel_in(Channel::HighToLow).unwrap(),
            (Seq(1), Some(incoming))
        );
        let (out_seq, out_hash) = store.channel_out(Channel::LowToHigh).unwrap();
        assert_eq!(out_seq, Seq(1));
        assert_eq!(store.acked_seqs(Channel::LowToHigh).unwrap(), vec![Seq(1)]);
        let export = store
            .export_record(Channel::LowToHigh, Seq(1))
            .unwrap()
            .expect("the fixture's export");
        assert_eq!(export.records, vec![1, 2, 3]);
        assert_eq!(Some(export.content_hash), out_hash);
        assert_eq!(
            export.prev_hash, None,
            "the first bundle names no predecessor"
        );
        assert_eq!(store.pending_notifications(10).unwrap().len(), 4);

        // The upgraded store keeps working, and opening it again changes nothing.
        let tx = store.begin(Side::Low).unwrap();
        tx.transition(
            "0a0b0c0d-1111-4222-8333-444455556666",
            &[JobState::Submitted],
            JobState::Approved,
            "owner:root",
            None,
        )
        .unwrap();
        tx.commit().unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(store.jobs(Some(JobState::Approved), None).unwrap().len(), 1);
    }

    #[test]
    fn an_upgraded_database_has_the_schema_of_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let upgraded = Store::open(&unversioned_db(dir.path())).unwrap();
        let fresh = Store::open(&dir.path().join("fresh.db")).unwrap();
        assert_eq!(schema_of(&upgraded.conn), schema_of(&fresh.conn));
    }

    #[test]
    fn a_database_from_a_newer_ferry_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let err = Store::open(&path).err().expect("a newer schema is refused");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, known } if found == newer && known == SCHEMA_VERSION),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("version {newer}")), "{message}");
        assert!(
            message.contains(&format!("up to {SCHEMA_VERSION}")),
            "{message}"
        );
        // Refused untouched.
        assert_eq!(
            user_version(&Connection::open(&path).unwrap()).unwrap(),
            newer
        );
    }

    #[test]
    fn an_unversioned_database_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, state TEXT NOT NULL);")
            .unwrap();
        let err = Store::open(&path).err().expect("another schema is refused");
        let message = err.to_string();
        assert!(
            matches!(err, StoreError::SchemaUnrecognised(_)),
            "{message}"
        );
        assert!(
            message.contains("table jobs has columns (job_id, state)"),
            "{message}"
        );
        assert!(message.contains("table ledger is missing"), "{message}");
        assert_eq!(user_version(&Connection::open(&path).unwrap()).unwrap(), 0);
    }
}
