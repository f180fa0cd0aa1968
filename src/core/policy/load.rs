//! Loading a policy: the embedded default overlaid by the user's file.
//!
//! The user file is first read strictly into the typed `Policy`, so unknown
//! keys and bad values are reported at their line and column. Then both files
//! are merged as YAML trees, key by key (a mapping merges, anything else
//! replaces), and the merged tree becomes the effective policy. Its hash is
//! over the normalized policy plus the built-in rules, so comments and layout
//! never change it, and a new built-in table does.

use std::sync::OnceLock;

use serde::Serialize;

use super::model::Policy;
use crate::core::classify::schema::RulePack;
use crate::core::classify::{ProductionScope, RuleSet, ScopeKind, UserRules};
use crate::core::digest::{PolicyHash, canonical_sha256};
use crate::core::identity::Signers;
use crate::core::yaml::{self, FileError, Position};

pub const DEFAULT_POLICY_YAML: &str = include_str!("../../../config/opsgate.yaml");
pub const BUILTIN_RULES_YAML: &str = include_str!("../../../config/rules.yaml");
const DEFAULT_NAME: &str = "<embedded config/opsgate.yaml>";
const RULES_NAME: &str = "<embedded config/rules.yaml>";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// The built-in rule pack, parsed once.
pub fn builtin_pack() -> Result<&'static RulePack, FileError> {
    static PACK: OnceLock<Result<RulePack, FileError>> = OnceLock::new();
    PACK.get_or_init(|| yaml::from_str(RULES_NAME, BUILTIN_RULES_YAML))
        .as_ref()
        .map_err(Clone::clone)
}

/// Where the policy holds durations (`HumanDuration`).
const DURATIONS: [&str; 6] = [
    "/approvals/ttl",
    "/backends/breaker/open_for",
    "/bridge/replay_window",
    "/bridge/header_timeout",
    "/bridge/write_timeout",
    "/bridge/events/heartbeat",
];

/// A policy ready to use: typed, compiled and hashed.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub policy: Policy,
    pub rules: RuleSet,
    pub hash: PolicyHash,
    /// Where the user part came from, or the embedded default's name.
    pub source: String,
}

impl LoadedPolicy {
    /// The embedded default alone.
    pub fn embedded() -> Result<Self, PolicyError> {
        Self::load(None)
    }

    /// The embedded default overlaid by `user` (`(file name, text)`).
    pub fn load(user: Option<(&str, &str)>) -> Result<Self, PolicyError> {
        let mut tree: serde_json::Value = serde_saphyr::from_str(DEFAULT_POLICY_YAML)
            .map_err(|e| yaml::to_file_error(DEFAULT_NAME, &e))?;
        let mut source = DEFAULT_NAME.to_owned();
        if let Some((name, text)) = user {
            source = name.to_owned();
            if !yaml::is_blank(text) {
                // The strict read: located errors for unknown keys and values.
                yaml::from_str::<Policy>(name, text)?;
                let overlay: serde_json::Value =
                    serde_saphyr::from_str(text).map_err(|e| yaml::to_file_error(name, &e))?;
                if !overlay.is_object() {
                    return Err(FileError {
                        file: name.to_owned(),
                        position: Position { line: 1, column: 1 },
                        message: "a policy file must be a mapping of sections".into(),
                    }
                    .into());
                }
                merge(&mut tree, overlay);
            }
        }
        let mut policy: Policy =
            serde_json::from_value(tree).map_err(|e| PolicyError::Invalid {
                file: source.clone(),
                message: e.to_string(),
            })?;
        normalize(&mut policy);
        policy
            .canonicalize_people()
            .map_err(|message| PolicyError::Invalid {
                file: source.clone(),
                message,
            })?;
        policy.signers = signers(&policy, None).map_err(|message| PolicyError::Invalid {
            file: source.clone(),
            message,
        })?;
        policy
            .tui
            .keys
            .check()
            .map_err(|message| PolicyError::Invalid {
                file: source.clone(),
                message,
            })?;
        for check in [
            policy.backends.check(),
            policy.bridge.check(),
            policy.execution.check(),
            policy.store.check(),
        ] {
            check.map_err(|message| PolicyError::Invalid {
                file: source.clone(),
                message,
            })?;
        }
        Self::from_policy(policy, source)
    }

