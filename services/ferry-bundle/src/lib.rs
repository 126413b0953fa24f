//! Ferry transfer bundles: signed, age-encrypted files that carry entries across an air gap.
//!
//! Start from [`write_bundle`] (sender) and [`open`] with [`OpenOptions`] (receiver). The
//! byte layout is specified in `schemas/bundle-format.md` (format version 3): a signed
//! 1024-byte header block, a table of the SHA-256 of every payload segment (which the
//! header signs), then a standard age v1 file whose plaintext holds the entries and a
//! signed manifest of their paths and lengths. Each segment is checked against the table
//! before any of it is decrypted, so the plaintext needs no hash of its own; segments are
//! encrypted, verified and decrypted on every core.
//!
//! Modules:
//! - `keys`: [`SideKeys`] (Ed25519 signing key + age identity, saved as two 0600 files)
//!   and [`PublicIdentity`] (what the other side pins, as `public.txt`).
//! - `format`: the wire format: [`Header`], the payload's segment layout, [`Channel`],
//!   [`Limits`], path rules ([`check_path`]) and the encoding and signing of the header
//!   block and manifest.
//! - `age_v1`: the age v1 file format (X25519 stanza, header MAC, STREAM chunks), so that
//!   chunks can be encrypted and decrypted independently, in place, on any thread.
//! - `parallel`: an ordered parallel map: helper threads transform segments, the calling
//!   thread takes them back in order.
//! - `write`: [`write_bundle`], which lays the entries out in segments, has them encrypted
//!   and hashed on helper threads, and writes them in order.
//! - `read`: [`inspect`], [`verify_bundle`] and [`open`], the one way to open a bundle
//!   ([`OpenOptions`]: pinned signer, current and retired identities, limits, header
//!   check, sink), which verifies each segment before decrypting it and streams entries
//!   into an [`EntrySink`] such as [`MemorySink`], in one pass; [`open_file`] is `open`
//!   for a bundle on disk, whose helper threads read their own segments.
//! - `parts`: [`split_bundle`] and [`join_parts`], which cut a bundle file into signed
//!   parts that fit on removable media and put it back together, naming any missing,
//!   foreign, duplicate or corrupted part.
//! - `rotation`: [`RotationStatement`] (a key change signed by the old and the new key,
//!   R9) and [`retire_keys`].
//! - `hash`: SHA-256: ring's assembly with the `ring-sha256` feature (on by default, SHA
//!   extensions where the CPU has them), else `sha2`. Same digests.
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
    HEADER_BLOCK_LEN, MAX_HEADER_LEN, MAX_MANIFEST_LEN, MAX_SEGMENT_CHUNKS, MAX_STREAM_OFFSET,
    MAX_TABLE_LEN, PAYLOAD_MAGIC,
};
pub use keys::{key_id, PublicIdentity, SideKeys, AGE_KEY_FILE, SIGNING_KEY_FILE};
pub use parts::{
    is_part_file, join_parts, parse_part_size, read_part_info, split_bundle, PartInfo, MAX_PARTS,
    MAX_PART_INFO_LEN, PART_FORMAT_VERSION, PART_HEADER_LEN, PART_MAGIC, PART_SIZE_BLURAY,
    PART_SIZE_DVD, PART_SIZE_FAT32,
};
pub use read::{
    inspect, open, open_file, verify_bundle, EntrySink, HeaderCheck, MemorySink, OpenOptions,
    OpenedBundle,
};
pub use rotation::{retire_keys, RotationStatement, MAX_ROTATION_LEN, ROTATION_VERSION};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use write::seal_plaintext_for_fuzzing;
pub use write::{write_bundle, write_bundle_file, Entry, EntrySource, WrittenBundle};

/// The bundle format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 3;
