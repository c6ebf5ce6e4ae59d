//! ChaCha20-Poly1305 (RFC 8439, the `chacha20poly1305` crate) for braid's data packets, behind
//! two non-generic functions. The crate exists for its compilation unit: the generic AEAD code is
//! instantiated here, not in braid, so the router profile can optimise this crate for speed
//! (`[profile.router.package.braid-aead]`) while braid stays optimised for size. At opt-level
//! "z" the portable ChaCha20 on MIPS calls its quarter round as a function and copies its state
//! through memcpy: 141,000 instructions to seal a 1400-byte packet on mips_24kc, against about
//! 60,000 at opt-level 3 (bench/cpu/instructions.md).
#![no_std]
#![forbid(unsafe_code)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// A key, set up once.
#[derive(Clone)]
pub struct Aead(ChaCha20Poly1305);

/// The tag did not authenticate the ciphertext and associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTag;

impl Aead {
    pub fn new(key: &[u8; 32]) -> Aead {
        Aead(ChaCha20Poly1305::new(key.into()))
    }

    /// Encrypts `buf` in place; returns the tag over `aad` and the ciphertext.
    #[inline(never)]
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_in_place_detached(nonce.into(), aad, buf)
            .expect("a packet is far below ChaCha20's 256 GiB limit")
            .into()
    }

    /// Checks `tag` and decrypts `buf` in place (left as it was if the tag is bad).
    #[inline(never)]
    pub fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), BadTag> {
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
            .map_err(|_| BadTag)
    }
}
