//! When the edge steers its LAN into the tunnel, and what it steers: the fail-open decision
//! ([`FailOpen`], fed by the event loop, which installs or withdraws the rules it asks for) and
//! the rules' settings from the config ([`steer_config`]).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::model::{self, Config, Steer};
use crate::os::space::SteerConfig;
use crate::os::Prefix;
use crate::proto::Instant;

/// Steering is withdrawn when no link has worked and the core has not been heard for this long
/// (fail-open).
pub(crate) const FAIL_OPEN_AFTER: Duration = Duration::from_secs(3);

/// What to do with the steering rules, as [`FailOpen::review`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SteerAction {
    /// Leave them as they are.
    Keep,
    /// Install them. `after_fail_open`: this process withdrew them earlier, so clients used
    /// the plain WAN meanwhile and the conntrack entries it made must go too.
    Install { after_fail_open: bool },
    /// Withdraw them: clients fail open to the plain WAN.
    Withdraw,
}

/// When the edge steers the LAN into the tunnel and when its clients fail open to the plain
/// WAN: the decision alone, fed by the event loop (times as [`crate::proto::Instant`]).
///
/// Steering goes in once the session is established, and comes out when for
/// [`FAIL_OPEN_AFTER`] no link has been anything but Down *and* no datagram from the core has
/// opened (a dead or unreachable core, every link black-holed), or when the session closes.
/// It goes back in at the first sign of life: a link not Down, or any datagram from the core
/// (a probe reply on a link still Down), so that the clients' retransmissions stop leaving by
/// the plain WAN as early as possible.
#[derive(Debug, Clone)]
pub(crate) struct FailOpen {
    /// When a link last worked: not Down, or the core heard on it.
    last_ok: Instant,
    /// The steering was withdrawn and has not been installed since.
    withdrawn: bool,
}

impl FailOpen {
    pub(crate) fn new(now: Instant) -> FailOpen {
        FailOpen {
            last_ok: now,
            withdrawn: false,
        }
    }

    /// What to do now. `live`: the session is established and not closed; `installed`: the
    /// rules are in place; `any_up`: a link is not Down; `heard`: when a datagram from the
    /// core last opened. A `Withdraw` is taken as done; an `Install`, once
    /// [`FailOpen::installed`] is called.
    pub(crate) fn review(
        &mut self,
        now: Instant,
        live: bool,
        installed: bool,
        any_up: bool,
        heard: Option<Instant>,
    ) -> SteerAction {
        if any_up {
            self.last_ok = self.last_ok.max(now);
        }
        if let Some(h) = heard {
            self.last_ok = self.last_ok.max(h);
        }
        let quiet = now.saturating_since(self.last_ok) >= FAIL_OPEN_AFTER;
        match (installed, live && !quiet) {
            (true, false) => {
                self.withdrawn = true;
                SteerAction::Withdraw
            }
            (false, true) => SteerAction::Install {
                after_fail_open: self.withdrawn,
            },
            _ => SteerAction::Keep,
        }
    }

    /// The rules asked for by an `Install` are in place.
    pub(crate) fn installed(&mut self) {
        self.withdrawn = false;
    }
}

/// Config prefixes as the OS layer takes them.
pub(crate) fn prefixes(c: &[model::Cidr]) -> Vec<Prefix> {
    c.iter().map(|c| Prefix::new(c.addr, c.prefix)).collect()
}

