//! Linux I/O: rtnetlink, the space, the hub, uplink sockets, NAT.
//!
//! Everything here changes the host only through netlink sockets (rtnetlink for links,
//! addresses, routes, rules and neighbours; nfnetlink for the core's nftables table) and plain
//! sockets. No `ip`, `iptables`, `nft` or shell is ever run.
//!
//! - [`netlink`]: a small synchronous rtnetlink client with errors that say what was being done.
//! - [`space`]: the namespace braid owns (it dies with the process), the veth hub between host and
//!   space, and the host policy rules that steer client traffic into it; cleanup after a crash.
//! - [`ethtool`]: a device's offload features by name (the hub's host end announces only the
//!   offloads the capture finishes itself).
//! - [`hub`]: AF_PACKET capture and injection on the space end of the hub, usable from tokio.
//! - [`uplink`]: one socket per link, bound to its WAN device; UDP and TCP transports; link
//!   address discovery and interface up/down events.
//! - [`nat`]: the core's NAT: its own nftables table and the per-session source mapping that keeps
//!   edges with identical LAN subnets apart.
//! - [`plane`]: one call per daemon ([`plane::EdgePlane::start`], [`plane::CorePlane::start`])
//!   that cleans a crashed instance's leftovers and builds all of the above, undone on drop.
//!
//! Names of everything created at runtime derive from an *instance name* (default `braid`), so
//! tests and several daemons can coexist.

/// `AsFd` and `AsRawFd` of a type that wraps one descriptor (tokio's `AsyncFd` polls it):
/// both give that of its field `$field`.
macro_rules! fd_of_field {
    ($ty:ty, $field:ident) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.$field)
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&self.$field))
            }
        }
    };
}

pub mod conntrack;
pub mod ethtool;
pub mod hub;
pub mod nat;
pub mod neigh;
pub mod netlink;
mod nft;
pub mod plane;
pub mod space;
pub mod uplink;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;

/// An OS-level failure: what braid was doing, and the errno the kernel gave.
#[derive(Debug)]
pub struct Error {
    /// What was being done, e.g. `add route 10.0.0.0/8 table 100`.
    context: String,
    /// The underlying error (carries the errno for kernel failures).
    source: io::Error,
}

impl Error {
    /// Wraps `source` with a description of the operation that failed.
    pub(crate) fn new(context: impl Into<String>, source: io::Error) -> Self {
        Error {
            context: context.into(),
            source,
        }
    }

    /// The errno, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    pub(crate) fn last(context: impl Into<String>) -> Self {
        Error::new(context, io::Error::last_os_error())
    }

    pub(crate) fn invalid(context: impl Into<String>, why: &str) -> Self {
        Error::new(
            context,
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source.raw_os_error() {
            Some(e) => write!(f, "{}: {} (errno {e})", self.context, self.source),
            None => write!(f, "{}: {}", self.context, self.source),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

/// Result of the OS layer.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// An IP prefix (`192.168.1.0/24`, `fd00::/64`, a host is `/32` or `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The address (host bits are kept as given; [`Prefix::network`] clears them).
    pub(crate) addr: IpAddr,
    /// Prefix length in bits.
    len: u8,
}

impl Prefix {
    /// A prefix; `len` is clamped to the family's width.
    pub(crate) fn new(addr: IpAddr, len: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Prefix {
            addr,
            len: len.min(max),
        }
    }

    /// The single-address prefix of `addr`.
    pub(crate) fn host(addr: IpAddr) -> Self {
        Prefix::new(addr, if addr.is_ipv4() { 32 } else { 128 })
    }

    /// True for IPv4.
    pub(crate) fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The prefix with host bits cleared.
    pub(crate) fn network(&self) -> Prefix {
        Prefix {
            addr: mask_addr(self.addr, self.len),
            len: self.len,
        }
    }

    /// True when `a` is inside the prefix (same family only).
    pub(crate) fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && mask_addr(a, self.len) == self.network().addr
    }
}

fn mask_addr(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("bad address in {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
            None => max,
        };
        Ok(Prefix { addr, len })
    }
}

