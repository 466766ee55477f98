//! Identifiers for the sources a reactor owns, and their mapping to mio tokens.
//!
//! Every source lives in one slab slot. Its public id and its mio token both carry the slot key in
//! the low 32 bits and a generation number in the high 32 bits. A slot that is freed and reused gets
//! a new generation, so an old id (kept by a chat room, say) or a stale event from the same poll
//! batch can never reach the slot's new owner: the lookup compares generations and finds nothing.

use std::fmt;

use mio::Token;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("sockloop packs (slot, generation) into a mio Token and needs a 64-bit target");

/// Wakes `poll()` from another thread; no slot can have this token because slot keys stay below
/// `u32::MAX`.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Packs a slot key and its generation into one token value.
pub(crate) fn pack(key: usize, gen: u32) -> u64 {
    debug_assert!(key < u32::MAX as usize);
    ((gen as u64) << 32) | key as u64
}

/// Splits a token value into (slot key, generation).
pub(crate) fn unpack(raw: u64) -> (usize, u32) {
    ((raw & 0xffff_ffff) as usize, (raw >> 32) as u32)
}

/// Identifies one TCP connection of a [`Reactor`](crate::Reactor).
///
/// Ids stay unique for the reactor's lifetime in practice: when a connection closes, its id is
/// never handed to a later connection until its slot's 32-bit generation wraps. Writing to a
/// closed connection's id fails with [`io::ErrorKind::NotFound`](std::io::ErrorKind::NotFound).
///
/// # Examples
///
/// ```
/// use sockloop::{Context, Handler, Input, Reactor};
///
/// struct Quiet;
/// impl Handler for Quiet {
///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
///         input.consume(input.len());
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (_, addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Quiet)?;
/// let a = reactor.connect(addr, Quiet);
/// let b = reactor.connect(addr, Quiet);
/// assert_ne!(a, b);
/// println!("opened {a} and {b}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

/// Identifies one listening socket of a [`Reactor`](crate::Reactor).
///
/// # Examples
///
/// ```
/// use sockloop::{Context, Handler, Input, Reactor};
///
/// struct Sink;
/// impl Handler for Sink {
///     fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
///         input.consume(input.len());
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let (id, _addr) = reactor.listen("127.0.0.1:0".parse().unwrap(), || Sink)?;
/// reactor.close_listener(id)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub(crate) u64);

/// Identifies a UDP socket of a [`Reactor`](crate::Reactor).
///
/// # Examples
///
/// See [`Reactor::bind_udp`](crate::Reactor::bind_udp).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpId(pub(crate) u64);

/// Identifies a foreign source registered with [`Reactor::add_source`](crate::Reactor::add_source).
///
/// # Examples
///
/// See [`Reactor::add_source`](crate::Reactor::add_source).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub(crate) u64);

macro_rules! id_common {
    ($t:ident, $prefix:literal) => {
        impl $t {
            pub(crate) fn new(key: usize, gen: u32) -> Self {
                $t(pack(key, gen))
            }

            pub(crate) fn key(self) -> usize {
                unpack(self.0).0
            }

            pub(crate) fn gen(self) -> u32 {
                unpack(self.0).1
            }

            pub(crate) fn token(self) -> Token {
                Token(self.0 as usize)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (key, gen) = unpack(self.0);
                write!(f, concat!($prefix, "{}.{}"), key, gen)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

id_common!(ConnId, "conn#");
id_common!(ListenerId, "listener#");
id_common!(UdpId, "udp#");
id_common!(SourceId, "source#");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_key_and_generation() {
        let raw = pack(12345, 0xdead_beef);
        assert_eq!(unpack(raw), (12345, 0xdead_beef));
        let id = ConnId::new(7, 3);
        assert_eq!((id.key(), id.gen()), (7, 3));
        assert_eq!(id.to_string(), "conn#7.3");
    }

    #[test]
    fn waker_token_never_matches_a_slot() {
        let (key, _) = unpack(WAKER.0 as u64);
        assert_eq!(key, u32::MAX as usize);
    }
}
