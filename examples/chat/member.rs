//! One chat member's connection: splits what it sends into lines, runs its commands, and hands
//! its messages to the [`Room`].
//!
//! Used by `main.rs`, and included by `tests/chat.rs` (with `#[path]`) so that the tests run
//! exactly this code.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use sockloop::{CloseReason, Context, Handler, Input, ListenOptions, Reactor, TimerId};

use crate::room::{check_nick, Config, Room};

/// What a member sees first.
const GREETING: &[u8] = b"* welcome to sockloop chat. Your nickname? (up to 32 bytes, no \
spaces; /help lists the commands)\n";
const HELP: &[u8] = b"* commands: /nick NAME (choose or change your nickname), /who (who is \
here), /quit (leave), /help; any other line is sent to everyone\n";

/// Bytes of one member's lines fanned out per loop iteration; past that, the member is not
/// read again until the next iteration.
///
/// The reactor tells a laggard apart at once (a `write_to` that takes a member past its high
/// mark is written out there and then, and `is_writable_conn` turns false if the kernel refuses
/// it), so this budget is no longer what bounds memory. It keeps the room fair: one member
/// flooding cannot make everyone else's lines wait behind a whole read budget (1 MiB per event)
/// of its own, fanned out to every member in one go.
const SPEAK_BUDGET: usize = 64 << 10;

/// Listener options for a chat: a member more than 64 KiB behind is not reading (it is then
/// skipped, and dropped after `Config::slow_limit`); 1 MiB is the backstop (about seven members
/// flooding in the same iteration). A member can leave at most one line's worth of bytes
/// unconsumed.
pub fn listen_options(config: &Config) -> ListenOptions {
    ListenOptions::new()
        .output_watermarks(16 << 10, 64 << 10)
        .max_output(1 << 20)
        .max_input(config.max_line + 2)
}

/// Serves a chat room on `addr`; returns the address it listens on.
pub fn listen(reactor: &mut Reactor, addr: SocketAddr, config: Config) -> io::Result<SocketAddr> {
    let room = Rc::new(RefCell::new(Room::new(config)));
    let options = listen_options(&config);
    let (_, bound) = reactor.listen_with(addr, options, move || Member::new(Rc::clone(&room)))?;
    Ok(bound)
}

/// The handler of one member's connection.
pub struct Member {
    room: Rc<RefCell<Room>>,
    /// Inside a line that was too long: everything up to its end is thrown away.
    discarding: bool,
    /// Armed while the connection is not writable: when it fires, the member is dropped.
    slow: Option<TimerId>,
    /// Bytes of its lines fanned out since it was last throttled ([`SPEAK_BUDGET`]).
    heard: usize,
    /// Armed while it is not read, to read it again on the next iteration.
    throttled: Option<TimerId>,
}

impl Member {
    pub fn new(room: Rc<RefCell<Room>>) -> Member {
        Member {
            room,
            discarding: false,
            slow: None,
            heard: 0,
            throttled: None,
        }
    }

    /// One complete line, without its line ending.
    fn line(&mut self, cx: &mut Context<'_>, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if let Some(command) = line.strip_prefix(b"/") {
            return self.command(cx, command);
        }
        let me = cx.id();
        let mut room = self.room.borrow_mut();
        let Some(nick) = room.nick(me).map(str::to_string) else {
            drop(room);
            // Before a nickname is chosen, a plain line is the nickname.
            return self.choose_nick(cx, line);
        };
        let mut message = format!("<{nick}> ").into_bytes();
        sanitize_into(&mut message, line);
        message.push(b'\n');
        room.broadcast(cx, Some(me), &message);
        self.heard += message.len();
    }

    fn command(&mut self, cx: &mut Context<'_>, command: &[u8]) {
        let (name, arg) = match command.iter().position(|&b| b == b' ') {
            Some(space) => (&command[..space], &command[space + 1..]),
            None => (command, &b""[..]),
        };
        match name {
            b"nick" => self.choose_nick(cx, arg),
            b"who" => {
                let room = self.room.borrow();
                let names = room.names();
                let line = format!("* here ({}): {}\n", names.len(), names.join(", "));
                drop(room);
                cx.write(line.as_bytes());
            }
            b"help" => cx.write(HELP),
            b"quit" => {
                // Announced now: the close itself completes only once the client has closed its
                // side too, which an `nc` user may take a while to do.
                let me = cx.id();
                let mut room = self.room.borrow_mut();
                if let Some(nick) = room.leave(me) {
                    log::info!("{me}: {nick} quit");
                    room.broadcast(cx, None, format!("* {nick} left\n").as_bytes());
                }
                drop(room);
                cx.write(b"* bye\n");
                cx.close();
            }
            _ => {
                let mut line = b"! unknown command /".to_vec();
                sanitize_into(&mut line, name);
                line.extend_from_slice(b"; /help lists them\n");
                cx.write(&line);
            }
        }
    }

    fn choose_nick(&mut self, cx: &mut Context<'_>, wanted: &[u8]) {
        let me = cx.id();
        let mut room = self.room.borrow_mut();
        let chosen =
            check_nick(wanted).and_then(|nick| room.set_nick(me, nick).map(|old| (nick, old)));
        match chosen {
            Err(e) => {
                drop(room);
                cx.write(format!("! {e}; try another\n").as_bytes());
            }
            Ok((nick, None)) => {
                log::info!("{me}: joined as {nick}");
                let others: Vec<&str> = room.names().into_iter().filter(|&n| n != nick).collect();
                let welcome = match others.len() {
                    0 => format!("* you are {nick}; nobody else is here yet\n"),
                    n => format!("* you are {nick}; here ({n}): {}\n", others.join(", ")),
                };
                cx.write(welcome.as_bytes());
                room.broadcast(cx, Some(me), format!("* {nick} joined\n").as_bytes());
            }
            Ok((nick, Some(old))) => {
                log::info!("{me}: {old} is now {nick}");
                cx.write(format!("* you are now {nick}\n").as_bytes());
                room.broadcast(cx, Some(me), format!("* {old} is now {nick}\n").as_bytes());
            }
        }
    }

    /// Tells the member it sent an oversized line.
    fn reject_long_line(&mut self, cx: &mut Context<'_>) {
        let max = self.room.borrow().config().max_line;
        log::debug!("{}: line over {max} bytes discarded", cx.id());
        cx.write(
            format!("! line too long (the limit is {max} bytes); it was not sent\n").as_bytes(),
        );
    }
}

