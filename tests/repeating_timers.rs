//! Repeating loop timers (`Reactor::add_repeating_timer`): they tick on their period, never
//! early, can cancel themselves from their own callback, skip the periods a stalled loop missed
//! instead of firing them in a burst, and a zero period is raised to 1 ms.
//!
//! The reactors run on the test thread itself (`run_once` in a loop).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{Reactor, TimerId};

const MS: Duration = Duration::from_millis(1);

#[test]
fn repeating_timer_ticks_on_its_period_and_can_cancel_itself() {
    const PERIOD: Duration = Duration::from_millis(5);
    let mut reactor = Reactor::new().unwrap();
    let ticks: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let own: Rc<Cell<Option<TimerId>>> = Rc::new(Cell::new(None));
    let cancelled = Rc::new(Cell::new(None));
    let start = Instant::now();
    let id = {
        let (ticks, own, cancelled) = (Rc::clone(&ticks), Rc::clone(&own), Rc::clone(&cancelled));
        reactor.add_repeating_timer(PERIOD, move |r| {
            ticks.borrow_mut().push(Instant::now());
            if ticks.borrow().len() == 5 {
                cancelled.set(Some(r.cancel_timer(own.get().unwrap())));
            }
        })
    };
    own.set(Some(id));
    util::run_until(&mut reactor, "five ticks", |_| ticks.borrow().len() >= 5);
    // Ten more periods: a tick after the cancel would show here.
    let done = util::flag_after(&mut reactor, 10 * PERIOD);
    util::run_until(&mut reactor, "ten periods to pass", |_| done.get());

    let ticks = ticks.borrow();
    assert_eq!(ticks.len(), 5, "ticks after cancelling itself");
    assert_eq!(cancelled.get(), Some(true), "cancel from its own callback");
    assert!(!reactor.cancel_timer(id), "already cancelled");
    for (k, &at) in ticks.iter().enumerate() {
        // The first tick comes after one period, the k-th after k periods: never early.
        let due = start + PERIOD * (k as u32 + 1);
        assert!(at >= due, "tick {} came {:?} early", k + 1, due - at);
    }
}

/// The first tick stalls the loop for ten periods (that stall is the behaviour under test). The
/// missed periods must be skipped: one catch-up tick after the stall, then the schedule goes on
/// from the first period boundary after it, so the k-th tick after the catch-up comes no earlier
/// than k - 1 periods after the stall ended. A burst would fire about nine ticks right after the
/// stall. (Only lower bounds on when ticks come: a busy machine can make them later, never
/// earlier.)
#[test]
fn repeating_timer_skips_missed_periods_instead_of_bursting() {
    const PERIOD: Duration = Duration::from_millis(10);
    let mut reactor = Reactor::new().unwrap();
    let ticks: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let stall_ended = Rc::new(Cell::new(None));
    {
        let (ticks, stall_ended) = (Rc::clone(&ticks), Rc::clone(&stall_ended));
        reactor.add_repeating_timer(PERIOD, move |_| {
            ticks.borrow_mut().push(Instant::now());
            if ticks.borrow().len() == 1 {
                std::thread::sleep(10 * PERIOD);
                stall_ended.set(Some(Instant::now()));
            }
        });
    }
    util::run_until(&mut reactor, "eight ticks", |_| ticks.borrow().len() >= 8);
    let end = stall_ended.get().unwrap();
    let ticks = ticks.borrow();
    let after_end: Vec<Duration> = ticks
        .iter()
        .map(|&t| t.saturating_duration_since(end))
        .collect();
    // ticks[0] stalled the loop, ticks[1] is the one catch-up tick.
    for (k, &at) in ticks.iter().enumerate().skip(2) {
        let earliest = end + PERIOD * (k as u32 - 2);
        assert!(
            at >= earliest,
            "tick {k} came {:?} after the stall, before the period boundary it was due at; \
             ticks after the stall: {after_end:?}",
            at.saturating_duration_since(end)
        );
    }
}

/// A zero period is raised to 1 ms: the timer neither panics nor fires on every iteration. The
/// k-th tick comes no earlier than k ms after the timer was set (at most one per millisecond).
#[test]
fn repeating_timer_with_zero_period_fires_at_most_once_per_millisecond() {
    let mut reactor = Reactor::new().unwrap();
    let ticks: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let seen = Rc::clone(&ticks);
    let start = Instant::now();
    let id = reactor.add_repeating_timer(Duration::ZERO, move |_| {
        seen.borrow_mut().push(Instant::now())
    });
    let done = util::flag_after(&mut reactor, 30 * MS);
    util::run_until(&mut reactor, "30 ms to pass", |_| done.get());
    let ticks = ticks.borrow();
    assert!(!ticks.is_empty(), "it ticks");
    for (k, &at) in ticks.iter().enumerate() {
        let due = start + MS * (k as u32 + 1);
        assert!(
            at >= due,
            "tick {} came {:?} after the timer was set: more than one per millisecond",
            k + 1,
            at.duration_since(start)
        );
    }
    assert!(reactor.cancel_timer(id));
}
