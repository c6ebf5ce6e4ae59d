//! The core's NAT: its own nftables table, and the per-session source mapping that keeps edges
//! with identical LAN subnets apart.
//!
//! # Design
//! Two edges may both use `192.168.1.0/24`; their clients' packets reach the core with the same
//! source addresses. Before a restored packet enters the core's hub, [`SourceMap::outbound`]
//! rewrites its source to an address of a private *pool* (default `100.64.0.0/16`, and
//! `fd62:7261:6964::/64` for IPv6), one pool address per (session, client address), allocated
//! on first sight and kept while it is in use (stateful 1:1 NAT; addresses idle longer than
//! `idle_secs` may be reused). The host then masquerades the pool toward the internet with the
//! rule in braid's nftables table ([`CoreNat`]). A reply comes back from the internet, conntrack
//! restores its destination to the pool address, the steering rule `to <pool> lookup <table>`
//! (see [`crate::os::space::SteerConfig::destinations`]) sends it into the hub, and
//! [`SourceMap::inbound`] finds the session *by that destination address alone*, restores the
//! client's address and tells the core which session to send it to. Neither conntrack zones nor
//! per-edge interfaces are needed, the mapping works for any LAN layout (several prefixes per
//! edge, IPv4 and IPv6), and the core's kernel sees distinct sources, so its conntrack table
//! never confuses two edges' flows.
//!
//! The map works on packets the caller parsed once ([`PacketMut`]); rewriting the address
//! ([`PacketMut::set_addr`]) fixes the IPv4 header checksum and the TCP/UDP/ICMPv6 checksums
//! incrementally (RFC 1624), and also the packet quoted inside ICMP errors (so "fragmentation
//! needed" and "port unreachable" reach the right client intact).
//!
//! # nftables table
//! [`CoreNat::install`] creates table `inet <instance>` with one `postrouting` NAT chain and one
//! masquerade rule per pool, over nfnetlink (no `nft` program). The table is owned by braid's
//! netlink socket (`NFT_TABLE_F_OWNER`), so the kernel deletes it when braid exits or is killed;
//! on kernels without owned tables it is deleted on drop and by [`cleanup_stale`] on the next
//! start.

use super::nft::{self, NftTable};
use super::{sysctl_get, sysctl_set, Prefix, Result};
use crate::proto::fasthash::FastMap;
use crate::proto::packet::{Field, PacketMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Core NAT settings.
#[derive(Clone, Debug)]
pub struct NatConfig {
    /// Instance name: the nftables table is `inet <instance>`.
    pub(crate) instance: String,
    /// IPv4 pool the clients of every edge are mapped into.
    pub(crate) pool_v4: Prefix,
    /// IPv6 pool (None: IPv6 from edges is refused by [`SourceMap::outbound`]).
    pub(crate) pool_v6: Option<Prefix>,
    /// A pool address unused this long may be given to another client.
    idle_secs: u64,
    /// Most client addresses one edge holds at once (`max_clients`).
    pub(crate) max_clients: usize,
}

impl NatConfig {
    /// Defaults for an instance name.
    pub fn new(instance: &str) -> Self {
        NatConfig {
            instance: instance.to_string(),
            pool_v4: Prefix::new(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 16),
            pool_v6: Some(Prefix::new(
                IpAddr::V6(Ipv6Addr::new(0xfd62, 0x7261, 0x6964, 0, 0, 0, 0, 0)),
                64,
            )),
            idle_secs: 600,
            max_clients: 1024,
        }
    }

    /// The pools (destinations the core steers into its hub).
    pub fn pools(&self) -> Vec<Prefix> {
        std::iter::once(self.pool_v4).chain(self.pool_v6).collect()
    }
}

/// Braid's nftables table on the core; dropping it deletes the table.
pub struct CoreNat {
    table: NftTable,
    /// Whether the kernel ties the table to braid's socket (it vanishes even on SIGKILL).
    pub owned: bool,
}

impl std::fmt::Debug for CoreNat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CoreNat(owned: {})", self.owned)
    }
}

