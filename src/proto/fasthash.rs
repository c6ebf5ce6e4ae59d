//! A fast hash for the per-packet tables of the protocol core and the daemons (reorder buffer,
//! flow queues, sessions; users, NAT, per-session counters).
//!
//! std's `HashMap` hashes with SipHash-1-3 under a random key: about 400 instructions per lookup
//! of an address on x86_64 (callgrind, `braid lab cpu --callgrind`, bench/cpu/instructions.md),
//! more on a 32-bit router, and the daemons look up several tables per packet. [`FastState`] is
//! a multiply-rotate hash (the word step of rustc's FxHash) with a final avalanche, a few
//! instructions per word.
//!
//! Its state starts from a key drawn once per process from the OS's random source (as std's
//! `RandomState` does per thread), so a passenger who chooses client addresses and ports
//! cannot compute which of them collide. It is not a keyed PRF as SipHash is: use it only for
//! tables whose size is bounded (client addresses and flows behind an edge, sequence numbers
//! of authenticated datagrams, sessions and their indexes, counter names), where a collision
//! costs at most a longer probe; the handshake cookies' table, open to anyone on the core's
//! port, keeps SipHash. No code may depend on a table's iteration order (it was random with
//! SipHash too), so the simulator stays deterministic.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`]: make one with `FastMap::default()`.
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A `HashSet` with [`FastHasher`]: make one with `FastSet::default()`.
pub type FastSet<K> = HashSet<K, FastState>;
/// The `BuildHasher` of [`FastMap`] and [`FastSet`].
pub type FastState = BuildHasherDefault<FastHasher>;

const K: u64 = 0x517c_c1b7_2722_0a95;

/// See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher(u64);

/// The process's key: drawn once, on the first table made.
fn key() -> u64 {
    static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *KEY.get_or_init(|| {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("the OS random source is available");
        u64::from_le_bytes(b)
    })
}

impl Default for FastHasher {
    #[inline]
    fn default() -> Self {
        FastHasher(key())
    }
}

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while bytes.len() >= 8 {
            let (w, rest) = bytes.split_at(8);
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
            bytes = rest;
        }
        if bytes.len() >= 4 {
            let (w, rest) = bytes.split_at(4);
            self.add(u64::from(u32::from_le_bytes(
                w.try_into().expect("4 bytes"),
            )));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The state, avalanched (MurmurHash3's finaliser): the multiply leaves the low bits weak,
    /// and hashbrown takes the bucket from the low bits and its tag from the top 7.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn h<T: Hash>(t: &T) -> u64 {
        FastState::default().hash_one(t)
    }

    #[test]
    fn equal_keys_hash_equal_and_close_keys_differ() {
        let a = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(h(&a), h(&IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))));
        // Neighbouring addresses, flows and the two families of one number all differ.
        let mut seen = HashSet::new();
        for i in 0..=255u8 {
            assert!(seen.insert(h(&IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))));
            assert!(seen.insert(h(&IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                0,
                0,
                0,
                0,
                0,
                0,
                i.into()
            )))));
            assert!(seen.insert(h(&(u32::from(i) << 8))));
        }
        assert_ne!(h(&"socket busy"), h(&"queue full"));
        // Byte strings of every tail length are told apart from their prefixes.
        let bytes: Vec<u8> = (1..=20).collect();
        let all: HashSet<u64> = (0..=bytes.len()).map(|n| h(&&bytes[..n])).collect();
        assert_eq!(all.len(), bytes.len() + 1);
    }

    #[test]
    fn low_bits_spread_for_sequential_keys() {
        // hashbrown picks the bucket from the low bits: 1,024 sequential flows into 1,024
        // buckets must not pile up (an unmixed multiply hash would put them in few).
        let mut buckets = vec![0u32; 1024];
        for i in 0..1024u32 {
            buckets[(h(&i) & 1023) as usize] += 1;
        }
        let worst = *buckets.iter().max().unwrap();
        assert!(worst <= 8, "{worst} keys in one bucket");
        // And the top 7 bits (the tag) too.
        let tags: HashSet<u64> = (0..1024u32).map(|i| h(&i) >> 57).collect();
        assert!(tags.len() >= 120, "{} tags", tags.len());
    }

    /// The state starts from the process's random key: the same for every table of the
    /// process, not the fixed zero an outsider could compute collisions against.
    #[test]
    fn hashes_depend_on_the_process_key() {
        let a = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10));
        let unkeyed = |t: &IpAddr| {
            let mut x = FastHasher(0);
            t.hash(&mut x);
            x.finish()
        };
        assert_ne!(key(), 0);
        assert_eq!(FastHasher::default().0, key());
        assert_ne!(h(&a), unkeyed(&a));
        assert_eq!(h(&a), FastState::default().hash_one(a));
    }

    #[test]
    fn maps_and_sets_work_as_std_ones() {
        let mut m: FastMap<IpAddr, u64> = FastMap::default();
        let mut s: FastSet<u32> = FastSet::default();
        for i in 0..1000u32 {
            *m.entry(IpAddr::V4(Ipv4Addr::from(i % 300))).or_default() += 1;
            s.insert(i % 77);
        }
        assert_eq!(m.len(), 300);
        assert_eq!(m[&IpAddr::V4(Ipv4Addr::from(5))], 4);
        assert_eq!(m[&IpAddr::V4(Ipv4Addr::from(299))], 3);
        assert_eq!(s.len(), 77);
    }
}
