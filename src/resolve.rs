//! The core's address as the edge knows it: `core_host` resolved, again and again.
//!
//! A router boots before its modems: at first `core_host` does not resolve, and the edge must
//! wait for it rather than exit. [`CoreAddr`] decides when to ask the resolver (at start, then
//! with backoff from [`BACKOFF_MIN`] to [`BACKOFF_MAX`] while it fails, at once when a link
//! comes up, every [`REFRESH_EVERY`] while running, since a cloud core's address changes),
//! keeps every address the name has (IPv4 first, the order the links try them in), moves to
//! the next one when the one in use is not heard for [`TRY_EACH`], and follows the name when
//! its answer no longer holds the address in use. It says what it waits for, once, and again
//! only when that changes. It reads no clock (time comes in as [`Instant`]) and does no I/O:
//! [`lookup_in_thread`] runs the blocking `getaddrinfo` off the event loop.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::proto::Instant;

/// First retry after a failed lookup; doubled after each failure ...
pub(crate) const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// ... up to this. Short: the edge is of no use without the address, and a query costs a few
/// hundred bytes (a link coming up asks at once anyway).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A name that resolved is asked again this often (a cloud core's address changes).
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// A link coming up asks again at once, but not more often than this once resolved.
pub(crate) const LINK_EVENT_MIN: Duration = Duration::from_secs(10);
/// A lookup with no answer after this long counts as failed (another may start).
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lookups left running at most (a resolver that hangs must not pile up threads).
pub(crate) const MAX_IN_FLIGHT: u32 = 3;
/// With several addresses, the one in use is given up for the next when the core has not been
/// heard on it for this long (a handshake is retried every second meanwhile).
pub(crate) const TRY_EACH: Duration = Duration::from_secs(6);

/// An answer of the resolver: the lookup's number, and the addresses or why there are none.
pub(crate) type Answer = (u32, Result<Vec<SocketAddr>, String>);

/// What the edge must do after an answer or a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The address in use changed (links reopen toward it; the steering's bypass changes).
    pub(crate) moved: bool,
    /// The set of addresses changed.
    pub(crate) changed: bool,
    /// Something new to say in the log: (true = a warning, text).
    pub(crate) log: Option<(bool, String)>,
}

impl Outcome {
    fn none() -> Outcome {
        Outcome {
            moved: false,
            changed: false,
            log: None,
        }
    }
}

/// The core's address(es); see the module doc.
#[derive(Debug, Clone)]
pub(crate) struct CoreAddr {
    host: String,
    port: u16,
    /// An IP address in the config: never resolved.
    literal: bool,
    /// Every address the name has, IPv4 first.
    addrs: Vec<SocketAddr>,
    /// The one in use.
    idx: usize,
    /// Since when the one in use is in use.
    since: Instant,
    /// When to ask next.
    next_at: Instant,
    backoff: Duration,
    /// The last lookup started (its number and when), while unanswered.
    asking: Option<(u32, Instant)>,
    /// Lookups started so far (the number of the next), and those still running.
    started: u32,
    running: u32,
    /// When the name last resolved.
    resolved_at: Option<Instant>,
    /// Why the last lookup failed, while failing (what the log said last).
    error: Option<String>,
    /// The address in use was given up for silence, and nothing was heard since (logged once).
    rotating: bool,
}

impl CoreAddr {
    /// `host` from `core_host` (an IP address or a name), `port` from `core_port`.
    pub(crate) fn new(host: &str, port: u16, now: Instant) -> CoreAddr {
        let ip = host.parse::<IpAddr>().ok();
        CoreAddr {
            host: host.to_string(),
            port,
            literal: ip.is_some(),
            addrs: ip.map(|ip| SocketAddr::new(ip, port)).into_iter().collect(),
            idx: 0,
            since: now,
            next_at: now,
            backoff: BACKOFF_MIN,
            asking: None,
            started: 0,
            running: 0,
            resolved_at: None,
            error: None,
            rotating: false,
        }
    }

    /// The address in use, once known.
    pub(crate) fn current(&self) -> Option<SocketAddr> {
        self.addrs.get(self.idx).copied()
    }

