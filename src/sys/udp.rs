//! Datagrams in batches: up to [`RECV_BATCH`] received and [`SEND_BATCH`] sent per system call
//! where the kernel offers `recvmmsg`/`sendmmsg` (Linux, through nix's safe wrappers), one per
//! call elsewhere. Received batches are copied nowhere: the engine hands each datagram to the
//! handler straight from the batch's buffer.
//!
//! On Linux a socket also asks for UDP GRO (`UDP_GRO`): a peer's (or a NIC's) train of
//! equal-sized datagrams from one source may then arrive as one buffer with its segment size,
//! which [`Received::datagram`] cuts back into the datagrams the peer sent.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Datagrams asked for per receive call.
pub(crate) const RECV_BATCH: usize = if BATCHED { 32 } else { 1 };

/// Datagrams handed to the kernel per send call.
pub(crate) const SEND_BATCH: usize = if BATCHED { 64 } else { 1 };

/// Whether this platform receives and sends several datagrams per system call.
const BATCHED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Room for one received datagram: the largest UDP payload fits (65,507 bytes over IPv4), and
/// so does a GRO train (the kernel coalesces at most 64 KiB). The buffer of a batch is allocated
/// zeroed, so the kernel commits only the pages datagrams actually touched.
const SLOT: usize = 1 << 16;

/// One datagram (or GRO train) of a received batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    slot: usize,
    len: usize,
    /// Where it came from (always known for UDP; `None` only if the kernel gave no address).
    pub(crate) from: Option<SocketAddr>,
    /// The GRO segment size, or 0 for a single datagram.
    segment: usize,
}

/// The buffers and headers of one reactor's batched receives, allocated when the first UDP
/// socket is added and shared by all of them (as the stream sockets share one read buffer).
pub(crate) struct RecvBatch {
    buf: Box<[u8]>,
    got: Vec<Received>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &RECV_BATCH)
            .field("got", &self.got.len())
            .finish_non_exhaustive()
    }
}

impl Received {
    /// How many datagrams this buffer holds: one, or for a GRO train one per segment.
    pub(crate) fn count(&self) -> usize {
        match self.segment {
            0 => 1,
            s => self.len.div_ceil(s).max(1),
        }
    }

    /// Datagram `k` (below [`count`](Self::count)) of this buffer, in the order the peer sent
    /// them (a GRO train's last segment may be shorter).
    pub(crate) fn datagram<'b>(&self, batch: &'b RecvBatch, k: usize) -> &'b [u8] {
        let data = &batch.buf[self.slot * SLOT..self.slot * SLOT + self.len];
        match self.segment {
            0 => data,
            s => &data[(k * s).min(self.len)..((k + 1) * s).min(self.len)],
        }
    }
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            buf: vec![0; SLOT * RECV_BATCH].into_boxed_slice(),
            got: Vec::with_capacity(RECV_BATCH),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            headers: nix::sys::socket::MultiHeaders::preallocate(
                RECV_BATCH,
                Some(nix::cmsg_space!(i32)),
            ),
        }
    }

    /// What the last [`recv_batch`] received.
    pub(crate) fn received(&self) -> &[Received] {
        &self.got
    }
}

/// Receives up to `max` (at most [`RECV_BATCH`]) datagrams into `batch`; `Ok(n)` with n >= 1,
/// or the error of the call (`WouldBlock` when there is nothing to receive).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn recv_batch(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    max: usize,
) -> io::Result<usize> {
    use nix::sys::socket::{recvmmsg, ControlMessageOwned, MsgFlags};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    let max = max.clamp(1, RECV_BATCH);
    batch.got.clear();
    let mut chunks = batch.buf.chunks_exact_mut(SLOT);
    let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
    let results = recvmmsg(
        socket.as_raw_fd(),
        &mut batch.headers,
        iovs[..max].iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for (slot, msg) in results.enumerate() {
        let mut segment = 0;
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(size) = cmsg {
                    segment = usize::try_from(size).unwrap_or(0);
                }
            }
        }
        if segment > 0 {
            log::trace!(
                "a GRO train of {} bytes in {segment}-byte datagrams",
                msg.bytes
            );
        }
        batch.got.push(Received {
            slot,
            len: msg.bytes.min(SLOT),
            from: msg.address.as_ref().and_then(to_std),
            segment,
        });
    }
    Ok(batch.got.len())
}

/// Receives one datagram into `batch` (no batched receive on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn recv_batch(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    _max: usize,
) -> io::Result<usize> {
    batch.got.clear();
    let (len, from) = socket.recv_from(&mut batch.buf[..SLOT])?;
    batch.got.push(Received {
        slot: 0,
        len,
        from: Some(from),
        segment: 0,
    });
    Ok(1)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn to_std(addr: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// The headers of one reactor's batched sends.
pub(crate) struct SendBatch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("slots", &SEND_BATCH)
            .finish()
    }
}

impl SendBatch {
    pub(crate) fn new() -> SendBatch {
        SendBatch {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            headers: nix::sys::socket::MultiHeaders::preallocate(SEND_BATCH, None),
        }
    }
}

/// Sends the datagrams of `items` (each to its address, or to the connected peer for `None`)
/// in order, as many as the kernel takes in one call (at most [`SEND_BATCH`]). `Ok(n)`: the
/// first n were sent. `Err`: the first was not; for an error other than `WouldBlock` and
/// `Interrupted`, that is the first datagram's own error (too big, refused, no route).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn send_batch<'d>(
    socket: &UdpSocket,
    batch: &mut SendBatch,
    items: impl Iterator<Item = (&'d [u8], Option<SocketAddr>)>,
) -> io::Result<usize> {
    use nix::sys::socket::{sendmmsg, MsgFlags, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let mut iovs: [[IoSlice<'d>; 1]; SEND_BATCH] = [[IoSlice::new(&[])]; SEND_BATCH];
    let mut addrs: [Option<SockaddrStorage>; SEND_BATCH] = [None; SEND_BATCH];
    let mut n = 0;
    for ((data, to), (iov, addr)) in items.zip(iovs.iter_mut().zip(addrs.iter_mut())) {
        *iov = [IoSlice::new(data)];
        *addr = to.map(SockaddrStorage::from);
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut batch.headers,
        &iovs[..n],
        &addrs[..n],
        [],
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?
    .count();
    Ok(sent)
}

/// Sends the first datagram of `items` (no batched send on this platform).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn send_batch<'d>(
    socket: &UdpSocket,
    _batch: &mut SendBatch,
    mut items: impl Iterator<Item = (&'d [u8], Option<SocketAddr>)>,
) -> io::Result<usize> {
    match items.next() {
        Some((data, Some(to))) => socket.send_to(data, to).map(|_| 1),
        Some((data, None)) => socket.send(data).map(|_| 1),
        None => Ok(0),
    }
}

/// Asks the kernel to coalesce trains of datagrams (`UDP_GRO`, Linux 5.0+). Where it is not
/// offered the socket simply receives one datagram per buffer, so a failure is only logged.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn enable_gro(socket: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt::UdpGroSegment};
    if let Err(e) = setsockopt(socket, UdpGroSegment, &true) {
        log::debug!("UDP_GRO not enabled: {e}");
    }
}

/// No UDP GRO on this platform.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn enable_gro(_socket: &UdpSocket) {}
