//! Link sockets as the event loops use them: a sender to call from the loop, and a task that
//! reads the socket into the loop's channel.

use std::os::fd::AsRawFd;

use crate::os::uplink::RecvBatch;

/// A datagram received on a link socket: (link, bytes, where it came from).
pub(crate) type Inbound = (crate::proto::LinkId, Vec<u8>, std::net::SocketAddr);

/// The sending half of one link's socket. The receiving half runs as a task that forwards
/// every datagram into the event loop's channel.
pub(crate) enum LinkTx {
    Udp(std::rc::Rc<tokio::net::UdpSocket>),
    /// Datagrams for a TCP link go through its task (it owns the stream and reconnects), in a
    /// queue bounded in bytes from the memory budget (a [`crate::ingress::Pool`]'s channel).
    Tcp(crate::ingress::Sender<Vec<u8>>),
}

impl LinkTx {
    /// Sends one datagram now, or drops it if the socket cannot take it (the protocol above
    /// recovers lost datagrams; blocking the event loop would hurt every link).
    pub(crate) fn send(&self, d: &[u8]) -> bool {
        match self {
            LinkTx::Udp(s) => match s.try_send(d) {
                Ok(_) => true,
                // tokio learns that a new socket is writable only once its reactor has turned:
                // the first datagrams of a fresh link socket (the handshake) would be dropped and
                // the handshake retried a second later. Ask the kernel instead.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => send_now(s, d),
                Err(_) => false,
            },
            LinkTx::Tcp(tx) => tx.try_send(d.to_vec()).is_ok(),
        }
    }
}

/// A non-blocking send(2) on a connected UDP socket, bypassing tokio's readiness cache.
fn send_now(s: &tokio::net::UdpSocket, d: &[u8]) -> bool {
    // SAFETY: the socket's fd is open for the call; `d` is valid for its length.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            d.as_ptr().cast(),
            d.len(),
            libc::MSG_DONTWAIT,
        )
    };
    n >= 0
}

/// A running link socket: its sender and the task reading it (aborted on drop).
pub(crate) struct LinkIo {
    pub(crate) tx: LinkTx,
    task: tokio::task::JoinHandle<()>,
}

impl LinkIo {
    /// A link's sender and the task that reads (and, for TCP, writes) its socket.
    pub(crate) fn from_parts(tx: LinkTx, task: tokio::task::JoinHandle<()>) -> LinkIo {
        LinkIo { tx, task }
    }
}

impl Drop for LinkIo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a UDP link: `sock` must be non-blocking (as `os::uplink::udp_socket` makes it).
///
/// Its task reads up to [`crate::os::uplink::RECV_BATCH`] datagrams per wake-up with one system
/// call, each into a buffer of its own that goes into the channel as it is (no copy): hand the
/// buffers back with the channel's [`crate::ingress::Recycler`] once handled, so that none is
/// allocated per datagram either.
pub(crate) fn udp_link(
    id: crate::proto::LinkId,
    sock: std::net::UdpSocket,
    inbound: crate::ingress::Sender<Inbound>,
) -> std::io::Result<LinkIo> {
    let sock = std::rc::Rc::new(tokio::net::UdpSocket::from_std(sock)?);
    let task = tokio::task::spawn_local(read_udp(sock.clone(), inbound, move |d, from| {
        (id, d, from)
    }));
    Ok(LinkIo {
        tx: LinkTx::Udp(sock),
        task,
    })
}

/// Reads `sock` into `inbound` until the receiver is gone: up to
/// [`crate::os::uplink::RECV_BATCH`] datagrams per wake-up with one recvmmsg(2), each in a
/// buffer of the channel's spares (hand them back with its [`crate::ingress::Recycler`]), made
/// into the channel's item by `item`. A datagram longer than a buffer is not one of ours:
/// dropped. (The edge's link sockets and the core's port.)
///
/// A batch shorter than [`crate::os::uplink::RECV_BATCH`] emptied the socket: the task waits
/// for the next datagram at once, rather than spend a system call to hear that nothing is left
/// (the socket is registered edge-triggered: what arrives after the read wakes it).
pub(crate) async fn read_udp<T: crate::ingress::Weight>(
    sock: std::rc::Rc<tokio::net::UdpSocket>,
    inbound: crate::ingress::Sender<T>,
    item: impl Fn(Vec<u8>, std::net::SocketAddr) -> T,
) {
    let mut batch = RecvBatch::default();
    loop {
        if sock.readable().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        }
        let mut got = 0;
        let read = sock.try_io(tokio::io::Interest::READABLE, || {
            got = batch.read(sock.as_raw_fd(), || inbound.buffer())?;
            if got < crate::os::uplink::RECV_BATCH {
                // Drained: tokio clears the socket's readiness on WouldBlock.
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        for i in 0..got {
            // Longer than a buffer: not a datagram of ours, dropped.
            let Some((d, from)) = batch.take(i) else {
                continue;
            };
            if inbound.send(item(d, from)).await.is_err() {
                return;
            }
        }
        match read {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // ICMP errors (port unreachable while the core restarts) surface here: keep going.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
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
    LinkIo {
        tx: LinkTx::Tcp(tx),
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams reach the loop's channel whole, with their link and sender, and a buffer the
    /// loop hands back is the one the next datagram arrives in (no allocation, no copy).
    #[test]
    fn a_udp_links_datagrams_arrive_in_buffers_the_loop_hands_back() {
        crate::daemon::block_on_local(async {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_nonblocking(true).unwrap();
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            peer.connect(sock.local_addr().unwrap()).unwrap();
            let (inbound, mut rx) = crate::ingress::channel::<Inbound>(1 << 20);
            let spares = rx.recycler();
            let _io = udp_link(crate::proto::LinkId::from(3), sock, inbound).unwrap();
            let from = peer.local_addr().unwrap();
            // Four bursts of ten, each handled (and its buffers handed back) before the next.
            let mut seen = Vec::new();
            for burst in 0..4u8 {
                for k in burst * 10..burst * 10 + 10 {
                    peer.send(&vec![k; 100 + usize::from(k)]).unwrap();
                }
                for k in burst * 10..burst * 10 + 10 {
                    let (id, d, f) = rx.recv().await.unwrap();
                    assert_eq!((id, f), (crate::proto::LinkId::from(3), from));
                    assert_eq!(
                        d,
                        vec![k; 100 + usize::from(k)],
                        "datagram {k} whole, in order"
                    );
                    assert_eq!(d.capacity(), crate::ingress::SPARE);
                    seen.push(d.as_ptr());
                    spares.give(d);
                }
            }
            // Each burst emptied the socket in one read: the reader waited for the next one
            // without a read that finds nothing (it made one per burst before).
            let empty = crate::os::uplink::EMPTY_READS.with(|c| c.get());
            assert!(empty <= 1, "{empty} reads found nothing in 4 bursts");
            // Buffers went round: once the reader holds a batch of them and the loop has handed
            // some back, no datagram takes a new one.
            let (first, later) = seen.split_at(20);
            assert!(
                later.iter().all(|p| first.contains(p)),
                "bursts 3 and 4 came in new buffers"
            );
            // A datagram longer than a buffer is not ours: dropped, the next one still comes.
            peer.send(&[7u8; crate::ingress::SPARE + 1]).unwrap();
            peer.send(b"after").unwrap();
            let (_, d, _) = rx.recv().await.unwrap();
            assert_eq!(d, b"after");
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
