//! Incremental parsing of client requests: RESP2 multibulk frames and inline commands.
//!
//! A request is parsed in place, from the bytes the reactor offers, without copying: an
//! argument is a [`Span`] of those bytes. A request split across reads is left unconsumed in
//! the reactor's `Input` (which offers it again, followed by the next bytes); the parser keeps
//! how far it got, so a frame with many arguments arriving in many reads is scanned once, not
//! once per read. Only inline commands (typed in `nc` or `telnet`) are copied, because quotes
//! and escapes must be undone.
//!
//! Limits follow Redis: a length line or inline command without its line end beyond 64 KiB,
//! a bulk longer than 512 MiB (`proto-max-bulk-len`), or more than 1,048,576 arguments (Redis 6's
//! bound; Redis 7 allows up to `INT_MAX`) is a protocol error. One deliberate difference: Redis
//! skips the two bytes after a length line or bulk without looking at them, so a client that
//! miscounted goes on with a shifted stream; here they must be CRLF or the request is refused.

use crate::num::parse_i64;

/// Longest length line or inline command awaited without its line end (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;
/// Longest bulk argument (Redis's default `proto-max-bulk-len`).
pub const BULK_MAX: i64 = 512 * 1024 * 1024;
/// Most arguments in one multibulk request.
pub const ARGS_MAX: i64 = 1024 * 1024;
/// Argument slots reserved up front for a multibulk request: enough for any fixed-arity command,
/// while a hostile `*1048576` header cannot make us reserve memory for arguments never sent.
const ARGS_RESERVE: usize = 16;
/// Scratch kept between inline commands; a larger one (after a huge line) is freed.
const INLINE_KEEP: usize = 4096;
/// Argument slots kept between requests; more (after a request with many keys) are freed.
const SPANS_KEEP: usize = 1024;

/// Where one argument lies: a range of the request's bytes (multibulk) or of the parser's
/// inline scratch buffer.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    start: usize,
    end: usize,
}

/// What the parser found at the start of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A whole request of this many bytes; its arguments are [`Parser::argv`].
    Command(usize),
    /// This many bytes hold nothing to run (an empty line, `*0`, `*-1`): skip them.
    Nothing(usize),
    /// The request is not complete yet; offer the same bytes again with more behind them.
    Partial,
    /// The stream is malformed: reply with the error and close, as Redis does.
    Error(ProtocolError),
}

/// A malformed request; [`ProtocolError::message`] is Redis's text for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    TooBigInline,
    TooBigMultibulkCount,
    TooBigBulkCount,
    InvalidMultibulkLength,
    InvalidBulkLength,
    /// The byte found where a `$` bulk header should start.
    ExpectedDollar(u8),
    UnbalancedQuotes,
    /// Not Redis: a length line or a bulk not followed by CRLF (see the module docs).
    MissingCrlf,
}

impl ProtocolError {
    /// The error text, as Redis words it, without the leading `-ERR ` and the trailing CRLF.
    pub fn message(self, out: &mut Vec<u8>) {
        let text: &[u8] = match self {
            ProtocolError::TooBigInline => b"Protocol error: too big inline request",
            ProtocolError::TooBigMultibulkCount => b"Protocol error: too big mbulk count string",
            ProtocolError::TooBigBulkCount => b"Protocol error: too big bulk count string",
            ProtocolError::InvalidMultibulkLength => b"Protocol error: invalid multibulk length",
            ProtocolError::InvalidBulkLength => b"Protocol error: invalid bulk length",
            ProtocolError::UnbalancedQuotes => b"Protocol error: unbalanced quotes in request",
            ProtocolError::MissingCrlf => b"Protocol error: expected CRLF after a length or bulk",
            ProtocolError::ExpectedDollar(got) => {
                out.extend_from_slice(b"Protocol error: expected '$', got '");
                // A line end inside an error reply would break the reply's framing.
                out.push(if got == b'\r' || got == b'\n' {
                    b' '
                } else {
                    got
                });
                out.push(b'\'');
                return;
            }
        };
        out.extend_from_slice(text);
    }
}

/// One connection's parser: how far into the current request it got.
#[derive(Default)]
pub struct Parser {
    /// Multibulk arguments still to parse; 0 between requests and for inline ones.
    pending: usize,
    /// Offset from the request's start where parsing resumes: the next `$` header of a
    /// multibulk request, or how far an inline request was searched for its line end.
    cursor: usize,
    spans: Vec<Span>,
    /// True when the spans point into `inline` rather than into the request.
    is_inline: bool,
    /// Unescaped arguments of an inline request.
    inline: Vec<u8>,
}

