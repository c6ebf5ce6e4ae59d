//! Path choice: which link(s) carry a packet.
//!
//! All modes honour link roles through [`LinkView::tier`]: primaries first, secondaries (and
//! degraded primaries) only when the primaries are saturated or down, backups only when no
//! primary or secondary is usable, `never` not at all.
//!
//! "Saturated" is judged against a horizon: a packet is only handed to a link whose expected
//! arrival is within (largest one-way delay among the links considered + 2 packet times + 2 ms)
//! from now. Beyond that the packet stays in the user queues, where DRR and priorities act.

use super::{Choice, ClassConfig, LinkId, LinkView, Mode};
use crate::proto::Instant;

const HORIZON_SLACK_US: u64 = 2_000;

/// The horizon over the links of tiers `<= max_tier`: see the module docs.
pub(crate) fn horizon(now: Instant, links: &[LinkView], max_tier: u8) -> Instant {
    let mut owd = 0;
    let mut pkt = 0;
    for l in links
        .iter()
        .filter(|l| l.usable && l.tier().is_some_and(|t| t <= max_tier))
    {
        owd = owd.max(l.one_way_us);
        pkt = pkt.max(l.packet_time_us);
    }
    Instant(now.0 + owd + 2 * pkt + HORIZON_SLACK_US)
}

fn arrival(l: &LinkView, urgent: bool) -> Instant {
    if urgent {
        l.arrival_head
    } else {
        l.arrival
    }
}

/// The lowest usable tier (0 primary, 1 secondary, 2 backup), if any link is usable.
fn best_tier(links: &[LinkView]) -> Option<u8> {
    links
        .iter()
        .filter(|l| l.usable)
        .filter_map(|l| l.tier())
        .min()
}

/// The tiers to try in turn, each as the largest tier allowed: the best usable tier, then (when
/// that is the primaries and they are saturated) the secondaries too. `None`: no usable link.
fn tiers(links: &[LinkView]) -> Option<core::ops::RangeInclusive<u8>> {
    let t0 = best_tier(links)?;
    Some(t0..=t0.max(1))
}

/// Earliest expected arrival among the usable links of tiers <= `max_tier`.
fn earliest(links: &[LinkView], max_tier: u8, urgent: bool, skip: Option<usize>) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, l) in links.iter().enumerate() {
        if !l.usable || Some(i) == skip || !l.tier().is_some_and(|t| t <= max_tier) {
            continue;
        }
        if best.map_or(true, |b| arrival(l, urgent) < arrival(&links[b], urgent)) {
            best = Some(i);
        }
    }
    best
}

/// Default: the link where the packet is expected to arrive first.
fn earliest_arrival(now: Instant, links: &[LinkView], urgent: bool) -> Choice {
    let Some(tiers) = tiers(links) else {
        return Choice::NoPath;
    };
    for max_tier in tiers {
        let Some(i) = earliest(links, max_tier, urgent, None) else {
            continue;
        };
        if urgent || arrival(&links[i], urgent) <= horizon(now, links, max_tier) {
            return Choice::One(i);
        }
    }
    Choice::Wait
}

/// Smooth weighted round robin (as nginx) over the usable links of the best tier that are not
/// saturated; saturated links are skipped, so weights shape the split within capacity.
#[derive(Debug)]
struct Weighted {
    current: [i64; 256],
}

impl Default for Weighted {
    fn default() -> Self {
        Weighted { current: [0; 256] }
    }
}

impl Weighted {
    fn choose(&mut self, now: Instant, links: &[LinkView], urgent: bool) -> Choice {
        let Some(tiers) = tiers(links) else {
            return Choice::NoPath;
        };
        for max_tier in tiers {
            let h = horizon(now, links, max_tier);
            let mut total = 0i64;
            let mut best: Option<usize> = None;
            for (i, l) in links.iter().enumerate() {
                let ok = l.usable
                    && l.tier().is_some_and(|t| t <= max_tier)
                    && (urgent || arrival(l, urgent) <= h);
                if !ok {
                    continue;
                }
                let w = l.weight.max(1) as i64;
                total += w;
                self.current[l.id as usize] += w;
                if best.map_or(true, |b| {
                    self.current[l.id as usize] > self.current[links[b].id as usize]
                }) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                self.current[links[b].id as usize] -= total;
                return Choice::One(b);
            }
        }
        Choice::Wait
    }
}

