//! The lab's engine for one direction of an emulated uplink: a [`Pipe`] replays a [`DirSpec`]
//! (the model the simulator replays too, [`crate::linkmodel`]) per packet, in real time.
//!
//! Sans-IO: the caller passes time in (nanoseconds since the emulator started), hands arriving
//! frames to [`Pipe::enqueue`], calls [`Pipe::advance`], and takes due frames from
//! [`Pipe::pop_due`]. [`crate::lab::link`] wires two pipes to two veths with AF_PACKET.
//!
//! Order of effects for a frame: outage (black-hole drops) -> loss (random or Gilbert-Elliott) ->
//! drop-tail queue -> bottleneck service (fixed rate, or Mahimahi delivery opportunities) ->
//! propagation delay + jitter (triangular; kept in order unless `reorder` is set) -> out.

use std::collections::VecDeque;

use crate::linkmodel::{self, LossState};
pub use crate::linkmodel::{
    DirSpec, Gilbert, Loss, Outage, OutageKind, QueueLimit, Rate, Trace, MIN_QUEUE_BYTES,
};
use crate::sim::rng::Rng;

/// Bytes counted per frame against the rate: the IP packet (the frame minus its Ethernet header),
/// so that one 1500-byte MTU packet uses exactly one Mahimahi delivery opportunity.
pub(crate) const ETH_HDR: usize = 14;

/// The outage of `schedule` in force at `now` (ns from the emulator start).
pub(crate) fn outage_at(schedule: &[Outage], now: u64) -> Option<OutageKind> {
    linkmodel::outage_at(schedule, now / 1000).map(|o| o.kind)
}

