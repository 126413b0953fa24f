//! The channels across the gap: what this side sent (with what it needs to send it again) and what the other
//! side acknowledged, and the ledger of bundles imported with what is still to be acknowledged.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store, Tx};
use crate::now;

/// How many imports wait for an acknowledgement (index `ledger_needs_ack`).
pub(super) const ACKS_PENDING_SQL: &str = "SELECT COUNT(*) FROM ledger WHERE needs_ack = 1";

/// A bundle recorded in the import ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Bundle id, hex.
    pub bundle_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Bundle hash, hex.
    pub bundle_hash: String,
    /// Content hash (what the next bundle's `prev_hash` names), hex.
    pub content_hash: String,
    /// Unix seconds.
    pub imported_at: i64,
}

/// A bundle this side made, kept so that it can be rebuilt when the other side reports it lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    /// Sequence number.
    pub seq: u64,
    /// Content hash, hex.
    pub content_hash: String,
    /// The previous bundle's content hash, hex (empty for the first).
    pub prev_hash: String,
    /// The postcard records entry.
    pub records: Vec<u8>,
    /// JSON list of the other entries and where to read them again.
    pub files: String,
    /// Where it was written.
    pub path: String,
}

impl Store {
    /// The last sequence number and bundle hash received on `channel` (0 and empty when none).
    pub fn channel_in(&self, channel: &str) -> Result<(u64, String)> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seq, last_hash FROM channel_in WHERE channel = ?1",
                params![channel],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, String::new())))
    }

    /// The last sequence number and content hash sent on `channel` (0 and empty when none).
    pub fn channel_out(&self, channel: &str) -> Result<(u64, String)> {
        channel_out_in(&self.conn, channel)
    }

    /// Whether `bundle_id` (hex) was imported already.
    pub fn imported(&self, bundle_id: &str) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_id, seq, bundle_hash, content_hash, imported_at FROM ledger WHERE bundle_id = ?1",
                params![bundle_id],
                ledger_row,
            )
            .optional()?)
    }

    /// The bundle imported on `channel` with sequence `seq`, if any.
    pub fn imported_seq(&self, channel: &str, seq: u64) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_id, seq, bundle_hash, content_hash, imported_at FROM ledger \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq as i64],
                ledger_row,
            )
            .optional()?)
    }

    /// Every sequence number imported on `channel`, ascending.
    pub fn imported_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        imported_seqs_in(&self.conn, channel)
    }

    /// Sequence numbers below the highest imported on `channel` that never arrived.
    pub fn missing_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        Ok(gaps(&self.imported_seqs(channel)?))
    }

    /// Sequence numbers of `channel` (outgoing) that the other side acknowledged, ascending.
    pub fn acked_seqs(&self, channel: &str) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM peer_acks WHERE channel = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|s| s as u64))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Sequence numbers of `channel` (outgoing) that the other side reported missing.
    pub fn peer_missing(&self, channel: &str) -> Result<Vec<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM peer_missing WHERE channel = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|s| s as u64))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Whether imports since the last export wait for an acknowledgement.
    pub fn acks_pending(&self) -> Result<bool> {
        let n: i64 = self.conn.query_row(ACKS_PENDING_SQL, [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// A bundle this side made.
    pub fn export_record(&self, channel: &str, seq: u64) -> Result<Option<ExportRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, content_hash, prev_hash, records, files, path FROM exports \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq as i64],
                |r| {
                    Ok(ExportRecord {
                        seq: r.get::<_, i64>(0)? as u64,
                        content_hash: r.get(1)?,
                        prev_hash: r.get(2)?,
                        records: r.get(3)?,
                        files: r.get(4)?,
                        path: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }
}

impl Tx<'_> {
    /// Records a bundle made on `channel` (a resend keeps the channel's last sequence where it is).
    pub fn record_export(
        &self,
        channel: &str,
        export: &ExportRecord,
        bundle_id: &str,
        bundle_hash: &str,
    ) -> Result<()> {
        let (last, _) = channel_out_in(&self.tx, channel)?;
        let resend = export.seq <= last;
        if !resend {
            self.tx.execute(
                "INSERT INTO channel_out (channel, last_seq, last_hash) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(channel) DO UPDATE SET last_seq = ?2, last_hash = ?3",
                params![channel, export.seq as i64, export.content_hash],
            )?;
        }
        self.tx.execute(
            "INSERT INTO exports (channel, seq, bundle_id, bundle_hash, content_hash, prev_hash, records, files, path, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT(channel, seq) DO UPDATE SET bundle_id = ?3, bundle_hash = ?4, path = ?9, resent = resent + 1 \
             WHERE ?11",
            params![
                channel,
                export.seq as i64,
                bundle_id,
                bundle_hash,
                export.content_hash,
                export.prev_hash,
                export.records,
                export.files,
                export.path,
                now(),
                resend
            ],
        )?;
        Ok(())
    }

    /// The last sequence number and content hash sent on `channel`, inside the transaction (an export reads it
    /// here, under the write lock, so that two exports never take the same number).
    pub fn channel_out(&self, channel: &str) -> Result<(u64, String)> {
        channel_out_in(&self.tx, channel)
    }

    /// Records an imported bundle in the ledger and advances the channel. `needs_ack` is false for bundles that
    /// carried nothing but acknowledgements, so that two sides never acknowledge each other's acknowledgements.
    pub fn record_import(
        &self,
        channel: &str,
        entry: &LedgerEntry,
        file_name: &str,
        needs_ack: bool,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO ledger (bundle_id, channel, seq, bundle_hash, content_hash, file_name, imported_at, needs_ack) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                entry.bundle_id,
                channel,
                entry.seq as i64,
                entry.bundle_hash,
                entry.content_hash,
                file_name,
                entry.imported_at,
                needs_ack
            ],
        )?;
        self.tx.execute(
            "INSERT INTO channel_in (channel, last_seq, last_hash) VALUES (?1, ?2, ?3) \
             ON CONFLICT(channel) DO UPDATE SET last_seq = MAX(last_seq, ?2), \
             last_hash = CASE WHEN ?2 >= last_seq THEN ?3 ELSE last_hash END",
            params![channel, entry.seq as i64, entry.content_hash],
        )?;
        Ok(())
    }

    /// The acknowledgement to send for `channel` (incoming), marking imports acknowledged; None when nothing new
    /// was imported since the last one.
    pub fn take_ack(&self, channel: &str) -> Result<Option<(Vec<u64>, Vec<u64>)>> {
        let pending: i64 = self.tx.query_row(ACKS_PENDING_SQL, [], |r| r.get(0))?;
        if pending == 0 {
            return Ok(None);
        }
        self.tx
            .execute("UPDATE ledger SET needs_ack = 0 WHERE needs_ack = 1", [])?;
        let seen = imported_seqs_in(&self.tx, channel)?;
        let missing = gaps(&seen);
        Ok(Some((seen, missing)))
    }

    /// Applies the other side's acknowledgement of `channel` (outgoing).
    pub fn apply_ack(&self, channel: &str, received: &[(u64, u64)], missing: &[u64]) -> Result<()> {
        let at = now();
        for &(start, end) in received {
            for seq in start..=end {
                self.tx.execute(
                    "INSERT OR IGNORE INTO peer_acks (channel, seq, acked_at) VALUES (?1, ?2, ?3)",
                    params![channel, seq as i64, at],
                )?;
            }
        }
        self.tx.execute(
            "DELETE FROM peer_missing WHERE channel = ?1",
            params![channel],
        )?;
        for &seq in missing {
            self.tx.execute(
                "INSERT OR IGNORE INTO peer_missing (channel, seq) VALUES (?1, ?2)",
                params![channel, seq as i64],
            )?;
        }
        self.tx.execute(
            "DELETE FROM peer_missing WHERE channel = ?1 AND seq IN (SELECT seq FROM peer_acks WHERE channel = ?1)",
            params![channel],
        )?;
        Ok(())
    }
}

fn imported_seqs_in(conn: &Connection, channel: &str) -> Result<Vec<u64>> {
    let mut stmt = conn.prepare("SELECT seq FROM ledger WHERE channel = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![channel], |r| r.get::<_, i64>(0))?;
    Ok(rows
        .map(|r| r.map(|s| s as u64))
        .collect::<rusqlite::Result<_>>()?)
}

/// The numbers below the largest of `seen` (sorted) that it lacks.
fn gaps(seen: &[u64]) -> Vec<u64> {
    let set: std::collections::BTreeSet<u64> = seen.iter().copied().collect();
    let max = seen.last().copied().unwrap_or(0);
    (1..max).filter(|s| !set.contains(s)).collect()
}

fn channel_out_in(conn: &Connection, channel: &str) -> Result<(u64, String)> {
    Ok(conn
        .query_row(
            "SELECT last_seq, last_hash FROM channel_out WHERE channel = ?1",
            params![channel],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, String::new())))
}

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        bundle_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        bundle_hash: r.get(2)?,
        content_hash: r.get(3)?,
        imported_at: r.get(4)?,
    })
}
