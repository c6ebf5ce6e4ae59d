//! Live reload end to end: `braid edge` and `braid core` (the built binary) in the lab's
//! namespaces, client - edge - two emulated links - core - server, with TCP flows running both
//! ways. The edge's UCI file is rewritten to make link 2 (`wan1`) a `backup` link and to add a
//! `config policy` giving the flows' server port a class of its own, then `braid reload` is run.
//! Measured: every flow keeps transferring after the reload (no reset, every byte intact), wan1's
//! transmitted bytes (edge: upstream, core: downstream) stop growing beyond probes while wan0
//! keeps carrying, and the new class shows in `braid status` and counts the flows' packets.
//! Needs root and iproute2; a SKIP line otherwise. `RELOAD_ONLY=role` or
//! `RELOAD_ONLY=policy` applies only one of the two changes (to tell them apart when debugging;
//! the checks of the change left out then fail, as they should).

mod support;

use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::control::Status;
use support::*;

/// The port the server listens on, which the added policy matches.
const PORT: u16 = 7011;

// History: before main's 592827b (link estimates no longer ratchet down) this failed in 6 of
// 11 runs: the edge's wan0 estimate had collapsed to probe rate (pacing ~97 kbit/s) while wan1
// carried the load, and once wan1 turned backup the flows moved 0-24 kB each per 5 s (no reset).
// With it: 5 of 5 runs pass, wan0 carries 2.5-3.8 MB up and 5.8-6.2 MB down per 5 s, wan1
// 11-13 kB (probes).
#[test]
fn reload_role_and_policy_under_tcp_load() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('r'),
        vec![edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 10)])],
    );
    let client = lab.client(0);
    let server = lab.reached_server(0, PORT);

    // Three long flows: two downloads, one upload.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = two_down_one_up(&client, server.addr(), &stop);
    std::thread::sleep(Duration::from_secs(3));
    let (edge, core) = (lab.edge(0), lab.core.as_ref().unwrap());
    let (e0, c0) = (edge.status().unwrap(), core.status().unwrap());

    // The new config: wan1 backup, and a policy for the server's port.
    let uci = lab.edge_conf(0).uci().replace(
        "config link 'wan1'\n",
        "config link 'wan1'\n\toption role 'backup'\n",
    ) + &format!(
        "config policy 'bulk'\n\toption proto 'tcp'\n\tlist dest_port '{PORT}'\n\
             \toption class 'bulk'\n\toption priority '5'\n\n"
    );
    let uci = match std::env::var("RELOAD_ONLY").as_deref() {
        Ok("role") => uci.split("config policy").next().unwrap().to_string(),
        Ok("policy") => uci.replace("\toption role 'backup'\n", ""),
        _ => uci,
    };
    let tmp = lab.dir.join("edge0.uci.new");
    std::fs::write(&tmp, &uci).unwrap();
    std::fs::rename(&tmp, lab.edge_config(0)).unwrap();
    let moved_at_reload = moved(&flows);
    let out = Command::new(BRAID)
        .args(["reload", "--socket"])
        .arg(&edge.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "braid reload failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let t_reload = Instant::now();

    // Let packets in flight and queues on wan1 drain, then measure a window.
    std::thread::sleep(Duration::from_secs(1));
    let (e1, c1) = (edge.status().unwrap(), core.status().unwrap());
    let moved_1 = moved(&flows);
    const WINDOW: Duration = Duration::from_secs(5);
    std::thread::sleep(WINDOW);
    let (e2, c2) = (edge.status().unwrap(), core.status().unwrap());
    let moved_2 = moved(&flows);
    let results = finish_flows(&stop, flows);
    let took = t_reload.elapsed();

    // Figures.
    let secs = |d: Duration| d.as_secs_f64();
    println!("reload under load (3 TCP flows, two 10 Mbit/s 10 ms links):");
    for (i, (what, r)) in results.iter().enumerate() {
        println!(
            "  {what}: {} B before the reload, {} B in the {:.0} s window after it; {}",
            moved_at_reload[i],
            moved_2[i] - moved_1[i],
            secs(WINDOW),
            match r {
                Ok(s) => s.clone(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
    }
    let c_before = core_tx(&c0);
    let (c_1, c_2) = (core_tx(&c1), core_tx(&c2));
    assert_eq!(c_2.len(), 2, "core links: {:?}", c2.sessions);
    let edge_rates = |a: &Status, b: &Status| {
        [
            link_tx(b, "wan0") - link_tx(a, "wan0"),
            link_tx(b, "wan1") - link_tx(a, "wan1"),
        ]
    };
    let edge_before = edge_rates(&e0, &e1);
    let edge_after = edge_rates(&e1, &e2);
    let core_after = [c_2[0] - c_1[0], c_2[1] - c_1[1]];
    println!(
        "  edge sent before the reload (3 s of load): wan0 {} B, wan1 {} B",
        link_tx(&e0, "wan0"),
        link_tx(&e0, "wan1")
    );
    println!("  core sent before the reload: {c_before:?} B");
    println!(
        "  reload + 1 s drain: edge sent wan0 {} B, wan1 {} B",
        edge_before[0], edge_before[1]
    );
    println!(
        "  window of {:.0} s after: edge sent wan0 {} B, wan1 {} B; core sent wan0 {} B, wan1 {} B",
        secs(WINDOW),
        edge_after[0],
        edge_after[1],
        core_after[0],
        core_after[1]
    );
    let roles: Vec<String> = e2.sessions[0]
        .links
        .iter()
        .map(|l| format!("{} {} {}", l.name, l.state, l.role))
        .collect();
    let classes: Vec<String> = e2.sessions[0]
        .classes
        .iter()
        .map(|c| {
            format!(
                "{} {} prio {} {} pkts",
                c.name, c.mode, c.priority, c.packets
            )
        })
        .collect();
    println!("  edge links after: {roles:?}; classes: {classes:?}");
    for (when, st) in [
        ("edge before", &e0),
        ("edge after", &e2),
        ("core before", &c0),
        ("core after", &c2),
    ] {
        for l in &st.sessions[0].links {
            println!(
                "  {when}: {} {} {} rtt {:.1} ms loss {:.1}% pacing {} bit/s tx {} bit/s",
                l.name, l.state, l.role, l.rtt_ms, l.loss_pct, l.pacing_bps, l.tx_bps
            );
        }
    }
    for (who, st) in [("edge", &e2), ("core", &c2)] {
        let d: Vec<String> = st
            .drops
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| format!("{} {}", c.reason, c.count))
            .collect();
        println!("  {who} drops: {d:?}");
    }
    println!("  test time after the reload: {:.1} s", secs(took));

    // No flow dropped, each kept transferring after the reload.
    for (what, r) in &results {
        assert!(r.is_ok(), "{what} broke across the reload: {r:?}");
    }
    for (i, (what, _)) in results.iter().enumerate() {
        assert!(
            moved_2[i] - moved_1[i] > 100_000,
            "{what} moved only {} B in the window after the reload",
            moved_2[i] - moved_1[i]
        );
    }
    // Before the reload both links carried (so the change is what stopped wan1).
    assert!(
        link_tx(&e0, "wan1") > 100_000 && c_before[1] > 100_000,
        "wan1 carried little before the reload: edge {} B, core {} B",
        link_tx(&e0, "wan1"),
        c_before[1]
    );
    // After it wan0 carries, wan1 only probes: at most 5% of wan0's bytes, each direction.
    assert!(
        edge_after[0] > 500_000 && core_after[0] > 1_000_000,
        "wan0 stopped carrying: {edge_after:?} {core_after:?}"
    );
    assert!(
        edge_after[1] * 20 <= edge_after[0],
        "upstream: wan1 (backup) sent {} B while wan0 sent {} B",
        edge_after[1],
        edge_after[0]
    );
    assert!(
        core_after[1] * 20 <= core_after[0],
        "downstream: the core sent {} B on wan1 (backup) while {} B on wan0",
        core_after[1],
        core_after[0]
    );
    // The role and the class show, and the class counts the flows' packets.
    let wan1 = e2.sessions[0].links.iter().find(|l| l.name == "wan1");
    assert_eq!(wan1.map(|l| l.role.as_str()), Some("backup"), "{roles:?}");
    let bulk = e2.sessions[0].classes.iter().find(|c| c.name == "bulk");
    let bulk_before = e1.sessions[0]
        .classes
        .iter()
        .find(|c| c.name == "bulk")
        .map_or(0, |c| c.packets);
    let bulk = bulk.unwrap_or_else(|| panic!("class 'bulk' missing from status: {classes:?}"));
    assert_eq!(bulk.priority, 5, "{classes:?}");
    assert!(
        bulk.packets > bulk_before + 100,
        "class 'bulk' counted {} packets in the window",
        bulk.packets - bulk_before
    );
    assert!(edge.log_text().contains("reload applied"));
}

/// A reload that removes the first of two links while TCP flows run: the flows carry on over
/// the remaining link. (Before the edge looked its links up by id, datagrams for link id 1 were
/// looked up at index 1 of what had become a one-link list, and every one was dropped.)
#[test]
fn reload_removing_a_link_keeps_flows_on_the_others() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('v'),
        vec![edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 10)])],
    );
    let client = lab.client(0);
    let server = lab.reached_server(0, PORT);
    let stop = Arc::new(AtomicBool::new(false));
    let flows = vec![
        down_flow(&client, server.addr(), stop.clone(), "download"),
        up_flow(&client, server.addr(), stop.clone(), "upload"),
    ];
    std::thread::sleep(Duration::from_secs(2));

    let full = lab.edge_conf(0).uci();
    let start = full.find("config link 'wan0'").unwrap();
    let end = start + full[start..].find("\n\n").unwrap() + 2;
    let uci = format!("{}{}", &full[..start], &full[end..]);
    assert!(!uci.contains("wan0") && uci.contains("config link 'wan1'"));
    std::fs::write(lab.edge_config(0), &uci).unwrap();
    let edge = lab.edge(0);
    edge.reload().unwrap_or_else(|e| panic!("reload: {e}"));
    std::thread::sleep(Duration::from_secs(1));
    let e1 = edge.status().unwrap();
    let m1 = moved(&flows);
    std::thread::sleep(Duration::from_secs(4));
    let e2 = edge.status().unwrap();
    let m2 = moved(&flows);
    let results = finish_flows(&stop, flows);
    let busy = |st: &Status| {
        st.drops
            .iter()
            .find(|c| c.reason == "link socket busy or closed")
            .map_or(0, |c| c.count)
    };
    let names: Vec<String> = e2.sessions[0]
        .links
        .iter()
        .map(|l| l.name.clone())
        .collect();
    println!("reload removing wan0 of two 10 Mbit/s links under a download and an upload:");
    println!(
        "  4 s window from 1 s after: wan1 sent {} B; datagrams dropped as 'link socket busy or closed': {}; links {names:?}",
        link_tx(&e2, "wan1") - link_tx(&e1, "wan1"),
        busy(&e2) - busy(&e1)
    );
    for (i, (what, r)) in results.iter().enumerate() {
        println!("  {what}: {} B in the window; {r:?}", m2[i] - m1[i]);
    }
    assert_eq!(names, ["wan1"]);
    for (i, (what, r)) in results.iter().enumerate() {
        assert!(r.is_ok(), "{what}: {r:?}");
        assert!(m2[i] - m1[i] > 100_000, "{what} moved {} B", m2[i] - m1[i]);
    }
    assert!(
        busy(&e2) - busy(&e1) < 100,
        "{} datagrams dropped",
        busy(&e2) - busy(&e1)
    );
}
