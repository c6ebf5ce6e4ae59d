//! Data order: lost packets are resent ahead of new data, on the link where they arrive first.
//!
//! The queue holds packets declared lost (by a link's loss detection, its timeout, or its
//! removal). The session drains it before asking the connection-order scheduler for new data,
//! placing each packet at the head of the chosen link's queue with its original `seq`.

use std::collections::VecDeque;

use super::{LinkView, PktId};
use crate::proto::LinkId;

/// At most this many resends per packet; beyond that it is dropped and counted.
pub(crate) const MAX_RESENDS: u8 = 4;

#[derive(Debug, Default)]
pub(crate) struct ResendQueue {
    q: VecDeque<(PktId, Option<LinkId>)>,
}

impl ResendQueue {
    pub(crate) fn new() -> ResendQueue {
        ResendQueue {
            q: VecDeque::with_capacity(64),
        }
    }

    /// Queues `pkt`, lost on `lost_on` (None: not tied to a link, e.g. link removed).
    pub(crate) fn push(&mut self, pkt: PktId, lost_on: Option<LinkId>) {
        self.q.push_back((pkt, lost_on));
    }

    pub(crate) fn pop(&mut self) -> Option<(PktId, Option<LinkId>)> {
        self.q.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

/// The link for a resend: the earliest expected arrival behind the link's priority and resend
/// tiers, preferring primaries and secondaries over backups. The link it was lost on counts
/// one extra one-way delay (a link that just lost a packet may be losing more), so another
/// link is preferred unless it is that much later; it is not excluded, because a slow or
/// stalled other link would hold the hole longer than the receiver waits. `allowed` filters
/// links the packet's class may not use.
///
/// Like new data, a resend is only handed to a link while its expected arrival is within the
/// horizon (see [`super::path`]); otherwise it is `None` and the packet stays in the resend
/// queue, for whichever link frees up first: a link that stalls must not collect seconds of
/// resends that the receiver gives up on.
pub(crate) fn pick_resend_link(
    now: crate::proto::Instant,
    links: &[LinkView],
    lost_on: Option<LinkId>,
    allowed: impl Fn(&LinkView) -> bool,
) -> Option<usize> {
    let mut best: Option<(bool, u64, usize)> = None;
    for (i, l) in links.iter().enumerate() {
        if !l.usable || !allowed(l) {
            continue;
        }
        let Some(tier) = l.tier() else { continue };
        let penalty = if Some(l.id) == lost_on {
            l.one_way_us
        } else {
            0
        };
        let key = (tier == 2, l.arrival_resend.0 + penalty, i);
        if best.map_or(true, |b| (key.0, key.1) < (b.0, b.1)) {
            best = Some(key);
        }
    }
    let (backup, _, i) = best?;
    let h = super::path::horizon(now, links, if backup { 2 } else { 1 });
    (links[i].arrival_resend <= h).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::LinkRole;
    use crate::proto::Instant;

    fn lv(id: u8, role: LinkRole, head_ms: u64) -> LinkView {
        let us = head_ms * 1000;
        LinkView::for_test(id, role, us, us, us + 10_000)
    }

    /// The link a copy lost on `lost_on` is resent on at `now_us`, any link allowed.
    fn pick(now_us: u64, links: &[LinkView], lost_on: Option<LinkId>) -> Option<usize> {
        pick_resend_link(Instant(now_us), links, lost_on, |_| true)
    }

    #[test]
    fn resend_goes_where_it_arrives_first_the_losing_link_one_trip_later() {
        let links = [
            lv(1, LinkRole::Primary, 10),
            lv(2, LinkRole::Primary, 40),
            lv(3, LinkRole::Primary, 15),
        ];
        // Lost on 1: 1 counts 10 + 10 ms, 3 arrives at 15.
        assert_eq!(pick(0, &links, Some(1)), Some(2));
        assert_eq!(pick(0, &links, Some(3)), Some(0));
        assert_eq!(pick(0, &links, None), Some(0));
        // The other links are far later: the losing link itself is the fastest way.
        let mut l = links;
        l[2] = lv(3, LinkRole::Primary, 60);
        assert_eq!(pick(0, &l, Some(1)), Some(0));
        // Only the link it was lost on is left: use it.
        l[1].usable = false;
        l[2].usable = false;
        assert_eq!(pick(0, &l, Some(1)), Some(0));
        l[0].usable = false;
        assert_eq!(pick(0, &l, Some(1)), None);
    }

    #[test]
    fn a_long_resend_backlog_counts_against_a_link_and_beyond_the_horizon_it_waits() {
        let mut links = [lv(1, LinkRole::Primary, 20), lv(2, LinkRole::Primary, 30)];
        assert_eq!(pick(0, &links, Some(1)), Some(1));
        // Link 2 already holds 500 ms of resends (a stalled link's queue).
        links[1].arrival_resend = Instant(530_000);
        assert_eq!(pick(0, &links, Some(1)), Some(0));
        // Both beyond the horizon (30 ms one-way + 2 packet times + 2 ms): it waits for one.
        links[0].arrival_resend = Instant(300_000);
        assert_eq!(pick(0, &links, Some(1)), None);
        assert_eq!(pick(280_000, &links, Some(1)), Some(0));
    }

    #[test]
    fn resend_prefers_non_backup_and_respects_filter() {
        let links = [
            lv(1, LinkRole::Backup, 5),
            lv(2, LinkRole::Secondary, 40),
            lv(3, LinkRole::Never, 1),
        ];
        assert_eq!(pick(0, &links, None), Some(1));
        assert_eq!(
            pick_resend_link(Instant(0), &links, None, |l| l.id != 2),
            Some(0)
        );
    }

    #[test]
    fn queue_is_fifo() {
        let mut q = ResendQueue::new();
        q.push(1, Some(1));
        q.push(2, None);
        assert_eq!(q.pop(), Some((1, Some(1))));
        assert_eq!(q.len(), 1);
    }
}
