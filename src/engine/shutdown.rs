//! Graceful shutdown: stop accepting, let handlers finish, flush, close; force what is left at
//! the deadline.
//!
//! Listeners are closed at once (new clients are refused by the kernel rather than accepted and
//! dropped), after one last accept of what the kernel has queued: a connection left in the
//! accept queue would be reset by the close, and behind a load balancer in TCP mode that is a
//! request lost (the balancer retries refused connects, not established ones). Every open connection's handler gets [`on_shutdown`](crate::Handler::on_shutdown),
//! whose default closes gracefully: queued output is sent first. UDP sockets close once their
//! send queue is empty. A connection that has sent everything and its FIN waits at most 1 s
//! for the peer's FIN (not the usual 5 s: an idle client would otherwise hold the shutdown).
//! When no connection or UDP socket is left, `run()` returns; whatever is
//! still open at the deadline is closed with [`CloseReason::ShutdownDeadline`]. Loop timers and
//! foreign sources are left alone: they belong to the embedding program.

use std::time::{Duration, Instant};

use super::closing::SHUTDOWN_LINGER;
use super::timer_queue::TimerKey;
use super::{Core, Entry, TimerAction};
use crate::close_reason::CloseReason;
use crate::conn::CloseMode;
use crate::id::{ConnId, ListenerId};
use crate::reactor::Reactor;

/// Accept turns (each up to the accept budget) taken from a listener's queue before it closes.
const DRAIN_ROUNDS: usize = 16;

pub(crate) struct ShutdownState {
    deadline: Instant,
    timer: TimerKey,
}

impl Reactor {
    /// Starts (or shortens) a graceful shutdown; see [`Reactor::shutdown`].
    pub(crate) fn start_shutdown(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let core = &mut self.core;
        if let Some(state) = &core.shutdown {
            if state.deadline <= deadline {
                return;
            }
            core.timers.queue.cancel(state.timer);
        } else {
            log::info!(
                "graceful shutdown: {} connections to finish within {grace:?}",
                core.counters.open
            );
            core.begin_shutdown();
        }
        let timer = core
            .timers
            .queue
            .insert(deadline, TimerAction::ShutdownDeadline);
        core.shutdown = Some(ShutdownState { deadline, timer });
        // With nothing open, the shutdown is complete now; do not wait for the deadline.
        self.check_shutdown_done();
    }

    /// The deadline passed: close whatever is left.
    pub(crate) fn shutdown_deadline(&mut self) {
        let core = &mut self.core;
        if core.shutdown.is_none() {
            return;
        }
        // Only still-live connections: one already closed for its own reason keeps it.
        let mut left = core.conn_ids();
        left.retain(|id| core.slots.conn(*id).is_some_and(|c| c.is_live()));
        if !left.is_empty() {
            log::warn!(
                "graceful shutdown: deadline passed; closing {} busy connections",
                left.len()
            );
        }
        for id in left {
            if core.slots.conn(id).is_some_and(|c| c.is_lingering()) {
                // Delivered everything and sent FIN; only the peer's FIN is missing. That is a
                // completed close, not a busy connection: no reset, no deadline reason.
                core.close_with(id, CloseReason::Local);
                continue;
            }
            let _ = core.close(id, CloseMode::Abort);
            if let Some(conn) = core.slots.conn_mut(id) {
                conn.override_reason(CloseReason::ShutdownDeadline);
            }
        }
        for id in core.udp_ids() {
            let _ = core.close_udp(id);
        }
    }

    /// Ends the shutdown (and `run`) once nothing is left open; called at the end of each
    /// iteration.
    pub(crate) fn check_shutdown_done(&mut self) {
        let core = &mut self.core;
        if core.shutdown.is_none() {
            return;
        }
        for id in core.udp_ids() {
            if core.slots.udp(id).is_some_and(|u| u.queued() == 0) {
                let _ = core.close_udp(id);
            }
        }
        if core.counters.open == 0 && core.udp_ids().is_empty() {
            if let Some(state) = core.shutdown.take() {
                core.timers.queue.cancel(state.timer);
            }
            log::info!("graceful shutdown complete");
            core.stop();
        }
    }
}

impl Core {
    fn begin_shutdown(&mut self) {
        for (key, gen) in self.slots.keys_where(|e| matches!(e, Entry::Listener(_))) {
            let id = ListenerId::new(key, gen);
            // Bounded: a flood of connects cannot hold the shutdown here.
            for _ in 0..DRAIN_ROUNDS {
                self.accept(id);
            }
            let _ = self.remove_listener(id);
        }
        for id in self.conn_ids() {
            // A connection still connecting (or in its TLS handshake) gets `on_shutdown` right after
            // its `on_open`.
            if self
                .slots
                .conn(id)
                .is_some_and(|c| c.is_live() && !c.is_connecting() && !c.is_handshaking())
            {
                self.call(id, |h, cx| h.on_shutdown(cx));
                self.flush(id);
                // Connections that were already lingering wait at most the shutdown linger.
                self.arm_linger_check(id, SHUTDOWN_LINGER);
            }
        }
    }

    /// Ids of every connection slot (open, connecting or closing).
    pub(crate) fn conn_ids(&self) -> Vec<ConnId> {
        let slots = self.slots.keys_where(|e| matches!(e, Entry::Conn(_)));
        slots
            .into_iter()
            .map(|(key, gen)| ConnId::new(key, gen))
            .collect()
    }
}
