//! `braid trace gen|stats|list`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{gen_name, presets, Context, Dir, Params, Spec, Stats, DEFAULT_SECONDS};

const HELP: &str = "\
braid trace - generated and recorded link traces (Mahimahi format)

USAGE:
    braid trace gen PRESET[/up|/down] [--seed N] [--modem M] [--seconds S] [--out FILE]
    braid trace stats TRACE... [--traces DIR]
    braid trace list

gen     writes a generated trace of a cellular link: to FILE with --out, else to standard
        output. Without /up or /down it writes both directions, FILE.up and FILE.down (the
        names a lab scenario's `trace = FILE` reads). Defaults: seed 1, modem 0, 120 seconds.
        The modems of one train share its tunnels: give them the same --seed and --modem 0, 1..
        PRESET may also be a scenario's gen: value (gen:hsr/up?seed=3&modem=1).
stats   prints each trace's length, mean rate, the 10th/50th/90th percentiles of its rate in
        100 ms bins (Mbit/s), the share of time in dead spells (100 ms or more without a
        delivery opportunity), how many dead spells last 1 s or more, the longest one (ms) and
        how alike the rate is 1 s apart (autocorrelation). TRACE is a file (also looked up in
        --traces DIR or $BRAID_TRACES) or a gen: trace (both directions without /up or /down).
list    prints every preset, what it stands for and its statistics (seed 1).

PRESETS:
    lte-good  lte-driving  umts  hsr      the model and its figures: src/trace/model.rs

A trace has one line per 1500-byte delivery opportunity, the time in ms from its start; it
repeats with the period of its last time stamp. Scenarios name traces the same way:
trace = \"gen:lte-driving\" (sim) or trace = gen:lte-driving (lab); see braid sim --help.
Recorded traces of real networks: the traces/ folder of the Mahimahi project
(github.com/ravinet/mahimahi); point BRAID_TRACES at a folder of them.

EXAMPLES:
    braid trace gen hsr --seed 3 --out /tmp/hsr          # /tmp/hsr.up and /tmp/hsr.down
    braid trace gen hsr --seed 3 --modem 1 --out /tmp/hsr2   # the second modem, same tunnels
    braid trace gen lte-driving/up --seconds 60 > car.up
    braid trace stats /tmp/hsr.up 'gen:lte-good?seed=2'
    BRAID_TRACES=~/mahimahi/traces braid trace stats TMobile-LTE-short.up
";

/// `braid trace ...`.
pub fn cli_main(args: Vec<OsString>) -> ExitCode {
    match cli(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("braid trace: {e}");
            ExitCode::from(2)
        }
    }
}

#[derive(Default)]
struct Opts {
    pos: Vec<String>,
    seed: Option<u64>,
    modem: Option<u32>,
    seconds: Option<u32>,
    out: Option<PathBuf>,
    traces: Option<PathBuf>,
}

fn parse_opts(args: Vec<OsString>) -> Result<Option<Opts>, String> {
    use crate::cli::opt_value;
    use lexopt::prelude::*;
    let mut o = Opts::default();
    let mut p = lexopt::Parser::from_args(args);
    let num = |p: &mut lexopt::Parser, what: &str, max: u64| -> Result<u64, String> {
        let v = opt_value(p)?;
        let v = v.to_string_lossy();
        v.parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("--{what}: `{v}` is not a number from 0 to {max}"))
    };
    while let Some(a) = p.next().map_err(|e| e.to_string())? {
        match a {
            Short('h') | Long("help") => return Ok(None),
            Long("seed") => o.seed = Some(num(&mut p, "seed", u64::MAX)?),
            Long("modem") => o.modem = Some(num(&mut p, "modem", 255)? as u32),
            Long("seconds") => {
                let s = num(&mut p, "seconds", u64::from(super::MAX_SECONDS))? as u32;
                if s == 0 {
                    return Err("--seconds: at least 1".into());
                }
                o.seconds = Some(s);
            }
            Long("out") => o.out = Some(opt_value(&mut p)?.into()),
            Long("traces") => o.traces = Some(opt_value(&mut p)?.into()),
            Value(v) => o.pos.push(v.string().map_err(|e| e.to_string())?),
            _ => return Err(format!("{} (see braid trace --help)", a.unexpected())),
        }
    }
    Ok(Some(o))
}

