//! `braid edge`: the router side.
//!
//! Start-up order is chosen so that a failure leaves the router as it was:
//! 1. read and check the config (every error names file:line): only a config error (or a
//!    host that cannot give braid its namespace) stops the edge at start;
//! 2. remove what a crashed earlier instance left (inert policy rules), create the space (a
//!    namespace only this process holds) and the hub into it, and open the capture;
//! 3. resolve `core_host` and open each link's socket on its device as soon as both are known,
//!    and handshake with the core over every open link;
//! 4. only once the session is up, install the policy rules that steer the LAN into the hub.
//!
//! A router boots before its modems: at first the name may not resolve and the devices may not
//! be there. The edge waits and says for what (`braid status`, the log, once and then on each
//! change): it asks the resolver off the event loop ([`crate::resolve`]: with backoff, at once
//! when a link comes up, every 5 minutes while running; every address the name has is tried in
//! turn while the one in use does not answer), and a link opens as soon as its device is up
//! with an address (the interface watch's events, and a look every [`WAITS_EVERY`]). A link's
//! device is `option device`, else the one netifd reported ([`crate::devices`]); the link
//! follows it when it changes (a new name or index, a new address) and when the core's
//! address changes, without touching the session or the other links.
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

pub(crate) mod neigh;
pub(crate) mod quota;
pub(crate) mod steer;
pub(crate) mod translate;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use tokio::sync::mpsc;

use crate::classify::Classifier;
use crate::config::model::{self, Config, QuotaAction, Role, Transport};
use crate::control::{self, Reply, Request};
use crate::daemon::status::{user_rows, ClassCounts, LinkRow};
use crate::daemon::translate::{session_classes, state_name, wire_role};
use crate::daemon::{
    self, daemon_main, Clock, ControlServer, DaemonArgs, HubIo, Inbound, LinkIo, RequestError,
    Signal, Signals,
};
use crate::devices::{self, DevicesFile};
use crate::os::hub::{Batch, Capture};
use crate::os::neigh::{read_neighbours, NeighWatch};
use crate::os::space::{cleanup_stale, Hub, HubConfig, Space, SteerConfig, Steering};
use crate::os::uplink::{self, LinkSocketSpec, LinkWatch, RecvBatch, TcpLink};
use crate::proto::link::{LinkConfig, LinkState};
use crate::proto::packet::{self, clamp_mss, mss_for_mtu, Direction};
use crate::proto::seal::{Channel, Keypair};
use crate::proto::session::{Event, PacketMeta, Session, SessionStats};
use crate::proto::LinkId;
use crate::resolve::{self, CoreAddr};
use neigh::Neighbours;
use quota::{Carried, Demotions, QuotaBook, QuotaChange, StampMark};
use steer::{steer_config, FailOpen, SteerAction};
use translate::{demoted_config, plan_links, LinkStep};

/// How long before an unanswered handshake is reported as an error (from the first link open
/// toward the core).
pub(crate) const HANDSHAKE_WARN: Duration = Duration::from_secs(10);
/// How often links that wait are looked at again, besides the interface watch's events.
pub(crate) const WAITS_EVERY: Duration = Duration::from_secs(2);

const HELP: &str = "\
braid edge - run the router side of the bond

USAGE:
    braid edge [--config FILE] [--devices FILE] [--stderr]

Reads `config braid 'main'` (role edge), every `config link` and `config policy` of FILE
(default /etc/config/braid), handshakes with the core over every link, and steers the LAN
sources into the tunnel once the session is up. Runs in the foreground (procd supervises it).
SIGHUP or `braid reload` applies a changed config without dropping flows; SIGTERM stops it
and removes everything it made. If it dies, clients fall back to the plain WAN.

Only an error in the config stops it at start. Until core_host resolves and a link's device
is there, it waits and says for what (`braid status`, the log): it asks the resolver again
every few seconds, at once when a link comes up, and every 5 minutes while running (it uses
every address the name has); a link joins as soon as its device has an address.

A link's device is its `option device`; without one, the device netifd names for the
interface (`pppoe-wan`, `wwan0`, `eth0.2`): from the devices file, or from
`braid link up NAME --device DEV` (the hotplug script, on every ifup), whichever came last.
A link whose device is not known waits; it never guesses one from its section's name.

OPTIONS:
    --config FILE    UCI file to read (default /etc/config/braid)
    --devices FILE   `INTERFACE DEVICE` per line (netifd's L3 device of each link's interface),
                     read at start and on every reload; a missing file or line: not known yet
    --stderr         log to stderr even when not on a terminal (default: syslog)

EXAMPLE:
    braid genkey > /etc/braid/key; braid pubkey < /etc/braid/key   # give it to the core
    uci set braid.main.core_host=core.example.net; uci commit braid
    echo \"wan $(ifstatus wan | jsonfilter -e @.l3_device)\" > /var/run/braid.devices
    braid edge --config /etc/config/braid --devices /var/run/braid.devices --stderr
";

/// `braid edge`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    daemon_main("edge", HELP, Role::Edge, args, run)
}

/// One configured link.
struct EdgeLink {
    id: LinkId,
    cfg: model::Link,
    /// The device netifd reported last (`braid link up NAME --device DEV`, the devices file),
    /// and as of when; `option device` wins over it ([`devices`]).
    reported: Option<String>,
    reported_at: Option<std::time::SystemTime>,
    /// The open socket, and where it is open.
    io: Option<LinkIo>,
    opened: Option<Opened>,
    /// Not taken out by the operator (`braid link down`).
    admin_up: bool,
    /// Why it is not open while the operator wants it (`braid status`; logged when it changes).
    waiting: Option<String>,
    /// What the session was told last: the link can carry (`Session::set_link_admin`).
    in_session: bool,
}

