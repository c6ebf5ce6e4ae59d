//! The core's forward policy: which client packets it forwards, and the counters of those it
//! refuses, by reason.
//!
//! Pure: no I/O, no clock. `braid core` checks every packet an edge sends before it writes it
//! into its hub ([`ForwardPolicy::check`]), so the host's own firewall, whatever it is, never
//! has to know about Braid's clients.
//!
//! # What clients reach
//! By default only public destinations. Refused, in this order:
//! 1. the client pool itself (another client, of this edge or another: trains stay apart),
//! 2. a destination in `deny_dest`,
//! 3. unless in `allow_dest`: the core host's own addresses (read from the host, refreshed
//!    while it runs), RFC 1918 private networks, link-local (with the cloud metadata service
//!    169.254.169.254 counted apart), shared address space 100.64.0.0/10 (CGNAT), and the
//!    reserved ranges (0/8, loopback, multicast, 240/4, broadcast; documentation ranges are
//!    left to the operator's lists).
//!
//! Sources are checked too: a packet from an address outside the edge's `allowed_lan` (when
//! the peer lists any) is refused. [`Admission`] applies both to every client packet, gives
//! an admitted one its client's pool address, and counts what it refuses.
//!
//! # Refusals
//! [`Refusal`] names each reason in words `braid status` shows; [`Refusals`] counts them, one
//! counter per reason. Anything else the core refuses (handshakes, say) can join as a variant.

use crate::proto::fasthash::FastMap;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};

use crate::config::model::Cidr;
use crate::os::nat::{EdgeKey, MapError, SourceMap};
use crate::proto::packet::PacketMut;

/// Why the core refused a client packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Refusal {
    /// To an address of the client pool: another client.
    Pool,
    /// To a destination in `deny_dest`.
    Denied,
    /// To one of the core host's own addresses.
    CoreLocal,
    /// To an RFC 1918 private network.
    Private,
    /// To 169.254.169.254, the cloud metadata service.
    Metadata,
    /// To another link-local address.
    LinkLocal,
    /// To shared address space 100.64.0.0/10 (CGNAT).
    Shared,
    /// To a reserved, loopback, multicast or broadcast address.
    Reserved,
    /// From a source outside the edge's `allowed_lan`.
    OutsideLan,
    /// From one client address more than the edge's `max_clients`.
    ClientLimit,
    /// No pool address free for a new client.
    PoolFull,
    /// Not IPv4 (IPv6 is not carried yet) or malformed.
    Family,
}

impl Refusal {
    /// Every reason, in the order `braid status` lists them.
    pub(crate) const ALL: [Refusal; 12] = [
        Refusal::Pool,
        Refusal::Denied,
        Refusal::CoreLocal,
        Refusal::Private,
        Refusal::Metadata,
        Refusal::LinkLocal,
        Refusal::Shared,
        Refusal::Reserved,
        Refusal::OutsideLan,
        Refusal::ClientLimit,
        Refusal::PoolFull,
        Refusal::Family,
    ];

    /// The reason in the words `braid status` shows.
    pub(crate) fn words(self) -> &'static str {
        match self {
            Refusal::Pool => "to another client (the client pool)",
            Refusal::Denied => "to a destination in deny_dest",
            Refusal::CoreLocal => "to the core host itself",
            Refusal::Private => "to a private network (RFC 1918)",
            Refusal::Metadata => "to the cloud metadata service (169.254.169.254)",
            Refusal::LinkLocal => "to a link-local address",
            Refusal::Shared => "to shared address space (100.64.0.0/10)",
            Refusal::Reserved => "to a reserved, loopback, multicast or broadcast address",
            Refusal::OutsideLan => "from a source outside the edge's allowed_lan",
            Refusal::ClientLimit => "from more client addresses than max_clients",
            Refusal::PoolFull => "no pool address free for a new client",
            Refusal::Family => "not IPv4, or malformed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of refused packets, one per [`Refusal`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Refusals {
    counts: [u64; Refusal::ALL.len()],
}

impl Refusals {
    /// Counts one refusal.
    pub(crate) fn add(&mut self, r: Refusal) {
        self.counts[r.index()] += 1;
    }

    /// How many packets were refused for `r`.
    pub(crate) fn get(&self, r: Refusal) -> u64 {
        self.counts[r.index()]
    }

    /// The reasons counted at least once, with their counts, for `braid status`.
    pub(crate) fn counters(&self) -> Vec<crate::control::Counter> {
        Refusal::ALL
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| crate::control::Counter {
                reason: r.words().into(),
                count: self.get(*r),
            })
            .collect()
    }
}

