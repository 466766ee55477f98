//! Timers: loop timers (`Reactor::add_timer`, `add_repeating_timer`) and connection timers
//! (`Context::set_timer`) share one queue ordered by (deadline, order set); a cancelled timer never
//! fires; a timer armed for "now" or while timers fire waits for a later iteration; a closed
//! connection's timers never reach its handler. Repeating timers: `tests/repeating_timers.rs`.
//!
//! The reactors here run on the test thread itself (`run_once` in a loop), so callbacks can share
//! `Rc` state with the test and record which iteration they ran in.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sockloop::{CloseReason, Context, Handler, Input, Reactor, TimerId};

const MS: Duration = Duration::from_millis(1);

/// Shared log of what callbacks did, in the order they did it.
type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A listener on the in-process reactor; clients are plain `TcpStream`s of the test thread (the
/// kernel completes their handshake without the reactor's help).
fn listen<H: Handler>(reactor: &mut Reactor, factory: impl FnMut() -> H + 'static) -> SocketAddr {
    reactor.listen(util::localhost(), factory).unwrap().1
}

/// Runs iterations until `done` holds, first storing in `clock` the number the coming iteration
/// will have in `stats().iterations`, so that connection handlers (which cannot see the reactor)
/// can record when they ran.
#[track_caller]
fn drive_until(
    reactor: &mut Reactor,
    clock: &Cell<u64>,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + util::TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        clock.set(reactor.stats().iterations + 1);
        reactor.run_once(Some(20 * MS)).unwrap();
    }
}

#[test]
fn timers_fire_by_deadline_and_equal_delays_fire_in_the_order_set() {
    // Deliberately out of order, with repeats.
    const DELAYS_MS: [u32; 14] = [40, 0, 20, 40, 10, 0, 20, 30, 10, 40, 0, 30, 20, 0];
    let n = DELAYS_MS.len();
    let mut reactor = Reactor::new().unwrap();
    let fired: Log<(usize, Instant)> = log();
    // The deadline of each timer lies between these two instants (it is computed inside the call).
    let mut bounds = Vec::new();
    for (i, &d) in DELAYS_MS.iter().enumerate() {
        let fired = Rc::clone(&fired);
        let before = Instant::now();
        reactor.add_timer(d * MS, move |_| {
            fired.borrow_mut().push((i, Instant::now()))
        });
        bounds.push((before + d * MS, Instant::now() + d * MS));
    }
    util::run_until(&mut reactor, "every timer to fire", |_| {
        fired.borrow().len() >= n
    });
    let fired = fired.borrow();
    let order: Vec<usize> = fired.iter().map(|&(i, _)| i).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..n).collect::<Vec<_>>(),
        "each fires once: {order:?}"
    );
    let pos = |i: usize| order.iter().position(|&f| f == i).unwrap();
    for i in 0..n {
        for j in i + 1..n {
            if DELAYS_MS[i] <= DELAYS_MS[j] {
                // Set earlier with a delay no longer: its deadline is no later, and on equal
                // deadlines the order set decides.
                assert!(pos(i) < pos(j), "timer {i} must fire before {j}: {order:?}");
            } else if bounds[j].1 < bounds[i].0 {
                // j's deadline is certainly the earlier one.
                assert!(pos(j) < pos(i), "timer {j} must fire before {i}: {order:?}");
            }
        }
    }
    for &(i, at) in fired.iter() {
        assert!(at >= bounds[i].0, "timer {i} fired before its deadline");
    }
}

/// Sets two connection timers with the same delay in `on_open`; reports what fires.
struct TwoTimers {
    delay: Duration,
    set: Log<TimerId>,
    fired: Log<String>,
}

impl Handler for TwoTimers {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        for _ in 0..2 {
            let id = cx.set_timer(self.delay);
            self.set.borrow_mut().push(id);
        }
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, _cx: &mut Context<'_>, timer: TimerId) {
        let which = self.set.borrow().iter().position(|&t| t == timer);
        let name = match which {
            Some(k) => format!("conn{k}"),
            None => format!("unknown {timer:?}"),
        };
        self.fired.borrow_mut().push(name);
    }
}

