//! What the edge and core event loops share: start-up (`start`), the clock, logging, signals,
//! the control socket's server (`control`), link sockets (`link`) and the translations both
//! use ([`translate`]).

mod control;
mod error;
mod link;
mod runtime;
mod start;
pub(crate) mod status;
pub(crate) mod translate;
pub(crate) mod users;

pub(crate) use control::ControlServer;
pub(crate) use error::{Error, ReloadError, RequestError};
pub(crate) use link::{
    drain_sockets, poll_sockets, send_out, tcp_link, udp_link, Inbound, LinkIo, LinkSocket, LinkTx,
    Outbox, Outgoing, Sockets, UdpLink,
};
#[cfg(test)]
pub(crate) use runtime::block_on_local;
pub(crate) use runtime::{
    burst, drain_capture, write_state, HubIo, HubSink, HubWriter, Signal, Signals,
};
pub(crate) use start::{daemon_main, DaemonArgs};

use std::io::IsTerminal;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::control::Counter;
use crate::proto::Instant;

/// The daemons' clock: wall-clock microseconds at start plus a monotonic offset, so that time
/// never goes backwards within a run and handshake timestamps grow across restarts.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    start_wall_us: u64,
    start: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Clock {
            start_wall_us: wall,
            start: std::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant(self.start_wall_us + self.start.elapsed().as_micros() as u64)
    }

    /// The tokio deadline for a protocol instant.
    pub(crate) fn deadline(&self, at: Instant) -> tokio::time::Instant {
        let from_start = at.0.saturating_sub(self.start_wall_us);
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_micros(from_start))
    }

    /// Seconds since the daemon started.
    pub(crate) fn uptime_s(&self) -> u64 {
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

/// Logs to stderr in a terminal (or with `force_stderr`), else to syslog (facility daemon,
/// tag braid), falling back to stderr when there is no syslog. Safe to call more than once.
pub(crate) fn init_logging(level: LevelFilter, force_stderr: bool) {
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

/// Re-reads a config file for a reload: every diagnostic in one line, for the log and the reply.
pub(crate) fn reload_config(file: &str) -> Result<crate::config::model::Config, ReloadError> {
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
pub(crate) fn counters<'a>(
    drops: impl IntoIterator<Item = (&'a &'static str, &'a u64)>,
) -> Vec<Counter> {
    drops
        .into_iter()
        .map(|(k, v)| Counter {
            reason: (*k).into(),
            count: *v,
        })
        .collect()
}

/// How often one reason of refusal is logged at most.
pub(crate) const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// What a daemon refused on purpose (an unknown key, a flood, a connection over a limit, a
/// packet its policy forbids), counted by reason in the words `braid status` shows, and logged
/// at most once a minute per reason: a flood from forged addresses cannot fill the log, and the
/// line says how many more there were since the last one.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
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
    pub(crate) fn refuse(
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

    /// The counters as the status protocol lists them.
    pub(crate) fn counters(&self) -> Vec<Counter> {
        self.reasons
            .iter()
            .map(|r| Counter {
                reason: r.reason.into(),
                count: r.count,
            })
            .collect()
    }
}

/// Sleeps until `deadline`, or forever when there is none (a `select!` arm for the next timer).
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Refusals {
        /// How many were refused for `reason`.
        fn count(&self, reason: &str) -> u64 {
            self.reasons
                .iter()
                .find(|r| r.reason == reason)
                .map_or(0, |r| r.count)
        }
    }

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
                Counter {
                    reason: "handshakes: too many at once".into(),
                    count: 4
                },
                Counter {
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
}
