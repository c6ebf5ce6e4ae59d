//! The core's side of many sessions: handshakes, demultiplexing and link addresses.
//!
//! Sans-IO like the rest of `proto`: the caller owns the sockets and passes each datagram with
//! the address it came from (any `Copy + Eq + Hash` type: a `SocketAddr`, a TCP connection id,
//! or the simulator's link index). The endpoint
//! - answers handshake inits from allowed keys (one session per peer key; a new init from a
//!   known key and epoch is a rekey of its session, so flows survive an edge's rekey; the
//!   answer tells the edge whether its session goes on or starts anew: after a restart of the
//!   core, or once it forgot an idle session, the edge learns it at its next handshake, which
//!   it makes after a second of silence),
//! - routes data datagrams to their session by receiver index, dropping unknown ones cheaply,
//! - remembers, per session and link, the address the link's packets last came from, so replies
//!   leave over the same link even behind NAT and after a modem changes address,
//! - forgets sessions silent for [`SESSION_IDLE`] (the edge restarted or went away).

use super::fasthash::FastMap;
use core::time::Duration;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use super::cookie;
use super::reorder::Delivered;
use super::seal::{self, Acceptor, Admission, Channel, Keypair, SealError};
use super::session::{Event, PacketMeta, SendError, Session, SessionConfig};
use super::{Instant, LinkId};

/// Identifies a session on the core.
pub(crate) type SessionId = u32;

/// A session that has received nothing for this long is dropped.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(180);

/// Handshake answers (responses, cookie replies) queued for `poll_transmit` at most.
const MAX_RESPONSES: usize = 1024;

/// An allowed peer (from `config peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub public: [u8; 32],
}

/// What happened to a datagram given to [`Endpoint::handle_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A handshake: a response is queued for `poll_transmit`.
    Handshake { session: SessionId, new: bool },
    /// Data for a session, received on `link` (if the frames named one).
    Data {
        session: SessionId,
        link: Option<LinkId>,
    },
}

/// Why a datagram was dropped. Counted in [`EndpointStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// No session has this receiver index (stale, forged, or from before a restart).
    UnknownIndex,
    /// Neither a handshake init nor a datagram with a receiver index.
    Malformed,
    /// The handshake was refused.
    Handshake(SealError),
    /// The session refused it (bad authentication, replay, malformed frames).
    Session,
}

/// Counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct EndpointStats {
    sessions_started: u64,
    sessions_ended: u64,
    pub(crate) dropped: HashMap<Drop, u64>,
    /// Datagrams a session wanted to send on a link whose address is not known yet.
    pub(crate) no_address: u64,
}

struct Slot<A> {
    session: Session,
    peer: usize,
    addrs: FastMap<LinkId, A>,
    /// Where the last datagram of any link came from (for links not yet named).
    last_addr: A,
    last_heard: Instant,
}

/// Many sessions behind one socket. See the module docs.
pub struct Endpoint<A> {
    acceptor: Acceptor,
    peers: Vec<Peer>,
    config: SessionConfig,
    sessions: FastMap<SessionId, Slot<A>>,
    by_index: FastMap<u32, SessionId>,
    by_peer: FastMap<[u8; 32], SessionId>,
    next_id: SessionId,
    next_index: u32,
    responses: VecDeque<(A, Vec<u8>)>,
    events: VecDeque<(SessionId, Event)>,
    ended: VecDeque<SessionId>,
    rr: Vec<SessionId>,
    rr_at: usize,
    pub(crate) stats: EndpointStats,
}

impl<A: Copy + Eq + Hash + core::fmt::Debug> Endpoint<A> {
    pub fn new(keypair: Keypair, peers: Vec<Peer>, config: SessionConfig) -> Endpoint<A> {
        let mut seed = [0u8; 4];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Endpoint {
            acceptor: Acceptor::new(keypair),
            peers,
            config,
            sessions: FastMap::default(),
            by_index: FastMap::default(),
            by_peer: FastMap::default(),
            next_id: 1,
            next_index: u32::from_le_bytes(seed),
            responses: VecDeque::new(),
            events: VecDeque::new(),
            ended: VecDeque::new(),
            rr: Vec::new(),
            rr_at: 0,
            stats: EndpointStats::default(),
        }
    }

