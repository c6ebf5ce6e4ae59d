//! Old name of tests/support (the namespace helpers), kept so that tests written against it
//! still build: `mod os_util;` gives what `mod support;` gives. New tests include tests/support
//! directly and start with `support::needs_root()`.
#![allow(dead_code, unused_imports)]

#[path = "../support/mod.rs"]
mod support;

pub use support::*;
