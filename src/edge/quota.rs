//! Data quotas per link: counting, periods, demotion, and a state file that spares the flash.
//!
//! Pure logic (time comes in as UNIX seconds, UTC); the edge feeds it the bytes each link
//! carried and writes [`QuotaBook::to_text`] to `state_file` when [`QuotaBook::should_save`]
//! says so (rarely: after 10 minutes *and* a meaningful change, and on stop), so a router's
//! flash is written a few times an hour at most, and a reboot loses at most that much counting.
//!
//! Periods: `day` restarts at 00:00 UTC; `month` restarts at 00:00 UTC on `reset_day` (clamped
//! to the month's last day, so 31 means "the last day" in short months).
//!
//! The same file keeps the edge's handshake clock mark ([`StampMark`]): the core refuses a
//! handshake whose time is not newer than the last it accepted from the edge, and a router
//! without a real-time clock boots with a clock that may be days behind. The edge's handshake
//! times never go below the mark, and every time it used is below the mark it last wrote, so a
//! reboot with any clock goes on from there. It is written at start and then about once an
//! hour (an hour ahead each time). If the file is lost (a sysupgrade that does not keep
//! /etc/braid) the edge starts from its clock, and a core that has seen a later time answers
//! with that time (see `proto::seal`): one more round trip, never a lock-out.

use std::collections::{BTreeMap, HashMap};

use crate::config::model::{Quota, QuotaAction, QuotaPeriod};
use crate::proto::LinkId;

/// Least time between two writes of the state file (except on stop).
pub(crate) const SAVE_EVERY_SECS: u64 = 600;

/// How far ahead of the handshake times in use the [`StampMark`] is written (microseconds).
pub(crate) const MARK_AHEAD_US: u64 = 3_600_000_000;
/// The mark is written again when the times in use come this close to it.
const MARK_MARGIN_US: u64 = 60_000_000;

/// The handshake clock's high-water mark in the state file (`handshake_clock MICROS`); see the
/// module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StampMark {
    /// Every handshake time used is below this.
    pub(crate) saved: u64,
}

impl StampMark {
    /// The mark in a state file's text (0 if none).
    pub(crate) fn from_text(text: &str) -> StampMark {
        let saved = text
            .lines()
            .filter_map(|l| l.strip_prefix("handshake_clock "))
            .filter_map(|v| v.trim().parse().ok())
            .max()
            .unwrap_or(0);
        StampMark { saved }
    }

    /// The mark's line for the state file.
    pub(crate) fn to_text(self) -> String {
        format!("handshake_clock {}\n", self.saved)
    }

    /// Handshake times up to `high` are about to be used: true if the mark moved (an hour
    /// ahead of them) and must be written before they are.
    pub(crate) fn advance(&mut self, high: u64) -> bool {
        if high.saturating_add(MARK_MARGIN_US) < self.saved {
            return false;
        }
        self.saved = high.saturating_add(MARK_AHEAD_US);
        true
    }
}

/// One link's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// Start of the period the counter belongs to (UNIX seconds).
    period_start: u64,
    /// Bytes counted in that period (both directions).
    used: u64,
}

/// What a link's quota says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within quota (or none): its configured role.
    Within,
    /// Past quota: demoted as `quota_action` says.
    Exceeded(QuotaAction),
}

/// Counters of every link with a quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QuotaBook {
    links: BTreeMap<String, Usage>,
    saved_at: u64,
    saved: BTreeMap<String, Usage>,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    let next = if m == 12 {
        days_from_civil(y + 1, 1, 1)
    } else {
        days_from_civil(y, m + 1, 1)
    };
    (next - days_from_civil(y, m, 1)) as u32
}

/// The start (UNIX seconds) of the quota period containing `now`.
pub(crate) fn period_start(now: u64, period: QuotaPeriod, reset_day: u8) -> u64 {
    let day = (now / 86_400) as i64;
    match period {
        QuotaPeriod::Day => day as u64 * 86_400,
        QuotaPeriod::Month => {
            let (y, m, d) = civil_from_days(day);
            let reset_in = |y: i64, m: u32| u32::from(reset_day.max(1)).min(days_in_month(y, m));
            let (y, m) = if d >= reset_in(y, m) {
                (y, m)
            } else if m == 1 {
                (y - 1, 12)
            } else {
                (y, m - 1)
            };
            (days_from_civil(y, m, reset_in(y, m)) as u64) * 86_400
        }
    }
}

