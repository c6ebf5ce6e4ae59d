//! Uplink sockets: one per link, bound to its WAN device (SO_BINDTODEVICE) and source address,
//! so each link leaves through its own interface whatever the main routing table prefers.
//!
//! - UDP: [`udp_socket`] gives a connected, non-blocking std socket; wrap it with
//!   `tokio::net::UdpSocket::from_std` inside the runtime.
//! - TCP (for networks that block UDP): [`TcpLink`] carries datagrams over a stream, each
//!   prefixed with its length (u16, big endian); the edge side reconnects by itself with
//!   exponential backoff. A datagram queued when a connection dies is lost, as it would be on
//!   UDP: the protocol above recovers.
//! - Discovery: [`device_address`] (a device's first global address of a family) and
//!   [`LinkWatch`] (rtnetlink multicast: links going up/down, addresses coming and going), so
//!   links can be added and removed at runtime.
//!
//! - Source routing: [`LinkRouting`] gives a link its own table (`default via <gateway> dev
//!   <device>`) and rule (`from <link address> lookup <table>`), as multi-WAN routers do. It is
//!   needed where the WAN devices use strict reverse-path filtering (rp_filter=1): without it,
//!   replies arriving on a WAN that the main table does not prefer are dropped by the kernel.
//!
//! The kernel picks the route *through the bound device*: with per-interface default routes
//! (OpenWrt gives each WAN interface its own metric) the packet uses that interface's gateway;
//! with none, the kernel treats the destination as on-link, which is what point-to-point
//! cellular devices (wwan, ppp) need.

use super::netlink::{
    Address, Event, Family, Netlink, Route, Rule, RuleAction, Watch, RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR, RTMGRP_LINK, TABLE_MAIN,
};
use super::{Error, Prefix, Result};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Where one link's socket goes out and to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSocketSpec {
    /// WAN device (`wwan0`, `eth1`, ...).
    pub device: String,
    /// Source address (None: the kernel picks the device's).
    pub local: Option<IpAddr>,
    /// The core's address and port.
    pub remote: SocketAddr,
}

fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            // SAFETY: sockaddr_storage is large enough and suitably aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v.port().to_be();
            sin6.sin6_addr.s6_addr = v.ip().octets();
            sin6.sin6_scope_id = v.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// The address a datagram came from, as recvmmsg(2) filled it in (`None`: not IPv4 or IPv6).
fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage, which is
            // large enough and suitably aligned for it.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
thread_local! {
    /// Reads on this thread that found nothing (`WouldBlock`): each a system call for no datagram.
    pub(crate) static EMPTY_READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Messages one [`RecvBatch::read`] takes at most (one recvmmsg(2)). Each may be a run of
/// datagrams the kernel merged (UDP GRO, [`enable_gro`]): with every buffer able to hold 64 KB,
/// a few buffers carry up to [`GRO_BUFFER`] / 1,472 datagrams each, and the batch's memory stays
/// at [`RECV_BATCH`] x [`GRO_BUFFER`] (512 KiB of address space, resident only as far as
/// merged runs fill it).
pub(crate) const RECV_BATCH: usize = 8;

/// The capacity of a link datagram: more than any datagram a link carries (at most 1,472 bytes
/// with a 1,500-byte WAN MTU). A longer one is not ours: dropped.
pub(crate) const DATAGRAM_BUFFER: usize = 2048;

/// The capacity of one receive buffer: the longest UDP payload (65,527 bytes over IPv6), which
/// is the most a merged run (UDP GRO) can hold.
pub(crate) const GRO_BUFFER: usize = 65536;

/// `SOL_UDP` options (linux/udp.h): the segment size of a GSO send, and GRO on receive.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Asks the kernel to merge a link's consecutive datagrams of one size into one read (UDP GRO,
/// Linux 5.0+): a busy link then costs one buffer of a [`RecvBatch`] per run of up to 64
/// datagrams, not one each. Returns whether the kernel took it (an older one refuses the
/// option: datagrams then come one by one, as before).
pub(crate) fn enable_gro(fd: impl AsFd) -> bool {
    super::setsockopt(fd, SOL_UDP, UDP_GRO, 1 as libc::c_int).is_ok()
}

/// The datagrams of a merged run of `len` bytes whose segments are `seg` bytes each (the last
/// may be shorter), as ranges of the buffer: one range for a datagram the kernel did not merge
/// (`seg` 0 or not less than `len`).
pub(crate) fn gro_split(len: usize, seg: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let seg = if seg == 0 || seg >= len {
        len.max(1)
    } else {
        seg
    };
    (0..len)
        .step_by(seg)
        .map(move |at| at..(at + seg).min(len))
        .chain((len == 0).then_some(0..0))
}

/// Reads up to [`RECV_BATCH`] messages from a UDP socket with one recvmmsg(2), each straight
/// into a buffer of its own (kept from read to read, looked at with [`RecvBatch::get`]): a busy
/// link costs one system call per batch instead of one per datagram, no copy and no allocation.
/// A message may be a merged run of datagrams (UDP GRO): [`RecvBatch::get`] gives its segment
/// size, [`gro_split`] its datagrams.
pub(crate) struct RecvBatch {
    /// [`RECV_BATCH`] buffers of [`GRO_BUFFER`] bytes, one after the other (made on the first
    /// read, zeroed by the allocator: pages the kernel never writes are never resident).
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    /// Per message: room for one control message (the UDP_GRO segment size, an int).
    ctrl: Vec<[u64; 4]>,
    /// Per message read: its length, whether it was longer than its buffer, its segment size
    /// (0: not merged).
    got: Vec<(usize, bool, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: Vec::new(),
            // SAFETY: zeroed sockaddr_storage is valid.
            names: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            ctrl: vec![[0; 4]; RECV_BATCH],
            got: Vec::new(),
        }
    }
}

