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
/// missed periods must be skipped: a burst would fire about nine ticks right after the stall.
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
    let soon_after = ticks
        .borrow()
        .iter()
        .filter(|&&t| t >= end && t < end + 3 * PERIOD)
        .count();
    // At most one catch-up tick, then one per period.
    assert!(
        soon_after <= 4,
        "{soon_after} ticks within 3 periods after the stall: {:?}",
        ticks
            .borrow()
            .iter()
            .map(|&t| t.saturating_duration_since(end))
            .collect::<Vec<_>>()
    );
}

/// A zero period is raised to 1 ms: the timer neither panics nor fires on every iteration.
#[test]
fn repeating_timer_with_zero_period_fires_at_most_once_per_millisecond() {
    let mut reactor = Reactor::new().unwrap();
    let ticks = Rc::new(Cell::new(0u64));
    let seen = Rc::clone(&ticks);
    let start = Instant::now();
    let id = reactor.add_repeating_timer(Duration::ZERO, move |_| seen.set(seen.get() + 1));
    let done = util::flag_after(&mut reactor, 30 * MS);
    util::run_until(&mut reactor, "30 ms to pass", |_| done.get());
    let elapsed_ms = start.elapsed().as_millis() as u64;
    assert!(ticks.get() >= 1, "it ticks");
    assert!(
        ticks.get() <= elapsed_ms,
        "{} ticks in {elapsed_ms} ms",
        ticks.get()
    );
    assert!(reactor.cancel_timer(id));
}
