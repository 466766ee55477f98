//! Timers in the engine: what a timer does when it fires, connection and loop timers, idle
//! checks, and step 5 of the loop (firing what is due). The queue itself is `timer_queue.rs`.
//!
//! Idle timeouts cost O(1) per activity: a read or write stores the coarse loop time in the
//! connection, and each connection has one idle-check timer that, when it fires, either closes
//! the connection or re-arms itself for `last activity + timeout` (the nginx / Netty approach).
//! Nothing touches the timer queue per message.

use std::time::{Duration, Instant};

use slab::Slab;

use super::timer_queue::{TimerKey, Timers};
use super::Core;
use crate::close_reason::CloseReason;
use crate::id::{ConnId, ListenerId};
use crate::reactor::Reactor;
use crate::timers::{TimerId, TimerKind};

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Retry accepting on a listener paused by an accept error (e.g. EMFILE).
    ResumeAccept(ListenerId),
    /// A closing connection made no progress for a while; give up on it.
    LingerExpired(ConnId),
    /// A handler's own timer (`Context::set_timer`).
    Conn(ConnId),
    /// Check a connection's idle time (re-armed lazily, not per read).
    IdleCheck(ConnId),
    /// A loop-level timer; the key and generation name its entry in `TimerState::loops`.
    Loop(usize, u32),
    /// The graceful-shutdown deadline passed.
    ShutdownDeadline,
    /// A connection's first-bytes deadline (`ListenOptions::first_bytes_timeout`).
    FirstBytes(ConnId),
    /// An outbound connection's connect deadline (`ConnectOptions::connect_timeout`).
    ConnectTimeout(ConnId),
    /// Time for the next connect attempt of a race (`ConnectOptions::attempt_delay`).
    NextAttempt(ConnId),
    /// A TLS connection's handshake deadline (`ListenOptions::tls_handshake_timeout`).
    #[cfg(feature = "tls")]
    HandshakeTimeout(ConnId),
    /// An accepted connection's PROXY protocol header deadline.
    #[cfg(feature = "proxy-protocol")]
    ProxyHeader(ConnId),
}

/// The timer queue and the loop timers' callbacks.
#[derive(Default)]
pub(crate) struct TimerState {
    pub(crate) queue: Timers<TimerAction>,
    loops: Slab<LoopTimer>,
}

/// A loop timer's callback; `FnMut` so that repeating timers can run it again.
pub(crate) type LoopCallback = Box<dyn FnMut(&mut Reactor)>;

pub(crate) struct LoopTimer {
    gen: u32,
    /// `None` while the callback runs.
    callback: Option<LoopCallback>,
    period: Option<Duration>,
    deadline: Instant,
    key: TimerKey,
}

impl Core {
    /// Arms a timer whose expiry calls `id`'s handler `on_timer`.
    pub(crate) fn set_conn_timer(&mut self, id: ConnId, after: Duration) -> TimerId {
        let key = self
            .timers
            .queue
            .insert(Instant::now() + after, TimerAction::Conn(id));
        TimerId(TimerKind::Conn(key))
    }

    /// Cancels any kind of timer; true if it was armed.
    pub(crate) fn cancel_timer(&mut self, id: TimerId) -> bool {
        match id.0 {
            TimerKind::Conn(key) => self.timers.queue.cancel(key).is_some(),
            TimerKind::Loop(key, gen) => match self.timers.loops.get(key) {
                Some(t) if t.gen == gen => {
                    let t = self.timers.loops.remove(key);
                    self.timers.queue.cancel(t.key);
                    true
                }
                _ => false,
            },
        }
    }

    pub(crate) fn add_loop_timer(
        &mut self,
        after: Duration,
        period: Option<Duration>,
        callback: LoopCallback,
    ) -> TimerId {
        let gen = self.slots.take_gen();
        let deadline = Instant::now() + after;
        let vacant = self.timers.loops.vacant_entry();
        let slot = vacant.key();
        let key = self
            .timers
            .queue
            .insert(deadline, TimerAction::Loop(slot, gen));
        vacant.insert(LoopTimer {
            gen,
            callback: Some(callback),
            period,
            deadline,
            key,
        });
        TimerId(TimerKind::Loop(slot, gen))
    }

