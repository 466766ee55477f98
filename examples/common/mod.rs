//! What the examples share: a graceful stop on SIGINT and SIGTERM, and a summary line at exit.
//!
//! The signals arrive through signal-hook's mio source, registered in the reactor's own loop with
//! `Reactor::add_source`: the signal handler only writes a byte to a self-pipe, and the reaction
//! runs on the loop thread between two events, like any other callback. No signal thread, no
//! flag to poll.
//!
//! Cargo builds `examples/*/main.rs` as examples; this directory has no `main.rs`, so it is only
//! a module, which each example includes with `#[path = "../common/mod.rs"] mod common;`.

use std::cell::Cell;
use std::fmt::{self, Display};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use sockloop::Reactor;

/// How an example's loop ended: by a signal or on its own. Made by [`shutdown_on_signals`].
pub struct Exit {
    name: &'static str,
    /// The signal that started the shutdown; set by the signal callback, read by `main`.
    signal: Rc<Cell<Option<i32>>>,
}

/// On the first SIGINT or SIGTERM, starts `reactor.shutdown(grace)`: listeners close, each
/// handler's `on_shutdown` runs, and `run()` returns once every connection and UDP socket is
/// closed. A second signal exits the process at once, for when the first one is not enough.
/// (Where there are no Unix signals, the example runs until it is killed.)
#[cfg(unix)]
pub fn shutdown_on_signals(
    reactor: &mut Reactor,
    name: &'static str,
    grace: Duration,
) -> io::Result<Exit> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook_mio::v1_0::Signals;
    use sockloop::mio::Interest;

    let signal = Rc::new(Cell::new(None));
    let seen = Rc::clone(&signal);
    let signals = Signals::new([SIGINT, SIGTERM])?;
    reactor.add_source(
        signals,
        Interest::READABLE,
        move |reactor, signals, _ready| {
            // `pending()` drains the self-pipe, as an edge-triggered source must, and reports each
            // kind of signal once however often it arrived.
            for sig in signals.pending() {
                let sig_name = signal_name(sig).unwrap_or("signal");
                if seen.get().is_some() {
                    emit(format_args!(
                        "{name}: {sig_name} again: exiting at once: {}",
                        reactor.stats()
                    ));
                    std::process::exit(128 + sig);
                }
                log::info!(
                    "{sig_name}: shutting down within {grace:?} ({sig_name} again exits at once)"
                );
                seen.set(Some(sig));
                reactor.shutdown(grace);
            }
        },
    )?;
    Ok(Exit { name, signal })
}

/// Without Unix signals: nothing to watch; the example runs until it is killed.
#[cfg(not(unix))]
pub fn shutdown_on_signals(
    _reactor: &mut Reactor,
    name: &'static str,
    _grace: Duration,
) -> io::Result<Exit> {
    Ok(Exit {
        name,
        signal: Rc::new(Cell::new(None)),
    })
}

/// The name of signal `sig` ("SIGINT"), if it has one.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    #[cfg(unix)]
    return signal_hook::low_level::signal_name(sig);
    #[cfg(not(unix))]
    return {
        let _ = sig;
        None
    };
}

impl Exit {
    /// The signal that stopped the loop, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.signal.get()
    }

    /// Reports the end in one line: `<name>: stopped by SIGINT: <summary>` (or `finished`).
    pub fn report(&self, summary: impl Display) {
        let name = self.name;
        match self.signal() {
            Some(sig) => {
                let sig_name = signal_name(sig).unwrap_or("a signal");
                emit(format_args!("{name}: stopped by {sig_name}: {summary}"));
            }
            None => emit(format_args!("{name}: finished: {summary}")),
        }
    }
}

/// Writes a line for the operator to stderr: through the logger when it shows info messages, and
/// directly when it does not (`RUST_LOG=warn`), so the line appears exactly once either way and
/// stdout stays free for the program's own output (the client's echo).
fn emit(line: fmt::Arguments<'_>) {
    if log::log_enabled!(log::Level::Info) {
        log::info!("{line}");
    } else {
        eprintln!("{line}");
    }
}
