//! A small synchronous rtnetlink client.
//!
//! It covers what braid changes on a host: veth pairs, moving links between namespaces, link
//! state and MTU, addresses, routes (in any table), policy rules, neighbours, and lookups. Every
//! failure is an [`Error`] naming the operation and carrying the kernel's errno (and its extended
//! ack message when the kernel gives one).
//!
//! The message codec is hand-written (a few hundred lines) rather than built on
//! `netlink-packet-route`: the same codec also speaks nfnetlink for the core's nftables table
//! (which that crate does not cover), and the router binary stays small.
//!
//! A [`Netlink`] socket belongs to the network namespace of the thread that opened it; open one
//! inside the space with [`crate::os::space::Space::run`].

use super::{Error, Prefix, Result};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

// --- netlink framing -----------------------------------------------------------------------

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLA_F_NESTED: u16 = 0x8000;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IF_OPER_UP: u8 = 6;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RTNH_F_ONLINK: u32 = 4;

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_GOTO: u16 = 4;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_PROTOCOL: u16 = 21;
const FRA_IP_PROTO: u16 = 22;
const FR_ACT_TO_TBL: u8 = 1;
const FR_ACT_GOTO: u8 = 2;
const FR_ACT_NOP: u8 = 3;

const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;

/// Multicast group bits for [`Netlink::subscribe`].
pub const RTMGRP_LINK: u32 = 0x1;
/// IPv4 address changes.
pub const RTMGRP_IPV4_IFADDR: u32 = 0x10;
/// IPv6 address changes.
pub(crate) const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// A netlink message being built: header, fixed family header, attributes (nested allowed).
pub(crate) struct MsgBuf {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl MsgBuf {
    pub(crate) fn new(ty: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0u8; 4]); // len, filled by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0u8; 8]); // seq, pid
        MsgBuf {
            buf,
            nests: Vec::new(),
        }
    }

    /// Appends raw bytes (a family header), padded to 4.
    pub(crate) fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub(crate) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub(crate) fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    pub(crate) fn attr_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_be_bytes())
    }

    pub(crate) fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    pub(crate) fn begin(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub(crate) fn end(&mut self) -> &mut Self {
        let at = self.nests.pop().expect("end() matches a begin()");
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    pub(crate) fn finish(&mut self, seq: u32) -> &[u8] {
        debug_assert!(self.nests.is_empty());
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// Iterates over netlink attributes: (type without flag bits, payload).
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, data))
    })
}

/// One netlink message: its header's type, flags and sequence number, and its payload.
pub(crate) struct Msg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Iterates over the netlink messages in a datagram; stops at the first malformed header.
pub(crate) fn messages(mut b: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        if b.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > b.len() {
            return None;
        }
        let msg = Msg {
            ty: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes(b[8..12].try_into().expect("4 bytes")),
            payload: &b[16..len],
        };
        b = &b[align4(len).min(b.len())..];
        Some(msg)
    })
}

fn ne_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

fn ip_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn family_of(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

/// An IP family, for dumps and rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn af(self) -> u8 {
        match self {
            Family::V4 => libc::AF_INET as u8,
            Family::V6 => libc::AF_INET6 as u8,
        }
    }
    /// The fixed header of a route, rule or neighbour dump of this family, zeroed but for the
    /// family: `rtmsg`, `fib_rule_hdr` and `ndmsg` are each 12 bytes with the family first.
    fn dump_head(self) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = self.af();
        h
    }
    /// The family of an address.
    pub(crate) fn of(a: &IpAddr) -> Family {
        if a.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// A netlink socket of any protocol, with request/ack and dump helpers.
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
    rx: Vec<u8>,
}

