//! A compact TCP model, so the simulator shows what the tunnel does to the TCP flows passengers
//! run: reordering, delay spikes and losses are seen by a real congestion controller and its
//! loss recovery, not by a saturating source that never backs off.
//!
//! Each flow is a bulk transfer between a client behind the edge and a server behind the core,
//! one way (`up`: client to server, `down`: server to client). Data segments and the receiver's
//! ACKs are real IPv4 + TCP packets (timestamps on every segment, SACK blocks on ACKs) that go
//! through the tunnel as inner packets in both directions, so the session packs their headers
//! and schedules the ACKs as it would a client's. The client and the server sit right at the
//! edge and the core (no extra delay); a packet the tunnel refuses (full queue) is dropped, as
//! the daemons drop it.
//!
//! What is modelled, after Linux:
//! - sender: congestion window in segments (initial 10), CUBIC (with HyStart's delay and ACK
//!   train exits), Reno, or BBR v1 (paced; startup, drain, the probe-bandwidth gain cycle and
//!   probe-RTT); RACK loss detection (reordering window min RTT / 4, 0 until reordering is
//!   seen once three segments are SACKed above a hole, widened by DSACKs), proportional rate
//!   reduction in recovery, RTO (200 ms floor, exponential backoff) with everything outstanding
//!   marked lost, and undo of a reduction shown spurious by DSACKs or by timestamps (Eifel);
//! - receiver: in-order delivery (the goodput), out-of-order ranges reported as up to three
//!   SACK blocks (a DSACK first for a duplicate), an ACK every second full segment, at once on
//!   reordering or a duplicate, else after 40 ms; quick ACKs for the first 16 segments.
//!
//! Left out: the handshake (flows start with an established connection), receive-window
//! autotuning (a fixed 3 MB window), tail loss probes, F-RTO's new-data probing, TSO/GSO and
//! the LAN's own delay and rate.

use std::collections::VecDeque;

use serde::Serialize;

use super::scenario::{Cc, Dir, Scenario, TrafficKind};
use super::tunnel::Meta;
use crate::proto::maxfilter::MaxFilter;
use crate::proto::packet::checksum;

/// IPv4 (20) + TCP (20) + the timestamp option (12): the headers of every segment.
pub(crate) const HEADERS: usize = 52;
const SERVER: [u8; 4] = [192, 0, 2, 1];
const SERVER_PORT: u16 = 5201;
const CLIENT_PORT0: u16 = 20_000;
const INIT_CWND: f64 = 10.0;
const MIN_CWND: f64 = 2.0;
const MIN_RTO_US: u64 = 200_000;
const MAX_RTO_US: u64 = 60_000_000;
const DELACK_US: u64 = 40_000;
const QUICKACKS: u32 = 16;
const RWND_BYTES: u64 = 3 << 20;
/// Linux's default `tcp_reordering` and `tcp_max_reordering`.
const REORDERING: u64 = 3;
const MAX_REORDERING: u64 = 300;
/// Goodput is counted in bins of this length.
pub(crate) const BIN_US: u64 = 100_000;
/// The start of a transfer left out of its goodput, as the lab does (slow start).
pub(crate) const OMIT_US: u64 = 2_000_000;

/// One TCP flow's two ends. See the module docs.
struct Flow {
    dir: Dir,
    meta: Meta,
    client: [u8; 4],
    port: u16,
    start_us: u64,
    stop_us: u64,
    mss: usize,
    snd: Sender,
    rcv: Receiver,
    ip_id: [u16; 2],
}

/// What the TCP flows send next: an inner packet for the edge (`side` 0) or the core (1).
pub(crate) struct Out {
    pub(crate) side: usize,
    pub(crate) meta: Meta,
    pub(crate) pkt: Vec<u8>,
}

/// Every TCP flow of a scenario.
pub(crate) struct TcpFlows {
    flows: Vec<Flow>,
    /// Traffic index -> flow index range.
    by_spec: Vec<(usize, usize)>,
    /// Client port -> flow index.
    out: VecDeque<Out>,
    pool: Vec<Vec<u8>>,
}

impl TcpFlows {
    /// The flows of every `kind = "tcp"` traffic of `sc`; segments are IP packets of `mtu`
    /// bytes at most.
    pub(crate) fn new(sc: &Scenario, mtu: usize) -> TcpFlows {
        let mut flows = Vec::new();
        let mut by_spec = Vec::new();
        for (i, t) in sc.traffic.iter().enumerate() {
            let first = flows.len();
            if let TrafficKind::Tcp { cc } = t.kind {
                for f in 0..t.flows {
                    let n = flows.len();
                    let port = CLIENT_PORT0 + n as u16;
                    flows.push(Flow {
                        dir: t.dir,
                        meta: Meta {
                            user: t.user,
                            flow: super::traffic::flow_id(
                                (0x7c70 << 48) | ((i as u64) << 32) | u64::from(f),
                            ),
                            class: t.class,
                        },
                        client: [10, 1, (t.user >> 8) as u8, t.user as u8],
                        port,
                        start_us: t.start_us,
                        stop_us: t.stop_us,
                        mss: mtu - HEADERS,
                        snd: Sender::new(cc, t.start_us),
                        rcv: Receiver::new(t.start_us, (mtu - HEADERS) as u64),
                        ip_id: [0; 2],
                    });
                }
            }
            by_spec.push((first, flows.len()));
        }
        TcpFlows {
            flows,
            by_spec,
            out: VecDeque::new(),
            pool: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The tunnel is up at `now`: flows due to start earlier start now.
    pub(crate) fn start(&mut self, now: u64) {
        for f in &mut self.flows {
            if f.start_us < now {
                f.start_us = now;
                f.snd = Sender::new(f.snd.cc.kind(), now);
                f.rcv = Receiver::new(now, f.mss as u64);
            }
        }
    }

    /// The next time a flow has work of its own (a timer, or the pacer releasing a segment).
    pub(crate) fn poll_timeout(&self, now: u64) -> Option<u64> {
        let mut t: Option<u64> = None;
        for f in &self.flows {
            let mut m = |x: u64| t = Some(t.map_or(x, |y| y.min(x)));
            if now < f.start_us {
                m(f.start_us);
                continue;
            }
            if let Some(x) = f.snd.timer() {
                m(x);
            }
            if now < f.stop_us && f.snd.can_send_at(now).is_some_and(|x| x > now) {
                m(f.snd.next_send_us);
            }
            if let Some(x) = f.rcv.delack_at {
                m(x);
            }
        }
        t
    }

    /// Runs due timers and lets every sender send what its window and pacer allow.
    pub(crate) fn poll(&mut self, now: u64) {
        for i in 0..self.flows.len() {
            let f = &mut self.flows[i];
            if now < f.start_us {
                continue;
            }
            f.snd.on_timer(now);
            if f.rcv.delack_at.is_some_and(|t| t <= now) {
                self.send_ack(i, now);
            }
            self.pump(i, now);
        }
    }

    /// The next packet to hand to the tunnel.
    pub(crate) fn pop(&mut self) -> Option<Out> {
        self.out.pop_front()
    }

    /// Gives a sent packet's buffer back.
    pub(crate) fn recycle(&mut self, mut b: Vec<u8>) {
        if self.pool.len() < 64 {
            b.clear();
            self.pool.push(b);
        }
    }

    /// The tunnel refused a packet (its queue was full): it is lost.
    pub(crate) fn refused(&mut self, o: &Out) {
        if let Some(i) = self.flow_of(&o.pkt) {
            self.flows[i].snd.stats.refused += 1;
        }
    }

    /// A packet left the tunnel at `side` (0 edge, 1 core). False if it is not one of ours.
    pub(crate) fn delivered(&mut self, now: u64, side: usize, p: &[u8]) -> bool {
        let Some(i) = self.flow_of(p) else {
            return false;
        };
        let Some(seg) = parse(p) else { return false };
        let f = &mut self.flows[i];
        // Data goes to the receiver's side: up = the core (1), down = the edge (0).
        let rx_side = if f.dir == Dir::Up { 1 } else { 0 };
        if side == rx_side && seg.len > 0 {
            let s = u64::from(seg.seq) / f.mss as u64;
            let ack_now = f.rcv.on_data(now, s, seg.tsval);
            if ack_now {
                self.send_ack(i, now);
            }
        } else if side != rx_side {
            let mss = f.mss as u64;
            let ack = u64::from(seg.ack) / mss;
            let mut sacks = [(0u64, 0u64); 3];
            let n = seg.sacks.min(3);
            for (d, &(a, b)) in sacks.iter_mut().zip(&seg.sack[..n]) {
                *d = (u64::from(a) / mss, u64::from(b) / mss);
            }
            f.snd.on_ack(now, ack, &sacks[..n], seg.tsecr);
            self.pump(i, now);
        }
        true
    }

    fn flow_of(&self, p: &[u8]) -> Option<usize> {
        if p.len() < HEADERS || p[9] != 6 {
            return None;
        }
        let sport = u16::from_be_bytes([p[20], p[21]]);
        let dport = u16::from_be_bytes([p[22], p[23]]);
        let port = if sport == SERVER_PORT { dport } else { sport };
        let i = usize::from(port.checked_sub(CLIENT_PORT0)?);
        (i < self.flows.len() && self.flows[i].port == port).then_some(i)
    }

    /// Sends what flow `i`'s sender may send now.
    fn pump(&mut self, i: usize, now: u64) {
        loop {
            let f = &mut self.flows[i];
            if now >= f.stop_us {
                return;
            }
            let Some(s) = f.snd.next_segment(now) else {
                return;
            };
            let mss = f.mss;
            let tsval = ts_ms(now);
            let (side, from_client) = if f.dir == Dir::Up {
                (0, true)
            } else {
                (1, false)
            };
            let mut b = self.pool.pop().unwrap_or_default();
            let f = &mut self.flows[i];
            f.ip_id[side] = f.ip_id[side].wrapping_add(1);
            build(
                &mut b,
                &Hdr {
                    client: f.client,
                    port: f.port,
                    from_client,
                    id: f.ip_id[side],
                    seq: (s * mss as u64) as u32,
                    ack: 0,
                    tsval,
                    tsecr: 0,
                    sack: &[],
                },
                mss,
            );
            self.out.push_back(Out {
                side,
                meta: f.meta,
                pkt: b,
            });
        }
    }

    fn send_ack(&mut self, i: usize, now: u64) {
        let f = &mut self.flows[i];
        let side = if f.dir == Dir::Up { 1 } else { 0 };
        let (ack, tsecr, sack, n) = f.rcv.take_ack();
        let mss = f.mss as u64;
        let mut blocks = [(0u32, 0u32); 3];
        for (d, &(a, z)) in blocks.iter_mut().zip(&sack[..n]) {
            *d = ((a * mss) as u32, (z * mss) as u32);
        }
        f.ip_id[side] = f.ip_id[side].wrapping_add(1);
        let mut b = self.pool.pop().unwrap_or_default();
        build(
            &mut b,
            &Hdr {
                client: f.client,
                port: f.port,
                from_client: f.dir == Dir::Down,
                id: f.ip_id[side],
                seq: 0,
                ack: (ack * mss) as u32,
                tsval: ts_ms(now),
                tsecr,
                sack: &blocks[..n],
            },
            0,
        );
        self.out.push_back(Out {
            side,
            meta: f.meta,
            pkt: b,
        });
    }

    /// Per traffic spec: its flows' figures over `[from, to)` (µs), cut to the time the spec
    /// runs (an upload that stops halfway through the run is not judged by the idle half).
    pub(crate) fn report(&self, from: u64, to: u64) -> Vec<Option<TcpSpecStats>> {
        self.by_spec
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    return None;
                }
                let fl = &self.flows[a..b];
                // As the lab, leave out the first 2 s of the transfer (slow start).
                let start = fl.iter().map(|f| f.start_us).min().unwrap_or(0);
                let stop = fl.iter().map(|f| f.stop_us).max().unwrap_or(to);
                let to = to.min(stop).max(BIN_US);
                let from = from.max(start + OMIT_US).min(to - BIN_US);
                let bytes: Vec<u64> = fl.iter().map(|f| f.rcv.bytes_in(from, to)).collect();
                let secs = (to - from) as f64 / 1e6;
                let mbit = |x: u64| x as f64 * 8.0 / secs / 1e6;
                let mut st = SenderStats::default();
                for f in fl {
                    st.add(&f.snd.stats);
                }
                let run_end = to;
                let bins = fl.iter().map(|f| f.rcv.bins.len()).max().unwrap_or(0);
                let per_second = (0..bins.div_ceil(10))
                    .map(|s| {
                        let sum: u64 = fl
                            .iter()
                            .map(|f| f.rcv.bins.iter().skip(s * 10).take(10).sum::<u64>())
                            .sum();
                        sum as f64 * 8.0 / 1e6
                    })
                    .collect();
                Some(TcpSpecStats {
                    flows: fl.len() as u32,
                    goodput_mbit: mbit(bytes.iter().sum()),
                    flow_min_mbit: mbit(*bytes.iter().min().unwrap_or(&0)),
                    flow_max_mbit: mbit(*bytes.iter().max().unwrap_or(&0)),
                    segments: st.segments,
                    retransmits: st.retransmits,
                    spurious: st.spurious,
                    rtos: st.rtos,
                    refused: st.refused,
                    recoveries: st.recoveries,
                    undos: st.undos,
                    longest_stall_ms: fl
                        .iter()
                        .map(|f| f.rcv.longest_stall(from.max(f.start_us), run_end))
                        .max()
                        .unwrap_or(0) as f64
                        / 1e3,
                    srtt_ms: fl.iter().map(|f| f.snd.srtt_us as f64).sum::<f64>()
                        / fl.len() as f64
                        / 1e3,
                    per_second,
                })
            })
            .collect()
    }
}

