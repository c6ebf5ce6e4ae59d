//! The emulation model of one direction of a link, one set of types for the simulator's links
//! ([`crate::sim::link`]) and the lab's per-packet emulator ([`crate::lab::emu`]), so that what
//! the simulator proves is what the lab shows.
//!
//! A direction ([`DirSpec`]) has a [`Rate`] (fixed, a Mahimahi [`Trace`], or none), a one-way
//! delay with jitter, a [`Loss`] process (random and Gilbert-Elliott bursty), a drop-tail
//! [`QueueLimit`] and an [`Outage`] schedule. Scenario files (`scenarios/`, read by
//! [`crate::sim::scenario`]) describe them; the two engines replay them, the simulator on a
//! virtual clock, the lab in real time between veths.

#![forbid(unsafe_code)]

use std::sync::Arc;

use crate::sim::rng::Rng;
pub use crate::trace::{Trace, TRACE_MTU};

/// The smallest queue limit in bytes: two full-size packets, so a link always carries something.
pub const MIN_QUEUE_BYTES: u64 = 3000;

/// How fast a direction serves its queue.
#[derive(Debug, Clone, Default)]
pub enum Rate {
    /// No bottleneck: only delay, loss and outages apply (the lab's `maxrate`).
    #[default]
    Unlimited,
    /// A constant rate in bit/s.
    Fixed(u64),
    /// A Mahimahi trace, started `offset_us` into its first period.
    Trace { trace: Arc<Trace>, offset_us: u64 },
}

impl Rate {
    /// Mean rate in bit/s (`None`: unlimited).
    pub(crate) fn mean_bps(&self) -> Option<f64> {
        match self {
            Rate::Unlimited => None,
            Rate::Fixed(bps) => Some(*bps as f64),
            Rate::Trace { trace, .. } => Some(trace.mean_bps()),
        }
    }

    /// Bits the rate offers in [from, to) µs (infinite when unlimited).
    pub(crate) fn capacity_bits(&self, from_us: u64, to_us: u64) -> f64 {
        match self {
            Rate::Unlimited => f64::INFINITY,
            Rate::Fixed(bps) => *bps as f64 * (to_us.saturating_sub(from_us)) as f64 / 1e6,
            Rate::Trace { trace, offset_us } => {
                let n =
                    trace.count_until(to_us + offset_us) - trace.count_until(from_us + offset_us);
                n as f64 * f64::from(TRACE_MTU) * 8.0
            }
        }
    }
}

/// A drop-tail queue limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    Bytes(u64),
    /// Time at the mean rate (µs), converted to bytes.
    Time(u64),
    Unlimited,
}

impl Default for QueueLimit {
    /// 100 ms at the mean rate.
    fn default() -> Self {
        QueueLimit::Time(100_000)
    }
}

impl QueueLimit {
    /// The limit in bytes for a direction of `rate` (`None`: no limit), never below
    /// [`MIN_QUEUE_BYTES`].
    pub(crate) fn bytes(&self, rate: &Rate) -> Option<u64> {
        match *self {
            QueueLimit::Bytes(b) => Some(b.max(MIN_QUEUE_BYTES)),
            QueueLimit::Time(us) => rate
                .mean_bps()
                .map(|bps| ((bps * us as f64 / 8e6) as u64).max(MIN_QUEUE_BYTES)),
            QueueLimit::Unlimited => None,
        }
    }
}

/// What an outage does to a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageKind {
    /// Everything sent into, queued in or travelling over the link during the window is lost.
    Blackhole,
    /// The link serves nothing during the window and holds what is travelling until it ends.
    Stall,
}

/// One window of an outage schedule, in µs from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Outage {
    pub start_us: u64,
    pub end_us: u64,
    pub kind: OutageKind,
}

impl Outage {
    /// A `kind` outage over [start, end) µs.
    pub(crate) fn new(kind: OutageKind, start_us: u64, end_us: u64) -> Outage {
        Outage {
            start_us,
            end_us,
            kind,
        }
    }
}

/// The outage in force at `t_us` (the first that covers it).
pub(crate) fn outage_at(schedule: &[Outage], t_us: u64) -> Option<&Outage> {
    schedule
        .iter()
        .find(|o| o.start_us <= t_us && t_us < o.end_us)
}

/// The first time after `t_us` at which the schedule starts or ends an outage.
pub(crate) fn next_outage_edge(schedule: &[Outage], t_us: u64) -> Option<u64> {
    schedule
        .iter()
        .flat_map(|o| [o.start_us, o.end_us])
        .filter(|&t| t > t_us)
        .min()
}

/// Gilbert-Elliott bursty loss: a good and a bad state, switching once per packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Probability of moving good -> bad.
    pub(crate) enter: f64,
    /// Probability of moving bad -> good.
    pub(crate) leave: f64,
    pub(crate) loss_good: f64,
    pub(crate) loss_bad: f64,
}

