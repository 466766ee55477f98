//! The latency bench's results: medians and ranges over rounds, per-round ratios of sockloop to
//! tokio (and to a baseline build of sockloop, in an A/B), the tables on stdout and the CSV
//! files.

use std::fmt;
use std::path::Path;

use crate::common::out;
use crate::common::stats::{median, range, Ratio};
use crate::servers::Kind;

/// What runs beside the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// This many hot echo streams (0: the probe alone).
    Hot(usize),
    /// One blaster to the sink port.
    Blaster,
}

impl Point {
    pub fn parse(text: &str) -> Option<Point> {
        match text.trim() {
            "blaster" => Some(Point::Blaster),
            n => n.parse().ok().map(Point::Hot),
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Hot(n) => write!(f, "{n} hot"),
            Point::Blaster => f.write_str("blaster"),
        }
    }
}

/// One server at one point in one round.
#[derive(Clone, Debug)]
pub struct Sample {
    pub round: usize,
    /// Index into [`Results::points`].
    pub point: usize,
    pub kind: Kind,
    /// Place of this server in its round's order at this point (0: first).
    pub order: usize,
    pub probes: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// MiB/s the hot streams read back (blaster: MiB/s it wrote) over the probing; `None` at 0.
    pub load_mib_s: Option<f64>,
    /// Server CPU time over the probing, as a fraction of one CPU.
    pub server_cpu: f64,
    /// Server resident memory at the end of the probing, MiB.
    pub server_rss_mib: f64,
    /// The probing ended early on an echo that did not come in time.
    pub timed_out: bool,
    /// Failed load connections and byte-count violations.
    pub load_errors: u64,
    pub seconds: f64,
}

/// Everything a run measured.
pub struct Results {
    pub kinds: Vec<Kind>,
    pub points: Vec<Point>,
    pub samples: Vec<Sample>,
}

impl Results {
    fn values(&self, point: usize, kind: Kind, field: fn(&Sample) -> Option<f64>) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|s| s.point == point && s.kind == kind)
            .filter_map(field)
            .collect()
    }

    fn of(&self, point: usize, kind: Kind, round: usize) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.point == point && s.kind == kind && s.round == round)
    }

    /// `a`/`b` of `field` in each round where both were measured.
    fn ratio(&self, point: usize, a: Kind, b: Kind, field: fn(&Sample) -> Option<f64>) -> Ratio {
        let rounds = self.samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
        Ratio::of(
            (0..rounds)
                .filter_map(|r| {
                    let x = field(self.of(point, a, r)?)?;
                    let y = field(self.of(point, b, r)?)?;
                    (y > 0.0).then(|| x / y)
                })
                .collect(),
        )
    }

    /// Whether both sides of the sockloop/tokio ratio were run.
    fn has_ratio(&self) -> bool {
        self.kinds.contains(&Kind::Sockloop) && self.kinds.contains(&Kind::Tokio)
    }

    /// Whether sockloop and a baseline build of it were run (an A/B).
    fn has_baseline(&self) -> bool {
        self.kinds.contains(&Kind::Sockloop) && self.kinds.contains(&Kind::Baseline)
    }

    /// The peers whose ratio sockloop/peer the tables show: tokio and the baseline, if run.
    fn ratio_peers(&self) -> Vec<Kind> {
        let mut peers = Vec::new();
        if self.has_ratio() {
            peers.push(Kind::Tokio);
        }
        if self.has_baseline() {
            peers.push(Kind::Baseline);
        }
        peers
    }
}

/// A figure of the samples as one table shows it.
struct Table {
    title: &'static str,
    field: fn(&Sample) -> Option<f64>,
    format: fn(f64) -> String,
}

