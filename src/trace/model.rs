//! The cellular link model behind generated traces, and its named presets.
//!
//! A trace is one direction (up or down) of one modem, built millisecond by millisecond:
//!
//! 1. **Rate.** `ln(rate) = slow_sigma * S(t) + fast_sigma * F(t)`, where `S` and `F` are
//!    Ornstein-Uhlenbeck (AR(1), Gaussian steps, unit variance) processes. `S` is shadowing
//!    (distance to the cell, buildings, the cell's load), correlated over `slow_tau` seconds
//!    and stepped every 50 ms; `F` is fading and the scheduler's share, correlated over
//!    `fast_tau` (50 to 150 ms) and stepped every 5 ms, so the rate wanders within one round
//!    trip. The rate is log-normal and capped at the direction's `peak`. Up and down of one
//!    modem share the part `shared` of the variance of `S` (the same place, the same cell);
//!    their `F` are their own.
//! 2. **Dead spells** (per direction): no service at all, starting at exponential intervals of
//!    mean `dead.every_s`, each lasting a log-uniform time in `dead.len_s` (many short ones, a
//!    few long ones), as a modem at the edge of coverage loses its uplink or downlink.
//! 3. **Handovers** (per modem, both directions): every `every_s` (uniform), the link stops for
//!    `gap_ms` (uniform); with probability `fail` the handover fails and the modem needs
//!    `fail_s` (uniform) to re-establish its radio link.
//! 4. **Tunnels** (per train, shared by every modem of the same seed): every `every_s`
//!    (uniform), `len_s` long; each modem goes dark up to `enter_s` after the tunnel starts (its
//!    antenna is elsewhere on the train) and needs `reattach_s` after it ends to attach again.
//! 5. **Scale.** The rate path is scaled so that the trace's mean over its whole length,
//!    outages included, is the direction's `mean_mbit` (within a fraction of a percent: the
//!    credit a dark spell cuts off is lost): a scenario's capacity is known.
//! 6. **Opportunities.** Capacity accrues as credit of 1500-byte opportunities, lost while the
//!    link is dark; the cell serves a modem in a share `grant` of the milliseconds, and each
//!    served millisecond releases the whole opportunities accrued (LTE grants come in bursts).
//!    Opportunity `k` of millisecond `i` is written as time `i + 1`; the trace's last line is
//!    exactly `seconds * 1000` (Mahimahi's period is its last time stamp), with one opportunity
//!    added there if the trace ends dark.
//!
//! Every process draws from its own stream of the seed (per preset, modem and direction), so
//! changing one setting does not reshuffle the others, and a different modem number gives an
//! independent radio in the same train. Only `+ - * /`, `sqrt`, `floor` and this module's own
//! `exp`/`ln` are used, all exact or platform-independent, so a seed gives the same trace on
//! every machine (a golden test runs on x86_64 and big-endian MIPS alike).
//!
//! The presets' figures are tuned against the recorded Mahimahi traces where those exist (the
//! T-Mobile LTE and AT&T LTE driving traces, see [`super`]) and are assumptions of a typical
//! network otherwise (UMTS, high-speed rail); `braid trace list` prints what each gives.

use crate::sim::rng::Rng;

/// Bits carried by one delivery opportunity.
pub(crate) const OPP_BITS: f64 = 1500.0 * 8.0;

/// A direction of a link (the simulator's too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// Modem to network (edge to core).
    Up,
    /// Network to modem (core to edge).
    Down,
}

impl Dir {
    /// `up` or `down`, as trace specs, scenario files, workloads and reports spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Dir> {
        [Dir::Up, Dir::Down].into_iter().find(|d| d.name() == s)
    }
}

/// A named cellular link: both directions and the events they share.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub(crate) name: &'static str,
    /// One line: what it stands for.
    pub(crate) about: &'static str,
    up: DirModel,
    down: DirModel,
    /// Correlation time of the slow (shadowing) part of the log-rate, seconds.
    slow_tau_s: f64,
    /// Correlation time of the fast (fading, scheduling) part, seconds.
    fast_tau_s: f64,
    /// Share of the slow part's variance common to up and down (0 to 1).
    shared: f64,
    handover: Option<Handover>,
    tunnel: Option<Tunnel>,
}

