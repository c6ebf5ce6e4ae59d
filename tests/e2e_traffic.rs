//! End to end through `braid edge` and `braid core` (the built binary) in the lab's namespaces:
//! client - edge - two emulated links - core - server. Needs root and iproute2; a SKIP
//! line otherwise.
//!
//! - TCP both ways, UDP and ICMP echo from the client to the server through the tunnel; the
//!   server sees the core's address (the masqueraded pool), never the client's, and the client
//!   receives nothing but the server's packets.
//! - A link black-holed for 3 s mid-transfer: both TCP transfers complete intact, the longest
//!   delivery gap is printed.
//! - `braid link down wan0` on the edge's control socket mid-download, `up` 2 s later: the
//!   stream continues intact, the longest gap is printed, `braid status` shows admin-down.
//! - Two edges with the same LAN subnet (and the same client address and ports) through one
//!   core: each client gets only its own replies.
//! - MSS clamped both ways; a 1500-byte datagram without DF arrives whole (fragmented in front
//!   of the 1400-byte hub), with DF the client learns the path MTU.
//! - A link over TCP carries its share; a WAN interface going down and up (with its routes, as
//!   netifd restores them) without a session restart.

mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use braid::lab::emu::OutageKind;
use braid::lab::{sys, topo};
use support::*;

/// Sends `len` pattern bytes to the server (`U`) and returns the server's count of correct bytes.
fn upload(ns: &str, server: SocketAddr, len: u64) -> std::io::Result<(u64, Duration)> {
    let never = AtomicBool::new(false);
    let mut s = connect(ns, server, None, Duration::from_secs(5))?;
    let t = Instant::now();
    let mut hdr = [0u8; 9];
    hdr[0] = b'U';
    hdr[1..9].copy_from_slice(&len.to_be_bytes());
    write_full(&mut s, &hdr, &never)?;
    let mut buf = vec![0u8; 16384];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(off + i as u64);
        }
        write_full(&mut s, &buf[..n], &never)?;
        off += n as u64;
    }
    let mut good = [0u8; 8];
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    read_full(&mut s, &mut good, &never)?;
    Ok((u64::from_be_bytes(good), t.elapsed()))
}

/// Result of one download: bytes received intact, the time it took, and the longest pause
/// between two receptions after the first byte.
struct Down {
    good: u64,
    bytes: u64,
    took: Duration,
    max_gap: Duration,
    gap_at: Duration,
}

/// Receives `len` pattern bytes from the server (`D`), checking every byte.
fn download(ns: &str, server: SocketAddr, len: u64, deadline: Duration) -> std::io::Result<Down> {
    receive(ns, server, Some(len), deadline)
}

/// Receives the server's pattern stream (`D`) for `dur`, checking every byte and timing gaps.
fn stream_down(ns: &str, server: SocketAddr, dur: Duration) -> std::io::Result<Down> {
    receive(ns, server, None, dur)
}

/// The receiving side of `download` (`len` bytes, an error after `limit`) and `stream_down`
/// (`len` None: an endless stream read for `limit`, a trailing silence counting as a gap).
fn receive(
    ns: &str,
    server: SocketAddr,
    len: Option<u64>,
    limit: Duration,
) -> std::io::Result<Down> {
    let stop = AtomicBool::new(false);
    let mut s = connect(ns, server, None, Duration::from_secs(5))?;
    let t = Instant::now();
    let mut hdr = [0u8; 9];
    hdr[0] = b'D';
    hdr[1..9].copy_from_slice(&len.unwrap_or(1 << 40).to_be_bytes());
    write_full(&mut s, &hdr, &stop)?;
    s.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut buf = vec![0u8; 65536];
    let (mut off, mut good) = (0u64, 0u64);
    let (mut last, mut max_gap, mut gap_at) = (None::<Instant>, Duration::ZERO, Duration::ZERO);
    loop {
        match len {
            Some(len) if off >= len => break,
            Some(len) if t.elapsed() > limit => {
                return Err(std::io::Error::other(format!(
                    "download: {off} of {len} bytes after {limit:?}"
                )))
            }
            None if t.elapsed() >= limit => break,
            _ => {}
        }
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(std::io::Error::other(match len {
                    Some(len) => format!("download: closed after {off} of {len} bytes"),
                    None => format!("stream closed by the other side after {off} bytes"),
                }))
            }
            Ok(n) => {
                let now = Instant::now();
                if let Some(l) = last {
                    if now - l > max_gap {
                        max_gap = now - l;
                        gap_at = l - t;
                    }
                }
                last = Some(now);
                good += buf[..n]
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| **b == pattern(off + *i as u64))
                    .count() as u64;
                off += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    // A stream's trailing silence counts as a gap too.
    if let (None, Some(l)) = (len, last) {
        if l.elapsed() > max_gap {
            max_gap = l.elapsed();
            gap_at = l - t;
        }
    }
    Ok(Down {
        good,
        bytes: off,
        took: t.elapsed(),
        max_gap,
        gap_at,
    })
}

