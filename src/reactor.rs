//! The reactor: one `mio::Poll`, the slab of sources, and the loop that drives them.
//!
//! # One iteration of [`Reactor::run_once`], in this order
//!
//! 1. **Timeout.** Zero if work is already queued (still-ready sockets, output or closes queued
//!    from outside a callback); otherwise the time to the nearest timer (rounded up to a whole
//!    millisecond, so the loop never wakes just early and spins), capped by the caller's timeout.
//! 2. **Poll.** `poll.poll(&mut events, timeout)`; `Interrupted` just ends the iteration early.
//! 3. **Dispatch** every event by token, then the still-ready queue: a listener accepts, a
//!    connection flushes (if output is pending and the socket is writable) and reads. Handler
//!    writes are flushed right after each callback (one `write` per callback).
//! 4. **Deferred work.** Output queued for other connections (chat broadcasts, proxies) is
//!    flushed once per connection; closes are completed: the slot is freed, the socket closed, and
//!    `on_close` called. Slots are freed only here, never during dispatch, so an event in the
//!    current batch cannot reach a slot's next owner (tokens also carry a generation).
//! 5. **Timers** due now fire in `(deadline, sequence)` order.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::buf::BufPool;
use crate::conn::{conn_in, CloseMode, Conn, Ready, State};
use crate::handler::{CloseReason, Context, Handler};
use crate::id::{unpack, ConnId, ListenerId, WAKER};
use crate::listener::{ListenOptions, Listener};
use crate::timer::Timers;

/// Size of the one read buffer shared by every connection of a reactor.
const READ_BUF_SIZE: usize = 64 * 1024;
/// Events fetched per `epoll_wait`; more wait for the next iteration, none are lost.
const EVENTS_CAPACITY: usize = 1024;

/// Everything a slot can hold. The token space is shared, so new kinds of sources (UDP sockets,
/// Unix listeners, foreign sources) are new variants here, not new token ranges.
pub(crate) enum Entry {
    Listener(Listener),
    Conn(Conn),
    /// An outbound connect that failed before a socket could be registered; its handler hears
    /// about it (`on_close` with `ConnectFailed`) when the iteration's closes are completed.
    FailedConnect(Box<dyn Handler>, io::Error),
}

pub(crate) struct Slot {
    pub(crate) gen: u32,
    pub(crate) entry: Entry,
}

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Retry accepting on a listener paused by an accept error (e.g. EMFILE).
    ResumeAccept(ListenerId),
    /// Stop waiting for the peer's FIN on a gracefully closing connection.
    LingerExpired(ConnId),
}

/// The reactor's state minus the poll buffers: what handler callbacks reach through a
/// [`Context`]. Kept apart from `Events` and the read buffer so that dispatch can borrow those
/// while a callback borrows this.
pub(crate) struct Core {
    pub(crate) poll: Poll,
    pub(crate) slots: Slab<Slot>,
    next_gen: u32,
    /// Connections with output or a state change queued from outside their own callback.
    pub(crate) dirty: Vec<ConnId>,
    /// Keys of slots to release in step 4.
    pub(crate) closing: Vec<usize>,
    /// Sources that stopped on a budget with work left (edge-triggered: no new event will come).
    pub(crate) ready: VecDeque<Token>,
    pub(crate) timers: Timers<TimerAction>,
    pub(crate) pool: BufPool,
    /// Listeners waiting for file descriptors (or memory) to accept again.
    pub(crate) paused: Vec<ListenerId>,
    stopping: bool,
}

/// The `NotFound` error for an id whose connection or listener no longer exists.
pub(crate) fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no such connection or listener (already closed?)",
    )
}

impl Core {
    /// Reserves a slot and returns its key and fresh generation.
    pub(crate) fn insert(&mut self, entry: Entry) -> (usize, u32) {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let key = self.slots.insert(Slot { gen, entry });
        (key, gen)
    }

    pub(crate) fn conn(&self, id: ConnId) -> Option<&Conn> {
        match self.slots.get(id.key()) {
            Some(Slot {
                gen,
                entry: Entry::Conn(c),
            }) if *gen == id.gen() => Some(c),
            _ => None,
        }
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        conn_in(&mut self.slots, id)
    }

