//! Runtimes: the interpreters the owner registers with `ferry runtime add` (high side), and the high side's list as
//! received (low side). Versioned like the reviewers: a change bumps `runtimes_version`, the next export carries
//! the whole list, and the receiver applies only a newer one.

use rusqlite::{params, Connection, OptionalExtension};

use super::audit::append;
use super::{meta_get, meta_set, Result, Store, StoreError, Tx};
use crate::now;
use crate::records::RuntimeTransfer;

/// A runtime as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeRow {
    /// What travels and what researchers see.
    pub info: RuntimeTransfer,
    /// The interpreter's path (high side only).
    pub program: Option<String>,
    /// Host paths the sandbox binds read-only for it, beyond the system's (high side only).
    pub mounts: Vec<String>,
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serializes")
}

fn parse<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

const COLUMNS: &str =
    "name, description, program, python, packages, sha256, mounts, devices, added_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RuntimeRow> {
    Ok(RuntimeRow {
        info: RuntimeTransfer {
            name: r.get(0)?,
            description: r.get(1)?,
            python: r.get(3)?,
            packages: parse(4, &r.get::<_, String>(4)?)?,
            sha256: r.get(5)?,
            devices: parse(7, &r.get::<_, String>(7)?)?,
            added_at: r.get(8)?,
        },
        program: r.get(2)?,
        mounts: parse(6, &r.get::<_, String>(6)?)?,
    })
}

fn runtimes_in(conn: &Connection) -> Result<Vec<RuntimeRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM runtimes ORDER BY name"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn insert(conn: &Connection, rt: &RuntimeRow) -> Result<()> {
    conn.execute(
        &format!("INSERT INTO runtimes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
        params![
            rt.info.name,
            rt.info.description,
            rt.program,
            rt.info.python,
            json(&rt.info.packages),
            rt.info.sha256,
            json(&rt.mounts),
            json(&rt.info.devices),
            rt.info.added_at,
        ],
    )?;
    Ok(())
}

impl Store {
    /// Every runtime, by name: the ones registered here (high side) or received (low side).
    pub fn runtimes(&self) -> Result<Vec<RuntimeRow>> {
        runtimes_in(&self.conn)
    }

    /// One runtime.
    pub fn runtime(&self, name: &str) -> Result<Option<RuntimeRow>> {
        runtime_in(&self.conn, name)
    }
}

fn runtime_in(conn: &Connection, name: &str) -> Result<Option<RuntimeRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM runtimes WHERE name = ?1"),
            params![name],
            row,
        )
        .optional()?)
}

