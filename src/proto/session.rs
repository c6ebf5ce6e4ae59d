//! The edge <-> core session: one sans-IO state machine carrying all links.
//!
//! The same type runs on both sides (edge = initiator, core = responder). The caller feeds it
//! inner packets (`send`) and received datagrams (`handle_datagram`), and drains what it must
//! do: datagrams to put on links (`poll_transmit`), restored inner packets (`poll_deliver`),
//! events (`poll_event`), and the next wake-up (`poll_timeout` / `handle_timeout`).
//!
//! Sending path: `send` stores the packet (pooled buffer), gives it a session-wide `seq` and a
//! per-flow `prev`, and queues it in the connection-order scheduler (DRR per user, classes by
//! priority and weight). Before each transmit, lost packets (resend queue) are placed at the head
//! of the fastest other link's queue, then new packets are handed to links by the class's path
//! scheduler while a link's expected arrival is within the horizon. Each link sends from its
//! small queue when its pacer and in-flight cap allow, piggybacking its ACKs, probes and pending
//! control frames.
//!
//! Receiving path: frames update the links (ACKs, probes), data goes through the reorder buffer.
//!
//! A packet stays stored until one copy is acknowledged; a copy declared lost (loss detection,
//! link timeout, link removal or admin-down) is resent when no other copy is still alive (a
//! redundant class resends at once), at most [`MAX_RESENDS`] times. Nothing is dropped
//! silently: see [`SessionStats`].
//!
//! Beyond the plain design:
//! - a link's queue has three tiers: priority classes, resends, new data;
//! - a packet whose user had nothing else queued (a sparse user: interactive, DNS, ACKs of a
//!   download) goes to the priority tier, as FQ-CoDel favours sparse flows, unless packets of
//!   its flow still wait in a link queue (it would overtake them); DRR still bounds what any
//!   user gets;
//! - the receiver relays each link's ACK state on the fastest other link (on a `link_seq` gap
//!   at once, otherwise every 50 ms), marked so it yields no RTT sample: losses on a slow link
//!   are repaired about one slow-link delay earlier, and a link whose return path stalls is not
//!   taken for dead while it delivers;
//! - `can_send` keeps each user's backlog near 2 ms of the summed pacing rate (the hard cap is
//!   `per_user_queue_bytes`), so bulk sources do not add queueing delay.

use super::fasthash::FastMap;
use core::time::Duration;
use std::collections::VecDeque;

use crate::proto::link::{
    Link, LinkConfig, LinkCounters, LinkState, Resolved, MSS, RELAYED_ACK_DELAY, RELAYED_PROBE_BIT,
    WIRE_OVERHEAD,
};
use crate::proto::pack::{self, PackStats, Packer, Packing, Unpacker};
use crate::proto::packet;
use crate::proto::reorder::{Delivered, Reorder, ReorderConfig, ReorderStats};
use crate::proto::sched::drr::DrrOrder;
use crate::proto::sched::path::ByMode;
use crate::proto::sched::resend::{pick_resend_link, ResendQueue, MAX_RESENDS};
use crate::proto::sched::{Choice, ClassConfig, ClassId, ConnOrder, Entry, LinkView, Mode, PktId};
use crate::proto::seal::{self, Channel, SealError};
use crate::proto::wire::{
    self, Ack, Control, DataForm, DataHeader, Frame, FrameWriter, LinkRole, Probe, WireError,
};
use crate::proto::{Instant, LinkId};

/// Largest inner packet `send` accepts by default.
pub(crate) const DEFAULT_MAX_PACKET: usize = 1500;
/// How often the reorder hint is repeated even when unchanged.
const HINT_REFRESH: Duration = Duration::from_secs(2);

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub classes: Vec<ClassConfig>,
    /// Hard cap of queued bytes per user (`send` refuses beyond it).
    pub per_user_queue_bytes: u64,
    /// Hard cap of queued bytes over all users.
    pub total_queue_bytes: u64,
    /// Largest inner packet accepted.
    pub max_packet: usize,
    /// Packets stored at once (queued, in link queues, in flight, waiting to be resent); each
    /// holds a buffer of up to `max_packet`: `send` refuses past it (`config::budget`).
    pub max_stored_packets: usize,
    /// Flows whose last `seq` is kept (for `prev`); past it the map starts afresh.
    pub max_flows: usize,
    pub reorder: ReorderConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            classes: Vec::new(),
            per_user_queue_bytes: 256 * 1024,
            total_queue_bytes: 8 << 20,
            max_packet: DEFAULT_MAX_PACKET,
            max_stored_packets: usize::MAX,
            max_flows: 65_536,
            reorder: ReorderConfig::default(),
        }
    }
}

/// What the caller's classifier says about an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    pub user: u32,
    pub flow: u64,
    pub class: ClassId,
}

/// Why [`Session::send`] refused an inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The user's (or the total) queue is full: back off.
    QueueFull,
    /// Larger than `max_packet`.
    TooLarge,
    /// The session is closed.
    Closed,
}

/// Why a received datagram was not (wholly) taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The datagram did not open (wrong key, tampered, replayed, ...), counted by the channel.
    Seal(SealError),
    /// The plaintext had a malformed frame (frames before it were processed).
    Wire(WireError),
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SendError::QueueFull => "send queue full",
            SendError::TooLarge => "packet larger than the session's max_packet",
            SendError::Closed => "session closed",
        })
    }
}

impl std::error::Error for SendError {}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::Seal(e) => write!(f, "datagram did not open: {e}"),
            SessionError::Wire(e) => write!(f, "malformed frame: {e}"),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Seal(e) => Some(e),
            SessionError::Wire(e) => Some(e),
        }
    }
}

/// A datagram written by `poll_transmit`: send `out[..len]` on `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub link: LinkId,
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed; data flows.
    Established,
    LinkState {
        link: LinkId,
        state: LinkState,
    },
    /// The peer closed the session. The edge handshakes again at once, and starts a new session
    /// (`Established` again) when the core answers.
    Closed,
}

/// One link in [`SessionStats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    pub id: LinkId,
    pub role: LinkRole,
    pub state: LinkState,
    pub(crate) srtt: Duration,
    pub(crate) rttvar: Duration,
    pub(crate) min_rtt: Duration,
    pub(crate) loss: f64,
    pub(crate) delivery_rate_bps: u64,
    pub(crate) pacing_rate_bps: u64,
    pub(crate) cwnd_bytes: u64,
    pub(crate) inflight_bytes: u64,
    pub(crate) counters: LinkCounters,
    queued_packets: usize,
    pub(crate) queued_bytes: u64,
}

/// Counters and per-link figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    pub links: Vec<LinkStats>,
    /// Inner packets accepted by `send`.
    pub(crate) sent_packets: u64,
    /// Refused by `send` (queue full / too large).
    pub(crate) refused: u64,
    /// Packets waiting in the user queues.
    pub(crate) queued_packets: usize,
    pub(crate) queued_bytes: u64,
    /// Copies resent after a loss.
    pub(crate) resends: u64,
    /// Second copies of small sparse packets put on another link (see `Session::schedule`).
    pub sparse_copies: u64,
    /// Packets declared lost whose ACK came after all (their unsent resends were dropped).
    late_acks: u64,
    /// Given up after MAX_RESENDS resends.
    pub dropped_resend_limit: u64,
    /// Dropped because their class is pinned to a link the session does not have.
    pub(crate) dropped_no_path: u64,
    /// Dropped because they did not fit the datagram buffer given to `poll_transmit`.
    dropped_too_large: u64,
    /// Datagrams that did not open or parse.
    pub(crate) bad_datagrams: u64,
    pub(crate) reorder: ReorderStats,
    /// Current receive-side reorder wait.
    pub(crate) reorder_wait: Duration,
    /// Header packing of the packets sent (see [`crate::proto::pack`]).
    pub pack: PackStats,
    /// Packed frames received that could not be rebuilt (unknown context or generation).
    pub unpack_errors: u64,
    /// Times the edge started its session afresh because the core answered a handshake with a
    /// new session (it restarted, forgot ours, or closed it).
    pub renewals: u64,
    /// Handshakes completed over the session's life: the first, and every rehandshake since
    /// (a rekey, or the edge's after a second without a word from the core).
    pub(crate) handshakes: u64,
    /// Key rotations completed (handshakes after the first of this session).
    pub(crate) rekeys: u64,
}

#[derive(Debug, Default)]
struct Pkt {
    data: Vec<u8>,
    seq: u32,
    prev: u16,
    class: ClassId,
    /// Holders: the user queue, link queue entries, in-flight records, resend queue entries.
    refs: u16,
    /// Copies in link queues or in flight (not resolved).
    live: u16,
    acked: bool,
    resends: u8,
    /// Counted in `Session::flow_waiting` (until its first copy leaves a link queue).
    waiting: bool,
    /// Also counted in `Session::flow_in_links` (new data in a link queue, not yet sent).
    in_links: bool,
    flow_bucket: u16,
    /// Bumped each time the slot is reused: a link's token for a copy is (slot, generation),
    /// so a late ACK for a slot since reused is recognised and ignored.
    generation: u8,
    /// The flow context the last copy sent installed: an ACK confirms it to the packer.
    install: Option<u16>,
}

/// Buckets counting each flow's packets waiting to be sent (flow hash modulo this).
const FLOW_BUCKETS: usize = 1024;

/// A link's sender-side queue, in three tiers served in order: priority classes (new or
/// resent), resends of other classes, new data.
#[derive(Debug, Default)]
struct LinkQueue {
    tiers: [VecDeque<PktId>; 3],
    tier_bytes: [u64; 3],
    bytes: u64,
}

const TIER_PRIO: usize = 0;
/// A sparse packet up to this long (a request, an answer, a keystroke; not a bulk segment) is
/// also copied to the head of a second link's queue (see `schedule`).
const SPARSE_COPY_MAX_LEN: u32 = 256;
/// The copies' budget: this fraction (1/N) of the pacing rate of the link they go on ...
const SPARSE_COPY_SHARE: u64 = 64;
/// ... saved up to this many bytes.
const SPARSE_COPY_BURST: u64 = 16 * 1024;
const TIER_RESEND: usize = 1;
const TIER_NEW: usize = 2;

impl LinkQueue {
    fn is_empty(&self) -> bool {
        self.tiers.iter().all(|t| t.is_empty())
    }

