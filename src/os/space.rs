//! The space (braid's own network namespace), the veth hub into it, and the host policy rules
//! that steer client traffic through the hub.
//!
//! # Lifetime: nothing outlives the process
//! [`Space::new`] calls `unshare(CLONE_NEWNET)` on a short-lived thread and keeps only an open fd of
//! the new namespace. It is never bind-mounted under `/run/netns`: the namespace is referenced
//! only by that fd, by the sockets made inside it, and it is destroyed by the kernel when the
//! process exits for any reason (kill -9 included). Destroying it deletes the space end of the
//! veth, which deletes the host end, which flushes every route through it: the steering table
//! becomes empty, the steering rules match but find no route, and lookup falls through to the
//! main table. Clients fall back to the plain WAN (fail-open). Only the policy rules themselves
//! (inert by then) survive a crash; [`cleanup_stale`] removes them on the next start.
//!
//! # How a frame reaches the capture, and why the space never answers
//! The host routes steered packets to a next hop (`peer_v4`, `peer_v6`) that is a permanent
//! neighbour entry on the host end pointing at `peer_mac`, a MAC address that no interface has.
//! The frames arrive on the space end with a foreign destination MAC, so the space's kernel marks
//! them PACKET_OTHERHOST and its IPv4, IPv6 and ARP input drop them before any processing
//! (`ip_rcv_core`, `ipv6_rcv`, `arp_rcv`), while the AF_PACKET capture of [`crate::os::hub`]
//! still sees them. As defence in depth the space also has no addresses and no routes, IPv6
//! disabled, forwarding off and IFF_NOARP on its end, so even a frame addressed to its own MAC
//! would find no local address to answer from.

//!
//! # What the host's firewall must allow
//! The host forwards LAN -> hub and hub -> LAN like any routed interface. On OpenWrt, fw4's
//! forward chain rejects traffic toward interfaces outside its zones, and braid adds no
//! firewall rule of its own on the edge (an accept in another nftables table cannot override
//! fw4's drop). The package must therefore put the device `<instance>-hub` into a firewall zone
//! with forwarding lan -> that zone (uci-defaults), without masquerading (client addresses
//! enter the tunnel unchanged). Replies are conntrack-established and pass.

use super::netlink::{Family, Netlink, Route, Rule, RuleAction};
use super::{in_netns, sysctl_set, Error, Prefix, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The namespace braid owns. Dropping it (or the process dying) destroys it, and with it
/// everything inside (the space end of the hub, sockets).
#[derive(Debug)]
pub struct Space {
    ns: OwnedFd,
}

impl Space {
    /// Creates a fresh network namespace owned by this process (see the module doc) and makes
    /// its stack inert: forwarding off, IPv6 disabled by default, ARP replies off.
    pub fn new() -> Result<Space> {
        let ns = std::thread::scope(|s| {
            s.spawn(|| -> Result<OwnedFd> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::new("unshare(CLONE_NEWNET) for the space", e.into()))?;
                let f = std::fs::File::open("/proc/thread-self/ns/net")
                    .map_err(|e| Error::new("open the space's namespace fd", e))?;
                for (k, v) in [
                    ("net/ipv4/ip_forward", "0"),
                    ("net/ipv4/conf/all/forwarding", "0"),
                    ("net/ipv4/conf/default/forwarding", "0"),
                    ("net/ipv4/conf/all/arp_ignore", "8"),
                    ("net/ipv4/conf/default/arp_ignore", "8"),
                    ("net/ipv4/conf/all/accept_local", "0"),
                    ("net/ipv6/conf/all/forwarding", "0"),
                    ("net/ipv6/conf/default/disable_ipv6", "1"),
                    ("net/ipv6/conf/all/disable_ipv6", "1"),
                ] {
                    // IPv6 may be compiled out: the settings it cannot take do not matter then.
                    if let Err(e) = sysctl_set(k, v) {
                        if !k.starts_with("net/ipv6") {
                            return Err(e);
                        }
                    }
                }
                Ok(OwnedFd::from(f))
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        Ok(Space { ns })
    }

    /// The namespace fd (for `IFLA_NET_NS_FD` and `setns`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }

    /// Runs `f` on a thread inside the space and returns its result. Sockets opened by `f` stay
    /// in the space and can be used from any thread (e.g. wrapped in tokio's `AsyncFd`).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        in_netns(self.fd(), f)
    }

    /// Starts a long-lived thread inside the space.
    pub fn spawn<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let ns = self
            .ns
            .try_clone()
            .map_err(|e| Error::new("duplicate the space fd", e))?;
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::new("setns into the space", e.into()))?;
                drop(ns);
                Ok(f())
            })
            .map_err(|e| Error::new("spawn a thread in the space", e))
    }
}

