//! The real protocol as a simulator [`Tunnel`]: the daemons' own protocol objects.
//!
//! Edge: a `proto::Session` as `braid edge` makes it (`Channel::initiator` toward the core's key,
//! one `add_link` per scenario link with its role, weight and cap). Core: the
//! [`Endpoint`] that `braid core` runs, with the edge's key as its one peer and the link a
//! datagram arrived on as its source address; it answers the handshakes, starts, rekeys or ends
//! the session, and sends each reply to the address (link) the session's link was last heard
//! from. The link the frames name is checked against the one the datagram came on.
//! Keys are derived from the scenario seed, so runs do not depend on the system's randomness
//! beyond the handshakes' ephemeral keys and receiver indices, which change bytes but no sizes
//! or timings.

use serde_json::json;

use super::engine::MAX_DATAGRAM;
use super::scenario::Scenario;
use super::tunnel::{EndCounters, Meta, Pair, SenderView, Tunnel};
use crate::proto::endpoint::{Drop, Endpoint, Handled, Peer, SessionId};
use crate::proto::link::{LinkConfig, LinkState};
use crate::proto::sched::ClassConfig;
use crate::proto::seal::{self, Channel, Keypair, SealError};
use crate::proto::session::{Event, PacketMeta, Session, SessionConfig, SessionStats};
use crate::proto::wire;
use crate::proto::{Instant, LinkId};

/// Build the (edge, core) session pair for a scenario.
pub(crate) fn pair(sc: &Scenario) -> Result<Pair, String> {
    let (edge_key, core_key) = keys(sc);
    let config = session_config(sc);
    let now = Instant::ZERO;
    let mut edge = Session::new(
        Channel::initiator(&edge_key, core_key.public, now),
        config.clone(),
        now,
    );
    for l in &sc.links {
        edge.add_link(
            l.id,
            LinkConfig {
                role: l.role,
                weight: l.weight,
                rate_cap_bps: l.rate_cap_bps,
            },
            now,
        );
    }
    let edge_public = edge_key.public;
    Ok((
        Box::new(Edge {
            s: edge,
            bad: 0,
            log: EventLog::default(),
        }),
        Box::new(Core {
            ep: Endpoint::new(
                core_key,
                vec![Peer {
                    name: "edge".into(),
                    public: edge_public,
                }],
                config,
            ),
            id: None,
            bad: 0,
            wrong_link: 0,
            duplicate_inits: 0,
            log: EventLog::default(),
        }),
    ))
}

