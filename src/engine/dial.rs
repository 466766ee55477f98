//! Outbound connections to a host name or to several addresses, and the connect timeout.
//!
//! **Names** are resolved off the loop thread, by the system's resolver (`/etc/hosts`, nsswitch,
//! DNS) on at most `MAX_RESOLVERS` threads, made when first needed and shared by all lookups;
//! more lookups wait in their queue. The answer comes back as a posted job, through the
//! reactor's waker. A lookup cannot be cancelled once a thread runs it (`getaddrinfo` blocks):
//! a connection closed or timed out meanwhile simply ignores its answer, and a thread stuck on
//! a slow DNS server holds one of the four until the resolver gives up.
//!
//! **Several addresses** are raced as RFC 8305 (Happy Eyeballs) describes: the families
//! alternate, starting with the family of the first address; an attempt starts when the
//! previous one failed, or after the attempt delay (250 ms by default) while it is still
//! pending; the first attempt to connect wins and the others are closed, unseen by the handler.
//! Until then the connection holds no socket (`Stream::Pending`); the winner's socket moves into
//! it and is registered under its token, so its id never changes.
//!
//! **The connect timeout** (30 s by default) bounds all of it, resolution included: on expiry
//! the handler hears `on_close` with `ConnectFailed` and `TimedOut`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mio::Interest;

use super::{Core, Entry, Shared, Slot, TimerAction};
use crate::close_reason::CloseReason;
use crate::conn::ConnectCheck;
use crate::id::ConnId;
use crate::options::SocketOptions;
use crate::sys::{self, Stream, STREAM_INTEREST};

/// Resolver threads at most, per reactor.
pub(crate) const MAX_RESOLVERS: usize = 4;

/// One connect attempt of a race: its own socket and token until it wins or loses.
pub(crate) struct Attempt {
    owner: ConnId,
    stream: Stream,
    addr: SocketAddr,
}

/// A race in progress for one connection.
struct Race {
    /// Addresses not tried yet, in the order to try them.
    addrs: VecDeque<SocketAddr>,
    /// Attempts under way: (slot key, generation).
    attempts: Vec<(usize, u32)>,
    last_error: Option<io::Error>,
    local: Option<SocketAddr>,
    socket: SocketOptions,
    delay: Duration,
}

/// A lookup for a resolver thread.
struct Lookup {
    host: String,
    port: u16,
    owner: ConnId,
    shared: Arc<Shared>,
}

/// The resolver threads' queue.
struct Resolver {
    tx: mpsc::Sender<Lookup>,
    rx: Arc<Mutex<mpsc::Receiver<Lookup>>>,
    threads: usize,
    /// Threads waiting for a lookup.
    idle: Arc<AtomicUsize>,
}

/// Races and lookups in progress.
#[derive(Default)]
pub(crate) struct Dialing {
    races: HashMap<ConnId, Race>,
    resolver: Option<Resolver>,
}

