//! Key rotation: a statement signed by both the old and the new key (R9), and retiring old
//! key files (bundles are opened with current and retired age identities through
//! [`OpenOptions::identities`](crate::OpenOptions::identities)).
//!
//! The encoding and the receiver's rules are specified in `schemas/bundle-format.md`,
//! section "Key rotation statement".

use std::fs::{self, DirBuilder, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::keys::{age_recipient, key_id, verifying_key, PublicIdentity, SideKeys};
use crate::keys::{AGE_KEY_FILE, SIGNING_KEY_FILE};
use crate::BundleError;

/// The rotation statement format version this build writes, and the newest it reads.
pub const ROTATION_VERSION: u8 = 1;
/// Longest encoded rotation statement accepted; an honest one is about 250 bytes.
pub const MAX_ROTATION_LEN: usize = 1024;

/// Domain separation for both rotation signatures.
const ROTATION_DOMAIN: &[u8] = b"ferry-rotation/v1\0";
/// Two Ed25519 signatures end the encoded statement.
const SIGNATURES_LEN: usize = 2 * 64;

/// A statement that `new` replaces the key `old_signing` for `side`, signed by both keys.
///
/// The old key's signature says its holder wants the change; the new key's says its
/// holder has the new secret key (no one can rotate a side to a key they do not hold).
/// It holds no secret, and it authenticates itself against the pinned old key, so it may
/// travel inside a bundle or on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationStatement {
    /// The side whose keys rotate: `"low"` or `"high"`.
    pub side: String,
    /// The Ed25519 key being replaced, as the other side pins it.
    pub old_signing: [u8; 32],
    /// The replacement: new signing key and new age recipient.
    pub new: PublicIdentity,
    /// When the statement was made, unix seconds.
    pub at: i64,
    /// Signature by the old key over the signed message.
    pub sig_old: [u8; 64],
    /// Signature by the new key over the same message.
    pub sig_new: [u8; 64],
}

/// The canonical postcard encoding of what both keys sign. Field order is the wire
/// order; never reorder.
#[derive(Serialize, Deserialize)]
struct WireRotation {
    side: String,
    old_signing: [u8; 32],
    new_signing: [u8; 32],
    new_recipient: String,
    at: i64,
}

impl RotationStatement {
    /// Makes the statement that `new` replaces `old` for `side` at `at` (unix seconds),
    /// signed by both: each signs `"ferry-rotation/v1\0"` followed by the canonical
    /// encoding of (side, old signing key, new signing key, new age recipient, at).
    ///
    /// `side` should be `"low"` or `"high"`; [`RotationStatement::verify`] refuses any
    /// other side, and a statement whose new key equals the old one.
    pub fn sign(side: &str, old: &SideKeys, new: &SideKeys, at: i64) -> RotationStatement {
        let new_public = new.public();
        let old_signing = old.public().signing;
        let body = encode_body(side, &old_signing, &new_public, at);
        let message = signed_message(&body);
        RotationStatement {
            side: side.to_owned(),
            old_signing,
            new: new_public,
            at,
            sig_old: old.sign(&message),
            sig_new: new.sign(&message),
        }
    }

    /// Checks the statement against the key the receiver pins for that side.
    ///
    /// In order: `old_signing` must equal `pinned_old`
    /// ([`BundleError::RotationKeyMismatch`]); the side must be `low` or `high`, the new
    /// identity valid (see [`PublicIdentity::validate`]) with its recipient in canonical
    /// form, and the new signing key different from the old
    /// ([`BundleError::BadRotation`]); then both signatures must verify strictly
    /// ([`BundleError::BadRotationSignature`]). Whether the side is the one the caller
    /// expects, whether `at` is plausible, and whether the new key is one it retired
    /// earlier are the caller's to check.
    pub fn verify(&self, pinned_old: &[u8; 32]) -> Result<(), BundleError> {
        if self.old_signing != *pinned_old {
            return Err(BundleError::RotationKeyMismatch {
                found: key_id(&self.old_signing),
                pinned: key_id(pinned_old),
            });
        }
        if self.side != "low" && self.side != "high" {
            return Err(BundleError::BadRotation(format!(
                "side `{}` is neither `low` nor `high`",
                self.side.escape_debug()
            )));
        }
        self.new
            .validate()
            .map_err(|e| BundleError::BadRotation(format!("the new key is refused: {e}")))?;
        if age_recipient(&self.new.recipient)?.to_string() != self.new.recipient {
            return Err(BundleError::BadRotation(
                "the new age recipient is not in its canonical (lowercase) form".to_owned(),
            ));
        }
        if self.new.signing == self.old_signing {
            return Err(BundleError::BadRotation(
                "the new signing key is the same as the old one".to_owned(),
            ));
        }

        let message = signed_message(&encode_body(
            &self.side,
            &self.old_signing,
            &self.new,
            self.at,
        ));
        let old = verifying_key(&self.old_signing)?;
        old.verify_strict(&message, &Signature::from_bytes(&self.sig_old))
            .map_err(|_| BundleError::BadRotationSignature { key: "old" })?;
        // `validate` above has already refused an invalid or weak new key.
        let new = verifying_key(&self.new.signing)?;
        new.verify_strict(&message, &Signature::from_bytes(&self.sig_new))
            .map_err(|_| BundleError::BadRotationSignature { key: "new" })?;
        Ok(())
    }

