//! Reactor-wide settings (panic policy, connection limit, busy polling, flush batch), the
//! counters, and the graceful shutdown.

use std::time::Duration;

use crate::reactor::Reactor;
use crate::stats::Stats;

impl Reactor {
    /// Number of connections not yet released (open, connecting or closing).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(sockloop::Reactor::new()?.connection_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.core.counters.open as usize
    }

    /// A snapshot of the reactor's counters (connections, closes by reason, bytes, accept
    /// errors, timers, iterations, events, datagrams).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = sockloop::Reactor::new()?;
    /// let stats = reactor.stats();
    /// assert_eq!((stats.accepted, stats.bytes_read), (0, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.counters.snapshot()
    }

    /// Chooses what a panic in a connection's handler does. The default,
    /// [`PanicPolicy::CloseConnection`](crate::PanicPolicy::CloseConnection), resets that connection only, with
    /// [`CloseReason::Panicked`](crate::CloseReason::Panicked), logged at error with its id, and
    /// the reactor goes on serving the others; [`PanicPolicy::Unwind`](crate::PanicPolicy::Unwind) lets the panic unwind
    /// out of [`run`](Self::run); [`PanicPolicy::Abort`](crate::PanicPolicy::Abort) aborts the process.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{PanicPolicy, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// reactor.set_panic_policy(PanicPolicy::Unwind); // the embedding program decides
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_panic_policy(&mut self, policy: crate::PanicPolicy) {
        self.core.calls.panic_policy = policy;
    }

    /// Keeps polling without sleeping for `window` after the last event (default zero: off).
    ///
    /// A reactor that needs less CPU than its clients runs out of work between their requests
    /// and sleeps in `epoll_wait`; waking it costs a context switch and, on a virtual machine, a
    /// halted CPU's wake-up (tens of µs), which lands in every round trip. Busy polling trades
    /// CPU for that latency: within the window the loop spins on `epoll_wait` with timeout zero
    /// and is awake when the next request arrives. At light load each request costs up to
    /// `window` of spinning, so keep it short (10-50 µs) and use it only where round-trip time
    /// matters more than idle CPU. (Linux's `SO_BUSY_POLL` does the same inside the kernel.)
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut reactor = sockloop::Reactor::new()?;
    /// reactor.set_busy_poll(Duration::from_micros(20));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_busy_poll(&mut self, window: Duration) {
        self.core.clock.busy_poll = window;
        self.core.clock.last_event = std::time::Instant::now();
    }

    /// Stops every listener from accepting while `max` connections (accepted and outbound)
    /// are open; they accept again as connections close. Clients wait in the backlog meanwhile,
    /// or get their listener's [`overload_reply`](crate::ListenOptions::overload_reply) if it
    /// has one. Per-listener limits are
    /// [`ListenOptions::max_connections`](crate::ListenOptions::max_connections). Default: no
    /// limit but the process's open-files limit (which pauses accepting the same way).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut reactor = sockloop::Reactor::new()?;
    /// reactor.set_max_connections(Some(50_000));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_max_connections(&mut self, max: Option<usize>) {
        self.core.admission.max_connections = max.map_or(u64::MAX, |m| m as u64);
        // A raised limit makes room just as a close does.
        self.core.resume_paused();
    }

    /// Fixes how many connections may have replies queued during the dispatch of one batch of
    /// events before those are written out (at least 1). The rest wait for the end of the
    /// batch, so replies leave in bursts of up to `n`.
    ///
    /// By default the reactor adapts: after a poll of up to 64 events it writes a connection's
    /// own replies as soon as its callback returns, so that peers waiting on it get going
    /// sooner; other output (and all output after a larger poll) leaves in bursts of 32
    /// connections (see `WRITE_THROUGH_POLL` and `FLUSH_BATCH` in `src/flush_policy.rs`).
    /// Setting a batch replaces both with `n`.
    ///
    /// Larger bursts make the peer wake less often. But on Linux a reader that goes through
    /// more than 32 of a peer's messages without answering makes the kernel interrupt the
    /// peer's CPU to free them. `1` writes every reply as soon as its callback returns;
    /// `usize::MAX` holds them all until the batch is done, which suits a load generator that
    /// wants its requests to arrive in the largest bursts. Netty's `FlushConsolidationHandler`
    /// makes the same trade.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut reactor = sockloop::Reactor::new()?;
    /// reactor.set_flush_batch(usize::MAX); // flush only at the end of each batch
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_flush_batch(&mut self, n: usize) {
        self.core.flush.fix_batch(n);
    }

    /// Shuts down gracefully within `grace`: listeners close at once (after accepting the
    /// connections the kernel already queued for them, which closing would reset), each connection's handler
    /// is asked to finish ([`Handler::on_shutdown`](crate::Handler::on_shutdown), by default a
    /// graceful close that sends all queued output first), and [`run`](Self::run) returns once
    /// every connection and UDP socket is closed. Connections still open after `grace` are
    /// aborted with [`CloseReason::ShutdownDeadline`](crate::CloseReason::ShutdownDeadline). Calling it again can only shorten the
    /// deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
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
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// let _client = std::net::TcpStream::connect(addr)?;
    /// reactor.run_once(Some(Duration::from_secs(1)))?; // accept it
    /// reactor.shutdown(Duration::from_secs(5));
    /// reactor.run()?; // the server closes the connection gracefully, then run returns
    /// assert_eq!(reactor.connection_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(&mut self, grace: Duration) {
        self.start_shutdown(grace);
    }

    /// Whether a graceful shutdown is under way.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{Context, Handler, Input, Reactor};
    ///
    /// struct Sink;
    /// impl Handler for Sink {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Sink)?;
    /// let _client = std::net::TcpStream::connect(addr)?;
    /// reactor.run_once(Some(Duration::from_secs(1)))?; // accept it
    /// assert!(!reactor.is_shutting_down());
    /// reactor.shutdown(Duration::from_secs(1));
    /// assert!(reactor.is_shutting_down()); // until that connection has closed
    ///
    /// let mut idle = Reactor::new()?;
    /// idle.shutdown(Duration::from_secs(1));
    /// assert!(!idle.is_shutting_down()); // nothing was open: already complete
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutdown.is_some()
    }
}