/// The segment size a UDP_GRO control message in `h` gives (0: none).
fn gro_segment(h: &libc::msghdr) -> usize {
    // SAFETY: the header's control buffer is the one the kernel just filled in (its length set
    // by the kernel); the macros walk it within that length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

impl RecvBatch {
    /// Reads what waits on `fd` (non-blocking) into the batch's buffers of [`GRO_BUFFER`]
    /// bytes (made on the first read). Returns how many messages were read (`WouldBlock`:
    /// none).
    pub(crate) fn read(&mut self, fd: RawFd) -> io::Result<usize> {
        self.got.clear();
        if self.bufs.is_empty() {
            self.bufs = vec![0; RECV_BATCH * GRO_BUFFER];
        }
        // SAFETY: zeroed iovec and mmsghdr are valid (null pointers, zero lengths).
        let mut iov: [libc::iovec; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (i, ((b, v), h)) in self
            .bufs
            .chunks_exact_mut(GRO_BUFFER)
            .zip(iov.iter_mut())
            .zip(hdrs.iter_mut())
            .enumerate()
        {
            v.iov_base = b.as_mut_ptr().cast();
            v.iov_len = b.len();
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = std::mem::size_of::<[u64; 4]>() as _;
        }
        // SAFETY: every header points at one iovec covering its own part of the buffers, at
        // its own sockaddr_storage and control buffer, all alive and not otherwise borrowed
        // during the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                RECV_BATCH as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            #[cfg(test)]
            if e.kind() == io::ErrorKind::WouldBlock {
                EMPTY_READS.with(|c| c.set(c.get() + 1));
            }
            return Err(e);
        }
        for h in &hdrs[..n as usize] {
            let len = h.msg_len as usize;
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.got.push((len, truncated, gro_segment(&h.msg_hdr)));
        }
        Ok(n as usize)
    }

    /// Message `i` of the last [`RecvBatch::read`], in place in its buffer (which stays the
    /// batch's, for the next read), where it came from, and its segment size when the kernel
    /// merged datagrams into it (0 otherwise; [`gro_split`]); `None` when it was longer than
    /// its buffer (cut: the caller drops it) or from an unknown family.
    pub(crate) fn get(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr, usize)> {
        let (len, truncated, seg) = *self.got.get(i)?;
        let from = socket_addr(&self.names[i]);
        if truncated {
            return None;
        }
        let b = &mut self.bufs[i * GRO_BUFFER..i * GRO_BUFFER + len];
        from.map(|f| (b, f, seg))
    }
}

/// Datagrams one [`send_many`] sends at most (one sendmmsg(2)).
pub(crate) const SEND_BATCH: usize = 32;

/// Datagrams one GSO send carries at most (the kernel's `UDP_MAX_SEGMENTS` before 6.x raised
/// it).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes one GSO send carries at most: one UDP datagram's payload over IPv4 (65,535 less the
/// IP and UDP headers).
pub(crate) const GSO_MAX_BYTES: usize = 65_507;

// A batch's group never holds more datagrams than a GSO send can.
const _: () = assert!(SEND_BATCH <= GSO_MAX_SEGMENTS);

/// How a batch of datagrams goes out with UDP GSO ([`gso_plan`]): datagram indices (into the
/// batch) group after group; a group of more than one is one GSO send.
#[derive(Debug)]
pub(crate) struct GsoPlan {
    order: [u8; SEND_BATCH],
    /// Per group: where it starts in `order`, how many datagrams it has.
    groups: [(u8, u8); SEND_BATCH],
    len: usize,
}

impl GsoPlan {
    /// The first `n` datagrams of a batch (at most [`SEND_BATCH`]), each a group of its own, in
    /// order: plain sends, no GSO.
    pub(crate) fn singles(n: usize) -> GsoPlan {
        let n = n.min(SEND_BATCH);
        let mut plan = GsoPlan {
            order: [0; SEND_BATCH],
            groups: [(0, 0); SEND_BATCH],
            len: n,
        };
        for i in 0..n {
            plan.order[i] = i as u8;
            plan.groups[i] = (i as u8, 1);
        }
        plan
    }

    /// How many groups (sends) there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The datagrams (indices into the batch) of group `g`, in the order they go out.
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let (at, n) = self.groups[g];
        &self.order[usize::from(at)..usize::from(at) + usize::from(n)]
    }

    /// The datagrams of groups `g` and after, in the order they go out.
    pub(crate) fn rest(&self, g: usize) -> &[u8] {
        let groups = &self.groups[..self.len];
        let end = groups
            .last()
            .map_or(0, |&(at, n)| usize::from(at) + usize::from(n));
        &self.order[groups.get(g).map_or(end, |&(at, _)| usize::from(at))..end]
    }
}

