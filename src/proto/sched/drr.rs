//! Deficit round robin across users, inside classes ordered by strict priority and weighted
//! against each other by DRR as well.
//!
//! Two nested DRR levels: among the classes of the highest priority that has a ready class
//! (quantum x class weight), and among the users inside the chosen class (one quantum each).
//! The deficit is charged after a packet is served (it may go negative and is paid back on the
//! next turn), so no peeking at packet sizes is needed. Queues are bounded per user and in total.
//!
//! Inside a user, a packet whose flow had nothing waiting when it arrived (`Entry::sparse` on
//! enqueue, decided by the session: a request/response exchange, a DNS query, the ACKs of an
//! upload) goes to the user's fast lane, served before the user's bulk backlog, as FQ-CoDel
//! serves new flows first: one household's download does not delay its own web browsing. A
//! flow has at most one packet in the fast lane at a time (the next one finds the first
//! waiting), so bulk flows cannot use it, and order within a flow is kept.

use crate::proto::fasthash::FastMap;
use std::collections::VecDeque;

use super::{ClassConfig, ClassId, ConnOrder, Entry, QueueFull};

/// Packets up to this size (IP bytes) get extra queue room, see `can_accept`.
const SMALL_PACKET: u32 = 128;

/// DRR quantum per turn, in bytes.
pub(crate) const QUANTUM: i64 = 1500;

#[derive(Debug)]
struct UserQ {
    user: u32,
    /// Packets of flows that had nothing queued when they arrived; served first.
    fast: VecDeque<Entry>,
    q: VecDeque<Entry>,
    deficit: i64,
    fresh: bool,
    active: bool,
}

#[derive(Debug)]
struct ClassQ {
    cfg: ClassConfig,
    users: Vec<UserQ>,
    index: FastMap<u32, usize>,
    ring: VecDeque<usize>,
    deficit: i64,
    fresh: bool,
    active: bool,
    len: usize,
}

impl ClassQ {
    fn new(cfg: ClassConfig) -> ClassQ {
        ClassQ {
            cfg,
            users: Vec::new(),
            index: FastMap::default(),
            ring: VecDeque::new(),
            deficit: 0,
            fresh: false,
            active: false,
            len: 0,
        }
    }

    /// Queues `e` for its user: at the head when `front` (an undone dequeue), in the fast lane
    /// when `fast`, else at the tail.
    fn push(&mut self, e: Entry, front: bool, fast: bool) {
        let i = match self.index.get(&e.user) {
            Some(&i) => i,
            None => {
                self.users.push(UserQ {
                    user: e.user,
                    fast: VecDeque::new(),
                    q: VecDeque::new(),
                    deficit: 0,
                    fresh: false,
                    active: false,
                });
                self.index.insert(e.user, self.users.len() - 1);
                self.users.len() - 1
            }
        };
        let u = &mut self.users[i];
        if front {
            // An undone dequeue, back to the head of the lane it came from (a sparse packet
            // from the fast lane, or the last of an idle user's backlog, which is alone).
            if e.sparse {
                u.fast.push_front(e);
            } else {
                u.q.push_front(e);
            }
            // Refund what serving it cost.
            u.deficit += e.len as i64;
        } else if fast {
            u.fast.push_back(e);
        } else {
            u.q.push_back(e);
        }
        if !u.active {
            u.active = true;
            u.deficit = 0;
            u.fresh = false;
            if front {
                self.ring.push_front(i);
            } else {
                self.ring.push_back(i);
            }
        }
        self.len += 1;
    }

    /// Serves one packet by DRR among this class's users.
    fn pop(&mut self) -> Option<Entry> {
        while let Some(&i) = self.ring.front() {
            let u = &mut self.users[i];
            let from_fast = !u.fast.is_empty();
            let Some(&head) = u.fast.front().or(u.q.front()) else {
                u.active = false;
                self.ring.pop_front();
                continue;
            };
            if !u.fresh {
                u.deficit += QUANTUM;
                u.fresh = true;
            }
            if u.deficit > 0 {
                if from_fast {
                    u.fast.pop_front();
                } else {
                    u.q.pop_front();
                }
                u.deficit -= head.len as i64;
                self.len -= 1;
                let mut head = head;
                let idle = u.q.is_empty() && u.fast.is_empty();
                head.sparse = from_fast || idle;
                if idle {
                    u.active = false;
                    u.deficit = 0;
                    u.fresh = false;
                    self.ring.pop_front();
                }
                return Some(head);
            }
            u.fresh = false;
            self.ring.rotate_left(1);
        }
        None
    }

