//! The typed configuration: what each UCI section and option means, its default and its checks.
//!
//! # Sections and options
//!
//! Defaults are given as "(default ...)". "list" options may be given as repeated `list KEY 'V'`
//! lines or as one `option KEY 'V1 V2'` (whitespace separated), as OpenWrt's firewall allows.
//!
//! ## `config braid 'main'` (exactly one)
//! | option | value |
//! |---|---|
//! | `enabled` | `1`/`0` (also yes/no, on/off, true/false) (default `1`; the shipped file says `0`); while `0`, the options marked required may be missing |
//! | `role` | `edge` (the router) or `core` (the server) (default `edge`) |
//! | `private_key` | this host's X25519 private key, standard base64 as `wg genkey` prints it |
//! | `key_file` | or: a file holding that key (exactly one of `private_key`, `key_file`) |
//! | `core_host` | edge: the core's address or host name (required on the edge) |
//! | `core_port` | edge: the core's UDP/TCP port (default `51830`) |
//! | `core_public_key` | edge: the core's public key, base64 (required on the edge) |
//! | `listen_port` | core: the port it listens on, UDP and TCP (default `51830`) |
//! | `pool` | core: the IPv4 subnet the edges' clients are mapped into (one address per client of each edge), /8 to /24, never a destination (default `100.64.0.0/16`) |
//! | `max_clients` | core: most client addresses one edge holds at once, 1..65535; a new one beyond is refused until one has been idle 10 minutes (default `1024`) |
//! | `allow_dest` | core, list: destination subnets clients may reach although private, link-local, shared (CGNAT) or the core host's own (default none: only public destinations) |
//! | `deny_dest` | core, list: destination subnets clients may never reach (wins over `allow_dest`) (default none) |
//! | `lan` | edge, list: client subnets whose traffic is bonded (required on the edge) |
//! | `steer` | edge: `all` (all IP) or `tcp` (TCP only; the rest takes the plain WAN) (default `all`) |
//! | `bypass` | edge, list: destination subnets never bonded (default none) |
//! | `mtu` | largest client packet carried whole, 1280..9000 (default `1400`); TCP MSS is clamped to fit |
//! | `log_level` | `error`, `warn`, `info`, `debug`, `trace` (default `info`) |
//! | `space` | name of the network namespace braid owns (default `braid`) |
//! | `hub` | name of the host end of the hub veth, at most 15 bytes (default `braid0`) |
//! | `state_file` | edge: where quota counters and the handshake clock survive reboots; core: the pool's secret and its clients' addresses, so a restarted core gives each client the same one (default `/etc/braid/state`) |
//! | `control_socket` | the local control socket (default `/var/run/braid.sock`) |
//! | `memory` | the memory the daemon may use: `16M`, `512K`, `1G` (powers of 1024), 4M..64G; every queue and buffer that grows with traffic is sized from it (`config::budget`); on the core it is shared among the `config peer` sections (at least 256 KiB each) (default `16M` on the edge, for a 64 MB router; `64M` on the core) |
//!
//! The default port is 51830, not WireGuard's 51820, so that both can run on one core.
//!
//! ## `config link 'NAME'` (edge; one per uplink, named after its netifd interface)
//! | option | value |
//! |---|---|
//! | `enabled` | (default `1`) |
//! | `device` | the WAN device (`wwan0`, `eth1`); if absent, the one netifd/hotplug reports |
//! | `transport` | `udp` or `tcp` (for networks that block UDP) (default `udp`) |
//! | `role` | `primary` (always used), `secondary` (when primaries are saturated or down), `backup` (only when nothing else is up), `never` (default `primary`) |
//! | `weight` | 1..1000, relative share among links of the same role (default `1`) |
//! | `upload`, `download` | rate caps: `20mbit`, `512kbit`, `1gbit`, `1.5mbit` or plain bits/s; `0` = no cap (default no cap) |
//! | `quota` | data allowance in bytes: `20G`, `500M`, `1.5T`, `4Gi` (K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024) (default none) |
//! | `quota_period` | `day` or `month` (default `month`) |
//! | `reset_day` | day of the month the quota restarts, 1..31 (a short month uses its last day) (default `1`) |
//! | `quota_action` | what a link past its quota becomes: `backup` or `never` (default `backup`) |
//!
//! ## `config policy ['NAME']` (edge and core; first match in file order wins)
//! | option | value |
//! |---|---|
//! | `enabled` | (default `1`) |
//! | `name` | a label for logs and status (default: the section name, or `@policy[N]`, N counting policy sections from 0) |
//! | `src_ip` | list of client addresses or subnets (default any) |
//! | `src_mac` | list of client MAC addresses; the edge matches the addresses the router's neighbour (ARP/NDP) table gives each MAC on the LAN, followed through the kernel's neighbour notifications and read in full every 5 s, after a reload, and within 1 s of a packet from an unknown client address (the core cannot: on the core the policy never matches) (default any) |
//! | `src_port` | list of client ports or ranges `1000-2000` (`1000:2000` too) (default any) |
//! | `dest_ip` | list of server addresses or subnets (default any) |
//! | `dest_port` | list of server ports or ranges (default any) |
//! | `proto` | `tcp`, `udp`, `icmp` (v4 and v6) or `any` (default `any`); ports only match TCP and UDP |
//! | `dscp` | list of DSCP values, numbers 0..63 or names `EF`, `CS0`..`CS7`, `AF11`..`AF43`, `LE`, `VA` (default any) |
//! | `class` | the traffic class the matched flows join (required), letters, digits, `_`, `-` |
//! | `mode` | `aggregate`, `redundant` (copies on the two best links), `backup`, `pinned` (default `aggregate`) |
//! | `link` | with `mode pinned` only: the link section the class is pinned to |
//! | `priority` | 0..7; a higher number is served first (default `0`) |
//! | `weight` | 1..1000, the class's share among classes of the same priority (default `1`) |
//!
//! A policy matches a packet when every criterion it gives matches (a list matches if any of
//! its entries does). `src_*` is the client side, `dest_*` the server side, whichever way the
//! packet travels: downstream packets are matched with source and destination swapped.
//!
//! A policy is "match -> class"; there is no separate `config class` section. The class
//! settings (`mode`, `link`, `priority`, `weight`) may be written on any policy naming the
//! class; two policies giving the same class different values for one setting is an error.
//! Traffic that matches no policy is in class `default` (aggregate, priority 0, weight 1);
//! a policy naming class `default` changes those settings.
//!
//! ## `config peer ['NAME']` (core; one per allowed edge)
//! | option | value |
//! |---|---|
//! | `enabled` | (default `1`) |
//! | `public_key` | the edge's public key, base64 (required, unique) |
//! | `name` | a label for logs and status (default: the section name, or `@peer[N]`) |
//! | `allowed_lan` | list: source subnets accepted from this edge (default any) |
//!
//! # Examples
//! An edge (`tests/fixtures/config/edge.conf`):
//! ```text
#![doc = include_str!("../../tests/fixtures/config/edge.conf")]
//! ```
//! A core (`tests/fixtures/config/core.conf`):
//! ```text
#![doc = include_str!("../../tests/fixtures/config/core.conf")]
//! ```
//!
//! # Errors and warnings
//! A bad value, a missing required option, a duplicate link/peer, a conflicting class setting or
//! a pinned policy naming an unknown link is an **error**: [`Config::from_document`] reports
//! all of them at once. Unknown options, unknown section types, an option set twice, and
//! sections or options that do not apply to the role are **warnings** in [`Config::warnings`].

use super::uci::{Document, Entry, Kind, Pos, Section};
use super::{ConfigError, Diagnostic};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The default port of the core (not WireGuard's 51820, so both can share a server).
pub const DEFAULT_PORT: u16 = 51830;
/// The default tunnel MTU: the largest client packet carried without fragmentation.
pub(crate) const DEFAULT_MTU: u16 = 1400;
/// The name of the class of traffic that matches no policy.
pub(crate) const DEFAULT_CLASS: &str = "default";
/// The default `max_clients`: client addresses one edge may hold on the core.
pub const DEFAULT_MAX_CLIENTS: u16 = 1024;

/// The default `pool`: `100.64.0.0/16`.
pub fn default_pool() -> Cidr {
    Cidr {
        addr: IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)),
        prefix: 16,
    }
}

