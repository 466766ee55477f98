//! The cross-thread `Handle`: jobs posted from many threads each run exactly once, on the loop
//! thread, in each poster's order; `Handle::stop` ends `run()`; a handle outliving its reactor
//! reports an error instead of losing jobs silently.

mod util;

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use util::Echo;

#[test]
fn posts_from_eight_threads_each_run_exactly_once_on_the_loop_thread_in_poster_order() {
    const THREADS: usize = 8;
    const POSTS: usize = 1000;

    let (loop_thread, run) = util::spawn_run(|_| thread::current().id());
    let runs: Arc<Vec<AtomicU8>> =
        Arc::new((0..THREADS * POSTS).map(|_| AtomicU8::new(0)).collect());
    // Per poster: the index its next job must have (jobs from one thread run in post order).
    let next: Arc<Vec<AtomicUsize>> = Arc::new((0..THREADS).map(|_| AtomicUsize::new(0)).collect());
    let misplaced = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));

    let posters: Vec<_> = (0..THREADS)
        .map(|t| {
            let handle = run.handle().clone();
            let (runs, next, misplaced, start) = (
                Arc::clone(&runs),
                Arc::clone(&next),
                Arc::clone(&misplaced),
                Arc::clone(&start),
            );
            thread::spawn(move || {
                start.wait();
                for i in 0..POSTS {
                    let (runs, next, misplaced) =
                        (Arc::clone(&runs), Arc::clone(&next), Arc::clone(&misplaced));
                    handle
                        .post(move |_reactor| {
                            runs[t * POSTS + i].fetch_add(1, Ordering::Relaxed);
                            let on_loop = thread::current().id() == loop_thread;
                            let in_order = next[t].swap(i + 1, Ordering::Relaxed) == i;
                            if !on_loop || !in_order {
                                misplaced.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                        .expect("post while the reactor runs");
                }
                // No further post will come from here to wake the loop: a job stranded by a
                // lost wake-up would show as this wait timing out.
                util::wait_until("this poster's last job to run", || {
                    next[t].load(Ordering::Relaxed) == POSTS
                });
            })
        })
        .collect();
    for p in posters {
        p.join().expect("poster thread");
    }

    let counts: Vec<u8> = runs.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let wrong: Vec<(usize, usize, u8)> = counts
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 1)
        .map(|(k, &n)| (k / POSTS, k % POSTS, n))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "(thread, post, times run), first 10: {wrong:?}"
    );
    assert_eq!(
        misplaced.load(Ordering::Relaxed),
        0,
        "jobs that ran off the loop thread or out of their poster's order"
    );

    let handle = run.handle().clone();
    handle.stop().unwrap();
    let returned = run.wait_returned(util::TIMEOUT);
    returned.result.expect("run");
    // The reactor is gone now: the handle says so instead of queueing into the void.
    let err = handle.post(|_| unreachable!("ran after the reactor was dropped"));
    assert_eq!(err.unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(handle.stop().unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(
        handle.shutdown(Duration::from_secs(1)).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
}

/// `run()` serves a connection until another thread calls `Handle::stop`, then returns.
#[test]
fn stop_from_another_thread_ends_run() {
    let (addr, run) =
        util::spawn_run(|reactor| reactor.listen(util::localhost(), || Echo).unwrap().1);
    let mut c = util::client(addr);
    c.write_all(b"serving").unwrap();
    assert_eq!(util::read_exactly(&mut c, 7), b"serving");
    assert!(
        !run.has_returned(),
        "run() returned before anyone stopped it"
    );

    let handle = run.handle().clone();
    thread::spawn(move || handle.stop())
        .join()
        .unwrap()
        .expect("stop");
    let returned = run.wait_returned(util::TIMEOUT);
    returned.result.expect("run");
    assert_eq!(returned.stats.accepted, 1);
}

/// A job may post another job: it runs on a later iteration (the loop is woken again), not never.
#[test]
fn job_posted_from_a_job_runs_too() {
    let ((), run) = util::spawn_run(|_| ());
    let handle = run.handle().clone();
    let inner = handle.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    handle
        .post(move |reactor| {
            let first = reactor.stats().iterations;
            inner
                .post(move |reactor| {
                    let _ = tx.send((first, reactor.stats().iterations));
                })
                .unwrap();
        })
        .unwrap();
    let (first, second) = util::recv(&rx, "the job posted by a job");
    assert!(second > first, "ran in iterations {first} and {second}");
}
