//! Datagrams in batches: up to [`RECV_BATCH`] received and [`SEND_BATCH`] sent per system call
//! where the kernel offers `recvmmsg`/`sendmmsg` (Linux, through nix's safe wrappers), one per
//! call elsewhere. Received batches are copied nowhere: the engine hands each datagram to the
//! handler straight from the batch's buffer.
//!
//! On Linux a socket also asks for UDP GRO (`UDP_GRO`): a peer's (or a NIC's) train of
//! equal-sized datagrams from one source may then arrive as one buffer with its segment size,
//! which [`Received::datagram`] cuts back into the datagrams the peer sent. And runs of
//! equal-sized datagrams to one destination are sent with UDP GSO (`UDP_SEGMENT`): one message
//! that the kernel (or the NIC) cuts into the datagrams (see [`send_batch`]).

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Datagrams asked for per receive call.
pub(crate) const RECV_BATCH: usize = if BATCHED { 32 } else { 1 };

/// Datagrams handed to the kernel per send call.
pub(crate) const SEND_BATCH: usize = if BATCHED { 64 } else { 1 };

/// Whether UDP GSO is tried on this platform (Linux 4.18+; an older kernel refuses the first
/// GSO send, and the socket goes on without).
pub(crate) const GSO: bool = cfg!(any(target_os = "linux", target_os = "android"));

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
            headers: fresh_recv_headers(),
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
    // The kernel wrote each used header's control and address lengths back (0 where a
    // datagram came without a GRO segment size), and nix's recvmmsg does not reset them: the
    // next call would find no room for the segment size and hand over a coalesced train
    // without it. Fresh headers for the next call (three small allocations).
    // A train's header keeps its full lengths, so a batch of trains alone needs none.
    if batch.got.iter().any(|r| r.segment == 0) {
        batch.headers = fresh_recv_headers();
    }
    Ok(batch.got.len())
}

/// Receive headers with room for an address and the GRO segment size in each.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fresh_recv_headers() -> nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage> {
    nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, Some(nix::cmsg_space!(i32)))
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

/// The largest datagram sent with UDP GSO: the segment must fit the path's MTU with its
/// headers (the kernel refuses the whole send otherwise), and 1,452 bytes fits an Ethernet MTU
/// over IPv4 and IPv6 alike. Larger datagrams are sent one per message.
const GSO_MAX_SEGMENT: usize = 1452;

/// At most this many datagrams in one GSO message (the kernel's `UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;

/// At most this many bytes in one GSO message (one IP packet's worth before segmentation).
const GSO_MAX_BYTES: usize = 65_000;

/// The headers of one reactor's batched sends: one set plain, one with room for the
/// `UDP_SEGMENT` control message.
pub(crate) struct SendBatch {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    plain: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    gso: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    /// The messages' destinations, kept between calls so that a call fills only the entries
    /// it uses (an address is 128 bytes).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    addrs: Vec<Option<nix::sys::socket::SockaddrStorage>>,
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
            plain: nix::sys::socket::MultiHeaders::preallocate(SEND_BATCH, None),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            gso: nix::sys::socket::MultiHeaders::preallocate(
                SEND_BATCH,
                Some(nix::cmsg_space!(u16)),
            ),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            addrs: Vec::with_capacity(SEND_BATCH),
        }
    }
}

/// Sends the datagrams of `items` (each to its address, or to the connected peer for `None`)
/// in order, as many as the kernel takes in one call (at most [`SEND_BATCH`]). `Ok(n)`: the
/// first n were sent. `Err`: the first was not; for an error other than `WouldBlock` and
/// `Interrupted`, that is the first datagram's own error (too big, refused, no route).
///
/// With `gso`, runs of datagrams of one size to one destination leave as one message each,
/// cut by the kernel (`UDP_SEGMENT`): one trip down the stack instead of one per datagram,
/// and a peer with UDP GRO receives the run as one buffer. If the kernel refuses such a
/// message, `gso` is switched off for good (the path's MTU is smaller than we assumed, or the
/// device cannot do it), logged, and the datagrams go one per message.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn send_batch<'d>(
    socket: &UdpSocket,
    batch: &mut SendBatch,
    items: impl Iterator<Item = (&'d [u8], Option<SocketAddr>)>,
    gso: &mut bool,
) -> io::Result<usize> {
    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let mut iovs: [IoSlice<'d>; SEND_BATCH] = [IoSlice::new(&[]); SEND_BATCH];
    let mut dests: [Option<SocketAddr>; SEND_BATCH] = [None; SEND_BATCH];
    let mut n = 0;
    for ((data, to), (iov, dest)) in items.zip(iovs.iter_mut().zip(dests.iter_mut())) {
        *iov = IoSlice::new(data);
        *dest = to;
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    let fd = socket.as_raw_fd();
    let segment = iovs[0].len();
    if *gso && (1..=GSO_MAX_SEGMENT).contains(&segment) {
        // Messages: (first datagram, datagrams); a message is a run to one destination of
        // datagrams of `segment` bytes, the last of which may be shorter. The call ends before
        // a datagram longer than `segment` (it needs a segment size of its own).
        let mut messages: [(usize, usize); SEND_BATCH] = [(0, 0); SEND_BATCH];
        let mut m = 0;
        let mut bytes = 0;
        for i in 0..n {
            let len = iovs[i].len();
            if len > segment {
                break;
            }
            let joins = m > 0 && {
                let (first, count) = messages[m - 1];
                dests[first] == dests[i]
                    && iovs[first + count - 1].len() == segment
                    && count < GSO_MAX_SEGMENTS
                    && bytes + len <= GSO_MAX_BYTES
            };
            if joins {
                messages[m - 1].1 += 1;
                bytes += len;
            } else {
                messages[m] = (i, 1);
                m += 1;
                bytes = len;
            }
        }
        // Worth a control message only if some message carries more than one datagram.
        if messages[..m].iter().any(|&(_, count)| count > 1) {
            let slices: [&[IoSlice<'d>]; SEND_BATCH] = std::array::from_fn(|k| match k < m {
                true => &iovs[messages[k].0..messages[k].0 + messages[k].1],
                false => &iovs[..0],
            });
            batch.addrs.clear();
            batch.addrs.extend(
                messages[..m]
                    .iter()
                    .map(|&(first, _)| dests[first].map(SockaddrStorage::from)),
            );
            let size = segment as u16;
            let cmsgs = [ControlMessage::UdpGsoSegments(&size)];
            match sendmmsg(
                fd,
                &mut batch.gso,
                &slices[..m],
                &batch.addrs,
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let sent = results.count();
                    return Ok(messages[..sent].iter().map(|&(_, count)| count).sum());
                }
                Err(e) if matches!(e, nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                    return Err(io::Error::from(e));
                }
                // The first message failed: if it was a run, blame the segmentation and go on
                // without it; a single datagram's error is its own.
                Err(e) if messages[0].1 > 1 => {
                    log::debug!("UDP GSO refused ({e}); sending one datagram per message");
                    *gso = false;
                }
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
    let slices: [&[IoSlice<'d>]; SEND_BATCH] =
        std::array::from_fn(|k| &iovs[k.min(n - 1)..k.min(n - 1) + 1]);
    batch.addrs.clear();
    batch
        .addrs
        .extend(dests[..n].iter().map(|d| d.map(SockaddrStorage::from)));
    let sent = sendmmsg(
        fd,
        &mut batch.plain,
        &slices[..n],
        &batch.addrs,
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
    _gso: &mut bool,
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