/// Settings of the hub (the veth pair between host and space).
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Instance name: the host end is `<instance>-hub`, the space end `<instance>-sp`
    /// (at most 11 bytes so the names fit IFNAMSIZ).
    instance: String,
    /// MTU of both ends. Packets bigger than this are answered by the host's own stack with
    /// ICMP "fragmentation needed" / "packet too big" before they reach braid.
    pub(crate) mtu: u32,
    /// Address on the host end (a /30 or /31 of link-local space by default).
    host_v4: Prefix,
    /// The next hop the host routes steered IPv4 to (only a neighbour entry: no interface has it).
    peer_v4: Ipv4Addr,
    /// The IPv6 next hop (link-local, only a neighbour entry).
    peer_v6: Ipv6Addr,
    /// The MAC of the next hop: deliberately not the space end's MAC (see the module doc).
    pub peer_mac: [u8; 6],
    /// The MAC of the space end.
    pub space_mac: [u8; 6],
}

impl HubConfig {
    /// Defaults for an instance name.
    pub fn new(instance: &str) -> Self {
        HubConfig {
            instance: instance.to_string(),
            mtu: 1500,
            host_v4: Prefix::new(IpAddr::V4(Ipv4Addr::new(169, 254, 98, 1)), 30),
            peer_v4: Ipv4Addr::new(169, 254, 98, 2),
            peer_v6: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x62, 2),
            peer_mac: [0x02, 0x62, 0x72, 0x64, 0x00, 0x02],
            space_mac: [0x02, 0x62, 0x72, 0x64, 0x00, 0x03],
        }
    }

    /// Name of the host end.
    pub fn host_name(&self) -> String {
        format!("{}-hub", self.instance)
    }

    /// Name of the space end.
    pub(crate) fn space_name(&self) -> String {
        format!("{}-sp", self.instance)
    }
}

/// The veth hub, created by [`Hub::create`]. Dropping it deletes the pair.
#[derive(Debug)]
pub struct Hub {
    /// Its settings.
    pub config: HubConfig,
    /// Index of the host end (in the host namespace).
    host_index: u32,
    /// MAC of the host end: frames written toward the host must carry it as destination.
    pub host_mac: [u8; 6],
    /// Index of the space end (in the space).
    pub space_index: u32,
    // Opened in the host namespace at creation: cleanup works from any thread.
    nl: Netlink,
    deleted: bool,
}

