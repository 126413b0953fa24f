//! The channels across the gap: what this side sent (with what it needs to send it again) and what the other
//! side acknowledged, and the ledger of bundles imported with what is still to be acknowledged.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

use super::{Result, Store, StoreError, Tx};
use crate::channel::{Channel, ContentHash, Seq};
use crate::now;

// How the channel types are stored: a channel by name, a sequence number as an INTEGER (refusing one past
// i64::MAX rather than wrapping), a content hash as hex TEXT. "No hash yet" is the empty text.

impl ToSql for Channel {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl ToSql for Seq {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let n = i64::try_from(self.get())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::from(n))
    }
}

impl FromSql for Seq {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Seq> {
        let n = i64::column_result(value)?;
        u64::try_from(n)
            .map(Seq)
            .map_err(|_| FromSqlError::OutOfRange(n))
    }
}

impl ToSql for ContentHash {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for ContentHash {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<ContentHash> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A hash column that holds the empty text when there is no hash yet.
fn optional_hash(text: String) -> Result<Option<ContentHash>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("channel hash: {e}")))
}

/// The stored form of an optional hash.
fn hash_text(hash: Option<ContentHash>) -> String {
    hash.map(|h| h.to_string()).unwrap_or_default()
}

/// How many imports wait for an acknowledgement (index `ledger_needs_ack`).
pub(super) const ACKS_PENDING_SQL: &str = "SELECT COUNT(*) FROM ledger WHERE needs_ack = 1";

/// A bundle recorded in the import ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Bundle id, hex.
    pub bundle_id: String,
    /// Sequence number.
    pub seq: Seq,
    /// Bundle hash, hex.
    pub bundle_hash: String,
    /// Content hash (what the next bundle's `prev_hash` names).
    pub content_hash: ContentHash,
    /// Unix seconds.
    pub imported_at: i64,
}

/// A bundle this side made, kept so that it can be rebuilt when the other side reports it lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    /// Sequence number.
    pub seq: Seq,
    /// Content hash.
    pub content_hash: ContentHash,
    /// The previous bundle's content hash; none for the first bundle of the channel.
    pub prev_hash: Option<ContentHash>,
    /// The postcard records entry.
    pub records: Vec<u8>,
    /// JSON list of the other entries and where to read them again.
    pub files: String,
    /// Where it was written.
    pub path: String,
}

impl Store {
    /// The highest sequence number imported on `channel` and its content hash (`Seq(0)` and none when nothing
    /// was).
    pub fn channel_in(&self, channel: Channel) -> Result<(Seq, Option<ContentHash>)> {
        channel_last(&self.conn, "channel_in", channel)
    }

