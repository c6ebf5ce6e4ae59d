//! Inner header packing: the IPv4 + TCP/UDP headers of a flow's packets, sent in 15-29 bytes
//! instead of 28-52 once the peer knows the flow.
//!
//! Every tunnel datagram costs 66 bytes (outer IPv4 + UDP 28, seal 26, PACKED frame header 12);
//! a client's full-size TCP packet adds 52 bytes of its own IPv4 + TCP + timestamp headers, most
//! of which never change within a flow. Packing sends the changing fields only:
//!
//! ```text
//! context   u16   index (10 bits) << 6 | generation (6 bits), in the DATA_INSTALL / DATA_PACKED frame
//! packed    tos u8 | ip id u16 | TCP: seq u32 | ack u32 | offset+flags u16 | window u16 | checksum u16
//!                                     | timestamps u64 (offset 8) or the raw options (other offsets)
//!                               | UDP: checksum u16
//!           then the payload
//! ```
//! Everything else comes back from the flow's context (addresses, ports, protocol, TTL, the
//! don't-fragment flag) or from the packet itself (IPv4 total length, UDP length, the IPv4 header
//! checksum, recomputed). The TCP and UDP checksums travel untouched: they still prove the
//! payload end to end (the hub finishes offloaded ones before a packet gets here, see
//! [`super::offload`]).
//!
//! ## Contexts never go wrong, only unused
//! The sender ([`Packer`]) owns the context table: it picks an index for a new flow and sends the
//! flow's packets whole, as DATA_INSTALL frames, until one of them is acknowledged. Only then
//! does it send DATA_PACKED frames. The receiver ([`Unpacker`]) installs a context from every
//! DATA_INSTALL frame before anything else is done with it (even a duplicate), so an
//! acknowledged install means an installed context: reordering and loss across links cannot
//! make a packed frame arrive before its context.
//!
//! An index is reused for another flow (or for the same flow with a new TTL or DF flag) under a
//! new generation. The receiver refuses an install older than the one it holds, and a packed
//! frame whose generation differs from its context's: a late packet of the old flow is dropped
//! and counted, never rebuilt with another flow's addresses. The sender forgets what it had
//! confirmed when the session handshakes (a restarted peer has an empty table); the receiver's
//! table lives as long as the session.
//!
//! IPv6, IP options, fragments, TCP's urgent pointer and packets whose IPv4 checksum is wrong
//! travel whole, as before. Nothing here allocates per packet; the tables are bounded by
//! [`CONTEXTS`].

use super::fasthash::FastMap;

use super::packet::{ipproto, set_ipv4_len, PlainV4};
use super::wire::DataForm;

/// Contexts per direction of a session (the index has 10 bits).
pub(crate) const CONTEXTS: usize = 1024;
/// The longest packed header: tos, id, TCP fixed fields, 40 bytes of options.
pub const MAX_PACKED_HEAD: usize = 3 + 16 + 40;

const GEN_BITS: u16 = 6;
const GEN_MASK: u16 = (1 << GEN_BITS) - 1;

/// NOP, NOP, timestamp kind 8 length 10: the options of nearly every TCP segment.
const TS_OPTIONS: [u8; 4] = [1, 1, 8, 10];

/// How the DATA frame carries one packet: its form, and for [`DataForm::Packed`] the packed
/// header's length (written to the caller's buffer) and where the payload starts in the packet
/// (both 0 otherwise: the packet goes as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    pub(crate) form: DataForm,
    pub(crate) head_len: usize,
    pub(crate) body: usize,
}

impl Packing {
    pub(crate) fn whole(form: DataForm) -> Packing {
        Packing {
            form,
            head_len: 0,
            body: 0,
        }
    }
}

/// The fields that define a flow's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
}

/// The per-flow fields a packed packet does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Template {
    key: FlowKey,
    ttl: u8,
    /// The IPv4 flags + fragment offset word: 0x4000 (DF) or 0.
    frag: u16,
}

/// What the sender checked about a packet it may pack.
#[derive(Debug, Clone, Copy)]
struct Shape {
    tmpl: Template,
    /// Bytes of IPv4 + TCP/UDP header (the payload starts here).
    header: usize,
}