impl Socket {
    pub(crate) fn open(protocol: libc::c_int, groups: u32, nonblock: bool) -> Result<Socket> {
        let mut ty = libc::SOCK_RAW;
        if nonblock {
            ty |= libc::SOCK_NONBLOCK;
        }
        let fd = super::socket(libc::AF_NETLINK, ty, protocol)
            .map_err(|e| Error::new("open netlink socket", e))?;
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            // Failure is harmless (old kernel).
            let _ = super::setsockopt(&fd, libc::SOL_NETLINK, opt, 1 as libc::c_int);
        }
        // A kernel that never answers must not hang the daemon.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        let _ = super::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv);
        // SAFETY: zeroed sockaddr_nl is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = groups;
        // SAFETY: sa is a valid sockaddr_nl of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(Error::last("bind netlink socket"));
        }
        Ok(Socket {
            fd,
            seq: std::process::id().wrapping_mul(7919),
            rx: vec![0u8; 64 * 1024],
        })
    }

    fn send(&mut self, msg: &mut MsgBuf, what: &dyn Fn() -> String) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let b = msg.finish(seq);
        // SAFETY: b is a valid buffer; fd is a netlink socket (kernel is the default peer).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), b.as_ptr().cast(), b.len(), 0) };
        if n < 0 {
            return Err(Error::last(what()));
        }
        Ok(seq)
    }

    /// Receives one datagram into the internal buffer; returns its length.
    pub(crate) fn recv_raw(&mut self, flags: libc::c_int) -> io::Result<usize> {
        // SAFETY: rx is a valid writable buffer of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.rx.as_mut_ptr().cast(),
                self.rx.len(),
                flags,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    pub(crate) fn rx(&self) -> &[u8] {
        &self.rx
    }

    /// Sends `msg` with NLM_F_ACK and waits for the kernel's answer.
    pub(crate) fn request(&mut self, mut msg: MsgBuf, what: &dyn Fn() -> String) -> Result<()> {
        let f = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) | NLM_F_ACK;
        msg.buf[6..8].copy_from_slice(&f.to_ne_bytes());
        let seq = self.send(&mut msg, what)?;
        self.wait_ack(seq, what)
    }

    /// Sends already framed bytes (an nfnetlink batch of several messages).
    pub(crate) fn send_raw(&mut self, bytes: &[u8], what: &dyn Fn() -> String) -> Result<()> {
        // SAFETY: valid buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(Error::last(what()));
        }
        Ok(())
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(crate) fn wait_ack(&mut self, seq: u32, what: &dyn Fn() -> String) -> Result<()> {
        loop {
            let n = self.recv_raw(0).map_err(|e| Error::new(what(), e))?;
            for m in messages(&self.rx[..n]) {
                if m.ty == NLMSG_ERROR && m.seq == seq {
                    return parse_error(m.payload, m.flags).map_err(|e| nl_error(what(), e));
                }
            }
        }
    }

    /// Sends a request and returns every answer's payload (after the nlmsghdr): all parts of a
    /// dump (NLM_F_DUMP) up to NLMSG_DONE, or the single answer of a plain get.
    pub(crate) fn dump(
        &mut self,
        mut msg: MsgBuf,
        what: &dyn Fn() -> String,
    ) -> Result<Vec<Vec<u8>>> {
        let is_dump = u16::from_ne_bytes([msg.buf[6], msg.buf[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        let seq = self.send(&mut msg, what)?;
        let mut out = Vec::new();
        loop {
            let n = self.recv_raw(0).map_err(|e| Error::new(what(), e))?;
            for m in messages(&self.rx[..n]).filter(|m| m.seq == seq) {
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        parse_error(m.payload, m.flags).map_err(|e| nl_error(what(), e))?;
                        return Ok(out);
                    }
                    _ => {
                        out.push(m.payload.to_vec());
                        if !is_dump {
                            return Ok(out);
                        }
                    }
                }
            }
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Parses the payload of an NLMSG_ERROR: Ok for an ack, else the errno and the kernel's
/// extended-ack message when present.
pub(crate) fn parse_error(p: &[u8], flags: u16) -> std::result::Result<(), (i32, Option<String>)> {
    let Some(code) = p
        .get(0..4)
        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
    else {
        return Err((libc::EBADMSG, Some("short netlink error".into())));
    };
    if code == 0 {
        return Ok(());
    }
    let errno = -code;
    if flags & NLM_F_ACK_TLVS != 0 && p.len() >= 20 {
        // With NETLINK_CAP_ACK (flag NLM_F_CAPPED) the original message is reduced to its header.
        let olen = u32::from_ne_bytes(p[4..8].try_into().expect("4 bytes")) as usize;
        let skip = if flags & 0x100 != 0 {
            20
        } else {
            4 + align4(olen)
        };
        if let Some(tl) = p.get(skip..) {
            for (ty, v) in attrs(tl) {
                if ty == NLMSGERR_ATTR_MSG {
                    let msg = String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string();
                    return Err((errno, Some(msg)));
                }
            }
        }
    }
    Err((errno, None))
}

pub(crate) fn nl_error(what: String, (errno, msg): (i32, Option<String>)) -> Error {
    let context = match msg {
        Some(m) => format!("{what} [kernel: {m}]"),
        None => what,
    };
    Error::new(context, io::Error::from_raw_os_error(errno))
}

// --- rtnetlink objects ---------------------------------------------------------------------

/// A network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub(crate) index: u32,
    /// Interface name.
    pub name: String,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier present (IFF_LOWER_UP).
    pub(crate) lower_up: bool,
    /// Operational state is UP (IFLA_OPERSTATE): the kernel has finished bringing it up and
    /// its queue transmits.
    oper_up: bool,
    /// Hardware address, when the link has one.
    pub mac: Option<[u8; 6]>,
    /// Kind from IFLA_INFO_KIND (`veth`, `bridge`, ...), when reported.
    pub kind: Option<String>,
}

/// An address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub(crate) index: u32,
    /// The address and its prefix length.
    pub prefix: Prefix,
    /// Scope (0 global, 253 link, 254 host).
    pub(crate) scope: u8,
}

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward (RTN_UNICAST).
    Unicast,
    /// Silently drop (RTN_BLACKHOLE).
    Blackhole,
    /// Drop with ICMP unreachable (RTN_UNREACHABLE).
    Unreachable,
    /// Anything else (local, broadcast, ...): the raw rtm_type.
    Other(u8),
}

