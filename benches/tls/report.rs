//! The TLS bench's results: per case, per server, per round, a few figures; rendered as one
//! table per case (medians with ranges, and per-round ratios) and written as CSV.

use std::fmt::Write as _;
use std::path::Path;

use crate::common::out::write_csv_files;
use crate::common::stats::{median, range, Ratio};
use crate::servers::Kind;

/// A bound that a ratio sockloop/tokio should keep.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// At least this much (a rate: more is better).
    AtLeast(f64),
    /// At most this much (a cost: less is better).
    AtMost(f64),
}

impl Target {
    pub fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(t) => ratio >= t,
            Target::AtMost(t) => ratio <= t,
        }
    }

    fn describe(self) -> String {
        match self {
            Target::AtLeast(t) => format!(">= {t:.2}"),
            Target::AtMost(t) => format!("<= {t:.2}"),
        }
    }
}

/// One figure of a case.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// As the table shows it.
    pub name: &'static str,
    /// As the CSV names it.
    pub key: &'static str,
    /// Decimals shown.
    pub digits: usize,
    /// What the ratio sockloop/tokio of this figure should keep, if anything.
    pub target: Option<Target>,
}

/// One case: its figures and, per server (in [`Results::kinds`] order), per round, the values
/// of those figures (`None`: that measurement failed).
pub struct Row {
    /// As the tables show it.
    pub case: String,
    /// As the CSV names it.
    pub key: String,
    pub metrics: Vec<Metric>,
    pub samples: Vec<Vec<Option<Vec<f64>>>>,
}

impl Row {
    /// The values of metric `m` for server `k`, over the rounds that succeeded.
    fn values(&self, k: usize, m: usize) -> Vec<f64> {
        self.samples[k]
            .iter()
            .filter_map(|s| s.as_ref().map(|v| v[m]))
            .collect()
    }

    /// Per-round ratios of metric `m`, server `a` over server `b` (rounds where both ran).
    fn ratios(&self, a: usize, b: usize, m: usize) -> Vec<f64> {
        self.samples[a]
            .iter()
            .zip(&self.samples[b])
            .filter_map(|(x, y)| Some(x.as_ref()?[m] / y.as_ref()?[m]))
            .filter(|r| r.is_finite())
            .collect()
    }
}

pub struct Results {
    pub kinds: Vec<Kind>,
    pub rows: Vec<Row>,
}

impl Results {
    fn index(&self, kind: Kind) -> Option<usize> {
        self.kinds.iter().position(|&k| k == kind)
    }

    /// The pairs (sockloop, peer) whose ratios are shown.
    fn pairs(&self) -> Vec<(usize, usize, Kind)> {
        let Some(s) = self.index(Kind::Sockloop) else {
            return Vec::new();
        };
        [Kind::Tokio, Kind::Baseline]
            .into_iter()
            .filter_map(|peer| Some((s, self.index(peer)?, peer)))
            .collect()
    }
}

fn fmt_value(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    let text = format!("{v:.digits$}");
    // Thousands separators in the integer part, for the large counts.
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        "" => format!("{sign}{grouped}"),
        f => format!("{sign}{grouped}.{f}"),
    }
}

/// "median [min–max]" of `values`.
fn fmt_summary(values: Vec<f64>, digits: usize) -> String {
    let (min, max) = range(&values);
    match median(values) {
        Some(m) => format!(
            "{} [{}–{}]",
            fmt_value(m, digits),
            fmt_value(min, digits),
            fmt_value(max, digits)
        ),
        None => "-".to_string(),
    }
}

