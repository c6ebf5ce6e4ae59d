//! Sessions sealed the way WireGuard seals them: a Noise IK handshake with static X25519 keys,
//! then ChaCha20-Poly1305 with explicit counters and a sliding replay window.
//!
//! ```text
//! init      [1][1][sender u32]                 noise IK msg 1 (e, es, s, ss; payload = timestamp u64, epoch u64)  mac1[16]  (mac2[16])
//! response  [1][2][receiver u32][sender u32]   noise IK msg 2 (e, ee, se; payload = answer u8, time u64)  mac1[16]
//! data      [2][3][receiver u32][counter u32]  ChaCha20-Poly1305(frames), AAD = these 10 bytes      tag[16]
//! ```
//! - `mac1` is a keyed BLAKE2s over the message, keyed by a hash of the receiver's public key: junk
//!   and packets for another server are dropped before any Diffie-Hellman, at the cost of one hash.
//!   The [`Acceptor`] also rate-limits the handshakes it does compute; under load it answers
//!   inits without a valid mac2 with a cookie reply instead, and the initiator's next init
//!   carries mac2, bound to its source address (see [`super::cookie`]).
//! - The init carries the initiator's clock (the caller's `now`; daemons pass wall-clock
//!   microseconds): the acceptor refuses an init not newer than the last one from that key, so a
//!   captured init cannot be replayed. The init also carries the initiator's epoch, random per
//!   [`Channel`]: the same epoch is a rekey of a running session, a new one a restarted edge.
//! - The response's payload (encrypted and authenticated like the rest of Noise message 2, so
//!   only the responder's key can write it and only the initiator can read it) answers the init:
//!   [`ANSWER_SAME`] (the keys continue the session the responder has for this epoch),
//!   [`ANSWER_NEW`] (the responder starts a new session: it restarted, or forgot an idle one, and
//!   the initiator must start afresh too; [`Channel::take_renewed`]), or [`ANSWER_BEHIND`] (the
//!   init's time is older than the last one accepted from this key, given as `time`: the
//!   initiator's clock went back, e.g. a router without a real-time clock after a reboot; it
//!   retries at once with a later time, and no keys are installed on either side). A copy of
//!   the last accepted init (the same init arrives on every link) or a replay of it gets no
//!   answer. A replayed older init gets a BEHIND answer, which costs the responder nothing more
//!   than refusing it did (the same rate-limited Diffie-Hellman work, no state) and tells the
//!   sender of the copy nothing it can read; it is shorter than the init (no amplification).
//! - The initiator's time is `max(now, floor, last + 1)`: the caller raises the floor with the
//!   wall clock and a high-water mark it keeps across restarts ([`Channel::raise_stamp_floor`]).
//! - A data datagram carries the low 32 bits of its 64-bit counter; the receiver takes the
//!   counter nearest to the highest it has opened (as QUIC decodes packet numbers). The nonce
//!   is the whole counter; a wrong guess (2^31 datagrams of reordering) fails authentication.
//! - Keys are rotated before counters or time run out ([`REKEY_AFTER`], [`REKEY_AFTER_MESSAGES`]);
//!   keys older than [`REJECT_AFTER`] are refused. The previous keys stay usable for receiving
//!   while a rotation settles, so packets in flight on slow links are not lost.
//!
//! Nothing here reads a clock or a socket; randomness (ephemeral keys, indices) comes from the OS.

use core::time::Duration;
use std::collections::HashMap;

use blake2::digest::consts::U16;
use blake2::digest::{Digest, Mac};
use blake2::{Blake2s256, Blake2sMac};
use braid_aead::Aead;

use super::cookie::{self, CookieJar, COOKIE_LIFE};
use super::wire::VERSION;
use super::Instant;

/// Message kinds in the second byte of every datagram.
pub(crate) const KIND_INIT: u8 = 1;
pub(crate) const KIND_RESPONSE: u8 = 2;
pub(crate) const KIND_DATA: u8 = 3;

/// Bytes of a data datagram's header.
pub(crate) const DATA_HEADER_LEN: usize = 10;
/// Bytes of the Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a data datagram adds to its plaintext.
pub(crate) const OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;

const NOISE_PARAMS: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"braid v1";
const MAC_LEN: usize = 16;
const INIT_HEADER_LEN: usize = 6;
const RESPONSE_HEADER_LEN: usize = 10;
/// Noise IK message 1 with a 16-byte payload (timestamp, epoch): e (32) + s (32 + 16) + payload (16 + 16).
const INIT_NOISE_LEN: usize = 112;
/// Noise IK message 2 with a 9-byte payload (answer, time): e (32) + payload (9 + 16).
const RESPONSE_NOISE_LEN: usize = 57;
/// Bytes of the response's payload: the answer kind and a time.
const ANSWER_LEN: usize = 9;
/// Response answer: the keys continue the responder's session for this epoch (a rekey).
pub(crate) const ANSWER_SAME: u8 = 0;
/// Response answer: the responder starts a new session (it had none for this epoch, or one
/// never used): the initiator starts afresh too.
pub(crate) const ANSWER_NEW: u8 = 1;
/// Response answer: the init's time is older than the last accepted from this key, which the
/// response carries; no keys were installed.
pub(crate) const ANSWER_BEHIND: u8 = 2;
/// Length of a handshake init datagram.
pub(crate) const INIT_LEN: usize = INIT_HEADER_LEN + INIT_NOISE_LEN + MAC_LEN;
/// Length of a handshake init that carries mac2 (sent after a cookie reply).
pub(crate) const INIT_MAC2_LEN: usize = INIT_LEN + MAC_LEN;
/// Length of a handshake response datagram.
pub(crate) const RESPONSE_LEN: usize = RESPONSE_HEADER_LEN + RESPONSE_NOISE_LEN + MAC_LEN;

/// Start a new handshake once the keys are this old.
pub(crate) const REKEY_AFTER: Duration = Duration::from_secs(120);
/// Refuse keys this old.
pub(crate) const REJECT_AFTER: Duration = Duration::from_secs(180);
/// Start a new handshake after this many messages with one key.
pub(crate) const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Never use a key for more messages than this.
pub(crate) const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// Resend an unanswered init after this long.
pub(crate) const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);
/// Counters the replay window remembers behind the highest one seen. Large, because links with
/// very different delays deliver a session's counters far out of order.
pub(crate) const REPLAY_WINDOW: u64 = 16384;

/// Why a datagram was refused. Every refusal is counted by [`SealStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealError {
    /// Too short, wrong version or unknown kind.
    Malformed,
    /// mac1 does not match: not for us, or corrupted.
    BadMac,
    /// The Noise handshake failed: unknown or wrong key, or tampered.
    Handshake,
    /// The initiator's key is not allowed here.
    NotAllowed,
    /// A copy of the last handshake init accepted from this key (sent on another link, or
    /// replayed): not answered.
    Stale,
    /// A handshake init older than the last one accepted from this key (the initiator's clock
    /// went back, or an old init replayed): answered with that time, nothing installed.
    Behind,
    /// Too many handshakes to compute right now.
    RateLimited,
    /// No keys with this receiver index.
    UnknownIndex,
    /// Authentication of a data datagram failed (tampered or wrong key).
    Decrypt,
    /// A data counter seen before or too old for the window.
    Replay,
    /// The keys are too old or used up.
    Expired,
    /// No keys to seal with yet.
    NotEstablished,
    /// The output buffer is too small.
    NoRoom,
    /// A handshake init of another protocol version.
    Version,
    /// Under load, an init without a valid mac2: answered with a cookie reply, not computed.
    Cookie,
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            SealError::Malformed => "malformed datagram",
            SealError::BadMac => "mac1 mismatch",
            SealError::Handshake => "handshake failed (wrong key or tampered)",
            SealError::NotAllowed => "peer key not allowed",
            SealError::Stale => "handshake init replayed or a copy",
            SealError::Behind => "handshake init older than the last accepted",
            SealError::RateLimited => "handshake rate limit",
            SealError::UnknownIndex => "unknown receiver index",
            SealError::Decrypt => "authentication failed (tampered or wrong key)",
            SealError::Replay => "replayed counter",
            SealError::Expired => "keys expired",
            SealError::NotEstablished => "session not established",
            SealError::Version => "another protocol version",
            SealError::NoRoom => "buffer too small",
            SealError::Cookie => "under load: answered with a cookie",
        };
        f.write_str(s)
    }
}

