//! Command-line types (clap). Every subcommand's `--help` carries examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "opsgate",
    version,
    about = "Approval-gated DevOps execution: classify, approve, and run operational plans",
    long_about = "opsgate rates every action of an operational plan LOW, MEDIUM, HIGH or \
CRITICAL, shows the plan with its rollback for approval, and runs it step by step.",
    after_help = "Examples:\n  opsgate classify kubectl delete ns prod\n  opsgate plan show plans/demo-local.yaml\n  opsgate policy check --json",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Policy file laid over the embedded default. Without it: ./config/opsgate.yaml,
    /// then $XDG_CONFIG_HOME/opsgate/opsgate.yaml, then the embedded default alone.
    #[arg(long, global = true, value_name = "FILE", env = "OPSGATE_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rate a command line LOW, MEDIUM, HIGH or CRITICAL, and say why.
    #[command(
        after_help = "Examples:\n  opsgate classify kubectl delete deployment api -n prod\n  opsgate classify --json -- sudo sh -c 'rm -rf /var/lib/app'\n  printf 'kubectl get pods\\nterraform destroy\\n' | opsgate classify --stdin"
    )]
    Classify(ClassifyArgs),
    /// Validate, show and hash plan files.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Validate the policy and print its hash.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Print JSON: {"command":…,"risk":…,"reasons":[…]}.
    #[arg(long)]
    pub json: bool,
    /// Read one command line per input line and print one JSON object per
    /// line (JSON Lines), in order.
    #[arg(long, conflicts_with = "words")]
    pub stdin: bool,
    /// The namespace the command runs against when it does not say (as a
    /// plan's `target.namespace`).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The kube context the command runs against when it does not say.
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// The command line, as words joined by spaces. Put `--` first when it
    /// starts with a dash, and quote it to keep the shell from running `;`.
    #[arg(
        value_name = "WORDS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub words: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Check plan files; print `file:line:col: message` for each problem.
    #[command(after_help = "Examples:\n  opsgate plan validate plans/*.yaml")]
    Validate {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Show a plan: each step with its risk and why, checks, rollbacks, hash.
    #[command(
        after_help = "Examples:\n  opsgate plan show plans/demo-local.yaml\n  opsgate plan show plans/k8s-scale-api.yaml --json | jq .risk"
    )]
    Show {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print JSON instead of the terminal render.
        #[arg(long)]
        json: bool,
    },
    /// Print the plan hash (what approvals are bound to).
    #[command(after_help = "Examples:\n  opsgate plan hash plans/demo-local.yaml")]
    Hash {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the effective policy and print its hash.
    #[command(
        after_help = "Examples:\n  opsgate policy check\n  opsgate --config my-policy.yaml policy check --json"
    )]
    Check {
        /// Print JSON: {"policy_hash":"sha256:…","rules":N,…}.
        #[arg(long)]
        json: bool,
    },
}
