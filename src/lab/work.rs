//! Built-in workloads (no iperf): bulk TCP (1 or 8 flows, either direction), request/response
//! latency under bulk download, and a constant-rate UDP stream (a video call). Every run samples
//! goodput every 100 ms, per link and in total, and the longest delivery gap.
//!
//! Servers and clients are threads of this process whose sockets were made inside the server's
//! and the client's namespaces, so both ends share one clock. The server ([`Server`]) can
//! outlive the runs it serves, as a long-lived `iperf3 -s` does: a sequence of workloads
//! (`braid lab run --sequence`) runs against one server, one step after the other.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sys;
use super::topo::{Topology, SERVER_ADDR};

const TCP_PORT: u16 = 5201;
const UDP_PORT: u16 = 5202;
/// Goodput sampling period.
pub(crate) const SAMPLE_MS: u64 = 100;
/// Start-up time left out of mean goodput (slow start).
pub(crate) const OMIT_MS: u64 = 2000;
/// Pause of a request/response connection between an answer and its next request.
pub(crate) const RR_PAUSE_MS: u64 = 20;
/// Most request/response connections one run opens.
const RR_MAX_CONNS: u32 = 16;
/// A UDP packet later than the lowest one-way delay plus this missed its playout (jitter buffer).
pub(crate) const LATE_MS: f64 = 100.0;

/// Which way bulk data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    Bulk {
        flows: u32,
        dir: Dir,
    },
    /// Request/response latency: `conns` connections at once, each sending a 64-byte request,
    /// waiting for its 64-byte answer, then pausing [`RR_PAUSE_MS`]; while 8 flows download
    /// (`load`) or alone (an idle line).
    Rr {
        conns: u32,
        load: bool,
    },
    /// Constant-rate UDP both ways, `kbps` each way.
    Udp {
        kbps: u32,
    },
}

impl Workload {
    /// The standard set, in bench order.
    pub(crate) fn all() -> Vec<Workload> {
        [
            "bulk1-down",
            "bulk8-down",
            "bulk1-up",
            "bulk8-up",
            "rr",
            "udp",
        ]
        .iter()
        .map(|n| Workload::parse(n).expect("names above parse"))
        .collect()
    }

    /// `bulkN-down`, `bulkN-up` (N flows, 1 to 64), `rr`, `rrN`, `rr-idle`, `rrN-idle` (N
    /// request/response connections, 1 to 16) or `udp`.
    pub(crate) fn parse(s: &str) -> Result<Workload, String> {
        let bad = || {
            format!(
                "unknown workload '{s}' (bulkN-down or bulkN-up with N flows from 1 to 64, \
                 e.g. bulk4-down; rr, rrN, rr-idle or rrN-idle with N request/response \
                 connections from 1 to {RR_MAX_CONNS}, e.g. rr4-idle; udp)"
            )
        };
        // A count without a leading zero or sign, within 1..=max.
        let count = |n: &str, max: u32| -> Option<u32> {
            let v: u32 = n.parse().ok()?;
            let plain = !n.starts_with('0') && !n.starts_with('+');
            (plain && (1..=max).contains(&v)).then_some(v)
        };
        Ok(match s {
            "udp" => Workload::Udp { kbps: 2000 },
            _ if s.starts_with("rr") => {
                let rest = &s[2..];
                let (n, load) = match rest.strip_suffix("-idle") {
                    Some(n) => (n, false),
                    None => (rest, true),
                };
                let conns = if n.is_empty() {
                    1
                } else {
                    count(n, RR_MAX_CONNS).ok_or_else(bad)?
                };
                Workload::Rr { conns, load }
            }
            _ => {
                let rest = s.strip_prefix("bulk").ok_or_else(bad)?;
                let (n, dir) = rest.split_once('-').ok_or_else(bad)?;
                let dir = match dir {
                    "down" => Dir::Down,
                    "up" => Dir::Up,
                    _ => return Err(bad()),
                };
                let flows = count(n, 64).ok_or_else(bad)?;
                Workload::Bulk { flows, dir }
            }
        })
    }

