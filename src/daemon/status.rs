//! What both daemons' `braid status` builds the same way: the packets of each traffic class
//! (counted as classified, carried by class name across a reload) and the busiest clients.

use crate::classify::ClassId;
use crate::config::model::{self, Class};
use crate::control::{ClassStatus, UserStatus};
use crate::daemon::users::UserTable;

/// How many clients `braid status` lists per session (the ones with the most bytes).
pub(crate) const TOP_USERS: usize = 10;

/// Packets classified into each class, by [`ClassId`] (the edge counts its upstream, the core
/// each session's downstream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClassCounts {
    packets: Vec<u64>,
}

impl ClassCounts {
    /// One packet of `class`.
    pub(crate) fn count(&mut self, class: ClassId) {
        let i = usize::from(class);
        if i >= self.packets.len() {
            self.packets.resize(i + 1, 0);
        }
        self.packets[i] += 1;
    }

    /// The packets of class number `i` so far.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.packets.get(i).copied().unwrap_or(0)
    }

    /// After a reload: each class of `new` keeps the count of the class of the same name in
    /// `old` (a new class starts at 0; a removed one is forgotten).
    pub(crate) fn carry(&mut self, old: &[Class], new: &[Class]) {
        self.packets = new
            .iter()
            .map(|c| {
                old.iter()
                    .position(|o| o.name == c.name)
                    .map_or(0, |i| self.get(i))
            })
            .collect();
    }

    /// The classes as `braid status` lists them, with their counts.
    pub(crate) fn rows(&self, classes: &[Class]) -> Vec<ClassStatus> {
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| ClassStatus {
                name: c.name.clone(),
                mode: model::mode_name(&c.mode),
                priority: c.priority,
                packets: self.get(i),
            })
            .collect()
    }
}

/// The [`TOP_USERS`] clients with the most bytes, as `braid status` lists them.
pub(crate) fn user_rows(users: &UserTable) -> Vec<UserStatus> {
    users
        .top(TOP_USERS)
        .into_iter()
        .map(|u| UserStatus {
            address: u.address.to_string(),
            tx_bytes: u.tx_bytes,
            rx_bytes: u.rx_bytes,
            flows: u.flows,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> Vec<Class> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Class {
                name: n.to_string(),
                mode: if i == 1 {
                    model::Mode::Redundant
                } else {
                    model::Mode::Aggregate
                },
                link: None,
                priority: i as u8,
                weight: 100,
            })
            .collect()
    }

    #[test]
    fn counts_follow_their_class_names_across_a_reload() {
        let old = classes(&["default", "voip", "bulk"]);
        let mut c = ClassCounts::default();
        c.count(0);
        c.count(2);
        c.count(2);
        assert_eq!((c.get(0), c.get(1), c.get(2), c.get(9)), (1, 0, 2, 0));
        let rows = c.rows(&old);
        assert_eq!(
            rows.iter()
                .map(|r| (r.name.as_str(), r.packets))
                .collect::<Vec<_>>(),
            [("default", 1), ("voip", 0), ("bulk", 2)]
        );
        // voip goes, bulk moves to the front, video is new.
        let new = classes(&["bulk", "default", "video"]);
        c.carry(&old, &new);
        assert_eq!((c.get(0), c.get(1), c.get(2)), (2, 1, 0));
        let rows = c.rows(&new);
        assert_eq!((rows[0].name.as_str(), rows[0].priority), ("bulk", 0));
        assert_eq!(rows[1].mode, model::mode_name(&model::Mode::Redundant));
    }

    #[test]
    fn the_busiest_clients_are_listed_first_and_at_most_ten() {
        let mut t = UserTable::default();
        for i in 0..12u8 {
            let a = std::net::IpAddr::from([192, 168, 1, i]);
            t.up(a, u32::from(i), 100 * usize::from(i) + 1);
        }
        let rows = user_rows(&t);
        assert_eq!(rows.len(), TOP_USERS);
        assert_eq!(rows[0].address, "192.168.1.11");
        assert_eq!(
            (rows[0].tx_bytes, rows[0].rx_bytes, rows[0].flows),
            (1101, 0, 1)
        );
    }
}
