//! The reactor: one `mio::Poll`, the slab of sources, and the loop that drives them.
//!
//! The order of one iteration and the fairness guarantee are documented once, on
//! [`Reactor::run_once`]; `run_once` itself is written as that list of steps.

use std::fmt;
use std::io;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::Path;
use std::time::Duration;

use mio::Events;

use crate::conn::CloseMode;
use crate::engine::{Core, Writer};
use crate::handler::Handler;
use crate::id::{ConnId, ListenerId};
use crate::options::{ConnectOptions, ListenOptions};
use crate::target::Target;

/// Size of the one read buffer shared by every connection of a reactor.
const READ_BUF_SIZE: usize = 64 * 1024;
/// Events fetched per `epoll_wait`; more wait for the next iteration, none are lost.
const EVENTS_CAPACITY: usize = 1024;

/// A single-threaded event loop serving TCP and Unix listeners and connections, UDP sockets,
/// timers, foreign sources, and work posted from other threads.
///
/// A reactor owns one `mio::Poll` (epoll on Linux). Each socket is registered once; readiness
/// events are dispatched to the [`Handler`] of the connection they belong to. Nothing blocks:
/// one thread serves every connection.
///
/// Dropping a reactor closes every socket at once without calling `on_close`; for an orderly end
/// that sends all queued output, use [`shutdown`](Self::shutdown) and let [`run`](Self::run)
/// return.
///
/// # Examples
///
/// A complete echo round trip in one process: a listener, an outbound connection through the
/// same reactor, and `stop()` from a callback.
///
/// ```
/// use sockloop::{Context, Handler, Input, Reactor};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         cx.write(input.take_all());
///     }
/// }
///
/// struct Client { got: Vec<u8> }
/// impl Handler for Client {
///     fn on_open(&mut self, cx: &mut Context<'_>) {
///         cx.write(b"ping");
///     }
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         self.got.extend_from_slice(input.take_all());
///         if self.got == b"ping" {
///             cx.stop();
///         }
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
/// reactor.connect(addr, Client { got: Vec::new() });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    pub(crate) core: Core,
    pub(crate) events: Events,
    /// The one read buffer shared by every connection: a connection owns a buffer only while
    /// it holds unconsumed input or unsent output.
    pub(crate) read_buf: Box<[u8]>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("connections", &self.core.counters.open)
            .field("stopping", &self.core.stopping)
            .field("shutting_down", &self.core.shutdown.is_some())
            .finish_non_exhaustive()
    }
}

