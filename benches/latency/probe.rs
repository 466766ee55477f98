//! The probe: one connection to the echo port with one small message in flight, timed from just
//! before its `write` to the end of the `read` that completes its echo.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bytes per probe message.
pub const MESSAGE: usize = 32;

/// How the probe paces itself and when it stops.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Most probes.
    pub probes: usize,
    /// Longest time to probe for.
    pub duration: Duration,
    /// From one probe's send to the next one's; a later echo starts the next probe at once.
    pub interval: Duration,
    /// Longest wait for one echo; a probe that waits this long ends the probing.
    pub timeout: Duration,
}

/// One probing pass.
pub struct Probed {
    /// Round trips in nanoseconds, sorted.
    pub rtts_ns: Vec<u64>,
    /// The last probe waited `timeout` for its echo and was counted with that wait.
    pub timed_out: bool,
}

impl Probed {
    /// The nearest-rank `q`-quantile of the round trips, in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        let n = self.rtts_ns.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        self.rtts_ns[rank - 1] as f64 / 1e3
    }
}

/// The probe's connection.
pub struct Probe {
    stream: TcpStream,
    /// Numbers the messages, so that a stale echo cannot pass for the current one.
    sequence: u8,
}

impl Probe {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Probe> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        Ok(Probe {
            stream,
            sequence: 0,
        })
    }

    /// One round trip: its time, or `Err` with the time waited if the echo did not come in
    /// time (or the connection failed).
    fn once(&mut self) -> Result<Duration, (Duration, io::Error)> {
        self.sequence = self.sequence.wrapping_add(1);
        let message = [self.sequence; MESSAGE];
        let mut echo = [0u8; MESSAGE];
        let start = Instant::now();
        let result = self
            .stream
            .write_all(&message)
            .and_then(|()| self.stream.read_exact(&mut echo));
        let took = start.elapsed();
        match result {
            Ok(()) if echo == message => Ok(took),
            Ok(()) => Err((took, io::Error::other("the echo differs from the message"))),
            Err(e) => Err((took, e)),
        }
    }

    /// `n` round trips, back to back, not measured: the path's first use and a check that the
    /// server echoes.
    pub fn warm(&mut self, n: usize) -> io::Result<()> {
        for _ in 0..n {
            self.once().map_err(|(_, e)| e)?;
        }
        Ok(())
    }

    /// Probes as `pace` says; an echo that times out ends the pass (its wait is the last round
    /// trip), any other failure is an error.
    pub fn run(&mut self, pace: &Pace) -> io::Result<Probed> {
        let start = Instant::now();
        let mut rtts_ns = Vec::with_capacity(pace.probes.min(1 << 20));
        let mut timed_out = false;
        let mut next = start;
        while rtts_ns.len() < pace.probes && start.elapsed() < pace.duration {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next = Instant::now() + pace.interval;
            match self.once() {
                Ok(rtt) => rtts_ns.push(rtt.as_nanos() as u64),
                Err((waited, e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    rtts_ns.push(waited.as_nanos() as u64);
                    timed_out = true;
                    break;
                }
                Err((_, e)) => return Err(e),
            }
        }
        rtts_ns.sort_unstable();
        Ok(Probed { rtts_ns, timed_out })
    }
}
