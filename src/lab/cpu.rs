//! `braid lab cpu`: what bonding costs in CPU, beside OpenMPTCProuter's user-space proxies.
//!
//! Per repeat, a fresh topology per mode: `braid` (edge and core daemons) and `mptcp` (ss-redir
//! on the edge, ss-server on the core, under mptcpize). For each workload, the CPU time
//! (user + system, /proc/PID/stat) of the edge-side and core-side process over the transfer,
//! divided by the bytes the client got: CPU seconds per GB. The kernel's own work (MPTCP's
//! subflows, softirq forwarding) is not in a process's time, for either mode.
//!
//! With `--callgrind` (valgrind installed), one more run per workload counts the instructions
//! `braid edge` executes per forwarded packet under callgrind (counters zeroed when the transfer
//! starts, dumped when it ends, packets from the edge's own status), and projects the bonded rate
//! an MT7621 (880 MHz MIPS 1004Kc) would hold from it; with `--callgrind-core` also one run per
//! workload with `braid core` under callgrind instead. The dumps are kept in the output
//! directory (`callgrind.SIDE.WORKLOAD.out`, for `callgrind_annotate`).
//!
//! Counts that do not depend on the machine's load come with every braid run: the daemons'
//! wake-ups (context switches, /proc/PID/status) per forwarded packet (both ways, from their
//! `braid status`), and with `--syscalls` (`perf` installed) their system calls by name, counted
//! by the kernel's tracepoints (`perf stat -e syscalls:sys_enter_*`) over the transfer.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::mode::{self, Mode};
use super::scenario::Scenario;
use super::topo::Topology;
use super::work::{self, Workload};
use super::{topo_spec, INTERRUPTED};

/// One transfer's cost.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct CpuRow {
    pub(crate) mode: String,
    pub(crate) workload: String,
    repeat: usize,
    goodput_mbps: f64,
    bytes: u64,
    /// CPU seconds of the edge-side process (`braid edge` or ss-redir) over the transfer.
    edge_cpu_s: f64,
    /// CPU seconds of the core-side process (`braid core` or ss-server).
    core_cpu_s: f64,
    /// The system (kernel) part of `edge_cpu_s`: syscalls, sockets, the packet's copies.
    edge_sys_s: f64,
    /// What the edge and the core did per packet (braid only).
    edge_counts: Option<Counts>,
    core_counts: Option<Counts>,
}

/// What one daemon did over a transfer, in counts that do not depend on the machine's load.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub(crate) struct Counts {
    /// Inner packets it forwarded, both ways (its sessions' tx_packets + rx_packets).
    packets: u64,
    /// Of them, those it sent into the tunnel (tx_packets): with one inner packet per data
    /// datagram, its link sends beyond these carried no data (ACKs, probes, control).
    sent: u64,
    /// UDP datagrams sent in its namespace (the Udp OutDatagrams of /proc/PID/net/snmp): its
    /// link sends, whatever system call carried them (sendto, sendmmsg).
    datagrams: u64,
    /// Context switches (voluntary + involuntary): about one per wake-up of its event loop.
    wakeups: u64,
    /// System calls by name (`--syscalls`), "all" first; empty without.
    syscalls: Vec<(String, u64)>,
}

impl Counts {
    fn per_packet(&self, n: u64) -> f64 {
        n as f64 / self.packets.max(1) as f64
    }

    fn syscall(&self, name: &str) -> Option<u64> {
        self.syscalls.iter().find(|(n, _)| n == name).map(|x| x.1)
    }
}

impl CpuRow {
    fn per_gb(&self, cpu_s: f64) -> f64 {
        if self.bytes == 0 {
            return f64::NAN;
        }
        cpu_s / (self.bytes as f64 / 1e9)
    }

    pub(crate) fn edge_s_per_gb(&self) -> f64 {
        self.per_gb(self.edge_cpu_s)
    }

    pub(crate) fn core_s_per_gb(&self) -> f64 {
        self.per_gb(self.core_cpu_s)
    }

    pub(crate) fn edge_sys_pct(&self) -> f64 {
        if self.edge_cpu_s <= 0.0 {
            return f64::NAN;
        }
        100.0 * self.edge_sys_s / self.edge_cpu_s
    }
}

/// The instruction count of one callgrind run.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct InstrRow {
    pub(crate) workload: String,
    /// The daemon counted: "edge" or "core".
    pub(crate) side: &'static str,
    instructions: u64,
    /// Inner packets the edge forwarded (both directions) while counting.
    packets: u64,
    bytes: u64,
    /// Where the callgrind dump was kept.
    dump: Option<PathBuf>,
}

