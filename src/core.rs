//! The reactor's state apart from the poll buffers: the slab of sources and the work queued
//! between the steps of an iteration. Handler callbacks reach it through a [`Context`].
//!
//! It is kept apart from `Events` and the shared read buffer so that dispatch can borrow those
//! while a callback borrows this.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UnixStream};
use mio::{Poll, Token};
use slab::Slab;

use crate::buf::BufPool;
use crate::conn::{conn_in, Conn, State};
use crate::context::Context;
use crate::handler::{CloseReason, Handler, PanicPolicy};
use crate::id::{unpack, ConnId, ListenerId, SourceId, UdpId};
use crate::limits::{Classes, OUTBOUND};
use crate::listener::Listener;
use crate::schedule::LoopTimer;
use crate::shutdown::ShutdownState;
use crate::source::{AnySource, Readiness};
use crate::stats::Counters;
use crate::stream::{Stream, STREAM_INTEREST, URGENT_INLINE};
use crate::timer::Timers;
use crate::udp::UdpSocketEntry;

/// Everything a slot can hold. The token space is shared, so each kind of source is a variant
/// here, not a token range.
pub(crate) enum Entry {
    // Rare, large kinds are boxed so that a slot is only as big as a connection.
    Listener(Box<Listener>),
    Conn(Conn),
    /// An outbound connect that failed before a socket could be registered; its handler hears
    /// about it (`on_close` with `ConnectFailed`) when the iteration's closes are completed.
    FailedConnect(Box<dyn Handler>, io::Error),
    Udp(Box<UdpSocketEntry>),
    /// A foreign source; `None` while its callback runs.
    Source(Option<Box<dyn AnySource>>),
}

pub(crate) struct Slot {
    pub(crate) gen: u32,
    /// On the still-ready queue (`Core::ready`): set by `mark_ready`, cleared when the queue
    /// entry is served, so that a source is never on the queue twice.
    pub(crate) queued: bool,
    pub(crate) entry: Entry,
}

impl Slot {
    pub(crate) fn new(gen: u32, entry: Entry) -> Slot {
        Slot {
            gen,
            queued: false,
            entry,
        }
    }
}

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    /// Retry accepting on a listener paused by an accept error (e.g. EMFILE).
    ResumeAccept(ListenerId),
    /// A closing connection made no progress for a while; give up on it.
    LingerExpired(ConnId),
    /// A handler's own timer (`Context::set_timer`).
    Conn(ConnId),
    /// Check a connection's idle time (re-armed lazily, not per read).
    IdleCheck(ConnId),
    /// A loop-level timer; the key and generation name its entry in `Core::loop_timers`.
    Loop(usize, u32),
    /// The graceful-shutdown deadline passed.
    ShutdownDeadline,
    /// A connection's first-bytes deadline (`ListenOptions::first_bytes_timeout`).
    FirstBytes(ConnId),
}

