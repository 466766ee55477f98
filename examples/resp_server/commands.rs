//! The commands and the data they work on: one map shared by every connection of the reactor.
//!
//! Each command checks its arity the way Redis does (a positive arity is exact, a negative one
//! a minimum) and answers with Redis's words, so clients and their error handling see no
//! difference. `SET` takes `NX`, `XX` and `GET`; the expiry options are refused with an error
//! (there are no expiries here). `CONFIG GET` knows `save` and `appendonly`, which
//! redis-benchmark asks for.

use std::collections::HashMap;

use crate::num::{parse_i64, push_i64};
use crate::parse::Argv;
use crate::reply::{self, c_str, Reply};

/// The keyspace.
pub type Map = HashMap<Vec<u8>, Vec<u8>>;

/// What the connection does once a command was answered.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Send the replies so far, then close (`QUIT`).
    Close,
}

struct Command {
    /// Lower case, as Redis names commands in its errors.
    name: &'static str,
    /// Argument count including the name: exact if positive, a minimum if negative.
    arity: i32,
    run: fn(&mut Map, &Argv<'_>, &mut Reply) -> After,
}

/// The command table, most frequent first (it is searched in order; names are compared only
/// when their lengths match).
const COMMANDS: &[Command] = &[
    command("get", 2, get),
    command("set", -3, set),
    command("ping", -1, ping),
    command("incr", 2, incr),
    command("del", -2, del),
    command("exists", -2, exists),
    command("echo", 2, echo),
    command("quit", -1, quit),
    command("config", -2, config),
];

const fn command(
    name: &'static str,
    arity: i32,
    run: fn(&mut Map, &Argv<'_>, &mut Reply) -> After,
) -> Command {
    Command { name, arity, run }
}

/// Runs one request (`argv` has at least the name) and appends its reply.
pub fn execute(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    let name = argv.get(0);
    let found = COMMANDS
        .iter()
        .find(|c| c.name.len() == name.len() && c.name.as_bytes().eq_ignore_ascii_case(name));
    let Some(command) = found else {
        out.unknown_command(name, argv.iter_from(1));
        return After::Continue;
    };
    let argc = argv.len() as i32;
    if (command.arity > 0 && argc != command.arity) || argc < -command.arity {
        out.wrong_arity(command.name);
        return After::Continue;
    }
    (command.run)(map, argv, out)
}

fn get(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    out.bulk_or_null(map.get(argv.get(1)).map(Vec::as_slice));
    After::Continue
}

fn set(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    let (key, value) = (argv.get(1), argv.get(2));
    let (mut nx, mut xx, mut get) = (false, false, false);
    for option in argv.iter_from(3) {
        if option.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if option.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if option.eq_ignore_ascii_case(b"get") {
            get = true;
        } else if [&b"ex"[..], b"px", b"exat", b"pxat", b"keepttl"]
            .iter()
            .any(|o| option.eq_ignore_ascii_case(o))
        {
            out.raw(b"-ERR expiry options of SET are not supported by this server\r\n");
            return After::Continue;
        } else {
            out.raw(reply::SYNTAX);
            return After::Continue;
        }
    }
    let old = map.get(key);
    let blocked = (nx && old.is_some()) || (xx && old.is_none());
    if get {
        out.bulk_or_null(old.map(Vec::as_slice));
    } else if blocked {
        out.raw(reply::NULL);
    } else {
        out.raw(reply::OK);
    }
    if !blocked {
        // Overwrite in place: the key is not copied again and the value's buffer is reused
        // when it is big enough, so a SET of an existing key allocates nothing.
        match map.get_mut(key) {
            Some(old) => {
                old.clear();
                old.extend_from_slice(value);
            }
            None => {
                map.insert(key.to_vec(), value.to_vec());
            }
        }
    }
    After::Continue
}

fn ping(_map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    match argv.len() {
        1 => out.raw(reply::PONG),
        2 => out.bulk(argv.get(1)),
        _ => out.wrong_arity("ping"),
    }
    After::Continue
}

fn echo(_map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    out.bulk(argv.get(1));
    After::Continue
}

fn incr(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    let key = argv.get(1);
    let current = match map.get(key) {
        None => 0,
        Some(text) => match parse_i64(text) {
            Some(n) => n,
            None => {
                out.raw(reply::NOT_AN_INTEGER);
                return After::Continue;
            }
        },
    };
    let Some(next) = current.checked_add(1) else {
        out.raw(reply::OVERFLOW);
        return After::Continue;
    };
    // The key is copied only when it is new; an existing value's buffer is rewritten in place.
    let value = match map.get_mut(key) {
        Some(value) => value,
        None => map.entry(key.to_vec()).or_default(),
    };
    value.clear();
    push_i64(value, next);
    out.integer(next);
    After::Continue
}

fn del(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    let removed = argv
        .iter_from(1)
        .filter(|k| map.remove(*k).is_some())
        .count();
    out.integer(removed as i64);
    After::Continue
}

fn exists(map: &mut Map, argv: &Argv<'_>, out: &mut Reply) -> After {
    // Like Redis, a key named twice counts twice.
    let found = argv.iter_from(1).filter(|k| map.contains_key(*k)).count();
    out.integer(found as i64);
    After::Continue
}

fn quit(_map: &mut Map, _argv: &Argv<'_>, out: &mut Reply) -> After {
    out.raw(reply::OK);
    After::Close
}

/// The configuration parameters `CONFIG GET` knows, with their values here: no snapshots and no
/// append-only file, since nothing is persisted. redis-benchmark asks for these two before it
/// starts and warns when it gets no answer.
const CONFIG: &[(&str, &str)] = &[("save", ""), ("appendonly", "no")];

/// `CONFIG GET <parameter>...`: a flat list of name, value pairs for the parameters it knows,
/// in the order asked (Redis also takes glob patterns; here a name matches only itself).
fn config<'a>(_map: &mut Map, argv: &Argv<'a>, out: &mut Reply) -> After {
    let sub = argv.get(1);
    if !sub.eq_ignore_ascii_case(b"get") {
        out.error_with(|text| {
            text.extend_from_slice(b"unknown subcommand '");
            text.extend_from_slice(c_str(sub, 128));
            text.extend_from_slice(b"'. Try CONFIG HELP.");
        });
        return After::Continue;
    }
    if argv.len() < 3 {
        out.wrong_arity("config|get");
        return After::Continue;
    }
    // Each known name is answered as it was asked (`APPENDONLY` stays upper case, as in Redis).
    let known = |name: &'a [u8]| {
        CONFIG
            .iter()
            .find(|(param, _)| param.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, value)| (name, value.as_bytes()))
    };
    out.array_header(2 * argv.iter_from(2).filter_map(known).count());
    for (name, value) in argv.iter_from(2).filter_map(known) {
        out.bulk(name);
        out.bulk(value);
    }
    After::Continue
}