    fn len(&self) -> usize {
        self.tiers.iter().map(|t| t.len()).sum()
    }

    fn head(&self) -> Option<(PktId, usize)> {
        (0..3).find_map(|t| self.tiers[t].front().map(|&p| (p, t)))
    }
}

struct LinkSlot {
    link: Link,
    q: LinkQueue,
    /// A cap for the peer's sending on this link (announced in LinkConfig).
    peer_cap_bps: Option<u64>,
    /// When this link's ACK state was last relayed on another link.
    last_relay: Instant,
    /// The edge's name for the link (set on the edge, learnt from LinkName on the core).
    name: String,
    /// Bytes of sparse packets' second copies this link may still take (see `copy_sparse`).
    copy_credit: u64,
}

/// The edge handshakes again when nothing authenticated has come from the core for this long
/// after it sent something (a probe goes out every 150 ms even on an idle link, and the core
/// answers each): a restarted core has no session and drops everything but a handshake, whose
/// answer tells the edge to start afresh (see [`Session::handle_datagram`]). When the core
/// still has the session (every link was silent, say in a tunnel) it is a plain rekey.
pub const REHANDSHAKE_AFTER: Duration = Duration::from_secs(1);

/// How often the edge announces its links again (see `refresh_announcements`).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// ACK state of every link receiving data is also relayed this often on the fastest other
/// link, so a link whose return path stalls (cellular) is not taken for dead while it delivers.
const RELAY_EVERY: Duration = Duration::from_millis(50);

/// Wire bytes a queued packet of `len` inner bytes occupies.
fn wire_len(len: usize) -> u64 {
    (len + wire::DATA_HEADER_LEN + seal::OVERHEAD) as u64 + WIRE_OVERHEAD as u64
}

/// Removes from `pending` each relay (an ACK state, a probe reply) to go on link `id` that
/// `push` writes into the datagram (`push` returns whether it fit); the rest stays queued.
fn take_relays<T>(pending: &mut Vec<(LinkId, T)>, id: LinkId, mut push: impl FnMut(&T) -> bool) {
    let mut k = 0;
    while k < pending.len() {
        if pending[k].0 == id && push(&pending[k].1) {
            pending.swap_remove(k);
        } else {
            k += 1;
        }
    }
}

/// The session state machine. See the module docs.
pub struct Session {
    channel: Channel,
    cfg: SessionConfig,
    classes: Vec<ClassConfig>,
    class_of: [u8; 256],
    established: bool,
    closed: bool,
    close_pending: bool,
    /// The edge: the core closed the session (a Close frame), and how many handshakes the
    /// channel had completed then: the next answer that gives keys starts afresh (see
    /// `on_control`).
    peer_closed: Option<u64>,

    links: Vec<LinkSlot>,
    rr: usize,

    pkts: Vec<Pkt>,
    /// Packets per flow bucket waiting in the user queues or the link queues: a packet that
    /// finds its bucket empty belongs to a sparse flow (see `send`).
    flow_waiting: Box<[u16; FLOW_BUCKETS]>,
    /// Of those, the ones in link queues: a sparse packet goes ahead of the link queues only
    /// if none of its flow waits there, or it would overtake them (see `schedule`).
    flow_in_links: Box<[u16; FLOW_BUCKETS]>,
    /// When the links' budgets for sparse packets' second copies were last refilled.
    copy_credit_at: Instant,
    free: Vec<PktId>,
    next_seq: u32,
    flows: FastMap<u64, u32>,
    conn: Box<dyn ConnOrder>,
    path: ByMode,
    resend: ResendQueue,

    controls: VecDeque<Control>,
    /// ACKs reporting a loss on a slow link, to send on a faster one: (via, ack).
    relays: Vec<(LinkId, Ack)>,
    /// Probe replies to send on another link than the probed one: (via, reply).
    relay_probes: Vec<(LinkId, Probe)>,
    hint_sent: Option<(u32, Instant)>,
    /// When the edge last announced every link (LinkConfig, LinkName) to the core; `None`:
    /// announce at the next transmit.
    announced_at: Option<Instant>,
    /// The first datagram sent since the peer was last heard (`None`: nothing unanswered); also
    /// pushed forward when a rehandshake is requested, to space the requests.
    quiet_since: Option<Instant>,
    /// When a datagram from the peer last opened (or a handshake answer came); `None` before.
    last_heard: Option<Instant>,
    handshake: Vec<u8>,
    handshake_links: Vec<LinkId>,
    /// `handshake` was made while no link could carry it: the first link up takes it at
    /// once, rather than at the next retry up to a second later.
    handshake_unsent: bool,

    reorder: Reorder,
    events: VecDeque<Event>,
    packer: Packer,
    unpacker: Unpacker,

    // scratch, reused to avoid per-packet allocation
    views: Vec<LinkView>,
    resolved: Vec<Resolved>,
    blocked: [bool; 256],

    stats: SessionStats,
}

impl Session {
    pub fn new(channel: Channel, config: SessionConfig, now: Instant) -> Session {
        let _ = now;
        let mut conn: Box<dyn ConnOrder> = Box::new(DrrOrder::new(
            config.per_user_queue_bytes,
            config.total_queue_bytes,
        ));
        conn.set_classes(&config.classes);
        let mut s = Session {
            channel,
            classes: Vec::new(),
            class_of: [0; 256],
            established: false,
            closed: false,
            close_pending: false,
            peer_closed: None,
            links: Vec::new(),
            rr: 0,
            pkts: Vec::new(),
            free: Vec::new(),
            flow_waiting: Box::new([0; FLOW_BUCKETS]),
            flow_in_links: Box::new([0; FLOW_BUCKETS]),
            copy_credit_at: now,
            next_seq: 1,
            flows: FastMap::default(),
            conn,
            path: ByMode::default(),
            resend: ResendQueue::new(),
            controls: VecDeque::new(),
            relays: Vec::new(),
            relay_probes: Vec::new(),
            hint_sent: None,
            announced_at: None,
            quiet_since: None,
            last_heard: None,
            handshake: Vec::new(),
            handshake_links: Vec::new(),
            handshake_unsent: false,
            reorder: Reorder::new(config.reorder),
            events: VecDeque::new(),
            packer: Packer::new(),
            unpacker: Unpacker::new(),
            views: Vec::new(),
            resolved: Vec::new(),
            blocked: [false; 256],
            stats: SessionStats::default(),
            cfg: config,
        };
        let classes = s.cfg.classes.clone();
        s.set_classes(&classes);
        s
    }

    /// Replaces the class table (queued packets are kept).
    pub(crate) fn set_classes(&mut self, classes: &[ClassConfig]) {
        self.classes.clear();
        self.classes.push(ClassConfig::DEFAULT);
        self.class_of = [0; 256];
        for c in classes {
            if c.id == 0 {
                self.classes[0] = *c;
            } else if self.classes.len() < 256 {
                self.class_of[c.id as usize] = self.classes.len() as u8;
                self.classes.push(*c);
            }
        }
        self.conn.set_classes(classes);
    }

    fn class(&self, id: ClassId) -> &ClassConfig {
        &self.classes[self.class_of[id as usize] as usize]
    }

