//! The edge's traffic classifier: maps a client packet to its class with the configured
//! policies (first match wins). It reads [`crate::config::model`]'s policies and classes and
//! [`crate::proto::packet`]'s parsed packet, so it lives beside both rather than in either:
//! `proto` depends on nothing of ours, `config` on nothing but its own types.
//!
//! A `src_mac` policy also matches the client addresses the edge resolved for its MACs
//! ([`Classifier::set_mac_addresses`]; the lookup itself is the neighbour table's, in `os`).
#![forbid(unsafe_code)]

use core::net::IpAddr;
use std::collections::BTreeMap;

use crate::config::model::{Class, Config, Mac, Mode, Policy, Proto};
use crate::proto::packet::{ipproto, Direction, Fragment, PacketInfo};

/// Index into the classifier's classes; 0 is the `default` class.
pub(crate) type ClassId = u16;

/// The result of [`Classifier::classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The class.
    pub(crate) class: ClassId,
    /// The index of the policy that matched (in [`Config::policies`]), `None` for no match.
    policy: Option<u16>,
}

/// Client addresses by MAC address, as the edge resolved them (from the router's neighbour
/// table): what lets a `src_mac` policy match packets whose Ethernet header the edge never sees.
pub(crate) type MacAddresses = BTreeMap<Mac, Vec<IpAddr>>;

/// One compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    policy: Policy,
    class: ClassId,
    /// The client addresses of the policy's `src_mac` list, sorted (empty without MACs).
    mac_addrs: Vec<IpAddr>,
}

/// Maps packets to classes using the configured policies (first match wins).
///
/// Built once per configuration (and rebuilt on reload); classifying allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classifier {
    rules: Vec<Rule>,
    classes: Vec<Class>,
}

impl Classifier {
    /// Build from the policies and classes of a loaded configuration.
    pub(crate) fn from_config(cfg: &Config) -> Classifier {
        Classifier::new(&cfg.policies, &cfg.classes)
    }

    /// Build from policies and the classes they name (`classes[0]` is the default class).
    /// A policy naming a class not in `classes` classifies to the default class.
    pub(crate) fn new(policies: &[Policy], classes: &[Class]) -> Classifier {
        let mut classes = classes.to_vec();
        if classes.is_empty() {
            classes.push(Class {
                name: crate::config::model::DEFAULT_CLASS.into(),
                mode: Mode::Aggregate,
                link: None,
                priority: 0,
                weight: 1,
            });
        }
        let rules = policies
            .iter()
            .map(|p| {
                let id = classes
                    .iter()
                    .position(|c| c.name == p.class)
                    .and_then(|i| ClassId::try_from(i).ok())
                    .unwrap_or(0);
                Rule {
                    policy: p.clone(),
                    class: id,
                    mac_addrs: Vec::new(),
                }
            })
            .collect();
        Classifier { rules, classes }
    }

