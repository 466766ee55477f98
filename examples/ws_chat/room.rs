//! The chat room: who is in it, and how one message reaches all of them.
//!
//! Every member's handler holds the same `Rc<RefCell<Room>>` (one thread, so no lock). A
//! broadcast encodes the message as a WebSocket frame once and queues the same bytes on every
//! member's connection with `Context::write_to`: frames from a server are not masked (RFC 6455,
//! section 5.1), so one encoding is valid on every connection. Because all members' output is
//! queued in one place, in the order the loop handled the messages, every member sees the same
//! order.

use std::cell::RefCell;
use std::rc::Rc;

use sockloop::{ConnId, Context};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;

/// The room every member's handler shares.
pub type SharedRoom = Rc<RefCell<Room>>;

/// The members, in the order they joined.
#[derive(Default)]
pub struct Room {
    members: Vec<ConnId>,
    /// Messages broadcast so far (announcements included), for the log at exit.
    broadcasts: u64,
    /// Members who came without a name so far, to number them.
    guests: u64,
}

impl Room {
    /// A new, empty room to share between handlers.
    pub fn shared() -> SharedRoom {
        Rc::new(RefCell::new(Room::default()))
    }

    /// Adds `id`; returns how many members there are now.
    pub fn join(&mut self, id: ConnId) -> usize {
        self.members.push(id);
        self.members.len()
    }

    /// Removes `id`; returns how many members are left.
    pub fn leave(&mut self, id: ConnId) -> usize {
        self.members.retain(|&m| m != id);
        self.members.len()
    }

    /// A name for a member who gave none: `guest1`, `guest2`, ...
    pub fn guest_name(&mut self) -> String {
        self.guests += 1;
        format!("guest{}", self.guests)
    }

    /// Messages broadcast so far.
    pub fn broadcasts(&self) -> u64 {
        self.broadcasts
    }
}

/// Sends `text` to every member as one text frame.
///
/// A member whose output queue passes the listener's `max_output` (it does not read) is reset
/// by the reactor inside `write_to`; its `on_close` comes later in this loop iteration and
/// removes it. Until then the writes to it fail and are skipped: the others are not delayed.
pub fn broadcast(room: &RefCell<Room>, cx: &mut Context<'_>, text: &str) {
    let frame = text_frame(text);
    let mut room = room.borrow_mut();
    room.broadcasts += 1;
    for &member in &room.members {
        if let Err(e) = cx.write_to(member, &frame) {
            log::debug!("{member}: broadcast skipped: {e}");
        }
    }
}

/// `text` as one unmasked, final text frame, ready for the wire.
fn text_frame(text: &str) -> Vec<u8> {
    let frame = Frame::message(text.to_owned().into_bytes(), OpCode::Data(Data::Text), true);
    let mut wire = Vec::with_capacity(frame.len());
    // Formatting into a Vec cannot fail: the only errors come from the writer.
    if let Err(e) = frame.format(&mut wire) {
        log::error!("cannot encode a frame of {} bytes: {e}", text.len());
        wire.clear();
    }
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frame_is_unmasked_and_final() {
        assert_eq!(text_frame("hi"), [0x81, 0x02, b'h', b'i']);
        let long = text_frame(&"x".repeat(300));
        assert_eq!(&long[..4], [0x81, 126, 0x01, 0x2c]); // 16-bit extended length
    }
}
