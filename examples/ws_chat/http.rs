//! The HTTP side of the chat: the one request each connection starts with.
//!
//! `GET /` answers with the chat page, `GET /ws` with the WebSocket handshake, anything else
//! with an error. tungstenite parses the request (with httparse) and checks the handshake
//! headers (`Connection: Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, a key),
//! so nothing here parses HTTP by hand. Plain HTTP responses close the connection: the page is
//! one small document, and a browser opens the WebSocket on a connection of its own anyway.

use std::io::{self, Write};

use tungstenite::error::{Error, ProtocolError};
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request, Response};

/// The chat page, compiled into the binary.
pub const PAGE: &str = include_str!("page.html");

/// Longest request head accepted; a longer one is answered with 431 and the connection closed.
pub const MAX_REQUEST_HEAD: usize = 8 << 10;

/// Longest member name kept (in characters); longer ones are cut.
const MAX_NAME: usize = 24;

/// What to do with the first request of a connection.
pub enum Route {
    /// The request is not complete yet: wait for more bytes.
    Incomplete,
    /// Serve the chat page, then close.
    Page { consumed: usize },
    /// Switch to WebSocket: send `response`, then speak frames. `name` is the member's name
    /// from `?name=` (may be empty).
    Upgrade {
        consumed: usize,
        response: Box<Response>,
        name: String,
    },
    /// Answer with this status and reason, then close.
    Reject { status: u16, reason: String },
}

/// Parses the request at the start of `head` and decides what it gets.
pub fn route(head: &[u8]) -> Route {
    let (consumed, request) = match Request::try_parse(head) {
        Ok(Some(parsed)) => parsed,
        Ok(None) if head.len() > MAX_REQUEST_HEAD => {
            return reject(431, "request head too large");
        }
        Ok(None) => return Route::Incomplete,
        Err(Error::Protocol(ProtocolError::WrongHttpMethod)) => {
            return reject(405, "only GET is served here");
        }
        Err(Error::Protocol(ProtocolError::WrongHttpVersion)) => {
            return reject(505, "HTTP/1.1 required");
        }
        Err(e) => return reject(400, &format!("bad request: {e}")),
    };
    let uri = request.uri();
    match uri.path() {
        "/" => Route::Page { consumed },
        "/ws" => match create_response(&request) {
            Ok(response) => Route::Upgrade {
                consumed,
                response: Box::new(response),
                name: uri
                    .query()
                    .and_then(|q| query_param(q, "name"))
                    .map(|n| clean_name(&n))
                    .unwrap_or_default(),
            },
            // Not a valid WebSocket handshake: say which header was wrong.
            Err(e) => reject(400, &format!("WebSocket handshake refused: {e}")),
        },
        _ => reject(404, "not found: try / for the chat page"),
    }
}

fn reject(status: u16, reason: &str) -> Route {
    Route::Reject {
        status,
        reason: reason.to_string(),
    }
}

/// Writes the 101 Switching Protocols answer.
pub fn write_upgrade(out: &mut impl Write, response: &Response) -> io::Result<()> {
    write_response(out, response).map_err(io::Error::other)
}

/// Writes the chat page as a complete response.
pub fn write_page(out: &mut impl Write) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Cache-Control: no-store\r\n\
         Connection: close\r\n\r\n{PAGE}",
        PAGE.len()
    )
}

/// Writes an error response whose body is `reason` and a newline.
pub fn write_error(out: &mut impl Write, status: u16, reason: &str) -> io::Result<()> {
    let title = match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    write!(
        out,
        "HTTP/1.1 {status} {title}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

/// The percent-decoded value of `key` in a query string (`a=1&name=bob%20b`), `+` as space.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(|h| hex_pair(h[0], h[1])) {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                // A stray '%' stays as it is.
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    // Invalid UTF-8 in a name becomes U+FFFD rather than an error: the name is cosmetic.
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    Some((hex(hi)? * 16 + hex(lo)?) as u8)
}

/// A name fit to show: no control characters, trimmed, at most [`MAX_NAME`] characters.
fn clean_name(raw: &str) -> String {
    let kept: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    kept.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            query_param("name=bob%20b&x=1", "name").as_deref(),
            Some("bob b")
        );
        assert_eq!(query_param("x=1&name=a+b", "name").as_deref(), Some("a b"));
        assert_eq!(
            query_param("name=%E2%9C%93", "name").as_deref(),
            Some("\u{2713}")
        );
        assert_eq!(query_param("name=100%", "name").as_deref(), Some("100%"));
        assert_eq!(query_param("other=1", "name"), None);
    }

    #[test]
    fn names_lose_control_characters_and_length() {
        assert_eq!(clean_name(" al\u{7}ice "), "alice");
        assert_eq!(clean_name(&"x".repeat(100)).len(), MAX_NAME);
    }
}
