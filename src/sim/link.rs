//! The simulator's engine for one direction of a link: it replays a [`DirSpec`] (the model the
//! lab's emulator replays too, [`crate::linkmodel`]): drop-tail queue, rate (fixed or Mahimahi
//! trace), one-way delay with jitter (uniform), random and bursty loss, outages.
//!
//! The model is FIFO and its schedule is known in advance, so the fate of a datagram (its arrival
//! time at the far end, or the reason it was dropped) is computed when it is offered: one event
//! per datagram, no per-byte ticking.

use super::rng::Rng;
use crate::linkmodel::LossState;
pub use crate::linkmodel::{
    DirSpec, Gilbert, Loss, Outage, OutageKind, QueueLimit, Rate, Trace, TRACE_MTU,
};
use crate::proto::Instant;

/// Bytes of IPv4 + UDP header that the link carries on top of each datagram.
pub(crate) const IP_UDP_OVERHEAD: usize = 28;

/// Why a datagram did not arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drop {
    Queue,
    Loss,
    Outage,
}

/// The fate of an offered datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Arrive(Instant),
    /// Arrives with one bit flipped: bit `r % 8` of byte `(r / 8) % len`.
    Mangled(Instant, u32),
    Dropped(Drop),
}

/// Counters of one direction (bytes are wire bytes: datagram + IP/UDP header).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DirStats {
    pub offered_packets: u64,
    offered_bytes: u64,
    delivered_packets: u64,
    delivered_bytes: u64,
    pub(crate) drop_queue: u64,
    pub drop_loss: u64,
    pub drop_outage: u64,
    /// Wire bytes the queue accepted (they take the link's capacity, even if lost after it).
    accepted_bytes: u64,
    /// Datagrams delivered with a flipped bit.
    pub corrupted: u64,
    /// Largest queueing delay seen (µs): time from offer to the end of serialisation.
    max_queue_delay_us: u64,
}

/// One direction of a link.
#[derive(Debug)]
pub(crate) struct LinkDir {
    cfg: DirSpec,
    rng: Rng,
    limit_bytes: u64,
    /// (departure ns, bytes) of datagrams queued or being serialised.
    queue: std::collections::VecDeque<(u64, u64)>,
    queued_bytes: u64,
    /// Fixed rate: when the server is free again (ns).
    busy_until_ns: u64,
    /// Trace: current opportunity (cycle, index) and bytes left in it.
    cursor: (u64, usize),
    cursor_left: u32,
    cursor_started: bool,
    last_arrival_us: u64,
    loss: LossState,
    pub(crate) stats: DirStats,
    /// Queueing delay (offer to end of serialisation, µs) of every datagram the queue accepted.
    pub(crate) queue_delays_us: Vec<u32>,
}

impl LinkDir {
    pub(crate) fn new(cfg: DirSpec, rng: Rng) -> LinkDir {
        LinkDir {
            limit_bytes: cfg.queue_limit_bytes().unwrap_or(u64::MAX),
            cfg,
            rng,
            queue: Default::default(),
            queued_bytes: 0,
            busy_until_ns: 0,
            cursor: (0, 0),
            cursor_left: 0,
            cursor_started: false,
            last_arrival_us: 0,
            loss: LossState::default(),
            stats: DirStats::default(),
            queue_delays_us: Vec::new(),
        }
    }

    /// Bytes waiting in (or being serialised by) the queue at `now`.
    pub(crate) fn queued_bytes(&mut self, now: Instant) -> u64 {
        let now_ns = now.0 * 1000;
        while let Some(&(dep, bytes)) = self.queue.front() {
            if dep > now_ns {
                break;
            }
            self.queue.pop_front();
            self.queued_bytes -= bytes;
        }
        self.queued_bytes
    }

    /// Wire bytes the link has finished serialising by `now` (its capacity actually used).
    pub(crate) fn served_bytes(&mut self, now: Instant) -> u64 {
        self.stats.accepted_bytes - self.queued_bytes(now)
    }

    /// Offer a whole IP packet of `wire` bytes at `now`.
    pub(crate) fn offer_wire(&mut self, now: Instant, wire: u64) -> Fate {
        self.stats.offered_packets += 1;
        self.stats.offered_bytes += wire;
        let fate = self.fate(now, wire);
        match fate {
            Fate::Arrive(_) => {
                self.stats.delivered_packets += 1;
                self.stats.delivered_bytes += wire;
            }
            Fate::Mangled(..) => {
                self.stats.delivered_packets += 1;
                self.stats.delivered_bytes += wire;
                self.stats.corrupted += 1;
            }
            Fate::Dropped(Drop::Queue) => self.stats.drop_queue += 1,
            Fate::Dropped(Drop::Loss) => self.stats.drop_loss += 1,
            Fate::Dropped(Drop::Outage) => self.stats.drop_outage += 1,
        }
        fate
    }

