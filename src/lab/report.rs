//! Reports: a terminal table, JSON, a markdown table (bench), and an SVG chart of goodput over
//! time per link and in total (written by hand, no dependency).

use std::fmt::Write as _;

use super::work::{Sample, WorkResult};

/// One link as the scenario describes it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LinkInfo {
    pub(crate) name: String,
    /// Mean rate in the workload's direction, Mbit/s.
    pub(crate) mean_mbps: f64,
}

/// One (scenario, mode, workload) run with its baselines' context.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunRecord {
    pub(crate) scenario: String,
    pub(crate) mode: String,
    pub(crate) workload: String,
    /// Which repetition of the cell this is (0 for the first; `--repeat N` runs 0..N), each
    /// on a fresh topology with fresh daemons.
    #[serde(default)]
    pub(crate) repeat: u32,
    /// The workloads of the session this run was a step of (`--sequence`), in order; empty
    /// for a run on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) sequence: Vec<String>,
    /// Which step of `sequence` this run was (0 for the first).
    #[serde(default)]
    pub(crate) step: u32,
    pub(crate) seed: u64,
    pub(crate) links: Vec<LinkInfo>,
    /// Sum of the links' mean rates in the workload's direction.
    pub(crate) capacity_mbps: f64,
    /// The link `direct` uses.
    pub(crate) best_link: String,
    pub(crate) best_link_mbps: f64,
    /// Goodput as a share of the summed capacity.
    pub(crate) pct_of_capacity: f64,
    /// Caveats of this run (what the mode does not carry, for instance).
    #[serde(default)]
    pub(crate) notes: Vec<String>,
    pub(crate) result: WorkResult,
}

/// The terminal table's columns: heading, width, left-aligned.
const COLUMNS: [(&str, usize, bool); 12] = [
    ("scenario", 13, true),
    ("mode", 9, true),
    // Wide enough for a sequence's step, `2/2 bulk8-down`.
    ("workload", 14, true),
    ("run", 3, false),
    ("goodput", 9, false),
    ("% sum", 7, false),
    ("capacity", 9, false),
    ("gap ms", 8, false),
    ("fails", 6, false),
    ("rr p50/p99 ms (n)", 20, false),
    ("udp loss/late/jit", 18, false),
    ("per link Mbit/s", 0, true),
];

impl RunRecord {
    /// The workload, as a step of its sequence when it was one: `2/2 bulk8-down`.
    pub(crate) fn label(&self) -> String {
        if self.sequence.is_empty() {
            return self.workload.clone();
        }
        format!(
            "{}/{} {}",
            self.step + 1,
            self.sequence.len(),
            self.workload
        )
    }

