//! Reports: a terminal table, JSON, a markdown table (bench), and an SVG chart of goodput over
//! time per link and in total (written by hand, no dependency).

use std::fmt::Write as _;

use super::work::{Sample, WorkResult};

/// One link as the scenario describes it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LinkInfo {
    pub name: String,
    /// Mean rate in the workload's direction, Mbit/s.
    pub mean_mbps: f64,
}

/// One (scenario, mode, workload) run with its baselines' context.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub scenario: String,
    pub mode: String,
    pub workload: String,
    pub seed: u64,
    pub links: Vec<LinkInfo>,
    /// Sum of the links' mean rates in the workload's direction.
    pub capacity_mbps: f64,
    /// The link `direct` uses.
    pub best_link: String,
    pub best_link_mbps: f64,
    /// Goodput as a share of the summed capacity.
    pub pct_of_capacity: f64,
    /// Caveats of this run (what the mode does not carry, for instance).
    #[serde(default)]
    pub notes: Vec<String>,
    pub result: WorkResult,
}

/// A terminal table of runs.
pub fn table(records: &[RunRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<7} {:<11} {:>9} {:>7} {:>9} {:>8} {:>6} {:>16} {:>18}",
        "scenario",
        "mode",
        "workload",
        "goodput",
        "% sum",
        "capacity",
        "gap ms",
        "fails",
        "rr p50/p99 ms",
        "udp loss/late/jit"
    );
    for r in records {
        let w = &r.result;
        let rr =
            w.rr.as_ref()
                .map(|x| format!("{:.0}/{:.0}", x.p50_ms, x.p99_ms))
                .unwrap_or_else(|| "-".into());
        let udp = match (&w.udp_up, &w.udp_down) {
            (Some(u), Some(d)) => format!(
                "{:.1}%/{}/{:.1}",
                (u.loss_pct + d.loss_pct) / 2.0,
                u.late + d.late,
                (u.jitter_ms + d.jitter_ms) / 2.0
            ),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:<10} {:<7} {:<11} {:>9.2} {:>6.1}% {:>9.2} {:>8.0} {:>6} {:>16} {:>18}",
            r.scenario,
            r.mode,
            r.workload,
            w.goodput_mbps,
            r.pct_of_capacity,
            r.capacity_mbps,
            w.max_gap_ms,
            w.flows_failed,
            rr,
            udp
        );
    }
    s
}

/// A markdown table of runs (bench/results/README.md style).
pub fn markdown(records: &[RunRecord]) -> String {
    let mut s = String::from(
        "| scenario | mode | workload | goodput Mbit/s | % of sum | sum Mbit/s | best link Mbit/s | max gap ms | failed flows | rr p50 / p99 ms | udp loss % / late / jitter ms |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in records {
        let w = &r.result;
        let rr =
            w.rr.as_ref()
                .map(|x| format!("{:.0} / {:.0}", x.p50_ms, x.p99_ms))
                .unwrap_or_else(|| "-".into());
        let udp = match (&w.udp_up, &w.udp_down) {
            (Some(u), Some(d)) => format!(
                "{:.2} / {} / {:.1}",
                (u.loss_pct + d.loss_pct) / 2.0,
                u.late + d.late,
                (u.jitter_ms + d.jitter_ms) / 2.0
            ),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} | {} | {} | {} |",
            r.scenario,
            r.mode,
            r.workload,
            w.goodput_mbps,
            r.pct_of_capacity,
            r.capacity_mbps,
            r.best_link_mbps,
            w.max_gap_ms,
            w.flows_failed,
            rr,
            udp
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
pub fn svg(title: &str, runs: &[&RunRecord]) -> String {
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
            esc(&r.workload),
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

    #[test]
    fn tables_have_a_row_per_run() {
        let r = [rec("direct"), rec("mptcp")];
        assert_eq!(table(&r).lines().count(), 3);
        assert_eq!(markdown(&r).lines().count(), 4);
        assert_eq!(nice_ceil(31.0), 50.0);
        assert_eq!(nice_ceil(19.0), 20.0);
    }
}
