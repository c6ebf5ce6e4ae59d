//! Capture and injection on the space end of the hub: a raw AF_PACKET socket.
//!
//! The socket is opened inside the space ([`Capture::open`] does it through
//! [`Space::run`]), bound to the space end, non-blocking, and filtered in the kernel (classic
//! BPF) to the frames the host routed to the hub's next hop (destination MAC = `peer_mac`), so
//! the host end's own chatter (IPv6 router solicitations, MLD, ...) never reaches braid. Frames
//! braid writes are not looped back to it (PACKET_IGNORE_OUTGOING). Receiving is batched with
//! `recvmmsg` (one syscall for up to [`BATCH`] frames). Wrap it in tokio's `AsyncFd` (it
//! implements `AsRawFd`) and call [`Capture::recv_batch`] until it returns `WouldBlock`.
//!
//! `examples/hub_bench.rs` compares this socket with `pnet_datalink` (packets/s and CPU time per
//! packet); this one was cheaper, see the report in that file's header.
//!
//! # Offloads
//! With the kernel's default offloads (checksum offload, TSO/GSO on the hosts' devices, GRO on
//! their NICs), a packet routed into the hub may have a checksum the kernel left for the device
//! to finish (CHECKSUM_PARTIAL) or be a TCP aggregate of up to 64 KB. [`Capture::open`] reads
//! both from the `virtio_net_hdr` the socket puts before each frame (`PACKET_VNET_HDR`), and
//! [`Batch::packets`] finishes them in user space ([`crate::proto::offload`]): one frame and
//! one copy per aggregate instead of one per segment, which `examples/offload_bench.rs` measured
//! cheaper than having the kernel segment before the hub. The hub's host end announces only
//! the offloads handled there, Internet checksums and TCP-over-IPv4 segmentation
//! ([`Hub::create`] sets them, see [`hub_feature`]): for every other kind (TCP over IPv6, UDP
//! GSO, tunnels, SCTP, GSO lists) the kernel segments and checksums before the frame crosses
//! the hub. Slots are therefore [`SLOT`] bytes, room for a 64 KB aggregate. Frames braid
//! writes carry a zero header (complete packets within the MTU), or for a TCP aggregate that
//! [`crate::proto::coalesce`] merged, one that asks the kernel to segment it on its way out of
//! the host ([`Capture::send_aggregate`]): the host's stack is crossed once per aggregate.

use super::space::{Hub, Space};
use super::{setsockopt, Error, Result};
use crate::proto::coalesce::{Merged, TCP_CHECKSUM};
use crate::proto::offload::{self, Gso, GsoKind, Offload, Partial};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Frames per `recvmmsg` in [`Capture::recv_batch`].
pub const BATCH: usize = 32;
/// Bytes of a batch slot: the socket's `virtio_net_hdr`, the Ethernet header and the largest
/// IP packet (an IPv6 header and a 64 KB payload).
pub(crate) const SLOT: usize = VNET_HDR_LEN + ETH_HLEN + 40 + 65535;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const ETH_HLEN: usize = 14;
/// `struct virtio_net_hdr`: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset
/// (u16 each, in the host's byte order for packet sockets).
const VNET_HDR_LEN: usize = 10;
const VNET_F_NEEDS_CSUM: u8 = 1;
const VNET_GSO_TCPV4: u8 = 1;
const VNET_GSO_ECN: u8 = 0x80;

/// Offload features of the hub's host end that [`Batch::packets`] finishes itself; the
/// kernel does every other offload (TCP over IPv6 too) before a frame crosses the hub.
const HUB_OFFLOADS: &[&str] = &[
    "tx-checksum-ip-generic",
    "tx-checksum-ipv4",
    "tx-checksum-ipv6",
    "tx-scatter-gather",
    "tx-scatter-gather-fraglist",
    "tx-generic-segmentation",
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
];

/// What the hub's host end should announce: `Some(false)` for a checksum or segmentation
/// offload not in [`HUB_OFFLOADS`], `None` (leave it) for everything else.
pub(crate) fn hub_feature(name: &str) -> Option<bool> {
    let offload = name.starts_with("tx-checksum")
        || name.starts_with("tx-gso")
        || (name.starts_with("tx-") && name.ends_with("segmentation"));
    (offload && !HUB_OFFLOADS.contains(&name)).then_some(false)
}

