//! Why a daemon stops at start or while running, and why it refuses a reload or a request: the
//! daemons' own errors, each with the words the operator reads (the log, stderr, `braid`'s reply).

use std::fmt;

/// Why `braid edge` or `braid core` cannot start or go on (printed as `braid ROLE: <this>`).
#[derive(Debug)]
pub enum Error {
    /// The config lacks something the role needs, or has a value it cannot use (the text says
    /// which and where).
    Config(String),
    /// The host refused a change braid makes (namespace, hub, capture, rules, routes, sysctls).
    Os(crate::os::Error),
    /// braid's own nftables table could not be made or adopted.
    Nftables(crate::os::Error),
    /// The hub's capture socket failed.
    Capture(std::io::Error),
    /// The control socket could not be made (another daemon answers there, or the path is taken).
    ControlSocket { path: String, err: std::io::Error },
    /// The signal handlers could not be installed.
    Signal(std::io::Error),
    /// The kernel's random source failed.
    Random(getrandom::Error),
    /// A listening socket could not be opened (the text names the address and port).
    Listen(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(s) | Error::Listen(s) => f.write_str(s),
            Error::Os(e) => write!(f, "{e}"),
            Error::Nftables(e) => write!(f, "nftables: {e}"),
            Error::Capture(e) => write!(f, "capture: {e}"),
            Error::ControlSocket { path, err } => write!(f, "control socket {path}: {err}"),
            Error::Signal(e) => write!(f, "{e}"),
            Error::Random(e) => write!(f, "random seed: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::os::Error> for Error {
    fn from(e: crate::os::Error) -> Error {
        Error::Os(e)
    }
}

/// Why a reload was refused: the running config stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The new config has errors (every diagnostic, in one line).
    Config(String),
    /// The new config has more links than a session can number.
    TooManyLinks,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Config(s) => f.write_str(s),
            ReloadError::TooManyLinks => f.write_str("more than 256 links"),
        }
    }
}

impl std::error::Error for ReloadError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_reads_the_same_words_as_before() {
        let io = || std::io::Error::from_raw_os_error(98);
        let e = Error::ControlSocket {
            path: "/var/run/braid.sock".into(),
            err: io(),
        };
        assert!(e
            .to_string()
            .starts_with("control socket /var/run/braid.sock: "));
        assert!(Error::Capture(io()).to_string().starts_with("capture: "));
        assert_eq!(
            Error::Config("core_host is not set".into()).to_string(),
            "core_host is not set"
        );
        assert_eq!(ReloadError::TooManyLinks.to_string(), "more than 256 links");
    }
}
