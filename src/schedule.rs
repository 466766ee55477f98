//! What timers do: loop-level callbacks, connection timers, idle checks, and step 5 of the loop
//! (firing what is due). The queue itself is in `timer.rs`.
//!
//! Idle timeouts cost O(1) per activity: a read or write stores the coarse loop time in the
//! connection, and each connection has one idle-check timer that, when it fires, either closes
//! the connection or re-arms itself for `last activity + timeout` (the nginx / Netty approach).
//! Nothing touches the timer queue per message.

use std::fmt;
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::core::{Core, TimerAction};
use crate::handler::CloseReason;
use crate::id::ConnId;
use crate::reactor::Reactor;
use crate::timer::TimerKey;

/// Identifies a timer: a connection timer from [`Context::set_timer`] or a loop timer from
/// [`Reactor::add_timer`] / [`Reactor::add_repeating_timer`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut reactor = sockloop::Reactor::new()?;
/// let id = reactor.add_timer(Duration::from_secs(60), |_reactor| unreachable!());
/// assert!(reactor.cancel_timer(id));
/// assert!(!reactor.cancel_timer(id), "already cancelled");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(Kind);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Conn(TimerKey),
    Loop(usize, u32),
}

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kind::Conn(k) => write!(f, "timer#{k:?}"),
            Kind::Loop(key, gen) => write!(f, "loop-timer#{key}.{gen}"),
        }
    }
}

/// A loop timer's callback; `FnMut` so that repeating timers can run it again.
type LoopCallback = Box<dyn FnMut(&mut Reactor)>;

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
            .insert(Instant::now() + after, TimerAction::Conn(id));
        TimerId(Kind::Conn(key))
    }

    /// Cancels any kind of timer; true if it was armed.
    pub(crate) fn cancel_timer(&mut self, id: TimerId) -> bool {
        match id.0 {
            Kind::Conn(key) => self.timers.cancel(key).is_some(),
            Kind::Loop(key, gen) => match self.loop_timers.get(key) {
                Some(t) if t.gen == gen => {
                    let t = self.loop_timers.remove(key);
                    self.timers.cancel(t.key);
                    true
                }
                _ => false,
            },
        }
    }

    fn add_loop_timer(
        &mut self,
        after: Duration,
        period: Option<Duration>,
        callback: LoopCallback,
    ) -> TimerId {
        let gen = self.take_gen();
        let deadline = Instant::now() + after;
        let vacant = self.loop_timers.vacant_entry();
        let slot = vacant.key();
        let key = self.timers.insert(deadline, TimerAction::Loop(slot, gen));
        vacant.insert(LoopTimer {
            gen,
            callback: Some(callback),
            period,
            deadline,
            key,
        });
        TimerId(Kind::Loop(slot, gen))
    }

    /// Starts the idle check of a connection that has an idle timeout.
    pub(crate) fn arm_idle(&mut self, id: ConnId, idle: Duration) {
        self.timers
            .insert(Instant::now() + idle, TimerAction::IdleCheck(id));
    }

    /// An idle check fired: close the connection if it has been quiet for its whole timeout,
    /// otherwise check again when it would be.
    fn idle_check(&mut self, id: ConnId) {
        let now_ms = self.now_ms;
        let Some(conn) = self.conn_mut(id) else {
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
            let at = self.instant_of(last + idle);
            self.timers.insert(at, TimerAction::IdleCheck(id));
        }
    }

    /// Runs one fired connection timer.
    fn conn_timer(&mut self, id: ConnId, key: TimerKey) {
        if self.conn(id).is_some_and(|c| c.is_live()) {
            self.call(id, |h, cx| h.on_timer(cx, TimerId(Kind::Conn(key))));
            self.flush(id);
        }
    }
}