    /// The same policy with the text of its `identity.allowed_signers`
    /// file (read by the caller, named `name`), hashed again: the signers
    /// are part of the policy.
    pub fn with_signers_file(mut self, name: &str, text: &str) -> Result<Self, PolicyError> {
        self.policy.signers =
            signers(&self.policy, Some((name, text))).map_err(|message| PolicyError::Invalid {
                file: self.source.clone(),
                message,
            })?;
        Self::from_policy(self.policy, self.source)
    }

    /// The policy as `policy_adopted` records it: the effective policy as
    /// JSON (the allowed signers file's text goes beside it).
    pub fn adoption_form(&self) -> Result<serde_json::Value, PolicyError> {
        let mut form = serde_json::to_value(&self.policy).map_err(|e| PolicyError::Invalid {
            file: self.source.clone(),
            message: format!("cannot record the policy: {e}"),
        })?;
        // Durations hash as milliseconds but are written as text (`90s`);
        // the recorded form must load as a policy file does.
        let hooks = form
            .pointer("/bridge/webhooks")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len);
        let in_hooks = (0..hooks).flat_map(|i| {
            ["initial", "max", "timeout"].map(|k| format!("/bridge/webhooks/{i}/retry/{k}"))
        });
        for pointer in DURATIONS.iter().map(|p| (*p).to_owned()).chain(in_hooks) {
            if let Some(v) = form.pointer_mut(&pointer)
                && let Some(ms) = v.as_u64()
            {
                *v = serde_json::Value::String(format!("{ms}ms"));
            }
        }
        Ok(form)
    }

    /// A policy read back from its `policy_adopted` record (`source` names
    /// it in errors). Its hash is computed again: the caller compares it
    /// with the recorded one (the built-in rules of another opsgate
    /// version hash differently).
    pub fn from_adopted(
        source: &str,
        policy: &serde_json::Value,
        allowed_signers: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            file: source.to_owned(),
            message,
        };
        let mut policy: Policy =
            serde_json::from_value(policy.clone()).map_err(|e| invalid(e.to_string()))?;
        policy.canonicalize_people().map_err(invalid)?;
        policy.store.check().map_err(invalid)?;
        policy.signers = signers(&policy, allowed_signers.map(|t| (source, t))).map_err(invalid)?;
        Self::from_policy(policy, source.to_owned())
    }

    /// Compiles and hashes a typed policy.
    pub fn from_policy(policy: Policy, source: String) -> Result<Self, PolicyError> {
        let pack = builtin_pack()?;
        let scope = ProductionScope {
            namespaces: policy.safety.production_namespaces.clone(),
            contexts: policy.safety.production_contexts.clone(),
            scopes: policy.safety.production_scopes.clone(),
            by_kind: [
                (ScopeKind::Profile, &policy.safety.production_profiles),
                (ScopeKind::Project, &policy.safety.production_projects),
                (
                    ScopeKind::ResourceGroup,
                    &policy.safety.production_resource_groups,
                ),
                (
                    ScopeKind::Subscription,
                    &policy.safety.production_subscriptions,
                ),
                (ScopeKind::Host, &policy.safety.production_hosts),
                (ScopeKind::Stack, &policy.safety.production_stacks),
            ]
            .into_iter()
            .flat_map(|(k, globs)| globs.iter().map(move |g| (k, g.clone())))
            .collect(),
        };
        let rules = RuleSet::compile(
            pack,
            UserRules {
                tools: &policy.tools,
                rules: &policy.rules,
                aliases: &policy.aliases,
                lexicon: &policy.lexicon,
            },
            scope,
        )
        .map_err(|e| PolicyError::Invalid {
            file: source.clone(),
            message: e.to_string(),
        })?;
        let hash = policy_hash(&policy, pack).map_err(|e| PolicyError::Invalid {
            file: source.clone(),
            message: format!("cannot hash the policy: {e}"),
        })?;
        Ok(LoadedPolicy {
            policy,
            rules,
            hash,
            source,
        })
    }
}

