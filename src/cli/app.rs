//! Dispatch: one function per subcommand, errors returned to `main`.

use super::args::{Cli, Command, PlanCommand, PolicyCommand};
use super::config::load_policy;
use super::error::CliError;
use super::{classify_cmd, plan_cmd, policy_cmd};

pub fn run(cli: Cli) -> Result<(), CliError> {
    let policy = load_policy(cli.config.as_deref())?;
    match &cli.command {
        Command::Classify(args) => classify_cmd::run(args, &policy),
        Command::Plan(PlanCommand::Validate { files }) => plan_cmd::validate(files, &policy),
        Command::Plan(PlanCommand::Show { file, json }) => plan_cmd::show(file, *json, &policy),
        Command::Plan(PlanCommand::Hash { file }) => plan_cmd::hash(file, &policy),
        Command::Policy(PolicyCommand::Check { json }) => policy_cmd::check(&policy, *json),
    }
}
