//! The local control socket: `braid status`, `braid link up|down`, `braid reload`.
//!
//! A Unix stream socket (default [`DEFAULT_SOCKET`], mode 0600, so root only). One JSON request
//! per connection, one JSON reply, then the server closes:
//! ```text
//! -> {"cmd":"status"}                       <- {"ok":true,"status":{...}}
//! -> {"cmd":"link","name":"wan","up":false} <- {"ok":true}
//! -> {"cmd":"link","name":"wan","up":true,"device":"pppoe-wan"}
//!                                           <- {"ok":true}  or {"ok":true,"note":"..."}
//! -> {"cmd":"reload"}                       <- {"ok":true}  or {"ok":false,"error":"..."}
//! ```
//! The status body is [`Status`]; LuCI's rpcd backend reads it through `braid status --json`.
//!
//! # The status JSON is a contract
//! LuCI, scripts and operators read it, so it holds plain values and human words only (never
//! Rust `Debug` text), in one unit convention: rates in bits per second, sizes in bytes, times
//! in whole seconds or milliseconds as the field name says; shown, sizes use SI prefixes
//! (1 GB = 10^9 bytes, as `option quota '20G'` parses). A sample for each role is checked in,
//! `tests/fixtures/status/edge.json` and `core.json`: a real daemon's output must have exactly
//! their fields and types ([`contract_mismatches`], asserted by `tests/e2e_status.rs`), and the
//! LuCI tests render them. A field added here is added to both samples in the same change.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::session::{LinkStats, SessionStats};

/// Where the daemon listens unless told otherwise (`--socket`).
pub(crate) const DEFAULT_SOCKET: &str = "/var/run/braid.sock";

/// Largest request or reply accepted.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub(crate) enum Request {
    Status,
    Link {
        name: String,
        up: bool,
        /// With `up`: the link's device as netifd names it now (the hotplug script's
        /// `$DEVICE`); the link's socket moves to it. `option device` in the config wins.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    Reload,
    /// Stop for good: the core removes everything (SIGTERM keeps its NAT for a restart).
    Stop,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<Status>,
    /// Done, but something the caller should know (a link taken up that waits for its device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

impl Reply {
    pub(crate) fn ok() -> Reply {
        Reply {
            ok: true,
            error: None,
            status: None,
            note: None,
        }
    }

    pub(crate) fn error(e: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(e.into()),
            status: None,
            note: None,
        }
    }
}

