//! What changed between two policies, and whether each change loosens or
//! tightens the gate (`opsgate policy diff`).
//!
//! A change opsgate cannot judge (an alias, a tool spec, a bridge setting,
//! a rule whose effect depends on the built-in table) is `unknown`, which
//! counts as loosening: a reviewer must read it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::model::Policy;
use crate::core::risk::RiskLevel;

/// What one change does to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Loosens,
    Tightens,
    /// No bearing on who may run what (`tui.keys`).
    Neutral,
    /// opsgate cannot tell; counted as loosening.
    Unknown,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Loosens => "loosens",
            Effect::Tightens => "tightens",
            Effect::Neutral => "neutral",
            Effect::Unknown => "unknown",
        }
    }

    /// Whether the change needs the review a loosening does.
    pub fn loosens(self) -> bool {
        matches!(self, Effect::Loosens | Effect::Unknown)
    }
}

/// One changed key, rule, approver or signer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `approvals.required.CRITICAL`, `rules[drop-prod]`, `approvers[bob]`,
    /// `signers[alice SHA256:…]`.
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub effect: Effect,
    /// Why the effect is what it is.
    pub why: String,
}

/// The changes from `old` to `new`, in key order.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut changes = Vec::new();
    let (mut a, mut b) = (tree(old), tree(new));
    let (a_rules, b_rules) = (take(&mut a, "rules"), take(&mut b, "rules"));
    let (a_appr, b_appr) = (take(&mut a, "approvers"), take(&mut b, "approvers"));
    walk("", &a, &b, &mut changes);
    rules(&a_rules, &b_rules, &mut changes);
    approvers(&a_appr, &b_appr, &mut changes);
    signers(old, new, &mut changes);
    changes
}

fn tree(p: &Policy) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

fn take(v: &mut Value, key: &str) -> Value {
    v.as_object_mut()
        .and_then(|o| o.remove(key))
        .unwrap_or(Value::Null)
}

fn change(key: &str, old: &Value, new: &Value, effect: Effect, why: impl Into<String>) -> Change {
    let opt = |v: &Value| (!v.is_null()).then(|| v.clone());
    Change {
        key: key.to_owned(),
        old: opt(old),
        new: opt(new),
        effect,
        why: why.into(),
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    if a == b {
        return;
    }
    if let (Value::Object(x), Value::Object(y)) = (a, b) {
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        for k in keys {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            walk(
                &sub,
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
                out,
            );
        }
        return;
    }
    let (effect, why) = judge(path, a, b);
    out.push(change(path, a, b, effect, why));
}

fn level(v: &Value) -> Option<RiskLevel> {
    serde_json::from_value(v.clone()).ok()
}

/// Lists of protections: taking an item out loosens.
const PROTECTING_LISTS: &[&str] = &[
    "safety.production_namespaces",
    "safety.production_contexts",
    "safety.production_scopes",
    "safety.production_profiles",
    "safety.production_projects",
    "safety.production_resource_groups",
    "safety.production_subscriptions",
    "safety.production_hosts",
    "safety.production_stacks",
    "audit.redact",
];

/// Lists of exceptions: putting an item in loosens.
const EXEMPTING_LISTS: &[&str] = &[
    "execution.dry_run_exempt",
    "execution.environment.pass",
    "bridge.clients",
    "identity.policy_admins",
];

fn by(more_is_looser: bool, grew: bool) -> Effect {
    if more_is_looser == grew {
        Effect::Loosens
    } else {
        Effect::Tightens
    }
}

fn judge(path: &str, a: &Value, b: &Value) -> (Effect, String) {
    let flag = |true_is_looser: bool| match b.as_bool() {
        Some(on) => (
            by(true_is_looser, on),
            format!("turned {}", if on { "on" } else { "off" }),
        ),
        None => (Effect::Unknown, "not a flag any more".into()),
    };
    match path {
        "safety.allow_critical" | "execution.auto_approve_low_risk" | "identity.trust_as" => {
            return flag(true);
        }
        "safety.require_approval" | "safety.block_production" | "execution.require_dry_run" => {
            return flag(false);
        }
        "approvals.ttl" => {
            // Durations are compared in milliseconds, their canonical form.
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                return (
                    by(true, y > x),
                    "approvals stay valid longer or shorter".into(),
                );
            }
        }
        "approvals.separation_of_duties" => {
            // Off is looser than any level; a higher level is looser.
            let from = |v: &Value| level(v).map_or(5, |l| l as u8);
            let (x, y) = (from(a), from(b));
            return (
                by(true, y > x),
                "the level from which the submitter may not approve".into(),
            );
        }
        "identity.require_signatures_from" => {
            if let (Some(x), Some(y)) = (level(a), level(b)) {
                return (
                    by(true, y > x),
                    "the level from which decisions must be signed".into(),
                );
            }
        }
        "tui.keys" => return (Effect::Neutral, "key bindings".into()),
        // Where the file is; what it says is compared entry by entry
        // (`signers[…]`).
        "identity.allowed_signers" => {
            return (Effect::Neutral, "the allowed signers file's path".into());
        }
        _ => {}
    }
    if path.starts_with("tui.keys.") {
        return (Effect::Neutral, "a key binding".into());
    }
    if path.starts_with("approvals.required.")
        && let (Some(x), Some(y)) = (a.as_u64(), b.as_u64())
    {
        return (by(false, y > x), format!("approvals needed: {x} → {y}"));
    }
    if path.starts_with("approvals.channel_max_risk.") {
        // No ceiling for a channel means it may approve anything.
        let rank = |v: &Value| level(v).map_or(4, |l| l as u8);
        return (
            by(true, rank(b) > rank(a)),
            "the highest level this channel may approve".into(),
        );
    }
    let protecting = PROTECTING_LISTS.contains(&path);
    if protecting || EXEMPTING_LISTS.contains(&path) {
        let set = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .map(|l| l.iter().map(|i| i.to_string()).collect())
                .unwrap_or_default()
        };
        let (x, y) = (set(a), set(b));
        let removed = x.difference(&y).count();
        let added = y.difference(&x).count();
        let loosening = if protecting { removed } else { added };
        let effect = if loosening > 0 {
            Effect::Loosens
        } else {
            Effect::Tightens
        };
        return (effect, format!("{added} added, {removed} removed"));
    }
    (
        Effect::Unknown,
        "opsgate cannot judge this key; review it".into(),
    )
}