/// The state of the first session's first link, from `braid status --json` on `socket` (for
/// threads that do not hold the `Daemon`); empty when the daemon does not answer.
fn first_link_state(socket: &std::path::Path) -> String {
    std::process::Command::new(BRAID)
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<braid::control::Status>(&o.stdout).ok())
        .map(|s| s.sessions[0].links[0].state.clone())
        .unwrap_or_default()
}

fn mbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e6
}

#[test]
fn tcp_udp_icmp_through_edge_and_core() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('x'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 10, 25)])],
    );
    let took = lab.start_bonded()[0];
    println!(
        "session up and steering installed {:.0} ms after start",
        took.as_secs_f64() * 1e3
    );

    let client = lab.client(0);
    let server = Server::start(&lab.t.server, 7001);
    // Every ICMP packet the server receives (raw sockets get a copy of echo requests).
    let srv_icmp = Icmp::open(&lab.t.server).unwrap();
    let cap = Capture::start(&client, "bl-eth0").unwrap();
    let before = lab.edge(0).status().unwrap();

    // TCP up and down, 500 kB each.
    const LEN: u64 = 500_000;
    let (good, d) = upload(&client, server.addr(), LEN).expect("upload");
    assert_eq!(
        good, LEN,
        "upload: the server got {good} correct bytes of {LEN}"
    );
    println!(
        "TCP up: {LEN} bytes intact in {d:?} ({:.1} Mbit/s)",
        mbit(LEN, d)
    );
    let dn = download(&client, server.addr(), LEN, Duration::from_secs(30)).expect("download");
    assert_eq!((dn.bytes, dn.good), (LEN, LEN), "download corrupted");
    println!(
        "TCP down: {LEN} bytes intact in {:?} ({:.1} Mbit/s)",
        dn.took,
        mbit(LEN, dn.took)
    );

    // UDP: 20 requests from one socket, each answered with the address the server saw.
    let u = sys::in_ns(&client, || {
        std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
    })
    .unwrap();
    u.connect(server.addr()).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut answered = 0;
    let mut seen_udp = Vec::new();
    for i in 0..20 {
        let msg = format!("datagram {i}");
        u.send(msg.as_bytes()).unwrap();
        let mut b = [0u8; 256];
        if let Ok(n) = u.recv(&mut b) {
            let t = String::from_utf8_lossy(&b[..n]).into_owned();
            let (addr, payload) = t.split_once('|').unwrap();
            assert_eq!(payload, msg, "UDP answer for another request");
            seen_udp.push(addr.to_string());
            answered += 1;
        }
    }
    println!("UDP: {answered}/20 answered");
    assert!(answered >= 18, "UDP: only {answered} of 20 answered");

    // ICMP echo.
    let replies = ping(&client, topo::SERVER_ADDR, 0x4242, 10).unwrap();
    println!("ICMP: {}/10 echo replies", replies.len());
    assert!(
        replies.len() >= 9,
        "ping: only {} of 10 answered",
        replies.len()
    );
    let mut icmp_sources = std::collections::BTreeSet::new();
    while let Some(p) = srv_icmp.recv() {
        if let Some((_, b)) = ipv4_body(&p) {
            if b.first() == Some(&8) && b.get(4..6) == Some(&0x4242u16.to_be_bytes()[..]) {
                icmp_sources.insert(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
            }
        }
    }

    let frames = cap.finish();
    let after = lab.edge(0).status().unwrap();

    // The server saw the core, never the client (nor the edge's own WAN address: that would
    // mean the plain WAN carried it).
    let tcp_udp: std::collections::BTreeSet<IpAddr> = server.peer_ips();
    println!("server saw TCP/UDP from {tcp_udp:?}, ICMP from {icmp_sources:?}");
    assert_eq!(
        tcp_udp,
        [IpAddr::V4(CORE_SEEN)].into_iter().collect(),
        "the server must see only the core's address"
    );
    assert!(seen_udp
        .iter()
        .all(|a| a.starts_with(&format!("{CORE_SEEN}:"))));
    assert_eq!(
        icmp_sources,
        [CORE_SEEN].into_iter().collect(),
        "echo requests must reach the server from the core's address"
    );

    // `braid status` names the client as the top user, with bytes both ways and its flows.
    let users = &after.sessions[0].users;
    println!("edge status users: {users:?}");
    let me = users.first().expect("status lists the client as a user");
    assert_eq!(me.address, topo::client_addr(0).to_string());
    assert!(
        me.tx_bytes > 0 && me.rx_bytes > 0 && me.flows >= 1,
        "{me:?}"
    );

    // The session carried it: packets counted by the edge, on both links.
    let (b, a) = (&before.sessions[0], &after.sessions[0]);
    println!(
        "edge session: {} packets out, {} in during the test; links: {}",
        a.tx_packets - b.tx_packets,
        a.rx_packets - b.rx_packets,
        a.links
            .iter()
            .map(|l| format!("{} {} {} B sent", l.name, l.state, l.tx_bytes))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        a.tx_packets - b.tx_packets > 300,
        "the session did not carry the upload"
    );
    assert!(
        a.rx_packets - b.rx_packets > 300,
        "the session did not carry the download"
    );
    assert_eq!(a.links.len(), 2);
    for l in &a.links {
        assert_eq!(l.state, "up", "link {} is {}", l.name, l.state);
        assert!(
            l.tx_bytes > 10_000,
            "link {} carried only {} B",
            l.name,
            l.tx_bytes
        );
    }

    // The client received only the server's packets (no ICMP error, no RST from anywhere else).
    // (Packets to the client: the router's own multicast, such as its bridge's IGMP reports,
    // is not part of the path under test.)
    let client_ip = topo::client_addr(0).octets();
    let incoming: Vec<&Frame> = frames
        .iter()
        .filter(|f| !f.outgoing && f.ipv4().is_some_and(|ip| ip[16..20] == client_ip))
        .collect();
    let foreign: Vec<String> = incoming
        .iter()
        .filter(|f| f.ipv4().unwrap()[12..16] != topo::SERVER_ADDR.octets())
        .map(|f| f.describe())
        .collect();
    println!("client capture: {} IPv4 packets received", incoming.len());
    assert!(
        incoming.len() > 300,
        "capture saw too little: {}",
        incoming.len()
    );
    assert!(
        foreign.is_empty(),
        "packets not from the server: {foreign:#?}"
    );
    lab.core.as_ref().unwrap().status().unwrap();
}