    /// Borrows the slots and the buffer pool at once.
    pub(crate) fn split_pool(&mut self) -> (&mut Slab<Slot>, &mut BufPool) {
        (&mut self.slots, &mut self.pool)
    }

    pub(crate) fn stop(&mut self) {
        self.stopping = true;
    }

    /// Starts a non-blocking connect; every outcome, even an immediate failure, reaches `handler`.
    pub(crate) fn connect(&mut self, addr: SocketAddr, handler: Box<dyn Handler>) -> ConnId {
        let stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return self.failed_connect(handler, e),
        };
        // Nagle would delay small requests behind unacknowledged ones; latency wins by default.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("connect to {addr}: TCP_NODELAY not set: {e}");
        }
        let id = match self.add_conn(stream, handler, State::Connecting) {
            Ok(id) => id,
            Err((handler, e)) => return self.failed_connect(handler, e),
        };
        log::debug!("{id}: connecting to {addr}");
        id
    }

    fn failed_connect(&mut self, handler: Box<dyn Handler>, e: io::Error) -> ConnId {
        log::debug!("connect failed at once: {e}");
        let (key, gen) = self.insert(Entry::FailedConnect(handler, e));
        self.closing.push(key);
        ConnId::new(key, gen)
    }

    /// Registers `stream` and stores it in a fresh slot. It is registered once, for both
    /// directions, edge-triggered: never re-registered, and WRITABLE events are simply ignored
    /// while nothing is queued. On failure nothing is stored and the handler is handed back.
    #[allow(clippy::type_complexity)]
    pub(crate) fn add_conn(
        &mut self,
        mut stream: TcpStream,
        handler: Box<dyn Handler>,
        state: State,
    ) -> Result<ConnId, (Box<dyn Handler>, io::Error)> {
        let gen = self.next_gen;
        let vacant = self.slots.vacant_entry();
        let id = ConnId::new(vacant.key(), gen);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, id.token(), interest)
        {
            return Err((handler, e));
        }
        self.next_gen = gen.wrapping_add(1);
        vacant.insert(Slot {
            gen,
            entry: Entry::Conn(Conn::new(stream, handler, state)),
        });
        Ok(id)
    }

    /// Step 4: flush output queued from elsewhere, then release closed slots, until neither
    /// produces more work (an `on_close` may write to or close other connections).
    fn complete_deferred(&mut self) {
        loop {
            if !self.dirty.is_empty() {
                for id in std::mem::take(&mut self.dirty) {
                    self.flush(id);
                }
                continue;
            }
            match self.closing.pop() {
                Some(key) => self.release(key),
                None => break,
            }
        }
    }

    /// Frees a closed slot and tells its handler.
    fn release(&mut self, key: usize) {
        let Some(slot) = self.slots.try_remove(key) else {
            return;
        };
        let gen = slot.gen;
        let id = ConnId::new(key, gen);
        let (handler, reason) = match slot.entry {
            Entry::Conn(conn) => {
                let (handler, reason, mut input, mut out) = conn.into_parts();
                input.release(&mut self.pool);
                out.release(&mut self.pool);
                (handler, reason)
            }
            Entry::FailedConnect(handler, e) => (Some(handler), CloseReason::ConnectFailed(e)),
            Entry::Listener(l) => {
                // Listeners are closed directly; put one back if it ever lands here.
                self.slots.insert(Slot {
                    gen,
                    entry: Entry::Listener(l),
                });
                return;
            }
        };
        log::debug!("{id}: closed ({reason})");
        if let Some(mut handler) = handler {
            handler.on_close(&mut Context::new(self, id), reason);
        }
        // A descriptor was freed: listeners stopped by EMFILE can try again now.
        self.resume_paused();
    }

    /// Step 5: fires every timer due now.
    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(action) = self.timers.pop_expired(now) {
            match action {
                TimerAction::ResumeAccept(id) => self.resume_accept(id),
                TimerAction::LingerExpired(id) => self.linger_expired(id),
            }
        }
    }

    fn has_queued_work(&self) -> bool {
        !self.ready.is_empty() || !self.dirty.is_empty() || !self.closing.is_empty()
    }
}

