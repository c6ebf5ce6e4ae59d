//! Anonymous namespaces owned by the test process (they vanish with it, nothing is ever
//! bind-mounted), veth plumbing, packet builders, and child processes started in a namespace.

use braid::os::netlink::Netlink;
use braid::os::{in_netns, sysctl_set, Prefix};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// An anonymous network namespace owned by this process (a normal, not inert, stack).
pub struct Ns(pub OwnedFd);

impl Ns {
    pub fn new() -> Ns {
        let fd = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let f = std::fs::File::open("/proc/thread-self/ns/net").expect("open ns");
            OwnedFd::from(f)
        })
        .join()
        .unwrap();
        let ns = Ns(fd);
        ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            let lo = nl.index("lo").unwrap();
            nl.set_up(lo, true).unwrap();
        });
        ns
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Runs `f` inside the namespace (on a fresh thread).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(self.fd(), f).expect("setns")
    }

    pub fn sysctl(&self, k: &str, v: &str) {
        self.run(|| sysctl_set(k, v).unwrap());
    }
}

/// Creates veth `a` in `na` and `b` in `nb`, each with an address, both up. Returns the
/// interface indexes.
pub fn wire(na: &Ns, a: &str, aaddr: &str, nb: &Ns, b: &str, baddr: &str) -> (u32, u32) {
    let ia = na.run(|| {
        let mut nl = Netlink::open().unwrap();
        nl.create_veth(a, b, Some(nb.fd())).unwrap();
        let i = nl.index(a).unwrap();
        let _ = sysctl_set(&format!("net/ipv6/conf/{a}/disable_ipv6"), "1");
        nl.add_address(i, aaddr.parse::<Prefix>().unwrap()).unwrap();
        nl.set_up(i, true).unwrap();
        i
    });
    let ib = nb.run(|| {
        let mut nl = Netlink::open().unwrap();
        let i = nl.index(b).unwrap();
        let _ = sysctl_set(&format!("net/ipv6/conf/{b}/disable_ipv6"), "1");
        nl.add_address(i, baddr.parse::<Prefix>().unwrap()).unwrap();
        nl.set_up(i, true).unwrap();
        assert!(nl
            .wait_oper_up(i, std::time::Duration::from_secs(3))
            .unwrap());
        i
    });
    na.run(|| {
        let mut nl = Netlink::open().unwrap();
        assert!(nl
            .wait_oper_up(ia, std::time::Duration::from_secs(3))
            .unwrap());
    });
    (ia, ib)
}

/// Internet checksum.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP packet (UDP checksum 0 = none).
pub fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let tot = 20 + 8 + payload.len();
    let mut p = vec![0u8; tot];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(tot as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = csum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// (protocol, src, dst, tcp flags or icmp type) of an IPv4 packet.
pub fn v4_summary(ip: &[u8]) -> Option<(u8, [u8; 4], [u8; 4], u8)> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 15) * 4;
    let proto = ip[9];
    let src = ip[12..16].try_into().ok()?;
    let dst = ip[16..20].try_into().ok()?;
    let extra = match proto {
        6 => *ip.get(ihl + 13)?,
        1 => *ip.get(ihl)?,
        _ => 0,
    };
    Some((proto, src, dst, extra))
}

/// Runs the `#[ignore]`d test `name` of the current test binary in a child process whose
/// threads start in namespace `ns`, and waits until it prints READY. The child is killed
/// when the guard drops (also when the test fails half-way).
pub fn spawn_child(name: &str, ns: &Ns) -> ChildGuard {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    let dup = nix::unistd::dup(ns.0.as_raw_fd()).unwrap(); // no CLOEXEC: inherited
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env("BRAID_OS_CHILD_NS_FD", dup.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    nix::unistd::close(dup).unwrap();
    let out = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(out).lines() {
        if line.unwrap().trim() == "READY" {
            return ChildGuard(child);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child {name} did not get ready");
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct ChildGuard(std::process::Child);

impl ChildGuard {
    /// SIGKILL now and reap.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In a child started by [`spawn_child`]: enters the namespace given by the parent. Returns
/// false when not running as such a child (the test then does nothing).
pub fn enter_child_ns() -> bool {
    use std::os::fd::FromRawFd;
    let Ok(fd) = std::env::var("BRAID_OS_CHILD_NS_FD") else {
        return false;
    };
    // SAFETY: the parent passed this descriptor to us; we own it now.
    let ns = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    true
}

/// Prints READY for [`spawn_child`] and waits to be killed (at most 30 s).
pub fn child_ready_and_wait() {
    use std::io::Write;
    println!("READY");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(30));
}
