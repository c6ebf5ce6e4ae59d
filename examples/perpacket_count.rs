//! Per-packet work for an instruction counter: does one thing N times and exits, so that
//! (instructions of a run with N) - (instructions of the same run with 0), divided by N, is the
//! cost of one packet, start-up and set-up excluded. `cross/count.sh` runs it under qemu-user with
//! an instruction-counting plugin, on the router's build (mips_24kc) and on x86_64.
//!
//! `perpacket_count WHAT SIZE N`:
//! - `seal`: seals N packets of SIZE bytes with ChaCha20-Poly1305 as `seal::Channel::seal` does
//!   (`braid_aead::Aead`, key set once, a 10-byte header as associated data, counter nonces).
//! - `sealopen`: seals each packet and opens it again (`open` = `sealopen` - `seal`).
//! - `pair`: the protocol core both ways in memory: an edge `Session` sends N inner IPv4 TCP
//!   packets of SIZE bytes over one link to a core `Endpoint` (both with real keys after a real
//!   handshake), which delivers them and acknowledges; the edge handles the acknowledgements.
//!   Everything but the system calls of a daemon: packing, scheduling, sealing, opening,
//!   reordering, acknowledging, on both sides. Time advances 120 us per packet (about 100
//!   Mbit/s of 1400-byte packets). Exits non-zero unless all N packets were delivered intact.
//!
//! Prints one line: what was done (packets, bytes, datagrams each way), for the counter's log.

use braid::proto::endpoint::{Endpoint, Handled, Peer};
use braid::proto::link::LinkConfig;
use braid::proto::packet::checksum;
use braid::proto::seal::{Channel, Keypair};
use braid::proto::session::{PacketMeta, Session, SessionConfig};
use braid::proto::Instant;
use braid_aead::Aead;
use std::hint::black_box;
use std::process::ExitCode;

/// The data header `Channel::seal` authenticates (version, kind, receiver index, counter).
const HEADER: usize = 10;

fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// `braid_aead` seals as the `chacha20poly1305` crate does, in this very build (the router
/// profile compiles it apart, at another opt-level).
fn same_as_crate(key: &[u8; 32], header: &[u8], size: usize) -> bool {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    let mut a = vec![0x5au8; size];
    let mut b = a.clone();
    let tag = Aead::new(key).seal(&nonce(3), header, &mut a);
    let want = chacha20poly1305::ChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached((&nonce(3)).into(), header, &mut b)
        .expect("fits");
    a == b && tag[..] == want[..]
}

fn aead(open: bool, size: usize, n: u64) -> String {
    let key = Aead::new(&[7u8; 32]);
    let header = [9u8; HEADER];
    assert!(
        same_as_crate(&[7u8; 32], &header, size),
        "braid_aead and chacha20poly1305 disagree"
    );
    let mut buf = vec![0x5au8; size];
    let mut tags = 0u64;
    for c in 0..n {
        let tag = key.seal(&nonce(c), &header, black_box(&mut buf[..]));
        if open {
            key.open(&nonce(c), &header, &mut buf[..], &tag)
                .expect("own seal opens");
        }
        tags = tags.wrapping_add(u64::from(tag[0]));
    }
    if open && buf.iter().any(|&b| b != 0x5a) {
        panic!("open did not restore the plaintext");
    }
    format!(
        "{} {n} packets of {size} bytes (tag sum {tags})",
        if open { "sealed and opened" } else { "sealed" }
    )
}

/// An IPv4 TCP segment of `size` bytes (timestamp option, as bulk TCP sends), sequence `seq`.
fn tcp_packet(size: usize, seq: u32) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&[10, 0, 0, 2, 198, 51, 100, 7]);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&443u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0x80, 0x10, 0x01, 0xf5, 0, 0, 0, 0]);
    p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 1, 2, 0, 0, 3, 4]);
    p.resize(size.max(p.len()), 0x5a);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    let sum = checksum(&p[..20], 0);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

struct Pair {
    edge: Session,
    core: Endpoint<u8>,
    /// The edge's session at the core, once the handshake made it.
    id: Option<u32>,
    now: Instant,
    buf: Vec<u8>,
    to_core: u64,
    to_edge: u64,
    delivered: u64,
    bad: u64,
    /// The next sequence number a delivered packet must carry.
    want_seq: u32,
    size: usize,
}

impl Pair {
    fn new(size: usize) -> Pair {
        let edge_key = Keypair::from_private([1; 32]);
        let core_key = Keypair::from_private([2; 32]);
        let now = Instant(1_000_000);
        let config = SessionConfig::default();
        let mut edge = Session::new(
            Channel::initiator(&edge_key, core_key.public, now),
            config.clone(),
            now,
        );
        edge.add_link(0, LinkConfig::default(), now);
        let core = Endpoint::new(
            core_key,
            vec![Peer {
                name: "edge".into(),
                public: edge_key.public,
            }],
            config,
        );
        Pair {
            edge,
            core,
            id: None,
            now,
            buf: vec![0u8; 2048],
            to_core: 0,
            to_edge: 0,
            delivered: 0,
            bad: 0,
            want_seq: 0,
            size,
        }
    }

