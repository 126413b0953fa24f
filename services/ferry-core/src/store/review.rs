//! Output review (high side): the findings of a job's disclosure checks, the files a release carries or
//! withholds with the SHA-256 the owner reviewed, and the canaries planted in assets.

use ferry_review::checks::{Check, CheckKind};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store, StoreError, Tx};
use crate::now;

/// A file of a released job: `stdout`, `stderr` or `outputs/<name>`, with the SHA-256 of the bytes the owner
/// released, or the reason it is withheld.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleasedFile {
    /// `stdout`, `stderr` or `outputs/<name>`.
    pub name: String,
    /// SHA-256, hex, of the bytes reviewed; `None` on the low side for a withheld file (its bytes never arrive).
    pub sha256: Option<String>,
    /// Why it does not cross, when the owner withheld it.
    pub withheld: Option<String>,
}

fn checks_in(conn: &Connection, job_id: &str) -> Result<Option<Vec<Check>>> {
    let run: Option<bool> = conn
        .query_row(
            "SELECT checks_run FROM jobs WHERE job_id = ?1",
            params![job_id],
            |r| r.get(0),
        )
        .optional()?;
    match run {
        None => return Err(StoreError::NoSuchJob(job_id.to_string())),
        Some(false) => return Ok(None),
        Some(true) => {}
    }
    let mut stmt =
        conn.prepare("SELECT kind, output, detail FROM checks WHERE job_id = ?1 ORDER BY n")?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut checks = Vec::new();
    for row in rows {
        let (kind, output, detail) = row?;
        let kind: CheckKind =
            kind.parse()
                .map_err(|e: ferry_review::checks::UnknownCheckKind| {
                    StoreError::Corrupt(e.to_string())
                })?;
        checks.push(Check {
            kind,
            output,
            detail,
        });
    }
    Ok(Some(checks))
}