impl Gilbert {
    /// Bursts of `burst` packets on average (lossless good state, bad state that loses all) with
    /// a long-run loss of `mean`.
    pub(crate) fn from_mean(mean: f64, burst: f64) -> Gilbert {
        let leave = 1.0 / burst.max(1.0);
        Gilbert {
            enter: (mean * leave / (1.0 - mean).max(1e-9)).min(1.0),
            leave,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// Long-run loss ratio.
    pub(crate) fn mean_loss(&self) -> f64 {
        let bad = self.enter / (self.enter + self.leave).max(f64::MIN_POSITIVE);
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }

    /// Mean length of a stay in the bad state, in packets.
    pub(crate) fn mean_burst(&self) -> f64 {
        1.0 / self.leave.max(f64::MIN_POSITIVE)
    }
}

/// The loss process of a direction: random loss, and bursty loss on top.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Loss {
    /// Ratio of packets lost independently, in [0, 1].
    pub(crate) random: f64,
    pub(crate) burst: Option<Gilbert>,
}

impl Loss {
    /// Long-run loss ratio.
    pub(crate) fn mean(&self) -> f64 {
        let b = self.burst.map_or(0.0, |g| g.mean_loss());
        1.0 - (1.0 - self.random) * (1.0 - b)
    }
}

/// The state of a [`Loss`] process (the Gilbert-Elliott state).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LossState {
    bad: bool,
}

impl LossState {
    /// Whether the next packet is lost. Draws from `rng` in a fixed order (random loss, then
    /// the state change, then the state's loss), so a seed gives the same losses everywhere.
    pub(crate) fn lose(&mut self, loss: &Loss, rng: &mut Rng) -> bool {
        let mut lost = rng.chance(loss.random);
        if let Some(g) = loss.burst {
            let flip = if self.bad { g.leave } else { g.enter };
            if rng.chance(flip) {
                self.bad = !self.bad;
            }
            let p = if self.bad { g.loss_bad } else { g.loss_good };
            lost |= rng.chance(p);
        }
        lost
    }
}

/// The configuration of one direction of a link (by default: unlimited, no delay, a 100 ms
/// queue, nothing else).
#[derive(Debug, Clone, Default)]
pub struct DirSpec {
    pub rate: Rate,
    /// One-way propagation delay (µs).
    pub delay_us: u64,
    /// Each packet's delay is `delay ± jitter`.
    pub jitter_us: u64,
    /// Let jitter reorder packets (off: a packet never overtakes an earlier one).
    pub reorder: bool,
    pub loss: Loss,
    /// Ratio of datagrams that arrive with one bit flipped (tampering / corruption; simulator).
    pub corrupt: f64,
    pub queue: QueueLimit,
    pub outages: Vec<Outage>,
}

impl DirSpec {
    /// A fixed-rate direction with a 100 ms queue and nothing else.
    #[cfg(test)]
    pub(crate) fn fixed(bps: u64, delay_us: u64) -> DirSpec {
        DirSpec {
            rate: Rate::Fixed(bps),
            delay_us,
            ..DirSpec::default()
        }
    }

    /// Mean rate in bit/s (infinite when unlimited).
    pub(crate) fn mean_bps(&self) -> f64 {
        self.rate.mean_bps().unwrap_or(f64::INFINITY)
    }

    /// Capacity in bits offered in [from, to) µs, not counting outage windows.
    pub(crate) fn capacity_bits(&self, from_us: u64, to_us: u64) -> f64 {
        let mut total = self.rate.capacity_bits(from_us, to_us);
        for o in &self.outages {
            let (s, e) = (o.start_us.max(from_us), o.end_us.min(to_us));
            if s < e {
                total -= self.rate.capacity_bits(s, e);
            }
        }
        total.max(0.0)
    }

    /// The queue limit in bytes (`None`: unlimited).
    pub(crate) fn queue_limit_bytes(&self) -> Option<u64> {
        self.queue.bytes(&self.rate)
    }

