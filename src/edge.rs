//! `braid edge`: the router side.
//!
//! Start-up order is chosen so that a failure leaves the router as it was:
//! 1. read and check the config (every error names file:line), resolve the core, open every
//!    link socket (a missing device is named; the edge needs at least one);
//! 2. remove what a crashed earlier instance left (inert policy rules), create the space (a
//!    namespace only this process holds) and the hub into it, and open the capture;
//! 3. handshake with the core over every link;
//! 4. only once the session is up, install the policy rules that steer the LAN into the hub.
//!
//! The rules come out again when for [`FAIL_OPEN_AFTER`] no link has worked and nothing from
//! the core has been heard (clients use the plain WAN meanwhile), when the session closes, on a
//! clean stop, and with the space when the process dies. Whenever the edge removes them, and at
//! start (after a crash), it also deletes the router's conntrack entries of the flows the hub
//! carried ([`crate::os::conntrack`]): made without NAT, they would keep a running UDP stream
//! from being masqueraded onto the plain WAN.
//!
//! After such a fail-open the rules go back in at the first sign of life: the first datagram
//! from the core that opens (a probe reply, while every link is still Down), not only once a
//! link is declared Up ([`FailOpen`]). When all links fail together (a train in a tunnel) the
//! plain WAN is as dead as they are, and the sooner the steering returns, the fewer of the
//! clients' retransmissions leave by a WAN where the server answers a bonded flow with a reset.
//! Steering back, the edge deletes the conntrack entries of every steered flow, masqueraded
//! ones included: those the WAN made meanwhile would otherwise translate the flow's packets
//! to the router's WAN address, and its replies from the tunnel to random ports the client
//! resets.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::model::{self, Config, QuotaAction, Role, Steer, Transport};
use crate::control::{self, Reply, Request};
use crate::daemon::{self, Clock, ControlCall, ControlServer, Inbound, LinkIo};
use crate::os::hub::{ip_payload, Batch, Capture};
use crate::os::neigh::{read_neighbours, MacMap, NeighWatch};
use crate::os::space::{cleanup_stale, Hub, HubConfig, Space, SteerConfig, Steering};
use crate::os::uplink::{self, LinkSocketSpec, LinkWatch, TcpLink};
use crate::os::Prefix;
use crate::proto::link::{LinkConfig, LinkState};
use crate::proto::packet::{self, clamp_mss, mss_for_mtu, Classifier, Direction};
use crate::proto::seal::{Channel, Keypair};
use crate::proto::session::{Event, PacketMeta, Session, SessionConfig, SessionStats};
use crate::proto::wire::LinkRole;
use crate::proto::{Instant, LinkId};
use crate::quota::{QuotaBook, StampMark, Verdict};

/// Steering is withdrawn when no link has worked and the core has not been heard for this long
/// (fail-open).
pub const FAIL_OPEN_AFTER: Duration = Duration::from_secs(3);
/// How often the neighbour table is read for `src_mac` policies.
pub const MACS_EVERY: Duration = Duration::from_secs(5);
/// ... and how soon after a packet from a LAN address not in it yet.
pub const MACS_MISS_EVERY: Duration = Duration::from_secs(1);
/// How long before an unanswered handshake is reported as an error.
pub const HANDSHAKE_WARN: Duration = Duration::from_secs(10);

const HELP: &str = "\
braid edge - run the router side of the bond

USAGE:
    braid edge [--config FILE] [--stderr]

Reads `config braid 'main'` (role edge), every `config link` and `config policy` of FILE
(default /etc/config/braid), handshakes with the core over every link, and steers the LAN
sources into the tunnel once the session is up. Runs in the foreground (procd supervises it).
SIGHUP or `braid reload` applies a changed config without dropping flows; SIGTERM stops it
and removes everything it made. If it dies, clients fall back to the plain WAN.

OPTIONS:
    --config FILE    UCI file to read (default /etc/config/braid)
    --stderr         log to stderr even when not on a terminal (default: syslog)

EXAMPLE:
    braid genkey > /etc/braid/key; braid pubkey < /etc/braid/key   # give it to the core
    uci set braid.main.core_host=core.example.net; uci commit braid
    braid edge --config /etc/config/braid --stderr
";

/// Parsed command line of `braid edge` / `braid core`.
pub struct DaemonArgs {
    pub config: PathBuf,
    pub stderr: bool,
}

/// Parses `--config FILE --stderr --help`; `Err(code)` to exit with.
pub fn parse_args(cmd: &str, help: &str, args: Vec<OsString>) -> Result<DaemonArgs, ExitCode> {
    use lexopt::prelude::*;
    let mut out = DaemonArgs {
        config: PathBuf::from(crate::config::DEFAULT_PATH),
        stderr: false,
    };
    let mut p = lexopt::Parser::from_args(args);
    loop {
        match p.next() {
            Ok(None) => return Ok(out),
            Ok(Some(Short('h') | Long("help"))) => {
                print!("{help}");
                return Err(ExitCode::SUCCESS);
            }
            Ok(Some(Short('c') | Long("config"))) => match p.value() {
                Ok(v) => out.config = v.into(),
                Err(e) => return Err(crate::cli::usage_error(cmd, e)),
            },
            Ok(Some(Long("stderr"))) => out.stderr = true,
            Ok(Some(other)) => return Err(crate::cli::usage_error(cmd, other.unexpected())),
            Err(e) => return Err(crate::cli::usage_error(cmd, e)),
        }
    }
}

/// Loads the config for `role`, printing every diagnostic; `Err(code)` to exit with.
pub fn load_config(cmd: &str, args: &DaemonArgs, role: Role) -> Result<Config, ExitCode> {
    let cfg = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            for d in e.diagnostics() {
                eprintln!("braid {cmd}: {d}");
            }
            if e.diagnostics().is_empty() {
                eprintln!("braid {cmd}: {e}");
            }
            return Err(ExitCode::from(1));
        }
    };
    for w in &cfg.warnings {
        eprintln!("braid {cmd}: warning: {w}");
    }
    if cfg.main.role != role {
        eprintln!(
            "braid {cmd}: {}:{}: role is '{}' but this is `braid {cmd}` (set option role '{cmd}')",
            cfg.file,
            cfg.main.line,
            if cfg.main.role == Role::Edge {
                "edge"
            } else {
                "core"
            }
        );
        return Err(ExitCode::from(1));
    }
    if !cfg.main.enabled {
        eprintln!(
            "braid {cmd}: warning: {}:{}: enabled is '0'; running anyway because started by hand",
            cfg.file, cfg.main.line
        );
    }
    Ok(cfg)
}

