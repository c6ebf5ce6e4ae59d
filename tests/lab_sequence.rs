//! `braid lab run --sequence`: the workloads run as one session's steps, the way a testbed's
//! harness runs them (one long-lived server; up, then at once down), on one topology with the
//! same daemons and the link emulators running on, and every step is reported on its own.
//! A short run (2 x 4 s, one flow) through real `braid edge` and `braid core` daemons; no
//! figure is asserted beyond "data moved" (speeds belong in benchmarks).
//!
//! Needs root and iproute2; a SKIP line otherwise (tests/support).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

const STEP_S: f64 = 4.0;

#[test]
fn a_two_step_sequence_runs_in_one_session_and_reports_both_steps() {
    let Some(_lab) = support::needs_lab() else {
        return;
    };
    let out = std::env::temp_dir().join(format!("braid-lab-sequence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "lab",
            "run",
            "hetero",
            "--mode",
            "braid",
            "--workload",
            "bulk1-up,bulk1-down",
            "--sequence",
            "--duration",
            "4s",
            "--tag",
            &support::tag('q'),
            "--out",
        ])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run braid lab");
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!(
        "{stdout}{}(in {:.0} s)",
        String::from_utf8_lossy(&run.stderr),
        started.elapsed().as_secs_f64()
    );
    assert!(run.status.success(), "braid lab run failed: {}", run.status);
    let json = std::fs::read_to_string(out.join("hetero.json")).expect("lab JSON");
    let _ = std::fs::remove_dir_all(&out);
    let recs: Vec<serde_json::Value> = serde_json::from_str(&json).expect("lab JSON parses");

    assert_eq!(recs.len(), 2, "one record per step");
    for (i, (r, w)) in recs.iter().zip(["bulk1-up", "bulk1-down"]).enumerate() {
        assert_eq!(r["workload"], w);
        assert_eq!(r["step"], i as u64);
        assert_eq!(r["sequence"], serde_json::json!(["bulk1-up", "bulk1-down"]));
        let res = &r["result"];
        assert_eq!(res["flows_failed"], 0, "step {w}: {:?}", res["errors"]);
        assert!(
            res["goodput_mbps"].as_f64().unwrap() > 0.5,
            "step {w}: no data"
        );
        // Each link's rate in the step's direction, one figure per link.
        let links = res["links_mbps"].as_array().expect("links_mbps");
        assert_eq!(links.len(), 2);
        assert!(links.iter().all(|l| l.as_f64().unwrap() > 0.0), "{links:?}");
    }
    // One session: the link schedules were not restarted for the second step, which started
    // right after the first ended (its start on the links' clock is past the first step's end).
    let start = |i: usize| recs[i]["result"]["start_s"].as_f64().unwrap();
    let first_end = start(0) + recs[0]["result"]["duration_s"].as_f64().unwrap();
    assert!(
        start(0) < 2.0,
        "the first step started {:.1} s in",
        start(0)
    );
    assert!(
        start(1) >= first_end && start(1) < first_end + 3.0,
        "step 2 started at {:.2} s on the links' clock; step 1 ended at {first_end:.2} s",
        start(1)
    );
    assert!(STEP_S <= recs[1]["result"]["duration_s"].as_f64().unwrap() + 0.2);
    // Both steps reported apart, with min / median / max per step.
    assert!(
        stdout.contains("1/2 bulk1-up") && stdout.contains("2/2 bulk1-down"),
        "{stdout}"
    );
    assert!(stdout.contains("Each step of the sequence"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(60));
}
