//! The deterministic multi-link simulator behind `braid sim` and the `tests/sim_*.rs` tests.
//!
//! Two protocol endpoints (edge and core) exchange datagrams over emulated links on a virtual
//! clock. Nothing reads the wall clock and every random draw comes from the scenario's seed, so a
//! run is a pure function of its scenario file: same seed, same numbers, on every machine.
//!
//! # Layout
//! - [`scenario`]: the scenario file format (TOML subset read by [`toml`]), strict, with errors
//!   that name the line and the field.
//! - [`link`]: one direction of a link: drop-tail queue, fixed or Mahimahi-trace rate, delay,
//!   jitter, random and Gilbert-Elliott loss, black-hole and stall outages.
//! - [`traffic`]: bulk (saturating, through `can_send` back-pressure), interactive and realtime
//!   sources, and the tag each inner packet carries.
//! - [`tunnel`]: the [`Tunnel`](tunnel::Tunnel) trait the engine drives, and the single-path
//!   stand-in [`Pipe`](tunnel::Pipe); [`session`] runs the daemons' own protocol objects: the
//!   edge's `proto::Session` and the core's `proto::endpoint::Endpoint` (handshakes included).
//! - [`engine`]: the event loop; [`metrics`]: what is measured and the report.
#![forbid(unsafe_code)]

pub mod engine;
pub mod link;
pub(crate) mod metrics;
pub(crate) mod rng;
pub mod scenario;
pub(crate) mod session;
pub(crate) mod tcp;
pub(crate) mod toml;
pub(crate) mod traffic;
pub(crate) mod tunnel;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub use engine::{run, run_with, SimError};
pub use metrics::Report;
pub use scenario::{Scenario, ScenarioError};

const HELP: &str = r#"braid sim - run a scenario on the deterministic multi-link simulator

USAGE:
    braid sim SCENARIO.toml [--json] [--seed N | --seeds A-B] [--duration 60s] [--traces DIR]
                            [--tunnel session|pipe|direct[:LINK]] [--workload W [--cc CC]] [--timeline]

Runs the real protocol (the edge's session and the core's endpoint, as the daemons run them) over
emulated links on a virtual clock and prints what it measured. Same file and seed = same numbers.
SCENARIO is a file, or a name looked up in scenarios/ then scenarios/lab/ (hetero, lte,
recorded/NAME, ...; `braid lab run` looks in the other order). The lab reads the same files
(`braid lab show NAME`: its links as the lab emulates them); a lab scenario has no [[traffic]]:
give it --workload.

OPTIONS:
    --json            print the report as JSON instead of the table
    --seed N          override the scenario's seed (its gen: traces follow it unless they name one)
    --seeds A-B       run every seed from A to B (or 1 to N with --seeds N): one summary line each
    --duration D      override how long the traffic runs ("60s", "500ms")
    --tunnel KIND     session (the protocol), pipe (a single-path stand-in, to test the simulator),
                      or direct[:LINK] (no tunnel: inner packets as they are over one link, the
                      first or LINK; the lab's `direct`, the best single link's baseline)
    --workload W      replace the scenario's bulk and tcp traffic by W: tcpN-up, tcpN-down (N TCP
                      flows, as the lab's bulkN-*) or bulkN-up, bulkN-down (saturating sources);
                      or a sequence in one session, tcp8-up,tcp8-down: each step runs an equal
                      part of the duration, the next as the previous stops
    --cc CC           congestion control of --workload's TCP flows: cubic (default), reno, bbr
    --timeline        also print a per-second table of every link (capacity, carried, the sender's
                      estimate and pacing, in flight and cap, queued, srtt) and of each direction
                      (TCP goodput, resends, reorder timeouts); in --json: timeline, timeline_ends
    --traces DIR      where recorded traces are (default: $BRAID_TRACES)
    -h, --help        this text

