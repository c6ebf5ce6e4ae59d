//! Fail-open of flows that were already running in the tunnel, end to end with the built
//! `braid` binary in the lab's namespaces. A UDP stream (one socket, a datagram every 50 ms,
//! answered by the server with the address it sees) keeps its router conntrack entry alive; the
//! entry was made while the flow went into the hub, without NAT, so once the hub stops carrying
//! it the stream's datagrams leave the WAN unmasqueraded and get no answer, for as long as the
//! stream runs. The edge deletes those entries (ctnetlink) when it withdraws its steering and
//! when it starts, and a reload drops the entries of flows it no longer steers. Measured:
//! - a reload that no longer steers the client's LAN: the running stream is answered over the
//!   plain WAN (the server sees the edge's WAN address);
//! - the core killed: the edge withdraws steering after its 3 s fail-open delay, and the running
//!   stream is answered again over the plain WAN; the
//!   core started again: the same edge handshakes anew and a new stream runs in the tunnel;
//! - core and edge killed together (-9, no clean-up): the stream gets no answer; a restarted edge
//!   that cannot reach the core still frees it at start, and it is answered over the WAN.
//!
//! Needs root and iproute2; a SKIP line otherwise.
//! Namespaces: `blc<pid>-*` (tag 'c'), apart from the lab's default `bl-*` and other tests' tags.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use braid::lab::{sys, topo};
use support::*;

const PORT: u16 = 7041;

