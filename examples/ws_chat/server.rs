//! One connection of the chat server: an HTTP request first, then, if it asked for an upgrade,
//! a member of the room speaking WebSocket.
//!
//! tungstenite does the WebSocket protocol: `WebSocketContext` parses and unmasks frames,
//! reassembles fragmented messages, checks UTF-8, enforces the size limits, answers pings with
//! pongs and close frames with close frames. It is handed a [`Io`] for the duration of each
//! callback; when it reports `WouldBlock`, the bytes so far are in its buffer and the member
//! waits for the next `on_data`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor};
use tungstenite::error::Error;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::http::{self, Route};
use crate::room::{broadcast, Room, SharedRoom};
use crate::stream::Io;

/// Longest message a member may send (and longest frame). Chat lines are short; the limit
/// bounds what tungstenite buffers for one member while a message is incomplete.
pub const MAX_MESSAGE: usize = 64 << 10;

/// Default cap on the output queued for one member: a member that stops reading is reset once
/// this much of the room's traffic waits for it, so it cannot hold the server's memory.
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 20;

/// A connection must complete its HTTP request within this time (slowloris defence). Once
/// upgraded, a member may stay silent as long as it likes.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener options of the chat: a member may have `max_output` bytes waiting for it
/// before it is reset as not reading, and a connection has 10 s for its HTTP request.
pub fn listen_options(max_output: usize) -> ListenOptions {
    // Reading pauses at the high watermark, which must sit below the cap for the cap to be the
    // one given (the reactor raises a cap below the high mark to it).
    let high = (256 << 10).min(max_output);
    ListenOptions::new()
        .output_watermarks(high / 4, high)
        .max_output(max_output)
        // Only a request head is ever left unconsumed (tungstenite takes every byte of a
        // member's frames into its own bounded buffer), and `http::route` refuses heads over
        // `MAX_REQUEST_HEAD`: this is a backstop.
        .max_input(http::MAX_REQUEST_HEAD * 2)
        .first_bytes_timeout(FIRST_REQUEST_TIMEOUT)
}

/// Listens on `addr` with `options` (from [`listen_options`], with TLS added or not: the chat
/// never knows whether its bytes are encrypted on the wire) and serves the chat on `reactor`;
/// returns the bound address and the room (for its counters).
///
/// # Errors
///
/// The error of binding the listener.
pub fn serve(
    reactor: &mut Reactor,
    addr: SocketAddr,
    options: ListenOptions,
) -> std::io::Result<(SocketAddr, SharedRoom)> {
    let room = Room::shared();
    let shared = SharedRoom::clone(&room);
    let (_, bound) = reactor.listen_with(addr, options, move || Chat::new(&shared))?;
    Ok((bound, room))
}

/// tungstenite's settings for a member.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        // The default 128 KiB read buffer per member would dwarf everything else a connection
        // costs; chat messages are small, and a larger frame still grows the buffer as needed.
        .read_buffer_size(4 << 10)
        // Frames go straight to the reactor's output queue, which is the one buffer that
        // counts (and is capped): no second buffer in tungstenite.
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// The handler of one connection.
pub struct Chat {
    room: SharedRoom,
    state: State,
}

enum State {
    /// Waiting for the request that starts every connection.
    Request,
    /// Upgraded: a member of the room, or one on its way out. Boxed: tungstenite's state is
    /// about 300 bytes, which a connection that only fetches the page need not carry.
    Member(Box<Member>),
    /// The last response or close frame is queued; whatever else arrives is dropped.
    Done,
}

struct Member {
    ws: WebSocketContext,
    name: String,
    /// Receives broadcasts. False from the moment a close frame is sent or received: RFC 6455
    /// allows no data frames after our close frame, and the peer wants none after its own.
    in_room: bool,
}

/// Whether a member's connection goes on after its frames were handled.
enum Flow {
    Continue,
    Finished,
}

impl Chat {
    fn new(room: &SharedRoom) -> Self {
        Chat {
            room: SharedRoom::clone(room),
            state: State::Request,
        }
    }

    /// Answers the first request: the page, an error, or the upgrade to a member.
    fn on_request(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let written = match http::route(input.as_slice()) {
            Route::Incomplete => return,
            Route::Page { consumed } => {
                input.consume(consumed);
                log::debug!("{}: GET /", cx.id());
                self.state = State::Done;
                http::write_page(cx)
            }
            Route::Reject { status, reason } => {
                log::info!("{}: HTTP {status}: {reason}", cx.id());
                self.state = State::Done;
                http::write_error(cx, status, &reason)
            }
            Route::Upgrade {
                consumed,
                response,
                name,
            } => {
                input.consume(consumed);
                let written = http::write_upgrade(cx, &response);
                self.join(cx, name);
                written
            }
        };
        match written {
            Ok(()) if matches!(self.state, State::Done) => cx.close(),
            Ok(()) => {}
            Err(e) => {
                log::debug!("{}: response not sent: {e}", cx.id());
                cx.abort();
            }
        }
    }

