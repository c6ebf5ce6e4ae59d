//! The pieces of an event loop both roles run the same way: signals, the space with its hub and
//! capture, draining the capture, bursts of datagrams, and the state file.

use std::path::Path;

use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;
use tokio::signal::unix::{signal, SignalKind};

use super::Error;
use crate::os::hub::{Batch, Capture};
use crate::os::space::{Hub, HubConfig, Space};

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM: procd's or systemd's stop (for the core: a restart).
    Term,
    /// SIGINT: Ctrl-C (for the core: a stop for good).
    Interrupt,
    /// SIGHUP: reload the config.
    Hangup,
}

/// SIGTERM, SIGINT and SIGHUP, received as [`Signal`]s.
///
/// tokio's signal streams are watched by a task of their own, which sets a bit per signal and
/// wakes the event loop; the loop's [`Signals::recv`] only reads the bits. Polling the three
/// streams from the loop cost about 900 instructions per turn of it (x86_64, callgrind), about
/// one turn per packet: more than the loop's other sources together.
pub(crate) struct Signals {
    shared: std::sync::Arc<Pending>,
    watcher: tokio::task::JoinHandle<()>,
}

/// What the watching task has seen and not yet handed over, and whom to wake.
#[derive(Default)]
struct Pending {
    /// One bit per [`Signal`] ([`Signal::bit`]).
    bits: std::sync::atomic::AtomicU8,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Signal {
    /// Most urgent first: when several wait, [`Signals::recv`] hands them over in this order.
    const ALL: [Signal; 3] = [Signal::Term, Signal::Interrupt, Signal::Hangup];

    fn bit(self) -> u8 {
        match self {
            Signal::Term => 1,
            Signal::Interrupt => 2,
            Signal::Hangup => 4,
        }
    }
}

impl Pending {
    fn set(&self, s: Signal) {
        self.bits
            .fetch_or(s.bit(), std::sync::atomic::Ordering::AcqRel);
        let w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_ref() {
            w.wake_by_ref();
        }
    }

    /// The most urgent signal waiting, taken.
    fn take(&self) -> Option<Signal> {
        use std::sync::atomic::Ordering;
        let bits = self.bits.load(Ordering::Acquire);
        let s = Signal::ALL.into_iter().find(|s| bits & s.bit() != 0)?;
        self.bits.fetch_and(!s.bit(), Ordering::AcqRel);
        Some(s)
    }

