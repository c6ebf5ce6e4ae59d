//! Offloads on, as on real routers and cloud servers: through `braid edge` and `braid core`
//! with GRO on the edge's LAN device and on the core's internet device (veth has it off by
//! default; a router's LAN NIC and a cloud VM's virtio NIC have it on), on top of the kernel's
//! default offloads that the whole lab keeps (checksum offload, TSO/GSO on the clients', the
//! LAN's, the server's and the core's internet devices). Needs root and iproute2.
//!
//! The client and the server send wire-sized TCP segments here (TSO off, checksum offload on):
//! what reaches the hubs as aggregates was merged by GRO, with checksums left partial. The test
//! checks that such aggregates did cross both hubs (frames longer than the 1400-byte MTU on the
//! hubs' host ends), that each daemon wrote runs of one TCP flow into its hub as aggregates
//! (`daemon::HubWriter`), then that bulk TCP both ways arrives intact, that UDP datagrams of every
//! size up to 16 KB (IP-fragmented beyond the MTU) come back whole, and that neither daemon
//! dropped anything for an offload.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::lab::sys;
use support::*;

/// Sets the features of `dev` in namespace `ns` that `want` names, and checks they took.
fn features(ns: &str, dev: &str, want: fn(&str) -> Option<bool>) {
    let f = sys::in_ns(ns, || {
        braid::os::ethtool::set_features(dev, &want)?;
        braid::os::ethtool::features(dev).map_err(std::io::Error::from)
    })
    .unwrap_or_else(|e| panic!("features of {dev} in {ns}: {e}"));
    let named: Vec<&str> = ["rx-gro", "tx-tcp-segmentation", "tx-checksum-ip-generic"]
        .into_iter()
        .filter(|n| want(n).is_some())
        .collect();
    assert!(!named.is_empty());
    for n in named {
        assert_eq!(f.get(n), want(n), "{n} of {dev} in {ns}");
    }
}

/// GRO on.
fn gro(n: &str) -> Option<bool> {
    (n == "rx-gro").then_some(true)
}

/// Wire-sized TCP segments with partial checksums, as a NIC without TSO gets them: every TCP
/// segmentation offload off (veth merges nothing from a peer that has any), checksum offload
/// on.
fn wire_sized(n: &str) -> Option<bool> {
    if n.contains("tcp") && n.contains("segmentation") {
        Some(false)
    } else {
        (n == "tx-checksum-ip-generic").then_some(true)
    }
}

/// IPv4 frames a hub's host end sent into the hub that are longer than its MTU (aggregates).
fn aggregates(frames: &[Frame]) -> usize {
    frames
        .iter()
        .filter(|f| f.outgoing)
        .filter_map(|f| f.ipv4())
        .filter(|ip| usize::from(u16::from_be_bytes([ip[2], ip[3]])) > 1400)
        .count()
}

/// IPv4 frames a daemon wrote into its hub that are longer than the MTU: runs of one TCP flow
/// it merged into one aggregate for the kernel to segment (`daemon::HubWriter`).
fn merged(frames: &[Frame]) -> usize {
    frames
        .iter()
        .filter(|f| !f.outgoing)
        .filter_map(|f| f.ipv4())
        .filter(|ip| usize::from(u16::from_be_bytes([ip[2], ip[3]])) > 1400)
        .count()
}