    /// Each link's mean rate in the workload's direction, `wan0 15.8 wan1 9.6` (IP bytes the
    /// link delivered, after the first seconds, as goodput is counted).
    fn links_cell(&self) -> String {
        self.links
            .iter()
            .zip(&self.result.links_mbps)
            .map(|(l, r)| format!("{} {r:.1}", l.name))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A terminal table of runs.
pub(crate) fn table(records: &[RunRecord]) -> String {
    let mut s = String::new();
    let head: Vec<String> = COLUMNS.iter().map(|c| c.0.to_string()).collect();
    let _ = writeln!(s, "{}", padded(&head));
    for r in records {
        let _ = writeln!(s, "{}", padded(&row_cells(r, false)));
    }
    s
}

/// A terminal table's line: `cells` in [`COLUMNS`]' widths.
fn padded(cells: &[String]) -> String {
    let line: Vec<String> = cells
        .iter()
        .zip(COLUMNS)
        .map(|(c, (_, w, left))| {
            if left {
                format!("{c:<w$}")
            } else {
                format!("{c:>w$}")
            }
        })
        .collect();
    // The last column (each link's rate) is empty for runs that have none.
    line.join(" ").trim_end().to_string()
}

/// One run's cells in column order: the terminal table's, or with `markdown` the markdown
/// table's (which adds the best link's rate).
fn row_cells(r: &RunRecord, markdown: bool) -> Vec<String> {
    let w = &r.result;
    let mut c = vec![
        r.scenario.clone(),
        r.mode.clone(),
        r.label(),
        (r.repeat + 1).to_string(),
        format!("{:.2}", w.goodput_mbps),
        format!(
            "{:.1}{}",
            r.pct_of_capacity,
            if markdown { "" } else { "%" }
        ),
        format!("{:.2}", r.capacity_mbps),
    ];
    if markdown {
        c.push(format!("{:.2}", r.best_link_mbps));
    }
    let (rr, udp) = if markdown {
        let udp = udp_cell(w, |loss, late, jitter| {
            format!("{loss:.2} / {late} / {jitter:.1}")
        });
        (rr_cell(w, " / "), udp)
    } else {
        let udp = udp_cell(w, |loss, late, jitter| {
            format!("{loss:.1}%/{late}/{jitter:.1}")
        });
        (rr_cell(w, "/"), udp)
    };
    c.extend([
        format!("{:.0}", w.max_gap_ms),
        w.flows_failed.to_string(),
        rr,
        udp,
        r.links_cell(),
    ]);
    c
}

/// The request/response p50 and p99 in ms, joined by `sep`, and the sample count; "-" when the
/// run had none.
fn rr_cell(w: &WorkResult, sep: &str) -> String {
    w.rr.as_ref()
        .map(|x| format!("{:.0}{sep}{:.0} ({})", x.p50_ms, x.p99_ms, x.count))
        .unwrap_or_else(|| "-".into())
}

/// Request/response latency per scenario x workload x mode over the repetitions: each run's
/// p99 as min / median / max (the run-to-run spread), and p50 / p90 / p99 of every sample of
/// every run pooled, with the pooled count (a p99 needs a few hundred samples to mean more than
/// the second-worst one). None when no run measured it.
pub(crate) fn rr_summary_markdown(records: &[RunRecord]) -> Option<String> {
    let mut keys: Vec<(&str, String, &str)> = Vec::new();
    for r in records.iter().filter(|r| r.result.rr.is_some()) {
        let k = (r.scenario.as_str(), r.label(), r.mode.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if keys.is_empty() {
        return None;
    }
    let mut s = String::from(
        "| scenario | workload | mode | runs | p99 ms per run | pooled p50 / p90 / p99 ms | \
         pooled p99 request's / answer's way ms | samples |\n|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (sc, wl, mode) in keys {
        let rr: Vec<&crate::lab::work::RrStats> = records
            .iter()
            .filter(|r| r.scenario == sc && r.label() == wl && r.mode == mode)
            .filter_map(|r| r.result.rr.as_ref())
            .collect();
        let per_run = Spread::of(rr.iter().map(|x| x.p99_ms)).map_or("-".into(), |x| x.show(1));
        // In 0.01 ms steps: (whole exchange, request's way, answer's way).
        let hundredths = |ms: f64| (ms * 100.0).round() as u64;
        let mut pooled: [Vec<u64>; 3] = Default::default();
        for x in &rr {
            for (i, &ms) in x.samples_ms.iter().enumerate() {
                let up = x.up_ms.get(i).map_or(0, |&u| hundredths(u));
                let all = hundredths(ms);
                pooled[0].push(all);
                pooled[1].push(up);
                pooled[2].push(all.saturating_sub(up));
            }
        }
        for v in &mut pooled {
            v.sort_unstable();
        }
        let p = |i: usize, q: f64| crate::lab::work::percentile(&pooled[i], q) as f64 / 100.0;
        let (all_cell, way_cell) = if pooled[0].is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.1} / {:.1} / {:.1}", p(0, 0.5), p(0, 0.9), p(0, 0.99)),
                format!("{:.1} / {:.1}", p(1, 0.99), p(2, 0.99)),
            )
        };
        let _ = writeln!(
            s,
            "| {sc} | {wl} | {mode} | {} | {per_run} | {all_cell} | {way_cell} | {} |",
            rr.len(),
            pooled[0].len()
        );
    }
    Some(s)
}

/// The bench's README.md: the goodput summary, request/response latency (each run's p99 and
/// every sample pooled) when any run measured it, and every run.
pub(crate) fn bench_readme(all: &[RunRecord]) -> String {
    let rr = rr_summary_markdown(all).map_or(String::new(), |t| {
        format!(
            "## Request/response\n\nEach run's p99 (min / median / max over the runs) and the \
             percentiles of every run's samples pooled; the request's way is client to server.\n\n\
             {t}\n"
        )
    });
    format!(
        "# braid lab bench\n\nEvery scenario x workload, each mode measured in the same lab run \
         (`make bench`), each run on a fresh topology with fresh daemons, the modes taking \
         turns. Goodput is application bytes after the first {} s; `% of sum` is of the \
         links' summed mean rate in the workload's direction; `max gap` is the longest time no \
         byte arrived.\n\n## Summary\n\nGoodput min / median / max over the runs; \
         `braid / direct` is Braid's goodput over the best single link's in the same \
         repetition (min / median / max of those ratios).\n\n{}\n{rr}## Every run\n\n{}",
        crate::lab::work::OMIT_MS / 1000,
        summary_markdown(all),
        markdown(all)
    )
}

/// The UDP stream of both directions as `write(mean loss %, late packets, mean jitter ms)`;
/// "-" when the run had none.
fn udp_cell(w: &WorkResult, write: impl Fn(f64, u64, f64) -> String) -> String {
    match (&w.udp_up, &w.udp_down) {
        (Some(u), Some(d)) => write(
            (u.loss_pct + d.loss_pct) / 2.0,
            u.late + d.late,
            (u.jitter_ms + d.jitter_ms) / 2.0,
        ),
        _ => "-".into(),
    }
}

/// A markdown table of runs (bench/results/README.md style).
pub(crate) fn markdown(records: &[RunRecord]) -> String {
    let mut s = String::from(
        "| scenario | mode | workload | run | goodput Mbit/s | % of sum | sum Mbit/s | best link Mbit/s | max gap ms | failed flows | rr p50 / p99 ms (n) | udp loss % / late / jitter ms | per link Mbit/s |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in records {
        let _ = writeln!(s, "| {} |", row_cells(r, true).join(" | "));
    }
    s
}

/// Minimum, median and maximum of a set of figures (the median of an even count is the mean
/// of the middle two).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Spread {
    pub(crate) min: f64,
    pub median: f64,
    pub(crate) max: f64,
    n: usize,
}

