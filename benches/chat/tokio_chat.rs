//! The peer of the benchmark: the same line chat on tokio's current-thread runtime, written the
//! way a tokio chat server usually is.
//!
//! A task per member reads its lines (`BufReader::lines` on the socket's read half) and
//! broadcasts each to the room, which holds every named member's sending end of an unbounded
//! channel. A second task per member owns the write half behind a `BufWriter`: it waits for a
//! line, takes whatever else the channel already holds, and flushes once, so a burst of lines
//! leaves in one write, as sockloop's coalesced output does. One thread, so the room is an
//! `Rc<RefCell<..>>` on a `LocalSet`, as sockloop's is, and neither side takes a lock. A line is
//! built once and its `Rc` cloned into every channel, where sockloop copies the bytes into
//! every member's output buffer.
//!
//! Behaviour matches `examples/chat` where the benchmark can see it: a greeting, then the first
//! line is the nickname (checked by the example's own `room::check_nick`, unique in any case),
//! answered "* you are NICK; here (N): a, b" while the others hear "* NICK joined"; then every
//! non-empty line goes to everyone else as "<NICK> line" (control characters replaced, as the
//! example does), and a departure is announced as "* NICK left". Not here, as the benchmark
//! uses none of it: commands (`/who`, `/quit`, ...), the 4 KiB line limit, invalid UTF-8 read
//! as U+FFFD (here it ends the member), and skipping a member that does not read (here its
//! channel grows). Lock-step load never gives sockloop's skipping anything to do, but sockloop
//! still asks `is_writable_conn` for each copy.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::broadcast::tokio_room;
use crate::room::check_nick;

/// What a member sees first (the example's words).
const GREETING: &str = "* welcome to sockloop chat. Your nickname? (up to 32 bytes, no \
spaces; /help lists the commands)\n";

/// One line on its way to members: built once, shared by every channel.
type Line = Rc<str>;

struct Entry {
    id: u64,
    nick: String,
    tx: UnboundedSender<Line>,
}

#[derive(Default)]
struct Room {
    /// The named members, in the order they joined.
    members: Vec<Entry>,
    next_id: u64,
}

type SharedRoom = Rc<RefCell<Room>>;

/// Serves the room on `addr`, printing the bound address, until the process ends (see
/// [`tokio_room::serve`]).
pub fn serve(addr: SocketAddr) -> io::Result<()> {
    tokio_room::serve(addr, member)
}

/// One connection: the nickname, then a member until it closes or fails.
async fn member(stream: TcpStream, room: SharedRoom) {
    let (read, write) = stream.into_split();
    let (tx, rx) = unbounded_channel();
    tokio::task::spawn_local(writer(write, rx));
    let _ = tx.send(Line::from(GREETING));
    let mut lines = BufReader::new(read).lines();
    let Some((id, nick)) = join(&mut lines, &room, &tx).await else {
        return;
    };
    // EOF or an error (a reset, invalid UTF-8) ends the member.
    while let Ok(Some(line)) = lines.next_line().await {
        if line.is_empty() {
            continue;
        }
        let mut message = String::with_capacity(nick.len() + line.len() + 4);
        message.push('<');
        message.push_str(&nick);
        message.push_str("> ");
        // Escape sequences could move another user's cursor: the example's rule.
        message.extend(line.chars().map(|c| {
            if c.is_control() && c != '\t' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        }));
        message.push('\n');
        broadcast(&room, Some(id), Line::from(message));
    }
    room.borrow_mut().members.retain(|m| m.id != id);
    broadcast(&room, None, Line::from(format!("* {nick} left\n")));
    // Dropping `tx` (the room's copy is gone too) ends the writer once it has sent the rest.
}

/// Reads lines until one is an acceptable nickname; adds the member to the room and announces
/// it. None if the connection ended first.
async fn join(
    lines: &mut tokio::io::Lines<BufReader<OwnedReadHalf>>,
    room: &SharedRoom,
    tx: &UnboundedSender<Line>,
) -> Option<(u64, String)> {
    loop {
        let line = lines.next_line().await.ok()??;
        if line.is_empty() {
            continue;
        }
        let nick = match check_nick(line.as_bytes()) {
            Ok(nick) => nick,
            Err(e) => {
                let _ = tx.send(Line::from(format!("! {e}; try another\n")));
                continue;
            }
        };
        let key = nick.to_lowercase();
        let mut shared = room.borrow_mut();
        if shared.members.iter().any(|m| m.nick.to_lowercase() == key) {
            drop(shared);
            let _ = tx.send(Line::from("! that nickname is taken; try another\n"));
            continue;
        }
        let mut others: Vec<&str> = shared.members.iter().map(|m| m.nick.as_str()).collect();
        others.sort_unstable_by_key(|n| n.to_lowercase());
        let welcome = match others.len() {
            0 => format!("* you are {nick}; nobody else is here yet\n"),
            n => format!("* you are {nick}; here ({n}): {}\n", others.join(", ")),
        };
        let _ = tx.send(Line::from(welcome));
        shared.next_id += 1;
        let id = shared.next_id;
        shared.members.push(Entry {
            id,
            nick: nick.to_string(),
            tx: tx.clone(),
        });
        drop(shared);
        broadcast(room, Some(id), Line::from(format!("* {nick} joined\n")));
        return Some((id, nick.to_string()));
    }
}

/// Writes a member's lines: everything queued when it wakes goes out in one flush.
async fn writer(stream: OwnedWriteHalf, mut rx: UnboundedReceiver<Line>) {
    let mut out = BufWriter::new(stream);
    while let Some(line) = rx.recv().await {
        if out.write_all(line.as_bytes()).await.is_err() {
            return;
        }
        while let Ok(line) = rx.try_recv() {
            if out.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
}

/// Queues `line` for every named member but `from`.
fn broadcast(room: &RefCell<Room>, from: Option<u64>, line: Line) {
    for member in &room.borrow().members {
        if Some(member.id) != from {
            // A member whose writer has ended refuses; its reader ends and it leaves soon.
            let _ = member.tx.send(Line::clone(&line));
        }
    }
}
