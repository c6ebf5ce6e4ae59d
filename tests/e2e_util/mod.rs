//! Old name of tests/support (the lab's helpers), kept so that tests written against it still
//! build: `mod e2e_util; use e2e_util::*;` gives what `mod support; use support::*;` gives.
//! New tests include tests/support directly and start with `support::needs_lab()`.
#![allow(dead_code, unused_imports)]

#[path = "../support/mod.rs"]
mod support;

pub use support::*;
