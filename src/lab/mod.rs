//! Emulated topologies in network namespaces: links, scenarios, workloads, reports.
//!
//! `braid lab` builds client - edge - link namespaces - core - server with iproute2, emulates
//! each uplink per packet in user space ([`emu`], [`link`]: this kernel has no netem), carries
//! the client's traffic `direct`, over `mptcp` or through `braid` ([`mode`]), runs built-in
//! workloads ([`work`]) and reports ([`report`]). Everything it creates is named `bl*-` and is
//! removed on exit, on error, on SIGINT/SIGTERM, and by `braid lab clean`.
//!
//! # Layout
//! - [`emu`]: the sans-IO per-packet engine of one link direction; it replays
//!   [`crate::linkmodel`], the simulator's model (rate or trace, delay, jitter, loss, queue,
//!   outages). [`trace`]: Mahimahi traces.
//! - [`link`]: a link emulator thread on two veths (AF_PACKET). [`sys`]: `ip`, `nft`, setns,
//!   the ethtool ioctl, packet sockets.
//! - [`topo`]: the namespaces and veths, [`Topology`] (tears down on drop), [`topo::clean`].
//!   [`fw4`]: a stand-in of OpenWrt's firewall on each edge, with the package's hub zone.
//! - [`scenario`]: `scenarios/lab/*.toml` and `scenarios/*.toml`, read by the simulator's parser.
//!   [`mode`]: direct / mptcp / braid.
//! - [`work`]: workloads and sampling. [`report`]: table, JSON, markdown, SVG.
//!
//! # Use from an end-to-end test
//! ```no_run
//! use braid::lab::{emu::OutageKind, scenario, work, Mode, Topology};
//! use std::{sync::atomic::AtomicBool, time::Duration};
//!
//! let sc = scenario::load(&scenario::find("hetero").unwrap()).unwrap();
//! // A tag keeps parallel tests apart: namespaces are `bl<tag>-edge`, `bl<tag>-core`, ...
//! let mut t = Topology::up(braid::lab::topo_spec(&sc, "x1")).unwrap();
//! Mode::Braid.setup(&mut t).unwrap(); // or spawn daemons yourself: t.spawn(&t.core.clone(), ..)
//! t.restart_links().unwrap(); // scenario outages count from here
//! let cut = t.links[0][0].ctl.clone();
//! std::thread::spawn(move || {
//!     std::thread::sleep(Duration::from_secs(5));
//!     cut.set_outage(Some(OutageKind::Blackhole)); // wan0 black-holed mid-transfer
//! });
//! let never = AtomicBool::new(false);
//! let r = work::run_workload(&t, work::Workload::parse("bulk1-down").unwrap(),
//!                            Duration::from_secs(10), &never, |_| {}).unwrap();
//! assert_eq!(r.flows_failed, 0);
//! println!("goodput {:.1} Mbit/s, longest gap {:.0} ms", r.goodput_mbps, r.max_gap_ms);
//! // Dropping `t` removes every namespace, veth and process it made.
//! ```

pub(crate) mod cpu;
pub(crate) mod daemon;
pub mod dns;
pub mod emu;
pub mod faults;
pub(crate) mod fw4;
pub mod link;
pub(crate) mod mode;
pub mod report;
pub(crate) mod scenario;
pub mod sys;
pub mod topo;
pub mod trace;
pub(crate) mod work;

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use mode::Mode;
pub(crate) use report::RunRecord;
pub(crate) use scenario::Scenario;
pub use topo::{EdgeSpec, TopoSpec, Topology};
pub(crate) use work::Workload;

/// Set by SIGINT/SIGTERM; every lab loop checks it and unwinds through its teardown.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`INTERRUPTED`] so that runs end through their teardown.
pub(crate) fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

const HELP: &str = "\
braid lab - emulated uplinks in namespaces, workloads, reports (run as root)

USAGE:
    braid lab run SCENARIO [--mode direct,mptcp,braid] [--workload W,..|all] [--duration 20s]
                           [--sequence] [--repeat N] [--daemons NAME=PATH,..] [--out DIR]
                           [--tag T]
    braid lab bench [--scenario S,..] [--mode ..] [--workload ..] [--duration D] [--repeat N]
                    [--out DIR]
    braid lab demo [--mode ..] [--out DIR]
    braid lab faults [--fault F,..] [--repeat N] [--out DIR] [--tag T]
                                                   how long until bonded UDP and TCP carry
                                                   data again after each fault F: core-restart,
                                                   core-kill, edge-restart, blackhole, flap,
                                                   dns, device-late, clock-behind (default all)
    braid lab cpu [--scenario S] [--workload ..] [--repeat N] [--duration D] [--callgrind]
                  [--callgrind-core] [--syscalls]  CPU seconds per GB of braid edge and core
                                                   beside ss-redir and ss-server (MPTCP), the
                                                   daemons' wake-ups per forwarded packet, with
                                                   --syscalls their system calls per packet by
                                                   name (perf stat), with --callgrind
                                                   instructions per packet of the edge (and
                                                   with --callgrind-core of the core), each
                                                   workload, dumps kept in the --out dir
                                                   (default hetero, bulk8-down,bulk8-up, 3, 10s)
    braid lab up SCENARIO [--mode M] [--tag T]     build it and wait for Ctrl-C
    braid lab clean [--tag T]                      remove leftovers of interrupted runs (all
                                                   bl*- namespaces and /tmp/braid-lab* logs,
                                                   or only those of tag T)
    braid lab list                                 scenarios and workloads
    braid lab show SCENARIO                        its links and outage schedule
    Every command that reads a scenario takes --traces DIR (recorded traces; default
    $BRAID_TRACES).

