//! Link traces in the Mahimahi format, generated from a model of a cellular link or recorded.
//!
//! A Mahimahi trace has one line per 1500-byte delivery opportunity, the time in milliseconds
//! from its start (several in one millisecond repeat the time); it repeats with a period equal
//! to its last time stamp. The simulator ([`crate::sim`]) and the lab ([`crate::lab`]) replay
//! them, and name them with one syntax, in `scenarios/*.toml` and `scenarios/lab/*.toml` alike:
//!
//! ```text
//! trace = gen:PRESET[/up|/down][?seed=N&modem=M&seconds=S]   generated (model::presets)
//! trace = NAME                                                a recorded file
//! ```
//!
//! - `gen:` traces come from [`model`]: a seeded model of a cellular link (a log-normal rate that
//!   wanders within a round trip, dead spells, handovers, tunnels shared by the modems of one
//!   train). `seed` defaults to the scenario's seed, `modem` to the link's position (0, 1, ..),
//!   so two links of one scenario are two modems in the same train; `seconds` (the period)
//!   defaults to [`DEFAULT_SECONDS`]. Without `/up` or `/down`, each direction of the link gets
//!   its own. Nothing outside the repository is needed.
//! - A recorded `NAME` is an absolute path, or is looked up in the folder `$BRAID_TRACES` (or the
//!   command's `--traces DIR`) names and then beside the scenario file. Given for both directions
//!   of a link, `NAME.up` and `NAME.down` are preferred to `NAME`. A missing file is an error
//!   that names where it looked and how to get the public traces (see [`RECORDED_HINT`]).
//!
//! [`replay`] holds the one [`Trace`] type the simulator and the lab replay.
//! [`stats`] measures a trace (mean, percentiles of the 100 ms rate, dead spells, outages);
//! [`cli`] is `braid trace gen|stats|list`.
#![forbid(unsafe_code)]

pub mod cli;
pub(crate) mod model;
pub(crate) mod replay;
pub(crate) mod stats;

use std::path::{Path, PathBuf};

pub use model::{preset, presets, Dir, Params, Preset};
pub use replay::{Trace, TRACE_MTU};
pub(crate) use stats::Stats;

/// The period of a generated trace when its spec does not say (`seconds=`).
pub(crate) const DEFAULT_SECONDS: u32 = 120;
/// The longest generated trace, seconds.
pub(crate) const MAX_SECONDS: u32 = 3600;
/// The variable that names the folder of recorded traces.
pub(crate) const ENV: &str = "BRAID_TRACES";
/// Where recorded traces come from, for error messages and help texts.
pub(crate) const RECORDED_HINT: &str =
    "recorded traces are not part of Braid: point BRAID_TRACES (or \
--traces DIR) at a folder of Mahimahi traces, such as the traces/ folder of the Mahimahi project \
(github.com/ravinet/mahimahi), or use a generated trace: gen:lte-good, gen:lte-driving, gen:umts, \
gen:hsr (braid trace list)";

/// What a `trace` value names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Spec {
    Gen(GenSpec),
    /// A recorded trace file, as written.
    File(String),
}

/// A `gen:` trace as written; what it leaves out comes from the scenario ([`Context`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GenSpec {
    preset: &'static Preset,
    dir: Option<Dir>,
    seed: Option<u64>,
    modem: Option<u32>,
    seconds: Option<u32>,
}

impl Spec {
    /// Read a `trace` value: `gen:PRESET[/DIR][?key=value&..]` or a file name.
    pub(crate) fn parse(s: &str) -> Result<Spec, String> {
        let s = s.trim();
        let Some(g) = s.strip_prefix("gen:") else {
            if s.is_empty() {
                return Err("empty trace name".into());
            }
            return Ok(Spec::File(s.to_string()));
        };
        let (head, query) = g.split_once('?').unwrap_or((g, ""));
        let (name, dir) = match head.split_once('/') {
            Some((n, d)) => (
                n,
                Some(
                    Dir::parse(d)
                        .ok_or_else(|| format!("`{s}`: direction `{d}` is neither up nor down"))?,
                ),
            ),
            None => (head, None),
        };
        let preset = preset(name).ok_or_else(|| {
            format!(
                "`{s}`: no preset `{name}` (presets: {})",
                model::preset_names()
            )
        })?;
        let mut spec = GenSpec {
            preset,
            dir,
            seed: None,
            modem: None,
            seconds: None,
        };
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("`{s}`: `{kv}` is not key=value"))?;
            let num = |max: u64| -> Result<u64, String> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| format!("`{s}`: {k} must be a number from 0 to {max}"))
            };
            match k {
                "seed" => spec.seed = Some(num(u64::MAX)?),
                "modem" => spec.modem = Some(num(255)? as u32),
                "seconds" => {
                    let n = num(u64::from(MAX_SECONDS))? as u32;
                    if n == 0 {
                        return Err(format!("`{s}`: seconds must be at least 1"));
                    }
                    spec.seconds = Some(n);
                }
                _ => return Err(format!("`{s}`: unknown key `{k}` (seed, modem, seconds)")),
            }
        }
        Ok(Spec::Gen(spec))
    }
}

