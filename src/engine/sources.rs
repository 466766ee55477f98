//! Foreign sources in the engine: registration, and step 3's callbacks, which need the whole
//! reactor and so run after the connection events.

use std::io;

use mio::event::Source;
use mio::Interest;

use super::{gone, Core, Entry, Slot};
use crate::id::SourceId;
use crate::reactor::Reactor;
use crate::sources::Readiness;

/// A registered source with its callback, types erased.
pub(crate) trait AnySource {
    fn source(&mut self) -> &mut dyn Source;
    fn fire(&mut self, reactor: &mut Reactor, id: SourceId, readiness: Readiness);
}

pub(crate) struct Registered<S, F> {
    pub(crate) source: S,
    pub(crate) callback: F,
}

impl<S, F> AnySource for Registered<S, F>
where
    S: Source + 'static,
    F: FnMut(&mut Reactor, &mut S, Readiness) + 'static,
{
    fn source(&mut self) -> &mut dyn Source {
        &mut self.source
    }

    fn fire(&mut self, reactor: &mut Reactor, _id: SourceId, readiness: Readiness) {
        (self.callback)(reactor, &mut self.source, readiness)
    }
}

/// Foreign sources with readiness to report in this iteration; their callbacks need the whole
/// reactor, so they run after the connection events of step 3 (one per event).
#[derive(Default)]
pub(crate) struct SourceEvents {
    pending: Vec<(SourceId, Readiness)>,
}

impl SourceEvents {
    pub(crate) fn push(&mut self, id: SourceId, readiness: Readiness) {
        self.pending.push((id, readiness));
    }

    pub(crate) fn any(&self) -> bool {
        !self.pending.is_empty()
    }
}

impl Core {
    /// Registers a foreign source (edge-triggered) and stores it.
    pub(crate) fn add_source(
        &mut self,
        mut boxed: Box<dyn AnySource>,
        interest: Interest,
    ) -> io::Result<SourceId> {
        let gen = self.slots.take_gen();
        let id = SourceId::new(self.slots.next_key(), gen);
        self.poll
            .registry()
            .register(boxed.source(), id.token(), interest)?;
        self.slots.insert(gen, Entry::Source(Some(boxed)));
        Ok(id)
    }

    /// Deregisters and drops a foreign source. One removed from its own callback is
    /// deregistered when the callback returns.
    pub(crate) fn remove_source(&mut self, id: SourceId) -> io::Result<()> {
        if !matches!(
            self.slots.get(id.key(), id.gen()),
            Some(Slot {
                entry: Entry::Source(_),
                ..
            })
        ) {
            return Err(gone());
        }
        if let Entry::Source(Some(mut s)) = self.slots.remove(id.key()).entry {
            self.poll.registry().deregister(s.source())?;
        }
        Ok(())
    }
}

impl Reactor {
    /// Runs the callbacks of foreign sources that became ready in this iteration.
    pub(crate) fn run_source_callbacks(&mut self) {
        let pending = std::mem::take(&mut self.core.sources.pending);
        for (id, readiness) in pending {
            let taken = match self.core.slots.get_mut(id.key(), id.gen()) {
                Some(Slot {
                    entry: Entry::Source(s),
                    ..
                }) => s.take(),
                _ => None,
            };
            let Some(mut source) = taken else { continue };
            source.fire(self, id, readiness);
            let core = &mut self.core;
            match core.slots.get_mut(id.key(), id.gen()) {
                Some(Slot {
                    entry: Entry::Source(slot),
                    ..
                }) => *slot = Some(source),
                // Removed by its own callback: deregister now that we hold it again.
                _ => {
                    let _ = core.poll.registry().deregister(source.source());
                }
            }
        }
    }
}
