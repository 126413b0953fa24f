//! A side's directory: every path and file name of a side, defined once, and the directory opened for a
//! command (configuration, state store, keys, pinned peer).
//!
//! ```text
//! DIR/ferry.toml          configuration              DIR/state.db        SQLite state store
//! DIR/public.txt          this side's identity       DIR/keys/           secret keys (0600)
//! DIR/keys/next/          keys of a rotation waiting for its bundle (with rotation.statement)
//! DIR/keys/retired/T/     age identities retired at unix time T, to open bundles made before a rotation
//! DIR/trust/peer.txt      the other side's pinned identity
//! DIR/trust/retired.txt   the other side's retired signing keys, one hex key per line
//! DIR/outbox/             bundles made here, to carry (outbox/sent/ once written to a medium)
//! DIR/inbox/              bundles carried in          DIR/archive/       bundles imported
//! DIR/quarantine/         refused bundles, each with a `.reason` file
//! DIR/assets/mocks/       mocks by content hash       DIR/work/          job directories, import staging
//! DIR/.import.lock        held while bundles are imported
//! ```
//! Names that start with `.` are temporary and never carried, imported or listed.

use std::fmt;
use std::path::{Path, PathBuf};

use ferry_bundle::{Channel, PublicIdentity, SideKeys};
use ferry_core::{Config, Side, Store};

use crate::error::{Result, TransferError};

/// The paths of a side's directory.
#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the side in `dir`.
    pub fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }
    /// The side's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `ferry.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("ferry.toml")
    }
    /// `keys/`.
    pub fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }
    /// `keys/next/`: a rotation's new keys until the bundle announcing them is written.
    pub fn next_keys_dir(&self) -> PathBuf {
        self.keys_dir().join("next")
    }
    /// `keys/next/rotation.statement`.
    pub fn rotation_statement(&self) -> PathBuf {
        self.next_keys_dir().join("rotation.statement")
    }
    /// `keys/retired/`.
    pub fn retired_keys_dir(&self) -> PathBuf {
        self.keys_dir().join("retired")
    }
    /// `public.txt`.
    pub fn public_file(&self) -> PathBuf {
        self.dir.join("public.txt")
    }
    /// `trust/`.
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.join("trust")
    }
    /// `trust/peer.txt`.
    pub fn peer_file(&self) -> PathBuf {
        self.trust_dir().join("peer.txt")
    }
    /// `trust/retired.txt`.
    pub fn retired_peers_file(&self) -> PathBuf {
        self.trust_dir().join("retired.txt")
    }
    /// `outbox/`.
    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }
    /// `outbox/sent/`.
    pub fn sent_dir(&self) -> PathBuf {
        self.outbox().join("sent")
    }
    /// `inbox/`.
    pub fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }
    /// `archive/`.
    pub fn archive(&self) -> PathBuf {
        self.dir.join("archive")
    }
    /// `quarantine/`.
    pub fn quarantine(&self) -> PathBuf {
        self.dir.join("quarantine")
    }
    /// `state.db`.
    pub fn state_db(&self) -> PathBuf {
        self.dir.join("state.db")
    }
    /// `assets/`.
    pub fn assets_dir(&self) -> PathBuf {
        self.dir.join("assets")
    }
    /// `assets/mocks/`.
    pub fn mocks_dir(&self) -> PathBuf {
        self.assets_dir().join("mocks")
    }
    /// `assets/mocks/<sha256>.mock`: mocks are kept by content hash, so a resent bundle finds what it carried.
    pub fn mock_file(&self, sha256: &str) -> PathBuf {
        self.mocks_dir().join(format!("{sha256}.mock"))
    }
    /// `assets/indexes/`: the echo index of each private asset (high side).
    pub fn indexes_dir(&self) -> PathBuf {
        self.assets_dir().join("indexes")
    }
    /// `assets/indexes/<asset>.echo`: the echo index of one private asset, rebuilt when the asset changes.
    pub fn echo_index(&self, asset: &str) -> PathBuf {
        self.indexes_dir().join(format!("{asset}.echo"))
    }
    /// `work/`.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// `work/.import-<id>/`: where one import stages its entries.
    pub fn staging_dir(&self, id: &uuid::Uuid) -> PathBuf {
        self.work_dir().join(format!(".import-{id}"))
    }
    /// `.import.lock`.
    pub fn import_lock(&self) -> PathBuf {
        self.dir.join(".import.lock")
    }
    /// `.export.lock`: held by an export or resend for the whole of its run.
    pub fn export_lock(&self) -> PathBuf {
        self.dir.join(".export.lock")
    }
    /// Every directory `ferry init` creates.
    pub fn all_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.keys_dir(),
            self.outbox(),
            self.inbox(),
            self.archive(),
            self.quarantine(),
            self.mocks_dir(),
            self.work_dir(),
            self.trust_dir(),
        ]
    }
}

/// A bundle's file name: `ferry-<channel>-<seq, 6 digits>-<first 8 hex digits of the bundle id>.bundle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleName {
    /// The channel it travels on.
    pub channel: Channel,
    /// Its sequence number.
    pub seq: u64,
    /// The first 8 hex digits of its bundle id.
    pub id_prefix: String,
}