    /// The settings of sessions started from now on (the memory budget's share per edge
    /// changes when peers are added or removed); running sessions keep theirs.
    pub(crate) fn set_session_config(&mut self, config: SessionConfig) {
        self.config = config;
    }

    /// Replaces the allowed peers (reload); sessions of removed keys end at once.
    pub(crate) fn set_peers(&mut self, peers: Vec<Peer>) {
        self.peers = peers;
        let gone: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| !self.peers.iter().any(|p| p.public == s.session_peer()))
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            self.end(id);
        }
    }

    /// The peer of a session.
    pub(crate) fn peer(&self, id: SessionId) -> Option<&Peer> {
        self.sessions.get(&id).and_then(|s| self.peers.get(s.peer))
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id).map(|s| &s.session)
    }

    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id).map(|s| &mut s.session)
    }

    pub fn session_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys().copied()
    }

    /// The address a session's link was last heard from.
    pub(crate) fn link_addr(&self, id: SessionId, link: LinkId) -> Option<A> {
        self.sessions
            .get(&id)
            .and_then(|s| s.addrs.get(&link).copied())
    }

    fn count(&mut self, d: Drop) {
        *self.stats.dropped.entry(d).or_default() += 1;
    }

    fn fresh_index(&mut self) -> u32 {
        loop {
            self.next_index = self
                .next_index
                .wrapping_mul(747_796_405)
                .wrapping_add(2_891_336_453);
            let i = self.next_index;
            if !self.by_index.contains_key(&i) {
                return i;
            }
        }
    }

    /// A datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: A,
        datagram: &mut [u8],
    ) -> Result<Handled, Drop> {
        if seal::is_init(datagram) {
            return self.handle_init(now, from, datagram);
        }
        if seal::is_other_version_init(datagram) {
            let d = Drop::Handshake(SealError::Version);
            self.count(d);
            return Err(d);
        }
        let Some(index) = seal::receiver_index(datagram) else {
            self.count(Drop::Malformed);
            return Err(Drop::Malformed);
        };
        let Some(&id) = self.by_index.get(&index) else {
            self.count(Drop::UnknownIndex);
            return Err(Drop::UnknownIndex);
        };
        let slot = self
            .sessions
            .get_mut(&id)
            .expect("index map points at live sessions");
        match slot.session.handle_datagram(now, None, datagram) {
            Ok(link) => {
                slot.last_heard = now;
                slot.last_addr = from;
                if let Some(l) = link {
                    slot.addrs.insert(l, from);
                }
                self.reindex(id);
                Ok(Handled::Data { session: id, link })
            }
            Err(_) => {
                self.count(Drop::Session);
                Err(Drop::Session)
            }
        }
    }

    fn handle_init(&mut self, now: Instant, from: A, datagram: &[u8]) -> Result<Handled, Drop> {
        let index = self.fresh_index();
        let mut out = vec![0u8; seal::RESPONSE_LEN];
        let (peers, by_peer, sessions) = (&self.peers, &self.by_peer, &self.sessions);
        // A rekey goes on with the session only if that session has carried the edge's data
        // under this epoch: one created by an init whose answer was lost is new to the edge.
        let admit = |k: &[u8; 32], epoch: u64| {
            if !peers.iter().any(|p| p.public == *k) {
                return Admission::Refused;
            }
            let same = by_peer
                .get(k)
                .and_then(|id| sessions.get(id))
                .is_some_and(|s| {
                    let ch = s.session.channel();
                    ch.epoch() == epoch && ch.is_established()
                });
            if same {
                Admission::SameSession
            } else {
                Admission::NewSession
            }
        };
        let accepted = match self
            .acceptor
            .accept_from(now, datagram, &from, admit, index, &mut out)
        {
            Ok(a) => a,
            Err(e) => {
                // Bounded: a flood cannot queue replies without end if the socket stalls.
                let room = self.responses.len() < MAX_RESPONSES;
                if e == SealError::Behind && room {
                    // The edge's clock went back: it learns the time to beat and tries again.
                    self.responses.push_back((from, out));
                } else if e == SealError::Cookie && room {
                    // Under load: the sender proves its address with the cookie next time.
                    out.truncate(cookie::REPLY_LEN);
                    self.responses.push_back((from, out));
                }
                self.count(Drop::Handshake(e));
                return Err(Drop::Handshake(e));
            }
        };
        out.truncate(accepted.response_len);
        let peer_key = accepted.peer_public;
        let peer = self
            .peers
            .iter()
            .position(|p| p.public == peer_key)
            .expect("accepted keys are allowed");
        self.responses.push_back((from, out));
        // The same epoch is a rekey of the running session; another one is a restarted edge,
        // whose fresh session numbers its data from zero: the old session ends, a new one starts.
        if let Some(&id) = self.by_peer.get(&peer_key) {
            let same = self
                .sessions
                .get(&id)
                .is_some_and(|s| s.session.channel().epoch() == accepted.epoch);
            if !same {
                self.end(id);
            }
        }
        if let Some(&id) = self.by_peer.get(&peer_key) {
            let slot = self
                .sessions
                .get_mut(&id)
                .expect("peer map points at live sessions");
            slot.session.channel_mut().rekeyed(accepted);
            slot.last_heard = now;
            self.reindex(id);
            return Ok(Handled::Handshake {
                session: id,
                new: false,
            });
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let session = Session::new(Channel::responder(accepted, now), self.config.clone(), now);
        self.sessions.insert(
            id,
            Slot {
                session,
                peer,
                addrs: FastMap::default(),
                last_addr: from,
                last_heard: now,
            },
        );
        self.by_peer.insert(peer_key, id);
        self.rr.push(id);
        self.reindex(id);
        self.stats.sessions_started += 1;
        Ok(Handled::Handshake {
            session: id,
            new: true,
        })
    }

    /// Registers every receiver index a session's channel answers to (they change on rekey).
    fn reindex(&mut self, id: SessionId) {
        let Some(slot) = self.sessions.get(&id) else {
            return;
        };
        let live: Vec<u32> = slot.session.channel().local_indices().collect();
        self.by_index.retain(|i, s| *s != id || live.contains(i));
        for i in live {
            self.by_index.insert(i, id);
        }
    }

    fn end(&mut self, id: SessionId) {
        if let Some(slot) = self.sessions.remove(&id) {
            self.by_index.retain(|_, s| *s != id);
            self.by_peer.remove(&slot.session_peer());
            self.rr.retain(|&s| s != id);
            self.ended.push_back(id);
            self.stats.sessions_ended += 1;
        }
    }

    /// Queues an inner packet (from the internet) for a session.
    pub fn send(
        &mut self,
        now: Instant,
        id: SessionId,
        packet: &[u8],
        meta: PacketMeta,
    ) -> Result<(), SendError> {
        match self.sessions.get_mut(&id) {
            Some(s) => s.session.send(now, packet, meta),
            None => Err(SendError::Closed),
        }
    }

    /// The next datagram to send: `out[..len]` to `addr`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(A, usize)> {
        if let Some((addr, bytes)) = self.responses.pop_front() {
            out[..bytes.len()].copy_from_slice(&bytes);
            return Some((addr, bytes.len()));
        }
        let n = self.rr.len();
        for k in 0..n {
            let id = self.rr[(self.rr_at + k) % n];
            let slot = self
                .sessions
                .get_mut(&id)
                .expect("round robin holds live sessions");
            while let Some(t) = slot.session.poll_transmit(now, out) {
                let addr = slot.addrs.get(&t.link).copied();
                match addr {
                    Some(a) => {
                        self.rr_at = (self.rr_at + k + 1) % n;
                        return Some((a, t.len));
                    }
                    // The session chose a link the edge has not used yet: nowhere to send it;
                    // the session's loss detection moves the data to a link that works.
                    None => self.stats.no_address += 1,
                }
            }
        }
        None
    }

    /// The next restored inner packet of any session.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<(SessionId, Delivered)> {
        for slot in self.sessions.iter_mut() {
            if let Some(d) = slot.1.session.poll_deliver(now) {
                return Some((*slot.0, d));
            }
        }
        None
    }

    /// Session events; also `Event::Closed` for sessions the endpoint ended (idle, peer removed).
    pub(crate) fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        for (&id, slot) in self.sessions.iter_mut() {
            if let Some(e) = slot.session.poll_event() {
                self.events.push_back((id, e));
            }
        }
        if let Some(id) = self.ended.pop_front() {
            return Some((id, Event::Closed));
        }
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.sessions.values().map(|s| s.last_heard + SESSION_IDLE);
        self.sessions
            .values()
            .filter_map(|s| s.session.poll_timeout())
            .chain(idle)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (&id, slot) in self.sessions.iter_mut() {
            slot.session.handle_timeout(now);
            if slot.session.is_closed() || now.saturating_since(slot.last_heard) >= SESSION_IDLE {
                gone.push(id);
            }
        }
        for id in gone {
            self.end(id);
        }
    }
}

