//! The user's per-connection state machine (`Handler`) and what a panic in it does. The
//! [`Context`] its callbacks get is in `src/context/`; the reasons a connection can close are in
//! `src/close_reason.rs`.

use crate::close_reason::CloseReason;
use crate::context::Context;
use crate::input::Input;
use crate::timers::TimerId;

/// The protocol side of one connection: it sees bytes, drained output and closes, never sockets.
///
/// The reactor owns the socket and its buffers and calls these methods from its single thread.
/// Only [`on_data`](Self::on_data) must be written; every other method has a default.
///
/// Writes made through the [`Context`] are queued and flushed together before the reactor next
/// waits for events: one `write` system call per connection per loop iteration when the socket
/// takes them all. Replies to `on_data` leave after the whole batch of events was dispatched, so
/// a peer receives them together (see [`Reactor::run_once`](crate::Reactor::run_once), step 4).
///
/// # Examples
///
/// An echo handler, served on an ephemeral port:
///
/// ```
/// use sockloop::{Context, Handler, Input, Reactor};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         cx.write(input.take_all());
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (_id, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
/// assert_ne!(addr.port(), 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler: 'static {
    /// The connection is established: accepted by a listener, or an outbound connect completed.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// struct Banner;
    /// impl Handler for Banner {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"220 ready\r\n");
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    /// }
    /// ```
    fn on_open(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// Bytes arrived. Consume what can be parsed from `input`; the rest is kept and offered again,
    /// followed by newer bytes, on the next call. A handler may also stop short on purpose (to
    /// bound its work or its output) and pause its reading: when reading resumes, what it kept is
    /// offered again even if no new byte arrived.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Answers each complete line with its length; a partial line waits for more bytes.
    /// struct LineLength;
    /// impl Handler for LineLength {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         while let Some(end) = input.iter().position(|&b| b == b'\n') {
    ///             let line = input.take_prefix(end + 1);
    ///             cx.write(format!("{}\n", line.len() - 1).as_bytes());
    ///         }
    ///     }
    /// }
    /// ```
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>);

    /// Output that had to wait for the socket (the kernel's send buffer was full) has now all been
    /// written. Not called when writes go out at once. Proxies use it to resume reading the other
    /// side.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Streams a large reply in chunks, producing the next chunk only once the last one left.
    /// struct Streamer { left: usize }
    /// impl Handler for Streamer {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         self.on_drained(cx);
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_drained(&mut self, cx: &mut Context<'_>) {
    ///         while self.left > 0 && cx.queued() < 64 * 1024 {
    ///             let n = self.left.min(16 * 1024);
    ///             cx.write(&vec![b'x'; n]);
    ///             self.left -= n;
    ///         }
    ///     }
    /// }
    /// ```
    fn on_drained(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }

    /// The output queue crossed a watermark
    /// ([`ListenOptions::output_watermarks`](crate::ListenOptions::output_watermarks)):
    /// `false` when more than the high mark is queued (the peer reads slower than it is sent
    /// to; the reactor has stopped reading this connection), `true` when the queue is back down
    /// to the low mark (reading has resumed). A handler that produces output on its own (a
    /// broadcast, a proxy's other side) should hold it back while not writable; one that goes
    /// on writing is reset at [`max_output`](crate::ListenOptions::max_output).
    ///
    /// The calls alternate, starting with `false`. Once
    /// [`is_writable_conn`](crate::Context::is_writable_conn) has said false, the handler
    /// hears `false` and later `true`, even if the queue drained before the end of that
    /// iteration, so another connection may pause itself on that answer and wait for `true`.
    ///
    /// The default does nothing: pausing the reads is enough for request/response protocols.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Produces a stream of ticks, but only while the peer keeps up.
    /// struct Ticker { paused: bool }
    /// impl Handler for Ticker {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_timer(std::time::Duration::from_millis(10));
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: sockloop::TimerId) {
    ///         if !self.paused {
    ///             cx.write(b"tick\n");
    ///         }
    ///         cx.set_timer(std::time::Duration::from_millis(10));
    ///     }
    ///     fn on_writability(&mut self, _cx: &mut Context<'_>, writable: bool) {
    ///         self.paused = !writable;
    ///     }
    /// }
    /// ```
    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        let _ = (cx, writable);
    }

    /// The peer shut down its write side (we read EOF). The connection can still send.
    /// Not called when this side's FIN went out first ([`Context::shutdown_write`] completed):
    /// then both directions are done, and the peer's FIN closes the connection with
    /// [`CloseReason::PeerClosed`].
    ///
    /// The default finishes writing queued output and then closes, which is right for
    /// request/response protocols such as echo.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Counts bytes until the peer finishes sending, answers with the total, then closes.
    /// struct Counter { n: usize }
    /// impl Handler for Counter {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         self.n += input.take_all().len();
    ///     }
    ///     fn on_read_closed(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(format!("{} bytes\n", self.n).as_bytes());
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn on_read_closed(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// A timer set with [`Context::set_timer`] fired. Never called after the connection closed.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sockloop::{Context, Handler, Input, TimerId};
    ///
    /// /// Sends a heartbeat every second.
    /// struct Heartbeat;
    /// impl Handler for Heartbeat {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         cx.set_timer(Duration::from_secs(1));
    ///     }
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
    ///         cx.write(b"tick\n");
    ///         cx.set_timer(Duration::from_secs(1));
    ///     }
    /// }
    /// ```
    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        let _ = (cx, timer);
    }

    /// The reactor is shutting down gracefully ([`Reactor::shutdown`](crate::Reactor::shutdown)):
    /// finish what is in progress and close. Connections still open at the shutdown deadline
    /// are closed with [`CloseReason::ShutdownDeadline`].
    ///
    /// The default closes gracefully at once (queued output is sent first).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input};
    ///
    /// /// Says goodbye before closing.
    /// struct Polite;
    /// impl Handler for Polite {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         cx.write(input.take_all());
    ///     }
    ///     fn on_shutdown(&mut self, cx: &mut Context<'_>) {
    ///         cx.write(b"server going down, bye\n");
    ///         cx.close();
    ///     }
    /// }
    /// ```
    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }

    /// The connection is closed and its socket released; `reason` says why. Called exactly once
    /// for every connection, including an outbound connect that failed (with
    /// [`CloseReason::ConnectFailed`]). The context can still reach other connections.
    ///
    /// The default does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{CloseReason, Context, Handler, Input};
    ///
    /// struct Logged;
    /// impl Handler for Logged {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
    ///         if reason.is_error() {
    ///             eprintln!("{} ended badly: {reason}", cx.id());
    ///         }
    ///     }
    /// }
    /// ```
    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let _ = (cx, reason);
    }
}

/// What a panic in a handler callback does; see
/// [`Reactor::set_panic_policy`](crate::Reactor::set_panic_policy).
///
/// # Examples
///
/// ```
/// use sockloop::{PanicPolicy, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// reactor.set_panic_policy(PanicPolicy::Abort); // a handler bug ends the process at once
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Reset that connection only, with [`CloseReason::Panicked`] (logged at error with its
    /// id); the reactor goes on serving the others. The default.
    #[default]
    CloseConnection,
    /// Let the panic unwind out of [`Reactor::run`](crate::Reactor::run) (or `run_once`), for
    /// a program that handles it itself.
    Unwind,
    /// Log the panic at error and abort the process: for deployments where a bug must never
    /// be served past, and a supervisor restarts the process.
    Abort,
}
