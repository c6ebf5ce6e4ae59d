//! The local control socket: `braid status`, `braid link up|down`, `braid reload`.
//!
//! A Unix stream socket (default [`DEFAULT_SOCKET`], mode 0600, so root only). One JSON request
//! per connection, one JSON reply, then the server closes:
//! ```text
//! -> {"cmd":"status"}                       <- {"ok":true,"status":{...}}
//! -> {"cmd":"link","name":"wan","up":false} <- {"ok":true}
//! -> {"cmd":"reload"}                       <- {"ok":true}  or {"ok":false,"error":"..."}
//! ```
//! The status body is [`Status`]; LuCI's rpcd backend reads it through `braid status --json`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::session::{LinkStats, SessionStats};

/// Where the daemon listens unless told otherwise (`--socket`).
pub const DEFAULT_SOCKET: &str = "/var/run/braid.sock";

/// Largest request or reply accepted.
pub const MAX_MESSAGE: usize = 1 << 20;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Status,
    Link { name: String, up: bool },
    Reload,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            error: None,
            status: None,
        }
    }

    pub fn error(e: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(e.into()),
            status: None,
        }
    }
}

/// What `braid status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// "edge" or "core".
    pub role: String,
    pub version: String,
    pub uptime_s: u64,
    pub sessions: Vec<SessionStatus>,
    /// Counters of dropped or rejected packets, by reason.
    pub drops: Vec<Counter>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Peer name (core: from `config peer`; edge: the core address).
    pub peer: String,
    /// "handshaking", "established", "closed".
    pub state: String,
    pub established_s: u64,
    pub links: Vec<LinkStatus>,
    pub users: Vec<UserStatus>,
    pub classes: Vec<ClassStatus>,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub resent_packets: u64,
    /// Bytes waiting in the user queues (not yet given to a link).
    #[serde(default)]
    pub queued_bytes: u64,
    /// Received packets released by the reorder buffer after its full wait (a gap not filled).
    #[serde(default)]
    pub reorder_timeouts: u64,
    /// The receive side's current reorder wait.
    #[serde(default)]
    pub reorder_wait_ms: f64,
    /// Packets sent with packed headers, and the header bytes that saved.
    #[serde(default)]
    pub packed_packets: u64,
    #[serde(default)]
    pub packed_saved_bytes: u64,
    /// Packed packets received whose flow context was unknown (dropped; should stay 0).
    #[serde(default)]
    pub unpack_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub name: String,
    pub id: u8,
    pub device: String,
    /// "up", "degraded", "down", "admin-down".
    pub state: String,
    /// "primary", "secondary", "backup", "never".
    pub role: String,
    pub rtt_ms: f64,
    pub rttvar_ms: f64,
    pub loss_pct: f64,
    pub tx_bps: u64,
    pub rx_bps: u64,
    pub pacing_bps: u64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Congestion window, bytes in flight and bytes waiting in the link's own queue.
    #[serde(default)]
    pub cwnd_bytes: u64,
    #[serde(default)]
    pub inflight_bytes: u64,
    #[serde(default)]
    pub queued_bytes: u64,
    pub quota_bytes: Option<u64>,
    pub quota_used_bytes: u64,
}

impl SessionStatus {
    /// The session's counters as both daemons show them; the caller fills in who and what.
    pub fn figures(st: &SessionStats) -> SessionStatus {
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
            ..Default::default()
        }
    }
}

