//! ChaCha20-Poly1305 (RFC 8439) for braid's data packets, behind two non-generic functions.
//!
//! The crate exists for its compilation unit: the generic cipher code is instantiated here, not
//! in braid, so the router profile can optimise this crate for speed
//! (`[profile.router.package.braid-aead]`) while braid stays optimised for size. At opt-level
//! "z" the portable ChaCha20 on MIPS calls its quarter round as a function and copies its state
//! through memcpy: 141,000 instructions to seal a 1400-byte packet on mips_24kc, against about
//! 62,000 at opt-level 3 (bench/cpu/instructions.md).
//!
//! The primitives are the `chacha20` and `poly1305` crates' (the versions `chacha20poly1305`
//! links); the AEAD construction of RFC 8439 §2.8 is put together here as the
//! `chacha20poly1305` crate (0.10) does it, with one difference in the glue: the keystream is
//! written a 64-byte block at a time (`write_keystream_block`) and XORed into the packet a 32-bit
//! word at a time. Through the `cipher` crate's `apply_keystream`, each block was XORed
//! byte by byte through two stack copies and a memset: on mips_24kc (no SIMD) that glue cost
//! about 700 of the 1,700 instructions of a block. The bytes are the `chacha20poly1305`
//! crate's exactly (tests below, and braid's `data_aead_is_the_chacha20poly1305_crates_both_ways`).
//! x86 builds seal and open with the `chacha20poly1305` crate itself (its AVX2 glue was faster
//! there, see [`Aead::seal`]); the construction here is what MIPS and ARM run, and what the
//! tests hold to the crate's bytes on every host.
#![no_std]
#![forbid(unsafe_code)]

use chacha20::cipher::consts::U10;
use chacha20::cipher::{KeyIvInit, StreamCipherCore};
use chacha20::ChaChaCore;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use zeroize::Zeroize;

/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// ChaCha20: 20 rounds (10 double rounds), 96-bit nonce, 32-bit block counter (RFC 8439).
type ChaCha20Core = ChaChaCore<U10>;
/// One ChaCha20 block of keystream.
type Block = chacha20::cipher::Block<ChaCha20Core>;
const BLOCK_LEN: usize = 64;

/// A key, set up once (the key schedule of ChaCha20 is the key itself: each packet starts its
/// cipher from the key and the packet's nonce).
#[derive(Clone)]
pub struct Aead {
    key: [u8; 32],
}

impl Drop for Aead {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// The tag did not authenticate the ciphertext and associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTag;

impl Aead {
    pub fn new(key: &[u8; 32]) -> Aead {
        Aead { key: *key }
    }

    /// The cipher at block 1 and the MAC keyed by block 0's first 32 bytes (RFC 8439 §2.6),
    /// with the associated data already in it (§2.8).
    #[inline(always)]
    fn start(&self, nonce: &[u8; 12], aad: &[u8], len: usize) -> (ChaCha20Core, Poly1305) {
        // ChaCha20's 32-bit block counter: 256 GiB per nonce (only reachable on 64-bit hosts).
        assert!(
            (len as u64) / (BLOCK_LEN as u64) < u64::from(u32::MAX),
            "a packet is far below ChaCha20's 256 GiB limit"
        );
        let mut cipher = ChaCha20Core::new((&self.key).into(), nonce.into());
        let mut block = Block::default();
        cipher.write_keystream_block(&mut block);
        let mut mac = Poly1305::new(poly1305::Key::from_slice(&block[..32]));
        block.zeroize();
        mac.update_padded(aad);
        (cipher, mac)
    }

    /// Encrypts `buf` in place; returns the tag over `aad` and the ciphertext.
    ///
    /// On x86 the `chacha20poly1305` crate itself (its AVX2 glue; session 17 counted this
    /// crate's own glue 4.9 % slower on the x86_64 core's per-packet path); elsewhere this
    /// crate's.
    #[inline(never)]
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            use chacha20poly1305::aead::{AeadInPlace, KeyInit};
            chacha20poly1305::ChaCha20Poly1305::new((&self.key).into())
                .encrypt_in_place_detached(nonce.into(), aad, buf)
                .expect("a packet is far below ChaCha20's 256 GiB limit")
                .into()
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        self.seal_composed(nonce, aad, buf)
    }

    /// [`seal`](Self::seal) as this crate puts it together (what non-x86 builds use).
    #[cfg_attr(any(target_arch = "x86", target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    fn seal_composed(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let (mut cipher, mut mac) = self.start(nonce, aad, buf.len());
        apply_keystream(&mut cipher, buf);
        mac.update_padded(buf);
        lengths(&mut mac, aad.len(), buf.len());
        mac.finalize().into()
    }

    /// Checks `tag` (in constant time) and decrypts `buf` in place (left as it was if the tag
    /// is bad).
    #[inline(never)]
    pub fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), BadTag> {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            use chacha20poly1305::aead::{AeadInPlace, KeyInit};
            chacha20poly1305::ChaCha20Poly1305::new((&self.key).into())
                .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
                .map_err(|_| BadTag)
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        self.open_composed(nonce, aad, buf, tag)
    }

    /// [`open`](Self::open) as this crate puts it together (what non-x86 builds use).
    #[cfg_attr(any(target_arch = "x86", target_arch = "x86_64"), allow(dead_code))]
    #[inline(always)]
    fn open_composed(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), BadTag> {
        let (mut cipher, mut mac) = self.start(nonce, aad, buf.len());
        mac.update_padded(buf);
        lengths(&mut mac, aad.len(), buf.len());
        mac.verify(tag.into()).map_err(|_| BadTag)?;
        apply_keystream(&mut cipher, buf);
        Ok(())
    }
}

