//! Merging consecutive in-order TCP segments of one flow into one aggregate, the reverse of
//! [`crate::proto::offload`]'s segmentation: what the kernel's GRO does on a NIC's receive path.
//!
//! Written to the hub as one frame with a `virtio_net_hdr` that asks for segmentation
//! ([`crate::os::hub`]), an aggregate crosses the host's stack (the hub, routing, netfilter, the
//! LAN device's queue) once instead of once per segment; the kernel cuts it into the very
//! segments it was made of, on the way out of the LAN device or in its NIC. A bulk download
//! delivers runs of full-sized segments of one flow, so this is where the edge's per-packet
//! kernel cost goes.
//!
//! Only what [`crate::proto::offload::finish`] (and the kernel's `tcp_gso_segment`) gives back
//! byte for byte is merged: TCP over IPv4 without IP options or fragments, flags ACK (PSH on the
//! last segment only), every header field equal but the sequence number (which follows on)
//! and the IPv4 identification (which counts up by one), every segment but the last of the
//! first one's payload size, and each segment's checksums valid (a packet corrupted before
//! the tunnel is passed on as it came, never given a fresh checksum). Anything else is passed
//! on alone, in order: a packet that cannot join closes the aggregate first.

use super::packet::{self, fold, ipproto};

/// What [`Coalescer::push`] and [`Coalescer::flush`] hand out beside an aggregate: how to cut
/// it again (offsets from the start of the IP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// Payload bytes per segment (every one but the last).
    pub(crate) size: u16,
    /// Where the TCP header starts: the checksum there holds the pseudo-header sum only.
    pub(crate) l4: usize,
    /// IP and TCP headers together.
    pub(crate) headers: usize,
}

/// The TCP checksum field, from the start of the TCP header.
pub(crate) const TCP_CHECKSUM: usize = 16;
/// The largest IPv4 packet: an aggregate never grows past it.
const MAX_LEN: usize = 65535;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// The open aggregate and what the next segment must look like to join it.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The aggregate's bytes (the first segment's headers, then every payload); empty: none.
    buf: Vec<u8>,
    segs: usize,
    /// Payload bytes of its first segment.
    size: usize,
    headers: usize,
    next_seq: u32,
    next_id: u16,
    /// A segment shorter than `size` or with PSH joined: nothing more may.
    closed: bool,
    /// Segments that went out inside an aggregate of two or more (a counter for tests and
    /// status).
    pub(crate) merged: u64,
}

impl Coalescer {
    /// An empty one.
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// Takes `pkt` (one IP packet, exactly its length), merging it into the open aggregate
    /// when it continues it. `emit` gets every packet or aggregate that is complete, in
    /// order: with `Some` for an aggregate of two or more segments (its TCP checksum partial),
    /// `None` for a packet as it came.
    pub fn push(&mut self, pkt: &[u8], emit: &mut dyn FnMut(&[u8], Option<Merged>)) {
        let Some(seg) = segment(pkt) else {
            self.flush(emit);
            emit(pkt, None);
            return;
        };
        if self.joins(pkt, &seg) {
            // Checksums are checked only once a second segment joins: a packet that goes on
            // alone costs a copy and no more.
            if !checksums_ok(pkt) {
                self.flush(emit);
                emit(pkt, None);
                return;
            }
            if self.segs == 1 && !checksums_ok(&self.buf) {
                self.flush(emit);
                self.start(pkt, &seg);
                return;
            }
            self.buf.extend_from_slice(&pkt[seg.headers..]);
            self.segs += 1;
            self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
            self.next_id = seg.id.wrapping_add(1);
            if seg.flags & PSH != 0 {
                // Cut again, only the last segment carries it.
                self.buf[33] |= PSH;
                self.closed = true;
            }
            if seg.payload < self.size {
                self.closed = true;
            }
            return;
        }
        self.flush(emit);
        self.start(pkt, &seg);
    }

    /// Opens an aggregate with `pkt` (none is open).
    fn start(&mut self, pkt: &[u8], seg: &Segment) {
        self.buf.clear();
        self.buf.extend_from_slice(pkt);
        self.segs = 1;
        self.size = seg.payload;
        self.headers = seg.headers;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.next_id = seg.id.wrapping_add(1);
        self.closed = seg.flags & PSH != 0;
    }

