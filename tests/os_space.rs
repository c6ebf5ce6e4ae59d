//! The space, the hub and the steering rules, in namespaces the test owns:
//! - install + remove leaves the host as it was;
//! - a space whose owner is killed with SIGKILL vanishes with its hub, and `cleanup_stale`
//!   removes the inert rules it left;
//! - the hub capture sees a client's packets while nothing (no ICMP, no RST) comes back.

mod support;

use braid::os::hub::{ip_payload, AsyncCapture, Batch, Capture};
use braid::os::netlink::{Family, Netlink, RuleAction};
use braid::os::plane::EdgePlane;
use braid::os::space::{cleanup_stale, Hub, HubConfig, Space, SteerConfig, Steering, RULE_SPAN};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};
use support::{needs_root, udp4, v4_summary, wire, Ns};

fn steer(prio: u32, table: u32) -> SteerConfig {
    let mut s = SteerConfig::new();
    s.priority = prio;
    s.table = table;
    s.sources = vec!["10.77.1.0/24".parse().unwrap()];
    s.bypass = vec!["192.0.2.10/32".parse().unwrap()];
    s
}

/// Braid's rules (by priority range) and routes (by table) in the calling thread's namespace.
fn leftovers(s: &SteerConfig, hub: &str) -> (usize, usize, bool) {
    let mut nl = Netlink::open().unwrap();
    let rules = nl
        .rules(Family::V4)
        .unwrap()
        .into_iter()
        .filter(|r| r.priority >= s.priority && r.priority < s.priority + RULE_SPAN)
        .count();
    let routes = nl.routes(Family::V4, Some(s.table)).unwrap().len();
    let link = nl.link_by_name(hub).unwrap().is_some();
    (rules, routes, link)
}

#[test]
fn steering_installs_and_removes_cleanly() {
    let Some(_root) = needs_root() else { return };
    let h = Ns::new();
    h.run(|| {
        let cfg = steer(9100, 9101);
        let space = Space::new().unwrap();
        let hub = Hub::create(&space, HubConfig::new("bo1")).unwrap();
        let st = Steering::install(&hub, cfg.clone()).unwrap();
        // iif lo, bypass 192.0.2.10, bypass LAN (LAN-to-LAN), from LAN lookup, nop.
        assert_eq!(st.rules().len(), 5);
        assert_eq!(leftovers(&cfg, "bo1-hub"), (5, 1, true));
        let mut nl = Netlink::open().unwrap();
        let rules = nl.rules(Family::V4).unwrap();
        let lookup = rules
            .iter()
            .find(|r| r.action == RuleAction::Lookup(9101))
            .unwrap();
        assert_eq!(lookup.src, Some("10.77.1.0/24".parse().unwrap()));
        assert!(rules
            .iter()
            .any(|r| r.iif.as_deref() == Some("lo") && r.action == RuleAction::Goto(9103)));
        // The space end exists only in the space, with no address.
        assert!(nl.link_by_name("bo1-sp").unwrap().is_none());
        let addrs = space
            .run(|| Netlink::open().unwrap().addresses(None).unwrap())
            .unwrap();
        assert!(addrs.is_empty(), "space has addresses: {addrs:?}");
        drop(st);
        assert_eq!(leftovers(&cfg, "bo1-hub"), (0, 0, true));
        drop(hub);
        assert_eq!(leftovers(&cfg, "bo1-hub"), (0, 0, false));
        drop(space);
        assert_eq!(
            cleanup_stale(&HubConfig::new("bo1"), &cfg).unwrap(),
            Default::default()
        );
    });
}

#[test]
fn tcp_only_and_v6_rules() {
    let Some(_root) = needs_root() else { return };
    let mut s = steer(9200, 9201);
    s.tcp_only = true;
    s.sources.push("fd77::/64".parse().unwrap());
    let rules = s.rules();
    assert!(rules
        .iter()
        .filter(|r| matches!(r.action, RuleAction::Lookup(_)))
        .all(|r| r.ip_proto == Some(6)));
    assert_eq!(rules.iter().filter(|r| r.family == Family::V6).count(), 4);
    let h = Ns::new();
    h.run(|| {
        let space = Space::new().unwrap();
        let hub = Hub::create(&space, HubConfig::new("bo2")).unwrap();
        let st = Steering::install(&hub, s.clone()).unwrap();
        let mut nl = Netlink::open().unwrap();
        assert_eq!(nl.routes(Family::V6, Some(9201)).unwrap().len(), 1);
        let got: Vec<_> = nl
            .rules(Family::V6)
            .unwrap()
            .into_iter()
            .filter(|r| r.priority >= 9200 && r.priority < 9204)
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        drop(st);
        assert!(nl.routes(Family::V6, Some(9201)).unwrap().is_empty());
    });
}