impl<A> Slot<A> {
    fn session_peer(&self) -> [u8; 32] {
        self.session.channel().peer_public()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::link::LinkConfig;
    use crate::proto::session::REHANDSHAKE_AFTER;

    const MS: u64 = 1000;

    fn pair() -> (Session, Endpoint<u8>, Keypair) {
        let edge_key = Keypair::generate();
        let core_key = Keypair::generate();
        let peers = vec![Peer {
            name: "train-1".into(),
            public: edge_key.public,
        }];
        let ep = Endpoint::new(core_key.clone(), peers, SessionConfig::default());
        (
            edge_session(&edge_key, core_key.public, 2, Instant(0)),
            ep,
            edge_key,
        )
    }

    /// An edge session towards `core` with links 0..`links`, started at `now`.
    fn edge_session(key: &Keypair, core: [u8; 32], links: u8, now: Instant) -> Session {
        let ch = Channel::initiator(key, core, now);
        let mut edge = Session::new(ch, SessionConfig::default(), now);
        for id in 0..links {
            edge.add_link(id, LinkConfig::default(), now);
        }
        edge
    }

    /// Moves everything both sides want to send, instantly; edge link i arrives from address i.
    fn exchange(edge: &mut Session, ep: &mut Endpoint<u8>, now: Instant) -> usize {
        let mut moved = 0;
        let mut buf = vec![0u8; 2048];
        for _ in 0..100 {
            let mut any = false;
            while let Some(t) = edge.poll_transmit(now, &mut buf) {
                let _ = ep.handle_datagram(now, t.link, &mut buf[..t.len]);
                any = true;
                moved += 1;
            }
            while let Some((addr, n)) = ep.poll_transmit(now, &mut buf) {
                let _ = edge.handle_datagram(now, Some(addr), &mut buf[..n]);
                any = true;
                moved += 1;
            }
            if !any {
                break;
            }
        }
        moved
    }

    #[test]
    fn handshake_data_and_link_addresses() {
        let (mut edge, mut ep, _) = pair();
        let mut now = Instant(0);
        exchange(&mut edge, &mut ep, now);
        assert!(edge.is_established());
        let id = ep.session_ids().next().expect("one session");
        assert_eq!(ep.peer(id).unwrap().name, "train-1");
        for i in 0..20u8 {
            now = Instant(u64::from(i) * MS);
            edge.send(now, &[0x45, i], PacketMeta::default()).unwrap();
            exchange(&mut edge, &mut ep, now);
            edge.handle_timeout(now);
            ep.handle_timeout(now);
        }
        let mut got = Vec::new();
        while let Some((sid, d)) = ep.poll_deliver(now) {
            assert_eq!(sid, id);
            got.push(d.data[1]);
        }
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
        assert!(ep.link_addr(id, 0).is_some() || ep.link_addr(id, 1).is_some());
    }

    #[test]
    fn the_core_sends_only_on_links_it_has_heard_from() {
        // The edge's link 1 cannot reach the core (a modem still coming up): the core learns
        // of it from the edge's announcements on link 0, but has no address for it.
        let (mut edge, mut ep, _) = pair();
        let mut buf = vec![0u8; 2048];
        let mut got = 0usize;
        let mut step = |edge: &mut Session, ep: &mut Endpoint<u8>, now: Instant| {
            while let Some(t) = edge.poll_transmit(now, &mut buf) {
                if t.link == 0 {
                    let _ = ep.handle_datagram(now, 0, &mut buf[..t.len]);
                }
            }
            while let Some((addr, n)) = ep.poll_transmit(now, &mut buf) {
                let _ = edge.handle_datagram(now, Some(addr), &mut buf[..n]);
            }
            while edge.poll_deliver(now).is_some() {
                got += 1;
            }
            edge.handle_timeout(now);
            ep.handle_timeout(now);
        };
        for i in 0..50u64 {
            step(&mut edge, &mut ep, Instant(i * MS));
        }
        let id = ep.session_ids().next().expect("established over link 0");
        assert!(ep.link_addr(id, 1).is_none());
        for i in 0..200u64 {
            let now = Instant((50 + i) * MS);
            for k in 0..4u8 {
                ep.send(now, id, &[0x45, k, 0, 0], PacketMeta::default())
                    .unwrap();
            }
            step(&mut edge, &mut ep, now);
        }
        assert_eq!(
            ep.stats.no_address, 0,
            "nothing chosen for the unheard link"
        );
        assert_eq!(got, 800, "every packet delivered, none waiting on a resend");
    }

    #[test]
    fn strangers_and_junk_are_dropped_and_counted() {
        let (_, mut ep, _) = pair();
        let stranger = Keypair::generate();
        let mut s = edge_session(&stranger, ep.acceptor.public(), 1, Instant(0));
        let mut buf = vec![0u8; 2048];
        let t = s.poll_transmit(Instant(0), &mut buf).unwrap();
        assert_eq!(
            ep.handle_datagram(Instant(0), 9, &mut buf[..t.len]),
            Err(Drop::Handshake(SealError::NotAllowed))
        );
        // A data datagram for receiver index 9, which no session has; the rest is junk.
        let mut junk = [0u8; 30];
        junk[..2].copy_from_slice(&[crate::proto::wire::VERSION, 3]);
        junk[5] = 9;
        junk[13] = 1;
        assert_eq!(
            ep.handle_datagram(Instant(0), 9, &mut junk),
            Err(Drop::UnknownIndex)
        );
        assert_eq!(
            ep.handle_datagram(Instant(0), 9, &mut [0xff; 3]),
            Err(Drop::Malformed)
        );
        assert_eq!(ep.session_ids().count(), 0, "nothing was created");
        assert_eq!(ep.stats.dropped.values().sum::<u64>(), 3);
    }

    #[test]
    fn an_init_of_another_protocol_version_is_reported_as_such() {
        let (mut edge, mut ep, _) = pair();
        let mut buf = vec![0u8; 2048];
        let t = edge.poll_transmit(Instant(0), &mut buf).unwrap();
        buf[0] = crate::proto::wire::VERSION - 1;
        assert_eq!(
            ep.handle_datagram(Instant(0), 9, &mut buf[..t.len]),
            Err(Drop::Handshake(SealError::Version))
        );
        assert_eq!(ep.session_ids().count(), 0);
    }

    #[test]
    fn idle_sessions_end_and_removed_peers_are_cut() {
        let (mut edge, mut ep, _) = pair();
        exchange(&mut edge, &mut ep, Instant(0));
        let id = ep.session_ids().next().unwrap();
        ep.set_peers(Vec::new());
        assert_eq!(ep.session_ids().count(), 0);
        let mut saw_closed = false;
        while let Some((sid, e)) = ep.poll_event() {
            saw_closed |= sid == id && e == Event::Closed;
        }
        assert!(saw_closed);

        let (mut edge, mut ep, _) = pair();
        exchange(&mut edge, &mut ep, Instant(0));
        ep.handle_timeout(Instant(0) + SESSION_IDLE);
        assert_eq!(ep.session_ids().count(), 0, "silent for SESSION_IDLE");
    }

    #[test]
    fn a_restarted_edge_gets_a_fresh_session() {
        let (mut edge, mut ep, edge_key) = pair();
        exchange(&mut edge, &mut ep, Instant(0));
        let first = ep.session_ids().next().unwrap();
        // The first process sends some data, so its session has numbered packets.
        for i in 0..10u8 {
            edge.send(Instant(0), &[0x45, i], PacketMeta::default())
                .unwrap();
            exchange(&mut edge, &mut ep, Instant(0));
        }
        while ep.poll_deliver(Instant(0)).is_some() {}
        // Same key, new process: a new init with a later timestamp replaces the keys.
        let mut edge2 = edge_session(&edge_key, ep.acceptor.public(), 1, Instant(5 * MS));
        exchange(&mut edge2, &mut ep, Instant(5 * MS));
        assert!(edge2.is_established());
        let ids: Vec<_> = ep.session_ids().collect();
        assert_eq!(ids.len(), 1, "one session per peer key");
        assert_ne!(
            ids[0], first,
            "a new epoch (a new process) gets a new session"
        );
        assert!(
            std::iter::from_fn(|| ep.poll_event()).any(|(id, e)| id == first && e == Event::Closed),
            "the old session is reported closed"
        );
        // The new process numbers its data from the start again, and it is delivered at once.
        let now = Instant(6 * MS);
        edge2.send(now, &[0x45, 99], PacketMeta::default()).unwrap();
        exchange(&mut edge2, &mut ep, now);
        let (sid, d) = ep
            .poll_deliver(now)
            .expect("the restarted edge's data is delivered");
        assert_eq!((sid, &d.data[..]), (ids[0], &[0x45, 99][..]));
    }

    /// The core's side of `pair`, restarted: same key and peers, nothing else.
    fn restarted(edge_key: &Keypair, core_key: &Keypair) -> Endpoint<u8> {
        let peers = vec![Peer {
            name: "train-1".into(),
            public: edge_key.public,
        }];
        Endpoint::new(core_key.clone(), peers, SessionConfig::default())
    }

    /// Runs `ms` milliseconds in 10 ms steps: one packet each way per step (upstream marked
    /// 0x45 `u`, downstream 0x45 `d`), every datagram delivered at once except those `lose`
    /// drops. The times (ms) at which the core and the edge last delivered, and the count of
    /// each after `from` ms.
    /// Both ways delivered more than `n` packets.
    #[track_caller]
    fn assert_both_ways(up: &[u64], down: &[u64], n: usize) {
        assert!(
            up.len() > n && down.len() > n,
            "{} {}",
            up.len(),
            down.len()
        );
    }

    fn traffic(
        edge: &mut Session,
        ep: &mut Endpoint<u8>,
        ms: std::ops::Range<u64>,
        from: u64,
        mut lose: impl FnMut(&[u8]) -> bool,
    ) -> (Vec<u64>, Vec<u64>) {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 2048];
        for t in ms.step_by(10) {
            let now = Instant(t * MS);
            edge.handle_timeout(now);
            ep.handle_timeout(now);
            if edge.is_established() {
                edge.send(now, &[0x45, b'u'], PacketMeta::default())
                    .unwrap();
            }
            for id in ep.session_ids().collect::<Vec<_>>() {
                let _ = ep.send(now, id, &[0x45, b'd'], PacketMeta::default());
            }
            for _ in 0..20 {
                let mut any = false;
                while let Some(t) = edge.poll_transmit(now, &mut buf) {
                    any = true;
                    if !lose(&buf[..t.len]) {
                        let _ = ep.handle_datagram(now, t.link, &mut buf[..t.len]);
                    }
                }
                while let Some((addr, n)) = ep.poll_transmit(now, &mut buf) {
                    any = true;
                    if !lose(&buf[..n]) {
                        let _ = edge.handle_datagram(now, Some(addr), &mut buf[..n]);
                    }
                }
                if !any {
                    break;
                }
            }
            while ep.poll_deliver(now).is_some() {
                if t >= from {
                    up.push(t);
                }
            }
            while edge.poll_deliver(now).is_some() {
                if t >= from {
                    down.push(t);
                }
            }
        }
        (up, down)
    }