impl CoreNat {
    /// Creates table `inet <instance>` in the calling thread's namespace with masquerade for
    /// the pools.
    pub fn install(cfg: &NatConfig) -> Result<CoreNat> {
        let (mut table, owned) = match NftTable::create(&cfg.instance, true) {
            Ok(t) => (t, true),
            // Kernels before 5.12 refuse the owner flag.
            Err(e) if matches!(e.errno(), Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)) => {
                (NftTable::create(&cfg.instance, false)?, false)
            }
            Err(e) => return Err(e),
        };
        for p in cfg.pools() {
            table.add_masquerade(p)?;
        }
        Ok(CoreNat { table, owned })
    }

    /// The table for a core that keeps its NAT across restarts: creates table `inet
    /// <instance>`, or adopts the one a stopped (or killed) core left, replacing its rules in
    /// one transaction. Existing connections keep being translated throughout: the kernel
    /// NATs established flows only while some NAT chain exists. `owned` tells whether the
    /// kernel ties it to braid while it runs (`NFT_TABLE_F_PERSIST`, Linux 6.9+: no other
    /// program can flush it); on older kernels it is a plain table. Dropping it deletes it,
    /// unless [`CoreNat::keep`] was called.
    pub fn adopt(cfg: &NatConfig) -> Result<CoreNat> {
        let (table, owned) = NftTable::adopt(&cfg.instance, &cfg.pools())?;
        Ok(CoreNat { table, owned })
    }

    /// Leaves the table in place for the next core (a restart): nothing deletes it on drop.
    pub fn keep(mut self) {
        self.table.keep();
    }

    /// Deletes the table now (also done on drop).
    pub fn remove(&mut self) -> Result<()> {
        self.table.delete()
    }
}

/// True when table `inet <instance>` exists in the calling thread's namespace.
pub fn table_exists(instance: &str) -> Result<bool> {
    nft::table_exists(instance)
}

/// Deletes a crashed instance's table (only left behind on kernels without owned tables).
/// Returns whether there was one.
pub fn cleanup_stale(instance: &str) -> Result<bool> {
    nft::delete_table(instance)
}

/// Turns IPv4 (and IPv6) forwarding on for the core's namespace and restores the previous
/// values on drop.
#[derive(Debug)]
pub struct Forwarding {
    restore: Vec<(String, String)>,
}

impl Forwarding {
    /// [`Forwarding::enable`], and restores on drop also the values a previous core found
    /// before it (it stopped for a restart and left forwarding on: [`Forwarding::keep`]).
    pub(crate) fn enable_after(v6: bool, before: Vec<(String, String)>) -> Result<Forwarding> {
        let mut f = Forwarding::enable(v6)?;
        for (k, v) in before {
            if !f.restore.iter().any(|(a, _)| *a == k) {
                f.restore.push((k, v));
            }
        }
        Ok(f)
    }

    /// The values restored on drop: (sysctl, value).
    pub(crate) fn pending(&self) -> &[(String, String)] {
        &self.restore
    }

    /// Leaves forwarding on (a restart: the next core needs it, and restores these values
    /// when it stops for good).
    pub(crate) fn keep(mut self) {
        self.restore.clear();
    }

    /// Enables forwarding; `v6` also for IPv6.
    pub fn enable(v6: bool) -> Result<Forwarding> {
        let mut restore = Vec::new();
        let mut keys = vec!["net/ipv4/ip_forward"];
        if v6 {
            keys.push("net/ipv6/conf/all/forwarding");
        }
        for k in keys {
            if sysctl_get(k)? != "1" {
                let old = sysctl_set(k, "1")?;
                restore.push((k.to_string(), old));
            }
        }
        Ok(Forwarding { restore })
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for (k, v) in self.restore.drain(..) {
            if let Err(e) = sysctl_set(&k, &v) {
                log::warn!("restore {k}: {e}");
            }
        }
    }
}

// --- the source map --------------------------------------------------------------------------

/// An edge as the source map knows it: its public key, the same across its sessions and across
/// restarts of the core (a session id is not).
pub(crate) type EdgeKey = [u8; 32];

