//! Folding the log into the state of every plan and run, verifying the
//! chain on the way: state is never read from a log that does not verify.

use std::path::Path;

use super::chain::Sealer;
use super::read::LineReader;
use super::verify::{Problem, Verifier};
use crate::core::event::Record;
use crate::core::state::Ledger;

/// Why a log could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the audit log does not verify: {0}")]
    Broken(Problem),
}

/// Folds the whole committed log at `path`.
pub fn load(path: &Path, sealer: &Sealer) -> Result<Ledger, LedgerError> {
    fold(LineReader::open(path)?, sealer)
}

/// Folds the first `len` bytes, for a caller that holds the log's lock.
pub fn load_until(path: &Path, len: u64, sealer: &Sealer) -> Result<Ledger, LedgerError> {
    fold(LineReader::open_until(path, len)?, sealer)
}

fn fold(mut reader: LineReader, sealer: &Sealer) -> Result<Ledger, LedgerError> {
    let mut verifier = Verifier::new(sealer, None);
    let mut ledger = Ledger::default();
    while let Some(line) = reader.next_line() {
        let line = line?;
        verifier.feed(&line).map_err(LedgerError::Broken)?;
        let record: Record = serde_json::from_slice(line.bytes).map_err(|e| {
            LedgerError::Broken(Problem {
                line: line.number,
                offset: line.offset,
                seq: None,
                kind: super::verify::ProblemKind::BadJson,
                message: format!("not a v1 record: {e}"),
            })
        })?;
        ledger.apply(&record);
    }
    Ok(ledger)
}

/// Where a run's liveness lock lives: `<log>.runs/<run_id>.lock`. The
/// engine holds an exclusive `flock` on it for the whole run.
pub fn run_lock_path(log: &Path, run_id: &str) -> std::path::PathBuf {
    let mut dir = log.as_os_str().to_owned();
    dir.push(".runs");
    std::path::PathBuf::from(dir).join(format!("{run_id}.lock"))
}

/// Whether an engine is running `run_id` now: its lock is held.
pub fn run_is_live(log: &Path, run_id: &str) -> bool {
    let Ok(f) = std::fs::File::open(run_lock_path(log, run_id)) else {
        return false;
    };
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        // Unknown: say live, so nothing treats the run as dead by mistake.
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}
