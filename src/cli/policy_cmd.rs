//! `opsgate policy check`: validate the effective policy, print its hash.

use std::io::Write;

use serde::Serialize;

use super::error::CliError;
use crate::app::present::bold;
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
}

pub fn check(policy: &LoadedPolicy, json: bool) -> Result<(), CliError> {
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
    Ok(())
}
