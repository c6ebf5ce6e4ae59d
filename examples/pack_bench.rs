//! The sender's per-packet packing cost: `Packer::pack` on packets of confirmed flows (the
//! session calls it for every DATA frame it sends, retransmissions included), beside
//! `Unpacker::install` (the same header check, then a table write).
//!
//! `cargo run --release --example pack_bench [-- PACKETS REPEATS]` (no root) prints ns/packet
//! min / median / max over REPEATS timed loops of PACKETS packets per workload:
//! - `tcp-ts`: 1400-byte IPv4 TCP segments with the timestamp option, 64 flows in turn (packed);
//! - `udp`: 1200-byte IPv4 UDP datagrams, 64 flows in turn (packed);
//! - `whole`: IPv6 TCP, which travels whole (the check's early exit);
//! - `install`: `Unpacker::install` of the `tcp-ts` packets.
//!
//! The workloads are interleaved, one loop of each per repeat, so that a burst of load from
//! other processes on a shared machine hits them alike; the minimum is the steady figure.
//! Comparing two builds: run their binaries in turn, several times each.

use braid::proto::pack::{Packer, Unpacker, MAX_PACKED_HEAD};
use braid::proto::packet::checksum;
use std::hint::black_box;
use std::time::Instant;

const FLOWS: u16 = 64;

fn ipv4(proto: u8, sport: u16, l4_after_ports: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    p.extend_from_slice(&[10, 0, 0, 2, 198, 51, 100, 7]);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&443u16.to_be_bytes());
    p.extend_from_slice(l4_after_ports);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

fn tcp_ts(sport: u16) -> Vec<u8> {
    let mut t = vec![
        0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x10, 0x01, 0xf5, 0xab, 0xcd, 0, 0,
    ];
    t.extend_from_slice(&[1, 1, 8, 10, 0, 0, 1, 2, 0, 0, 3, 4]);
    t.resize(1400 - 24, 0x5a);
    ipv4(6, sport, &t)
}

fn udp(sport: u16) -> Vec<u8> {
    let mut u = vec![0, 0, 0x12, 0x34];
    u[..2].copy_from_slice(&(1200u16 - 20).to_be_bytes());
    u.resize(1200 - 24, 0x5a);
    ipv4(17, sport, &u)
}

fn ipv6_tcp() -> Vec<u8> {
    let mut p = vec![0u8; 1400];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&1360u16.to_be_bytes());
    p[6] = 6;
    p[7] = 64;
    p[52] = 0x50;
    p
}

/// A packer with every flow of `packets` confirmed, as in a session's steady state.
fn confirmed(packets: &[Vec<u8>]) -> Packer {
    let mut tx = Packer::new();
    let mut head = [0u8; MAX_PACKED_HEAD];
    for (i, p) in packets.iter().enumerate() {
        tx.pack(p, &mut head);
        // Flow i took context index i, generation 0 (index << 6 | generation).
        tx.confirm((i as u16) << 6);
    }
    tx
}

/// ns/packet of `n` calls of `pack` over `packets` in turn.
fn time_pack(tx: &mut Packer, packets: &[Vec<u8>], n: usize) -> f64 {
    let mut head = [0u8; MAX_PACKED_HEAD];
    let t0 = Instant::now();
    for i in 0..n {
        let p = &packets[i % packets.len()];
        black_box(tx.pack(black_box(p), &mut head));
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn time_install(rx: &mut Unpacker, packets: &[Vec<u8>], n: usize) -> f64 {
    let t0 = Instant::now();
    for i in 0..n {
        let p = &packets[i % packets.len()];
        black_box(rx.install(black_box((i % packets.len()) as u16) << 6, black_box(p)));
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn summary(v: &mut [f64]) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "{:6.1} / {:6.1} / {:6.1}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .map_or(2_000_000, |a| a.parse().expect("PACKETS"));
    let repeats: usize = args.get(1).map_or(7, |a| a.parse().expect("REPEATS"));
    let tcp: Vec<Vec<u8>> = (0..FLOWS).map(|i| tcp_ts(5000 + i)).collect();
    let udps: Vec<Vec<u8>> = (0..FLOWS).map(|i| udp(6000 + i)).collect();
    let v6 = vec![ipv6_tcp()];
    let mut tx_tcp = confirmed(&tcp);
    let mut tx_udp = confirmed(&udps);
    let mut tx_v6 = Packer::new();
    let mut rx = Unpacker::new();
    let before = (tx_tcp.stats().packed, tx_udp.stats().packed);
    let mut res: [Vec<f64>; 4] = Default::default();
    for _ in 0..repeats {
        res[0].push(time_pack(&mut tx_tcp, &tcp, n));
        res[1].push(time_pack(&mut tx_udp, &udps, n));
        res[2].push(time_pack(&mut tx_v6, &v6, n));
        res[3].push(time_install(&mut rx, &tcp, n));
    }
    // The loops did what they claim: every tcp-ts and udp packet went packed, v6 whole.
    let total = (n * repeats) as u64;
    assert_eq!(tx_tcp.stats().packed - before.0, total, "tcp-ts packed");
    assert_eq!(tx_udp.stats().packed - before.1, total, "udp packed");
    assert_eq!(tx_v6.stats().whole, total, "ipv6 whole");
    println!("{n} packets x {repeats} repeats, ns/packet min / median / max");
    for (name, v) in ["tcp-ts", "udp", "whole", "install"].iter().zip(&mut res) {
        println!("{name:8} {}", summary(v));
    }
}
