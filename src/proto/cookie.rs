//! Handshakes under load: WireGuard's cookie (mac2, bound to the source address) and a limit
//! per proven source, so that a flood of forged inits cannot starve a real edge's handshake.
//!
//! ```text
//! init + mac2   [init as in seal, mac1 included][mac2 16]      mac2 = MAC(cookie, init)
//! cookie reply  [1][4][receiver u32][nonce 12][cookie 16][tag 16]
//!               ChaCha20-Poly1305, key = HASH("braid cookie" || core public), AAD = the init's mac1
//! ```
//! - mac1 (keyed by the core's public key, on every router) only keeps out junk and packets for
//!   another core; anyone can forge a valid one. A Diffie-Hellman costs far more, so the
//!   [`Acceptor`](super::seal::Acceptor) computes a bounded number per second.
//! - Under load (more than half of that budget spent), an init without a valid mac2 is not
//!   computed: it is answered with a cookie reply, 50 bytes (smaller than the init: no
//!   amplification). The cookie is a MAC of the init's source address under a secret that
//!   changes every [`COOKIE_SECRET_LIFE`], so only a sender that receives at its address can
//!   learn it: forged source addresses never can.
//! - The initiator keeps the cookie for [`COOKIE_LIFE`] and sends its next init (the retry, a
//!   second later) with mac2. A proven init draws on the part of the budget the unproven ones
//!   may not touch, after a small limit per source ([`SourceLimits`]): a configured edge gets in
//!   at its second try whatever the flood from forged addresses.
//! - Compatible with cores and edges of the same protocol version that know no cookies: a
//!   cookie reply is sent only by a core that knows them, and an init carries mac2 only after a
//!   cookie reply. An older edge drops the reply (unknown kind) and gets in when the load ends.
//!
//! Sans-IO: time is passed in; randomness (the secret, nonces) comes from the OS.

use core::hash::{Hash, Hasher};
use core::time::Duration;
use std::collections::HashMap;

use blake2::digest::consts::U16;
use blake2::digest::{Digest, Mac};
use blake2::{Blake2s256, Blake2sMac};
use braid_aead::Aead;

use super::wire::VERSION;
use super::Instant;

/// The kind byte of a cookie reply.
pub(crate) const KIND_COOKIE: u8 = 4;
/// Bytes of a cookie, of a MAC and of the nonce of a cookie reply.
pub(crate) const COOKIE_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a cookie reply.
pub(crate) const REPLY_LEN: usize = 6 + NONCE_LEN + COOKIE_LEN + TAG_LEN;
/// The core's cookie secret changes this often (cookies of the previous secret still count).
pub(crate) const COOKIE_SECRET_LIFE: Duration = Duration::from_secs(120);
/// The initiator uses a cookie this long after receiving it.
pub(crate) const COOKIE_LIFE: Duration = Duration::from_secs(110);

/// Proven inits one source may have computed in a burst...
pub(crate) const SOURCE_BURST: u32 = 5;
/// ... and per second after it.
pub(crate) const SOURCE_PER_SECOND: u32 = 2;
/// Sources remembered at most (the oldest full buckets are forgotten first).
pub(crate) const SOURCES_MAX: usize = 4096;

/// The key that encrypts cookie replies to initiators of the core with this public key.
pub(crate) fn reply_key(core_public: &[u8; 32]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(b"braid cookie");
    h.update(core_public);
    h.finalize().into()
}

/// A keyed 16-byte BLAKE2s MAC.
pub(crate) fn mac(key: &[u8], msg: &[u8]) -> [u8; COOKIE_LEN] {
    let mut m = <Blake2sMac<U16> as Mac>::new_from_slice(key).expect("key fits BLAKE2s");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Feeds a source address's `Hash` into a MAC: any address type (`SocketAddr`, a TCP
/// connection id, a simulator's link) binds a cookie, consistently within one process.
struct MacHasher(Blake2sMac<U16>);

impl Hasher for MacHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0 // unused: the MAC is read by `cookie`
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b
}