impl std::error::Error for SealError {}

/// A static X25519 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Keypair {
    pub private: [u8; 32],
    pub public: [u8; 32],
}

impl core::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The public key only (hex; keys as base64 text are the daemons' business, not proto's).
        write!(f, "Keypair {{ public: ")?;
        for b in self.public {
            write!(f, "{b:02x}")?;
        }
        write!(f, " }}")
    }
}

impl Keypair {
    /// A new random key pair.
    pub fn generate() -> Keypair {
        let mut private = [0u8; 32];
        getrandom::fill(&mut private).expect("the OS random source is available");
        Keypair::from_private(private)
    }

    /// The key pair of a private key (clamped as X25519 does).
    pub fn from_private(private: [u8; 32]) -> Keypair {
        let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Keypair { private, public }
    }
}

/// Counters of what a channel or acceptor did and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SealStats {
    sealed: u64,
    opened: u64,
    pub(crate) handshakes: u64,
    pub(crate) rekeys: u64,
    /// Refused datagrams by reason.
    refused: HashMap<SealError, u64>,
}

impl SealStats {
    fn refuse(&mut self, e: SealError) -> SealError {
        *self.refused.entry(e).or_default() += 1;
        e
    }
}

/// A sliding window over received counters (RFC 6479 style bitmap).
#[derive(Clone)]
pub(crate) struct ReplayWindow {
    top: u64,
    any: bool,
    bits: Box<[u64]>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

    pub(crate) fn new() -> Self {
        ReplayWindow {
            top: 0,
            any: false,
            bits: vec![0u64; Self::WORDS].into_boxed_slice(),
        }
    }

    fn slot(c: u64) -> (usize, u64) {
        (((c / 64) % Self::WORDS as u64) as usize, 1u64 << (c % 64))
    }

    /// Whether `c` would be accepted (not seen, not too old). Does not record it.
    pub(crate) fn check(&self, c: u64) -> bool {
        if !self.any || c > self.top {
            return true;
        }
        if self.top - c >= REPLAY_WINDOW - 64 {
            return false;
        }
        let (w, b) = Self::slot(c);
        self.bits[w] & b == 0
    }

    /// Records `c`; call only after `check(c)` and successful authentication.
    pub(crate) fn record(&mut self, c: u64) {
        if !self.any || c > self.top {
            let old_word = if self.any { self.top / 64 } else { 0 };
            let new_word = c / 64;
            let clear = if self.any {
                (new_word - old_word).min(Self::WORDS as u64)
            } else {
                Self::WORDS as u64
            };
            for i in 1..=clear {
                let w = ((old_word + i) % Self::WORDS as u64) as usize;
                self.bits[w] = 0;
            }
            if !self.any {
                self.bits[Self::slot(c).0] = 0;
            }
            self.top = c;
            self.any = true;
        }
        let (w, b) = Self::slot(c);
        self.bits[w] |= b;
    }
}

/// One direction pair of transport keys.
struct Keys {
    local_index: u32,
    remote_index: u32,
    send: Aead,
    recv: Aead,
    send_counter: u64,
    replay: ReplayWindow,
    created: Instant,
}

