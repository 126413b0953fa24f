//! One module per group of commands; each prints for people (or `--json`) and leaves the work to the libraries.

pub mod accounts;
pub mod audit;
pub mod console;
pub mod doctor;
pub mod researcher;
pub mod review;
pub mod runtime;
pub mod serve;
pub mod setup;
pub mod transfer;