impl BundleName {
    /// The name of the bundle `bundle_id` with sequence `seq` on `channel`.
    pub fn new(channel: Channel, seq: u64, bundle_id: &[u8; 16]) -> BundleName {
        BundleName {
            channel,
            seq,
            id_prefix: hex::encode(&bundle_id[..4]),
        }
    }

    /// Reads a name made by [`BundleName`]'s `Display`; `None` for anything else.
    pub fn parse(name: &str) -> Option<BundleName> {
        let rest = name.strip_prefix("ferry-")?.strip_suffix(".bundle")?;
        let channel = [Channel::LowToHigh, Channel::HighToLow]
            .into_iter()
            .find(|c| rest.starts_with(&format!("{}-", c.as_str())))?;
        let rest = &rest[channel.as_str().len() + 1..];
        let (seq, id) = rest.split_once('-')?;
        if seq.len() < 6 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(BundleName {
            channel,
            seq: seq.parse().ok()?,
            id_prefix: id.to_string(),
        })
    }
}

impl fmt::Display for BundleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ferry-{}-{:06}-{}.bundle",
            self.channel.as_str(),
            self.seq,
            self.id_prefix
        )
    }
}

/// The channel `side` sends on (and the other side receives on).
pub fn outgoing_channel(side: Side) -> Channel {
    match side {
        Side::Low => Channel::LowToHigh,
        Side::High => Channel::HighToLow,
    }
}

/// A side's directory opened for a command: its configuration and state store.
pub struct SideDir {
    /// The configuration.
    pub config: Config,
    /// The state store.
    pub store: Store,
    /// The paths.
    pub layout: Layout,
}

impl SideDir {
    /// Loads the configuration and opens the state store.
    pub fn open(config_path: &Path) -> Result<SideDir> {
        let config = Config::load(config_path).map_err(|source| TransferError::Config {
            path: config_path.to_path_buf(),
            source,
        })?;
        SideDir::from_config(config)
    }

    /// Opens the state store of a loaded configuration.
    pub fn from_config(config: Config) -> Result<SideDir> {
        let layout = Layout::new(&config.dir);
        let store = Store::open(&layout.state_db())?;
        Ok(SideDir {
            config,
            store,
            layout,
        })
    }

    /// Fails unless this is the `want` side.
    pub fn require(&self, want: Side, what: &str) -> Result<()> {
        if self.config.side != want {
            return Err(TransferError::WrongSide {
                what: what.to_string(),
                want: want.as_str(),
                have: self.config.side.as_str(),
                config: self.layout.config_file(),
            });
        }
        Ok(())
    }

    /// This side's secret keys.
    pub fn keys(&self) -> Result<SideKeys> {
        let dir = self.layout.keys_dir();
        SideKeys::load(&dir)
            .map_err(|e| TransferError::bundle(format!("loading keys from {}", dir.display()), e))
    }

    /// The other side's pinned identity.
    pub fn peer(&self) -> Result<PublicIdentity> {
        let path = self.layout.peer_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TransferError::NoPeer { path })
            }
            Err(e) => return Err(TransferError::io("reading", &path, e)),
        };
        PublicIdentity::parse(&text)
            .map_err(|e| TransferError::bundle(format!("parsing {}", path.display()), e))
    }

    /// The channel this side sends on.
    pub fn outgoing(&self) -> Channel {
        outgoing_channel(self.config.side)
    }

    /// The channel this side receives on.
    pub fn incoming(&self) -> Channel {
        outgoing_channel(self.config.side.peer())
    }

    /// Resolves a job id or a unique prefix of one.
    pub fn resolve_job(&self, id: &str) -> Result<String> {
        if let Some(job) = self.store.job(id)? {
            return Ok(job.job_id);
        }
        let matches: Vec<String> = self
            .store
            .jobs(None, None)?
            .into_iter()
            .map(|j| j.job_id)
            .filter(|j| j.starts_with(id))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(TransferError::JobLookup(format!(
                "no job {id:?} on the {} side",
                self.config.side.as_str()
            ))),
            n => Err(TransferError::JobLookup(format!(
                "{n} jobs start with {id:?}: give more of the id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_round_trip() {
        let name = BundleName::new(Channel::HighToLow, 7, &[0xab; 16]);
        let text = name.to_string();
        assert_eq!(text, "ferry-high-to-low-000007-abababab.bundle");
        assert_eq!(BundleName::parse(&text), Some(name));
    }

    #[test]
    fn bundle_names_refuse_other_files() {
        for bad in [
            "ferry-low-to-high-7-abababab.bundle",
            "ferry-sideways-000007-abababab.bundle",
            "ferry-low-to-high-000007-abab.bundle",
            ".ferry-low-to-high-000007-abababab.bundle.tmp",
            "notes.txt",
        ] {
            assert_eq!(BundleName::parse(bad), None, "{bad}");
        }
    }
}
