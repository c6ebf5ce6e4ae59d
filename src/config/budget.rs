//! One memory budget per role (`option memory`), and every buffer bound derived from it.
//!
//! The edge runs on routers with 64 MB of RAM; the core on a small server that serves a fleet.
//! Rather than a dozen fixed limits, each role has one figure, [`Budget::bytes`], and
//! [`Budget::edge`] / [`Budget::core`] derive from it, as a pure function, every bound that can
//! grow with traffic:
//!
//! | bound | what it holds | share of the budget past a fixed reserve |
//! |---|---|---|
//! | send store | packets queued for the links or in flight (each slot holds a whole packet) | edge 40 %; core: per edge |
//! | send queue | bytes waiting in the per-user queues (DRR), a part of the store | half the store |
//! | reorder buffer | packets waiting for a predecessor | edge 25 %; core: per edge |
//! | flow map | flows whose predecessor the sender tracks | edge 5 %; core: per edge |
//! | user table | clients (and their flows) counted for `braid status` | edge 5 %; core: per edge |
//! | ingress | datagrams read from TCP links, waiting for the event loop (bytes, not a count; UDP sockets are read by the loop itself) | edge 10 %, core 10 % |
//! | capture | the hub's packet socket receive buffer (kernel memory) | edge 10 %, core 5 % |
//! | TCP send queues | datagrams for TCP links, not yet written to their sockets (bytes, all connections together; one connection at most [`MAX_TCP_SEND_PER_LINK`]) | edge 5 %, core 3 % (the rest is room for the per-session floors) |
//!
//! The reserve ([`EDGE_RESERVE`], [`CORE_RESERVE`]) is what the daemon needs whatever the traffic:
//! its code, the runtime, its tables. On the core, 80 % of what is left is split evenly among the
//! configured peers (a session exists only for a configured peer, one per peer): a fleet of
//! edges never multiplies the budget, and a budget too small to give each peer
//! [`MIN_SESSION`] is a configuration error that names the memory it needs.
//!
//! Sizes are counted as the memory they pin: a packet slot costs a whole `max_packet` buffer
//! plus its bookkeeping, whatever the size of the packet it holds now, because pooled buffers
//! keep their capacity.
#![forbid(unsafe_code)]

/// The default budget of the edge: a quarter of a 64 MB router's memory.
pub(crate) const DEFAULT_EDGE: u64 = 16 << 20;
/// The default budget of the core: fits a small server (512 MB) beside its other services.
pub(crate) const DEFAULT_CORE: u64 = 64 << 20;
/// The smallest budget accepted.
pub(crate) const MIN: u64 = 4 << 20;
/// The largest budget accepted.
pub(crate) const MAX: u64 = 64 << 30;
/// What the edge needs whatever its traffic (code, runtime, fixed tables).
pub const EDGE_RESERVE: u64 = 3 << 20;
/// What the core needs whatever its traffic.
pub(crate) const CORE_RESERVE: u64 = 4 << 20;
/// The least one edge's session gets on the core (more with jumbo packets).
pub(crate) const MIN_SESSION: u64 = 256 << 10;
/// The most one session gets (more would only lengthen queues).
const MAX_SESSION: u64 = 64 << 20;

/// Bookkeeping of a stored packet besides its buffer: its slot, a link's in-flight record, the
/// queue entries that point at it.
const PKT_OVERHEAD: u64 = 128;
/// Bookkeeping of a packet in the reorder buffer: slot, two hash entries, FIFO entry.
const REORDER_OVERHEAD: u64 = 64;
/// One entry of the sender's flow map (key, value and control byte at the worst load, doubled
/// for the copy a growing table makes).
const FLOW_ENTRY: u64 = 48;
/// One flow counted in a user's set of the user table, at the worst load, doubled.
const USER_FLOW: u64 = 16;
/// A user of the user table, besides its flows.
const USER_ENTRY: u64 = 96;
/// Flows counted per user at most (a `braid status` figure: "flows active lately").
const FLOWS_PER_USER: usize = 128;
/// Users counted at most per table.
const MAX_USERS: usize = 1024;
/// Flows tracked at most per session (past it the map starts afresh: flows restart with no
/// predecessor, which costs nothing but a little reordering).
const MAX_FLOWS: usize = 65_536;
/// A user's queue (DRR) at most: more only adds delay.
const MAX_PER_USER_QUEUE: u64 = 256 << 10;

/// One TCP link's send queue at most: a stalled connection cannot take every other's share
/// (and more would only add delay).
pub(crate) const MAX_TCP_SEND_PER_LINK: usize = 256 << 10;

