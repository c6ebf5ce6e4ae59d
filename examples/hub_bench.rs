//! Hub capture cost: braid's own AF_PACKET socket (recvmmsg batches, BPF filter, gather-write)
//! against `pnet_datalink` (poll + recvfrom per frame), on a veth into a space, as root.
//!
//! `cargo run --example hub_bench [-- PACKETS]` prints, per implementation and frame size:
//! frames received / sent, wall-clock rate, and CPU time of the receiving thread per frame
//! (CLOCK_THREAD_CPUTIME_ID), plus the sending thread's CPU per frame (which also pays the
//! kernel's veth delivery, the same for both). The sender is paced at `RATE` frames/s so that
//! neither receiver is overrun; the figure that differs is the receiver's CPU per frame.
//! Everything lives in namespaces owned by the process (veth `bo-bh`/`bo-bs`), gone on exit.
//!
//! Measured 2026-11-26 (dev profile, 2 shared cores, load average 10-13 from other builds, so
//! receivers were often descheduled; two runs, 200,000 frames each, paced at 200 kpps):
//!
//! | impl | bytes | received | rx CPU ns/frame | tx CPU ns/frame |
//! |------|------:|---------:|----------------:|----------------:|
//! | own  |  100  | 200,000 / 200,000 | 1,610 / 1,859 | 2,743 / 2,695 |
//! | pnet |  100  |  97,577 / 106,452 | 3,710 / 3,793 | 3,248 / 3,501 |
//! | own  | 1400  | 137,423 /  99,005 | 1,882 / 2,378 | 2,647 / 2,691 |
//! | pnet | 1400  |  82,818 /  97,962 | 4,447 / 4,070 | 3,453 / 3,627 |
//!
//! The own socket costs about half the receiver CPU per frame (one `recvmmsg` per batch instead
//! of `poll` + `recvfrom` per frame) and loses fewer frames (4 MiB receive buffer; pnet keeps the
//! default). pnet also exposes no fd for tokio's `AsyncFd`. Braid uses its own socket.

use braid::os::hub::{Batch, Capture};
use braid::os::netlink::Netlink;
use braid::os::space::Space;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u64 = 200_000;
const PEER: [u8; 6] = [0x02, 0x62, 0x72, 0x64, 0, 2];

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn poll_in(fd: i32, ms: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is a valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) };
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Own,
    Pnet,
}

struct Res {
    got: u64,
    wall: Duration,
    rx_cpu: Duration,
    tx_cpu: Duration,
}