/// Milliseconds with three significant digits (or so): 0.085, 1.23, 12.3, 245.
fn ms(us: f64) -> String {
    let ms = us / 1e3;
    if !ms.is_finite() {
        "-".to_string()
    } else if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

fn whole(x: f64) -> String {
    format!("{x:.0}")
}

/// "median [min–max]" of `values`, or "-" without any.
fn cell(values: Vec<f64>, format: fn(f64) -> String) -> String {
    let (min, max) = range(&values);
    match median(values) {
        Some(m) => format!("{} [{}–{}]", format(m), format(min), format(max)),
        None => "-".to_string(),
    }
}

const TABLES: [Table; 4] = [
    Table {
        title: "probe round trip p50, ms",
        field: |s| Some(s.p50_us),
        format: ms,
    },
    Table {
        title: "probe round trip p99, ms",
        field: |s| Some(s.p99_us),
        format: ms,
    },
    Table {
        title: "probe round trip max, ms",
        field: |s| Some(s.max_us),
        format: ms,
    },
    Table {
        title:
            "load throughput over the probing, MiB/s (hot streams: echoed back; blaster: written)",
        field: |s| s.load_mib_s,
        format: whole,
    },
];

/// The tables and the target check, as printed.
pub fn render(results: &Results, rounds: usize) -> String {
    let mut text = String::new();
    let ratio = results.has_ratio();
    let peers = results.ratio_peers();
    let ratio_names: Vec<String> = peers
        .iter()
        .map(|peer| format!("sockloop/{}", peer.name()))
        .collect();
    for table in &TABLES {
        text.push_str(&format!(
            "\n{}: median over {rounds} round(s) [min–max]{}\n\n",
            table.title,
            if peers.is_empty() {
                String::new()
            } else {
                format!(
                    "; {}: median of the per-round ratios [their range]",
                    ratio_names.join(", ")
                )
            }
        ));
        let mut header = String::from("| point |");
        let mut rule = String::from("|---|");
        for kind in &results.kinds {
            header.push_str(&format!(" {} |", kind.name()));
            rule.push_str("---|");
        }
        for name in &ratio_names {
            header.push_str(&format!(" {name} |"));
            rule.push_str("---|");
        }
        text.push_str(&format!("{header}\n{rule}\n"));
        for (p, point) in results.points.iter().enumerate() {
            let mut line = format!("| {point} |");
            for &kind in &results.kinds {
                let values = results.values(p, kind, table.field);
                line.push_str(&format!(" {} |", cell(values, table.format)));
            }
            for &peer in &peers {
                let r = results.ratio(p, Kind::Sockloop, peer, table.field);
                line.push_str(&format!(" {} |", ratio_cell(r)));
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str(&format!(
        "\nprobes per point, server CPU (% of one CPU) and server RSS (MiB) over the probing: medians over {rounds} round(s)\n\n"
    ));
    let mut header = String::from("| point |");
    let mut rule = String::from("|---|");
    for kind in &results.kinds {
        let k = kind.name();
        header.push_str(&format!(" {k} probes | {k} CPU % | {k} RSS |"));
        rule.push_str("---|---|---|");
    }
    text.push_str(&format!("{header}\n{rule}\n"));
    for (p, point) in results.points.iter().enumerate() {
        let mut line = format!("| {point} |");
        for &kind in &results.kinds {
            let m = |f: fn(&Sample) -> Option<f64>| {
                median(results.values(p, kind, f)).map_or_else(|| "-".to_string(), whole)
            };
            line.push_str(&format!(
                " {} | {} | {} |",
                m(|s| Some(s.probes as f64)),
                m(|s| Some(s.server_cpu * 100.0)),
                m(|s| Some(s.server_rss_mib)),
            ));
        }
        text.push_str(&line);
        text.push('\n');
    }
    let troubles: Vec<String> = results
        .samples
        .iter()
        .filter(|s| s.timed_out || s.load_errors > 0)
        .map(|s| {
            format!(
                "  round {} {} {}: {}{}",
                s.round + 1,
                results.points[s.point],
                s.kind.name(),
                if s.timed_out {
                    "a probe timed out (counted with its wait; probing stopped) "
                } else {
                    ""
                },
                if s.load_errors > 0 {
                    format!("{} load connection error(s)", s.load_errors)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    if !troubles.is_empty() {
        text.push_str("\ntrouble:\n");
        text.push_str(&troubles.join("\n"));
        text.push('\n');
    }
    if ratio {
        text.push_str("\ntarget: sockloop's probe p99 no higher than tokio's at every point (median of the per-round ratios <= 1)\n");
        for (p, point) in results.points.iter().enumerate() {
            let r = results.ratio(p, Kind::Sockloop, Kind::Tokio, |s| Some(s.p99_us));
            let verdict = if r.median.is_nan() {
                "not measured"
            } else if r.median <= 1.0 {
                "met"
            } else {
                "MISSED"
            };
            // A verdict that single rounds contradict is the machine's as much as the server's.
            let split = if r.min <= 1.0 && r.max > 1.0 {
                "; the rounds fall on both sides of 1"
            } else {
                ""
            };
            text.push_str(&format!(
                "  {:>8}: {verdict} (ratio {r}{split})\n",
                point.to_string()
            ));
        }
    }
    if results.has_baseline() {
        render_ab(&mut text, results);
    }
    text
}

/// "median [min–max]" of a ratio, or "-" where no round measured both sides.
fn ratio_cell(r: Ratio) -> String {
    if r.median.is_nan() {
        "-".to_string()
    } else {
        r.to_string()
    }
}

/// The A/B table: per point, each main figure of sockloop (this build) over the baseline
/// build's, as the median [range] of the per-round ratios.
fn render_ab(text: &mut String, results: &Results) {
    text.push_str(
        "\nA/B, this build over the baseline build (--baseline): sockloop/baseline, median of the per-round ratios [their range]\n\
         (below 1 is better for the round trips, above 1 for the load's throughput)\n\n",
    );
    let mut header = String::from("| point |");
    let mut rule = String::from("|---|");
    for (name, _) in AB_FIGURES {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---|");
    }
    text.push_str(&format!("{header}\n{rule}\n"));
    for (p, point) in results.points.iter().enumerate() {
        let mut line = format!("| {point} |");
        for (_, field) in AB_FIGURES {
            let r = results.ratio(p, Kind::Sockloop, Kind::Baseline, field);
            line.push_str(&format!(" {} |", ratio_cell(r)));
        }
        text.push_str(&line);
        text.push('\n');
    }
}

/// A figure of a sample (`None`: not measured, as the load's throughput at 0).
type Field = fn(&Sample) -> Option<f64>;

/// The figures of the A/B table and of `latency-ab.csv`.
const AB_FIGURES: [(&str, Field); 4] = [
    ("p50", |s| Some(s.p50_us)),
    ("p99", |s| Some(s.p99_us)),
    ("max", |s| Some(s.max_us)),
    ("load MiB/s", |s| s.load_mib_s),
];

fn opt(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => String::new(),
    }
}

/// Writes `latency.csv` (medians, ranges and ratios per point and server) and
/// `latency-rounds.csv` (every sample) into `dir`.
pub fn write_csv(results: &Results, dir: &Path) -> Result<(), String> {
    let mut medians = String::from(
        "point,server,rounds,p50_ms,p50_ms_min,p50_ms_max,p99_ms,p99_ms_min,p99_ms_max,max_ms,max_ms_min,max_ms_max,load_mib_s,load_mib_s_min,load_mib_s_max,probes,server_cpu,p99_vs_tokio,p99_vs_tokio_min,p99_vs_tokio_max\n",
    );
    for (p, point) in results.points.iter().enumerate() {
        for &kind in &results.kinds {
            let mut row = format!(
                "{point},{},{}",
                kind.name(),
                results.values(p, kind, |s| Some(s.p99_us)).len()
            );
            for field in [
                (|s: &Sample| Some(s.p50_us / 1e3)) as fn(&Sample) -> Option<f64>,
                |s| Some(s.p99_us / 1e3),
                |s| Some(s.max_us / 1e3),
                |s| s.load_mib_s,
            ] {
                let values = results.values(p, kind, field);
                let (min, max) = range(&values);
                let m = median(values);
                let (min, max) = m.map_or((None, None), |_| (Some(min), Some(max)));
                row.push_str(&format!(",{},{},{}", opt(m, 3), opt(min, 3), opt(max, 3)));
            }
            row.push_str(&format!(
                ",{},{}",
                opt(
                    median(results.values(p, kind, |s| Some(s.probes as f64))),
                    0
                ),
                opt(median(results.values(p, kind, |s| Some(s.server_cpu))), 3),
            ));
            if results.has_ratio() {
                let r = results.ratio(p, kind, Kind::Tokio, |s| Some(s.p99_us));
                let some = |x: f64| (!r.median.is_nan()).then_some(x);
                row.push_str(&format!(
                    ",{},{},{}",
                    opt(some(r.median), 3),
                    opt(some(r.min), 3),
                    opt(some(r.max), 3)
                ));
            } else {
                row.push_str(",,,");
            }
            medians.push_str(&row);
            medians.push('\n');
        }
    }
    let mut rounds = String::from(
        "round,point,server,order,probes,p50_ms,p99_ms,max_ms,load_mib_s,server_cpu,server_rss_mib,timed_out,load_errors,seconds\n",
    );
    for s in &results.samples {
        rounds.push_str(&format!(
            "{},{},{},{},{},{:.3},{:.3},{:.3},{},{:.3},{:.1},{},{},{:.2}\n",
            s.round + 1,
            results.points[s.point],
            s.kind.name(),
            s.order + 1,
            s.probes,
            s.p50_us / 1e3,
            s.p99_us / 1e3,
            s.max_us / 1e3,
            opt(s.load_mib_s, 1),
            s.server_cpu,
            s.server_rss_mib,
            s.timed_out,
            s.load_errors,
            s.seconds
        ));
    }
    let mut files = vec![
        ("latency.csv".to_string(), medians),
        ("latency-rounds.csv".to_string(), rounds),
    ];
    if results.has_baseline() {
        let mut ab = String::from("point,figure,ratio_median,ratio_min,ratio_max\n");
        for (p, point) in results.points.iter().enumerate() {
            for (name, field) in AB_FIGURES {
                let r = results.ratio(p, Kind::Sockloop, Kind::Baseline, field);
                if !r.median.is_nan() {
                    ab.push_str(&format!(
                        "{point},{name},{:.4},{:.4},{:.4}\n",
                        r.median, r.min, r.max
                    ));
                }
            }
        }
        files.push(("latency-ab.csv".to_string(), ab));
    }
    out::write_csv_files(dir, files)
}