    fn fate(&mut self, now: Instant, wire: u64) -> Fate {
        let now_us = now.0;
        if let Some(o) = self.cfg.outage_at(now_us) {
            if o.kind == OutageKind::Blackhole {
                return Fate::Dropped(Drop::Outage);
            }
        }
        if self.queued_bytes(now).saturating_add(wire) > self.limit_bytes {
            return Fate::Dropped(Drop::Queue);
        }
        let depart_ns = match self.cfg.rate.clone() {
            Rate::Unlimited => self.serve_fixed(now_us, wire, u64::MAX),
            Rate::Fixed(bps) => self.serve_fixed(now_us, wire, bps),
            Rate::Trace { trace, offset_us } => self.serve_trace(now_us, wire, &trace, offset_us),
        };
        self.queue.push_back((depart_ns, wire));
        self.queued_bytes += wire;
        self.stats.accepted_bytes += wire;
        let depart_us = depart_ns.div_ceil(1000);
        self.stats.max_queue_delay_us = self.stats.max_queue_delay_us.max(depart_us - now_us);
        self.queue_delays_us
            .push((depart_us - now_us).min(u64::from(u32::MAX)) as u32);

        // Loss is decided per datagram that got through the queue (it used the capacity).
        let lost = self.loss.lose(&self.cfg.loss, &mut self.rng);

        let jitter = if self.cfg.jitter_us > 0 {
            let j = self.cfg.jitter_us as f64;
            self.rng.range_f64(-j, j)
        } else {
            0.0
        };
        let delay = (self.cfg.delay_us as f64 + jitter).max(0.0) as u64;
        let mut arrive = depart_us + delay;
        // A stall holds what is travelling until it ends; a black hole swallows it.
        for o in &self.cfg.outages {
            let overlaps = o.start_us < arrive && depart_us < o.end_us;
            match o.kind {
                OutageKind::Blackhole if overlaps => return Fate::Dropped(Drop::Outage),
                OutageKind::Stall if o.start_us <= arrive && arrive < o.end_us => arrive = o.end_us,
                _ => {}
            }
        }
        if !self.cfg.reorder {
            arrive = arrive.max(self.last_arrival_us);
        }
        if lost {
            return Fate::Dropped(Drop::Loss);
        }
        self.last_arrival_us = arrive;
        if self.rng.chance(self.cfg.corrupt) {
            return Fate::Mangled(Instant(arrive), self.rng.next_u64() as u32);
        }
        Fate::Arrive(Instant(arrive))
    }

    /// Fixed rate: start when the server is free and not stalled; serialise at `bps`.
    fn serve_fixed(&mut self, now_us: u64, wire: u64, bps: u64) -> u64 {
        let mut start = self.busy_until_ns.max(now_us * 1000);
        if let Some(o) = self.stall_at(start / 1000) {
            start = o * 1000;
        }
        let tx_ns = (wire * 8 * 1_000_000_000).div_ceil(bps.max(1));
        self.busy_until_ns = start + tx_ns;
        self.busy_until_ns
    }

    /// End of the stall covering `t_us`, if any.
    fn stall_at(&self, t_us: u64) -> Option<u64> {
        self.cfg
            .outages
            .iter()
            .find(|o| o.kind == OutageKind::Stall && o.start_us <= t_us && t_us < o.end_us)
            .map(|o| o.end_us)
    }

