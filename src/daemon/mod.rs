//! What the edge and core event loops share: start-up (`start`), the clock, logging, signals,
//! the control socket, link sockets (`link`) and the translations both use ([`translate`]).

mod error;
mod link;
mod runtime;
mod start;
pub mod translate;
pub mod users;

pub use error::{Error, ReloadError};
pub use link::{tcp_link, udp_link, Inbound, LinkIo, LinkTx};
pub use runtime::{burst, drain_capture, write_state, HubIo, HubSink, HubWriter, Signal, Signals};
pub use start::{daemon_main, load_config, parse_args, run_local, DaemonArgs};

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use crate::control::{self, Reply, Request};
use crate::proto::Instant;

/// The daemons' clock: wall-clock microseconds at start plus a monotonic offset, so that time
/// never goes backwards within a run and handshake timestamps grow across restarts.
#[derive(Clone, Copy)]
pub struct Clock {
    start_wall_us: u64,
    start: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock {
            start_wall_us: wall,
            start: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant(self.start_wall_us + self.start.elapsed().as_micros() as u64)
    }

    /// The tokio deadline for a protocol instant.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        let from_start = at.0.saturating_sub(self.start_wall_us);
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_micros(from_start))
    }

    /// Seconds since the daemon started.
    pub fn uptime_s(&self) -> u64 {
        self.start.elapsed().as_secs()
    }
}

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let tag = match r.level() {
                Level::Error => "error",
                Level::Warn => "warn",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            eprintln!("braid[{}] {tag}: {}", std::process::id(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Parses a log level name as written in UCI (`option log_level 'info'`).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s {
        "error" | "err" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" | "notice" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        "off" | "none" => Some(LevelFilter::Off),
        _ => None,
    }
}

/// Logs to stderr in a terminal (or with `force_stderr`), else to syslog (facility daemon,
/// tag braid), falling back to stderr when there is no syslog. Safe to call more than once.
pub fn init_logging(level: LevelFilter, force_stderr: bool) {
    let use_syslog =
        !force_stderr && !std::io::stderr().is_terminal() && Path::new("/dev/log").exists();
    if use_syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "braid".into(),
            pid: std::process::id(),
        };
        if let Ok(logger) = syslog::unix(formatter) {
            if log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger))).is_ok() {
                log::set_max_level(level);
            }
            return;
        }
    }
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}

/// A request from the control socket, with the channel its reply goes back on.
pub struct ControlCall {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Listens on the control socket (mode 0600) and forwards each request to the event loop.
/// Removes a stale socket file left by a crash; refuses to start if a daemon answers there, or
/// if the path is anything but a socket (option control_socket is set by whoever may write
/// /etc/config/braid, LuCI logins included: root must not delete a file named there).
pub struct ControlServer {
    path: PathBuf,
}

impl ControlServer {
    pub fn bind(path: &Path, calls: mpsc::Sender<ControlCall>) -> std::io::Result<ControlServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket: not removed (check option control_socket)",
                        path.display()
                    ),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("another braid answers on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = bind_private(path)?;
        tokio::task::spawn_local(serve(listener, calls));
        Ok(ControlServer {
            path: path.to_owned(),
        })
    }
}