/// Figures of one `[[traffic]]` of kind tcp (summed over its flows).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TcpSpecStats {
    pub(crate) flows: u32,
    /// In-order bytes the receivers delivered to their application, per second.
    pub goodput_mbit: f64,
    pub(crate) flow_min_mbit: f64,
    pub(crate) flow_max_mbit: f64,
    /// Segments sent, first transmissions and retransmissions.
    pub segments: u64,
    pub retransmits: u64,
    /// Retransmissions the receiver reported as duplicates (DSACK).
    pub spurious: u64,
    pub rtos: u64,
    /// Packets the tunnel refused (queue full).
    pub(crate) refused: u64,
    pub recoveries: u64,
    /// Window reductions undone (shown spurious).
    pub(crate) undos: u64,
    /// The longest time a flow's receiver delivered nothing.
    pub(crate) longest_stall_ms: f64,
    /// Mean of the senders' final smoothed RTT.
    pub(crate) srtt_ms: f64,
    /// Goodput of each whole second of the run, summed over the flows (Mbit/s).
    pub(crate) per_second: Vec<f64>,
}

fn ts_ms(now: u64) -> u32 {
    (now / 1000) as u32
}

// ------------------------------------------------------------------------------- packets

struct Hdr<'a> {
    client: [u8; 4],
    port: u16,
    from_client: bool,
    id: u16,
    seq: u32,
    ack: u32,
    tsval: u32,
    tsecr: u32,
    sack: &'a [(u32, u32)],
}

/// Writes an IPv4 + TCP packet with timestamps, `sack` blocks and `payload` zero bytes.
fn build(b: &mut Vec<u8>, h: &Hdr, payload: usize) {
    let opt = 12
        + if h.sack.is_empty() {
            0
        } else {
            4 + 8 * h.sack.len()
        };
    let tcp_len = 20 + opt;
    let len = 20 + tcp_len + payload;
    b.clear();
    b.resize(len, 0);
    b[0] = 0x45;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    b[4..6].copy_from_slice(&h.id.to_be_bytes());
    b[6] = 0x40; // DF
    b[8] = 64;
    b[9] = 6;
    let (src, dst, sport, dport) = if h.from_client {
        (h.client, SERVER, h.port, SERVER_PORT)
    } else {
        (SERVER, h.client, SERVER_PORT, h.port)
    };
    b[12..16].copy_from_slice(&src);
    b[16..20].copy_from_slice(&dst);
    let sum = checksum(&b[..20], 0);
    b[10..12].copy_from_slice(&sum.to_be_bytes());
    let t = &mut b[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&h.seq.to_be_bytes());
    t[8..12].copy_from_slice(&h.ack.to_be_bytes());
    t[12] = ((tcp_len / 4) as u8) << 4;
    t[13] = 0x10 | if payload > 0 { 0x08 } else { 0 }; // ACK, PSH on data
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    // Checksum (16..18) left 0: nothing checks it, and the tunnel carries it untouched.
    t[20..24].copy_from_slice(&[1, 1, 8, 10]);
    t[24..28].copy_from_slice(&h.tsval.to_be_bytes());
    t[28..32].copy_from_slice(&h.tsecr.to_be_bytes());
    if !h.sack.is_empty() {
        t[32..36].copy_from_slice(&[1, 1, 5, 2 + 8 * h.sack.len() as u8]);
        for (k, (a, z)) in h.sack.iter().enumerate() {
            t[36 + 8 * k..40 + 8 * k].copy_from_slice(&a.to_be_bytes());
            t[40 + 8 * k..44 + 8 * k].copy_from_slice(&z.to_be_bytes());
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Parsed {
    seq: u32,
    ack: u32,
    len: usize,
    tsval: u32,
    tsecr: u32,
    sack: [(u32, u32); 4],
    sacks: usize,
}

/// Reads back what [`build`] wrote (None if the packet is not of that shape).
fn parse(p: &[u8]) -> Option<Parsed> {
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    let t = p.get(20..total)?;
    let off = usize::from(t.get(12)? >> 4) * 4;
    let opts = t.get(20..off)?;
    let mut r = Parsed {
        seq: u32::from_be_bytes(t[4..8].try_into().ok()?),
        ack: u32::from_be_bytes(t[8..12].try_into().ok()?),
        len: total - 20 - off,
        ..Parsed::default()
    };
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let l = usize::from(*opts.get(i + 1)?).max(2);
                let o = opts.get(i..i + l)?;
                if kind == 8 && l == 10 {
                    r.tsval = u32::from_be_bytes(o[2..6].try_into().ok()?);
                    r.tsecr = u32::from_be_bytes(o[6..10].try_into().ok()?);
                } else if kind == 5 {
                    for b in o[2..].chunks_exact(8).take(4) {
                        r.sack[r.sacks] = (
                            u32::from_be_bytes(b[0..4].try_into().ok()?),
                            u32::from_be_bytes(b[4..8].try_into().ok()?),
                        );
                        r.sacks += 1;
                    }
                }
                i += l;
            }
        }
    }
    Some(r)
}

