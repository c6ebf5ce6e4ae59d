//! Session-level tests on a minimal in-memory multi-link network (virtual clock, seeded).
//!
//! The two ends are the daemons' own protocol objects: the edge's `Session` and the core's
//! `Endpoint` (which answers the handshakes and starts, rekeys or ends the session, as in
//! `braid core`); a datagram's source address is the link it arrived on. The real simulator
//! lives in `src/sim`; this network is deliberately small so each protocol mechanism can be
//! checked end to end (handshake, aggregation, failover, removal, classes).

use std::collections::VecDeque;

use braid::proto::endpoint::{Endpoint, Handled, Peer};
use braid::proto::link::{LinkConfig, LinkState};
use braid::proto::sched::{ClassConfig, Mode};
use braid::proto::seal::{Channel, Keypair};
use braid::proto::session::{
    Event, PacketMeta, Session, SessionConfig, ANNOUNCE_EVERY, REHANDSHAKE_AFTER,
};
use braid::proto::wire::LinkRole;
use braid::proto::{Instant, LinkId};

const PKT: usize = 1200;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }
}

/// One direction of one link: rate (bit/s on the wire incl. 28 bytes IP/UDP), delay, loss,
/// drop-tail queue, black-hole switch.
struct Dir {
    rate_bps: u64,
    owd_us: u64,
    loss: f64,
    queue_limit_us: u64,
    busy_until: u64,
    flying: VecDeque<(u64, Vec<u8>)>,
    black_hole: bool,
    sent_bytes: u64,
}

impl Dir {
    fn new(rate_bps: u64, owd_ms: u64, loss: f64) -> Dir {
        Dir {
            rate_bps,
            owd_us: owd_ms * 1000,
            loss,
            queue_limit_us: 100_000,
            busy_until: 0,
            flying: VecDeque::new(),
            black_hole: false,
            sent_bytes: 0,
        }
    }

    fn push(&mut self, now: u64, d: &[u8], rng: &mut Rng) {
        let start = self.busy_until.max(now);
        if start - now > self.queue_limit_us {
            return; // drop-tail
        }
        let tx = (d.len() as u64 + 28) * 8 * 1_000_000 / self.rate_bps;
        self.busy_until = start + tx;
        self.sent_bytes += d.len() as u64 + 28;
        if self.black_hole || rng.chance(self.loss) {
            return;
        }
        self.flying
            .push_back((self.busy_until + self.owd_us, d.to_vec()));
    }
}

struct NetLink {
    id: LinkId,
    up: Dir,
    down: Dir,
}

/// Inner packet: an IPv4 + UDP header (port = flow, IP id = n, so the session packs it like a
/// client's), then flow u64, n u64 (per flow), sent_at u64, then padding.
fn make_packet(flow: u64, n: u64, now: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..20].copy_from_slice(&[10, 0, 0, 2, 192, 0, 2, 1]);
    let sum = braid::proto::packet::checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&(flow as u16).to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&(len as u16 - 20).to_be_bytes());
    p[28..36].copy_from_slice(&flow.to_be_bytes());
    p[36..44].copy_from_slice(&n.to_be_bytes());
    p[44..52].copy_from_slice(&now.to_be_bytes());
    p
}

fn parse(p: &[u8]) -> (u64, u64, u64) {
    let r = |i: usize| u64::from_be_bytes(p[i..i + 8].try_into().unwrap());
    (r(28), r(36), r(44))
}

#[derive(Clone, Copy)]
struct Source {
    user: u32,
    flow: u64,
    class: u8,
    /// None = saturating bulk (uses can_send), Some(us) = one packet every `us`.
    interval_us: Option<u64>,
    len: usize,
}

#[derive(Default, Debug)]
struct FlowRx {
    next: u64,
    received: u64,
    in_order: u64,
    bytes: u64,
    delays: Vec<u64>,
    last_at: u64,
    max_gap: u64,
}

struct Harness {
    now: u64,
    rng: Rng,
    links: Vec<NetLink>,
    edge: Session,
    /// The core; addresses are link ids.
    core: Endpoint<LinkId>,
    core_key: Keypair,
    edge_public: [u8; 32],
    core_cfg: SessionConfig,
    sources: Vec<Source>,
    sent_n: Vec<u64>,
    next_at: Vec<u64>,
    rx: Vec<FlowRx>,
    buf: Vec<u8>,
    events: Vec<Event>,
    measure_from: u64,
    stopped: bool,
    /// The core sends bulk data to the edge too (a download), while not `stopped`.
    download: bool,
    /// Inner bytes the edge delivered (the download).
    edge_rx_bytes: u64,
}

