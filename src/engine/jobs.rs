//! Jobs posted from other threads through a [`Handle`](crate::Handle), and step 3's run of them.
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

use mio::{Registry, Waker};

use crate::id::WAKER;
use crate::reactor::Reactor;

pub(crate) type Job = Box<dyn FnOnce(&mut Reactor) + Send>;

/// Posted jobs run per iteration at most; the rest run in the next ones, in order, so that
/// other threads posting without pause cannot keep the loop from polling.
const JOB_BUDGET: usize = 1024;

/// What the reactor shares with its handles.
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
        // the queue itself is still valid.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` and wakes the loop unless a wake-up is already pending.
    pub(crate) fn post(&self, job: Job) -> io::Result<()> {
        {
            let mut queue = self.lock();
            if !self.alive.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the reactor is gone",
                ));
            }
            queue.push_back(job);
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake()?;
        }
        Ok(())
    }
}

/// The reactor's side: the shared queue (made by the first `handle()`), and jobs taken from
/// it that a budget left for later iterations.
#[derive(Default)]
pub(crate) struct Jobs {
    shared: Option<Arc<Shared>>,
    pending: VecDeque<Job>,
}

impl Jobs {
    /// The state shared with handles, created (with the waker's eventfd) on first use.
    pub(crate) fn shared(&mut self, registry: &Registry) -> io::Result<Arc<Shared>> {
        if let Some(shared) = &self.shared {
            return Ok(Arc::clone(shared));
        }
        let shared = Arc::new(Shared {
            waker: Waker::new(registry, WAKER)?,
            queue: Mutex::new(VecDeque::new()),
            woken: AtomicBool::new(false),
            alive: AtomicBool::new(true),
        });
        self.shared = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Jobs a budget left: step 1 must not sleep.
    pub(crate) fn left(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Marks the handles' reactor as gone; later posts fail.
    pub(crate) fn detach(&mut self) {
        if let Some(shared) = &self.shared {
            let queue = shared.lock();
            shared.alive.store(false, Ordering::Release);
            let left = queue.len() + self.pending.len();
            if left > 0 {
                log::debug!("reactor dropped with {left} posted jobs not run");
            }
        }
    }
}

impl Reactor {
    /// Runs the jobs posted through handles (step 3): at most `JOB_BUDGET` of them, taken from
    /// the handles' queue on the waker's event (`woken`) and from what earlier iterations left.
    /// Jobs posted while these run (even by them) wait for a later iteration.
    pub(crate) fn run_posted(&mut self, woken: bool) {
        if woken {
            if let Some(shared) = &self.core.jobs.shared {
                shared.woken.store(false, Ordering::Release);
                self.core.jobs.pending.append(&mut shared.lock());
            }
        }
        for _ in 0..JOB_BUDGET {
            let Some(job) = self.core.jobs.pending.pop_front() else {
                return;
            };
            job(self);
        }
        if self.core.jobs.left() {
            let left = self.core.jobs.pending.len();
            log::debug!("{left} posted jobs wait for the next iteration");
        }
    }
}