/// Sends pattern bytes to the server (`S`) for `dur`, then shuts down and waits for the
/// server's verdict: (bytes sent, bytes the server got intact, its longest gap).
fn stream_up(
    ns: &str,
    server: SocketAddr,
    dur: Duration,
) -> std::io::Result<(u64, u64, u64, Duration)> {
    let never = AtomicBool::new(false);
    let mut s = connect(ns, server, None, Duration::from_secs(5))?;
    let mut hdr = [0u8; 9];
    hdr[0] = b'S';
    write_full(&mut s, &hdr, &never)?;
    let t = Instant::now();
    let mut buf = vec![0u8; 8192];
    let mut off = 0u64;
    while t.elapsed() < dur {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern(off + i as u64);
        }
        match std::io::Write::write(&mut s, &buf) {
            Ok(n) => off += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    s.shutdown(std::net::Shutdown::Write)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut r = [0u8; 24];
    read_full(&mut s, &mut r, &never)?;
    let good = u64::from_be_bytes(r[0..8].try_into().unwrap());
    let total = u64::from_be_bytes(r[8..16].try_into().unwrap());
    let gap_us = u64::from_be_bytes(r[16..24].try_into().unwrap());
    Ok((off, good, total, Duration::from_micros(gap_us)))
}

#[test]
fn link_blackholed_mid_transfer() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('y'),
        vec![edge_spec(vec![link("wan0", 12, 15), link("wan1", 12, 15)])],
    );
    let client = lab.client(0);
    let server = lab.reached_server(0, 7002);

    // Cut wan0 (both directions, queue included) 2 s into the transfers, for 3 s; the
    // transfers run 8 s.
    let cut = lab.t.links[0][0].ctl.clone();
    let cutter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2000));
        cut.set_outage(Some(OutageKind::Blackhole));
        std::thread::sleep(Duration::from_secs(3));
        cut.set_outage(None);
    });
    const DUR: Duration = Duration::from_secs(8);
    let (c2, s2) = (client.clone(), server.addr());
    let up = std::thread::spawn(move || stream_up(&c2, s2, DUR));
    let dn = stream_down(&client, server.addr(), DUR);
    let up = up.join().unwrap();
    cutter.join().unwrap();
    let status = lab.edge(0).status().unwrap();

    let dn = dn.unwrap_or_else(|e| panic!("download across the outage failed: {e}"));
    let (sent, good, total, up_gap) =
        up.unwrap_or_else(|e| panic!("upload across the outage failed: {e}"));
    println!(
        "wan0 black-holed 2-5 s into 8 s transfers: download {} B ({:.2} Mbit/s), longest gap \
         {:.0} ms at {:.2} s; upload {sent} B written, {total} B at the server ({:.2} Mbit/s), \
         longest gap {:.0} ms",
        dn.bytes,
        mbit(dn.bytes, dn.took),
        dn.max_gap.as_secs_f64() * 1e3,
        dn.gap_at.as_secs_f64(),
        mbit(total, DUR),
        up_gap.as_secs_f64() * 1e3
    );
    for l in &status.sessions[0].links {
        println!(
            "  {}: {} rtt {:.1} ms, {} B sent",
            l.name, l.state, l.rtt_ms, l.tx_bytes
        );
    }
    println!("  resent packets: {}", status.sessions[0].resent_packets);
    assert_eq!(dn.good, dn.bytes, "download: bytes corrupted");
    assert!(dn.bytes > 0, "download: nothing arrived");
    assert_eq!(
        (good, total),
        (sent, sent),
        "upload: the server did not get every byte intact"
    );
    assert!(
        dn.max_gap < Duration::from_secs(3),
        "the download stalled {:.1} s: it never resumed on wan1",
        dn.max_gap.as_secs_f64()
    );
}