impl InstrRow {
    pub(crate) fn per_packet(&self) -> f64 {
        self.instructions as f64 / self.packets.max(1) as f64
    }

    /// Mbit/s of goodput an 880 MHz core retiring `ipc` instructions per cycle would hold, if the
    /// edge's instructions per goodput byte stay what they were here.
    pub(crate) fn projected_mbps(&self, hz: f64, ipc: f64) -> f64 {
        if self.bytes == 0 || self.instructions == 0 {
            return 0.0;
        }
        let per_byte = self.instructions as f64 / self.bytes as f64;
        hz * ipc / per_byte * 8.0 / 1e6
    }
}

/// User and system CPU seconds of a process from the text of /proc/PID/stat. The command name
/// (field 2) is in parentheses and may hold spaces or parentheses: fields are counted from the
/// last `)`.
pub(crate) fn stat_cpu_s(stat: &str, ticks_per_s: f64) -> Option<(f64, f64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15): indices 11 and 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime as f64 / ticks_per_s, stime as f64 / ticks_per_s))
}

fn proc_cpu_s(pid: u32) -> io::Result<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    stat_cpu_s(&text, hz).ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat: unreadable")))
}

/// Minimum, median and maximum of `v` (NaNs left out); None when nothing is left.
pub(crate) fn min_med_max(v: &[f64]) -> Option<(f64, f64, f64)> {
    super::report::Spread::of(v.iter().copied().filter(|x| x.is_finite()))
        .map(|s| (s.min, s.median, s.max))
}

fn mmm(v: &[f64], prec: usize) -> String {
    match min_med_max(v) {
        Some((a, b, c)) => format!("{a:.prec$} / {b:.prec$} / {c:.prec$}"),
        None => "-".into(),
    }
}

/// The process labels (as [`Topology::spawn`] names them) of a mode's edge and core side.
fn labels(m: Mode) -> Option<(&'static str, &'static str)> {
    match m {
        Mode::Braid => Some(("braid-edge0", "braid-core")),
        Mode::Mptcp => Some(("ss-redir", "ss-server")),
        Mode::Direct => None,
    }
}

/// The markdown table: per mode and workload, min / median / max over the repeats.
pub(crate) fn table(rows: &[CpuRow]) -> String {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.workload.clone(), r.mode.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort();
    let mut s = String::from(
        "| workload | mode | runs | goodput Mbit/s | edge side CPU s/GB | of it in the kernel | core side CPU s/GB |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (w, m) in &keys {
        let rs: Vec<&CpuRow> = rows
            .iter()
            .filter(|r| &r.workload == w && &r.mode == m)
            .collect();
        let col = |f: &dyn Fn(&CpuRow) -> f64| rs.iter().map(|r| f(r)).collect::<Vec<_>>();
        let (edge, core) = match m.as_str() {
            "mptcp" => ("ss-redir", "ss-server"),
            _ => ("braid edge", "braid core"),
        };
        s.push_str(&format!(
            "| {w} | {m} | {} | {} | {edge}: {} | {} % | {core}: {} |\n",
            rs.len(),
            mmm(&col(&|r| r.goodput_mbps), 1),
            mmm(&col(&CpuRow::edge_s_per_gb), 1),
            mmm(&col(&CpuRow::edge_sys_pct), 0),
            mmm(&col(&CpuRow::core_s_per_gb), 1),
        ));
    }
    // The ratio the issue sets a goal for: braid edge's median per byte over ss-redir's.
    for (w, _) in keys.iter().filter(|(_, m)| m == "braid") {
        let med = |m: &str, f: fn(&CpuRow) -> f64| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| &r.workload == w && r.mode == m)
                .map(f)
                .collect();
            min_med_max(&v).map(|x| x.1)
        };
        if let (Some(b), Some(s2)) = (
            med("braid", CpuRow::edge_s_per_gb),
            med("mptcp", CpuRow::edge_s_per_gb),
        ) {
            let (bc, sc) = (
                med("braid", CpuRow::core_s_per_gb).unwrap_or(f64::NAN),
                med("mptcp", CpuRow::core_s_per_gb).unwrap_or(f64::NAN),
            );
            s.push_str(&format!(
                "\n{w}: braid edge / ss-redir per byte = {:.2} (medians); braid core / ss-server = {:.2}\n",
                b / s2,
                bc / sc
            ));
        }
    }
    s
}

