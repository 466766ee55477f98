//! The one place handler code is called from: connection callbacks, `on_close`, and UDP
//! datagram handlers all pass through `guarded`, which applies the reactor's
//! [`PanicPolicy`](crate::PanicPolicy). Loop timers, posted jobs and foreign sources' callbacks
//! take the whole reactor and belong to the embedding program; a panic in them unwinds out of
//! `run`.
//!
//! It also records what the callbacks of one connection event listed for flushing, so that the
//! event can say what it produced ([`EventOutcome`]) instead of the caller inferring it.

use std::any::Any;
use std::fmt::Display;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};

use super::Core;
use crate::close_reason::CloseReason;
use crate::conn::CloseMode;
use crate::context::Context;
use crate::handler::{Handler, PanicPolicy};
use crate::id::{ConnId, UdpId};
use crate::udp::{DatagramHandler, UdpContext, UdpError};

/// The panic policy, and what the connection event being dispatched has done so far.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) panic_policy: PanicPolicy,
    /// The connection whose event is being dispatched (step 3), if any.
    serving: Option<ConnId>,
    outcome: EventOutcome,
}

/// What the callbacks of one connection event put on the dirty list (output, or a close or
/// half-close, to carry out in step 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EventOutcome {
    /// The served connection itself: its replies. It was not on the list before the event.
    pub(crate) own_output: bool,
    /// Any other connection (a broadcast, a proxy's other half, a close of another).
    pub(crate) other_output: bool,
}

impl Calls {
    /// Starts recording what the event of `id` lists.
    pub(crate) fn begin_event(&mut self, id: ConnId) {
        self.serving = Some(id);
        self.outcome = EventOutcome::default();
    }

    /// Stops recording and returns what the event listed.
    pub(crate) fn end_event(&mut self) -> EventOutcome {
        self.serving = None;
        std::mem::take(&mut self.outcome)
    }

    /// `id` was put on the dirty list.
    pub(crate) fn listed(&mut self, id: ConnId) {
        match self.serving {
            Some(serving) if serving == id => self.outcome.own_output = true,
            Some(_) => self.outcome.other_output = true,
            None => {}
        }
    }
}

/// Runs `f`, applying `policy` to a panic: `Err` with the panic's message if the source alone
/// should pay (the policy is to close it); otherwise the panic unwinds on or aborts the process.
#[inline]
fn guarded<R>(policy: PanicPolicy, who: &dyn Display, f: impl FnOnce() -> R) -> Result<R, String> {
    if policy == PanicPolicy::Unwind {
        return Ok(f());
    }
    // Unwind safety: after a panic the handler is only ever given `on_close`, and the
    // reactor's own state is changed by the context in whole steps, never left half-done.
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| match policy {
        PanicPolicy::Abort => {
            log::error!(
                "{who}: handler panicked: {}; aborting the process (PanicPolicy::Abort)",
                panic_message(&*payload)
            );
            std::process::abort()
        }
        _ => panic_message(&*payload),
    })
}

/// The text of a panic payload (`panic!` with a literal or a formatted message), for logs.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    match payload.downcast_ref::<&str>() {
        Some(s) => (*s).to_string(),
        None => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "non-text panic".to_string()),
    }
}

impl Core {
    /// Runs one handler callback for connection `id` with a context on this reactor. The
    /// handler is taken out of its slot for the duration, so the callback may freely use the
    /// context (even on its own connection); slots are only freed in step 4, so it can always
    /// be put back. `None` if the connection is gone or the callback panicked.
    ///
    /// A panic closes this connection only (reset, `CloseReason::Panicked`, logged at error),
    /// unless the panic policy says otherwise. The handler is kept, so `on_close` can still
    /// clean up what it shares with others.
    pub(crate) fn call<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut dyn Handler, &mut Context<'_>) -> R,
    ) -> Option<R> {
        let mut handler = self.slots.conn_mut(id)?.take_handler()?;
        let policy = self.calls.panic_policy;
        let result = {
            let mut cx = Context::new(self, id);
            guarded(policy, &id, || f(&mut *handler, &mut cx))
        };
        if let Some(conn) = self.slots.conn_mut(id) {
            conn.put_handler(handler);
        }
        match result {
            Ok(r) => Some(r),
            Err(message) => {
                log::error!("{id}: handler panicked: {message}; closing this connection");
                let _ = self.close(id, CloseMode::Abort);
                if let Some(conn) = self.slots.conn_mut(id) {
                    conn.override_reason(CloseReason::Panicked(message));
                }
                None
            }
        }
    }

    /// Tells a released connection's handler why it closed. A panic here cannot close
    /// anything more; it is logged and the loop goes on (unless the policy says otherwise).
    pub(crate) fn call_on_close(
        &mut self,
        id: ConnId,
        mut handler: Box<dyn Handler>,
        reason: CloseReason,
    ) {
        let policy = self.calls.panic_policy;
        let mut cx = Context::new(self, id);
        if let Err(message) = guarded(policy, &id, || handler.on_close(&mut cx, reason)) {
            log::error!("{id}: handler panicked in on_close: {message}");
        }
    }

    /// Hands one datagram to UDP socket `id`'s handler. A panic closes that socket (logged at
    /// error), unless the policy says otherwise; returns false then.
    pub(crate) fn call_udp(
        &mut self,
        id: UdpId,
        handler: &mut dyn DatagramHandler,
        data: &[u8],
        from: SocketAddr,
    ) -> bool {
        let policy = self.calls.panic_policy;
        let mut cx = UdpContext::new(self, id);
        match guarded(policy, &id, || handler.on_datagram(&mut cx, data, from)) {
            Ok(()) => true,
            Err(message) => {
                log::error!("{id}: datagram handler panicked: {message}; closing this socket");
                false
            }
        }
    }

    /// Gives UDP socket `id`'s handler an error of one of its sends or receives. A panic is
    /// handled as in [`call_udp`](Self::call_udp).
    pub(crate) fn call_udp_error(
        &mut self,
        id: UdpId,
        handler: &mut dyn DatagramHandler,
        error: UdpError,
    ) -> bool {
        let policy = self.calls.panic_policy;
        let mut cx = UdpContext::new(self, id);
        match guarded(policy, &id, || handler.on_error(&mut cx, error)) {
            Ok(()) => true,
            Err(message) => {
                log::error!(
                    "{id}: datagram handler panicked in on_error: {message}; closing this socket"
                );
                false
            }
        }
    }
}
