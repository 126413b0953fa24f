//! Ferry transfer bundles: signed, age-encrypted files that carry entries across an air gap.
//!
//! Start from [`write_bundle`] (sender) and [`open`] with [`OpenOptions`] (receiver). The byte layout is
//! specified in `schemas/bundle-format.md`; a bundle is a signed 1024-byte header block
//! followed by a standard age v1 file whose plaintext holds the entries and a signed
//! manifest.
//!
//! Modules:
//! - `keys`: [`SideKeys`] (Ed25519 signing key + age identity, saved as two 0600 files)
//!   and [`PublicIdentity`] (what the other side pins, as `public.txt`).
//! - `format`: the wire format: [`Header`], [`Channel`], [`Limits`], path rules
//!   ([`check_path`]) and the encoding and signing of the header block and manifest.
//! - `write`: [`write_bundle`], which streams [`Entry`]s through age into the output.
//! - `read`: [`inspect`], [`verify_bundle`] and [`open`], the one way to open a bundle
//!   ([`OpenOptions`]: pinned signer, current and retired identities, limits, header
//!   check, sink), which verifies before decrypting and streams entries into an
//!   [`EntrySink`] such as [`MemorySink`].
//! - `parts`: [`split_bundle`] and [`join_parts`], which cut a bundle file into signed
//!   parts that fit on removable media and put it back together, naming any missing,
//!   foreign, duplicate or corrupted part.
//! - `rotation`: [`RotationStatement`] (a key change signed by the old and the new key,
//!   R9) and [`retire_keys`].
//! - `hash`: SHA-256 plumbing: the entry hash and the ciphertext hash each run on a helper
//!   thread of their own for large bundles, fed through short queues of 1 MiB buffers.
//!   SHA-256 dominates the cost of packing and opening; the `ring-sha256` feature (on by
//!   default) uses ring's assembly instead of `sha2`, 1.6-2x as fast on CPUs without SHA
//!   extensions.
//! - `error`: [`BundleError`], one variant per refusal.
//!
//! **Architecture Invariant:** this crate does no network I/O and knows nothing of jobs,
//! ledgers or policy. It answers "is this bundle authentic and well-formed, and what is in
//! it"; whether its sequence number, expiry and channel are acceptable (R3–R5, R8) is the
//! caller's decision, made on the returned [`Header`].

mod age_v1;
mod error;
mod format;
mod hash;
mod keys;
mod parallel;
mod parts;
mod read;
mod rotation;
mod write;

#[cfg(test)]
mod tests;

pub use error::BundleError;
pub use format::{
    check_path, new_bundle_id, Channel, Header, HeaderParams, Limits, ManifestEntry, BUNDLE_MAGIC,
    HEADER_BLOCK_LEN, MAX_HEADER_LEN, MAX_MANIFEST_LEN, PAYLOAD_MAGIC,
};
pub use keys::{key_id, PublicIdentity, SideKeys, AGE_KEY_FILE, SIGNING_KEY_FILE};
pub use parts::{
    is_part_file, join_parts, parse_part_size, read_part_info, split_bundle, PartInfo, MAX_PARTS,
    MAX_PART_INFO_LEN, PART_FORMAT_VERSION, PART_HEADER_LEN, PART_MAGIC, PART_SIZE_BLURAY,
    PART_SIZE_DVD, PART_SIZE_FAT32,
};
pub use read::{
    inspect, open, verify_bundle, EntrySink, HeaderCheck, MemorySink, OpenOptions, OpenedBundle,
};
pub use rotation::{retire_keys, RotationStatement, MAX_ROTATION_LEN, ROTATION_VERSION};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use write::seal_plaintext_for_fuzzing;
pub use write::{write_bundle, Entry, EntrySource, WrittenBundle};

/// The bundle format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