    /// The channel, e.g. for the core to hand it a rekey (`Channel::rekeyed`).
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    pub(crate) fn channel_mut(&mut self) -> &mut Channel {
        &mut self.channel
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// When the peer was last heard from: a datagram that opened (any frame: data, ACK, probe
    /// reply) or a handshake answer, on any link, whatever state the links are in. `None`
    /// before the first. A sign of life even while every link is still Down.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    // ------------------------------------------------------------------ links

    fn slot(&self, id: LinkId) -> Option<usize> {
        self.links.iter().position(|l| l.link.id == id)
    }

    /// Adds a link (or updates its config if it exists).
    pub fn add_link(&mut self, id: LinkId, cfg: LinkConfig, now: Instant) {
        match self.slot(id) {
            Some(i) => self.links[i].link.set_config(cfg),
            None => self.links.push(LinkSlot {
                link: Link::new(id, cfg, now),
                q: LinkQueue::default(),
                peer_cap_bps: None,
                last_relay: Instant::ZERO,
                name: String::new(),
                copy_credit: 0,
            }),
        }
        self.announce_link(id);
    }

    /// The download cap the peer should apply on this link (sent in LinkConfig).
    pub(crate) fn set_peer_rate_cap(&mut self, id: LinkId, cap_bps: Option<u64>) {
        if let Some(i) = self.slot(id) {
            self.links[i].peer_cap_bps = cap_bps;
            self.announce_link(id);
        }
    }

    /// Names a link (the edge's config name); the edge tells the core, whose status shows it.
    /// Cut to [`wire::LINK_NAME_MAX`] bytes.
    pub fn set_link_name(&mut self, id: LinkId, name: &str) {
        let Some(i) = self.slot(id) else { return };
        let mut end = name.len().min(wire::LINK_NAME_MAX);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        if self.links[i].name != name[..end] {
            self.links[i].name = name[..end].to_string();
            self.announce_link(id);
        }
    }

    /// The edge's name for a link: set by [`Session::set_link_name`] on the edge, learnt from
    /// the edge on the core (`None` until then, or for an unknown link).
    pub fn link_name(&self, id: LinkId) -> Option<&str> {
        self.slot(id)
            .map(|i| self.links[i].name.as_str())
            .filter(|n| !n.is_empty())
    }

    fn announce_link(&mut self, id: LinkId) {
        if !self.channel.is_initiator() {
            return;
        }
        let Some(i) = self.slot(id) else { return };
        let l = &self.links[i];
        let c = Control::LinkConfig {
            link: id,
            // An admin-down link is announced as "never" so the peer stops using it at once.
            role: if l.link.admin_up() {
                l.link.cfg.role
            } else {
                LinkRole::Never
            },
            weight: l.link.cfg.weight,
            down_cap_bps: l.peer_cap_bps.unwrap_or(0),
        };
        let name = (!l.name.is_empty()).then(|| Control::LinkName {
            link: id,
            name: l.name.clone(),
        });
        self.controls.retain(|x| {
            !matches!(x, Control::LinkConfig { link, .. } | Control::LinkName { link, .. }
                if *link == id)
        });
        self.controls.push_back(c);
        if let Some(n) = name {
            self.controls.push_back(n);
        }
    }

    /// Control frames are sent once, unacknowledged: the edge announces every link again every
    /// [`ANNOUNCE_EVERY`], so a LinkConfig or LinkName lost on the way (a role change from a
    /// reload or a quota) reaches the core all the same.
    fn refresh_announcements(&mut self, now: Instant) {
        if !self.channel.is_initiator()
            || self
                .announced_at
                .is_some_and(|t| now.saturating_since(t) < ANNOUNCE_EVERY)
        {
            return;
        }
        self.announced_at = Some(now);
        let ids: Vec<LinkId> = self.links.iter().map(|l| l.link.id).collect();
        for id in ids {
            self.announce_link(id);
        }
    }

    /// Removes a link; its queued and in-flight packets move to the other links.
    pub fn remove_link(&mut self, id: LinkId, now: Instant) {
        let Some(i) = self.slot(id) else { return };
        let mut res = std::mem::take(&mut self.resolved);
        res.clear();
        self.links[i].link.drain_in_flight(&mut res);
        self.requeue_link(i);
        self.links.remove(i);
        for r in res.drain(..) {
            self.on_resolved(r, None);
        }
        self.resolved = res;
        if self.channel.is_initiator() {
            self.controls.retain(|x| {
                !matches!(x, Control::LinkConfig { link, .. } | Control::LinkName { link, .. }
                    if *link == id)
            });
            self.controls.push_back(Control::LinkRemoved { link: id });
        }
        let _ = now;
    }

    /// Administrative up/down. Down moves queued and in-flight packets to the other links.
    pub fn set_link_admin(&mut self, id: LinkId, up: bool, now: Instant) {
        let Some(i) = self.slot(id) else { return };
        let mut res = std::mem::take(&mut self.resolved);
        res.clear();
        self.links[i].link.set_admin(up, now, &mut res);
        self.announce_link(id);
        if up && self.handshake_unsent {
            // A link came up (the edge booted before its modems): the waiting handshake goes.
            self.handshake_unsent = false;
            self.handshake_links.push(id);
        }
        if !up {
            self.requeue_link(i);
        }
        for r in res.drain(..) {
            self.on_resolved(r, Some(id));
        }
        self.resolved = res;
        self.collect_link_events();
    }

    /// Moves a link's queue to the resend queue (or drops the copy if another is alive).
    fn requeue_link(&mut self, i: usize) {
        let q = std::mem::take(&mut self.links[i].q);
        let id = self.links[i].link.id;
        for pid in q.tiers.into_iter().flatten() {
            let p = &mut self.pkts[pid as usize];
            p.live -= 1;
            if !p.acked && p.live == 0 {
                self.resend.push(pid, Some(id)); // the queue's ref moves to the resend queue
            } else {
                self.unref(pid);
            }
        }
    }

    fn collect_link_events(&mut self) {
        for l in &mut self.links {
            if let Some(state) = l.link.take_state_change() {
                self.events.push_back(Event::LinkState {
                    link: l.link.id,
                    state,
                });
            }
        }
    }

    // ------------------------------------------------------------------ packets

    fn alloc(&mut self) -> PktId {
        match self.free.pop() {
            Some(i) => {
                let p = &mut self.pkts[i as usize];
                p.generation = p.generation.wrapping_add(1);
                i
            }
            None => {
                self.pkts.push(Pkt::default());
                (self.pkts.len() - 1) as PktId
            }
        }
    }

    /// The packet no longer counts as waiting for its flow (its first copy left a link
    /// queue, or it was freed before that).
    fn stop_waiting(&mut self, pid: PktId) {
        let p = &mut self.pkts[pid as usize];
        if p.waiting {
            p.waiting = false;
            let b = &mut self.flow_waiting[usize::from(p.flow_bucket)];
            *b = b.saturating_sub(1);
        }
        if p.in_links {
            p.in_links = false;
            let b = &mut self.flow_in_links[usize::from(p.flow_bucket)];
            *b = b.saturating_sub(1);
        }
    }

    /// New data put in link queues: counted in `flow_in_links` until its first copy is sent.
    fn mark_in_links(&mut self, pid: PktId) {
        let p = &mut self.pkts[pid as usize];
        if p.waiting && !p.in_links {
            p.in_links = true;
            let b = &mut self.flow_in_links[usize::from(p.flow_bucket)];
            *b = b.saturating_add(1);
        }
    }

    fn unref(&mut self, pid: PktId) {
        let p = &mut self.pkts[pid as usize];
        p.refs -= 1;
        if p.refs == 0 {
            self.stop_waiting(pid);
            let p = &mut self.pkts[pid as usize];
            p.data.clear();
            p.live = 0;
            p.acked = false;
            p.resends = 0;
            self.free.push(pid);
        }
    }

    /// The token a link keeps for a copy of `pid`: its slot and the slot's generation.
    fn token(&self, pid: PktId) -> u32 {
        pid << 8 | u32::from(self.pkts[pid as usize].generation)
    }

    /// The slot and generation a token names (see `token`).
    fn slot_of(token: u32) -> (PktId, u8) {
        (token >> 8, token as u8)
    }

    /// A copy that a link had declared lost was acked after all: the packet arrived, so its
    /// queued resends are dropped (pop_link_queue skips acked packets) and none follow.
    fn on_late_ack(&mut self, token: u32) {
        let (pid, generation) = Self::slot_of(token);
        if let Some(p) = self.pkts.get_mut(pid as usize) {
            if p.refs > 0 && p.generation == generation && !p.acked {
                p.acked = true;
                self.stats.late_acks += 1;
                if let Some(c) = p.install {
                    self.packer.confirm(c);
                }
            }
        }
    }

    /// What happened to one in-flight copy.
    fn on_resolved(&mut self, r: Resolved, lost_on: Option<LinkId>) {
        // An in-flight copy holds a reference: its slot cannot have been reused.
        let (pid, _) = Self::slot_of(r.token);
        let p = &mut self.pkts[pid as usize];
        p.live -= 1;
        if r.acked {
            p.acked = true;
            if let Some(c) = p.install {
                self.packer.confirm(c);
            }
            self.unref(pid);
            return;
        }
        // Another copy still alive: wait for it, except for a redundant class, whose point is
        // never to wait for a timeout.
        let redundant =
            self.classes[self.class_of[p.class as usize] as usize].mode == Mode::Redundant;
        if p.acked || (p.live > 0 && !redundant) {
            self.unref(pid);
            return;
        }
        if p.resends >= MAX_RESENDS {
            self.stats.dropped_resend_limit += 1;
            p.acked = true; // given up: stop any other holder from resending it
            self.unref(pid);
            return;
        }
        p.resends += 1;
        self.stats.resends += 1;
        self.resend.push(pid, lost_on); // the in-flight ref moves to the resend queue
    }

    /// Whether a bulk source should send more for this user now (soft back-pressure: keeps the
    /// user's backlog short so queueing delay stays low, while DRR always has work).
    pub fn can_send(&self, meta: &PacketMeta) -> bool {
        if self.closed {
            return false;
        }
        // About 2 ms of the summed pacing rate, at least a few packets, at most the hard cap.
        let rate: u64 = self
            .links
            .iter()
            .filter(|l| l.link.usable())
            .map(|l| l.link.pacing_rate())
            .sum();
        let target = (rate / 500).max(4 * MSS).min(self.cfg.per_user_queue_bytes);
        self.conn.user_bytes(meta.user) + MSS <= target
            && self.conn.can_accept(meta.user, MSS as u32)
    }

    /// Queues an inner packet.
    pub fn send(&mut self, now: Instant, packet: &[u8], meta: PacketMeta) -> Result<(), SendError> {
        let _ = now;
        if self.closed {
            return Err(SendError::Closed);
        }
        if packet.len() > self.cfg.max_packet {
            self.stats.refused += 1;
            return Err(SendError::TooLarge);
        }
        if !self.conn.can_accept(meta.user, packet.len() as u32)
            || (self.free.is_empty() && self.pkts.len() >= self.cfg.max_stored_packets)
        {
            self.stats.refused += 1;
            return Err(SendError::QueueFull);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if self.flows.len() > self.cfg.max_flows {
            // Forget old flows (they restart with prev = 0), and the map's memory with them.
            self.flows = FastMap::default();
        }
        let prev = match self.flows.insert(meta.flow, seq) {
            Some(last) => {
                let d = seq.wrapping_sub(last);
                if d <= u16::MAX as u32 {
                    d as u16
                } else {
                    0
                }
            }
            None => 0,
        };
        let pid = self.alloc();
        let p = &mut self.pkts[pid as usize];
        p.data.clear();
        // Exactly what is needed when the pooled buffer is too small: a slot never holds more
        // than `max_packet` (what the budget counts per slot).
        p.data.reserve_exact(packet.len());
        p.data.extend_from_slice(packet);
        p.seq = seq;
        p.prev = prev;
        p.class = meta.class;
        p.refs = 1;
        p.live = 0;
        p.acked = false;
        p.resends = 0;
        p.install = None;
        // A packet whose flow has nothing waiting to be sent (a request, a DNS query, an ACK)
        // goes before its user's backlog and skips the link queues; a bulk flow always has
        // packets waiting, so it cannot.
        let bucket = (meta.flow % FLOW_BUCKETS as u64) as usize;
        let sparse = self.flow_waiting[bucket] == 0;
        self.flow_waiting[bucket] = self.flow_waiting[bucket].saturating_add(1);
        p.waiting = true;
        p.in_links = false;
        p.flow_bucket = bucket as u16;
        let e = Entry {
            pkt: pid,
            len: packet.len() as u32,
            user: meta.user,
            class: meta.class,
            sparse,
        };
        self.conn.enqueue(e).expect("capacity checked above");
        self.stats.sent_packets += 1;
        Ok(())
    }

    // ------------------------------------------------------------------ scheduling

    fn build_views(&mut self, now: Instant) {
        self.views.clear();
        for l in &self.links {
            let link = &l.link;
            let rate = link.pacing_rate().max(1);
            let wait = link.next_send_time().0.saturating_sub(now.0);
            // This direction's delay: half the RTT was wrong by half the reverse queue, so a
            // download filling a link's downstream made the edge send its interactive packets
            // to the other link (see `Link::forward_delay_us`).
            let ow = link.forward_delay_us(now);
            let pkt_us = MSS * 1_000_000 / rate;
            // A link blocked by its in-flight cap drains only as ACKs come back.
            let stall = if link.cwnd_limited() {
                link.srtt().as_micros() as u64 / 4
            } else {
                0
            };
            let base = now.0 + wait + ow + stall;
            self.views.push(LinkView {
                id: link.id,
                role: link.cfg.role,
                usable: link.usable(),
                degraded: link.state() == LinkState::Degraded,
                weight: link.cfg.weight,
                arrival: Instant(base + (l.q.bytes + MSS) * 1_000_000 / rate),
                arrival_head: Instant(base + (l.q.tier_bytes[TIER_PRIO] + MSS) * 1_000_000 / rate),
                arrival_resend: Instant(
                    base + (l.q.tier_bytes[TIER_PRIO] + l.q.tier_bytes[TIER_RESEND] + MSS)
                        * 1_000_000
                        / rate,
                ),
                one_way_us: ow,
                packet_time_us: pkt_us,
            });
        }
    }

    fn push_to_link(&mut self, vi: usize, pid: PktId, tier: usize) {
        let len = self.pkts[pid as usize].data.len();
        let w = wire_len(len);
        let l = &mut self.links[vi];
        l.q.tiers[tier].push_back(pid);
        l.q.tier_bytes[tier] += w;
        l.q.bytes += w;
        let rate = l.link.pacing_rate().max(1);
        let dt = w * 1_000_000 / rate;
        let v = &mut self.views[vi];
        v.arrival = Instant(v.arrival.0 + dt);
        if tier == TIER_PRIO {
            v.arrival_head = Instant(v.arrival_head.0 + dt);
        }
        if tier <= TIER_RESEND {
            v.arrival_resend = Instant(v.arrival_resend.0 + dt);
        }
        let p = &mut self.pkts[pid as usize];
        p.live += 1;
    }

    /// Refills each link's budget for sparse packets' second copies: 1/`SPARSE_COPY_SHARE` of
    /// its pacing rate, up to `SPARSE_COPY_BURST` bytes. Per link, not of the summed rate: the
    /// copies of an upload's interactive requests took 3-4 % of the slow link's upstream
    /// (lte-rr-up below, bench/sim/owd.md session 17).
    fn refill_copy_credit(&mut self, now: Instant) {
        let dt = now.0.saturating_sub(self.copy_credit_at.0);
        self.copy_credit_at = now;
        for l in &mut self.links {
            let add = (l.link.pacing_rate() / SPARSE_COPY_SHARE).saturating_mul(dt) / 1_000_000;
            l.copy_credit = (l.copy_credit + add).min(SPARSE_COPY_BURST);
        }
    }

    /// A small sparse packet just put at the head of link `a`'s queue: a second copy at the head
    /// of the usable primary or secondary link where it would arrive first, within that link's
    /// budget. The first copy's link is chosen by predicted arrival, and a cellular link's
    /// prediction misses by hundreds of ms when its network queue swells or it enters a dead
    /// spell (the forward queue is measured one RTT late); the copy makes the packet's delay
    /// the smaller of the two links'. The receiver drops the later copy (its `seq`).
    /// Simulator, lte-rr104 (8 downloads, interactive 104-byte packets each way), held-out
    /// seeds 9-24: downstream interactive p50 87.5 -> 39.5 ms, p99 610 -> 432 ms (medians over
    /// seeds; bench/sim/owd.md, session 17).
    ///
    /// Not for a bare TCP ACK (a download's ACK stream is sparse too, and cumulative: one late
    /// ACK costs nothing the next one does not repair). Copied, a download's ACKs took the
    /// budget and filled the slow link's upstream queue (lte-rr104 upstream interactive p99 71
    /// -> 130 ms, median of seeds 1-8).
    fn copy_sparse(&mut self, a: usize, pid: PktId) {
        let data = &self.pkts[pid as usize].data;
        let w = wire_len(data.len());
        if packet::is_bare_tcp_ack(data) {
            return;
        }
        let b = self
            .views
            .iter()
            .enumerate()
            .filter(|&(i, v)| i != a && v.usable && v.tier().is_some_and(|t| t <= 1))
            .min_by_key(|(_, v)| v.arrival_head)
            .map(|(i, _)| i);
        if let Some(b) = b.filter(|&b| self.links[b].copy_credit >= w) {
            self.links[b].copy_credit -= w;
            self.pkts[pid as usize].refs += 1;
            self.push_to_link(b, pid, TIER_PRIO);
            self.stats.sparse_copies += 1;
        }
    }

    /// Fills link queues: resends first, then new packets in connection order.
    fn schedule(&mut self, now: Instant) {
        if self.links.is_empty() || (self.resend.is_empty() && self.conn.is_empty()) {
            return;
        }
        self.refill_copy_credit(now);
        self.build_views(now);
        // Data order: resends ahead of new data, on the fastest other link.
        let mut n = self.resend.len();
        while n > 0 {
            n -= 1;
            let Some((pid, lost_on)) = self.resend.pop() else {
                break;
            };
            if self.pkts[pid as usize].acked {
                self.unref(pid);
                continue;
            }
            let class = *self.class(self.pkts[pid as usize].class);
            let mode = class.mode;
            let tier = if class.priority > 0 {
                TIER_PRIO
            } else {
                TIER_RESEND
            };
            let pick = pick_resend_link(now, &self.views, lost_on, |l| match mode {
                Mode::Pinned(id) => l.id == id,
                _ => true,
            });
            match pick {
                Some(vi) => {
                    self.push_to_link(vi, pid, tier); // the resend queue's ref moves along
                }
                None if matches!(mode, Mode::Pinned(id) if self.slot(id).is_none()) => {
                    self.stats.dropped_no_path += 1;
                    self.pkts[pid as usize].acked = true;
                    self.unref(pid);
                }
                None => {
                    // No usable link for it now: retry later, without holding up the others.
                    self.resend.push(pid, lost_on);
                }
            }
        }
        // Connection order + path choice for new data.
        self.blocked = [false; 256];
        loop {
            let blocked = &self.blocked;
            let Some(e) = self.conn.dequeue(&mut |c| !blocked[c as usize]) else {
                break;
            };
            let class = *self.class(e.class);
            // A sparse packet skips the link queues only if none of its flow waits in them.
            // DRR flags a user's last queued packet sparse, and a bulk flow's packet put ahead
            // of its own predecessors was reordered at the sender (simulator, rough tcp8-down
            // seed 2: 691 packets to the head tier in 350 ms while the flows' earlier ones
            // waited up to 350 ms behind them, past the receiver's reorder wait).
            let bucket = usize::from(self.pkts[e.pkt as usize].flow_bucket);
            let urgent = class.priority > 0 || (e.sparse && self.flow_in_links[bucket] == 0);
            let tier = if urgent { TIER_PRIO } else { TIER_NEW };
            match self.path.choose(now, &class, &self.views, urgent) {
                Choice::One(a) => {
                    self.push_to_link(a, e.pkt, tier);
                    if urgent && e.len <= SPARSE_COPY_MAX_LEN && class.mode == Mode::Aggregate {
                        self.copy_sparse(a, e.pkt);
                    }
                    self.mark_in_links(e.pkt);
                }
                Choice::Two(a, b) => {
                    self.pkts[e.pkt as usize].refs += 1;
                    self.push_to_link(a, e.pkt, tier);
                    self.push_to_link(b, e.pkt, tier);
                    self.mark_in_links(e.pkt);
                }
                Choice::NoPath if matches!(class.mode, Mode::Pinned(id) if self.slot(id).is_none()) =>
                {
                    self.stats.dropped_no_path += 1;
                    self.unref(e.pkt);
                }
                Choice::Wait | Choice::NoPath => {
                    self.conn.undo_dequeue(e);
                    self.blocked[e.class as usize] = true;
                }
            }
        }
    }

    /// Pops the next live packet from a link's queue (dropping copies already acked elsewhere).
    fn pop_link_queue(&mut self, i: usize) -> Option<PktId> {
        if !self.queue_has_live(i) {
            return None;
        }
        let pid = self.take_head(i)?;
        self.stop_waiting(pid);
        Some(pid)
    }

    /// Whether a link's queue has a live packet at its head (dead heads are dropped).
    fn queue_has_live(&mut self, i: usize) -> bool {
        loop {
            let Some((pid, _)) = self.links[i].q.head() else {
                return false;
            };
            if !self.pkts[pid as usize].acked {
                return true;
            }
            // A copy acked elsewhere: drop it. Only the dead head: the live packet behind it
            // stays queued (taking it here, as this once did, lost it for good).
            self.take_head(i);
            self.pkts[pid as usize].live -= 1;
            self.unref(pid);
        }
    }

    /// Removes the head of a link's queue, keeping the byte counts.
    fn take_head(&mut self, i: usize) -> Option<PktId> {
        let q = &mut self.links[i].q;
        let (pid, t) = q.head()?;
        q.tiers[t].pop_front();
        let w = wire_len(self.pkts[pid as usize].data.len());
        q.bytes -= w;
        q.tier_bytes[t] -= w;
        Some(pid)
    }

    fn update_reorder_hint(&mut self, now: Instant) {
        let mut min_ow = u64::MAX;
        let mut max_ow = 0;
        let mut min_rtt = u64::MAX;
        let mut max_var = 0;
        for l in self
            .links
            .iter()
            .filter(|l| l.link.usable() && l.link.has_rtt_sample())
        {
            // The skew the receiver sees is between the links' forward delays.
            let ow = l.link.forward_delay_us(now);
            let srtt = l.link.srtt().as_micros() as u64;
            min_ow = min_ow.min(ow);
            max_ow = max_ow.max(ow);
            min_rtt = min_rtt.min(srtt);
            max_var = max_var.max(l.link.rttvar().as_micros() as u64);
        }
        if min_rtt == u64::MAX {
            // Nothing to measure from: keep the last hint, and the refresh timer quiet.
            if let Some((w, t)) = self.hint_sent {
                if now.saturating_since(t) >= HINT_REFRESH {
                    self.hint_sent = Some((w, now));
                }
            }
            return;
        }
        let wait = (max_ow - min_ow) + min_rtt + 4 * max_var + 2 * 2_000;
        let wait = wait.min(crate::proto::reorder::MAX_WAIT.as_micros() as u64) as u32;
        let due = match self.hint_sent {
            None => true,
            Some((w, t)) => {
                let changed = (wait as u64).abs_diff(w as u64) * 10 > w as u64;
                (changed && now.saturating_since(t) >= Duration::from_millis(50))
                    || now.saturating_since(t) >= HINT_REFRESH
            }
        };
        if due {
            self.controls
                .retain(|c| !matches!(c, Control::ReorderHint { .. }));
            self.controls
                .push_back(Control::ReorderHint { wait_us: wait });
            self.hint_sent = Some((wait, now));
        }
    }

    // ------------------------------------------------------------------ transmit

    /// The next datagram to send, written into `out` (give it at least `max_packet` + 100 bytes).
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        let t = self.next_transmit(now, out);
        if t.is_some() && self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
        t
    }

    fn next_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        // Handshakes (first, retries, rekeys): the same init on every usable link.
        if let Some(t) = self.poll_handshake(now, out) {
            return Some(t);
        }
        if !self.established || (self.closed && !self.close_pending) {
            return None;
        }
        self.update_reorder_hint(now);
        self.refresh_announcements(now);
        if self.channel.is_initiator()
            && self
                .quiet_since
                .is_some_and(|t| now.saturating_since(t) >= REHANDSHAKE_AFTER)
        {
            // Silence on every link: the links may all be down, or the core restarted and
            // drops what it cannot open. A handshake costs little either way.
            self.channel.request_handshake();
            self.quiet_since = Some(now);
        }
        self.schedule(now);
        let links = &self.links;
        self.relays
            .retain(|(v, _)| links.iter().any(|l| l.link.id == *v && l.link.can_carry()));
        self.relay_probes
            .retain(|(v, _)| links.iter().any(|l| l.link.id == *v && l.link.can_carry()));
        let n = self.links.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            if let Some(t) = self.transmit_on(i, now, out, false) {
                self.rr = (i + 1) % n;
                return Some(t);
            }
        }
        // Control frames waiting with nothing else going: send them alone on the best link.
        if !self.controls.is_empty() && n > 0 {
            let best = (0..n)
                .filter(|&i| self.links[i].link.can_carry())
                .min_by_key(|&i| {
                    let l = &self.links[i].link;
                    (!l.usable(), l.forward_delay_us(now))
                });
            if let Some(i) = best {
                return self.transmit_on(i, now, out, true);
            }
        }
        None
    }

    fn poll_handshake(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        if !self.channel.is_initiator() {
            return None;
        }
        if self.handshake_links.is_empty() {
            let n = self.channel.poll_handshake(now, out)?;
            self.handshake.clear();
            self.handshake.extend_from_slice(&out[..n]);
            let mut ids: Vec<LinkId> = self
                .links
                .iter()
                .filter(|l| l.link.admin_up() && l.link.cfg.role != LinkRole::Never)
                .map(|l| l.link.id)
                .collect();
            if ids.is_empty() {
                ids = self
                    .links
                    .iter()
                    .filter(|l| l.link.admin_up())
                    .map(|l| l.link.id)
                    .collect();
            }
            ids.reverse();
            self.handshake_unsent = ids.is_empty();
            self.handshake_links = ids;
        }
        let link = self.handshake_links.pop()?;
        let n = self.handshake.len();
        out[..n].copy_from_slice(&self.handshake);
        if let Some(i) = self.slot(link) {
            self.links[i].link.on_other_sent(n);
        }
        Some(Transmit { link, len: n })
    }

    /// Builds and seals one datagram for link slot `i` if it has anything to send now.
    fn transmit_on(
        &mut self,
        i: usize,
        now: Instant,
        out: &mut [u8],
        force: bool,
    ) -> Option<Transmit> {
        // A link the peer has not been heard on has no address to send to (core side).
        if !self.links[i].link.can_carry() {
            return None;
        }
        let has_data = self.links[i].link.can_send_data(now) && self.queue_has_live(i);
        let l = &self.links[i].link;
        let ack_due = l.ack_deadline().is_some_and(|d| d <= now) || (has_data && l.ack_pending());
        let reply = l.probe_reply_pending();
        let probe = l.probe_due(now);
        let id = l.id;
        let relay = self.relays.iter().any(|(v, _)| *v == id)
            || self.relay_probes.iter().any(|(v, _)| *v == id);
        if !(has_data || ack_due || reply || probe.is_some() || force || relay) {
            return None;
        }
        let max_plain = out.len().saturating_sub(seal::OVERHEAD);
        // The frames go straight where the channel seals them in place (after the data header,
        // room left for the tag): a copy of each packet less than through a buffer of their own.
        let at = seal::DATA_HEADER_LEN.min(out.len());
        let mut w = FrameWriter::new(&mut out[at..at + max_plain]);
        let link = &mut self.links[i].link;
        let id = link.id;
        let mut ack_sent = false;
        if ack_due {
            if let Some(a) = link.take_ack(now) {
                ack_sent = w.push_ack(&a).is_ok();
            }
        }
        take_relays(&mut self.relays, id, |a| w.push_ack(a).is_ok());
        take_relays(&mut self.relay_probes, id, |p| w.push_probe(p).is_ok());
        let link = &mut self.links[i].link;
        if let Some(rid) = link.take_probe_reply() {
            let _ = w.push_probe(&Probe {
                link: id,
                id: rid,
                reply: true,
            });
        }
        if let Some(pid) = probe {
            if w.push_probe(&Probe {
                link: id,
                id: pid,
                reply: false,
            })
            .is_ok()
            {
                link.on_probe_sent(now, pid);
            }
        }
        while let Some(c) = self.controls.front() {
            if w.push_control(c).is_err() {
                break;
            }
            if matches!(c, Control::Close) {
                self.close_pending = false;
            }
            self.controls.pop_front();
        }
        let mut data_sent = false;
        if has_data {
            let room = w.remaining();
            if let Some((pid, _)) = self.links[i].q.head() {
                let need = self.pkts[pid as usize].data.len() + wire::DATA_HEADER_LEN;
                if need > max_plain {
                    // Never fits the caller's datagram buffer (max_packet set larger than the
                    // path allows): drop it, counted, rather than block the link.
                    let pid = self.pop_link_queue(i).expect("head checked live");
                    self.pkts[pid as usize].live -= 1;
                    self.pkts[pid as usize].acked = true;
                    self.unref(pid);
                    self.stats.dropped_too_large += 1;
                } else {
                    let mut head = [0u8; pack::MAX_PACKED_HEAD];
                    let p = &self.pkts[pid as usize];
                    // An INSTALL frame is longer than DATA: without room for it, whole.
                    let ctx_room = p.data.len() + wire::DATA_CTX_HEADER_LEN <= room;
                    let Packing {
                        form: dform,
                        head_len,
                        body: body_at,
                    } = if ctx_room {
                        self.packer.pack(&p.data, &mut head)
                    } else {
                        Packing::whole(DataForm::Whole)
                    };
                    let flen = dform.header_len() + head_len + p.data.len() - body_at;
                    if flen <= room {
                        let pid = self.pop_link_queue(i).expect("head checked live");
                        let token = self.token(pid);
                        let dlen = w.len() + flen + seal::OVERHEAD;
                        let link = &mut self.links[i].link;
                        let link_seq = link.on_data_sent(now, token, dlen);
                        let p = &mut self.pkts[pid as usize];
                        let h = DataHeader {
                            link: id,
                            link_seq,
                            seq: p.seq,
                            prev: p.prev,
                            form: dform,
                        };
                        w.push_data_parts(&h, &head[..head_len], &p.data[body_at..])
                            .expect("room checked");
                        if let DataForm::Install(c) = dform {
                            p.install = Some(c);
                        }
                        data_sent = true;
                        // App-limited when this link has nothing more of its own to send: backlog
                        // held in the user queues does not count, because the path scheduler only
                        // feeds a link within the horizon (a slow or in-flight-capped link gets
                        // nothing while it is behind), so its samples then show how it was fed,
                        // not what it can carry.
                        let idle = self.links[i].q.is_empty();
                        self.links[i].link.set_app_limited(idle);
                    }
                }
            }
        }
        let plen = w.len();
        if plen == 0 {
            return None;
        }
        if !data_sent {
            self.links[i].link.on_other_sent(plen + seal::OVERHEAD);
            if ack_sent {
                self.links[i].link.counters.ack_only_sent += 1;
            }
        }
        match self.channel.seal_in_place(now, out, plen) {
            Ok(len) => Some(Transmit { link: id, len }),
            Err(_) => None, // keys expired mid-rekey: the copy counts as lost and is resent
        }
    }

    // ------------------------------------------------------------------ receive

    /// A datagram arrived. `link` is the link it came on if the caller knows (the edge, by
    /// socket); the core passes None and gets back the link id read from the frames.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        link: Option<LinkId>,
        datagram: &mut [u8],
    ) -> Result<Option<LinkId>, SessionError> {
        let dlen = datagram.len();
        if super::cookie::is_reply(datagram) {
            // The core is under load: our next init proves our address with this cookie.
            return match self.channel.handle_cookie(now, datagram) {
                Ok(()) => Ok(link),
                Err(e) => {
                    self.stats.bad_datagrams += 1;
                    Err(SessionError::Seal(e))
                }
            };
        }
        let plain = match self.channel.open(now, datagram) {
            Ok(Some(p)) => {
                self.quiet_since = None;
                self.last_heard = Some(now);
                p
            }
            Ok(None) => {
                self.quiet_since = None;
                self.last_heard = Some(now);
                let renewed = self.channel.take_renewed();
                // Keys from an answer after the core closed our session: whatever the answer
                // says (a core that had not yet dropped the closed session rekeys it; it will
                // drop it, and the edge's next handshake after a second of silence gets a new
                // one), the closed session is done with.
                let reopened = self
                    .peer_closed
                    .is_some_and(|n| self.channel.stats().handshakes > n);
                if self.established && ((renewed && !self.closed) || reopened) {
                    // The core answered with a new session: it restarted, forgot ours, or
                    // closed it.
                    self.renew(now);
                }
                // A handshake answer: the core may have restarted with no flow contexts.
                self.packer.forget_confirmations();
                if self.established && self.channel.is_initiator() {
                    // A handshake answer: a rekey, or a restarted core that knows nothing of
                    // our links yet; announce them at once.
                    self.announced_at = None;
                }
                self.check_established(now);
                return Ok(link);
            }
            Err(e) => {
                self.stats.bad_datagrams += 1;
                return Err(SessionError::Seal(e));
            }
        };
        self.check_established(now);
        let mut seen_link = link;
        let mut res = std::mem::take(&mut self.resolved);
        let mut err = None;
        for f in wire::frames(plain) {
            let f = match f {
                Ok(f) => f,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            match f {
                Frame::Data(h, payload) => {
                    seen_link.get_or_insert(h.link);
                    let i = self.ensure_link(h.link, now);
                    self.links[i].link.on_data_received(now, h.link_seq, dlen);
                    let gap = self.links[i].link.take_gap();
                    if gap || now.saturating_since(self.links[i].last_relay) >= RELAY_EVERY {
                        self.links[i].last_relay = now;
                        self.relay_gap(now, i);
                    }
                    match h.form {
                        DataForm::Whole => {
                            self.reorder.insert(now, h.seq, h.prev, payload);
                        }
                        DataForm::Install(c) => {
                            // Before anything else, even for a duplicate: the sender takes
                            // the ACK as proof the context is installed.
                            self.unpacker.install(c, payload);
                            self.reorder.insert(now, h.seq, h.prev, payload);
                        }
                        DataForm::Packed(c) => {
                            // Rebuilt straight into the buffer the packet is delivered in.
                            let mut buf = self.reorder.spare();
                            match self.unpacker.unpack(c, payload, &mut buf) {
                                Ok(()) => {
                                    self.reorder.insert_owned(now, h.seq, h.prev, buf);
                                }
                                Err(_) => {
                                    self.reorder.recycle(buf);
                                    self.stats.unpack_errors += 1;
                                }
                            }
                        }
                    }
                }
                Frame::Ack(a) => {
                    // A relayed ACK travelled on another link: it says nothing about this one.
                    if a.delay_8us != RELAYED_ACK_DELAY {
                        seen_link.get_or_insert(a.link);
                    }
                    self.on_ack(now, &a, &mut res);
                }
                Frame::Probe(p) => {
                    if !(p.reply && p.id & RELAYED_PROBE_BIT != 0) {
                        seen_link.get_or_insert(p.link);
                    }
                    let i = self.ensure_link(p.link, now);
                    if p.reply {
                        self.links[i].link.on_probe_reply(now, p.id);
                    } else {
                        self.links[i].link.on_probe_request(p.id);
                        self.relay_probe_reply(now, i, p.id);
                    }
                }
                Frame::Control(c) => self.on_control(now, c),
            }
        }
        self.resolved = res;
        if let Some(i) = seen_link.and_then(|l| self.slot(l)) {
            self.links[i].link.set_heard(true);
        }
        self.collect_link_events();
        if let Some(e) = err {
            self.stats.bad_datagrams += 1;
            return Err(SessionError::Wire(e));
        }
        Ok(seen_link)
    }

    /// Also answers a probe on link slot `i` via the best other usable link: if the probed
    /// link's return path is stalled, the sender still learns that its forward path works.
    fn relay_probe_reply(&mut self, now: Instant, i: usize, id: u32) {
        let probed = self.links[i].link.id;
        let via = self
            .links
            .iter()
            .filter(|l| l.link.usable() && l.link.id != probed)
            .min_by_key(|l| l.link.forward_delay_us(now))
            .map(|l| l.link.id);
        if let Some(via) = via {
            let p = Probe {
                link: probed,
                id: id | RELAYED_PROBE_BIT,
                reply: true,
            };
            self.relay_probes
                .retain(|(v, q)| !(*v == via && q.link == probed));
            self.relay_probes.push((via, p));
        }
    }

    /// Relays link slot `i`'s ACK state on the fastest other usable link: on a gap, so the
    /// sender resends about one slow-link delay earlier; periodically, so a stalled return path
    /// does not make a delivering link look dead. Also when the other link's RTT is the higher
    /// one: a return path that stalls (an LTE downlink's dead spell) is slower still, and
    /// without the relay the sender starved the link (in-flight cap reached, no ACKs), timed
    /// it out and resent on the other link what had already arrived.
    fn relay_gap(&mut self, now: Instant, i: usize) {
        let slow = &self.links[i].link;
        let Some(ack) = slow.relay_ack() else { return };
        let via = self
            .links
            .iter()
            .filter(|l| l.link.usable() && l.link.id != slow.id)
            .min_by_key(|l| l.link.forward_delay_us(now))
            .map(|l| l.link.id);
        if let Some(via) = via {
            self.relays
                .retain(|(v, a)| !(*v == via && a.link == ack.link));
            self.relays.push((via, ack));
        }
    }

    fn check_established(&mut self, now: Instant) {
        if !self.established && self.channel.is_established() {
            self.established = true;
            self.events.push_back(Event::Established);
            // Tell the core about our links (this also completes its side of the handshake).
            let ids: Vec<LinkId> = self.links.iter().map(|l| l.link.id).collect();
            for id in ids {
                self.announce_link(id);
            }
            self.announced_at = Some(now);
            self.hint_sent = None;
            self.update_reorder_hint(now);
            if self.channel.is_initiator() && self.controls.is_empty() {
                self.controls.push_back(Control::ReorderHint {
                    wait_us: self.reorder.wait().as_micros() as u32,
                });
            }
        }
    }

    /// Starts afresh over the keys of a handshake the core answered with a new session (it
    /// restarted, or forgot ours after a long silence): its sequence numbers, flow contexts,
    /// link and reorder state begin anew, so ours must too, or its data would be taken for
    /// duplicates of ours and ours would wait on packets it never saw. The links keep their
    /// settings (role, weight, caps, names, admin state) and counters, the session its
    /// classes and counters; packets queued or in flight are dropped (the clients' transports
    /// send them again). Then `check_established` announces the links as at the first
    /// handshake.
    fn renew(&mut self, now: Instant) {
        let mut fresh = Session::new(self.channel.take(), self.cfg.clone(), now);
        let classes = self.classes.clone();
        fresh.set_classes(&classes);
        let mut res = Vec::new();
        for l in &self.links {
            let old = &l.link;
            let mut link = Link::new(old.id, old.cfg, now);
            link.set_admin(old.admin_up(), now, &mut res);
            link.set_heard(old.heard());
            link.counters = old.counters;
            let _ = link.take_state_change();
            if old.state() != link.state() {
                fresh.events.push_back(Event::LinkState {
                    link: old.id,
                    state: link.state(),
                });
            }
            fresh.links.push(LinkSlot {
                link,
                q: LinkQueue::default(),
                peer_cap_bps: l.peer_cap_bps,
                last_relay: Instant::ZERO,
                name: l.name.clone(),
                copy_credit: 0,
            });
        }
        fresh.reorder.stats = self.reorder.stats;
        fresh.stats = std::mem::take(&mut self.stats);
        fresh.stats.renewals += 1;
        fresh.last_heard = self.last_heard;
        let mut events = std::mem::take(&mut self.events);
        events.append(&mut fresh.events);
        fresh.events = events;
        *self = fresh;
    }

    /// The core learns links from the frames it receives.
    fn ensure_link(&mut self, id: LinkId, now: Instant) -> usize {
        match self.slot(id) {
            Some(i) => i,
            None => {
                // Known from a frame; until one arrives on it, there is no address to reply to.
                let mut link = Link::new(id, LinkConfig::default(), now);
                link.set_heard(false);
                self.links.push(LinkSlot {
                    link,
                    q: LinkQueue::default(),
                    peer_cap_bps: None,
                    last_relay: Instant::ZERO,
                    name: String::new(),
                    copy_credit: 0,
                });
                self.links.len() - 1
            }
        }
    }

    /// Whether another link than slot `i` could take its data now (one that is usable: Up or
    /// Degraded, not suspected dead, its role allows data). Asked at each of the link's timer
    /// calls, never stored: a stored answer goes stale when another link changes.
    fn alternative(&self, i: usize) -> bool {
        (0..self.links.len()).any(|j| j != i && self.links[j].link.usable())
    }

    fn on_ack(&mut self, now: Instant, a: &Ack, res: &mut Vec<Resolved>) {
        let Some(i) = self.slot(a.link) else { return };
        res.clear();
        self.links[i].link.on_ack(now, a, res);
        for r in res.drain(..) {
            self.on_resolved(r, Some(a.link));
        }
        // Collected first (the link is borrowed); empty, as it nearly always is, it allocates
        // nothing.
        let late: Vec<u32> = self.links[i].link.take_late_acks().collect();
        for t in late {
            self.on_late_ack(t);
        }
    }

    fn on_control(&mut self, now: Instant, c: Control) {
        match c {
            Control::LinkConfig {
                link,
                role,
                weight,
                down_cap_bps,
            } => {
                let cfg = LinkConfig {
                    role,
                    weight,
                    rate_cap_bps: (down_cap_bps > 0).then_some(down_cap_bps),
                };
                let i = self.ensure_link(link, now);
                self.links[i].link.set_config(cfg);
                if role == LinkRole::Never {
                    self.requeue_link(i);
                }
            }
            Control::LinkRemoved { link } => self.remove_link(link, now),
            Control::LinkName { link, name } => {
                // Shown by status: printable and short, or not taken.
                if name.len() <= wire::LINK_NAME_MAX && name.chars().all(|c| !c.is_control()) {
                    let i = self.ensure_link(link, now);
                    self.links[i].name = name;
                }
            }
            Control::ReorderHint { wait_us } => {
                self.reorder.set_wait(Duration::from_micros(wait_us as u64));
            }
            Control::Close => {
                if !self.closed {
                    self.closed = true;
                    self.events.push_back(Event::Closed);
                    if self.channel.is_initiator() {
                        // The core ended our session (it is shutting down, or dropped it): an
                        // edge never gives up, it handshakes at once (and again on the
                        // channel's retry timer) and starts afresh when the core answers.
                        self.peer_closed = Some(self.channel.stats().handshakes);
                        self.channel.request_handshake();
                    }
                }
            }
        }
    }

    /// Closes the session: a Close frame goes to the peer; `send` refuses from now on.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.close_pending = true;
            self.controls.push_back(Control::Close);
        }
    }

    // ------------------------------------------------------------------ deliver, events, timers

    /// The next restored inner packet, in order per flow.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Delivered> {
        let _ = now;
        self.reorder.poll()
    }

    /// Gives a delivered packet's buffer back (optional; avoids allocations).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.reorder.recycle(buf);
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next time `handle_timeout` (or `poll_transmit`) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Instant| t = Some(t.map_or(x, |y: Instant| y.min(x)));
        if self.channel.is_initiator() {
            if !self.handshake_links.is_empty() {
                min(Instant::ZERO);
            }
            if let Some(x) = self.channel.poll_timeout() {
                min(x);
            }
        }
        if let Some(x) = self.reorder.poll_timeout() {
            min(x);
        }
        // What poll_transmit does nothing for (before the handshake, once closed) has no
        // timer either: a deadline nobody serves would be due at every wake-up.
        if !self.established || (self.closed && !self.close_pending) {
            return t;
        }
        if let Some(q) = self.quiet_since.filter(|_| self.channel.is_initiator()) {
            min(q + REHANDSHAKE_AFTER);
        }
        // Frames waiting for a link are due now only if a link can carry them: with every link
        // admin-down (or a relay's link taken down) they wait, and asking for a wake-up now
        // would be a busy loop.
        let carried = |id: LinkId| {
            self.slot(id)
                .is_some_and(|i| self.links[i].link.can_carry())
        };
        let any_up = self.links.iter().any(|l| l.link.can_carry());
        if (any_up && !self.controls.is_empty())
            || self.relays.iter().any(|(v, _)| carried(*v))
            || self.relay_probes.iter().any(|(v, _)| carried(*v))
        {
            min(Instant::ZERO);
        }
        for (i, l) in self.links.iter().enumerate() {
            if let Some(x) = l.link.poll_timeout(self.alternative(i)) {
                min(x);
            }
            let queued = !l.q.is_empty();
            // Only links with something queued wake the pacer: new data is scheduled when
            // some link sends (the horizon admits data to any eligible link with a short queue).
            if queued && l.link.usable() && !l.link.cwnd_limited() {
                min(l.link.next_send_time());
            }
        }
        if let Some((_, sent)) = self.hint_sent {
            min(sent + HINT_REFRESH);
        }
        t
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reorder.handle_timeout(now);
        let mut res = std::mem::take(&mut self.resolved);
        for i in 0..self.links.len() {
            let alternative = self.alternative(i);
            if self.links[i]
                .link
                .poll_timeout(alternative)
                .map_or(true, |t| t > now)
            {
                continue;
            }
            res.clear();
            self.links[i].link.on_timeout(now, alternative, &mut res);
            let id = self.links[i].link.id;
            for r in res.drain(..) {
                self.on_resolved(r, Some(id));
            }
            if !self.links[i].link.usable() {
                self.requeue_link(i);
            }
        }
        self.resolved = res;
        self.collect_link_events();
    }

    // ------------------------------------------------------------------ stats

    pub fn stats(&self) -> SessionStats {
        let mut s = self.stats.clone();
        s.handshakes = self.channel.stats().handshakes;
        s.links = self
            .links
            .iter()
            .map(|l| {
                let k = &l.link;
                LinkStats {
                    id: k.id,
                    role: k.cfg.role,
                    state: k.state(),
                    srtt: k.srtt(),
                    rttvar: k.rttvar(),
                    min_rtt: k.min_rtt(),
                    loss: k.loss(),
                    delivery_rate_bps: k.delivery_rate_bps(),
                    pacing_rate_bps: k.pacing_rate() * 8,
                    cwnd_bytes: k.cwnd(),
                    inflight_bytes: k.inflight(),
                    counters: k.counters,
                    queued_packets: l.q.len(),
                    queued_bytes: l.q.bytes,
                }
            })
            .collect();
        s.pack = self.packer.stats();
        s.rekeys = self.channel.stats().rekeys;
        s.queued_packets = self.conn.len();
        s.queued_bytes = self.conn.bytes();
        s.reorder = self.reorder.stats;
        s.reorder_wait = self.reorder.wait();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::seal::Keypair;

    /// An edge's session (keys fixed) with `cfg` and no links.
    fn session_with(cfg: SessionConfig) -> Session {
        let k = Keypair::from_private([1; 32]);
        let ch = Channel::initiator(&k, Keypair::from_private([2; 32]).public, Instant(0));
        Session::new(ch, cfg, Instant(0))
    }

    /// One class `id` with `mode` and `priority` (weight 1) beside the default.
    fn one_class(id: ClassId, mode: Mode, priority: u8) -> SessionConfig {
        SessionConfig {
            classes: vec![ClassConfig {
                id,
                mode,
                priority,
                weight: 1,
            }],
            ..Default::default()
        }
    }

    fn session() -> Session {
        let mut s = session_with(SessionConfig::default());
        s.add_link(1, LinkConfig::default(), Instant(0));
        s.add_link(2, LinkConfig::default(), Instant(0));
        s
    }

    /// A packet of `user`'s own flow (flow id = user id), default class.
    fn meta(user: u32) -> PacketMeta {
        meta_of(user, user as u64, 0)
    }

    fn meta_of(user: u32, flow: u64, class: ClassId) -> PacketMeta {
        PacketMeta { user, flow, class }
    }

    /// Queues `n` packets of 1000 bytes of user 1 at time 0 and schedules them onto the links.
    fn send_and_schedule(s: &mut Session, n: usize) {
        for _ in 0..n {
            s.send(Instant(0), &[0u8; 1000], meta(1)).unwrap();
        }
        s.schedule(Instant(0));
    }

    /// Emulates sending the head of link slot `i`: the copy is now in flight on that link.
    fn send_head(s: &mut Session, i: usize) -> PktId {
        let pid = s.pop_link_queue(i).unwrap();
        let token = s.token(pid);
        s.links[i].link.on_data_sent(Instant(0), token, 1000);
        pid
    }

    /// Queues one packet of `len` bytes and sends it: (the link slot it went to, its id).
    fn send_one(s: &mut Session, len: usize) -> (usize, PktId) {
        s.send(Instant(0), &vec![0u8; len], meta(1)).unwrap();
        s.schedule(Instant(0));
        let i = if s.links[0].q.is_empty() { 1 } else { 0 };
        (i, send_head(s, i))
    }

    #[test]
    fn a_handshake_made_with_no_link_up_goes_on_the_first_link_up_at_once() {
        let mut s = session();
        s.set_link_admin(1, false, Instant(0));
        s.set_link_admin(2, false, Instant(0));
        let mut out = vec![0u8; 2048];
        assert_eq!(s.poll_transmit(Instant(0), &mut out), None, "no link");
        // 300 ms later link 2 comes up: the handshake goes now, not at the 1 s retry.
        let t = Instant(300_000);
        s.set_link_admin(2, true, t);
        assert_eq!(s.poll_timeout(), Some(Instant::ZERO));
        let tx = s.poll_transmit(t, &mut out).expect("the handshake");
        assert_eq!(tx.link, 2);
        assert!(seal::is_init(&out[..tx.len]));
        // Once: the next link up waits for the retry with the others.
        s.set_link_admin(1, true, t);
        assert_eq!(s.poll_transmit(t, &mut out), None);
    }

    #[test]
    fn prev_links_packets_of_a_flow() {
        let mut s = session();
        for u in [7, 8, 7, 7] {
            s.send(Instant(0), &[0u8; 100], meta(u)).unwrap();
        }
        let seqs: Vec<(u32, u16)> = s.pkts.iter().map(|p| (p.seq, p.prev)).collect();
        assert_eq!(seqs, vec![(1, 0), (2, 0), (3, 2), (4, 1)]);
    }

    /// The store holds at most `max_stored_packets` slots, each no larger than the largest
    /// packet it held: small packets after large ones do not grow it, and a slot freed by an
    /// ACK is taken again (the budget counts slots times `max_packet`).
    #[test]
    fn the_packet_store_is_bounded_in_slots_and_each_slot_in_bytes() {
        let cfg = SessionConfig {
            max_stored_packets: 8,
            ..SessionConfig::default()
        };
        let mut s = session_with(cfg);
        s.add_link(1, LinkConfig::default(), Instant(0));
        for u in 0..8 {
            s.send(Instant(0), &[0u8; 1000], meta(u)).unwrap();
        }
        assert_eq!(
            s.send(Instant(0), &[0u8; 40], meta(9)),
            Err(SendError::QueueFull),
            "a ninth packet, however small, has no slot"
        );
        assert_eq!(s.stats().refused, 1);
        // One is acked: its slot is free again, and keeps no more than it needs.
        s.schedule(Instant(0));
        let pid = send_head(&mut s, 0);
        s.on_resolved(
            Resolved {
                token: s.token(pid),
                acked: true,
            },
            None,
        );
        s.send(Instant(0), &[0u8; 1200], meta(9)).unwrap();
        assert_eq!(s.pkts.len(), 8);
        assert!(s.pkts.iter().all(|p| p.data.capacity() <= 1200));
    }

    /// The flow map starts afresh past `max_flows`, and gives its memory back.
    #[test]
    fn the_flow_map_is_bounded_and_shrinks_when_it_starts_afresh() {
        let cfg = SessionConfig {
            max_flows: 1000,
            per_user_queue_bytes: 1 << 30,
            total_queue_bytes: 1 << 30,
            ..SessionConfig::default()
        };
        let mut s = session_with(cfg);
        let mut peak = 0;
        for f in 0..5000u64 {
            let m = meta_of(1, f, 0);
            s.send(Instant(0), &[0u8; 20], m).unwrap();
            peak = peak.max(s.flows.capacity());
            assert!(s.flows.len() <= 1001);
        }
        assert!(peak < 4096, "{peak}");
        let m = meta_of(1, 4999, 0);
        s.send(Instant(0), &[0u8; 20], m).unwrap();
        assert_eq!(
            s.pkts.last().unwrap().prev,
            1,
            "a flow still known keeps its chain"
        );
    }

    #[test]
    fn lost_packet_is_resent_on_the_other_link_ahead_of_new_data() {
        let mut s = session();
        send_and_schedule(&mut s, 4);
        assert!(s.conn.is_empty(), "all assigned to links");
        let on1 = s.links[0].q.len();
        assert!(on1 > 0);
        let lost = send_head(&mut s, 0);
        let seq = s.pkts[lost as usize].seq;
        // More new data arrives and is queued on the links.
        send_and_schedule(&mut s, 4);
        // Link 1 declares the copy lost: it goes to the resend queue, then to link 2's head.
        let mut res = vec![];
        s.links[0].link.drain_in_flight(&mut res);
        assert_eq!(
            res,
            vec![Resolved {
                token: s.token(lost),
                acked: false
            }]
        );
        s.on_resolved(res[0], Some(1));
        assert_eq!(s.resend.len(), 1);
        s.schedule(Instant(0));
        assert!(s.resend.is_empty());
        // Ahead of all new data on the other link (only sparse packets, each batch's last,
        // which left its user idle, may go first: their tier is above resends).
        let pids: Vec<PktId> = std::iter::from_fn(|| s.pop_link_queue(1)).collect();
        let order: Vec<u32> = pids.iter().map(|&p| s.pkts[p as usize].seq).collect();
        let at = order
            .iter()
            .position(|&q| q == seq)
            .expect("resent on link 2");
        assert!(
            order[..at].iter().all(|&q| q == 4 || q == 8),
            "resend first on the other link: {order:?}"
        );
        assert_eq!(s.stats.resends, 1);
        assert_eq!(s.pkts[lost as usize].seq, seq, "a resend keeps its seq");
    }

    #[test]
    fn a_late_ack_drops_the_queued_resend() {
        let mut s = session();
        let (i, pid) = send_one(&mut s, 1000);
        let token = s.token(pid);
        // Declared lost (say by the link's timeout): a resend is queued on the other link.
        s.on_resolved(
            Resolved {
                token,
                acked: false,
            },
            Some(s.links[i].link.id),
        );
        s.schedule(Instant(0));
        assert_eq!(s.links[1 - i].q.len(), 1);
        // The ACK of the first copy comes after all: the resend is not sent, the slot is freed.
        s.on_late_ack(token);
        assert_eq!(s.stats.late_acks, 1);
        assert_eq!(s.pop_link_queue(1 - i), None);
        assert_eq!(s.free, vec![pid]);
        // A late ACK for a slot since reused (new generation) is ignored.
        s.send(Instant(0), &[0u8; 1000], meta(1)).unwrap();
        assert_ne!(s.token(pid), token);
        s.on_late_ack(token);
        assert_eq!(s.stats.late_acks, 1);
        assert!(!s.pkts[pid as usize].acked);
    }

    #[test]
    fn a_dead_head_is_dropped_and_the_live_packet_behind_it_stays_queued() {
        let mut s = session();
        send_and_schedule(&mut s, 6);
        // The head of a queue of several has since been acked (a copy delivered elsewhere).
        let i = if s.links[0].q.len() >= 2 { 0 } else { 1 };
        let n = s.links[i].q.len();
        assert!(n >= 2);
        let (dead, _) = s.links[i].q.head().unwrap();
        s.pkts[dead as usize].acked = true;
        assert!(s.queue_has_live(i));
        assert_eq!(s.links[i].q.len(), n - 1, "only the dead head goes");
        let live = s
            .pop_link_queue(i)
            .expect("the live packet is still queued");
        assert_ne!(live, dead);
        assert!(s.free.contains(&dead));
    }

    #[test]
    fn acked_copy_is_not_resent_and_frees_the_packet() {
        let mut s = session();
        let (i, pid) = send_one(&mut s, 500);
        s.on_resolved(
            Resolved {
                token: s.token(pid),
                acked: true,
            },
            Some(s.links[i].link.id),
        );
        assert_eq!(s.free, vec![pid]);
        assert!(s.resend.is_empty());
    }

    #[test]
    fn removing_a_link_requeues_queued_and_in_flight_packets() {
        let mut s = session();
        send_and_schedule(&mut s, 6);
        let queued_on_1 = s.links[0].q.len();
        assert!(queued_on_1 >= 2);
        send_head(&mut s, 0);
        s.remove_link(1, Instant(0));
        assert_eq!(s.links.len(), 1);
        assert_eq!(
            s.resend.len(),
            queued_on_1,
            "in flight + queued move to the resend queue"
        );
        s.schedule(Instant(0));
        // The resends go to the remaining link as far as its horizon allows, the rest wait at
        // the head of the resend queue: nothing is lost.
        let placed: usize = s.links.iter().map(|l| l.q.len()).sum();
        assert!(placed >= 1 && s.resend.len() < queued_on_1);
        assert_eq!(placed + s.resend.len() + s.conn.len(), 6);
        assert!(matches!(
            s.controls.back(),
            Some(Control::LinkRemoved { link: 1 })
        ));
    }

    #[test]
    fn packets_wait_for_a_link_when_the_last_one_goes() {
        let mut s = session();
        send_and_schedule(&mut s, 3);
        send_head(&mut s, 0);
        s.remove_link(1, Instant(0));
        s.set_link_admin(2, false, Instant(0));
        s.schedule(Instant(0));
        assert_eq!(s.resend.len(), 3, "held, not dropped");
        s.add_link(5, LinkConfig::default(), Instant(1000));
        s.schedule(Instant(1000));
        assert!(s.resend.is_empty());
        assert_eq!(s.links[1].q.len(), 3);
        let pids: Vec<PktId> = std::iter::from_fn(|| s.pop_link_queue(1)).collect();
        let mut seqs: Vec<u32> = pids.iter().map(|&p| s.pkts[p as usize].seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn priority_and_resend_tiers_come_before_new_data() {
        let cfg = one_class(3, Mode::Pinned(2), 2);
        let mut s = session_with(cfg);
        s.add_link(2, LinkConfig::default(), Instant(0));
        send_and_schedule(&mut s, 3);
        s.send(Instant(0), &[0u8; 100], meta_of(2, 9, 3)).unwrap();
        s.schedule(Instant(0));
        let pids: Vec<PktId> = std::iter::from_fn(|| s.pop_link_queue(0)).collect();
        let order: Vec<(u32, ClassId)> = pids
            .iter()
            .map(|&p| (s.pkts[p as usize].seq, s.pkts[p as usize].class))
            .collect();
        // The flow's first packet (nothing of its flow waiting) in the head tier, then the
        // priority packet, then the bulk. The user's last (it left the user idle) is flagged
        // sparse too, but packet 2 of its flow waits: it stays behind it (it went ahead once,
        // and a bulk flow's packets were reordered at the sender).
        assert_eq!(order, vec![(1, 0), (4, 3), (2, 0), (3, 0)]);
    }

    /// What each link slot's queue holds, as the packets' `seq`.
    fn queued_seqs(s: &Session) -> Vec<Vec<u32>> {
        (0..s.links.len())
            .map(|i| {
                s.links[i]
                    .q
                    .tiers
                    .iter()
                    .flatten()
                    .map(|&p| s.pkts[p as usize].seq)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn small_sparse_packets_get_a_copy_on_a_second_link_within_the_budget() {
        let mut s = session_with(SessionConfig::default());
        s.add_link(1, LinkConfig::default(), Instant(0));
        s.add_link(2, LinkConfig::default(), Instant(0));
        // At the start the budget is empty: one copy.
        s.send(Instant(0), &[0u8; 100], meta(1)).unwrap();
        s.schedule(Instant(0));
        assert_eq!(s.stats().sparse_copies, 0);
        assert_eq!(queued_seqs(&s).concat(), vec![1]);
        // 100 ms later the budget has room: a copy at the head of each link's queue.
        s.send(Instant(100_000), &[0u8; 100], meta(2)).unwrap();
        s.schedule(Instant(100_000));
        assert_eq!(s.stats().sparse_copies, 1);
        let q = queued_seqs(&s);
        assert!(q[0].contains(&2) && q[1].contains(&2), "{q:?}");
        // A bulk-sized packet, a bare TCP ACK and a packet of a flow with a backlog are not
        // copied.
        use crate::proto::packet::golden::ip4;
        let mut tcp = [0u8; 20];
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        let ack = ip4(6, [10, 0, 0, 1], [10, 0, 0, 2], &tcp);
        assert!(packet::is_bare_tcp_ack(&ack));
        let mut psh = tcp.to_vec();
        psh[13] = 0x18;
        psh.extend_from_slice(&[7; 64]);
        assert!(!packet::is_bare_tcp_ack(&ip4(
            6,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &psh
        )));
        s.send(Instant(200_000), &[0u8; 1000], meta(3)).unwrap();
        s.send(Instant(200_000), &ack, meta(4)).unwrap();
        s.schedule(Instant(200_000));
        assert_eq!(s.stats().sparse_copies, 1);
        assert_eq!(queued_seqs(&s).concat().len(), 5, "{:?}", queued_seqs(&s));
    }

    #[test]
    fn packets_pinned_to_a_missing_link_are_dropped_and_counted() {
        let cfg = one_class(4, Mode::Pinned(9), 0);
        let mut s = session_with(cfg);
        s.add_link(1, LinkConfig::default(), Instant(0));
        s.send(Instant(0), &[0u8; 100], meta_of(1, 1, 4)).unwrap();
        s.send(Instant(0), &[0u8; 100], meta(2)).unwrap();
        s.schedule(Instant(0));
        assert_eq!(s.stats.dropped_no_path, 1);
        assert!(s.conn.is_empty());
        assert_eq!(s.links[0].q.len(), 1, "other traffic is not held up");
    }

    #[test]
    fn queue_full_is_reported_and_can_send_backs_off() {
        let cfg = SessionConfig {
            per_user_queue_bytes: 3000,
            ..Default::default()
        };
        let mut s = session_with(cfg);
        assert!(s.can_send(&meta(1)));
        s.send(Instant(0), &[0u8; 1500], meta(1)).unwrap();
        s.send(Instant(0), &[0u8; 1500], meta(1)).unwrap();
        assert!(!s.can_send(&meta(1)));
        assert_eq!(
            s.send(Instant(0), &[0u8; 1500], meta(1)),
            Err(SendError::QueueFull)
        );
        assert!(s.can_send(&meta(2)));
        assert_eq!(
            s.send(Instant(0), &[0u8; 1600], meta(2)),
            Err(SendError::TooLarge)
        );
        assert_eq!(s.stats().refused, 2);
    }

    #[test]
    fn errors_say_what_went_wrong() {
        use std::error::Error as _;
        assert_eq!(SendError::QueueFull.to_string(), "send queue full");
        let e = SessionError::Wire(WireError::Truncated);
        assert_eq!(e.to_string(), "malformed frame: frame truncated");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("frame truncated")
        );
        let e: Box<dyn std::error::Error> = Box::new(SessionError::Seal(SealError::Replay));
        assert!(e.to_string().starts_with("datagram did not open: "), "{e}");
    }
}