/// Binds a Unix socket at `path` that is never reachable with a mode other than 0600: it is
/// bound in a fresh directory of mode 0700 beside `path`, made 0600 there, then renamed into
/// place (binding at `path` and then changing the mode left a moment when any local user
/// could connect; the umask is process-wide, so not changed here).
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the control socket path names no file"))?;
    let mut private_name = std::ffi::OsString::from(".");
    private_name.push(name);
    private_name.push(format!(".{}", std::process::id()));
    let private = dir.join(private_name);
    // A leftover of a crashed daemon that had this pid: only ever a directory we made.
    if std::fs::symlink_metadata(&private).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_file(private.join("s"));
        let _ = std::fs::remove_dir(&private);
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let inner = private.join("s");
    let bound = UnixListener::bind(&inner).and_then(|l| {
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(l)
    });
    if bound.is_err() {
        let _ = std::fs::remove_file(&inner);
    }
    let _ = std::fs::remove_dir(&private);
    bound
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve(listener: UnixListener, calls: mpsc::Sender<ControlCall>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let calls = calls.clone();
        tokio::task::spawn_local(async move {
            let mut buf = Vec::new();
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                (&mut stream)
                    .take(control::MAX_MESSAGE as u64)
                    .read_to_end(&mut buf),
            )
            .await;
            let reply = match read {
                Ok(Ok(_)) => match control::parse_request(&buf) {
                    Ok(request) => {
                        let (tx, rx) = oneshot::channel();
                        if calls
                            .send(ControlCall { request, reply: tx })
                            .await
                            .is_err()
                        {
                            Reply::error("daemon is stopping")
                        } else {
                            rx.await
                                .unwrap_or_else(|_| Reply::error("daemon is stopping"))
                        }
                    }
                    Err(e) => Reply::error(e),
                },
                _ => Reply::error("request not received in time"),
            };
            let body = serde_json::to_vec(&reply).expect("replies serialize");
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Re-reads a config file for a reload: every diagnostic in one line, for the log and the reply.
pub fn reload_config(file: &str) -> Result<crate::config::model::Config, ReloadError> {
    crate::config::load(Path::new(file)).map_err(|e| {
        let d: Vec<String> = e.diagnostics().iter().map(|d| d.to_string()).collect();
        ReloadError::Config(if d.is_empty() {
            e.to_string()
        } else {
            d.join("; ")
        })
    })
}

/// A daemon's drop counters as the status protocol lists them.
pub fn counters<'a>(
    drops: impl IntoIterator<Item = (&'a &'static str, &'a u64)>,
) -> Vec<control::Counter> {
    drops
        .into_iter()
        .map(|(k, v)| control::Counter {
            reason: (*k).into(),
            count: *v,
        })
        .collect()
}

/// How often one reason of refusal is logged at most.
pub const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// What a daemon refused on purpose (an unknown key, a flood, a connection over a limit, a
/// packet its policy forbids), counted by reason in the words `braid status` shows, and logged
/// at most once a minute per reason: a flood from forged addresses cannot fill the log, and the
/// line says how many more there were since the last one.
#[derive(Debug, Default)]
pub struct Refusals {
    /// In the order first seen (a stable order for `braid status`).
    reasons: Vec<Refusal>,
}

#[derive(Debug)]
struct Refusal {
    reason: &'static str,
    count: u64,
    logged_at: Option<std::time::Instant>,
    /// Refusals of this reason since it was last logged.
    unlogged: u64,
}

impl Refusals {
    /// Counts one refusal for `reason` (plain words, e.g. "handshakes: too many at once") and
    /// logs it with `detail` (who, and what the operator can do) unless this reason was logged
    /// less than [`REFUSAL_LOG_EVERY`] before `now`. Returns whether it was logged.
    pub fn refuse(
        &mut self,
        now: std::time::Instant,
        reason: &'static str,
        detail: impl FnOnce() -> String,
    ) -> bool {
        let i = match self.reasons.iter().position(|r| r.reason == reason) {
            Some(i) => i,
            None => {
                self.reasons.push(Refusal {
                    reason,
                    count: 0,
                    logged_at: None,
                    unlogged: 0,
                });
                self.reasons.len() - 1
            }
        };
        let r = &mut self.reasons[i];
        r.count += 1;
        if r.logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < REFUSAL_LOG_EVERY)
        {
            r.unlogged += 1;
            return false;
        }
        let more = match r.unlogged {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        log::warn!("refused ({reason}): {}{more}", detail());
        r.logged_at = Some(now);
        r.unlogged = 0;
        true
    }

    /// How many were refused for `reason`.
    pub fn count(&self, reason: &str) -> u64 {
        self.reasons
            .iter()
            .find(|r| r.reason == reason)
            .map_or(0, |r| r.count)
    }

    /// The counters as the status protocol lists them.
    pub fn counters(&self) -> Vec<control::Counter> {
        self.reasons
            .iter()
            .map(|r| control::Counter {
                reason: r.reason.into(),
                count: r.count,
            })
            .collect()
    }
}

/// Sleeps until `deadline`, or forever when there is none (a `select!` arm for the next timer).
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_always_and_logged_once_a_minute_per_reason() {
        let mut r = Refusals::default();
        let t0 = std::time::Instant::now();
        let s = std::time::Duration::from_secs;
        assert!(r.refuse(t0, "handshakes: too many at once", || "from a".into()));
        assert!(
            !r.refuse(t0 + s(1), "handshakes: too many at once", || "from b"
                .into())
        );
        assert!(r.refuse(t0 + s(1), "TCP connections: too many in all", || "c".into()));
        assert!(!r.refuse(t0 + s(59), "handshakes: too many at once", || "d".into()));
        assert!(r.refuse(t0 + s(61), "handshakes: too many at once", || "e".into()));
        assert_eq!(r.count("handshakes: too many at once"), 4);
        assert_eq!(
            r.counters(),
            vec![
                control::Counter {
                    reason: "handshakes: too many at once".into(),
                    count: 4
                },
                control::Counter {
                    reason: "TCP connections: too many in all".into(),
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn clock_is_monotonic_and_maps_to_deadlines() {
        let c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        let d = c.deadline(a + std::time::Duration::from_millis(5));
        assert!(d > tokio::time::Instant::from_std(c.start));
    }

    #[test]
    fn a_control_socket_path_that_is_not_a_socket_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwd");
        std::fs::write(&path, "root:x:0:0\n").unwrap();
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            for p in [&path, &link] {
                let (tx, _rx) = mpsc::channel(4);
                let e = ControlServer::bind(p, tx).err().expect("refused");
                assert!(e.to_string().contains("is not a socket"), "{e}");
            }
        });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "root:x:0:0\n");
        assert!(std::fs::symlink_metadata(&link).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The socket is never seen at its path with a mode other than 0600 (another thread
    /// watches the path while the socket is made again and again), and nothing else is left.
    #[test]
    fn the_control_socket_is_never_open_to_others() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("braid-ctl-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..300 {
                let l = bind_private(&path).unwrap();
                drop(l);
                std::fs::remove_file(&path).unwrap();
            }
        });
        stop.store(true, Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        assert!(!seen.is_empty(), "the watcher saw the socket");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0o600]);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn control_round_trip_over_a_real_socket() {
        let dir = std::env::temp_dir().join(format!("braid-ctl-{}", std::process::id()));
        let path = dir.join("ctl.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let (tx, mut rx) = mpsc::channel(4);
            let server = ControlServer::bind(&path, tx).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "root only");
            let p2 = path.clone();
            let client = tokio::task::spawn_blocking(move || {
                let link = control::request(
                    &p2,
                    &Request::Link {
                        name: "wwan".into(),
                        up: false,
                        device: None,
                    },
                );
                let status = control::request(&p2, &Request::Status);
                (link.map(|r| r.ok), status.map(|r| r.status.unwrap().role))
            });
            for _ in 0..2 {
                let call = rx.recv().await.unwrap();
                let reply = match call.request {
                    Request::Link { name, up, .. } => {
                        assert_eq!((name.as_str(), up), ("wwan", false));
                        Reply::ok()
                    }
                    Request::Status => Reply {
                        status: Some(control::Status {
                            role: "edge".into(),
                            ..Default::default()
                        }),
                        ..Reply::ok()
                    },
                    Request::Reload | Request::Stop => Reply::error("unexpected"),
                };
                call.reply.send(reply).unwrap();
            }
            let (link, status) = client.await.unwrap();
            assert!(link.unwrap());
            assert_eq!(status.unwrap(), "edge");
            // A second daemon on the same socket is refused.
            let (tx2, _rx2) = mpsc::channel(1);
            assert!(ControlServer::bind(&path, tx2).is_err());
            drop(server);
            assert!(!path.exists(), "socket removed on drop");
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}
