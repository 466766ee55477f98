//! The slab of sources and the still-ready queue.
//!
//! Every source (listener, connection, UDP socket, foreign source) lives in one slot; its token
//! and public id carry the slot key and a generation (`src/id.rs`), so a stale event or id never
//! reaches a slot's next owner. Slots are freed only in step 4.

use mio::Token;
use slab::Slab;

use super::listeners::Listener;
use super::sources::AnySource;
use super::udp::UdpSocketEntry;
use crate::conn;
use crate::handler::Handler;
use crate::id::{unpack, ConnId, ListenerId, UdpId};

/// A connection as the engine holds it: with its handler boxed.
pub(crate) type Conn = conn::Conn<Box<dyn Handler>>;

/// Everything a slot can hold. The token space is shared, so each kind of source is a variant
/// here, not a token range.
pub(crate) enum Entry {
    // Rare, large kinds are boxed so that a slot is only as big as a connection.
    Listener(Box<Listener>),
    Conn(Conn),
    /// An outbound connect that failed before a socket could be registered; its handler hears
    /// about it (`on_close` with `ConnectFailed`) when the iteration's closes are completed.
    FailedConnect(Box<dyn Handler>, std::io::Error),
    Udp(Box<UdpSocketEntry>),
    /// A foreign source; `None` while its callback runs.
    Source(Option<Box<dyn AnySource>>),
    /// One connect attempt of an outbound connection racing several addresses.
    Attempt(Box<super::dial::Attempt>),
}

pub(crate) struct Slot {
    pub(crate) gen: u32,
    /// On the still-ready queue: set by `Slots::mark_ready`, cleared when the queue entry is
    /// served, so that a source is never on the queue twice.
    pub(crate) queued: bool,
    pub(crate) entry: Entry,
}

/// The slab, the generation counter and the still-ready queue.
pub(crate) struct Slots {
    slab: Slab<Slot>,
    next_gen: u32,
    /// Sources whose turn ended with work left (a budget, the output watermark, a resumed
    /// read), served after the next iteration's fresh events. With edge-triggered readiness no
    /// new event would come for that work. Only `mark_ready` adds to it.
    ready: Vec<Token>,
    /// The queue's previous allocation, swapped back in by `take_ready`.
    ready_spare: Vec<Token>,
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots {
            slab: Slab::new(),
            next_gen: 1,
            ready: Vec::new(),
            ready_spare: Vec::new(),
        }
    }

    /// Takes a fresh generation number for a new slot or loop timer.
    pub(crate) fn take_gen(&mut self) -> u32 {
        let gen = self.next_gen;
        self.next_gen = gen.wrapping_add(1);
        gen
    }

    /// The key the next `insert` will use (to register a socket under its token first).
    pub(crate) fn next_key(&self) -> usize {
        self.slab.vacant_key()
    }

    /// Stores `entry` under `gen` in the slot `next_key` named; returns its key.
    pub(crate) fn insert(&mut self, gen: u32, entry: Entry) -> usize {
        self.slab.insert(Slot {
            gen,
            queued: false,
            entry,
        })
    }

    /// The slot at `key` if it still has generation `gen`.
    pub(crate) fn get(&self, key: usize, gen: u32) -> Option<&Slot> {
        self.slab.get(key).filter(|s| s.gen == gen)
    }

    pub(crate) fn get_mut(&mut self, key: usize, gen: u32) -> Option<&mut Slot> {
        self.slab.get_mut(key).filter(|s| s.gen == gen)
    }

    /// The slot at `key`, whatever its generation (for step 4, which holds keys).
    pub(crate) fn by_key(&self, key: usize) -> Option<&Slot> {
        self.slab.get(key)
    }

    /// Frees the slot at `key`.
    pub(crate) fn remove(&mut self, key: usize) -> Slot {
        self.slab.remove(key)
    }

    pub(crate) fn conn(&self, id: ConnId) -> Option<&Conn> {
        match self.get(id.key(), id.gen()) {
            Some(Slot {
                entry: Entry::Conn(c),
                ..
            }) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        match self.get_mut(id.key(), id.gen()) {
            Some(Slot {
                entry: Entry::Conn(c),
                ..
            }) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn listener_mut(&mut self, id: ListenerId) -> Option<&mut Listener> {
        match self.get_mut(id.key(), id.gen()) {
            Some(Slot {
                entry: Entry::Listener(l),
                ..
            }) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn udp(&self, id: UdpId) -> Option<&UdpSocketEntry> {
        match self.get(id.key(), id.gen()) {
            Some(Slot {
                entry: Entry::Udp(u),
                ..
            }) => Some(u),
            _ => None,
        }
    }

    pub(crate) fn udp_mut(&mut self, id: UdpId) -> Option<&mut UdpSocketEntry> {
        match self.get_mut(id.key(), id.gen()) {
            Some(Slot {
                entry: Entry::Udp(u),
                ..
            }) => Some(u),
            _ => None,
        }
    }

    /// (key, generation) of every slot whose entry satisfies `kind` (for whole-reactor sweeps
    /// such as shutdown; collected so the caller can mutate while walking them).
    pub(crate) fn keys_where(&self, kind: fn(&Entry) -> bool) -> Vec<(usize, u32)> {
        self.slab
            .iter()
            .filter(|(_, s)| kind(&s.entry))
            .map(|(key, s)| (key, s.gen))
            .collect()
    }

    /// Puts the source `token` names on the still-ready queue, unless it is already there or
    /// gone; true if it was added.
    pub(crate) fn mark_ready(&mut self, token: Token) -> bool {
        let (key, gen) = unpack(token.0 as u64);
        match self.get_mut(key, gen) {
            Some(slot) if !slot.queued => {
                slot.queued = true;
                self.ready.push(token);
                true
            }
            _ => false,
        }
    }

    /// Whether anything is on the still-ready queue.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the still-ready queue for this iteration's retry pass; what is queued from now on
    /// waits for the next iteration. Hand the list back with `return_ready`.
    pub(crate) fn take_ready(&mut self) -> Vec<Token> {
        let spare = std::mem::take(&mut self.ready_spare);
        std::mem::replace(&mut self.ready, spare)
    }

    /// Keeps the allocation of a list from `take_ready` for the next iteration.
    pub(crate) fn return_ready(&mut self, mut served: Vec<Token>) {
        served.clear();
        self.ready_spare = served;
    }
}

#[cfg(test)]
mod tests {
    /// Every connection costs one slot, and the slab over-allocates by up to 2x as it grows, so
    /// the slot size is most of the user-space memory per idle connection (target: 256 bytes).
    /// Debug builds are larger (mio keeps a selector id per socket for its own checks).
    #[test]
    #[cfg(not(debug_assertions))]
    fn a_slot_stays_within_one_cache_line() {
        assert!(
            std::mem::size_of::<super::Slot>() <= 64,
            "Slot is {} bytes",
            std::mem::size_of::<super::Slot>()
        );
    }
}
