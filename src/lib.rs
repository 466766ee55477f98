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
#![warn(missing_debug_implementations)]

// The layers, top down (ARCHITECTURE.md says what each may touch):
// - the public API, readable as the spec: the files directly under src/ and `options/`;
// - `engine/`: the only code that holds the reactor's state or calls handlers;
// - `conn/`: one connection as a value, its reads and writes returned as data;
// - `sys/`: platform calls, socket options and error numbers.
mod close_reason;
mod conn;
mod context;
mod engine;
mod handle;
mod handler;
mod id;
mod input;
mod options;
mod pool;
#[cfg(feature = "proxy-protocol")]
mod proxy;
mod reactor;
mod settings;
mod sources;
mod stats;
mod sys;
mod target;
mod timers;
#[cfg(feature = "tls")]
mod tls;
mod udp;
mod udp_options;

pub use close_reason::CloseReason;
pub use context::Context;
pub use handle::Handle;
pub use handler::{Handler, PanicPolicy};
pub use id::{ConnId, ListenerId, SourceId, UdpId};
pub use input::Input;
pub use options::{ConnectOptions, ListenOptions, SocketOptions};
pub use pool::ReactorPool;
#[cfg(feature = "proxy-protocol")]
pub use proxy::{ProxyHeader, ProxyProtocol, ProxyVersion};
pub use reactor::Reactor;
pub use sources::Readiness;
pub use stats::{ClosedStats, Stats};
pub use target::Target;
pub use timers::TimerId;
#[cfg(feature = "tls")]
pub use tls::TlsInfo;
pub use udp::{DatagramHandler, UdpContext, UdpError, UDP_QUEUE_LIMIT};
pub use udp_options::UdpOptions;

/// The `mio` crate sockloop is built on, for [`Reactor::add_source`] (`Interest`, `event::Source`,
/// `unix::pipe`, ...) without a separate dependency that must match versions.
pub use mio;

/// The `socket2` crate whose `SockRef` [`SocketOptions::configure`] and
/// [`Context::socket`] hand over, for socket options sockloop does not name.
pub use socket2;

/// The `rustls` crate sockloop's TLS is built on (feature `tls`), for its configurations
/// (`ServerConfig`, `ClientConfig`) without a separate dependency that must match versions.
#[cfg(feature = "tls")]
pub use rustls;

/// The README's Rust examples, compiled and run as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's Rust examples (`docs/guide.md`), compiled and run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