/// Loop timers and connection timers share one queue: with equal delays they fire in the order
/// they were set, whoever set them, and `on_timer` gets the id `set_timer` returned.
#[test]
fn connection_and_loop_timers_with_equal_delays_fire_in_the_order_set() {
    let delay = 30 * MS;
    let mut reactor = Reactor::new().unwrap();
    let set = log();
    let fired: Log<String> = log();
    let addr = {
        let (set, fired) = (Rc::clone(&set), Rc::clone(&fired));
        listen(&mut reactor, move || TwoTimers {
            delay,
            set: Rc::clone(&set),
            fired: Rc::clone(&fired),
        })
    };
    let first = Rc::clone(&fired);
    reactor.add_timer(delay, move |_| first.borrow_mut().push("loop-first".into()));
    let _client = TcpStream::connect(addr).unwrap();
    util::run_until(&mut reactor, "on_open", |_| set.borrow().len() == 2);
    let last = Rc::clone(&fired);
    reactor.add_timer(delay, move |_| last.borrow_mut().push("loop-last".into()));
    util::run_until(&mut reactor, "four timers", |_| fired.borrow().len() >= 4);
    assert_eq!(
        *fired.borrow(),
        ["loop-first", "conn0", "conn1", "loop-last"]
    );
}

#[test]
fn cancelled_loop_timer_never_fires_and_cancel_reports_whether_it_was_armed() {
    let mut reactor = Reactor::new().unwrap();
    let fired: Log<&str> = log();
    let victim: Rc<Cell<Option<TimerId>>> = Rc::new(Cell::new(None));
    let cancelled_from_callback = Rc::new(Cell::new(None));

    let a = {
        let (fired, victim, result) = (
            Rc::clone(&fired),
            Rc::clone(&victim),
            Rc::clone(&cancelled_from_callback),
        );
        reactor.add_timer(10 * MS, move |r| {
            fired.borrow_mut().push("a");
            // The victim is due in this same pass (same delay, set just after): still cancellable.
            result.set(Some(r.cancel_timer(victim.get().unwrap())));
        })
    };
    let d = {
        let fired = Rc::clone(&fired);
        reactor.add_timer(10 * MS, move |_| fired.borrow_mut().push("d"))
    };
    victim.set(Some(d));
    let b = {
        let fired = Rc::clone(&fired);
        reactor.add_timer(20 * MS, move |_| fired.borrow_mut().push("b"))
    };
    assert!(reactor.cancel_timer(b), "b was armed");
    assert!(!reactor.cancel_timer(b), "b was already cancelled");

    let done = util::flag_after(&mut reactor, 60 * MS);
    util::run_until(&mut reactor, "the last timer", |_| done.get());
    assert_eq!(*fired.borrow(), ["a"], "cancelled timers fired");
    assert_eq!(cancelled_from_callback.get(), Some(true));
    assert!(!reactor.cancel_timer(a), "a already fired");
    assert!(!reactor.cancel_timer(d), "d was already cancelled");
}

/// On open: a long and a short timer; when the short one fires it cancels the long one.
struct CancelsLong {
    long: Option<TimerId>,
    short: Option<TimerId>,
    report: Log<String>,
}

impl Handler for CancelsLong {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.long = Some(cx.set_timer(40 * MS));
        self.short = Some(cx.set_timer(10 * MS));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        let mut report = self.report.borrow_mut();
        if Some(timer) == self.short {
            report.push("short fired".into());
            let long = cx.cancel_timer(self.long.unwrap());
            let short = cx.cancel_timer(timer);
            report.push(format!("cancel long: {long}, cancel short: {short}"));
        } else {
            report.push(format!("{timer:?} fired"));
        }
    }
}

#[test]
fn connection_timer_cancelled_by_its_handler_never_fires() {
    let mut reactor = Reactor::new().unwrap();
    let report = log();
    let addr = {
        let report = Rc::clone(&report);
        listen(&mut reactor, move || CancelsLong {
            long: None,
            short: None,
            report: Rc::clone(&report),
        })
    };
    let _client = TcpStream::connect(addr).unwrap();
    util::run_until(&mut reactor, "the short timer", |_| {
        !report.borrow().is_empty()
    });
    // Well past the long timer's deadline.
    let done = util::flag_after(&mut reactor, 100 * MS);
    util::run_until(&mut reactor, "time to pass", |_| done.get());
    assert_eq!(
        *report.borrow(),
        ["short fired", "cancel long: true, cancel short: false"]
    );
}

#[test]
fn timer_set_in_a_loop_timer_callback_fires_on_the_next_iteration() {
    let mut reactor = Reactor::new().unwrap();
    let ran: Log<(&str, u64)> = log();
    let outer = Rc::clone(&ran);
    reactor.add_timer(Duration::ZERO, move |r| {
        outer.borrow_mut().push(("outer", r.stats().iterations));
        let inner = Rc::clone(&outer);
        r.add_timer(Duration::ZERO, move |r| {
            inner.borrow_mut().push(("inner", r.stats().iterations));
        });
    });
    util::run_until(&mut reactor, "the inner timer", |_| ran.borrow().len() == 2);
    let ran = ran.borrow();
    assert_eq!(
        ran[1].1,
        ran[0].1 + 1,
        "armed for now inside a timer: due on the very next iteration, not this one: {ran:?}"
    );
}

