//! Progress snapshots and the indicatif bars that show them.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::report::per_sec;
use super::track::Stage;

/// A snapshot for progress display, reported about every 100 ms.
#[derive(Clone, Debug)]
pub struct Progress {
    pub stage: Stage,
    /// Connections asked for, active and idle.
    pub total: usize,
    pub established: usize,
    pub failed: usize,
    /// Round trips completed since the warmup started.
    pub round_trips: u64,
    /// Round trips recorded in the measured window.
    pub measured: u64,
    pub limit: Option<u64>,
    pub stage_elapsed: Duration,
    /// Planned length of the stage, if it is timed.
    pub stage_length: Option<Duration>,
}

/// indicatif bars for [`Progress`] snapshots: a bar while connecting, one while warming up and
/// measuring, a spinner while draining and closing. Drawn on stderr, hidden when it is not a
/// terminal.
pub struct ProgressBars {
    bar: Option<ProgressBar>,
    stage: Option<Stage>,
}

impl Default for ProgressBars {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressBars {
    pub fn new() -> Self {
        ProgressBars {
            bar: None,
            stage: None,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        if self.stage != Some(p.stage) {
            self.start(p);
        }
        // What the rate counts: connections while connecting, round trips after.
        let count = match p.stage {
            Stage::Connecting => (p.established + p.failed) as u64,
            Stage::Measuring => p.measured,
            _ => p.round_trips,
        };
        // The stage's average: steadier than a per-update rate.
        let rate = per_sec(count as f64, p.stage_elapsed);
        let Some(bar) = &self.bar else { return };
        match p.stage {
            Stage::Connecting => {
                bar.set_length(p.total as u64); // grows as a parent hears from more workers
                bar.set_position(count);
                let failed = match p.failed {
                    0 => String::new(),
                    n => format!(", {n} failed"),
                };
                bar.set_message(format!("{rate:.0}/s{failed}"));
            }
            Stage::Warmup | Stage::Measuring => {
                match (p.stage, p.limit) {
                    (Stage::Measuring, Some(_)) => bar.set_position(p.measured),
                    _ => bar.set_position(p.stage_elapsed.as_millis() as u64),
                }
                bar.set_message(format!("{count} round trips, {rate:.0}/s"));
            }
            Stage::Draining | Stage::Closing => bar.tick(),
        }
    }

    fn start(&mut self, p: &Progress) {
        self.finish();
        self.stage = Some(p.stage);
        let prefix = match p.stage {
            Stage::Connecting => "connecting",
            Stage::Warmup => "warmup",
            Stage::Measuring => "measuring",
            Stage::Draining => "draining",
            Stage::Closing => "closing",
        };
        let timed = "{prefix:>10} [{bar:30}] {elapsed:>3} {msg}";
        let (len, template) = match (p.stage, p.limit, p.stage_length) {
            (Stage::Connecting, ..) => {
                (p.total as u64, "{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
            }
            (Stage::Measuring, Some(limit), _) => (limit, timed),
            (Stage::Warmup | Stage::Measuring, _, Some(len)) => (len.as_millis() as u64, timed),
            _ => (0, "{prefix:>10} {spinner} {elapsed} {msg}"),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix);
        self.bar = Some(bar);
    }

    /// Leaves the current bar as it stands.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            if bar.length() == Some(0) {
                bar.finish_and_clear();
            } else {
                bar.finish();
            }
        }
    }
}