#[test]
fn link_taken_down_by_command_mid_transfer() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('w'),
        vec![edge_spec(vec![link("wan0", 12, 15), link("wan1", 12, 15)])],
    );
    let client = lab.client(0);
    let server = lab.reached_server(0, 7004);

    // `braid link down wan0` 1.5 s into a 5 s download, `braid link up wan0` 2 s later.
    let socket = lab.edge(0).socket.clone();
    let ctl = std::thread::spawn(move || {
        let link = |up: bool| {
            std::process::Command::new(BRAID)
                .args(["link", if up { "up" } else { "down" }, "wan0", "--socket"])
                .arg(&socket)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let status = || first_link_state(&socket);
        std::thread::sleep(Duration::from_millis(1500));
        let down = link(false);
        std::thread::sleep(Duration::from_millis(500));
        let state_down = status();
        std::thread::sleep(Duration::from_millis(1500));
        let up = link(true);
        (down, state_down, up)
    });
    let dn = stream_down(&client, server.addr(), Duration::from_secs(5));
    let (down, state_down, up) = ctl.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let after = lab.edge(0).status().unwrap();
    let dn = dn.unwrap_or_else(|e| panic!("download across `braid link down` failed: {e}"));
    println!(
        "`braid link down wan0` at 1.5 s, up at 3.5 s of a 5 s download: {} B intact ({:.2} \
         Mbit/s), longest gap {:.0} ms at {:.2} s; wan0 was '{state_down}' while down, '{}' after",
        dn.good,
        mbit(dn.bytes, dn.took),
        dn.max_gap.as_secs_f64() * 1e3,
        dn.gap_at.as_secs_f64(),
        after.sessions[0].links[0].state
    );
    assert!(down && up, "braid link down/up failed: {down} {up}");
    assert_eq!(state_down, "admin-down");
    assert_eq!(dn.good, dn.bytes, "download: bytes corrupted");
    assert!(
        dn.max_gap < Duration::from_secs(2),
        "the download stalled {:.1} s while wan0 was down",
        dn.max_gap.as_secs_f64()
    );
    let back_up = poll_until(Duration::from_secs(5), Duration::from_millis(100), || {
        (lab.edge(0).status().unwrap().sessions[0].links[0].state == "up").then_some(())
    });
    assert!(
        back_up.is_some(),
        "wan0 did not come back up after `braid link up`"
    );
}