/// The core's side: makes cookies, checks mac2, limits each proven source.
pub(crate) struct CookieJar {
    secret: [u8; 32],
    previous: Option<[u8; 32]>,
    changed: Option<Instant>,
    reply_key: [u8; 32],
    sources: SourceLimits,
}

impl CookieJar {
    pub(crate) fn new(core_public: &[u8; 32]) -> CookieJar {
        CookieJar {
            secret: random(),
            previous: None,
            changed: None,
            reply_key: reply_key(core_public),
            sources: SourceLimits::default(),
        }
    }

    fn rotate(&mut self, now: Instant) {
        match self.changed {
            None => self.changed = Some(now),
            Some(t) if now.saturating_since(t) >= COOKIE_SECRET_LIFE => {
                self.previous = Some(self.secret);
                self.secret = random();
                self.changed = Some(now);
            }
            Some(_) => {}
        }
    }

    fn cookie_with(secret: &[u8; 32], source: &impl Hash) -> [u8; COOKIE_LEN] {
        let mut h = MacHasher(
            <Blake2sMac<U16> as Mac>::new_from_slice(secret).expect("32-byte key fits BLAKE2s"),
        );
        source.hash(&mut h);
        h.0.finalize().into_bytes().into()
    }

    /// The cookie of `source` now.
    pub(crate) fn cookie(&mut self, now: Instant, source: &impl Hash) -> [u8; COOKIE_LEN] {
        self.rotate(now);
        Self::cookie_with(&self.secret, source)
    }

    /// Whether `init` (mac1 checked, `body` = everything before mac2) carries the mac2 of a
    /// cookie given to `source` under the current or the previous secret.
    pub(crate) fn mac2_ok(
        &mut self,
        now: Instant,
        source: &impl Hash,
        body: &[u8],
        mac2: &[u8],
    ) -> bool {
        self.rotate(now);
        [Some(self.secret), self.previous]
            .into_iter()
            .flatten()
            .any(|s| equal(&mac(&Self::cookie_with(&s, source), body), mac2))
    }

    /// Writes the cookie reply to an init (`sender` index, `mac1`) from `source` into `out`
    /// (at least [`REPLY_LEN`] bytes); returns its length.
    pub(crate) fn write_reply(
        &mut self,
        now: Instant,
        source: &impl Hash,
        sender: u32,
        mac1: &[u8],
        out: &mut [u8],
    ) -> usize {
        let cookie = self.cookie(now, source);
        let nonce: [u8; NONCE_LEN] = random();
        out[0] = VERSION;
        out[1] = KIND_COOKIE;
        out[2..6].copy_from_slice(&sender.to_be_bytes());
        out[6..6 + NONCE_LEN].copy_from_slice(&nonce);
        let body = &mut out[6 + NONCE_LEN..6 + NONCE_LEN + COOKIE_LEN];
        body.copy_from_slice(&cookie);
        let tag = Aead::new(&self.reply_key).seal(&nonce, mac1, body);
        out[6 + NONCE_LEN + COOKIE_LEN..REPLY_LEN].copy_from_slice(&tag);
        REPLY_LEN
    }

    /// Whether a proven init from `source` may be computed now (its own small budget).
    pub(crate) fn source_allows(&mut self, now: Instant, source: &impl Hash) -> bool {
        let key = u64::from_le_bytes(
            self.cookie(now, source)[..8]
                .try_into()
                .expect("8 of 16 bytes"),
        );
        self.sources.take(now, key)
    }
}

/// Token buckets per source (by a keyed hash of its address), bounded in number.
#[derive(Default)]
pub(crate) struct SourceLimits {
    buckets: HashMap<u64, (u32, Instant)>,
}