fn policy_hash(policy: &Policy, pack: &RulePack) -> Result<PolicyHash, serde_json::Error> {
    #[derive(Serialize)]
    struct Canonical<'a> {
        policy: &'a Policy,
        builtin: &'a RulePack,
        #[serde(skip_serializing_if = "Option::is_none")]
        allowed_signers: Option<&'a str>,
    }
    canonical_sha256(
        "opsgate-policy/1",
        &Canonical {
            policy,
            builtin: pack,
            allowed_signers: policy.signers.digest(),
        },
    )
    .map(PolicyHash::new)
}

/// The signers a policy names: the `identity.allowed_signers` file's
/// `text` (read by the caller; `None` when the policy names none) and the
/// approvers' inline keys.
fn signers(policy: &Policy, file: Option<(&str, &str)>) -> Result<Signers, String> {
    use crate::core::signers::{AllowedSigners, Entry};
    let text = file.map(|(_, t)| t);
    let (mut entries, digest) = match file {
        Some((name, text)) => {
            let parsed = AllowedSigners::parse(text).map_err(|e| format!("{name}: {e}"))?;
            (
                parsed.into_entries(),
                Some(
                    canonical_sha256("opsgate-allowed-signers/1", &text)
                        .map_err(|e| format!("{name}: cannot hash: {e}"))?,
                ),
            )
        }
        None => (Vec::new(), None),
    };
    for (i, a) in policy.approvers.iter().flatten().enumerate() {
        for key in &a.keys {
            entries.push(
                Entry::parse_key_line(&a.name, key)
                    .map_err(|e| format!("approvers[{i}] `{}`: keys: {e}", a.name))?,
            );
        }
    }
    if entries.is_empty() && digest.is_none() {
        return Ok(Signers::default());
    }
    let set = Signers::new(AllowedSigners::from_entries(entries), digest);
    Ok(match text {
        Some(t) => set.with_text(t),
        None => set,
    })
}

/// Lists whose order means nothing are sorted, so reordering them does not
/// change the hash. Rule order is kept: it decides which override wins.
fn normalize(policy: &mut Policy) {
    let s = &mut policy.safety;
    s.production_namespaces.sort();
    s.production_namespaces.dedup();
    s.production_contexts
        .sort_by(|a, b| a.as_str().cmp(b.as_str()));
    s.production_contexts.dedup();
}