/// The arguments of one parsed request; `get(0)` is the command name.
pub struct Argv<'a> {
    base: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Argv<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Argument `i` (panics past [`len`](Self::len), like slice indexing).
    pub fn get(&self, i: usize) -> &'a [u8] {
        let span = self.spans[i];
        &self.base[span.start..span.end]
    }

    /// The arguments from `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + '_ {
        (from..self.len()).map(move |i| self.get(i))
    }
}

impl Parser {
    /// Parses the request at the start of `data`, resuming where the last [`Step::Partial`] left
    /// off (so `data` must start where it started then). After `Command`, `Nothing` or `Error`
    /// the parser is ready for the next request.
    pub fn parse(&mut self, data: &[u8]) -> Step {
        if self.pending == 0 {
            match data.first() {
                None => return Step::Partial,
                Some(b'*') => {}
                Some(_) => return self.inline(data),
            }
            match self.multibulk_header(data) {
                Ok(Some(step)) => return step,
                Ok(None) => {}
                Err(step) => return step,
            }
        }
        while self.pending > 0 {
            match self.bulk(data) {
                Ok(true) => self.pending -= 1,
                Ok(false) => return Step::Partial,
                Err(e) => return self.fail(e),
            }
        }
        let len = self.cursor;
        self.cursor = 0;
        self.is_inline = false;
        Step::Command(len)
    }

    /// The arguments of the request just returned as [`Step::Command`]; `data` is the same
    /// slice that was given to [`parse`](Self::parse).
    pub fn argv<'a>(&'a self, data: &'a [u8]) -> Argv<'a> {
        let base = if self.is_inline {
            &self.inline[..]
        } else {
            data
        };
        Argv {
            base,
            spans: &self.spans,
        }
    }

    /// Drops what a `Command`'s arguments held; call once they are no longer needed.
    pub fn done(&mut self) {
        self.spans.clear();
        // One DEL of a million keys must not pin 16 MiB of spans for the connection's life.
        if self.spans.capacity() > SPANS_KEEP {
            self.spans = Vec::new();
        }
        if self.inline.capacity() > INLINE_KEEP {
            self.inline = Vec::new();
        }
    }

    fn fail(&mut self, e: ProtocolError) -> Step {
        *self = Parser::default();
        Step::Error(e)
    }

    /// `*<count>\r\n`. `Ok(Some(step))` ends the request here (empty, partial), `Ok(None)` goes
    /// on to the bulks.
    fn multibulk_header(&mut self, data: &[u8]) -> Result<Option<Step>, Step> {
        let (value, next) = match line(data, 1) {
            Line::Partial if data.len() > INLINE_MAX => {
                return Err(self.fail(ProtocolError::TooBigMultibulkCount))
            }
            Line::Partial => return Ok(Some(Step::Partial)),
            Line::NoLf => return Err(self.fail(ProtocolError::MissingCrlf)),
            Line::Done(value, next) => (value, next),
        };
        match parse_i64(value) {
            Some(n) if n <= 0 => Ok(Some(Step::Nothing(next))),
            Some(n) if n <= ARGS_MAX => {
                self.pending = n as usize;
                self.cursor = next;
                self.spans.clear();
                self.spans.reserve(self.pending.min(ARGS_RESERVE));
                Ok(None)
            }
            _ => Err(self.fail(ProtocolError::InvalidMultibulkLength)),
        }
    }

    /// `$<len>\r\n<bytes>\r\n` at the cursor: `Ok(true)` parsed one argument, `Ok(false)` it
    /// is not all here yet (the cursor stays on its header, which is re-read next time: a few
    /// bytes, however long the bulk).
    fn bulk(&mut self, data: &[u8]) -> Result<bool, ProtocolError> {
        let at = self.cursor;
        let (value, body) = match line(data, at + 1) {
            Line::Partial if data.len() - at > INLINE_MAX => {
                return Err(ProtocolError::TooBigBulkCount)
            }
            Line::Partial => return Ok(false),
            Line::NoLf => return Err(ProtocolError::MissingCrlf),
            Line::Done(value, body) => (value, body),
        };
        if data[at] != b'$' {
            return Err(ProtocolError::ExpectedDollar(data[at]));
        }
        let len = match parse_i64(value) {
            Some(n) if (0..=BULK_MAX).contains(&n) => n as usize,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        let end = body + len;
        if data.len() < end + 2 {
            return Ok(false);
        }
        if &data[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::MissingCrlf);
        }
        self.spans.push(Span { start: body, end });
        self.cursor = end + 2;
        Ok(true)
    }

