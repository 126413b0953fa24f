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

    /// The encrypted payload does not hash to the signed `payload_sha256`.
    #[error("bundle payload does not match the SHA-256 in its signed header (corrupted or substituted payload)")]
    PayloadHashMismatch,

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
}

impl BundleError {
    /// A short, stable snake_case name for this kind of error, for reason files and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            BundleError::Io { .. } => "io",
            BundleError::NotABundle => "not_a_bundle",
            BundleError::NewerVersion { .. } => "newer_version",
            BundleError::HeaderTooLarge { .. } => "header_too_large",
            BundleError::UntrustedSigner { .. } => "untrusted_signer",
            BundleError::BadSignature => "bad_signature",
            BundleError::PayloadHashMismatch => "payload_hash_mismatch",
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
