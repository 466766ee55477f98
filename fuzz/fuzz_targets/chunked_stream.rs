//! Fuzzes a connection's input path: arbitrary chunking of the peer's writes, loop iterations
//! between them, the handler's consumption pattern (every `Input` method, `Read`, `BufRead`),
//! replies, local closes, and how the peer ends, against a real reactor on loopback. The property
//! is the one `tests/chunking.rs` runs in CI (see `tests/chunking/harness.rs`).

#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/chunking/harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    static SIGPIPE: Once = Once::new();
    SIGPIPE.call_once(|| {
        // A Rust main() ignores SIGPIPE before it runs, so that writing to a Unix socket whose
        // peer has gone fails with EPIPE instead of killing the process (TCP writes pass
        // MSG_NOSIGNAL). libFuzzer's main() runs instead of Rust's here, so do it as any program
        // using sockloop would.
        // SAFETY: installing SIG_IGN has no preconditions; nothing else handles SIGPIPE here.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    });
    harness::check(data);
});