impl QuotaBook {
    /// Adds `bytes` carried by `link` at `now`; a new period restarts the counter first.
    pub(crate) fn account(&mut self, link: &str, quota: &Quota, bytes: u64, now: u64) -> Verdict {
        let start = period_start(now, quota.period, quota.reset_day);
        let u = self.links.entry(link.to_string()).or_default();
        if u.period_start != start {
            *u = Usage {
                period_start: start,
                used: 0,
            };
        }
        u.used = u.used.saturating_add(bytes);
        if u.used >= quota.bytes {
            Verdict::Exceeded(quota.action)
        } else {
            Verdict::Within
        }
    }

    /// Bytes used by `link` in its current period.
    pub(crate) fn used(&self, link: &str) -> u64 {
        self.links.get(link).map_or(0, |u| u.used)
    }

    /// Whether to write the state now: not more often than [`SAVE_EVERY_SECS`], and only when
    /// some counter moved by at least 1 MiB since the last write.
    pub(crate) fn should_save(&self, now: u64) -> bool {
        if now < self.saved_at + SAVE_EVERY_SECS {
            return false;
        }
        self.links.iter().any(|(k, u)| {
            let old = self.saved.get(k).copied().unwrap_or_default();
            old.period_start != u.period_start || u.used.abs_diff(old.used) >= 1 << 20
        })
    }

    /// Records that the state was written at `now`.
    pub(crate) fn mark_saved(&mut self, now: u64) {
        self.saved_at = now;
        self.saved = self.links.clone();
    }

    /// The state file's text: `link period_start used` per line.
    pub(crate) fn to_text(&self) -> String {
        let mut s = String::from("# braid quota counters: link period_start(unix) bytes_used\n");
        for (k, u) in &self.links {
            s.push_str(&format!("{k} {} {}\n", u.period_start, u.used));
        }
        s
    }

    /// Reads a state file's text; malformed lines are skipped (a torn write loses one line,
    /// never the daemon).
    pub(crate) fn from_text(text: &str, now: u64) -> QuotaBook {
        let mut b = QuotaBook {
            saved_at: now,
            ..Default::default()
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [name, start, used] = f[..] {
                if let (Ok(start), Ok(used)) = (start.parse(), used.parse()) {
                    b.links.insert(
                        name.to_string(),
                        Usage {
                            period_start: start,
                            used,
                        },
                    );
                }
            }
        }
        b.saved = b.links.clone();
        b
    }
}

/// One link as [`Demotions::count`] sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried<'a> {
    pub(crate) id: LinkId,
    pub(crate) name: &'a str,
    pub(crate) quota: Option<&'a Quota>,
    /// Bytes it carried since start, both directions (`None`: not in the session yet).
    pub(crate) total: Option<u64>,
}

/// A link whose role the session must be told again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaChange {
    /// It used its quota: now `backup` or `never`.
    Demoted { id: LinkId, action: QuotaAction },
    /// A new period (or a larger quota): back to its role.
    Restored { id: LinkId },
    /// It has no quota any more: back to its role.
    Unlimited { id: LinkId },
}

/// Which links their quota demoted: fed each link's byte counter, it counts what each carried
/// since the last call into the [`QuotaBook`] and says whose role changes. The event loop
/// tells the session and writes the book to the state file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Demotions {
    /// Each link's counter at the last count.
    counted: HashMap<LinkId, u64>,
    demoted: HashMap<LinkId, QuotaAction>,
}

