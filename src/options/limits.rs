//! The limits one connection is held to, and their defaults. `ListenOptions` and
//! `ConnectOptions` set them; the engine keeps one copy per listener (`src/engine/classes.rs`).

use std::time::Duration;

/// Unconsumed input a handler may leave before its connection is reset: 1 MiB, Redis's and
/// nginx's order of magnitude for a request that is still incomplete.
pub(crate) const DEFAULT_MAX_INPUT: usize = 1 << 20;
/// Queued output above which a connection stops reading and is reported not writable. Low
/// enough that 100 clients which send and never read cost the server tens of MiB, not hundreds.
pub(crate) const DEFAULT_HIGH_WATER: usize = 256 << 10;
/// Queued output at or below which a paused connection reads again and is reported writable.
pub(crate) const DEFAULT_LOW_WATER: usize = 64 << 10;
/// Queued output above which a connection is reset: only a handler that ignores writability
/// (keeps writing to a peer that does not read) gets there.
pub(crate) const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

/// What one connection may hold and how long it may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_input: usize,
    pub(crate) high_water: usize,
    pub(crate) low_water: usize,
    pub(crate) max_output: usize,
    pub(crate) first_bytes: Option<Duration>,
    /// Stop reading while the output is over the high watermark. Right for request/response
    /// protocols (the input is what produces the output); wrong for a proxy's connections, whose
    /// two directions are independent: there pausing couples them, and two such connections
    /// backed up against each other would wait forever.
    pub(crate) pause_reads: bool,
}

/// The defaults, also the answer for a class that does not exist (which would be a bug; a
/// lookup must not panic on an I/O path for it).
pub(crate) const DEFAULT_LIMITS: Limits = Limits {
    max_input: DEFAULT_MAX_INPUT,
    high_water: DEFAULT_HIGH_WATER,
    low_water: DEFAULT_LOW_WATER,
    max_output: DEFAULT_MAX_OUTPUT,
    first_bytes: None,
    pause_reads: true,
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

impl Limits {
    /// Sets the output watermarks, the low one clamped to the high one (shared by
    /// `ListenOptions` and `ConnectOptions`).
    pub(crate) fn set_watermarks(&mut self, low: usize, high: usize) {
        self.high_water = high.max(1);
        self.low_water = low.min(self.high_water);
    }

    /// Orders the marks so that `low <= high <= max_output` whatever the user set: a low mark
    /// above the high one would resume reading while still over it, and a cap below the high
    /// mark would reset connections that are merely slow.
    pub(crate) fn normalized(mut self) -> Limits {
        self.max_input = self.max_input.max(1);
        self.high_water = self.high_water.max(1);
        self.low_water = self.low_water.min(self.high_water);
        self.max_output = self.max_output.max(self.high_water);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_ordered_whatever_was_asked() {
        let l = Limits {
            high_water: 100,
            low_water: 500,
            max_output: 10,
            ..Limits::default()
        }
        .normalized();
        assert_eq!((l.low_water, l.high_water, l.max_output), (100, 100, 100));
    }
}
