//! The command line without a broker: what only the binary does (exit codes, output, flags, `--json` shapes) on
//! top of the gap protocol, which ferry-transfer's own tests cover rule by rule.

mod cli;
#[cfg(feature = "failpoints")]
mod crash;
mod deploy;
mod docs;
mod doctor;
mod media;
mod progress;
mod transfer;
