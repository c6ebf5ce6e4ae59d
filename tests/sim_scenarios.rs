//! Issue #2's acceptance cases: the real protocol (an edge and a core `Session`) over the
//! emulated links of the scenario files in `scenarios/`, seeded and deterministic.
//!
//! Cases the protocol does not meet yet are `#[ignore]`d (never with a weaker threshold): run
//! them with `cargo test --test sim_scenarios -- --ignored --nocapture` to see where it stands.
//!
//! Each test prints the full report before asserting, so a failure shows every measured number
//! (`cargo test --test sim_scenarios -- --nocapture` shows them on success too).

use std::path::Path;

use braid::sim::link::{Outage, OutageKind};
use braid::sim::scenario::Dir;
use braid::sim::{run, Report, Scenario};

fn load(name: &str) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Datagrams the outages swallowed on link `name`, both directions.
fn outage_drops(r: &Report, name: &str) -> u64 {
    r.links
        .iter()
        .filter(|l| l.link == name)
        .map(|l| l.stats.drop_outage)
        .sum()
}

fn run_shown(sc: &Scenario) -> Report {
    let r = run(sc).unwrap_or_else(|e| panic!("{}: {e}", sc.name));
    println!("{}", r.table());
    assert_eq!(r.corrupt, 0, "the exit delivered mangled packets");
    r
}

#[test]
fn hetero_aggregates_recovers_and_keeps_order() {
    let r = run_shown(&load("hetero"));
    let up = r.dir(Dir::Up).unwrap();
    assert_eq!(up.capacity_mbit, 30.0);
    assert!(
        up.delivered_mbit >= 0.92 * 30.0,
        "delivered {:.2} Mbit/s of inner bytes, need >= 27.6",
        up.delivered_mbit
    );
    assert!(
        up.loss_ratio <= 0.0001,
        "loss after recovery {:.5} % ({} of {})",
        up.loss_ratio * 100.0,
        up.lost,
        up.sent
    );
    assert!(
        up.in_order_ratio >= 0.999,
        "in order {:.4} %",
        up.in_order_ratio * 100.0
    );
    assert!(
        up.added_delay_ms.p99 <= 50.0,
        "p99 added delay {} ms",
        up.added_delay_ms.p99
    );
}

#[test]
fn hetero_blackhole_fails_over_fast_and_loses_nothing() {
    let r = run_shown(&load("hetero-blackhole"));
    let up = r.dir(Dir::Up).unwrap();
    assert!(
        outage_drops(&r, "fast") > 0,
        "the outage must have swallowed datagrams"
    );
    assert!(
        up.longest_gap_ms <= 300.0,
        "longest gap {} ms",
        up.longest_gap_ms
    );
    assert_eq!(up.lost, 0, "lost {} of {}", up.lost, up.sent);
}

#[test]
fn three_users_share_fairly() {
    let r = run_shown(&load("fairness"));
    let jain = r.dir(Dir::Up).unwrap().jain.unwrap();
    assert!(jain >= 0.98, "Jain {jain:.4}");
}

#[test]
fn priority_class_does_not_queue() {
    let r = run_shown(&load("priority"));
    let c = r.class("priority", Dir::Up).unwrap();
    assert!(c.delivered > 0);
    assert!(
        c.queueing_ms.p99 <= 10.0,
        "priority p99 queueing {} ms",
        c.queueing_ms.p99
    );
    // The bulk users beside it still share fairly.
    let jain = r.dir(Dir::Up).unwrap().jain.unwrap();
    assert!(jain >= 0.98, "Jain {jain:.4}");
}

#[test]
fn interactive_stays_near_the_fastest_link() {
    let sc = load("interactive");
    let fastest_ms = sc.links.iter().map(|l| l.up.delay_us).min().unwrap() as f64 / 1000.0;
    let r = run_shown(&sc);
    let c = r.class("interactive", Dir::Up).unwrap();
    assert!(c.delivered > 1000);
    assert!(
        c.latency_ms.p99 <= fastest_ms + 20.0,
        "interactive p99 one-way {} ms, fastest link {} ms",
        c.latency_ms.p99,
        fastest_ms
    );
}