/// Reads a packet the packer knows how to rebuild exactly; None means it travels whole. The
/// layout (IPv4 without options or fragmentation, TCP or UDP) is the packet view's
/// [`PlainV4`]; what is left here is what the packed header does not carry.
fn shape(p: &[u8]) -> Option<Shape> {
    let pkt = PlainV4::parse(p)?;
    let l4 = pkt.l4_header();
    match pkt.proto() {
        ipproto::TCP => {
            // The urgent pointer is not carried: an urgent segment goes whole. Options of
            // 12 bytes are carried as a timestamp only.
            if l4[13] & 0x20 != 0 || l4[18..20] != [0, 0] {
                return None;
            }
            if l4.len() == 32 && l4[20..24] != TS_OPTIONS {
                return None;
            }
        }
        // The UDP length is not carried: it must be the packet's.
        _ => {
            if usize::from(u16::from_be_bytes([l4[4], l4[5]])) != p.len() - 20 {
                return None;
            }
        }
    }
    let (src, dst) = pkt.addrs();
    let (sport, dport) = pkt.ports();
    Some(Shape {
        tmpl: Template {
            key: FlowKey {
                src,
                dst,
                proto: pkt.proto(),
                sport,
                dport,
            },
            ttl: pkt.ttl(),
            frag: pkt.frag_word(),
        },
        header: pkt.payload_at(),
    })
}

/// Writes the packed header of `p` (shaped as `s`) into `out`; its length.
fn write_packed(p: &[u8], s: &Shape, out: &mut [u8; MAX_PACKED_HEAD]) -> usize {
    out[0] = p[1]; // tos
    out[1..3].copy_from_slice(&p[4..6]); // id
    match s.tmpl.key.proto {
        ipproto::TCP => {
            out[3..11].copy_from_slice(&p[24..32]); // seq, ack
            out[11..17].copy_from_slice(&p[32..38]); // offset+flags, window, checksum
            let opts = &p[40..s.header];
            if opts.len() == 12 {
                out[17..25].copy_from_slice(&opts[4..12]);
                25
            } else {
                out[17..17 + opts.len()].copy_from_slice(opts);
                17 + opts.len()
            }
        }
        _ => {
            out[3..5].copy_from_slice(&p[26..28]); // UDP checksum
            5
        }
    }
}

fn wire_ctx(index: usize, generation: u16) -> u16 {
    ((index as u16) << GEN_BITS) | (generation & GEN_MASK)
}

fn split_ctx(ctx: u16) -> (usize, u16) {
    (usize::from(ctx >> GEN_BITS), ctx & GEN_MASK)
}

/// Counters of the packer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Packets sent packed.
    pub packed: u64,
    /// Packets sent whole to install their flow's context.
    pub installs: u64,
    /// Packets sent whole because they cannot be packed (not IPv4 TCP/UDP, options, ...).
    pub whole: u64,
    /// Header bytes packing saved.
    pub saved_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct SendCtx {
    tmpl: Template,
    generation: u16,
    confirmed: bool,
    /// Used since the allocation clock last passed (second chance).
    used: bool,
}

/// The sending side: decides, per packet, whether it goes whole, installs or packed.
#[derive(Debug, Default)]
pub struct Packer {
    flows: FastMap<FlowKey, u16>,
    ctxs: Vec<SendCtx>,
    hand: usize,
    stats: PackStats,
}

impl Packer {
    pub fn new() -> Packer {
        Packer::default()
    }

    pub fn stats(&self) -> PackStats {
        self.stats
    }

    /// How to send `p` now; when packed, the packed header is in `head`.
    pub fn pack(&mut self, p: &[u8], head: &mut [u8; MAX_PACKED_HEAD]) -> Packing {
        let Some(s) = shape(p) else {
            self.stats.whole += 1;
            return Packing::whole(DataForm::Whole);
        };
        let i = match self.flows.get(&s.tmpl.key) {
            Some(&i) => usize::from(i),
            None => self.allocate(s.tmpl),
        };
        let c = &mut self.ctxs[i];
        c.used = true;
        if c.tmpl != s.tmpl {
            // Same flow, a new TTL or DF flag: a new generation of its context.
            c.tmpl = s.tmpl;
            c.generation = (c.generation + 1) & GEN_MASK;
            c.confirmed = false;
        }
        let ctx = wire_ctx(i, c.generation);
        if !c.confirmed {
            self.stats.installs += 1;
            return Packing::whole(DataForm::Install(ctx));
        }
        let head_len = write_packed(p, &s, head);
        self.stats.packed += 1;
        self.stats.saved_bytes += (s.header - head_len) as u64;
        Packing {
            form: DataForm::Packed(ctx),
            head_len,
            body: s.header,
        }
    }

