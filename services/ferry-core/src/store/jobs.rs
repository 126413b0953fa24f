//! Jobs: the rows, their results and audit trail, and every change of state.

use rusqlite::{params, Connection, OptionalExtension};

use super::outbox::enqueue;
use super::{event, rfc3339, state_in, Result, Store, StoreError, Tx};
use crate::job::JobState;
use crate::now;
use crate::records::{JobTransfer, ResultTransfer, StatusTransfer};
use crate::sha256_hex;
use crate::wire::{JobRequest, JobUpdate};

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

/// A result file on disk (staged by an import), to be stored without reading it into memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Path under `outputs/`.
    pub name: String,
    /// Where its bytes are.
    pub path: std::path::PathBuf,
    /// How many.
    pub len: u64,
    /// Their SHA-256, hex (checked by whoever staged them).
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

/// A job's audit trail, oldest first (index `events_job`).
pub(super) const EVENTS_SQL: &str =
    "SELECT at, actor, state, reason FROM events WHERE job_id = ?1 ORDER BY id";

/// The latest event of a job reaching state ?2, e.g. its approval (index `events_job`).
pub(super) const LATEST_EVENT_SQL: &str =
    "SELECT actor, at FROM events WHERE job_id = ?1 AND state = ?2 \
     ORDER BY id DESC LIMIT 1";

/// Jobs whose high-side state changed since the last report low-ward (index `jobs_unreported`).
pub(super) fn unreported() -> String {
    format!(
        "reported_state IS NOT state AND {}",
        state_in(&JobState::REPORTED_BY_HIGH)
    )
}

/// Cancellations still to carry to the high side (index `jobs_cancel_pending`).
pub(super) fn cancels_pending() -> String {
    format!(
        "cancel_requested = 1 AND cancel_sent = 0 AND {}",
        state_in(&JobState::ON_HIGH_SIDE)
    )
}

pub(super) const JOB_COLUMNS: &str =
    "job_id, researcher, title, description, runtime, code, assets, state, reason, \
    submitted_at, updated_at, has_result, exit_code, summary, stdout, stderr, stdout_truncated, \
    stderr_truncated, unsandboxed, cancel_requested";

