//! The state every use case decides on: folded from the verified log (or
//! read through a door's incremental cache), under the log's lock.

use super::error::{Error, Result};
use crate::audit::AuditLog;
use crate::audit::ledger::{LedgerCache, LedgerError};
use crate::core::state::Ledger;

/// The verified state of the log's first `len` bytes; a broken log
/// refuses every decision.
pub fn fold(log: &AuditLog, len: u64) -> Result<Ledger> {
    log.ledger_until(len)
        .map_err(|e| ledger_error(log.path(), e))
}

/// The verified state of the whole log.
pub fn current(log: &AuditLog) -> Result<Ledger> {
    log.ledger().map_err(|e| ledger_error(log.path(), e))
}

/// Calls `f` with the state of the log's first `len` bytes: from `cache`
/// when there is one, else folded (and verified) from the start.
pub fn with_ledger<R>(
    log: &AuditLog,
    cache: Option<&LedgerCache>,
    len: u64,
    f: impl FnOnce(&Ledger) -> Result<R>,
) -> Result<R> {
    match cache {
        Some(c) => c
            .with(log.path(), len, f)
            .map_err(|e| ledger_error(log.path(), e))?,
        None => f(&fold(log, len)?),
    }
}

/// Why the log cannot be decided on.
pub fn ledger_error(path: &std::path::Path, e: LedgerError) -> Error {
    match e {
        LedgerError::Io(source) => Error::Read {
            path: path.to_owned(),
            source,
        },
        // Not a refusal to record: nothing is written to a broken log.
        LedgerError::Broken(p) => Error::Audit(crate::audit::AuditError::Broken {
            path: path.to_owned(),
            problem: format!("{p}; nothing is decided or run on a broken log"),
        }),
        LedgerError::Truncated { mark, found } => {
            Error::Audit(crate::audit::AuditError::Truncated {
                path: path.to_owned(),
                mark,
                found,
            })
        }
    }
}

/// The ledger of the log at `path` for a command that only reads: an
/// absent log is an empty ledger.
pub fn read_only(
    path: &std::path::Path,
    sealer: &crate::audit::Sealer,
    mark: &crate::audit::mark::HighWater,
) -> Result<Ledger> {
    if !path.exists() {
        return Ok(Ledger::default());
    }
    crate::audit::ledger::load(path, sealer, Some(mark)).map_err(|e| ledger_error(path, e))
}