    /// Every address the name has.
    pub(crate) fn all(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The address in use, or `host:port` with what is missing.
    pub(crate) fn describe(&self) -> String {
        match self.current() {
            Some(a) if self.literal => a.to_string(),
            Some(a) => format!("{a} ({})", self.host),
            None => format!("{}:{} (not resolved)", self.host, self.port),
        }
    }

    /// What the edge waits for, while it has no address (for `braid status`).
    pub(crate) fn waiting(&self, now: Instant) -> Option<String> {
        if self.current().is_some() {
            return None;
        }
        let why = match (&self.error, self.asking) {
            (_, Some(_)) => "asking the resolver".to_string(),
            (Some(e), None) => format!(
                "{e}; next try in {} s",
                self.next_at.saturating_since(now).as_secs_f64().ceil() as u64
            ),
            (None, None) => "not asked yet".to_string(),
        };
        Some(format!(
            "waiting for the address of core_host '{}' ({why})",
            self.host
        ))
    }

    /// Whether a lookup should start now; if so, it is counted as started and its number is
    /// returned (pass it to the lookup, which answers with it).
    pub(crate) fn start(&mut self, now: Instant) -> Option<u32> {
        if self.literal || now < self.next_at || self.running >= MAX_IN_FLIGHT {
            return None;
        }
        if let Some((_, at)) = self.asking {
            if now.saturating_since(at) < LOOKUP_TIMEOUT {
                return None;
            }
            // No answer in time: count it as failed; a late answer is still taken.
            let e = format!(
                "no answer from the resolver within {} s",
                LOOKUP_TIMEOUT.as_secs()
            );
            let _ = self.failed(now, e);
            if now < self.next_at {
                return None;
            }
        }
        let n = self.started;
        self.started = self.started.wrapping_add(1);
        self.running += 1;
        self.asking = Some((n, now));
        Some(n)
    }

    /// A link came up or a device appeared: ask again now if unresolved (and not asking), or
    /// if the last answer is older than [`LINK_EVENT_MIN`].
    pub(crate) fn link_event(&mut self, now: Instant) {
        if self.literal || self.asking.is_some() {
            return;
        }
        let stale = self
            .resolved_at
            .map_or(true, |t| now.saturating_since(t) >= LINK_EVENT_MIN);
        if self.current().is_none() || stale {
            self.next_at = self.next_at.min(now);
            self.backoff = BACKOFF_MIN;
        }
    }

    /// Takes an answer of lookup `n`.
    pub(crate) fn answer(&mut self, now: Instant, (n, r): Answer) -> Outcome {
        self.running = self.running.saturating_sub(1);
        let current = self.asking.is_some_and(|(a, _)| a == n);
        if current {
            self.asking = None;
        }
        match r {
            Ok(found) if !found.is_empty() => {
                // IPv4 first, each once (no sort: each one costs the router binary about 4 KB).
                let mut v: Vec<SocketAddr> = Vec::with_capacity(found.len());
                for v4 in [true, false] {
                    for a in &found {
                        if a.is_ipv4() == v4 && !v.contains(a) {
                            v.push(*a);
                        }
                    }
                }
                self.resolved(now, v)
            }
            Ok(_) if current => self.failed(now, "the name has no address".into()),
            Err(e) if current => self.failed(now, e),
            // A failure of a lookup already counted as timed out says nothing new.
            _ => Outcome::none(),
        }
    }

    fn resolved(&mut self, now: Instant, found: Vec<SocketAddr>) -> Outcome {
        self.resolved_at = Some(now);
        self.next_at = now + REFRESH_EVERY;
        self.backoff = BACKOFF_MIN;
        self.error = None;
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let old = self.current();
        let changed = found != self.addrs;
        let keep = old.and_then(|a| found.iter().position(|f| *f == a));
        let log = match (old, keep) {
            (None, _) => Some((
                false,
                format!(
                    "core_host '{}' resolves to {}: using {}",
                    self.host,
                    list(&found),
                    found[0]
                ),
            )),
            (Some(_), Some(_)) if changed => Some((
                false,
                format!(
                    "core_host '{}' now resolves to {} (the address in use stays)",
                    self.host,
                    list(&found)
                ),
            )),
            (Some(a), None) => Some((
                false,
                format!(
                    "core_host '{}' now resolves to {} (was {}): the links move to {}",
                    self.host,
                    list(&found),
                    a.ip(),
                    found[0]
                ),
            )),
            _ => None,
        };
        self.idx = keep.unwrap_or(0);
        self.addrs = found;
        let moved = self.current() != old;
        if moved {
            self.since = now;
            self.rotating = false;
        }
        Outcome {
            moved,
            changed,
            log,
        }
    }

    fn failed(&mut self, now: Instant, e: String) -> Outcome {
        self.asking = None;
        self.next_at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        let mut out = Outcome::none();
        if self.error.as_deref() != Some(e.as_str()) {
            out.log = Some((
                true,
                match self.current() {
                    None => format!(
                        "core_host '{}' does not resolve ({e}): waiting, asking again every few \
                         seconds and when a link comes up",
                        self.host
                    ),
                    Some(a) => format!(
                        "core_host '{}' does not resolve any more ({e}): keeping {a}",
                        self.host
                    ),
                },
            ));
            self.error = Some(e);
        }
        out
    }

    /// The first link toward the core opened now: the address in use has its chance from now
    /// (see [`CoreAddr::check_silence`]).
    pub(crate) fn trying_from(&mut self, now: Instant) {
        self.since = now;
    }

    /// With several addresses, gives up the one in use for the next when the core has not
    /// been heard since it was chosen or for [`TRY_EACH`], whichever is later. Call it while
    /// a link is open (with none, silence says nothing about the address).
    pub(crate) fn check_silence(&mut self, now: Instant, heard: Option<Instant>) -> Outcome {
        let mut out = Outcome::none();
        let n = self.addrs.len();
        if heard.is_some_and(|h| h >= self.since) && self.rotating {
            self.rotating = false;
            if let Some(a) = self.current() {
                out.log = Some((false, format!("the core answers at {a}")));
            }
        }
        let last = heard.map_or(self.since, |h| h.max(self.since));
        if n < 2 || now.saturating_since(last) < TRY_EACH {
            return out;
        }
        let from = self.addrs[self.idx];
        self.idx = (self.idx + 1) % n;
        self.since = now;
        if !self.rotating {
            self.rotating = true;
            out.log = Some((
                true,
                format!(
                    "no answer from the core at {from} for {} s: trying the other address(es) of \
                     core_host '{}' in turn, starting with {}",
                    TRY_EACH.as_secs(),
                    self.host,
                    self.addrs[self.idx]
                ),
            ));
        }
        out.moved = true;
        out
    }
}

/// Resolves `host` (blocking: `getaddrinfo`), every address it has.
pub(crate) fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    (host, port)
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| e.to_string())
}

