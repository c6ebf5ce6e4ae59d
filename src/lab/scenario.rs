//! Lab scenario files (`scenarios/lab/*.conf`): links, their behaviour, and outage schedules.
//!
//! ```text
//! # comment
//! duration = 20s            # how long each workload runs
//! seed = 1                  # for loss, jitter and generated schedules
//! best = wan0               # link of the `direct` baseline (default: highest mean down rate)
//! edges = 1                 # edges, each with a copy of the links, all on one LAN subnet
//! clients = 1               # client namespaces per edge
//!
//! [link wan0]
//! rate = 20mbit             # or a trace: gen:lte-driving (generated, each direction its own;
//!                           # seed = the scenario's, modem = the link's position) or
//!                           # gen:hsr/up?seed=3&modem=1&seconds=60, or a recorded NAME (NAME.up /
//!                           # NAME.down, or NAME, in $BRAID_TRACES or --traces DIR, then beside
//!                           # this file): see crate::trace
//! trace_offset = 10s        # start the trace this far in
//! delay = 20ms              # one-way, each direction
//! jitter = 2ms              # +- around the delay, order kept unless `reorder = yes`
//! loss = 0.5%               # mean loss; loss_burst = 4 makes it bursty (Gilbert-Elliott)
//! queue = 100ms             # drop-tail limit: time at the mean rate, or bytes (`64kb`)
//! up.rate = 5mbit           # `up.` / `down.` prefix: one direction only
//! outage = 10s 3s blackhole # START DURATION blackhole|stall [every PERIOD]
//! handover = 10-30s 30-80ms stall        # random interval, random gap (seeded)
//! failed_handover = 60s 0.5-3s blackhole # one per PERIOD at a random time
//! [all]                     # outages for every link at once (a tunnel)
//! outage = 40s 5s blackhole
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::emu::{DirSpec, Loss, Outage, OutageKind, QueueLimit, Rate};
use super::link::LinkSpec;
use super::trace::Trace;
use super::Rng;
pub use crate::config::model::parse_rate;
use crate::trace as tr;

/// A parsed scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    /// The comment lines at the top of the file.
    pub description: String,
    pub duration_ms: u64,
    pub seed: u64,
    pub links: Vec<LinkSpec>,
    pub best: usize,
    /// Edges (each gets a copy of the links; all share the LAN subnet) [1].
    pub edges: usize,
    /// Clients per edge [1].
    pub clients: usize,
}

/// Find a scenario by path or by name in `scenarios/lab/`, as `braid sim` finds its own
/// ([`crate::sim::scenario::find_file`]).
pub fn find(name: &str) -> Result<PathBuf, String> {
    crate::sim::scenario::find_file(name, "scenarios/lab", "conf")
}

/// Names of the scenarios shipped in `scenarios/lab/`.
pub fn shipped() -> Vec<String> {
    crate::sim::scenario::shipped_in("scenarios/lab", "conf")
}

/// Load and parse a scenario file (recorded traces are read from `$BRAID_TRACES`, then beside
/// the file).
pub fn load(path: &Path) -> Result<Scenario, String> {
    load_with(path, tr::traces_from_env().as_deref())
}

/// [`load`] with recorded traces read from `traces` (then beside the file).
pub fn load_with(path: &Path, traces: Option<&Path>) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&name, &text, traces, path.parent()).map_err(|e| format!("{}:{e}", path.display()))
}

#[derive(Default)]
struct LinkDraft {
    name: String,
    /// Position in the file: a generated trace's default modem.
    index: u32,
    up: DirSpec,
    down: DirSpec,
    outages: Vec<Outage>,
    trace_offset_ms: u64,
}

