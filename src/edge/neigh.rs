//! Neighbour tracking for `src_mac` policies, as a plain struct: which client addresses each
//! policy MAC has now, and when the neighbour table is worth reading again.
//!
//! The edge's loop does the netlink I/O ([`crate::os::neigh::read_neighbours`], the
//! [`crate::os::neigh::NeighWatch`] subscription) and feeds what it got to [`Neighbours`]:
//! [`Neighbours::packet`] for every client packet (a source it does not know yet asks for an
//! early read), [`Neighbours::poll_read`] on every tick (whether to read the table now),
//! [`Neighbours::dumped`] / [`Neighbours::read_failed`] with the result, and
//! [`Neighbours::announced`] for the kernel's notifications. What changed comes back as the
//! classifier's new table ([`MacAddresses`]); `None` means nothing to do.

use std::net::IpAddr;
use std::time::Duration;

use crate::classify::MacAddresses;
use crate::config::model::{Cidr, Mac};
use crate::os::neigh::MacMap;

/// How often the neighbour table is read for `src_mac` policies.
pub(crate) const MACS_EVERY: Duration = Duration::from_secs(5);
/// ... and how soon after a packet from a LAN address not in it yet.
pub(crate) const MACS_MISS_EVERY: Duration = Duration::from_secs(1);

/// The MACs the policies name, their current LAN addresses, and the read schedule.
#[derive(Debug, Default)]
pub(crate) struct Neighbours {
    /// Every MAC a `src_mac` policy names (empty: nothing to track, nothing read).
    wanted: Vec<Mac>,
    /// The client subnets (`option lan`): only their addresses are mapped (empty: any).
    lan: Vec<Cidr>,
    map: MacMap,
    /// When the table was last read (time since the daemon started).
    read_at: Option<Duration>,
    /// A client address not in the map sent a packet: read again after [`MACS_MISS_EVERY`].
    miss: bool,
    /// The last read worked (a table is there to miss from; after a failure the next regular
    /// read retries, and packets do not hurry it).
    reading: bool,
}

impl Neighbours {
    /// Takes the policies' MACs and the LAN subnets (at start and on every reload). The caller
    /// then reads the table at once ([`Neighbours::poll_read`] with `force`).
    pub(crate) fn configure(&mut self, wanted: Vec<Mac>, lan: Vec<Cidr>) {
        self.wanted = wanted;
        self.lan = lan;
    }