    /// The last sequence number and content hash sent on `channel` (`Seq(0)` and none when nothing was).
    pub fn channel_out(&self, channel: Channel) -> Result<(Seq, Option<ContentHash>)> {
        channel_last(&self.conn, "channel_out", channel)
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
    pub fn imported_seq(&self, channel: Channel, seq: Seq) -> Result<Option<LedgerEntry>> {
        Ok(self
            .conn
            .query_row(
                "SELECT bundle_id, seq, bundle_hash, content_hash, imported_at FROM ledger \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq],
                ledger_row,
            )
            .optional()?)
    }

    /// Every sequence number imported on `channel`, ascending.
    pub fn imported_seqs(&self, channel: Channel) -> Result<Vec<Seq>> {
        seqs(
            &self.conn,
            "SELECT seq FROM ledger WHERE channel = ?1 ORDER BY seq",
            channel,
        )
    }

    /// Sequence numbers below the highest imported on `channel` that never arrived.
    pub fn missing_seqs(&self, channel: Channel) -> Result<Vec<Seq>> {
        Ok(gaps(&self.imported_seqs(channel)?))
    }

    /// Sequence numbers of `channel` (outgoing) that the other side acknowledged, ascending.
    pub fn acked_seqs(&self, channel: Channel) -> Result<Vec<Seq>> {
        seqs(
            &self.conn,
            "SELECT seq FROM peer_acks WHERE channel = ?1 ORDER BY seq",
            channel,
        )
    }

    /// Sequence numbers of `channel` (outgoing) that the other side reported missing.
    pub fn peer_missing(&self, channel: Channel) -> Result<Vec<Seq>> {
        seqs(
            &self.conn,
            "SELECT seq FROM peer_missing WHERE channel = ?1 ORDER BY seq",
            channel,
        )
    }

    /// Whether imports since the last export wait for an acknowledgement.
    pub fn acks_pending(&self) -> Result<bool> {
        let n: i64 = self.conn.query_row(ACKS_PENDING_SQL, [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// A bundle this side made.
    pub fn export_record(&self, channel: Channel, seq: Seq) -> Result<Option<ExportRecord>> {
        let row = self
            .conn
            .query_row(
                "SELECT seq, content_hash, prev_hash, records, files, path FROM exports \
                 WHERE channel = ?1 AND seq = ?2",
                params![channel, seq],
                |r| {
                    Ok((
                        ExportRecord {
                            seq: r.get(0)?,
                            content_hash: r.get(1)?,
                            prev_hash: None,
                            records: r.get(3)?,
                            files: r.get(4)?,
                            path: r.get(5)?,
                        },
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(mut export, prev)| {
            export.prev_hash = optional_hash(prev)?;
            Ok(export)
        })
        .transpose()
    }
}

impl Tx<'_> {
    /// Records a bundle made on `channel` (a resend keeps the channel's last sequence where it is).
    pub fn record_export(
        &self,
        channel: Channel,
        export: &ExportRecord,
        bundle_id: &str,
        bundle_hash: &str,
    ) -> Result<()> {
        let (last, _) = channel_last(&self.tx, "channel_out", channel)?;
        let resend = export.seq <= last;
        if !resend {
            self.tx.execute(
                "INSERT INTO channel_out (channel, last_seq, last_hash) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(channel) DO UPDATE SET last_seq = ?2, last_hash = ?3",
                params![channel, export.seq, export.content_hash],
            )?;
        }
        self.tx.execute(
            "INSERT INTO exports (channel, seq, bundle_id, bundle_hash, content_hash, prev_hash, records, files, path, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT(channel, seq) DO UPDATE SET bundle_id = ?3, bundle_hash = ?4, path = ?9, resent = resent + 1 \
             WHERE ?11",
            params![
                channel,
                export.seq,
                bundle_id,
                bundle_hash,
                export.content_hash,
                hash_text(export.prev_hash),
                export.records,
                export.files,
                export.path,
                now(),
                resend
            ],
        )?;
        Ok(())
    }

    /// Where the recorded export `seq` on `channel` was written, inside the transaction (for recovering an export
    /// that committed but stopped before its file was renamed into place).
    pub fn export_path(&self, channel: Channel, seq: Seq) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_row(
                "SELECT path FROM exports WHERE channel = ?1 AND seq = ?2",
                params![channel, seq],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The last sequence number and content hash sent on `channel`, inside the transaction (an export reads it
    /// here, under the write lock, so that two exports never take the same number).
    pub fn channel_out(&self, channel: Channel) -> Result<(Seq, Option<ContentHash>)> {
        channel_last(&self.tx, "channel_out", channel)
    }

    /// Records an imported bundle in the ledger and advances the channel. `needs_ack` is false for bundles that
    /// carried nothing but acknowledgements, so that two sides never acknowledge each other's acknowledgements.
    pub fn record_import(
        &self,
        channel: Channel,
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
                entry.seq,
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
            params![channel, entry.seq, entry.content_hash],
        )?;
        Ok(())
    }

    /// Applies the other side's acknowledgement of `channel` (outgoing).
    pub fn apply_ack(
        &self,
        channel: Channel,
        received: &[(Seq, Seq)],
        missing: &[Seq],
    ) -> Result<()> {
        let at = now();
        for &(start, end) in received {
            for seq in start.get()..=end.get() {
                self.tx.execute(
                    "INSERT OR IGNORE INTO peer_acks (channel, seq, acked_at) VALUES (?1, ?2, ?3)",
                    params![channel, Seq(seq), at],
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
                params![channel, seq],
            )?;
        }
        self.tx.execute(
            "DELETE FROM peer_missing WHERE channel = ?1 AND seq IN (SELECT seq FROM peer_acks WHERE channel = ?1)",
            params![channel],
        )?;
        Ok(())
    }
}

/// The sequence numbers `sql` selects for `channel` (its `?1`).
pub(super) fn seqs(conn: &Connection, sql: &str, channel: Channel) -> Result<Vec<Seq>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params![channel], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The numbers below the largest of `seen` (sorted) that it lacks.
pub(super) fn gaps(seen: &[Seq]) -> Vec<Seq> {
    let set: std::collections::BTreeSet<Seq> = seen.iter().copied().collect();
    let max = seen.last().map_or(0, |s| s.get());
    (1..max).map(Seq).filter(|s| !set.contains(s)).collect()
}

/// The last sequence number and hash recorded for `channel` in `table` (`channel_in` or `channel_out`).
fn channel_last(
    conn: &Connection,
    table: &str,
    channel: Channel,
) -> Result<(Seq, Option<ContentHash>)> {
    let row = conn
        .query_row(
            &format!("SELECT last_seq, last_hash FROM {table} WHERE channel = ?1"),
            params![channel],
            |r| Ok((r.get(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    match row {
        Some((seq, hash)) => Ok((seq, optional_hash(hash)?)),
        None => Ok((Seq(0), None)),
    }
}

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        bundle_id: r.get(0)?,
        seq: r.get(1)?,
        bundle_hash: r.get(2)?,
        content_hash: r.get(3)?,
        imported_at: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    fn export(seq: u64, prev_hash: Option<ContentHash>) -> ExportRecord {
        ExportRecord {
            seq: Seq(seq),
            content_hash: ContentHash::sha256(&seq.to_le_bytes()),
            prev_hash,
            records: vec![seq as u8],
            files: "[]".into(),
            path: format!("/outbox/{seq}.bundle"),
        }
    }

    fn ledger_entry(seq: u64) -> LedgerEntry {
        LedgerEntry {
            bundle_id: format!("{seq:032x}"),
            seq: Seq(seq),
            bundle_hash: "ab".repeat(32),
            content_hash: ContentHash::sha256(&[seq as u8]),
            imported_at: 1,
        }
    }

    #[test]
    fn exports_keep_their_chain_and_a_resend_keeps_the_channel_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let out = Side::Low.outgoing();
        assert_eq!(store.channel_out(out).unwrap(), (Seq(0), None));
        let first = export(1, None);
        let second = export(2, Some(first.content_hash));
        let tx = store.begin(Side::Low).unwrap();
        tx.record_export(out, &first, "01", "aa").unwrap();
        tx.record_export(out, &second, "02", "bb").unwrap();
        tx.record_export(out, &first, "03", "cc").unwrap();
        tx.commit().unwrap();
        assert_eq!(
            store.channel_out(out).unwrap(),
            (Seq(2), Some(second.content_hash))
        );
        assert_eq!(
            store.export_record(out, Seq(1)).unwrap(),
            Some(first.clone())
        );
        assert_eq!(store.export_record(out, Seq(2)).unwrap(), Some(second));
        assert_eq!(
            store
                .export_record(out.sender().incoming(), Seq(1))
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_checkpoint_moves_the_log_into_the_database_file_and_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let out = Side::Low.outgoing();
        let tx = store.begin(Side::Low).unwrap();
        tx.record_export(out, &export(1, None), "01", "aa").unwrap();
        tx.commit().unwrap();
        let wal = dir.path().join("s.db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the commit is in the log"
        );
        store.checkpoint().unwrap();
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            0,
            "the log is emptied"
        );
        // Still there, read from the database file itself.
        assert_eq!(
            Store::open(&path).unwrap().channel_out(out).unwrap().0,
            Seq(1)
        );
        store.checkpoint().unwrap();
    }

    #[test]
    fn imports_are_acknowledged_once_with_their_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let inc = Side::Low.incoming();
        let tx = store.begin(Side::Low).unwrap();
        tx.record_import(inc, &ledger_entry(3), "3.bundle", true)
            .unwrap();
        tx.record_import(inc, &ledger_entry(1), "1.bundle", true)
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(
            store.channel_in(inc).unwrap(),
            (Seq(3), Some(ledger_entry(3).content_hash)),
            "a late bundle does not move the channel back"
        );
        assert_eq!(store.missing_seqs(inc).unwrap(), vec![Seq(2)]);
        assert_eq!(
            store.imported_seq(inc, Seq(1)).unwrap(),
            Some(ledger_entry(1))
        );
        let tx = store.begin(Side::Low).unwrap();
        let ack = tx
            .ack_to_send(inc)
            .unwrap()
            .expect("an acknowledgement is due");
        assert_eq!(
            (ack.seen.clone(), ack.missing.clone()),
            (vec![Seq(1), Seq(3)], vec![Seq(2)])
        );
        tx.acked(&ack).unwrap();
        assert!(tx.ack_to_send(inc).unwrap().is_none());
        tx.commit().unwrap();
        assert!(!store.acks_pending().unwrap());
    }

    #[test]
    fn the_other_sides_acknowledgement_settles_what_it_received() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let out = Side::High.outgoing();
        let tx = store.begin(Side::High).unwrap();
        tx.apply_ack(out, &[(Seq(1), Seq(2))], &[Seq(3), Seq(4)])
            .unwrap();
        tx.apply_ack(out, &[(Seq(4), Seq(4))], &[Seq(3), Seq(4)])
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(store.acked_seqs(out).unwrap(), vec![Seq(1), Seq(2), Seq(4)]);
        assert_eq!(store.peer_missing(out).unwrap(), vec![Seq(3)]);
    }

    #[test]
    fn a_sequence_number_past_what_sqlite_holds_is_refused_not_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let inc = Side::High.incoming();
        let tx = store.begin(Side::High).unwrap();
        let huge = LedgerEntry {
            seq: Seq(u64::MAX),
            ..ledger_entry(1)
        };
        assert!(tx.record_import(inc, &huge, "x.bundle", true).is_err());
        tx.commit().unwrap();
        assert_eq!(store.imported_seqs(inc).unwrap(), Vec::<Seq>::new());
        assert_eq!(store.channel_in(inc).unwrap(), (Seq(0), None));
    }
}
