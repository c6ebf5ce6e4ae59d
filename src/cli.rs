//! Shared command-line helpers.

/// The version string printed by `braid --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
