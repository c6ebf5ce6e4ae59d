//! What a run measured: collected at the exit of the tunnel, summarised into a [`Report`].
//!
//! Definitions (also in `braid sim --help`):
//! - delivered rate: inner-packet bytes leaving the tunnel in [warmup, duration], per second;
//! - share: that rate over the summed capacity of the links in that direction over the same
//!   window (link capacity counts whole outer IP packets: datagram + 28 bytes; outages excluded);
//! - lost: packets accepted by the tunnel that never left it (traffic stops at `duration`, the
//!   run goes on for `drain` so that what is in flight can arrive);
//! - out of order: a packet leaving after a later packet of the same flow;
//! - added delay: one-way delay (send to exit) above the slowest link's one-way delay, floored at 0;
//! - queueing delay: one-way delay above the base delay of the link whose arrival released the
//!   packet (the fastest link's when a timer released it);
//! - longest gap: the longest time without a delivery between the first delivery and `duration`
//!   (overall, per class, and the longest any single flow waited);
//! - Jain fairness: over the users that run bulk traffic in that direction, of their delivered bytes.

use serde::Serialize;

use super::link::DirStats;
use super::scenario::{Dir, Mode, Role, Scenario, TrafficKind};
use super::traffic::{read_tag, Tag};
use super::tunnel::SenderView;

/// Summary of a sample of durations, in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pct {
    pub p50: f64,
    p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Pct {
    /// From µs samples (sorted in place).
    pub(crate) fn of(v: &mut [u32]) -> Pct {
        if v.is_empty() {
            return Pct::default();
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1000.0
        };
        Pct {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    scenario: String,
    description: String,
    seed: u64,
    tunnel: super::scenario::TunnelKind,
    duration_s: f64,
    warmup_s: f64,
    pub(crate) directions: Vec<DirReport>,
    classes: Vec<ClassReport>,
    pub users: Vec<UserReport>,
    pub links: Vec<LinkReport>,
    /// Datagrams an endpoint rejected (should be 0 without an attacker).
    pub tunnel_errors: u64,
    /// Delivered packets that were not ours or were mangled (must be 0).
    pub corrupt: u64,
    /// Free-form endpoint statistics (edge, core).
    pub endpoints: [serde_json::Value; 2],
    /// Anomalies the endpoints' adapters noticed.
    pub(crate) notes: Vec<String>,
    /// The TCP traffic (`kind = "tcp"`), one entry per `[[traffic]]`.
    pub tcp: Vec<TcpReport>,
    /// Per second and link direction (`braid sim --timeline`; empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineRow>,
    /// Per second and direction: what the endpoints did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) timeline_ends: Vec<TimelineEnd>,
}

/// One link direction over one second: what it offered and carried, and the sending
/// endpoint's view of it at the end of the second.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineRow {
    /// The second ending at this time.
    pub t_s: u32,
    pub dir: Dir,
    pub link: String,
    pub(crate) capacity_mbit: f64,
    pub carried_mbit: f64,
    pub(crate) state: &'static str,
    /// The sender's delivery-rate estimate and pacing rate.
    pub rate_mbit: f64,
    pub(crate) pacing_mbit: f64,
    pub(crate) cwnd_kb: f64,
    pub(crate) inflight_kb: f64,
    pub(crate) queued_kb: f64,
    pub(crate) srtt_ms: f64,
}

/// One direction over one second.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TimelineEnd {
    pub(crate) t_s: u32,
    pub(crate) dir: Dir,
    /// Copies the sender resent.
    pub(crate) resends: u64,
    /// Packets the receiver released after the full reorder wait, and duplicates it dropped.
    pub(crate) reorder_timeouts: u64,
    pub(crate) duplicates: u64,
    /// Bytes in the sender's user queues at the end of the second.
    pub(crate) queued_kb: f64,
    /// TCP goodput in this direction (all TCP traffic).
    pub(crate) tcp_goodput_mbit: f64,
}

