//! The core's address map: keeps apart edges whose LANs use the same addresses.
//!
//! Every (session, client address) pair gets an address of its own from a pool (by default
//! 100.64.0.0/10, shared address space that never appears on a LAN). Going up, the core
//! rewrites the client's source address to its pool address before the packet enters the core's
//! hub; the host then masquerades the pool toward the internet. Going down, a packet for a pool
//! address tells which session it belongs to, and its destination is rewritten back. Checksums
//! are updated incrementally (RFC 1624), including the packet quoted inside ICMP errors, so that
//! path-MTU discovery keeps working through the map.
//!
//! IPv4 only; mappings idle for longer than the caller's timeout are forgotten.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::packet::{csum_replace, ipproto};
use super::Instant;

/// Identifies a session on the core.
pub type SessionId = u32;

/// Why a packet could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatError {
    /// Not an IPv4 packet, or too short to rewrite.
    NotIpv4,
    /// Every pool address is in use.
    PoolExhausted,
}

impl core::fmt::Display for NatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NatError::NotIpv4 => f.write_str("not an IPv4 packet"),
            NatError::PoolExhausted => f.write_str("address pool exhausted"),
        }
    }
}

struct Entry {
    session: SessionId,
    client: Ipv4Addr,
    used: Instant,
}

/// The map. See the module docs.
pub struct NatMap {
    base: u32,
    size: u32,
    next: u32,
    by_client: HashMap<(SessionId, Ipv4Addr), Ipv4Addr>,
    by_mapped: HashMap<Ipv4Addr, Entry>,
}

#[derive(Clone, Copy)]
enum Field {
    Src,
    Dst,
}

impl NatMap {
    /// A map handing out addresses of `pool`/`prefix` (network and broadcast excluded).
    pub fn new(pool: Ipv4Addr, prefix: u8) -> NatMap {
        let prefix = prefix.clamp(8, 30);
        let mask = u32::MAX << (32 - prefix);
        NatMap {
            base: u32::from(pool) & mask,
            size: (1u32 << (32 - prefix)) - 2,
            next: 0,
            by_client: HashMap::new(),
            by_mapped: HashMap::new(),
        }
    }

    /// Addresses in use.
    pub fn len(&self) -> usize {
        self.by_mapped.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mapped.is_empty()
    }

    /// The pool address of a client of a session, allocating one if needed.
    pub fn mapped(
        &mut self,
        session: SessionId,
        client: Ipv4Addr,
        now: Instant,
    ) -> Result<Ipv4Addr, NatError> {
        if let Some(&m) = self.by_client.get(&(session, client)) {
            if let Some(e) = self.by_mapped.get_mut(&m) {
                e.used = now;
            }
            return Ok(m);
        }
        if self.by_mapped.len() as u64 >= u64::from(self.size) {
            return Err(NatError::PoolExhausted);
        }
        loop {
            let candidate = Ipv4Addr::from(self.base + 1 + self.next);
            self.next = (self.next + 1) % self.size;
            if let std::collections::hash_map::Entry::Vacant(slot) = self.by_mapped.entry(candidate)
            {
                slot.insert(Entry {
                    session,
                    client,
                    used: now,
                });
                self.by_client.insert((session, client), candidate);
                return Ok(candidate);
            }
        }
    }

    /// Upstream: rewrites the source of `pkt` (from `session`'s LAN) to its pool address.
    pub fn map_up(
        &mut self,
        session: SessionId,
        pkt: &mut [u8],
        now: Instant,
    ) -> Result<Ipv4Addr, NatError> {
        let client = v4_addr(pkt, Field::Src).ok_or(NatError::NotIpv4)?;
        let m = self.mapped(session, client, now)?;
        rewrite(pkt, Field::Src, m);
        Ok(m)
    }

    /// Downstream: if `pkt` is for a pool address, rewrites its destination back to the client
    /// and returns the session it belongs to.
    pub fn map_down(&mut self, pkt: &mut [u8], now: Instant) -> Option<SessionId> {
        let dst = v4_addr(pkt, Field::Dst)?;
        let e = self.by_mapped.get_mut(&dst)?;
        e.used = now;
        let (session, client) = (e.session, e.client);
        rewrite(pkt, Field::Dst, client);
        Some(session)
    }

    /// Forgets every mapping of a session (it ended).
    pub fn forget_session(&mut self, session: SessionId) {
        self.by_mapped.retain(|_, e| e.session != session);
        self.by_client.retain(|(s, _), _| *s != session);
    }

    /// Forgets mappings unused since `before`.
    pub fn expire(&mut self, before: Instant) {
        self.by_mapped.retain(|_, e| e.used >= before);
        let live = &self.by_mapped;
        self.by_client.retain(|_, m| live.contains_key(m));
    }
}