/// Appends `text` for other members' terminals: invalid UTF-8 and control characters (escape
/// sequences could move another user's cursor or clear their screen) become U+FFFD.
fn sanitize_into(out: &mut Vec<u8>, text: &[u8]) {
    for c in String::from_utf8_lossy(text).chars() {
        let c = if c.is_control() && c != '\t' {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        };
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

impl Handler for Member {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        self.room.borrow_mut().enter(cx.id());
        cx.write(GREETING);
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let max = self.room.borrow().config().max_line;
        loop {
            let newline = input.iter().position(|&b| b == b'\n');
            if self.discarding {
                // The rest of an oversized line: drop it up to and including its end.
                match newline {
                    Some(end) => input.consume(end + 1),
                    None => {
                        input.consume(input.len());
                        break;
                    }
                }
                self.discarding = false;
                continue;
            }
            match newline {
                Some(end) => {
                    let line = input.take_prefix(end + 1);
                    let line = &line[..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.len() > max {
                        self.reject_long_line(cx);
                    } else {
                        self.line(cx, line);
                    }
                }
                // No end in sight yet, and already too long (even if a '\r' ends it): refuse it
                // now rather than hold it, and skip the rest as it arrives.
                None if input.len() > max + 1 => {
                    self.reject_long_line(cx);
                    input.consume(input.len());
                    self.discarding = true;
                    break;
                }
                // A partial line: the reactor keeps it and offers it again with what follows.
                None => break,
            }
        }
        if self.heard >= SPEAK_BUDGET && self.throttled.is_none() {
            // Every complete line was taken (the reactor offers leftovers again only when more
            // bytes arrive, so none may wait here); the next are read on the next iteration.
            let me = cx.id();
            let _ = cx.pause_reading(me);
            self.throttled = Some(cx.set_timer(Duration::ZERO));
        }
    }

    fn on_writability(&mut self, cx: &mut Context<'_>, writable: bool) {
        let me = cx.id();
        if !writable {
            let limit = self.room.borrow().config().slow_limit;
            log::debug!("{me}: not reading; skipped until it catches up, dropped in {limit:?}");
            self.slow = Some(cx.set_timer(limit));
            return;
        }
        if let Some(timer) = self.slow.take() {
            cx.cancel_timer(timer);
        }
        let missed = self.room.borrow_mut().take_missed(me);
        if missed > 0 {
            let line =
                format!("* {missed} lines were not sent to you while you were not reading\n");
            cx.write(line.as_bytes());
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_>, timer: TimerId) {
        let me = cx.id();
        if self.throttled == Some(timer) {
            self.throttled = None;
            self.heard = 0;
            let _ = cx.resume_reading(me);
            return;
        }
        if self.slow != Some(timer) || cx.is_writable() {
            return;
        }
        let mut room = self.room.borrow_mut();
        let limit = room.config().slow_limit;
        // Leaving the room now means `on_close` has nobody to announce: this is the notice.
        if let Some(nick) = room.leave(me) {
            log::warn!("{me}: {nick} dropped: not reading for {limit:?}");
            room.broadcast(
                cx,
                None,
                format!("* {nick} was dropped (not reading)\n").as_bytes(),
            );
        }
        drop(room);
        // A reset: its output is stuck anyway, and a graceful close would wait to deliver it.
        cx.abort();
    }

    fn on_shutdown(&mut self, cx: &mut Context<'_>) {
        cx.write(b"* the server is shutting down\n");
        cx.close();
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        let me = cx.id();
        let mut room = self.room.borrow_mut();
        if let Some(nick) = room.leave(me) {
            log::info!("{me}: {nick} left ({reason})");
            room.broadcast(cx, None, format!("* {nick} left\n").as_bytes());
        }
    }
}