    /// An install of `ctx` was acknowledged: the peer holds that context.
    pub fn confirm(&mut self, ctx: u16) {
        let (i, generation) = split_ctx(ctx);
        if let Some(c) = self.ctxs.get_mut(i) {
            if c.generation == generation {
                c.confirmed = true;
            }
        }
    }

    /// The session handshook: the peer may have restarted with an empty table.
    pub(crate) fn forget_confirmations(&mut self) {
        for c in &mut self.ctxs {
            c.confirmed = false;
        }
    }

    /// A context index for a new flow: a free one, else the first not used since the clock
    /// hand last passed it (second chance), under a new generation.
    fn allocate(&mut self, tmpl: Template) -> usize {
        if self.ctxs.len() < CONTEXTS {
            self.ctxs.push(SendCtx {
                tmpl,
                generation: 0,
                confirmed: false,
                used: false,
            });
            let i = self.ctxs.len() - 1;
            self.flows.insert(tmpl.key, i as u16);
            return i;
        }
        let i = loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % CONTEXTS;
            let c = &mut self.ctxs[i];
            if !c.used {
                break i;
            }
            c.used = false;
        };
        let c = &mut self.ctxs[i];
        if self.flows.get(&c.tmpl.key) == Some(&(i as u16)) {
            self.flows.remove(&c.tmpl.key);
        }
        c.tmpl = tmpl;
        c.generation = (c.generation + 1) & GEN_MASK;
        c.confirmed = false;
        self.flows.insert(tmpl.key, i as u16);
        i
    }
}

/// Why a packed frame could not be rebuilt (the packet is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnpackError {
    /// No context at that index, or another generation of it.
    UnknownContext,
    /// The packed header is shorter than its fields say.
    Truncated,
}

impl core::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            UnpackError::UnknownContext => "packed frame of an unknown context",
            UnpackError::Truncated => "packed header truncated",
        })
    }
}

impl std::error::Error for UnpackError {}

/// The receiving side: contexts installed by the peer, and packed frames rebuilt from them.
#[derive(Debug, Default)]
pub struct Unpacker {
    ctxs: Vec<Option<(u16, Template)>>,
}

/// Whether generation `a` is `b` or newer (within half the generation space).
fn same_or_newer(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) & GEN_MASK) < (1 << (GEN_BITS - 1))
}

impl Unpacker {
    pub fn new() -> Unpacker {
        Unpacker::default()
    }

    /// A DATA_INSTALL frame carried `p` for context `ctx`; false if `p` cannot define a context
    /// (the sender never installs such a packet) or an older generation arrived late.
    pub fn install(&mut self, ctx: u16, p: &[u8]) -> bool {
        let Some(s) = shape(p) else { return false };
        let (i, generation) = split_ctx(ctx);
        if i >= CONTEXTS {
            return false;
        }
        if self.ctxs.len() <= i {
            self.ctxs.resize(i + 1, None);
        }
        if let Some((g, _)) = self.ctxs[i] {
            if !same_or_newer(generation, g) {
                return false;
            }
        }
        self.ctxs[i] = Some((generation, s.tmpl));
        true
    }

    /// Rebuilds the packet of a DATA_PACKED frame for context `ctx` into `out` (cleared first).
    pub fn unpack(&self, ctx: u16, packed: &[u8], out: &mut Vec<u8>) -> Result<(), UnpackError> {
        let (i, generation) = split_ctx(ctx);
        let t = match self.ctxs.get(i) {
            Some(Some((g, t))) if *g == generation => *t,
            _ => return Err(UnpackError::UnknownContext),
        };
        if packed.len() < 5 {
            return Err(UnpackError::Truncated);
        }
        out.clear();
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[1] = packed[0];
        ip[4..6].copy_from_slice(&packed[1..3]);
        ip[6..8].copy_from_slice(&t.frag.to_be_bytes());
        ip[8] = t.ttl;
        ip[9] = t.key.proto;
        ip[12..16].copy_from_slice(&t.key.src);
        ip[16..20].copy_from_slice(&t.key.dst);
        out.extend_from_slice(&ip);
        out.extend_from_slice(&t.key.sport.to_be_bytes());
        out.extend_from_slice(&t.key.dport.to_be_bytes());
        let payload = match t.key.proto {
            ipproto::TCP => {
                if packed.len() < 17 {
                    return Err(UnpackError::Truncated);
                }
                out.extend_from_slice(&packed[3..11]); // seq, ack
                out.extend_from_slice(&packed[11..17]); // offset+flags, window, checksum
                out.extend_from_slice(&[0, 0]); // urgent pointer
                let off = usize::from(packed[11] >> 4) * 4;
                if off < 20 {
                    return Err(UnpackError::Truncated);
                }
                if off == 32 {
                    let ts = packed.get(17..25).ok_or(UnpackError::Truncated)?;
                    out.extend_from_slice(&TS_OPTIONS);
                    out.extend_from_slice(ts);
                    25
                } else {
                    let opts = packed
                        .get(17..17 + off - 20)
                        .ok_or(UnpackError::Truncated)?;
                    out.extend_from_slice(opts);
                    17 + off - 20
                }
            }
            _ => {
                let len = (packed.len() - 5 + 8) as u16;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&packed[3..5]);
                5
            }
        };
        out.extend_from_slice(&packed[payload..]);
        let total = out.len();
        if total > usize::from(u16::MAX) {
            return Err(UnpackError::Truncated);
        }
        set_ipv4_len(&mut out[..20], total as u16);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::packet::checksum;

