//! Connection classes: per-listener limits and connection counts.
//!
//! A connection does not carry its limits: it carries a two-byte class number. Every listener
//! has a class of its own (the limits from its [`ListenOptions`](crate::ListenOptions), and the
//! count of its open connections, which its connection limit is checked against); outbound
//! connections share class 0, which holds the defaults. This keeps a connection's slot at 64
//! bytes however many limits there are, and makes counting a listener's connections one add on
//! accept and one subtract on close.

use std::io;

use slab::Slab;

use crate::options::{Limits, DEFAULT_LIMITS};

/// The class of outbound connections (and of any connection without a listener).
pub(crate) const OUTBOUND: u16 = 0;

struct Class {
    limits: Limits,
    /// Open connections of this class.
    open: usize,
    /// Most open connections allowed (`usize::MAX`: no limit).
    max_open: usize,
    /// Its listener is gone (or it never had one: outbound connections with their own
    /// options); the class is freed when its last connection closes.
    retired: bool,
    /// Made for outbound connections ([`Classes::outbound`]), so reusable by equal options.
    outbound: bool,
}

/// All classes of a reactor; class 0 ([`OUTBOUND`]) always exists.
pub(crate) struct Classes {
    slab: Slab<Class>,
}

impl Classes {
    pub(crate) fn new() -> Classes {
        let mut slab = Slab::new();
        slab.insert(Class {
            limits: DEFAULT_LIMITS,
            open: 0,
            max_open: usize::MAX,
            retired: false,
            outbound: false,
        });
        Classes { slab }
    }

    /// Adds a class (for a new listener).
    ///
    /// # Errors
    ///
    /// An error past 65,535 live listeners, which a two-byte class number cannot name.
    pub(crate) fn add(&mut self, limits: Limits, max_open: Option<usize>) -> io::Result<u16> {
        let entry = self.slab.vacant_entry();
        let class = u16::try_from(entry.key())
            .map_err(|_| io::Error::other("too many listeners on one reactor (limit 65,535)"))?;
        entry.insert(Class {
            limits: limits.normalized(),
            open: 0,
            max_open: max_open.unwrap_or(usize::MAX),
            retired: false,
            outbound: false,
        });
        Ok(class)
    }

    /// The class for outbound connections with `limits`: class 0 for the defaults, else a live
    /// class made for equal limits, else a new one (freed with its last connection). A linear
    /// search: classes are few (one per listener and per distinct set of connect options).
    ///
    /// # Errors
    ///
    /// As [`add`](Self::add), past 65,535 classes.
    pub(crate) fn outbound(&mut self, limits: Limits) -> io::Result<u16> {
        let limits = limits.normalized();
        if limits == DEFAULT_LIMITS {
            return Ok(OUTBOUND);
        }
        if let Some((key, _)) = self
            .slab
            .iter()
            .find(|(_, c)| c.outbound && c.limits == limits)
        {
            return Ok(key as u16);
        }
        let class = self.add(limits, None)?;
        if let Some(c) = self.slab.get_mut(class as usize) {
            c.outbound = true;
            c.retired = true;
        }
        Ok(class)
    }

    pub(crate) fn limits(&self, class: u16) -> &Limits {
        self.slab
            .get(class as usize)
            .map_or(&DEFAULT_LIMITS, |c| &c.limits)
    }

    /// The class has as many open connections as it may.
    pub(crate) fn is_full(&self, class: u16) -> bool {
        self.slab
            .get(class as usize)
            .is_some_and(|c| c.open >= c.max_open)
    }

    /// (open, most allowed) for a log line.
    pub(crate) fn occupancy(&self, class: u16) -> (usize, usize) {
        self.slab
            .get(class as usize)
            .map_or((0, usize::MAX), |c| (c.open, c.max_open))
    }

    pub(crate) fn opened(&mut self, class: u16) {
        if let Some(c) = self.slab.get_mut(class as usize) {
            c.open += 1;
        }
    }

    /// A connection of `class` closed; frees the class if its listener is gone and this was the
    /// last connection.
    pub(crate) fn closed(&mut self, class: u16) {
        if let Some(c) = self.slab.get_mut(class as usize) {
            c.open = c.open.saturating_sub(1);
            if c.retired && c.open == 0 {
                self.slab.remove(class as usize);
            }
        }
    }

    /// How many classes exist, class 0 included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The listener of `class` closed: its connections keep their limits until they close.
    pub(crate) fn retire(&mut self, class: u16) {
        if class == OUTBOUND {
            return;
        }
        if let Some(c) = self.slab.get_mut(class as usize) {
            if c.open == 0 {
                self.slab.remove(class as usize);
            } else {
                c.retired = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DEFAULT_MAX_INPUT;

    #[test]
    fn a_retired_class_lives_until_its_last_connection_closes() {
        let mut classes = Classes::new();
        let limits = Limits {
            max_input: 7,
            ..Limits::default()
        };
        let c = classes.add(limits, Some(1)).unwrap();
        classes.opened(c);
        assert!(classes.is_full(c));
        classes.retire(c);
        assert_eq!(classes.limits(c).max_input, 7);
        classes.closed(c);
        assert_eq!(classes.limits(c).max_input, DEFAULT_MAX_INPUT);
        assert_eq!(
            classes.add(Limits::default(), None).unwrap(),
            c,
            "key reused"
        );
    }
}