/// Why a packet could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The packet cannot take its mapped address: a mapping of the other IP version (from
    /// an edited state file).
    Malformed,
    /// IPv6 packet but no IPv6 pool configured.
    NoPool,
    /// Every candidate pool address of this client is in use by another client and none is
    /// idle.
    PoolExhausted,
    /// The edge already has `max_clients` client addresses in use, none idle.
    EdgeLimit,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    edge: EdgeKey,
    client: IpAddr,
    last: u64,
}

#[derive(Debug)]
struct Pool {
    net: Prefix,
}

impl Pool {
    fn size(&self) -> u128 {
        let bits = if self.net.is_ipv4() { 32 } else { 128 } - u32::from(self.net.len);
        // Skip the network address and (for IPv4) the broadcast address.
        if bits >= 127 {
            u128::MAX / 2
        } else {
            (1u128 << bits).saturating_sub(2).max(1)
        }
    }
    fn nth(&self, i: u128) -> IpAddr {
        match self.net.network().addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1 + i as u32))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1 + i))),
        }
    }
}

/// Stateful 1:1 mapping of (edge, client address) to pool addresses; see the module doc.
/// Pure: no I/O, time is passed in (seconds, any monotonic origin).
///
/// A client's address is one of [`PROBES`] candidates drawn from a keyed hash of the secret,
/// the edge's key and the client's address: the same after a restart of the core (the secret
/// and the live mappings are kept in its state file, [`SourceMap::to_text`]), unguessable
/// from outside, and found in a bounded number of steps. The first candidate not in use by
/// another client (or idle longer than `idle_secs`) is taken; when all are busy the packet is
/// refused ([`MapError::PoolExhausted`]). One edge holds at most `max_clients` addresses.
#[derive(Debug)]
pub struct SourceMap {
    v4: Pool,
    v6: Option<Pool>,
    secret: [u8; 32],
    idle: u64,
    max_clients: usize,
    fwd: FastMap<(EdgeKey, IpAddr), IpAddr>,
    rev: FastMap<IpAddr, Entry>,
    /// Each edge's clients with an address.
    clients: FastMap<EdgeKey, Vec<IpAddr>>,
    /// An edge at its limit with nothing idle: no reclaim is tried before this time.
    full_until: FastMap<EdgeKey, u64>,
    dirty: bool,
}

/// How many candidate addresses an allocation tries (the bound of the search per new source).
pub(crate) const PROBES: u32 = 16;

impl SourceMap {
    /// An empty map over the configured pools, with a new random secret.
    pub fn new(cfg: &NatConfig) -> Self {
        let mut secret = [0u8; 32];
        if getrandom::fill(&mut secret).is_err() {
            // No randomness: addresses stay distinct and stable, only guessable.
            log::warn!("no random secret for the pool addresses");
        }
        Self::with_secret(cfg, secret)
    }

    /// An empty map with a given secret.
    pub(crate) fn with_secret(cfg: &NatConfig, secret: [u8; 32]) -> Self {
        SourceMap {
            v4: Pool { net: cfg.pool_v4 },
            v6: cfg.pool_v6.map(|net| Pool { net }),
            secret,
            idle: cfg.idle_secs,
            max_clients: cfg.max_clients.max(1),
            fwd: FastMap::default(),
            rev: FastMap::default(),
            clients: FastMap::default(),
            full_until: FastMap::default(),
            dirty: false,
        }
    }

    /// Number of live mappings.
    pub(crate) fn len(&self) -> usize {
        self.fwd.len()
    }

    /// True when no mapping exists.
    pub(crate) fn is_empty(&self) -> bool {
        self.fwd.is_empty()
    }

    /// Changes `max_clients` (for new clients; those above it keep their address).
    pub(crate) fn set_max_clients(&mut self, n: usize) {
        self.max_clients = n.max(1);
        self.full_until.clear();
    }

    /// How many client addresses an edge holds.
    pub(crate) fn clients_of(&self, edge: &EdgeKey) -> usize {
        self.clients.get(edge).map_or(0, Vec::len)
    }