/// One `[[traffic]]` of TCP flows: goodput (in-order bytes delivered to the receiving
/// application) and what the senders went through.
#[derive(Debug, Clone, Serialize)]
pub struct TcpReport {
    name: String,
    pub dir: Dir,
    pub(crate) cc: super::scenario::Cc,
    /// Summed capacity of the links in this direction (as for [`DirReport`]).
    capacity_mbit: f64,
    /// goodput / capacity.
    pub share: f64,
    #[serde(flatten)]
    pub stats: super::tcp::TcpSpecStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirReport {
    pub(crate) dir: Dir,
    pub capacity_mbit: f64,
    pub delivered_mbit: f64,
    /// delivered / capacity.
    pub share: f64,
    pub sent: u64,
    /// Paced packets the tunnel refused (queue full); bulk sources never count here.
    refused: u64,
    pub delivered: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub duplicates: u64,
    out_of_order: u64,
    pub in_order_ratio: f64,
    pub latency_ms: Pct,
    pub added_delay_ms: Pct,
    pub longest_gap_ms: f64,
    /// The longest time one flow went without a delivery (a stalled connection).
    longest_flow_gap_ms: f64,
    /// None when fewer than two users run bulk traffic in this direction.
    pub jain: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    class: String,
    dir: Dir,
    #[serde(serialize_with = "mode_word")]
    mode: Mode,
    priority: u8,
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    delivered_mbit: f64,
    pub latency_ms: Pct,
    pub queueing_ms: Pct,
    pub longest_gap_ms: f64,
    /// Send interval of the class's paced sources (ms), if any.
    pub interval_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserReport {
    pub user: u32,
    pub dir: Dir,
    bulk: bool,
    delivered_mbit: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub link: String,
    pub dir: Dir,
    #[serde(serialize_with = "role_word")]
    role: Role,
    pub capacity_mbit: f64,
    /// Wire bytes (datagram + 28) that crossed the link in [warmup, duration], per second.
    pub carried_mbit: f64,
    /// Time datagrams spent in the link's queue (offer to end of serialisation).
    queue_delay_ms: Pct,
    pub stats: DirStats,
    /// Capacity left unused and what the sender was doing with the link meanwhile (absent if
    /// the tunnel shows no per-link sender state).
    pub unused: Option<Unused>,
}

/// Capacity a link direction left unused over the window (its capacity less the wire bytes
/// it served), split by the sending endpoint's state for that link at the time (sampled every
/// 10 ms), and the time the sender spent in some states.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unused {
    pub total_mbit: f64,
    /// While the link was Down.
    pub down_mbit: f64,
    /// While in flight was at the link's cap (waiting for ACKs).
    pub at_cap_mbit: f64,
    /// While data waited in the link's own queue (the pacer held it back).
    pub pacer_mbit: f64,
    /// While nothing was queued for the link (the scheduler gave it nothing, or no data).
    pub idle_mbit: f64,
    pub down_s: f64,
    degraded_s: f64,
    at_cap_s: f64,
}

/// Accumulates [`Unused`] (bytes by cause: down, at cap, pacer, idle; microseconds).
#[derive(Debug, Clone, Default)]
struct UnusedAcc {
    seen: bool,
    bytes: [f64; 4],
    down_us: u64,
    degraded_us: u64,
    at_cap_us: u64,
}

/// Per-source counters.
#[derive(Debug, Clone, Default)]
struct SourceAcc {
    sent: u64,
    refused: u64,
    delivered: u64,
    bytes_window: u64,
    duplicates: u64,
    out_of_order: u64,
    seen: Vec<u64>,
    max_seq_per_flow: Vec<Option<u64>>,
    last_per_flow: Vec<Option<u64>>,
    flow_gap: u64,
}

/// Per (class, direction) accumulators.
#[derive(Debug, Clone, Default)]
struct ClassAcc {
    latency: Vec<u32>,
    queueing: Vec<u32>,
    last: Option<u64>,
    gap: u64,
}

/// Per-direction accumulators.
#[derive(Debug, Clone, Default)]
struct DirAcc {
    latency: Vec<u32>,
    added: Vec<u32>,
    last: Option<u64>,
    gap: u64,
}

/// Collects measurements during a run.
#[derive(Debug)]
pub(crate) struct Metrics {
    sources: Vec<SourceAcc>,
    classes: Vec<[ClassAcc; 2]>,
    dirs: [DirAcc; 2],
    /// Per link, per direction: wire bytes arrived in the window.
    carried: Vec<[u64; 2]>,
    unused: Vec<[UnusedAcc; 2]>,
    corrupt: u64,
    window: (u64, u64),
    slowest_us: [u64; 2],
    fastest_us: [u64; 2],
}

/// A delivery at `now_us`: `gap` becomes the longest time between two deliveries, `last` the
/// time of this one.
fn note_gap(last: &mut Option<u64>, gap: &mut u64, now_us: u64) {
    if let Some(l) = *last {
        *gap = (*gap).max(now_us.saturating_sub(l));
    }
    *last = Some(now_us);
}

fn di(d: Dir) -> usize {
    match d {
        Dir::Up => 0,
        Dir::Down => 1,
    }
}

impl Metrics {
    pub(crate) fn new(sc: &Scenario) -> Metrics {
        let delays = |f: fn(&super::scenario::LinkSpec) -> u64| sc.links.iter().map(f);
        Metrics {
            sources: sc
                .traffic
                .iter()
                .map(|t| SourceAcc {
                    max_seq_per_flow: vec![None; t.flows as usize],
                    last_per_flow: vec![None; t.flows as usize],
                    ..Default::default()
                })
                .collect(),
            classes: vec![Default::default(); sc.classes.len()],
            dirs: Default::default(),
            carried: vec![[0; 2]; sc.links.len()],
            unused: vec![Default::default(); sc.links.len()],
            corrupt: 0,
            window: (sc.warmup_us, sc.duration_us),
            slowest_us: [
                delays(|l| l.up.delay_us).max().unwrap_or(0),
                delays(|l| l.down.delay_us).max().unwrap_or(0),
            ],
            fastest_us: [
                delays(|l| l.up.delay_us).min().unwrap_or(0),
                delays(|l| l.down.delay_us).min().unwrap_or(0),
            ],
        }
    }