/// Run only by `space_vanishes_when_owner_is_killed` in a child process.
#[test]
#[ignore]
fn space_child_process() {
    if !support::enter_child_ns() {
        return;
    }
    let _edge = EdgePlane::start(HubConfig::new("bo3"), steer(9300, 9301)).unwrap();
    support::child_ready_and_wait();
}

#[test]
fn space_vanishes_when_owner_is_killed() {
    let Some(_root) = needs_root() else { return };
    // client (10.77.1.2) -- host (10.77.1.1) -- wan (10.66.0.2, holds 198.51.100.9)
    let h = Ns::new();
    let client = Ns::new();
    let wan = Ns::new();
    wire(
        &h,
        "bo-lan",
        "10.77.1.1/24",
        &client,
        "bo-cl",
        "10.77.1.2/24",
    );
    wire(&h, "bo-up", "10.66.0.1/24", &wan, "bo-wan", "10.66.0.2/24");
    h.sysctl("net/ipv4/ip_forward", "1");
    default_via(&client, "10.77.1.1");
    default_via(&h, "10.66.0.2");
    default_via(&wan, "10.66.0.1");
    wan.run(|| {
        let mut nl = Netlink::open().unwrap();
        let lo = nl.index("lo").unwrap();
        nl.add_address(lo, "198.51.100.9/32".parse().unwrap())
            .unwrap();
    });
    let server = wan.run(|| UdpSocket::bind("198.51.100.9:7").unwrap());
    server
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let send = |tag: &[u8]| {
        client.run(|| {
            let u = UdpSocket::bind("10.77.1.2:0").unwrap();
            u.send_to(tag, "198.51.100.9:7").unwrap();
        })
    };

    let mut child = support::spawn_child("space_child_process", &h);
    let cfg = steer(9300, 9301);
    h.run(|| assert_eq!(leftovers(&cfg, "bo3-hub"), (5, 1, true)));
    // Steered: the client's packet goes into the hub, not to the WAN.
    send(b"steered");
    let mut b = [0u8; 32];
    assert!(
        server.recv_from(&mut b).is_err(),
        "steered traffic leaked to the WAN"
    );

    child.kill(); // SIGKILL
                  // The namespace dies with its last reference; the veth and its routes go with it.
    let t0 = Instant::now();
    let gone_after = loop {
        let (_, routes, link) = h.run(|| leftovers(&cfg, "bo3-hub"));
        if !link && routes == 0 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "hub still there after 5 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("hub gone {gone_after:?} after SIGKILL");
    // Fail-open: with the inert rules still there, the client reaches the WAN directly.
    send(b"direct");
    let (n, from) = server.recv_from(&mut b).unwrap();
    assert_eq!(
        (&b[..n], from.ip()),
        (
            &b"direct"[..],
            "10.77.1.2".parse::<std::net::IpAddr>().unwrap()
        )
    );
    h.run(|| {
        // Only the inert rules remain; cleanup_stale removes them.
        assert_eq!(leftovers(&cfg, "bo3-hub"), (5, 0, false));
        let c = cleanup_stale(&HubConfig::new("bo3"), &cfg).unwrap();
        assert_eq!((c.links, c.rules, c.routes), (0, 5, 0));
        assert_eq!(leftovers(&cfg, "bo3-hub"), (0, 0, false));
    });
}

fn default_via(ns: &Ns, gw: &str) {
    ns.run(|| {
        let r =
            braid::os::netlink::Route::new("0.0.0.0/0".parse().unwrap()).via(gw.parse().unwrap());
        Netlink::open().unwrap().add_route(&r).unwrap();
    });
}

#[test]
fn edge_plane_with_tokio_capture_then_clean_stop() {
    let Some(_root) = needs_root() else { return };
    let h = Ns::new();
    let client = Ns::new();
    wire(
        &h,
        "bo-lan",
        "10.77.1.1/24",
        &client,
        "bo-cl",
        "10.77.1.2/24",
    );
    h.sysctl("net/ipv4/ip_forward", "1");
    default_via(&client, "10.77.1.1");
    let cfg = steer(9600, 9601);
    h.run(|| {
        let edge = EdgePlane::start(HubConfig::new("bo7"), cfg.clone()).unwrap();
        assert_eq!(edge.cleaned, Default::default());
        let cap = edge.capture.try_clone().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let cap = AsyncCapture::new(cap).unwrap();
            client.run(|| {
                let u = UdpSocket::bind("10.77.1.2:0").unwrap();
                u.send_to(b"bo-async", "198.51.100.9:7").unwrap();
            });
            let mut b = Batch::default();
            let n = tokio::time::timeout(Duration::from_secs(2), cap.recv_batch(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert!(n >= 1);
            ip_payload(b.frame(0)).unwrap().to_vec()
        });
        assert_eq!(&got[got.len() - 8..], b"bo-async");
        drop(edge);
        assert_eq!(leftovers(&cfg, "bo7-hub"), (0, 0, false));
        // A second start after a clean stop finds nothing to clean.
        let again = EdgePlane::start(HubConfig::new("bo7"), cfg.clone()).unwrap();
        assert_eq!(again.cleaned, Default::default());
    });
}

#[test]
fn hub_captures_client_packets_and_space_answers_nothing() {
    let Some(_root) = needs_root() else { return };
    // client (10.77.1.2) --bo-cl/bo-lan-- host (10.77.1.1, no default route) --hub-- space
    let host = Ns::new();
    let client = Ns::new();
    let (_, cl_if) = wire(
        &host,
        "bo-lan",
        "10.77.1.1/24",
        &client,
        "bo-cl",
        "10.77.1.2/24",
    );
    host.sysctl("net/ipv4/ip_forward", "1");
    client.run(|| {
        let mut nl = Netlink::open().unwrap();
        let r = braid::os::netlink::Route::new("0.0.0.0/0".parse().unwrap())
            .via("10.77.1.1".parse().unwrap());
        nl.add_route(&r).unwrap();
    });
    let (space, hub, _st) = host.run(|| {
        let space = Space::new().unwrap();
        let hub = Hub::create(&space, HubConfig::new("bo4")).unwrap();
        let st = Steering::install(&hub, steer(9400, 9401)).unwrap();
        (space, hub, st)
    });
    let cap = Capture::open(&space, &hub).unwrap();
    // What the client receives, all of it.
    let watch = client.run(|| Capture::open_raw(cl_if, None, [0; 6], [0; 6]).unwrap());
    // The host end announces the offloads the capture finishes (checksums, TCP segmentation)
    // and no other: the kernel segments UDP and tunnels before the hub.
    let f = host.run(|| braid::os::ethtool::features("bo4-hub").unwrap());
    for (name, on) in [
        ("tx-checksum-ip-generic", true),
        ("tx-tcp-segmentation", true),
        ("tx-udp-segmentation", false),
        ("tx-gre-segmentation", false),
        ("tx-gso-list", false),
    ] {
        assert_eq!(f.get(name), Some(on), "{name} of the hub's host end");
    }

    let (tcp_err, udp_err, ip_back) = probe(&client, &watch);
    assert_eq!(
        tcp_err,
        Some(std::io::ErrorKind::TimedOut),
        "TCP connect must time out, not be refused"
    );
    assert_eq!(
        udp_err,
        Some(std::io::ErrorKind::WouldBlock),
        "no ICMP error for UDP"
    );
    // The client received no IP packet at all: no ICMP, no RST, from the host or the space.
    assert!(ip_back.is_empty(), "client got {ip_back:?}");

    // The capture saw the three kinds of packets from the client.
    let mut b = Batch::default();
    let (mut udp, mut syn, mut icmp) = (0, 0, 0);
    while cap.recv_batch(&mut b).is_ok() {
        for f in b.iter() {
            let Some((proto, src, dst, x)) = ip_payload(f).and_then(v4_summary) else {
                continue;
            };
            assert_eq!(src, [10, 77, 1, 2]);
            assert_eq!(dst, [203, 0, 113, 5]);
            match (proto, x) {
                (17, _) => udp += 1,
                (6, 0x02) => syn += 1,
                (1, 8) => icmp += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(
        udp == 1 && icmp == 1 && syn >= 1,
        "udp {udp} syn {syn} icmp {icmp}"
    );

    // Writing back: a reply injected by braid reaches the client through the host.
    let got = client.run(|| {
        let u = UdpSocket::bind("10.77.1.2:5555").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let pkt = udp4([203, 0, 113, 5], [10, 77, 1, 2], 9, 5555, b"bo-reply");
        cap.send_ip(&pkt).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = u.recv_from(&mut buf).unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(got.0, b"bo-reply");
    assert_eq!(got.1, "203.0.113.5:9".parse::<SocketAddr>().unwrap());
    // A batch of replies with one syscall.
    let got = client.run(|| {
        let u = UdpSocket::bind("10.77.1.2:5556").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let pkts: Vec<Vec<u8>> = (0..5u8)
            .map(|i| udp4([203, 0, 113, 5], [10, 77, 1, 2], 9, 5556, &[b'a' + i]))
            .collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        assert_eq!(cap.send_ip_batch(&refs).unwrap(), 5);
        let mut out = Vec::new();
        for _ in 0..5 {
            let mut buf = [0u8; 8];
            let n = u.recv(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    assert_eq!(got, b"abcde");
    assert_eq!(
        cap.send_ip_batch(&[&[0u8; 20][..]]).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    // The injected frame did not come back into the capture.
    std::thread::sleep(Duration::from_millis(50));
    assert!(cap.recv_batch(&mut b).is_err());

    // A run of one TCP flow's segments written as one aggregate reaches the client as those
    // very segments (the kernel cuts it on the way; the client's capture may see it whole, as
    // GRO would have made it, and cuts it again).
    let segs: Vec<Vec<u8>> = (0..6u32)
        .map(|k| {
            tcp4_segment(
                1000 + k * 1200,
                40 + k as u16,
                if k == 5 { 0x18 } else { 0x10 },
                1200,
            )
        })
        .collect();
    let mut merge = braid::proto::coalesce::Coalescer::new();
    let mut sent = Vec::new();
    for s in &segs {
        merge.push(s, &mut |p, m| sent.push((p.to_vec(), m)));
    }
    merge.flush(&mut |p, m| sent.push((p.to_vec(), m)));
    assert_eq!(sent.len(), 1, "one aggregate");
    let seen = client.run(|| {
        let mut w = Capture::open_raw(cl_if, None, [0; 6], [0; 6]).unwrap();
        w.enable_offloads().unwrap();
        w
    });
    for (p, m) in &sent {
        assert_eq!(cap.send_aggregate(p, *m).unwrap(), p.len());
    }
    let mut got = Vec::new();
    let mut seg = vec![0u8; 65536];
    let until = Instant::now() + Duration::from_secs(2);
    while got.len() < segs.len() && Instant::now() < until {
        match seen.recv_batch(&mut b) {
            Ok(n) => {
                for i in 0..n {
                    let _ = b.packets(i, &mut seg, &mut |p| {
                        // The client's own answers (RSTs: nothing listens) go the other way.
                        if p.len() > 40 && p[12..16] == [203, 0, 113, 5] && p[9] == 6 {
                            got.push(p.to_vec());
                        }
                    });
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // The TTL went down by one on the host.
    let expect: Vec<Vec<u8>> = segs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s[8] -= 1;
            s[10..12].copy_from_slice(&[0, 0]);
            let c = braid::proto::packet::checksum(&s[..20], 0);
            s[10..12].copy_from_slice(&c.to_be_bytes());
            s
        })
        .collect();
    assert_eq!(got, expect, "the client got the segments, in order, intact");
}

/// A complete TCP/IPv4 segment from 203.0.113.5:443 to the client (checksums valid).
fn tcp4_segment(seq: u32, id: u16, flags: u8, len: usize) -> Vec<u8> {
    use braid::proto::packet::{checksum, ones_sum};
    let total = 40 + len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[203, 0, 113, 5]);
    p[16..20].copy_from_slice(&[10, 77, 1, 2]);
    let c = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&443u16.to_be_bytes());
    p[22..24].copy_from_slice(&5557u16.to_be_bytes());
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    p[28..32].copy_from_slice(&9u32.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = flags;
    p[34..36].copy_from_slice(&1000u16.to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    let acc = ones_sum(&p[12..20], 6 + (total - 20) as u32);
    let c = checksum(&p[20..], acc);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    p
}

type Summary = (u8, [u8; 4], [u8; 4], u8);

/// From the client: a UDP datagram, an ICMP echo request and a TCP SYN to 203.0.113.5.
/// Returns the TCP connect error, the UDP socket's pending error, and every IPv4 packet the
/// client's interface received meanwhile (protocol, src, dst, TCP flags / ICMP type).
fn probe(client: &Ns, watch: &Capture) -> (Option<ErrorKind>, Option<ErrorKind>, Vec<Summary>) {
    let server: SocketAddr = "203.0.113.5:80".parse().unwrap();
    let (tcp_err, udp_err) = client.run(|| {
        // UDP: a connected socket would report an ICMP port/host unreachable as ECONNREFUSED.
        let u = UdpSocket::bind("10.77.1.2:40000").unwrap();
        u.connect("203.0.113.5:9").unwrap();
        u.send(b"bo-udp").unwrap();
        // ICMP echo request over a raw socket.
        let raw = socket_icmp();
        let mut echo = [8u8, 0, 0, 0, 0x62, 0x6f, 0, 1, b'b', b'o'];
        let c = support::csum(&echo);
        echo[2..4].copy_from_slice(&c.to_be_bytes());
        let dst = nix::sys::socket::SockaddrIn::new(203, 0, 113, 5, 0);
        nix::sys::socket::sendto(
            raw.as_raw_fd(),
            &echo,
            &dst,
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        // TCP: a RST would make connect fail fast with ECONNREFUSED instead of timing out.
        let t = TcpStream::connect_timeout(&server, Duration::from_millis(700));
        std::thread::sleep(Duration::from_millis(100));
        u.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        (
            t.err().map(|e| e.kind()),
            u.recv(&mut b).err().map(|e| e.kind()),
        )
    });
    let mut b = Batch::default();
    let mut back = Vec::new();
    while watch.recv_batch(&mut b).is_ok() {
        back.extend(b.iter().filter_map(|f| ip_payload(f).and_then(v4_summary)));
    }
    (tcp_err, udp_err, back)
}

/// Negative control for the test above: a space that *does* hold the server's address, with
/// frames addressed to its own MAC and a route back, answers (RST, echo reply, port
/// unreachable), and `probe` sees every answer. So the silence above is real, not blindness.
#[test]
fn control_an_addressed_space_does_answer() {
    let Some(_root) = needs_root() else { return };
    let host = Ns::new();
    let client = Ns::new();
    let (_, cl_if) = wire(
        &host,
        "bo-lan",
        "10.77.1.1/24",
        &client,
        "bo-cl",
        "10.77.1.2/24",
    );
    host.sysctl("net/ipv4/ip_forward", "1");
    default_via(&client, "10.77.1.1");
    let (space, hub, _st) = host.run(|| {
        let space = Space::new().unwrap();
        let mut cfg = HubConfig::new("bo9");
        cfg.peer_mac = cfg.space_mac; // the mistake braid avoids
        let hub = Hub::create(&space, cfg).unwrap();
        let st = Steering::install(&hub, steer(9900, 9901)).unwrap();
        (space, hub, st)
    });
    let host_mac = hub.host_mac;
    space
        .run(|| {
            let mut nl = Netlink::open().unwrap();
            let i = nl.index("bo9-sp").unwrap();
            nl.add_address(i, "203.0.113.5/32".parse().unwrap())
                .unwrap();
            nl.add_neighbour(i, "169.254.98.1".parse().unwrap(), host_mac)
                .unwrap();
            let r = braid::os::netlink::Route::new("10.77.1.0/24".parse().unwrap())
                .via("169.254.98.1".parse().unwrap())
                .dev(i)
                .onlink();
            nl.add_route(&r).unwrap();
        })
        .unwrap();
    let watch = client.run(|| Capture::open_raw(cl_if, None, [0; 6], [0; 6]).unwrap());
    let (tcp_err, udp_err, back) = probe(&client, &watch);
    assert_eq!(tcp_err, Some(ErrorKind::ConnectionRefused));
    assert_eq!(udp_err, Some(ErrorKind::ConnectionRefused));
    let from_space = |p: &&Summary| p.1 == [203, 0, 113, 5];
    assert!(
        back.iter()
            .filter(from_space)
            .any(|p| p.0 == 6 && p.3 & 0x04 != 0),
        "RST: {back:?}"
    );
    assert!(
        back.iter().filter(from_space).any(|p| p.0 == 1 && p.3 == 0),
        "echo reply"
    );
    assert!(
        back.iter().filter(from_space).any(|p| p.0 == 1 && p.3 == 3),
        "unreachable"
    );
    drop(space);
}

fn socket_icmp() -> OwnedFd {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    )
    .unwrap()
}

#[test]
fn ipv6_client_is_captured_and_unanswered() {
    let Some(_root) = needs_root() else { return };
    let host = Ns::new();
    let client = Ns::new();
    host.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth("bo-lan6", "bo-cl6", Some(client.fd()))
            .unwrap();
        let i = nl.index("bo-lan6").unwrap();
        nl.add_address(i, "fd77::1/64".parse().unwrap()).unwrap();
        nl.set_up(i, true).unwrap();
        braid::os::sysctl_set("net/ipv6/conf/all/forwarding", "1").unwrap();
    });
    let cl_if = client.run(|| {
        let mut nl = Netlink::open().unwrap();
        let i = nl.index("bo-cl6").unwrap();
        nl.add_address(i, "fd77::2/64".parse().unwrap()).unwrap();
        nl.set_up(i, true).unwrap();
        let r = braid::os::netlink::Route::new("::/0".parse().unwrap())
            .via("fd77::1".parse().unwrap())
            .dev(i);
        nl.add_route(&r).unwrap();
        assert!(nl.wait_oper_up(i, Duration::from_secs(3)).unwrap());
        i
    });
    let mut cfg = SteerConfig::new();
    cfg.priority = 9800;
    cfg.table = 9801;
    cfg.sources = vec!["fd77::/64".parse().unwrap()];
    let edge = host.run(|| EdgePlane::start(HubConfig::new("bo10"), cfg.clone()).unwrap());
    let watch = client.run(|| Capture::open_raw(cl_if, None, [0; 6], [0; 6]).unwrap());
    let tcp = client.run(|| {
        let u = UdpSocket::bind("[fd77::2]:0").unwrap();
        u.connect("[2001:db8::5]:9").unwrap();
        u.send(b"bo-v6").unwrap();
        let t = TcpStream::connect_timeout(
            &"[2001:db8::5]:80".parse().unwrap(),
            Duration::from_millis(500),
        );
        std::thread::sleep(Duration::from_millis(100));
        u.set_nonblocking(true).unwrap();
        let mut b = [0u8; 16];
        (
            t.err().map(|e| e.kind()),
            u.recv(&mut b).err().map(|e| e.kind()),
        )
    });
    assert_eq!(
        tcp,
        (Some(ErrorKind::TimedOut), Some(ErrorKind::WouldBlock))
    );
    let mut b = Batch::default();
    let (mut udp, mut syn) = (0, 0);
    while edge.capture.recv_batch(&mut b).is_ok() {
        for f in b.iter() {
            let ip = ip_payload(f).unwrap();
            assert_eq!(ip[0] >> 4, 6);
            assert_eq!(
                &ip[8..24],
                &"fd77::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
            );
            match ip[6] {
                17 => udp += 1,
                6 => syn += 1,
                other => panic!("unexpected next header {other}"),
            }
        }
    }
    assert!(udp == 1 && syn >= 1, "udp {udp} syn {syn}");
    // Nothing came back from the server's address, and no ICMPv6 error from anyone (the
    // host's own neighbour discovery and MLD chatter are fine).
    let server = "2001:db8::5"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    while watch.recv_batch(&mut b).is_ok() {
        for f in b.iter() {
            let Some(ip) = ip_payload(f) else { continue };
            assert_eq!(ip[0] >> 4, 6, "no IPv4 here");
            assert_ne!(&ip[8..24], &server, "an answer from the server's address");
            assert!(
                !(ip[6] == 58 && (1..=4).contains(&ip[40])),
                "ICMPv6 error to the client"
            );
        }
    }
}