pub(crate) struct Core {
    pub(crate) poll: Poll,
    pub(crate) slots: Slab<Slot>,
    next_gen: u32,
    /// Connections with output or a state change queued from outside their own callback.
    pub(crate) dirty: Vec<ConnId>,
    /// The dirty list's previous allocation, swapped back in by `flush_dirty` so that marking
    /// connections dirty does not allocate on every iteration.
    dirty_spare: Vec<ConnId>,
    /// Dirty connections step 3 lets accumulate before flushing them (`set_flush_batch`).
    pub(crate) flush_batch: usize,
    /// Polls of at most this many events write each connection's own replies through (0 once
    /// `set_flush_batch` fixed the batch).
    pub(crate) write_through_poll: usize,
    /// Connections whose own callback queued replies during this pass of step 3, taken off the
    /// dirty list to leave in bursts of `flush_batch` (`src/flush_policy.rs`).
    pub(crate) replies: Vec<ConnId>,
    /// Keys of slots to release in step 4.
    pub(crate) closing: Vec<usize>,
    /// The still-ready queue: sources whose turn ended with work left (a budget, the output
    /// watermark, a resumed read), served after the next iteration's fresh events. With
    /// edge-triggered readiness no new event would come for that work. A source is on it at
    /// most once (`Slot::queued`); only `mark_ready` adds to it.
    ready: Vec<Token>,
    /// The queue's previous allocation, swapped back in by `take_ready`.
    ready_spare: Vec<Token>,
    /// Foreign sources with readiness to report; their callbacks need the whole reactor, so
    /// they run after the event loop of step 3.
    pub(crate) source_events: Vec<(SourceId, crate::source::Readiness)>,
    pub(crate) timers: Timers<TimerAction>,
    pub(crate) loop_timers: Slab<LoopTimer>,
    pub(crate) pool: BufPool,
    /// Poll without sleeping for this long after the last event (zero: off).
    pub(crate) busy_poll: Duration,
    /// When the last poll returned events (kept only while busy polling is on).
    pub(crate) last_event: Instant,
    /// Connections marked not writable by another connection's write, whose handlers are
    /// told in step 4 (`src/flow.rs`).
    pub(crate) unwritable_owed: Vec<ConnId>,
    /// Reused by `write!` on a `Context` to format a whole reply before queueing it.
    pub(crate) fmt_scratch: Vec<u8>,
    /// Limits and connection counts per listener (`src/limits.rs`).
    pub(crate) classes: Classes,
    /// Most open connections (accepted and outbound) before listeners stop accepting.
    pub(crate) max_connections: u64,
    /// Listeners waiting for file descriptors (or memory) to accept again.
    pub(crate) paused: Vec<ListenerId>,
    pub(crate) stopping: bool,
    /// What a handler panic does (close its connection, unwind, or abort).
    pub(crate) panic_policy: PanicPolicy,
    pub(crate) shutdown: Option<ShutdownState>,
    /// Coarse loop time, read once per iteration: activity stamps cost a store, not a clock call.
    epoch: Instant,
    pub(crate) now_ms: u64,
    pub(crate) counters: Counters,
}

/// The `NotFound` error for an id whose connection, listener or socket no longer exists.
pub(crate) fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        "no such connection or socket (already closed?)",
    )
}

impl Core {
    pub(crate) fn new() -> io::Result<Core> {
        Ok(Core {
            poll: Poll::new()?,
            slots: Slab::new(),
            next_gen: 1,
            dirty: Vec::new(),
            dirty_spare: Vec::new(),
            flush_batch: crate::flush_policy::FLUSH_BATCH,
            write_through_poll: crate::flush_policy::WRITE_THROUGH_POLL,
            replies: Vec::new(),
            closing: Vec::new(),
            ready: Vec::new(),
            ready_spare: Vec::new(),
            source_events: Vec::new(),
            timers: Timers::default(),
            loop_timers: Slab::new(),
            pool: BufPool::default(),
            busy_poll: Duration::ZERO,
            last_event: Instant::now(),
            unwritable_owed: Vec::new(),
            fmt_scratch: Vec::new(),
            classes: Classes::new(),
            max_connections: u64::MAX,
            paused: Vec::new(),
            stopping: false,
            panic_policy: PanicPolicy::CloseConnection,
            shutdown: None,
            epoch: Instant::now(),
            now_ms: 0,
            counters: Counters::default(),
        })
    }

    /// Takes a fresh generation number for a new slot or loop timer.
    pub(crate) fn take_gen(&mut self) -> u32 {
        let gen = self.next_gen;
        self.next_gen = gen.wrapping_add(1);
        gen
    }

    /// Stores `entry` in a fresh slot and returns its key and generation.
    pub(crate) fn insert(&mut self, entry: Entry) -> (usize, u32) {
        let gen = self.take_gen();
        let key = self.slots.insert(Slot::new(gen, entry));
        (key, gen)
    }