    /// Forgets idle users when the table grows large (users come and go over days).
    fn gc(&mut self) {
        if self.users.len() < 4096 || self.ring.len() * 2 > self.users.len() {
            return;
        }
        let mut keep = Vec::with_capacity(self.ring.len());
        let mut ring = VecDeque::with_capacity(self.ring.len());
        self.index.clear();
        for &i in &self.ring {
            let u = std::mem::replace(
                &mut self.users[i],
                UserQ {
                    user: 0,
                    fast: VecDeque::new(),
                    q: VecDeque::new(),
                    deficit: 0,
                    fresh: false,
                    active: false,
                },
            );
            self.index.insert(u.user, keep.len());
            ring.push_back(keep.len());
            keep.push(u);
        }
        self.users = keep;
        self.ring = ring;
    }
}

/// The default connection-order scheduler. See the module docs.
#[derive(Debug)]
pub(crate) struct DrrOrder {
    classes: Vec<ClassQ>,
    class_index: [u8; 256], // 0 = unknown (uses the default slot 0)
    /// Priority levels, highest first; each holds a ring of class slots with packets.
    levels: Vec<(u8, VecDeque<usize>)>,
    user_bytes: FastMap<u32, u64>,
    per_user_cap: u64,
    total_cap: u64,
    bytes: u64,
    len: usize,
}

impl DrrOrder {
    /// `per_user_cap` and `total_cap` in bytes of queued packets.
    pub(crate) fn new(per_user_cap: u64, total_cap: u64) -> DrrOrder {
        let mut d = DrrOrder {
            classes: Vec::new(),
            class_index: [0; 256],
            levels: Vec::new(),
            user_bytes: FastMap::default(),
            per_user_cap,
            total_cap,
            bytes: 0,
            len: 0,
        };
        d.set_classes(&[]);
        d
    }

    fn slot(&self, class: ClassId) -> usize {
        self.class_index[class as usize] as usize
    }

    fn activate(&mut self, slot: usize, front: bool) {
        let c = &mut self.classes[slot];
        if c.active {
            return;
        }
        c.active = true;
        c.deficit = 0;
        c.fresh = false;
        let prio = c.cfg.priority;
        let at = match self.levels.iter().position(|(p, _)| *p <= prio) {
            Some(i) if self.levels[i].0 == prio => i,
            Some(i) => {
                self.levels.insert(i, (prio, VecDeque::new()));
                i
            }
            None => {
                self.levels.push((prio, VecDeque::new()));
                self.levels.len() - 1
            }
        };
        if front {
            self.levels[at].1.push_front(slot);
        } else {
            self.levels[at].1.push_back(slot);
        }
    }

    fn account_out(&mut self, e: &Entry) {
        self.bytes -= e.len as u64;
        self.len -= 1;
        if let Some(b) = self.user_bytes.get_mut(&e.user) {
            *b -= e.len as u64;
            if *b == 0 {
                self.user_bytes.remove(&e.user);
            }
        }
    }

    fn account_in(&mut self, e: &Entry) {
        self.bytes += e.len as u64;
        self.len += 1;
        *self.user_bytes.entry(e.user).or_insert(0) += e.len as u64;
    }
}

