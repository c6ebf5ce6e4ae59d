//! rtnetlink round trips in a namespace the test owns: veth, link state, MTU, MAC, addresses,
//! routes in a table, policy rules, neighbours; then everything removed again.

mod support;

use braid::os::netlink::{Family, Netlink, Route, RouteKind, Rule, RuleAction};
use braid::os::Prefix;
use std::net::IpAddr;
use support::{needs_root, Ns};

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn netlink_round_trip_and_cleanup() {
    let Some(_root) = needs_root() else { return };
    let h = Ns::new();
    let other = Ns::new();
    h.run(|| {
        let mut nl = Netlink::open().unwrap();
        // veth pair, both ends here; then a second one with the peer in another namespace.
        nl.create_veth("bo-a", "bo-b", None).unwrap();
        let a = nl.index("bo-a").unwrap();
        let b = nl.index("bo-b").unwrap();
        let la = nl.link_by_name("bo-a").unwrap().unwrap();
        assert_eq!(la.kind.as_deref(), Some("veth"));
        assert!(!la.up);
        nl.set_up(a, true).unwrap();
        nl.set_up(b, true).unwrap();
        nl.set_mtu(a, 1400).unwrap();
        nl.set_mac(a, [0x02, 0, 0, 0, 0xb0, 1]).unwrap();
        let la = nl.link_by_index(a).unwrap().unwrap();
        assert!(la.up && la.mtu == 1400 && la.mac == Some([0x02, 0, 0, 0, 0xb0, 1]));
        assert!(nl.links().unwrap().iter().any(|l| l.name == "bo-b"));

        // Errors name the operation and carry errno.
        let e = nl.index("bo-missing").unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(e.to_string().contains("bo-missing"), "{e}");
        let e = nl.create_veth("bo-a", "bo-c", None).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert!(e.to_string().contains("create veth pair bo-a"), "{e}");

        // Addresses.
        nl.add_address(a, p("10.99.0.1/24")).unwrap();
        nl.add_address(a, p("fd99::1/64")).unwrap();
        let addrs = nl.addresses(Some(a)).unwrap();
        assert!(
            addrs.iter().any(|x| x.prefix == p("10.99.0.1/24")),
            "{addrs:?}"
        );
        assert!(
            addrs.iter().any(|x| x.prefix == p("fd99::1/64")),
            "{addrs:?}"
        );
        let e = nl.add_address(a, p("10.99.0.1/24")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EEXIST));

        // Routes in a table of ours.
        let r4 = Route::new(p("198.51.100.0/24"))
            .via("10.99.0.2".parse().unwrap())
            .dev(a)
            .table(4242)
            .metric(7)
            .protocol(98);
        let r6 = Route::new(p("2001:db8::/32"))
            .via("fd99::2".parse().unwrap())
            .table(4242)
            .protocol(98);
        let bh = Route::new(p("203.0.113.0/24"))
            .kind(RouteKind::Blackhole)
            .table(4242);
        nl.add_route(&r4).unwrap();
        nl.add_route(&r6).unwrap();
        nl.add_route(&bh).unwrap();
        let t4 = nl.routes(Family::V4, Some(4242)).unwrap();
        let got = t4.iter().find(|r| r.dst == p("198.51.100.0/24")).unwrap();
        assert_eq!(got.gateway, Some("10.99.0.2".parse().unwrap()));
        assert_eq!((got.oif, got.metric, got.protocol), (Some(a), Some(7), 98));
        assert!(t4.iter().any(|r| r.kind == RouteKind::Blackhole));
        assert_eq!(nl.routes(Family::V6, Some(4242)).unwrap().len(), 1);
        assert_eq!(nl.add_route(&r4).unwrap_err().errno(), Some(libc::EEXIST));

        // Rules with every match we use.
        let mut rule = Rule::new(Family::V4, 31000, RuleAction::Lookup(4242));
        rule.src = Some(p("10.99.0.0/24"));
        rule.dst = Some(p("198.51.100.0/24"));
        rule.iif = Some("bo-a".into());
        rule.fwmark = Some((0x62, 0xff));
        rule.ip_proto = Some(6);
        rule.protocol = 98;
        nl.add_rule(&rule).unwrap();
        let mut g = Rule::new(Family::V6, 31001, RuleAction::Goto(31003));
        g.protocol = 98;
        nl.add_rule(&g).unwrap();
        let mut nop = Rule::new(Family::V6, 31003, RuleAction::Nop);
        nop.protocol = 98;
        nl.add_rule(&nop).unwrap();
        let rules = nl.rules(Family::V4).unwrap();
        let got = rules.iter().find(|r| r.priority == 31000).unwrap();
        assert_eq!(got, &rule);
        let rules6 = nl.rules(Family::V6).unwrap();
        assert!(rules6.contains(&g) && rules6.contains(&nop), "{rules6:?}");

        // Neighbours.
        let nip: IpAddr = "10.99.0.9".parse().unwrap();
        nl.add_neighbour(a, nip, [0x02, 1, 2, 3, 4, 5]).unwrap();
        let n = nl.neighbours(Family::V4, Some(a)).unwrap();
        let e = n.iter().find(|x| x.addr == nip).unwrap();
        assert_eq!(e.mac, Some([0x02, 1, 2, 3, 4, 5]));
        assert_eq!(e.state & 0x80, 0x80);

        // Move a link to another namespace by fd.
        nl.create_veth("bo-m", "bo-n", None).unwrap();
        let m = nl.index("bo-m").unwrap();
        nl.set_netns(m, other.fd()).unwrap();
        assert!(nl.link_by_name("bo-m").unwrap().is_none());

        // Remove everything, check it is gone.
        nl.del_neighbour(a, nip).unwrap();
        assert!(!nl
            .neighbours(Family::V4, Some(a))
            .unwrap()
            .iter()
            .any(|x| x.addr == nip));
        nl.del_rule(&rule).unwrap();
        nl.del_rule(&g).unwrap();
        nl.del_rule(&nop).unwrap();
        assert!(!nl
            .rules(Family::V4)
            .unwrap()
            .iter()
            .any(|r| r.priority == 31000));
        assert!(!nl
            .rules(Family::V6)
            .unwrap()
            .iter()
            .any(|r| r.protocol == 98));
        nl.del_route(&r4).unwrap();
        assert_eq!(nl.flush_table(4242).unwrap(), 2);
        assert!(nl.routes(Family::V4, Some(4242)).unwrap().is_empty());
        nl.del_address(a, p("10.99.0.1/24")).unwrap();
        assert!(!nl
            .addresses(Some(a))
            .unwrap()
            .iter()
            .any(|x| x.prefix == p("10.99.0.1/24")));
        nl.delete_link(a).unwrap();
        assert!(
            nl.link_by_name("bo-b").unwrap().is_none(),
            "peer goes with it"
        );
        assert!(!nl.delete_link_by_name("bo-a").unwrap());
    });
    other.run(|| {
        let mut nl = Netlink::open().unwrap();
        assert!(nl.link_by_name("bo-m").unwrap().is_some());
        assert!(nl.delete_link_by_name("bo-m").unwrap());
    });
}

#[test]
fn watch_reports_link_and_address_changes() {
    let Some(_root) = needs_root() else { return };
    use braid::os::netlink::{Event, Watch, RTMGRP_IPV4_IFADDR, RTMGRP_LINK};
    let h = Ns::new();
    h.run(|| {
        let mut w = Watch::open(RTMGRP_LINK | RTMGRP_IPV4_IFADDR).unwrap();
        let mut nl = Netlink::open().unwrap();
        nl.create_veth("bo-w", "bo-x", None).unwrap();
        let i = nl.index("bo-w").unwrap();
        nl.add_address(i, p("10.98.0.1/24")).unwrap();
        nl.set_up(i, true).unwrap();
        nl.delete_link(i).unwrap();
        let ev = w.read().unwrap();
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::Link(l) if l.name == "bo-w" && l.up)),
            "{ev:?}"
        );
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::AddrAdded(a) if a.prefix == p("10.98.0.1/24"))));
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::LinkGone(l) if l.name == "bo-w")));
        assert!(w.read().unwrap().is_empty());
    });
}