SCENARIO is a file, or a name looked up in scenarios/lab/ (hetero, lte, hsr, flap, demo, ...)
then scenarios/ (hsr-pair, umts-pair, ...: the simulator's, whose links the lab runs too), as
`braid sim` finds its own; the format is `braid sim --help`'s (the lab reads the links).
Workloads: bulk1-down bulk8-down bulk1-up bulk8-up rr udp (the bench set); any bulkN-down or
bulkN-up with N from 1 to 64 flows, e.g. bulk4-down. rr: a 64-byte request, its 64-byte
answer, a 20 ms pause, over and over, while 8 flows download; rrN: N such connections at once
(1 to 16, N times the samples: a 10 s rr run has about 200, so its p99 is the second or third
worst); rr-idle, rrN-idle: the same with no download. The table gives p50/p99 and the number
of samples; with --repeat, a summary gives each run's p99 min / median / max and the
percentiles of every run's samples pooled (each sample is kept in the JSON), e.g.
    braid lab run hetero --workload rr4,rr4-idle --repeat 5 --daemons new=./braid,old=/tmp/braid.old
Modes: direct (best single link, plain routing), mptcp (kernel MPTCP + shadowsocks under
mptcpize, as OpenMPTCProuter), braid (the edge and core daemons, when built).
--repeat N (run, bench; default 1) runs every mode x workload N times, each on a fresh
topology with fresh daemons, the modes taking turns; the summary gives min / median / max
goodput per cell and Braid over the best single link of the same repetition.
Without --sequence the workloads of one mode share its topology and daemons, but each gets
a server of its own and restarted link emulators (schedules from 0). --sequence (run, bench)
runs them as one session's steps, the way a testbed's harness does (iperf3 -s once, then
20 s up, then at once 20 s down): one long-lived server, the links running on, each step
right after the previous one. Every step is reported on its own (`2/2 bulk8-down`: goodput,
% of the sum, each link's rate) with min / median / max per step over --repeat fresh
topologies. A workload may come twice (bulk8-down,bulk8-up,bulk8-down: a first download and
one after an upload, in one session), e.g.
    braid lab run hetero --mode braid --workload bulk8-up,bulk8-down --sequence --repeat 5
--daemons NAME=PATH,.. (run, bench) runs mode braid with the edge and core of other braid
builds instead of this one's, as modes braid-NAME taking turns with the other modes in every
repetition (this binary keeps running the lab), e.g. --daemons new=./braid,old=/tmp/braid.old
to compare two builds under the same machine load.
A link's trace is generated (trace = gen:lte-driving; presets: braid trace list) or recorded:
a file looked up in --traces DIR or $BRAID_TRACES, then in the scenario's folder (the public
Mahimahi traces: the traces/ folder of github.com/ravinet/mahimahi).
Faults: core-restart core-kill edge-restart blackhole flap dns device-late clock-behind (all
by default), each run --repeat times (default 3) on a fresh topology with the daemons of this
binary; the table gives min/median/max ms after each fault's end, and the client's TCP flows
that were reset. About 3 minutes per repeat; results in DIR/faults.json and faults.md
(default target/lab).
Namespaces, veths and nft tables are named bl*-. The daemons of a braid run log to /tmp/braid-lab<tag>/ (with their configs);
the directory is removed after the run unless a daemon failed or BRAID_LAB_KEEP_LOGS=1 is set.
";

/// `braid lab ...`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    match cli(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("braid lab: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Default)]
struct Opts {
    pos: Vec<String>,
    modes: Option<Vec<Mode>>,
    workloads: Option<Vec<Workload>>,
    scenarios: Option<Vec<String>>,
    duration: Option<Duration>,
    out: Option<PathBuf>,
    tag: String,
    traces: Option<PathBuf>,
    faults: Option<Vec<faults::Fault>>,
    repeat: Option<usize>,
    callgrind: bool,
    callgrind_core: bool,
    syscalls: bool,
    sequence: bool,
    daemons: Vec<(String, PathBuf)>,
}

fn parse_opts(args: Vec<OsString>) -> Result<Opts, String> {
    use crate::cli::{opt_text, opt_value};
    use lexopt::prelude::*;
    let mut o = Opts::default();
    let mut p = lexopt::Parser::from_args(args);
    let list = |v: OsString| -> Result<Vec<String>, String> {
        Ok(v.into_string()
            .map_err(|_| "not UTF-8".to_string())?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    };
    while let Some(a) = p.next().map_err(|e| e.to_string())? {
        match a {
            Long("mode") => {
                let v = list(opt_value(&mut p)?)?;
                o.modes = Some(v.iter().map(|m| Mode::parse(m)).collect::<Result<_, _>>()?);
            }
            Long("workload") => {
                let v = list(opt_value(&mut p)?)?;
                o.workloads = Some(if v == ["all"] {
                    Workload::all()
                } else {
                    v.iter()
                        .map(|w| Workload::parse(w))
                        .collect::<Result<_, _>>()?
                });
            }
            Long("scenario") => o.scenarios = Some(list(opt_value(&mut p)?)?),
            Long("duration") => {
                let v = opt_text(&mut p)?;
                o.duration = Some(Duration::from_micros(scenario::parse_time_us(&v)?));
            }
            Long("out") => o.out = Some(PathBuf::from(opt_value(&mut p)?)),
            Long("traces") => o.traces = Some(PathBuf::from(opt_value(&mut p)?)),
            Long("fault") => {
                let v = list(opt_value(&mut p)?)?;
                o.faults = Some(
                    v.iter()
                        .map(|f| faults::Fault::parse(f))
                        .collect::<Result<_, _>>()?,
                );
            }
            Long("repeat") => {
                let v = opt_text(&mut p)?;
                let n: usize = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=50).contains(n))
                    .ok_or_else(|| format!("--repeat {v}: a count from 1 to 50"))?;
                o.repeat = Some(n);
            }
            Long("sequence") => o.sequence = true,
            Long("daemons") => {
                let v = list(p.value().map_err(|e| e.to_string())?)?;
                o.daemons = parse_daemons(&v)?;
            }
            Long("callgrind") => o.callgrind = true,
            Long("callgrind-core") => {
                o.callgrind = true;
                o.callgrind_core = true;
            }
            Long("syscalls") => o.syscalls = true,
            Long("tag") => o.tag = opt_text(&mut p)?,
            Value(v) => o.pos.push(v.string().map_err(|e| e.to_string())?),
            _ => return Err(a.unexpected().to_string()),
        }
    }
    Ok(o)
}