/// Runs a daemon's async main on a current-thread runtime.
pub fn run_local<F: std::future::Future<Output = Result<(), String>>>(cmd: &str, f: F) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("braid {cmd}: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("braid {cmd}: {e}");
            ExitCode::from(1)
        }
    }
}

/// The shared entry of `braid edge` and `braid core`: arguments, config for `role`, logging,
/// then the daemon's async `main` on a current-thread runtime.
pub fn daemon_main<F, Fut>(
    cmd: &str,
    help: &str,
    role: Role,
    args: Vec<OsString>,
    main: F,
) -> ExitCode
where
    F: FnOnce(DaemonArgs, Config) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let args = match parse_args(cmd, help, args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let cfg = match load_config(cmd, &args, role) {
        Ok(c) => c,
        Err(code) => return code,
    };
    daemon::init_logging(cfg.main.log_level.to_filter(), args.stderr);
    run_local(cmd, main(args, cfg))
}

/// `braid edge`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    daemon_main("edge", HELP, Role::Edge, args, run)
}

/// Role of a config link as the protocol knows it.
pub fn wire_role(r: model::LinkRole) -> LinkRole {
    match r {
        model::LinkRole::Primary => LinkRole::Primary,
        model::LinkRole::Secondary => LinkRole::Secondary,
        model::LinkRole::Backup => LinkRole::Backup,
        model::LinkRole::Never => LinkRole::Never,
    }
}

/// The session's classes from the config's classes (pinned links by name -> link id).
pub fn session_classes(
    cfg: &Config,
    link_id: impl Fn(&str) -> Option<LinkId>,
) -> Vec<crate::proto::sched::ClassConfig> {
    use crate::proto::sched::{ClassConfig, Mode};
    let classifier = Classifier::from_config(cfg);
    classifier
        .classes()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let id = u8::try_from(i).ok()?;
            let mode = match c.mode {
                model::Mode::Aggregate => Mode::Aggregate,
                model::Mode::Redundant => Mode::Redundant,
                model::Mode::Backup => Mode::Backup,
                model::Mode::Pinned => {
                    Mode::Pinned(c.link.as_deref().and_then(&link_id).unwrap_or(0))
                }
            };
            Some(ClassConfig {
                id,
                mode,
                priority: c.priority,
                weight: u32::from(c.weight.max(1)),
            })
        })
        .collect()
}

fn link_config(l: &model::Link) -> LinkConfig {
    LinkConfig {
        role: wire_role(l.role),
        weight: u32::from(l.weight.max(1)),
        rate_cap_bps: l.upload.filter(|&c| c > 0),
    }
}

/// A link's session config, demoted by `action` when past its quota: `backup` or `never`, but
/// never promoted (a `never` link past its quota stays `never`).
pub fn demoted_config(l: &model::Link, action: Option<QuotaAction>) -> LinkConfig {
    let mut c = link_config(l);
    let floor = match action {
        None => return c,
        Some(QuotaAction::Backup) => LinkRole::Backup,
        Some(QuotaAction::Never) => LinkRole::Never,
    };
    let rank = |r: LinkRole| match r {
        LinkRole::Primary => 0,
        LinkRole::Secondary => 1,
        LinkRole::Backup => 2,
        LinkRole::Never => 3,
    };
    if rank(floor) > rank(c.role) {
        c.role = floor;
    }
    c
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve core_host '{host}': {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("core_host '{host}' has no address"))
}

/// What to do with the steering rules, as [`FailOpen::review`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerAction {
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
pub struct FailOpen {
    /// When a link last worked: not Down, or the core heard on it.
    last_ok: Instant,
    /// The steering was withdrawn and has not been installed since.
    withdrawn: bool,
}

impl FailOpen {
    pub fn new(now: Instant) -> FailOpen {
        FailOpen {
            last_ok: now,
            withdrawn: false,
        }
    }