/// Runs [`lookup`] on a thread of its own (it blocks, for seconds when no server answers) and
/// sends the answer, numbered `n`, on `to`; the event loop never waits for it.
pub(crate) fn lookup_in_thread(
    host: &str,
    port: u16,
    n: u32,
    to: tokio::sync::mpsc::Sender<Answer>,
) {
    let h = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("braid-resolve".into())
        .stack_size(256 * 1024)
        .spawn({
            let to = to.clone();
            move || {
                let _ = to.try_send((n, lookup(&h, port)));
            }
        });
    if let Err(e) = spawned {
        let _ = to.try_send((n, Err(format!("cannot start a resolver thread: {e}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Instant {
        Instant(n * 1_000_000)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_literal_address_is_never_resolved() {
        let mut c = CoreAddr::new("10.0.0.1", 51830, s(0));
        assert_eq!(c.current(), Some(addr("10.0.0.1:51830")));
        assert_eq!(c.start(s(0)), None);
        assert_eq!(c.waiting(s(0)), None);
        let mut c = CoreAddr::new("fd00::1", 51830, s(0));
        assert_eq!(c.current(), Some(addr("[fd00::1]:51830")));
        assert_eq!(c.start(s(1000)), None);
    }

    #[test]
    fn failures_back_off_from_1_to_10_s_and_are_logged_once() {
        let mut c = CoreAddr::new("core.example.net", 51830, s(0));
        assert!(c.waiting(s(0)).unwrap().contains("core.example.net"));
        let mut t = 0;
        let mut starts = Vec::new();
        let mut logs = 0;
        while t < 60_000 {
            let now = Instant(t * 1000);
            if let Some(n) = c.start(now) {
                starts.push(t / 1000);
                let o = c.answer(now, (n, Err("Temporary failure".into())));
                logs += usize::from(o.log.is_some());
                assert!(!o.moved);
            }
            t += 100;
        }
        assert_eq!(starts[..8], [0, 1, 3, 7, 15, 25, 35, 45], "{starts:?}");
        assert_eq!(logs, 1, "said once");
        let w = c.waiting(Instant(60_000_000)).unwrap();
        assert!(w.contains("Temporary failure; next try in 5 s"), "{w}");
        // Another error is said again.
        let n = c.start(s(100)).unwrap();
        assert!(c.answer(s(100), (n, Err("refused".into()))).log.is_some());
    }

    #[test]
    fn a_link_coming_up_asks_at_once() {
        let mut c = CoreAddr::new("core.example.net", 51830, s(0));
        for t in [0, 1, 3, 7] {
            let n = c.start(s(t)).unwrap();
            c.answer(s(t), (n, Err("x".into())));
        }
        assert_eq!(c.start(s(9)), None, "next at 15 s");
        c.link_event(s(9));
        let n = c.start(s(9)).expect("asked at once");
        let o = c.answer(s(9), (n, Ok(vec![addr("10.0.0.1:51830")])));
        assert!(o.moved && o.log.is_some());
        assert_eq!(c.current(), Some(addr("10.0.0.1:51830")));
        // Resolved: a link event asks again only after LINK_EVENT_MIN.
        c.link_event(s(12));
        assert_eq!(c.start(s(12)), None);
        c.link_event(s(20));
        assert!(c.start(s(20)).is_some());
    }

    #[test]
    fn every_address_is_kept_ipv4_first_and_the_one_in_use_stays() {
        let mut c = CoreAddr::new("core.example.net", 1, s(0));
        let n = c.start(s(0)).unwrap();
        let o = c.answer(
            s(0),
            (
                n,
                Ok(vec![
                    addr("[fd00::1]:1"),
                    addr("10.0.0.2:1"),
                    addr("10.0.0.1:1"),
                ]),
            ),
        );
        assert!(o.moved);
        assert_eq!(
            c.all(),
            [addr("10.0.0.2:1"), addr("10.0.0.1:1"), addr("[fd00::1]:1")]
        );
        assert_eq!(c.current(), Some(addr("10.0.0.2:1")));
        // Asked again every 5 minutes; a new order keeps the address in use.
        assert_eq!(c.start(s(299)), None);
        let n = c.start(s(300)).unwrap();
        let o = c.answer(
            s(300),
            (n, Ok(vec![addr("10.0.0.1:1"), addr("10.0.0.2:1")])),
        );
        assert!(!o.moved && o.changed && o.log.is_some());
        assert_eq!(c.current(), Some(addr("10.0.0.2:1")));
        // The same answer again: nothing to do or say.
        let n = c.start(s(600)).unwrap();
        let o = c.answer(
            s(600),
            (n, Ok(vec![addr("10.0.0.1:1"), addr("10.0.0.2:1")])),
        );
        assert_eq!(o, Outcome::none());
        // The address in use is gone from the answer: move.
        let n = c.start(s(900)).unwrap();
        let o = c.answer(s(900), (n, Ok(vec![addr("10.0.0.3:1")])));
        assert!(o.moved);
        assert!(o.log.unwrap().1.contains("(was 10.0.0.2)"));
        // A failed refresh keeps the address.
        let n = c.start(s(1200)).unwrap();
        let o = c.answer(s(1200), (n, Err("timeout".into())));
        assert!(!o.moved);
        assert!(o.log.unwrap().1.contains("keeping 10.0.0.3:1"));
        assert_eq!(c.current(), Some(addr("10.0.0.3:1")));
    }

    #[test]
    fn a_silent_address_is_given_up_for_the_next() {
        let mut c = CoreAddr::new("core.example.net", 1, s(0));
        let n = c.start(s(0)).unwrap();
        c.answer(s(0), (n, Ok(vec![addr("10.0.0.1:1"), addr("10.0.0.2:1")])));
        assert!(!c.check_silence(s(5), None).moved);
        let o = c.check_silence(s(6), None);
        assert!(o.moved && o.log.is_some());
        assert_eq!(c.current(), Some(addr("10.0.0.2:1")));
        // Still silent: round the list again, without saying it again.
        let o = c.check_silence(s(12), None);
        assert!(o.moved && o.log.is_none());
        assert_eq!(c.current(), Some(addr("10.0.0.1:1")));
        // Heard: stays, and says so once.
        let o = c.check_silence(s(13), Some(s(13)));
        assert!(!o.moved && o.log.is_some());
        assert!(c.check_silence(s(18), Some(s(17))).log.is_none());
        assert!(!c.check_silence(s(22), Some(s(17))).moved);
        assert!(c.check_silence(s(23), Some(s(17))).moved);
        // One address: never.
        let mut one = CoreAddr::new("10.0.0.1", 1, s(0));
        assert!(!one.check_silence(s(100), None).moved);
    }

    #[test]
    fn a_hanging_resolver_times_out_and_its_late_answer_still_counts() {
        let mut c = CoreAddr::new("core.example.net", 1, s(0));
        let first = c.start(s(0)).unwrap();
        assert_eq!(c.start(s(14)), None, "still asking");
        assert!(c.waiting(s(14)).unwrap().contains("asking the resolver"));
        // 15 s: counted as failed; the next one starts after the backoff.
        assert_eq!(c.start(s(15)), None);
        assert!(c
            .waiting(s(15))
            .unwrap()
            .contains("no answer from the resolver"));
        let second = c.start(s(16)).unwrap();
        // At most MAX_IN_FLIGHT run at once.
        assert_eq!(c.start(s(50)), None, "the second timed out: backoff");
        assert!(c.start(s(52)).is_some());
        assert_eq!(c.start(s(100)), None);
        assert_eq!(c.start(s(200)), None, "three running");
        // The first answers late: taken.
        let o = c.answer(s(101), (first, Ok(vec![addr("10.0.0.1:1")])));
        assert!(o.moved);
        // The second fails late: nothing changes.
        assert_eq!(c.answer(s(102), (second, Err("x".into()))), Outcome::none());
        assert_eq!(c.current(), Some(addr("10.0.0.1:1")));
    }
}
