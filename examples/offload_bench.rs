//! What finishing the hosts' offloads costs, two ways, on real TCP through a real hub (as root).
//!
//! `cargo run --release --example offload_bench [-- MB REPEATS]` (also `make bench-offload`)
//! builds, in namespaces owned by the process (gone with it):
//!
//! ```text
//!  [client] bo-c0 == bo-r0 [router] bo-r1 == bo-s0 [server]
//!                            |  bo-hub == bo-sp [space]: braid's Hub, Steering and Capture
//! ```
//! with the kernel's default offloads on every veth (the client's TCP stack hands the router
//! 64 KB TSO aggregates with partial checksums, as a LAN NIC's GRO would). The router steers the
//! client's packets into the hub; a thread in the space captures them, makes each one a packet a
//! wire would carry, parses it, clamps its MSS (the edge's per-packet work before sealing) and
//! writes it back into the hub, from where the router forwards it to the server. One TCP
//! transfer of MB megabytes, client to server, per run; the server's ACKs take the plain route.
//!
//! Modes, interleaved, REPEATS runs each:
//! - `direct`: no hub; the router forwards (the floor: the two TCP ends and the forwarding).
//! - `kernel`: the hub's host end announces no offload (checksum, scatter-gather, TSO, GSO
//!   off): the kernel segments and checksums before the hub; the capture reads plain frames.
//! - `user`: braid's choice: the host end keeps Internet checksums and TCP segmentation, the
//!   capture reads `PACKET_VNET_HDR` and finishes checksums and cuts aggregates in user space
//!   (`braid::proto::offload`).
//!
//! Figures per GB carried (10^9 bytes): CPU of this process (client, server and capture
//! threads, with the softirq work the kernel does in their context), CPU of the whole machine
//! (/proc/stat, all CPUs busy time: includes everything else running), CPU of the capture thread
//! alone; min / median / max over the runs. Then the user-space cost alone: `finish` on a 64 KB
//! aggregate in a loop.
//!
//! Measured 2026-12-06 (release, 2 shared cores with other engineers' builds running: the
//! machine column is mostly theirs), 1000 MB x 5 runs per mode, CPU seconds per GB:
//!
//! | mode   | Gbit/s         | sender         | capture rx     | sender + rx    | capture tx     | process + ksoftirqd |
//! |--------|----------------|----------------|----------------|----------------|----------------|---------------------|
//! | direct | 2.63/4.02/6.38 | 0.33/0.36/0.43 | -              | 0.33/0.36/0.43 | -              | 0.63/0.67/0.83      |
//! | kernel | 0.39/0.45/0.58 | 0.15/0.16/0.18 | 0.79/0.90/0.93 | 0.95/1.04/1.09 | 5.28/5.46/5.93 | 8.44/9.01/9.83      |
//! | user   | 0.42/0.46/0.62 | 0.14/0.15/0.22 | 0.37/0.43/0.50 | 0.53/0.59/0.72 | 5.02/5.40/6.11 | 7.05/8.25/9.45      |
//!
//! `capture rx` is what braid itself pays to get the packets (receive, finish, copy to the
//! queue): user space finishing 40 segments per frame costs half of receiving 40 frames the
//! kernel segmented (the kernel's own segmentation is not in that column, it is in the last,
//! where user is ~8 % cheaper at the median). `capture tx` is this bench's plumbing (writing
//! every segment back, which also pays the forwarding and the server's TCP receive), the same
//! for both. `finish` alone: 0.11 ns/B (0.11 CPU s/GB).

use braid::os::hub::{Batch, Capture, BATCH};
use braid::os::netlink::{Family, Netlink, Rule, RuleAction};
use braid::os::space::{Hub, HubConfig, Space, SteerConfig, Steering};
use braid::os::{in_netns, sysctl_set, Prefix};
use braid::proto::offload::{self, Gso, GsoKind, Offload, Partial};
use braid::proto::packet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVER: [u8; 4] = [10, 231, 2, 2];
const PORT: u16 = 5001;

/// An anonymous namespace with a normal stack, owned by this process.
struct Ns(OwnedFd);

impl Ns {
    fn new() -> Ns {
        let fd = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").expect("open ns"))
        })
        .join()
        .unwrap();
        let ns = Ns(fd);
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let lo = nl.index("lo").unwrap();
            nl.set_up(lo, true).unwrap();
        });
        ns
    }
    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(self.fd(), f).expect("setns")
    }
}