/// A single-threaded event loop serving TCP listeners and connections.
///
/// A reactor owns one `mio::Poll` (epoll on Linux). Each socket is registered once; readiness
/// events are dispatched to the [`Handler`] of the connection they belong to. Nothing blocks:
/// one thread serves every connection.
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
    core: Core,
    events: Events,
    read_buf: Box<[u8]>,
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
            core: Core {
                poll: Poll::new()?,
                slots: Slab::new(),
                next_gen: 1,
                dirty: Vec::new(),
                closing: Vec::new(),
                ready: VecDeque::new(),
                timers: Timers::default(),
                pool: BufPool::default(),
                paused: Vec::new(),
                stopping: false,
            },
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

    /// Starts a non-blocking outbound TCP connection served by `handler`.
    ///
    /// The handler's [`on_open`](Handler::on_open) runs once the connection is really
    /// established. If it cannot be (refused, unreachable, no descriptors left), the same handler
    /// gets [`on_close`](Handler::on_close) with [`CloseReason::ConnectFailed`] and the error
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
    /// reactor.connect(([127, 0, 0, 1], port).into(), Probe);
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<H: Handler>(&mut self, addr: SocketAddr, handler: H) -> ConnId {
        self.core.connect(addr, Box::new(handler))
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
        self.core.send(id, data, false)
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

    /// Number of connections not yet released (open, connecting or closing).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::Reactor::new()?.connection_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.core
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.entry, Entry::Conn(_)))
            .count()
    }

    /// Runs iterations until [`stop`](Self::stop) (or [`Context::stop`]) is called.
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

    /// Runs one iteration (see the module docs for its order), waiting at most `timeout` for
    /// events (`None`: until an event or timer). Returns the number of readiness events handled.
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
        let core = &mut self.core;

        // 1. Timeout: no waiting while work is queued; else until the nearest timer.
        let timeout = if core.has_queued_work() {
            Some(Duration::ZERO)
        } else {
            match (core.timers.timeout(Instant::now()), timeout) {
                (Some(t), Some(cap)) => Some(t.min(cap)),
                (t, cap) => t.or(cap),
            }
        };

        // 2. Poll.
        match core.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            // A signal arrived; handle what is queued and come back.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }

        // 3. Dispatch events, then sources left on the still-ready queue by a budget. Items
        //    re-queued during this pass wait for the next iteration, after fresh events.
        let mut handled = 0;
        for event in self.events.iter() {
            handled += 1;
            let token = event.token();
            if token == WAKER {
                continue;
            }
            let ready = Ready {
                readable: event.is_readable(),
                writable: event.is_writable(),
                read_closed: event.is_read_closed() || event.is_error(),
            };
            core.dispatch(&mut self.read_buf, token, ready);
        }
        for _ in 0..core.ready.len() {
            let Some(token) = core.ready.pop_front() else {
                break;
            };
            let ready = Ready {
                readable: true,
                writable: false,
                read_closed: true,
            };
            core.dispatch(&mut self.read_buf, token, ready);
        }

        // 4. Deferred writes and closes.
        core.complete_deferred();

        // 5. Timers.
        core.fire_timers();
        core.complete_deferred();
        Ok(handled)
    }
}

impl Core {
    /// Routes one event to the source its token names, if that source still exists.
    fn dispatch(&mut self, rbuf: &mut [u8], token: Token, ready: Ready) {
        let (key, gen) = unpack(token.0 as u64);
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        if slot.gen != gen {
            return; // stale: the slot has a new owner
        }
        match slot.entry {
            Entry::Conn(_) => self.conn_ready(rbuf, ConnId::new(key, gen), ready),
            Entry::Listener(_) => self.accept(ListenerId::new(key, gen)),
            Entry::FailedConnect(..) => {}
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        let open = self.connection_count();
        if open > 0 {
            log::debug!("reactor dropped with {open} connections open; their sockets are closed");
        }
    }
}