impl ConnOrder for DrrOrder {
    fn set_classes(&mut self, classes: &[ClassConfig]) {
        // Keep queued packets: rebuild the slots and re-enqueue everything in FIFO order.
        let mut old: Vec<Entry> = Vec::with_capacity(self.len);
        for c in &mut self.classes {
            for u in &mut c.users {
                old.extend(u.fast.drain(..));
                old.extend(u.q.drain(..));
            }
        }
        self.classes.clear();
        self.levels.clear();
        self.class_index = [0; 256];
        self.classes.push(ClassQ::new(ClassConfig::DEFAULT));
        for c in classes {
            if c.id == 0 {
                self.classes[0].cfg = *c;
                continue;
            }
            self.class_index[c.id as usize] = self.classes.len() as u8;
            self.classes.push(ClassQ::new(*c));
            if self.classes.len() == 256 {
                break;
            }
        }
        self.bytes = 0;
        self.len = 0;
        self.user_bytes.clear();
        for e in old {
            self.account_in(&e);
            let s = self.slot(e.class);
            self.classes[s].push(e, false, e.sparse);
            self.activate(s, false);
        }
    }

    fn can_accept(&self, user: u32, len: u32) -> bool {
        let ub = self.user_bytes.get(&user).copied().unwrap_or(0);
        // Small packets (TCP handshakes and ACKs, DNS) get a quarter more room: a bulk flow that
        // keeps its user's queue full must not starve the handshake of that user's next
        // connection or the ACKs of its downloads.
        let (user_cap, total_cap) = if len <= SMALL_PACKET {
            (
                self.per_user_cap + self.per_user_cap / 4,
                self.total_cap + self.total_cap / 4,
            )
        } else {
            (self.per_user_cap, self.total_cap)
        };
        ub + len as u64 <= user_cap && self.bytes + len as u64 <= total_cap
    }

    fn user_bytes(&self, user: u32) -> u64 {
        self.user_bytes.get(&user).copied().unwrap_or(0)
    }

    fn enqueue(&mut self, e: Entry) -> Result<(), QueueFull> {
        if !self.can_accept(e.user, e.len) {
            return Err(QueueFull);
        }
        self.account_in(&e);
        let s = self.slot(e.class);
        if self.classes[s].users.len() >= 4096 {
            self.classes[s].gc();
        }
        self.classes[s].push(e, false, e.sparse);
        self.activate(s, false);
        Ok(())
    }

    fn dequeue(&mut self, ready: &mut dyn FnMut(ClassId) -> bool) -> Option<Entry> {
        let mut li = 0;
        while li < self.levels.len() {
            let n = self.levels[li].1.len();
            let mut skipped = 0;
            // DRR among the ready classes of this level.
            while skipped < n && !self.levels[li].1.is_empty() {
                let slot = self.levels[li].1[0];
                let c = &mut self.classes[slot];
                if c.len == 0 {
                    c.active = false;
                    self.levels[li].1.pop_front();
                    continue;
                }
                if !ready(c.cfg.id) {
                    self.levels[li].1.rotate_left(1);
                    skipped += 1;
                    continue;
                }
                if !c.fresh {
                    c.deficit += QUANTUM * c.cfg.weight.max(1) as i64;
                    c.fresh = true;
                }
                if c.deficit > 0 {
                    let e = c.pop().expect("class len > 0 means a user has a packet");
                    c.deficit -= e.len as i64;
                    if c.len == 0 {
                        c.active = false;
                        c.deficit = 0;
                        c.fresh = false;
                        self.levels[li].1.pop_front();
                    }
                    self.account_out(&e);
                    return Some(e);
                }
                c.fresh = false;
                self.levels[li].1.rotate_left(1);
            }
            if self.levels[li].1.is_empty() {
                self.levels.remove(li);
                continue;
            }
            li += 1;
        }
        None
    }

    fn undo_dequeue(&mut self, e: Entry) {
        self.account_in(&e);
        let s = self.slot(e.class);
        self.classes[s].push(e, true, false);
        let c = &mut self.classes[s];
        if c.active {
            c.deficit += e.len as i64;
        }
        self.activate(s, true);
    }

