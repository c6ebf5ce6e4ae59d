//! Wire format of the frames inside a sealed datagram.
//!
//! A transport datagram (see [`super::seal`]) carries, once opened, a sequence of frames. Each
//! frame starts with a kind byte; all integers are big-endian. The hot-path frames (DATA, ACK,
//! PROBE) have fixed headers; rare control messages are postcard-encoded.
//!
//! ```text
//! DATA    0x01 link u8 | link_seq u16 | seq u32 | prev u16 | inner IP packet .. to the end
//! INSTALL 0x05 link u8 | link_seq u16 | seq u32 | prev u16 | context u16 | inner IP packet ..
//! PACKED  0x06 link u8 | link_seq u16 | seq u32 | prev u16 | context u16 | packed headers, payload ..
//! ACK     0x02 link u8 | largest u16 | delay u16 (8 µs units) | bitmap u64 | rx_time u32 (µs)
//! PROBE   0x03 link u8 | id u32 | reply u8
//! CONTROL 0x04 len u16 | postcard(Control)
//! PAD     0x00 .. to the end (ignored)
//! ```
//!
//! INSTALL and PACKED are DATA frames whose packet's headers are packed by flow context (see
//! [`super::pack`]). DATA is always the last frame of a datagram: its packet runs to the end, which saves a length
//! field on every packet. Parsing never panics on hostile input: every accessor works on bounds
//! checked slices, and unknown kinds are an error, not a guess.

use serde::{Deserialize, Serialize};

use super::LinkId;

/// The protocol version, the first byte of every datagram. 2: DATA frames may pack their
/// packet's headers (INSTALL, PACKED). 3: the handshake response answers the init (the same
/// session goes on, a new one starts, or the init's time is behind; see [`super::seal`]). 4: an
/// ACK carries the receiver's receive time of `largest` (the sender measures each direction's
/// queueing delay, see [`super::owd`]).
pub const VERSION: u8 = 4;

pub(crate) const KIND_PAD: u8 = 0x00;
pub(crate) const KIND_DATA: u8 = 0x01;
pub(crate) const KIND_ACK: u8 = 0x02;
pub(crate) const KIND_PROBE: u8 = 0x03;
pub(crate) const KIND_CONTROL: u8 = 0x04;
pub(crate) const KIND_DATA_INSTALL: u8 = 0x05;
pub(crate) const KIND_DATA_PACKED: u8 = 0x06;

/// Bytes of a DATA frame before the inner packet.
pub(crate) const DATA_HEADER_LEN: usize = 10;
/// ... and of an INSTALL or PACKED frame (the context follows).
pub(crate) const DATA_CTX_HEADER_LEN: usize = DATA_HEADER_LEN + 2;
/// Bytes of an ACK frame.
pub(crate) const ACK_LEN: usize = 18;
/// Bytes of a PROBE frame.
pub(crate) const PROBE_LEN: usize = 7;
/// Bytes of a CONTROL frame before its postcard body.
pub(crate) const CONTROL_HEADER_LEN: usize = 3;

/// Why a frame could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside a frame header or body.
    Truncated,
    /// A frame kind this version does not know.
    UnknownKind(u8),
    /// A control body that does not decode.
    BadControl,
    /// The output buffer has no room for the frame.
    NoRoom,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::Truncated => f.write_str("frame truncated"),
            WireError::UnknownKind(k) => write!(f, "unknown frame kind 0x{k:02x}"),
            WireError::BadControl => f.write_str("control frame does not decode"),
            WireError::NoRoom => f.write_str("no room in the datagram for the frame"),
        }
    }
}

impl std::error::Error for WireError {}

/// The fixed header of a DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// The link this datagram was sent on.
    pub(crate) link: LinkId,
    /// Per-link sequence of DATA datagrams (wraps; the receiver extends it).
    pub(crate) link_seq: u16,
    /// Session-wide data sequence, kept by resends.
    pub(crate) seq: u32,
    /// `seq` minus the seq of the previous packet of the same flow; 0 = none known.
    pub(crate) prev: u16,
    /// Whether the packet's headers are packed (see [`super::pack`]).
    pub(crate) form: DataForm,
}

/// How a DATA frame carries its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DataForm {
    /// As it is (DATA).
    #[default]
    Whole,
    /// As it is, installing the flow's context (INSTALL).
    Install(u16),
    /// Headers packed by the flow's context (PACKED).
    Packed(u16),
}

impl DataForm {
    /// Bytes of a DATA frame's header in this form.
    pub(crate) fn header_len(self) -> usize {
        match self {
            DataForm::Whole => DATA_HEADER_LEN,
            _ => DATA_CTX_HEADER_LEN,
        }
    }
}

