//! One request head, parsed with httparse, and every decision the head settles: which response
//! it gets, whether the connection stays open after it, and how long its body is. A head this
//! server will not serve is turned into the status that rejects it (the connection closes
//! after that response, since whatever follows cannot be trusted to be framed the way the
//! client meant).
//!
//! Pure functions over bytes: no I/O, so the parser is shared as-is by the sockloop handler and
//! by the tokio server the benchmark compares it with (`benches/http.rs`).

use std::mem::MaybeUninit;

use crate::response::Status;

/// Header lines one request may carry; more are answered with 431, like an oversized head.
pub const MAX_HEADERS: usize = 64;

/// What a server accepts in a request head and body.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of request line plus headers (nginx: `large_client_header_buffers 4 8k`).
    pub max_head: usize,
    /// Bytes of body, as declared by `Content-Length` (nginx: `client_max_body_size 1m`).
    pub max_body: u64,
}

/// The outcome of parsing the start of a connection's unconsumed input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet, and still within `max_head`: wait for more bytes.
    Partial,
    /// A complete head this server will answer.
    Request(Request),
    /// A head this server refuses with `Status`; the connection closes after that response.
    Reject(Status),
}

/// A complete, accepted request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head (request line, headers, blank line): where the body starts.
    pub head_len: usize,
    /// The response it gets: 200 for `GET /` and `HEAD /`, 405 for other methods on `/`, else 404.
    pub status: Status,
    /// `HEAD`: the response carries the headers of a `GET` and no body.
    pub head_only: bool,
    /// HTTP/1.0 (its keep-alive must be announced; HTTP/1.1's is the default).
    pub http10: bool,
    /// The connection stays open after the response.
    pub keep_alive: bool,
    /// Body bytes that follow the head (its `Content-Length`).
    pub body_len: u64,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
}

/// Parses the head at the start of `buf`.
///
/// The whole head is parsed again each time more of it arrives, rather than resuming where the
/// last attempt stopped: httparse has no resumable state, and the cost is bounded, because a head
/// is at most `max_head` (8 KiB) and a client that sends it a byte at a time pays a system call
/// per byte, more than the re-parse costs us, and is cut off by the header timeout.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Parsed {
    // Uninitialised slots: httparse fills only as many as the request has, so the common
    // few-header request does not pay for zeroing 64 of them.
    let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_head => {
            Parsed::Reject(too_large(buf, limits.max_head))
        }
        Ok(httparse::Status::Complete(len)) => interpret(&req, len, limits),
        // Everything in `buf` belongs to the unfinished head, so `buf` is its size so far.
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Parsed::Reject(too_large(buf, limits.max_head))
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Reject(Status::HeaderFieldsTooLarge),
        // Not HTTP/1.x, or a byte no header may contain.
        Err(_) => Parsed::Reject(Status::BadRequest),
    }
}

/// Which limit an oversized head broke: the request line alone (414, as nginx answers a long
/// URI) or the headers (431).
fn too_large(buf: &[u8], max_head: usize) -> Status {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let window = &buf[start..buf.len().min(start + max_head)];
    if window.contains(&b'\n') {
        Status::HeaderFieldsTooLarge
    } else {
        Status::UriTooLong
    }
}

/// The decisions a complete head settles.
fn interpret(req: &httparse::Request<'_, '_>, head_len: usize, limits: &Limits) -> Parsed {
    let http10 = req.version == Some(0);
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let (mut close, mut keep_alive_token, mut expect_continue) = (false, false, false);
    for header in req.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            // Two different lengths leave the body's end ambiguous: the request-smuggling case.
            match (parse_length(value), content_length) {
                (None, _) => return Parsed::Reject(Status::BadRequest),
                (Some(n), Some(seen)) if n != seen => return Parsed::Reject(Status::BadRequest),
                (Some(n), _) => content_length = Some(n),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    // Chunked request bodies are not supported: the client is asked for a Content-Length
    // (411, what nginx answered before it decoded chunked bodies). Any other coding leaves the
    // body's length unknown, which RFC 9112 section 6.3 answers with 400.
    if let Some(codings) = transfer_encoding {
        let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
        return Parsed::Reject(if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Status::LengthRequired
        } else {
            Status::BadRequest
        });
    }
    // RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host is answered with 400.
    if !http10 && hosts != 1 {
        return Parsed::Reject(Status::BadRequest);
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body {
        return Parsed::Reject(Status::PayloadTooLarge);
    }

    let method = req.method.unwrap_or_default();
    let head_only = method == "HEAD";
    let status = match (route(req.path.unwrap_or_default()), method) {
        ("/", "GET" | "HEAD") => Status::Ok,
        ("/", _) => Status::MethodNotAllowed,
        _ => Status::NotFound,
    };
    Parsed::Request(Request {
        head_len,
        status,
        head_only,
        http10,
        keep_alive: !close && (!http10 || keep_alive_token),
        body_len,
        // An HTTP/1.0 client cannot expect a 1xx response.
        expect_continue: expect_continue && !http10 && body_len > 0,
    })
}

/// The path of a request target: the absolute form (`http://host/path`, which RFC 9112 says a
/// server must accept) loses its scheme and authority, and any target its query.
fn route(target: &str) -> &str {
    let path = match target.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => {
            let rest = &target[7..];
            rest.find('/').map_or("/", |at| &rest[at..])
        }
        _ => target,
    };
    path.split_once('?').map_or(path, |(path, _query)| path)
}

/// A `Content-Length` value: decimal digits only (no sign, no list). A number too large for a
/// `u64` is still a length, just one over any limit.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, &digit| {
        n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
    }))
}