    /// Trace: each opportunity serves up to 1500 bytes of the queue; unused bytes are lost.
    fn serve_trace(&mut self, now_us: u64, wire: u64, trace: &Trace, offset_us: u64) -> u64 {
        let period_us = trace.period_ms * 1000;
        let opp_us = |c: (u64, usize)| trace.at_us(c.0, c.1).saturating_sub(offset_us);
        let next = |c: (u64, usize)| {
            if c.1 + 1 < trace.ms.len() {
                (c.0, c.1 + 1)
            } else {
                (c.0 + 1, 0)
            }
        };
        if !self.cursor_started || opp_us(self.cursor) < now_us {
            // The queue ran empty: jump to the first opportunity at or after now.
            let t = now_us + offset_us;
            let cycle = t / period_us;
            let rest_ms = (t % period_us).div_ceil(1000);
            let idx = trace.ms.partition_point(|&m| m < rest_ms);
            self.cursor = if idx < trace.ms.len() {
                (cycle, idx)
            } else {
                (cycle + 1, 0)
            };
            self.cursor_left = TRACE_MTU;
            self.cursor_started = true;
        }
        let mut need = wire;
        loop {
            // No service during a stall.
            while self.stall_at(opp_us(self.cursor)).is_some() {
                self.cursor = next(self.cursor);
                self.cursor_left = TRACE_MTU;
            }
            let take = need.min(u64::from(self.cursor_left));
            need -= take;
            self.cursor_left -= take as u32;
            if need == 0 {
                return opp_us(self.cursor) * 1000;
            }
            self.cursor = next(self.cursor);
            self.cursor_left = TRACE_MTU;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl LinkDir {
        /// Offer a datagram of `datagram_len` bytes (the IP/UDP header is added here) at `now`.
        fn offer(&mut self, now: Instant, datagram_len: usize) -> Fate {
            self.offer_wire(now, (datagram_len + IP_UDP_OVERHEAD) as u64)
        }
    }

    fn run_saturated(dir: &mut LinkDir, secs: u64, size: usize) -> (u64, Vec<u64>) {
        // Offer a datagram whenever the queue has room, 1 ms steps; count delivered wire bytes.
        let mut delivered = 0;
        let mut arrivals = Vec::new();
        for ms in 0..secs * 1000 {
            let now = Instant(ms * 1000);
            while dir.queued_bytes(now) + (size + IP_UDP_OVERHEAD) as u64 <= dir.limit_bytes {
                if let Fate::Arrive(t) = dir.offer(now, size) {
                    delivered += (size + IP_UDP_OVERHEAD) as u64;
                    arrivals.push(t.0);
                }
            }
        }
        (delivered, arrivals)
    }

    #[test]
    fn fixed_rate_delivers_its_rate_and_exact_delay() {
        let mut d = LinkDir::new(DirSpec::fixed(10_000_000, 40_000), Rng::new(1));
        // An idle link: arrival = serialisation + delay, exactly.
        assert_eq!(
            d.offer(Instant(0), 1222),
            Fate::Arrive(Instant(1000 + 40_000))
        );
        let mut d = LinkDir::new(DirSpec::fixed(10_000_000, 40_000), Rng::new(1));
        let (bytes, _) = run_saturated(&mut d, 10, 1372);
        let rate = bytes as f64 * 8.0 / 10.0;
        assert!((rate / 10e6 - 1.0).abs() < 0.015, "rate {rate}");
    }

    #[test]
    fn random_and_bursty_loss_rates_match() {
        let mut cfg = DirSpec::fixed(1_000_000_000, 1000);
        cfg.loss.random = 0.02;
        let mut d = LinkDir::new(cfg.clone(), Rng::new(3));
        let n = 100_000;
        for i in 0..n {
            d.offer(Instant(i * 100), 100);
        }
        let r = d.stats.drop_loss as f64 / n as f64;
        assert!((r - 0.02).abs() < 0.002, "random loss {r}");

        cfg.loss.random = 0.0;
        let g = Gilbert {
            enter: 0.01,
            leave: 0.2,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        cfg.loss.burst = Some(g);
        let mut d = LinkDir::new(cfg, Rng::new(4));
        let mut lost = Vec::new();
        for i in 0..n {
            lost.push(matches!(d.offer(Instant(i * 100), 100), Fate::Dropped(_)));
        }
        let r = lost.iter().filter(|&&l| l).count() as f64 / n as f64;
        assert!(
            (r - g.mean_loss()).abs() < 0.01,
            "bursty loss {r} vs {}",
            g.mean_loss()
        );
        // Bursty: losses cluster (mean burst length 1/leave = 5).
        let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count();
        let mean_burst = lost.iter().filter(|&&l| l).count() as f64 / bursts as f64;
        assert!(mean_burst > 3.5, "mean burst {mean_burst}");
    }

    #[test]
    fn corruption_rate_matches() {
        let mut cfg = DirSpec::fixed(1_000_000_000, 1000);
        cfg.corrupt = 0.01;
        let mut d = LinkDir::new(cfg, Rng::new(9));
        let n = 100_000;
        let mangled = (0..n)
            .filter(|&i| matches!(d.offer(Instant(i * 100), 100), Fate::Mangled(..)))
            .count();
        assert_eq!(mangled as u64, d.stats.corrupted);
        assert!(
            (mangled as f64 / n as f64 - 0.01).abs() < 0.001,
            "{mangled}"
        );
    }

    #[test]
    fn jitter_without_reordering_and_with() {
        let mut cfg = DirSpec::fixed(1_000_000_000, 20_000);
        cfg.jitter_us = 5_000;
        let mut d = LinkDir::new(cfg.clone(), Rng::new(5));
        let arr: Vec<u64> = (0..1000)
            .filter_map(|i| match d.offer(Instant(i * 200), 100) {
                Fate::Arrive(t) => Some(t.0),
                _ => None,
            })
            .collect();
        assert!(arr.windows(2).all(|w| w[0] <= w[1]), "no reordering");
        assert!(arr
            .iter()
            .zip(0..)
            .all(|(&a, i)| a >= i * 200 + 15_000 && a <= i * 200 + 25_001));
        cfg.reorder = true;
        let mut d = LinkDir::new(cfg, Rng::new(5));
        let arr: Vec<u64> = (0..1000)
            .filter_map(|i| match d.offer(Instant(i * 200), 100) {
                Fate::Arrive(t) => Some(t.0),
                _ => None,
            })
            .collect();
        assert!(arr.windows(2).any(|w| w[0] > w[1]), "reordering allowed");
    }

    #[test]
    fn drop_tail_queue_bounds_delay() {
        let mut cfg = DirSpec::fixed(8_000_000, 0);
        cfg.queue = QueueLimit::Time(50_000); // 50 ms at 1 MB/s = 50 kB
        let mut d = LinkDir::new(cfg, Rng::new(1));
        let mut accepted = 0;
        for _ in 0..100 {
            if let Fate::Arrive(_) = d.offer(Instant(0), 972) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 50);
        assert_eq!(d.stats.drop_queue, 50);
        assert!(d.stats.max_queue_delay_us <= 50_000);
    }

    #[test]
    fn trace_replays_its_capacity() {
        // Opportunities at 1, 2 and 2 ms, repeating every 2 ms: 1.5 per ms = 18 Mbit/s.
        let t = Arc::new(Trace::parse("t", "1\n2\n2\n").unwrap());
        assert_eq!(t.period_ms, 2);
        let cfg = DirSpec {
            rate: Rate::Trace {
                trace: t.clone(),
                offset_us: 0,
            },
            ..DirSpec::fixed(0, 10_000)
        };
        assert!((cfg.mean_bps() - 18e6).abs() < 1.0);
        assert!((cfg.capacity_bits(0, 1_000_000) - 18e6).abs() < 20_000.0);
        let mut d = LinkDir::new(cfg, Rng::new(1));
        let (bytes, arrivals) = run_saturated(&mut d, 10, 1472);
        let rate = bytes as f64 * 8.0 / 10.0;
        assert!((rate / 18e6 - 1.0).abs() < 0.01, "rate {rate}");
        // Arrivals only on opportunity instants (+ 10 ms delay).
        assert!(arrivals.iter().all(|a| a % 1000 == 0));
    }

    #[test]
    fn recorded_lte_trace_mean_rate() {
        let Some(path) =
            crate::trace::recorded_for_test("TMobile-LTE-short.up", "recorded_lte_trace_mean_rate")
        else {
            return;
        };
        let t = Trace::parse("tm", &std::fs::read_to_string(path).unwrap()).unwrap();
        assert!((t.mean_bps() / 1e6 - 13.3).abs() < 0.1, "{}", t.mean_bps());
        assert_eq!(t.period_ms, 140_000);
    }

    #[test]
    fn generated_trace_gives_its_preset_mean() {
        let l = crate::trace::load(
            "gen:lte-driving/down?seed=4",
            crate::trace::Dir::Up,
            false,
            &Default::default(),
        )
        .unwrap();
        let t = Trace::from_ms(&l.name, l.ms);
        assert_eq!(t.period_ms, 120_000);
        assert!(
            (t.mean_bps() / 4.6e6 - 1.0).abs() < 0.01,
            "{}",
            t.mean_bps()
        );
    }

    #[test]
    fn blackhole_drops_and_stall_holds() {
        let mut cfg = DirSpec::fixed(100_000_000, 10_000);
        cfg.outages = vec![Outage::new(OutageKind::Blackhole, 100_000, 200_000)];
        let mut d = LinkDir::new(cfg.clone(), Rng::new(1));
        assert!(matches!(d.offer(Instant(50_000), 100), Fate::Arrive(_)));
        // In flight when the hole opens: lost.
        assert_eq!(d.offer(Instant(95_000), 100), Fate::Dropped(Drop::Outage));
        assert_eq!(d.offer(Instant(150_000), 100), Fate::Dropped(Drop::Outage));
        assert!(matches!(d.offer(Instant(200_000), 100), Fate::Arrive(_)));

        cfg.outages[0].kind = OutageKind::Stall;
        let mut d = LinkDir::new(cfg, Rng::new(1));
        // Travelling when the stall starts: held until its end.
        assert_eq!(
            d.offer(Instant(95_000), 100),
            Fate::Arrive(Instant(200_000))
        );
        // Sent during the stall: served after it, then the delay.
        assert_eq!(
            d.offer(Instant(150_000), 100),
            Fate::Arrive(Instant(200_000 + 11 + 10_000))
        );
    }
}