/// Which of `msgs` (at most [`SEND_BATCH`]; past it ignored) go out together as one UDP GSO
/// send: per destination (in the order destinations first appear; each destination's
/// datagrams keep their order), runs of consecutive datagrams of one size, the last of a run
/// possibly shorter, up to [`GSO_MAX_SEGMENTS`] and [`GSO_MAX_BYTES`]. An empty datagram goes
/// alone. The kernel cuts a GSO send back into the same datagrams, in order.
pub(crate) fn gso_plan(msgs: &[(&[u8], Option<SocketAddr>)]) -> GsoPlan {
    let msgs = &msgs[..msgs.len().min(SEND_BATCH)];
    let mut plan = GsoPlan {
        order: [0; SEND_BATCH],
        groups: [(0, 0); SEND_BATCH],
        len: 0,
    };
    let mut taken = [false; SEND_BATCH];
    let mut o = 0;
    for i in 0..msgs.len() {
        if taken[i] {
            continue;
        }
        let to = msgs[i].1;
        // The open group: where it starts, its segment size, datagrams, bytes, and whether a
        // shorter datagram ended it.
        let (mut start, mut seg, mut count, mut bytes, mut closed) = (o, 0, 0, 0, false);
        for j in i..msgs.len() {
            if taken[j] || msgs[j].1 != to {
                continue;
            }
            taken[j] = true;
            let len = msgs[j].0.len();
            let joins = count > 0
                && !closed
                && len > 0
                && len <= seg
                && count < GSO_MAX_SEGMENTS
                && bytes + len <= GSO_MAX_BYTES;
            if !joins {
                if count > 0 {
                    plan.groups[plan.len] = (start as u8, count as u8);
                    plan.len += 1;
                }
                (start, seg, count, bytes, closed) = (o, len, 0, 0, len == 0);
            }
            plan.order[o] = j as u8;
            o += 1;
            count += 1;
            bytes += len;
            closed |= len < seg;
        }
        plan.groups[plan.len] = (start as u8, count as u8);
        plan.len += 1;
    }
    plan
}

/// Sends the groups of `plan` from group `first` on `fd` with one sendmmsg(2), non-blocking:
/// a group of several datagrams as one UDP GSO send (a `UDP_SEGMENT` control message with the
/// first one's size; the kernel, or the device, cuts it back into the datagrams), a single one
/// as it is. Returns how many groups the kernel took, in order; an error only when it took
/// none (the first one's: EINVAL or EIO when the kernel or the route's device cannot do GSO).
pub(crate) fn send_gso(
    fd: RawFd,
    msgs: &[(&[u8], Option<SocketAddr>)],
    plan: &GsoPlan,
    first: usize,
) -> io::Result<usize> {
    // Only the entries this call uses are written: zeroing the four arrays whole (7.7 KB)
    // cost more instructions per datagram than anything else outside the AEAD.
    let mut iov = [MaybeUninit::<libc::iovec>::uninit(); SEND_BATCH];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); SEND_BATCH];
    let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); SEND_BATCH];
    let mut ctrl = [MaybeUninit::<[u64; 4]>::uninit(); SEND_BATCH];
    // Raw pointers taken once, so that each header's pointers cover the entries they span.
    let (iovp, hdrp, namep, ctrlp) = (
        iov.as_mut_ptr().cast::<libc::iovec>(),
        hdrs.as_mut_ptr().cast::<libc::mmsghdr>(),
        names.as_mut_ptr().cast::<libc::sockaddr_storage>(),
        ctrl.as_mut_ptr().cast::<[u64; 4]>(),
    );
    let mut v = 0;
    let groups = plan.len().saturating_sub(first).min(SEND_BATCH);
    for k in 0..groups {
        let group = plan.group(first + k);
        // SAFETY: zeroed mmsghdr is valid (null pointers, zeros).
        let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let h = &mut m.msg_hdr;
        // SAFETY: v + group.len() <= SEND_BATCH (a plan's groups hold at most SEND_BATCH
        // datagrams in all), so every write is inside `iov`.
        h.msg_iov = unsafe { iovp.add(v) };
        h.msg_iovlen = group.len() as _;
        for &i in group {
            let d = msgs[usize::from(i)].0;
            assert!(v < SEND_BATCH, "a GSO plan past SEND_BATCH datagrams");
            // SAFETY: v < SEND_BATCH.
            unsafe {
                iovp.add(v).write(libc::iovec {
                    iov_base: d.as_ptr() as *mut libc::c_void,
                    iov_len: d.len(),
                })
            };
            v += 1;
        }
        if let Some(to) = msgs[usize::from(group[0])].1 {
            let (ss, len) = sockaddr(&to);
            // SAFETY: k < groups <= SEND_BATCH.
            unsafe { namep.add(k).write(ss) };
            h.msg_name = unsafe { namep.add(k) }.cast();
            h.msg_namelen = len;
        }
        if group.len() > 1 {
            let seg = msgs[usize::from(group[0])].0.len() as u16;
            // SAFETY: k < SEND_BATCH; the buffer is zeroed before the header is written in it.
            unsafe { ctrlp.add(k).write([0u64; 4]) };
            h.msg_control = unsafe { ctrlp.add(k) }.cast();
            // SAFETY: CMSG_SPACE of 2 bytes (at most 24) fits the 32-byte, 8-aligned buffer
            // the header points at; CMSG_FIRSTHDR gives its start (controllen set first).
            unsafe {
                h.msg_controllen = libc::CMSG_SPACE(2) as _;
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            }
        }
        // SAFETY: k < SEND_BATCH.
        unsafe { hdrp.add(k).write(m) };
    }
    if groups == 0 {
        return Ok(0);
    }
    // SAFETY: every header points at its group's iovecs (each covering a datagram, read only
    // by the kernel), its own address and control buffer if any, all alive for the call.
    // The first `groups` headers are written.
    let n = unsafe { libc::sendmmsg(fd, hdrp, groups as _, libc::MSG_DONTWAIT as _) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether `e`, from a GSO send, says the kernel or the route's device cannot do UDP GSO: an
/// old kernel (EINVAL for the unknown control message, ENOPROTOOPT), a device without
/// checksum offload (EIO), a segment size past the path's MTU (EINVAL).
pub(crate) fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT)
    )
}