    /// Makes this connection a member and tells the room.
    fn join(&mut self, cx: &mut Context<'_>, name: String) {
        let mut room = self.room.borrow_mut();
        let name = if name.is_empty() {
            room.guest_name()
        } else {
            name
        };
        let here = room.join(cx.id());
        drop(room);
        log::info!("{}: {name} joined ({here} here)", cx.id());
        broadcast(&self.room, cx, &format!("* {name} joined ({here} here)"));
        self.state = State::Member(Box::new(Member {
            ws: WebSocketContext::new(Role::Server, Some(ws_config())),
            name,
            in_room: true,
        }));
    }
}

impl Handler for Chat {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if let State::Request = self.state {
            self.on_request(cx, input);
        }
        // A client may send its first frames right behind the handshake: they are in `input`.
        if let State::Member(member) = &mut self.state {
            if let Flow::Finished = member.on_frames(cx, input, &self.room) {
                self.state = State::Done;
            }
        }
        if let State::Done = self.state {
            // Input after the end is moot, and must not be left over: the reactor resets a
            // connection sitting on more than `max_input` unconsumed bytes, even one that is
            // closing, and the reset would destroy the response or close frame just queued.
            input.consume(input.len());
        }
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        match &mut self.state {
            // Say goodbye with a close frame and wait for the member's answer, which ends the
            // connection; the reactor's shutdown deadline covers members that never answer.
            State::Member(member) => {
                member.leave(cx, &self.room, false);
                member.close(cx, CloseCode::Away, "server shutting down");
            }
            State::Request | State::Done => cx.close(),
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        log::debug!("{}: {reason}", cx.id());
        if let State::Member(member) = &mut self.state {
            // Gone without a close handshake (reset, EOF, output cap, shutdown deadline).
            if member.in_room {
                log::info!("{}: {} disconnected: {reason}", cx.id(), member.name);
            }
            member.leave(cx, &self.room, true);
        }
    }
}

impl Member {
    /// Reads every complete message in `input`; tungstenite keeps a partial one.
    fn on_frames(
        &mut self,
        cx: &mut Context<'_>,
        input: &mut Input<'_>,
        room: &SharedRoom,
    ) -> Flow {
        loop {
            // Each read first sends what tungstenite queued on its own (a pong, the answer to
            // a close frame), then decodes the next message.
            let read = self.ws.read(&mut Io::new(input, cx));
            match read {
                Ok(Message::Text(text)) => {
                    if self.in_room {
                        log::debug!("{}: {}: {} bytes", cx.id(), self.name, text.len());
                        broadcast(room, cx, &format!("{}: {}", self.name, text.as_str()));
                    }
                }
                Ok(Message::Binary(_)) => {
                    self.fail(cx, room, CloseCode::Unsupported, "text messages only");
                    return Flow::Finished;
                }
                // A ping's pong is queued by tungstenite and sent by the next read.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(frame)) => {
                    log::debug!("{}: close frame {frame:?}", cx.id());
                    self.leave(cx, room, true);
                }
                // Everything handed over is consumed: wait for more.
                Err(Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => return Flow::Continue,
                // Both close frames are out: the server closes the TCP connection first.
                Err(Error::ConnectionClosed) => {
                    cx.close();
                    return Flow::Finished;
                }
                Err(Error::Capacity(e)) => {
                    self.fail(cx, room, CloseCode::Size, &e.to_string());
                    return Flow::Finished;
                }
                Err(Error::Utf8(_)) => {
                    self.fail(cx, room, CloseCode::Invalid, "text must be UTF-8");
                    return Flow::Finished;
                }
                Err(Error::Protocol(e)) => {
                    self.fail(cx, room, CloseCode::Protocol, &e.to_string());
                    return Flow::Finished;
                }
                // Writing failed: the connection is already closing or reset.
                Err(e) => {
                    log::debug!("{}: {e}", cx.id());
                    self.leave(cx, room, true);
                    cx.abort();
                    return Flow::Finished;
                }
            }
        }
    }

    /// Leaves the room (once) and, if `announce`, tells the others.
    fn leave(&mut self, cx: &mut Context<'_>, room: &SharedRoom, announce: bool) {
        if !std::mem::take(&mut self.in_room) {
            return;
        }
        let here = room.borrow_mut().leave(cx.id());
        log::info!("{}: {} left ({here} here)", cx.id(), self.name);
        if announce {
            broadcast(room, cx, &format!("* {} left ({here} here)", self.name));
        }
    }

    /// Fails the WebSocket connection (RFC 6455, 7.1.7): a close frame with `code`, then the
    /// TCP close, without waiting for the member's answer.
    fn fail(&mut self, cx: &mut Context<'_>, room: &SharedRoom, code: CloseCode, why: &str) {
        log::info!("{}: {} dropped: {code}: {why}", cx.id(), self.name);
        self.leave(cx, room, true);
        self.close(cx, code, why);
        cx.close();
    }

    /// Queues a close frame; the member's answer then ends the connection (`on_frames`).
    fn close(&mut self, cx: &mut Context<'_>, code: CloseCode, why: &str) {
        // A close reason must fit a control frame: 125 bytes, 2 of them for the code.
        let mut end = why.len().min(123);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code,
            reason: why[..end].to_string().into(),
        };
        let mut nothing = Input::new(&[]);
        if let Err(e) = self.ws.close(&mut Io::new(&mut nothing, cx), Some(frame)) {
            log::debug!("{}: close frame not sent: {e}", cx.id());
        }
    }
}
