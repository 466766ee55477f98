//! Output the socket cannot take at once is queued in the reactor and delivered in full once the
//! peer reads; `on_drained` says when such a queue has emptied, and only then. Past the high
//! watermark the connection stops reading and is reported not writable, until it drains to the
//! low one.

mod util;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use sockloop::{Context, Handler, Input, ListenOptions};
use util::{assert_bytes_eq, Echo, Event, Recorder};

const FLOOD: usize = 8 << 20;

/// Writes `FLOOD` bytes on open and closes once the queue has drained.
struct Flood;

impl Handler for Flood {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        cx.write(&util::pattern(31, FLOOD));
    }

    fn on_data(&mut self, _cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
    }

    fn on_drained(&mut self, cx: &mut Context<'_>) {
        cx.close();
    }
}

/// The client does not read until the reactor reports the connection not writable (the socket
/// took what it could and the rest is queued above the high watermark), then reads: every byte
/// arrives, in order, then EOF from the close in `on_drained`; writability comes back once.
#[test]
fn slow_reader_gets_all_queued_output() {
    let (events_tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Flood, events_tx.clone()));
    let mut c = util::client(addr);
    let blocked = util::recv_matching(&events, "on_writability(false)", |e| {
        matches!(e, Event::Writable(_, false))
    });
    let got = util::read_to_eof(&mut c);
    assert_bytes_eq(&got, &util::pattern(31, FLOOD), "flood");
    drop(c);
    server.wait_for_connections(0);
    server.stop();
    let mut history = vec![blocked];
    history.extend(events.try_iter());
    let count = |f: fn(&Event) -> bool| history.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, Event::Drained(_))), 1, "{history:?}");
    assert_eq!(
        count(|e| matches!(e, Event::Writable(_, false))),
        1,
        "{history:?}"
    );
    assert_eq!(
        count(|e| matches!(e, Event::Writable(_, true))),
        1,
        "{history:?}"
    );
    util::closes_exactly_once(&history);
}

/// Echoes, recording the largest amount of output found still queued when new input arrives.
struct MeasuredEcho {
    max_queued: Arc<AtomicUsize>,
}

impl Handler for MeasuredEcho {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.max_queued.fetch_max(cx.queued(), Ordering::Relaxed);
        cx.write(input.take_all());
    }
}

/// A client that writes a lot before reading anything: the reactor stops reading it once the
/// echo queued for it passes the high watermark (so the queue stays near that mark instead of
/// growing with what the client sends), reads again once the client catches up, and all of the
/// echo comes back in order.
fn echo_queue_is_bounded_by_the_high_watermark(options: ListenOptions, high: usize) {
    const TOTAL: usize = 16 << 20;
    let max_queued = Arc::new(AtomicUsize::new(0));
    let (events_tx, events) = mpsc::channel();
    let m = Arc::clone(&max_queued);
    let (addr, server) = util::serve_with(options, move || {
        Recorder::new(
            MeasuredEcho {
                max_queued: Arc::clone(&m),
            },
            events_tx.clone(),
        )
    });
    let mut c = util::client(addr);
    let data = Arc::new(util::pattern(32, TOTAL));
    let mut writer = c.try_clone().unwrap();
    let sent = Arc::clone(&data);
    let w = thread::spawn(move || {
        for chunk in sent.chunks(50_000) {
            writer.write_all(chunk).unwrap();
        }
    });
    util::recv_matching(&events, "on_writability(false)", |e| {
        matches!(e, Event::Writable(_, false))
    });
    let got = util::read_exactly(&mut c, TOTAL);
    w.join().unwrap();
    assert_bytes_eq(&got, &data, "echo read after the queue built up");
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(
        history
            .iter()
            .any(|e| matches!(e, Event::Writable(_, true))),
        "reading never resumed: {history:?}"
    );
    // `on_data` sees the queue before it adds its reply; over the high mark the reactor
    // flushes before reading more, and stops reading if the socket does not take it.
    let max = max_queued.load(Ordering::Relaxed);
    assert!(
        max <= high,
        "{max} bytes queued with a high watermark of {high}"
    );
}

#[test]
fn echo_queue_stays_under_the_default_high_watermark() {
    echo_queue_is_bounded_by_the_high_watermark(ListenOptions::new(), 256 << 10);
}

#[test]
fn echo_queue_stays_under_a_configured_high_watermark() {
    let options = ListenOptions::new().output_watermarks(8 << 10, 32 << 10);
    echo_queue_is_bounded_by_the_high_watermark(options, 32 << 10);
}

