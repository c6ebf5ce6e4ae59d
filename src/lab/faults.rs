//! The fault bench (`braid lab faults`, `make bench-faults`) and the faults of the end-to-end
//! tests (tests/e2e_faults.rs): real `braid edge` and `braid core` processes in the lab's
//! namespaces, a fault, and how long after the fault's end a bonded UDP stream and a bonded TCP
//! transfer carry data again, with what became of the client's TCP flows that ran across it.
//!
//! Each run builds its own topology (two links: 20 Mbit/s 10 ms and 10 Mbit/s 15 ms) and
//! daemons, so runs do not inherit each other's state. Throughout a run the client
//! - sends a UDP datagram every 10 ms to the server, which echoes it with the address it saw:
//!   an echo naming the core's address came through the tunnel ("bonded"); the stream keeps its
//!   socket (one 5-tuple) across the fault, so a flow pinned to a stale path shows;
//! - runs a TCP download and a TCP upload, started before the fault (for the boot faults,
//!   before the edge starts: they take the plain WAN then), whose fate is reported: went on,
//!   stalled, reset (the client saw a connection reset) or failed otherwise.
//!
//! From the fault's end, "UDP back" is the first bonded echo, "TCP back" the first new 64 KB
//! download, tried every 250 ms, that arrived through the tunnel. Where the fault ends:
//! the restarted core's "core started" log line; the new edge process's start; the links'
//! return; DNS answering again; the devices appearing.
//!
//! Every wait is bounded (a run takes at most about a minute); everything a run makes is named
//! `bl<tag>-...` and removed when it ends, also on error or Ctrl-C.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::daemon::{Daemon, Start};
use super::dns::{Dns, DnsMode};
use super::emu::{DirSpec, OutageKind, Rate};
use super::link::LinkSpec;
use super::mode::{braid_configs, keypair, BraidKeys};
use super::topo::{self, EdgeSpec, TopoSpec, Topology};
use super::{sys, INTERRUPTED};

/// The faults, in bench order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// `braid core` stopped with SIGTERM and started again at once (an upgrade).
    CoreRestart,
    /// `braid core` killed with -9 and started 5 s later (a crash, a reboot of its host).
    CoreKill,
    /// `braid edge` stopped with SIGTERM and started again at once.
    EdgeRestart,
    /// Every link black-holed (a tunnel).
    Blackhole,
    /// One link black-holed half of every second.
    Flap,
    /// `core_host` does not resolve for the first seconds after the edge starts.
    Dns,
    /// The links' devices appear after the edge started (modems come up late).
    DeviceLate,
    /// The edge restarted with its clock a day behind (a router without a real-time clock).
    ClockBehind,
}

/// Every fault with its name (as `--faults` takes it and the report shows it), in bench order.
const FAULTS: [(&str, Fault); 8] = [
    ("core-restart", Fault::CoreRestart),
    ("core-kill", Fault::CoreKill),
    ("edge-restart", Fault::EdgeRestart),
    ("blackhole", Fault::Blackhole),
    ("flap", Fault::Flap),
    ("dns", Fault::Dns),
    ("device-late", Fault::DeviceLate),
    ("clock-behind", Fault::ClockBehind),
];

impl Fault {
    pub(crate) fn all() -> Vec<Fault> {
        FAULTS.iter().map(|&(_, f)| f).collect()
    }

    pub(crate) fn parse(s: &str) -> Result<Fault, String> {
        FAULTS
            .iter()
            .find(|&&(n, _)| n == s)
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                let names: Vec<&str> = FAULTS.iter().map(|&(n, _)| n).collect();
                format!("unknown fault '{s}' ({})", names.join(", "))
            })
    }

    /// What the fault is, in words, with the durations of `o`.
    pub fn describe(&self, o: &FaultOpts) -> String {
        let s = |d: Duration| format!("{} s", d.as_secs_f64());
        match self {
            Fault::CoreRestart => "core restarted (SIGTERM + start)".into(),
            Fault::CoreKill => format!("core killed (-9), started {} later", s(o.core_down)),
            Fault::EdgeRestart => "edge restarted (SIGTERM + start)".into(),
            Fault::Blackhole => format!("every link black-holed {}", s(o.blackhole)),
            Fault::Flap => format!("one link flapping 1/s for {}", s(o.flap)),
            Fault::Dns => format!("DNS failing the first {} of the edge", s(o.dns_fail)),
            Fault::DeviceLate => format!("link devices appearing {} after start", s(o.device_late)),
            Fault::ClockBehind => "edge restarted, its clock a day behind".into(),
        }
    }
}