impl Harness {
    fn new(links: Vec<NetLink>, cfg: SessionConfig, sources: Vec<Source>) -> Harness {
        let edge_key = Keypair::generate();
        let core_key = Keypair::generate();
        let now = Instant(0);
        let ch = Channel::initiator(&edge_key, core_key.public, now);
        let mut edge = Session::new(ch, cfg.clone(), now);
        for l in &links {
            edge.add_link(l.id, LinkConfig::default(), now);
        }
        let n = sources.len();
        let core = core_endpoint(&core_key, edge_key.public, &cfg);
        Harness {
            now: 0,
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            links,
            edge,
            core,
            core_key,
            edge_public: edge_key.public,
            core_cfg: cfg,
            sources,
            sent_n: vec![0; n],
            next_at: vec![0; n],
            rx: (0..n).map(|_| FlowRx::default()).collect(),
            buf: vec![0u8; 2048],
            events: Vec::new(),
            measure_from: 0,
            stopped: false,
            download: false,
            edge_rx_bytes: 0,
        }
    }

    /// The core's session of the edge (it has no other peer).
    fn core(&self) -> Option<&Session> {
        let id = self.core.session_ids().next()?;
        self.core.session(id)
    }

    /// The core restarts: a new endpoint with the same key and peers, and no session.
    fn restart_core(&mut self) {
        self.core = core_endpoint(&self.core_key, self.edge_public, &self.core_cfg);
    }

    /// The core closes the edge's session (a Close frame goes out at once).
    fn close_core_session(&mut self) {
        let id = self.core.session_ids().next().expect("a session");
        self.core.session_mut(id).expect("live").close();
        self.core_transmit(Instant(self.now));
    }

    fn link(&mut self, id: LinkId) -> &mut NetLink {
        self.links.iter_mut().find(|l| l.id == id).unwrap()
    }

    fn run_until(&mut self, until_ms: u64) {
        let end = until_ms * 1000;
        while self.now < end {
            self.step();
            self.now += 50;
        }
    }

    /// Runs as the daemons' event loops do, from one event to the next (the edge's and the
    /// core's timers, arrivals) until `until_ms`; sources should be stopped. Returns how often
    /// the edge's timer woke it, or an error naming the deadline when the loop found something
    /// due at the same instant `limit` times in a row: a busy loop (`poll_timeout` keeps
    /// asking for a time that `handle_timeout` and `poll_transmit` do not move on).
    fn idle_wakeups(&mut self, until_ms: u64, limit: u32) -> Result<u32, String> {
        let end = until_ms * 1000;
        let (mut wakeups, mut repeats) = (0u32, 0u32);
        loop {
            let edge_t = self.edge.poll_timeout().map(|t| t.0);
            let mut next = end;
            let mut min = |t: Option<u64>| next = next.min(t.unwrap_or(u64::MAX));
            min(edge_t);
            min(self.core.poll_timeout().map(|t| t.0));
            for l in &self.links {
                min(l.up.flying.front().map(|f| f.0));
                min(l.down.flying.front().map(|f| f.0));
            }
            if next >= end {
                self.now = end;
                return Ok(wakeups);
            }
            let at = next.max(self.now);
            if at == self.now {
                repeats += 1;
                if repeats > limit {
                    return Err(format!(
                        "busy loop at {} us: the edge's next wake-up is {:?} us, the core's {:?}",
                        self.now,
                        edge_t,
                        self.core.poll_timeout()
                    ));
                }
            } else {
                repeats = 0;
            }
            if edge_t.is_some_and(|t| t <= at) {
                wakeups += 1;
            }
            self.now = at;
            self.step();
        }
    }

