//! Command-line plumbing every bench binary needs.

use std::fmt::Display;
use std::process::ExitCode;

/// What `cargo bench` passes to every bench binary, accepted and ignored; flattened into a
/// bench's own arguments with `#[command(flatten)]`.
#[derive(clap::Args, Debug)]
pub struct CargoBench {
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Benchmark filters passed by `cargo bench`; ignored.
    #[arg(hide = true)]
    filters: Vec<String>,
}

/// The process's exit code for `result`; a failure is printed first as "`what`: error".
pub fn exit_code(what: &str, result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}
