//! One call per daemon: everything the edge or the core needs from the host, made in order
//! and undone in reverse order on drop, or when a step fails half-way (each piece is a guard).
//!
//! ```no_run
//! # fn main() -> braid::os::Result<()> {
//! use braid::os::plane::EdgePlane;
//! use braid::os::space::{HubConfig, SteerConfig};
//! let mut steer = SteerConfig::new();
//! steer.sources = vec!["192.168.1.0/24".parse().unwrap()];
//! steer.bypass = vec!["203.0.113.7/32".parse().unwrap()]; // the core
//! let edge = EdgePlane::start(HubConfig::new("braid"), steer)?;
//! // In the runtime: braid::os::hub::AsyncCapture::new(edge.capture.try_clone()?)...
//! # Ok(()) }
//! ```

use super::hub::Capture;
use super::nat::{self, CoreNat, Forwarding, NatConfig};
use super::space::{cleanup_stale, Cleaned, Hub, HubConfig, Space, SteerConfig, Steering};
use super::{Error, Result};

/// The edge's data plane on the host. Fields drop in order: capture, steering rules and
/// routes, hub, space.
#[derive(Debug)]
#[allow(dead_code)] // fields held for their Drop (the teardown), not read
pub struct EdgePlane {
    /// Capture/injection socket on the space end of the hub.
    pub capture: Capture,
    /// Policy rules and routes steering the LAN into the hub.
    steering: Steering,
    /// The veth pair.
    hub: Hub,
    /// The namespace braid owns.
    space: Space,
    /// What a previous, crashed instance had left and was removed first.
    pub cleaned: Cleaned,
}

impl EdgePlane {
    /// Cleans what a crashed instance of the same name left, then creates space, hub,
    /// steering and capture (in the calling thread's namespace as the host).
    pub fn start(hub: HubConfig, steer: SteerConfig) -> Result<EdgePlane> {
        if steer.sources.is_empty() {
            return Err(Error::invalid(
                "start the edge hub",
                "no LAN source to steer",
            ));
        }
        let cleaned = cleanup_stale(&hub, &steer)?;
        let space = Space::new()?;
        let hub = Hub::create(&space, hub)?;
        let steering = Steering::install(&hub, steer)?;
        let capture = Capture::open(&space, &hub)?;
        Ok(EdgePlane {
            capture,
            steering,
            hub,
            space,
            cleaned,
        })
    }
}

/// The core's data plane on the host. Fields drop in order: capture, NAT table, steering,
/// hub, space, forwarding settings.
#[derive(Debug)]
#[allow(dead_code)] // fields held for their Drop (the teardown), not read
pub struct CorePlane {
    /// Capture/injection socket on the space end of the hub.
    capture: Capture,
    /// Braid's nftables table (masquerade of the pools).
    nat: CoreNat,
    /// Rules and routes steering replies to the pools into the hub.
    steering: Steering,
    /// The veth pair.
    hub: Hub,
    /// The namespace braid owns.
    space: Space,
    /// IP forwarding, restored on drop if braid turned it on.
    forwarding: Forwarding,
    /// What a previous, crashed instance had left (rules/routes, and its nftables table).
    cleaned: (Cleaned, bool),
}

impl CorePlane {
    /// Cleans a crashed instance's leftovers, then makes everything. `steer.destinations` is
    /// set to the NAT pools.
    pub fn start(hub: HubConfig, mut steer: SteerConfig, nat_cfg: &NatConfig) -> Result<CorePlane> {
        steer.sources.clear();
        steer.destinations = nat_cfg.pools();
        let cleaned = (
            cleanup_stale(&hub, &steer)?,
            nat::cleanup_stale(&nat_cfg.instance)?,
        );
        // IPv4 forwarding is turned on (and restored on exit). IPv6 forwarding is left to the
        // operator: turning `all/forwarding` on stops router advertisements from being
        // accepted (accept_ra=1), which would cost a cloud server its IPv6 default route.
        let forwarding = Forwarding::enable(false)?;
        if nat_cfg.pool_v6.is_some()
            && super::sysctl_get("net/ipv6/conf/all/forwarding")
                .ok()
                .as_deref()
                != Some("1")
        {
            log::warn!("IPv6 forwarding is off: IPv6 from edges will not be forwarded");
        }
        let space = Space::new()?;
        let hub = Hub::create(&space, hub)?;
        let steering = Steering::install(&hub, steer)?;
        let nat = CoreNat::install(nat_cfg)?;
        let capture = Capture::open(&space, &hub)?;
        Ok(CorePlane {
            capture,
            nat,
            steering,
            hub,
            space,
            forwarding,
            cleaned,
        })
    }
}
