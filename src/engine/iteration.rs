//! One iteration of the loop as five named steps, in the order documented on
//! [`Reactor::run_once`](crate::Reactor::run_once), and the routing of events to sources.

use std::io;
use std::time::{Duration, Instant};

use mio::Token;

use super::{Core, Entry};
use crate::id::{unpack, ConnId, ListenerId, SourceId, UdpId, WAKER};
use crate::reactor::Reactor;
use crate::sources::Readiness;

impl Reactor {
    /// One iteration: see [`Reactor::run_once`].
    pub(crate) fn iterate(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.core.counters.stats.iterations += 1;
        // Timers armed from here on fire in a later iteration (see `fire_timers`).
        let timer_limit = self.core.timers.queue.next_seq();
        let timeout = self.poll_timeout(timeout); // 1
        self.poll(timeout)?; // 2
        let handled = self.dispatch(); // 3
        self.core.complete_deferred(); // 4
        self.run_timers(timer_limit); // 5
        Ok(handled)
    }

    /// Step 1: no waiting while work is queued or while busy polling; else until the nearest
    /// timer, capped by the caller's timeout.
    fn poll_timeout(&mut self, cap: Option<Duration>) -> Option<Duration> {
        let core = &mut self.core;
        if core.clock.busy() || core.has_queued_work() || core.jobs.left() {
            return Some(Duration::ZERO);
        }
        match (core.timers.queue.timeout(Instant::now()), cap) {
            (Some(t), Some(cap)) => Some(t.min(cap)),
            (t, cap) => t.or(cap),
        }
    }

    /// Step 2: waits for readiness. A signal (`Interrupted`) just ends the wait early.
    fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.core.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }
        let clock = &mut self.core.clock;
        clock.tick();
        if !clock.busy_poll.is_zero() && !self.events.is_empty() {
            clock.last_event = Instant::now();
        }
        Ok(())
    }

    /// Step 3: fresh events first, then the sources that the previous iteration left on the
    /// still-ready queue, then posted jobs and foreign sources. The queue is taken before the
    /// events, so a source queued during this pass waits for the next iteration: each gets one
    /// turn per pass. Returns the number of events handled.
    fn dispatch(&mut self) -> usize {
        let core = &mut self.core;
        let retry = core.slots.take_ready();
        let mut handled = 0;
        let mut woken = false;
        let write_through = core.flush.writes_through(self.events.iter().count());
        for event in self.events.iter() {
            handled += 1;
            if event.token() == WAKER {
                woken = true;
                continue;
            }
            let ready = Readiness::from_event(event);
            core.dispatch(&mut self.read_buf, event.token(), ready, write_through);
        }
        core.counters.stats.events += handled as u64;
        for &token in &retry {
            core.retry(&mut self.read_buf, token);
        }
        core.slots.return_ready(retry);
        if woken || self.core.jobs.left() {
            self.run_posted(woken);
        }
        if self.core.sources.any() {
            self.run_source_callbacks();
        }
        handled
    }

    /// Step 5: timers due now, then whatever they wrote or closed; a graceful shutdown that has
    /// nothing left to close ends `run` here.
    fn run_timers(&mut self, limit: u64) {
        self.fire_timers(limit);
        self.core.complete_deferred();
        self.check_shutdown_done();
    }
}

impl Core {
    /// Routes one readiness event to the source its token names, if that source still exists.
    /// A source on the still-ready queue gets only the writable part of the event now: its
    /// reads (accepts, receives) wait for its turn in the retry pass, so that it is served once.
    fn dispatch(&mut self, rbuf: &mut [u8], token: Token, ready: Readiness, write_through: bool) {
        let (key, gen) = unpack(token.0 as u64);
        let Some(slot) = self.slots.get(key, gen) else {
            return; // closed, or stale: the slot has a new owner
        };
        let queued = slot.queued;
        match slot.entry {
            Entry::Conn(_) => {
                let id = ConnId::new(key, gen);
                self.conn_event(rbuf, id, ready, queued, write_through);
            }
            Entry::Listener(_) if !queued => self.accept(ListenerId::new(key, gen)),
            Entry::Listener(_) => {}
            Entry::Udp(_) => self.udp_ready(rbuf, UdpId::new(key, gen), ready, !queued),
            Entry::Source(_) => self.sources.push(SourceId::new(key, gen), ready),
            Entry::Attempt(_) => self.attempt_event(key, gen),
            Entry::FailedConnect(..) => {}
        }
    }

    /// Serves one entry of the still-ready queue: its turn, with reads that go on to
    /// `WouldBlock`, since a short read proves nothing about what a budget left behind.
    fn retry(&mut self, rbuf: &mut [u8], token: Token) {
        let (key, gen) = unpack(token.0 as u64);
        let Some(slot) = self.slots.get_mut(key, gen) else {
            return; // stale: the slot has a new owner, whose flag is its own
        };
        slot.queued = false;
        match slot.entry {
            Entry::Conn(_) => self.conn_retry(rbuf, ConnId::new(key, gen)),
            Entry::Listener(_) => self.accept(ListenerId::new(key, gen)),
            Entry::Udp(_) => self.udp_receive(rbuf, UdpId::new(key, gen)),
            Entry::Source(_) | Entry::FailedConnect(..) | Entry::Attempt(_) => {}
        }
    }

    /// Step 4: tells handlers owed a writability change, flushes output queued from elsewhere
    /// and the replies still in a burst, then releases closed slots, until none of these
    /// produces more work (an `on_close` may write to or close other connections).
    pub(crate) fn complete_deferred(&mut self) {
        loop {
            if self.flow.owes() {
                self.notify_unwritable();
            } else if self.flush.has_replies() {
                self.flush_replies();
            } else if self.output.has_dirty() {
                self.flush_dirty();
            } else if let Some(key) = self.closes.pop() {
                self.release(key);
            } else {
                break;
            }
        }
    }
}
