//! A DNS server for one name, answering as a test or the fault bench says: silence, SERVFAIL,
//! or A records. A router boots before its network: `core_host` does not resolve at first.
//! Runs on a thread of this process, its socket on 127.0.0.1:53 inside a namespace; a daemon
//! whose /etc/resolv.conf says `nameserver 127.0.0.1` (bound over it in a mount namespace of its
//! own, see [`super::daemon::Daemon::start`]) asks it.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sys;

/// What [`Dns`] answers for its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsMode {
    /// SERVFAIL (what a resolver without upstream says: "Temporary failure in name resolution").
    Fail,
    /// Nothing at all (the query times out, the caller's getaddrinfo blocks for seconds).
    Silent,
    /// These A records (no AAAA).
    Answer(Vec<Ipv4Addr>),
}

/// A DNS server for one name on 127.0.0.1:53 in a namespace, answering as the test says
/// ([`DnsMode`]); other names get NXDOMAIN. A daemon started with [`super::daemon::Daemon`] and a
/// resolv.conf of `nameserver 127.0.0.1` bound over /etc/resolv.conf asks it.
pub struct Dns {
    mode: Arc<Mutex<DnsMode>>,
    /// Queries received, and when a first answer with an address went out.
    pub queries: Arc<AtomicU64>,
    pub first_answer: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    /// [`Dns::try_start`] for tests: panics when the port cannot be bound.
    pub fn start(ns: &str, name: &str, mode: DnsMode) -> Dns {
        Dns::try_start(ns, name, mode).expect("dns bind")
    }

    /// Serves `name` on 127.0.0.1:53 in namespace `ns` until dropped.
    pub(crate) fn try_start(ns: &str, name: &str, mode: DnsMode) -> std::io::Result<Dns> {
        let sock = sys::in_ns(ns, || UdpSocket::bind("127.0.0.1:53"))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let mode = Arc::new(Mutex::new(mode));
        let queries = Arc::new(AtomicU64::new(0));
        let first_answer = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, q, fa, st) = (
            mode.clone(),
            queries.clone(),
            first_answer.clone(),
            stop.clone(),
        );
        let name = name.to_ascii_lowercase();
        let thread = std::thread::spawn(move || {
            sys::serve_udp::<512>(&sock, &st, |query, from| {
                q.fetch_add(1, Ordering::Relaxed);
                let mode = m.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some((reply, answered)) = dns_reply(query, &name, &mode) {
                    let _ = sock.send_to(&reply, from);
                    if answered {
                        fa.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert_with(Instant::now);
                    }
                }
            })
        });
        Ok(Dns {
            mode,
            queries,
            first_answer,
            stop,
            thread: Some(thread),
        })
    }

    /// When the first answer with an address went out, if one did.
    pub(crate) fn answered_at(&self) -> Option<Instant> {
        *self.first_answer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, mode: DnsMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query (None: say nothing), and whether it carries an address.
fn dns_reply(q: &[u8], name: &str, mode: &DnsMode) -> Option<(Vec<u8>, bool)> {
    if q.len() < 12 || *mode == DnsMode::Silent {
        return None;
    }
    // The question: labels, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < q.len() && q[i] != 0 {
        let l = usize::from(q[i]);
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + l)?).to_ascii_lowercase());
        i += 1 + l;
    }
    let qend = i + 5;
    if qend > q.len() {
        return None;
    }
    let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
    let ours = labels.join(".") == name;
    let (rcode, addrs): (u16, Vec<Ipv4Addr>) = match mode {
        _ if !ours => (3, vec![]),
        DnsMode::Fail => (2, vec![]),
        DnsMode::Answer(a) if qtype == 1 => (0, a.clone()),
        _ => (0, vec![]),
    };
    let mut r = Vec::with_capacity(qend + 16 * addrs.len());
    r.extend_from_slice(&q[0..2]);
    // QR, the query's RD, RA, rcode.
    let flags = 0x8000 | (u16::from(q[2] & 1) << 8) | 0x0080 | rcode;
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..qend]);
    for a in &addrs {
        // Name: a pointer to the question's; type A, class IN, TTL 1 s, 4 bytes.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        r.extend_from_slice(&a.octets());
    }
    Some((r, !addrs.is_empty()))
}
