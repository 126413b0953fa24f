//! The audit log: everything that happens on a side, in a hash chain kept in the state store.
//!
//! Each entry's hash is SHA-256 over `"ferry audit v1\0"` and the postcard encoding of (previous hash, seq, at,
//! actor, kind, job id, detail, reference); the first entry's previous hash is 64 zeros. Every row of the audit
//! trail (`events`) and every signed decision (`decisions`) has an entry naming it in `reference`
//! (`event:<id>`, `decision:<id>`), so [`Store::verify_audit`] finds an edit to either as well as to the chain.
//! The head of the chain crosses in every bundle; the receiver keeps the other side's heads
//! ([`Tx::record_peer_head`]) and [`check_heads`] holds an exported peer log against them.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Result, Store, Tx};
use crate::decision::SignedDecision;

/// The previous hash of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry of the audit log, as `ferry audit export --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What: `state:<state>`, `decision:<kind>`, `export`, `import`, `reviewer-add`, ...
    pub kind: String,
    /// The job, when it concerns one.
    pub job_id: Option<String>,
    /// The reason, or what exactly.
    pub detail: String,
    /// The row it records: `event:<id>`, `decision:<id>`.
    pub reference: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry should have.
    pub fn expected_hash(&self) -> String {
        let fields = (
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.kind,
            &self.job_id,
            &self.detail,
            &self.reference,
        );
        let mut h = Sha256::new();
        h.update(b"ferry audit v1\0");
        h.update(postcard::to_allocvec(&fields).expect("audit fields serialize"));
        hex::encode(h.finalize())
    }
}

fn head_in(conn: &Connection) -> Result<Option<(u64, String)>> {
    Ok(conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?)
}

/// Appends an entry to the chain.
pub(super) fn append(
    conn: &Connection,
    at: i64,
    actor: &str,
    kind: &str,
    job_id: Option<&str>,
    detail: &str,
    reference: Option<&str>,
) -> Result<()> {
    let (seq, prev_hash) = match head_in(conn)? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = AuditEntry {
        seq,
        at,
        actor: actor.to_string(),
        kind: kind.to_string(),
        job_id: job_id.map(str::to_string),
        detail: detail.to_string(),
        reference: reference.map(str::to_string),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry.expected_hash();
    conn.execute(
        "INSERT INTO audit (seq, at, actor, kind, job_id, detail, ref, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            entry.seq as i64,
            entry.at,
            entry.actor,
            entry.kind,
            entry.job_id,
            entry.detail,
            entry.reference,
            entry.prev_hash,
            entry.hash
        ],
    )?;
    Ok(())
}

