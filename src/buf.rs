//! Per-connection byte queues and the pool that lends them.
//!
//! An idle connection owns no heap buffer at all: a queue borrows a `Vec` from the reactor's pool
//! when bytes have to wait (unsent output, an unconsumed partial message) and hands it back as soon
//! as it is empty again. Ping-pong traffic therefore reuses a handful of warm buffers instead of
//! calling the allocator per message, and 10,000 idle connections cost no buffer memory.

/// Buffers larger than this are freed instead of pooled, so a burst does not pin memory forever.
const POOL_MAX_CAPACITY: usize = 64 * 1024;
/// How many spare buffers the pool keeps; beyond that, returned buffers are freed.
const POOL_MAX_BUFFERS: usize = 256;
/// Capacity of a freshly made buffer: enough for a typical request or response.
const FRESH_CAPACITY: usize = 4 * 1024;

/// Spare, empty buffers shared by all queues of one reactor.
#[derive(Default)]
pub(crate) struct BufPool {
    spare: Vec<Vec<u8>>,
}

impl BufPool {
    fn take(&mut self, at_least: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut v) => {
                v.reserve(at_least);
                v
            }
            None => Vec::with_capacity(at_least.max(FRESH_CAPACITY)),
        }
    }

    fn give(&mut self, mut v: Vec<u8>) {
        if v.capacity() <= POOL_MAX_CAPACITY && self.spare.len() < POOL_MAX_BUFFERS {
            v.clear();
            self.spare.push(v);
        }
    }
}

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

    /// Appends `bytes`, borrowing a buffer from `pool` if the queue holds none.
    pub(crate) fn push(&mut self, pool: &mut BufPool, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.data.capacity() == 0 {
            self.data = pool.take(bytes.len());
        } else if self.head > 0 && self.head >= self.len() {
            // Compact before growing: the move costs at most the live bytes, which is no more
            // than what was already consumed, so the total work stays linear.
            self.data.drain(..self.head);
            self.head = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Drops the first `n` waiting bytes; an emptied queue returns its buffer to `pool`.
    pub(crate) fn consume(&mut self, pool: &mut BufPool, n: usize) {
        self.head += n.min(self.len());
        if self.is_empty() {
            self.release(pool);
        }
    }

    /// Drops everything and returns the buffer to `pool`.
    pub(crate) fn release(&mut self, pool: &mut BufPool) {
        self.head = 0;
        if self.data.capacity() > 0 {
            pool.give(std::mem::take(&mut self.data));
        }
    }

    /// Takes the buffer out (for a callback that must not borrow the connection), leaving the
    /// queue empty; `restore` puts it back.
    pub(crate) fn take(&mut self) -> ByteQueue {
        std::mem::take(self)
    }

    /// Puts back a queue taken with [`take`](Self::take); bytes pushed meanwhile go after it.
    pub(crate) fn restore(&mut self, pool: &mut BufPool, mut taken: ByteQueue) {
        if !self.is_empty() {
            let later = std::mem::take(self);
            taken.push(pool, later.bytes());
            let mut later = later;
            later.release(pool);
        }
        if taken.is_empty() {
            taken.release(pool);
        }
        *self = taken;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_fifo_order_across_partial_consumes() {
        let mut pool = BufPool::default();
        let mut q = ByteQueue::default();
        q.push(&mut pool, b"hello ");
        q.consume(&mut pool, 2);
        q.push(&mut pool, b"world");
        assert_eq!(q.bytes(), b"llo world");
        q.consume(&mut pool, 4);
        q.push(&mut pool, b"!");
        assert_eq!(q.bytes(), b"world!");
        q.consume(&mut pool, 100);
        assert!(q.is_empty());
    }

    #[test]
    fn emptied_queue_returns_its_buffer_to_the_pool() {
        let mut pool = BufPool::default();
        let mut q = ByteQueue::default();
        q.push(&mut pool, b"abc");
        q.consume(&mut pool, 3);
        assert_eq!(q.data.capacity(), 0);
        assert_eq!(pool.spare.len(), 1);
        q.push(&mut pool, b"x");
        assert_eq!(pool.spare.len(), 0);
    }

    #[test]
    fn restore_puts_later_bytes_after_taken_ones() {
        let mut pool = BufPool::default();
        let mut q = ByteQueue::default();
        q.push(&mut pool, b"first ");
        let taken = q.take();
        q.push(&mut pool, b"second");
        q.restore(&mut pool, taken);
        assert_eq!(q.bytes(), b"first second");
    }
}
