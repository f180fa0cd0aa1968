//! Dispatch: one function per subcommand, errors returned to `main`.

use super::args::{AuditCommand, Cli, Command, PlanCommand, PolicyCommand};
use super::error::CliError;
use super::{
    approve_cmd, audit_cmd, classify_cmd, plan_cmd, policy_cmd, run_cmd, status_cmd, submit_cmd,
};
use crate::app::config::{audit_log_path, high_water, load_policy, redactor, sealer};
use crate::audit::AuditLog;

/// Runs a command of the command line door (not `serve` or `tui`, which
/// `main` hands to their own doors).
pub fn run(cli: Cli) -> Result<(), CliError> {
    // The auditor's tools work whatever state the policy file is in.
    if let Some(Command::Audit(cmd)) = &cli.command
        && let Some(done) = read_only_audit(&cli, cmd)
    {
        return done;
    }
    if let Some(Command::Store(args)) = &cli.command {
        return super::store_cmd::run(&cli, args);
    }
    let (policy, policy_file) = load_policy(cli.config.as_deref())?;
    let log_path = || audit_log_path(cli.audit_log.as_deref());
    let sealer = || sealer(&policy, policy_file.as_deref());
    let open_log = || -> Result<AuditLog, CliError> {
        let path = log_path()?;
        Ok(AuditLog::open(&path, sealer()?, redactor(&policy))?.with_mark(high_water(&path)?))
    };
    let mark = || high_water(&log_path()?);
    let who = |as_user: Option<&str>, key: Option<&std::path::Path>| {
        crate::app::identity::actor(&policy.policy, as_user, key)
    };
    let Some(command) = &cli.command else {
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
        Command::Policy(PolicyCommand::Check { json }) => {
            policy_cmd::check(&policy, &log_path()?, &sealer()?, &mark()?, *json)
        }
        Command::Policy(PolicyCommand::Show { hash, json }) => {
            policy_cmd::show(&log_path()?, &sealer()?, &mark()?, hash.as_deref(), *json)
        }
        Command::Init { json } => policy_cmd::init(&open_log()?, &policy, *json),
        Command::Policy(PolicyCommand::Adopt {
            file,
            key,
            as_user,
            json,
        }) => policy_cmd::adopt(
            &open_log()?,
            file,
            crate::app::adoption::Who {
                as_user: as_user.as_deref(),
                key: key.as_deref(),
            },
            *json,
        ),
        Command::Policy(PolicyCommand::Approve {
            hash,
            key,
            as_user,
            json,
        }) => policy_cmd::approve(
            &open_log()?,
            hash,
            crate::app::adoption::Who {
                as_user: as_user.as_deref(),
                key: key.as_deref(),
            },
            *json,
        ),
        Command::Policy(PolicyCommand::Diff { old, new, json }) => {
            policy_cmd::diff(old, new, &log_path()?, &sealer()?, &mark()?, *json)
        }
        Command::Submit(args) => submit_cmd::run(
            args,
            &who(args.as_user.as_deref(), args.key.as_deref())?,
            &policy,
            open_log,
        ),
        Command::Approve(args) => approve_cmd::approve(
            args,
            &who(args.as_user.as_deref(), args.key.as_deref())?,
            &policy,
            open_log,
        ),
        Command::Reject(args) => approve_cmd::reject(
            args,
            &who(args.as_user.as_deref(), args.key.as_deref())?,
            &policy,
            open_log,
        ),
        Command::Run(args) => run_cmd::run(
            args,
            &who(args.as_user.as_deref(), args.key.as_deref())?,
            &policy,
            open_log,
        ),
        Command::Cancel {
            run_id,
            as_user,
            kill,
        } => run_cmd::cancel(
            run_id,
            &who(as_user.as_deref(), None)?,
            *kill,
            &policy,
            open_log,
        ),
        Command::Rollback { run_id, as_user } => {
            run_cmd::rollback(run_id, &who(as_user.as_deref(), None)?, &policy, open_log)
        }
        Command::Store(args) => super::store_cmd::run(&cli, args),
        Command::Serve { .. } | Command::Tui(_) => Err(CliError::Usage(
            "`serve` and `tui` are doors of their own: run them from `opsgate`".into(),
        )),
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
    let sealer = || crate::app::config::reader_sealer(cli.config.as_deref());
    let run = || match cmd {
        AuditCommand::Verify {
            json, expect_head, ..
        } => {
            let path = path()?;
            // The policy's signers check the signatures; a policy that
            // does not load leaves the chain to check alone.
            let policy = crate::app::config::load_policy(cli.config.as_deref())
                .ok()
                .map(|(p, _)| p);
            audit_cmd::verify(
                &path,
                &sealer()?,
                Some(&high_water(&path)?),
                *json,
                expect_head.as_deref(),
                policy.as_ref(),
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
