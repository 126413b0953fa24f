//! What run receipts are made of: asset versions and run facts (high side), and the signed receipts received
//! (low side).

use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store, StoreError, Tx};
use crate::receipt::{RunFacts, SignedReceipt};

pub(super) fn receipt_in(conn: &Connection, job_id: &str) -> Result<Option<SignedReceipt>> {
    Ok(conn
        .query_row(
            "SELECT receipt, signature, public_key FROM receipts WHERE job_id = ?1",
            params![job_id],
            |r| {
                Ok(SignedReceipt {
                    receipt: r.get(0)?,
                    signature: r.get(1)?,
                    public_key: r.get(2)?,
                })
            },
        )
        .optional()?)
}

fn facts_in(conn: &Connection, job_id: &str) -> Result<Option<RunFacts>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT facts FROM run_facts WHERE job_id = ?1",
            params![job_id],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("run facts of job {job_id}: {e}")))
    })
    .transpose()
}

fn version_in(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT version FROM asset_versions WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?)
}

impl Store {
    /// The version (private content hash) an asset was registered with (high side).
    pub fn asset_version(&self, name: &str) -> Result<Option<String>> {
        version_in(&self.conn, name)
    }

    /// The facts of a job's last run (high side).
    pub fn run_facts(&self, job_id: &str) -> Result<Option<RunFacts>> {
        facts_in(&self.conn, job_id)
    }

    /// The signed receipt received with a job's result (low side).
    pub fn receipt(&self, job_id: &str) -> Result<Option<SignedReceipt>> {
        receipt_in(&self.conn, job_id)
    }
}

impl Tx<'_> {
    /// Records the version of an asset's private content (high side).
    pub fn set_asset_version(&self, name: &str, version: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO asset_versions (name, version) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET version = ?2",
            params![name, version],
        )?;
        Ok(())
    }

    /// Records the facts of a job's run, replacing an earlier attempt's (high side).
    pub fn set_run_facts(&self, job_id: &str, facts: &RunFacts) -> Result<()> {
        self.tx.execute(
            "INSERT INTO run_facts (job_id, facts) VALUES (?1, ?2) \
             ON CONFLICT(job_id) DO UPDATE SET facts = ?2",
            params![job_id, serde_json::to_string(facts).expect("serializes")],
        )?;
        Ok(())
    }

    /// The facts of a job's last run (high side).
    pub fn run_facts(&self, job_id: &str) -> Result<Option<RunFacts>> {
        facts_in(&self.tx, job_id)
    }

    /// Keeps a verified receipt for a job's result (low side); a later one replaces it (a retried job's).
    pub fn put_receipt(&self, job_id: &str, receipt: &SignedReceipt) -> Result<()> {
        self.tx.execute(
            "INSERT INTO receipts (job_id, receipt, signature, public_key) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(job_id) DO UPDATE SET receipt = ?2, signature = ?3, public_key = ?4",
            params![
                job_id,
                receipt.receipt,
                receipt.signature,
                receipt.public_key
            ],
        )?;
        Ok(())
    }
}