SCENARIO FILE (TOML; durations need units: "20ms", "3s"; rates as in /etc/config/braid:
"20mbit", "512kbit", "1gbit" or plain bits/s, never "bps"):
    name = "hetero"               # defaults to the file name
    seed = 1                      # the run's only source of randomness
    duration = "60s"              # traffic runs this long ...
    warmup = "0s"                 # ... rates and fairness count from here ...
    drain = "3s"                  # ... and in-flight packets get this long to arrive
    outages = [{ at = "40s", for = "5s" }]  # every link at once (a tunnel), after their own
    best = "lte"                  # lab only: the link of its `direct` baseline
    edges = 1                     # lab only: edges (1-4), each with a copy of the links
    clients = 1                   # lab only: clients per edge (1-16)

    [[link]]                      # one per uplink; both directions unless [link.up]/[link.down]
    name = "lte"
    rate = "20mbit"               # or "unlimited" (lab only), or a Mahimahi trace (braid trace --help):
                                  #  trace = "gen:lte-driving" generated: each direction its own
                                  #  (gen:P/up, gen:P/down), seed = the scenario's, modem = the
                                  #  link's position, 120 s; or "gen:hsr/up?seed=3&modem=1&seconds=60"
                                  #  presets: lte-good lte-driving umts hsr (braid trace list)
                                  #  trace = "TMobile-LTE-short" recorded: NAME.up / NAME.down (or
                                  #  NAME) in --traces DIR or $BRAID_TRACES, then beside the scenario
    trace_offset = "30s"          # start a trace this far in (decorrelates two copies)
    delay = "20ms"                # one-way propagation delay
    jitter = "2ms"                # delay is uniform in delay +- jitter; no reordering ...
    reorder = false               # ... unless this is true
    loss = "0.5%"                 # random loss (or a fraction: 0.005)
    burst_loss = { enter = "1%", leave = "30%", loss_bad = "100%", loss_good = "0%" }
                                  # Gilbert-Elliott: per-packet chance to enter/leave the bad state
    loss_burst = 3                # or: make `loss` bursty, bursts of 3 packets on average
    corrupt = "0.1%"              # datagrams that arrive with one bit flipped (simulator only)
    queue = "100ms"               # drop-tail limit: time at the link's rate (a trace's mean),
                                  # "64kB" (at least 3 kB) or "unlimited"
    outages = [{ at = "20s", for = "3s", kind = "blackhole", every = "30s" }]
                                  # blackhole: all sent/queued/travelling is lost; stall: held;
                                  # every: again each period until the duration
    handover = "10-30s 30-80ms stall"        # seeded: one after each random interval
    failed_handover = "60s 0.5-3s blackhole" # seeded: one at a random time in each period
    role = "primary"              # primary | secondary | backup | never (given to the session)
    weight = 1
    rate_cap = "15mbit"           # optional cap given to the session
    [link.down]                   # override any of the per-direction keys for core -> edge
    rate = "50mbit"

    [[class]]                     # "default" (aggregate) always exists
    name = "voice"
    mode = "redundant"            # aggregate | weighted | redundant | backup | "pinned:LINK"
    priority = 2                  # higher is served first
    weight = 1

    [[traffic]]
    kind = "bulk"                 # bulk: keeps the tunnel's queue full via can_send
                                  # tcp: `flows` TCP connections (client behind the edge, server
                                  #   behind the core), segments of the tunnel's MTU (1400; 1500
                                  #   direct); cc = "cubic" | "reno" | "bbr" (see src/sim/tcp.rs)
                                  # interactive: one packet every `interval`
                                  # realtime: constant `rate`
    user = 1                      # client host; fairness is across users
    class = "default"
    dir = "up"                    # up = edge to core, down = core to edge
    size = 1400                   # inner packet bytes (bulk default 1400)
    flows = 1                     # 5-tuples the packets are spread over
    start = "0s"
    stop = "60s"
    interval = "20ms"             # interactive
    rate = "64kbit"               # realtime