/// Durations of the faults and the binary to run.
#[derive(Clone, Debug)]
pub struct FaultOpts {
    /// The `braid` binary whose `edge` and `core` run.
    pub(crate) exe: PathBuf,
    /// Namespace tag (see [`TopoSpec::tag`]): up to 5 characters, a digit is appended per run.
    pub tag: String,
    core_down: Duration,
    blackhole: Duration,
    pub flap: Duration,
    dns_fail: Duration,
    device_late: Duration,
    /// How long to wait for data after the fault's end before calling it "never".
    pub patience: Duration,
}

impl FaultOpts {
    /// The durations (issue 12 item 7).
    pub fn bench(exe: PathBuf) -> FaultOpts {
        FaultOpts {
            exe,
            tag: "f".into(),
            core_down: Duration::from_secs(5),
            blackhole: Duration::from_secs(10),
            flap: Duration::from_secs(30),
            dns_fail: Duration::from_secs(20),
            device_late: Duration::from_secs(20),
            patience: Duration::from_secs(20),
        }
    }
}

/// What became of one client TCP flow that ran across the fault.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fate {
    /// It moved in the last second of the run.
    WentOn,
    /// Alive but no byte moved in the last second.
    Stalled,
    /// The client saw a connection reset.
    Reset,
    /// It could not connect (no path yet: the boot faults).
    NotStarted,
    /// Another error (closed, timed out).
    Failed(String),
}

/// One run of one fault.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaultRun {
    pub fault: Fault,
    /// The bonded UDP stream's first echo after the fault's end, ms.
    pub udp_ms: Option<f64>,
    /// The first new bonded 64 KB TCP download after the fault's end, ms.
    pub tcp_ms: Option<f64>,
    /// The download that ran across the fault moved again this long after its end, ms (none
    /// for the boot faults: it took the plain WAN until then).
    old_tcp_ms: Option<f64>,
    /// The longest time without a bonded UDP echo from the fault's start on, ms (none for the
    /// boot faults, bonded only after them).
    pub udp_gap_ms: Option<f64>,
    /// A new bonded 64 KB download with nothing wrong, timed once everything settled after
    /// the fault: what `tcp_ms` includes besides the wait, ms.
    tcp_baseline_ms: Option<f64>,
    /// The client's TCP flows across the fault: (what, fate).
    pub flows: Vec<(String, Fate)>,
    /// What else was seen (the edge asked DNS again after ..., a daemon's exit, ...).
    pub(crate) notes: Vec<String>,
}

impl FaultRun {}

/// Server port (TCP and UDP).
const PORT: u16 = 7090;
/// Size of the probe downloads.
const PROBE_BYTES: usize = 64 * 1024;

/// Runs `fault` once: a fresh topology and daemons, the fault, the measurements.
/// `progress` hears what happens, one line at a time.
pub fn run(fault: Fault, o: &FaultOpts, progress: &mut dyn FnMut(&str)) -> io::Result<FaultRun> {
    let mut lab = FaultLab::up(o)?;
    let r = lab.run(fault, o, progress);
    if r.is_err() {
        lab.t.keep_logs = true;
    }
    r
}

/// The lab of one run: the topology, the daemons, the server and the client's traffic.
struct FaultLab {
    // Dropped first: the daemons and the traffic, then the topology.
    core: Option<Daemon>,
    edge: Option<Daemon>,
    server: Option<Server>,
    t: Topology,
    edge_start: Start,
    core_start: Start,
}

