//! Uplink sockets in namespaces the test owns: a router with two WANs, the main table
//! preferring WAN 1; sockets bound to WAN 2 still leave through WAN 2 (UDP and TCP), the TCP
//! link carries framed datagrams both ways and reconnects after the server drops it, and
//! address discovery and up/down watching see the WAN devices.

mod support;

use braid::os::netlink::{Family, Netlink, Route};
use braid::os::uplink::{
    cleanup_stale_links, default_gateway, device_address, tcp_connect, udp_socket, DeviceEvent,
    LinkRouteConfig, LinkRouting, LinkSocketSpec, LinkWatch, TcpLink,
};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;
use support::{needs_root, wire, Ns};

const CORE: &str = "198.51.100.1";

/// router --bo-r1-- wan1 (10.1.0.2), router --bo-r2-- wan2 (10.2.0.2); both wans hold the
/// core address on lo. Main table: default via wan1 metric 10, via wan2 metric 20.
fn topology() -> (Ns, Ns, Ns) {
    let r = Ns::new();
    let w1 = Ns::new();
    let w2 = Ns::new();
    wire(&r, "bo-r1", "10.1.0.1/24", &w1, "bo-w1", "10.1.0.2/24");
    wire(&r, "bo-r2", "10.2.0.1/24", &w2, "bo-w2", "10.2.0.2/24");
    for w in [&w1, &w2] {
        w.run(|| {
            let mut nl = Netlink::open().unwrap();
            let lo = nl.index("lo").unwrap();
            nl.add_address(lo, format!("{CORE}/32").parse().unwrap())
                .unwrap();
        });
    }
    r.run(|| {
        let mut nl = Netlink::open().unwrap();
        let any = "0.0.0.0/0".parse().unwrap();
        nl.add_route(&Route::new(any).via("10.1.0.2".parse().unwrap()).metric(10))
            .unwrap();
        nl.add_route(&Route::new(any).via("10.2.0.2".parse().unwrap()).metric(20))
            .unwrap();
    });
    (r, w1, w2)
}

