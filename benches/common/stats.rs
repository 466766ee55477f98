//! Medians and ranges of a bench's rounds, and per-round ratios between two servers.
//!
//! A round runs the servers back to back, so a ratio within a round compares like with like
//! on a noisy machine; the median of those ratios, with their range, is what the tables quote.

use std::fmt;

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The smallest and the largest of `values` (infinity and minus infinity if empty).
pub fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Per-round ratios summarised: their median and range. Shown as "median [min–max]".
#[derive(Clone, Copy, Debug)]
pub struct Ratio {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Ratio {
    /// The summary of `ratios`; with none, the median is NaN (and the range empty).
    pub fn of(ratios: Vec<f64>) -> Ratio {
        let (min, max) = range(&ratios);
        Ratio {
            median: median(ratios).unwrap_or(f64::NAN),
            min,
            max,
        }
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2} [{:.2}–{:.2}]", self.median, self.min, self.max)
    }
}