    /// What to do now. `live`: the session is established and not closed; `installed`: the
    /// rules are in place; `any_up`: a link is not Down; `heard`: when a datagram from the
    /// core last opened. A `Withdraw` is taken as done; an `Install`, once
    /// [`FailOpen::installed`] is called.
    pub fn review(
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
    pub fn installed(&mut self) {
        self.withdrawn = false;
    }
}

/// One configured link.
struct EdgeLink {
    id: LinkId,
    cfg: model::Link,
    device: String,
    io: Option<LinkIo>,
    admin_up: bool,
}

struct Edge {
    cfg: Config,
    clock: Clock,
    core: SocketAddr,
    session: Session,
    links: Vec<EdgeLink>,
    classifier: Classifier,
    seed: u64,
    mss: u16,
    inbound: mpsc::Sender<Inbound>,
    hub: Hub,
    steer: SteerConfig,
    steering: Option<Steering>,
    fail_open: FailOpen,
    established_at: Option<std::time::Instant>,
    started: std::time::Instant,
    warned_handshake: bool,
    drops: HashMap<&'static str, u64>,
    /// Client packets classified into each class (by `ClassId`, carried by name across reloads).
    class_packets: Vec<u64>,
    users: crate::users::UserTable,
    users_rolled: std::time::Instant,
    /// Measured rates and time in state for `braid status`: links by id, the session as `None`.
    meter: control::Meter<Option<LinkId>>,
    quota: QuotaBook,
    /// The handshake clock's mark, kept in the state file with the quota counters.
    mark: StampMark,
    /// Link bytes (both directions) at the last quota count.
    counted: HashMap<LinkId, u64>,
    /// Links demoted by their quota.
    demoted: HashMap<LinkId, QuotaAction>,
    /// LAN addresses by client MAC (from the neighbour table), for `src_mac` policies.
    macs: MacMap,
    /// The netlink socket the neighbour table is read with (opened on first use).
    neigh_nl: Option<crate::os::netlink::Netlink>,
    /// When the neighbour table was last read.
    macs_read: Option<std::time::Instant>,
    /// A client address not in `macs` sent a packet (read the table again soon).
    macs_miss: bool,
    // Space last: dropped after the hub and capture that live in it.
    _space: Space,
}

fn open_link(
    id: LinkId,
    device: &str,
    l: &model::Link,
    core: SocketAddr,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<LinkIo, String> {
    let mut nl = crate::os::netlink::Netlink::open().map_err(|e| e.to_string())?;
    let local = uplink::device_address(&mut nl, device, core.is_ipv4())
        .map_err(|e| format!("link '{}': {e}", l.name))?;
    let spec = LinkSocketSpec {
        device: device.to_string(),
        local,
        remote: core,
    };
    match l.transport {
        Transport::Udp => {
            let s = uplink::udp_socket(&spec).map_err(|e| format!("link '{}': {e}", l.name))?;
            daemon::udp_link(id, s, inbound.clone()).map_err(|e| format!("link '{}': {e}", l.name))
        }
        Transport::Tcp => Ok(daemon::tcp_link(
            id,
            TcpLink::new(spec),
            core,
            inbound.clone(),
        )),
    }
}

fn prefixes(c: &[model::Cidr]) -> Vec<Prefix> {
    c.iter().map(|c| Prefix::new(c.addr, c.prefix)).collect()
}

fn steer_config(cfg: &Config, core: SocketAddr) -> SteerConfig {
    let mut s = SteerConfig::new();
    s.sources = prefixes(&cfg.main.lan);
    s.tcp_only = cfg.main.steer == Steer::Tcp;
    s.bypass = prefixes(&cfg.main.bypass);
    // Traffic to the core itself never enters the tunnel.
    s.bypass.push(Prefix::host(core.ip()));
    s
}

fn hub_config(cfg: &Config) -> HubConfig {
    let mut h = HubConfig::new(&cfg.main.hub);
    h.mtu = u32::from(cfg.main.mtu);
    h
}

/// Datagram buffer size for a WAN MTU of 1500: the outer IPv4 + UDP headers leave this much.
const DATAGRAM: usize = 1500 - 28;

async fn run(_args: DaemonArgs, cfg: Config) -> Result<(), String> {
    let clock = Clock::new();
    let private = cfg.private_key().map_err(|e| e.to_string())?;
    let core_key = cfg
        .main
        .core_public_key
        .ok_or("core_public_key is not set")?;
    let host = cfg.main.core_host.clone().ok_or("core_host is not set")?;
    let core = resolve(&host, cfg.main.core_port)?;
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(4096);

    // 1. Link sockets (nothing on the host changes if none can be opened).
    let mut links = Vec::new();
    let mut problems = Vec::new();
    for (i, l) in cfg.links.iter().enumerate() {
        let id = LinkId::try_from(i).map_err(|_| "more than 256 links")?;
        let device = l.device.clone().unwrap_or_else(|| l.name.clone());
        let io = match open_link(id, &device, l, core, &in_tx) {
            Ok(io) => Some(io),
            Err(e) => {
                problems.push(format!("{e} (device '{device}', {}:{})", cfg.file, l.line));
                None
            }
        };
        links.push(EdgeLink {
            id,
            cfg: l.clone(),
            device,
            io,
            admin_up: true,
        });
    }
    if links.iter().all(|l| l.io.is_none()) {
        return Err(if links.is_empty() {
            format!("{}: no `config link` section: nothing to bond", cfg.file)
        } else {
            format!("no link can be opened: {}", problems.join("; "))
        });
    }
    for p in &problems {
        log::warn!("{p}; waiting for it to appear");
    }

    // 2. The control socket first: it refuses to start when another edge answers on it, so a
    //    second instance cannot clean away the first one's rules.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlCall>(16);
    let _ctl = ControlServer::bind(std::path::Path::new(&cfg.main.control_socket), ctl_tx)
        .map_err(|e| format!("control socket {}: {e}", cfg.main.control_socket))?;
    // Space, hub, capture.
    let hubc = hub_config(&cfg);
    let steer = steer_config(&cfg, core);
    match cleanup_stale(&hubc, &steer) {
        Ok(c) => log::debug!("stale state cleaned: {c:?}"),
        Err(e) => log::warn!("cleaning a previous run's state: {e}"),
    }
    // Flows a crashed instance steered have conntrack entries without NAT: until a session
    // steers them again they must get fresh (masqueraded) ones to reach the plain WAN.
    flush_conntrack(&steer, "flows of an earlier run");
    let space = Space::new().map_err(|e| e.to_string())?;
    let hub = Hub::create(&space, hubc).map_err(|e| e.to_string())?;
    let capture = Capture::open(&space, &hub).map_err(|e| e.to_string())?;
    // SAFETY: the Capture owns its fd and keeps it open, unchanged, for as long as it lives.
    let capture = unsafe { AsyncFd::register(capture) }.map_err(|e| format!("capture: {e}"))?;

    // 3. The session.
    let keys = Keypair::from_private(private.0);
    let now = clock.now();
    let mut session = Session::new(
        Channel::initiator(&keys, core_key.0, now),
        SessionConfig {
            max_packet: usize::from(cfg.main.mtu),
            ..SessionConfig::default()
        },
        now,
    );
    let names: Vec<(String, LinkId)> = links.iter().map(|l| (l.cfg.name.clone(), l.id)).collect();
    session.set_classes(&session_classes(&cfg, |n| {
        names.iter().find(|(x, _)| x == n).map(|x| x.1)
    }));
    for l in &links {
        session.add_link(l.id, link_config(&l.cfg), now);
        session.set_link_name(l.id, &l.cfg.name);
        session.set_peer_rate_cap(l.id, l.cfg.download);
        if l.io.is_none() {
            session.set_link_admin(l.id, false, now);
        }
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| format!("random seed: {e}"))?;
    // The state file: quota counters and the handshake clock's mark.
    let state = std::fs::read_to_string(&cfg.main.state_file).unwrap_or_default();
    let mut edge = Edge {
        classifier: Classifier::from_config(&cfg),
        mss: mss_for_mtu(cfg.main.mtu, 4),
        cfg,
        clock,
        core,
        session,
        links,
        seed: u64::from_le_bytes(seed),
        inbound: in_tx,
        hub,
        steer,
        steering: None,
        fail_open: FailOpen::new(now),
        established_at: None,
        started: std::time::Instant::now(),
        warned_handshake: false,
        drops: HashMap::new(),
        class_packets: Vec::new(),
        users: crate::users::UserTable::default(),
        users_rolled: std::time::Instant::now(),
        meter: control::Meter::new(),
        quota: QuotaBook::from_text(&state, unix_now()),
        mark: StampMark::from_text(&state),
        counted: HashMap::new(),
        demoted: HashMap::new(),
        macs: MacMap::default(),
        neigh_nl: None,
        macs_read: None,
        macs_miss: false,
        _space: space,
    };
    edge.refresh_macs(true);
    // Handshake times go on from the mark of the last run, whatever the clock says now.
    let mark = edge.mark.saved;
    edge.session.channel_mut().raise_stamp_floor(mark);
    edge.keep_stamp_mark();

    // Counters read back from the state file demote a link past its quota before it carries.
    edge.count_quota();

    let mut watch = match LinkWatch::open() {
        // SAFETY: the LinkWatch owns its netlink fd for as long as it lives.
        Ok(w) => unsafe { AsyncFd::register(w) }.ok(),
        Err(e) => {
            log::warn!("not watching interfaces: {e}");
            None
        }
    };
    // Neighbour changes, merged as they come (src_mac policies; the table is also read
    // periodically, so a missing subscription only slows them down).
    let mut neigh = match NeighWatch::open() {
        // SAFETY: the NeighWatch owns its netlink fd for as long as it lives.
        Ok(w) => unsafe { AsyncFd::register(w) }.ok(),
        Err(e) => {
            log::warn!("not watching the neighbour table: {e}");
            None
        }
    };
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut batch = Batch::default();
    let mut scratch = vec![0u8; 65536];
    log::info!(
        "edge started: core {}, {} link(s), space '{}', hub mtu {}",
        edge.core,
        edge.links.len(),
        edge.cfg.main.space,
        edge.cfg.main.mtu
    );

    loop {
        edge.pump(capture.get_ref());
        let deadline = edge.session.poll_timeout().map(|t| edge.clock.deadline(t));
        let sleep = daemon::sleep_until(deadline);
        let watch_ready = async {
            match &watch {
                Some(w) => w.readable().await.map(|mut g| g.clear_ready()).is_ok(),
                None => std::future::pending().await,
            }
        };
        let neigh_ready = async {
            match &neigh {
                Some(w) => w.readable().await.map(|mut g| g.clear_ready()).is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                if let Err(e) = edge.reload() {
                    log::error!("reload refused, the running config stays: {e}");
                }
            }
            Some(call) = ctl_rx.recv() => {
                let reply = edge.control(call.request);
                let _ = call.reply.send(reply);
            }
            r = capture.readable() => {
                let mut guard = r.map_err(|e| format!("capture: {e}"))?;
                loop {
                    match guard.get_inner().recv_batch(&mut batch) {
                        Ok(n) => {
                            for i in 0..n {
                                edge.upstream(batch.frame(i), &mut scratch);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) => return Err(format!("capture: {e}")),
                    }
                }
            }
            Some((id, mut d, _)) = in_rx.recv() => {
                let now = edge.clock.now();
                let _ = edge.session.handle_datagram(now, Some(id), &mut d);
                for _ in 0..64 {
                    match in_rx.try_recv() {
                        Ok((id, mut d, _)) => { let _ = edge.session.handle_datagram(now, Some(id), &mut d); }
                        Err(_) => break,
                    }
                }
                edge.sign_of_life();
            }
            _ = sleep => edge.session.handle_timeout(edge.clock.now()),
            _ = tick.tick() => edge.housekeeping(),
            true = neigh_ready => {
                if let Some(w) = neigh.as_mut() {
                    match w.get_mut().read() {
                        Ok(seen) => edge.neigh_events(&seen),
                        Err(e) => {
                            log::debug!("neighbour notifications: {e}; reading the table");
                            edge.refresh_macs(true);
                        }
                    }
                }
            }
            true = watch_ready => {
                if let Some(w) = watch.as_mut() {
                    match w.get_mut().read() {
                        Ok(events) => edge.device_events(events),
                        Err(e) => log::warn!("interface watch: {e}"),
                    }
                }
            }
        }
    }
    log::info!("edge stopping: removing steering, hub and space");
    edge.count_quota();
    edge.keep_stamp_mark();
    edge.save_quota();
    edge.session.close();
    edge.pump(capture.get_ref());
    if let Some(mut s) = edge.steering.take() {
        if let Err(e) = s.remove() {
            log::warn!("removing steering: {e}");
        }
        flush_conntrack(&edge.steer, "flows that were in the tunnel");
    }
    Ok(())
}

/// Deletes the conntrack entries of flows steered into the hub, so their next packets get
/// masqueraded out of a WAN (see [`crate::os::conntrack`]); logs what it did.
fn flush_conntrack(steer: &SteerConfig, what: &str) {
    log_flush(
        "fail-open",
        what,
        crate::os::conntrack::flush_steered(steer),
    );
}

/// Logs what a conntrack flush did: `when` names the moment, `what` the flows.
fn log_flush(when: &str, what: &str, removed: crate::os::Result<usize>) {
    match removed {
        Ok(0) => {}
        Ok(n) => log::info!("{when}: {n} conntrack entries of {what} removed"),
        Err(e) => log::warn!(
            "{when}: cannot remove conntrack entries of {what} (kmod-nf-conntrack-netlink \
             missing?): {e}"
        ),
    }
}

impl Edge {
    /// Moves everything the session wants done: datagrams out, packets to clients, events.
    fn pump(&mut self, capture: &Capture) {
        let now = self.clock.now();
        let mut out = [0u8; DATAGRAM];
        for _ in 0..4096 {
            let Some(t) = self.session.poll_transmit(now, &mut out) else {
                break;
            };
            // By id: after a reload removed a link, ids no longer match positions.
            let sent = self
                .links
                .iter()
                .find(|l| l.id == t.link)
                .and_then(|l| l.io.as_ref())
                .is_some_and(|io| io.tx.send(&out[..t.len]));
            if !sent {
                *self.drops.entry("link socket busy or closed").or_default() += 1;
            }
        }
        while let Some(mut d) = self.session.poll_deliver(now) {
            if let Ok(info) = packet::parse(&d.data) {
                self.users.down(info.dst, d.data.len());
            }
            clamp_mss(&mut d.data, self.mss);
            if capture.send_ip(&d.data).is_err() {
                *self.drops.entry("hub write failed").or_default() += 1;
            }
            self.session.recycle(d.data);
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                Event::Established if self.established_at.is_some() => {
                    // Renewed: the core answered our handshake (after a second without a word
                    // from it) with a new session.
                    log::warn!(
                        "the core {} had lost this edge's session (restarted?): new session \
                         established, flows go on",
                        self.core
                    );
                    self.established_at = Some(std::time::Instant::now());
                    self.review_steering(false);
                }
                Event::Established => {
                    log::info!("session with core {} established", self.core);
                    self.established_at = Some(std::time::Instant::now());
                    self.review_steering(false);
                }
                Event::LinkState { link, state } => {
                    let name = self
                        .links
                        .iter()
                        .find(|l| l.id == link)
                        .map_or("?", |l| l.cfg.name.as_str());
                    log::info!("link '{name}' is {}", state_name(state));
                }
                Event::Closed => {
                    log::warn!("the core closed the session");
                    self.review_steering(false);
                }
            }
        }
    }

    /// Installs or withdraws the steering as [`FailOpen`] decides. `any_up`: a link is not
    /// Down (the event loop checks only on its housekeeping tick; false elsewhere, where the
    /// core having just been heard is what counts).
    fn review_steering(&mut self, any_up: bool) {
        let now = self.clock.now();
        let live = self.session.is_established() && !self.session.is_closed();
        let heard = self.session.last_heard();
        match self
            .fail_open
            .review(now, live, self.steering.is_some(), any_up, heard)
        {
            SteerAction::Keep => {}
            SteerAction::Install { after_fail_open } => self.install_steering(after_fail_open),
            SteerAction::Withdraw => self.remove_steering(if live {
                "no link has worked and the core was not heard for 3 s"
            } else {
                "session closed"
            }),
        }
    }

    /// A datagram from the core opened: while the steering is out (a fail-open, say every link
    /// black-holed in a tunnel), that is enough to steer again at once, before any link is
    /// declared Up, so that clients' retransmissions stop leaving by the plain WAN (where the
    /// server answers a bonded flow with a reset).
    fn sign_of_life(&mut self) {
        if self.steering.is_none() {
            self.review_steering(false);
        }
    }

    fn install_steering(&mut self, after_fail_open: bool) {
        if self.steering.is_some() {
            return;
        }
        match Steering::install(&self.hub, self.steer.clone()) {
            Ok(s) => {
                log::info!(
                    "steering {} source prefix(es) into the tunnel{}",
                    self.steer.sources.len(),
                    if after_fail_open { " again" } else { "" }
                );
                self.steering = Some(s);
                self.fail_open.installed();
                if after_fail_open {
                    // After the rules: a packet in between would make a new masqueraded entry.
                    // Every steered flow's entry goes, masqueraded ones included (made by the
                    // plain WAN meanwhile), so bonded flows re-enter the hub untranslated.
                    log_flush(
                        "steering back",
                        "steered flows (masqueraded or not)",
                        crate::os::conntrack::flush_resteered(&self.steer),
                    );
                }
            }
            Err(e) => log::error!("cannot install steering rules: {e}"),
        }
    }

    fn remove_steering(&mut self, why: &str) {
        if let Some(mut s) = self.steering.take() {
            log::warn!("{why}: clients use the plain WAN until a link works again");
            if let Err(e) = s.remove() {
                log::warn!("removing steering: {e}");
            }
            flush_conntrack(&self.steer, "flows that were in the tunnel");
        }
    }

    /// One frame from the hub: a client's packet going up.
    fn upstream(&mut self, frame: &[u8], scratch: &mut [u8]) {
        let Some(ip) = ip_payload(frame) else {
            return;
        };
        if ip.len() > scratch.len() {
            return;
        }
        let pkt = &mut scratch[..ip.len()];
        pkt.copy_from_slice(ip);
        let info = match packet::parse(pkt) {
            Ok(i) => i,
            Err(_) => {
                *self.drops.entry("malformed client packet").or_default() += 1;
                return;
            }
        };
        let pkt = &mut pkt[..info.total_len.min(ip.len())];
        clamp_mss(pkt, self.mss);
        if !self.macs_miss && self.neigh_nl.is_some() && !self.macs.knows(info.src) {
            self.macs_miss = true;
        }
        // The frame's source MAC is the router's (the hub's host end), not the client's:
        // src_mac policies match by the addresses refresh_macs resolved.
        let verdict = self.classifier.classify(&info, Direction::Up, None);
        let ci = usize::from(verdict.class);
        if ci >= self.class_packets.len() {
            self.class_packets.resize(ci + 1, 0);
        }
        self.class_packets[ci] += 1;
        let flow_hash = info.flow().hash(self.seed);
        self.users.up(info.src, flow_hash, pkt.len());
        let meta = PacketMeta {
            user: packet::user_hash(info.src, self.seed),
            flow: u64::from(flow_hash),
            class: u8::try_from(verdict.class).unwrap_or(0),
        };
        if self.session.send(self.clock.now(), pkt, meta).is_err() {
            *self.drops.entry("queue full").or_default() += 1;
        }
    }

    /// Counts what each link with a quota carried since the last call; demotes or restores it.
    fn count_quota(&mut self) {
        let stats = self.session.stats();
        let now = unix_now();
        let mut changed = Vec::new();
        for l in &self.links {
            let Some(q) = &l.cfg.quota else { continue };
            let Some(s) = stats.links.iter().find(|s| s.id == l.id) else {
                continue;
            };
            let total = s.bytes_sent + s.bytes_received;
            let last = self.counted.insert(l.id, total).unwrap_or(0);
            let verdict = self
                .quota
                .account(&l.cfg.name, q, total.saturating_sub(last), now);
            let was = self.demoted.get(&l.id).copied();
            match (verdict, was) {
                (Verdict::Exceeded(action), was) if was != Some(action) => {
                    log::warn!(
                        "link '{}' used its quota ({} bytes): now {}",
                        l.cfg.name,
                        self.quota.used(&l.cfg.name),
                        if action == QuotaAction::Never {
                            "not used"
                        } else {
                            "backup only"
                        }
                    );
                    self.demoted.insert(l.id, action);
                    changed.push(l.id);
                }
                (Verdict::Within, Some(_)) => {
                    log::info!(
                        "link '{}': within its quota again, back to its role",
                        l.cfg.name
                    );
                    self.demoted.remove(&l.id);
                    changed.push(l.id);
                }
                _ => {}
            }
        }
        // A link without a quota (any more) is never demoted.
        let with_quota: Vec<LinkId> = self
            .links
            .iter()
            .filter(|l| l.cfg.quota.is_some())
            .map(|l| l.id)
            .collect();
        let stale: Vec<LinkId> = self
            .demoted
            .keys()
            .filter(|id| !with_quota.contains(id))
            .copied()
            .collect();
        for id in stale {
            self.demoted.remove(&id);
            changed.push(id);
        }
        for id in changed {
            if let Some(l) = self.links.iter().find(|l| l.id == id) {
                let cfg = self.session_link_config(l);
                self.session.add_link(id, cfg, self.clock.now());
            }
        }
        if self.quota.should_save(now) {
            self.save_quota();
        }
    }

    /// What the session should use for link `l`: its config, demoted if past its quota.
    fn session_link_config(&self, l: &EdgeLink) -> LinkConfig {
        demoted_config(&l.cfg, self.demoted.get(&l.id).copied())
    }

    /// Writes the state file: quota counters and the handshake clock's mark.
    fn save_quota(&mut self) {
        let path = std::path::Path::new(&self.cfg.main.state_file);
        let tmp = path.with_extension("tmp");
        let text = self.quota.to_text() + &self.mark.to_text();
        let r = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, path));
        match r {
            Ok(()) => self.quota.mark_saved(unix_now()),
            Err(e) => log::warn!("cannot write the state file {}: {e}", path.display()),
        }
    }