impl Keys {
    fn new(
        local_index: u32,
        remote_index: u32,
        send: [u8; 32],
        recv: [u8; 32],
        now: Instant,
    ) -> Keys {
        Keys {
            local_index,
            remote_index,
            send: Aead::new(&send),
            recv: Aead::new(&recv),
            send_counter: 0,
            replay: ReplayWindow::new(),
            created: now,
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_since(self.created) >= REJECT_AFTER
            || self.send_counter >= REJECT_AFTER_MESSAGES
    }
}

/// The 64-bit counter whose low 32 bits are `low`, nearest to `top` (the highest opened).
fn widen_counter(top: u64, low: u32) -> u64 {
    const SPAN: u64 = 1 << 32;
    let c = (top & !(SPAN - 1)) | u64::from(low);
    if c > top.saturating_add(SPAN / 2) && c >= SPAN {
        c - SPAN
    } else if c.saturating_add(SPAN / 2) < top && c < u64::MAX - SPAN {
        c + SPAN
    } else {
        c
    }
}

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

fn mac1_key(receiver_public: &[u8; 32]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(b"braid mac1");
    h.update(receiver_public);
    h.finalize().into()
}

fn mac1(key: &[u8; 32], msg: &[u8]) -> [u8; MAC_LEN] {
    let mut m = <Blake2sMac<U16> as Mac>::new_from_slice(key).expect("32-byte key fits BLAKE2s");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn mac1_ok(key: &[u8; 32], datagram: &[u8]) -> bool {
    let (msg, mac) = datagram.split_at(datagram.len() - MAC_LEN);
    let want = mac1(key, msg);
    // Constant time is not needed for a public-key MAC, but costs nothing.
    want.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn random_index() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source is available");
    u32::from_le_bytes(b)
}

fn noise_builder<'a>() -> snow::Builder<'a> {
    snow::Builder::new(NOISE_PARAMS.parse().expect("valid noise params"))
        .prologue(PROLOGUE)
        .expect("prologue set once")
}

/// The receiver index of a datagram (for the core's demultiplexing), if it has one.
pub fn receiver_index(datagram: &[u8]) -> Option<u32> {
    if datagram.len() < 6 || datagram[0] != VERSION {
        return None;
    }
    match datagram[1] {
        KIND_RESPONSE | KIND_DATA => Some(u32::from_be_bytes([
            datagram[2],
            datagram[3],
            datagram[4],
            datagram[5],
        ])),
        _ => None,
    }
}

/// Whether a datagram looks like a handshake init of another protocol version (an edge or core
/// not upgraded with its peer): it cannot be answered, but it can be reported.
pub(crate) fn is_other_version_init(datagram: &[u8]) -> bool {
    datagram.len() == INIT_LEN && datagram[0] != VERSION && datagram[1] == KIND_INIT
}

/// Whether a datagram is a handshake init, with or without mac2 (to be given to an
/// [`Acceptor`]).
pub fn is_init(datagram: &[u8]) -> bool {
    (datagram.len() == INIT_LEN || datagram.len() == INIT_MAC2_LEN)
        && datagram[0] == VERSION
        && datagram[1] == KIND_INIT
}

struct PendingInit {
    hs: snow::HandshakeState,
    local_index: u32,
    sent_at: Instant,
    /// The init's mac1: a cookie reply to it is authenticated with it.
    mac1: [u8; MAC_LEN],
}

/// One authenticated, encrypted association, on either side. Handles rekeying by itself.
pub struct Channel {
    local: Keypair,
    /// Random per initiator channel; tells a rekey from a restart.
    epoch: u64,
    peer_public: [u8; 32],
    initiator: bool,
    pending: Option<PendingInit>,
    /// Set when a rekey or first handshake is due and not yet sent.
    want_handshake: bool,
    current: Option<Keys>,
    previous: Option<Keys>,
    /// Responder only: keys from a rekey, used for sending once the initiator has used them.
    next: Option<Keys>,
    /// Initiator: handshake times are at least this (see [`Channel::raise_stamp_floor`]).
    stamp_floor: u64,
    /// Initiator: the time of the last init sent.
    last_stamp: u64,
    /// Initiator: a handshake answered [`ANSWER_NEW`] replaced keys the peer no longer knows.
    renewed: bool,
    /// Initiator: the last cookie the peer sent under load, and when (see [`cookie`]).
    cookie: Option<([u8; cookie::COOKIE_LEN], Instant)>,
    stats: SealStats,
}

impl Channel {
    /// The edge side: `poll_handshake` yields the first init at once.
    pub fn initiator(local: &Keypair, peer_public: [u8; 32], _now: Instant) -> Channel {
        let mut epoch = [0u8; 8];
        getrandom::fill(&mut epoch).expect("the OS random source is available");
        Channel {
            local: local.clone(),
            epoch: u64::from_le_bytes(epoch),
            peer_public,
            initiator: true,
            pending: None,
            want_handshake: true,
            current: None,
            previous: None,
            next: None,
            stamp_floor: 0,
            last_stamp: 0,
            renewed: false,
            cookie: None,
            stats: SealStats::default(),
        }
    }

    /// The core side, from a handshake the [`Acceptor`] accepted. Established once the initiator's
    /// first data datagram arrives (it proves the initiator got the response).
    pub fn responder(accepted: Accepted, _now: Instant) -> Channel {
        let stats = SealStats {
            handshakes: 1,
            ..Default::default()
        };
        Channel {
            local: accepted.local.clone(),
            epoch: accepted.epoch,
            peer_public: accepted.peer_public,
            initiator: false,
            pending: None,
            want_handshake: false,
            current: None,
            previous: None,
            next: Some(accepted.keys),
            stamp_floor: 0,
            last_stamp: 0,
            renewed: false,
            cookie: None,
            stats,
        }
    }

    /// The core side: a rekey from the same peer. The new keys take over for sending once the
    /// initiator uses them; the current ones stay for receiving.
    pub(crate) fn rekeyed(&mut self, accepted: Accepted) {
        debug_assert_eq!(accepted.peer_public, self.peer_public);
        self.next = Some(accepted.keys);
        self.stats.rekeys += 1;
    }

    /// Initiator: handshake again at the next [`Channel::poll_handshake`] (unless one is under
    /// way). The keys in use stay until the answer comes, so a peer that still knows them keeps
    /// working; a peer that restarted answers with a new session.
    pub(crate) fn request_handshake(&mut self) {
        if self.initiator && self.pending.is_none() {
            self.want_handshake = true;
        }
    }

    /// The initiator's epoch (random per initiating channel): a new one means a new session.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Initiator: handshake inits carry a time of at least `floor` from now on (it never
    /// lowers). The edge passes the wall clock (read again at every call, so a clock set
    /// right later is used) and its high-water mark kept across restarts: a router whose clock
    /// went back at a reboot is not refused as a replay.
    pub(crate) fn raise_stamp_floor(&mut self, floor: u64) {
        self.stamp_floor = self.stamp_floor.max(floor);
    }

    /// Initiator: the highest handshake time used or allowed so far (what a high-water mark
    /// kept across restarts must stay above).
    pub(crate) fn stamp_high(&self) -> u64 {
        self.stamp_floor.max(self.last_stamp)
    }

    /// Initiator: whether a handshake since the last call was answered [`ANSWER_NEW`] while
    /// keys of an earlier session were in use: the peer lost that session (restarted), so the
    /// caller starts its own session state afresh over the new keys.
    pub(crate) fn take_renewed(&mut self) -> bool {
        std::mem::take(&mut self.renewed)
    }

    /// A copy of this channel without keys or a handshake under way, same identity and epoch;
    /// the original is left as it was. For a session that starts afresh over the same keys,
    /// which moves the keyed channel into its new state and leaves this one behind.
    pub(crate) fn take(&mut self) -> Channel {
        let bare = Channel {
            local: self.local.clone(),
            epoch: self.epoch,
            peer_public: self.peer_public,
            initiator: self.initiator,
            pending: None,
            want_handshake: false,
            current: None,
            previous: None,
            next: None,
            stamp_floor: self.stamp_floor,
            last_stamp: self.last_stamp,
            renewed: false,
            cookie: self.cookie,
            stats: SealStats::default(),
        };
        std::mem::replace(self, bare)
    }

    /// The peer's static public key.
    pub(crate) fn peer_public(&self) -> [u8; 32] {
        self.peer_public
    }

    /// Whether data can be sealed.
    pub(crate) fn is_established(&self) -> bool {
        self.current.is_some()
    }

    /// Whether this is the initiating (edge) side.
    pub(crate) fn is_initiator(&self) -> bool {
        self.initiator
    }

    /// Receiver indices this channel answers to (for the core's index map).
    pub(crate) fn local_indices(&self) -> impl Iterator<Item = u32> + '_ {
        [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
            .map(|k| k.local_index)
            .chain(self.pending.as_ref().map(|p| p.local_index))
    }

    pub(crate) fn stats(&self) -> &SealStats {
        &self.stats
    }

    fn rekey_due(&self, now: Instant) -> bool {
        match &self.current {
            None => true,
            Some(k) => {
                now.saturating_since(k.created) >= REKEY_AFTER
                    || k.send_counter >= REKEY_AFTER_MESSAGES
            }
        }
    }

    /// A handshake datagram to send now (first init, retry, or rekey), written to `out` (room
    /// for [`INIT_MAC2_LEN`] bytes lets it carry mac2 when the peer sent a cookie).
    /// Send it on every usable link: whichever arrives first wins.
    pub fn poll_handshake(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !self.initiator || out.len() < INIT_LEN {
            return None;
        }
        let due = match &self.pending {
            Some(p) => now.saturating_since(p.sent_at) >= HANDSHAKE_RETRY,
            None => self.want_handshake || self.rekey_due(now),
        };
        if !due {
            return None;
        }
        let mut hs = noise_builder()
            .local_private_key(&self.local.private)
            .and_then(|b| b.remote_public_key(&self.peer_public))
            .and_then(|b| b.build_initiator())
            .expect("IK initiator with both keys set");
        let local_index = random_index();
        out[0] = VERSION;
        out[1] = KIND_INIT;
        out[2..6].copy_from_slice(&local_index.to_be_bytes());
        let stamp = now
            .as_micros()
            .max(self.stamp_floor)
            .max(self.last_stamp.saturating_add(1));
        self.last_stamp = stamp;
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&stamp.to_be_bytes());
        payload[8..].copy_from_slice(&self.epoch.to_be_bytes());
        let n = hs
            .write_message(
                &payload,
                &mut out[INIT_HEADER_LEN..INIT_HEADER_LEN + INIT_NOISE_LEN],
            )
            .expect("init fits its fixed size");
        debug_assert_eq!(n, INIT_NOISE_LEN);
        let body = INIT_HEADER_LEN + INIT_NOISE_LEN;
        let m = mac1(&mac1_key(&self.peer_public), &out[..body]);
        out[body..INIT_LEN].copy_from_slice(&m);
        self.pending = Some(PendingInit {
            hs,
            local_index,
            sent_at: now,
            mac1: m,
        });
        self.want_handshake = false;
        match self.cookie {
            Some((c, at))
                if now.saturating_since(at) < COOKIE_LIFE && out.len() >= INIT_MAC2_LEN =>
            {
                let m2 = cookie::mac(&c, &out[..INIT_LEN]);
                out[INIT_LEN..INIT_MAC2_LEN].copy_from_slice(&m2);
                Some(INIT_MAC2_LEN)
            }
            _ => Some(INIT_LEN),
        }
    }

    /// Initiator: a cookie reply (see [`cookie::is_reply`]) to the pending init: the next init
    /// carries mac2 with it (the retry, [`HANDSHAKE_RETRY`] after the init it answers).
    pub fn handle_cookie(&mut self, now: Instant, reply: &[u8]) -> Result<(), SealError> {
        let r = match &self.pending {
            _ if !self.initiator => Err(SealError::Malformed),
            Some(p) if cookie::reply_receiver(reply) == Some(p.local_index) => {
                cookie::open_reply(&self.peer_public, &p.mac1, reply).ok_or(SealError::Decrypt)
            }
            _ => Err(SealError::UnknownIndex),
        };
        match r {
            Ok(c) => {
                self.cookie = Some((c, now));
                Ok(())
            }
            Err(e) => Err(self.stats.refuse(e)),
        }
    }

    /// When the channel next needs `poll_handshake` (retry or rekey).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if !self.initiator {
            return None;
        }
        if let Some(p) = &self.pending {
            return Some(p.sent_at + HANDSHAKE_RETRY);
        }
        match &self.current {
            None => Some(Instant::ZERO),
            Some(k) => Some(k.created + REKEY_AFTER),
        }
    }

    /// Seals `plaintext` into a data datagram in `out`; returns its length.
    pub fn seal(
        &mut self,
        now: Instant,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SealError> {
        if out.len() < DATA_HEADER_LEN + plaintext.len() + TAG_LEN {
            return Err(SealError::NoRoom);
        }
        out[DATA_HEADER_LEN..DATA_HEADER_LEN + plaintext.len()].copy_from_slice(plaintext);
        self.seal_in_place(now, out, plaintext.len())
    }

    /// [`seal`](Self::seal) of the `plain_len` bytes of plaintext the caller already wrote at
    /// `out[DATA_HEADER_LEN..]` (one copy of the packet less): writes the header before them
    /// and the tag after them; returns the datagram's length. On an error `out` holds nothing
    /// to send.
    pub(crate) fn seal_in_place(
        &mut self,
        now: Instant,
        out: &mut [u8],
        plain_len: usize,
    ) -> Result<usize, SealError> {
        let len = DATA_HEADER_LEN + plain_len + TAG_LEN;
        if out.len() < len {
            return Err(SealError::NoRoom);
        }
        let keys = self.current.as_mut().ok_or(SealError::NotEstablished)?;
        if keys.expired(now) {
            return Err(SealError::Expired);
        }
        let counter = keys.send_counter;
        keys.send_counter += 1;
        out[0] = VERSION;
        out[1] = KIND_DATA;
        out[2..6].copy_from_slice(&keys.remote_index.to_be_bytes());
        out[6..10].copy_from_slice(&(counter as u32).to_be_bytes());
        let (header, body) = out.split_at_mut(DATA_HEADER_LEN);
        let body = &mut body[..plain_len + TAG_LEN];
        let tag = keys
            .send
            .seal(&nonce(counter), header, &mut body[..plain_len]);
        body[plain_len..].copy_from_slice(&tag);
        self.stats.sealed += 1;
        Ok(len)
    }

    /// Opens a datagram addressed to this channel. `Ok(Some(plaintext))` for data, `Ok(None)` for
    /// a handshake response that completed a handshake.
    pub fn open<'a>(
        &mut self,
        now: Instant,
        datagram: &'a mut [u8],
    ) -> Result<Option<&'a [u8]>, SealError> {
        match self.open_inner(now, datagram) {
            Ok(r) => Ok(r),
            Err(e) => Err(self.stats.refuse(e)),
        }
    }

    fn open_inner<'a>(
        &mut self,
        now: Instant,
        datagram: &'a mut [u8],
    ) -> Result<Option<&'a [u8]>, SealError> {
        if datagram.len() < 2 || datagram[0] != VERSION {
            return Err(SealError::Malformed);
        }
        match datagram[1] {
            KIND_DATA => self.open_data(now, datagram).map(Some),
            KIND_RESPONSE => self.open_response(now, datagram).map(|()| None),
            _ => Err(SealError::Malformed),
        }
    }

    fn open_response(&mut self, now: Instant, d: &[u8]) -> Result<(), SealError> {
        if d.len() != RESPONSE_LEN {
            return Err(SealError::Malformed);
        }
        if !mac1_ok(&mac1_key(&self.local.public), d) {
            return Err(SealError::BadMac);
        }
        let receiver = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
        let sender = u32::from_be_bytes([d[6], d[7], d[8], d[9]]);
        let pending = self.pending.as_mut().ok_or(SealError::UnknownIndex)?;
        if pending.local_index != receiver {
            return Err(SealError::UnknownIndex);
        }
        let mut payload = [0u8; 32];
        let n = pending
            .hs
            .read_message(
                &d[RESPONSE_HEADER_LEN..RESPONSE_HEADER_LEN + RESPONSE_NOISE_LEN],
                &mut payload,
            )
            .map_err(|_| SealError::Handshake)?;
        let (kind, time) = read_answer(&payload[..n]).ok_or(SealError::Handshake)?;
        let mut pending = self.pending.take().expect("checked above");
        if kind == ANSWER_BEHIND {
            // Our clock is behind the last time the peer accepted: go past it at once. The
            // keys in use (if any) stay: the peer installed nothing.
            self.stamp_floor = self.stamp_floor.max(time.saturating_add(1));
            self.want_handshake = true;
            return Ok(());
        }
        self.renewed |= kind == ANSWER_NEW && self.current.is_some();
        let (i2r, r2i) = pending.hs.dangerously_get_raw_split();
        self.previous = self.current.take();
        self.current = Some(Keys::new(pending.local_index, sender, i2r, r2i, now));
        if self.previous.is_some() {
            self.stats.rekeys += 1;
        }
        self.stats.handshakes += 1;
        Ok(())
    }

    fn open_data<'a>(&mut self, now: Instant, d: &'a mut [u8]) -> Result<&'a [u8], SealError> {
        if d.len() < DATA_HEADER_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let index = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
        let low = u32::from_be_bytes([d[6], d[7], d[8], d[9]]);
        let which = [&self.current, &self.next, &self.previous]
            .iter()
            .position(|k| k.as_ref().is_some_and(|k| k.local_index == index))
            .ok_or(SealError::UnknownIndex)?;
        let keys = match which {
            0 => self.current.as_mut(),
            1 => self.next.as_mut(),
            _ => self.previous.as_mut(),
        }
        .expect("found above");
        if now.saturating_since(keys.created) >= REJECT_AFTER {
            return Err(SealError::Expired);
        }
        let counter = widen_counter(keys.replay.top, low);
        if !keys.replay.check(counter) {
            return Err(SealError::Replay);
        }
        let (header, body) = d.split_at_mut(DATA_HEADER_LEN);
        let (ct, tag) = body.split_at_mut(body.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().expect("split at TAG_LEN");
        keys.recv
            .open(&nonce(counter), header, ct, tag)
            .map_err(|_| SealError::Decrypt)?;
        keys.replay.record(counter);
        if which == 1 {
            // The initiator uses the keys of the rekey: it has the response; switch over.
            self.previous = self.current.take();
            self.current = self.next.take();
        }
        self.stats.opened += 1;
        Ok(&body[..body.len() - TAG_LEN])
    }
}

