//! Client MAC -> address resolution for `src_mac` policies.
//!
//! The edge captures client packets from the hub, in its own namespace: the Ethernet source of
//! those frames is the router's, never the client's. What does know the client's MAC is the
//! router's neighbour table (ARP / NDP) on the LAN side. [`read_neighbours`] dumps it over
//! rtnetlink (RTM_GETNEIGH, no `ip` command); [`MacMap`] merges successive dumps into the
//! current address(es) of every MAC, keeping an entry the kernel garbage-collected for
//! [`KEEP_MS`] (a quiet client keeps its class), and dropping an address as soon as it shows up
//! under another MAC (DHCP gave it to someone else). [`NeighWatch`] subscribes to the kernel's
//! neighbour notifications, so a new or moved entry is merged as it happens, between dumps.
//! [`MacMap::table`] is what the classifier gets
//! ([`crate::classify::Classifier::set_mac_addresses`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::netlink::{parse_neigh, Family, Netlink, Socket};
use super::{Error, Result};
use crate::config::model::Mac;

/// How long an address stays mapped after it left the neighbour table.
pub(crate) const KEEP_MS: u64 = 60_000;

const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_PERMANENT: u16 = 0x80;

/// Whether a neighbour entry in NUD `state` names a host that answered (or was configured):
/// not an INCOMPLETE or FAILED resolution, not a NOARP pseudo-entry.
pub(crate) fn nud_valid(state: u16) -> bool {
    state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT) != 0
}

/// The (address, MAC) pairs of every valid neighbour entry of this namespace, IPv4 and IPv6.
/// (An IPv6 dump that fails, as on a host without IPv6, counts as empty.)
pub fn read_neighbours(nl: &mut Netlink) -> Result<Vec<(IpAddr, Mac)>> {
    let mut all = nl.neighbours(Family::V4, None)?;
    all.extend(nl.neighbours(Family::V6, None).unwrap_or_default());
    Ok(all
        .into_iter()
        .filter(|n| nud_valid(n.state))
        .filter_map(|n| Some((n.addr, Mac(n.mac?))))
        .collect())
}

const RTM_NEWNEIGH: u16 = 28;
/// rtnetlink multicast group of neighbour changes.
const RTMGRP_NEIGH: u32 = 0x4;

/// A non-blocking subscription to neighbour changes (poll its fd, then [`NeighWatch::read`]).
pub struct NeighWatch {
    sock: Socket,
}

impl NeighWatch {
    /// Subscribes in the calling thread's namespace.
    pub fn open() -> Result<NeighWatch> {
        Ok(NeighWatch {
            sock: Socket::open(libc::NETLINK_ROUTE, RTMGRP_NEIGH, true)?,
        })
    }

