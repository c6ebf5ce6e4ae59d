//! The core's forward policy, end to end (issue #14, items 2 and 3), with the built `braid`
//! binary in the lab's namespaces: two edges with the same LAN (10.70.0.0/24), one core, and
//! three hosts the test adds beside the core that clients must never reach: a private network
//! (192.168.77.2), a cloud metadata service (169.254.169.254) and the core host itself.
//!
//! - Both edges' clients reach the server (the lab opens its "internet", the server 10.73.0.2,
//!   with `allow_dest`: it is private space too).
//! - A client of edge 0 sends to every address of the pool (a /24 here): edge 1's client, which
//!   holds one of them, receives nothing; every datagram is refused as "to another client".
//! - Datagrams to 192.168.77.2, 169.254.169.254 and the core's own address 10.73.0.1 arrive
//!   nowhere (each host receives them when sent from the core's namespace: the routes exist),
//!   and are counted each under its reason.
//! - Edge 0's `allowed_lan` is 10.70.0.0/25: a client sending from 10.70.0.200 is refused and
//!   counted, the same client's own address goes through.
//! - `max_clients 8`: edge 1 sending from 30 source addresses gets 8 through, the rest refused
//!   and counted; edge 0 still gets a new client through (one edge cannot fill the pool).
//!
//! Needs root and iproute2; skipped with a message otherwise. Namespaces: `bli<pid>-*`.

mod support;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use braid::lab::{sys, topo};
use support::*;

const PORT: u16 = 7091;
const SINK: u16 = 7092;

/// A UDP socket in a namespace that keeps every payload it receives. Stops when dropped.
struct Sink {
    got: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start(ns: &str, addr: SocketAddr) -> Sink {
        let s = sys::in_ns(ns, || UdpSocket::bind(addr)).expect("sink bind");
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let (got, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (g, st) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !st.load(Ordering::Relaxed) {
                if let Ok(n) = s.recv(&mut buf) {
                    g.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into());
                }
            }
        });
        Sink {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.got().iter().filter(|p| p.starts_with(prefix)).count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The hosts beside the core the test made; removed on drop.
struct Beside {
    namespaces: Vec<String>,
}

impl Drop for Beside {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = sys::run("ip", &["netns", "del", ns]);
        }
    }
}

/// A namespace `name` wired to the core's: the core's end `dev` with `core_addr`, the host's
/// with `addr` (both /24), its default route via the core.
fn beside(b: &mut Beside, core: &str, name: &str, dev: &str, core_addr: &str, addr: &str) {
    sys::run("ip", &["netns", "add", name]).unwrap();
    b.namespaces.push(name.to_string());
    sys::run(
        "ip",
        &[
            "link", "add", dev, "netns", core, "type", "veth", "peer", "name", "bl-eth0", "netns",
            name,
        ],
    )
    .unwrap();
    let gw = core_addr.split('/').next().unwrap();
    for (ns, args) in [
        (core, vec!["addr", "add", core_addr, "dev", dev]),
        (core, vec!["link", "set", dev, "up"]),
        (name, vec!["link", "set", "lo", "up"]),
        (name, vec!["addr", "add", addr, "dev", "bl-eth0"]),
        (name, vec!["link", "set", "bl-eth0", "up"]),
        (name, vec!["route", "add", "default", "via", gw]),
    ] {
        let mut a = vec!["-n", ns];
        a.extend(args);
        sys::run("ip", &a).unwrap();
    }
}

/// One datagram from `ns`, from address `src` (port chosen by the kernel), to `to`.
fn send_from(ns: &str, src: Ipv4Addr, to: SocketAddr, payload: &str) {
    let s = sys::in_ns(ns, || UdpSocket::bind(SocketAddr::from((src, 0)))).expect("bind");
    let _ = s.send_to(payload.as_bytes(), to);
}

/// The refusal counters of the core's status (`refused`, or a session's), by words.
fn refused(v: &serde_json::Value, reason: &str) -> u64 {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["reason"].as_str().is_some_and(|r| r.starts_with(reason)))
        .filter_map(|c| c["count"].as_u64())
        .sum()
}

fn session<'a>(st: &'a serde_json::Value, peer: &str) -> &'a serde_json::Value {
    st["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["peer"] == peer)
        .unwrap_or_else(|| panic!("no session of {peer} in {st}"))
}

