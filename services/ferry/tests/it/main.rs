//! The `ferry` binary end to end: real age and Ed25519, real SQLite files, and for `broker::` the real RabbitMQ
//! broker (two vhosts stand in for the two sides' brokers) and a real sandboxed `python3`.
//!
//! - `offline::` needs nothing but the binary: it runs in `scripts/check`, even without a network.
//! - `broker::` needs RabbitMQ on 127.0.0.1:5672 with its management API on 15672 (`scripts/prereqs` enables it)
//!   and `rabbitmqctl` (root); skip it with `-- --skip broker::`.
//! - `browser::` drives `ferry console` in headless Chromium (Debian's `chromium`, npm's playwright-core, both
//!   installed by `scripts/prereqs`); it needs no broker, and fails when the browser is missing; skip it with
//!   `-- --skip browser::`.

use std::path::PathBuf;

mod broker;
mod browser;
mod harness;
mod offline;

/// The binary under test: cargo builds it before this test binary, so it is never stale.
pub fn ferry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferry"))
}