impl Tx<'_> {
    /// Registers a runtime (high side); refused when the name is taken.
    pub fn add_runtime(&self, rt: &RuntimeRow, actor: &str) -> Result<()> {
        if runtime_in(&self.tx, &rt.info.name)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "a runtime named {} is registered already (`ferry runtime remove` it first)",
                rt.info.name
            )));
        }
        insert(&self.tx, rt)?;
        self.runtimes_changed()?;
        append(
            &self.tx,
            now(),
            actor,
            "runtime-add",
            None,
            &format!(
                "{} {} sha256:{}",
                rt.info.name,
                rt.program.as_deref().unwrap_or_default(),
                rt.info.sha256
            ),
            None,
        )
    }

    /// Removes a registered runtime (high side); jobs naming it fail from then on, saying so.
    pub fn remove_runtime(&self, name: &str, actor: &str) -> Result<()> {
        if self
            .tx
            .execute("DELETE FROM runtimes WHERE name = ?1", params![name])?
            == 0
        {
            return Err(StoreError::Conflict(format!(
                "no runtime named {name} is registered (`ferry runtime list` lists them)"
            )));
        }
        self.runtimes_changed()?;
        append(&self.tx, now(), actor, "runtime-remove", None, name, None)
    }

    fn runtimes_changed(&self) -> Result<()> {
        let v = meta_get(&self.tx, "runtimes_version")?;
        meta_set(&self.tx, "runtimes_version", v + 1)
    }

    /// The runtime list to export with its version, when it changed since the last export (high side).
    pub fn runtimes_to_send(&self) -> Result<Option<(i64, Vec<RuntimeTransfer>)>> {
        let version = meta_get(&self.tx, "runtimes_version")?;
        if version == meta_get(&self.tx, "runtimes_sent_version")? {
            return Ok(None);
        }
        Ok(Some((
            version,
            runtimes_in(&self.tx)?.into_iter().map(|r| r.info).collect(),
        )))
    }

    /// Marks the runtime list of `version` exported.
    pub fn runtimes_sent(&self, version: i64) -> Result<()> {
        meta_set(&self.tx, "runtimes_sent_version", version)
    }

    /// Replaces the runtime list with the high side's if `version` is newer than the last applied (low side);
    /// returns whether it did.
    pub fn apply_peer_runtimes(&self, version: i64, runtimes: &[RuntimeTransfer]) -> Result<bool> {
        if version <= meta_get(&self.tx, "peer_runtimes_version")? {
            return Ok(false);
        }
        self.tx.execute("DELETE FROM runtimes", [])?;
        for info in runtimes {
            insert(
                &self.tx,
                &RuntimeRow {
                    info: info.clone(),
                    program: None,
                    mounts: Vec::new(),
                },
            )?;
        }
        meta_set(&self.tx, "peer_runtimes_version", version)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Side;

    fn sample(name: &str) -> RuntimeRow {
        RuntimeRow {
            info: RuntimeTransfer {
                name: name.into(),
                description: "pandas".into(),
                python: "3.11.2".into(),
                packages: vec![("numpy".into(), "2.1.0".into())],
                sha256: "ab".repeat(32),
                devices: vec![],
                added_at: 5,
            },
            program: Some("/opt/venv/bin/python".into()),
            mounts: vec!["/opt/venv".into()],
        }
    }

    #[test]
    fn a_registered_runtime_is_sent_once_and_applied_only_when_newer() {
        let dir = tempfile::tempdir().unwrap();
        let mut high = Store::open(&dir.path().join("h.db")).unwrap();
        let tx = high.begin(Side::High).unwrap();
        assert_eq!(tx.runtimes_to_send().unwrap(), None);
        tx.add_runtime(&sample("pandas"), "owner:t").unwrap();
        let err = tx.add_runtime(&sample("pandas"), "owner:t").unwrap_err();
        assert!(err.to_string().contains("registered already"), "{err}");
        let (version, list) = tx.runtimes_to_send().unwrap().expect("changed");
        assert_eq!(list, vec![sample("pandas").info]);
        tx.runtimes_sent(version).unwrap();
        assert_eq!(tx.runtimes_to_send().unwrap(), None);
        tx.commit().unwrap();
        assert_eq!(high.runtime("pandas").unwrap(), Some(sample("pandas")));

        let mut low = Store::open(&dir.path().join("l.db")).unwrap();
        let tx = low.begin(Side::Low).unwrap();
        assert!(tx.apply_peer_runtimes(version, &list).unwrap());
        assert!(!tx.apply_peer_runtimes(version, &[]).unwrap(), "not newer");
        tx.commit().unwrap();
        let got = low.runtime("pandas").unwrap().unwrap();
        assert_eq!(got.info, sample("pandas").info);
        assert_eq!(got.program, None, "the high side's paths stay there");
        assert!(got.mounts.is_empty());
    }

    #[test]
    fn removing_an_unknown_runtime_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut high = Store::open(&dir.path().join("h.db")).unwrap();
        let tx = high.begin(Side::High).unwrap();
        let err = tx.remove_runtime("nope", "owner:t").unwrap_err();
        assert!(err.to_string().contains("no runtime named nope"), "{err}");
        tx.add_runtime(&sample("pandas"), "owner:t").unwrap();
        tx.remove_runtime("pandas", "owner:t").unwrap();
        assert!(tx.runtimes_to_send().unwrap().unwrap().1.is_empty());
    }
}
