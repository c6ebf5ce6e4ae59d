//! Receiver reorder buffer: deduplicates by session `seq`, restores per-flow order from the
//! `prev` links, never waits longer than a bounded time, and holds bounded memory.
//!
//! Every DATA frame carries `seq` and `prev` (= seq minus the seq of the previous packet of the
//! same flow, 0 = none known). A packet is released when its predecessor `seq - prev` has been
//! released (or is older than the dedup window), when it has waited longer than the reorder
//! wait, or when the buffer is full (oldest first). Releasing a packet releases the chain of
//! packets waiting on it. Flows are never parsed: the chain is all the receiver needs.

use super::fasthash::FastMap;
use core::time::Duration;
use std::collections::VecDeque;

use crate::proto::Instant;

/// Reorder wait used until the sender's first hint arrives.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_millis(100);
/// Hard cap on any wait.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(400);

/// Limits of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    pub max_packets: usize,
    pub max_bytes: usize,
    /// log2 of the dedup window in packets.
    pub window_log2: u32,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            max_packets: 4096,
            max_bytes: 4 << 20,
            window_log2: 18,
        }
    }
}

/// A restored inner packet, ready to leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub seq: u32,
    /// The inner IP packet. Hand the buffer back with `recycle` to avoid allocations.
    pub data: Vec<u8>,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReorderStats {
    pub(crate) delivered: u64,
    pub(crate) duplicates: u64,
    /// Released because they waited the full reorder wait.
    pub(crate) timed_out: u64,
    /// Released early because the buffer was full.
    pub(crate) overflowed: u64,
}

#[derive(Debug)]
struct Slot {
    seq: u32,
    pred: u32,
    data: Vec<u8>,
}

/// Sliding bitmap of seen `seq`s.
#[derive(Debug)]
struct Dedup {
    bits: Vec<u64>,
    mask: u32,
    highest: Option<u32>,
}

impl Dedup {
    fn new(log2: u32) -> Dedup {
        let n = 1u32 << log2.clamp(6, 24);
        Dedup {
            bits: vec![0; (n / 64) as usize],
            mask: n - 1,
            highest: None,
        }
    }

    fn window(&self) -> u32 {
        self.mask + 1
    }

    fn bit(&self, s: u32) -> (usize, u64) {
        let i = s & self.mask;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether `s` is too old to be tracked (older than the window below the highest).
    fn too_old(&self, s: u32) -> bool {
        match self.highest {
            Some(h) => {
                let d = h.wrapping_sub(s);
                d < 0x8000_0000 && d >= self.window()
            }
            None => false,
        }
    }

    fn seen(&self, s: u32) -> bool {
        let Some(h) = self.highest else { return false };
        let d = h.wrapping_sub(s);
        if d >= 0x8000_0000 {
            return false; // newer than anything seen
        }
        if d >= self.window() {
            return true; // too old: treat as seen
        }
        let (w, b) = self.bit(s);
        self.bits[w] & b != 0
    }

    /// Marks `s` seen; false if it already was (or is too old).
    fn insert(&mut self, s: u32) -> bool {
        let Some(h) = self.highest else {
            self.highest = Some(s);
            let (w, b) = self.bit(s);
            self.bits[w] |= b;
            return true;
        };
        let d = s.wrapping_sub(h);
        if d != 0 && d < 0x8000_0000 {
            // Newer: clear the bits of the seqs we skip over.
            if d >= self.window() {
                self.bits.iter_mut().for_each(|x| *x = 0);
            } else {
                let mut x = h.wrapping_add(1);
                while x != s {
                    if x & 63 == 0 && s.wrapping_sub(x) >= 64 {
                        let (w, _) = self.bit(x);
                        self.bits[w] = 0;
                        x = x.wrapping_add(64);
                        continue;
                    }
                    let (w, b) = self.bit(x);
                    self.bits[w] &= !b;
                    x = x.wrapping_add(1);
                }
            }
            self.highest = Some(s);
            let (w, b) = self.bit(s);
            self.bits[w] |= b;
            return true;
        }
        if self.seen(s) {
            return false;
        }
        let (w, b) = self.bit(s);
        self.bits[w] |= b;
        true
    }
}

/// The reorder buffer. See the module docs.
#[derive(Debug)]
pub struct Reorder {
    cfg: ReorderConfig,
    wait: Duration,
    dedup: Dedup,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_seq: FastMap<u32, u32>,
    by_pred: FastMap<u32, u32>,
    fifo: VecDeque<(u32, Instant)>,
    bytes: usize,
    ready: VecDeque<Delivered>,
    pool: Vec<Vec<u8>>,
    pub(crate) stats: ReorderStats,
}

impl Reorder {
    pub fn new(cfg: ReorderConfig) -> Reorder {
        Reorder {
            cfg,
            wait: DEFAULT_WAIT,
            dedup: Dedup::new(cfg.window_log2),
            slots: Vec::new(),
            free: Vec::new(),
            by_seq: FastMap::default(),
            by_pred: FastMap::default(),
            fifo: VecDeque::new(),
            bytes: 0,
            ready: VecDeque::new(),
            pool: Vec::new(),
            stats: ReorderStats::default(),
        }
    }

