//! The load: M members of one chat room, all on this thread, driven through lock-step rounds of
//! lines ("steps").
//!
//! Each member is a plain TCP stream, as an `nc` user's is: non-blocking, in one mio poll
//! (edge-triggered), so one thread reads every member without a thread per connection getting
//! in the way of the figures. Members m0, m1, ... join one at a time: m<k> sends its nickname
//! and the join is complete once it has been welcomed and every earlier member has heard
//! "* m<k> joined".
//!
//! In a step, senders 0..S each send one 64-byte line (newline included); the step ends when
//! every other member has read every one of them (a member does not hear its own lines). Only
//! then does the next step start, so at most S lines (about 70 bytes each) wait for any member,
//! far below the chat's 64 KiB mark past which a member is skipped. A line's latency is the time
//! from just before its `write` to the moment the last member's copy was read. Every copy is
//! checked as `broadcast/step.rs` says, and never goes to its sender. Any other line during a
//! step fails the run at once: a notice that a member missed lines (it was skipped), left or
//! was dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sockloop::mio::net::TcpStream as MioStream;
use sockloop::mio::{Events, Interest, Poll, Token};

use crate::broadcast::step::{self, parse_copy, payload, Step};
use crate::broadcast::Room;

/// Bytes of every line a sender sends, its newline included.
pub const LINE_SIZE: usize = 64;
/// Longest line a member accepts from the server (the example's limit), to catch a runaway.
const MAX_LINE: usize = 4096;

/// The members of one room, connected to one server.
pub struct Members {
    poll: Poll,
    events: Events,
    streams: Vec<MioStream>,
    /// Each member's bytes after its last complete line.
    partial: Vec<Vec<u8>>,
    /// Where every read lands before being split into lines.
    scratch: Vec<u8>,
    /// `last[m][s]`: the sequence number member m last received from sender s (0: none yet).
    last: Vec<Vec<u64>>,
    /// The sequence number of the step under way; steps count from 1.
    step: u64,
}

impl Room for Members {
    /// Connects `count` members named m0, m1, ... to the chat at `addr`, one after another.
    fn join(addr: SocketAddr, count: usize) -> Result<Members, String> {
        let mut members = Members {
            poll: Poll::new().map_err(|e| format!("mio poll: {e}"))?,
            events: Events::with_capacity(count.max(16)),
            streams: Vec::with_capacity(count),
            partial: vec![Vec::new(); count],
            scratch: vec![0; 64 << 10],
            last: vec![vec![0; count]; count],
            step: 0,
        };
        for k in 0..count {
            members.join_one(addr, k)?;
        }
        Ok(members)
    }

    /// Runs one step with senders 0..`senders`; adds each line's latency (send to last copy
    /// read) to `latencies`.
    fn step(&mut self, senders: usize, latencies: &mut Vec<Duration>) -> Result<(), String> {
        let count = self.streams.len();
        self.step += 1;
        let mut step = Step::new(self.step, senders, count - 1);
        // Copies each member has received.
        let mut heard = vec![0; count];
        for s in 0..senders {
            let line = line(s, step.seq);
            step.sending();
            send(&mut self.streams[s], s, &line)?;
        }
        let seq = step.seq;
        let mut last = std::mem::take(&mut self.last);
        let result = self
            .pump(&mut |m, line| on_copy(m, line, &mut last[m], &mut step, &mut heard, latencies));
        self.last = last;
        result.map_err(|e| {
            // Name who is short: a member the server skipped never gets its copies.
            let expected = |m: usize| senders - usize::from(m < senders);
            let short: Vec<String> = (0..count)
                .filter(|&m| heard[m] < expected(m))
                .map(|m| format!("m{m} has {} of {}", heard[m], expected(m)))
                .collect();
            match short.len() {
                0 => format!("step {seq}: {e}"),
                n => format!("step {seq}: {e}; {n} members short: {}", short.join(", ")),
            }
        })
    }

    /// Members in the room.
    fn len(&self) -> usize {
        self.streams.len()
    }

    /// A member does not hear its own lines.
    fn copies_per_step(&self, senders: usize) -> usize {
        senders * (self.streams.len() - 1)
    }
}

