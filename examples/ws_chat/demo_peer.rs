//! `--demo-peer`: a second member, "bob", so that one browser alone sees a conversation.
//!
//! Bob is an ordinary tungstenite client (blocking, on a thread of his own, as any other
//! client program would be): he joins through the same listener as everyone else, greets each
//! member who joins after him, and answers each member's first message once. The README's
//! screenshot was taken with him in the room.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};

use tungstenite::error::Error;
use tungstenite::Message;

/// The demo member's name.
pub const NAME: &str = "bob";

/// Starts bob on his own thread; he stays until the server closes his connection.
///
/// # Errors
///
/// The error of spawning the thread.
pub fn spawn(addr: SocketAddr) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("demo-peer".into())
        .spawn(move || match chat(addr) {
            Ok(()) | Err(Error::ConnectionClosed) => log::info!("demo peer {NAME}: left"),
            Err(e) => log::warn!("demo peer {NAME}: {e}"),
        })
}

fn chat(addr: SocketAddr) -> tungstenite::Result<()> {
    let url = format!("ws://{addr}/ws?name={NAME}");
    let (mut ws, _response) = tungstenite::connect(url.as_str())?;
    log::info!("demo peer {NAME}: joined {url}");
    let mut answered = HashSet::new();
    loop {
        // Pings are answered by tungstenite. After the server's close frame, the next read
        // sends the answer and reports the end.
        let Message::Text(text) = ws.read()? else {
            continue;
        };
        if let Some(reply) = reply_to(text.as_str(), &mut answered) {
            ws.send(Message::text(reply))?;
        }
    }
}

/// What bob says in answer to a line from the room, if anything.
fn reply_to(line: &str, answered: &mut HashSet<String>) -> Option<String> {
    if let Some((who, _)) = line
        .strip_prefix("* ")
        .and_then(|l| l.split_once(" joined"))
    {
        return (who != NAME)
            .then(|| format!("welcome, {who}! this room runs on one sockloop thread"));
    }
    let (who, said) = line.split_once(": ")?;
    if who == NAME || !answered.insert(who.to_string()) {
        return None;
    }
    Some(format!(
        "{who}, \"{said}\" reached everyone here in the same order"
    ))
}
