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
    after_help = "Without a command, on a terminal, opsgate opens the terminal UI (`opsgate tui`).\n\nExamples:\n  opsgate tui plans/demo-local.yaml\n  opsgate classify kubectl delete ns prod\n  opsgate plan show plans/demo-local.yaml\n  opsgate policy check --json"
)]
pub struct Cli {
    /// Policy file laid over the embedded default. Without it:
    /// $XDG_CONFIG_HOME/opsgate/opsgate.yaml, then /etc/opsgate/opsgate.yaml, then the
    /// embedded default alone (never a file in the working directory).
    #[arg(long, global = true, value_name = "FILE", env = "OPSGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// The audit log. Default: $XDG_STATE_HOME/opsgate/audit.jsonl
    /// (~/.local/state/opsgate/audit.jsonl).
    #[arg(long, global = true, value_name = "FILE", env = "OPSGATE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Team mode: the audit log in PostgreSQL, postgres://USER@HOST:PORT/DB
    /// (the password from PGPASSFILE, ~/.pgpass or PGPASSWORD). Default: the
    /// policy's store.url, else the file log. Every command works on it.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "OPSGATE_STORE",
        hide_env_values = true
    )]
    pub store: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Pin the policy in force in the audit log: record `policy_adopted`
    /// with its hash and full text. Refused when the log has adopted one.
    #[command(
        after_help = "`opsgate policy show` prints the adopted policy back from the log, and checks\nthat its text still hashes to the recorded hash.\n\nExamples:\n  opsgate init\n  opsgate --config /etc/opsgate/opsgate.yaml --audit-log /var/lib/opsgate/audit.jsonl init --json"
    )]
    Init {
        /// Print JSON: {"seq":N,"policy_hash":"sha256:…","source":…,"adopted_by":…}.
        #[arg(long)]
        json: bool,
    },
    /// Validate and classify a plan, and record it in the audit log for
    /// approval (`plan_submitted`). Submitting the same plan again, while it
    /// is still open, records nothing new.
    #[command(
        after_help = "Examples:\n  opsgate submit plans/demo-local.yaml\n  opsgate submit --key ~/.ssh/id_ed25519 --json plans/k8s-scale-api.yaml\n  opsgate submit plans/ec2-native-restart.yaml --param instance=i-0abc123"
    )]
    Submit(SubmitArgs),
    /// Approve a submitted plan (CLI channel). The approval is bound to the
    /// plan hash and the policy hash, and counts for `approvals.ttl`.
    #[command(
        after_help = "Without --hash, on a terminal, the plan as submitted now is shown (title, level, hash) and you are asked; without a terminal --hash is required, so only the plan you reviewed is approved.\n\nFrom HIGH up (identity.require_signatures_from) an approval must be signed: --key names your SSH key (or OPSGATE_SIGNING_KEY), and you are who the policy's allowed signers list it for.\n\nExit 3 when the approval is refused (self-approval, not a listed approver, above your level, unsigned where signatures are required, a bad signature, a stale --hash, a changed policy, a closed plan).\n\nExamples:\n  opsgate approve demo-local\n  opsgate approve drain-web --key ~/.ssh/id_ed25519 --hash sha256:ab12… --reason \"checked the rollback\"\n  opsgate approve drain-web --key ~/.ssh/id_ed25519.pub   # the key is in the ssh-agent\n  opsgate approve r-20260126-130000-ab12 --rollback --key ~/.ssh/id_ed25519"
    )]
    Approve(ApproveArgs),
    /// Reject a submitted plan. One rejection rejects it; a new submission
    /// is then needed.
    #[command(
        after_help = "Examples:\n  opsgate reject demo-local --key ~/.ssh/id_ed25519 --reason \"wrong namespace\""
    )]
    Reject(RejectArgs),
    /// Run an approved plan step by step, recording every step in the audit
    /// log before it happens. Stops at the first failure.
    #[command(
        after_help = "`run ID` runs the plan exactly as submitted (frozen in the log). `run FILE` runs the submitted plan with the same hash: if the file changed since, it is a new, unapproved plan.\n\nCtrl-C once: finish the current step, then stop. Twice: kill it. `opsgate cancel RUN` does the same from another terminal.\n\nExit codes: 0 succeeded, 1 failed or stopped, 3 refused (missing, stale or expired approvals; a broken audit log).\n\nExamples:\n  opsgate run demo-local\n  opsgate run plans/demo-local.yaml --dry-run\n  opsgate run demo-local --rollback-on-failure"
    )]
    Run(RunArgs),
    /// Ask a running plan to stop: after the current step, or, the second
    /// time (or with --kill), by killing it.
    #[command(
        after_help = "Examples:\n  opsgate cancel r-20260126-130000-ab12\n  opsgate cancel r-20260126-130000-ab12 --kill"
    )]
    Cancel {
        #[arg(value_name = "RUN")]
        run_id: String,
        #[arg(long = "as", value_name = "NAME")]
        as_user: Option<String>,
        /// Kill the current step now.
        #[arg(long)]
        kill: bool,
    },
    /// Roll back a failed, stopped or interrupted run: the completed steps'
    /// rollbacks in reverse order, then the plan-level rollback.
    #[command(after_help = "Examples:\n  opsgate rollback r-20260126-130000-ab12")]
    Rollback {
        #[arg(value_name = "RUN")]
        run_id: String,
        #[arg(long = "as", value_name = "NAME")]
        as_user: Option<String>,
    },
    /// Plans and runs from the audit log: state, approvals n/m and who.
    #[command(
        after_help = "Examples:\n  opsgate status\n  opsgate status demo-local\n  opsgate status --json | jq '.[] | select(.status == \"pending\")'\n  opsgate status --breakers --json\n  opsgate status --webhooks"
    )]
    Status {
        /// A plan id or a run id; all plans without it.
        #[arg(value_name = "ID")]
        id: Option<String>,
        #[arg(long)]
        json: bool,
        /// The native backends' circuit breakers, as last recorded.
        #[arg(long, conflicts_with = "id")]
        breakers: bool,
        /// The bridge's webhooks on this host: where each stands in the
        /// log, and its dead letters.
        #[arg(long, conflicts_with_all = ["id", "breakers"])]
        webhooks: bool,
    },
    /// Verify, inspect, replay and export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Team mode: the audit log in PostgreSQL. Create the schema, show the
    /// chain's head, import a file log, export it back.
    #[command(
        after_help = "The store is --store or OPSGATE_STORE: postgres://USER@HOST:PORT/DB (the password from\nPGPASSFILE, ~/.pgpass or PGPASSWORD; add ?sslmode=verify-full&sslrootcert=CA_FILE for TLS).\nEvery other command works on the store too (--store, OPSGATE_STORE or the policy's\nstore.url; docs/team-mode.md).\n\nExamples:\n  opsgate store init --store postgres://opsgate@db.internal/opsgate\n  OPSGATE_STORE=postgres://opsgate@db.internal/opsgate opsgate store status --json\n  opsgate store migrate --from /var/lib/opsgate/audit.jsonl\n  opsgate store export -o team.jsonl && opsgate audit --audit-log team.jsonl verify\n  opsgate --store 'postgres://opsgate@db.internal/opsgate?sslmode=verify-full&sslrootcert=/etc/opsgate/db-ca.pem' status"
    )]
    Store(StoreArgs),
    /// Serve the chat bridge's HTTP API (policy `bridge:`): bots forward
    /// people's yes/no, through the same approval rules and audit log.
    #[command(
        after_help = "Prints `listening on ADDR` once ready; SIGTERM or Ctrl-C drains in-flight requests and stops.\n\nExamples:\n  opsgate serve\n  opsgate serve --listen 127.0.0.1:0"
    )]
    Serve {
        /// `host:port` (default: the policy's bridge.listen). Port 0 picks one.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// The terminal UI: review plans, see why each step has its level,
    /// approve or reject. Opens on the first plan given.
    #[command(
        after_help = "Keys: ↑↓ move, Enter open, Esc back, a approve, r reject, x execute, / filter, tab status filter, ? help, q quit.\n\nExamples:\n  opsgate tui plans/demo-local.yaml\n  opsgate tui --key ~/.ssh/id_ed25519"
    )]
    Tui(TuiArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the schema (opsgate_audit, its append-only trigger, the head),
    /// or apply the migrations it lacks. Safe to run again.
    Init {
        /// Print JSON: {"url":…,"applied":[N…],"schema_version":N,"chain_id":…}.
        #[arg(long)]
        json: bool,
    },
    /// The chain's id and head, the record count, the schema and server
    /// versions, and the store against this host's mark of its chain
    /// (exit 3 when it went back or forked: a failover that lost records).
    Status {
        /// Print JSON: {"url":…,"server_version":…,"schema_version":N,"chain_id":…,"head_seq":N,"head_hash":…,"records":N,"mark":{"state":…}}.
        #[arg(long)]
        json: bool,
        /// Accept the store as it is after checking it: the mark is reset to
        /// its head, and `truncation_acknowledged` is recorded in it.
        #[arg(long, requires = "reason")]
        accept: bool,
        /// Why the store is accepted (with --accept).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Import a file log into an empty store: every record verified first
    /// (with the audit key, if the chain is keyed), then inserted with its
    /// exact bytes, hashes and chain, in one transaction.
    Migrate {
        /// The JSON Lines audit log to import.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Print JSON: {"records":N,"head_seq":N,"head_hash":…,"chain_id":…,…}.
        #[arg(long)]
        json: bool,
    },
    /// Write every record, in order, as the JSON Lines file it would be:
    /// `opsgate audit verify` checks it offline.
    Export {
        /// Write to FILE instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct TuiArgs {
    /// The SSH key that signs (a private key file, a `.pub` whose key is
    /// in the ssh-agent, or a `-cert.pub` certificate); default
    /// `OPSGATE_SIGNING_KEY`. Who you are is who the policy's allowed
    /// signers list the key for.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Who approves: someone other than the OS user only where the policy
    /// trusts --as (identity.trust_as), or among the names a --key is listed for.
    #[arg(long = "as", value_name = "NAME")]
    pub as_user: Option<String>,
    /// Plan files to show besides the plans in the audit log (default: the
    /// files in ./plans).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The plan id (with --rollback: the run id).
    #[arg(value_name = "ID")]
    pub id: String,
    /// Approve rolling back run ID, for a failed, stopped or interrupted
    /// run whose own approvals no longer count (`opsgate rollback RUN`
    /// needs one or the other). The same rules as the plan's apply.
    #[arg(long, conflicts_with = "hash")]
    pub rollback: bool,
    /// The SSH key that signs (a private key file, a `.pub` whose key is
    /// in the ssh-agent, or a `-cert.pub` certificate); default
    /// `OPSGATE_SIGNING_KEY`. Who you are is who the policy's allowed
    /// signers list the key for.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Who approves: someone other than the OS user only where the policy
    /// trusts --as (identity.trust_as), or among the names a --key is listed for.
    #[arg(long = "as", value_name = "NAME")]
    pub as_user: Option<String>,
    /// The plan hash you reviewed (`plan hash FILE`, or a prefix of at least
    /// 12 hex digits): refused if the plan is now another. Required without
    /// a terminal.
    #[arg(long, value_name = "HASH")]
    pub hash: Option<String>,
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Print the approval state as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A plan id, or a plan file.
    #[arg(value_name = "FILE|ID")]
    pub target: String,
    /// Dry run. Of an approved plan, a rehearsal: the pre-checks run, and
    /// mutations only in their native dry-run form (kubectl --dry-run=server,
    /// aws ec2 --dry-run, terraform plan). Of an unapproved plan, a preview:
    /// no shell runs at all, only native server-side dry runs.
    #[arg(long)]
    pub dry_run: bool,
    /// After a failure or a stop, run the rollback without asking (as
    /// `execution.auto_rollback: true` does).
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// The seed's flow: print the plan, ask `Approve? (yes/no/explain)`
    /// (`yes` records your approval, submitting a plan file first), run with
    /// live progress, and on failure ask `Rollback? (yes/no)`.
    #[arg(long)]
    pub interactive: bool,
    /// Resume an interrupted run of this plan at the step it was
    /// interrupted in (which runs again), while its approvals still count.
    #[arg(long, conflicts_with = "dry_run")]
    pub resume: bool,
    /// The SSH key that signs (a private key file, a `.pub` whose key is
    /// in the ssh-agent, or a `-cert.pub` certificate); default
    /// `OPSGATE_SIGNING_KEY`. Who you are is who the policy's allowed
    /// signers list the key for.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Who runs it: someone other than the OS user only where the policy
    /// trusts --as (identity.trust_as).
    #[arg(long = "as", value_name = "NAME")]
    pub as_user: Option<String>,
    /// With a plan file: the `--param` values it was submitted with.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Seconds between SIGTERM and SIGKILL when a step times out or is
    /// killed.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::exec::engine::DEFAULT_GRACE_SECONDS)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    #[arg(value_name = "ID")]
    pub id: String,
    /// The SSH key that signs (a private key file, a `.pub` whose key is
    /// in the ssh-agent, or a `-cert.pub` certificate); default
    /// `OPSGATE_SIGNING_KEY`. Who you are is who the policy's allowed
    /// signers list the key for.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    #[arg(long = "as", value_name = "NAME")]
    pub as_user: Option<String>,
    /// Why: recorded, and shown to everyone who looks at the plan.
    #[arg(long, value_name = "TEXT", required = true)]
    pub reason: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The SSH key that signs (a private key file, a `.pub` whose key is
    /// in the ssh-agent, or a `-cert.pub` certificate); default
    /// `OPSGATE_SIGNING_KEY`. Who you are is who the policy's allowed
    /// signers list the key for.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Who submits: someone other than the OS user only where the policy
    /// trusts --as (identity.trust_as). The submitter is the plan's author for
    /// separation of duties; the plan file's `author:` is a note.
    #[arg(long = "as", value_name = "NAME")]
    pub as_user: Option<String>,
    /// Sets one of the plan's `params` (repeatable). A plan with other
    /// values is another plan, with another hash.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Print {"plan_id":…,"plan_hash":…,"risk":…,"seq":…,"new":…}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain: seals, links, seqs, torn tail, and an
    /// exported head. Exit 1 names the first bad line.
    #[command(
        after_help = "Exit 1 names the first bad line, or a log that ends before this host's high-water mark.\n\nExamples:\n  opsgate audit verify\n  opsgate audit verify --expect-head \"$(opsgate audit head | tr ' ' :)\"\n  opsgate audit verify --json | jq .problem\n  opsgate audit verify --acknowledge-truncation --reason \"restored from the 02:00 backup, INC-42\""
    )]
    Verify {
        #[arg(long)]
        json: bool,
        /// A head saved earlier (`SEQ:HASH`): the record at SEQ must have
        /// HASH, and the log must reach SEQ. This catches a truncated tail.
        /// Without it, the log is checked against this host's high-water
        /// mark (the last record this user's opsgate saw of it).
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
        /// Accept a log that ends before this host's high-water mark (after
        /// checking it): records `truncation_acknowledged` with both heads
        /// and your reason, and resets the mark. Until then nothing is
        /// decided, run or recorded on that log.
        #[arg(long, requires = "reason")]
        acknowledge_truncation: bool,
        /// Why the truncated log is accepted (with --acknowledge-truncation).
        #[arg(long, value_name = "TEXT", requires = "acknowledge_truncation")]
        reason: Option<String>,
    },
    /// Print the last record's `SEQ HASH`: the anchor to keep elsewhere.
    #[command(after_help = "Examples:\n  opsgate audit head >> /secure/opsgate-heads.txt")]
    Head {
        #[arg(long)]
        json: bool,
    },
    /// The timeline of one plan or run: time, event, step, status, who,
    /// duration.
    #[command(
        after_help = "Examples:\n  opsgate audit replay demo-local\n  opsgate audit replay demo-local --json"
    )]
    Replay {
        /// A plan id or a run id.
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stream records, filtered, as JSON Lines (the records themselves) or
    /// CSV, in constant memory.
    #[command(
        after_help = "Times (T) are RFC 3339, a date (2026-01-26, midnight UTC) or an age (30d, 12h).\n\nExamples:\n  opsgate audit export --since 7d --format csv -o last-week.csv\n  opsgate audit export --plan demo-local --type step_finished --status failed"
    )]
    Export(ExportArgs),
    /// Print the last records as readable lines; `-f` keeps following.
    #[command(after_help = "Examples:\n  opsgate audit tail -n 20\n  opsgate audit tail -f")]
    Tail {
        /// How many records to print.
        #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
        lines: usize,
        /// Keep printing records as they are appended (Ctrl-C stops).
        #[arg(short, long)]
        follow: bool,
    },
    /// Move a torn tail (a last line without a newline, left by a crash
    /// mid-write) aside to `<log>.torn-<time>` and record `log_repaired`.
    /// Damage before the tail is never repaired.
    #[command(after_help = "Examples:\n  opsgate audit repair && opsgate audit verify")]
    Repair {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Records at or after T.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Records before T.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    #[arg(long, value_name = "ID")]
    pub plan: Option<String>,
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// An event type, e.g. step_finished.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// e.g. succeeded, failed, timed_out.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// LOW, MEDIUM, HIGH or CRITICAL.
    #[arg(long, value_name = "RISK")]
    pub risk: Option<String>,
    /// Who acted: approver, user or author.
    #[arg(long, value_name = "NAME")]
    pub approver: Option<String>,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Write here instead of stdout; the file appears only when complete.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
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
    /// Print a policy as the audit log adopted it (the one in force, or
    /// the one whose hash starts with HASH), checking that its text still
    /// hashes to the recorded hash.
    #[command(
        after_help = "The policy is printed as JSON (which is YAML): it loads as a policy file with\n`--config`. --json prints the whole adoption: seq, time, hash, source, who\nadopted it, the policy and its allowed signers file's text.\n\nExamples:\n  opsgate policy show\n  opsgate policy show sha256:1f2e3d4c\n  opsgate policy show --json | jq .policy.approvals"
    )]
    Show {
        /// A recorded policy hash, or a prefix of at least 8 hex digits.
        #[arg(value_name = "HASH")]
        hash: Option<String>,
        /// Print JSON: {"seq":N,"ts":…,"policy_hash":…,"policy":{…},"rehashes":B,…}.
        #[arg(long)]
        json: bool,
    },
    /// Propose FILE as the audit log's policy, in place of the one in
    /// force. It is adopted once enough of the adopted policy's
    /// `identity.policy_admins` approve it (`opsgate policy approve`).
    #[command(
        after_help = "A change that loosens anything (as `opsgate policy diff` judges it; a change it\ncannot judge counts as loosening) needs the CRITICAL quorum of the policy admins\n(approvals.required.CRITICAL of the policy in force); one that only tightens needs\none. The proposer never counts. A log that adopted no policy adopts FILE at once,\nas `opsgate init` does.\n\nExamples:\n  opsgate policy adopt /etc/opsgate/proposed.yaml --key ~/.ssh/id_ed25519\n  opsgate policy adopt proposed.yaml --json"
    )]
    Adopt {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The SSH key that signs the proposal (default
        /// `OPSGATE_SIGNING_KEY`); without one the proposer is the OS user.
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// Who proposes, where the policy in force trusts --as.
        #[arg(long = "as", value_name = "NAME")]
        as_user: Option<String>,
        /// Print JSON: {"seq":N,"policy_hash":…,"base_hash":…,"loosens":B,"needs":N,"admins":[…],"changes":[…],…}.
        #[arg(long)]
        json: bool,
    },
    /// Approve the open proposal of policy HASH, as one of the policy
    /// admins of the policy in force, with a signature. The approval that
    /// completes the quorum adopts it.
    #[command(
        after_help = "Policy approvals are always signed: --key or OPSGATE_SIGNING_KEY, a key the\nallowed signers of the policy in force list for an admin.\n\nExamples:\n  opsgate policy approve sha256:1f2e3d4c --key ~/.ssh/id_ed25519\n  opsgate policy approve 1f2e3d4c5b6a --json"
    )]
    Approve {
        /// The proposed policy's hash, or a prefix of at least 8 hex digits.
        #[arg(value_name = "HASH")]
        hash: String,
        /// The SSH key that signs (default `OPSGATE_SIGNING_KEY`).
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// Which of the names the key is listed for.
        #[arg(long = "as", value_name = "NAME")]
        as_user: Option<String>,
        /// Print JSON: {"seq":N,"proposal":N,"policy_hash":…,"approvals":[…],"needs":N,"adopted":B}.
        #[arg(long)]
        json: bool,
    },
    /// What changes from OLD to NEW, each change marked loosens or
    /// tightens, and every plan in the audit log re-rated under both.
    #[command(
        after_help = "A change opsgate cannot judge (an alias, a tool, a rule between LOW and CRITICAL\nadded or removed) is `unknown` and counts as loosening. The replay lists the\nplans in the log whose level, approvals or refusal would differ under NEW.\n\nExamples:\n  opsgate policy diff /etc/opsgate/opsgate.yaml proposed.yaml\n  opsgate --audit-log team.jsonl policy diff old.yaml new.yaml --json"
    )]
    Diff {
        /// The policy in force: a file, or a policy hash the log adopted or
        /// was proposed (a prefix of at least 8 hex digits).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The proposed policy: a file, or a recorded hash.
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// Print JSON: {"old":{…},"new":{…},"changes":[…],"loosens":B,"replay":{…}}.
        #[arg(long)]
        json: bool,
    },
}

/// `KEY=VALUE` for `--param`.
fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}
