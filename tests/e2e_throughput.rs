//! Bonded TCP goodput over the lab's hetero links (20 Mbit/s 20 ms + 10 Mbit/s 40 ms with 0.5 %
//! loss), the way an operator measures it: `braid lab run` with real `braid edge` and `braid core`
//! daemons in namespaces, and the best single link (direct mode) measured in the same run.
//!
//! The data-plane issue's goals: 4 TCP flows for 20 s reach >= 80 % of the summed capacity, and
//! one flow is never below the best single link's goodput. And the design's interactive budget:
//! request/response while 8 flows download from the same client, p99 RTT <= the best link's base
//! RTT (40 ms) + 50 ms (the lab's `rr` workload). These machines are shared, and a
//! neighbour's build can starve the user-space link emulator and both daemons at once, so a run
//! that misses is repeated once; every attempt's figures are printed (`--nocapture`).
//!
//! Needs root and iproute2; a SKIP line otherwise (tests/support).

mod support;

use std::path::PathBuf;
use std::process::Command;

const ATTEMPTS: usize = 2;
const SHARE_4_FLOWS: f64 = 80.0;
/// The best link's base RTT (2 x 20 ms) + 50 ms.
const RR_P99_MS: f64 = 90.0;

struct Run {
    braid4_pct: f64,
    braid4_mbps: f64,
    braid1_mbps: f64,
    direct1_mbps: f64,
    failed: u64,
    gap4_ms: f64,
    rr_p50_ms: f64,
    rr_p99_ms: f64,
    direct_rr_p99_ms: f64,
}

fn find<'a>(recs: &'a [serde_json::Value], mode: &str, w: &str) -> &'a serde_json::Value {
    recs.iter()
        .find(|r| r["mode"] == mode && r["workload"] == w)
        .unwrap_or_else(|| panic!("no {mode} {w} record in the lab's JSON"))
}

fn rr(recs: &[serde_json::Value], mode: &str, k: &str) -> f64 {
    find(recs, mode, "rr")["result"]["rr"][k]
        .as_f64()
        .unwrap_or_else(|| panic!("{mode} rr: no {k}"))
}

fn run_once(out: &PathBuf) -> Run {
    let _ = std::fs::remove_dir_all(out);
    let st = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "lab",
            "run",
            "hetero",
            "--mode",
            "braid,direct",
            "--workload",
            "bulk4-down,bulk1-down,rr",
            "--duration",
            "20s",
            "--tag",
            &support::tag('t'),
            "--out",
        ])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run braid lab");
    assert!(st.success(), "braid lab run failed: {st}");
    let json = std::fs::read_to_string(out.join("hetero.json")).expect("lab JSON");
    let recs: Vec<serde_json::Value> = serde_json::from_str(&json).expect("lab JSON parses");
    let f = |m: &str, w: &str, k: &str| {
        let r = find(&recs, m, w);
        r[k].as_f64()
            .or_else(|| r["result"][k].as_f64())
            .unwrap_or_else(|| panic!("{m} {w}: no {k}"))
    };
    let failed = recs
        .iter()
        .filter(|r| r["mode"] == "braid")
        .map(|r| r["result"]["flows_failed"].as_u64().unwrap_or(1))
        .sum();
    Run {
        braid4_pct: f("braid", "bulk4-down", "pct_of_capacity"),
        braid4_mbps: f("braid", "bulk4-down", "goodput_mbps"),
        braid1_mbps: f("braid", "bulk1-down", "goodput_mbps"),
        direct1_mbps: f("direct", "bulk1-down", "goodput_mbps"),
        failed,
        gap4_ms: f("braid", "bulk4-down", "max_gap_ms"),
        rr_p50_ms: rr(&recs, "braid", "p50_ms"),
        rr_p99_ms: rr(&recs, "braid", "p99_ms"),
        direct_rr_p99_ms: rr(&recs, "direct", "p99_ms"),
    }
}

#[test]
fn hetero_goodput_beats_the_best_link_reaches_80_percent_and_keeps_interactive_rtt() {
    let Some(_lab) = support::needs_lab() else {
        return;
    };
    let out = std::env::temp_dir().join(format!("braid-e2e-throughput-{}", std::process::id()));
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let r = run_once(&out);
        eprintln!(
            "attempt {attempt}: braid 4 flows {:.2} Mbit/s = {:.1} % of 30 Mbit/s (gap {:.0} ms); \
             braid 1 flow {:.2} Mbit/s vs best single link {:.2} Mbit/s; request/response under \
             8 downloads p50/p99 {:.1}/{:.1} ms (direct p99 {:.1}); failed flows {}",
            r.braid4_mbps,
            r.braid4_pct,
            r.gap4_ms,
            r.braid1_mbps,
            r.direct1_mbps,
            r.rr_p50_ms,
            r.rr_p99_ms,
            r.direct_rr_p99_ms,
            r.failed
        );
        let ok = r.failed == 0
            && r.braid4_pct >= SHARE_4_FLOWS
            && r.braid1_mbps >= r.direct1_mbps
            && r.rr_p99_ms <= RR_P99_MS;
        last = Some(r);
        if ok {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    let r = last.expect("at least one attempt");
    assert_eq!(r.failed, 0, "flows failed through Braid");
    assert!(
        r.braid4_pct >= SHARE_4_FLOWS,
        "4 flows: {:.1} % of the summed capacity, goal {SHARE_4_FLOWS} %",
        r.braid4_pct
    );
    assert!(
        r.braid1_mbps >= r.direct1_mbps,
        "1 flow: {:.2} Mbit/s bonded, below the best single link's {:.2}",
        r.braid1_mbps,
        r.direct1_mbps
    );
    assert!(
        r.rr_p99_ms <= RR_P99_MS,
        "request/response p99 {:.1} ms under load, budget {RR_P99_MS} ms",
        r.rr_p99_ms
    );
}