    fn in_window(&self, t: u64) -> bool {
        self.window.0 <= t && t < self.window.1
    }

    pub(crate) fn sent(&mut self, source: u32, accepted: bool) {
        let s = &mut self.sources[source as usize];
        if accepted {
            s.sent += 1;
        } else {
            s.refused += 1;
        }
    }

    /// A datagram of `wire` bytes arrived over `link` in direction `dir` at `now`.
    pub(crate) fn carried(&mut self, link: usize, dir: Dir, now: u64, wire: usize) {
        if self.in_window(now) {
            self.carried[link][di(dir)] += wire as u64;
        }
    }

    /// Over [t0, t1), `link` left `unused` bytes of its capacity in `dir` unused while its
    /// sender was in state `view` (None: the tunnel shows no sender state).
    pub(crate) fn link_sample(
        &mut self,
        link: usize,
        dir: Dir,
        t0: u64,
        t1: u64,
        unused: f64,
        view: Option<&SenderView>,
    ) {
        let Some(v) = view else { return };
        if t0 < self.window.0 || t1 > self.window.1 {
            return;
        }
        let a = &mut self.unused[link][di(dir)];
        let dt = t1 - t0;
        a.seen = true;
        let cause = if v.down {
            0
        } else if v.at_cap {
            1
        } else if v.queued {
            2
        } else {
            3
        };
        a.bytes[cause] += unused;
        if v.down {
            a.down_us += dt;
        }
        if v.degraded {
            a.degraded_us += dt;
        }
        if v.at_cap {
            a.at_cap_us += dt;
        }
    }

    /// An inner packet left the tunnel at `now_us` going in `dir`; `release_delay_us` is the base
    /// one-way delay of the link whose arrival released it, if one did.
    pub(crate) fn delivered(
        &mut self,
        sc: &Scenario,
        dir: Dir,
        now_us: u64,
        packet: &[u8],
        release_delay_us: Option<u64>,
    ) {
        let Some(Tag {
            source,
            seq,
            sent_us,
            flow,
        }) = read_tag(packet)
        else {
            self.corrupt += 1;
            return;
        };
        let Some(spec) = sc.traffic.get(source as usize) else {
            self.corrupt += 1;
            return;
        };
        if spec.dir != dir || flow >= spec.flows || seq >= (1 << 40) || sent_us > now_us {
            self.corrupt += 1;
            return;
        }
        let in_window = self.in_window(now_us);
        let d = di(dir);
        let s = &mut self.sources[source as usize];
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if s.seen.len() <= word {
            s.seen.resize(word + 1, 0);
        }
        if s.seen[word] & (1 << bit) != 0 {
            s.duplicates += 1;
            return;
        }
        s.seen[word] |= 1 << bit;
        s.delivered += 1;
        if in_window {
            s.bytes_window += packet.len() as u64;
        }
        let max = &mut s.max_seq_per_flow[flow as usize];
        match *max {
            Some(m) if seq < m => s.out_of_order += 1,
            _ => *max = Some(seq),
        }

        let before_end = now_us < self.window.1;
        if before_end {
            note_gap(&mut s.last_per_flow[flow as usize], &mut s.flow_gap, now_us);
        }

        let latency = now_us - sent_us;
        let lat32 = latency.min(u64::from(u32::MAX)) as u32;
        let added = latency
            .saturating_sub(self.slowest_us[d])
            .min(u64::from(u32::MAX)) as u32;
        let queueing = latency
            .saturating_sub(release_delay_us.unwrap_or(self.fastest_us[d]))
            .min(u64::from(u32::MAX)) as u32;
        let da = &mut self.dirs[d];
        da.latency.push(lat32);
        da.added.push(added);
        if before_end {
            note_gap(&mut da.last, &mut da.gap, now_us);
        }
        let ca = &mut self.classes[usize::from(spec.class)][d];
        ca.latency.push(lat32);
        ca.queueing.push(queueing);
        if before_end {
            note_gap(&mut ca.last, &mut ca.gap, now_us);
        }
    }