WHAT IS MEASURED (per direction, class, user and link):
    delivered      inner bytes leaving the tunnel per second, from warmup to duration
    share          delivered / summed link capacity; capacity counts whole outer IP packets
                   (datagram + 28 bytes IPv4/UDP) and leaves out outage windows
    lost           packets the tunnel accepted that never left it (after the drain)
    in order       share of packets not overtaken by a later packet of the same flow
    added delay    one-way delay above the slowest link's one-way delay (floored at 0)
    queueing       one-way delay above the base delay of the link that brought the packet
    longest gap    longest time without any delivery (overall, per class, per flow) until duration
    unused         per link direction with traffic: capacity less the wire bytes it served, split
                   by what the sender did with the link then (10 ms samples): Down, at its
                   in-flight cap, data queued but held by the pacer, or nothing queued (idle);
                   and the seconds it spent Down, Degraded and at the cap
    Jain           fairness of delivered bytes across users running bulk traffic
    TCP            goodput: in-order bytes the receivers hand to their application, leaving out
                   the first 2 s of the transfer as the lab does; share of the capacity; the
                   senders' resends (and how many the receiver reported as duplicates), fast
                   recoveries, timeouts, undone reductions, and the longest stall of a flow
"#;

/// `braid sim SCENARIO [--json]`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    match cli(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("braid sim: {msg}");
            ExitCode::from(2)
        }
    }
}