fn v4_addr(pkt: &[u8], f: Field) -> Option<Ipv4Addr> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let at = match f {
        Field::Src => 12,
        Field::Dst => 16,
    };
    Some(Ipv4Addr::new(
        pkt[at],
        pkt[at + 1],
        pkt[at + 2],
        pkt[at + 3],
    ))
}

fn word(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put_word(b: &mut [u8], at: usize, w: u16) {
    b[at..at + 2].copy_from_slice(&w.to_be_bytes());
}

/// Replaces 4 address bytes at `at` with `new`, updating every checksum offset in `csums`
/// (each `(offset, zero_means_none)`).
fn replace_addr(pkt: &mut [u8], at: usize, new: Ipv4Addr, csums: &[(usize, bool)]) {
    let new = new.octets();
    for half in 0..2 {
        let old_w = word(pkt, at + 2 * half);
        let new_w = u16::from_be_bytes([new[2 * half], new[2 * half + 1]]);
        for &(c, zero_is_none) in csums {
            let cur = word(pkt, c);
            if zero_is_none && cur == 0 {
                continue;
            }
            let mut updated = csum_replace(cur, old_w, new_w);
            if zero_is_none && updated == 0 {
                updated = 0xffff;
            }
            put_word(pkt, c, updated);
        }
        put_word(pkt, at + 2 * half, new_w);
    }
}

/// Rewrites the source or destination of an IPv4 packet, with its header checksum, its TCP or
/// UDP checksum (pseudo-header), and for ICMP errors the quoted packet's matching address.
fn rewrite(pkt: &mut [u8], f: Field, new: Ipv4Addr) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return;
    }
    let addr_at = match f {
        Field::Src => 12,
        Field::Dst => 16,
    };
    let frag_offset = word(pkt, 6) & 0x1fff;
    let proto = pkt[9];
    let l4 = ihl;
    let mut csums = vec![(10usize, false)];
    if frag_offset == 0 {
        match proto {
            ipproto::TCP if pkt.len() >= l4 + 18 => csums.push((l4 + 16, false)),
            ipproto::UDP if pkt.len() >= l4 + 8 => csums.push((l4 + 6, true)),
            _ => {}
        }
    }
    replace_addr(pkt, addr_at, new, &csums);
    if frag_offset == 0 && proto == ipproto::ICMP {
        rewrite_icmp_quote(pkt, l4, f);
    }
}