fn run(kind: Kind, host: &Space, space: &Space, n: u64, size: usize) -> Res {
    let ready = Arc::new(AtomicBool::new(false));
    let r2 = ready.clone();
    // Receiver inside the space.
    let rx = space
        .spawn("rx", move || {
            let mut nl = Netlink::open().unwrap();
            let idx = nl.index("bo-bs").unwrap();
            let mut got = 0u64;
            let (t0, c0);
            let mut last = Instant::now();
            match kind {
                Kind::Own => {
                    let cap = Capture::open_raw(idx, Some(PEER), PEER, [0; 6]).unwrap();
                    let mut b = Batch::default();
                    r2.store(true, Ordering::SeqCst);
                    t0 = Instant::now();
                    c0 = thread_cpu();
                    let mut idle = 0;
                    while got < n && idle < 10 {
                        match cap.recv_batch(&mut b) {
                            Ok(k) => {
                                got += k as u64;
                                idle = 0;
                                last = Instant::now();
                            }
                            Err(_) => {
                                poll_in(std::os::fd::AsRawFd::as_raw_fd(&cap), 50);
                                idle += 1;
                            }
                        }
                    }
                }
                Kind::Pnet => {
                    let iface = pnet_datalink::interfaces()
                        .into_iter()
                        .find(|i| i.name == "bo-bs")
                        .unwrap();
                    let cfg = pnet_datalink::Config {
                        read_timeout: Some(Duration::from_millis(50)),
                        read_buffer_size: 65536,
                        promiscuous: false,
                        ..Default::default()
                    };
                    let pnet_datalink::Channel::Ethernet(_tx, mut rx) =
                        pnet_datalink::channel(&iface, cfg).unwrap()
                    else {
                        panic!("not an ethernet channel")
                    };
                    r2.store(true, Ordering::SeqCst);
                    t0 = Instant::now();
                    c0 = thread_cpu();
                    let mut idle = 0;
                    while got < n && idle < 10 {
                        match rx.next() {
                            Ok(f) if f.len() >= 6 && f[..6] == PEER => {
                                got += 1;
                                idle = 0;
                                last = Instant::now();
                            }
                            Ok(_) => {}
                            Err(_) => idle += 1,
                        }
                    }
                }
            }
            // CPU until the end (idle polls included: a daemon pays them too), rate until the
            // last frame.
            (got, last.saturating_duration_since(t0), thread_cpu() - c0)
        })
        .unwrap();
    while !ready.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Sender in the host namespace, paced.
    let tx_cpu = host
        .run(|| {
            let mut nl = Netlink::open().unwrap();
            let idx = nl.index("bo-bh").unwrap();
            let mut frame = vec![0u8; size];
            frame[..6].copy_from_slice(&PEER);
            frame[12] = 0x08;
            frame[14] = 0x45;
            let c0 = thread_cpu();
            let t0 = Instant::now();
            match kind {
                Kind::Own => {
                    let cap = Capture::open_raw(idx, None, [0; 6], [0; 6]).unwrap();
                    for i in 0..n {
                        while cap.send(&frame).is_err() {
                            std::thread::yield_now();
                        }
                        pace(i, t0);
                    }
                }
                Kind::Pnet => {
                    let iface = pnet_datalink::interfaces()
                        .into_iter()
                        .find(|i| i.name == "bo-bh")
                        .unwrap();
                    let pnet_datalink::Channel::Ethernet(mut tx, _rx) =
                        pnet_datalink::channel(&iface, Default::default()).unwrap()
                    else {
                        panic!("not an ethernet channel")
                    };
                    for i in 0..n {
                        tx.send_to(&frame, None).unwrap().unwrap();
                        pace(i, t0);
                    }
                }
            }
            thread_cpu() - c0
        })
        .unwrap();
    let (got, wall, rx_cpu) = rx.join().unwrap().unwrap();
    Res {
        got,
        wall,
        rx_cpu,
        tx_cpu,
    }
}

fn pace(i: u64, t0: Instant) {
    if i % 256 == 255 {
        let due = Duration::from_nanos((i + 1) * 1_000_000_000 / RATE);
        let el = t0.elapsed();
        if due > el {
            std::thread::sleep(due - el);
        }
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("hub_bench needs root (namespaces)");
        std::process::exit(2);
    }
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000)
        .min(2_000_000);
    // Two namespaces owned by this process: "host" and the space.
    let host = Space::new().unwrap();
    let space = Space::new().unwrap();
    host.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth("bo-bh", "bo-bs", Some(space.fd())).unwrap();
        let i = nl.index("bo-bh").unwrap();
        nl.set_up(i, true).unwrap();
    })
    .unwrap();
    space
        .run(|| {
            let mut nl = Netlink::open().unwrap();
            let i = nl.index("bo-bs").unwrap();
            nl.set_noarp(i, true).unwrap();
            nl.set_up(i, true).unwrap();
        })
        .unwrap();
    println!(
        "{:<6} {:>6} {:>9} {:>9} {:>11} {:>14} {:>14}",
        "impl", "bytes", "sent", "received", "rate pkt/s", "rx cpu ns/pkt", "tx cpu ns/pkt"
    );
    for size in [100usize, 1400] {
        for kind in [Kind::Own, Kind::Pnet] {
            let r = run(kind, &host, &space, n, size);
            let name = if kind == Kind::Own { "own" } else { "pnet" };
            let got = r.got.max(1);
            println!(
                "{:<6} {:>6} {:>9} {:>9} {:>11.0} {:>14.0} {:>14.0}",
                name,
                size,
                n,
                r.got,
                r.got as f64 / r.wall.as_secs_f64(),
                r.rx_cpu.as_nanos() as f64 / got as f64,
                r.tx_cpu.as_nanos() as f64 / n as f64,
            );
        }
    }
}
