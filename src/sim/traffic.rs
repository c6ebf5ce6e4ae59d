//! Traffic sources and the tag every simulated inner packet carries.
//!
//! An inner packet is a valid IPv4 + UDP header (so it looks like what the hub captures, and
//! the session packs its headers as it would a client's) followed by a 32-byte tag: magic,
//! source, sequence number, send time and flow, then zero padding up to the configured size.
//! The source address and port encode the source and flow too: the exit reads the tag back to
//! measure delay, loss, order and duplicates, and counts a packet whose headers do not match its
//! tag as corrupt (a packed header rebuilt from the wrong flow's context would be).

use super::scenario::{TrafficKind, TrafficSpec};
use super::tunnel::Meta;
use crate::proto::packet::checksum;

const MAGIC: u32 = 0x4252_534d; // "BRSM"
const IP_HEADER: usize = 20;
const HEADER: usize = IP_HEADER + 8;
/// Bytes of header + tag at the front of every simulated packet.
pub(crate) const TAG_END: usize = HEADER + 32;

/// What the exit reads back from a delivered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) source: u32,
    pub(crate) seq: u64,
    pub(crate) sent_us: u64,
    pub(crate) flow: u32,
}

/// Write a packet of `size` bytes carrying `tag` into `buf`.
pub(crate) fn build_packet(buf: &mut Vec<u8>, size: usize, tag: Tag) {
    buf.clear();
    buf.resize(size.max(TAG_END), 0);
    let len = buf.len() as u16;
    buf[0] = 0x45; // IPv4, 20-byte header
    buf[2..4].copy_from_slice(&len.to_be_bytes());
    buf[4..6].copy_from_slice(&(tag.seq as u16).to_be_bytes()); // IP id
    buf[6] = 0x40; // DF
    buf[8] = 64; // TTL
    buf[9] = 17; // UDP
    buf[12..16].copy_from_slice(&source_addr(tag.source));
    buf[16..20].copy_from_slice(&[192, 0, 2, 1]);
    let sum = checksum(&buf[..IP_HEADER], 0);
    buf[10..12].copy_from_slice(&sum.to_be_bytes());
    buf[20..22].copy_from_slice(&flow_port(tag.flow).to_be_bytes());
    buf[22..24].copy_from_slice(&9u16.to_be_bytes());
    buf[24..26].copy_from_slice(&(len - IP_HEADER as u16).to_be_bytes());
    let t = &mut buf[HEADER..TAG_END];
    t[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    t[4..8].copy_from_slice(&tag.source.to_be_bytes());
    t[8..16].copy_from_slice(&tag.seq.to_be_bytes());
    t[16..24].copy_from_slice(&tag.sent_us.to_be_bytes());
    t[24..28].copy_from_slice(&tag.flow.to_be_bytes());
}

/// Read the tag of a delivered packet; None if it is not one of ours (or was mangled).
pub(crate) fn read_tag(p: &[u8]) -> Option<Tag> {
    let t = p.get(HEADER..TAG_END)?;
    let word = |r: core::ops::Range<usize>| -> u64 {
        t[r].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    if word(0..4) != u64::from(MAGIC) || p.len() != usize::from(u16::from_be_bytes([p[2], p[3]])) {
        return None;
    }
    let tag = Tag {
        source: word(4..8) as u32,
        seq: word(8..16),
        sent_us: word(16..24),
        flow: word(24..28) as u32,
    };
    let headers_match = p[12..16] == source_addr(tag.source)
        && p[20..22] == flow_port(tag.flow).to_be_bytes()
        && p[4..6] == (tag.seq as u16).to_be_bytes()
        && checksum(&p[..IP_HEADER], 0) == 0;
    headers_match.then_some(tag)
}

/// The flow id the tunnel is given for a simulated flow `key`: a 32-bit hash, as the daemons
/// give it (`info.flow().hash(seed)`), not the key itself. The session keeps per-flow state in
/// buckets of the id's low bits; with the raw keys (source << 32 | flow index) flow k of every
/// source fell in bucket k, so each interactive flow shared its bucket with a TCP flow and its
/// packets were never taken for sparse (bench/sim/owd.md, session 17).
pub(crate) fn flow_id(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    u64::from((z ^ (z >> 31)) as u32)
}

fn source_addr(source: u32) -> [u8; 4] {
    [10, 0, (source >> 8) as u8, source as u8]
}

fn flow_port(flow: u32) -> u16 {
    10_000u16.wrapping_add(flow as u16)
}

/// A traffic source: one `[[traffic]]` of the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) id: u32,
    pub(crate) spec: TrafficSpec,
    next_seq: u64,
    /// Next send time of a paced source (µs).
    pub(crate) next_at: u64,
    /// Accumulated fractional µs of a realtime source's spacing.
    frac: f64,
}

impl Source {
    pub(crate) fn new(id: u32, spec: TrafficSpec) -> Source {
        Source {
            id,
            next_seq: 0,
            next_at: spec.start_us,
            frac: 0.0,
            spec,
        }
    }

    pub(crate) fn is_bulk(&self) -> bool {
        self.spec.kind == TrafficKind::Bulk
    }

    /// Paced (interactive or realtime): sends on its own timer.
    pub(crate) fn is_paced(&self) -> bool {
        matches!(
            self.spec.kind,
            TrafficKind::Interactive { .. } | TrafficKind::Realtime { .. }
        )
    }

    /// Active at `now_us`?
    pub(crate) fn active(&self, now_us: u64) -> bool {
        self.spec.start_us <= now_us && now_us < self.spec.stop_us
    }

    /// The metadata the next packet will carry (for `can_send`).
    pub(crate) fn peek_meta(&self) -> Meta {
        let flow = self.next_seq % u64::from(self.spec.flows);
        Meta {
            user: self.spec.user,
            flow: flow_id((u64::from(self.id) << 32) | flow),
            class: self.spec.class,
        }
    }

    /// The next packet: its metadata and tag (advances the sequence and, if paced, the timer).
    pub(crate) fn next_packet(&mut self, now_us: u64) -> (Meta, Tag) {
        let flow = (self.next_seq % u64::from(self.spec.flows)) as u32;
        let tag = Tag {
            source: self.id,
            seq: self.next_seq,
            sent_us: now_us,
            flow,
        };
        self.next_seq += 1;
        match self.spec.kind {
            TrafficKind::Bulk | TrafficKind::Tcp { .. } => {}
            TrafficKind::Interactive { interval_us } => self.next_at += interval_us,
            TrafficKind::Realtime { bps } => {
                let exact = self.spec.size as f64 * 8e6 / bps as f64 + self.frac;
                let whole = exact.floor();
                self.frac = exact - whole;
                self.next_at += whole as u64;
            }
        }
        let meta = Meta {
            user: self.spec.user,
            flow: flow_id((u64::from(self.id) << 32) | u64::from(flow)),
            class: self.spec.class,
        };
        (meta, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trip_and_rejects_mangled() {
        let mut b = Vec::new();
        let tag = Tag {
            source: 3,
            seq: 1 << 40,
            sent_us: 123_456_789,
            flow: 7,
        };
        build_packet(&mut b, 300, tag);
        assert_eq!(b.len(), 300);
        assert_eq!(read_tag(&b), Some(tag));
        b.pop();
        assert_eq!(read_tag(&b), None, "length must match the IP header");
        build_packet(&mut b, 300, tag);
        b[21] ^= 1;
        assert_eq!(read_tag(&b), None);
    }
}
