//! What an export carries, read without marking it: an export collects in a read transaction ([`Store::read`]),
//! writes its bundle holding no lock on the store, and only then marks what the bundle carried, in the short
//! write transaction that records the export. Each `*_to_send` read has its mark, which marks exactly what was
//! read: whatever changed in between stays pending for the next export.

use rusqlite::params;

use super::catalog::{assets_in, AssetTransferRow};
use super::channel::{gaps, seqs};
use super::jobs::{cancels_pending, finish_job, job_from_row, unreported, JobRow, JOB_COLUMNS};
use super::{meta_get, meta_set, Result, Tx};
use crate::channel::{Channel, Seq};
use crate::job::JobState;

/// An acknowledgement to send: every sequence number imported on the channel, the gaps below the highest, and
/// the imports (by bundle id) it acknowledges for the first time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAck {
    /// Every sequence number imported, ascending.
    pub seen: Vec<Seq>,
    /// The sequence numbers below the highest that never arrived.
    pub missing: Vec<Seq>,
    /// The imports not acknowledged before.
    pub bundle_ids: Vec<String>,
}

impl Tx<'_> {
    /// Low side: the jobs whose cancellation is still to be carried to the high side, unmarked.
    pub fn cancels_to_send(&self) -> Result<Vec<String>> {
        let mut stmt = self.tx.prepare(&format!(
            "SELECT job_id FROM jobs WHERE {} ORDER BY rowid",
            cancels_pending()
        ))?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// Low side: marks these cancellations carried.
    pub fn cancels_sent(&self, job_ids: &[String]) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare("UPDATE jobs SET cancel_sent = 1 WHERE job_id = ?1")?;
        for id in job_ids {
            stmt.execute(params![id])?;
        }
        Ok(())
    }

    /// High side: the jobs whose state changed since the last report low-ward, oldest change first, unmarked.
    pub fn status_changes(&self) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY updated_at",
            unreported()
        );
        let mut stmt = self.tx.prepare(&sql)?;
        let rows = stmt.query_map([], job_from_row)?;
        rows.map(|r| finish_job(r?)).collect()
    }

    /// High side: marks each job reported in the state the report carried. A job that has moved on since stays
    /// unreported, so its new state goes in the next bundle.
    pub fn reported(&self, jobs: &[(String, JobState)]) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare("UPDATE jobs SET reported_state = ?2 WHERE job_id = ?1")?;
        for (id, state) in jobs {
            stmt.execute(params![id, state.as_str()])?;
        }
        Ok(())
    }

    /// High side: the catalog's version and assets if it changed since the last export, unmarked.
    pub fn catalog_to_send(&self) -> Result<Option<(i64, Vec<AssetTransferRow>)>> {
        let version = meta_get(&self.tx, "catalog_version")?;
        if version == meta_get(&self.tx, "catalog_sent_version")? {
            return Ok(None);
        }
        Ok(Some((version, assets_in(&self.tx)?)))
    }

    /// High side: marks catalog `version` sent (never moving the mark back).
    pub fn catalog_sent(&self, version: i64) -> Result<()> {
        let sent = meta_get(&self.tx, "catalog_sent_version")?;
        meta_set(&self.tx, "catalog_sent_version", sent.max(version))
    }

    /// The acknowledgement to send for `channel` (incoming), unmarked; `None` when nothing was imported since the
    /// last one.
    pub fn ack_to_send(&self, channel: Channel) -> Result<Option<PendingAck>> {
        let mut stmt = self
            .tx
            .prepare("SELECT bundle_id FROM ledger WHERE needs_ack = 1 ORDER BY seq")?;
        let bundle_ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if bundle_ids.is_empty() {
            return Ok(None);
        }
        let seen = seqs(
            &self.tx,
            "SELECT seq FROM ledger WHERE channel = ?1 ORDER BY seq",
            channel,
        )?;
        let missing = gaps(&seen);
        Ok(Some(PendingAck {
            seen,
            missing,
            bundle_ids,
        }))
    }

    /// Marks the imports an acknowledgement carried acknowledged.
    pub fn acked(&self, ack: &PendingAck) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare("UPDATE ledger SET needs_ack = 0 WHERE bundle_id = ?1")?;
        for id in &ack.bundle_ids {
            stmt.execute(params![id])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Side;
    use crate::job::JobState;
    use crate::records::JobTransfer;
    use crate::store::Store;

    fn high_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    fn imported(store: &mut Store, job_id: &str) {
        let tx = store.begin(Side::High).unwrap();
        tx.import_job(&JobTransfer {
            job_id: job_id.into(),
            researcher: "alice".into(),
            title: "t".into(),
            description: String::new(),
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec!["data.csv".into()],
            approved_by: "owner:o".into(),
            approved_at: 1,
            approvals: Vec::new(),
            revises: None,
            resources: None,
        })
        .unwrap();
        tx.commit().unwrap();
    }

    fn moved(store: &mut Store, job_id: &str, from: JobState, to: JobState) {
        let tx = store.begin(Side::High).unwrap();
        tx.transition(job_id, &[from], to, "worker", None).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_job_that_moves_on_after_its_report_was_read_is_reported_again() {
        let (_dir, mut store) = high_store();
        imported(&mut store, "j1");
        moved(&mut store, "j1", JobState::Exported, JobState::Running);
        let read = store.read(Side::High).unwrap();
        let changes = read.status_changes().unwrap();
        drop(read);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].state, JobState::Running);
        // The job finishes while the bundle carrying "running" is written.
        moved(&mut store, "j1", JobState::Running, JobState::Finished);
        let tx = store.begin(Side::High).unwrap();
        tx.reported(&[("j1".into(), JobState::Running)]).unwrap();
        tx.commit().unwrap();
        let read = store.read(Side::High).unwrap();
        let again = read.status_changes().unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].state, JobState::Finished);
    }

    #[test]
    fn reading_what_to_send_marks_nothing_and_marking_marks_only_what_was_read() {
        let (_dir, mut store) = high_store();
        imported(&mut store, "j1");
        moved(&mut store, "j1", JobState::Exported, JobState::Running);
        for _ in 0..2 {
            let read = store.read(Side::High).unwrap();
            assert_eq!(read.status_changes().unwrap().len(), 1);
            drop(read);
            assert_eq!(store.pending_reports().unwrap(), 1);
        }
        imported(&mut store, "j2");
        moved(&mut store, "j2", JobState::Exported, JobState::Running);
        let tx = store.begin(Side::High).unwrap();
        tx.reported(&[("j1".into(), JobState::Running)]).unwrap();
        tx.commit().unwrap();
        let read = store.read(Side::High).unwrap();
        let left: Vec<String> = read
            .status_changes()
            .unwrap()
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        assert_eq!(left, vec!["j2".to_string()]);
    }
}