/// One markdown table per case: a line per figure, a column per server (median over the
/// rounds, with the range), a column per ratio (median of the per-round ratios, with their
/// range), and the target of the first ratio.
pub fn render(results: &Results, rounds: usize) -> String {
    let mut out = String::new();
    let pairs = results.pairs();
    for row in &results.rows {
        let _ = writeln!(out, "\n### {} ({rounds} rounds)\n", row.case);
        let mut header = "| figure |".to_string();
        let mut rule = "|---|".to_string();
        for kind in &results.kinds {
            let _ = write!(header, " {} |", kind.name());
            rule.push_str("---|");
        }
        for (_, _, peer) in &pairs {
            let _ = write!(header, " sockloop/{} |", peer.name());
            rule.push_str("---|");
        }
        if !pairs.is_empty() {
            header.push_str(" target |");
            rule.push_str("---|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for (m, metric) in row.metrics.iter().enumerate() {
            let mut line = format!("| {} |", metric.name);
            for k in 0..results.kinds.len() {
                let _ = write!(line, " {} |", fmt_summary(row.values(k, m), metric.digits));
            }
            let mut verdict = String::new();
            for (i, &(a, b, _)) in pairs.iter().enumerate() {
                let ratios = row.ratios(a, b, m);
                if ratios.is_empty() {
                    line.push_str(" - |");
                    continue;
                }
                let ratio = Ratio::of(ratios);
                let _ = write!(line, " {ratio} |");
                if let (0, Some(target)) = (i, metric.target) {
                    let met = if target.met(ratio.median) {
                        "met"
                    } else {
                        "MISSED"
                    };
                    verdict = format!("{} {met}", target.describe());
                }
            }
            if !pairs.is_empty() {
                let _ = write!(line, " {verdict} |");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Every target, one line each: whether the median ratio sockloop/tokio kept it.
pub fn targets(results: &Results) -> String {
    let mut out = String::new();
    let Some(&(a, b, peer)) = results.pairs().first() else {
        return out;
    };
    let _ = writeln!(
        out,
        "\nTargets (median of per-round ratios sockloop/{}):",
        peer.name()
    );
    for row in &results.rows {
        for (m, metric) in row.metrics.iter().enumerate() {
            let Some(target) = metric.target else {
                continue;
            };
            let ratios = row.ratios(a, b, m);
            let line = if ratios.is_empty() {
                "not measured".to_string()
            } else {
                let ratio = Ratio::of(ratios);
                let met = if target.met(ratio.median) {
                    "met"
                } else {
                    "MISSED"
                };
                format!("{ratio}, target {}: {met}", target.describe())
            };
            let _ = writeln!(out, "  {}, {}: {line}", row.case, metric.name);
        }
    }
    out
}

/// `tls.csv` (per case, figure and server: median, min, max; and the ratios) and
/// `tls-rounds.csv` (every value of every round) in `dir`.
pub fn write_csv(results: &Results, dir: &Path) -> Result<(), String> {
    let mut summary = String::from("case,figure,server,median,min,max\n");
    let mut rounds = String::from("case,figure,server,round,value\n");
    for row in &results.rows {
        for (m, metric) in row.metrics.iter().enumerate() {
            for (k, kind) in results.kinds.iter().enumerate() {
                let values = row.values(k, m);
                let (min, max) = range(&values);
                let med = median(values).unwrap_or(f64::NAN);
                let _ = writeln!(
                    summary,
                    "{},{},{},{med},{min},{max}",
                    row.key,
                    metric.key,
                    kind.name()
                );
                for (r, sample) in row.samples[k].iter().enumerate() {
                    let value = sample.as_ref().map_or(f64::NAN, |v| v[m]);
                    let _ = writeln!(
                        rounds,
                        "{},{},{},{},{value}",
                        row.key,
                        metric.key,
                        kind.name(),
                        r + 1
                    );
                }
            }
            for (a, b, peer) in results.pairs() {
                let ratio = Ratio::of(row.ratios(a, b, m));
                let _ = writeln!(
                    summary,
                    "{},{},sockloop/{},{},{},{}",
                    row.key,
                    metric.key,
                    peer.name(),
                    ratio.median,
                    ratio.min,
                    ratio.max
                );
            }
        }
    }
    write_csv_files(
        dir,
        [
            ("tls.csv".to_string(), summary),
            ("tls-rounds.csv".to_string(), rounds),
        ],
    )
}