/// Parse scenario text. Errors read `LINE: message`. Recorded traces are looked up in `traces`,
/// then in `beside` (the scenario's folder).
pub fn parse(
    name: &str,
    text: &str,
    traces: Option<&Path>,
    beside: Option<&Path>,
) -> Result<Scenario, String> {
    let mut duration_ms = 20_000;
    let mut seed = 1u64;
    let (mut edges, mut clients) = (1usize, 1usize);
    let mut best_name: Option<String> = None;
    let mut description = String::new();
    let mut links: Vec<LinkDraft> = Vec::new();
    let mut all: Vec<(usize, String, String)> = Vec::new();
    enum Sect {
        Top,
        Link,
        All,
    }
    let mut sect = Sect::Top;
    let mut seen_key = false;
    for (n, raw) in text.lines().enumerate() {
        let ln = n + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            if !seen_key {
                if let Some(c) = raw.trim().strip_prefix('#') {
                    description.push_str(c.trim());
                    description.push(' ');
                }
            }
            continue;
        }
        seen_key = true;
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let mut w = h.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("link"), Some(n), None) => {
                    if links.iter().any(|l| l.name == n) {
                        return Err(format!("{ln}: link '{n}' defined twice"));
                    }
                    links.push(LinkDraft {
                        name: n.to_string(),
                        index: links.len() as u32,
                        ..Default::default()
                    });
                    sect = Sect::Link;
                }
                (Some("all"), None, None) => sect = Sect::All,
                _ => return Err(format!("{ln}: expected [link NAME] or [all], got [{h}]")),
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("{ln}: expected KEY = VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        let e = |m: String| format!("{ln}: {k}: {m}");
        match sect {
            Sect::Top => match k {
                "duration" => duration_ms = parse_time_us(v).map_err(e)? / 1000,
                "seed" => seed = v.parse().map_err(|_| e("not a number".into()))?,
                "best" => best_name = Some(v.to_string()),
                "edges" => {
                    edges = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=4).contains(n))
                        .ok_or_else(|| e("1 to 4".into()))?
                }
                "clients" => {
                    clients = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=16).contains(n))
                        .ok_or_else(|| e("1 to 16".into()))?
                }
                "name" => {}
                _ => {
                    return Err(e(
                        "unknown key (duration, seed, best, edges, clients)".into()
                    ))
                }
            },
            Sect::All => all.push((ln, k.to_string(), v.to_string())),
            Sect::Link => {
                let l = links.last_mut().expect("in a link section");
                let rng_seed = seed.wrapping_mul(31).wrapping_add(links_len_hash(&l.name));
                let tcx = tr::Context {
                    traces: traces.map(Path::to_path_buf),
                    beside: beside.map(Path::to_path_buf),
                    seed,
                    modem: l.index,
                };
                link_key(l, k, v, &tcx, duration_ms, rng_seed).map_err(e)?;
            }
        }
    }
    if links.is_empty() {
        return Err("0: no [link NAME] section".into());
    }
    for (ln, k, v) in &all {
        for (i, l) in links.iter_mut().enumerate() {
            let s = seed.wrapping_mul(7919).wrapping_add(i as u64);
            match k.as_str() {
                "outage" | "handover" | "failed_handover" => {
                    link_key(l, k, v, &tr::Context::default(), duration_ms, s)
                        .map_err(|m| format!("{ln}: {k}: {m}"))?
                }
                _ => return Err(format!("{ln}: {k}: only outages go in [all]")),
            }
        }
    }
    // Trace offsets apply once every key of the link is read.
    for l in &mut links {
        for d in [&mut l.up, &mut l.down] {
            if let Rate::Trace { offset_ms, .. } = &mut d.rate {
                *offset_ms = l.trace_offset_ms;
            }
        }
        l.outages.sort_by_key(|o| o.start_ns);
    }
    let best = match best_name {
        Some(b) => links
            .iter()
            .position(|l| l.name == b)
            .ok_or(format!("0: best: no link '{b}'"))?,
        None => {
            let mut bi = 0;
            for (i, l) in links.iter().enumerate() {
                if l.down.rate.mean_bps().unwrap_or(u64::MAX)
                    > links[bi].down.rate.mean_bps().unwrap_or(u64::MAX)
                {
                    bi = i;
                }
            }
            bi
        }
    };
    Ok(Scenario {
        name: name.to_string(),
        description: description.trim().to_string(),
        duration_ms,
        seed,
        best,
        edges,
        clients,
        links: links
            .into_iter()
            .map(|l| LinkSpec {
                name: l.name,
                up: l.up,
                down: l.down,
                outages: l.outages,
            })
            .collect(),
    })
}

fn links_len_hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

