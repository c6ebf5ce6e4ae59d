//! What both daemons' `braid status` builds the same way: the packets of each traffic class
//! (counted as classified, carried by class name across a reload), the busiest clients and the
//! rows of the links.

use std::hash::Hash;
use std::time::Instant;

use crate::classify::ClassId;
use crate::config::model::{self, Class};
use crate::control::{ClassStatus, LinkStatus, Meter, UserStatus};
use crate::daemon::users::UserTable;
use crate::proto::wire::LinkRole;
use crate::proto::LinkId;

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

/// One link's row of `braid status`, the columns both daemons fill alike. Each daemon adds its
/// own to the row [`LinkRow::status`] returns: the edge its device, why the link waits and
/// its quota; the core the edge's address.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinkRow {
    /// Edge: the config section; core: the name the edge gave ([`core_link_name`]).
    pub(crate) name: String,
    pub(crate) id: LinkId,
    /// "udp" or "tcp".
    pub(crate) transport: &'static str,
    /// As `braid status` prints it ("up", "down", ..., edge also "admin-down", "waiting").
    pub(crate) state: &'static str,
    /// The role in effect.
    pub(crate) role: LinkRole,
}

impl LinkRow {
    /// The row: `figures` are the session's for the link ([`LinkStatus::figures`], or all
    /// zero while the session has not got it); the rates and the time in state are what
    /// `meter` measured under `key` up to `now`, from the figures' byte counters.
    pub(crate) fn status<K: Hash + Eq + Clone>(
        self,
        figures: LinkStatus,
        meter: &Meter<K>,
        key: &K,
        now: Instant,
    ) -> LinkStatus {
        let m = meter.read(key, now, figures.tx_bytes, figures.rx_bytes, self.state);
        LinkStatus {
            name: self.name,
            id: self.id,
            transport: self.transport.into(),
            state: self.state.into(),
            state_s: m.state_s,
            role: self.role.name().into(),
            tx_bps: m.tx_bps,
            rx_bps: m.rx_bps,
            ..figures
        }
    }
}

/// The core's name for an edge's link: the one the edge told (`LinkName`), else `link<id>`.
pub(crate) fn core_link_name(told: Option<&str>, id: LinkId) -> String {
    told.map_or_else(|| format!("link{id}"), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_link_row_has_its_figures_the_measured_rates_and_the_time_in_state() {
        let t0 = Instant::now();
        let mut meter = Meter::new();
        meter.sample(3u8, t0, 1_000, 2_000, "up");
        let figures = LinkStatus {
            rtt_ms: 41.5,
            loss_pct: 0.5,
            pacing_bps: 9_000_000,
            tx_bytes: 1_000 + 250_000,
            rx_bytes: 2_000 + 500_000,
            ..Default::default()
        };
        let row = LinkRow {
            name: "wan2".into(),
            id: 3,
            transport: "tcp",
            state: "up",
            role: LinkRole::Backup,
        };
        let now = t0 + Duration::from_secs(2);
        let s = row.clone().status(figures.clone(), &meter, &3, now);
        assert_eq!(
            s,
            LinkStatus {
                name: "wan2".into(),
                id: 3,
                transport: "tcp".into(),
                state: "up".into(),
                state_s: 2,
                role: "backup".into(),
                tx_bps: 1_000_000,
                rx_bps: 2_000_000,
                ..figures.clone()
            }
        );
        // A state other than the one sampled has only just begun; a link never sampled has
        // no rates yet.
        let down = LinkRow {
            state: "down",
            ..row.clone()
        };
        assert_eq!(down.status(figures.clone(), &meter, &3, now).state_s, 0);
        let unsampled = row.status(figures, &meter, &4, now);
        assert_eq!((unsampled.tx_bps, unsampled.state_s), (0, 0));
    }

    #[test]
    fn the_core_names_a_link_as_the_edge_told_or_by_its_id() {
        assert_eq!(core_link_name(Some("lte1"), 2), "lte1");
        assert_eq!(core_link_name(None, 2), "link2");
    }

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
