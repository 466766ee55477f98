//! The load: M members of one chat room, all on this thread, driven through lock-step rounds of
//! messages ("steps").
//!
//! Each member is a tungstenite client (`WebSocket<TcpStream>`): the handshake is done blocking,
//! then the socket turns non-blocking and joins one mio poll (edge-triggered), so one thread
//! reads every member without a thread per connection getting in the way of the figures.
//!
//! In a step, senders 0..S each send one 64-byte text message; the step ends when every member
//! has received every one of them. Only then does the next step start, so at most S messages
//! wait for any member and the server's output cap is never approached. A message's latency is
//! the time from just before its `send` to the moment the last member's copy was read. Every
//! copy is checked as `broadcast/step.rs` says.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use sockloop::mio::unix::SourceFd;
use sockloop::mio::{Events, Interest, Poll, Token};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::broadcast::step::{self, parse_copy, payload, Step, STEP_TIMEOUT};
use crate::broadcast::Room;

/// Bytes of every message a sender sends.
pub const MESSAGE_SIZE: usize = 64;

type Ws = WebSocket<TcpStream>;

/// The members of one room, connected to one server.
pub struct Members {
    poll: Poll,
    events: Events,
    sockets: Vec<Ws>,
    /// `last[m][s]`: the sequence number member m last received from sender s (0: none yet).
    last: Vec<Vec<u64>>,
    /// The sequence number of the step under way; steps count from 1.
    step: u64,
}

impl Room for Members {
    /// Connects `count` members named m0, m1, ... to the chat at `addr`, and returns once every
    /// one of them has heard the last join announced ("(count here)").
    fn join(addr: SocketAddr, count: usize) -> Result<Members, String> {
        let poll = Poll::new().map_err(|e| format!("mio poll: {e}"))?;
        let mut sockets = Vec::with_capacity(count);
        for m in 0..count {
            let stream = TcpStream::connect(addr).map_err(|e| format!("m{m}: connect: {e}"))?;
            stream
                .set_nodelay(true)
                .and_then(|()| stream.set_read_timeout(Some(STEP_TIMEOUT)))
                .map_err(|e| format!("m{m}: socket options: {e}"))?;
            let url = format!("ws://{addr}/ws?name=m{m}");
            let (ws, response) =
                tungstenite::client::client_with_config(url, stream, Some(config()))
                    .map_err(|e| format!("m{m}: handshake: {e}"))?;
            if response.status() != 101 {
                return Err(format!("m{m}: handshake answered {}", response.status()));
            }
            ws.get_ref()
                .set_nonblocking(true)
                .map_err(|e| format!("m{m}: non-blocking: {e}"))?;
            poll.registry()
                .register(
                    &mut SourceFd(&ws.get_ref().as_raw_fd()),
                    Token(m),
                    Interest::READABLE,
                )
                .map_err(|e| format!("m{m}: register: {e}"))?;
            sockets.push(ws);
        }
        let mut members = Members {
            poll,
            events: Events::with_capacity(count.max(16)),
            sockets,
            last: vec![vec![0; count]; count],
            step: 0,
        };
        // Members joined one after another: member m hears the joins of m..count, the last of
        // them announcing the full room.
        let full = format!(" joined ({count} here)");
        let mut waiting: Vec<bool> = vec![true; count];
        let mut left = count;
        let mut on_text = |m: usize, text: &str| {
            if !text.starts_with("* ") {
                return Err(format!("m{m} got {text:?} before any message was sent"));
            }
            if text.ends_with(&full) && std::mem::take(&mut waiting[m]) {
                left -= 1;
            }
            Ok(left == 0)
        };
        // The handshake may have read the first announcements into tungstenite's buffer, where
        // no readiness event will report them: read every member once before waiting.
        let Members {
            poll,
            events,
            sockets,
            ..
        } = &mut members;
        let mut done = false;
        for (m, ws) in sockets.iter_mut().enumerate() {
            done |= drain(m, ws, &mut on_text)?;
        }
        if !done {
            pump(poll, events, sockets, &mut on_text)?;
        }
        Ok(members)
    }

    /// Runs one step with senders 0..`senders`; adds each message's latency (send to last
    /// copy read) to `latencies`.
    fn step(&mut self, senders: usize, latencies: &mut Vec<Duration>) -> Result<(), String> {
        let count = self.sockets.len();
        self.step += 1;
        let seq = self.step;
        let mut step = Step::new(seq, senders, count);
        for s in 0..senders {
            let text = payload(s, step.seq, MESSAGE_SIZE);
            step.sending();
            match self.sockets[s].send(Message::text(text)) {
                Ok(()) => {}
                // Lock-step leaves nothing unsent from the step before, so a full socket
                // buffer means the server stopped reading.
                Err(e) => return Err(format!("m{s}: send: {e}")),
            }
        }
        let Members {
            poll,
            events,
            sockets,
            last,
            ..
        } = self;
        let mut on_text =
            |m: usize, text: &str| on_chat(m, text, &mut last[m], &mut step, latencies);
        pump(poll, events, sockets, &mut on_text).map_err(|e| format!("step {seq}: {e}"))
    }

    /// Members in the room.
    fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Every member hears every message, its sender included.
    fn copies_per_step(&self, senders: usize) -> usize {
        senders * self.sockets.len()
    }
}

/// tungstenite's settings for a member's client.
fn config() -> WebSocketConfig {
    // tungstenite zero-fills its read buffer's size before every read, including the last one
    // of each drain that finds the socket empty: at the default 128 KiB, that would be most of
    // this thread's work. 4 KiB holds a step's 50 copies, and is what the servers read with.
    WebSocketConfig::default().read_buffer_size(4 << 10)
}

/// Checks one copy member `m` received during `step` ("m<s>: <payload>") and accounts for it;
/// true once the step is complete.
fn on_chat(
    m: usize,
    text: &str,
    last: &mut [u64],
    step: &mut Step,
    latencies: &mut Vec<Duration>,
) -> Result<bool, String> {
    let bad = || format!("m{m} got {text:?} in step {}", step.seq);
    let (name, body) = text.split_once(": ").ok_or_else(bad)?;
    let (s, seq) = parse_copy(name, body, MESSAGE_SIZE).ok_or_else(bad)?;
    step.copy(m, s, seq, last, latencies)
}

/// Waits for readiness and reads the ready members until `on_text` reports completion, within
/// [`STEP_TIMEOUT`].
fn pump(
    poll: &mut Poll,
    events: &mut Events,
    sockets: &mut [Ws],
    on_text: &mut impl FnMut(usize, &str) -> Result<bool, String>,
) -> Result<(), String> {
    step::pump(poll, events, |m| drain(m, &mut sockets[m], on_text))
}

/// Reads member `m` until its socket is empty, handing each text to `on_text`; whether
/// `on_text` reported completion.
fn drain(
    m: usize,
    ws: &mut Ws,
    on_text: &mut impl FnMut(usize, &str) -> Result<bool, String>,
) -> Result<bool, String> {
    let mut done = false;
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => done |= on_text(m, text.as_str())?,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Binary(_)) => return Err(format!("m{m} got a binary message")),
            Ok(Message::Close(frame)) => return Err(format!("m{m} was closed: {frame:?}")),
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Ok(done),
            Err(e) => return Err(format!("m{m}: {e}")),
        }
    }
}