impl Demotions {
    /// Counts `links` at `now` (Unix seconds) into `book`; the links whose role changes, in
    /// the order of `links` (a link without a quota last).
    pub(crate) fn count(
        &mut self,
        book: &mut QuotaBook,
        links: &[Carried<'_>],
        now: u64,
    ) -> Vec<QuotaChange> {
        let mut changed = Vec::new();
        for l in links {
            let (Some(q), Some(total)) = (l.quota, l.total) else {
                continue;
            };
            let last = self.counted.insert(l.id, total).unwrap_or(0);
            let verdict = book.account(l.name, q, total.saturating_sub(last), now);
            match (verdict, self.demoted.get(&l.id).copied()) {
                (Verdict::Exceeded(action), was) if was != Some(action) => {
                    self.demoted.insert(l.id, action);
                    changed.push(QuotaChange::Demoted { id: l.id, action });
                }
                (Verdict::Within, Some(_)) => {
                    self.demoted.remove(&l.id);
                    changed.push(QuotaChange::Restored { id: l.id });
                }
                _ => {}
            }
        }
        // A link without a quota (any more) is never demoted.
        let stale: Vec<LinkId> = self
            .demoted
            .keys()
            .filter(|id| !links.iter().any(|l| l.id == **id && l.quota.is_some()))
            .copied()
            .collect();
        for id in stale {
            self.demoted.remove(&id);
            changed.push(QuotaChange::Unlimited { id });
        }
        changed
    }

    /// How link `id` is demoted, if it is.
    pub(crate) fn get(&self, id: LinkId) -> Option<QuotaAction> {
        self.demoted.get(&id).copied()
    }

    /// Every demoted link.
    pub(crate) fn all(&self) -> &HashMap<LinkId, QuotaAction> {
        &self.demoted
    }

    /// Forgets the links `keep` refuses (removed by a reload).
    pub(crate) fn retain(&mut self, keep: impl Fn(LinkId) -> bool) {
        self.demoted.retain(|id, _| keep(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(y: i64, m: u32, d: u32, h: u64) -> u64 {
        days_from_civil(y, m, d) as u64 * 86_400 + h * 3600
    }

    fn quota(bytes: u64, period: QuotaPeriod, reset_day: u8, action: QuotaAction) -> Quota {
        Quota {
            bytes,
            period,
            reset_day,
            action,
        }
    }

    #[test]
    fn calendar_round_trip() {
        for z in [-1000i64, 0, 1, 59, 365, 10_957, 19_000, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
    }

    #[test]
    fn periods() {
        let now = secs(2026, 11, 26, 13);
        assert_eq!(
            period_start(now, QuotaPeriod::Day, 1),
            secs(2026, 11, 26, 0)
        );
        assert_eq!(
            period_start(now, QuotaPeriod::Month, 15),
            secs(2026, 11, 15, 0)
        );
        assert_eq!(
            period_start(now, QuotaPeriod::Month, 27),
            secs(2026, 10, 27, 0)
        );
        assert_eq!(
            period_start(secs(2026, 1, 3, 0), QuotaPeriod::Month, 5),
            secs(2025, 12, 5, 0)
        );
        // reset_day 31 in February means its last day.
        assert_eq!(
            period_start(secs(2026, 3, 1, 0), QuotaPeriod::Month, 31),
            secs(2026, 2, 28, 0)
        );
        assert_eq!(
            period_start(secs(2026, 2, 28, 5), QuotaPeriod::Month, 31),
            secs(2026, 2, 28, 0)
        );
    }

    #[test]
    fn crossing_the_quota_demotes_and_a_new_period_restores() {
        let q = quota(1000, QuotaPeriod::Day, 1, QuotaAction::Backup);
        let mut b = QuotaBook::default();
        let t = secs(2026, 11, 26, 10);
        assert_eq!(b.account("lte2", &q, 600, t), Verdict::Within);
        assert_eq!(
            b.account("lte2", &q, 400, t + 60),
            Verdict::Exceeded(QuotaAction::Backup)
        );
        assert_eq!(b.used("lte2"), 1000);
        assert_eq!(
            b.account("lte2", &q, 10, secs(2026, 11, 27, 0)),
            Verdict::Within,
            "midnight resets"
        );
        assert_eq!(b.used("lte2"), 10);
    }

    #[test]
    fn state_survives_a_restart_and_writes_rarely() {
        let q = quota(10 << 30, QuotaPeriod::Month, 1, QuotaAction::Never);
        let t = secs(2026, 11, 26, 10);
        let mut b = QuotaBook::from_text("", t);
        b.account("wwan", &q, 5 << 20, t);
        assert!(!b.should_save(t + 60), "not within 10 minutes of start");
        assert!(b.should_save(t + SAVE_EVERY_SECS));
        b.mark_saved(t + SAVE_EVERY_SECS);
        b.account("wwan", &q, 1000, t + 2 * SAVE_EVERY_SECS);
        assert!(
            !b.should_save(t + 2 * SAVE_EVERY_SECS),
            "a few bytes are not worth a flash write"
        );
        let text = b.to_text();
        let back = QuotaBook::from_text(&(text + "garbage line\nwwan2 x 1\n"), t);
        assert_eq!(back.used("wwan"), (5 << 20) + 1000);
        assert_eq!(back.used("wwan2"), 0);
    }

    #[test]
    fn the_stamp_mark_shares_the_file_grows_only_and_is_written_rarely() {
        let hour = MARK_AHEAD_US;
        let t0 = 1_800_000_000 * 1_000_000; // 2027, in microseconds
        let q = quota(10 << 30, QuotaPeriod::Month, 1, QuotaAction::Never);
        let mut b = QuotaBook::from_text("", t0 / 1_000_000);
        b.account("wwan", &q, 5 << 20, t0 / 1_000_000);
        let mut m = StampMark::from_text("");
        assert_eq!(m.saved, 0);
        // At start: always written, an hour ahead.
        assert!(m.advance(t0));
        assert_eq!(m.saved, t0 + hour);
        let text = b.to_text() + &m.to_text();
        assert_eq!(
            QuotaBook::from_text(&text, t0 / 1_000_000).used("wwan"),
            5 << 20
        );
        assert_eq!(StampMark::from_text(&text), m);
        // Half-hourly checks for a day: written about once an hour, never behind the times.
        let mut writes = 0;
        for k in 1..=48 {
            let now = t0 + k * hour / 2;
            if m.advance(now) {
                writes += 1;
            }
            assert!(m.saved > now);
        }
        assert!((23..=25).contains(&writes), "{writes} writes in a day");
        // A clock set back a day: the mark stays where it is.
        let saved = m.saved;
        assert!(!m.advance(t0 - 24 * hour));
        assert_eq!(m.saved, saved);
        // A torn file, or one from before the mark existed.
        assert_eq!(
            StampMark::from_text("handshake_clock x\nwwan 1 2\n").saved,
            0
        );
    }

    #[test]
    fn demotions_follow_the_quota_crossing_once_and_end_with_the_period_or_the_quota() {
        let q = quota(1000, QuotaPeriod::Day, 1, QuotaAction::Never);
        let mut book = QuotaBook::default();
        let mut d = Demotions::default();
        let t = secs(2026, 11, 26, 10);
        let at = |total, quota| {
            [Carried {
                id: 3,
                name: "sat",
                quota,
                total: Some(total),
            }]
        };
        assert_eq!(d.count(&mut book, &at(600, Some(&q)), t), vec![]);
        let demoted = QuotaChange::Demoted {
            id: 3,
            action: QuotaAction::Never,
        };
        assert_eq!(
            d.count(&mut book, &at(1100, Some(&q)), t + 60),
            vec![demoted]
        );
        assert_eq!(d.get(3), Some(QuotaAction::Never));
        assert_eq!(
            book.used("sat"),
            1100,
            "only what was carried since the last count"
        );
        assert_eq!(
            d.count(&mut book, &at(1500, Some(&q)), t + 120),
            vec![],
            "said once"
        );
        // Midnight: a new period.
        let next = secs(2026, 11, 27, 0);
        assert_eq!(
            d.count(&mut book, &at(1510, Some(&q)), next),
            vec![QuotaChange::Restored { id: 3 }]
        );
        assert_eq!(book.used("sat"), 10);
        // Past it again, then the operator removes the quota: back to its role.
        assert_eq!(
            d.count(&mut book, &at(2600, Some(&q)), next + 60),
            vec![demoted]
        );
        assert_eq!(
            d.count(&mut book, &at(2700, None), next + 120),
            vec![QuotaChange::Unlimited { id: 3 }]
        );
        assert_eq!(d.get(3), None);
        // A link not in the session yet is not counted.
        let unseen = [Carried {
            id: 4,
            name: "lte",
            quota: Some(&q),
            total: None,
        }];
        assert_eq!(d.count(&mut book, &unseen, next + 180), vec![]);
        assert_eq!(book.used("lte"), 0);
    }
}