/// One direction of a preset.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirModel {
    /// Mean rate over the whole trace, outages included, Mbit/s.
    mean_mbit: f64,
    /// Standard deviation of the slow part of ln(rate).
    slow_sigma: f64,
    /// Standard deviation of the fast part of ln(rate).
    fast_sigma: f64,
    /// The rate never exceeds this, Mbit/s.
    peak_mbit: f64,
    /// Share of milliseconds in which the cell serves the modem (0 to 1].
    grant: f64,
    dead: Option<Spells>,
}

/// Dead spells of one direction.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spells {
    /// Mean time between spells (exponential), seconds.
    every_s: f64,
    /// Shortest and longest spell (log-uniform), seconds.
    len_s: (f64, f64),
}

/// Handovers of one modem (both directions stop).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Handover {
    /// Time between handovers (uniform), seconds.
    every_s: (f64, f64),
    /// Interruption of a successful handover (uniform), ms.
    gap_ms: (f64, f64),
    /// Probability that a handover fails.
    fail: f64,
    /// Outage after a failed handover (uniform), seconds.
    fail_s: (f64, f64),
}

/// Tunnels on the route: every modem of the train goes dark.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tunnel {
    /// Time from the end of one tunnel to the start of the next (uniform), seconds.
    every_s: (f64, f64),
    /// Length of a tunnel (uniform), seconds.
    len_s: (f64, f64),
    /// A modem goes dark this long after the tunnel starts (uniform, per modem), seconds.
    enter_s: (f64, f64),
    /// A modem needs this long after the tunnel ends to attach again (uniform, per modem), s.
    reattach_s: (f64, f64),
}

/// The named presets (`gen:NAME`), in `presets.json` (an absent `dead`, `handover` or
/// `tunnel` is none).
pub fn presets() -> &'static [Preset] {
    static PRESETS: std::sync::OnceLock<Vec<Preset>> = std::sync::OnceLock::new();
    PRESETS.get_or_init(|| {
        serde_json::from_str(include_str!("presets.json")).expect("trace/presets.json is valid")
    })
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    presets().iter().find(|p| p.name == name)
}

/// Names of every preset, for messages.
pub(crate) fn preset_names() -> String {
    presets()
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to generate from a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub(crate) dir: Dir,
    pub(crate) seed: u64,
    /// Which modem of the train: modems of one seed share its tunnels and nothing else.
    pub(crate) modem: u32,
    pub(crate) seconds: u32,
}

/// Why a stretch of a trace is dark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Dead,
    Handover,
    FailedHandover,
    Tunnel,
}

/// A dark stretch `[start_ms, end_ms)` of a generated trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    start_ms: u64,
    end_ms: u64,
    cause: Cause,
}

// Streams of the seed, one per process (see `stream`).
const S_SLOW_SHARED: u64 = 1;
const S_SLOW: u64 = 2;
const S_FAST: u64 = 3;
const S_DEAD: u64 = 4;
const S_GRANT: u64 = 5;
const S_HANDOVER: u64 = 6;
const S_TUNNEL_SKEW: u64 = 7;
/// The train's tunnels: the same for every preset and modem of a seed.
const S_TUNNELS: u64 = 0x7475_6e6e_656c;
/// The fast part of the rate moves in steps of this many ms (its correlation time is 50 ms or
/// more), the slow part in steps of SLOW_STEP_MS (a multiple of it).
const FAST_STEP_MS: u64 = 5;
const SLOW_STEP_MS: u64 = 50;

