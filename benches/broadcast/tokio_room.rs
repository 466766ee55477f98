//! The tokio peers' accept loop: one current-thread runtime, and one room shared by every
//! member's task on a `LocalSet`, as sockloop's one thread shares its room: no lock on either
//! side.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::net::{TcpListener, TcpStream};

/// Listens on `addr`, prints the bound address (the server process's first line of stdout),
/// and serves forever (the process ends it): every connection becomes a `member` task with the
/// room `R`.
pub fn serve<R, F, Fut>(addr: SocketAddr, member: F) -> io::Result<()>
where
    R: Default + 'static,
    F: Fn(TcpStream, Rc<RefCell<R>>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(addr).await?;
        println!("{}", listener.local_addr()?);
        let room = Rc::<RefCell<R>>::default();
        loop {
            let (stream, _) = listener.accept().await?;
            // As sockloop's listeners do by default.
            stream.set_nodelay(true)?;
            tokio::task::spawn_local(member(stream, Rc::clone(&room)));
        }
    })
}