/// A handshake the [`Acceptor`] accepted: give it to [`Channel::responder`] (new peer) or
/// [`Channel::rekeyed`] (a peer that already has a session).
pub struct Accepted {
    pub(crate) peer_public: [u8; 32],
    /// The initiator's epoch: compare with [`Channel::epoch`] to tell a rekey from a restart.
    pub(crate) epoch: u64,
    /// Length of the response written to `out`; send it back where the init came from.
    pub response_len: usize,
    local: Keypair,
    keys: Keys,
}

/// What the [`Acceptor`]'s caller says of an authenticated initiator (its key and epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The key is not allowed here.
    Refused,
    /// Allowed; no session of this epoch has carried data yet: answered [`ANSWER_NEW`].
    NewSession,
    /// Allowed; a rekey of a session of this epoch that carries data: answered [`ANSWER_SAME`].
    SameSession,
}

/// The answer payload of a response: kind, then the time (big-endian).
fn answer(kind: u8, time: u64) -> [u8; ANSWER_LEN] {
    let mut a = [0u8; ANSWER_LEN];
    a[0] = kind;
    a[1..].copy_from_slice(&time.to_be_bytes());
    a
}

/// Reads an answer payload: (kind, time), `None` if malformed or of an unknown kind.
fn read_answer(p: &[u8]) -> Option<(u8, u64)> {
    if p.len() != ANSWER_LEN || p[0] > ANSWER_BEHIND {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&p[1..]);
    Some((p[0], u64::from_be_bytes(t)))
}

