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

/// Echoes each input, then stops reading itself for `PAUSE`.
struct Gate;

const PAUSE: std::time::Duration = std::time::Duration::from_millis(80);

impl Handler for Gate {
    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        cx.write(input.take_all());
        let me = cx.id();
        cx.pause_reading(me).unwrap();
        cx.set_timer(PAUSE);
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, _timer: sockloop::TimerId) {
        let me = cx.id();
        cx.resume_reading(me).unwrap();
    }
}

/// Input sent while a handler has paused reading waits in the kernel, and is read (no edge is
/// lost) once the handler resumes.
#[test]
fn paused_reading_holds_input_until_resumed() {
    let (addr, server) = util::serve(|| Gate);
    let mut c = util::client(addr);
    for i in 0..3u8 {
        c.write_all(&[i]).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(util::read_exactly(&mut c, 1), [i]);
        // The first byte is read at once; each later one waits for the previous pause to end.
        if i > 0 {
            assert!(
                t.elapsed() >= PAUSE / 2,
                "byte {i} echoed after {:?}",
                t.elapsed()
            );
        }
        // Send the next byte right away: it must wait out this pause.
    }
    drop(c);
    server.wait_for_connections(0);
    server.stop();
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
