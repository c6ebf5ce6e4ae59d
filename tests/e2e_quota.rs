//! A data quota crossed in a running edge, end to end: `braid edge` and `braid core` (the built
//! binary) in the lab's namespaces, client - edge - two emulated 10 Mbit/s links - core - server.
//! `wan1` has a small daily quota (`quota_action 'backup'`); TCP flows run both ways.
//! Measured from `braid status --json`: wan1's quota use crosses the limit, wan1 turns
//! `backup` with `over_quota` (shown `backup (quota)`), after that its bytes (edge: upstream, core: downstream, quota counter: both)
//! stop growing beyond probes while wan0 carries on and no flow breaks. Then the edge is stopped:
//! the counter is in the state file, and a restarted edge reads it back and keeps wan1 demoted
//! (a new download then runs over wan0 alone).
//! Needs root and iproute2; a SKIP line otherwise.
//! Namespaces: `blq<pid>-*` (tag 'q'), apart from the lab's default `bl-*` and other tests' tags.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::control::Status;
use support::*;

const PORT: u16 = 7021;
/// wan1's daily allowance, both directions (UCI `6M`: powers of 1000).
const QUOTA: u64 = 6_000_000;

fn rx(st: &Status, name: &str) -> u64 {
    link_of(st, name).map_or(0, |l| l.rx_bytes)
}

fn used(st: &Status, name: &str) -> u64 {
    link_of(st, name).map_or(0, |l| l.quota_used_bytes)
}

/// The role in effect, with " (quota)" when the quota demoted it (`over_quota`).
fn role(st: &Status, name: &str) -> String {
    link_of(st, name).map_or_else(
        || "absent".into(),
        |l| {
            if l.over_quota {
                format!("{} (quota)", l.role)
            } else {
                l.role.clone()
            }
        },
    )
}