    fn poll(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Signal> {
        use std::task::Poll;
        if let Some(s) = self.take() {
            return Poll::Ready(s);
        }
        {
            let mut w = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match w.as_ref() {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        // A signal set between the first look and the waker's registration.
        match self.take() {
            Some(s) => Poll::Ready(s),
            None => Poll::Pending,
        }
    }
}

impl Signals {
    /// Takes over the three signals and starts the task that watches them (must run inside
    /// the runtime).
    pub(crate) fn new() -> Result<Signals, Error> {
        let take = |k| signal(k).map_err(Error::Signal);
        let (mut term, mut int, mut hup) = (
            take(SignalKind::terminate())?,
            take(SignalKind::interrupt())?,
            take(SignalKind::hangup())?,
        );
        let shared = std::sync::Arc::new(Pending::default());
        let pending = shared.clone();
        let watcher = tokio::spawn(async move {
            loop {
                // A stream that ends (the runtime shutting down) counts as its signal, as
                // a `select!` arm on `recv()` did, and ends the watch.
                let (s, ended) = tokio::select! {
                    r = term.recv() => (Signal::Term, r.is_none()),
                    r = int.recv() => (Signal::Interrupt, r.is_none()),
                    r = hup.recv() => (Signal::Hangup, r.is_none()),
                };
                pending.set(s);
                if ended {
                    return;
                }
            }
        });
        Ok(Signals { shared, watcher })
    }

    /// The next signal. Cancel-safe (a `select!` arm): a signal is taken only when returned.
    /// When several wait, Term comes first, then Interrupt, then Hangup (the others on later
    /// calls); one signal sent several times before it is taken comes once.
    pub(crate) async fn recv(&mut self) -> Signal {
        std::future::poll_fn(|cx| self.shared.poll(cx)).await
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The space (a namespace only this process holds), the hub into it and the capture on the
/// hub's space end, registered with the runtime.
pub(crate) struct HubIo {
    pub(crate) capture: AsyncFd<Capture>,
    pub(crate) hub: Hub,
    // Last: dropped after the hub and capture that live in it.
    pub(crate) space: Space,
}

impl HubIo {
    /// Creates the space and the hub `cfg` describes, and opens the capture with a kernel
    /// receive buffer of `capture_bytes` (the memory budget's share).
    pub(crate) fn open(cfg: HubConfig, capture_bytes: usize) -> Result<HubIo, Error> {
        let space = Space::new()?;
        let hub = Hub::create(&space, cfg)?;
        let capture = Capture::open(&space, &hub)?;
        capture.set_receive_buffer(capture_bytes)?;
        // Registered for reading only: writes to the hub never wait for readiness, and each
        // frame written would otherwise come back as an EPOLLOUT event once its buffer is
        // freed (an epoll_wait(2) that returns at once, or a wake-up for nothing).
        // SAFETY: the Capture owns its fd and keeps it open, unchanged, for as long as it lives.
        let capture = unsafe { AsyncFd::register_with_interest(capture, Interest::READABLE) }
            .map_err(|e| Error::Capture(e.into_parts().1))?;
        Ok(HubIo {
            capture,
            hub,
            space,
        })
    }
}

/// Where the packets the hub's capture receives go.
pub(crate) trait HubSink {
    /// One IP packet, offloads finished (checksums filled in, aggregates cut into segments).
    fn packet(&mut self, p: &mut [u8]);
    /// A frame dropped whole, and why (for the drop counters).
    fn dropped(&mut self, why: &'static str);
}

/// Where [`drain_capture`] reads frames: the hub's [`Capture`] (a stand-in in tests).
pub(crate) trait Frames: std::os::fd::AsRawFd {
    /// Up to [`crate::os::hub::BATCH`] frames into `b`; `WouldBlock` when none is queued.
    fn recv_batch(&self, b: &mut Batch) -> std::io::Result<usize>;
}

impl Frames for Capture {
    fn recv_batch(&self, b: &mut Batch) -> std::io::Result<usize> {
        Capture::recv_batch(self, b)
    }
}

/// Gives `sink` every frame the capture has ready, then waits for readiness again. An error
/// other than "nothing more" is the capture's end.
///
/// A batch shorter than [`crate::os::hub::BATCH`] emptied the capture: readiness is cleared at
/// once, without a system call to hear that nothing is left (the capture is registered
/// edge-triggered: a frame that arrives after the read wakes the loop again).
pub(crate) fn drain_capture<C: Frames>(
    mut guard: AsyncFdReadyGuard<'_, C>,
    batch: &mut Batch,
    seg: &mut [u8],
    sink: &mut impl HubSink,
) -> Result<(), Error> {
    loop {
        match guard.get_inner().recv_batch(batch) {
            Ok(n) => {
                for i in 0..n {
                    if let Err(why) = batch.packets(i, seg, &mut |p| sink.packet(p)) {
                        sink.dropped(why);
                    }
                }
                if n < crate::os::hub::BATCH {
                    guard.clear_ready();
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                guard.clear_ready();
                return Ok(());
            }
            Err(e) => return Err(Error::Capture(e)),
        }
    }
}

/// Writes the packets an event loop delivers to the hub, merging runs of one TCP flow into
/// aggregates the kernel segments on the way out ([`crate::proto::coalesce`]): call
/// [`HubWriter::write`] per packet and [`HubWriter::flush`] at the end of every burst.
#[derive(Default)]
pub(crate) struct HubWriter {
    merge: crate::proto::coalesce::Coalescer,
    /// Packets whose write failed since the last [`HubWriter::flush`].
    failed: u64,
}

impl HubWriter {
    /// Takes one IP packet for the hub (written now, or held in an aggregate until the next
    /// packet or [`HubWriter::flush`]).
    pub(crate) fn write(&mut self, capture: &Capture, packet: &[u8]) {
        if !capture.offloads() {
            if capture.send_ip(packet).is_err() {
                self.failed += 1;
            }
            return;
        }
        let failed = &mut self.failed;
        self.merge.push(packet, &mut |p, m| {
            if capture.send_aggregate(p, m).is_err() {
                *failed += 1;
            }
        });
    }

    /// Writes what is held; returns how many writes failed since the last flush.
    pub(crate) fn flush(&mut self, capture: &Capture) -> u64 {
        let failed = &mut self.failed;
        self.merge.flush(&mut |p, m| {
            if capture.send_aggregate(p, m).is_err() {
                *failed += 1;
            }
        });
        std::mem::take(&mut self.failed)
    }

    /// Packets that went out merged in an aggregate, so far.
    pub(crate) fn merged(&self) -> u64 {
        self.merge.merged
    }
}

/// How many more queued datagrams [`burst`] handles after the first one.
pub(crate) const BURST: usize = 64;

/// Handles `first` and up to [`BURST`] more that are already queued on `rx`, so that a busy
/// link does not cost one turn of the event loop per datagram.
pub(crate) fn burst<T>(first: T, rx: &mut crate::ingress::Receiver<T>, mut f: impl FnMut(T)) {
    f(first);
    for _ in 0..BURST {
        match rx.try_recv() {
            Ok(d) => f(d),
            Err(_) => break,
        }
    }
}

/// Writes `state_file` whole, through a temporary file beside it (a crash leaves the old one).
pub(crate) fn write_state(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, path))
}

/// Runs `f` to its end on what the daemons run on, a current-thread runtime (timers and I/O
/// enabled) with a `LocalSet`: for tests that spawn local tasks or use sockets and timers.
#[cfg(test)]
pub(crate) fn block_on_local<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime starts");
    tokio::task::LocalSet::new().block_on(&rt, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each signal comes back as what it is, one per `recv()` (SIGHUP and SIGINT only: once
    /// taken over, a signal stays with tokio for the rest of the test process).
    #[test]
    fn signals_come_back_as_what_they_are() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = Signals::new().unwrap();
            for (sig, want) in [
                (libc::SIGHUP, Signal::Hangup),
                (libc::SIGINT, Signal::Interrupt),
            ] {
                // SAFETY: kill(2) on our own process, with a signal tokio now handles.
                assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
                let got = tokio::time::timeout(std::time::Duration::from_secs(5), s.recv())
                    .await
                    .expect("the signal within 5 s");
                assert_eq!(got, want, "signal {sig}");
            }
            // Two at once: the more urgent first, then the other, then nothing.
            for sig in [libc::SIGHUP, libc::SIGINT] {
                // SAFETY: as above.
                assert_eq!(unsafe { libc::kill(libc::getpid(), sig) }, 0);
            }
            let five = std::time::Duration::from_secs(5);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let first = tokio::time::timeout(five, s.recv()).await.unwrap();
            assert_eq!(first, Signal::Interrupt);
            let second = tokio::time::timeout(five, s.recv()).await.unwrap();
            assert_eq!(second, Signal::Hangup);
            let quiet = tokio::time::timeout(std::time::Duration::from_millis(200), s.recv());
            assert!(quiet.await.is_err(), "nothing more");
        });
    }

    /// Frames from a script, on a UDP socket's readiness; counts the reads.
    #[derive(Debug)]
    struct Scripted {
        sock: std::net::UdpSocket,
        script: std::cell::RefCell<Vec<std::io::Result<usize>>>,
        reads: std::cell::Cell<usize>,
    }

    impl std::os::fd::AsRawFd for Scripted {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.sock.as_raw_fd()
        }
    }

    impl Frames for Scripted {
        fn recv_batch(&self, _b: &mut Batch) -> std::io::Result<usize> {
            self.reads.set(self.reads.get() + 1);
            let mut s = self.script.borrow_mut();
            if s.is_empty() {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            s.remove(0)
        }
    }

    struct NoSink;

    impl HubSink for NoSink {
        fn packet(&mut self, _p: &mut [u8]) {}
        fn dropped(&mut self, _why: &'static str) {}
    }

    /// A batch shorter than BATCH emptied the capture: no second read to hear that nothing is
    /// left (one system call per wake-up, not two). A full batch is followed by another read.
    #[test]
    fn a_short_batch_ends_the_drain_without_a_read_that_finds_nothing() {
        use crate::os::hub::BATCH;
        block_on_local(async {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_nonblocking(true).unwrap();
            sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
            let (mut batch, mut seg, mut sink) = (Batch::default(), vec![0u8; 65536], NoSink);
            let src = Scripted {
                sock,
                script: std::cell::RefCell::new(vec![Ok(3), Ok(BATCH), Ok(BATCH), Ok(1)]),
                reads: std::cell::Cell::new(0),
            };
            // SAFETY: the stand-in owns its socket and keeps it open for as long as it lives.
            let afd = unsafe { tokio::io::unix::AsyncFd::register(src) }.unwrap();
            let g = afd.readable().await.unwrap();
            drain_capture(g, &mut batch, &mut seg, &mut sink).unwrap();
            assert_eq!(
                afd.get_ref().reads.get(),
                1,
                "3 frames: drained, no read after"
            );
            // Readiness was cleared: the socket's datagram (never read) does not wake it again.
            let again = tokio::time::timeout(std::time::Duration::from_millis(50), afd.readable());
            assert!(
                again.await.is_err(),
                "readiness cleared after a short batch"
            );
            // A new arrival wakes it (edge-triggered); full batches are read on until a short one.
            let s = &afd.get_ref().sock;
            s.send_to(b"y", s.local_addr().unwrap()).unwrap();
            let g = afd.readable().await.unwrap();
            drain_capture(g, &mut batch, &mut seg, &mut sink).unwrap();
            assert_eq!(
                afd.get_ref().reads.get(),
                4,
                "BATCH, BATCH, then 1: three reads"
            );
        });
    }

    #[test]
    fn a_burst_takes_the_first_and_at_most_64_more() {
        let (tx, mut rx) = crate::ingress::channel(1 << 20);
        block_on_local(async {
            for i in 1..=100u32 {
                tx.send((i, vec![0u8; 10])).await.unwrap();
            }
        });
        let mut seen = Vec::new();
        burst((0, vec![]), &mut rx, |(i, _)| seen.push(i));
        assert_eq!(seen, (0..=64).collect::<Vec<_>>());
        let mut rest = Vec::new();
        burst((1000, vec![]), &mut rx, |d| rest.push(d));
        assert_eq!(rest.len(), 1 + 36, "the new first one and the 36 left");
    }

    #[test]
    fn the_state_file_is_replaced_whole_and_its_directory_made() {
        let dir = std::env::temp_dir().join(format!("braid-state-{}", std::process::id()));
        let path = dir.join("sub").join("state");
        write_state(&path, "one\n").unwrap();
        write_state(&path, "two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