/// Sets a short timer on open; its `on_timer` sets a zero-delay one. Records the iteration
/// (from the driver's clock) of each firing.
struct Rearms {
    clock: Rc<Cell<u64>>,
    fired: Log<u64>,
}

impl Handler for Rearms {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.set_timer(5 * MS);
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
        self.fired.borrow_mut().push(self.clock.get());
        if self.fired.borrow().len() == 1 {
            cx.set_timer(Duration::ZERO);
        }
    }
}

#[test]
fn timer_set_in_on_timer_fires_on_the_next_iteration() {
    let mut reactor = Reactor::new().unwrap();
    let clock = Rc::new(Cell::new(0));
    let fired = log();
    let addr = {
        let (clock, fired) = (Rc::clone(&clock), Rc::clone(&fired));
        listen(&mut reactor, move || Rearms {
            clock: Rc::clone(&clock),
            fired: Rc::clone(&fired),
        })
    };
    let _client = TcpStream::connect(addr).unwrap();
    drive_until(&mut reactor, &clock, "both connection timers", || {
        fired.borrow().len() >= 2
    });
    let fired = fired.borrow();
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(
        fired[1],
        fired[0] + 1,
        "iterations of the two firings: {fired:?}"
    );
}

/// On each byte received, arms a zero-delay timer; records the iterations.
struct ZeroOnData {
    clock: Rc<Cell<u64>>,
    data_at: Log<u64>,
    timer_at: Log<u64>,
}

impl Handler for ZeroOnData {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
        self.data_at.borrow_mut().push(self.clock.get());
        cx.set_timer(Duration::ZERO);
    }

    fn on_timer(&mut self, _cx: &mut Context<'_>, _timer: TimerId) {
        self.timer_at.borrow_mut().push(self.clock.get());
    }
}

/// `add_timer` documents: "one set for now (or the past) fires on the next iteration, never within
/// the iteration that set it". Armed by an event callback (step 3), such a timer must therefore
/// not fire in step 5 of the same iteration.
#[test]
fn zero_delay_connection_timer_set_in_on_data_fires_on_a_later_iteration() {
    let mut reactor = Reactor::new().unwrap();
    let clock = Rc::new(Cell::new(0));
    let (data_at, timer_at) = (log(), log());
    let addr = {
        let (clock, data_at, timer_at) =
            (Rc::clone(&clock), Rc::clone(&data_at), Rc::clone(&timer_at));
        listen(&mut reactor, move || ZeroOnData {
            clock: Rc::clone(&clock),
            data_at: Rc::clone(&data_at),
            timer_at: Rc::clone(&timer_at),
        })
    };
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"x").unwrap();
    drive_until(&mut reactor, &clock, "the timer", || {
        !timer_at.borrow().is_empty()
    });
    let (data_at, timer_at) = (data_at.borrow()[0], timer_at.borrow()[0]);
    assert!(
        timer_at > data_at,
        "set in iteration {data_at}, fired in iteration {timer_at}"
    );
}

/// The same rule for a loop timer armed by a job posted through a `Handle` (also step 3).
#[test]
fn zero_delay_loop_timer_set_in_a_posted_job_fires_on_a_later_iteration() {
    let mut reactor = Reactor::new().unwrap();
    let handle = reactor.handle().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    handle
        .post(move |r| {
            let set_in = r.stats().iterations;
            r.add_timer(Duration::ZERO, move |r| {
                let _ = tx.send((set_in, r.stats().iterations));
            });
        })
        .unwrap();
    let mut got = None;
    util::run_until(&mut reactor, "the timer", |_| {
        got = got.or(rx.try_recv().ok());
        got.is_some()
    });
    let (set_in, fired_in) = got.unwrap();
    assert!(
        fired_in > set_in,
        "set in iteration {set_in}, fired in iteration {fired_in}"
    );
}

