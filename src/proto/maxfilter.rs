//! Kathleen Nichols' windowed max (Linux `lib/minmax.c`): the largest sample of the last
//! `win` time units, kept from three samples. The link estimator's bottleneck bandwidth (time
//! in µs) and the simulator's BBR model of Linux TCP (time in rounds) use it.

/// Windowed max over time (three best samples, as Linux `minmax`): `(time, value)` pairs, the
/// best first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MaxFilter<V> {
    s: [(u64, V); 3],
}

impl<V: Copy + PartialOrd> MaxFilter<V> {
    /// The windowed max.
    pub(crate) fn get(&self) -> V {
        self.s[0].1
    }

    /// Forgets every sample: `v` at `t` is the max.
    pub(crate) fn reset(&mut self, t: u64, v: V) {
        self.s = [(t, v); 3];
    }

    /// Adds sample `v` at time `t` (not before the samples kept) to a window of `win`.
    pub(crate) fn update(&mut self, t: u64, win: u64, v: V) {
        if v >= self.s[0].1 || t.saturating_sub(self.s[2].0) > win {
            self.reset(t, v);
            return;
        }
        if v >= self.s[1].1 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if v >= self.s[2].1 {
            self.s[2] = (t, v);
        }
        let dt = t.saturating_sub(self.s[0].0);
        if dt > win {
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = (t, v);
            if t.saturating_sub(self.s[0].0) > win {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
            }
        } else if self.s[1].0 == self.s[0].0 && dt > win / 4 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if self.s[2].0 == self.s[1].0 && dt > win / 2 {
            self.s[2] = (t, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_filter_forgets_after_window() {
        let mut f = MaxFilter::default();
        f.update(0, 1000, 50);
        f.update(100, 1000, 40);
        f.update(600, 1000, 30);
        assert_eq!(f.get(), 50);
        f.update(1200, 1000, 20);
        assert!(f.get() < 50);
        f.update(2500, 1000, 10);
        assert_eq!(f.get(), 10);
    }
}