    #[test]
    fn a_restarted_core_is_noticed_and_both_ways_resume_within_a_second_and_a_bit() {
        for lose_first_answer in [false, true] {
            let edge_key = Keypair::generate();
            let core_key = Keypair::generate();
            let mut ep = restarted(&edge_key, &core_key);
            let mut edge = edge_session(&edge_key, core_key.public, 2, Instant(0));
            edge.set_link_name(1, "lte");
            edge.set_peer_rate_cap(1, Some(5_000_000));
            // The new core numbers its packets from the start again: the edge must not take
            // them for duplicates of the old session's.
            let (up, down) = traffic(&mut edge, &mut ep, 0..3000, 2000, |_| false);
            assert_both_ways(&up, &down, 90);
            // The core restarts at 3 s; the edge keeps sending into the void.
            let mut ep = restarted(&edge_key, &core_key);
            let mut lost = 0;
            let (up, down) = traffic(&mut edge, &mut ep, 3000..6000, 3000, |d| {
                let answer = d.len() == seal::RESPONSE_LEN && d[1] == seal::KIND_RESPONSE;
                if answer && lose_first_answer && lost == 0 {
                    lost += 1;
                    return true;
                }
                false
            });
            let first_up = *up.first().expect("upstream never delivered again");
            let first_down = *down.first().expect("downstream never delivered again");
            eprintln!(
                "answer lost: {lose_first_answer}: core restarted at 3000 ms: upstream \
                 delivered again at {first_up} ms, downstream at {first_down} ms"
            );
            let bound = 3000 + REHANDSHAKE_AFTER.as_millis() as u64 + 100;
            let bound = bound + if lose_first_answer { 1000 } else { 0 };
            assert!(
                first_up <= bound && first_down <= bound,
                "{first_up} {first_down}"
            );
            // ... and keep flowing: one packet each way per step from then on.
            assert!(
                up.len() as u64 >= (6000 - first_up) / 10 - 2,
                "{}",
                up.len()
            );
            assert!(
                down.len() as u64 >= (6000 - first_down) / 10 - 2,
                "{}",
                down.len()
            );
            assert_eq!(edge.stats().renewals, 1);
            // The new core learnt the links' settings again.
            let id = ep.session_ids().next().unwrap();
            let core = ep.session(id).unwrap();
            assert_eq!(core.link_name(1), Some("lte"));
            let l1 = core.stats().links.into_iter().find(|l| l.id == 1).unwrap();
            assert!(l1.pacing_rate_bps <= 5_000_000, "{l1:?}");
        }
    }