/// `--daemons NAME=PATH,..`: names are short words (they become mode `braid-NAME`), unique.
fn parse_daemons(items: &[String]) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for it in items {
        let bad = || {
            format!(
                "--daemons {it}: NAME=PATH (a braid binary whose `edge` and `core` run as mode \
                 braid-NAME; NAME of letters, digits, '.', '_' or '-')"
            )
        };
        let (name, path) = it.split_once('=').ok_or_else(bad)?;
        let name_ok = !name.is_empty()
            && name.len() <= 16
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok || path.is_empty() {
            return Err(bad());
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("--daemons: the name {name} is given twice"));
        }
        out.push((name.to_string(), PathBuf::from(path)));
    }
    Ok(out)
}

fn need_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("the lab builds network namespaces: run it as root".into());
    }
    Ok(())
}

fn cli(args: Vec<OsString>) -> Result<ExitCode, String> {
    let mut args = args.into_iter();
    let Some(cmd) = args.next() else {
        eprint!("{HELP}");
        return Ok(ExitCode::from(2));
    };
    let rest: Vec<OsString> = args.collect();
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let o = parse_opts(rest)?;
    let traces = o.traces.clone().or_else(crate::trace::traces_from_env);
    let load = |name: &str| scenario::load_with(&scenario::find(name)?, traces.as_deref());
    match cmd.to_str().unwrap_or("") {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        "list" => {
            println!("scenarios: {}", scenario::shipped().join(" "));
            println!(
                "workloads: {}",
                Workload::all()
                    .iter()
                    .map(|w| w.name())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!(
                "also: any bulkN-down, bulkN-up (N flows, 1 to 64); rrN, rr-idle, rrN-idle (N \
                 request/response connections, 1 to 16, with or without 8 downloads)"
            );
            Ok(ExitCode::SUCCESS)
        }
        "show" => {
            let name = o.pos.first().ok_or("show: which scenario?")?;
            let sc = load(name)?;
            print!("{}", show(&sc));
            Ok(ExitCode::SUCCESS)
        }
        "clean" => {
            need_root()?;
            let mut removed = if o.tag.is_empty() {
                topo::clean()
            } else {
                topo::clean_prefix(&topo::prefix(&o.tag))
            };
            removed.extend(topo::clean_logs(&o.tag));
            if removed.is_empty() {
                println!("nothing to clean");
            } else {
                println!("removed: {}", removed.join(" "));
            }
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            need_root()?;
            let name = o.pos.first().ok_or("run: which scenario?")?;
            let sc = load(name)?;
            let out = o.out.clone().unwrap_or_else(|| PathBuf::from("target/lab"));
            let recs = run_scenario(&sc, &o, &out)?;
            Ok(exit_for(&recs))
        }
        "demo" => {
            need_root()?;
            let sc = load("demo")?;
            let out = o.out.clone().unwrap_or_else(|| PathBuf::from("target/lab"));
            let mut o = o;
            o.modes.get_or_insert_with(compared_modes);
            o.workloads.get_or_insert(vec![Workload::Bulk {
                flows: 8,
                dir: work::Dir::Down,
            }]);
            println!("{}\n", sc.description);
            let recs = run_scenario(&sc, &o, &out)?;
            if let Some(d) = recs.iter().find(|r| r.mode == "direct") {
                println!();
                for r in &recs {
                    println!(
                        "{:<7} {:6.2} Mbit/s = {:4.2} x the best single link ({} alone), longest gap {:.0} ms, {} failed flow(s)",
                        r.mode,
                        r.result.goodput_mbps,
                        r.result.goodput_mbps / d.result.goodput_mbps.max(1e-9),
                        d.best_link,
                        r.result.max_gap_ms,
                        r.result.flows_failed
                    );
                }
            }
            Ok(exit_for(&recs))
        }
        "bench" => {
            need_root()?;
            let out = o
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("bench/results"));
            let names = o.scenarios.clone().unwrap_or_else(|| {
                ["hetero", "lte", "hsr", "flap"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            });
            let mut o = o;
            o.modes.get_or_insert_with(compared_modes);
            o.workloads.get_or_insert_with(Workload::all);
            let scenarios = names
                .iter()
                .map(|n| load(n))
                .collect::<Result<Vec<_>, _>>()?;
            let ro = o.run_opts()?;
            let per_run = |sc: &Scenario| {
                ro.duration
                    .unwrap_or(Duration::from_millis(sc.duration_ms))
                    .as_secs()
                    + 5
            };
            let runs_each = ro.repeat * ro.runners() * ro.workloads.len();
            let secs: u64 = scenarios
                .iter()
                .map(|sc| per_run(sc) * runs_each as u64)
                .sum();
            println!(
                "bench: {} scenario(s) x {} workload(s) x {} mode(s) x {} run(s), about {} min",
                scenarios.len(),
                ro.workloads.len(),
                ro.modes.len(),
                ro.repeat,
                secs.div_ceil(60)
            );
            install_signal_handlers();
            let mut progress = Progress::new(runs_each * scenarios.len());
            let mut all = Vec::new();
            for sc in &scenarios {
                if INTERRUPTED.load(Ordering::Relaxed) {
                    break;
                }
                let recs = run_matrix(sc, &ro, &out, &mut progress)?;
                finish(&sc.name, &recs, &out)?;
                all.extend(recs);
            }
            // The table covers every scenario whose results are in `out`, not only this run's.
            let all = collect_results(&out, all);
            let md = out.join("README.md");
            let text = report::bench_readme(&all);
            std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
            println!("\nmarkdown table: {}", md.display());
            Ok(exit_for(&all))
        }
        "cpu" => {
            need_root()?;
            let name = o.scenarios.as_ref().and_then(|v| v.first().cloned());
            let sc = load(name.as_deref().unwrap_or("hetero"))?;
            let out = o.out.clone().unwrap_or_else(|| PathBuf::from("bench/cpu"));
            let opts = cpu::CpuOpts {
                workloads: o.workloads.clone().unwrap_or_else(|| {
                    ["bulk8-down", "bulk8-up"]
                        .iter()
                        .map(|w| Workload::parse(w).expect("known workloads"))
                        .collect()
                }),
                repeat: o.repeat.unwrap_or(3),
                duration: o.duration.unwrap_or(Duration::from_secs(10)),
                tag: o.tag.clone(),
                callgrind: o.callgrind,
                callgrind_core: o.callgrind_core,
                out: out.clone(),
                syscalls: o.syscalls,
            };
            install_signal_handlers();
            let (rows, instr) = cpu::run(&sc, &opts)?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let json = out.join("cpu.json");
            let v = serde_json::json!({ "scenario": sc.name, "runs": rows, "instructions": instr });
            std::fs::write(
                &json,
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?,
            )
            .map_err(|e| format!("{}: {e}", json.display()))?;
            let mut md = format!(
                "# braid lab cpu\n\nScenario {}, {} s per transfer, min / median / max over {} \
                 repeats, each mode on a fresh topology in the same run (`make bench-cpu`). CPU is \
                 user + system time of the edge-side and core-side process per GB of goodput; the \
                 kernel's share (MPTCP subflows, forwarding) is in neither.\n\n{}",
                sc.name,
                opts.duration.as_secs(),
                opts.repeat,
                cpu::table(&rows)
            );
            let counts = cpu::counts_table(&rows);
            if !counts.is_empty() {
                md.push_str(&format!(
                    "\nWhat the braid daemons did per forwarded packet (both ways), counts that do \
                     not depend on the machine's load: wake-ups are context switches \
                     (/proc/PID/status), system calls are counted by the kernel's tracepoints \
                     (`--syscalls`, perf stat).\n\n{counts}"
                ));
            }
            for i in &instr {
                // The user-space share of the native braid edge's time on the same workload.
                let shares: Vec<f64> = rows
                    .iter()
                    .filter(|r| r.mode == "braid" && r.workload == i.workload)
                    .map(|r| 1.0 - r.edge_sys_pct() / 100.0)
                    .collect();
                let share = cpu::min_med_max(&shares).map(|m| m.1);
                md.push('\n');
                md.push_str(&cpu::instr_text(i, share));
            }
            let mdf = out.join("cpu.md");
            std::fs::write(&mdf, &md).map_err(|e| format!("{}: {e}", mdf.display()))?;
            println!("{md}\nresults: {} {}", json.display(), mdf.display());
            Ok(ExitCode::SUCCESS)
        }
        "faults" => {
            need_root()?;
            Mode::Braid.available()?;
            let out = o.out.clone().unwrap_or_else(|| PathBuf::from("target/lab"));
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            install_signal_handlers();
            Ok(run_faults(&o, &out))
        }
        "up" => {
            need_root()?;
            let name = o.pos.first().ok_or("up: which scenario?")?;
            let sc = load(name)?;
            install_signal_handlers();
            let mut t = Topology::up(topo_spec(&sc, &o.tag)).map_err(|e| e.to_string())?;
            if let Some(m) = o.modes.as_ref().and_then(|m| m.first()) {
                m.available()?;
                m.setup(&mut t).map_err(|e| e.to_string())?;
            }
            println!("namespaces: {}", t.namespaces().join(" "));
            println!("server {} ; Ctrl-C tears it all down", topo::SERVER_ADDR);
            while !INTERRUPTED.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            t.teardown();
            println!("torn down");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown lab command '{other}'\n\n{HELP}")),
    }
}

/// `braid lab faults`: every fault asked for, `--repeat` times each; progress on stderr, the
/// table on stdout, the runs in `out/faults.json`.
/// The modes `demo` and `bench` compare when no `--mode` is given: direct, MPTCP, and Braid
/// when its binary is available.
fn compared_modes() -> Vec<Mode> {
    let mut m = vec![Mode::Direct, Mode::Mptcp];
    if Mode::Braid.available().is_ok() {
        m.push(Mode::Braid);
    }
    m
}

/// Every mode x workload of one scenario (`run`, `demo`), its reports written to `out`.
fn run_scenario(sc: &Scenario, o: &Opts, out: &Path) -> Result<Vec<RunRecord>, String> {
    install_signal_handlers();
    let ro = o.run_opts()?;
    let mut progress = Progress::new(ro.repeat * ro.runners() * ro.workloads.len());
    let recs = run_matrix(sc, &ro, out, &mut progress)?;
    finish(&sc.name, &recs, out)?;
    Ok(recs)
}

fn run_faults(o: &Opts, out: &Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("braid lab faults: {e}");
            return ExitCode::from(1);
        }
    };
    let mut fo = faults::FaultOpts::bench(exe);
    if !o.tag.is_empty() {
        fo.tag = o.tag.chars().take(6).collect();
    }
    let list = o.faults.clone().unwrap_or_else(faults::Fault::all);
    let repeat = o.repeat.unwrap_or(3);
    let total = list.len() * repeat;
    let started = std::time::Instant::now();
    println!(
        "fault bench: {} fault(s) x {repeat} run(s), daemons of {}",
        list.len(),
        fo.exe.display()
    );
    let mut runs = Vec::new();
    let mut failed = 0;
    'all: for r in 0..repeat {
        for (i, f) in list.iter().enumerate() {
            if INTERRUPTED.load(Ordering::Relaxed) {
                break 'all;
            }
            let k = r * list.len() + i + 1;
            let label = format!(
                "[{k}/{total} {:>4.0} s] {} (run {}/{repeat})",
                started.elapsed().as_secs_f64(),
                f.describe(&fo),
                r + 1
            );
            eprintln!("{label}");
            let res = faults::run(*f, &fo, &mut |line| eprintln!("    {line}"));
            match res {
                Ok(run) => {
                    let ms =
                        |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{v:.0} ms"));
                    eprintln!(
                        "    UDP back after {}, new TCP after {}, flows: {}{}",
                        ms(run.udp_ms),
                        ms(run.tcp_ms),
                        run.flows
                            .iter()
                            .map(|(w, f)| format!("{w} {f:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if run.notes.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", run.notes.join("; "))
                        }
                    );
                    runs.push(run);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("    failed: {e}");
                }
            }
        }
    }
    if !runs.is_empty() {
        let table = faults::table(&runs, &fo);
        println!("\n{table}");
        let json = out.join("faults.json");
        match faults::write_json(&runs, &json) {
            Ok(()) => println!("results: {}", json.display()),
            Err(e) => eprintln!("{}: {e}", json.display()),
        }
        let md = out.join("faults.md");
        let text =
            format!(
            "# braid lab faults\n\n`make bench-faults`: {} run(s) of each fault, the daemons of the \
             {} build, two links (20 Mbit/s 10 ms, 10 Mbit/s 15 ms).\n\n```\n{table}```\n",
            repeat,
            fo.exe
                .parent()
                .and_then(|p| p.file_name())
                .map_or("braid".into(), |n| n.to_string_lossy()),
        );
        match std::fs::write(&md, text) {
            Ok(()) => println!("table:   {}", md.display()),
            Err(e) => eprintln!("{}: {e}", md.display()),
        }
    }
    println!(
        "{} run(s) in {:.0} s{}",
        runs.len(),
        started.elapsed().as_secs_f64(),
        if failed > 0 {
            format!(", {failed} failed to run (see above)")
        } else {
            String::new()
        }
    );
    if INTERRUPTED.load(Ordering::Relaxed) {
        eprintln!("interrupted: everything torn down");
        return ExitCode::from(130);
    }
    if failed > 0 || runs.is_empty() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// A scenario in words: links per direction and the outage schedule.
