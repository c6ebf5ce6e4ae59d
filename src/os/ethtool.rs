//! A device's offload features, read and set by name over the ethtool ioctl (`SIOCETHTOOL`):
//! what `ethtool -k` / `ethtool -K` do, without running the program (an OpenWrt router may not
//! have it, and braid runs nothing).
//!
//! Feature names are the kernel's (`tx-tcp-segmentation`, `tx-checksum-ip-generic`, ...); their
//! bit positions differ between kernel versions, so they are looked up by name in the device's
//! `ETH_SS_FEATURES` string set on every call.

use super::{Error, Result};
use std::os::fd::{AsRawFd, OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

#[repr(C)]
struct Ifreq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A device's features: names and whether each is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    names: Vec<String>,
    active: Vec<bool>,
}

impl Features {
    /// Whether feature `name` is on (`None`: the kernel has no such feature).
    pub fn get(&self, name: &str) -> Option<bool> {
        let i = self.names.iter().position(|n| n == name)?;
        self.active.get(i).copied()
    }
}

/// The ethtool commands' buffers are u32 words in the host's byte order (and bytes).
fn word(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn words(n: usize, head: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 4 * n];
    for (i, w) in head.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    b
}

struct Dev<'a> {
    sock: OwnedFd,
    dev: &'a str,
}

impl Dev<'_> {
    fn open(dev: &str) -> Result<Dev<'_>> {
        let sock = super::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
            .map_err(|e| Error::new("ethtool socket", e))?;
        Ok(Dev { sock, dev })
    }

    /// One ethtool command; `buf` starts with the command word. Errors name the command only:
    /// callers say which device.
    fn call(&self, buf: &mut [u8], what: &'static str) -> Result<()> {
        let mut ifr = Ifreq {
            name: [0; libc::IFNAMSIZ],
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        let n = self.dev.len().min(libc::IFNAMSIZ - 1);
        ifr.name[..n].copy_from_slice(&self.dev.as_bytes()[..n]);
        // SAFETY: ifr is a valid ifreq whose data points at a live buffer sized for the command.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if r < 0 {
            return Err(Error::last(what));
        }
        Ok(())
    }

    /// The names of the device's features (after a 12-byte header: 32 bytes each,
    /// NUL-padded), and how many there are.
    fn names(&self) -> Result<(Vec<u8>, usize)> {
        // struct ethtool_sset_info: cmd u32, reserved u32, sset_mask u64 (host byte order),
        // data[] u32: one count per set in the mask (0 when unsupported).
        let mut info = words(5, &[ETHTOOL_GSSET_INFO]);
        info[8..16].copy_from_slice(&(1u64 << ETH_SS_FEATURES).to_ne_bytes());
        self.call(&mut info, "ethtool feature count")?;
        let count = word(&info, 4) as usize;
        if count == 0 || count > 4096 {
            return Err(Error::invalid("ethtool feature count", "implausible"));
        }
        // struct ethtool_gstrings: cmd, string_set, len (u32 each), then len * 32 bytes.
        let mut buf = words(
            3 + count * ETH_GSTRING_LEN / 4,
            &[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32],
        );
        self.call(&mut buf, "ethtool feature names")?;
        Ok((buf, count))
    }
}

/// Feature `i` of a [`Dev::names`] buffer ("" if it is not UTF-8).
fn name(buf: &[u8], i: usize) -> &str {
    let at = 12 + i * ETH_GSTRING_LEN;
    let c = buf.get(at..at + ETH_GSTRING_LEN).unwrap_or(&[]);
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    std::str::from_utf8(&c[..end]).unwrap_or("")
}

/// The features of `dev` (calling thread's namespace).
pub fn features(dev: &str) -> Result<Features> {
    let d = Dev::open(dev)?;
    let (buf, count) = d.names()?;
    // struct ethtool_gfeatures: cmd, size, then size blocks of 4 u32 (available, requested,
    // active, never_changed).
    let blocks = count.div_ceil(32);
    let mut g = words(2 + 4 * blocks, &[ETHTOOL_GFEATURES, blocks as u32]);
    d.call(&mut g, "ethtool get features")?;
    Ok(Features {
        names: (0..count).map(|i| name(&buf, i).to_string()).collect(),
        active: (0..count)
            .map(|i| word(&g, 2 + 4 * (i / 32) + 2) & (1 << (i % 32)) != 0)
            .collect(),
    })
}

/// Sets the features of `dev` for which `want` says `Some(on)`; others are left as they are.
/// A feature the device cannot change stays as it was: read [`features`] when it matters.
pub fn set_features(dev: &str, want: &dyn Fn(&str) -> Option<bool>) -> Result<()> {
    let d = Dev::open(dev)?;
    let (names, count) = d.names()?;
    // struct ethtool_sfeatures: cmd, size, then size blocks of 2 u32 (valid, requested).
    let blocks = count.div_ceil(32);
    let mut head = vec![ETHTOOL_SFEATURES, blocks as u32];
    head.resize(2 + 2 * blocks, 0);
    let mut any = false;
    for i in 0..count {
        if let Some(on) = want(name(&names, i)) {
            any = true;
            head[2 + 2 * (i / 32)] |= 1 << (i % 32);
            if on {
                head[3 + 2 * (i / 32)] |= 1 << (i % 32);
            }
        }
    }
    if any {
        d.call(&mut words(head.len(), &head), "ethtool set features")?;
    }
    Ok(())
}
