//! Host plumbing for the lab: running `ip`/`nft`, threads inside a namespace, interface
//! offloads (the ethtool ioctl), and raw AF_PACKET sockets.
//!
//! The lab is host-only tooling, so it drives the topology with iproute2 rather than rtnetlink.

use std::ffi::CString;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::os::setsockopt;
use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

/// Run a program, return its stdout; the error carries the command line and its stderr.
pub fn run(prog: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{prog}: {e}")))?;
    let stdout = succeeded(out, &format!("`{prog} {}`", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Run `cmd` with `input` on its stdin; returns its stdout (empty unless `cmd` pipes it). The
/// error starts with `what` and carries the program's stderr.
pub(crate) fn run_with_input(cmd: &mut Command, input: &[u8], what: &str) -> io::Result<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
    // The handle is dropped at the end of the statement: the program sees the end of its input.
    child
        .stdin
        .take()
        .expect("stdin piped above")
        .write_all(input)?;
    succeeded(child.wait_with_output()?, what)
}

/// The stdout of a program that exited with success; else an error: `what` failed, and the
/// program's stderr.
fn succeeded(out: Output, what: &str) -> io::Result<Vec<u8>> {
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Run `ip -batch -` with one command per line (fails on the first error, naming it).
pub(crate) fn ip_batch(cmds: &[String]) -> io::Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    let script = cmds.join("\n") + "\n";
    let mut ip = Command::new("ip");
    ip.args(["-batch", "-"]).stdout(Stdio::null());
    run_with_input(&mut ip, script.as_bytes(), "ip -batch").map(drop)
}

/// Feed a script to `nft -f -` inside namespace `ns`.
pub(crate) fn nft(ns: &str, script: &str) -> io::Result<()> {
    let mut nft = Command::new("ip");
    nft.args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdout(Stdio::null());
    run_with_input(&mut nft, script.as_bytes(), &format!("nft in {ns}")).map(drop)
}

/// Move the calling thread into network namespace `ns` (a name under /run/netns).
pub(crate) fn enter_netns(ns: &str) -> io::Result<()> {
    let path = format!("/run/netns/{ns}");
    let f =
        std::fs::File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("setns {ns}: {e}")))
}

/// Run `f` on a thread inside namespace `ns` and wait for its result. Sockets it creates stay in
/// that namespace wherever they are used later.
pub fn in_ns<R: Send, F: FnOnce() -> io::Result<R> + Send>(ns: &str, f: F) -> io::Result<R> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns)?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("thread in namespace panicked"))?
    })
}

/// Spawn a long-lived named thread inside namespace `ns`.
pub fn spawn_in_ns<R: Send + 'static, F: FnOnce() -> R + Send + 'static>(
    ns: &str,
    name: &str,
    f: F,
) -> io::Result<std::thread::JoinHandle<io::Result<R>>> {
    let ns = ns.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            enter_netns(&ns)?;
            Ok(f())
        })
}

/// A UDP server's loop, until `stop`: every datagram `sock` reads (into a buffer of `N` bytes)
/// goes to `answer` with its sender, to reply on `sock` or not. `sock` needs a read timeout, for
/// `stop` to be seen.
pub(crate) fn serve_udp<const N: usize>(
    sock: &UdpSocket,
    stop: &AtomicBool,
    mut answer: impl FnMut(&mut [u8], SocketAddr),
) {
    let mut buf = [0u8; N];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        answer(&mut buf[..n], from);
    }
}

/// Write a sysctl of the calling thread's namespace (`net.ipv4.ip_forward` style).
pub(crate) fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// Interface index by name in the calling thread's namespace.
pub fn ifindex(dev: &str) -> io::Result<i32> {
    let c = CString::new(dev).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::other(format!("no interface {dev}")));
    }
    Ok(i as i32)
}

/// Turn off checksum offload, scatter-gather, TSO, GSO and GRO on `dev` (what `ethtool -K dev tx
/// off sg off tso off gso off gro off` does), so every frame on the wire is a real, checksummed
/// frame within the MTU. Calling thread's namespace. Through [`crate::os::ethtool`], by feature
/// name: the features the legacy `ETHTOOL_S{TXCSUM,SG,TSO,GSO,GRO}` commands switch.
pub(crate) fn offloads_off(dev: &str) -> io::Result<()> {
    crate::os::ethtool::set_features(dev, &|name| LAB_OFFLOADS.contains(&name).then_some(false))
        .map_err(|e| io::Error::other(format!("ethtool offloads off on {dev}: {e}")))
}

/// The features `ethtool -K tx off sg off tso off gso off gro off` switches (the kernel's masks
/// for those commands): NETIF_F_CSUM_MASK | FCOE_CRC | SCTP_CRC, SG | FRAGLIST, NETIF_F_ALL_TSO,
/// GSO, GRO (by name: the bits differ between kernels).
const LAB_OFFLOADS: [&str; 13] = [
    "tx-checksum-ipv4",
    "tx-checksum-ip-generic",
    "tx-checksum-ipv6",
    "tx-checksum-fcoe-crc",
    "tx-checksum-sctp",
    "tx-scatter-gather",
    "tx-scatter-gather-fraglist",
    "tx-tcp-segmentation",
    "tx-tcp-ecn-segmentation",
    "tx-tcp-mangleid-segmentation",
    "tx-tcp6-segmentation",
    "tx-generic-segmentation",
    "rx-gro",
];

/// A raw AF_PACKET socket bound to one interface: sees every frame that interface receives
/// (not those it sends), and sends whole Ethernet frames out of it.
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

impl PacketSocket {
    /// Open on `dev` in the calling thread's namespace, non-blocking.
    pub(crate) fn open(dev: &str) -> io::Result<PacketSocket> {
        let idx = ifindex(dev)?;
        // Protocol 0: receive nothing until bound, so no frame of another interface slips in.
        let fd = crate::os::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        let one: libc::c_int = 1;
        let buf: libc::c_int = 8 << 20;
        // Best effort, as a test tool: an old kernel echoes its own frames, a small buffer
        // drops some under load.
        let _ = setsockopt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, one);
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, buf);
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, buf);
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = idx;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }

    /// Receive one frame into `scratch`; `Ok(None)` when none is waiting.
    pub(crate) fn recv(&self, scratch: &mut [u8]) -> io::Result<Option<usize>> {
        match socket::recv(self.fd.as_raw_fd(), scratch, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => Ok(Some(n)),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Send one whole frame.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        socket::send(self.fd.as_raw_fd(), frame, MsgFlags::MSG_DONTWAIT)?;
        Ok(())
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Namespaces whose names start with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(out) = run("ip", &["netns", "list"]) else {
        return Vec::new();
    };
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Pids of processes inside namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns])
        .map(|o| o.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