    /// Summarise. `links` are the final per-direction link counters, `[up, down]` per link.
    pub(crate) fn report(
        mut self,
        sc: &Scenario,
        mut links: Vec<[(DirStats, Vec<u32>); 2]>,
        tunnel_errors: u64,
        endpoints: [serde_json::Value; 2],
    ) -> Report {
        let secs = (self.window.1 - self.window.0) as f64 / 1e6;
        let mbit = |bytes: u64| bytes as f64 * 8.0 / secs / 1e6;
        let mut directions = Vec::new();
        let mut classes = Vec::new();
        let mut users: Vec<UserReport> = Vec::new();
        for dir in [Dir::Up, Dir::Down] {
            let d = di(dir);
            let srcs: Vec<usize> = (0..sc.traffic.len())
                .filter(|&i| sc.traffic[i].dir == dir && !sc.traffic[i].is_tcp())
                .collect();
            if srcs.is_empty() {
                continue;
            }
            let capacity = capacity_mbit(sc, dir, self.window);
            let sum =
                |f: fn(&SourceAcc) -> u64| srcs.iter().map(|&i| f(&self.sources[i])).sum::<u64>();
            let sent = sum(|s| s.sent);
            let delivered = sum(|s| s.delivered);
            let bytes = sum(|s| s.bytes_window);
            let lost = sent.saturating_sub(delivered);
            let ooo = sum(|s| s.out_of_order);
            let delivered_mbit = mbit(bytes);

            // Users: delivered bytes in the window; fairness over those with bulk traffic.
            let mut ulist: Vec<(u32, bool, u64)> = Vec::new();
            for &i in &srcs {
                let t = &sc.traffic[i];
                let bulk = t.kind == TrafficKind::Bulk;
                match ulist.iter_mut().find(|u| u.0 == t.user) {
                    Some(u) => {
                        u.1 |= bulk;
                        u.2 += self.sources[i].bytes_window;
                    }
                    None => ulist.push((t.user, bulk, self.sources[i].bytes_window)),
                }
            }
            ulist.sort_by_key(|u| u.0);
            let xs: Vec<f64> = ulist.iter().filter(|u| u.1).map(|u| u.2 as f64).collect();
            let jain = (xs.len() >= 2).then(|| {
                let s: f64 = xs.iter().sum();
                let s2: f64 = xs.iter().map(|x| x * x).sum();
                if s2 > 0.0 {
                    s * s / (xs.len() as f64 * s2)
                } else {
                    0.0
                }
            });
            users.extend(ulist.iter().map(|&(user, bulk, b)| UserReport {
                user,
                dir,
                bulk,
                delivered_mbit: mbit(b),
            }));

            let da = &mut self.dirs[d];
            directions.push(DirReport {
                dir,
                capacity_mbit: capacity,
                delivered_mbit,
                share: if capacity > 0.0 {
                    delivered_mbit / capacity
                } else {
                    0.0
                },
                sent,
                refused: sum(|s| s.refused),
                delivered,
                lost,
                loss_ratio: if sent > 0 {
                    lost as f64 / sent as f64
                } else {
                    0.0
                },
                duplicates: sum(|s| s.duplicates),
                out_of_order: ooo,
                in_order_ratio: if delivered > 0 {
                    1.0 - ooo as f64 / delivered as f64
                } else {
                    1.0
                },
                latency_ms: Pct::of(&mut da.latency),
                added_delay_ms: Pct::of(&mut da.added),
                longest_gap_ms: da.gap as f64 / 1000.0,
                longest_flow_gap_ms: srcs
                    .iter()
                    .map(|&i| self.sources[i].flow_gap)
                    .max()
                    .unwrap_or(0) as f64
                    / 1000.0,
                jain,
            });

            for c in &sc.classes {
                let cs: Vec<usize> = srcs
                    .iter()
                    .copied()
                    .filter(|&i| sc.traffic[i].class == c.id)
                    .collect();
                if cs.is_empty() {
                    continue;
                }
                let sent: u64 = cs.iter().map(|&i| self.sources[i].sent).sum();
                let delivered: u64 = cs.iter().map(|&i| self.sources[i].delivered).sum();
                let bytes: u64 = cs.iter().map(|&i| self.sources[i].bytes_window).sum();
                let interval = cs.iter().filter_map(|&i| sc.traffic[i].interval_us()).max();
                let ca = &mut self.classes[usize::from(c.id)][d];
                classes.push(ClassReport {
                    class: c.name.clone(),
                    dir,
                    mode: c.mode,
                    priority: c.priority,
                    sent,
                    delivered,
                    lost: sent.saturating_sub(delivered),
                    delivered_mbit: mbit(bytes),
                    latency_ms: Pct::of(&mut ca.latency),
                    queueing_ms: Pct::of(&mut ca.queueing),
                    longest_gap_ms: ca.gap as f64 / 1000.0,
                    interval_ms: interval.map(|us| us as f64 / 1000.0),
                });
            }
        }
        let mut link_reports = Vec::new();
        for (i, l) in sc.links.iter().enumerate() {
            for (dir, cfg) in [(Dir::Up, &l.up), (Dir::Down, &l.down)] {
                link_reports.push(LinkReport {
                    link: l.name.clone(),
                    dir,
                    role: l.role,
                    capacity_mbit: cfg.capacity_bits(self.window.0, self.window.1) / secs / 1e6,
                    carried_mbit: mbit(self.carried[i][di(dir)]),
                    queue_delay_ms: Pct::of(&mut links[i][di(dir)].1),
                    stats: links[i][di(dir)].0.clone(),
                    // Only for a direction that carries traffic (else it is all idle).
                    unused: Some(&self.unused[i][di(dir)])
                        .filter(|a| a.seen && sc.traffic.iter().any(|t| t.dir == dir))
                        .map(|a| {
                            let m = |b: f64| b * 8.0 / secs / 1e6;
                            Unused {
                                total_mbit: m(a.bytes.iter().sum()),
                                down_mbit: m(a.bytes[0]),
                                at_cap_mbit: m(a.bytes[1]),
                                pacer_mbit: m(a.bytes[2]),
                                idle_mbit: m(a.bytes[3]),
                                down_s: a.down_us as f64 / 1e6,
                                degraded_s: a.degraded_us as f64 / 1e6,
                                at_cap_s: a.at_cap_us as f64 / 1e6,
                            }
                        }),
                });
            }
        }
        Report {
            scenario: sc.name.clone(),
            description: sc.description.clone(),
            seed: sc.seed,
            tunnel: sc.tunnel,
            duration_s: sc.duration_us as f64 / 1e6,
            warmup_s: sc.warmup_us as f64 / 1e6,
            directions,
            classes,
            users,
            links: link_reports,
            tunnel_errors,
            corrupt: self.corrupt,
            endpoints,
            notes: Vec::new(),
            tcp: Vec::new(),
            timeline: Vec::new(),
            timeline_ends: Vec::new(),
        }
    }
}

/// The summed capacity (Mbit/s) of the links a scenario may use in `dir` over `window` (µs);
/// with a direct tunnel, that one link's.
fn capacity_mbit(sc: &Scenario, dir: Dir, window: (u64, u64)) -> f64 {
    let secs = (window.1 - window.0) as f64 / 1e6;
    sc.links
        .iter()
        .filter(|l| l.role != Role::Never)
        .filter(|l| !matches!(sc.tunnel, super::scenario::TunnelKind::Direct(d) if d != l.id))
        .map(|l| {
            let c = if dir == Dir::Up { &l.up } else { &l.down };
            c.capacity_bits(window.0, window.1)
        })
        .sum::<f64>()
        / secs
        / 1e6
}

impl Report {
    /// Adds the TCP figures (per traffic index, None for other kinds).
    pub(crate) fn set_tcp(&mut self, sc: &Scenario, tcp: Vec<Option<super::tcp::TcpSpecStats>>) {
        for (t, st) in sc.traffic.iter().zip(tcp) {
            let (Some(st), TrafficKind::Tcp { cc }) = (st, t.kind) else {
                continue;
            };
            // Over the time the traffic ran (the whole run for most; one step of a sequence).
            let end = sc.duration_us.min(t.stop_us);
            let window = (sc.warmup_us.max(t.start_us).min(end.saturating_sub(1)), end);
            let capacity = capacity_mbit(sc, t.dir, window);
            self.tcp.push(TcpReport {
                name: t.name.clone(),
                dir: t.dir,
                cc,
                capacity_mbit: capacity,
                share: if capacity > 0.0 {
                    st.goodput_mbit / capacity
                } else {
                    0.0
                },
                stats: st,
            });
        }
    }