/// `pool`: an IPv4 subnet of /8 to /24.
fn parse_pool(v: &str) -> Result<Cidr, String> {
    let c = Cidr::parse(v)?;
    if !c.addr.is_ipv4() || !(8..=24).contains(&c.prefix) {
        return Err(format!(
            "expected an IPv4 subnet of /8 to /24 for the client pool, got '{v}'"
        ));
    }
    Ok(c)
}

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (as named to the parser).
    pub file: String,
    /// The `config braid` section.
    pub main: Main,
    /// The enabled `config link` sections in file order (edge; empty on the core).
    pub links: Vec<Link>,
    /// The enabled `config policy` sections in file order (first match wins).
    pub policies: Vec<Policy>,
    /// The classes policies name, with their settings; `classes[0]` is always `default`.
    pub classes: Vec<Class>,
    /// The enabled `config peer` sections in file order (core; empty on the edge).
    pub peers: Vec<Peer>,
    /// Things worth telling the operator that did not stop the load.
    pub warnings: Vec<Diagnostic>,
}

/// The `config braid 'main'` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Main {
    /// Line of the section header.
    pub line: u32,
    /// `enabled`.
    pub enabled: bool,
    /// `role`.
    pub role: Role,
    /// `private_key` or `key_file`; `None` only when the section is disabled (`enabled '0'`),
    /// where the options a running daemon needs may be missing (as in the shipped file).
    pub key: Option<KeySource>,
    /// `core_host` (edge).
    pub core_host: Option<String>,
    /// `core_port` (edge).
    pub core_port: u16,
    /// `core_public_key` (edge).
    pub core_public_key: Option<PublicKey>,
    /// `listen_port` (core).
    pub listen_port: u16,
    /// `pool` (core).
    pub pool: Cidr,
    /// `max_clients` (core).
    pub max_clients: u16,
    /// `allow_dest` (core).
    pub allow_dest: Vec<Cidr>,
    /// `deny_dest` (core).
    pub deny_dest: Vec<Cidr>,
    /// `lan` (edge).
    pub lan: Vec<Cidr>,
    /// `steer` (edge).
    pub steer: Steer,
    /// `bypass` (edge).
    pub bypass: Vec<Cidr>,
    /// `mtu`.
    pub mtu: u16,
    /// `log_level`.
    pub log_level: LogLevel,
    /// `space`.
    pub space: String,
    /// `hub`.
    pub hub: String,
    /// `state_file`.
    pub state_file: String,
    /// `control_socket`.
    pub control_socket: String,
    /// `memory` (the role's default when absent).
    pub memory: super::budget::Budget,
}

/// Where the private key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `option private_key '...'`.
    Inline(PrivateKey),
    /// `option key_file '/path'` (read by [`Config::private_key`]).
    File(String),
}

/// Which daemon this configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The router side.
    Edge,
    /// The server side.
    Core,
}

/// The UCI words of `role`.
const ROLES: Words<Role> = &[("edge", Role::Edge), ("core", Role::Core)];

/// Which client traffic the edge steers into the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// All IP traffic from the LAN sources.
    All,
    /// Only TCP; everything else takes the plain WAN.
    Tcp,
}

/// The UCI words of `steer`.
const STEERS: Words<Steer> = &[("all", Steer::All), ("tcp", Steer::Tcp)];

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// State changes (the default).
    Info,
    /// More detail.
    Debug,
    /// Everything.
    Trace,
}

/// The UCI words of `log_level`.
const LOG_LEVELS: Words<LogLevel> = &[
    ("error", LogLevel::Error),
    ("warn", LogLevel::Warn),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
    ("trace", LogLevel::Trace),
];

impl LogLevel {
    /// The matching `log` crate filter.
    pub(crate) fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// One `config link 'NAME'` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The section name: the netifd interface (`wan`, `lte1`).
    pub name: String,
    /// Line of the section header.
    pub line: u32,
    /// `device`; `None` = the device netifd reports for the interface.
    pub device: Option<String>,
    /// `transport`.
    pub transport: Transport,
    /// `role`.
    pub role: LinkRole,
    /// `weight`, 1..=1000.
    pub weight: u16,
    /// `upload` cap in bits/s; `None` = no cap.
    pub upload: Option<u64>,
    /// `download` cap in bits/s; `None` = no cap.
    pub download: Option<u64>,
    /// `quota` and its settings.
    pub quota: Option<Quota>,
}

/// A link's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagrams (the default).
    Udp,
    /// A TCP connection, for networks that block UDP.
    Tcp,
}

/// The UCI words of a link's `transport`.
const TRANSPORTS: Words<Transport> = &[("udp", Transport::Udp), ("tcp", Transport::Tcp)];

/// A link's role (as Speedify and Peplink use the words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LinkRole {
    /// Always carries traffic.
    Primary,
    /// Only when the primaries are saturated or down.
    Secondary,
    /// Only when nothing else is up.
    Backup,
    /// Not used.
    Never,
}

/// The UCI words of a link's `role`.
const LINK_ROLES: Words<LinkRole> = &[
    ("primary", LinkRole::Primary),
    ("secondary", LinkRole::Secondary),
    ("backup", LinkRole::Backup),
    ("never", LinkRole::Never),
];

/// A data allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes per period (both directions counted).
    pub bytes: u64,
    /// `quota_period`.
    pub period: QuotaPeriod,
    /// `reset_day`, 1..=31 (monthly quotas).
    pub reset_day: u8,
    /// `quota_action`.
    pub action: QuotaAction,
}

/// How often a quota restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// Every day at midnight (local time).
    Day,
    /// Every month on `reset_day`.
    Month,
}

/// The UCI words of `quota_period`.
const QUOTA_PERIODS: Words<QuotaPeriod> =
    &[("day", QuotaPeriod::Day), ("month", QuotaPeriod::Month)];

/// What a link becomes once past its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaAction {
    /// Demoted to role backup.
    Backup,
    /// Not used until the quota resets.
    Never,
}

/// The UCI words of `quota_action`.
const QUOTA_ACTIONS: Words<QuotaAction> = &[
    ("backup", QuotaAction::Backup),
    ("never", QuotaAction::Never),
];

/// One `config policy` section: a match and the class it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `name`, or the section name, or `@policy[N]` (N counts all policy sections from 0).
    pub name: String,
    /// Line of the section header.
    pub line: u32,
    /// `src_ip` (empty = any).
    pub src_ip: Vec<Cidr>,
    /// `src_mac` (empty = any).
    pub src_mac: Vec<Mac>,
    /// `src_port` (empty = any).
    pub src_port: Vec<PortRange>,
    /// `dest_ip` (empty = any).
    pub dest_ip: Vec<Cidr>,
    /// `dest_port` (empty = any).
    pub dest_port: Vec<PortRange>,
    /// `proto`.
    pub proto: Proto,
    /// `dscp` values 0..=63 (empty = any).
    pub dscp: Vec<u8>,
    /// `class`.
    pub class: String,
}

/// The protocol a policy matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Any protocol.
    Any,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1) or ICMPv6 (58).
    Icmp,
}

/// The UCI words of a policy's `proto` (matched in any case); `all` is another word for `any`.
const PROTOS: Words<Proto> = &[
    ("any", Proto::Any),
    ("all", Proto::Any),
    ("tcp", Proto::Tcp),
    ("udp", Proto::Udp),
    ("icmp", Proto::Icmp),
];

/// A traffic class and how it is scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// The name policies use.
    pub name: String,
    /// How its packets use the links.
    pub mode: Mode,
    /// For [`Mode::Pinned`]: the link name.
    pub link: Option<String>,
    /// 0..=7, higher is served first.
    pub priority: u8,
    /// 1..=1000, share among classes of the same priority.
    pub weight: u16,
}