impl Hub {
    /// Creates the pair from the calling thread's namespace (the host) into `space`, with its
    /// addresses, neighbour entries, MTU and sysctls, both ends up.
    pub fn create(space: &Space, config: HubConfig) -> Result<Hub> {
        if config.instance.is_empty() || config.instance.len() > 11 {
            return Err(Error::invalid(
                format!("create hub for instance {:?}", config.instance),
                "instance name must be 1..=11 bytes",
            ));
        }
        let (hname, sname) = (config.host_name(), config.space_name());
        let mut nl = Netlink::open()?;
        nl.create_veth(&hname, &sname, Some(space.fd()))?;
        let host_index = nl.index(&hname)?;
        let mut hub = Hub {
            config: config.clone(),
            host_index,
            host_mac: [0; 6],
            space_index: 0,
            nl: Netlink::open()?,
            deleted: false,
        };
        // From here on, dropping `hub` on error deletes the pair.
        let space_index = space.run(|| -> Result<u32> {
            let mut snl = Netlink::open()?;
            let i = snl.index(&sname)?;
            snl.set_mac(i, config.space_mac)?;
            snl.set_noarp(i, true)?;
            snl.set_mtu(i, config.mtu)?;
            for (k, v) in [("forwarding", "0"), ("rp_filter", "0"), ("arp_ignore", "8")] {
                sysctl_set(&format!("net/ipv4/conf/{sname}/{k}"), v)?;
            }
            let _ = sysctl_set(&format!("net/ipv6/conf/{sname}/disable_ipv6"), "1");
            snl.set_up(i, true)?;
            Ok(i)
        })??;
        hub.space_index = space_index;
        nl.set_mtu(host_index, config.mtu)?;
        // The offloads the capture finishes itself, and no other: the kernel does the rest
        // before frames cross the hub (see crate::os::hub).
        if let Err(e) = super::ethtool::set_features(&hname, &super::hub::hub_feature) {
            log::warn!(
                "cannot set the offloads of {hname} ({e}): aggregates other than TCP that \
                 reach the hub will be dropped"
            );
        }
        // Loose reverse-path check on the host end: replies written by braid come from internet
        // sources that the host would route elsewhere when steering is TCP-only.
        sysctl_set(&format!("net/ipv4/conf/{hname}/rp_filter"), "2")?;
        sysctl_set(&format!("net/ipv4/conf/{hname}/forwarding"), "1")?;
        let _ = sysctl_set(&format!("net/ipv6/conf/{hname}/accept_ra"), "0");
        nl.add_address(host_index, config.host_v4)?;
        nl.set_up(host_index, true)?;
        nl.add_neighbour(host_index, IpAddr::V4(config.peer_v4), config.peer_mac)?;
        // IPv6 may be disabled on the host: then braid steers IPv4 only.
        let _ = nl.add_neighbour(host_index, IpAddr::V6(config.peer_v6), config.peer_mac);
        // Frames sent before both ends are operational are dropped by the kernel: wait (briefly).
        let up = std::time::Duration::from_secs(2);
        let space_up = space.run(|| Netlink::open()?.wait_oper_up(space_index, up))??;
        if !nl.wait_oper_up(host_index, up)? || !space_up {
            log::warn!("hub {hname} not operational after {up:?}; continuing");
        }
        hub.host_mac = nl
            .link_by_index(host_index)?
            .and_then(|l| l.mac)
            .ok_or_else(|| Error::invalid(format!("read mac of {hname}"), "no mac"))?;
        Ok(hub)
    }

    /// Deletes the pair now (also done on drop); an already-gone pair is not an error.
    pub(crate) fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        match self.nl.delete_link(self.host_index) {
            Err(e) if e.errno() != Some(libc::ENODEV) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            log::warn!("hub cleanup: {e}");
        }
    }
}

/// What the host steers into the hub.
#[derive(Clone, Debug)]
pub struct SteerConfig {
    /// Dedicated routing table (holds only braid's default routes through the hub).
    pub table: u32,
    /// First rule priority; braid uses `priority .. priority + RULE_SPAN`.
    pub priority: u32,
    /// Marks braid's routes and rules (rtm_protocol / FRA_PROTOCOL) so a later start finds them.
    protocol: u8,
    /// Edge: LAN sources whose traffic is steered (`from <src> lookup <table>`).
    pub sources: Vec<Prefix>,
    /// Core: destinations steered into the hub (`to <dst> lookup <table>`).
    pub destinations: Vec<Prefix>,
    /// Steer only TCP (other protocols of the sources take the plain WAN).
    pub tcp_only: bool,
    /// Destinations never steered (the core's address, operator bypasses). The source prefixes
    /// themselves are always bypassed as destinations, so LAN-to-LAN traffic stays local.
    pub bypass: Vec<Prefix>,
    /// Core: a blackhole route behind the hub's in the table, so that while no braid runs (a
    /// restart) packets to the destinations are dropped silently instead of following the
    /// main table (out to the internet, or to the host's own stack). Never on the edge: its
    /// fail-open needs the table to empty when braid dies.
    pub(crate) hold: bool,
}

