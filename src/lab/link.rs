//! The link emulator at work: two [`Pipe`]s between two veths of a link namespace, fed and
//! drained with AF_PACKET on one thread per link.
//!
//! Direction `up` carries frames arriving on device `a` (the edge side) out of device `b` (the
//! core side); `down` the reverse. Outages come from the link's schedule or, at run time, from
//! [`LinkCtl::set_outage`] (tests use it to cut a link mid-transfer).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::emu::{next_outage_edge, outage_at, DirSpec, OutageKind, Pipe, PipeStats};
use super::sys::{self, PacketSocket};

/// Everything one emulated link does, both directions (each with its own outage schedule).
#[derive(Clone, Debug, Default)]
pub struct LinkSpec {
    pub name: String,
    pub up: DirSpec,
    pub down: DirSpec,
}

/// Live counters of one direction, readable while the link runs.
#[derive(Default, Debug)]
pub struct DirCounters {
    pub(crate) out_bytes: AtomicU64,
    pub out_pkts: AtomicU64,
    in_pkts: AtomicU64,
    drops: AtomicU64,
    /// Frames larger than the MTU seen (offloads not off): should stay 0.
    pub oversize: AtomicU64,
    /// Frames the kernel refused on the way out.
    send_errors: AtomicU64,
}

/// Shared control and counters of a running link.
#[derive(Default, Debug)]
pub struct LinkCtl {
    stop: AtomicBool,
    /// 0: follow the schedule, 1: black-hole, 2: stall.
    forced: AtomicU8,
    pub up: DirCounters,
    pub(crate) down: DirCounters,
}

impl LinkCtl {
    /// Force an outage now (`None`: back to the schedule).
    pub fn set_outage(&self, kind: Option<OutageKind>) {
        let v = match kind {
            None => 0,
            Some(OutageKind::Blackhole) => 1,
            Some(OutageKind::Stall) => 2,
        };
        self.forced.store(v, Ordering::Relaxed);
    }

    fn forced(&self) -> Option<OutageKind> {
        match self.forced.load(Ordering::Relaxed) {
            1 => Some(OutageKind::Blackhole),
            2 => Some(OutageKind::Stall),
            _ => None,
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type LinkThread = std::thread::JoinHandle<io::Result<io::Result<(PipeStats, PipeStats)>>>;

/// A running link emulator thread.
pub struct LinkHandle {
    pub ctl: Arc<LinkCtl>,
    thread: Option<LinkThread>,
}

impl LinkHandle {
    /// Stop the thread and return the final counters of (up, down).
    pub(crate) fn stop(&mut self) -> io::Result<(PipeStats, PipeStats)> {
        self.ctl.stop();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("link thread panicked"))??,
            None => Err(io::Error::other("link already stopped")),
        }
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// Start emulating `spec` between devices `a` and `b` of namespace `ns`. Times in the spec are
/// relative to `t0`. Turns offloads off on both devices first.
pub(crate) fn spawn(
    ns: &str,
    a: &str,
    b: &str,
    spec: LinkSpec,
    seed: u64,
    t0: Instant,
) -> io::Result<LinkHandle> {
    let ctl = Arc::new(LinkCtl::default());
    let (a, b) = (a.to_string(), b.to_string());
    let name = spec.name.clone();
    let c = ctl.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = sys::spawn_in_ns(ns, &format!("link-{name}"), move || {
        let socks = (|| {
            sys::offloads_off(&a)?;
            sys::offloads_off(&b)?;
            Ok::<_, io::Error>((PacketSocket::open(&a)?, PacketSocket::open(&b)?))
        })();
        let (sa, sb) = match socks {
            Ok(s) => {
                let _ = ready_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        run_loop(&sa, &sb, spec, seed, t0, &c)
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            return Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => io::Error::other("link thread died"),
            })
        }
    }
    Ok(LinkHandle {
        ctl,
        thread: Some(thread),
    })
}

fn now_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

fn run_loop(
    sa: &PacketSocket,
    sb: &PacketSocket,
    spec: LinkSpec,
    seed: u64,
    t0: Instant,
    ctl: &LinkCtl,
) -> io::Result<(PipeStats, PipeStats)> {
    // Sleep precisely: the default 50 us timer slack would smear small delays.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    // A real link does not slow down when the hosts' CPUs are busy: run at real-time priority
    // (as independent testbeds run their emulators), so that compiles or other tests sharing
    // the machine do not add delay the emulated path would not have. The loop blocks in ppoll,
    // so it cannot starve the machine; without the privilege it runs at normal priority.
    let rt = libc::sched_param { sched_priority: 10 };
    // SAFETY: pid 0 is the calling thread; the parameter is valid for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &rt) } != 0 {
        log::debug!(
            "link emulator at normal priority: {}",
            io::Error::last_os_error()
        );
    }
    let mut up = Pipe::new(spec.up.clone(), seed);
    let mut down = Pipe::new(spec.down.clone(), seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut scratch = vec![0u8; 65536];
    let mtu_frame = 1514 + 4;
    while !ctl.stop.load(Ordering::Relaxed) {
        let now = now_ns(t0);
        let outages = |now| {
            let f = ctl.forced();
            [
                f.or_else(|| outage_at(&spec.up.outages, now)),
                f.or_else(|| outage_at(&spec.down.outages, now)),
            ]
        };
        let mut wake = [
            up.next_wakeup(),
            down.next_wakeup(),
            next_outage_edge(&spec.up.outages, now),
            next_outage_edge(&spec.down.outages, now),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        if outages(now).iter().any(Option::is_some) {
            // Re-check forced outages and release stalls promptly.
            wake = wake.min(now + 5_000_000);
        }
        let timeout_ns = wake.saturating_sub(now).min(50_000_000);
        let mut fds = [
            libc::pollfd {
                fd: sa.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sb.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ts = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: fds and ts are valid for the call.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = now_ns(t0);
        let [out_up, out_down] = outages(now);
        for (sock, pipe, cnt, outage) in [
            (sa, &mut up, &ctl.up, out_up),
            (sb, &mut down, &ctl.down, out_down),
        ] {
            for _ in 0..256 {
                let Some(n) = sock.recv(&mut scratch)? else {
                    break;
                };
                if n > mtu_frame {
                    cnt.oversize.fetch_add(1, Ordering::Relaxed);
                }
                let mut frame = pipe.buffer();
                frame.extend_from_slice(&scratch[..n]);
                pipe.enqueue(now, frame, outage);
            }
        }
        for (out, pipe, cnt, outage) in [
            (sb, &mut up, &ctl.up, out_up),
            (sa, &mut down, &ctl.down, out_down),
        ] {
            pipe.advance(now, outage);
            while let Some(f) = pipe.pop_due(now) {
                if out.send(&f).is_err() {
                    cnt.send_errors.fetch_add(1, Ordering::Relaxed);
                }
                pipe.recycle(f);
            }
            let s = pipe.stats();
            cnt.out_bytes.store(s.out_bytes, Ordering::Relaxed);
            cnt.out_pkts.store(s.out_pkts, Ordering::Relaxed);
            cnt.in_pkts.store(s.in_pkts, Ordering::Relaxed);
            cnt.drops
                .store(s.lost + s.queue_drops + s.outage_drops, Ordering::Relaxed);
        }
    }
    Ok((up.stats(), down.stats()))
}
