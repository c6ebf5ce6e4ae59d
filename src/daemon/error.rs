//! Why a daemon stops at start or while running, and why it refuses a reload or a request: the
//! daemons' own errors, each with the words the operator reads (the log, stderr, `braid`'s reply).

use std::fmt;

/// Why `braid edge` or `braid core` cannot start or go on (printed as `braid ROLE: <this>`).
#[derive(Debug)]
pub(crate) enum Error {
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
pub(crate) enum ReloadError {
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

/// Why a daemon refused a control request. Its words are the reply's `error` text, which
/// `braid` prints as it is (`braid link`, `braid reload`, `braid stop`, LuCI's backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// Not a request of the control protocol (the JSON parser's words say where).
    Malformed(String),
    /// The client sent no complete request in time.
    NotInTime,
    /// The daemon is stopping and answers nothing more.
    Stopping,
    /// `braid link NAME`: the edge has no link of that section or device name.
    NoSuchLink(String),
    /// `braid link down NAME --device DEV`: a device goes only with `up`.
    DeviceWithDown,
    /// `--device DEV` is not a valid interface name.
    NotADevice(String),
    /// `braid link` sent to the core: links are the edge's.
    LinkOnCore,
    /// `braid stop` sent to the edge: only the core keeps anything across a restart.
    StopOnEdge,
    /// `braid reload` refused: the running config stays.
    Reload(ReloadError),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(e) => write!(f, "bad request: {e}"),
            RequestError::NotInTime => f.write_str("request not received in time"),
            RequestError::Stopping => f.write_str("daemon is stopping"),
            RequestError::NoSuchLink(name) => {
                write!(f, "no link named '{name}' (see braid status)")
            }
            RequestError::DeviceWithDown => f.write_str("--device goes with `braid link up`"),
            RequestError::NotADevice(d) => write!(f, "'{d}' is not a device name"),
            RequestError::LinkOnCore => {
                f.write_str("links are managed by the edge; run `braid link` there")
            }
            RequestError::StopOnEdge => f.write_str(
                "`braid stop` is for the core; the edge removes everything whenever it stops \
                 (SIGTERM, /etc/init.d/braid stop)",
            ),
            RequestError::Reload(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RequestError {}

impl From<ReloadError> for RequestError {
    fn from(e: ReloadError) -> RequestError {
        RequestError::Reload(e)
    }
}

impl From<RequestError> for crate::control::Reply {
    fn from(e: RequestError) -> crate::control::Reply {
        crate::control::Reply::error(e.to_string())
    }
}

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

    /// What `braid link`, `braid reload` and `braid stop` print when refused: the words of
    /// before the enum, and no Rust names.
    #[test]
    fn refused_requests_read_as_plain_words() {
        let all = [
            (
                RequestError::Malformed("unknown variant `format-disk`".into()),
                "bad request: unknown variant `format-disk`",
            ),
            (RequestError::NotInTime, "request not received in time"),
            (RequestError::Stopping, "daemon is stopping"),
            (
                RequestError::NoSuchLink("wwan".into()),
                "no link named 'wwan' (see braid status)",
            ),
            (
                RequestError::DeviceWithDown,
                "--device goes with `braid link up`",
            ),
            (
                RequestError::NotADevice("a b".into()),
                "'a b' is not a device name",
            ),
            (
                RequestError::LinkOnCore,
                "links are managed by the edge; run `braid link` there",
            ),
            (
                RequestError::StopOnEdge,
                "`braid stop` is for the core; the edge removes everything whenever it stops \
                 (SIGTERM, /etc/init.d/braid stop)",
            ),
            (
                ReloadError::Config("braid.conf:3: bad mtu".into()).into(),
                "braid.conf:3: bad mtu",
            ),
        ];
        for (e, words) in all {
            assert_eq!(e.to_string(), words);
            let reply = crate::control::Reply::from(e);
            assert!(!reply.ok);
            assert_eq!(reply.error.as_deref(), Some(words));
        }
    }
}