    /// Refreshes the coarse loop clock; called once per iteration, right after polling.
    pub(crate) fn tick(&mut self) {
        self.now_ms = self.epoch.elapsed().as_millis() as u64;
    }

    /// The instant that a coarse timestamp stands for.
    pub(crate) fn instant_of(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    pub(crate) fn conn(&self, id: ConnId) -> Option<&Conn> {
        match self.slots.get(id.key()) {
            Some(Slot {
                gen,
                entry: Entry::Conn(c),
                ..
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

    /// Starts a non-blocking TCP connect with default limits; see `connect_class`.
    pub(crate) fn connect(
        &mut self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        handler: Box<dyn Handler>,
    ) -> ConnId {
        self.connect_class(addr, local, handler, OUTBOUND)
    }

    /// Starts a non-blocking TCP connect held to `options`' limits.
    pub(crate) fn connect_with(
        &mut self,
        addr: SocketAddr,
        options: &crate::ConnectOptions,
        handler: Box<dyn Handler>,
    ) -> ConnId {
        match self.classes.outbound(options.limits) {
            Ok(class) => self.connect_class(addr, None, handler, class),
            Err(e) => self.failed_connect(handler, e),
        }
    }

    /// Starts a non-blocking TCP connect, from `local` if given; every outcome, even an
    /// immediate failure, reaches `handler`.
    fn connect_class(
        &mut self,
        addr: SocketAddr,
        local: Option<SocketAddr>,
        handler: Box<dyn Handler>,
        class: u16,
    ) -> ConnId {
        let stream = match local {
            None => TcpStream::connect(addr),
            Some(local) => connect_from(local, addr),
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // No connection will hold the class: free it now if it was made for this one.
                self.classes.retire(class);
                return self.failed_connect(handler, e);
            }
        };
        // Nagle would delay small requests behind unacknowledged ones; latency wins by default.
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("connect to {addr}: TCP_NODELAY not set: {e}");
        }
        if let Err(e) = socket2::SockRef::from(&stream).set_out_of_band_inline(URGENT_INLINE) {
            log::debug!("connect to {addr}: SO_OOBINLINE not set: {e}");
        }
        let id = match self.add_conn(Stream::Tcp(stream), handler, State::Connecting, class) {
            Ok(id) => id,
            Err((handler, e)) => {
                self.classes.retire(class);
                return self.failed_connect(handler, e);
            }
        };
        log::debug!("{id}: connecting to {addr}");
        id
    }

    /// Starts a Unix domain stream connect; outcomes reach `handler` as for TCP.
    pub(crate) fn connect_unix(&mut self, path: &Path, handler: Box<dyn Handler>) -> ConnId {
        let stream = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e) => return self.failed_connect(handler, e),
        };
        let id = match self.add_conn(Stream::Unix(stream), handler, State::Connecting, OUTBOUND) {
            Ok(id) => id,
            Err((handler, e)) => return self.failed_connect(handler, e),
        };
        log::debug!("{id}: connecting to {}", path.display());
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
        mut stream: Stream,
        handler: Box<dyn Handler>,
        state: State,
        class: u16,
    ) -> Result<ConnId, (Box<dyn Handler>, io::Error)> {
        let gen = self.next_gen;
        let vacant = self.slots.vacant_entry();
        let id = ConnId::new(vacant.key(), gen);
        if let Err(e) = stream.register(self.poll.registry(), id.token(), STREAM_INTEREST) {
            return Err((handler, e));
        }
        self.next_gen = gen.wrapping_add(1);
        let conn = Conn::new(stream, handler, state, self.now_ms, class);
        vacant.insert(Slot::new(gen, Entry::Conn(conn)));
        self.counters.open += 1;
        self.classes.opened(class);
        Ok(id)
    }

    /// Step 4: flush output queued from elsewhere, then release closed slots, until neither
    /// produces more work (an `on_close` may write to or close other connections).
    pub(crate) fn complete_deferred(&mut self) {
        loop {
            if !self.unwritable_owed.is_empty() {
                self.notify_unwritable();
                continue;
            }
            if !self.replies.is_empty() {
                self.flush_replies();
                continue;
            }
            if !self.dirty.is_empty() {
                self.flush_dirty();
                continue;
            }
            match self.closing.pop() {
                Some(key) => self.release(key),
                None => break,
            }
        }
    }

    /// Flushes the connections on the dirty list. Connections a flush marks dirty (from its
    /// callbacks) stay on the list for the caller's next pass.
    pub(crate) fn flush_dirty(&mut self) {
        let spare = std::mem::take(&mut self.dirty_spare);
        let mut batch = std::mem::replace(&mut self.dirty, spare);
        for &id in &batch {
            self.flush(id);
        }
        batch.clear();
        self.dirty_spare = batch;
    }

    /// Frees a closed connection's slot and tells its handler.
    fn release(&mut self, key: usize) {
        match self.slots.get(key) {
            Some(Slot {
                entry: Entry::Conn(_) | Entry::FailedConnect(..),
                ..
            }) => {}
            _ => return,
        }
        let slot = self.slots.remove(key);
        let id = ConnId::new(key, slot.gen);
        let (handler, reason) = match slot.entry {
            Entry::Conn(conn) => {
                self.counters.open -= 1;
                self.classes.closed(conn.class());
                let (handler, reason, mut bufs) = conn.into_parts();
                bufs.release(&mut self.pool);
                (handler, reason)
            }
            Entry::FailedConnect(handler, e) => (Some(handler), CloseReason::ConnectFailed(e)),
            _ => return,
        };
        self.counters.count_close(&reason);
        log::debug!("{id}: closed ({reason})");
        if let Some(mut handler) = handler {
            let mut cx = Context::new(self, id);
            // A panic here cannot close anything more; it is logged and the loop goes on.
            let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler.on_close(&mut cx, reason)
            }));
            if let Err(payload) = closed {
                let message = crate::handler::on_panic(self.panic_policy, id, payload);
                log::error!("{id}: handler panicked in on_close: {message}");
            }
        }
        // A descriptor was freed: listeners stopped by EMFILE can try again now.
        self.resume_paused();
    }

    /// (key, generation) of every slot whose entry satisfies `kind` (for whole-reactor sweeps
    /// such as shutdown; collected so the caller can mutate while walking them).
    pub(crate) fn slots_where(&self, kind: fn(&Entry) -> bool) -> Vec<(usize, u32)> {
        self.slots
            .iter()
            .filter(|(_, s)| kind(&s.entry))
            .map(|(key, s)| (key, s.gen))
            .collect()
    }

    pub(crate) fn has_queued_work(&self) -> bool {
        !self.ready.is_empty()
            || !self.dirty.is_empty()
            || !self.replies.is_empty()
            || !self.closing.is_empty()
    }

    /// Puts the source `token` names on the still-ready queue, unless it is already there or
    /// gone. Its next turn comes after the next iteration's fresh events.
    pub(crate) fn mark_ready(&mut self, token: Token) {
        let (key, gen) = unpack(token.0 as u64);
        if let Some(slot) = self.slots.get_mut(key) {
            if slot.gen == gen && !slot.queued {
                slot.queued = true;
                self.ready.push(token);
                self.counters.stats.still_ready += 1;
            }
        }
    }

    /// Takes the still-ready queue for this iteration's retry pass; what is queued from now on
    /// waits for the next iteration. Hand the list back with `return_ready`.
    pub(crate) fn take_ready(&mut self) -> Vec<Token> {
        let spare = std::mem::take(&mut self.ready_spare);
        std::mem::replace(&mut self.ready, spare)
    }

    /// Keeps the allocation of a list from `take_ready` for the next iteration.
    pub(crate) fn return_ready(&mut self, mut served: Vec<Token>) {
        served.clear();
        self.ready_spare = served;
    }

    /// Routes one readiness event to the source its token names, if that source still exists.
    /// A source on the still-ready queue gets only the writable part of the event now: its
    /// reads (accepts, receives) wait for its turn in the retry pass, so that it is served once.
    pub(crate) fn dispatch(&mut self, rbuf: &mut [u8], token: Token, ready: Readiness) {
        let (key, gen) = unpack(token.0 as u64);
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        if slot.gen != gen {
            return; // stale: the slot has a new owner
        }
        let queued = slot.queued;
        match slot.entry {
            Entry::Conn(_) => self.conn_event(rbuf, ConnId::new(key, gen), ready, queued),
            Entry::Listener(_) if !queued => self.accept(ListenerId::new(key, gen)),
            Entry::Listener(_) => {}
            Entry::Udp(_) => self.udp_ready(rbuf, UdpId::new(key, gen), ready, !queued),
            Entry::Source(_) => self.source_events.push((SourceId::new(key, gen), ready)),
            Entry::FailedConnect(..) => {}
        }
    }

    /// Serves one entry of the still-ready queue: its turn, with reads that go on to
    /// `WouldBlock`, since a short read proves nothing about what a budget left behind.
    pub(crate) fn retry(&mut self, rbuf: &mut [u8], token: Token) {
        let (key, gen) = unpack(token.0 as u64);
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        if slot.gen != gen {
            return; // stale: the slot has a new owner, whose flag is its own
        }
        slot.queued = false;
        match slot.entry {
            Entry::Conn(_) => self.conn_retry(rbuf, ConnId::new(key, gen)),
            Entry::Listener(_) => self.accept(ListenerId::new(key, gen)),
            Entry::Udp(_) => self.udp_receive(rbuf, UdpId::new(key, gen)),
            Entry::Source(_) | Entry::FailedConnect(..) => {}
        }
    }
}

