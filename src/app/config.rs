//! Finding and reading the policy file.
//!
//! A path the user names must exist; a missing default path is fine and
//! falls through to the next one, and finally to the embedded default.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use crate::audit::{KEY_ENV, Sealer, sealer_from};
use crate::core::policy::LoadedPolicy;
use crate::core::redact::Redactor;

/// The effective policy, and the user file it came from, if any.
pub fn load_policy(explicit: Option<&Path>) -> Result<(LoadedPolicy, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => default_paths().into_iter().find(|p| p.is_file()),
    };
    match path {
        Some(p) => {
            let text = read(&p)?;
            let mut loaded = LoadedPolicy::load(Some((&p.display().to_string(), &text)))?;
            if let Some(file) = loaded.policy.identity.allowed_signers.clone() {
                let file = beside(Some(&p), &file);
                let signers = read(&file)?;
                loaded = loaded.with_signers_file(&file.display().to_string(), &signers)?;
            }
            Ok((loaded, Some(p)))
        }
        None => Ok((LoadedPolicy::embedded()?, None)),
    }
}

/// The sealer for commands that only read the log (`audit verify`, `head`,
/// `replay`, `export`, `tail`), which must work even when the policy file
/// does not load: the policy is loaded if it can be, else only its
/// `audit.key_file` is read from it, leniently. `OPSGATE_AUDIT_KEY` wins
/// either way.
pub fn reader_sealer(explicit: Option<&Path>) -> Result<Sealer> {
    match load_policy(explicit) {
        Ok((policy, file)) => sealer(&policy, file.as_deref()),
        Err(e) => {
            let env_key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty());
            let file = match explicit {
                Some(p) => Some(p.to_path_buf()),
                None => default_paths().into_iter().find(|p| p.is_file()),
            };
            let key_file = file.as_deref().and_then(|f| {
                let text = std::fs::read_to_string(f).ok()?;
                let tree: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
                let key = PathBuf::from(tree.pointer("/audit/key_file")?.as_str()?);
                Some(beside(Some(f), &key))
            });
            if env_key.is_none() && key_file.is_none() {
                tracing::warn!(error = %e, "the policy does not load; reading the log without an audit key");
            }
            eprintln!(
                "opsgate: note: the policy does not load ({}); reading the audit log anyway",
                e.to_string().lines().next().unwrap_or_default()
            );
            sealer_from(env_key, key_file.as_deref()).map_err(Error::Failed)
        }
    }
}

/// The audit log's path: `--audit-log`/`OPSGATE_AUDIT_LOG`, else
/// `$XDG_STATE_HOME/opsgate/audit.jsonl`, else `~/.local/state/…`.
pub fn audit_log_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    Ok(state_dir()?.join("audit.jsonl"))
}

/// This user's opsgate state directory: `$XDG_STATE_HOME/opsgate`, else
/// `~/.local/state/opsgate`. It holds the default log and the high-water
/// marks of every log this user works with.
pub fn state_dir() -> Result<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .ok_or_else(|| {
            Error::Invalid(
                "cannot place opsgate's state (the audit log, high-water marks): set XDG_STATE_HOME or HOME".into(),
            )
        })?;
    Ok(state.join("opsgate"))
}

/// The host's high-water mark of the log at `log` (`audit::mark`).
pub fn high_water(log: &Path) -> Result<crate::audit::mark::HighWater> {
    Ok(crate::audit::mark::HighWater::for_log(&state_dir()?, log))
}

/// The chain's sealer: `OPSGATE_AUDIT_KEY`, else the policy's
/// `audit.key_file` (relative to the policy file), else plain SHA-256.
pub fn sealer(policy: &LoadedPolicy, policy_file: Option<&Path>) -> Result<Sealer> {
    let env_key = std::env::var(KEY_ENV).ok().filter(|k| !k.is_empty());
    let key_file = policy
        .policy
        .audit
        .key_file
        .as_ref()
        .map(|f| beside(policy_file, f));
    sealer_from(env_key, key_file.as_deref()).map_err(Error::Failed)
}

/// The redactor for the policy's extra patterns.
pub fn redactor(policy: &LoadedPolicy) -> Redactor {
    Redactor::new(policy.policy.audit.redact.clone())
}

/// Where a policy is looked for when none is named: the user's XDG config,
/// then `/etc/opsgate/`. Never the working directory: a repository checkout
/// must not choose the rules.
fn default_paths() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = user_dir() {
        v.push(dir.join("opsgate.yaml"));
    }
    v.push(PathBuf::from("/etc/opsgate/opsgate.yaml"));
    v
}

/// This user's opsgate config directory: `$XDG_CONFIG_HOME/opsgate`, else
/// `~/.config/opsgate`.
pub fn user_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("opsgate"))
}

/// The user config (`user.yaml` in [`user_dir`]): settings of the person,
/// not rules, so it never enters the policy hash.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The SSH key that signs this person's decisions (as git's
    /// `user.signingKey`): a private key, a `.pub` whose key is in the
    /// ssh-agent, or a certificate. `~/` is the home directory; a relative
    /// path is relative to the file.
    pub signing_key: Option<PathBuf>,
}

/// The user config and its file, if there is one. A file that does not
/// read is an error naming the file, line and column.
pub fn user_config() -> Result<Option<(UserConfig, PathBuf)>> {
    let Some(file) = user_dir().map(|d| d.join("user.yaml")) else {
        return Ok(None);
    };
    if !file.is_file() {
        return Ok(None);
    }
    let text = read(&file)?;
    if crate::core::yaml::is_blank(&text) {
        return Ok(Some((UserConfig::default(), file)));
    }
    let config: UserConfig = crate::core::yaml::from_str(&file.display().to_string(), &text)
        .map_err(|e| Error::Failed(e.to_string()))?;
    Ok(Some((config, file)))
}

/// A path the policy names (`audit.key_file`, `identity.allowed_signers`):
/// relative to the policy file's directory, when there is one.
pub fn beside(policy_file: Option<&Path>, path: &Path) -> PathBuf {
    match policy_file.and_then(Path::parent) {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The policy and the open log, as a long-lived door (the TUI, the
/// bridge) holds them: `config` and `audit_log` are the command line's
/// `--config` and `--audit-log`.
pub fn open_app(config: Option<&Path>, audit_log: Option<&Path>) -> Result<super::App> {
    let (policy, file) = load_policy(config)?;
    let path = audit_log_path(audit_log)?;
    let sealer = sealer(&policy, file.as_deref())?;
    let log = crate::audit::AuditLog::open(&path, sealer.clone(), redactor(&policy))?
        .with_mark(high_water(&path)?);
    Ok(super::App::long_lived(policy, log, sealer))
}
