//! UDP sockets in the engine: the receive turn, the send queue, and errors for the handler.
//!
//! **Receiving.** A turn receives datagrams in batches (`recvmmsg` on Linux, up to 32 per
//! call; one per call elsewhere) and hands each to the handler straight from the batch's
//! buffer. A batch shorter than asked for proves the socket empty (the next arrival raises a
//! new edge), so the call that would only say `WouldBlock` is skipped, except after an error
//! event or in a turn from the still-ready queue. A turn delivers at most `RECV_BUDGET`
//! datagrams; then the socket goes on the still-ready queue.
//!
//! **Sending.** What a handler sends during its socket's turn is queued and leaves in batches
//! (`sendmmsg`, up to 64 per call) when the batch is full and when the turn ends, in the order
//! it was sent. A send from outside the turn (a loop timer, a posted job, another socket's
//! handler) goes out at once if nothing is queued before it. Whatever the kernel refuses
//! because its buffer is full stays queued, in order, until the socket is writable. The queue
//! is bounded: UDP is allowed to lose datagrams, and an unbounded queue would turn a slow
//! network into unbounded memory. A datagram refused because the queue is full is counted in
//! [`Stats::datagrams_dropped`](crate::Stats::datagrams_dropped) and reported to the sender.
//!
//! **Errors.** A datagram the kernel refuses for its own reasons (too big, no route, a
//! connected peer's port unreachable) is dropped and reported to the handler's `on_error` once
//! the callback that sent it has returned; so is a failed receive (`ConnectionRefused` on a
//! connected socket after an ICMP port unreachable).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::Interest;

use super::{gone, Core, Entry};
use crate::id::UdpId;
use crate::sources::Readiness;
use crate::sys::{self, RecvBatch, SendBatch, RECV_BATCH, SEND_BATCH};
use crate::udp::{DatagramHandler, UdpError, UDP_QUEUE_LIMIT};

/// Datagrams received in one turn of a socket before it yields to other sources.
const RECV_BUDGET: usize = 256;

/// Bytes of send-queue buffer a socket keeps once its queue is empty; a burst that needed more
/// gives the rest back.
const QUEUE_KEEP: usize = 256 << 10;

/// The batch buffers shared by a reactor's UDP sockets, allocated with the first socket.
#[derive(Debug, Default)]
pub(crate) struct UdpIo {
    recv: Option<Box<RecvBatch>>,
    send: Option<Box<SendBatch>>,
}

/// Datagrams waiting to be sent, in order, their bytes back to back in one buffer.
#[derive(Debug, Default)]
struct SendQueue {
    bytes: Vec<u8>,
    /// Where the first waiting datagram starts in `bytes`.
    head: usize,
    /// Each datagram's length and destination (`None`: the connected peer).
    items: VecDeque<(usize, Option<SocketAddr>)>,
}

impl SendQueue {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, data: &[u8], to: Option<SocketAddr>) {
        self.bytes.extend_from_slice(data);
        self.items.push_back((data.len(), to));
    }

    /// The waiting datagrams, first first.
    fn iter(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> {
        let mut at = self.head;
        self.items.iter().map(move |&(len, to)| {
            let data = &self.bytes[at..at + len];
            at += len;
            (data, to)
        })
    }

    /// Forgets the first datagram (sent, or dropped); returns where it was going.
    fn pop_front(&mut self) -> Option<Option<SocketAddr>> {
        let (len, to) = self.items.pop_front()?;
        self.head += len;
        if self.items.is_empty() {
            self.bytes.clear();
            self.head = 0;
            if self.bytes.capacity() > QUEUE_KEEP {
                self.bytes = Vec::new();
            }
        } else if self.head > QUEUE_KEEP && self.head * 2 > self.bytes.len() {
            // Mostly sent: move the rest to the front rather than grow behind it.
            self.bytes.drain(..self.head);
            self.head = 0;
        }
        Some(to)
    }
}

pub(crate) struct UdpSocketEntry {
    pub(crate) socket: UdpSocket,
    handler: Option<Box<dyn DatagramHandler>>,
    queue: SendQueue,
    /// Connected to one peer (`Reactor::connect_udp`): `send` needs no address.
    pub(crate) connected: bool,
    /// In a receive turn: sends are gathered and leave in batches.
    in_turn: bool,
    /// The kernel's buffer was full: nothing is sent before the socket is writable again.
    blocked: bool,
    /// Runs of equal-sized datagrams to one destination leave as one UDP GSO message (off for
    /// good once the kernel refused one).
    gso: bool,
    /// Errors not yet given to the handler (it was busy when they happened).
    errors: Vec<UdpError>,
}

impl UdpSocketEntry {
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }
}

