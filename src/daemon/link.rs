//! Link sockets as the event loops use them: a sender to call from the loop; a UDP socket is
//! read by the loop itself ([`poll_readable`], [`drain_udp`]), a TCP link by a task that feeds
//! the loop's channel.

use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use crate::os::uplink::{gro_split, RecvBatch, DATAGRAM_BUFFER, RECV_BATCH, SEND_BATCH};

/// A datagram received on a TCP link: (link, bytes, where it came from).
pub(crate) type Inbound = (crate::proto::LinkId, Vec<u8>, std::net::SocketAddr);

/// The sending half of one link's socket. A UDP socket is read by the event loop itself; a
/// TCP link's task forwards every datagram into the event loop's channel.
pub(crate) enum LinkTx {
    Udp(UdpLink),
    /// Datagrams for a TCP link go through its task (it owns the stream and reconnects), in a
    /// queue bounded in bytes from the memory budget (a [`crate::ingress::Pool`]'s channel).
    Tcp(crate::ingress::Sender<Vec<u8>>),
}

impl LinkTx {
    /// Sends one datagram now, or drops it if the socket cannot take it.
    pub(crate) fn send(&self, d: &[u8]) -> bool {
        self.send_many(&[(d, None)]) == 1
    }

    /// Sends datagrams now (one sendmmsg(2) for them all on UDP, [`send_udp`]), dropping what
    /// the socket cannot take (the protocol above recovers lost datagrams; blocking the event
    /// loop would hurt every link). Returns how many went out.
    pub(crate) fn send_many(&self, msgs: &[Outgoing<'_>]) -> usize {
        match self {
            LinkTx::Udp(s) => send_udp(s, msgs),
            LinkTx::Tcp(tx) => msgs
                .iter()
                .filter(|(d, _)| tx.try_send(d.to_vec()).is_ok())
                .count(),
        }
    }
}

/// A running link socket: its sender, and for TCP the task reading and writing it (aborted on
/// drop).
pub(crate) struct LinkIo {
    pub(crate) tx: LinkTx,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LinkIo {
    /// A link's sender and the task that reads and writes its socket.
    pub(crate) fn from_parts(tx: LinkTx, task: tokio::task::JoinHandle<()>) -> LinkIo {
        LinkIo {
            tx,
            task: Some(task),
        }
    }

    /// The UDP socket the event loop reads (`None` for a TCP link: its task reads it).
    pub(crate) fn udp(&self) -> Option<&LinkSocket> {
        match &self.tx {
            LinkTx::Udp(s) => Some(&s.sock),
            LinkTx::Tcp(_) => None,
        }
    }
}

impl Drop for LinkIo {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Starts a UDP link: `sock` must be non-blocking (as `os::uplink::udp_socket` makes it). The
/// event loop reads it ([`poll_readable`], [`drain_udp`]): no task, no channel between them.
pub(crate) fn udp_link(sock: std::net::UdpSocket) -> std::io::Result<LinkIo> {
    Ok(LinkIo {
        tx: LinkTx::Udp(UdpLink::new(sock)?),
        task: None,
    })
}

/// Ready when one of `socks` has something to read (or an error to report), registering the
/// loop's waker with every socket that has not. An event loop's `select!` arm, followed by
/// [`drain_udp`] on each socket: a socket with nothing to read costs no system call there.
pub(crate) fn poll_readable<'a>(
    socks: impl Iterator<Item = &'a LinkSocket>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut ready = false;
    for s in socks {
        // Every socket is polled, so that each one's readiness wakes the loop.
        ready |= s.poll_read_ready(cx).is_ready();
    }
    if ready {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// Datagrams [`drain_udp`] reads from one socket per call at most (give or take one read's
/// worth): a busy socket leaves the others, the capture and the timers their turn (what is
/// left is read at the next turn).
pub(crate) const DRAIN_DATAGRAMS: usize = 64;

/// Hands `f` the datagrams waiting on `sock` (with where each came from), in place in
/// `batch`'s buffers: up to [`RECV_BATCH`] messages per recvmmsg(2), each a datagram or a run
/// of them the kernel merged (UDP GRO: cut back here, [`gro_split`]), reads until
/// [`DRAIN_DATAGRAMS`] came. Returns how many datagrams were read; a datagram longer than
/// [`DATAGRAM_BUFFER`] (or than a buffer) is not one of ours: dropped (not counted). An error
/// is the socket's (ICMP port unreachable while the core restarts, say): the caller goes on.
///
/// Without tokio's readiness for `sock`, no system call is made. A batch shorter than
/// [`RECV_BATCH`] emptied the socket: its readiness is cleared at once, without a read to hear
/// that nothing is left (the socket is registered edge-triggered: what arrives after the read
/// makes it ready again).
pub(crate) fn drain_udp(
    sock: &LinkSocket,
    batch: &mut RecvBatch,
    mut f: impl FnMut(&mut [u8], std::net::SocketAddr),
) -> std::io::Result<usize> {
    let mut total = 0;
    while total < DRAIN_DATAGRAMS {
        let mut got = 0;
        let read = sock.try_io(tokio::io::Interest::READABLE, |_| {
            got = batch.read(sock.as_raw_fd())?;
            if got < RECV_BATCH {
                // Drained: tokio clears the socket's readiness on WouldBlock.
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        for i in 0..got {
            if let Some((d, from, seg)) = batch.get(i) {
                for r in gro_split(d.len(), seg) {
                    if r.len() <= DATAGRAM_BUFFER {
                        total += 1;
                        f(&mut d[r], from);
                    }
                }
            }
        }
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
    // Still full batches: readiness stays, the next turn of the loop reads on.
    Ok(total)
}

/// How an event loop's datagrams find their socket, the one thing the edge's and the core's
/// UDP traffic differ in: the edge's links by their id, the core's sockets by their index.
pub(crate) trait Sockets {
    /// What picks a socket.
    type Key: Copy + PartialEq;
    /// The drop counter of datagrams a socket did not take.
    const REFUSED: &'static str;
    /// Sends `msgs` on `key`'s socket now ([`send_udp`]); returns how many went out (none
    /// when `key` has no socket any more).
    fn send(&self, key: Self::Key, msgs: &[Outgoing<'_>]) -> usize;
    /// The UDP sockets the event loop reads, each with its key.
    fn udp(&self) -> impl Iterator<Item = (Self::Key, &LinkSocket)>;
}

/// Ready when one of `socks`' UDP sockets has something to read ([`poll_readable`]).
pub(crate) fn poll_sockets<S: Sockets + ?Sized>(socks: &S, cx: &mut Context<'_>) -> Poll<()> {
    poll_readable(socks.udp().map(|(_, s)| s), cx)
}

/// The event loop's arm for readable UDP sockets: drains each ([`drain_udp`]), handing `f`
/// every datagram with its socket's key and sender. Returns how many datagrams were read. An
/// error is the socket's (ICMP port unreachable while the peer restarts, say): the others are
/// read, that one is read on at a later turn.
pub(crate) fn drain_sockets<S: Sockets + ?Sized>(
    socks: &S,
    batch: &mut RecvBatch,
    mut f: impl FnMut(S::Key, &mut [u8], std::net::SocketAddr),
) -> usize {
    socks
        .udp()
        .map(|(key, sock)| drain_udp(sock, batch, |d, from| f(key, d, from)).unwrap_or(0))
        .sum()
}

/// Sends what `outbox` holds, each socket's datagrams with one system call; what did not go
/// out is counted in `drops` under [`Sockets::REFUSED`].
pub(crate) fn send_out<S: Sockets + ?Sized>(
    outbox: &mut Outbox<S::Key>,
    socks: &S,
    drops: &mut crate::proto::fasthash::FastMap<&'static str, u64>,
) {
    let lost = outbox.flush(|key, msgs| socks.send(key, msgs));
    if lost > 0 {
        *drops.entry(S::REFUSED).or_default() += lost;
    }
}

/// A datagram ready to go: its bytes and, on an unconnected socket, where to.
pub(crate) type Outgoing<'a> = (&'a [u8], Option<std::net::SocketAddr>);

/// The datagrams one turn of the event loop sends, gathered and then sent per socket with
/// sendmmsg(2) ([`send_udp`]): one system call for all that a turn sends on one link (the
/// acknowledgements of a batch of data, a paced run of packets), not one each. Keyed by what
/// picks the socket (a link's id, a socket's index); datagrams of one key keep their order.
pub(crate) struct Outbox<K> {
    /// [`SEND_BATCH`] slots of `size` bytes.
    buf: Vec<u8>,
    size: usize,
    /// Per slot in use: its key, where to, its length.
    held: Vec<(K, Option<std::net::SocketAddr>, usize)>,
}

impl<K: Copy + PartialEq> Outbox<K> {
    /// An outbox for datagrams of at most `size` bytes.
    pub(crate) fn new(size: usize) -> Outbox<K> {
        Outbox {
            buf: vec![0; SEND_BATCH * size],
            size,
            held: Vec::with_capacity(SEND_BATCH),
        }
    }

    /// Where the next datagram is written (then [`Outbox::push`] it).
    pub(crate) fn slot(&mut self) -> &mut [u8] {
        let at = self.held.len() * self.size;
        &mut self.buf[at..at + self.size]
    }

    /// Keeps the `len` bytes just written into the slot, for `key` (to `to`). Returns whether
    /// the outbox is full: [`Outbox::flush`] it before the next.
    pub(crate) fn push(&mut self, key: K, to: Option<std::net::SocketAddr>, len: usize) -> bool {
        self.held.push((key, to, len.min(self.size)));
        self.held.len() == SEND_BATCH
    }

    /// Hands `send` what is held, per key (in the order the keys first came, each key's
    /// datagrams in their order); `send` returns how many of them went out. Empties the outbox
    /// and returns how many did not go out.
    pub(crate) fn flush(&mut self, mut send: impl FnMut(K, &[Outgoing<'_>]) -> usize) -> u64 {
        let mut done = [false; SEND_BATCH];
        let mut run: [Outgoing<'_>; SEND_BATCH] = [(&[], None); SEND_BATCH];
        let mut lost = 0;
        for i in 0..self.held.len() {
            if done[i] {
                continue;
            }
            let key = self.held[i].0;
            let mut n = 0;
            for (j, &(k, to, len)) in self.held.iter().enumerate().skip(i) {
                if !done[j] && k == key {
                    done[j] = true;
                    let at = j * self.size;
                    run[n] = (&self.buf[at..at + len], to);
                    n += 1;
                }
            }
            lost += n - send(key, &run[..n]).min(n);
        }
        self.held.clear();
        lost as u64
    }
}

/// A UDP link socket as the event loop holds it: registered with the runtime for reading only
/// ([`udp_socket`]).
pub(crate) type LinkSocket = tokio::io::unix::AsyncFd<std::net::UdpSocket>;

/// Registers `sock` (non-blocking) with the runtime for its readability only. Sends never wait
/// for tokio's readiness ([`send_udp`] writes at once and drops what a full socket refuses),
/// so asking for writability too (as `tokio::net::UdpSocket` does) would only cost: every
/// datagram sent frees its buffer a moment later, an edge-triggered EPOLLOUT that returns the
/// next epoll_wait(2) at once or, if the loop is already asleep, wakes it for nothing.
pub(crate) fn udp_socket(sock: std::net::UdpSocket) -> std::io::Result<LinkSocket> {
    // SAFETY: the std socket owns its descriptor and keeps it open, unchanged, for as long as
    // the AsyncFd (which owns the socket) lives.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// A UDP link socket, and whether sending with UDP GSO still works on it.
pub(crate) struct UdpLink {
    pub(crate) sock: LinkSocket,
    /// Cleared for good the first time the kernel refuses a GSO send on the socket.
    gso: std::cell::Cell<bool>,
}

impl UdpLink {
    /// `sock` (non-blocking) registered for reading ([`udp_socket`]), sending with GSO until
    /// the kernel refuses it. Must run inside the runtime.
    pub(crate) fn new(sock: std::net::UdpSocket) -> std::io::Result<UdpLink> {
        Ok(UdpLink {
            sock: udp_socket(sock)?,
            gso: std::cell::Cell::new(true),
        })
    }

    /// Whether GSO sends still work on the socket.
    #[cfg(test)]
    pub(crate) fn gso(&self) -> bool {
        self.gso.get()
    }

    /// Sends `msgs` now ([`send_udp`]).
    pub(crate) fn send(&self, msgs: &[Outgoing<'_>]) -> usize {
        send_udp(self, msgs)
    }
}

/// Sends `msgs` on `link` with as few system calls as it takes; returns how many went out.
/// Per destination, runs of datagrams of one size go out as one UDP GSO send each
/// ([`crate::os::uplink::gso_plan`]; each destination's datagrams keep their order), all of a
/// batch's sends with one sendmmsg(2): the kernel's path from socket to device is taken once
/// per run, not once per datagram. When the kernel refuses GSO on the socket (an old kernel, a
/// device without checksum offload), it is logged once and the socket sends datagram by
/// datagram from then on (still one sendmmsg(2) per batch).
///
/// A send the kernel refuses otherwise (an ICMP error reported on the socket, say) is tried
/// once more, then skipped (a GSO send refused twice ends GSO on the socket too); once the
/// socket is full (`WouldBlock`), the rest are dropped, as a send(2) would drop them one by
/// one (the protocol above recovers lost datagrams; blocking the event loop would hurt every
/// link). Bypasses tokio's readiness cache, which a fresh socket's first sends would wait for.
pub(crate) fn send_udp(link: &UdpLink, msgs: &[Outgoing<'_>]) -> usize {
    use crate::os::uplink::{gso_plan, gso_refused, send_gso};
    let fd = link.sock.as_raw_fd();
    let mut sent = 0;
    for chunk in msgs.chunks(SEND_BATCH) {
        if !link.gso.get() {
            match send_plain(fd, chunk) {
                (n, true) => sent += n,
                (n, false) => return sent + n,
            }
            continue;
        }
        let plan = gso_plan(chunk);
        let (mut g, mut retried) = (0, false);
        while g < plan.len() {
            match send_gso(fd, chunk, &plan, g) {
                Ok(0) => return sent,
                Ok(n) => {
                    sent += (g..g + n).map(|k| plan.group(k).len()).sum::<usize>();
                    g += n;
                    retried = false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return sent,
                // Refused as GSO, or refused twice (once could be an error the socket had
                // to report): datagram by datagram from now on.
                Err(e) if plan.group(g).len() > 1 && (gso_refused(&e) || retried) => {
                    link.gso.set(false);
                    log::warn!(
                        "link socket {}: the kernel refuses UDP GSO ({e}); sending datagram by \
                         datagram",
                        link.sock
                            .get_ref()
                            .local_addr()
                            .map_or_else(|_| "?".into(), |a| a.to_string())
                    );
                    let mut rest: [Outgoing<'_>; SEND_BATCH] = [(&[], None); SEND_BATCH];
                    let order = plan.rest(g);
                    for (r, &i) in rest.iter_mut().zip(order) {
                        *r = chunk[usize::from(i)];
                    }
                    match send_plain(fd, &rest[..order.len()]) {
                        (n, true) => sent += n,
                        (n, false) => return sent + n,
                    }
                    break;
                }
                Err(_) if !retried => retried = true,
                Err(_) => {
                    g += 1;
                    retried = false;
                }
            }
        }
    }
    sent
}

/// Sends `msgs` with as few sendmmsg(2) as it takes, one datagram per message: how many went
/// out, and whether the socket can take more (`false` once it is full).
fn send_plain(fd: std::os::fd::RawFd, msgs: &[Outgoing<'_>]) -> (usize, bool) {
    let (mut at, mut sent) = (0, 0);
    while at < msgs.len() {
        match crate::os::uplink::send_many(fd, &msgs[at..]) {
            Ok(0) => return (sent, false),
            Ok(n) => {
                sent += n;
                at += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (sent, false),
            Err(_) => at += 1,
        }
    }
    (sent, true)
}

/// Starts a TCP link over `link` (which connects and reconnects by itself on the edge); what
/// waits to be written counts against `send` (`Bounds::tcp_send_bytes`).
pub(crate) fn tcp_link(
    id: crate::proto::LinkId,
    mut link: crate::os::uplink::TcpLink,
    peer: std::net::SocketAddr,
    inbound: crate::ingress::Sender<Inbound>,
    send: &crate::ingress::Pool,
) -> LinkIo {
    let (tx, mut out) = send.channel::<Vec<u8>>();
    let task = tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            tokio::select! {
                r = link.recv(&mut buf) => match r {
                    Ok(n) => {
                        if inbound.send((id, buf[..n].to_vec(), peer)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) if link.is_connected() => {}
                    // Core side: the edge went away; the edge side reconnects inside recv.
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                },
                d = out.recv() => match d {
                    Some(d) => {
                        let _ = link.try_send(&d);
                        let _ = link.flush().await;
                    }
                    None => return,
                },
            }
        }
    });
    LinkIo::from_parts(LinkTx::Tcp(tx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-blocking UDP socket on a free loopback port.
    fn local_udp() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// A UDP link over `s` (non-blocking).
    fn link_of(s: std::net::UdpSocket) -> UdpLink {
        UdpLink::new(s).unwrap()
    }

    /// The loop reads a UDP link itself: readiness from any of its sockets, then each drained
    /// in place (datagrams whole, in order, with their sender; the batch's own buffers, no
    /// allocation per read), a burst in one read, at most DRAIN_BATCHES reads per turn.
    #[test]
    fn the_loop_drains_ready_udp_sockets_in_place_in_bounded_turns() {
        use crate::os::uplink::{DATAGRAM_BUFFER, EMPTY_READS};
        use std::future::poll_fn;
        crate::daemon::block_on_local(async {
            let (a, b) = (local_udp(), local_udp());
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a_at, b_at) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let links = [udp_link(a).unwrap(), udp_link(b).unwrap()];
            let socks = || links.iter().filter_map(LinkIo::udp);
            let mut batch = RecvBatch::default();
            let from = peer.local_addr().unwrap();
            // Nothing yet: not ready (and no read made to learn it).
            let idle = tokio::time::timeout(
                std::time::Duration::from_millis(50),
                poll_fn(|cx| poll_readable(socks(), cx)),
            );
            assert!(idle.await.is_err(), "ready with nothing to read");
            // A burst of ten on the second socket wakes the loop and is read in one call.
            let mut bufs = Vec::new();
            for burst in 0..3u8 {
                for k in burst * 10..burst * 10 + 10 {
                    peer.send_to(&vec![k; 100 + usize::from(k)], b_at).unwrap();
                }
                poll_fn(|cx| poll_readable(socks(), cx)).await;
                let mut seen = Vec::new();
                for s in socks() {
                    drain_udp(s, &mut batch, |d, f| {
                        assert_eq!(f, from);
                        bufs.push(d.as_ptr());
                        seen.push(d.to_vec());
                    })
                    .unwrap();
                }
                let want: Vec<Vec<u8>> = (burst * 10..burst * 10 + 10)
                    .map(|k| vec![k; 100 + usize::from(k)])
                    .collect();
                assert_eq!(seen, want, "burst {burst} whole, in order");
            }
            assert_eq!(
                EMPTY_READS.with(|c| c.get()),
                0,
                "a short batch ends the drain; a socket without readiness is not read"
            );
            // The same buffers each time: no allocation per read.
            assert!(bufs[10..].iter().all(|p| bufs[..10].contains(p)));
            // More than a turn's worth: DRAIN_DATAGRAMS, then the rest next turn.
            let many = DRAIN_DATAGRAMS + 5;
            for k in 0..many {
                peer.send_to(&(k as u32).to_be_bytes(), a_at).unwrap();
            }
            poll_fn(|cx| poll_readable(socks(), cx)).await;
            let mut got = Vec::new();
            let n = drain_udp(links[0].udp().unwrap(), &mut batch, |d, _| {
                got.push(u32::from_be_bytes(d.try_into().unwrap()))
            })
            .unwrap();
            assert_eq!(n, DRAIN_DATAGRAMS, "one turn's worth");
            // Still ready at once: the rest is read at the next turn.
            poll_fn(|cx| poll_readable(socks(), cx)).await;
            let n = drain_udp(links[0].udp().unwrap(), &mut batch, |d, _| {
                got.push(u32::from_be_bytes(d.try_into().unwrap()))
            })
            .unwrap();
            assert_eq!(n, 5);
            assert_eq!(got, (0..many as u32).collect::<Vec<_>>());
            // A datagram longer than a buffer is not ours: dropped, the next one still comes.
            peer.send_to(&[7u8; DATAGRAM_BUFFER + 1], a_at).unwrap();
            peer.send_to(b"after", a_at).unwrap();
            poll_fn(|cx| poll_readable(socks(), cx)).await;
            let mut got = Vec::new();
            drain_udp(links[0].udp().unwrap(), &mut batch, |d, _| {
                got.push(d.to_vec())
            })
            .unwrap();
            assert_eq!(got, vec![b"after".to_vec()]);
        });
    }

    /// The events epoll(7) watches `fd` for in any epoll instance of this process (the
    /// runtime's), as `/proc/self/fdinfo` of the epoll descriptors lists them.
    fn epoll_events(fd: std::os::fd::RawFd) -> Vec<u32> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let is_epoll = std::fs::read_link(e.path())
                .is_ok_and(|t| t.to_string_lossy().contains("eventpoll"));
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                e.file_name().to_string_lossy()
            ));
            let (true, Ok(info)) = (is_epoll, info) else {
                continue;
            };
            for line in info.lines() {
                let mut w = line.split_whitespace();
                if w.next() == Some("tfd:")
                    && w.next().and_then(|t| t.parse().ok()) == Some(fd)
                    && w.next() == Some("events:")
                {
                    found.push(u32::from_str_radix(w.next().unwrap(), 16).unwrap());
                }
            }
        }
        found
    }

    /// Link sockets are watched for reading only: a datagram sent frees its buffer a moment
    /// later, which for a socket watched for writing too is an EPOLLOUT event, an epoll_wait(2)
    /// that returns at once (or a wake-up) per send for nothing (issue 17 CPU: 1.37 -> 0.95
    /// epoll_wait per packet on the edge).
    #[test]
    fn link_sockets_are_watched_for_reading_only() {
        crate::daemon::block_on_local(async {
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let (a, b) = (
                std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
                std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            );
            a.connect(peer.local_addr().unwrap()).unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            let (a, b) = (udp_link(a).unwrap(), UdpLink::new(b).unwrap());
            let to = Some(peer.local_addr().unwrap());
            assert!(a.tx.send(b"one"));
            assert_eq!(b.send(&[(b"two", to)]), 1);
            for s in [a.udp().unwrap(), &b.sock] {
                // (The runtime's epoll instance may be open under more than one descriptor.)
                let ev = epoll_events(s.as_raw_fd());
                assert!(!ev.is_empty(), "registered");
                for e in ev {
                    assert_ne!(e & libc::EPOLLIN as u32, 0, "read: {e:#x}");
                    assert_eq!(e & libc::EPOLLOUT as u32, 0, "not write: {e:#x}");
                }
            }
            // Still read as before.
            peer.send_to(b"back", b.sock.get_ref().local_addr().unwrap())
                .unwrap();
            std::future::poll_fn(|cx| poll_readable(std::iter::once(&b.sock), cx)).await;
            let mut got = Vec::new();
            drain_udp(&b.sock, &mut RecvBatch::default(), |d, _| {
                got.push(d.to_vec())
            })
            .unwrap();
            assert_eq!(got, vec![b"back".to_vec()]);
        });
    }

    /// A turn's datagrams go out per socket, in order, with one sendmmsg each (a connected
    /// socket and an unconnected one with per-datagram addresses); what a socket refuses is
    /// counted as lost.
    #[test]
    #[cfg_attr(
        target_endian = "big",
        ignore = "qemu-user copies UDP_SEGMENT/UDP_GRO control messages without byte-swapping"
    )]
    fn the_outbox_sends_each_sockets_datagrams_together_in_order() {
        crate::daemon::block_on_local(async {
            let (x, y) = (
                std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
                std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
            );
            let a = local_udp();
            a.connect(x.local_addr().unwrap()).unwrap();
            let a = udp_link(a).unwrap();
            let b = link_of(local_udp());
            let mut out = Outbox::<u8>::new(100);
            // Interleaved: 0 for a (connected), 1 for b (to y), 2 for a socket that is gone.
            let mut full = false;
            for k in 0..SEND_BATCH as u8 {
                let to = match k % 3 {
                    1 => Some(y.local_addr().unwrap()),
                    _ => None,
                };
                out.slot()[..2].copy_from_slice(&[k % 3, k]);
                full = out.push(k % 3, to, 2);
            }
            assert!(full, "full after SEND_BATCH");
            let mut calls = Vec::new();
            let lost = out.flush(|key, msgs| {
                calls.push((key, msgs.len()));
                match key {
                    0 => a.tx.send_many(msgs),
                    1 => send_udp(&b, msgs),
                    _ => 0,
                }
            });
            let per = |r: u8| (0..SEND_BATCH as u8).filter(|k| k % 3 == r).count();
            assert_eq!(calls, vec![(0, per(0)), (1, per(1)), (2, per(2))]);
            assert_eq!(lost, per(2) as u64, "the gone socket's datagrams are lost");
            for (sock, r) in [(&x, 0u8), (&y, 1)] {
                let mut buf = [0u8; 100];
                let got: Vec<u8> = (0..per(r))
                    .map(|_| {
                        let n = sock.recv(&mut buf).unwrap();
                        assert_eq!((n, buf[0]), (2, r));
                        buf[1]
                    })
                    .collect();
                let want: Vec<u8> = (0..SEND_BATCH as u8).filter(|k| k % 3 == r).collect();
                assert_eq!(got, want, "socket {r}'s datagrams in order");
            }
            // Emptied: the next turn starts from the first slot.
            assert_eq!(out.flush(|_, _| unreachable!("nothing held")), 0);
        });
    }

    /// Sockets keyed as the core keys them (by index; a key past the end has no socket).
    struct Indexed(Vec<UdpLink>);

    impl Sockets for Indexed {
        type Key = u8;
        const REFUSED: &'static str = "test refused";
        fn send(&self, key: u8, msgs: &[Outgoing<'_>]) -> usize {
            self.0.get(usize::from(key)).map_or(0, |s| s.send(msgs))
        }
        fn udp(&self) -> impl Iterator<Item = (u8, &LinkSocket)> {
            self.0.iter().enumerate().map(|(i, s)| (i as u8, &s.sock))
        }
    }

    /// The loops' shared arms: every readable socket drained with its key handed along; a
    /// turn's datagrams sent per key, what no socket took counted under the loop's name.
    #[test]
    #[cfg_attr(
        target_endian = "big",
        ignore = "qemu-user copies UDP_SEGMENT/UDP_GRO control messages without byte-swapping"
    )]
    fn the_loops_shared_arms_key_what_they_read_and_count_what_they_drop() {
        use std::future::poll_fn;
        crate::daemon::block_on_local(async {
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let socks: Vec<_> = (0..3).map(|_| link_of(local_udp())).collect();
            let at: Vec<_> = socks
                .iter()
                .map(|s| s.sock.get_ref().local_addr().unwrap())
                .collect();
            let socks = Indexed(socks);
            peer.send_to(b"to 2", at[2]).unwrap();
            peer.send_to(b"to 0", at[0]).unwrap();
            poll_fn(|cx| poll_sockets(&socks, cx)).await;
            let mut batch = RecvBatch::default();
            let mut got = Vec::new();
            let n = drain_sockets(&socks, &mut batch, |k, d, from| {
                assert_eq!(from, peer.local_addr().unwrap());
                got.push((k, d.to_vec()));
            });
            assert_eq!(n, 2);
            assert_eq!(got, vec![(0, b"to 0".to_vec()), (2, b"to 2".to_vec())]);
            // Two for socket 1 (to the peer), one for a socket that is not there.
            let to = Some(peer.local_addr().unwrap());
            let mut out = Outbox::<u8>::new(100);
            for (k, d) in [(1u8, b"a"), (9, b"x"), (1, b"b")] {
                out.slot()[..1].copy_from_slice(d);
                out.push(k, to, 1);
            }
            let mut drops = crate::proto::fasthash::FastMap::default();
            send_out(&mut out, &socks, &mut drops);
            assert_eq!(drops.get("test refused"), Some(&1));
            let mut buf = [0u8; 10];
            for want in [b"a", b"b"] {
                let (n, from) = peer.recv_from(&mut buf).unwrap();
                assert_eq!((&buf[..n], from), (&want[..], at[1]));
            }
            // Nothing lost: nothing counted.
            send_out(&mut out, &socks, &mut drops);
            assert_eq!(drops.get("test refused"), Some(&1));
        });
    }

    /// A run of same-size datagrams goes out as one GSO send and, on a socket with GRO on,
    /// comes in as one merged read that the drain cuts back into the datagrams, in order; a
    /// socket whose kernel refuses GSO falls back for good and still delivers every datagram,
    /// in order.
    #[test]
    #[cfg_attr(
        target_endian = "big",
        ignore = "qemu-user copies UDP_SEGMENT/UDP_GRO control messages without byte-swapping"
    )]
    fn runs_go_out_as_one_gso_send_and_merged_reads_are_cut_back() {
        use std::future::poll_fn;
        crate::daemon::block_on_local(async {
            let rx = local_udp();
            assert!(crate::os::uplink::enable_gro(&rx), "kernel without UDP GRO");
            let rx = udp_socket(rx).unwrap();
            let to = rx.get_ref().local_addr().unwrap();
            // Ten of 1,200 bytes, then a shorter one: one run; then one of 1,200 again.
            let sizes: Vec<usize> = [vec![1200; 10], vec![300, 1200]].concat();
            let data: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(k, &n)| vec![k as u8; n])
                .collect();
            let msgs: Vec<Outgoing<'_>> = data.iter().map(|d| (&d[..], Some(to))).collect();
            for refuse in [false, true] {
                let tx = local_udp();
                if refuse {
                    // UDP without checksums: the kernel refuses GSO sends (EINVAL).
                    crate::os::setsockopt(&tx, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
                }
                let tx = link_of(tx);
                assert_eq!(tx.send(&msgs), msgs.len(), "all sent");
                assert_eq!(tx.gso(), !refuse, "GSO given up only when refused");
                // Sent again: the refusing socket no longer tries.
                assert_eq!(tx.send(&msgs[..3]), 3);
                poll_fn(|cx| poll_readable(std::iter::once(&rx), cx)).await;
                let mut batch = RecvBatch::default();
                let (mut merged, mut got) = (Vec::new(), Vec::new());
                while let Ok(n) = batch.read(rx.as_raw_fd()) {
                    for i in 0..n {
                        let (d, _, seg) = batch.get(i).unwrap();
                        merged.push((d.len(), seg));
                        for r in gro_split(d.len(), seg) {
                            got.push(d[r].to_vec());
                        }
                    }
                }
                if refuse {
                    assert_eq!(merged.len(), 15, "one by one: {merged:?}");
                } else {
                    // The run of 11 in one read (10 x 1,200 + 300), the last one alone, then
                    // the run of 3 again.
                    assert_eq!(merged, vec![(12_300, 1200), (1200, 0), (3600, 1200)]);
                }
                let want: Vec<Vec<u8>> = data.iter().chain(&data[..3]).cloned().collect();
                assert_eq!(
                    got, want,
                    "every datagram, whole and in order (refused: {refuse})"
                );
            }
        });
    }

    /// A TCP link's send queue holds bytes from the budget, not 1,024 datagrams of up to
    /// 64 KiB: sends past it are refused (dropped, as a full UDP socket drops them).
    #[test]
    fn a_tcp_links_send_queue_is_bounded_in_bytes_from_the_budget() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            let b = crate::config::budget::Budget::default_for(false).edge(1400);
            let pool = crate::ingress::Pool::new(b.tcp_send_bytes, b.tcp_send_per_link);
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let peer = l.local_addr().unwrap();
            let (inbound, _rx) = crate::ingress::channel(1 << 20);
            let mut links = Vec::new();
            for id in 0..4u8 {
                let s = std::net::TcpStream::connect(peer).unwrap();
                s.set_nonblocking(true).unwrap();
                let s = tokio::net::TcpStream::from_std(s).unwrap();
                let link = crate::os::uplink::TcpLink::from_stream(s);
                let io = tcp_link(
                    crate::proto::LinkId::from(id),
                    link,
                    peer,
                    inbound.clone(),
                    &pool,
                );
                links.push(io);
            }
            // The link tasks have not run yet (nothing awaited): every datagram waits.
            let d = vec![0u8; 60_000];
            let mut taken = Vec::new();
            for io in &links {
                taken.push((0..1024).filter(|_| io.tx.send(&d)).count() * d.len());
            }
            let sum: usize = taken.iter().sum();
            assert!(sum <= b.tcp_send_bytes, "{taken:?} > {}", b.tcp_send_bytes);
            assert!(
                sum + d.len() > b.tcp_send_bytes.min(4 * b.tcp_send_per_link),
                "{taken:?}"
            );
            for t in &taken {
                assert!(*t <= b.tcp_send_per_link, "{taken:?}");
            }
            assert!(
                taken[0] + d.len() > b.tcp_send_per_link,
                "the first gets its share"
            );
        });
    }
}