impl Spread {
    /// None for no figures; NaNs are left out.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            min: v[0],
            median,
            max: v[n - 1],
            n,
        })
    }

    /// "min / median / max" with `prec` decimals (a single figure when there is one run).
    pub fn show(&self, prec: usize) -> String {
        if self.n == 1 {
            return format!("{:.prec$}", self.median);
        }
        format!(
            "{:.prec$} / {:.prec$} / {:.prec$}",
            self.min, self.median, self.max
        )
    }
}

/// One cell of the bench: a scenario x workload, every mode's goodput over its repetitions,
/// and Braid against the best single link (`direct`) of the same repetition.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Cell {
    scenario: String,
    workload: String,
    /// Summed link capacity in the workload's direction (median over the runs), Mbit/s.
    capacity_mbps: f64,
    /// (mode, goodput Mbit/s over the repetitions), modes in the order they first appear.
    modes: Vec<(String, Spread)>,
    /// Braid's goodput over direct's in the same repetition (pairs where both ran).
    braid_vs_direct: Option<Spread>,
    /// Braid's goodput as % of the summed capacity.
    braid_pct: Option<Spread>,
}

/// Groups runs into cells, in the order the cells first appear.
pub(crate) fn cells(records: &[RunRecord]) -> Vec<Cell> {
    let mut keys: Vec<(&str, String)> = Vec::new();
    for r in records {
        let k = (r.scenario.as_str(), r.label());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(sc, wl)| {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| r.scenario == sc && r.label() == wl)
                .collect();
            let mut modes: Vec<(String, Spread)> = Vec::new();
            for r in &runs {
                if modes.iter().any(|(m, _)| *m == r.mode) {
                    continue;
                }
                let g = runs
                    .iter()
                    .filter(|x| x.mode == r.mode)
                    .map(|x| x.result.goodput_mbps);
                if let Some(s) = Spread::of(g) {
                    modes.push((r.mode.clone(), s));
                }
            }
            let of = |mode: &str, rep: u32| {
                runs.iter()
                    .find(|x| x.mode == mode && x.repeat == rep)
                    .map(|x| x.result.goodput_mbps)
            };
            let braid: Vec<&&RunRecord> = runs.iter().filter(|x| x.mode == "braid").collect();
            let ratio = Spread::of(braid.iter().filter_map(|b| {
                let d = of("direct", b.repeat)?;
                (d > 0.0).then(|| b.result.goodput_mbps / d)
            }));
            Cell {
                scenario: sc.to_string(),
                workload: wl,
                capacity_mbps: Spread::of(runs.iter().map(|r| r.capacity_mbps))
                    .map_or(0.0, |s| s.median),
                modes,
                braid_vs_direct: ratio,
                braid_pct: Spread::of(braid.iter().map(|b| b.pct_of_capacity)),
            }
        })
        .collect()
}