    /// Moves every datagram either side has to send, and every packet the core delivers.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            if self.edge.poll_timeout().is_some_and(|t| t <= self.now) {
                self.edge.handle_timeout(self.now);
            }
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_timeout(self.now);
            }
            while let Some(t) = self.edge.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                self.to_core += 1;
                match self
                    .core
                    .handle_datagram(self.now, t.link, &mut self.buf[..t.len])
                {
                    Ok(Handled::Handshake { session, .. }) => self.id = Some(session),
                    Ok(Handled::Data { .. }) => {}
                    Err(_) => self.bad += 1,
                }
            }
            while let Some((id, d)) = self.core.poll_deliver(self.now) {
                moved = true;
                let seq = u32::from_be_bytes([d.data[24], d.data[25], d.data[26], d.data[27]]);
                if d.data.len() != self.size || seq != self.want_seq {
                    self.bad += 1;
                }
                self.want_seq = seq.wrapping_add(1);
                self.delivered += 1;
                // The buffer back, as the core daemon gives it (since session 17 here: before,
                // an allocation per packet that the daemons do not make was counted).
                if let Some(s) = self.core.session_mut(id) {
                    s.recycle(d.data);
                }
            }
            while let Some((link, len)) = self.core.poll_transmit(self.now, &mut self.buf) {
                moved = true;
                self.to_edge += 1;
                if self
                    .edge
                    .handle_datagram(self.now, Some(link), &mut self.buf[..len])
                    .is_err()
                {
                    self.bad += 1;
                }
            }
            while self.edge.poll_deliver(self.now).is_some() {
                self.bad += 1;
            }
            while self.edge.poll_event().is_some() {}
            if let Some(s) = self.id.and_then(|id| self.core.session_mut(id)) {
                while s.poll_event().is_some() {}
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, us: u64) {
        self.now = Instant(self.now.0 + us);
    }
}

fn pair(size: usize, n: u64) -> Result<String, String> {
    let mut p = Pair::new(size);
    // The handshake (in the baseline too).
    for _ in 0..100 {
        p.exchange();
        if p.edge.is_established() {
            break;
        }
        p.advance(1_000);
    }
    if !p.edge.is_established() {
        return Err("the handshake did not complete".into());
    }
    let (to_core, to_edge) = (p.to_core, p.to_edge);
    let meta = PacketMeta {
        user: 1,
        flow: 1,
        class: 0,
    };
    let mut sent = 0u64;
    let mut refused = 0u64;
    // One buffer, its sequence number rewritten per packet (the IPv4 checksum does not cover
    // it): building each packet anew (a Vec filled byte by byte) cost 6,800 instructions per
    // packet on mips_24kc, counted as the protocol's until session 17.
    let mut packet = tcp_packet(size, 0);
    while sent < n {
        packet[24..28].copy_from_slice(&(sent as u32).to_be_bytes());
        if p.edge.send(p.now, &packet, meta).is_ok() {
            sent += 1;
        } else {
            refused += 1;
            if refused > n + 1000 {
                return Err(format!("the session refused {refused} packets"));
            }
        }
        p.exchange();
        p.advance(120);
    }
    for _ in 0..1000 {
        if p.delivered >= n {
            break;
        }
        p.advance(1_000);
        p.exchange();
    }
    if p.delivered != n || p.bad != 0 {
        return Err(format!(
            "delivered {} of {n} packets, {} bad datagrams or packets",
            p.delivered, p.bad
        ));
    }
    Ok(format!(
        "pair: {n} packets of {size} bytes delivered; datagrams edge->core {}, core->edge {} \
         after the handshake ({refused} sends refused)",
        p.to_core - to_core,
        p.to_edge - to_edge
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [what, size, n] => size
            .parse::<usize>()
            .ok()
            .zip(n.parse::<u64>().ok())
            .map(|(s, n)| (what.as_str(), s, n)),
        _ => None,
    };
    let result = match parsed {
        Some(("seal", size, n)) => Ok(aead(false, size, n)),
        Some(("sealopen", size, n)) => Ok(aead(true, size, n)),
        Some(("pair", size, n)) if (64..=1400).contains(&size) => pair(size, n),
        _ => Err("usage: perpacket_count seal|sealopen|pair SIZE N (pair: SIZE 64-1400)".into()),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("perpacket_count: {e}");
            ExitCode::FAILURE
        }
    }
}
