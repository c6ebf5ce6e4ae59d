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
//! the peer lists any) is refused.
//!
//! # Refusals
//! [`Refusal`] names each reason in words `braid status` shows; [`Refusals`] counts them, one
//! counter per reason. Anything else the core refuses (handshakes, say) can join as a variant.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::model::Cidr;

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

    /// The total of every reason.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
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
}