fn link_key(
    l: &mut LinkDraft,
    k: &str,
    v: &str,
    tcx: &tr::Context,
    duration_ms: u64,
    seed: u64,
) -> Result<(), String> {
    let (dirs, key): (Vec<&str>, &str) = match k.split_once('.') {
        Some(("up", key)) => (vec!["up"], key),
        Some(("down", key)) => (vec!["down"], key),
        Some((d, _)) => return Err(format!("direction '{d}' (up or down)")),
        None => (vec!["up", "down"], k),
    };
    let mut rng = Rng::new(seed);
    match key {
        "outage" => {
            let w: Vec<&str> = v.split_whitespace().collect();
            let (start, dur, kind) = match w.as_slice() {
                [s, d, k] | [s, d, k, "every", _] => {
                    (parse_time_us(s)?, parse_time_us(d)?, parse_kind(k)?)
                }
                _ => return Err("START DURATION blackhole|stall [every PERIOD]".into()),
            };
            let every = if w.len() == 5 {
                Some(parse_time_us(w[4])?)
            } else {
                None
            };
            let mut t = start;
            loop {
                l.outages.push(Outage {
                    start_ns: t * 1000,
                    dur_ns: dur * 1000,
                    kind,
                });
                match every {
                    Some(p) if p > 0 && t + p < duration_ms * 1000 => t += p,
                    _ => break,
                }
            }
            return Ok(());
        }
        "handover" => {
            let w: Vec<&str> = v.split_whitespace().collect();
            let (iv, gap, kind) = match w.as_slice() {
                [i, g] => (parse_range(i)?, parse_range(g)?, OutageKind::Stall),
                [i, g, k] => (parse_range(i)?, parse_range(g)?, parse_kind(k)?),
                _ => return Err("MIN-MAXs MIN-MAXms [stall|blackhole]".into()),
            };
            let mut t = 0u64;
            loop {
                t += rng.range(iv.0, iv.1);
                if t >= duration_ms * 1000 {
                    break;
                }
                l.outages.push(Outage {
                    start_ns: t * 1000,
                    dur_ns: rng.range(gap.0, gap.1) * 1000,
                    kind,
                });
            }
            return Ok(());
        }
        "failed_handover" => {
            let w: Vec<&str> = v.split_whitespace().collect();
            let (per, dur, kind) = match w.as_slice() {
                [p, d] => (parse_time_us(p)?, parse_range(d)?, OutageKind::Blackhole),
                [p, d, k] => (parse_time_us(p)?, parse_range(d)?, parse_kind(k)?),
                _ => return Err("PERIOD MIN-MAXs [blackhole|stall]".into()),
            };
            let per = per.max(1_000);
            let mut w0 = 0;
            while w0 < duration_ms * 1000 {
                let d = rng.range(dur.0, dur.1);
                let start = w0 + rng.range(0, per.saturating_sub(d));
                l.outages.push(Outage {
                    start_ns: start * 1000,
                    dur_ns: d * 1000,
                    kind,
                });
                w0 += per;
            }
            return Ok(());
        }
        "trace_offset" => {
            l.trace_offset_ms = parse_time_us(v)? / 1000;
            return Ok(());
        }
        _ => {}
    }
    for d in dirs {
        let spec = if d == "up" { &mut l.up } else { &mut l.down };
        match key {
            "rate" if v == "unlimited" => spec.rate = Rate::Unlimited,
            "rate" => spec.rate = Rate::Fixed(positive_rate(v)?),
            "trace" => {
                let dir = if d == "up" {
                    tr::Dir::Up
                } else {
                    tr::Dir::Down
                };
                let t = tr::load(v, dir, !k.contains('.'), tcx)?;
                spec.rate = Rate::Trace {
                    trace: Arc::new(Trace::from_ms(&t.name, t.ms)),
                    offset_ms: 0,
                };
            }
            "delay" => spec.delay_us = parse_time_us(v)?,
            "jitter" => spec.jitter_us = parse_time_us(v)?,
            "reorder" => spec.reorder = parse_bool(v)?,
            "loss" => spec.loss.rate = parse_pct(v)?,
            "loss_burst" => {
                spec.loss.burst = v.parse().map_err(|_| "a number of packets".to_string())?
            }
            "queue" => spec.queue = parse_queue(v)?,
            _ => return Err("unknown key".into()),
        }
    }
    let _: Loss = l.up.loss;
    Ok(())
}

fn parse_kind(s: &str) -> Result<OutageKind, String> {
    match s {
        "blackhole" => Ok(OutageKind::Blackhole),
        "stall" => Ok(OutageKind::Stall),
        _ => Err(format!("'{s}': blackhole or stall")),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("'{s}': yes or no")),
    }
}

