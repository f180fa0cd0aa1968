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
        ledger.apply(&checked_record(&mut verifier, &line)?);
    }
    Ok(ledger)
}

/// The next line checked against the chain, as a record.
fn checked_record(
    verifier: &mut Verifier,
    line: &super::read::Line<'_>,
) -> Result<Record, LedgerError> {
    verifier.feed(line).map_err(LedgerError::Broken)?;
    serde_json::from_slice(line.bytes).map_err(|e| {
        LedgerError::Broken(Problem {
            line: line.number,
            offset: line.offset,
            seq: None,
            kind: super::verify::ProblemKind::BadJson,
            message: format!("not a v1 record: {e}"),
        })
    })
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

/// A ledger kept current by reading only what was appended since the last
/// look: for a long-running process (the chat bridge) that folds the log on
/// every request. The whole log is verified once, on the first look; after
/// that each new record is checked against the chain as it arrives. (An
/// edit to older records while the process runs is caught by
/// `opsgate audit verify` and by a restart, not here.)
#[derive(Debug)]
pub struct LedgerCache {
    sealer: Sealer,
    state: std::sync::Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    verifier: Verifier,
    ledger: Ledger,
    /// Bytes folded so far (always the end of a complete line).
    offset: u64,
    line: u64,
}

impl LedgerCache {
    pub fn new(sealer: Sealer) -> Self {
        LedgerCache {
            sealer,
            state: std::sync::Mutex::new(None),
        }
    }

    /// Brings the ledger up to (at least) the first `len` bytes of the log
    /// at `path`, then calls `f` with it. A log that shrank (a repaired torn
    /// tail) is folded again from the start; a log that does not verify is
    /// an error and is read from the start next time.
    pub fn with<R>(
        &self,
        path: &Path,
        len: u64,
        f: impl FnOnce(&Ledger) -> R,
    ) -> Result<R, LedgerError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A `len` below what was folded is usually only a length read before
        // another thread's append: the cache is newer, and stays. Only a
        // file that really shrank (a repaired torn tail) is folded again.
        let shrank = guard.as_ref().is_some_and(|c| {
            c.offset > len && std::fs::metadata(path).map_or(true, |m| m.len() < c.offset)
        });
        if guard.is_none() || shrank {
            *guard = Some(Cached {
                verifier: Verifier::new(&self.sealer, None),
                ledger: Ledger::default(),
                offset: 0,
                line: 0,
            });
        }
        let Some(cached) = guard.as_mut() else {
            return Err(LedgerError::Io(std::io::Error::other(
                "the ledger cache is empty",
            )));
        };
        if cached.offset < len {
            let mut reader = LineReader::open_range(path, cached.offset, len, cached.line + 1)?;
            while let Some(line) = reader.next_line() {
                let line = line?;
                if !line.complete {
                    break;
                }
                let folded = checked_record(&mut cached.verifier, &line);
                match folded {
                    Ok(record) => {
                        cached.ledger.apply(&record);
                        cached.offset = line.offset + line.bytes.len() as u64 + 1;
                        cached.line = line.number;
                    }
                    Err(e) => {
                        *guard = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(f(&cached.ledger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, Event};
    use crate::core::digest::{PlanHash, PolicyHash};
    use crate::core::risk::RiskLevel;

    fn submitted(id: &str) -> Event {
        Event::PlanSubmitted {
            fingerprints: Default::default(),
            plan_id: id.into(),
            plan_hash: PlanHash::new(format!("sha256:{id}")),
            policy_hash: PolicyHash::new("sha256:p".into()),
            risk: RiskLevel::Low,
            author: "a".into(),
            submitted_by: "a".into(),
            mutates_production: false,
            redacted: false,
            plan: serde_json::json!({}),
        }
    }

    fn ids(cache: &LedgerCache, path: &Path) -> Result<Vec<String>, LedgerError> {
        let len = std::fs::metadata(path)?.len();
        cache.with(path, len, |l| {
            l.plans().map(|p| p.plan_id.clone()).collect()
        })
    }

    #[test]
    fn the_cache_follows_appends_repairs_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Sealer::Sha256, Default::default()).unwrap();
        let cache = LedgerCache::new(Sealer::Sha256);
        log.append(submitted("one")).unwrap();
        assert_eq!(ids(&cache, &path).unwrap(), ["one"]);
        log.append(submitted("two")).unwrap();
        assert_eq!(ids(&cache, &path).unwrap(), ["one", "two"]);

        // A torn tail is not folded; the repair that shrinks the file is.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":1")
            .unwrap();
        assert_eq!(ids(&cache, &path).unwrap(), ["one", "two"]);
        log.repair().unwrap();
        log.append(submitted("three")).unwrap();
        assert_eq!(ids(&cache, &path).unwrap(), ["one", "three", "two"]);

        // A forged record appended by hand breaks the chain: an error, and
        // the next look starts over (and fails the same way).
        let mut text = std::fs::read_to_string(&path).unwrap();
        let last = text.lines().last().unwrap().to_owned();
        text.push_str(&last.replace("three", "four"));
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        assert!(matches!(ids(&cache, &path), Err(LedgerError::Broken(_))));
        assert!(matches!(ids(&cache, &path), Err(LedgerError::Broken(_))));
    }
}