    /// The per-second timeline as a table (one block per direction).
    pub(crate) fn timeline_table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        for dir in [Dir::Up, Dir::Down] {
            let ends: Vec<&TimelineEnd> =
                self.timeline_ends.iter().filter(|e| e.dir == dir).collect();
            if ends.is_empty()
                || !self
                    .timeline
                    .iter()
                    .any(|r| r.dir == dir && r.carried_mbit > 0.1)
            {
                continue;
            }
            let links: Vec<&str> = {
                let mut v: Vec<&str> = self
                    .timeline
                    .iter()
                    .filter(|r| r.dir == dir)
                    .map(|r| r.link.as_str())
                    .collect();
                v.dedup();
                v.truncate(self.links.len() / 2);
                v
            };
            let _ = writeln!(
                o,
                "\n{:?}stream, per second: per link capacity/carried Mbit/s, sender's estimate/pacing Mbit/s, in flight/cap kB, queued kB, srtt ms; then TCP goodput, resends, reorder timeouts, user queues kB",
                dir
            );
            let _ = write!(o, "   s");
            for l in &links {
                let _ = write!(o, " | {l:<49}");
            }
            let _ = writeln!(o, " |  tcp  rsnd  rto  uq kB");
            for e in ends {
                let _ = write!(o, "{:>4}", e.t_s);
                for l in &links {
                    match self
                        .timeline
                        .iter()
                        .find(|r| r.t_s == e.t_s && r.dir == dir && r.link == *l)
                    {
                        Some(r) => {
                            let _ = write!(
                                o,
                                " | {:>5.1}/{:<5.1} {:>5.1}/{:<5.1} {:>5.0}/{:<5.0} {:>4.0} {:>4.0}{}",
                                r.capacity_mbit,
                                r.carried_mbit,
                                r.rate_mbit,
                                r.pacing_mbit,
                                r.inflight_kb,
                                r.cwnd_kb,
                                r.queued_kb,
                                r.srtt_ms,
                                match r.state {
                                    "down" => " D",
                                    "degraded" => " g",
                                    _ => "  ",
                                }
                            );
                        }
                        None => {
                            let _ = write!(o, " | {:49}", "");
                        }
                    }
                }
                let _ = writeln!(
                    o,
                    " | {:>5.1} {:>4} {:>4} {:>6.0}",
                    e.tcp_goodput_mbit, e.resends, e.reorder_timeouts, e.queued_kb
                );
            }
        }
        o
    }