/// Replies that the socket takes at once never trigger `on_drained`.
#[test]
fn on_drained_is_not_called_when_writes_go_out_at_once() {
    let (events_tx, events) = mpsc::channel();
    let (addr, server) = util::serve(move || Recorder::new(Echo, events_tx.clone()));
    let mut c = util::client(addr);
    for i in 0..100u32 {
        c.write_all(&i.to_be_bytes()).unwrap();
        assert_eq!(util::read_exactly(&mut c, 4), i.to_be_bytes());
    }
    util::half_close(&c);
    util::assert_eof(&mut c);
    server.wait_for_connections(0);
    server.stop();
    let history: Vec<Event> = events.try_iter().collect();
    assert!(
        !history.iter().any(|e| matches!(e, Event::Drained(_))),
        "{history:?}"
    );
}

/// Echoes each input, then stops reading itself for `PAUSE`; logs what it was called for.
struct Gate(Arc<std::sync::Mutex<Vec<&'static str>>>);

const PAUSE: std::time::Duration = std::time::Duration::from_millis(80);

impl Handler for Gate {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        self.0.lock().unwrap().push("data");
        cx.write(input.take_all());
        let me = cx.id();
        cx.pause_reading(me).unwrap();
        cx.set_timer(PAUSE);
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: sockloop::TimerId) {
        self.0.lock().unwrap().push("resume");
        let me = cx.id();
        cx.resume_reading(me).unwrap();
    }
}

/// Input sent while a handler has paused reading waits in the kernel, and is read (no edge is
/// lost) once the handler resumes: every byte is echoed, each input after the first is handed
/// over only after the resume that ended the previous pause, and none comes back earlier than
/// `PAUSE` after the previous byte was sent (the pause began after that).
#[test]
fn paused_reading_holds_input_until_resumed() {
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::clone(&log);
    let (addr, server) = util::serve(move || Gate(Arc::clone(&calls)));
    let mut c = util::client(addr);
    let mut previous_sent: Option<std::time::Instant> = None;
    for i in 0..3u8 {
        let sent = std::time::Instant::now();
        c.write_all(&[i]).unwrap();
        assert_eq!(util::read_exactly(&mut c, 1), [i]);
        // The first byte is read at once; each later one (sent right away, while the previous
        // pause lasts) waits for that pause to end.
        if let Some(previous) = previous_sent {
            let after = previous.elapsed();
            assert!(
                after >= PAUSE,
                "byte {i} echoed {after:?} after byte {} was sent",
                i - 1
            );
        }
        previous_sent = Some(sent);
    }
    drop(c);
    server.wait_for_connections(0);
    server.stop();
    let log = log.lock().unwrap();
    // The last pause may or may not have ended before the client left.
    assert!(
        log.starts_with(&["data", "resume", "data", "resume", "data"]),
        "{log:?}"
    );
    assert!(log.len() <= 6, "{log:?}");
}

/// Answers one line per call and leaves the rest, then pauses its own reading briefly: a
/// handler that bounds its work per turn.
struct OneLineAtATime;

impl Handler for OneLineAtATime {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        if let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line = input.take_prefix(end + 1);
            cx.write(line);
            let me = cx.id();
            cx.pause_reading(me).unwrap();
            cx.set_timer(std::time::Duration::from_millis(5));
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: sockloop::TimerId) {
        let me = cx.id();
        cx.resume_reading(me).unwrap();
    }
}

/// Input a handler kept is offered again when its reading resumes, although no new byte
/// arrives to trigger a read: three lines sent in one write get three answers.
#[test]
fn kept_input_is_offered_again_when_reading_resumes() {
    let (addr, server) = util::serve(|| OneLineAtATime);
    let mut c = util::client(addr);
    c.write_all(b"one\ntwo\nthree\n").unwrap();
    assert_eq!(util::read_exactly(&mut c, 14), b"one\ntwo\nthree\n");
    drop(c);
    server.wait_for_connections(0);
    server.stop();
}

/// What the two connections of `recovery_before_notice` share.
#[derive(Default)]
struct Pair {
    /// In accept order: the writer, then its target.
    conns: Vec<sockloop::ConnId>,
    /// The target's client socket, which the writer drains from inside its callback.
    target_peer: Option<std::net::TcpStream>,
    /// Bytes written to the target, and read from its socket so far.
    written: usize,
    drained: Vec<u8>,
    /// Inputs the writer was given.
    writer_reads: usize,
    /// What the target's handler heard, in order.
    writability: Vec<bool>,
}