/// What `braid lab cpu` needs beyond the scenario.
pub(crate) struct CpuOpts {
    pub(crate) workloads: Vec<Workload>,
    pub(crate) repeat: usize,
    pub(crate) duration: Duration,
    pub(crate) tag: String,
    pub(crate) callgrind: bool,
    /// With `callgrind`: count the core's instructions too (a run of its own per workload).
    pub(crate) callgrind_core: bool,
    /// Where the callgrind dumps are kept.
    pub(crate) out: PathBuf,
    /// Count the braid daemons' system calls by name (`perf stat`).
    pub(crate) syscalls: bool,
}

/// Run the comparison; rows in run order. Progress on stderr.
pub(crate) fn run(sc: &Scenario, o: &CpuOpts) -> Result<(Vec<CpuRow>, Vec<InstrRow>), String> {
    let mut rows = Vec::new();
    let modes: Vec<Mode> = [Mode::Braid, Mode::Mptcp]
        .into_iter()
        .filter(|m| match m.available() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("skipping mode {}: {e}", m.name());
                false
            }
        })
        .collect();
    let total = o.repeat * modes.len() * o.workloads.len();
    let mut done = 0;
    for repeat in 1..=o.repeat {
        for &m in &modes {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Ok((rows, Vec::new()));
            }
            let (edge_l, core_l) = labels(m).expect("braid and mptcp have processes");
            let mut t =
                Topology::up(topo_spec(sc, &o.tag)).map_err(|e| format!("topology: {e}"))?;
            m.setup(&mut t)
                .map_err(|e| format!("mode {}: {e}", m.name()))?;
            let pids = (t.pid(edge_l), t.pid(core_l));
            let (Some(ep), Some(cp)) = pids else {
                return Err(format!(
                    "mode {}: no {edge_l} or {core_l} process",
                    m.name()
                ));
            };
            for w in &o.workloads {
                done += 1;
                eprintln!(
                    "[{done}/{total}] repeat {repeat}: {} {} for {:.0} s",
                    m.name(),
                    w.name(),
                    o.duration.as_secs_f64()
                );
                t.restart_links().map_err(|e| format!("links: {e}"))?;
                let counters = if m == Mode::Braid {
                    let perf = |side: &str| {
                        o.syscalls
                            .then(|| t.log_dir.join(format!("perf-{side}-{}.txt", w.name())))
                    };
                    Some((
                        Counter::start(ep, t.log_dir.join("edge0.sock"), perf("edge"))?,
                        Counter::start(cp, t.log_dir.join("core.sock"), perf("core"))?,
                    ))
                } else {
                    None
                };
                let before = (proc_cpu_s(ep), proc_cpu_s(cp));
                let res = work::run_workload(&t, *w, o.duration, &INTERRUPTED, |_| {})
                    .map_err(|e| format!("{} {}: {e}", m.name(), w.name()))?;
                let after = (proc_cpu_s(ep), proc_cpu_s(cp));
                let (edge_counts, core_counts) = match counters {
                    Some((e, c)) => (Some(e.stop()?), Some(c.stop()?)),
                    None => (None, None),
                };
                let d = |a: &io::Result<(f64, f64)>,
                         b: &io::Result<(f64, f64)>|
                 -> Result<(f64, f64), String> {
                    let a = a.as_ref().map_err(|e| e.to_string())?;
                    let b = b.as_ref().map_err(|e| e.to_string())?;
                    Ok((b.0 - a.0, b.1 - a.1))
                };
                let (eu, es) = d(&before.0, &after.0)?;
                let (cu, cs) = d(&before.1, &after.1)?;
                let row = CpuRow {
                    mode: m.name().into(),
                    workload: w.name(),
                    repeat,
                    goodput_mbps: res.goodput_mbps,
                    bytes: res.bytes,
                    edge_cpu_s: eu + es,
                    core_cpu_s: cu + cs,
                    edge_sys_s: es,
                    edge_counts,
                    core_counts,
                };
                eprintln!(
                    "    {:6.2} Mbit/s  edge side {:5.1} CPU s/GB  core side {:5.1} CPU s/GB",
                    row.goodput_mbps,
                    row.edge_s_per_gb(),
                    row.core_s_per_gb()
                );
                if let (Some(e), Some(c)) = (&row.edge_counts, &row.core_counts) {
                    let all = |c: &Counts| {
                        c.syscall("all").map_or(String::new(), |n| {
                            format!(", {:.2} syscalls", c.per_packet(n))
                        })
                    };
                    eprintln!(
                        "    per packet: edge {:.2} wake-ups{}, core {:.2} wake-ups{}",
                        e.per_packet(e.wakeups),
                        all(e),
                        c.per_packet(c.wakeups),
                        all(c)
                    );
                }
                rows.push(row);
            }
            t.teardown();
        }
    }
    let mut instr = Vec::new();
    let sides: &[&'static str] = match (o.callgrind, o.callgrind_core) {
        (false, _) => &[],
        (true, false) => &["edge"],
        (true, true) => &["edge", "core"],
    };
    for &w in &o.workloads {
        for &side in sides {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Ok((rows, instr));
            }
            instr.push(callgrind_run(sc, o, w, side)?);
        }
    }
    Ok((rows, instr))
}