#[test]
fn two_edges_same_lan_each_gets_its_own_replies() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('z'),
        vec![
            edge_spec(vec![link("wan0", 20, 10)]),
            edge_spec(vec![link("wan0", 20, 10)]),
        ],
    );
    lab.start_bonded();
    let (c0, c1) = (lab.client(0), lab.client(1));
    let server = Server::start(&lab.t.server, 7003);

    // Both clients: same address (10.70.0.10), same UDP source port, same TCP source port.
    let udp = |ns: &str| {
        sys::in_ns(ns, || {
            let s = std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 40000)))?;
            s.connect(SocketAddr::from((topo::SERVER_ADDR, 7003)))?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            Ok(s)
        })
        .unwrap()
    };
    let (u0, u1) = (udp(&c0), udp(&c1));
    let (mut own, mut foreign, mut lost) = ([0u32; 2], Vec::new(), [0u32; 2]);
    for i in 0..20 {
        for (e, u) in [(0usize, &u0), (1, &u1)] {
            u.send(format!("edge{e} #{i}").as_bytes()).unwrap();
        }
        for (e, u) in [(0usize, &u0), (1, &u1)] {
            let mut b = [0u8; 256];
            // Both answers of this round may arrive in any order: read until ours or timeout.
            match u.recv(&mut b) {
                Ok(n) => {
                    let t = String::from_utf8_lossy(&b[..n]).into_owned();
                    let payload = t.split_once('|').map(|x| x.1).unwrap_or("");
                    if payload == format!("edge{e} #{i}") {
                        own[e] += 1;
                    } else {
                        foreign.push(format!("client of edge {e} got '{t}'"));
                    }
                }
                Err(_) => lost[e] += 1,
            }
        }
    }
    println!(
        "UDP from the same address and port behind both edges: own answers {own:?}, lost {lost:?}"
    );
    assert!(foreign.is_empty(), "{foreign:#?}");
    assert!(own[0] >= 18 && own[1] >= 18, "answers: {own:?} of 20 each");

    // TCP from the same source port behind both edges, at the same time, opposite directions
    // of data: each gets exactly its own stream.
    let never = AtomicBool::new(false);
    let mut streams = Vec::new();
    for ns in [&c0, &c1] {
        let s = connect(ns, server.addr(), Some(40001), Duration::from_secs(5)).unwrap();
        streams.push(s);
    }
    let lens = [400_000u64, 200_000];
    for (s, len) in streams.iter_mut().zip(lens) {
        let mut hdr = [0u8; 9];
        hdr[0] = b'D';
        hdr[1..9].copy_from_slice(&len.to_be_bytes());
        write_full(s, &hdr, &never).unwrap();
    }
    let mut handles = Vec::new();
    for (mut s, len) in streams.into_iter().zip(lens) {
        handles.push(std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let mut buf = vec![0u8; 65536];
            let (mut off, mut good) = (0u64, 0u64);
            let t = Instant::now();
            while off < len + 1 && t.elapsed() < Duration::from_secs(20) {
                match read_some(&mut s, &mut buf, &stop) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        good += buf[..n]
                            .iter()
                            .enumerate()
                            .filter(|(i, b)| **b == pattern(off + *i as u64))
                            .count() as u64;
                        off += n as u64;
                        if off >= len {
                            break;
                        }
                    }
                }
            }
            (off, good)
        }));
    }
    let got: Vec<(u64, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    println!("TCP from the same address and port behind both edges: (received, intact) {got:?}, expected {lens:?}");
    for (e, ((off, good), len)) in got.iter().zip(lens).enumerate() {
        assert_eq!(
            (*off, *good),
            (len, len),
            "edge {e}'s client got another stream or a broken one"
        );
    }

    // ICMP echo with the same identifier from both.
    let p0 = Icmp::open(&c0).unwrap();
    let p1 = Icmp::open(&c1).unwrap();
    for seq in 0..5u16 {
        p0.echo(topo::SERVER_ADDR, 0x7777, seq).unwrap();
        p1.echo(topo::SERVER_ADDR, 0x7777, 100 + seq).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let collect = |p: &Icmp| {
        let mut seqs = std::collections::BTreeSet::new();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(500) {
            if let Some(pkt) = p.recv() {
                if let Some((_, b)) = ipv4_body(&pkt) {
                    if b.len() >= 8 && b[0] == 0 && b[4..6] == 0x7777u16.to_be_bytes() {
                        seqs.insert(u16::from_be_bytes([b[6], b[7]]));
                    }
                }
            }
        }
        seqs
    };
    let (s0, s1) = (collect(&p0), collect(&p1));
    let core = lab.core.as_ref().unwrap().status().unwrap();
    for (who, st) in [
        ("core", &core),
        ("edge 0", &lab.edge(0).status().unwrap()),
        ("edge 1", &lab.edge(1).status().unwrap()),
    ] {
        let d: Vec<String> = st
            .drops
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| format!("{} {}", c.reason, c.count))
            .collect();
        println!("{who} drops: {d:?}");
    }
    println!("ICMP echo, same id behind both edges: edge 0 got {s0:?}, edge 1 got {s1:?}");
    assert!(
        s0.iter().all(|s| *s < 100),
        "edge 0's client got edge 1's replies: {s0:?}"
    );
    assert!(
        s1.iter().all(|s| *s >= 100),
        "edge 1's client got edge 0's replies: {s1:?}"
    );
    assert!(
        s0.len() >= 3 && s1.len() >= 3,
        "replies lost: {s0:?} {s1:?}"
    );

    // Both sessions at the core, and the server saw only the core.
    let est = core
        .sessions
        .iter()
        .filter(|s| s.state == "established")
        .count();
    assert_eq!(
        est,
        2,
        "core sessions: {:?}",
        core.sessions
            .iter()
            .map(|s| (&s.peer, &s.state))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        server.peer_ips(),
        [IpAddr::V4(CORE_SEEN)].into_iter().collect(),
        "the server must see only the core"
    );
}