/// `20ms`, `1.5s`, `500us`, `2m` -> microseconds.
pub fn parse_time_us(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else {
        return Err(format!("'{s}': a time with a unit (us, ms, s, m)"));
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': not a time"))?;
    if x.is_nan() || x < 0.0 {
        return Err(format!("'{s}': negative"));
    }
    Ok((x * mul).round() as u64)
}

/// `10-30s`, `30-80ms`, `0.5-3s` (unit after the range) -> microseconds.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let unit_at = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or(format!("'{s}': needs a unit"))?;
    let (nums, unit) = s.split_at(unit_at);
    let (a, b) = nums.split_once('-').unwrap_or((nums, nums));
    let (a, b) = (
        parse_time_us(&format!("{a}{unit}"))?,
        parse_time_us(&format!("{b}{unit}"))?,
    );
    if b < a {
        return Err(format!("'{s}': empty range"));
    }
    Ok((a, b))
}

/// A link's rate: [`parse_rate`] (the UCI rules), and not zero (a link that carries nothing
/// is an outage: write one).
fn positive_rate(s: &str) -> Result<u64, String> {
    match parse_rate(s)? {
        0 => Err(format!("'{s}': must be positive")),
        r => Ok(r),
    }
}

fn parse_pct(s: &str) -> Result<f64, String> {
    let x: f64 = match s.strip_suffix('%') {
        Some(n) => n.trim().parse::<f64>().map_err(|_| format!("'{s}'"))? / 100.0,
        None => s.parse().map_err(|_| format!("'{s}'"))?,
    };
    if !(0.0..1.0).contains(&x) {
        return Err(format!("'{s}': between 0 and 100 %"));
    }
    Ok(x)
}

