//! The real protocol as a simulator [`Tunnel`]: a pair of `proto::Session`s.
//!
//! Edge: `Channel::initiator` toward the core's key, one `add_link` per scenario link with its
//! role, weight and cap. Core: an `Acceptor` answers the first handshake init (on the link it
//! came on), then `Channel::responder` starts the core's session, which learns the links from
//! the frames (it is given `None` as the link, as the real core is, and the answer is checked).
//! Keys are derived from the scenario seed, so runs do not depend on the system's randomness
//! beyond the handshakes' ephemeral keys, which change bytes but no sizes or timings.

use std::collections::VecDeque;

use serde_json::json;

use super::engine::MAX_DATAGRAM;
use super::scenario::{Mode, Role, Scenario};
use super::tunnel::{EndCounters, Meta, Pair, SenderView, Tunnel};
use crate::proto::link::{LinkConfig, LinkState};
use crate::proto::sched::{ClassConfig, Mode as PMode};
use crate::proto::seal::{self, Acceptor, Channel, Keypair};
use crate::proto::session::{Event, PacketMeta, Session, SessionConfig, SessionStats};
use crate::proto::wire::{self, LinkRole};
use crate::proto::{Instant, LinkId};

/// Build the (edge, core) session pair for a scenario.
pub fn pair(sc: &Scenario) -> Result<Pair, String> {
    let key = |n: u64| {
        let mut k = [0u8; 32];
        let mut r = super::rng::Rng::derive(sc.seed, 0x6b65_7900 + n);
        for c in k.chunks_mut(8) {
            c.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        Keypair::from_private(k)
    };
    let (edge_key, core_key) = (key(1), key(2));
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
                role: match l.role {
                    Role::Primary => LinkRole::Primary,
                    Role::Secondary => LinkRole::Secondary,
                    Role::Backup => LinkRole::Backup,
                    Role::Never => LinkRole::Never,
                },
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
            acceptor: Acceptor::new(core_key),
            edge_public,
            config,
            s: None,
            out: VecDeque::new(),
            bad: 0,
            wrong_link: 0,
            duplicate_inits: 0,
            log: EventLog::default(),
        }),
    ))
}

fn session_config(sc: &Scenario) -> SessionConfig {
    let classes = sc
        .classes
        .iter()
        .map(|c| ClassConfig {
            id: c.id,
            mode: match c.mode {
                Mode::Aggregate => PMode::Aggregate,
                Mode::Weighted => PMode::Weighted,
                Mode::Redundant => PMode::Redundant,
                Mode::Backup => PMode::Backup,
                Mode::Pinned(l) => PMode::Pinned(l),
            },
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
            "packets_sent": l.packets_sent,
            "packets_lost": l.packets_lost,
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
            if self.events.len() >= MAX_EVENTS {
                self.dropped += 1;
                continue;
            }
            let t_ms = now.0 as f64 / 1000.0;
            self.events.push(match e {
                Event::LinkState { link, state } => {
                    json!({ "t_ms": t_ms, "link": link, "state": format!("{state:?}") })
                }
                other => json!({ "t_ms": t_ms, "event": format!("{other:?}") }),
            });
        }
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

struct Core {
    acceptor: Acceptor,
    edge_public: [u8; 32],
    config: SessionConfig,
    s: Option<Session>,
    /// Handshake responses to send: (link, bytes).
    out: VecDeque<(LinkId, Vec<u8>)>,
    bad: u64,
    log: EventLog,
    /// Copies of the handshake init that arrived after one was accepted (not errors).
    duplicate_inits: u64,
    /// Datagrams the session attributed to another link than the one they came on.
    wrong_link: u64,
}

impl Tunnel for Core {
    fn can_send(&self, meta: &Meta) -> bool {
        self.s.as_ref().is_some_and(|s| s.can_send(&pmeta(meta)))
    }

    fn send(&mut self, now: Instant, packet: &[u8], meta: &Meta) -> bool {
        match &mut self.s {
            Some(s) => s.send(now, packet, pmeta(meta)).is_ok(),
            None => false,
        }
    }

    fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &mut [u8]) {
        if seal::is_init(datagram) {
            let mut resp = vec![0u8; seal::RESPONSE_LEN];
            let index = 1 + self.out.len() as u32;
            let edge = self.edge_public;
            let same = self
                .s
                .as_ref()
                .is_some_and(|s| s.channel().is_established());
            let admit = |k: &[u8; 32], _| match (*k == edge, same) {
                (false, _) => seal::Admission::Refused,
                (true, true) => seal::Admission::SameSession,
                (true, false) => seal::Admission::NewSession,
            };
            match self.acceptor.accept(now, datagram, admit, index, &mut resp) {
                Ok(acc) => {
                    resp.truncate(acc.response_len);
                    self.out.push_back((link, resp));
                    match &mut self.s {
                        Some(s) => s.channel_mut().rekeyed(acc),
                        None => {
                            self.s = Some(Session::new(
                                Channel::responder(acc, now),
                                self.config.clone(),
                                now,
                            ))
                        }
                    }
                }
                // The edge sends its init on every link: copies after the first are stale.
                Err(seal::SealError::Stale) if self.s.is_some() => self.duplicate_inits += 1,
                Err(e) => {
                    self.bad += 1;
                    self.log.reject(format!("handshake {e:?}"));
                }
            }
            return;
        }
        let Some(s) = &mut self.s else {
            self.bad += 1;
            self.log.reject("before the handshake".into());
            return;
        };
        match s.handle_datagram(now, None, datagram) {
            Ok(Some(l)) if l != link => self.wrong_link += 1,
            Ok(_) => {}
            Err(e) => {
                self.bad += 1;
                self.log.reject(format!("{e:?}"));
            }
        }
        self.log.drain(now, s);
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        if let Some((link, d)) = self.out.pop_front() {
            out[..d.len()].copy_from_slice(&d);
            return Some((link, d.len()));
        }
        self.s
            .as_mut()?
            .poll_transmit(now, out)
            .map(|t| (t.link, t.len))
    }

    fn poll_deliver(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let Some(s) = &mut self.s else { return false };
        match s.poll_deliver(now) {
            Some(d) => {
                let old = std::mem::replace(out, d.data);
                s.recycle(old);
                true
            }
            None => false,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.s.as_ref()?.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = &mut self.s {
            s.handle_timeout(now);
            self.log.drain(now, s);
        }
    }

    fn errors(&self) -> u64 {
        self.bad
    }

    fn ready(&self) -> bool {
        self.s.as_ref().is_some_and(|s| s.is_established())
    }

    fn counters(&self) -> EndCounters {
        self.s.as_ref().map(counters).unwrap_or_default()
    }

    fn link_views(&self) -> Vec<SenderView> {
        self.s.as_ref().map(views).unwrap_or_default()
    }

    fn notes(&self) -> Vec<String> {
        let mut n = Vec::new();
        if self.wrong_link > 0 {
            n.push(format!(
                "core: {} datagrams arrived on one link but handle_datagram named another",
                self.wrong_link
            ));
        }
        n
    }

    fn stats(&self) -> serde_json::Value {
        match &self.s {
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
