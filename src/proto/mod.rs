//! The protocol core: sans-IO, deterministic, clock-free.
//!
//! Nothing here imports tokio, nix, libc or pnet, and nothing reads a clock: every method that
//! needs the time takes an [`Instant`] argument. The event loops (and the simulator) own the
//! clock and the sockets, and drive this code through `handle_*` / `poll_*` calls.
#![forbid(unsafe_code)]

pub mod coalesce;
pub mod cookie;
pub mod endpoint;
pub(crate) mod fasthash;
pub mod link;
pub(crate) mod maxfilter;
pub mod offload;
pub(crate) mod owd;
pub mod pack;
pub mod packet;
pub mod reorder;
pub mod sched;
pub mod seal;
pub mod session;
pub mod wire;

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in microseconds from an arbitrary epoch chosen by the caller.
///
/// A plain `u64` so that it is `Copy`, ordered, works on 32-bit targets and can be driven by the
/// simulator's virtual clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub(crate) const ZERO: Instant = Instant(0);

    pub fn from_micros(us: u64) -> Instant {
        Instant(us)
    }

    pub(crate) fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub(crate) fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_micros() as u64))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.as_micros() as u64))
    }
}

/// Identifies one link (uplink) within a session. Chosen by the edge, carried in every data frame.
pub type LinkId = u8;
