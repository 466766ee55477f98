//! The connection's condition beside its [`State`](super::State): eight independent facts, one
//! bit each, read and set through named methods. The state diagram in `src/conn/mod.rs` says
//! where each one matters.

use std::fmt;

/// The flags of one connection. One byte, so an idle connection stays small (a slot fits a cache line).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

/// One flag, for [`Flags::set`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Flag {
    /// A write stopped on `WouldBlock`; `on_drained` is due once the queue empties.
    WriteBlocked = 1,
    /// `shutdown_write` was asked for: send FIN once the queue is empty.
    FinPending = 1 << 1,
    /// Our FIN has been sent.
    FinSent = 1 << 2,
    /// The peer's FIN has been read.
    FinSeen = 1 << 3,
    /// On the reactor's dirty list (to be flushed in step 4); keeps it from being listed twice.
    Dirty = 1 << 4,
    /// Queued output went above the high watermark: reading is paused until it is down to the
    /// low one, and the handler was told the connection is not writable.
    OverHigh = 1 << 5,
    /// Armed with a first-bytes timeout: the handler has not consumed any input yet.
    AwaitingFirst = 1 << 6,
    /// Reading paused by a handler (`Context::pause_reading`); independent of `OverHigh`, and
    /// both must be clear for reads to happen.
    ReadPaused = 1 << 7,
}

impl Flags {
    /// Sets (`on`) or clears one flag.
    pub(crate) fn set(&mut self, flag: Flag, on: bool) {
        if on {
            self.0 |= flag as u8;
        } else {
            self.0 &= !(flag as u8);
        }
    }

    fn has(self, flag: Flag) -> bool {
        self.0 & flag as u8 != 0
    }

    /// A write stopped on `WouldBlock` since the queue was last empty.
    pub(crate) fn write_blocked(self) -> bool {
        self.has(Flag::WriteBlocked)
    }

    /// FIN is to be sent once the output queue is empty.
    pub(crate) fn fin_pending(self) -> bool {
        self.has(Flag::FinPending)
    }

    /// Our FIN is out.
    pub(crate) fn fin_sent(self) -> bool {
        self.has(Flag::FinSent)
    }

    /// The peer's FIN has been read.
    pub(crate) fn fin_seen(self) -> bool {
        self.has(Flag::FinSeen)
    }

    /// On the dirty list.
    pub(crate) fn dirty(self) -> bool {
        self.has(Flag::Dirty)
    }

    /// Over the high watermark (not writable).
    pub(crate) fn over_high(self) -> bool {
        self.has(Flag::OverHigh)
    }

    /// Waiting for the handler's first consumed input.
    pub(crate) fn awaiting_first(self) -> bool {
        self.has(Flag::AwaitingFirst)
    }

    /// Reading paused by a handler.
    pub(crate) fn read_paused(self) -> bool {
        self.has(Flag::ReadPaused)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = [
            Flag::WriteBlocked,
            Flag::FinPending,
            Flag::FinSent,
            Flag::FinSeen,
            Flag::Dirty,
            Flag::OverHigh,
            Flag::AwaitingFirst,
            Flag::ReadPaused,
        ];
        f.debug_list()
            .entries(all.iter().filter(|&&flag| self.has(flag)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Flag, Flags};

    #[test]
    fn flags_are_independent() {
        let mut flags = Flags::default();
        flags.set(Flag::OverHigh, true);
        flags.set(Flag::ReadPaused, true);
        assert!(flags.over_high() && flags.read_paused() && !flags.dirty());
        flags.set(Flag::OverHigh, false);
        assert!(!flags.over_high() && flags.read_paused());
        assert_eq!(format!("{flags:?}"), "[ReadPaused]");
    }
}
