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
use super::metrics::{TimelineEnd, TimelineRow};
use super::rng::Rng;
use super::scenario::{Dir, Scenario, TunnelKind};
use super::tcp::TcpFlows;
use super::traffic::{build_packet, Source};
use super::tunnel::{Direct, EndCounters, Pair, Pipe, SenderView, Tunnel};
use crate::proto::{Instant, LinkId};

/// The largest datagram a link carries: a 1500-byte IP MTU less the IPv4 and UDP headers.
pub(crate) const MAX_DATAGRAM: usize = 1500 - IP_UDP_OVERHEAD;

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
pub(crate) fn make_pair(sc: &Scenario) -> Result<Pair, SimError> {
    match sc.tunnel {
        TunnelKind::Pipe => {
            let (e, c) = Pipe::pair(sc);
            Ok((Box::new(e), Box::new(c)))
        }
        TunnelKind::Session => super::session::pair(sc).map_err(SimError::Tunnel),
        TunnelKind::Direct(link) => {
            let (e, c) = Direct::pair(link);
            Ok((Box::new(e), Box::new(c)))
        }
    }
}

struct Flight {
    /// 0 = edge, 1 = core.
    to: usize,
    link: LinkId,
    data: Vec<u8>,
    /// When the sender put it on the link (µs; for the packet trace).
    tx_us: u64,
}

/// A per-packet trace of the paced (interactive, realtime) sources, for finding where their
/// delay goes: written when `BRAID_SIM_PKTTRACE` names a file (simulator instrumentation only;
/// it reads what the run does and changes nothing in it). One line per delivered packet:
/// `dir source seq sent_us tx_us link arrive_us deliver_us copies base_delay_us`, where tx is
/// when the datagram that first brought it was put on the link and arrive when it arrived
/// (the receiver found the packet's tag in the opened datagram).
struct PktTrace {
    out: std::io::BufWriter<std::fs::File>,
    /// (source, seq) -> (tx µs, arrival µs, link, copies seen).
    first: std::collections::HashMap<(u32, u64), (u64, u64, LinkId, u32)>,
    /// Small datagrams (< 300 bytes) the links dropped, per link and side.
    small_drops: Vec<[u64; 2]>,
    /// Lengths of the small datagrams dropped, and of those that brought a paced packet.
    drop_lens: std::collections::BTreeMap<(usize, usize), u64>,
    carrier_lens: std::collections::BTreeMap<(usize, usize), u64>,
}

impl PktTrace {
    fn from_env(links: usize) -> Option<PktTrace> {
        let path = std::env::var_os("BRAID_SIM_PKTTRACE")?;
        let f = std::fs::File::create(path).ok()?;
        Some(PktTrace {
            out: std::io::BufWriter::new(f),
            first: std::collections::HashMap::new(),
            small_drops: vec![[0; 2]; links],
            drop_lens: Default::default(),
            carrier_lens: Default::default(),
        })
    }

    /// Note every tag of a paced source in an opened datagram.
    fn arrived(
        &mut self,
        sources: &[Source],
        to: usize,
        data: &[u8],
        link: LinkId,
        tx_us: u64,
        now: u64,
    ) {
        const MAGIC: [u8; 4] = 0x4252_534d_u32.to_be_bytes();
        let mut i = 0;
        while i + 16 <= data.len() {
            if data[i..i + 4] == MAGIC {
                let source = u32::from_be_bytes(data[i + 4..i + 8].try_into().unwrap());
                let seq = u64::from_be_bytes(data[i + 8..i + 16].try_into().unwrap());
                if sources.get(source as usize).is_some_and(|s| s.is_paced()) {
                    *self.carrier_lens.entry((1 - to, data.len())).or_insert(0) += 1;
                    self.first
                        .entry((source, seq))
                        .and_modify(|e| e.3 += 1)
                        .or_insert((tx_us, now, link, 1));
                }
                i += 16;
            } else {
                i += 1;
            }
        }
    }

