//! The chat example (`examples/chat`), included here with `#[path]` so that these tests run
//! exactly its handler, with members on raw TCP streams as `nc` users would be: the nickname
//! handshake, one delivery order for everyone, join and leave notices, an oversized line refused
//! without losing the member, a member that stops reading skipped (the others receive the whole
//! flood meanwhile) and told what it missed when it catches up, and one that never reads again
//! dropped after the slow limit while the others chat on.

#[path = "../examples/chat/member.rs"]
mod member;
#[path = "../examples/chat/room.rs"]
mod room;
mod util;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use room::Config;
use util::ReactorThread;

/// A room on its own reactor thread.
fn chat_room(config: Config) -> (SocketAddr, ReactorThread) {
    util::spawn_reactor(move |reactor| member::listen(reactor, util::localhost(), config).unwrap())
}

/// One member's connection, read line by line.
struct Chatter {
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Chatter {
    /// Connects and reads the greeting.
    fn connect(addr: SocketAddr) -> Chatter {
        Chatter::over(util::client(addr))
    }

    fn over(stream: TcpStream) -> Chatter {
        let lines = BufReader::new(stream.try_clone().unwrap());
        let mut chatter = Chatter { stream, lines };
        assert!(chatter.line().starts_with("* welcome"));
        chatter
    }

    /// Connects, chooses `nick` and reads the answer.
    fn join(addr: SocketAddr, nick: &str) -> Chatter {
        let mut chatter = Chatter::connect(addr);
        chatter.send(nick);
        let welcome = chatter.line();
        assert!(
            welcome.starts_with(&format!("* you are {nick};")),
            "{welcome:?}"
        );
        chatter
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The next line, without its `\n`; panics on EOF or after the read timeout.
    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) => panic!("EOF while waiting for a line"),
            Ok(_) => line.trim_end_matches('\n').to_string(),
            Err(e) => panic!("no line: {e}"),
        }
    }

    /// The next line that is not a notice of lines missed while this member lagged (a reader
    /// descheduled for long enough on a busy machine is one); adds those to `missed`.
    #[track_caller]
    fn chat_line(&mut self, missed: &mut u64) -> String {
        loop {
            let line = self.line();
            match line.strip_prefix("* ").and_then(|l| {
                l.strip_suffix(" lines were not sent to you while you were not reading")
            }) {
                Some(n) => *missed += n.parse::<u64>().unwrap(),
                None => return line,
            }
        }
    }

    #[track_caller]
    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }
}

#[test]
fn the_first_line_is_the_nickname_and_the_others_hear_who_joins() {
    let (addr, _server) = chat_room(Config::default());
    let mut ann = Chatter::connect(addr);
    ann.send("ann");
    ann.expect("* you are ann; nobody else is here yet");
    let mut bob = Chatter::connect(addr);
    bob.send("/nick bob");
    bob.expect("* you are bob; here (1): ann");
    ann.expect("* bob joined");
    bob.send("/who");
    bob.expect("* here (2): ann, bob");
    // A member without a nickname does not hear the room yet.
    let mut cy = Chatter::connect(addr);
    ann.send("hello");
    bob.expect("<ann> hello");
    cy.send("cy");
    cy.expect("* you are cy; here (2): ann, bob");
    bob.expect("* cy joined");
    ann.expect("* cy joined");
}

#[test]
fn bad_or_taken_nicknames_are_refused_and_another_can_be_chosen() {
    let (addr, _server) = chat_room(Config::default());
    let _ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::connect(addr);
    for (wanted, error) in [
        (
            "bob smith",
            "! a nickname cannot contain spaces; try another",
        ),
        (
            &"b".repeat(33),
            "! a nickname is at most 32 bytes; try another",
        ),
        ("ANN", "! that nickname is taken; try another"),
        ("/nick", "! a nickname cannot be empty; try another"),
        ("/nick /x", "! a nickname cannot start with /; try another"),
    ] {
        bob.send(wanted);
        bob.expect(error);
    }
    bob.send(&"b".repeat(32));
    assert!(bob.line().starts_with("* you are bbbb"));
    bob.send("/nick bob");
    bob.expect("* you are now bob");
    bob.send("/frobnicate");
    bob.expect("! unknown command /frobnicate; /help lists them");
}

