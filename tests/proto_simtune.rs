//! Runs the simulator's scenario files against the real `Session` pair, through a small adapter
//! of this test's own (the simulator has its own in `src/sim/session.rs`). Used to tune the
//! protocol core; prints the simulator's table. `cargo test --test proto_simtune -- --nocapture`
//! `SIMTUNE=hetero,lte` picks scenarios; `SIMTUNE_DURATION=10` shortens the runs (seconds).

use std::collections::VecDeque;
use std::path::Path;

use braid::proto::link::LinkConfig;
use braid::proto::sched::{ClassConfig, Mode};
use braid::proto::seal::{self, Acceptor, Channel, Keypair};
use braid::proto::session::{PacketMeta, Session, SessionConfig};
use braid::proto::wire::LinkRole;
use braid::proto::{Instant, LinkId};
use braid::sim::engine;
use braid::sim::scenario::{self, Scenario};
use braid::sim::tunnel::{Meta, Tunnel};

fn config(sc: &Scenario) -> SessionConfig {
    SessionConfig {
        classes: sc
            .classes
            .iter()
            .map(|c| ClassConfig {
                id: c.id,
                mode: match c.mode {
                    scenario::Mode::Aggregate => Mode::Aggregate,
                    scenario::Mode::Weighted => Mode::Weighted,
                    scenario::Mode::Redundant => Mode::Redundant,
                    scenario::Mode::Backup => Mode::Backup,
                    scenario::Mode::Pinned(l) => Mode::Pinned(l),
                },
                priority: c.priority,
                weight: c.weight,
            })
            .collect(),
        max_packet: engine::MAX_DATAGRAM - seal::OVERHEAD - 10,
        ..Default::default()
    }
}

struct End {
    session: Option<Session>,
    acceptor: Option<Acceptor>,
    cfg: SessionConfig,
    out: VecDeque<(LinkId, Vec<u8>)>,
    errors: u64,
    trace_at: u64,
}

impl Tunnel for End {
    fn can_send(&self, meta: &Meta) -> bool {
        let m = PacketMeta {
            user: meta.user,
            flow: meta.flow,
            class: meta.class,
        };
        self.session
            .as_ref()
            .is_some_and(|s| s.is_established() && s.can_send(&m))
    }

    fn send(&mut self, now: Instant, packet: &[u8], meta: &Meta) -> bool {
        let m = PacketMeta {
            user: meta.user,
            flow: meta.flow,
            class: meta.class,
        };
        match self.session.as_mut() {
            Some(s) => s.send(now, packet, m).is_ok(),
            None => false,
        }
    }

