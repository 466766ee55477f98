//! What the side-by-side benches share: the server child process (the bench binary
//! re-executed) and both sides of its protocol, CPU time from `/proc`, CPU placement with
//! `taskset`, medians and per-round ratios, where results go, and the arguments `cargo bench`
//! passes.
//!
//! Each bench is a crate of its own and includes this module with
//! `#[path = "common/mod.rs"] mod common;`.

// Each bench uses only some of these helpers, and being a crate of its own it would warn about
// the rest, which other benches use.
#![allow(dead_code)]

pub mod cli;
pub mod cpu;
pub mod out;
pub mod pin;
pub mod process;
pub mod stats;