/// A raw packet socket on one interface.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    ifindex: u32,
    /// Frames carry a `virtio_net_hdr` (both ways).
    vnet: bool,
    /// Source MAC of frames built by [`Capture::send_ip`].
    src_mac: [u8; 6],
    /// Destination MAC of frames built by [`Capture::send_ip`].
    dst_mac: [u8; 6],
}

/// Receive buffers for [`Capture::recv_batch`]: `BATCH` slots of `SLOT` bytes (allocated, not
/// touched: pages count in memory only once a frame that large arrived).
pub struct Batch {
    data: Vec<u8>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
    n: usize,
    /// Each slot starts with a `virtio_net_hdr`.
    vnet: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            data: vec![0u8; BATCH * SLOT],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            n: 0,
            vnet: false,
        }
    }
}

impl Batch {
    /// Number of frames in the batch.
    pub fn len(&self) -> usize {
        self.n
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    fn span(&self, i: usize) -> (usize, usize) {
        let skip = if self.vnet { VNET_HDR_LEN } else { 0 };
        let len = self.lens[i].min(SLOT);
        (i * SLOT + skip.min(len), i * SLOT + len)
    }
    /// Frame `i` (Ethernet header included) as received: with the socket's offloads, a packet
    /// may still need [`Batch::packets`] to be one a wire would carry.
    pub fn frame(&self, i: usize) -> &[u8] {
        let (a, b) = self.span(i);
        &self.data[a..b]
    }
    /// Frame `i`, mutable.
    pub(crate) fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let (a, b) = self.span(i);
        &mut self.data[a..b]
    }
    /// The frames.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.n).map(|i| self.frame(i))
    }

    /// What the socket reported beside frame `i` (offsets from the IP header).
    pub(crate) fn offload(&self, i: usize) -> std::result::Result<Offload, &'static str> {
        if !self.vnet {
            return Ok(Offload::default());
        }
        let h = &self.data[i * SLOT..i * SLOT + VNET_HDR_LEN];
        let u16_at = |at: usize| usize::from(u16::from_ne_bytes([h[at], h[at + 1]]));
        let partial = if h[0] & VNET_F_NEEDS_CSUM != 0 {
            let start = u16_at(6)
                .checked_sub(ETH_HLEN)
                .ok_or("offloaded packet malformed")?;
            Some(Partial {
                start,
                offset: u16_at(8),
            })
        } else {
            None
        };
        let gso = match h[1] & !VNET_GSO_ECN {
            0 => None,
            t => Some(Gso {
                kind: match t {
                    VNET_GSO_TCPV4 => GsoKind::Tcp4,
                    other => GsoKind::Other(other),
                },
                size: u16_at(4) as u16,
            }),
        };
        Ok(Offload { partial, gso })
    }

    /// Calls `f` with each IP packet of frame `i`, as a wire would carry it: its checksum
    /// finished in place, or for an aggregate each segment in turn, built in `seg` (give it
    /// 64 KB). Returns how many packets there were (0 for a frame that is not IPv4/IPv6), or
    /// why the frame was dropped whole (for a drop counter).
    pub fn packets(
        &mut self,
        i: usize,
        seg: &mut [u8],
        f: &mut dyn FnMut(&mut [u8]),
    ) -> std::result::Result<usize, &'static str> {
        if self.truncated[i] {
            return Err("frame larger than a capture slot");
        }
        let off = self.offload(i)?;
        let frame = self.frame_mut(i);
        if ip_payload(frame).is_none() {
            return Ok(0);
        }
        offload::finish(&mut frame[ETH_HLEN..], &off, seg, f).map_err(|e| e.reason())
    }
}

/// The IP packet inside an Ethernet frame (IPv4 or IPv6 ethertype), if any.
pub fn ip_payload(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < ETH_HLEN {
        return None;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 | 0x86dd => Some(&frame[ETH_HLEN..]),
        _ => None,
    }
}

