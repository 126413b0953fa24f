//! Key rotation, a leaf: making new keys, switching to them once the bundle announcing them is written, and
//! pinning the other side's new key when its statement arrives.
//!
//! The rotating side signs a statement with both its old and its new key and sends it in a bundle signed by the
//! old key; then it switches to the new keys and keeps the old age identity under `keys/retired/` to decrypt
//! bundles that the other side encrypted before it learned of the change. The receiver checks both signatures
//! against the key it has pinned, pins the new identity and lists the old key in `trust/retired.txt`, so that a
//! bundle signed by it afterwards is refused as signed by a retired key.

use std::path::PathBuf;

use ferry_bundle::{PublicIdentity, RotationStatement, SideKeys};

use crate::error::{IoContext, Result, TransferError};
use crate::fs::write_atomically;
use crate::side_dir::{Layout, SideDir};

/// The encoded statement of a rotation waiting for its bundle, if any.
pub fn pending_statement(layout: &Layout) -> Result<Option<Vec<u8>>> {
    let path = layout.rotation_statement();
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TransferError::io("reading", &path, e)),
    }
}

/// A rotation prepared: the new keys wait in `keys/next/` for the next export.
pub struct Prepared {
    /// The key being replaced.
    pub old: PublicIdentity,
    /// The new key.
    pub new: PublicIdentity,
}

/// Makes new keys in `keys/next/` and the statement signed by the old and the new key. The next export carries
/// it and then calls [`complete`].
pub fn prepare(side: &SideDir) -> Result<Prepared> {
    let layout = &side.layout;
    if pending_statement(layout)?.is_some() {
        return Err(TransferError::Invalid(format!(
            "a rotation is already waiting for its bundle in {}: run `ferry export`",
            layout.next_keys_dir().display()
        )));
    }
    let old = side.keys()?;
    let new = SideKeys::generate();
    new.save(&layout.next_keys_dir()).map_err(|e| {
        TransferError::bundle(
            format!(
                "writing the new keys into {}",
                layout.next_keys_dir().display()
            ),
            e,
        )
    })?;
    let statement =
        RotationStatement::sign(side.config.side.as_str(), &old, &new, ferry_core::now());
    write_atomically(&layout.rotation_statement(), &statement.to_bytes())?;
    Ok(Prepared {
        old: old.public(),
        new: new.public(),
    })
}

/// After the bundle carrying the statement is written: the next keys become the current ones, the old ones move
/// to `keys/retired/<time>/`, and `public.txt` shows the new identity.
pub fn complete(side: &SideDir) -> Result<PublicIdentity> {
    let layout = &side.layout;
    let keys_dir = layout.keys_dir();
    let next = layout.next_keys_dir();
    let retired = layout
        .retired_keys_dir()
        .join(ferry_core::now().to_string());
    ferry_bundle::retire_keys(&keys_dir, &retired)
        .map_err(|e| TransferError::bundle("retiring the old keys", e))?;
    for name in [ferry_bundle::SIGNING_KEY_FILE, ferry_bundle::AGE_KEY_FILE] {
        let to = keys_dir.join(name);
        std::fs::rename(next.join(name), &to).at("installing the new key", &to)?;
    }
    let statement = layout.rotation_statement();
    std::fs::remove_file(&statement).at("removing the sent rotation statement", &statement)?;
    let _ = std::fs::remove_dir(&next);
    let public = side.keys()?.public();
    write_atomically(
        &layout.public_file(),
        public.to_text(side.config.side.as_str()).as_bytes(),
    )?;
    Ok(public)
}

/// The retired signing keys of the other side (`trust/retired.txt`, one hex key per line).
pub fn retired_peer_keys(layout: &Layout) -> Vec<[u8; 32]> {
    std::fs::read_to_string(layout.retired_peers_file())
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
pub fn retired_own_keys(layout: &Layout) -> Vec<SideKeys> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(layout.retired_keys_dir())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs.iter().filter_map(|d| SideKeys::load(d).ok()).collect()
}

/// The trust files as they were before a rotation was accepted.
pub struct Pinned {
    retired: String,
    peer: String,
}

/// Applies a verified statement from the other side: pins the new identity and retires the old key. Returns what
/// to put back with [`undo_accept`] if the import carrying it does not commit.
pub fn accept(layout: &Layout, statement: &RotationStatement) -> Result<Pinned> {
    let retired_path = layout.retired_peers_file();
    let peer_path = layout.peer_file();
    let before = Pinned {
        retired: std::fs::read_to_string(&retired_path).unwrap_or_default(),
        peer: std::fs::read_to_string(&peer_path).at("reading", &peer_path)?,
    };
    let mut retired = before.retired.clone();
    retired.push_str(&format!(
        "{} retired at {}\n",
        hex::encode(statement.old_signing),
        statement.at
    ));
    write_atomically(&retired_path, retired.as_bytes())?;
    write_atomically(
        &peer_path,
        statement.new.to_text(&statement.side).as_bytes(),
    )?;
    Ok(before)
}

/// Restores the trust files when the import that carried the rotation did not commit after all.
pub fn undo_accept(layout: &Layout, before: &Pinned) {
    let restored = write_atomically(&layout.retired_peers_file(), before.retired.as_bytes())
        .and_then(|()| write_atomically(&layout.peer_file(), before.peer.as_bytes()));
    if let Err(e) = restored {
        tracing::error!(
            "could not restore the pinned key after a failed import: {e}; put the previous peer identity back into {}",
            layout.peer_file().display()
        );
    }
}
