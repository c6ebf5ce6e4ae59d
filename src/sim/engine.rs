//! The event loop: two tunnel endpoints, the links between them and the traffic sources, on a
//! virtual clock that jumps from one event to the next.
//!
//! Each step: datagrams due arrive (`handle_datagram`, then the exit is drained), due timers fire
//! (`handle_timeout`), due paced sources send, bulk sources refill while `can_send` allows, and
//! both endpoints' `poll_transmit` is drained onto the links, whose model decides at once when
//! (or whether) each datagram arrives.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use super::link::{DirStats, Fate, LinkDir, IP_UDP_OVERHEAD};
use super::metrics::{Metrics, Report};
use super::rng::Rng;
use super::scenario::{Dir, Scenario, TunnelKind};
use super::traffic::{build_packet, Source};
use super::tunnel::{Pair, Pipe, SenderView, Tunnel};
use crate::proto::{Instant, LinkId};

/// The largest datagram a link carries: a 1500-byte IP MTU less the IPv4 and UDP headers.
pub const MAX_DATAGRAM: usize = 1500 - IP_UDP_OVERHEAD;

/// Why a run could not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum SimError {
    /// The tunnel kind cannot be built (e.g. the real session is not available).
    Tunnel(String),
    /// An endpoint kept asking to be woken at the same instant without making progress.
    Livelock {
        at_us: u64,
        /// What `poll_timeout` of the edge and of the core said at the end (µs).
        edge_timeout_us: Option<u64>,
        core_timeout_us: Option<u64>,
    },
    /// An endpoint sent on a link the scenario does not have.
    NoSuchLink { link: LinkId },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Tunnel(m) => write!(f, "cannot build the tunnel: {m}"),
            SimError::Livelock {
                at_us,
                edge_timeout_us,
                core_timeout_us,
            } => write!(
                f,
                "livelock: an endpoint asked to be woken again and again at t = {at_us} µs without \
                 progress (poll_timeout: edge {edge_timeout_us:?} µs, core {core_timeout_us:?} µs)"
            ),
            SimError::NoSuchLink { link } => {
                write!(f, "an endpoint sent on link {link}, which does not exist")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// Run a scenario with the tunnel it names.
pub fn run(sc: &Scenario) -> Result<Report, SimError> {
    let (edge, core) = make_pair(sc)?;
    run_with(sc, edge, core)
}

/// Build the (edge, core) endpoints for a scenario.
pub fn make_pair(sc: &Scenario) -> Result<Pair, SimError> {
    match sc.tunnel {
        TunnelKind::Pipe => {
            let (e, c) = Pipe::pair(sc);
            Ok((Box::new(e), Box::new(c)))
        }
        TunnelKind::Session => super::session::pair(sc).map_err(SimError::Tunnel),
    }
}

struct Flight {
    /// 0 = edge, 1 = core.
    to: usize,
    link: LinkId,
    data: Vec<u8>,
}

/// Run a scenario with the given endpoints.
pub fn run_with(
    sc: &Scenario,
    edge: Box<dyn Tunnel>,
    core: Box<dyn Tunnel>,
) -> Result<Report, SimError> {
    let mut e = Engine {
        sc,
        now: 0,
        ends: [edge, core],
        links: sc
            .links
            .iter()
            .map(|l| {
                let id = u64::from(l.id);
                [
                    LinkDir::new(l.up.clone(), Rng::derive(sc.seed, 2 * id)),
                    LinkDir::new(l.down.clone(), Rng::derive(sc.seed, 2 * id + 1)),
                ]
            })
            .collect(),
        heap: BinaryHeap::new(),
        flights: Vec::new(),
        free: Vec::new(),
        order: 0,
        sources: sc
            .traffic
            .iter()
            .enumerate()
            .map(|(i, t)| Source::new(i as u32, t.clone()))
            .collect(),
        metrics: Metrics::new(sc),
        pkt: Vec::with_capacity(2048),
        out: vec![0; MAX_DATAGRAM],
        exit: Vec::with_capacity(2048),
        bulk_turn: 0,
        sample_at: 0,
        served: vec![[0; 2]; sc.links.len()],
        views: [Vec::new(), Vec::new()],
    };
    e.run()?;
    let stats: Vec<[(DirStats, Vec<u32>); 2]> = e
        .links
        .iter_mut()
        .map(|[u, d]| {
            [
                (u.stats.clone(), std::mem::take(&mut u.queue_delays_us)),
                (d.stats.clone(), std::mem::take(&mut d.queue_delays_us)),
            ]
        })
        .collect();
    let errors = e.ends[0].errors() + e.ends[1].errors();
    let endpoints = [e.ends[0].stats(), e.ends[1].stats()];
    let mut report = e.metrics.report(sc, stats, errors, endpoints);
    report.notes = e.ends.iter().flat_map(|t| t.notes()).collect();
    Ok(report)
}

struct Engine<'a> {
    sc: &'a Scenario,
    now: u64,
    ends: [Box<dyn Tunnel>; 2],
    /// Per link: [up (edge to core), down].
    links: Vec<[LinkDir; 2]>,
    /// (arrival µs, insertion order, flight slot).
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    flights: Vec<Option<Flight>>,
    free: Vec<u32>,
    order: u64,
    sources: Vec<Source>,
    metrics: Metrics,
    pkt: Vec<u8>,
    out: Vec<u8>,
    exit: Vec<u8>,
    bulk_turn: usize,
    /// Next sample time; per link and side, bytes served at the last sample; per side, the
    /// senders' link states at the last sample (they hold until the next one).
    sample_at: u64,
    served: Vec<[u64; 2]>,
    views: [Vec<SenderView>; 2],
}

