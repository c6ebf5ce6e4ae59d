//! The three schedulers of the design.
//!
//! - Connection order ([`ConnOrder`], default [`drr::DrrOrder`]): which user's queued packet
//!   goes next. Deficit round robin across users; classes with strict priority and weights.
//! - Path choice ([`path::ByMode`]): which link(s) carry a packet. Earliest expected
//!   arrival by default; weighted, redundant, backup (active/standby) and pinned per class.
//! - Data order ([`resend::ResendQueue`]): lost packets are resent ahead of new data on the
//!   fastest other link.
//!
//! The schedulers see packets only as [`PktId`] handles plus their length, user and class; the
//! session owns the bytes.

pub(crate) mod drr;
pub(crate) mod path;
pub(crate) mod resend;

use crate::proto::wire::LinkRole;
use crate::proto::{Instant, LinkId};

/// Traffic class, assigned by the caller's classifier.
pub(crate) type ClassId = u8;

/// Handle of a packet stored by the session.
pub(crate) type PktId = u32;

/// How a class uses the links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Spread over the links by earliest expected arrival (the default).
    #[default]
    Aggregate,
    /// Spread over the links in proportion to their configured weights (within capacity).
    Weighted,
    /// A copy on each of the two best links; the receiver drops the later copy.
    Redundant,
    /// Active/standby: one link at a time (best role first), switching only when it goes down.
    Backup,
    /// Only this link; held in the queue while it is unusable.
    Pinned(LinkId),
}

/// One class: how it is routed and how it competes for sending time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassConfig {
    pub id: ClassId,
    pub mode: Mode,
    /// Strict priority: a higher value is always served first (and jumps link queues if > 0).
    pub priority: u8,
    /// DRR weight among classes of equal priority.
    pub weight: u32,
}

impl ClassConfig {
    pub(crate) const DEFAULT: ClassConfig = ClassConfig {
        id: 0,
        mode: Mode::Aggregate,
        priority: 0,
        weight: 1,
    };
}

impl Default for ClassConfig {
    fn default() -> Self {
        ClassConfig::DEFAULT
    }
}

/// A queued packet as the connection-order scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) pkt: PktId,
    pub(crate) len: u32,
    pub(crate) user: u32,
    pub(crate) class: ClassId,
    /// On enqueue, set by the session: the packet's flow had nothing waiting to be sent (a
    /// request/response exchange, a DNS query, the ACKs of an upload); such packets go before
    /// their user's backlog. On dequeue, set by the scheduler: that, or the user had nothing
    /// else queued (a sparse, e.g. interactive, user). The session lets sparse packets skip the
    /// link queues, as FQ-CoDel favours sparse flows; DRR still bounds what any user gets.
    pub(crate) sparse: bool,
}

/// The queue for this user (or all users) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

/// Connection order: per-user queues and the order in which they are served.
pub(crate) trait ConnOrder {
    /// Replaces the class table (unknown classes behave as [`ClassConfig::DEFAULT`]).
    fn set_classes(&mut self, classes: &[ClassConfig]);
    /// Whether a packet of `len` bytes from `user` would be accepted now.
    fn can_accept(&self, user: u32, len: u32) -> bool;
    /// Bytes queued for `user`.
    fn user_bytes(&self, user: u32) -> u64;
    fn enqueue(&mut self, e: Entry) -> Result<(), QueueFull>;
    /// The next packet in this scheduler's order among classes for which `ready` is true.
    fn dequeue(&mut self, ready: &mut dyn FnMut(ClassId) -> bool) -> Option<Entry>;
    /// Puts back a packet just dequeued (the path scheduler could not place it after all).
    fn undo_dequeue(&mut self, e: Entry);
    fn len(&self) -> usize;
    fn bytes(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the path scheduler knows about one link at decision time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkView {
    pub(crate) id: LinkId,
    pub(crate) role: LinkRole,
    /// Up or Degraded, not suspected dead, not admin-down.
    pub(crate) usable: bool,
    /// Degraded links are used like secondaries.
    pub(crate) degraded: bool,
    pub(crate) weight: u32,
    /// Expected arrival at the peer of a packet appended to this link's queue now.
    pub(crate) arrival: Instant,
    /// Expected arrival of a packet put at the head of this link's queue now.
    pub(crate) arrival_head: Instant,
    /// Expected arrival of a resend queued now (behind the priority and resend tiers).
    pub(crate) arrival_resend: Instant,
    /// One-way delay estimate.
    pub(crate) one_way_us: u64,
    /// Time one full-size packet takes at this link's pacing rate.
    pub(crate) packet_time_us: u64,
}

impl LinkView {
    /// Preference tier: 0 primary, 1 secondary (or degraded primary), 2 backup, None = never.
    pub(crate) fn tier(&self) -> Option<u8> {
        match self.role {
            LinkRole::Never => None,
            LinkRole::Primary if !self.degraded => Some(0),
            LinkRole::Primary | LinkRole::Secondary => Some(1),
            LinkRole::Backup => Some(2),
        }
    }
}

#[cfg(test)]
impl LinkView {
    /// A usable link for the scheduler tests (weight 1, 0.5 ms a packet): `owd_us` one-way; a
    /// packet put at the head of its queue (or a resend) arrives at `head_us`, one appended at
    /// `tail_us`.
    pub(crate) fn for_test(
        id: LinkId,
        role: LinkRole,
        owd_us: u64,
        head_us: u64,
        tail_us: u64,
    ) -> Self {
        LinkView {
            id,
            role,
            usable: true,
            degraded: false,
            weight: 1,
            arrival: Instant(tail_us),
            arrival_head: Instant(head_us),
            arrival_resend: Instant(head_us),
            one_way_us: owd_us,
            packet_time_us: 500,
        }
    }
}

/// The links a packet was assigned to (indices into the `links` slice), at most two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    One(usize),
    Two(usize, usize),
    /// Every allowed link is saturated (beyond the horizon): keep it in the user queue.
    Wait,
    /// No allowed link is usable at all.
    NoPath,
}