/// The steering rules the config asks for: its LAN sources into the hub, its bypasses and the
/// core's addresses out of it.
pub(crate) fn steer_config(cfg: &Config, core: &[SocketAddr]) -> SteerConfig {
    let mut s = SteerConfig::new();
    s.sources = prefixes(&cfg.main.lan);
    s.tcp_only = cfg.main.steer == Steer::Tcp;
    s.bypass = prefixes(&cfg.main.bypass);
    // Traffic to the core itself (any of its addresses) never enters the tunnel.
    s.bypass.extend(core.iter().map(|a| Prefix::host(a.ip())));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant(n * 1000)
    }

    const KEEP: SteerAction = SteerAction::Keep;
    const OUT: SteerAction = SteerAction::Withdraw;
    const IN: SteerAction = SteerAction::Install {
        after_fail_open: false,
    };
    const AGAIN: SteerAction = SteerAction::Install {
        after_fail_open: true,
    };

    /// One review: (ms, live, installed, any_up, heard at ms, what it must answer). An
    /// `Install` answer is acknowledged with `installed()` when the next step says the rules
    /// are in.
    type Step = (u64, bool, bool, bool, Option<u64>, SteerAction);

    fn walk(steps: &[Step]) {
        let mut f = FailOpen::new(ms(0));
        for &(t, live, installed, any_up, heard, want) in steps {
            if installed {
                f.installed();
            }
            let got = f.review(ms(t), live, installed, any_up, heard.map(ms));
            assert_eq!(got, want, "at {t} ms");
        }
    }

    #[test]
    fn steering_goes_in_once_established_and_out_after_3_s_of_silence() {
        let mut steps: Vec<Step> = vec![
            // Not established yet: nothing, whatever the links say.
            (100, false, false, true, None, KEEP),
            // Established (the handshake answer is a datagram from the core).
            (200, true, false, false, Some(200), IN),
            (700, true, true, true, Some(650), KEEP),
            // The core dies at 1 s: heard last at 1 s, a link Down from 1.5 s.
            (1500, true, true, true, Some(1000), KEEP),
        ];
        for t in (2000..4500).step_by(500) {
            steps.push((t, true, true, false, Some(1000), KEEP));
        }
        // 3 s after the last link was up: withdrawn (not later than before the core's
        // datagrams counted). Still dead: stays out.
        steps.push((4500, true, true, false, Some(1000), OUT));
        steps.push((9000, true, false, false, Some(1000), KEEP));
        walk(&steps);
    }

    #[test]
    fn the_first_datagram_from_the_core_steers_again_before_any_link_is_up() {
        walk(&[
            (0, true, false, true, Some(0), IN),
            // Every link black-holed from 10 s: Down from 10.3 s, withdrawn 3 s later.
            (10_300, true, true, true, Some(10_000), KEEP),
            (13_000, true, true, false, Some(10_000), KEEP),
            (13_500, true, true, false, Some(10_000), OUT),
            (14_000, true, false, false, Some(10_000), KEEP),
            // 15 s: a probe reply opens; every link is still Down.
            (15_010, true, false, false, Some(15_000), AGAIN),
            // Until it is in place, the answer stays (an install that failed is tried again).
            (15_500, true, false, false, Some(15_000), AGAIN),
            // The links take a while to be declared Up: the steering stays meanwhile.
            (16_000, true, true, false, Some(15_900), KEEP),
            (16_500, true, true, true, Some(16_450), KEEP),
            // A later fail-open is reported as one again.
            (20_000, true, true, false, Some(16_500), OUT),
            (20_100, true, false, true, Some(16_500), AGAIN),
        ]);
    }

    #[test]
    fn a_closed_session_never_steers() {
        walk(&[
            (0, true, false, true, Some(0), IN),
            // The core closed the session: out at once, though the links are fine.
            (1000, false, true, true, Some(1000), OUT),
            (1500, false, false, true, Some(1500), KEEP),
        ]);
    }

    #[test]
    fn the_core_and_the_bypasses_never_enter_the_tunnel() {
        let mut cfg = super::super::fixture();
        let core: SocketAddr = "203.0.113.7:51830".parse().unwrap();
        let s = steer_config(&cfg, &[core]);
        let p = |a: &str, n| Prefix::new(a.parse().unwrap(), n);
        assert_eq!(s.sources, vec![p("192.168.1.0", 24), p("10.20.0.0", 16)]);
        assert!(s.bypass.contains(&p("172.16.0.0", 12)));
        assert!(s.bypass.contains(&Prefix::host(core.ip())));
        assert!(!s.tcp_only);
        cfg.main.steer = Steer::Tcp;
        assert!(steer_config(&cfg, &[core]).tcp_only);
    }
}