    /// The TCP traffic named `name`.
    pub fn tcp(&self, name: &str) -> Option<&TcpReport> {
        self.tcp.iter().find(|t| t.name == name)
    }

    /// The direction named "up" or "down" (panics on anything else: for tests).
    pub fn dirs_of(&self, name: &str) -> &DirReport {
        let d = if name == "up" { Dir::Up } else { Dir::Down };
        self.dir(d).expect("a direction with traffic")
    }

    pub fn dir(&self, dir: Dir) -> Option<&DirReport> {
        self.directions.iter().find(|d| d.dir == dir)
    }

    pub fn class(&self, name: &str, dir: Dir) -> Option<&ClassReport> {
        self.classes
            .iter()
            .find(|c| c.class == name && c.dir == dir)
    }

    /// The readable table printed by `braid sim`.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "scenario {}  seed {}  tunnel {:?}  {} s (rates from {} s)",
            self.scenario, self.seed, self.tunnel, self.duration_s, self.warmup_s
        );
        if !self.description.is_empty() {
            let _ = writeln!(o, "{}", self.description);
        }
        for d in &self.directions {
            let _ = writeln!(o, "\n{:?}stream", d.dir);
            let _ = writeln!(
                o,
                "  delivered      {:8.2} Mbit/s of {:.2} Mbit/s capacity = {:.1} %",
                d.delivered_mbit,
                d.capacity_mbit,
                d.share * 100.0
            );
            let _ = writeln!(
                o,
                "  packets        {} sent, {} delivered, {} lost ({:.4} %), {} duplicates, {} refused",
                d.sent,
                d.delivered,
                d.lost,
                d.loss_ratio * 100.0,
                d.duplicates,
                d.refused
            );
            let _ = writeln!(
                o,
                "  order          {:.4} % in order ({} out of order)",
                d.in_order_ratio * 100.0,
                d.out_of_order
            );
            let _ = writeln!(o, "  latency ms     {}", pct(&d.latency_ms));
            let _ = writeln!(o, "  added delay ms {}", pct(&d.added_delay_ms));
            let _ = writeln!(
                o,
                "  longest gap    {:.1} ms (one flow: {:.1} ms)",
                d.longest_gap_ms, d.longest_flow_gap_ms
            );
            if let Some(j) = d.jain {
                let _ = writeln!(o, "  Jain fairness  {j:.4}");
            }
        }
        for t in &self.tcp {
            let s = &t.stats;
            let _ = writeln!(
                o,
                "\nTCP {} ({:?}stream, {} x {:?})",
                t.name, t.dir, s.flows, t.cc
            );
            let _ = writeln!(
                o,
                "  goodput        {:8.2} Mbit/s of {:.2} Mbit/s capacity = {:.1} %  (flows {:.2} to {:.2})",
                s.goodput_mbit,
                t.capacity_mbit,
                t.share * 100.0,
                s.flow_min_mbit,
                s.flow_max_mbit
            );
            let _ = writeln!(
                o,
                "  segments       {} sent, {} resent ({} shown spurious), {} refused by the tunnel",
                s.segments, s.retransmits, s.spurious, s.refused
            );
            let _ = writeln!(
                o,
                "  recovery       {} fast recoveries, {} timeouts, {} undone; srtt {:.1} ms; longest stall {:.1} ms",
                s.recoveries, s.rtos, s.undos, s.srtt_ms, s.longest_stall_ms
            );
        }
        let _ = writeln!(o, "\nclass        dir   mode       prio  Mbit/s   sent      lost  latency p50/p99 ms  queueing p99 ms  gap ms");
        for c in &self.classes {
            let _ = writeln!(
                o,
                "{:<12} {:<5} {:<10} {:>4} {:>7.2} {:>7} {:>7} {:>9.1}/{:<9.1} {:>15.1} {:>7.1}",
                c.class,
                c.dir.name(),
                mode_name(c.mode),
                c.priority,
                c.delivered_mbit,
                c.sent,
                c.lost,
                c.latency_ms.p50,
                c.latency_ms.p99,
                c.queueing_ms.p99,
                c.longest_gap_ms
            );
        }
        let _ = writeln!(o, "\nuser  dir   bulk  Mbit/s");
        for u in &self.users {
            let _ = writeln!(
                o,
                "{:<5} {:<5} {:<5} {:>7.2}",
                u.user,
                u.dir.name(),
                u.bulk,
                u.delivered_mbit
            );
        }
        let _ = writeln!(
            o,
            "\nlink         dir   capacity  carried  offered  drop:queue  loss  outage  queue p50/p99/max ms"
        );
        for l in &self.links {
            let _ = writeln!(
                o,
                "{:<12} {:<5} {:>8.2} {:>8.2} {:>8} {:>11} {:>5} {:>7}  {:>5.1}/{:.1}/{:.1}",
                l.link,
                l.dir.name(),
                l.capacity_mbit,
                l.carried_mbit,
                l.stats.offered_packets,
                l.stats.drop_queue,
                l.stats.drop_loss,
                l.stats.drop_outage,
                l.queue_delay_ms.p50,
                l.queue_delay_ms.p99,
                l.queue_delay_ms.max
            );
        }
        if self.links.iter().any(|l| l.unused.is_some()) {
            let _ = writeln!(
                o,
                "\nunused capacity  Mbit/s: total   Down  at cap   pacer   idle    s: Down  Degraded  at cap"
            );
            for l in &self.links {
                let Some(u) = &l.unused else { continue };
                let _ = writeln!(
                    o,
                    "{:<12} {:<5}   {:>12.2} {:>6.2} {:>7.2} {:>7.2} {:>6.2}  {:>10.1} {:>9.1} {:>7.1}",
                    l.link,
                    l.dir.name(),
                    u.total_mbit,
                    u.down_mbit,
                    u.at_cap_mbit,
                    u.pacer_mbit,
                    u.idle_mbit,
                    u.down_s,
                    u.degraded_s,
                    u.at_cap_s
                );
            }
        }
        if self.tunnel_errors > 0 || self.corrupt > 0 {
            let _ = writeln!(
                o,
                "\n{} datagrams rejected by an endpoint, {} corrupt deliveries",
                self.tunnel_errors, self.corrupt
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        o
    }
}

