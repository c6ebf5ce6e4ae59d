//! Per-user accounting for `braid status`: bytes each way and active flows, bounded in memory.
//!
//! A user is a client address. Flows are counted as distinct flow hashes seen in the current
//! window ([`UserTable::roll`] starts a new one; the edge rolls every 30 s), so the figure is
//! "flows active lately", not a lifetime total. At most [`MAX_USERS`] users and
//! [`MAX_FLOWS_PER_USER`] flows each are tracked; past that the quietest user is forgotten.

use crate::proto::fasthash::{FastMap, FastSet};
use std::net::IpAddr;

/// Users tracked at most.
pub(crate) const MAX_USERS: usize = 1024;
/// Flows counted per user and window at most.
pub(crate) const MAX_FLOWS_PER_USER: usize = 256;

#[derive(Debug, Default, Clone)]
struct User {
    tx: u64,
    rx: u64,
    flows: FastSet<u32>,
    last_flows: usize,
}

/// The table. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct UserTable {
    /// Looked up twice per packet: a [`FastMap`], not SipHash.
    users: FastMap<IpAddr, User>,
    /// Users and flows per user counted at most (the memory budget's, or the defaults).
    max_users: usize,
    max_flows: usize,
    /// Bytes of every user each way, forgotten users included.
    tx_total: u64,
    rx_total: u64,
}

/// One row of [`UserTable::top`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) address: IpAddr,
    pub(crate) tx_bytes: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) flows: u32,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable::with_limits(MAX_USERS, MAX_FLOWS_PER_USER)
    }
}

impl UserTable {
    /// A table counting at most `users` users and `flows` flows for each (at least 1 each).
    pub(crate) fn with_limits(users: usize, flows: usize) -> UserTable {
        UserTable {
            users: FastMap::default(),
            max_users: users.max(1),
            max_flows: flows.max(1),
            tx_total: 0,
            rx_total: 0,
        }
    }

    fn user(&mut self, a: IpAddr) -> &mut User {
        if !self.users.contains_key(&a) && self.users.len() >= self.max_users {
            if let Some(quiet) = self
                .users
                .iter()
                .min_by_key(|(_, u)| u.tx + u.rx)
                .map(|(k, _)| *k)
            {
                self.users.remove(&quiet);
            }
        }
        self.users.entry(a).or_default()
    }

    /// A packet from `user` (going up) of `bytes`, in flow `flow`.
    pub(crate) fn up(&mut self, user: IpAddr, flow: u32, bytes: usize) {
        self.tx_total += bytes as u64;
        let max_flows = self.max_flows;
        let u = self.user(user);
        u.tx += bytes as u64;
        if u.flows.len() < max_flows {
            u.flows.insert(flow);
        }
    }

    /// A packet to `user` (coming down) of `bytes`.
    pub(crate) fn down(&mut self, user: IpAddr, bytes: usize) {
        self.rx_total += bytes as u64;
        self.user(user).rx += bytes as u64;
    }

    /// Bytes of all users up and down since the table was made (the bonded traffic).
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.tx_total, self.rx_total)
    }

    /// Starts a new flow-counting window.
    pub(crate) fn roll(&mut self) {
        for u in self.users.values_mut() {
            u.last_flows = u.flows.len();
            // A new set, not `clear`: a set keeps its capacity, and a busy window's would stay.
            u.flows = FastSet::default();
        }
    }

    /// The `n` users with the most bytes, most first.
    pub(crate) fn top(&self, n: usize) -> Vec<UserRow> {
        let mut rows: Vec<UserRow> = self
            .users
            .iter()
            .map(|(a, u)| UserRow {
                address: *a,
                tx_bytes: u.tx,
                rx_bytes: u.rx,
                flows: u.flows.len().max(u.last_flows) as u32,
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.tx_bytes + b.rx_bytes)
                .cmp(&(a.tx_bytes + a.rx_bytes))
                .then(a.address.cmp(&b.address))
        });
        rows.truncate(n);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, n])
    }

    #[test]
    fn counts_bytes_and_flows_and_ranks_users() {
        let mut t = UserTable::default();
        t.up(ip(1), 7, 1000);
        t.up(ip(1), 8, 1000);
        t.up(ip(1), 7, 500);
        t.down(ip(1), 3000);
        t.up(ip(2), 9, 100);
        let top = t.top(10);
        assert_eq!(
            top[0],
            UserRow {
                address: ip(1),
                tx_bytes: 2500,
                rx_bytes: 3000,
                flows: 2
            }
        );
        assert_eq!(top[1].address, ip(2));
        assert_eq!(t.top(1).len(), 1);
        t.roll();
        assert_eq!(
            t.top(1)[0].flows,
            2,
            "the last window's count stays until the new one is larger"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut t = UserTable::default();
        for i in 0..(MAX_USERS as u32 + 50) {
            t.up(IpAddr::from(i.to_be_bytes()), i, 10 + i as usize);
        }
        assert_eq!(t.users.len(), MAX_USERS);
        for f in 0..1000 {
            t.up(ip(9), f, 1);
        }
        assert_eq!(
            t.top(MAX_USERS)
                .iter()
                .find(|r| r.address == ip(9))
                .unwrap()
                .flows,
            MAX_FLOWS_PER_USER as u32
        );
    }

    /// The budget's limits hold, and a window's flow sets give their memory back on `roll`.
    #[test]
    fn limits_hold_and_roll_gives_memory_back() {
        let mut t = UserTable::with_limits(20, 8);
        for i in 0..100u32 {
            for f in 0..50 {
                t.up(IpAddr::from(i.to_be_bytes()), f, 1);
            }
        }
        assert_eq!(t.users.len(), 20);
        assert!(t.users.values().all(|u| u.flows.len() == 8));
        let mut big = UserTable::default();
        for f in 0..200 {
            big.up(ip(1), f, 1);
        }
        assert!(big.users[&ip(1)].flows.capacity() >= 200);
        big.roll();
        big.up(ip(1), 1, 1);
        assert!(
            big.users[&ip(1)].flows.capacity() < 16,
            "the big window's set is gone"
        );
        assert_eq!(big.top(1)[0].flows, 200, "its count stays");
    }

    #[test]
    fn totals_keep_the_bytes_of_forgotten_users() {
        let mut t = UserTable::default();
        let n = MAX_USERS as u32 + 10;
        for i in 0..n {
            t.up(IpAddr::from(i.to_be_bytes()), i, 100);
            t.down(IpAddr::from(i.to_be_bytes()), 7);
        }
        assert_eq!(t.users.len(), MAX_USERS);
        assert_eq!(t.totals(), (u64::from(n) * 100, u64::from(n) * 7));
    }
}