fn offload_drops(d: &Daemon) -> Vec<String> {
    d.status()
        .map(|s| {
            s.drops
                .iter()
                .filter(|c| c.reason.contains("offload") || c.reason.contains("capture slot"))
                .map(|c| format!("{} x{}", c.reason, c.count))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn gro_on_lan_and_internet_devices_tcp_and_udp_both_ways() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('o'),
        vec![edge_spec(vec![link("wan0", 40, 5), link("wan1", 30, 10)])],
    );
    let (edge_ns, core_ns) = (lab.t.edges[0].ns.clone(), lab.t.core.clone());
    let (client, server_ns) = (lab.client(0), lab.t.server.clone());
    features(&edge_ns, "bl-lan0", gro);
    features(&core_ns, "bl-srv0", gro);
    features(&client, "bl-eth0", wire_sized);
    features(&server_ns, "bl-eth0", wire_sized);
    lab.start_bonded();

    let edge_hub = Capture::start(&edge_ns, "bl-hub-hub").unwrap();
    let core_hub = Capture::start(&core_ns, "bl-hubc-hub").unwrap();
    let server = lab.reached_server(0, 7300);

    // Bulk TCP: two downloads and an upload at once for 4 s, every byte checked.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = two_down_one_up(&client, server.addr(), &stop);
    std::thread::sleep(Duration::from_secs(4));
    let moved = moved(&flows);
    let results = finish_flows(&stop, flows);
    for (what, r) in &results {
        println!("{what}: {r:?}");
    }
    println!("bytes moved (down, down, up): {moved:?}");
    assert!(
        results.iter().all(|(_, r)| r.is_ok()),
        "a TCP flow failed: {results:?}"
    );
    assert!(
        moved.iter().all(|&m| m > 1_000_000),
        "a TCP flow moved less than 1 MB in 4 s: {moved:?}"
    );

    // UDP both ways: the server answers each datagram with `<peer>|<payload>`. Sizes up to
    // 16 KB, without DF so that the client's stack and the router fragment what is too big.
    let u = sys::in_ns(&client, || {
        std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
    })
    .unwrap();
    u.connect(server.addr()).unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    set_pmtudisc_dont(&u);
    let mut missing = Vec::new();
    for (i, size) in [32usize, 1000, 1372, 1472, 3000, 8000, 16000]
        .into_iter()
        .enumerate()
    {
        let msg: Vec<u8> = (0..size).map(|k| pattern((k + i) as u64)).collect();
        let t = Instant::now();
        let mut ok = false;
        for _ in 0..3 {
            u.send(&msg).unwrap();
            let mut b = vec![0u8; 65536];
            while let Ok(n) = u.recv(&mut b) {
                let r = &b[..n];
                let bar = r.iter().position(|&x| x == b'|').expect("answer format");
                if r[bar + 1..] == msg[..] {
                    ok = true;
                    break;
                }
            }
            if ok {
                break;
            }
        }
        println!(
            "UDP {size} B: {} after {:.0} ms",
            if ok { "answered whole" } else { "lost" },
            t.elapsed().as_secs_f64() * 1e3
        );
        if !ok {
            missing.push(size);
        }
    }

    let (edge_frames, core_frames) = (edge_hub.finish(), core_hub.finish());
    let (up_aggr, down_aggr) = (aggregates(&edge_frames), aggregates(&core_frames));
    println!(
        "aggregates into the edge's hub: {up_aggr} of {} frames; into the core's hub: \
         {down_aggr} of {}",
        edge_frames.len(),
        core_frames.len()
    );
    let (down_merged, up_merged) = (merged(&edge_frames), merged(&core_frames));
    println!(
        "aggregates the daemons wrote: the edge {down_merged} (to clients), the core {up_merged} \
         (to servers)"
    );
    let drops = (
        offload_drops(lab.edge(0)),
        offload_drops(lab.core.as_ref().unwrap()),
    );
    println!("offload drops (edge, core): {drops:?}");
    assert!(
        missing.is_empty(),
        "UDP datagrams of {missing:?} B never came back whole"
    );
    assert!(
        up_aggr > 0 && down_aggr > 0,
        "no GRO aggregate reached a hub (edge {up_aggr}, core {down_aggr}): the test proves nothing"
    );
    assert!(
        down_merged > 0 && up_merged > 0,
        "a daemon wrote no run of a TCP flow as one aggregate (edge {down_merged}, core \
         {up_merged})"
    );
    assert!(
        drops.0.is_empty() && drops.1.is_empty(),
        "packets dropped for their offloads: {drops:?}"
    );
}

fn set_pmtudisc_dont(s: &std::net::UdpSocket) {
    braid::os::setsockopt(
        s,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    )
    .expect("IP_MTU_DISCOVER");
}