fn pct(p: &Pct) -> String {
    format!(
        "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        p.p50, p.p90, p.p99, p.max
    )
}

fn mode_name(m: Mode) -> String {
    match m {
        Mode::Aggregate => "aggregate".into(),
        Mode::Weighted => "weighted".into(),
        Mode::Redundant => "redundant".into(),
        Mode::Backup => "backup".into(),
        Mode::Pinned(l) => format!("pinned:{l}"),
    }
}

/// A class's mode in the JSON report: "aggregate", ..., or `{"pinned": LINK}`.
fn mode_word<S: serde::Serializer>(m: &Mode, s: S) -> Result<S::Ok, S::Error> {
    match *m {
        Mode::Aggregate => s.serialize_unit_variant("Mode", 0, "aggregate"),
        Mode::Weighted => s.serialize_unit_variant("Mode", 1, "weighted"),
        Mode::Redundant => s.serialize_unit_variant("Mode", 2, "redundant"),
        Mode::Backup => s.serialize_unit_variant("Mode", 3, "backup"),
        Mode::Pinned(l) => s.serialize_newtype_variant("Mode", 4, "pinned", &l),
    }
}

/// A link's role in the JSON report, as the scenario file and UCI name it.
fn role_word<S: serde::Serializer>(r: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sim::scenario::Scenario;
    use crate::sim::traffic::build_packet;

    fn feed(m: &mut Metrics, sc: &Scenario, source: u32, seq: u64, flow: u32, sent: u64, at: u64) {
        let mut p = Vec::new();
        let size = sc.traffic[source as usize].size;
        build_packet(
            &mut p,
            size,
            Tag {
                source,
                seq,
                sent_us: sent,
                flow,
            },
        );
        m.delivered(sc, Dir::Up, at, &p, Some(20_000));
    }

    #[test]
    fn definitions_on_hand_fed_deliveries() {
        let sc = Scenario::parse(
            "duration = \"1s\"\n\
             [[link]]\nrate = \"10mbit\"\ndelay = \"20ms\"\n\
             [[link]]\nrate = \"10mbit\"\ndelay = \"40ms\"\n\
             [[traffic]]\nkind = \"bulk\"\nuser = 1\nflows = 2\nsize = 1000\n\
             [[traffic]]\nkind = \"bulk\"\nuser = 2\nsize = 1000\n",
            "t.toml",
            None,
        )
        .unwrap();
        let mut m = Metrics::new(&sc);
        for _ in 0..4 {
            m.sent(0, true);
        }
        m.sent(1, true);
        m.sent(1, true);
        // Source 0: flow 0 gets seq 2 then 0 (0 is out of order), flow 1 gets 1 and 3, then 3
        // again (a duplicate).
        feed(&mut m, &sc, 0, 2, 0, 0, 100_000);
        feed(&mut m, &sc, 0, 0, 0, 0, 150_000);
        feed(&mut m, &sc, 0, 1, 1, 0, 160_000);
        // Source 1 delivers one of its two packets: one lost.
        feed(&mut m, &sc, 1, 0, 0, 400_000, 460_000);
        feed(&mut m, &sc, 0, 3, 1, 0, 500_000);
        feed(&mut m, &sc, 0, 3, 1, 0, 510_000);
        let r = m.report(
            &sc,
            vec![Default::default(), Default::default()],
            0,
            Default::default(),
        );
        let up = r.dir(Dir::Up).unwrap();
        assert_eq!(
            (up.sent, up.delivered, up.lost, up.duplicates),
            (6, 5, 1, 1)
        );
        assert_eq!(up.out_of_order, 1);
        assert!((up.in_order_ratio - 0.8).abs() < 1e-12);
        // Deliveries at 100, 150, 160, 460, 500 ms: longest gap 300 ms; flow 1 waited 340 ms.
        assert_eq!(up.longest_gap_ms, 300.0);
        assert_eq!(up.longest_flow_gap_ms, 340.0);
        // Latency 60 ms above the slowest link's 40 ms is 20 ms added; the max is 500 - 40.
        assert_eq!(up.added_delay_ms.max, 460.0);
        assert_eq!(up.latency_ms.p50, 150.0);
        // User 1 got 4000 bytes, user 2 1000: Jain = 25e6 / (2 * 17e6).
        let jain = up.jain.unwrap();
        assert!((jain - 25.0 / 34.0).abs() < 1e-12, "{jain}");
        assert_eq!(r.corrupt, 0);
        // Queueing: above the releasing link's 20 ms.
        let c = r.class("default", Dir::Up).unwrap();
        assert_eq!(c.queueing_ms.max, 480.0);
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        let p = Pct::of(&mut v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Pct::of(&mut []), Pct::default());
    }
}