fn addr(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// veth `a` (in `na`, address `aa`) to `b` (in `nb`, address `ba`), both up, default offloads.
fn wire(na: &Ns, a: &str, aa: &str, nb: &Ns, b: &str, ba: &str) {
    na.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth(a, b, Some(nb.fd())).unwrap();
        let i = nl.index(a).unwrap();
        nl.add_address(i, addr(aa)).unwrap();
        nl.set_up(i, true).unwrap();
    });
    nb.run(|| {
        let mut nl = Netlink::open().unwrap();
        let i = nl.index(b).unwrap();
        nl.add_address(i, addr(ba)).unwrap();
        nl.set_up(i, true).unwrap();
        nl.wait_oper_up(i, Duration::from_secs(3)).unwrap();
    });
}

fn default_route(ns: &Ns, via: [u8; 4]) {
    ns.run(|| {
        let mut nl = Netlink::open().unwrap();
        let r = braid::os::netlink::Route::new(addr("0.0.0.0/0")).via(via.into());
        nl.add_route(&r).unwrap();
    });
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Direct,
    Kernel,
    User,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Kernel => "kernel",
            Mode::User => "user",
        }
    }
}

struct Run {
    secs: f64,
    proc_cpu: f64,
    softirqd_cpu: f64,
    machine_cpu: f64,
    softirq: f64,
    sender_cpu: f64,
    receiver_cpu: f64,
    capture: CaptureCpu,
}

fn rusage_cpu() -> f64 {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: r is valid for writes.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

/// Seconds of all CPUs from /proc/stat: (busy: user, nice, system, irq, softirq, steal;
/// softirq alone: ticks that landed in softirq processing, whichever task it ran on behalf of).
fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap();
    let line = s.lines().next().unwrap();
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v.get(7).copied().unwrap_or(0.0);
    (busy / hz, v[6] / hz)
}

