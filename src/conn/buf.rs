//! Per-connection byte queues and the pool that lends them.
//!
//! A connection holds one pointer-sized field for its buffers: the input queue (an unconsumed
//! partial message) and the output queue (bytes the socket did not take yet) live in a boxed
//! pair that exists only while either holds bytes. An idle connection therefore owns no buffer
//! at all, and its slab entry stays small (see the memory-per-connection figures in the README).
//! Emptied pairs go back to the reactor's pool with their vectors' capacity intact, so ping-pong
//! traffic reuses a handful of warm buffers instead of calling the allocator per message.
//!
//! Streams keep their large buffers warm too, within a byte budget per reactor: a bulk sender
//! (a TLS stream, whose output queue holds up to a few hundred KiB of records) drains its queue
//! and refills it many times a second, and a queue freed at each drain goes back to the kernel
//! and faults its pages in again on the next burst (measured with `benches/tls.rs`: page
//! faults and `madvise` were 8.6% of the server's time at 8 connections with 1 MiB in flight).

/// Vectors larger than this are freed when their pair is pooled, whatever the budget.
const POOL_MAX_CAPACITY: usize = 4 << 20;
/// Capacity all spare pairs may hold together; past it, returned vectors over
/// [`POOL_SMALL_CAPACITY`] are freed, so bursts on many connections do not pin memory.
const POOL_MAX_BYTES: usize = 8 << 20;
/// Vectors up to this are always kept warm.
const POOL_SMALL_CAPACITY: usize = 64 * 1024;
/// Spare pairs the pool keeps; beyond that, returned pairs are freed.
const POOL_MAX_PAIRS: usize = 256;

/// A FIFO byte queue: appended at the back, consumed from the front.
///
/// Consumption moves a head index instead of shifting bytes, so draining a large queue in many
/// partial writes stays linear; the bytes are compacted only when the dead prefix is larger than
/// the live part.
#[derive(Default)]
pub(crate) struct ByteQueue {
    data: Vec<u8>,
    head: usize,
}

impl ByteQueue {
    /// Bytes waiting in the queue.
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head == self.data.len()
    }

    /// The waiting bytes, oldest first.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[self.head..]
    }

    /// Appends `bytes`.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.len() {
            // Compact before growing: the move costs at most the live bytes, which is no more
            // than what was already consumed, so the total work stays linear.
            self.data.drain(..self.head);
            self.head = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Drops the first `n` waiting bytes (capacity is kept).
    pub(crate) fn consume(&mut self, n: usize) {
        self.head += n.min(self.len());
        if self.is_empty() {
            self.clear();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.head = 0;
    }

    /// Frees a buffer over `max` bytes, keeping a smaller one warm for reuse.
    fn trim(&mut self, max: usize) {
        self.clear();
        if self.data.capacity() > max {
            self.data = Vec::new();
        }
    }
}

#[derive(Default)]
struct Pair {
    input: ByteQueue,
    out: ByteQueue,
}

impl Pair {
    fn capacity(&self) -> usize {
        self.input.data.capacity() + self.out.data.capacity()
    }
}

/// Spare, empty queue pairs shared by all connections of one reactor.
#[derive(Default)]
pub(crate) struct BufPool {
    // The boxes themselves are what is reused: a connection holds a `Box<Pair>`, and handing
    // one over is a pointer move, not an allocation.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Pair>>,
    /// The capacity the spare pairs hold, against `POOL_MAX_BYTES`.
    bytes: usize,
}

impl BufPool {
    fn take(&mut self) -> Box<Pair> {
        match self.spare.pop() {
            Some(pair) => {
                self.bytes -= pair.capacity();
                pair
            }
            None => Box::default(),
        }
    }

    fn give(&mut self, mut pair: Box<Pair>) {
        if self.spare.len() >= POOL_MAX_PAIRS {
            return;
        }
        let room = POOL_MAX_BYTES.saturating_sub(self.bytes);
        let max = if pair.capacity() <= room {
            POOL_MAX_CAPACITY
        } else {
            POOL_SMALL_CAPACITY
        };
        pair.input.trim(max);
        pair.out.trim(max);
        self.bytes += pair.capacity();
        self.spare.push(pair);
    }
}

/// A connection's input and output queues; holds no memory while both are empty.
#[derive(Default)]
pub(crate) struct Queues(Option<Box<Pair>>);

impl Queues {
    fn pair(&mut self, pool: &mut BufPool) -> &mut Pair {
        self.0.get_or_insert_with(|| pool.take())
    }

    /// Returns the pair to the pool once both queues are empty.
    fn settle(&mut self, pool: &mut BufPool) {
        if self
            .0
            .as_ref()
            .is_some_and(|p| p.input.is_empty() && p.out.is_empty())
        {
            if let Some(pair) = self.0.take() {
                pool.give(pair);
            }
        }
    }