/// A rule is named by its `id`, else by its conditions.
fn rule_key(rule: &Value) -> String {
    if let Some(id) = rule.get("id").and_then(Value::as_str) {
        return id.to_owned();
    }
    let mut r = rule.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("level");
        o.remove("reason");
    }
    r.to_string()
}

fn rules(a: &Value, b: &Value, out: &mut Vec<Change>) {
    let index = |v: &Value| -> BTreeMap<String, Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| (rule_key(r), r.clone()))
            .collect()
    };
    let (x, y) = (index(a), index(b));
    let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    let null = Value::Null;
    for k in keys {
        let (old, new) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
        if old == new {
            continue;
        }
        let lv = |r: &Value| r.get("level").and_then(level);
        let overrides = |r: &Value| r.get("override").and_then(Value::as_bool) == Some(true);
        let same_conditions = {
            let strip = |r: &Value| {
                let mut r = r.clone();
                if let Some(o) = r.as_object_mut() {
                    o.remove("level");
                    o.remove("reason");
                }
                r
            };
            strip(old) == strip(new)
        };
        let (effect, why) = match (lv(old), lv(new)) {
            (Some(p), Some(q)) if p != q && same_conditions => (
                by(false, q > p),
                format!(
                    "rule {} from {p} to {q}",
                    if q > p { "raised" } else { "lowered" }
                ),
            ),
            (Some(_), Some(_)) if same_conditions => (Effect::Neutral, "its reason".into()),
            // A rule without `override` is a floor: it can only raise
            // what it matches.
            (None, Some(_)) if !overrides(new) => (
                Effect::Tightens,
                "a new floor: what it matches can only rate higher".into(),
            ),
            (Some(_), None) if !overrides(old) => (
                Effect::Loosens,
                "a floor removed: what it matched may rate lower".into(),
            ),
            // An override sets the level outright: a CRITICAL one can only
            // raise, a LOW one can only lower.
            (None, Some(RiskLevel::Critical)) | (Some(RiskLevel::Low), None) => (
                Effect::Tightens,
                "what it matches can only rate higher".into(),
            ),
            (None, Some(RiskLevel::Low)) | (Some(RiskLevel::Critical), None) => (
                Effect::Loosens,
                "what it matches can only rate lower".into(),
            ),
            _ => (
                Effect::Unknown,
                "the effect depends on the built-in rules; see the replay".into(),
            ),
        };
        out.push(change(&format!("rules[{k}]"), old, new, effect, why));
    }
}