    fn len(&self) -> usize {
        self.len
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::*;

    /// A packet of a flow with others waiting.
    fn e(pkt: u32, user: u32, class: ClassId, len: u32) -> Entry {
        Entry {
            pkt,
            len,
            user,
            class,
            sparse: false,
        }
    }

    fn all_ready(_: ClassId) -> bool {
        true
    }

    /// A busy user 1: `n` full-size packets (ids from 0), then a 100-byte packet `sparse` of a
    /// flow that had nothing waiting (as the session marks it).
    fn backlog_then_sparse(n: u32, sparse: u32) -> DrrOrder {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        for i in 0..n {
            d.enqueue(e(i, 1, 0, 1500)).unwrap();
        }
        d.enqueue(Entry {
            sparse: true,
            ..e(sparse, 1, 0, 100)
        })
        .unwrap();
        d
    }

    #[test]
    fn fifo_per_user() {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        for i in 0..5 {
            d.enqueue(e(i, 7, 0, 100)).unwrap();
        }
        let got: Vec<u32> = std::iter::from_fn(|| d.dequeue(&mut all_ready))
            .map(|x| x.pkt)
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert!(d.is_empty());
        assert_eq!(d.bytes(), 0);
    }

    #[test]
    fn drr_is_fair_in_bytes_across_users_with_different_packet_sizes() {
        let mut d = DrrOrder::new(1 << 24, 1 << 26);
        // User 1 sends 1500-byte packets, user 2 300-byte, user 3 700-byte; all backlogged.
        let sizes = [(1u32, 1500u32), (2, 300), (3, 700)];
        let mut id = 0;
        for &(u, s) in &sizes {
            for _ in 0..(3_000_000 / s) {
                d.enqueue(e(id, u, 0, s)).unwrap();
                id += 1;
            }
        }
        let mut served = [0u64; 4];
        let mut total = 0;
        while total < 1_500_000 {
            let x = d.dequeue(&mut all_ready).unwrap();
            served[x.user as usize] += x.len as u64;
            total += x.len as u64;
        }
        let xs: Vec<f64> = served[1..].iter().map(|&b| b as f64).collect();
        let jain = xs.iter().sum::<f64>().powi(2) / (3.0 * xs.iter().map(|x| x * x).sum::<f64>());
        assert!(jain > 0.999, "served {served:?} jain {jain}");
    }

    #[test]
    fn strict_priority_always_first() {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        d.set_classes(&[ClassConfig {
            id: 5,
            mode: Mode::Aggregate,
            priority: 3,
            weight: 1,
        }]);
        for i in 0..10 {
            d.enqueue(e(i, 1, 0, 1000)).unwrap();
        }
        d.enqueue(e(100, 2, 5, 100)).unwrap();
        d.enqueue(e(101, 2, 5, 100)).unwrap();
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 100);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 101);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 0);
        d.enqueue(e(102, 3, 5, 100)).unwrap();
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 102);
        // A class that is not ready is skipped, not blocking lower ones.
        d.enqueue(e(103, 3, 5, 100)).unwrap();
        assert_eq!(d.dequeue(&mut |c| c != 5).unwrap().pkt, 1);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 103);
    }

    #[test]
    fn weighted_classes_share_by_weight() {
        let mut d = DrrOrder::new(1 << 26, 1 << 27);
        d.set_classes(&[
            ClassConfig {
                id: 1,
                mode: Mode::Aggregate,
                priority: 0,
                weight: 3,
            },
            ClassConfig {
                id: 2,
                mode: Mode::Aggregate,
                priority: 0,
                weight: 1,
            },
        ]);
        for i in 0..4000 {
            d.enqueue(e(i, i % 4, 1, 1000)).unwrap();
            d.enqueue(e(10_000 + i, 9, 2, 1000)).unwrap();
        }
        let mut by = [0u32; 3];
        for _ in 0..4000 {
            by[d.dequeue(&mut all_ready).unwrap().class as usize] += 1;
        }
        assert!((2950..=3050).contains(&by[1]), "{by:?}");
    }

    #[test]
    fn sparse_user_is_flagged() {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        for i in 0..3 {
            d.enqueue(e(i, 1, 0, 1500)).unwrap();
        }
        d.enqueue(e(10, 2, 0, 100)).unwrap();
        let got: Vec<(u32, bool)> = std::iter::from_fn(|| d.dequeue(&mut all_ready))
            .map(|x| (x.pkt, x.sparse))
            .collect();
        // User 1's last packet left it idle; user 2 had a single packet.
        assert_eq!(got, vec![(0, false), (10, true), (1, false), (2, true)]);
    }

    #[test]
    fn a_new_flow_of_a_busy_user_goes_first() {
        // Same user, a packet of a flow with nothing waiting (a request beside a download),
        // then one of a flow that has (the session decides which is which).
        let mut d = backlog_then_sparse(5, 100);
        d.enqueue(e(101, 1, 0, 100)).unwrap();
        let got: Vec<(u32, bool)> = std::iter::from_fn(|| d.dequeue(&mut all_ready))
            .map(|x| (x.pkt, x.sparse))
            .collect();
        assert_eq!(
            got,
            vec![
                (100, true),
                (0, false),
                (1, false),
                (2, false),
                (3, false),
                (4, false),
                (101, true)
            ],
            "the new flow's packet skips the backlog and stays sparse; the last one leaves the \
             user idle"
        );
    }

    #[test]
    fn undo_keeps_the_served_packet_first() {
        let mut d = backlog_then_sparse(3, 10);
        // Undone twice: a fast packet stays fast, a backlog packet does not become fast.
        let x = d.dequeue(&mut all_ready).unwrap();
        assert_eq!((x.pkt, x.sparse), (10, true));
        d.undo_dequeue(x);
        let y = d.dequeue(&mut all_ready).unwrap();
        assert_eq!((y.pkt, y.sparse), (10, true));
        d.undo_dequeue(y);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 10);
        let z = d.dequeue(&mut all_ready).unwrap();
        assert_eq!((z.pkt, z.sparse), (0, false));
        d.undo_dequeue(z);
        let z = d.dequeue(&mut all_ready).unwrap();
        assert_eq!(
            (z.pkt, z.sparse),
            (0, false),
            "an undone backlog packet stays backlog"
        );
        let order: Vec<u32> = std::iter::from_fn(|| d.dequeue(&mut all_ready))
            .map(|x| x.pkt)
            .collect();
        assert_eq!(order, vec![1, 2]);
    }

    #[test]
    fn bounded_per_user_and_total() {
        let mut d = DrrOrder::new(3000, 5000);
        assert!(d.enqueue(e(0, 1, 0, 1500)).is_ok());
        assert!(d.enqueue(e(1, 1, 0, 1500)).is_ok());
        assert!(!d.can_accept(1, 1500));
        // A small packet still fits (slack for handshakes and ACKs), a large one does not.
        assert!(d.can_accept(1, 100));
        assert!(!d.can_accept(1, 1000));
        assert_eq!(d.enqueue(e(2, 1, 0, 1500)), Err(QueueFull));
        assert!(d.enqueue(e(3, 2, 0, 1500)).is_ok());
        assert_eq!(d.enqueue(e(4, 3, 0, 1500)), Err(QueueFull)); // total
        d.dequeue(&mut all_ready).unwrap();
        assert!(d.can_accept(3, 1500));
    }

    #[test]
    fn undo_puts_back_at_head() {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        d.enqueue(e(0, 1, 0, 100)).unwrap();
        d.enqueue(e(1, 1, 0, 100)).unwrap();
        let x = d.dequeue(&mut all_ready).unwrap();
        d.undo_dequeue(x);
        assert_eq!(d.len(), 2);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 0);
    }

    #[test]
    fn set_classes_keeps_queued_packets() {
        let mut d = DrrOrder::new(1 << 20, 1 << 20);
        d.enqueue(e(0, 1, 4, 100)).unwrap();
        d.enqueue(e(1, 1, 0, 100)).unwrap();
        d.set_classes(&[ClassConfig {
            id: 4,
            mode: Mode::Aggregate,
            priority: 1,
            weight: 1,
        }]);
        assert_eq!(d.len(), 2);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 0);
        assert_eq!(d.dequeue(&mut all_ready).unwrap().pkt, 1);
    }
}