/// A route. Build with [`Route::new`] and the `via`/`dev`/... helpers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` for default).
    pub dst: Prefix,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Routing table (254 main).
    table: u32,
    /// Metric (RTA_PRIORITY).
    pub metric: Option<u32>,
    /// Preferred source.
    prefsrc: Option<IpAddr>,
    /// rtm_protocol: who installed it (braid marks its own).
    pub protocol: u8,
    /// Kind.
    pub kind: RouteKind,
    /// Gateway is on-link even without a covering connected route.
    onlink: bool,
}

/// The main routing table.
pub(crate) const TABLE_MAIN: u32 = 254;

impl Route {
    /// A unicast route to `dst` in the main table, protocol "static".
    pub fn new(dst: Prefix) -> Self {
        Route {
            dst: dst.network(),
            gateway: None,
            oif: None,
            table: TABLE_MAIN,
            metric: None,
            prefsrc: None,
            protocol: 4, // RTPROT_STATIC
            kind: RouteKind::Unicast,
            onlink: false,
        }
    }
    /// Sets the next hop.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }
    /// Sets the output interface.
    pub fn dev(mut self, index: u32) -> Self {
        self.oif = Some(index);
        self
    }
    /// Sets the table.
    pub fn table(mut self, t: u32) -> Self {
        self.table = t;
        self
    }
    /// Sets the metric.
    pub fn metric(mut self, m: u32) -> Self {
        self.metric = Some(m);
        self
    }
    /// Sets rtm_protocol.
    pub fn protocol(mut self, p: u8) -> Self {
        self.protocol = p;
        self
    }
    /// Marks the gateway on-link.
    pub fn onlink(mut self) -> Self {
        self.onlink = true;
        self
    }
    /// Sets the kind.
    pub fn kind(mut self, k: RouteKind) -> Self {
        self.kind = k;
        self
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "route {}", self.dst)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " dev #{o}")?;
        }
        write!(f, " table {}", self.table)
    }
}

/// What a policy rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Look the packet up in this table.
    Lookup(u32),
    /// Jump to the first rule with this priority.
    Goto(u32),
    /// Do nothing (a target for `Goto`).
    Nop,
}

/// A policy routing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Family.
    pub family: Family,
    /// Priority (lower first).
    pub priority: u32,
    /// Source prefix match.
    pub src: Option<Prefix>,
    /// Destination prefix match.
    pub dst: Option<Prefix>,
    /// Incoming interface name (`lo` = locally generated).
    pub iif: Option<String>,
    /// Firewall mark and mask.
    pub fwmark: Option<(u32, u32)>,
    /// IP protocol match (6 = TCP).
    pub ip_proto: Option<u8>,
    /// Action.
    pub action: RuleAction,
    /// FRA_PROTOCOL: who installed it (braid marks its own).
    pub protocol: u8,
}

impl Rule {
    /// A rule with only a priority and an action.
    pub fn new(family: Family, priority: u32, action: RuleAction) -> Self {
        Rule {
            family,
            priority,
            src: None,
            dst: None,
            iif: None,
            fwmark: None,
            ip_proto: None,
            action,
            protocol: 4,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule pref {}", self.priority)?;
        if let Some(s) = self.src {
            write!(f, " from {s}")?;
        }
        if let Some(d) = self.dst {
            write!(f, " to {d}")?;
        }
        if let Some(i) = &self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(p) = self.ip_proto {
            write!(f, " ipproto {p}")?;
        }
        match self.action {
            RuleAction::Lookup(t) => write!(f, " lookup {t}"),
            RuleAction::Goto(p) => write!(f, " goto {p}"),
            RuleAction::Nop => write!(f, " nop"),
        }
    }
}

/// A neighbour (ARP/NDP) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    index: u32,
    /// IP address.
    pub addr: IpAddr,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// NUD state bits.
    pub state: u16,
}

/// Formats a MAC address.
pub(crate) fn mac_str(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0] = libc::AF_UNSPEC as u8;
    h[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// A synchronous rtnetlink client bound to the network namespace it was opened in.
pub struct Netlink {
    sock: Socket,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Netlink(fd {})", self.sock.as_fd().as_raw_fd())
    }
}

