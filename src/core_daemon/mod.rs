//! `braid core`: the server side, serving many edges.
//!
//! Datagrams from every edge arrive on one UDP port (and the same TCP port for links that must
//! use TCP). The [`Endpoint`] answers handshakes from the keys in `config peer`, demultiplexes
//! data to sessions and remembers each link's address. Restored packets are checked against
//! the forward policy ([`forward`]: public destinations only, the edge's `allowed_lan`),
//! get a pool address per (edge, client) from the [`SourceMap`] (so two edges with the same LAN
//! subnet stay apart) and are written into the core's hub; the host forwards them and
//! masquerades the pool in braid's own nftables table. Replies to the pool are steered back
//! into the hub, mapped back to their edge and client, and sent down over that edge's links.
//!
//! # Restart and stop
//! SIGTERM (procd's and systemd's stop and restart, an upgrade) is a *restart*: the core
//! keeps its nftables table, its steering rules and a blackhole route for the pool, and
//! writes the pool's secret and every client's address to `state_file`. Until the next core
//! adopts them, packets of open connections are still translated by the kernel and dropped
//! silently at the blackhole (never answered with a reset by the host's own stack), and the
//! next core gives every client the same pool address: open TCP connections go on.
//! `braid stop` (the init script's `stop`) and SIGINT are a *stop for good*: the core removes
//! its table, rules, routes and hub, and restores IP forwarding, leaving nothing behind.
#![forbid(unsafe_code)]

pub(crate) mod accept;
pub(crate) mod forward;

use crate::proto::fasthash::FastMap;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::classify::Classifier;
use crate::config::model::{self, Config, Role};
use crate::control::{self, Reply, Request};
use crate::daemon::status::{core_link_name, user_rows, ClassCounts, LinkRow};
use crate::daemon::translate::{session_classes, state_name};
use crate::daemon::{self, Clock, ControlServer, LinkIo, Refusals};
use crate::daemon::{daemon_main, DaemonArgs, HubIo, RequestError, Signal, Signals};
use crate::os::hub::{Batch, Capture};
use crate::os::nat::{CoreNat, EdgeKey, Forwarding, NatConfig, SourceMap};
use crate::os::space::{adopt_stale, HubConfig, SteerConfig, Steering};
use crate::os::uplink::RecvBatch;
use crate::proto::endpoint::{Endpoint, Peer, SessionId};
use crate::proto::packet::{self, mss_for_mtu, Direction, PacketMut};
use crate::proto::seal::Keypair;
use crate::proto::session::{Event, PacketMeta};
use crate::proto::LinkId;
use accept::{Conn, Conns};
use forward::{Admission, ForwardPolicy};

const HELP: &str = "\
braid core - run the server side: accept edges, forward their traffic to the internet

USAGE:
    braid core [--config FILE] [--stderr]

Reads `config braid 'main'` (role core, private key, listen_port) and one `config peer` per
allowed edge (its public key). Listens on UDP and TCP listen_port (default 51830), forwards
the edges' traffic to public destinations (allow_dest/deny_dest change that) through its own
hub with NAT (its own nftables table `inet <hub>`), and sends replies back over each edge's
links.

STOPPING:
    SIGTERM (procd or systemd stop/restart, an upgrade) is a restart: the nftables table,
    the steering rules and the clients' pool addresses (in state_file) are kept, so the next
    `braid core` adopts them and open connections go on. `braid stop` (the init script's
    `stop`) or SIGINT (Ctrl-C) stops for good: everything is removed.

OPTIONS:
    --config FILE    UCI file to read (default /etc/config/braid)
    --stderr         log to stderr even when not on a terminal (default: syslog)

EXAMPLE:
    braid genkey > /etc/braid/key
    cat >> /etc/config/braid <<'EOT'
    config peer 'train42'
        option public_key 'output of braid pubkey on the edge'
    EOT
    braid core --stderr
";

/// Where a datagram came from: a UDP address, or one accepted TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Addr {
    /// Index of the socket (one per local address) and the edge's address.
    Udp(u8, SocketAddr),
    Tcp(u32),
}

