//! Dispatch: one function per subcommand, errors returned to `main`.

use super::args::{AuditCommand, Cli, Command, PlanCommand, PolicyCommand};
use super::error::CliError;
use super::{
    approve_cmd, audit_cmd, classify_cmd, plan_cmd, policy_cmd, run_cmd, status_cmd, submit_cmd,
};
use crate::app::config::{LogAt, high_water, load_policy, redactor, sealer};
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
    let at = || {
        LogAt::resolve(
            cli.store.as_deref(),
            cli.audit_log.as_deref(),
            Some(&policy.policy),
        )
    };
    let sealer = || sealer(&policy, policy_file.as_deref());
    // The file to read: a store's replica is brought up to date first.
    let log_path = || -> Result<std::path::PathBuf, CliError> { Ok(at()?.read_path(&sealer()?)?) };
    let open_log =
        || -> Result<AuditLog, CliError> { Ok(at()?.open(sealer()?, redactor(&policy))?) };
    // A run follows the store, so that a stop asked for on another host
    // reaches the step it is in (a file log is followed by reading it).
    let open_following = || -> Result<AuditLog, CliError> {
        let log = open_log()?;
        log.follow(
            &crate::app::config::state_dir()?,
            std::time::Duration::from_secs(1),
        )
        .map_err(|e| CliError::Failed(format!("cannot follow the store: {e}")))?;
        Ok(log)
    };
    // A read-only command's file and this host's mark of it.
    let reading = || -> Result<_, CliError> {
        let path = log_path()?;
        let mark = high_water(&path)?;
        Ok((path, mark))
    };
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
            let (path, mark) = reading()?;
            policy_cmd::check(&policy, &path, &sealer()?, &mark, *json)
        }
        Command::Policy(PolicyCommand::Show { hash, json }) => {
            let (path, mark) = reading()?;
            policy_cmd::show(&path, &sealer()?, &mark, hash.as_deref(), *json)
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
            let (path, mark) = reading()?;
            policy_cmd::diff(old, new, &path, &sealer()?, &mark, *json)
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
            open_following,
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
        Command::Rollback { run_id, as_user } => run_cmd::rollback(
            run_id,
            &who(as_user.as_deref(), None)?,
            &policy,
            open_following,
        ),
        Command::Store(args) => super::store_cmd::run(&cli, args),
        Command::Serve { .. } | Command::Tui(_) => Err(CliError::Usage(
            "`serve` and `tui` are doors of their own: run them from `opsgate`".into(),
        )),
        Command::Status {
            id,
            json,
            breakers,
            webhooks,
        } => {
            let (path, mark) = reading()?;
            if *webhooks {
                status_cmd::webhooks(&path, &sealer()?, &policy, *json)
            } else if *breakers {
                status_cmd::breakers(&path, &sealer()?, &mark, *json)
            } else {
                status_cmd::run(&path, &sealer()?, &mark, &policy, id.as_deref(), *json)
            }
        }
        Command::Audit(AuditCommand::Verify {
            reason,
            acknowledge_truncation: true,
            ..
        }) => {
            // It writes; the audit commands that only read ran before the
            // policy was loaded.
            file_log_only(&at()?)?;
            let path = log_path()?;
            audit_cmd::require_log(&path)?;
            audit_cmd::acknowledge_truncation(&open_log()?, reason.as_deref().unwrap_or_default())
        }
        Command::Audit(AuditCommand::Repair { json }) => {
            file_log_only(&at()?)?;
            let path = log_path()?;
            audit_cmd::require_log(&path)?;
            audit_cmd::repair(&open_log()?, *json)
        }
        Command::Audit(cmd) => read_only_audit(&cli, cmd).unwrap_or(Ok(())),
    }
}

/// Repairs and acknowledged truncations are for a file log: a store's
/// replica mends itself from the store, and a store that went back is
/// accepted with `store status --accept`.
fn file_log_only(at: &LogAt) -> Result<(), CliError> {
    match at {
        LogAt::File(_) => Ok(()),
        LogAt::Store(url) => Err(CliError::Usage(format!(
            "the log is in the store {}: its replica on this host mends itself, and a store behind this host's mark is accepted with `opsgate store status --accept --reason TEXT`",
            crate::store::redact_url(url)
        ))),
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
    let sealer = || crate::app::config::reader_sealer(cli.config.as_deref());
    // The store may be named by the policy; a policy that does not load
    // names none.
    let path = || -> Result<std::path::PathBuf, CliError> {
        let policy = crate::app::config::load_policy(cli.config.as_deref())
            .ok()
            .map(|(p, _)| p.policy);
        let at = LogAt::resolve(
            cli.store.as_deref(),
            cli.audit_log.as_deref(),
            policy.as_ref(),
        )?;
        Ok(at.read_path(&sealer()?)?)
    };
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