    pub(crate) fn name(&self) -> String {
        match self {
            Workload::Bulk { flows, dir } => format!(
                "bulk{flows}-{}",
                if *dir == Dir::Up { "up" } else { "down" }
            ),
            Workload::Rr { conns, load } => format!(
                "rr{}{}",
                if *conns == 1 {
                    String::new()
                } else {
                    conns.to_string()
                },
                if *load { "" } else { "-idle" }
            ),
            Workload::Udp { .. } => "udp".into(),
        }
    }

    /// Direction whose link counters the chart shows.
    pub(crate) fn dir(&self) -> Dir {
        match self {
            Workload::Bulk { dir, .. } => *dir,
            _ => Dir::Down,
        }
    }
}

/// Bytes received, and the longest pause between two receptions.
struct Meter {
    t0: Instant,
    bytes: AtomicU64,
    last_ns: AtomicU64,
    max_gap_ns: AtomicU64,
}

impl Meter {
    fn new(t0: Instant) -> Meter {
        Meter {
            t0,
            bytes: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            max_gap_ns: AtomicU64::new(0),
        }
    }

    fn record(&self, n: usize) {
        let now = self.t0.elapsed().as_nanos() as u64;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let prev = self.last_ns.swap(now, Ordering::Relaxed);
        if prev > 0 {
            self.max_gap_ns
                .fetch_max(now.saturating_sub(prev), Ordering::Relaxed);
        }
    }
}

/// One goodput sample.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Sample {
    /// Seconds since the link schedules started (so an outage at 10 s shows at 10 s).
    pub(crate) t_s: f64,
    pub(crate) total_mbps: f64,
    /// IP-level rate each link delivered in the workload's direction.
    pub(crate) links_mbps: Vec<f64>,
}

/// Request/response latency.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct RrStats {
    /// Requests answered (the samples behind the percentiles: a p99 of 100 samples is the
    /// second-worst one).
    pub(crate) count: usize,
    pub(crate) p50_ms: f64,
    #[serde(default)]
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    max_ms: f64,
    /// The request's way (client to server) and the answer's: p50 and p99 of each, ms.
    #[serde(default)]
    pub(crate) up_p50_p99_ms: (f64, f64),
    #[serde(default)]
    pub(crate) down_p50_p99_ms: (f64, f64),
    /// Every request's time to its answer, ms (0.01 ms steps), in the order they were sent, so
    /// that runs can be pooled and a distribution's shape seen.
    #[serde(default)]
    pub(crate) samples_ms: Vec<f64>,
    /// Of each of those, the request's way alone (the rest is the answer's), ms.
    #[serde(default)]
    pub(crate) up_ms: Vec<f64>,
}

impl RrStats {
    /// Statistics of request/response times in µs, (whole exchange, request's way), in the
    /// order the requests were sent.
    pub(crate) fn of(us: &[(u64, u64)]) -> RrStats {
        let sorted = |f: &dyn Fn(&(u64, u64)) -> u64| {
            let mut v: Vec<u64> = us.iter().map(f).collect();
            v.sort_unstable();
            v
        };
        let v = sorted(&|s| s.0);
        let up = sorted(&|s| s.1.min(s.0));
        let down = sorted(&|s| s.0 - s.1.min(s.0));
        let ms = |x: u64| x as f64 / 1e3;
        let p50_p99 = |v: &[u64]| (ms(percentile(v, 0.5)), ms(percentile(v, 0.99)));
        let round = |x: u64| (x / 10) as f64 / 100.0;
        RrStats {
            count: v.len(),
            p50_ms: ms(percentile(&v, 0.5)),
            p90_ms: ms(percentile(&v, 0.9)),
            p99_ms: ms(percentile(&v, 0.99)),
            max_ms: ms(v.last().copied().unwrap_or(0)),
            up_p50_p99_ms: p50_p99(&up),
            down_p50_p99_ms: p50_p99(&down),
            samples_ms: us.iter().map(|s| round(s.0)).collect(),
            up_ms: us.iter().map(|s| round(s.1.min(s.0))).collect(),
        }
    }
}

