//! Everything that talks to RabbitMQ: intake, the researcher's calls, `ferry serve` on both sides, the workers.
//! Each test makes its own vhosts and users (`Pair::with_broker`) and removes them when it ends.

mod accounts;
mod assets;
mod cli;
mod deploy;
mod faults;
mod intake;
mod metrics;
mod quickstart;
mod researcher;
mod review;
mod reviewers;
mod roundtrip;
mod runtimes;
mod setup;
mod stateless;
mod worker;