/// The total of the `summary:` (or `totals:`) line of a callgrind output file: Ir, the first event.
pub(crate) fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Inner packets and bytes a daemon forwarded so far, both ways, over all its sessions, and the
/// packets it sent into the tunnel (from its `braid status`).
fn status_packets(exe: &Path, sock: &Path) -> Result<(u64, u64, u64), String> {
    let out = Command::new(exe)
        .args(["status", "--json", "--socket"])
        .arg(sock)
        .output()
        .map_err(|e| format!("braid status: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("braid status: unreadable reply: {e}"))?;
    let sessions = v["sessions"]
        .as_array()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("braid status {}: no session", sock.display()))?;
    let n = |k: &str| {
        sessions
            .iter()
            .map(|s| s[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    Ok((
        n("tx_packets") + n("rx_packets"),
        n("tx_bytes") + n("rx_bytes"),
        n("tx_packets"),
    ))
}

/// Context switches of a process so far (voluntary + involuntary, over all its threads' main
/// one: the daemons' loop is single-threaded), from the text of /proc/PID/status.
pub(crate) fn status_switches(status: &str) -> Option<u64> {
    let field = |k: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// UDP datagrams sent so far in a namespace, from the text of its /proc/PID/net/snmp (the
/// `Udp:` header line, then the values).
pub(crate) fn snmp_udp_out(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter_map(|l| l.strip_prefix("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "OutDatagrams")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn udp_out(pid: u32) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/snmp"))
        .map_err(|e| format!("/proc/{pid}/net/snmp: {e}"))?;
    snmp_udp_out(&text).ok_or_else(|| format!("/proc/{pid}/net/snmp: no Udp OutDatagrams"))
}

fn switches(pid: u32) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status_switches(&text).ok_or_else(|| format!("/proc/{pid}/status: no context switches"))
}

/// The system calls `--syscalls` counts by name (those the kernel has a tracepoint for), beside
/// all of them.
const SYSCALLS: &[&str] = &[
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "read",
    "write",
    "writev",
    "futex",
    "timerfd_settime",
    "ioctl",
];

/// Calls counted again when they returned nothing, as "NAME (none)": a wait that timed out (a
/// timer's wake-up) and reads that found nothing (each costs a system call, and no packet).
const NONE_FILTERS: &[(&str, &str)] = &[
    ("epoll_wait", "ret == 0"),
    ("recvmmsg", "ret < 0"),
    ("recvfrom", "ret < 0"),
];

/// `perf stat` counting one process's system calls until [`SyscallCount::stop`].
struct SyscallCount {
    child: std::process::Child,
    out: PathBuf,
}

impl SyscallCount {
    fn start(pid: u32, out: PathBuf) -> Result<SyscallCount, String> {
        let mut events = vec!["raw_syscalls:sys_enter".to_string()];
        for n in SYSCALLS {
            if Path::new(&format!(
                "/sys/kernel/tracing/events/syscalls/sys_enter_{n}"
            ))
            .exists()
            {
                events.push(format!("syscalls:sys_enter_{n}"));
            }
        }
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x", ",", "-o"])
            .arg(&out)
            .args(["-e", &events.join(",")]);
        for (n, filter) in NONE_FILTERS {
            if Path::new(&format!("/sys/kernel/tracing/events/syscalls/sys_exit_{n}")).exists() {
                cmd.args(["-e", &format!("syscalls:sys_exit_{n}"), "--filter", filter]);
            }
        }
        let child = cmd
            .args(["-p", &pid.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("--syscalls: perf: {e} (apt-get install linux-perf)"))?;
        // perf attaches to the process before it counts: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        Ok(SyscallCount { child, out })
    }

    fn stop(mut self) -> Result<Vec<(String, u64)>, String> {
        // perf prints its counts on SIGINT. Its pid is ours until reaped below.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("{}: {e}", self.out.display()))?;
        Ok(perf_counts(&text))
    }
}

/// The counts of `perf stat -x ,` output, by system call name ("all" for raw_syscalls).
pub(crate) fn perf_counts(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n: u64 = f.first()?.trim().parse().ok()?;
            let ev = f.get(2)?.trim();
            let name = if ev == "raw_syscalls:sys_enter" {
                "all".to_string()
            } else if let Some(n) = ev.strip_prefix("syscalls:sys_exit_") {
                format!("{n} (none)")
            } else {
                ev.strip_prefix("syscalls:sys_enter_")?.to_string()
            };
            Some((name, n))
        })
        .collect()
}

/// Counts one daemon's packets, wake-ups and (optionally) system calls over a transfer.
struct Counter {
    pid: u32,
    sock: PathBuf,
    packets: (u64, u64),
    datagrams: u64,
    switches: u64,
    perf: Option<SyscallCount>,
}

impl Counter {
    fn start(pid: u32, sock: PathBuf, perf_out: Option<PathBuf>) -> Result<Counter, String> {
        let perf = perf_out.map(|o| SyscallCount::start(pid, o)).transpose()?;
        Ok(Counter {
            pid,
            packets: status_packets(&std::env::current_exe().map_err(|e| e.to_string())?, &sock)
                .map(|p| (p.0, p.2))?,
            datagrams: udp_out(pid)?,
            switches: switches(pid)?,
            sock,
            perf,
        })
    }

    fn stop(self) -> Result<Counts, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let switches = switches(self.pid)? - self.switches;
        let p = status_packets(&exe, &self.sock)?;
        let syscalls = match self.perf {
            Some(p) => p.stop()?,
            None => Vec::new(),
        };
        Ok(Counts {
            packets: p.0 - self.packets.0,
            sent: p.2 - self.packets.1,
            datagrams: udp_out(self.pid)?.saturating_sub(self.datagrams),
            wakeups: switches,
            syscalls,
        })
    }
}

/// The table of counts per forwarded packet: per workload and daemon, min / median / max of
/// wake-ups and system calls per packet over the repeats, and the medians by system call.
pub(crate) fn counts_table(rows: &[CpuRow]) -> String {
    let mut keys: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.edge_counts.is_some()) {
        if !keys.contains(&r.workload) {
            keys.push(r.workload.clone());
        }
    }
    if keys.is_empty() {
        return String::new();
    }
    keys.sort();
    let mut s = String::from(
        "| workload | daemon | packets (median) | wake-ups / packet | system calls / packet | by call (medians per packet) | datagrams without data / packet received |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for w in &keys {
        for (side, get) in [
            (
                "braid edge",
                (|r: &CpuRow| r.edge_counts.clone()) as fn(&CpuRow) -> Option<Counts>,
            ),
            ("braid core", |r: &CpuRow| r.core_counts.clone()),
        ] {
            let cs: Vec<Counts> = rows
                .iter()
                .filter(|r| &r.workload == w)
                .filter_map(get)
                .collect();
            if cs.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&Counts) -> Option<f64>| -> Vec<f64> {
                cs.iter().filter_map(f).collect()
            };
            let packets = col(&|c| Some(c.packets as f64));
            let wake = col(&|c| Some(c.per_packet(c.wakeups)));
            let all = col(&|c| c.syscall("all").map(|n| c.per_packet(n)));
            let mut by = Vec::new();
            let names = SYSCALLS
                .iter()
                .map(|n| n.to_string())
                .chain(NONE_FILTERS.iter().map(|(n, _)| format!("{n} (none)")));
            for n in names {
                let v = col(&|c| c.syscall(&n).map(|x| c.per_packet(x)));
                if let Some((_, med, _)) = min_med_max(&v) {
                    if med >= 0.005 {
                        by.push(format!("{n} {med:.2}"));
                    }
                }
            }
            // Link sends beyond the data datagrams (ACKs, probes, control), per inner packet
            // the daemon received from the tunnel: on the receiving side, about the ACK frames
            // sent per data packet.
            let bare = col(&|c| {
                let received = c.packets.saturating_sub(c.sent).max(1);
                Some(c.datagrams.saturating_sub(c.sent) as f64 / received as f64)
            });
            s.push_str(&format!(
                "| {w} | {side} | {} | {} | {} | {} | {} |\n",
                min_med_max(&packets).map_or("-".into(), |m| format!("{:.0}", m.1)),
                mmm(&wake, 2),
                mmm(&all, 2),
                if by.is_empty() {
                    "-".into()
                } else {
                    by.join(", ")
                },
                mmm(&bare, 2),
            ));
        }
    }
    s
}

