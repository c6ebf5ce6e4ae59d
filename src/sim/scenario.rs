//! Scenario files: what links, classes and traffic a run has, for the simulator (`braid sim`)
//! and the lab (`braid lab run`, [`crate::lab::scenario`]) alike: one format, one parser.
//!
//! A scenario is a TOML file (see `scenarios/*.toml`, `scenarios/lab/*.toml` and `braid sim
//! --help`). Its links are [`crate::linkmodel`] directions. Parsing is strict: an unknown key, a
//! value of the wrong type or a number without its unit is an error that names the file, the
//! line and the field. The lab reads the links (and `best`, `edges`, `clients`); the simulator
//! reads everything else as well.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::rng::SplitMix;
use super::toml::{self, Spanned, Table, Value};
pub(crate) use crate::config::model::parse_rate;
use crate::linkmodel::{DirSpec, Gilbert, Loss, Outage, OutageKind, QueueLimit, Rate, Trace};
use crate::proto::LinkId;
use crate::trace;

/// A whole scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub(crate) description: String,
    pub(crate) seed: u64,
    /// How long the traffic runs (µs).
    pub(crate) duration_us: u64,
    /// Deliveries before this time (µs) are left out of the rate and fairness figures.
    pub warmup_us: u64,
    /// Extra time after the traffic stops for what is in flight to arrive or be declared lost.
    pub(crate) drain_us: u64,
    /// Which protocol implementation carries the traffic.
    pub(crate) tunnel: TunnelKind,
    pub links: Vec<LinkSpec>,
    pub(crate) classes: Vec<ClassSpec>,
    pub(crate) traffic: Vec<TrafficSpec>,
    /// Record a per-second timeline of every link (`braid sim --timeline`).
    pub timeline: bool,
    /// Lab: the link of the `direct` baseline (`None`: the highest mean down rate).
    pub(crate) best: Option<LinkId>,
    /// Lab: edges, each with a copy of the links, all on one LAN subnet (1 to 4).
    pub(crate) edges: usize,
    /// Lab: client namespaces per edge (1 to 16).
    pub(crate) clients: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TunnelKind {
    /// The real protocol: a pair of `proto::Session`s.
    Session,
    /// The trivial single-path stand-in (first link only, no recovery), to test the simulator.
    Pipe,
    /// No tunnel: inner packets go as they are over this one link (the lab's `direct` mode,
    /// the baseline of one link alone). For TCP and paced traffic.
    Direct(LinkId),
}

impl TunnelKind {
    /// `session`, `pipe`, `direct` (the first link) or `direct:NAME`.
    pub(crate) fn parse(s: &str, links: &[LinkSpec]) -> Result<TunnelKind, String> {
        Ok(match s {
            "session" => TunnelKind::Session,
            "pipe" => TunnelKind::Pipe,
            "direct" => TunnelKind::Direct(0),
            _ => match s.strip_prefix("direct:") {
                Some(n) => match links.iter().find(|l| l.name == n) {
                    Some(l) => TunnelKind::Direct(l.id),
                    None => {
                        return Err(format!(
                            "no link named `{n}` (links: {})",
                            links
                                .iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                },
                None => return Err(format!("`{s}` is not session, pipe, direct or direct:LINK")),
            },
        })
    }

    /// The largest inner packet: a 1500-byte path for direct, the daemons' default hub MTU
    /// through the tunnel.
    pub(crate) fn inner_mtu(&self) -> usize {
        match self {
            TunnelKind::Direct(_) => 1500,
            _ => MAX_INNER,
        }
    }
}

/// A link's role: the protocol's own enum (the words are those of UCI's `role`).
pub(crate) use crate::proto::wire::LinkRole as Role;

#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub name: String,
    pub(crate) id: LinkId,
    pub(crate) role: Role,
    pub(crate) weight: u32,
    pub(crate) rate_cap_bps: Option<u64>,
    /// Edge to core.
    pub up: DirSpec,
    /// Core to edge.
    pub down: DirSpec,
}

/// How a class uses the links: the protocol's own enum.
pub(crate) use crate::proto::sched::Mode;

#[derive(Debug, Clone)]
pub(crate) struct ClassSpec {
    pub(crate) name: String,
    pub(crate) id: u8,
    pub(crate) mode: Mode,
    pub(crate) priority: u8,
    pub(crate) weight: u32,
}

/// A direction: up is edge to core (client to server), as a trace's.
pub use crate::trace::Dir;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TrafficKind {
    /// Keeps the session's queue full (sends whenever `can_send` allows).
    Bulk,
    /// One packet every `interval_us`.
    Interactive { interval_us: u64 },
    /// A constant bit rate, packets of `size` bytes.
    Realtime { bps: u64 },
    /// Bulk TCP transfers (`flows` connections) with this congestion control; segments take
    /// the tunnel's MTU (see [`super::tcp`]).
    Tcp { cc: Cc },
}

/// Congestion control of a simulated TCP sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Cc {
    Cubic,
    Reno,
    Bbr,
}

impl Cc {
    pub(crate) fn parse(s: &str) -> Option<Cc> {
        Some(match s {
            "cubic" => Cc::Cubic,
            "reno" => Cc::Reno,
            "bbr" => Cc::Bbr,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TrafficSpec {
    pub(crate) name: String,
    pub(crate) user: u32,
    pub(crate) class: u8,
    pub(crate) dir: Dir,
    pub(crate) kind: TrafficKind,
    /// Inner packet size in bytes.
    pub(crate) size: usize,
    /// Number of flows (5-tuples); packets are spread over them in turn.
    pub(crate) flows: u32,
    pub(crate) start_us: u64,
    pub(crate) stop_us: u64,
}

impl TrafficSpec {
    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self.kind, TrafficKind::Tcp { .. })
    }

    /// Nominal spacing of packets (µs), for paced kinds.
    pub(crate) fn interval_us(&self) -> Option<u64> {
        match self.kind {
            TrafficKind::Bulk | TrafficKind::Tcp { .. } => None,
            TrafficKind::Interactive { interval_us } => Some(interval_us),
            TrafficKind::Realtime { bps } => Some((self.size as u64 * 8 * 1_000_000) / bps.max(1)),
        }
    }
}

/// An error in a scenario file: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioError {
    file: String,
    line: Option<u32>,
    msg: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.msg),
            None => write!(f, "{}: {}", self.file, self.msg),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Inner packets larger than this do not fit one datagram on a 1500-byte path.
pub(crate) const MAX_INNER: usize = 1400;
/// The smallest inner packet the simulator can tag (IPv4 header + its own 32-byte tag).
pub(crate) const MIN_INNER: usize = 52;

/// What loading a scenario takes besides its file.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadOpts {
    /// The folder of recorded traces (`--traces`, `$BRAID_TRACES`), searched before the
    /// scenario's own folder (see [`crate::trace`]).
    pub(crate) traces: Option<PathBuf>,
    /// Replaces the scenario's `seed`, which its generated traces default to as well.
    pub(crate) seed: Option<u64>,
}

/// The simulator's scenario folders, in the order `braid sim NAME` searches them.
pub(crate) const SIM_DIRS: [&str; 2] = ["scenarios", "scenarios/lab"];
/// The lab's scenario folders, in the order `braid lab run NAME` searches them.
pub(crate) const LAB_DIRS: [&str; 2] = ["scenarios/lab", "scenarios"];

/// A scenario named on the command line, as `braid sim NAME` and `braid lab run NAME` both find
/// it: an existing file of that path, else `DIR/NAME.toml` (`.toml` optional in NAME) for each
/// of `dirs` in turn, below the working directory, then below the source tree the binary was
/// built from.
pub(crate) fn find_file(name: &str, dirs: &[&str]) -> Result<PathBuf, String> {
    let p = Path::new(name);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let file = format!("{}.toml", name.strip_suffix(".toml").unwrap_or(name));
    for dir in dirs {
        for base in [PathBuf::new(), PathBuf::from(env!("CARGO_MANIFEST_DIR"))] {
            let f = base.join(dir).join(&file);
            if f.is_file() {
                return Ok(f);
            }
        }
    }
    let places: Vec<String> = dirs.iter().map(|d| format!("{d}/{file}")).collect();
    Err(format!(
        "no scenario '{name}' (a file, or {})",
        places.join(" or ")
    ))
}

/// Names of the scenarios shipped in `dirs` of the source tree (`*.toml`), sorted, each once.
pub(crate) fn shipped_in(dirs: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = dirs
        .iter()
        .flat_map(|dir| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.strip_suffix(".toml").map(str::to_string)
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A scenario by path or by name, for `braid sim` ([`find_file`] in [`SIM_DIRS`]).
pub(crate) fn find(name: &str) -> Result<PathBuf, String> {
    find_file(name, &SIM_DIRS)
}

impl LoadOpts {
    /// Recorded traces from `$BRAID_TRACES`, the file's own seed.
    pub(crate) fn from_env() -> LoadOpts {
        LoadOpts {
            traces: trace::traces_from_env(),
            seed: None,
        }
    }
}

impl Scenario {
    /// Read and check a scenario file; recorded traces are looked up in `$BRAID_TRACES`, then
    /// beside the file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_with(path, &LoadOpts::from_env())
    }

    /// [`Scenario::load`] with the traces folder and seed given.
    pub(crate) fn load_with(path: &Path, o: &LoadOpts) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        Scenario::parse_with(&text, &path.display().to_string(), path.parent(), o)
    }

    /// Parse scenario text. `file` names it in errors; `dir` is where relative trace names are
    /// looked up (no `$BRAID_TRACES` here: the result depends on the arguments only).
    pub fn parse(text: &str, file: &str, dir: Option<&Path>) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with(text, file, dir, &LoadOpts::default())
    }