    /// How many MACs the policies name.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted.len()
    }

    /// A client packet from `src`: an address the table did not have asks for an early read.
    pub(crate) fn packet(&mut self, src: IpAddr) {
        if !self.miss && self.reading && !self.map.knows(src) {
            self.miss = true;
        }
    }

    /// Whether to read the neighbour table at `now` (time since start): every [`MACS_EVERY`],
    /// sooner ([`MACS_MISS_EVERY`]) after a miss, and at once when `force`d (start, reload).
    /// Never while no policy names a MAC (what was mapped is then forgotten). A `true` counts
    /// as the read: the caller reads, then calls [`Neighbours::dumped`] or
    /// [`Neighbours::read_failed`].
    pub(crate) fn poll_read(&mut self, now: Duration, force: bool) -> bool {
        if self.wanted.is_empty() {
            self.map = MacMap::default();
            self.miss = false;
            return false;
        }
        let due = match self.read_at.map(|t| now.saturating_sub(t)) {
            None => true,
            Some(s) => s >= MACS_EVERY || (self.miss && s >= MACS_MISS_EVERY),
        };
        if !force && !due {
            return false;
        }
        self.read_at = Some(now);
        self.miss = false;
        true
    }

    /// The table as read at `now`: the classifier's new table when a mapping changed, or
    /// whatever changed when `force`d (the classifier was made anew).
    pub(crate) fn dumped(
        &mut self,
        now: Duration,
        dump: &[(IpAddr, Mac)],
        force: bool,
    ) -> Option<MacAddresses> {
        self.reading = true;
        let changed = self.merge(now, dump);
        (changed || force).then(|| self.map.table(&self.wanted))
    }

    /// The table could not be read (or netlink not opened).
    pub(crate) fn read_failed(&mut self) {
        self.reading = false;
    }

    /// Entries the kernel announced at `now`: the classifier's new table when one moved.
    pub(crate) fn announced(
        &mut self,
        now: Duration,
        seen: &[(IpAddr, Mac)],
    ) -> Option<MacAddresses> {
        if self.wanted.is_empty() || seen.is_empty() {
            return None;
        }
        self.merge(now, seen).then(|| self.map.table(&self.wanted))
    }

    fn merge(&mut self, now: Duration, seen: &[(IpAddr, Mac)]) -> bool {
        let lan = &self.lan;
        let now_ms = now.as_millis() as u64;
        self.map.update(now_ms, seen, |a| {
            lan.is_empty() || lan.iter().any(|c| c.contains(a))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::neigh::samples::{ip, A, B};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Tracking `wanted` in 192.168.1.0/24, after the forced read at start.
    fn started(wanted: Vec<Mac>) -> Neighbours {
        let mut n = Neighbours::default();
        let lan = Cidr::new(IpAddr::from([192, 168, 1, 0]), 24).unwrap();
        n.configure(wanted, vec![lan]);
        assert!(n.poll_read(secs(0.0), true));
        n
    }

    #[test]
    fn reads_every_five_seconds_and_a_second_after_a_miss() {
        let mut n = started(vec![A]);
        assert_eq!(n.dumped(secs(0.0), &[(ip(10), A)], true).unwrap().len(), 1);
        assert!(!n.poll_read(secs(0.5), false));
        assert!(!n.poll_read(secs(4.9), false));
        assert!(n.poll_read(secs(5.0), false));
        n.dumped(secs(5.0), &[(ip(10), A)], false);
        // A known client hurries nothing; an unknown one does, after a second.
        n.packet(ip(10));
        assert!(!n.poll_read(secs(6.5), false));
        n.packet(ip(11));
        assert!(!n.poll_read(secs(5.9), false));
        assert!(n.poll_read(secs(6.0), false));
        // The miss was spent on that read.
        assert!(!n.poll_read(secs(7.5), false));
        // Forced: at once, whatever the schedule.
        assert!(n.poll_read(secs(7.6), true));
    }

    #[test]
    fn a_failed_read_is_not_hurried_by_packets() {
        let mut n = started(vec![A]);
        n.read_failed();
        n.packet(ip(11));
        assert!(!n.poll_read(secs(1.5), false));
        assert!(n.poll_read(secs(5.0), false));
    }

    #[test]
    fn without_policy_macs_nothing_is_read_and_the_map_is_forgotten() {
        let mut n = started(vec![A]);
        n.dumped(secs(0.0), &[(ip(10), A)], true);
        n.configure(Vec::new(), Vec::new());
        assert_eq!(n.wanted(), 0);
        assert!(!n.poll_read(secs(10.0), true));
        assert_eq!(n.announced(secs(10.0), &[(ip(10), A)]), None);
        n.configure(vec![A], Vec::new());
        // Forgotten: the first dump maps it again, a change.
        assert!(n.poll_read(secs(11.0), false));
        let t = n.dumped(secs(11.0), &[(ip(10), A)], false).unwrap();
        assert_eq!(t.get(&A), Some(&vec![ip(10)]));
    }

    #[test]
    fn the_classifier_gets_a_table_only_when_a_mapping_changed() {
        let mut n = started(vec![A, B]);
        let t = n
            .dumped(
                secs(0.0),
                &[(ip(10), A), (IpAddr::from([10, 0, 0, 1]), B)],
                false,
            )
            .unwrap();
        // The WAN side is not a client.
        assert_eq!(t.get(&A), Some(&vec![ip(10)]));
        assert_eq!(t.get(&B), None);
        assert_eq!(n.dumped(secs(5.0), &[(ip(10), A)], false), None);
        // Forced (start, reload): the table even when nothing changed.
        assert!(n.dumped(secs(6.0), &[(ip(10), A)], true).is_some());
        // The kernel announces the address under another MAC (DHCP gave it to B).
        let t = n.announced(secs(7.0), &[(ip(10), B)]).unwrap();
        assert_eq!((t.get(&A), t.get(&B)), (None, Some(&vec![ip(10)])));
        assert_eq!(n.announced(secs(7.5), &[(ip(10), B)]), None);
        assert_eq!(n.announced(secs(7.5), &[]), None);
    }
}