    /// An IPv4 packet with a valid header checksum: `l4` is the TCP or UDP header and payload.
    fn ipv4(proto: u8, src: [u8; 4], ttl: u8, id: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0x02, 0, 0, 0, 0, 0x40, 0, ttl, proto, 0, 0];
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&[198, 51, 100, 7]);
        p.extend_from_slice(l4);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let sum = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    fn tcp(sport: u16, seq: u32, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let off = (20 + options.len()) / 4;
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&443u16.to_be_bytes());
        t.extend_from_slice(&seq.to_be_bytes());
        t.extend_from_slice(&0x0102_0304u32.to_be_bytes());
        t.extend_from_slice(&[(off as u8) << 4, 0x18, 0x01, 0xf5, 0xab, 0xcd, 0, 0]);
        t.extend_from_slice(options);
        t.extend_from_slice(payload);
        t
    }

    fn ts_options() -> Vec<u8> {
        let mut o = TS_OPTIONS.to_vec();
        o.extend_from_slice(&[0, 0, 1, 2, 0, 0, 3, 4]);
        o
    }

    fn tcp_ts(sport: u16, seq: u32) -> Vec<u8> {
        ipv4(
            6,
            [10, 0, 0, 2],
            63,
            seq as u16,
            &tcp(sport, seq, &ts_options(), b"hello, world"),
        )
    }

    fn udp(sport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&53u16.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0x12, 0x34]);
        u.extend_from_slice(payload);
        ipv4(17, [10, 0, 0, 3], 64, 9, &u)
    }

    /// Sends `p` through a packer and an unpacker the way a session does; what arrives.
    fn send(tx: &mut Packer, rx: &mut Unpacker, p: &[u8]) -> (Packing, Vec<u8>) {
        let mut head = [0u8; MAX_PACKED_HEAD];
        let f = tx.pack(p, &mut head);
        let mut out = Vec::new();
        match f.form {
            DataForm::Whole => out.extend_from_slice(p),
            DataForm::Install(ctx) => {
                assert!(rx.install(ctx, p));
                out.extend_from_slice(p);
            }
            DataForm::Packed(ctx) => {
                let mut frame = head[..f.head_len].to_vec();
                frame.extend_from_slice(&p[f.body..]);
                rx.unpack(ctx, &frame, &mut out).expect("known context");
            }
        }
        (f, out)
    }

    fn confirm(tx: &mut Packer, f: Packing) {
        if let DataForm::Install(ctx) = f.form {
            tx.confirm(ctx);
        }
    }

    #[test]
    fn a_flow_installs_until_acknowledged_then_packs_and_rebuilds_exactly() {
        let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
        let (f1, out) = send(&mut tx, &mut rx, &tcp_ts(5000, 1));
        assert!(matches!(f1.form, DataForm::Install(_)));
        assert_eq!(out, tcp_ts(5000, 1));
        let (f2, _) = send(&mut tx, &mut rx, &tcp_ts(5000, 2));
        assert_eq!(f2, f1, "still installing: nothing acknowledged yet");
        confirm(&mut tx, f1);
        let p = tcp_ts(5000, 3);
        let (f3, out) = send(&mut tx, &mut rx, &p);
        assert_eq!(
            f3,
            Packing {
                form: DataForm::Packed(0),
                head_len: 25,
                body: 52
            }
        );
        assert_eq!(out, p);
        assert_eq!(tx.stats().saved_bytes, 52 - 25);
    }

    #[test]
    fn tcp_without_options_with_sack_options_and_udp_rebuild_exactly() {
        let sack = [
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 9, 0, 0, 0, 10,
        ];
        let packets = [
            ipv4(6, [10, 0, 0, 4], 64, 1, &tcp(7000, 9, &[], &[0xaa; 100])),
            ipv4(6, [10, 0, 0, 4], 64, 2, &tcp(7001, 9, &sack, &[])),
            udp(4000, &[7; 1200]),
            udp(4001, &[]),
        ];
        let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
        for p in &packets {
            let (f, _) = send(&mut tx, &mut rx, p);
            confirm(&mut tx, f);
            let (f, out) = send(&mut tx, &mut rx, p);
            assert!(matches!(f.form, DataForm::Packed(_)), "{f:?}");
            assert_eq!(&out, p);
        }
        assert_eq!(tx.stats().packed, 4);
        assert_eq!(tx.stats().installs, 4);
    }

    #[test]
    fn what_cannot_be_rebuilt_exactly_travels_whole() {
        let good = tcp_ts(5000, 1);
        let mut bad_sum = good.clone();
        bad_sum[10] ^= 1;
        let mut fragment = good.clone();
        fragment[6] = 0x20; // more fragments
        let sum = checksum(
            &{
                let mut h = fragment[..20].to_vec();
                h[10..12].fill(0);
                h
            },
            0,
        );
        fragment[10..12].copy_from_slice(&sum.to_be_bytes());
        let urgent = ipv4(6, [10, 0, 0, 2], 64, 1, &{
            let mut t = tcp(5000, 1, &[], b"x");
            t[13] |= 0x20;
            t
        });
        let odd_options = ipv4(
            6,
            [10, 0, 0, 2],
            64,
            1,
            &tcp(5000, 1, &[2, 4, 5, 0xb4, 1, 1, 1, 1, 1, 1, 1, 0], b""),
        );
        let icmp = ipv4(1, [10, 0, 0, 2], 64, 1, &[8, 0, 0, 0, 0, 1, 0, 1]);
        let mut v6 = vec![0x60; 60];
        v6[4..6].copy_from_slice(&20u16.to_be_bytes());
        let mut short = good.clone();
        short.truncate(50);
        let mut reserved = good.clone();
        reserved[6] = 0xc0; // DF and the reserved flag
        reserved[10..12].fill(0);
        let sum = checksum(&reserved[..20], 0);
        reserved[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 4]); // link-layer padding past the IPv4 length
        let mut urgent_pointer = good.clone();
        urgent_pointer[39] = 1;
        let udp_length = {
            let mut u = udp(4000, b"abcd");
            u[25] -= 1; // shorter than the datagram
            u
        };
        for p in [
            bad_sum,
            fragment,
            urgent,
            odd_options,
            icmp,
            v6,
            short,
            reserved,
            padded,
            urgent_pointer,
            udp_length,
        ] {
            let mut tx = Packer::new();
            let mut head = [0u8; MAX_PACKED_HEAD];
            assert_eq!(
                tx.pack(&p, &mut head),
                Packing::whole(DataForm::Whole),
                "{p:?}"
            );
            assert!(!Unpacker::new().install(0, &p));
        }
    }

    #[test]
    fn a_reused_index_never_rebuilds_a_packet_with_another_flows_addresses() {
        let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
        let mut head = [0u8; MAX_PACKED_HEAD];
        // Fill the table with confirmed flows; flow 0 sends a packed packet kept "in flight".
        for i in 0..CONTEXTS as u16 {
            let (f, _) = send(&mut tx, &mut rx, &tcp_ts(1000 + i, 1));
            confirm(&mut tx, f);
        }
        let old = tcp_ts(1000, 2);
        let Packing {
            form: DataForm::Packed(old_ctx),
            head_len,
            body,
        } = tx.pack(&old, &mut head)
        else {
            panic!("confirmed flow packs");
        };
        let mut late = head[..head_len].to_vec();
        late.extend_from_slice(&old[body..]);
        // Every flow is used again since: the clock hand clears each used bit in one turn,
        // then takes the first index, flow 0's.
        for i in 1..CONTEXTS as u16 {
            send(&mut tx, &mut rx, &tcp_ts(1000 + i, 3));
        }
        let mut head2 = [0u8; MAX_PACKED_HEAD];
        let f = tx.pack(&tcp_ts(9000, 1), &mut head2);
        let DataForm::Install(new_ctx) = f.form else {
            panic!("{f:?}")
        };
        assert_eq!(split_ctx(new_ctx).0, split_ctx(old_ctx).0, "index reused");
        assert_ne!(new_ctx, old_ctx, "under a new generation");
        assert!(rx.install(new_ctx, &tcp_ts(9000, 1)));
        let mut out = Vec::new();
        assert_eq!(
            rx.unpack(old_ctx, &late, &mut out),
            Err(UnpackError::UnknownContext)
        );
        // A late install of the old generation does not take the index back.
        assert!(!rx.install(old_ctx, &tcp_ts(1000, 1)));
        // The evicted flow is a new flow again: it installs before it packs.
        assert!(matches!(
            tx.pack(&tcp_ts(1000, 4), &mut head).form,
            DataForm::Install(_)
        ));
    }

    #[test]
    fn a_new_ttl_is_a_new_generation_and_a_handshake_forgets_confirmations() {
        let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
        let p = tcp_ts(5000, 1);
        let (f, _) = send(&mut tx, &mut rx, &p);
        confirm(&mut tx, f);
        let mut q = p.clone();
        q[8] = 20;
        q[10..12].fill(0);
        let sum = checksum(&q[..20], 0);
        q[10..12].copy_from_slice(&sum.to_be_bytes());
        let (g, out) = send(&mut tx, &mut rx, &q);
        let (DataForm::Install(a), DataForm::Install(b)) = (f.form, g.form) else {
            panic!("{f:?} {g:?}")
        };
        assert_eq!(split_ctx(a).0, split_ctx(b).0);
        assert_ne!(a, b);
        assert_eq!(out, q);
        tx.confirm(a); // the old generation's ACK arriving late confirms nothing
        assert!(matches!(
            send(&mut tx, &mut rx, &q).0.form,
            DataForm::Install(_)
        ));
        tx.confirm(b);
        assert!(matches!(
            send(&mut tx, &mut rx, &q).0.form,
            DataForm::Packed(_)
        ));
        tx.forget_confirmations();
        assert!(matches!(
            send(&mut tx, &mut rx, &q).0.form,
            DataForm::Install(_)
        ));
    }

    #[test]
    fn hostile_packed_frames_are_refused_not_panicked_on() {
        let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
        let (f, _) = send(&mut tx, &mut rx, &tcp_ts(5000, 1));
        confirm(&mut tx, f);
        let (udp_f, _) = send(&mut tx, &mut rx, &udp(4000, b"x"));
        let mut out = Vec::new();
        for n in 0..25 {
            let frame = vec![0x80; n];
            let _ = rx.unpack(0, &frame, &mut out);
            let _ = rx.unpack(u16::MAX, &frame, &mut out);
        }
        assert_eq!(
            rx.unpack(0, &[0; 16], &mut out),
            Err(UnpackError::Truncated)
        );
        let DataForm::Install(u) = udp_f.form else {
            panic!()
        };
        assert_eq!(rx.unpack(u, &[0; 4], &mut out), Err(UnpackError::Truncated));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn every_packable_packet_rebuilds_exactly(
                tos in any::<u8>(), id in any::<u16>(), seq in any::<u32>(),
                flags in any::<u8>(), ts in any::<bool>(),
                opts in proptest::collection::vec(any::<u8>(), 0..10),
                payload in proptest::collection::vec(any::<u8>(), 0..200),
                udp_proto in any::<bool>(),
            ) {
                let l4 = if udp_proto {
                    let mut u = vec![0x10, 0x00, 0x00, 0x35, 0, 0, 0xee, 0xff];
                    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                    u.extend_from_slice(&payload);
                    u
                } else {
                    let o = if ts {
                        ts_options()
                    } else {
                        let n = opts.len() / 4 * 4;
                        opts[..n].to_vec()
                    };
                    let mut t = tcp(4242, seq, &o, &payload);
                    t[13] = flags & !0x20;
                    t
                };
                let mut p = ipv4(if udp_proto { 17 } else { 6 }, [10, 1, 2, 3], 61, id, &l4);
                p[1] = tos;
                p[10..12].fill(0);
                let sum = checksum(&p[..20], 0);
                p[10..12].copy_from_slice(&sum.to_be_bytes());
                let (mut tx, mut rx) = (Packer::new(), Unpacker::new());
                let (f, out) = send(&mut tx, &mut rx, &p);
                prop_assert_eq!(&out, &p);
                confirm(&mut tx, f);
                let (_, out) = send(&mut tx, &mut rx, &p);
                prop_assert_eq!(&out, &p);
            }
        }
    }
}
