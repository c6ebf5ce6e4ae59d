//! A channel bounded in bytes: datagrams read from TCP links, waiting for the event loop (the
//! loop reads UDP link sockets itself).
//!
//! A TCP link's task copies each datagram it reads into the channel; the event loop
//! takes them out. When the loop falls behind (a burst, a slow moment, a flood on the core's
//! public port), what waits must stay within the memory budget (`config::budget`,
//! `Bounds::ingress_bytes`). A channel bounded by a count of datagrams cannot promise that:
//! 4,096 datagrams of up to 64 KiB are 256 MiB. This one counts what each item pins
//! ([`Weight`]): a sender whose item does not fit waits (as with a bounded `tokio` channel),
//! so the reader stops reading and the kernel's socket buffer, bounded too, takes the excess.
//! One item always fits into an empty channel, so nothing larger than the bound is stuck.
//!
//! The TCP links' send queues are such channels too, filled with [`Sender::try_send`] (the
//! event loop never waits) and sharing a [`Pool`]: what waits in all of them together stays
//! within `Bounds::tcp_send_bytes`, and in one within `Bounds::tcp_send_per_link`, so that a
//! stalled connection costs bytes from the budget and never 1,024 frames of up to 64 KiB.
//!
//! Single-threaded: the daemons run on tokio's current-thread runtime (`spawn_local`).
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::sync::Notify;

/// What an item pins in memory, in bytes.
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl<A> Weight for (A, Vec<u8>) {
    fn weight(&self) -> usize {
        core::mem::size_of::<Self>() + self.1.capacity()
    }
}

impl<A, B> Weight for (A, Vec<u8>, B) {
    fn weight(&self) -> usize {
        core::mem::size_of::<Self>() + self.1.capacity()
    }
}

impl Weight for Vec<u8> {
    fn weight(&self) -> usize {
        core::mem::size_of::<Self>() + self.capacity()
    }
}

/// Bytes shared by several channels (the TCP links' send queues): see the module docs.
#[derive(Clone)]
pub(crate) struct Pool(Rc<PoolShared>);

struct PoolShared {
    used: Cell<usize>,
    cap: usize,
    per_channel: usize,
}

impl Pool {
    /// At most `cap` bytes in all the pool's channels, `per_channel` in each.
    pub(crate) fn new(cap: usize, per_channel: usize) -> Pool {
        Pool(Rc::new(PoolShared {
            used: Cell::new(0),
            cap,
            per_channel: per_channel.min(cap),
        }))
    }

    /// A channel of the pool, filled with [`Sender::try_send`].
    pub(crate) fn channel<T: Weight>(&self) -> (Sender<T>, Receiver<T>) {
        with_pool(self.0.per_channel, Some(self.clone()))
    }

    /// Bytes waiting in the pool's channels now.
    pub(crate) fn used(&self) -> usize {
        self.0.used.get()
    }

    fn add(&self, w: usize) {
        self.0.used.set(self.0.used.get() + w);
    }

    fn sub(&self, w: usize) {
        self.0.used.set(self.0.used.get() - w);
    }
}

/// [`Sender::try_send`] found no room (or the receiver gone): the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full<T>(T);

struct Shared<T> {
    q: RefCell<VecDeque<(T, usize)>>,
    bytes: Cell<usize>,
    cap: usize,
    pool: Option<Pool>,
    senders: Cell<usize>,
    receiver: Cell<bool>,
    /// The receiver waits on it for an item (or the last sender gone).
    data: Notify,
    /// Senders wait on it for room (or the receiver gone).
    room: Notify,
    /// Most bytes ever waiting at once.
    peak: Cell<usize>,
}

/// The sending half (clone it for each reader task).
pub(crate) struct Sender<T> {
    shared: Rc<Shared<T>>,
}

/// The receiving half (the event loop).
pub(crate) struct Receiver<T> {
    shared: Rc<Shared<T>>,
}

/// The receiver is gone: the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed<T>(T);

/// [`Receiver::try_recv`] found nothing (or every sender is gone).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Empty;

/// A channel holding at most `bytes` (by [`Weight`]) at once, or one item.
pub(crate) fn channel<T: Weight>(bytes: usize) -> (Sender<T>, Receiver<T>) {
    with_pool(bytes, None)
}

fn with_pool<T: Weight>(bytes: usize, pool: Option<Pool>) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        q: RefCell::new(VecDeque::new()),
        bytes: Cell::new(0),
        cap: bytes,
        pool,
        senders: Cell::new(1),
        receiver: Cell::new(true),
        data: Notify::new(),
        room: Notify::new(),
        peak: Cell::new(0),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

impl<T: Weight> Sender<T> {
    /// Queues `item`, waiting while it does not fit.
    pub(crate) async fn send(&self, item: T) -> Result<(), Closed<T>> {
        let s = &self.shared;
        let w = item.weight();
        loop {
            let room = s.room.notified();
            if !s.receiver.get() {
                return Err(Closed(item));
            }
            if s.fits(w) {
                s.push(item, w);
                return Ok(());
            }
            room.await;
        }
    }

    /// Queues `item` if it fits now; never waits. The only way to fill a [`Pool`]'s channel
    /// (room in the pool freed by another channel wakes no sender).
    pub(crate) fn try_send(&self, item: T) -> Result<(), Full<T>> {
        let s = &self.shared;
        let w = item.weight();
        if !s.receiver.get() || !s.fits(w) {
            return Err(Full(item));
        }
        s.push(item, w);
        Ok(())
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !self.shared.receiver.get()
    }
}