impl Members {
    /// Member k joins; returns once it is welcomed and every earlier member heard it join.
    fn join_one(&mut self, addr: SocketAddr, k: usize) -> Result<(), String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("m{k}: connect: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("m{k}: socket options: {e}"))?;
        let mut stream = MioStream::from_std(stream);
        // Registered before the nickname goes out, so no answer can precede it; readiness
        // already present when it is registered is reported too.
        self.poll
            .registry()
            .register(&mut stream, Token(k), Interest::READABLE)
            .map_err(|e| format!("m{k}: register: {e}"))?;
        self.streams.push(stream);
        send(&mut self.streams[k], k, format!("m{k}\n").as_bytes())?;

        let welcome = format!("* you are m{k};");
        let joined = format!("* m{k} joined");
        let mut welcomed = false;
        let mut greeted = false;
        let mut left = k;
        let mut on_line = |m: usize, line: &[u8]| {
            let bad = || {
                format!(
                    "m{m} got {:?} while m{k} joined",
                    String::from_utf8_lossy(line)
                )
            };
            if m == k {
                if line.starts_with(b"* welcome") && !greeted {
                    greeted = true;
                } else if line.starts_with(welcome.as_bytes()) && greeted && !welcomed {
                    welcomed = true;
                } else {
                    return Err(bad());
                }
            } else if line == joined.as_bytes() && left > 0 {
                left -= 1;
            } else {
                return Err(bad());
            }
            Ok(welcomed && left == 0)
        };
        self.pump(&mut on_line)
            .map_err(|e| format!("m{k} joining: {e}"))
    }

    /// Waits for readiness and reads the ready members until `on_line` reports completion,
    /// within [`step::STEP_TIMEOUT`].
    fn pump(
        &mut self,
        on_line: &mut impl FnMut(usize, &[u8]) -> Result<bool, String>,
    ) -> Result<(), String> {
        let Members {
            poll,
            events,
            streams,
            partial,
            scratch,
            ..
        } = self;
        step::pump(poll, events, |m| {
            drain(m, &mut streams[m], &mut partial[m], scratch, on_line)
        })
    }
}

/// Writes one whole line; lock-step leaves nothing unsent from before, so anything short of
/// that means the server stopped reading.
fn send(stream: &mut MioStream, m: usize, line: &[u8]) -> Result<(), String> {
    match stream.write(line) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(format!("m{m}: sent {n} of {} bytes", line.len())),
        Err(e) => Err(format!("m{m}: send: {e}")),
    }
}

/// The line sender `s` sends in step `seq`: its payload and a newline, 64 bytes.
fn line(s: usize, seq: u64) -> Vec<u8> {
    let mut line = payload(s, seq, LINE_SIZE - 1).into_bytes();
    line.push(b'\n');
    line
}

/// Checks one line member `m` received during `step` ("<m<s>> payload") and accounts for it;
/// true once the step is complete.
fn on_copy(
    m: usize,
    line: &[u8],
    last: &mut [u64],
    step: &mut Step,
    heard: &mut [usize],
    latencies: &mut Vec<Duration>,
) -> Result<bool, String> {
    let text = String::from_utf8_lossy(line);
    if text.starts_with("* ") || text.starts_with("! ") {
        // "* N lines were not sent to you ...", "* mX left", "* mX was dropped ...": the
        // server skipped or lost a member, which lock-step must never let happen.
        return Err(format!(
            "m{m} got the notice {text:?}: a member lagged or left"
        ));
    }
    let bad = || format!("m{m} got {text:?} in step {}", step.seq);
    let (name, body) = text
        .strip_prefix('<')
        .and_then(|t| t.split_once("> "))
        .ok_or_else(bad)?;
    let (s, seq) = parse_copy(name, body, LINE_SIZE - 1)
        .filter(|&(s, _)| s != m)
        .ok_or_else(bad)?;
    let done = step.copy(m, s, seq, last, latencies)?;
    heard[m] += 1;
    Ok(done)
}

/// Reads member `m` until its socket is empty, handing each complete line (without its
/// newline) to `on_line` and keeping the rest in `partial`; whether `on_line` reported
/// completion.
fn drain(
    m: usize,
    stream: &mut MioStream,
    partial: &mut Vec<u8>,
    scratch: &mut [u8],
    on_line: &mut impl FnMut(usize, &[u8]) -> Result<bool, String>,
) -> Result<bool, String> {
    let mut done = false;
    loop {
        let n = match stream.read(scratch) {
            Ok(0) => return Err(format!("m{m}: the server closed the connection")),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(done),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("m{m}: read: {e}")),
        };
        let mut data = &scratch[..n];
        if !partial.is_empty() {
            // The line that began in an earlier read.
            let Some(end) = data.iter().position(|&b| b == b'\n') else {
                partial.extend_from_slice(data);
                if partial.len() > MAX_LINE {
                    return Err(format!("m{m}: a line over {MAX_LINE} bytes"));
                }
                continue;
            };
            partial.extend_from_slice(&data[..end]);
            done |= on_line(m, partial)?;
            partial.clear();
            data = &data[end + 1..];
        }
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            done |= on_line(m, &data[..end])?;
            data = &data[end + 1..];
        }
        partial.extend_from_slice(data);
    }
}