/// Lays `overlay` over `base`: mappings merge key by key, anything else
/// (scalars, lists) replaces.
fn merge(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::risk::RiskLevel;

    const HOOK: &str = "bridge:\n  write_timeout: 45s\n  events: {heartbeat: 5s, buffer: 64}\n  webhooks:\n    - name: oncall\n      url: https://hooks.example.com/x\n      events: [approval_needed, run_failed]\n      secret_file: hook.secret\n      retry: {attempts: 3, initial: 250ms, max: 2m, timeout: 5s}\n";

    #[test]
    fn a_policy_with_webhooks_is_recorded_in_a_form_that_loads_with_the_same_hash() {
        let p = LoadedPolicy::load(Some(("policy.yaml", HOOK))).unwrap();
        let hook = &p.policy.bridge.webhooks[0];
        assert_eq!(hook.retry.initial.as_millis(), 250);
        let form = p.adoption_form().unwrap();
        assert_eq!(form["bridge"]["webhooks"][0]["retry"]["max"], "120000ms");
        assert_eq!(form["bridge"]["events"]["heartbeat"], "5000ms");
        let back = LoadedPolicy::from_adopted("adopted", &form, None).unwrap();
        assert_eq!(back.hash, p.hash);
        // Settings left at their defaults leave the hash alone.
        let plain = LoadedPolicy::embedded().unwrap();
        let same = LoadedPolicy::load(Some((
            "p.yaml",
            "bridge:\n  write_timeout: 30s\n  events: {heartbeat: 15s, buffer: 8192}\n  webhooks: []\n",
        )))
        .unwrap();
        assert_eq!(same.hash, plain.hash);
    }

    #[test]
    fn a_bad_webhook_is_refused_with_what_is_wrong() {
        for (change, want) in [
            ("name: oncall", "name: On Call", "must be lower-case"),
            (
                "url: https://hooks.example.com/x",
                "url: ftp://x",
                "not an http(s) URL",
            ),
            (
                "url: https://hooks.example.com/x",
                "url: https://user:pw@x/",
                "not an http(s) URL",
            ),
            (
                "run_failed]",
                "run_exploded]",
                "unknown event `run_exploded`",
            ),
            ("      secret_file: hook.secret\n", "", "needs secret_file"),
            ("attempts: 3", "attempts: 0", "at least 1"),
        ]
        .map(|(a, b, w)| ((a, b), w))
        {
            let text = HOOK.replace(change.0, change.1);
            let e = LoadedPolicy::load(Some(("policy.yaml", &text)))
                .err()
                .unwrap_or_else(|| panic!("accepted {change:?}"));
            assert!(e.to_string().contains(want), "{change:?}: {e}");
        }
        let twice = format!(
            "{HOOK}    - name: oncall\n      url: http://127.0.0.1:1/\n      events: [refused]\n      secret_file: s\n"
        );
        let e = LoadedPolicy::load(Some(("policy.yaml", &twice))).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
    }

    #[test]
    fn the_embedded_default_loads_with_the_documented_values() {
        let p = LoadedPolicy::embedded().unwrap();
        assert!(!p.policy.execution.auto_approve_low_risk);
        assert!(p.policy.safety.require_approval);
        assert_eq!(
            p.policy.approvals.required.for_level(RiskLevel::Critical),
            2
        );
        assert_eq!(p.policy.approvals.ttl.as_millis(), 30 * 60 * 1000);
        assert_eq!(
            p.policy.aliases.get("k").map(String::as_str),
            Some("kubectl")
        );
        assert!(p.rules.rule_count() > 50);
    }

    #[test]
    fn a_user_file_overlays_key_by_key() {
        let p = LoadedPolicy::load(Some((
            "u.yaml",
            "approvals:\n  required: {CRITICAL: 3}\naliases: {kc: kubectl}\n",
        )))
        .unwrap();
        let req = p.policy.approvals.required;
        assert_eq!((req.medium, req.critical), (1, 3));
        assert_eq!(p.policy.aliases.len(), 3);
        assert_eq!(
            p.policy.approvals.separation_of_duties.0,
            Some(crate::core::risk::RiskLevel::High)
        );
    }

    #[test]
    fn layout_and_comments_do_not_change_the_hash_but_values_do() {
        let a = LoadedPolicy::load(Some(("a", "safety: {allow_critical: false}\n"))).unwrap();
        let b = LoadedPolicy::load(Some((
            "b",
            "# same\nsafety:\n    allow_critical:   false   # still\n",
        )))
        .unwrap();
        let c = LoadedPolicy::load(Some(("c", "safety: {allow_critical: true}\n"))).unwrap();
        let d = LoadedPolicy::embedded().unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash, d.hash);
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn approvers_who_are_one_person_or_no_name_are_refused() {
        for (yaml, want) in [
            (
                "approvers:\n  - {name: bob}\n  - {name: \"b\\u043eb\"}\n",
                "are the same person",
            ),
            (
                "approvers:\n  - {name: alice}\n  - {name: \"alice\\u200b\"}\n",
                "are the same person",
            ),
            (
                "approvers:\n  - {name: \"bob\\u0007\"}\n",
                "a control character U+0007",
            ),
            (
                "bridge:\n  clients:\n    - {name: bot, token_sha256: \"0000000000000000000000000000000000000000000000000000000000000000\", senders: {U1: \"\\u0000\"}}\n",
                "senders `U1`",
            ),
        ] {
            let e = LoadedPolicy::load(Some(("p.yaml", yaml))).unwrap_err();
            assert!(e.to_string().contains(want), "{yaml}: {e}");
        }
        let p = LoadedPolicy::load(Some((
            "p.yaml",
            "approvers:\n  - {name: \"ａｌｉｃｅ\\u200b\"}\n",
        )))
        .unwrap();
        let names: Vec<_> = p
            .policy
            .approvers
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["alice"], "names are kept in canonical form");
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let e =
            LoadedPolicy::load(Some(("p.yaml", "execution:\n  auto_aprove: true\n"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:2:3: unknown field `auto_aprove`, expected one of auto_approve_low_risk, require_dry_run, dry_run_exempt, auto_rollback, environment"
        );
    }
}
