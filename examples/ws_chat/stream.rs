//! The byte stream tungstenite speaks through: the input a callback was handed, and the
//! connection's output queue.
//!
//! tungstenite drives a WebSocket over any `Read + Write`. Its `WebSocketContext` takes that
//! stream as an argument on every call instead of owning it, so a member can lend it one that
//! lives only for the duration of one callback: reads take the bytes the reactor handed to
//! `on_data`, writes queue on the connection through the `Context`. Nothing here blocks or
//! touches the socket; the reactor stays the only owner of it.

use std::io::{self, ErrorKind, Read, Write};

use sockloop::{Context, Input};

/// One callback's view of a connection as a non-blocking stream, for tungstenite.
///
/// `read` returns `WouldBlock` once the input is used up: tungstenite then keeps any partial
/// frame in its own buffer and reports `WouldBlock`, which the member reads as "wait for the
/// next `on_data`". It never returns `Ok(0)`, because tungstenite would take that for the peer
/// closing the connection; EOF is the reactor's to report (`on_read_closed`).
pub struct Io<'s, 'i, 'c> {
    input: &'s mut Input<'i>,
    cx: &'s mut Context<'c>,
}

impl<'s, 'i, 'c> Io<'s, 'i, 'c> {
    /// A stream reading from `input` and writing to `cx`'s connection.
    pub fn new(input: &'s mut Input<'i>, cx: &'s mut Context<'c>) -> Self {
        Io { input, cx }
    }
}

impl Read for Io<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            // Everything handed over is in tungstenite's buffer now; more comes with the next
            // `on_data`.
            return Err(ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Io<'_, '_, '_> {
    /// Queues all of `buf` on the connection (the reactor sends it when the callback returns);
    /// `BrokenPipe` once the connection no longer sends. Never `WouldBlock`: the reactor's
    /// output queue, bounded by `max_output`, is where slow readers are dealt with.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.cx.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