    fn handle_datagram(&mut self, now: Instant, link: LinkId, datagram: &mut [u8]) {
        if let Some(acc) = self.acceptor.as_mut() {
            if seal::is_init(datagram) {
                let mut out = [0u8; 256];
                let same = self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.channel().is_established());
                let admit = |_: &[u8; 32], _| {
                    if same {
                        seal::Admission::SameSession
                    } else {
                        seal::Admission::NewSession
                    }
                };
                match acc.accept(now, datagram, admit, 1, &mut out) {
                    Ok(a) => {
                        self.out.push_back((link, out[..a.response_len].to_vec()));
                        match self.session.as_mut() {
                            Some(s) => s.channel_mut().rekeyed(a),
                            None => {
                                let ch = Channel::responder(a, now);
                                self.session = Some(Session::new(ch, self.cfg.clone(), now));
                            }
                        }
                    }
                    Err(_) => self.errors += 1,
                }
                return;
            }
            let Some(s) = self.session.as_mut() else {
                return;
            };
            match s.handle_datagram(now, None, datagram) {
                Ok(Some(l)) if l == link => {}
                Ok(None) => {}
                _ => self.errors += 1,
            }
            return;
        }
        let s = self.session.as_mut().expect("edge has its session");
        if s.handle_datagram(now, Some(link), datagram).is_err() {
            self.errors += 1;
        }
    }

    fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(LinkId, usize)> {
        if let Some((l, d)) = self.out.pop_front() {
            out[..d.len()].copy_from_slice(&d);
            return Some((l, d.len()));
        }
        let t = self.session.as_mut()?.poll_transmit(now, out)?;
        Some((t.link, t.len))
    }

    fn poll_deliver(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let Some(s) = self.session.as_mut() else {
            return false;
        };
        match s.poll_deliver(now) {
            Some(d) => {
                let old = std::mem::replace(out, d.data);
                s.recycle(old);
                true
            }
            None => false,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(Instant::ZERO);
        }
        self.session.as_ref()?.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            if self.acceptor.is_none() {
                if let Ok(until) = std::env::var("SIMTUNE_TRACE") {
                    let until: u64 = until.parse().unwrap();
                    if now.0 < until * 1000 && now.0 >= self.trace_at {
                        for l in s.stats().links {
                            println!(
                                "t={:.3} link {} {:?} srtt {:.1} min {:.1} bw {:.2} pace {:.2} cwnd {} infl {} q {} acked {}",
                                now.0 as f64 / 1e6,
                                l.id,
                                l.state,
                                l.srtt.as_secs_f64() * 1e3,
                                l.min_rtt.as_secs_f64() * 1e3,
                                l.delivery_rate_bps as f64 / 1e6,
                                l.pacing_rate_bps as f64 / 1e6,
                                l.cwnd_bytes,
                                l.inflight_bytes,
                                l.queued_bytes,
                                l.bytes_acked
                            );
                        }
                        self.trace_at = now.0 + 50_000;
                    }
                }
            }
            s.handle_timeout(now);
        }
    }

    fn errors(&self) -> u64 {
        self.errors
    }

    fn stats(&self) -> serde_json::Value {
        match self.session.as_ref() {
            Some(s) => serde_json::Value::String(format!("{:?}", s.stats())),
            None => serde_json::Value::Null,
        }
    }
}

fn pair(sc: &Scenario) -> (End, End) {
    let ek = Keypair::from_private([7; 32]);
    let ck = Keypair::from_private([9; 32]);
    let cfg = config(sc);
    let mut edge = Session::new(
        Channel::initiator(&ek, ck.public, Instant(0)),
        cfg.clone(),
        Instant(0),
    );
    for l in &sc.links {
        let role = match l.role {
            scenario::Role::Primary => LinkRole::Primary,
            scenario::Role::Secondary => LinkRole::Secondary,
            scenario::Role::Backup => LinkRole::Backup,
            scenario::Role::Never => LinkRole::Never,
        };
        edge.add_link(
            l.id,
            LinkConfig {
                role,
                weight: l.weight,
                rate_cap_bps: l.rate_cap_bps,
            },
            Instant(0),
        );
    }
    let e = End {
        session: Some(edge),
        acceptor: None,
        cfg: cfg.clone(),
        out: VecDeque::new(),
        errors: 0,
        trace_at: 0,
    };
    let c = End {
        session: None,
        acceptor: Some(Acceptor::new(ck)),
        cfg,
        out: VecDeque::new(),
        errors: 0,
        trace_at: 0,
    };
    (e, c)
}

#[test]
#[ignore = "tuning aid, prints figures: SIMTUNE=hetero,lte cargo test --test proto_simtune -- --ignored --nocapture"]
fn simtune() {
    let which = std::env::var("SIMTUNE").unwrap_or_else(|_| "hetero".into());
    for name in which.split(',') {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(format!("{name}.toml"));
        let mut sc = Scenario::load(&path).unwrap();
        if let Ok(d) = std::env::var("SIMTUNE_DURATION") {
            sc.set_duration(d.parse::<u64>().unwrap() * 1_000_000)
                .unwrap();
        }
        if let Ok(w) = std::env::var("SIMTUNE_WARMUP") {
            sc.warmup_us = w.parse::<u64>().unwrap() * 1_000_000;
        }
        let (e, c) = pair(&sc);
        let t0 = std::time::Instant::now();
        let rep = engine::run_with(&sc, Box::new(e), Box::new(c)).unwrap();
        let cpu = t0.elapsed();
        println!("{}", rep.table());
        println!("{name}: wall {:.2} s", cpu.as_secs_f64());
        if std::env::var("SIMTUNE_STATS").is_ok() {
            println!("{}", rep.endpoints[0]);
        }
    }
}