// ------------------------------------------------------------------------------- receiver

/// An ACK's fields: cumulative ack (segment), tsecr, SACK blocks (segments) and how many.
type AckFields = (u64, u32, [(u64, u64); 3], usize);

#[derive(Debug)]
struct Receiver {
    /// Next segment expected.
    nxt: u64,
    /// Out-of-order ranges [a, b) above `nxt`, sorted.
    ooo: Vec<(u64, u64)>,
    /// Ranges by recency of their last change (for the SACK block order).
    recent: VecDeque<(u64, u64)>,
    dsack: Option<(u64, u64)>,
    ts_recent: u32,
    unacked: u32,
    quick: u32,
    delack_at: Option<u64>,
    /// In-order payload bytes per BIN_US, from time 0.
    bins: Vec<u64>,
    /// Times at which `nxt` advanced, as (first, last) of each run of advances no further
    /// apart than a bin, to find the longest stall.
    stalls: Vec<(u64, u64)>,
    last_advance: u64,
    mss_bytes: u64,
}

impl Receiver {
    fn new(start: u64, mss_bytes: u64) -> Receiver {
        Receiver {
            nxt: 0,
            ooo: Vec::new(),
            recent: VecDeque::new(),
            dsack: None,
            ts_recent: 0,
            unacked: 0,
            quick: QUICKACKS,
            delack_at: None,
            bins: Vec::new(),
            stalls: Vec::new(),
            last_advance: start,
            mss_bytes,
        }
    }

    /// Segment `s` arrived: whether to ACK at once.
    fn on_data(&mut self, now: u64, s: u64, tsval: u32) -> bool {
        let dup = s < self.nxt || self.ooo.iter().any(|&(a, b)| a <= s && s < b);
        if dup {
            self.dsack = Some((s, s + 1));
            return true;
        }
        if s > self.nxt {
            self.add_ooo(s);
            return true;
        }
        // In order.
        self.ts_recent = tsval;
        let mut n = 1;
        self.nxt += 1;
        let filled = !self.ooo.is_empty() && self.ooo[0].0 == self.nxt;
        if filled {
            let (_, b) = self.ooo.remove(0);
            n += b - self.nxt;
            self.nxt = b;
            self.recent.retain(|r| r.1 > self.nxt);
        }
        self.advance(now, n);
        if filled || !self.ooo.is_empty() {
            return true;
        }
        self.unacked += 1;
        if self.quick > 0 || self.unacked >= 2 {
            return true;
        }
        if self.delack_at.is_none() {
            self.delack_at = Some(now + DELACK_US);
        }
        false
    }

    fn add_ooo(&mut self, s: u64) {
        let i = self.ooo.partition_point(|r| r.1 < s);
        // Merge with the range ending at s and/or the one starting at s + 1.
        let mut r = (s, s + 1);
        let k = i;
        while k < self.ooo.len() && self.ooo[k].0 <= r.1 {
            r = (r.0.min(self.ooo[k].0), r.1.max(self.ooo[k].1));
            self.ooo.remove(k);
        }
        self.ooo.insert(i, r);
        self.recent.retain(|x| x.1 < r.0 || x.0 > r.1);
        self.recent.push_front(r);
        self.recent.truncate(4);
    }

    fn advance(&mut self, now: u64, n: u64) {
        let bin = (now / BIN_US) as usize;
        if self.bins.len() <= bin {
            self.bins.resize(bin + 1, 0);
        }
        self.bins[bin] += n * self.mss_bytes;
        match self.stalls.last_mut() {
            Some(l) if now - l.1 <= BIN_US => l.1 = now,
            _ => self.stalls.push((now, now)),
        }
        self.last_advance = now;
    }

    fn bytes_in(&self, from: u64, to: u64) -> u64 {
        let (a, b) = ((from / BIN_US) as usize, (to / BIN_US) as usize);
        self.bins.iter().take(b).skip(a).sum()
    }

    /// The longest time in [from, to) without an advance.
    fn longest_stall(&self, from: u64, to: u64) -> u64 {
        let mut last = from;
        let mut gap = 0;
        for &(a, b) in &self.stalls {
            if b < from {
                continue;
            }
            if a >= to {
                break;
            }
            gap = gap.max(a.saturating_sub(last));
            last = last.max(b);
        }
        gap.max(to.saturating_sub(last))
    }

    /// Builds an ACK.
    fn take_ack(&mut self) -> AckFields {
        self.unacked = 0;
        self.quick = self.quick.saturating_sub(1);
        self.delack_at = None;
        let mut blocks = [(0, 0); 3];
        let mut n = 0;
        if let Some(d) = self.dsack.take() {
            blocks[0] = d;
            n = 1;
        }
        for r in &self.recent {
            if n == 3 {
                break;
            }
            if r.1 > self.nxt {
                blocks[n] = *r;
                n += 1;
            }
        }
        (self.nxt, self.ts_recent, blocks, n)
    }
}

// ------------------------------------------------------------------------------- sender

#[derive(Debug, Clone, Copy, Default)]
struct Seg {
    sent: u64,
    sacked: bool,
    /// Marked lost (Linux's TCPCB_LOST): kept when the segment is resent, cleared when it is
    /// delivered, by an undo, or (with `retrans`) when the resend is judged lost again.
    lost: bool,
    /// A retransmission is in flight (TCPCB_SACKED_RETRANS).
    retrans: bool,
    ever_retrans: bool,
    // Delivery-rate sampling (as Linux tcp_rate.c).
    delivered: u64,
    delivered_at: u64,
    first_tx: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Recovery,
    Loss,
}

#[derive(Debug, Clone, Default, Serialize)]
struct SenderStats {
    segments: u64,
    retransmits: u64,
    spurious: u64,
    rtos: u64,
    refused: u64,
    recoveries: u64,
    undos: u64,
}

impl SenderStats {
    fn add(&mut self, o: &SenderStats) {
        self.segments += o.segments;
        self.retransmits += o.retransmits;
        self.spurious += o.spurious;
        self.rtos += o.rtos;
        self.refused += o.refused;
        self.recoveries += o.recoveries;
        self.undos += o.undos;
    }
}

#[derive(Debug)]
struct Sender {
    una: u64,
    nxt: u64,
    segs: VecDeque<Seg>,
    sacked_out: u64,
    /// Segments marked lost, resent or not (Linux's lost_out).
    lost_out: u64,
    /// Resends in flight (Linux's retrans_out).
    retrans_out: u64,
    /// Segments marked lost and resent (`lost && retrans`): `lost_out - lost_resent` are due.
    lost_resent: u64,
    /// Highest SACKed segment + 1.
    fack: u64,
    cwnd: f64,
    ssthresh: f64,
    state: State,
    high_seq: u64,
    // RTT
    srtt_us: u64,
    rttvar_us: u64,
    /// This ACK's RTT sample, if it had one.
    latest_rtt_us: Option<u64>,
    min_rtt_us: u64,
    min_rtt_at: u64,
    have_rtt: bool,
    rto_at: Option<u64>,
    backoff: u32,
    // RACK
    /// (send time, segment) of the most recently sent segment delivered.
    rack_key: (u64, u64),
    rack_rtt: u64,
    rack_timer: Option<u64>,
    reo_wnd_steps: u64,
    /// Recoveries left before the window's steps go back to 1.
    reo_wnd_persist: u32,
    rack_dsack_delivered: u64,
    reord_seen: bool,
    reordering: u64,
    // PRR
    prior_cwnd: f64,
    prr_delivered: u64,
    prr_out: u64,
    // Undo
    prior_ssthresh: f64,
    undo_marker: bool,
    undo_retrans: i64,
    retrans_stamp: Option<u32>,
    // Delivery rate
    delivered: u64,
    delivered_at: u64,
    first_tx: u64,
    next_send_us: u64,
    cc: CcState,
    stats: SenderStats,
}

impl Sender {
    fn new(cc: Cc, now: u64) -> Sender {
        Sender {
            una: 0,
            nxt: 0,
            segs: VecDeque::new(),
            sacked_out: 0,
            lost_out: 0,
            retrans_out: 0,
            lost_resent: 0,
            fack: 0,
            cwnd: INIT_CWND,
            ssthresh: f64::INFINITY,
            state: State::Open,
            high_seq: 0,
            srtt_us: 0,
            rttvar_us: 0,
            latest_rtt_us: None,
            min_rtt_us: u64::MAX,
            min_rtt_at: now,
            have_rtt: false,
            rto_at: None,
            backoff: 0,
            rack_key: (0, 0),
            rack_rtt: 0,
            rack_timer: None,
            reo_wnd_steps: 1,
            reo_wnd_persist: 0,
            rack_dsack_delivered: 0,
            reord_seen: false,
            reordering: REORDERING,
            prior_cwnd: 0.0,
            prr_delivered: 0,
            prr_out: 0,
            prior_ssthresh: 0.0,
            undo_marker: false,
            undo_retrans: -1,
            retrans_stamp: None,
            delivered: 0,
            delivered_at: now,
            first_tx: now,
            next_send_us: now,
            cc: CcState::new(cc, now),
            stats: SenderStats::default(),
        }
    }

