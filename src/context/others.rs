//! What a callback can do to other connections than its own: write to them, close them, hold
//! their reading, and look at their output queues. Kept apart from `src/context.rs`, which is
//! about the callback's own connection.

use std::io;

use crate::conn::CloseMode;
use crate::context::Context;
use crate::engine::{gone, Writer};
use crate::id::ConnId;

impl Context<'_> {
    /// Queues `data` for another connection (or this one); it is flushed before the reactor next
    /// waits for events.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// A broadcast room: whatever one member sends, every other member receives.
    /// struct Member { room: Rc<RefCell<Vec<ConnId>>> }
    /// impl Handler for Member {
    ///     fn on_open(&mut self, cx: &mut Context<'_>) {
    ///         self.room.borrow_mut().push(cx.id());
    ///     }
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let (me, msg) = (cx.id(), input.take_all());
    ///         for &other in self.room.borrow().iter().filter(|&&m| m != me) {
    ///             let _ = cx.write_to(other, msg); // a member that just left is simply skipped
    ///         }
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, _reason: sockloop::CloseReason) {
    ///         self.room.borrow_mut().retain(|&m| m != cx.id());
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown, [`io::ErrorKind::BrokenPipe`] if
    /// its write side is already shut down.
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> io::Result<()> {
        let writer = if id == self.id {
            Writer::Own
        } else {
            Writer::Other
        };
        self.core.send(id, data, writer)
    }

    /// Closes another connection gracefully (see [`close`](Self::close)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// One side of a pair: closing either end closes the other gracefully.
    /// struct Paired { other: Option<ConnId> }
    /// impl Handler for Paired {
    ///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///     }
    ///     fn on_close(&mut self, cx: &mut Context<'_>, _reason: sockloop::CloseReason) {
    ///         if let Some(other) = self.other {
    ///             let _ = cx.close_conn(other); // NotFound if it is already gone
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn close_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Graceful)
    }

    /// Aborts another connection (see [`abort`](Self::abort)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// An admin connection: the line "kill <n>" aborts the connection whose id prints as given.
    /// struct Admin { known: Vec<ConnId> }
    /// impl Handler for Admin {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let text = String::from_utf8_lossy(input.take_all()).into_owned();
    ///         if let Some(name) = text.trim().strip_prefix("kill ") {
    ///             for id in self.known.iter().filter(|id| id.to_string() == name) {
    ///                 let _ = cx.abort_conn(*id);
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn abort_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.close(id, CloseMode::Abort)
    }

    /// Half-closes another connection: sends its FIN once its queued output is written (see
    /// [`shutdown_write`](Self::shutdown_write)). A proxy uses it to pass one side's FIN on to
    /// the other.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// One half of a proxy: what it reads goes to `other`, and so does its peer's FIN.
    /// struct Half { other: ConnId }
    /// impl Handler for Half {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let _ = cx.write_to(self.other, input.take_all());
    ///     }
    ///     fn on_read_closed(&mut self, cx: &mut Context<'_>) {
    ///         let _ = cx.shutdown_write_conn(self.other);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn shutdown_write_conn(&mut self, id: ConnId) -> io::Result<()> {
        self.core.shutdown_write(id)
    }

    /// Bytes queued for another connection `id` (see [`queued`](Self::queued)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// Forwards lines to a subscriber, dropping them while it lags more than 64 KiB behind.
    /// struct Publisher { subscriber: ConnId }
    /// impl Handler for Publisher {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let line = input.take_all();
    ///         if cx.queued_conn(self.subscriber).is_ok_and(|q| q < 64 << 10) {
    ///             let _ = cx.write_to(self.subscriber, line);
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn queued_conn(&self, id: ConnId) -> io::Result<usize> {
        Ok(self.core.slots.conn(id).ok_or_else(gone)?.queued())
    }

    /// Whether another connection `id` is below its high watermark (see
    /// [`is_writable`](Self::is_writable)): a broadcast can skip, or drop politely, a member
    /// that lags before the output cap resets it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// Sends each line to every member that keeps up.
    /// struct Member { room: Vec<ConnId> }
    /// impl Handler for Member {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let line = input.take_all();
    ///         for &m in &self.room {
    ///             if cx.is_writable_conn(m).unwrap_or(false) {
    ///                 let _ = cx.write_to(m, line);
    ///             }
    ///         }
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed or unknown.
    pub fn is_writable_conn(&self, id: ConnId) -> io::Result<bool> {
        Ok(self.core.slots.conn(id).ok_or_else(gone)?.is_writable())
    }

    /// Stops reading connection `id` (this one or another) until
    /// [`resume_reading`](Self::resume_reading): its input waits in the kernel, and TCP flow
    /// control slows its sender. This is how a proxy keeps one side from outrunning the other:
    /// when the side it writes to is not writable (right after a `write_to`, by
    /// [`is_writable_conn`](Self::is_writable_conn); later, by that side's
    /// [`on_writability(false)`](crate::Handler::on_writability)), it pauses the side it reads
    /// from. Independent of the watermark pause; a connection reads
    /// only when neither holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{ConnId, Context, Handler, Input};
    ///
    /// /// The upstream half of a proxy: forwards what it reads to `client`, and holds the
    /// /// client's reading while upstream is not keeping up with what the client sends.
    /// struct Upstream { client: ConnId }
    /// impl Handler for Upstream {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         let _ = cx.write_to(self.client, input.take_all());
    ///     }
    ///     fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
    ///         let _ = if writable {
    ///             cx.resume_reading(self.client)
    ///         } else {
    ///             cx.pause_reading(self.client)
    ///         };
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed.
    pub fn pause_reading(&mut self, id: ConnId) -> io::Result<()> {
        self.core.set_reading(id, false)
    }

    /// Resumes reading connection `id` after [`pause_reading`](Self::pause_reading); input
    /// that arrived meanwhile is read on the next loop iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockloop::{Context, Handler, Input, TimerId};
    /// use std::time::Duration;
    ///
    /// /// Reads in bursts: pauses itself after each chunk and resumes 10 ms later.
    /// struct Throttled;
    /// impl Handler for Throttled {
    ///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
    ///         input.consume(input.len());
    ///         let me = cx.id();
    ///         let _ = cx.pause_reading(me);
    ///         cx.set_timer(Duration::from_millis(10));
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_>, _timer: TimerId) {
    ///         let me = cx.id();
    ///         let _ = cx.resume_reading(me);
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::NotFound`] if `id` is closed.
    pub fn resume_reading(&mut self, id: ConnId) -> io::Result<()> {
        self.core.set_reading(id, true)
    }
}
