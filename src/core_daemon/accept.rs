//! The core's accepted TCP link connections: their ids, their limits and their deadlines.
//!
//! The core's TCP port is on the internet, so a connection costs nothing lasting until it has
//! proved itself:
//! - a connection that has not carried a datagram the endpoint accepted (a valid handshake, or
//!   data of a live session) within [`HANDSHAKE_DEADLINE`] is closed and freed; so is one that
//!   the peer closed or that failed, and one silent for [`IDLE`] after that;
//! - at most [`Limits::per_source`] connections from one address, [`Limits::unauthenticated`]
//!   not yet proven and [`Limits::total`] in all: beyond them a new connection is closed at once
//!   and counted as a refusal;
//! - an id is never given to a new connection while a connection with that id lives, so the
//!   replies of one edge never go to another one's socket.
//!
//! [`Conns`] is the plain table (tested without sockets); [`spawn`] runs one connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::daemon::{LinkIo, LinkTx};
use crate::os::uplink::TcpLink;

/// A connection that has not proved itself by then is closed.
pub(crate) const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// A proven connection silent this long is closed (the endpoint forgets its session by then).
pub(crate) const IDLE: Duration = crate::proto::endpoint::SESSION_IDLE;

/// Largest frame an unproven connection may send (a datagram of one MTU).
const UNPROVEN_FRAME: usize = 2048;

/// How many connections the core keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// From one IP address, proven or not (an edge has a few TCP links, perhaps behind one NAT).
    per_source: usize,
    /// Not proven yet, from all addresses.
    unauthenticated: usize,
    /// In all.
    total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_source: 16,
            unauthenticated: 128,
            total: 1024,
        }
    }
}

/// Why a new connection was closed at once, in the words `braid status` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    PerSource,
    Unauthenticated,
    Total,
}

impl Refused {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::PerSource => "TCP connections: too many from one address",
            Refused::Unauthenticated => "TCP connections: too many without a handshake",
            Refused::Total => "TCP connections: too many in all",
        }
    }
}

/// One accepted connection.
pub(crate) struct Conn<T> {
    pub(crate) io: T,
    pub(crate) peer: SocketAddr,
    /// Set by the event loop when the endpoint accepts a datagram from this connection; read
    /// by the connection's task (deadline) and by [`Conns::admit`] (limits).
    pub(crate) proven: Rc<Cell<bool>>,
}

/// The accepted connections by id. See the module docs.
pub(crate) struct Conns<T> {
    map: HashMap<u32, Conn<T>>,
    next: u32,
    limits: Limits,
    /// Connections forgotten since [`Conns::take_freed`] was last called.
    freed: usize,
}

impl<T> Conns<T> {
    pub(crate) fn new(limits: Limits) -> Self {
        Conns {
            map: HashMap::new(),
            next: 1,
            limits,
            freed: 0,
        }
    }

    /// Whether a new connection from `peer` may be kept; forgets the connections that
    /// `alive` says have ended first.
    pub(crate) fn admit(
        &mut self,
        peer: IpAddr,
        alive: impl Fn(&T) -> bool,
    ) -> Result<(), Refused> {
        self.retain_alive(alive);
        if self.map.len() >= self.limits.total {
            return Err(Refused::Total);
        }
        let from_peer = self.map.values().filter(|c| c.peer.ip() == peer).count();
        if from_peer >= self.limits.per_source {
            return Err(Refused::PerSource);
        }
        let unproven = self.map.values().filter(|c| !c.proven.get()).count();
        if unproven >= self.limits.unauthenticated {
            return Err(Refused::Unauthenticated);
        }
        Ok(())
    }

    /// An id no live connection has.
    pub(crate) fn fresh_id(&mut self) -> u32 {
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1).max(1);
            if !self.map.contains_key(&id) {
                return id;
            }
        }
    }

    pub(crate) fn insert(&mut self, id: u32, conn: Conn<T>) {
        let old = self.map.insert(id, conn);
        debug_assert!(old.is_none(), "ids come from fresh_id");
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Conn<T>> {
        self.map.get(&id)
    }

    /// The endpoint accepted a datagram from connection `id`.
    pub(crate) fn prove(&self, id: u32) {
        if let Some(c) = self.map.get(&id) {
            c.proven.set(true);
        }
    }

    /// Forgets the connections that have ended.
    pub(crate) fn retain_alive(&mut self, alive: impl Fn(&T) -> bool) {
        let n = self.map.len();
        self.map.retain(|_, c| alive(&c.io));
        self.freed += n - self.map.len();
    }

    /// How many connections were forgotten since the last call.
    pub(crate) fn take_freed(&mut self) -> usize {
        std::mem::take(&mut self.freed)
    }
}