/// A non-blocking connect from a chosen local address.
///
/// Binding port 0 reserves a port from the ephemeral range for `local`'s address before the
/// destination is known, so each source address gives at most one port range of connections
/// (about 28,000 on Linux by default), whatever the destinations.
fn connect_from(local: SocketAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    socket.bind(&SockAddr::from(local))?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        // The normal outcome of a non-blocking connect: completion is reported by readiness.
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Linux's errno for "connect in progress", named to avoid a libc dependency for one constant.
const EINPROGRESS: i32 = 115;

#[cfg(test)]
mod tests {
    /// Every connection costs one slot, and the slab over-allocates by up to 2x as it grows, so
    /// the slot size is most of the user-space memory per idle connection (target: 256 bytes).
    /// Debug builds are larger (mio keeps a selector id per socket for its own checks).
    #[test]
    #[cfg(not(debug_assertions))]
    fn a_slot_stays_within_one_cache_line() {
        assert!(
            std::mem::size_of::<super::Slot>() <= 64,
            "Slot is {} bytes",
            std::mem::size_of::<super::Slot>()
        );
    }

    /// A connect with its own limits gets a class made for it; when the connect fails at once
    /// (TCP to a multicast address is refused by Linux before any packet), nothing else will
    /// ever free that class, so the failure must.
    #[test]
    fn the_class_of_a_connect_that_failed_at_once_is_freed() {
        struct Quiet;
        impl crate::Handler for Quiet {
            fn on_data(&mut self, _cx: &mut crate::Context<'_>, input: &mut crate::Input<'_>) {
                input.consume(input.len());
            }
        }
        let mut reactor = crate::Reactor::new().unwrap();
        let before = reactor.core.classes.len();
        let options = crate::ConnectOptions::new().max_input(1234);
        let addr = ([224, 0, 0, 1], 80).into();
        for _ in 0..3 {
            reactor.connect_with(addr, options.clone(), Quiet);
        }
        reactor.run_once(Some(std::time::Duration::ZERO)).unwrap();
        assert_eq!(reactor.connection_count(), 0);
        assert_eq!(
            reactor.core.classes.len(),
            before,
            "a class outlived its connect"
        );
    }
}
