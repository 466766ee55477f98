//! One HTTP/1.1 connection's protocol state, without I/O: fed the connection's unconsumed input,
//! it writes the responses for every complete request in it, in order (pipelining), and says how
//! much input it used and what the connection should do next.
//!
//! Keeping it free of sockets lets the sockloop handler (`handler.rs`) and the benchmark's tokio
//! server run the very same protocol code, so the benchmark compares only the I/O underneath.

use std::io::{self, Write};

use crate::request::{parse_head, Limits, Parsed, Request};
use crate::response::{write_continue, write_response, Persistence, Status};

/// Where the connection is in its stream of requests.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Skipping the body of `request`, `left` bytes to go; it is answered once they are in.
    Body { left: u64, request: Request },
    /// A response that ends the connection was written: whatever else arrives is ignored.
    Done,
}

/// What the connection should do once the responses written by [`Session::feed`] are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep reading. `partial_head`: the unconsumed input is the start of a request head
    /// (the header timeout should run); otherwise nothing is pending but, perhaps, a body.
    Read { partial_head: bool },
    /// Close after the responses: the client asked to (`Connection: close`, HTTP/1.0), or its
    /// request was rejected with the given status.
    Close(Option<Status>),
}

/// What one call of [`Session::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used; the rest is the start of a head, to be offered again with more.
    pub consumed: usize,
    /// Request heads completed in this call.
    pub heads: usize,
    pub next: Next,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    phase: Phase,
}

impl Session {
    pub fn new(limits: Limits) -> Session {
        Session {
            limits,
            phase: Phase::Head,
        }
    }

    /// Between two requests: no body is being received, no closing response was written.
    pub fn between_requests(&self) -> bool {
        matches!(self.phase, Phase::Head)
    }

    /// Consumes complete requests (and body bytes) from `input`, writing each response to `out`
    /// as soon as its request is complete. Stops at a partial head, at the end of the input, or
    /// at a response after which the connection closes.
    ///
    /// # Errors
    ///
    /// The error of `out` (for a sockloop `Context`: the connection can no longer send).
    pub fn feed(&mut self, input: &[u8], out: &mut impl Write) -> io::Result<Progress> {
        let mut at = 0;
        let mut heads = 0;
        let progress = |consumed, heads, next| Progress {
            consumed,
            heads,
            next,
        };
        loop {
            let rest = &input[at..];
            match self.phase {
                // Nothing after a closing response is answered; the bytes are used up so that
                // they cannot count against the connection's input bound while it closes.
                Phase::Done => return Ok(progress(input.len(), heads, Next::Close(None))),
                Phase::Body { left, request } => {
                    let take = left.min(rest.len() as u64);
                    at += take as usize;
                    if take < left {
                        self.phase = Phase::Body {
                            left: left - take,
                            request,
                        };
                        return Ok(progress(
                            at,
                            heads,
                            Next::Read {
                                partial_head: false,
                            },
                        ));
                    }
                    self.answer(&request, out)?;
                }
                Phase::Head if rest.is_empty() => {
                    return Ok(progress(
                        at,
                        heads,
                        Next::Read {
                            partial_head: false,
                        },
                    ))
                }
                Phase::Head => match parse_head(rest, &self.limits) {
                    Parsed::Partial => {
                        return Ok(progress(at, heads, Next::Read { partial_head: true }))
                    }
                    Parsed::Reject(status) => {
                        self.phase = Phase::Done;
                        write_response(out, status, false, Persistence::Close)?;
                        return Ok(progress(input.len(), heads, Next::Close(Some(status))));
                    }
                    Parsed::Request(request) => {
                        at += request.head_len;
                        heads += 1;
                        if request.body_len == 0 {
                            self.answer(&request, out)?;
                        } else {
                            if request.expect_continue {
                                write_continue(out)?;
                            }
                            self.phase = Phase::Body {
                                left: request.body_len,
                                request,
                            };
                        }
                    }
                },
            }
        }
    }

    /// Writes the response to a request whose body (if any) has arrived; a request that ends
    /// the connection moves the session to `Done`.
    fn answer(&mut self, request: &Request, out: &mut impl Write) -> io::Result<()> {
        let persistence = match (request.keep_alive, request.http10) {
            (false, _) => Persistence::Close,
            (true, false) => Persistence::KeepAlive,
            (true, true) => Persistence::KeepAlive10,
        };
        self.phase = if request.keep_alive {
            Phase::Head
        } else {
            Phase::Done
        };
        write_response(out, request.status, request.head_only, persistence)
    }
}
