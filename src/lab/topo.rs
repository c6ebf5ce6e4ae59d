//! The lab topology: client(s) - edge - one link namespace per uplink - core - server, and an
//! optional second edge with the same LAN subnet. Built with iproute2, removed on drop.
//!
//! ```text
//!  bl-cli0 --bl-eth0/bl-lan0--+ bl-br0     bl-wan0 == bl-a [bl-l0] bl-b == bl-e0w0
//!  bl-cli1 --...               [bl-edge]   bl-wan1 == bl-a [bl-l1] bl-b == bl-e0w1  [bl-core] bl-srv0 == bl-eth0 [bl-srv]
//!  LAN 10.70.0.0/24 (edge .1)             WAN i: 10.71.i.0/24 (edge .1, core .2)  core 10.72.0.1   10.73.0.0/24 (server .2)
//! ```
//! Edge `e` (e > 0) is named `bl-edge{e}`, its links `bl-e{e}l{i}`, its clients `bl-e{e}cli{c}`,
//! its WAN subnets `10.71.(16e+i).0/24`; its LAN is 10.70.0.0/24 like the first.
//! A tag (`bl{tag}-...`) lets several topologies live side by side (parallel tests).
//! Everything is removed by [`Topology::teardown`] (also on drop) and by [`clean`].

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::link::{self, LinkHandle, LinkSpec};
use super::sys;

/// LAN prefix shared by every edge.
pub const LAN_NET: &str = "10.70.0.0/24";
/// The core's public address (on its loopback), reachable over every link.
pub const CORE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 1);
/// The server as a destination the core forwards to (`allow_dest`): the lab's "internet" uses
/// private addresses, which the core refuses by default. Only the server: the core's own
/// address beside it (10.73.0.1) stays refused.
pub const SERVER_NET: &str = "10.73.0.2/32";
/// The server's address.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 73, 0, 2);
/// Core's address toward the server.
pub const CORE_SRV_ADDR: Ipv4Addr = Ipv4Addr::new(10, 73, 0, 1);
/// Edge's LAN address (gateway of the clients).
pub const EDGE_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 70, 0, 1);

/// What to build.
#[derive(Clone, Debug)]
pub struct TopoSpec {
    /// Up to 6 characters of [a-z0-9] after `bl` in every namespace name (interface names
    /// inside the namespaces do not carry it, so they stay short).
    pub tag: String,
    pub edges: Vec<EdgeSpec>,
    pub seed: u64,
}

/// One edge with its uplinks and clients.
#[derive(Clone, Debug)]
pub struct EdgeSpec {
    pub links: Vec<LinkSpec>,
    pub clients: usize,
    /// Link carrying the edge's plain default route (the `direct` baseline).
    pub best: usize,
}

/// Names and addresses of one edge.
#[derive(Clone, Debug)]
pub struct EdgeNames {
    pub ns: String,
    pub clients: Vec<String>,
    links: Vec<String>,
    /// WAN device name in the edge namespace per link.
    pub wan_dev: Vec<String>,
    /// Device in the core namespace per link.
    core_dev: Vec<String>,
}

/// A built topology. Dropping it tears everything down.
pub struct Topology {
    spec: TopoSpec,
    pub prefix: String,
    pub edges: Vec<EdgeNames>,
    pub core: String,
    pub server: String,
    /// Emulators of edge e, link i: `links[e][i]`.
    pub links: Vec<Vec<LinkHandle>>,
    /// Time zero of the link schedules.
    pub t0: Instant,
    /// The daemons' logs and configs: removed at teardown unless [`Topology::keep_logs`] is set
    /// (a process failed, or `BRAID_LAB_KEEP_LOGS` is in the environment).
    pub log_dir: PathBuf,
    pub(crate) keep_logs: bool,
    procs: Vec<(String, Child)>,
    down: bool,
}

/// Namespace prefix for `tag`.
pub(crate) fn prefix(tag: &str) -> String {
    format!("bl{tag}-")
}

/// Edge `e`'s address on link `i`.
pub fn edge_wan_addr(e: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 71, (16 * e + i) as u8, 1)
}

/// Core's address on edge `e`'s link `i`.
pub fn core_wan_addr(e: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 71, (16 * e + i) as u8, 2)
}

/// Client `c`'s address (same on every edge).
pub fn client_addr(c: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 70, 0, (10 + c) as u8)
}

/// Routing table of link `i` in an edge.
pub fn wan_table(i: usize) -> u32 {
    100 + i as u32
}