/// The core side of handshakes: checks, rate-limits and answers inits.
pub struct Acceptor {
    local: Keypair,
    mac_key: [u8; 32],
    /// Newest init timestamp seen per peer key (replay protection).
    last_init: HashMap<[u8; 32], u64>,
    /// Token bucket for handshakes that cost a Diffie-Hellman.
    tokens: u32,
    refilled: Instant,
    /// Cookies and per-source limits for handshakes under load.
    cookies: CookieJar,
    stats: SealStats,
}

/// Handshakes an acceptor computes per second at most (bursts up to this many).
pub(crate) const HANDSHAKES_PER_SECOND: u32 = 200;

impl Acceptor {
    pub fn new(local: Keypair) -> Acceptor {
        let mac_key = mac1_key(&local.public);
        let cookies = CookieJar::new(&local.public);
        Acceptor {
            local,
            mac_key,
            last_init: HashMap::new(),
            tokens: HANDSHAKES_PER_SECOND,
            refilled: Instant::ZERO,
            cookies,
            stats: SealStats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn public(&self) -> [u8; 32] {
        self.local.public
    }

    /// Accepts a handshake init from a peer that `admit` (given its key and epoch) allows,
    /// writing the response to `out`. `local_index` is the receiver index the caller reserves
    /// for the new keys. On [`SealError::Behind`] a response is written all the same
    /// (`out[..RESPONSE_LEN]`, no keys): send it back where the init came from. Every init
    /// counts as from one source: see [`Acceptor::accept_from`].
    pub fn accept(
        &mut self,
        now: Instant,
        datagram: &[u8],
        admit: impl Fn(&[u8; 32], u64) -> Admission,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<Accepted, SealError> {
        self.accept_from(now, datagram, &(), admit, local_index, out)
    }

    /// [`Acceptor::accept`] of an init that came from `source` (its address, as the caller
    /// knows it). Under load (more than half the handshakes of a second spent) an init without
    /// the mac2 of `source`'s cookie is refused with [`SealError::Cookie`] and a cookie reply
    /// written to `out[..cookie::REPLY_LEN]`: send it back where the init came from. An init
    /// with that mac2 is computed within its source's own limit and the rest of the budget.
    pub fn accept_from(
        &mut self,
        now: Instant,
        datagram: &[u8],
        source: &impl core::hash::Hash,
        admit: impl Fn(&[u8; 32], u64) -> Admission,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<Accepted, SealError> {
        match self.accept_inner(now, datagram, source, admit, local_index, out) {
            Ok(a) => {
                self.stats.handshakes += 1;
                Ok(a)
            }
            Err(e) => Err(self.stats.refuse(e)),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_since(self.refilled);
        let add = elapsed.as_micros() as u64 * u64::from(HANDSHAKES_PER_SECOND) / 1_000_000;
        if add > 0 {
            self.tokens =
                (u64::from(self.tokens) + add).min(u64::from(HANDSHAKES_PER_SECOND)) as u32;
            self.refilled = now;
        }
    }

    /// Whether the acceptor is under load: inits without mac2 get a cookie reply.
    fn under_load(&self) -> bool {
        self.tokens <= HANDSHAKES_PER_SECOND / 2
    }

    fn accept_inner(
        &mut self,
        now: Instant,
        d: &[u8],
        source: &impl core::hash::Hash,
        admit: impl Fn(&[u8; 32], u64) -> Admission,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<Accepted, SealError> {
        if !is_init(d) {
            return Err(SealError::Malformed);
        }
        if out.len() < RESPONSE_LEN {
            return Err(SealError::NoRoom);
        }
        let (init, mac2) = d.split_at(INIT_LEN);
        if !mac1_ok(&self.mac_key, init) {
            return Err(SealError::BadMac);
        }
        self.refill(now);
        let proven = !mac2.is_empty() && self.cookies.mac2_ok(now, source, init, mac2);
        if proven {
            // Proven by a round trip: its own source's small budget, then any token left.
            if !self.cookies.source_allows(now, source) {
                return Err(SealError::RateLimited);
            }
        } else if self.under_load() {
            let sender = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
            self.cookies
                .write_reply(now, source, sender, &init[INIT_LEN - MAC_LEN..], out);
            return Err(SealError::Cookie);
        }
        if self.tokens == 0 {
            return Err(SealError::RateLimited);
        }
        self.tokens -= 1;
        let sender = u32::from_be_bytes([d[2], d[3], d[4], d[5]]);
        let mut hs = noise_builder()
            .local_private_key(&self.local.private)
            .and_then(|b| b.build_responder())
            .expect("IK responder with its key set");
        let mut payload = [0u8; 32];
        let n = hs
            .read_message(
                &d[INIT_HEADER_LEN..INIT_HEADER_LEN + INIT_NOISE_LEN],
                &mut payload,
            )
            .map_err(|_| SealError::Handshake)?;
        if n != 16 {
            return Err(SealError::Handshake);
        }
        let mut peer_public = [0u8; 32];
        peer_public.copy_from_slice(hs.get_remote_static().ok_or(SealError::Handshake)?);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&payload[..8]);
        let ts = u64::from_be_bytes(ts);
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&payload[8..16]);
        let epoch = u64::from_be_bytes(epoch);
        let admission = admit(&peer_public, epoch);
        if admission == Admission::Refused {
            return Err(SealError::NotAllowed);
        }
        let last = self.last_init.get(&peer_public).copied();
        let kind = match last {
            Some(l) if ts == l => return Err(SealError::Stale),
            Some(l) if ts < l => ANSWER_BEHIND,
            _ if admission == Admission::SameSession => ANSWER_SAME,
            _ => ANSWER_NEW,
        };
        out[0] = VERSION;
        out[1] = KIND_RESPONSE;
        out[2..6].copy_from_slice(&sender.to_be_bytes());
        out[6..10].copy_from_slice(&local_index.to_be_bytes());
        let n = hs
            .write_message(
                &answer(
                    kind,
                    if kind == ANSWER_BEHIND {
                        last.unwrap_or(0)
                    } else {
                        0
                    },
                ),
                &mut out[RESPONSE_HEADER_LEN..RESPONSE_HEADER_LEN + RESPONSE_NOISE_LEN],
            )
            .expect("response fits its fixed size");
        debug_assert_eq!(n, RESPONSE_NOISE_LEN);
        let body = RESPONSE_HEADER_LEN + RESPONSE_NOISE_LEN;
        let m = mac1(&mac1_key(&peer_public), &out[..body]);
        out[body..RESPONSE_LEN].copy_from_slice(&m);
        if kind == ANSWER_BEHIND {
            return Err(SealError::Behind);
        }
        let (i2r, r2i) = hs.dangerously_get_raw_split();
        self.last_init.insert(peer_public, ts);
        Ok(Accepted {
            peer_public,
            epoch,
            response_len: RESPONSE_LEN,
            local: self.local.clone(),
            keys: Keys::new(local_index, sender, r2i, i2r, now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl SealStats {
        /// Refusals of one kind.
        fn refused(&self, e: SealError) -> u64 {
            self.refused.get(&e).copied().unwrap_or(0)
        }
    }

    /// Data packets are sealed by `braid_aead` (compiled apart, for speed): the bytes must be
    /// those of the `chacha20poly1305` crate's ChaCha20-Poly1305, both ways, or peers on the
    /// previous build (and the cookie replies, which use the crate directly) stop interoperating.
    #[test]
    fn data_aead_is_the_chacha20poly1305_crates_both_ways() {
        use chacha20poly1305::aead::AeadInPlace;
        use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
        let key = [0x42u8; 32];
        let ours = Aead::new(&key);
        let crate_ = ChaCha20Poly1305::new((&key).into());
        let data_header = [1u8, KIND_DATA, 0, 0, 0, 7, 0, 0, 0, 9];
        // Every length across the first blocks (braid_aead XORs whole blocks by words and the
        // last partial block by bytes), the packet sizes, and associated data of other lengths.
        let sizes = (0usize..=200).chain([255, 256, 257, 1399, 1400, 1401, 1500]);
        for (i, size) in sizes.enumerate() {
            let header = &data_header[..[10, 10, 0, 3][i % 4]];
            let n = nonce(1 << (i % 12 * 5));
            let plain: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            let mut a = plain.clone();
            let tag_a = ours.seal(&n, header, &mut a);
            let mut b = plain.clone();
            let tag_b = crate_
                .encrypt_in_place_detached((&n).into(), header, &mut b)
                .expect("seals");
            assert_eq!((&a, &tag_a[..]), (&b, &tag_b[..]), "size {size}");
            // Each opens the other's.
            crate_
                .decrypt_in_place_detached((&n).into(), header, &mut a, (&tag_a).into())
                .expect("the crate opens ours");
            assert_eq!(a, plain);
            ours.open(&n, header, &mut b, &tag_b.into())
                .expect("ours opens the crate's");
            assert_eq!(b, plain);
            // A changed byte of the header, the body or the tag is refused, the body unchanged.
            let mut c = plain.clone();
            let tag = ours.seal(&n, header, &mut c);
            let sealed = c.clone();
            let mut bad_header = header.to_vec();
            match bad_header.last_mut() {
                Some(last) => *last ^= 1,
                None => bad_header.push(0),
            }
            assert!(ours.open(&n, &bad_header, &mut c, &tag).is_err());
            let mut bad_tag = tag;
            bad_tag[0] ^= 0x80;
            assert!(ours.open(&n, header, &mut c, &bad_tag).is_err());
            assert_eq!(c, sealed);
            if size > 0 {
                c[size / 2] ^= 4;
                assert!(ours.open(&n, header, &mut c, &tag).is_err());
            }
        }
    }

    const MS: u64 = 1000;

    fn t(ms: u64) -> Instant {
        Instant(ms * MS)
    }

    fn admit_only(k: &[u8; 32], allowed: &[u8; 32]) -> Admission {
        if k == allowed {
            Admission::NewSession
        } else {
            Admission::Refused
        }
    }

    /// Fresh keys for an edge and a core, and the core's acceptor.
    fn fresh() -> (Keypair, Keypair, Acceptor) {
        let (edge_key, core_key) = (Keypair::generate(), Keypair::generate());
        let acceptor = Acceptor::new(core_key.clone());
        (edge_key, core_key, acceptor)
    }

    /// The init `edge` writes at `now` (a handshake is due).
    fn init(edge: &mut Channel, now: Instant) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let n = edge
            .poll_handshake(now, &mut buf)
            .expect("a handshake is due");
        buf[..n].to_vec()
    }

    fn admit_all(_: &[u8; 32], _: u64) -> Admission {
        Admission::NewSession
    }

    struct Pair {
        edge: Channel,
        core: Channel,
        acceptor: Acceptor,
        edge_key: Keypair,
    }

    fn handshake(now: Instant) -> Pair {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut edge = Channel::initiator(&edge_key, core_key.public, now);
        let init = init(&mut edge, now);
        assert_eq!(init.len(), INIT_LEN);
        let mut resp = [0u8; 256];
        let allowed = edge_key.public;
        let acc = acceptor
            .accept(now, &init, |k, _| admit_only(k, &allowed), 77, &mut resp)
            .unwrap();
        assert_eq!(acc.peer_public, edge_key.public);
        let m = acc.response_len;
        let core = Channel::responder(acc, now);
        assert_eq!(
            core.epoch(),
            edge.epoch(),
            "the init carries the initiator's epoch"
        );
        assert!(edge.open(now, &mut resp[..m]).unwrap().is_none());
        assert!(edge.is_established());
        Pair {
            edge,
            core,
            acceptor,
            edge_key,
        }
    }

    fn seal(ch: &mut Channel, now: Instant, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; msg.len() + OVERHEAD];
        let n = ch.seal(now, msg, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn handshake_then_data_both_ways() {
        let mut p = handshake(t(0));
        let mut d = seal(&mut p.edge, t(1), b"hello core");
        assert_eq!(d.len(), 10 + OVERHEAD);
        assert_eq!(receiver_index(&d), Some(77));
        assert_eq!(p.core.open(t(2), &mut d).unwrap(), Some(&b"hello core"[..]));
        assert!(
            p.core.is_established(),
            "first data from the initiator establishes the responder"
        );
        let mut back = seal(&mut p.core, t(3), b"hello edge");
        assert_eq!(
            p.edge.open(t(4), &mut back).unwrap(),
            Some(&b"hello edge"[..])
        );
        assert_eq!(p.edge.stats().sealed, 1);
        assert_eq!(p.core.stats().opened, 1);
    }

    #[test]
    fn replayed_data_is_dropped_and_counted() {
        let mut p = handshake(t(0));
        let d = seal(&mut p.edge, t(1), b"once");
        let mut first = d.clone();
        p.core.open(t(2), &mut first).unwrap();
        let mut again = d.clone();
        assert_eq!(p.core.open(t(3), &mut again), Err(SealError::Replay));
        assert_eq!(p.core.stats().refused(SealError::Replay), 1);
    }

    #[test]
    fn tampered_data_is_dropped_and_counted() {
        let mut p = handshake(t(0));
        let d = seal(&mut p.edge, t(1), b"payload");
        for at in [1usize, 7, 15, d.len() - 1] {
            let mut bad = d.clone();
            bad[at] ^= 0x40;
            assert!(
                p.core.open(t(2), &mut bad).is_err(),
                "flip at byte {at} must be refused"
            );
        }
        // The untouched datagram still opens: failed attempts did not burn its counter.
        let mut good = d.clone();
        assert_eq!(p.core.open(t(3), &mut good).unwrap(), Some(&b"payload"[..]));
        assert!(p.core.stats().refused(SealError::Decrypt) >= 2);
    }

    #[test]
    fn a_counter_is_widened_to_the_nearest_of_the_highest_opened() {
        const S: u64 = 1 << 32;
        assert_eq!(widen_counter(0, 5), 5);
        assert_eq!(widen_counter(0, u32::MAX), u64::from(u32::MAX));
        assert_eq!(widen_counter(S + 10, 0xffff_fff0), S - 16);
        assert_eq!(widen_counter(S - 10, 5), S + 5);
        assert_eq!(widen_counter(7 * S + 3, 2), 7 * S + 2);
        assert_eq!(widen_counter(u64::MAX - 5, u32::MAX), u64::MAX);
    }

    #[test]
    fn counters_cross_the_32_bit_wrap_in_any_order() {
        let mut p = handshake(t(0));
        p.edge.current.as_mut().unwrap().send_counter = (1 << 32) - 50;
        let ds: Vec<_> = (0..100u8).map(|i| seal(&mut p.edge, t(1), &[i])).collect();
        for i in [10usize, 60, 40, 99, 0, 55, 49, 50, 51] {
            let mut d = ds[i].clone();
            assert_eq!(
                p.core.open(t(2), &mut d).unwrap(),
                Some(&[i as u8][..]),
                "datagram {i}"
            );
        }
        let mut again = ds[50].clone();
        assert_eq!(p.core.open(t(3), &mut again), Err(SealError::Replay));
        let mut other = ds[70].clone();
        other[9] ^= 1; // names counter 2^32 + 21 instead of + 20
        assert_eq!(p.core.open(t(3), &mut other), Err(SealError::Decrypt));
        let mut good = ds[70].clone();
        assert_eq!(p.core.open(t(3), &mut good).unwrap(), Some(&[70u8][..]));
    }

    #[test]
    fn out_of_order_within_window_accepted() {
        let mut p = handshake(t(0));
        let ds: Vec<_> = (0..100)
            .map(|i| seal(&mut p.edge, t(1), &[i as u8]))
            .collect();
        for i in (0..100).rev() {
            let mut d = ds[i].clone();
            assert_eq!(p.core.open(t(2), &mut d).unwrap(), Some(&[i as u8][..]));
        }
    }

    #[test]
    fn replay_window_edges() {
        let mut w = ReplayWindow::new();
        assert!(w.check(0));
        w.record(0);
        assert!(!w.check(0));
        w.record(REPLAY_WINDOW * 3);
        assert!(!w.check(5), "far behind the window");
        assert!(w.check(REPLAY_WINDOW * 3 - 10));
        w.record(REPLAY_WINDOW * 3 - 10);
        assert!(!w.check(REPLAY_WINDOW * 3 - 10));
        assert!(w.check(REPLAY_WINDOW * 3 + 1));
        // Jumping far ahead clears every slot that the new window covers.
        w.record(REPLAY_WINDOW * 10);
        assert!(w.check(REPLAY_WINDOW * 10 - 100));
        assert!(!w.check(REPLAY_WINDOW * 10));
    }

    #[test]
    fn wrong_server_key_fails_cheaply() {
        let (edge_key, _, mut acceptor) = fresh();
        let other = Keypair::generate();
        let mut edge = Channel::initiator(&edge_key, other.public, t(0));
        let init = init(&mut edge, t(0));
        let mut resp = [0u8; 256];
        let r = acceptor.accept(t(0), &init, admit_all, 1, &mut resp);
        assert_eq!(
            r.err(),
            Some(SealError::BadMac),
            "refused before any Diffie-Hellman"
        );
        assert_eq!(acceptor.stats.refused(SealError::BadMac), 1);
    }

    #[test]
    fn unknown_client_key_is_refused() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        let init = init(&mut edge, t(0));
        let mut resp = [0u8; 256];
        let r = acceptor.accept(t(0), &init, |_, _| Admission::Refused, 1, &mut resp);
        assert_eq!(r.err(), Some(SealError::NotAllowed));
    }

    #[test]
    fn a_replayed_init_is_refused_and_not_answered() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        let init = init(&mut edge, t(5));
        let mut resp = [0u8; 256];
        assert!(acceptor
            .accept(t(5), &init, admit_all, 1, &mut resp)
            .is_ok());
        // The same init, arriving on the second link (or replayed): nothing written.
        let mut quiet = [0u8; 256];
        let r = acceptor.accept(t(6), &init, admit_all, 2, &mut quiet);
        assert_eq!(r.err(), Some(SealError::Stale));
        assert!(quiet.iter().all(|&b| b == 0), "a copy got an answer");
    }

    #[test]
    fn an_init_behind_the_last_accepted_learns_the_time_and_gets_in_at_once() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut resp = [0u8; 256];
        // A first run of the edge, its clock a day ahead of the second run's.
        let day = 86_400_000;
        let mut first = Channel::initiator(&edge_key, core_key.public, t(day));
        let first_init = init(&mut first, t(day));
        acceptor
            .accept(t(0), &first_init, admit_all, 1, &mut resp)
            .unwrap();
        // The router rebooted without a clock and lost its high-water mark.
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(5));
        let r = acceptor.accept(t(10), &init(&mut edge, t(5)), admit_all, 2, &mut resp);
        assert_eq!(r.err(), Some(SealError::Behind));
        assert_eq!(acceptor.stats.refused(SealError::Behind), 1);
        // The answer is authenticated and installs nothing; the edge goes past that time.
        assert_eq!(edge.open(t(20), &mut resp[..RESPONSE_LEN]), Ok(None));
        assert!(!edge.is_established());
        assert_eq!(edge.stamp_high(), day * MS + 1);
        // A new init at once, not after the retry time.
        let again = init(&mut edge, t(20));
        let acc = acceptor
            .accept(t(20), &again, admit_all, 3, &mut resp)
            .expect("accepted");
        edge.open(t(30), &mut resp[..acc.response_len]).unwrap();
        assert!(edge.is_established());
        // Someone else's answer (tampered) moves nothing.
        let mut other = Channel::initiator(&edge_key, core_key.public, t(5));
        let other_init = init(&mut other, t(40));
        let mut resp2 = [0u8; 256];
        assert_eq!(
            acceptor
                .accept(t(40), &other_init, admit_all, 4, &mut resp2)
                .err(),
            Some(SealError::Behind)
        );
        resp2[30] ^= 1;
        assert!(other.open(t(41), &mut resp2[..RESPONSE_LEN]).is_err());
        assert_eq!(
            other.stamp_high(),
            40_000,
            "only the true answer raises the floor"
        );
    }

    #[test]
    fn stamps_grow_from_the_floor_whatever_the_clock() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut resp = [0u8; 256];
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        edge.raise_stamp_floor(7_000_000);
        edge.raise_stamp_floor(3_000_000); // never lowers
        for i in 0..3 {
            // The same `now` each time (a clock that does not move): still newer every time.
            edge.request_handshake();
            edge.pending = None;
            let init = init(&mut edge, t(1));
            assert_eq!(edge.stamp_high(), 7_000_000 + i);
            assert!(acceptor
                .accept(t(1), &init, admit_all, i as u32, &mut resp)
                .is_ok());
        }
    }

    #[test]
    fn the_answer_tells_a_new_session_from_the_same_one() {
        let mut p = handshake(t(0));
        assert!(!p.edge.take_renewed(), "a first handshake renews nothing");
        let allowed = p.edge_key.public;
        for (admission, renewed) in [
            (Admission::SameSession, false),
            (Admission::NewSession, true),
            (Admission::SameSession, false),
        ] {
            p.edge.request_handshake();
            let init = init(&mut p.edge, t(1));
            let mut resp = [0u8; 256];
            let acc = p
                .acceptor
                .accept(
                    t(1),
                    &init,
                    |k, e| {
                        assert_eq!((*k, e), (allowed, p.edge.epoch()));
                        admission
                    },
                    9,
                    &mut resp,
                )
                .unwrap();
            p.edge.open(t(2), &mut resp[..acc.response_len]).unwrap();
            assert_eq!(p.edge.take_renewed(), renewed, "{admission:?}");
            assert!(!p.edge.take_renewed(), "taken once");
        }
    }

    #[test]
    fn golden_answers() {
        assert_eq!(
            answer(ANSWER_BEHIND, 0x0102_0304_0506_0708),
            [0x02, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]
        );
        assert_eq!(answer(ANSWER_SAME, 0), [0; 9]);
        assert_eq!(answer(ANSWER_NEW, 0)[0], 0x01);
        assert_eq!(
            read_answer(&[0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x00]),
            Some((ANSWER_BEHIND, 256))
        );
        assert_eq!(read_answer(&[0x03, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(read_answer(&[0x00; 8]), None);
        assert_eq!(read_answer(&[0x00; 10]), None);
        assert_eq!((INIT_LEN, RESPONSE_LEN), (134, 83));
    }

    #[test]
    fn tampered_init_and_response_are_refused() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        let init = init(&mut edge, t(0));
        let mut bad = init.clone();
        bad[40] ^= 1;
        let mut resp = [0u8; 256];
        assert_eq!(
            acceptor.accept(t(0), &bad, admit_all, 1, &mut resp).err(),
            Some(SealError::BadMac)
        );
        let acc = acceptor
            .accept(t(0), &init, admit_all, 1, &mut resp)
            .unwrap();
        let mut bad_resp = resp[..acc.response_len].to_vec();
        bad_resp[20] ^= 1;
        assert_eq!(edge.open(t(0), &mut bad_resp), Err(SealError::BadMac));
        assert!(!edge.is_established());
    }

    #[test]
    fn garbage_never_panics() {
        let mut p = handshake(t(0));
        let mut resp = [0u8; 256];
        for len in 0..200usize {
            let mut junk: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let _ = p.core.open(t(1), &mut junk);
            if len > 1 {
                junk[0] = VERSION;
                junk[1] = KIND_DATA;
                let _ = p.core.open(t(1), &mut junk);
                junk[1] = KIND_INIT;
                let _ = p
                    .acceptor
                    .accept(t(1), &junk, |_, _| Admission::NewSession, 9, &mut resp);
            }
        }
    }

    #[test]
    fn rekey_keeps_traffic_flowing() {
        let mut p = handshake(t(0));
        let mut first = seal(&mut p.edge, t(1), b"first");
        p.core.open(t(1), &mut first).unwrap();
        let mut buf = [0u8; 256];
        let later = t(0) + REKEY_AFTER;
        assert!(
            p.edge.poll_handshake(t(1000), &mut buf).is_none(),
            "not due yet"
        );
        assert_eq!(p.edge.poll_timeout(), Some(later));
        // A packet sealed before the rekey, still in flight on a slow link.
        let old = seal(&mut p.edge, later, b"old keys");
        let n = p.edge.poll_handshake(later, &mut buf).expect("rekey due");
        let mut resp = [0u8; 256];
        let allowed = p.edge_key.public;
        let acc = p
            .acceptor
            .accept(
                later,
                &buf[..n],
                |k, _| {
                    if *k == allowed {
                        Admission::SameSession
                    } else {
                        Admission::Refused
                    }
                },
                78,
                &mut resp,
            )
            .unwrap();
        let m = acc.response_len;
        p.core.rekeyed(acc);
        // The core keeps sending with the old keys until the edge shows it has the new ones.
        let mut down = seal(&mut p.core, later, b"down");
        assert_eq!(p.edge.open(later, &mut down).unwrap(), Some(&b"down"[..]));
        p.edge.open(later, &mut resp[..m]).unwrap();
        let mut new = seal(&mut p.edge, later, b"new keys");
        assert_eq!(receiver_index(&new), Some(78));
        assert_eq!(
            p.core.open(later, &mut new).unwrap(),
            Some(&b"new keys"[..])
        );
        let mut old = old;
        assert_eq!(
            p.core.open(later, &mut old).unwrap(),
            Some(&b"old keys"[..])
        );
        let mut down = seal(&mut p.core, later, b"down2");
        let edge_new_index = p.edge.current.as_ref().unwrap().local_index;
        assert_eq!(
            receiver_index(&down),
            Some(edge_new_index),
            "the core switched to the new keys"
        );
        assert_eq!(p.edge.open(later, &mut down).unwrap(), Some(&b"down2"[..]));
        assert_eq!(p.edge.stats().rekeys, 1);
        assert_eq!(p.core.stats().rekeys, 1);
    }

    #[test]
    fn expired_keys_refuse_to_seal() {
        let mut p = handshake(t(0));
        let mut out = [0u8; 64];
        assert_eq!(
            p.edge.seal(t(0) + REJECT_AFTER, b"x", &mut out),
            Err(SealError::Expired)
        );
    }

    #[test]
    fn unanswered_init_is_retried() {
        let edge_key = Keypair::generate();
        let mut edge = Channel::initiator(&edge_key, Keypair::generate().public, t(0));
        let mut buf = [0u8; 256];
        assert!(edge.poll_handshake(t(0), &mut buf).is_some());
        assert!(edge.poll_handshake(t(500), &mut buf).is_none());
        assert_eq!(edge.poll_timeout(), Some(t(1000)));
        assert!(edge.poll_handshake(t(1000), &mut buf).is_some());
    }

    #[test]
    fn acceptor_rate_limits_handshakes() {
        let (edge_key, core_key, mut acceptor) = fresh();
        let mut resp = [0u8; 256];
        let (mut computed, mut cookies) = (0, 0);
        for i in 0..(HANDSHAKES_PER_SECOND + 50) {
            let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
            let init = init(&mut edge, Instant(u64::from(i) + 1));
            match acceptor.accept(t(0), &init, admit_all, i, &mut resp) {
                Err(SealError::Cookie) => cookies += 1,
                _ => computed += 1,
            }
        }
        // Past half the second's budget, inits without mac2 are answered with a cookie.
        assert_eq!(computed, HANDSHAKES_PER_SECOND / 2);
        assert_eq!(cookies, HANDSHAKES_PER_SECOND / 2 + 50);
    }

    fn source(n: u32) -> std::net::SocketAddr {
        std::net::SocketAddr::from((n.to_be_bytes(), 40000))
    }

    /// A flood of forged inits (valid mac1, 10,000 a second, each from another address): the
    /// acceptor computes a bounded number of them, and a configured edge, answered with a
    /// cookie at its first try, gets in at its second; its rekey (cookie in hand) at its first.
    #[test]
    fn under_a_forged_flood_a_real_edge_gets_in_at_its_second_try() {
        let (edge_key, core_key, mut acc) = fresh();
        let forged: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                let mut ch = Channel::initiator(&Keypair::generate(), core_key.public, t(0));
                init(&mut ch, t(i))
            })
            .collect();
        let allowed = edge_key.public;
        let admit = move |k: &[u8; 32], _| admit_only(k, &allowed);
        let edge_src = source(0xc633_6407);
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        let (mut forged_computed, mut tries, mut rekey_tries) = (0u32, 0, 0);
        let mut established_at = None;
        let mut out = [0u8; 256];
        let mut init = [0u8; 256];
        for ms in 0..4000u64 {
            let now = t(ms);
            for j in 0..10u32 {
                let src = source(ms as u32 * 10 + j);
                let r = acc.accept_from(now, &forged[j as usize % 8], &src, admit, j, &mut out);
                if !matches!(r, Err(SealError::Cookie) | Err(SealError::RateLimited)) {
                    forged_computed += 1;
                }
            }
            if ms == 2500 {
                edge.request_handshake();
            }
            if ms < 500 {
                continue; // the flood first
            }
            let Some(n) = edge.poll_handshake(now, &mut init) else {
                continue;
            };
            if established_at.is_none() {
                tries += 1;
            } else {
                rekey_tries += 1;
            }
            match acc.accept_from(now, &init[..n], &edge_src, admit, 99, &mut out) {
                Ok(a) => {
                    edge.open(now, &mut out[..a.response_len]).unwrap();
                    assert!(edge.is_established());
                    if established_at.is_some() {
                        break;
                    }
                    established_at = Some(ms);
                }
                Err(SealError::Cookie) => {
                    assert_eq!(n, INIT_LEN, "no cookie yet: no mac2");
                    edge.handle_cookie(now, &out[..cookie::REPLY_LEN]).unwrap();
                }
                Err(e) => panic!("the edge's init at {ms} ms: {e}"),
            }
        }
        assert_eq!(tries, 2, "in at the second try");
        assert_eq!(established_at, Some(1500));
        assert_eq!(rekey_tries, 1, "the rekey carries mac2 at once");
        // 4 s of flood: the first burst plus half a budget per second at most.
        assert!(
            forged_computed <= HANDSHAKES_PER_SECOND + 4 * HANDSHAKES_PER_SECOND / 2,
            "{forged_computed}"
        );
    }

    #[test]
    fn a_cookie_reply_for_another_init_is_refused() {
        let (edge_key, core_key, mut acc) = fresh();
        let mut edge = Channel::initiator(&edge_key, core_key.public, t(0));
        let first = init(&mut edge, t(0));
        let mut reply = [0u8; 256];
        // Spend the budget so that the acceptor answers with a cookie.
        acc.tokens = 0;
        let r = acc.accept_from(t(0), &first, &source(1), admit_all, 1, &mut reply);
        assert_eq!(r.err(), Some(SealError::Cookie));
        let reply = &reply[..cookie::REPLY_LEN];
        // The edge retried meanwhile: the reply answers an init it no longer waits for.
        init(&mut edge, t(1000));
        assert_eq!(
            edge.handle_cookie(t(1000), reply),
            Err(SealError::UnknownIndex)
        );
        assert_eq!(init(&mut edge, t(2000)).len(), INIT_LEN, "no cookie taken");
    }

    #[test]
    fn public_key_matches_wireguard() {
        // Test vector: RFC 7748 section 6.1 (Alice).
        let private: [u8; 32] =
            hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let kp = Keypair::from_private(private);
        assert_eq!(
            kp.public,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for i in 0..32 {
            out[i] = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