pub(crate) fn show(sc: &Scenario) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "{}\n{} s per workload, seed {}, {} edge(s) x {} client(s), direct uses {}\n",
        if sc.description.is_empty() {
            &sc.name
        } else {
            &sc.description
        },
        sc.duration_ms as f64 / 1000.0,
        sc.seed,
        sc.edges,
        sc.clients,
        sc.links[sc.best].name
    );
    let dir = |d: &emu::DirSpec| {
        let rate = match &d.rate {
            emu::Rate::Unlimited => "unlimited".to_string(),
            emu::Rate::Fixed(b) => format!("{:.1} Mbit/s", *b as f64 / 1e6),
            emu::Rate::Trace { trace, offset_us } => format!(
                "trace {}, mean {:.1} Mbit/s, from {} s",
                trace.name,
                trace.mean_bps_u64() as f64 / 1e6,
                offset_us / 1_000_000
            ),
        };
        let burst = d.loss.burst.map_or(1.0, |g| g.mean_burst());
        let mut s = format!(
            "{rate}, {:.1} ms +- {:.1} ms, loss {:.2} % (burst {burst:.0}), queue {:?}",
            d.delay_us as f64 / 1000.0,
            d.jitter_us as f64 / 1000.0,
            d.loss.mean() * 100.0,
            d.queue
        );
        for o in &d.outages {
            let _ = write!(
                s,
                "\n    {:?} at {:.3} s for {:.3} s",
                o.kind,
                o.start_us as f64 / 1e6,
                (o.end_us - o.start_us) as f64 / 1e6
            );
        }
        s
    };
    for l in &sc.links {
        let _ = writeln!(
            s,
            "link {}\n  up:   {}\n  down: {}",
            l.name,
            dir(&l.up),
            dir(&l.down)
        );
    }
    s
}