    fn step(&mut self) {
        let now = Instant(self.now);
        // Traffic into the edge.
        if self.edge.is_established() && !self.stopped {
            for (k, s) in self.sources.clone().iter().enumerate() {
                let meta = PacketMeta {
                    user: s.user,
                    flow: s.flow,
                    class: s.class,
                };
                match s.interval_us {
                    None => {
                        while self.edge.can_send(&meta) {
                            let p = make_packet(s.flow, self.sent_n[k], self.now, s.len);
                            self.edge.send(now, &p, meta).unwrap();
                            self.sent_n[k] += 1;
                        }
                    }
                    Some(iv) => {
                        if self.now >= self.next_at[k] {
                            let p = make_packet(s.flow, self.sent_n[k], self.now, s.len);
                            if self.edge.send(now, &p, meta).is_ok() {
                                self.sent_n[k] += 1;
                            }
                            self.next_at[k] = self.now + iv;
                        }
                    }
                }
            }
        }
        let established = self.core().is_some_and(|c| c.is_established());
        if self.download && !self.stopped && established {
            let id = self.core.session_ids().next().expect("established");
            let meta = PacketMeta {
                user: 1,
                flow: 99,
                class: 0,
            };
            let mut n = 0;
            while self.core.session(id).is_some_and(|c| c.can_send(&meta)) {
                let p = make_packet(99, n, self.now, PKT);
                if self.core.send(now, id, &p, meta).is_err() {
                    break;
                }
                n += 1;
            }
        }
        // Timers.
        if self.edge.poll_timeout().is_some_and(|t| t <= now) {
            self.edge.handle_timeout(now);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        // Edge -> links.
        while let Some(t) = self.edge.poll_transmit(now, &mut self.buf) {
            let d = self.buf[..t.len].to_vec();
            let nowus = self.now;
            let l = self.links.iter_mut().find(|l| l.id == t.link).unwrap();
            if std::env::var("DBG").is_ok() && t.link == 2 {
                eprintln!("{} up link {} len {}", nowus, t.link, t.len);
            }
            l.up.push(nowus, &d, &mut self.rng);
        }
        self.core_transmit(now);
        // Arrivals.
        for li in 0..self.links.len() {
            while self.links[li]
                .up
                .flying
                .front()
                .is_some_and(|f| f.0 <= self.now)
            {
                let (_, mut d) = self.links[li].up.flying.pop_front().unwrap();
                let id = self.links[li].id;
                self.core_receive(id, &mut d);
            }
            while self.links[li]
                .down
                .flying
                .front()
                .is_some_and(|f| f.0 <= self.now)
            {
                let (_, mut d) = self.links[li].down.flying.pop_front().unwrap();
                let id = self.links[li].id;
                let _ = self.edge.handle_datagram(now, Some(id), &mut d);
            }
        }
        while let Some(e) = self.edge.poll_event() {
            self.events.push(e);
        }
        while let Some(d) = self.edge.poll_deliver(now) {
            self.edge_rx_bytes += d.data.len() as u64;
            self.edge.recycle(d.data);
        }
        // Deliveries at the core exit.
        while let Some((id, d)) = self.core.poll_deliver(now) {
            let (flow, n, sent_at) = parse(&d.data);
            let k = self.sources.iter().position(|s| s.flow == flow).unwrap();
            assert!(
                d.data == make_packet(flow, n, sent_at, self.sources[k].len),
                "packet {n} of flow {flow} arrived changed"
            );
            let r = &mut self.rx[k];
            if n >= r.next {
                if n == r.next {
                    r.in_order += 1;
                }
                r.next = n + 1;
            }
            r.received += 1;
            if self.now >= self.measure_from {
                r.bytes += d.data.len() as u64;
                r.delays.push(self.now - sent_at);
                if std::env::var("DBG2").is_ok()
                    && (flow == 8 || flow == 5)
                    && (self.now - sent_at > 45_000
                        || (self.now > 1_900_000 && self.now < 2_100_000))
                {
                    eprintln!(
                        "t={} flow {flow} n={n} delay {}",
                        self.now,
                        self.now - sent_at
                    );
                }
                if r.last_at > 0 {
                    r.max_gap = r.max_gap.max(self.now - r.last_at);
                }
            }
            r.last_at = self.now;
            if let Some(c) = self.core.session_mut(id) {
                c.recycle(d.data);
            }
        }
    }

    fn core_receive(&mut self, link: LinkId, d: &mut [u8]) {
        let r = self.core.handle_datagram(Instant(self.now), link, d);
        if let Ok(Handled::Data { link: Some(l), .. }) = r {
            assert_eq!(l, link, "core learns the link from the frames");
        }
    }

    /// The core's datagrams onto the links: each goes to the link its session's link was last
    /// heard from.
    fn core_transmit(&mut self, now: Instant) {
        while let Some((link, n)) = self.core.poll_transmit(now, &mut self.buf) {
            let d = self.buf[..n].to_vec();
            let l = self.links.iter_mut().find(|l| l.id == link).unwrap();
            l.down.push(self.now, &d, &mut self.rng);
        }
    }

    fn delivered_bytes(&self) -> u64 {
        self.rx.iter().map(|r| r.bytes).sum()
    }

    fn lost(&self, k: usize) -> u64 {
        // Packets sent more than a second before the end and never delivered.
        let r = &self.rx[k];
        self.sent_n[k].saturating_sub(r.received)
    }
}

/// The core's endpoint with the edge as its one peer.
fn core_endpoint(key: &Keypair, edge: [u8; 32], cfg: &SessionConfig) -> Endpoint<LinkId> {
    let peers = vec![Peer {
        name: "edge".into(),
        public: edge,
    }];
    Endpoint::new(key.clone(), peers, cfg.clone())
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn two_links(loss2: f64) -> Vec<NetLink> {
    vec![
        NetLink {
            id: 1,
            up: Dir::new(20_000_000, 20, 0.0),
            down: Dir::new(20_000_000, 20, 0.0),
        },
        NetLink {
            id: 2,
            up: Dir::new(10_000_000, 40, loss2),
            down: Dir::new(10_000_000, 40, loss2),
        },
    ]
}

fn bulk(user: u32, flow: u64) -> Source {
    Source {
        user,
        flow,
        class: 0,
        interval_us: None,
        len: PKT,
    }
}

#[test]
fn handshake_then_in_order_delivery_on_one_link() {
    let links = vec![NetLink {
        id: 3,
        up: Dir::new(10_000_000, 10, 0.0),
        down: Dir::new(10_000_000, 10, 0.0),
    }];
    let src = Source {
        user: 1,
        flow: 1,
        class: 0,
        interval_us: Some(1000),
        len: 500,
    };
    let mut h = Harness::new(links, SessionConfig::default(), vec![src]);
    h.run_until(1000);
    assert!(h.events.contains(&Event::Established));
    assert!(h.core().unwrap().is_established());
    let r = &h.rx[0];
    assert!(r.received > 900, "received {}", r.received);
    assert_eq!(r.in_order, r.received);
    assert!(h.lost(0) <= 15); // the last ~10 ms are still in flight
}

#[test]
fn aggregates_two_unequal_links() {
    let mut h = Harness::new(two_links(0.005), SessionConfig::default(), vec![bulk(1, 1)]);
    h.measure_from = 2_000_000;
    h.run_until(10_000);
    let goodput = h.delivered_bytes() as f64 * 8.0 / 8.0; // bit/s over 8 s
    let wire = 30_000_000.0;
    let st = h.edge.stats();
    eprintln!(
        "goodput {:.2} Mbit/s = {:.1} % of wire; stats {:#?}",
        goodput / 1e6,
        goodput / wire * 100.0,
        st
    );
    let r = &mut h.rx[0];
    let in_order = r.in_order as f64 / r.received as f64;
    let p99 = pct(&mut r.delays, 0.99);
    eprintln!("in order {:.4}, p99 delay {} us", in_order, p99);
    assert!(goodput > 0.85 * wire, "goodput {goodput}");
    assert!(in_order > 0.99);
    // Nothing lost: everything sent more than ~200 ms before the end arrived.
    assert!(h.lost(0) < 400, "lost {}", h.lost(0));
    assert_eq!(st.dropped_resend_limit, 0);
}

#[test]
fn black_holed_link_fails_over_without_loss() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.measure_from = 1_000_000;
    h.run_until(3_000);
    h.link(1).up.black_hole = true;
    h.link(1).down.black_hole = true;
    h.run_until(6_000);
    h.link(1).up.black_hole = false;
    h.link(1).down.black_hole = false;
    h.run_until(9_000);
    // Stop the source and let everything drain.
    h.stopped = true;
    let sent = h.sent_n[0];
    h.run_until(10_000);
    let r = &h.rx[0];
    eprintln!(
        "max gap {} us, received {} of {}; {:#?}",
        r.max_gap,
        r.received,
        sent,
        h.edge.stats()
    );
    assert_eq!(r.received, sent, "nothing lost");
    assert!(r.max_gap <= 300_000, "gap {}", r.max_gap);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::LinkState {
            link: 1,
            state: braid::proto::link::LinkState::Down
        }
    )));
    // Link 1 is used again after it recovered.
    let st = h.edge.stats();
    assert_eq!(st.links[0].state, braid::proto::link::LinkState::Up);
}