/// The (edge, core) keys of a scenario, from its seed.
fn keys(sc: &Scenario) -> (Keypair, Keypair) {
    let key = |n: u64| {
        let mut k = [0u8; 32];
        let mut r = super::rng::Rng::derive(sc.seed, 0x6b65_7900 + n);
        for c in k.chunks_mut(8) {
            c.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        Keypair::from_private(k)
    };
    (key(1), key(2))
}

fn session_config(sc: &Scenario) -> SessionConfig {
    let classes = sc
        .classes
        .iter()
        .map(|c| ClassConfig {
            id: c.id,
            mode: c.mode,
            priority: c.priority,
            weight: c.weight,
        })
        .collect();
    SessionConfig {
        classes,
        // The largest inner packet that fits one datagram on the links' 1500-byte MTU.
        max_packet: MAX_DATAGRAM - seal::OVERHEAD - wire::DATA_HEADER_LEN,
        ..SessionConfig::default()
    }
}

fn views(s: &Session) -> Vec<SenderView> {
    s.stats()
        .links
        .iter()
        .map(|l| SenderView {
            link: l.id,
            down: l.state == LinkState::Down,
            degraded: l.state == LinkState::Degraded,
            at_cap: l.inflight_bytes >= l.cwnd_bytes,
            queued: l.queued_bytes > 0,
            rate_bps: l.delivery_rate_bps,
            pacing_bps: l.pacing_rate_bps,
            cwnd: l.cwnd_bytes,
            inflight: l.inflight_bytes,
            queued_bytes: l.queued_bytes,
            srtt_us: l.srtt.as_micros() as u64,
        })
        .collect()
}

fn counters(s: &Session) -> EndCounters {
    let st = s.stats();
    EndCounters {
        resends: st.resends,
        reorder_timeouts: st.reorder.timed_out,
        duplicates: st.reorder.duplicates,
        queued_bytes: st.queued_bytes,
    }
}

fn pmeta(m: &Meta) -> PacketMeta {
    PacketMeta {
        user: m.user,
        flow: m.flow,
        class: m.class,
    }
}

fn stats_json(s: &SessionStats) -> serde_json::Value {
    json!({
        "sent_packets": s.sent_packets,
        "refused": s.refused,
        "queued_packets": s.queued_packets,
        "queued_bytes": s.queued_bytes,
        "resends": s.resends,
        "dropped_resend_limit": s.dropped_resend_limit,
        "dropped_no_path": s.dropped_no_path,
        "bad_datagrams": s.bad_datagrams,
        "reorder_wait_ms": s.reorder_wait.as_secs_f64() * 1e3,
        "reorder": {
            "delivered": s.reorder.delivered,
            "duplicates": s.reorder.duplicates,
            "timed_out": s.reorder.timed_out,
            "overflowed": s.reorder.overflowed,
        },
        "links": s.links.iter().map(|l| json!({
            "id": l.id,
            "state": format!("{:?}", l.state),
            "srtt_ms": l.srtt.as_secs_f64() * 1e3,
            "min_rtt_ms": l.min_rtt.as_secs_f64() * 1e3,
            "loss": l.loss,
            "delivery_mbit": l.delivery_rate_bps as f64 / 1e6,
            "pacing_mbit": l.pacing_rate_bps as f64 / 1e6,
            "packets_sent": l.counters.packets_sent,
            "packets_lost": l.counters.packets_lost,
            "packets_received": l.counters.packets_received,
            "bare_sent": l.counters.bare_sent,
            "ack_only_sent": l.counters.ack_only_sent,
            "cwnd_bytes": l.cwnd_bytes,
            "inflight_bytes": l.inflight_bytes,
            "queued_bytes": l.queued_bytes,
        })).collect::<Vec<_>>(),
    })
}

/// Session events worth showing in the report (link state changes, establishment, close).
#[derive(Default)]
struct EventLog {
    events: Vec<serde_json::Value>,
    dropped: u64,
    /// Rejected datagrams by reason.
    rejected: std::collections::BTreeMap<String, u64>,
}

/// Events kept per endpoint (the rest are only counted).
const MAX_EVENTS: usize = 200;

impl EventLog {
    fn drain(&mut self, now: Instant, s: &mut Session) {
        while let Some(e) = s.poll_event() {
            self.push(now, e);
        }
    }

    fn push(&mut self, now: Instant, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.dropped += 1;
            return;
        }
        let t_ms = now.0 as f64 / 1000.0;
        self.events.push(match e {
            Event::LinkState { link, state } => {
                json!({ "t_ms": t_ms, "link": link, "state": format!("{state:?}") })
            }
            other => json!({ "t_ms": t_ms, "event": format!("{other:?}") }),
        });
    }

    fn add_to(&self, v: &mut serde_json::Value) {
        v["events"] = json!(self.events);
        v["events_not_shown"] = json!(self.dropped);
        v["rejected"] = json!(self.rejected);
    }

    /// Count a rejected datagram by the reason's name.
    fn reject(&mut self, why: String) {
        *self.rejected.entry(why).or_insert(0) += 1;
    }
}

struct Edge {
    s: Session,
    bad: u64,
    log: EventLog,
}

impl Tunnel for Edge {
    fn can_send(&self, meta: &Meta) -> bool {
        self.s.can_send(&pmeta(meta))
    }

    fn send(&mut self, now: Instant, packet: &[u8], meta: &Meta) -> bool {
        self.s.send(now, packet, pmeta(meta)).is_ok()
    }

    fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &mut [u8]) {
        if let Err(e) = self.s.handle_datagram(now, Some(link), datagram) {
            self.bad += 1;
            self.log.reject(format!("{e:?}"));
        }
        self.log.drain(now, &mut self.s);
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        self.s.poll_transmit(now, out).map(|t| (t.link, t.len))
    }

    fn poll_deliver(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        match self.s.poll_deliver(now) {
            Some(d) => {
                let old = std::mem::replace(out, d.data);
                self.s.recycle(old);
                true
            }
            None => false,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.s.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.s.handle_timeout(now);
        self.log.drain(now, &mut self.s);
    }

    fn errors(&self) -> u64 {
        self.bad
    }

    fn ready(&self) -> bool {
        self.s.is_established()
    }

    fn counters(&self) -> EndCounters {
        counters(&self.s)
    }

    fn link_views(&self) -> Vec<SenderView> {
        views(&self.s)
    }

    fn stats(&self) -> serde_json::Value {
        let mut v = stats_json(&self.s.stats());
        self.log.add_to(&mut v);
        v
    }
}

/// The core: the daemon's [`Endpoint`], whose addresses are the links datagrams arrived on.
struct Core {
    ep: Endpoint<LinkId>,
    /// The edge's session, once a handshake made one.
    id: Option<SessionId>,
    bad: u64,
    log: EventLog,
    /// Copies of the handshake init that arrived after one was accepted (not errors).
    duplicate_inits: u64,
    /// Datagrams the session attributed to another link than the one they came on.
    wrong_link: u64,
}

impl Core {
    fn session(&self) -> Option<&Session> {
        self.ep.session(self.id?)
    }

    /// Moves the endpoint's events of the edge's session into the log.
    fn drain(&mut self, now: Instant) {
        while let Some((_, e)) = self.ep.poll_event() {
            self.log.push(now, e);
        }
    }
}

impl Tunnel for Core {
    fn can_send(&self, meta: &Meta) -> bool {
        self.session().is_some_and(|s| s.can_send(&pmeta(meta)))
    }

    fn send(&mut self, now: Instant, packet: &[u8], meta: &Meta) -> bool {
        self.id
            .is_some_and(|id| self.ep.send(now, id, packet, pmeta(meta)).is_ok())
    }

    fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &mut [u8]) {
        match self.ep.handle_datagram(now, link, datagram) {
            Ok(Handled::Handshake { session, .. }) => self.id = Some(session),
            Ok(Handled::Data { link: Some(l), .. }) if l != link => self.wrong_link += 1,
            Ok(Handled::Data { .. }) => {}
            // The edge sends its init on every link: copies after the first are stale.
            Err(Drop::Handshake(SealError::Stale)) if self.id.is_some() => {
                self.duplicate_inits += 1
            }
            Err(d) => {
                self.bad += 1;
                self.log.reject(format!("{d:?}"));
            }
        }
        self.drain(now);
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        self.ep.poll_transmit(now, out)
    }

    fn poll_deliver(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let Some((id, d)) = self.ep.poll_deliver(now) else {
            return false;
        };
        let old = std::mem::replace(out, d.data);
        if let Some(s) = self.ep.session_mut(id) {
            s.recycle(old);
        }
        true
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ep.handle_timeout(now);
        self.drain(now);
    }

    fn errors(&self) -> u64 {
        self.bad
    }

    fn ready(&self) -> bool {
        self.session().is_some_and(|s| s.is_established())
    }

    fn counters(&self) -> EndCounters {
        self.session().map(counters).unwrap_or_default()
    }

    fn link_views(&self) -> Vec<SenderView> {
        self.session().map(views).unwrap_or_default()
    }

    fn notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.wrong_link > 0 {
            n.push(format!(
                "core: {} datagrams arrived on one link but handle_datagram named another",
                self.wrong_link
            ));
        }
        if self.ep.stats.no_address > 0 {
            n.push(format!(
                "core: {} datagrams for links the edge had not used yet (not sent)",
                self.ep.stats.no_address
            ));
        }
        n
    }

    fn stats(&self) -> serde_json::Value {
        match self.session() {
            Some(s) => {
                let mut v = stats_json(&s.stats());
                v["wrong_link"] = json!(self.wrong_link);
                v["duplicate_inits"] = json!(self.duplicate_inits);
                self.log.add_to(&mut v);
                v
            }
            None => serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_LINKS: &str = r#"
seed = 3
duration = "1s"
[[link]]
name = "a"
rate = "20mbit"
delay = "20ms"
[[link]]
name = "b"
rate = "10mbit"
delay = "40ms"
[[traffic]]
kind = "bulk"
"#;

    /// Moves every datagram between the two ends at once (edge link i arrives on link i),
    /// running their timers, for 200 rounds 1 ms apart from `now`; returns the time after.
    fn exchange(edge: &mut dyn Tunnel, core: &mut dyn Tunnel, mut now: Instant) -> Instant {
        let mut buf = vec![0u8; 2048];
        for _ in 0..200 {
            if edge.poll_timeout().is_some_and(|t| t <= now) {
                edge.handle_timeout(now);
            }
            if core.poll_timeout().is_some_and(|t| t <= now) {
                core.handle_timeout(now);
            }
            while let Some((link, n)) = edge.poll_transmit(now, &mut buf) {
                core.handle_datagram(now, link, &mut buf[..n]);
            }
            while let Some((link, n)) = core.poll_transmit(now, &mut buf) {
                edge.handle_datagram(now, link, &mut buf[..n]);
            }
            now = now + core::time::Duration::from_millis(1);
        }
        now
    }

    fn core_events(core: &dyn Tunnel) -> Vec<String> {
        core.stats()["events"]
            .as_array()
            .expect("the core has a session")
            .iter()
            .filter_map(|e| e["event"].as_str().map(String::from))
            .collect()
    }

    /// The core side is the daemon's `Endpoint`: an init of another epoch (the edge restarted)
    /// ends the running session and starts a new one, where a copy of the accept logic that
    /// rekeyed every init would carry on the old one.
    #[test]
    fn the_core_is_the_daemons_endpoint_and_ends_the_session_of_a_restarted_edge() {
        let sc = Scenario::parse(TWO_LINKS, "t", None).unwrap();
        let (mut edge, mut core) = pair(&sc).unwrap();
        let now = exchange(edge.as_mut(), core.as_mut(), Instant::ZERO);
        assert!(edge.ready() && core.ready());
        assert_eq!(core_events(core.as_ref()), ["Established"]);
        assert_eq!(core.errors(), 0);

        // The same key in a new process: a new channel, so a new epoch.
        let (edge_key, core_key) = keys(&sc);
        let mut again = Session::new(
            Channel::initiator(&edge_key, core_key.public, now),
            session_config(&sc),
            now,
        );
        again.add_link(0, LinkConfig::default(), now);
        let mut buf = vec![0u8; 2048];
        let t = again.poll_transmit(now, &mut buf).expect("an init");
        core.handle_datagram(now, t.link, &mut buf[..t.len]);
        let (link, n) = core.poll_transmit(now, &mut buf).expect("an answer");
        assert_eq!(link, 0);
        again.handle_datagram(now, Some(0), &mut buf[..n]).unwrap();
        assert!(again.is_established());
        // The old session ended; the new one carries the new process's data, numbered from 0.
        assert_eq!(core_events(core.as_ref()), ["Established", "Closed"]);
        assert!(!core.ready(), "the new session has carried no data yet");
        again.send(now, &[0x45, 7], PacketMeta::default()).unwrap();
        let mut got = Vec::new();
        for ms in 0..100 {
            let now = now + core::time::Duration::from_millis(ms);
            again.handle_timeout(now);
            while let Some(t) = again.poll_transmit(now, &mut buf) {
                core.handle_datagram(now, t.link, &mut buf[..t.len]);
            }
            while let Some((link, n)) = core.poll_transmit(now, &mut buf) {
                let _ = again.handle_datagram(now, Some(link), &mut buf[..n]);
            }
            if core.poll_deliver(now, &mut got) {
                break;
            }
        }
        assert_eq!(got, [0x45, 7]);
        assert!(core.ready());
        assert_eq!(core.errors(), 0);
    }
}