/// An ICMP error going down quotes the packet that went up, whose *source* is the pool address:
/// restore it too (and going up, the quote of a downstream packet has it as destination).
fn rewrite_icmp_quote(pkt: &mut [u8], l4: usize, outer: Field) {
    if pkt.len() < l4 + 8 + 20 || !matches!(pkt[l4], 3 | 11 | 12) {
        return;
    }
    let q = l4 + 8;
    if pkt[q] >> 4 != 4 {
        return;
    }
    let qihl = usize::from(pkt[q] & 0x0f) * 4;
    if qihl < 20 || pkt.len() < q + qihl {
        return;
    }
    // The outer destination we just wrote is the quoted packet's source (and vice versa).
    let (outer_at, quote_at) = match outer {
        Field::Dst => (16, q + 12),
        Field::Src => (12, q + 16),
    };
    let new = Ipv4Addr::new(
        pkt[outer_at],
        pkt[outer_at + 1],
        pkt[outer_at + 2],
        pkt[outer_at + 3],
    );
    let icmp_csum = l4 + 2;
    // The quoted header's checksum changes with its address; the ICMP checksum covers both.
    let old_qcsum = word(pkt, q + 10);
    replace_addr(pkt, quote_at, new, &[(q + 10, false), (icmp_csum, false)]);
    let new_qcsum = word(pkt, q + 10);
    let c = csum_replace(word(pkt, icmp_csum), old_qcsum, new_qcsum);
    put_word(pkt, icmp_csum, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::packet::{checksum, parse, pseudo_header_sum};
    use std::net::IpAddr;

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let total = 20 + l4.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            proto,
            0,
            0,
        ];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let c = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    fn with_l4_checksum(mut p: Vec<u8>, at: usize) -> Vec<u8> {
        let info = parse(&p).unwrap();
        let len = (p.len() - 20) as u32;
        p[20 + at..22 + at].copy_from_slice(&[0, 0]);
        let c = checksum(
            &p[20..],
            pseudo_header_sum(info.src, info.dst, info.proto, len),
        );
        p[20 + at..22 + at].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn l4_ok(p: &[u8]) -> bool {
        let info = parse(p).unwrap();
        checksum(
            &p[20..],
            pseudo_header_sum(info.src, info.dst, info.proto, (p.len() - 20) as u32),
        ) == 0
    }

    fn tcp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut t = vec![0u8; 24];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&443u16.to_be_bytes());
        t[12] = 0x50;
        t[13] = 0x10;
        t[20..].copy_from_slice(b"data");
        with_l4_checksum(ipv4(ipproto::TCP, src, dst, &t), 16)
    }

    #[test]
    fn two_sessions_with_the_same_lan_stay_apart() {
        let mut m = NatMap::new(Ipv4Addr::new(100, 64, 0, 0), 10);
        let client = [192, 168, 1, 10];
        let server = [198, 51, 100, 7];
        let mut a = tcp(client, server);
        let mut b = tcp(client, server);
        let ma = m.map_up(1, &mut a, Instant(0)).unwrap();
        let mb = m.map_up(2, &mut b, Instant(0)).unwrap();
        assert_ne!(ma, mb, "same client address, different sessions");
        for p in [&a, &b] {
            assert_eq!(checksum(&p[..20], 0), 0, "IP header checksum");
            assert!(l4_ok(p), "TCP checksum");
        }
        assert_eq!(parse(&a).unwrap().src, IpAddr::V4(ma));
        // Replies come back to the pool addresses and find their sessions.
        let mut ra = tcp(server, ma.octets());
        let mut rb = tcp(server, mb.octets());
        assert_eq!(m.map_down(&mut ra, Instant(1)), Some(1));
        assert_eq!(m.map_down(&mut rb, Instant(1)), Some(2));
        for p in [&ra, &rb] {
            assert_eq!(parse(p).unwrap().dst, IpAddr::V4(Ipv4Addr::from(client)));
            assert_eq!(checksum(&p[..20], 0), 0);
            assert!(l4_ok(p));
        }
        // Not a pool address: not ours.
        let mut other = tcp(server, [10, 0, 0, 1]);
        assert_eq!(m.map_down(&mut other, Instant(1)), None);
    }

    #[test]
    fn udp_checksums_stay_valid_and_zero_stays_zero() {
        let mut m = NatMap::new(Ipv4Addr::new(100, 64, 0, 0), 24);
        let mut u = vec![0u8; 12];
        u[0..2].copy_from_slice(&5000u16.to_be_bytes());
        u[2..4].copy_from_slice(&53u16.to_be_bytes());
        u[4..6].copy_from_slice(&12u16.to_be_bytes());
        u[8..].copy_from_slice(b"ping");
        let mut with = with_l4_checksum(ipv4(ipproto::UDP, [10, 1, 1, 1], [9, 9, 9, 9], &u), 6);
        m.map_up(7, &mut with, Instant(0)).unwrap();
        assert!(l4_ok(&with));
        let mut without = ipv4(ipproto::UDP, [10, 1, 1, 2], [9, 9, 9, 9], &u);
        m.map_up(7, &mut without, Instant(0)).unwrap();
        assert_eq!(&without[26..28], &[0, 0], "no checksum stays no checksum");
    }

    #[test]
    fn icmp_errors_restore_the_quoted_packet() {
        let mut m = NatMap::new(Ipv4Addr::new(100, 64, 0, 0), 10);
        let client = [192, 168, 1, 10];
        let server = [198, 51, 100, 7];
        let mut up = tcp(client, server);
        let mapped = m.map_up(1, &mut up, Instant(0)).unwrap();
        // A router on the way answers "fragmentation needed", quoting the mapped packet.
        let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp.extend_from_slice(&up[..28]);
        let c = checksum(&icmp, 0);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut err = ipv4(ipproto::ICMP, [203, 0, 113, 1], mapped.octets(), &icmp);
        assert_eq!(m.map_down(&mut err, Instant(1)), Some(1));
        assert_eq!(checksum(&err[..20], 0), 0);
        assert_eq!(
            checksum(&err[20..], 0),
            0,
            "ICMP checksum over the rewritten quote"
        );
        assert_eq!(&err[28 + 12..28 + 16], &client, "quoted source restored");
        assert_eq!(checksum(&err[28..48], 0), 0, "quoted header checksum");
    }

    #[test]
    fn pool_exhaustion_and_expiry() {
        let mut m = NatMap::new(Ipv4Addr::new(100, 64, 0, 0), 30); // 2 usable addresses
        m.mapped(1, Ipv4Addr::new(10, 0, 0, 1), Instant(0)).unwrap();
        m.mapped(1, Ipv4Addr::new(10, 0, 0, 2), Instant(5)).unwrap();
        assert_eq!(
            m.mapped(1, Ipv4Addr::new(10, 0, 0, 3), Instant(5)),
            Err(NatError::PoolExhausted)
        );
        m.expire(Instant(1));
        assert_eq!(m.len(), 1);
        assert!(m.mapped(1, Ipv4Addr::new(10, 0, 0, 3), Instant(6)).is_ok());
        m.forget_session(1);
        assert!(m.is_empty());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut m = NatMap::new(Ipv4Addr::new(100, 64, 0, 0), 10);
        for len in 0..80usize {
            let mut p: Vec<u8> = (0..len).map(|i| (i * 7 + 0x45) as u8).collect();
            if !p.is_empty() {
                p[0] = 0x4f;
            }
            let _ = m.map_up(1, &mut p, Instant(0));
            let _ = m.map_down(&mut p, Instant(0));
        }
    }
}