fn bpf_dst_mac(mac: [u8; 6]) -> [libc::sock_filter; 6] {
    let hi = u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let lo = u32::from(u16::from_be_bytes([mac[4], mac[5]]));
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    [
        ins(LD_W_ABS, 0, 0, 0),
        ins(JEQ_K, 0, 3, hi),
        ins(LD_H_ABS, 0, 0, 4),
        ins(JEQ_K, 0, 1, lo),
        ins(RET_K, 0, 0, 0x40000),
        ins(RET_K, 0, 0, 0),
    ]
}

/// Sizes `fd`'s receive buffer to `bytes`: `SO_RCVBUFFORCE` (beyond `rmem_max`, with
/// CAP_NET_ADMIN), else `SO_RCVBUF` (capped by the host's `rmem_max`).
fn receive_buffer(fd: impl std::os::fd::AsFd, bytes: usize) -> io::Result<()> {
    let buf = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let fd = fd.as_fd();
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, buf)
        .or_else(|_| setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, buf))
}

/// An `iovec` over `b`, for a write (the kernel only reads it).
fn iovec(b: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    }
}

impl Capture {
    /// Opens the capture on the hub's space end, inside `space`: receives the frames the host
    /// steered into the hub; [`Capture::send_ip`] writes IP packets toward the host (and on to
    /// the client).
    ///
    /// Frames come with the offloads [`Hub::create`] left on the host end (see the module
    /// doc): [`Batch::packets`] finishes them.
    pub fn open(space: &Space, hub: &Hub) -> Result<Capture> {
        let (ifindex, peer, host) = (hub.space_index, hub.config.peer_mac, hub.host_mac);
        let mut cap = space.run(move || Capture::open_raw(ifindex, Some(peer), peer, host))??;
        cap.enable_offloads()?;
        Ok(cap)
    }

    /// Sets the socket's receive buffer (kernel memory: frames the daemon has not read yet),
    /// from the memory budget (`config::budget`, `Bounds::capture_bytes`); [`Capture::open`]
    /// leaves 4 MiB. Beyond the host's `rmem_max` only with CAP_NET_ADMIN (`SO_RCVBUFFORCE`).
    pub(crate) fn set_receive_buffer(&self, bytes: usize) -> Result<()> {
        receive_buffer(&self.fd, bytes)
            .map_err(|e| Error::new("SO_RCVBUF on the capture socket", e))
    }

    /// Makes the socket report offloads beside each frame (`PACKET_VNET_HDR`): received
    /// frames may then be partial or aggregates, which [`Batch::packets`] finishes, and sent
    /// frames get a header saying they are complete.
    pub fn enable_offloads(&mut self) -> Result<()> {
        let one: libc::c_int = 1;
        setsockopt(&self.fd, libc::SOL_PACKET, PACKET_VNET_HDR, one)
            .map_err(|e| Error::new("PACKET_VNET_HDR on the capture socket", e))?;
        self.vnet = true;
        Ok(())
    }