    /// [`Scenario::parse`] with the traces folder and seed given.
    pub(crate) fn parse_with(
        text: &str,
        file: &str,
        dir: Option<&Path>,
        o: &LoadOpts,
    ) -> Result<Scenario, ScenarioError> {
        let doc = toml::parse(text).map_err(|e| ScenarioError {
            file: file.to_string(),
            line: Some(e.line),
            msg: e.msg,
        })?;
        let cx = Cx {
            file: file.to_string(),
            dir: dir.map(Path::to_path_buf),
            traces: o.traces.clone(),
            seed: o.seed,
        };
        cx.scenario(&doc)
    }
}

impl Scenario {
    /// Replaces the scenario's saturating traffic (bulk and TCP; paced traffic stays) by one
    /// workload, named as the lab names its own: `tcpN-up`, `tcpN-down` (N TCP flows with
    /// congestion control `cc`) or `bulkN-up`, `bulkN-down` (the saturating source); or by a
    /// sequence of them in one session, `tcp8-up,tcp8-down`: each runs for an equal part of
    /// the duration, the next starting as the previous stops (an upload, then at once a
    /// download, with what the first taught the estimates).
    pub(crate) fn set_workload(&mut self, w: &str, cc: Cc) -> Result<(), String> {
        let steps = w
            .split(',')
            .map(|s| Scenario::workload_step(s.trim(), cc))
            .collect::<Result<Vec<_>, _>>()?;
        let user = self
            .traffic
            .iter()
            .find(|t| matches!(t.kind, TrafficKind::Bulk | TrafficKind::Tcp { .. }))
            .map_or(1, |t| t.user);
        self.traffic
            .retain(|t| !matches!(t.kind, TrafficKind::Bulk | TrafficKind::Tcp { .. }));
        let n = steps.len() as u64;
        for (i, (name, kind, dir, flows)) in steps.into_iter().enumerate() {
            let i = i as u64;
            let start_us = self.duration_us * i / n;
            let stop_us = self.duration_us * (i + 1) / n;
            if start_us >= stop_us {
                return Err(format!("`{w}`: too many steps for the duration"));
            }
            self.traffic.insert(
                i as usize,
                TrafficSpec {
                    name,
                    user,
                    class: 0,
                    dir,
                    kind,
                    size: MAX_INNER,
                    flows,
                    start_us,
                    stop_us,
                },
            );
        }
        Ok(())
    }

    /// One step of a workload: its name, kind, direction and flows.
    fn workload_step(w: &str, cc: Cc) -> Result<(String, TrafficKind, Dir, u32), String> {
        let bad = || {
            format!(
                "`{w}` is not a workload like tcp8-down, tcp1-up, bulk8-up (N from 1 to 64), \
                 or a sequence of them like tcp8-up,tcp8-down"
            )
        };
        let (kind, rest) = if let Some(r) = w.strip_prefix("tcp") {
            (TrafficKind::Tcp { cc }, r)
        } else if let Some(r) = w.strip_prefix("bulk") {
            (TrafficKind::Bulk, r)
        } else {
            return Err(bad());
        };
        let (n, dir) = rest.split_once('-').ok_or_else(bad)?;
        let flows: u32 = n.parse().map_err(|_| bad())?;
        if !(1..=64).contains(&flows) {
            return Err(bad());
        }
        let dir = Dir::parse(dir).ok_or_else(bad)?;
        Ok((w.to_string(), kind, dir, flows))
    }