    /// Segments in the network (tcp_packets_in_flight): outstanding, less those SACKed and
    /// those marked lost, plus the resends. A resent segment keeps its lost mark, so it counts
    /// once; one resent and then unmarked by an undo counts twice (both copies may arrive).
    fn in_flight(&self) -> u64 {
        debug_assert!(self.sacked_out + self.lost_out <= self.nxt - self.una);
        debug_assert!(self.lost_resent <= self.lost_out.min(self.retrans_out));
        (self.nxt - self.una + self.retrans_out).saturating_sub(self.sacked_out + self.lost_out)
    }

    /// Lost segments not yet resent.
    fn lost_due(&self) -> u64 {
        self.lost_out - self.lost_resent
    }

    fn rto_us(&self) -> u64 {
        // Linux keeps the variance term at least the minimum RTO.
        let base = if self.have_rtt {
            self.srtt_us + (4 * self.rttvar_us).max(MIN_RTO_US)
        } else {
            1_000_000
        };
        (base << self.backoff.min(10)).min(MAX_RTO_US)
    }

    fn timer(&self) -> Option<u64> {
        match (self.rto_at, self.rack_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the window allows a segment: None if it does not (waiting for ACKs), else the
    /// pacer's time (<= now: at once).
    fn can_send_at(&self, _now: u64) -> Option<u64> {
        if (self.in_flight() as f64) >= self.cwnd.floor().max(1.0) {
            return None;
        }
        if self.lost_due() == 0 && self.nxt - self.una >= rwnd_segs() {
            return None;
        }
        Some(if self.cc.paced() {
            self.next_send_us
        } else {
            0
        })
    }

    /// The segment to send now, if the window and pacer allow: a lost one first, else new data.
    fn next_segment(&mut self, now: u64) -> Option<u64> {
        let at = self.can_send_at(now)?;
        if at > now {
            return None;
        }
        if self.nxt == self.una {
            // Nothing outstanding: the delivery-rate clock restarts (tcp_rate_skb_sent).
            self.first_tx = now;
            self.delivered_at = now;
        }
        let s = if self.lost_due() > 0 {
            let i = self.segs.iter().position(|g| g.lost && !g.retrans)?;
            let seg = &mut self.segs[i];
            seg.retrans = true;
            seg.ever_retrans = true;
            self.lost_resent += 1;
            self.retrans_out += 1;
            self.stats.retransmits += 1;
            self.undo_retrans = self.undo_retrans.max(0) + 1;
            if self.retrans_stamp.is_none() {
                self.retrans_stamp = Some(ts_ms(now));
            }
            if i == 0 {
                // The head resent: its timer starts again (tcp_xmit_retransmit_queue).
                self.rto_at = Some(now + self.rto_us());
            }
            self.una + i as u64
        } else {
            if self.nxt - self.una >= rwnd_segs() {
                return None;
            }
            self.segs.push_back(Seg::default());
            self.nxt += 1;
            self.nxt - 1
        };
        let (delivered, delivered_at, first_tx) =
            (self.delivered, self.delivered_at, self.first_tx);
        let seg = &mut self.segs[(s - self.una) as usize];
        seg.sent = now;
        seg.delivered = delivered;
        seg.delivered_at = delivered_at;
        seg.first_tx = first_tx;
        self.stats.segments += 1;
        if self.state == State::Recovery {
            self.prr_out += 1;
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto_us());
        }
        if self.cc.paced() {
            let rate = self.cc.pacing_rate(self).max(1.0); // segments per second
            let start = self.next_send_us.max(now.saturating_sub(1_000));
            self.next_send_us = start + (1e6 / rate) as u64;
        }
        Some(s)
    }

    fn rtt_sample(&mut self, now: u64, rtt: u64) {
        let rtt = rtt.max(1);
        self.latest_rtt_us = Some(rtt);
        if !self.have_rtt {
            self.have_rtt = true;
            self.srtt_us = rtt;
            self.rttvar_us = rtt / 2;
        } else {
            self.rttvar_us = (3 * self.rttvar_us + self.srtt_us.abs_diff(rtt)) / 4;
            self.srtt_us = (7 * self.srtt_us + rtt) / 8;
        }
        if rtt <= self.min_rtt_us || now - self.min_rtt_at > 10_000_000 {
            self.min_rtt_us = rtt;
            self.min_rtt_at = now;
        }
        let (cwnd, ss) = (self.cwnd, self.cwnd < self.ssthresh);
        if let CcState::Cubic(c) = &mut self.cc {
            if c.on_rtt(now, rtt, cwnd, ss) {
                self.ssthresh = self.cwnd;
            }
        }
    }

    /// Processes an ACK: cumulative `ack`, SACK blocks (the first may be a DSACK), `tsecr`.
    fn on_ack(&mut self, now: u64, ack: u64, sacks: &[(u64, u64)], tsecr: u32) {
        if ack < self.una || ack > self.nxt {
            return;
        }
        let prior_in_flight = self.in_flight();
        self.latest_rtt_us = None;
        let mut newly = 0u64; // segments newly delivered (cum or SACK)
        let mut rtt: Option<u64> = None;
        let mut rs: Option<Seg> = None;
        // DSACK: the first block below the cumulative ACK, or inside another block.
        let mut sacks = sacks;
        if let Some(&(a, b)) = sacks.first() {
            let inside = sacks.iter().skip(1).any(|&(x, y)| x <= a && b <= y);
            if b <= ack || inside {
                self.stats.spurious += 1;
                if self.undo_marker && self.undo_retrans > 0 {
                    self.undo_retrans -= 1;
                }
                // Widen RACK's window by a step, at most once a round trip.
                if self.delivered >= self.rack_dsack_delivered {
                    self.reo_wnd_steps = (self.reo_wnd_steps + 1).min(0xff);
                    self.rack_dsack_delivered = self.delivered + (self.nxt - self.una);
                    self.reo_wnd_persist = 16;
                }
                sacks = &sacks[1..];
            }
        }
        // SACKed segments.
        for &(a, b) in sacks {
            for s in a.max(self.una).max(ack)..b.min(self.nxt) {
                let i = (s - self.una) as usize;
                let g = self.segs[i];
                if g.sacked {
                    continue;
                }
                self.mark_delivered(now, i, &mut rtt, &mut rs);
                let seg = &mut self.segs[i];
                seg.sacked = true;
                self.sacked_out += 1;
                if g.lost {
                    seg.lost = false;
                    self.lost_out -= 1;
                }
                if g.retrans {
                    seg.retrans = false;
                    self.retrans_out -= 1;
                }
                if g.lost && g.retrans {
                    self.lost_resent -= 1;
                }
                newly += 1;
                if s + 1 < self.fack && !g.ever_retrans {
                    // Filled a hole below a later SACK without a retransmission: reordering.
                    self.reord_seen = true;
                    self.reordering = self.reordering.max(self.fack - s).min(MAX_REORDERING);
                }
                self.fack = self.fack.max(s + 1);
            }
        }
        // Cumulative ACK.
        let acked_new = ack > self.una;
        let prior_fack = self.fack;
        while self.una < ack {
            let g = self.segs[0];
            if !g.sacked {
                self.mark_delivered(now, 0, &mut rtt, &mut rs);
                newly += 1;
                if self.una + 1 < prior_fack && !g.ever_retrans {
                    // A hole below a SACKed segment filled by the original: reordering.
                    self.reord_seen = true;
                    let d = prior_fack - self.una;
                    self.reordering = self.reordering.max(d).min(MAX_REORDERING);
                }
            } else {
                self.sacked_out -= 1;
            }
            if g.lost {
                self.lost_out -= 1;
            }
            if g.retrans {
                self.retrans_out -= 1;
            }
            if g.lost && g.retrans {
                self.lost_resent -= 1;
            }
            self.segs.pop_front();
            self.una += 1;
        }
        self.fack = self.fack.max(self.una);
        if let Some(r) = rtt {
            self.rtt_sample(now, r);
        }
        if acked_new {
            self.backoff = 0;
            self.rto_at = (self.nxt > self.una).then(|| now + self.rto_us());
        }
        // Delivery-rate sample from the most recently sent segment delivered.
        let mut sample = None;
        if let Some(p) = rs {
            self.first_tx = p.sent;
            let send = p.sent.saturating_sub(p.first_tx);
            let ackd = now.saturating_sub(p.delivered_at);
            let iv = send.max(ackd);
            let d = self.delivered - p.delivered;
            if iv >= self.min_rtt_us.min(1_000_000) && iv > 0 {
                sample = Some((d as f64 * 1e6 / iv as f64, p.delivered));
            }
        }
        if newly > 0 {
            self.delivered_at = now;
        }
        // Undo a reduction shown spurious: every retransmission DSACKed, or (in recovery) the
        // ACK of new data echoes a timestamp sent before the first retransmission: the
        // original arrived (Eifel).
        let delayed = self.state != State::Open
            && acked_new
            && tsecr != 0
            && self.retrans_stamp.is_some_and(|r| tsecr < r);
        if self.undo_marker && delayed {
            // A hole filled by the delayed original (tcp_try_undo_partial / _loss): undo
            // once no resend is left in flight, and the losses marked were not.
            self.reord_seen = true;
            if self.retrans_out == 0 || self.state == State::Loss {
                self.undo(true);
            }
        } else if self.undo_marker && self.undo_retrans == 0 {
            self.undo(false); // every resend was a duplicate (tcp_try_undo_dsack)
        }
        self.rack_detect(now);
        match self.state {
            State::Open if self.lost_out > 0 => self.enter_recovery(),
            State::Recovery | State::Loss if self.una >= self.high_seq => {
                self.cwnd =
                    self.cc
                        .recovery_done(self.ssthresh, self.cwnd, self.state == State::Loss);
                self.state = State::Open;
                self.retrans_stamp = None;
                if self.lost_out > 0 {
                    self.enter_recovery();
                }
            }
            _ => {}
        }
        if self.state == State::Recovery {
            self.prr(newly, prior_in_flight);
        }
        let cc_state = self.state;
        let in_flight = self.in_flight();
        let mut cc = std::mem::replace(&mut self.cc, CcState::None);
        let ack = AckEvent {
            now,
            acked: newly,
            state: cc_state,
            in_flight,
            sample,
        };
        cc.on_ack(self, &ack);
        self.cc = cc;
        self.cwnd = self.cwnd.max(1.0);
    }

    fn mark_delivered(&mut self, now: u64, i: usize, rtt: &mut Option<u64>, rs: &mut Option<Seg>) {
        let g = self.segs[i];
        self.delivered += 1;
        if !g.ever_retrans {
            *rtt = Some(rtt.map_or(now - g.sent, |r: u64| r.min(now - g.sent)));
        }
        // RACK: the most recently sent segment delivered (an ambiguous retransmission only
        // if its RTT is plausible).
        let r = now - g.sent;
        let key = (g.sent, self.una + i as u64);
        if (!g.ever_retrans || r >= self.min_rtt_us) && key > self.rack_key {
            self.rack_key = key;
            self.rack_rtt = r;
        }
        if rs.map_or(true, |p| g.delivered >= p.delivered) {
            *rs = Some(g);
        }
    }

    fn reo_wnd(&self) -> u64 {
        if !self.reord_seen && (self.state != State::Open || self.sacked_out >= self.reordering) {
            return 0;
        }
        (self.min_rtt_us / 4 * self.reo_wnd_steps).min(self.srtt_us)
    }

    /// RACK: a segment sent before the most recently delivered one (by send time, then
    /// sequence) is lost once it is older than that one's RTT plus the reordering window.
    fn rack_detect(&mut self, now: u64) {
        self.rack_timer = None;
        if self.rack_key == (0, 0) {
            return;
        }
        let wnd = self.reo_wnd();
        for i in 0..self.segs.len() {
            let g = self.segs[i];
            if g.sacked || (g.lost && !g.retrans) {
                continue; // delivered, or lost and not resent yet
            }
            if (g.sent, self.una + i as u64) >= self.rack_key {
                if !g.retrans {
                    break; // later first transmissions were all sent later still
                }
                continue;
            }
            let deadline = g.sent + self.rack_rtt + wnd;
            if now >= deadline {
                // As tcp_mark_skb_lost: a resend lost again is due once more; a segment not
                // marked (an undo may have unmarked a resent one) is marked.
                if g.lost {
                    self.segs[i].retrans = false;
                    self.retrans_out -= 1;
                    self.lost_resent -= 1;
                } else {
                    self.segs[i].lost = true;
                    self.lost_out += 1;
                    if g.retrans {
                        self.lost_resent += 1;
                    }
                }
            } else {
                self.rack_timer = Some(self.rack_timer.map_or(deadline, |t| t.min(deadline)));
            }
        }
    }

    fn enter_recovery(&mut self) {
        self.stats.recoveries += 1;
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
        } else {
            self.reo_wnd_steps = 1;
        }
        self.state = State::Recovery;
        self.high_seq = self.nxt;
        self.prior_cwnd = self.cwnd;
        self.prior_ssthresh = self.ssthresh;
        self.ssthresh = self.cc.ssthresh(self.cwnd);
        self.undo_marker = true;
        self.undo_retrans = -1;
        self.retrans_stamp = None;
        self.prr_delivered = 0;
        self.prr_out = 0;
        let (cwnd, in_flight, delivered) = (self.cwnd, self.in_flight(), self.delivered);
        if let Some(c) = self.cc.on_recovery(cwnd, in_flight, delivered) {
            self.cwnd = c;
        }
    }