impl FaultLab {
    fn up(o: &FaultOpts) -> io::Result<FaultLab> {
        let fixed = |mbit: u64, ms: u64| DirSpec {
            rate: Rate::Fixed(mbit * 1_000_000),
            delay_us: ms * 1000,
            ..Default::default()
        };
        let link = |name: &str, mbit, ms| LinkSpec {
            name: name.into(),
            up: fixed(mbit, ms),
            down: fixed(mbit, ms),
        };
        let t = Topology::up(TopoSpec {
            tag: o.tag.clone(),
            seed: 1,
            edges: vec![EdgeSpec {
                links: vec![link("wan0", 20, 10), link("wan1", 10, 15)],
                clients: 1,
                best: 0,
            }],
        })?;
        let (core_private, core_public) = keypair(&o.exe)?;
        let (ep, epub) = keypair(&o.exe)?;
        let keys = BraidKeys {
            core_private,
            core_public,
            edge_private: vec![ep],
            edge_public: vec![epub],
        };
        let (edges, core) =
            braid_configs(&t.prefix, &t.log_dir, &[t.edges[0].wan_dev.clone()], &keys);
        let dir = t.log_dir.clone();
        std::fs::write(dir.join("edge0.uci"), &edges[0])?;
        std::fs::write(dir.join("core.uci"), core)?;
        let start = |ns: &str, role: &str, config: &str, log: &str| Start {
            exe: o.exe.clone(),
            ns: ns.into(),
            role: role.into(),
            config: dir.join(config),
            log: dir.join(log),
            ..Default::default()
        };
        let edge_start = start(&t.edges[0].ns, "edge", "edge0.uci", "edge0.log");
        let core_start = start(&t.core, "core", "core.uci", "core.log");
        let server = Server::start(&t.server)?;
        Ok(FaultLab {
            core: None,
            edge: None,
            server: Some(server),
            t,
            edge_start,
            core_start,
        })
    }

    fn client(&self) -> String {
        self.t.edges[0].clients[0].clone()
    }

    fn server_addr(&self) -> SocketAddr {
        SocketAddr::from((topo::SERVER_ADDR, PORT))
    }

    fn start_core(&mut self) -> io::Result<()> {
        self.core = Some(Daemon::start(&self.core_start)?);
        Ok(())
    }

    fn start_edge(&mut self) -> io::Result<()> {
        self.edge = Some(Daemon::start(&self.edge_start)?);
        Ok(())
    }

    /// How many times the core's log says it started.
    fn core_starts(&self) -> usize {
        self.core
            .as_ref()
            .map_or(0, |c| c.log_text().matches("core started on port").count())
    }

    /// Waits for the `n`th "core started" line: the moment the core listens.
    fn core_listening(&mut self, n: usize) -> io::Result<Instant> {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.core_starts() >= n {
                return Ok(Instant::now());
            }
            self.check_running()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(io::Error::other("the core did not start within 10 s"))
    }

    /// An error quoting the log of a daemon that exited.
    fn check_running(&mut self) -> io::Result<()> {
        for d in [self.core.as_mut(), self.edge.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(st) = d.exited() {
                let log = d.log_text();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(io::Error::other(format!(
                    "{} exited ({st}):\n{}",
                    d.log.display(),
                    tail.join("\n")
                )));
            }
        }
        Ok(())
    }