    /// A line of space-separated arguments, as typed into `nc` or `telnet`.
    fn inline(&mut self, data: &[u8]) -> Step {
        // Only the bytes after what an earlier call searched can hold the line end.
        let Some(nl) = data[self.cursor..].iter().position(|&b| b == b'\n') else {
            if data.len() > INLINE_MAX {
                return self.fail(ProtocolError::TooBigInline);
            }
            self.cursor = data.len();
            return Step::Partial;
        };
        let nl = self.cursor + nl;
        self.cursor = 0;
        let line = match data[..nl].strip_suffix(b"\r") {
            Some(line) => line,
            None => &data[..nl],
        };
        self.spans.clear();
        self.inline.clear();
        if split_args(line, &mut self.inline, &mut self.spans).is_err() {
            return self.fail(ProtocolError::UnbalancedQuotes);
        }
        if self.spans.is_empty() {
            return Step::Nothing(nl + 1);
        }
        self.is_inline = true;
        Step::Command(nl + 1)
    }
}

enum Line<'a> {
    /// No `\r` yet, or nothing after it.
    Partial,
    /// `\r` followed by something other than `\n`.
    NoLf,
    /// The bytes from `from` to the `\r`, and the offset after the `\n`.
    Done(&'a [u8], usize),
}

/// The CRLF-terminated line starting at `from` (a length line: a few bytes).
fn line(data: &[u8], from: usize) -> Line<'_> {
    let Some(tail) = data.get(from..) else {
        return Line::Partial;
    };
    let Some(cr) = tail.iter().position(|&b| b == b'\r') else {
        return Line::Partial;
    };
    let cr = from + cr;
    match data.get(cr + 1) {
        None => Line::Partial,
        Some(b'\n') => Line::Done(&data[from..cr], cr + 2),
        Some(_) => Line::NoLf,
    }
}

/// Splits an inline command into arguments as Redis's `sdssplitargs` does: spaces separate,
/// `"..."` takes the escapes `\n \r \t \b \a \xHH` and `\<any>`, `'...'` takes `\'`, a closing
/// quote must be followed by a space or the end, and (as in C) a NUL byte ends the line.
/// The unescaped arguments are appended to `buf`, their places to `spans`.
fn split_args(line: &[u8], buf: &mut Vec<u8>, spans: &mut Vec<Span>) -> Result<(), ()> {
    // Past the end reads as NUL, which is what `sdssplitargs` sees at the end of its C string.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(());
        }
        let start = buf.len();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\' && at(p + 1) == b'x' && hex(at(p + 2)).is_some() {
                    if let (Some(hi), Some(lo)) = (hex(at(p + 2)), hex(at(p + 3))) {
                        buf.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && at(p + 1) != 0 {
                    buf.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                    continue;
                }
                match c {
                    b'"' => {
                        if at(p + 1) != 0 && !is_space(at(p + 1)) {
                            return Err(());
                        }
                        p += 1;
                        break;
                    }
                    0 => return Err(()), // unterminated quotes
                    _ => buf.push(c),
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    buf.push(b'\'');
                    p += 2;
                    continue;
                }
                match c {
                    b'\'' => {
                        if at(p + 1) != 0 && !is_space(at(p + 1)) {
                            return Err(());
                        }
                        p += 1;
                        break;
                    }
                    0 => return Err(()),
                    _ => buf.push(c),
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => buf.push(c),
                }
            }
            p += 1;
        }
        spans.push(Span {
            start,
            end: buf.len(),
        });
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parser: &Parser, data: &[u8]) -> Vec<Vec<u8>> {
        let argv = parser.argv(data);
        argv.iter_from(0).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn multibulk_request_resumes_after_every_split() {
        let frame = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut parser = Parser::default();
        for cut in 0..frame.len() {
            assert_eq!(parser.parse(&frame[..cut]), Step::Partial, "cut at {cut}");
        }
        assert_eq!(parser.parse(frame), Step::Command(frame.len()));
        assert_eq!(args(&parser, frame), [&b"SET"[..], b"k", b"hello"]);
    }

    #[test]
    fn inline_quotes_and_escapes_follow_sdssplitargs() {
        let mut parser = Parser::default();
        let data = b"SET a\"b c\" \"x\\x41\\ny\" 'it\\'s'\r\n";
        assert_eq!(parser.parse(data), Step::Command(data.len()));
        assert_eq!(
            args(&parser, data),
            [&b"SET"[..], b"ab c", b"xA\ny", b"it's"]
        );
        parser.done();
        assert_eq!(
            parser.parse(b"GET \"a\"b\r\n"),
            Step::Error(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(parser.parse(b" \r\n"), Step::Nothing(3));
    }

    #[test]
    fn malformed_headers_are_protocol_errors() {
        let cases: [(&[u8], ProtocolError); 5] = [
            (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1048577\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n:3\r\n", ProtocolError::ExpectedDollar(b':')),
            (b"*1\r\n$536870913\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$4\r\nPINGxx", ProtocolError::MissingCrlf),
        ];
        for (data, want) in cases {
            assert_eq!(Parser::default().parse(data), Step::Error(want));
        }
    }
}