#[test]
fn edges_stay_apart_and_reach_only_public_destinations() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let spec = || edge_spec(vec![link("wan0", 20, 10)]);
    let mut lab = Lab::new(&tag('i'), vec![spec(), spec()]);
    let core_ns = lab.t.core.clone();
    let p = lab.t.prefix.clone();
    // The core: a small pool, 8 clients per edge, edge 0's LAN limited to 10.70.0.0/25.
    let mut conf = core_uci(
        &lab.core_key.0,
        &lab.edge_keys
            .iter()
            .map(|k| k.1.clone())
            .collect::<Vec<_>>(),
        &lab.core_socket(),
    );
    conf = conf.replacen(
        "\n\n",
        "\n\toption pool '100.64.0.0/24'\n\toption max_clients '8'\n\n",
        1,
    );
    conf = conf.replace(
        "config peer 'edge0'\n\toption public_key",
        "config peer 'edge0'\n\tlist allowed_lan '10.70.0.0/25'\n\toption public_key",
    );
    std::fs::write(lab.core_config(), &conf).unwrap();

    let mut b = Beside { namespaces: vec![] };
    beside(
        &mut b,
        &core_ns,
        &format!("{p}priv"),
        "bl-priv",
        "192.168.77.1/24",
        "192.168.77.2/24",
    );
    beside(
        &mut b,
        &core_ns,
        &format!("{p}meta"),
        "bl-meta",
        "169.254.169.1/24",
        "169.254.169.254/24",
    );
    let private = SocketAddr::from(([192, 168, 77, 2], SINK));
    let metadata = SocketAddr::from(([169, 254, 169, 254], SINK));
    // The core's address toward the server (its public address, core_host, is never steered:
    // the edge sends that traffic by the plain WAN).
    let core_host = SocketAddr::from((topo::CORE_SRV_ADDR, SINK));
    let sinks = [
        Sink::start(&format!("{p}priv"), private),
        Sink::start(&format!("{p}meta"), metadata),
        Sink::start(&core_ns, SocketAddr::from(([0, 0, 0, 0], SINK))),
    ];
    // The routes exist: from the core's own namespace each host is reached.
    for to in [private, metadata, core_host] {
        send_from(&core_ns, Ipv4Addr::UNSPECIFIED, to, "from-core");
    }
    let routed = poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
        sinks
            .iter()
            .all(|s| s.count("from-core") == 1)
            .then_some(())
    });
    assert!(
        routed.is_some(),
        "the hosts beside the core are not reachable from it"
    );

    lab.start_bonded();
    let (c0, c1) = (lab.client(0), lab.client(1));
    let server = lab.reached_server(0, PORT);
    // Both edges' clients reach the server, through the core.
    for c in [&c0, &c1] {
        let seen = seen_by_server(c, server.addr(), Duration::from_secs(3)).unwrap();
        assert_eq!(seen.ip(), std::net::IpAddr::V4(CORE_SEEN), "{c}");
    }
    let at_server = Sink::start(&lab.t.server, SocketAddr::from(([0, 0, 0, 0], SINK)));
    let server_sink = SocketAddr::from((topo::SERVER_ADDR, SINK));

    // Edge 1's client listens; edge 0's client sends to every pool address.
    let peer = Sink::start(&c1, SocketAddr::from(([0, 0, 0, 0], SINK)));
    let me = topo::client_addr(0);
    for i in 1..=254u8 {
        send_from(&c0, me, SocketAddr::from(([100, 64, 0, i], SINK)), "pool");
    }
    for to in [private, metadata, core_host] {
        send_from(&c0, me, to, "forbidden");
        send_from(&c1, me, to, "forbidden");
    }
    // allowed_lan: edge 0's client from an address outside 10.70.0.0/25, then from its own.
    ip(&c0, &["addr", "add", "10.70.0.200/24", "dev", "bl-eth0"]);
    send_from(&c0, Ipv4Addr::new(10, 70, 0, 200), server_sink, "outside");
    send_from(&c0, me, server_sink, "inside");
    // max_clients: edge 1's client from 30 more addresses.
    for i in 100..130u8 {
        ip(
            &c1,
            &["addr", "add", &format!("10.70.0.{i}/24"), "dev", "bl-eth0"],
        );
    }
    for i in 100..130u8 {
        send_from(
            &c1,
            Ipv4Addr::new(10, 70, 0, i),
            server_sink,
            &format!("many-{i}"),
        );
    }
    // ... and edge 0 still gets a new client through.
    ip(&c0, &["addr", "add", "10.70.0.20/24", "dev", "bl-eth0"]);
    send_from(&c0, Ipv4Addr::new(10, 70, 0, 20), server_sink, "new-client");
    let arrived = poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
        (at_server.count("inside") == 1 && at_server.count("new-client") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));

    let st = lab.core.as_ref().unwrap().status_json().unwrap();
    println!(
        "core status: {}",
        serde_json::to_string_pretty(&st["refused"]).unwrap()
    );
    let (e0, e1) = (session(&st, "edge0"), session(&st, "edge1"));
    println!(
        "edge0 refused {}; edge1 refused {}",
        e0["refused"], e1["refused"]
    );
    assert!(
        arrived.is_some(),
        "allowed traffic did not arrive: {:?}",
        at_server.got()
    );
    assert_eq!(
        peer.got(),
        Vec::<String>::new(),
        "edge 1's client was reached"
    );
    for s in &sinks {
        assert_eq!(s.count("forbidden"), 0, "a forbidden host was reached");
    }
    assert_eq!(
        at_server.count("outside"),
        0,
        "a source outside allowed_lan went through"
    );
    let many = at_server.count("many-");
    assert!(
        (1..=8).contains(&many),
        "{many} of edge 1's 30 new sources got through"
    );
    assert_eq!(refused(&e0["refused"], "to another client"), 254);
    for (reason, n) in [
        ("to a private network", 1),
        ("to the cloud metadata service", 1),
        ("to the core host itself", 1),
    ] {
        assert_eq!(refused(&e0["refused"], reason), n, "edge0: {reason}");
        assert_eq!(refused(&e1["refused"], reason), n, "edge1: {reason}");
    }
    assert_eq!(refused(&e0["refused"], "from a source outside"), 1);
    assert_eq!(
        refused(
            &e1["refused"],
            "from more client addresses than max_clients"
        ),
        30 - many as u64
    );
    assert!(refused(&st["refused"], "to another client") >= 254);
    let text = lab.core.as_ref().unwrap().status_text().unwrap();
    assert!(
        text.contains("to the cloud metadata service (169.254.169.254)"),
        "{text}"
    );
    drop(lab);
    drop(b);
}
