//! The scenarios of the chunking property (see `harness.rs`): what the peer sends and how it
//! splits it, what the handler consumes and does, how the peer ends; derived from arbitrary bytes
//! so that the fuzzer and the proptest explore the same space.

use std::fmt;
use std::io::{BufRead, Read};

use sockloop::Input;

/// Largest generated payload: a few KiB keeps a run in milliseconds even in one-byte writes, and
/// with a small `max_input` it is still enough to cross the input bound.
pub const MAX_PAYLOAD: usize = 6 * 1024;

/// One run: what the peer sends and how, what the handler does, how the peer ends.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub transport: Transport,
    pub payload: Payload,
    /// Sizes of the peer's writes, used in turn (each at least 1); empty: one write.
    pub chunks: Vec<usize>,
    /// `run_once(0)` calls after each write, used in turn; empty: none (writes coalesce).
    pub spins: Vec<u8>,
    /// What the handler consumes on its n-th `on_data` call, used in turn; empty: everything.
    pub consume: Vec<Consume>,
    pub reply: Reply,
    /// Write a greeting in `on_open`.
    pub greeting: bool,
    /// Something the handler does at the end of one `on_data` call.
    pub local: Option<Local>,
    pub read_closed: ReadClosed,
    /// The peer reads replies between its writes (else only once it is done sending).
    pub peer_reads_early: bool,
    pub end: PeerEnd,
    /// `ListenOptions::max_input`; `None` keeps the 1 MiB default.
    pub max_input: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
}

/// The bytes the peer sends.
#[derive(Clone)]
pub enum Payload {
    /// `len` bytes in `style`, from a seeded generator.
    Generated { style: Style, seed: u64, len: usize },
    /// These bytes (the fuzzer's own).
    Literal(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Uniform random bytes.
    Random,
    /// Short text lines ending in `\n`, for the line-reading handler.
    Lines,
    /// Frames of a length byte and that many bytes, for the framing handler.
    Frames,
}

/// How the handler consumes its input in one `on_data` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consume {
    /// `Input::take_all`.
    TakeAll,
    /// Nothing: everything is offered again with the next bytes.
    Nothing,
    /// `Input::consume(n)`.
    Advance(usize),
    /// `Input::take_prefix(n)`.
    TakePrefix(usize),
    /// One `Read::read` into an `n`-byte buffer.
    Read(usize),
    /// `Read::read_exact` of `n` bytes, if that many are there.
    ReadExact(usize),
    /// `Read::read_to_end`.
    ReadToEnd,
    /// `BufRead::fill_buf`, then `BufRead::consume(n)`.
    FillBuf(usize),
    /// `BufRead::read_until(b'\n')` for every complete line.
    Lines,
    /// Every complete frame (a length byte, then that many bytes), via `consume` + `take_prefix`.
    Frames,
}

/// What the handler writes back for each `on_data` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    None,
    /// The consumed bytes, with `Context::write`.
    Echo,
    /// A `<call:len>` tag and the consumed bytes, with `io::Write` (whose result is checked).
    Tagged,
    /// As `Tagged`, plus [`BULK_REPLY`] bytes on each of the first [`BULK_CALLS`] calls: more
    /// than loopback's socket buffers hold (over a MiB on the sending side) while the peer is
    /// not reading, so output waits in the reactor (`on_drained`, FIN or close behind it).
    Bulk,
}

/// Extra reply bytes per `on_data` call with [`Reply::Bulk`].
pub const BULK_REPLY: usize = 1 << 20;
/// Calls that add [`BULK_REPLY`] bytes; the rest reply as `Tagged` (bounds a run's output).
pub const BULK_CALLS: usize = 4;

/// A close the handler starts itself, at the end of its `at_call`-th `on_data` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub at_call: usize,
    pub action: LocalAction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalAction {
    Close,
    ShutdownWrite,
    Abort,
}

/// What the handler does in `on_read_closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadClosed {
    /// `close()`, as the default does.
    Close,
    /// Writes a trailer with the byte count, then `close()`.
    TrailerThenClose,
    /// `shutdown_write()`, which completes the close since the peer is done too.
    ShutdownWrite,
    /// Nothing; the harness then closes it with `Reactor::close`.
    LeaveOpen,
}

/// How the peer ends after its last write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEnd {
    /// `shutdown(Write)` after the usual spins, then reads to EOF.
    HalfClose,
    /// FIN straight behind the last data with no loop iteration between; on TCP corked
    /// (`TCP_CORK`) so that data and FIN leave in one segment.
    HalfCloseWithLastWrite,
    /// Closes without FIN: a reset on TCP (`SO_LINGER` 0), a plain close on a Unix socket.
    Reset,
    /// `shutdown(Write)`, a few iterations, then as `Reset`.
    HalfCloseThenReset,
}