    #[test]
    fn a_rekey_through_silence_keeps_the_session_and_its_packets() {
        // Every link silent for 2 s (a tunnel): the edge's handshake reaches a core that still
        // has the session, which goes on (no renewal); nothing the edge queued is lost.
        let (mut edge, mut ep, _) = pair();
        traffic(&mut edge, &mut ep, 0..1000, 0, |_| false);
        let id = ep.session_ids().next().unwrap();
        let (up, _) = traffic(&mut edge, &mut ep, 1000..3000, 0, |_| true);
        assert!(up.is_empty());
        let (up, down) = traffic(&mut edge, &mut ep, 3000..5000, 3000, |_| false);
        assert_both_ways(&up, &down, 150);
        assert_eq!(edge.stats().renewals, 0);
        assert_eq!(ep.session_ids().collect::<Vec<_>>(), vec![id]);
        assert!(
            edge.channel().stats().rekeys > 0,
            "no handshake in the silence"
        );
    }

    #[test]
    fn a_rekey_keeps_the_session() {
        let (mut edge, mut ep, _) = pair();
        exchange(&mut edge, &mut ep, Instant(0));
        let first = ep.session_ids().next().unwrap();
        // Past the rekey time the same channel (same epoch) handshakes again: same session.
        let secs = crate::proto::seal::REKEY_AFTER.as_secs() + 5;
        for s in 1..=secs {
            let now = Instant(s * 1000 * MS);
            edge.send(now, &[0x45, s as u8], PacketMeta::default())
                .unwrap();
            edge.handle_timeout(now);
            ep.handle_timeout(now);
            exchange(&mut edge, &mut ep, now);
        }
        assert!(
            edge.channel().stats().rekeys
                + ep.session(first).map_or(0, |s| s.channel().stats().rekeys)
                > 0,
            "no rekey happened"
        );
        assert_eq!(ep.session_ids().collect::<Vec<_>>(), vec![first]);
    }
}