#[test]
fn quota_crossing_demotes_a_running_link_and_survives_a_restart() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('q'),
        vec![edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 10)])],
    );
    let state = lab.dir.join("quota.state");
    let mut conf = lab.edge_conf(0);
    conf.state = state.clone();
    let uci = conf.uci().replace(
        "config link 'wan1'\n",
        "config link 'wan1'\n\toption quota '6M'\n\toption quota_period 'day'\n\
             \toption quota_action 'backup'\n",
    );
    std::fs::write(lab.edge_config(0), &uci).unwrap();
    lab.start_bonded();
    let client = lab.client(0);
    let server = lab.reached_server(0, PORT);
    // The core names the edge's links as the edge does (carried in LinkName controls), in
    // its JSON and in its table.
    let core = lab.core.as_ref().unwrap();
    let mut core_names: Vec<String> = core
        .status()
        .unwrap()
        .sessions
        .first()
        .map(|s| s.links.iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default();
    core_names.sort();
    let table = std::process::Command::new(BRAID)
        .args(["status", "--socket"])
        .arg(&core.socket)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    println!("core's status table:\n{table}");
    assert_eq!(core_names, ["wan0", "wan1"]);
    assert!(
        table.lines().any(|l| l.trim_start().starts_with("wan1 ")),
        "{table}"
    );
    let st0 = lab.edge(0).status().unwrap();
    assert_eq!(role(&st0, "wan1"), "primary", "{:?}", st0.sessions);
    assert_eq!(
        link_of(&st0, "wan1").and_then(|l| l.quota_bytes),
        Some(QUOTA)
    );

    // Load: two downloads and an upload.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = two_down_one_up(&client, server.addr(), &stop);
    let t0 = Instant::now();

    // Poll until wan1 is demoted (at most 30 s: 6 MB at up to 20 Mbit/s both ways takes ~3 s).
    let mut samples: Vec<(f64, u64, String)> = Vec::new();
    let (t_demoted, at_demotion) =
        poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            let st = lab.edge(0).status().unwrap();
            let (u, r) = (used(&st, "wan1"), role(&st, "wan1"));
            samples.push((t0.elapsed().as_secs_f64(), u, r.clone()));
            (r != "primary").then(|| (t0.elapsed(), st))
        })
        .unwrap_or_else(|| {
            panic!(
                "wan1 not demoted after 30 s: {samples:?}\n{}",
                lab.edge(0).log_text()
            )
        });
    let last_within = samples
        .iter()
        .rev()
        .find(|s| s.2 == "primary")
        .map_or(0, |s| s.1);

    // Drain what was queued or in flight on wan1, then measure a window.
    std::thread::sleep(Duration::from_secs(1));
    let core = lab.core.as_ref().unwrap();
    let (e1, c1, m1) = (
        lab.edge(0).status().unwrap(),
        core.status().unwrap(),
        moved(&flows),
    );
    const WINDOW: Duration = Duration::from_secs(5);
    std::thread::sleep(WINDOW);
    let (e2, c2, m2) = (
        lab.edge(0).status().unwrap(),
        core.status().unwrap(),
        moved(&flows),
    );

    // A reload that touches wan1's section (its weight) must not undo the demotion.
    let uci2 = uci.replace(
        "config link 'wan1'\n",
        "config link 'wan1'\n\toption weight '3'\n",
    );
    std::fs::write(lab.edge_config(0), &uci2).unwrap();
    lab.edge(0)
        .reload()
        .unwrap_or_else(|e| panic!("reload: {e}"));
    std::thread::sleep(Duration::from_secs(1));
    let (e3, c3) = (lab.edge(0).status().unwrap(), core.status().unwrap());
    std::thread::sleep(Duration::from_secs(4));
    let (e4, c4) = (lab.edge(0).status().unwrap(), core.status().unwrap());
    let results = finish_flows(&stop, flows);

    let d = |a: &Status, b: &Status, n: &str| (link_tx(b, n) - link_tx(a, n), rx(b, n) - rx(a, n));
    let (w0, w1) = (d(&e1, &e2, "wan0"), d(&e1, &e2, "wan1"));
    let (cc1, cc2) = (core_tx(&c1), core_tx(&c2));
    assert_eq!(cc2.len(), 2, "core links: {:?}", c2.sessions);
    let core_w = [cc2[0] - cc1[0], cc2[1] - cc1[1]];
    let used_growth = used(&e2, "wan1") - used(&e1, "wan1");
    println!("quota crossing under load (3 TCP flows, two 10 Mbit/s 10 ms links, wan1 quota {QUOTA} B/day):");
    println!(
        "  wan1 demoted {:.2} s after the load started: last poll within quota used {} B, \
         first poll demoted used {} B (role '{}'); wan0 sent {} B, wan1 sent {} B by then",
        t_demoted.as_secs_f64(),
        last_within,
        used(&at_demotion, "wan1"),
        role(&at_demotion, "wan1"),
        link_tx(&at_demotion, "wan0"),
        link_tx(&at_demotion, "wan1"),
    );
    println!(
        "  window of {:.0} s from 1 s after the demotion: edge wan0 sent {} B received {} B; \
         wan1 sent {} B received {} B; quota counter of wan1 grew {} B",
        WINDOW.as_secs_f64(),
        w0.0,
        w0.1,
        w1.0,
        w1.1,
        used_growth
    );
    println!(
        "  same window, core sent: wan0 {} B, wan1 {} B",
        core_w[0], core_w[1]
    );
    for (i, (what, r)) in results.iter().enumerate() {
        println!(
            "  {what}: {} B in the window; {}",
            m2[i] - m1[i],
            match r {
                Ok(s) => s.clone(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
    }

    // Crossing: the demotion came once the counter reached the quota, not before.
    assert!(
        used(&at_demotion, "wan1") >= QUOTA,
        "demoted with {} B used",
        used(&at_demotion, "wan1")
    );
    assert!(last_within < QUOTA, "{samples:?}");
    assert_eq!(role(&at_demotion, "wan1"), "backup (quota)");
    assert_eq!(role(&e2, "wan1"), "backup (quota)");
    assert_eq!(role(&e2, "wan0"), "primary");
    assert!(lab.edge(0).log_text().contains("used its quota"));
    // No flow broke; each kept moving.
    for (i, (what, r)) in results.iter().enumerate() {
        assert!(r.is_ok(), "{what} broke: {r:?}");
        assert!(
            m2[i] - m1[i] > 100_000,
            "{what} moved only {} B after the demotion",
            m2[i] - m1[i]
        );
    }
    // wan0 carries; wan1 only probes and acks: at most 5 % of wan0, each direction.
    assert!(
        w0.0 > 500_000 && core_w[0] > 1_000_000,
        "wan0 stopped carrying: edge {w0:?}, core {core_w:?}"
    );
    assert!(
        w1.0 * 20 <= w0.0,
        "upstream: wan1 sent {} B, wan0 {} B",
        w1.0,
        w0.0
    );
    assert!(
        core_w[1] * 20 <= core_w[0],
        "downstream: the core sent {} B on wan1, {} B on wan0",
        core_w[1],
        core_w[0]
    );
    assert!(
        used_growth * 20 <= w0.0 + w0.1,
        "wan1's counter grew {used_growth} B while wan0 moved {} B",
        w0.0 + w0.1
    );

    // After the reload: still demoted, in the status and in what the links carry.
    let (r0, r1) = (d(&e3, &e4, "wan0"), d(&e3, &e4, "wan1"));
    let (cc3, cc4) = (core_tx(&c3), core_tx(&c4));
    let core_r = [cc4[0] - cc3[0], cc4[1] - cc3[1]];
    println!(
        "  4 s window from 1 s after a reload changing wan1's weight: role '{}'; edge sent wan0 {} B, \
         wan1 {} B; core sent wan0 {} B, wan1 {} B",
        role(&e4, "wan1"),
        r0.0,
        r1.0,
        core_r[0],
        core_r[1]
    );
    assert_eq!(role(&e4, "wan1"), "backup (quota)");
    assert!(
        r1.0 * 20 <= r0.0 && core_r[1] * 20 <= core_r[0],
        "after the reload wan1 carries again: edge {r0:?} {r1:?}, core {core_r:?}"
    );

    // Stop: the counter goes to the state file.
    let used_at_stop = used(&e4, "wan1");
    let st = lab.edge_mut(0).term();
    assert!(st.is_some_and(|s| s.success()), "edge exit: {st:?}");
    let text = std::fs::read_to_string(&state)
        .unwrap_or_else(|e| panic!("state file {}: {e}", state.display()));
    let saved: u64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("wan1 "))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no wan1 line in the state file:\n{text}"));
    println!("  state file on stop: {:?}", text.trim());
    assert!(
        saved >= used_at_stop && saved >= QUOTA,
        "saved {saved} B, status said {used_at_stop} B"
    );

    // Restart: read back, still demoted, and a new download runs over wan0 alone.
    lab.start_edge(0);
    lab.wait_bonded(0, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let r0 = lab.edge(0).status().unwrap();
    println!(
        "  after a restart: wan1 role '{}', quota used {} B",
        role(&r0, "wan1"),
        used(&r0, "wan1")
    );
    assert_eq!(role(&r0, "wan1"), "backup (quota)");
    assert!(used(&r0, "wan1") >= saved);
    let stop = Arc::new(AtomicBool::new(false));
    let f = down_flow(
        &client,
        server.addr(),
        stop.clone(),
        "download after restart",
    );
    std::thread::sleep(Duration::from_secs(4));
    let r1 = lab.edge(0).status().unwrap();
    let core = lab.core.as_ref().unwrap();
    let c3 = core.status().unwrap();
    stop.store(true, Ordering::Relaxed);
    let got = f.moved.load(Ordering::Relaxed);
    let r = f.handle.join().unwrap();
    let c3 = core_tx(&c3);
    println!(
        "  4 s download after the restart: {got} B ({r:?}); edge received wan0 {} B, wan1 {} B; \
         core sent {c3:?} B",
        rx(&r1, "wan0"),
        rx(&r1, "wan1")
    );
    assert!(r.is_ok() && got > 500_000, "{r:?}, {got} B");
    assert_eq!(role(&r1, "wan1"), "backup (quota)");
    assert!(
        rx(&r1, "wan1") * 20 <= rx(&r1, "wan0"),
        "after the restart wan1 received {} B, wan0 {} B",
        rx(&r1, "wan1"),
        rx(&r1, "wan0")
    );
}
