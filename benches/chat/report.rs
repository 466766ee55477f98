//! The chat bench's results: medians over the rounds, per-round ratios sockloop/tokio, two
//! tables on stdout and two CSV files.

use std::fs;
use std::path::Path;

/// The servers, in table order; every ratio is the first over the second.
pub const SERVERS: [&str; 2] = ["sockloop", "tokio"];

/// One measured window of one server at one sender count.
#[derive(Clone, Debug)]
pub struct Sample {
    pub round: usize,
    pub server: &'static str,
    pub senders: usize,
    pub members: usize,
    pub steps: u64,
    pub seconds: f64,
    /// Copies read by members per second (every line reaches every member but its sender).
    pub lines_per_s: f64,
    /// Server CPU time (user + kernel, all threads) per delivered copy.
    pub cpu_us_per_line: f64,
    /// Share of the window the server spent on a CPU, and the benchmark's own thread.
    pub server_busy: f64,
    pub client_busy: f64,
    /// Send to last member's copy, over the window's lines.
    pub p50_us: f64,
    pub p99_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The samples of one sender count.
struct Row<'a> {
    senders: usize,
    members: usize,
    samples: Vec<&'a Sample>,
}

impl Row<'_> {
    fn median(&self, server: &str, field: fn(&Sample) -> f64) -> f64 {
        median(
            self.samples
                .iter()
                .filter(|s| s.server == server)
                .map(|s| field(s))
                .collect(),
        )
    }

    /// sockloop/tokio of `field` in each round: (median, min, max).
    fn ratio(&self, field: fn(&Sample) -> f64) -> (f64, f64, f64) {
        let of = |server: &str, round: usize| {
            self.samples
                .iter()
                .find(|s| s.server == server && s.round == round)
                .map(|s| field(s))
        };
        let rounds = self.samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
        let v: Vec<f64> = (0..rounds)
            .filter_map(|r| Some(of(SERVERS[0], r)? / of(SERVERS[1], r)?))
            .collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(v), lo, hi)
    }

    /// "sockloop | tokio | ratio [min–max]" table cells.
    fn cells(&self, field: fn(&Sample) -> f64, decimals: usize) -> String {
        let (r, lo, hi) = self.ratio(field);
        format!(
            "{:.decimals$} | {:.decimals$} | {r:.2} [{lo:.2}–{hi:.2}]",
            self.median(SERVERS[0], field),
            self.median(SERVERS[1], field),
        )
    }
}

/// Prints the tables and writes `chat.csv` (medians and ratios per sender count and server) and
/// `chat-rounds.csv` (every sample) into `out`.
pub fn report(samples: &[Sample], out: &Path) -> Result<(), String> {
    let mut senders: Vec<usize> = samples.iter().map(|s| s.senders).collect();
    senders.sort_unstable();
    senders.dedup();
    let rows: Vec<Row<'_>> = senders
        .iter()
        .map(|&n| {
            let samples: Vec<&Sample> = samples.iter().filter(|s| s.senders == n).collect();
            Row {
                senders: n,
                members: samples.first().map_or(0, |s| s.members),
                samples,
            }
        })
        .collect();

    println!("\ndelivered lines (copies read by members) per second and server CPU per delivered line; medians over the rounds, ratio sockloop/tokio: median of the per-round ratios [their range]\n");
    println!("| senders | copies/step | lines/s sockloop | lines/s tokio | lines/s ratio | CPU µs/line sockloop | CPU µs/line tokio | CPU ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} |",
            row.senders,
            row.senders * (row.members - 1),
            row.cells(|s| s.lines_per_s, 0),
            row.cells(|s| s.cpu_us_per_line, 3),
        );
    }
    println!(
        "\nlatency, send to the last member's copy (µs), and share of the window on CPU (%)\n"
    );
    println!("| senders | p50 sockloop | p50 tokio | p50 ratio | p99 sockloop | p99 tokio | p99 ratio | server busy % sockloop / tokio | client busy % vs sockloop / vs tokio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let busy = |field: fn(&Sample) -> f64| {
            format!(
                "{:.0} / {:.0}",
                row.median(SERVERS[0], field) * 100.0,
                row.median(SERVERS[1], field) * 100.0
            )
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            row.senders,
            row.cells(|s| s.p50_us, 0),
            row.cells(|s| s.p99_us, 0),
            busy(|s| s.server_busy),
            busy(|s| s.client_busy),
        );
    }

    let mut csv = String::from(
        "senders,members,server,lines_per_s,lines_ratio,lines_ratio_min,lines_ratio_max,cpu_us_per_line,cpu_ratio,cpu_ratio_min,cpu_ratio_max,p50_us,p50_ratio,p99_us,p99_ratio,server_busy,client_busy\n",
    );
    for row in &rows {
        let (lines, lines_lo, lines_hi) = row.ratio(|s| s.lines_per_s);
        let (cpu, cpu_lo, cpu_hi) = row.ratio(|s| s.cpu_us_per_line);
        let (p50, _, _) = row.ratio(|s| s.p50_us);
        let (p99, _, _) = row.ratio(|s| s.p99_us);
        for server in SERVERS {
            csv.push_str(&format!(
                "{},{},{server},{:.0},{lines:.3},{lines_lo:.3},{lines_hi:.3},{:.4},{cpu:.3},{cpu_lo:.3},{cpu_hi:.3},{:.1},{p50:.3},{:.1},{p99:.3},{:.3},{:.3}\n",
                row.senders,
                row.members,
                row.median(server, |s| s.lines_per_s),
                row.median(server, |s| s.cpu_us_per_line),
                row.median(server, |s| s.p50_us),
                row.median(server, |s| s.p99_us),
                row.median(server, |s| s.server_busy),
                row.median(server, |s| s.client_busy),
            ));
        }
    }
    let mut rounds = String::from(
        "round,server,senders,members,steps,seconds,lines_per_s,cpu_us_per_line,p50_us,p99_us,server_busy,client_busy\n",
    );
    for s in samples {
        rounds.push_str(&format!(
            "{},{},{},{},{},{:.3},{:.0},{:.4},{:.1},{:.1},{:.3},{:.3}\n",
            s.round,
            s.server,
            s.senders,
            s.members,
            s.steps,
            s.seconds,
            s.lines_per_s,
            s.cpu_us_per_line,
            s.p50_us,
            s.p99_us,
            s.server_busy,
            s.client_busy
        ));
    }
    fs::create_dir_all(out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    for (name, text) in [("chat.csv", csv), ("chat-rounds.csv", rounds)] {
        let path = out.join(name);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    println!("\nCSV in {}", out.display());
    Ok(())
}
