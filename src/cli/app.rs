//! Dispatch: one function per subcommand, errors returned to `main`.

use super::args::{AuditCommand, Cli, Command, PlanCommand, PolicyCommand};
use super::config::{audit_log_path, high_water, load_policy, redactor, sealer};
use super::error::CliError;
use super::{
    approve_cmd, audit_cmd, classify_cmd, plan_cmd, policy_cmd, run_cmd, status_cmd, submit_cmd,
};
use crate::audit::AuditLog;

pub fn run(cli: Cli) -> Result<(), CliError> {
    // The auditor's tools work whatever state the policy file is in.
    if let Some(Command::Audit(cmd)) = &cli.command
        && let Some(done) = read_only_audit(&cli, cmd)
    {
        return done;
    }
    let (policy, policy_file) = load_policy(cli.config.as_deref())?;
    let log_path = || audit_log_path(cli.audit_log.as_deref());
    let sealer = || sealer(&policy, policy_file.as_deref());
    let open_log = || -> Result<AuditLog, CliError> {
        let path = log_path()?;
        Ok(AuditLog::open(&path, sealer()?, redactor(&policy))?.with_mark(high_water(&path)?))
    };
    let mark = || high_water(&log_path()?);
    let Some(command) = &cli.command else {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            return tui(None, &[], &policy, log_path()?, sealer()?, open_log()?);
        }
        let help = <super::args::Cli as clap::CommandFactory>::command().render_help();
        eprintln!("{help}");
        return Err(CliError::Usage(
            "no command (and no terminal for the TUI): `opsgate tui` opens the terminal UI".into(),
        ));
    };
    match command {
        Command::Classify(args) => classify_cmd::run(args, &policy),
        Command::Plan(PlanCommand::Validate { files }) => plan_cmd::validate(files, &policy),
        Command::Plan(PlanCommand::Show { file, json }) => plan_cmd::show(file, *json, &policy),
        Command::Plan(PlanCommand::Hash { file }) => plan_cmd::hash(file, &policy),
        Command::Policy(PolicyCommand::Check { json }) => policy_cmd::check(&policy, *json),
        Command::Submit(args) => submit_cmd::run(args, &policy, open_log),
        Command::Approve(args) => approve_cmd::approve(args, &policy, open_log),
        Command::Reject(args) => approve_cmd::reject(args, &policy, open_log),
        Command::Run(args) => run_cmd::run(args, &policy, open_log),
        Command::Cancel {
            run_id,
            as_user,
            kill,
        } => run_cmd::cancel(run_id, as_user.as_deref(), *kill, &policy, open_log),
        Command::Rollback { run_id, as_user } => {
            run_cmd::rollback(run_id, as_user.as_deref(), &policy, open_log)
        }
        Command::Serve { listen } => serve(listen.as_deref(), &policy, sealer()?, open_log()?),
        Command::Tui(args) => tui(
            args.as_user.as_deref(),
            &args.files,
            &policy,
            log_path()?,
            sealer()?,
            open_log()?,
        ),
        Command::Status { id, json, breakers } => {
            if *breakers {
                status_cmd::breakers(&log_path()?, &sealer()?, &mark()?, *json)
            } else {
                status_cmd::run(
                    &log_path()?,
                    &sealer()?,
                    &mark()?,
                    &policy,
                    id.as_deref(),
                    *json,
                )
            }
        }
        Command::Audit(AuditCommand::Verify {
            reason,
            acknowledge_truncation: true,
            ..
        }) => {
            // It writes; the audit commands that only read ran before the
            // policy was loaded.
            let path = log_path()?;
            audit_cmd::require_log(&path)?;
            audit_cmd::acknowledge_truncation(&open_log()?, reason.as_deref().unwrap_or_default())
        }
        Command::Audit(AuditCommand::Repair { json }) => {
            let path = log_path()?;
            audit_cmd::require_log(&path)?;
            audit_cmd::repair(&open_log()?, *json)
        }
        Command::Audit(cmd) => read_only_audit(&cli, cmd).unwrap_or(Ok(())),
    }
}

/// The audit commands that only read the log, run without the policy
/// (its audit key aside): `None` for the others (repair, acknowledging a
/// truncation), which write.
fn read_only_audit(cli: &Cli, cmd: &AuditCommand) -> Option<Result<(), CliError>> {
    let writes = matches!(
        cmd,
        AuditCommand::Repair { .. }
            | AuditCommand::Verify {
                acknowledge_truncation: true,
                ..
            }
    );
    if writes {
        return None;
    }
    let path = || audit_log_path(cli.audit_log.as_deref());
    let sealer = || super::config::reader_sealer(cli.config.as_deref());
    let run = || match cmd {
        AuditCommand::Verify {
            json, expect_head, ..
        } => {
            let path = path()?;
            audit_cmd::verify(
                &path,
                &sealer()?,
                Some(&high_water(&path)?),
                *json,
                expect_head.as_deref(),
            )
        }
        AuditCommand::Head { json } => audit_cmd::head(&path()?, &sealer()?, *json),
        AuditCommand::Replay { id, json } => audit_cmd::replay(&path()?, id, *json),
        AuditCommand::Export(args) => audit_cmd::export_cmd(&path()?, args),
        AuditCommand::Tail { lines, follow } => audit_cmd::tail(&path()?, *lines, *follow),
        AuditCommand::Repair { .. } => Ok(()),
    };
    Some(run())
}

fn serve(
    listen: Option<&str>,
    policy: &crate::core::policy::LoadedPolicy,
    sealer: crate::audit::Sealer,
    log: AuditLog,
) -> Result<(), CliError> {
    use std::io::Write;
    let addr = listen.unwrap_or(&policy.policy.bridge.listen).to_owned();
    let bridge =
        crate::bridge::Bridge::new(policy.clone(), log, sealer).map_err(CliError::Failed)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| CliError::Failed(format!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr()?;
        // The signal handlers exist before anyone is told we are ready, so
        // a SIGTERM right after `listening on` still shuts down gracefully.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {local}")?;
            out.flush()?;
        }
        crate::bridge::notify::notify("READY=1");
        if let Some(every) = crate::bridge::notify::watchdog_interval() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every / 2);
                loop {
                    tick.tick().await;
                    crate::bridge::notify::notify("WATCHDOG=1");
                }
            });
        }
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutting down: draining in-flight requests");
            crate::bridge::notify::notify("STOPPING=1");
        };
        crate::bridge::serve(listener, std::sync::Arc::new(bridge), shutdown).await?;
        Ok::<_, CliError>(())
    })
}

fn tui(
    as_user: Option<&str>,
    files: &[std::path::PathBuf],
    policy: &crate::core::policy::LoadedPolicy,
    log_path: std::path::PathBuf,
    sealer: crate::audit::Sealer,
    log: AuditLog,
) -> Result<(), CliError> {
    for f in files {
        if !f.is_file() {
            return Err(CliError::Read {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such plan file"),
            });
        }
    }
    let files = if files.is_empty() {
        crate::tui::load::plan_files(std::path::Path::new("plans"))
    } else {
        files.to_vec()
    };
    crate::tui::app::run(crate::tui::app::Options {
        user: super::submit_cmd::who(as_user)?,
        files,
        log_path,
        sealer,
        log,
        redactor: super::config::redactor(policy),
        policy: policy.clone(),
    })
}