/// `option memory`: bytes one daemon may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
}

/// The bounds of one session (the edge's, or each of the core's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionBounds {
    /// Packets stored at once (queued, in a link's queue, in flight, waiting to be resent):
    /// each slot pins a `max_packet` buffer.
    pub(crate) stored_packets: usize,
    /// Bytes in the per-user queues in all (`SessionConfig::total_queue_bytes`).
    pub(crate) queue_bytes: u64,
    /// Bytes in one user's queue (`SessionConfig::per_user_queue_bytes`).
    pub(crate) per_user_queue_bytes: u64,
    /// Reorder buffer, bytes and packets.
    pub(crate) reorder_bytes: usize,
    pub(crate) reorder_packets: usize,
    /// Flows whose predecessor is tracked.
    pub(crate) flows: usize,
    /// Users counted for `braid status`, and flows per user.
    pub(crate) users: usize,
    pub(crate) flows_per_user: usize,
}

/// Every bound of one daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Per session.
    pub(crate) session: SessionBounds,
    /// Sessions the bounds allow at once (the edge: 1; the core: its peers).
    pub(crate) sessions: usize,
    /// Bytes of datagrams read from link sockets and not yet handled (each of the core's two
    /// channels, UDP and TCP, gets this much).
    pub(crate) ingress_bytes: usize,
    /// The hub capture's receive buffer (kernel memory).
    pub(crate) capture_bytes: usize,
    /// Bytes waiting in the TCP links' send queues, all connections together (the core's
    /// accepted connections, up to `accept::Limits::total`, share it), and in one at most.
    pub(crate) tcp_send_bytes: usize,
    pub(crate) tcp_send_per_link: usize,
}

impl Bounds {}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Budget {
    /// The role's default.
    pub(crate) fn default_for(core: bool) -> Budget {
        Budget {
            bytes: if core { DEFAULT_CORE } else { DEFAULT_EDGE },
        }
    }

    /// The edge's bounds, for packets of at most `max_packet` bytes (the tunnel MTU).
    pub(crate) fn edge(&self, max_packet: usize) -> Bounds {
        let usable = self
            .bytes
            .saturating_sub(EDGE_RESERVE)
            .max(MIN - EDGE_RESERVE);
        let pct = |p: u64| usable / 100 * p;
        Bounds {
            session: session(pct(40), pct(25), pct(5), pct(5), max_packet),
            sessions: 1,
            ingress_bytes: usize_of(pct(10) / 2),
            capture_bytes: usize_of(pct(10).clamp(64 << 10, 16 << 20)),
            tcp_send_bytes: usize_of(pct(5)),
            tcp_send_per_link: usize_of(pct(5)).min(MAX_TCP_SEND_PER_LINK),
        }
    }

    /// The core's bounds for `peers` configured edges; an error names the budget they need.
    pub(crate) fn core(&self, peers: usize, max_packet: usize) -> Result<Bounds, String> {
        let usable = self.bytes.saturating_sub(CORE_RESERVE);
        let pct = |p: u64| usable / 100 * p;
        let n = peers.max(1) as u64;
        let share = (pct(80) / n).min(MAX_SESSION);
        // At least a few dozen packets of the largest size each way.
        let least = MIN_SESSION.max(64 * (max_packet as u64 + PKT_OVERHEAD));
        if share < least {
            // pct(80) >= n * least  <=>  usable >= n * least * 100 / 80 (and pct rounds down).
            let need = CORE_RESERVE + (n * least * 100).div_ceil(80) + 100;
            let mib = need.div_ceil(1 << 20);
            return Err(format!(
                "{} is too small for {peers} peers: each edge's session needs at least {} KiB; \
                 set memory to at least '{mib}M'",
                show(self.bytes),
                least.div_ceil(1 << 10)
            ));
        }
        let part = |p: u64| share / 100 * p;
        Ok(Bounds {
            session: session(part(50), part(35), part(7), part(8), max_packet),
            sessions: peers.max(1),
            ingress_bytes: usize_of((pct(10) / 2).min(64 << 20)),
            capture_bytes: usize_of(pct(5).clamp(64 << 10, 16 << 20)),
            tcp_send_bytes: usize_of(pct(3).min(64 << 20)),
            tcp_send_per_link: usize_of(pct(3)).min(MAX_TCP_SEND_PER_LINK),
        })
    }
}