impl LinkStatus {
    /// A link's measured figures as both daemons show them; the caller fills in its name,
    /// device, state, role and quota.
    pub fn figures(l: &LinkStats) -> LinkStatus {
        LinkStatus {
            rtt_ms: l.srtt.as_secs_f64() * 1e3,
            rttvar_ms: l.rttvar.as_secs_f64() * 1e3,
            loss_pct: l.loss * 100.0,
            tx_bps: l.delivery_rate_bps,
            pacing_bps: l.pacing_rate_bps,
            tx_bytes: l.bytes_sent,
            rx_bytes: l.bytes_received,
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

/// Errors of the client side.
#[derive(Debug)]
pub enum ClientError {
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
pub fn request(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
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

/// Parses a request as the daemon receives it.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("bad request: {e}"))
}

fn fmt_rate(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000_000 => format!("{:.2} Gbit/s", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} Mbit/s", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.0} kbit/s", b as f64 / 1e3),
        b => format!("{b} bit/s"),
    }
}

fn fmt_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The human-readable table of `braid status`.
pub fn render(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "braid {} ({}), up {} s", s.version, s.role, s.uptime_s);
    if s.sessions.is_empty() {
        let _ = writeln!(o, "no session");
    }
    for sess in &s.sessions {
        let _ = writeln!(
            o,
            "\nsession with {}: {} for {} s, {} packets out, {} in, {} resent",
            sess.peer,
            sess.state,
            sess.established_s,
            sess.tx_packets,
            sess.rx_packets,
            sess.resent_packets
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
            "  {:<10} {:<10} {:<10} {:>8} {:>6} {:>13} {:>13} {:>11} {:>15} {:>11}",
            "LINK",
            "STATE",
            "ROLE",
            "RTT ms",
            "LOSS%",
            "UP",
            "DOWN",
            "SENT",
            "IN FLIGHT/CAP",
            "QUOTA"
        );
        for l in &sess.links {
            let quota = match l.quota_bytes {
                Some(q) => format!("{}/{}", fmt_bytes(l.quota_used_bytes), fmt_bytes(q)),
                None => "-".into(),
            };
            let flight = format!("{}/{} KiB", l.inflight_bytes / 1024, l.cwnd_bytes / 1024);
            let _ = writeln!(
                o,
                "  {:<10} {:<10} {:<10} {:>8.1} {:>6.2} {:>13} {:>13} {:>11} {:>15} {:>11}",
                l.name,
                l.state,
                l.role,
                l.rtt_ms,
                l.loss_pct,
                fmt_rate(l.tx_bps),
                fmt_rate(l.rx_bps),
                fmt_bytes(l.tx_bytes),
                flight,
                quota
            );
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
                up: false
            })
            .unwrap(),
            r#"{"cmd":"link","name":"wan","up":false}"#
        );
        assert_eq!(parse_request(br#"{"cmd":"reload"}"#), Ok(Request::Reload));
        assert!(parse_request(b"{\"cmd\":\"format-disk\"}")
            .unwrap_err()
            .contains("bad request"));
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
                links: vec![LinkStatus {
                    name: "wan".into(),
                    state: "up".into(),
                    role: "primary".into(),
                    rtt_ms: 41.5,
                    tx_bps: 20_000_000,
                    quota_bytes: Some(1 << 30),
                    quota_used_bytes: 1 << 29,
                    inflight_bytes: 61_440,
                    cwnd_bytes: 204_800,
                    ..Default::default()
                }],
                queued_bytes: 3 << 10,
                reorder_wait_ms: 120.0,
                reorder_timeouts: 7,
                packed_packets: 1000,
                packed_saved_bytes: 25_000,
                ..Default::default()
            }],
            drops: vec![Counter {
                reason: "replay".into(),
                count: 3,
            }],
        };
        let t = render(&s);
        assert!(t.contains("wan"), "{t}");
        assert!(t.contains("20.0 Mbit/s"), "{t}");
        assert!(t.contains("512.0 MiB/1.00 GiB"), "{t}");
        assert!(t.contains("60/200 KiB"), "{t}");
        assert!(
            t.contains("waiting to be sent 3.0 KiB, reorder wait 120 ms, 7 packets"),
            "{t}"
        );
        assert!(t.contains("replay"), "{t}");
        assert!(
            t.contains("headers packed: 1000 packets, 24.4 KiB saved\n"),
            "{t}"
        );
    }

    #[test]
    fn client_reports_a_missing_daemon() {
        let e = request(Path::new("/nonexistent/braid.sock"), &Request::Status).unwrap_err();
        assert!(e.to_string().contains("not running"), "{e}");
    }
}
