//! Statistics of a trace: what `braid trace stats` prints and what the presets' tests assert.

use std::fmt::Write as _;

use super::model::OPP_BITS;

/// A stretch this long (ms) or longer without any delivery opportunity is a dead spell.
pub(crate) const DEAD_MS: u64 = 100;
/// The rate's percentiles are taken over bins of this many ms.
pub(crate) const BIN_MS: u64 = 100;

/// What a trace offers, over one period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stats {
    /// The period (the last time stamp), seconds.
    pub(crate) seconds: f64,
    /// Mean rate, Mbit/s.
    pub(crate) mean_mbit: f64,
    /// Percentiles of the rate in 100 ms bins, Mbit/s.
    pub(crate) p10_mbit: f64,
    pub(crate) p50_mbit: f64,
    pub(crate) p90_mbit: f64,
    /// Share of the time spent in dead spells (>= [`DEAD_MS`] without an opportunity).
    pub(crate) dead_share: f64,
    /// Dead spells of a second or more.
    pub(crate) outages_1s: usize,
    /// The longest time without an opportunity, ms.
    pub(crate) longest_gap_ms: u64,
    /// Autocorrelation of the 100 ms rate one second apart: near 1 the rate wanders slowly,
    /// near 0 it has forgotten within a second.
    pub(crate) autocorr_1s: f64,
}

impl Stats {
    /// The statistics of a trace given as its opportunity times (ms, non-decreasing).
    pub(crate) fn of(ms: &[u64]) -> Stats {
        let period = ms.last().copied().unwrap_or(0).max(1);
        let bins = period.div_ceil(BIN_MS) as usize;
        let mut count = vec![0u64; bins];
        for &t in ms {
            // Opportunity at time t serves the millisecond before it: bin of t - 1.
            let b = (t.saturating_sub(1) / BIN_MS) as usize;
            count[b.min(bins - 1)] += 1;
        }
        let rate: Vec<f64> = count
            .iter()
            .map(|&c| c as f64 * OPP_BITS / (BIN_MS as f64 * 1000.0))
            .collect();
        let mut sorted = rate.clone();
        sorted.sort_by(f64::total_cmp);
        let mut dead = 0;
        let mut outages_1s = 0;
        let mut longest = 0;
        for (_, len) in gaps(ms) {
            longest = longest.max(len);
            if len >= DEAD_MS {
                dead += len;
            }
            if len >= 1000 {
                outages_1s += 1;
            }
        }
        Stats {
            seconds: period as f64 / 1000.0,
            mean_mbit: ms.len() as f64 * OPP_BITS / (period as f64 * 1000.0),
            p10_mbit: percentile(&sorted, 0.10),
            p50_mbit: percentile(&sorted, 0.50),
            p90_mbit: percentile(&sorted, 0.90),
            dead_share: dead as f64 / period as f64,
            outages_1s,
            longest_gap_ms: longest,
            autocorr_1s: autocorr(&rate, (1000 / BIN_MS) as usize),
        }
    }

    /// The column names of [`Stats::row`].
    pub(crate) fn header() -> String {
        format!(
            "{:<48} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>8} {:>6}",
            "trace", "s", "mean", "p10", "p50", "p90", "dead %", ">=1s", "gap ms", "ac 1s"
        )
    }

    /// One line: rates in Mbit/s (p10/p50/p90 of 100 ms bins), dead share, outages of a second
    /// or more, the longest gap and the 1 s autocorrelation.
    pub(crate) fn row(&self, name: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{:<48} {:>6.0} {:>7.2} {:>6.2} {:>6.2} {:>6.2} {:>7.1} {:>6} {:>8} {:>6.2}",
            name,
            self.seconds,
            self.mean_mbit,
            self.p10_mbit,
            self.p50_mbit,
            self.p90_mbit,
            self.dead_share * 100.0,
            self.outages_1s,
            self.longest_gap_ms,
            self.autocorr_1s
        );
        s
    }
}

/// Every stretch without an opportunity, as (start ms, length ms), from time 0 to the period.
pub(crate) fn gaps(ms: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut prev = 0u64;
    ms.iter().filter_map(move |&t| {
        let g = (prev, t - prev);
        prev = t;
        (g.1 > 0).then_some(g)
    })
}

/// Which milliseconds of `[0, period)` lie in a dead spell.
#[cfg(test)]
pub(crate) fn dead_mask(ms: &[u64]) -> Vec<bool> {
    let period = ms.last().copied().unwrap_or(0) as usize;
    let mut m = vec![false; period];
    for (start, len) in gaps(ms) {
        if len >= DEAD_MS {
            m[start as usize..(start + len) as usize].fill(true);
        }
    }
    m
}

/// Share of the time both traces are in a dead spell at once (over the shorter one).
#[cfg(test)]
pub(crate) fn both_dead_share(a: &[u64], b: &[u64]) -> f64 {
    let (ma, mb) = (dead_mask(a), dead_mask(b));
    let n = ma.len().min(mb.len()).max(1);
    let both = ma.iter().zip(&mb).filter(|(x, y)| **x && **y).count();
    both as f64 / n as f64
}

/// The `q` quantile of sorted values, interpolated.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * f
}

fn autocorr(x: &[f64], lag: usize) -> f64 {
    if x.len() <= lag + 1 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / x.len() as f64;
    if var <= 0.0 {
        return 0.0;
    }
    let n = x.len() - lag;
    let cov = (0..n)
        .map(|i| (x[i] - mean) * (x[i + lag] - mean))
        .sum::<f64>()
        / n as f64;
    cov / var
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_known_trace() {
        // 1 s: 100 opportunities per 100 ms for 500 ms (12 Mbit/s), 350 ms dead, then three
        // opportunities 90 and 60 ms apart (not dead spells: shorter than 100 ms).
        let mut ms = Vec::new();
        for t in 1..=500u64 {
            ms.push(t);
        }
        ms.extend([850, 940, 1000]);
        let s = Stats::of(&ms);
        assert_eq!(s.seconds, 1.0);
        assert!((s.mean_mbit - 503.0 * 12_000.0 / 1e6).abs() < 1e-9);
        assert_eq!(s.longest_gap_ms, 350);
        assert!((s.dead_share - 0.35).abs() < 1e-9, "{}", s.dead_share);
        assert_eq!(s.outages_1s, 0);
        // Bins: five at 12 Mbit/s, three empty, 0.12 and 0.24 (940 and 1000 share the last).
        assert!(
            (s.p50_mbit - (0.24 + 12.0) / 2.0).abs() < 1e-9,
            "{}",
            s.p50_mbit
        );
        assert!((s.p90_mbit - 12.0).abs() < 1e-9);
        assert_eq!(s.p10_mbit, 0.0);
        assert_eq!(dead_mask(&ms).iter().filter(|d| **d).count(), 350);
        assert_eq!(both_dead_share(&ms, &ms), 0.35);
        let other: Vec<u64> = (1..=1000).collect();
        assert_eq!(both_dead_share(&ms, &other), 0.0);
    }
}