#[test]
fn removing_a_link_mid_transfer_loses_nothing() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    h.edge.remove_link(1, Instant(h.now));
    h.run_until(3_000);
    h.stopped = true;
    let sent = h.sent_n[0];
    h.run_until(4_000);
    assert_eq!(h.rx[0].received, sent);
    assert_eq!(h.edge.stats().links.len(), 1);
    // The core learned the removal too.
    assert_eq!(h.core().unwrap().stats().links.len(), 1);
}

#[test]
fn admin_down_and_up_moves_traffic() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    h.edge.set_link_admin(2, false, Instant(h.now));
    let before = h.link(2).up.sent_bytes;
    h.run_until(3_000);
    let during = h.link(2).up.sent_bytes - before;
    assert_eq!(during, 0, "no datagram on an admin-down link");
    h.edge.set_link_admin(2, true, Instant(h.now));
    h.run_until(5_000);
    h.stopped = true;
    let sent = h.sent_n[0];
    h.run_until(6_000);
    assert_eq!(h.rx[0].received, sent);
    assert!(
        h.link(2).up.sent_bytes - before > 1_000_000,
        "link 2 carries data again"
    );
}

#[test]
fn users_share_fairly() {
    let srcs = vec![bulk(1, 1), bulk(2, 2), bulk(3, 3)];
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), srcs);
    h.measure_from = 1_000_000;
    h.run_until(6_000);
    let xs: Vec<f64> = h.rx.iter().map(|r| r.bytes as f64).collect();
    let jain = xs.iter().sum::<f64>().powi(2) / (3.0 * xs.iter().map(|x| x * x).sum::<f64>());
    eprintln!("per user bytes {xs:?} jain {jain}");
    assert!(jain > 0.98, "{jain}");
}

