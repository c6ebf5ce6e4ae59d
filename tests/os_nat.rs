//! The core side in namespaces the test owns: braid's nftables table is created and removed,
//! and two sessions whose clients have the same address reach a server through the core's hub
//! and masquerade, each getting only its own replies back.

mod support;

use braid::os::hub::{ip_payload, Batch, Capture};
use braid::os::nat::{self, CoreNat, Forwarding, NatConfig, SourceMap};
use braid::os::netlink::{Family, Netlink};
use braid::os::plane::CorePlane;
use braid::os::space::{cleanup_stale, Hub, HubConfig, Space, SteerConfig, Steering};
use braid::proto::packet::PacketMut;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::{needs_root, udp4, v4_summary, wire, Ns};

#[test]
fn nft_table_created_and_removed() {
    let Some(_root) = needs_root() else { return };
    let k = Ns::new();
    k.run(|| {
        assert!(!nat::table_exists("bo6").unwrap());
        let mut n = CoreNat::install(&NatConfig::new("bo6")).unwrap();
        assert!(n.owned, "this kernel supports owned tables");
        assert!(nat::table_exists("bo6").unwrap());
        n.remove().unwrap();
        assert!(!nat::table_exists("bo6").unwrap());
        drop(n);
        // Dropped without an explicit remove: gone as well.
        let n = CoreNat::install(&NatConfig::new("bo6")).unwrap();
        drop(n);
        assert!(!nat::table_exists("bo6").unwrap());
        assert!(!nat::cleanup_stale("bo6").unwrap());
    });
}

/// `nft list table inet NAME` in the calling thread's namespace.
fn nft_list(name: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "inet", name])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn nft_table_kept_for_a_restart_and_adopted() {
    let Some(_root) = needs_root() else { return };
    let k = Ns::new();
    k.run(|| {
        let cfg = NatConfig::new("bo9");
        let n = CoreNat::adopt(&cfg).unwrap();
        assert!(
            n.owned,
            "this kernel (6.9+) keeps owned tables (NFT_TABLE_F_PERSIST)"
        );
        // Owned while braid runs: nobody else deletes it.
        let del = std::process::Command::new("nft")
            .args(["delete", "table", "inet", "bo9"])
            .output()
            .unwrap();
        assert!(
            !del.status.success(),
            "another program deleted braid's table"
        );
        n.keep();
        // Its socket is closed: the table stays, with its masquerade, for the next core.
        assert!(nat::table_exists("bo9").unwrap());
        assert_eq!(nft_list("bo9").matches("masquerade").count(), 2);
        let mut again = CoreNat::adopt(&cfg).unwrap();
        assert!(again.owned);
        // Adopted with its rules replaced, not doubled.
        assert_eq!(nft_list("bo9").matches("masquerade").count(), 2);
        again.remove().unwrap();
        assert!(!nat::table_exists("bo9").unwrap());
    });
}