/// CPU seconds of the kernel's softirq threads (ksoftirqd/N): softirq work the kernel deferred
/// there instead of doing it in the context of the thread that raised it.
fn ksoftirqd_cpu() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut t = 0.0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let is = std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/"));
        if !is {
            continue;
        }
        if let Ok(st) = std::fs::read_to_string(p.join("stat")) {
            // Fields after the ")" that ends the name: state is field 3, utime 14, stime 15.
            let rest = st.rsplit_once(')').map_or("", |x| x.1);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let v = |i: usize| {
                f.get(i - 3)
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            t += (v(14) + v(15)) / hz;
        }
    }
    t
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU seconds of the capture thread: receiving and finishing (up to the copy into a queue, as
/// the edge's session does), and writing back (which also pays the router's forwarding and the
/// server's TCP receive, done by the kernel in this thread's context).
#[derive(Default)]
struct CaptureCpu {
    rx: f64,
    tx: f64,
    frames: u64,
    packets: u64,
}

/// The capture loop: every packet finished, parsed, MSS-clamped, queued, and written back.
fn capture_loop(cap: Capture, stop: Arc<AtomicBool>) -> CaptureCpu {
    let mut c = CaptureCpu::default();
    let mut b = Batch::default();
    let mut seg = vec![0u8; 65536];
    // The queue: packets back to back, and their ends.
    let mut queue: Vec<u8> = Vec::with_capacity(BATCH * 65536);
    let mut ends: Vec<usize> = Vec::with_capacity(BATCH * 64);
    while !stop.load(Ordering::Relaxed) {
        let t0 = thread_cpu();
        match cap.recv_batch(&mut b) {
            Ok(n) => {
                queue.clear();
                ends.clear();
                for i in 0..n {
                    c.frames += 1;
                    let r = b.packets(i, &mut seg, &mut |p| {
                        if packet::parse(p).is_ok() {
                            packet::clamp_mss(p, 1360);
                            queue.extend_from_slice(p);
                            ends.push(queue.len());
                        }
                    });
                    c.packets += r.unwrap_or(0) as u64;
                }
                let t1 = thread_cpu();
                let mut from = 0;
                for &e in &ends {
                    let _ = cap.send_ip(&queue[from..e]);
                    from = e;
                }
                let t2 = thread_cpu();
                c.rx += t1 - t0;
                c.tx += t2 - t1;
            }
            Err(_) => {
                let mut p = libc::pollfd {
                    fd: cap.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: p is a valid pollfd.
                unsafe { libc::poll(&mut p, 1, 20) };
                c.rx += thread_cpu() - t0;
            }
        }
    }
    c
}

fn run(mode: Mode, client: &Ns, router: &Ns, server: &Ns, bytes: u64) -> Run {
    // The hub, its steering and the capture (not for `direct`).
    let space = Space::new().unwrap();
    let mut hub = None;
    let mut steering = None;
    let stop = Arc::new(AtomicBool::new(false));
    let mut cap_thread = None;
    if mode != Mode::Direct {
        let h = router.run(|| Hub::create(&space, HubConfig::new("bo")).unwrap());
        let cap = router.run(|| match mode {
            Mode::User => Capture::open(&space, &h).unwrap(),
            _ => {
                braid::os::ethtool::set_features(&h.config.host_name(), &|n| {
                    let off = n.starts_with("tx-")
                        && ["checksum", "scatter", "segmentation", "gso"]
                            .iter()
                            .any(|k| n.contains(k));
                    off.then_some(false)
                })
                .unwrap();
                let (i, peer, host) = (h.space_index, h.config.peer_mac, h.host_mac);
                space
                    .run(move || Capture::open_raw(i, Some(peer), peer, host).unwrap())
                    .unwrap()
            }
        });
        let mut sc = SteerConfig::new();
        sc.sources = vec![addr("10.231.1.0/24")];
        steering = Some(router.run(|| {
            // What the capture writes back comes in from the hub: route it normally.
            let mut nl = Netlink::open().unwrap();
            let mut r = Rule::new(Family::V4, 8999, RuleAction::Lookup(254));
            r.iif = Some(h.config.host_name());
            nl.add_rule(&r).unwrap();
            Steering::install(&h, sc).unwrap()
        }));
        hub = Some(h);
        let st = stop.clone();
        cap_thread = Some(std::thread::spawn(move || capture_loop(cap, st)));
    }
    let l = server.run(|| TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], PORT))).unwrap());
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let c0 = thread_cpu();
        let mut buf = vec![0u8; 1 << 18];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(e) => panic!("receive: {e}"),
            }
        }
        (got, thread_cpu() - c0)
    });
    let (p0, k0, m0, t0) = (rusage_cpu(), ksoftirqd_cpu(), machine_cpu(), Instant::now());
    let mut s: TcpStream = client.run(|| {
        TcpStream::connect_timeout(&SocketAddr::from((SERVER, PORT)), Duration::from_secs(5))
            .unwrap()
    });
    let c0 = thread_cpu();
    let buf = vec![0x5au8; 1 << 18];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    drop(s);
    let sender_cpu = thread_cpu() - c0;
    let (got, receiver_cpu) = rx.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let m1 = machine_cpu();
    let (proc_cpu, softirqd_cpu) = (rusage_cpu() - p0, ksoftirqd_cpu() - k0);
    let (machine_cpu, softirq) = (m1.0 - m0.0, m1.1 - m0.1);
    assert_eq!(
        got,
        bytes,
        "{}: the server got {got} of {bytes} bytes",
        mode.name()
    );
    stop.store(true, Ordering::Relaxed);
    let capture = cap_thread.map_or_else(CaptureCpu::default, |t| t.join().unwrap());
    if let Some(h) = &hub {
        router.run(|| {
            let mut nl = Netlink::open().unwrap();
            let mut r = Rule::new(Family::V4, 8999, RuleAction::Lookup(254));
            r.iif = Some(h.config.host_name());
            let _ = nl.del_rule(&r);
        });
    }
    drop(steering);
    drop(hub);
    drop(space);
    Run {
        secs,
        proc_cpu,
        softirqd_cpu,
        machine_cpu,
        softirq,
        sender_cpu,
        receiver_cpu,
        capture,
    }
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The user-space work alone: finishing one 64 KB TCP aggregate (MSS 1448) in a loop.
fn finish_alone() -> (f64, usize) {
    let payload = 65536 - 52 - 40;
    let mut agg = vec![0u8; 52 + payload];
    agg[0] = 0x45;
    agg[2..4].copy_from_slice(&((52 + payload) as u16).to_be_bytes());
    agg[6] = 0x40;
    agg[8] = 64;
    agg[9] = 6;
    agg[12..16].copy_from_slice(&[10, 231, 1, 2]);
    agg[16..20].copy_from_slice(&SERVER);
    agg[32] = 8 << 4;
    agg[33] = 0x10;
    for (i, b) in agg[52..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let off = Offload {
        partial: Some(Partial {
            start: 20,
            offset: 16,
        }),
        gso: Some(Gso {
            kind: GsoKind::Tcp4,
            size: 1448,
        }),
    };
    let mut seg = vec![0u8; 65536];
    let mut sink = 0u64;
    let rounds = 20_000;
    let c0 = thread_cpu();
    for _ in 0..rounds {
        offload::finish(&mut agg, &off, &mut seg, &mut |s| sink += u64::from(s[50])).unwrap();
    }
    let cpu = thread_cpu() - c0;
    std::hint::black_box(sink);
    (cpu / (rounds as f64 * payload as f64) * 1e9, payload)
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("offload_bench needs root (namespaces)");
        std::process::exit(2);
    }
    let mut args = std::env::args().skip(1);
    let mb: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 20_000);
    let repeats: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .clamp(1, 50);
    let bytes = mb * 1_000_000;

    let (client, router, server) = (Ns::new(), Ns::new(), Ns::new());
    wire(
        &client,
        "bo-c0",
        "10.231.1.2/24",
        &router,
        "bo-r0",
        "10.231.1.1/24",
    );
    wire(
        &server,
        "bo-s0",
        "10.231.2.2/24",
        &router,
        "bo-r1",
        "10.231.2.1/24",
    );
    default_route(&client, [10, 231, 1, 1]);
    default_route(&server, [10, 231, 2, 1]);
    router.run(|| sysctl_set("net/ipv4/ip_forward", "1").unwrap());

    let modes = [Mode::Direct, Mode::Kernel, Mode::User];
    let mut runs: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    // One short run of each first: caches, neighbours, TCP metrics.
    for &m in &modes {
        run(m, &client, &router, &server, bytes.min(50_000_000));
    }
    for r in 0..repeats {
        for (i, &m) in modes.iter().enumerate() {
            let x = run(m, &client, &router, &server, bytes);
            eprintln!(
                "run {r} {:<6} {:.2} s, {:.2} Gbit/s, cpu s: process {:.2}, ksoftirqd {:.2}, machine {:.2} \
                 (softirq {:.2}), \
                 sender {:.2}, capture rx {:.2} tx {:.2}, receiver {:.2}; frames {} -> packets {}",
                m.name(),
                x.secs,
                bytes as f64 * 8.0 / x.secs / 1e9,
                x.proc_cpu,
                x.softirqd_cpu,
                x.machine_cpu,
                x.softirq,
                x.sender_cpu,
                x.capture.rx,
                x.capture.tx,
                x.receiver_cpu,
                x.capture.frames,
                x.capture.packets
            );
            runs[i].push(x);
        }
    }
    let gb = bytes as f64 / 1e9;
    println!(
        "{mb} MB client -> server per run, {repeats} runs per mode, interleaved; \
         CPU seconds per GB carried, min/median/max"
    );
    println!(
        "{:<6} {:>15} {:>15} {:>15} {:>15} {:>15} {:>17} {:>15} {:>15} {:>6}",
        "mode",
        "Gbit/s",
        "sender",
        "capture rx",
        "sender+rx",
        "capture tx",
        "process+softirqd",
        "softirq",
        "machine",
        "pkt/fr"
    );
    for (i, &m) in modes.iter().enumerate() {
        let rs = &runs[i];
        let f = |g: &dyn Fn(&Run) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(g).collect();
            let (a, b, c) = stats(&mut v);
            format!("{a:.2}/{b:.2}/{c:.2}")
        };
        let per = |r: &Run| r.capture.packets as f64 / r.capture.frames.max(1) as f64;
        println!(
            "{:<6} {:>15} {:>15} {:>15} {:>15} {:>15} {:>17} {:>15} {:>15} {:>6.1}",
            m.name(),
            f(&|r| bytes as f64 * 8.0 / r.secs / 1e9),
            f(&|r| r.sender_cpu / gb),
            f(&|r| r.capture.rx / gb),
            f(&|r| (r.sender_cpu + r.capture.rx) / gb),
            f(&|r| r.capture.tx / gb),
            f(&|r| (r.proc_cpu + r.softirqd_cpu) / gb),
            f(&|r| r.softirq / gb),
            f(&|r| r.machine_cpu / gb),
            rs.iter().map(per).sum::<f64>() / rs.len() as f64
        );
    }
    let (ns_per_byte, payload) = finish_alone();
    println!(
        "user-space finish alone (64 KB aggregate, {payload} B payload, MSS 1448): \
         {ns_per_byte:.3} ns/B = {ns_per_byte:.2} CPU s/GB"
    );
}
