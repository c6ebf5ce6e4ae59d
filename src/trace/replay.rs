//! One replayable Mahimahi trace, as the simulator ([`crate::sim::link`], µs) and the lab's
//! emulator ([`crate::lab::emu`], ns) both serve it: the opportunity times of one period, which
//! repeats.

use std::path::Path;

/// Bytes delivered by one Mahimahi delivery opportunity.
pub const TRACE_MTU: u32 = 1500;

/// A Mahimahi trace: the millisecond of every 1500-byte delivery opportunity, repeating.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Where it came from: a file, or the full `gen:` name.
    pub name: String,
    /// Sorted opportunity times within one period, in ms.
    pub(crate) ms: Vec<u64>,
    /// Period in ms (the last time stamp; at least 1).
    pub(crate) period_ms: u64,
}

impl Trace {
    /// Parse the text of a trace file: one non-negative integer (ms) per line, non-decreasing.
    /// `name` names the trace and prefixes errors.
    pub fn parse(name: &str, text: &str) -> Result<Trace, String> {
        Ok(Trace::from_ms(name, super::parse_mahimahi(name, text)?))
    }

    /// A trace from its opportunity times (ms, non-decreasing, not empty), e.g. a generated one.
    pub fn from_ms(name: &str, ms: Vec<u64>) -> Trace {
        let period_ms = ms.last().copied().unwrap_or(1).max(1);
        Trace {
            name: name.to_string(),
            ms,
            period_ms,
        }
    }

    /// Read a trace file.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Trace::parse(&path.display().to_string(), &text)
    }

    /// Mean capacity in bit/s.
    pub(crate) fn mean_bps(&self) -> f64 {
        self.ms.len() as f64 * f64::from(TRACE_MTU) * 8.0 * 1000.0 / self.period_ms as f64
    }

    /// Mean capacity over one period in bit/s, rounded down (the lab's figure).
    pub(crate) fn mean_bps_u64(&self) -> u64 {
        self.ms.len() as u64 * u64::from(TRACE_MTU) * 8 * 1000 / self.period_ms
    }

    // --- the simulator's view: µs of trace time ---

    /// Time (µs from the trace start) of opportunity `idx` of period `cycle`.
    pub(crate) fn at_us(&self, cycle: u64, idx: usize) -> u64 {
        (cycle * self.period_ms + self.ms[idx]) * 1000
    }

    /// Number of opportunities before `t_us` of trace time.
    pub(crate) fn count_until(&self, t_us: u64) -> u64 {
        let period_us = self.period_ms * 1000;
        let cycles = t_us / period_us;
        let rest = t_us % period_us;
        let within = self.ms.partition_point(|&m| m * 1000 < rest) as u64;
        cycles * self.ms.len() as u64 + within
    }

    // --- the lab's view: ns of emulator time, the trace started `offset_ms` in ---

    /// Capacity in bits delivered by opportunities in `[from_ms, to_ms)` of emulator time,
    /// with the trace started `offset_ms` in.
    pub fn capacity_bits(&self, from_ms: u64, to_ms: u64, offset_ms: u64) -> u64 {
        let a = self.first_opp_at_or_after(from_ms * 1_000_000, offset_ms);
        let b = self.first_opp_at_or_after(to_ms * 1_000_000, offset_ms);
        (b - a) * u64::from(TRACE_MTU) * 8
    }

    /// Emulator time (ns) of absolute opportunity `k`.
    pub(crate) fn opp_time_ns(&self, k: u64, offset_ms: u64) -> u64 {
        let n = self.ms.len() as u64;
        let t_ms = (k / n) * self.period_ms + self.ms[(k % n) as usize];
        (t_ms * 1_000_000).saturating_sub(offset_ms * 1_000_000)
    }

    /// Index of the first opportunity at or after emulator time `t_ns`.
    pub(crate) fn first_opp_at_or_after(&self, t_ns: u64, offset_ms: u64) -> u64 {
        let n = self.ms.len() as u64;
        let t_ms = t_ns.div_ceil(1_000_000) + offset_ms;
        let cycle = t_ms / self.period_ms;
        let within = t_ms - cycle * self.period_ms;
        if within == 0 && cycle > 0 {
            // Stamps equal to the period close the previous repetition at this very time.
            let j = self.ms.partition_point(|&x| x < self.period_ms) as u64;
            if j < n {
                return (cycle - 1) * n + j;
            }
        }
        let idx = self.ms.partition_point(|&x| x < within) as u64;
        cycle * n + idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_one_ms_trace_is_12_mbit() {
        let t = Trace::parse("trace", "1\n").unwrap();
        assert_eq!(t.mean_bps_u64(), 12_000_000);
        assert_eq!(t.opp_time_ns(0, 0), 1_000_000);
        assert_eq!(t.opp_time_ns(5, 0), 6_000_000);
        assert_eq!(t.first_opp_at_or_after(5_500_000, 0), 5);
        // opportunities at 1..=999 ms fall in [0, 1000)
        assert_eq!(t.capacity_bits(0, 1000, 0), 999 * 12_000);
    }

    #[test]
    fn repeats_and_offsets() {
        let t = Trace::parse("trace", "0\n0\n3\n10\n").unwrap();
        assert_eq!(t.period_ms, 10);
        assert_eq!(t.opp_time_ns(4, 0), 10_000_000);
        assert_eq!(t.opp_time_ns(6, 0), 13_000_000);
        // offset 3 ms: opportunity 2 (trace time 3 ms) is at emulator time 0
        assert_eq!(t.first_opp_at_or_after(0, 3), 2);
        assert_eq!(t.opp_time_ns(2, 3), 0);
    }

    #[test]
    fn rejects_garbage_with_line() {
        assert!(Trace::parse("trace", "1\nx\n")
            .unwrap_err()
            .contains("trace:2:"));
        assert!(Trace::parse("trace", "5\n3\n").is_err());
        assert!(Trace::parse("trace", "").is_err());
    }

    #[test]
    fn recorded_trace_mean_rate_matches_its_readme() {
        let test = "recorded_trace_mean_rate_matches_its_readme";
        let Some(f) = crate::trace::recorded_for_test("TMobile-LTE-short.down", test) else {
            return;
        };
        let t = Trace::load(&f).unwrap();
        let mbps = t.mean_bps_u64() as f64 / 1e6;
        assert!((16.0..17.5).contains(&mbps), "{mbps}");
    }
}