/// One session's bounds from its shares (bytes) of the store, reorder buffer, flow map and
/// user table.
fn session(store: u64, reorder: u64, flows: u64, users: u64, max_packet: usize) -> SessionBounds {
    let mp = max_packet as u64;
    let stored = (store / (mp + PKT_OVERHEAD)).max(16);
    let queue = stored * mp / 2;
    let reorder_packets = (reorder / (mp + REORDER_OVERHEAD)).max(16);
    let user_cost = USER_ENTRY + FLOWS_PER_USER as u64 * USER_FLOW;
    SessionBounds {
        stored_packets: usize_of(stored),
        queue_bytes: queue,
        per_user_queue_bytes: (queue / 4).clamp(4 * mp, MAX_PER_USER_QUEUE),
        reorder_bytes: usize_of(reorder_packets * mp),
        reorder_packets: usize_of(reorder_packets),
        flows: usize_of(flows / FLOW_ENTRY).clamp(256, MAX_FLOWS),
        users: usize_of(users / user_cost).clamp(16, MAX_USERS),
        flows_per_user: FLOWS_PER_USER,
    }
}

/// Parses `option memory`: `16M`, `512K`, `1G`, `1.5G` or plain bytes. Memory sizes are powers
/// of 1024 whichever way they are written (`16M` = `16Mi` = `16MiB` = 16,777,216 bytes), as
/// `free`, `top` and the kernel count.
pub(crate) fn parse(v: &str) -> Result<Budget, String> {
    let bad = || format!("expected a memory size like '16M', '512K' or '1G', got '{v}'");
    let lower = v.to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = (&lower[..end], lower[end..].trim_start());
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if num.ends_with('.') {
        return Err(bad());
    }
    let i: u128 = int.parse().map_err(|_| bad())?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let bytes = (i << shift) + (f << shift) / 10u128.pow(frac.len() as u32);
    if bytes < u128::from(MIN) || bytes > u128::from(MAX) {
        return Err(format!(
            "'{v}' is out of range: between '4M' and '64G' (the edge's default is '16M', the core's '64M')"
        ));
    }
    Ok(Budget {
        bytes: bytes as u64,
    })
}

