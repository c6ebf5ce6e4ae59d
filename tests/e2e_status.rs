//! The status JSON contract, end to end: a real `braid edge` and `braid core` in the lab, a
//! download and an upload running through them, and `braid status --json` from both.
//!
//! - Each output has exactly the fields and types of the checked-in sample for its role
//!   (`tests/fixtures/status/edge.json`, `core.json`; see `braid::control`), and no Rust Debug
//!   text anywhere.
//! - The rates are measured: while the client downloads, the edge's links report received bits
//!   (`rx_bps`) and the bonded session a download rate near what the client gets; `tx_bps` is
//!   what was sent, beside the scheduler's estimate (`estimate_bps`), its own field.
//! - The core names each link's edge address plainly (`ip:port`), and counts that edge's client.
//! - A link taken out reports `admin-down` at once, with its time in that state counting up.
//!
//! Needs root and iproute2; a SKIP line otherwise.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::control::{contract_mismatches, Status};
use support::*;

fn sample(role: &str) -> serde_json::Value {
    let p = format!(
        "{}/tests/fixtures/status/{role}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn assert_contract(role: &str, real: &serde_json::Value) {
    let bad = contract_mismatches(&sample(role), real);
    assert!(
        bad.is_empty(),
        "`braid status --json` of the {role} departs from tests/fixtures/status/{role}.json:\n{}\n\
         the output was:\n{}",
        bad.join("\n"),
        serde_json::to_string_pretty(real).unwrap()
    );
}

#[test]
fn status_json_keeps_the_contract_and_measures_rates() {
    let Some(_lab) = needs_lab() else { return };
    let lab = Lab::bonded(
        &tag('s'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 10, 20)])],
    );
    let server = lab.reached_server(0, 7040);
    let client = lab.client(0);
    let stop = Arc::new(AtomicBool::new(false));
    let flows = vec![
        down_flow(&client, server.addr(), stop.clone(), "download"),
        up_flow(&client, server.addr(), stop.clone(), "upload"),
    ];
    // Let the transfer settle, then read both daemons while it runs.
    std::thread::sleep(Duration::from_secs(3));
    let m0 = moved(&flows);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let edge = lab.edge(0).status_json().unwrap();
    let core = lab.core.as_ref().unwrap().status_json().unwrap();
    let m1 = moved(&flows);
    let secs = t0.elapsed().as_secs_f64();
    let got_down = (m1[0] - m0[0]) as f64 * 8.0 / secs;
    for (what, r) in finish_flows(&stop, flows) {
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    println!("edge: {}", serde_json::to_string_pretty(&edge).unwrap());
    println!("core: {}", serde_json::to_string_pretty(&core).unwrap());
    if let Ok(dir) = std::env::var("BRAID_STATUS_SAMPLES") {
        // How the samples were first taken: BRAID_STATUS_SAMPLES=/tmp/x cargo test ...
        for (role, v) in [("edge", &edge), ("core", &core)] {
            let p = std::path::Path::new(&dir).join(format!("{role}.json"));
            std::fs::write(p, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
        }
    }
    assert_contract("edge", &edge);
    assert_contract("core", &core);

    let edge: Status = serde_json::from_value(edge).unwrap();
    let core: Status = serde_json::from_value(core).unwrap();
    let es = &edge.sessions[0];
    let link_rx: u64 = es.links.iter().map(|l| l.rx_bps).sum();
    let link_tx: u64 = es.links.iter().map(|l| l.tx_bps).sum();
    println!(
        "client download {:.1} Mbit/s; edge: bonded down {:.1} up {:.1} Mbit/s, links down {:.1} \
         up {:.1} Mbit/s (estimates {:?})",
        got_down / 1e6,
        es.rx_bps as f64 / 1e6,
        es.tx_bps as f64 / 1e6,
        link_rx as f64 / 1e6,
        link_tx as f64 / 1e6,
        es.links.iter().map(|l| l.estimate_bps).collect::<Vec<_>>()
    );
    assert!(
        es.links.iter().all(|l| l.rx_bps > 0 && l.tx_bps > 0),
        "every link carries both ways during the transfer: {:?}",
        es.links
    );
    // The bonded download the edge reports is what the client receives (within the noise of
    // two windows that do not quite coincide), and the links carry at least that.
    let ratio = es.rx_bps as f64 / got_down;
    assert!(
        (0.5..2.0).contains(&ratio),
        "bonded rx {} bit/s against {got_down:.0} bit/s received by the client",
        es.rx_bps
    );
    assert!(
        link_rx as f64 >= es.rx_bps as f64 * 0.8,
        "links carry the bonded traffic"
    );
    assert!(es.tx_bps > 0, "the upload is measured too");
    assert!(es.users.iter().any(|u| u.rx_bytes > 0));

    let cs = &core.sessions[0];
    for l in &cs.links {
        let a = l.address.as_deref().unwrap_or("");
        assert!(
            a.parse::<std::net::SocketAddr>().is_ok(),
            "core link address '{a}' is ip:port"
        );
        assert_eq!(l.device, None);
        assert!(l.tx_bps > 0 && l.rx_bps > 0, "{l:?}");
    }
    assert!(
        cs.users.iter().any(|u| u.tx_bytes > 0 && u.rx_bytes > 0),
        "the core counts the edge's client: {:?}",
        cs.users
    );
    assert!(cs.tx_bps > 0 && cs.rx_bps > 0);
    // One handshake made the session (more if the run took a rekey); nothing lost it.
    assert!(es.handshakes >= 1 && cs.handshakes >= 1, "{es:?} {cs:?}");
    assert_eq!((es.renewals, cs.renewals), (0, 0));
    // Both daemons have run a few seconds: time in state counts.
    assert!(
        es.links.iter().all(|l| l.state == "up" && l.state_s >= 2),
        "{:?}",
        es.links
    );

    // Taking a link out shows at once, and its time in that state starts at 0.
    lab.edge(0).link("wan1", false).unwrap();
    let st = lab.edge(0).status().unwrap();
    let w = link_of(&st, "wan1").unwrap();
    assert_eq!(w.state, "admin-down");
    assert!(w.state_s <= 1, "{w:?}");
    std::thread::sleep(Duration::from_millis(2200));
    let st = lab.edge(0).status().unwrap();
    let w = link_of(&st, "wan1").unwrap();
    assert_eq!((w.state.as_str(), w.tx_bps), ("admin-down", 0), "{w:?}");
    assert!(w.state_s >= 2, "{w:?}");
}