impl EdgeLink {
    fn new(id: LinkId, cfg: &model::Link) -> EdgeLink {
        EdgeLink {
            id,
            cfg: cfg.clone(),
            reported: None,
            reported_at: None,
            io: None,
            opened: None,
            admin_up: true,
            waiting: None,
            in_session: true,
        }
    }

    /// Its UDP socket, while open (the event loop reads it).
    fn udp(&self) -> Option<&daemon::LinkSocket> {
        self.io.as_ref().and_then(LinkIo::udp)
    }

    /// The device it uses: `option device`, else the one netifd reported.
    fn device(&self) -> Option<&str> {
        devices::effective(self.cfg.device.as_deref(), self.reported.as_deref())
    }
}

/// Where a link's socket is open: a change of any of these reopens it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opened {
    device: String,
    /// A device made again under the same name (`pppoe-wan` after a reconnect) has a new one.
    index: u32,
    local: std::net::IpAddr,
    core: SocketAddr,
}

struct Edge {
    cfg: Config,
    clock: Clock,
    /// The core's address(es), from `core_host`.
    core: CoreAddr,
    /// Where the resolver's answers come back to the event loop.
    answers: mpsc::Sender<resolve::Answer>,
    /// `--devices FILE`.
    devices: Option<DevicesFile>,
    /// When a link was first open toward the core (the handshake warning counts from there).
    trying_since: Option<std::time::Instant>,
    /// When waiting links were last looked at (a device event may have been missed).
    waits_checked: std::time::Instant,
    session: Session,
    links: Vec<EdgeLink>,
    classifier: Classifier,
    seed: u64,
    mss: u16,
    inbound: crate::ingress::Sender<Inbound>,
    /// The TCP links' send queues (`Bounds::tcp_send_bytes`).
    tcp_send: crate::ingress::Pool,
    hub: Hub,
    steer: SteerConfig,
    steering: Option<Steering>,
    fail_open: FailOpen,
    established_at: Option<std::time::Instant>,
    started: std::time::Instant,
    warned_handshake: bool,
    drops: crate::proto::fasthash::FastMap<&'static str, u64>,
    /// Client packets classified into each class (by `ClassId`, carried by name across reloads).
    class_packets: ClassCounts,
    users: crate::daemon::users::UserTable,
    users_rolled: std::time::Instant,
    /// Measured rates and time in state for `braid status`: links by id, the session as `None`.
    meter: control::Meter<Option<LinkId>>,
    quota: QuotaBook,
    /// The handshake clock's mark, kept in the state file with the quota counters.
    mark: StampMark,
    /// Links demoted by their quota.
    demoted: Demotions,
    /// LAN addresses by client MAC (from the neighbour table) for `src_mac` policies, and
    /// when to read the table.
    neigh: Neighbours,
    /// The netlink socket the neighbour table is read with (opened on first use).
    neigh_nl: Option<crate::os::netlink::Netlink>,
    /// Writes to the hub, merging runs of a TCP flow.
    hub_out: daemon::HubWriter,
    /// Datagrams to the core, sent per link at the end of a turn.
    outbox: daemon::Outbox<LinkId>,
    // Space last: dropped after the hub and capture that live in it.
    _space: Space,
}

/// Why a link's socket could not be opened (the text follows "cannot open a socket on device").
#[derive(Debug)]
enum OpenError {
    /// The host refused the socket (made, bound to the device, connected).
    Socket(crate::os::Error),
    /// tokio could not take the socket.
    Register(std::io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Socket(e) => write!(f, "{e}"),
            OpenError::Register(e) => write!(f, "{e}"),
        }
    }
}

/// What a link waits for before its socket can open ([`Edge::want`]); the text is the link's
/// `waiting` in `braid status` and the log.
#[derive(Debug)]
enum Waiting {
    /// `core_host` is not resolved yet.
    CoreAddress {
        /// `core_host`.
        host: String,
    },
    /// netifd has not reported the interface's device.
    Device {
        /// The link (the netifd interface).
        interface: String,
    },
    /// The device could not be looked up.
    Lookup {
        /// The device.
        device: String,
        /// Why.
        err: crate::os::Error,
    },
    /// The device does not exist (yet).
    Appear {
        /// The device.
        device: String,
        /// Where its name comes from: `option device` at FILE:LINE, or None for netifd.
        option_at: Option<String>,
    },
    /// The device is down.
    Up {
        /// The device.
        device: String,
    },
    /// The device has no address of the core's family.
    Address {
        /// The device.
        device: String,
        /// The core's address is IPv4 (else IPv6).
        v4: bool,
    },
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::CoreAddress { host } => {
                write!(f, "waiting for the address of core_host '{host}'")
            }
            Waiting::Device { interface } => write!(
                f,
                "waiting for netifd to report the device of interface '{interface}'"
            ),
            Waiting::Lookup { device, err } => {
                write!(f, "cannot look up device '{device}': {err}")
            }
            Waiting::Appear { device, option_at } => match option_at {
                Some(at) => write!(
                    f,
                    "waiting for device '{device}' to appear (option device, {at})"
                ),
                None => write!(
                    f,
                    "waiting for device '{device}' to appear (as netifd reported it)"
                ),
            },
            Waiting::Up { device } => write!(f, "waiting for device '{device}' to come up"),
            Waiting::Address { device, v4 } => write!(
                f,
                "waiting for an {} address on device '{device}'",
                if *v4 { "IPv4" } else { "IPv6" }
            ),
        }
    }
}

fn open_link(
    id: LinkId,
    at: &Opened,
    l: &model::Link,
    inbound: &crate::ingress::Sender<Inbound>,
    tcp_send: &crate::ingress::Pool,
) -> Result<LinkIo, OpenError> {
    let spec = LinkSocketSpec {
        device: at.device.clone(),
        local: Some(at.local),
        remote: at.core,
    };
    match l.transport {
        Transport::Udp => {
            let s = uplink::udp_socket(&spec).map_err(OpenError::Socket)?;
            daemon::udp_link(s).map_err(OpenError::Register)
        }
        Transport::Tcp => Ok(daemon::tcp_link(
            id,
            TcpLink::new(spec),
            at.core,
            inbound.clone(),
            tcp_send,
        )),
    }
}

