//! Foreign sources: any `mio::event::Source` (a pipe, a signalfd, another library's socket)
//! driven by the same poll loop, with a readiness callback that gets the whole reactor.
//!
//! Registration is edge-triggered like everything else in the loop: a callback must consume all
//! it can (read until `WouldBlock`), or it will not hear of the rest until new data arrives.

use std::io;

use mio::event::{Event, Source};
use mio::Interest;

use crate::engine::{AnySource, Registered};
use crate::id::SourceId;
use crate::reactor::Reactor;

/// Readiness reported for a foreign source (and used for the reactor's own sockets).
///
/// # Examples
///
/// ```
/// # use sockloop::Readiness;
/// fn describe(r: Readiness) -> &'static str {
///     if r.is_error() { "error" } else if r.is_readable() { "readable" } else { "other" }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) read_closed: bool,
    pub(crate) write_closed: bool,
    pub(crate) error: bool,
    pub(crate) priority: bool,
}

impl Readiness {
    pub(crate) fn from_event(event: &Event) -> Readiness {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
            priority: event.is_priority(),
        }
    }

    /// The source can be read (or accepted from) without blocking.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_readable());
    /// ```
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// The source can be written without blocking.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_writable());
    /// ```
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The read half is closed (e.g. the write end of a pipe was closed).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_read_closed());
    /// ```
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// The write half is closed (e.g. the read end of a pipe was closed).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_write_closed());
    /// ```
    pub fn is_write_closed(&self) -> bool {
        self.write_closed
    }

    /// The source reported an error condition.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_error());
    /// ```
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// Priority data is pending (`EPOLLPRI` on Linux: for a TCP socket, urgent data sent with
    /// `MSG_OOB`). Reported only for sources registered with
    /// [`Interest::PRIORITY`](mio::Interest), which exists on Linux and Android.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!sockloop::Readiness::default().is_priority());
    /// ```
    pub fn is_priority(&self) -> bool {
        self.priority
    }
}

impl Reactor {
    /// Registers a foreign `mio` source (edge-triggered) with a callback run on the loop thread
    /// whenever it becomes ready. The reactor owns the source until
    /// [`remove_source`](Self::remove_source).
    ///
    /// # Examples
    ///
    /// A pipe whose read end is served by the loop:
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use mio::{unix::pipe, Interest};
    /// use sockloop::Reactor;
    ///
    /// let (mut tx, rx) = pipe::new()?;
    /// let mut reactor = Reactor::new()?;
    /// reactor.add_source(rx, Interest::READABLE, |reactor, rx, _readiness| {
    ///     let mut buf = [0u8; 64];
    ///     // Edge-triggered: read until WouldBlock.
    ///     while let Ok(n) = rx.read(&mut buf) {
    ///         if n == 0 { break; }
    ///         assert_eq!(&buf[..n], b"wake up");
    ///         reactor.stop();
    ///     }
    /// })?;
    /// tx.write_all(b"wake up")?;
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of the epoll registration.
    pub fn add_source<S, F>(
        &mut self,
        source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<SourceId>
    where
        S: Source + 'static,
        F: FnMut(&mut Reactor, &mut S, Readiness) + 'static,
    {
        let boxed: Box<dyn AnySource> = Box::new(Registered { source, callback });
        let id = self.core.add_source(boxed, interest)?;
        log::debug!("{id}: registered");
        Ok(id)
    }

    /// Deregisters a foreign source and drops it (closing it, if it owns a descriptor). May be
    /// called from the source's own callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use mio::{unix::pipe, Interest};
    ///
    /// let (_tx, rx) = pipe::new()?;
    /// let mut reactor = sockloop::Reactor::new()?;
    /// let id = reactor.add_source(rx, Interest::READABLE, |_, _, _| {})?;
    /// reactor.remove_source(id)?;
    /// assert!(reactor.remove_source(id).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if it was already removed.
    pub fn remove_source(&mut self, id: SourceId) -> io::Result<()> {
        self.core.remove_source(id)?;
        log::debug!("{id}: removed");
        Ok(())
    }
}
