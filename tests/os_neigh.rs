//! The neighbour table as `src_mac` policies read it: a dump (rtnetlink RTM_GETNEIGH) and the
//! notification subscription, in two anonymous namespaces of this process (nothing is named,
//! nothing outlives the test). Needs root; a SKIP line otherwise.

mod support;

use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use braid::config::model::Mac;
use braid::os::neigh::{read_neighbours, MacMap, NeighWatch};
use braid::os::netlink::Netlink;
use support::*;

/// Reads `w` until `want` shows up (at most 3 s); everything read.
fn read_until(w: &mut NeighWatch, want: (IpAddr, Mac)) -> Vec<(IpAddr, Mac)> {
    let mut all = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) && !all.contains(&want) {
        all.extend(w.read().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    all
}

#[test]
fn neighbour_dump_and_notifications_map_macs_to_addresses() {
    let Some(_root) = needs_root() else { return };
    let (router, client) = (Ns::new(), Ns::new());
    let (ia, _) = wire(
        &router,
        "bo-lan",
        "10.200.0.1/24",
        &client,
        "bo-cli",
        "10.200.0.2/24",
    );
    let client_mac = client.run(|| {
        let mut nl = Netlink::open().unwrap();
        Mac(nl.link_by_name("bo-cli").unwrap().unwrap().mac.unwrap())
    });
    let mut w = router.run(|| NeighWatch::open().unwrap());
    assert!(w.read().unwrap().is_empty(), "nothing happened yet");

    // A configured (permanent) entry is announced.
    let fixed = (IpAddr::from([10, 200, 0, 9]), Mac([2, 0, 0, 0, 0, 9]));
    router.run(|| {
        Netlink::open()
            .unwrap()
            .add_neighbour(ia, fixed.0, fixed.1 .0)
            .unwrap()
    });
    let seen = read_until(&mut w, fixed);
    assert!(seen.contains(&fixed), "{seen:?}");

    // A client that talks to the router: the router learns it from its ARP request.
    client.run(|| {
        let s = UdpSocket::bind("10.200.0.2:0").unwrap();
        s.send_to(b"hello", "10.200.0.1:9").unwrap();
    });
    let learnt = (IpAddr::from([10, 200, 0, 2]), client_mac);
    let seen = read_until(&mut w, learnt);
    assert!(seen.contains(&learnt), "{seen:?}");

    // The dump has both, and the map gives each MAC its address.
    let dump = router.run(|| read_neighbours(&mut Netlink::open().unwrap()).unwrap());
    assert!(dump.contains(&fixed) && dump.contains(&learnt), "{dump:?}");
    let mut m = MacMap::default();
    assert!(m.update(
        0,
        &dump,
        |a| matches!(a, IpAddr::V4(v) if v.octets()[..3] == [10, 200, 0])
    ));
    let t = m.table(&[client_mac, fixed.1, Mac([2, 0, 0, 0, 0, 1])]);
    assert_eq!(t.len(), 2);
    assert_eq!(t[&client_mac], vec![learnt.0]);
    assert_eq!(t[&fixed.1], vec![fixed.0]);
    println!("router's neighbours: {dump:?}; events read: {seen:?}");
}
