//! Progress snapshots and the indicatif bars that show them.

use std::time::{Duration, Instant};

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
    last: (Instant, u64),
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
            last: (Instant::now(), 0),
        }
    }

    pub fn update(&mut self, p: &Progress) {
        if self.stage != Some(p.stage) {
            self.start(p);
        }
        let Some(bar) = &self.bar else { return };
        match p.stage {
            Stage::Connecting => {
                bar.set_position((p.established + p.failed) as u64);
                if p.failed > 0 {
                    bar.set_message(format!("{} failed", p.failed));
                }
            }
            Stage::Warmup | Stage::Measuring => {
                match (p.stage, p.limit) {
                    (Stage::Measuring, Some(_)) => bar.set_position(p.measured),
                    _ => bar.set_position(p.stage_elapsed.as_millis() as u64),
                }
                let (at, before) = self.last;
                let rate = per_sec(p.round_trips.saturating_sub(before) as f64, at.elapsed());
                self.last = (Instant::now(), p.round_trips);
                bar.set_message(format!("{} round trips, {rate:.0}/s", p.round_trips));
            }
            Stage::Draining | Stage::Closing => bar.tick(),
        }
    }

    fn start(&mut self, p: &Progress) {
        self.finish();
        self.stage = Some(p.stage);
        let (len, template, prefix) = match (p.stage, p.limit, p.stage_length) {
            (Stage::Connecting, ..) => (
                p.total as u64,
                "{prefix:>10} [{bar:40}] {pos}/{len} {per_sec:>10} {msg}",
                "connecting",
            ),
            (Stage::Measuring, Some(limit), _) => (
                limit,
                "{prefix:>10} [{bar:40}] {elapsed:>4} {msg}",
                "measuring",
            ),
            (Stage::Warmup | Stage::Measuring, _, Some(len)) => (
                len.as_millis() as u64,
                "{prefix:>10} [{bar:40}] {elapsed:>4} {msg}",
                if p.stage == Stage::Warmup {
                    "warmup"
                } else {
                    "measuring"
                },
            ),
            (Stage::Draining, ..) => (0, "{prefix:>10} {spinner} {elapsed}", "draining"),
            _ => (0, "{prefix:>10} {spinner} {elapsed}", "closing"),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(prefix);
        self.last = (Instant::now(), p.round_trips);
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