impl Netlink {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        Ok(Netlink {
            sock: Socket::open(libc::NETLINK_ROUTE, 0, false)?,
        })
    }

    // --- links ---

    /// Looks a link up by name; `None` if there is no such link.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = MsgBuf::new(RTM_GETLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
        self.get_link(m, &|| format!("look up link {name}"))
    }

    /// Looks a link up by index; `None` if there is no such link.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut m = MsgBuf::new(RTM_GETLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, 0, 0));
        self.get_link(m, &|| format!("look up link #{index}"))
    }

    fn get_link(&mut self, m: MsgBuf, what: &dyn Fn() -> String) -> Result<Option<Link>> {
        match self.sock.dump(m, what) {
            Ok(v) => Ok(v.iter().find_map(|p| parse_link(p))),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Dumps every object of the kind `ty` asks for (`head`: the request's fixed header) and
    /// reads each answer with `parse`, leaving out what it cannot read.
    fn list<T>(
        &mut self,
        ty: u16,
        head: &[u8],
        what: &str,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<T>> {
        let mut m = MsgBuf::new(ty, NLM_F_REQUEST | NLM_F_DUMP);
        m.raw(head);
        let v = self.sock.dump(m, &|| what.into())?;
        Ok(v.iter().filter_map(|p| parse(p)).collect())
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        self.list(RTM_GETLINK, &ifinfomsg(0, 0, 0), "list links", parse_link)
    }

    /// Waits (polling every millisecond, at most `timeout`) until a link's operational state is
    /// UP. Carrier and queue activation happen asynchronously after [`Netlink::set_up`]; frames
    /// sent before are dropped. Returns whether it came up in time.
    pub fn wait_oper_up(&mut self, index: u32, timeout: std::time::Duration) -> Result<bool> {
        let t0 = std::time::Instant::now();
        loop {
            if self.link_by_index(index)?.is_some_and(|l| l.oper_up) {
                return Ok(true);
            }
            if t0.elapsed() >= timeout {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Index of the link named `name`, or an ENODEV error naming it.
    pub fn index(&mut self, name: &str) -> Result<u32> {
        self.link_by_name(name)?.map(|l| l.index).ok_or_else(|| {
            Error::new(
                format!("find interface {name}"),
                io::Error::from_raw_os_error(libc::ENODEV),
            )
        })
    }

    /// Creates a veth pair `name` <-> `peer`. With `peer_ns`, the peer is created directly in that
    /// network namespace (an fd of it).
    pub fn create_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL);
        m.raw(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
        m.begin(IFLA_LINKINFO).attr_str(IFLA_INFO_KIND, "veth");
        m.begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
        m.raw(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, peer);
        if let Some(ns) = peer_ns {
            m.attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
        }
        m.end().end().end();
        self.sock
            .request(m, &|| format!("create veth pair {name} <-> {peer}"))
    }

    /// Deletes a link (for a veth, both ends go).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut m = MsgBuf::new(RTM_DELLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, 0, 0));
        self.sock.request(m, &|| format!("delete link #{index}"))
    }

    /// Deletes the link named `name` if it exists; returns whether it did.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        match self.link_by_name(name)? {
            Some(l) => match self.delete_link(l.index) {
                Ok(()) => Ok(true),
                Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
                Err(e) => Err(e),
            },
            None => Ok(false),
        }
    }

    /// Moves a link into another network namespace (an fd of it).
    pub fn set_netns(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<()> {
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, 0, 0))
            .attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
        self.sock
            .request(m, &|| format!("move link #{index} to another namespace"))
    }

    /// Sets a link administratively up or down.
    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let flag = libc::IFF_UP as u32;
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, if up { flag } else { 0 }, flag));
        self.sock.request(m, &|| {
            format!("set link #{index} {}", if up { "up" } else { "down" })
        })
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, 0, 0)).attr_u32(IFLA_MTU, mtu);
        self.sock
            .request(m, &|| format!("set mtu {mtu} on link #{index}"))
    }

    /// Sets a link's hardware address.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, 0, 0)).attr(IFLA_ADDRESS, &mac);
        self.sock
            .request(m, &|| format!("set mac {} on link #{index}", mac_str(&mac)))
    }

    /// Sets or clears IFF_NOARP.
    pub fn set_noarp(&mut self, index: u32, noarp: bool) -> Result<()> {
        let flag = libc::IFF_NOARP as u32;
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(index, if noarp { flag } else { 0 }, flag));
        self.sock
            .request(m, &|| format!("set noarp={noarp} on link #{index}"))
    }

    // --- addresses ---

    fn addr_msg(ty: u16, flags: u16, index: u32, p: &Prefix) -> MsgBuf {
        let mut m = MsgBuf::new(ty, flags);
        let mut h = [0u8; 8];
        h[0] = family_of(&p.addr);
        h[1] = p.len;
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        m.raw(&h);
        let a = ip_bytes(&p.addr);
        m.attr(IFA_LOCAL, &a).attr(IFA_ADDRESS, &a);
        m
    }

    /// Adds `addr/len` to a link (IPv6 without duplicate address detection).
    pub fn add_address(&mut self, index: u32, p: Prefix) -> Result<()> {
        let mut m = Self::addr_msg(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL,
            index,
            &p,
        );
        m.attr_u32(IFA_FLAGS, IFA_F_NODAD);
        self.sock
            .request(m, &|| format!("add address {p} to link #{index}"))
    }

    /// Removes an address from a link.
    pub fn del_address(&mut self, index: u32, p: Prefix) -> Result<()> {
        let m = Self::addr_msg(RTM_DELADDR, NLM_F_REQUEST, index, &p);
        self.sock
            .request(m, &|| format!("delete address {p} from link #{index}"))
    }

    /// Addresses of one link (or of all links with `None`).
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut all = self.list(RTM_GETADDR, &[0u8; 8], "list addresses", parse_addr)?;
        all.retain(|a| index.map_or(true, |i| a.index == i));
        Ok(all)
    }

    // --- routes ---

    fn route_msg(ty: u16, flags: u16, r: &Route) -> MsgBuf {
        let mut m = MsgBuf::new(ty, flags);
        let mut h = [0u8; 12];
        h[0] = family_of(&r.dst.addr);
        h[1] = r.dst.len;
        h[4] = if r.table < 256 { r.table as u8 } else { 252 }; // RT_TABLE_COMPAT
        h[5] = r.protocol;
        h[6] = match (r.kind, r.gateway) {
            (RouteKind::Unicast, None) if r.oif.is_some() => 253, // scope link
            _ => 0,
        };
        h[7] = match r.kind {
            RouteKind::Unicast => 1,
            RouteKind::Blackhole => 6,
            RouteKind::Unreachable => 7,
            RouteKind::Other(t) => t,
        };
        let fl = if r.onlink { RTNH_F_ONLINK } else { 0 };
        h[8..12].copy_from_slice(&fl.to_ne_bytes());
        m.raw(&h);
        if r.dst.len > 0 {
            m.attr(RTA_DST, &ip_bytes(&r.dst.network().addr));
        }
        m.attr_u32(RTA_TABLE, r.table);
        if let Some(g) = r.gateway {
            m.attr(RTA_GATEWAY, &ip_bytes(&g));
        }
        if let Some(o) = r.oif {
            m.attr_u32(RTA_OIF, o);
        }
        if let Some(p) = r.metric {
            m.attr_u32(RTA_PRIORITY, p);
        }
        if let Some(s) = r.prefsrc {
            m.attr(RTA_PREFSRC, &ip_bytes(&s));
        }
        m
    }

    /// Adds a route (fails with EEXIST if an identical one exists).
    pub fn add_route(&mut self, r: &Route) -> Result<()> {
        let m = Self::route_msg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, r);
        self.sock.request(m, &|| format!("add {r}"))
    }

    /// Adds or replaces a route.
    pub(crate) fn replace_route(&mut self, r: &Route) -> Result<()> {
        let m = Self::route_msg(
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
            r,
        );
        self.sock.request(m, &|| format!("replace {r}"))
    }

    /// Deletes a route.
    pub fn del_route(&mut self, r: &Route) -> Result<()> {
        let m = Self::route_msg(RTM_DELROUTE, NLM_F_REQUEST, r);
        self.sock.request(m, &|| format!("delete {r}"))
    }

    /// Routes of one family in one table (`None` = every table).
    pub fn routes(&mut self, family: Family, table: Option<u32>) -> Result<Vec<Route>> {
        let mut all = self.list(
            RTM_GETROUTE,
            &family.dump_head(),
            "list routes",
            parse_route,
        )?;
        all.retain(|r| table.map_or(true, |t| r.table == t));
        Ok(all)
    }

    /// Deletes every route of `table` (both families); returns how many went.
    pub fn flush_table(&mut self, table: u32) -> Result<usize> {
        let mut n = 0;
        for fam in [Family::V4, Family::V6] {
            for r in self.routes(fam, Some(table))? {
                match self.del_route(&r) {
                    Ok(()) => n += 1,
                    Err(e) if e.errno() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    // --- rules ---

    fn rule_msg(ty: u16, flags: u16, r: &Rule) -> MsgBuf {
        let mut m = MsgBuf::new(ty, flags);
        let mut h = [0u8; 12];
        h[0] = r.family.af();
        h[1] = r.dst.map_or(0, |p| p.len);
        h[2] = r.src.map_or(0, |p| p.len);
        h[7] = match r.action {
            RuleAction::Lookup(_) => FR_ACT_TO_TBL,
            RuleAction::Goto(_) => FR_ACT_GOTO,
            RuleAction::Nop => FR_ACT_NOP,
        };
        if let RuleAction::Lookup(t) = r.action {
            h[4] = if t < 256 { t as u8 } else { 252 };
        }
        m.raw(&h);
        m.attr_u32(FRA_PRIORITY, r.priority);
        if let Some(s) = r.src {
            m.attr(FRA_SRC, &ip_bytes(&s.network().addr));
        }
        if let Some(d) = r.dst {
            m.attr(FRA_DST, &ip_bytes(&d.network().addr));
        }
        if let Some(i) = &r.iif {
            m.attr_str(FRA_IIFNAME, i);
        }
        if let Some((mark, mask)) = r.fwmark {
            m.attr_u32(FRA_FWMARK, mark).attr_u32(FRA_FWMASK, mask);
        }
        if let Some(p) = r.ip_proto {
            m.attr(FRA_IP_PROTO, &[p]);
        }
        match r.action {
            RuleAction::Lookup(t) => {
                m.attr_u32(FRA_TABLE, t);
            }
            RuleAction::Goto(p) => {
                m.attr_u32(FRA_GOTO, p);
            }
            RuleAction::Nop => {}
        }
        m.attr(FRA_PROTOCOL, &[r.protocol]);
        m
    }

    /// Adds a policy rule.
    pub fn add_rule(&mut self, r: &Rule) -> Result<()> {
        let m = Self::rule_msg(RTM_NEWRULE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, r);
        self.sock.request(m, &|| format!("add {r}"))
    }

    /// Deletes a policy rule (matched on all its fields).
    pub fn del_rule(&mut self, r: &Rule) -> Result<()> {
        let m = Self::rule_msg(RTM_DELRULE, NLM_F_REQUEST, r);
        self.sock.request(m, &|| format!("delete {r}"))
    }

    /// Deletes a policy rule if it is there: false when it was gone already.
    pub(crate) fn del_rule_if_present(&mut self, r: &Rule) -> Result<bool> {
        match self.del_rule(r) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every policy rule, IPv4 then IPv6 (none of IPv6 on a kernel without it).
    pub(crate) fn all_rules(&mut self) -> Result<Vec<Rule>> {
        let mut all = self.rules(Family::V4)?;
        match self.rules(Family::V6) {
            Ok(v6) => all.extend(v6),
            Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => {}
            Err(e) => return Err(e),
        }
        Ok(all)
    }

    /// Policy rules of one family.
    pub fn rules(&mut self, family: Family) -> Result<Vec<Rule>> {
        self.list(RTM_GETRULE, &family.dump_head(), "list rules", parse_rule)
    }

    // --- neighbours ---

    fn neigh_msg(
        ty: u16,
        flags: u16,
        index: u32,
        addr: &IpAddr,
        mac: Option<[u8; 6]>,
        state: u16,
    ) -> MsgBuf {
        let mut m = MsgBuf::new(ty, flags);
        let mut h = [0u8; 12];
        h[0] = family_of(addr);
        h[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
        h[8..10].copy_from_slice(&state.to_ne_bytes());
        m.raw(&h);
        m.attr(NDA_DST, &ip_bytes(addr));
        if let Some(mac) = mac {
            m.attr(NDA_LLADDR, &mac);
        }
        m
    }

    /// Adds (or replaces) a permanent neighbour entry.
    pub fn add_neighbour(&mut self, index: u32, addr: IpAddr, mac: [u8; 6]) -> Result<()> {
        let m = Self::neigh_msg(
            RTM_NEWNEIGH,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
            index,
            &addr,
            Some(mac),
            NUD_PERMANENT,
        );
        self.sock.request(m, &|| {
            format!(
                "add neighbour {addr} lladdr {} on link #{index}",
                mac_str(&mac)
            )
        })
    }

    /// Deletes a neighbour entry.
    pub fn del_neighbour(&mut self, index: u32, addr: IpAddr) -> Result<()> {
        let m = Self::neigh_msg(RTM_DELNEIGH, NLM_F_REQUEST, index, &addr, None, 0);
        self.sock
            .request(m, &|| format!("delete neighbour {addr} on link #{index}"))
    }

    /// Neighbour entries (of one link, or all with `None`).
    pub fn neighbours(&mut self, family: Family, index: Option<u32>) -> Result<Vec<Neighbour>> {
        let head = family.dump_head();
        let mut all = self.list(RTM_GETNEIGH, &head, "list neighbours", parse_neigh)?;
        all.retain(|n| index.map_or(true, |i| n.index == i));
        Ok(all)
    }
}

pub(crate) fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < 16 {
        return None;
    }
    let index = i32::from_ne_bytes(p[4..8].try_into().ok()?) as u32;
    let flags = u32::from_ne_bytes(p[8..12].try_into().ok()?);
    let mut l = Link {
        index,
        name: String::new(),
        mtu: 0,
        up: flags & libc::IFF_UP as u32 != 0,
        lower_up: flags & libc::IFF_LOWER_UP as u32 != 0,
        oper_up: false,
        mac: None,
        kind: None,
    };
    for (ty, v) in attrs(&p[16..]) {
        match ty {
            IFLA_IFNAME => {
                l.name = String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string()
            }
            IFLA_MTU => l.mtu = ne_u32(v).unwrap_or(0),
            IFLA_OPERSTATE => l.oper_up = v.first() == Some(&IF_OPER_UP),
            IFLA_ADDRESS if v.len() == 6 => l.mac = v.try_into().ok(),
            IFLA_LINKINFO => {
                for (t, k) in attrs(v) {
                    if t == IFLA_INFO_KIND {
                        l.kind = Some(
                            String::from_utf8_lossy(k)
                                .trim_end_matches('\0')
                                .to_string(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Some(l)
}

pub(crate) fn parse_addr(p: &[u8]) -> Option<Address> {
    if p.len() < 8 {
        return None;
    }
    let len = p[1];
    let scope = p[3];
    let index = u32::from_ne_bytes(p[4..8].try_into().ok()?);
    let mut local = None;
    let mut address = None;
    for (ty, v) in attrs(&p[8..]) {
        match ty {
            IFA_LOCAL => local = ip_from(v),
            IFA_ADDRESS => address = ip_from(v),
            _ => {}
        }
    }
    let addr = local.or(address)?;
    Some(Address {
        index,
        prefix: Prefix::new(addr, len),
        scope,
    })
}

fn parse_route(p: &[u8]) -> Option<Route> {
    if p.len() < 12 {
        return None;
    }
    let fam = p[0];
    let dst_len = p[1];
    let mut r = Route::new(Prefix::new(
        if fam == libc::AF_INET as u8 {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        },
        dst_len,
    ));
    r.table = u32::from(p[4]);
    r.protocol = p[5];
    r.kind = match p[7] {
        1 => RouteKind::Unicast,
        6 => RouteKind::Blackhole,
        7 => RouteKind::Unreachable,
        t => RouteKind::Other(t),
    };
    r.onlink = u32::from_ne_bytes(p[8..12].try_into().ok()?) & RTNH_F_ONLINK != 0;
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            RTA_DST => r.dst = Prefix::new(ip_from(v)?, dst_len),
            RTA_GATEWAY => r.gateway = ip_from(v),
            RTA_OIF => r.oif = ne_u32(v),
            RTA_PRIORITY => r.metric = ne_u32(v),
            RTA_PREFSRC => r.prefsrc = ip_from(v),
            RTA_TABLE => r.table = ne_u32(v)?,
            _ => {}
        }
    }
    Some(r)
}

fn parse_rule(p: &[u8]) -> Option<Rule> {
    if p.len() < 12 {
        return None;
    }
    let family = if p[0] == libc::AF_INET as u8 {
        Family::V4
    } else {
        Family::V6
    };
    let (dst_len, src_len) = (p[1], p[2]);
    let mut table = u32::from(p[4]);
    let action = p[7];
    let mut r = Rule::new(family, 0, RuleAction::Nop);
    r.protocol = 0;
    let mut goto = 0;
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            FRA_PRIORITY => r.priority = ne_u32(v)?,
            FRA_SRC => r.src = Some(Prefix::new(ip_from(v)?, src_len)),
            FRA_DST => r.dst = Some(Prefix::new(ip_from(v)?, dst_len)),
            FRA_IIFNAME => {
                r.iif = Some(
                    String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            FRA_FWMARK => r.fwmark = Some((ne_u32(v)?, r.fwmark.map_or(u32::MAX, |f| f.1))),
            FRA_FWMASK => r.fwmark = Some((r.fwmark.map_or(0, |f| f.0), ne_u32(v)?)),
            FRA_IP_PROTO => r.ip_proto = v.first().copied(),
            FRA_TABLE => table = ne_u32(v)?,
            FRA_GOTO => goto = ne_u32(v)?,
            FRA_PROTOCOL => r.protocol = v.first().copied().unwrap_or(0),
            _ => {}
        }
    }
    r.action = match action {
        FR_ACT_TO_TBL => RuleAction::Lookup(table),
        FR_ACT_GOTO => RuleAction::Goto(goto),
        _ => RuleAction::Nop,
    };
    Some(r)
}

pub(crate) fn parse_neigh(p: &[u8]) -> Option<Neighbour> {
    if p.len() < 12 {
        return None;
    }
    let index = i32::from_ne_bytes(p[4..8].try_into().ok()?) as u32;
    let state = u16::from_ne_bytes([p[8], p[9]]);
    let mut addr = None;
    let mut mac = None;
    for (ty, v) in attrs(&p[12..]) {
        match ty {
            NDA_DST => addr = ip_from(v),
            NDA_LLADDR if v.len() == 6 => mac = v.try_into().ok(),
            _ => {}
        }
    }
    Some(Neighbour {
        index,
        addr: addr?,
        mac,
        state,
    })
}

// --- multicast events ------------------------------------------------------------------------

/// A change the kernel announced on an rtnetlink multicast group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A link appeared or changed (state, name, MTU).
    Link(Link),
    /// A link was deleted.
    LinkGone(Link),
    /// An address was added.
    AddrAdded(Address),
    /// An address was removed.
    AddrRemoved(Address),
}

/// A non-blocking rtnetlink socket subscribed to multicast groups (`RTMGRP_*`); poll its fd
/// (e.g. with tokio's `AsyncFd`) and call [`Watch::read`].
pub struct Watch {
    sock: Socket,
}

impl Watch {
    /// Subscribes to `groups` in the calling thread's namespace.
    pub fn open(groups: u32) -> Result<Watch> {
        Ok(Watch {
            sock: Socket::open(libc::NETLINK_ROUTE, groups, true)?,
        })
    }

    /// Reads every pending event (empty when none is pending). On ENOBUFS (the kernel dropped
    /// events because we were slow) returns an error with that errno: the caller should re-read
    /// the state it tracks.
    pub fn read(&mut self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let n = match self.sock.recv_raw(libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(Error::new("read rtnetlink events", e)),
            };
            for m in messages(&self.sock.rx()[..n]) {
                let p = m.payload;
                let ev = match m.ty {
                    RTM_NEWLINK => parse_link(p).map(Event::Link),
                    RTM_DELLINK => parse_link(p).map(Event::LinkGone),
                    RTM_NEWADDR => parse_addr(p).map(Event::AddrAdded),
                    RTM_DELADDR => parse_addr(p).map(Event::AddrRemoved),
                    _ => None,
                };
                out.extend(ev);
            }
        }
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watch(fd {})", self.as_raw_fd())
    }
}

fd_of_field!(Watch, sock);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgbuf_nests_and_parses_back() {
        let mut m = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.raw(&ifinfomsg(7, 0, 0)).attr_str(IFLA_IFNAME, "bo-x");
        m.begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .end();
        let b = m.finish(1).to_vec();
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        let l = parse_link(&b[16..]).unwrap();
        assert_eq!(l.index, 7);
        assert_eq!(l.name, "bo-x");
        assert_eq!(l.kind.as_deref(), Some("veth"));
    }

    #[test]
    fn messages_walk_a_datagram_and_stop_at_a_bad_header() {
        let mut d = MsgBuf::new(RTM_NEWLINK, NLM_F_REQUEST);
        d.raw(&ifinfomsg(7, 0, 0)).attr_str(IFLA_IFNAME, "bo-x");
        let mut b = d.finish(5).to_vec();
        b.extend_from_slice(MsgBuf::new(NLMSG_DONE, 0).finish(6));
        b.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let got: Vec<_> = messages(&b)
            .map(|m| (m.ty, m.seq, m.payload.len()))
            .collect();
        assert_eq!(got, [(RTM_NEWLINK, 5, b.len() - 48), (NLMSG_DONE, 6, 0)]);
        assert_eq!(
            parse_link(messages(&b).next().unwrap().payload)
                .unwrap()
                .name,
            "bo-x"
        );
        assert_eq!(messages(&b[..15]).count(), 0);
    }

    #[test]
    fn attrs_stop_on_garbage() {
        let junk = [0xffu8, 0xff, 1, 0, 9, 9];
        assert_eq!(attrs(&junk).count(), 0);
        assert_eq!(attrs(&[]).count(), 0);
        assert!(parse_link(&[1, 2, 3]).is_none());
        assert!(parse_rule(&[0; 5]).is_none());
    }

    #[test]
    fn error_payload_maps_errno() {
        let mut p = (-libc::EEXIST).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0u8; 16]);
        let e = nl_error("x".into(), parse_error(&p, 0).unwrap_err());
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let ok = 0i32.to_ne_bytes();
        assert!(parse_error(&ok, 0).is_ok());
    }
}