impl Scenario {
    /// The simplest scenario for `payload`: one write, everything consumed, no replies, FIN.
    pub fn new(payload: Payload) -> Scenario {
        Scenario {
            transport: Transport::Tcp,
            payload,
            chunks: Vec::new(),
            spins: Vec::new(),
            consume: Vec::new(),
            reply: Reply::None,
            greeting: false,
            local: None,
            read_closed: ReadClosed::Close,
            peer_reads_early: false,
            end: PeerEnd::HalfClose,
            max_input: None,
        }
    }

    /// Derives a scenario from arbitrary bytes; any input is valid, missing bytes read as zero,
    /// and zero bytes pick the simplest choices (so shrinking towards zeros simplifies).
    pub fn from_bytes(data: &[u8]) -> Scenario {
        let mut b = Bytes(data);
        let flags = b.u8();
        let transport = if flags & 0b11 == 0b11 {
            Transport::Unix
        } else {
            Transport::Tcp
        };
        let end = match (flags >> 2) & 0b111 {
            0..=3 => PeerEnd::HalfClose,
            4 | 5 => PeerEnd::HalfCloseWithLastWrite,
            6 => PeerEnd::Reset,
            _ => PeerEnd::HalfCloseThenReset,
        };
        let greeting = flags & 0x20 != 0;
        let peer_reads_early = flags & 0x40 != 0;
        // The payload comes first, so that even a short input sends something.
        let shape = b.u8();
        let len = match shape % 4 {
            0 => b.u8() as usize % 16,
            1 => b.u8() as usize,
            _ => b.u16() as usize % (MAX_PAYLOAD + 1),
        };
        let seed = b.u16() as u64;
        let style = match shape >> 2 & 0b11 {
            0 => Some(Style::Random),
            1 => Some(Style::Lines),
            2 => Some(Style::Frames),
            _ => None, // the input's last bytes, below
        };
        let reply = [Reply::None, Reply::Echo, Reply::Tagged, Reply::Bulk][b.u8() as usize % 4];
        let read_closed = [
            ReadClosed::Close,
            ReadClosed::TrailerThenClose,
            ReadClosed::ShutdownWrite,
            ReadClosed::LeaveOpen,
        ][b.u8() as usize % 4];
        let max_input = match b.u8() {
            0..=191 => None,
            m => Some(1024 * (1 + m as usize % 3)),
        };
        let local = match b.u8() {
            0..=95 => None,
            l => Some(Local {
                at_call: b.u8() as usize % 8,
                action: [
                    LocalAction::Close,
                    LocalAction::ShutdownWrite,
                    LocalAction::Abort,
                ][l as usize % 5 % 3],
            }),
        };
        let chunks = (0..b.u8() % 9).map(|_| chunk_size(b.u8())).collect();
        // Mostly at least one iteration between writes (else they coalesce into one read).
        let spins = (0..=b.u8() % 4)
            .map(|_| [1, 0, 2, 3][b.u8() as usize % 4])
            .collect();
        let consume = (0..b.u8() % 6)
            .map(|_| consume_op(b.u8(), b.u8()))
            .collect();
        let payload = match style {
            Some(style) => Payload::Generated { style, seed, len },
            None => Payload::Literal(b.0[..b.0.len().min(MAX_PAYLOAD)].to_vec()),
        };
        Scenario {
            transport,
            payload,
            chunks,
            spins,
            consume,
            reply,
            greeting,
            local,
            read_closed,
            peer_reads_early,
            end,
            max_input,
        }
    }

    /// The size of the peer's `i`-th write.
    pub fn chunk(&self, i: usize) -> usize {
        match self.chunks.len() {
            0 => usize::MAX,
            n => self.chunks[i % n].max(1),
        }
    }

    /// Loop iterations after the peer's `i`-th write.
    pub fn spin(&self, i: usize) -> u8 {
        match self.spins.len() {
            0 => 0,
            n => self.spins[i % n],
        }
    }
}

/// Mostly small writes (1–16 bytes), some of up to 1 KiB, a few of up to 4 KiB.
fn chunk_size(c: u8) -> usize {
    match c {
        0..=159 => 1 + c as usize % 16,
        160..=239 => 1 + (c as usize - 160) * 13,
        _ => 1 + (c as usize - 240) * 256,
    }
}

