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

/// Where the audit log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAt {
    /// A JSON Lines file on this host.
    File(PathBuf),
    /// Team mode: PostgreSQL at this URL (as given: never printed), with a
    /// replica file in the state directory (`audit::log` `replica`).
    Store(String),
}

impl LogAt {
    /// The store, unless `--audit-log` names a file: `--store` /
    /// `OPSGATE_STORE` first, then the policy's `store.url`. Naming both a
    /// file log and a PostgreSQL store is an error: a host writing its own
    /// file would fork the team's log.
    pub fn resolve(
        store: Option<&str>,
        audit_log: Option<&Path>,
        policy: Option<&crate::core::policy::Policy>,
    ) -> Result<LogAt> {
        let (url, from) = match (store, policy.and_then(|p| p.store.url.as_deref())) {
            (Some(u), _) => (Some(u), "--store (OPSGATE_STORE)"),
            (None, Some(u)) => (Some(u), "the policy's store.url"),
            (None, None) => (None, ""),
        };
        let parsed = url
            .map(|u| {
                crate::store::StoreUrl::parse(u).map_err(|e| Error::Invalid(format!("{from}: {e}")))
            })
            .transpose()?;
        match (parsed, audit_log) {
            (Some(crate::store::StoreUrl::Postgres(u)), Some(file)) => {
                Err(Error::Invalid(format!(
                    "{from} names the PostgreSQL store {} and --audit-log (OPSGATE_AUDIT_LOG) the file log {}: give one",
                    crate::store::redact_url(&u),
                    file.display()
                )))
            }
            (Some(crate::store::StoreUrl::Postgres(u)), None) => Ok(LogAt::Store(u)),
            (Some(crate::store::StoreUrl::File(f)), None) => Ok(LogAt::File(f)),
            (Some(crate::store::StoreUrl::File(_)) | None, Some(file)) => {
                Ok(LogAt::File(file.to_path_buf()))
            }
            (None, None) => Ok(LogAt::File(audit_log_path(None)?)),
        }
    }

    /// Opens the log for appending; a store's replica is brought up to
    /// date first.
    pub fn open(&self, sealer: Sealer, redactor: Redactor) -> Result<crate::audit::AuditLog> {
        match self {
            LogAt::File(path) => {
                Ok(crate::audit::AuditLog::open(path, sealer, redactor)?
                    .with_mark(high_water(path)?))
            }
            LogAt::Store(url) => {
                let store_err = |e| Error::Audit(crate::audit::AuditError::from_store(url, e));
                let state = state_dir()?;
                let pg = crate::store::pg::Pg::connect(url)
                    .and_then(|pg| pg.with_mark(&state))
                    .map_err(store_err)?;
                let chain = pg.status().map_err(store_err)?.chain_id;
                let replica = replica_path(&state, &chain);
                let log = crate::audit::AuditLog::open_store(&replica, url, pg, sealer, redactor)?
                    .with_mark(high_water(&replica)?);
                log.refresh()?;
                Ok(log)
            }
        }
    }

    /// The file to read for a command that only reads: the file log, or
    /// the store's replica brought up to date.
    pub fn read_path(&self, sealer: &Sealer) -> Result<PathBuf> {
        match self {
            LogAt::File(path) => Ok(path.clone()),
            LogAt::Store(_) => Ok(self
                .open(sealer.clone(), Redactor::default())?
                .path()
                .to_owned()),
        }
    }
}

/// Where this host keeps its replica of the store whose chain is `chain`.
pub fn replica_path(state: &Path, chain: &str) -> PathBuf {
    let safe: String = chain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state.join("stores").join(format!("{safe}.jsonl"))
}

/// The policy and the open log, as a long-lived door (the TUI, the
/// bridge) holds them: `config`, `store` and `audit_log` are the command
/// line's `--config`, `--store` and `--audit-log`.
pub fn open_app(
    config: Option<&Path>,
    store: Option<&str>,
    audit_log: Option<&Path>,
) -> Result<super::App> {
    let (policy, file) = load_policy(config)?;
    let at = LogAt::resolve(store, audit_log, Some(&policy.policy))?;
    let sealer = sealer(&policy, file.as_deref())?;
    let log = at.open(sealer.clone(), redactor(&policy))?;
    log.follow(&state_dir()?, std::time::Duration::from_secs(2))
        .map_err(|e| Error::Failed(format!("cannot start following the store: {e}")))?;
    Ok(super::App::long_lived(policy, log, sealer))
}
