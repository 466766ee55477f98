//! UDP sockets in the engine: the bounded send queue, and the receive turn.
//!
//! A send is tried at once; if the kernel's buffer is full the datagram is queued (in order) and
//! the queue is flushed when the socket becomes writable. The queue is bounded: UDP is allowed to
//! lose datagrams, and an unbounded queue would turn a slow network into unbounded memory. A
//! datagram refused because the queue is full is counted in
//! [`Stats::datagrams_dropped`](crate::Stats::datagrams_dropped) and reported to the sender.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use mio::Interest;

use super::{gone, Core, Entry};
use crate::id::UdpId;
use crate::sources::Readiness;
use crate::udp::{DatagramHandler, UDP_QUEUE_LIMIT};

/// Datagrams received in one turn of a socket before it yields to other sources.
const RECV_BUDGET: usize = 256;

pub(crate) struct UdpSocketEntry {
    pub(crate) socket: UdpSocket,
    handler: Option<Box<dyn DatagramHandler>>,
    queue: VecDeque<(Box<[u8]>, SocketAddr)>,
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
        let mut socket = UdpSocket::from_std(socket);
        let gen = self.slots.take_gen();
        let id = UdpId::new(self.slots.next_key(), gen);
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut socket, id.token(), interest)?;
        let entry = UdpSocketEntry {
            socket,
            handler: Some(handler),
            queue: VecDeque::new(),
        };
        self.slots.insert(gen, Entry::Udp(Box::new(entry)));
        log::debug!("{id}: bound to {local}");
        Ok(id)
    }

    pub(crate) fn udp_send(&mut self, id: UdpId, data: &[u8], to: SocketAddr) -> io::Result<()> {
        let udp = self.slots.udp_mut(id).ok_or_else(gone)?;
        if udp.queue.is_empty() {
            match udp.socket.send_to(data, to) {
                Ok(_) => {
                    self.counters.stats.datagrams_sent += 1;
                    return Ok(());
                }
                // Kernel buffer full: queue below.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Retry once; a signal is no reason to lose a datagram.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return self.udp_send(id, data, to)
                }
                Err(e) => {
                    log::debug!("{id}: send to {to} failed: {e}");
                    return Err(e);
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
        udp.queue.push_back((data.into(), to));
        Ok(())
    }

    /// Sends queued datagrams until the queue is empty or the socket is full again.
    fn udp_flush(&mut self, id: UdpId) {
        let Some(udp) = self.slots.udp_mut(id) else {
            return;
        };
        let mut sent = 0;
        while let Some((data, to)) = udp.queue.front() {
            match udp.socket.send_to(data, *to) {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // That datagram cannot be sent (too big, no route): drop it, go on with the rest.
                Err(e) => log::debug!("{id}: queued send to {to} failed: {e}"),
            }
            udp.queue.pop_front();
        }
        self.counters.stats.datagrams_sent += sent;
    }

    /// Handles readiness of a UDP socket: flush the queue if writable, receive if readable and
    /// `receive` (false while the socket is on the still-ready queue: it receives in its turn).
    pub(crate) fn udp_ready(
        &mut self,
        rbuf: &mut [u8],
        id: UdpId,
        ready: Readiness,
        receive: bool,
    ) {
        if ready.writable {
            self.udp_flush(id);
        }
        if ready.readable && receive {
            self.udp_receive(rbuf, id);
        }
    }

    /// One receive turn: up to `RECV_BUDGET` datagrams, then the still-ready queue if the
    /// budget ran out first.
    pub(crate) fn udp_receive(&mut self, rbuf: &mut [u8], id: UdpId) {
        for _ in 0..RECV_BUDGET {
            let Some(udp) = self.slots.udp_mut(id) else {
                return;
            };
            match udp.socket.recv_from(rbuf) {
                Ok((n, from)) => {
                    let Some(mut handler) = udp.handler.take() else {
                        return;
                    };
                    self.counters.stats.datagrams_received += 1;
                    if !self.call_udp(id, &mut *handler, &rbuf[..n], from) {
                        // It panicked: the socket closes, as a connection would.
                        let _ = self.close_udp(id);
                        return;
                    }
                    if let Some(udp) = self.slots.udp_mut(id) {
                        udp.handler = Some(handler);
                    }
                }
                // Drained.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error for an earlier send (connected sockets), or similar: it concerns
                // one datagram, not the socket; the next receive goes on.
                Err(e) => log::debug!("{id}: receive error: {e}"),
            }
        }
        self.mark_ready(id.token());
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
