//! The engine: the only code that holds the reactor's state (`Core`) mutably or calls handlers.
//!
//! `Core` is made of parts, each owned by the module that changes it:
//!
//! | part | module | what it holds |
//! |---|---|---|
//! | `slots` | `slots.rs` | the slab of sources, generations, the still-ready queue |
//! | `output` | `output.rs` | the dirty list (output to flush in step 4), the buffer pool |
//! | `flush` | `flush_policy.rs` | when step 3 writes replies: at once, or in bursts |
//! | `flow` | `flow.rs` | writability owed to handlers marked from elsewhere |
//! | `closes` | `closing.rs` | slots to release in step 4 |
//! | `timers` | `timers.rs` | the timer queue and loop timers |
//! | `classes` | `classes.rs` | per-listener limits and connection counts |
//! | `admission` | `listeners.rs` | the reactor's connection limit, paused listeners |
//! | `sources` | `sources.rs` | foreign sources' readiness to report |
//! | `calls` | `calls.rs` | the panic policy, what the running callback did |
//! | `clock` | this file | the coarse loop time, busy polling |
//! | `jobs` | `jobs.rs` | jobs posted from other threads, and the waker |
//! | `dialing` | `dial.rs` | name lookups, Happy Eyeballs races |
//! | `udp_io` | `udp.rs` | the batch buffers of UDP receives and sends |
//!
//! The iteration itself, as five named steps, is in `iteration.rs`; one connection event, from
//! readiness to handler to flush decision, in `conn_event.rs`.

mod calls;
mod classes;
mod closing;
mod conn_event;
mod connect;
mod dial;
mod flow;
mod flush_policy;
mod iteration;
mod jobs;
mod listeners;
mod output;
#[cfg(feature = "proxy-protocol")]
mod proxy;
mod shutdown;
mod slots;
mod sources;
mod timer_queue;
mod timers;
mod udp;

use std::io;
use std::time::{Duration, Instant};

use mio::Poll;

pub(crate) use calls::Calls;
pub(crate) use classes::{Classes, OUTBOUND};
pub(crate) use jobs::{Jobs, Shared};
pub(crate) use output::Writer;
pub(crate) use shutdown::ShutdownState;
pub(crate) use slots::{Entry, Slot, Slots};
pub(crate) use sources::{AnySource, Registered};
pub(crate) use timer_queue::TimerKey;
pub(crate) use timers::{TimerAction, TimerState};

use crate::stats::Counters;

/// The coarse loop clock and the busy-poll window.
pub(crate) struct Clock {
    /// Coarse loop time, read once per iteration: activity stamps cost a store, not a clock call.
    epoch: Instant,
    pub(crate) now_ms: u64,
    /// Poll without sleeping for this long after the last event (zero: off).
    pub(crate) busy_poll: Duration,
    /// When the last poll returned events (kept only while busy polling is on).
    pub(crate) last_event: Instant,
}

impl Clock {
    fn new() -> Clock {
        let now = Instant::now();
        Clock {
            epoch: now,
            now_ms: 0,
            busy_poll: Duration::ZERO,
            last_event: now,
        }
    }

    /// Refreshes the coarse loop clock; called once per iteration, right after polling.
    pub(crate) fn tick(&mut self) {
        self.now_ms = self.epoch.elapsed().as_millis() as u64;
    }

    /// The instant that a coarse timestamp stands for.
    pub(crate) fn instant_of(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Within the busy-poll window after the last event.
    fn busy(&self) -> bool {
        !self.busy_poll.is_zero() && self.last_event.elapsed() < self.busy_poll
    }
}

/// The reactor's state apart from the poll buffers. Handler callbacks reach it through a
/// [`Context`](crate::Context).
pub(crate) struct Core {
    pub(crate) poll: Poll,
    pub(crate) slots: Slots,
    pub(crate) output: output::Output,
    pub(crate) flush: flush_policy::FlushPolicy,
    pub(crate) flow: flow::Flow,
    pub(crate) closes: closing::Closes,
    pub(crate) timers: TimerState,
    pub(crate) classes: Classes,
    pub(crate) admission: listeners::Admission,
    pub(crate) sources: sources::SourceEvents,
    pub(crate) calls: Calls,
    pub(crate) clock: Clock,
    pub(crate) counters: Counters,
    pub(crate) shutdown: Option<ShutdownState>,
    pub(crate) stopping: bool,
    /// Jobs posted through handles (and by the resolver threads).
    pub(crate) jobs: Jobs,
    /// Outbound connections resolving a name or racing addresses.
    pub(crate) dialing: dial::Dialing,
    /// The batch buffers of UDP receives and sends.
    pub(crate) udp_io: udp::UdpIo,
}

/// The `NotFound` error for an id whose connection, listener or socket no longer exists.
pub(crate) fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no such connection or socket (already closed?)",
    )
}

impl Core {
    pub(crate) fn new() -> io::Result<Core> {
        Ok(Core {
            poll: Poll::new()?,
            slots: Slots::new(),
            output: output::Output::default(),
            flush: flush_policy::FlushPolicy::default(),
            flow: flow::Flow::default(),
            closes: closing::Closes::default(),
            timers: TimerState::default(),
            classes: Classes::new(),
            admission: listeners::Admission::default(),
            sources: sources::SourceEvents::default(),
            calls: Calls::default(),
            clock: Clock::new(),
            counters: Counters::default(),
            shutdown: None,
            stopping: false,
            jobs: Jobs::default(),
            dialing: dial::Dialing::default(),
            udp_io: udp::UdpIo::default(),
        })
    }

    pub(crate) fn stop(&mut self) {
        self.stopping = true;
    }

    /// Work that step 1 must not sleep on: sources on the still-ready queue, output or closes
    /// queued from outside a callback.
    pub(crate) fn has_queued_work(&self) -> bool {
        self.slots.has_ready()
            || self.output.has_dirty()
            || self.flush.has_replies()
            || self.closes.any()
    }

    /// Puts the source `token` names on the still-ready queue (at most once).
    pub(crate) fn mark_ready(&mut self, token: mio::Token) {
        if self.slots.mark_ready(token) {
            self.counters.stats.still_ready += 1;
        }
    }
}