/// A size as `option memory` would write it (`16M`, `1536K`, or bytes).
pub(crate) fn show(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 {
        format!("{}G", bytes >> 30)
    } else if bytes % (1 << 20) == 0 {
        format!("{}M", bytes >> 20)
    } else if bytes % (1 << 10) == 0 {
        format!("{}K", bytes >> 10)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Bounds {
        /// What the bounds pin at most, in bytes (the sum of the parts; capture included).
        fn total(&self, max_packet: usize) -> u64 {
            let s = &self.session;
            let per = s.stored_packets as u64 * (max_packet as u64 + PKT_OVERHEAD)
                + s.reorder_packets as u64 * (max_packet as u64 + REORDER_OVERHEAD)
                + s.flows as u64 * FLOW_ENTRY
                + s.users as u64 * (USER_ENTRY + s.flows_per_user as u64 * USER_FLOW);
            per * self.sessions as u64
                + self.ingress_bytes as u64 * 2
                + self.capture_bytes as u64
                + self.tcp_send_bytes as u64
        }
    }

    const MTU: usize = 1400;

    #[test]
    fn sizes_are_powers_of_1024_with_clear_errors() {
        for (v, b) in [
            ("16M", 16u64 << 20),
            ("16m", 16 << 20),
            ("16Mi", 16 << 20),
            ("16MiB", 16 << 20),
            ("16 MB", 16 << 20),
            ("4096K", 4 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("8388608", 8 << 20),
        ] {
            assert_eq!(parse(v), Ok(Budget { bytes: b }), "{v}");
            assert_eq!(parse(&show(b)).unwrap().bytes, b, "{v} round trip");
        }
        for v in ["", "M", "16X", "16T", "1.M", "-4M", "16 M B", "0x10M"] {
            let e = parse(v).unwrap_err();
            assert!(e.contains("expected a memory size like '16M'"), "{v}: {e}");
        }
        for v in ["3M", "100K", "65G", "0"] {
            let e = parse(v).unwrap_err();
            assert!(
                e.contains("out of range: between '4M' and '64G'"),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn the_edge_default_fits_a_64_mb_router() {
        let b = Budget::default_for(false).edge(MTU);
        assert!(
            b.total(MTU) + EDGE_RESERVE <= DEFAULT_EDGE,
            "{} > {DEFAULT_EDGE}",
            b.total(MTU) + EDGE_RESERVE
        );
        // What 200 users with 2,000 flows need, with room.
        assert!(b.session.users >= 256, "{b:?}");
        assert!(b.session.flows >= 8_000, "{b:?}");
        // Enough in flight for 100 Mbit/s at 200 ms (2.5 MB).
        assert!(
            b.session.stored_packets as u64 * MTU as u64 >= 2_500_000,
            "{b:?}"
        );
        // Never more than the fixed limits it replaces (8 MiB queue, 4 MiB reorder, 4 MiB
        // capture, 65,536 flows, 1,024 users).
        assert!(b.session.queue_bytes <= 8 << 20 && b.session.reorder_bytes <= 4 << 20);
        assert!(b.capture_bytes <= 4 << 20 && b.session.flows <= 65_536);
    }

    #[test]
    fn every_bound_stays_within_the_budget_and_grows_with_it() {
        for mtu in [1280, 1400, 9000] {
            let mut last: Option<Bounds> = None;
            for mib in [4u64, 6, 8, 12, 16, 32, 64, 256, 1024] {
                let bytes = mib << 20;
                let b = Budget { bytes }.edge(mtu);
                assert!(
                    b.total(mtu) + EDGE_RESERVE <= bytes,
                    "edge {mib} MiB, mtu {mtu}: {b:?}"
                );
                if let Some(l) = last {
                    assert!(b.session.stored_packets >= l.session.stored_packets);
                    assert!(b.session.reorder_bytes >= l.session.reorder_bytes);
                    assert!(b.ingress_bytes >= l.ingress_bytes);
                }
                last = Some(b);
                for peers in [1usize, 2, 10, 50] {
                    if let Ok(c) = (Budget { bytes }).core(peers, mtu) {
                        assert_eq!(c.sessions, peers);
                        assert!(
                            c.total(mtu) + CORE_RESERVE <= bytes,
                            "core {mib} MiB, {peers} peers, mtu {mtu}: {c:?}"
                        );
                    }
                }
            }
        }
    }

    /// A fleet never multiplies the core's budget: each edge's share shrinks as edges are
    /// added, and past the least share the configuration is refused with the size it needs.
    #[test]
    fn the_core_divides_its_budget_among_its_peers() {
        let budget = Budget::default_for(true);
        let one = budget.core(1, MTU).unwrap();
        let ten = budget.core(10, MTU).unwrap();
        let hundred = budget.core(100, MTU).unwrap();
        assert!(ten.session.stored_packets < one.session.stored_packets);
        assert!(hundred.session.reorder_bytes < ten.session.reorder_bytes);
        for b in [one, ten, hundred] {
            assert!(b.total(MTU) + CORE_RESERVE <= DEFAULT_CORE, "{b:?}");
        }
        let e = budget.core(1000, MTU).unwrap_err();
        assert!(e.contains("64M is too small for 1000 peers"), "{e}");
        let need = e.rsplit('\'').nth(1).unwrap();
        let ok = parse(need).unwrap();
        assert!(
            ok.core(1000, MTU).is_ok(),
            "the size the error names suffices: {need}"
        );
        let less = Budget {
            bytes: ok.bytes - (1 << 20),
        };
        assert!(less.core(1000, MTU).is_err(), "and is the least: {need}");
    }

    /// The TCP links' send queues were 1,024 datagrams each (up to 64 MiB a connection, and
    /// the core accepts up to 1,024 connections): now bytes from the budget, shared.
    #[test]
    fn tcp_send_queues_are_bounded_in_bytes_from_the_budget() {
        for (b, budget) in [
            (Budget::default_for(false).edge(MTU), DEFAULT_EDGE),
            (
                Budget::default_for(true).core(4, MTU).unwrap(),
                DEFAULT_CORE,
            ),
        ] {
            assert!(b.tcp_send_bytes as u64 <= budget / 16, "{b:?}");
            assert!(b.tcp_send_per_link <= b.tcp_send_bytes, "{b:?}");
            // Room for a burst of full datagrams on a link.
            assert!(b.tcp_send_per_link >= 64 * MTU, "{b:?}");
        }
        let small = Budget { bytes: MIN }.edge(MTU);
        assert!(small.tcp_send_per_link >= 16 * MTU, "{small:?}");
    }

    #[test]
    fn the_core_ingress_is_bounded_in_bytes() {
        // Once 4,096 datagrams of up to 64 KiB (256 MiB) could wait.
        let c = Budget::default_for(true).core(4, MTU).unwrap();
        assert!(c.ingress_bytes <= 4 << 20, "{c:?}");
        let e = Budget::default_for(false).edge(MTU);
        assert!(e.ingress_bytes <= 1 << 20, "{e:?}");
    }
}
