//! The input view a handler parses from.

use std::io::{self, BufRead, Read};
use std::ops::Deref;

/// Bytes received on a connection and not yet consumed by its handler.
///
/// A handler consumes the prefix it could parse (with [`consume`](Self::consume),
/// [`take_prefix`](Self::take_prefix), [`take_all`](Self::take_all) or the [`Read`]/[`BufRead`] impls). Whatever
/// it leaves is kept by the reactor and offered again, followed by the next bytes to arrive, on the
/// next [`Handler::on_data`](crate::Handler::on_data) call: a message split across reads needs no
/// reassembly code in the handler.
///
/// `Input` dereferences to the unconsumed bytes.
///
/// # Examples
///
/// A line-based parser that leaves a partial line for later:
///
/// ```
/// use sockloop::Input;
///
/// let mut input = Input::new(b"PING\r\nPI");
/// let mut lines = Vec::new();
/// while let Some(end) = input.iter().position(|&b| b == b'\n') {
///     lines.push(input.take_prefix(end + 1).to_vec());
/// }
/// assert_eq!(lines, [b"PING\r\n".to_vec()]);
/// assert_eq!(&input[..], b"PI"); // kept for the next call
/// ```
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Wraps `data` as fully unconsumed input (handy for testing a handler's parser).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = sockloop::Input::new(b"abc");
    /// assert_eq!(input.len(), 3);
    /// ```
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    /// The unconsumed bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = sockloop::Input::new(b"abc");
    /// input.consume(1);
    /// assert_eq!(input.as_slice(), b"bc");
    /// ```
    pub fn as_slice(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    /// Marks the first `n` unconsumed bytes as used (at most all of them).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = sockloop::Input::new(b"abc");
    /// input.consume(10);
    /// assert!(input.is_empty());
    /// ```
    pub fn consume(&mut self, n: usize) {
        self.pos += n.min(self.data.len() - self.pos);
    }

    /// Consumes and returns the first `n` unconsumed bytes (fewer if fewer are left).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = sockloop::Input::new(b"abcdef");
    /// assert_eq!(input.take_prefix(2), b"ab");
    /// assert_eq!(input.as_slice(), b"cdef");
    /// ```
    pub fn take_prefix(&mut self, n: usize) -> &'a [u8] {
        let rest = self.as_slice();
        let n = n.min(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// Consumes and returns every unconsumed byte.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = sockloop::Input::new(b"abc");
    /// assert_eq!(input.take_all(), b"abc");
    /// assert!(input.is_empty());
    /// ```
    pub fn take_all(&mut self) -> &'a [u8] {
        let rest = self.as_slice();
        self.pos = self.data.len();
        rest
    }

    /// How many bytes have been consumed since this `Input` was handed over.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut input = sockloop::Input::new(b"abc");
    /// input.take_prefix(2);
    /// assert_eq!(input.consumed(), 2);
    /// ```
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl Deref for Input<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self.take_prefix(buf.len());
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }
}

impl BufRead for Input<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.as_slice())
    }

    fn consume(&mut self, amt: usize) {
        Input::consume(self, amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_trait_consumes_what_it_copies() {
        let mut input = Input::new(b"hello");
        let mut buf = [0u8; 3];
        assert_eq!(input.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(input.as_slice(), b"lo");
        assert_eq!(input.consumed(), 3);
    }

    #[test]
    fn bufread_lines_leave_partial_line() {
        let mut input = Input::new(b"a\nb\nc");
        let mut line = String::new();
        input.read_line(&mut line).unwrap();
        assert_eq!(line, "a\n");
        assert_eq!(input.as_slice(), b"b\nc");
    }
}
