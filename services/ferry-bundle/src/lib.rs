//! Ferry transfer bundles: signed, age-encrypted files that carry entries across an air gap.
//!
//! Start from [`write_bundle`] (sender) and [`open_bundle`] (receiver). The byte layout is
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
//! - `read`: [`inspect`], [`verify_bundle`], [`open_bundle`] and [`open_bundle_checked`],
//!   which verify before decrypting and stream entries into an [`EntrySink`] such as
//!   [`MemorySink`].
//! - `hash`: SHA-256 plumbing (a hashing writer, and entry hashing on a second core).
//!   SHA-256 dominates the cost of packing and opening; the `ring-sha256` feature swaps
//!   `sha2` for ring's assembly, about twice as fast on CPUs without SHA extensions.
//! - `error`: [`BundleError`], one variant per refusal.
//!
//! **Architecture Invariant:** this crate does no network I/O and knows nothing of jobs,
//! ledgers or policy. It answers "is this bundle authentic and well-formed, and what is in
//! it"; whether its sequence number, expiry and channel are acceptable (R3–R5, R8) is the
//! caller's decision, made on the returned [`Header`].

mod error;
mod format;
mod hash;
mod keys;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub use error::BundleError;
pub use format::{
    check_path, new_bundle_id, Channel, Header, HeaderParams, Limits, ManifestEntry, BUNDLE_MAGIC,
    HEADER_BLOCK_LEN, MAX_HEADER_LEN, MAX_MANIFEST_LEN, PAYLOAD_MAGIC,
};
pub use keys::{key_id, PublicIdentity, SideKeys, AGE_KEY_FILE, SIGNING_KEY_FILE};
pub use read::{
    inspect, open_bundle, open_bundle_checked, verify_bundle, EntrySink, MemorySink, OpenedBundle,
};
pub use write::{write_bundle, Entry, EntrySource, WrittenBundle};

/// The bundle format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