    /// Proportional rate reduction (RFC 6937, as Linux tcp_cwnd_reduction).
    fn prr(&mut self, newly: u64, _prior_in_flight: u64) {
        if matches!(self.cc, CcState::Bbr(_)) {
            return; // BBR sets its own window in recovery
        }
        self.prr_delivered += newly;
        let in_flight = self.in_flight() as f64;
        let delta = self.ssthresh - in_flight;
        let sndcnt = if delta < 0.0 {
            let d = (self.prr_delivered as f64 * self.ssthresh / self.prior_cwnd.max(1.0)).ceil();
            d - self.prr_out as f64
        } else {
            let x = (self.prr_delivered as f64 - self.prr_out as f64).max(newly as f64) + 1.0;
            delta.min(x)
        };
        // A fast retransmit goes at once on entering recovery.
        let sndcnt = sndcnt.max(if self.prr_out == 0 { 1.0 } else { 0.0 });
        self.cwnd = in_flight + sndcnt.max(0.0);
    }

    fn undo(&mut self, unmark: bool) {
        self.stats.undos += 1;
        self.undo_marker = false;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
        self.ssthresh = self.ssthresh.max(self.prior_ssthresh);
        if unmark {
            // What was marked lost was only late.
            for g in self.segs.iter_mut() {
                g.lost = false;
            }
            self.lost_out = 0;
            self.lost_resent = 0;
        }
        if let CcState::Bbr(b) = &mut self.cc {
            b.packet_conservation = false;
        }
        self.state = State::Open;
        self.retrans_stamp = None;
    }

    fn on_timer(&mut self, now: u64) {
        if self.rack_timer.is_some_and(|t| t <= now) {
            self.rack_detect(now);
            if self.state == State::Open && self.lost_out > 0 {
                self.enter_recovery();
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.on_rto(now);
        }
    }

    fn on_rto(&mut self, now: u64) {
        self.stats.rtos += 1;
        // A first timeout in Open (or Recovery that had already cut the window keeps it).
        if self.state == State::Open {
            self.prior_cwnd = self.cwnd;
            self.prior_ssthresh = self.ssthresh;
            self.ssthresh = self.cc.ssthresh(self.cwnd);
            self.undo_marker = true;
            self.undo_retrans = -1;
        }
        self.cc.on_rto(self.cwnd);
        self.state = State::Loss;
        self.high_seq = self.nxt;
        self.cwnd = 1.0;
        for g in self.segs.iter_mut() {
            if !g.sacked {
                if g.retrans {
                    g.retrans = false;
                }
                g.lost = true;
            }
        }
        self.retrans_out = 0;
        self.lost_resent = 0;
        self.lost_out = self.segs.iter().filter(|g| g.lost).count() as u64;
        self.backoff += 1;
        self.rto_at = Some(now + self.rto_us());
        self.next_send_us = now;
    }
}

fn rwnd_segs() -> u64 {
    // In segments of at least 1000 bytes: the window only matters on very long paths.
    RWND_BYTES / 1000
}

// ------------------------------------------------------------------------------- congestion control

/// What an ACK tells the congestion control: when, how many segments it newly acked, the
/// sender's state and flight after it, and the delivery-rate sample (rate, prior delivered).
#[derive(Clone, Copy)]
struct AckEvent {
    now: u64,
    acked: u64,
    state: State,
    in_flight: u64,
    sample: Option<(f64, u64)>,
}

#[derive(Debug)]
enum CcState {
    None,
    Reno,
    Cubic(Cubic),
    Bbr(Box<Bbr>),
}

impl CcState {
    fn new(cc: Cc, now: u64) -> CcState {
        match cc {
            Cc::Reno => CcState::Reno,
            Cc::Cubic => CcState::Cubic(Cubic::new(now)),
            Cc::Bbr => CcState::Bbr(Box::new(Bbr::new(now))),
        }
    }

    fn paced(&self) -> bool {
        matches!(self, CcState::Bbr(_))
    }

    fn kind(&self) -> Cc {
        match self {
            CcState::Cubic(_) => Cc::Cubic,
            CcState::Bbr(_) => Cc::Bbr,
            _ => Cc::Reno,
        }
    }

    fn pacing_rate(&self, s: &Sender) -> f64 {
        match self {
            CcState::Bbr(b) => b.pacing_rate(s),
            _ => f64::INFINITY,
        }
    }

    fn ssthresh(&mut self, cwnd: f64) -> f64 {
        match self {
            CcState::Reno | CcState::None => (cwnd / 2.0).max(MIN_CWND),
            CcState::Cubic(c) => c.ssthresh(cwnd),
            CcState::Bbr(_) => f64::INFINITY,
        }
    }