/// "Zero delivery gap" for a redundant class: nothing of it is lost, and no gap between its
/// deliveries is longer than its own packet spacing plus the links' delay difference (the copy
/// on the surviving link arrives that much later) plus 10 ms of link queueing. A gap from loss
/// detection and a resend would be at least one round trip (80 ms on `lossy`) more.
///
/// The queueing allowance was 5 ms until header packing moved the timing of the bulk traffic:
/// the longest gap (cutting `fast`) is always the packet sent just before the cut, whose `lossy`
/// copy met 3.5 ms of bulk in that link's queue before and 7.4 ms after (gaps 41.9 and 45.8 ms).
#[test]
fn redundant_class_has_no_gap_when_either_link_is_black_holed() {
    for cut in 0..2 {
        let mut sc = load("redundant");
        for (i, l) in sc.links.iter_mut().enumerate() {
            for d in [&mut l.up, &mut l.down] {
                d.outages.clear();
                if i == cut {
                    d.outages.push(Outage {
                        start_us: 10_000_000,
                        end_us: 13_000_000,
                        kind: OutageKind::Blackhole,
                    });
                }
            }
        }
        let delays: Vec<u64> = sc.links.iter().map(|l| l.up.delay_us).collect();
        let spread_ms = (delays.iter().max().unwrap() - delays.iter().min().unwrap()) as f64 / 1e3;
        let r = run_shown(&sc);
        assert!(outage_drops(&r, &sc.links[cut].name) > 0);
        let c = r.class("voice", Dir::Up).unwrap();
        let bound = c.interval_ms.unwrap() + spread_ms + 10.0;
        assert_eq!(
            c.lost, 0,
            "link {cut} cut: voice lost {} of {}",
            c.lost, c.sent
        );
        assert!(
            c.longest_gap_ms <= bound,
            "link {cut} cut: voice gap {} ms > {bound} ms",
            c.longest_gap_ms
        );
    }
}

fn assert_lte_aggregated(r: &Report) {
    let up = r.dir(Dir::Up).unwrap();
    assert!(
        up.share >= 0.90,
        "delivered {:.2} of {:.2} Mbit/s = {:.1} %",
        up.delivered_mbit,
        up.capacity_mbit,
        up.share * 100.0
    );
}

/// The generated LTE pair (lte-good + lte-driving, seed 1): 91.9 % when it replaced the recorded
/// traces (issue 18). Not a margin to rely on: over seeds 1-6 the share is 88.8-93.3 %, and the
/// recorded traces give 92.3 % over their first 60 s but 77.9 % over 130 s (where the T-Mobile
/// uplink is fast). `braid sim scenarios/lte.toml --seeds 1-20` shows where the protocol stands.
#[test]
fn lte_traces_are_aggregated() {
    assert_lte_aggregated(&run_shown(&load("lte")));
}

/// The recorded T-Mobile and AT&T LTE traces (scenarios/recorded/lte.toml), when
/// $BRAID_TRACES has them (CI does); a SKIP line otherwise.
#[test]
fn lte_recorded_traces_are_aggregated() {
    let test = "lte_recorded_traces_are_aggregated";
    for f in ["TMobile-LTE-short", "ATT-LTE-driving-2016"] {
        for d in ["up", "down"] {
            if braid::trace::recorded_for_test(&format!("{f}.{d}"), test).is_none() {
                return;
            }
        }
    }
    assert_lte_aggregated(&run_shown(&load("recorded/lte")));
}

#[test]
fn runs_are_reproducible() {
    let mut sc = load("hetero-blackhole");
    sc.set_duration(5_000_000).unwrap();
    let a = serde_json::to_string(&run(&sc).unwrap()).unwrap();
    let b = serde_json::to_string(&run(&sc).unwrap()).unwrap();
    assert_eq!(a, b);
}