/// How a race's addresses are ordered: families alternate, starting with the first's.
fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut first, mut second): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = VecDeque::with_capacity(first.len() + second.len());
    loop {
        match (first.pop_front(), second.pop_front()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

impl Resolver {
    fn new() -> Resolver {
        let (tx, rx) = mpsc::channel();
        Resolver {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            threads: 0,
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues a lookup, starting a thread for it if none is idle and fewer than
    /// `MAX_RESOLVERS` run.
    fn submit(&mut self, lookup: Lookup) -> io::Result<()> {
        if self.idle.load(Ordering::Acquire) == 0 && self.threads < MAX_RESOLVERS {
            let (rx, idle) = (Arc::clone(&self.rx), Arc::clone(&self.idle));
            std::thread::Builder::new()
                .name("sockloop-resolver".into())
                .spawn(move || resolve_forever(&rx, &idle))?;
            self.threads += 1;
            self.idle.fetch_add(1, Ordering::AcqRel);
        }
        self.tx
            .send(lookup)
            .map_err(|_| io::Error::other("the resolver threads are gone"))
    }
}

/// A resolver thread: answers lookups until the reactor (and so the queue's sender) is gone.
fn resolve_forever(rx: &Mutex<mpsc::Receiver<Lookup>>, idle: &AtomicUsize) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(lookup) = next else {
            return;
        };
        idle.fetch_sub(1, Ordering::AcqRel);
        let Lookup {
            host,
            port,
            owner,
            shared,
        } = lookup;
        let result = (host.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<_>>());
        // A reactor that is gone cannot take the answer; nothing is waiting for it then.
        let _ = shared.post(Box::new(move |reactor| {
            reactor.core.resolved(owner, &host, result);
        }));
        idle.fetch_add(1, Ordering::AcqRel);
    }
}

impl Core {
    /// Arms `id`'s connect timeout.
    pub(crate) fn arm_connect_timeout(&mut self, id: ConnId, timeout: Duration) {
        self.timers
            .queue
            .insert(Instant::now() + timeout, TimerAction::ConnectTimeout(id));
    }

    /// Resolves `host` for connection `id` (still `Pending`) on a resolver thread.
    pub(crate) fn resolve(
        &mut self,
        id: ConnId,
        host: String,
        port: u16,
        local: Option<SocketAddr>,
        socket: SocketOptions,
        delay: Duration,
    ) {
        let submitted = self.jobs.shared(self.poll.registry()).and_then(|shared| {
            let lookup = Lookup {
                host,
                port,
                owner: id,
                shared,
            };
            self.dialing
                .resolver
                .get_or_insert_with(Resolver::new)
                .submit(lookup)
        });
        if let Err(e) = submitted {
            log::warn!("{id}: name resolution not started: {e}");
            return self.close_with(id, CloseReason::ConnectFailed(e));
        }
        // The race's settings wait for the answer.
        self.dialing.races.insert(
            id,
            Race {
                addrs: VecDeque::new(),
                attempts: Vec::new(),
                last_error: None,
                local,
                socket,
                delay,
            },
        );
    }

    /// A resolver thread answered for connection `id`.
    pub(crate) fn resolved(&mut self, id: ConnId, host: &str, result: io::Result<Vec<SocketAddr>>) {
        if !self.slots.conn(id).is_some_and(|c| c.is_connecting()) {
            self.dialing.races.remove(&id);
            return; // closed or timed out meanwhile
        }
        let addrs = match result {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => {
                let e = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
                return self.fail_race(id, e);
            }
            Err(e) => {
                let e = io::Error::new(e.kind(), format!("resolving {host}: {e}"));
                return self.fail_race(id, e);
            }
        };
        log::debug!("{id}: {host} resolved to {addrs:?}");
        let Some(race) = self.dialing.races.get_mut(&id) else {
            return;
        };
        race.addrs = interleave(addrs);
        self.next_attempt(id);
    }

    /// Starts racing `addrs` for connection `id` (still `Pending`).
    pub(crate) fn race(
        &mut self,
        id: ConnId,
        addrs: Vec<SocketAddr>,
        local: Option<SocketAddr>,
        socket: SocketOptions,
        delay: Duration,
    ) {
        let race = Race {
            addrs: interleave(addrs),
            attempts: Vec::new(),
            last_error: None,
            local,
            socket,
            delay,
        };
        self.dialing.races.insert(id, race);
        self.next_attempt(id);
    }

    /// Starts the next attempt of `id`'s race (at once past addresses that fail to start),
    /// and arms the delay after which the one after it starts. A race with nothing left to try
    /// and nothing under way fails.
    pub(crate) fn next_attempt(&mut self, id: ConnId) {
        loop {
            let Some(race) = self.dialing.races.get_mut(&id) else {
                return;
            };
            let Some(addr) = race.addrs.pop_front() else {
                if race.attempts.is_empty() {
                    let e = race.last_error.take().unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "no address to connect to")
                    });
                    self.fail_race(id, e);
                }
                return;
            };
            let started = sys::connect_tcp(addr, race.local, &race.socket);
            let mut stream = match started {
                Ok(stream) => stream,
                Err(e) => {
                    log::debug!("{id}: attempt to {addr} failed at once: {e}");
                    race.last_error = Some(e);
                    continue;
                }
            };
            let gen = self.slots.take_gen();
            let key = self.slots.next_key();
            let token = mio::Token(crate::id::pack(key, gen) as usize);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                race.last_error = Some(e);
                continue;
            }
            let more = !race.addrs.is_empty();
            let delay = race.delay;
            race.attempts.push((key, gen));
            let attempt = Attempt {
                owner: id,
                stream: Stream::Tcp(stream),
                addr,
            };
            self.slots.insert(gen, Entry::Attempt(Box::new(attempt)));
            log::debug!("{id}: attempting {addr}");
            if more {
                self.timers
                    .queue
                    .insert(Instant::now() + delay, TimerAction::NextAttempt(id));
            }
            return;
        }
    }

    /// An attempt's socket became ready: it connected, failed, or is still under way.
    pub(crate) fn attempt_event(&mut self, key: usize, gen: u32) {
        let Some(Slot {
            entry: Entry::Attempt(attempt),
            ..
        }) = self.slots.get(key, gen)
        else {
            return;
        };
        let check = crate::conn::check_connect(&attempt.stream);
        let (owner, addr) = (attempt.owner, attempt.addr);
        match check {
            ConnectCheck::Pending => {}
            ConnectCheck::Done => self.attempt_won(key, owner, addr),
            ConnectCheck::Failed(e) => {
                log::debug!("{owner}: attempt to {addr} failed: {e}");
                self.drop_attempt(owner, key);
                if let Some(race) = self.dialing.races.get_mut(&owner) {
                    race.last_error = Some(e);
                }
                // The next address now, not after the delay.
                self.next_attempt(owner);
            }
        }
    }

    /// The attempt in slot `key` connected first: its socket becomes `owner`'s, the other
    /// attempts are closed, and the connection proceeds as connected.
    fn attempt_won(&mut self, key: usize, owner: ConnId, addr: SocketAddr) {
        let Entry::Attempt(attempt) = self.slots.remove(key).entry else {
            return;
        };
        let mut stream = attempt.stream;
        self.cancel_race(owner);
        let live = self.slots.conn(owner).is_some_and(|c| c.is_connecting());
        if !live {
            return; // dropping the stream closes it
        }
        if let Err(e) = stream.reregister(self.poll.registry(), owner.token(), STREAM_INTEREST) {
            return self.close_with(owner, CloseReason::ConnectFailed(e));
        }
        if let Some(conn) = self.slots.conn_mut(owner) {
            conn.stream = stream;
        }
        log::debug!("{owner}: connected to {addr}");
        self.connected(owner);
    }

    /// Removes the attempt in slot `key` from `owner`'s race and closes its socket.
    fn drop_attempt(&mut self, owner: ConnId, key: usize) {
        if let Some(race) = self.dialing.races.get_mut(&owner) {
            race.attempts.retain(|(k, _)| *k != key);
        }
        if matches!(
            self.slots.by_key(key),
            Some(Slot {
                entry: Entry::Attempt(_),
                ..
            })
        ) {
            // Freed now: an event of this batch for it carries the old generation.
            self.slots.remove(key);
        }
    }

    /// Ends `id`'s race (its connection connected, closed or timed out): every attempt still
    /// under way is closed.
    pub(crate) fn cancel_race(&mut self, id: ConnId) {
        let Some(race) = self.dialing.races.remove(&id) else {
            return;
        };
        for (key, gen) in race.attempts {
            if self.slots.get(key, gen).is_some() {
                self.slots.remove(key);
            }
        }
    }

    /// `id`'s race (or its lookup) failed: the handler hears `ConnectFailed` with `e`.
    fn fail_race(&mut self, id: ConnId, e: io::Error) {
        self.cancel_race(id);
        log::debug!("{id}: connect failed: {e}");
        self.close_with(id, CloseReason::ConnectFailed(e));
    }

    /// The connect timeout of `id` passed: if it is still connecting, it fails with `TimedOut`.
    pub(crate) fn connect_expired(&mut self, id: ConnId) {
        if self.slots.conn(id).is_some_and(|c| c.is_connecting()) {
            let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            self.fail_race(id, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interleave;
    use std::net::SocketAddr;

    #[test]
    fn families_alternate_from_the_first() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let order = interleave(vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("1.1.1.1:1"),
            a("[::3]:1"),
        ]);
        let order: Vec<_> = order.into_iter().collect();
        assert_eq!(
            order,
            vec![a("[::1]:1"), a("1.1.1.1:1"), a("[::2]:1"), a("[::3]:1")]
        );
    }
}