/// What `braid status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// "edge" or "core".
    pub(crate) role: String,
    pub(crate) version: String,
    pub(crate) uptime_s: u64,
    pub sessions: Vec<SessionStatus>,
    /// Counters of dropped or rejected packets, by reason.
    pub drops: Vec<Counter>,
    /// Core: client packets refused by the forward policy, by reason (`braid::core_daemon::forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<Vec<Counter>>,
    /// What the daemon refused on purpose (handshakes, connections over a limit, packets its
    /// policy forbids), by reason.
    #[serde(default)]
    pub refusals: Vec<Counter>,
    /// What the daemon as a whole waits for ("waiting for the address of core_host ..."),
    /// if anything; each link says what it waits for in its own `waiting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Peer name (core: from `config peer`; edge: the core address).
    pub peer: String,
    /// "handshaking", "established", "closed".
    pub state: String,
    pub established_s: u64,
    pub links: Vec<LinkStatus>,
    /// The clients with the most bytes (edge: its LAN hosts; core: that edge's clients).
    pub users: Vec<UserStatus>,
    pub classes: Vec<ClassStatus>,
    /// Core: this edge's client packets refused by the forward policy, by reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<Vec<Counter>>,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub resent_packets: u64,
    /// The bonded traffic itself (client packets, before tunnel overhead, copies and resends),
    /// measured over the last second or two: sent to the peer, and received from it.
    #[serde(default)]
    pub tx_bps: u64,
    #[serde(default)]
    pub rx_bps: u64,
    /// Client bytes sent to and received from the peer since the session started.
    #[serde(default)]
    pub(crate) tx_bytes: u64,
    #[serde(default)]
    pub(crate) rx_bytes: u64,
    /// Bytes waiting in the user queues (not yet given to a link).
    #[serde(default)]
    pub(crate) queued_bytes: u64,
    /// Received packets released by the reorder buffer after its full wait (a gap not filled).
    #[serde(default)]
    pub(crate) reorder_timeouts: u64,
    /// The receive side's current reorder wait.
    #[serde(default)]
    pub(crate) reorder_wait_ms: f64,
    /// Packets sent with packed headers, and the header bytes that saved.
    #[serde(default)]
    pub(crate) packed_packets: u64,
    #[serde(default)]
    pub(crate) packed_saved_bytes: u64,
    /// Packed packets received whose flow context was unknown (dropped; should stay 0).
    #[serde(default)]
    pub(crate) unpack_errors: u64,
    /// Handshakes completed in this session: the first, then every rehandshake (a rekey, or the
    /// edge's after a second without a word from the core).
    #[serde(default)]
    pub handshakes: u64,
    /// Edge: times the session started afresh because the core had lost it (restarted, or
    /// closed it). Always 0 on the core, where such an edge shows as a new session.
    #[serde(default)]
    pub renewals: u64,
    /// Key rotations completed in this session (every 2 minutes, and after a silence).
    #[serde(default)]
    pub rekeys: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// Edge: the `config link` section (its netifd interface); core: the name the edge gave.
    pub name: String,
    pub id: u8,
    /// Edge: the WAN device the link uses (`eth1`; null while netifd has not named it);
    /// core: null.
    #[serde(default)]
    pub device: Option<String>,
    /// Core: the edge's address and port as the core sees them (`203.0.113.7:54721`, `[v6]:port`);
    /// edge: null.
    #[serde(default)]
    pub address: Option<String>,
    /// "udp" or "tcp".
    #[serde(default)]
    pub(crate) transport: String,
    /// "up", "degraded", "down", "admin-down", "waiting" (edge: see `waiting`).
    pub state: String,
    /// Seconds since the link entered `state` (sampled every half second on the edge, every
    /// second on the core).
    #[serde(default)]
    pub state_s: u64,
    /// The role in effect: "primary", "secondary", "backup", "never".
    pub role: String,
    /// The link is past its data quota, and `role` is its `quota_action` ("backup" or "never").
    #[serde(default)]
    pub over_quota: bool,
    pub rtt_ms: f64,
    pub(crate) rttvar_ms: f64,
    pub loss_pct: f64,
    /// Measured over the last second or two: bits sent on the link, and received on it
    /// (datagrams as sent, tunnel overhead, copies and resends included).
    pub tx_bps: u64,
    pub rx_bps: u64,
    /// What the link is estimated to carry (its measured delivery rate), which steers the
    /// scheduler; not what it carries now.
    #[serde(default)]
    pub estimate_bps: u64,
    /// The rate the sender paces the link at.
    pub pacing_bps: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Congestion window, bytes in flight and bytes waiting in the link's own queue.
    #[serde(default)]
    pub(crate) cwnd_bytes: u64,
    #[serde(default)]
    pub(crate) inflight_bytes: u64,
    #[serde(default)]
    pub(crate) queued_bytes: u64,
    /// The data allowance per period in bytes (null: no quota), and what was used of it.
    pub quota_bytes: Option<u64>,
    pub quota_used_bytes: u64,
    /// Why the link is not open (state "waiting"): its device not known or not there yet, no
    /// address on it, the core's address not known yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

impl SessionStatus {
    /// The session's counters as both daemons show them; the caller fills in who and what.
    pub(crate) fn figures(st: &SessionStats) -> SessionStatus {
        SessionStatus {
            tx_packets: st.sent_packets,
            rx_packets: st.reorder.delivered,
            resent_packets: st.resends,
            queued_bytes: st.queued_bytes,
            reorder_timeouts: st.reorder.timed_out,
            reorder_wait_ms: st.reorder_wait.as_secs_f64() * 1e3,
            packed_packets: st.pack.packed,
            packed_saved_bytes: st.pack.saved_bytes,
            unpack_errors: st.unpack_errors,
            handshakes: st.handshakes,
            renewals: st.renewals,
            rekeys: st.rekeys,
            ..Default::default()
        }
    }
}

