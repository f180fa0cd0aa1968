//! The environment a step runs with: built from the policy's allowlist and
//! the plan's own `env:`, never inherited whole from whoever runs opsgate.
//!
//! `PATH`, `BASH_ENV`, `KUBECONFIG`, `DOCKER_HOST`, `AWS_*` decide what a
//! command line does and where; inherited, they let the person who starts
//! an approved run change what the approvers approved. So a step sees only
//! the variables the policy passes (`execution.environment.pass`, names or
//! globs), the policy's `PATH`, and the plan's `env:` (hashed and approved
//! with the plan). `BASH_ENV` and `ENV` (files a shell runs first) never
//! pass, from anywhere. `run_started` records the variables that choose
//! targets ([`targets`]).
//!
//! Pure: the inherited variables are passed in.

use std::collections::BTreeMap;

use crate::core::policy::EnvironmentPolicy;

/// Variables that never reach a step: files a shell runs before the
/// command (`BASH_ENV`, `ENV`), and the engine's own step marker.
pub const NEVER_PASSED: &[&str] = &["BASH_ENV", "ENV", "OPSGATE_STEP"];

/// Variables (or prefixes, ending in `_`) that choose where a command acts:
/// recorded in `run_started`.
pub const TARGET_VARIABLES: &[&str] = &[
    "PATH",
    "KUBECONFIG",
    "HELM_KUBECONTEXT",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_CONFIG",
    "GOOGLE_CLOUD_PROJECT",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_CONFIG_DIR",
    "TF_WORKSPACE",
    "TF_DATA_DIR",
    "VAULT_ADDR",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGSERVICE",
];

/// Whether `name` is a plain environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a variable may never reach a step.
pub fn never_passed(name: &str) -> bool {
    NEVER_PASSED.contains(&name)
}

/// The environment of a step: the inherited variables the policy passes,
/// the policy's `PATH`, then the plan's `env:` over them; never
/// [`NEVER_PASSED`].
pub fn step_environment(
    policy: &EnvironmentPolicy,
    plan_env: &BTreeMap<String, String>,
    inherited: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| k != "PATH" && policy.pass.iter().any(|p| p.is_match(k)))
        .collect();
    env.insert("PATH".into(), policy.path.clone());
    env.extend(plan_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.retain(|k, _| !never_passed(k));
    env
}

/// The variables of `env` that choose where a command acts.
pub fn targets(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(k, _)| {
            TARGET_VARIABLES
                .iter()
                .any(|t| *k == t || (t.ends_with('_') && k.starts_with(t)))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::schema::GlobPattern;

    fn policy(pass: &[&str]) -> EnvironmentPolicy {
        EnvironmentPolicy {
            pass: pass.iter().map(|p| GlobPattern::new(p).unwrap()).collect(),
            path: "/usr/bin:/bin".into(),
        }
    }

    fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn only_what_the_policy_passes_and_the_plan_sets() {
        let inherited = vars(&[
            ("HOME", "/home/a"),
            ("LC_ALL", "C"),
            ("PATH", "/evil/bin:/usr/bin"),
            ("BASH_ENV", "/tmp/evil.sh"),
            ("KUBECONFIG", "/tmp/other-cluster"),
            ("AWS_PROFILE", "prod"),
        ]);
        let plan = BTreeMap::from([("AWS_PROFILE".to_owned(), "staging".to_owned())]);
        let env = step_environment(&policy(&["HOME", "LC_*", "BASH_ENV"]), &plan, inherited);
        assert_eq!(
            env,
            BTreeMap::from([
                ("AWS_PROFILE".into(), "staging".into()),
                ("HOME".into(), "/home/a".into()),
                ("LC_ALL".into(), "C".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ])
        );
        assert_eq!(
            targets(&env),
            BTreeMap::from([
                ("AWS_PROFILE".into(), "staging".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ])
        );
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("AWS_PROFILE") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
        assert!(never_passed("BASH_ENV") && never_passed("ENV"));
    }
}