/// The destinations clients may reach; see the module doc.
#[derive(Clone, Debug, Default)]
pub(crate) struct ForwardPolicy {
    /// The client pool (never reachable).
    pub(crate) pool: Vec<Cidr>,
    /// `allow_dest`: opened although private, local or link-local.
    pub(crate) allow: Vec<Cidr>,
    /// `deny_dest`: refused although public.
    pub(crate) deny: Vec<Cidr>,
    /// The core host's own addresses.
    pub(crate) local: Vec<IpAddr>,
}

const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

impl ForwardPolicy {
    /// Whether a client may reach `dst`.
    pub(crate) fn check(&self, dst: IpAddr) -> Result<(), Refusal> {
        let within = |l: &[Cidr]| l.iter().any(|c| c.contains(dst));
        if within(&self.pool) {
            return Err(Refusal::Pool);
        }
        if within(&self.deny) {
            return Err(Refusal::Denied);
        }
        if within(&self.allow) {
            return Ok(());
        }
        if self.local.contains(&dst) {
            return Err(Refusal::CoreLocal);
        }
        match dst {
            IpAddr::V4(a) => builtin_v4(a),
            // IPv6 is refused before this (no IPv6 pool yet); the same ranges when it is not.
            IpAddr::V6(a) => {
                let s = a.segments()[0];
                if (s & 0xffc0) == 0xfe80 {
                    Err(Refusal::LinkLocal)
                } else if (s & 0xfe00) == 0xfc00 {
                    Err(Refusal::Private)
                } else if a.is_loopback() || a.is_unspecified() || (s & 0xff00) == 0xff00 {
                    Err(Refusal::Reserved)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether a source address is inside an edge's `allowed_lan` (any, when it lists none).
    pub(crate) fn source_allowed(allowed_lan: &[Cidr], src: IpAddr) -> bool {
        allowed_lan.is_empty() || allowed_lan.iter().any(|c| c.contains(src))
    }
}

/// What the core admits from its edges, as a plain struct: the forward policy, each configured
/// edge's `allowed_lan`, the client's pool address (from the [`SourceMap`]), and the counters
/// of what it refused, since start and per session (`S`, the core's session id). The loop
/// parses every client packet an edge delivers once and hands it over; an admitted one comes
/// back with its source rewritten, ready for the hub.
#[derive(Debug)]
pub(crate) struct Admission<S> {
    policy: ForwardPolicy,
    /// Looked up per packet: [`FastMap`]s, not SipHash (keys of configured edges, sessions).
    allowed_lan: FastMap<EdgeKey, Vec<Cidr>>,
    refused: Refusals,
    refused_by: FastMap<S, Refusals>,
}

impl<S: Copy + Eq + Hash> Admission<S> {
    /// The policy (its `local` filled later by [`Admission::set_local`]) and each configured
    /// edge's `allowed_lan`, by its key.
    pub(crate) fn new(policy: ForwardPolicy, allowed_lan: HashMap<EdgeKey, Vec<Cidr>>) -> Self {
        Admission {
            policy,
            allowed_lan: allowed_lan.into_iter().collect(),
            refused: Refusals::default(),
            refused_by: FastMap::default(),
        }
    }

    /// A reload: the new policy (the host's addresses as last read stay) and edges. Returns
    /// the keys of the edges no longer configured (their pool addresses are to be forgotten).
    pub(crate) fn reload(
        &mut self,
        policy: ForwardPolicy,
        allowed_lan: HashMap<EdgeKey, Vec<Cidr>>,
    ) -> Vec<EdgeKey> {
        let gone = self
            .allowed_lan
            .keys()
            .filter(|k| !allowed_lan.contains_key(*k))
            .copied()
            .collect();
        let local = std::mem::take(&mut self.policy.local);
        self.policy = ForwardPolicy { local, ..policy };
        self.allowed_lan = allowed_lan.into_iter().collect();
        gone
    }

    /// The core host's own addresses (refused as destinations unless allowed).
    pub(crate) fn set_local(&mut self, local: Vec<IpAddr>) {
        self.policy.local = local;
    }

    /// One client packet of session `sid`, whose edge has key `edge` (`None`: not known):
    /// its source must be in the edge's `allowed_lan`, its destination allowed; then its
    /// source becomes the client's pool address in `map` (at `secs`). A refusal is counted;
    /// a refused packet is left as it came.
    pub(crate) fn admit(
        &mut self,
        sid: S,
        edge: Option<EdgeKey>,
        pkt: &mut PacketMut<'_>,
        map: &mut SourceMap,
        secs: u64,
    ) -> Result<(), Refusal> {
        let r = self.check(edge, pkt, map, secs);
        if let Err(why) = r {
            self.count(sid, why);
        }
        r
    }

    /// A client packet of session `sid` that does not parse: refused (and counted) as
    /// [`Refusal::Family`].
    pub(crate) fn malformed(&mut self, sid: S) -> Refusal {
        self.count(sid, Refusal::Family);
        Refusal::Family
    }

    fn count(&mut self, sid: S, why: Refusal) {
        self.refused.add(why);
        self.refused_by.entry(sid).or_default().add(why);
    }

    fn check(
        &self,
        edge: Option<EdgeKey>,
        pkt: &mut PacketMut<'_>,
        map: &mut SourceMap,
        secs: u64,
    ) -> Result<(), Refusal> {
        let info = *pkt.info();
        if !info.src.is_ipv4() {
            return Err(Refusal::Family);
        }
        let edge = edge.ok_or(Refusal::Family)?;
        let lan = self.allowed_lan.get(&edge).map_or(&[][..], Vec::as_slice);
        if !ForwardPolicy::source_allowed(lan, info.src) {
            return Err(Refusal::OutsideLan);
        }
        self.policy.check(info.dst)?;
        match map.outbound(&edge, pkt, secs) {
            Ok(_) => Ok(()),
            Err(MapError::PoolExhausted) => Err(Refusal::PoolFull),
            Err(MapError::EdgeLimit) => Err(Refusal::ClientLimit),
            Err(MapError::Malformed | MapError::NoPool) => Err(Refusal::Family),
        }
    }

    /// Forgets the counters of the sessions `keep` refuses (ended).
    pub(crate) fn retain(&mut self, keep: impl Fn(&S) -> bool) {
        self.refused_by.retain(|id, _| keep(id));
    }

    /// What was refused since start.
    pub(crate) fn refused(&self) -> &Refusals {
        &self.refused
    }

    /// What was refused of session `sid` (nothing for a session not seen).
    pub(crate) fn refused_by(&self, sid: &S) -> Refusals {
        self.refused_by.get(sid).cloned().unwrap_or_default()
    }
}

fn builtin_v4(a: Ipv4Addr) -> Result<(), Refusal> {
    let o = a.octets();
    if a == METADATA {
        Err(Refusal::Metadata)
    } else if a.is_link_local() {
        Err(Refusal::LinkLocal)
    } else if a.is_private() {
        Err(Refusal::Private)
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Err(Refusal::Shared)
    } else if o[0] == 0 || a.is_loopback() || a.is_multicast() || o[0] >= 240 {
        Err(Refusal::Reserved)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Refusals {
        /// The total of every reason.
        fn total(&self) -> u64 {
            self.counts.iter().sum()
        }
    }

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_destinations_by_default() {
        let p = ForwardPolicy {
            pool: vec![c("100.64.0.0/16")],
            local: vec![ip("203.0.113.5"), ip("10.0.0.4")],
            ..Default::default()
        };
        for (dst, want) in [
            ("1.1.1.1", Ok(())),
            ("203.0.113.9", Ok(())),
            ("100.64.3.7", Err(Refusal::Pool)),
            ("100.100.0.1", Err(Refusal::Shared)),
            ("203.0.113.5", Err(Refusal::CoreLocal)),
            ("10.0.0.4", Err(Refusal::CoreLocal)),
            ("10.9.9.9", Err(Refusal::Private)),
            ("172.16.0.1", Err(Refusal::Private)),
            ("192.168.1.1", Err(Refusal::Private)),
            ("169.254.169.254", Err(Refusal::Metadata)),
            ("169.254.98.1", Err(Refusal::LinkLocal)),
            ("127.0.0.1", Err(Refusal::Reserved)),
            ("0.1.2.3", Err(Refusal::Reserved)),
            ("224.0.0.251", Err(Refusal::Reserved)),
            ("255.255.255.255", Err(Refusal::Reserved)),
            ("fe80::1", Err(Refusal::LinkLocal)),
            ("fd00::1", Err(Refusal::Private)),
            ("2001:db8::1", Ok(())),
        ] {
            assert_eq!(p.check(ip(dst)), want, "{dst}");
        }
    }

    #[test]
    fn allow_opens_and_deny_closes_but_the_pool_stays_shut() {
        let p = ForwardPolicy {
            pool: vec![c("100.64.0.0/16")],
            allow: vec![c("10.5.0.0/16"), c("100.64.0.0/10"), c("203.0.113.5")],
            deny: vec![c("10.5.7.0/24"), c("8.8.8.8")],
            local: vec![ip("203.0.113.5")],
        };
        assert_eq!(p.check(ip("10.5.1.1")), Ok(()));
        assert_eq!(p.check(ip("10.5.7.1")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("8.8.8.8")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("203.0.113.5")), Ok(()), "a core service opened");
        assert_eq!(p.check(ip("100.65.0.1")), Ok(()));
        assert_eq!(p.check(ip("100.64.0.9")), Err(Refusal::Pool));
        assert_eq!(p.check(ip("10.6.0.1")), Err(Refusal::Private));
    }

    #[test]
    fn allowed_lan_and_counters() {
        let lan = [c("192.168.1.0/24")];
        assert!(ForwardPolicy::source_allowed(&lan, ip("192.168.1.20")));
        assert!(!ForwardPolicy::source_allowed(&lan, ip("192.168.2.20")));
        assert!(ForwardPolicy::source_allowed(&[], ip("192.168.2.20")));
        let mut r = Refusals::default();
        r.add(Refusal::Metadata);
        r.add(Refusal::OutsideLan);
        r.add(Refusal::OutsideLan);
        assert_eq!(r.total(), 3);
        let v = r.counters();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].reason, Refusal::Metadata.words());
        assert_eq!(
            (v[1].reason.as_str(), v[1].count),
            (Refusal::OutsideLan.words(), 2)
        );
        // Every reason has its own words.
        let mut w: Vec<_> = Refusal::ALL.iter().map(|r| r.words()).collect();
        w.sort_unstable();
        w.dedup();
        assert_eq!(w.len(), Refusal::ALL.len());
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn admission_checks_source_and_destination_then_maps_and_counts_by_session() {
        use crate::os::nat::NatConfig;
        use crate::proto::packet::{golden::golden, parse};
        let (edge, stranger) = ([1u8; 32], [2u8; 32]);
        let lans = |v: Vec<Cidr>| HashMap::from([(edge, v), (stranger, Vec::new())]);
        let policy = ForwardPolicy {
            pool: vec![c("100.64.0.0/16")],
            ..Default::default()
        };
        let natc = NatConfig::new("braid-test");
        let mut map = SourceMap::with_secret(&natc, [7; 32]);
        let mut a: Admission<u32> = Admission::new(policy.clone(), lans(vec![c("192.168.1.0/24")]));
        // One client packet through `admit`, parsed once as the core does.
        let mut admit = |a: &mut Admission<u32>, sid, edge, buf: &mut Vec<u8>| {
            let mut p = PacketMut::parse(buf).expect("golden packet");
            a.admit(sid, edge, &mut p, &mut map, 0)
        };
        // syn4: 192.168.1.10 -> 93.184.216.34, a public destination.
        let syn4 = golden!("syn4");
        assert_eq!(parse(&syn4).unwrap().src, ip("192.168.1.10"));
        let mut p = syn4.clone();
        assert_eq!(admit(&mut a, 1, Some(edge), &mut p), Ok(()));
        let mapped = parse(&p).unwrap().src;
        assert!(c("100.64.0.0/16").contains(mapped), "{mapped}");
        // Outside the edge's allowed_lan; IPv6; a session without a known edge.
        a.reload(policy.clone(), lans(vec![c("10.0.0.0/8")]));
        let mut p = syn4.clone();
        assert_eq!(
            admit(&mut a, 1, Some(edge), &mut p),
            Err(Refusal::OutsideLan)
        );
        assert_eq!(p, syn4, "a refused packet is not rewritten");
        let mut p6 = golden!("syn6");
        assert_eq!(admit(&mut a, 2, Some(edge), &mut p6), Err(Refusal::Family));
        assert_eq!(
            admit(&mut a, 2, None, &mut syn4.clone()),
            Err(Refusal::Family)
        );
        // The host's own address, kept across a reload.
        a.set_local(vec![ip("93.184.216.34")]);
        let gone = a.reload(policy, HashMap::from([(edge, Vec::new())]));
        assert_eq!(gone, vec![stranger], "a peer removed from the config");
        let mut p = syn4.clone();
        assert_eq!(
            admit(&mut a, 1, Some(edge), &mut p),
            Err(Refusal::CoreLocal)
        );
        // A packet that does not parse.
        assert!(PacketMut::parse(&mut [0x45, 0, 0]).is_err());
        assert_eq!(a.malformed(3), Refusal::Family);
        assert_eq!(a.refused().total(), 5);
        assert_eq!(
            (
                a.refused_by(&1).total(),
                a.refused_by(&2).get(Refusal::Family),
                a.refused_by(&3).get(Refusal::Family),
            ),
            (2, 2, 1)
        );
        a.retain(|s| *s != 2);
        assert_eq!(a.refused_by(&2).total(), 0);
        assert_eq!(a.refused().total(), 5, "the totals since start stay");
    }
}
