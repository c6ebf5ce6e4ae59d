//! What carries the client's traffic across the links: `direct` (plain routing over the best
//! single link), `mptcp` (kernel MPTCP with a subflow per WAN behind a transparent proxy on edge
//! and core, as OpenMPTCProuter runs it), or `braid` (the edge and core daemons).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::sys;
use super::topo::{self, Topology, CORE_ADDR, LAN_NET, SERVER_NET};

/// A way of carrying traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Direct,
    Mptcp,
    Braid,
}

/// Port of the shadowsocks server on the core.
const SS_PORT: u16 = 8388;
/// Port of the transparent ss-redir on the edge.
const REDIR_PORT: u16 = 1080;
/// The cipher OpenMPTCProuter configures by default.
const SS_CIPHER: &str = "chacha20-ietf-poly1305";
/// The shadowsocks options server and client must agree on (key, cipher), and both ends' socket
/// options.
const SS_SHARED: [&str; 6] = [
    "-k",
    "braid-lab",
    "-m",
    SS_CIPHER,
    "--no-delay",
    "--reuse-port",
];

impl Mode {
    pub(crate) fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "direct" => Ok(Mode::Direct),
            "mptcp" => Ok(Mode::Mptcp),
            "braid" => Ok(Mode::Braid),
            _ => Err(format!("unknown mode '{s}' (direct, mptcp, braid)")),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Mptcp => "mptcp",
            Mode::Braid => "braid",
        }
    }

    /// Whether this host can run the mode; the error says what is missing.
    pub fn available(&self) -> Result<(), String> {
        match self {
            Mode::Direct => need(&["ip", "nft"]),
            Mode::Mptcp => {
                need(&["ip", "nft", "mptcpize", "ss-redir", "ss-server"])?;
                if !Path::new("/proc/sys/net/mptcp/enabled").exists() {
                    return Err("this kernel has no MPTCP (/proc/sys/net/mptcp missing)".into());
                }
                Ok(())
            }
            Mode::Braid => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                for role in ["edge", "core"] {
                    if !help_succeeds(&exe, role) {
                        return Err(format!(
                            "`braid {role}` is not built yet (the data-plane issue)"
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// [`Mode::available`], with braid's daemons from `daemons` when given (another build).
    pub(crate) fn available_with(&self, daemons: Option<&Path>) -> Result<(), String> {
        match (self, daemons) {
            (Mode::Braid, Some(exe)) => {
                if !exe.is_file() {
                    return Err(format!("{}: no such file", exe.display()));
                }
                for role in ["edge", "core"] {
                    if !help_succeeds(exe, role) {
                        return Err(format!(
                            "`{} {role} --help` does not succeed: not a braid binary with daemons",
                            exe.display()
                        ));
                    }
                }
                Ok(())
            }
            _ => self.available(),
        }
    }

    /// [`Mode::setup`], with braid's daemons from `daemons` when given.
    pub(crate) fn setup_with(&self, topo: &mut Topology, daemons: Option<&Path>) -> io::Result<()> {
        match (self, daemons) {
            (Mode::Braid, Some(exe)) => setup_braid_exe(topo, exe, &[], &[]),
            _ => self.setup(topo),
        }
    }

    /// Set the mode up on a fresh topology (edge 0 and the core).
    pub(crate) fn setup(&self, topo: &mut Topology) -> io::Result<()> {
        match self {
            Mode::Direct => Ok(()),
            Mode::Mptcp => setup_mptcp(topo),
            Mode::Braid => setup_braid(topo),
        }
    }
}

/// `braid ROLE --help` exits 0 within 2 s (a binary that would rather start a daemon is killed).
fn help_succeeds(exe: &Path, role: &str) -> bool {
    let Ok(mut c) = std::process::Command::new(exe)
        .args([role, "--help"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Ok(Some(st)) = c.try_wait() {
            return st.success();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn need(progs: &[&str]) -> Result<(), String> {
    let path = std::env::var("PATH").unwrap_or_default();
    for p in progs {
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/sbin"])
            .any(|d| Path::new(d).join(p).is_file());
        if !found {
            return Err(format!(
                "`{p}` not found (apt-get install iproute2 nftables shadowsocks-libev mptcpize)"
            ));
        }
    }
    Ok(())
}

fn setup_mptcp(topo: &mut Topology) -> io::Result<()> {
    let edge = topo.edges[0].ns.clone();
    let core = topo.core.clone();
    let n = topo.edges[0].wan_dev.len();
    for ns in [&core, &edge] {
        sys::run(
            "ip",
            &[
                "-n",
                ns,
                "mptcp",
                "limits",
                "set",
                "subflow",
                "8",
                "add_addr_accepted",
                "8",
            ],
        )?;
    }
    for i in 0..n {
        let addr = topo::edge_wan_addr(0, i).to_string();
        let dev = topo.edges[0].wan_dev[i].clone();
        sys::run(
            "ip",
            &[
                "-n", &edge, "mptcp", "endpoint", "add", &addr, "dev", &dev, "subflow",
            ],
        )?;
    }
    let port = SS_PORT.to_string();
    topo.spawn(
        &core,
        "ss-server",
        &[
            &["mptcpize", "run", "ss-server", "-s", "0.0.0.0", "-p", &port][..],
            &SS_SHARED,
        ]
        .concat(),
    )?;
    let core_addr = CORE_ADDR.to_string();
    let lport = REDIR_PORT.to_string();
    topo.spawn(
        &edge,
        "ss-redir",
        &[
            &[
                "mptcpize", "run", "ss-redir", "-s", &core_addr, "-p", &port, "-l", &lport, "-b",
                "0.0.0.0",
            ][..],
            &SS_SHARED,
        ]
        .concat(),
    )?;
    // Client TCP goes to ss-redir; everything else takes the plain default route.
    sys::nft(
        &edge,
        &format!(
            "table ip bl_omr {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
             iifname \"bl-br0\" ip daddr != {LAN_NET} meta l4proto tcp redirect to :{REDIR_PORT}\n }}\n}}\n"
        ),
    )?;
    wait_listening(&edge, REDIR_PORT)?;
    wait_listening(&core, SS_PORT)?;
    topo.check_procs()
}

fn wait_listening(ns: &str, port: u16) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let ok = sys::in_ns(ns, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map(|_| ())
        });
        if ok.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "nothing listens on port {port} in {ns}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The UCI files the braid daemons get in the lab: edge 0 with one `config link` per WAN, the
/// core with one `config peer` per edge. Keys come from `braid genkey`/`braid pubkey`.
/// `prefix` is the topology's namespace prefix, `dir` where control sockets and state files go
/// (one per topology, so parallel labs do not meet), `wan_devs[e]` edge e's WAN devices.
pub(crate) fn braid_configs(
    prefix: &str,
    dir: &Path,
    wan_devs: &[Vec<String>],
    keys: &BraidKeys,
) -> (Vec<String>, String) {
    let d = dir.display();
    let mut edges = Vec::new();
    for (e, devs) in wan_devs.iter().enumerate() {
        let mut s = format!(
            "config braid 'main'\n\toption enabled '1'\n\toption role 'edge'\n\
             \toption private_key '{}'\n\toption core_host '{CORE_ADDR}'\n\
             \toption core_public_key '{}'\n\tlist lan '{LAN_NET}'\n\toption space '{p}space{e}'\n\
             \toption hub 'bl-hub{e}'\n\toption control_socket '{d}/edge{e}.sock'\n\
             \toption state_file '{d}/edge{e}.state'\n\n",
            keys.edge_private[e],
            keys.core_public,
            p = prefix
        );
        for (i, dev) in devs.iter().enumerate() {
            s.push_str(&format!(
                "config link 'wan{i}'\n\toption device '{dev}'\n\toption transport 'udp'\n\n"
            ));
        }
        edges.push(s);
    }
    let mut core = format!(
        "config braid 'main'\n\toption enabled '1'\n\toption role 'core'\n\toption private_key '{}'\n\
         \toption space '{}spacec'\n\toption hub 'bl-hubc'\n\toption control_socket '{d}/core.sock'\n\
         \toption state_file '{d}/core.state'\n\tlist allow_dest '{SERVER_NET}'\n\n",
        keys.core_private, prefix
    );
    for (e, k) in keys.edge_public.iter().enumerate() {
        core.push_str(&format!(
            "config peer 'edge{e}'\n\toption public_key '{k}'\n\n"
        ));
    }
    (edges, core)
}

/// Key pairs for the core and each edge.
pub(crate) struct BraidKeys {
    pub(crate) core_private: String,
    pub(crate) core_public: String,
    pub(crate) edge_private: Vec<String>,
    pub(crate) edge_public: Vec<String>,
}

pub(crate) fn keypair(exe: &Path) -> io::Result<(String, String)> {
    use std::process::{Command, Stdio};
    let out = Command::new(exe).arg("genkey").output()?;
    if !out.status.success() {
        return Err(io::Error::other("braid genkey failed"));
    }
    let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut pubkey = Command::new(exe);
    pubkey.arg("pubkey").stdout(Stdio::piped());
    let public = sys::run_with_input(&mut pubkey, private.as_bytes(), "braid pubkey")?;
    Ok((private, String::from_utf8_lossy(&public).trim().to_string()))
}

/// The hook for `braid` mode: write the UCI files, start `braid core` in the core namespace and
/// `braid edge` in each edge namespace, and give them a moment to bring their session up.
fn setup_braid(topo: &mut Topology) -> io::Result<()> {
    setup_braid_wrapped(topo, &[], &[])
}

/// [`setup_braid`], with each edge started under `wrapper` and the core under `core_wrapper`
/// (a command and its arguments, such as valgrind's, that runs the daemon's command line; empty:
/// none); the readiness wait is 10 times longer when either is set.
pub(crate) fn setup_braid_wrapped(
    topo: &mut Topology,
    wrapper: &[&str],
    core_wrapper: &[&str],
) -> io::Result<()> {
    setup_braid_exe(topo, &std::env::current_exe()?, wrapper, core_wrapper)
}

/// [`setup_braid_wrapped`] with the daemons (and `genkey`, `pubkey`, `status`) of `exe`.
fn setup_braid_exe(
    topo: &mut Topology,
    exe: &Path,
    wrapper: &[&str],
    core_wrapper: &[&str],
) -> io::Result<()> {
    let exe = exe.canonicalize()?;
    let (core_private, core_public) = keypair(&exe)?;
    let mut keys = BraidKeys {
        core_private,
        core_public,
        edge_private: Vec::new(),
        edge_public: Vec::new(),
    };
    for _ in &topo.edges {
        let (a, b) = keypair(&exe)?;
        keys.edge_private.push(a);
        keys.edge_public.push(b);
    }
    let devs: Vec<Vec<String>> = topo.edges.iter().map(|e| e.wan_dev.clone()).collect();
    let (edges, core) = braid_configs(&topo.prefix, &topo.log_dir, &devs, &keys);
    let exe = exe.to_string_lossy().into_owned();
    let core_file = topo.log_dir.join("core.uci");
    std::fs::write(&core_file, core)?;
    let core_ns = topo.core.clone();
    let cf = core_file.to_string_lossy().into_owned();
    let mut argv = core_wrapper.to_vec();
    argv.extend([exe.as_str(), "core", "--config", &cf]);
    topo.spawn(&core_ns, "braid-core", &argv)?;
    for (e, text) in edges.iter().enumerate() {
        let f = topo.log_dir.join(format!("edge{e}.uci"));
        std::fs::write(&f, text)?;
        let ns = topo.edges[e].ns.clone();
        let f = f.to_string_lossy().into_owned();
        let mut argv = wrapper.to_vec();
        argv.extend([exe.as_str(), "edge", "--config", &f]);
        topo.spawn(&ns, &format!("braid-edge{e}"), &argv)?;
    }
    // Ready when every edge reports an established session.
    let wait = if wrapper.is_empty() && core_wrapper.is_empty() {
        15
    } else {
        150
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    for e in 0..edges.len() {
        let sock = topo.log_dir.join(format!("edge{e}.sock"));
        loop {
            topo.check_procs()?;
            let out = std::process::Command::new(&exe)
                .args(["status", "--json", "--socket"])
                .arg(&sock)
                .output();
            if let Ok(o) = out {
                if String::from_utf8_lossy(&o.stdout).contains("\"established\"") {
                    break;
                }
            }
            if Instant::now() > deadline {
                topo.keep_logs = true;
                return Err(io::Error::other(format!(
                    "edge {e} has no established session after {wait} s (logs in {})",
                    topo.log_dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    topo.check_procs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keytext::key_to_base64;
    use crate::proto::seal::Keypair;

    #[test]
    fn generated_uci_files_load_without_warnings() {
        let k = || {
            let p = Keypair::generate();
            (key_to_base64(&p.private), key_to_base64(&p.public))
        };
        let (c, e0, e1) = (k(), k(), k());
        let keys = BraidKeys {
            core_private: c.0,
            core_public: c.1,
            edge_private: vec![e0.0, e1.0],
            edge_public: vec![e0.1, e1.1],
        };
        let devs = vec![
            vec!["bl-wan0".to_string(), "bl-wan1".to_string()],
            vec!["bl-wan0".to_string()],
        ];
        let (edges, core) = braid_configs("blx-", Path::new("/tmp/x"), &devs, &keys);
        for (i, text) in edges.iter().enumerate() {
            let cfg =
                crate::config::load_str("edge.uci", text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
            assert_eq!(cfg.links.len(), devs[i].len());
        }
        let cfg =
            crate::config::load_str("core.uci", &core).unwrap_or_else(|e| panic!("{e}\n{core}"));
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(cfg.peers.len(), 2);
    }
}