    /// Waits until a new TCP connection and a UDP datagram from the client go through the tunnel.
    fn wait_bonded(&mut self, timeout: Duration) -> io::Result<Duration> {
        let t0 = Instant::now();
        let (client, server) = (self.client(), self.server_addr());
        while t0.elapsed() < timeout {
            self.check_running()?;
            if probe_download(&client, server).is_ok() {
                return Ok(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other(format!(
            "not bonded within {timeout:?}\n--- edge log:\n{}",
            self.edge.as_ref().map(|d| d.log_text()).unwrap_or_default()
        )))
    }

    fn run(
        &mut self,
        fault: Fault,
        o: &FaultOpts,
        say: &mut dyn FnMut(&str),
    ) -> io::Result<FaultRun> {
        let boot = matches!(fault, Fault::Dns | Fault::DeviceLate);
        let mut notes = Vec::new();
        let mut dns = None;
        self.start_core()?;
        if boot {
            self.core_listening(1)?;
        } else {
            self.start_edge()?;
            say("starting core and edge, waiting for the bond");
            self.wait_bonded(Duration::from_secs(15))?;
        }
        if fault == Fault::Dns {
            // The edge asks the lab's DNS server for the core's name, over its own resolv.conf.
            const NAME: &str = "core.braid.test";
            let conf = self.edge_start.config.clone();
            let text = std::fs::read_to_string(&conf)?.replace(
                &format!("option core_host '{}'", topo::CORE_ADDR),
                &format!("option core_host '{NAME}'"),
            );
            std::fs::write(&conf, text)?;
            let resolv = self.t.log_dir.join("resolv.conf");
            std::fs::write(&resolv, "nameserver 127.0.0.1\n")?;
            self.edge_start
                .binds
                .push((resolv, PathBuf::from("/etc/resolv.conf")));
            dns = Some(Dns::try_start(&self.t.edges[0].ns, NAME, DnsMode::Silent)?);
        }
        if fault == Fault::DeviceLate {
            self.hide_devices()?;
        }
        // The client's traffic, from before the fault on.
        let (client, server) = (self.client(), self.server_addr());
        let udp = UdpStream::start(&client, server)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flows = vec![
            Flow::start(&client, server, b'D', "download", stop.clone()),
            Flow::start(&client, server, b'S', "upload", stop.clone()),
        ];
        std::thread::sleep(Duration::from_secs(2));
        let began = Instant::now();
        let end = match fault {
            Fault::CoreRestart => {
                say("core: SIGTERM, then started again");
                let n = self.core_starts();
                self.core.as_mut().map(|c| c.term(Duration::from_secs(5)));
                self.start_core()?;
                self.core_listening(n + 1)?
            }
            Fault::CoreKill => {
                say(&format!(
                    "core: kill -9, started again after {:?}",
                    o.core_down
                ));
                let n = self.core_starts();
                self.core.as_mut().map(Daemon::kill9);
                self.sleep(o.core_down)?;
                self.start_core()?;
                self.core_listening(n + 1)?
            }
            Fault::EdgeRestart | Fault::ClockBehind => {
                say("edge: SIGTERM, then started again");
                self.edge.as_mut().map(|e| e.term(Duration::from_secs(5)));
                if fault == Fault::ClockBehind {
                    let lib = libfaketime().ok_or_else(|| {
                        io::Error::other("libfaketime is missing (apt-get install faketime)")
                    })?;
                    self.edge_start.env = vec![
                        ("LD_PRELOAD".into(), lib.display().to_string()),
                        ("FAKETIME".into(), "-1d".into()),
                        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
                    ];
                }
                self.start_edge()?;
                Instant::now()
            }
            Fault::Blackhole => {
                say(&format!("every link black-holed for {:?}", o.blackhole));
                self.set_outage(None, Some(OutageKind::Blackhole));
                let r = self.sleep(o.blackhole);
                self.set_outage(None, None);
                r?;
                Instant::now()
            }
            Fault::Flap => {
                say(&format!("wan0 flapping once a second for {:?}", o.flap));
                let t0 = Instant::now();
                let mut r = Ok(());
                while t0.elapsed() < o.flap && r.is_ok() {
                    self.set_outage(Some(0), Some(OutageKind::Blackhole));
                    r = self.sleep(Duration::from_millis(500));
                    self.set_outage(Some(0), None);
                    if r.is_ok() {
                        r = self.sleep(Duration::from_millis(500));
                    }
                }
                r?;
                Instant::now()
            }
            Fault::Dns => {
                let d = dns.as_ref().expect("started above for this fault");
                say(&format!(
                    "edge started, DNS silent for {:?} then failing until {:?}",
                    o.dns_fail / 2,
                    o.dns_fail
                ));
                self.start_edge()?;
                self.sleep(o.dns_fail / 2)?;
                d.set(DnsMode::Fail);
                self.sleep(o.dns_fail - o.dns_fail / 2)?;
                d.set(DnsMode::Answer(vec![topo::CORE_ADDR]));
                Instant::now()
            }
            Fault::DeviceLate => {
                say(&format!(
                    "edge started, its link devices appearing after {:?}",
                    o.device_late
                ));
                self.start_edge()?;
                self.sleep(o.device_late)?;
                self.show_devices()?;
                Instant::now()
            }
        };
        say("fault over: waiting for bonded UDP and TCP");
        let t_end = end;
        let patience = o.patience;
        let tcp = first_bonded_download(&client, server, t_end, patience);
        let udp_at = poll(patience.saturating_sub(t_end.elapsed()), || {
            udp.first_after(t_end)
        });
        if let Some(d) = &dns {
            if let Some(a) = d.answered_at() {
                notes.push(format!(
                    "the edge asked DNS again {} ms after it was back",
                    a.saturating_duration_since(t_end).as_millis()
                ));
            }
        }
        // Flows across the fault: moving at the end, or what stopped them.
        let before: Vec<u64> = flows.iter().map(Flow::moved).collect();
        std::thread::sleep(Duration::from_secs(1));
        let moving: Vec<bool> = flows
            .iter()
            .zip(&before)
            .map(|(f, b)| f.moved() > *b)
            .collect();
        // Before a boot fault's end the flows took the plain WAN: their moving says nothing.
        let old_tcp = if boot {
            None
        } else {
            flows[0].first_progress_after(t_end)
        };
        stop.store(true, Ordering::Relaxed);
        let fates: Vec<(String, Fate)> = flows
            .into_iter()
            .zip(moving)
            .map(|(f, m)| {
                let what = f.what.clone();
                let fate = match f.join() {
                    Ok(()) if m => Fate::WentOn,
                    Ok(()) => Fate::Stalled,
                    Err(e) => e,
                };
                (what, fate)
            })
            .collect();
        let gap = (!boot).then(|| udp.longest_gap(began, udp_at.unwrap_or_else(Instant::now)));
        drop(udp);
        let t = Instant::now();
        let baseline = probe_download(&client, server).ok().map(|()| t.elapsed());
        if let Err(e) = self.check_running() {
            notes.push(e.to_string());
        }
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        Ok(FaultRun {
            fault,
            udp_ms: udp_at.map(|t| ms(t.saturating_duration_since(t_end))),
            tcp_ms: tcp.map(ms),
            old_tcp_ms: old_tcp.map(|t| ms(t.saturating_duration_since(t_end))),
            udp_gap_ms: gap.map(ms),
            tcp_baseline_ms: baseline.map(ms),
            flows: fates,
            notes,
        })
    }

    /// Sleeps, or stops early with an error on Ctrl-C.
    fn sleep(&self, d: Duration) -> io::Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if INTERRUPTED.load(Ordering::Relaxed) {
                return Err(io::Error::other("interrupted"));
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(())
    }

    /// Forces an outage on link `which` (every link: None) of the edge, or ends it.
    fn set_outage(&self, which: Option<usize>, kind: Option<OutageKind>) {
        for (i, l) in self.t.links[0].iter().enumerate() {
            if which.map_or(true, |w| w == i) {
                l.ctl.set_outage(kind);
            }
        }
    }

    /// The modems are not there yet: no device of any link (renamed away, no address).
    fn hide_devices(&self) -> io::Result<()> {
        let ns = &self.t.edges[0].ns;
        for (i, dev) in self.t.edges[0].wan_dev.iter().enumerate() {
            ip(ns, &format!("link set {dev} down"))?;
            ip(ns, &format!("addr flush dev {dev}"))?;
            ip(ns, &format!("link set {dev} name bl-hid{i}"))?;
        }
        Ok(())
    }

    /// The modems come up: the devices with their addresses and routes back.
    fn show_devices(&self) -> io::Result<()> {
        let ns = &self.t.edges[0].ns;
        for (i, dev) in self.t.edges[0].wan_dev.iter().enumerate() {
            let (a, g) = (topo::edge_wan_addr(0, i), topo::core_wan_addr(0, i));
            ip(ns, &format!("link set bl-hid{i} name {dev}"))?;
            ip(ns, &format!("link set {dev} up"))?;
            ip(ns, &format!("addr add {a}/24 dev {dev}"))?;
            ip(
                ns,
                &format!(
                    "route replace default via {g} dev {dev} table {}",
                    topo::wan_table(i)
                ),
            )?;
        }
        let g = topo::core_wan_addr(0, 0);
        ip(
            ns,
            &format!(
                "route replace default via {g} dev {}",
                self.t.edges[0].wan_dev[0]
            ),
        )
    }
}

impl Drop for FaultLab {
    fn drop(&mut self) {
        // The daemons first (they undo their rules), then the server, then the namespaces.
        if let Some(e) = self.edge.as_mut() {
            e.term(Duration::from_secs(2));
        }
        if let Some(c) = self.core.as_mut() {
            c.term(Duration::from_secs(2));
        }
        self.server.take();
    }
}

fn ip(ns: &str, cmd: &str) -> io::Result<()> {
    let mut a = vec!["-n", ns];
    a.extend(cmd.split(' '));
    sys::run("ip", &a).map(|_| ())
}

/// libfaketime, where Debian puts it.
pub(crate) fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end || INTERRUPTED.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The core's address as the server sees bonded traffic (the core masquerades to it).
fn bonded(ip: IpAddr) -> bool {
    ip == IpAddr::V4(topo::CORE_SRV_ADDR)
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A TCP connection from the client's namespace, within `timeout`.
fn connect(ns: &str, to: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = sys::in_ns(ns, || TcpStream::connect_timeout(&to, timeout))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// When, after `t0`, a new bonded 64 KB download first completed: one starts every 200 ms
/// (as impatient applications retry), each on its own, until one completes or `patience` has
/// passed. One at a time would measure the wait of an unlucky attempt instead: a connection
/// opened while the edge still failed open (by the plain WAN) breaks when it steers again.
fn first_bonded_download(
    client: &str,
    server: SocketAddr,
    t0: Instant,
    patience: Duration,
) -> Option<Duration> {
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let mut threads = Vec::new();
    let mut got = None;
    while t0.elapsed() < patience && !INTERRUPTED.load(Ordering::Relaxed) {
        let (c, tx) = (client.to_string(), tx.clone());
        threads.push(std::thread::spawn(move || {
            if probe_download(&c, server).is_ok() {
                let _ = tx.send(Instant::now());
            }
        }));
        if let Ok(t) = rx.recv_timeout(Duration::from_millis(200)) {
            got = Some(t.saturating_duration_since(t0));
            break;
        }
        threads.retain(|t| !t.is_finished());
    }
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    // One that completed while the others were joined may have been earlier than none.
    got.or_else(|| rx.try_iter().min().map(|t| t.saturating_duration_since(t0)))
}

/// One new 64 KB download (connect within 250 ms, all within 3 s) that the server saw come
/// from the core.
fn probe_download(ns: &str, server: SocketAddr) -> io::Result<()> {
    let mut s = connect(ns, server, Duration::from_millis(250))?;
    s.write_all(b"P")?;
    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = vec![0u8; 4 + PROBE_BYTES];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if would_block(&e) && Instant::now() < end => {}
            Err(e) => return Err(e),
        }
    }
    let seen = Ipv4Addr::new(buf[0], buf[1], buf[2], buf[3]);
    if !bonded(IpAddr::V4(seen)) {
        return Err(io::Error::other(format!(
            "not bonded: the server saw {seen}"
        )));
    }
    Ok(())
}

/// The server: TCP `D` (download until closed), `S` (upload sink), `P` (the address seen, 4
/// bytes, then 64 KB); UDP echo prefixed with the address seen and `|`.
struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str) -> io::Result<Server> {
        let any = SocketAddr::from(([0, 0, 0, 0], PORT));
        let l = sys::in_ns(ns, || TcpListener::bind(any))?;
        let u = sys::in_ns(ns, || UdpSocket::bind(any))?;
        l.set_nonblocking(true)?;
        u.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let tcp = std::thread::spawn(move || {
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, from)) => {
                        let st = st.clone();
                        conns.push(std::thread::spawn(move || serve(s, from, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                conns.retain(|c| !c.is_finished());
            }
            for c in conns {
                let _ = c.join();
            }
        });
        let st = stop.clone();
        let udp = std::thread::spawn(move || {
            sys::serve_udp::<1500>(&u, &st, |d, from| {
                let mut r = format!("{from}|").into_bytes();
                r.extend_from_slice(&d[..d.len().min(1000)]);
                let _ = u.send_to(&r, from);
            })
        });
        Ok(Server {
            stop,
            threads: vec![tcp, udp],
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, from: SocketAddr, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let mut cmd = [0u8; 1];
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match s.read(&mut cmd) {
            Ok(1) => break,
            Err(e) if would_block(&e) && Instant::now() < end && !stop.load(Ordering::Relaxed) => {}
            _ => return,
        }
    }
    let mut buf = vec![0x5au8; 65536];
    match cmd[0] {
        b'P' => {
            let ip = match from.ip() {
                IpAddr::V4(a) => a.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            let mut out = ip.to_vec();
            out.resize(4 + PROBE_BYTES, 0x5a);
            let mut off = 0;
            let end = Instant::now() + Duration::from_secs(5);
            while off < out.len() && Instant::now() < end && !stop.load(Ordering::Relaxed) {
                match s.write(&out[off..]) {
                    Ok(n) => off += n,
                    Err(e) if would_block(&e) => {}
                    Err(_) => return,
                }
            }
        }
        b'D' => {
            while !stop.load(Ordering::Relaxed) {
                match s.write(&buf) {
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(_) => return,
                }
            }
        }
        b'S' => {
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if would_block(&e) => {}
                    Err(_) => return,
                }
            }
        }
        _ => {}
    }
}

/// A client TCP flow running until stopped: a download (`D`) or an upload (`S`).
struct Flow {
    what: String,
    progress: Arc<Mutex<(u64, Vec<Instant>)>>,
    handle: JoinHandle<Result<(), Fate>>,
}

impl Flow {
    fn start(ns: &str, server: SocketAddr, cmd: u8, what: &str, stop: Arc<AtomicBool>) -> Flow {
        let progress = Arc::new(Mutex::new((0u64, Vec::new())));
        let p = progress.clone();
        let ns = ns.to_string();
        let handle = std::thread::spawn(move || {
            let fail = |e: io::Error| match e.kind() {
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Fate::Reset,
                _ => Fate::Failed(e.to_string()),
            };
            let mut s =
                connect(&ns, server, Duration::from_secs(2)).map_err(|_| Fate::NotStarted)?;
            s.write_all(&[cmd]).map_err(fail)?;
            let mut buf = vec![0x5au8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let r = if cmd == b'D' {
                    s.read(&mut buf)
                } else {
                    s.write(&buf[..16384])
                };
                match r {
                    Ok(0) if cmd == b'D' => {
                        return Err(Fate::Failed("closed by the server".into()));
                    }
                    Ok(n) => {
                        let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
                        g.0 += n as u64;
                        // One time per 100 ms is enough to say when it moved again.
                        let now = Instant::now();
                        if g.1
                            .last()
                            .map_or(true, |l| now - *l >= Duration::from_millis(100))
                        {
                            g.1.push(now);
                        }
                    }
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Err(fail(e)),
                }
            }
            Ok(())
        });
        Flow {
            what: what.into(),
            progress,
            handle,
        }
    }

    fn moved(&self) -> u64 {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn first_progress_after(&self, t: Instant) -> Option<Instant> {
        let g = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        g.1.iter().copied().find(|x| *x >= t)
    }

    fn join(self) -> Result<(), Fate> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Fate::Failed("flow thread panicked".into())))
    }
}