    /// Reads the wall clock again (one set right since start, by NTP say, is used from now
    /// on) and writes the state file before handshake times could reach its mark.
    fn keep_stamp_mark(&mut self) {
        let ch = self.session.channel_mut();
        ch.raise_stamp_floor(unix_now_us());
        let high = ch.stamp_high().max(self.clock.now().as_micros());
        if self.mark.advance(high) {
            self.save_quota();
        }
    }

    /// Reads the neighbour table and gives the classifier the current addresses of the MACs
    /// its policies name: every [`MACS_EVERY`], sooner ([`MACS_MISS_EVERY`]) after a packet
    /// from an address it does not know yet, and at once when `force`d (start, reload).
    fn refresh_macs(&mut self, force: bool) {
        let wanted = self.classifier.policy_macs();
        if wanted.is_empty() {
            self.macs = MacMap::default();
            self.macs_miss = false;
            return;
        }
        let since = self.macs_read.map(|t| t.elapsed());
        let due = match since {
            None => true,
            Some(s) => s >= MACS_EVERY || (self.macs_miss && s >= MACS_MISS_EVERY),
        };
        if !force && !due {
            return;
        }
        self.macs_read = Some(std::time::Instant::now());
        self.macs_miss = false;
        if self.neigh_nl.is_none() {
            match crate::os::netlink::Netlink::open() {
                Ok(nl) => self.neigh_nl = Some(nl),
                Err(e) => {
                    log::warn!("src_mac policies: cannot open netlink: {e}");
                    return;
                }
            }
        }
        let dump = match self.neigh_nl.as_mut().map(read_neighbours) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                log::warn!("src_mac policies: cannot read the neighbour table: {e}");
                self.neigh_nl = None;
                return;
            }
            None => return,
        };
        let lan = &self.cfg.main.lan;
        let now_ms = self.started.elapsed().as_millis() as u64;
        let changed = self.macs.update(now_ms, &dump, |a| {
            lan.is_empty() || lan.iter().any(|c| c.contains(a))
        });
        if changed || force {
            let table = self.macs.table(&wanted);
            log::debug!(
                "src_mac policies: {} of {} MAC(s) resolved: {:?}",
                table.len(),
                wanted.len(),
                table
            );
            self.classifier.set_mac_addresses(&table);
        }
    }

    /// Neighbour entries the kernel announced: merged at once when a `src_mac` policy exists.
    fn neigh_events(&mut self, seen: &[(std::net::IpAddr, model::Mac)]) {
        let wanted = self.classifier.policy_macs();
        if wanted.is_empty() || seen.is_empty() {
            return;
        }
        let lan = &self.cfg.main.lan;
        let now_ms = self.started.elapsed().as_millis() as u64;
        if self.macs.update(now_ms, seen, |a| {
            lan.is_empty() || lan.iter().any(|c| c.contains(a))
        }) {
            let table = self.macs.table(&wanted);
            log::debug!("src_mac policies: neighbour change: {table:?}");
            self.classifier.set_mac_addresses(&table);
        }
    }

    fn housekeeping(&mut self) {
        self.keep_stamp_mark();
        self.refresh_macs(false);
        self.count_quota();
        self.sample_meter();
        if self.users_rolled.elapsed() >= Duration::from_secs(30) {
            self.users.roll();
            self.users_rolled = std::time::Instant::now();
        }
        let stats = self.session.stats();
        let any_up = stats.links.iter().any(|l| l.state != LinkState::Down);
        self.review_steering(any_up);
        if !self.session.is_established()
            && !self.warned_handshake
            && self.started.elapsed() >= HANDSHAKE_WARN
        {
            self.warned_handshake = true;
            log::error!(
                "no answer from core {} on any link after {} s: check core_host, core_port, core_public_key, \
                 that the core lists this edge's public key, that UDP/TCP to it is not blocked, \
                 and that both run the same braid version; still trying",
                self.core,
                HANDSHAKE_WARN.as_secs()
            );
        }
    }

    fn link_index(&self, name: &str) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.cfg.name == name || l.device == name)
    }

    fn set_link(&mut self, i: usize, up: bool) -> Result<(), String> {
        let now = self.clock.now();
        let l = &mut self.links[i];
        if up && l.io.is_none() {
            l.io = Some(open_link(
                l.id,
                &l.device,
                &l.cfg,
                self.core,
                &self.inbound,
            )?);
        }
        if !up {
            // Close the socket: a device coming back may have a new address.
            l.io = None;
        }
        l.admin_up = up;
        self.session.set_link_admin(l.id, up, now);
        if !up {
            self.meter
                .note_state(Some(l.id), std::time::Instant::now(), "admin-down");
        }
        log::info!(
            "link '{}' taken {}",
            l.cfg.name,
            if up { "up" } else { "down" }
        );
        Ok(())
    }

    fn device_events(&mut self, events: Vec<uplink::DeviceEvent>) {
        use uplink::DeviceEvent::*;
        for e in events {
            let (device, up) = match &e {
                Up { device } | AddressAdded { device, .. } => (device.clone(), true),
                Down { device } => (device.clone(), false),
                AddressRemoved { device, .. } => (device.clone(), false),
                Resync => continue,
            };
            let Some(i) = self.links.iter().position(|l| l.device == device) else {
                continue;
            };
            let is_up = self.links[i].io.is_some();
            if up != is_up || matches!(e, AddressRemoved { .. }) {
                if let Err(err) = self.set_link(i, up) {
                    log::warn!("{err}");
                }
                if matches!(e, AddressRemoved { .. }) {
                    // Reopen with whatever address remains.
                    let _ = self.set_link(i, true);
                }
            }
        }
    }

    fn control(&mut self, req: Request) -> Reply {
        match req {
            Request::Status => Reply {
                status: Some(self.status()),
                ..Reply::ok()
            },
            Request::Link { name, up } => match self.link_index(&name) {
                Some(i) => match self.set_link(i, up) {
                    Ok(()) => Reply::ok(),
                    Err(e) => Reply::error(e),
                },
                None => Reply::error(format!("no link named '{name}' (see braid status)")),
            },
            Request::Reload => match self.reload() {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::error(e),
            },
        }
    }

    /// Re-reads the config and applies what changed, without touching the session's flows.
    fn reload(&mut self) -> Result<(), String> {
        let new = daemon::reload_config(&self.cfg.file)?;
        let changes = crate::config::diff::diff(&self.cfg, &new);
        if changes.is_empty() {
            log::info!("reload: nothing changed");
            return Ok(());
        }
        let now = self.clock.now();
        for c in &changes {
            log::info!("reload: {c:?}");
            if c.needs_restart() {
                log::warn!("reload: {c:?} needs a restart (/etc/init.d/braid restart) to apply");
            }
        }
        // Links: removed ones drain to the others, new ones open, changed ones are updated.
        let mut kept = Vec::new();
        for l in std::mem::take(&mut self.links) {
            match new.link(&l.cfg.name) {
                Some(_) => kept.push(l),
                None => {
                    log::info!("link '{}' removed", l.cfg.name);
                    self.session.remove_link(l.id, now);
                }
            }
        }
        self.links = kept;
        for nl in &new.links {
            let device = nl.device.clone().unwrap_or_else(|| nl.name.clone());
            if let Some(l) = self.links.iter_mut().find(|l| l.cfg.name == nl.name) {
                let reopen = l.device != device || l.cfg.transport != nl.transport;
                l.cfg = nl.clone();
                l.device = device;
                // A link past its quota stays demoted (count_quota re-checks it against the
                // new quota settings right after this).
                let cfg = demoted_config(nl, self.demoted.get(&l.id).copied());
                self.session.add_link(l.id, cfg, now);
                self.session.set_peer_rate_cap(l.id, nl.download);
                if reopen && l.admin_up {
                    l.io = open_link(l.id, &l.device, &l.cfg, self.core, &self.inbound).ok();
                }
                continue;
            }
            let Some(id) = (0..=255u8).find(|id| !self.links.iter().any(|l| l.id == *id)) else {
                return Err("more than 256 links".into());
            };
            let io = open_link(id, &device, nl, self.core, &self.inbound);
            if let Err(e) = &io {
                log::warn!("{e}; waiting for it to appear");
            }
            self.session.add_link(id, link_config(nl), now);
            self.session.set_link_name(id, &nl.name);
            self.session.set_peer_rate_cap(id, nl.download);
            let up = io.is_ok();
            self.links.push(EdgeLink {
                id,
                cfg: nl.clone(),
                device,
                io: io.ok(),
                admin_up: true,
            });
            if !up {
                self.session.set_link_admin(id, false, now);
            }
            log::info!("link '{}' added", nl.name);
        }
        self.links.sort_by_key(|l| l.id);
        // Policies and classes.
        let old_counts: HashMap<String, u64> = self
            .classifier
            .classes()
            .iter()
            .zip(&self.class_packets)
            .map(|(c, n)| (c.name.clone(), *n))
            .collect();
        self.classifier = Classifier::from_config(&new);
        self.class_packets = self
            .classifier
            .classes()
            .iter()
            .map(|c| old_counts.get(&c.name).copied().unwrap_or(0))
            .collect();
        let names: Vec<(String, LinkId)> = self
            .links
            .iter()
            .map(|l| (l.cfg.name.clone(), l.id))
            .collect();
        self.session.set_classes(&session_classes(&new, |n| {
            names.iter().find(|(x, _)| x == n).map(|x| x.1)
        }));
        self.mss = mss_for_mtu(new.main.mtu, 4);
        let new_steer = steer_config(&new, self.core);
        let steer_changed = new_steer.sources != self.steer.sources
            || new_steer.bypass != self.steer.bypass
            || new_steer.tcp_only != self.steer.tcp_only;
        let old_steer = std::mem::replace(&mut self.steer, new_steer);
        if steer_changed && self.steering.is_some() {
            self.steering = None; // drop removes the old rules
            self.install_steering(false);
            // Flows no longer steered take the plain WAN: their entries were made without NAT.
            log_flush(
                "reload",
                "flows no longer steered",
                crate::os::conntrack::flush_unsteered(&old_steer, &self.steer),
            );
        }
        log::set_max_level(new.main.log_level.to_filter());
        self.cfg = new;
        self.demoted
            .retain(|id, _| self.links.iter().any(|l| l.id == *id));
        self.count_quota();
        self.refresh_macs(true);
        log::info!("reload applied ({} change(s))", changes.len());
        Ok(())
    }

    /// A link's state as `braid status` names it.
    fn link_state(&self, l: &EdgeLink, stats: &SessionStats) -> &'static str {
        if !l.admin_up {
            return "admin-down";
        }
        stats
            .links
            .iter()
            .find(|s| s.id == l.id)
            .map_or("down", |s| state_name(s.state))
    }

    /// One sample of every link's and the session's counters for the measured rates.
    fn sample_meter(&mut self) {
        let now = std::time::Instant::now();
        let stats = self.session.stats();
        for l in &self.links {
            let (tx, rx) = stats
                .links
                .iter()
                .find(|s| s.id == l.id)
                .map_or((0, 0), |s| (s.bytes_sent, s.bytes_received));
            let state = self.link_state(l, &stats);
            self.meter.sample(Some(l.id), now, tx, rx, state);
        }
        let (tx, rx) = self.users.totals();
        let state = if self.session.is_established() {
            "established"
        } else {
            "handshaking"
        };
        self.meter.sample(None, now, tx, rx, state);
        let links = &self.links;
        self.meter
            .retain(|k| k.map_or(true, |id| links.iter().any(|l| l.id == id)));
    }

    fn status(&self) -> control::Status {
        let stats = self.session.stats();
        let now = std::time::Instant::now();
        let links = self
            .links
            .iter()
            .map(|l| {
                let s = stats.links.iter().find(|s| s.id == l.id);
                let state = self.link_state(l, &stats);
                let (tx, rx) = s.map_or((0, 0), |s| (s.bytes_sent, s.bytes_received));
                let m = self.meter.read(&Some(l.id), now, tx, rx, state);
                let role = self.session_link_config(l).role;
                control::LinkStatus {
                    name: l.cfg.name.clone(),
                    id: l.id,
                    device: Some(l.device.clone()),
                    address: None,
                    transport: match l.cfg.transport {
                        Transport::Udp => "udp",
                        Transport::Tcp => "tcp",
                    }
                    .into(),
                    state: state.into(),
                    state_s: m.state_s,
                    role: wire_role_name(role).into(),
                    over_quota: role != wire_role(l.cfg.role),
                    quota_bytes: l.cfg.quota.as_ref().map(|q| q.bytes),
                    quota_used_bytes: self.quota.used(&l.cfg.name),
                    tx_bps: m.tx_bps,
                    rx_bps: m.rx_bps,
                    ..s.map_or_else(Default::default, control::LinkStatus::figures)
                }
            })
            .collect();
        let classes = self
            .classifier
            .classes()
            .iter()
            .enumerate()
            .map(|(i, c)| control::ClassStatus {
                name: c.name.clone(),
                mode: model::mode_name(&c.mode),
                priority: c.priority,
                packets: self.class_packets.get(i).copied().unwrap_or(0),
            })
            .collect();
        let mut drops = daemon::counters(&self.drops);
        for (reason, count) in [
            ("refused by the send queue", stats.refused),
            ("given up after resends", stats.dropped_resend_limit),
            ("no path", stats.dropped_no_path),
            ("bad datagrams from the core", stats.bad_datagrams),
            ("duplicates received", stats.reorder.duplicates),
        ] {
            drops.push(control::Counter {
                reason: reason.into(),
                count,
            });
        }
        let state = if self.session.is_established() {
            "established"
        } else {
            "handshaking"
        };
        let (tx, rx) = self.users.totals();
        let bonded = self.meter.read(&None, now, tx, rx, state);
        control::Status {
            role: "edge".into(),
            version: crate::cli::VERSION.into(),
            uptime_s: self.clock.uptime_s(),
            sessions: vec![control::SessionStatus {
                peer: self.core.to_string(),
                state: state.into(),
                tx_bps: bonded.tx_bps,
                rx_bps: bonded.rx_bps,
                tx_bytes: tx,
                rx_bytes: rx,
                established_s: self.established_at.map_or(0, |t| t.elapsed().as_secs()),
                links,
                users: self
                    .users
                    .top(10)
                    .into_iter()
                    .map(|u| control::UserStatus {
                        address: u.address.to_string(),
                        tx_bytes: u.tx_bytes,
                        rx_bytes: u.rx_bytes,
                        flows: u.flows,
                    })
                    .collect(),
                classes,
                ..control::SessionStatus::figures(&stats)
            }],
            drops,
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A link role (as the session uses it) as `braid status` prints it.
pub fn wire_role_name(r: LinkRole) -> &'static str {
    match r {
        LinkRole::Primary => "primary",
        LinkRole::Secondary => "secondary",
        LinkRole::Backup => "backup",
        LinkRole::Never => "never",
    }
}

/// A link state as `braid status` prints it.
pub fn state_name(s: LinkState) -> &'static str {
    match s {
        LinkState::Up => "up",
        LinkState::Degraded => "degraded",
        LinkState::Down => "down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(role: model::LinkRole) -> model::Link {
        model::Link {
            name: "lte".into(),
            line: 1,
            device: None,
            transport: Transport::Udp,
            role,
            weight: 2,
            upload: Some(5_000_000),
            download: None,
            quota: None,
        }
    }

    fn ms(n: u64) -> Instant {
        Instant(n * 1000)
    }

    #[test]
    fn steering_goes_in_once_established_and_out_after_3_s_of_silence() {
        let mut f = FailOpen::new(ms(0));
        // Not established yet: nothing, whatever the links say.
        assert_eq!(
            f.review(ms(100), false, false, true, None),
            SteerAction::Keep
        );
        // Established (the handshake answer is a datagram from the core).
        let first = SteerAction::Install {
            after_fail_open: false,
        };
        assert_eq!(f.review(ms(200), true, false, false, Some(ms(200))), first);
        f.installed();
        assert_eq!(
            f.review(ms(700), true, true, true, Some(ms(650))),
            SteerAction::Keep
        );
        // The core dies at 1 s: heard last at 1 s, a link Down from 1.5 s.
        assert_eq!(
            f.review(ms(1500), true, true, true, Some(ms(1000))),
            SteerAction::Keep
        );
        for t in (2000..4500).step_by(500) {
            assert_eq!(
                f.review(ms(t), true, true, false, Some(ms(1000))),
                SteerAction::Keep,
                "at {t} ms"
            );
        }
        // 3 s after the last link was up: withdrawn (not later than before the core's
        // datagrams counted).
        assert_eq!(
            f.review(ms(4500), true, true, false, Some(ms(1000))),
            SteerAction::Withdraw
        );
        // Still dead: stays out.
        assert_eq!(
            f.review(ms(9000), true, false, false, Some(ms(1000))),
            SteerAction::Keep
        );
    }

    #[test]
    fn the_first_datagram_from_the_core_steers_again_before_any_link_is_up() {
        let mut f = FailOpen::new(ms(0));
        assert!(matches!(
            f.review(ms(0), true, false, true, Some(ms(0))),
            SteerAction::Install { .. }
        ));
        f.installed();
        // Every link black-holed from 10 s: Down from 10.3 s, withdrawn 3 s later.
        assert_eq!(
            f.review(ms(10_300), true, true, true, Some(ms(10_000))),
            SteerAction::Keep
        );
        assert_eq!(
            f.review(ms(13_000), true, true, false, Some(ms(10_000))),
            SteerAction::Keep
        );
        assert_eq!(
            f.review(ms(13_500), true, true, false, Some(ms(10_000))),
            SteerAction::Withdraw
        );
        assert_eq!(
            f.review(ms(14_000), true, false, false, Some(ms(10_000))),
            SteerAction::Keep
        );
        // 15 s: a probe reply opens; every link is still Down.
        let again = SteerAction::Install {
            after_fail_open: true,
        };
        assert_eq!(
            f.review(ms(15_010), true, false, false, Some(ms(15_000))),
            again
        );
        // Until it is in place, the answer stays (an install that failed is tried again).
        assert_eq!(
            f.review(ms(15_500), true, false, false, Some(ms(15_000))),
            again
        );
        f.installed();
        // The links take a while to be declared Up: the steering stays meanwhile.
        assert_eq!(
            f.review(ms(16_000), true, true, false, Some(ms(15_900))),
            SteerAction::Keep
        );
        assert_eq!(
            f.review(ms(16_500), true, true, true, Some(ms(16_450))),
            SteerAction::Keep
        );
        // A later fail-open is reported as one again; a later install as a first one after
        // `installed`.
        assert_eq!(
            f.review(ms(20_000), true, true, false, Some(ms(16_500))),
            SteerAction::Withdraw
        );
        assert_eq!(
            f.review(ms(20_100), true, false, true, Some(ms(16_500))),
            again
        );
    }

    #[test]
    fn a_closed_session_never_steers() {
        let mut f = FailOpen::new(ms(0));
        assert!(matches!(
            f.review(ms(0), true, false, true, Some(ms(0))),
            SteerAction::Install { .. }
        ));
        f.installed();
        // The core closed the session: out at once, though the links are fine.
        assert_eq!(
            f.review(ms(1000), false, true, true, Some(ms(1000))),
            SteerAction::Withdraw
        );
        assert_eq!(
            f.review(ms(1500), false, false, true, Some(ms(1500))),
            SteerAction::Keep
        );
    }

    #[test]
    fn a_quota_demotes_but_never_promotes() {
        use model::LinkRole as R;
        let p = link(R::Primary);
        assert_eq!(demoted_config(&p, None).role, LinkRole::Primary);
        let c = demoted_config(&p, Some(QuotaAction::Backup));
        assert_eq!(
            (c.role, c.weight, c.rate_cap_bps),
            (LinkRole::Backup, 2, Some(5_000_000)),
            "only the role changes"
        );
        assert_eq!(
            demoted_config(&p, Some(QuotaAction::Never)).role,
            LinkRole::Never
        );
        assert_eq!(
            demoted_config(&link(R::Secondary), Some(QuotaAction::Backup)).role,
            LinkRole::Backup
        );
        assert_eq!(
            demoted_config(&link(R::Never), Some(QuotaAction::Backup)).role,
            LinkRole::Never,
            "a 'never' link stays unused"
        );
    }
}