#[test]
fn priority_and_interactive_under_bulk() {
    let cfg = SessionConfig {
        classes: vec![ClassConfig {
            id: 1,
            mode: Mode::Aggregate,
            priority: 5,
            weight: 1,
        }],
        ..Default::default()
    };
    let srcs = vec![
        bulk(1, 1),
        bulk(2, 2),
        Source {
            user: 9,
            flow: 9,
            class: 1,
            interval_us: Some(10_000),
            len: 200,
        },
        Source {
            user: 8,
            flow: 8,
            class: 0,
            interval_us: Some(20_000),
            len: 200,
        },
    ];
    let mut h = Harness::new(two_links(0.0), cfg, srcs);
    h.measure_from = 1_000_000;
    h.run_until(6_000);
    let p99_prio = pct(&mut h.rx[2].delays, 0.99);
    let p99_inter = pct(&mut h.rx[3].delays, 0.99);
    eprintln!("p99 priority {p99_prio} us, interactive {p99_inter} us");
    eprintln!("{:#?}", h.edge.stats());
    // Fastest link one way is 20 ms.
    assert!(p99_prio <= 20_000 + 10_000, "priority p99 {p99_prio}");
    assert!(p99_inter <= 20_000 + 20_000, "interactive p99 {p99_inter}");
}

/// Max delivery gap of a 50 packets/s priority flow of `mode` when link 1 is black-holed.
fn gap_under_black_hole(mode: Mode) -> (u64, u64) {
    let cfg = SessionConfig {
        classes: vec![ClassConfig {
            id: 2,
            mode,
            priority: 1,
            weight: 1,
        }],
        ..Default::default()
    };
    let srcs = vec![
        bulk(1, 1),
        Source {
            user: 5,
            flow: 5,
            class: 2,
            interval_us: Some(20_000),
            len: 300,
        },
    ];
    let mut h = Harness::new(two_links(0.0), cfg, srcs);
    h.measure_from = 1_000_000;
    // Black-hole link 1 while a packet of the class is in flight on it.
    h.run_until(2_010);
    h.link(1).up.black_hole = true;
    h.link(1).down.black_hole = true;
    h.run_until(4_000);
    h.stopped = true;
    h.run_until(5_000);
    let r = &h.rx[1];
    (r.max_gap, h.sent_n[1] - r.received)
}

#[test]
fn redundant_class_survives_black_hole_without_gap() {
    let (gap, lost) = gap_under_black_hole(Mode::Redundant);
    let (agg_gap, _) = gap_under_black_hole(Mode::Aggregate);
    eprintln!("max gap: redundant {gap} us, aggregate {agg_gap} us");
    assert_eq!(lost, 0);
    // Packets every 20 ms; the path delay jumps from 20 to 40 ms one way (+ queue): no stall
    // beyond that jump, while the same class without redundancy waits for a timeout.
    assert!(gap <= 20_000 + 20_000 + 15_000, "gap {gap}");
    assert!(
        agg_gap > gap + 20_000,
        "aggregate {agg_gap} vs redundant {gap}"
    );
}