/// `getsockopt(fd, level, name)` as an int.
fn sockopt_int(fd: i32, level: i32, name: i32) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writes of the sizes passed.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
    v
}

fn set_pmtudisc(s: &std::net::UdpSocket, mode: i32) {
    braid::os::setsockopt(s, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)
        .expect("IP_MTU_DISCOVER");
}

/// The tunnel's inner MTU is 1400 (the default); the LAN and the server's network are 1500.
/// TCP SYNs are clamped both ways, so neither end sends segments that do not fit. A full-size
/// UDP datagram without DF is fragmented (by the router, in front of the hub) and arrives whole,
/// and so does the server's larger answer; with DF the client is told the path MTU (ICMP
/// "fragmentation needed") instead of its packet vanishing.
#[test]
fn mss_clamped_and_oversized_packets_fragmented_or_answered() {
    use std::os::fd::AsRawFd;
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('m'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 10, 25)])],
    );
    let client = lab.client(0);

    // MSS: a plain listener in the server namespace, so the test holds the accepted socket.
    let l = sys::in_ns(&lab.t.server, || {
        std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], 7010)))
    })
    .unwrap();
    let c = connect(
        &client,
        SocketAddr::from((topo::SERVER_ADDR, 7010)),
        None,
        Duration::from_secs(5),
    )
    .expect("connect through the tunnel");
    let (s, from) = l.accept().unwrap();
    let (mss_client, mss_server) = (
        sockopt_int(c.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MAXSEG),
        sockopt_int(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    );
    println!(
        "TCP MSS in use: client {mss_client}, server {mss_server} (unclamped on these 1500-byte \
         networks: 1448 with timestamps); server saw {from}"
    );
    assert_eq!(from.ip(), IpAddr::V4(CORE_SEEN));
    assert!(
        mss_client <= 1360 && mss_server <= 1360,
        "SYNs not clamped to the 1400-byte tunnel: client {mss_client}, server {mss_server}"
    );
    drop((c, s, l));

    // UDP, 1472 bytes of payload = a 1500-byte IP packet, larger than the tunnel's 1400.
    let server = Server::start(&lab.t.server, 7011);
    let u = sys::in_ns(&client, || {
        std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
    })
    .unwrap();
    u.connect(server.addr()).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    set_pmtudisc(&u, libc::IP_PMTUDISC_DONT);
    let mut whole = 0;
    for i in 0..10u8 {
        let msg = vec![i; 1472];
        u.send(&msg).unwrap();
        let mut b = [0u8; 4096];
        if let Ok(n) = u.recv(&mut b) {
            let t = &b[..n];
            let bar = t.iter().position(|&x| x == b'|').expect("answer format");
            assert_eq!(&t[bar + 1..], &msg[..], "datagram {i} came back altered");
            whole += 1;
        }
    }
    println!("UDP 1472-byte datagrams without DF: {whole}/10 answered whole (answers 1494 bytes)");
    assert!(whole >= 9, "only {whole} of 10 oversized datagrams made it");

    // With DF: the first one is refused by the router with "fragmentation needed", which the
    // client's kernel turns into a lower path MTU for the server.
    let d = sys::in_ns(&client, || {
        std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
    })
    .unwrap();
    d.connect(server.addr()).unwrap();
    set_pmtudisc(&d, libc::IP_PMTUDISC_DO);
    let first = d.send(&[7u8; 1472]);
    let t = Instant::now();
    let mut mtu = sockopt_int(d.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU);
    while mtu > 1400 && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        let _ = d.send(&[7u8; 1472]);
        mtu = sockopt_int(d.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU);
    }
    let again = d.send(&[7u8; 1472]);
    println!(
        "UDP 1472 bytes with DF: first send {first:?}; path MTU learnt {mtu} after {:.0} ms; \
         next send {again:?}",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert!(
        mtu <= 1400,
        "the client never learnt the tunnel's MTU: {mtu}"
    );
    assert_eq!(
        again.err().and_then(|e| e.raw_os_error()),
        Some(libc::EMSGSIZE),
        "a too-big DF datagram must be refused locally once the path MTU is known"
    );
}

