//! `opsgate policy check`: validate the effective policy, print its hash.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::error::CliError;
use crate::app::config::load_policy;
use crate::app::policy_diff::policy_diff;
use crate::app::present::bold;
use crate::audit::Sealer;
use crate::audit::mark::HighWater;
use crate::core::event::printable;
use crate::core::policy::{LoadedPolicy, RequiredApprovals};

#[derive(Serialize)]
struct Summary<'a> {
    ok: bool,
    policy_hash: &'a str,
    source: &'a str,
    rules: usize,
    builtin_rules: usize,
    tools: usize,
    aliases: usize,
    production_namespaces: &'a [String],
    production_contexts: Vec<&'a str>,
    approvals_required: RequiredApprovals,
    approval_ttl_seconds: u64,
    allow_critical: bool,
    block_production: bool,
    /// The policy the audit log adopted (`opsgate init`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    adopted_hash: Option<String>,
    /// Whether this policy is the adopted one (absent: nothing adopted,
    /// or the log does not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    is_adopted: Option<bool>,
}

/// `opsgate policy check`: the policy loads; its summary, and whether the
/// log at `log` adopted it. A log that does not read does not fail the
/// check: it is said on stderr.
pub fn check(
    policy: &LoadedPolicy,
    log: &Path,
    sealer: &Sealer,
    mark: &HighWater,
    json: bool,
) -> Result<(), CliError> {
    let adopted_hash = match crate::app::ledger::read_only(log, sealer, mark) {
        Ok(ledger) => {
            crate::app::adoption::in_force(&ledger).map(|a| a.policy_hash.as_str().to_owned())
        }
        Err(e) => {
            eprintln!(
                "opsgate: note: the audit log does not read, so its adopted policy is unknown: {e}"
            );
            None
        }
    };
    let p = &policy.policy;
    let user = policy.rules.user_rule_count();
    let summary = Summary {
        ok: true,
        policy_hash: policy.hash.as_str(),
        source: &policy.source,
        rules: user,
        builtin_rules: policy.rules.rule_count() - user,
        tools: p.tools.len(),
        aliases: p.aliases.len(),
        production_namespaces: &p.safety.production_namespaces,
        production_contexts: p
            .safety
            .production_contexts
            .iter()
            .map(|g| g.as_str())
            .collect(),
        approvals_required: p.approvals.required,
        approval_ttl_seconds: p.approvals.ttl.get().as_secs(),
        allow_critical: p.safety.allow_critical,
        block_production: p.safety.block_production,
        is_adopted: adopted_hash.as_deref().map(|h| h == policy.hash.as_str()),
        adopted_hash,
    };
    if json {
        return print_json(&summary);
    }
    let mut out = anstream::stdout().lock();
    let r = summary.approvals_required;
    writeln!(out, "{} {}", bold("policy ok:"), summary.source)?;
    writeln!(out, "policy hash: {}", summary.policy_hash)?;
    writeln!(
        out,
        "rules: {} of yours, {} built-in; tools: {}; aliases: {}",
        summary.rules, summary.builtin_rules, summary.tools, summary.aliases
    )?;
    writeln!(
        out,
        "approvals: LOW {} · MEDIUM {} · HIGH {} · CRITICAL {} · valid for {}",
        r.low, r.medium, r.high, r.critical, p.approvals.ttl
    )?;
    writeln!(
        out,
        "production: namespaces [{}] · contexts [{}]",
        summary.production_namespaces.join(", "),
        summary.production_contexts.join(", ")
    )?;
    match (&summary.adopted_hash, summary.is_adopted) {
        (Some(_), Some(true)) => writeln!(
            out,
            "adopted: this is the policy `{}` adopted",
            log.display()
        )?,
        (Some(h), _) => writeln!(
            out,
            "adopted: {} adopted another policy, {h} (`opsgate policy show` prints it; `opsgate policy diff` compares)",
            log.display()
        )?,
        (None, _) => writeln!(
            out,
            "adopted: `{}` has adopted no policy (`opsgate init` records this one)",
            log.display()
        )?,
    }
    Ok(())
}