/// The next time (ns) after `now` at which the outage state of `schedule` may change.
pub(crate) fn next_outage_edge(schedule: &[Outage], now: u64) -> Option<u64> {
    linkmodel::next_outage_edge(schedule, now / 1000).map(|us| us * 1000)
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PipeStats {
    pub(crate) in_pkts: u64,
    pub(crate) out_pkts: u64,
    /// IP bytes delivered.
    pub(crate) out_bytes: u64,
    pub(crate) lost: u64,
    pub(crate) queue_drops: u64,
    pub(crate) outage_drops: u64,
}

/// Hard cap on what a stall holds, whatever the queue limit (a stall is a modem holding data).
const STALL_HOLD_MAX: u64 = 8 << 20;
/// Bytes carried by one Mahimahi delivery opportunity.
const OPP_BYTES: u64 = crate::linkmodel::TRACE_MTU as u64;

struct Queued {
    arrival_ns: u64,
    /// Bytes of this frame not yet served (trace service may split a frame over opportunities).
    left: u64,
    frame: Vec<u8>,
}

/// One direction of an emulated link.
pub(crate) struct Pipe {
    spec: DirSpec,
    rng: Rng,
    limit_bytes: Option<u64>,
    queue: VecDeque<Queued>,
    queued_bytes: u64,
    /// Fixed rate: when the bottleneck finishes the frame it is serving (or finished the last).
    busy_until: u64,
    /// Trace: index of the next delivery opportunity (absolute, across repetitions).
    opp: u64,
    delay_line: VecDeque<(u64, Vec<u8>)>,
    last_delivery: u64,
    loss: LossState,
    stats: PipeStats,
    free: Vec<Vec<u8>>,
}

impl Pipe {
    pub(crate) fn new(spec: DirSpec, seed: u64) -> Self {
        Pipe {
            limit_bytes: spec.queue_limit_bytes(),
            spec,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: 0,
            opp: 0,
            delay_line: VecDeque::new(),
            last_delivery: 0,
            loss: LossState::default(),
            stats: PipeStats::default(),
            free: Vec::new(),
        }
    }

    pub(crate) fn stats(&self) -> PipeStats {
        self.stats
    }

    /// A buffer for the next frame (recycled from delivered ones).
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(2048))
    }

    /// Give a delivered frame's buffer back.
    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < 256 {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// The loss process decides for IP packets only: ARP and the like get through, so a lossy
    /// link still resolves neighbours.
    fn lose(&mut self, frame: &[u8]) -> bool {
        if self.spec.loss.mean() <= 0.0 || !is_ip(frame) {
            return false;
        }
        self.loss.lose(&self.spec.loss, &mut self.rng)
    }

    /// A frame arrives at `now` while `outage` is in force.
    pub(crate) fn enqueue(&mut self, now: u64, frame: Vec<u8>, outage: Option<OutageKind>) {
        self.stats.in_pkts += 1;
        if outage == Some(OutageKind::Blackhole) {
            self.stats.outage_drops += 1;
            self.recycle(frame);
            return;
        }
        if self.lose(&frame) {
            self.stats.lost += 1;
            self.recycle(frame);
            return;
        }
        let len = ip_len(&frame);
        let limit = if outage == Some(OutageKind::Stall) {
            self.limit_bytes.map(|l| l.max(STALL_HOLD_MAX))
        } else {
            self.limit_bytes
        };
        if limit.is_some_and(|l| self.queued_bytes + len > l) {
            self.stats.queue_drops += 1;
            self.recycle(frame);
            return;
        }
        self.queued_bytes += len;
        self.queue.push_back(Queued {
            arrival_ns: now,
            left: len,
            frame,
        });
    }

    /// Serve the bottleneck up to `now`.
    pub(crate) fn advance(&mut self, now: u64, outage: Option<OutageKind>) {
        match outage {
            Some(OutageKind::Blackhole) => {
                self.stats.outage_drops += self.queue.len() as u64;
                while let Some(q) = self.queue.pop_front() {
                    self.recycle(q.frame);
                }
                self.queued_bytes = 0;
                self.busy_until = self.busy_until.max(now);
                self.skip_opps(now);
                return;
            }
            Some(OutageKind::Stall) => {
                self.busy_until = self.busy_until.max(now);
                self.skip_opps(now);
                return;
            }
            None => {}
        }
        match self.spec.rate.clone() {
            Rate::Unlimited => {
                while let Some(q) = self.queue.pop_front() {
                    self.queued_bytes -= q.left;
                    self.push_delay_line(q.arrival_ns.max(self.busy_until), q.frame);
                }
            }
            Rate::Fixed(bps) => {
                let bps = bps.max(1);
                while let Some(head) = self.queue.front() {
                    let start = head.arrival_ns.max(self.busy_until);
                    let finish = start + head.left * 8 * 1_000_000_000 / bps;
                    if finish > now {
                        break;
                    }
                    let q = self.queue.pop_front().expect("front checked above");
                    self.queued_bytes -= q.left;
                    self.busy_until = finish;
                    self.push_delay_line(finish, q.frame);
                }
            }
            Rate::Trace { trace, offset_us } => {
                let offset_ms = offset_us / 1000;
                while let Some(head) = self.queue.front() {
                    // Opportunities that passed while the queue was empty are lost.
                    let first = trace.first_opp_at_or_after(head.arrival_ns, offset_ms);
                    self.opp = self.opp.max(first);
                    let t = trace.opp_time_ns(self.opp, offset_ms);
                    if t > now {
                        break;
                    }
                    let mut credit = OPP_BYTES;
                    while credit > 0 {
                        let Some(head) = self.queue.front_mut() else {
                            break;
                        };
                        if head.arrival_ns > t {
                            break;
                        }
                        if head.left <= credit {
                            credit -= head.left;
                            self.queued_bytes -= head.left;
                            let q = self.queue.pop_front().expect("front checked above");
                            self.push_delay_line(t, q.frame);
                        } else {
                            head.left -= credit;
                            self.queued_bytes -= credit;
                            credit = 0;
                        }
                    }
                    self.opp += 1;
                }
            }
        }
    }

    fn skip_opps(&mut self, now: u64) {
        if let Rate::Trace { trace, offset_us } = &self.spec.rate {
            self.opp = self
                .opp
                .max(trace.first_opp_at_or_after(now, offset_us / 1000));
        }
    }

    fn push_delay_line(&mut self, served: u64, frame: Vec<u8>) {
        let j = self.spec.jitter_us as i64 * 1000;
        let jitter = if j > 0 { self.rng.triangular(j) } else { 0 };
        let mut at =
            (served as i64 + self.spec.delay_us as i64 * 1000 + jitter).max(served as i64) as u64;
        if !self.spec.reorder {
            at = at.max(self.last_delivery);
            self.last_delivery = at;
            self.delay_line.push_back((at, frame));
        } else {
            let pos = self.delay_line.partition_point(|(t, _)| *t <= at);
            self.delay_line.insert(pos, (at, frame));
        }
    }

    /// The next frame due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.delay_line.front().is_some_and(|(t, _)| *t <= now) {
            let (_, f) = self.delay_line.pop_front().expect("front checked above");
            self.stats.out_pkts += 1;
            self.stats.out_bytes += ip_len(&f);
            return Some(f);
        }
        None
    }

    /// When [`Pipe::advance`]/[`Pipe::pop_due`] next have work (`None`: idle).
    pub(crate) fn next_wakeup(&self) -> Option<u64> {
        let line = self.delay_line.front().map(|(t, _)| *t);
        let head = self.queue.front().map(|h| match &self.spec.rate {
            Rate::Unlimited => h.arrival_ns,
            Rate::Fixed(bps) => {
                h.arrival_ns.max(self.busy_until) + h.left * 8 * 1_000_000_000 / (*bps).max(1)
            }
            Rate::Trace { trace, offset_us } => {
                let first = trace.first_opp_at_or_after(h.arrival_ns, offset_us / 1000);
                trace.opp_time_ns(self.opp.max(first), offset_us / 1000)
            }
        });
        match (line, head) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn ip_len(frame: &[u8]) -> u64 {
    frame.len().saturating_sub(ETH_HDR).max(1) as u64
}

/// IPv4 or IPv6 (loss spares ARP and the like, so a lossy link still resolves neighbours).
fn is_ip(frame: &[u8]) -> bool {
    matches!(frame.get(12..14), Some([0x08, 0x00]) | Some([0x86, 0xdd]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ip_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12] = 0x08;
        f
    }

    /// Offer `pps` frames of `len` bytes for `secs` seconds, return delivered IP bytes and the
    /// delivery time of each frame.
    fn drive(p: &mut Pipe, len: usize, gap_ns: u64, n: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut now = 0;
        for i in 0..n {
            now = i * gap_ns;
            p.enqueue(now, ip_frame(len), None);
            p.advance(now, None);
            while let Some(_f) = p.pop_due(now) {
                out.push(now);
            }
        }
        // drain
        while let Some(t) = p.next_wakeup() {
            now = now.max(t);
            p.advance(now, None);
            while p.pop_due(now).is_some() {
                out.push(now);
            }
        }
        out
    }

    #[test]
    fn fixed_rate_serialises_frames() {
        let spec = DirSpec {
            rate: Rate::Fixed(12_000_000),
            queue: QueueLimit::Unlimited,
            ..Default::default()
        };
        let mut p = Pipe::new(spec, 1);
        // 1514-byte frames = 1500 IP bytes = 1 ms each at 12 Mbit/s; offered back to back.
        let t = drive(&mut p, 1514, 0, 100);
        assert_eq!(t.len(), 100);
        assert_eq!(*t.last().unwrap(), 100_000_000);
    }

    #[test]
    fn delay_is_added_and_order_kept_under_jitter() {
        let spec = DirSpec {
            delay_us: 20_000,
            jitter_us: 5_000,
            ..Default::default()
        };
        let mut p = Pipe::new(spec, 7);
        let t = drive(&mut p, 100, 1_000_000, 200);
        assert_eq!(t.len(), 200);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert!(t[0] >= 15_000_000);
    }

    #[test]
    fn random_and_bursty_loss_hit_their_mean() {
        for burst in [None, Some(Gilbert::from_mean(0.02, 5.0))] {
            let spec = DirSpec {
                loss: Loss {
                    random: if burst.is_some() { 0.0 } else { 0.02 },
                    burst,
                },
                ..Default::default()
            };
            let mut p = Pipe::new(spec, 3);
            let t = drive(&mut p, 100, 1000, 100_000);
            let lost = 100_000 - t.len();
            assert!((1600..2400).contains(&lost), "burst {burst:?}: lost {lost}");
        }
    }

    #[test]
    fn drop_tail_queue_limits_standing_queue() {
        let spec = DirSpec {
            rate: Rate::Fixed(8_000_000),
            queue: QueueLimit::Time(10_000),
            ..Default::default()
        };
        let mut p = Pipe::new(spec, 1);
        // 10 ms at 8 Mbit/s = 10,000 bytes: offering 100 x 1000 at once keeps 10.
        for _ in 0..100 {
            p.enqueue(0, ip_frame(1014), None);
        }
        assert_eq!(p.stats().queue_drops, 90);
    }

    #[test]
    fn stall_holds_then_releases_and_blackhole_drops() {
        let mut p = Pipe::new(DirSpec::default(), 1);
        p.enqueue(0, ip_frame(100), Some(OutageKind::Stall));
        p.advance(0, Some(OutageKind::Stall));
        assert!(p.pop_due(0).is_none());
        p.advance(5, None);
        assert!(p.pop_due(5).is_some());
        p.enqueue(6, ip_frame(100), Some(OutageKind::Blackhole));
        p.advance(6, None);
        assert!(p.pop_due(6).is_none());
        assert_eq!(p.stats().outage_drops, 1);
    }

    #[test]
    fn trace_gives_one_packet_per_opportunity() {
        let trace = Arc::new(Trace::parse("trace", "1\n").unwrap());
        let spec = DirSpec {
            rate: Rate::Trace {
                trace,
                offset_us: 0,
            },
            queue: QueueLimit::Unlimited,
            ..Default::default()
        };
        let mut p = Pipe::new(spec, 1);
        let t = drive(&mut p, 1514, 0, 1000);
        assert_eq!(t.len(), 1000);
        let last = *t.last().unwrap();
        assert!((999_000_000..=1_001_000_000).contains(&last), "{last}");
    }

    #[test]
    fn outage_schedule_lookup() {
        // The schedule is in µs, the emulator's clock in ns.
        let s = [Outage {
            start_us: 10,
            end_us: 15,
            kind: OutageKind::Stall,
        }];
        assert_eq!(outage_at(&s, 9_999), None);
        assert_eq!(outage_at(&s, 10_000), Some(OutageKind::Stall));
        assert_eq!(outage_at(&s, 14_999), Some(OutageKind::Stall));
        assert_eq!(outage_at(&s, 15_000), None);
        assert_eq!(next_outage_edge(&s, 0), Some(10_000));
        assert_eq!(next_outage_edge(&s, 12_345), Some(15_000));
        assert_eq!(next_outage_edge(&s, 15_000), None);
    }
}
