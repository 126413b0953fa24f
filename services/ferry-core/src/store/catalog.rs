//! The asset catalog: names, descriptions and mocks (both sides), private files (high side), and its versions.

use rusqlite::{params, Connection, OptionalExtension};

use super::{meta_get, meta_set, Result, Store, Tx};
use crate::records::AssetTransfer;

/// A catalog entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetRow {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Private file (high side only).
    pub private_path: Option<String>,
    /// Mock file on this side.
    pub mock_path: String,
    /// Mock size.
    pub mock_size: u64,
    /// Mock SHA-256, hex.
    pub mock_sha256: String,
    /// Unix seconds.
    pub updated_at: i64,
    /// The mock is a directory, kept and sent as its deterministic tar archive (`ferry_transfer::tree`).
    pub mock_tree: bool,
}

/// A catalog row, as read for export.
pub type AssetTransferRow = AssetRow;

pub(super) fn assets_in(conn: &Connection) -> Result<Vec<AssetRow>> {
    let mut stmt = conn.prepare(
        "SELECT name, description, private_path, mock_path, mock_size, mock_sha256, updated_at, mock_tree \
         FROM assets ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AssetRow {
            name: r.get(0)?,
            description: r.get(1)?,
            private_path: r.get(2)?,
            mock_path: r.get(3)?,
            mock_size: r.get::<_, i64>(4)? as u64,
            mock_sha256: r.get(5)?,
            updated_at: r.get(6)?,
            mock_tree: r.get::<_, i64>(7)? != 0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Store {
    /// The catalog, by name.
    pub fn assets(&self) -> Result<Vec<AssetRow>> {
        assets_in(&self.conn)
    }

    /// One catalog entry.
    pub fn asset(&self, name: &str) -> Result<Option<AssetRow>> {
        Ok(self.assets()?.into_iter().find(|a| a.name == name))
    }

    /// The catalog version last applied from the high side (low side).
    pub fn received_catalog_version(&self) -> Result<i64> {
        meta_get(&self.conn, "catalog_received_version")
    }

    /// Owner-side catalog version and the version last exported (high side).
    pub fn catalog_versions(&self) -> Result<(i64, i64)> {
        Ok((
            meta_get(&self.conn, "catalog_version")?,
            meta_get(&self.conn, "catalog_sent_version")?,
        ))
    }
}

impl Tx<'_> {
    /// Adds or replaces a catalog entry; on the high side this bumps the catalog version so the next export
    /// carries it.
    pub fn put_asset(&self, asset: &AssetRow) -> Result<()> {
        self.tx.execute(
            "INSERT INTO assets (name, description, private_path, mock_path, mock_size, mock_sha256, updated_at, \
             mock_tree) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(name) DO UPDATE SET description = ?2, \
             private_path = ?3, mock_path = ?4, mock_size = ?5, mock_sha256 = ?6, updated_at = ?7, mock_tree = ?8",
            params![
                asset.name,
                asset.description,
                asset.private_path,
                asset.mock_path,
                asset.mock_size as i64,
                asset.mock_sha256,
                asset.updated_at,
                asset.mock_tree as i64
            ],
        )?;
        let v = meta_get(&self.tx, "catalog_version")?;
        meta_set(&self.tx, "catalog_version", v + 1)
    }

    /// Removes a catalog entry (high side) and bumps the catalog version, so that the next export carries the
    /// catalog without it; refused when there is no such asset.
    pub fn remove_asset(&self, name: &str) -> Result<()> {
        if self
            .tx
            .execute("DELETE FROM assets WHERE name = ?1", params![name])?
            == 0
        {
            return Err(super::StoreError::Conflict(format!(
                "no asset named {name} is registered (`ferry asset list` lists them)"
            )));
        }
        self.tx
            .execute("DELETE FROM asset_versions WHERE name = ?1", params![name])?;
        self.tx
            .execute("DELETE FROM canaries WHERE asset = ?1", params![name])?;
        let v = meta_get(&self.tx, "catalog_version")?;
        meta_set(&self.tx, "catalog_version", v + 1)
    }

    /// Replaces the whole catalog with one received from the high side (low side).
    pub fn replace_catalog(&self, assets: &[AssetRow]) -> Result<()> {
        self.tx.execute("DELETE FROM assets", [])?;
        for a in assets {
            self.put_asset(a)?;
        }
        Ok(())
    }

    /// Replaces the catalog if `version` is newer than the last one applied (low side); returns whether it did.
    pub fn apply_catalog(&self, version: i64, assets: &[AssetRow]) -> Result<bool> {
        if version <= meta_get(&self.tx, "catalog_received_version")? {
            return Ok(false);
        }
        self.replace_catalog(assets)?;
        meta_set(&self.tx, "catalog_received_version", version)?;
        Ok(true)
    }

    /// Whether a bundle on `channel` that the other side acknowledged carried the mock `sha256` (high side): the
    /// low side keeps mocks by content hash, so such a mock need not cross again.
    pub fn mock_delivered(&self, channel: crate::Channel, sha256: &str) -> Result<bool> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM mocks_carried m JOIN peer_acks a ON a.channel = m.channel AND a.seq = m.seq \
                 WHERE m.channel = ?1 AND m.sha256 = ?2 LIMIT 1",
                params![channel, sha256],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records that bundle `seq` on `channel` carries the mocks `sha256s` (high side).
    pub fn mocks_carried(
        &self,
        channel: crate::Channel,
        seq: u64,
        sha256s: &[String],
    ) -> Result<()> {
        for sha in sha256s {
            self.tx.execute(
                "INSERT OR IGNORE INTO mocks_carried (channel, seq, sha256) VALUES (?1, ?2, ?3)",
                params![channel, seq as i64, sha],
            )?;
        }
        Ok(())
    }

    /// The catalog version to send with the current catalog (high side).
    pub fn catalog_version(&self) -> Result<i64> {
        meta_get(&self.tx, "catalog_version")
    }
}

/// A catalog entry as it travels, for a stored row whose mock lives at `mock_entry`.
pub fn asset_transfer(row: &AssetRow, mock_entry: String) -> AssetTransfer {
    AssetTransfer {
        name: row.name.clone(),
        description: row.description.clone(),
        mock: crate::records::FileRef {
            name: row.name.clone(),
            entry: mock_entry,
            size: row.mock_size,
            sha256: row.mock_sha256.clone(),
        },
        updated_at: row.updated_at,
        mock_tree: row.mock_tree,
    }
}