/// `opsgate policy diff OLD NEW`: the changes, and the log's plans
/// re-rated under both.
pub fn diff(
    old: &Path,
    new: &Path,
    log: &Path,
    sealer: &Sealer,
    mark: &HighWater,
    json: bool,
) -> Result<(), CliError> {
    let ledger = crate::app::ledger::read_only(log, sealer, mark)?;
    let a = file_or_recorded(old, &ledger)?;
    let b = file_or_recorded(new, &ledger)?;
    let d = policy_diff(&a, &b, &ledger);
    if json {
        return print_json(&d);
    }
    let mut out = anstream::stdout().lock();
    writeln!(out, "{} {} ({})", bold("old:"), d.old.source, d.old.hash)?;
    writeln!(out, "{} {} ({})", bold("new:"), d.new.source, d.new.hash)?;
    if d.changes.is_empty() {
        writeln!(out, "no changes")?;
    }
    let show = |v: &Option<serde_json::Value>| match v {
        None => "(none)".to_owned(),
        Some(v) => printable(&v.to_string()).into_owned(),
    };
    for c in &d.changes {
        writeln!(
            out,
            "  {:<9} {}: {} → {} ({})",
            c.effect.as_str(),
            printable(&c.key),
            show(&c.old),
            show(&c.new),
            c.why
        )?;
    }
    let verdict = match (d.loosens, d.tightens) {
        (true, _) => "this change loosens the gate: adopting it needs the CRITICAL quorum",
        (false, true) => "this change only tightens the gate",
        (false, false) => "this change neither loosens nor tightens the gate",
    };
    writeln!(out, "{}", bold(verdict))?;
    writeln!(
        out,
        "{} {} plan(s) in {}, {} re-rated differently",
        bold("replay:"),
        d.replay.plans,
        log.display(),
        d.replay.moved.len()
    )?;
    for p in &d.replay.moved {
        writeln!(
            out,
            "  {}: {} → {}; {} → {}",
            printable(&p.plan_id),
            p.old_risk,
            p.new_risk,
            p.old,
            p.new
        )?;
        for s in &p.steps {
            writeln!(
                out,
                "    step `{}`: {} → {}",
                printable(&s.step),
                s.old,
                s.new
            )?;
        }
    }
    for id in &d.replay.unreadable {
        writeln!(out, "  {}: cannot be read back from the log", printable(id))?;
    }
    Ok(())
}

/// `opsgate init`: record the policy in force as adopted.
pub fn init(
    log: &crate::audit::AuditLog,
    policy: &LoadedPolicy,
    json: bool,
) -> Result<(), CliError> {
    let a = crate::app::adoption::init(log, policy)?;
    if json {
        return print_json(&a);
    }
    let mut out = anstream::stdout().lock();
    writeln!(
        out,
        "adopted policy {} from {} into `{}` (seq {}, by {}): it is the policy in force for this log",
        a.policy_hash,
        a.source,
        log.path().display(),
        a.seq,
        a.adopted_by
    )?;
    Ok(())
}

/// `opsgate policy show [HASH]`: a policy as the log adopted it.
pub fn show(
    log: &Path,
    sealer: &Sealer,
    mark: &HighWater,
    hash: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let ledger = crate::app::ledger::read_only(log, sealer, mark)?;
    let a = crate::app::adoption::find(&ledger, hash)?;
    let rehashes = crate::app::adoption::rehash(a)?;
    let mut out = anstream::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            adoption: &'a crate::core::state::Adoption,
            rehashes: bool,
        }
        let s = serde_json::to_string(&Shown {
            adoption: a,
            rehashes,
        })
        .map_err(std::io::Error::other)?;
        writeln!(out, "{s}")?;
        return Ok(());
    }
    let text = serde_json::to_string_pretty(&a.policy).map_err(std::io::Error::other)?;
    writeln!(
        out,
        "# policy {} adopted at seq {} ({}) from {} by {}",
        a.policy_hash.as_str(),
        a.seq,
        a.ts.to_rfc3339(),
        printable(&a.source),
        printable(&a.adopted_by)
    )?;
    if !rehashes {
        writeln!(
            out,
            "# warning: this text does not hash to {} under this opsgate's built-in rules (another version recorded it?)",
            a.policy_hash.as_str()
        )?;
    }
    if a.allowed_signers.is_some() {
        writeln!(
            out,
            "# its allowed signers file is recorded too: `opsgate policy show --json` prints it"
        )?;
    }
    writeln!(out, "{text}")?;
    Ok(())
}

