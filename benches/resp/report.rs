//! The resp bench's results: medians, per-round ratios against Redis, two tables and CSV files.

use std::path::Path;

use crate::common::out;
use crate::common::stats::{median, Ratio};

/// The name of the real Redis among the servers; every ratio is some server over this one.
pub const REDIS: &str = "redis";

/// One `redis-benchmark` result line of one invocation.
#[derive(Clone, Debug)]
pub struct Sample {
    pub round: usize,
    pub server: String,
    /// Pipeline depth (1: none).
    pub pipeline: usize,
    /// `redis-benchmark`'s test name: PING_INLINE, PING_MBULK, SET, GET.
    pub test: String,
    pub rps: f64,
    pub p50_ms: f64,
    /// Server CPU over the whole invocation, divided by every request in it.
    pub cpu_us_per_req: f64,
    /// The server's voluntary context switches (sleeps) per 1,000 requests, likewise.
    pub sleeps_per_kreq: f64,
}

/// One printed table: which figure of the samples it shows, and how.
struct Table {
    title: &'static str,
    /// Prefix of its ratio columns.
    short: &'static str,
    field: fn(&Sample) -> f64,
    decimals: usize,
}

/// The samples of one table row: one test at one pipeline depth.
struct Row<'a> {
    samples: Vec<&'a Sample>,
}

impl Row<'_> {
    fn median(&self, server: &str, field: fn(&Sample) -> f64) -> f64 {
        let values = self.samples.iter().filter(|s| s.server == server);
        median(values.map(|s| field(s)).collect()).unwrap_or(f64::NAN)
    }

    /// `server`/Redis of `field` in each round where both ran.
    fn ratio(&self, server: &str, field: fn(&Sample) -> f64) -> Ratio {
        let of = |name: &str, round: usize| {
            self.samples
                .iter()
                .find(|s| s.server == name && s.round == round)
                .map(|s| field(s))
        };
        let rounds = self
            .samples
            .iter()
            .map(|s| s.round)
            .max()
            .map_or(0, |r| r + 1);
        Ratio::of(
            (0..rounds)
                .filter_map(|r| Some(of(server, r)? / of(REDIS, r)?))
                .collect(),
        )
    }
}

/// Prints the two tables (requests/s, server CPU per request) and writes `resp.csv` (medians
/// and ratios) and `resp-rounds.csv` (every sample) into `out`. `servers` are the sockloop
/// variants, in column order.
pub fn report(samples: &[Sample], servers: &[String], out: &Path) -> Result<(), String> {
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for s in samples {
        if !keys.contains(&(s.pipeline, s.test.as_str())) {
            keys.push((s.pipeline, &s.test));
        }
    }
    let rows: Vec<(usize, &str, Row<'_>)> = keys
        .iter()
        .map(|&(pipeline, test)| {
            let samples = samples
                .iter()
                .filter(|s| s.pipeline == pipeline && s.test == test)
                .collect();
            (pipeline, test, Row { samples })
        })
        .collect();
    let tables = [
        Table {
            title: "requests/s (median)",
            short: "req/s",
            field: |s| s.rps,
            decimals: 0,
        },
        Table {
            title: "server CPU µs per request (median)",
            short: "CPU",
            field: |s| s.cpu_us_per_req,
            decimals: 2,
        },
        Table {
            title: "server sleeps (voluntary context switches) per 1,000 requests (median)",
            short: "sleeps",
            field: |s| s.sleeps_per_kreq,
            decimals: 1,
        },
    ];
    let mut csv = String::from(
        "test,pipeline,server,rps,rps_ratio,rps_ratio_min,rps_ratio_max,cpu_us_per_req,cpu_ratio,cpu_ratio_min,cpu_ratio_max,sleeps_per_kreq,p50_ms\n",
    );
    for Table {
        title,
        short,
        field,
        decimals,
    } in tables
    {
        println!("\n{title}; ratio: median of the per-round ratios to Redis [their range]\n");
        let mut header = format!("| test | -P | {REDIS} |");
        let mut rule = String::from("|---|---|---|");
        for server in servers {
            header.push_str(&format!(" {server} | {short} {server}/{REDIS} |"));
            rule.push_str("---|---|");
        }
        println!("{header}\n{rule}");
        for (pipeline, test, row) in &rows {
            let mut line = format!(
                "| {test} | {pipeline} | {:.decimals$} |",
                row.median(REDIS, field)
            );
            for server in servers {
                line.push_str(&format!(
                    " {:.decimals$} | {} |",
                    row.median(server, field),
                    row.ratio(server, field)
                ));
            }
            println!("{line}");
        }
    }
    for (pipeline, test, row) in &rows {
        for server in servers.iter().map(String::as_str).chain([REDIS]) {
            let rps = row.ratio(server, |s| s.rps);
            let cpu = row.ratio(server, |s| s.cpu_us_per_req);
            csv.push_str(&format!(
                "{test},{pipeline},{server},{:.0},{:.3},{:.3},{:.3},{:.4},{:.3},{:.3},{:.3},{:.2},{:.3}\n",
                row.median(server, |s| s.rps),
                rps.median,
                rps.min,
                rps.max,
                row.median(server, |s| s.cpu_us_per_req),
                cpu.median,
                cpu.min,
                cpu.max,
                row.median(server, |s| s.sleeps_per_kreq),
                row.median(server, |s| s.p50_ms),
            ));
        }
    }
    let mut rounds =
        String::from("round,server,pipeline,test,rps,p50_ms,cpu_us_per_req,sleeps_per_kreq\n");
    for s in samples {
        rounds.push_str(&format!(
            "{},{},{},{},{:.2},{:.3},{:.4},{:.2}\n",
            s.round,
            s.server,
            s.pipeline,
            s.test,
            s.rps,
            s.p50_ms,
            s.cpu_us_per_req,
            s.sleeps_per_kreq
        ));
    }
    out::write_csv_files(
        out,
        [
            ("resp.csv".to_string(), csv),
            ("resp-rounds.csv".to_string(), rounds),
        ],
    )
}
