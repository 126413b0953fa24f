//! The gap protocol of Ferry: everything a side does with files, and nothing with the network.
//!
//! - [`side_dir`]: every path and file name of a side's directory ([`Layout`], [`BundleName`]) and the directory
//!   opened for a command ([`SideDir`]).
//! - [`setup`]: `ferry init`, `trust add`, `asset add`.
//! - [`export`]: everything pending in one bundle in `outbox/`; `--resend`.
//! - [`import`]: bundles from `inbox/`: [`import::policy`] (every check before decryption), staging, apply.
//! - [`quarantine`]: refused bundles with their `.reason` files; [`Refusal`] has a typed kind per check.
//! - [`media`]: removable media and bundle parts.
//! - [`review`]: output review on the high side: disclosure checks, echo indexes, releases that record what
//!   they carry.
//! - [`rotation`]: key rotation, a leaf that the others call.
//! - [`fs`]: atomic writes and directory syncs.
//! - [`failpoint`]: named crash points for the fault tests (the `failpoints` feature; nothing without it).
//!
//! **Architecture Invariant:** no network I/O, no async runtime, no broker: this crate depends on neither tokio,
//! lapin nor ferry-broker, so every rule of the gap can be tested in milliseconds.
//!
//! **Architecture Invariant:** nothing of a bundle is decrypted before its signature (against the pinned key)
//! and [`import::policy`] have passed; nothing of a refused bundle is applied.

mod error;
pub mod export;
pub mod failpoint;
pub mod fs;
pub mod import;
pub mod media;
pub mod quarantine;
mod refusal;
pub mod review;
pub mod rotation;
pub mod setup;
pub mod side_dir;
pub mod tree;

pub use error::{Result, TransferError};
pub use refusal::Refusal;
pub use side_dir::{BundleName, Layout, SideDir};

#[cfg(test)]
mod tidy {
    /// The crate's boundary, checked where it is declared: no async runtime, no broker.
    #[test]
    fn depends_on_neither_tokio_lapin_nor_ferry_broker() {
        let manifest = include_str!("../Cargo.toml");
        for forbidden in ["tokio", "lapin", "ferry-broker"] {
            assert!(
                !manifest
                    .lines()
                    .any(|l| l.trim_start().starts_with(forbidden)),
                "ferry-transfer must not depend on {forbidden}"
            );
        }
    }
}