    /// Hands out the open aggregate, if any (call it at the end of every burst).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&[u8], Option<Merged>)) {
        match self.segs {
            0 => return,
            // Untouched: its own checksums stand.
            1 => emit(&self.buf, None),
            n => {
                let total = self.buf.len();
                let b = &mut self.buf;
                packet::set_ipv4_len(&mut b[..20], total as u16);
                // The pseudo-header sum over the whole aggregate's TCP length: what a sender
                // with checksum offload leaves for its device (and what segmentation expects).
                let acc = packet::tcp4_pseudo_sum(b, total - 20);
                let at = 20 + TCP_CHECKSUM;
                b[at..at + 2].copy_from_slice(&fold(acc).to_be_bytes());
                self.merged += n as u64;
                emit(
                    b,
                    Some(Merged {
                        size: self.size as u16,
                        l4: 20,
                        headers: self.headers,
                    }),
                );
            }
        }
        self.segs = 0;
        self.closed = false;
        self.buf.clear();
    }

    /// `pkt` continues the open aggregate.
    fn joins(&self, pkt: &[u8], seg: &Segment) -> bool {
        let a = &self.buf;
        self.segs > 0
            && !self.closed
            && seg.headers == self.headers
            && seg.payload <= self.size
            && a.len() + seg.payload <= MAX_LEN
            && seg.seq == self.next_seq
            && seg.id == self.next_id
            // IPv4: version and length, TOS; flags and offset, TTL, protocol; addresses.
            && a[0..2] == pkt[0..2]
            && a[6..10] == pkt[6..10]
            && a[12..20] == pkt[12..20]
            // TCP: ports; acknowledgment, offset; window; urgent pointer and options.
            && a[20..24] == pkt[20..24]
            && a[28..33] == pkt[28..33]
            && a[34..36] == pkt[34..36]
            && a[38..self.headers] == pkt[38..seg.headers]
    }
}

/// What a packet that may join an aggregate looks like.
struct Segment {
    headers: usize,
    payload: usize,
    seq: u32,
    id: u16,
    flags: u8,
}