/// The bench's summary: a row per scenario x workload, goodput min / median / max over the
/// repetitions for each mode side by side, and Braid against the best single link.
pub(crate) fn summary_markdown(records: &[RunRecord]) -> String {
    let cells = cells(records);
    let mut modes: Vec<&str> = Vec::new();
    for c in &cells {
        for (m, _) in &c.modes {
            if !modes.contains(&m.as_str()) {
                modes.push(m);
            }
        }
    }
    let mut s = String::from("| scenario | workload | runs | sum Mbit/s |");
    for m in &modes {
        let _ = write!(s, " {m} Mbit/s |");
    }
    s.push_str(" braid / direct | braid % of sum |\n|---|---|---:|---:|");
    for _ in &modes {
        s.push_str("---:|");
    }
    s.push_str("---:|---:|\n");
    for c in &cells {
        let runs = c.modes.iter().map(|(_, x)| x.n).max().unwrap_or(0);
        let _ = write!(
            s,
            "| {} | {} | {} | {:.2} |",
            c.scenario, c.workload, runs, c.capacity_mbps
        );
        for m in &modes {
            let v = c
                .modes
                .iter()
                .find(|(x, _)| x == m)
                .map_or("-".to_string(), |(_, x)| x.show(2));
            let _ = write!(s, " {v} |");
        }
        let r = c.braid_vs_direct.map_or("-".into(), |x| x.show(2));
        let p = c.braid_pct.map_or("-".into(), |x| x.show(1));
        let _ = writeln!(s, " {r} | {p} |");
    }
    s
}