    /// The window when recovery (or, `after_loss`, the timeout's recovery) ends.
    fn recovery_done(&mut self, ssthresh: f64, cwnd: f64, after_loss: bool) -> f64 {
        match self {
            CcState::Bbr(b) => b.recovery_done(cwnd),
            _ if after_loss => cwnd,
            _ => ssthresh.max(MIN_CWND),
        }
    }

    /// Entering recovery: BBR sets its window (packet conservation).
    fn on_recovery(&mut self, cwnd: f64, in_flight: u64, delivered: u64) -> Option<f64> {
        match self {
            CcState::Bbr(b) => Some(b.on_recovery(cwnd, in_flight, delivered)),
            _ => None,
        }
    }

    fn on_rto(&mut self, cwnd: f64) {
        match self {
            CcState::Cubic(c) => c.epoch = None,
            CcState::Bbr(b) => b.on_rto(cwnd),
            _ => {}
        }
    }

    fn on_ack(&mut self, s: &mut Sender, ack: &AckEvent) {
        let AckEvent {
            now, acked, state, ..
        } = *ack;
        match self {
            CcState::None => {}
            CcState::Reno => {
                if matches!(state, State::Open | State::Loss) && acked > 0 {
                    reno_increase(s, acked as f64);
                }
            }
            CcState::Cubic(c) => {
                if matches!(state, State::Open | State::Loss) && acked > 0 {
                    c.on_ack(s, now, acked as f64);
                }
            }
            CcState::Bbr(b) => b.on_ack(s, ack),
        }
    }
}

/// Slow start up to ssthresh, then one segment per window; returns the acked count left over.
fn reno_increase(s: &mut Sender, acked: f64) {
    let acked = slow_start(s, acked);
    if acked > 0.0 {
        s.cwnd += acked / s.cwnd;
    }
}

fn slow_start(s: &mut Sender, acked: f64) -> f64 {
    if s.cwnd >= s.ssthresh {
        return acked;
    }
    let new = (s.cwnd + acked).min(s.ssthresh);
    let used = new - s.cwnd;
    s.cwnd = new;
    acked - used
}

/// CUBIC as Linux (beta 0.7, C 0.4, fast convergence, the TCP-friendly region, HyStart).
#[derive(Debug)]
struct Cubic {
    last_max: f64,
    epoch: Option<u64>,
    k: f64,
    origin: f64,
    w_est: f64,
    // HyStart
    round_end: u64,
    round_start: u64,
    last_ack: u64,
    curr_rtt: u64,
    samples: u32,
    delay_min: u64,
    found: bool,
}

const CUBIC_BETA: f64 = 717.0 / 1024.0;
const CUBIC_C: f64 = 0.4;

impl Cubic {
    fn new(now: u64) -> Cubic {
        Cubic {
            last_max: 0.0,
            epoch: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            round_end: 0,
            round_start: now,
            last_ack: now,
            curr_rtt: u64::MAX,
            samples: 0,
            delay_min: u64::MAX,
            found: false,
        }
    }

    fn ssthresh(&mut self, cwnd: f64) -> f64 {
        self.epoch = None;
        self.last_max = if cwnd < self.last_max {
            cwnd * (1.0 + CUBIC_BETA) / 2.0
        } else {
            cwnd
        };
        (cwnd * CUBIC_BETA).max(MIN_CWND)
    }

    /// An RTT sample: HyStart's exits from slow start (true: leave it now, as Linux sets
    /// ssthresh to the window). ACK train: ACKs no more than 2 ms apart for half the minimum
    /// RTT since the round began; delay: the round's minimum RTT, after 8 samples, above the
    /// path's minimum by an eighth of it (4 to 16 ms).
    fn on_rtt(&mut self, now: u64, rtt: u64, cwnd: f64, slow_start: bool) -> bool {
        self.delay_min = self.delay_min.min(rtt);
        if self.found || !slow_start || cwnd < 16.0 {
            return false;
        }
        if now - self.last_ack <= 2_000 {
            self.last_ack = now;
            if now - self.round_start > self.delay_min / 2 {
                self.found = true;
            }
        }
        self.curr_rtt = self.curr_rtt.min(rtt);
        if self.samples < 8 {
            self.samples += 1;
        } else if self.curr_rtt > self.delay_min + (self.delay_min / 8).clamp(4_000, 16_000) {
            self.found = true;
        }
        self.found
    }

    fn on_ack(&mut self, s: &mut Sender, now: u64, acked: f64) {
        if s.cwnd < s.ssthresh {
            self.new_round(s, now);
            let left = slow_start(s, acked);
            if left <= 0.0 {
                return;
            }
            self.increase(s, now, left);
        } else {
            self.increase(s, now, acked);
        }
    }

    fn new_round(&mut self, s: &Sender, now: u64) {
        if s.una > self.round_end {
            self.round_end = s.nxt;
            self.round_start = now;
            self.last_ack = now;
            self.curr_rtt = u64::MAX;
            self.samples = 0;
        }
    }

    fn increase(&mut self, s: &mut Sender, now: u64, acked: f64) {
        let cwnd = s.cwnd;
        let epoch = *self.epoch.get_or_insert_with(|| {
            if self.last_max <= cwnd {
                self.k = 0.0;
                self.origin = cwnd;
            } else {
                self.k = ((self.last_max - cwnd) / CUBIC_C).cbrt();
                self.origin = self.last_max;
            }
            self.w_est = cwnd;
            now
        });
        let dmin = if self.delay_min == u64::MAX {
            0
        } else {
            self.delay_min
        };
        let t = (now - epoch + dmin) as f64 / 1e6;
        let target = self.origin + CUBIC_C * (t - self.k).powi(3);
        let mut cnt = if target > cwnd {
            cwnd / (target - cwnd)
        } else {
            100.0 * cwnd
        };
        if self.last_max == 0.0 && cnt > 20.0 {
            cnt = 20.0;
        }
        // TCP-friendly region: at least what Reno would have grown.
        self.w_est += 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA) * acked / cwnd;
        if self.w_est > cwnd {
            cnt = cnt.min(cwnd / (self.w_est - cwnd));
        }
        s.cwnd += acked / cnt.max(2.0);
    }
}

/// BBR v1 as Linux tcp_bbr.c, in segments.
#[derive(Debug)]
struct Bbr {
    mode: BbrMode,
    /// Windowed max of delivery rate (segments/s) over 10 rounds (Kathleen Nichols').
    bw: MaxFilter<f64>,
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    full_bw: f64,
    full_bw_cnt: u32,
    full_bw_reached: bool,
    cycle_idx: usize,
    cycle_stamp: u64,
    min_rtt: u64,
    min_rtt_stamp: u64,
    probe_rtt_done: Option<u64>,
    probe_rtt_round_done: bool,
    prior_cwnd: f64,
    packet_conservation: bool,
    // ACK aggregation (Linux bbr_update_ack_aggregation): the windowed max of segments
    // delivered beyond what the bandwidth estimate expected over an epoch.
    extra_acked: [f64; 2],
    extra_idx: usize,
    extra_rounds: u32,
    epoch_at: u64,
    epoch_acked: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BbrMode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

const BBR_HIGH_GAIN: f64 = 2.885;
const BBR_CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const BBR_BW_ROUNDS: u64 = 10;

impl Bbr {
    fn new(now: u64) -> Bbr {
        Bbr {
            mode: BbrMode::Startup,
            bw: MaxFilter::default(),
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            full_bw: 0.0,
            full_bw_cnt: 0,
            full_bw_reached: false,
            cycle_idx: 0,
            cycle_stamp: now,
            min_rtt: u64::MAX,
            min_rtt_stamp: now,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0.0,
            packet_conservation: false,
            extra_acked: [0.0; 2],
            extra_idx: 0,
            extra_rounds: 0,
            epoch_at: now,
            epoch_acked: 0.0,
        }
    }

    fn btlbw(&self) -> f64 {
        self.bw.get()
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            BbrMode::Startup => BBR_HIGH_GAIN,
            BbrMode::Drain => 1.0 / BBR_HIGH_GAIN,
            BbrMode::ProbeBw => BBR_CYCLE[self.cycle_idx],
            BbrMode::ProbeRtt => 1.0,
        }
    }

    fn pacing_rate(&self, s: &Sender) -> f64 {
        let bw = self.btlbw();
        if bw <= 0.0 {
            let rtt = if s.have_rtt { s.srtt_us } else { 1_000 };
            return BBR_HIGH_GAIN * s.cwnd * 1e6 / rtt.max(1) as f64;
        }
        self.pacing_gain() * bw * 0.99
    }

    fn bdp(&self, gain: f64) -> f64 {
        if self.min_rtt == u64::MAX || self.btlbw() <= 0.0 {
            return INIT_CWND;
        }
        gain * self.btlbw() * self.min_rtt as f64 / 1e6
    }

    fn update_bw(&mut self, v: f64) {
        self.bw.update(self.round, BBR_BW_ROUNDS, v);
    }