impl SourceLimits {
    /// Takes one token of `source`'s bucket, if it has one.
    pub(crate) fn take(&mut self, now: Instant, source: u64) -> bool {
        if !self.buckets.contains_key(&source) && self.buckets.len() >= SOURCES_MAX {
            // Forget the sources whose bucket has refilled (they lose nothing).
            let full =
                Duration::from_millis(u64::from(SOURCE_BURST) * 1000) / SOURCE_PER_SECOND.max(1);
            self.buckets
                .retain(|_, (_, at)| now.saturating_since(*at) < full);
            if self.buckets.len() >= SOURCES_MAX {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(source).or_insert((SOURCE_BURST, now));
        let add =
            now.saturating_since(*at).as_micros() as u64 * u64::from(SOURCE_PER_SECOND) / 1_000_000;
        if add > 0 {
            *tokens = (u64::from(*tokens) + add).min(u64::from(SOURCE_BURST)) as u32;
            *at = now;
        }
        if *tokens == 0 {
            return false;
        }
        *tokens -= 1;
        true
    }
}

/// The initiator's side: opens a cookie reply to its pending init (whose `mac1` it kept) and
/// gives the cookie, or `None` if the reply is not for that init or not from that core.
pub fn open_reply(core_public: &[u8; 32], mac1: &[u8], reply: &[u8]) -> Option<[u8; COOKIE_LEN]> {
    if reply.len() != REPLY_LEN || reply[0] != VERSION || reply[1] != KIND_COOKIE {
        return None;
    }
    let nonce: &[u8; NONCE_LEN] = reply[6..6 + NONCE_LEN].try_into().ok()?;
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&reply[6 + NONCE_LEN..6 + NONCE_LEN + COOKIE_LEN]);
    let tag: &[u8; TAG_LEN] = reply[6 + NONCE_LEN + COOKIE_LEN..].try_into().ok()?;
    Aead::new(&reply_key(core_public))
        .open(nonce, mac1, &mut cookie, tag)
        .ok()?;
    Some(cookie)
}

/// Whether a datagram is a cookie reply (for the initiator's [`Channel`](super::seal::Channel)).
pub(crate) fn is_reply(datagram: &[u8]) -> bool {
    datagram.len() == REPLY_LEN && datagram[0] == VERSION && datagram[1] == KIND_COOKIE
}

/// The receiver index of a cookie reply (the initiator's index in its init).
pub fn reply_receiver(reply: &[u8]) -> Option<u32> {
    is_reply(reply).then(|| u32::from_be_bytes([reply[2], reply[3], reply[4], reply[5]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    impl SourceLimits {
        fn len(&self) -> usize {
            self.buckets.len()
        }
    }

    fn t(ms: u64) -> Instant {
        Instant(ms * 1000)
    }

    const PUBLIC: [u8; 32] = [7; 32];

    fn src(last: u8) -> SocketAddr {
        SocketAddr::from(([203, 0, 113, last], 40000))
    }

    #[test]
    fn a_cookie_proves_its_source_only() {
        let mut jar = CookieJar::new(&PUBLIC);
        let init = [0x5au8; 134];
        let mac1 = &init[118..];
        let mut reply = [0u8; REPLY_LEN];
        assert_eq!(
            jar.write_reply(t(0), &src(1), 77, mac1, &mut reply),
            REPLY_LEN
        );
        assert!(is_reply(&reply));
        assert_eq!(reply_receiver(&reply), Some(77));
        // Only the initiator that sent that init (its mac1) opens it, with the core's key.
        let cookie = open_reply(&PUBLIC, mac1, &reply).expect("opens");
        assert_eq!(open_reply(&[8; 32], mac1, &reply), None);
        assert_eq!(open_reply(&PUBLIC, &[0; 16], &reply), None);
        let mut tampered = reply;
        tampered[20] ^= 1;
        assert_eq!(open_reply(&PUBLIC, mac1, &tampered), None);

        let mac2 = mac(&cookie, &init);
        assert!(jar.mac2_ok(t(1000), &src(1), &init, &mac2));
        assert!(
            !jar.mac2_ok(t(1000), &src(2), &init, &mac2),
            "another source"
        );
        assert!(
            !jar.mac2_ok(t(1000), &src(1), &init[1..], &mac2),
            "another init"
        );
        // Still good after one change of secret, not after two.
        assert!(jar.mac2_ok(t(1000 + 130_000), &src(1), &init, &mac2));
        assert!(!jar.mac2_ok(t(1000 + 260_000), &src(1), &init, &mac2));
    }

    /// Cookie replies are sealed by `braid_aead` since session 17 (before: the
    /// `chacha20poly1305` crate directly): the bytes on the wire are the crate's, both ways, so
    /// edges and cores of either build still understand each other's replies.
    #[test]
    fn reply_bytes_are_the_chacha20poly1305_crates() {
        use chacha20poly1305::aead::AeadInPlace;
        use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
        let mut jar = CookieJar::new(&PUBLIC);
        let mac1 = [0xc3u8; 16];
        let mut reply = [0u8; REPLY_LEN];
        jar.write_reply(t(0), &src(1), 77, &mac1, &mut reply);
        let crate_ = ChaCha20Poly1305::new((&reply_key(&PUBLIC)).into());
        let nonce = &reply[6..6 + NONCE_LEN];
        let mut want = jar.cookie(t(0), &src(1));
        let tag = crate_
            .encrypt_in_place_detached(nonce.into(), &mac1, &mut want)
            .expect("seals");
        assert_eq!(&reply[6 + NONCE_LEN..6 + NONCE_LEN + COOKIE_LEN], &want[..]);
        assert_eq!(&reply[6 + NONCE_LEN + COOKIE_LEN..], &tag[..]);
        // A reply the crate sealed (another nonce, another cookie) opens here.
        let mut theirs = reply;
        theirs[6..6 + NONCE_LEN].copy_from_slice(&[9; NONCE_LEN]);
        let mut body = [0x77u8; COOKIE_LEN];
        let tag = crate_
            .encrypt_in_place_detached((&[9u8; NONCE_LEN]).into(), &mac1, &mut body)
            .expect("seals");
        theirs[6 + NONCE_LEN..6 + NONCE_LEN + COOKIE_LEN].copy_from_slice(&body);
        theirs[6 + NONCE_LEN + COOKIE_LEN..].copy_from_slice(&tag);
        assert_eq!(
            open_reply(&PUBLIC, &mac1, &theirs),
            Some([0x77; COOKIE_LEN])
        );
    }

    #[test]
    fn each_source_has_its_own_small_budget() {
        let mut jar = CookieJar::new(&PUBLIC);
        for _ in 0..SOURCE_BURST {
            assert!(jar.source_allows(t(0), &src(1)));
        }
        assert!(!jar.source_allows(t(0), &src(1)));
        assert!(
            jar.source_allows(t(0), &src(2)),
            "another source is not affected"
        );
        assert!(
            jar.source_allows(t(500), &src(1)),
            "refilled at 2 per second"
        );
        assert!(!jar.source_allows(t(500), &src(1)));
    }

    #[test]
    fn the_source_table_is_bounded() {
        let mut l = SourceLimits::default();
        for s in 0..SOURCES_MAX as u64 {
            assert!(l.take(t(0), s));
        }
        assert!(!l.take(t(0), u64::MAX), "full of busy sources: refused");
        assert_eq!(l.len(), SOURCES_MAX);
        // Once they have refilled they are forgotten and make room.
        assert!(l.take(t(10_000), u64::MAX));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn junk_replies_never_panic() {
        for len in 0..80 {
            let mut junk = vec![0xa5u8; len];
            if len > 1 {
                junk[0] = VERSION;
                junk[1] = KIND_COOKIE;
            }
            assert_eq!(open_reply(&PUBLIC, &[0; 16], &junk), None);
            let _ = reply_receiver(&junk);
        }
    }
}