/// Per step of a sequence (or per workload), per mode: goodput, % of the sum and each link's
/// rate, min / median / max over the repetitions. A markdown table.
pub(crate) fn steps_markdown(records: &[RunRecord]) -> String {
    let mut keys: Vec<(&str, &str, String)> = Vec::new();
    for r in records {
        let k = (r.scenario.as_str(), r.mode.as_str(), r.label());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut s = String::from(
        "| scenario | mode | step | runs | goodput Mbit/s | % of sum | per link Mbit/s |\n\
         |---|---|---|---:|---:|---:|---|\n",
    );
    for (sc, mode, label) in keys {
        let runs: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.scenario == sc && r.mode == mode && r.label() == label)
            .collect();
        let show = |v: Vec<f64>, prec: usize| Spread::of(v).map_or("-".into(), |x| x.show(prec));
        let links = runs[0]
            .links
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let v = runs
                    .iter()
                    .filter_map(|r| r.result.links_mbps.get(i).copied())
                    .collect();
                format!("{} {}", l.name, show(v, 1))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            s,
            "| {sc} | {mode} | {label} | {} | {} | {} | {links} |",
            runs.len(),
            show(runs.iter().map(|r| r.result.goodput_mbps).collect(), 2),
            show(runs.iter().map(|r| r.pct_of_capacity).collect(), 1),
        );
    }
    s
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG chart: one panel per run (stacked, shared scales), each with a thick line for the
/// total goodput and a thin line per link (IP rate the link delivered).
pub(crate) fn svg(title: &str, runs: &[&RunRecord]) -> String {
    let (w, ph, left, top, gap) = (900.0, 220.0, 60.0, 40.0, 50.0);
    let h = top + runs.len() as f64 * (ph + gap) + 10.0;
    let tmax = runs
        .iter()
        .flat_map(|r| r.result.samples.last().map(|s| s.t_s))
        .fold(1.0f64, f64::max);
    let ymax = runs
        .iter()
        .flat_map(|r| r.result.samples.windows(SMOOTH))
        .map(|w| w.iter().map(|s| s.total_mbps).sum::<f64>() / SMOOTH as f64)
        .chain(runs.iter().map(|r| r.capacity_mbps))
        .fold(1.0f64, f64::max);
    let ymax = nice_ceil(ymax * 1.05);
    let pw = w - left - 130.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        esc(title)
    );
    for (k, r) in runs.iter().enumerate() {
        let y0 = top + k as f64 * (ph + gap);
        let x = |t: f64| left + t / tmax * pw;
        let y = |v: f64| y0 + ph - v / ymax * ph;
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{:.1}\" font-weight=\"bold\">{} ({}): {:.1} Mbit/s = {:.0} % of {:.1}, longest gap {:.0} ms</text>",
            y0 - 6.0,
            esc(&r.mode),
            esc(&r.label()),
            r.result.goodput_mbps,
            r.pct_of_capacity,
            r.capacity_mbps,
            r.result.max_gap_ms
        );
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888\"/>"
        );
        for i in 0..=4 {
            let v = ymax * i as f64 / 4.0;
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
                left + pw,
                left - 4.0,
                y(v) + 4.0,
                yy = y(v)
            );
        }
        let steps = (tmax / 5.0).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = (i * 5) as f64;
            if t > tmax {
                break;
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.0}s</text>",
                x(t),
                y0 + ph + 14.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">Mbit/s</text>",
            y0 + ph / 2.0,
            y0 + ph / 2.0
        );
        // Summed capacity, dashed.
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{c:.1}\" y2=\"{c:.1}\" stroke=\"#999\" stroke-dasharray=\"6 4\"/>",
            left + pw,
            c = y(r.capacity_mbps)
        );
        let nlinks = r.links.len();
        for li in 0..nlinks {
            let pts = polyline(
                &r.result.samples,
                |s| s.links_mbps.get(li).copied().unwrap_or(0.0),
                &x,
                &y,
            );
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\" points=\"{pts}\"/>",
                COLORS[li % COLORS.len()]
            );
        }
        let pts = polyline(&r.result.samples, |s| s.total_mbps, &x, &y);
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"2.2\" points=\"{pts}\"/>"
        );
        // Legend.
        let lx = left + pw + 10.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\" stroke-width=\"2.2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">goodput</text>",
            lx + 18.0,
            y0 + 10.0,
            y0 + 10.0,
            lx + 22.0,
            y0 + 14.0
        );
        for (li, l) in r.links.iter().enumerate() {
            let ly = y0 + 28.0 + li as f64 * 16.0;
            let _ = writeln!(
                s,
                "<line x1=\"{lx}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{} ({:.0})</text>",
                lx + 18.0,
                COLORS[li % COLORS.len()],
                lx + 22.0,
                ly + 4.0,
                esc(&l.name),
                l.mean_mbps
            );
        }
        let ly = y0 + 28.0 + nlinks as f64 * 16.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" x2=\"{:.1}\" y1=\"{ly:.1}\" y2=\"{ly:.1}\" stroke=\"#999\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">sum</text>",
            lx + 18.0,
            lx + 22.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Samples averaged over this many 100 ms periods in the chart (application reads are bursty
/// on a busy machine; the JSON keeps every raw sample).
const SMOOTH: usize = 5;

fn polyline(
    samples: &[Sample],
    f: impl Fn(&Sample) -> f64,
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
) -> String {
    let mut p = String::new();
    for (i, smp) in samples.iter().enumerate() {
        let from = i.saturating_sub(SMOOTH - 1);
        let win = &samples[from..=i];
        let v = win.iter().map(&f).sum::<f64>() / win.len() as f64;
        let _ = write!(p, "{:.1},{:.1} ", x(smp.t_s), y(v.max(0.0)));
    }
    p
}

fn nice_ceil(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mode: &str) -> RunRecord {
        RunRecord {
            scenario: "t".into(),
            mode: mode.into(),
            workload: "bulk1-down".into(),
            repeat: 0,
            sequence: vec![],
            step: 0,
            seed: 1,
            links: vec![LinkInfo {
                name: "wan<0>".into(),
                mean_mbps: 20.0,
            }],
            capacity_mbps: 20.0,
            best_link: "wan0".into(),
            best_link_mbps: 20.0,
            pct_of_capacity: 50.0,
            notes: vec![],
            result: WorkResult {
                workload: "bulk1-down".into(),
                goodput_mbps: 10.0,
                samples: (1..=10)
                    .map(|i| Sample {
                        t_s: i as f64 / 10.0,
                        total_mbps: i as f64,
                        links_mbps: vec![i as f64],
                    })
                    .collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn svg_is_well_formed_and_escapes() {
        let a = rec("direct");
        let b = rec("mptcp");
        let s = svg("x & y", &[&a, &b]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("x &amp; y") && s.contains("wan&lt;0&gt;"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert_eq!(s.matches('<').count(), s.matches('>').count());
    }

    fn run(mode: &str, workload: &str, repeat: u32, goodput: f64) -> RunRecord {
        let mut r = rec(mode);
        r.workload = workload.into();
        r.repeat = repeat;
        r.result.goodput_mbps = goodput;
        r.pct_of_capacity = 100.0 * goodput / r.capacity_mbps;
        r
    }

    #[test]
    fn rr_summary_pools_every_runs_samples_per_mode() {
        assert_eq!(rr_summary_markdown(&[rec("braid")]), None, "no rr run");
        let rr = |mode: &str, repeat: u32, ms: &[u64]| {
            let mut r = run(mode, "rr4", repeat, 1.0);
            let us: Vec<(u64, u64)> = ms.iter().map(|m| (m * 1000, m * 400)).collect();
            r.result.rr = Some(crate::lab::work::RrStats::of(&us));
            r
        };
        // Run 1: 100 samples at 40 ms; run 2: 98 at 40 ms and 2 at 90 ms (its p99: 90).
        let mut two = vec![40; 98];
        two.extend([90, 90]);
        let recs = [
            rr("old", 0, &[40; 100]),
            rr("new", 0, &[41; 100]),
            rr("old", 1, &two),
            rr("new", 1, &[42; 100]),
        ];
        let t = rr_summary_markdown(&recs).unwrap();
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(
            rows,
            [
                // Pooled 200: p99 at rank round(199 * 0.99) = 197, still 40 ms.
                "| t | rr4 | old | 2 | 40.0 / 65.0 / 90.0 | 40.0 / 40.0 / 40.0 | 16.0 / 24.0 | 200 |",
                "| t | rr4 | new | 2 | 41.0 / 41.5 / 42.0 | 42.0 / 42.0 / 42.0 | 16.8 / 25.2 | 200 |",
            ]
        );
    }

    #[test]
    fn the_bench_readme_carries_the_rr_summary_only_when_rr_ran() {
        let bulk = [rec("braid")];
        assert!(!bench_readme(&bulk).contains("## Request/response"));
        let mut r = run("braid", "rr4", 0, 1.0);
        r.result.rr = Some(crate::lab::work::RrStats::of(&[(40_000, 16_000); 10]));
        let text = bench_readme(&[rec("braid"), r]);
        let (rr_at, runs_at) = (
            text.find("## Request/response").expect("rr section"),
            text.find("## Every run").unwrap(),
        );
        assert!(text.find("## Summary").unwrap() < rr_at && rr_at < runs_at);
        assert!(
            text.contains("| t | rr4 | braid | 1 | 40.0 | 40.0 / 40.0 / 40.0 | 16.0 / 24.0 | 10 |"),
            "{text}"
        );
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(Spread::of([]), None);
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 2.0, 3.0, 3));
        // An even count: the mean of the middle two; NaN left out.
        let s = Spread::of([4.0, f64::NAN, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 3.0, 10.0, 4));
        assert_eq!(s.show(1), "1.0 / 3.0 / 10.0");
        assert_eq!(Spread::of([2.5]).unwrap().show(2), "2.50");
    }

    #[test]
    fn cells_group_repeats_and_pair_braid_with_direct_of_the_same_repeat() {
        let recs = vec![
            run("direct", "bulk8-down", 0, 10.0),
            run("braid", "bulk8-down", 0, 15.0),
            run("direct", "bulk8-down", 1, 12.0),
            run("braid", "bulk8-down", 1, 12.0),
            run("direct", "bulk8-down", 2, 20.0),
            run("braid", "bulk8-down", 2, 16.0),
            run("braid", "bulk1-up", 0, 5.0),
        ];
        let c = cells(&recs);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].workload.as_str(), c[1].workload.as_str()),
            ("bulk8-down", "bulk1-up")
        );
        let modes: Vec<&str> = c[0].modes.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(modes, ["direct", "braid"]);
        let braid = c[0].modes[1].1;
        assert_eq!(
            (braid.min, braid.median, braid.max, braid.n),
            (12.0, 15.0, 16.0, 3)
        );
        // Ratios per repeat: 1.5, 1.0, 0.8 (not the ratio of the medians, 15/12).
        let r = c[0].braid_vs_direct.unwrap();
        assert_eq!((r.min, r.median, r.max), (0.8, 1.0, 1.5));
        assert_eq!(c[0].braid_pct.unwrap().median, 75.0);
        // No direct run for bulk1-up: no ratio.
        assert_eq!(c[1].braid_vs_direct, None);
        let md = summary_markdown(&recs);
        assert_eq!(md.lines().count(), 4);
        assert!(md.contains("| t | bulk8-down | 3 | 20.00 | 10.00 / 12.00 / 20.00 | 12.00 / 15.00 / 16.00 | 0.80 / 1.00 / 1.50 | 60.0 / 75.0 / 80.0 |"), "{md}");
        assert!(
            md.contains("| t | bulk1-up | 1 | 20.00 | - | 5.00 | - | 25.0 |"),
            "{md}"
        );
    }

    /// Step `step` of the session `seq`, repetition `rep`: `goodput` Mbit/s, links at `l`.
    fn step(mode: &str, seq: &[&str], step: u32, rep: u32, goodput: f64, l: [f64; 2]) -> RunRecord {
        let mut r = run(mode, seq[step as usize], rep, goodput);
        r.sequence = seq.iter().map(|s| s.to_string()).collect();
        r.step = step;
        r.links = vec![
            LinkInfo {
                name: "wan0".into(),
                mean_mbps: 20.0,
            },
            LinkInfo {
                name: "wan1".into(),
                mean_mbps: 10.0,
            },
        ];
        r.capacity_mbps = 30.0;
        r.pct_of_capacity = 100.0 * goodput / 30.0;
        r.result.links_mbps = l.to_vec();
        r
    }

    #[test]
    fn a_sequence_reports_each_step_apart_even_the_same_workload_twice() {
        let seq = ["bulk8-down", "bulk8-up", "bulk8-down"];
        let mut recs = Vec::new();
        for rep in 0..3 {
            let x = rep as f64;
            recs.push(step("braid", &seq, 0, rep, 27.0 + x, [18.0, 9.5]));
            recs.push(step("braid", &seq, 1, rep, 27.3, [18.5, 9.4]));
            recs.push(step("braid", &seq, 2, rep, 20.0 + x, [12.0 + x, 9.0]));
        }
        assert_eq!(recs[2].label(), "3/3 bulk8-down");
        assert_eq!(rec("direct").label(), "bulk1-down");
        // The first download and the one after the upload are two cells, not one.
        let c = cells(&recs);
        let names: Vec<&str> = c.iter().map(|c| c.workload.as_str()).collect();
        assert_eq!(names, ["1/3 bulk8-down", "2/3 bulk8-up", "3/3 bulk8-down"]);
        assert_eq!(c[2].modes[0].1.show(2), "20.00 / 21.00 / 22.00");
        let md = steps_markdown(&recs);
        assert_eq!(md.lines().count(), 5, "{md}");
        assert!(
            md.contains("| t | braid | 1/3 bulk8-down | 3 | 27.00 / 28.00 / 29.00 | 90.0 / 93.3 / 96.7 | wan0 18.0 / 18.0 / 18.0; wan1 9.5 / 9.5 / 9.5 |"),
            "{md}"
        );
        assert!(
            md.contains("| t | braid | 3/3 bulk8-down | 3 | 20.00 / 21.00 / 22.00 | 66.7 / 70.0 / 73.3 | wan0 12.0 / 13.0 / 14.0; wan1 9.0 / 9.0 / 9.0 |"),
            "{md}"
        );
        // Every run's row names its step and each link's rate.
        let t = table(&recs[..3]);
        assert!(t.lines().nth(3).unwrap().contains("3/3 bulk8-down"), "{t}");
        assert!(
            t.lines().nth(3).unwrap().ends_with("wan0 12.0 wan1 9.0"),
            "{t}"
        );
        assert!(markdown(&recs).contains("| 2/3 bulk8-up | 1 |"));
        // The JSON keeps the sequence; a record without one reads as a run on its own.
        let j = serde_json::to_string(&recs[2]).unwrap();
        let back: RunRecord = serde_json::from_str(&j).unwrap();
        assert_eq!(
            (back.label(), back.result.links_mbps),
            (recs[2].label(), vec![12.0, 9.0])
        );
        let lone = serde_json::to_string(&rec("braid")).unwrap();
        assert!(!lone.contains("\"sequence\""), "{lone}");
    }

    #[test]
    fn tables_have_a_row_per_run() {
        let r = [rec("direct"), rec("mptcp")];
        assert_eq!(table(&r).lines().count(), 3);
        assert_eq!(markdown(&r).lines().count(), 4);
        assert_eq!(nice_ceil(31.0), 50.0);
        assert_eq!(nice_ceil(19.0), 20.0);
    }

    #[test]
    fn table_and_markdown_rows_hold_every_column() {
        let mut full = rec("braid");
        full.repeat = 2;
        full.pct_of_capacity = 12345.678;
        full.result.max_gap_ms = 251.4;
        full.result.flows_failed = 3;
        full.result.rr = Some(
            serde_json::from_value(serde_json::json!({
                "count": 5, "p50_ms": 41.6, "p99_ms": 97.2, "max_ms": 120.0
            }))
            .unwrap(),
        );
        let udp = |loss: f64, late: u64, jitter: f64| {
            serde_json::from_value(serde_json::json!({
                "sent": 100, "received": 99, "loss_pct": loss, "jitter_ms": jitter,
                "owd_min_ms": 10.0, "owd_p99_ms": 20.0, "late": late, "reordered": 0
            }))
            .unwrap()
        };
        full.result.udp_up = Some(udp(1.25, 2, 3.5));
        full.result.udp_down = Some(udp(0.5, 1, 1.5));
        full.result.links_mbps = vec![9.54];
        let r = [rec("direct"), full];
        assert_eq!(
            table(&r),
            "scenario      mode      workload       run   goodput   % sum  capacity   gap ms  fails    rr p50/p99 ms (n)  udp loss/late/jit per link Mbit/s\n\
             t             direct    bulk1-down       1     10.00   50.0%     20.00        0      0                    -                  -\n\
             t             braid     bulk1-down       3     10.00 12345.7%     20.00      251      3            42/97 (5)         0.9%/3/2.5 wan<0> 9.5\n"
        );
        assert_eq!(
            markdown(&r).lines().skip(2).collect::<Vec<_>>(),
            [
                "| t | direct | bulk1-down | 1 | 10.00 | 50.0 | 20.00 | 20.00 | 0 | 0 | - | - |  |",
                "| t | braid | bulk1-down | 3 | 10.00 | 12345.7 | 20.00 | 20.00 | 251 | 3 | 42 / 97 (5) | \
                 0.88 / 3 / 2.5 | wan<0> 9.5 |",
            ]
        );
    }
}
