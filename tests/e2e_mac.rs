//! `src_mac` policies end to end: `braid edge` and `braid core` (the built binary) in the lab's
//! namespaces with two clients on the edge's LAN. The edge captures from its hub, where every
//! frame carries the router's MAC, so it resolves the policy's MAC to the client's address from
//! the router's neighbour table (rtnetlink) and classifies by address. Measured from
//! `braid status --json`: client 0 (its MAC in the policy) has its UDP packets counted in class
//! `crew`, client 1's go to `default`; after a reload that names client 1's MAC instead, the
//! roles swap.
//! Needs root and iproute2; a SKIP line otherwise.
//! Namespaces: `bln<pid>-*` (tag 'n'), apart from the lab's default `bl-*` and other tests' tags.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use braid::control::Status;
use braid::lab::sys;
use support::*;

const PORT: u16 = 7031;
/// UDP datagrams each client sends per measurement.
const N: u64 = 300;

fn class_packets(st: &Status, name: &str) -> u64 {
    st.sessions
        .first()
        .and_then(|s| s.classes.iter().find(|c| c.name == name))
        .map_or(0, |c| c.packets)
}

/// The MAC of `dev` in namespace `ns` (`ip -o link show`).
fn mac_of(ns: &str, dev: &str) -> String {
    let out = ip(ns, &["-o", "link", "show", dev]);
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == "link/ether" {
            return it.next().unwrap_or_default().to_string();
        }
    }
    panic!("no MAC for {dev} in {ns}: {out}");
}

/// Sends `n` UDP datagrams from `ns` to `to`, 1 ms apart; the answers received.
fn udp_burst(ns: &str, to: SocketAddr, n: u64) -> u64 {
    let s = sys::in_ns(ns, || UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))).unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut got = 0;
    let mut buf = [0u8; 256];
    for i in 0..n {
        let _ = s.send(format!("mac-test {i}").as_bytes());
        while s.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    while s.recv(&mut buf).is_ok() {
        got += 1;
    }
    got
}

/// (crew, default) packets counted while `ns` sent a burst.
fn measure(lab: &Lab, ns: &str, server: SocketAddr) -> (u64, u64, u64) {
    let a = lab.edge(0).status().unwrap();
    let answered = udp_burst(ns, server, N);
    let b = lab.edge(0).status().unwrap();
    (
        class_packets(&b, "crew") - class_packets(&a, "crew"),
        class_packets(&b, "default") - class_packets(&a, "default"),
        answered,
    )
}

fn policy(mac: &str) -> String {
    format!(
        "config policy 'crew'\n\tlist src_mac '{mac}'\n\toption class 'crew'\n\
         \toption priority '3'\n\n"
    )
}

#[test]
fn src_mac_policy_classifies_by_the_clients_address() {
    let Some(_lab) = needs_lab() else { return };
    let mut spec = edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 10)]);
    spec.clients = 2;
    let mut lab = Lab::new(&tag('n'), vec![spec]);
    let (c0, c1) = (
        lab.t.edges[0].clients[0].clone(),
        lab.t.edges[0].clients[1].clone(),
    );
    let (mac0, mac1) = (mac_of(&c0, "bl-eth0"), mac_of(&c1, "bl-eth0"));
    let base = lab.edge_conf(0).uci();
    std::fs::write(lab.edge_config(0), base.clone() + &policy(&mac0)).unwrap();
    lab.start_bonded();
    let server = Server::start(&lab.t.server, PORT);
    // Both clients talk once (the router learns their MACs as any router does), then the edge
    // has read its neighbour table within a few seconds.
    seen_by_server(&c0, server.addr(), Duration::from_secs(3)).unwrap();
    seen_by_server(&c1, server.addr(), Duration::from_secs(3)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let to = SocketAddr::from((server.addr().ip(), PORT));

    let (crew0, def0, ans0) = measure(&lab, &c0, to);
    let (crew1, def1, ans1) = measure(&lab, &c1, to);
    println!("src_mac policy naming client 0 ({mac0}); {N} UDP datagrams from each client:");
    println!("  client 0: {crew0} counted in 'crew', {def0} in 'default' ({ans0} answered)");
    println!(
        "  client 1 ({mac1}): {crew1} counted in 'crew', {def1} in 'default' ({ans1} answered)"
    );

    // Reload with the policy naming client 1 instead.
    std::fs::write(lab.edge_config(0), base + &policy(&mac1)).unwrap();
    lab.edge(0)
        .reload()
        .unwrap_or_else(|e| panic!("reload: {e}"));
    let (crew0r, def0r, _) = measure(&lab, &c0, to);
    let (crew1r, def1r, _) = measure(&lab, &c1, to);
    println!("  after a reload naming client 1: client 0 {crew0r} crew / {def0r} default, client 1 {crew1r} crew / {def1r} default");

    assert!(
        ans0 >= N * 9 / 10 && ans1 >= N * 9 / 10,
        "answers {ans0} {ans1}"
    );
    assert!(
        crew0 >= N && def0 == 0,
        "client 0: crew {crew0}, default {def0}"
    );
    assert!(
        crew1 == 0 && def1 >= N,
        "client 1: crew {crew1}, default {def1}"
    );
    assert!(
        crew0r == 0 && def0r >= N,
        "after reload, client 0: crew {crew0r}, default {def0r}"
    );
    assert!(
        crew1r >= N && def1r == 0,
        "after reload, client 1: crew {crew1r}, default {def1r}"
    );
}