/// A link over TCP (for networks that block UDP) beside a UDP link: the session comes up over
/// both and a download is carried intact, partly over the TCP link.
#[test]
fn tcp_transport_link_carries_traffic() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('p'),
        vec![edge_spec(vec![link("wan0", 10, 15), link("wan1", 10, 15)])],
    );
    let conf =
        lab.edge_conf(0)
            .uci()
            .replacen("option transport 'udp'", "option transport 'tcp'", 1);
    assert!(conf.contains("transport 'tcp'"));
    std::fs::write(lab.edge_config(0), conf).unwrap();
    lab.start_bonded();
    let client = lab.client(0);
    let server = Server::start(&lab.t.server, 7012);
    let t = Instant::now();
    loop {
        let st = lab.edge(0).status().unwrap();
        if st.sessions[0].links.iter().all(|l| l.state == "up") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "links: {:?}",
            st.sessions[0].links
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = lab.edge(0).status().unwrap();
    const LEN: u64 = 4_000_000;
    let dn = download(&client, server.addr(), LEN, Duration::from_secs(30)).expect("download");
    let after = lab.edge(0).status().unwrap();
    let rx = |s: &braid::control::Status, i: usize| s.sessions[0].links[i].rx_bytes;
    let (tcp_rx, udp_rx) = (
        rx(&after, 0) - rx(&before, 0),
        rx(&after, 1) - rx(&before, 1),
    );
    println!(
        "download {LEN} B over wan0 (tcp) + wan1 (udp): {} B intact in {:?} ({:.1} Mbit/s); \
         wan0 received {tcp_rx} B, wan1 {udp_rx} B",
        dn.good,
        dn.took,
        mbit(dn.bytes, dn.took)
    );
    assert_eq!((dn.bytes, dn.good), (LEN, LEN));
    assert!(
        tcp_rx > LEN / 5,
        "the TCP link carried too little of the download: {tcp_rx} B"
    );
    assert!(
        dn.bytes as f64 * 8.0 / dn.took.as_secs_f64() > 10e6,
        "no faster than one link"
    );
}