/// A UDP stream from one socket: a datagram every 50 ms; every answer with the address the
/// server saw and when it came.
struct Stream {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<(Instant, IpAddr)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Stream {
    fn start(ns: &str, to: SocketAddr) -> Stream {
        let s = sys::in_ns(ns, || UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))).unwrap();
        s.connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (st, an) = (stop.clone(), answers.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut next = Instant::now();
            let mut i = 0u64;
            // Bounded: at most 20 datagrams a second, for at most 2 minutes.
            while !st.load(Ordering::Relaxed) && i < 2400 {
                if Instant::now() >= next {
                    let _ = s.send(format!("stream {i}").as_bytes());
                    i += 1;
                    next += Duration::from_millis(50);
                }
                if let Ok(n) = s.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if let Some(a) = text
                        .split_once('|')
                        .and_then(|(a, _)| a.parse::<SocketAddr>().ok())
                    {
                        an.lock().unwrap().push((Instant::now(), a.ip()));
                    }
                }
            }
        });
        Stream {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    /// Answers after `t` seen as coming from `who`.
    fn answered_after(&self, t: Instant, who: impl Fn(IpAddr) -> bool) -> usize {
        self.answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, ip)| *at > t && who(*ip))
            .count()
    }

    /// Waits up to `timeout` for an answer after `t` from `who`; when it came.
    fn wait_answer(
        &self,
        t: Instant,
        who: impl Fn(IpAddr) -> bool,
        timeout: Duration,
    ) -> Option<Duration> {
        poll_until(timeout, Duration::from_millis(20), || {
            self.answers
                .lock()
                .unwrap()
                .iter()
                .find(|(at, ip)| *at > t && who(*ip))
                .map(|(at, _)| at.duration_since(t))
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn via_core(ip: IpAddr) -> bool {
    ip == IpAddr::V4(CORE_SEEN)
}

fn via_wan(ip: IpAddr) -> bool {
    (0..2).any(|i| ip == IpAddr::V4(topo::edge_wan_addr(0, i)))
}

#[test]
fn running_udp_streams_fail_open_when_steering_goes_and_after_a_crash() {
    let Some(_lab) = needs_lab() else { return };
    let mut lab = Lab::bonded(
        &tag('c'),
        vec![edge_spec(vec![link("wan0", 10, 10), link("wan1", 10, 10)])],
    );
    let client = lab.client(0);
    let server = Server::start(&lab.t.server, PORT);

    // 0. A reload stops steering the client's LAN: its running stream moves to the WAN.
    let s0 = Stream::start(&client, server.addr());
    let t = Instant::now();
    assert!(
        s0.wait_answer(t, via_core, Duration::from_secs(5))
            .is_some(),
        "stream 0 not answered through the tunnel"
    );
    let uci = lab.edge_conf(0).uci();
    let narrowed = uci.replace(
        &format!("\tlist lan '{}'\n", topo::LAN_NET),
        "\tlist lan '10.99.0.0/24'\n",
    );
    assert_ne!(uci, narrowed);
    std::fs::write(lab.edge_config(0), &narrowed).unwrap();
    lab.edge(0)
        .reload()
        .unwrap_or_else(|e| panic!("reload: {e}"));
    let t_reload = Instant::now();
    let back0 = s0.wait_answer(t_reload, via_wan, Duration::from_secs(10));
    println!("running UDP stream (20 datagrams/s) when the tunnel goes:");
    println!(
        "  reload no longer steering its LAN: stream 0 answered over the WAN {} after the reload",
        back0.map_or("never (10 s)".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    assert!(
        back0.is_some(),
        "stream 0 never came back over the WAN:\n{}",
        lab.edge(0).log_text()
    );
    drop(s0);
    std::fs::write(lab.edge_config(0), &uci).unwrap();
    lab.edge(0)
        .reload()
        .unwrap_or_else(|e| panic!("reload: {e}"));

    // 1. The core dies: the edge withdraws steering; the running stream moves to the WAN.
    let s1 = Stream::start(&client, server.addr());
    let t = Instant::now();
    let tunnel = s1.wait_answer(t, via_core, Duration::from_secs(5));
    assert!(tunnel.is_some(), "stream 1 not answered through the tunnel");
    std::thread::sleep(Duration::from_millis(500));
    lab.core.as_mut().unwrap().kill9();
    let t_kill = Instant::now();
    let back1 = s1.wait_answer(t_kill, via_wan, Duration::from_secs(15));
    let log = lab.edge(0).log_text();
    println!(
        "  core killed: stream 1 answered over the WAN {} after the kill",
        back1.map_or("never (15 s)".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    let flushed: Vec<&str> = log.lines().filter(|l| l.contains("conntrack")).collect();
    println!("  edge log: {flushed:?}");
    assert!(
        back1.is_some(),
        "stream 1 never came back over the WAN:\n{log}"
    );
    drop(s1);

    // 2. Core and edge killed together: the edge cannot clean up. A new stream first runs
    //    through the tunnel again.
    //    The running edge handshakes again with the restarted core by itself (it hears
    //    nothing for 5 s) and steers again once its links are up.
    lab.start_core();
    let t = Instant::now();
    let s2 = Stream::start(&client, server.addr());
    let rebonded = s2.wait_answer(t, via_core, Duration::from_secs(20));
    println!(
        "  core restarted: a new stream answered through the tunnel {} after the core started",
        rebonded.map_or("never (20 s)".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    assert!(
        rebonded.is_some(),
        "stream 2 not answered through the tunnel after the core restarted:\n{}",
        lab.edge(0).log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    lab.core.as_mut().unwrap().kill9();
    lab.edge_mut(0).kill9();
    let t_crash = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let stranded = s2.answered_after(t_crash + Duration::from_millis(300), |_| true);
    lab.start_edge(0);
    let t_restart = Instant::now();
    let back2 = s2.wait_answer(t_restart, via_wan, Duration::from_secs(10));
    println!(
        "  core and edge killed: stream 2 answered {stranded} times in the 3 s before the edge \
         restarted; answered over the WAN {} after the restart (core still down)",
        back2.map_or("never (10 s)".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        ))
    );
    let log = lab.edge(0).log_text();
    println!(
        "  edge log: {:?}",
        log.lines()
            .filter(|l| l.contains("conntrack"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        stranded, 0,
        "the stream worked without the flush: this test shows nothing"
    );
    assert!(
        back2.is_some(),
        "stream 2 never came back over the WAN after the restart:\n{log}"
    );
}