fn entries_in(conn: &Connection, since: Option<i64>) -> Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare(
        "SELECT seq, at, actor, kind, job_id, detail, ref, prev_hash, hash FROM audit \
         WHERE at >= ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![since.unwrap_or(i64::MIN)], |r| {
        Ok(AuditEntry {
            seq: r.get::<_, i64>(0)? as u64,
            at: r.get(1)?,
            actor: r.get(2)?,
            kind: r.get(3)?,
            job_id: r.get(4)?,
            detail: r.get(5)?,
            reference: r.get(6)?,
            prev_hash: r.get(7)?,
            hash: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What is wrong with a chain of entries: each entry must follow the one before (from `seq` 1, or from the first
/// one given when `from_start` is false) and carry its own hash.
pub fn verify_chain(entries: &[AuditEntry], from_start: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev: Option<&AuditEntry> = None;
    for e in entries {
        match prev {
            None if from_start && e.seq != 1 => problems.push(format!(
                "audit entry 1 is missing (the log starts at {})",
                e.seq
            )),
            None if from_start && e.prev_hash != GENESIS => problems.push(
                "audit entry 1 does not start the chain (its previous hash is not zeros)".into(),
            ),
            Some(p) if e.seq != p.seq + 1 => problems.push(format!(
                "audit entries {} to {} are missing",
                p.seq + 1,
                e.seq - 1
            )),
            Some(p) if e.prev_hash != p.hash => problems.push(format!(
                "audit entry {} does not follow entry {} (its previous hash differs)",
                e.seq, p.seq
            )),
            _ => {}
        }
        if e.hash != e.expected_hash() {
            problems.push(format!(
                "audit entry {} was changed: its contents do not match its hash",
                e.seq
            ));
        }
        prev = Some(e);
    }
    problems
}

/// What is wrong with a peer's exported log against the heads its bundles carried: every head must be in the
/// log, with the same hash.
pub fn check_heads(entries: &[AuditEntry], heads: &[(u64, String)]) -> Vec<String> {
    let mut problems = verify_chain(entries, true);
    for (seq, hash) in heads {
        match entries.iter().find(|e| e.seq == *seq) {
            None => problems.push(format!(
                "the peer's log lacks entry {seq}, whose hash one of its bundles carried: it was cut"
            )),
            Some(e) if &e.hash != hash => problems.push(format!(
                "the peer's log was rewritten: entry {seq} has hash {}, but a bundle carried {hash}",
                e.hash
            )),
            Some(_) => {}
        }
    }
    problems
}

impl Store {
    /// The audit log, oldest first; from `since` (unix seconds) when given.
    pub fn audit_entries(&self, since: Option<i64>) -> Result<Vec<AuditEntry>> {
        entries_in(&self.conn, since)
    }

    /// The chain's last entry: its seq and hash.
    pub fn audit_head(&self) -> Result<Option<(u64, String)>> {
        head_in(&self.conn)
    }

    /// The other side's chain heads, as its bundles carried them, by seq.
    pub fn peer_audit_heads(&self) -> Result<Vec<(u64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, hash FROM peer_audit_heads ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Checks the chain, and that every row of the audit trail and every decision is in it as it is now; returns
    /// each problem found, naming the row.
    pub fn verify_audit(&self) -> Result<Vec<String>> {
        let entries = entries_in(&self.conn, None)?;
        let mut problems = verify_chain(&entries, true);
        let by_ref: std::collections::HashMap<&str, &AuditEntry> = entries
            .iter()
            .filter_map(|e| e.reference.as_deref().map(|r| (r, e)))
            .collect();
        let mut stmt = self
            .conn
            .prepare("SELECT id, job_id, at, actor, state, reason FROM events ORDER BY id")?;
        let events = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut seen = std::collections::HashSet::new();
        for row in events {
            let (id, job_id, at, actor, state, reason) = row?;
            let reference = format!("event:{id}");
            match by_ref.get(reference.as_str()) {
                None => problems.push(format!(
                    "audit trail row {id} (job {job_id}, {state}) is not in the audit log: it was added behind it"
                )),
                Some(e) => {
                    let same = e.at == at
                        && e.actor == actor
                        && e.kind == format!("state:{state}")
                        && e.job_id.as_deref() == Some(job_id.as_str())
                        && e.detail == reason.clone().unwrap_or_default();
                    if !same {
                        problems.push(format!(
                            "audit trail row {id} (job {job_id}) was edited: it differs from audit entry {}",
                            e.seq
                        ));
                    }
                }
            }
            seen.insert(reference);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, job_id, body FROM decisions ORDER BY id")?;
        let decisions = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        for row in decisions {
            let (id, job_id, body) = row?;
            let reference = format!("decision:{id}");
            let digest = SignedDecision::from_bytes(&body).map(|d| d.digest());
            match (by_ref.get(reference.as_str()), digest) {
                (None, _) => problems.push(format!(
                    "decision {id} (job {job_id}) is not in the audit log: it was added behind it"
                )),
                (Some(e), Ok(d)) if e.detail == d => {}
                (Some(e), _) => problems.push(format!(
                    "decision {id} (job {job_id}) was edited: it differs from audit entry {}",
                    e.seq
                )),
            }
            seen.insert(reference);
        }
        for e in &entries {
            if let Some(r) = &e.reference {
                if !seen.contains(r) {
                    problems.push(format!(
                        "audit entry {} records {r}, which is gone from the state store: it was deleted",
                        e.seq
                    ));
                }
            }
        }
        Ok(problems)
    }
}

impl Tx<'_> {
    /// Appends an entry that no other row stands for (an export, an import, a reviewer change).
    pub fn audit_append(
        &self,
        actor: &str,
        kind: &str,
        job_id: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        append(&self.tx, crate::now(), actor, kind, job_id, detail, None)
    }

    /// The chain's last entry, inside the transaction (what an export carries).
    pub fn audit_head(&self) -> Result<Option<(u64, String)>> {
        head_in(&self.tx)
    }

    /// Records a head of the other side's chain, as a bundle carried it (a repeat changes nothing).
    pub fn record_peer_head(&self, seq: u64, hash: &str) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO peer_audit_heads (seq, hash, received_at) VALUES (?1, ?2, ?3)",
            params![seq as i64, hash, crate::now()],
        )?;
        Ok(())
    }
}