fn cli(args: Vec<OsString>) -> Result<ExitCode, String> {
    use crate::cli::opt_value;
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut file: Option<PathBuf> = None;
    let mut json = false;
    let mut seed: Option<u64> = None;
    let mut seeds: Option<(u64, u64)> = None;
    let mut duration: Option<u64> = None;
    let mut tunnel: Option<String> = None;
    let mut workload: Option<String> = None;
    let mut cc = scenario::Cc::Cubic;
    let mut timeline = false;
    let mut traces: Option<PathBuf> = None;
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Long("json") => json = true,
            Long("seed") => {
                let v = opt_value(&mut p)?;
                seed =
                    Some(v.to_string_lossy().parse().map_err(|_| {
                        format!("--seed: `{}` is not a number", v.to_string_lossy())
                    })?);
            }
            Long("seeds") => {
                let v = opt_value(&mut p)?;
                let v = v.to_string_lossy();
                let bad = || format!("--seeds: `{v}` is not a range like 1-20 or a count like 20");
                let num = |x: &str| x.trim().parse::<u64>().map_err(|_| bad());
                seeds = Some(match v.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    None => (1, num(&v)?),
                });
                if seeds.is_some_and(|(a, b)| a > b) {
                    return Err(bad());
                }
            }
            Long("duration") => {
                let v = opt_value(&mut p)?;
                duration = Some(
                    scenario::parse_duration(&v.to_string_lossy())
                        .map_err(|e| format!("--duration: {e}"))?,
                );
            }
            Long("tunnel") => tunnel = Some(opt_value(&mut p)?.to_string_lossy().into()),
            Long("workload") => workload = Some(opt_value(&mut p)?.to_string_lossy().into()),
            Long("timeline") => timeline = true,
            Long("cc") => {
                let v = opt_value(&mut p)?;
                let v = v.to_string_lossy();
                cc = scenario::Cc::parse(&v)
                    .ok_or_else(|| format!("--cc: `{v}` is not cubic, reno or bbr"))?;
            }
            Long("traces") => traces = Some(opt_value(&mut p)?.into()),
            Value(v) if file.is_none() => file = Some(v.into()),
            other => return Err(format!("{} (see braid sim --help)", other.unexpected())),
        }
    }
    let Some(file) = file else {
        return Err("which scenario? usage: braid sim SCENARIO [--json] (see --help; scenarios are in scenarios/)".into());
    };
    let file = scenario::find(&file.to_string_lossy())?;
    let opts = scenario::LoadOpts {
        traces: traces.or_else(crate::trace::traces_from_env),
        seed,
    };
    // The scenario for one seed (its generated traces follow the seed), with the overrides.
    let load = |seed: Option<u64>| -> Result<Scenario, String> {
        let o = scenario::LoadOpts {
            seed: seed.or(opts.seed),
            ..opts.clone()
        };
        let mut sc = Scenario::load_with(&file, &o).map_err(|e| e.to_string())?;
        if let Some(d) = duration {
            sc.set_duration(d).map_err(|e| format!("--duration: {e}"))?;
        }
        if let Some(t) = &tunnel {
            sc.tunnel =
                scenario::TunnelKind::parse(t, &sc.links).map_err(|e| format!("--tunnel: {e}"))?;
        }
        if let Some(w) = &workload {
            sc.set_workload(w, cc)
                .map_err(|e| format!("--workload: {e}"))?;
        }
        if sc.traffic.is_empty() {
            return Err(format!(
                "{}: no [[traffic]] (nothing to send; a lab scenario): add one, or give --workload",
                file.display()
            ));
        }
        sc.timeline = timeline;
        Ok(sc)
    };
    let sc = load(None)?;
    if let Some((a, b)) = seeds {
        return sweep(|s| load(Some(s)), &sc, a, b, json, &file);
    }
    let report = run(&sc).map_err(|e| format!("{}: {e}", file.display()))?;
    let cpu = cpu_line(1, &sc);
    if json {
        print_json(&report, &cpu)?;
    } else {
        print!("{}", report.table());
        if timeline {
            print!("{}", report.timeline_table());
        }
        println!("\n{cpu}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--json`: `v` on stdout, which stays pure JSON, and the `cpu` line on stderr.
fn print_json(v: &impl serde::Serialize, cpu: &str) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    eprintln!("{cpu}");
    Ok(())
}

/// "cpu 1.23 s (user+sys) for 2 runs of 60 s simulated (+3 s drain)": the CPU time of the whole
/// process so far (parsing the scenario and its traces included), as `time` would show it.
fn cpu_line(runs: u64, sc: &Scenario) -> String {
    let runs = if runs == 1 {
        String::new()
    } else {
        format!("{runs} runs of ")
    };
    format!(
        "cpu {:.2} s (user+sys) for {runs}{} s simulated (+{} s drain)",
        crate::cli::cpu_seconds(),
        sc.duration_us as f64 / 1e6,
        sc.drain_us as f64 / 1e6
    )
}

/// Run seeds `a..=b` (`load` gives the scenario for a seed), one summary line per seed and
/// direction (or a JSON array of reports).
fn sweep(
    load: impl Fn(u64) -> Result<Scenario, String>,
    sc: &Scenario,
    a: u64,
    b: u64,
    json: bool,
    file: &std::path::Path,
) -> Result<ExitCode, String> {
    let mut reports = Vec::new();
    if !json {
        println!("scenario {}  seeds {a}-{b}", sc.name);
        println!(
            "seed  dir    Mbit/s  share %   lost  in order %  added p50/p99 ms  gap ms    Jain"
        );
    }
    for s in a..=b {
        let sc = load(s)?;
        let r = run(&sc).map_err(|e| format!("{} (seed {s}): {e}", file.display()))?;
        if json {
            reports.push(r);
            continue;
        }
        for d in &r.directions {
            println!(
                "{:<5} {:<5} {:>7.2} {:>8.2} {:>6} {:>11.3} {:>8.1}/{:<8.1} {:>6.1} {:>7}",
                s,
                d.dir.name(),
                d.delivered_mbit,
                d.share * 100.0,
                d.lost,
                d.in_order_ratio * 100.0,
                d.added_delay_ms.p50,
                d.added_delay_ms.p99,
                d.longest_gap_ms,
                d.jain.map_or("-".to_string(), |j| format!("{j:.4}")),
            );
        }
        for t in &r.tcp {
            let st = &t.stats;
            println!(
                "{:<5} {:<5} {:>7.2} {:>8.2}  tcp {} x {:?}: flows {:.2}-{:.2}, resent {} ({} spurious), {} rto, stall {:.0} ms",
                s,
                t.dir.name(),
                st.goodput_mbit,
                t.share * 100.0,
                st.flows,
                t.cc,
                st.flow_min_mbit,
                st.flow_max_mbit,
                st.retransmits,
                st.spurious,
                st.rtos,
                st.longest_stall_ms,
            );
        }
    }
    let cpu = cpu_line(b - a + 1, sc);
    if json {
        print_json(&reports, &cpu)?;
    } else {
        println!("{cpu}");
    }
    Ok(ExitCode::SUCCESS)
}
