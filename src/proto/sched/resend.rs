//! Data order: lost packets are resent ahead of new data, on the fastest other link.
//!
//! The queue holds packets declared lost (by a link's loss detection, its timeout, or its
//! removal). The session drains it before asking the connection-order scheduler for new data,
//! placing each packet at the head of the chosen link's queue with its original `seq`.

use std::collections::VecDeque;

use super::{LinkView, PktId};
use crate::proto::LinkId;

/// At most this many resends per packet; beyond that it is dropped and counted.
pub const MAX_RESENDS: u8 = 4;

#[derive(Debug, Default)]
pub struct ResendQueue {
    q: VecDeque<(PktId, Option<LinkId>)>,
}

impl ResendQueue {
    pub fn new() -> ResendQueue {
        ResendQueue {
            q: VecDeque::with_capacity(64),
        }
    }

    /// Queues `pkt`, lost on `lost_on` (None: not tied to a link, e.g. link removed).
    pub fn push(&mut self, pkt: PktId, lost_on: Option<LinkId>) {
        self.q.push_back((pkt, lost_on));
    }

    pub fn pop(&mut self) -> Option<(PktId, Option<LinkId>)> {
        self.q.pop_front()
    }

    /// Puts back at the head (no usable link right now).
    pub fn push_front(&mut self, pkt: PktId, lost_on: Option<LinkId>) {
        self.q.push_front((pkt, lost_on));
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

/// The link for a resend: earliest head-of-queue arrival among usable links other than the one
/// it was lost on (that one only if nothing else is usable), preferring primaries and
/// secondaries over backups. `allowed` filters links the packet's class may not use.
pub fn pick_resend_link(
    links: &[LinkView],
    lost_on: Option<LinkId>,
    allowed: impl Fn(&LinkView) -> bool,
) -> Option<usize> {
    let mut best: Option<(bool, u8, crate::proto::Instant, usize)> = None;
    for (i, l) in links.iter().enumerate() {
        if !l.usable || !allowed(l) {
            continue;
        }
        let Some(tier) = l.tier() else { continue };
        let key = (
            Some(l.id) == lost_on,
            u8::from(tier == 2),
            l.arrival_head,
            i,
        );
        if best.map_or(true, |b| (key.0, key.1, key.2) < (b.0, b.1, b.2)) {
            best = Some(key);
        }
    }
    best.map(|b| b.3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::LinkRole;
    use crate::proto::Instant;

    fn lv(id: u8, role: LinkRole, head_ms: u64) -> LinkView {
        LinkView {
            id,
            role,
            usable: true,
            degraded: false,
            weight: 1,
            arrival: Instant(head_ms * 1000 + 10_000),
            arrival_head: Instant(head_ms * 1000),
            one_way_us: head_ms * 1000,
            packet_time_us: 500,
        }
    }

    #[test]
    fn resend_goes_to_fastest_other_link() {
        let links = [
            lv(1, LinkRole::Primary, 10),
            lv(2, LinkRole::Primary, 40),
            lv(3, LinkRole::Primary, 20),
        ];
        assert_eq!(pick_resend_link(&links, Some(1), |_| true), Some(2));
        assert_eq!(pick_resend_link(&links, Some(3), |_| true), Some(0));
        assert_eq!(pick_resend_link(&links, None, |_| true), Some(0));
        // Only the link it was lost on is left: use it.
        let mut l = links;
        l[1].usable = false;
        l[2].usable = false;
        assert_eq!(pick_resend_link(&l, Some(1), |_| true), Some(0));
        l[0].usable = false;
        assert_eq!(pick_resend_link(&l, Some(1), |_| true), None);
    }

    #[test]
    fn resend_prefers_non_backup_and_respects_filter() {
        let links = [
            lv(1, LinkRole::Backup, 5),
            lv(2, LinkRole::Secondary, 40),
            lv(3, LinkRole::Never, 1),
        ];
        assert_eq!(pick_resend_link(&links, None, |_| true), Some(1));
        assert_eq!(pick_resend_link(&links, None, |l| l.id != 2), Some(0));
    }

    #[test]
    fn queue_is_fifo_with_push_front() {
        let mut q = ResendQueue::new();
        q.push(1, Some(1));
        q.push(2, None);
        q.push_front(0, None);
        assert_eq!(q.pop(), Some((0, None)));
        assert_eq!(q.pop(), Some((1, Some(1))));
        assert_eq!(q.len(), 1);
    }
}
