//! The end-to-end lab: a topology with `braid core` and `braid edge` processes started from the
//! built binary, their UCI files, the control socket, traffic endpoints (TCP/UDP servers that
//! report the address they see, ICMP echo over a raw socket), an AF_PACKET capture, and
//! snapshots of a namespace's networking state.
//!
//! Everything a test makes is named with its tag (`bl<tag>-...` namespaces, files under
//! `/tmp/braid-e2e-<tag>/`) and removed when the [`Lab`] drops, also when the test fails.

use super::ns::csum;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use braid::control::{LinkStatus, Status};
use braid::keytext::key_to_base64;
use braid::lab::emu::{DirSpec, Rate};
use braid::lab::link::LinkSpec;
use braid::lab::{sys, topo, EdgeSpec, TopoSpec, Topology};
use braid::os::setsockopt;
use braid::proto::seal::Keypair;

/// The binary under test.
pub const BRAID: &str = env!("CARGO_BIN_EXE_braid");
/// Port the core listens on (the default).
pub const CORE_PORT: u16 = 51830;
/// Braid's steering table and rule priorities (SteerConfig::new()).
pub const TABLE: u32 = 0x6272;
pub const PRIO: std::ops::Range<u32> = 9000..9004;
/// The pool address the core masquerades to the server: its own address toward the server.
pub const CORE_SEEN: Ipv4Addr = topo::CORE_SRV_ADDR;

/// A symmetric fixed-rate link.
pub fn link(name: &str, mbit: u64, ms: u64) -> LinkSpec {
    let d = DirSpec {
        rate: Rate::Fixed(mbit * 1_000_000),
        delay_us: ms * 1000,
        ..Default::default()
    };
    LinkSpec {
        name: name.into(),
        up: d.clone(),
        down: d,
    }
}

pub fn edge_spec(links: Vec<LinkSpec>) -> EdgeSpec {
    EdgeSpec {
        links,
        clients: 1,
        best: 0,
    }
}

/// A key pair as base64 (private, public).
pub fn keypair() -> (String, String) {
    let k = Keypair::generate();
    (key_to_base64(&k.private), key_to_base64(&k.public))
}

/// What goes into an edge's UCI file.
#[derive(Clone, Debug)]
pub struct EdgeConf {
    pub private: String,
    pub core_host: String,
    pub core_public: String,
    /// Link devices (`config link 'wan<i>'`, option device; an empty one: no option device,
    /// the device netifd reports).
    pub devices: Vec<String>,
    pub socket: PathBuf,
    /// `state_file` (quota counters, handshake clock mark): in the test's directory, never
    /// the host's /etc/braid.
    pub state: PathBuf,
}

impl EdgeConf {
    pub fn uci(&self) -> String {
        let mut s = format!(
            "config braid 'main'\n\toption enabled '1'\n\toption role 'edge'\n\
             \toption private_key '{}'\n\toption core_host '{}'\n\toption core_public_key '{}'\n\
             \tlist lan '{}'\n\toption hub 'bl-hub'\n\toption control_socket '{}'\n\
             \toption state_file '{}'\n\n",
            self.private,
            self.core_host,
            self.core_public,
            topo::LAN_NET,
            self.socket.display(),
            self.state.display()
        );
        for (i, d) in self.devices.iter().enumerate() {
            let dev = if d.is_empty() {
                String::new()
            } else {
                format!("\toption device '{d}'\n")
            };
            s.push_str(&format!(
                "config link 'wan{i}'\n{dev}\toption transport 'udp'\n\n"
            ));
        }
        s
    }
}

/// The core's UCI file: one `config peer` per public key; its state file beside the socket;
/// the lab's "internet" (the server's subnet, private addresses) opened to the clients.
pub fn core_uci(private: &str, peers: &[String], socket: &Path) -> String {
    let mut s = format!(
        "config braid 'main'\n\toption enabled '1'\n\toption role 'core'\n\
         \toption private_key '{private}'\n\toption hub 'bl-hubc'\n\
         \toption control_socket '{}'\n\toption state_file '{}'\n\
         \tlist allow_dest '{}'\n\n",
        socket.display(),
        socket.with_file_name("core.state").display(),
        topo::SERVER_NET
    );
    for (i, k) in peers.iter().enumerate() {
        s.push_str(&format!(
            "config peer 'edge{i}'\n\toption public_key '{k}'\n\n"
        ));
    }
    s
}