impl Topology {
    /// Build the topology and start its link emulators.
    pub fn up(spec: TopoSpec) -> io::Result<Topology> {
        if spec.tag.len() > 6
            || !spec
                .tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(io::Error::other("tag: up to 6 characters of [a-z0-9]"));
        }
        if spec.edges.is_empty()
            || spec
                .edges
                .iter()
                .any(|e| e.links.is_empty() || e.links.len() > 16)
        {
            return Err(io::Error::other("every edge needs 1 to 16 links"));
        }
        let p = prefix(&spec.tag);
        // Leftovers of an interrupted run with the same tag go first.
        clean_prefix(&p);
        let edges: Vec<EdgeNames> = spec
            .edges
            .iter()
            .enumerate()
            .map(|(e, es)| {
                let (ens, cpre, lpre) = if e == 0 {
                    (format!("{p}edge"), format!("{p}cli"), format!("{p}l"))
                } else {
                    (
                        format!("{p}edge{e}"),
                        format!("{p}e{e}cli"),
                        format!("{p}e{e}l"),
                    )
                };
                EdgeNames {
                    ns: ens,
                    clients: (0..es.clients.max(1))
                        .map(|c| format!("{cpre}{c}"))
                        .collect(),
                    links: (0..es.links.len()).map(|i| format!("{lpre}{i}")).collect(),
                    wan_dev: (0..es.links.len()).map(|i| format!("bl-wan{i}")).collect(),
                    core_dev: (0..es.links.len())
                        .map(|i| format!("bl-e{e}w{i}"))
                        .collect(),
                }
            })
            .collect();
        let log_dir = log_dir(&spec.tag);
        let _ = std::fs::create_dir_all(&log_dir);
        let mut topo = Topology {
            core: format!("{p}core"),
            server: format!("{p}srv"),
            prefix: p,
            edges,
            links: Vec::new(),
            t0: Instant::now(),
            log_dir,
            keep_logs: std::env::var_os(KEEP_LOGS_ENV).is_some(),
            procs: Vec::new(),
            down: false,
            spec,
        };
        // On error, `topo` drops and removes what was made.
        topo.build()?;
        Ok(topo)
    }

    /// Every namespace of the topology.
    pub(crate) fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.core.clone(), self.server.clone()];
        for e in &self.edges {
            v.push(e.ns.clone());
            v.extend(e.clients.iter().cloned());
            v.extend(e.links.iter().cloned());
        }
        v
    }

    fn build(&mut self) -> io::Result<()> {
        let all = self.namespaces();
        for ns in &all {
            sys::run("ip", &["netns", "add", ns])?;
        }
        for ns in &all {
            sys::in_ns(ns, || {
                sys::sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
                sys::sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
                sys::sysctl("net.ipv4.conf.all.rp_filter", "0")?;
                sys::sysctl("net.ipv4.conf.default.rp_filter", "0")?;
                Ok(())
            })?;
        }
        let (core, srv) = (self.core.clone(), self.server.clone());
        let mut host = Vec::new();
        host.push(format!(
            "link add bl-srv0 netns {core} type veth peer name bl-eth0 netns {srv}"
        ));
        for (e, en) in self.edges.iter().enumerate() {
            for (c, cns) in en.clients.iter().enumerate() {
                host.push(format!(
                    "link add bl-lan{c} netns {} type veth peer name bl-eth0 netns {cns}",
                    en.ns
                ));
            }
            for (i, lns) in en.links.iter().enumerate() {
                host.push(format!(
                    "link add {} netns {} type veth peer name bl-a netns {lns}",
                    en.wan_dev[i], en.ns
                ));
                host.push(format!(
                    "link add bl-b netns {lns} type veth peer name {} netns {core}",
                    en.core_dev[i]
                ));
            }
            let _ = e;
        }
        sys::ip_batch(&host)?;

        // Server.
        ns_batch(
            &srv,
            &[
                "link set lo up".into(),
                "addr add 10.73.0.2/24 dev bl-eth0".into(),
                "link set bl-eth0 up".into(),
                format!("route add default via {CORE_SRV_ADDR}"),
            ],
        )?;
        // Core.
        let mut cmds = vec![
            "link set lo up".to_string(),
            format!("addr add {CORE_ADDR}/32 dev lo"),
            "addr add 10.73.0.1/24 dev bl-srv0".into(),
            "link set bl-srv0 up".into(),
        ];
        for (e, en) in self.edges.iter().enumerate() {
            for (i, dev) in en.core_dev.iter().enumerate() {
                cmds.push(format!("addr add {}/24 dev {dev}", core_wan_addr(e, i)));
                cmds.push(format!("link set {dev} up"));
            }
        }
        ns_batch(&core, &cmds)?;
        // Edges, their clients and link namespaces.
        for (e, en) in self.edges.iter().enumerate() {
            let es = &self.spec.edges[e];
            let mut cmds = vec![
                "link set lo up".to_string(),
                "link add bl-br0 type bridge".into(),
                format!("addr add {EDGE_LAN_ADDR}/24 dev bl-br0"),
                "link set bl-br0 up".into(),
            ];
            for c in 0..en.clients.len() {
                cmds.push(format!("link set bl-lan{c} master bl-br0"));
                cmds.push(format!("link set bl-lan{c} up"));
            }
            for (i, dev) in en.wan_dev.iter().enumerate() {
                let (a, g) = (edge_wan_addr(e, i), core_wan_addr(e, i));
                let t = wan_table(i);
                cmds.push(format!("addr add {a}/24 dev {dev}"));
                cmds.push(format!("link set {dev} up"));
                cmds.push(format!("route add default via {g} dev {dev} table {t}"));
                cmds.push(format!("rule add from {a} lookup {t} pref {}", 1000 + i));
            }
            let best = es.best.min(en.wan_dev.len() - 1);
            cmds.push(format!(
                "route add default via {} dev {}",
                core_wan_addr(e, best),
                en.wan_dev[best]
            ));
            ns_batch(&en.ns, &cmds)?;
            for (c, cns) in en.clients.iter().enumerate() {
                ns_batch(
                    cns,
                    &[
                        "link set lo up".into(),
                        format!("addr add {}/24 dev bl-eth0", client_addr(c)),
                        "link set bl-eth0 up".into(),
                        format!("route add default via {EDGE_LAN_ADDR}"),
                    ],
                )?;
            }
            for lns in &en.links {
                ns_batch(
                    lns,
                    &[
                        "link set lo up".into(),
                        "link set bl-a up".into(),
                        "link set bl-b up".into(),
                    ],
                )?;
            }
            // The router: forwards and masquerades LAN traffic out of its WANs, as any router does.
            // Its LAN devices and the clients keep the kernel's default offloads, as on a real
            // router (packets reach the hub partial or aggregated); only the WAN devices, whose
            // frames the emulators handle one by one, have theirs off.
            let devs = en.wan_dev.clone();
            sys::in_ns(&en.ns, move || {
                sys::sysctl("net.ipv4.ip_forward", "1")?;
                for wan in &devs {
                    sys::offloads_off(wan)?;
                }
                Ok(())
            })?;
            sys::nft(
                &en.ns,
                &format!(
                    "table ip bl_nat {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n  \
                     ip saddr {LAN_NET} oifname \"bl-wan*\" masquerade\n }}\n}}\n"
                ),
            )?;
            // What a stock OpenWrt's fw4 loads, with the Braid package's hub zone (src/lab/fw4.rs).
            super::fw4::install(&en.ns, &["bl-br0".to_string()], &en.wan_dev)?;
        }
        // The core's WAN side off (emulated links), its internet side and the server default.
        let core_devs: Vec<String> = self.edges.iter().flat_map(|e| e.core_dev.clone()).collect();
        sys::in_ns(&core, move || {
            sys::sysctl("net.ipv4.ip_forward", "1")?;
            for wan in &core_devs {
                sys::offloads_off(wan)?;
            }
            Ok(())
        })?;

        // The emulators, all on one clock.
        self.start_links()
    }

    /// Restart every link emulator with time zero now, so that scheduled outages count from
    /// the start of the next workload.
    pub fn restart_links(&mut self) -> io::Result<()> {
        for v in &mut self.links {
            for l in v.iter_mut() {
                let _ = l.stop();
            }
        }
        self.links.clear();
        self.start_links()
    }

    fn start_links(&mut self) -> io::Result<()> {
        self.t0 = Instant::now();
        for (e, en) in self.edges.iter().enumerate() {
            let mut v = Vec::new();
            for (i, lns) in en.links.iter().enumerate() {
                let spec = self.spec.edges[e].links[i].clone();
                let seed = self
                    .spec
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((e * 64 + i) as u64);
                v.push(link::spawn(lns, "bl-a", "bl-b", spec, seed, self.t0)?);
            }
            self.links.push(v);
        }
        Ok(())
    }

    /// Run a program inside namespace `ns` (through `ip netns exec`), its output to
    /// `<log_dir>/<label>.log`. It is stopped at teardown.
    pub fn spawn(&mut self, ns: &str, label: &str, argv: &[&str]) -> io::Result<u32> {
        let log = self.log_dir.join(format!("{label}.log"));
        let f = std::fs::File::create(&log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", argv[0])))?;
        let pid = child.id();
        self.procs.push((label.to_string(), child));
        Ok(pid)
    }

    /// The process id of the process [`Topology::spawn`] started as `label`.
    pub(crate) fn pid(&self, label: &str) -> Option<u32> {
        self.procs
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| c.id())
    }

    /// Whether every spawned process still runs; the error names the first one that died and
    /// quotes the end of its log.
    pub(crate) fn check_procs(&mut self) -> io::Result<()> {
        for (label, child) in &mut self.procs {
            if let Some(st) = child.try_wait()? {
                let log = std::fs::read_to_string(self.log_dir.join(format!("{label}.log")))
                    .unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                self.keep_logs = true;
                return Err(io::Error::other(format!(
                    "{label} exited ({st}), logs in {}: {tail}",
                    self.log_dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Stop everything and remove every namespace (and with them every veth). Idempotent.
    pub fn teardown(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        for v in &mut self.links {
            for l in v.iter_mut() {
                let _ = l.stop();
            }
        }
        self.links.clear();
        for (_, c) in &mut self.procs {
            // A pid we spawned and have not reaped.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for (_, c) in &mut self.procs {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
        clean_prefix(&self.prefix);
        // The logs go too, unless something failed or they were asked for.
        if self.keep_logs {
            if std::fs::remove_dir(&self.log_dir).is_err() {
                eprintln!("lab logs kept in {}", self.log_dir.display());
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ns_batch(ns: &str, cmds: &[String]) -> io::Result<()> {
    let script = cmds.join("\n") + "\n";
    let mut ip = Command::new("ip");
    ip.args(["-n", ns, "-batch", "-"]).stdout(Stdio::null());
    sys::run_with_input(&mut ip, script.as_bytes(), &format!("ip -n {ns} -batch")).map(drop)
}

/// Set in the environment, a lab run keeps its daemons' logs and configs in [`log_dir`].
pub(crate) const KEEP_LOGS_ENV: &str = "BRAID_LAB_KEEP_LOGS";

/// Where a lab run of `tag` writes its daemons' logs and configs.
pub fn log_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("braid-lab{tag}"))
}

/// Removes the log directories of lab runs: of `tag`, or of every tag when it is empty.
/// Returns those removed.
pub(crate) fn clean_logs(tag: &str) -> Vec<String> {
    let dirs: Vec<PathBuf> = if tag.is_empty() {
        std::fs::read_dir(std::env::temp_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_prefix("braid-lab"))
                            .is_some_and(|t| {
                                // The default tag is empty: /tmp/braid-lab itself.
                                t.chars()
                                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                            })
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![log_dir(tag)]
    };
    dirs.into_iter()
        .filter(|d| d.is_dir() && std::fs::remove_dir_all(d).is_ok())
        .map(|d| d.display().to_string())
        .collect()
}

/// Kill every process inside, then delete, every namespace whose name starts with `prefix`.
/// Returns the namespaces removed.
pub(crate) fn clean_prefix(prefix: &str) -> Vec<String> {
    let list = sys::netns_with_prefix(prefix);
    for ns in &list {
        for pid in sys::netns_pids(ns) {
            // The pid lives in a namespace the lab owns.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for ns in &list {
        let _ = sys::run("ip", &["netns", "del", ns]);
    }
    list
}

/// `braid lab clean`: remove leftovers of any interrupted lab run (every `bl*-` namespace, the
/// processes in them, and any `bl-` interface left in the host namespace).
pub(crate) fn clean() -> Vec<String> {
    let mut removed: Vec<String> = sys::netns_with_prefix("bl")
        .into_iter()
        .filter(|n| is_lab_name(n))
        .flat_map(|n| clean_prefix(&n))
        .collect();
    if let Ok(out) = sys::run("ip", &["-o", "link", "show"]) {
        for l in out.lines() {
            let Some(name) = l
                .split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or(""))
            else {
                continue;
            };
            if name.starts_with("bl-") && sys::run("ip", &["link", "del", name]).is_ok() {
                removed.push(name.to_string());
            }
        }
    }
    removed
}

/// `bl` + up to 6 of [a-z0-9] + `-`: a lab namespace name.
pub(crate) fn is_lab_name(n: &str) -> bool {
    let Some(rest) = n.strip_prefix("bl") else {
        return false;
    };
    let Some(dash) = rest.find('-') else {
        return false;
    };
    dash <= 6
        && rest[..dash]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names() {
        assert!(is_lab_name("bl-edge"));
        assert!(is_lab_name("blt1-l0"));
        assert!(!is_lab_name("blue"));
        assert!(is_lab_name("blbench-core"));
        assert!(!is_lab_name("blablabla-x"));
        assert!(!is_lab_name("other"));
    }

    #[test]
    fn addresses() {
        assert_eq!(edge_wan_addr(0, 1), Ipv4Addr::new(10, 71, 1, 1));
        assert_eq!(core_wan_addr(1, 0), Ipv4Addr::new(10, 71, 16, 2));
    }
}