    /// Unsent output bytes.
    pub(crate) fn out_len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.out.len())
    }

    pub(crate) fn out_is_empty(&self) -> bool {
        self.out_len() == 0
    }

    /// The unsent output, oldest first.
    pub(crate) fn out_bytes(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |p| p.out.bytes())
    }

    pub(crate) fn push_out(&mut self, pool: &mut BufPool, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.pair(pool).out.push(bytes);
        }
    }

    pub(crate) fn consume_out(&mut self, pool: &mut BufPool, n: usize) {
        if let Some(p) = self.0.as_mut() {
            p.out.consume(n);
        }
        self.settle(pool);
    }

    /// Discards unsent output (abort, error).
    pub(crate) fn clear_out(&mut self, pool: &mut BufPool) {
        if let Some(p) = self.0.as_mut() {
            p.out.clear();
        }
        self.settle(pool);
    }

    /// Unconsumed input bytes.
    pub(crate) fn input_len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.input.len())
    }

    pub(crate) fn input_is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|p| p.input.is_empty())
    }

    pub(crate) fn push_input(&mut self, pool: &mut BufPool, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.pair(pool).input.push(bytes);
        }
    }

    /// Takes the input queue out (so a callback can parse it while the connection is borrowed
    /// elsewhere); [`restore_input`](Self::restore_input) puts back what is left.
    pub(crate) fn take_input(&mut self) -> ByteQueue {
        self.0
            .as_mut()
            .map(|p| std::mem::take(&mut p.input))
            .unwrap_or_default()
    }

    /// Puts back the rest of a taken input queue. No input can arrive while it is out (only
    /// the read path adds input), so it simply takes its place again.
    pub(crate) fn restore_input(&mut self, pool: &mut BufPool, taken: ByteQueue) {
        if taken.is_empty() && self.0.is_none() {
            return; // nothing left and no pair to keep its buffer warm in
        }
        self.pair(pool).input = taken;
        self.settle(pool);
    }

    /// Gives everything back to the pool (the connection is being released).
    pub(crate) fn release(&mut self, pool: &mut BufPool) {
        if let Some(pair) = self.0.take() {
            pool.give(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_fifo_order_across_partial_consumes() {
        let mut q = ByteQueue::default();
        q.push(b"hello ");
        q.consume(2);
        q.push(b"world");
        assert_eq!(q.bytes(), b"llo world");
        q.consume(4);
        q.push(b"!");
        assert_eq!(q.bytes(), b"world!");
        q.consume(100);
        assert!(q.is_empty());
    }

    #[test]
    fn idle_connection_holds_no_pair_and_emptied_pair_is_reused() {
        let mut pool = BufPool::default();
        let mut q = Queues::default();
        assert!(q.0.is_none());
        q.push_out(&mut pool, b"abc");
        assert_eq!(q.out_bytes(), b"abc");
        q.consume_out(&mut pool, 3);
        assert!(q.0.is_none(), "an emptied pair goes back to the pool");
        assert_eq!(pool.spare.len(), 1);
        q.push_out(&mut pool, b"x");
        assert_eq!(pool.spare.len(), 0, "the pooled pair is reused");
    }

    #[test]
    fn pair_stays_while_input_is_pending() {
        let mut pool = BufPool::default();
        let mut q = Queues::default();
        q.push_input(&mut pool, b"partial");
        q.push_out(&mut pool, b"reply");
        q.consume_out(&mut pool, 5);
        assert!(q.0.is_some());
        let mut taken = q.take_input();
        assert_eq!(taken.bytes(), b"partial");
        taken.consume(3);
        q.restore_input(&mut pool, taken);
        assert_eq!(q.take_input().bytes(), b"tial");
    }

    #[test]
    fn large_buffers_stay_warm_within_the_pool_budget() {
        let mut pool = BufPool::default();
        let big = 1 << 20;
        let mut queues: Vec<Queues> = (0..16).map(|_| Queues::default()).collect();
        for q in &mut queues {
            q.push_out(&mut pool, &vec![0u8; big]);
        }
        for q in &mut queues {
            q.consume_out(&mut pool, big);
        }
        let warm = pool
            .spare
            .iter()
            .filter(|p| p.out.data.capacity() >= big)
            .count();
        assert!(warm > 0 && warm * big <= POOL_MAX_BYTES, "{warm} warm");
        assert!(pool.bytes <= POOL_MAX_BYTES + 16 * POOL_SMALL_CAPACITY);
        assert_eq!(
            pool.bytes,
            pool.spare.iter().map(|p| p.capacity()).sum::<usize>()
        );
        // Taking pairs back accounts for them.
        let mut q = Queues::default();
        q.push_out(&mut pool, b"x");
        assert_eq!(
            pool.bytes,
            pool.spare.iter().map(|p| p.capacity()).sum::<usize>()
        );
        q.consume_out(&mut pool, 1);
    }

    #[test]
    fn oversized_buffers_are_not_pooled_warm() {
        let mut pool = BufPool::default();
        let mut q = Queues::default();
        q.push_out(&mut pool, &vec![0u8; POOL_MAX_CAPACITY * 2]);
        q.consume_out(&mut pool, POOL_MAX_CAPACITY * 2);
        assert!(pool.spare[0].out.data.capacity() <= POOL_MAX_CAPACITY);
    }
}