/// `pkt` as a mergeable segment: TCP over IPv4 without options or fragments, exactly the IP
/// header's length, flags ACK or ACK+PSH, some payload (its checksums: [`checksums_ok`]).
fn segment(pkt: &[u8]) -> Option<Segment> {
    if pkt.len() < 40 || pkt[0] != 0x45 || pkt[9] != ipproto::TCP {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    // More fragments, or an offset: a fragment. DF may be either.
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
    if total != pkt.len() || frag != 0 {
        return None;
    }
    let thl = usize::from(pkt[32] >> 4) * 4;
    let headers = 20 + thl;
    let flags = pkt[33];
    if thl < 20 || headers >= total || flags & !PSH != ACK {
        return None;
    }
    Some(Segment {
        headers,
        payload: total - headers,
        seq: u32::from_be_bytes([pkt[24], pkt[25], pkt[26], pkt[27]]),
        id: u16::from_be_bytes([pkt[4], pkt[5]]),
        flags,
    })
}

/// The IPv4 header and TCP checksums of a [`segment`] verify.
fn checksums_ok(pkt: &[u8]) -> bool {
    let acc = packet::tcp4_pseudo_sum(pkt, pkt.len() - 20);
    packet::checksum(&pkt[..20], 0) == 0 && packet::checksum(&pkt[20..], acc) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::offload::{finish, Gso, GsoKind, Offload, Partial};
    use proptest::prelude::*;

    /// A complete IPv4 TCP segment (checksums valid), with timestamps.
    fn seg(seq: u32, id: u16, flags: u8, len: usize) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (seq as usize + i) as u8).collect();
        let total = 20 + 32 + len;
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6] = 0x40;
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[203, 0, 113, 9]);
        p[16..20].copy_from_slice(&[10, 70, 0, 2]);
        let c = packet::checksum(&p, 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let mut t = vec![0u8; 32];
        t[0..2].copy_from_slice(&443u16.to_be_bytes());
        t[2..4].copy_from_slice(&40000u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&77u32.to_be_bytes());
        t[12] = 8 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&500u16.to_be_bytes());
        t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 1, 0, 0, 0, 2, 0]);
        p.extend_from_slice(&t);
        p.extend_from_slice(&payload);
        let acc = packet::ones_sum(&p[12..20], 6 + (total - 20) as u32);
        let c = packet::checksum(&p[20..], acc);
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn run(pkts: &[Vec<u8>]) -> Vec<(Vec<u8>, Option<Merged>)> {
        let mut c = Coalescer::new();
        let mut out = Vec::new();
        for p in pkts {
            c.push(p, &mut |b, m| out.push((b.to_vec(), m)));
        }
        c.flush(&mut |b, m| out.push((b.to_vec(), m)));
        out
    }

    /// What leaves the LAN device: each aggregate cut again as the kernel would.
    fn cut(out: &[(Vec<u8>, Option<Merged>)]) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut seg = vec![0u8; 65536];
        for (b, m) in out {
            let mut b = b.clone();
            let off = match m {
                None => Offload::default(),
                Some(m) => Offload {
                    partial: Some(Partial {
                        start: m.l4,
                        offset: TCP_CHECKSUM,
                    }),
                    gso: Some(Gso {
                        kind: GsoKind::Tcp4,
                        size: m.size,
                    }),
                },
            };
            finish(&mut b, &off, &mut seg, &mut |s| all.push(s.to_vec())).unwrap();
        }
        all
    }

    #[test]
    fn a_run_of_one_flow_becomes_one_aggregate_that_cuts_back_into_it() {
        let mut pkts: Vec<_> = (0..10u32)
            .map(|k| seg(1000 + k * 1400, 7 + k as u16, ACK, 1400))
            .collect();
        pkts.push(seg(1000 + 10 * 1400, 17, ACK | PSH, 600));
        let out = run(&pkts);
        assert_eq!(out.len(), 1);
        let (agg, m) = &out[0];
        let m = m.expect("an aggregate");
        assert_eq!((m.size, m.l4, m.headers), (1400, 20, 52));
        assert_eq!(agg.len(), 52 + 10 * 1400 + 600);
        assert_eq!(packet::checksum(&agg[..20], 0), 0, "IPv4 header checksum");
        assert_eq!(cut(&out), pkts);
    }

    #[test]
    fn what_cannot_join_closes_the_aggregate_and_keeps_its_place() {
        let a = |k: u32| seg(1000 + k * 1400, 100 + k as u16, ACK, 1400);
        let mut other = seg(5, 9, ACK, 1400);
        other[21] = 80; // another flow (source port)
        let mut bad = a(3);
        bad[60] ^= 1; // corrupted payload: checksum no longer valid
        let syn = seg(0, 1, 0x02, 0);
        let cases: Vec<(Vec<Vec<u8>>, Vec<usize>)> = vec![
            // Another flow in between: two aggregates and the packet between them.
            (vec![a(0), a(1), other.clone(), a(2), a(3)], vec![2, 1, 2]),
            // A gap in the sequence.
            (vec![a(0), a(1), a(3)], vec![2, 1]),
            // A corrupted segment goes on alone, as it came.
            (vec![a(0), a(1), a(2), bad.clone(), a(4)], vec![3, 1, 1]),
            // ... also as the first of a run.
            (vec![bad.clone(), a(4), a(5)], vec![1, 2]),
            // A short segment ends the aggregate.
            (
                vec![a(0), seg(1000 + 1400, 101, ACK, 700), a(2)],
                vec![2, 1],
            ),
            // Not mergeable at all (no payload, SYN).
            (vec![a(0), syn.clone(), a(1)], vec![1, 1, 1]),
        ];
        for (pkts, sizes) in cases {
            let out = run(&pkts);
            let got: Vec<usize> = out
                .iter()
                .map(|(b, m)| m.map_or(1, |m| (b.len() - m.headers).div_ceil(usize::from(m.size))))
                .collect();
            assert_eq!(got, sizes);
            assert_eq!(cut(&out), pkts, "same packets, same order");
        }
        // The corrupted one kept its (wrong) checksum.
        let out = run(&[a(2), bad.clone()]);
        assert_eq!(out[1].0, bad);
    }

    #[test]
    fn identification_or_options_that_differ_keep_segments_apart() {
        let mut b = seg(2400, 9, ACK, 1400);
        let out = run(&[seg(1000, 7, ACK, 1400), b.clone()]);
        assert_eq!(out.len(), 2, "id 7 then 9");
        b = seg(2400, 8, ACK, 1400);
        b[46] = 2; // TSval
        let acc = packet::ones_sum(&b[12..20], 6 + (b.len() - 20) as u32);
        b[36..38].copy_from_slice(&[0, 0]);
        let c = packet::checksum(&b[20..], acc);
        b[36..38].copy_from_slice(&c.to_be_bytes());
        assert_eq!(run(&[seg(1000, 7, ACK, 1400), b]).len(), 2);
    }

    #[test]
    fn an_aggregate_stops_at_64_kb() {
        let pkts: Vec<_> = (0..60u32)
            .map(|k| seg(k * 1400, k as u16, ACK, 1400))
            .collect();
        let out = run(&pkts);
        assert!(out.iter().all(|(b, _)| b.len() <= 65535));
        assert_eq!(out.len(), 2);
        assert_eq!(cut(&out), pkts);
    }

    proptest! {
        /// Whatever the mix, cutting what comes out gives back exactly what went in.
        #[test]
        fn cutting_the_output_gives_the_input_back(
            steps in proptest::collection::vec((0u8..4, 1usize..1500), 1..40)
        ) {
            let (mut seq, mut id) = (1u32, 1u16);
            let mut pkts = Vec::new();
            for (kind, len) in steps {
                let p = match kind {
                    0 | 1 => seg(seq, id, ACK, 1200),
                    2 => seg(seq, id, ACK | PSH, len.min(1200)),
                    _ => seg(seq.wrapping_add(7), id, ACK, len),
                };
                seq = seq.wrapping_add((p.len() - 52) as u32);
                id = id.wrapping_add(1);
                pkts.push(p);
            }
            let out = run(&pkts);
            prop_assert_eq!(cut(&out), pkts);
        }
    }
}