fn spec(dev: &str, local: &str, port: u16) -> LinkSocketSpec {
    LinkSocketSpec {
        device: dev.into(),
        local: Some(local.parse().unwrap()),
        remote: SocketAddr::new(CORE.parse().unwrap(), port),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn udp_leaves_through_its_device() {
    let Some(_root) = needs_root() else { return };
    let (r, w1, w2) = topology();
    let s1 = w1.run(|| UdpSocket::bind(format!("{CORE}:9000")).unwrap());
    let s2 = w2.run(|| UdpSocket::bind(format!("{CORE}:9000")).unwrap());
    for s in [&s1, &s2] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    // An unbound socket follows the main table: WAN 1.
    r.run(|| {
        let u = UdpSocket::bind("0.0.0.0:0").unwrap();
        u.send_to(b"main", format!("{CORE}:9000")).unwrap();
    });
    let mut b = [0u8; 16];
    let (n, from) = s1.recv_from(&mut b).unwrap();
    assert_eq!(
        (&b[..n], from.ip()),
        (&b"main"[..], "10.1.0.1".parse::<IpAddr>().unwrap())
    );
    // The link socket of WAN 2 leaves through WAN 2, and gets the reply.
    let link = r.run(|| udp_socket(&spec("bo-r2", "10.2.0.1", 9000)).unwrap());
    link.send(b"wan2").unwrap();
    let (n, from) = s2.recv_from(&mut b).unwrap();
    assert_eq!(
        (&b[..n], from.ip()),
        (&b"wan2"[..], "10.2.0.1".parse::<IpAddr>().unwrap())
    );
    assert!(s1.recv_from(&mut b).is_err(), "nothing went through WAN 1");
    s2.send_to(b"back", from).unwrap();
    link.set_nonblocking(false).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let n = link.recv(&mut b).unwrap();
    link.set_nonblocking(true).unwrap();
    assert_eq!(&b[..n], b"back");
    // Usable from tokio.
    rt().block_on(async {
        let t = tokio::net::UdpSocket::from_std(link).unwrap();
        t.send(b"tokio").await.unwrap();
    });
    let (n, _) = s2.recv_from(&mut b).unwrap();
    assert_eq!(&b[..n], b"tokio");
    // Errors say what failed.
    let e = r.run(|| udp_socket(&spec("bo-nodev", "10.2.0.1", 9000)).unwrap_err());
    assert!(e.to_string().contains("bo-nodev"), "{e}");
}

#[test]
fn tcp_link_frames_and_reconnects() {
    let Some(_root) = needs_root() else { return };
    let (r, w1, w2) = topology();
    // A listener on both WANs; only WAN 2's must see connections.
    let l1 = w1.run(|| std::net::TcpListener::bind(format!("{CORE}:9001")).unwrap());
    let l2 = w2.run(|| std::net::TcpListener::bind(format!("{CORE}:9001")).unwrap());
    l1.set_nonblocking(true).unwrap();
    r.run(|| {
        rt().block_on(async {
            let l2 = tokio::net::TcpListener::from_std({
                l2.set_nonblocking(true).unwrap();
                l2
            })
            .unwrap();
            let mut edge = TcpLink::new(spec("bo-r2", "10.2.0.1", 9001));
            assert!(!edge.is_connected());
            edge.connect().await.unwrap();
            let (s, peer) = l2.accept().await.unwrap();
            assert_eq!(peer.ip(), "10.2.0.1".parse::<IpAddr>().unwrap());
            let mut core = TcpLink::from_stream(s);
            // A plain connect also goes through its device.
            let s = tcp_connect(&spec("bo-r2", "10.2.0.1", 9001)).await.unwrap();
            assert_eq!(
                s.local_addr().unwrap().ip(),
                "10.2.0.1".parse::<IpAddr>().unwrap()
            );
            drop(s);
            drop(l2.accept().await.unwrap());
            // Datagrams both ways, boundaries kept, including an empty keepalive in between.
            edge.try_send(b"one").unwrap();
            edge.try_send(&[]).unwrap();
            edge.try_send(&[7u8; 1400]).unwrap();
            edge.flush().await.unwrap();
            let mut b = vec![0u8; 2000];
            assert_eq!(core.recv(&mut b).await.unwrap(), 3);
            assert_eq!(&b[..3], b"one");
            assert_eq!(core.recv(&mut b).await.unwrap(), 1400);
            core.try_send(b"reply").unwrap();
            let n = tokio::time::timeout(Duration::from_secs(2), edge.recv(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b[..n], b"reply");
            // The core drops the connection: the edge sees it once, then reconnects.
            drop(core);
            let e = tokio::time::timeout(Duration::from_secs(2), edge.recv(&mut b))
                .await
                .unwrap()
                .unwrap_err();
            assert!(matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ));
            assert!(edge.try_send(b"lost").is_err());
            let accept = tokio::spawn(async move { l2.accept().await.unwrap() });
            edge.connect().await.unwrap();
            assert_eq!(edge.connects, 2);
            let (s, _) = accept.await.unwrap();
            let mut core = TcpLink::from_stream(s);
            edge.try_send(b"again").unwrap();
            let n = tokio::time::timeout(Duration::from_secs(2), core.recv(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b[..n], b"again");
        })
    });
    assert!(l1.accept().is_err(), "no connection went through WAN 1");
}

#[test]
fn discovery_and_up_down_events() {
    let Some(_root) = needs_root() else { return };
    let (r, _w1, _w2) = topology();
    r.run(|| {
        let mut nl = Netlink::open().unwrap();
        assert_eq!(
            device_address(&mut nl, "bo-r2", true).unwrap(),
            Some("10.2.0.1".parse().unwrap())
        );
        assert_eq!(device_address(&mut nl, "bo-r2", false).unwrap(), None);
        let e = device_address(&mut nl, "bo-gone", true).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        let mut w = LinkWatch::open().unwrap();
        assert!(w.is_usable("bo-r2"));
        let i = nl.index("bo-r2").unwrap();
        nl.set_up(i, false).unwrap();
        let ev = w.read().unwrap();
        assert!(
            ev.contains(&DeviceEvent::Down {
                device: "bo-r2".into()
            }),
            "{ev:?}"
        );
        assert!(!w.is_usable("bo-r2"));
        nl.set_up(i, true).unwrap();
        // Carrier comes back asynchronously on veth: poll briefly.
        let mut up = false;
        for _ in 0..100 {
            if w.read().unwrap().contains(&DeviceEvent::Up {
                device: "bo-r2".into(),
            }) {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(up);
        nl.add_address(i, "10.2.0.9/24".parse().unwrap()).unwrap();
        let ev = w.read().unwrap();
        assert!(ev.contains(&DeviceEvent::AddressAdded {
            device: "bo-r2".into(),
            addr: "10.2.0.9".parse().unwrap()
        }));
    });
}

#[test]
fn source_routing_lets_replies_pass_strict_rp_filter() {
    let Some(_root) = needs_root() else { return };
    let (r, _w1, w2) = topology();
    r.sysctl("net/ipv4/conf/all/rp_filter", "1");
    let s2 = w2.run(|| UdpSocket::bind(format!("{CORE}:9002")).unwrap());
    s2.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let link = r.run(|| udp_socket(&spec("bo-r2", "10.2.0.1", 9002)).unwrap());
    link.set_nonblocking(false).unwrap();
    link.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 16];
    let mut round_trip = |tag: &[u8]| -> bool {
        link.send(tag).unwrap();
        let (_, from) = s2.recv_from(&mut b).unwrap();
        s2.send_to(b"back", from).unwrap();
        link.recv(&mut b).is_ok()
    };
    // Strict reverse-path filtering drops the reply: the main table prefers WAN 1.
    assert!(
        !round_trip(b"strict"),
        "reply should be dropped without source routing"
    );
    let (gw, routing) = r.run(|| {
        let mut nl = Netlink::open().unwrap();
        let gw = default_gateway(&mut nl, "bo-r2", true).unwrap();
        let cfg = LinkRouteConfig {
            device: "bo-r2".into(),
            local: "10.2.0.1".parse().unwrap(),
            gateway: gw,
            table: 9811,
            priority: 9810,
            protocol: 98,
        };
        (gw, LinkRouting::install(&cfg).unwrap())
    });
    assert_eq!(gw, Some("10.2.0.2".parse().unwrap()));
    assert!(
        round_trip(b"routed"),
        "reply must pass with the link's own table"
    );
    drop(routing);
    r.run(|| {
        let mut nl = Netlink::open().unwrap();
        assert!(nl.routes(Family::V4, Some(9811)).unwrap().is_empty());
        assert!(!nl
            .rules(Family::V4)
            .unwrap()
            .iter()
            .any(|x| x.priority == 9810));
        // What a crash would leave, removed by cleanup_stale_links.
        let cfg = LinkRouteConfig {
            device: "bo-r2".into(),
            local: "10.2.0.1".parse().unwrap(),
            gateway: gw,
            table: 9811,
            priority: 9810,
            protocol: 98,
        };
        std::mem::forget(LinkRouting::install(&cfg).unwrap());
        assert_eq!(cleanup_stale_links(9810..9820, 98).unwrap(), 1);
        assert!(nl.routes(Family::V4, Some(9811)).unwrap().is_empty());
    });
}
