//! Several reactors, one per thread: how sockloop uses more than one core.
//!
//! Each reactor stays single-threaded and shares nothing with the others; the kernel spreads
//! connections across them when each binds its own listener with `SO_REUSEPORT`
//! ([`ListenOptions::reuse_port`](crate::ListenOptions::reuse_port)). This is the nginx / Redis-io-
//! threads shape, not a work-stealing runtime: no locks on the hot path, and a connection lives on
//! the thread that accepted it.

use std::io;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::handle::Handle;
use crate::reactor::Reactor;
use crate::stats::Stats;

/// N reactors running on N threads.
///
/// # Examples
///
/// Two echo reactors sharing one port:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::SocketAddr;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use sockloop::{Context, Handler, Input, ListenOptions, ReactorPool};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
///         cx.write(input.take_all());
///     }
/// }
///
/// // Threads start one after another: the first binds port 0, the others reuse its port.
/// let port: Arc<Mutex<SocketAddr>> = Arc::new(Mutex::new("127.0.0.1:0".parse().unwrap()));
/// let (pool, addrs) = ReactorPool::spawn(2, move |_index, reactor| {
///     let mut addr = port.lock().unwrap();
///     let options = ListenOptions::new().reuse_port(true);
///     let (_, bound) = reactor.listen_with(*addr, options, || Echo)?;
///     *addr = bound;
///     Ok(bound)
/// })?;
/// assert_eq!(addrs[0], addrs[1]);
///
/// let mut client = std::net::TcpStream::connect(addrs[0])?;
/// client.write_all(b"hi")?;
/// let mut echo = [0u8; 2];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"hi");
///
/// pool.shutdown(Duration::from_secs(1))?;
/// drop(client);
/// pool.join()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ReactorPool {
    handles: Vec<Handle>,
    threads: Vec<JoinHandle<io::Result<Stats>>>,
}

impl ReactorPool {
    /// Starts `n` threads, each creating a reactor, running `setup(index, &mut reactor)` on it,
    /// and then `run()` until stopped. Threads start one after another (thread `i + 1` only
    /// after thread `i`'s setup returned), and the setups' results are returned in index order.
    ///
    /// # Examples
    ///
    /// See [`ReactorPool`].
    ///
    /// # Errors
    ///
    /// The first setup error (the threads already started are stopped and joined first), or the
    /// error of spawning a thread.
    pub fn spawn<T, F>(n: usize, setup: F) -> io::Result<(ReactorPool, Vec<T>)>
    where
        T: Send + 'static,
        F: Fn(usize, &mut Reactor) -> io::Result<T> + Send + Sync + Clone + 'static,
    {
        let mut pool = ReactorPool {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        let mut results = Vec::with_capacity(n);
        for index in 0..n {
            let (tx, rx) = mpsc::channel();
            let setup = setup.clone();
            let thread = thread::Builder::new()
                .name(format!("sockloop-{index}"))
                .spawn(move || {
                    let mut reactor = Reactor::new()?;
                    let ready = reactor
                        .handle()
                        .and_then(|h| Ok((h, setup(index, &mut reactor)?)));
                    let ok = ready.is_ok();
                    let _ = tx.send(ready);
                    if ok {
                        reactor.run()?;
                    }
                    Ok(reactor.stats())
                })?;
            pool.threads.push(thread);
            match rx.recv() {
                Ok(Ok((handle, value))) => {
                    pool.handles.push(handle);
                    results.push(value);
                }
                Ok(Err(e)) => {
                    pool.stop_and_join();
                    return Err(e);
                }
                Err(_) => {
                    pool.stop_and_join();
                    return Err(io::Error::other(format!(
                        "reactor thread {index} died during setup"
                    )));
                }
            }
        }
        Ok((pool, results))
    }

    /// One handle per reactor, in index order.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _) = sockloop::ReactorPool::spawn(2, |_, _| Ok(()))?;
    /// for handle in pool.handles() {
    ///     handle.post(|reactor| println!("{} connections", reactor.connection_count()))?;
    /// }
    /// pool.stop()?;
    /// let stats = pool.join()?;
    /// assert_eq!(stats.len(), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every reactor (see [`Handle::stop`]).
    ///
    /// # Examples
    ///
    /// See [`handles`](Self::handles).
    ///
    /// # Errors
    ///
    /// The first error of [`Handle::stop`]; every reactor is still asked.
    pub fn stop(&self) -> io::Result<()> {
        self.handles
            .iter()
            .map(Handle::stop)
            .fold(Ok(()), Result::and)
    }

    /// Shuts every reactor down gracefully (see [`Reactor::shutdown`]).
    ///
    /// # Examples
    ///
    /// See [`ReactorPool`].
    ///
    /// # Errors
    ///
    /// The first error of [`Handle::shutdown`]; every reactor is still asked.
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.handles
            .iter()
            .map(|h| h.shutdown(grace))
            .fold(Ok(()), Result::and)
    }

    /// Waits for every reactor thread to end and returns each reactor's final [`Stats`], in
    /// index order (add them up with `.into_iter().sum::<Stats>()`).
    ///
    /// # Examples
    ///
    /// See [`handles`](Self::handles).
    ///
    /// # Errors
    ///
    /// The first error a reactor's `run` returned, or `Other` if a thread panicked.
    pub fn join(mut self) -> io::Result<Vec<Stats>> {
        let mut all = Vec::with_capacity(self.threads.len());
        let mut first_error = None;
        for thread in self.threads.drain(..) {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("reactor thread panicked")));
            match outcome {
                Ok(stats) => all.push(stats),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(all), Err)
    }

    fn stop_and_join(&mut self) {
        let _ = self.stop();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