    /// The (address, MAC) of every valid entry announced since the last call (empty when none).
    /// An error with errno ENOBUFS means notifications were lost: read the table again.
    pub fn read(&mut self) -> Result<Vec<(IpAddr, Mac)>> {
        let mut out = Vec::new();
        loop {
            let n = match self.sock.recv_raw(libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) => return Err(Error::new("read neighbour notifications", e)),
            };
            let rx = self.sock.rx();
            let mut off = 0;
            while off + 16 <= n {
                let b = &rx[off..n];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < 16 || len > b.len() {
                    break;
                }
                if u16::from_ne_bytes([b[4], b[5]]) == RTM_NEWNEIGH {
                    if let Some(nb) = parse_neigh(&b[16..len]).filter(|nb| nud_valid(nb.state)) {
                        if let Some(mac) = nb.mac {
                            out.push((nb.addr, Mac(mac)));
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }
}

fd_of_field!(NeighWatch, sock);

/// The current MAC of every LAN address seen in the neighbour table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacMap {
    /// Address -> (its MAC, when last seen in a dump, ms).
    entries: HashMap<IpAddr, (Mac, u64)>,
}

impl MacMap {
    /// Merges one dump taken at `now_ms`; only addresses `keep` accepts (the LAN sources) are
    /// recorded. Returns whether the mapping changed (an address added, moved to another MAC,
    /// or expired).
    pub fn update(
        &mut self,
        now_ms: u64,
        dump: &[(IpAddr, Mac)],
        keep: impl Fn(IpAddr) -> bool,
    ) -> bool {
        let mut changed = false;
        for &(ip, mac) in dump {
            if !keep(ip) {
                continue;
            }
            match self.entries.insert(ip, (mac, now_ms)) {
                Some((old, _)) if old == mac => {}
                _ => changed = true,
            }
        }
        let before = self.entries.len();
        self.entries
            .retain(|_, (_, seen)| now_ms.saturating_sub(*seen) <= KEEP_MS);
        changed || self.entries.len() != before
    }

    /// Whether `ip` is mapped to some MAC.
    pub(crate) fn knows(&self, ip: IpAddr) -> bool {
        self.entries.contains_key(&ip)
    }

    /// The addresses of each MAC in `wanted` that has any, sorted (the classifier's
    /// `MacAddresses`; the type is spelled out so that `os` needs nothing of `proto`).
    pub fn table(&self, wanted: &[Mac]) -> BTreeMap<Mac, Vec<IpAddr>> {
        let mut t: BTreeMap<Mac, Vec<IpAddr>> = BTreeMap::new();
        for (ip, (mac, _)) in &self.entries {
            if wanted.contains(mac) {
                t.entry(*mac).or_default().push(*ip);
            }
        }
        for v in t.values_mut() {
            v.sort();
        }
        t
    }
}

/// Two client MACs and addresses in 192.168.1.0/24, for the tests of neighbour tracking (here
/// and the edge's).
#[cfg(test)]
pub(crate) mod samples {
    use super::*;

    pub(crate) const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    pub(crate) const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);

    pub(crate) fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{ip, A, B};
    use super::*;

    impl MacMap {
        /// Number of mapped addresses.
        fn len(&self) -> usize {
            self.entries.len()
        }
    }

    fn lan(a: IpAddr) -> bool {
        matches!(a, IpAddr::V4(v) if v.octets()[..3] == [192, 168, 1])
    }

    #[test]
    fn nud_states() {
        for s in [0x02, 0x04, 0x08, 0x10, 0x80, 0x04 | 0x80] {
            assert!(nud_valid(s), "{s:#x}");
        }
        for s in [0x00, 0x01, 0x20, 0x40] {
            assert!(!nud_valid(s), "{s:#x}");
        }
    }

    #[test]
    fn merge_maps_each_mac_to_its_current_addresses() {
        let mut m = MacMap::default();
        let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 0x10]);
        let lan6 = |a: IpAddr| lan(a) || a == v6;
        let dump = [
            (ip(10), A),
            (ip(11), B),
            (v6, A),
            (IpAddr::from([10, 0, 0, 1]), A), // WAN side: not a client
        ];
        assert!(m.update(0, &dump, lan6));
        assert_eq!(m.len(), 3);
        assert!(!m.knows(IpAddr::from([10, 0, 0, 1])));
        let t = m.table(&[A]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[&A], vec![ip(10), v6]);
        assert_eq!(m.table(&[A, B])[&B], vec![ip(11)]);
        assert!(m.table(&[Mac([2, 0, 0, 0, 0, 0xc])]).is_empty());

        // The same dump again changes nothing.
        assert!(!m.update(1000, &dump, lan6));
        // An address handed to another MAC moves at once.
        assert!(m.update(2000, &[(ip(10), B)], lan6));
        assert_eq!(m.table(&[A, B])[&B], vec![ip(10), ip(11)]);
        assert_eq!(m.table(&[A])[&A], vec![v6]);
        // An entry gone from the kernel's table is kept for KEEP_MS after it was last seen.
        assert!(!m.update(1000 + KEEP_MS, &[(ip(10), B)], lan6));
        assert!(m.knows(ip(11)) && m.knows(v6));
        assert!(m.update(1001 + KEEP_MS, &[(ip(10), B)], lan6));
        assert!(!m.knows(ip(11)) && !m.knows(v6));
        assert!(m.table(&[A]).is_empty());
        assert_eq!(m.table(&[B])[&B], vec![ip(10)]);
    }
}