/// One callgrind run of workload `w` with the `side` daemon ("edge" or "core") under valgrind.
fn callgrind_run(
    sc: &Scenario,
    o: &CpuOpts,
    w: Workload,
    side: &'static str,
) -> Result<InstrRow, String> {
    for p in ["valgrind", "callgrind_control"] {
        if Command::new(p).arg("--version").output().is_err() {
            return Err(format!(
                "--callgrind: `{p}` not found (apt-get install valgrind)"
            ));
        }
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!(
        "callgrind: braid {side} under valgrind, {} for {:.0} s (about 50 times slower)",
        w.name(),
        o.duration.as_secs_f64()
    );
    let mut t = Topology::up(topo_spec(sc, &o.tag)).map_err(|e| format!("topology: {e}"))?;
    let out_file: PathBuf = t.log_dir.join(format!("{side}.callgrind"));
    let out_arg = format!("--callgrind-out-file={}", out_file.display());
    let wrapper = ["valgrind", "--tool=callgrind", "--quiet", &out_arg];
    let (edge_w, core_w): (&[&str], &[&str]) = if side == "core" {
        (&[], &wrapper)
    } else {
        (&wrapper, &[])
    };
    mode::setup_braid_wrapped(&mut t, edge_w, core_w)
        .map_err(|e| format!("braid under callgrind: {e}"))?;
    let label = if side == "core" {
        "braid-core"
    } else {
        "braid-edge0"
    };
    let pid = t.pid(label).ok_or("no braid process to count")?.to_string();
    let sock = t.log_dir.join("edge0.sock");
    let ctl = |arg: &str| -> Result<(), String> {
        let st = Command::new("callgrind_control")
            .args([arg, &pid])
            .output()
            .map_err(|e| format!("callgrind_control: {e}"))?;
        if !st.status.success() {
            return Err(format!(
                "callgrind_control {arg}: {}",
                String::from_utf8_lossy(&st.stderr).trim()
            ));
        }
        Ok(())
    };
    t.restart_links().map_err(|e| format!("links: {e}"))?;
    let (p0, _, _) = status_packets(&exe, &sock)?;
    ctl("-z")?;
    let started = Instant::now();
    let res = work::run_workload(&t, w, o.duration, &INTERRUPTED, |_| {})
        .map_err(|e| format!("{}: {e}", w.name()))?;
    ctl("-d")?;
    let (p1, _, _) = status_packets(&exe, &sock)?;
    // The dump is written next to the output file with a numbered suffix.
    let dir = out_file.parent().unwrap_or(Path::new("."));
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{side}.callgrind")) {
            let m = e.metadata().and_then(|m| m.modified()).ok();
            if let Some(m) = m {
                if best.as_ref().map_or(true, |(b, _)| m > *b) {
                    best = Some((m, e.path()));
                }
            }
        }
    }
    let file = best.ok_or("callgrind wrote no dump")?.1;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let instructions = callgrind_total(&text).ok_or("callgrind dump without a total")?;
    // Kept beside the results: the per-function table is `callgrind_annotate` of it.
    let kept = o.out.join(format!("callgrind.{side}.{}.out", w.name()));
    let dump = std::fs::create_dir_all(&o.out)
        .and_then(|()| std::fs::write(&kept, &text))
        .map(|()| kept)
        .map_err(|e| eprintln!("callgrind: could not keep the dump: {e}"))
        .ok();
    eprintln!(
        "callgrind: {instructions} instructions, {} packets, {:.2} Mbit/s in {:.0} s",
        p1 - p0,
        res.goodput_mbps,
        started.elapsed().as_secs_f64()
    );
    t.teardown();
    Ok(InstrRow {
        workload: w.name(),
        side,
        instructions,
        packets: p1.saturating_sub(p0),
        bytes: res.bytes,
        dump,
    })
}

