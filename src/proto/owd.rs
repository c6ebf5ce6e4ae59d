//! Forward queueing delay of a link, from the peer's receive stamps (wire version 4).
//!
//! The RTT of a link adds both directions' queues: while a download fills a cellular link's
//! downstream queue, the edge's RTT on it grows by hundreds of ms although its upstream is
//! empty. What a sender needs for "when does my packet arrive" and "is this link degraded" is
//! the forward direction alone.
//!
//! Every ACK carries the receiver's receive time of the `largest` datagram it acks (µs of the
//! receiver's clock, modulo 2^32). The sender knows when it sent that datagram, so
//! `raw = rx_stamp - tx_time` is the one-way delay plus an unknown constant (the offset between
//! the two clocks). Its windowed minimum is the propagation delay plus that constant; the
//! excess over it is the forward queueing delay. The two clocks tick at slightly different
//! rates (crystals within ~100 ppm): the offset drifts by at most ~1 ms over the 10 s window
//! (as long as the windowed min RTT keeps), which the excess absorbs as an error of that size.
//!
//! The raw values are unwrapped into a signed 64-bit sequence (consecutive samples differ by far
//! less than 2^31 µs, 35 minutes), so the u32 stamps wrap freely (every 71 minutes).

use super::maxfilter::MaxFilter;

/// Window of the minimum, as the link's min RTT.
const WINDOW_US: u64 = 10_000_000;
/// A forward queue estimate with no sample for this long is not trusted (the link carried no
/// data: its queue is unknown).
pub(crate) const STALE_US: u64 = 1_000_000;

/// One link's forward (sender to peer) queueing-delay estimator. Times are the sender's µs. The
/// link also keeps one for its return path, fed the other way round: the peer's send time of an
/// ACK (its clock) as `tx_us`, the ACK's arrival (ours) as the stamp.
#[derive(Debug, Clone, Default)]
pub(crate) struct ForwardDelay {
    /// The previous raw value and its unwrapped form (None before the first sample).
    last: Option<(u32, i64)>,
    /// Windowed minimum of the unwrapped raw values, kept negated in a max filter.
    min: MaxFilter<i64>,
    /// Latest and smoothed (1/8, as srtt) queueing delay, µs.
    latest: u64,
    smoothed: u64,
    /// Sender time of the latest sample.
    at: u64,
}

impl ForwardDelay {
    /// A sample: a datagram sent at `tx_us` (the sender's clock) was received at `rx_stamp`
    /// (the receiver's clock, µs modulo 2^32); `now_us` is the sender's time.
    pub(crate) fn on_sample(&mut self, now_us: u64, tx_us: u64, rx_stamp: u32) {
        let raw = rx_stamp.wrapping_sub(tx_us as u32);
        let v = match self.last {
            None => i64::from(raw as i32),
            Some((r, v)) => v + i64::from(raw.wrapping_sub(r) as i32),
        };
        let first = self.last.is_none();
        self.last = Some((raw, v));
        if first {
            self.min.reset(now_us, -v);
        } else {
            self.min.update(now_us, WINDOW_US, -v);
        }
        let q = (v + self.min.get()).max(0) as u64;
        self.latest = q;
        self.smoothed = if first {
            q
        } else {
            (7 * self.smoothed + q) / 8
        };
        self.at = now_us;
    }

    /// The smoothed forward queueing delay in µs, if measured within [`STALE_US`] of `now_us`.
    pub(crate) fn queue_us(&self, now_us: u64) -> Option<u64> {
        (self.last.is_some() && now_us.saturating_sub(self.at) <= STALE_US).then_some(self.smoothed)
    }

    /// The smoothed queueing delay in µs, however old (0 before any sample).
    pub(crate) fn smoothed_us(&self) -> u64 {
        self.smoothed
    }

    /// The latest sample's queueing delay in µs (0 before any sample).
    pub(crate) fn latest_us(&self) -> u64 {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a sample every 10 ms from `from_ms` for `n` samples: one-way delay `owd(t)` ms, the
    /// receiver's clock = the sender's + `offset` µs, running `ppm` parts per million fast.
    fn feed(
        f: &mut ForwardDelay,
        from_ms: u64,
        n: u64,
        offset: u64,
        ppm: i64,
        owd: impl Fn(u64) -> u64,
    ) {
        for i in 0..n {
            let tx = (from_ms + 10 * i) * 1_000;
            let rx = tx + owd(tx / 1_000) * 1_000;
            let skew = (rx as i64 * ppm / 1_000_000) as u64;
            let stamp = rx.wrapping_add(offset).wrapping_add(skew) as u32;
            f.on_sample(rx, tx, stamp);
        }
    }

    #[test]
    fn excess_over_the_minimum_whatever_the_offset() {
        for offset in [0, 123_456_789, u64::from(u32::MAX) - 5_000, 7 << 40] {
            let mut f = ForwardDelay::default();
            assert_eq!(f.queue_us(0), None);
            feed(&mut f, 0, 100, offset, 0, |_| 20);
            assert_eq!(f.latest_us(), 0, "offset {offset}");
            // A queue builds to 150 ms and stays.
            feed(&mut f, 1_000, 50, offset, 0, |t| 20 + (t - 1_000).min(150));
            assert_eq!(f.latest_us(), 150_000, "offset {offset}");
            let q = f.queue_us(1_500_000).unwrap();
            assert!(q > 100_000 && q <= 150_000, "smoothed {q}");
            assert!(f.queue_us(1_660_000 + STALE_US).is_some());
            assert_eq!(f.queue_us(1_660_001 + STALE_US), None, "stale");
        }
    }

    #[test]
    fn stamps_wrap() {
        // The receiver's stamp wraps (2^32 µs) while the sender's time does not, and back.
        let mut f = ForwardDelay::default();
        let offset = u64::from(u32::MAX) - 400_000; // wraps 400 ms in
        feed(&mut f, 0, 200, offset, 0, |t| {
            if (500..800).contains(&t) {
                60
            } else {
                20
            }
        });
        assert_eq!(f.latest_us(), 0, "back to the floor after the wrap");
        let mut f = ForwardDelay::default();
        feed(&mut f, 0, 60, offset, 0, |t| if t >= 300 { 80 } else { 20 });
        assert_eq!(f.latest_us(), 60_000, "a queue across the wrap");
    }

    #[test]
    fn clock_drift_stays_within_the_window_error() {
        // The receiver's clock runs 100 ppm fast or slow: over a minute the offset moves 6 ms,
        // but the estimate of an empty queue stays within the drift over one window (1 ms).
        for ppm in [100, -100] {
            let mut f = ForwardDelay::default();
            feed(&mut f, 0, 6_000, 1 << 33, ppm, |_| 20);
            assert!(f.latest_us() <= 1_000, "ppm {ppm}: {}", f.latest_us());
            // And a 50 ms queue still reads 50 ms, give or take the drift.
            feed(&mut f, 60_000, 10, 1 << 33, ppm, |_| 70);
            let q = f.latest_us();
            assert!((49_000..=51_000).contains(&q), "ppm {ppm}: {q}");
        }
    }

    #[test]
    fn a_lower_floor_is_taken_at_once_a_higher_one_after_the_window() {
        let mut f = ForwardDelay::default();
        feed(&mut f, 0, 100, 99, 0, |_| 50);
        feed(&mut f, 1_000, 10, 99, 0, |_| 30);
        assert_eq!(f.latest_us(), 0);
        // The path got longer (a handover): after the window it is the new floor.
        feed(&mut f, 1_100, 1_200, 99, 0, |_| 45);
        assert_eq!(f.latest_us(), 0);
    }
}