impl GenSpec {
    /// The generator's parameters, with the scenario's defaults for what the spec leaves out.
    pub(crate) fn params(&self, dir: Dir, cx: &Context) -> Params {
        Params {
            dir: self.dir.unwrap_or(dir),
            seed: self.seed.unwrap_or(cx.seed),
            modem: self.modem.unwrap_or(cx.modem),
            seconds: self.seconds.unwrap_or(DEFAULT_SECONDS),
        }
    }
}

/// The full name of a generated trace: every parameter spelled out, so that it can be pasted
/// into a scenario or `braid trace gen` and give the same trace.
pub(crate) fn gen_name(preset: &Preset, p: &Params) -> String {
    format!(
        "gen:{}/{}?seed={}&modem={}&seconds={}",
        preset.name,
        p.dir.name(),
        p.seed,
        p.modem,
        p.seconds
    )
}

/// Where a scenario's traces are found and what its `gen:` traces default to.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The folder of recorded traces (`--traces` or `$BRAID_TRACES`).
    pub(crate) traces: Option<PathBuf>,
    /// The scenario file's own folder (searched after `traces`).
    pub(crate) beside: Option<PathBuf>,
    /// The scenario's seed.
    pub(crate) seed: u64,
    /// The link's position in the scenario.
    pub(crate) modem: u32,
}

/// `$BRAID_TRACES`, when it is set and not empty.
pub(crate) fn traces_from_env() -> Option<PathBuf> {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The path of recorded trace `name` in `$BRAID_TRACES`, for tests that compare with recorded
/// traces: `None` when it is not there, after a SKIP line naming the test. The line goes to the
/// process's stderr itself, past the test harness's capture, so that a skip is always seen.
pub fn recorded_for_test(name: &str, test: &str) -> Option<PathBuf> {
    use std::io::Write as _;
    let skip = |why: String| {
        let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
    };
    let Some(dir) = traces_from_env() else {
        skip(format!(
            "{ENV} is not set (needs the recorded trace {name})"
        ));
        return None;
    };
    let p = dir.join(name);
    if p.is_file() {
        Some(p)
    } else {
        skip(format!("{} not found", p.display()));
        None
    }
}

/// A trace, ready to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The file it was read from, or the full `gen:` name.
    pub name: String,
    /// Opportunity times, ms, non-decreasing, not empty.
    pub ms: Vec<u64>,
}

/// Resolve a `trace` value for direction `dir` of a link. `both` is true when the value was
/// given for both directions of the link (`NAME.up` / `NAME.down` are then preferred).
pub fn load(value: &str, dir: Dir, both: bool, cx: &Context) -> Result<Loaded, String> {
    match Spec::parse(value)? {
        Spec::Gen(g) => {
            let p = g.params(dir, cx);
            Ok(Loaded {
                name: gen_name(g.preset, &p),
                ms: g.preset.generate(&p),
            })
        }
        Spec::File(f) => {
            let path = find(&f, dir, both, cx)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("trace {}: {e}", path.display()))?;
            let name = path.display().to_string();
            let ms = parse_mahimahi(&name, &text)?;
            Ok(Loaded { name, ms })
        }
    }
}

/// Where the recorded trace `name` is: an absolute path, or in `cx.traces`, then `cx.beside`.
pub(crate) fn find(name: &str, dir: Dir, both: bool, cx: &Context) -> Result<PathBuf, String> {
    let mut names = Vec::new();
    if both {
        names.push(format!("{name}.{}", dir.name()));
    }
    names.push(name.to_string());
    let p = Path::new(name);
    let folders: Vec<&Path> = if p.is_absolute() {
        vec![Path::new("")]
    } else {
        cx.traces
            .iter()
            .chain(&cx.beside)
            .map(|d| d.as_path())
            .collect()
    };
    let mut tried = Vec::new();
    for d in &folders {
        for n in &names {
            let c = d.join(n);
            if c.is_file() {
                return Ok(c);
            }
            tried.push(c.display().to_string());
        }
    }
    let unset = if cx.traces.is_none() && !p.is_absolute() {
        format!(" ({ENV} is not set)")
    } else {
        String::new()
    };
    Err(format!(
        "trace `{name}` not found (looked for: {}){unset}; {RECORDED_HINT}",
        if tried.is_empty() {
            "nowhere".to_string()
        } else {
            tried.join(", ")
        }
    ))
}

