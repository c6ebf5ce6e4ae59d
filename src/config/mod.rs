//! UCI configuration: parser, typed model, pure diff.
//!
//! Braid reads `/etc/config/braid` (or `--config FILE`) itself, in the syntax `uci` writes:
//!
//! - [`uci`]: the syntax layer. [`uci::parse`] turns text into a [`uci::Document`] (sections of
//!   `option`/`list` entries with their line and column); [`uci::write`] turns it back into text
//!   exactly as `uci commit` would write it (used for round-trip tests and for rewriting state).
//! - [`model`]: the typed, validated [`Config`] (the `braid`, `link`, `policy` and `peer`
//!   sections). Every error names the file, the line and what was expected. The full list of
//!   options, with defaults, is in the [`model`] documentation.
//! - [`diff`]: [`diff::diff`], a pure function from the old and new [`Config`] to the list of
//!   [`diff::Change`]s that a SIGHUP reload applies.
//!
//! The daemons call [`load`]:
//!
//! ```no_run
//! let cfg = braid::config::load("/etc/config/braid")?;
//! for w in &cfg.warnings {
//!     log::warn!("{w}");
//! }
//! # Ok::<(), braid::config::ConfigError>(())
//! ```
//!
//! On SIGHUP the daemon loads the file again; if that fails it logs every diagnostic and keeps
//! running on the old configuration. Otherwise it applies [`diff::diff`]`(&old, &new)` change by
//! change (rebuilding [`crate::classify::Classifier::from_config`] when policies or classes
//! changed), logs the changes that need a restart, and keeps the new `Config`.
//!
//! Unknown options and unknown section types are **warnings** (kept in [`Config::warnings`] with
//! their file and line; the daemons log each one once), so that a newer LuCI or a typo never
//! takes the router's bonding down; everything else that is wrong is an error.
#![forbid(unsafe_code)]

pub mod budget;
pub mod diff;
pub mod model;
pub mod uci;

use std::fmt;

pub use model::Config;

/// The path the daemons read when no `--config FILE` is given.
pub(crate) const DEFAULT_PATH: &str = "/etc/config/braid";

/// One message about a place in a configuration file: `file:line[:col]: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to the parser.
    pub file: String,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column (in characters), when it helps to point inside the line.
    col: Option<u32>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.col {
            Some(c) => write!(f, "{}:{}:{}: {}", self.file, self.line, c, self.message),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file (or a `key_file` it names) could not be read.
    Io {
        /// The path that failed.
        path: String,
        /// The operating system's reason.
        error: std::io::Error,
    },
    /// The file is not valid UCI syntax (parsing stops at the first such error).
    Syntax(Diagnostic),
    /// The syntax is fine but the values are not: every problem found, in file order.
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// All the diagnostics carried by this error (empty for [`ConfigError::Io`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Syntax(d) => core::slice::from_ref(d),
            ConfigError::Invalid(v) => v,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => write!(f, "{path}: cannot read: {error}"),
            ConfigError::Syntax(d) => write!(f, "{d}"),
            ConfigError::Invalid(ds) => {
                for (i, d) in ds.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Read, parse and validate the configuration file at `path`.
///
/// Warnings (unknown options, sections that do not apply to the role) are returned in
/// [`Config::warnings`]; errors stop the load. A `key_file` is not read here: call
/// [`Config::private_key`] when the key is needed.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
        path: name.clone(),
        error,
    })?;
    load_str(&name, &text)
}

/// Parse and validate configuration text; `file` is the name used in messages.
pub fn load_str(file: &str, text: &str) -> Result<Config, ConfigError> {
    let doc = uci::parse(file, text).map_err(ConfigError::Syntax)?;
    model::Config::from_document(file, &doc)
}