impl Reactor {
    /// Creates a reactor with its own epoll instance.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = sockloop::Reactor::new()?;
    /// assert_eq!(reactor.connection_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1`, e.g. when the process is out of file descriptors.
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            core: Core::new()?,
            events: Events::with_capacity(EVENTS_CAPACITY),
            read_buf: vec![0; READ_BUF_SIZE].into_boxed_slice(),
        })
    }

    /// Binds a TCP listener with default [`ListenOptions`]; every accepted connection is served
    /// by a fresh handler from `factory`. Returns the listener's id and bound address (useful
    /// with port 0).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, Reactor};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_id, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// assert!(addr.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `socket`, `bind` (e.g. `AddrInUse`), `listen`, or the epoll registration.
    pub fn listen<F, H>(
        &mut self,
        addr: SocketAddr,
        factory: F,
    ) -> io::Result<(ListenerId, SocketAddr)>
    where
        F: FnMut() -> H + 'static,
        H: Handler,
    {
        self.listen_with(addr, ListenOptions::default(), factory)
    }

    /// Binds a TCP listener with explicit options (backlog, `TCP_NODELAY` on accepted sockets).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, ListenOptions, Reactor};
    ///
    /// struct Sink;
    /// impl Handler for Sink {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions::new().backlog(2048).nodelay(false);
    /// let (_id, addr) = reactor.listen_with("127.0.0.1:0".parse().unwrap(), options, || Sink)?;
    /// assert!(addr.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    pub fn listen_with<F, H>(
        &mut self,
        addr: SocketAddr,
        options: ListenOptions,
        mut factory: F,
    ) -> io::Result<(ListenerId, SocketAddr)>
    where
        F: FnMut() -> H + 'static,
        H: Handler,
    {
        let factory = Box::new(move || Box::new(factory()) as Box<dyn Handler>);
        self.core.add_listener(addr, options, factory)
    }

    /// Closes a listener. Connections it accepted stay open.
    ///
    /// # Examples
    ///
    /// See [`ListenerId`].
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if the listener is already closed.
    pub fn close_listener(&mut self, id: ListenerId) -> io::Result<()> {
        self.core.remove_listener(id)
    }

    /// Starts a non-blocking outbound TCP connection to `target` served by `handler`. The
    /// target is a socket address, a list of addresses, or `"host:port"`: a name is resolved on
    /// the reactor's resolver threads (never on the loop thread), several addresses are raced
    /// (Happy Eyeballs; see [`Target`](crate::Target)), and the whole connect gives up after 30 s
    /// ([`ConnectOptions::connect_timeout`](crate::ConnectOptions::connect_timeout)).
    ///
    /// The handler's [`on_open`](Handler::on_open) runs once the connection is really
    /// established. If it cannot be (refused, unreachable, no descriptors left), the same handler
    /// gets [`on_close`](Handler::on_close) with [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed) and the error
    /// instead; that is why this method returns no `Result`. Output written with
    /// [`write_to`](Self::write_to) before the connection opens is sent once it does.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{CloseReason, Context, Handler, Input, Reactor};
    ///
    /// struct Probe;
    /// impl Handler for Probe {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}
    ///     fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
    ///         assert!(matches!(reason, CloseReason::ConnectFailed(_)));
    ///         cx.stop();
    ///     }
    /// }
    ///
    /// // Find a port nobody listens on, then connect to it.
    /// let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    /// let mut reactor = Reactor::new()?;
    /// reactor.connect(("127.0.0.1", port), Probe);
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<H: Handler>(&mut self, target: impl Into<Target>, handler: H) -> ConnId {
        let options = ConnectOptions::default();
        self.core
            .connect_with(target.into(), &options, Box::new(handler))
    }

    /// Like [`connect`](Self::connect), with limits for this connection (watermarks, caps,
    /// whether reading pauses over the high watermark).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnectOptions, Context, Handler, Input, Reactor};
    ///
    /// struct Upstream;
    /// impl Handler for Upstream {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.stop();
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Upstream)?;
    /// let options = ConnectOptions::new().pause_reading_over_high(false);
    /// reactor.connect_with(addr, options, Upstream);
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_with<H: Handler>(
        &mut self,
        target: impl Into<Target>,
        options: ConnectOptions,
        handler: H,
    ) -> ConnId {
        self.core
            .connect_with(target.into(), &options, Box::new(handler))
    }

    /// Like [`connect`](Self::connect), from the local address `local` (port 0: any port). Load
    /// generators use this to spread connections over several source addresses (127.0.0.2,
    /// 127.0.0.3, ...): each source address has its own range of ephemeral ports per destination.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, Reactor};
    ///
    /// /// Server side: checks where the client came from.
    /// struct Check;
    /// impl Handler for Check {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         assert_eq!(cx.peer_addr().unwrap().ip().to_string(), "127.0.0.2");
    ///         cx.stop();
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}
    /// }
    /// struct Quiet;
    /// impl Handler for Quiet {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, _input: &mut Input<'_>) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Check)?;
    /// reactor.connect_from("127.0.0.2:0".parse().unwrap(), addr, Quiet);
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_from<H: Handler>(
        &mut self,
        local: SocketAddr,
        addr: SocketAddr,
        handler: H,
    ) -> ConnId {
        let options = ConnectOptions::new().bind(local);
        self.core
            .connect_with(addr.into(), &options, Box::new(handler))
    }

    /// Queues `data` for connection `id`; it is flushed during the next iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// # use sockloop::{Context, Handler, Input, Reactor};
    /// # struct Sink;
    /// # impl Handler for Sink {
    /// #     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) { input.consume(input.len()); }
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Sink)?;
    /// let id = reactor.connect(addr, Sink);
    /// reactor.write_to(id, b"queued until connected")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed, [`io::ErrorKind::BrokenPipe`] if its write
    /// side is shut down or closing.
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> io::Result<()> {
        self.core.send(id, data, Writer::Other)
    }

    /// Closes connection `id` gracefully: queued output is sent first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use sockloop::{Context, Handler, Input, Reactor};
    /// # struct Sink;
    /// # impl Handler for Sink {
    /// #     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) { input.consume(input.len()); }
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Sink)?;
    /// let id = reactor.connect(addr, Sink);
    /// reactor.close(id)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is already closed.
    pub fn close(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Graceful)
    }

    /// Closes connection `id` at once, discarding queued output and resetting the peer.
    ///
    /// # Examples
    ///
    /// ```
    /// # use sockloop::{Context, Handler, Input, Reactor};
    /// # struct Sink;
    /// # impl Handler for Sink {
    /// #     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) { input.consume(input.len()); }
    /// # }
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Sink)?;
    /// let id = reactor.connect(addr, Sink);
    /// reactor.abort(id)?;
    /// assert!(reactor.abort(id).is_ok(), "aborting twice is harmless until the slot is released");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is already closed.
    pub fn abort(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Abort)
    }

    /// Binds a Unix domain stream listener at `path` (which must not exist); accepted
    /// connections are served by handlers from `factory`, exactly like TCP ones (only
    /// [`Context::peer_addr`](crate::Context::peer_addr) and `local_addr` have no IP address to
    /// report). The socket file is not removed when the listener closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, Reactor};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    /// }
    /// struct Client;
    /// impl Handler for Client {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"over a unix socket");
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         if input.len() == 18 {
    ///             cx.stop();
    ///         }
    ///     }
    /// }
    ///
    /// let dir = std::env::temp_dir().join(format!("sockloop-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("echo.sock");
    /// let _ = std::fs::remove_file(&path);
    /// let mut reactor = Reactor::new()?;
    /// reactor.listen_unix(&path, || Echo)?;
    /// reactor.connect_unix(&path, Client);
    /// reactor.run()?;
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The error of `bind` (e.g. `AddrInUse` if the path exists) or of the registration.
    #[cfg(unix)]
    pub fn listen_unix<F, H>(
        &mut self,
        path: impl AsRef<Path>,
        factory: F,
    ) -> io::Result<ListenerId>
    where
        F: FnMut() -> H + 'static,
        H: Handler,
    {
        self.listen_unix_with(path, ListenOptions::default(), factory)
    }

    /// [`listen_unix`](Self::listen_unix) with options (the idle timeout applies; `nodelay` has
    /// no meaning for Unix sockets).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{Context, Handler, Input, ListenOptions, Reactor};
    ///
    /// struct Sink;
    /// impl Handler for Sink {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("sockloop-doc-opt-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions::new().idle_timeout(Duration::from_secs(60));
    /// let id = reactor.listen_unix_with(&path, options, || Sink)?;
    /// reactor.close_listener(id)?;
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`listen_unix`](Self::listen_unix).
    #[cfg(unix)]
    pub fn listen_unix_with<F, H>(
        &mut self,
        path: impl AsRef<Path>,
        options: ListenOptions,
        mut factory: F,
    ) -> io::Result<ListenerId>
    where
        F: FnMut() -> H + 'static,
        H: Handler,
    {
        let factory = Box::new(move || Box::new(factory()) as Box<dyn Handler>);
        self.core.add_unix_listener(path.as_ref(), options, factory)
    }

    /// Starts a Unix domain stream connection to `path`, served by `handler`; outcomes are
    /// reported as for [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// See [`listen_unix`](Self::listen_unix).
    #[cfg(unix)]
    pub fn connect_unix<H: Handler>(&mut self, path: impl AsRef<Path>, handler: H) -> ConnId {
        self.core.connect_unix(path.as_ref(), Box::new(handler))
    }

    /// Runs iterations until [`stop`](Self::stop) (or [`Context::stop`](crate::Context::stop)) is called.
    ///
    /// # Examples
    ///
    /// See [`Reactor`].
    ///
    /// # Errors
    ///
    /// Only errors of `epoll_wait` itself; a failing connection never ends the loop.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.core.stopping {
            self.run_once(None)?;
        }
        self.core.stopping = false;
        Ok(())
    }

    /// Makes [`run`](Self::run) return after the current iteration; if it is not running, the
    /// next `run` returns at once (without waiting for events).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut reactor = sockloop::Reactor::new()?;
    /// reactor.stop();
    /// reactor.run()?; // returns at once
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&mut self) {
        self.core.stop();
    }

    /// Runs one iteration of the loop, waiting at most `timeout` for events (`None`: until an
    /// event or a timer). Returns the number of readiness events handled.
    ///
    /// # One iteration, in this order
    ///
    /// 1. **Timeout.** Zero if work is already queued (sources on the still-ready queue, posted
    ///    jobs left by the job budget, output or closes queued from outside a callback) or busy
    ///    polling is on; otherwise the time to the nearest timer (rounded up to a whole
    ///    millisecond, so the loop never wakes just early and spins), capped by `timeout`.
    /// 2. **Poll.** `epoll_wait` for at most 1,024 events (more wait for the next iteration;
    ///    none is lost). `Interrupted` just ends the wait early.
    /// 3. **Dispatch.** Every event by its token, then the sources that the previous iteration
    ///    left on the still-ready queue: a listener accepts, a connection flushes (if output is
    ///    pending and the socket is writable) and reads, a UDP socket receives. A connection's
    ///    own replies are written as soon as its callback returns after a small poll, and each
    ///    time 32 connections have some after a large one; output to other connections waits
    ///    for step 4. Then the callbacks that need the whole reactor: jobs posted through a
    ///    [`Handle`](crate::Handle) and ready foreign sources.
    /// 4. **Deferred work.** Queued output (replies, broadcasts, proxied bytes) is flushed once
    ///    per connection: one `write` each. Closes are completed: the slot is freed, the socket
    ///    closed, and `on_close` called. Slots are freed only here, never during dispatch, so an
    ///    event in the current batch cannot reach a slot's next owner (tokens also carry a
    ///    generation).
    /// 5. **Timers** due now fire in `(deadline, sequence)` order; timers they arm wait for the
    ///    next iteration. A graceful shutdown that has nothing left to close ends `run` here.
    ///
    /// # Fairness: what one iteration does at most
    ///
    /// One iteration does bounded work per source, whatever the peers do, so every ready
    /// connection gets its turn within one iteration of becoming ready:
    ///
    /// - A ready **connection** gets at most one turn per iteration: at most 16 reads of at
    ///   most 64 KiB (1 MiB), ending early once its queued output passes the high watermark;
    ///   its replies are then written by one flush. (Output written to it by other
    ///   connections' callbacks is flushed with the rest in step 4.)
    /// - A **listener** accepts at most 256 connections per turn; a **UDP socket** receives at
    ///   most 256 datagrams per turn (in batches of 32 on Linux; a batch's GRO trains, each at
    ///   most 64 KiB, are delivered whole), then sends what its handler sent in batches of 64.
    /// - A turn that ends with work possibly left puts its source on the **still-ready queue**,
    ///   since with edge-triggered readiness no new event would come for that work; so does
    ///   reading resumed after a pause. A source is on that queue at most once. The queue is
    ///   served after the next iteration's fresh events, so every other ready source is served
    ///   before a hot one is served again. [`Stats::still_ready`](crate::Stats::still_ready)
    ///   counts these turns.
    /// - At most 1,024 **posted jobs** run; the rest run in the next iterations, in order.
    ///   Jobs posted while they run (even by themselves) wait for a later iteration.
    /// - Only **timers** armed before the iteration began fire in it: a timer that re-arms
    ///   itself at zero fires once per iteration.
    /// - A **foreign source** gets one callback per readiness event, so at most one per
    ///   iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut reactor = sockloop::Reactor::new()?;
    /// let handled = reactor.run_once(Some(Duration::from_millis(1)))?;
    /// assert_eq!(handled, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Errors of `epoll_wait` other than `Interrupted`.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.iterate(timeout)
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.core.jobs.detach();
        let open = self.connection_count();
        if open > 0 {
            log::debug!("reactor dropped with {open} connections open; their sockets are closed");
        }
    }
}
