//! A broadcast bench's results: medians over the rounds, per-round ratios sockloop/tokio, two
//! tables on stdout and two CSV files.

use std::path::Path;

use super::Bench;
use crate::common::out;
use crate::common::stats::{median, Ratio};

/// The servers, in table order; every ratio is the first over the second.
pub const SERVERS: [&str; 2] = ["sockloop", "tokio"];

/// One measured window of one server at one sender count.
#[derive(Clone, Debug)]
pub struct Sample {
    pub round: usize,
    pub server: &'static str,
    pub senders: usize,
    pub members: usize,
    /// Copies the server delivers per step (whether a sender hears itself is the chat's rule).
    pub copies_per_step: usize,
    pub steps: u64,
    pub seconds: f64,
    /// Copies read by members per second.
    pub copies_per_s: f64,
    /// Server CPU time (user + kernel, all threads) per delivered copy.
    pub cpu_us_per_copy: f64,
    /// Share of the window the server spent on a CPU, and the benchmark's own thread.
    pub server_busy: f64,
    pub client_busy: f64,
    /// Send to last member's copy, over the window's messages.
    pub p50_us: f64,
    pub p99_us: f64,
}

/// The samples of one sender count.
struct Row<'a> {
    senders: usize,
    members: usize,
    copies_per_step: usize,
    samples: Vec<&'a Sample>,
}

impl Row<'_> {
    fn median(&self, server: &str, field: fn(&Sample) -> f64) -> f64 {
        let values = self.samples.iter().filter(|s| s.server == server);
        median(values.map(|s| field(s)).collect()).unwrap_or(f64::NAN)
    }

    /// sockloop/tokio of `field` in each round.
    fn ratio(&self, field: fn(&Sample) -> f64) -> Ratio {
        let of = |server: &str, round: usize| {
            self.samples
                .iter()
                .find(|s| s.server == server && s.round == round)
                .map(|s| field(s))
        };
        let rounds = self.samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
        Ratio::of(
            (0..rounds)
                .filter_map(|r| Some(of(SERVERS[0], r)? / of(SERVERS[1], r)?))
                .collect(),
        )
    }

    /// "sockloop | tokio | ratio [min–max]" table cells.
    fn cells(&self, field: fn(&Sample) -> f64, decimals: usize) -> String {
        format!(
            "{:.decimals$} | {:.decimals$} | {}",
            self.median(SERVERS[0], field),
            self.median(SERVERS[1], field),
            self.ratio(field),
        )
    }
}

/// Prints the tables and writes `NAME.csv` (medians and ratios per sender count and server)
/// and `NAME-rounds.csv` (every sample) into `out`.
pub fn report(bench: &Bench, samples: &[Sample], out: &Path) -> Result<(), String> {
    let (name, unit) = (bench.name, bench.unit);
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
                copies_per_step: samples.first().map_or(0, |s| s.copies_per_step),
                samples,
            }
        })
        .collect();

    println!("\n{}; medians over the rounds, ratio sockloop/tokio: median of the per-round ratios [their range]\n", bench.rate_title);
    println!("| senders | copies/step | {unit}s/s sockloop | {unit}s/s tokio | {unit}s/s ratio | CPU µs/{unit} sockloop | CPU µs/{unit} tokio | CPU ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} |",
            row.senders,
            row.copies_per_step,
            row.cells(|s| s.copies_per_s, 0),
            row.cells(|s| s.cpu_us_per_copy, 3),
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

    let mut csv = format!(
        "senders,members,server,{unit}s_per_s,{unit}s_ratio,{unit}s_ratio_min,{unit}s_ratio_max,cpu_us_per_{unit},cpu_ratio,cpu_ratio_min,cpu_ratio_max,p50_us,p50_ratio,p99_us,p99_ratio,server_busy,client_busy\n",
    );
    for row in &rows {
        let copies = row.ratio(|s| s.copies_per_s);
        let cpu = row.ratio(|s| s.cpu_us_per_copy);
        let p50 = row.ratio(|s| s.p50_us).median;
        let p99 = row.ratio(|s| s.p99_us).median;
        for server in SERVERS {
            csv.push_str(&format!(
                "{},{},{server},{:.0},{:.3},{:.3},{:.3},{:.4},{:.3},{:.3},{:.3},{:.1},{p50:.3},{:.1},{p99:.3},{:.3},{:.3}\n",
                row.senders,
                row.members,
                row.median(server, |s| s.copies_per_s),
                copies.median,
                copies.min,
                copies.max,
                row.median(server, |s| s.cpu_us_per_copy),
                cpu.median,
                cpu.min,
                cpu.max,
                row.median(server, |s| s.p50_us),
                row.median(server, |s| s.p99_us),
                row.median(server, |s| s.server_busy),
                row.median(server, |s| s.client_busy),
            ));
        }
    }
    let mut rounds = format!(
        "round,server,senders,members,steps,seconds,{unit}s_per_s,cpu_us_per_{unit},p50_us,p99_us,server_busy,client_busy\n",
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
            s.copies_per_s,
            s.cpu_us_per_copy,
            s.p50_us,
            s.p99_us,
            s.server_busy,
            s.client_busy
        ));
    }
    out::write_csv_files(
        out,
        [
            (format!("{name}.csv"), csv),
            (format!("{name}-rounds.csv"), rounds),
        ],
    )
}