/// The MT7621 projection's assumptions: one 880 MHz MIPS 1004Kc core, in-order single issue;
/// the IPCs bracket what such a core retires on integer and crypto code. cross/count.py reads
/// these two lines (one source for both projections): keep their form.
pub(crate) const MT7621_HZ: f64 = 880e6;
pub(crate) const MT7621_IPC: (f64, f64) = (0.5, 0.8);

/// The instruction table, with the MT7621 projection and its assumptions. `user_share` is the
/// user-space part of the edge's CPU time in the native runs of the same workload: callgrind
/// counts user space only, the kernel's work for the same packets comes on top in proportion.
pub(crate) fn instr_text(r: &InstrRow, user_share: Option<f64>) -> String {
    let kept = r
        .dump
        .as_ref()
        .map(|d| format!(" Dump: {}.", d.display()))
        .unwrap_or_default();
    if r.side == "core" {
        // The core runs on a server: no router projection.
        return format!(
            "Instructions of `braid core` (x86_64 release build, callgrind), {}: {:.0} per \
             forwarded packet ({} instructions, {} packets both ways, {} goodput bytes).{kept}\n",
            r.workload,
            r.per_packet(),
            r.instructions,
            r.packets,
            r.bytes,
        );
    }
    // One MT7621 core: the edge's loop is single-threaded.
    let share = user_share.filter(|s| *s > 0.0 && *s <= 1.0).unwrap_or(1.0);
    let (ipc_lo, ipc_hi) = MT7621_IPC;
    let lo = r.projected_mbps(MT7621_HZ, ipc_lo) * share;
    let hi = r.projected_mbps(MT7621_HZ, ipc_hi) * share;
    format!(
        "Instructions of `braid edge` (x86_64 release build, callgrind), {}: {:.0} per forwarded \
         packet ({} instructions, {} packets both ways, {} goodput bytes).\n\
         Projected for an MT7621 (one {:.0} MHz MIPS 1004Kc core, IPC {ipc_lo}-{ipc_hi}, the same count of \
         instructions per byte, and the kernel's work on top in the proportion measured above: \
         user space {:.0} % of the edge's CPU time): {:.0}-{:.0} Mbit/s of bonded, encrypted \
         goodput. The router build needs about 2.7 times x86_64's instructions for the same packet \
         (session 17; `make bench-mips` counts it under qemu-mips), so the real figure is \
         lower.{kept}\n",
        r.workload,
        r.per_packet(),
        r.instructions,
        r.packets,
        r.bytes,
        MT7621_HZ / 1e6,
        100.0 * share,
        lo,
        hi
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // utime 250, stime 50 ticks; a name with a space and a parenthesis.
        let s = "4242 (braid (x) y) S 1 4242 4242 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 2 0 7 1 2";
        assert_eq!(stat_cpu_s(s, 100.0), Some((2.5, 0.5)));
        assert_eq!(stat_cpu_s("4242 (braid) S 1", 100.0), None);
    }

    #[test]
    fn min_median_max_over_repeats() {
        assert_eq!(min_med_max(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(min_med_max(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(min_med_max(&[f64::NAN, 5.0]), Some((5.0, 5.0, 5.0)));
        assert_eq!(min_med_max(&[]), None);
    }

    fn row(mode: &str, repeat: usize, bytes: u64, edge: f64, core: f64) -> CpuRow {
        CpuRow {
            mode: mode.into(),
            workload: "bulk8-down".into(),
            repeat,
            goodput_mbps: bytes as f64 * 8.0 / 10.0 / 1e6,
            bytes,
            edge_cpu_s: edge,
            core_cpu_s: core,
            edge_sys_s: edge / 2.0,
            edge_counts: None,
            core_counts: None,
        }
    }

    #[test]
    fn table_gives_cpu_per_gb_and_the_ratio_of_medians() {
        let rows = vec![
            row("braid", 1, 500_000_000, 5.0, 6.0),
            row("braid", 2, 500_000_000, 6.0, 6.0),
            row("braid", 3, 500_000_000, 7.0, 6.0),
            row("mptcp", 1, 1_000_000_000, 4.0, 8.0),
            row("mptcp", 2, 1_000_000_000, 4.0, 8.0),
        ];
        let t = table(&rows);
        // braid: 10 / 12 / 14 s per GB on the edge side; mptcp 4 / 4 / 4.
        assert!(t.contains("| bulk8-down | braid | 3 | 400.0 / 400.0 / 400.0 | braid edge: 10.0 / 12.0 / 14.0 | 50 / 50 / 50 % | braid core: 12.0 / 12.0 / 12.0 |"), "{t}");
        assert!(t.contains("| bulk8-down | mptcp | 2 |"), "{t}");
        assert!(t.contains("ss-redir: 4.0 / 4.0 / 4.0"), "{t}");
        assert!(
            t.contains(
                "braid edge / ss-redir per byte = 3.00 (medians); braid core / ss-server = 1.50"
            ),
            "{t}"
        );
    }

    #[test]
    fn wakeups_and_syscalls_are_read_and_tabled_per_packet() {
        let st = "Name:\tbraid\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n";
        assert_eq!(status_switches(st), Some(1234));
        assert_eq!(status_switches("Name:\tbraid\n"), None);
        // Datagrams sent, whatever call sent them (sendmmsg counts one call for many).
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\n\
                    Udp: 10 0 0 2345 0\nUdpLite: InDatagrams OutDatagrams\nUdpLite: 0 7\n";
        assert_eq!(snmp_udp_out(snmp), Some(2345));
        assert_eq!(snmp_udp_out("Ip: 1\n"), None);
        // perf stat -x , (count, unit, event, run time, share, ...); uncounted lines left out.
        let perf = "# started on Sun Dec  6 18:00:00 2026\n\n\
                    5000,,raw_syscalls:sys_enter,1000,100.00,,\n\
                    2000,,syscalls:sys_enter_sendto,1000,100.00,,\n\
                    <not counted>,,syscalls:sys_enter_sendmmsg,0,0.00,,\n\
                    1000,,syscalls:sys_enter_epoll_wait,1000,100.00,,\n\
                    250,,syscalls:sys_exit_epoll_wait,1000,100.00,,\n";
        let calls = perf_counts(perf);
        assert_eq!(
            calls,
            vec![
                ("all".to_string(), 5000),
                ("sendto".to_string(), 2000),
                ("epoll_wait".to_string(), 1000),
                ("epoll_wait (none)".to_string(), 250)
            ]
        );
        let mut rows = vec![row("braid", 1, 1, 0.0, 0.0), row("braid", 2, 1, 0.0, 0.0)];
        for (r, k) in rows.iter_mut().zip([1, 3]) {
            r.edge_counts = Some(Counts {
                packets: 1000,
                sent: 600,
                datagrams: 2000,
                wakeups: 500 * k,
                syscalls: calls.clone(),
            });
            r.core_counts = Some(Counts {
                packets: 2000,
                sent: 1000,
                datagrams: 1500,
                wakeups: 100,
                syscalls: Vec::new(),
            });
        }
        let t = counts_table(&rows);
        assert!(
            t.contains("| bulk8-down | braid edge | 1000 | 0.50 / 1.00 / 1.50 | 5.00 / 5.00 / 5.00 | sendto 2.00, epoll_wait 1.00, epoll_wait (none) 0.25 | 3.50 / 3.50 / 3.50 |"),
            "{t}"
        );
        assert!(
            t.contains("| bulk8-down | braid core | 2000 | 0.05 / 0.05 / 0.05 | - | - | 0.50 / 0.50 / 0.50 |"),
            "{t}"
        );
        assert_eq!(counts_table(&rows[..0]), "");
    }

    #[test]
    fn callgrind_summary_and_projection() {
        let dump = "version: 1\ncmd: braid edge\nevents: Ir\nsummary: 123456789\n\nfl=x\n";
        assert_eq!(callgrind_total(dump), Some(123_456_789));
        assert_eq!(callgrind_total("totals: 42 7\n"), Some(42));
        assert_eq!(callgrind_total("events: Ir\n"), None);
        // 10 instructions per byte at 1 GHz and IPC 1: 100 MB/s = 800 Mbit/s.
        let mut r = InstrRow {
            workload: "bulk8-down".into(),
            side: "edge",
            instructions: 10_000,
            packets: 10,
            bytes: 1_000,
            dump: None,
        };
        assert_eq!(r.per_packet(), 1000.0);
        assert!((r.projected_mbps(1e9, 1.0) - 800.0).abs() < 1e-9);
        // Half the edge's time in the kernel halves the projection.
        let full = instr_text(&r, None);
        let half = instr_text(&r, Some(0.5));
        assert!(full.contains("user space 100 %"), "{full}");
        assert!(
            full.contains("one 880 MHz MIPS 1004Kc core, IPC 0.5-0.8,"),
            "{full}"
        );
        assert!(half.contains("user space 50 %"), "{half}");
        let p = 880e6 * 0.5 / 10.0 * 8.0 / 1e6;
        assert!(half.contains(&format!("{:.0}-", p / 2.0)), "{half}");
        // The core's count has no router projection.
        r.side = "core";
        let core = instr_text(&r, Some(0.5));
        assert!(
            core.contains("`braid core`") && core.contains("1000 per"),
            "{core}"
        );
        assert!(!core.contains("MT7621"), "{core}");
    }
}
