//! The gap protocol end to end, with the library alone: two sides made in a temporary directory, bundles exported,
//! carried as files into the other side's inbox and imported; no broker, no network, no `ferry` binary. Every
//! refusal is asserted by its exact kind, on the outcome and in the quarantined file's `.reason`.

mod faults;
mod harness;
mod media;
mod policy;
mod receipts;
mod review;
mod reviewers;
mod transfer;