/// Acknowledgement of DATA datagrams received on one link, sent back on that link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub(crate) link: LinkId,
    /// Highest link_seq received on the link.
    pub(crate) largest: u16,
    /// Time between receiving `largest` and sending this ack, in units of 8 µs (saturating).
    pub(crate) delay_8us: u16,
    /// Bit i set = link_seq `largest - 1 - i` was received.
    pub(crate) bitmap: u64,
    /// When `largest` was received, in µs of the receiver's clock modulo 2^32 (its epoch is its
    /// own: only differences between ACKs mean anything to the sender).
    pub(crate) rx_time: u32,
}

/// A probe (request or reply) measuring a link that carries no data, or testing a down link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub(crate) link: LinkId,
    pub(crate) id: u32,
    pub(crate) reply: bool,
}

/// How a link may be used, as announced by the edge (mirrors the UCI `role` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LinkRole {
    /// Always carries traffic.
    #[default]
    Primary,
    /// Only when the primaries are saturated or down.
    Secondary,
    /// Only when nothing else is up.
    Backup,
    /// Not used.
    Never,
}

impl LinkRole {
    /// Every role, most used first (the simulator's scenario parser).
    #[cfg(feature = "sim")]
    pub(crate) const ALL: [LinkRole; 4] = [
        LinkRole::Primary,
        LinkRole::Secondary,
        LinkRole::Backup,
        LinkRole::Never,
    ];

    /// The role's word, as UCI's `role` option, `braid status` and the simulator's scenario
    /// files and reports spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LinkRole::Primary => "primary",
            LinkRole::Secondary => "secondary",
            LinkRole::Backup => "backup",
            LinkRole::Never => "never",
        }
    }
}

/// Rare messages, postcard-encoded. New variants go at the end (postcard encodes the index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// The edge announces a link and how the core should use it downstream.
    LinkConfig {
        link: LinkId,
        role: LinkRole,
        weight: u32,
        /// Download cap (core to edge) in bit/s, 0 = none.
        down_cap_bps: u64,
    },
    /// The edge removed a link.
    LinkRemoved { link: LinkId },
    /// The sender's advice on how long the receiver should wait for a missing packet.
    ReorderHint { wait_us: u32 },
    /// The peer is closing the session.
    Close,
    /// The edge's name for a link (its UCI section, e.g. `wan`, `lte1`), so the core's status
    /// shows it. Sent with each LinkConfig; at most [`LINK_NAME_MAX`] bytes.
    LinkName { link: LinkId, name: String },
}

/// Longest link name carried in [`Control::LinkName`] (longer names are cut on a character
/// boundary by the sender and refused by the receiver).
pub(crate) const LINK_NAME_MAX: usize = 32;

/// One frame read from a plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(DataHeader, &'a [u8]),
    Ack(Ack),
    Probe(Probe),
    Control(Control),
}

