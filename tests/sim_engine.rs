//! The simulator checked against itself: the single-path stand-in tunnel over simple links must
//! give the numbers the link model implies (rate, delay, loss, outage), runs must be
//! reproducible, every shipped scenario must parse, and the command line must behave.

use std::path::Path;
use std::process::Command;

use braid::sim::scenario::Dir;
use braid::sim::{run, Report, Scenario};

fn scenario(text: &str) -> Scenario {
    Scenario::parse(
        text,
        "inline.toml",
        Some(Path::new(env!("CARGO_MANIFEST_DIR"))),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn pipe_run(links: &str, traffic: &str) -> Report {
    let text = format!("tunnel = \"pipe\"\nduration = \"10s\"\nseed = 3\n{links}\n{traffic}");
    run(&scenario(&text)).unwrap()
}

const ONE_LINK: &str = "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\n";
const BULK: &str = "[[traffic]]\nkind = \"bulk\"\nsize = 1400\n";

#[test]
fn stand_in_fills_a_fixed_link() {
    let r = pipe_run(ONE_LINK, BULK);
    let up = r.dir(Dir::Up).unwrap();
    // 1400 inner bytes ride in 1400 + 1 (stand-in mark) + 28 (IP/UDP) on the wire.
    let ceiling = 1400.0 / 1429.0;
    assert!(
        up.share <= ceiling && up.share > ceiling - 0.01,
        "share {}",
        up.share
    );
    assert_eq!(up.lost, 0);
    assert_eq!(up.in_order_ratio, 1.0);
    assert!(
        (r.links[0].carried_mbit - 10.0).abs() < 0.1,
        "{}",
        r.links[0].carried_mbit
    );
}

#[test]
fn delay_is_exact_on_an_idle_link() {
    let r = pipe_run(
        ONE_LINK,
        "[[traffic]]\nkind = \"interactive\"\ninterval = \"10ms\"\nsize = 100\n",
    );
    let up = r.dir(Dir::Up).unwrap();
    // 25 ms + serialisation of 100 + 1 + 28 bytes at 10 Mbit/s (103.2 µs, rounded up to µs).
    assert_eq!(up.latency_ms.p50, 25.104);
    assert_eq!(up.latency_ms.max, 25.104);
    assert_eq!(up.delivered, 1000);
    assert_eq!(up.longest_gap_ms, 10.0);
    // One link: the slowest is the only one, so nothing is added.
    assert_eq!(up.added_delay_ms.max, 0.104);
}

#[test]
fn stand_in_shows_link_loss_as_loss() {
    let r = pipe_run(
        "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\nloss = \"2%\"\n",
        BULK,
    );
    let up = r.dir(Dir::Up).unwrap();
    assert!(
        (up.loss_ratio - 0.02).abs() < 0.003,
        "loss {}",
        up.loss_ratio
    );
    assert_eq!(up.lost, r.links[0].stats.drop_loss);
}

#[test]
fn blackhole_shows_as_gap_and_loss() {
    let r = pipe_run(
        "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\noutages = [{ at = \"4s\", for = \"1s\" }]\n",
        BULK,
    );
    let up = r.dir(Dir::Up).unwrap();
    assert!(
        up.longest_gap_ms >= 1000.0 && up.longest_gap_ms < 1030.0,
        "gap {}",
        up.longest_gap_ms
    );
    assert_eq!(up.lost, r.links[0].stats.drop_outage);
    // About a second of packets (10 Mbit/s / 1429 bytes), plus those in flight when it began.
    assert!((870..=900).contains(&up.lost), "lost {}", up.lost);
    // Capacity leaves out the outage.
    assert!(
        (up.capacity_mbit - 9.0).abs() < 0.01,
        "{}",
        up.capacity_mbit
    );
}

#[test]
fn stall_holds_instead_of_dropping() {
    let r = pipe_run(
        "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\nqueue = \"2MB\"\noutages = [{ at = \"4s\", for = \"1s\", kind = \"stall\" }]\n",
        BULK,
    );
    let up = r.dir(Dir::Up).unwrap();
    assert_eq!(up.lost, 0);
    assert!(up.longest_gap_ms >= 1000.0, "gap {}", up.longest_gap_ms);
}

#[test]
fn same_seed_same_report_other_seed_other_report() {
    let links = "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\njitter = \"3ms\"\nloss = \"1%\"\n";
    let a = serde_json::to_string(&pipe_run(links, BULK)).unwrap();
    let b = serde_json::to_string(&pipe_run(links, BULK)).unwrap();
    assert_eq!(a, b);
    let text = format!("tunnel = \"pipe\"\nduration = \"10s\"\nseed = 4\n{links}\n{BULK}");
    let c = serde_json::to_string(&run(&scenario(&text)).unwrap()).unwrap();
    assert_ne!(a, c);
}

#[test]
fn trace_link_carries_the_trace() {
    // A constant trace (one 1500-byte opportunity per ms = 12 Mbit/s) as a file beside the test.
    let dir = std::env::temp_dir().join(format!("braid-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("flat.trace"), "1\n").unwrap();
    let text = format!(
        "tunnel = \"pipe\"\nduration = \"5s\"\n[[link]]\ntrace = \"flat.trace\"\ndelay = \"10ms\"\n{BULK}"
    );
    let sc = Scenario::parse(&text, "inline.toml", Some(&dir)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let r = run(&sc).unwrap();
    let up = r.dir(Dir::Up).unwrap();
    assert!((up.capacity_mbit - 12.0).abs() < 0.01);
    assert!(
        up.share > 0.96 && up.share <= 1400.0 / 1429.0,
        "share {}",
        up.share
    );
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 8, "only {n} scenarios");
}

fn braid(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .arg("sim")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_help_table_json_and_errors() {
    let (ok, out, _) = braid(&["--help"]);
    assert!(ok && out.contains("SCENARIO FILE") && out.contains("added delay"));

    let (ok, out, err) = braid(&["scenarios/pipe.toml", "--duration", "2s"]);
    assert!(ok, "{err}");
    assert!(out.contains("delivered") && !out.contains("Jain") && out.contains("only"));

    let (ok, out, err) = braid(&[
        "scenarios/pipe.toml",
        "--json",
        "--seed",
        "9",
        "--duration",
        "1s",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["seed"], 9);
    assert_eq!(v["duration_s"], 1.0);
    assert!(v["directions"][0]["delivered_mbit"].as_f64().unwrap() > 5.0);

    let (ok, out, err) = braid(&["scenarios/pipe.toml", "--seeds", "3-5", "--duration", "1s"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(" up ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with('3') && lines[2].starts_with('5'),
        "{out}"
    );
    let (ok, _, err) = braid(&["scenarios/pipe.toml", "--seeds", "5-3"]);
    assert!(!ok && err.contains("--seeds"), "{err}");

    let dir = std::env::temp_dir().join(format!("braid-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[link]]\nrate = \"10mbit\"\ndelay = 25\n").unwrap();
    let (ok, _, err) = braid(&[bad.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!ok);
    assert!(
        err.contains("bad.toml:3:") && err.contains("delay"),
        "{err}"
    );

    let (ok, _, err) = braid(&[]);
    assert!(!ok && err.contains("which scenario"), "{err}");
    let (ok, _, err) = braid(&["scenarios/pipe.toml", "--bogus"]);
    assert!(!ok && err.contains("--bogus"), "{err}");
}

#[test]
fn both_directions_are_measured_apart() {
    let r = pipe_run(
        "[[link]]\nrate = \"10mbit\"\ndelay = \"25ms\"\n[link.down]\nrate = \"20mbit\"\ndelay = \"5ms\"\n",
        "[[traffic]]\nkind = \"bulk\"\nuser = 1\n[[traffic]]\nkind = \"bulk\"\ndir = \"down\"\nuser = 2\n",
    );
    let up = r.dir(Dir::Up).unwrap();
    let down = r.dir(Dir::Down).unwrap();
    assert!((up.capacity_mbit - 10.0).abs() < 1e-9 && (down.capacity_mbit - 20.0).abs() < 1e-9);
    assert!(
        up.share > 0.96 && down.share > 0.96,
        "{} {}",
        up.share,
        down.share
    );
    // Each direction: its own delay plus the stand-in's full 64 KiB queue at its own rate.
    let expect = |delay_ms: f64, mbit: f64| delay_ms + 65536.0 * 8.0 / (mbit * 1e3);
    assert!(
        (up.latency_ms.p50 - expect(25.0, 10.0)).abs() < 5.0,
        "{}",
        up.latency_ms.p50
    );
    assert!(
        (down.latency_ms.p50 - expect(5.0, 20.0)).abs() < 5.0,
        "{}",
        down.latency_ms.p50
    );
    let users: Vec<(u32, Dir)> = r.users.iter().map(|u| (u.user, u.dir)).collect();
    assert_eq!(users, vec![(1, Dir::Up), (2, Dir::Down)]);
}

/// The unused-capacity breakdown adds up (causes sum to the total, the total is the capacity
/// less what was served) and puts a black hole's time down to the link being Down.
#[test]
fn unused_capacity_adds_up_and_names_the_outage() {
    let text = "duration = \"10s\"\nseed = 1\n\
        [[link]]\nname = \"a\"\nrate = \"10mbit\"\ndelay = \"20ms\"\n\
        outages = [{ at = \"3s\", for = \"3s\", kind = \"blackhole\" }]\n\
        [[link]]\nname = \"b\"\nrate = \"5mbit\"\ndelay = \"30ms\"\n\
        [[traffic]]\nkind = \"bulk\"\nflows = 4\n";
    let r = run(&scenario(text)).unwrap();
    let a = r
        .links
        .iter()
        .find(|l| l.link == "a" && l.dir == Dir::Up)
        .unwrap();
    let u = a
        .unused
        .as_ref()
        .expect("the session shows its link states");
    let sum = u.down_mbit + u.at_cap_mbit + u.pacer_mbit + u.idle_mbit;
    assert!((sum - u.total_mbit).abs() < 1e-9, "{u:?}");
    // Capacity counts no outage window; what was served is about what arrived.
    assert!(
        (u.total_mbit - (a.capacity_mbit - a.carried_mbit)).abs() < 0.1,
        "{u:?} capacity {} carried {}",
        a.capacity_mbit,
        a.carried_mbit
    );
    // The link was Down for most of the 3 s black hole (after its timeout, until probes
    // brought it back).
    assert!(u.down_s > 2.0 && u.down_s < 3.5, "{u:?}");
    // No traffic downstream: no breakdown there; the stand-in tunnel shows none at all.
    assert!(r
        .links
        .iter()
        .all(|l| l.dir == Dir::Up || l.unused.is_none()));
    assert!(pipe_run(ONE_LINK, BULK)
        .links
        .iter()
        .all(|l| l.unused.is_none()));
}

/// One TCP flow alone on a link, no tunnel (the lab's `direct`): what TCP over that link is.
fn direct_tcp(link: &str, cc: &str, secs: u32) -> Report {
    let text = format!(
        "tunnel = \"direct\"\nduration = \"{secs}s\"\nseed = 1\n{link}\n\
         [[traffic]]\nname = \"t\"\nkind = \"tcp\"\ncc = \"{cc}\"\ndir = \"down\"\n"
    );
    run(&scenario(&text)).unwrap()
}

#[test]
fn tcp_alone_on_a_clean_link_gets_what_its_headers_leave() {
    // 20 Mbit/s, 40 ms RTT, 100 ms drop-tail queue: Linux gets 19.1-19.4 Mbit/s here in the
    // lab (`braid lab run hetero --mode direct`, wan0). The ceiling is 1448 of every 1500 bytes.
    for cc in ["cubic", "reno", "bbr"] {
        let r = direct_tcp(
            "[[link]]\nrate = \"20mbit\"\ndelay = \"20ms\"\nqueue = \"100ms\"\n",
            cc,
            20,
        );
        let t = r.tcp("t").unwrap();
        let ceiling = 1448.0 / 1500.0;
        assert!(
            t.share > 0.93 && t.share <= ceiling,
            "{cc}: {:.3} of the link",
            t.share
        );
        assert_eq!(t.stats.rtos, 0, "{cc}");
        // Only the queue's overflows are resent, and none of them needlessly.
        assert!(t.stats.spurious <= 2, "{cc}: {:?}", t.stats);
        // Every ACK of the download went up the same link, as inner packets of 52+ bytes.
        assert!(r
            .links
            .iter()
            .any(|l| l.dir == Dir::Up && l.stats.offered_packets > 1000));
    }
}

#[test]
fn tcp_backs_off_on_random_loss_and_recovers_without_timeouts() {
    // 1 % random loss at 10 Mbit/s, 80 ms RTT: a loss every ~100 segments keeps CUBIC well
    // under the link (Mathis: about 1.2 x MSS / (RTT x sqrt(p)) = 2.1 Mbit/s for Reno).
    let r = direct_tcp(
        "[[link]]\nrate = \"10mbit\"\ndelay = \"40ms\"\nloss = \"1%\"\n",
        "reno",
        30,
    );
    let t = r.tcp("t").unwrap();
    assert!(
        t.stats.goodput_mbit > 1.2 && t.stats.goodput_mbit < 5.0,
        "{:?}",
        t.stats
    );
    // About one segment in a hundred resent, a fast recovery for most losses, no timeout.
    let resent = t.stats.retransmits as f64 / t.stats.segments as f64;
    assert!(resent > 0.007 && resent < 0.013, "{resent} {:?}", t.stats);
    assert!(t.stats.recoveries > 25, "{:?}", t.stats);
    assert_eq!(t.stats.rtos, 0, "{:?}", t.stats);
}

#[test]
fn tcp_flows_run_through_the_tunnel_both_ways() {
    for dir in ["up", "down"] {
        let text = format!(
            "duration = \"15s\"\nseed = 1\n\
             [[link]]\nname = \"fast\"\nrate = \"20mbit\"\ndelay = \"20ms\"\n\
             [[link]]\nname = \"slow\"\nrate = \"10mbit\"\ndelay = \"40ms\"\n\
             [[traffic]]\nname = \"t\"\nkind = \"tcp\"\nflows = 4\ndir = \"{dir}\"\n\
             [[traffic]]\nname = \"ping\"\nkind = \"interactive\"\ninterval = \"50ms\"\ndir = \"{dir}\"\n"
        );
        let r = run(&scenario(&text)).unwrap();
        let t = r.tcp("t").unwrap();
        // Both links carry it: well above the fast link alone, below the header bound.
        assert!(
            t.share > 0.85 && t.share < 0.95,
            "{dir}: {:.3} {:?}",
            t.share,
            t.stats
        );
        assert_eq!(r.corrupt, 0, "{dir}");
        assert_eq!(r.tunnel_errors, 0, "{dir}");
        // The paced traffic beside it is measured as before, the TCP packets are not.
        let d = r.dirs_of(dir);
        assert!(d.delivered > 250 && d.lost == 0, "{dir}: {d:?}");
    }
}

#[test]
fn workload_and_tunnel_options_replace_traffic_and_path() {
    let (ok, out, err) = braid(&[
        "scenarios/hetero.toml",
        "--workload",
        "tcp2-down",
        "--tunnel",
        "direct:lossy",
        "--duration",
        "6s",
        "--timeline",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("TCP tcp2-down (Downstream, 2 x Cubic)"),
        "{out}"
    );
    assert!(out.contains("of 10.00 Mbit/s capacity"), "{out}");
    assert!(out.contains("Downstream, per second"), "{out}");
    let (ok, _, err) = braid(&["scenarios/hetero.toml", "--tunnel", "direct:nope"]);
    assert!(!ok && err.contains("no link named `nope`"), "{err}");
    let (ok, _, err) = braid(&["scenarios/hetero.toml", "--workload", "tcp0-up"]);
    assert!(!ok && err.contains("--workload"), "{err}");
    let (ok, _, err) = braid(&["scenarios/hetero.toml", "--cc", "vegas"]);
    assert!(!ok && err.contains("--cc"), "{err}");
}

#[test]
fn a_workload_sequence_runs_its_steps_one_after_the_other_in_one_session() {
    // Issue 17: an upload, then at once a download, with what the first taught the estimates.
    let (ok, out, err) = braid(&[
        "scenarios/hetero.toml",
        "--workload",
        "tcp4-up,tcp4-down",
        "--duration",
        "10s",
        "--seeds",
        "1-1",
    ]);
    assert!(ok, "{err}");
    let tcp: Vec<&str> = out.lines().filter(|l| l.contains("tcp 4 x")).collect();
    assert_eq!(tcp.len(), 2, "{out}");
    // Each step is judged over its own 5 s (less the first 2 s, as the lab): an upload that
    // stops halfway through the run is not reported at half its rate.
    for (line, dir) in tcp.iter().zip(["up", "down"]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[1], dir, "{out}");
        let share: f64 = f[3].parse().unwrap();
        assert!(share > 80.0, "{dir}: {share} % {out}");
    }
    let (ok, _, err) = braid(&["scenarios/hetero.toml", "--workload", "tcp8-up,"]);
    assert!(!ok && err.contains("sequence"), "{err}");
}
