//! Key rotation: `ferry keys rotate`, and what a receiver does with a rotation statement.
//!
//! The rotating side signs a statement with both its old and its new key and sends it in a bundle signed by the
//! old key; then it switches to the new keys and keeps the old age identity under `keys/retired/` to decrypt
//! bundles that the other side encrypted before it learned of the change. The receiver checks both signatures
//! against the key it has pinned, pins the new identity and lists the old key in `trust/retired.txt`, so that a
//! bundle signed by it afterwards is refused as signed by a retired key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferry_bundle::{PublicIdentity, RotationStatement, SideKeys};

use crate::side::SideDir;

/// Where the next keys wait until the bundle announcing them is written.
pub fn next_dir(config: &ferry_core::Config) -> PathBuf {
    config.keys_dir().join("next")
}

fn statement_file(config: &ferry_core::Config) -> PathBuf {
    next_dir(config).join("rotation.statement")
}

/// The encoded statement of a rotation waiting for its bundle, if any.
pub fn pending_statement(config: &ferry_core::Config) -> Result<Option<Vec<u8>>> {
    let path = statement_file(config);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// After the bundle carrying the statement is written: the next keys become the current ones, the old ones move
/// to `keys/retired/<time>/`, and `public.txt` shows the new identity.
pub fn complete(side: &SideDir) -> Result<PublicIdentity> {
    let keys_dir = side.config.keys_dir();
    let next = next_dir(&side.config);
    let retired = keys_dir.join("retired").join(ferry_core::now().to_string());
    ferry_bundle::retire_keys(&keys_dir, &retired).context("retiring the old keys")?;
    for name in [ferry_bundle::SIGNING_KEY_FILE, ferry_bundle::AGE_KEY_FILE] {
        std::fs::rename(next.join(name), keys_dir.join(name))
            .with_context(|| format!("installing the new {name}"))?;
    }
    std::fs::remove_file(statement_file(&side.config))
        .context("removing the sent rotation statement")?;
    let _ = std::fs::remove_dir(&next);
    let keys = side.keys()?;
    let public = keys.public();
    crate::setup::write_atomically(
        &side.config.public_file(),
        public.to_text(side.config.side.as_str()).as_bytes(),
    )?;
    Ok(public)
}

/// `ferry keys rotate --config CFG`: makes new keys, and writes the bundle that announces them (with anything
/// else pending); prints the bundle's path.
pub fn rotate_cmd(config: &Path) -> Result<()> {
    let mut side = SideDir::open(config)?;
    if pending_statement(&side.config)?.is_some() {
        bail!(
            "a rotation is already waiting for its bundle in {}: run `ferry export`",
            next_dir(&side.config).display()
        );
    }
    let old = side.keys()?;
    let new = SideKeys::generate();
    new.save(&next_dir(&side.config)).with_context(|| {
        format!(
            "writing the new keys into {}",
            next_dir(&side.config).display()
        )
    })?;
    let statement =
        RotationStatement::sign(side.config.side.as_str(), &old, &new, ferry_core::now());
    crate::setup::write_atomically(&statement_file(&side.config), &statement.to_bytes())?;
    let path =
        crate::transfer::export(&mut side)?.context("the rotation bundle was not written")?;
    println!("{}", path.display());
    println!(
        "keys rotated: {} replaces {}; carry this bundle to the {} side, which will pin the new key",
        new.public().key_id(),
        old.public().key_id(),
        side.config.side.peer().as_str()
    );
    Ok(())
}

/// The retired signing keys of the other side (`trust/retired.txt`, one hex key per line).
pub fn retired_peer_keys(config: &ferry_core::Config) -> Vec<[u8; 32]> {
    let path = config.dir.join("trust").join("retired.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut key = [0u8; 32];
            hex::decode_to_slice(l.split_whitespace().next()?, &mut key).ok()?;
            Some(key)
        })
        .collect()
}

/// This side's retired keys, newest first, for decrypting bundles made before the other side learned of a
/// rotation.
pub fn retired_own_keys(side: &SideDir) -> Vec<SideKeys> {
    let dir = side.config.keys_dir().join("retired");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs.iter().filter_map(|d| SideKeys::load(d).ok()).collect()
}

/// Applies a verified statement from the other side: pins the new identity and retires the old key. Returns what
/// to put back with [`undo_accept`] if the import carrying it does not commit.
pub fn accept(config: &ferry_core::Config, statement: &RotationStatement) -> Result<Pinned> {
    let retired_path = config.dir.join("trust").join("retired.txt");
    let peer_path = config.peer_file();
    let before = Pinned {
        retired: std::fs::read_to_string(&retired_path).unwrap_or_default(),
        peer: std::fs::read_to_string(&peer_path)
            .with_context(|| format!("reading {}", peer_path.display()))?,
    };
    let mut retired = before.retired.clone();
    retired.push_str(&format!(
        "{} retired at {}\n",
        hex::encode(statement.old_signing),
        statement.at
    ));
    crate::setup::write_atomically(&retired_path, retired.as_bytes())?;
    crate::setup::write_atomically(
        &peer_path,
        statement.new.to_text(&statement.side).as_bytes(),
    )?;
    Ok(before)
}

/// The trust files as they were before a rotation was accepted.
pub struct Pinned {
    retired: String,
    peer: String,
}

/// Restores the trust files when the import that carried the rotation did not commit after all.
pub fn undo_accept(config: &ferry_core::Config, before: &Pinned) {
    let retired_path = config.dir.join("trust").join("retired.txt");
    let restored = crate::setup::write_atomically(&retired_path, before.retired.as_bytes())
        .and_then(|()| crate::setup::write_atomically(&config.peer_file(), before.peer.as_bytes()));
    if let Err(e) = restored {
        tracing::error!(
            "could not restore the pinned key after a failed import: {e:#}; put the previous peer identity back into {}",
            config.peer_file().display()
        );
    }
}
