//! The results: medians over rounds, printed tables, CSV files and an SVG chart.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use plotters::prelude::*;

use crate::common::stats::{median, Ratio};
use crate::servers::Kind;

/// One load shape: `active` ping-pong connections beside `idle` silent ones.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub active: usize,
    pub idle: usize,
}

impl Case {
    /// The row label: `pingpong 100`, or `idle 100+10000idle`.
    pub fn label(&self) -> String {
        if self.idle > 0 {
            format!("{} {}+{}idle", self.name, self.active, self.idle)
        } else {
            format!("{} {}", self.name, self.active)
        }
    }
}

/// What one server did under one case in one round (or the median of its rounds).
#[derive(Clone, Debug)]
pub struct Sample {
    pub msgs_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Server CPU time (user + kernel) per echoed message, in microseconds.
    pub cpu_us_per_msg: f64,
    /// Server CPU time over the window as a fraction of one CPU.
    pub server_cpu: f64,
    /// CPU time of the server CPU's `ksoftirqd` over the window per echoed message, in
    /// microseconds, if read: softirq work the kernel deferred there, which no server's CPU
    /// time includes.
    pub softirq_us_per_msg: Option<f64>,
    /// Server system calls per echoed message (separate pass), if counted.
    pub syscalls_per_msg: Option<f64>,
    /// Messages echoed per `epoll_wait` of the server (same pass), if counted: with one message
    /// in flight per connection, a server needs at least a read and a write per message, and
    /// this says how well it amortises the wait on top.
    pub msgs_per_wait: Option<f64>,
    /// Server RSS growth per connection once all connections were established, in bytes.
    pub rss_per_conn: f64,
    /// Round trips the client completed in the window.
    pub messages: u64,
    /// Messages the server echoed in the window (its byte count / 64): the divisor of the
    /// per-message costs.
    pub server_messages: u64,
    pub window_s: f64,
    pub established: usize,
    /// The load generator's own verdict (`LoadReport::ok`): every connection established, every
    /// byte echoed correctly.
    pub load_ok: bool,
    /// The load generator's failure, error and corruption counts, as text.
    pub issues: String,
}

impl Sample {
    /// Each figure's median over `rounds` (which must not be empty).
    fn median_of(rounds: &[&Sample]) -> Sample {
        let m = |f: fn(&Sample) -> f64| median(rounds.iter().map(|x| f(x)).collect()).unwrap();
        let issues: Vec<&str> = rounds
            .iter()
            .filter(|x| !x.load_ok)
            .map(|x| x.issues.as_str())
            .collect();
        Sample {
            msgs_per_sec: m(|x| x.msgs_per_sec),
            p50_us: m(|x| x.p50_us),
            p99_us: m(|x| x.p99_us),
            cpu_us_per_msg: m(|x| x.cpu_us_per_msg),
            server_cpu: m(|x| x.server_cpu),
            softirq_us_per_msg: median(
                rounds.iter().filter_map(|x| x.softirq_us_per_msg).collect(),
            ),
            syscalls_per_msg: median(rounds.iter().filter_map(|x| x.syscalls_per_msg).collect()),
            msgs_per_wait: median(rounds.iter().filter_map(|x| x.msgs_per_wait).collect()),
            rss_per_conn: m(|x| x.rss_per_conn),
            messages: m(|x| x.messages as f64) as u64,
            server_messages: m(|x| x.server_messages as f64) as u64,
            window_s: m(|x| x.window_s),
            established: rounds.iter().map(|x| x.established).min().unwrap_or(0),
            load_ok: issues.is_empty(),
            issues: issues.join(" / "),
        }
    }
}

/// One case measured on every selected server, over several rounds.
pub struct Row {
    pub case: Case,
    /// Per server (in [`Results::kinds`] order), one entry per round; `None`: that round failed.
    pub rounds: Vec<Vec<Option<Sample>>>,
    /// Per server, the medians over its successful rounds; `None` if every round failed.
    pub samples: Vec<Option<Sample>>,
}

impl Row {
    pub fn new(case: Case, rounds: Vec<Vec<Option<Sample>>>) -> Row {
        let samples = rounds
            .iter()
            .map(|per_round| {
                let ok: Vec<&Sample> = per_round.iter().flatten().collect();
                (!ok.is_empty()).then(|| Sample::median_of(&ok))
            })
            .collect();
        Row {
            case,
            rounds,
            samples,
        }
    }
}