pub(super) fn job_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(JobRow, String, String)> {
    let assets: String = row.get(6)?;
    let state: String = row.get(7)?;
    let has_result: bool = row.get(11)?;
    // A stored result always has its summary and both outputs (empty ones are empty blobs, not NULL): a NULL
    // here is an error, not an empty result.
    let result = if has_result {
        Some(StoredResult {
            exit_code: row.get(12)?,
            summary: row.get(13)?,
            stdout: row.get(14)?,
            stderr: row.get(15)?,
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

pub(super) fn finish_job(parts: (JobRow, String, String)) -> Result<JobRow> {
    let (mut job, assets, state) = parts;
    job.assets = serde_json::from_str(&assets)
        .map_err(|e| StoreError::Corrupt(format!("assets of job {}: {e}", job.job_id)))?;
    job.state = state
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("job {}: {e}", job.job_id)))?;
    Ok(job)
}

pub(super) fn get_job_in(conn: &Connection, job_id: &str) -> Result<Option<JobRow>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?1");
    let parts = conn
        .query_row(&sql, params![job_id], job_from_row)
        .optional()?;
    parts.map(finish_job).transpose()
}

pub(super) fn outputs_in(conn: &Connection, job_id: &str) -> Result<Vec<OutputRow>> {
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

impl Store {
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

    /// The requests of `researcher` refused before a job id could be read, oldest first, as the job updates the
    /// refusals were (`job_id` absent, state `failed`).
    pub fn refusals_without_job(&self, researcher: &str) -> Result<Vec<JobUpdate>> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, reason FROM refusals WHERE researcher = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![researcher], |r| {
            Ok(JobUpdate {
                job_id: None,
                title: String::new(),
                state: JobState::Failed.as_str().to_string(),
                reason: Some(r.get(1)?),
                updated_at: rfc3339(r.get(0)?),
                result: None,
                comments: Vec::new(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A job's audit trail, oldest first.
    pub fn events(&self, job_id: &str) -> Result<Vec<Event>> {
        let mut stmt = self.conn.prepare(EVENTS_SQL)?;
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

    /// High side: jobs whose state changed since the last report low-ward.
    pub fn pending_reports(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE {}", unreported()),
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Low side: cancellations not yet carried to the high side.
    pub fn pending_cancels(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            &format!("SELECT COUNT(*) FROM jobs WHERE {}", cancels_pending()),
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}

impl Tx<'_> {
    /// One job, inside the transaction.
    pub fn job(&self, job_id: &str) -> Result<Option<JobRow>> {
        get_job_in(&self.tx, job_id)
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?10, ?9, ?9)",
            params![
                job_id,
                researcher,
                request.title,
                request.description,
                request.runtime,
                request.code,
                serde_json::to_string(&request.assets).expect("names serialize"),
                digest,
                at,
                JobState::Submitted.as_str()
            ],
        )?;
        event(&self.tx, &job_id, researcher, JobState::Submitted, None)?;
        if let Some(previous) = request.revises {
            self.set_revises(&job_id, &previous.hyphenated().to_string())?;
        }
        if let Some(resources) = &request.resources {
            self.set_resources(&job_id, resources)?;
        }
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
                     VALUES (?1, ?2, ?3, '', '', '', '[]', '', ?6, ?4, ?5, ?5)",
                    params![id, researcher, title, reason, at, JobState::Failed.as_str()],
                )?;
                event(&self.tx, id, "intake", JobState::Failed, Some(reason))?;
            }
        }
        if job_id.is_none() {
            self.tx.execute(
                "INSERT INTO refusals (researcher, at, reason) VALUES (?1, ?2, ?3)",
                params![researcher, at, reason],
            )?;
        }
        super::audit::append(
            &self.tx,
            at,
            "intake",
            "request-refused",
            job_id,
            &format!("from {researcher}: {reason}"),
            None,
        )?;
        let update = JobUpdate {
            job_id: job_id.map(str::to_string),
            title: title.to_string(),
            state: JobState::Failed.as_str().to_string(),
            reason: Some(reason.to_string()),
            updated_at: rfc3339(at),
            result: None,
            comments: Vec::new(),
        };
        enqueue(&self.tx, researcher, job_id, &update)
    }

    /// Moves a job from one of `from` to `to`, recording who and why, and notifying the researcher (low side). The
    /// job must be in one of `from`, and the state machine must have the step ([`JobState::can_move_to`]).
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
        if !job.state.can_move_to(to) {
            return Err(StoreError::NoSuchStep {
                job_id: job_id.to_string(),
                from: job.state,
                to,
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

    /// Records in the job's history, without changing its state, that `actor` runs it again (a worker took it
    /// again after the one before stopped mid-run).
    pub fn record_rerun(&self, job_id: &str, actor: &str, reason: &str) -> Result<()> {
        let job = get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        event(&self.tx, job_id, actor, job.state, Some(reason))
    }

    /// Jobs in `state`, oldest first, inside the transaction.
    pub fn jobs_in_state(&self, state: JobState) -> Result<Vec<JobRow>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 ORDER BY submitted_at, rowid");
        let mut stmt = self.tx.prepare(&sql)?;
        let rows = stmt.query_map(params![state.as_str()], job_from_row)?;
        rows.map(|r| finish_job(r?)).collect()
    }

    /// Who approved a job and when (unix seconds), from the audit trail; none when it records no approval.
    pub fn approval(&self, job_id: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .tx
            .query_row(
                LATEST_EVENT_SQL,
                params![job_id, JobState::Approved.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Flags a cancellation request that must cross to the high side.
    pub fn request_cancel(&self, job_id: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?1",
            params![job_id],
        )?;
        Ok(())
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '', ?9, ?8, ?8, ?9)",
            params![
                job.job_id,
                job.researcher,
                job.title,
                job.description,
                job.runtime,
                job.code,
                serde_json::to_string(&job.assets).expect("names serialize"),
                at,
                JobState::Exported.as_str()
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

    /// Stores one result file from disk, read and written in 1 MiB pieces (SQLite's incremental BLOB I/O), so
    /// that a result's size never becomes this process's memory.
    pub fn store_output_file(&self, job_id: &str, file: &OutputFile) -> Result<()> {
        self.tx.execute(
            "INSERT INTO outputs (job_id, name, data, sha256) VALUES (?1, ?2, zeroblob(?3), ?4)",
            params![job_id, file.name, file.len as i64, file.sha256],
        )?;
        let row = self.tx.last_insert_rowid();
        let mut blob =
            self.tx
                .blob_open(rusqlite::DatabaseName::Main, "outputs", "data", row, false)?;
        let mut from = std::fs::File::open(&file.path)
            .map_err(|e| StoreError::Corrupt(format!("reading {}: {e}", file.path.display())))?;
        let copied = std::io::copy(&mut std::io::Read::take(&mut from, file.len), &mut blob)
            .map_err(|e| StoreError::Corrupt(format!("storing {}: {e}", file.name)))?;
        if copied != file.len {
            return Err(StoreError::Corrupt(format!(
                "{} held {copied} bytes where {} were expected",
                file.path.display(),
                file.len
            )));
        }
        Ok(())
    }

    /// Applies a status report from the high side (low side). The report may skip steps (the high side reports
    /// where a job stands at the time of its export), but a report of a state that does not lie ahead of the job's
    /// ([`JobState::can_reach`]) changes nothing: a late or repeated one, or any for a job in a final state.
    /// Returns whether it changed the job.
    pub fn apply_status(&self, status: &StatusTransfer, files: &[OutputFile]) -> Result<bool> {
        let Some(job) = get_job_in(&self.tx, &status.job_id)? else {
            return Ok(false);
        };
        let to: JobState = status
            .state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("status report: {e}")))?;
        if !job.state.can_reach(to) {
            return Ok(false);
        }
        if let (JobState::Released, Some(r)) = (to, &status.result) {
            self.store_result(&status.job_id, &stored_from_transfer(r), &[])?;
            for f in files {
                self.store_output_file(&status.job_id, f)?;
            }
            let withheld: Vec<super::ReleasedFile> = r
                .withheld
                .iter()
                .map(|w| super::ReleasedFile {
                    name: w.name.clone(),
                    sha256: None,
                    withheld: Some(w.reason.clone()),
                })
                .collect();
            self.record_release(&status.job_id, &withheld)?;
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

    /// A job's result files, inside the transaction.
    pub fn outputs(&self, job_id: &str) -> Result<Vec<OutputRow>> {
        outputs_in(&self.tx, job_id)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    fn request() -> JobRequest {
        JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: "t".into(),
            description: "d".into(),
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec!["a".into()],
            revises: None,
            resources: None,
        }
    }

    #[test]
    fn submit_is_idempotent_and_conflicts_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let tx = store.begin(Side::Low).unwrap();
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
        let tx = store.begin(Side::Low).unwrap();
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
        let id = exported_job(&mut store);
        let tx = store.begin(Side::Low).unwrap();
        assert!(tx
            .apply_status(&status(&id, JobState::Finished, None), &[])
            .unwrap());
        assert!(!tx
            .apply_status(&status(&id, JobState::Running, None), &[])
            .unwrap());
        assert_eq!(tx.job(&id).unwrap().unwrap().state, JobState::Finished);
        tx.commit().unwrap();
    }

    /// A low-side job moved to `exported`, as an export leaves it.
    fn exported_job(store: &mut Store) -> String {
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Side::Low).unwrap();
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
        tx.commit().unwrap();
        id
    }

    fn status(job_id: &str, state: JobState, result: Option<ResultTransfer>) -> StatusTransfer {
        StatusTransfer {
            job_id: job_id.to_string(),
            state: state.as_str().into(),
            reason: None,
            at: 1,
            result,
            decisions: Vec::new(),
            attempt: 0,
        }
    }

    #[test]
    fn an_approval_is_read_from_the_audit_trail_and_never_made_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Side::Low).unwrap();
        tx.submit(&req, "alice").unwrap();
        assert_eq!(tx.approval(&id).unwrap(), None);
        let before = now();
        tx.transition(
            &id,
            &[JobState::Submitted],
            JobState::Approved,
            "owner:root",
            None,
        )
        .unwrap();
        let (by, at) = tx.approval(&id).unwrap().expect("approved");
        assert_eq!(by, "owner:root");
        assert!(at >= before, "{at} < {before}");
        assert_eq!(tx.approval("no-such-job").unwrap(), None);
        tx.commit().unwrap();
    }

    #[test]
    fn a_stored_result_with_its_summary_missing_is_an_error_not_an_empty_result() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Side::High).unwrap();
        tx.submit(&req, "alice").unwrap();
        let result = StoredResult {
            exit_code: Some(0),
            summary: "exited with 0".into(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            unsandboxed: false,
        };
        tx.store_result(&id, &result, &[]).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.job(&id).unwrap().unwrap().result, Some(result));
        store
            .conn
            .execute("UPDATE jobs SET summary = NULL WHERE job_id = ?1", [&id])
            .unwrap();
        let err = store.job(&id).unwrap_err().to_string();
        assert!(err.contains("summary"), "{err}");
    }

    #[test]
    fn a_step_the_state_machine_lacks_is_refused_naming_both_states() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let req = request();
        let id = req.job_id.to_string();
        let tx = store.begin(Side::Low).unwrap();
        tx.submit(&req, "alice").unwrap();
        let err = tx
            .transition(
                &id,
                &[JobState::Submitted],
                JobState::Exported,
                "export",
                None,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NoSuchStep {
                    from: JobState::Submitted,
                    to: JobState::Exported,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("from submitted to exported"),
            "{err}"
        );
        assert_eq!(tx.job(&id).unwrap().unwrap().state, JobState::Submitted);
        tx.commit().unwrap();
        assert_eq!(store.events(&id).unwrap().len(), 1);
    }

    #[test]
    fn status_reports_may_skip_steps_but_never_leave_the_diagram() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let id = exported_job(&mut store);
        let tx = store.begin(Side::Low).unwrap();
        // An exported job was never under code review again: a rejection cannot apply to it.
        assert!(!tx
            .apply_status(&status(&id, JobState::Rejected, None), &[])
            .unwrap());
        assert_eq!(tx.job(&id).unwrap().unwrap().state, JobState::Exported);
        // Running and finished happened between two exports: released arrives alone.
        let result = ResultTransfer {
            exit_code: Some(0),
            summary: "exited with 0".into(),
            stdout: b"hello".to_vec(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            outputs: Vec::new(),
            withheld: Vec::new(),
        };
        assert!(tx
            .apply_status(&status(&id, JobState::Released, Some(result)), &[])
            .unwrap());
        let job = tx.job(&id).unwrap().unwrap();
        assert_eq!(job.state, JobState::Released);
        assert_eq!(job.result.unwrap().stdout, b"hello");
        // A released result is not withheld afterwards.
        assert!(!tx
            .apply_status(&status(&id, JobState::Withheld, None), &[])
            .unwrap());
        assert_eq!(tx.job(&id).unwrap().unwrap().state, JobState::Released);
        tx.commit().unwrap();
    }

    #[test]
    fn cancellations_cross_only_for_jobs_on_the_high_side() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let away = exported_job(&mut store);
        let back = exported_job(&mut store);
        let tx = store.begin(Side::Low).unwrap();
        tx.apply_status(&status(&back, JobState::Withheld, None), &[])
            .unwrap();
        tx.request_cancel(&away).unwrap();
        tx.request_cancel(&back).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.pending_cancels().unwrap(), 1);
        let tx = store.begin(Side::Low).unwrap();
        let cancels = tx.cancels_to_send().unwrap();
        assert_eq!(cancels, vec![away]);
        tx.cancels_sent(&cancels).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.pending_cancels().unwrap(), 0);
    }

    #[test]
    fn the_high_side_reports_each_change_after_the_import_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let tx = store.begin(Side::High).unwrap();
        let imported = tx
            .import_job(&JobTransfer {
                job_id: id.clone(),
                researcher: "alice".into(),
                title: "t".into(),
                description: "d".into(),
                runtime: "python".into(),
                code: "print(1)".into(),
                assets: Vec::new(),
                approved_by: "owner:root".into(),
                approved_at: 1,
                approvals: vec![],
                revises: None,
                resources: None,
            })
            .unwrap();
        assert!(imported);
        tx.commit().unwrap();
        assert_eq!(
            store.pending_reports().unwrap(),
            0,
            "the import itself is not news"
        );
        for next in [JobState::Running, JobState::Finished, JobState::Released] {
            let tx = store.begin(Side::High).unwrap();
            let from = tx.job(&id).unwrap().unwrap().state;
            tx.transition(&id, &[from], next, "worker", None).unwrap();
            tx.commit().unwrap();
            assert_eq!(store.pending_reports().unwrap(), 1, "{next}");
            let tx = store.begin(Side::High).unwrap();
            let changed = tx.status_changes().unwrap();
            assert_eq!(changed.len(), 1);
            assert_eq!(changed[0].state, next);
            tx.reported(&[(changed[0].job_id.clone(), next)]).unwrap();
            tx.commit().unwrap();
            assert_eq!(store.pending_reports().unwrap(), 0);
        }
    }
}
