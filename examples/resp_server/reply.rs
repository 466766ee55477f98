//! RESP2 replies, gathered in one buffer per batch of requests.
//!
//! The replies to every request of one read are appended here and handed to the reactor in a
//! single `Context::write`, so a pipeline of a hundred commands costs one copy into the
//! connection's output queue and, after the loop iteration, one `write` system call. The
//! frequent replies are constants.

use crate::num::push_i64;

pub const OK: &[u8] = b"+OK\r\n";
pub const PONG: &[u8] = b"+PONG\r\n";
pub const NULL: &[u8] = b"$-1\r\n";
pub const ZERO: &[u8] = b":0\r\n";
pub const ONE: &[u8] = b":1\r\n";
pub const NOT_AN_INTEGER: &[u8] = b"-ERR value is not an integer or out of range\r\n";
pub const OVERFLOW: &[u8] = b"-ERR increment or decrement would overflow\r\n";
pub const SYNTAX: &[u8] = b"-ERR syntax error\r\n";

/// How much of each argument an "unknown command" error quotes, as in Redis.
const QUOTE_MAX: usize = 128;
/// A reply buffer larger than this (after a big `GET`) is freed once sent, not kept.
const KEEP_CAPACITY: usize = 1 << 20;

/// The replies of one batch of requests, not yet handed to the connection.
#[derive(Default)]
pub struct Reply {
    buf: Vec<u8>,
}

impl Reply {
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empties the buffer once its bytes were handed over; keeps a modest one warm.
    pub fn clear(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }

    /// A complete, precomputed reply.
    pub fn raw(&mut self, reply: &[u8]) {
        self.buf.extend_from_slice(reply);
    }

    /// `$<len>\r\n<bytes>\r\n`.
    pub fn bulk(&mut self, value: &[u8]) {
        self.buf.push(b'$');
        push_i64(&mut self.buf, value.len() as i64);
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// A bulk string, or the null bulk for a missing value.
    pub fn bulk_or_null(&mut self, value: Option<&[u8]>) {
        match value {
            Some(v) => self.bulk(v),
            None => self.raw(NULL),
        }
    }

    /// `*<n>\r\n`: an array of the next `n` replies.
    pub fn array_header(&mut self, n: usize) {
        self.buf.push(b'*');
        push_i64(&mut self.buf, n as i64);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `:<n>\r\n`.
    pub fn integer(&mut self, n: i64) {
        match n {
            0 => self.raw(ZERO),
            1 => self.raw(ONE),
            _ => {
                self.buf.push(b':');
                push_i64(&mut self.buf, n);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// `-ERR wrong number of arguments for '<name>' command`.
    pub fn wrong_arity(&mut self, name: &str) {
        self.buf
            .extend_from_slice(b"-ERR wrong number of arguments for '");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"' command\r\n");
    }

    /// `-ERR <message>` from pieces: Redis's `addReplyErrorFormat` formats with C strings
    /// (a NUL byte ends an argument) and turns any CR or LF into a space, so that a client's
    /// bytes quoted back cannot break the reply's framing.
    pub fn error_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(b"-ERR ");
        write(&mut self.buf);
        for b in &mut self.buf[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-ERR unknown command '<name>', with args beginning with: '<a>' '<b>' ` in Redis's
    /// words: the name and each argument quoted up to 128 bytes, arguments until 128 bytes of
    /// them were quoted.
    pub fn unknown_command<'a>(&mut self, name: &[u8], args: impl Iterator<Item = &'a [u8]>) {
        self.error_with(|out| {
            out.extend_from_slice(b"unknown command '");
            out.extend_from_slice(c_str(name, QUOTE_MAX));
            out.extend_from_slice(b"', with args beginning with: ");
            let quoted_from = out.len();
            for arg in args {
                let used = out.len() - quoted_from;
                if used >= QUOTE_MAX {
                    break;
                }
                out.push(b'\'');
                out.extend_from_slice(c_str(arg, QUOTE_MAX - used));
                out.extend_from_slice(b"' ");
            }
        });
    }
}

/// What C's `%.*s` prints of `bytes`: up to the first NUL, at most `max` bytes.
pub fn c_str(bytes: &[u8], max: usize) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end.min(max)]
}
