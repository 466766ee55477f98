//! The cross-thread handle: post work to the loop thread, stop it, or shut it down gracefully.
//!
//! Posted closures go into a mutex-protected queue; the poster wakes the loop through mio's
//! `Waker` (an eventfd) only if no wake-up is already pending, so a burst of posts costs one
//! eventfd write and one loop wake-up, not one each. The loop clears the pending flag *before*
//! taking the queue: a post that lands after the take sees the flag clear and wakes it again, so
//! no closure can be stranded.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::Waker;

use crate::id::WAKER;
use crate::reactor::Reactor;

pub(crate) type Job = Box<dyn FnOnce(&mut Reactor) + Send>;

/// Posted jobs run per iteration at most; the rest run in the next ones, in order, so that
/// other threads posting without pause cannot keep the loop from polling.
const JOB_BUDGET: usize = 1024;

pub(crate) struct Shared {
    waker: Waker,
    queue: Mutex<VecDeque<Job>>,
    /// A wake-up is pending (the loop has not yet taken the queue since it was set).
    woken: AtomicBool,
    /// The reactor still exists; posts to a dropped reactor fail instead of vanishing.
    alive: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        // A poisoned lock only means a poster panicked between lock and unlock (while pushing):
        // the queue itself is still a valid Vec.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A `Send + Clone` handle to a [`Reactor`], usable from any thread.
///
/// # Examples
///
/// ```
/// use std::thread;
///
/// let mut reactor = sockloop::Reactor::new()?;
/// let handle = reactor.handle()?;
/// let worker = thread::spawn(move || {
///     // ... compute something, then hand the result to the loop thread:
///     handle.post(|reactor| {
///         println!("back on the loop thread with {} connections", reactor.connection_count());
///         reactor.stop();
///     })
/// });
/// reactor.run()?;
/// worker.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Runs `job` on the loop thread, with the reactor, during its next iteration. Jobs run in
    /// the order they were posted (from one thread; across threads, in lock order).
    ///
    /// # Examples
    ///
    /// See [`Handle`].
    ///
    /// # Errors
    ///
    /// `NotConnected` if the reactor was dropped; the error of the eventfd write (never seen in
    /// practice).
    pub fn post<F>(&self, job: F) -> io::Result<()>
    where
        F: FnOnce(&mut Reactor) + Send + 'static,
    {
        {
            let mut queue = self.shared.lock();
            if !self.shared.alive.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the reactor is gone",
                ));
            }
            queue.push_back(Box::new(job));
        }
        if !self.shared.woken.swap(true, Ordering::AcqRel) {
            self.shared.waker.wake()?;
        }
        Ok(())
    }

    /// Makes [`Reactor::run`] return after its current iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut reactor = sockloop::Reactor::new()?;
    /// let handle = reactor.handle()?;
    /// std::thread::spawn(move || handle.stop());
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`post`](Self::post).
    pub fn stop(&self) -> io::Result<()> {
        self.post(|reactor| reactor.stop())
    }

    /// Starts a graceful shutdown (see [`Reactor::shutdown`]): [`Reactor::run`] returns once
    /// every connection has closed, or `grace` has passed and the rest were closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut reactor = sockloop::Reactor::new()?;
    /// let handle = reactor.handle()?;
    /// std::thread::spawn(move || handle.shutdown(Duration::from_secs(5)));
    /// reactor.run()?; // returns: nothing was open
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`post`](Self::post).
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.post(move |reactor| reactor.shutdown(grace))
    }
}

impl Reactor {
    /// A handle for other threads, creating the reactor's waker (one eventfd) on first use.
    ///
    /// # Examples
    ///
    /// See [`Handle`].
    ///
    /// # Errors
    ///
    /// The error of creating or registering the eventfd.
    pub fn handle(&mut self) -> io::Result<Handle> {
        if self.shared.is_none() {
            let waker = Waker::new(self.core_mut().poll.registry(), WAKER)?;
            self.shared = Some(Arc::new(Shared {
                waker,
                queue: Mutex::new(VecDeque::new()),
                woken: AtomicBool::new(false),
                alive: AtomicBool::new(true),
            }));
        }
        let shared = self
            .shared
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| io::Error::other("no waker"))?;
        Ok(Handle { shared })
    }

    /// Runs the jobs posted through handles (step 3): at most `JOB_BUDGET` of them, taken from
    /// the handles' queue on the waker's event (`woken`) and from what earlier iterations left.
    /// Jobs posted while these run (even by them) wait for a later iteration.
    pub(crate) fn run_posted(&mut self, woken: bool) {
        if woken {
            if let Some(shared) = &self.shared {
                shared.woken.store(false, Ordering::Release);
                self.jobs.append(&mut shared.lock());
            }
        }
        for _ in 0..JOB_BUDGET {
            let Some(job) = self.jobs.pop_front() else {
                return;
            };
            job(self);
        }
        if !self.jobs.is_empty() {
            log::debug!(
                "{} posted jobs wait for the next iteration",
                self.jobs.len()
            );
        }
    }

    /// Marks the handles' reactor as gone; later posts fail.
    pub(crate) fn detach_handles(&mut self) {
        if let Some(shared) = &self.shared {
            let queue = shared.lock();
            shared.alive.store(false, Ordering::Release);
            let left = queue.len() + self.jobs.len();
            if left > 0 {
                log::debug!("reactor dropped with {left} posted jobs not run");
            }
        }
    }
}