/// Runs `f` on a new thread whose network namespace is `ns` (an fd of a netns), and returns its
/// result. Sockets created inside stay in that namespace whatever thread uses them later.
pub fn in_netns<T: Send>(
    ns: std::os::fd::BorrowedFd<'_>,
    f: impl FnOnce() -> T + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::new("setns into the namespace", e.into()))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Writes a sysctl under /proc/sys of the calling thread's network namespace
/// (e.g. `net/ipv4/conf/braid-sp/rp_filter`). Returns the previous value.
pub fn sysctl_set(path: &str, value: &str) -> Result<String> {
    let full = format!("/proc/sys/{path}");
    let old = std::fs::read_to_string(&full).map_err(|e| Error::new(format!("read {full}"), e))?;
    std::fs::write(&full, value).map_err(|e| Error::new(format!("write {value} to {full}"), e))?;
    Ok(old.trim().to_string())
}

/// Reads a sysctl of the calling thread's network namespace.
pub(crate) fn sysctl_get(path: &str) -> Result<String> {
    let full = format!("/proc/sys/{path}");
    std::fs::read_to_string(&full)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::new(format!("read {full}"), e))
}

/// Closing `stream` resets the connection (SO_LINGER 0) instead of a FIN exchange: a stranger's
/// connection leaves no state behind once the core closes it (no LAST_ACK or FIN_WAIT socket,
/// no FIN retransmits), and costs one packet. Nothing the core closes has data worth
/// delivering: an edge whose connection ends connects again.
pub(crate) fn reset_on_close(stream: &impl AsFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Failure changes nothing but the goodbye: a FIN exchange instead of a reset.
    let _ = setsockopt(stream, libc::SOL_SOCKET, libc::SO_LINGER, l);
}

/// `socket(2)`, close-on-exec, as an owned descriptor: one checked call instead of an unsafe
/// `socket` and `from_raw_fd` at every site. `ty` may add `SOCK_NONBLOCK`.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with the option's value as the kernel takes it (`c_int`, `timeval`,
/// `linger`, `sock_fprog`, ...), its size passed along: one checked call instead of a pointer
/// cast and a size at every site. `T` is a plain C value (`Copy`: no destructor, nothing the
/// kernel could keep); a value of the wrong type for the option is refused by the kernel
/// (`EINVAL`), never read past.
pub fn setsockopt<T: Copy>(
    fd: impl AsFd,
    level: libc::c_int,
    opt: libc::c_int,
    value: T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the fd is open (borrowed for the call); the pointer is to `value`, a live T of
    // `len` bytes, which the kernel only reads during the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            opt,
            (&value as *const T).cast(),
            len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives the heap's free pages back to the system. glibc keeps what a burst freed (a flood
/// of strangers' connections and datagrams left the core's RSS ~10 % higher for good) and
/// returns only the free top of its heap by itself; musl gives freed memory back without
/// being asked. Cheap (a walk of the free lists): the core calls it at its housekeeping (every
/// 5 s) when TCP connections ended since the last one, never on a steady data path.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) only adjusts glibc's own heap, which it locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setsockopt_passes_the_value_and_its_size() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 500_000,
        };
        setsockopt(&s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv).unwrap();
        assert_eq!(
            s.read_timeout().unwrap(),
            Some(std::time::Duration::from_millis(1500))
        );
        // A value too small for the option: the kernel refuses it, and the error comes back.
        let e = setsockopt(&s, libc::SOL_SOCKET, libc::SO_RCVTIMEO, 1u8).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(t.local_addr().unwrap()).unwrap();
        setsockopt(&c, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1 as libc::c_int).unwrap();
        assert!(c.nodelay().unwrap());
    }

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "192.168.1.77/24".parse().unwrap();
        assert_eq!(p.network().to_string(), "192.168.1.0/24");
        assert!(p.contains("192.168.1.3".parse().unwrap()));
        assert!(!p.contains("192.168.2.3".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        let h: Prefix = "fd00::1".parse().unwrap();
        assert_eq!(h.len, 128);
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