/// Sends up to [`SEND_BATCH`] datagrams on `fd` with one sendmmsg(2), non-blocking: each its
/// bytes and, on an unconnected socket, where to (`None` on a connected one). Returns how many
/// the kernel took, in order from the first; an error only when it took none (the first one's).
/// A [`send_gso`] of one datagram per group.
pub(crate) fn send_many(fd: RawFd, msgs: &[(&[u8], Option<SocketAddr>)]) -> io::Result<usize> {
    send_gso(fd, msgs, &GsoPlan::singles(msgs.len()), 0)
}

/// A system call that gives a socket an address: `libc::bind` or `libc::connect`.
type AddrCall =
    unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int;

/// `call` (bind or connect) on `fd` with `addr`.
fn call_with_addr(call: AddrCall, fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss holds a valid address of length len; fd is an open socket.
    let r = unsafe {
        call(
            fd.as_raw_fd(),
            &ss as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket of `ty` bound to `spec.device` and `spec.local` (port `local_port`), non-blocking.
fn bound_socket(spec: &LinkSocketSpec, ty: libc::c_int, local_port: u16) -> Result<OwnedFd> {
    let what = || format!("open link socket on {} to {}", spec.device, spec.remote);
    let fam = if spec.remote.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = super::socket(fam, ty | libc::SOCK_NONBLOCK, 0).map_err(|e| Error::new(what(), e))?;
    let dev = spec.device.as_bytes();
    // SAFETY: dev points to device-name bytes of the given length.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            dev.as_ptr().cast(),
            dev.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Error::last(format!(
            "{}: bind to device {}",
            what(),
            spec.device
        )));
    }
    if ty == libc::SOCK_STREAM {
        // Without it only latency suffers: the tunnel's frames wait for Nagle.
        let _ = super::setsockopt(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1 as libc::c_int);
    }
    let local = match spec.local {
        Some(ip) => Some(SocketAddr::new(ip, local_port)),
        None if local_port != 0 => Some(SocketAddr::new(
            if spec.remote.is_ipv4() {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            },
            local_port,
        )),
        None => None,
    };
    if let Some(l) = local {
        call_with_addr(libc::bind, &fd, &l)
            .map_err(|e| Error::new(format!("{}: bind to {l}", what()), e))?;
    }
    Ok(fd)
}

/// A UDP socket for one link: bound to the device and source, connected to the core,
/// non-blocking. Wrap it with `tokio::net::UdpSocket::from_std`.
pub fn udp_socket(spec: &LinkSocketSpec) -> Result<std::net::UdpSocket> {
    let fd = bound_socket(spec, libc::SOCK_DGRAM, 0)?;
    // Runs of the core's datagrams come merged where the kernel can ([`RecvBatch`] cuts them).
    enable_gro(&fd);
    call_with_addr(libc::connect, &fd, &spec.remote).map_err(|e| {
        let what = format!(
            "connect UDP link socket on {} to {}",
            spec.device, spec.remote
        );
        Error::new(what, e)
    })?;
    Ok(std::net::UdpSocket::from(fd))
}

/// Connects a TCP stream for one link, bound to the device and source (must run inside a
/// tokio runtime).
pub async fn tcp_connect(spec: &LinkSocketSpec) -> Result<TcpStream> {
    let fd = bound_socket(spec, libc::SOCK_STREAM, 0)?;
    let what = || format!("connect TCP link on {} to {}", spec.device, spec.remote);
    if let Err(e) = call_with_addr(libc::connect, &fd, &spec.remote) {
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(Error::new(what(), e));
        }
    }
    let stream =
        TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(|e| Error::new(what(), e))?;
    stream.writable().await.map_err(|e| Error::new(what(), e))?;
    if let Some(e) = stream.take_error().map_err(|e| Error::new(what(), e))? {
        return Err(Error::new(what(), e));
    }
    // A refused connect shows as "not connected" here on some kernels.
    stream.peer_addr().map_err(|e| Error::new(what(), e))?;
    Ok(stream)
}

/// Largest datagram a [`TcpLink`] frame carries.
pub(crate) const MAX_FRAME: usize = u16::MAX as usize;
/// Most bytes a [`TcpLink`] buffers for reading: a whole frame and the start of the next.
const RBUF_MAX: usize = 2 * (MAX_FRAME + 2);
/// Bytes a [`TcpLink`] queues for sending before refusing more (`WouldBlock`).
pub(crate) const TX_QUEUE: usize = 256 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Datagrams over a TCP stream, each prefixed by its length (u16 BE); zero-length frames are
/// keepalives and are skipped. Reconnects by itself when made with [`TcpLink::new`].
#[derive(Debug)]
pub struct TcpLink {
    spec: Option<LinkSocketSpec>,
    stream: Option<TcpStream>,
    rbuf: Vec<u8>,
    rlen: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    backoff: Duration,
    retry_at: Option<tokio::time::Instant>,
    /// Connections made so far (the first one included).
    pub connects: u32,
}

impl TcpLink {
    /// An edge-side link (not connected yet: [`TcpLink::recv`] connects, and reconnects after
    /// a failure with backoff from 100 ms to 5 s).
    pub fn new(spec: LinkSocketSpec) -> Self {
        Self::with(Some(spec), None)
    }

    /// A core-side link over an accepted stream (no reconnection).
    pub fn from_stream(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Self::with(None, Some(stream))
    }