/// Everything the benchmark measured.
pub struct Results {
    pub kinds: Vec<Kind>,
    pub rows: Vec<Row>,
}

impl Results {
    fn index(&self, kind: Kind) -> Option<usize> {
        self.kinds.iter().position(|&k| k == kind)
    }

    /// The median sample of `kind` in `row`, if that server was run and succeeded.
    pub fn sample<'a>(&self, row: &'a Row, kind: Kind) -> Option<&'a Sample> {
        row.samples.get(self.index(kind)?)?.as_ref()
    }

    /// sockloop's CPU per message divided by `peer`'s, paired by round (each round runs the
    /// servers back to back, so a ratio compares like with like); `None` without a pair.
    pub fn cpu_ratio(&self, row: &Row, peer: Kind) -> Option<Ratio> {
        self.ratio(row, peer, |x| Some(x.cpu_us_per_msg))
    }

    /// As [`Results::cpu_ratio`], with the server CPU's `ksoftirqd` time per message added to
    /// each side; `None` where it was not read.
    pub fn cpu_with_softirq_ratio(&self, row: &Row, peer: Kind) -> Option<Ratio> {
        self.ratio(row, peer, |x| {
            Some(x.cpu_us_per_msg + x.softirq_us_per_msg?)
        })
    }

    /// sockloop's `f` divided by `peer`'s, paired by round, summarised; `None` without a pair.
    pub fn ratio(
        &self,
        row: &Row,
        peer: Kind,
        f: impl Fn(&Sample) -> Option<f64>,
    ) -> Option<Ratio> {
        let ours = row.rounds.get(self.index(Kind::Sockloop)?)?;
        let theirs = row.rounds.get(self.index(peer)?)?;
        let ratios: Vec<f64> = ours
            .iter()
            .zip(theirs)
            .filter_map(|(a, b)| Some(f(a.as_ref()?)? / f(b.as_ref()?)?))
            .collect();
        (!ratios.is_empty()).then(|| Ratio::of(ratios))
    }

    fn peers(&self) -> impl Iterator<Item = Kind> + '_ {
        self.kinds.iter().copied().filter(|&k| k != Kind::Sockloop)
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The tables, as printed.
pub fn render(results: &Results, rounds: usize) -> String {
    let mut s = String::new();
    let label_w = results
        .rows
        .iter()
        .map(|r| r.case.label().len())
        .max()
        .unwrap_or(10)
        .max(10);
    let has_sockloop = results.kinds.contains(&Kind::Sockloop);

    let _ = writeln!(
        s,
        "\nThroughput and latency: medians of {rounds} round(s); 64 B ping-pong, 1 message in flight per connection; latency is the client's (send to end of echo)"
    );
    let _ = write!(s, "{:label_w$}", "case conns");
    for k in &results.kinds {
        let _ = write!(s, " | {:^28}", k.name());
    }
    let _ = write!(s, "\n{:label_w$}", "");
    for _ in &results.kinds {
        let _ = write!(s, " | {:>10} {:>8} {:>8}", "msgs/s", "p50 µs", "p99 µs");
    }
    let _ = writeln!(s);
    for row in &results.rows {
        let _ = write!(s, "{:label_w$}", row.case.label());
        for sample in &row.samples {
            let _ = match sample {
                Some(x) => write!(
                    s,
                    " | {:>10.0} {:>8.1} {:>8.1}",
                    x.msgs_per_sec, x.p50_us, x.p99_us
                ),
                None => write!(s, " | {:>10} {:>8} {:>8}", "failed", "-", "-"),
            };
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(
        s,
        "\nServer cost per echoed message: medians of {rounds} round(s). CPU µs: server user+sys time (schedstat) / messages it echoed;\n\
         sys: server system calls (perf, separate pass, median of its rounds) / messages; srv%: server CPU use; ratio: sockloop CPU/msg over the peer's, median [range] of per-round ratios"
    );
    let _ = write!(s, "{:label_w$}", "case conns");
    for k in &results.kinds {
        let _ = write!(s, " | {:^23}", k.name());
    }
    if has_sockloop {
        peer_headers(&mut s, results);
    }
    let _ = write!(s, "\n{:label_w$}", "");
    for _ in &results.kinds {
        let _ = write!(s, " | {:>8} {:>7} {:>5}", "CPU µs", "sys", "srv%");
    }
    if has_sockloop {
        for _ in results.peers() {
            let _ = write!(s, " | {:^19}", "CPU ratio");
        }
    }
    let _ = writeln!(s);
    for row in &results.rows {
        let _ = write!(s, "{:label_w$}", row.case.label());
        for sample in &row.samples {
            let _ = match sample {
                Some(x) => write!(
                    s,
                    " | {:>8.3} {:>7} {:>4.0}%",
                    x.cpu_us_per_msg,
                    opt(x.syscalls_per_msg, 3),
                    x.server_cpu * 100.0
                ),
                None => write!(s, " | {:>8} {:>7} {:>5}", "failed", "-", "-"),
            };
        }
        if has_sockloop {
            ratio_cells(&mut s, results, |peer| results.cpu_ratio(row, peer));
        }
        let _ = writeln!(s);
    }

    if results.rows.iter().any(|r| {
        r.samples
            .iter()
            .flatten()
            .any(|x| x.msgs_per_wait.is_some())
    }) {
        let _ = writeln!(
            s,
            "\nMessages echoed per epoll_wait (system-call pass): syscalls/msg is about 2 + 1/this for a server that reads and writes once per message"
        );
        let _ = write!(s, "{:label_w$}", "case conns");
        for k in &results.kinds {
            let _ = write!(s, " | {:>9}", k.name());
        }
        let _ = writeln!(s);
        for row in &results.rows {
            let _ = write!(s, "{:label_w$}", row.case.label());
            for x in &row.samples {
                let v = x.as_ref().and_then(|x| x.msgs_per_wait);
                let _ = write!(s, " | {:>9}", opt(v, 1));
            }
            let _ = writeln!(s);
        }
    }

    if results.rows.iter().any(|r| {
        r.samples
            .iter()
            .flatten()
            .any(|x| x.softirq_us_per_msg.is_some())
    }) {
        render_softirq(&mut s, results, label_w, has_sockloop);
    }

    if has_sockloop && results.kinds.contains(&Kind::Baseline) {
        render_ab(&mut s, results, label_w);
    }

    for row in results.rows.iter().filter(|r| r.case.idle > 0) {
        let conns = row.case.idle + row.case.active;
        let _ = writeln!(
            s,
            "\nServer memory per connection: growth of VmRSS from before connecting to all {} idle + {} active connections accepted (no traffic yet), / {conns}",
            row.case.idle, row.case.active
        );
        for (k, sample) in results.kinds.iter().zip(&row.samples) {
            let v = sample.as_ref().map(|x| x.rss_per_conn);
            let _ = writeln!(s, "  {:9} {:>7} B/conn", k.name(), opt(v, 0));
        }
    }

    for row in &results.rows {
        for (k, per_round) in results.kinds.iter().zip(&row.rounds) {
            for (round, x) in per_round.iter().enumerate() {
                match x {
                    Some(x) if !x.load_ok => {
                        let _ = writeln!(
                            s,
                            "WARNING {} on {}, round {}: established {}/{}; {}",
                            row.case.label(),
                            k.name(),
                            round + 1,
                            x.established,
                            row.case.active + row.case.idle,
                            x.issues
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "WARNING {} on {}, round {}: measurement failed (see stderr)",
                            row.case.label(),
                            k.name(),
                            round + 1
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    s
}

/// One `sockloop/<peer>` column heading per peer.
fn peer_headers(s: &mut String, results: &Results) {
    for peer in results.peers() {
        let _ = write!(s, " | {:^19}", format!("sockloop/{}", peer.name()));
    }
}

/// One `median [min-max]` cell per peer, from `ratio`.
fn ratio_cells(s: &mut String, results: &Results, ratio: impl Fn(Kind) -> Option<Ratio>) {
    for peer in results.peers() {
        let text = ratio(peer).map_or("-".to_string(), |r| {
            format!("{:.3} [{:.2}-{:.2}]", r.median, r.min, r.max)
        });
        let _ = write!(s, " | {text:>19}");
    }
}

/// The table of the server CPU's deferred softirq work, and the CPU ratios with it counted.
fn render_softirq(s: &mut String, results: &Results, label_w: usize, has_sockloop: bool) {
    let _ = writeln!(
        s,
        "\nDeferred softirq work: ksoftirqd on the server's CPU, µs per echoed message (not in CPU µs above: the kernel moves\n\
         softirq work there once the CPU is saturated, and how much moves differs by server); ratio: (CPU µs + this), sockloop over the peer's"
    );
    let _ = write!(s, "{:label_w$}", "case conns");
    for k in &results.kinds {
        let _ = write!(s, " | {:>9}", k.name());
    }
    if has_sockloop {
        peer_headers(s, results);
    }
    let _ = writeln!(s);
    for row in &results.rows {
        let _ = write!(s, "{:label_w$}", row.case.label());
        for x in &row.samples {
            let v = x.as_ref().and_then(|x| x.softirq_us_per_msg);
            let _ = write!(s, " | {:>9}", opt(v, 3));
        }
        if has_sockloop {
            ratio_cells(s, results, |peer| results.cpu_with_softirq_ratio(row, peer));
        }
        let _ = writeln!(s);
    }
}

/// A figure of the A/B table: its heading and how to read it off a sample (`None`: not
/// measured in that round).
type Figure = (&'static str, fn(&Sample) -> Option<f64>);

/// The figures the A/B table compares, those measured in this run: CPU per message (with the
/// deferred softirq work too, if read), throughput, the client's latency and, if counted,
/// system calls per message.
fn ab_figures(results: &Results) -> Vec<Figure> {
    let any = |f: fn(&Sample) -> Option<f64>| {
        results
            .rows
            .iter()
            .any(|r| r.rounds.iter().flatten().flatten().any(|x| f(x).is_some()))
    };
    let mut figures: Vec<Figure> = vec![("CPU µs/msg", |x| Some(x.cpu_us_per_msg))];
    let softirq: fn(&Sample) -> Option<f64> = |x| Some(x.cpu_us_per_msg + x.softirq_us_per_msg?);
    if any(softirq) {
        figures.push(("CPU+softirq/msg", softirq));
    }
    figures.extend([
        (
            "msgs/s",
            (|x| Some(x.msgs_per_sec)) as fn(&Sample) -> Option<f64>,
        ),
        ("p50 µs", |x| Some(x.p50_us)),
        ("p99 µs", |x| Some(x.p99_us)),
    ]);
    if any(|x| x.syscalls_per_msg) {
        figures.push(("syscalls/msg", |x| x.syscalls_per_msg));
    }
    figures
}

/// The A/B table: each figure of sockloop (this build) over the baseline build's, as the median
/// [range] of the per-round ratios.
fn render_ab(s: &mut String, results: &Results, label_w: usize) {
    let figures = ab_figures(results);
    let _ = writeln!(
        s,
        "\nA/B, this build over the baseline build (--baseline): sockloop/baseline per figure, median [range] of the per-round ratios\n\
         (below 1 is better for CPU, latency and system calls, above 1 for msgs/s; syscalls/msg only from the rounds with the system-call pass)"
    );
    let _ = write!(s, "{:label_w$}", "case conns");
    for (name, _) in &figures {
        let _ = write!(s, " | {name:^19}");
    }
    let _ = writeln!(s);
    for row in &results.rows {
        let _ = write!(s, "{:label_w$}", row.case.label());
        for &(_, f) in &figures {
            let text = results
                .ratio(row, Kind::Baseline, f)
                .map_or("-".to_string(), |r| {
                    format!("{:.3} [{:.2}-{:.2}]", r.median, r.min, r.max)
                });
            let _ = write!(s, " | {text:>19}");
        }
        let _ = writeln!(s);
    }
}

/// Writes `echo-ab.csv` into `dir` if the run compared sockloop with a baseline build: per case
/// and figure, the median and range of the per-round ratios sockloop/baseline. Returns whether
/// it wrote the file.
pub fn write_ab_csv(results: &Results, dir: &Path) -> io::Result<bool> {
    if !(results.kinds.contains(&Kind::Sockloop) && results.kinds.contains(&Kind::Baseline)) {
        return Ok(false);
    }
    let mut csv = String::from(
        "case,active_connections,idle_connections,figure,ratio_median,ratio_min,ratio_max\n",
    );
    for row in &results.rows {
        for (name, f) in ab_figures(results) {
            if let Some(r) = results.ratio(row, Kind::Baseline, f) {
                let _ = writeln!(
                    csv,
                    "{},{},{},{name},{:.4},{:.4},{:.4}",
                    row.case.name, row.case.active, row.case.idle, r.median, r.min, r.max
                );
            }
        }
    }
    fs::write(dir.join("echo-ab.csv"), csv)?;
    Ok(true)
}

const CSV_HEADER: &str = "case,active_connections,idle_connections,server,round,msgs_per_sec,\
    p50_us,p99_us,cpu_us_per_msg,cpu_ratio_sockloop_over_server,syscalls_per_msg,\
    msgs_per_epoll_wait,server_cpu_pct,ksoftirqd_us_per_msg,\
    rss_bytes_per_conn,client_messages,server_messages,window_s,established,load_ok,issues\n";

fn csv_line(s: &mut String, case: &Case, kind: Kind, round: &str, x: &Sample, ratio: Option<f64>) {
    let _ = writeln!(
        s,
        "{},{},{},{},{round},{:.0},{:.2},{:.2},{:.4},{},{},{},{:.1},{},{:.1},{},{},{:.3},{},{},{}",
        case.name,
        case.active,
        case.idle,
        kind.name(),
        x.msgs_per_sec,
        x.p50_us,
        x.p99_us,
        x.cpu_us_per_msg,
        opt(ratio, 4),
        opt(x.syscalls_per_msg, 4),
        opt(x.msgs_per_wait, 2),
        x.server_cpu * 100.0,
        opt(x.softirq_us_per_msg, 4),
        x.rss_per_conn,
        x.messages,
        x.server_messages,
        x.window_s,
        x.established,
        x.load_ok,
        x.issues.replace([',', '"', '\n'], ";"),
    );
}

/// Writes `echo.csv` (one line per case and server: the medians, round = `median`) and
/// `echo-rounds.csv` (every round) into `dir`.
pub fn write_csv(results: &Results, dir: &Path) -> io::Result<()> {
    let (mut medians, mut all) = (String::from(CSV_HEADER), String::from(CSV_HEADER));
    for row in &results.rows {
        for (i, &k) in results.kinds.iter().enumerate() {
            let ratio = (k != Kind::Sockloop)
                .then(|| results.cpu_ratio(row, k).map(|r| r.median))
                .flatten();
            if let Some(x) = &row.samples[i] {
                csv_line(&mut medians, &row.case, k, "median", x, ratio);
            }
            let ours = results.index(Kind::Sockloop).map(|j| &row.rounds[j]);
            for (round, x) in row.rounds[i].iter().enumerate() {
                let Some(x) = x else { continue };
                let ratio = ours
                    .and_then(|o| o[round].as_ref())
                    .filter(|_| k != Kind::Sockloop)
                    .map(|o| o.cpu_us_per_msg / x.cpu_us_per_msg);
                csv_line(&mut all, &row.case, k, &(round + 1).to_string(), x, ratio);
            }
        }
    }
    fs::write(dir.join("echo.csv"), medians)?;
    fs::write(dir.join("echo-rounds.csv"), all)
}

/// Line colours per server.
fn colour(kind: Kind) -> RGBColor {
    match kind {
        Kind::Sockloop => RGBColor(0xd6, 0x27, 0x28),
        Kind::Tokio => RGBColor(0x1f, 0x77, 0xb4),
        Kind::Mio => RGBColor(0x2c, 0xa0, 0x2c),
        Kind::Baseline => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

/// Two panels over the ping-pong rows (log-log): server CPU µs per message, and messages per
/// second (medians).
pub fn write_svg(results: &Results, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<&Row> = results.rows.iter().filter(|r| r.case.idle == 0).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let series = |f: &dyn Fn(&Sample) -> f64, k: Kind| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| results.sample(r, k).map(|x| (r.case.active as f64, f(x))))
            .collect()
    };
    let max_conns = rows.iter().map(|r| r.case.active).max().unwrap_or(1) as f64 * 2.0;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    type Metric<'a> = (&'a str, &'a dyn Fn(&Sample) -> f64);
    let metrics: [Metric<'_>; 2] = [
        ("server CPU µs per message", &|x: &Sample| x.cpu_us_per_msg),
        ("messages per second", &|x: &Sample| x.msgs_per_sec),
    ];
    for (panel, (title, f)) in panels.iter().zip(metrics) {
        let ys: Vec<f64> = results
            .kinds
            .iter()
            .flat_map(|&k| series(f, k))
            .map(|(_, y)| y)
            .filter(|&y| y > 0.0)
            .collect();
        let y_max = ys.iter().copied().fold(1e-9, f64::max) * 1.3;
        // From a power of ten: plotters labels a log axis from the first power of ten in range.
        let y_min = 10f64.powf(
            (ys.iter().copied().fold(y_max, f64::min) / 1.3)
                .log10()
                .floor(),
        );
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("echo, 64 B ping-pong: {title}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0.7f64..max_conns).log_scale(), (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .y_labels(20)
            .x_desc("connections (log)")
            .y_desc(format!("{title} (log)"))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 100.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .draw()?;
        for &k in &results.kinds {
            let points = series(f, k);
            let c = colour(k);
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
                .label(k.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