/// One direction of the UDP stream.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct UdpStats {
    sent: u64,
    received: u64,
    pub(crate) loss_pct: f64,
    /// RFC 3550 interarrival jitter.
    pub(crate) jitter_ms: f64,
    owd_min_ms: f64,
    owd_p99_ms: f64,
    /// Packets later than the lowest one-way delay + LATE_MS (missed a video call's playout).
    pub(crate) late: u64,
    reordered: u64,
}

/// What one workload run measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct WorkResult {
    pub(crate) workload: String,
    /// When the run started, seconds since the link schedules started (0 for a run that
    /// restarted them; later for a sequence's later steps).
    #[serde(default)]
    pub(crate) start_s: f64,
    pub(crate) duration_s: f64,
    /// Mean application goodput after the first OMIT_MS.
    pub(crate) goodput_mbps: f64,
    pub(crate) bytes: u64,
    /// Longest time no byte arrived, once data flowed.
    pub(crate) max_gap_ms: f64,
    pub(crate) flows: u32,
    /// Flows that failed (refused, reset, closed early).
    pub(crate) flows_failed: u32,
    pub(crate) errors: Vec<String>,
    pub(crate) rr: Option<RrStats>,
    pub(crate) udp_up: Option<UdpStats>,
    pub(crate) udp_down: Option<UdpStats>,
    /// Mean IP-level rate each link delivered in the workload's direction over the same
    /// window as `goodput_mbps` (after the first OMIT_MS), Mbit/s; header and resends
    /// included, so it is the link's use, not its goodput.
    #[serde(default)]
    pub(crate) links_mbps: Vec<f64>,
    pub(crate) samples: Vec<Sample>,
}

#[derive(Default)]
struct UdpRx {
    received: u64,
    max_seq: Option<u32>,
    reordered: u64,
    owd_ns: Vec<u64>,
    jitter: f64,
    last_transit: Option<i64>,
}

