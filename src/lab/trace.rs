//! Mahimahi link traces: one line per 1500-byte delivery opportunity, a time in milliseconds;
//! the trace repeats with a period equal to its last time stamp.

use std::path::{Path, PathBuf};

/// A parsed trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Opportunity times in ms, non-decreasing.
    ts: Vec<u64>,
    period_ms: u64,
}

impl Trace {
    /// Parse the text of a trace file.
    pub fn parse(text: &str) -> Result<Trace, String> {
        let mut ts = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let t: u64 = line
                .parse()
                .map_err(|_| format!("line {}: not a time in ms: {line:?}", i + 1))?;
            if ts.last().is_some_and(|&l| t < l) {
                return Err(format!("line {}: time goes backwards", i + 1));
            }
            ts.push(t);
        }
        let Some(&last) = ts.last() else {
            return Err("empty trace".into());
        };
        Ok(Trace {
            ts,
            period_ms: last.max(1),
        })
    }

    /// Read a trace file.
    pub fn load(path: &Path) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
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

/// Where the shared traces are: `$BRAID_TRACES`, `../shared/traces` (beside the repo, as CI
/// lays it), or `/work/shared/traces`.
pub fn traces_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BRAID_TRACES") {
        return PathBuf::from(d);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for c in [
        PathBuf::from("../shared/traces"),
        manifest.join("../shared/traces"),
        manifest.join("../../shared/traces"),
        PathBuf::from("/work/shared/traces"),
    ] {
        if c.is_dir() {
            return c;
        }
    }
    PathBuf::from("../shared/traces")
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
        assert!(Trace::parse("1\nx\n").unwrap_err().contains("line 2"));
        assert!(Trace::parse("5\n3\n").is_err());
        assert!(Trace::parse("").is_err());
    }

    #[test]
    fn shared_traces_mean_rates_match_readme() {
        let dir = traces_dir();
        let f = dir.join("TMobile-LTE-short.down");
        if !f.exists() {
            eprintln!("skip: {} not found", f.display());
            return;
        }
        let t = Trace::load(&f).unwrap();
        let mbps = t.mean_bps() as f64 / 1e6;
        assert!((16.0..17.5).contains(&mbps), "{mbps}");
    }
}
