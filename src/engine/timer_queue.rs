//! A timer queue ordered by `(deadline, sequence)`.
//!
//! Timers live in a slab (O(1) cancel by key) and are ordered by a binary heap of
//! `(deadline, seq, key)`. Cancelling only frees the slab entry; its heap entry is skipped when it
//! reaches the top (the `seq` no longer matches), and the heap is rebuilt when dead entries
//! outnumber live ones, so churn cannot grow it without bound. Set and expire are O(log n), cancel
//! is O(1) amortised; a timing wheel would make set O(1) too but is not needed below ~100k timers.
//! The sequence number makes equal deadlines fire in the order they were set.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// Names one armed timer: its slab key plus the sequence number that guards against reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TimerKey {
    key: usize,
    seq: u64,
}

struct Armed<T> {
    seq: u64,
    action: T,
}

pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    armed: Slab<Armed<T>>,
    next_seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            armed: Slab::new(),
            next_seq: 0,
        }
    }
}

impl<T> Timers<T> {
    /// Arms a timer that fires `action` at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, action: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.armed.insert(Armed { seq, action });
        self.heap.push(Reverse((deadline, seq, key)));
        TimerKey { key, seq }
    }

    /// Disarms a timer; returns its action if it had not fired or been cancelled yet.
    pub(crate) fn cancel(&mut self, t: TimerKey) -> Option<T> {
        match self.armed.get(t.key) {
            Some(a) if a.seq == t.seq => {
                let action = self.armed.remove(t.key).action;
                self.compact_if_sparse();
                Some(action)
            }
            _ => None,
        }
    }

    /// Number of armed timers.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }

    /// The earliest deadline of an armed timer, dropping cancelled entries from the top.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, seq, key))) = self.heap.peek().copied() {
            if self.is_live(seq, key) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Time from `now` to the earliest deadline, rounded up to whole milliseconds (epoll's
    /// resolution) so that a wait never ends just before the deadline and spins.
    pub(crate) fn timeout(&mut self, now: Instant) -> Option<Duration> {
        self.next_deadline().map(|d| {
            let left = d.saturating_duration_since(now);
            let ms = left.as_nanos().div_ceil(1_000_000);
            Duration::from_millis(ms as u64)
        })
    }

    /// The sequence number the next armed timer will get: pass it to
    /// [`pop_expired`](Self::pop_expired) to leave timers armed from now on for later.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Removes and returns the earliest timer due at `now` that was armed before sequence
    /// `limit`, if any.
    pub(crate) fn pop_expired(&mut self, now: Instant, limit: u64) -> Option<(TimerKey, T)> {
        while let Some(Reverse((deadline, seq, key))) = self.heap.peek().copied() {
            if !self.is_live(seq, key) {
                self.heap.pop();
                continue;
            }
            if deadline > now || seq >= limit {
                return None;
            }
            self.heap.pop();
            return Some((TimerKey { key, seq }, self.armed.remove(key).action));
        }
        None
    }

    fn is_live(&self, seq: u64, key: usize) -> bool {
        self.armed.get(key).is_some_and(|a| a.seq == seq)
    }

    fn compact_if_sparse(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.armed.len() {
            let armed = &self.armed;
            self.heap
                .retain(|Reverse((_, seq, key))| armed.get(*key).is_some_and(|a| a.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut t = Timers::default();
        let now = Instant::now();
        for i in 0..10 {
            t.insert(now, i);
        }
        let fired: Vec<_> =
            std::iter::from_fn(|| t.pop_expired(now, u64::MAX).map(|(_, a)| a)).collect();
        assert_eq!(fired, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn cancelled_timer_never_fires_and_its_key_is_not_reused_by_accident() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.insert(now, "a");
        assert_eq!(t.cancel(a), Some("a"));
        let b = t.insert(now, "b");
        assert_eq!(
            t.cancel(a),
            None,
            "a stale key must not cancel the slot's new timer"
        );
        assert_eq!(t.pop_expired(now, u64::MAX).map(|(_, a)| a), Some("b"));
        assert_eq!(t.cancel(b), None);
    }

    #[test]
    fn timeout_rounds_up_and_later_timers_wait() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.insert(now + Duration::from_micros(1500), ());
        assert_eq!(t.timeout(now), Some(Duration::from_millis(2)));
        assert_eq!(t.pop_expired(now, u64::MAX).map(|(_, a)| a), None);
        assert_eq!(
            t.pop_expired(now + Duration::from_millis(2), u64::MAX)
                .map(|(_, a)| a),
            Some(())
        );
    }

    #[test]
    fn timers_armed_after_the_limit_wait_for_the_next_pass() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.insert(now, "old");
        let limit = t.next_seq();
        t.insert(now, "new");
        assert_eq!(t.pop_expired(now, limit).map(|(_, a)| a), Some("old"));
        assert_eq!(t.pop_expired(now, limit).map(|(_, a)| a), None);
        assert_eq!(
            t.pop_expired(now, t.next_seq()).map(|(_, a)| a),
            Some("new")
        );
    }

    #[test]
    fn churn_does_not_grow_the_heap_without_bound() {
        let mut t = Timers::default();
        let now = Instant::now();
        for i in 0..10_000u32 {
            let k = t.insert(now + Duration::from_secs(60), i);
            t.cancel(k);
        }
        assert_eq!(t.len(), 0);
        assert!(
            t.heap.len() <= 129,
            "heap kept {} dead entries",
            t.heap.len()
        );
    }
}