#[test]
fn backup_role_link_unused_until_primaries_fail() {
    let mut links = two_links(0.0);
    links.push(NetLink {
        id: 3,
        up: Dir::new(5_000_000, 10, 0.0),
        down: Dir::new(5_000_000, 10, 0.0),
    });
    let mut h = Harness::new(links, SessionConfig::default(), vec![bulk(1, 1)]);
    h.edge.add_link(
        3,
        LinkConfig {
            role: LinkRole::Backup,
            ..Default::default()
        },
        Instant(0),
    );
    h.run_until(2_000);
    let b0 = h.link(3).up.sent_bytes;
    h.run_until(3_000);
    // Only probes (tiny) on the backup while primaries are up.
    assert!(
        h.link(3).up.sent_bytes - b0 < 5_000,
        "{}",
        h.link(3).up.sent_bytes - b0
    );
    for id in [1, 2] {
        h.link(id).up.black_hole = true;
        h.link(id).down.black_hole = true;
    }
    h.run_until(5_000);
    assert!(h.link(3).up.sent_bytes - b0 > 500_000);
}

#[test]
fn the_core_learns_the_edges_link_names() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.edge.set_link_name(1, "wan");
    // Cut to 32 bytes on a character boundary: "lte" + 14 two-byte characters.
    h.edge.set_link_name(2, &format!("lte{}", "é".repeat(20)));
    assert_eq!(h.edge.link_name(1), Some("wan"));
    assert_eq!(h.edge.link_name(2).map(str::len), Some(31));
    h.run_until(1_000);
    let core = h.core().unwrap();
    assert_eq!(core.link_name(1), Some("wan"));
    assert_eq!(core.link_name(2), h.edge.link_name(2));
    assert_eq!(core.link_name(9), None);
    // A rename (reload) reaches the core too.
    h.edge.set_link_name(1, "wan-b");
    h.run_until(1_500);
    assert_eq!(h.core().unwrap().link_name(1), Some("wan-b"));
}

#[test]
fn a_lost_link_announcement_is_repeated() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(1_000);
    let core_role = |h: &Harness, id: LinkId| {
        h.core()
            .unwrap()
            .stats()
            .links
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.role)
    };
    assert_eq!(core_role(&h, 2), Some(LinkRole::Primary));
    // The role change goes out while every upstream datagram is lost.
    for id in [1, 2] {
        h.link(id).up.black_hole = true;
    }
    h.edge.add_link(
        2,
        LinkConfig {
            role: LinkRole::Backup,
            ..Default::default()
        },
        Instant(1_000_000),
    );
    h.edge.set_link_name(2, "lte");
    h.run_until(1_100);
    for id in [1, 2] {
        h.link(id).up.black_hole = false;
    }
    h.run_until(2_000);
    assert_eq!(core_role(&h, 2), Some(LinkRole::Primary), "lost, as meant");
    assert_eq!(h.core().unwrap().link_name(2), None);
    h.run_until(1_100 + ANNOUNCE_EVERY.as_millis() as u64 + 500);
    assert_eq!(core_role(&h, 2), Some(LinkRole::Backup));
    assert_eq!(h.core().unwrap().link_name(2), Some("lte"));
}

#[test]
fn headers_are_packed_once_the_core_knows_the_flow() {
    let mut h = Harness::new(
        two_links(0.01),
        SessionConfig::default(),
        vec![bulk(1, 1), bulk(2, 2)],
    );
    h.run_until(3_000);
    let edge = h.edge.stats();
    let core = h.core().unwrap().stats();
    eprintln!(
        "edge {:?}, core unpack errors {}",
        edge.pack, core.unpack_errors
    );
    // Every packet arrived byte for byte (checked on delivery); nearly all went packed, each
    // 23 bytes shorter (28-byte IPv4 + UDP header sent as 5).
    assert!(h.rx.iter().all(|r| r.received > 1000));
    assert!(
        edge.pack.packed > 20 * edge.pack.installs,
        "{:?}",
        edge.pack
    );
    assert_eq!(edge.pack.saved_bytes, 23 * edge.pack.packed);
    assert_eq!(edge.pack.whole, 0);
    assert_eq!(core.unpack_errors, 0);
}

