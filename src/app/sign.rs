//! Signing what a person decides, with their SSH key, as git signs
//! commits: `ssh-keygen -Y sign -n opsgate -f KEY`, so keys in the
//! ssh-agent, keys with a passphrase and hardware (FIDO `sk-`) keys work
//! the same way. The signature is checked in-process against the policy's
//! allowed signers before anything is recorded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::Utc;

use super::error::{Error, Reason, Result, refuse};
use crate::core::identity::{NAMESPACE, Proof, Statement, same_person};
use crate::core::policy::Policy;

/// The environment variable naming the signing key when `--key` is absent.
pub const KEY_ENV: &str = "OPSGATE_SIGNING_KEY";

/// The signing key: `--key`, else `OPSGATE_SIGNING_KEY`, else the user
/// config's `signing_key` (`~/.config/opsgate/user.yaml`), else none.
pub fn key_path(flag: Option<&Path>) -> Result<Option<PathBuf>> {
    if let Some(p) = flag {
        return Ok(Some(p.to_path_buf()));
    }
    if let Some(v) = std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()) {
        return Ok(Some(PathBuf::from(v)));
    }
    let Some((config, file)) = super::config::user_config()? else {
        return Ok(None);
    };
    Ok(config.signing_key.map(|key| {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        match (key.strip_prefix("~"), home) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => super::config::beside(Some(&file), &key),
        }
    }))
}

/// The public half of a key file: the file itself when it is a `.pub`
/// (a public key for the agent, or a certificate), else `KEY.pub` beside
/// it.
fn public_text(key: &Path) -> Result<(PathBuf, String)> {
    let public = if key.extension().is_some_and(|e| e == "pub") {
        key.to_path_buf()
    } else {
        let mut p = key.as_os_str().to_owned();
        p.push(".pub");
        PathBuf::from(p)
    };
    let text = std::fs::read_to_string(&public).map_err(|e| {
        Error::Invalid(format!(
            "signing key {}: cannot read its public half {}: {e}",
            key.display(),
            public.display()
        ))
    })?;
    Ok((public, text))
}

/// Who the key at `key` is, by the policy's allowed signers: `wanted`
/// (`--as`) when the key is listed for that person, else the one person
/// it is listed for. A certificate names its principals itself.
pub fn principal(policy: &Policy, key: &Path, wanted: Option<&str>) -> Result<String> {
    let (public, text) = public_text(key)?;
    let bad = |e: String| Error::Invalid(format!("signing key {}: {e}", public.display()));
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (fingerprint, names) = if first
        .split_whitespace()
        .next()
        .is_some_and(|t| t.contains("-cert-v01@openssh.com"))
    {
        let cert = ssh_key::Certificate::from_openssh(first).map_err(|e| bad(e.to_string()))?;
        let key = ssh_key::PublicKey::from(cert.public_key().clone());
        (
            crate::core::signers::fingerprint(&key),
            cert.valid_principals().to_vec(),
        )
    } else {
        let key = ssh_key::PublicKey::from_openssh(first).map_err(|e| bad(e.to_string()))?;
        let names = policy
            .signers
            .allowed()
            .map(|s| s.principals_for_key(&key, NAMESPACE, Utc::now()))
            .unwrap_or_default();
        (crate::core::signers::fingerprint(&key), names)
    };
    if let Some(w) = wanted {
        return names
            .iter()
            .find(|n| same_person(n, w))
            .cloned()
            .ok_or_else(|| {
                refuse(
                    Reason::BadSignature,
                    format!(
                        "--as {w}: the key {fingerprint} is not listed for {w} in the allowed signers{}",
                        listed(&names)
                    ),
                )
            });
    }
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(refuse(
            Reason::BadSignature,
            format!(
                "the key {fingerprint} is not in the policy's allowed signers (identity.allowed_signers, approvers' keys)"
            ),
        )),
        many => Err(Error::Invalid(format!(
            "the key {fingerprint} is listed for {}: say which with --as",
            many.join(", ")
        ))),
    }
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it is listed for {})", names.join(", "))
    }
}

/// Signs `statement` with the key at `key` and checks the signature
/// against the policy's signers: the proof to record.
pub fn sign(policy: &Policy, key: &Path, statement: &Statement<'_>) -> Result<Proof> {
    let message = statement.message();
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Failed(format!("cannot run ssh-keygen to sign: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&message)
            .map_err(|e| Error::Failed(format!("cannot hand ssh-keygen the statement: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Failed(format!("ssh-keygen did not finish: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .filter(|l| !l.starts_with("Signing data on standard input"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Failed(format!(
            "ssh-keygen could not sign with {}: {}",
            key.display(),
            why.trim()
        )));
    }
    let signature = String::from_utf8(out.stdout)
        .map_err(|_| Error::Failed("ssh-keygen wrote a signature that is not text".into()))?;
    let fingerprint = policy.signers.check(statement, &signature).map_err(|why| {
        refuse(
            Reason::BadSignature,
            format!(
                "the signature by {} does not verify: {why}",
                statement.principal
            ),
        )
    })?;
    Ok(Proof::Ssh {
        fingerprint,
        signature,
        signed_at: statement.signed_at,
    })
}

/// How long after signing a signature is taken for a new decision.
pub const FRESH_SECONDS: i64 = 300;

/// Whether a signature made at `signed_at` is fresh now (a replayed old
/// signature is not a new decision).
pub fn check_fresh(signed_at: i64) -> Result<()> {
    let age = Utc::now().timestamp() - signed_at;
    if age.abs() > FRESH_SECONDS {
        return Err(refuse(
            Reason::BadSignature,
            format!(
                "the decision was signed {age} s from now; a new decision is signed within {FRESH_SECONDS} s of being made"
            ),
        ));
    }
    Ok(())
}