    /// Starts the idle check of a connection that has an idle timeout.
    pub(crate) fn arm_idle(&mut self, id: ConnId, idle: Duration) {
        self.timers
            .queue
            .insert(Instant::now() + idle, TimerAction::IdleCheck(id));
    }

    /// An idle check fired: close the connection if it has been quiet for its whole timeout,
    /// otherwise check again when it would be.
    fn idle_check(&mut self, id: ConnId) {
        let now_ms = self.clock.now_ms;
        let Some(conn) = self.slots.conn_mut(id) else {
            return;
        };
        let Some((last, idle)) = conn.idle_state() else {
            return;
        };
        let quiet = now_ms.saturating_sub(last);
        if quiet >= idle {
            log::debug!("{id}: idle for {quiet} ms; closing");
            self.close_with(id, CloseReason::IdleTimeout);
        } else {
            let at = self.clock.instant_of(last + idle);
            self.timers.queue.insert(at, TimerAction::IdleCheck(id));
        }
    }

    /// Runs one fired connection timer.
    fn conn_timer(&mut self, id: ConnId, key: TimerKey) {
        if self.slots.conn(id).is_some_and(|c| c.is_live()) {
            self.call(id, |h, cx| h.on_timer(cx, TimerId(TimerKind::Conn(key))));
            self.flush(id);
        }
    }
}

impl Reactor {
    /// Step 5: fires the timers due now, in `(deadline, sequence)` order. Only timers armed
    /// before this iteration began (sequence below `limit`) fire: one armed during this
    /// iteration's dispatch or timer callbacks waits for the next, so a timer that re-arms itself
    /// for "now" cannot keep the loop here.
    pub(crate) fn fire_timers(&mut self, limit: u64) {
        let now = Instant::now();
        while let Some((key, action)) = self.core.timers.queue.pop_expired(now, limit) {
            let core = &mut self.core;
            if matches!(
                action,
                TimerAction::Conn(_) | TimerAction::Loop(..) | TimerAction::IdleCheck(_)
            ) {
                core.counters.stats.timers_fired += 1;
            }
            match action {
                TimerAction::ResumeAccept(id) => core.resume_accept(id),
                TimerAction::LingerExpired(id) => core.linger_expired(id),
                TimerAction::Conn(id) => core.conn_timer(id, key),
                TimerAction::IdleCheck(id) => core.idle_check(id),
                TimerAction::FirstBytes(id) => core.first_bytes_expired(id),
                TimerAction::ConnectTimeout(id) => core.connect_expired(id),
                TimerAction::NextAttempt(id) => core.next_attempt(id),
                #[cfg(feature = "tls")]
                TimerAction::HandshakeTimeout(id) => core.handshake_expired(id),
                #[cfg(feature = "proxy-protocol")]
                TimerAction::ProxyHeader(id) => core.proxy_header_expired(id),
                TimerAction::ShutdownDeadline => self.shutdown_deadline(),
                TimerAction::Loop(slot, gen) => self.fire_loop_timer(slot, gen, now),
            }
        }
    }

    fn fire_loop_timer(&mut self, slot: usize, gen: u32, now: Instant) {
        let taken = match self.core.timers.loops.get_mut(slot) {
            Some(t) if t.gen == gen => t.callback.take(),
            _ => None,
        };
        let Some(mut callback) = taken else { return };
        callback(self);
        let core = &mut self.core;
        let Some(t) = core.timers.loops.get_mut(slot).filter(|t| t.gen == gen) else {
            return; // cancelled from its own callback
        };
        match t.period {
            Some(period) => {
                let mut next = t.deadline + period;
                if next <= now {
                    // Fell behind by whole periods (a long callback, a busy loop): skip them.
                    let behind = now.duration_since(t.deadline).as_nanos() / period.as_nanos();
                    next = t.deadline + period * (behind as u32 + 1);
                }
                t.deadline = next;
                t.callback = Some(callback);
                t.key = core.timers.queue.insert(next, TimerAction::Loop(slot, gen));
            }
            None => {
                core.timers.loops.remove(slot);
            }
        }
    }
}
