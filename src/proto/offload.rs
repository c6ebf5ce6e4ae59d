//! Finishing what a NIC offload left undone in a captured packet: a partial checksum and a TCP
//! segmentation aggregate.
//!
//! With the kernel's default offloads, a packet routed into the hub may not be what a wire would
//! carry yet. Its TCP or UDP checksum may hold only the pseudo-header sum, to be finished by the
//! device that transmits it (CHECKSUM_PARTIAL), and a TCP packet may be an aggregate of up to
//! 64 KB, built by the sender's stack (TSO/GSO) or merged on receive (GRO), to be cut into
//! segments of `gso_size` payload bytes by the device. The hub's capture socket reports both in
//! a header beside each frame (`PACKET_VNET_HDR`, see [`crate::os::hub`]); [`finish`] does the
//! device's work in user space, so that what enters the tunnel (and what the core writes toward
//! the server) is ordinary packets with complete checksums, each within the hub's MTU.
//!
//! The segments are what the kernel's own segmentation makes (`tcp_gso_segment`): the headers
//! of the aggregate with the sequence number advanced by `gso_size` per segment, FIN and PSH on
//! the last segment only, CWR on the first only, the IPv4 identification counting up from the
//! aggregate's, lengths and checksums recomputed.
//!
//! The capture's host end announces only the offloads handled here (Internet checksums, TCP
//! segmentation over IPv4): the kernel finishes everything else (TCP over IPv6, UDP, SCTP,
//! tunnels) itself before a frame reaches the capture. Anything unexpected is refused with an error,
//! never passed on half-done, and nothing here panics on any input.

use super::packet::{self, fold, ipproto, Fragment};

/// What the capture reported beside a packet (offsets from the start of the IP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offload {
    /// The transport checksum is to be finished: see [`Partial`].
    pub partial: Option<Partial>,
    /// The packet is an aggregate to cut into segments.
    pub gso: Option<Gso>,
}

/// A checksum left for the device: the 16-bit field at `start + offset` holds the sum of the
/// pseudo-header only; the checksum covers everything from `start` to the end of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// Where the summed bytes start (the transport header).
    pub start: usize,
    /// Where the checksum field is, from `start`.
    pub offset: usize,
}

/// A segmentation aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// Its kind.
    pub kind: GsoKind,
    /// Payload bytes per segment.
    pub size: u16,
}

/// Kinds of aggregate a capture can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    /// TCP over IPv4.
    Tcp4,
    /// Anything else (the capture's code for it), TCP over IPv6 included: refused with
    /// [`OffloadError::Unsupported`] (the hub lets the kernel segment those).
    Other(u8),
}

/// Why [`finish`] refused a packet (nothing of it was passed on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// The headers do not match what the offload says (offsets outside the packet, an
    /// aggregate that is not a whole TCP packet of its IP version, a zero segment size).
    Malformed,
    /// An aggregate of a kind not cut here.
    Unsupported,
    /// A segment would not fit the buffer given for it.
    TooBig,
}

impl core::fmt::Display for OffloadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for OffloadError {}

impl OffloadError {
    /// A short description, for drop counters.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            OffloadError::Malformed => "offloaded packet malformed",
            OffloadError::Unsupported => "offloaded aggregate of unsupported kind",
            OffloadError::TooBig => "offloaded segment too big",
        }
    }
}

/// The longest IPv4 and TCP headers together (60 + 60 bytes).
const MAX_HEADERS: usize = 120;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Calls `emit` with each finished packet of `pkt` and returns how many there were: `pkt`
/// itself, its checksum finished in place when it was partial, or for an aggregate each of its
/// segments in turn, built in `seg` (which must hold the headers plus `gso.size` bytes).
/// Bytes past the length the IP header gives (link-layer padding) are not part of any packet.
pub fn finish(
    pkt: &mut [u8],
    off: &Offload,
    seg: &mut [u8],
    emit: &mut dyn FnMut(&mut [u8]),
) -> Result<usize, OffloadError> {
    if let Some(g) = off.gso {
        return segment_tcp(pkt, g, off.partial, seg, emit);
    }
    if let Some(p) = off.partial {
        let end = ip_len(pkt)?;
        finish_checksum(&mut pkt[..end], p)?;
    }
    emit(pkt);
    Ok(1)
}

