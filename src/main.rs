//! The `opsgate` binary, and the composition root: it parses the command
//! line, sets up tracing, hands the command to its door (the terminal UI,
//! the chat bridge, or the command line) and maps the outcome to an exit
//! code (0 ok, 1 failure, 2 usage, 3 refused). No door knows another.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use opsgate::cli::args::{Cli, Command};
use opsgate::cli::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPSGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match &cli.command {
        Some(Command::Serve { listen }) => serve(&cli, listen.as_deref()),
        Some(Command::Tui(args)) => tui(
            &cli,
            args.as_user.as_deref(),
            args.key.as_deref(),
            &args.files,
        ),
        None if on_terminal() => tui(&cli, None, None, &[]),
        _ => opsgate::cli::run(cli),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`opsgate … | head`) is the reader's choice, not a
        // failure worth a message.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            if e.needs_printing() {
                let _ = writeln!(anstream::stderr(), "opsgate: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The chat bridge's door.
fn serve(cli: &Cli, listen: Option<&str>) -> Result<(), CliError> {
    let app = opsgate::app::config::open_app(
        cli.config.as_deref(),
        cli.store.as_deref(),
        cli.audit_log.as_deref(),
    )?;
    Ok(opsgate::bridge::run(app, listen)?)
}

/// The terminal UI's door.
fn tui(
    cli: &Cli,
    as_user: Option<&str>,
    key: Option<&std::path::Path>,
    files: &[std::path::PathBuf],
) -> Result<(), CliError> {
    let app = opsgate::app::config::open_app(
        cli.config.as_deref(),
        cli.store.as_deref(),
        cli.audit_log.as_deref(),
    )?;
    for f in files {
        if !f.is_file() {
            return Err(CliError::Read {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such plan file"),
            });
        }
    }
    let files = if files.is_empty() {
        opsgate::app::plans::plan_files(std::path::Path::new("plans"))
    } else {
        files.to_vec()
    };
    let user = opsgate::app::identity::actor(&app.policy.policy, as_user, key)?;
    opsgate::tui::app::run(opsgate::tui::app::Options { user, files, app }).map_err(|e| match e {
        opsgate::tui::app::TuiError::Terminal(io) => CliError::Output(io),
        opsgate::tui::app::TuiError::Load(m) => CliError::Refused(m),
    })
}
