//! Reviewers (this side's and the other side's), the decisions they signed, the conversation with the researcher,
//! revisions and retries.

use rusqlite::{params, Connection, OptionalExtension};

use super::audit::append;
use super::{meta_get, meta_set, Result, Store, StoreError, Tx};
use crate::decision::{Reviewer, ReviewerPublic, SignedDecision};
use crate::now;

/// A reviewer registered on this side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewerRow {
    /// The reviewer.
    pub reviewer: Reviewer,
    /// When added (unix seconds).
    pub added_at: i64,
    /// When removed.
    pub removed_at: Option<i64>,
}

/// A comment on a job.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Comment {
    /// Unix seconds.
    pub at: i64,
    /// Who wrote it (`owner:<login>` or a reviewer's name).
    pub author: String,
    /// The side it was written on: `low` or `high`.
    pub side: String,
    /// The text.
    pub text: String,
}

fn parse_key(text: &str) -> rusqlite::Result<ReviewerPublic> {
    text.parse().map_err(|e: crate::decision::DecisionError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn reviewers_in(conn: &Connection) -> Result<Vec<ReviewerRow>> {
    let mut stmt = conn.prepare(
        "SELECT name, public_key, added_at, removed_at FROM reviewers ORDER BY added_at, name",
    )?;
    let rows = stmt.query_map([], |r| {
        let removed_at: Option<i64> = r.get(3)?;
        Ok(ReviewerRow {
            reviewer: Reviewer {
                name: r.get(0)?,
                public_key: parse_key(&r.get::<_, String>(1)?)?,
                removed: removed_at.is_some(),
            },
            added_at: r.get(2)?,
            removed_at,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn peer_reviewers_in(conn: &Connection) -> Result<Vec<Reviewer>> {
    let mut stmt =
        conn.prepare("SELECT name, public_key, removed FROM peer_reviewers ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(Reviewer {
            name: r.get(0)?,
            public_key: parse_key(&r.get::<_, String>(1)?)?,
            removed: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn decisions_in(conn: &Connection, job_id: &str) -> Result<Vec<SignedDecision>> {
    let mut stmt = conn.prepare("SELECT body FROM decisions WHERE job_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![job_id], |r| r.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for body in rows {
        out.push(
            SignedDecision::from_bytes(&body?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
    }
    Ok(out)
}

/// A comment from its four columns, `at, author, side, text`, starting at column `first`.
fn comment_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Comment> {
    Ok(Comment {
        at: r.get(first)?,
        author: r.get(first + 1)?,
        side: r.get(first + 2)?,
        text: r.get(first + 3)?,
    })
}

pub(super) fn comments_in(conn: &Connection, job_id: &str) -> Result<Vec<Comment>> {
    let mut stmt =
        conn.prepare("SELECT at, author, side, text FROM comments WHERE job_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![job_id], |r| comment_at(r, 0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn job_flag(
    conn: &Connection,
    job_id: &str,
    column: &str,
) -> Result<Option<rusqlite::types::Value>> {
    // `column` is one of this module's own names, never input.
    Ok(conn
        .query_row(
            &format!("SELECT {column} FROM jobs WHERE job_id = ?1"),
            params![job_id],
            |r| r.get(0),
        )
        .optional()?)
}

fn resources_in(conn: &Connection, job_id: &str) -> Result<Option<crate::wire::Resources>> {
    match job_flag(conn, job_id, "resources")? {
        Some(rusqlite::types::Value::Text(t)) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("job {job_id}'s resources: {e}"))),
        _ => Ok(None),
    }
}

fn revises_in(conn: &Connection, job_id: &str) -> Result<Option<String>> {
    Ok(job_flag(conn, job_id, "revises")?.and_then(|v| match v {
        rusqlite::types::Value::Text(t) => Some(t),
        _ => None,
    }))
}

impl Store {
    /// This side's reviewers, removed ones included.
    pub fn reviewers(&self) -> Result<Vec<ReviewerRow>> {
        reviewers_in(&self.conn)
    }

    /// The other side's reviewers, as its last bundle listed them.
    pub fn peer_reviewers(&self) -> Result<Vec<Reviewer>> {
        peer_reviewers_in(&self.conn)
    }

    /// The signed decisions on a job, oldest first (this side's and those that crossed with it).
    pub fn decisions(&self, job_id: &str) -> Result<Vec<SignedDecision>> {
        decisions_in(&self.conn, job_id)
    }

    /// The comments on a job, oldest first.
    pub fn comments(&self, job_id: &str) -> Result<Vec<Comment>> {
        comments_in(&self.conn, job_id)
    }

    /// What the job asked for beyond the side's defaults.
    pub fn resources(&self, job_id: &str) -> Result<Option<crate::wire::Resources>> {
        resources_in(&self.conn, job_id)
    }

    /// The job this one revises, if the researcher said so.
    pub fn revises(&self, job_id: &str) -> Result<Option<String>> {
        revises_in(&self.conn, job_id)
    }
}

impl Tx<'_> {
    /// Registers a reviewer; refuses a name or a public key already registered.
    pub fn add_reviewer(&self, name: &str, public_key: &ReviewerPublic, actor: &str) -> Result<()> {
        for row in reviewers_in(&self.tx)? {
            if row.reviewer.name == name {
                return Err(StoreError::Conflict(format!(
                    "a reviewer named {name} is registered already{}",
                    if row.reviewer.removed {
                        " (removed; a removed name is not reused, so that old decisions stay theirs)"
                    } else {
                        ""
                    }
                )));
            }
            if &row.reviewer.public_key == public_key {
                return Err(StoreError::Conflict(format!(
                    "that public key is {}'s already: each reviewer has a key of their own",
                    row.reviewer.name
                )));
            }
        }
        self.tx.execute(
            "INSERT INTO reviewers (name, public_key, added_at) VALUES (?1, ?2, ?3)",
            params![name, public_key.to_string(), now()],
        )?;
        self.reviewers_changed()?;
        append(
            &self.tx,
            now(),
            actor,
            "reviewer-add",
            None,
            &format!("{name} {public_key}"),
            None,
        )
    }

    /// Removes a reviewer: their decisions no longer count, here or on the other side.
    pub fn remove_reviewer(&self, name: &str, actor: &str) -> Result<()> {
        let n = self.tx.execute(
            "UPDATE reviewers SET removed_at = ?2 WHERE name = ?1 AND removed_at IS NULL",
            params![name, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "no current reviewer named {name}"
            )));
        }
        self.reviewers_changed()?;
        append(&self.tx, now(), actor, "reviewer-remove", None, name, None)
    }

    fn reviewers_changed(&self) -> Result<()> {
        let v = meta_get(&self.tx, "reviewers_version")?;
        meta_set(&self.tx, "reviewers_version", v + 1)
    }

    /// This side's reviewers, inside the transaction.
    pub fn reviewers(&self) -> Result<Vec<ReviewerRow>> {
        reviewers_in(&self.tx)
    }

    /// The reviewer list and its version when it changed since the last export, unmarked.
    pub fn reviewers_to_send(&self) -> Result<Option<(i64, Vec<Reviewer>)>> {
        let now = self.reviewers_now()?;
        if now.0 == meta_get(&self.tx, "reviewers_sent_version")? {
            return Ok(None);
        }
        Ok(Some(now))
    }

    /// The reviewer list and its version as they are now.
    pub fn reviewers_now(&self) -> Result<(i64, Vec<Reviewer>)> {
        Ok((
            meta_get(&self.tx, "reviewers_version")?,
            reviewers_in(&self.tx)?
                .into_iter()
                .map(|r| r.reviewer)
                .collect(),
        ))
    }

    /// Marks the reviewer list of `version` sent.
    pub fn reviewers_sent(&self, version: i64) -> Result<()> {
        meta_set(&self.tx, "reviewers_sent_version", version)
    }

    /// Replaces what this side knows of the other side's reviewers, if `version` is newer.
    pub fn apply_peer_reviewers(&self, version: i64, reviewers: &[Reviewer]) -> Result<bool> {
        if version <= meta_get(&self.tx, "peer_reviewers_version")? {
            return Ok(false);
        }
        self.tx.execute("DELETE FROM peer_reviewers", [])?;
        for r in reviewers {
            self.tx.execute(
                "INSERT OR REPLACE INTO peer_reviewers (name, public_key, removed) VALUES (?1, ?2, ?3)",
                params![r.name, r.public_key.to_string(), r.removed],
            )?;
        }
        meta_set(&self.tx, "peer_reviewers_version", version)?;
        append(
            &self.tx,
            now(),
            "import",
            "peer-reviewers",
            None,
            &reviewers
                .iter()
                .map(|r| format!("{}{}", r.name, if r.removed { " (removed)" } else { "" }))
                .collect::<Vec<_>>()
                .join(", "),
            None,
        )?;
        Ok(true)
    }

    /// The version of this side's reviewer list (what a bundle carrying it says).
    pub fn reviewers_version(&self) -> Result<i64> {
        meta_get(&self.tx, "reviewers_version")
    }

    /// The other side's reviewers, inside the transaction.
    pub fn peer_reviewers(&self) -> Result<Vec<Reviewer>> {
        peer_reviewers_in(&self.tx)
    }

    /// Stores a signed decision (a repeat of the same bytes changes nothing), with its audit entry.
    pub fn add_decision(&self, decision: &SignedDecision) -> Result<()> {
        let body = decision.to_bytes();
        let exists: Option<i64> = self
            .tx
            .query_row(
                "SELECT id FROM decisions WHERE job_id = ?1 AND body = ?2",
                params![decision.decision.job_id, body],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(());
        }
        self.tx.execute(
            "INSERT INTO decisions (job_id, kind, reviewer, at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                decision.decision.job_id,
                decision.decision.kind.as_str(),
                decision.decision.reviewer,
                decision.decision.at,
                body
            ],
        )?;
        let id = self.tx.last_insert_rowid();
        append(
            &self.tx,
            now(),
            &decision.decision.reviewer,
            &format!("decision:{}", decision.decision.kind.as_str()),
            Some(&decision.decision.job_id),
            &decision.digest(),
            Some(&format!("decision:{id}")),
        )
    }

    /// The signed decisions on a job, inside the transaction.
    pub fn decisions(&self, job_id: &str) -> Result<Vec<SignedDecision>> {
        decisions_in(&self.tx, job_id)
    }

    /// Adds a comment; `sent` when it needs no bundle (it came in one, or the other side has no use for it).
    pub fn add_comment(&self, job_id: &str, comment: &Comment, sent: bool) -> Result<()> {
        self.tx.execute(
            "INSERT INTO comments (job_id, at, author, side, text, sent) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![job_id, comment.at, comment.author, comment.side, comment.text, sent],
        )?;
        append(
            &self.tx,
            comment.at,
            &comment.author,
            "comment",
            Some(job_id),
            &comment.text,
            None,
        )
    }

    /// A comment that crossed from the other side (low side): stored, and the researcher told.
    pub fn comment_received(&self, job_id: &str, comment: &Comment) -> Result<bool> {
        let Some(job) = super::jobs::get_job_in(&self.tx, job_id)? else {
            return Ok(false);
        };
        self.add_comment(job_id, comment, true)?;
        self.notify(&job)?;
        Ok(true)
    }

    /// A comment written on this side, for the researcher: on the low side they are told at once; on the high
    /// side it crosses with the next export.
    pub fn comment(&self, job_id: &str, comment: &Comment) -> Result<()> {
        let job = super::jobs::get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        let low = self.side == crate::Side::Low;
        self.add_comment(job_id, comment, low)?;
        self.notify(&job)
    }

    /// Runs a failed job again (`attempt` is the new run's number): it goes back to `exported`, as if it had just
    /// crossed, and (high side) is queued for the workers. Only a step out of `failed`.
    pub fn reopen(&self, job_id: &str, attempt: u32, actor: &str, reason: &str) -> Result<()> {
        let job = super::jobs::get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        if job.state != crate::JobState::Failed {
            return Err(StoreError::WrongState {
                job_id: job_id.to_string(),
                state: job.state,
                action: "running it again".into(),
                expected: "failed".into(),
            });
        }
        self.tx.execute(
            "UPDATE jobs SET state = 'exported', reason = NULL, has_result = 0, checks_run = 0, \
             attempt = ?2, retryable = 0, updated_at = ?3 WHERE job_id = ?1",
            params![job_id, attempt, now()],
        )?;
        super::event(
            &self.tx,
            job_id,
            actor,
            crate::JobState::Exported,
            Some(reason),
        )?;
        if self.side == crate::Side::High {
            self.tx.execute(
                "INSERT OR REPLACE INTO dispatch (job_id, created_at) VALUES (?1, ?2)",
                params![job_id, now()],
            )?;
        }
        Ok(())
    }

    /// Comments not yet carried to the other side, with their ids, unmarked.
    pub fn comments_to_send(&self) -> Result<Vec<(i64, String, Comment)>> {
        let mut stmt = self.tx.prepare(
            "SELECT id, job_id, at, author, side, text FROM comments WHERE sent = 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, comment_at(r, 2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Marks the comments `ids` carried.
    pub fn comments_sent(&self, ids: &[i64]) -> Result<()> {
        for id in ids {
            self.tx
                .execute("UPDATE comments SET sent = 1 WHERE id = ?1", params![id])?;
        }
        Ok(())
    }

    /// What the job asked for, inside the transaction.
    pub fn resources(&self, job_id: &str) -> Result<Option<crate::wire::Resources>> {
        resources_in(&self.tx, job_id)
    }

    /// Records what the job asked for.
    pub fn set_resources(&self, job_id: &str, resources: &crate::wire::Resources) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET resources = ?2 WHERE job_id = ?1",
            params![
                job_id,
                serde_json::to_string(resources).expect("resources serialize")
            ],
        )?;
        Ok(())
    }

    /// The job this one revises, inside the transaction.
    pub fn revises(&self, job_id: &str) -> Result<Option<String>> {
        revises_in(&self.tx, job_id)
    }

    /// Records that `job_id` revises `previous`.
    pub fn set_revises(&self, job_id: &str, previous: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET revises = ?2 WHERE job_id = ?1",
            params![job_id, previous],
        )?;
        Ok(())
    }

    /// Marks a failed job as failed for a reason not its own, so that `ferry review retry` may queue it again.
    pub fn mark_retryable(&self, job_id: &str) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET retryable = 1 WHERE job_id = ?1",
            params![job_id],
        )?;
        Ok(())
    }

    /// Whether the job failed for a reason not its own.
    pub fn retryable(&self, job_id: &str) -> Result<bool> {
        Ok(matches!(
            job_flag(&self.tx, job_id, "retryable")?,
            Some(rusqlite::types::Value::Integer(1))
        ))
    }

    /// The job's attempt number (0 for the first run; each retry adds one).
    pub fn attempt(&self, job_id: &str) -> Result<u32> {
        Ok(match job_flag(&self.tx, job_id, "attempt")? {
            Some(rusqlite::types::Value::Integer(n)) => n as u32,
            _ => 0,
        })
    }

    /// Sets the job's attempt number.
    pub fn set_attempt(&self, job_id: &str, attempt: u32) -> Result<()> {
        self.tx.execute(
            "UPDATE jobs SET attempt = ?2, retryable = 0 WHERE job_id = ?1",
            params![job_id, attempt],
        )?;
        Ok(())
    }
}
