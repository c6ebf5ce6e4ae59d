//! The simulator's view of a protocol endpoint, and the trivial stand-in used to test the engine.
//!
//! The engine never touches the protocol directly: it drives two [`Tunnel`]s (edge and core)
//! through this small trait, which mirrors the sans-IO `Session` API (send / can_send /
//! handle_datagram / poll_transmit / poll_deliver / poll_timeout / handle_timeout).

use std::collections::VecDeque;

use super::link::IP_UDP_OVERHEAD;
use super::scenario::Scenario;
use crate::proto::{Instant, LinkId};

/// What the caller knows about an inner packet (classification happens before the tunnel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub(crate) user: u32,
    pub(crate) flow: u64,
    pub(crate) class: u8,
}

/// A sender's state for one link at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderView {
    pub(crate) link: LinkId,
    /// Down (timed out, or administratively): only probes go out.
    pub(crate) down: bool,
    pub(crate) degraded: bool,
    /// In flight at or above the link's in-flight cap.
    pub(crate) at_cap: bool,
    /// Data waits in the link's own queue (so the pacer, not the scheduler, holds it back).
    pub(crate) queued: bool,
    /// The sender's estimates (for `--timeline`): delivery rate and pacing rate (bit/s),
    /// in-flight cap, in flight and queued (bytes), smoothed RTT (µs).
    pub(crate) rate_bps: u64,
    pub(crate) pacing_bps: u64,
    pub(crate) cwnd: u64,
    pub(crate) inflight: u64,
    pub(crate) queued_bytes: u64,
    pub(crate) srtt_us: u64,
}

/// Counters of an endpoint that the timeline follows (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndCounters {
    /// Copies resent after a loss.
    pub(crate) resends: u64,
    /// Packets the receiver released after the full reorder wait.
    pub(crate) reorder_timeouts: u64,
    pub(crate) duplicates: u64,
    /// Bytes waiting in the sender's user queues now (not cumulative).
    pub(crate) queued_bytes: u64,
}

/// The two endpoints of a run: (edge, core).
pub(crate) type Pair = (Box<dyn Tunnel>, Box<dyn Tunnel>);

/// One endpoint of the tunnel, as the simulator drives it.
pub trait Tunnel {
    /// Whether `send` would accept a packet of this user/class now (back-pressure for bulk).
    fn can_send(&self, meta: &Meta) -> bool;
    /// Queue an inner packet; false when refused (queue full).
    fn send(&mut self, now: Instant, packet: &[u8], meta: &Meta) -> bool;
    /// A datagram arrived on `link` (the core side pretends not to know and checks the answer).
    fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &mut [u8]);
    /// The next datagram to put on a link: (link, length written into `out`).
    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)>;
    /// The next restored inner packet, copied into `out`; false when none.
    fn poll_deliver(&mut self, now: Instant, out: &mut Vec<u8>) -> bool;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    /// Datagrams the endpoint rejected (errors from `handle_datagram`).
    fn errors(&self) -> u64 {
        0
    }
    /// Anomalies worth a line under the report (not errors of the run).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this endpoint's sender is doing with each link (for the report's breakdown of
    /// unused capacity); empty if the tunnel has no per-link sender state.
    fn link_views(&self) -> Vec<SenderView> {
        Vec::new()
    }
    /// Endpoint statistics for the report (free-form).
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Cumulative counters for the timeline.
    fn counters(&self) -> EndCounters {
        EndCounters::default()
    }
    /// Whether the endpoint carries traffic yet (its session is established). TCP flows start
    /// once both ends are ready, as the lab starts its workloads once the tunnel is up.
    fn ready(&self) -> bool {
        true
    }
    /// Bytes each datagram costs on a link beyond its length (the outer IPv4 + UDP header;
    /// none when the inner packets themselves go on the link).
    fn wire_overhead(&self) -> usize {
        IP_UDP_OVERHEAD
    }
}

/// No tunnel: each inner packet goes on one link as it is, at once (the link's own queue is
/// the only one), and leaves the other end in arrival order. The baseline of a single link.
#[derive(Debug, Default)]
pub(crate) struct Direct {
    link: LinkId,
    out: VecDeque<Vec<u8>>,
    delivered: VecDeque<Vec<u8>>,
}