/// A policy named on the command line: a file, else a hash recorded in
/// the log.
fn file_or_recorded(
    arg: &Path,
    ledger: &crate::core::state::Ledger,
) -> Result<LoadedPolicy, CliError> {
    if arg.exists() {
        return Ok(load_policy(Some(arg))?.0);
    }
    let text = arg.to_string_lossy();
    let hex = text.strip_prefix("sha256:").unwrap_or(&text);
    if hex.len() >= 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(crate::app::adoption::recorded(ledger, &text)?);
    }
    Ok(load_policy(Some(arg))?.0)
}

/// `opsgate policy adopt FILE`: propose FILE in place of the policy in
/// force.
pub fn adopt(
    log: &crate::audit::AuditLog,
    file: &Path,
    who: crate::app::adoption::Who<'_>,
    json: bool,
) -> Result<(), CliError> {
    let (new, _) = load_policy(Some(file))?;
    let p = crate::app::adoption::propose(log, &new, who)?;
    if json {
        return print_json(&p);
    }
    let mut out = anstream::stdout().lock();
    if p.adopted {
        writeln!(
            out,
            "adopted policy {} from {} into `{}` (seq {}, by {}): the log had adopted none",
            p.policy_hash,
            printable(&new.source),
            log.path().display(),
            p.seq,
            printable(&p.proposed_by)
        )?;
        return Ok(());
    }
    if p.in_force {
        writeln!(
            out,
            "policy {} is already in force: nothing recorded",
            p.policy_hash
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "proposed policy {} (seq {}) by {} in place of {}",
        p.policy_hash,
        p.seq,
        printable(&p.proposed_by),
        p.base_hash.as_deref().unwrap_or("-")
    )?;
    for c in &p.changes {
        writeln!(
            out,
            "  {:<9} {} ({})",
            c.effect.as_str(),
            c.key,
            printable(&c.why)
        )?;
    }
    writeln!(
        out,
        "it {}: {} signed approval(s) needed from the policy admins ({}), not the proposer:\n  opsgate policy approve {} --key KEY",
        if p.loosens {
            "loosens"
        } else {
            "only tightens"
        },
        p.needs,
        p.admins.join(", "),
        p.policy_hash
    )?;
    Ok(())
}

/// `opsgate policy approve HASH`: a policy admin's signed approval.
pub fn approve(
    log: &crate::audit::AuditLog,
    hash: &str,
    who: crate::app::adoption::Who<'_>,
    json: bool,
) -> Result<(), CliError> {
    let a = crate::app::adoption::approve(log, hash, who)?;
    if json {
        return print_json(&a);
    }
    let mut out = anstream::stdout().lock();
    writeln!(
        out,
        "{} approved policy {} (seq {}): {} of {} approval(s): {}",
        printable(&a.approver),
        a.policy_hash,
        a.seq,
        a.approvals.len(),
        a.needs,
        a.approvals.join(", ")
    )?;
    if a.adopted {
        writeln!(
            out,
            "policy {} is adopted: it is in force in `{}` from now on",
            a.policy_hash,
            log.path().display()
        )?;
    }
    Ok(())
}

/// Prints `value` as one line of JSON.
fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let s = serde_json::to_string(value).map_err(std::io::Error::other)?;
    writeln!(anstream::stdout().lock(), "{s}")?;
    Ok(())
}
