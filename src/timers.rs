//! Timers: connection timers ([`Context::set_timer`]) and loop timers
//! ([`Reactor::add_timer`], [`Reactor::add_repeating_timer`]). They fire in step 5 of an
//! iteration (`src/engine/timers.rs`).

use std::fmt;
use std::time::Duration;

use crate::context::Context;
use crate::engine::TimerKey;
use crate::reactor::Reactor;

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
pub struct TimerId(pub(crate) TimerKind);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TimerKind {
    Conn(TimerKey),
    Loop(usize, u32),
}

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TimerKind::Conn(k) => write!(f, "timer#{k:?}"),
            TimerKind::Loop(key, gen) => write!(f, "loop-timer#{key}.{gen}"),
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
        self.core.add_loop_timer(after, None, Box::new(callback))
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
        self.core
            .add_loop_timer(period, Some(period), Box::new(callback))
    }

    /// Cancels a timer; returns false if it had already fired (one-shot) or been cancelled. A
    /// repeating timer may cancel itself from its own callback.
    ///
    /// # Examples
    ///
    /// See [`TimerId`].
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }
}