/// A consumption step from two bytes; the top bits of `kind` scale `arg` by 1, 2, 4 or 8.
fn consume_op(kind: u8, arg: u8) -> Consume {
    let n = (arg as usize) << (kind >> 6);
    match kind % 10 {
        0 => Consume::TakeAll,
        1 => Consume::Nothing,
        2 => Consume::Advance(n),
        3 => Consume::TakePrefix(n),
        4 => Consume::Read(n),
        5 => Consume::ReadExact(n),
        6 => Consume::ReadToEnd,
        7 => Consume::FillBuf(n),
        8 => Consume::Lines,
        _ => Consume::Frames,
    }
}

/// Reads bytes off the front of the fuzzer's input; zero once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
}

impl Payload {
    pub fn bytes(&self) -> Vec<u8> {
        let (style, seed, len) = match self {
            Payload::Literal(bytes) => return bytes.clone(),
            Payload::Generated { style, seed, len } => (*style, *seed, *len),
        };
        let mut state = seed;
        // SplitMix64: deterministic, and any corruption of its output shows.
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let r = next();
            match style {
                Style::Random => out.extend_from_slice(&r.to_le_bytes()),
                Style::Lines if r % 12 == 0 => out.push(b'\n'),
                Style::Lines => out.push(b'a' + (r % 26) as u8),
                Style::Frames => {
                    let n = (r % 48) as usize;
                    out.push(n as u8);
                    out.extend((0..n).map(|i| (r >> (i % 8 * 8)) as u8 ^ i as u8));
                }
            }
        }
        out.truncate(len);
        out
    }
}

impl fmt::Debug for Payload {
    /// A literal payload is shown by length and head; the fuzzer's artifact holds all of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Generated { style, seed, len } => f
                .debug_struct("Generated")
                .field("style", style)
                .field("seed", seed)
                .field("len", len)
                .finish(),
            Payload::Literal(b) => write!(
                f,
                "Literal({} bytes: {:?}...)",
                b.len(),
                &b[..b.len().min(16)]
            ),
        }
    }
}

impl Consume {
    /// Applies this step, checks what the `Input` method itself promises, and returns the bytes
    /// it handed to the handler.
    pub fn apply(self, input: &mut Input<'_>) -> Vec<u8> {
        let len = input.len();
        match self {
            Consume::TakeAll => input.take_all().to_vec(),
            Consume::Nothing => Vec::new(),
            Consume::Advance(n) => {
                let before = input.as_slice();
                input.consume(n);
                assert_eq!(input.len(), len - n.min(len), "consume({n}) of {len}");
                before[..len - input.len()].to_vec()
            }
            Consume::TakePrefix(n) => {
                let got = input.take_prefix(n).to_vec();
                assert_eq!(got.len(), n.min(len), "take_prefix({n}) of {len}");
                got
            }
            Consume::Read(n) => {
                let mut buf = vec![0; n];
                let got = input.read(&mut buf).expect("Input::read");
                assert_eq!(got, n.min(len), "read into {n} bytes of {len}");
                buf.truncate(got);
                buf
            }
            Consume::ReadExact(n) if n <= len => {
                let mut buf = vec![0; n];
                input.read_exact(&mut buf).expect("Input::read_exact");
                buf
            }
            Consume::ReadExact(_) => Vec::new(),
            Consume::ReadToEnd => {
                let mut buf = Vec::new();
                input.read_to_end(&mut buf).expect("Input::read_to_end");
                assert!(input.is_empty(), "read_to_end left bytes");
                buf
            }
            Consume::FillBuf(n) => {
                let all = input.fill_buf().expect("Input::fill_buf").to_vec();
                assert_eq!(all.len(), len, "fill_buf did not offer everything");
                BufRead::consume(input, n.min(len));
                all[..n.min(len)].to_vec()
            }
            Consume::Lines => {
                let mut out = Vec::new();
                while input.contains(&b'\n') {
                    let start = out.len();
                    input
                        .read_until(b'\n', &mut out)
                        .expect("Input::read_until");
                    assert!(
                        out.len() > start && out.ends_with(b"\n"),
                        "read_until: no line"
                    );
                }
                out
            }
            Consume::Frames => {
                let mut out = Vec::new();
                while let Some(&n) = input.first() {
                    if input.len() < 1 + n as usize {
                        break;
                    }
                    out.push(n);
                    input.consume(1);
                    let body = input.take_prefix(n as usize);
                    assert_eq!(body.len(), n as usize, "take_prefix of a whole frame");
                    out.extend_from_slice(body);
                }
                out
            }
        }
    }
}
