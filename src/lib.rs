//! # sockloop
//!
//! A single-threaded, non-blocking socket reactor on [mio] (epoll on Linux). One thread runs one
//! poll loop; every listening, accepted and outbound socket is registered once, and readiness
//! events are dispatched to per-connection state machines. No thread ever blocks in `recv()` for a
//! client, so ten thousand connections cost ten thousand small structs, not ten thousand stacks.
//!
//! You write a [`Handler`] (your protocol: bytes in, bytes out, closes), the [`Reactor`] does the
//! sockets: edge-triggered reads, coalesced writes, half-close, graceful and abortive close, and
//! faults that stay local to the connection that had them.
//!
//! # Quick start
//!
//! ```
//! use sockloop::{Context, Handler, Input, Reactor};
//!
//! /// Echo: every byte that arrives is written back.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
//!         cx.write(input.take_all());
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let (_id, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Echo)?;
//! println!("echo server on {addr}");
//! // reactor.run()?; // serves until stop() is called
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The order of one loop iteration, and what one iteration does at most for each source (the
//! fairness guarantee), are documented on [`Reactor::run_once`].
//!
//! [mio]: https://docs.rs/mio

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(rust_2018_idioms)]

mod buf;
mod closing;
mod conn;
mod connect_options;
mod context;
mod core;
mod flow;
mod flush_policy;
mod handle;
mod handler;
mod id;
mod input;
mod limits;
mod listen_options;
mod listener;
mod others;
mod output;
mod pool;
mod reactor;
mod schedule;
mod settings;
mod shutdown;
mod source;
mod stats;
mod stream;
mod timer;
mod udp;

pub use connect_options::ConnectOptions;
pub use context::Context;
pub use handle::Handle;
pub use handler::{CloseReason, Handler, PanicPolicy};
pub use id::{ConnId, ListenerId, SourceId, UdpId};
pub use input::Input;
pub use listen_options::ListenOptions;
pub use pool::ReactorPool;
pub use reactor::Reactor;
pub use schedule::TimerId;
pub use source::Readiness;
pub use stats::{ClosedStats, Stats};
pub use udp::{DatagramHandler, UdpContext, UDP_QUEUE_LIMIT};

/// The `mio` crate sockloop is built on, for [`Reactor::add_source`] (`Interest`, `event::Source`,
/// `unix::pipe`, ...) without a separate dependency that must match versions.
pub use mio;

/// The README's Rust examples, compiled and run as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