impl UdpRx {
    fn on_packet(&mut self, seq: u32, sent_ns: u64, now_ns: u64) {
        self.received += 1;
        match self.max_seq {
            Some(m) if seq < m => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        let transit = now_ns as i64 - sent_ns as i64;
        if let Some(l) = self.last_transit {
            let d = (transit - l).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.owd_ns.push(transit.max(0) as u64);
    }

    fn stats(&self, sent: u64) -> UdpStats {
        let mut owd = self.owd_ns.clone();
        owd.sort_unstable();
        let min = owd.first().copied().unwrap_or(0) as f64 / 1e6;
        let late = owd
            .iter()
            .filter(|&&o| o as f64 / 1e6 > min + LATE_MS)
            .count() as u64;
        UdpStats {
            sent,
            received: self.received,
            loss_pct: if sent > 0 {
                100.0 * sent.saturating_sub(self.received) as f64 / sent as f64
            } else {
                0.0
            },
            jitter_ms: self.jitter / 1e6,
            owd_min_ms: min,
            owd_p99_ms: percentile(&owd, 0.99) as f64 / 1e6,
            late,
            reordered: self.reordered,
        }
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Shared state of one run.
struct Run {
    t0: Instant,
    stop: AtomicBool,
    /// Senders of the UDP stream and request/response connections stop first, so that packets
    /// and answers still in flight are not counted lost or failed.
    stop_sending: AtomicBool,
    meter: Meter,
    errors: Mutex<Vec<String>>,
    failed: AtomicU64,
    /// Request/response samples: when the request was sent (since `t0`), how long its answer
    /// took, and how long the request took to reach the server.
    rr: Mutex<Vec<(Duration, Duration, Duration)>>,
    udp_up: Mutex<UdpRx>,
    udp_down: Mutex<UdpRx>,
    udp_sent: AtomicU64,
    udp_echoed: AtomicU64,
}

impl Run {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().expect("errors lock");
        if e.len() < 20 {
            e.push(what);
        }
    }
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

/// The run a [`Server`] hands new connections and datagrams to (none between runs).
type Current = Arc<Mutex<Option<Arc<Run>>>>;

fn current(c: &Current) -> Option<Arc<Run>> {
    c.lock().expect("current run lock").clone()
}

/// The server end of every workload, bound once in the server's namespace: the TCP port of
/// bulk and request/response flows and the UDP echo port. Like a long-lived `iperf3 -s`, it
/// serves one run after another ([`run_on`]); each connection belongs to the run that was
/// current when it was accepted, and ends with it. [`Server::stop`] (or drop) ends it.
pub(crate) struct Server {
    current: Current,
    quit: Arc<AtomicBool>,
    /// Connection threads not yet joined (those of the current run, and finished ones).
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Bind both ports in the topology's server namespace and start serving.
    pub(crate) fn start(topo: &Topology) -> io::Result<Server> {
        let any = SocketAddr::from(([0, 0, 0, 0], TCP_PORT));
        let listener = sys::in_ns(&topo.server, || TcpListener::bind(any))?;
        listener.set_nonblocking(true)?;
        let uany = SocketAddr::from(([0, 0, 0, 0], UDP_PORT));
        let usock = sys::in_ns(&topo.server, || UdpSocket::bind(uany))?;
        usock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut s = Server {
            current: Arc::new(Mutex::new(None)),
            quit: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        };
        let (cur, quit, conns) = (s.current.clone(), s.quit.clone(), s.conns.clone());
        s.threads.push(std::thread::spawn(move || {
            tcp_server(listener, &cur, &quit, &conns)
        }));
        let (cur, quit) = (s.current.clone(), s.quit.clone());
        s.threads
            .push(std::thread::spawn(move || udp_server(usock, &cur, &quit)));
        Ok(s)
    }

    /// Make `run` the one new connections and datagrams belong to (None: refuse them).
    fn serve(&self, run: Option<Arc<Run>>) {
        *self.current.lock().expect("current run lock") = run;
    }

    /// Join the connection threads (call after the run they belong to was stopped).
    fn join_conns(&self) {
        let v = std::mem::take(&mut *self.conns.lock().expect("conns lock"));
        for t in v {
            let _ = t.join();
        }
    }

    /// Stop serving and join every thread.
    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(r) = current(&self.current) {
            r.stop.store(true, Ordering::Relaxed);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.join_conns();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

fn tcp_server(
    l: TcpListener,
    cur: &Current,
    quit: &AtomicBool,
    conns: &Mutex<Vec<JoinHandle<()>>>,
) {
    while !quit.load(Ordering::Relaxed) {
        match l.accept() {
            // A connection between runs has no run to count it: it is closed at once.
            Ok((s, _)) => {
                if let Some(r) = current(cur) {
                    let t = std::thread::spawn(move || serve_conn(s, &r));
                    let mut v = conns.lock().expect("conns lock");
                    v.retain(|t| !t.is_finished());
                    v.push(t);
                }
            }
            Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                if let Some(r) = current(cur) {
                    r.fail(format!("accept: {e}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn serve_conn(mut s: TcpStream, run: &Run) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_nodelay(true);
    let mut cmd = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.read(&mut cmd) {
            Ok(1) => break,
            Ok(_) => return,
            Err(e) if would_block(&e) && Instant::now() < deadline && !run.stopped() => continue,
            Err(_) => return,
        }
    }
    let mut buf = vec![0u8; 65536];
    match cmd[0] {
        b'U' => sink(&mut s, &mut buf, run),
        b'D' => source(&mut s, &buf, run),
        b'R' => {
            let mut req = [0u8; 64];
            while !run.stopped() {
                match read_exact_until(&mut s, &mut req, run) {
                    Ok(true) => {}
                    _ => return,
                }
                // When the request arrived (the client's clock: one process), for the one-way
                // split of its time.
                req[8..16].copy_from_slice(&run.now_ns().to_be_bytes());
                if s.write_all(&req).is_err() {
                    return;
                }
            }
        }
        _ => {}
    }
}

fn sink(s: &mut TcpStream, buf: &mut [u8], run: &Run) {
    while !run.stopped() {
        match s.read(buf) {
            Ok(0) => {
                if !run.stopped() {
                    run.fail("flow closed early".into());
                }
                return;
            }
            Ok(n) => run.meter.record(n),
            Err(e) if would_block(&e) => {}
            Err(e) => {
                if !run.stopped() {
                    run.fail(format!("receive: {e}"));
                }
                return;
            }
        }
    }
}

fn source(s: &mut TcpStream, buf: &[u8], run: &Run) {
    while !run.stopped() {
        match s.write(buf) {
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => {
                if !run.stopped() {
                    run.fail(format!("send: {e}"));
                }
                return;
            }
        }
    }
}

/// Read exactly `buf`, riding out timeouts; `Ok(false)` when stopped or closed.
fn read_exact_until(s: &mut TcpStream, buf: &mut [u8], run: &Run) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        if run.stopped() {
            return Ok(false);
        }
        match s.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if would_block(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn connect(client_ns: &str, cmd: u8) -> io::Result<TcpStream> {
    let addr = SocketAddr::V4(SocketAddrV4::new(SERVER_ADDR, TCP_PORT));
    let mut s = sys::in_ns(client_ns, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    s.set_nodelay(true)?;
    s.write_all(&[cmd])?;
    Ok(s)
}

fn udp_server(sock: UdpSocket, cur: &Current, quit: &AtomicBool) {
    sys::serve_udp::<2048>(&sock, quit, |d, from| {
        let Some(run) = current(cur) else { return };
        if d.len() < 12 {
            return;
        }
        let now = run.now_ns();
        let seq = u32::from_be_bytes(d[0..4].try_into().expect("length checked"));
        let sent = u64::from_be_bytes(d[4..12].try_into().expect("length checked"));
        run.udp_up
            .lock()
            .expect("udp lock")
            .on_packet(seq, sent, now);
        d[4..12].copy_from_slice(&run.now_ns().to_be_bytes());
        if sock.send_to(d, from).is_ok() {
            run.udp_echoed.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Live progress handed to the caller every sample.
pub(crate) struct Progress<'a> {
    pub(crate) elapsed_s: f64,
    pub(crate) total_s: f64,
    pub(crate) sample: &'a Sample,
}

/// Run `w` for `duration` from client 0 of edge 0 to a server of its own. `interrupted` ends
/// it early.
pub(crate) fn run_workload(
    topo: &Topology,
    w: Workload,
    duration: Duration,
    interrupted: &AtomicBool,
    progress: impl FnMut(Progress),
) -> io::Result<WorkResult> {
    let server = Server::start(topo)?;
    let r = run_on(&server, topo, w, duration, interrupted, progress);
    server.stop();
    r
}

/// Run `w` for `duration` from client 0 of edge 0 to `server`, which serves this run only
/// while it lasts (and goes on serving the next). `interrupted` ends it early.
pub(crate) fn run_on(
    server: &Server,
    topo: &Topology,
    w: Workload,
    duration: Duration,
    interrupted: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> io::Result<WorkResult> {
    let client = topo.edges[0].clients[0].clone();
    let t0 = Instant::now();
    let run = Arc::new(Run {
        t0,
        stop: AtomicBool::new(false),
        stop_sending: AtomicBool::new(false),
        meter: Meter::new(t0),
        errors: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
        rr: Mutex::new(Vec::new()),
        udp_up: Mutex::new(UdpRx::default()),
        udp_down: Mutex::new(UdpRx::default()),
        udp_sent: AtomicU64::new(0),
        udp_echoed: AtomicU64::new(0),
    });
    server.serve(Some(run.clone()));

    // One connection first, so that neighbour resolution along the path is not measured.
    if let Ok(mut s) = connect(&client, b'R') {
        let mut b = [0u8; 64];
        let _ = s.write_all(&b);
        let _ = read_exact_until(&mut s, &mut b, &run);
    }

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut flows = 0;
    let result = (|| -> io::Result<()> {
        let bulk = match w {
            Workload::Bulk { flows, dir } => Some((flows, dir)),
            Workload::Rr { load: true, .. } => Some((8, Dir::Down)),
            Workload::Rr { load: false, .. } => None,
            Workload::Udp { .. } => None,
        };
        if let Some((n, dir)) = bulk {
            for _ in 0..n {
                flows += 1;
                let r = run.clone();
                match dir {
                    Dir::Down => {
                        let mut s = connect(&client, b'D')?;
                        threads.push(std::thread::spawn(move || {
                            let mut buf = vec![0u8; 65536];
                            sink(&mut s, &mut buf, &r);
                        }));
                    }
                    Dir::Up => {
                        let mut s = connect(&client, b'U')?;
                        threads.push(std::thread::spawn(move || {
                            let buf = vec![0x5au8; 65536];
                            source(&mut s, &buf, &r);
                        }));
                    }
                }
            }
        }
        if let Workload::Rr { conns, .. } = w {
            for k in 0..conns {
                flows += 1;
                let mut s = connect(&client, b'R')?;
                let r = run.clone();
                threads.push(std::thread::spawn(move || {
                    // Connections start spread over one pause, not in step.
                    let pause = Duration::from_millis(RR_PAUSE_MS);
                    std::thread::sleep(pause * k / conns);
                    let mut buf = [0u8; 64];
                    while !r.stopped() && !r.stop_sending.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let sent = r.now_ns();
                        if s.write_all(&buf).is_err() {
                            r.fail("rr send".into());
                            return;
                        }
                        match read_exact_until(&mut s, &mut buf, &r) {
                            Ok(true) => {
                                let took = t.elapsed();
                                let at = u64::from_be_bytes(
                                    buf[8..16].try_into().expect("64-byte buffer"),
                                );
                                let up = Duration::from_nanos(at.saturating_sub(sent));
                                r.rr.lock().expect("rr lock").push((
                                    t.duration_since(r.t0),
                                    took,
                                    up.min(took),
                                ));
                            }
                            Ok(false) => return,
                            Err(e) => {
                                r.fail(format!("rr: {e}"));
                                return;
                            }
                        }
                        std::thread::sleep(pause);
                    }
                }));
            }
        }
        if let Workload::Udp { kbps } = w {
            flows += 1;
            let dst = SocketAddr::V4(SocketAddrV4::new(SERVER_ADDR, UDP_PORT));
            let sock = sys::in_ns(&client, || {
                let s = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))?;
                s.connect(dst)?;
                Ok(s)
            })?;
            sock.set_read_timeout(Some(Duration::from_millis(100)))?;
            let rx = sock.try_clone()?;
            let r = run.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !r.stopped() {
                    if let Ok(n) = rx.recv(&mut buf) {
                        if n >= 12 {
                            let seq =
                                u32::from_be_bytes(buf[0..4].try_into().expect("length checked"));
                            let sent =
                                u64::from_be_bytes(buf[4..12].try_into().expect("length checked"));
                            r.meter.record(n);
                            r.udp_down
                                .lock()
                                .expect("udp lock")
                                .on_packet(seq, sent, r.now_ns());
                        }
                    }
                }
            }));
            let r = run.clone();
            threads.push(std::thread::spawn(move || {
                let size = 1000usize;
                let gap_ns = size as u64 * 8 * 1_000_000 / kbps.max(1) as u64;
                let mut buf = vec![0u8; size];
                let mut seq = 0u32;
                let start = Instant::now();
                while !r.stopped() && !r.stop_sending.load(Ordering::Relaxed) {
                    buf[0..4].copy_from_slice(&seq.to_be_bytes());
                    buf[4..12].copy_from_slice(&r.now_ns().to_be_bytes());
                    let _ = sock.send(&buf);
                    r.udp_sent.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                    let next = start + Duration::from_nanos(seq as u64 * gap_ns);
                    if let Some(d) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(d);
                    }
                }
            }));
        }
        Ok(())
    })();
    if let Err(e) = &result {
        run.fail(format!("start: {e}"));
    }

    // Sample until the end (or an interrupt).
    let links = &topo.links[0];
    let dir = w.dir();
    let link_bytes = |i: usize| {
        let c = &links[i].ctl;
        match dir {
            Dir::Up => c.up.out_bytes.load(Ordering::Relaxed),
            Dir::Down => c.down.out_bytes.load(Ordering::Relaxed),
        }
    };
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut prev_total = run.meter.bytes.load(Ordering::Relaxed);
    let mut prev_links: Vec<u64> = (0..links.len()).map(link_bytes).collect();
    let prev_links_at_start = prev_links.clone();
    let mut prev_t = start;
    let mut omit_bytes = None;
    let mut omit_links: Vec<u64> = Vec::new();
    let mut k = 1u64;
    while result.is_ok() && !interrupted.load(Ordering::Relaxed) {
        let next = start + Duration::from_millis(k * SAMPLE_MS);
        if next > start + duration {
            break;
        }
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        k += 1;
        let now = Instant::now();
        let dt = now.duration_since(prev_t).as_secs_f64().max(1e-6);
        prev_t = now;
        let total = run.meter.bytes.load(Ordering::Relaxed);
        let lb: Vec<u64> = (0..links.len()).map(link_bytes).collect();
        // Rounded: the JSON keeps every sample, and 10 kbit/s is below what a sample resolves.
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        let s = Sample {
            t_s: (now.duration_since(topo.t0).as_secs_f64() * 1000.0).round() / 1000.0,
            total_mbps: r2((total - prev_total) as f64 * 8.0 / dt / 1e6),
            links_mbps: lb
                .iter()
                .zip(&prev_links)
                .map(|(a, b)| r2((a - b) as f64 * 8.0 / dt / 1e6))
                .collect(),
        };
        prev_total = total;
        if omit_bytes.is_none() && now.duration_since(start) >= Duration::from_millis(OMIT_MS) {
            omit_bytes = Some((total, now));
            omit_links = lb.clone();
        }
        prev_links = lb;
        progress(Progress {
            elapsed_s: now.duration_since(start).as_secs_f64(),
            total_s: duration.as_secs_f64(),
            sample: &s,
        });
        samples.push(s);
    }
    let end = Instant::now();
    let end_ns = run.now_ns();
    let bytes = run.meter.bytes.load(Ordering::Relaxed);
    let end_links: Vec<u64> = (0..links.len()).map(link_bytes).collect();
    if matches!(w, Workload::Udp { .. } | Workload::Rr { .. }) {
        // Let the echoes of the last packets, the answers to the last requests, come home (a
        // second covers any sane queue) before the server closes their connections.
        run.stop_sending.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1000));
    }
    server.serve(None);
    run.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    server.join_conns();
    result?;

    // Goodput and each link's rate over the same window: after OMIT_MS when the run got that
    // far, else the whole run.
    let (b0, l0, t) = match omit_bytes {
        Some((b0, t)) if end > t => (b0, omit_links, t),
        _ => (0, prev_links_at_start, start),
    };
    let secs = end.duration_since(t).as_secs_f64().max(1e-6);
    let goodput = (bytes - b0) as f64 * 8.0 / secs / 1e6;
    let links_mbps = end_links
        .iter()
        .zip(&l0)
        .map(|(a, b)| a.saturating_sub(*b) as f64 * 8.0 / secs / 1e6)
        .collect();
    let last = run.meter.last_ns.load(Ordering::Relaxed);
    let mut gap = run.meter.max_gap_ns.load(Ordering::Relaxed);
    if last > 0 {
        gap = gap.max(end_ns.saturating_sub(last));
    }
    let rr = if matches!(w, Workload::Rr { .. }) {
        let mut v = run.rr.lock().expect("rr lock").clone();
        v.sort_unstable();
        let us: Vec<(u64, u64)> = v
            .iter()
            .map(|(_, d, up)| (d.as_micros() as u64, up.as_micros() as u64))
            .collect();
        Some(RrStats::of(&us))
    } else {
        None
    };
    let (udp_up, udp_down) = if matches!(w, Workload::Udp { .. }) {
        (
            Some(
                run.udp_up
                    .lock()
                    .expect("udp lock")
                    .stats(run.udp_sent.load(Ordering::Relaxed)),
            ),
            Some(
                run.udp_down
                    .lock()
                    .expect("udp lock")
                    .stats(run.udp_echoed.load(Ordering::Relaxed)),
            ),
        )
    } else {
        (None, None)
    };
    let errors = run.errors.lock().expect("errors lock").clone();
    Ok(WorkResult {
        workload: w.name(),
        start_s: start.saturating_duration_since(topo.t0).as_secs_f64(),
        duration_s: end.duration_since(start).as_secs_f64(),
        goodput_mbps: goodput,
        bytes,
        max_gap_ms: gap as f64 / 1e6,
        flows,
        flows_failed: run.failed.load(Ordering::Relaxed) as u32,
        errors,
        rr,
        udp_up,
        udp_down,
        links_mbps,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::all() {
            assert_eq!(Workload::parse(&w.name()).unwrap(), w);
        }
        assert!(Workload::parse("nope").is_err());
        assert_eq!(
            Workload::parse("bulk4-down").unwrap(),
            Workload::Bulk {
                flows: 4,
                dir: Dir::Down
            }
        );
        for (name, conns, load) in [
            ("rr", 1, true),
            ("rr-idle", 1, false),
            ("rr4", 4, true),
            ("rr16-idle", 16, false),
        ] {
            let w = Workload::parse(name).unwrap();
            assert_eq!(w, Workload::Rr { conns, load }, "{name}");
            assert_eq!(w.name(), name);
        }
        assert_eq!(Workload::parse("rr1").unwrap().name(), "rr");
        for bad in [
            "rr0",
            "rr17",
            "rr04-idle",
            "rr-busy",
            "rr4idle",
            "rr+2",
            "bulk0-down",
            "bulk65-up",
            "bulk04-up",
            "bulk4-sideways",
            "bulk-down",
            "bulk4",
        ] {
            assert!(Workload::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rr_stats_give_percentiles_of_every_sample_and_keep_them_in_order() {
        // 200 samples: 1..=200 ms, sent in reverse order; the request's way a quarter of each.
        let us: Vec<(u64, u64)> = (1..=200)
            .rev()
            .map(|ms| (ms * 1000 + 4, ms * 250))
            .collect();
        let s = RrStats::of(&us);
        assert_eq!(s.count, 200);
        // Nearest rank on 0..199: p50 at index 100 (101 ms), p90 at 179, p99 at 197.
        assert!((s.p50_ms - 101.004).abs() < 1e-9, "{}", s.p50_ms);
        assert!((s.p90_ms - 180.004).abs() < 1e-9, "{}", s.p90_ms);
        assert!((s.p99_ms - 198.004).abs() < 1e-9, "{}", s.p99_ms);
        assert!((s.max_ms - 200.004).abs() < 1e-9);
        assert_eq!(s.samples_ms.len(), 200);
        assert_eq!(s.samples_ms[0], 200.0);
        assert_eq!(s.samples_ms[199], 1.0);
        assert_eq!((s.up_ms[0], s.up_ms[199]), (50.0, 0.25));
        assert_eq!(s.up_p50_p99_ms, (25.25, 49.5));
        assert_eq!(s.down_p50_p99_ms, (75.754, 148.504));
        let none = RrStats::of(&[]);
        assert_eq!((none.count, none.p99_ms), (0, 0.0));
    }

    #[test]
    fn udp_stats_count_loss_reorder_and_late() {
        let mut rx = UdpRx::default();
        // 10 sent, 8 received, one out of order, one 150 ms late.
        for (seq, sent, at) in [
            (0, 0, 20),
            (1, 10, 30),
            (3, 30, 50),
            (2, 20, 51),
            (4, 40, 60),
            (5, 50, 70),
            (6, 60, 230),
            (9, 90, 110),
        ] {
            rx.on_packet(seq, sent * 1_000_000, at * 1_000_000);
        }
        let s = rx.stats(10);
        assert_eq!(s.received, 8);
        assert!((s.loss_pct - 20.0).abs() < 1e-9);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.late, 1);
        assert!((s.owd_min_ms - 20.0).abs() < 1e-9);
    }
}