    /// Whether a mapping was made or dropped since the last [`SourceMap::take_dirty`].
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Edge -> internet: rewrites the source of `pkt` (an IP packet from `edge`) to its pool
    /// address, allocating one on first sight. Returns the pool address.
    pub fn outbound(
        &mut self,
        edge: &EdgeKey,
        pkt: &mut PacketMut<'_>,
        now: u64,
    ) -> std::result::Result<IpAddr, MapError> {
        let client = pkt.info().src;
        let mapped = match self.fwd.get(&(*edge, client)) {
            Some(m) => *m,
            None => self.allocate(edge, client, now)?,
        };
        if let Some(e) = self.rev.get_mut(&mapped) {
            e.last = now;
        }
        pkt.set_addr(Field::Src, mapped)
            .map_err(|_| MapError::Malformed)?;
        Ok(mapped)
    }

    /// Internet -> edge: if the destination of `pkt` is a pool address in use, restores the
    /// client's address and returns the edge to send it to.
    pub fn inbound(&mut self, pkt: &mut PacketMut<'_>, now: u64) -> Option<EdgeKey> {
        let e = self.rev.get_mut(&pkt.info().dst)?;
        e.last = now;
        let (edge, client) = (e.edge, e.client);
        pkt.set_addr(Field::Dst, client).ok()?;
        Some(edge)
    }

    /// Whether `a` is in one of the pools.
    pub(crate) fn in_pool(&self, a: IpAddr) -> bool {
        self.v4.net.contains(a) || self.v6.as_ref().is_some_and(|p| p.net.contains(a))
    }

    /// Drops every mapping of an edge (it is no longer configured).
    pub(crate) fn forget_edge(&mut self, edge: &EdgeKey) {
        for c in self.clients.remove(edge).unwrap_or_default() {
            if let Some(m) = self.fwd.remove(&(*edge, c)) {
                self.rev.remove(&m);
            }
        }
        self.full_until.remove(edge);
        self.dirty = true;
    }

    /// The `i`th candidate address of a client.
    fn candidate(&self, pool: &Pool, edge: &EdgeKey, client: IpAddr, i: u32) -> IpAddr {
        use blake2::{Blake2s256, Digest};
        let mut h = Blake2s256::new();
        h.update(self.secret);
        h.update(edge);
        match client {
            IpAddr::V4(a) => h.update(a.octets()),
            IpAddr::V6(a) => h.update(a.octets()),
        }
        h.update(i.to_be_bytes());
        let d = h.finalize();
        let n = u128::from_be_bytes(d[..16].try_into().expect("32-byte digest"));
        pool.nth(n % pool.size())
    }

    fn remove(&mut self, addr: IpAddr) {
        if let Some(e) = self.rev.remove(&addr) {
            self.fwd.remove(&(e.edge, e.client));
            if let Some(v) = self.clients.get_mut(&e.edge) {
                v.retain(|c| *c != e.client);
                if v.is_empty() {
                    self.clients.remove(&e.edge);
                }
            }
            self.full_until.remove(&e.edge);
            self.dirty = true;
        }
    }

    fn insert(&mut self, addr: IpAddr, edge: &EdgeKey, client: IpAddr, now: u64) {
        self.rev.insert(
            addr,
            Entry {
                edge: *edge,
                client,
                last: now,
            },
        );
        self.fwd.insert((*edge, client), addr);
        self.clients.entry(*edge).or_default().push(client);
        self.dirty = true;
    }

    fn allocate(
        &mut self,
        edge: &EdgeKey,
        client: IpAddr,
        now: u64,
    ) -> std::result::Result<IpAddr, MapError> {
        if !client.is_ipv4() && self.v6.is_none() {
            return Err(MapError::NoPool);
        }
        if self.clients_of(edge) >= self.max_clients {
            self.reclaim(edge, now)?;
        }
        let pool = match &self.v6 {
            Some(p) if !client.is_ipv4() => p,
            _ => &self.v4,
        };
        let idle = self.idle;
        let mut free = None;
        for i in 0..PROBES {
            let cand = self.candidate(pool, edge, client, i);
            match self.rev.get(&cand) {
                None => {
                    free = Some(cand);
                    break;
                }
                Some(e) if now.saturating_sub(e.last) >= idle => {
                    free = Some(cand);
                    break;
                }
                Some(_) => {}
            }
        }
        let cand = free.ok_or(MapError::PoolExhausted)?;
        self.remove(cand);
        self.insert(cand, edge, client, now);
        Ok(cand)
    }