    /// Every MAC address a policy names (what the edge needs resolved).
    pub(crate) fn policy_macs(&self) -> Vec<Mac> {
        let mut v: Vec<Mac> = self
            .rules
            .iter()
            .flat_map(|r| r.policy.src_mac.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Sets the client addresses of every `src_mac` policy from `map` (replacing what an
    /// earlier call set). A packet then matches the MAC condition when its client address is
    /// one of them, in either direction.
    pub(crate) fn set_mac_addresses(&mut self, map: &MacAddresses) {
        for r in &mut self.rules {
            r.mac_addrs.clear();
            for m in &r.policy.src_mac {
                if let Some(a) = map.get(m) {
                    r.mac_addrs.extend_from_slice(a);
                }
            }
            r.mac_addrs.sort();
            r.mac_addrs.dedup();
        }
    }

    /// The classes, indexed by [`ClassId`].
    pub(crate) fn classes(&self) -> &[Class] {
        &self.classes
    }

    /// Classify a packet travelling in `dir`. `client_mac` is the client's MAC address when
    /// known from the frame (on a router the hub's frames carry the router's own MAC, so the
    /// edge passes `None` and relies on [`Classifier::set_mac_addresses`]; the core has
    /// neither, so `src_mac` policies never match there).
    pub(crate) fn classify(
        &self,
        p: &PacketInfo,
        dir: Direction,
        client_mac: Option<Mac>,
    ) -> Verdict {
        for (i, rule) in self.rules.iter().enumerate() {
            if matches(rule, p, dir, client_mac) {
                return Verdict {
                    class: rule.class,
                    policy: u16::try_from(i).ok(),
                };
            }
        }
        Verdict {
            class: 0,
            policy: None,
        }
    }
}

fn matches(r: &Rule, p: &PacketInfo, dir: Direction, mac: Option<Mac>) -> bool {
    let rule = &r.policy;
    let (client, client_port, server, server_port) = match dir {
        Direction::Up => (p.src, p.src_port, p.dst, p.dst_port),
        Direction::Down => (p.dst, p.dst_port, p.src, p.src_port),
    };
    let proto_ok = match rule.proto {
        Proto::Any => true,
        Proto::Tcp => p.proto == ipproto::TCP,
        Proto::Udp => p.proto == ipproto::UDP,
        Proto::Icmp => p.proto == ipproto::ICMP || p.proto == ipproto::ICMPV6,
    };
    if !proto_ok {
        return false;
    }
    let has_ports =
        (p.proto == ipproto::TCP || p.proto == ipproto::UDP) && p.fragment != Fragment::Later;
    let port_ok = |ranges: &[crate::config::model::PortRange], port: u16| {
        ranges.is_empty() || (has_ports && ranges.iter().any(|r| r.contains(port)))
    };
    (rule.src_ip.is_empty() || rule.src_ip.iter().any(|c| c.contains(client)))
        && (rule.dest_ip.is_empty() || rule.dest_ip.iter().any(|c| c.contains(server)))
        && port_ok(&rule.src_port, client_port)
        && port_ok(&rule.dest_port, server_port)
        && (rule.dscp.is_empty() || rule.dscp.contains(&p.dscp))
        && (rule.src_mac.is_empty()
            || mac.is_some_and(|m| rule.src_mac.contains(&m))
            || r.mac_addrs.binary_search(&client).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Cidr, PortRange};
    use crate::proto::packet::golden::golden;
    use crate::proto::packet::parse;
    use proptest::prelude::*;

    impl Classifier {
        /// The class with this id (the default class for an unknown id).
        fn class(&self, id: ClassId) -> &Class {
            self.classes
                .get(usize::from(id))
                .unwrap_or(&self.classes[0])
        }
    }

    fn policy(class: &str) -> Policy {
        Policy {
            name: class.into(),
            line: 1,
            src_ip: vec![],
            src_mac: vec![],
            src_port: vec![],
            dest_ip: vec![],
            dest_port: vec![],
            proto: Proto::Any,
            dscp: vec![],
            class: class.into(),
        }
    }

    fn class(name: &str) -> Class {
        Class {
            name: name.into(),
            mode: Mode::Aggregate,
            link: None,
            priority: 0,
            weight: 1,
        }
    }

    #[test]
    fn classifier_first_match_and_directions() {
        let mut voip = policy("realtime");
        voip.proto = Proto::Udp;
        voip.dest_port = vec![PortRange { lo: 5000, hi: 5010 }];
        let mut web = policy("bulk");
        web.proto = Proto::Tcp;
        web.dest_ip = vec![Cidr::parse("93.184.216.0/24").unwrap()];
        let mut crew = policy("crew");
        crew.src_ip = vec![Cidr::parse("192.168.1.0/24").unwrap()];
        crew.src_mac = vec![Mac([2, 0, 0, 0xaa, 0xbb, 0xcc])];
        let mut ef = policy("realtime");
        ef.dscp = vec![46];
        let classes = [
            class("default"),
            class("realtime"),
            class("bulk"),
            class("crew"),
        ];
        let c = Classifier::new(&[voip, web, crew, ef], &classes);

        let big = parse(&golden!("big4")).unwrap(); // UDP 5004 -> 5004, 192.168.1.10 -> 93.184.216.34
        assert_eq!(
            c.classify(&big, Direction::Up, None),
            Verdict {
                class: 1,
                policy: Some(0)
            }
        );
        let syn = parse(&golden!("syn4")).unwrap(); // TCP 51000 -> 443, DSCP EF
        assert_eq!(c.classify(&syn, Direction::Up, None).class, 2);
        assert_eq!(c.class(2).name, "bulk");
        // Downstream: the server's reply matches the same rule with sides swapped.
        let mut rev = syn;
        rev.src = syn.dst;
        rev.dst = syn.src;
        rev.src_port = syn.dst_port;
        rev.dst_port = syn.src_port;
        assert_eq!(c.classify(&rev, Direction::Down, None).class, 2);
        // Read as upstream, the swapped packet does not match 'bulk'; DSCP EF sends it to
        // realtime (policy 3); without EF it falls to the default class.
        assert_eq!(
            c.classify(&rev, Direction::Up, None),
            Verdict {
                class: 1,
                policy: Some(3)
            }
        );
        rev.dscp = 0;
        assert_eq!(
            c.classify(&rev, Direction::Up, None),
            Verdict {
                class: 0,
                policy: None
            }
        );
        // MAC policies need the MAC.
        let mut other = syn;
        other.dst = IpAddr::from([1, 1, 1, 1]);
        other.dscp = 0;
        assert_eq!(c.classify(&other, Direction::Up, None).class, 0);
        let mac = Some(Mac([2, 0, 0, 0xaa, 0xbb, 0xcc]));
        assert_eq!(c.classify(&other, Direction::Up, mac).class, 3);
    }

    #[test]
    fn src_mac_policies_match_the_resolved_addresses() {
        let crew_mac = Mac([2, 0, 0, 0xaa, 0xbb, 0xcc]);
        let mut crew = policy("crew");
        crew.src_mac = vec![crew_mac, Mac([2, 0, 0, 0, 0, 1])];
        let mut voip = policy("realtime");
        voip.proto = Proto::Udp;
        voip.src_mac = vec![crew_mac];
        let mut c = Classifier::new(
            &[voip, crew],
            &[class("default"), class("realtime"), class("crew")],
        );
        assert_eq!(c.policy_macs(), vec![Mac([2, 0, 0, 0, 0, 1]), crew_mac]);
        let syn = parse(&golden!("syn4")).unwrap(); // TCP from 192.168.1.10
        let client = syn.src;
        assert_eq!(
            c.classify(&syn, Direction::Up, None).class,
            0,
            "nothing resolved yet"
        );

        let mut map = MacAddresses::new();
        map.insert(crew_mac, vec![IpAddr::from([192, 168, 1, 99]), client]);
        map.insert(
            Mac([2, 0, 0, 0, 0, 9]),
            vec![IpAddr::from([192, 168, 1, 7])],
        );
        c.set_mac_addresses(&map);
        assert_eq!(
            c.classify(&syn, Direction::Up, None),
            Verdict {
                class: 2,
                policy: Some(1)
            },
            "TCP: not voip, crew by address"
        );
        // Downstream the client is the destination.
        let mut rev = syn;
        (rev.src, rev.dst) = (syn.dst, syn.src);
        (rev.src_port, rev.dst_port) = (syn.dst_port, syn.src_port);
        assert_eq!(c.classify(&rev, Direction::Down, None).class, 2);
        assert_eq!(
            c.classify(&rev, Direction::Up, None).class,
            0,
            "server side"
        );
        let big = parse(&golden!("big4")).unwrap(); // UDP from 192.168.1.10
        assert_eq!(c.classify(&big, Direction::Up, None).class, 1);

        // The client moved to another address: the old one no longer matches.
        map.insert(crew_mac, vec![IpAddr::from([192, 168, 1, 99])]);
        c.set_mac_addresses(&map);
        assert_eq!(c.classify(&syn, Direction::Up, None).class, 0);
        let mut moved = syn;
        moved.src = IpAddr::from([192, 168, 1, 99]);
        assert_eq!(c.classify(&moved, Direction::Up, None).class, 2);
        // Another MAC's address never matches.
        moved.src = IpAddr::from([192, 168, 1, 7]);
        assert_eq!(c.classify(&moved, Direction::Up, None).class, 0);
        c.set_mac_addresses(&MacAddresses::new());
        assert_eq!(c.classify(&syn, Direction::Up, None).class, 0);
    }

    #[test]
    fn classifier_from_config() {
        let cfg = crate::config::load_str(
            "edge.conf",
            include_str!("../tests/fixtures/config/edge.conf"),
        )
        .unwrap();
        let c = Classifier::from_config(&cfg);
        // syn4: TCP to 443 from 192.168.1.10 with DSCP EF. 'voip' needs UDP, 'crew' needs
        // 10.20/16, 'ticketing' needs a MAC, 'updates' needs CS1.
        let mut syn = parse(&golden!("syn4")).unwrap();
        let v = c.classify(&syn, Direction::Up, None);
        assert_eq!(
            (c.class(v.class).name.as_str(), v.policy),
            ("default", None)
        );
        syn.dscp = 8;
        let v = c.classify(&syn, Direction::Up, None);
        assert_eq!(
            (c.class(v.class).name.as_str(), v.policy),
            ("bulk", Some(3))
        );
        syn.src = IpAddr::from([10, 20, 3, 4]);
        let v = c.classify(&syn, Direction::Up, None);
        assert_eq!(
            (c.class(v.class).name.as_str(), v.policy),
            ("crew", Some(1))
        );
        let big = parse(&golden!("big4")).unwrap(); // UDP 5004, not a voip port
        assert_eq!(c.classify(&big, Direction::Up, None).class, 0);
    }

    proptest! {
        #[test]
        fn arbitrary_packets_classify_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(i) = parse(&bytes) {
                let c = Classifier::new(&[policy("x")], &[class("default"), class("x")]);
                let v = c.classify(&i, Direction::Up, None);
                prop_assert!((v.class as usize) < c.classes().len());
            }
        }
    }
}
