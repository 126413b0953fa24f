//! The transactional outbox: researcher notifications (low side) and jobs waiting for the workers' queue (high
//! side), written in the same transaction as the change they announce and marked once the broker confirmed them.

use rusqlite::{params, Connection, OptionalExtension};

use super::jobs::{get_job_in, outputs_in, JobRow};
use super::{event, rfc3339, Result, Store, Tx};
use crate::config::Side;
use crate::job::JobState;
use crate::now;
use crate::wire::{JobResult, JobUpdate, OutputFileData};

/// Notifications not yet published, oldest first (index `notifications_pending`).
pub(super) const PENDING_NOTIFICATIONS_SQL: &str =
    "SELECT id, researcher, job_id, body, fill_outputs FROM notifications WHERE published_at IS NULL ORDER BY id LIMIT ?1";

/// Jobs not yet published to the workers' queue (index `dispatch_pending`).
pub(super) const PENDING_DISPATCH_SQL: &str =
    "SELECT job_id FROM dispatch WHERE published_at IS NULL ORDER BY created_at";

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
    /// The body's result files are listed without their bytes: [`Store::filled_body`] reads them in.
    pub fill_outputs: bool,
}

/// The job's result files as an update lists them: with their bytes (base64), or, for the outbox, without
/// (`data_base64` empty; the notifier reads them in when it publishes, [`Store::filled_body`]).
fn output_data(conn: &Connection, job_id: &str, with_data: bool) -> Result<Vec<OutputFileData>> {
    if with_data {
        return Ok(outputs_in(conn, job_id)?
            .into_iter()
            .map(|o| OutputFileData {
                size: o.data.len() as u64,
                data_base64: base64_encode(&o.data),
                name: o.name,
                sha256: o.sha256,
            })
            .collect());
    }
    let mut stmt = conn.prepare(
        "SELECT name, length(data), sha256 FROM outputs WHERE job_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok(OutputFileData {
            name: r.get(0)?,
            size: r.get::<_, i64>(1)? as u64,
            sha256: r.get(2)?,
            data_base64: String::new(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The researcher's view of a job; the result is included only once released.
pub(super) fn update_for(conn: &Connection, job: &JobRow) -> Result<JobUpdate> {
    update_with(conn, job, true)
}

fn update_with(conn: &Connection, job: &JobRow, with_data: bool) -> Result<JobUpdate> {
    let result = match (&job.result, job.state) {
        (Some(r), JobState::Released | JobState::Delivered) => {
            let outputs = output_data(conn, &job.job_id, with_data)?;
            Some(JobResult {
                exit_code: r.exit_code,
                summary: r.summary.clone(),
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                stdout_truncated: r.stdout_truncated,
                stderr_truncated: r.stderr_truncated,
                outputs,
                withheld: super::review::released_files_in(conn, &job.job_id)?
                    .into_iter()
                    .filter_map(|f| {
                        f.withheld.map(|reason| crate::records::Withheld {
                            name: f.name,
                            reason,
                        })
                    })
                    .collect(),
                approved_by: deciders(conn, job, crate::decision::DecisionKind::Approve)?,
                released_by: deciders(conn, job, crate::decision::DecisionKind::Release)?,
                receipt: super::receipts::receipt_in(conn, &job.job_id)?,
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
        comments: super::reviewers::comments_in(conn, &job.job_id)?,
    })
}

/// Who made the job's decisions of `kind`: the reviewers who signed them, or, for an approval made without
/// reviewers, the owner the audit trail names.
fn deciders(
    conn: &Connection,
    job: &JobRow,
    kind: crate::decision::DecisionKind,
) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for d in super::reviewers::decisions_in(conn, &job.job_id)? {
        if d.decision.kind == kind && !names.contains(&d.decision.reviewer) {
            names.push(d.decision.reviewer);
        }
    }
    if names.is_empty() && kind == crate::decision::DecisionKind::Approve {
        let approval: Option<String> = conn
            .query_row(
                super::jobs::LATEST_EVENT_SQL,
                params![job.job_id, JobState::Approved.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        names.extend(approval);
    }
    Ok(names)
}

pub(super) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(super) fn enqueue(
    conn: &Connection,
    researcher: &str,
    job_id: Option<&str>,
    update: &JobUpdate,
) -> Result<()> {
    // Result files are not copied into the outbox (the update lists them without their bytes): the notifier
    // reads them in when it publishes.
    let fill = update.result.as_ref().is_some_and(|r| {
        r.outputs
            .iter()
            .any(|o| o.data_base64.is_empty() && o.size > 0)
    });
    let body = serde_json::to_string(update).expect("update serializes");
    conn.execute(
        "INSERT INTO notifications (researcher, job_id, body, created_at, fill_outputs) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![researcher, job_id, body, now(), fill],
    )?;
    Ok(())
}

impl Store {
    /// The researcher's view of a job (with the result once released).
    pub fn update_for(&self, job: &JobRow) -> Result<JobUpdate> {
        update_for(&self.conn, job)
    }

    /// The body to publish for `n`: as stored, or with its result files' bytes read from the store (base64) when
    /// it was kept without them. A file gone since is an error, naming it.
    pub fn filled_body(&self, n: &Notification) -> Result<String> {
        if !n.fill_outputs {
            return Ok(n.body.clone());
        }
        let mut update: JobUpdate = serde_json::from_str(&n.body).map_err(|e| {
            crate::store::StoreError::Corrupt(format!("notification {}: {e}", n.id))
        })?;
        let job_id = n.job_id.clone().unwrap_or_default();
        if let Some(r) = update.result.as_mut() {
            for o in &mut r.outputs {
                let data: Vec<u8> = self
                    .conn
                    .query_row(
                        "SELECT data FROM outputs WHERE job_id = ?1 AND name = ?2",
                        params![job_id, o.name],
                        |row| row.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| {
                        crate::store::StoreError::Corrupt(format!(
                            "notification {}: job {job_id} has no output {}",
                            n.id, o.name
                        ))
                    })?;
                o.data_base64 = base64_encode(&data);
            }
        }
        Ok(serde_json::to_string(&update).expect("update serializes"))
    }

    /// Notifications not yet published, oldest first.
    pub fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>> {
        let mut stmt = self.conn.prepare(PENDING_NOTIFICATIONS_SQL)?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(Notification {
                id: r.get(0)?,
                researcher: r.get(1)?,
                job_id: r.get(2)?,
                body: r.get(3)?,
                fill_outputs: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks notifications published (after the broker confirmed them), in one transaction. A released job whose
    /// result was just published becomes `delivered`.
    pub fn notifications_published(&mut self, published: &[Notification]) -> Result<()> {
        let tx = self.begin(Side::Low)?;
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
                        "UPDATE jobs SET state = ?3, updated_at = ?2 WHERE job_id = ?1",
                        params![job_id, now(), JobState::Delivered.as_str()],
                    )?;
                    event(&tx.tx, job_id, "delivery", JobState::Delivered, None)?;
                }
            }
        }
        tx.commit()
    }

    /// Jobs imported on the high side and not yet published to the workers' queue.
    pub fn pending_dispatch(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(PENDING_DISPATCH_SQL)?;
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
}

impl Tx<'_> {
    pub(super) fn notify(&self, job: &JobRow) -> Result<()> {
        if self.side == Side::Low {
            let update = update_with(&self.tx, job, false)?;
            enqueue(&self.tx, &job.researcher, Some(&job.job_id), &update)?;
        }
        Ok(())
    }
}
