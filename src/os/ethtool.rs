//! A device's offload features, read and set by name over the ethtool ioctl (`SIOCETHTOOL`):
//! what `ethtool -k` / `ethtool -K` do, without running the program (an OpenWrt router may not
//! have it, and braid runs nothing).
//!
//! Feature names are the kernel's (`tx-tcp-segmentation`, `tx-checksum-ip-generic`, ...); their
//! bit positions differ between kernel versions, so they are looked up by name in the device's
//! `ETH_SS_FEATURES` string set on every call.

use super::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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

    /// The features that are on.
    pub fn on(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .zip(&self.active)
            .filter(|(_, a)| **a)
            .map(|(n, _)| n.as_str())
    }
}

struct Dev {
    sock: OwnedFd,
    name: [u8; libc::IFNAMSIZ],
    dev: String,
}

impl Dev {
    fn open(dev: &str) -> Result<Dev> {
        if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
            return Err(Error::invalid(
                format!("features of {dev:?}"),
                "bad device name",
            ));
        }
        // SAFETY: socket(2); the fd is owned right below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::last(format!("features of {dev}: socket")));
        }
        let mut name = [0u8; libc::IFNAMSIZ];
        name[..dev.len()].copy_from_slice(dev.as_bytes());
        Ok(Dev {
            // SAFETY: fresh fd we own.
            sock: unsafe { OwnedFd::from_raw_fd(fd) },
            name,
            dev: dev.to_string(),
        })
    }

    /// One ethtool command; `buf` starts with the command word.
    fn call<T>(&self, buf: &mut [T], what: &str) -> Result<libc::c_int> {
        let mut ifr = Ifreq {
            name: self.name,
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        // SAFETY: ifr is a valid ifreq whose data points at a live buffer sized for the command.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
        if r < 0 {
            return Err(Error::last(format!("{what} of {}", self.dev)));
        }
        Ok(r)
    }

    fn names(&self) -> Result<Vec<String>> {
        // struct ethtool_sset_info: cmd u32, reserved u32, sset_mask u64 (native byte order, as
        // two u32 words here), data[] u32: one count per set in the mask.
        let mask = (1u64 << ETH_SS_FEATURES).to_ne_bytes();
        let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let mut info = [ETHTOOL_GSSET_INFO, 0, word(&mask[..4]), word(&mask[4..]), 0];
        self.call(&mut info, "feature count")?;
        let mut got = [0u8; 8];
        got[..4].copy_from_slice(&info[2].to_ne_bytes());
        got[4..].copy_from_slice(&info[3].to_ne_bytes());
        if u64::from_ne_bytes(got) & (1 << ETH_SS_FEATURES) == 0 {
            return Err(Error::invalid(
                format!("feature names of {}", self.dev),
                "no feature string set",
            ));
        }
        let count = info[4] as usize;
        if count == 0 || count > 4096 {
            return Err(Error::invalid(
                format!("feature names of {}", self.dev),
                "implausible feature count",
            ));
        }
        // struct ethtool_gstrings: cmd, string_set, len (u32 each), then len * 32 bytes.
        let mut buf = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        buf[0] = ETHTOOL_GSTRINGS;
        buf[1] = ETH_SS_FEATURES;
        buf[2] = count as u32;
        self.call(&mut buf, "feature names")?;
        let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks_exact(ETH_GSTRING_LEN)
            .map(|c| {
                let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                String::from_utf8_lossy(&c[..end]).into_owned()
            })
            .collect())
    }

    fn active(&self, count: usize) -> Result<Vec<bool>> {
        // struct ethtool_gfeatures: cmd, size, then size blocks of 4 u32 (available, requested,
        // active, never_changed).
        let blocks = count.div_ceil(32);
        let mut buf = vec![0u32; 2 + 4 * blocks];
        buf[0] = ETHTOOL_GFEATURES;
        buf[1] = blocks as u32;
        self.call(&mut buf, "features")?;
        Ok((0..count)
            .map(|i| buf[2 + 4 * (i / 32) + 2] & (1 << (i % 32)) != 0)
            .collect())
    }
}

/// The features of `dev` (calling thread's namespace).
pub fn features(dev: &str) -> Result<Features> {
    let d = Dev::open(dev)?;
    let names = d.names()?;
    let active = d.active(names.len())?;
    Ok(Features { names, active })
}

/// Sets the features of `dev` for which `want` says `Some(on)` (others are left as they are)
/// and returns the features as they are afterwards. A feature the device cannot change stays
/// as it was: compare with the result when it matters.
pub fn set_features(dev: &str, want: impl Fn(&str) -> Option<bool>) -> Result<Features> {
    let d = Dev::open(dev)?;
    let names = d.names()?;
    // struct ethtool_sfeatures: cmd, size, then size blocks of 2 u32 (valid, requested).
    let blocks = names.len().div_ceil(32);
    let mut buf = vec![0u32; 2 + 2 * blocks];
    buf[0] = ETHTOOL_SFEATURES;
    buf[1] = blocks as u32;
    let mut any = false;
    for (i, n) in names.iter().enumerate() {
        if let Some(on) = want(n) {
            any = true;
            buf[2 + 2 * (i / 32)] |= 1 << (i % 32);
            if on {
                buf[2 + 2 * (i / 32) + 1] |= 1 << (i % 32);
            }
        }
    }
    if any {
        d.call(&mut buf, "set features")?;
    }
    let active = d.active(names.len())?;
    Ok(Features { names, active })
}