/// Also proves the edge installs its flows' contexts again after a new handshake: a restarted
/// core knows none, and packed frames alone would never be delivered.
#[test]
fn a_restarted_core_gets_a_new_handshake_and_traffic_resumes() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.edge.set_link_name(1, "wan");
    h.run_until(2_000);
    let before = h.delivered_bytes();
    assert!(before > 1_000_000, "{before}");
    // The core restarts: its session is gone; the edge's datagrams are not understood.
    h.restart_core();
    let t = 2_000;
    let mut resumed_at = None;
    let mut named_at_resume = false;
    let mut last = h.delivered_bytes();
    for ms in (t + 100..=t + 30_000).step_by(100) {
        h.run_until(ms);
        let d = h.delivered_bytes();
        if let Some(c) = h.core().filter(|_| d > last + 100_000) {
            if resumed_at.is_none() {
                resumed_at = Some(ms - t);
                named_at_resume = c.link_name(1).is_some();
            }
        }
        last = d;
    }
    let st = h.edge.stats();
    eprintln!(
        "core restarted at {t} ms: traffic resumed after {resumed_at:?} ms; links {:?}",
        st.links.iter().map(|l| l.state).collect::<Vec<_>>()
    );
    let resumed = resumed_at.expect("traffic never resumed within 30 s of a core restart");
    assert!(
        resumed <= (REHANDSHAKE_AFTER.as_millis() as u64) + 500,
        "resumed after {resumed} ms"
    );
    // The new core learnt the links' names from the edge's announcements after the handshake.
    assert_eq!(h.core().unwrap().link_name(1), Some("wan"));
    assert!(named_at_resume, "the links were announced only later");
}

#[test]
fn the_core_is_heard_again_before_a_black_holed_link_is_up() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    let heard = h.edge.last_heard().expect("heard during the handshake");
    assert!(heard > Instant::from_micros(1_900_000), "{heard:?}");
    // Every link black-holed for 4 s (a tunnel): the core goes silent, the links Down.
    for id in [1, 2] {
        h.link(id).up.black_hole = true;
        h.link(id).down.black_hole = true;
    }
    h.run_until(6_000);
    let down = |h: &Harness| {
        h.edge
            .stats()
            .links
            .iter()
            .all(|l| l.state == LinkState::Down)
    };
    assert!(down(&h), "{:?}", h.edge.stats().links);
    let silent = h.edge.last_heard().unwrap();
    assert!(
        silent < Instant::from_micros(2_100_000),
        "heard during the outage: {silent:?}"
    );
    for id in [1, 2] {
        h.link(id).up.black_hole = false;
        h.link(id).down.black_hole = false;
    }
    // The first probe reply is a sign of life while every link is still Down; Up comes later.
    let (mut heard_at, mut up_at) = (None, None);
    for ms in 6_001..=8_000 {
        h.run_until(ms);
        if heard_at.is_none() && h.edge.last_heard() > Some(Instant::from_micros(6_000_000)) {
            assert!(down(&h), "a link was Up before the core was heard");
            heard_at = Some(ms);
        }
        if up_at.is_none() && !down(&h) {
            up_at = Some(ms);
        }
    }
    println!("outage over at 6000 ms: core heard at {heard_at:?} ms, a link Up at {up_at:?} ms");
    let (heard_at, up_at) = (heard_at.expect("never heard"), up_at.expect("never Up"));
    assert!(heard_at < up_at);
    // At most a Down probe interval (50 ms) and the 40 ms round trip of the faster link.
    assert!(heard_at <= 6_000 + 50 + 40 + 5, "{heard_at}");
}

#[test]
fn a_silent_core_is_not_heard_whatever_the_edge_retries() {
    // The edge's rehandshakes after REHANDSHAKE_AFTER of silence must not count as hearing the
    // core: the edge would otherwise steer its clients back into a dead tunnel.
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    for id in [1, 2] {
        h.link(id).up.black_hole = true;
        h.link(id).down.black_hole = true;
    }
    let quiet_ms = 3 * REHANDSHAKE_AFTER.as_millis() as u64;
    h.run_until(2_000 + quiet_ms);
    let heard = h.edge.last_heard().unwrap();
    assert!(
        heard <= Instant::from_micros(2_100_000),
        "heard at {heard:?} with the core unreachable for {quiet_ms} ms"
    );
    // Reachable again: the first answer (to a handshake or a probe) counts.
    for id in [1, 2] {
        h.link(id).up.black_hole = false;
        h.link(id).down.black_hole = false;
    }
    h.run_until(2_000 + quiet_ms + REHANDSHAKE_AFTER.as_millis() as u64);
    assert!(h.edge.last_heard() > Some(Instant::from_micros((2_000 + quiet_ms) * 1000)));
}