impl Core {
    /// Registers a bound UDP socket (already non-blocking) served by `handler`.
    pub(crate) fn add_udp(
        &mut self,
        socket: std::net::UdpSocket,
        handler: Box<dyn DatagramHandler>,
    ) -> io::Result<UdpId> {
        let local = socket.local_addr()?;
        let connected = socket.peer_addr().is_ok();
        let mut socket = UdpSocket::from_std(socket);
        sys::enable_gro(&socket);
        let gen = self.slots.take_gen();
        let id = UdpId::new(self.slots.next_key(), gen);
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut socket, id.token(), interest)?;
        let entry = UdpSocketEntry {
            socket,
            handler: Some(handler),
            queue: SendQueue::default(),
            connected,
            in_turn: false,
            blocked: false,
            gso: sys::GSO,
            errors: Vec::new(),
        };
        self.slots.insert(gen, Entry::Udp(Box::new(entry)));
        log::debug!("{id}: bound to {local}");
        Ok(id)
    }

    /// Sends a datagram to `to` (`None`: the connected peer), or queues it: during the
    /// socket's own turn, behind datagrams already queued, or when the kernel's buffer is full.
    pub(crate) fn udp_send(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> io::Result<()> {
        let udp = self.slots.udp_mut(id).ok_or_else(gone)?;
        if to.is_none() && !udp.connected {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "send without an address on a UDP socket that is not connected",
            ));
        }
        if !udp.in_turn && udp.queue.is_empty() {
            loop {
                self.counters.stats.datagram_send_calls += 1;
                let result = match to {
                    Some(to) => udp.socket.send_to(data, to),
                    None => udp.socket.send(data),
                };
                match result {
                    Ok(_) => {
                        self.counters.stats.datagrams_sent += 1;
                        return Ok(());
                    }
                    // Kernel buffer full: queue below, until the socket is writable.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        udp.blocked = true;
                        break;
                    }
                    // A signal is no reason to lose a datagram.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("{id}: send to {to:?} failed: {e}");
                        self.counters.stats.datagram_errors += 1;
                        return Err(e);
                    }
                }
            }
        }
        if udp.queue.len() >= UDP_QUEUE_LIMIT {
            self.counters.stats.datagrams_dropped += 1;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("UDP send queue full ({UDP_QUEUE_LIMIT} datagrams); datagram dropped"),
            ));
        }
        udp.queue.push(data, to);
        // A full batch leaves at once: the queue stays one system call's worth.
        if udp.in_turn && !udp.blocked && udp.queue.len() >= SEND_BATCH {
            self.udp_flush(id);
        }
        Ok(())
    }

    /// Sends queued datagrams, a batch per system call, until the queue is empty or the
    /// kernel's buffer is full. A datagram the kernel refuses is dropped and its error kept
    /// for the handler; the rest go on.
    fn udp_flush(&mut self, id: UdpId) {
        let Some(udp) = self.slots.udp_mut(id) else {
            return;
        };
        if udp.blocked || udp.queue.is_empty() {
            return;
        }
        let send = self
            .udp_io
            .send
            .get_or_insert_with(|| Box::new(SendBatch::new()));
        let stats = &mut self.counters.stats;
        while !udp.queue.is_empty() {
            stats.datagram_send_calls += 1;
            match sys::send_batch(&udp.socket, send, udp.queue.iter(), &mut udp.gso) {
                Ok(sent) => {
                    for _ in 0..sent {
                        udp.queue.pop_front();
                    }
                    stats.datagrams_sent += sent as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    udp.blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let to = udp.queue.pop_front().flatten();
                    log::debug!("{id}: send to {to:?} failed: {error}");
                    stats.datagram_errors += 1;
                    udp.errors.push(UdpError::Send { to, error });
                }
            }
        }
    }

    /// Handles readiness of a UDP socket: flush the queue if writable, receive if readable (or
    /// an error is pending) and `receive` (false while the socket is on the still-ready queue:
    /// it receives in its turn).
    pub(crate) fn udp_ready(
        &mut self,
        _rbuf: &mut [u8],
        id: UdpId,
        ready: Readiness,
        receive: bool,
    ) {
        if ready.writable {
            if let Some(udp) = self.slots.udp_mut(id) {
                udp.blocked = false;
            }
            self.udp_flush(id);
            self.udp_report(id);
        }
        if (ready.readable || ready.error) && receive {
            self.udp_turn(id, ready.error);
        }
    }

    /// A turn from the still-ready queue: receive on to `WouldBlock`.
    pub(crate) fn udp_receive(&mut self, _rbuf: &mut [u8], id: UdpId) {
        self.udp_turn(id, true);
    }

    /// One receive turn: up to `RECV_BUDGET` datagrams, each handed to the handler, then the
    /// sends it made, in batches; then the still-ready queue if the budget ran out first. With
    /// `drain`, a short batch does not end the turn (an error is pending, or this is a retry).
    fn udp_turn(&mut self, id: UdpId, drain: bool) {
        let Some(udp) = self.slots.udp_mut(id) else {
            return;
        };
        udp.in_turn = true;
        let mut batch = self
            .udp_io
            .recv
            .take()
            .unwrap_or_else(|| Box::new(RecvBatch::new()));
        let mut budget = RECV_BUDGET;
        let mut more = true;
        while budget > 0 {
            let Some(udp) = self.slots.udp_mut(id) else {
                break;
            };
            let ask = budget.min(RECV_BATCH);
            self.counters.stats.datagram_recv_calls += 1;
            match sys::recv_batch(&udp.socket, &mut batch, ask) {
                Ok(n) => {
                    budget = budget.saturating_sub(self.udp_deliver(id, &batch));
                    if n < ask && !drain {
                        more = false; // a short batch: the socket is empty
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error for an earlier send (connected sockets), or similar: it concerns
                // one datagram, not the socket; the next receive goes on.
                Err(error) => {
                    log::debug!("{id}: receive error: {error}");
                    budget -= 1;
                    self.counters.stats.datagram_errors += 1;
                    udp.errors.push(UdpError::Receive(error));
                    self.udp_report(id);
                }
            }
        }
        self.udp_io.recv = Some(batch);
        let Some(udp) = self.slots.udp_mut(id) else {
            return; // closed during the turn (its handler panicked)
        };
        udp.in_turn = false;
        self.udp_flush(id);
        self.udp_report(id);
        if more {
            self.mark_ready(id.token());
        }
    }

    /// Hands the datagrams of `batch` to the handler, in order; returns how many. Stops if the
    /// handler panicked (the socket is closed then).
    fn udp_deliver(&mut self, id: UdpId, batch: &RecvBatch) -> usize {
        let Some(mut handler) = self.slots.udp_mut(id).and_then(|u| u.handler.take()) else {
            return 0;
        };
        let mut delivered = 0;
        for received in batch.received() {
            let Some(from) = received.from else {
                log::debug!("{id}: a datagram without a source address ignored");
                continue;
            };
            for k in 0..received.count() {
                delivered += 1;
                self.counters.stats.datagrams_received += 1;
                let data = received.datagram(batch, k);
                if !self.call_udp(id, &mut *handler, data, from) {
                    // It panicked: the socket closes, as a connection would.
                    let _ = self.close_udp(id);
                    return delivered;
                }
                if !self.udp_report_to(id, &mut *handler) {
                    return delivered;
                }
            }
        }
        if let Some(udp) = self.slots.udp_mut(id) {
            udp.handler = Some(handler);
        }
        delivered
    }

    /// Gives socket `id`'s handler the errors kept for it.
    fn udp_report(&mut self, id: UdpId) {
        let Some(mut handler) = self.slots.udp_mut(id).and_then(|u| u.handler.take()) else {
            return;
        };
        if self.udp_report_to(id, &mut *handler) {
            if let Some(udp) = self.slots.udp_mut(id) {
                udp.handler = Some(handler);
            }
        }
    }

    /// Gives `handler` (taken out of socket `id`'s slot) the errors kept for it. Errors that
    /// its `on_error` causes (by sending) wait for the next report, so a handler that answers
    /// every error with a failing send cannot keep the loop here. False if it panicked (the
    /// socket is closed then).
    fn udp_report_to(&mut self, id: UdpId, handler: &mut dyn DatagramHandler) -> bool {
        let Some(udp) = self.slots.udp_mut(id) else {
            return false;
        };
        if udp.errors.is_empty() {
            return true;
        }
        for error in std::mem::take(&mut udp.errors) {
            if !self.call_udp_error(id, handler, error) {
                let _ = self.close_udp(id);
                return false;
            }
        }
        true
    }

    pub(crate) fn close_udp(&mut self, id: UdpId) -> io::Result<()> {
        if self.slots.udp(id).is_none() {
            return Err(gone());
        }
        if let Entry::Udp(u) = self.slots.remove(id.key()).entry {
            let dropped = u.queue.len() as u64;
            self.counters.stats.datagrams_dropped += dropped;
            log::debug!("{id}: closed ({dropped} queued datagrams dropped)");
        }
        Ok(())
    }

    /// Ids of every UDP socket (for shutdown).
    pub(crate) fn udp_ids(&self) -> Vec<UdpId> {
        let slots = self.slots.keys_where(|e| matches!(e, Entry::Udp(_)));
        slots
            .into_iter()
            .map(|(key, gen)| UdpId::new(key, gen))
            .collect()
    }
}