/// Armed outside any iteration, a zero-delay timer fires in the next one (the first), and a
/// timer armed for the past, likewise: neither waits for a poll timeout. The iteration is given
/// the hang guard as its poll timeout; one that slept it out would take all of it.
#[test]
fn zero_delay_timer_set_between_iterations_fires_in_the_next_one() {
    let mut reactor = Reactor::new().unwrap();
    reactor.run_once(Some(Duration::ZERO)).unwrap();
    let fired_in = Rc::new(Cell::new(0));
    let seen = Rc::clone(&fired_in);
    reactor.add_timer(Duration::ZERO, move |r| seen.set(r.stats().iterations));
    // Let its deadline pass before the loop looks: now it is in the past.
    let past = Instant::now() + 2 * MS;
    while Instant::now() < past {
        std::hint::spin_loop();
    }
    let before = reactor.stats().iterations;
    let started = Instant::now();
    reactor.run_once(Some(util::TIMEOUT)).unwrap();
    let took = started.elapsed();
    assert_eq!(fired_in.get(), before + 1, "it fires in the next iteration");
    assert!(
        took < util::TIMEOUT,
        "the iteration slept out its whole poll timeout ({took:?}) before firing the timer"
    );
}

/// What a connection that arms a timer did.
#[derive(Debug, PartialEq)]
enum Seen {
    Open(usize),
    Timer(usize),
    Close(usize, util::Reason),
}

/// Arms a timer on open; the first connection of the listener then aborts itself at once.
struct ArmsThenMaybeAborts {
    n: usize,
    delay: Duration,
    seen: Log<Seen>,
}

impl Handler for ArmsThenMaybeAborts {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.seen.borrow_mut().push(Seen::Open(self.n));
        cx.set_timer(self.delay);
        if self.n == 0 {
            cx.abort();
        }
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_timer(&mut self, _cx: &mut Context<'_>, _timer: TimerId) {
        self.seen.borrow_mut().push(Seen::Timer(self.n));
    }

    fn on_close(&mut self, _cx: &mut Context<'_>, reason: CloseReason) {
        self.seen
            .borrow_mut()
            .push(Seen::Close(self.n, util::Reason::from(&reason)));
    }
}

/// Connection 0 arms a 30 ms timer and aborts itself in `on_open`; connection 1 opens after it was
/// released (so it likely reuses its slot) and arms a timer far in the future. Past connection
/// 0's deadline, nobody has had `on_timer`.
#[test]
fn aborted_connection_timer_never_fires_even_when_its_slot_is_reused() {
    let mut reactor = Reactor::new().unwrap();
    let seen = log();
    let addr = {
        let seen = Rc::clone(&seen);
        let mut n = 0;
        listen(&mut reactor, move || {
            n += 1;
            ArmsThenMaybeAborts {
                n: n - 1,
                delay: if n == 1 { 30 * MS } else { util::TIMEOUT },
                seen: Rc::clone(&seen),
            }
        })
    };
    let _first = TcpStream::connect(addr).unwrap();
    util::run_until(&mut reactor, "connection 0 to close", |_| {
        seen.borrow()
            .contains(&Seen::Close(0, util::Reason::Aborted))
    });
    let _second = TcpStream::connect(addr).unwrap();
    util::run_until(&mut reactor, "connection 1 to open", |_| {
        seen.borrow().contains(&Seen::Open(1))
    });
    let done = util::flag_after(&mut reactor, 100 * MS);
    util::run_until(&mut reactor, "connection 0's deadline to pass", |_| {
        done.get()
    });
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Open(0),
            Seen::Close(0, util::Reason::Aborted),
            Seen::Open(1)
        ]
    );
}

/// The peer closes at once; the connection's 300 ms timer must not fire after `on_close`.
#[test]
fn timer_of_a_connection_closed_by_its_peer_never_fires() {
    let delay = 300 * MS;
    let mut reactor = Reactor::new().unwrap();
    let seen = log();
    let addr = {
        let seen = Rc::clone(&seen);
        // n = 1: the handler does not abort itself.
        listen(&mut reactor, move || ArmsThenMaybeAborts {
            n: 1,
            delay,
            seen: Rc::clone(&seen),
        })
    };
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let opened = Instant::now();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    util::run_until(&mut reactor, "the close", |_| {
        seen.borrow().iter().any(|s| matches!(s, Seen::Close(..)))
    });
    let closed_before_deadline = opened.elapsed() < delay;
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "EOF");
    let done = util::flag_after(&mut reactor, delay + 100 * MS);
    util::run_until(&mut reactor, "the deadline to pass", |_| done.get());
    let seen = seen.borrow();
    let close = seen
        .iter()
        .position(|s| matches!(s, Seen::Close(..)))
        .unwrap();
    assert_eq!(close, seen.len() - 1, "nothing after on_close: {seen:?}");
    if closed_before_deadline {
        assert_eq!(
            *seen,
            [Seen::Open(1), Seen::Close(1, util::Reason::PeerClosed)]
        );
    }
}