    /// Sets the reorder wait (capped at [`MAX_WAIT`]).
    pub fn set_wait(&mut self, wait: Duration) {
        self.wait = wait.min(MAX_WAIT);
    }

    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Packets waiting for a predecessor.
    pub fn waiting(&self) -> usize {
        self.by_seq.len()
    }

    pub fn waiting_bytes(&self) -> usize {
        self.bytes
    }

    /// Gives a delivered packet's buffer back for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.pool.len() < 256 {
            buf.clear();
            self.pool.push(buf);
        }
    }

    fn buffer(&mut self, data: &[u8]) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.extend_from_slice(data);
        b
    }

    /// An empty buffer from the pool, for a packet to be written into and given to
    /// [`insert_owned`](Self::insert_owned) (or back to [`recycle`](Self::recycle)).
    pub fn spare(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_default()
    }

    /// Takes in one packet. Returns false if it was a duplicate (dropped).
    pub fn insert(&mut self, now: Instant, seq: u32, prev: u16, data: &[u8]) -> bool {
        if !self.dedup.insert(seq) {
            self.stats.duplicates += 1;
            return false;
        }
        let data = self.buffer(data);
        self.insert_new(now, seq, prev, data)
    }

    /// [`insert`](Self::insert) of a packet already in a buffer of its own (from
    /// [`spare`](Self::spare): no copy); a duplicate's buffer goes back to the pool.
    pub fn insert_owned(&mut self, now: Instant, seq: u32, prev: u16, data: Vec<u8>) -> bool {
        if !self.dedup.insert(seq) {
            self.stats.duplicates += 1;
            self.recycle(data);
            return false;
        }
        self.insert_new(now, seq, prev, data)
    }

    /// A packet not seen before (`seq` just entered the duplicate filter).
    fn insert_new(&mut self, now: Instant, seq: u32, prev: u16, data_buf: Vec<u8>) -> bool {
        let pred = seq.wrapping_sub(prev as u32);
        let pred_done = prev == 0
            || self.dedup.too_old(pred)
            || (self.dedup.seen(pred) && !self.by_seq.contains_key(&pred));
        if pred_done {
            self.emit(seq, data_buf);
            self.release_chain(seq);
            return true;
        }
        self.bytes += data_buf.len();
        let slot = Slot {
            seq,
            pred,
            data: data_buf,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_seq.insert(seq, idx);
        self.by_pred.insert(pred, idx);
        self.fifo.push_back((seq, now));
        while self.by_seq.len() > self.cfg.max_packets || self.bytes > self.cfg.max_bytes {
            if !self.release_oldest() {
                break;
            }
            self.stats.overflowed += 1;
        }
        true
    }

    fn emit(&mut self, seq: u32, data: Vec<u8>) {
        self.stats.delivered += 1;
        self.ready.push_back(Delivered { seq, data });
    }

    fn take_slot(&mut self, idx: u32) -> (u32, Vec<u8>) {
        let s = &mut self.slots[idx as usize];
        let seq = s.seq;
        let data = std::mem::take(&mut s.data);
        let pred = s.pred;
        self.by_seq.remove(&seq);
        if self.by_pred.get(&pred) == Some(&idx) {
            self.by_pred.remove(&pred);
        }
        self.bytes -= data.len();
        self.free.push(idx);
        (seq, data)
    }

    fn release_chain(&mut self, mut seq: u32) {
        while let Some(idx) = self.by_pred.get(&seq).copied() {
            let (s, data) = self.take_slot(idx);
            self.emit(s, data);
            seq = s;
        }
        // Keep the oldest live entry at the front, so `poll_timeout` is O(1).
        while self
            .fifo
            .front()
            .is_some_and(|(s, _)| !self.by_seq.contains_key(s))
        {
            self.fifo.pop_front();
        }
    }

    /// Force-releases the oldest waiting packet (and its chain). False if none waits.
    fn release_oldest(&mut self) -> bool {
        while let Some((seq, _)) = self.fifo.pop_front() {
            if let Some(&idx) = self.by_seq.get(&seq) {
                let (s, data) = self.take_slot(idx);
                self.emit(s, data);
                self.release_chain(s);
                return true;
            }
        }
        false
    }

    /// When the oldest waiting packet times out.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        // Released entries are popped from the front as they go (see `release_chain`).
        self.fifo.front().map(|&(_, t)| t + self.wait)
    }

    /// Releases packets that waited the full reorder wait.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(seq, t)) = self.fifo.front() {
            if !self.by_seq.contains_key(&seq) {
                self.fifo.pop_front();
                continue;
            }
            if t + self.wait > now {
                break;
            }
            self.release_oldest();
            self.stats.timed_out += 1;
        }
    }

    /// The next packet ready to leave, in release order.
    pub fn poll(&mut self) -> Option<Delivered> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Instant {
        Instant(x * 1000)
    }

    fn drain(r: &mut Reorder) -> Vec<u32> {
        std::iter::from_fn(|| r.poll()).map(|d| d.seq).collect()
    }

    #[test]
    fn in_order_passes_straight_through() {
        let mut r = Reorder::new(ReorderConfig::default());
        assert!(r.insert(ms(0), 10, 0, b"a"));
        assert!(r.insert(ms(0), 11, 1, b"b"));
        assert!(r.insert(ms(0), 12, 1, b"c"));
        let d: Vec<Delivered> = std::iter::from_fn(|| r.poll()).collect();
        assert_eq!(
            d.iter().map(|d| d.seq).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!(d[2].data, b"c");
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn out_of_order_is_held_until_predecessor_then_released_as_chain() {
        let mut r = Reorder::new(ReorderConfig::default());
        r.insert(ms(0), 100, 0, b"x");
        drain(&mut r);
        // Flow A: 101, 103, 104 (prev 1, 2, 1); flow B: 102 (its own flow, prev 0).
        r.insert(ms(1), 104, 1, b"x");
        r.insert(ms(1), 103, 2, b"x");
        r.insert(ms(1), 102, 0, b"x");
        assert_eq!(drain(&mut r), vec![102]); // another flow is not held up
        assert_eq!(r.waiting(), 2);
        r.insert(ms(2), 101, 1, b"x");
        assert_eq!(drain(&mut r), vec![101, 103, 104]);
        assert_eq!(r.waiting(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn bounded_wait_releases_after_timeout() {
        let mut r = Reorder::new(ReorderConfig::default());
        r.set_wait(Duration::from_millis(50));
        r.insert(ms(0), 1, 0, b"x");
        drain(&mut r);
        r.insert(ms(10), 3, 1, b"x"); // waits for 2
        r.insert(ms(20), 4, 1, b"x");
        assert_eq!(r.poll_timeout(), Some(ms(60)));
        r.handle_timeout(ms(59));
        assert!(drain(&mut r).is_empty());
        r.handle_timeout(ms(60));
        assert_eq!(drain(&mut r), vec![3, 4]);
        assert_eq!(r.stats.timed_out, 1);
        // The missing one still gets through when it finally arrives, once.
        assert!(r.insert(ms(70), 2, 1, b"x"));
        assert_eq!(drain(&mut r), vec![2]);
        assert!(!r.insert(ms(71), 2, 1, b"x"));
        // Waits are capped.
        r.set_wait(Duration::from_secs(5));
        assert_eq!(r.wait(), MAX_WAIT);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut r = Reorder::new(ReorderConfig::default());
        assert!(r.insert(ms(0), 5, 0, b"x"));
        assert!(!r.insert(ms(0), 5, 0, b"x"));
        assert!(r.insert(ms(0), 7, 1, b"x")); // waits for 6
        assert!(!r.insert(ms(0), 7, 1, b"x")); // duplicate of a waiting packet
        assert_eq!(r.waiting(), 1);
        assert!(r.insert(ms(0), 6, 1, b"x"));
        assert_eq!(drain(&mut r), vec![5, 6, 7]);
        assert_eq!(r.stats.duplicates, 2);
    }

    #[test]
    fn memory_bound_releases_oldest_first() {
        let cfg = ReorderConfig {
            max_packets: 3,
            max_bytes: 1 << 20,
            window_log2: 10,
        };
        let mut r = Reorder::new(cfg);
        r.insert(ms(0), 0, 0, b"x");
        drain(&mut r);
        for s in [2u32, 4, 6, 8] {
            r.insert(ms(s as u64), s, 1, b"x"); // each waits on a missing odd seq
        }
        assert_eq!(r.waiting(), 3);
        assert_eq!(drain(&mut r), vec![2]);
        assert_eq!(r.stats.overflowed, 1);
        let cfg = ReorderConfig {
            max_packets: 100,
            max_bytes: 250,
            window_log2: 10,
        };
        let mut r = Reorder::new(cfg);
        r.insert(ms(0), 0, 0, b"x");
        drain(&mut r);
        for s in [2u32, 4, 6] {
            r.insert(ms(s as u64), s, 1, &[0u8; 100]);
        }
        assert!(r.waiting_bytes() <= 250);
        assert_eq!(drain(&mut r), vec![2]);
    }

    #[test]
    fn dedup_window_slides_and_wraps() {
        let mut r = Reorder::new(ReorderConfig {
            window_log2: 8,
            ..Default::default()
        });
        let start = u32::MAX - 300;
        let mut s = start;
        for _ in 0..600 {
            assert!(r.insert(ms(0), s, 0, b""));
            s = s.wrapping_add(1);
        }
        assert!(!r.insert(ms(0), s.wrapping_sub(1), 0, b""));
        assert!(!r.insert(ms(0), s.wrapping_sub(200), 0, b""));
        // Older than the window: treated as already seen.
        assert!(!r.insert(ms(0), s.wrapping_sub(300), 0, b""));
        // A jump forward beyond the window clears everything.
        assert!(r.insert(ms(0), s.wrapping_add(10_000), 0, b""));
        assert!(r.insert(ms(0), s.wrapping_add(9_999), 0, b""));
        assert_eq!(r.stats.duplicates, 3);
    }

    #[test]
    fn predecessor_older_than_window_counts_as_delivered() {
        let mut r = Reorder::new(ReorderConfig {
            window_log2: 8,
            ..Default::default()
        });
        r.insert(ms(0), 1000, 0, b"");
        drain(&mut r);
        assert!(r.insert(ms(0), 1010, 500, b"")); // pred 510 is far below the window
        assert_eq!(drain(&mut r), vec![1010]);
    }
}