fn parse_queue(s: &str) -> Result<QueueLimit, String> {
    let l = s.to_ascii_lowercase();
    if l == "unlimited" || l == "none" {
        return Ok(QueueLimit::Unlimited);
    }
    if l.ends_with("ms") || l.ends_with('s') && !l.ends_with("kb") {
        return Ok(QueueLimit::Millis(parse_time_us(&l)? / 1000));
    }
    let (n, m) = if let Some(n) = l.strip_suffix("mb") {
        (n, 1_000_000.0)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1000.0)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1.0)
    } else {
        return Err(format!("'{s}': 100ms, 64kb, 30000b or unlimited"));
    };
    let x: f64 = n.trim().parse().map_err(|_| format!("'{s}'"))?;
    Ok(QueueLimit::Bytes((x * m) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_time_us("20ms"), Ok(20_000));
        assert_eq!(parse_time_us("1.5s"), Ok(1_500_000));
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        // One parse_rate with the UCI rules: "bps" and "/s" are refused, as in /etc/config/braid.
        assert!(parse_rate("10Mbit/s").is_err());
        assert!(parse_rate("20mbps").is_err());
        assert_eq!(positive_rate("20000000"), Ok(20_000_000));
        assert!(positive_rate("0mbit").is_err());
        assert_eq!(parse_pct("0.5%"), Ok(0.005));
        assert_eq!(parse_queue("64kb"), Ok(QueueLimit::Bytes(64_000)));
        assert_eq!(parse_queue("80ms"), Ok(QueueLimit::Millis(80)));
        assert_eq!(parse_range("30-80ms"), Ok((30_000, 80_000)));
        assert!(parse_time_us("20").is_err());
    }

    #[test]
    fn parses_links_directions_and_outages() {
        let s = parse(
            "t",
            "# two links\nduration = 30s\n[link a]\nrate = 20mbit\ndelay = 20ms\nup.rate = 5mbit\n\
             outage = 10s 3s blackhole\n[link b]\nrate = 10mbit\nloss = 1%\nloss_burst = 3\n[all]\noutage = 20s 5s stall\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.description, "two links");
        assert_eq!(s.duration_ms, 30_000);
        assert_eq!(s.best, 0);
        assert_eq!(s.links[0].up.rate.mean_bps(), Some(5_000_000));
        assert_eq!(s.links[0].down.rate.mean_bps(), Some(20_000_000));
        assert_eq!(s.links[0].up.delay_us, 20_000);
        assert_eq!(s.links[0].outages.len(), 2);
        assert_eq!(s.links[1].outages.len(), 1);
        assert_eq!(
            s.links[1].down.loss,
            Loss {
                rate: 0.01,
                burst: 3.0
            }
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("t", "[link a]\nrate = fast\n", None, None).unwrap_err();
        assert!(e.starts_with("2: rate"), "{e}");
        let e = parse("t", "[link a]\nbogus = 1\n", None, None).unwrap_err();
        assert!(e.starts_with("2:"), "{e}");
    }

    #[test]
    fn generated_schedules_are_seeded_and_bounded() {
        let text =
            "duration = 120s\nseed = 5\n[link a]\nrate = 10mbit\nhandover = 10-30s 30-80ms\n\
                    failed_handover = 60s 0.5-3s\n";
        let a = parse("t", text, None, None).unwrap();
        let b = parse("t", text, None, None).unwrap();
        assert_eq!(a.links[0].outages, b.links[0].outages);
        let o = &a.links[0].outages;
        let fails = o.iter().filter(|o| o.kind == OutageKind::Blackhole).count();
        assert_eq!(fails, 2);
        assert!(o
            .iter()
            .all(|o| o.kind == OutageKind::Blackhole
                || (30_000_000..=80_000_000).contains(&o.dur_ns)));
        let hos = o.len() - fails;
        assert!((4..=12).contains(&hos), "{hos}");
    }

    fn trace_name(d: &DirSpec) -> &str {
        match &d.rate {
            Rate::Trace { trace, .. } => &trace.name,
            _ => "not a trace",
        }
    }

    #[test]
    fn traces_generated_and_recorded() {
        let text = "seed = 6\n[link a]\ntrace = gen:hsr?seconds=30\ntrace_offset = 5s\n\
                    [link b]\ntrace = gen:umts?seconds=30\ndown.trace = gen:hsr/up?modem=0&seconds=30\n";
        let s = parse("t", text, None, None).unwrap();
        let (a, b) = (&s.links[0], &s.links[1]);
        assert_eq!(trace_name(&a.up), "gen:hsr/up?seed=6&modem=0&seconds=30");
        assert_eq!(
            trace_name(&a.down),
            "gen:hsr/down?seed=6&modem=0&seconds=30"
        );
        assert_eq!(trace_name(&b.up), "gen:umts/up?seed=6&modem=1&seconds=30");
        assert_eq!(trace_name(&b.down), "gen:hsr/up?seed=6&modem=0&seconds=30");
        assert!(matches!(
            a.up.rate,
            Rate::Trace {
                offset_ms: 5000,
                ..
            }
        ));
        let mean = a.down.rate.mean_bps().unwrap() as f64;
        assert!((mean / 10e6 - 1.0).abs() < 0.01, "{mean}");
        // The same trace as the simulator's (one generator).
        let Rate::Trace { trace, .. } = &b.down.rate else {
            unreachable!()
        };
        let sim = crate::trace::load(
            "gen:hsr/up?seed=6&modem=0&seconds=30",
            crate::trace::Dir::Down,
            false,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(**trace, Trace::from_ms(&sim.name, sim.ms));

        // Recorded: NAME.up / NAME.down in the traces folder; a missing one says how to get it.
        let dir = std::env::temp_dir().join(format!("braid-lab-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("car.up"), "1\n").unwrap();
        std::fs::write(dir.join("car.down"), "1\n1\n").unwrap();
        let text = "[link a]\ntrace = car\n";
        let s = parse("t", text, Some(&dir), None);
        let e = parse("t", text, None, Some(&dir)).map(|_| ());
        let e2 = parse("t", "[link a]\nup.trace = car\n", Some(&dir), None).map(|_| ());
        std::fs::remove_dir_all(&dir).unwrap();
        let s = s.unwrap();
        assert_eq!(s.links[0].up.rate.mean_bps(), Some(12_000_000));
        assert_eq!(s.links[0].down.rate.mean_bps(), Some(24_000_000));
        // Beside the scenario `car.up` is found too.
        assert!(e.is_ok(), "{e:?}");
        // One direction names the file exactly: there is no `car`.
        let e2 = e2.unwrap_err();
        assert!(e2.starts_with("2: up.trace:"), "{e2}");
        for part in ["trace `car` not found", "mahimahi", "gen:lte-driving"] {
            assert!(e2.contains(part), "{part}: {e2}");
        }
        let e = parse("t", "[link a]\ntrace = gen:hsr/left\n", None, None).unwrap_err();
        assert!(
            e.starts_with("2: trace:") && e.contains("up nor down"),
            "{e}"
        );
    }

    #[test]
    fn shipped_scenarios_parse_without_recorded_traces() {
        let names = shipped();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            let p = find(&name).unwrap();
            load_with(&p, None).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
