//! Why a bundle from the other side was not accepted: one typed kind per check, each with a stable snake_case
//! name ([`Refusal::kind`]) that `.reason` files, logs and tests use.

use thiserror::Error;

/// A bundle refused on import. Nothing of it is applied; it moves to `quarantine/` with a `.reason` file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The bundle library refused it: signature, payload hash, format, caps, manifest (see
    /// [`ferry_bundle::BundleError::kind`] for the names).
    #[error("{0}")]
    Bundle(#[from] ferry_bundle::BundleError),
    /// Signed by a key the other side retired in a rotation.
    #[error("signed by {key_id}, a key the {peer} side retired: bundles after a rotation must carry the new key")]
    RetiredKey {
        /// The retired key's id.
        key_id: String,
        /// The side that retired it.
        peer: &'static str,
    },
    /// Made for the other direction.
    #[error("bundle is for channel {got}, but this side receives on {expected}")]
    WrongChannel {
        /// Its channel.
        got: &'static str,
        /// The channel this side receives on.
        expected: &'static str,
    },
    /// This very bundle was imported before.
    #[error("bundle {bundle_id} (sequence {seq}) was imported already at {at}")]
    Replay {
        /// Its id.
        bundle_id: String,
        /// Its sequence number.
        seq: u64,
        /// When it was imported.
        at: String,
    },
    /// This very file (same bundle id and SHA-256) was imported before, e.g. by an import that stopped after its
    /// commit: not a refusal, since nothing is wrong with it; the importer archives it and changes nothing.
    #[error(
        "bundle sequence {seq} was imported already at {at}: this is the same file; nothing to do"
    )]
    AlreadyImported {
        /// Its sequence number.
        seq: u64,
        /// When it was imported.
        at: String,
    },
    /// Another bundle with this sequence number was imported before.
    #[error("sequence {seq} on {channel} was imported already (bundle {bundle_id}): an old or repeated sequence number changes nothing")]
    Rollback {
        /// The sequence number.
        seq: u64,
        /// The channel.
        channel: &'static str,
        /// The bundle imported with it.
        bundle_id: String,
    },
    /// The sequence number jumps further than `bundle.max_seq_gap` past the last imported one.
    #[error("sequence {seq} jumps {gap} past the last imported {last}, more than bundle.max_seq_gap = {max}; held for the owner, who may import it with `ferry import --accept-gap FILE`")]
    SequenceGap {
        /// The sequence number.
        seq: u64,
        /// How far it jumps.
        gap: u64,
        /// The last one imported.
        last: u64,
        /// The configured limit.
        max: u64,
    },
    /// Past its expiry (plus clock slack).
    #[error("bundle expired at {at} (clock slack {slack} s)")]
    Expired {
        /// When it expired.
        at: String,
        /// The clock slack allowed.
        slack: i64,
    },
    /// Made in the future beyond the clock slack.
    #[error("bundle claims to be made at {at}, in the future beyond the clock slack of {slack} s")]
    NotYetValid {
        /// When it claims to be made.
        at: String,
        /// The clock slack allowed.
        slack: i64,
    },
    /// It does not name its imported predecessor's content hash.
    #[error("{0}")]
    ChainMismatch(String),
    /// Its records are malformed or inconsistent with its entries.
    #[error("{0}")]
    BadRecords(String),
    /// A record that may not arrive on this side.
    #[error("a {record} record may not arrive on the {side} side")]
    WrongScope {
        /// The record's kind.
        record: &'static str,
        /// This side.
        side: &'static str,
    },
    /// An entry no record names.
    #[error("entry {0} is not named by any record")]
    UnlistedEntry(String),
    /// A local fault while importing it (reading the file, staging entries).
    #[error("{0}")]
    Io(String),
    /// The state store failed while importing it.
    #[error("{0}")]
    Store(String),
}

impl Refusal {
    /// The stable snake_case name of this refusal.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Bundle(e) => e.kind(),
            Refusal::RetiredKey { .. } => "retired_key",
            Refusal::WrongChannel { .. } => "wrong_channel",
            Refusal::Replay { .. } => "replay",
            Refusal::AlreadyImported { .. } => "already_imported",
            Refusal::Rollback { .. } => "rollback",
            Refusal::SequenceGap { .. } => "sequence_gap",
            Refusal::Expired { .. } => "expired",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::ChainMismatch(_) => "chain_mismatch",
            Refusal::BadRecords(_) => "bad_records",
            Refusal::WrongScope { .. } => "wrong_scope",
            Refusal::UnlistedEntry(_) => "unlisted_entry",
            Refusal::Io(_) => "io",
            Refusal::Store(_) => "store",
        }
    }
}

impl From<ferry_core::StoreError> for Refusal {
    fn from(e: ferry_core::StoreError) -> Refusal {
        Refusal::Store(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_names() {
        let r = Refusal::SequenceGap {
            seq: 9,
            gap: 8,
            last: 1,
            max: 5,
        };
        assert_eq!(r.kind(), "sequence_gap");
        assert!(r.to_string().contains("--accept-gap"));
        assert_eq!(
            Refusal::from(ferry_bundle::BundleError::BadSignature).kind(),
            "bad_signature"
        );
    }
}
