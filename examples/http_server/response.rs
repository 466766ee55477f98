//! The responses this server sends, written with `write!` to any `std::io::Write`: the sockloop
//! `Context` in the example (each piece is queued, and the lot leaves in one system call after
//! the callback), a `Vec<u8>` in the benchmark's tokio server.
//!
//! Every header is deterministic (no `Date`), so a test can compare whole responses.

use std::io::{self, Write};

/// The body of `GET /`.
pub const HELLO: &str = "hello from sockloop\n";

/// The statuses this server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    LengthRequired,
    PayloadTooLarge,
    UriTooLong,
    HeaderFieldsTooLarge,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::LengthRequired => 411,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
        }
    }

    /// The reason phrase of the status line.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::LengthRequired => "Length Required",
            Status::PayloadTooLarge => "Payload Too Large",
            Status::UriTooLong => "URI Too Long",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
        }
    }

    /// The plain-text body: the greeting for 200, a line naming the error otherwise.
    fn body(self) -> &'static str {
        match self {
            Status::Ok => HELLO,
            Status::BadRequest => "400 Bad Request\n",
            Status::NotFound => "404 Not Found\n",
            Status::MethodNotAllowed => "405 Method Not Allowed: only GET and HEAD\n",
            Status::LengthRequired => {
                "411 Length Required: send the body with a Content-Length, not chunked\n"
            }
            Status::PayloadTooLarge => "413 Payload Too Large\n",
            Status::UriTooLong => "414 URI Too Long\n",
            Status::HeaderFieldsTooLarge => "431 Request Header Fields Too Large\n",
        }
    }
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 keep-alive: the default, so no header.
    KeepAlive,
    /// HTTP/1.0 keep-alive, which must be confirmed: `Connection: keep-alive`.
    KeepAlive10,
    /// The server closes after this response: `Connection: close`.
    Close,
}

/// Writes one complete response. `head_only` (a `HEAD` request) leaves out the body but keeps
/// its `Content-Length`, as RFC 9110 section 9.3.2 asks.
pub fn write_response(
    out: &mut impl Write,
    status: Status,
    head_only: bool,
    persistence: Persistence,
) -> io::Result<()> {
    let body = status.body();
    let allow = if status == Status::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let connection = match persistence {
        Persistence::KeepAlive => "",
        Persistence::KeepAlive10 => "Connection: keep-alive\r\n",
        Persistence::Close => "Connection: close\r\n",
    };
    // Always HTTP/1.1 in the status line, also to an HTTP/1.0 client: a server announces the
    // highest version it supports (RFC 9110 section 6.2), and the headers keep it compatible.
    write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: sockloop\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{allow}{connection}\r\n",
        status.code(),
        status.reason(),
        body.len(),
    )?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    Ok(())
}

/// Writes the interim `100 Continue` a client sending `Expect: 100-continue` waits for.
pub fn write_continue(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
}
