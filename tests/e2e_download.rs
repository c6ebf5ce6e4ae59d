//! `option download` (issue #12, item 5), end to end with the built `braid` binary in the lab's
//! namespaces: the edge announces a link's download cap to the core, which paces its sending on
//! that link below it, from the start and after `braid reload`.
//!
//! Two 20 Mbit/s links; two TCP downloads keep the core busy. With `option download '5mbit'` on
//! wan0, the core sends at most about 5 Mbit/s on it (measured from the core's per-link byte
//! counters, wire bytes, over 3 s) while wan1 takes the rest; with the cap removed by a reload
//! wan0 carries far more; put back by a reload, it is capped again. Before, the option was
//! parsed and never sent: wan0 carried ~15-20 Mbit/s with or without it.
//!
//! Needs root and iproute2; a SKIP line otherwise. Namespaces: `blh<pid>-*`.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const PORT: u16 = 7091;
const CAP_MBIT: f64 = 5.0;

/// The core's send rate (Mbit/s, wire bytes) on each of the edge's links over `window`.
fn core_rates(lab: &Lab, window: Duration) -> Vec<f64> {
    let core = lab.core.as_ref().unwrap();
    let a = core_tx(&core.status().unwrap());
    let t = Instant::now();
    std::thread::sleep(window);
    let b = core_tx(&core.status().unwrap());
    let secs = t.elapsed().as_secs_f64();
    a.iter()
        .zip(&b)
        .map(|(a, b)| (b - a) as f64 * 8.0 / secs / 1e6)
        .collect()
}

fn with_cap(lab: &Lab, cap: bool) -> String {
    let uci = lab.edge_conf(0).uci();
    if cap {
        uci.replace(
            "config link 'wan0'\n",
            "config link 'wan0'\n\toption download '5mbit'\n",
        )
    } else {
        uci
    }
}

#[test]
fn a_download_cap_holds_from_start_and_after_reloads() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::new(
        &tag('h'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 20, 10)])],
    );
    std::fs::write(lab.edge_config(0), with_cap(&lab, true)).unwrap();
    lab.start_bonded();
    let client = lab.client(0);
    let server = lab.reached_server(0, PORT);
    let stop = Arc::new(AtomicBool::new(false));
    let flows = vec![
        down_flow(&client, server.addr(), stop.clone(), "download 1"),
        down_flow(&client, server.addr(), stop.clone(), "download 2"),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let window = Duration::from_secs(3);
    let capped = core_rates(&lab, window);
    std::fs::write(lab.edge_config(0), with_cap(&lab, false)).unwrap();
    lab.edge(0).reload().expect("reload");
    std::thread::sleep(Duration::from_secs(2));
    let free = core_rates(&lab, window);
    std::fs::write(lab.edge_config(0), with_cap(&lab, true)).unwrap();
    lab.edge(0).reload().expect("reload");
    std::thread::sleep(Duration::from_secs(2));
    let again = core_rates(&lab, window);
    let results = finish_flows(&stop, flows);
    println!(
        "core -> edge Mbit/s [wan0, wan1]: wan0 capped at {CAP_MBIT} from start {capped:.2?}, \
         cap removed by reload {free:.2?}, cap set again by reload {again:.2?}; flows: \
         {results:?}"
    );
    for (what, outcome) in &results {
        assert!(outcome.is_ok(), "{what}: {outcome:?}");
    }
    // A cap of 5 Mbit/s on the wire, a 10 % margin for the pacer's bursts and the window's
    // edges.
    assert!(capped[0] <= CAP_MBIT * 1.1, "capped from start: {capped:?}");
    assert!(again[0] <= CAP_MBIT * 1.1, "capped after reload: {again:?}");
    assert!(free[0] > CAP_MBIT * 1.6, "uncapped: {free:?}");
    // The other link carried on meanwhile.
    assert!(
        capped[1] > CAP_MBIT && again[1] > CAP_MBIT,
        "{capped:?} {again:?}"
    );
}