impl<T> Shared<T> {
    /// Whether `w` more bytes fit: into this channel beside its spare buffers (always when
    /// nothing waits) and into its
    /// pool (never past it: a pool of many empty channels must not take one item each).
    fn fits(&self, w: usize) -> bool {
        let used = self.bytes.get();
        let here = used == 0 || used + w <= self.cap;
        here && self.pool.as_ref().map_or(true, |p| p.used() + w <= p.0.cap)
    }

    fn push(&self, item: T, w: usize) {
        let used = self.bytes.get() + w;
        self.bytes.set(used);
        self.peak.set(self.peak.get().max(used));
        if let Some(p) = &self.pool {
            p.add(w);
        }
        self.q.borrow_mut().push_back((item, w));
        self.data.notify_one();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.set(self.shared.senders.get() + 1);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let n = self.shared.senders.get() - 1;
        self.shared.senders.set(n);
        if n == 0 {
            self.shared.data.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and nothing is left. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        let shared = self.shared.clone();
        loop {
            let data = shared.data.notified();
            if let Ok(x) = self.try_recv() {
                return Some(x);
            }
            if shared.senders.get() == 0 {
                return None;
            }
            data.await;
        }
    }

    /// The next item if one waits.
    pub(crate) fn try_recv(&mut self) -> Result<T, Empty> {
        let s = &self.shared;
        let (item, w) = s.q.borrow_mut().pop_front().ok_or(Empty)?;
        s.bytes.set(s.bytes.get() - w);
        if let Some(p) = &s.pool {
            p.sub(w);
        }
        s.room.notify_waiters();
        Ok(item)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver.set(false);
        self.shared.q.borrow_mut().clear();
        if let Some(p) = &self.shared.pool {
            p.sub(self.shared.bytes.get());
        }
        self.shared.bytes.set(0);
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    impl<T> Receiver<T> {
        /// Bytes waiting now.
        fn bytes(&self) -> usize {
            self.shared.bytes.get()
        }

        /// Most bytes that ever waited at once.
        fn peak(&self) -> usize {
            self.shared.peak.get()
        }
    }

    use crate::daemon::block_on_local as run;

    fn item(n: usize) -> (u32, Vec<u8>) {
        (n as u32, vec![0u8; n])
    }

    /// What waits never exceeds the bound in bytes, however large the datagrams: 4,096 of
    /// 64 KiB would be 256 MiB in a channel bounded by count.
    #[test]
    fn what_waits_is_bounded_in_bytes_and_senders_wait_for_room() {
        run(async {
            let cap = 256 << 10;
            let (tx, mut rx) = channel::<(u32, Vec<u8>)>(cap);
            let sent = Rc::new(Cell::new(0usize));
            for _ in 0..4 {
                let (tx, sent) = (tx.clone(), sent.clone());
                tokio::task::spawn_local(async move {
                    for _ in 0..100 {
                        tx.send(item(65_000)).await.unwrap();
                        sent.set(sent.get() + 1);
                    }
                });
            }
            drop(tx);
            tokio::time::sleep(Duration::from_millis(50)).await;
            // Only what fits went in; the senders wait.
            assert!(rx.bytes() <= cap, "{}", rx.bytes());
            assert!(sent.get() <= cap / 65_000, "{}", sent.get());
            let mut got = 0;
            while let Some((n, d)) = rx.recv().await {
                assert_eq!((n as usize, d.len()), (65_000, 65_000));
                got += 1;
                assert!(rx.bytes() <= cap);
            }
            assert_eq!(got, 400, "nothing lost: every sender got room in turn");
            assert!(rx.peak() <= cap && rx.peak() > cap / 2, "{}", rx.peak());
        });
    }

    /// The TCP links' send queues: each within its share, all within the pool, filled without
    /// waiting; room comes back as items are taken out or a queue is dropped.
    #[test]
    fn pooled_channels_stay_within_the_pool_and_their_share() {
        let pool = Pool::new(10_000, 5_000);
        let (a, mut ra) = pool.channel::<Vec<u8>>();
        let (b, rb) = pool.channel::<Vec<u8>>();
        let (c, _rc) = pool.channel::<Vec<u8>>();
        // 1,024 on 64-bit targets, 1,012 on the 32-bit routers: either way 4 fit in 5,000.
        let w = vec![0u8; 1000].weight();
        assert_eq!(w, core::mem::size_of::<Vec<u8>>() + 1000);
        let fill = |tx: &Sender<Vec<u8>>| {
            (0..100)
                .filter(|_| tx.try_send(vec![0u8; 1000]).is_ok())
                .count()
        };
        assert_eq!(fill(&a), 4, "a's share: 4 x w <= 5,000");
        assert_eq!(fill(&b), 4, "b's share");
        assert_eq!(fill(&c), 1, "what is left of the pool: 10,000 - 8 x w");
        assert_eq!(pool.used(), 9 * w);
        // Taken out or dropped: the room is the pool's again.
        assert_eq!(ra.try_recv().unwrap().len(), 1000);
        assert!(c.try_send(vec![0u8; 1000]).is_ok());
        drop(rb);
        assert!(
            matches!(b.try_send(vec![0u8; 1]), Err(Full(_))),
            "b's receiver is gone"
        );
        assert_eq!(pool.used(), 5 * w);
        assert_eq!(fill(&c), 2, "c up to its share");
        assert_eq!(pool.used(), 7 * w);
    }

    #[test]
    fn an_item_larger_than_the_bound_still_passes_alone() {
        run(async {
            let (tx, mut rx) = channel::<(u32, Vec<u8>)>(1000);
            tx.send(item(5000)).await.unwrap();
            assert_eq!(rx.try_recv().unwrap().1.len(), 5000);
            assert_eq!(rx.try_recv(), Err(Empty));
            drop(rx);
            assert!(tx.is_closed());
            assert_eq!(tx.send(item(1)).await, Err(Closed(item(1))));
        });
    }
}