/// Iterates over the frames of an opened datagram. Stops after the first error.
pub struct FrameIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// The frames of an opened datagram.
pub fn frames(plaintext: &[u8]) -> FrameIter<'_> {
    FrameIter {
        rest: plaintext,
        failed: false,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

impl<'a> FrameIter<'a> {
    fn next_frame(&mut self) -> Result<Option<Frame<'a>>, WireError> {
        let b = self.rest;
        let Some(&kind) = b.first() else {
            return Ok(None);
        };
        let (frame, used) = match kind {
            KIND_PAD => return Ok(None),
            KIND_DATA | KIND_DATA_INSTALL | KIND_DATA_PACKED => {
                let len = if kind == KIND_DATA {
                    DATA_HEADER_LEN
                } else {
                    DATA_CTX_HEADER_LEN
                };
                if b.len() < len {
                    return Err(WireError::Truncated);
                }
                let form = match kind {
                    KIND_DATA => DataForm::Whole,
                    KIND_DATA_INSTALL => DataForm::Install(be16(b, DATA_HEADER_LEN)),
                    _ => DataForm::Packed(be16(b, DATA_HEADER_LEN)),
                };
                let h = DataHeader {
                    link: b[1],
                    link_seq: be16(b, 2),
                    seq: be32(b, 4),
                    prev: be16(b, 8),
                    form,
                };
                (Frame::Data(h, &b[len..]), b.len())
            }
            KIND_ACK => {
                if b.len() < ACK_LEN {
                    return Err(WireError::Truncated);
                }
                let a = Ack {
                    link: b[1],
                    largest: be16(b, 2),
                    delay_8us: be16(b, 4),
                    bitmap: be64(b, 6),
                    rx_time: be32(b, 14),
                };
                (Frame::Ack(a), ACK_LEN)
            }
            KIND_PROBE => {
                if b.len() < PROBE_LEN {
                    return Err(WireError::Truncated);
                }
                let p = Probe {
                    link: b[1],
                    id: be32(b, 2),
                    reply: b[6] != 0,
                };
                (Frame::Probe(p), PROBE_LEN)
            }
            KIND_CONTROL => {
                if b.len() < CONTROL_HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                let len = usize::from(be16(b, 1));
                let end = CONTROL_HEADER_LEN + len;
                let body = b.get(CONTROL_HEADER_LEN..end).ok_or(WireError::Truncated)?;
                let c: Control = postcard::from_bytes(body).map_err(|_| WireError::BadControl)?;
                (Frame::Control(c), end)
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        self.rest = &b[used..];
        Ok(Some(frame))
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_frame() {
            Ok(f) => f.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Appends frames to a plaintext buffer.
pub struct FrameWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> FrameWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        FrameWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes still free.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The frames written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn reserve(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::NoRoom);
        }
        let at = self.len;
        self.len += n;
        Ok(&mut self.buf[at..at + n])
    }

    pub fn push_ack(&mut self, a: &Ack) -> Result<(), WireError> {
        let b = self.reserve(ACK_LEN)?;
        b[0] = KIND_ACK;
        b[1] = a.link;
        b[2..4].copy_from_slice(&a.largest.to_be_bytes());
        b[4..6].copy_from_slice(&a.delay_8us.to_be_bytes());
        b[6..14].copy_from_slice(&a.bitmap.to_be_bytes());
        b[14..18].copy_from_slice(&a.rx_time.to_be_bytes());
        Ok(())
    }

    pub fn push_probe(&mut self, p: &Probe) -> Result<(), WireError> {
        let b = self.reserve(PROBE_LEN)?;
        b[0] = KIND_PROBE;
        b[1] = p.link;
        b[2..6].copy_from_slice(&p.id.to_be_bytes());
        b[6] = u8::from(p.reply);
        Ok(())
    }

    pub fn push_control(&mut self, c: &Control) -> Result<(), WireError> {
        let mut tmp = [0u8; 256];
        let body = postcard::to_slice(c, &mut tmp).map_err(|_| WireError::NoRoom)?;
        let n = body.len();
        let b = self.reserve(CONTROL_HEADER_LEN + n)?;
        b[0] = KIND_CONTROL;
        b[1..3].copy_from_slice(&(n as u16).to_be_bytes());
        b[3..].copy_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Appends the DATA frame; it must be the last frame of the datagram.
    pub fn push_data(&mut self, h: &DataHeader, packet: &[u8]) -> Result<(), WireError> {
        self.push_data_parts(h, &[], packet)
    }

    /// Appends a DATA frame whose body is `head` then `body` (a packed header and the payload).
    pub(crate) fn push_data_parts(
        &mut self,
        h: &DataHeader,
        head: &[u8],
        body: &[u8],
    ) -> Result<(), WireError> {
        let hl = h.form.header_len();
        let b = self.reserve(hl + head.len() + body.len())?;
        b[0] = match h.form {
            DataForm::Whole => KIND_DATA,
            DataForm::Install(_) => KIND_DATA_INSTALL,
            DataForm::Packed(_) => KIND_DATA_PACKED,
        };
        b[1] = h.link;
        b[2..4].copy_from_slice(&h.link_seq.to_be_bytes());
        b[4..8].copy_from_slice(&h.seq.to_be_bytes());
        b[8..10].copy_from_slice(&h.prev.to_be_bytes());
        if let DataForm::Install(c) | DataForm::Packed(c) = h.form {
            b[DATA_HEADER_LEN..hl].copy_from_slice(&c.to_be_bytes());
        }
        let (hb, bb) = b[hl..].split_at_mut(head.len());
        hb.copy_from_slice(head);
        bb.copy_from_slice(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<'a> FrameWriter<'a> {
        fn is_empty(&self) -> bool {
            self.len == 0
        }
    }

    fn write(f: impl FnOnce(&mut FrameWriter<'_>)) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let mut w = FrameWriter::new(&mut buf);
        f(&mut w);
        w.as_slice().to_vec()
    }

    fn read(bytes: &[u8]) -> Vec<Frame<'_>> {
        frames(bytes)
            .collect::<Result<Vec<_>, _>>()
            .expect("golden bytes parse")
    }

    #[test]
    fn golden_data() {
        let h = DataHeader {
            link: 2,
            link_seq: 0x0102,
            seq: 0x0a0b0c0d,
            prev: 3,
            form: DataForm::Whole,
        };
        let bytes = write(|w| w.push_data(&h, &[0x45, 0x00, 0xff]).unwrap());
        let golden = [
            0x01, // DATA
            0x02, // link 2
            0x01, 0x02, // link_seq
            0x0a, 0x0b, 0x0c, 0x0d, // seq
            0x00, 0x03, // prev
            0x45, 0x00, 0xff, // the inner packet
        ];
        assert_eq!(bytes, golden);
        assert_eq!(read(&golden), vec![Frame::Data(h, &[0x45, 0x00, 0xff][..])]);
    }

    #[test]
    fn golden_install_and_packed() {
        let mut h = DataHeader {
            link: 2,
            link_seq: 0x0102,
            seq: 0x0a0b0c0d,
            prev: 3,
            form: DataForm::Install(0x1234),
        };
        let bytes = write(|w| w.push_data(&h, &[0x45, 0x00]).unwrap());
        let golden = [
            0x05, // INSTALL
            0x02, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, // as DATA
            0x12, 0x34, // context
            0x45, 0x00, // the inner packet
        ];
        assert_eq!(bytes, golden);
        assert_eq!(read(&golden), vec![Frame::Data(h, &[0x45, 0x00][..])]);
        h.form = DataForm::Packed(0x0041);
        let bytes = write(|w| w.push_data_parts(&h, &[0xaa], &[0xbb, 0xcc]).unwrap());
        let golden = [
            0x06, // PACKED
            0x02, 0x01, 0x02, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x03, // as DATA
            0x00, 0x41, // context
            0xaa, 0xbb, 0xcc, // packed header, payload
        ];
        assert_eq!(bytes, golden);
        assert_eq!(read(&golden), vec![Frame::Data(h, &[0xaa, 0xbb, 0xcc][..])]);
        assert_eq!(
            frames(&golden[..11]).next(),
            Some(Err(WireError::Truncated))
        );
    }

    #[test]
    fn golden_ack() {
        let a = Ack {
            link: 1,
            largest: 0xfffe,
            delay_8us: 125,
            bitmap: 0x8000_0000_0000_0001,
            rx_time: 0xfedc_ba98,
        };
        let golden = [
            0x02, 0x01, // ACK on link 1
            0xff, 0xfe, // largest
            0x00, 0x7d, // delay 125 x 8 µs = 1 ms
            0x80, 0, 0, 0, 0, 0, 0, 0x01, // bitmap
            0xfe, 0xdc, 0xba, 0x98, // rx_time
        ];
        assert_eq!(write(|w| w.push_ack(&a).unwrap()), golden);
        assert_eq!(read(&golden), vec![Frame::Ack(a)]);
    }

    #[test]
    fn golden_probe() {
        let p = Probe {
            link: 7,
            id: 0xdeadbeef,
            reply: true,
        };
        let golden = [0x03, 0x07, 0xde, 0xad, 0xbe, 0xef, 0x01];
        assert_eq!(write(|w| w.push_probe(&p).unwrap()), golden);
        assert_eq!(read(&golden), vec![Frame::Probe(p)]);
    }

    #[test]
    fn golden_control() {
        let cases: [(Control, &[u8]); 5] = [
            (
                Control::LinkConfig {
                    link: 1,
                    role: LinkRole::Backup,
                    weight: 300,
                    down_cap_bps: 0,
                },
                // len 6: variant 0, link 1, role 2, weight varint 300 = ac 02, cap 0
                &[0x04, 0x00, 0x06, 0x00, 0x01, 0x02, 0xac, 0x02, 0x00],
            ),
            (
                Control::LinkRemoved { link: 9 },
                &[0x04, 0x00, 0x02, 0x01, 0x09],
            ),
            (
                Control::ReorderHint { wait_us: 40_000 },
                // varint 40000 = c0 b8 02
                &[0x04, 0x00, 0x04, 0x02, 0xc0, 0xb8, 0x02],
            ),
            (Control::Close, &[0x04, 0x00, 0x01, 0x03]),
            (
                Control::LinkName {
                    link: 1,
                    name: "wan".into(),
                },
                // len 6: variant 4, link 1, string length 3, "wan"
                &[0x04, 0x00, 0x06, 0x04, 0x01, 0x03, b'w', b'a', b'n'],
            ),
        ];
        for (c, golden) in cases {
            assert_eq!(write(|w| w.push_control(&c).unwrap()), golden, "{c:?}");
            assert_eq!(read(golden), vec![Frame::Control(c)]);
        }
    }

    #[test]
    fn several_frames_then_data() {
        let a = Ack {
            link: 0,
            largest: 1,
            delay_8us: 0,
            bitmap: 0,
            rx_time: 0,
        };
        let p = Probe {
            link: 0,
            id: 1,
            reply: false,
        };
        let h = DataHeader {
            link: 0,
            link_seq: 5,
            seq: 6,
            prev: 0,
            form: DataForm::Whole,
        };
        let bytes = write(|w| {
            w.push_ack(&a).unwrap();
            w.push_probe(&p).unwrap();
            w.push_data(&h, b"ip").unwrap();
        });
        assert_eq!(bytes.len(), ACK_LEN + PROBE_LEN + DATA_HEADER_LEN + 2);
        assert_eq!(
            read(&bytes),
            vec![Frame::Ack(a), Frame::Probe(p), Frame::Data(h, &b"ip"[..])]
        );
    }

    #[test]
    fn padding_ends_the_frames() {
        let mut bytes = write(|w| {
            w.push_probe(&Probe {
                link: 0,
                id: 0,
                reply: false,
            })
            .unwrap()
        });
        bytes.extend_from_slice(&[0, 0xff, 0xff]);
        assert_eq!(read(&bytes).len(), 1);
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            frames(&[KIND_DATA, 0, 0]).next(),
            Some(Err(WireError::Truncated))
        );
        assert_eq!(
            frames(&[KIND_ACK; ACK_LEN - 1]).next(),
            Some(Err(WireError::Truncated))
        );
        assert_eq!(
            frames(&[KIND_PROBE, 1]).next(),
            Some(Err(WireError::Truncated))
        );
        assert_eq!(
            frames(&[KIND_CONTROL, 0, 9, 3]).next(),
            Some(Err(WireError::Truncated))
        );
        assert_eq!(
            frames(&[KIND_CONTROL, 0, 1, 0x7f]).next(),
            Some(Err(WireError::BadControl))
        );
        assert_eq!(
            frames(&[0x42]).next(),
            Some(Err(WireError::UnknownKind(0x42)))
        );
        let mut it = frames(&[0x42, KIND_PROBE]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none(), "iteration stops at the first error");
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut buf = [0u8; 12];
        let mut w = FrameWriter::new(&mut buf);
        let a = Ack {
            link: 0,
            largest: 0,
            delay_8us: 0,
            bitmap: 0,
            rx_time: 0,
        };
        assert_eq!(w.push_ack(&a), Err(WireError::NoRoom));
        assert!(w.is_empty());
        let h = DataHeader {
            link: 0,
            link_seq: 0,
            seq: 0,
            prev: 0,
            form: DataForm::Whole,
        };
        assert_eq!(w.push_data(&h, &[0; 3]), Err(WireError::NoRoom));
        w.push_data(&h, &[0; 2]).unwrap();
        assert_eq!(w.remaining(), 0);
    }

    mod hostile {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes never panic, and every DATA frame read points inside the input.
            #[test]
            fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut consumed_data = false;
                for f in frames(&bytes) {
                    prop_assert!(!consumed_data, "DATA must be the last frame");
                    if let Ok(Frame::Data(_, p)) = f {
                        prop_assert!(p.len() + DATA_HEADER_LEN <= bytes.len());
                        consumed_data = true;
                    }
                }
            }

            /// What the writer writes, the reader reads back unchanged.
            #[test]
            fn round_trip(link in any::<u8>(), ls in any::<u16>(), seq in any::<u32>(), prev in any::<u16>(),
                          largest in any::<u16>(), bitmap in any::<u64>(), wait in any::<u32>(), rx_time in any::<u32>(),
                          pkt in proptest::collection::vec(any::<u8>(), 0..64), form in 0u8..3, ctx in any::<u16>()) {
                let form = match form {
                    0 => DataForm::Whole,
                    1 => DataForm::Install(ctx),
                    _ => DataForm::Packed(ctx),
                };
                let h = DataHeader { link, link_seq: ls, seq, prev, form };
                let a = Ack { link, largest, delay_8us: ls, bitmap, rx_time };
                let c = Control::ReorderHint { wait_us: wait };
                let mut buf = [0u8; 256];
                let mut w = FrameWriter::new(&mut buf);
                w.push_ack(&a).unwrap();
                w.push_control(&c).unwrap();
                w.push_data(&h, &pkt).unwrap();
                let got: Vec<_> = frames(w.as_slice()).collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(got, vec![Frame::Ack(a), Frame::Control(c), Frame::Data(h, &pkt[..])]);
            }
        }
    }
}
