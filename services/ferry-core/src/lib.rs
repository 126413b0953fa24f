//! The domain of Ferry: what a job is, where it stands, what crosses the gap, and where each side keeps it.
//!
//! Start from [`store::Store`], the side's SQLite state: every job, every owner decision (with who made it and
//! why), the asset catalog, the channel ledger of imported bundles and the queue of researcher notifications.
//! Its schema has a version ([`store::SCHEMA_VERSION`], kept in `PRAGMA user_version`): opening a store applies
//! the migrations it lacks, upgrading a store made before versioning in place, and refuses one written by a
//! newer Ferry.
//!
//! - [`job`]: the job state machine the researcher sees ([`job::JobState`]), with its transition table; the store
//!   moves jobs only along it.
//! - [`channel`]: a bundle's place across the gap: the [`Channel`] it travels on, its sequence number [`Seq`] and
//!   the [`ContentHash`] chaining it to the one before.
//! - [`wire`]: JSON messages on the low-side broker (job requests, researcher calls, job updates); each has a
//!   JSON Schema under `schemas/`.
//! - [`records`]: postcard records carried inside transfer bundles; specified in `schemas/bundle-format.md`.
//! - [`config`]: a side's `ferry.toml`, and [`Side`], which side of the gap it is.
//! - [`names`]: validation of researcher, asset and file names.
//! - [`decision`]: reviewers' Ed25519 keys, the decisions they sign, and counting the ones that verify.
//! - [`time`]: unix seconds and their one text form, [`time::rfc3339`].
//!
//! Where a stored value is missing, the crate says so (an `Option`, or an error) rather than making one up.
//!
//! The `clap` feature (off by default) derives `clap::ValueEnum` for [`Side`], so that a command line can take
//! it directly; without it the crate has no command-line dependency.
//!
//! This crate does no network I/O and knows nothing of the bundle format's cryptography.

pub mod channel;
pub mod config;
pub mod decision;
pub mod job;
pub mod names;
pub mod receipt;
pub mod records;
pub mod store;
pub mod time;
pub mod tree;
pub mod wire;

pub use channel::{Channel, ContentHash, Seq};
pub use config::{Config, Side};
pub use job::JobState;
pub use store::{Store, StoreError};

pub use time::now;

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
