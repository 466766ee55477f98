//! The outcome of a run: counts, rates, the latency histogram, and the problems seen; and its
//! text form, which carries a worker process's report to its parent exactly.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::track::new_histogram;

/// What a run measured and what went wrong.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Connections asked for (active + idle).
    pub requested: usize,
    pub established: usize,
    pub failed: usize,
    /// Round trips completed and verified in the measured window.
    pub messages: u64,
    /// Echoed bytes verified in the measured window (one direction).
    pub bytes: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// How long the connect phase took (the longest of several processes').
    pub connect_time: Duration,
    /// Connects abandoned after stalling and made again (`LoadConfig::connect_retry`): each
    /// one is a SYN the server's full accept queue made the kernel drop.
    pub connect_retries: u64,
    /// Round-trip latency in nanoseconds, measured window only.
    pub latency: Histogram<u64>,
    /// The first few problems in words (lost/reordered/corrupted bytes, failed connects, resets).
    pub errors: Vec<String>,
    /// Connections that saw a wrong byte, or an EOF or reset with bytes in flight.
    pub corrupted: u64,
    /// Connections the server closed or reset before we closed them.
    pub dropped: usize,
    /// Bytes sent but never echoed by the end of the drain.
    pub lost_bytes: u64,
}

impl LoadReport {
    /// Every connection was established, and every echoed byte was right and came back.
    pub fn ok(&self) -> bool {
        self.established == self.requested
            && self.failed == 0
            && self.corrupted == 0
            && self.dropped == 0
            && self.lost_bytes == 0
            && self.errors.is_empty()
    }

    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.messages as f64, self.elapsed)
    }

    /// Echoed payload, one direction, in 10^6 bytes per second.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// Latency at quantile `q` (0..=1), in nanoseconds.
    pub fn latency_at(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// A few human-readable lines: connections, rates, latency, verification.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "connections: {} established in {:.2} s, {} failed (of {})",
            self.established,
            self.connect_time.as_secs_f64(),
            self.failed,
            self.requested
        );
        if self.connect_retries > 0 {
            let _ = write!(
                s,
                "; {} stalled connects made again (the server's accept queue was full)",
                self.connect_retries
            );
        }
        s.push('\n');
        let _ = writeln!(
            s,
            "throughput:  {} round trips in {:.2} s = {:.0} msg/s, {:.2} MB/s echoed",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec(),
            self.mb_per_sec()
        );
        let _ = writeln!(
            s,
            "latency:     p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_ns(self.latency_at(0.5)),
            fmt_ns(self.latency_at(0.99)),
            fmt_ns(self.latency_at(0.999)),
            fmt_ns(self.latency.max())
        );
        if self.corrupted != 0 || self.dropped != 0 || self.lost_bytes != 0 {
            let _ = writeln!(
                s,
                "FAILED:      {} connections corrupted, {} dropped by the server, {} bytes lost",
                self.corrupted, self.dropped, self.lost_bytes
            );
        } else if self.established == 0 {
            let _ = writeln!(s, "verified:    nothing (no connection was established)");
        } else {
            let _ = writeln!(s, "verified:    every echoed byte, in order");
        }
        for e in &self.errors {
            let _ = writeln!(s, "  problem: {e}");
        }
        s
    }

    /// Adds another process's report (for runs split over several client processes). The
    /// histograms merge exactly; the window is the longest of the two.
    pub fn merge(&mut self, other: &LoadReport) {
        self.requested += other.requested;
        self.established += other.established;
        self.failed += other.failed;
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.connect_time = self.connect_time.max(other.connect_time);
        self.connect_retries += other.connect_retries;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        self.errors.extend(other.errors.iter().cloned());
        self.corrupted += other.corrupted;
        self.dropped += other.dropped;
        self.lost_bytes += other.lost_bytes;
    }

    /// The report as text lines, for a parent process to read back with
    /// [`from_lines`](Self::from_lines). The histogram is written as `value:count` pairs, one
    /// per recorded bucket, which rebuilds it exactly.
    pub fn to_lines(&self) -> String {
        let mut s = format!(
            "report {} {} {} {} {} {} {} {} {} {} {}\nlatency",
            self.requested,
            self.established,
            self.failed,
            self.messages,
            self.bytes,
            self.elapsed.as_nanos(),
            self.corrupted,
            self.dropped,
            self.lost_bytes,
            self.connect_time.as_nanos(),
            self.connect_retries
        );
        for v in self.latency.iter_recorded() {
            let _ = write!(s, " {}:{}", v.value_iterated_to(), v.count_at_value());
        }
        for e in &self.errors {
            let _ = write!(s, "\nerror {}", e.replace('\n', " "));
        }
        s.push_str("\nend\n");
        s
    }

    /// Parses what [`to_lines`](Self::to_lines) wrote (other lines are ignored).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<LoadReport, String> {
        let mut report = LoadReport::empty();
        let mut seen = false;
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "report" => {
                    let n: Vec<u128> = rest
                        .split_whitespace()
                        .map(|x| {
                            x.parse()
                                .map_err(|e| format!("bad report line {line:?}: {e}"))
                        })
                        .collect::<Result<_, _>>()?;
                    if n.len() != 11 {
                        return Err(format!("bad report line {line:?}"));
                    }
                    report.requested = n[0] as usize;
                    report.established = n[1] as usize;
                    report.failed = n[2] as usize;
                    report.messages = n[3] as u64;
                    report.bytes = n[4] as u64;
                    report.elapsed = Duration::from_nanos(n[5] as u64);
                    report.corrupted = n[6] as u64;
                    report.dropped = n[7] as usize;
                    report.lost_bytes = n[8] as u64;
                    report.connect_time = Duration::from_nanos(n[9] as u64);
                    report.connect_retries = n[10] as u64;
                    seen = true;
                }
                "latency" => {
                    for pair in rest.split_whitespace() {
                        let parsed = pair
                            .split_once(':')
                            .and_then(|(v, c)| Some((v.parse().ok()?, c.parse().ok()?)));
                        let (value, count) =
                            parsed.ok_or_else(|| format!("bad latency pair {pair:?}"))?;
                        report.latency.saturating_record_n(value, count);
                    }
                }
                "error" => report.errors.push(rest.to_string()),
                _ => {}
            }
        }
        if seen {
            Ok(report)
        } else {
            Err("no report line".to_string())
        }
    }

    /// A report of nothing, to merge others into.
    pub fn empty() -> LoadReport {
        LoadReport {
            requested: 0,
            established: 0,
            failed: 0,
            messages: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            connect_time: Duration::ZERO,
            connect_retries: 0,
            latency: new_histogram(),
            errors: Vec::new(),
            corrupted: 0,
            dropped: 0,
            lost_bytes: 0,
        }
    }
}

pub(super) fn per_sec(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Nanoseconds in the unit that reads best: `850 ns`, `12.3 µs`, `4.56 ms`, `1.20 s`.
pub fn fmt_ns(ns: u64) -> String {
    let ns = ns as f64;
    match ns {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n if n < 1e9 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}