/// Datagrams with a flipped bit (tampering on the path) are rejected by the receiving endpoint,
/// never delivered, and what they carried is recovered by resending.
#[test]
fn tampered_datagrams_are_rejected_and_recovered() {
    let mut sc = load("hetero");
    sc.set_duration(10_000_000).unwrap();
    for l in &mut sc.links {
        l.up.corrupt = 0.002;
        l.down.corrupt = 0.002;
    }
    let r = run_shown(&sc);
    let corrupted: u64 = r.links.iter().map(|l| l.stats.corrupted).sum();
    assert!(corrupted > 50, "only {corrupted} datagrams corrupted");
    // Every mangled datagram that arrived before the end was refused (a few may still travel).
    assert!(
        r.tunnel_errors <= corrupted && r.tunnel_errors + 10 >= corrupted,
        "{} refused of {corrupted} corrupted",
        r.tunnel_errors
    );
    let up = r.dir(Dir::Up).unwrap();
    assert_eq!(up.lost, 0, "lost {} of {}", up.lost, up.sent);
    assert_eq!(up.duplicates, 0);
}

#[test]
fn a_download_after_an_upload_takes_each_links_share_back() {
    let mut sc = load("updown");
    sc.timeline = true;
    let r = run_shown(&sc);
    // Second t covers (t - 1 s, t]; the download starts at 11 s.
    let carried: Vec<(u32, f64, f64)> = r
        .timeline
        .iter()
        .filter(|row| row.link == "lossy" && row.dir == Dir::Down && row.t_s > 11)
        .map(|row| (row.t_s, row.carried_mbit, row.rate_mbit))
        .collect();
    println!("lossy down (s, carried, estimate): {carried:?}");
    let late: Vec<f64> = carried
        .iter()
        .filter(|c| (15..=21).contains(&c.0))
        .map(|c| c.1)
        .collect();
    assert_eq!(late.len(), 7);
    let mean = late.iter().sum::<f64>() / late.len() as f64;
    // Measured: 9.9 Mbit/s; 3.4 when the core paced the link at the rate its ACKs had taught it.
    assert!(
        mean >= 8.5,
        "lossy link carried {mean:.2} Mbit/s of its 10 down from 4 s into the download"
    );
    let down = r.tcp.iter().find(|t| t.dir == Dir::Down).expect("download");
    assert!(
        down.share >= 0.85,
        "download: {:.1} % of capacity",
        down.share * 100.0
    );
}

/// Hetero's links (20 Mbit/s 20 ms + 10 Mbit/s 40 ms 0.5 % loss) with `jitter_ms` of delay
/// jitter on every direction (a real loop's timers and scheduling add a few ms to each RTT
/// sample), seed `seed`, running for `secs`, and `traffic` (TOML `[[traffic]]` tables).
fn hetero_jittery(seed: u64, jitter_ms: u32, secs: u32, traffic: &str) -> Scenario {
    let text = format!(
        r#"
        name = "hetero-jittery"
        seed = {seed}
        duration = "{secs}s"
        [[link]]
        name = "fast"
        rate = "20mbit"
        delay = "20ms"
        jitter = "{jitter_ms}ms"
        [[link]]
        name = "lossy"
        rate = "10mbit"
        delay = "40ms"
        jitter = "{jitter_ms}ms"
        loss = "0.5%"
        {traffic}
        "#
    );
    Scenario::parse(&text, "hetero-jittery", None).unwrap_or_else(|e| panic!("{e}"))
}

/// 8 TCP flows in `dir` from `start` to `stop` (s).
fn tcp8(dir: &str, start: u32, stop: u32) -> String {
    format!(
        "[[traffic]]\nname = \"{dir}\"\nkind = \"tcp\"\ndir = \"{dir}\"\nflows = 8\n\
         start = \"{start}s\"\nstop = \"{stop}s\"\n"
    )
}

