//! What timers cost, through the public API, with no other timer armed and with 1,000,000 armed.
//!
//! - `set+cancel`: `add_timer(90 min, ..)` then `cancel_timer`: a request timeout that is
//!   disarmed because the reply came first, the commonest fate of a timer.
//! - `expire`: `add_timer(Duration::ZERO, ..)` then `run_once(Some(Duration::ZERO))`, which fires
//!   it. That includes one loop iteration (an `epoll_wait` that returns at once), so
//!   `empty iteration` (`run_once` alone) is measured too: the difference is the timer's share.
//! - `activity/idle timeout off|on`: one byte sent by a client and read by the server, on a
//!   connection whose listener has no idle timeout or a 60 s one. An idle timeout must cost O(1)
//!   per read (a timestamp store, no timer touched), so the two should be equal within noise,
//!   with and without the million timers. A Unix socket carries the byte: it is cheaper and
//!   steadier than TCP loopback (here ~1.2 µs, ±8% from run to run), so a per-read timer
//!   operation would stand out more.
//!
//! The million "live" timers are armed once per group with far-future deadlines (1 to 2 hours,
//! scattered, so the heap has an ordinary shape rather than a sorted one) and never fire.
//!
//! Run with `cargo bench -p sockloop-benches --bench timers` (about 35 s once built); add `-- expire` for one case.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use sockloop::{Context, Handler, Input, ListenOptions, Reactor};

/// How many other timers are armed in each group, with the label used in the group's name.
const LIVE: [(usize, &str); 2] = [(0, "0_live"), (1_000_000, "1M_live")];
/// The live timers' deadlines lie in `[HOUR, 2 * HOUR)`.
const HOUR: Duration = Duration::from_secs(3600);
/// Deadline of the timers that are set and cancelled: among the live ones, not past all of them.
const SET_CANCEL_AFTER: Duration = Duration::from_secs(90 * 60);
/// Longer than the whole run, so the idle check never closes the benchmark's connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A reactor with `live` one-shot timers armed between one and two hours from now.
fn reactor_with_timers(live: usize) -> Reactor {
    let mut reactor = Reactor::new().expect("reactor");
    for i in 0..live as u64 {
        // A multiplicative hash scatters the deadlines over the hour, as arrival order would.
        let scatter = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40; // 0 .. 2^24
        let offset = HOUR.mul_f64(scatter as f64 / (1u64 << 24) as f64);
        reactor.add_timer(HOUR + offset, |_| panic!("a far-future timer fired"));
    }
    reactor
}

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn set_cancel(group: &mut Group<'_>, reactor: &mut Reactor) {
    group.bench_function("set+cancel", |b| {
        b.iter(|| {
            let id = reactor.add_timer(SET_CANCEL_AFTER, |_| panic!("a cancelled timer fired"));
            assert!(reactor.cancel_timer(black_box(id)));
        })
    });
}

fn expire(group: &mut Group<'_>, reactor: &mut Reactor) {
    let fired = Rc::new(Cell::new(0u64));
    let mut set = 0u64;
    group.bench_function("expire", |b| {
        b.iter(|| {
            let count = Rc::clone(&fired);
            reactor.add_timer(Duration::ZERO, move |_| count.set(count.get() + 1));
            set += 1;
            reactor.run_once(Some(Duration::ZERO)).expect("run_once");
        })
    });
    // Every timer set must have fired in the very iteration that followed, or we timed nothing.
    assert_eq!(fired.get(), set, "timers set vs fired");
    group.bench_function("empty iteration", |b| {
        b.iter(|| reactor.run_once(Some(Duration::ZERO)).expect("run_once"))
    });
}

/// Counts the bytes its connection reads; they are consumed and dropped.
struct Sink(Rc<Cell<u64>>);

impl Handler for Sink {
    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.0.set(self.0.get() + input.len() as u64);
        input.consume(input.len());
    }
}

/// One byte written by a client and read by the server, on the same thread: each iteration is
/// one read (one "activity") on a server connection.
fn activity(group: &mut Group<'_>, reactor: &mut Reactor) {
    for (name, options) in [
        ("activity/idle timeout off", ListenOptions::new()),
        (
            "activity/idle timeout on",
            ListenOptions::new().idle_timeout(IDLE_TIMEOUT),
        ),
    ] {
        let read = Rc::new(Cell::new(0u64));
        let counter = Rc::clone(&read);
        let path =
            std::env::temp_dir().join(format!("sockloop-timers-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = reactor
            .listen_unix_with(&path, options, move || Sink(Rc::clone(&counter)))
            .expect("listen");
        let mut client = UnixStream::connect(&path).expect("connect");
        let open = reactor.connection_count();
        while reactor.connection_count() == open {
            reactor
                .run_once(Some(Duration::from_millis(10)))
                .expect("accept");
        }
        let mut sent = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                client.write_all(b"x").expect("send");
                sent += 1;
                // A Unix socket delivers at once; the loop only guards against a spurious wake-up.
                while read.get() < sent {
                    reactor.run_once(Some(Duration::ZERO)).expect("run_once");
                }
            })
        });
        drop(client);
        reactor.close_listener(listener).expect("close listener");
        std::fs::remove_file(&path).expect("remove socket file");
        while reactor.connection_count() > 0 {
            reactor
                .run_once(Some(Duration::from_millis(10)))
                .expect("close");
        }
        assert_eq!(
            reactor.stats().closed.idle_timeout,
            0,
            "idle check closed it"
        );
    }
}

fn timers(c: &mut Criterion) {
    for (live, label) in LIVE {
        let mut reactor = reactor_with_timers(live);
        let mut group = c.benchmark_group(format!("timers_{label}"));
        set_cancel(&mut group, &mut reactor);
        expire(&mut group, &mut reactor);
        activity(&mut group, &mut reactor);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Every case is sub-microsecond to a few microseconds: 2 s gives criterion millions of
    // iterations, and the ten cases (plus arming the million timers twice) take about a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = timers
}
criterion_main!(benches);