/// Parse the text of a Mahimahi trace: one non-negative integer (ms) per line, non-decreasing,
/// at least one. `name` prefixes errors, which name the line.
pub(crate) fn parse_mahimahi(name: &str, text: &str) -> Result<Vec<u64>, String> {
    let mut ms = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let t: u64 = line
            .parse()
            .map_err(|_| format!("{name}:{}: `{line}` is not a time in ms", i + 1))?;
        if ms.last().is_some_and(|&last| t < last) {
            return Err(format!("{name}:{}: time stamps go backwards", i + 1));
        }
        ms.push(t);
    }
    if ms.is_empty() {
        return Err(format!("{name}: no delivery opportunities"));
    }
    Ok(ms)
}

/// The text of a Mahimahi trace.
pub(crate) fn to_mahimahi(ms: &[u64]) -> String {
    let mut s = String::with_capacity(ms.len() * 7);
    for t in ms {
        s.push_str(&t.to_string());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_specs_parse_and_their_full_name_reads_back() {
        let Spec::Gen(g) = Spec::parse("gen:hsr/up?seed=3&modem=1&seconds=60").unwrap() else {
            panic!("not gen")
        };
        assert_eq!(g.preset.name, "hsr");
        assert_eq!(
            (g.dir, g.seed, g.modem, g.seconds),
            (Some(Dir::Up), Some(3), Some(1), Some(60))
        );
        let cx = Context {
            seed: 9,
            modem: 4,
            ..Context::default()
        };
        let Spec::Gen(bare) = Spec::parse("gen:umts").unwrap() else {
            panic!("not gen")
        };
        let p = bare.params(Dir::Down, &cx);
        assert_eq!(
            p,
            Params {
                dir: Dir::Down,
                seed: 9,
                modem: 4,
                seconds: DEFAULT_SECONDS
            }
        );
        let name = gen_name(bare.preset, &p);
        assert_eq!(name, "gen:umts/down?seed=9&modem=4&seconds=120");
        let Spec::Gen(again) = Spec::parse(&name).unwrap() else {
            panic!("not gen")
        };
        assert_eq!(again.params(Dir::Up, &Context::default()), p);
        assert_eq!(
            Spec::parse(" car.up ").unwrap(),
            Spec::File("car.up".into())
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = |s: &str| Spec::parse(s).unwrap_err();
        assert!(e("gen:lte").contains("lte-good, lte-driving, umts, hsr"));
        assert!(e("gen:hsr/sideways").contains("neither up nor down"));
        assert!(e("gen:hsr?speed=300").contains("unknown key `speed`"));
        assert!(e("gen:hsr?seed").contains("not key=value"));
        assert!(e("gen:hsr?seconds=0").contains("at least 1"));
        assert!(e("gen:hsr?seconds=99999").contains("0 to 3600"));
        assert!(e("gen:hsr?modem=x").contains("modem must be a number"));
        assert!(e("").contains("empty"));
    }

    #[test]
    fn mahimahi_text_both_ways() {
        let ms = parse_mahimahi("t", "1\n1\n\n5\n").unwrap();
        assert_eq!(ms, [1, 1, 5]);
        assert_eq!(parse_mahimahi("t", &to_mahimahi(&ms)).unwrap(), ms);
        assert_eq!(
            parse_mahimahi("t", "1\nx\n").unwrap_err(),
            "t:2: `x` is not a time in ms"
        );
        assert_eq!(
            parse_mahimahi("t", "5\n3\n").unwrap_err(),
            "t:2: time stamps go backwards"
        );
        assert!(parse_mahimahi("t", "\n")
            .unwrap_err()
            .contains("no delivery"));
    }

    #[test]
    fn an_absolute_path_is_taken_as_it_is() {
        let f = std::env::temp_dir().join(format!("braid-trace-abs-{}", std::process::id()));
        std::fs::write(&f, "3\n").unwrap();
        let cx = Context {
            traces: Some(PathBuf::from("/nonexistent")),
            ..Context::default()
        };
        let l = load(f.to_str().unwrap(), Dir::Up, true, &cx);
        std::fs::remove_file(&f).unwrap();
        assert_eq!(l.unwrap().ms, [3]);
        let e = find("/nonexistent/x", Dir::Up, false, &cx).unwrap_err();
        assert!(
            e.contains("looked for: /nonexistent/x)") && !e.contains("is not set"),
            "{e}"
        );
    }
}