    /// An edge at its limit gives back its longest-idle address if it is idle; otherwise the
    /// new client is refused, and no scan is tried again before the first could be idle.
    fn reclaim(&mut self, edge: &EdgeKey, now: u64) -> std::result::Result<(), MapError> {
        if self.full_until.get(edge).is_some_and(|t| now < *t) {
            return Err(MapError::EdgeLimit);
        }
        let mut oldest: Option<(u64, IpAddr)> = None;
        for c in self.clients.get(edge).map_or(&[][..], Vec::as_slice) {
            let Some(a) = self.fwd.get(&(*edge, *c)) else {
                continue;
            };
            let last = self.rev.get(a).map_or(0, |e| e.last);
            match oldest {
                Some((l, _)) if l <= last => {}
                _ => oldest = Some((last, *a)),
            }
        }
        match oldest {
            Some((last, a)) if now.saturating_sub(last) >= self.idle => {
                self.remove(a);
                Ok(())
            }
            Some((last, _)) => {
                self.full_until
                    .insert(*edge, last.saturating_add(self.idle));
                Err(MapError::EdgeLimit)
            }
            None => Err(MapError::EdgeLimit),
        }
    }

    /// The secret and the live mappings, as lines of the core's state file:
    /// `nat_secret HEX` and `nat POOL-ADDRESS EDGE-KEY-HEX CLIENT-ADDRESS`.
    pub(crate) fn to_text(&self) -> String {
        let mut s = format!("nat_secret {}\n", hex(&self.secret));
        let mut v: Vec<_> = self.rev.iter().collect();
        v.sort_by_key(|(a, _)| **a);
        for (a, e) in v {
            s.push_str(&format!("nat {a} {} {}\n", hex(&e.edge), e.client));
        }
        s
    }

