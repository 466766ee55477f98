//! The peer of the benchmark: the same chat room on tokio's current-thread runtime with
//! tokio-tungstenite, written the way tokio-tungstenite's own chat server example is.
//!
//! A task per member owns its `WebSocketStream`, split into a reading half, which broadcasts
//! every text message to the room, and a writing half fed by an unbounded channel
//! (`rx.forward(sink)`: it queues frames while the channel has more and flushes when it runs
//! dry, so a burst of broadcasts leaves in one write, as sockloop's coalesced output does).
//! The room holds each member's sender. One thread, so the room is an `Rc<RefCell<..>>` on a
//! `LocalSet`, like sockloop's, and there is no lock on either side. A broadcast builds the
//! text once and clones the message into every channel (a reference count: its payload is
//! `Bytes`); each member's sink then encodes its own frame.
//!
//! Behaviour matches `examples/ws_chat` where the benchmark can see it: the member's name comes
//! from `?name=` (parsed by the example's own `http::query_param`), every member, the sender
//! included, receives "name: text", and joins and departures are announced as
//! "* name joined (N here)" and "* name left (N here)". It serves only the WebSocket upgrade
//! (no page, no error responses), with the example's tungstenite settings but for the write
//! buffer (see [`config`]).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::{future, pin_mut, StreamExt, TryStreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::accept_hdr_async_with_config;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::broadcast::tokio_room;
use crate::http::query_param;
use crate::server::MAX_MESSAGE;

#[derive(Default)]
struct Room {
    /// Each member's id and the sending end of its channel, in the order they joined.
    members: Vec<(u64, UnboundedSender<Message>)>,
    next_id: u64,
}

type SharedRoom = Rc<RefCell<Room>>;

/// Serves the room on `addr`, printing the bound address, until the process ends (see
/// [`tokio_room::serve`]).
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    tokio_room::serve(addr, member)
}

/// One connection: the handshake, then a member until either side ends it.
async fn member(stream: TcpStream, room: SharedRoom) {
    let mut name = String::new();
    // tungstenite's `Callback` fixes this signature, large error type included.
    #[allow(clippy::result_large_err)]
    let read_name = |request: &Request, response: Response| {
        name = request
            .uri()
            .query()
            .and_then(|q| query_param(q, "name"))
            .unwrap_or_default();
        Ok::<_, ErrorResponse>(response)
    };
    let accepted = accept_hdr_async_with_config(stream, read_name, Some(config())).await;
    let Ok(ws) = accepted else {
        return;
    };
    let (tx, rx) = unbounded();
    let (id, here) = {
        let mut room = room.borrow_mut();
        room.next_id += 1;
        let id = room.next_id;
        room.members.push((id, tx));
        (id, room.members.len())
    };
    if name.is_empty() {
        name = format!("guest{id}");
    }
    broadcast(&room, format!("* {name} joined ({here} here)"));

    let (outgoing, incoming) = ws.split();
    let from_member = incoming.try_for_each(|message| {
        if let Message::Text(text) = &message {
            broadcast(&room, format!("{name}: {}", text.as_str()));
        }
        future::ok(())
    });
    let to_member = rx.map(Ok).forward(outgoing);
    pin_mut!(from_member, to_member);
    // Either half ending (close frame, EOF, error) ends the member.
    future::select(from_member, to_member).await;

    let here = {
        let mut room = room.borrow_mut();
        room.members.retain(|(m, _)| *m != id);
        room.members.len()
    };
    broadcast(&room, format!("* {name} left ({here} here)"));
}

/// tungstenite's settings for a member: the example's (`server.rs`), but for the write buffer.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        // tungstenite zero-fills this much of its read buffer before every read attempt, even
        // one that finds the socket empty, and a member's task tries to read each time it is
        // woken to write: at the default 128 KiB, that memset was two thirds of this server's
        // CPU per broadcast copy. The example reads 4 KiB at a time too.
        .read_buffer_size(4 << 10)
        // Kept at its default (128 KiB): frames gather there and leave in one write per flush.
        // The example's 0 would make tokio-tungstenite write every frame by itself.
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Queues `text` for every member.
fn broadcast(room: &RefCell<Room>, text: String) {
    let message = Message::text(text);
    for (_, tx) in &room.borrow().members {
        // A member whose task is ending refuses; it leaves the room right after.
        let _ = tx.unbounded_send(message.clone());
    }
}
