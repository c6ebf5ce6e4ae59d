//! Bad input, end to end with the built `braid` binary in the lab's namespaces: each mistake
//! gives a clear message and leaves the router's networking as it was (interfaces, rules,
//! routes of every table, permanent neighbours, nftables), and clients keep the plain WAN.
//! Needs root and iproute2; a SKIP line otherwise.
//!
//! - a config whose only link names a missing interface: the edge waits for it (a router boots
//!   before its modems), naming it with the config's file:line in its status and its log,
//!   steers nothing meanwhile and leaves nothing behind when stopped; with one good link beside
//!   it, the edge runs on the good one and warns about the other;
//! - a core that is unreachable, and an edge whose key the core does not list: the edge keeps
//!   trying without ever steering (clients use the plain WAN), says so after 10 s, and the core
//!   says why it refuses the handshake.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use braid::lab::topo;
use support::*;

fn plain(e: usize) -> IpAddr {
    IpAddr::V4(topo::edge_wan_addr(e, 0))
}

#[test]
fn missing_interface() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('m'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 20, 10)])],
    );
    let ns = lab.t.edges[0].ns.clone();
    let client = lab.client(0);
    let server = Server::start(&lab.t.server, 7030);
    let before = snapshot(&ns);

    // Only a missing interface: the edge waits for it and says so; clients keep the plain WAN.
    let mut c = lab.edge_conf(0);
    c.devices = vec!["blnosuch0".into()];
    lab.write_edge_config(0, &c);
    lab.start_core();
    lab.start_edge(0);
    let waiting = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
        let st = lab.edge(0).status().ok()?;
        let l = link_of(&st, "wan0")?;
        (l.state == "waiting").then(|| l.waiting.clone().unwrap_or_default())
    });
    let log = lab.edge(0).log_text();
    println!(
        "only a missing interface: waiting: {waiting:?}; log: {}",
        log.trim()
    );
    let waiting = waiting.unwrap_or_else(|| panic!("the link must be waiting: {log}"));
    let at = format!("{}:", lab.edge_config(0).display());
    assert!(
        waiting.contains("'blnosuch0'") && waiting.contains(&at),
        "the status must name the device and the config's file:line: {waiting}"
    );
    assert!(
        log.contains("blnosuch0") && log.contains(&at),
        "the log must name the device and the config's file:line: {log}"
    );
    assert!(lab.edge_mut(0).exited().is_none(), "exited: {log}");
    assert!(!steering_installed(&ns), "nothing steered while waiting");
    let seen = seen_by_server(&client, server.addr(), Duration::from_secs(3)).unwrap();
    assert_eq!(seen.ip(), plain(0), "the client keeps the plain WAN");
    let st = lab.edge_mut(0).term();
    assert!(st.is_some_and(|s| s.success()), "SIGTERM: exit {st:?}");
    assert_eq!(diff(&before, &snapshot(&ns)), Vec::<String>::new());

    // A missing interface beside a good one: it runs on the good one and names the other.
    let mut c = lab.edge_conf(0);
    c.devices = vec!["bl-wan0".into(), "blnosuch1".into()];
    lab.write_edge_config(0, &c);
    lab.start_edge(0);
    lab.wait_bonded(0, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen_by_server(&client, server.addr(), Duration::from_secs(3)).unwrap();
    assert_eq!(
        seen.ip(),
        IpAddr::V4(CORE_SEEN),
        "bonded over the good link"
    );
    let status = lab.edge(0).status().unwrap();
    let states: Vec<(String, String)> = status.sessions[0]
        .links
        .iter()
        .map(|l| (l.name.clone(), l.state.clone()))
        .collect();
    let log = lab.edge(0).log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("blnosuch1"))
        .unwrap_or("")
        .to_string();
    println!("one good, one missing: links {states:?}; warning: {warning}");
    assert!(
        warning.contains("warn"),
        "the missing device must be named in a warning: {log}"
    );
    assert_eq!(states[0].1, "up");
    assert_ne!(states[1].1, "up");
    let st = lab.edge_mut(0).term();
    assert!(st.is_some_and(|s| s.success()), "SIGTERM: exit {st:?}");
    assert_eq!(diff(&before, &snapshot(&ns)), Vec::<String>::new());
}