fn approvers(a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a.is_null(), b.is_null()) {
        (true, true) => return,
        (true, false) => {
            out.push(change(
                "approvers",
                a,
                b,
                Effect::Tightens,
                "only the listed people may approve",
            ));
            return;
        }
        (false, true) => {
            out.push(change(
                "approvers",
                a,
                b,
                Effect::Loosens,
                "anyone may approve again",
            ));
            return;
        }
        _ => {}
    }
    let index = |v: &Value| -> BTreeMap<String, Value> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("name")?.as_str()?.to_owned(), p.clone())))
            .collect()
    };
    let (x, y) = (index(a), index(b));
    let names: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
    let null = Value::Null;
    for name in names {
        let (old, new) = (x.get(name).unwrap_or(&null), y.get(name).unwrap_or(&null));
        if old == new {
            continue;
        }
        let (effect, why) = if old.is_null() {
            (Effect::Loosens, "a new approver".to_owned())
        } else if new.is_null() {
            (Effect::Tightens, "no longer an approver".to_owned())
        } else {
            let set = |v: &Value, k: &str| -> BTreeSet<String> {
                v.get(k)
                    .and_then(Value::as_array)
                    .map(|l| l.iter().map(|i| i.to_string()).collect())
                    .unwrap_or_default()
            };
            let rank = |v: &Value| v.get("max_risk").and_then(level).map_or(4, |l| l as u8);
            let wider = rank(new) > rank(old)
                || !set(new, "channels").is_subset(&set(old, "channels"))
                || !set(new, "keys").is_subset(&set(old, "keys"));
            if wider {
                (
                    Effect::Loosens,
                    "a higher level, another channel or another key".to_owned(),
                )
            } else {
                (
                    Effect::Tightens,
                    "a lower level or fewer channels or keys".to_owned(),
                )
            }
        };
        out.push(change(&format!("approvers[{name}]"), old, new, effect, why));
    }
}

/// Each signer as one line: principals, key fingerprint, options.
fn signer_lines(p: &Policy) -> BTreeSet<String> {
    let Some(set) = p.signers.allowed() else {
        return BTreeSet::new();
    };
    set.entries()
        .iter()
        .map(|e| {
            let mut line = format!(
                "{} {}",
                e.principals(),
                crate::core::signers::fingerprint(e.key())
            );
            if e.is_cert_authority() {
                line.push_str(" cert-authority");
            }
            if let Some(n) = e.namespaces() {
                line.push_str(&format!(" namespaces={n}"));
            }
            if let Some(t) = e.valid_after() {
                line.push_str(&format!(" valid-after={}", t.to_rfc3339()));
            }
            if let Some(t) = e.valid_before() {
                line.push_str(&format!(" valid-before={}", t.to_rfc3339()));
            }
            line
        })
        .collect()
}

