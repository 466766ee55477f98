//! Broadcast through the line chat example (the one for `nc` users), beside the same chat on
//! tokio's current-thread runtime, in one run.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench chat                                 # about 40 s on 2 cores
//! cargo bench -p sockloop-benches --bench chat -- --rounds 3 --senders 10      # shorter
//! cargo bench -p sockloop-benches --bench chat -- --members 200 --window 2     # other load shapes
//! cargo bench -p sockloop-benches --bench chat -- --help                       # every option
//! ```
//!
//! Servers, each this binary re-executed with `SOCKLOOP_CHAT_SERVER=<kind>`, pinned to CPU 0
//! (`taskset -c 0`), printing its address (port 0) and serving until its stdin closes:
//!
//! - `sockloop`: `examples/chat`'s own member and room modules (included with `#[path]`),
//!   listening with `member::listen` and the example's default settings (4 KiB lines, members
//!   over 64 KiB behind skipped, 1 MiB output cap);
//! - `tokio`: the same chat on a tokio current-thread runtime, a reading task and a writing task
//!   per member fed by an unbounded channel (`chat/tokio_chat.rs`).
//!
//! The load (`chat/members.rs`) runs in this process, one thread pinned to CPU 1: M members
//! (default 50) join each server once and stay for the whole run. A step: senders 0..S each
//! send one 64-byte line, and the step ends when every other member has read every copy
//! (checked: sender, sequence number, order per sender, count, never back to its sender); then
//! the next step starts. Lock-step keeps at most S lines queued for any member, far below the
//! 64 KiB past which the chat skips a member; a skip (its "lines were not sent" notice, or a
//! copy that never comes) fails the run.
//!
//! A measurement is a short warm-up, then steps for a time window, at one S on one server. A
//! round measures every S on both servers, back to back, in an order that alternates. Figures:
//! lines delivered per second (S × (M − 1) copies per step); server CPU µs per delivered line
//! (growth of `/proc/PID/task/*/schedstat`, user + kernel, over the window, divided by the
//! copies: the server is idle at both edges of the window, since every step is complete); p50
//! and p99 of the time from a line's send to its last member's copy being read; and how busy the
//! server and the client were during the window. The tables give medians over the rounds, and
//! ratios sockloop/tokio as the median of the per-round ratios with their range.
//!
//! One step is one round trip, so lines/s follows latency, and the client (which reads M
//! sockets and parses S × (M − 1) lines per step on one CPU) is often as busy as either server:
//! CPU per line is the figure that compares the servers' work. The machine is shared and noisy;
//! repeat a run before trusting a small difference.
//!
//! Results: the tables on stdout, `target/bench-chat/chat.csv` (medians and ratios) and
//! `target/bench-chat/chat-rounds.csv` (every measurement).
//!
//! The harness (servers in child processes, rounds, report) is `broadcast/`, shared with the
//! WebSocket chat's bench; this file says what is particular to the line chat.

#[path = "broadcast/mod.rs"]
mod broadcast;
#[path = "common/mod.rs"]
mod common;
#[path = "../examples/chat/member.rs"]
mod member;
#[path = "chat/members.rs"]
mod members;
// The example's unit tests compile here (cargo sets cfg(test) for benches) but, with no test
// harness, their `#[test]` functions are dropped and leave their imports unused.
#[allow(dead_code, unused_imports)]
#[path = "../examples/chat/room.rs"]
mod room;
#[path = "chat/tokio_chat.rs"]
mod tokio_chat;

use std::process::ExitCode;

use broadcast::Bench;
use members::{Members, LINE_SIZE};

const BENCH: Bench = Bench {
    name: "chat",
    about: "The line chat example against the same chat on tokio: broadcast in lock-step",
    server_env: "SOCKLOOP_CHAT_SERVER",
    versus: "sockloop chat vs tokio current-thread",
    size: LINE_SIZE,
    sent: "line",
    unit: "line",
    rate_title:
        "delivered lines (copies read by members) per second and server CPU per delivered line",
    min_members: 2,
    // Sender numbers travel as three digits.
    max_members: Some(1000),
    // The example's listener with its default settings.
    sockloop: |reactor, addr| member::listen(reactor, addr, room::Config::default()),
    tokio: tokio_chat::serve,
};

fn main() -> ExitCode {
    broadcast::main::<Members>(&BENCH)
}