impl Preset {
    pub(crate) fn dir(&self, d: Dir) -> &DirModel {
        match d {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    /// The random stream of one process of one modem (and direction) of this preset.
    fn stream(&self, p: &Params, process: u64, dir: Option<Dir>) -> Rng {
        let name = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let d = match dir {
            None => 0,
            Some(Dir::Up) => 1,
            Some(Dir::Down) => 2,
        };
        let id = name ^ (u64::from(p.modem) << 16) ^ (d << 8) ^ process;
        Rng::derive(p.seed, id)
    }

    /// The dark windows of a trace (dead spells of its direction, the modem's handovers and the
    /// train's tunnels), sorted by start, clipped to the trace.
    pub(crate) fn windows(&self, p: &Params) -> Vec<Window> {
        let n = u64::from(p.seconds) * 1000;
        let mut w = Vec::new();
        if let Some(s) = &self.dir(p.dir).dead {
            let mut rng = self.stream(p, S_DEAD, Some(p.dir));
            let mut t = exponential(&mut rng, s.every_s * 1000.0);
            while t < n as f64 {
                let len = log_uniform(&mut rng, s.len_s.0 * 1000.0, s.len_s.1 * 1000.0);
                w.push(window(t, t + len, Cause::Dead));
                t += len + exponential(&mut rng, s.every_s * 1000.0);
            }
        }
        if let Some(h) = &self.handover {
            let mut rng = self.stream(p, S_HANDOVER, None);
            let mut t = uniform(&mut rng, h.every_s) * 1000.0;
            while t < n as f64 {
                let (len, cause) = if rng.chance(h.fail) {
                    (uniform(&mut rng, h.fail_s) * 1000.0, Cause::FailedHandover)
                } else {
                    (uniform(&mut rng, h.gap_ms), Cause::Handover)
                };
                w.push(window(t, t + len, cause));
                t += uniform(&mut rng, h.every_s) * 1000.0;
            }
        }
        if let Some(tu) = &self.tunnel {
            let mut train = Rng::derive(p.seed, S_TUNNELS);
            let mut skew = self.stream(p, S_TUNNEL_SKEW, None);
            let mut t = uniform(&mut train, tu.every_s) * 1000.0;
            while t < n as f64 {
                let len = uniform(&mut train, tu.len_s) * 1000.0;
                let enter = uniform(&mut skew, tu.enter_s) * 1000.0;
                let reattach = uniform(&mut skew, tu.reattach_s) * 1000.0;
                w.push(window(t + enter, t + len + reattach, Cause::Tunnel));
                t += len + uniform(&mut train, tu.every_s) * 1000.0;
            }
        }
        for x in &mut w {
            x.end_ms = x.end_ms.min(n);
        }
        w.retain(|x| x.start_ms < x.end_ms);
        w.sort_by_key(|x| (x.start_ms, x.end_ms));
        w
    }

    /// The trace: the time (ms) of every 1500-byte delivery opportunity, non-decreasing, the
    /// last one at exactly `seconds * 1000`.
    pub(crate) fn generate(&self, p: &Params) -> Vec<u64> {
        let n = u64::from(p.seconds.max(1)) * 1000;
        let m = self.dir(p.dir);
        let mut dark = vec![false; n as usize];
        for w in self.windows(p) {
            dark[w.start_ms as usize..w.end_ms as usize].fill(true);
        }

        // 1. The unscaled rate of every step of FAST_STEP_MS, and how many of its milliseconds
        //    are not dark. Every process steps through dark time too, so an outage does not
        //    shift what follows it.
        let steps = n.div_ceil(FAST_STEP_MS) as usize;
        let per_slow = (SLOW_STEP_MS / FAST_STEP_MS) as usize;
        let step_slow = SLOW_STEP_MS as f64 / (self.slow_tau_s * 1000.0);
        let mut slow_shared = Ou::new(step_slow, self.stream(p, S_SLOW_SHARED, None));
        let mut slow_own = Ou::new(step_slow, self.stream(p, S_SLOW, Some(p.dir)));
        let step_fast = FAST_STEP_MS as f64 / (self.fast_tau_s * 1000.0);
        let mut fast = Ou::new(step_fast, self.stream(p, S_FAST, Some(p.dir)));
        let (ws, wo) = (self.shared.sqrt(), (1.0 - self.shared).sqrt());
        let mut slow = 0.0;
        let mut rate = Vec::with_capacity(steps);
        let mut alive = Vec::with_capacity(steps);
        for (j, ms) in dark.chunks(FAST_STEP_MS as usize).enumerate() {
            if j % per_slow == 0 {
                slow = ws * slow_shared.step() + wo * slow_own.step();
            }
            rate.push(exp(m.slow_sigma * slow + m.fast_sigma * fast.step()));
            alive.push(ms.iter().filter(|d| !**d).count() as f64);
        }

        // 2. Scale to the mean (bits per ms), under the peak.
        let target = m.mean_mbit * 1000.0 * n as f64;
        let peak = m.peak_mbit * 1000.0;
        let served = |k: f64| -> f64 {
            rate.iter()
                .zip(&alive)
                .map(|(&r, &a)| (k * r).min(peak) * a)
                .sum()
        };
        let mut k = 1.0;
        for _ in 0..6 {
            let got = served(k);
            if got <= 0.0 {
                break;
            }
            k *= target / got;
        }

        // 3. Opportunities, released on the cell's grants.
        let mut grant = self.stream(p, S_GRANT, Some(p.dir));
        let threshold = (m.grant.clamp(0.0, 1.0) * 18_446_744_073_709_551_615.0) as u64;
        let mut out = Vec::with_capacity((target / OPP_BITS) as usize + 1);
        let mut credit = 0.0f64;
        let mut per_ms = 0.0;
        for (i, &d) in dark.iter().enumerate() {
            if i as u64 % FAST_STEP_MS == 0 {
                per_ms = (k * rate[i / FAST_STEP_MS as usize]).min(peak) / OPP_BITS;
            }
            let served = grant.next_u64() < threshold;
            if d {
                credit = 0.0;
                continue;
            }
            credit += per_ms;
            if served && credit >= 1.0 {
                let whole = credit.floor();
                credit -= whole;
                out.extend(std::iter::repeat(i as u64 + 1).take(whole as usize));
            }
        }
        if out.last() != Some(&n) {
            out.push(n);
        }
        out
    }
}

fn window(start: f64, end: f64, cause: Cause) -> Window {
    Window {
        start_ms: start.max(0.0) as u64,
        end_ms: end.max(0.0).ceil() as u64,
        cause,
    }
}

/// An Ornstein-Uhlenbeck process of unit variance sampled every `step` correlation times.
struct Ou {
    x: f64,
    a: f64,
    b: f64,
    rng: Rng,
}

impl Ou {
    fn new(step: f64, mut rng: Rng) -> Ou {
        let a = exp(-step);
        Ou {
            x: normal(&mut rng),
            a,
            b: (1.0 - a * a).sqrt(),
            rng,
        }
    }

    fn step(&mut self) -> f64 {
        self.x = self.a * self.x + self.b * normal(&mut self.rng);
        self.x
    }
}

/// A standard normal draw: the sum of 12 uniforms less 6 (Irwin-Hall; only additions, so the
/// same on every platform; tails end at +-6 sigma).
fn normal(rng: &mut Rng) -> f64 {
    let mut s = -6.0;
    for _ in 0..12 {
        s += rng.f64();
    }
    s
}

/// Uniform in `[lo, hi)`.
fn uniform(rng: &mut Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.f64()
}

/// Exponential of mean `mean`.
fn exponential(rng: &mut Rng, mean: f64) -> f64 {
    -ln(1.0 - rng.f64()) * mean
}

/// Log-uniform in `[lo, hi)` (`lo > 0`).
fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    let (a, b) = (ln(lo), ln(hi));
    exp(a + (b - a) * rng.f64())
}

const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// e^x from IEEE basic operations only (libm's `exp` may differ in the last bit between
/// platforms, which would change a generated trace).
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    // x = k ln2 + r, |r| <= ln2 / 2; e^r by its Taylor series (13 terms: error < 1e-16).
    let k = (x * core::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=13 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// The natural logarithm from IEEE basic operations only (see [`exp`]); NaN for x <= 0.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    if x < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first.
        return ln(x * 18_014_398_509_481_984.0) - 54.0 * (LN2_HI + LN2_LO);
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172: 12 odd terms, error < 1e-18.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = s;
    let mut sum = 0.0;
    for k in 0..12 {
        sum += p / f64::from(2 * k + 1);
        p *= s2;
    }
    let e = e as f64;
    (2.0 * sum + e * LN2_LO) + e * LN2_HI
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::stats::{both_dead_share, Stats};

    fn params(dir: Dir, seed: u64, modem: u32) -> Params {
        Params {
            dir,
            seed,
            modem,
            seconds: 120,
        }
    }

    fn fnv(ms: &[u64]) -> u64 {
        ms.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, t| {
            t.to_le_bytes().iter().fold(h, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        })
    }

    #[test]
    fn own_exp_and_ln_agree_with_libm() {
        use core::f64::consts::{FRAC_1_SQRT_2, SQRT_2};
        let mut x = -60.0;
        while x < 60.0 {
            let (a, b) = (exp(x), x.exp());
            assert!((a - b).abs() <= b * 2e-15, "exp({x}) = {a}, libm {b}");
            x += 0.173;
        }
        for &x in &[
            1e-300,
            1e-10,
            0.001,
            0.5,
            FRAC_1_SQRT_2,
            1.0,
            SQRT_2,
            1.5,
            2.0,
            10.0,
            123.456,
            1e200,
        ] {
            let (a, b) = (ln(x), x.ln());
            assert!(
                (a - b).abs() <= b.abs().max(1.0) * 2e-15,
                "ln({x}) = {a}, libm {b}"
            );
        }
        assert_eq!(ln(f64::MIN_POSITIVE / 8.0), (f64::MIN_POSITIVE / 8.0).ln());
        assert!(ln(0.0).is_nan() && ln(-1.0).is_nan());
        assert_eq!(exp(-1000.0), 0.0);
    }

    #[test]
    fn a_seed_gives_one_well_formed_trace() {
        let short = |dir, seed, modem| Params {
            seconds: 20,
            ..params(dir, seed, modem)
        };
        for p in presets() {
            for dir in [Dir::Up, Dir::Down] {
                let a = p.generate(&short(dir, 5, 0));
                assert_eq!(a, p.generate(&short(dir, 5, 0)), "{} {dir:?}", p.name);
                assert_ne!(a, p.generate(&short(dir, 6, 0)), "{} {dir:?}", p.name);
                assert_ne!(a, p.generate(&short(dir, 5, 1)), "{} {dir:?}", p.name);
                assert!(a.windows(2).all(|w| w[0] <= w[1]));
                assert!(a[0] >= 1, "stamps start at 1 ms");
                assert_eq!(*a.last().unwrap(), 20_000, "the period is the length");
            }
        }
    }

    /// The same bits on every platform (this test also runs on big-endian MIPS under qemu): the
    /// model uses no libm function. A change to the model or a preset changes these on purpose.
    #[test]
    fn golden_traces() {
        let p = preset("lte-good").unwrap().generate(&Params {
            dir: Dir::Up,
            seed: 1,
            modem: 0,
            seconds: 30,
        });
        let h = preset("hsr").unwrap().generate(&Params {
            dir: Dir::Down,
            seed: 2,
            modem: 1,
            seconds: 30,
        });
        assert_eq!(
            (p.len(), fnv(&p)),
            (32495, 18366781207550950707),
            "lte-good/up?seed=1&seconds=30"
        );
        assert_eq!(
            (h.len(), fnv(&h)),
            (24982, 15966191583410468792),
            "hsr/down?seed=2&modem=1&seconds=30"
        );
    }

    /// What each preset stands for, over three seeds of 120 s: (preset, dir, p10, p50, p90 of the
    /// 100 ms rate in Mbit/s, dead share) as ranges.
    #[test]
    fn presets_have_their_statistics() {
        type R = (f64, f64);
        let want: &[(&str, Dir, R, R, R, R)] = &[
            (
                "lte-good",
                Dir::Up,
                (2.0, 5.0),
                (8.0, 13.0),
                (22.0, 32.0),
                (0.0, 0.03),
            ),
            (
                "lte-good",
                Dir::Down,
                (2.0, 6.0),
                (10.0, 16.0),
                (28.0, 45.0),
                (0.01, 0.10),
            ),
            (
                "lte-driving",
                Dir::Up,
                (0.0, 0.3),
                (0.8, 1.6),
                (3.5, 6.0),
                (0.10, 0.35),
            ),
            (
                "lte-driving",
                Dir::Down,
                (0.0, 1.0),
                (2.5, 4.0),
                (8.5, 13.0),
                (0.06, 0.16),
            ),
            (
                "umts",
                Dir::Up,
                (0.5, 0.9),
                (1.1, 1.5),
                (2.0, 3.0),
                (0.0, 0.04),
            ),
            (
                "umts",
                Dir::Down,
                (1.5, 2.5),
                (3.8, 5.0),
                (8.0, 10.0),
                (0.0, 0.06),
            ),
            (
                "hsr",
                Dir::Up,
                (0.0, 1.0),
                (2.5, 3.5),
                (7.5, 10.5),
                (0.05, 0.16),
            ),
            (
                "hsr",
                Dir::Down,
                (0.0, 2.5),
                (6.5, 9.0),
                (19.0, 24.5),
                (0.05, 0.16),
            ),
        ];
        let inr = |x: f64, r: R| r.0 <= x && x <= r.1;
        for &(name, dir, p10, p50, p90, dead) in want {
            let p = preset(name).unwrap();
            for seed in 1..=3 {
                let s = Stats::of(&p.generate(&params(dir, seed, 0)));
                let what = s.row(&format!("{name}/{} seed {seed}", dir.name()));
                let mean = p.dir(dir).mean_mbit;
                assert!(
                    (s.mean_mbit / mean - 1.0).abs() < 0.01,
                    "mean {mean}: {what}"
                );
                assert!(inr(s.p10_mbit, p10), "p10 {p10:?}: {what}");
                assert!(inr(s.p50_mbit, p50), "p50 {p50:?}: {what}");
                assert!(inr(s.p90_mbit, p90), "p90 {p90:?}: {what}");
                assert!(inr(s.dead_share, dead), "dead {dead:?}: {what}");
            }
        }
    }

    #[test]
    fn dark_windows_carry_nothing_and_happen_as_configured() {
        let hsr = preset("hsr").unwrap();
        let h = hsr.handover.as_ref().unwrap();
        for seed in 1..=3 {
            let pa = params(Dir::Down, seed, 0);
            let ms = hsr.generate(&pa);
            let w = hsr.windows(&pa);
            for x in &w {
                let inside = ms
                    .iter()
                    .filter(|&&t| t > x.start_ms && t <= x.end_ms && t < 120_000)
                    .count();
                assert_eq!(inside, 0, "{x:?} carried {inside} opportunities");
            }
            // Handovers every 8-20 s: 5 to 15 in 120 s, 30-80 ms each unless they failed.
            let hos: Vec<&Window> = w
                .iter()
                .filter(|x| matches!(x.cause, Cause::Handover | Cause::FailedHandover))
                .collect();
            assert!((5..=15).contains(&hos.len()), "{} handovers", hos.len());
            for x in hos {
                let len = (x.end_ms - x.start_ms) as f64;
                match x.cause {
                    Cause::Handover => assert!(len >= h.gap_ms.0 && len <= h.gap_ms.1 + 1.0),
                    _ => assert!(len >= h.fail_s.0 * 1000.0 && len <= h.fail_s.1 * 1000.0 + 1.0),
                }
            }
            // A tunnel at least every 30-90 s (+ its length): one or more in 120 s, 2-10 s dark.
            let tun: Vec<&Window> = w.iter().filter(|x| x.cause == Cause::Tunnel).collect();
            assert!(!tun.is_empty());
            assert!(tun
                .iter()
                .all(|x| (1500..=10_000).contains(&(x.end_ms - x.start_ms))));
            // Up and down of a modem share its handovers and tunnels, not their dead spells.
            let up = hsr.windows(&params(Dir::Up, seed, 0));
            let shared = |v: &[Window]| -> Vec<Window> {
                v.iter()
                    .copied()
                    .filter(|x| x.cause != Cause::Dead)
                    .collect()
            };
            assert_eq!(shared(&up), shared(&w));
            let dead = |v: &[Window]| -> Vec<Window> {
                v.iter()
                    .copied()
                    .filter(|x| x.cause == Cause::Dead)
                    .collect()
            };
            assert_ne!(dead(&up), dead(&w));
        }
    }

    /// Two modems of one train (same seed) go dark together in its tunnels, and otherwise have
    /// their own radio: their own rate, handovers and dead spells.
    #[test]
    fn modems_of_a_train_share_its_tunnels_only() {
        let hsr = preset("hsr").unwrap();
        for seed in 1..=3 {
            let (p0, p1) = (params(Dir::Down, seed, 0), params(Dir::Down, seed, 1));
            let tunnels = |p: &Params| -> Vec<Window> {
                hsr.windows(p)
                    .into_iter()
                    .filter(|x| x.cause == Cause::Tunnel)
                    .collect()
            };
            let (t0, t1) = (tunnels(&p0), tunnels(&p1));
            assert_eq!(t0.len(), t1.len());
            let mut together = 0;
            for (a, b) in t0.iter().zip(&t1) {
                assert_ne!(a, b, "each modem enters and leaves on its own");
                let overlap = a
                    .end_ms
                    .min(b.end_ms)
                    .saturating_sub(a.start_ms.max(b.start_ms));
                assert!(overlap >= 1000, "{a:?} {b:?}");
                together += overlap;
            }
            let (m0, m1) = (hsr.generate(&p0), hsr.generate(&p1));
            assert_ne!(m0, m1);
            let both = both_dead_share(&m0, &m1);
            assert!(
                both * 120_000.0 >= together as f64,
                "seed {seed}: both dark {:.0} ms, tunnels together {together} ms",
                both * 120_000.0
            );
            let others = |p: &Params| -> Vec<Window> {
                hsr.windows(p)
                    .into_iter()
                    .filter(|x| x.cause != Cause::Tunnel)
                    .collect()
            };
            assert_ne!(others(&p0), others(&p1));
        }
        // Presets without tunnels: two modems are dark together only by chance.
        let car = preset("lte-driving").unwrap();
        let (a, b) = (
            car.generate(&params(Dir::Up, 1, 0)),
            car.generate(&params(Dir::Up, 1, 1)),
        );
        let (sa, sb) = (Stats::of(&a), Stats::of(&b));
        let both = both_dead_share(&a, &b);
        assert!(
            both < 2.0 * sa.dead_share * sb.dead_share + 0.01,
            "{both} vs {} x {}",
            sa.dead_share,
            sb.dead_share
        );
    }

    /// The presets modelled on recorded traces stay near them: the mean rate, the 10th/50th/90th
    /// percentiles of the 100 ms rate, the dead share and the 1 s autocorrelation (generated:
    /// the average over seeds 1 to 3). Needs the recorded traces in $BRAID_TRACES.
    #[test]
    fn presets_resemble_the_recorded_traces() {
        let pairs = [
            ("lte-good", Dir::Up, "TMobile-LTE-short.up"),
            ("lte-good", Dir::Down, "TMobile-LTE-short.down"),
            ("lte-driving", Dir::Up, "ATT-LTE-driving-2016.up"),
            ("lte-driving", Dir::Down, "ATT-LTE-driving-2016.down"),
        ];
        for (name, dir, file) in pairs {
            let Some(path) =
                crate::trace::recorded_for_test(file, "presets_resemble_the_recorded_traces")
            else {
                return;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            let rec = Stats::of(&crate::trace::parse_mahimahi(file, &text).unwrap());
            let gens: Vec<Stats> = (1..=3)
                .map(|seed| Stats::of(&preset(name).unwrap().generate(&params(dir, seed, 0))))
                .collect();
            let avg = |f: fn(&Stats) -> f64| gens.iter().map(f).sum::<f64>() / 3.0;
            let gen = Stats {
                mean_mbit: avg(|s| s.mean_mbit),
                p10_mbit: avg(|s| s.p10_mbit),
                p50_mbit: avg(|s| s.p50_mbit),
                p90_mbit: avg(|s| s.p90_mbit),
                dead_share: avg(|s| s.dead_share),
                autocorr_1s: avg(|s| s.autocorr_1s),
                ..gens[0]
            };
            println!("{}", rec.row(file));
            println!(
                "{}",
                gen.row(&format!("gen:{name}/{} (seeds 1-3)", dir.name()))
            );
            let near = |g: f64, r: f64, rel: f64, abs: f64| (g - r).abs() <= r * rel + abs;
            assert!(near(gen.mean_mbit, rec.mean_mbit, 0.10, 0.0), "{name} mean");
            assert!(near(gen.p10_mbit, rec.p10_mbit, 0.35, 0.3), "{name} p10");
            assert!(near(gen.p50_mbit, rec.p50_mbit, 0.35, 0.3), "{name} p50");
            assert!(near(gen.p90_mbit, rec.p90_mbit, 0.35, 0.3), "{name} p90");
            assert!(
                near(gen.dead_share, rec.dead_share, 0.5, 0.02),
                "{name} dead"
            );
            assert!(
                near(gen.autocorr_1s, rec.autocorr_1s, 0.0, 0.25),
                "{name} ac"
            );
        }
    }
}
