//! Lab scenarios: the links of a scenario file as the lab emulates them.
//!
//! The lab reads the simulator's scenario format with its parser ([`crate::sim::scenario`]):
//! `scenarios/lab/*.toml` (lab-only) and `scenarios/*.toml` (the simulator's, which the lab runs
//! too: it takes their links and outages; classes, roles and traffic are the simulator's, the
//! lab brings its own workloads). `braid lab run NAME` looks in `scenarios/lab/` first, then in
//! `scenarios/`; `braid sim NAME` the other way round. The keys the lab adds to a file:
//!
//! ```toml
//! best = "wan0"      # the link of the `direct` baseline (default: highest mean down rate)
//! edges = 1          # edges, each with a copy of the links, all on one LAN subnet (1 to 4)
//! clients = 1        # client namespaces per edge (1 to 16)
//! outages = [{ at = "40s", for = "5s", kind = "blackhole" }]  # every link at once (a tunnel)
//!
//! [[link]]
//! rate = "unlimited"                          # no bottleneck (also queue = "unlimited")
//! loss = "0.5%"
//! loss_burst = 3                              # mean burst length: bursty (Gilbert-Elliott)
//! handover = "10-30s 30-80ms stall"           # random interval, random gap (seeded)
//! failed_handover = "60s 0.5-3s blackhole"    # one per period at a random time
//! outages = [{ at = "3s", for = "2s", every = "5s" }]
//! ```

use std::path::{Path, PathBuf};

use super::emu::Rate;
use super::link::LinkSpec;
use crate::sim::scenario::{self as sim, LoadOpts, LAB_DIRS};

/// The one duration parser of scenario files (`20ms`, `1.5s`, `500us`, `2min`) -> µs.
pub(crate) use crate::sim::scenario::parse_duration as parse_time_us;

/// A scenario as the lab runs it.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    /// The file's name without `.toml`.
    pub name: String,
    pub(crate) description: String,
    pub(crate) duration_ms: u64,
    pub(crate) seed: u64,
    pub links: Vec<LinkSpec>,
    /// The link of the `direct` baseline.
    pub(crate) best: usize,
    /// Edges (each gets a copy of the links; all share the LAN subnet), default 1.
    pub(crate) edges: usize,
    /// Clients per edge, default 1.
    pub(crate) clients: usize,
}

/// Find a scenario by path or by name: `scenarios/lab/NAME.toml`, then `scenarios/NAME.toml`
/// ([`sim::find_file`], as `braid sim` finds its own).
pub(crate) fn find(name: &str) -> Result<PathBuf, String> {
    sim::find_file(name, &LAB_DIRS)
}

/// Names of the scenarios shipped in `scenarios/lab/` and `scenarios/`.
pub(crate) fn shipped() -> Vec<String> {
    sim::shipped_in(&LAB_DIRS)
}

/// [`load`] with recorded traces read from `traces` (then beside the file).
pub(crate) fn load_with(path: &Path, traces: Option<&Path>) -> Result<Scenario, String> {
    let o = LoadOpts {
        traces: traces.map(Path::to_path_buf),
        seed: None,
    };
    let sc = sim::Scenario::load_with(path, &o).map_err(|e| e.to_string())?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    from_sim(sc, name).map_err(|e| format!("{}: {e}", path.display()))
}