/// The writer, on its first input, writes to its target until the target reports not
/// writable, pauses its own reading as `tcp_proxy` does, and then reads everything the target's
/// socket holds. The target's handler resumes the writer when it is writable again.
struct PairSide(std::rc::Rc<std::cell::RefCell<Pair>>);

impl Handler for PairSide {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.0.borrow_mut().conns.push(cx.id());
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        input.consume(input.len());
        let mut pair = self.0.borrow_mut();
        if pair.conns.first() != Some(&cx.id()) {
            return; // the target's byte only brings its event into the writer's poll
        }
        pair.writer_reads += 1;
        if pair.writer_reads > 1 {
            return;
        }
        let (me, target) = (pair.conns[0], pair.conns[1]);
        let chunk = util::pattern(7, 1024);
        for _ in 0..(64 << 10) {
            cx.write_to(target, &chunk).expect("write_to");
            pair.written += chunk.len();
            if !cx.is_writable_conn(target).expect("target") {
                break;
            }
        }
        assert!(
            !cx.is_writable_conn(target).unwrap(),
            "the target never filled up"
        );
        cx.pause_reading(me).expect("pause");
        // The target's peer catches up now, before the reactor is back in its loop.
        let mut buf = vec![0; 256 << 10];
        let mut peer = pair.target_peer.take().expect("target peer");
        peer.set_nonblocking(true).expect("nonblocking");
        loop {
            match std::io::Read::read(&mut peer, &mut buf) {
                Ok(0) => panic!("the target closed"),
                Ok(n) => pair.drained.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("reading the target's socket: {e}"),
            }
        }
        peer.set_nonblocking(false).expect("blocking");
        pair.target_peer = Some(peer);
    }

    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        let mut pair = self.0.borrow_mut();
        pair.writability.push(writable);
        if writable {
            let writer = pair.conns[0];
            cx.resume_reading(writer).expect("resume");
        }
    }
}

/// A connection marked not writable by another's `write_to` and drained again before the
/// end of the iteration (here: its own event, later in the same poll, finds it writable and
/// flushes it) still tells its handler `false` and then `true`. The writer paused itself on the `false` it saw through
/// `is_writable_conn`, and only that `true` resumes it: without it the pair stalled for good,
/// as `tcp_proxy`'s 256 MiB test did once replies were written through.
#[test]
fn recovering_before_the_notice_still_tells_false_then_true() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let pair = Rc::new(RefCell::new(Pair::default()));
    let mut reactor = sockloop::Reactor::new().unwrap();
    let options = ListenOptions::new()
        .output_watermarks(1024, 4096)
        .pause_reading_over_high(false);
    let shared = pair.clone();
    let (_, addr) = reactor
        .listen_with(util::localhost(), options, move || PairSide(shared.clone()))
        .unwrap();
    let mut writer_peer = util::client(addr);
    util::run_until(&mut reactor, "the writer's accept", |_| {
        pair.borrow().conns.len() == 1
    });
    let target_peer = util::client(addr);
    pair.borrow_mut().target_peer = Some(target_peer.try_clone().unwrap());
    util::run_until(&mut reactor, "the target's accept", |_| {
        pair.borrow().conns.len() == 2
    });

    // A fresh connection is reported writable once; take those events now, so that the next
    // poll lists the writer's request first and then the target's byte.
    let deadline = std::time::Instant::now() + util::TIMEOUT;
    while reactor.run_once(Some(std::time::Duration::ZERO)).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "events keep coming");
    }
    writer_peer.write_all(b"go").unwrap();
    (&target_peer).write_all(b"x").unwrap();
    util::run_until(
        &mut reactor,
        "the target's writability to come back",
        |_| pair.borrow().writability.contains(&true),
    );
    assert_eq!(pair.borrow().writability, [false, true]);
    // The writer reads again.
    writer_peer.write_all(b"more").unwrap();
    util::run_until(&mut reactor, "the writer's second input", |_| {
        pair.borrow().writer_reads == 2
    });
    // And the target got every byte, in order.
    let (written, drained) = {
        let p = pair.borrow();
        (p.written, p.drained.len())
    };
    let mut target_peer = target_peer;
    let rest = util::read_exactly(&mut target_peer, written - drained);
    let mut got = std::mem::take(&mut pair.borrow_mut().drained);
    got.extend_from_slice(&rest);
    let want: Vec<u8> = util::pattern(7, 1024).repeat(written / 1024);
    assert_bytes_eq(&got, &want, "the target's bytes");
}