    /// Entering recovery: remember the window, then one segment out per segment delivered
    /// for a round (packet conservation).
    fn ack_aggregation(&mut self, s: &Sender, now: u64, acked: u64) {
        if acked == 0 {
            return;
        }
        if self.round_start {
            self.extra_rounds += 1;
            if self.extra_rounds >= 5 {
                self.extra_rounds = 0;
                self.extra_idx = 1 - self.extra_idx;
                self.extra_acked[self.extra_idx] = 0.0;
            }
        }
        let epoch = now.saturating_sub(self.epoch_at) as f64 / 1e6;
        let mut expected = self.btlbw() * epoch;
        if self.epoch_acked <= expected {
            self.epoch_acked = 0.0;
            self.epoch_at = now;
            expected = 0.0;
        }
        self.epoch_acked += acked as f64;
        let extra = (self.epoch_acked - expected).min(s.cwnd);
        let e = &mut self.extra_acked[self.extra_idx];
        *e = e.max(extra);
    }

    fn on_recovery(&mut self, cwnd: f64, in_flight: u64, delivered: u64) -> f64 {
        self.save_cwnd(cwnd);
        self.packet_conservation = true;
        self.next_round_delivered = delivered; // the conservation round starts now
        (in_flight as f64 + 1.0).max(4.0)
    }

    fn recovery_done(&mut self, cwnd: f64) -> f64 {
        self.packet_conservation = false;
        cwnd.max(self.prior_cwnd)
    }

    fn on_rto(&mut self, cwnd: f64) {
        self.save_cwnd(cwnd);
        self.full_bw = 0.0;
        self.packet_conservation = false;
    }

    fn save_cwnd(&mut self, cwnd: f64) {
        self.prior_cwnd = if self.mode == BbrMode::ProbeRtt {
            self.prior_cwnd.max(cwnd)
        } else {
            cwnd
        };
    }