pub(super) fn released_files_in(conn: &Connection, job_id: &str) -> Result<Vec<ReleasedFile>> {
    let mut stmt = conn.prepare(
        "SELECT name, sha256, withheld_reason FROM released_files WHERE job_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![job_id], |r| {
        Ok(ReleasedFile {
            name: r.get(0)?,
            sha256: r.get(1)?,
            withheld: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn canaries_in(conn: &Connection, asset: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT value FROM canaries WHERE asset = ?1 ORDER BY added_at, value")?;
    let rows = stmt.query_map(params![asset], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Store {
    /// The findings of the job's disclosure checks; `None` when they have not run (the job has not finished,
    /// or finished before this version of ferry ran checks).
    pub fn checks(&self, job_id: &str) -> Result<Option<Vec<Check>>> {
        checks_in(&self.conn, job_id)
    }

    /// What the job's release carries and withholds; empty before a release (or for a release made before
    /// releases recorded their files).
    pub fn released_files(&self, job_id: &str) -> Result<Vec<ReleasedFile>> {
        released_files_in(&self.conn, job_id)
    }

    /// The canaries registered for `asset`, oldest first.
    pub fn canaries(&self, asset: &str) -> Result<Vec<String>> {
        canaries_in(&self.conn, asset)
    }
}

impl Tx<'_> {
    /// Records the findings of the job's disclosure checks, replacing any earlier ones.
    pub fn store_checks(&self, job_id: &str, checks: &[Check]) -> Result<()> {
        let n = self.tx.execute(
            "UPDATE jobs SET checks_run = 1 WHERE job_id = ?1",
            params![job_id],
        )?;
        if n == 0 {
            return Err(StoreError::NoSuchJob(job_id.to_string()));
        }
        self.tx
            .execute("DELETE FROM checks WHERE job_id = ?1", params![job_id])?;
        for (n, c) in checks.iter().enumerate() {
            self.tx.execute(
                "INSERT INTO checks (job_id, n, kind, output, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job_id, n as i64, c.kind.as_str(), c.output, c.detail],
            )?;
        }
        Ok(())
    }

    /// The findings of the job's disclosure checks, as [`Store::checks`].
    pub fn checks(&self, job_id: &str) -> Result<Option<Vec<Check>>> {
        checks_in(&self.tx, job_id)
    }

    /// Records what the job's release carries (with the SHA-256 reviewed) and withholds, replacing any earlier
    /// record.
    pub fn record_release(&self, job_id: &str, files: &[ReleasedFile]) -> Result<()> {
        self.tx.execute(
            "DELETE FROM released_files WHERE job_id = ?1",
            params![job_id],
        )?;
        for f in files {
            self.tx.execute(
                "INSERT INTO released_files (job_id, name, sha256, withheld_reason) VALUES (?1, ?2, ?3, ?4)",
                params![job_id, f.name, f.sha256, f.withheld],
            )?;
        }
        Ok(())
    }

    /// What the job's release carries and withholds, as [`Store::released_files`].
    pub fn released_files(&self, job_id: &str) -> Result<Vec<ReleasedFile>> {
        released_files_in(&self.tx, job_id)
    }

    /// Adds an entry to the job's audit trail at the state it is in, changing nothing else: what the owner
    /// decided that is not a change of state (an override of blocking findings, with its reason).
    pub fn audit(&self, job_id: &str, actor: &str, reason: &str) -> Result<()> {
        let job = super::jobs::get_job_in(&self.tx, job_id)?
            .ok_or_else(|| StoreError::NoSuchJob(job_id.to_string()))?;
        super::event(&self.tx, job_id, actor, job.state, Some(reason))
    }

    /// Registers a canary for `asset` (a repeat changes nothing).
    pub fn add_canary(&self, asset: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO canaries (asset, value, added_at) VALUES (?1, ?2, ?3)",
            params![asset, value, now()],
        )?;
        Ok(())
    }

    /// The canaries registered for `asset`, as [`Store::canaries`].
    pub fn canaries(&self, asset: &str) -> Result<Vec<String>> {
        canaries_in(&self.tx, asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::JobRequest;
    use crate::Side;

    fn job(store: &mut Store) -> String {
        let request = JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: "t".into(),
            description: String::new(),
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec!["a.csv".into()],
            revises: None,
            resources: None,
        };
        let tx = store.begin(Side::High).unwrap();
        tx.submit(&request, "alice").unwrap();
        tx.commit().unwrap();
        request.job_id.to_string()
    }

    #[test]
    fn checks_not_run_are_none_and_stored_findings_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        let id = job(&mut store);
        assert_eq!(store.checks(&id).unwrap(), None);
        let found = vec![
            Check {
                kind: CheckKind::SmallCount,
                output: "outputs/t.csv".into(),
                detail: "row 2".into(),
            },
            Check {
                kind: CheckKind::PrivateEcho,
                output: "stdout".into(),
                detail: "line 1".into(),
            },
        ];
        let tx = store.begin(Side::High).unwrap();
        tx.store_checks(&id, &found).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.checks(&id).unwrap(), Some(found));
        let tx = store.begin(Side::High).unwrap();
        tx.store_checks(&id, &[]).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.checks(&id).unwrap(), Some(vec![]));
        assert!(matches!(
            store.checks("no-such-job"),
            Err(StoreError::NoSuchJob(_))
        ));
    }

    #[test]
    fn a_release_record_replaces_the_last_and_canaries_are_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        let id = job(&mut store);
        let file = |name: &str, withheld: Option<&str>| ReleasedFile {
            name: name.into(),
            sha256: Some("00".repeat(32)),
            withheld: withheld.map(str::to_string),
        };
        let tx = store.begin(Side::High).unwrap();
        tx.record_release(&id, &[file("stdout", None), file("outputs/x", Some("raw"))])
            .unwrap();
        tx.record_release(&id, &[file("stdout", None)]).unwrap();
        tx.add_canary("a.csv", "CANARY-one-1234").unwrap();
        tx.add_canary("a.csv", "CANARY-one-1234").unwrap();
        tx.add_canary("a.csv", "CANARY-two-5678").unwrap();
        tx.commit().unwrap();
        assert_eq!(
            store.released_files(&id).unwrap(),
            vec![file("stdout", None)]
        );
        assert_eq!(
            store.canaries("a.csv").unwrap(),
            vec!["CANARY-one-1234".to_string(), "CANARY-two-5678".to_string()]
        );
        assert!(store.canaries("b.csv").unwrap().is_empty());
    }
}
