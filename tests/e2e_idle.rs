//! An idle edge stays idle, end to end with the built `braid` binary in the lab's namespaces
//! (issue 12 item 6: `braid edge` sat at 100 % CPU after a transfer ended with a link taken
//! out by `braid link down`, until `braid link up`). Needs root and iproute2; a SKIP
//! line otherwise.
//!
//! A download runs over both links; one is taken down in the middle of it (its last data not
//! acknowledged yet, or still in the edge's channel), the download stops, and the edge's CPU
//! time (/proc/PID/stat) is read over the idle seconds that follow. Repeated a few times, as
//! the state that caused the busy loop depends on the moment the link is taken down.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

/// Share of one CPU an idle edge may use (it probes each link every 150 ms).
const IDLE_CPU: f64 = 0.05;

#[test]
fn a_link_taken_down_mid_transfer_leaves_the_edge_idle() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('i'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 20, 10)])],
    );
    let server = lab.reached_server(0, 7060);
    let mut shares = Vec::new();
    for round in 0..5 {
        let stop = Arc::new(AtomicBool::new(false));
        let flow = down_flow(&lab.client(0), server.addr(), stop.clone(), "download");
        std::thread::sleep(Duration::from_millis(1500));
        lab.edge(0).link("wan1", false).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let results = finish_flows(&stop, vec![flow]);
        let moved = results[0].1.clone();
        // Idle from here: what is left in flight settles within a second.
        std::thread::sleep(Duration::from_secs(1));
        let window = if round == 4 { 5 } else { 2 };
        let before = lab.edge(0).cpu_time();
        std::thread::sleep(Duration::from_secs(window));
        let used = lab.edge(0).cpu_time() - before;
        let share = used.as_secs_f64() / window as f64;
        println!(
            "round {round}: download {moved:?}; wan1 down: edge used {:.1} % of a CPU over {window} s",
            share * 100.0
        );
        shares.push(share);
        assert!(moved.is_ok(), "{moved:?}");
        assert!(
            share < IDLE_CPU,
            "round {round}: the idle edge used {:.1} % of a CPU with wan1 down\n{}",
            share * 100.0,
            lab.edge(0).log_text()
        );
        lab.edge(0).link("wan1", true).unwrap();
        let up = poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            let st = lab.edge(0).status().ok()?;
            (link_of(&st, "wan1")?.state == "up").then_some(())
        });
        assert!(up.is_some(), "wan1 up again: {:?}", lab.edge(0).status());
    }
    println!(
        "idle CPU with a link down after a transfer: {:?} %",
        shares
            .iter()
            .map(|s| (s * 1000.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}