impl LinkStatus {
    /// A link's protocol figures as both daemons show them; the caller fills in its name,
    /// device or address, state, role, quota and measured rates ([`Meter`]).
    pub(crate) fn figures(l: &LinkStats) -> LinkStatus {
        LinkStatus {
            rtt_ms: l.srtt.as_secs_f64() * 1e3,
            rttvar_ms: l.rttvar.as_secs_f64() * 1e3,
            loss_pct: l.loss * 100.0,
            estimate_bps: l.delivery_rate_bps,
            pacing_bps: l.pacing_rate_bps,
            tx_bytes: l.counters.bytes_sent,
            rx_bytes: l.counters.bytes_received,
            cwnd_bytes: l.cwnd_bytes,
            inflight_bytes: l.inflight_bytes,
            queued_bytes: l.queued_bytes,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserStatus {
    pub address: String,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub flows: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassStatus {
    pub name: String,
    pub mode: String,
    pub priority: u8,
    pub packets: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub reason: String,
    pub count: u64,
}

/// Rates measured from byte counters, and how long each thing has been in its state: what
/// `braid status` reports as `tx_bps`/`rx_bps` and `state_s`.
///
/// The daemon calls [`Meter::sample`] for each link and session about once a second (the edge
/// on its half-second tick, the core on a one-second tick) with its current counters and state;
/// [`Meter::read`] then gives the rate since the newest sample at least a second old, so a
/// status read at any moment shows the last one to two seconds, not a figure from one poll to
/// the next (two LuCI tabs polling do not disturb each other).
#[derive(Debug, Default)]
pub(crate) struct Meter<K> {
    keys: std::collections::HashMap<K, Track>,
}

#[derive(Debug)]
struct Track {
    /// (when, bytes sent, bytes received), oldest first, at most [`Track::KEEP`].
    samples: std::collections::VecDeque<(std::time::Instant, u64, u64)>,
    state: String,
    since: std::time::Instant,
}

impl Track {
    const KEEP: usize = 6;

    /// Notes `state` at `now`: the time in state starts again if it changed.
    fn set_state(&mut self, state: &str, now: std::time::Instant) {
        if self.state != state {
            self.state = state.to_string();
            self.since = now;
        }
    }
}

/// One [`Meter::read`]: measured rates in bits/s and the seconds in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Reading {
    pub(crate) tx_bps: u64,
    pub(crate) rx_bps: u64,
    pub(crate) state_s: u64,
}

impl<K: std::hash::Hash + Eq + Clone> Meter<K> {
    pub(crate) fn new() -> Self {
        Meter {
            keys: std::collections::HashMap::new(),
        }
    }

    /// Records `key`'s byte counters and state at `now`.
    pub(crate) fn sample(
        &mut self,
        key: K,
        now: std::time::Instant,
        tx: u64,
        rx: u64,
        state: &str,
    ) {
        let t = self.keys.entry(key).or_insert_with(|| Track {
            samples: Default::default(),
            state: state.to_string(),
            since: now,
        });
        t.set_state(state, now);
        // A counter that went backwards (the link was re-created) starts the history anew.
        if t.samples.back().is_some_and(|&(_, a, b)| tx < a || rx < b) {
            t.samples.clear();
        }
        t.samples.push_back((now, tx, rx));
        while t.samples.len() > Track::KEEP {
            t.samples.pop_front();
        }
    }

    /// Records a state change the daemon made itself (a link taken out or in) at the moment it
    /// happens, rather than at the next sample.
    pub(crate) fn note_state(&mut self, key: K, now: std::time::Instant, state: &str) {
        if let Some(t) = self.keys.get_mut(&key) {
            t.set_state(state, now);
        }
    }

    /// Rates of `key` from its counters now against the newest sample at least a second old
    /// (or the oldest there is), and the time in `state` (0 if `state` is not the one sampled
    /// last: it has just changed).
    pub(crate) fn read(
        &self,
        key: &K,
        now: std::time::Instant,
        tx: u64,
        rx: u64,
        state: &str,
    ) -> Reading {
        let Some(t) = self.keys.get(key) else {
            return Reading::default();
        };
        let state_s = if t.state == state {
            now.saturating_duration_since(t.since).as_secs()
        } else {
            0
        };
        let base = t
            .samples
            .iter()
            .rev()
            .find(|s| now.saturating_duration_since(s.0) >= std::time::Duration::from_secs(1))
            .or(t.samples.front());
        // No sample, or only one too recent to measure a rate over: the state's time alone.
        let measured = base
            .map(|&(at, tx0, rx0)| (now.saturating_duration_since(at).as_secs_f64(), tx0, rx0))
            .filter(|&(dt, _, _)| dt >= 0.2);
        let Some((dt, tx0, rx0)) = measured else {
            return Reading {
                state_s,
                ..Default::default()
            };
        };
        let bps = |now: u64, then: u64| (now.saturating_sub(then) as f64 * 8.0 / dt) as u64;
        Reading {
            tx_bps: bps(tx, tx0),
            rx_bps: bps(rx, rx0),
            state_s,
        }
    }

    /// Forgets the keys `keep` refuses (links and sessions that are gone).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.keys.retain(|k, _| keep(k));
    }
}

/// Where a status JSON `real` departs from the checked-in `sample` of the contract: fields
/// missing or extra, or of another JSON type, as one line each (`sessions[0].links[0].rx_bps:
/// missing`). Empty when `real` fits. A `null` on either side stands for "may be null" and
/// matches anything; every element of an array is checked against the sample's first element
/// (an empty array in the sample matches any array). Strings must also be plain words: text
/// that looks like Rust `Debug` output (`Udp(0, ..)`, `Handshake(Stale)`) is reported.
pub fn contract_mismatches(sample: &serde_json::Value, real: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    shape(sample, real, "", &mut out);
    out
}

fn shape(sample: &serde_json::Value, real: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    use serde_json::Value as V;
    let here = if at.is_empty() { "(top)" } else { at };
    match (sample, real) {
        (V::Null, _) | (_, V::Null) => {}
        (V::Object(a), V::Object(b)) => {
            for (k, va) in a {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match b.get(k) {
                    Some(vb) => shape(va, vb, &p, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.push(format!("{p}: not in the sample (add it to the contract)"));
            }
        }
        (V::Array(a), V::Array(b)) => {
            if let Some(first) = a.first() {
                for (i, vb) in b.iter().enumerate() {
                    shape(first, vb, &format!("{at}[{i}]"), out);
                }
            }
        }
        (V::Number(_), V::Number(_)) | (V::Bool(_), V::Bool(_)) => {}
        (V::String(_), V::String(s)) => {
            if looks_like_debug(s) {
                out.push(format!("{here}: '{s}' looks like Rust Debug text"));
            }
        }
        (a, b) => out.push(format!("{here}: expected {}, got {}", kind(a), kind(b))),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `Word(` or `Word {` at a word start: how Rust's `Debug` prints enum variants and structs.
fn looks_like_debug(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_uppercase() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_alphanumeric() {
                j += 1;
            }
            if j > i + 1 && (b.get(j) == Some(&b'(') || s[j..].starts_with(" {")) {
                return true;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    false
}

/// Errors of the client side.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// No daemon listens on the socket.
    NotRunning(String),
    Io(std::io::Error),
    BadReply(String),
    /// The daemon refused the request.
    Refused(String),
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::NotRunning(p) => write!(f, "braid is not running (no daemon on {p})"),
            ClientError::Io(e) => write!(f, "control socket: {e}"),
            ClientError::BadReply(e) => write!(f, "bad reply from the daemon: {e}"),
            ClientError::Refused(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends one request to the daemon at `socket` and returns its reply (an error if refused).
pub(crate) fn request(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let mut s = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(socket.display().to_string())
        }
        _ => ClientError::Io(e),
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(ClientError::Io)?;
    let body = serde_json::to_vec(req).expect("requests serialize");
    s.write_all(&body).map_err(ClientError::Io)?;
    s.shutdown(std::net::Shutdown::Write)
        .map_err(ClientError::Io)?;
    let mut reply = Vec::new();
    s.take(MAX_MESSAGE as u64)
        .read_to_end(&mut reply)
        .map_err(ClientError::Io)?;
    let reply: Reply =
        serde_json::from_slice(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
    if !reply.ok {
        return Err(ClientError::Refused(
            reply.error.unwrap_or_else(|| "refused".into()),
        ));
    }
    Ok(reply)
}

fn fmt_rate(bps: u64) -> String {
    scaled(
        bps,
        &[(1e9, 2, "Gbit/s"), (1e6, 1, "Mbit/s"), (1e3, 0, "kbit/s")],
        "bit/s",
    )
}

/// Bytes with SI prefixes (1 GB = 10^9 bytes), as quotas are written and carriers bill.
fn fmt_bytes(b: u64) -> String {
    let steps = [
        (1e12, 2, "TB"),
        (1e9, 2, "GB"),
        (1e6, 1, "MB"),
        (1e3, 1, "kB"),
    ];
    scaled(b, &steps, "B")
}

/// `v` in the first of `steps` (scale, decimals, unit; largest first) it reaches, else whole
/// in `unit`.
fn scaled(v: u64, steps: &[(f64, usize, &str)], unit: &str) -> String {
    match steps.iter().find(|s| v as f64 >= s.0) {
        Some(&(scale, decimals, name)) => format!("{:.*} {name}", decimals, v as f64 / scale),
        None => format!("{v} {unit}"),
    }
}

/// A duration in the largest whole units: `45s`, `12m`, `3h 5m`, `2d 4h`.
fn fmt_age(s: u64) -> String {
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The human-readable table of `braid status`.
pub(crate) fn render(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "braid {} ({}), up {} s", s.version, s.role, s.uptime_s);
    if let Some(w) = &s.waiting {
        let _ = writeln!(o, "{w}");
    }
    if s.sessions.is_empty() {
        let _ = writeln!(o, "no session");
    }
    for sess in &s.sessions {
        let _ = writeln!(
            o,
            "\nsession with {}: {}, {} packets out, {} in, {} resent",
            sess.peer,
            match sess.state.as_str() {
                "established" => format!("established for {} s", sess.established_s),
                other => other.to_string(),
            },
            sess.tx_packets,
            sess.rx_packets,
            sess.resent_packets
        );
        let _ = writeln!(
            o,
            "  bonded: up {}, down {} ({} sent, {} received)",
            fmt_rate(sess.tx_bps),
            fmt_rate(sess.rx_bps),
            fmt_bytes(sess.tx_bytes),
            fmt_bytes(sess.rx_bytes)
        );
        let _ = writeln!(
            o,
            "  waiting to be sent {}, reorder wait {:.0} ms, {} packets released after it",
            fmt_bytes(sess.queued_bytes),
            sess.reorder_wait_ms,
            sess.reorder_timeouts
        );
        let _ = writeln!(
            o,
            "  headers packed: {} packets, {} saved{}",
            sess.packed_packets,
            fmt_bytes(sess.packed_saved_bytes),
            if sess.unpack_errors > 0 {
                format!(", {} received with an unknown context", sess.unpack_errors)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "  handshakes: {}{}",
            sess.handshakes,
            match sess.renewals {
                0 => String::new(),
                n => format!(
                    ", started afresh {n} time(s) because the {} had lost the session \
                     (restarted, or closed it)",
                    if s.role == "edge" { "core" } else { "peer" }
                ),
            }
        );
        let _ = writeln!(
            o,
            "  {:<10} {:<16} {:<16} {:>8} {:>6} {:>13} {:>13} {:>13} {:>11} {:>15} {:>11}",
            "LINK",
            "STATE",
            "ROLE",
            "RTT ms",
            "LOSS%",
            "UP",
            "DOWN",
            "ESTIMATE",
            "SENT",
            "IN FLIGHT/CAP",
            "QUOTA"
        );
        for l in &sess.links {
            let quota = match l.quota_bytes {
                Some(q) => format!("{}/{}", fmt_bytes(l.quota_used_bytes), fmt_bytes(q)),
                None => "-".into(),
            };
            let flight = format!(
                "{}/{}",
                fmt_bytes(l.inflight_bytes),
                fmt_bytes(l.cwnd_bytes)
            );
            let state = format!("{} {}", l.state, fmt_age(l.state_s));
            let role = if l.over_quota {
                format!("{} (quota)", l.role)
            } else {
                l.role.clone()
            };
            let _ = writeln!(
                o,
                "  {:<10} {:<16} {:<16} {:>8.1} {:>6.2} {:>13} {:>13} {:>13} {:>11} {:>15} {:>11}",
                l.name,
                state,
                role,
                l.rtt_ms,
                l.loss_pct,
                fmt_rate(l.tx_bps),
                fmt_rate(l.rx_bps),
                fmt_rate(l.estimate_bps),
                fmt_bytes(l.tx_bytes),
                flight,
                quota
            );
        }
        for l in &sess.links {
            if let Some(w) = &l.waiting {
                let _ = writeln!(o, "  link '{}': {w}", l.name);
            }
        }
        if !sess.users.is_empty() {
            let _ = writeln!(
                o,
                "  {:<39} {:>11} {:>11} {:>6}",
                "USER", "UP", "DOWN", "FLOWS"
            );
            for u in &sess.users {
                let _ = writeln!(
                    o,
                    "  {:<39} {:>11} {:>11} {:>6}",
                    u.address,
                    fmt_bytes(u.tx_bytes),
                    fmt_bytes(u.rx_bytes),
                    u.flows
                );
            }
        }
        if !sess.classes.is_empty() {
            let _ = writeln!(
                o,
                "  {:<16} {:<10} {:>8} {:>12}",
                "CLASS", "MODE", "PRIO", "PACKETS"
            );
            for c in &sess.classes {
                let _ = writeln!(
                    o,
                    "  {:<16} {:<10} {:>8} {:>12}",
                    c.name, c.mode, c.priority, c.packets
                );
            }
        }
    }
    let drops: Vec<_> = s.drops.iter().filter(|c| c.count > 0).collect();
    if !drops.is_empty() {
        let _ = writeln!(o, "\ndropped or rejected:");
        for c in drops {
            let _ = writeln!(o, "  {:<32} {:>10}", c.reason, c.count);
        }
    }
    let refused: Vec<_> = s.refused.iter().flatten().filter(|c| c.count > 0).collect();
    if !refused.is_empty() {
        let _ = writeln!(o, "\nrefused by the forward policy:");
        for c in refused {
            let _ = writeln!(o, "  {:<56} {:>10}", c.reason, c.count);
        }
    }
    let refusals: Vec<_> = s.refusals.iter().filter(|c| c.count > 0).collect();
    if !refusals.is_empty() {
        let _ = writeln!(o, "\nrefused:");
        for c in refusals {
            let _ = writeln!(o, "  {:<48} {:>10}", c.reason, c.count);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_json_form() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Link {
                name: "wan".into(),
                up: false,
                device: None,
            })
            .unwrap(),
            r#"{"cmd":"link","name":"wan","up":false}"#
        );
        // The device is optional both ways: older clients, and hotplug with netifd's $DEVICE.
        assert_eq!(
            serde_json::from_slice::<Request>(
                br#"{"cmd":"link","name":"wan","up":true,"device":"pppoe-wan"}"#
            )
            .unwrap(),
            Request::Link {
                name: "wan".into(),
                up: true,
                device: Some("pppoe-wan".into()),
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Link {
                name: "wan".into(),
                up: true,
                device: Some("wwan0".into()),
            })
            .unwrap(),
            r#"{"cmd":"link","name":"wan","up":true,"device":"wwan0"}"#
        );
        assert_eq!(
            serde_json::from_slice::<Request>(br#"{"cmd":"reload"}"#).unwrap(),
            Request::Reload
        );
    }

    #[test]
    fn rates_and_sizes_take_the_largest_prefix_they_reach() {
        let rates = [
            (999, "999 bit/s"),
            (1_000, "1 kbit/s"),
            (999_999, "1000 kbit/s"),
            (1_000_000, "1.0 Mbit/s"),
            (1_500_000_000, "1.50 Gbit/s"),
        ];
        for (v, want) in rates {
            assert_eq!(fmt_rate(v), want);
        }
        let sizes = [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.0 kB"),
            (3_250_000, "3.2 MB"),
            (20_000_000_000, "20.00 GB"),
            (2_000_000_000_000, "2.00 TB"),
        ];
        for (v, want) in sizes {
            assert_eq!(fmt_bytes(v), want);
        }
    }

    #[test]
    fn render_shows_links_and_drops() {
        let s = Status {
            role: "edge".into(),
            version: "0.1.0".into(),
            uptime_s: 5,
            sessions: vec![SessionStatus {
                peer: "core.example:51820".into(),
                state: "established".into(),
                links: vec![
                    LinkStatus {
                        name: "wwan".into(),
                        state: "waiting".into(),
                        waiting: Some("waiting for device 'wwan0' to appear".into()),
                        ..Default::default()
                    },
                    LinkStatus {
                        name: "wan".into(),
                        state: "up".into(),
                        role: "primary".into(),
                        rtt_ms: 41.5,
                        tx_bps: 20_000_000,
                        rx_bps: 3_500_000,
                        estimate_bps: 30_000_000,
                        state_s: 125,
                        quota_bytes: Some(20_000_000_000),
                        quota_used_bytes: 5_000_000_000,
                        inflight_bytes: 61_440,
                        cwnd_bytes: 204_800,
                        ..Default::default()
                    },
                ],
                queued_bytes: 3 << 10,
                reorder_wait_ms: 120.0,
                reorder_timeouts: 7,
                packed_packets: 1000,
                packed_saved_bytes: 25_000,
                handshakes: 4,
                renewals: 2,
                ..Default::default()
            }],
            drops: vec![Counter {
                reason: "replay".into(),
                count: 3,
            }],
            refused: Some(vec![Counter {
                reason: "to the cloud metadata service (169.254.169.254)".into(),
                count: 4,
            }]),
            refusals: vec![Counter {
                reason: "handshakes: too many at once".into(),
                count: 5,
            }],
            waiting: Some("waiting for the address of core_host 'core.example'".into()),
        };
        let t = render(&s);
        for want in [
            "wan",
            "20.0 Mbit/s",
            // The measured download, the estimate beside them, the time in state.
            "3.5 Mbit/s",
            "30.0 Mbit/s",
            "up 2m",
            // SI, as quota '20G' means.
            "5.00 GB/20.00 GB",
            "61.4 kB/204.8 kB",
            "waiting to be sent 3.1 kB, reorder wait 120 ms, 7 packets",
            "replay",
            "handshakes: 4, started afresh 2 time(s) because the core had lost",
            "\nrefused by the forward policy:\n  to the cloud metadata service",
            "refused:",
            "handshakes: too many at once",
            "\nwaiting for the address of core_host 'core.example'\n",
            "\n  link 'wwan': waiting for device 'wwan0' to appear\n",
            "headers packed: 1000 packets, 25.0 kB saved\n",
        ] {
            assert!(t.contains(want), "{want:?} not in:\n{t}");
        }
    }

    fn sample(role: &str) -> serde_json::Value {
        let p = format!(
            "{}/tests/fixtures/status/{role}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    #[test]
    fn the_samples_are_exactly_what_status_serializes() {
        for role in ["edge", "core"] {
            let s = sample(role);
            let st: Status = serde_json::from_value(s.clone()).unwrap();
            let back = serde_json::to_value(&st).unwrap();
            // Both ways: a field of Status missing from the sample, or a sample field Status
            // does not have, is a contract the daemon cannot keep.
            assert_eq!(
                contract_mismatches(&s, &back),
                Vec::<String>::new(),
                "{role}"
            );
            assert_eq!(
                contract_mismatches(&back, &s),
                Vec::<String>::new(),
                "{role}"
            );
            assert_eq!(st.role, role);
        }
        // What the bugs were: Debug text on the core, an estimate shown as the upload.
        let core: Status = serde_json::from_value(sample("core")).unwrap();
        assert!(core.sessions[0].links.iter().all(|l| l.address.is_some()));
    }

    #[test]
    fn contract_mismatches_names_missing_extra_and_debug_text() {
        let sample = serde_json::json!({"a": 1, "b": [{"c": "x", "d": null}], "e": "s"});
        let real = serde_json::json!({"a": "1", "b": [{"c": "y", "d": 5, "z": 0}], "e": "Udp(0, 10.71.0.1:54721)"});
        let m = contract_mismatches(&sample, &real);
        assert_eq!(
            m,
            vec![
                "a: expected a number, got a string".to_string(),
                "b[0].z: not in the sample (add it to the contract)".into(),
                "e: 'Udp(0, 10.71.0.1:54721)' looks like Rust Debug text".into(),
            ]
        );
        let m = contract_mismatches(&sample, &serde_json::json!({"a": 2, "b": []}));
        assert_eq!(m, vec!["e: missing".to_string()]);
        for plain in [
            "handshakes refused: replayed",
            "wan (TCP)",
            "10.0.0.1:5",
            "up",
        ] {
            assert!(!looks_like_debug(plain), "{plain}");
        }
        for debug in ["Handshake(Stale)", "x Some(3)", "Peer { name }"] {
            assert!(looks_like_debug(debug), "{debug}");
        }
    }

    #[test]
    fn meter_measures_rates_over_at_least_a_second_and_time_in_state() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut m: Meter<u8> = Meter::new();
        assert_eq!(m.read(&1, at(0), 0, 0, "up"), Reading::default());
        // 1 MB/s up, 2 MB/s down, sampled every half second.
        for i in 0..=6u64 {
            m.sample(1, at(500 * i), 500_000 * i, 1_000_000 * i, "up");
        }
        // Read 200 ms after the last sample: against the sample >= 1 s before that moment.
        let r = m.read(&1, at(3200), 3_200_000, 6_400_000, "up");
        assert_eq!((r.tx_bps, r.rx_bps), (8_000_000, 16_000_000));
        assert_eq!(r.state_s, 3);
        // The state changes: time counts from the sample that saw it, 0 before any did.
        assert_eq!(m.read(&1, at(3300), 0, 0, "down").state_s, 0);
        m.sample(1, at(3500), 3_500_000, 7_000_000, "down");
        assert_eq!(
            m.read(&1, at(5600), 3_500_000, 7_000_000, "down").state_s,
            2
        );
        // Nothing moved for over a second: 0, not the old rate.
        m.sample(1, at(4500), 3_500_000, 7_000_000, "down");
        let r = m.read(&1, at(5600), 3_500_000, 7_000_000, "down");
        assert_eq!((r.tx_bps, r.rx_bps), (0, 0));
        // A counter that restarts (link re-created) gives no negative or huge rate.
        m.sample(1, at(6000), 10, 10, "up");
        let r = m.read(&1, at(7100), 1_000_010, 10, "up");
        assert_eq!((r.tx_bps, r.rx_bps), (7_272_727, 0));
        // A change the daemon makes itself counts from that moment.
        m.note_state(1, at(6500), "admin-down");
        assert_eq!(m.read(&1, at(8600), 0, 0, "admin-down").state_s, 2);
        m.retain(|k| *k != 1);
        assert_eq!(m.read(&1, at(7100), 5, 5, "up"), Reading::default());
        // A first sample under 200 ms old is too recent to measure a rate over: none; the
        // time in state still counts.
        m.sample(2, at(1000), 0, 0, "up");
        let r = m.read(&2, at(1100), 100_000, 100_000, "up");
        assert_eq!(r, Reading::default());
        let r = m.read(&2, at(2100), 100_000, 0, "up");
        assert_eq!((r.tx_bps, r.rx_bps, r.state_s), (727_272, 0, 1));
    }

    #[test]
    fn client_reports_a_missing_daemon() {
        let e = request(Path::new("/nonexistent/braid.sock"), &Request::Status).unwrap_err();
        assert!(e.to_string().contains("not running"), "{e}");
    }
}