impl Context<'_> {
    /// Arms a one-shot timer for this connection: after `after`, the handler's
    /// [`on_timer`](crate::Handler::on_timer) is called with the returned id. A connection's
    /// timers never fire after it closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{Context, Handler, Input, TimerId};
    ///
    /// /// Closes a connection that has not said hello within 5 seconds.
    /// struct Hello { deadline: Option<TimerId> }
    /// impl Handler for Hello {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         self.deadline = Some(cx.set_timer(Duration::from_secs(5)));
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         if input.starts_with(b"hello") {
    ///             if let Some(t) = self.deadline.take() {
    ///                 cx.cancel_timer(t);
    ///             }
    ///         }
    ///         input.consume(input.len());
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
    ///         cx.close();
    ///     }
    /// }
    /// ```
    pub fn set_timer(&mut self, after: Duration) -> TimerId {
        self.core.set_conn_timer(self.id, after)
    }

    /// Cancels a timer (of this connection, or a loop timer); returns false if it had already
    /// fired or been cancelled.
    ///
    /// # Examples
    ///
    /// See [`set_timer`](Self::set_timer).
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }
}

impl Reactor {
    /// Runs `callback` once, after `after`, on the loop thread.
    ///
    /// Timers fire in `(deadline, order set)` order; one set for now (or the past) fires on the
    /// next iteration, never within the iteration that set it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut reactor = sockloop::Reactor::new()?;
    /// reactor.add_timer(Duration::from_millis(5), |reactor| reactor.stop());
    /// reactor.run()?; // returns once the timer fired
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_timer<F>(&mut self, after: Duration, callback: F) -> TimerId
    where
        F: FnOnce(&mut Reactor) + 'static,
    {
        let mut once = Some(callback);
        let callback = move |r: &mut Reactor| {
            if let Some(f) = once.take() {
                f(r)
            }
        };
        self.core_mut()
            .add_loop_timer(after, None, Box::new(callback))
    }

    /// Runs `callback` every `period` (first after one period) until cancelled. Deadlines advance
    /// by whole periods, so the schedule does not drift; periods missed while the loop was busy
    /// are skipped, not run in a burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    ///
    /// let ticks = Rc::new(Cell::new(0));
    /// let mut reactor = sockloop::Reactor::new()?;
    /// let seen = Rc::clone(&ticks);
    /// reactor.add_repeating_timer(Duration::from_millis(1), move |reactor| {
    ///     seen.set(seen.get() + 1);
    ///     if seen.get() == 3 {
    ///         reactor.stop();
    ///     }
    /// });
    /// reactor.run()?;
    /// assert_eq!(ticks.get(), 3);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_repeating_timer<F>(&mut self, period: Duration, callback: F) -> TimerId
    where
        F: FnMut(&mut Reactor) + 'static,
    {
        // A zero period would fire on every iteration and keep poll from ever sleeping.
        let period = period.max(Duration::from_millis(1));
        self.core_mut()
            .add_loop_timer(period, Some(period), Box::new(callback))
    }

    /// Cancels a timer; returns false if it had already fired (one-shot) or been cancelled. A
    /// repeating timer may cancel itself from its own callback.
    ///
    /// # Examples
    ///
    /// See [`TimerId`].
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core_mut().cancel_timer(timer)
    }

    /// Step 5: fires the timers due now, in `(deadline, sequence)` order. Only timers armed
    /// before this iteration began (sequence below `limit`) fire: one armed during this
    /// iteration's dispatch or timer callbacks waits for the next, so a timer that re-arms itself
    /// for "now" cannot keep the loop here.
    pub(crate) fn fire_timers(&mut self, limit: u64) {
        let now = Instant::now();
        while let Some((key, action)) = self.core_mut().timers.pop_expired(now, limit) {
            let core = self.core_mut();
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
                TimerAction::ShutdownDeadline => self.shutdown_deadline(),
                TimerAction::Loop(slot, gen) => self.fire_loop_timer(slot, gen, now),
            }
        }
    }

    fn fire_loop_timer(&mut self, slot: usize, gen: u32, now: Instant) {
        let taken = match self.core_mut().loop_timers.get_mut(slot) {
            Some(t) if t.gen == gen => t.callback.take(),
            _ => None,
        };
        let Some(mut callback) = taken else { return };
        callback(self);
        let core = self.core_mut();
        let Some(t) = core.loop_timers.get_mut(slot).filter(|t| t.gen == gen) else {
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
                t.key = core.timers.insert(next, TimerAction::Loop(slot, gen));
            }
            None => {
                core.loop_timers.remove(slot);
            }
        }
    }
}