/// The client's UDP stream: a datagram every 10 ms from one socket; the times of the echoes
/// that came through the tunnel.
struct UdpStream {
    echoes: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpStream {
    fn start(ns: &str, server: SocketAddr) -> io::Result<UdpStream> {
        let s = sys::in_ns(ns, || UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))))?;
        s.connect(server)?;
        s.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let echoes = Arc::new(Mutex::new(Vec::new()));
        let (st, e) = (stop.clone(), echoes.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut n = 0u32;
            let prefix = format!("{}:", topo::CORE_SRV_ADDR);
            while !st.load(Ordering::Relaxed) {
                let _ = s.send(&n.to_be_bytes());
                n = n.wrapping_add(1);
                std::thread::sleep(Duration::from_millis(10));
                while let Ok(k) = s.recv(&mut buf) {
                    if buf[..k].starts_with(prefix.as_bytes()) {
                        e.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Instant::now());
                    }
                }
            }
        });
        Ok(UdpStream {
            echoes,
            stop,
            thread: Some(thread),
        })
    }

    fn first_after(&self, t: Instant) -> Option<Instant> {
        let e = self.echoes.lock().unwrap_or_else(|e| e.into_inner());
        e.iter().copied().find(|x| *x >= t)
    }

    /// The longest time without a bonded echo within [from, to].
    fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let e = self.echoes.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = e.iter().copied().rev().find(|x| *x <= from).unwrap_or(from);
        let mut gap = Duration::ZERO;
        for x in e.iter().copied().filter(|x| *x > from && *x <= to) {
            gap = gap.max(x - last);
            last = x;
        }
        gap.max(to.saturating_duration_since(last))
    }
}