#[test]
fn a_download_after_an_upload_gets_what_a_first_download_gets_on_jittery_links() {
    // Issue 17: on real links, a download right after an upload got 80 % of the sum where a
    // first download got 91 %. With 3 ms of jitter the core's downstream estimates, taught by
    // the upload's ACKs (1.3 of the fast link's 20 Mbit/s), stayed there for the whole
    // download (34-75 %), or climbed back 1/8 per probe cycle.
    for seed in 1..=3 {
        let first = run_shown(&hetero_jittery(seed, 3, 15, &tcp8("down", 0, 15)));
        let after = run_shown(&hetero_jittery(
            seed,
            3,
            30,
            &(tcp8("up", 0, 15) + &tcp8("down", 15, 30)),
        ));
        let share = |r: &Report| {
            r.tcp
                .iter()
                .find(|t| t.dir == Dir::Down)
                .expect("download")
                .share
        };
        let (first, after) = (share(&first), share(&after));
        println!(
            "seed {seed}: first download {:.1} %, after an upload {:.1} %",
            first * 100.0,
            after * 100.0
        );
        assert!(
            after >= first - 0.03,
            "seed {seed}: a download after an upload got {:.1} % of the links, a first one {:.1} %",
            after * 100.0,
            first * 100.0
        );
    }
}

/// `secs` s of a link direction at `mbit`, except `low` Mbit/s over [from, to) s: a Mahimahi
/// trace (one 1500-byte opportunity per line, in ms).
fn dip_trace(mbit: f64, low: f64, from: f64, to: f64, secs: u64) -> braid::sim::link::Trace {
    let mut ms = Vec::new();
    let mut acc = 0.0;
    for t in 1..=secs * 1000 {
        let s = t as f64 / 1000.0;
        let rate = if (from..to).contains(&s) { low } else { mbit };
        acc += rate * 1e6 / 8.0 / 1500.0 / 1000.0;
        while acc >= 1.0 {
            ms.push(t);
            acc -= 1.0;
        }
    }
    braid::sim::link::Trace::from_ms("dip", ms)
}

#[test]
fn a_link_takes_its_share_back_within_three_seconds_after_a_dip() {
    // One link's capacity drops to a fifth for 3 s mid-download (8-11 s; cross traffic, a
    // cell's load), then comes back. Every link must carry >= 80 % of its capacity in the
    // third second after the dip and >= 90 % in every second from then on. Before the fix
    // (seeds 1-4): after the lossy link's dip it carried 3.9 then 8.5 of its 10 Mbit/s in the
    // third and fourth seconds (seed 2); after the fast link's dip the lossy one, which had
    // none, carried 7.5-8.9 until the end (seed 4). After: 8.0 in the third second at worst.
    for seed in 1..=4 {
        for (dipped, mbit) in [("lossy", 10.0), ("fast", 20.0)] {
            let mut sc = hetero_jittery(seed, 2, 20, &tcp8("down", 0, 20));
            sc.timeline = true;
            let l = sc.links.iter_mut().find(|l| l.name == dipped).unwrap();
            l.down.rate = braid::sim::link::Rate::Trace {
                trace: std::sync::Arc::new(dip_trace(mbit, mbit / 5.0, 8.0, 11.0, 20)),
                offset_us: 0,
            };
            let r = run_shown(&sc);
            for (link, cap) in [("fast", 20.0), ("lossy", 10.0)] {
                // Second t covers (t - 1 s, t]: 14 is the third second after the dip.
                let rows: Vec<(u32, f64)> = r
                    .timeline
                    .iter()
                    .filter(|row| row.link == link && row.dir == Dir::Down)
                    .filter(|row| (14..=20).contains(&row.t_s))
                    .map(|row| (row.t_s, row.carried_mbit))
                    .collect();
                println!("seed {seed}, {dipped} dipped: {link} down (s, carried): {rows:?}");
                assert_eq!(rows.len(), 7);
                for &(t, carried) in &rows {
                    let need = if t == 14 { 0.8 } else { 0.9 };
                    assert!(
                        carried >= need * cap,
                        "seed {seed}, {dipped} dipped 8-11 s: {link} carried {carried:.2} of \
                         {cap} Mbit/s in second {t}"
                    );
                }
            }
        }
    }
}