/// A WAN interface going down (a modem dropping off) and coming back with its routes (as netifd
/// restores them): the edge marks the link down and keeps the session and the download going on
/// the other link, then uses the link again, all without a session restart.
#[test]
fn wan_interface_down_and_up_without_session_restart() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('i'),
        vec![edge_spec(vec![link("wan0", 12, 15), link("wan1", 12, 15)])],
    );
    let client = lab.client(0);
    let server = lab.reached_server(0, 7013);
    let since = |s: &braid::control::Status| s.sessions[0].clone();
    let s0 = since(&lab.edge(0).status().unwrap());

    let ns = lab.t.edges[0].ns.clone();
    let dev = lab.t.edges[0].wan_dev[0].clone();
    let socket = lab.edge(0).socket.clone();
    let ctl = std::thread::spawn(move || {
        let state = || first_link_state(&socket);
        std::thread::sleep(Duration::from_millis(1500));
        ip(&ns, &["link", "set", &dev, "down"]);
        let t = Instant::now();
        let mut down_state = state();
        while down_state == "up" && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
            down_state = state();
        }
        let noticed = t.elapsed();
        std::thread::sleep(Duration::from_millis(1500));
        ip(&ns, &["link", "set", &dev, "up"]);
        let g = topo::core_wan_addr(0, 0).to_string();
        let table = topo::wan_table(0).to_string();
        ip(
            &ns,
            &[
                "route", "replace", "default", "via", &g, "dev", &dev, "table", &table,
            ],
        );
        ip(
            &ns,
            &["route", "replace", "default", "via", &g, "dev", &dev],
        );
        let t = Instant::now();
        let mut up_state = state();
        while up_state != "up" && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            up_state = state();
        }
        (down_state, noticed, up_state, t.elapsed())
    });
    let dn = stream_down(&client, server.addr(), Duration::from_secs(6));
    let (down_state, noticed, up_state, back) = ctl.join().unwrap();
    let dn = dn.unwrap_or_else(|e| panic!("download across the interface going down failed: {e}"));
    std::thread::sleep(Duration::from_millis(1000));
    let s1 = since(&lab.edge(0).status().unwrap());
    let tx0 = |s: &braid::control::SessionStatus| s.links[0].tx_bytes;
    println!(
        "{} down at 1.5 s of a 6 s download: link state '{down_state}' after {:.0} ms; up again \
         '{up_state}' {:.0} ms after the interface came back; {} B intact ({:.2} Mbit/s), longest \
         gap {:.0} ms at {:.2} s; session {} -> {}",
        lab.t.edges[0].wan_dev[0],
        noticed.as_secs_f64() * 1e3,
        back.as_secs_f64() * 1e3,
        dn.good,
        mbit(dn.bytes, dn.took),
        dn.max_gap.as_secs_f64() * 1e3,
        dn.gap_at.as_secs_f64(),
        s0.state,
        s1.state
    );
    assert_ne!(
        down_state, "up",
        "the edge never noticed the interface going down"
    );
    assert_eq!(
        up_state, "up",
        "wan0 did not come back after its interface did"
    );
    assert_eq!(dn.good, dn.bytes, "download: bytes corrupted");
    assert!(
        dn.max_gap < Duration::from_secs(2),
        "the download stalled {:.1} s",
        dn.max_gap.as_secs_f64()
    );
    assert_eq!(s1.state, "established");
    assert!(
        s1.rx_packets >= s0.rx_packets && s1.established_s >= s0.established_s + 5,
        "the session was rebuilt: established {} s -> {} s ago, {} -> {} packets received",
        s0.established_s,
        s1.established_s,
        s0.rx_packets,
        s1.rx_packets
    );
    // The core kept its session too (its age counts from the handshake).
    let core = lab.core.as_ref().unwrap().status().unwrap();
    println!(
        "core: session established {} s ago",
        core.sessions[0].established_s
    );
    assert!(
        core.sessions[0].established_s >= 5,
        "the core's session is {} s old: rebuilt during the test",
        core.sessions[0].established_s
    );
    // wan0 is used again: it sends more after coming back.
    let before = tx0(&s1);
    let _ = download(&client, server.addr(), 1_000_000, Duration::from_secs(20)).expect("download");
    let s2 = since(&lab.edge(0).status().unwrap());
    println!(
        "wan0 sent {} B during a 1 MB download after it came back",
        tx0(&s2) - before
    );
    assert!(tx0(&s2) - before > 10_000, "wan0 unused after coming back");
}