    /// A map from a state file's text ([`SourceMap::to_text`]): its secret and mappings (those
    /// in the configured pools; each counts as just used). `None` without a valid secret.
    pub(crate) fn from_text(cfg: &NatConfig, text: &str, now: u64) -> Option<SourceMap> {
        let secret = text
            .lines()
            .filter_map(|l| l.strip_prefix("nat_secret "))
            .find_map(|h| unhex::<32>(h.trim()))?;
        let mut m = SourceMap::with_secret(cfg, secret);
        for l in text.lines() {
            let mut w = l.split_whitespace();
            if w.next() != Some("nat") {
                continue;
            }
            let (Some(a), Some(k), Some(c)) = (w.next(), w.next(), w.next()) else {
                continue;
            };
            let (Ok(a), Some(k), Ok(c)) = (a.parse::<IpAddr>(), unhex::<32>(k), c.parse()) else {
                continue;
            };
            if !m.in_pool(a) || m.rev.contains_key(&a) || m.fwd.contains_key(&(k, c)) {
                continue;
            }
            if m.clients_of(&k) < m.max_clients {
                m.insert(a, &k, c, now);
            }
        }
        m.dirty = false;
        Some(m)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::packet::golden::{checksums_ok as valid, ip4 as v4, ip6 as v6};
    use crate::proto::packet::parse;

    impl SourceMap {
        /// The pool address of a client of an edge, if mapped.
        fn mapped(&self, edge: &EdgeKey, client: IpAddr) -> Option<IpAddr> {
            self.fwd.get(&(*edge, client)).copied()
        }
    }

    const TCP: [u8; 24] = [
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5,
        0xb4,
    ];

    impl SourceMap {
        fn out(
            &mut self,
            edge: &EdgeKey,
            p: &mut [u8],
            now: u64,
        ) -> std::result::Result<IpAddr, MapError> {
            self.outbound(edge, &mut PacketMut::parse(p).unwrap(), now)
        }
        fn back(&mut self, p: &mut [u8], now: u64) -> Option<EdgeKey> {
            self.inbound(&mut PacketMut::parse(p).unwrap(), now)
        }
    }

    fn dst(p: &[u8]) -> IpAddr {
        parse(p).unwrap().dst
    }

    /// A reply from 8.8.8.8 to `to`.
    fn reply(to: IpAddr) -> Vec<u8> {
        let mut r = v4(6, [8, 8, 8, 8], [0; 4], &TCP);
        PacketMut::parse(&mut r)
            .unwrap()
            .set_addr(Field::Dst, to)
            .unwrap();
        r
    }

    const A: EdgeKey = [1; 32];
    const B: EdgeKey = [2; 32];

    #[test]
    fn two_edges_with_the_same_lan_stay_apart() {
        let cfg = NatConfig::new("bo");
        let mut m = SourceMap::new(&cfg);
        let mut a = v4(6, [192, 168, 1, 10], [8, 8, 8, 8], &TCP);
        let mut b = a.clone();
        let ma = m.out(&A, &mut a, 0).unwrap();
        let mb = m.out(&B, &mut b, 0).unwrap();
        assert_ne!(ma, mb);
        assert!(cfg.pool_v4.contains(ma) && cfg.pool_v4.contains(mb));
        assert_eq!(
            m.out(&A, &mut v4(6, [192, 168, 1, 10], [1, 1, 1, 1], &TCP), 1),
            Ok(ma)
        );
        // Replies find their edge by destination, and get the client address back.
        let mut ra = reply(ma);
        let mut rb = reply(mb);
        assert_eq!(m.back(&mut ra, 2), Some(A));
        assert_eq!(m.back(&mut rb, 2), Some(B));
        assert_eq!(dst(&ra), IpAddr::from([192, 168, 1, 10]));
        assert!(valid(&ra) && valid(&rb));
        // Unknown destination: not ours.
        let mut x = v4(6, [8, 8, 8, 8], [100, 64, 9, 9], &TCP);
        assert_eq!(m.back(&mut x, 2), None);
        m.forget_edge(&A);
        assert_eq!(m.len(), 1);
        assert_eq!(m.mapped(&A, "192.168.1.10".parse().unwrap()), None);
    }

    #[test]
    fn addresses_are_scattered_and_the_same_after_a_restart() {
        let cfg = NatConfig::new("bo");
        let mut m = SourceMap::new(&cfg);
        let mut got = Vec::new();
        for i in 0..50u8 {
            let mut p = v4(17, [10, 0, 0, i], [8, 8, 8, 8], &[0; 8]);
            got.push(m.out(&A, &mut p, 0).unwrap());
        }
        // Not handed out in order: neighbours' addresses do not follow each other.
        let in_order = got
            .windows(2)
            .filter(|w| match (w[0], w[1]) {
                (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(b) == u32::from(a) + 1,
                _ => false,
            })
            .count();
        assert!(in_order < 3, "{got:?}");
        // A restarted core reads its state: same addresses, replies find their clients at once.
        let text = m.to_text();
        assert!(m.take_dirty());
        let mut r = SourceMap::from_text(&cfg, &text, 500).unwrap();
        assert_eq!(r.len(), 50);
        let mut reply = reply(got[7]);
        assert_eq!(r.back(&mut reply, 501), Some(A));
        assert_eq!(dst(&reply), IpAddr::from([10, 0, 0, 7]));
        // Without the mappings (killed before it wrote them), the secret alone gives the same.
        let secret_only: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
        let mut s = SourceMap::from_text(&cfg, &secret_only, 0).unwrap();
        for (i, want) in got.iter().enumerate() {
            let mut p = v4(17, [10, 0, 0, i as u8], [8, 8, 8, 8], &[0; 8]);
            assert_eq!(s.out(&A, &mut p, 0).as_ref(), Ok(want));
        }
        // Another secret (another core): other addresses.
        let mut o = SourceMap::new(&cfg);
        let mut p = v4(17, [10, 0, 0, 0], [8, 8, 8, 8], &[0; 8]);
        assert_ne!(o.out(&A, &mut p, 0), Ok(got[0]));
        assert!(SourceMap::from_text(&cfg, "nat 1.2.3.4", 0).is_none());
    }

    #[test]
    fn pool_exhaustion_and_idle_reuse() {
        let mut cfg = NatConfig::new("bo");
        cfg.pool_v4 = "100.64.0.0/30".parse().unwrap(); // 2 usable
        cfg.pool_v6 = None;
        cfg.idle_secs = 10;
        let mut m = SourceMap::with_secret(&cfg, [7; 32]);
        let mut n = 0;
        for i in 0..40u8 {
            if m.out(&A, &mut v4(17, [10, 0, 0, i], [8, 8, 8, 8], &[0; 8]), 0)
                .is_ok()
            {
                n += 1;
            }
        }
        assert_eq!(n, 2, "both addresses in use");
        let mut third = v4(17, [10, 0, 0, 99], [8, 8, 8, 8], &[0; 8]);
        assert_eq!(
            m.out(&B, &mut third.clone(), 5),
            Err(MapError::PoolExhausted)
        );
        // After the idle time, an address is reused.
        assert!(m.out(&B, &mut third, 11).is_ok());
        assert_eq!(m.len(), 2);
        let mut six = v6(
            17,
            "fd00::1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            &[0; 8],
        );
        assert_eq!(m.out(&A, &mut six, 0), Err(MapError::NoPool));
        // A mapping of the other family (an edited state file) cannot be applied.
        let text = format!(
            "nat_secret {}\nnat 100.64.0.1 {} fd00::1\n",
            hex(&[7; 32]),
            hex(&A)
        );
        let mut e = SourceMap::from_text(&cfg, &text, 0).unwrap();
        let mut six = v6(
            17,
            "fd00::1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            &[0; 8],
        );
        let before = six.clone();
        assert_eq!(e.out(&A, &mut six, 0), Err(MapError::Malformed));
        assert_eq!(six, before);
    }

    #[test]
    fn one_edge_cannot_take_the_pool() {
        let mut cfg = NatConfig::new("bo");
        cfg.pool_v4 = "100.64.0.0/24".parse().unwrap();
        cfg.max_clients = 20;
        cfg.idle_secs = 100;
        let mut m = SourceMap::new(&cfg);
        let mut refused = 0;
        for i in 0..=255u8 {
            for j in [1u8, 2] {
                let mut p = v4(17, [10, j, 0, i], [8, 8, 8, 8], &[0; 8]);
                match m.out(&A, &mut p, 0) {
                    Ok(_) => {}
                    Err(e) => {
                        assert_eq!(e, MapError::EdgeLimit);
                        refused += 1;
                    }
                }
            }
        }
        assert_eq!((m.clients_of(&A), refused), (20, 512 - 20));
        // Another edge still gets addresses.
        let mut p = v4(17, [10, 1, 0, 1], [8, 8, 8, 8], &[0; 8]);
        assert!(m.out(&B, &mut p, 1).is_ok());
        // Clients in use keep theirs; once one is idle, a new client of A takes its place.
        let mut p = v4(17, [10, 1, 0, 0], [8, 8, 8, 8], &[0; 8]);
        assert!(m.out(&A, &mut p, 50).is_ok(), "a mapped client goes on");
        let mut p = v4(17, [10, 9, 9, 9], [8, 8, 8, 8], &[0; 8]);
        assert_eq!(m.out(&A, &mut p.clone(), 60), Err(MapError::EdgeLimit));
        assert!(m.out(&A, &mut p, 101).is_ok());
        // Within its limit: 20, or 19 when the new client's hashed address was another idle
        // address of A's own (reused, so that client gave its address back too; the secret is
        // random, so this happens in a few runs out of a hundred).
        assert!(
            (19..=20).contains(&m.clients_of(&A)),
            "{}",
            m.clients_of(&A)
        );
    }
}
