//! A handler that consumes only whole length-prefixed frames sees exactly the frames sent, however
//! the bytes are split across reads: leftovers are kept and offered again with the next bytes.

mod util;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sockloop::{Context, Handler, Input};
use util::{assert_bytes_eq, Rng};

/// Frames are `[u32 big-endian length][payload]`. Each one is answered with
/// `[u32 frame number][u32 length][payload]`, so a misparsed boundary shows in the reply.
struct FrameEcho {
    frames: u32,
    /// `on_data` calls that left a partial frame for later (proves the test exercised that).
    partial: Arc<AtomicUsize>,
    /// The bytes left unconsumed by the previous call; the next call must start with them.
    leftover: Rc<Cell<usize>>,
}

impl Handler for FrameEcho {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        // What was kept comes first; new bytes may follow (none when reading resumed after the
        // output watermark paused it: kept input is then offered again as it is).
        assert!(
            input.len() >= self.leftover.get(),
            "on_data offered {} bytes but {} were left over last time",
            input.len(),
            self.leftover.get()
        );
        while input.len() >= 4 {
            let len = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
            if input.len() < 4 + len {
                break;
            }
            input.consume(4);
            let payload = input.take_prefix(len);
            cx.write(&self.frames.to_be_bytes());
            cx.write(&(len as u32).to_be_bytes());
            cx.write(payload);
            self.frames += 1;
        }
        if !input.is_empty() {
            self.partial.fetch_add(1, Ordering::Relaxed);
        }
        self.leftover.set(input.len());
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn reply(n: u32, payload: &[u8]) -> Vec<u8> {
    let mut r = n.to_be_bytes().to_vec();
    r.extend_from_slice(&frame(payload));
    r
}

fn serve_frames() -> (std::net::SocketAddr, util::ReactorThread, Arc<AtomicUsize>) {
    let partial = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&partial);
    // The largest frame is 3 MiB, held whole until complete: above the default input bound.
    let (addr, server) = util::spawn_reactor(move |reactor| {
        let options = sockloop::ListenOptions::new().max_input(4 << 20);
        let factory = move || FrameEcho {
            frames: 0,
            partial: Arc::clone(&p),
            leftover: Rc::new(Cell::new(0)),
        };
        reactor
            .listen_with(util::localhost(), options, factory)
            .unwrap()
            .1
    });
    (addr, server, partial)
}

#[test]
fn frames_sent_one_byte_at_a_time_are_reassembled() {
    let (addr, server, partial) = serve_frames();
    let mut c = util::client(addr);
    let mut rng = Rng::new(7);
    let payloads: Vec<Vec<u8>> = (0..40)
        .map(|i| util::pattern(i, rng.below(300) as usize))
        .collect();
    let mut want = Vec::new();
    for (n, p) in payloads.iter().enumerate() {
        let bytes = frame(p);
        if n == 0 {
            // Make the split certain rather than likely: on a busy machine the reactor may sleep
            // through a whole byte-by-byte send and read it in one go. Send half a frame and
            // wait until the handler has seen it, partial, before going on.
            let half = bytes.len() / 2;
            c.write_all(&bytes[..half]).unwrap();
            util::wait_until("the handler to see a partial frame", || {
                partial.load(Ordering::Relaxed) > 0
            });
            c.write_all(&bytes[half..]).unwrap();
        } else {
            // TCP_NODELAY is on: each byte leaves in its own segment and mostly arrives alone.
            for b in bytes {
                c.write_all(&[b]).unwrap();
            }
        }
        want.extend_from_slice(&reply(n as u32, p));
    }
    let got = util::read_exactly(&mut c, want.len());
    assert_bytes_eq(&got, &want, "replies to byte-by-byte frames");
    assert!(
        partial.load(Ordering::Relaxed) > 0,
        "no on_data call ever saw a partial frame; the test did not exercise reassembly"
    );
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.stop();
}

#[test]
fn large_frames_spanning_many_reads_are_reassembled() {
    let (addr, server, partial) = serve_frames();
    let mut c = util::client(addr);
    // Frames far larger than the reactor's 64 KiB read buffer, mixed with tiny ones, all written
    // at once so frame boundaries fall anywhere within a read.
    let sizes = [0usize, 1, 3 << 20, 5, 70_000, 65_536, 65_535, 1 << 20, 2];
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for (n, &size) in sizes.iter().enumerate() {
        let p = util::pattern(100 + n as u64, size);
        stream.extend_from_slice(&frame(&p));
        want.extend_from_slice(&reply(n as u32, &p));
    }
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || writer.write_all(&stream).unwrap());
    let got = util::read_exactly(&mut c, want.len());
    sender.join().unwrap();
    assert_bytes_eq(&got, &want, "replies to large frames");
    assert!(partial.load(Ordering::Relaxed) > 0);
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.stop();
}