    /// The outage in force at `t_us`.
    pub(crate) fn outage_at(&self, t_us: u64) -> Option<&Outage> {
        outage_at(&self.outages, t_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_means_and_capacity() {
        assert_eq!(Rate::Fixed(20_000_000).mean_bps(), Some(20e6));
        assert_eq!(Rate::Unlimited.mean_bps(), None);
        assert_eq!(Rate::Fixed(8_000_000).capacity_bits(0, 500_000), 4e6);
        // Opportunities at 1, 2 and 2 ms, every 2 ms: 1.5 packets of 1500 bytes a ms.
        let t = Arc::new(Trace::parse("t", "1\n2\n2\n").unwrap());
        for offset_us in [0, 1000] {
            let r = Rate::Trace {
                trace: t.clone(),
                offset_us,
            };
            assert!((r.mean_bps().unwrap() - 18e6).abs() < 1.0);
            assert!((r.capacity_bits(0, 1_000_000) - 18e6).abs() < 40_000.0);
        }
        // Offset by one 2 ms period: the same; by 1 ms: the window holds other opportunities.
        let at = |offset_us| {
            Rate::Trace {
                trace: t.clone(),
                offset_us,
            }
            .capacity_bits(0, 1000)
        };
        assert_eq!(at(0), at(2000));
        assert_ne!(at(0), at(1000));
    }

    #[test]
    fn capacity_leaves_out_outages() {
        let mut d = DirSpec::fixed(1_000_000, 0);
        d.outages = vec![Outage::new(OutageKind::Blackhole, 250_000, 500_000)];
        assert_eq!(d.capacity_bits(0, 1_000_000), 750_000.0);
        assert_eq!(d.capacity_bits(250_000, 500_000), 0.0);
    }

    #[test]
    fn queue_limit_in_bytes() {
        let r = Rate::Fixed(8_000_000); // 1 MB/s
        assert_eq!(QueueLimit::Time(50_000).bytes(&r), Some(50_000));
        assert_eq!(QueueLimit::Bytes(64_000).bytes(&r), Some(64_000));
        // Never below two full packets, never limited without a rate to convert time with.
        assert_eq!(QueueLimit::Bytes(100).bytes(&r), Some(MIN_QUEUE_BYTES));
        assert_eq!(QueueLimit::Time(1).bytes(&r), Some(MIN_QUEUE_BYTES));
        assert_eq!(QueueLimit::Time(50_000).bytes(&Rate::Unlimited), None);
        assert_eq!(QueueLimit::Unlimited.bytes(&r), None);
    }

    #[test]
    fn outage_schedule_lookup_and_edges() {
        let s = [
            Outage::new(OutageKind::Stall, 10, 15),
            Outage::new(OutageKind::Blackhole, 20, 30),
        ];
        assert_eq!(outage_at(&s, 9), None);
        assert_eq!(outage_at(&s, 10).map(|o| o.kind), Some(OutageKind::Stall));
        assert_eq!(outage_at(&s, 14).map(|o| o.kind), Some(OutageKind::Stall));
        assert_eq!(outage_at(&s, 15), None);
        assert_eq!(
            outage_at(&s, 29).map(|o| o.kind),
            Some(OutageKind::Blackhole)
        );
        assert_eq!(next_outage_edge(&s, 0), Some(10));
        assert_eq!(next_outage_edge(&s, 12), Some(15));
        assert_eq!(next_outage_edge(&s, 15), Some(20));
        assert_eq!(next_outage_edge(&s, 30), None);
    }

    fn loss_run(loss: Loss, seed: u64, n: usize) -> Vec<bool> {
        let (mut st, mut rng) = (LossState::default(), Rng::new(seed));
        (0..n).map(|_| st.lose(&loss, &mut rng)).collect()
    }

    #[test]
    fn random_loss_hits_its_rate_independently() {
        let lost = loss_run(
            Loss {
                random: 0.02,
                burst: None,
            },
            3,
            200_000,
        );
        let r = lost.iter().filter(|&&l| l).count() as f64 / lost.len() as f64;
        assert!((r - 0.02).abs() < 0.002, "random loss {r}");
        // Independent: a loss after a loss is no likelier than any loss.
        let pairs = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        let after = pairs / lost.iter().filter(|&&l| l).count() as f64;
        assert!(after < 0.05, "{after}");
        assert!(!loss_run(Loss::default(), 1, 10_000).contains(&true));
    }

    #[test]
    fn bursty_loss_hits_its_mean_in_bursts() {
        let g = Gilbert::from_mean(0.02, 5.0);
        assert!((g.mean_loss() - 0.02).abs() < 1e-9);
        assert!((g.mean_burst() - 5.0).abs() < 1e-9);
        let loss = Loss {
            random: 0.0,
            burst: Some(g),
        };
        assert!((loss.mean() - 0.02).abs() < 1e-9);
        let lost = loss_run(loss, 4, 400_000);
        let n = lost.iter().filter(|&&l| l).count() as f64;
        let r = n / lost.len() as f64;
        assert!((r - 0.02).abs() < 0.003, "bursty loss {r}");
        let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
        assert!(n / bursts > 4.0, "mean burst {}", n / bursts);
    }

    #[test]
    fn a_seed_gives_the_same_losses() {
        let loss = Loss {
            random: 0.01,
            burst: Some(Gilbert::from_mean(0.01, 3.0)),
        };
        assert_eq!(loss_run(loss, 9, 5000), loss_run(loss, 9, 5000));
        assert_ne!(loss_run(loss, 9, 5000), loss_run(loss, 10, 5000));
    }
}
