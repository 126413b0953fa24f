//! End-to-end tests: the real `ferry` binary, the real RabbitMQ broker (two vhosts stand in for the two sides'
//! brokers), real age and Ed25519, real SQLite files and a real sandboxed `python3`.

use ferry_tests::harness;
mod intake;
mod media;
mod policy;
mod roundtrip;
mod transfer;
mod worker;
