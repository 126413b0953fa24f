//! `BundleError`: one variant per reason a bundle, key or identity is refused.

use std::io;
use std::path::PathBuf;

/// Why a bundle could not be written, verified or opened, or a key could not be used.
///
/// Every refusal of a received bundle has its own variant so that the caller can file a
/// precise reason next to the quarantined file; [`BundleError::kind`] gives a short stable
/// name for that reason file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An I/O operation on the bundle, an entry file or a key file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. "reading bundle header".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The file does not start with the `FERRYBDL` magic.
    #[error("not a Ferry bundle: the file does not start with the FERRYBDL magic")]
    NotABundle,

    /// The bundle uses a format version this build does not know.
    #[error(
        "bundle format version {found} was made by a newer version of Ferry \
         (this one reads up to version {}); upgrade Ferry to read it",
        crate::FORMAT_VERSION
    )]
    NewerVersion {
        /// The version found in the file.
        found: u16,
    },

    /// The bundle uses an older format version, which this build no longer reads.
    #[error(
        "bundle format version {found} was made by an older version of Ferry; this one reads \
         only version {} (ask the sender to upgrade Ferry and send the bundle again)",
        crate::FORMAT_VERSION
    )]
    OldVersion {
        /// The version found in the file.
        found: u16,
    },

    /// The declared header length does not fit in the fixed 1024-byte header block.
    #[error("bundle header declares {len} header bytes, more than the {max} that fit in the header block")]
    HeaderTooLarge {
        /// The declared header length.
        len: u16,
        /// The largest header length that fits.
        max: u16,
    },

    /// The bundle was validly signed, but by a key other than the pinned one.
    #[error(
        "bundle is signed by key {found}, which is not the pinned signing key for this channel"
    )]
    UntrustedSigner {
        /// Hex of the Ed25519 public key that signed the bundle.
        found: String,
    },

    /// The header signature does not verify with the pinned signing key.
    #[error("bundle header signature does not verify with the pinned signing key (forged or corrupted header)")]
    BadSignature,

    /// The segment table does not hash to the signed `table_sha256`.
    #[error("bundle segment table does not match the SHA-256 in its signed header (corrupted or substituted table)")]
    SegmentTableMismatch,

    /// A segment of the encrypted payload does not hash to its entry in the signed table.
    #[error("bundle payload segment {segment} does not match its SHA-256 in the signed segment table (corrupted, reordered or substituted payload)")]
    PayloadHashMismatch {
        /// The segment, 0 being the age header.
        segment: u64,
    },

    /// The file or the decrypted payload ends before the data it declares.
    #[error("bundle is truncated: the data ends before what its header or records declare (half-written or cut-short copy?)")]
    Truncated,

    /// The payload is not encrypted to our age identity.
    #[error("bundle is not encrypted to this side's age key (it is meant for another recipient)")]
    NotForUs,

    /// The age payload could not be decrypted for a reason other than the recipient.
    #[error("bundle payload could not be decrypted: {0}")]
    Decrypt(String),

    /// An entry is longer than the receiver's per-entry limit.
    #[error("entry `{path}` is {len} bytes, more than the limit of {max} bytes")]
    EntryTooLarge {
        /// The entry's path.
        path: String,
        /// Its declared length.
        len: u64,
        /// The limit it exceeds.
        max: u64,
    },

    /// The bundle has more entries than the receiver's limit.
    #[error("bundle has more than the limit of {max} entries")]
    TooManyEntries {
        /// The limit.
        max: u32,
    },

    /// The entries together are longer than a limit (the receiver's or the sink's).
    #[error("bundle entries together exceed the limit of {max} bytes")]
    TotalTooLarge {
        /// The limit.
        max: u64,
    },

    /// An entry path is not a safe relative path.
    #[error("entry path `{path}` is refused: {why}")]
    BadPath {
        /// The path, lossily decoded if it was not UTF-8.
        path: String,
        /// Which rule it breaks.
        why: String,
    },

    /// The same path appears twice.
    #[error("entry path `{path}` appears more than once")]
    DuplicateEntry {
        /// The repeated path.
        path: String,
    },

    /// The signed inner manifest disagrees with the entries actually carried.
    #[error("bundle manifest does not match its contents: {0}")]
    ManifestMismatch(String),

    /// The inner manifest signature does not verify with the pinned signing key.
    #[error("bundle manifest signature does not verify with the pinned signing key")]
    BadManifestSignature,

    /// Bytes follow the end of the bundle or of its payload.
    #[error("bundle has unexpected trailing data after its end")]
    TrailingData,

    /// A structure is invalid in a way no more specific variant describes.
    #[error("malformed bundle: {0}")]
    Malformed(String),

    /// A secret key file is missing, unreadable, invalid or would be overwritten.
    #[error("key file {}: {why}", file.display())]
    Key {
        /// The key file concerned.
        file: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// A public identity (public.txt or a pinned key) is invalid.
    #[error("invalid public identity: {0}")]
    BadPublicIdentity(String),

    /// A file given as a bundle part does not start with the `FERRYPRT` magic.
    #[error("{} is not a Ferry bundle part: it does not start with the FERRYPRT magic", file.display())]
    NotAPart {
        /// The file concerned.
        file: PathBuf,
    },

    /// A part uses a part format version this build does not know.
    #[error(
        "part file {} uses part format version {found}, made by a newer version of Ferry \
         (this one reads up to version {}); upgrade Ferry to join it",
        file.display(),
        crate::PART_FORMAT_VERSION
    )]
    NewerPartVersion {
        /// The part file.
        file: PathBuf,
        /// The version found in it.
        found: u16,
    },

    /// A part's header is malformed or disagrees with the file's length.
    #[error("part file {} is refused: {why}", file.display())]
    BadPart {
        /// The part file.
        file: PathBuf,
        /// What is wrong with it.
        why: String,
    },

    /// A part header's signature does not verify with the pinned signing key.
    #[error(
        "part file {}: its header signature does not verify with the pinned signing key \
         (forged or corrupted part header)",
        file.display()
    )]
    BadPartSignature {
        /// The part file.
        file: PathBuf,
    },

    /// A part was validly signed, but by a key other than the pinned one.
    #[error(
        "part file {} is signed by key {found}, which is not the pinned signing key",
        file.display()
    )]
    UntrustedPartSigner {
        /// The part file.
        file: PathBuf,
        /// Hex of the Ed25519 public key that signed the part.
        found: String,
    },

    /// A part's body does not hash to the SHA-256 in its signed header.
    #[error(
        "part file {} is corrupted: its data does not match the SHA-256 in its signed header",
        file.display()
    )]
    PartHashMismatch {
        /// The part file.
        file: PathBuf,
    },

    /// A part belongs to another bundle, or to another split of the same bundle.
    #[error("part file {} does not belong with the other parts: {why}", file.display())]
    ForeignPart {
        /// The part file.
        file: PathBuf,
        /// Which bundle or split it belongs to instead.
        why: String,
    },

    /// Two files carry the same part of a bundle.
    #[error(
        "part {index} of {count} of bundle {bundle_id} is given twice: {} and {}",
        first.display(),
        second.display()
    )]
    DuplicatePart {
        /// The bundle id (a UUID).
        bundle_id: String,
        /// The repeated 1-based part index.
        index: u32,
        /// How many parts the bundle was split into.
        count: u32,
        /// The first file carrying it.
        first: PathBuf,
        /// The second file carrying it.
        second: PathBuf,
    },

    /// Parts of a bundle are missing.
    #[error("{}", missing_parts_message(bundle_id, *count, missing))]
    MissingParts {
        /// The bundle id (a UUID).
        bundle_id: String,
        /// How many parts the bundle was split into.
        count: u32,
        /// The 1-based indexes of the missing parts, ascending.
        missing: Vec<u32>,
    },

    /// The requested part size leaves no room for data or would need too many parts.
    #[error(
        "a part size of {max_part_size} bytes is too small for this bundle: parts must be at \
         least {min} bytes (a 512-byte part header, and at most 100000 parts)"
    )]
    PartSizeTooSmall {
        /// The requested largest part size.
        max_part_size: u64,
        /// The smallest part size that works for this bundle.
        min: u64,
    },

    /// A key rotation statement replaces a key other than the pinned one.
    #[error(
        "rotation statement replaces signing key {found}, but the pinned signing key is \
         {pinned} (key ids)"
    )]
    RotationKeyMismatch {
        /// Key id of the key the statement replaces.
        found: String,
        /// Key id of the pinned key.
        pinned: String,
    },

    /// A key rotation statement's signature by the old or the new key does not verify.
    #[error("rotation statement signature by the {key} key does not verify (forged or corrupted statement)")]
    BadRotationSignature {
        /// `"old"` or `"new"`.
        key: &'static str,
    },

    /// A key rotation statement is malformed or not acceptable.
    #[error("rotation statement refused: {0}")]
    BadRotation(String),
}