/// How often the links' use and the senders' link states are sampled for the report's
/// breakdown of unused capacity.
const SAMPLE_US: u64 = 10_000;

/// Steps at one instant before the run is declared a livelock.
const MAX_STEPS_AT_ONE_INSTANT: u32 = 100_000;

impl Engine<'_> {
    fn run(&mut self) -> Result<(), SimError> {
        let end = self.sc.duration_us + self.sc.drain_us;
        let mut same_instant = 0u32;
        self.step()?; // t = 0: bulk sources starting now, handshakes
        loop {
            let mut next = u64::MAX;
            if let Some(Reverse((t, _, _))) = self.heap.peek() {
                next = next.min(*t);
            }
            for end in &self.ends {
                if let Some(t) = end.poll_timeout() {
                    next = next.min(t.0);
                }
            }
            for s in &self.sources {
                let t = if s.is_bulk() {
                    s.spec.start_us
                } else {
                    s.next_at
                };
                // A bulk source only needs a wake-up to start; after that every step refills it.
                if t < s.spec.stop_us && (!s.is_bulk() || t > self.now) {
                    next = next.min(t);
                }
            }
            if next == u64::MAX || next > end {
                break;
            }
            self.sample_links(next);
            if next <= self.now {
                same_instant += 1;
                if same_instant > MAX_STEPS_AT_ONE_INSTANT {
                    return Err(SimError::Livelock {
                        at_us: self.now,
                        edge_timeout_us: self.ends[0].poll_timeout().map(|t| t.0),
                        core_timeout_us: self.ends[1].poll_timeout().map(|t| t.0),
                    });
                }
            } else {
                same_instant = 0;
                self.now = next;
            }
            self.step()?;
        }
        Ok(())
    }

    /// Samples every SAMPLE_US up to `upto` (state holds between events, so a sample at t
    /// sees what the last step before t left): each link's capacity left unused since the last
    /// sample, put down to what its sender was doing at the last sample.
    fn sample_links(&mut self, upto: u64) {
        while self.sample_at <= upto {
            let t = self.sample_at;
            for side in 0..2 {
                let dir = if side == 0 { Dir::Up } else { Dir::Down };
                for (i, cfg) in self.sc.links.iter().enumerate() {
                    let served = self.links[i][side].served_bytes(Instant(t));
                    if t > 0 {
                        let d = if side == 0 { &cfg.up } else { &cfg.down };
                        let cap = d.capacity_bits(t - SAMPLE_US, t) / 8.0;
                        let used = served - self.served[i][side];
                        let view = self.views[side].iter().find(|v| usize::from(v.link) == i);
                        self.metrics
                            .link_sample(i, dir, t - SAMPLE_US, t, cap - used as f64, view);
                    }
                    self.served[i][side] = served;
                }
                self.views[side] = self.ends[side].link_views();
            }
            self.sample_at += SAMPLE_US;
        }
    }

    fn step(&mut self) -> Result<(), SimError> {
        let now = Instant(self.now);
        // Arrivals.
        while let Some(&Reverse((t, _, slot))) = self.heap.peek() {
            if t > self.now {
                break;
            }
            self.heap.pop();
            let mut f = self.flights[slot as usize]
                .take()
                .expect("slot in the heap is full");
            self.free.push(slot);
            let dir = if f.to == 1 { Dir::Up } else { Dir::Down };
            self.metrics.carried(
                usize::from(f.link),
                dir,
                self.now,
                f.data.len() + IP_UDP_OVERHEAD,
            );
            self.ends[f.to].handle_datagram(now, f.link, &mut f.data);
            let cfg = &self.sc.links[usize::from(f.link)];
            let delay = if f.to == 1 {
                cfg.up.delay_us
            } else {
                cfg.down.delay_us
            };
            self.drain_exit(f.to, Some(delay));
        }
        // Timers.
        for side in 0..2 {
            if self.ends[side].poll_timeout().is_some_and(|t| t <= now) {
                self.ends[side].handle_timeout(now);
                self.drain_exit(side, None);
            }
        }
        // Paced sources.
        for i in 0..self.sources.len() {
            let s = &self.sources[i];
            if s.is_bulk() || !s.active(self.now) || s.next_at > self.now {
                continue;
            }
            self.send_one(i);
        }
        // Bulk refill and transmission until both sides are quiet.
        for _ in 0..10_000 {
            let refilled = self.refill_bulk();
            let sent = self.transmit()?;
            if !refilled && !sent {
                break;
            }
        }
        Ok(())
    }

    fn send_one(&mut self, i: usize) -> bool {
        let s = &mut self.sources[i];
        let side = if s.spec.dir == Dir::Up { 0 } else { 1 };
        let (meta, tag) = s.next_packet(self.now);
        build_packet(&mut self.pkt, s.spec.size, tag);
        let ok = self.ends[side].send(Instant(self.now), &self.pkt, &meta);
        self.metrics.sent(s.id, ok);
        ok
    }

    /// Let every active bulk source send while the tunnel accepts (in turn, one packet each).
    fn refill_bulk(&mut self) -> bool {
        let n = self.sources.len();
        let mut any = false;
        loop {
            let mut progressed = false;
            for k in 0..n {
                let i = (self.bulk_turn + k) % n;
                let s = &self.sources[i];
                if !s.is_bulk() || !s.active(self.now) {
                    continue;
                }
                let side = if s.spec.dir == Dir::Up { 0 } else { 1 };
                let meta = s.peek_meta();
                if !self.ends[side].can_send(&meta) {
                    continue;
                }
                if self.send_one(i) {
                    progressed = true;
                    any = true;
                }
            }
            self.bulk_turn = (self.bulk_turn + 1) % n.max(1);
            if !progressed {
                return any;
            }
        }
    }

    /// Drain both endpoints' transmit queues onto the links.
    fn transmit(&mut self) -> Result<bool, SimError> {
        let now = Instant(self.now);
        let mut any = false;
        for side in 0..2 {
            while let Some((link, len)) = self.ends[side].poll_transmit(now, &mut self.out) {
                any = true;
                let l = usize::from(link);
                if l >= self.links.len() {
                    return Err(SimError::NoSuchLink { link });
                }
                let fate = self.links[l][side].offer(now, len);
                let (at, flip) = match fate {
                    Fate::Arrive(at) => (at, None),
                    Fate::Mangled(at, r) => (at, Some(r)),
                    Fate::Dropped(_) => continue,
                };
                let mut data = self.out[..len].to_vec();
                if let Some(r) = flip {
                    let byte = (r as usize / 8) % len.max(1);
                    data[byte] ^= 1 << (r % 8);
                }
                let flight = Flight {
                    to: 1 - side,
                    link,
                    data,
                };
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.flights[s as usize] = Some(flight);
                        s
                    }
                    None => {
                        self.flights.push(Some(flight));
                        (self.flights.len() - 1) as u32
                    }
                };
                self.order += 1;
                self.heap.push(Reverse((at.0, self.order, slot)));
            }
        }
        Ok(any)
    }

    fn drain_exit(&mut self, side: usize, release_delay_us: Option<u64>) {
        let dir = if side == 1 { Dir::Up } else { Dir::Down };
        while self.ends[side].poll_deliver(Instant(self.now), &mut self.exit) {
            self.metrics
                .delivered(self.sc, dir, self.now, &self.exit, release_delay_us);
        }
    }
}
