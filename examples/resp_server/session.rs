//! One client connection: parse every complete request in what arrived, run them in order,
//! and hand all their replies to the reactor at once.

use std::cell::RefCell;
use std::rc::Rc;

use sockloop::{CloseReason, Context, Handler, Input};

use crate::commands::{self, After, Map};
use crate::parse::{Parser, Step};
use crate::reply::Reply;

/// What every connection of the reactor shares: the keyspace and one reply buffer. One thread
/// runs every handler, one callback at a time, so a `RefCell` borrowed for the length of a
/// callback is all the locking needed, and one reply buffer serves every connection.
#[derive(Default)]
pub struct Shared {
    pub map: Map,
    reply: Reply,
}

/// A new, empty server state to hand to [`Session::new`] for each accepted connection.
pub fn shared() -> Rc<RefCell<Shared>> {
    Rc::new(RefCell::new(Shared::default()))
}

/// The handler of one client connection.
pub struct Session {
    shared: Rc<RefCell<Shared>>,
    parser: Parser,
}

impl Session {
    pub fn new(shared: Rc<RefCell<Shared>>) -> Session {
        Session {
            shared,
            parser: Parser::default(),
        }
    }
}

impl Handler for Session {
    fn on_open(&mut self, cx: &mut Context<'_>) {
        log::info!("{}: connected from {}", cx.id(), crate::proxy::peer(cx));
    }

    fn on_data(&mut self, cx: &mut Context<'_>, input: &mut Input<'_>) {
        let data = input.as_slice();
        let mut shared = self.shared.borrow_mut();
        let Shared { map, reply } = &mut *shared;
        // Start of the first request not yet run; a partial request from here on is left in
        // `input`, and the parser remembers how far into it it got.
        let mut done = 0;
        let mut close = false;
        loop {
            let request = &data[done..];
            match self.parser.parse(request) {
                Step::Command(len) => {
                    let after = commands::execute(map, &self.parser.argv(request), reply);
                    self.parser.done();
                    done += len;
                    if after == After::Close {
                        close = true;
                        break;
                    }
                }
                Step::Nothing(len) => done += len,
                Step::Partial => break,
                Step::Error(e) => {
                    reply.error_with(|text| e.message(text));
                    log::warn!("{}: closing after a protocol error: {e:?}", cx.id());
                    close = true;
                    break;
                }
            }
        }
        // After QUIT or a protocol error nothing more is read: the rest is dropped.
        input.consume(if close { data.len() } else { done });
        if !reply.is_empty() {
            cx.write(reply.bytes());
            reply.clear();
        }
        if close {
            // Graceful: the replies, the last one included, are sent before the FIN.
            cx.close();
        }
    }

    fn on_close(&mut self, cx: &mut Context<'_>, reason: CloseReason) {
        log::debug!("{}: {reason}", cx.id());
    }
}