    /// Opens a packet socket on `ifindex` of the calling thread's namespace. With `filter`, only
    /// frames whose destination MAC is `filter` are received. `src_mac`/`dst_mac` are used by
    /// [`Capture::send_ip`].
    pub fn open_raw(
        ifindex: u32,
        filter: Option<[u8; 6]>,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
    ) -> Result<Capture> {
        let what = || format!("open packet socket on link #{ifindex}");
        // Protocol 0: receive nothing until bound, so no foreign frame slips in before the filter.
        let fd = super::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
            .map_err(|e| Error::new(what(), e))?;
        let raw = fd.as_raw_fd();
        if let Some(mac) = filter {
            let prog = bpf_dst_mac(mac);
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, fprog)
                .map_err(|e| Error::new(format!("{}: attach filter", what()), e))?;
        }
        let one: libc::c_int = 1;
        // Old kernels (< 4.20) lack it: then braid sees its own writes and must ignore them.
        let _ = setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, one);
        let _ = receive_buffer(&fd, 4 << 20);
        // SAFETY: zeroed sockaddr_ll is valid.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = ETH_P_ALL.to_be();
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: sa is a valid sockaddr_ll.
        let r = unsafe {
            libc::bind(
                raw,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Error::last(format!("{}: bind", what())));
        }
        Ok(Capture {
            fd,
            ifindex,
            vnet: false,
            src_mac,
            dst_mac,
        })
    }

    /// A second handle on the same socket (e.g. one for tokio, one kept by the owner).
    pub fn try_clone(&self) -> Result<Capture> {
        Ok(Capture {
            fd: self
                .fd
                .try_clone()
                .map_err(|e| Error::new("duplicate the capture socket", e))?,
            ifindex: self.ifindex,
            vnet: self.vnet,
            src_mac: self.src_mac,
            dst_mac: self.dst_mac,
        })
    }

    /// Receives up to [`BATCH`] frames in one syscall; `WouldBlock` when none is queued.
    pub fn recv_batch(&self, b: &mut Batch) -> io::Result<usize> {
        let base = b.data.as_mut_ptr();
        let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            // SAFETY: i * SLOT + SLOT <= data.len() by construction.
            iov_base: unsafe { base.add(i * SLOT) }.cast(),
            iov_len: SLOT,
        });
        // SAFETY: zeroed mmsghdr is valid (null name, no control).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: msgs and the iovecs point into live buffers for the call's duration.
        let n = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                // c_int on glibc, c_uint on musl.
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            b.n = 0;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            b.lens[i] = m.msg_len as usize;
            b.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        b.n = n;
        b.vnet = self.vnet;
        Ok(n)
    }

    /// Writes one raw frame (a complete one: the `virtio_net_hdr`, if any, is added here).
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        let vnet = [0u8; VNET_HDR_LEN];
        let iov = [iovec(&vnet), iovec(frame)];
        let skip = usize::from(!self.vnet);
        let n = self.sendmsg(&iov[skip..])?;
        Ok(n.saturating_sub(VNET_HDR_LEN * (1 - skip)))
    }

    /// One `sendmsg` of the buffers `iov` points to, without blocking; the bytes sent.
    fn sendmsg(&self, iov: &[libc::iovec]) -> io::Result<usize> {
        // SAFETY: zeroed msghdr is valid (null name, no control).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: msg and the buffers of `iov` (the caller's) are live for the call.
        let n = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The header braid puts before an IP packet it writes: the zero `virtio_net_hdr` (a
    /// complete packet) when the socket has offloads enabled, then Ethernet from `src_mac` to
    /// `dst_mac`. Returns the buffer and where the header starts in it.
    fn head(&self, packet: &[u8]) -> io::Result<([u8; VNET_HDR_LEN + ETH_HLEN], usize)> {
        let ethertype: u16 = match packet.first().map(|b| b >> 4) {
            Some(4) => 0x0800,
            Some(6) => 0x86dd,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not an IPv4/IPv6 packet",
                ))
            }
        };
        let mut h = [0u8; VNET_HDR_LEN + ETH_HLEN];
        let e = &mut h[VNET_HDR_LEN..];
        e[0..6].copy_from_slice(&self.dst_mac);
        e[6..12].copy_from_slice(&self.src_mac);
        e[12..14].copy_from_slice(&ethertype.to_be_bytes());
        Ok((h, if self.vnet { 0 } else { VNET_HDR_LEN }))
    }

    /// Writes an IP packet (v4 or v6, by its version nibble) in an Ethernet frame from
    /// `src_mac` to `dst_mac`. Uses a gather write, so the packet is not copied. Returns the
    /// packet's length.
    pub fn send_ip(&self, packet: &[u8]) -> io::Result<usize> {
        let (h, at) = self.head(packet)?;
        self.write_iov(&h[at..], packet)
    }

    /// Frames carry a `virtio_net_hdr` ([`Capture::enable_offloads`]): only then can
    /// [`Capture::send_aggregate`] write an aggregate.
    pub(crate) fn offloads(&self) -> bool {
        self.vnet
    }

    /// Writes an IP packet as [`Capture::send_ip`] does or, with `merged`, a TCP/IPv4
    /// aggregate ([`crate::proto::coalesce`]) that the kernel cuts into its segments on its way
    /// out of the host (its checksum partial, in the `virtio_net_hdr`). Aggregates need
    /// [`Capture::offloads`]: without, `InvalidInput` and nothing sent.
    pub fn send_aggregate(&self, packet: &[u8], merged: Option<Merged>) -> io::Result<usize> {
        let Some(m) = merged else {
            return self.send_ip(packet);
        };
        if !self.vnet || m.l4 + TCP_CHECKSUM + 2 > m.headers || m.headers >= packet.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an aggregate needs the socket's offloads and its headers",
            ));
        }
        let (mut h, _) = self.head(packet)?;
        let ne = |v: usize| (v as u16).to_ne_bytes();
        h[0] = VNET_F_NEEDS_CSUM;
        h[1] = VNET_GSO_TCPV4;
        h[2..4].copy_from_slice(&ne(ETH_HLEN + m.headers));
        h[4..6].copy_from_slice(&m.size.to_ne_bytes());
        h[6..8].copy_from_slice(&ne(ETH_HLEN + m.l4));
        h[8..10].copy_from_slice(&ne(TCP_CHECKSUM));
        self.write_iov(&h, packet)
    }

    /// One `sendmsg` of `head` then `packet`; returns the packet's length.
    fn write_iov(&self, head: &[u8], packet: &[u8]) -> io::Result<usize> {
        self.sendmsg(&[iovec(head), iovec(packet)])?;
        Ok(packet.len())
    }

    /// Writes up to [`BATCH`] IP packets with one `sendmmsg` (see [`Capture::send_ip`] for the
    /// framing). Returns how many were sent; packets that are not IPv4/IPv6 are refused with
    /// `InvalidInput` before anything is sent.
    pub fn send_ip_batch(&self, packets: &[&[u8]]) -> io::Result<usize> {
        let n = packets.len().min(BATCH);
        let mut heads = [([0u8; VNET_HDR_LEN + ETH_HLEN], 0usize); BATCH];
        for (h, p) in heads.iter_mut().zip(&packets[..n]) {
            *h = self.head(p)?;
        }
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2 * BATCH];
        // SAFETY: zeroed mmsghdr is valid (null name, no control).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..n {
            let (h, at) = &heads[i];
            iov[2 * i] = iovec(&h[*at..]);
            iov[2 * i + 1] = iovec(packets[i]);
        }
        // Pointers into `iov` are taken only after it is complete.
        let base = iov.as_mut_ptr();
        for (i, m) in msgs.iter_mut().take(n).enumerate() {
            // SAFETY: 2 * i + 1 < 2 * BATCH.
            m.msg_hdr.msg_iov = unsafe { base.add(2 * i) };
            m.msg_hdr.msg_iovlen = 2;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: msgs and their iovecs point to live buffers for the call's duration.
        let r = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                // c_int on glibc, c_uint on musl.
                libc::MSG_DONTWAIT as _,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }
}