#[test]
fn every_member_receives_the_lines_in_one_order() {
    const LINES: usize = 200;
    let (addr, _server) = chat_room(Config::default());
    let mut ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::join(addr, "bob");
    ann.expect("* bob joined");
    let mut cy = Chatter::join(addr, "cy");
    let mut dee = Chatter::join(addr, "dee");
    ann.expect("* cy joined");
    ann.expect("* dee joined");
    bob.expect("* cy joined");
    bob.expect("* dee joined");
    cy.expect("* dee joined");
    // Ann and Bob talk at the same time.
    let senders: Vec<_> = [("ann", &ann.stream), ("bob", &bob.stream)]
        .into_iter()
        .map(|(nick, stream)| {
            let mut stream = stream.try_clone().unwrap();
            thread::spawn(move || {
                for i in 0..LINES {
                    stream
                        .write_all(format!("{nick} {i}\n").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let seen_by_cy: Vec<String> = (0..2 * LINES).map(|_| cy.line()).collect();
    let seen_by_dee: Vec<String> = (0..2 * LINES).map(|_| dee.line()).collect();
    assert_eq!(
        seen_by_cy, seen_by_dee,
        "two listeners saw different orders"
    );
    for nick in ["ann", "bob"] {
        let theirs: Vec<&String> = seen_by_cy
            .iter()
            .filter(|l| l.starts_with(&format!("<{nick}>")))
            .collect();
        let want: Vec<String> = (0..LINES).map(|i| format!("<{nick}> {nick} {i}")).collect();
        assert_eq!(theirs, want.iter().collect::<Vec<_>>(), "{nick}'s lines");
    }
    // Each talker hears the other in order and never itself.
    for i in 0..LINES {
        ann.expect(&format!("<bob> bob {i}"));
        bob.expect(&format!("<ann> ann {i}"));
    }
}

#[test]
fn leaving_is_announced_whether_by_quit_or_by_hanging_up() {
    let (addr, _server) = chat_room(Config::default());
    let mut ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::join(addr, "bob");
    let cy = Chatter::join(addr, "cy");
    ann.expect("* bob joined");
    ann.expect("* cy joined");
    bob.expect("* cy joined");
    bob.send("/quit");
    bob.expect("* bye");
    util::assert_eof(&mut bob.stream);
    ann.expect("* bob left");
    drop(cy);
    ann.expect("* cy left");
    ann.send("/who");
    ann.expect("* here (1): ann");
}

#[test]
fn a_5_kib_line_is_refused_politely_and_the_member_chats_on() {
    let (addr, _server) = chat_room(Config::default());
    let mut ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::join(addr, "bob");
    ann.expect("* bob joined");
    let refused = "! line too long (the limit is 4096 bytes); it was not sent";

    // Whole: the line arrives complete, and too long.
    ann.send(&"x".repeat(5 << 10));
    ann.expect(refused);
    ann.send("short again");
    bob.expect("<ann> short again");

    // In pieces: refused as soon as it is too long, the rest skipped as it arrives.
    ann.stream.write_all(&[b'y'; 4200]).unwrap();
    ann.expect(refused);
    ann.stream.write_all(&[b'z'; 920]).unwrap();
    ann.send(" end of the long line");
    ann.send("and this one counts");
    bob.expect("<ann> and this one counts");

    // Exactly at the limit is fine.
    ann.send(&"w".repeat(4096));
    assert_eq!(bob.line().len(), "<ann> ".len() + 4096);
}

/// Lines of 1 KiB that Ann floods the room with: 8 MiB, more than the kernel buffers towards a
/// member that does not read.
const BULK_LINES: usize = 8192;
/// The flood's pace: about 32 MiB/s, which a reading member keeps up with.
const FLOOD_RATE: f64 = 32.0 * 1024.0 * 1024.0;

/// Joins as `nick` with a 4 KiB receive buffer, so that the server's output to it backs up
/// soon once it stops reading.
fn join_with_small_buffer(addr: SocketAddr, nick: &str) -> Chatter {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(util::TIMEOUT)).unwrap();
    let mut chatter = Chatter::over(stream);
    chatter.send(nick);
    assert!(chatter.line().starts_with(&format!("* you are {nick};")));
    chatter
}

/// Sends [`BULK_LINES`] numbered lines of about 1 KiB from `stream` at [`FLOOD_RATE`], on a
/// thread of its own.
fn flood(stream: &TcpStream) -> thread::JoinHandle<()> {
    let mut flood = stream.try_clone().unwrap();
    thread::spawn(move || {
        let filler = "f".repeat(1000);
        let started = Instant::now();
        for i in 0..BULK_LINES {
            flood
                .write_all(format!("{i:05} {filler}\n").as_bytes())
                .unwrap();
            // Pacing (not waiting for anything).
            let due = Duration::from_secs_f64(i as f64 * 1007.0 / FLOOD_RATE);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                thread::sleep(ahead);
            }
        }
    })
}

/// The number of a flood line `<ann> NNNNN fff...`.
#[track_caller]
fn flood_line_number(line: &str) -> usize {
    line.strip_prefix("<ann> ")
        .and_then(|rest| rest.get(..5))
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:.40}"))
}

/// Reads the flood as a reading member: every line in order, some possibly skipped (counted in
/// `missed`) if this reader was descheduled for long enough on a busy machine.
fn read_flood(chatter: &mut Chatter, missed: &mut u64) {
    let mut next = 0;
    while next < BULK_LINES {
        let i = flood_line_number(&chatter.chat_line(missed));
        assert!(i >= next, "line {i} after line {next}: out of order");
        next = i + 1;
    }
}

/// Zed stops reading during a flood and never reads again: the room drops it once it has been
/// stuck for the slow limit, announces that to everyone, and resets its connection; Ann and Bob
/// chat on. Bob reads the whole flood and Ann's pings in order meanwhile; when exactly Zed is
/// dropped among them is the machine's business, so the notice may come anywhere in Bob's
/// stream, but never less than the slow limit after the flood began (Zed was writable until
/// then). That the others are served while a member is stuck, without waiting for it to be
/// dropped, is proved by `a_member_that_lags_and_catches_up_...`, where the stuck member is
/// never dropped and Bob still receives the whole flood before it reads again.
#[test]
fn a_member_that_never_reads_is_skipped_then_dropped_without_delaying_the_others() {
    const PINGS: usize = 20;
    const SLOW_LIMIT: Duration = Duration::from_secs(2);
    const DROPPED: &str = "* zed was dropped (not reading)";
    let config = Config {
        slow_limit: SLOW_LIMIT,
        ..Config::default()
    };
    let (addr, _server) = chat_room(config);
    let mut ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::join(addr, "bob");
    ann.expect("* bob joined");

    // Zed joins with a small receive buffer and never reads again.
    let mut zed = join_with_small_buffer(addr, "zed").stream;
    ann.expect("* zed joined");
    bob.expect("* zed joined");

    // Ann floods the room (at a pace a reader keeps up with); Bob reads, Zed does not.
    let flood_began = Instant::now();
    let flooder = flood(&ann.stream);
    let mut missed = 0;
    let mut dropped_seen: Option<Instant> = None;
    // Bob's next line other than the drop notice, which is noted when it passes.
    let mut bob_line = |bob: &mut Chatter, missed: &mut u64| loop {
        let line = bob.chat_line(missed);
        if line != DROPPED {
            return line;
        }
        assert!(dropped_seen.is_none(), "zed was dropped twice");
        dropped_seen = Some(Instant::now());
    };
    let mut next = 0;
    while next < BULK_LINES {
        let i = flood_line_number(&bob_line(&mut bob, &mut missed));
        assert!(i >= next, "line {i} after line {next}: out of order");
        next = i + 1;
    }
    flooder.join().unwrap();
    let bulk = flood_began.elapsed();

    // Bob hears each of Ann's pings, whether Zed is still stuck or already dropped.
    let mut slowest = Duration::ZERO;
    for i in 0..PINGS {
        let sent = Instant::now();
        ann.send(&format!("ping {i}"));
        assert_eq!(bob_line(&mut bob, &mut missed), format!("<ann> ping {i}"));
        slowest = slowest.max(sent.elapsed());
    }
    eprintln!(
        "8 MiB to bob in {bulk:.2?} ({missed} lines skipped while he lagged); slowest of \
         {PINGS} pings {slowest:.2?}; zed's drop seen by bob {:?} after the flood began",
        dropped_seen.map(|at| at - flood_began)
    );

    // Zed is dropped, and everyone hears why (Bob perhaps already did, among the lines above).
    let dropped_at = match dropped_seen {
        Some(at) => at,
        None => {
            bob.expect(DROPPED);
            Instant::now()
        }
    };
    ann.expect(DROPPED);
    assert!(
        dropped_at - flood_began >= SLOW_LIMIT,
        "zed was dropped {:?} after the flood began, before the {SLOW_LIMIT:?} slow limit",
        dropped_at - flood_began
    );
    // Zed's connection was reset (after whatever its buffer held).
    let mut buf = vec![0; 1 << 16];
    loop {
        match zed.read(&mut buf) {
            Ok(0) => panic!("zed got a clean EOF; a reset was expected"),
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
                break;
            }
        }
    }
    // Zed was told nothing about a missed count: it never caught up. Ann and Bob chat on.
    bob.send("still here");
    ann.expect("<bob> still here");
}

/// Zed reads nothing while Ann floods the room, and its slow limit is the hang guard, so it is
/// never dropped here. Bob still receives the whole flood, in order, before Zed reads a byte:
/// the room does not wait for a stuck member (if it did, Bob and Zed would wait for each other
/// until the hang guard). Then Zed catches up and is told exactly how many lines it was not
/// sent.
#[test]
fn a_member_that_lags_and_catches_up_is_told_exactly_how_many_lines_it_missed() {
    let (addr, _server) = chat_room(Config {
        slow_limit: util::TIMEOUT,
        ..Config::default()
    });
    let mut ann = Chatter::join(addr, "ann");
    let mut bob = Chatter::join(addr, "bob");
    ann.expect("* bob joined");
    let mut zed = join_with_small_buffer(addr, "zed");
    ann.expect("* zed joined");
    bob.expect("* zed joined");

    // Zed reads nothing while Ann floods the room; once Bob has read the whole flood, the room
    // has decided for every line whether Zed was sent it.
    let flooder = flood(&ann.stream);
    read_flood(&mut bob, &mut 0);
    flooder.join().unwrap();

    // Zed catches up: what it was sent arrives in order, then the count of what it was not.
    let mut received = 0;
    let mut next = 0;
    let missed = loop {
        let line = zed.line();
        if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" lines were not sent to you while you were not reading"))
        {
            break n.parse::<usize>().unwrap();
        }
        let i = flood_line_number(&line);
        assert!(i >= next, "line {i} after line {next}: out of order");
        next = i + 1;
        received += 1;
    };
    eprintln!("zed, not reading during an 8 MiB flood: sent {received} lines, skipped {missed}");
    assert!(missed > 0, "zed was never skipped");
    assert_eq!(
        received + missed,
        BULK_LINES,
        "lines lost without being counted"
    );
    // Zed is in the room again like anyone else.
    ann.send("welcome back");
    zed.expect("<ann> welcome back");
    bob.expect("<ann> welcome back");
}