/// One UDP socket per local address (loopback and link-local excepted), so each reply leaves
/// from the address its request came to: a multi-homed core would otherwise answer from the
/// address of the outgoing route, and the edge's connected link sockets would drop the reply.
/// Addresses added after start are not listened on (restart the core).
fn bind_udp(port: u16) -> Result<Vec<Rc<daemon::UdpLink>>, daemon::Error> {
    let mut nl = crate::os::netlink::Netlink::open()?;
    let addrs = nl.addresses(None)?;
    let mut out = Vec::new();
    for a in addrs {
        let ip = a.prefix.addr;
        let link_local = matches!(ip, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80);
        if ip.is_loopback() || link_local || out.len() >= 255 {
            continue;
        }
        let std = std::net::UdpSocket::bind(SocketAddr::new(ip, port))
            .and_then(link_socket)
            .map_err(|e| {
                daemon::Error::Listen(format!("cannot listen on UDP {ip} port {port}: {e}"))
            })?;
        out.push(Rc::new(std));
    }
    if out.is_empty() {
        let std = std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .and_then(link_socket)
            .map_err(|e| daemon::Error::Listen(format!("cannot listen on UDP port {port}: {e}")))?;
        out.push(Rc::new(std));
    }
    Ok(out)
}

/// A bound socket made ready for the event loop: non-blocking, with UDP GRO asked for (the
/// kernel merges an edge's runs of datagrams into one read where it can), sending with GSO.
fn link_socket(s: std::net::UdpSocket) -> std::io::Result<daemon::UdpLink> {
    s.set_nonblocking(true)?;
    crate::os::uplink::enable_gro(&s);
    daemon::UdpLink::new(s)
}

/// `braid core`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    daemon_main("core", HELP, Role::Core, args, run)
}

fn peers(cfg: &Config) -> Vec<Peer> {
    cfg.peers
        .iter()
        .map(|p| Peer {
            name: p.name.clone(),
            public: p.public_key.0,
        })
        .collect()
}

const DATAGRAM: usize = 1500 - 28;

struct Core {
    cfg: Config,
    clock: Clock,
    ep: Endpoint<Addr>,
    udp: Vec<Rc<daemon::UdpLink>>,
    /// Accepted TCP link connections, with the edge's address of each.
    tcp: Conns<LinkIo>,
    map: SourceMap,
    classifier: Classifier,
    /// Downstream packets classified into each class (by `ClassId`), per session; carried by
    /// class name across reloads, as the edge does for upstream.
    class_packets: FastMap<SessionId, ClassCounts>,
    /// When each session was established (for `braid status`).
    established_at: FastMap<SessionId, std::time::Instant>,
    /// Each edge's clients (by their LAN address) and bytes, for `braid status`.
    users: FastMap<SessionId, crate::daemon::users::UserTable>,
    /// Measured rates and time in state: (session, link), the session itself as link `None`.
    meter: control::Meter<(SessionId, Option<LinkId>)>,
    seed: u64,
    mss: u16,
    drops: FastMap<&'static str, u64>,
    /// Packets to servers go to the hub through it: runs of one TCP flow merge into aggregates.
    hub_out: daemon::HubWriter,
    /// Datagrams to edges over UDP, sent per socket at the end of a turn.
    outbox: daemon::Outbox<u8>,
    /// The current session of each connected edge (by its key: pool addresses outlive sessions).
    edges: FastMap<EdgeKey, SessionId>,
    /// The forward policy and each edge's `allowed_lan` over client packets, and what they
    /// refused (since start, and per session).
    admission: Admission<SessionId>,
    /// `braid stop`: remove everything on exit (otherwise keep it for the next core).
    for_good: bool,
    /// The sysctls to restore when the core stops for good (kept across restarts).
    forwarding_restore: Vec<(String, String)>,
    /// What the core refused on purpose, by reason (logged once a minute per reason).
    refusals: Refusals,
    /// The memory budget's bounds (per-edge shares follow the peers on reload).
    bounds: crate::config::budget::Bounds,
}