#[test]
fn two_edges_with_the_same_lan_through_one_core() {
    let Some(_root) = needs_root() else { return };
    // core (10.88.0.1) --bo-kw/bo-sv-- server (10.88.0.2)
    let core = Ns::new();
    let server = Ns::new();
    wire(
        &core,
        "bo-kw",
        "10.88.0.1/24",
        &server,
        "bo-sv",
        "10.88.0.2/24",
    );
    let cfg = NatConfig::new("bo5");
    let (space, hub, _st, _nat, _fw) = core.run(|| {
        let fw = Forwarding::enable(false).unwrap();
        let space = Space::new().unwrap();
        let hub = Hub::create(&space, HubConfig::new("bo5")).unwrap();
        let mut s = SteerConfig::new();
        s.priority = 9500;
        s.table = 9501;
        s.destinations = cfg.pools();
        let st = Steering::install(&hub, s).unwrap();
        let nat = CoreNat::install(&cfg).unwrap();
        (space, hub, st, nat, fw)
    });
    let cap = Capture::open(&space, &hub).unwrap();
    let srv = server.run(|| UdpSocket::bind("10.88.0.2:7000").unwrap());
    srv.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    // Two edges (keys [1; 32] and [2; 32]), the same client address and port.
    let mut map = SourceMap::new(&cfg);
    for session in [1u8, 2] {
        let mut p = udp4(
            [192, 168, 1, 10],
            [10, 88, 0, 2],
            4000,
            7000,
            &[b'0' + session],
        );
        let mut view = PacketMut::parse(&mut p).unwrap();
        map.outbound(&[session; 32], &mut view, 0).unwrap();
        cap.send_ip(&p).unwrap();
    }
    // The server sees the core's address, never the clients', and answers each.
    for _ in 0..2 {
        let mut b = [0u8; 16];
        let (n, from) = srv.recv_from(&mut b).unwrap();
        assert_eq!(from.ip(), "10.88.0.1".parse::<std::net::IpAddr>().unwrap());
        let mut reply = b"re".to_vec();
        reply.extend_from_slice(&b[..n]);
        srv.send_to(&reply, from).unwrap();
    }
    // Replies come back into the hub, to the pool addresses; the map sends each to its session.
    let mut got = Vec::new();
    let mut batch = Batch::default();
    let t0 = Instant::now();
    while got.len() < 2 && t0.elapsed() < Duration::from_secs(3) {
        if cap.recv_batch(&mut batch).is_err() {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        for i in 0..batch.len() {
            let mut ip = ip_payload(batch.frame(i)).unwrap().to_vec();
            let mut view = PacketMut::parse(&mut ip).unwrap();
            let session = map.inbound(&mut view, 1).expect("reply to a pool address");
            let (proto, src, dst, _) = v4_summary(&ip).unwrap();
            assert_eq!((proto, src, dst), (17, [10, 88, 0, 2], [192, 168, 1, 10]));
            assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 4000);
            got.push((session[0], ip[28..].to_vec()));
        }
    }
    got.sort();
    assert_eq!(got, vec![(1, b"re1".to_vec()), (2, b"re2".to_vec())]);
}

/// Run only by `core_plane_leaves_nothing_when_killed` in a child process.
#[test]
#[ignore]
fn core_child_process() {
    if !support::enter_child_ns() {
        return;
    }
    let mut s = SteerConfig::new();
    s.priority = 9700;
    s.table = 9701;
    let _core = CorePlane::start(HubConfig::new("bo8"), s, &NatConfig::new("bo8")).unwrap();
    support::child_ready_and_wait();
}

#[test]
fn core_plane_leaves_nothing_when_killed() {
    let Some(_root) = needs_root() else { return };
    let k = Ns::new();
    let mut child = support::spawn_child("core_child_process", &k);
    let state = || {
        k.run(|| {
            let mut nl = Netlink::open().unwrap();
            (
                nat::table_exists("bo8").unwrap(),
                nl.link_by_name("bo8-hub").unwrap().is_some(),
                nl.routes(Family::V4, Some(9701)).unwrap().len(),
                nl.rules(Family::V4)
                    .unwrap()
                    .iter()
                    .filter(|r| (9700..9704).contains(&r.priority))
                    .count(),
            )
        })
    };
    // Table, hub, one route, and 4 rules (iif lo, to pool, nop... ) per family in use.
    let before = state();
    assert!(
        before.0 && before.1 && before.2 == 1 && before.3 >= 3,
        "{before:?}"
    );
    child.kill(); // SIGKILL
    let t0 = Instant::now();
    loop {
        let (table, hub, routes, _) = state();
        if !table && !hub && routes == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still there: {:?}",
            state()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("nft table and hub gone {:?} after SIGKILL", t0.elapsed());
    k.run(|| {
        let mut s = SteerConfig::new();
        s.priority = 9700;
        s.table = 9701;
        s.destinations = NatConfig::new("bo8").pools();
        let c = cleanup_stale(&HubConfig::new("bo8"), &s).unwrap();
        // Per family: iif lo, to <pool> lookup, nop; IPv4 and IPv6 pools.
        assert_eq!((before.3, c.rules), (3, 6));
        assert!(!nat::cleanup_stale("bo8").unwrap());
    });
    assert_eq!(state(), (false, false, 0, 0));
}