/// Metric of the [`SteerConfig::hold`] blackhole: behind any route through the hub.
pub(crate) const HOLD_METRIC: u32 = u32::MAX;

/// Number of rule priorities [`Steering`] uses from [`SteerConfig::priority`].
pub const RULE_SPAN: u32 = 4;

impl SteerConfig {
    /// Defaults for instance `braid`: table 0x6272 ("br"), priorities 9000..9004, protocol 98.
    pub fn new() -> Self {
        SteerConfig {
            table: 0x6272,
            priority: 9000,
            protocol: 98,
            sources: Vec::new(),
            destinations: Vec::new(),
            tcp_only: false,
            bypass: Vec::new(),
            hold: false,
        }
    }

    /// The rules this configuration installs, in order.
    ///
    /// ```text
    /// P+0  iif lo            goto P+3    the router's own traffic never enters the hub
    /// P+1  to <bypass|src>   goto P+3    core address, bypasses, LAN-to-LAN
    /// P+2  from <src> [ipproto tcp] lookup T    /    to <dst> lookup T
    /// P+3  nop                           end of braid's rules: lookup continues (main, ...)
    /// ```
    pub fn rules(&self) -> Vec<Rule> {
        let p = self.priority;
        let end = p + RULE_SPAN - 1;
        let mut out = Vec::new();
        let mut families: Vec<Family> = Vec::new();
        for f in self
            .sources
            .iter()
            .chain(&self.destinations)
            .map(|x| Family::of(&x.addr))
        {
            if !families.contains(&f) {
                families.push(f);
            }
        }
        let mk = |fam, prio, action| {
            let mut r = Rule::new(fam, prio, action);
            r.protocol = self.protocol;
            r
        };
        for &fam in &families {
            let mut r = mk(fam, p, RuleAction::Goto(end));
            r.iif = Some("lo".into());
            out.push(r);
            for b in self.bypass.iter().chain(&self.sources) {
                if Family::of(&b.addr) == fam {
                    let mut r = mk(fam, p + 1, RuleAction::Goto(end));
                    r.dst = Some(b.network());
                    out.push(r);
                }
            }
            for s in &self.sources {
                if Family::of(&s.addr) == fam {
                    let mut r = mk(fam, p + 2, RuleAction::Lookup(self.table));
                    r.src = Some(s.network());
                    r.ip_proto = self.tcp_only.then_some(6);
                    out.push(r);
                }
            }
            for d in &self.destinations {
                if Family::of(&d.addr) == fam {
                    let mut r = mk(fam, p + 2, RuleAction::Lookup(self.table));
                    r.dst = Some(d.network());
                    out.push(r);
                }
            }
            out.push(mk(fam, end, RuleAction::Nop));
        }
        out
    }
}

impl Default for SteerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The installed steering: routes in the dedicated table and the policy rules. Dropping it
/// removes them.
#[derive(Debug)]
pub struct Steering {
    config: SteerConfig,
    rules: Vec<Rule>,
    nl: Netlink,
    removed: bool,
}