/// One `braid edge` or `braid core` process in a lab namespace, started from the binary under
/// test with `--stderr`, its output appended to a log file. Killed on drop.
pub struct Daemon {
    pub label: String,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub exit: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `braid <role> --config <config> --stderr` inside namespace `ns`.
    pub fn start(ns: &str, role: &str, config: &Path, socket: &Path, log: &Path) -> Daemon {
        Daemon::start_env(ns, role, config, socket, log, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(
        ns: &str,
        role: &str,
        config: &Path,
        socket: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Daemon {
        Daemon::start_with(ns, role, config, socket, log, env, &[], &[])
    }

    /// [`Daemon::start_env`] with more arguments, and files bind-mounted over others in a mount
    /// namespace of the daemon's own (`(file, over)`: e.g. a resolv.conf of the test's over
    /// /etc/resolv.conf), as `ip netns exec` does with /etc/netns/NAME/.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with(
        ns: &str,
        role: &str,
        config: &Path,
        socket: &Path,
        log: &Path,
        env: &[(&str, &str)],
        args: &[String],
        binds: &[(PathBuf, PathBuf)],
    ) -> Daemon {
        let label = log
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("daemon log file");
        let nsfile = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
        let nsfd = nsfile.as_raw_fd();
        let mut cmd = Command::new(BRAID);
        cmd.args([role, "--config"])
            .arg(config)
            .arg("--stderr")
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup log"))
            .stderr(f)
            .envs(env.iter().copied());
        let cstr = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
        };
        let binds: Vec<(std::ffi::CString, std::ffi::CString)> =
            binds.iter().map(|(a, b)| (cstr(a), cstr(b))).collect();
        // SAFETY: setns(2), unshare(2) and mount(2) are async-signal-safe; the fd stays open in
        // the parent until spawn returns, and the C strings live in the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(nsfd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if binds.is_empty() {
                    return Ok(());
                }
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Mounts made here stay here.
                let root = c"/";
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                for (from, over) in &binds {
                    if libc::mount(
                        from.as_ptr(),
                        over.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn braid");
        drop(nsfile);
        Daemon {
            label,
            ns: ns.to_string(),
            config: config.to_path_buf(),
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
            child: Some(child),
            exit: None,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Whether it has exited (reaps it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if let Some(c) = &mut self.child {
            if let Ok(Some(st)) = c.try_wait() {
                self.exit = Some(st);
                self.child = None;
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.exited().is_some() {
                return self.exit;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }

    fn signal(&self, sig: i32) {
        if let Some(p) = self.pid() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(p, sig) };
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exit = c.wait().ok();
        }
    }

    /// SIGTERM and wait up to 5 s for a clean exit (SIGKILL after that); the exit status.
    pub fn term(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(Duration::from_secs(5));
        if st.is_none() {
            self.kill9();
            eprintln!("{} did not stop within 5 s of SIGTERM: killed", self.label);
            return None;
        }
        st
    }

    /// `braid stop --socket <socket>` (a core stops for good, removing everything), then waits
    /// up to 5 s for the exit; the exit status (None: it had to be killed).
    pub fn stop_for_good(&mut self) -> Option<ExitStatus> {
        let out = Command::new(BRAID)
            .args(["stop", "--socket"])
            .arg(&self.socket)
            .output()
            .expect("run braid stop");
        assert!(
            out.status.success(),
            "braid stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st = self.wait_exit(Duration::from_secs(5));
        if st.is_none() {
            self.kill9();
            eprintln!(
                "{} did not stop within 5 s of braid stop: killed",
                self.label
            );
        }
        st
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `braid status --json --socket <socket>` (the CLI of the binary under test).
    pub fn status(&self) -> Result<Status, String> {
        let out = Command::new(BRAID)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// `braid status --json --socket <socket>` as printed, unparsed (the contract LuCI reads).
    pub fn status_json(&self) -> Result<serde_json::Value, String> {
        let out = Command::new(BRAID)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// `braid status --socket <socket>`: the table a person reads.
    pub fn status_text(&self) -> Result<String, String> {
        let out = Command::new(BRAID)
            .args(["status", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `braid link up NAME --device DEV --socket <socket>` (what the hotplug script runs on
    /// ifup): what it printed on stderr (a note) when it succeeded.
    pub fn link_device(&self, name: &str, device: &str) -> Result<String, String> {
        let out = Command::new(BRAID)
            .args(["link", "up", name, "--device", device, "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !out.status.success() {
            return Err(err);
        }
        Ok(err)
    }

    /// SIGHUP (what procd sends on `reload`).
    pub fn hup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// CPU time the process has used so far (user + system, every thread), from
    /// /proc/PID/stat.
    pub fn cpu_time(&self) -> Duration {
        let Some(pid) = self.pid() else {
            return Duration::ZERO;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces), from field 3 on.
        let rest = stat.rsplit_once(')').map_or("", |x| x.1);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        // SAFETY: sysconf(3) has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_micros(ticks * 1_000_000 / hz)
    }

    /// `braid reload --socket <socket>`.
    pub fn reload(&self) -> Result<(), String> {
        let out = Command::new(BRAID)
            .args(["reload", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(())
    }

    /// `braid link up|down NAME --socket <socket>`.
    pub fn link(&self, name: &str, up: bool) -> Result<(), String> {
        let out = Command::new(BRAID)
            .args(["link", if up { "up" } else { "down" }, name, "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(())
    }

    /// The network namespaces this running process holds by file descriptor other than its own
    /// (the space), as `net:[inode]` strings.
    pub fn held_namespaces(&self) -> Vec<String> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let own = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut out = BTreeSet::new();
        if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for e in rd.flatten() {
                if let Ok(l) = std::fs::read_link(e.path()) {
                    let l = l.to_string_lossy().into_owned();
                    if l.starts_with("net:[") && l != own {
                        out.insert(l);
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether any process still refers to network namespace `ns` (`net:[inode]`), as its own or
/// through an open descriptor.
pub fn namespace_referenced(ns: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in rd.flatten() {
        let name = p.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                if std::fs::read_link(t.path().join("ns/net"))
                    .is_ok_and(|l| l.to_string_lossy() == ns)
                {
                    return true;
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for f in fds.flatten() {
                if std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy() == ns) {
                    return true;
                }
            }
        }
    }
    false
}

/// Calls `f` every `every` until it gives a value, for at most `timeout` (`f` runs at least
/// once, and once more after the last pause).
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Link `name` of the first session in `st`.
pub fn link_of<'a>(st: &'a Status, name: &str) -> Option<&'a LinkStatus> {
    st.sessions
        .first()
        .and_then(|s| s.links.iter().find(|l| l.name == name))
}

/// Bytes sent on link `name` of the first session in `st` (0 if absent).
pub fn link_tx(st: &Status, name: &str) -> u64 {
    link_of(st, name).map_or(0, |l| l.tx_bytes)
}

/// Bytes sent per link of the first session in `st`, in link-id order (the core's view of an
/// edge's links).
pub fn core_tx(st: &Status) -> Vec<u64> {
    let mut v: Vec<(u8, u64)> = st
        .sessions
        .first()
        .map(|s| s.links.iter().map(|l| (l.id, l.tx_bytes)).collect())
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

/// A topology, its keys, and the braid processes running in it. Dropping it stops every
/// process and removes every namespace, veth and file it made.
pub struct Lab {
    pub t: Topology,
    pub dir: PathBuf,
    pub core_key: (String, String),
    pub edge_keys: Vec<(String, String)>,
    pub core: Option<Daemon>,
    pub edges: Vec<Option<Daemon>>,
}

impl Lab {
    /// Builds the topology (one client per edge) and writes the core's and every edge's UCI
    /// file (the core lists every edge's key). Nothing runs yet.
    pub fn new(tag: &str, edges: Vec<EdgeSpec>) -> Lab {
        let t = Topology::up(TopoSpec {
            tag: tag.to_string(),
            seed: 1,
            edges,
        })
        .expect("topology up");
        let dir = std::env::temp_dir().join(format!("braid-e2e-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        let core_key = keypair();
        let edge_keys: Vec<_> = t.edges.iter().map(|_| keypair()).collect();
        let n = t.edges.len();
        let lab = Lab {
            t,
            dir,
            core_key,
            edge_keys,
            core: None,
            edges: (0..n).map(|_| None).collect(),
        };
        let peers: Vec<String> = lab.edge_keys.iter().map(|k| k.1.clone()).collect();
        lab.write_core_config(&peers);
        for e in 0..n {
            lab.write_edge_config(e, &lab.edge_conf(e));
        }
        lab
    }

    pub fn core_socket(&self) -> PathBuf {
        self.dir.join("core.sock")
    }

    pub fn edge_socket(&self, e: usize) -> PathBuf {
        self.dir.join(format!("edge{e}.sock"))
    }

    pub fn core_config(&self) -> PathBuf {
        self.dir.join("core.uci")
    }

    pub fn edge_config(&self, e: usize) -> PathBuf {
        self.dir.join(format!("edge{e}.uci"))
    }

    /// Edge `e`'s default configuration: its own key, every WAN device, the core's address.
    pub fn edge_conf(&self, e: usize) -> EdgeConf {
        EdgeConf {
            private: self.edge_keys[e].0.clone(),
            core_host: topo::CORE_ADDR.to_string(),
            core_public: self.core_key.1.clone(),
            devices: self.t.edges[e].wan_dev.clone(),
            socket: self.edge_socket(e),
            state: self.dir.join(format!("edge{e}.state")),
        }
    }

    /// Writes edge `e`'s UCI file.
    pub fn write_edge_config(&self, e: usize, c: &EdgeConf) {
        std::fs::write(self.edge_config(e), c.uci()).expect("write edge config");
    }

    pub fn write_core_config(&self, peers: &[String]) {
        std::fs::write(
            self.core_config(),
            core_uci(&self.core_key.0, peers, &self.core_socket()),
        )
        .expect("write core config");
    }

    pub fn start_core(&mut self) {
        let d = Daemon::start(
            &self.t.core,
            "core",
            &self.core_config(),
            &self.core_socket(),
            &self.dir.join("core.log"),
        );
        self.core = Some(d);
    }

    pub fn start_edge(&mut self, e: usize) {
        self.start_edge_env(e, &[]);
    }

    /// [`Lab::start_edge`] with extra environment variables (libfaketime, say).
    pub fn start_edge_env(&mut self, e: usize, env: &[(&str, &str)]) {
        let d = Daemon::start_env(
            &self.t.edges[e].ns,
            "edge",
            &self.edge_config(e),
            &self.edge_socket(e),
            &self.dir.join(format!("edge{e}.log")),
            env,
        );
        self.edges[e] = Some(d);
    }

    /// [`Lab::start_edge`] with more arguments and bind mounts (see [`Daemon::start_with`]).
    pub fn start_edge_with(&mut self, e: usize, args: &[String], binds: &[(PathBuf, PathBuf)]) {
        let d = Daemon::start_with(
            &self.t.edges[e].ns,
            "edge",
            &self.edge_config(e),
            &self.edge_socket(e),
            &self.dir.join(format!("edge{e}.log")),
            &[],
            args,
            binds,
        );
        self.edges[e] = Some(d);
    }

    pub fn edge(&self, e: usize) -> &Daemon {
        self.edges[e].as_ref().expect("edge started")
    }

    pub fn edge_mut(&mut self, e: usize) -> &mut Daemon {
        self.edges[e].as_mut().expect("edge started")
    }

    /// [`Lab::new`], then [`Lab::start_bonded`].
    pub fn bonded(tag: &str, edges: Vec<EdgeSpec>) -> Lab {
        let mut lab = Lab::new(tag, edges);
        lab.start_bonded();
        lab
    }

    /// Starts the core and every edge, then waits up to 10 s for each edge to bond (panics with
    /// their logs otherwise); how long each edge took.
    pub fn start_bonded(&mut self) -> Vec<Duration> {
        self.start_core();
        for e in 0..self.edges.len() {
            self.start_edge(e);
        }
        (0..self.edges.len())
            .map(|e| {
                self.wait_bonded(e, Duration::from_secs(10))
                    .unwrap_or_else(|err| panic!("{err}"))
            })
            .collect()
    }

    /// A [`Server`] on `port` in the server namespace, once edge `e`'s client has been answered
    /// by it (within 3 s): neighbour resolution along the path is not what tests measure.
    pub fn reached_server(&self, e: usize, port: u16) -> Server {
        let server = Server::start(&self.t.server, port);
        seen_by_server(&self.client(e), server.addr(), Duration::from_secs(3)).unwrap();
        server
    }

    /// Waits until edge `e` reports an established session and its steering rules are in place;
    /// the time it took. The error quotes the edge's log.
    pub fn wait_bonded(&mut self, e: usize, timeout: Duration) -> Result<Duration, String> {
        let t = Instant::now();
        let ns = self.t.edges[e].ns.clone();
        loop {
            let d = self.edges[e].as_mut().expect("edge started");
            if let Some(st) = d.exited() {
                return Err(format!("edge {e} exited ({st}): {}", d.log_text()));
            }
            let est = d
                .status()
                .ok()
                .is_some_and(|s| s.sessions.iter().any(|x| x.state == "established"));
            if est && steering_installed(&ns) {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                let core = self.core.as_ref().map(|c| c.log_text()).unwrap_or_default();
                return Err(format!(
                    "edge {e} not bonded after {timeout:?}\n--- edge log:\n{}\n--- core log:\n{core}",
                    self.edges[e].as_ref().map(|d| d.log_text()).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self, e: usize) -> String {
        self.t.edges[e].clients[0].clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for d in self.edges.iter_mut().flatten() {
            d.kill9();
        }
        if let Some(c) = &mut self.core {
            c.kill9();
        }
        self.t.teardown();
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.dir.display());
            for f in ["core.log", "edge0.log", "edge1.log"] {
                if let Ok(s) = std::fs::read_to_string(self.dir.join(f)) {
                    let tail: Vec<&str> = s.lines().rev().take(30).collect();
                    eprintln!("--- {f} (last lines):");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `ip -n ns ARGS...` output.
pub fn ip(ns: &str, args: &[&str]) -> String {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    sys::run("ip", &a).unwrap_or_else(|e| format!("ERROR {e}"))
}

/// Whether braid's steering rule (`from <lan> lookup 0x6272`) is present in `ns`.
pub fn steering_installed(ns: &str) -> bool {
    ip(ns, &["rule", "show"])
        .lines()
        .any(|l| l.starts_with("9002:"))
}

/// The networking state of a namespace that braid could change: interfaces, policy rules,
/// routes of every table, permanent neighbour entries, nftables tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetState {
    pub items: BTreeSet<String>,
}

pub fn snapshot(ns: &str) -> NetState {
    let mut items = BTreeSet::new();
    for l in ip(ns, &["-o", "link", "show"]).lines() {
        if let Some(name) = l.split(':').nth(1) {
            let name = name.trim().split('@').next().unwrap_or("");
            items.insert(format!("link {name}"));
        }
    }
    for l in ip(ns, &["rule", "show"]).lines() {
        items.insert(format!("rule {}", l.trim()));
    }
    for l in ip(ns, &["route", "show", "table", "all"]).lines() {
        items.insert(format!("route {}", l.trim()));
    }
    for l in ip(ns, &["neigh", "show", "nud", "permanent"]).lines() {
        items.insert(format!("neigh {}", l.trim()));
    }
    if let Ok(out) = sys::run("ip", &["netns", "exec", ns, "nft", "list", "tables"]) {
        for l in out.lines() {
            items.insert(format!("nft {}", l.trim()));
        }
    }
    NetState { items }
}

/// What differs between two snapshots, as `+ item` (added) and `- item` (gone).
pub fn diff(before: &NetState, after: &NetState) -> Vec<String> {
    let mut d: Vec<String> = after
        .items
        .difference(&before.items)
        .map(|s| format!("+ {s}"))
        .collect();
    d.extend(
        before
            .items
            .difference(&after.items)
            .map(|s| format!("- {s}")),
    );
    d
}

/// Braid's own footprint in a namespace: hub interfaces, rules in its priority range, routes in
/// its table, its nftables tables.
pub fn braid_footprint(ns: &str) -> Vec<String> {
    snapshot(ns)
        .items
        .into_iter()
        .filter(|s| {
            if let Some(l) = s.strip_prefix("link ") {
                return l.starts_with("bl-hub");
            }
            if let Some(r) = s.strip_prefix("rule ") {
                let p: u32 = r
                    .split(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                return PRIO.contains(&p);
            }
            if let Some(r) = s.strip_prefix("route ") {
                return r.contains(&format!("table {TABLE}")) || r.contains("dev bl-hub");
            }
            if let Some(n) = s.strip_prefix("neigh ") {
                return n.contains("dev bl-hub");
            }
            if let Some(n) = s.strip_prefix("nft ") {
                return n.contains("bl-hub");
            }
            false
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Traffic

/// Byte `i` of every test stream.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// A server in the server namespace: TCP and UDP on `port`, recording every peer address it sees.
///
/// TCP: the client sends one command byte and a u64 (big-endian) length:
/// `D`: the server sends that many pattern bytes; `U`: the server reads that many, checks the
/// pattern and answers with the u64 count of correct bytes; `S`: the server reads until the
/// client shuts its side down, then answers with the u64 counts of correct and of all bytes;
/// `W`: the server answers with the peer address it sees, as text. UDP: every datagram is answered with `<peer>|<payload>`.
pub struct Server {
    pub port: u16,
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn start(ns: &str, port: u16) -> Server {
        let any = SocketAddr::from(([0, 0, 0, 0], port));
        let l = sys::in_ns(ns, || TcpListener::bind(any)).expect("tcp listen");
        let u = sys::in_ns(ns, || UdpSocket::bind(any)).expect("udp bind");
        l.set_nonblocking(true).unwrap();
        u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        let (st, pe) = (stop.clone(), peers.clone());
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = u.recv_from(&mut buf) {
                    pe.lock().unwrap().push(from);
                    let mut r = format!("{from}|").into_bytes();
                    r.extend_from_slice(&buf[..n]);
                    let _ = u.send_to(&r, from);
                }
            }
        }));
        let (st, pe) = (stop.clone(), peers.clone());
        threads.push(std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, from)) => {
                        pe.lock().unwrap().push(from);
                        let st = st.clone();
                        conns.push(std::thread::spawn(move || serve_tcp(s, from, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        }));
        Server {
            port,
            peers,
            stop,
            threads,
        }
    }

    /// Peer addresses seen so far, without duplicates.
    pub fn peer_ips(&self) -> BTreeSet<std::net::IpAddr> {
        self.peers.lock().unwrap().iter().map(|a| a.ip()).collect()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((topo::SERVER_ADDR, self.port))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_tcp(mut s: TcpStream, from: SocketAddr, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let mut hdr = [0u8; 9];
    if read_full(&mut s, &mut hdr, stop).is_err() {
        return;
    }
    let len = u64::from_be_bytes(hdr[1..9].try_into().unwrap());
    match hdr[0] {
        b'D' => {
            let mut buf = vec![0u8; 16384];
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(buf.len() as u64) as usize;
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = pattern(off + i as u64);
                }
                if write_full(&mut s, &buf[..n], stop).is_err() {
                    return;
                }
                off += n as u64;
            }
            // Wait for the client to close, so nothing is cut short by our close.
            let mut b = [0u8; 1];
            let _ = read_full(&mut s, &mut b, stop);
        }
        b'U' => {
            let mut buf = vec![0u8; 16384];
            let (mut off, mut good) = (0u64, 0u64);
            while off < len {
                let want = (len - off).min(buf.len() as u64) as usize;
                match read_some(&mut s, &mut buf[..want], stop) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        good += buf[..n]
                            .iter()
                            .enumerate()
                            .filter(|(i, b)| **b == pattern(off + *i as u64))
                            .count() as u64;
                        off += n as u64;
                    }
                }
            }
            let _ = write_full(&mut s, &good.to_be_bytes(), stop);
            let mut b = [0u8; 1];
            let _ = read_full(&mut s, &mut b, stop);
        }
        b'S' => {
            let mut buf = vec![0u8; 65536];
            let (mut off, mut good) = (0u64, 0u64);
            let (mut last, mut max_gap) = (None::<Instant>, Duration::ZERO);
            loop {
                match read_some(&mut s, &mut buf, stop) {
                    Ok(0) => break,
                    Err(_) => return,
                    Ok(n) => {
                        let now = Instant::now();
                        if let Some(l) = last {
                            max_gap = max_gap.max(now - l);
                        }
                        last = Some(now);
                        good += buf[..n]
                            .iter()
                            .enumerate()
                            .filter(|(i, b)| **b == pattern(off + *i as u64))
                            .count() as u64;
                        off += n as u64;
                    }
                }
            }
            let mut r = good.to_be_bytes().to_vec();
            r.extend_from_slice(&off.to_be_bytes());
            r.extend_from_slice(&(max_gap.as_micros() as u64).to_be_bytes());
            let _ = write_full(&mut s, &r, stop);
        }
        b'W' => {
            let _ = write_full(&mut s, from.to_string().as_bytes(), stop);
        }
        _ => {}
    }
}

/// Reads some bytes, retrying on timeouts until `stop`.
pub fn read_some(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Err(io::Error::other("stopped"));
                }
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn read_full(s: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match read_some(s, &mut buf[off..], stop)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => off += n,
        }
    }
    Ok(())
}

pub fn write_full(s: &mut TcpStream, buf: &[u8], stop: &AtomicBool) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match s.write(&buf[off..]) {
            Ok(n) => off += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Err(io::Error::other("stopped"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One running flow: bytes moved so far (intact for downloads), and its outcome at the end.
pub struct Flow {
    pub what: String,
    pub moved: Arc<AtomicU64>,
    pub handle: std::thread::JoinHandle<Result<String, String>>,
}

/// Two downloads and an upload from `ns` to `server`, running until `stop`.
pub fn two_down_one_up(ns: &str, server: SocketAddr, stop: &Arc<AtomicBool>) -> Vec<Flow> {
    vec![
        down_flow(ns, server, stop.clone(), "download 1"),
        down_flow(ns, server, stop.clone(), "download 2"),
        up_flow(ns, server, stop.clone(), "upload"),
    ]
}

/// Bytes each flow has moved so far.
pub fn moved(flows: &[Flow]) -> Vec<u64> {
    flows
        .iter()
        .map(|f| f.moved.load(Ordering::Relaxed))
        .collect()
}

/// Sets `stop` and joins every flow: (what, outcome) of each.
pub fn finish_flows(stop: &AtomicBool, flows: Vec<Flow>) -> Vec<(String, Result<String, String>)> {
    stop.store(true, Ordering::Relaxed);
    flows
        .into_iter()
        .map(|f| (f.what, f.handle.join().unwrap()))
        .collect()
}

/// Downloads the server's pattern stream until `stop`, checking every byte.
pub fn down_flow(ns: &str, server: SocketAddr, stop: Arc<AtomicBool>, what: &str) -> Flow {
    let moved = Arc::new(AtomicU64::new(0));
    let m = moved.clone();
    let ns = ns.to_string();
    let handle = std::thread::spawn(move || {
        let never = AtomicBool::new(false);
        let mut s =
            connect(&ns, server, None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let mut hdr = [0u8; 9];
        hdr[0] = b'D';
        hdr[1..9].copy_from_slice(&(1u64 << 40).to_be_bytes());
        write_full(&mut s, &hdr, &never).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65536];
        let mut off = 0u64;
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) => return Err(format!("closed by the other side after {off} bytes")),
                Ok(n) => {
                    if let Some(i) = (0..n).find(|i| buf[*i] != pattern(off + *i as u64)) {
                        return Err(format!("corrupted byte at offset {}", off + i as u64));
                    }
                    off += n as u64;
                    m.store(off, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("after {off} bytes: {e}")),
            }
        }
        Ok(format!("{off} B received intact"))
    });
    Flow {
        what: what.into(),
        moved,
        handle,
    }
}

/// Sends pattern bytes to the server (`S`) until `stop`, then asks for the server's verdict.
pub fn up_flow(ns: &str, server: SocketAddr, stop: Arc<AtomicBool>, what: &str) -> Flow {
    let moved = Arc::new(AtomicU64::new(0));
    let m = moved.clone();
    let ns = ns.to_string();
    let handle = std::thread::spawn(move || {
        let never = AtomicBool::new(false);
        let mut s =
            connect(&ns, server, None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let mut hdr = [0u8; 9];
        hdr[0] = b'S';
        write_full(&mut s, &hdr, &never).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 8192];
        let mut off = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            match s.write(&buf) {
                Ok(n) => {
                    off += n as u64;
                    m.store(off, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("after {off} bytes: {e}")),
            }
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut r = [0u8; 24];
        read_full(&mut s, &mut r, &never).map_err(|e| format!("server verdict: {e}"))?;
        let good = u64::from_be_bytes(r[0..8].try_into().unwrap());
        let total = u64::from_be_bytes(r[8..16].try_into().unwrap());
        if (good, total) != (off, off) {
            return Err(format!(
                "wrote {off} B, the server got {total} B of which {good} intact"
            ));
        }
        Ok(format!("{off} B sent, all intact at the server"))
    });
    Flow {
        what: what.into(),
        moved,
        handle,
    }
}

/// A TCP connection from a client namespace to `to` (optionally from a fixed local port).
pub fn connect(
    ns: &str,
    to: SocketAddr,
    local_port: Option<u16>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let s = sys::in_ns(ns, || {
        let fd = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        if let Some(p) = local_port {
            nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReuseAddr, &true)
                .map_err(io::Error::from)?;
            let a = nix::sys::socket::SockaddrIn::new(0, 0, 0, 0, p);
            nix::sys::socket::bind(fd.as_raw_fd(), &a).map_err(io::Error::from)?;
        }
        Ok(TcpStream::from(fd))
    })?;
    connect_timeout(&s, to, timeout)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// Connects `s` to `to` within `timeout` (non-blocking connect, then poll).
fn connect_timeout(s: &TcpStream, to: SocketAddr, timeout: Duration) -> io::Result<()> {
    let SocketAddr::V4(v4) = to else {
        return Err(io::Error::other("IPv4 only"));
    };
    s.set_nonblocking(true)?;
    let a = nix::sys::socket::SockaddrIn::from(v4);
    match nix::sys::socket::connect(s.as_raw_fd(), &a) {
        Ok(()) => {}
        Err(nix::errno::Errno::EINPROGRESS) => {
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(s),
                nix::poll::PollFlags::POLLOUT,
            )];
            let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
            let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms))
                .map_err(io::Error::from)?;
            if n == 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if let Some(e) = s.take_error()? {
                return Err(e);
            }
        }
        Err(e) => return Err(e.into()),
    }
    s.set_nonblocking(false)
}

/// Asks the server (TCP `W`) which address it sees for a new connection from `ns`.
pub fn seen_by_server(ns: &str, server: SocketAddr, timeout: Duration) -> io::Result<SocketAddr> {
    let mut s = connect(ns, server, None, timeout)?;
    let never = AtomicBool::new(false);
    let mut hdr = [0u8; 9];
    hdr[0] = b'W';
    write_full(&mut s, &hdr, &never)?;
    s.set_read_timeout(Some(timeout))?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::other(format!("bad answer '{text}'")))
}

/// One UDP request from a fresh socket in `ns`: the address the server saw, if answered
/// within `timeout`.
pub fn udp_seen(ns: &str, server: SocketAddr, timeout: Duration) -> io::Result<SocketAddr> {
    let s = sys::in_ns(ns, || UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0))))?;
    s.connect(server)?;
    s.set_read_timeout(Some(timeout))?;
    let token = format!("probe-{}", std::process::id());
    s.send(token.as_bytes())?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let (addr, payload) = text
        .split_once('|')
        .ok_or_else(|| io::Error::other("bad answer"))?;
    if payload != token {
        return Err(io::Error::other(format!(
            "answer for someone else: {payload}"
        )));
    }
    addr.parse()
        .map_err(|_| io::Error::other(format!("bad address '{addr}'")))
}

/// A raw ICMP socket in a namespace: sends echo requests, receives every ICMP packet.
pub struct Icmp {
    fd: OwnedFd,
}

impl Icmp {
    pub fn open(ns: &str) -> io::Result<Icmp> {
        sys::in_ns(ns, || {
            // SAFETY: plain socket(2).
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_ICMP,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv)?;
            Ok(Icmp { fd })
        })
    }

    /// Sends an echo request (id, seq) to `dst`.
    pub fn echo(&self, dst: Ipv4Addr, id: u16, seq: u16) -> io::Result<()> {
        let mut p = vec![0u8; 8 + 32];
        p[0] = 8;
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6..8].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in p[8..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let c = csum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
        let sa = nix::sys::socket::SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
        nix::sys::socket::sendto(
            self.fd.as_raw_fd(),
            &p,
            &sa,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(())
    }

    /// The next ICMP packet (the whole IPv4 packet), or None after the 50 ms timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        (n > 0).then(|| buf[..n as usize].to_vec())
    }
}

/// Pings `dst` from `ns` `count` times (every 50 ms): the sequence numbers answered.
pub fn ping(ns: &str, dst: Ipv4Addr, id: u16, count: u16) -> io::Result<BTreeSet<u16>> {
    let s = Icmp::open(ns)?;
    let mut got = BTreeSet::new();
    for seq in 0..count {
        s.echo(dst, id, seq)?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            if let Some(p) = s.recv() {
                if let Some((ihl, icmp)) = ipv4_body(&p) {
                    let _ = ihl;
                    if icmp.len() >= 8
                        && icmp[0] == 0
                        && u16::from_be_bytes([icmp[4], icmp[5]]) == id
                    {
                        got.insert(u16::from_be_bytes([icmp[6], icmp[7]]));
                    }
                }
            }
        }
    }
    // Late answers.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        if let Some(p) = s.recv() {
            if let Some((_, icmp)) = ipv4_body(&p) {
                if icmp.len() >= 8 && icmp[0] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == id {
                    got.insert(u16::from_be_bytes([icmp[6], icmp[7]]));
                }
            }
        }
    }
    Ok(got)
}

/// (header length, payload) of an IPv4 packet.
pub fn ipv4_body(p: &[u8]) -> Option<(usize, &[u8])> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 15) * 4;
    let tot = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    (tot >= ihl).then(|| (ihl, &p[ihl..tot]))
}

// ---------------------------------------------------------------------------------------------
// Capture

/// One captured frame: when, which way, and its bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    pub at: Duration,
    /// True for frames the interface sent (PACKET_OUTGOING), false for frames it received.
    pub outgoing: bool,
    pub data: Vec<u8>,
}

impl Frame {
    /// The IPv4 packet inside, if any.
    pub fn ipv4(&self) -> Option<&[u8]> {
        (self.data.len() >= 34 && self.data[12..14] == [0x08, 0x00]).then(|| &self.data[14..])
    }

    /// One line describing the frame.
    pub fn describe(&self) -> String {
        let dir = if self.outgoing { "out" } else { "in " };
        let Some(ip) = self.ipv4() else {
            return format!(
                "{:7.3}s {dir} ethertype {:02x}{:02x}",
                self.at.as_secs_f64(),
                self.data.get(12).copied().unwrap_or(0),
                self.data.get(13).copied().unwrap_or(0)
            );
        };
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let what = match (ip[9], ipv4_body(ip)) {
            (1, Some((_, b))) if !b.is_empty() => {
                format!("icmp type {} code {}", b[0], b.get(1).copied().unwrap_or(0))
            }
            (6, Some((_, b))) if b.len() >= 14 => format!(
                "tcp {}->{} flags {:#04x}",
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
                b[13]
            ),
            (17, Some((_, b))) if b.len() >= 4 => format!(
                "udp {}->{}",
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]])
            ),
            (p, _) => format!("proto {p}"),
        };
        format!("{:7.3}s {dir} {src} -> {dst} {what}", self.at.as_secs_f64())
    }
}

/// An AF_PACKET capture of every frame (both directions) of one interface in a namespace,
/// on its own thread until stopped.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Frame>>>,
}

impl Capture {
    pub fn start(ns: &str, dev: &str) -> io::Result<Capture> {
        let dev = dev.to_string();
        let fd = sys::in_ns(ns, move || {
            let idx = sys::ifindex(&dev)?;
            // SAFETY: plain socket(2).
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    i32::from((libc::ETH_P_ALL as u16).to_be()),
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: zeroed sockaddr_ll is valid; the fields are set below.
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
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 20_000,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv)?;
            Ok(fd)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                // SAFETY: zeroed sockaddr_ll is valid output storage.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // SAFETY: buf and from are valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n > 0 && frames.len() < 200_000 {
                    frames.push(Frame {
                        at: t0.elapsed(),
                        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
                        data: buf[..(n as usize).min(128)].to_vec(),
                    });
                }
            }
            frames
        });
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and returns every frame seen (the first 128 bytes of each).
    pub fn finish(mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recovery

/// Waits until fresh bonded connections from `client` work: a TCP connection and a UDP
/// datagram that the server sees coming from the core ([`CORE_SEEN`]). The time each took from
/// `t0`; the error says what was seen last.
pub fn wait_bonded_data(
    client: &str,
    server: SocketAddr,
    t0: Instant,
    timeout: Duration,
) -> Result<(Duration, Duration), String> {
    let (mut tcp, mut udp) = (None, None);
    let (mut last_tcp, mut last_udp) = (String::new(), String::new());
    let bonded = |a: &io::Result<SocketAddr>| {
        a.as_ref()
            .is_ok_and(|a| a.ip() == std::net::IpAddr::V4(CORE_SEEN))
    };
    loop {
        if tcp.is_none() {
            let a = seen_by_server(client, server, Duration::from_millis(300));
            if bonded(&a) {
                tcp = Some(t0.elapsed());
            }
            last_tcp = format!("{a:?}");
        }
        if udp.is_none() {
            let a = udp_seen(client, server, Duration::from_millis(300));
            if bonded(&a) {
                udp = Some(t0.elapsed());
            }
            last_udp = format!("{a:?}");
        }
        if let (Some(t), Some(u)) = (tcp, udp) {
            return Ok((t, u));
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "no bonded data {timeout:?} after: TCP {tcp:?} (last: {last_tcp}), \
                 UDP {udp:?} (last: {last_udp})"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The DNS server of the lab (silence, SERVFAIL or addresses for one name).
#[allow(unused_imports)]
pub use braid::lab::dns::{Dns, DnsMode};