#[test]
fn unreachable_core_and_unlisted_key() {
    let Some(_lab) = needs_lab() else { return };
    // Edge 0 points at an address nobody answers; edge 1's key is not in the core's peers.
    let mut lab = Lab::new(
        &tag('u'),
        vec![
            edge_spec(vec![link("wan0", 20, 10)]),
            edge_spec(vec![link("wan0", 20, 10)]),
        ],
    );
    let stranger = keypair().1;
    lab.write_core_config(&[stranger]);
    let mut c0 = lab.edge_conf(0);
    c0.core_host = "192.0.2.1".into();
    lab.write_edge_config(0, &c0);
    let server = Server::start(&lab.t.server, 7031);
    let ns: Vec<String> = (0..2).map(|e| lab.t.edges[e].ns.clone()).collect();
    let before: Vec<NetState> = ns.iter().map(|n| snapshot(n)).collect();
    lab.start_core();
    lab.start_edge(0);
    lab.start_edge(1);

    // For 11 s (the edge reports an unanswered handshake after 10 s): never any steering, and
    // clients reach the server over the plain WAN.
    let t = Instant::now();
    let mut checks = 0;
    while t.elapsed() < Duration::from_secs(11) {
        for (e, edge_ns) in ns.iter().enumerate() {
            let fp = braid_footprint(edge_ns);
            assert!(
                fp.iter()
                    .all(|s| !s.starts_with("rule ") && !s.contains("table 25202")),
                "edge {e} steers without a session: {fp:?}"
            );
            let seen = seen_by_server(&lab.client(e), server.addr(), Duration::from_secs(2))
                .unwrap_or_else(|err| panic!("client of edge {e} cannot reach the server: {err}"));
            assert_eq!(
                seen.ip(),
                plain(e),
                "client of edge {e} must use the plain WAN"
            );
            let d = lab.edge_mut(e);
            assert!(d.exited().is_none(), "edge {e} exited: {}", d.log_text());
        }
        checks += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    let logs: Vec<String> = (0..2).map(|e| lab.edge(e).log_text()).collect();
    let core_log = lab.core.as_ref().unwrap().log_text();
    let status1 = lab.edge(1).status().unwrap();
    let core_status = lab.core.as_ref().unwrap().status().unwrap();
    let line = |log: &str, pat: &str| {
        log.lines()
            .find(|l| l.contains(pat))
            .unwrap_or("")
            .to_string()
    };
    println!("{checks} checks over 11 s: no steering, both clients on the plain WAN");
    println!(
        "unreachable core, edge says: {}",
        line(&logs[0], "no answer")
    );
    println!("unlisted key, edge says: {}", line(&logs[1], "no answer"));
    println!("unlisted key, core says: {}", line(&core_log, "refused"));
    println!(
        "core counters: {:?}",
        core_status
            .drops
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| format!("{} {}", c.reason, c.count))
            .collect::<Vec<_>>()
    );
    assert!(
        logs[0].contains("no answer from core 192.0.2.1"),
        "edge 0 must say the core does not answer: {}",
        logs[0]
    );
    assert!(
        logs[1].contains("no answer from core") && logs[1].contains("public key"),
        "edge 1 must say the core does not answer and hint at the key: {}",
        logs[1]
    );
    assert!(
        line(&core_log, "refused").contains("config peer"),
        "the core must say the key is not listed: {core_log}"
    );
    assert_eq!(status1.sessions[0].state, "handshaking");
    assert!(
        core_status.sessions.is_empty(),
        "the core must not accept the unlisted key"
    );

    for e in 0..2 {
        let st = lab.edge_mut(e).term();
        assert!(
            st.is_some_and(|s| s.success()),
            "edge {e} SIGTERM: exit {st:?}"
        );
        assert_eq!(
            diff(&before[e], &snapshot(&ns[e])),
            Vec::<String>::new(),
            "edge {e} left something behind"
        );
    }
}