/// The last Poly1305 block of RFC 8439 §2.8: both lengths, 64-bit little endian.
#[inline(always)]
fn lengths(mac: &mut Poly1305, aad: usize, data: usize) {
    let mut block = poly1305::Block::default();
    block[..8].copy_from_slice(&(aad as u64).to_le_bytes());
    block[8..].copy_from_slice(&(data as u64).to_le_bytes());
    mac.update(&[block]);
}

/// XORs the keystream from the cipher's current block on into `buf`: whole blocks a 32-bit
/// word at a time, the last partial block byte by byte.
#[inline(always)]
fn apply_keystream(cipher: &mut ChaCha20Core, buf: &mut [u8]) {
    let mut ks = Block::default();
    let mut blocks = buf.chunks_exact_mut(BLOCK_LEN);
    for data in &mut blocks {
        cipher.write_keystream_block(&mut ks);
        for (d, k) in data.chunks_exact_mut(4).zip(ks.chunks_exact(4)) {
            let x = u32::from_ne_bytes([d[0], d[1], d[2], d[3]])
                ^ u32::from_ne_bytes([k[0], k[1], k[2], k[3]]);
            d.copy_from_slice(&x.to_ne_bytes());
        }
    }
    let tail = blocks.into_remainder();
    if !tail.is_empty() {
        cipher.write_keystream_block(&mut ks);
        for (d, k) in tail.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
    }
    ks.zeroize();
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// RFC 8439 §2.8.2: the AEAD test vector.
    #[test]
    fn rfc8439_aead_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one \
tip for the future, sunscreen would be it.";
        let mut buf = plain.to_vec();
        let tag = Aead::new(&key).seal(&nonce, &aad, &mut buf);
        assert_eq!(
            &buf[..16],
            &[
                0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef,
                0x7e, 0xc2
            ]
        );
        assert_eq!(&buf[112..], &[0x61, 0x16]);
        assert_eq!(
            tag,
            [
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
        Aead::new(&key)
            .open(&nonce, &aad, &mut buf, &tag)
            .expect("opens");
        assert_eq!(&buf[..], &plain[..]);
    }

    /// This crate's construction seals and opens as `seal`/`open` do: on x86 those are the
    /// `chacha20poly1305` crate's, so this compares the two there (elsewhere they are the same
    /// code, and braid's `data_aead_is_the_chacha20poly1305_crates_both_ways` compares them
    /// with the crate under `cross/build.sh test`).
    #[test]
    fn composed_is_the_crates() {
        let a = Aead::new(&[3u8; 32]);
        for size in (0..=200).chain([255, 256, 257, 1399, 1400, 1401, 4096]) {
            for aad_len in [0, 3, 10] {
                let nonce = [size as u8; 12];
                let aad = [0x5au8; 10];
                let aad = &aad[..aad_len];
                let plain: Vec<u8> = (0..size).map(|b| (b * 7) as u8).collect();
                let mut x = plain.clone();
                let tx = a.seal(&nonce, aad, &mut x);
                let mut y = plain.clone();
                let ty = a.seal_composed(&nonce, aad, &mut y);
                assert_eq!((&x, tx), (&y, ty), "size {size}, aad {aad_len}");
                let mut bad = ty;
                bad[0] ^= 1;
                assert_eq!(a.open_composed(&nonce, aad, &mut x, &bad), Err(BadTag));
                assert_eq!(x, y);
                a.open_composed(&nonce, aad, &mut y, &ty).expect("opens");
                assert_eq!(y, plain);
            }
        }
    }

    /// A bad tag, associated data or ciphertext is refused and leaves the buffer as it was,
    /// at lengths around the block edges. (That the bytes are the `chacha20poly1305` crate's
    /// is braid's test `data_aead_is_the_chacha20poly1305_crates_both_ways`: this crate has no
    /// dev-dependencies, so that `cargo test -p braid-aead` runs outside a workspace.)
    #[test]
    fn refuses_what_it_did_not_seal() {
        let ours = Aead::new(&[9u8; 32]);
        for size in (0..=130).chain([1399, 1400, 1401]) {
            let nonce = [size as u8; 12];
            let aad = [0xa5u8; 10];
            let plain: Vec<u8> = (0..size).map(|b| (b * 31) as u8).collect();
            let mut buf = plain.clone();
            let tag = ours.seal(&nonce, &aad, &mut buf);
            let sealed = buf.clone();
            let mut bad = tag;
            bad[15] ^= 1;
            assert_eq!(ours.open(&nonce, &aad, &mut buf, &bad), Err(BadTag));
            assert_eq!(ours.open(&nonce, &aad[..9], &mut buf, &tag), Err(BadTag));
            if size > 0 {
                buf[size - 1] ^= 0x80;
                assert_eq!(ours.open(&nonce, &aad, &mut buf, &tag), Err(BadTag));
                buf[size - 1] ^= 0x80;
            }
            assert_eq!(
                buf, sealed,
                "size {size}: refused packets stay as they were"
            );
            ours.open(&nonce, &aad, &mut buf, &tag).expect("opens");
            assert_eq!(buf, plain, "size {size}");
        }
    }
}