pub(crate) use crate::os::reset_on_close;

/// Whether a connection's task still runs.
pub(crate) fn alive(io: &LinkIo) -> bool {
    !matches!(&io.tx, LinkTx::Tcp(tx) if tx.is_closed())
}

/// Runs one accepted connection: its datagrams go to `inbound` tagged with `id`. The task (and
/// with it the socket and its buffers) ends when the peer closes or the connection fails, when
/// it has not been proven within `deadline` (the core gives [`HANDSHAKE_DEADLINE`]), or after
/// [`IDLE`] without a datagram. What waits to be written counts against `send`.
pub(crate) fn spawn(
    id: u32,
    stream: TcpStream,
    inbound: crate::ingress::Sender<(u32, Vec<u8>)>,
    send: &crate::ingress::Pool,
    proven: Rc<Cell<bool>>,
    deadline: Duration,
) -> LinkIo {
    let mut link = TcpLink::from_stream(stream);
    let (tx, mut out) = send.channel::<Vec<u8>>();
    let task = tokio::task::spawn_local(async move {
        let accepted = tokio::time::Instant::now();
        let mut heard = accepted;
        // Small until proven: no valid first datagram (an init, or data of a session) is
        // larger; a longer frame ends the connection. Full size once proven.
        let mut buf = vec![0u8; UNPROVEN_FRAME];
        loop {
            if proven.get() && buf.len() < crate::os::uplink::MAX_FRAME {
                buf.resize(crate::os::uplink::MAX_FRAME, 0);
            }
            let until = if proven.get() {
                heard + IDLE
            } else {
                accepted + deadline
            };
            tokio::select! {
                r = link.recv(&mut buf) => match r {
                    Ok(n) => {
                        heard = tokio::time::Instant::now();
                        if inbound.send((id, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    // Closed by the peer, or failed: an accepted connection never comes back.
                    Err(_) => return,
                },
                d = out.recv() => match d {
                    Some(d) => {
                        let _ = link.try_send(&d);
                        let _ = link.flush().await;
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(until) => {
                    // Proven in the meantime, or heard since: the next turn waits again.
                    let now = tokio::time::Instant::now();
                    let due = if proven.get() { heard + IDLE } else { until };
                    if now >= due {
                        log::debug!("TCP connection {id} closed: {}", if proven.get() {
                            "idle"
                        } else {
                            "no handshake in time"
                        });
                        return;
                    }
                }
            }
        }
    });
    LinkIo::from_parts(LinkTx::Tcp(tx), task)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<T> Conns<T> {
        fn len(&self) -> usize {
            self.map.len()
        }

        fn is_empty(&self) -> bool {
            self.map.is_empty()
        }

        fn set_next(&mut self, next: u32) {
            self.next = next;
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, last], port))
    }

    fn conn(peer: SocketAddr, proven: bool) -> Conn<bool> {
        Conn {
            io: true,
            peer,
            proven: Rc::new(Cell::new(proven)),
        }
    }

    const DEADLINE: Duration = Duration::from_millis(400);

    const LIMITS: Limits = Limits {
        per_source: 3,
        unauthenticated: 4,
        total: 6,
    };

    #[test]
    fn limits_per_source_unproven_and_total() {
        let mut c = Conns::new(LIMITS);
        let live = |io: &bool| *io;
        for port in 0..3 {
            assert_eq!(c.admit(addr(1, 0).ip(), live), Ok(()));
            let id = c.fresh_id();
            c.insert(id, conn(addr(1, port), false));
        }
        assert_eq!(c.admit(addr(1, 0).ip(), live), Err(Refused::PerSource));
        // Another source: one more unproven fits, then the unproven limit holds.
        assert_eq!(c.admit(addr(2, 0).ip(), live), Ok(()));
        let id = c.fresh_id();
        c.insert(id, conn(addr(2, 1), false));
        assert_eq!(
            c.admit(addr(3, 0).ip(), live),
            Err(Refused::Unauthenticated)
        );
        // Proven connections leave room for new unproven ones, up to the total.
        c.prove(id);
        c.prove(1);
        assert_eq!(c.admit(addr(3, 0).ip(), live), Ok(()));
        for port in 0..2 {
            let id = c.fresh_id();
            c.insert(id, conn(addr(3, port), true));
        }
        assert_eq!(c.len(), 6);
        assert_eq!(c.admit(addr(4, 0).ip(), live), Err(Refused::Total));
        // Ended connections are forgotten when the next one arrives.
        let ended = |io: &bool| !*io;
        assert_eq!(c.take_freed(), 0);
        assert_eq!(c.admit(addr(4, 0).ip(), ended), Ok(()));
        assert!(c.is_empty());
        assert_eq!((c.take_freed(), c.take_freed()), (6, 0));
    }

    #[test]
    fn ids_wrap_without_reusing_a_live_one() {
        let mut c = Conns::new(Limits::default());
        let live_id = c.fresh_id();
        assert_eq!(live_id, 1);
        c.insert(live_id, conn(addr(1, 1), true));
        c.insert(2, conn(addr(1, 2), true));
        c.set_next(u32::MAX);
        assert_eq!(c.fresh_id(), u32::MAX);
        // 0 is never used; 1 and 2 are alive: the next free id is 3.
        assert_eq!(c.fresh_id(), 3);
        assert_eq!(c.get(live_id).map(|x| x.peer), Some(addr(1, 1)));
    }

    /// A connection the core closes is reset: the peer reads a reset, not an orderly close,
    /// and the core keeps no closing socket.
    #[test]
    fn a_closed_connection_is_reset() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().await.unwrap();
            reset_on_close(&s);
            drop(s);
            use std::io::Read;
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let e = c.read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        });
    }

    /// An unauthenticated connect/close, and a connection that never sends a valid datagram,
    /// each end their task and close the socket (the core's port once leaked a task per
    /// connection, looping every 100 ms forever).
    #[test]
    fn unproven_connections_end_and_close() {
        crate::daemon::block_on_local(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let at = l.local_addr().unwrap();
            let (tx, mut rx) = crate::ingress::channel(1 << 20);
            let pool = crate::ingress::Pool::new(1 << 20, 1 << 18);

            // Connect and close at once: the task ends as soon as it sees the close (long
            // before its deadline).
            let c = std::net::TcpStream::connect(at).unwrap();
            let (s, _) = l.accept().await.unwrap();
            let far = Duration::from_secs(60);
            let io = spawn(1, s, tx.clone(), &pool, Rc::new(Cell::new(false)), far);
            drop(c);
            let t0 = tokio::time::Instant::now();
            while alive(&io) && t0.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!alive(&io), "a closed connection's task must end");

            // Connected, sending a datagram the endpoint never accepts: closed at the deadline.
            let mut c = std::net::TcpStream::connect(at).unwrap();
            let (s, _) = l.accept().await.unwrap();
            let t0 = tokio::time::Instant::now();
            let io = spawn(2, s, tx.clone(), &pool, Rc::new(Cell::new(false)), DEADLINE);
            use std::io::{Read, Write};
            c.write_all(&[0, 3, 1, 2, 3]).unwrap();
            let (id, d) = rx.recv().await.unwrap();
            assert_eq!((id, d), (2, vec![1, 2, 3]));
            while alive(&io) && t0.elapsed() < DEADLINE + Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let took = t0.elapsed();
            assert!(
                !alive(&io),
                "an unproven connection must end at the deadline"
            );
            assert!(took >= DEADLINE - Duration::from_millis(50), "{took:?}");
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 4];
            assert_eq!(c.read(&mut b).unwrap(), 0, "the core closes its end");

            // Proven: kept past the deadline.
            let _c = std::net::TcpStream::connect(at).unwrap();
            let (s, _) = l.accept().await.unwrap();
            let io = spawn(3, s, tx.clone(), &pool, Rc::new(Cell::new(true)), DEADLINE);
            // What waits for its socket is bounded in bytes (the pool's share per connection),
            // not 1,024 datagrams: checked before the task first runs.
            let d = vec![0u8; 60_000];
            let queued = (0..1024).filter(|_| io.tx.send(&d)).count();
            assert_eq!(queued, (1 << 18) / (d.len() + 24), "{queued} queued");
            tokio::time::sleep(DEADLINE * 3).await;
            assert!(alive(&io), "a proven connection stays");
        });
    }
}