    /// Change how long the traffic runs; sources that ran to the old end run to the new one.
    pub fn set_duration(&mut self, duration_us: u64) -> Result<(), String> {
        if duration_us <= self.warmup_us {
            return Err(format!(
                "must be longer than the warmup ({} s)",
                self.warmup_us as f64 / 1e6
            ));
        }
        for t in &mut self.traffic {
            if t.stop_us == self.duration_us || t.stop_us > duration_us {
                t.stop_us = duration_us;
            }
            if t.start_us >= t.stop_us {
                return Err(format!("traffic `{}` would not run at all", t.name));
            }
        }
        self.duration_us = duration_us;
        Ok(())
    }
}

struct Cx {
    file: String,
    dir: Option<PathBuf>,
    traces: Option<PathBuf>,
    /// Overrides the file's seed.
    seed: Option<u64>,
}

/// A table being read: remembers which keys were used so that unknown ones are reported.
struct Fields<'a> {
    table: &'a Table,
    what: String,
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(table: &'a Table, what: impl Into<String>) -> Fields<'a> {
        Fields {
            table,
            what: what.into(),
            used: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Spanned> {
        self.used.push(key);
        self.table.get(key)
    }
}

impl Cx {
    fn err<T>(&self, line: u32, msg: impl Into<String>) -> Result<T, ScenarioError> {
        Err(ScenarioError {
            file: self.file.clone(),
            line: Some(line),
            msg: msg.into(),
        })
    }

    fn finish(&self, f: &Fields) -> Result<(), ScenarioError> {
        for (k, v) in &f.table.entries {
            if !f.used.contains(&k.as_str()) {
                return self.err(
                    v.line,
                    format!(
                        "{}: unknown key `{k}` (known: {})",
                        f.what,
                        f.used.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    fn string(
        &self,
        f: &mut Fields,
        key: &'static str,
    ) -> Result<Option<(String, u32)>, ScenarioError> {
        match f.get(key) {
            None => Ok(None),
            Some(Spanned {
                value: Value::Str(s),
                line,
            }) => Ok(Some((s.clone(), *line))),
            Some(v) => self.err(
                v.line,
                format!(
                    "{}: `{key}` must be a string, not a {}",
                    f.what,
                    v.value.type_name()
                ),
            ),
        }
    }

    fn int(
        &self,
        f: &mut Fields,
        key: &'static str,
        max: u64,
    ) -> Result<Option<u64>, ScenarioError> {
        match f.get(key) {
            None => Ok(None),
            Some(Spanned {
                value: Value::Int(i),
                line,
            }) => {
                if *i < 0 || *i as u64 > max {
                    self.err(
                        *line,
                        format!("{}: `{key}` must be between 0 and {max}", f.what),
                    )
                } else {
                    Ok(Some(*i as u64))
                }
            }
            Some(v) => self.err(
                v.line,
                format!(
                    "{}: `{key}` must be an integer, not a {}",
                    f.what,
                    v.value.type_name()
                ),
            ),
        }
    }

    fn bool(&self, f: &mut Fields, key: &'static str) -> Result<Option<bool>, ScenarioError> {
        match f.get(key) {
            None => Ok(None),
            Some(Spanned {
                value: Value::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(v) => self.err(v.line, format!("{}: `{key}` must be true or false", f.what)),
        }
    }

    fn duration(&self, f: &mut Fields, key: &'static str) -> Result<Option<u64>, ScenarioError> {
        self.with_unit(f, key, parse_duration, "\"20ms\", \"1.5s\", \"500us\"")
    }

    fn rate(&self, f: &mut Fields, key: &'static str) -> Result<Option<u64>, ScenarioError> {
        self.with_unit(f, key, parse_rate, "\"20mbit\", \"512kbit\"")
    }

    /// A number with its unit, as a string (`examples` shows some in the error).
    fn with_unit(
        &self,
        f: &mut Fields,
        key: &'static str,
        parse: fn(&str) -> Result<u64, String>,
        examples: &str,
    ) -> Result<Option<u64>, ScenarioError> {
        let what = f.what.clone();
        let Some(v) = f.get(key) else { return Ok(None) };
        match &v.value {
            Value::Str(s) => parse(s)
                .map(Some)
                .or_else(|e| self.err(v.line, format!("{what}: `{key}`: {e}"))),
            _ => self.err(
                v.line,
                format!("{what}: `{key}` needs a unit, as a string: {examples}"),
            ),
        }
    }

    fn ratio(&self, f: &mut Fields, key: &'static str) -> Result<Option<f64>, ScenarioError> {
        let what = f.what.clone();
        let Some(v) = f.get(key) else { return Ok(None) };
        let r = match &v.value {
            Value::Str(s) => match s.trim().strip_suffix('%').map(|n| n.trim().parse::<f64>()) {
                Some(Ok(p)) => p / 100.0,
                _ => return self.err(v.line, format!("{what}: `{key}`: `{s}` is not a percentage like \"0.5%\"")),
            },
            Value::Float(x) => *x,
            Value::Int(i) => *i as f64,
            other => {
                return self.err(
                    v.line,
                    format!("{what}: `{key}` must be a fraction (0.005) or a percentage (\"0.5%\"), not a {}", other.type_name()),
                )
            }
        };
        if !(0.0..=1.0).contains(&r) {
            return self.err(
                v.line,
                format!("{what}: `{key}` must be between 0 and 100 %"),
            );
        }
        Ok(Some(r))
    }

    fn scenario(&self, doc: &Table) -> Result<Scenario, ScenarioError> {
        let mut f = Fields::new(doc, "scenario");
        let name = self
            .string(&mut f, "name")?
            .map(|s| s.0)
            .unwrap_or_else(|| {
                Path::new(&self.file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        let description = self
            .string(&mut f, "description")?
            .map(|s| s.0)
            .unwrap_or_default();
        let file_seed = self.int(&mut f, "seed", u64::MAX >> 1)?.unwrap_or(1);
        let seed = self.seed.unwrap_or(file_seed);
        let duration_us = self.duration(&mut f, "duration")?.unwrap_or(10_000_000);
        let warmup_us = self.duration(&mut f, "warmup")?.unwrap_or(0);
        let drain_us = self.duration(&mut f, "drain")?.unwrap_or(3_000_000);
        if warmup_us >= duration_us {
            return self.err(1, "scenario: `warmup` must be shorter than `duration`");
        }
        let tunnel_s = self.string(&mut f, "tunnel")?;
        let best_s = self.string(&mut f, "best")?;
        let edges = self.int(&mut f, "edges", 4)?.unwrap_or(1) as usize;
        let clients = self.int(&mut f, "clients", 16)?.unwrap_or(1) as usize;
        let shared = self.outages(&mut f, duration_us)?;

        let links_v = f.get("link");
        let classes_v = f.get("class");
        let traffic_v = f.get("traffic");
        self.finish(&f)?;
        if edges == 0 || clients == 0 {
            return self.err(1, "scenario: `edges` and `clients` are at least 1");
        }

        let mut links = Vec::new();
        for (i, (t, line)) in self.tables(links_v, "link")?.into_iter().enumerate() {
            if i > usize::from(LinkId::MAX) {
                return self.err(line, "too many links");
            }
            let mut l = self.link(t, line, i as LinkId, seed, duration_us)?;
            // Top-level outages hit every link at once (a tunnel), after the link's own.
            for d in [&mut l.up, &mut l.down] {
                d.outages.extend(shared.iter().flatten().copied());
            }
            links.push(l);
        }
        if links.is_empty() {
            return self.err(1, "scenario: no [[link]] (at least one link is needed)");
        }
        for (i, a) in links.iter().enumerate() {
            if links[..i].iter().any(|b| b.name == a.name) {
                return self.err(1, format!("two links are named `{}`", a.name));
            }
        }
        let best = match best_s {
            None => None,
            Some((b, line)) => match links.iter().find(|l| l.name == b) {
                Some(l) => Some(l.id),
                None => return self.err(line, format!("scenario: `best`: no link named `{b}`")),
            },
        };
        let tunnel = match tunnel_s {
            None => TunnelKind::Session,
            Some((s, line)) => match TunnelKind::parse(&s, &links) {
                Ok(t) => t,
                Err(e) => return self.err(line, format!("scenario: `tunnel`: {e}")),
            },
        };

        let mut classes = vec![ClassSpec {
            name: "default".into(),
            id: 0,
            mode: Mode::Aggregate,
            priority: 0,
            weight: 1,
        }];
        for (t, line) in self.tables(classes_v, "class")? {
            let c = self.class(t, line, classes.len(), &links)?;
            if let Some(prev) = classes.iter().position(|p| p.name == c.name) {
                if prev != 0 {
                    return self.err(line, format!("class `{}` is defined twice", c.name));
                }
                classes[0] = ClassSpec { id: 0, ..c };
            } else {
                classes.push(c);
            }
        }

        // No [[traffic]] is a lab scenario (the lab brings its workloads): `braid sim` wants one
        // or `--workload`.
        let mut traffic = Vec::new();
        for (i, (t, line)) in self.tables(traffic_v, "traffic")?.into_iter().enumerate() {
            traffic.push(self.traffic(t, line, i, &classes, duration_us)?);
        }

        Ok(Scenario {
            name,
            description,
            seed,
            duration_us,
            warmup_us,
            drain_us,
            tunnel,
            links,
            classes,
            traffic,
            timeline: false,
            best,
            edges,
            clients,
        })
    }

    fn tables<'a>(
        &self,
        v: Option<&'a Spanned>,
        key: &str,
    ) -> Result<Vec<(&'a Table, u32)>, ScenarioError> {
        let Some(v) = v else { return Ok(Vec::new()) };
        let Value::Array(items) = &v.value else {
            return self.err(
                v.line,
                format!("`{key}` must be written as [[{key}]] sections"),
            );
        };
        items
            .iter()
            .map(|it| match &it.value {
                Value::Table(t) => Ok((t, it.line)),
                _ => self.err(
                    it.line,
                    format!("`{key}` must be written as [[{key}]] sections"),
                ),
            })
            .collect()
    }

    fn link(
        &self,
        t: &Table,
        line: u32,
        id: LinkId,
        seed: u64,
        duration_us: u64,
    ) -> Result<LinkSpec, ScenarioError> {
        let mut f = Fields::new(t, format!("[[link]] #{}", u32::from(id) + 1));
        let name = match self.string(&mut f, "name")? {
            Some((n, _)) => n,
            None => format!("link{}", u32::from(id) + 1),
        };
        f.what = format!("link `{name}`");
        let role = match self.string(&mut f, "role")? {
            None => Role::Primary,
            Some((s, l)) => match Role::ALL.into_iter().find(|r| r.name() == s) {
                Some(r) => r,
                None => {
                    return self.err(
                        l,
                        format!(
                        "link `{name}`: `role` is primary, secondary, backup or never, not \"{s}\""
                    ),
                    )
                }
            },
        };
        let weight = self.int(&mut f, "weight", 1_000_000)?.unwrap_or(1) as u32;
        let rate_cap_bps = self.rate(&mut f, "rate_cap")?;
        let sched = Sched {
            duration_us,
            // Generated schedules (handovers) take the lab's seeds, so its schedules stay put.
            seed: seed.wrapping_mul(31).wrapping_add(fnv1a(&name)),
        };
        let both = self.dir_fields(&mut f, None, &sched)?;
        let up_t = f.get("up");
        let down_t = f.get("down");
        self.finish(&f)?;
        let mut dirs = Vec::new();
        let tcx = trace::Context {
            traces: self.traces.clone(),
            beside: self.dir.clone(),
            seed,
            modem: u32::from(id),
        };
        for (label, sub, dir) in [("up", up_t, Dir::Up), ("down", down_t, Dir::Down)] {
            let mut d = both.clone();
            if let Some(sub) = sub {
                let Value::Table(st) = &sub.value else {
                    return self.err(
                        sub.line,
                        format!(
                            "link `{name}`: `{label}` must be a table ([link.{label}] or {{ .. }})"
                        ),
                    );
                };
                let mut sf = Fields::new(st, format!("link `{name}` {label}"));
                let over = self.dir_fields(&mut sf, Some(&both), &sched)?;
                self.finish(&sf)?;
                d = over;
            }
            let what = format!("link `{name}` ({label})");
            dirs.push(d.build(self, &what, line, dir, &tcx)?);
        }
        let down = dirs.pop().expect("two directions");
        let up = dirs.pop().expect("two directions");
        Ok(LinkSpec {
            name,
            id,
            role,
            weight,
            rate_cap_bps,
            up,
            down,
        })
    }

    /// Read the per-direction keys; `base` supplies what is not given.
    fn dir_fields(
        &self,
        f: &mut Fields,
        base: Option<&DirDraft>,
        sched: &Sched,
    ) -> Result<DirDraft, ScenarioError> {
        let mut d = base.cloned().unwrap_or_default();
        let unlimited = matches!(f.table.get("rate"), Some(Spanned { value: Value::Str(s), .. }) if s == "unlimited");
        if unlimited {
            f.get("rate");
            d.rate = Some(Rate::Unlimited);
            d.trace = None;
        } else if let Some(r) = self.rate(f, "rate")? {
            d.rate = Some(Rate::Fixed(r));
            d.trace = None;
        }
        if let Some((t, l)) = self.string(f, "trace")? {
            // Checked here, read when each direction is built (a link-level value gives each
            // direction its own: gen:P/up and /down, or NAME.up and NAME.down).
            trace::Spec::parse(&t).or_else(|e| self.err(l, format!("{}: `trace` {e}", f.what)))?;
            d.trace = Some((t, l, base.is_none()));
            d.rate = None;
        }
        if let Some(o) = self.duration(f, "trace_offset")? {
            d.trace_offset_us = o;
        }
        if let Some(v) = self.duration(f, "delay")? {
            d.delay_us = Some(v);
        }
        if let Some(v) = self.duration(f, "jitter")? {
            d.jitter_us = v;
        }
        if let Some(v) = self.bool(f, "reorder")? {
            d.reorder = v;
        }
        if let Some(v) = self.ratio(f, "loss")? {
            d.loss = v;
        }
        let what = f.what.clone();
        if let Some(v) = f.get("loss_burst") {
            let n = match v.value {
                Value::Int(n) => n as f64,
                Value::Float(x) => x,
                _ => -1.0,
            };
            if !(1.0..=1e6).contains(&n) {
                return self.err(
                    v.line,
                    format!("{what}: `loss_burst` is a mean burst length in packets (1 or more)"),
                );
            }
            d.loss_burst = Some((n, v.line));
        }
        if let Some(v) = self.ratio(f, "corrupt")? {
            d.corrupt = v;
        }
        let what = f.what.clone();
        if let Some(v) = f.get("burst_loss") {
            let Value::Table(t) = &v.value else {
                return self.err(v.line, format!("{what}: `burst_loss` must be a table {{ enter = \"1%\", leave = \"30%\" }}"));
            };
            let mut g = Fields::new(t, format!("{what}: burst_loss"));
            let enter = self.ratio(&mut g, "enter")?;
            let leave = self.ratio(&mut g, "leave")?;
            let loss_bad = self.ratio(&mut g, "loss_bad")?.unwrap_or(1.0);
            let loss_good = self.ratio(&mut g, "loss_good")?.unwrap_or(0.0);
            self.finish(&g)?;
            let (Some(enter), Some(leave)) = (enter, leave) else {
                return self.err(v.line, format!("{what}: `burst_loss` needs `enter` and `leave` (per-packet chances of entering and leaving the bad state)"));
            };
            d.gilbert = Some((
                v.line,
                Gilbert {
                    enter,
                    leave,
                    loss_good,
                    loss_bad,
                },
            ));
        }
        if let Some(v) = f.get("queue") {
            let Value::Str(s) = &v.value else {
                return self.err(
                    v.line,
                    format!("{what}: `queue` needs a unit, as a string: \"100ms\" or \"64kB\""),
                );
            };
            d.queue = Some(if s == "unlimited" {
                QueueLimit::Unlimited
            } else if let Ok(us) = parse_duration(s) {
                QueueLimit::Time(us)
            } else {
                QueueLimit::Bytes(
                    parse_bytes(s)
                        .or_else(|e| self.err(v.line, format!("{what}: `queue`: {e}")))?,
                )
            });
        }
        if let Some(o) = self.outages(f, sched.duration_us)? {
            d.outages = o;
        }
        for (key, default_kind) in [
            ("handover", OutageKind::Stall),
            ("failed_handover", OutageKind::Blackhole),
        ] {
            if let Some((v, l)) = self.string(f, key)? {
                let o = generate(key, &v, default_kind, sched)
                    .or_else(|e| self.err(l, format!("{what}: `{key}`: {e}")))?;
                d.outages.extend(o);
            }
        }
        Ok(d)
    }

    /// The `outages` array of `f`: `{ at = "20s", for = "3s", kind = "blackhole", every = "30s" }`
    /// (`every`: again each period until `duration_us`).
    fn outages(
        &self,
        f: &mut Fields,
        duration_us: u64,
    ) -> Result<Option<Vec<Outage>>, ScenarioError> {
        let what = f.what.clone();
        let Some(v) = f.get("outages") else {
            return Ok(None);
        };
        let Value::Array(items) = &v.value else {
            return self.err(v.line, format!("{what}: `outages` must be an array of {{ at = \"20s\", for = \"3s\", kind = \"blackhole\" }}"));
        };
        let mut out = Vec::new();
        for it in items {
            let Value::Table(t) = &it.value else {
                return self.err(it.line, format!("{what}: each outage is {{ at = \"20s\", for = \"3s\", kind = \"blackhole\" }}"));
            };
            let mut of = Fields::new(t, format!("{what}: outage"));
            let at = self.duration(&mut of, "at")?;
            let dur = self.duration(&mut of, "for")?;
            let kind = match self.string(&mut of, "kind")? {
                None => OutageKind::Blackhole,
                Some((k, l)) => {
                    parse_kind(&k).or_else(|e| self.err(l, format!("{what}: outage `kind` {e}")))?
                }
            };
            let every = self.duration(&mut of, "every")?;
            self.finish(&of)?;
            let (Some(at), Some(dur)) = (at, dur) else {
                return self.err(it.line, format!("{what}: an outage needs `at` and `for`"));
            };
            let mut t = at;
            loop {
                out.push(Outage::new(kind, t, t + dur));
                match every {
                    Some(p) if p > 0 && t + p < duration_us => t += p,
                    _ => break,
                }
            }
        }
        Ok(Some(out))
    }

    fn class(
        &self,
        t: &Table,
        line: u32,
        id: usize,
        links: &[LinkSpec],
    ) -> Result<ClassSpec, ScenarioError> {
        let mut f = Fields::new(t, "[[class]]");
        let Some((name, _)) = self.string(&mut f, "name")? else {
            return self.err(line, "[[class]]: `name` is required");
        };
        f.what = format!("class `{name}`");
        let mode = match self.string(&mut f, "mode")? {
            None => Mode::Aggregate,
            Some((m, l)) => match m.as_str() {
                "aggregate" => Mode::Aggregate,
                "weighted" => Mode::Weighted,
                "redundant" => Mode::Redundant,
                "backup" => Mode::Backup,
                _ => match m.strip_prefix("pinned:") {
                    Some(link) => match links.iter().find(|k| k.name == link) {
                        Some(k) => Mode::Pinned(k.id),
                        None => return self.err(l, format!("class `{name}`: no link named `{link}`")),
                    },
                    None => {
                        return self.err(
                            l,
                            format!("class `{name}`: `mode` is aggregate, weighted, redundant, backup or \"pinned:LINK\", not \"{m}\""),
                        )
                    }
                },
            },
        };
        let priority = self.int(&mut f, "priority", 255)?.unwrap_or(0) as u8;
        let weight = self.int(&mut f, "weight", 1_000_000)?.unwrap_or(1) as u32;
        self.finish(&f)?;
        if id > 255 {
            return self.err(line, "too many classes");
        }
        Ok(ClassSpec {
            name,
            id: id as u8,
            mode,
            priority,
            weight,
        })
    }

    fn traffic(
        &self,
        t: &Table,
        line: u32,
        i: usize,
        classes: &[ClassSpec],
        duration_us: u64,
    ) -> Result<TrafficSpec, ScenarioError> {
        let mut f = Fields::new(t, format!("[[traffic]] #{}", i + 1));
        let name = self
            .string(&mut f, "name")?
            .map(|s| s.0)
            .unwrap_or_else(|| format!("traffic{}", i + 1));
        f.what = format!("traffic `{name}`");
        let user = self.int(&mut f, "user", u64::from(u32::MAX))?.unwrap_or(1) as u32;
        let class = match self.string(&mut f, "class")? {
            None => 0,
            Some((c, l)) => match classes.iter().find(|k| k.name == c) {
                Some(k) => k.id,
                None => {
                    return self.err(
                        l,
                        format!(
                            "traffic `{name}`: no class named `{c}` (defined: {})",
                            classes
                                .iter()
                                .map(|k| k.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                }
            },
        };
        let dir = match self.string(&mut f, "dir")? {
            None => Dir::Up,
            Some((d, l)) => match Dir::parse(&d) {
                Some(d) => d,
                None => {
                    return self.err(
                        l,
                        format!(
                        "traffic `{name}`: `dir` is \"up\" (edge to core) or \"down\", not \"{d}\""
                    ),
                    )
                }
            },
        };
        let kind_s = self.string(&mut f, "kind")?;
        let interval = self.duration(&mut f, "interval")?;
        let rate = self.rate(&mut f, "rate")?;
        let cc = self.string(&mut f, "cc")?;
        let kind = match kind_s {
            None => return self.err(line, format!("traffic `{name}`: `kind` is required: \"bulk\", \"tcp\", \"interactive\" or \"realtime\"")),
            Some((k, l)) => match k.as_str() {
                "bulk" => TrafficKind::Bulk,
                "tcp" => TrafficKind::Tcp {
                    cc: match &cc {
                        None => Cc::Cubic,
                        Some((c, cl)) => match Cc::parse(c) {
                            Some(c) => c,
                            None => return self.err(*cl, format!("traffic `{name}`: `cc` is \"cubic\", \"reno\" or \"bbr\", not \"{c}\"")),
                        },
                    },
                },
                "interactive" => TrafficKind::Interactive {
                    interval_us: match interval {
                        Some(v) if v > 0 => v,
                        _ => return self.err(l, format!("traffic `{name}`: interactive traffic needs `interval` (e.g. \"20ms\")")),
                    },
                },
                "realtime" => TrafficKind::Realtime {
                    bps: match rate {
                        Some(v) if v > 0 => v,
                        _ => return self.err(l, format!("traffic `{name}`: realtime traffic needs `rate` (e.g. \"1mbit\")")),
                    },
                },
                _ => return self.err(l, format!("traffic `{name}`: `kind` is \"bulk\", \"tcp\", \"interactive\" or \"realtime\", not \"{k}\"")),
            },
        };
        if let Some((_, cl)) = cc.filter(|_| !matches!(kind, TrafficKind::Tcp { .. })) {
            return self.err(cl, format!("traffic `{name}`: `cc` is for kind = \"tcp\""));
        }
        let default_size = match kind {
            TrafficKind::Bulk | TrafficKind::Tcp { .. } => MAX_INNER,
            TrafficKind::Interactive { .. } => 200,
            TrafficKind::Realtime { .. } => 1000,
        };
        let size = match f.get("size") {
            None => default_size,
            Some(v) => match &v.value {
                Value::Int(n) if (MIN_INNER as i64..=MAX_INNER as i64).contains(n) => *n as usize,
                _ => return self.err(v.line, format!("traffic `{name}`: `size` is an inner packet size in bytes, {MIN_INNER} to {MAX_INNER}")),
            },
        };
        let flows = self.int(&mut f, "flows", 1_000_000)?.unwrap_or(1).max(1) as u32;
        let start_us = self.duration(&mut f, "start")?.unwrap_or(0);
        let stop_us = self
            .duration(&mut f, "stop")?
            .unwrap_or(duration_us)
            .min(duration_us);
        self.finish(&f)?;
        if start_us >= stop_us {
            return self.err(
                line,
                format!(
                    "traffic `{name}`: `start` must be before `stop` and the scenario's `duration`"
                ),
            );
        }
        Ok(TrafficSpec {
            name,
            user,
            class,
            dir,
            kind,
            size,
            flows,
            start_us,
            stop_us,
        })
    }
}

/// Per-direction settings while reading (the link-level ones are the base of `up`/`down`).
#[derive(Debug, Clone, Default)]
struct DirDraft {
    /// Fixed or unlimited (a trace is read when each direction is built).
    rate: Option<Rate>,
    /// The `trace` value, its line, and whether it was given for both directions.
    trace: Option<(String, u32, bool)>,
    trace_offset_us: u64,
    delay_us: Option<u64>,
    jitter_us: u64,
    reorder: bool,
    loss: f64,
    /// `burst_loss` and its line.
    gilbert: Option<(u32, Gilbert)>,
    /// `loss_burst` (mean burst length of `loss`) and its line.
    loss_burst: Option<(f64, u32)>,
    corrupt: f64,
    queue: Option<QueueLimit>,
    outages: Vec<Outage>,
}

impl DirDraft {
    fn build(
        self,
        cx: &Cx,
        what: &str,
        line: u32,
        dir: trace::Dir,
        tcx: &trace::Context,
    ) -> Result<DirSpec, ScenarioError> {
        let rate = match (self.rate, self.trace) {
            (Some(Rate::Fixed(bps)), None) if bps > 0 => Rate::Fixed(bps),
            (Some(Rate::Unlimited), None) => Rate::Unlimited,
            (None, Some((value, l, both))) => {
                let t = trace::load(&value, dir, both, tcx)
                    .or_else(|e| cx.err(l, format!("{what}: {e}")))?;
                Rate::Trace {
                    trace: Arc::new(Trace::from_ms(&t.name, t.ms)),
                    offset_us: self.trace_offset_us,
                }
            }
            _ => {
                return cx.err(
                    line,
                    format!("{what}: needs a `rate` (e.g. \"20mbit\") or a `trace` file"),
                )
            }
        };
        let Some(delay_us) = self.delay_us else {
            return cx.err(
                line,
                format!("{what}: needs a one-way `delay` (e.g. \"20ms\")"),
            );
        };
        let loss = match (self.loss_burst, self.gilbert) {
            (Some(_), Some((l, _))) => {
                return cx.err(l, format!("{what}: `burst_loss` or `loss_burst`, not both"))
            }
            (Some((n, _)), None) if n > 1.0 => Loss {
                random: 0.0,
                burst: Some(Gilbert::from_mean(self.loss, n)),
            },
            (_, g) => Loss {
                random: self.loss,
                burst: g.map(|g| g.1),
            },
        };
        Ok(DirSpec {
            rate,
            delay_us,
            jitter_us: self.jitter_us,
            reorder: self.reorder,
            loss,
            corrupt: self.corrupt,
            queue: self.queue.unwrap_or_default(),
            outages: self.outages,
        })
    }
}

/// What generated outage schedules (`handover`, `failed_handover`) take from the scenario.
struct Sched {
    duration_us: u64,
    seed: u64,
}

/// FNV-1a of a link name: its schedules' seed, with the scenario's.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    })
}

fn parse_kind(s: &str) -> Result<OutageKind, String> {
    match s {
        "blackhole" => Ok(OutageKind::Blackhole),
        "stall" => Ok(OutageKind::Stall),
        _ => Err(format!("is \"blackhole\" or \"stall\", not \"{s}\"")),
    }
}

/// A seeded outage schedule over the scenario's duration:
/// `handover = "10-30s 30-80ms [stall]"` (one after each random interval, of a random length), or
/// `failed_handover = "60s 0.5-3s [blackhole]"` (one at a random time in each period).
fn generate(
    key: &str,
    v: &str,
    default_kind: OutageKind,
    sched: &Sched,
) -> Result<Vec<Outage>, String> {
    let w: Vec<&str> = v.split_whitespace().collect();
    let (a, b, kind) = match w.as_slice() {
        [a, b] => (*a, *b, default_kind),
        [a, b, k] => (*a, *b, parse_kind(k)?),
        _ if key == "handover" => return Err("\"MIN-MAXs MIN-MAXms [stall|blackhole]\"".into()),
        _ => return Err("\"PERIOD MIN-MAXs [blackhole|stall]\"".into()),
    };
    let mut rng = SplitMix::new(sched.seed);
    let end = sched.duration_us;
    let mut out = Vec::new();
    if key == "handover" {
        let (iv, gap) = (parse_range(a)?, parse_range(b)?);
        let mut t = 0u64;
        loop {
            t += rng.range(iv.0, iv.1);
            if t >= end {
                break;
            }
            let d = rng.range(gap.0, gap.1);
            out.push(Outage::new(kind, t, t + d));
        }
    } else {
        let (per, dur) = (parse_duration(a)?.max(1_000), parse_range(b)?);
        let mut w0 = 0;
        while w0 < end {
            let d = rng.range(dur.0, dur.1);
            let start = w0 + rng.range(0, per.saturating_sub(d));
            out.push(Outage::new(kind, start, start + d));
            w0 += per;
        }
    }
    Ok(out)
}

/// `10-30s`, `30-80ms`, `0.5-3s` (one unit after the range) -> µs.
fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let unit_at = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or(format!("`{s}` needs a unit"))?;
    let (nums, unit) = s.split_at(unit_at);
    let (a, b) = nums.split_once('-').unwrap_or((nums, nums));
    let (a, b) = (
        parse_duration(&format!("{a}{unit}"))?,
        parse_duration(&format!("{b}{unit}"))?,
    );
    if b < a {
        return Err(format!("`{s}` is an empty range"));
    }
    Ok((a, b))
}

fn split_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let idx = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, u) = s.split_at(idx);
    let n: f64 = n.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n, u.trim().to_ascii_lowercase()))
}

/// "20ms", "1.5s", "500us", "2min" -> µs.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration like \"20ms\", \"1.5s\" or \"500us\"");
    scaled(s, &[("us", 1.0), ("ms", 1e3), ("s", 1e6), ("min", 60e6)]).ok_or_else(bad)
}

/// "64kB", "1500B", "1MB" -> bytes (k = 1000).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is neither a time (\"100ms\") nor a size (\"64kB\", \"1500B\")");
    scaled(s, &[("b", 1.0), ("kb", 1e3), ("mb", 1e6)]).ok_or_else(bad)
}

/// A number and one of `units` (lower case, with its multiplier), as `split_unit` reads them:
/// the number times the multiplier, rounded.
fn scaled(s: &str, units: &[(&str, f64)]) -> Option<u64> {
    let (n, unit) = split_unit(s)?;
    let &(_, mul) = units.iter().find(|(u, _)| *u == unit)?;
    Some((n * mul).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
seed = 7
duration = "5s"
[[link]]
name = "a"
rate = "20mbit"
delay = "20ms"
loss = "0.5%"
outages = [{ at = "1s", for = "300ms" }]
[link.down]
rate = "5mbit"
[[link]]
name = "b"
rate = "10mbit"
delay = "40ms"
queue = "64kB"
burst_loss = { enter = "1%", leave = "25%" }
[[class]]
name = "voice"
mode = "redundant"
priority = 2
[[traffic]]
kind = "bulk"
user = 2
flows = 4
[[traffic]]
kind = "realtime"
class = "voice"
rate = "64kbit"
size = 160
"#;

    #[test]
    fn reads_a_full_scenario() {
        let s = Scenario::parse(GOOD, "t.toml", None).unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.duration_us, 5_000_000);
        assert_eq!(s.links.len(), 2);
        let a = &s.links[0];
        assert!(matches!(a.up.rate, Rate::Fixed(20_000_000)));
        assert!(matches!(a.down.rate, Rate::Fixed(5_000_000)));
        assert_eq!(a.down.delay_us, 20_000, "down inherits the link's delay");
        assert_eq!(a.up.loss.random, 0.005);
        assert_eq!(a.up.outages[0].end_us, 1_300_000);
        assert_eq!(s.links[1].up.queue, QueueLimit::Bytes(64_000));
        assert!(s.links[1].up.loss.burst.is_some());
        assert_eq!(s.classes[1].mode, Mode::Redundant);
        assert_eq!(s.traffic[1].class, 1);
        assert_eq!(s.traffic[1].interval_us(), Some(20_000));
        assert_eq!(s.traffic[0].flows, 4);
    }

    fn error_of(text: &str) -> String {
        Scenario::parse(text, "x.toml", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        // (file text, where, what the message says)
        let cases: [(&str, &str, &[&str]); 7] = [
            ("[[link]]\nrate = \"20mbit\"\ndelay = 20\n", "x.toml:3:", &["delay", "unit"]),
            (
                "[[link]]\nrate = \"20mbit\"\ndelay = \"20ms\"\ndelai = \"1ms\"\n",
                "x.toml:4:",
                &["unknown key `delai`"],
            ),
            ("[[link]]\nrate = \"fast\"\n", "x.toml:2:", &["rate"]),
            (
                "[[link]]\nrate = \"1mbit\"\ndelay = \"1ms\"\n[[traffic]]\nkind = \"bulk\"\nclass = \"nope\"\n",
                "x.toml:6:",
                &["no class named `nope`"],
            ),
            ("[[link]]\nrate = \"1mbit\"\n", "x.toml:1:", &["delay"]),
            ("[[link]]\ntrace = \"no/such/trace\"\n", "x.toml:2:", &["not found"]),
            ("[[link]]\nloss = \"7\"\n", "x.toml:2:", &["percentage"]),
        ];
        for (text, at, parts) in cases {
            let e = error_of(text);
            assert!(e.starts_with(at), "{at}: {e}");
            for p in parts {
                assert!(e.contains(p), "{p}: {e}");
            }
        }
    }

    fn trace_name(d: &DirSpec) -> &str {
        match &d.rate {
            Rate::Trace { trace, .. } => &trace.name,
            _ => "fixed",
        }
    }

    const TWO_GEN: &str =
        "seed = 7\n[[link]]\ntrace = \"gen:lte-driving?seconds=20\"\ndelay = \"10ms\"\n\
        [[link]]\ntrace = \"gen:lte-driving?seconds=20\"\ndelay = \"10ms\"\n\
        [link.down]\ntrace = \"gen:hsr/up?seed=3&seconds=10\"\n[[traffic]]\nkind = \"bulk\"\n";

    #[test]
    fn generated_traces_take_direction_seed_and_modem_from_the_scenario() {
        let s = Scenario::parse(TWO_GEN, "x.toml", None).unwrap();
        let (a, b) = (&s.links[0], &s.links[1]);
        assert_eq!(
            trace_name(&a.up),
            "gen:lte-driving/up?seed=7&modem=0&seconds=20"
        );
        assert_eq!(
            trace_name(&a.down),
            "gen:lte-driving/down?seed=7&modem=0&seconds=20"
        );
        assert_eq!(
            trace_name(&b.up),
            "gen:lte-driving/up?seed=7&modem=1&seconds=20"
        );
        assert_eq!(trace_name(&b.down), "gen:hsr/up?seed=3&modem=1&seconds=10");
        assert!(
            (a.up.mean_bps() / 1.9e6 - 1.0).abs() < 0.02,
            "{}",
            a.up.mean_bps()
        );
        // `--seed` moves the generated traces that do not name their own seed.
        let o = LoadOpts {
            seed: Some(9),
            ..LoadOpts::default()
        };
        let s = Scenario::parse_with(TWO_GEN, "x.toml", None, &o).unwrap();
        assert_eq!(s.seed, 9);
        assert_eq!(
            trace_name(&s.links[0].up),
            "gen:lte-driving/up?seed=9&modem=0&seconds=20"
        );
        assert_eq!(
            trace_name(&s.links[1].down),
            "gen:hsr/up?seed=3&modem=1&seconds=10"
        );
        let e = error_of("[[link]]\ndelay = \"1ms\"\ntrace = \"gen:lte-fast\"\n");
        assert!(
            e.starts_with("x.toml:3:") && e.contains("no preset `lte-fast`") && e.contains("hsr"),
            "{e}"
        );
    }

    #[test]
    fn recorded_traces_are_found_in_the_traces_folder_then_beside() {
        let root = std::env::temp_dir().join(format!("braid-sim-rec-{}", std::process::id()));
        let (traces, beside) = (root.join("traces"), root.join("scen"));
        std::fs::create_dir_all(&traces).unwrap();
        std::fs::create_dir_all(&beside).unwrap();
        std::fs::write(traces.join("car.up"), "1\n").unwrap();
        std::fs::write(traces.join("car.down"), "1\n1\n").unwrap();
        std::fs::write(beside.join("flat"), "2\n").unwrap();
        let text = "[[link]]\ntrace = \"car\"\ndelay = \"1ms\"\n[[link]]\ntrace = \"flat\"\n\
                    delay = \"1ms\"\n[[traffic]]\nkind = \"bulk\"\n";
        let o = LoadOpts {
            traces: Some(traces.clone()),
            seed: None,
        };
        let s = Scenario::parse_with(text, "x.toml", Some(&beside), &o).unwrap();
        let got = (
            s.links[0].up.mean_bps(),
            s.links[0].down.mean_bps(),
            s.links[1].up.mean_bps(),
        );
        // Without the traces folder, `car` is nowhere: the error says where it looked and how to
        // get recorded traces.
        let e = Scenario::parse(text, "x.toml", Some(&beside))
            .unwrap_err()
            .to_string();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(got, (12e6, 24e6, 6e6));
        assert!(e.starts_with("x.toml:2:"), "{e}");
        for part in [
            "trace `car` not found",
            "car.up",
            "BRAID_TRACES is not set",
            "mahimahi",
            "gen:",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
    }

    #[test]
    fn units() {
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration("250us"), Ok(250));
        assert!(parse_duration("20").is_err());
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_rate("512kbit"), Ok(512_000));
        assert_eq!(parse_bytes("64kB"), Ok(64_000));
    }
}