fn signers(old: &Policy, new: &Policy, out: &mut Vec<Change>) {
    let (x, y) = (signer_lines(old), signer_lines(new));
    for gone in x.difference(&y) {
        out.push(change(
            &format!("signers[{gone}]"),
            &Value::String(gone.clone()),
            &Value::Null,
            Effect::Tightens,
            "a signer removed",
        ));
    }
    for added in y.difference(&x) {
        out.push(change(
            &format!("signers[{added}]"),
            &Value::Null,
            &Value::String(added.clone()),
            Effect::Loosens,
            "a signer added",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::LoadedPolicy;

    fn policy(yaml: &str) -> Policy {
        LoadedPolicy::load(Some(("test.yaml", yaml)))
            .unwrap()
            .policy
    }

    fn effects(a: &str, b: &str) -> Vec<(String, Effect)> {
        diff(&policy(a), &policy(b))
            .into_iter()
            .map(|c| (c.key, c.effect))
            .collect()
    }

    #[test]
    fn the_same_policy_has_no_changes() {
        assert!(effects("", "").is_empty());
    }

    #[test]
    fn fewer_approvals_loosen_and_more_tighten() {
        let a = "approvals: {required: {CRITICAL: 2}}\n";
        let b = "approvals: {required: {CRITICAL: 1}}\n";
        let key = "approvals.required.CRITICAL".to_owned();
        assert_eq!(effects(a, b), vec![(key.clone(), Effect::Loosens)]);
        assert_eq!(effects(b, a), vec![(key, Effect::Tightens)]);
    }

    #[test]
    fn flags_judge_by_direction() {
        let on = "safety: {allow_critical: true, block_production: false}\n";
        let off = "safety: {allow_critical: false, block_production: true}\n";
        for (_, e) in effects(off, on) {
            assert_eq!(e, Effect::Loosens);
        }
        for (_, e) in effects(on, off) {
            assert_eq!(e, Effect::Tightens);
        }
        assert_eq!(effects(off, on).len(), 2);
    }

    #[test]
    fn rules_are_judged_by_level_floor_and_override() {
        let a = "rules:\n  - {id: drop, program: psql, regex: DROP, level: CRITICAL}\n";
        let b = "rules:\n  - {id: drop, program: psql, regex: DROP, level: MEDIUM}\n";
        assert_eq!(
            effects(a, b),
            vec![("rules[drop]".to_owned(), Effect::Loosens)]
        );
        // Without `override`, a rule is a floor.
        let floor = "rules:\n  - {program: rm, level: LOW}\n";
        assert_eq!(effects("", floor)[0].1, Effect::Tightens);
        assert_eq!(effects(floor, "")[0].1, Effect::Loosens);
        // An override sets the level outright.
        let c = "rules:\n  - {program: rm, level: LOW, override: true}\n";
        assert_eq!(effects("", c)[0].1, Effect::Loosens);
        let d = "rules:\n  - {program: rm, level: CRITICAL, override: true}\n";
        assert_eq!(effects("", d)[0].1, Effect::Tightens);
        let e = "rules:\n  - {program: rm, level: HIGH, override: true}\n";
        assert_eq!(effects("", e)[0].1, Effect::Unknown);
    }

    #[test]
    fn approvers_and_production_scopes() {
        let a = "approvers: [{name: alice}]\nsafety: {production_namespaces: [prod, live]}\n";
        let b =
            "approvers: [{name: alice}, {name: bob}]\nsafety: {production_namespaces: [prod]}\n";
        let got = effects(a, b);
        assert!(
            got.contains(&("approvers[bob]".to_owned(), Effect::Loosens)),
            "{got:?}"
        );
        assert!(
            got.contains(&("safety.production_namespaces".to_owned(), Effect::Loosens)),
            "{got:?}"
        );
        let got = effects(b, a);
        assert!(got.iter().all(|(_, e)| *e == Effect::Tightens), "{got:?}");
    }

    #[test]
    fn a_channel_ceiling_removed_loosens_and_one_added_tightens() {
        let with = policy("approvals: {channel_max_risk: {chat: MEDIUM}}\n");
        let mut without = with.clone();
        without.approvals.channel_max_risk.clear();
        let key = "approvals.channel_max_risk.chat".to_owned();
        let got: Vec<_> = diff(&with, &without)
            .into_iter()
            .map(|c| (c.key, c.effect))
            .collect();
        assert_eq!(got, vec![(key.clone(), Effect::Loosens)]);
        let got: Vec<_> = diff(&without, &with)
            .into_iter()
            .map(|c| (c.key, c.effect))
            .collect();
        assert_eq!(got, vec![(key, Effect::Tightens)]);
        let higher = policy("approvals: {channel_max_risk: {chat: CRITICAL}}\n");
        assert_eq!(diff(&with, &higher)[0].effect, Effect::Loosens);
    }

    #[test]
    fn a_longer_approval_ttl_loosens() {
        let got = effects("approvals: {ttl: 30m}\n", "approvals: {ttl: 2h}\n");
        assert_eq!(got, vec![("approvals.ttl".to_owned(), Effect::Loosens)]);
        let got = effects("approvals: {ttl: 2h}\n", "approvals: {ttl: 30m}\n");
        assert_eq!(got, vec![("approvals.ttl".to_owned(), Effect::Tightens)]);
    }

    #[test]
    fn an_unknown_change_counts_as_loosening() {
        let got = effects("", "aliases: {kk: kubectl}\n");
        assert_eq!(got, vec![("aliases.kk".to_owned(), Effect::Unknown)]);
        assert!(got[0].1.loosens());
    }
}
