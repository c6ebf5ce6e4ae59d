//! A channel bounded in bytes: datagrams read from link sockets, waiting for the event loop.
//!
//! A link socket's reader task copies each datagram it reads into the channel; the event loop
//! takes them out. When the loop falls behind (a burst, a slow moment, a flood on the core's
//! public port), what waits must stay within the memory budget (`config::budget`,
//! `Bounds::ingress_bytes`). A channel bounded by a count of datagrams cannot promise that:
//! 4,096 datagrams of up to 64 KiB are 256 MiB. This one counts what each item pins
//! ([`Weight`]): a sender whose item does not fit waits (as with a bounded `tokio` channel),
//! so the reader stops reading and the kernel's socket buffer, bounded too, takes the excess.
//! One item always fits into an empty channel, so nothing larger than the bound is stuck.
//!
//! Single-threaded: the daemons run on tokio's current-thread runtime (`spawn_local`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::sync::Notify;

/// What an item pins in memory, in bytes.
pub trait Weight {
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

struct Shared<T> {
    q: RefCell<VecDeque<(T, usize)>>,
    bytes: Cell<usize>,
    cap: usize,
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
pub struct Sender<T> {
    shared: Rc<Shared<T>>,
}

/// The receiving half (the event loop).
pub struct Receiver<T> {
    shared: Rc<Shared<T>>,
}

/// The receiver is gone: the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

/// [`Receiver::try_recv`] found nothing (or every sender is gone).
#[derive(Debug, PartialEq, Eq)]
pub struct Empty;

/// A channel holding at most `bytes` (by [`Weight`]) at once, or one item.
pub fn channel<T: Weight>(bytes: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        q: RefCell::new(VecDeque::new()),
        bytes: Cell::new(0),
        cap: bytes,
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
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        let s = &self.shared;
        let w = item.weight();
        loop {
            let room = s.room.notified();
            if !s.receiver.get() {
                return Err(Closed(item));
            }
            let used = s.bytes.get();
            if used == 0 || used + w <= s.cap {
                s.bytes.set(used + w);
                s.peak.set(s.peak.get().max(used + w));
                s.q.borrow_mut().push_back((item, w));
                s.data.notify_one();
                return Ok(());
            }
            room.await;
        }
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.receiver.get()
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
    pub async fn recv(&mut self) -> Option<T> {
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
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        let s = &self.shared;
        let (item, w) = s.q.borrow_mut().pop_front().ok_or(Empty)?;
        s.bytes.set(s.bytes.get() - w);
        s.room.notify_waiters();
        Ok(item)
    }

    /// Bytes waiting now.
    pub fn bytes(&self) -> usize {
        self.shared.bytes.get()
    }

    /// Most bytes that ever waited at once.
    pub fn peak(&self) -> usize {
        self.shared.peak.get()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receiver.set(false);
        self.shared.q.borrow_mut().clear();
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

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