impl Direct {
    /// The two ends over `link`: (edge, core).
    pub(crate) fn pair(link: LinkId) -> (Direct, Direct) {
        let d = || Direct {
            link,
            ..Direct::default()
        };
        (d(), d())
    }
}

impl Tunnel for Direct {
    /// Saturating sources have nothing to hold them back here (TCP's window does that).
    fn can_send(&self, _meta: &Meta) -> bool {
        false
    }

    fn send(&mut self, _now: Instant, packet: &[u8], _meta: &Meta) -> bool {
        self.out.push_back(packet.to_vec());
        true
    }

    fn handle_datagram(&mut self, _now: Instant, _link: LinkId, datagram: &mut [u8]) {
        self.delivered.push_back(datagram.to_vec());
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        let p = self.out.pop_front()?;
        let n = p.len().min(out.len());
        out[..n].copy_from_slice(&p[..n]);
        Some((self.link, n))
    }

    fn poll_deliver(&mut self, _now: Instant, out: &mut Vec<u8>) -> bool {
        deliver_from(&mut self.delivered, out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn wire_overhead(&self) -> usize {
        0
    }
}

/// The trivial single-path stand-in: every packet goes over the first link, paced at that link's
/// (mean) rate, no acknowledgements, no recovery, delivered in arrival order.
#[derive(Debug)]
pub(crate) struct Pipe {
    rate_bps: f64,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    limit_bytes: usize,
    next_tx: Instant,
    delivered: VecDeque<Vec<u8>>,
    bad: u64,
}

/// Moves the oldest packet of `q` to `out` (a stand-in's `poll_deliver`); false when `q` is empty.
fn deliver_from(q: &mut VecDeque<Vec<u8>>, out: &mut Vec<u8>) -> bool {
    q.pop_front().map(|p| *out = p).is_some()
}

/// Stand-in header: a marker byte before the inner packet.
const PIPE_MARK: u8 = 0xB7;

impl Pipe {
    /// The two ends for a scenario: (edge, core).
    pub(crate) fn pair(sc: &Scenario) -> (Pipe, Pipe) {
        let l = &sc.links[0];
        (Pipe::new(l.up.mean_bps()), Pipe::new(l.down.mean_bps()))
    }

    fn new(rate_bps: f64) -> Pipe {
        Pipe {
            rate_bps,
            queue: VecDeque::new(),
            queued_bytes: 0,
            limit_bytes: 64 * 1024,
            next_tx: Instant::ZERO,
            delivered: VecDeque::new(),
            bad: 0,
        }
    }
}

impl Tunnel for Pipe {
    fn can_send(&self, _meta: &Meta) -> bool {
        self.queued_bytes < self.limit_bytes
    }

    fn send(&mut self, _now: Instant, packet: &[u8], _meta: &Meta) -> bool {
        // Some headroom above the back-pressure mark, so paced sources are not starved by bulk.
        if self.queued_bytes + packet.len() > self.limit_bytes + 8 * 1024 {
            return false;
        }
        self.queued_bytes += packet.len();
        self.queue.push_back(packet.to_vec());
        true
    }

    fn handle_datagram(&mut self, _now: Instant, _link: LinkId, datagram: &mut [u8]) {
        match datagram.split_first() {
            Some((&PIPE_MARK, inner)) => self.delivered.push_back(inner.to_vec()),
            _ => self.bad += 1,
        }
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        if now < self.next_tx {
            return None;
        }
        let p = self.queue.pop_front()?;
        self.queued_bytes -= p.len();
        out[0] = PIPE_MARK;
        out[1..=p.len()].copy_from_slice(&p);
        let wire = (p.len() + 1 + IP_UDP_OVERHEAD) as f64;
        let gap_us = (wire * 8e6 / self.rate_bps).ceil() as u64;
        self.next_tx = Instant(self.next_tx.0.max(now.0) + gap_us);
        Some((0, p.len() + 1))
    }

    fn poll_deliver(&mut self, _now: Instant, out: &mut Vec<u8>) -> bool {
        deliver_from(&mut self.delivered, out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.next_tx)
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn errors(&self) -> u64 {
        self.bad
    }
}