impl Drop for UdpStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// min / median / max of what is there, in ms; "never" counts as missing.
fn spread(v: &[Option<f64>]) -> String {
    let mut x: Vec<f64> = v.iter().flatten().copied().collect();
    if x.is_empty() {
        return "never".into();
    }
    x.sort_by(|a, b| a.total_cmp(b));
    let never = v.len() - x.len();
    let s = format!("{:.0}/{:.0}/{:.0}", x[0], x[x.len() / 2], x[x.len() - 1]);
    if never > 0 {
        format!("{s} ({never} never)")
    } else {
        s
    }
}

/// The bench's table: one row per fault, min/median/max over its runs.
pub fn table(runs: &[FaultRun], o: &FaultOpts) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<42} {:>5} {:>18} {:>18} {:>15} {:>18} {:>18} {:>16}",
        "fault (ms after its end: min/median/max)",
        "runs",
        "UDP back",
        "new TCP back",
        "(TCP baseline)",
        "old TCP moves",
        "UDP gap",
        "on/stalled/reset"
    );
    let mut faults: Vec<Fault> = Vec::new();
    for r in runs {
        if !faults.contains(&r.fault) {
            faults.push(r.fault);
        }
    }
    for f in faults {
        let rs: Vec<&FaultRun> = runs.iter().filter(|r| r.fault == f).collect();
        let col = |g: &dyn Fn(&FaultRun) -> Option<f64>| {
            spread(&rs.iter().map(|r| g(r)).collect::<Vec<_>>())
        };
        // The boot faults have no bonded flow before their end: nothing to say there.
        let boot = matches!(f, Fault::Dns | Fault::DeviceLate);
        let (gap, old) = if boot {
            ("-".into(), "-".into())
        } else {
            (col(&|r| r.udp_gap_ms), col(&|r| r.old_tcp_ms))
        };
        let count = |f: &dyn Fn(&Fate) -> bool| -> usize {
            rs.iter()
                .map(|r| r.flows.iter().filter(|x| f(&x.1)).count())
                .sum()
        };
        let fates = format!(
            "{}/{}/{}",
            count(&|f| *f == Fate::WentOn),
            count(&|f| *f == Fate::Stalled),
            count(&|f| *f == Fate::Reset)
        );
        let _ = writeln!(
            out,
            "{:<42} {:>5} {:>18} {:>18} {:>15} {:>18} {:>18} {:>16}",
            f.describe(o),
            rs.len(),
            col(&|r| r.udp_ms),
            col(&|r| r.tcp_ms),
            format!("({})", col(&|r| r.tcp_baseline_ms)),
            old,
            gap,
            fates
        );
    }
    out.push_str(
        "UDP back, new TCP back: the first bonded echo of the client's UDP stream, the first new \
         bonded 64 KB download\n\
         (one starts every 200 ms) completed, after the fault's end; TCP baseline: such a \
         download once all settled, the part\n\
         of `new TCP back` that is not waiting; old TCP moves: the download that ran across the fault moved \
         again; UDP gap: the longest\n\
         time without a bonded echo from the fault's start; on/stalled/reset: the client's TCP \
         flows across the fault\n\
         (a download and an upload per run): moving at the end, alive but still, or reset.\n",
    );
    out
}

