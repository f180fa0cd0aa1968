//! The audit log: a hash-chained, write-ahead JSON Lines file, the
//! system of record (format: `docs/audit-format.md`).
//!
//! - [`event`]: event types and records, in a fixed field order;
//! - [`chain`]: sealing (SHA-256 or HMAC-SHA256) and checking one line;
//! - [`log`]: appending (`flock`, one `write`, `fdatasync`, group commit,
//!   torn-tail repair);
//! - [`read`]: streaming reads with offsets, and following;
//! - [`verify`]: the whole chain, and the head;
//! - [`export`]: filters, JSON Lines and CSV.
//!
//! Secrets are masked (`core::redact`) before a record is hashed.

pub mod backward;
pub mod chain;
/// The event types live in the pure core; re-exported here.
pub use crate::core::event;
pub mod export;
pub mod ledger;
pub mod log;
pub mod mark;
pub mod read;
pub mod stats;
pub mod verify;

use std::path::{Path, PathBuf};

pub use chain::{AuditKey, Sealer};
pub use event::{Channel, CheckPhase, Decision, Event, Record, Status};
pub use log::{Appended, AuditError, AuditLog};

/// The environment variable holding the audit HMAC key.
pub const KEY_ENV: &str = "OPSGATE_AUDIT_KEY";

/// Where the key came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Env,
    File(PathBuf),
}

/// The sealer for the configured key: `OPSGATE_AUDIT_KEY` (its bytes), else
/// the policy's `audit.key_file` (its contents, one trailing newline
/// removed), else plain SHA-256.
pub fn sealer_from(env_key: Option<String>, key_file: Option<&Path>) -> Result<Sealer, String> {
    let (bytes, source) = match (env_key, key_file) {
        (Some(k), _) => (k.into_bytes(), KeySource::Env),
        (None, Some(path)) => {
            let mut bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read audit.key_file `{}`: {e}", path.display()))?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            (bytes, KeySource::File(path.to_owned()))
        }
        (None, None) => return Ok(Sealer::Sha256),
    };
    AuditKey::new(bytes)
        .map(Sealer::Hmac)
        .map_err(|e| match source {
            KeySource::Env => format!("{KEY_ENV}: {e}"),
            KeySource::File(p) => format!("audit.key_file `{}`: {e}", p.display()),
        })
}