    fn with(spec: Option<LinkSocketSpec>, stream: Option<TcpStream>) -> Self {
        TcpLink {
            spec,
            stream,
            // Grows to RBUF_MAX as frames need it: an idle or unproven connection costs 4 KiB.
            rbuf: vec![0u8; 4096],
            rlen: 0,
            wbuf: Vec::new(),
            wpos: 0,
            backoff: BACKOFF_MIN,
            retry_at: None,
            connects: 0,
        }
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// Bytes queued but not yet written to the socket.
    pub(crate) fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// Queues one datagram and writes what the socket takes now. `NotConnected` while down,
    /// `WouldBlock` when [`TX_QUEUE`] bytes are already queued (the datagram is dropped).
    pub fn try_send(&mut self, dgram: &[u8]) -> io::Result<()> {
        if dgram.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "datagram too long",
            ));
        }
        if self.stream.is_none() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if self.queued() + dgram.len() + 2 > TX_QUEUE {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.wpos > 0 && self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        self.wbuf
            .extend_from_slice(&(dgram.len() as u16).to_be_bytes());
        self.wbuf.extend_from_slice(dgram);
        self.flush_now()
    }

    fn flush_now(&mut self) -> io::Result<()> {
        let Some(s) = &self.stream else {
            return Ok(());
        };
        while self.wpos < self.wbuf.len() {
            match s.try_write(&self.wbuf[self.wpos..]) {
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.drop_connection();
                    return Err(e);
                }
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        Ok(())
    }

    fn drop_connection(&mut self) {
        self.stream = None;
        self.rlen = 0;
        self.wbuf.clear();
        self.wpos = 0;
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn take_frame(&mut self, out: &mut [u8]) -> Option<io::Result<usize>> {
        loop {
            if self.rlen < 2 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.rbuf[0], self.rbuf[1]]));
            if self.rlen < 2 + len {
                return None;
            }
            let res = if len > out.len() {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "frame longer than buffer",
                ))
            } else {
                out[..len].copy_from_slice(&self.rbuf[2..2 + len]);
                Ok(len)
            };
            self.rbuf.copy_within(2 + len..self.rlen, 0);
            self.rlen -= 2 + len;
            if len > 0 {
                return Some(res);
            }
        }
    }

    /// (Re)connects now if down and allowed by the backoff; waits for the backoff first.
    pub async fn connect(&mut self) -> Result<()> {
        let Some(spec) = self.spec.clone() else {
            return Err(Error::new(
                "reconnect an accepted TCP link",
                io::ErrorKind::NotConnected.into(),
            ));
        };
        if let Some(t) = self.retry_at {
            tokio::time::sleep_until(t).await;
        }
        match tcp_connect(&spec).await {
            Ok(s) => {
                self.stream = Some(s);
                self.retry_at = None;
                self.backoff = BACKOFF_MIN;
                self.connects += 1;
                Ok(())
            }
            Err(e) => {
                self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Err(e)
            }
        }
    }

    /// Receives the next datagram into `out` (also flushes queued writes while waiting).
    /// Cancel-safe: partial frames stay buffered. When the connection fails it returns that
    /// error once; the next call reconnects (edge side) or keeps returning `NotConnected`
    /// (core side).
    pub async fn recv(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = self.take_frame(out) {
                return r;
            }
            if self.stream.is_none() {
                if self.spec.is_none() {
                    return Err(io::ErrorKind::NotConnected.into());
                }
                self.connect().await?;
                continue;
            }
            let s = self.stream.as_ref().expect("checked above");
            let interest = if self.queued() > 0 {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let ready = match s.ready(interest).await {
                Ok(r) => r,
                Err(e) => {
                    self.drop_connection();
                    return Err(e);
                }
            };
            if ready.is_writable() {
                self.flush_now()?;
            }
            if ready.is_readable() {
                if self.rlen == self.rbuf.len() {
                    // Full without a whole frame (take_frame above took every whole one).
                    let n = (self.rbuf.len() * 2).min(RBUF_MAX);
                    self.rbuf.resize(n, 0);
                }
                let Some(s) = &self.stream else { continue };
                match s.try_read(&mut self.rbuf[self.rlen..]) {
                    Ok(0) => {
                        self.drop_connection();
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok(n) => self.rlen += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        self.drop_connection();
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Waits until every queued byte is written.
    pub async fn flush(&mut self) -> io::Result<()> {
        while self.queued() > 0 {
            let Some(s) = &self.stream else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            s.writable().await?;
            self.flush_now()?;
        }
        Ok(())
    }
}

/// The first address of `family` (v4 when `v4`) with global scope on `device`, if any.
pub fn device_address(nl: &mut Netlink, device: &str, v4: bool) -> Result<Option<IpAddr>> {
    match device_info(nl, device, v4)? {
        Some(d) => Ok(d.address),
        None => Err(Error::new(
            format!("find WAN device {device}"),
            io::Error::from_raw_os_error(libc::ENODEV),
        )),
    }
}

/// A WAN device as a link socket needs it: see [`device_info`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceInfo {
    /// Interface index (a device deleted and made again, as `pppoe-wan` on a reconnect, gets
    /// a new one: a socket bound to the old index no longer sends).
    pub(crate) index: u32,
    /// Administratively up with carrier.
    pub(crate) usable: bool,
    /// Its first global address of the family asked for.
    pub(crate) address: Option<IpAddr>,
}

/// `device`'s index, state and first global address of a family (v4 when `v4`); `None` when
/// there is no such device (yet).
pub(crate) fn device_info(nl: &mut Netlink, device: &str, v4: bool) -> Result<Option<DeviceInfo>> {
    let Some(link) = nl.link_by_name(device)? else {
        return Ok(None);
    };
    let address = nl
        .addresses(Some(link.index))?
        .into_iter()
        .filter(|a: &Address| a.scope == 0 && a.prefix.addr.is_ipv4() == v4)
        .map(|a| a.prefix.addr)
        .next();
    Ok(Some(DeviceInfo {
        index: link.index,
        usable: link.up && link.lower_up,
        address,
    }))
}

/// What happened to a WAN device, as [`LinkWatch`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device is usable: administratively up with carrier.
    Up {
        /// Device name.
        device: String,
    },
    /// The device lost carrier, was set down or was deleted.
    Down {
        /// Device name.
        device: String,
    },
    /// An address appeared on the device.
    AddressAdded {
        /// Device name.
        device: String,
        /// The address.
        addr: IpAddr,
    },
    /// An address was removed from the device.
    AddressRemoved {
        /// Device name.
        device: String,
        /// The address.
        addr: IpAddr,
    },
    /// The kernel dropped events (we were slow): re-read the state of every device.
    Resync,
}

/// Watches links and addresses over rtnetlink multicast. Non-blocking: register
/// [`LinkWatch::as_raw_fd`] with tokio's `AsyncFd` and call [`LinkWatch::read`] when readable.
#[derive(Debug)]
pub struct LinkWatch {
    watch: Watch,
    nl: Netlink,
    /// Last known (index -> name, usable) so only changes are reported.
    known: std::collections::HashMap<u32, (String, bool)>,
}

impl LinkWatch {
    /// Subscribes in the calling thread's namespace and records the current state.
    pub fn open() -> Result<LinkWatch> {
        let watch = Watch::open(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)?;
        let mut nl = Netlink::open()?;
        let known = nl
            .links()?
            .into_iter()
            .map(|l| (l.index, (l.name, l.up && l.lower_up)))
            .collect();
        Ok(LinkWatch { watch, nl, known })
    }

    /// True when `device` exists, is up and has carrier.
    pub fn is_usable(&self, device: &str) -> bool {
        self.known.values().any(|(n, u)| n == device && *u)
    }

    /// Pending changes (empty when none).
    pub fn read(&mut self) -> Result<Vec<DeviceEvent>> {
        let evs = match self.watch.read() {
            Ok(e) => e,
            Err(e) if e.errno() == Some(libc::ENOBUFS) => {
                self.known = self
                    .nl
                    .links()?
                    .into_iter()
                    .map(|l| (l.index, (l.name, l.up && l.lower_up)))
                    .collect();
                return Ok(vec![DeviceEvent::Resync]);
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for ev in evs {
            match ev {
                Event::Link(l) => {
                    let usable = l.up && l.lower_up;
                    let prev = self.known.insert(l.index, (l.name.clone(), usable));
                    if prev.map(|p| p.1) != Some(usable) {
                        let device = l.name;
                        out.push(if usable {
                            DeviceEvent::Up { device }
                        } else {
                            DeviceEvent::Down { device }
                        });
                    }
                }
                // (The guard removes the entry whether or not it was usable.)
                Event::LinkGone(l) if self.known.remove(&l.index).is_some_and(|p| p.1) => {
                    out.push(DeviceEvent::Down { device: l.name });
                }
                Event::AddrAdded(a) | Event::AddrRemoved(a) if a.scope == 0 => {
                    let device = self
                        .known
                        .get(&a.index)
                        .map(|k| k.0.clone())
                        .unwrap_or_default();
                    let added = matches!(ev, Event::AddrAdded(_));
                    let addr = a.prefix.addr;
                    out.push(if added {
                        DeviceEvent::AddressAdded { device, addr }
                    } else {
                        DeviceEvent::AddressRemoved { device, addr }
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fd_of_field!(LinkWatch, watch);

/// The gateway of the main table's default route through `device` (lowest metric), if any.
pub fn default_gateway(nl: &mut Netlink, device: &str, v4: bool) -> Result<Option<IpAddr>> {
    let index = nl.index(device)?;
    let fam = if v4 { Family::V4 } else { Family::V6 };
    let mut routes: Vec<Route> = nl
        .routes(fam, Some(TABLE_MAIN))?
        .into_iter()
        .filter(|r| r.dst.len == 0 && r.oif == Some(index) && r.gateway.is_some())
        .collect();
    routes.sort_by_key(|r| r.metric.unwrap_or(0));
    Ok(routes.first().and_then(|r| r.gateway))
}

/// One link's source routing; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRouteConfig {
    /// WAN device.
    pub device: String,
    /// The link's source address (the rule matches it).
    pub local: IpAddr,
    /// Next hop (None: the destination is on-link, e.g. point-to-point cellular devices).
    pub gateway: Option<IpAddr>,
    /// The link's own routing table.
    pub table: u32,
    /// Priority of its rule.
    pub priority: u32,
    /// Marks braid's route and rule (see [`cleanup_stale_links`]).
    pub protocol: u8,
}

/// An installed [`LinkRouteConfig`]; dropping it removes rule and route.
#[derive(Debug)]
pub struct LinkRouting {
    nl: Netlink,
    route: Route,
    rule: Rule,
    removed: bool,
}

impl LinkRouting {
    /// Installs the route, then the rule, in the calling thread's namespace.
    pub fn install(cfg: &LinkRouteConfig) -> Result<LinkRouting> {
        let mut nl = Netlink::open()?;
        let index = nl.index(&cfg.device)?;
        let any = if cfg.local.is_ipv4() {
            "0.0.0.0/0"
        } else {
            "::/0"
        };
        let mut route = Route::new(any.parse().expect("literal prefix"))
            .dev(index)
            .table(cfg.table)
            .protocol(cfg.protocol);
        if let Some(g) = cfg.gateway {
            route = route.via(g);
        }
        nl.replace_route(&route)?;
        let mut rule = Rule::new(
            Family::of(&cfg.local),
            cfg.priority,
            RuleAction::Lookup(cfg.table),
        );
        rule.src = Some(Prefix::host(cfg.local));
        rule.protocol = cfg.protocol;
        let mut lr = LinkRouting {
            nl,
            route,
            rule,
            removed: false,
        };
        // On failure `lr` drops and removes the route again.
        let rule = lr.rule.clone();
        lr.nl.add_rule(&rule)?;
        Ok(lr)
    }

    /// Removes rule and route (also done on drop).
    pub(crate) fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let r1 = match self.nl.del_rule(&self.rule) {
            Err(e) if e.errno() != Some(libc::ENOENT) => Err(e),
            _ => Ok(()),
        };
        let r2 = match self.nl.del_route(&self.route) {
            Err(e) if !matches!(e.errno(), Some(libc::ESRCH) | Some(libc::ENODEV)) => Err(e),
            _ => Ok(()),
        };
        r1.and(r2)
    }
}

impl Drop for LinkRouting {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            log::warn!("link routing cleanup: {e}");
        }
    }
}

/// Removes link rules a crashed instance left (priority in `priorities`, marked with
/// `protocol`) and flushes the tables they pointed to. Returns the number of rules removed.
pub fn cleanup_stale_links(priorities: std::ops::Range<u32>, protocol: u8) -> Result<usize> {
    let mut nl = Netlink::open()?;
    let mut n = 0;
    for r in nl.all_rules()? {
        if !priorities.contains(&r.priority) || r.protocol != protocol {
            continue;
        }
        if let RuleAction::Lookup(t) = r.action {
            if t != TABLE_MAIN && t != 255 && t != 253 {
                nl.flush_table(t)?;
            }
        }
        if nl.del_rule_if_present(&r)? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever waits on the socket comes out of one read, up to the batch: one system call for
    /// a burst, each datagram whole (the caller drops those too long to be ours).
    #[test]
    fn one_read_takes_a_burst_of_datagrams() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sock.local_addr().unwrap();
        let sizes = [1usize, 1472, 3000, 60, DATAGRAM_BUFFER + 1];
        for (k, n) in sizes.iter().enumerate() {
            peer.send_to(&vec![k as u8; *n], to).unwrap();
        }
        let mut b = RecvBatch::default();
        let got = b.read(sock.as_raw_fd()).unwrap();
        assert_eq!(got, sizes.len(), "one read, every datagram");
        let from = peer.local_addr().unwrap();
        for (k, n) in sizes.iter().enumerate() {
            let (d, f, seg) = b.get(k).unwrap();
            assert_eq!(d, &vec![k as u8; *n][..]);
            assert_eq!((f, seg), (from, 0), "not merged: GRO is not on");
        }
        assert!(b.get(sizes.len()).is_none());
        // More than a batch waits: the rest comes with the next read.
        for k in 0..RECV_BATCH + 3 {
            peer.send_to(&[k as u8], to).unwrap();
        }
        let got = b.read(sock.as_raw_fd()).unwrap();
        assert_eq!(got, RECV_BATCH);
        let got = b.read(sock.as_raw_fd()).unwrap();
        assert_eq!(got, 3);
        assert_eq!(b.get(2).unwrap().0, [RECV_BATCH as u8 + 2]);
        let e = b.read(sock.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    fn groups(msgs: &[(&[u8], Option<SocketAddr>)]) -> Vec<Vec<u8>> {
        let p = gso_plan(msgs);
        let all: Vec<u8> = p.rest(0).to_vec();
        let gs: Vec<Vec<u8>> = (0..p.len()).map(|g| p.group(g).to_vec()).collect();
        assert_eq!(gs.concat(), all, "groups follow each other");
        assert_eq!(p.rest(p.len()), &[] as &[u8]);
        gs
    }

    /// Plain sends: every datagram a group of its own, in order, at most a batch; sent on a
    /// UDP socket, each arrives as it was (no segment size attached).
    #[test]
    fn single_groups_send_each_datagram_as_it_is() {
        let p = GsoPlan::singles(3);
        let gs: Vec<Vec<u8>> = (0..p.len()).map(|g| p.group(g).to_vec()).collect();
        assert_eq!(gs, vec![vec![0], vec![1], vec![2]]);
        assert_eq!(p.rest(1), &[1, 2]);
        assert_eq!(GsoPlan::singles(SEND_BATCH + 5).len(), SEND_BATCH);
        assert_eq!(GsoPlan::singles(0).len(), 0);

        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = Some(rx.local_addr().unwrap());
        let data: Vec<Vec<u8>> = [1200, 1200, 300, 1200]
            .iter()
            .map(|&n| vec![n as u8; n])
            .collect();
        let msgs: Vec<(&[u8], Option<SocketAddr>)> = data.iter().map(|d| (&d[..], to)).collect();
        assert_eq!(send_many(tx.as_raw_fd(), &msgs).unwrap(), 4);
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 2048];
        for d in &data {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &d[..], "one datagram per send, in order");
        }
    }

    /// A full batch to two destinations, interleaved, in runs of one size: every header, address
    /// and control message of the sendmmsg(2) (written entry by entry, not zeroed whole) is
    /// right, and each receiver gets its datagrams, whole and in order.
    #[test]
    #[cfg_attr(
        target_endian = "big",
        ignore = "qemu-user copies UDP_SEGMENT/UDP_GRO control messages without byte-swapping"
    )]
    fn a_full_batch_of_gso_runs_to_two_destinations_arrives_whole_and_in_order() {
        let rx: Vec<std::net::UdpSocket> = (0..2)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Datagram i goes to receiver i % 3 % 2 (runs and switches), its size in runs of 1000
        // with a shorter last one now and then; its bytes say which it is.
        let data: Vec<(Vec<u8>, usize)> = (0..SEND_BATCH)
            .map(|i| {
                let n = if i % 5 == 4 { 300 + i } else { 1000 };
                let mut d = vec![i as u8; n];
                d[0] = i as u8;
                (d, i % 3 % 2)
            })
            .collect();
        let msgs: Vec<(&[u8], Option<SocketAddr>)> = data
            .iter()
            .map(|(d, r)| (&d[..], Some(rx[*r].local_addr().unwrap())))
            .collect();
        let plan = gso_plan(&msgs);
        assert!(
            (0..plan.len()).any(|g| plan.group(g).len() > 1),
            "some groups are GSO sends"
        );
        let mut g = 0;
        while g < plan.len() {
            let n = send_gso(tx.as_raw_fd(), &msgs, &plan, g).unwrap();
            assert!(n > 0);
            g += n;
        }
        let mut buf = [0u8; 2048];
        for (r, sock) in rx.iter().enumerate() {
            sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            for (d, _) in data.iter().filter(|(_, to)| *to == r) {
                let n = sock.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], &d[..], "receiver {r}: datagram {}", d[0]);
            }
            sock.set_nonblocking(true).unwrap();
            assert!(sock.recv(&mut buf).is_err(), "receiver {r}: nothing more");
        }
    }

    /// Which datagrams form one GSO send: runs of one size per destination, the last of a run
    /// possibly shorter (it ends the run), a longer one or an empty one starting anew; each
    /// destination's datagrams in their order, destinations in the order they first came.
    #[test]
    fn gso_groups_are_runs_of_one_size_per_destination() {
        let d = |n: usize| vec![0u8; n];
        let (big, small, tiny) = (d(1400), d(600), d(80));
        fn none<'a>(v: &[&'a Vec<u8>]) -> Vec<(&'a [u8], Option<SocketAddr>)> {
            v.iter().map(|x| (&x[..], None)).collect()
        }
        // big big big small | big tiny | tiny | big | tiny tiny
        let m = none(&[
            &big, &big, &big, &small, &big, &tiny, &tiny, &big, &tiny, &tiny,
        ]);
        assert_eq!(
            groups(&m),
            vec![vec![0, 1, 2, 3], vec![4, 5], vec![6], vec![7, 8], vec![9]]
        );
        let m = none(&[&tiny, &tiny, &tiny, &big]);
        assert_eq!(groups(&m), vec![vec![0, 1, 2], vec![3]]);
        // A shorter one ends the run even when the next is of the first size.
        let m = none(&[&big, &small, &big, &big]);
        assert_eq!(groups(&m), vec![vec![0, 1], vec![2, 3]]);
        // Empty datagrams go alone.
        let e = d(0);
        let m = none(&[&big, &e, &e, &big]);
        assert_eq!(groups(&m), vec![vec![0], vec![1], vec![2], vec![3]]);
        // Two destinations interleaved (the core's socket, two links): grouped per destination,
        // each in its order.
        let (a, b) = (
            Some(SocketAddr::from(([10, 0, 0, 1], 1))),
            Some(SocketAddr::from(([10, 0, 0, 2], 1))),
        );
        let m = vec![
            (&big[..], a),
            (&big[..], b),
            (&big[..], a),
            (&tiny[..], b),
            (&big[..], a),
            (&big[..], b),
        ];
        assert_eq!(groups(&m), vec![vec![0, 2, 4], vec![1, 3], vec![5]]);
        // The byte limit: 32 of 2,100 bytes do not fit one send of 65,507.
        let huge = d(2100);
        let m = none(&vec![&huge; SEND_BATCH]);
        let per = GSO_MAX_BYTES / 2100;
        let g = groups(&m);
        assert_eq!(
            g.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![per, SEND_BATCH - per]
        );
        // Past SEND_BATCH: not planned here (the caller sends in chunks).
        let m = none(&vec![&big; SEND_BATCH + 3]);
        assert_eq!(groups(&m), vec![(0..SEND_BATCH as u8).collect::<Vec<_>>()]);
    }

    /// A merged read cuts into its segments, the last possibly shorter; an unmerged one is one
    /// datagram (empty included).
    #[test]
    fn a_merged_read_splits_into_its_datagrams() {
        let s = |len, seg| gro_split(len, seg).collect::<Vec<_>>();
        assert_eq!(s(3000, 1000), vec![0..1000, 1000..2000, 2000..3000]);
        assert_eq!(s(2500, 1000), vec![0..1000, 1000..2000, 2000..2500]);
        assert_eq!(s(1000, 1000), vec![0..1000]);
        assert_eq!(s(700, 1000), vec![0..700]);
        assert_eq!(s(700, 0), vec![0..700]);
        assert_eq!(s(0, 0), vec![0..0]);
        assert_eq!(s(0, 1000), vec![0..0]);
        assert_eq!(s(65_000, 1472).len(), 65_000usize.div_ceil(1472));
    }
}
