//! A line-based chat room for `nc` users: every line a member sends goes to all the others,
//! prefixed with the sender's nickname.
//!
//! ```text
//! cargo run --example chat                          # listens on 127.0.0.1:7077
//! cargo run --example chat -- --listen 0.0.0.0:7077 --slow-limit 30
//! ```
//!
//! Then, in two or three terminals, `nc 127.0.0.1 7077`: the first line is your nickname (up to
//! 32 bytes, no spaces, not taken), then every line is sent to everyone else. `/nick NAME`
//! renames you, `/who` lists who is here, `/quit` leaves, `/help` reminds you. Others hear when
//! you join and leave.
//!
//! What it shows: state shared by every connection's handler (`Rc<RefCell<Room>>` captured by the
//! handler factory; one thread, so no lock), `write_to` to fan a line out, line framing over
//! `Input` (a partial line waits for the rest; a line over 4 KiB is refused with an error line
//! and the rest of it discarded, and the member stays), and other connections' writability
//! (`is_writable_conn`, asked for each member as a line is fanned out): a member that does not
//! read what it is sent is skipped, so the others never wait for it and the server holds about
//! 64 KiB for it, told how many lines it missed once it reads again, and dropped if it has not
//! caught up within `--slow-limit` seconds. Ctrl-C (SIGINT) or SIGTERM tells everyone the server
//! is going down and closes.

#[path = "../common/mod.rs"]
mod common;
mod member;
mod room;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sockloop::Reactor;

/// How long a signalled shutdown waits for members' last lines to be delivered.
const GRACE: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(about = "A line-based chat room: try it with nc")]
struct Args {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(
        long,
        alias = "addr",
        value_name = "ADDR",
        default_value = "127.0.0.1:7077"
    )]
    listen: SocketAddr,
    /// Seconds a member may go on not reading before it is dropped.
    #[arg(long, default_value_t = 10.0)]
    slow_limit: f64,
    /// Longest line a member may send, in bytes.
    #[arg(long, default_value_t = 4096)]
    max_line: usize,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chat: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let slow_limit = Duration::try_from_secs_f64(args.slow_limit)
        .map_err(|e| format!("--slow-limit {}: {e}", args.slow_limit))?;
    let config = room::Config {
        max_line: args.max_line,
        slow_limit,
    };
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let bound = member::listen(&mut reactor, args.listen, config)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let exit = common::shutdown_on_signals(&mut reactor, "chat", GRACE)
        .map_err(|e| format!("cannot watch for signals: {e}"))?;
    println!(
        "chat listening on {bound}; try: nc {} {}",
        bound.ip(),
        bound.port()
    );

    // Returns once a signal's graceful shutdown has closed every connection.
    reactor
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    exit.report(reactor.stats());
    Ok(())
}
