//! The cross-thread handle: post work to the loop thread, stop it, or shut it down gracefully.
//! The queue and the wake-up behind it are `src/engine/jobs.rs`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Shared;
use crate::reactor::Reactor;

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
        self.shared.post(Box::new(job))
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
        let shared = self.core.jobs.shared(self.core.poll.registry())?;
        Ok(Handle { shared })
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}