    fn delivered(&mut self, sources: &[Source], side: usize, packet: &[u8], now: u64, base: u64) {
        use std::io::Write;
        let Some(tag) = super::traffic::read_tag(packet) else {
            return;
        };
        if !sources
            .get(tag.source as usize)
            .is_some_and(|s| s.is_paced())
        {
            return;
        }
        let (tx, arr, link, copies) = self
            .first
            .get(&(tag.source, tag.seq))
            .copied()
            .unwrap_or((0, 0, 255, 0));
        let _ = writeln!(
            self.out,
            "{} {} {} {} {tx} {link} {arr} {now} {copies} {base}",
            if side == 1 { "up" } else { "down" },
            tag.source,
            tag.seq,
            tag.sent_us,
        );
    }
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
        tcp: TcpFlows::new(sc, sc.tunnel.inner_mtu()),
        tcp_started: false,
        pkt: Vec::with_capacity(2048),
        out: vec![0; MAX_DATAGRAM.max(sc.tunnel.inner_mtu())],
        exit: Vec::with_capacity(2048),
        bulk_turn: 0,
        sample_at: 0,
        served: vec![[0; 2]; sc.links.len()],
        views: [Vec::new(), Vec::new()],
        carried: vec![[0; 2]; sc.links.len()],
        second: Second {
            carried: vec![[0; 2]; sc.links.len()],
            counters: [EndCounters::default(); 2],
        },
        timeline: Vec::new(),
        timeline_ends: Vec::new(),
        trace: PktTrace::from_env(sc.links.len()),
    };
    e.run()?;
    if let Some(t) = &mut e.trace {
        use std::io::Write;
        for (l, d) in t.small_drops.iter().enumerate() {
            let _ = writeln!(
                t.out,
                "# small datagrams dropped link {l}: up {} down {}",
                d[0], d[1]
            );
        }
        let _ = writeln!(t.out, "# drop lens (side, len, n) {:?}", t.drop_lens);
        let _ = writeln!(t.out, "# carrier lens (side, len, n) {:?}", t.carrier_lens);
    }
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
    let tcp = e.tcp.report(sc.warmup_us, sc.duration_us);
    let mut report = e.metrics.report(sc, stats, errors, endpoints);
    report.set_tcp(sc, tcp);
    report.timeline = std::mem::take(&mut e.timeline);
    report.timeline_ends = std::mem::take(&mut e.timeline_ends);
    // TCP goodput per second and direction, from the flows' own record.
    for end in &mut report.timeline_ends {
        end.tcp_goodput_mbit = report
            .tcp
            .iter()
            .filter(|t| t.dir == end.dir)
            .map(|t| {
                t.stats
                    .per_second
                    .get(end.t_s as usize - 1)
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum();
    }
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
    tcp: TcpFlows,
    tcp_started: bool,
    pkt: Vec<u8>,
    out: Vec<u8>,
    exit: Vec<u8>,
    bulk_turn: usize,
    /// Next sample time; per link and side, bytes served at the last sample; per side, the
    /// senders' link states at the last sample (they hold until the next one).
    sample_at: u64,
    served: Vec<[u64; 2]>,
    views: [Vec<SenderView>; 2],
    /// Per link, [up, down]: wire bytes arrived so far (for the timeline).
    carried: Vec<[u64; 2]>,
    /// The same, and the endpoints' counters, at the last whole second.
    second: Second,
    timeline: Vec<TimelineRow>,
    timeline_ends: Vec<TimelineEnd>,
    trace: Option<PktTrace>,
}

struct Second {
    carried: Vec<[u64; 2]>,
    counters: [EndCounters; 2],
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
            if self.tcp_started {
                if let Some(t) = self.tcp.poll_timeout(self.now) {
                    next = next.min(t.max(self.now));
                }
            }
            for s in self.sources.iter().filter(|s| s.is_bulk() || s.is_paced()) {
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
            if self.sc.timeline && t > 0 && t % 1_000_000 == 0 {
                self.record_second(t);
            }
            self.sample_at += SAMPLE_US;
        }
    }

    /// One row per link direction and one per endpoint for the second ending at `t`.
    fn record_second(&mut self, t: u64) {
        let t_s = (t / 1_000_000) as u32;
        for side in 0..2 {
            let dir = if side == 0 { Dir::Up } else { Dir::Down };
            for (i, cfg) in self.sc.links.iter().enumerate() {
                let d = if side == 0 { &cfg.up } else { &cfg.down };
                let v = self.views[side].iter().find(|v| usize::from(v.link) == i);
                let carried = self.carried[i][side] - self.second.carried[i][side];
                self.timeline.push(TimelineRow {
                    t_s,
                    dir,
                    link: cfg.name.clone(),
                    capacity_mbit: d.capacity_bits(t - 1_000_000, t) / 1e6,
                    carried_mbit: carried as f64 * 8.0 / 1e6,
                    state: v.map_or("-", |v| {
                        if v.down {
                            "down"
                        } else if v.degraded {
                            "degraded"
                        } else {
                            "up"
                        }
                    }),
                    rate_mbit: v.map_or(0.0, |v| v.rate_bps as f64 / 1e6),
                    pacing_mbit: v.map_or(0.0, |v| v.pacing_bps as f64 / 1e6),
                    cwnd_kb: v.map_or(0.0, |v| v.cwnd as f64 / 1e3),
                    inflight_kb: v.map_or(0.0, |v| v.inflight as f64 / 1e3),
                    queued_kb: v.map_or(0.0, |v| v.queued_bytes as f64 / 1e3),
                    srtt_ms: v.map_or(0.0, |v| v.srtt_us as f64 / 1e3),
                });
                self.second.carried[i][side] = self.carried[i][side];
            }
            let c = self.ends[side].counters();
            // The receiving end's reorder figures describe this direction's traffic.
            let rx = self.ends[1 - side].counters();
            let prev = self.second.counters;
            self.timeline_ends.push(TimelineEnd {
                t_s,
                dir,
                resends: c.resends - prev[side].resends,
                reorder_timeouts: rx.reorder_timeouts - prev[1 - side].reorder_timeouts,
                duplicates: rx.duplicates - prev[1 - side].duplicates,
                queued_kb: c.queued_bytes as f64 / 1e3,
                tcp_goodput_mbit: 0.0,
            });
        }
        self.second.counters = [self.ends[0].counters(), self.ends[1].counters()];
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
            self.carried[usize::from(f.link)][1 - f.to] +=
                (f.data.len() + self.ends[f.to].wire_overhead()) as u64;
            self.metrics.carried(
                usize::from(f.link),
                dir,
                self.now,
                f.data.len() + self.ends[f.to].wire_overhead(),
            );
            self.ends[f.to].handle_datagram(now, f.link, &mut f.data);
            let cfg = &self.sc.links[usize::from(f.link)];
            let delay = if f.to == 1 {
                cfg.up.delay_us
            } else {
                cfg.down.delay_us
            };
            if let Some(t) = &mut self.trace {
                t.arrived(&self.sources, f.to, &f.data, f.link, f.tx_us, self.now);
            }
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
            if !s.is_paced() || !s.active(self.now) || s.next_at > self.now {
                continue;
            }
            self.send_one(i);
        }
        // TCP: timers, and what the senders' windows allow, once the tunnel is up.
        if !self.tcp.is_empty() && !self.tcp_started && self.ends.iter().all(|e| e.ready()) {
            self.tcp_started = true;
            self.tcp.start(self.now);
        }
        if self.tcp_started {
            self.tcp.poll(self.now);
        }
        // Bulk refill and transmission until both sides are quiet.
        for _ in 0..10_000 {
            let pushed = self.push_tcp();
            let refilled = self.refill_bulk();
            let sent = self.transmit()?;
            if !pushed && !refilled && !sent {
                break;
            }
        }
        Ok(())
    }

    /// Hands the TCP flows' packets to the tunnel (a refused one is lost, as a daemon drops it).
    fn push_tcp(&mut self) -> bool {
        let mut any = false;
        while let Some(o) = self.tcp.pop() {
            any = true;
            if !self.ends[o.side].send(Instant(self.now), &o.pkt, &o.meta) {
                self.tcp.refused(&o);
            }
            self.tcp.recycle(o.pkt);
        }
        any
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
            let overhead = self.ends[side].wire_overhead();
            while let Some((link, len)) = self.ends[side].poll_transmit(now, &mut self.out) {
                any = true;
                let l = usize::from(link);
                if l >= self.links.len() {
                    return Err(SimError::NoSuchLink { link });
                }
                let fate = self.links[l][side].offer_wire(now, (len + overhead) as u64);
                let (at, flip) = match fate {
                    Fate::Arrive(at) => (at, None),
                    Fate::Mangled(at, r) => (at, Some(r)),
                    Fate::Dropped(_) => {
                        if let Some(t) = &mut self.trace {
                            if len < 300 {
                                t.small_drops[l][side] += 1;
                                *t.drop_lens.entry((side, len)).or_insert(0) += 1;
                            }
                        }
                        continue;
                    }
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
                    tx_us: self.now,
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
            if self.tcp.delivered(self.now, side, &self.exit) {
                continue;
            }
            if let Some(t) = &mut self.trace {
                t.delivered(
                    &self.sources,
                    side,
                    &self.exit,
                    self.now,
                    release_delay_us.unwrap_or(0),
                );
            }
            self.metrics
                .delivered(self.sc, dir, self.now, &self.exit, release_delay_us);
        }
    }
}
