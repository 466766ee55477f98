//! `--demo-peer`: a second member, "bob", so that one browser alone sees a conversation.
//!
//! Bob is an ordinary tungstenite client (blocking, on a thread of his own, as any other
//! client program would be): he joins through the same listener as everyone else, greets each
//! member who joins after him, and answers each member's first message once. The README's
//! screenshot was taken with him in the room.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};

use tungstenite::error::Error;
use tungstenite::handshake::HandshakeError;
use tungstenite::Message;

/// The demo member's name.
pub const NAME: &str = "bob";

/// How bob reaches the room over TLS (`wss://`): the configuration that trusts the server's
/// certificate, for the name `localhost`.
#[cfg(feature = "tls")]
pub type Tls = std::sync::Arc<sockloop::rustls::ClientConfig>;
/// Without the `tls` feature there is no TLS to speak: no value of this type exists.
#[cfg(not(feature = "tls"))]
pub enum Tls {}

/// Starts bob on his own thread; he stays until the server closes his connection. With `tls`
/// he speaks `wss://`, as a browser on the https page does.
///
/// # Errors
///
/// The error of spawning the thread.
pub fn spawn(addr: SocketAddr, tls: Option<Tls>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("demo-peer".into())
        .spawn(move || match join(addr, tls) {
            Ok(()) | Err(Error::ConnectionClosed) => log::info!("demo peer {NAME}: left"),
            Err(e) => log::warn!("demo peer {NAME}: {e}"),
        })
}

/// Connects, over TLS if asked, and chats.
fn join(addr: SocketAddr, tls: Option<Tls>) -> tungstenite::Result<()> {
    let tcp = TcpStream::connect(addr)?;
    match tls {
        None => chat(&format!("ws://{addr}/ws?name={NAME}"), tcp),
        #[cfg(feature = "tls")]
        Some(config) => {
            use sockloop::rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
            let name = ServerName::try_from("localhost").expect("a valid DNS name");
            let session = ClientConnection::new(config, name).map_err(io::Error::other)?;
            let url = format!("wss://localhost:{}/ws?name={NAME}", addr.port());
            chat(&url, StreamOwned::new(session, tcp))
        }
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
}

/// Joins the room at `url` over `stream` and answers until the server closes the connection.
fn chat(url: &str, stream: impl Read + Write) -> tungstenite::Result<()> {
    let (mut ws, _response) = tungstenite::client(url, stream).map_err(|e| match e {
        HandshakeError::Failure(e) => e,
        // A blocking stream never says `WouldBlock`.
        HandshakeError::Interrupted(_) => Error::Io(io::ErrorKind::WouldBlock.into()),
    })?;
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