impl Steering {
    /// Installs the default routes of `config.table` through `hub` and then the rules (routes
    /// first, so a rule never points at an empty table while braid runs).
    pub fn install(hub: &Hub, config: SteerConfig) -> Result<Steering> {
        let mut st = Steering {
            config: config.clone(),
            rules: Vec::new(),
            nl: Netlink::open()?,
            removed: false,
        };
        let nl = &mut st.nl;
        let want_v6 = config
            .sources
            .iter()
            .chain(&config.destinations)
            .any(|p| !p.is_ipv4());
        let v4 = Route::new(Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
            .via(IpAddr::V4(hub.config.peer_v4))
            .dev(hub.host_index)
            .table(config.table)
            .protocol(config.protocol)
            .onlink();
        nl.replace_route(&v4)?;
        if want_v6 {
            let v6 = Route::new(Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))
                .via(IpAddr::V6(hub.config.peer_v6))
                .dev(hub.host_index)
                .table(config.table)
                .protocol(config.protocol);
            nl.replace_route(&v6)?;
        }
        if config.hold {
            let fams: &[IpAddr] = if want_v6 {
                &[
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                ]
            } else {
                &[IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
            };
            for a in fams {
                let hole = Route::new(Prefix::new(*a, 0))
                    .table(config.table)
                    .protocol(config.protocol)
                    .metric(HOLD_METRIC)
                    .kind(super::netlink::RouteKind::Blackhole);
                nl.replace_route(&hole)?;
            }
        }
        for r in config.rules() {
            match st.nl.add_rule(&r) {
                // Kept by a previous core for its restart (see `keep`).
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                x => x?,
            }
            st.rules.push(r);
        }
        Ok(st)
    }

    /// Leaves the rules and the table's routes in place when this value drops (a core's
    /// restart: the next one adopts them, see [`adopt_stale`]). Routes through the hub go when
    /// the hub does; with [`SteerConfig::hold`] the blackhole behind them stays.
    pub(crate) fn keep(mut self) {
        self.removed = true;
    }

    /// The rules installed.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Removes the rules, then the table's routes (also done on drop).
    pub(crate) fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let nl = &mut self.nl;
        let mut first_err = None;
        for r in self.rules.drain(..) {
            if let Err(e) = nl.del_rule(&r) {
                if e.errno() != Some(libc::ENOENT) {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Err(e) = nl.flush_table(self.config.table) {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            log::warn!("steering cleanup: {e}");
        }
    }
}

/// A core's start after a restart: removes a stale hub (if any) and those of braid's rules
/// that `steer` would not install, and keeps the rest, and the table's routes (its blackhole),
/// so that packets to the pool are never routed elsewhere while the new core starts.
/// [`Steering::install`] then adds what is missing.
pub(crate) fn adopt_stale(hub: &HubConfig, steer: &SteerConfig) -> Result<Cleaned> {
    let mut nl = Netlink::open()?;
    let mut c = Cleaned::default();
    if nl.delete_link_by_name(&hub.host_name())? {
        c.links += 1;
    }
    let want = steer.rules();
    let lo = steer.priority;
    let hi = steer.priority + RULE_SPAN;
    for r in nl.all_rules()? {
        if r.priority < lo || r.priority >= hi || want.contains(&r) {
            continue;
        }
        if r.protocol == steer.protocol && nl.del_rule_if_present(&r)? {
            c.rules += 1;
        }
    }
    Ok(c)
}

/// What [`cleanup_stale`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Hub host ends deleted (a live instance's hub, or one whose namespace was bind-mounted).
    pub links: usize,
    /// Policy rules deleted.
    pub rules: usize,
    /// Routes deleted from the dedicated table.
    pub routes: usize,
}

/// Removes what a dead instance left in the calling thread's namespace: its hub (if any), its
/// rules (in its priority range and marked with its protocol, or unmarked on kernels without
/// FRA_PROTOCOL but pointing at its table or range), and every route of its table. Call it on
/// start, before [`Hub::create`]. Must not be called while another live daemon uses the same
/// instance name.
pub fn cleanup_stale(hub: &HubConfig, steer: &SteerConfig) -> Result<Cleaned> {
    let mut nl = Netlink::open()?;
    let mut c = Cleaned::default();
    if nl.delete_link_by_name(&hub.host_name())? {
        c.links += 1;
    }
    let lo = steer.priority;
    let hi = steer.priority + RULE_SPAN;
    for r in nl.all_rules()? {
        if r.priority < lo || r.priority >= hi {
            continue;
        }
        let ours = r.protocol == steer.protocol
            || (r.protocol == 0
                && match r.action {
                    RuleAction::Lookup(t) => t == steer.table,
                    RuleAction::Goto(p) => (lo..hi).contains(&p),
                    RuleAction::Nop => true,
                });
        if ours && nl.del_rule_if_present(&r)? {
            c.rules += 1;
        }
    }
    c.routes = nl.flush_table(steer.table)?;
    Ok(c)
}