/// A copy on each of the two best links (best = earliest arrival, by tier preference).
fn redundant(now: Instant, links: &[LinkView], urgent: bool) -> Choice {
    let Some(t0) = best_tier(links) else {
        return Choice::NoPath;
    };
    // Prefer two links of the best tier; fill up from the next tiers if there is only one.
    let mut first = None;
    for max_tier in t0..=2 {
        if let Some(i) = earliest(links, max_tier, urgent, None) {
            first = Some(i);
            break;
        }
    }
    let Some(a) = first else {
        return Choice::NoPath;
    };
    if !urgent && arrival(&links[a], urgent) > horizon(now, links, t0.max(1)) {
        return Choice::Wait;
    }
    for max_tier in t0..=2 {
        if let Some(b) = earliest(links, max_tier, urgent, Some(a)) {
            return Choice::Two(a, b);
        }
    }
    // A single usable link: two copies on it, so one random loss costs no resend (the
    // class is small, e.g. voice; the receiver drops the later copy).
    Choice::Two(a, a)
}

/// Active/standby: the first usable link in (tier, id) order carries everything.
fn backup(now: Instant, links: &[LinkView], urgent: bool) -> Choice {
    let mut best: Option<usize> = None;
    for (i, l) in links.iter().enumerate() {
        let Some(t) = l.tier().filter(|_| l.usable) else {
            continue;
        };
        let key = (
            t.min(1) + u8::from(l.role == crate::proto::wire::LinkRole::Backup),
            l.id,
        );
        if best.map_or(true, |b| {
            let lb = &links[b];
            let kb = (
                lb.tier().unwrap_or(2).min(1)
                    + u8::from(lb.role == crate::proto::wire::LinkRole::Backup),
                lb.id,
            );
            key < kb
        }) {
            best = Some(i);
        }
    }
    let Some(b) = best else { return Choice::NoPath };
    if !urgent && arrival(&links[b], false) > horizon(now, &links[b..=b], 2) {
        return Choice::Wait;
    }
    Choice::One(b)
}

/// Only the class's pinned link.
fn pinned(id: LinkId, now: Instant, links: &[LinkView], urgent: bool) -> Choice {
    let Some(i) = links.iter().position(|l| l.id == id) else {
        return Choice::NoPath;
    };
    let l = &links[i];
    if !l.usable {
        return Choice::Wait; // held until the link returns
    }
    if !urgent && arrival(l, false) > horizon(now, &links[i..=i], 2) {
        return Choice::Wait;
    }
    Choice::One(i)
}

/// Path choice for every class: dispatches on the class's mode (the weighted mode keeps its
/// round-robin state here).
#[derive(Debug, Default)]
pub(crate) struct ByMode {
    weighted: Weighted,
}