/// Writes `runs` as JSON.
pub(crate) fn write_json(runs: &[FaultRun], path: &Path) -> io::Result<()> {
    let text = serde_json::to_string_pretty(runs).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `braid lab --help` names every fault as `--fault` takes it.
    #[test]
    fn the_lab_help_names_every_fault_as_the_option_takes_it() {
        for (name, _) in FAULTS {
            assert!(
                crate::lab::HELP
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .any(|w| w == name),
                "{name} is not in braid lab --help"
            );
        }
    }

    /// Each name parses to its fault, which the report's JSON (serde's kebab-case) names the
    /// same way.
    #[test]
    fn fault_names_round_trip() {
        for (name, f) in FAULTS {
            assert_eq!(Fault::parse(name).unwrap(), f);
            assert_eq!(serde_json::to_value(f).unwrap(), name);
        }
        assert!(Fault::parse("meteor").unwrap_err().contains("core-restart"));
    }

    #[test]
    fn the_table_gives_min_median_max_and_resets() {
        let o = FaultOpts::bench(PathBuf::from("braid"));
        let run = |udp: Option<f64>, fate: Fate| FaultRun {
            fault: Fault::Blackhole,
            udp_ms: udp,
            tcp_ms: Some(100.0),
            old_tcp_ms: None,
            udp_gap_ms: Some(10_500.0),
            tcp_baseline_ms: Some(150.0),
            flows: vec![
                ("download".into(), fate),
                ("upload".into(), Fate::NotStarted),
            ],
            notes: vec![],
        };
        let t = table(
            &[
                run(Some(300.0), Fate::WentOn),
                run(Some(100.0), Fate::Reset),
                run(None, Fate::WentOn),
            ],
            &o,
        );
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("every link black-holed 10 s"), "{t}");
        assert!(row.contains("100/300/300 (1 never)"), "{t}");
        assert!(row.contains("100/100/100"), "{t}");
        assert!(row.contains("(150/150/150)"), "{t}");
        assert!(row.contains(" never "), "old TCP never moved: {t}");
        assert!(row.ends_with("2/0/1"), "two went on, one reset: {t}");
    }
}