async fn run(_args: DaemonArgs, cfg: Config) -> Result<(), daemon::Error> {
    let clock = Clock::new();
    let private = cfg
        .private_key()
        .map_err(|e| daemon::Error::Config(e.to_string()))?;
    if cfg.peers.is_empty() {
        log::warn!(
            "{}: no `config peer` section: no edge can connect",
            cfg.file
        );
    }
    let mtu = usize::from(cfg.main.mtu);
    let bounds = cfg
        .main
        .memory
        .core(cfg.peers.len(), mtu)
        .map_err(daemon::Error::Config)?;
    log::info!(
        "{}",
        crate::memory::describe("core", cfg.main.memory.bytes, &bounds, mtu)
    );
    let port = cfg.main.listen_port;
    let bind = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    let udp = bind_udp(port)?;
    let tcp = match TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
            .await
            .map_err(|e| daemon::Error::Listen(format!("cannot listen on TCP port {port}: {e}")))?,
    };

    // The control socket first: a second core on the same socket is refused before it touches
    // the first one's hub, rules or table.
    let (_ctl, mut ctl_rx) = ControlServer::open(&cfg.main.control_socket)?;
    let mut hubc = HubConfig::new(&cfg.main.hub);
    hubc.mtu = u32::from(cfg.main.mtu);
    let natc = nat_config(&cfg);
    let mut steer = SteerConfig::new();
    steer.destinations = natc.pools();
    steer.hold = true;
    // What a previous core kept for its restart: its rules and blackhole (adopted as they are,
    // so packets to the pool never take another route meanwhile), its nftables table (its rules
    // replaced in one transaction), the pool's secret and addresses, and forwarding's old value.
    let state = std::fs::read_to_string(&cfg.main.state_file).unwrap_or_default();
    let mut map = SourceMap::from_text(&natc, &state, 0).unwrap_or_else(|| SourceMap::new(&natc));
    let kept_forwarding = forwarding_before(&state);
    match adopt_stale(&hubc, &steer) {
        Ok(c) if c.links + c.rules > 0 => log::info!("removed a previous run's {c:?}"),
        Ok(_) => {}
        Err(e) => log::warn!("cleaning a previous run's state: {e}"),
    }
    let HubIo {
        capture,
        hub,
        space: _space,
    } = HubIo::open(hubc, bounds.capture_bytes)?;
    let forwarding = Forwarding::enable_after(natc.pool_v6.is_some(), kept_forwarding)?;
    let nat = CoreNat::adopt(&natc).map_err(daemon::Error::Nftables)?;
    let steering = Steering::install(&hub, steer)?;
    if !map.is_empty() {
        log::info!(
            "{} client address(es) kept from the previous run",
            map.len()
        );
    }
    let _ = map.take_dirty();

    let mut ep = Endpoint::new(
        Keypair::from_private(private.0),
        peers(&cfg),
        crate::memory::session_config(&bounds.session, mtu),
    );
    let _ = &mut ep;
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(daemon::Error::Random)?;
    let mut core = Core {
        classifier: Classifier::from_config(&cfg),
        mss: mss_for_mtu(cfg.main.mtu, 4),
        map,
        edges: FastMap::default(),
        admission: Admission::new(forward_policy(&cfg), allowed_lans(&cfg)),
        for_good: false,
        forwarding_restore: forwarding.pending().to_vec(),
        cfg,
        clock,
        ep,
        udp: udp.clone(),
        tcp: Conns::new(accept::Limits::default()),
        seed: u64::from_le_bytes(seed),
        class_packets: FastMap::default(),
        established_at: FastMap::default(),
        users: FastMap::default(),
        meter: control::Meter::new(),
        drops: FastMap::default(),
        hub_out: daemon::HubWriter::default(),
        outbox: daemon::Outbox::new(DATAGRAM),
        refusals: Refusals::default(),
        bounds,
    };
    core.apply_classes();
    core.refresh_local();

    // The UDP sockets (one per local address) are read here, in the loop: no task, no channel.
    let mut udp_batch = RecvBatch::default();
    let (tcp_tx, mut tcp_in) = crate::ingress::channel::<(u32, Vec<u8>)>(bounds.ingress_bytes);
    let tcp_send = crate::ingress::Pool::new(bounds.tcp_send_bytes, bounds.tcp_send_per_link);

    let mut signals = Signals::new()?;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut meter_tick = tokio::time::interval(Duration::from_secs(1));
    let mut batch = Batch::default();
    let mut seg = vec![0u8; 65536];
    log::info!(
        "core started on port {port}: {} peer(s), nat table tied to braid (persistent): {}",
        core.cfg.peers.len(),
        nat.owned
    );

    loop {
        core.pump(capture.get_ref());
        let deadline = core.ep.poll_timeout().map(|t| core.clock.deadline(t));
        let sleep = daemon::sleep_until(deadline);
        let udp_ready = std::future::poll_fn(|cx| daemon::poll_sockets(&udp[..], cx));
        tokio::select! {
            sig = signals.recv() => match sig {
                Signal::Term => break,
                Signal::Interrupt => {
                    core.for_good = true;
                    break;
                }
                Signal::Hangup => {
                    if let Err(e) = core.reload() {
                        log::error!("reload refused, the running config stays: {e}");
                    }
                }
            },
            Some(call) = ctl_rx.recv() => {
                let stop = call.request == Request::Stop;
                let reply = core.control(call.request);
                let _ = call.reply.send(reply);
                if stop {
                    core.for_good = true;
                    // Let the control task write the answer before the runtime ends.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            }
            Ok((stream, from)) = tcp.accept() => {
                core.accept_tcp(stream, from, &tcp_tx, &tcp_send)
            }
            Some((id, mut d)) = tcp_in.recv() => {
                let now = core.clock.now();
                let r = core.ep.handle_datagram(now, Addr::Tcp(id), &mut d);
                core.handled(Addr::Tcp(id), r);
            }
            r = capture.readable() => {
                let guard = r.map_err(daemon::Error::Capture)?;
                daemon::drain_capture(guard, &mut batch, &mut seg, &mut core)?;
            }
            () = udp_ready => {
                let now = core.clock.now();
                daemon::drain_sockets(&udp[..], &mut udp_batch, |i, d, from| {
                    let from = Addr::Udp(i, from);
                    let r = core.ep.handle_datagram(now, from, d);
                    core.handled(from, r);
                });
            }
            _ = sleep => core.ep.handle_timeout(core.clock.now()),
            _ = tick.tick() => core.housekeeping(),
            _ = meter_tick.tick() => {
                core.sample_meter();
                if core.map.take_dirty() {
                    core.save_state();
                }
            }
        }
    }
    log::info!(
        "{} packets to servers went out merged into aggregates",
        core.hub_out.merged()
    );
    if core.for_good {
        log::info!("core stopping for good: removing hub, steering and the nftables table");
        core.save_state();
        drop(steering);
        drop(nat);
        drop(forwarding);
    } else {
        log::info!(
            "core stopping for a restart: the nftables table, steering rules and {} client \
             address(es) are kept for the next start (`braid stop` removes them)",
            core.map.len()
        );
        core.save_state();
        forwarding.keep();
        steering.keep();
        nat.keep();
    }
    Ok(())
}

/// The core's datagrams find their UDP socket by its index (at most 255 sockets, bind_udp).
impl daemon::Sockets for [Rc<daemon::UdpLink>] {
    type Key = u8;
    const REFUSED: &'static str = "socket busy";

    fn send(&self, i: u8, msgs: &[daemon::Outgoing<'_>]) -> usize {
        self.get(usize::from(i)).map_or(0, |s| s.send(msgs))
    }

    fn udp(&self) -> impl Iterator<Item = (u8, &daemon::LinkSocket)> {
        self.iter().enumerate().map(|(i, s)| (i as u8, &s.sock))
    }
}

/// The NAT settings from the configuration.
fn nat_config(cfg: &Config) -> NatConfig {
    let mut natc = NatConfig::new(&cfg.main.hub);
    natc.pool_v4 = crate::os::Prefix::new(cfg.main.pool.addr, cfg.main.pool.prefix);
    // IPv4 only for now: IPv6 inner packets are refused (and counted).
    natc.pool_v6 = None;
    natc.max_clients = usize::from(cfg.main.max_clients);
    natc
}

fn forward_policy(cfg: &Config) -> ForwardPolicy {
    ForwardPolicy {
        pool: vec![cfg.main.pool],
        allow: cfg.main.allow_dest.clone(),
        deny: cfg.main.deny_dest.clone(),
        local: Vec::new(),
    }
}

fn allowed_lans(cfg: &Config) -> HashMap<EdgeKey, Vec<model::Cidr>> {
    cfg.peers
        .iter()
        .map(|p| (p.public_key.0, p.allowed_lan.clone()))
        .collect()
}

/// The sysctl values a core that stopped for a restart had found (`forwarding_before KEY VALUE`).
fn forwarding_before(state: &str) -> Vec<(String, String)> {
    state
        .lines()
        .filter_map(|l| l.strip_prefix("forwarding_before "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

impl daemon::HubSink for Core {
    fn packet(&mut self, p: &mut [u8]) {
        self.downstream(p);
    }

    fn dropped(&mut self, why: &'static str) {
        *self.drops.entry(why).or_default() += 1;
    }
}

impl Core {
    /// Keeps an accepted TCP connection if the limits allow (see [`accept`]), else closes it.
    fn accept_tcp(
        &mut self,
        stream: tokio::net::TcpStream,
        from: SocketAddr,
        inbound: &crate::ingress::Sender<(u32, Vec<u8>)>,
        send: &crate::ingress::Pool,
    ) {
        accept::reset_on_close(&stream);
        if let Err(why) = self.tcp.admit(from.ip(), accept::alive) {
            self.refusals
                .refuse(std::time::Instant::now(), why.reason(), || {
                    format!("TCP connection from {from} closed at once")
                });
            return;
        }
        let id = self.tcp.fresh_id();
        let proven = Rc::new(std::cell::Cell::new(false));
        let io = accept::spawn(
            id,
            stream,
            inbound.clone(),
            send,
            proven.clone(),
            accept::HANDSHAKE_DEADLINE,
        );
        self.tcp.insert(
            id,
            Conn {
                io,
                peer: from,
                proven,
            },
        );
        log::debug!("TCP link from {from} (connection {id})");
    }

    /// What the endpoint made of a datagram: a TCP connection that carried an accepted one is
    /// proven; a refused handshake is counted (and logged once a minute) by reason.
    fn handled(
        &mut self,
        from: Addr,
        r: Result<crate::proto::endpoint::Handled, crate::proto::endpoint::Drop>,
    ) {
        use crate::proto::endpoint::Drop;
        let e = match r {
            Ok(_) => {
                if let Addr::Tcp(id) = from {
                    self.tcp.prove(id);
                }
                return;
            }
            Err(Drop::Handshake(e)) => e,
            Err(_) => return,
        };
        let Some((reason, hint)) = handshake_refusal(e) else {
            return;
        };
        let addr = match from {
            Addr::Udp(_, a) => a.to_string(),
            Addr::Tcp(id) => self.tcp.get(id).map_or_else(
                || format!("TCP connection {id}"),
                |c| format!("{} (TCP)", c.peer),
            ),
        };
        self.refusals.refuse(std::time::Instant::now(), reason, || {
            format!("from {addr}{hint}")
        });
    }

    fn apply_classes(&mut self) {
        // Downstream classes come from the core's own policies; pinned links are not known here.
        let classes = session_classes(&self.cfg, |_| None);
        let ids: Vec<SessionId> = self.ep.session_ids().collect();
        for id in ids {
            if let Some(s) = self.ep.session_mut(id) {
                s.set_classes(&classes);
            }
        }
    }

    fn now_secs(&self) -> u64 {
        self.clock.now().as_micros() / 1_000_000
    }

    /// Sends what the outbox holds, each socket's datagrams with one system call.
    fn send_out(&mut self) {
        daemon::send_out(&mut self.outbox, &self.udp[..], &mut self.drops);
    }

    fn pump(&mut self, capture: &Capture) {
        let now = self.clock.now();
        for _ in 0..4096 {
            let Some((addr, n)) = self.ep.poll_transmit(now, self.outbox.slot()) else {
                break;
            };
            match addr {
                // Held, and sent per socket with one system call (sendmmsg).
                Addr::Udp(i, a) => {
                    if self.outbox.push(i, Some(a), n) {
                        self.send_out();
                    }
                }
                Addr::Tcp(id) => {
                    let d = &self.outbox.slot()[..n];
                    if !self.tcp.get(id).is_some_and(|c| c.io.tx.send(d)) {
                        *self.drops.entry("socket busy").or_default() += 1;
                    }
                }
            }
        }
        self.send_out();
        let secs = self.now_secs();
        while let Some((sid, mut d)) = self.ep.poll_deliver(now) {
            // Counted before the source is rewritten, and only once admitted: refused sources
            // (a spoofing edge) take no place in the user table.
            let len = d.data.len();
            let edge = self.ep.peer(sid).map(|p| p.public);
            let admitted = match PacketMut::parse(&mut d.data) {
                Ok(mut p) => {
                    let info = *p.info();
                    self.admission
                        .admit(sid, edge, &mut p, &mut self.map, secs)
                        .map(|()| {
                            p.clamp_mss(self.mss);
                            info
                        })
                }
                Err(_) => Err(self.admission.malformed(sid)),
            };
            if let Ok(info) = admitted {
                self.users
                    .entry(sid)
                    .or_insert_with(|| crate::memory::user_table(&self.bounds.session))
                    .up(info.src, info.flow().hash(self.seed), len);
                self.hub_out.write(capture, &d.data);
            }
            if let Some(s) = self.ep.session_mut(sid) {
                s.recycle(d.data);
            }
        }
        let failed = self.hub_out.flush(capture);
        if failed > 0 {
            *self.drops.entry("hub write failed").or_default() += failed;
        }
        let mut new_sessions = false;
        while let Some((sid, e)) = self.ep.poll_event() {
            let name = self
                .ep
                .peer(sid)
                .map_or_else(|| format!("session {sid}"), |p| p.name.clone());
            match e {
                Event::Established => {
                    log::info!("edge '{name}' connected (session {sid})");
                    self.established_at.insert(sid, std::time::Instant::now());
                    if let Some(p) = self.ep.peer(sid) {
                        self.edges.insert(p.public, sid);
                    }
                    new_sessions = true;
                }
                Event::LinkState { link, state } => {
                    let ln = self
                        .ep
                        .session(sid)
                        .and_then(|s| s.link_name(link))
                        .map_or_else(|| link.to_string(), |n| format!("'{n}' ({link})"));
                    log::info!("edge '{name}': link {ln} is {}", state_name(state))
                }
                Event::Closed => {
                    log::info!("session {sid} ended");
                    // The edge's pool addresses stay (idle ones expire): it may come back.
                    self.edges.retain(|_, s| *s != sid);
                }
            }
        }
        if new_sessions {
            self.apply_classes();
        }
    }

    /// A packet from the hub (offloads finished): a reply from the internet to a pool address.
    fn downstream(&mut self, pkt: &mut [u8]) {
        let Ok(mut p) = PacketMut::parse(pkt) else {
            *self.drops.entry("reply malformed").or_default() += 1;
            return;
        };
        let Some(sid) = self
            .map
            .inbound(&mut p, self.now_secs())
            .and_then(|edge| self.edges.get(&edge).copied())
        else {
            *self.drops.entry("reply for no session").or_default() += 1;
            return;
        };
        let info = *p.info();
        self.users
            .entry(sid)
            .or_insert_with(|| crate::memory::user_table(&self.bounds.session))
            .down(info.dst, info.total_len);
        p.clamp_mss(self.mss);
        let verdict = self.classifier.classify(&info, Direction::Down, None);
        self.class_packets
            .entry(sid)
            .or_default()
            .count(verdict.class);
        let meta = PacketMeta {
            user: packet::user_hash(info.dst, self.seed),
            flow: u64::from(info.flow().hash(self.seed)),
            class: u8::try_from(verdict.class).unwrap_or(0),
        };
        if self
            .ep
            .send(self.clock.now(), sid, p.bytes(), meta)
            .is_err()
        {
            *self.drops.entry("queue full").or_default() += 1;
        }
    }

    /// The host's own addresses (refused as destinations unless allowed).
    fn refresh_local(&mut self) {
        match crate::os::netlink::Netlink::open().and_then(|mut nl| nl.addresses(None)) {
            Ok(v) => self
                .admission
                .set_local(v.into_iter().map(|a| a.prefix.addr).collect()),
            Err(e) => log::warn!("reading the host's addresses: {e}"),
        }
    }

    /// Writes `state_file` (whole, through a temporary file): the pool's secret and, unless
    /// stopping for good, every client's address and the sysctls to restore, for the next core.
    fn save_state(&self) {
        let mut text = self.map.to_text();
        if self.for_good {
            text = text
                .lines()
                .filter(|l| l.starts_with("nat_secret "))
                .map(|l| format!("{l}\n"))
                .collect();
        } else {
            for (k, v) in &self.forwarding_restore {
                text.push_str(&format!("forwarding_before {k} {v}\n"));
            }
        }
        let path = std::path::Path::new(&self.cfg.main.state_file);
        if let Err(e) = daemon::write_state(path, &text) {
            log::warn!("writing {}: {e}", path.display());
        }
    }

    fn housekeeping(&mut self) {
        self.refresh_local();
        let ep = &self.ep;
        self.admission.retain(|id| ep.session(*id).is_some());
        // TCP connections whose task ended (closed, failed, unproven in time, idle) are freed.
        self.tcp.retain_alive(accept::alive);
        // Class counters of sessions that ended.
        let ep = &self.ep;
        self.class_packets.retain(|id, _| ep.session(*id).is_some());
        self.established_at
            .retain(|id, _| ep.session(*id).is_some());
        self.users.retain(|id, _| ep.session(*id).is_some());
        // Strangers' connections came and went: give back what they left free.
        if self.tcp.take_freed() > 0 {
            crate::memory::release_free_heap();
        }
    }

    /// One sample of every session's and link's counters for the measured rates.
    fn sample_meter(&mut self) {
        let now = std::time::Instant::now();
        let ids: Vec<SessionId> = self.ep.session_ids().collect();
        let mut live = std::collections::HashSet::new();
        for id in &ids {
            let Some(s) = self.ep.session(*id) else {
                continue;
            };
            let st = s.stats();
            for l in &st.links {
                let key = (*id, Some(l.id));
                let state = state_name(l.state);
                self.meter.sample(
                    key,
                    now,
                    l.counters.bytes_sent,
                    l.counters.bytes_received,
                    state,
                );
                live.insert(key);
            }
            let (tx, rx) = self.users.get(id).map_or((0, 0), |u| u.totals());
            let state = session_state(s.is_established());
            self.meter.sample((*id, None), now, tx, rx, state);
            live.insert((*id, None));
        }
        self.meter.retain(|k| live.contains(k));
    }

    fn reload(&mut self) -> Result<(), daemon::ReloadError> {
        let new = daemon::reload_config(&self.cfg.file)?;
        let changes = crate::config::diff::diff(&self.cfg, &new);
        for c in &changes {
            log::info!("reload: {c:?}");
            if c.needs_restart() {
                log::warn!("reload: {c:?} needs a restart to apply");
            }
        }
        self.ep.set_peers(peers(&new));
        let mtu = usize::from(new.main.mtu);
        self.bounds = new
            .main
            .memory
            .core(new.peers.len(), mtu)
            .map_err(daemon::ReloadError::Config)?;
        self.ep
            .set_session_config(crate::memory::session_config(&self.bounds.session, mtu));
        for gone in self
            .admission
            .reload(forward_policy(&new), allowed_lans(&new))
        {
            self.map.forget_edge(&gone);
        }
        self.map.set_max_clients(usize::from(new.main.max_clients));
        let old = std::mem::replace(&mut self.classifier, Classifier::from_config(&new));
        for counts in self.class_packets.values_mut() {
            counts.carry(old.classes(), self.classifier.classes());
        }
        self.mss = mss_for_mtu(new.main.mtu, 4);
        log::set_max_level(new.main.log_level.to_filter());
        self.cfg = new;
        self.apply_classes();
        log::info!("reload applied ({} change(s))", changes.len());
        Ok(())
    }

    fn control(&mut self, req: Request) -> Reply {
        match req {
            Request::Status => Reply {
                status: Some(self.status()),
                ..Reply::ok()
            },
            Request::Link { .. } => RequestError::LinkOnCore.into(),
            Request::Reload => match self.reload() {
                Ok(()) => Reply::ok(),
                Err(e) => RequestError::from(e).into(),
            },
            Request::Stop => Reply::ok(),
        }
    }

    fn status(&self) -> control::Status {
        let now = std::time::Instant::now();
        let mut sessions = Vec::new();
        for id in self.ep.session_ids() {
            let Some(s) = self.ep.session(id) else {
                continue;
            };
            let st = s.stats();
            let state = session_state(s.is_established());
            let users = self.users.get(&id);
            let (tx, rx) = users.map_or((0, 0), |u| u.totals());
            let bonded = self.meter.read(&(id, None), now, tx, rx, state);
            sessions.push(control::SessionStatus {
                peer: self
                    .ep
                    .peer(id)
                    .map_or_else(|| id.to_string(), |p| p.name.clone()),
                state: state.into(),
                established_s: self
                    .established_at
                    .get(&id)
                    .map_or(0, |t| t.elapsed().as_secs()),
                tx_bps: bonded.tx_bps,
                rx_bps: bonded.rx_bps,
                tx_bytes: tx,
                rx_bytes: rx,
                links: st
                    .links
                    .iter()
                    .map(|l| {
                        let addr = self.ep.link_addr(id, l.id);
                        let row = LinkRow {
                            name: core_link_name(s.link_name(l.id), l.id),
                            id: l.id,
                            transport: match addr {
                                Some(Addr::Tcp(_)) => "tcp",
                                _ => "udp",
                            },
                            state: state_name(l.state),
                            role: l.role,
                        };
                        control::LinkStatus {
                            address: addr.and_then(|a| match a {
                                Addr::Udp(_, a) => Some(a.to_string()),
                                Addr::Tcp(c) => self.tcp.get(c).map(|c| c.peer.to_string()),
                            }),
                            ..row.status(
                                control::LinkStatus::figures(l),
                                &self.meter,
                                &(id, Some(l.id)),
                                now,
                            )
                        }
                    })
                    .collect(),
                users: users.map_or_else(Vec::new, user_rows),
                classes: self
                    .class_packets
                    .get(&id)
                    .unwrap_or(&ClassCounts::default())
                    .rows(self.classifier.classes()),
                refused: Some(self.admission.refused_by(&id).counters()),
                ..control::SessionStatus::figures(&st)
            });
        }
        let mut drops = daemon::counters(&self.drops);
        let mut dropped: Vec<(String, u64)> = self
            .ep
            .stats
            .dropped
            .iter()
            .filter_map(|(d, n)| drop_reason(*d).map(|r| (r, *n)))
            .collect();
        dropped.sort();
        for (reason, count) in dropped {
            drops.push(control::Counter { reason, count });
        }
        control::Status {
            role: "core".into(),
            version: crate::cli::VERSION.into(),
            uptime_s: self.clock.uptime_s(),
            sessions,
            drops,
            refused: Some(self.admission.refused().counters()),
            refusals: self.refusals.counters(),
            waiting: None,
        }
    }
}

/// A session's state as `braid status` names it.
fn session_state(established: bool) -> &'static str {
    if established {
        "established"
    } else {
        "handshaking"
    }
}

/// Why the endpoint dropped datagrams, in the words `braid status` shows; `None` for refused
/// handshakes, which are counted as refusals (see [`handshake_refusal`]).
fn drop_reason(d: crate::proto::endpoint::Drop) -> Option<String> {
    use crate::proto::endpoint::Drop;
    use crate::proto::seal::SealError as E;
    Some(match d {
        Drop::UnknownIndex => "for no session (stale, forged, or from before a restart)".into(),
        Drop::Malformed => "malformed datagrams".into(),
        Drop::Session => {
            "refused by a session (failed authentication, replayed, or malformed)".into()
        }
        // The same init arrives on every link: the copies are expected, not refused.
        Drop::Handshake(E::Stale) => "handshake copies (the same init on another link)".into(),
        // An edge whose clock went back is told the time to beat, and gets in at once.
        Drop::Handshake(E::Behind) => "handshakes behind the last one (answered)".into(),
        Drop::Handshake(_) => return None,
    })
}

/// A refused handshake as `braid status` counts it, and what the log adds to it (a hint for
/// the reasons an operator can fix). `None`: not a refusal (counted as a drop).
fn handshake_refusal(e: crate::proto::seal::SealError) -> Option<(&'static str, &'static str)> {
    use crate::proto::seal::SealError as E;
    Some(match e {
        E::NotAllowed => (
            "handshakes: the edge's key is in no config peer",
            ": add the output of `braid pubkey` on that edge as a `config peer`",
        ),
        E::BadMac => (
            "handshakes: made for another core key",
            ": the edge's core_public_key is not this core's public key",
        ),
        E::Version => (
            "handshakes: another protocol version",
            ": upgrade the edges and the core together (`braid --version` on both)",
        ),
        E::Handshake => ("handshakes: wrong key or tampered", ""),
        E::RateLimited => (
            "handshakes: too many at once",
            " (a flood of handshakes, or very many edges at once)",
        ),
        E::Cookie => (
            "handshakes: under load, answered with a cookie",
            " (a flood of handshakes, perhaps from forged addresses; edges that can receive \
             get in at their next try)",
        ),
        E::Malformed => ("handshakes: malformed", ""),
        E::Stale | E::Behind => return None,
        _ => ("handshakes: other", ""),
    })
}