fn cli(args: Vec<OsString>) -> Result<(), String> {
    let mut args = args.into_iter();
    let Some(cmd) = args.next() else {
        eprint!("{HELP}");
        return Err("which command? gen, stats or list".into());
    };
    let Some(o) = parse_opts(args.collect())? else {
        print!("{HELP}");
        return Ok(());
    };
    match cmd.to_str().unwrap_or("") {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(())
        }
        "gen" => gen(&o),
        "stats" => stats(&o),
        "list" => {
            let mut out = String::new();
            for p in presets() {
                out.push_str(&format!("{}: {}\n", p.name, p.about));
            }
            out.push('\n');
            out.push_str(&Stats::header());
            out.push('\n');
            for p in presets() {
                for dir in [Dir::Up, Dir::Down] {
                    let params = Params {
                        dir,
                        seed: 1,
                        modem: 0,
                        seconds: DEFAULT_SECONDS,
                    };
                    let s = Stats::of(&p.generate(&params));
                    out.push_str(&s.row(&format!("gen:{}/{}", p.name, dir.name())));
                    out.push('\n');
                }
            }
            write_stdout(&out)
        }
        other => Err(format!(
            "unknown command `{other}` (gen, stats or list; see braid trace --help)"
        )),
    }
}

fn gen(o: &Opts) -> Result<(), String> {
    let [what] = o.pos.as_slice() else {
        return Err(
            "gen: name one preset, e.g. braid trace gen lte-driving/up (see braid trace list)"
                .into(),
        );
    };
    let spec = if what.starts_with("gen:") {
        what.clone()
    } else {
        format!("gen:{what}")
    };
    let Spec::Gen(mut g) = Spec::parse(&spec)? else {
        unreachable!("a gen: spec parses as one");
    };
    g.seed = o.seed.or(g.seed);
    g.modem = o.modem.or(g.modem);
    g.seconds = o.seconds.or(g.seconds);
    let cx = Context {
        seed: 1,
        ..Context::default()
    };
    let Some(out) = &o.out else {
        if g.dir.is_none() {
            return Err(format!(
                "gen: which direction? {0}/up or {0}/down on standard output, or --out NAME for NAME.up and NAME.down",
                g.preset.name
            ));
        }
        let p = g.params(Dir::Up, &cx);
        return write_stdout(&super::to_mahimahi(&g.preset.generate(&p)));
    };
    let dirs: Vec<(Dir, PathBuf)> = match g.dir {
        Some(d) => vec![(d, out.clone())],
        None => [Dir::Up, Dir::Down]
            .into_iter()
            .map(|d| {
                let mut f = out.clone().into_os_string();
                f.push(format!(".{}", d.name()));
                (d, PathBuf::from(f))
            })
            .collect(),
    };
    for (d, file) in dirs {
        let p = g.params(d, &cx);
        let ms = g.preset.generate(&p);
        std::fs::write(&file, super::to_mahimahi(&ms))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let s = Stats::of(&ms);
        eprintln!(
            "{}: {} ({:.2} Mbit/s mean, {:.1} % dead)",
            file.display(),
            gen_name(g.preset, &p),
            s.mean_mbit,
            s.dead_share * 100.0
        );
    }
    Ok(())
}

fn stats(o: &Opts) -> Result<(), String> {
    if o.pos.is_empty() {
        return Err("stats: which trace? a file or a gen: trace (see braid trace --help)".into());
    }
    let cx = Context {
        traces: o.traces.clone().or_else(super::traces_from_env),
        beside: Some(PathBuf::from(".")),
        seed: 1,
        modem: 0,
    };
    let mut out = Stats::header();
    out.push('\n');
    for t in &o.pos {
        let dirs = match Spec::parse(t)? {
            Spec::Gen(g) if g.dir.is_none() => vec![Dir::Up, Dir::Down],
            _ => vec![Dir::Up],
        };
        for d in dirs {
            let l = super::load(t, d, false, &cx)?;
            let name = if l.name.starts_with("gen:") {
                l.name.clone()
            } else {
                t.clone()
            };
            out.push_str(&Stats::of(&l.ms).row(&name));
            out.push('\n');
        }
    }
    write_stdout(&out)
}

/// Write to standard output; a closed pipe (`| head`) is not an error.
fn write_stdout(s: &str) -> Result<(), String> {
    let mut w = std::io::stdout().lock();
    match w.write_all(s.as_bytes()).and_then(|_| w.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_names_every_preset() {
        for p in super::presets() {
            assert!(super::HELP.contains(p.name), "{}", p.name);
        }
    }
}
