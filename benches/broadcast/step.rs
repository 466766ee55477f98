//! One lock-step broadcast step as the members see it: what each sender sends, every copy
//! checked as it arrives, and the wait for the last one.
//!
//! A sender's message is "sss qqqqqqqqqqqq xxx…": its member number and the step's sequence
//! number, padded to a fixed size. A copy must come from the sender its text names and carry
//! the current step's sequence number, above the last one its reader had from that sender (so
//! nothing arrives twice, late or out of order), and the step ends only once every copy is in
//! (so nothing is lost).

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use sockloop::mio::{Events, Poll};

/// Longest a step (or joining the room) may take before the benchmark gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The progress of one step, updated as copies arrive.
pub struct Step {
    pub seq: u64,
    /// When each sender's message went out.
    sent: Vec<Instant>,
    /// Copies of each sender's message still to arrive.
    remaining: Vec<usize>,
    /// Copies of all messages still to arrive.
    left: usize,
}

impl Step {
    /// Step `seq`, in which each of `senders` messages is to reach `copies` members.
    pub fn new(seq: u64, senders: usize, copies: usize) -> Step {
        Step {
            seq,
            sent: Vec::with_capacity(senders),
            remaining: vec![copies; senders],
            left: senders * copies,
        }
    }

    /// Notes that the next sender's message goes out now.
    pub fn sending(&mut self) {
        self.sent.push(Instant::now());
    }

    /// Accounts for a copy of sender `s`'s message numbered `seq` read by member `m`, whose
    /// last copy from each sender is in `last`; adds the message's latency to `latencies` once
    /// its last copy is in. True once the step is complete.
    pub fn copy(
        &mut self,
        m: usize,
        s: usize,
        seq: u64,
        last: &mut [u64],
        latencies: &mut Vec<Duration>,
    ) -> Result<bool, String> {
        if s >= self.remaining.len() || seq != self.seq || seq <= last[s] {
            return Err(format!(
                "m{m} got sequence {seq} from m{s} after {}, in step {}: lost, repeated or out of order",
                last[s], self.seq
            ));
        }
        last[s] = seq;
        self.remaining[s] -= 1;
        if self.remaining[s] == 0 {
            latencies.push(self.sent[s].elapsed());
        }
        self.left -= 1;
        Ok(self.left == 0)
    }
}

/// What sender `s` sends in step `seq`: "sss qqqqqqqqqqqq " padded with 'x' to `size` bytes.
pub fn payload(s: usize, seq: u64, size: usize) -> String {
    let mut text = format!("{s:03} {seq:012} ");
    text.extend(std::iter::repeat_n('x', size - text.len()));
    text
}

/// The sender and sequence number of a copy that the chat says came from `name` ("m<s>") with
/// `payload`, if the payload is one of [`payload`]'s, `size` bytes long, from that sender.
pub fn parse_copy(name: &str, payload: &str, size: usize) -> Option<(usize, u64)> {
    let s: usize = payload.get(..3)?.parse().ok()?;
    let seq: u64 = payload.get(4..16)?.parse().ok()?;
    let from_s = name.strip_prefix('m') == Some(&s.to_string());
    (from_s && payload.len() == size).then_some((s, seq))
}

/// Waits for readiness and reads every ready member with `read` (which reads it to the end
/// and says whether the step is complete) until the step is complete, within
/// [`STEP_TIMEOUT`].
pub fn pump(
    poll: &mut Poll,
    events: &mut Events,
    mut read: impl FnMut(usize) -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("incomplete after {STEP_TIMEOUT:?}"));
        }
        match poll.poll(events, Some(deadline - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let mut done = false;
        for event in events.iter() {
            // Every ready member is read to the end (edge-triggered), even once done.
            done |= read(event.token().0)?;
        }
        if done {
            return Ok(());
        }
    }
}