impl ByMode {
    /// Picks link(s) for a packet of `class`. `urgent` = it will be put at the head of the link
    /// queue (priority class), so compare `arrival_head`.
    pub(crate) fn choose(
        &mut self,
        now: Instant,
        class: &ClassConfig,
        links: &[LinkView],
        urgent: bool,
    ) -> Choice {
        match class.mode {
            Mode::Aggregate => earliest_arrival(now, links, urgent),
            Mode::Weighted => self.weighted.choose(now, links, urgent),
            Mode::Redundant => redundant(now, links, urgent),
            Mode::Backup => backup(now, links, urgent),
            Mode::Pinned(id) => pinned(id, now, links, urgent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::LinkRole;

    /// A link with `queue_ms` of queue and `owd_ms` one-way delay, at t = 0.
    fn lv(id: u8, role: LinkRole, queue_ms: u64, owd_ms: u64) -> LinkView {
        let head_us = owd_ms * 1000 + 500;
        LinkView::for_test(id, role, owd_ms * 1000, head_us, head_us + queue_ms * 1000)
    }

    const T0: Instant = Instant(0);
    const C: ClassConfig = ClassConfig::DEFAULT;

    #[test]
    fn earliest_arrival_picks_minimum_and_waits_beyond_horizon() {
        let links = [
            lv(1, LinkRole::Primary, 0, 20),
            lv(2, LinkRole::Primary, 0, 40),
        ];
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(0));
        // Link 1 queued 25 ms: 45 ms > link 2's 40 ms.
        let links = [
            lv(1, LinkRole::Primary, 25, 20),
            lv(2, LinkRole::Primary, 0, 40),
        ];
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(1));
        // Both beyond the horizon (40 + 1 + 2 ms): wait in the user queue.
        let links = [
            lv(1, LinkRole::Primary, 30, 20),
            lv(2, LinkRole::Primary, 10, 40),
        ];
        assert_eq!(earliest_arrival(T0, &links, false), Choice::Wait);
        // Urgent packets compare head-of-queue arrival and are never held.
        assert_eq!(earliest_arrival(T0, &links, true), Choice::One(0));
        let mut l = links;
        l[0].usable = false;
        l[1].usable = false;
        assert_eq!(earliest_arrival(T0, &l, false), Choice::NoPath);
    }

    #[test]
    fn roles_secondary_only_when_primaries_saturated_backup_only_when_alone() {
        let mut links = [
            lv(1, LinkRole::Primary, 2, 30),
            lv(2, LinkRole::Secondary, 0, 5),
            lv(3, LinkRole::Backup, 0, 1),
            lv(4, LinkRole::Never, 0, 1),
        ];
        // The secondary would be faster, but the primary is within its horizon.
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(0));
        // Primary saturated: the secondary takes it.
        links[0] = lv(1, LinkRole::Primary, 40, 30);
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(1));
        // Primary down, secondary down: the backup.
        links[0].usable = false;
        links[1].usable = false;
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(2));
        links[2].usable = false;
        assert_eq!(earliest_arrival(T0, &links, false), Choice::NoPath);
        // A degraded primary acts as a secondary.
        let mut links = [
            lv(1, LinkRole::Primary, 0, 5),
            lv(2, LinkRole::Primary, 0, 30),
        ];
        links[0].degraded = true;
        assert_eq!(earliest_arrival(T0, &links, false), Choice::One(1));
    }

    #[test]
    fn weighted_splits_by_weight_within_capacity() {
        let mut s = Weighted::default();
        let mut links = [
            lv(1, LinkRole::Primary, 0, 20),
            lv(2, LinkRole::Primary, 0, 20),
        ];
        links[0].weight = 3;
        let mut n = [0; 2];
        for _ in 0..400 {
            match s.choose(T0, &links, false) {
                Choice::One(i) => n[i] += 1,
                c => panic!("{c:?}"),
            }
        }
        assert_eq!(n, [300, 100]);
        // A saturated link is skipped.
        links[0] = lv(1, LinkRole::Primary, 50, 20);
        links[0].weight = 3;
        for _ in 0..10 {
            assert_eq!(s.choose(T0, &links, false), Choice::One(1));
        }
    }

    #[test]
    fn redundant_uses_two_best_links() {
        let links = [
            lv(1, LinkRole::Primary, 10, 20),
            lv(2, LinkRole::Primary, 0, 10),
            lv(3, LinkRole::Primary, 0, 25),
        ];
        assert_eq!(redundant(T0, &links, false), Choice::Two(1, 2));
        // Only one primary left: the second copy goes to a secondary.
        let links = [
            lv(1, LinkRole::Primary, 0, 20),
            lv(2, LinkRole::Secondary, 0, 30),
        ];
        assert_eq!(redundant(T0, &links, false), Choice::Two(0, 1));
        let mut links = links;
        links[1].usable = false;
        assert_eq!(redundant(T0, &links, false), Choice::Two(0, 0));
    }

    #[test]
    fn backup_mode_is_active_standby() {
        let mut links = [
            lv(3, LinkRole::Backup, 0, 1),
            lv(2, LinkRole::Primary, 0, 30),
            lv(1, LinkRole::Primary, 0, 40),
        ];
        // The first primary by id, even though another is faster.
        assert_eq!(backup(T0, &links, false), Choice::One(2));
        links[2].usable = false;
        assert_eq!(backup(T0, &links, false), Choice::One(1));
        links[1].usable = false;
        assert_eq!(backup(T0, &links, false), Choice::One(0));
    }

    #[test]
    fn pinned_holds_while_its_link_is_down() {
        let mut s = ByMode::default();
        let c = ClassConfig {
            mode: Mode::Pinned(2),
            ..C
        };
        let mut links = [
            lv(1, LinkRole::Primary, 0, 5),
            lv(2, LinkRole::Secondary, 0, 30),
        ];
        assert_eq!(s.choose(T0, &c, &links, false), Choice::One(1));
        links[1].usable = false;
        assert_eq!(s.choose(T0, &c, &links, false), Choice::Wait);
        let c9 = ClassConfig {
            mode: Mode::Pinned(9),
            ..C
        };
        assert_eq!(s.choose(T0, &c9, &links, false), Choice::NoPath);
    }
}
