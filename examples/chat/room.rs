//! The chat room: who is here under which nickname, and delivery of a line to everyone else.
//!
//! One `Room` is shared by every member's handler as `Rc<RefCell<Room>>`: the reactor runs all
//! handlers on one thread, so no lock is needed, and no callback of another member can run while
//! a handler holds the borrow (writes to other connections are only queued).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use sockloop::{ConnId, Context};

/// Longest nickname, in bytes.
pub const MAX_NICK: usize = 32;

/// Settings of a room.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Longest line a member may send, in bytes, not counting its line ending.
    pub max_line: usize,
    /// How long a member may go on not reading what it is sent (its connection not writable)
    /// before it is dropped.
    pub slow_limit: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_line: 4096,
            slow_limit: Duration::from_secs(10),
        }
    }
}

/// What the room knows of one connection. (Whether it keeps up is asked of the reactor,
/// `Context::is_writable_conn`, when a line is delivered.)
struct Entry {
    /// None until the member has chosen one; only named members take part.
    nick: Option<String>,
    /// Lines it was not sent while not writable, since it was last told.
    missed: u64,
}

/// Why a nickname was refused; its `Display` is the message the member gets.
#[derive(Debug, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    Spaces,
    Unprintable,
    Slash,
    Taken,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NickError::Empty => "a nickname cannot be empty",
            NickError::TooLong => "a nickname is at most 32 bytes",
            NickError::Spaces => "a nickname cannot contain spaces",
            NickError::Unprintable => "a nickname must be printable UTF-8",
            NickError::Slash => "a nickname cannot start with /",
            NickError::Taken => "that nickname is taken",
        })
    }
}

/// Checks a nickname's form (not whether it is taken).
pub fn check_nick(nick: &[u8]) -> Result<&str, NickError> {
    let nick = std::str::from_utf8(nick).map_err(|_| NickError::Unprintable)?;
    if nick.is_empty() {
        Err(NickError::Empty)
    } else if nick.len() > MAX_NICK {
        Err(NickError::TooLong)
    } else if nick.chars().any(char::is_whitespace) {
        Err(NickError::Spaces)
    } else if nick.chars().any(char::is_control) {
        Err(NickError::Unprintable)
    } else if nick.starts_with('/') {
        Err(NickError::Slash)
    } else {
        Ok(nick)
    }
}

/// The members of one chat room.
pub struct Room {
    config: Config,
    members: HashMap<ConnId, Entry>,
    /// Nicknames in lower case, to their members: "Ann" and "ann" cannot both be here.
    nicks: HashMap<String, ConnId>,
}

impl Room {
    pub fn new(config: Config) -> Room {
        Room {
            config,
            members: HashMap::new(),
            nicks: HashMap::new(),
        }
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// A connection arrived; it takes part once it has a nickname.
    pub fn enter(&mut self, id: ConnId) {
        let entry = Entry {
            nick: None,
            missed: 0,
        };
        self.members.insert(id, entry);
    }

    pub fn nick(&self, id: ConnId) -> Option<&str> {
        self.members.get(&id)?.nick.as_deref()
    }

    /// Gives `id` the nickname `nick` (already checked with [`check_nick`]); returns its
    /// previous one.
    pub fn set_nick(&mut self, id: ConnId, nick: &str) -> Result<Option<String>, NickError> {
        let key = nick.to_lowercase();
        match self.nicks.get(&key) {
            Some(&owner) if owner != id => return Err(NickError::Taken),
            _ => {}
        }
        let entry = self.members.get_mut(&id).ok_or(NickError::Empty)?;
        let old = entry.nick.replace(nick.to_string());
        if let Some(old) = &old {
            self.nicks.remove(&old.to_lowercase());
        }
        self.nicks.insert(key, id);
        Ok(old)
    }

    /// Removes `id`; returns its nickname if it had one (then the others should hear it left).
    pub fn leave(&mut self, id: ConnId) -> Option<String> {
        let nick = self.members.remove(&id)?.nick?;
        self.nicks.remove(&nick.to_lowercase());
        Some(nick)
    }

    /// Nicknames of every named member, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .members
            .values()
            .filter_map(|m| m.nick.as_deref())
            .collect();
        names.sort_unstable_by_key(|n| n.to_lowercase());
        names
    }

    /// Queues `line` for every named member except `from`. A member that is not writable (more
    /// than its high watermark queued: it does not read what it is sent) is skipped and
    /// counted: one member that does not read must neither delay the others nor make the
    /// server hold an unbounded backlog for it.
    pub fn broadcast(&mut self, cx: &mut Context<'_>, from: Option<ConnId>, line: &[u8]) {
        for (&id, entry) in &mut self.members {
            if Some(id) == from || entry.nick.is_none() {
                continue;
            }
            match cx.is_writable_conn(id) {
                Ok(true) => {}
                Ok(false) => {
                    entry.missed += 1;
                    continue;
                }
                // Closed already: its `on_close` will remove it.
                Err(_) => continue,
            }
            if let Err(e) = cx.write_to(id, line) {
                // Closing: its `on_close` will remove it.
                log::debug!("{id}: line not delivered: {e}");
            }
        }
    }

    /// How many lines `id` missed since it was last asked (and starts counting afresh).
    pub fn take_missed(&mut self, id: ConnId) -> u64 {
        self.members
            .get_mut(&id)
            .map_or(0, |m| std::mem::take(&mut m.missed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_checked() {
        assert_eq!(check_nick(b"ann"), Ok("ann"));
        assert_eq!(check_nick(b""), Err(NickError::Empty));
        assert_eq!(check_nick(&[b'a'; 33]), Err(NickError::TooLong));
        assert_eq!(check_nick(b"a b"), Err(NickError::Spaces));
        assert_eq!(check_nick(b"a\x1bb"), Err(NickError::Unprintable));
        assert_eq!(check_nick(b"\xff"), Err(NickError::Unprintable));
        assert_eq!(check_nick(b"/x"), Err(NickError::Slash));
    }
}