impl BundleError {
    /// A short, stable snake_case name for this kind of error, for reason files and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::Io { .. } => "io",
            BundleError::NotABundle => "not_a_bundle",
            BundleError::NewerVersion { .. } => "newer_version",
            BundleError::OldVersion { .. } => "old_version",
            BundleError::HeaderTooLarge { .. } => "header_too_large",
            BundleError::UntrustedSigner { .. } => "untrusted_signer",
            BundleError::BadSignature => "bad_signature",
            BundleError::SegmentTableMismatch => "segment_table_mismatch",
            BundleError::PayloadHashMismatch { .. } => "payload_hash_mismatch",
            BundleError::Truncated => "truncated",
            BundleError::NotForUs => "not_for_us",
            BundleError::Decrypt(_) => "decrypt",
            BundleError::EntryTooLarge { .. } => "entry_too_large",
            BundleError::TooManyEntries { .. } => "too_many_entries",
            BundleError::TotalTooLarge { .. } => "total_too_large",
            BundleError::BadPath { .. } => "bad_path",
            BundleError::DuplicateEntry { .. } => "duplicate_entry",
            BundleError::ManifestMismatch(_) => "manifest_mismatch",
            BundleError::BadManifestSignature => "bad_manifest_signature",
            BundleError::TrailingData => "trailing_data",
            BundleError::Malformed(_) => "malformed",
            BundleError::Key { .. } => "key",
            BundleError::BadPublicIdentity(_) => "bad_public_identity",
            BundleError::NotAPart { .. } => "not_a_part",
            BundleError::NewerPartVersion { .. } => "newer_part_version",
            BundleError::BadPart { .. } => "bad_part",
            BundleError::BadPartSignature { .. } => "bad_part_signature",
            BundleError::UntrustedPartSigner { .. } => "untrusted_part_signer",
            BundleError::PartHashMismatch { .. } => "part_hash_mismatch",
            BundleError::ForeignPart { .. } => "foreign_part",
            BundleError::DuplicatePart { .. } => "duplicate_part",
            BundleError::MissingParts { .. } => "missing_parts",
            BundleError::PartSizeTooSmall { .. } => "part_size_too_small",
            BundleError::RotationKeyMismatch { .. } => "rotation_key_mismatch",
            BundleError::BadRotationSignature { .. } => "bad_rotation_signature",
            BundleError::BadRotation(_) => "bad_rotation",
        }
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> BundleError {
        BundleError::Io {
            context: context.into(),
            source,
        }
    }
}

/// "part 2 of 3 of bundle <id> is missing", or "parts 2, 4 and 5 of 7 ... are missing",
/// listing at most ten indexes.
fn missing_parts_message(bundle_id: &str, count: u32, missing: &[u32]) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<String> = missing.iter().take(SHOWN).map(u32::to_string).collect();
    match shown.as_slice() {
        [] => format!("no part of bundle {bundle_id} is missing"),
        [one] => format!("part {one} of {count} of bundle {bundle_id} is missing"),
        [first @ .., last] => {
            let list = if missing.len() > SHOWN {
                format!(
                    "{}, {last} and {} more",
                    first.join(", "),
                    missing.len() - SHOWN
                )
            } else {
                format!("{} and {last}", first.join(", "))
            };
            format!("parts {list} of {count} of bundle {bundle_id} are missing")
        }
    }
}
