//! The `opsgate` binary: parse arguments, set up tracing, run, and map the
//! outcome to an exit code (0 ok, 1 failure, 2 usage, 3 refused).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use opsgate::cli::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPSGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match opsgate::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`opsgate … | head`) is the reader's choice, not a
        // failure worth a message.
        Err(opsgate::cli::error::CliError::Output(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            if e.needs_printing() {
                let _ = writeln!(anstream::stderr(), "opsgate: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