    fn on_ack(&mut self, s: &mut Sender, ack: &AckEvent) {
        let AckEvent {
            now,
            acked,
            state,
            in_flight,
            sample,
        } = *ack;
        // Rounds.
        self.round_start = false;
        if let Some((_, prior_delivered)) = sample {
            if prior_delivered >= self.next_round_delivered {
                self.next_round_delivered = s.delivered;
                self.round += 1;
                self.round_start = true;
                self.packet_conservation = false;
            }
        }
        if let Some((rate, _)) = sample {
            self.update_bw(rate); // bulk senders are never application-limited
        }
        self.ack_aggregation(s, now, acked);
        // Cycle through the probe-bandwidth gains, one min RTT each.
        if self.mode == BbrMode::ProbeBw {
            let elapsed = now - self.cycle_stamp > self.min_rtt;
            let g = self.pacing_gain();
            let next = if g > 1.0 {
                elapsed && (in_flight as f64 >= self.bdp(g) || state != State::Open)
            } else if g < 1.0 {
                elapsed || in_flight as f64 <= self.bdp(1.0)
            } else {
                elapsed
            };
            if next {
                self.cycle_idx = (self.cycle_idx + 1) % BBR_CYCLE.len();
                self.cycle_stamp = now;
            }
        }
        // Startup ends when the bandwidth stopped growing by 25 % for three rounds.
        if !self.full_bw_reached && self.round_start && sample.is_some() {
            if self.btlbw() >= self.full_bw * 1.25 {
                self.full_bw = self.btlbw();
                self.full_bw_cnt = 0;
            } else {
                self.full_bw_cnt += 1;
                if self.full_bw_cnt >= 3 {
                    self.full_bw_reached = true;
                }
            }
        }
        if self.mode == BbrMode::Startup && self.full_bw_reached {
            self.mode = BbrMode::Drain;
        }
        if self.mode == BbrMode::Drain && in_flight as f64 <= self.bdp(1.0) {
            self.mode = BbrMode::ProbeBw;
            self.cycle_idx = 2; // Linux picks a random phase other than the drain one
            self.cycle_stamp = now;
        }
        // Min RTT and probe-RTT.
        let expired = now - self.min_rtt_stamp > 10_000_000;
        if let Some(r) = s.latest_rtt_us {
            if r <= self.min_rtt || expired {
                self.min_rtt = r;
                self.min_rtt_stamp = now;
            }
        }
        if expired && self.mode != BbrMode::ProbeRtt {
            self.mode = BbrMode::ProbeRtt;
            self.prior_cwnd = self.prior_cwnd.max(s.cwnd);
            self.probe_rtt_done = None;
        }
        if self.mode == BbrMode::ProbeRtt {
            if self.probe_rtt_done.is_none() && in_flight <= 4 {
                self.probe_rtt_done = Some(now + 200_000);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = s.delivered;
            } else if let Some(done) = self.probe_rtt_done {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now >= done {
                    self.min_rtt_stamp = now;
                    s.cwnd = s.cwnd.max(self.prior_cwnd);
                    self.mode = if self.full_bw_reached {
                        BbrMode::ProbeBw
                    } else {
                        BbrMode::Startup
                    };
                    self.cycle_stamp = now;
                }
            }
        }
        // The window.
        let gain = if self.mode == BbrMode::ProbeBw {
            2.0
        } else {
            BBR_HIGH_GAIN
        };
        // The window: gain x BDP, plus the ACK aggregation seen lately (at most 100 ms at the
        // estimate), plus the quantization budget (3 TSO bursts of ~1 ms, 2 more in the
        // probe-up phase).
        let aggr = if self.full_bw_reached {
            self.extra_acked[0]
                .max(self.extra_acked[1])
                .min(self.btlbw() * 0.1)
        } else {
            0.0
        };
        let tso = (self.pacing_rate(s) / 1000.0).clamp(2.0, 64.0).floor();
        let probe = if self.mode == BbrMode::ProbeBw && self.cycle_idx == 0 {
            2.0
        } else {
            0.0
        };
        let target = self.bdp(gain) + aggr + 3.0 * tso + probe;
        let mut cwnd = s.cwnd;
        let acked = acked as f64;
        if self.packet_conservation {
            cwnd = cwnd.max(in_flight as f64 + acked);
        } else if self.full_bw_reached {
            cwnd = (cwnd + acked).min(target);
        } else if cwnd < target || s.delivered < 10 {
            cwnd += acked;
        }
        cwnd = cwnd.max(4.0);
        if self.mode == BbrMode::ProbeRtt {
            cwnd = cwnd.min(4.0);
        }
        s.cwnd = cwnd;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One flow over an ideal bottleneck: `rate` segments/s, `owd` one-way each way, a
    /// drop-tail queue of `queue` segments, and the receiver's ACKs return without loss.
    /// Segments listed in `drop` are lost on their first transmission. Returns the sender
    /// and the receiver after `secs`.
    fn run(
        cc: Cc,
        rate: f64,
        owd: u64,
        queue: usize,
        secs: u64,
        drop: &[u64],
    ) -> (Sender, Receiver) {
        let mut snd = Sender::new(cc, 0);
        let mut rcv = Receiver::new(0, 1000);
        let mut busy = 0u64; // bottleneck free at
        let mut q: VecDeque<u64> = VecDeque::new(); // departure times of queued segments
        let mut data: Vec<(u64, u64, u32)> = Vec::new(); // (arrival, seg, tsval)
        let mut acks: Vec<(u64, AckFields)> = Vec::new();
        let mut dropped = std::collections::HashSet::new();
        let tx = (1e6 / rate) as u64;
        let mut now = 0u64;
        let end = secs * 1_000_000;
        while now < end {
            // Deliveries due.
            data.sort_by_key(|d| std::cmp::Reverse(d.0));
            while data.last().is_some_and(|d| d.0 <= now) {
                let (_, s, ts) = data.pop().unwrap();
                if rcv.on_data(now, s, ts) {
                    acks.push((now + owd, rcv.take_ack()));
                }
            }
            if rcv.delack_at.is_some_and(|t| t <= now) {
                acks.push((now + owd, rcv.take_ack()));
            }
            acks.sort_by_key(|a| std::cmp::Reverse(a.0));
            while acks.last().is_some_and(|a| a.0 <= now) {
                let (_, (ack, tsecr, blocks, n)) = acks.pop().unwrap();
                snd.on_ack(now, ack, &blocks[..n], tsecr);
            }
            snd.on_timer(now);
            while let Some(s) = snd.next_segment(now) {
                while q.front().is_some_and(|&d| d <= now) {
                    q.pop_front();
                }
                if q.len() >= queue {
                    continue; // tail drop
                }
                if drop.contains(&s) && dropped.insert(s) {
                    continue;
                }
                busy = busy.max(now) + tx;
                q.push_back(busy);
                data.push((busy + owd, s, ts_ms(now)));
            }
            now += 100;
        }
        (snd, rcv)
    }

    fn goodput_share(r: &Receiver, rate: f64, secs: u64) -> f64 {
        r.nxt as f64 / (rate * secs as f64)
    }

    #[test]
    fn each_cc_fills_a_clean_bottleneck() {
        for cc in [Cc::Cubic, Cc::Reno, Cc::Bbr] {
            // 10 Mbit/s of 1000-byte segments, 40 ms RTT, one BDP of queue.
            let (s, r) = run(cc, 1250.0, 20_000, 50, 20, &[]);
            let share = goodput_share(&r, 1250.0, 20);
            assert!(share > 0.9, "{cc:?}: {share:.3} of the rate, {:?}", s.stats);
            assert!(s.srtt_us >= 40_000, "{cc:?}: srtt {}", s.srtt_us);
        }
    }

    #[test]
    fn a_lost_segment_is_recovered_by_sack_without_a_timeout() {
        let (s, r) = run(Cc::Cubic, 1250.0, 20_000, 200, 5, &[300]);
        assert_eq!(s.stats.rtos, 0, "{:?}", s.stats);
        assert_eq!(s.stats.recoveries, 1, "{:?}", s.stats);
        assert!(s.stats.retransmits >= 1);
        assert!(r.nxt > 4000, "{}", r.nxt);
        // CUBIC cut the window by 30 %, not to 1.
        assert!(
            s.ssthresh > 10.0 && s.ssthresh.is_finite(),
            "{}",
            s.ssthresh
        );
    }

    #[test]
    fn receiver_reports_holes_as_sack_blocks_most_recent_first_and_dsacks_duplicates() {
        let mut r = Receiver::new(0, 1000);
        r.quick = 0; // past the first quick ACKs
        assert!(!r.on_data(0, 0, 1)); // delayed
        assert!(r.on_data(0, 1, 1)); // every second segment
        assert!(r.on_data(0, 3, 2)); // a hole at 2: at once
        assert!(r.on_data(0, 6, 3));
        let (ack, tsecr, b, n) = r.take_ack();
        assert_eq!((ack, tsecr), (2, 1));
        assert_eq!(&b[..n], &[(6, 7), (3, 4)]);
        assert!(r.on_data(0, 1, 4)); // duplicate
        let (_, _, b, n) = r.take_ack();
        assert_eq!(&b[..n], &[(1, 2), (6, 7), (3, 4)]);
        assert!(r.on_data(0, 2, 5)); // fills the hole: 2..4 delivered
        let (ack, tsecr, b, n) = r.take_ack();
        assert_eq!((ack, tsecr), (4, 5));
        assert_eq!(&b[..n], &[(6, 7)]);
    }

    #[test]
    fn reordering_is_learnt_and_a_spurious_recovery_undone() {
        let t0 = 1_000_000;
        let mut s = Sender::new(Cc::Cubic, t0);
        s.cwnd = 20.0;
        s.ssthresh = 20.0;
        for t in 0..20 {
            assert_eq!(s.next_segment(t0 + t * 10), Some(t));
        }
        // Segment 0 is late: 1..=5 SACKed (RACK marks 0 lost once 3 are SACKed and its RTT
        // plus a zero window passed).
        s.on_ack(t0 + 50_000, 0, &[(1, 6)], ts_ms(t0));
        assert_eq!(s.state, State::Recovery);
        assert_eq!(s.next_segment(t0 + 50_000), Some(0));
        // The original arrives: its ACK echoes its own timestamp, from before the resend, and
        // the receiver reports the resend as a duplicate.
        s.on_ack(t0 + 60_000, 6, &[(0, 1)], ts_ms(t0));
        assert!(s.reord_seen);
        assert_eq!(s.stats.spurious, 1);
        assert_eq!(s.stats.undos, 1);
        assert_eq!(s.state, State::Open);
        assert!(s.cwnd >= 20.0, "{}", s.cwnd);
    }

    /// A Cubic sender with ten segments out, the first two acked, then its RTO fired: in Loss.
    fn timed_out() -> (Sender, u64) {
        let mut s = Sender::new(Cc::Cubic, 0);
        for t in 0..10 {
            s.next_segment(t);
        }
        s.on_ack(40_000, 2, &[], 0);
        let rto = s.rto_at.unwrap();
        s.on_timer(rto);
        assert_eq!(s.state, State::Loss);
        (s, rto)
    }

    #[test]
    fn a_stall_longer_than_the_rto_backs_off_and_recovers() {
        let (mut s, rto) = timed_out();
        assert_eq!(s.cwnd, 1.0);
        assert_eq!(s.next_segment(rto), Some(2));
        assert_eq!(
            s.next_segment(rto),
            None,
            "one segment in flight after an RTO"
        );
        let second = s.rto_at.unwrap();
        assert!(
            second - rto >= 2 * MIN_RTO_US - 1,
            "backed off: {}",
            second - rto
        );
        // The originals arrive after all (timestamps echo a time before the resend): undo.
        s.on_ack(rto + 10_000, 10, &[], 1);
        assert_eq!(s.stats.undos, 1);
        assert_eq!(s.state, State::Open);
    }

    /// A resent segment counts once in flight, as in Linux (it keeps its lost mark). Counted
    /// twice (the mark cleared at the resend and `retrans_out` added), a flow that timed out
    /// thought its window full with half of it in flight.
    #[test]
    fn a_resent_segment_counts_once_in_flight() {
        let (mut s, rto) = timed_out();
        assert_eq!(s.in_flight(), 0, "all eight outstanding marked lost");
        assert_eq!(s.next_segment(rto), Some(2));
        assert_eq!(s.in_flight(), 1);
        // A window of two: a second resend goes at once, then the window is full.
        s.cwnd = 2.0;
        assert_eq!(s.next_segment(rto), Some(3));
        assert_eq!(s.in_flight(), 2);
        assert_eq!(s.next_segment(rto), None);
        // The first resend acked: the second still in flight, six due.
        s.on_ack(rto + 50_000, 3, &[], 0);
        assert_eq!((s.in_flight(), s.lost_due()), (1, 6));
    }

    /// A resend judged lost again by RACK is due once more and leaves the flight; a segment
    /// resent and then unmarked by an undo counts twice (original and resend may both arrive).
    #[test]
    fn a_resend_lost_again_is_due_again_and_an_undone_one_counts_twice() {
        let (mut s, rto) = timed_out();
        assert_eq!(s.next_segment(rto), Some(2));
        // Segment 4's resend is not sent yet; segment 3 (resent later) is SACKed: 2's resend
        // is older than the most recently delivered one.
        s.cwnd = 2.0;
        assert_eq!(s.next_segment(rto + 1_000), Some(3));
        s.on_ack(rto + 400_000, 2, &[(3, 4)], 0);
        assert!(s.segs[0].lost && !s.segs[0].retrans, "{:?}", s.segs[0]);
        assert_eq!((s.lost_due(), s.retrans_out), (7, 0));
        // Three resends (2, 4, 5), then segment 2's original arrives after all (its
        // timestamp is older than the first resend): the loss is undone, the marks cleared.
        let t = rto + 400_000;
        s.cwnd = 3.0;
        assert_eq!(s.next_segment(t), Some(2));
        assert_eq!(s.next_segment(t), Some(4));
        assert_eq!(s.next_segment(t), Some(5));
        assert_eq!(s.next_segment(t), None);
        s.on_ack(t + 1_000, 3, &[(3, 4)], 1);
        assert_eq!(s.stats.undos, 1);
        // RACK marks 6-9 again at once (sent long before segment 3's resend was delivered);
        // 4 and 5, resent after it, are unmarked and count twice: outstanding 3-9 (7), less
        // 3 SACKed, less 6-9 lost, plus two resends.
        assert_eq!((s.lost_out, s.retrans_out, s.lost_due()), (4, 2, 4));
        assert_eq!(s.in_flight(), 4);
    }

    /// After a timeout the window grows by slow start as the resends are acked (Linux calls
    /// tcp_cong_avoid in Loss: only Recovery and CWR are reductions). Held at one segment until
    /// the whole lost flight was resent, a flow that timed out with 119 segments marked lost
    /// resent them one per RTT: 30 s at 0.1 Mbit/s (lte tcp1-down seed 2 over the tunnel).
    #[test]
    fn the_window_grows_while_a_timeout_is_repaired() {
        let (mut s, rto) = timed_out();
        assert_eq!(s.next_segment(rto), Some(2));
        assert_eq!(s.next_segment(rto), None);
        // The resend is acked (no timestamp: no undo): slow start, one more per segment acked.
        s.on_ack(rto + 50_000, 3, &[], 0);
        assert_eq!(s.state, State::Loss);
        assert!(s.cwnd >= 2.0, "cwnd {}", s.cwnd);
        let t = rto + 100_000;
        assert_eq!(s.next_segment(t), Some(3));
        s.on_ack(t + 50_000, 4, &[], 0);
        assert!(s.cwnd >= 3.0, "cwnd {}", s.cwnd);
    }

    #[test]
    fn packets_round_trip() {
        let mut b = Vec::new();
        let h = Hdr {
            client: [10, 1, 0, 7],
            port: 20_003,
            from_client: false,
            id: 9,
            seq: 1348 * 5,
            ack: 77,
            tsval: 123,
            tsecr: 45,
            sack: &[(1, 2), (3, 4)],
        };
        build(&mut b, &h, 100);
        assert_eq!(b.len(), 20 + 20 + 12 + 4 + 16 + 100);
        let p = parse(&b).unwrap();
        assert_eq!(
            (p.seq, p.ack, p.len, p.tsval, p.tsecr),
            (1348 * 5, 77, 100, 123, 45)
        );
        assert_eq!(&p.sack[..p.sacks], &[(1, 2), (3, 4)]);
        assert!(crate::proto::packet::parse(&b).is_ok());
    }
}