fd_of_field!(Capture, fd);

/// A [`Capture`] registered with tokio (must be created inside a runtime).
#[derive(Debug)]
pub struct AsyncCapture {
    inner: tokio::io::unix::AsyncFd<Capture>,
}

impl AsyncCapture {
    /// Registers `cap` with the current tokio runtime.
    pub fn new(cap: Capture) -> io::Result<AsyncCapture> {
        // SAFETY: `Capture` owns a valid descriptor and never replaces or closes it while the
        // AsyncFd owns the Capture.
        let inner = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(cap, tokio::io::Interest::READABLE)?
        };
        Ok(AsyncCapture { inner })
    }

    /// Waits for frames and receives up to [`BATCH`] of them. Cancel-safe.
    pub async fn recv_batch(&self, b: &mut Batch) -> io::Result<usize> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|c| c.get_ref().recv_batch(b)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_payload_by_ethertype() {
        let mut f = vec![0u8; 20];
        f[12] = 0x08;
        assert_eq!(ip_payload(&f).unwrap().len(), 6);
        f[12] = 0x86;
        f[13] = 0xdd;
        assert!(ip_payload(&f).is_some());
        f[12] = 0x08;
        f[13] = 0x06; // ARP
        assert!(ip_payload(&f).is_none());
        assert!(ip_payload(&f[..5]).is_none());
    }

    #[test]
    fn the_hub_announces_only_the_offloads_braid_finishes() {
        for keep in [
            "tx-checksum-ip-generic",
            "tx-tcp-segmentation",
            "tx-scatter-gather",
            "rx-gro",
            "rx-checksum",
            "highdma",
        ] {
            assert_eq!(hub_feature(keep), None, "{keep}");
        }
        for off in [
            "tx-udp-segmentation",
            "tx-gre-segmentation",
            "tx-udp_tnl-csum-segmentation",
            "tx-gso-list",
            "tx-gso-partial",
            "tx-sctp-segmentation",
            "tx-checksum-sctp",
            "tx-tcp-accecn-segmentation",
            "tx-tcp6-segmentation",
        ] {
            assert_eq!(hub_feature(off), Some(false), "{off}");
        }
    }

    /// A frame as the socket delivers it with PACKET_VNET_HDR: the header (host byte order,
    /// offsets from the Ethernet header), then the frame.
    fn vnet_frame(b: &mut Batch, i: usize, hdr: [u16; 4], flags: u8, gso: u8, ip: &[u8]) {
        let at = i * SLOT;
        b.data[at] = flags;
        b.data[at + 1] = gso;
        for (k, v) in hdr.iter().enumerate() {
            b.data[at + 2 + 2 * k..at + 4 + 2 * k].copy_from_slice(&v.to_ne_bytes());
        }
        let f = at + VNET_HDR_LEN;
        b.data[f + 12..f + 14].copy_from_slice(&[0x08, 0x00]);
        b.data[f + ETH_HLEN..f + ETH_HLEN + ip.len()].copy_from_slice(ip);
        b.lens[i] = VNET_HDR_LEN + ETH_HLEN + ip.len();
        b.n = b.n.max(i + 1);
        b.vnet = true;
    }

    #[test]
    fn the_socket_header_gives_the_offload_from_the_ip_header() {
        let mut b = Batch::default();
        let ip = [0x45u8; 40];
        // hdr_len, gso_size, csum_start (14 + 20), csum_offset.
        vnet_frame(&mut b, 0, [54, 1448, 34, 16], 1, 0x80 | 1, &ip);
        vnet_frame(&mut b, 1, [0, 0, 0, 0], 0, 0, &ip);
        vnet_frame(&mut b, 2, [0, 1000, 34, 6], 1, 5, &ip);
        vnet_frame(&mut b, 3, [0, 0, 4, 16], 1, 0, &ip);
        let tcp = Some(Partial {
            start: 20,
            offset: 16,
        });
        assert_eq!(
            b.offload(0),
            Ok(Offload {
                partial: tcp,
                gso: Some(Gso {
                    kind: GsoKind::Tcp4,
                    size: 1448
                })
            })
        );
        assert_eq!(b.offload(1), Ok(Offload::default()));
        assert_eq!(
            b.offload(2).unwrap().gso.map(|g| g.kind),
            Some(GsoKind::Other(5))
        );
        // A checksum start inside the Ethernet header.
        assert!(b.offload(3).is_err());
        assert_eq!(b.frame(1).len(), ETH_HLEN + 40);
        assert_eq!(b.frame(1)[12..14], [0x08, 0x00]);
        // A truncated frame is dropped whole, with a reason.
        b.truncated[1] = true;
        assert!(b
            .packets(1, &mut [0u8; 100], &mut |_| panic!("emitted"))
            .is_err());
    }

    #[test]
    fn bpf_program_compares_the_destination_mac() {
        let p = bpf_dst_mac([0x02, 0x62, 0x72, 0x64, 0x00, 0x02]);
        assert_eq!(p[1].k, 0x0262_7264);
        assert_eq!(p[3].k, 0x0002);
        // Both mismatches jump to the final "drop".
        assert_eq!(1 + 1 + p[1].jf as usize, 5);
        assert_eq!(3 + 1 + p[3].jf as usize, 5);
    }
}