/// Records of every `<scenario>.json` in `dir` (hetero, lte, hsr, flap first), with `fresh`
/// standing in for the scenarios it covers.
fn collect_results(dir: &Path, fresh: Vec<RunRecord>) -> Vec<RunRecord> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".json").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let rank = |n: &str| {
        ["hetero", "lte", "hsr", "flap"]
            .iter()
            .position(|x| *x == n)
            .unwrap_or(99)
    };
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let mut out = Vec::new();
    for n in names {
        let from_run: Vec<RunRecord> = fresh.iter().filter(|r| r.scenario == n).cloned().collect();
        if !from_run.is_empty() {
            out.extend(from_run);
            continue;
        }
        let recs = std::fs::read_to_string(dir.join(format!("{n}.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<Vec<RunRecord>>(&t).ok());
        out.extend(recs.unwrap_or_default());
    }
    out
}

fn exit_for(recs: &[RunRecord]) -> ExitCode {
    if INTERRUPTED.load(Ordering::Relaxed) {
        eprintln!("interrupted: everything torn down");
        return ExitCode::from(130);
    }
    if recs.is_empty() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The topology a scenario runs on: one edge with the scenario's links, one client.
pub(crate) fn topo_spec(sc: &Scenario, tag: &str) -> TopoSpec {
    TopoSpec {
        tag: tag.to_string(),
        seed: sc.seed,
        edges: (0..sc.edges.max(1))
            .map(|_| EdgeSpec {
                links: sc.links.clone(),
                clients: sc.clients.max(1),
                best: sc.best,
            })
            .collect(),
    }
}

/// Mean capacity of one direction over `[from_ms, to_ms)` of the run, Mbit/s.
fn dir_capacity_mbps(d: &emu::DirSpec, from_ms: u64, to_ms: u64) -> f64 {
    match &d.rate {
        emu::Rate::Unlimited => 0.0,
        emu::Rate::Fixed(b) => *b as f64 / 1e6,
        emu::Rate::Trace { trace, offset_us } => {
            let span = to_ms.saturating_sub(from_ms).max(1);
            trace.capacity_bits(from_ms, to_ms, offset_us / 1000) as f64 / span as f64 / 1e3
        }
    }
}

/// Options of [`run_matrix`].
#[derive(Clone, Debug)]
pub(crate) struct RunOpts {
    modes: Vec<Mode>,
    workloads: Vec<Workload>,
    /// The workloads are one session's steps: one after the other against one long-lived
    /// server, the link emulators running on from step to step (else each workload gets its
    /// own server and restarted link schedules; the daemons are the same either way).
    sequence: bool,
    /// Braid daemons to run instead of this binary's `edge` and `core`, by name: mode `braid`
    /// runs once per entry (as mode `braid-NAME`), the entries taking turns.
    daemons: Vec<(String, PathBuf)>,
    /// Overrides the scenario's duration.
    duration: Option<Duration>,
    /// Namespace tag (see [`TopoSpec::tag`]).
    tag: String,
    /// Runs of each mode x workload (at least 1), each on a fresh topology with fresh daemons.
    repeat: usize,
}

impl RunOpts {
    /// Runs of one repetition of one workload: a mode each, mode braid once per `--daemons`.
    fn runners(&self) -> usize {
        self.modes.len()
            + if self.modes.contains(&Mode::Braid) {
                self.daemons.len().saturating_sub(1)
            } else {
                0
            }
    }
}

impl Opts {
    /// The options of `run` and `bench`; `--daemons` without mode braid is an error.
    fn run_opts(&self) -> Result<RunOpts, String> {
        if !self.daemons.is_empty()
            && self
                .modes
                .as_ref()
                .is_some_and(|m| !m.contains(&Mode::Braid))
        {
            return Err("--daemons runs mode braid: add braid to --mode".into());
        }
        Ok(self.run_opts_unchecked())
    }

    fn run_opts_unchecked(&self) -> RunOpts {
        RunOpts {
            modes: self.modes.clone().unwrap_or(if self.daemons.is_empty() {
                vec![Mode::Direct, Mode::Mptcp]
            } else {
                vec![Mode::Braid]
            }),
            workloads: self.workloads.clone().unwrap_or_else(Workload::all),
            sequence: self.sequence,
            daemons: self.daemons.clone(),
            duration: self.duration,
            tag: self.tag.clone(),
            repeat: self.repeat.unwrap_or(1),
        }
    }
}

/// How far a command of several runs is: runs done, runs in all, since when.
pub(crate) struct Progress {
    done: usize,
    total: usize,
    started: std::time::Instant,
}

impl Progress {
    pub(crate) fn new(total: usize) -> Progress {
        Progress {
            done: 0,
            total,
            started: std::time::Instant::now(),
        }
    }

    /// "[k/N, 3 min in, ~40 min left]" for the run about to start.
    fn line(&self) -> String {
        let el = self.started.elapsed().as_secs_f64();
        let left = if self.done > 0 {
            format!(
                ", ~{:.0} min left",
                el / self.done as f64 * self.total.saturating_sub(self.done) as f64 / 60.0
            )
        } else {
            String::new()
        };
        format!(
            "[{}/{}, {:.0} min in{left}]",
            self.done + 1,
            self.total.max(self.done + 1),
            el / 60.0
        )
    }
}

/// Run every mode x workload of a scenario `o.repeat` times; a fresh topology (and fresh
/// daemons) per mode and repetition, the modes taking turns within each repetition so that
/// the baselines are measured beside Braid under the same machine load. Without
/// `o.sequence`, link schedules restart and a new server starts for each workload; with it
/// the workloads are one session's steps (one server, the links running on). Prints progress
/// and a row per run; stops early (with everything torn down) when [`INTERRUPTED`] is set.
pub(crate) fn run_matrix(
    sc: &Scenario,
    o: &RunOpts,
    out: &Path,
    progress: &mut Progress,
) -> Result<Vec<RunRecord>, String> {
    let workloads = &o.workloads;
    // (record's mode name, mode, daemons of another build)
    let mut runners: Vec<(String, Mode, Option<PathBuf>)> = Vec::new();
    for mode in &o.modes {
        let each: Vec<(String, Option<PathBuf>)> = if *mode == Mode::Braid && !o.daemons.is_empty()
        {
            o.daemons
                .iter()
                .map(|(n, p)| (format!("braid-{n}"), Some(p.clone())))
                .collect()
        } else {
            vec![(mode.name().to_string(), None)]
        };
        for (name, exe) in each {
            match mode.available_with(exe.as_deref()) {
                Ok(()) => runners.push((name, *mode, exe)),
                Err(e) => eprintln!("skipping mode {name}: {e}"),
            }
        }
    }
    let repeat = o.repeat.max(1);
    let skipped = o.runners().saturating_sub(runners.len());
    progress.total = progress
        .total
        .saturating_sub(skipped * repeat * workloads.len());
    let dur = o.duration.unwrap_or(Duration::from_millis(sc.duration_ms));
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let tty = io::stderr().is_terminal();
    let mut recs = Vec::new();
    println!(
        "scenario {}: {} link(s), {} s per workload, best single link {}, {repeat} run(s) of each",
        sc.name,
        sc.links.len(),
        dur.as_secs_f64(),
        sc.links[sc.best].name
    );
    let sequence: Vec<String> = if o.sequence {
        workloads.iter().map(|w| w.name()).collect()
    } else {
        Vec::new()
    };
    if o.sequence {
        println!(
            "sequence: {} one after the other in one session (same daemons, one server), \
             each run on a fresh topology",
            sequence.join(", ")
        );
    }
    for (rep, (mode_name, mode, exe)) in
        (0..repeat).flat_map(|r| runners.iter().map(move |m| (r, m)))
    {
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        let mut t = Topology::up(topo_spec(sc, &o.tag)).map_err(|e| format!("topology: {e}"))?;
        if let Err(e) = mode.setup_with(&mut t, exe.as_deref()) {
            eprintln!("mode {mode_name} failed to start: {e}");
            t.teardown();
            progress.done += workloads.len();
            continue;
        }
        // A sequence's one server, started with the links: from here on, one session.
        let server = if o.sequence {
            t.restart_links().map_err(|e| format!("links: {e}"))?;
            Some(work::Server::start(&t).map_err(|e| format!("server: {e}"))?)
        } else {
            None
        };
        for (step, w) in workloads.iter().enumerate() {
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
            if server.is_none() {
                t.restart_links().map_err(|e| format!("links: {e}"))?;
            }
            let what = if o.sequence {
                format!("{}/{} {}", step + 1, workloads.len(), w.name())
            } else {
                w.name()
            };
            let label = format!("{} {} {mode_name} {what}", progress.line(), sc.name);
            let label = if repeat > 1 {
                format!("{label} #{}", rep + 1)
            } else {
                label
            };
            let mut last_print = 0.0;
            let show = |p: work::Progress| {
                let every = if tty { 0.5 } else { 5.0 };
                if p.elapsed_s - last_print < every {
                    return;
                }
                last_print = p.elapsed_s;
                let links: Vec<String> = p
                    .sample
                    .links_mbps
                    .iter()
                    .zip(&sc.links)
                    .map(|(r, l)| format!("{} {r:5.1}", l.name))
                    .collect();
                let line = format!(
                    "  {label:<48} {:5.1}/{:.0}s  goodput {:6.2} Mbit/s  | {}",
                    p.elapsed_s,
                    p.total_s,
                    p.sample.total_mbps,
                    links.join("  ")
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
                let _ = io::stderr().flush();
            };
            let res = match &server {
                Some(srv) => work::run_on(srv, &t, *w, dur, &INTERRUPTED, show),
                None => work::run_workload(&t, *w, dur, &INTERRUPTED, show),
            };
            // A workload that cannot even start is a result too (0 goodput, one failure).
            let res = res.unwrap_or_else(|e| work::WorkResult {
                workload: w.name(),
                flows_failed: 1,
                errors: vec![e.to_string()],
                ..Default::default()
            });
            if tty {
                eprint!("\r\x1b[K");
            }
            let mut rec = record(sc, mode_name, *mode, *w, rep, dur, res);
            if o.sequence {
                rec.sequence = sequence.clone();
                rec.step = step as u32;
            }
            if let Some(e) = exe {
                rec.notes.push(format!("daemons: {}", e.display()));
            }
            let table = report::table(std::slice::from_ref(&rec));
            let mut lines = table.lines();
            let header = lines.next().unwrap_or_default();
            if recs.is_empty() {
                println!("{header}");
            }
            println!("{}", lines.next().unwrap_or_default());
            for e in &rec.result.errors {
                eprintln!("    {e}");
            }
            recs.push(rec);
            progress.done += 1;
        }
        if let Some(s) = server {
            s.stop();
        }
        t.teardown();
    }
    Ok(recs)
}

/// The record of one run: the result beside the scenario's capacity in the workload's
/// direction over the same window.
fn record(
    sc: &Scenario,
    mode_name: &str,
    mode: Mode,
    w: Workload,
    rep: usize,
    dur: Duration,
    res: work::WorkResult,
) -> RunRecord {
    let dir = w.dir();
    let end_ms = if res.duration_s > 0.0 {
        (res.duration_s * 1000.0) as u64
    } else {
        dur.as_millis() as u64
    };
    // On the link schedules' clock: a sequence's later steps start later on a trace.
    let at_ms = (res.start_s * 1000.0) as u64;
    let links: Vec<report::LinkInfo> = sc
        .links
        .iter()
        .map(|l| report::LinkInfo {
            name: l.name.clone(),
            mean_mbps: dir_capacity_mbps(
                if dir == work::Dir::Up { &l.up } else { &l.down },
                at_ms + work::OMIT_MS.min(end_ms),
                at_ms + end_ms.max(1),
            ),
        })
        .collect();
    let cap: f64 = links.iter().map(|l| l.mean_mbps).sum();
    RunRecord {
        scenario: sc.name.clone(),
        mode: mode_name.to_string(),
        workload: w.name(),
        repeat: rep as u32,
        sequence: Vec::new(),
        step: 0,
        seed: sc.seed,
        capacity_mbps: cap,
        best_link: sc.links[sc.best].name.clone(),
        best_link_mbps: links[sc.best].mean_mbps,
        pct_of_capacity: if cap > 0.0 {
            100.0 * res.goodput_mbps / cap
        } else {
            0.0
        },
        links,
        notes: match (mode, w) {
            (Mode::Mptcp, Workload::Udp { .. }) => vec![
                "mptcp: UDP is not proxied; it takes the plain route over the best link".into(),
            ],
            (Mode::Direct, _) => vec![format!(
                "direct: every packet over {} only",
                sc.links[sc.best].name
            )],
            _ => vec![],
        },
        result: res,
    }
}

/// Write the JSON and one SVG per workload (all modes stacked); print where they are.
fn finish(name: &str, recs: &[RunRecord], out: &Path) -> Result<(), String> {
    if recs.is_empty() {
        return Ok(());
    }
    let json = out.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(recs).map_err(|e| e.to_string())?;
    std::fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    let mut wl: Vec<(String, &RunRecord)> = Vec::new();
    for r in recs {
        if !wl.iter().any(|(l, _)| *l == r.label()) {
            wl.push((r.label(), r));
        }
    }
    let mut charts = Vec::new();
    let repeats = recs.iter().map(|r| r.repeat).max().unwrap_or(0) + 1;
    for (w, first) in wl {
        // The first repetition's runs: a chart of every repetition would be too tall to read.
        let runs: Vec<&RunRecord> = recs
            .iter()
            .filter(|r| r.label() == w && r.repeat == 0)
            .collect();
        let title = format!(
            "{name} / {w}: goodput per link and in total, 500 ms means (sum of links dashed){}",
            if repeats > 1 { ", run 1" } else { "" }
        );
        // A sequence's steps: `hetero-step2-bulk8-down.svg`.
        let file = if first.sequence.is_empty() {
            format!("{name}-{w}.svg")
        } else {
            format!("{name}-step{}-{}.svg", first.step + 1, first.workload)
        };
        let f = out.join(file);
        std::fs::write(&f, report::svg(&title, &runs))
            .map_err(|e| format!("{}: {e}", f.display()))?;
        charts.push(f);
    }
    println!("\n{}", report::table(recs));
    if repeats > 1 {
        println!("{}", report::summary_markdown(recs));
    }
    if let Some(t) = report::rr_summary_markdown(recs) {
        println!(
            "Request/response, {repeats} run(s): each run's p99, and every sample pooled:\n\n{t}"
        );
    }
    if recs.iter().any(|r| !r.sequence.is_empty()) {
        println!(
            "Each step of the sequence, min / median / max over {repeats} run(s) (per link: \
             the IP rate each link delivered in the step's direction, after the first {} s):\n\n{}",
            work::OMIT_MS / 1000,
            report::steps_markdown(recs)
        );
    }
    println!("results: {}", json.display());
    for c in charts {
        println!("chart:   {}", c.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Opts, String> {
        parse_opts(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn sequence_and_daemons_parse() {
        let o = opts(&[
            "hetero",
            "--workload",
            "bulk8-up,bulk8-down,bulk8-up",
            "--sequence",
            "--daemons",
            "new=target/release/braid,old=/tmp/braid.old",
        ])
        .unwrap();
        let ro = o.run_opts().unwrap();
        assert!(ro.sequence);
        // A workload may come twice in a sequence.
        let names: Vec<String> = ro.workloads.iter().map(|w| w.name()).collect();
        assert_eq!(names, ["bulk8-up", "bulk8-down", "bulk8-up"]);
        assert_eq!(
            ro.daemons,
            [
                ("new".to_string(), PathBuf::from("target/release/braid")),
                ("old".to_string(), PathBuf::from("/tmp/braid.old"))
            ]
        );
        // --daemons alone means mode braid, once per build.
        assert_eq!(ro.modes, [Mode::Braid]);
        assert_eq!(ro.runners(), 2);
        let ro = opts(&["x", "--mode", "direct,braid", "--daemons", "a=/x,b=/y,c=/z"])
            .unwrap()
            .run_opts()
            .unwrap();
        assert_eq!(ro.runners(), 4);
        // Without --sequence, each workload on its own.
        let ro = opts(&["x"]).unwrap().run_opts().unwrap();
        assert!(!ro.sequence && ro.daemons.is_empty());
        assert_eq!(ro.modes, [Mode::Direct, Mode::Mptcp]);
    }

    #[test]
    fn bad_daemons_are_refused_with_the_form() {
        for bad in ["/tmp/braid", "=/tmp/braid", "old=", "o ld=/x", "a/b=/x"] {
            let e = opts(&["x", "--daemons", bad]).err().unwrap_or_default();
            assert!(e.contains("NAME=PATH"), "{bad}: {e}");
        }
        let e = opts(&["x", "--daemons", "a=/x,a=/y"])
            .err()
            .unwrap_or_default();
        assert!(e.contains("twice"), "{e}");
        let e = opts(&["x", "--mode", "direct", "--daemons", "a=/x"])
            .unwrap()
            .run_opts()
            .err()
            .unwrap_or_default();
        assert!(e.contains("add braid to --mode"), "{e}");
    }

    #[test]
    fn help_teaches_the_sequence() {
        assert!(HELP.contains("--sequence") && HELP.contains("--daemons NAME=PATH"));
        assert!(HELP.contains("--workload bulk8-up,bulk8-down --sequence"));
    }
}