    /// Encodes the statement: the version byte, the canonical signed body, then
    /// `sig_old` and `sig_new` (64 bytes each).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = encode_body(&self.side, &self.old_signing, &self.new, self.at);
        let mut bytes = Vec::with_capacity(1 + body.len() + SIGNATURES_LEN);
        bytes.push(ROTATION_VERSION);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&self.sig_old);
        bytes.extend_from_slice(&self.sig_new);
        bytes
    }

    /// Decodes what [`RotationStatement::to_bytes`] wrote, refusing anything longer than
    /// [`MAX_ROTATION_LEN`] before decoding, a newer version, bytes left over and a body
    /// that is not in canonical form. Decoding authenticates nothing: call
    /// [`RotationStatement::verify`].
    pub fn from_bytes(b: &[u8]) -> Result<RotationStatement, BundleError> {
        if b.len() > MAX_ROTATION_LEN {
            return Err(BundleError::BadRotation(format!(
                "the statement is {} bytes, more than the limit of {MAX_ROTATION_LEN}",
                b.len()
            )));
        }
        let (&version, rest) = b
            .split_first()
            .ok_or_else(|| BundleError::BadRotation("the statement is empty".to_owned()))?;
        if version > ROTATION_VERSION {
            return Err(BundleError::BadRotation(format!(
                "statement version {version} was made by a newer version of Ferry (this one \
                 reads up to version {ROTATION_VERSION}); upgrade Ferry to read it"
            )));
        }
        if version == 0 {
            return Err(BundleError::BadRotation(
                "statement version 0 does not exist".to_owned(),
            ));
        }
        if rest.len() < SIGNATURES_LEN {
            return Err(BundleError::BadRotation(
                "the statement is truncated".to_owned(),
            ));
        }
        let (body, signatures) = rest.split_at(rest.len() - SIGNATURES_LEN);
        let (wire, left) = postcard::take_from_bytes::<WireRotation>(body)
            .map_err(|e| BundleError::BadRotation(format!("cannot decode the statement: {e}")))?;
        if !left.is_empty() {
            // Also what a statement cut short or lengthened looks like, since the
            // signatures are taken from the end.
            return Err(BundleError::BadRotation(format!(
                "{} unexpected bytes after the statement's fields",
                left.len()
            )));
        }
        let statement = RotationStatement {
            side: wire.side,
            old_signing: wire.old_signing,
            new: PublicIdentity {
                signing: wire.new_signing,
                recipient: wire.new_recipient,
            },
            at: wire.at,
            sig_old: signatures[..64].try_into().expect("64 bytes"),
            sig_new: signatures[64..].try_into().expect("64 bytes"),
        };
        // One statement has one encoding, so that its bytes can identify it.
        if encode_body(
            &statement.side,
            &statement.old_signing,
            &statement.new,
            statement.at,
        ) != body
        {
            return Err(BundleError::BadRotation(
                "the statement is not in canonical encoding".to_owned(),
            ));
        }
        Ok(statement)
    }
}

fn encode_body(side: &str, old_signing: &[u8; 32], new: &PublicIdentity, at: i64) -> Vec<u8> {
    let wire = WireRotation {
        side: side.to_owned(),
        old_signing: *old_signing,
        new_signing: new.signing,
        new_recipient: new.recipient.clone(),
        at,
    };
    // Serializing strings, arrays and integers into a growable Vec cannot fail.
    postcard::to_stdvec(&wire).expect("postcard encodes a rotation statement into a Vec")
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(ROTATION_DOMAIN.len() + body.len());
    message.extend_from_slice(ROTATION_DOMAIN);
    message.extend_from_slice(body);
    message
}

/// Moves `signing.key` and `age.key` from `keys_dir` into `retired_dir` (created with mode
/// 0700 if missing), so that [`SideKeys::save`] can write new keys into `keys_dir` while
/// [`SideKeys::load`] of `retired_dir` still opens bundles encrypted to the old recipient.
///
/// Refuses, touching nothing, if either file is missing from `keys_dir` or already present
/// in `retired_dir`. Files are renamed, never copied, so both directories must be on the
/// same file system; if the second rename fails, the first is undone. Both directories are
/// synced afterwards.
pub fn retire_keys(keys_dir: &Path, retired_dir: &Path) -> Result<(), BundleError> {
    let names = [SIGNING_KEY_FILE, AGE_KEY_FILE];
    for name in names {
        let from = keys_dir.join(name);
        if from.symlink_metadata().is_err() {
            return Err(BundleError::Key {
                file: from,
                why: "is missing; there is no key to retire".to_owned(),
            });
        }
        let to = retired_dir.join(name);
        if to.symlink_metadata().is_ok() {
            return Err(BundleError::Key {
                file: to,
                why: "already exists; refusing to overwrite a retired key".to_owned(),
            });
        }
    }
    if !retired_dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(retired_dir)
            .map_err(|e| {
                BundleError::io(
                    format!("creating key directory {}", retired_dir.display()),
                    e,
                )
            })?;
    }
    let rename = |name: &str| {
        let (from, to) = (keys_dir.join(name), retired_dir.join(name));
        fs::rename(&from, &to).map_err(|e| {
            BundleError::io(format!("moving {} to {}", from.display(), to.display()), e)
        })
    };
    rename(SIGNING_KEY_FILE)?;
    if let Err(e) = rename(AGE_KEY_FILE) {
        // Put the signing key back, so that the directory still holds a whole key pair.
        let _ = fs::rename(
            retired_dir.join(SIGNING_KEY_FILE),
            keys_dir.join(SIGNING_KEY_FILE),
        );
        return Err(e);
    }
    for dir in [keys_dir, retired_dir] {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BundleError::io(format!("syncing directory {}", dir.display()), e))?;
    }
    Ok(())
}