/// The length the IP header gives, checked against the buffer.
fn ip_len(pkt: &[u8]) -> Result<usize, OffloadError> {
    let len = match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => usize::from(u16::from_be_bytes([pkt[2], pkt[3]])),
        Some(6) if pkt.len() >= 40 => 40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]])),
        _ => return Err(OffloadError::Malformed),
    };
    if len > pkt.len() {
        return Err(OffloadError::Malformed);
    }
    Ok(len)
}

/// Finishes a partial checksum over `pkt` (exactly the IP packet).
fn finish_checksum(pkt: &mut [u8], p: Partial) -> Result<(), OffloadError> {
    let at = p
        .start
        .checked_add(p.offset)
        .ok_or(OffloadError::Malformed)?;
    if p.start < 20 || at.checked_add(2).map_or(true, |e| e > pkt.len()) {
        return Err(OffloadError::Malformed);
    }
    // The field's pseudo-header sum is part of the sum: fold, complement, and write a zero
    // result as 0xffff (the same in one's complement, and what UDP requires).
    let c = !fold(packet::ones_sum(&pkt[p.start..], 0));
    let c = if c == 0 { 0xffff } else { c };
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

fn segment_tcp(
    pkt: &[u8],
    g: Gso,
    partial: Option<Partial>,
    seg: &mut [u8],
    emit: &mut dyn FnMut(&mut [u8]),
) -> Result<usize, OffloadError> {
    if g.kind != GsoKind::Tcp4 {
        return Err(OffloadError::Unsupported);
    }
    let info = packet::parse(pkt).map_err(|_| OffloadError::Malformed)?;
    if info.version != 4 || info.proto != ipproto::TCP || info.fragment != Fragment::No {
        return Err(OffloadError::Malformed);
    }
    let l4 = info.l4_offset;
    // An aggregate of an encapsulated flow names the inner transport header: not cut here.
    if partial.is_some_and(|p| p.start != l4) {
        return Err(OffloadError::Malformed);
    }
    let end = info.total_len;
    if end < l4 + 20 {
        return Err(OffloadError::Malformed);
    }
    let thl = usize::from(pkt[l4 + 12] >> 4) * 4;
    let hdr = l4 + thl;
    let mss = usize::from(g.size);
    if thl < 20 || hdr > end || hdr > MAX_HEADERS || mss == 0 {
        return Err(OffloadError::Malformed);
    }
    let (head, body) = pkt[..end].split_at(hdr);
    let count = body.len().div_ceil(mss).max(1);
    if hdr + body.len().min(mss) > seg.len() {
        return Err(OffloadError::TooBig);
    }
    // Each segment's headers are built here, then copied in front of its payload.
    let mut h = [0u8; MAX_HEADERS];
    h[..hdr].copy_from_slice(head);
    // IHL is at most 15 words: the mask only tells the compiler so (no bounds checks below).
    let l4 = l4 & 63;
    let seq0 = u32::from_be_bytes([h[l4 + 4], h[l4 + 5], h[l4 + 6], h[l4 + 7]]);
    let id0 = u16::from_be_bytes([h[4], h[5]]);
    let flags = h[l4 + 13];
    for k in 0..count {
        let chunk = body.get(k * mss..).unwrap_or(&[]);
        let chunk = &chunk[..chunk.len().min(mss)];
        let total = hdr + chunk.len();
        // IPv4 header: length (at most the aggregate's, which came from a u16), id, checksum.
        h[4..6].copy_from_slice(&id0.wrapping_add(k as u16).to_be_bytes());
        packet::set_ipv4_len(&mut h[..l4], total as u16);
        // TCP header: sequence number, flags (FIN and PSH on the last segment only, CWR on the
        // first only), checksum over the pseudo-header (addresses, protocol, length), the
        // header and the payload.
        let seq = seq0.wrapping_add((k * mss) as u32);
        h[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        let mut f = flags;
        if k + 1 < count {
            f &= !(FIN | PSH);
        }
        if k > 0 {
            f &= !CWR;
        }
        h[l4 + 13] = f;
        h[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
        let acc = packet::tcp4_pseudo_sum(&h, total - l4);
        let c = packet::checksum(chunk, packet::ones_sum(&h[l4..hdr], acc));
        h[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        let out = &mut seg[..total];
        out[..hdr].copy_from_slice(&h[..hdr]);
        out[hdr..].copy_from_slice(chunk);
        emit(out);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::packet::{checksum, ones_sum, pseudo_header_sum};
    use core::net::IpAddr;
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [10, 70, 0, 2];
    const DST4: [u8; 4] = [10, 73, 0, 2];

    fn tcp_header(seq: u32, flags: u8, opts: &[u8]) -> Vec<u8> {
        let thl = 20 + opts.len();
        let mut t = vec![0u8; thl];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&7u32.to_be_bytes());
        t[12] = ((thl / 4) as u8) << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&502u16.to_be_bytes());
        t[20..].copy_from_slice(opts);
        t
    }

    /// An IPv4 TCP packet as a sender with checksum offload hands it to its device: the TCP
    /// checksum field holds the pseudo-header sum only.
    fn tcp4_partial(seq: u32, flags: u8, payload: &[u8], df: bool) -> Vec<u8> {
        let t = tcp_header(seq, flags, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        let total = 20 + t.len() + payload.len();
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0xfff0u16.to_be_bytes());
        if df {
            p[6] = 0x40;
        }
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&SRC4);
        p[16..20].copy_from_slice(&DST4);
        let c = checksum(&p, 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&t);
        p.extend_from_slice(payload);
        let l4len = (total - 20) as u32;
        let ps = fold(pseudo_header_sum(SRC4.into(), DST4.into(), 6, l4len));
        p[36..38].copy_from_slice(&ps.to_be_bytes());
        p
    }

    fn tcp6_partial(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let t = tcp_header(seq, flags, &[]);
        let plen = t.len() + payload.len();
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 2;
        p[24] = 0xfd;
        p[39] = 9;
        p.extend_from_slice(&t);
        p.extend_from_slice(payload);
        let (s, d) = addrs(&p);
        let ps = fold(pseudo_header_sum(s, d, 6, plen as u32));
        p[56..58].copy_from_slice(&ps.to_be_bytes());
        p
    }

    fn addrs(p: &[u8]) -> (IpAddr, IpAddr) {
        let i = packet::parse(p).unwrap();
        (i.src, i.dst)
    }

    /// True when the packet's IPv4 header checksum (if any) and TCP/UDP checksum verify.
    fn checksums_ok(p: &[u8]) -> bool {
        let i = packet::parse(p).unwrap();
        if i.version == 4 && checksum(&p[..i.l4_offset], 0) != 0 {
            return false;
        }
        let l4 = &p[i.l4_offset..i.total_len];
        let acc = pseudo_header_sum(i.src, i.dst, i.proto, l4.len() as u32);
        checksum(l4, acc) == 0
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn collect(pkt: &mut [u8], off: &Offload) -> Result<Vec<Vec<u8>>, OffloadError> {
        let mut seg = vec![0u8; 65536];
        let mut out = Vec::new();
        let n = finish(pkt, off, &mut seg, &mut |s| out.push(s.to_vec()))?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    fn partial_tcp(l4: usize) -> Option<Partial> {
        Some(Partial {
            start: l4,
            offset: 16,
        })
    }

    /// What the kernel hands over with an IPv4 TCP aggregate: the checksum to finish at the
    /// TCP header (offset 20), to be cut into segments of `size` bytes.
    fn tcp4_aggregate(size: u16) -> Offload {
        Offload {
            partial: partial_tcp(20),
            gso: Some(Gso {
                kind: GsoKind::Tcp4,
                size,
            }),
        }
    }

    #[test]
    fn a_partial_checksum_is_finished_in_place() {
        let mut p = tcp4_partial(1000, 0x18, &payload(333), true);
        assert!(!checksums_ok(&p));
        let off = Offload {
            partial: partial_tcp(20),
            gso: None,
        };
        let out = collect(&mut p, &off).unwrap();
        assert_eq!(out.len(), 1);
        assert!(checksums_ok(&out[0]));
        assert_eq!(out[0], p);
        // Link-layer padding after the packet is neither summed nor passed on as part of it.
        let mut padded = tcp4_partial(1000, 0x18, &[], true);
        let len = padded.len();
        padded.extend_from_slice(&[0xab; 6]);
        let out = collect(&mut padded, &off).unwrap();
        assert!(checksums_ok(&out[0][..len]));
    }

    #[test]
    fn a_partial_udp_checksum_of_zero_is_sent_as_ffff() {
        // A UDP payload chosen so that the finished checksum is 0.
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&30u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&SRC4);
        p[16..20].copy_from_slice(&DST4);
        p[24..26].copy_from_slice(&10u16.to_be_bytes());
        let c = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let ps = fold(pseudo_header_sum(SRC4.into(), DST4.into(), 17, 10));
        p[26..28].copy_from_slice(&ps.to_be_bytes());
        // Two payload bytes that bring the whole sum to 0xffff (checksum 0).
        let rest = fold(ones_sum(&p[20..], 0));
        p.extend_from_slice(&(!rest).to_be_bytes());
        let off = Offload {
            partial: Some(Partial {
                start: 20,
                offset: 6,
            }),
            gso: None,
        };
        let out = collect(&mut p, &off).unwrap();
        assert_eq!(&out[0][26..28], &[0xff, 0xff]);
        assert!(checksums_ok(&out[0]));
    }

    #[test]
    fn a_tcp4_aggregate_becomes_the_segments_the_kernel_makes() {
        let data = payload(4000);
        let mut agg = tcp4_partial(0xffff_f000, 0x80 | 0x18 | 0x01, &data, true);
        let segs = collect(&mut agg, &tcp4_aggregate(1348)).unwrap();
        assert_eq!(segs.len(), 3);
        let mut joined = Vec::new();
        for (k, s) in segs.iter().enumerate() {
            assert!(checksums_ok(s), "segment {k}");
            let i = packet::parse(s).unwrap();
            assert_eq!(i.total_len, s.len());
            let want = if k < 2 { 1348 } else { 4000 - 2 * 1348 };
            assert_eq!(s.len(), 20 + 32 + want);
            // Sequence numbers wrap; the id counts up; DF stays.
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, 0xffff_f000u32.wrapping_add(1348 * k as u32));
            assert_eq!(
                u16::from_be_bytes([s[4], s[5]]),
                0xfff0u16.wrapping_add(k as u16)
            );
            assert!(i.dont_fragment);
            // CWR on the first only; FIN and PSH on the last only; ACK on all.
            let f = s[33];
            assert_eq!(f & CWR != 0, k == 0);
            assert_eq!(f & (FIN | PSH) != 0, k == 2);
            assert_eq!(f & (FIN | PSH), if k == 2 { FIN | PSH } else { 0 });
            assert_ne!(f & 0x10, 0);
            // The options (timestamps) are copied to every segment.
            assert_eq!(&s[40..52], &agg[40..52]);
            joined.extend_from_slice(&s[52..]);
        }
        assert_eq!(joined, data);
    }

    #[test]
    fn a_tcp6_partial_checksum_is_finished_but_its_aggregates_are_left_to_the_kernel() {
        let mut p = tcp6_partial(5, 0x10, &payload(3000));
        let off = Offload {
            partial: partial_tcp(40),
            gso: None,
        };
        let out = collect(&mut p, &off).unwrap();
        assert!(checksums_ok(&out[0]));
        let mut agg = tcp6_partial(5, 0x10, &payload(3000));
        let gso = Offload {
            partial: partial_tcp(40),
            gso: Some(Gso {
                kind: GsoKind::Other(4),
                size: 1440,
            }),
        };
        assert_eq!(collect(&mut agg, &gso), Err(OffloadError::Unsupported));
    }

    #[test]
    fn an_aggregate_of_one_segment_or_none_is_one_packet() {
        for n in [0usize, 1, 1348] {
            let mut agg = tcp4_partial(1, 0x10, &payload(n), false);
            let segs = collect(&mut agg, &tcp4_aggregate(1348)).unwrap();
            assert_eq!(segs.len(), 1, "{n} bytes");
            assert!(checksums_ok(&segs[0]));
            assert_eq!(segs[0].len(), 52 + n);
        }
    }

    #[test]
    fn what_is_not_a_plain_tcp_aggregate_is_refused() {
        let gso4 = Some(Gso {
            kind: GsoKind::Tcp4,
            size: 1000,
        });
        let agg = tcp4_partial(1, 0x10, &payload(3000), true);
        let cases: Vec<(Vec<u8>, Offload, OffloadError)> = vec![
            // UDP aggregates are segmented by the kernel (the hub does not announce them).
            (
                agg.clone(),
                Offload {
                    partial: partial_tcp(20),
                    gso: Some(Gso {
                        kind: GsoKind::Other(5),
                        size: 1000,
                    }),
                },
                OffloadError::Unsupported,
            ),
            // The checksum start is not this packet's TCP header (an encapsulated flow).
            (
                agg.clone(),
                Offload {
                    partial: partial_tcp(44),
                    gso: gso4,
                },
                OffloadError::Malformed,
            ),
            // Wrong IP version for the kind.
            (
                tcp6_partial(1, 0x10, &payload(3000)),
                Offload {
                    partial: partial_tcp(40),
                    gso: gso4,
                },
                OffloadError::Malformed,
            ),
            // Not TCP.
            (
                {
                    let mut p = agg.clone();
                    p[9] = 17;
                    p
                },
                Offload {
                    partial: partial_tcp(20),
                    gso: gso4,
                },
                OffloadError::Malformed,
            ),
            // Zero segment size.
            (agg.clone(), tcp4_aggregate(0), OffloadError::Malformed),
            // A checksum field past the end.
            (
                agg[..60].to_vec(),
                Offload {
                    partial: Some(Partial {
                        start: 20,
                        offset: 70,
                    }),
                    gso: None,
                },
                OffloadError::Malformed,
            ),
        ];
        for (i, (mut p, off, want)) in cases.into_iter().enumerate() {
            let mut emitted = 0;
            let mut seg = vec![0u8; 65536];
            let r = finish(&mut p, &off, &mut seg, &mut |_| emitted += 1);
            assert_eq!(r, Err(want), "case {i}");
            assert_eq!(emitted, 0, "case {i}");
        }
        // A segment buffer too small for one segment.
        let mut p = agg;
        let mut seg = vec![0u8; 500];
        let r = finish(
            &mut p,
            &Offload {
                partial: None,
                gso: gso4,
            },
            &mut seg,
            &mut |_| {},
        );
        assert_eq!(r, Err(OffloadError::TooBig));
    }

    proptest! {
        /// Any bytes and any offload: no panic, and whatever is emitted fits the buffers.
        #[test]
        fn hostile_input_never_panics(
            mut pkt in proptest::collection::vec(any::<u8>(), 0..200),
            start in 0usize..300, offset in 0usize..300, size in 0u16..300,
            kind in 0u8..4, first in prop_oneof![Just(0x45u8), Just(0x60u8), any::<u8>()],
        ) {
            if let Some(b) = pkt.first_mut() { *b = first; }
            let gso = match kind {
                0 => None,
                1 => Some(Gso { kind: GsoKind::Tcp4, size }),
                _ => Some(Gso { kind: GsoKind::Other(kind), size }),
            };
            let off = Offload { partial: Some(Partial { start, offset }), gso };
            let mut seg = vec![0u8; 256];
            let _ = finish(&mut pkt, &off, &mut seg, &mut |s| assert!(s.len() <= 256));
        }

        /// Every aggregate comes back as valid segments carrying its payload in order.
        #[test]
        fn segments_carry_the_payload(n in 0usize..9000, mss in 1u16..2000, df in any::<bool>()) {
            let data = payload(n);
            let mut agg = tcp4_partial(9, 0x18, &data, df);
            let hdr = agg.len() - n;
            let segs = collect(&mut agg, &tcp4_aggregate(mss)).unwrap();
            prop_assert_eq!(segs.len(), n.div_ceil(usize::from(mss)).max(1));
            let mut joined = Vec::new();
            for s in &segs {
                prop_assert!(checksums_ok(s));
                prop_assert!(s.len() <= hdr + usize::from(mss));
                joined.extend_from_slice(&s[hdr..]);
            }
            prop_assert_eq!(joined, data);
        }
    }
}
