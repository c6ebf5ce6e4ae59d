//! Conntrack entries of flows that went through the hub, removed when the hub stops carrying
//! them (ctnetlink over NETLINK_NETFILTER, no `conntrack` program).
//!
//! While the edge steers a LAN source into the hub, the router's conntrack makes an entry for
//! each of its flows *without* source NAT: the packets leave by the hub, not by a WAN the
//! masquerade rule applies to. NAT is decided once, when an entry is made, so when the steering
//! goes (the edge withdrew it, stopped, or was killed and restarted without a session) the
//! flow's next packets still match that entry and go out of the WAN with the client's private
//! address: a UDP stream (a call, a game, QUIC) that keeps sending keeps its entry alive and
//! never fails over. [`flush_steered`] deletes exactly those entries: IPv4, a source the edge
//! steers, a destination it does not bypass, no source NAT. The next packet makes a new entry,
//! which the router's masquerade translates, and the flow carries on over the plain WAN.
//! (IPv6 is routed without NAT: its entries keep working and are left alone.)
//!
//! The reverse happens when the steering comes back after a fail-open: a bonded TCP flow whose
//! client retransmitted while the rules were out got a new entry *with* source NAT (made by the
//! WAN's masquerade, even when that WAN was as dead as the links). Left in place, it translates
//! the flow's packets to the router's WAN address as they enter the hub (the core takes them
//! for a new flow nobody answers), and the server's packets coming back through the tunnel
//! clash with it: the router's NAT gives each a new, random source port, the client answers
//! each with a reset, and the core carries those resets to the server (seen in the lab: 55
//! resets from one client after a 5 s outage, and the flow reset or stalled). [`flush_resteered`]
//! deletes the entries of every flow the steering takes back, translated or not, so the next
//! packet makes a fresh, untranslated one and the flow goes on through the core with its
//! original mapping.

use std::net::{IpAddr, Ipv4Addr};

use super::netlink::{attrs, MsgBuf, Socket};
use super::space::SteerConfig;
use super::Result;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_STATUS: u16 = 3;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// Conntrack status bit: the entry translates its source.
pub const IPS_SRC_NAT: u32 = 1 << 4;

/// One IPv4 conntrack entry, as far as the flush needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Ports (0 for protocols without).
    sport: u16,
    pub dport: u16,
    pub status: u32,
    /// The CTA_TUPLE_ORIG body as the kernel sent it (what a delete names the entry by).
    orig: Vec<u8>,
}