/// The lab's view of a parsed scenario.
fn from_sim(sc: sim::Scenario, name: String) -> Result<Scenario, String> {
    let mut links = Vec::new();
    for l in sc.links {
        if l.up.corrupt > 0.0 || l.down.corrupt > 0.0 {
            return Err(format!(
                "link `{}`: `corrupt` is simulated only (the lab's emulator does not flip bits)",
                l.name
            ));
        }
        let (mut up, mut down) = (l.up, l.down);
        // By start: where windows overlap, the earliest decides.
        up.outages.sort_by_key(|o| o.start_us);
        down.outages.sort_by_key(|o| o.start_us);
        links.push(LinkSpec {
            name: l.name,
            up,
            down,
        });
    }
    let down_bps = |l: &LinkSpec| match l.down.rate {
        Rate::Unlimited => f64::INFINITY,
        _ => l.down.mean_bps(),
    };
    let best = match sc.best {
        Some(id) => usize::from(id),
        None => {
            let mut bi = 0;
            for (i, l) in links.iter().enumerate() {
                if down_bps(l) > down_bps(&links[bi]) {
                    bi = i;
                }
            }
            bi
        }
    };
    Ok(Scenario {
        name,
        description: sc.description,
        duration_ms: sc.duration_us / 1000,
        seed: sc.seed,
        links,
        best,
        edges: sc.edges,
        clients: sc.clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linkmodel::{Gilbert, Loss, OutageKind};

    /// Parse scenario text (`file` names it in errors; recorded traces in `traces`, then `beside`).
    fn parse(
        file: &str,
        text: &str,
        traces: Option<&Path>,
        beside: Option<&Path>,
    ) -> Result<Scenario, String> {
        let o = LoadOpts {
            traces: traces.map(Path::to_path_buf),
            seed: None,
        };
        let sc = sim::Scenario::parse_with(text, file, beside, &o).map_err(|e| e.to_string())?;
        from_sim(sc, file.trim_end_matches(".toml").to_string())
    }

    #[test]
    fn links_directions_lab_keys_and_shared_outages() {
        let s = parse(
            "t",
            "description = \"two links\"\nduration = \"30s\"\nbest = \"b\"\nedges = 2\n\
             outages = [{ at = \"20s\", for = \"5s\", kind = \"stall\" }]\n\
             [[link]]\nname = \"a\"\nrate = \"20mbit\"\ndelay = \"20ms\"\n\
             outages = [{ at = \"10s\", for = \"3s\" }]\nup = { rate = \"5mbit\" }\n\
             [[link]]\nname = \"b\"\nrate = \"10mbit\"\ndelay = \"1ms\"\nloss = \"1%\"\nloss_burst = 3\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.description, "two links");
        assert_eq!(s.duration_ms, 30_000);
        assert_eq!((s.best, s.edges, s.clients), (1, 2, 1));
        assert_eq!(s.links[0].up.rate.mean_bps(), Some(5e6));
        assert_eq!(s.links[0].down.rate.mean_bps(), Some(20e6));
        assert_eq!(s.links[0].up.delay_us, 20_000);
        // The link's own outage, then the shared one; both directions.
        for d in [&s.links[0].up, &s.links[0].down] {
            let o: Vec<_> = d.outages.iter().map(|o| (o.start_us, o.kind)).collect();
            assert_eq!(
                o,
                [
                    (10_000_000, OutageKind::Blackhole),
                    (20_000_000, OutageKind::Stall)
                ]
            );
        }
        assert_eq!(s.links[1].down.outages.len(), 1);
        assert_eq!(
            s.links[1].down.loss,
            Loss {
                random: 0.0,
                burst: Some(Gilbert::from_mean(0.01, 3.0))
            }
        );
        // Without `best`: the highest mean down rate.
        let s = parse(
            "t",
            "[[link]]\nrate = \"1mbit\"\ndelay = \"1ms\"\n[[link]]\nrate = \"unlimited\"\n\
             delay = \"1ms\"\nqueue = \"unlimited\"\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.best, 1);
        assert!(matches!(s.links[1].up.rate, Rate::Unlimited));
        assert_eq!(s.links[1].up.queue_limit_bytes(), None);
    }

    #[test]
    fn errors_name_the_line_and_refuse_what_the_lab_cannot_do() {
        let e = parse("t", "[[link]]\nrate = \"fast\"\n", None, None).unwrap_err();
        assert!(e.starts_with("t:2:") && e.contains("rate"), "{e}");
        let e = parse("t", "[[link]]\nbogus = 1\n", None, None).unwrap_err();
        assert!(e.starts_with("t:2:") && e.contains("unknown key"), "{e}");
        let e = parse(
            "t",
            "[[link]]\nrate = \"1mbit\"\ndelay = \"1ms\"\ncorrupt = \"1%\"\n",
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("simulated only"), "{e}");
        let e = parse(
            "t",
            "best = \"x\"\n[[link]]\nrate = \"1mbit\"\ndelay = \"1ms\"\n",
            None,
            None,
        )
        .unwrap_err();
        assert!(
            e.starts_with("t:1:") && e.contains("no link named `x`"),
            "{e}"
        );
    }

    #[test]
    fn generated_schedules_are_seeded_bounded_and_repeat() {
        let text = "duration = \"120s\"\nseed = 5\n[[link]]\nrate = \"10mbit\"\ndelay = \"1ms\"\n\
                    handover = \"10-30s 30-80ms\"\nfailed_handover = \"60s 0.5-3s\"\n\
                    [[link]]\nrate = \"10mbit\"\ndelay = \"1ms\"\n\
                    outages = [{ at = \"3s\", for = \"2s\", every = \"50s\" }]\n";
        let a = parse("t", text, None, None).unwrap();
        let b = parse("t", text, None, None).unwrap();
        assert_eq!(a.links[0].up.outages, b.links[0].up.outages);
        assert_eq!(a.links[0].up.outages, a.links[0].down.outages);
        let o = &a.links[0].up.outages;
        let fails = o.iter().filter(|o| o.kind == OutageKind::Blackhole).count();
        assert_eq!(fails, 2);
        assert!(o.iter().all(|o| o.kind == OutageKind::Blackhole
            || (30_000..=80_000).contains(&(o.end_us - o.start_us))));
        let hos = o.len() - fails;
        assert!((4..=12).contains(&hos), "{hos}");
        let starts: Vec<u64> = a.links[1].up.outages.iter().map(|o| o.start_us).collect();
        assert_eq!(starts, [3_000_000, 53_000_000, 103_000_000]);
        // Another seed, another schedule.
        let c = parse("t", &text.replace("seed = 5", "seed = 6"), None, None).unwrap();
        assert_ne!(a.links[0].up.outages, c.links[0].up.outages);
    }

    #[test]
    fn shipped_scenarios_parse_without_recorded_traces() {
        let names = shipped();
        assert!(names.len() >= 20, "{names:?}");
        for name in [
            "hetero", "lte", "hsr", "flap", "demo", "maxrate", "hsr-pair",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}: {names:?}");
        }
        for name in names {
            let p = find(&name).unwrap();
            load_with(&p, None).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