/// How a class uses the links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Spread over all usable links (earliest arrival first).
    Aggregate,
    /// Copies on the two best links.
    Redundant,
    /// Only on backup links (or when nothing else is up).
    Backup,
    /// Only on the one named link.
    Pinned,
}

/// The UCI words of a class's `mode`.
const MODES: Words<Mode> = &[
    ("aggregate", Mode::Aggregate),
    ("redundant", Mode::Redundant),
    ("backup", Mode::Backup),
    ("pinned", Mode::Pinned),
];

/// One `config peer` section (core): an edge allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `name`, or the section name, or `@peer[N]`.
    pub name: String,
    /// Line of the section header.
    pub line: u32,
    /// `public_key`.
    pub public_key: PublicKey,
    /// `allowed_lan` (empty = any source).
    pub allowed_lan: Vec<Cidr>,
}

// ---------------------------------------------------------------------------------------------
// Value types

/// An IPv4 or IPv6 subnet; host bits are cleared on parse (`192.168.1.1/24` is `192.168.1.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub(crate) addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub(crate) prefix: u8,
}

impl Cidr {
    /// A subnet from an address and prefix length (host bits cleared). `None` if too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let m = mask32(prefix);
                Some(Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & m)),
                    prefix,
                })
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let m = mask128(prefix);
                Some(Cidr {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & m)),
                    prefix,
                })
            }
            _ => None,
        }
    }

    /// Parse `ADDR` or `ADDR/LEN`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || {
            format!("expected an address or subnet like '192.168.1.0/24' or 'fd00::/64', got '{s}'")
        };
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "expected a prefix length 0..{max} after '/', got '{s}'"
                    ))
                }
            },
        };
        Cidr::new(addr, prefix).ok_or_else(bad)
    }

    /// Does the subnet contain `ip`? (Never across address families.)
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An inclusive port range (`80` is `80-80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (>= `lo`).
    pub hi: u16,
}

impl PortRange {
    /// Parse `PORT`, `LO-HI` or `LO:HI`.
    pub(crate) fn parse(s: &str) -> Result<PortRange, String> {
        let bad = || format!("expected a port 1..65535 or a range like '8000-8080', got '{s}'");
        let num = |t: &str| -> Result<u16, String> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)
        };
        let (lo, hi) = match s.split_once(['-', ':']) {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let p = num(s)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!("port range '{s}' ends before it starts"));
        }
        Ok(PortRange { lo, hi })
    }

    /// Is `port` within the range?
    pub(crate) fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parse `aa:bb:cc:dd:ee:ff` (or with `-`).
    pub(crate) fn parse(s: &str) -> Result<Mac, String> {
        let bad = || format!("expected a MAC address like '02:00:00:aa:bb:cc', got '{s}'");
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(bad());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An X25519 public key (32 bytes, written in standard base64 as `wg` does).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// An X25519 private key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(pub [u8; 32]);

impl PublicKey {
    /// Decode a 44-character standard base64 key.
    pub(crate) fn from_base64(s: &str) -> Result<PublicKey, String> {
        decode_key(s).map(PublicKey)
    }

    /// Encode as standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        crate::keytext::key_to_base64(&self.0)
    }
}

impl PrivateKey {
    /// Decode a 44-character standard base64 key.
    pub fn from_base64(s: &str) -> Result<PrivateKey, String> {
        decode_key(s).map(PrivateKey)
    }

    /// Encode as standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        crate::keytext::key_to_base64(&self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<hidden>)")
    }
}

fn decode_key(s: &str) -> Result<[u8; 32], String> {
    let bad = || {
        format!(
            "expected a 32-byte key in base64 (44 characters, as 'braid genkey' prints), got '{}'",
            redact(s)
        )
    };
    crate::keytext::key_from_base64(s).ok_or_else(bad)
}

/// Show only the start of something that might be a secret.
fn redact(s: &str) -> String {
    if s.chars().count() <= 6 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(4).collect::<String>())
    }
}

/// Parse a rate in bits/s: `20mbit`, `512kbit`, `1gbit`, `1.5mbit`, `100000`, `64kbit`.
/// Suffixes (any case): `bit`, `kbit`/`k`, `mbit`/`m`, `gbit`/`g`, `tbit`/`t`; all powers of 1000.
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let bad =
        || format!("expected a rate like '20mbit', '512kbit', '1gbit' or plain bits/s, got '{s}'");
    let lower = s.to_ascii_lowercase();
    let (num, unit) = split_number(&lower);
    if unit.ends_with("bps") || unit.ends_with("b/s") {
        return Err(format!(
            "'{s}': write rates in bits with 'kbit', 'mbit' or 'gbit' ('bps' is ambiguous)"
        ));
    }
    let mult: u64 = match unit {
        "" | "bit" => 1,
        "k" | "kbit" => 1_000,
        "m" | "mbit" => 1_000_000,
        "g" | "gbit" => 1_000_000_000,
        "t" | "tbit" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    scale(num, mult).ok_or_else(bad)
}

/// Parse a byte count: `20G`, `500M`, `1.5T`, `4Gi`, `1048576`. K/M/G/T (optionally followed
/// by `B`) are powers of 1000, as carriers bill; Ki/Mi/Gi/Ti (optionally `B`) powers of 1024.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a size like '20G', '500M', '4Gi' or plain bytes, got '{s}'");
    let lower = s.to_ascii_lowercase();
    let (num, unit) = split_number(&lower);
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => return Err(bad()),
    };
    scale(num, mult).ok_or_else(bad)
}

fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

/// `num` (decimal, up to 9 fraction digits) times `mult`, rounded down; `None` if malformed
/// or above `u64::MAX`.
fn scale(num: &str, mult: u64) -> Option<u64> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if num.ends_with('.') {
        return None;
    }
    let i: u128 = int.parse().ok()?;
    let f: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let den = 10u128.pow(frac.len() as u32);
    let v = i.checked_mul(u128::from(mult))? + f * u128::from(mult) / den;
    u64::try_from(v).ok()
}

/// Parse a DSCP value: a number 0..63 or a name (`EF`, `CS0`..`CS7`, `AF11`..`AF43`, `LE`, `VA`).
pub(crate) fn parse_dscp(s: &str) -> Result<u8, String> {
    let bad =
        || format!("expected a DSCP value 0..63 or a name like 'EF', 'CS6', 'AF41', got '{s}'");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u8>().ok().filter(|&v| v < 64).ok_or_else(bad);
    }
    let u = s.to_ascii_uppercase();
    let v = match u.as_str() {
        "EF" => 46,
        "LE" => 1,
        "VA" => 44,
        _ => {
            let b = u.as_bytes();
            if let (Some(rest), true) = (u.strip_prefix("CS"), b.len() == 3) {
                match rest.parse::<u8>() {
                    Ok(n) if n <= 7 => n * 8,
                    _ => return Err(bad()),
                }
            } else if let (Some(_), true) = (u.strip_prefix("AF"), b.len() == 4) {
                let x = b[2].wrapping_sub(b'0');
                let y = b[3].wrapping_sub(b'0');
                if !(1..=4).contains(&x) || !(1..=3).contains(&y) {
                    return Err(bad());
                }
                x * 8 + y * 2
            } else {
                return Err(bad());
            }
        }
    };
    Ok(v)
}

/// Parse a boolean as OpenWrt's `config_get_bool` does.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "on" | "true" | "enabled" => Ok(true),
        "0" | "no" | "off" | "false" | "disabled" => Ok(false),
        _ => Err(format!(
            "expected '1' or '0' (or yes/no, on/off, true/false), got '{s}'"
        )),
    }
}

/// Is `s` a valid Linux interface name (1..15 bytes, no '/', ':' or whitespace, not . or ..)?
pub(crate) fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b < 32)
}

fn parse_ifname(s: &str) -> Result<String, String> {
    if valid_ifname(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "expected an interface name of 1..15 characters without '/', ':' or spaces, got '{s}'"
        ))
    }
}

fn parse_host(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && (s.parse::<IpAddr>().is_ok()
            || s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "expected an IP address or host name like 'core.example.net', got '{s}'"
        ))
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p > 0 && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("expected a port 1..65535, got '{s}'"))
}

fn parse_range<T: TryFrom<u64> + Copy>(s: &str, lo: u64, hi: u64) -> Result<T, String> {
    let bad = || format!("expected a number {lo}..{hi}, got '{s}'");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u64 = s.parse().map_err(|_| bad())?;
    if v < lo || v > hi {
        return Err(bad());
    }
    T::try_from(v).map_err(|_| bad())
}

/// An option's words and the values they stand for: what [`parse_word`] reads and [`word`]
/// writes. A value with several words is written with its first.
type Words<T> = &'static [(&'static str, T)];

/// The word that stands for `v` in `words` (its first, where it has several).
fn word<T: PartialEq>(words: Words<T>, v: T) -> &'static str {
    words
        .iter()
        .find(|(_, w)| *w == v)
        .map(|(s, _)| *s)
        .expect("every value has a word in its table")
}

fn parse_word<T: Copy>(s: &str, words: &[(&str, T)]) -> Result<T, String> {
    for (w, v) in words {
        if s == *w {
            return Ok(*v);
        }
    }
    let names: Vec<String> = words.iter().map(|(w, _)| format!("'{w}'")).collect();
    Err(format!("expected {}, got '{s}'", join_or(&names)))
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn parse_class_name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "expected a class name of letters, digits, '_' or '-' (at most 32), got '{s}'"
        ))
    }
}

/// Checks one option value as the parser would, by kind: what LuCI's form validators mirror
/// (luci-app-braid's `braid/validate.js`), tested against this function on one shared table
/// of good and bad values (`tests/fixtures/config/values.json`), messages included.
///
/// Kinds: `rate` (upload, download), `quota`, `dscp`, `ports` (a src_port/dest_port entry,
/// ranges and commas), `port`, `key` (a public key), `cidr`, `mac`, `host`, `ifname`,
/// `weight`, `priority`, `mtu`, `reset_day`, `class`, `memory`.
pub fn check_value(kind: &str, v: &str) -> Result<(), String> {
    fn ok<T>(r: Result<T, String>) -> Result<(), String> {
        r.map(|_| ())
    }
    match kind {
        "rate" => ok(parse_rate(v)),
        "quota" => match parse_bytes(v) {
            Ok(0) => Err(QUOTA_ZERO.into()),
            r => ok(r),
        },
        "dscp" => ok(parse_dscp(v)),
        "ports" => ok(v
            .split(',')
            .map(PortRange::parse)
            .collect::<Result<Vec<_>, _>>()),
        "port" => ok(parse_port(v)),
        "key" => ok(PublicKey::from_base64(v)),
        "cidr" => ok(Cidr::parse(v)),
        "mac" => ok(Mac::parse(v)),
        "host" => ok(parse_host(v)),
        "ifname" => ok(parse_ifname(v)),
        "weight" => ok(parse_range::<u16>(v, 1, 1000)),
        "priority" => ok(parse_range::<u8>(v, 0, 7)),
        "mtu" => ok(parse_range::<u16>(v, 1280, 9000)),
        "reset_day" => ok(parse_range::<u8>(v, 1, 31)),
        "class" => ok(parse_class_name(v)),
        "memory" => ok(super::budget::parse(v)),
        _ => Err(format!("no such kind of value '{kind}'")),
    }
}

/// Where the system's config lives: files there can be written through LuCI and ubus.
pub(crate) const SYSTEM_CONFIG_DIR: &str = "/etc/config/";
/// Where a config in [`SYSTEM_CONFIG_DIR`] may put the files the daemon writes or replaces
/// (`state_file`, `control_socket`), so that whoever may write the config (a LuCI login, the
/// raw ubus uci ACL) cannot make root overwrite another file. A config given elsewhere (the
/// lab, a test, an operator's own `--config`) was written by whoever runs the daemon.
pub(crate) const DAEMON_PATH_DIRS: [&str; 4] = [
    "/etc/braid/",
    "/var/run/braid/",
    "/run/braid/",
    "/tmp/run/braid/",
];
/// The default control socket, beside those directories.
const DEFAULT_CONTROL_SOCKET: &str = "/var/run/braid.sock";

/// Whether a config in [`SYSTEM_CONFIG_DIR`] may name `p` as a file the daemon writes.
pub(crate) fn daemon_path_allowed(p: &str) -> bool {
    let plain = !p.split('/').any(|c| c == ".." || c == ".");
    plain
        && (p == DEFAULT_CONTROL_SOCKET
            || DAEMON_PATH_DIRS
                .iter()
                .any(|d| p.starts_with(d) && p.len() > d.len()))
}

const QUOTA_ZERO: &str = "a quota of 0 bytes: remove the option for no quota, or use role 'never'";

// ---------------------------------------------------------------------------------------------
// Building the model from a document

/// Reads one section's entries, records errors and warnings, and remembers which keys were used.
struct Reader<'a> {
    file: &'a str,
    section: &'a Section,
    label: String,
    used: Vec<bool>,
    errors: &'a mut Vec<Diagnostic>,
    warnings: &'a mut Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    fn diag(&self, pos: Pos, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            col: if pos.col > 0 { Some(pos.col) } else { None },
            message,
        }
    }

    fn error(&mut self, pos: Pos, message: String) {
        let d = self.diag(pos, format!("{}: {message}", self.label));
        self.errors.push(d);
    }

    fn warn(&mut self, pos: Pos, message: String) {
        let d = self.diag(pos, format!("{}: {message}", self.label));
        self.warnings.push(d);
    }

    /// The entry for a single-valued option (the last one, as uci does), marking the key used.
    fn entry(&mut self, key: &str) -> Option<&'a Entry> {
        let section: &'a Section = self.section;
        let mut found: Option<&'a Entry> = None;
        for (i, e) in section.entries.iter().enumerate() {
            if e.key != key {
                continue;
            }
            self.used[i] = true;
            if e.kind == Kind::List {
                self.error(
                    e.pos,
                    format!("'{key}' takes one value: expected 'option {key}', not 'list'"),
                );
                continue;
            }
            if let Some(prev) = found {
                self.warn(
                    prev.pos,
                    format!(
                        "option '{key}' is set again on line {}; that value is used",
                        e.pos.line
                    ),
                );
            }
            found = Some(e);
        }
        found
    }

    fn get<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let e = self.entry(key)?;
        match parse(&e.value) {
            Ok(v) => Some(v),
            Err(m) => {
                self.error(e.value_pos, format!("option '{key}': {m}"));
                None
            }
        }
    }

    fn get_or<T>(&mut self, key: &str, default: T, parse: impl Fn(&str) -> Result<T, String>) -> T {
        self.get(key, parse).unwrap_or(default)
    }

    /// Values of a list option: `list` lines, or `option` lines split on whitespace.
    fn list<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Vec<T> {
        let section: &'a Section = self.section;
        let mut out = Vec::new();
        for (i, e) in section.entries.iter().enumerate() {
            if e.key != key {
                continue;
            }
            self.used[i] = true;
            let parts: Vec<&str> = match e.kind {
                Kind::List => vec![e.value.trim()],
                Kind::Option => e.value.split_whitespace().collect(),
            };
            for p in parts {
                match parse(p) {
                    Ok(v) => out.push(v),
                    Err(m) => self.error(e.value_pos, format!("{key}: {m}")),
                }
            }
        }
        out
    }

    /// Is `key` present at all (without marking it used)?
    fn has(&self, key: &str) -> bool {
        self.section.entries.iter().any(|e| e.key == key)
    }

    /// Mark `key` used and warn that it does not apply.
    fn not_applicable(&mut self, key: &str, why: &str) {
        let section: &'a Section = self.section;
        for (i, e) in section.entries.iter().enumerate() {
            if e.key == key && !self.used[i] {
                self.used[i] = true;
                self.warn(e.pos, format!("option '{key}' is ignored {why}"));
            }
        }
    }

    /// Warn about every entry whose key was never read.
    fn finish(mut self, known: &str) {
        let section: &'a Section = self.section;
        for (i, e) in section.entries.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                self.warn(
                    e.pos,
                    format!(
                        "unknown option '{}' (ignored); known options: {known}",
                        e.key
                    ),
                );
            }
        }
    }
}

const MAIN_KEYS: &str = "enabled, role, private_key, key_file, core_host, core_port, core_public_key, listen_port, pool, max_clients, allow_dest, deny_dest, lan, steer, bypass, mtu, log_level, space, hub, state_file, control_socket, memory";
const LINK_KEYS: &str =
    "enabled, device, transport, role, weight, upload, download, quota, quota_period, reset_day, quota_action";
const POLICY_KEYS: &str = "enabled, name, src_ip, src_mac, src_port, dest_ip, dest_port, proto, dscp, class, mode, link, priority, weight";
const PEER_KEYS: &str = "enabled, name, public_key, allowed_lan";

/// Class settings as written on one policy, before defaults.
struct ClassDraft {
    name: String,
    first_line: u32,
    mode: Option<(Mode, u32)>,
    link: Option<(String, u32)>,
    priority: Option<(u8, u32)>,
    weight: Option<(u16, u32)>,
}

impl Config {
    /// Build and validate the model from a parsed document. `file` names the file in messages.
    pub(crate) fn from_document(file: &str, doc: &Document) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let at = |line: u32, message: String| Diagnostic {
            file: file.to_string(),
            line,
            col: None,
            message,
        };

        // The main section first: the role decides what applies.
        let mains: Vec<&Section> = doc.sections.iter().filter(|s| s.ty == "braid").collect();
        let main = match mains.as_slice() {
            [] => {
                errors.push(at(
                    1,
                    "no 'config braid' section: expected one, like \"config braid 'main'\"".into(),
                ));
                None
            }
            [s, rest @ ..] => {
                for r in rest {
                    errors.push(at(
                        r.pos.line,
                        format!(
                            "a second 'config braid' section (the first is on line {}): expected exactly one",
                            s.pos.line
                        ),
                    ));
                }
                read_main(file, s, &mut errors, &mut warnings)
            }
        };
        let role = main.as_ref().map(|m| m.role).unwrap_or(Role::Edge);

        let mut links: Vec<Link> = Vec::new();
        let mut disabled_links: Vec<String> = Vec::new();
        let mut policies = Vec::new();
        let mut drafts: Vec<ClassDraft> = Vec::new();
        let mut peers: Vec<Peer> = Vec::new();
        let (mut n_policy, mut n_peer) = (0usize, 0usize);
        for s in &doc.sections {
            match s.ty.as_str() {
                "braid" => {}
                "link" => {
                    if role == Role::Core {
                        warnings.push(at(
                            s.pos.line,
                            "'config link' sections are ignored on the core (role core)".into(),
                        ));
                        continue;
                    }
                    if s.option("enabled").map(parse_bool) == Some(Ok(false)) {
                        if let Some(n) = &s.name {
                            disabled_links.push(n.clone());
                        }
                    }
                    if let Some(l) = read_link(file, s, &mut errors, &mut warnings) {
                        if let Some(prev) = links.iter().find(|p| p.name == l.name) {
                            errors.push(at(
                                s.pos.line,
                                format!(
                                    "link '{}' is defined twice (also on line {}): expected one section per interface",
                                    l.name, prev.line
                                ),
                            ));
                        } else {
                            links.push(l);
                        }
                    }
                }
                "policy" => {
                    let idx = n_policy;
                    n_policy += 1;
                    if let Some((p, d)) = read_policy(file, s, idx, &mut errors, &mut warnings) {
                        merge_class(file, &mut drafts, d, &mut errors);
                        policies.push(p);
                    }
                }
                "peer" => {
                    let idx = n_peer;
                    n_peer += 1;
                    if role == Role::Edge {
                        warnings.push(at(
                            s.pos.line,
                            "'config peer' sections are ignored on the edge (role edge)".into(),
                        ));
                        continue;
                    }
                    if let Some(p) = read_peer(file, s, idx, &mut errors, &mut warnings) {
                        if let Some(prev) = peers.iter().find(|q| q.public_key == p.public_key) {
                            errors.push(at(
                                s.pos.line,
                                format!(
                                    "peer '{}' has the same public_key as peer '{}' (line {}): expected each edge once",
                                    p.name, prev.name, prev.line
                                ),
                            ));
                        } else if let Some(prev) = peers.iter().find(|q| q.name == p.name) {
                            errors.push(at(
                                s.pos.line,
                                format!(
                                    "peer name '{}' is used twice (also on line {}): expected unique names",
                                    p.name, prev.line
                                ),
                            ));
                        } else {
                            peers.push(p);
                        }
                    }
                }
                other => warnings.push(at(
                    s.pos.line,
                    format!(
                        "unknown section type '{other}' (ignored): expected braid, link, policy or peer"
                    ),
                )),
            }
        }

        // Classes: `default` first, then in order of first use.
        let mut classes = vec![Class {
            name: DEFAULT_CLASS.to_string(),
            mode: Mode::Aggregate,
            link: None,
            priority: 0,
            weight: 1,
        }];
        for d in drafts {
            let c = Class {
                name: d.name.clone(),
                mode: d.mode.map(|m| m.0).unwrap_or(Mode::Aggregate),
                link: d.link.as_ref().map(|l| l.0.clone()),
                priority: d.priority.map(|p| p.0).unwrap_or(0),
                weight: d.weight.map(|w| w.0).unwrap_or(1),
            };
            match (c.mode, &d.link) {
                (Mode::Pinned, None) => errors.push(at(
                    d.mode.map(|m| m.1).unwrap_or(d.first_line),
                    format!(
                        "class '{}': mode 'pinned' needs option 'link' naming a link section",
                        c.name
                    ),
                )),
                (Mode::Pinned, Some((l, line))) => {
                    if role == Role::Edge && disabled_links.contains(l) {
                        errors.push(at(
                            *line,
                            format!(
                                "class '{}': option 'link' names '{l}', which is disabled: expected an enabled link",
                                c.name
                            ),
                        ));
                    } else if role == Role::Edge && !links.iter().any(|k| &k.name == l) {
                        let names: Vec<String> =
                            links.iter().map(|k| format!("'{}'", k.name)).collect();
                        errors.push(at(
                            *line,
                            format!(
                                "class '{}': option 'link' names '{l}', which is not a link section; expected {}",
                                c.name,
                                if names.is_empty() { "a 'config link' section".to_string() } else { join_or(&names) }
                            ),
                        ));
                    }
                }
                (_, Some((_, line))) => errors.push(at(
                    *line,
                    format!(
                        "class '{}': option 'link' only applies with mode 'pinned'",
                        c.name
                    ),
                )),
                (_, None) => {}
            }
            if c.name == DEFAULT_CLASS {
                classes[0] = c;
            } else {
                classes.push(c);
            }
        }

        // The core's budget is shared among its peers: each must get its least share.
        if let Some(m) = main.as_ref().filter(|m| m.role == Role::Core) {
            if let Err(e) = m.memory.core(peers.len(), usize::from(m.mtu)) {
                let line = doc
                    .sections
                    .iter()
                    .filter(|s| s.ty == "braid")
                    .flat_map(|s| s.entries.iter())
                    .find(|e| e.key == "memory")
                    .map_or(m.line, |e| e.pos.line);
                errors.push(at(line, format!("braid 'main': option 'memory': {e}")));
            }
        }

        // Report in file order, whatever order the checks ran in.
        errors.sort_by_key(|d| (d.line, d.col.unwrap_or(0)));
        warnings.sort_by_key(|d| (d.line, d.col.unwrap_or(0)));
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        let main = main.expect("no errors means the main section was read");
        Ok(Config {
            file: file.to_string(),
            main,
            links,
            policies,
            classes,
            peers,
            warnings,
        })
    }

    /// This host's private key: the inline `private_key`, or the contents of `key_file`
    /// (read now, so a key rotated on disk is picked up on restart).
    pub fn private_key(&self) -> Result<PrivateKey, ConfigError> {
        match &self.main.key {
            None => Err(ConfigError::Invalid(vec![Diagnostic {
                file: self.file.clone(),
                line: self.main.line,
                col: None,
                message: "braid 'main': no key: expected option 'private_key' or 'key_file'".into(),
            }])),
            Some(KeySource::Inline(k)) => Ok(k.clone()),
            Some(KeySource::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io {
                    path: path.clone(),
                    error,
                })?;
                PrivateKey::from_base64(text.trim()).map_err(|m| {
                    ConfigError::Invalid(vec![Diagnostic {
                        file: path.clone(),
                        line: 1,
                        col: None,
                        message: format!("key_file: {m}"),
                    }])
                })
            }
        }
    }

    /// The link named `name`.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The class named `name`.
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// The peer with this public key.
    pub fn peer(&self, key: &PublicKey) -> Option<&Peer> {
        self.peers.iter().find(|p| &p.public_key == key)
    }

    /// The configuration as a UCI document (every option written out, rates in bits/s and
    /// quotas in bytes; class settings on the first policy naming each class). Loading
    /// [`uci::write`](super::uci::write) of it gives back an equal model (line numbers aside).
    /// Disabled sections are not in the model, so they are not written.
    pub fn to_document(&self) -> Document {
        let mut doc = Document::default();
        let m = &self.main;
        let mut s = Section::new("braid", Some("main"));
        s.push_option("enabled", if m.enabled { "1" } else { "0" });
        s.push_option("role", word(ROLES, m.role));
        match &m.key {
            Some(KeySource::Inline(k)) => {
                s.push_option("private_key", &k.to_base64());
            }
            Some(KeySource::File(f)) => {
                s.push_option("key_file", f);
            }
            None => {}
        }
        match m.role {
            Role::Edge => {
                if let Some(h) = &m.core_host {
                    s.push_option("core_host", h);
                }
                s.push_option("core_port", &m.core_port.to_string());
                if let Some(k) = &m.core_public_key {
                    s.push_option("core_public_key", &k.to_base64());
                }
                s.push_lists("lan", &m.lan);
                s.push_option("steer", word(STEERS, m.steer));
                s.push_lists("bypass", &m.bypass);
            }
            Role::Core => {
                s.push_option("listen_port", &m.listen_port.to_string());
                s.push_option("pool", &m.pool.to_string());
                s.push_option("max_clients", &m.max_clients.to_string());
                s.push_lists("allow_dest", &m.allow_dest);
                s.push_lists("deny_dest", &m.deny_dest);
            }
        }
        s.push_option("mtu", &m.mtu.to_string());
        s.push_option("log_level", word(LOG_LEVELS, m.log_level));
        s.push_option("space", &m.space);
        s.push_option("hub", &m.hub);
        s.push_option("state_file", &m.state_file);
        s.push_option("control_socket", &m.control_socket);
        s.push_option("memory", &super::budget::show(m.memory.bytes));
        doc.sections.push(s);

        for l in &self.links {
            let mut s = Section::new("link", Some(&l.name));
            if let Some(d) = &l.device {
                s.push_option("device", d);
            }
            s.push_option("transport", word(TRANSPORTS, l.transport));
            s.push_option("role", word(LINK_ROLES, l.role));
            s.push_option("weight", &l.weight.to_string());
            if let Some(r) = l.upload {
                s.push_option("upload", &r.to_string());
            }
            if let Some(r) = l.download {
                s.push_option("download", &r.to_string());
            }
            if let Some(q) = &l.quota {
                s.push_option("quota", &q.bytes.to_string());
                s.push_option("quota_period", word(QUOTA_PERIODS, q.period));
                if q.period == QuotaPeriod::Month {
                    s.push_option("reset_day", &q.reset_day.to_string());
                }
                s.push_option("quota_action", word(QUOTA_ACTIONS, q.action));
            }
            doc.sections.push(s);
        }

        let mut classes_written: Vec<&str> = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            let mut s = named_section("policy", i, &p.name);
            s.push_lists("src_ip", &p.src_ip);
            s.push_lists("src_mac", &p.src_mac);
            let range = |r: &PortRange| {
                if r.lo == r.hi {
                    r.lo.to_string()
                } else {
                    format!("{}-{}", r.lo, r.hi)
                }
            };
            s.push_lists("src_port", p.src_port.iter().map(range));
            s.push_lists("dest_ip", &p.dest_ip);
            s.push_lists("dest_port", p.dest_port.iter().map(range));
            s.push_option("proto", word(PROTOS, p.proto));
            s.push_lists("dscp", &p.dscp);
            s.push_option("class", &p.class);
            if !classes_written.contains(&p.class.as_str()) {
                classes_written.push(&p.class);
                if let Some(c) = self.class(&p.class) {
                    s.push_option("mode", &mode_name(&c.mode));
                    if let Some(l) = &c.link {
                        s.push_option("link", l);
                    }
                    s.push_option("priority", &c.priority.to_string());
                    s.push_option("weight", &c.weight.to_string());
                }
            }
            doc.sections.push(s);
        }

        for (i, p) in self.peers.iter().enumerate() {
            let mut s = named_section("peer", i, &p.name);
            s.push_option("public_key", &p.public_key.to_base64());
            s.push_lists("allowed_lan", &p.allowed_lan);
            doc.sections.push(s);
        }
        doc
    }
}

/// The section of the `i`th item of type `ty` (a policy, a peer) called `name`: anonymous when
/// `name` is the one the parser gave an anonymous section (`@ty[i]`), named when UCI allows
/// `name` as a section name, else anonymous with an option `name`.
fn named_section(ty: &str, i: usize, name: &str) -> Section {
    if name == format!("@{ty}[{i}]") {
        Section::new(ty, None)
    } else if super::uci::valid_name(name) {
        Section::new(ty, Some(name))
    } else {
        let mut s = Section::new(ty, None);
        s.push_option("name", name);
        s
    }
}

fn reader<'a>(
    file: &'a str,
    s: &'a Section,
    label: String,
    errors: &'a mut Vec<Diagnostic>,
    warnings: &'a mut Vec<Diagnostic>,
) -> Reader<'a> {
    Reader {
        file,
        section: s,
        label,
        used: vec![false; s.entries.len()],
        errors,
        warnings,
    }
}

fn header_pos(s: &Section) -> Pos {
    Pos {
        line: s.pos.line,
        col: 0,
    }
}

fn read_main(
    file: &str,
    s: &Section,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Main> {
    let n_err = errors.len();
    let label = format!("braid '{}'", s.name.as_deref().unwrap_or("main"));
    let mut r = reader(file, s, label, errors, warnings);
    let enabled = r.get_or("enabled", true, parse_bool);
    let role_given = r.get("role", |v| parse_word(v, ROLES));
    // With a bad role, the role's required options are not asked for (the role is unknown).
    let role_ok = role_given.is_some() || !r.has("role");
    let role = role_given.unwrap_or(Role::Edge);
    let inline = r.get("private_key", PrivateKey::from_base64);
    let key_file = r.get("key_file", |v| {
        if v.is_empty() {
            Err("expected a file path".to_string())
        } else {
            Ok(v.to_string())
        }
    });
    let key = match (inline, key_file, r.has("private_key"), r.has("key_file")) {
        (Some(k), None, _, false) => Some(KeySource::Inline(k)),
        (None, Some(f), false, _) => Some(KeySource::File(f)),
        (_, _, true, true) => {
            r.error(
                header_pos(s),
                "both 'private_key' and 'key_file' are set: expected only one".into(),
            );
            None
        }
        (_, _, false, false) => {
            if enabled {
                r.error(
                    header_pos(s),
                    "no key: expected option 'private_key' (from 'braid genkey') or 'key_file'"
                        .into(),
                );
            }
            None
        }
        _ => None, // a bad value, already reported
    };
    let mut main = Main {
        line: s.pos.line,
        enabled,
        role,
        key,
        core_host: None,
        core_port: DEFAULT_PORT,
        core_public_key: None,
        listen_port: DEFAULT_PORT,
        pool: default_pool(),
        max_clients: DEFAULT_MAX_CLIENTS,
        allow_dest: Vec::new(),
        deny_dest: Vec::new(),
        lan: Vec::new(),
        steer: Steer::All,
        bypass: Vec::new(),
        mtu: DEFAULT_MTU,
        log_level: LogLevel::Info,
        space: "braid".into(),
        hub: "braid0".into(),
        state_file: "/etc/braid/state".into(),
        control_socket: DEFAULT_CONTROL_SOCKET.into(),
        memory: super::budget::Budget::default_for(role == Role::Core),
    };
    main.mtu = r.get_or("mtu", DEFAULT_MTU, |v| parse_range(v, 1280, 9000));
    main.log_level = r.get_or("log_level", LogLevel::Info, |v| parse_word(v, LOG_LEVELS));
    main.space = r.get_or("space", main.space.clone(), parse_ifname);
    main.hub = r.get_or("hub", main.hub.clone(), parse_ifname);
    let system = r.file.starts_with(SYSTEM_CONFIG_DIR);
    let path = |v: &str| {
        if !v.starts_with('/') {
            return Err(format!("expected an absolute path, got '{v}'"));
        }
        if system && !daemon_path_allowed(v) {
            return Err(format!(
                "'{v}': the daemon (root) writes and replaces this file; in {SYSTEM_CONFIG_DIR} \
                 (which LuCI can write) it must be under {}",
                DAEMON_PATH_DIRS.join(" or ")
            ));
        }
        Ok(v.to_string())
    };
    main.state_file = r.get_or("state_file", main.state_file.clone(), path);
    main.control_socket = r.get_or("control_socket", main.control_socket.clone(), path);
    main.memory = r.get_or("memory", main.memory, super::budget::parse);
    match role {
        Role::Edge => {
            main.core_host = r.get("core_host", parse_host);
            main.core_port = r.get_or("core_port", DEFAULT_PORT, parse_port);
            main.core_public_key = r.get("core_public_key", PublicKey::from_base64);
            main.lan = r.list("lan", Cidr::parse);
            main.steer = r.get_or("steer", Steer::All, |v| parse_word(v, STEERS));
            main.bypass = r.list("bypass", Cidr::parse);
            for (key, missing) in [
                ("core_host", main.core_host.is_none()),
                ("core_public_key", main.core_public_key.is_none()),
                ("lan", main.lan.is_empty()),
            ] {
                if missing && enabled && role_ok && !r.has(key) {
                    let what = match key {
                        "core_host" => "option 'core_host' (the core's address or host name)",
                        "core_public_key" => {
                            "option 'core_public_key' (the core's public key, 'braid pubkey')"
                        }
                        _ => "at least one 'list lan' subnet (the clients to bond)",
                    };
                    r.error(header_pos(s), format!("role edge needs {what}"));
                }
            }
            for k in [
                "listen_port",
                "pool",
                "max_clients",
                "allow_dest",
                "deny_dest",
            ] {
                r.not_applicable(k, "on the edge (role edge)");
            }
        }
        Role::Core => {
            main.listen_port = r.get_or("listen_port", DEFAULT_PORT, parse_port);
            main.pool = r.get_or("pool", default_pool(), parse_pool);
            main.max_clients = r.get_or("max_clients", DEFAULT_MAX_CLIENTS, |v| {
                parse_range(v, 1, 65535)
            });
            main.allow_dest = r.list("allow_dest", Cidr::parse);
            main.deny_dest = r.list("deny_dest", Cidr::parse);
            for k in [
                "core_host",
                "core_port",
                "core_public_key",
                "lan",
                "steer",
                "bypass",
            ] {
                r.not_applicable(k, "on the core (role core)");
            }
        }
    }
    r.finish(MAIN_KEYS);
    (errors.len() == n_err).then_some(main)
}

fn read_link(
    file: &str,
    s: &Section,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Link> {
    let n_err = errors.len();
    let Some(name) = s.name.clone() else {
        errors.push(Diagnostic {
            file: file.to_string(),
            line: s.pos.line,
            col: None,
            message:
                "a link section needs a name, its netifd interface: expected \"config link 'wan'\""
                    .into(),
        });
        return None;
    };
    let mut r = reader(file, s, format!("link '{name}'"), errors, warnings);
    let enabled = r.get_or("enabled", true, parse_bool);
    let device = r.get("device", parse_ifname);
    let transport = r.get_or("transport", Transport::Udp, |v| parse_word(v, TRANSPORTS));
    let role = r.get_or("role", LinkRole::Primary, |v| parse_word(v, LINK_ROLES));
    let weight = r.get_or("weight", 1u16, |v| parse_range(v, 1, 1000));
    let upload = r.get("upload", parse_rate).filter(|&v| v > 0);
    let download = r.get("download", parse_rate).filter(|&v| v > 0);
    let bytes = r.get("quota", |v| match parse_bytes(v) {
        Ok(0) => Err(QUOTA_ZERO.into()),
        x => x,
    });
    let has_quota = r.has("quota");
    if !has_quota {
        for k in ["quota_period", "reset_day", "quota_action"] {
            r.not_applicable(k, "without option 'quota'");
        }
    }
    let period = r.get_or("quota_period", QuotaPeriod::Month, |v| {
        parse_word(v, QUOTA_PERIODS)
    });
    if period == QuotaPeriod::Day {
        r.not_applicable("reset_day", "with quota_period 'day'");
    }
    let reset_day = r.get_or("reset_day", 1u8, |v| parse_range(v, 1, 31));
    let action = r.get_or("quota_action", QuotaAction::Backup, |v| {
        parse_word(v, QUOTA_ACTIONS)
    });
    r.finish(LINK_KEYS);
    if errors.len() != n_err || !enabled {
        return None;
    }
    Some(Link {
        name,
        line: s.pos.line,
        device,
        transport,
        role,
        weight,
        upload,
        download,
        quota: bytes.map(|bytes| Quota {
            bytes,
            period,
            reset_day,
            action,
        }),
    })
}

fn read_policy(
    file: &str,
    s: &Section,
    idx: usize,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<(Policy, ClassDraft)> {
    let n_err = errors.len();
    let default_name = s.name.clone().unwrap_or_else(|| format!("@policy[{idx}]"));
    let mut r = reader(
        file,
        s,
        format!("policy '{default_name}'"),
        errors,
        warnings,
    );
    let name = r.get_or("name", default_name.clone(), |v| Ok(v.to_string()));
    if name != default_name {
        r.label = format!("policy '{name}'");
    }
    let enabled = r.get_or("enabled", true, parse_bool);
    let src_ip = r.list("src_ip", Cidr::parse);
    let src_mac = r.list("src_mac", Mac::parse);
    let src_port = r.list("src_port", |v| {
        v.split(',')
            .map(PortRange::parse)
            .collect::<Result<Vec<_>, _>>()
    });
    let dest_ip = r.list("dest_ip", Cidr::parse);
    let dest_port = r.list("dest_port", |v| {
        v.split(',')
            .map(PortRange::parse)
            .collect::<Result<Vec<_>, _>>()
    });
    let proto = r.get_or("proto", Proto::Any, |v| {
        parse_word(&v.to_ascii_lowercase(), PROTOS)
    });
    let dscp = r.list("dscp", parse_dscp);
    let class = r.get("class", parse_class_name);
    if class.is_none() && !r.has("class") {
        r.error(
            header_pos(s),
            "no class: expected option 'class' naming the traffic class (like 'realtime')".into(),
        );
    }
    let line_of = |r: &Reader, k: &str| {
        r.section
            .entries
            .iter()
            .rev()
            .find(|e| e.key == k)
            .map(|e| e.pos.line)
            .unwrap_or(s.pos.line)
    };
    let mode = r
        .get("mode", |v| parse_word(v, MODES))
        .map(|m| (m, line_of(&r, "mode")));
    let link = r
        .get("link", |v| {
            if super::uci::valid_name(v) {
                Ok(v.to_string())
            } else {
                Err(format!("expected the name of a link section, got '{v}'"))
            }
        })
        .map(|l| (l, line_of(&r, "link")));
    let priority = r
        .get("priority", |v| parse_range(v, 0, 7))
        .map(|p| (p, line_of(&r, "priority")));
    let weight = r
        .get("weight", |v| parse_range(v, 1, 1000))
        .map(|w| (w, line_of(&r, "weight")));
    if proto == Proto::Icmp && (!src_port.is_empty() || !dest_port.is_empty()) {
        r.error(
            header_pos(s),
            "ports given with proto 'icmp': expected proto tcp, udp or any".into(),
        );
    }
    r.finish(POLICY_KEYS);
    if errors.len() != n_err || !enabled {
        return None;
    }
    let class = class.expect("no errors means class was read");
    Some((
        Policy {
            name,
            line: s.pos.line,
            src_ip,
            src_mac,
            src_port: src_port.into_iter().flatten().collect(),
            dest_ip,
            dest_port: dest_port.into_iter().flatten().collect(),
            proto,
            dscp,
            class: class.clone(),
        },
        ClassDraft {
            name: class,
            first_line: s.pos.line,
            mode,
            link,
            priority,
            weight,
        },
    ))
}

fn merge_class(
    file: &str,
    drafts: &mut Vec<ClassDraft>,
    d: ClassDraft,
    errors: &mut Vec<Diagnostic>,
) {
    let Some(prev) = drafts.iter_mut().find(|p| p.name == d.name) else {
        drafts.push(d);
        return;
    };
    fn merge<T: PartialEq + fmt::Debug + Clone>(
        file: &str,
        class: &str,
        what: &str,
        show: impl Fn(&T) -> String,
        old: &mut Option<(T, u32)>,
        new: Option<(T, u32)>,
        errors: &mut Vec<Diagnostic>,
    ) {
        match (old.as_ref(), new) {
            (Some((a, la)), Some((b, lb))) if *a != b => errors.push(Diagnostic {
                file: file.to_string(),
                line: lb,
                col: None,
                message: format!(
                    "class '{class}': {what} '{}' conflicts with '{}' set on line {la}: expected one value per class",
                    show(&b),
                    show(a)
                ),
            }),
            (None, Some(b)) => *old = Some(b),
            _ => {}
        }
    }
    let name = d.name.clone();
    merge(
        file,
        &name,
        "mode",
        mode_name,
        &mut prev.mode,
        d.mode,
        errors,
    );
    merge(
        file,
        &name,
        "link",
        |l: &String| l.clone(),
        &mut prev.link,
        d.link,
        errors,
    );
    merge(
        file,
        &name,
        "priority",
        |p: &u8| p.to_string(),
        &mut prev.priority,
        d.priority,
        errors,
    );
    merge(
        file,
        &name,
        "weight",
        |w: &u16| w.to_string(),
        &mut prev.weight,
        d.weight,
        errors,
    );
}

/// The UCI word for a mode.
pub(crate) fn mode_name(m: &Mode) -> String {
    word(MODES, *m).to_string()
}

fn read_peer(
    file: &str,
    s: &Section,
    idx: usize,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Peer> {
    let n_err = errors.len();
    let default_name = s.name.clone().unwrap_or_else(|| format!("@peer[{idx}]"));
    let mut r = reader(file, s, format!("peer '{default_name}'"), errors, warnings);
    let name = r.get_or("name", default_name, |v| Ok(v.to_string()));
    let enabled = r.get_or("enabled", true, parse_bool);
    let public_key = r.get("public_key", PublicKey::from_base64);
    if !r.has("public_key") {
        r.error(
            header_pos(s),
            "no public_key: expected option 'public_key' with the edge's key ('braid pubkey')"
                .into(),
        );
    }
    let allowed_lan = r.list("allowed_lan", Cidr::parse);
    r.finish(PEER_KEYS);
    if errors.len() != n_err || !enabled {
        return None;
    }
    Some(Peer {
        name,
        line: s.pos.line,
        public_key: public_key.expect("no errors means the key was read"),
        allowed_lan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_rate("512kbit"), Ok(512_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("1.5Mbit"), Ok(1_500_000));
        assert_eq!(parse_rate("100000"), Ok(100_000));
        assert_eq!(parse_rate("64k"), Ok(64_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("").is_err());
        assert!(parse_rate("1.mbit").is_err());
        assert!(parse_rate("10mbps").unwrap_err().contains("ambiguous"));
        assert!(parse_rate("99999999999tbit").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("20G"), Ok(20_000_000_000));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("4Gi"), Ok(4 << 30));
        assert_eq!(parse_bytes("1.5T"), Ok(1_500_000_000_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("20X").is_err());
        assert!(parse_bytes("G").is_err());
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("192.168.1.77/24").unwrap();
        assert_eq!(c.to_string(), "192.168.1.0/24");
        assert!(c.contains("192.168.1.200".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().prefix, 32);
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("fd00:1::5/64").unwrap();
        assert_eq!(v6.to_string(), "fd00:1::/64");
        assert!(v6.contains("fd00:1::ffff".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
        assert!(Cidr::parse("10.0.0.0/+8").is_err());
    }

    #[test]
    fn ports_macs_dscp_bools() {
        assert_eq!(PortRange::parse("80"), Ok(PortRange { lo: 80, hi: 80 }));
        assert_eq!(
            PortRange::parse("8000-8080"),
            Ok(PortRange { lo: 8000, hi: 8080 })
        );
        assert_eq!(
            PortRange::parse("1000:2000"),
            Ok(PortRange { lo: 1000, hi: 2000 })
        );
        assert!(PortRange::parse("0").is_err());
        assert!(PortRange::parse("90-80").is_err());
        assert!(PortRange::parse("65536").is_err());
        assert_eq!(
            Mac::parse("02:00:00:AA:bb:cc").unwrap().to_string(),
            "02:00:00:aa:bb:cc"
        );
        assert!(Mac::parse("02:00:00:aa:bb").is_err());
        assert!(Mac::parse("02:00:00:aa:bb:cc:dd").is_err());
        assert_eq!(parse_dscp("EF"), Ok(46));
        assert_eq!(parse_dscp("cs6"), Ok(48));
        assert_eq!(parse_dscp("AF41"), Ok(34));
        assert_eq!(parse_dscp("AF11"), Ok(10));
        assert_eq!(parse_dscp("63"), Ok(63));
        assert!(parse_dscp("64").is_err());
        assert!(parse_dscp("AF51").is_err());
        assert!(parse_dscp("CS8").is_err());
        assert_eq!(parse_bool("yes"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("2").is_err());
    }

    #[test]
    fn keys() {
        let k = [7u8; 32];
        let s = PublicKey(k).to_base64();
        assert_eq!(s.len(), 44);
        assert_eq!(PublicKey::from_base64(&s).unwrap().0, k);
        assert_eq!(PrivateKey::from_base64(&s).unwrap().0, k);
        assert!(PublicKey::from_base64("Zm9vYmFy").is_err());
        assert!(PublicKey::from_base64(&s[..43]).is_err());
        let p = PrivateKey([1; 32]);
        assert_eq!(format!("{p:?}"), "PrivateKey(<hidden>)");
        assert_eq!(format!("{:?}", PublicKey(k)), format!("PublicKey({s})"));
    }

    proptest::proptest! {
        #[test]
        fn key_round_trip(k in proptest::prelude::any::<[u8; 32]>()) {
            proptest::prop_assert_eq!(PublicKey::from_base64(&PublicKey(k).to_base64()), Ok(PublicKey(k)));
        }

        #[test]
        fn value_parsers_never_panic(s in "\\PC{0,24}") {
            let _ = (parse_rate(&s), parse_bytes(&s), parse_dscp(&s), Cidr::parse(&s),
                     PortRange::parse(&s), Mac::parse(&s), PublicKey::from_base64(&s));
        }
    }
}
