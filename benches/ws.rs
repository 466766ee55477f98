//! Broadcast through the WebSocket chat example, beside the same room on tokio with
//! tokio-tungstenite, in one run.
//!
//! ```text
//! cargo bench -p sockloop-benches --bench ws                                   # about 40 s on 2 cores
//! cargo bench -p sockloop-benches --bench ws -- --rounds 3 --senders 10        # shorter
//! cargo bench -p sockloop-benches --bench ws -- --members 200 --window 2       # other load shapes
//! cargo bench -p sockloop-benches --bench ws -- --help                         # every option
//! ```
//!
//! Servers, each this binary re-executed with `SOCKLOOP_WS_SERVER=<kind>`, pinned to CPU 0
//! (`taskset -c 0`), printing its address (port 0) and serving until its stdin closes:
//!
//! - `sockloop`: `examples/ws_chat`'s own server, room, HTTP and stream modules (included
//!   with `#[path]`) with the example's settings (1 MiB output cap per member);
//! - `tokio`: the same room on a tokio current-thread runtime with tokio-tungstenite, a task per
//!   member fed by an unbounded channel (`ws/tokio_chat.rs`).
//!
//! The load (`ws/members.rs`) runs in this process, one thread pinned to CPU 1: M members
//! (default 50) join each server once and stay for the whole run. A step: senders 0..S each
//! send one 64-byte text message, and the step ends when every member has read every copy
//! (checked: sender, sequence number, order per sender, count); then the next step starts.
//! Lock-step keeps at most S messages queued for any member, far below the output cap.
//!
//! A measurement is a short warm-up, then steps for a time window, at one S on one server. A
//! round measures every S on both servers, back to back, in an order that alternates. Figures:
//! copies delivered per second (S × M per step); server CPU µs per copy (growth of
//! `/proc/PID/task/*/schedstat`, user + kernel, over the window, divided by the copies: the
//! server is idle at both edges of the window, since every step is complete); p50 and p99 of
//! the time from a message's send to its last member's copy being read; and how busy the server
//! and the client were during the window. The tables give medians over the rounds, and ratios
//! sockloop/tokio as the median of the per-round ratios with their range.
//!
//! One step is one round trip, so msgs/s follows latency, and the client (which reads M
//! sockets and parses S × M frames per step on one CPU) is usually busier than either server:
//! CPU per copy is the figure that compares the servers' work. The machine is shared and
//! noisy; repeat a run before trusting a small difference.
//!
//! Results: the tables on stdout, `target/bench-ws/ws.csv` (medians and ratios) and
//! `target/bench-ws/ws-rounds.csv` (every measurement).
//!
//! The harness (servers in child processes, rounds, report) is `broadcast/`, shared with the
//! line chat's bench; this file says what is particular to the WebSocket chat.

#[path = "broadcast/mod.rs"]
mod broadcast;
#[path = "common/mod.rs"]
mod common;
// The example's unit tests compile here (cargo sets cfg(test) for benches) but, with no test
// harness, their `#[test]` functions are dropped and leave their imports unused.
#[allow(dead_code, unused_imports)]
#[path = "../examples/ws_chat/http.rs"]
mod http;
#[path = "ws/members.rs"]
mod members;
#[allow(dead_code, unused_imports)]
#[path = "../examples/ws_chat/room.rs"]
mod room;
#[path = "../examples/ws_chat/server.rs"]
mod server;
#[path = "../examples/ws_chat/stream.rs"]
mod stream;
#[path = "ws/tokio_chat.rs"]
mod tokio_chat;

use std::process::ExitCode;

use broadcast::Bench;
use members::{Members, MESSAGE_SIZE};

const BENCH: Bench = Bench {
    name: "ws",
    about: "The WebSocket chat example against a tokio-tungstenite room: broadcast in lock-step",
    server_env: "SOCKLOOP_WS_SERVER",
    versus: "sockloop ws_chat vs tokio-tungstenite current-thread",
    size: MESSAGE_SIZE,
    sent: "message",
    unit: "msg",
    rate_title: "throughput and server CPU",
    min_members: 1,
    max_members: None,
    // The example's server with its settings; the room it returns is only for its counters.
    sockloop: |reactor, addr| {
        server::serve(
            reactor,
            addr,
            server::listen_options(server::DEFAULT_MAX_OUTPUT),
        )
        .map(|(bound, _room)| bound)
    },
    tokio: tokio_chat::serve,
};

fn main() -> ExitCode {
    broadcast::main::<Members>(&BENCH)
}