fn hub_config(cfg: &Config) -> HubConfig {
    let mut h = HubConfig::new(&cfg.main.hub);
    h.mtu = u32::from(cfg.main.mtu);
    h
}

/// Datagram buffer size for a WAN MTU of 1500: the outer IPv4 + UDP headers leave this much.
const DATAGRAM: usize = 1500 - 28;

async fn run(args: DaemonArgs, cfg: Config) -> Result<(), daemon::Error> {
    let clock = Clock::new();
    let private = cfg
        .private_key()
        .map_err(|e| daemon::Error::Config(e.to_string()))?;
    let not_set = |what: &str| daemon::Error::Config(format!("{what} is not set"));
    let core_key = cfg
        .main
        .core_public_key
        .ok_or_else(|| not_set("core_public_key"))?;
    let host = cfg
        .main
        .core_host
        .clone()
        .ok_or_else(|| not_set("core_host"))?;
    if cfg.links.is_empty() {
        return Err(daemon::Error::Config(format!(
            "{}: no `config link` section: nothing to bond",
            cfg.file
        )));
    }
    let bounds = cfg.main.memory.edge(usize::from(cfg.main.mtu));
    log::info!(
        "{}",
        crate::memory::describe(
            "edge",
            cfg.main.memory.bytes,
            &bounds,
            usize::from(cfg.main.mtu)
        )
    );
    // What the TCP links' tasks read (the event loop reads the UDP links' sockets itself).
    let (in_tx, mut in_rx) = crate::ingress::channel::<Inbound>(bounds.ingress_bytes);
    let (ans_tx, mut ans_rx) = mpsc::channel::<resolve::Answer>(8);

    // 1. The links: their sockets open once the core's address and their devices are known
    //    (nothing waits here: a router boots before its modems).
    let start_steps = plan_links(&[], &HashMap::new(), &cfg.links)
        .map_err(|e| daemon::Error::Config(e.to_string()))?;
    let mut links = Vec::new();
    for step in &start_steps {
        if let LinkStep::Add { id, link, .. } = step {
            links.push(EdgeLink::new(*id, link));
        }
    }

    // 2. The control socket first: it refuses to start when another edge answers on it, so a
    //    second instance cannot clean away the first one's rules.
    let (_ctl, mut ctl_rx) = ControlServer::open(&cfg.main.control_socket)?;
    // Space, hub, capture.
    let hubc = hub_config(&cfg);
    let core = CoreAddr::new(&host, cfg.main.core_port, clock.now());
    let steer = steer_config(&cfg, core.all());
    match cleanup_stale(&hubc, &steer) {
        Ok(c) => log::debug!("stale state cleaned: {c:?}"),
        Err(e) => log::warn!("cleaning a previous run's state: {e}"),
    }
    // Flows a crashed instance steered have conntrack entries without NAT: until a session
    // steers them again they must get fresh (masqueraded) ones to reach the plain WAN.
    flush_conntrack(&steer, "flows of an earlier run");
    let HubIo {
        capture,
        hub,
        space,
    } = HubIo::open(hubc, bounds.capture_bytes)?;

    // 3. The session.
    let keys = Keypair::from_private(private.0);
    let now = clock.now();
    let mut session = Session::new(
        Channel::initiator(&keys, core_key.0, now),
        crate::memory::session_config(&bounds.session, usize::from(cfg.main.mtu)),
        now,
    );
    let names: Vec<(String, LinkId)> = links.iter().map(|l| (l.cfg.name.clone(), l.id)).collect();
    session.set_classes(&session_classes(&cfg, |n| {
        names.iter().find(|(x, _)| x == n).map(|x| x.1)
    }));
    for step in &start_steps {
        session_step(&mut session, step, now);
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(daemon::Error::Random)?;
    // The state file: quota counters and the handshake clock's mark.
    let state = std::fs::read_to_string(&cfg.main.state_file).unwrap_or_default();
    let mut edge = Edge {
        classifier: Classifier::from_config(&cfg),
        mss: mss_for_mtu(cfg.main.mtu, 4),
        cfg,
        clock,
        core,
        answers: ans_tx,
        devices: args.devices.as_deref().map(DevicesFile::new),
        trying_since: None,
        waits_checked: std::time::Instant::now(),
        session,
        links,
        seed: u64::from_le_bytes(seed),
        inbound: in_tx,
        tcp_send: crate::ingress::Pool::new(bounds.tcp_send_bytes, bounds.tcp_send_per_link),
        hub,
        steer,
        steering: None,
        fail_open: FailOpen::new(now),
        established_at: None,
        started: std::time::Instant::now(),
        warned_handshake: false,
        drops: crate::proto::fasthash::FastMap::default(),
        class_packets: ClassCounts::default(),
        users: crate::memory::user_table(&bounds.session),
        users_rolled: std::time::Instant::now(),
        meter: control::Meter::new(),
        quota: QuotaBook::from_text(&state, unix_now()),
        mark: StampMark::from_text(&state),
        demoted: Demotions::default(),
        neigh: Neighbours::default(),
        neigh_nl: None,
        hub_out: daemon::HubWriter::default(),
        outbox: daemon::Outbox::new(DATAGRAM),
        _space: space,
    };
    edge.neigh
        .configure(edge.classifier.policy_macs(), edge.cfg.main.lan.clone());
    edge.refresh_macs(true);
    // Handshake times go on from the mark of the last run, whatever the clock says now.
    let mark = edge.mark.saved;
    edge.session.channel_mut().raise_stamp_floor(mark);
    edge.keep_stamp_mark();

    // Counters read back from the state file demote a link past its quota before it carries.
    edge.count_quota();
    // The links' devices netifd reported, the core's address: each link opens once both are
    // known (and says what it waits for until then).
    edge.read_devices();
    edge.ask_resolver();
    edge.sync_links();

    let mut watch = match LinkWatch::open() {
        // SAFETY: the LinkWatch owns its netlink fd for as long as it lives.
        Ok(w) => unsafe { AsyncFd::register_with_interest(w, tokio::io::Interest::READABLE) }.ok(),
        Err(e) => {
            log::warn!("not watching interfaces: {e}");
            None
        }
    };
    // Neighbour changes, merged as they come (src_mac policies; the table is also read
    // periodically, so a missing subscription only slows them down).
    let mut neigh = match NeighWatch::open() {
        // SAFETY: the NeighWatch owns its netlink fd for as long as it lives.
        Ok(w) => unsafe { AsyncFd::register_with_interest(w, tokio::io::Interest::READABLE) }.ok(),
        Err(e) => {
            log::warn!("not watching the neighbour table: {e}");
            None
        }
    };
    let mut signals = Signals::new()?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut batch = Batch::default();
    let mut scratch = vec![0u8; 65536];
    let mut link_batch = RecvBatch::default();
    log::info!(
        "edge started: core {}, {} link(s), space '{}', hub mtu {}",
        edge.core.describe(),
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
        let links_ready = std::future::poll_fn(|cx| daemon::poll_sockets(&edge.links[..], cx));
        tokio::select! {
            sig = signals.recv() => match sig {
                Signal::Term | Signal::Interrupt => break,
                Signal::Hangup => {
                    if let Err(e) = edge.reload() {
                        log::error!("reload refused, the running config stays: {e}");
                    }
                }
            },
            Some(call) = ctl_rx.recv() => {
                let reply = edge.control(call.request);
                let _ = call.reply.send(reply);
            }
            r = capture.readable() => {
                let guard = r.map_err(daemon::Error::Capture)?;
                daemon::drain_capture(guard, &mut batch, &mut scratch, &mut edge)?;
            }
            () = links_ready => {
                let now = edge.clock.now();
                let session = &mut edge.session;
                let got = daemon::drain_sockets(&edge.links[..], &mut link_batch, |id, d, _| {
                    let _ = session.handle_datagram(now, Some(id), d);
                });
                if got > 0 {
                    edge.sign_of_life();
                }
            }
            Some(first) = in_rx.recv() => {
                let now = edge.clock.now();
                daemon::burst(first, &mut in_rx, |(id, mut d, _)| {
                    let _ = edge.session.handle_datagram(now, Some(id), &mut d);
                });
                edge.sign_of_life();
            }
            Some(answer) = ans_rx.recv() => edge.resolved(answer),
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
    log::info!(
        "edge stopping: removing steering, hub and space ({} packets to clients went out merged \
         in TCP aggregates)",
        edge.hub_out.merged()
    );
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

/// Tells the session what a link step changes (the link's socket is the event loop's).
fn session_step(session: &mut Session, step: &LinkStep, now: crate::proto::Instant) {
    match step {
        LinkStep::Remove { id } => session.remove_link(*id, now),
        LinkStep::Update { id, params, .. } => {
            session.add_link(*id, params.config, now);
            session.set_peer_rate_cap(*id, params.peer_rate_cap);
        }
        LinkStep::Add { id, link, params } => {
            session.add_link(*id, params.config, now);
            session.set_link_name(*id, &link.name);
            session.set_peer_rate_cap(*id, params.peer_rate_cap);
        }
    }
}

/// The edge's datagrams find their link by its id (after a reload removed a link, ids no
/// longer match positions); a TCP link's go through its task.
impl daemon::Sockets for [EdgeLink] {
    type Key = LinkId;
    const REFUSED: &'static str = "link socket busy or closed";

    fn send(&self, id: LinkId, msgs: &[daemon::Outgoing<'_>]) -> usize {
        self.iter()
            .find(|l| l.id == id)
            .and_then(|l| l.io.as_ref())
            .map_or(0, |io| io.tx.send_many(msgs))
    }

    fn udp(&self) -> impl Iterator<Item = (LinkId, &daemon::LinkSocket)> {
        self.iter().filter_map(|l| Some((l.id, l.udp()?)))
    }
}

impl daemon::HubSink for Edge {
    fn packet(&mut self, p: &mut [u8]) {
        self.upstream(p);
    }

    fn dropped(&mut self, why: &'static str) {
        *self.drops.entry(why).or_default() += 1;
    }
}

impl Edge {
    /// Moves everything the session wants done: datagrams out, packets to clients, events.
    fn pump(&mut self, capture: &Capture) {
        let now = self.clock.now();
        for _ in 0..4096 {
            let Some(t) = self.session.poll_transmit(now, self.outbox.slot()) else {
                break;
            };
            if self.outbox.push(t.link, None, t.len) {
                self.send_out();
            }
        }
        self.send_out();
        while let Some(mut d) = self.session.poll_deliver(now) {
            if let Ok(info) = packet::parse(&d.data) {
                self.users.down(info.dst, d.data.len());
            }
            clamp_mss(&mut d.data, self.mss);
            self.hub_out.write(capture, &d.data);
            self.session.recycle(d.data);
        }
        let failed = self.hub_out.flush(capture);
        if failed > 0 {
            *self.drops.entry("hub write failed").or_default() += failed;
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                Event::Established if self.established_at.is_some() => {
                    // Renewed: the core answered our handshake (after a second without a word
                    // from it) with a new session.
                    log::warn!(
                        "the core {} had lost this edge's session (restarted?): new session \
                         established, flows go on",
                        self.core.describe()
                    );
                    self.established_at = Some(std::time::Instant::now());
                    self.review_steering(false);
                }
                Event::Established => {
                    log::info!("session with core {} established", self.core.describe());
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
                    // The session handshakes again by itself (a new session when answered).
                    log::warn!("the core closed the session: handshaking again");
                    self.review_steering(false);
                }
            }
        }
    }

    /// Sends what the outbox holds, each link's datagrams with one system call.
    fn send_out(&mut self) {
        daemon::send_out(&mut self.outbox, &self.links[..], &mut self.drops);
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

    /// One packet from the hub (offloads finished): a client's packet going up.
    fn upstream(&mut self, pkt: &mut [u8]) {
        let info = match packet::parse(pkt) {
            Ok(i) => i,
            Err(_) => {
                *self.drops.entry("malformed client packet").or_default() += 1;
                return;
            }
        };
        let len = info.total_len.min(pkt.len());
        let pkt = &mut pkt[..len];
        clamp_mss(pkt, self.mss);
        self.neigh.packet(info.src);
        // The frame's source MAC is the router's (the hub's host end), not the client's:
        // src_mac policies match by the addresses refresh_macs resolved.
        let verdict = self.classifier.classify(&info, Direction::Up, None);
        self.class_packets.count(verdict.class);
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
        let carried: Vec<Carried<'_>> = self
            .links
            .iter()
            .map(|l| Carried {
                id: l.id,
                name: &l.cfg.name,
                quota: l.cfg.quota.as_ref(),
                total: stats
                    .links
                    .iter()
                    .find(|s| s.id == l.id)
                    .map(|s| s.counters.bytes_sent + s.counters.bytes_received),
            })
            .collect();
        let changes = self.demoted.count(&mut self.quota, &carried, now);
        for change in changes {
            let id = match change {
                QuotaChange::Demoted { id, action } => {
                    let name = self.link_name(id);
                    log::warn!(
                        "link '{name}' used its quota ({} bytes): now {}",
                        self.quota.used(name),
                        if action == QuotaAction::Never {
                            "not used"
                        } else {
                            "backup only"
                        }
                    );
                    id
                }
                QuotaChange::Restored { id } => {
                    log::info!(
                        "link '{}': within its quota again, back to its role",
                        self.link_name(id)
                    );
                    id
                }
                QuotaChange::Unlimited { id } => id,
            };
            if let Some(l) = self.links.iter().find(|l| l.id == id) {
                let cfg = self.session_link_config(l);
                self.session.add_link(id, cfg, self.clock.now());
            }
        }
        if self.quota.should_save(now) {
            self.save_quota();
        }
    }

    /// Link `id`'s name ("?" for none).
    fn link_name(&self, id: LinkId) -> &str {
        self.links
            .iter()
            .find(|l| l.id == id)
            .map_or("?", |l| l.cfg.name.as_str())
    }

    /// What the session should use for link `l`: its config, demoted if past its quota.
    fn session_link_config(&self, l: &EdgeLink) -> LinkConfig {
        demoted_config(&l.cfg, self.demoted.get(l.id))
    }

    /// Writes the state file: quota counters and the handshake clock's mark.
    fn save_quota(&mut self) {
        let path = std::path::Path::new(&self.cfg.main.state_file);
        let text = self.quota.to_text() + &self.mark.to_text();
        match daemon::write_state(path, &text) {
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

    /// Reads the neighbour table when [`Neighbours`] says it is time (or at once when
    /// `force`d: start, reload, lost notifications) and gives the classifier the current
    /// addresses of the MACs its policies name.
    fn refresh_macs(&mut self, force: bool) {
        let now = self.started.elapsed();
        if !self.neigh.poll_read(now, force) {
            return;
        }
        if self.neigh_nl.is_none() {
            match crate::os::netlink::Netlink::open() {
                Ok(nl) => self.neigh_nl = Some(nl),
                Err(e) => {
                    log::warn!("src_mac policies: cannot open netlink: {e}");
                    self.neigh.read_failed();
                    return;
                }
            }
        }
        let dump = match self.neigh_nl.as_mut().map(read_neighbours) {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                log::warn!("src_mac policies: cannot read the neighbour table: {e}");
                self.neigh_nl = None;
                self.neigh.read_failed();
                return;
            }
            None => return,
        };
        if let Some(table) = self.neigh.dumped(now, &dump, force) {
            log::debug!(
                "src_mac policies: {} of {} MAC(s) resolved: {:?}",
                table.len(),
                self.neigh.wanted(),
                table
            );
            self.classifier.set_mac_addresses(&table);
        }
    }

    /// Neighbour entries the kernel announced: merged at once when a `src_mac` policy exists.
    fn neigh_events(&mut self, seen: &[(std::net::IpAddr, model::Mac)]) {
        if let Some(table) = self.neigh.announced(self.started.elapsed(), seen) {
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
        self.ask_resolver();
        if self.links.iter().any(|l| l.io.is_some()) {
            let now = self.clock.now();
            let o = self.core.check_silence(now, self.session.last_heard());
            self.core_outcome(o);
        }
        if self.waits_checked.elapsed() >= WAITS_EVERY {
            // A device event may have been missed (or the interface watch is not running).
            self.waits_checked = std::time::Instant::now();
            let waiting: Vec<usize> = (0..self.links.len())
                .filter(|&i| self.links[i].waiting.is_some())
                .collect();
            for i in waiting {
                self.sync_link(i);
            }
        }
        if !self.session.is_established()
            && !self.warned_handshake
            && self
                .trying_since
                .is_some_and(|t| t.elapsed() >= HANDSHAKE_WARN)
        {
            self.warned_handshake = true;
            log::error!(
                "no answer from core {} on any link after {} s: check core_host, core_port, core_public_key, \
                 that the core lists this edge's public key, that UDP/TCP to it is not blocked, \
                 and that both run the same braid version; still trying",
                self.core.describe(),
                HANDSHAKE_WARN.as_secs()
            );
        }
    }

    /// Starts a lookup of `core_host` if one is due (see [`CoreAddr`]): on a thread of its
    /// own, the answer comes back to the event loop ([`Edge::resolved`]).
    fn ask_resolver(&mut self) {
        if let Some(n) = self.core.start(self.clock.now()) {
            resolve::lookup_in_thread(
                self.core.host(),
                self.cfg.main.core_port,
                n,
                self.answers.clone(),
            );
        }
    }

    /// An answer of the resolver.
    fn resolved(&mut self, answer: resolve::Answer) {
        let o = self.core.answer(self.clock.now(), answer);
        self.core_outcome(o);
    }

    /// Carries out what the core's address asks for: log, steering bypass, links moved.
    fn core_outcome(&mut self, o: resolve::Outcome) {
        match o.log {
            Some((true, m)) => log::warn!("{m}"),
            Some((false, m)) => log::info!("{m}"),
            None => {}
        }
        if o.changed {
            let new = steer_config(&self.cfg, self.core.all());
            self.set_steer(new, "the core's addresses changed");
        }
        if o.moved {
            self.sync_links();
        }
    }

    /// Replaces the steering config: rewrites the rules if they are in place. `why` for the
    /// conntrack flush's log line.
    fn set_steer(&mut self, new: SteerConfig, why: &str) {
        let changed = new.sources != self.steer.sources
            || new.bypass != self.steer.bypass
            || new.tcp_only != self.steer.tcp_only;
        let old = std::mem::replace(&mut self.steer, new);
        if changed && self.steering.is_some() {
            self.steering = None; // drop removes the old rules
            self.install_steering(false);
            // Flows no longer steered take the plain WAN: their entries were made without NAT.
            log_flush(
                why,
                "flows no longer steered",
                crate::os::conntrack::flush_unsteered(&old, &self.steer),
            );
        }
    }

    /// Reads the devices file (`--devices`) and takes each device it names for a link that
    /// has not heard from hotplug since the file was written.
    fn read_devices(&mut self) {
        let Some(r) = self.devices.as_ref().and_then(|f| f.read()) else {
            return;
        };
        for p in r.problems {
            log::warn!("devices file: {p}");
        }
        for (name, dev) in r.entries {
            let Some(l) = self.links.iter_mut().find(|l| l.cfg.name == name) else {
                continue;
            };
            if !devices::file_is_newer(r.written, l.reported_at) {
                continue;
            }
            if l.reported.as_deref() != Some(dev.as_str()) {
                log::info!("link '{name}': netifd's device is '{dev}' (devices file)");
            }
            l.reported = Some(dev);
            l.reported_at = Some(r.written);
        }
    }

    fn sync_links(&mut self) {
        for i in 0..self.links.len() {
            self.sync_link(i);
        }
    }

    /// Where link `i`'s socket should be open, `Err` with what it waits for, `None` when the
    /// operator took it down.
    fn want(&self, i: usize) -> Option<Result<Opened, Waiting>> {
        let l = &self.links[i];
        if !l.admin_up {
            return None;
        }
        let Some(core) = self.core.current() else {
            return Some(Err(Waiting::CoreAddress {
                host: self.core.host().to_string(),
            }));
        };
        let Some(dev) = l.device() else {
            return Some(Err(Waiting::Device {
                interface: l.cfg.name.clone(),
            }));
        };
        let v4 = core.is_ipv4();
        let info = crate::os::netlink::Netlink::open()
            .and_then(|mut nl| uplink::device_info(&mut nl, dev, v4));
        let device = dev.to_string();
        Some(match info {
            Err(err) => Err(Waiting::Lookup { device, err }),
            Ok(None) => Err(Waiting::Appear {
                device,
                option_at: l
                    .cfg
                    .device
                    .as_ref()
                    .map(|_| format!("{}:{}", self.cfg.file, l.cfg.line)),
            }),
            Ok(Some(d)) if !d.usable => Err(Waiting::Up { device }),
            Ok(Some(d)) => match d.address {
                None => Err(Waiting::Address { device, v4 }),
                Some(local) => Ok(Opened {
                    device,
                    index: d.index,
                    local,
                    core,
                }),
            },
        })
    }

    /// Opens, reopens or closes link `i`'s socket so that it is open on its device toward the
    /// core's address while the operator wants it; says once why it waits. A socket moved to
    /// a new device or address leaves the session alone (the core follows the link's new
    /// source; flows on other links are not touched).
    fn sync_link(&mut self, i: usize) {
        let want = self.want(i);
        let none_open = self.links.iter().all(|l| l.io.is_none());
        let l = &mut self.links[i];
        let why = match want {
            None => {
                l.io = None;
                l.opened = None;
                l.waiting = None;
                None
            }
            Some(Ok(at)) if l.io.is_some() && l.opened.as_ref() == Some(&at) => None,
            Some(Ok(at)) => match open_link(l.id, &at, &l.cfg, &self.inbound, &self.tcp_send) {
                Ok(io) => {
                    log::info!(
                        "link '{}' {} device '{}' ({}) toward the core at {}",
                        l.cfg.name,
                        if l.io.is_some() {
                            "moved to"
                        } else {
                            "open on"
                        },
                        at.device,
                        at.local,
                        at.core
                    );
                    l.io = Some(io);
                    l.opened = Some(at);
                    l.waiting = None;
                    None
                }
                Err(e) => Some(format!(
                    "cannot open a socket on device '{}': {e}",
                    at.device
                )),
            },
            Some(Err(why)) => Some(why.to_string()),
        };
        if let Some(why) = why {
            if l.io.is_some() {
                log::warn!("link '{}' closed: {why}", l.cfg.name);
            } else if l.waiting.as_deref() != Some(why.as_str()) {
                log::warn!("link '{}': {why}", l.cfg.name);
            }
            l.io = None;
            l.opened = None;
            l.waiting = Some(why);
        }
        let open = l.io.is_some();
        if open != l.in_session {
            l.in_session = open;
            self.session.set_link_admin(l.id, open, self.clock.now());
        }
        if open && none_open {
            // The first link toward the core: the handshake starts now, and a silent address
            // is given up only after it had its chance.
            self.core.trying_from(self.clock.now());
            self.trying_since
                .get_or_insert_with(std::time::Instant::now);
        }
    }

    fn link_index(&self, name: &str) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.cfg.name == name || l.device() == Some(name))
    }

    /// `braid link up|down NAME [--device DEV]`: the operator's (or hotplug's) word. A note
    /// for the caller when the link waits or the config's device wins.
    fn set_link(
        &mut self,
        i: usize,
        up: bool,
        device: Option<String>,
    ) -> Result<Option<String>, RequestError> {
        let mut note = None;
        let l = &mut self.links[i];
        if let Some(d) = device {
            if !up {
                return Err(RequestError::DeviceWithDown);
            }
            if !model::valid_ifname(&d) {
                return Err(RequestError::NotADevice(d));
            }
            if let Some(c) = l.cfg.device.as_deref().filter(|c| *c != d) {
                note = Some(format!(
                    "link '{}' keeps device '{c}': option device in {}:{} wins over '{d}'",
                    l.cfg.name, self.cfg.file, l.cfg.line
                ));
            }
            if l.reported.as_deref() != Some(d.as_str()) {
                log::info!("link '{}': netifd's device is '{d}'", l.cfg.name);
            }
            l.reported = Some(d);
            l.reported_at = Some(std::time::SystemTime::now());
        }
        if l.admin_up != up {
            l.admin_up = up;
            log::info!(
                "link '{}' taken {}",
                l.cfg.name,
                if up { "up" } else { "down" }
            );
        }
        self.sync_link(i);
        let l = &self.links[i];
        if !up {
            self.meter
                .note_state(Some(l.id), std::time::Instant::now(), "admin-down");
        }
        if let Some(w) = &l.waiting {
            note = Some(format!("link '{}' is up and {w}", l.cfg.name));
        }
        if up && l.io.is_some() {
            self.core.link_event(self.clock.now());
            self.ask_resolver();
        }
        Ok(note)
    }

    /// Devices that changed (the interface watch): the links on them follow, and a device
    /// coming up may bring DNS with it.
    fn device_events(&mut self, events: Vec<uplink::DeviceEvent>) {
        use uplink::DeviceEvent::*;
        let mut touched = vec![false; self.links.len()];
        let mut came_up = false;
        for e in events {
            let device = match &e {
                Up { device } | AddressAdded { device, .. } => {
                    came_up = true;
                    device
                }
                Down { device } | AddressRemoved { device, .. } => device,
                Resync => {
                    touched.iter_mut().for_each(|t| *t = true);
                    continue;
                }
            };
            for (i, l) in self.links.iter().enumerate() {
                let on = l.opened.as_ref().is_some_and(|o| &o.device == device);
                touched[i] |= on || l.device() == Some(device.as_str());
            }
        }
        for (i, t) in touched.into_iter().enumerate() {
            if t {
                self.sync_link(i);
            }
        }
        if came_up {
            self.core.link_event(self.clock.now());
            self.ask_resolver();
        }
    }

    fn control(&mut self, req: Request) -> Reply {
        let done = match req {
            Request::Status => {
                return Reply {
                    status: Some(self.status()),
                    ..Reply::ok()
                }
            }
            Request::Link { name, up, device } => match self.link_index(&name) {
                Some(i) => self.set_link(i, up, device),
                None => Err(RequestError::NoSuchLink(name)),
            },
            Request::Reload => self.reload().map(|()| None).map_err(RequestError::from),
            Request::Stop => Err(RequestError::StopOnEdge),
        };
        match done {
            Ok(note) => Reply {
                note,
                ..Reply::ok()
            },
            Err(e) => e.into(),
        }
    }

    /// Re-reads the config and applies what changed, without touching the session's flows.
    fn reload(&mut self) -> Result<(), daemon::ReloadError> {
        let new = daemon::reload_config(&self.cfg.file)?;
        let changes = crate::config::diff::diff(&self.cfg, &new);
        if changes.is_empty() {
            log::info!("reload: nothing changed in {}", self.cfg.file);
            // The devices file may have: the links follow it.
            self.read_devices();
            self.sync_links();
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
        let current: Vec<(LinkId, &model::Link)> =
            self.links.iter().map(|l| (l.id, &l.cfg)).collect();
        let steps = plan_links(&current, self.demoted.all(), &new.links)?;
        for step in steps {
            session_step(&mut self.session, &step, now);
            match step {
                LinkStep::Remove { id } => {
                    if let Some(i) = self.links.iter().position(|l| l.id == id) {
                        let l = self.links.remove(i);
                        log::info!("link '{}' removed", l.cfg.name);
                    }
                }
                LinkStep::Update {
                    id, link, reopen, ..
                } => {
                    if let Some(l) = self.links.iter_mut().find(|l| l.id == id) {
                        if reopen {
                            // Another kind of socket: made again below.
                            l.io = None;
                            l.opened = None;
                        }
                        // A link past its quota stays demoted (count_quota re-checks it
                        // against the new quota settings right after this).
                        l.cfg = link;
                    }
                }
                LinkStep::Add { id, link, .. } => {
                    // In id order (kept without a sort: each one costs the router binary
                    // about 4 KB).
                    let at = self.links.iter().position(|l| l.id > id);
                    log::info!("link '{}' added", link.name);
                    self.links
                        .insert(at.unwrap_or(self.links.len()), EdgeLink::new(id, &link));
                }
            }
        }
        // Policies and classes (the counters follow the class names).
        let old = std::mem::replace(&mut self.classifier, Classifier::from_config(&new));
        self.class_packets
            .carry(old.classes(), self.classifier.classes());
        let names: Vec<(String, LinkId)> = self
            .links
            .iter()
            .map(|l| (l.cfg.name.clone(), l.id))
            .collect();
        self.session.set_classes(&session_classes(&new, |n| {
            names.iter().find(|(x, _)| x == n).map(|x| x.1)
        }));
        self.mss = mss_for_mtu(new.main.mtu, 4);
        self.set_steer(steer_config(&new, self.core.all()), "reload");
        log::set_max_level(new.main.log_level.to_filter());
        self.cfg = new;
        // Devices: the config's (`option device`) and netifd's (the devices file) as they are
        // now; each link follows.
        self.read_devices();
        self.sync_links();
        let links = &self.links;
        self.demoted.retain(|id| links.iter().any(|l| l.id == id));
        self.count_quota();
        self.neigh
            .configure(self.classifier.policy_macs(), self.cfg.main.lan.clone());
        self.refresh_macs(true);
        log::info!("reload applied ({} change(s))", changes.len());
        Ok(())
    }

    /// The session's state as `braid status` names it: "waiting" while no link is open
    /// (the core's address or every device not known yet); "handshaking" also after the core
    /// closed the session, until it answers the new handshake.
    fn session_state(&self) -> &'static str {
        if self.session.is_established() && !self.session.is_closed() {
            "established"
        } else if self.links.iter().all(|l| l.io.is_none()) {
            "waiting"
        } else {
            "handshaking"
        }
    }

    /// A link's state as `braid status` names it.
    fn link_state(&self, l: &EdgeLink, stats: &SessionStats) -> &'static str {
        if !l.admin_up {
            return "admin-down";
        }
        if l.waiting.is_some() {
            return "waiting";
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
                .map_or((0, 0), |s| {
                    (s.counters.bytes_sent, s.counters.bytes_received)
                });
            let state = self.link_state(l, &stats);
            self.meter.sample(Some(l.id), now, tx, rx, state);
        }
        let (tx, rx) = self.users.totals();
        let state = self.session_state();
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
                let role = self.session_link_config(l).role;
                let row = LinkRow {
                    name: l.cfg.name.clone(),
                    id: l.id,
                    transport: match l.cfg.transport {
                        Transport::Udp => "udp",
                        Transport::Tcp => "tcp",
                    },
                    state: self.link_state(l, &stats),
                    role,
                };
                control::LinkStatus {
                    device: l.device().map(str::to_string),
                    waiting: l.waiting.clone(),
                    over_quota: role != wire_role(l.cfg.role),
                    quota_bytes: l.cfg.quota.as_ref().map(|q| q.bytes),
                    quota_used_bytes: self.quota.used(&l.cfg.name),
                    ..row.status(
                        s.map_or_else(Default::default, control::LinkStatus::figures),
                        &self.meter,
                        &Some(l.id),
                        now,
                    )
                }
            })
            .collect();
        let classes = self.class_packets.rows(self.classifier.classes());
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
        let state = self.session_state();
        let (tx, rx) = self.users.totals();
        let bonded = self.meter.read(&None, now, tx, rx, state);
        control::Status {
            role: "edge".into(),
            version: crate::cli::VERSION.into(),
            uptime_s: self.clock.uptime_s(),
            sessions: vec![control::SessionStatus {
                peer: self.core.describe(),
                state: state.into(),
                tx_bps: bonded.tx_bps,
                rx_bps: bonded.rx_bps,
                tx_bytes: tx,
                rx_bytes: rx,
                established_s: self.established_at.map_or(0, |t| t.elapsed().as_secs()),
                links,
                users: user_rows(&self.users),
                classes,
                ..control::SessionStatus::figures(&stats)
            }],
            drops,
            refused: None,
            refusals: Vec::new(),
            waiting: self.core.waiting(self.clock.now()),
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

/// The edge config of the fixtures (three links, quotas, policies), for the role's unit tests.
#[cfg(test)]
fn fixture() -> Config {
    crate::config::load_str(
        "edge.conf",
        include_str!("../../tests/fixtures/config/edge.conf"),
    )
    .expect("the fixture is a valid edge config")
}

#[cfg(test)]
mod tests {
    use super::Waiting;

    /// The words `braid status` and the log show (tests/e2e_boot.rs matches two of them).
    #[test]
    fn waiting_text() {
        let dev = || "wwan0".to_string();
        let cases = [
            (
                Waiting::CoreAddress {
                    host: "core.example".into(),
                },
                "waiting for the address of core_host 'core.example'",
            ),
            (
                Waiting::Device {
                    interface: "lte1".into(),
                },
                "waiting for netifd to report the device of interface 'lte1'",
            ),
            (
                Waiting::Lookup {
                    device: dev(),
                    err: crate::os::Error::invalid("netlink", "refused"),
                },
                "cannot look up device 'wwan0': netlink: refused",
            ),
            (
                Waiting::Appear {
                    device: dev(),
                    option_at: Some("/etc/config/braid:12".into()),
                },
                "waiting for device 'wwan0' to appear (option device, /etc/config/braid:12)",
            ),
            (
                Waiting::Appear {
                    device: dev(),
                    option_at: None,
                },
                "waiting for device 'wwan0' to appear (as netifd reported it)",
            ),
            (
                Waiting::Up { device: dev() },
                "waiting for device 'wwan0' to come up",
            ),
            (
                Waiting::Address {
                    device: dev(),
                    v4: true,
                },
                "waiting for an IPv4 address on device 'wwan0'",
            ),
            (
                Waiting::Address {
                    device: dev(),
                    v4: false,
                },
                "waiting for an IPv6 address on device 'wwan0'",
            ),
        ];
        for (w, text) in cases {
            assert_eq!(w.to_string(), text);
        }
    }
}