/// Reads one ctnetlink message payload (after the nlmsghdr); `None` if it is not an IPv4
/// entry with an original tuple.
pub(crate) fn parse_entry(p: &[u8]) -> Option<Entry> {
    // nfgenmsg: family, version, res_id.
    if p.len() < 4 || i32::from(p[0]) != libc::AF_INET {
        return None;
    }
    let mut e = Entry {
        proto: 0,
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        sport: 0,
        dport: 0,
        status: 0,
        orig: Vec::new(),
    };
    let mut have_tuple = false;
    for (ty, v) in attrs(&p[4..]) {
        match ty {
            CTA_TUPLE_ORIG => {
                e.orig = v.to_vec();
                for (t, w) in attrs(v) {
                    match t {
                        CTA_TUPLE_IP => {
                            for (a, x) in attrs(w) {
                                let ip = <[u8; 4]>::try_from(x).ok().map(Ipv4Addr::from);
                                match (a, ip) {
                                    (CTA_IP_V4_SRC, Some(ip)) => {
                                        e.src = ip;
                                        have_tuple = true;
                                    }
                                    (CTA_IP_V4_DST, Some(ip)) => e.dst = ip,
                                    _ => {}
                                }
                            }
                        }
                        CTA_TUPLE_PROTO => {
                            for (a, x) in attrs(w) {
                                match (a, x.len()) {
                                    (CTA_PROTO_NUM, 1) => e.proto = x[0],
                                    (CTA_PROTO_SRC_PORT, 2) => {
                                        e.sport = u16::from_be_bytes([x[0], x[1]])
                                    }
                                    (CTA_PROTO_DST_PORT, 2) => {
                                        e.dport = u16::from_be_bytes([x[0], x[1]])
                                    }
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            CTA_STATUS if v.len() == 4 => {
                e.status = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            }
            _ => {}
        }
    }
    have_tuple.then_some(e)
}

/// Whether `e` is a flow the hub carried under `steer`: a steered source, a destination outside
/// the sources and the bypasses, TCP if only TCP is steered, and no source NAT (a flow that
/// went out of a WAN was masqueraded, and keeps working).
pub(crate) fn was_steered(e: &Entry, steer: &SteerConfig) -> bool {
    e.status & IPS_SRC_NAT == 0 && is_steered(e, steer)
}

/// Whether `steer` sends the flow of `e` into the hub, whatever its entry translates: a
/// steered source, a destination outside the sources and the bypasses, TCP if only TCP is
/// steered.
pub(crate) fn is_steered(e: &Entry, steer: &SteerConfig) -> bool {
    let (src, dst) = (IpAddr::V4(e.src), IpAddr::V4(e.dst));
    !e.dst.is_multicast()
        && !e.dst.is_broadcast()
        && (!steer.tcp_only || e.proto == 6)
        && steer.sources.iter().any(|p| p.contains(src))
        && !steer
            .sources
            .iter()
            .chain(&steer.bypass)
            .any(|p| p.contains(dst))
}

fn ct_msg(msg: u16, flags: u16) -> MsgBuf {
    let mut m = MsgBuf::new((NFNL_SUBSYS_CTNETLINK << 8) | msg, flags);
    // nfgenmsg: AF_INET, NFNETLINK_V0, res_id 0.
    m.raw(&[libc::AF_INET as u8, 0, 0, 0]);
    m
}

/// Every IPv4 conntrack entry of this namespace.
pub fn entries() -> Result<Vec<Entry>> {
    let mut sock = Socket::open(libc::NETLINK_NETFILTER, 0, false)?;
    dump(&mut sock)
}

fn dump(sock: &mut Socket) -> Result<Vec<Entry>> {
    let m = ct_msg(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP);
    let v = sock.dump(m, &|| "list conntrack entries".into())?;
    Ok(v.iter().filter_map(|p| parse_entry(p)).collect())
}

/// Deletes the conntrack entries of the flows `steer` sent into the hub (see the module doc);
/// how many. An entry that expired meanwhile is not an error.
pub(crate) fn flush_steered(steer: &SteerConfig) -> Result<usize> {
    flush(|e| was_steered(e, steer))
}

/// Deletes the conntrack entries of every flow `steer` sends into the hub, with source NAT or
/// without: called when the steering is installed again after a fail-open, so that flows
/// whose packets were masqueraded onto a WAN meanwhile re-enter the hub untranslated (see the
/// module doc); how many.
pub(crate) fn flush_resteered(steer: &SteerConfig) -> Result<usize> {
    flush(|e| is_steered(e, steer))
}

/// Deletes the entries of flows `old` steered and `new` does not (a reload that narrowed the
/// steering: those flows now take the plain WAN).
pub(crate) fn flush_unsteered(old: &SteerConfig, new: &SteerConfig) -> Result<usize> {
    flush(|e| was_steered(e, old) && !was_steered(e, new))
}

/// Deletes every IPv4 entry `pick` chooses; how many.
pub(crate) fn flush(pick: impl Fn(&Entry) -> bool) -> Result<usize> {
    let mut sock = Socket::open(libc::NETLINK_NETFILTER, 0, false)?;
    let mut n = 0;
    for e in dump(&mut sock)?.into_iter().filter(|e| pick(e)) {
        let mut m = ct_msg(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST);
        m.attr(CTA_TUPLE_ORIG | NLA_F_NESTED, &e.orig);
        match sock.request(m, &|| {
            format!(
                "delete conntrack entry proto {} {}:{} -> {}:{}",
                e.proto, e.src, e.sport, e.dst, e.dport
            )
        }) {
            Ok(()) => n += 1,
            Err(err) if err.errno() == Some(libc::ENOENT) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(n)
}

impl Entry {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::Prefix;

    impl Entry {
        /// An entry as a test or a dump would show it (no original tuple bytes).
        fn new(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, status: u32) -> Entry {
            Entry {
                proto,
                src,
                dst,
                sport: 0,
                dport: 0,
                status,
                orig: Vec::new(),
            }
        }
    }

    fn steer() -> SteerConfig {
        let mut s = SteerConfig::new();
        s.sources = vec![Prefix::new(IpAddr::from([192, 168, 1, 0]), 24)];
        s.bypass = vec![
            Prefix::host(IpAddr::from([203, 0, 113, 7])), // the core
            Prefix::new(IpAddr::from([10, 0, 0, 0]), 8),
        ];
        s
    }

    fn e(proto: u8, src: [u8; 4], dst: [u8; 4], status: u32) -> Entry {
        Entry::new(proto, src.into(), dst.into(), status)
    }

    #[test]
    fn only_unnatted_flows_of_steered_sources_to_steered_destinations() {
        let s = steer();
        let client = [192, 168, 1, 20];
        assert!(was_steered(&e(17, client, [8, 8, 8, 8], 0x0e), &s));
        assert!(was_steered(&e(6, client, [1, 1, 1, 1], 0x0e), &s));
        assert!(
            !was_steered(&e(17, client, [8, 8, 8, 8], 0x0e | IPS_SRC_NAT), &s),
            "masqueraded: went out of a WAN"
        );
        assert!(
            !was_steered(&e(17, [192, 168, 2, 20], [8, 8, 8, 8], 0), &s),
            "not a steered source"
        );
        assert!(
            !was_steered(&e(6, client, [192, 168, 1, 1], 0), &s),
            "LAN to LAN (or the router's LAN address)"
        );
        assert!(
            !was_steered(&e(17, client, [203, 0, 113, 7], 0), &s),
            "core"
        );
        assert!(!was_steered(&e(17, client, [10, 1, 2, 3], 0), &s), "bypass");
        assert!(!was_steered(&e(2, client, [224, 0, 0, 22], 0), &s), "IGMP");
        assert!(!was_steered(&e(17, client, [255, 255, 255, 255], 0), &s));
        let mut tcp = steer();
        tcp.tcp_only = true;
        assert!(!was_steered(&e(17, client, [8, 8, 8, 8], 0), &tcp));
        assert!(was_steered(&e(6, client, [8, 8, 8, 8], 0), &tcp));
    }

    #[test]
    fn resteering_takes_back_masqueraded_flows_of_steered_sources_only() {
        let s = steer();
        let client = [192, 168, 1, 20];
        let natted = 0x0e | IPS_SRC_NAT;
        assert!(
            is_steered(&e(6, client, [1, 1, 1, 1], natted), &s),
            "a bonded flow masqueraded onto the WAN during the fail-open"
        );
        assert!(is_steered(&e(6, client, [1, 1, 1, 1], 0x0e), &s));
        assert!(is_steered(&e(17, client, [8, 8, 8, 8], natted), &s));
        assert!(
            !is_steered(&e(6, [192, 168, 2, 20], [1, 1, 1, 1], natted), &s),
            "not a steered source"
        );
        assert!(!is_steered(&e(6, client, [192, 168, 1, 1], natted), &s));
        assert!(
            !is_steered(&e(17, client, [203, 0, 113, 7], natted), &s),
            "the core is bypassed"
        );
        assert!(
            !is_steered(&e(6, client, [10, 1, 2, 3], natted), &s),
            "bypass"
        );
        assert!(!is_steered(&e(2, client, [224, 0, 0, 22], natted), &s));
        assert!(!is_steered(&e(17, client, [255, 255, 255, 255], 0), &s));
        let mut tcp = steer();
        tcp.tcp_only = true;
        assert!(!is_steered(&e(17, client, [8, 8, 8, 8], natted), &tcp));
        assert!(is_steered(&e(6, client, [8, 8, 8, 8], natted), &tcp));
        // The other flushes still leave masqueraded entries alone.
        assert!(!was_steered(&e(6, client, [1, 1, 1, 1], natted), &s));
    }

    fn nla(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut v = ((4 + body.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(body);
        v.resize((v.len() + 3) & !3, 0);
        v
    }

    #[test]
    fn parses_a_kernel_entry() {
        let ip = [
            nla(CTA_IP_V4_SRC, &[192, 168, 1, 20]),
            nla(CTA_IP_V4_DST, &[8, 8, 4, 4]),
        ]
        .concat();
        let proto = [
            nla(CTA_PROTO_NUM, &[17]),
            nla(CTA_PROTO_SRC_PORT, &40000u16.to_be_bytes()),
            nla(CTA_PROTO_DST_PORT, &53u16.to_be_bytes()),
        ]
        .concat();
        let tuple = [
            nla(CTA_TUPLE_IP | NLA_F_NESTED, &ip),
            nla(CTA_TUPLE_PROTO | NLA_F_NESTED, &proto),
        ]
        .concat();
        let mut p = vec![libc::AF_INET as u8, 0, 0, 0];
        p.extend(nla(CTA_TUPLE_ORIG | NLA_F_NESTED, &tuple));
        p.extend(nla(CTA_STATUS, &0x18eu32.to_be_bytes()));
        let got = parse_entry(&p).unwrap();
        assert_eq!(
            (got.proto, got.src, got.dst, got.sport, got.dport, got.status),
            (
                17,
                Ipv4Addr::new(192, 168, 1, 20),
                Ipv4Addr::new(8, 8, 4, 4),
                40000,
                53,
                0x18e
            )
        );
        assert_eq!(got.orig, tuple);
        // IPv6 entries, truncated and junk payloads are skipped.
        let mut v6 = p.clone();
        v6[0] = libc::AF_INET6 as u8;
        assert!(parse_entry(&v6).is_none());
        assert!(parse_entry(&p[..3]).is_none());
        assert!(parse_entry(&[2, 0, 0, 0, 0xff, 0xff, 1]).is_none());
    }
}
