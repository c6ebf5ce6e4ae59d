//! Mahimahi link traces as the lab's emulator replays them: one line per 1500-byte delivery
//! opportunity, a time in milliseconds; the trace repeats with a period equal to its last time
//! stamp. Where traces come from (generated or recorded) is [`crate::trace`].

use std::path::Path;

/// A parsed trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Where it came from: a file, or the full `gen:` name.
    pub name: String,
    /// Opportunity times in ms, non-decreasing.
    ts: Vec<u64>,
    period_ms: u64,
}

impl Trace {
    /// Parse the text of a trace file.
    pub fn parse(text: &str) -> Result<Trace, String> {
        Ok(Trace::from_ms(
            "trace",
            crate::trace::parse_mahimahi("trace", text)?,
        ))
    }

    /// A trace from its opportunity times (ms, non-decreasing, not empty), e.g. a generated one.
    pub fn from_ms(name: &str, ts: Vec<u64>) -> Trace {
        let period_ms = ts.last().copied().unwrap_or(1).max(1);
        Trace {
            name: name.to_string(),
            ts,
            period_ms,
        }
    }

    /// Read a trace file.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.display().to_string();
        Ok(Trace::from_ms(
            &name,
            crate::trace::parse_mahimahi(&name, &text)?,
        ))
    }

    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// Mean capacity over one period, bits per second.
    pub fn mean_bps(&self) -> u64 {
        self.ts.len() as u64 * 1500 * 8 * 1000 / self.period_ms
    }

    /// Capacity in bits delivered by opportunities in `[from_ms, to_ms)` of emulator time,
    /// with the trace started `offset_ms` in.
    pub fn capacity_bits(&self, from_ms: u64, to_ms: u64, offset_ms: u64) -> u64 {
        let a = self.first_opp_at_or_after(from_ms * 1_000_000, offset_ms);
        let b = self.first_opp_at_or_after(to_ms * 1_000_000, offset_ms);
        (b - a) * 1500 * 8
    }

    /// Emulator time (ns) of absolute opportunity `k`.
    pub fn opp_time_ns(&self, k: u64, offset_ms: u64) -> u64 {
        let n = self.ts.len() as u64;
        let t_ms = (k / n) * self.period_ms + self.ts[(k % n) as usize];
        (t_ms * 1_000_000).saturating_sub(offset_ms * 1_000_000)
    }

    /// Index of the first opportunity at or after emulator time `t_ns`.
    pub fn first_opp_at_or_after(&self, t_ns: u64, offset_ms: u64) -> u64 {
        let n = self.ts.len() as u64;
        let t_ms = t_ns.div_ceil(1_000_000) + offset_ms;
        let cycle = t_ms / self.period_ms;
        let within = t_ms - cycle * self.period_ms;
        if within == 0 && cycle > 0 {
            // Stamps equal to the period close the previous repetition at this very time.
            let j = self.ts.partition_point(|&x| x < self.period_ms) as u64;
            if j < n {
                return (cycle - 1) * n + j;
            }
        }
        let idx = self.ts.partition_point(|&x| x < within) as u64;
        cycle * n + idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_one_ms_trace_is_12_mbit() {
        let t = Trace::parse("1\n").unwrap();
        assert_eq!(t.mean_bps(), 12_000_000);
        assert_eq!(t.opp_time_ns(0, 0), 1_000_000);
        assert_eq!(t.opp_time_ns(5, 0), 6_000_000);
        assert_eq!(t.first_opp_at_or_after(5_500_000, 0), 5);
        // opportunities at 1..=999 ms fall in [0, 1000)
        assert_eq!(t.capacity_bits(0, 1000, 0), 999 * 12_000);
    }

    #[test]
    fn repeats_and_offsets() {
        let t = Trace::parse("0\n0\n3\n10\n").unwrap();
        assert_eq!(t.period_ms(), 10);
        assert_eq!(t.opp_time_ns(4, 0), 10_000_000);
        assert_eq!(t.opp_time_ns(6, 0), 13_000_000);
        // offset 3 ms: opportunity 2 (trace time 3 ms) is at emulator time 0
        assert_eq!(t.first_opp_at_or_after(0, 3), 2);
        assert_eq!(t.opp_time_ns(2, 3), 0);
    }

    #[test]
    fn rejects_garbage_with_line() {
        assert!(Trace::parse("1\nx\n").unwrap_err().contains("trace:2:"));
        assert!(Trace::parse("5\n3\n").is_err());
        assert!(Trace::parse("").is_err());
    }

    #[test]
    fn recorded_trace_mean_rate_matches_its_readme() {
        let test = "recorded_trace_mean_rate_matches_its_readme";
        let Some(f) = crate::trace::recorded_for_test("TMobile-LTE-short.down", test) else {
            return;
        };
        let t = Trace::load(&f).unwrap();
        let mbps = t.mean_bps() as f64 / 1e6;
        assert!((16.0..17.5).contains(&mbps), "{mbps}");
    }
}