/// Issue 12 item 6: `braid edge` sat at 100 % CPU after a transfer with a link taken out
/// (`braid link down`). The link had an ACK pending (data received, ACK delayed): its deadline
/// stayed in `poll_timeout`, in the past, but nothing sends on an admin-down link, so every
/// wake-up found it due again. Datagrams the link's socket had already received are still
/// handled after the link is taken down (the daemon's channel holds them), and set one too.
#[test]
fn a_link_taken_down_mid_transfer_leaves_the_edge_idle() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.download = true;
    h.run_until(2_000);
    assert!(h.edge_rx_bytes > 1_000_000, "download {}", h.edge_rx_bytes);
    h.edge.set_link_admin(2, false, Instant(h.now));
    let late: Vec<_> = h.link(2).down.flying.drain(..).collect();
    assert!(!late.is_empty(), "nothing was in flight on link 2");
    for (_, mut d) in late {
        let _ = h.edge.handle_datagram(Instant(h.now), Some(2), &mut d);
    }
    h.stopped = true;
    h.run_until(3_000);
    let wakeups = h.idle_wakeups(8_000, 100).unwrap_or_else(|e| panic!("{e}"));
    println!("edge wake-ups in 5 s idle with link 2 down: {wakeups}");
    // Probes of the idle link 1 (every 150 ms), their answers, reorder hints, announcements.
    assert!(wakeups <= 200, "{wakeups} wake-ups in 5 s of idle");
}

/// With every link taken down, control frames (the links' announcements) wait for a link:
/// they must not make the edge spin meanwhile, and they go out once a link is back.
#[test]
fn every_link_taken_down_leaves_the_edge_idle() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    h.stopped = true;
    h.run_until(2_500);
    for id in [1, 2] {
        h.edge.set_link_admin(id, false, Instant(h.now));
    }
    let wakeups = h.idle_wakeups(7_500, 100).unwrap_or_else(|e| panic!("{e}"));
    println!("edge wake-ups in 5 s with every link down: {wakeups}");
    assert!(
        wakeups <= 50,
        "{wakeups} wake-ups in 5 s with every link down"
    );
    let sent = h.link(1).up.sent_bytes;
    h.edge.set_link_admin(1, true, Instant(h.now));
    h.stopped = false;
    h.run_until(9_500);
    assert!(
        h.link(1).up.sent_bytes > sent + 1_000_000,
        "link 1 carries again"
    );
}

/// A session the core closed (a Close frame): the edge handshakes again at once and starts a
/// new session, and traffic resumes (before, it kept the closed session forever: no data, no
/// timers). While the core does not answer, its handshake retries are all it wakes for.
#[test]
fn a_session_closed_by_the_core_is_made_again() {
    let mut h = Harness::new(two_links(0.0), SessionConfig::default(), vec![bulk(1, 1)]);
    h.run_until(2_000);
    let before = h.delivered_bytes();
    assert!(before > 1_000_000, "{before}");
    // The core closes the session; as its Close arrives, the links go black for 3 s (the core
    // unreachable).
    h.close_core_session();
    let mut ms = 2_000;
    while !h.edge.is_closed() && ms < 2_500 {
        ms += 1;
        h.run_until(ms);
    }
    assert!(h.edge.is_closed(), "the core's Close arrived");
    assert!(h.events.contains(&Event::Closed), "{:?}", h.events);
    for id in [1, 2] {
        h.link(id).up.black_hole = true;
        h.link(id).down.black_hole = true;
    }
    h.run_until(2_100.max(ms));
    h.stopped = true;
    let wakeups = h.idle_wakeups(5_100, 100).unwrap_or_else(|e| panic!("{e}"));
    println!("edge wake-ups in 3 s after the Close, the core unreachable: {wakeups}");
    assert!(wakeups <= 50, "{wakeups} wake-ups in 3 s");
    for id in [1, 2] {
        h.link(id).up.black_hole = false;
        h.link(id).down.black_hole = false;
    }
    h.stopped = false;
    let t = 5_100;
    let mut resumed_at = None;
    let mut last = h.delivered_bytes();
    for ms in (t + 100..=t + 10_000).step_by(100) {
        h.run_until(ms);
        let d = h.delivered_bytes();
        if resumed_at.is_none() && d > last + 100_000 {
            resumed_at = Some(ms - t);
        }
        last = d;
    }
    println!("core reachable again at {t} ms: traffic resumed after {resumed_at:?} ms");
    let resumed = resumed_at.expect("traffic never resumed after the core closed the session");
    // The handshake retry timer of the channel, then a round trip.
    assert!(resumed <= 2_000, "resumed after {resumed} ms");
    assert!(!h.edge.is_closed());
    assert_eq!(h.edge.stats().renewals, 1);
    let established = h
        .events
        .iter()
        .filter(|e| **e == Event::Established)
        .count();
    assert_eq!(established, 2, "{:?}", h.events);
}
