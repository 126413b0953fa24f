//! Shared by the end-to-end tests (`it/`) and the benchmarks (`examples/`): a pair of Ferry sides on fresh
//! vhosts of the real broker, and helpers to run the `ferry` binary.

pub mod harness;
