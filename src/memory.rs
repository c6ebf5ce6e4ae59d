//! The memory budget applied: the daemons' settings from [`crate::config::budget`]'s bounds.
//!
//! `config::budget` derives the bounds (pure, no dependency on the rest); this module turns
//! them into the protocol's and the tables' settings, so the daemons construct with one call
//! each.
#![forbid(unsafe_code)]

use crate::config::budget::{Bounds, SessionBounds};
use crate::daemon::users::UserTable;
use crate::proto::reorder::ReorderConfig;
use crate::proto::session::SessionConfig;

/// A session's settings within `b`, for packets of at most `max_packet` bytes.
pub(crate) fn session_config(b: &SessionBounds, max_packet: usize) -> SessionConfig {
    let d = SessionConfig::default();
    SessionConfig {
        per_user_queue_bytes: b.per_user_queue_bytes,
        total_queue_bytes: b.queue_bytes,
        max_packet,
        max_stored_packets: b.stored_packets,
        max_flows: b.flows,
        reorder: ReorderConfig {
            max_packets: b.reorder_packets,
            max_bytes: b.reorder_bytes,
            ..d.reorder
        },
        ..d
    }
}

/// A user table within `b`.
pub(crate) fn user_table(b: &SessionBounds) -> UserTable {
    UserTable::with_limits(b.users, b.flows_per_user)
}

/// The log line saying what the budget gives (once, at start).
pub(crate) fn describe(what: &str, budget: u64, b: &Bounds, max_packet: usize) -> String {
    let s = &b.session;
    let mib = |v: u64| format!("{:.1} MiB", v as f64 / f64::from(1u32 << 20));
    format!(
        "memory {} ({what}): {} packets stored ({}), reorder {} packets ({}), {} flows, {} users \
         per session{}; ingress {}, capture {}, TCP send queues {} ({} per link)",
        crate::config::budget::show(budget),
        s.stored_packets,
        mib(s.stored_packets as u64 * max_packet as u64),
        s.reorder_packets,
        mib(s.reorder_bytes as u64),
        s.flows,
        s.users,
        if b.sessions > 1 {
            format!(" x {} sessions", b.sessions)
        } else {
            String::new()
        },
        mib(b.ingress_bytes as u64),
        mib(b.capture_bytes as u64),
        mib(b.tcp_send_bytes as u64),
        mib(b.tcp_send_per_link as u64),
    )
}

pub(crate) use crate::os::release_free_heap;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::budget::Budget;

    #[test]
    fn the_session_gets_every_bound() {
        let b = Budget { bytes: 8 << 20 }.edge(1400);
        let c = session_config(&b.session, 1400);
        assert_eq!(c.max_stored_packets, b.session.stored_packets);
        assert_eq!(c.total_queue_bytes, b.session.queue_bytes);
        assert_eq!(c.per_user_queue_bytes, b.session.per_user_queue_bytes);
        assert_eq!(c.reorder.max_bytes, b.session.reorder_bytes);
        assert_eq!(c.reorder.max_packets, b.session.reorder_packets);
        assert_eq!(c.max_flows, b.session.flows);
        assert_eq!(c.max_packet, 1400);
        let line = describe("edge", 8 << 20, &b, 1400);
        assert!(line.starts_with("memory 8M (edge): "), "{line}");
    }
}
