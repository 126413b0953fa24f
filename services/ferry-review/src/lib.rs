//! What the owner reads before deciding on a job, made safe to read and checked automatically.
//!
//! - [`escape`]: the one escaping function family for everything a person reads (titles, names, code,
//!   stdout, output contents): controls, bidi controls and invisible characters shown as `\x1b`,
//!   `\u{202e}`.
//! - [`code`]: refusing job code with control or bidi characters (Trojan Source) at intake.
//! - [`preview`]: an output rendered for the owner: text escaped and line-numbered (head and tail of a
//!   long one, with exact counts), binary as its detected type, size, SHA-256 and a hex dump.
//! - [`diff`]: the line diff of a revision's code against the version before.
//! - [`checks`]: automated disclosure checks when a job finishes (`private_echo` against an index of
//!   each private input built once per asset version, `canary`, `large_output`, `binary_output`,
//!   `many_rows`, `small_count`), with thresholds and the kinds that block a release.
//!
//! This crate does no I/O of its own beyond what its callers hand it, and knows nothing of the store or
//! the bundle format.

pub mod checks;
pub mod code;
pub mod diff;
pub mod escape;
pub mod preview;
