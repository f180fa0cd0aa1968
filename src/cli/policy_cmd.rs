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
        Ok(ledger) => ledger.adopted().map(|a| a.policy_hash.as_str().to_owned()),
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
    let mut out = anstream::stdout().lock();
    if json {
        let s = serde_json::to_string(&summary).map_err(std::io::Error::other)?;
        writeln!(out, "{s}")?;
        return Ok(());
    }
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
    let (a, _) = load_policy(Some(old))?;
    let (b, _) = load_policy(Some(new))?;
    let ledger = crate::app::ledger::read_only(log, sealer, mark)?;
    let d = policy_diff(&a, &b, &ledger);
    let mut out = anstream::stdout().lock();
    if json {
        let s = serde_json::to_string(&d).map_err(std::io::Error::other)?;
        writeln!(out, "{s}")?;
        return Ok(());
    }
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
    file: Option<&Path>,
    json: bool,
) -> Result<(), CliError> {
    let a = crate::app::adoption::init(log, policy, file)?;
    let mut out = anstream::stdout().lock();
    if json {
        let s = serde_json::to_string(&a).map_err(std::io::Error::other)?;
        writeln!(out, "{s}")?;
        return Ok(());
    }
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
    let a = crate::app::adoption::find(ledger.adoptions(), hash)?;
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
