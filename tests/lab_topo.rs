//! The lab topology: built complete, reachable through every edge, torn down completely, and
//! nothing left behind when a run is interrupted (SIGINT) or killed (then `braid lab clean`).
//! Needs root and iproute2; a SKIP line otherwise (tests/support).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use braid::lab::{sys, topo, EdgeSpec, Mode, TopoSpec, Topology};
use support::{link, needs_lab, tag};

fn leftovers(prefix: &str) -> Vec<String> {
    sys::netns_with_prefix(prefix)
}

/// TCP echo through the topology from `client_ns` to the server; returns the round trip.
fn echo(client_ns: &str, server: &TcpListener) -> Duration {
    let addr = SocketAddr::from((topo::SERVER_ADDR, server.local_addr().unwrap().port()));
    let t = Instant::now();
    let mut c = sys::in_ns(client_ns, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
    })
    .unwrap();
    let (mut s, _) = server.accept().unwrap();
    c.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    s.write_all(&b).unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    t.elapsed()
}

#[test]
fn topology_up_reachable_and_torn_down() {
    let Some(_lab) = needs_lab() else { return };
    let tg = tag('a');
    let p = |n: &str| format!("bl{tg}-{n}");
    let spec = TopoSpec {
        tag: tg.clone(),
        seed: 1,
        edges: vec![
            EdgeSpec {
                links: vec![link("wan0", 20, 20), link("wan1", 10, 40)],
                clients: 2,
                best: 1,
            },
            // A second edge with the same LAN subnet.
            EdgeSpec {
                links: vec![link("wan0", 20, 10)],
                clients: 1,
                best: 0,
            },
        ],
    };
    let mut t = Topology::up(spec).expect("topology up");
    let expect = [
        "core", "srv", "edge", "cli0", "cli1", "l0", "l1", "edge1", "e1cli0", "e1l0",
    ];
    let mut have = leftovers(&p(""));
    have.sort();
    let mut want: Vec<String> = expect.iter().map(|s| p(s)).collect();
    want.sort();
    assert_eq!(have, want);
    assert_eq!(t.links.len(), 2);
    assert_eq!(t.links[0].len(), 2);

    let server = sys::in_ns(&t.server, || TcpListener::bind("0.0.0.0:7000")).unwrap();
    // The first edge routes over its best link (wan1, 40 ms each way): RTT >= 80 ms.
    for c in [p("cli0"), p("cli1")] {
        let rtt = echo(&c, &server);
        assert!(rtt >= Duration::from_millis(80), "{c}: {rtt:?}");
    }
    // The second edge, same LAN addresses, its own 10 ms link.
    let rtt = echo(&p("e1cli0"), &server);
    assert!(rtt >= Duration::from_millis(20), "{rtt:?}");
    // Only the best link carried the first edge's traffic.
    let l = &t.links[0];
    assert!(
        l[1].ctl
            .up
            .out_pkts
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    drop(server);

    // A spawned process is stopped at teardown.
    let pid = t.spawn(&p("edge"), "sleeper", &["sleep", "600"]).unwrap();
    let logs = t.log_dir.clone();
    assert!(logs.join("sleeper.log").exists());
    t.teardown();
    assert!(
        leftovers(&p("")).is_empty(),
        "left: {:?}",
        leftovers(&p(""))
    );
    assert!(!alive(pid as i32), "sleeper {pid} still runs");
    assert!(!logs.exists(), "{} left behind", logs.display());
}

/// Whether `pid` still runs (a zombie waiting for a reaper does not), after up to 2 s.
fn alive(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if matches!(state, None | Some("Z") | Some("X")) {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_ns(name: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if leftovers(name).iter().any(|n| n == name) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn lab_run(tag: &str, mode: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "lab",
            "run",
            "hetero",
            "--mode",
            mode,
            "--workload",
            "bulk8-down",
        ])
        .args(["--duration", "60s", "--tag", tag, "--out"])
        .arg(std::env::temp_dir().join("braid-lab-test-out"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn braid lab run")
}

fn mode_for_interrupt() -> &'static str {
    // With mptcp, the run also has ss-redir/ss-server processes to stop.
    if Mode::Mptcp.available().is_ok() {
        "mptcp"
    } else {
        eprintln!("mptcp mode unavailable here; interrupting a direct run");
        "direct"
    }
}

#[test]
fn sigint_leaves_nothing_behind() {
    let Some(_lab) = needs_lab() else { return };
    let tg = tag('i');
    let pre = format!("bl{tg}-");
    let mut child = lab_run(&tg, mode_for_interrupt());
    assert!(
        wait_for_ns(&format!("{pre}srv"), 30),
        "the run never built its topology"
    );
    // Let traffic flow, then Ctrl-C.
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<i32> = leftovers(&pre)
        .iter()
        .flat_map(|n| sys::netns_pids(n))
        .collect();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "braid lab run did not exit after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "stderr: {err}");
    assert!(leftovers(&pre).is_empty(), "left: {:?}", leftovers(&pre));
    let logs = topo::log_dir(&tg);
    assert!(!logs.exists(), "{} left behind", logs.display());
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join("braid-lab-test-out"));
    for p in pids {
        assert!(!alive(p), "process {p} left running");
    }
}

#[test]
fn killed_run_is_cleaned_by_lab_clean() {
    let Some(_lab) = needs_lab() else { return };
    let tg = tag('k');
    let pre = format!("bl{tg}-");
    let mut child = lab_run(&tg, mode_for_interrupt());
    assert!(
        wait_for_ns(&format!("{pre}srv"), 30),
        "the run never built its topology"
    );
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<i32> = leftovers(&pre)
        .iter()
        .flat_map(|n| sys::netns_pids(n))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(&pre).is_empty(),
        "a killed run cannot clean up after itself"
    );
    let logs = topo::log_dir(&tg);
    assert!(logs.exists(), "a killed run leaves its logs");
    let out = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(["lab", "clean", "--tag", &tg])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{pre}edge")));
    assert!(leftovers(&pre).is_empty(), "left: {:?}", leftovers(&pre));
    assert!(!logs.exists(), "lab clean left {}", logs.display());
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join("braid-lab-test-out"));
    for p in pids {
        assert!(!alive(p), "process {p} left running");
    }
}
