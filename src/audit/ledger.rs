//! Folding the log into the state of every plan and run, verifying the
//! chain on the way: state is never read from a log that does not verify.

use std::path::Path;

use super::chain::Sealer;
use super::mark::HighWater;
use super::read::LineReader;
use super::verify::{Head, Problem, ProblemKind, Verifier};
use crate::core::event::Record;
use crate::core::state::Ledger;

/// Why a log could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the audit log does not verify: {0}")]
    Broken(Problem),
    /// The log is behind this host's high-water mark.
    #[error("{}", super::log::truncation(mark, found.as_ref()))]
    Truncated { mark: Head, found: Option<Head> },
}

/// Folds the whole committed log at `path`, checked against (and then
/// raising) the host's high-water `mark` when there is one.
pub fn load(path: &Path, sealer: &Sealer, mark: Option<&HighWater>) -> Result<Ledger, LedgerError> {
    fold(LineReader::open(path)?, sealer, mark)
}

/// Folds the first `len` bytes, for a caller that holds the log's lock.
pub fn load_until(
    path: &Path,
    len: u64,
    sealer: &Sealer,
    mark: Option<&HighWater>,
) -> Result<Ledger, LedgerError> {
    fold(LineReader::open_until(path, len)?, sealer, mark)
}

fn fold(
    mut reader: LineReader,
    sealer: &Sealer,
    mark: Option<&HighWater>,
) -> Result<Ledger, LedgerError> {
    let expect = match mark {
        Some(m) => m.get()?,
        None => None,
    };
    let mut verifier = Verifier::new(sealer, expect.clone());
    let mut ledger = Ledger::default();
    while let Some(line) = reader.next_line() {
        let line = line?;
        ledger.apply(&checked_record(&mut verifier, &line)?);
    }
    let head = verifier.head();
    check_reached(expect.as_ref(), head.as_ref())?;
    if let (Some(m), Some(h)) = (mark, &head) {
        m.raise(h)?;
    }
    Ok(ledger)
}

impl super::AuditLog {
    /// The verified state of the whole log, checked against this log's
    /// high-water mark.
    pub fn ledger(&self) -> Result<Ledger, LedgerError> {
        load(self.path(), self.sealer(), self.mark())
    }

    /// The verified state of the first `len` bytes (under the log's lock).
    pub fn ledger_until(&self, len: u64) -> Result<Ledger, LedgerError> {
        load_until(self.path(), len, self.sealer(), self.mark())
    }
}

/// A log that ends before the mark was cut: refused, naming both heads.
fn check_reached(mark: Option<&Head>, head: Option<&Head>) -> Result<(), LedgerError> {
    match mark {
        Some(m) if head.is_none_or(|h| h.seq < m.seq) => Err(LedgerError::Truncated {
            mark: m.clone(),
            found: head.cloned(),
        }),
        _ => Ok(()),
    }
}

/// The next line checked against the chain, as a record.
fn checked_record(
    verifier: &mut Verifier,
    line: &super::read::Line<'_>,
) -> Result<Record, LedgerError> {
    verifier.feed(line).map_err(|p| match p.kind {
        // Another record where this host saw the mark: rewritten.
        ProblemKind::HeadMismatch => match verifier.expected() {
            Some(mark) => LedgerError::Truncated {
                mark: mark.clone(),
                found: None,
            },
            None => LedgerError::Broken(p),
        },
        _ => LedgerError::Broken(p),
    })?;
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

/// A run's liveness lock: an open-file-description (OFD) record lock on
/// one byte of the log file itself, far past its end, chosen by the run id.
/// The engine holds it for the whole run; `status`, `cancel`, `resume` and
/// `rollback` test it. It is keyed on the log's identity (the inode), not
/// on a path: a symlink to the log, or a deleted directory, cannot make a
/// live run look interrupted. Two run ids that share a byte (a 2⁻⁴⁰ chance)
/// only make a dead run look live, the safe direction.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    run_id: String,
    /// Team mode: the plan's lease in the store, renewed while held.
    _lease: Option<super::log::Held>,
}

/// Where the lock byte of `run_id` is: above 2⁶², out of reach of any log.
fn run_lock_byte(run_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(run_id.as_bytes());
    let n = d[..5]
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
    (1i64 << 62) + n
}

fn lock_request(run_id: &str, kind: libc::c_int) -> libc::flock {
    libc::flock {
        // The constants are small; the casts are the C struct's field types.
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: run_lock_byte(run_id),
        l_len: 1,
        l_pid: 0,
    }
}

impl RunLock {
    /// Takes the lock of `run_id` (of plan `plan_id`) on the log at `log`;
    /// fails if another process (or open file) holds it. When `log` is a
    /// store's replica, the plan's lease in the store is taken too, which
    /// fails while an engine on any host holds the plan.
    pub fn take(log: &Path, plan_id: &str, run_id: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(log)?;
        let request = lock_request(run_id, libc::F_WRLCK);
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&request)).map_err(|e| {
            if e == nix::errno::Errno::EAGAIN || e == nix::errno::Errno::EACCES {
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("run `{run_id}` is held by a live engine"),
                )
            } else {
                std::io::Error::from(e)
            }
        })?;
        let lease = super::log::hold_lease(log, plan_id, run_id)?;
        Ok(RunLock {
            _file: file,
            run_id: run_id.to_owned(),
            _lease: lease,
        })
    }

    /// The run this lock holds.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// Whether an engine is running `run_id` now: its lock is held.
pub fn run_is_live(log: &Path, run_id: &str) -> bool {
    // Team mode: the engine may run on another host; its lease says.
    if let Some(live) = super::log::lease_live(log, run_id) {
        return live;
    }
    let Ok(f) = std::fs::File::open(log) else {
        return false;
    };
    let mut probe = lock_request(run_id, libc::F_RDLCK);
    match nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => i32::from(probe.l_type) != libc::F_UNLCK,
        // Unknown: say live, so nothing treats the run as dead by mistake.
        Err(_) => true,
    }
}

/// A ledger kept current by reading only what was appended since the last
/// look: for a long-running process (the chat bridge) that folds the log on
/// every request. The whole log is verified once, on the first look; after
/// that each new record is checked against the chain as it arrives. (An
/// edit to older records while the process runs is caught by
/// `opsgate audit verify` and by a restart, not here.)
///
/// The cache keeps the last record it saw in memory, and raises the host's
/// high-water mark on disk: a log that shrinks below what the process saw
/// (records cut from its tail) is refused until an operator acknowledges
/// it, even if the mark file was removed.
#[derive(Debug)]
pub struct LedgerCache {
    sealer: Sealer,
    mark: Option<HighWater>,
    /// The furthest record this process has seen of the log.
    seen: std::sync::Mutex<Option<Head>>,
    state: std::sync::Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    verifier: Verifier,
    ledger: Ledger,
    /// Bytes folded so far (always the end of a complete line).
    offset: u64,
    line: u64,
    /// The head the fold must reach before its state may be used.
    expect: Option<Head>,
}

impl LedgerCache {
    pub fn new(sealer: Sealer, mark: Option<HighWater>) -> Self {
        LedgerCache {
            sealer,
            mark,
            seen: std::sync::Mutex::new(None),
            state: std::sync::Mutex::new(None),
        }
    }

    /// The furthest of what this process saw and the mark on disk.
    fn expected(&self) -> Result<Option<Head>, LedgerError> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let disk = match &self.mark {
            Some(m) => m.get()?,
            None => None,
        };
        Ok(match (seen, disk) {
            (Some(a), Some(b)) => Some(if a.seq >= b.seq { a } else { b }),
            (a, b) => a.or(b),
        })
    }

    /// Brings the ledger up to (at least) the first `len` bytes of the log
    /// at `path`, then calls `f` with it. A log that shrank is folded again
    /// from the start, and must still reach what this process saw; a log
    /// that does not verify is an error and is read from the start next
    /// time.
    pub fn with<R>(
        &self,
        path: &Path,
        len: u64,
        f: impl FnOnce(&Ledger) -> R,
    ) -> Result<R, LedgerError> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A `len` below what was folded is usually only a length read before
        // another thread's append: the cache is newer, and stays. Only a
        // file that really shrank is folded again.
        let shrank = guard.as_ref().is_some_and(|c| {
            c.offset > len && std::fs::metadata(path).map_or(true, |m| m.len() < c.offset)
        });
        if guard.is_none() || shrank {
            let expect = self.expected()?;
            *guard = Some(Cached {
                verifier: Verifier::new(&self.sealer, expect.clone()),
                ledger: Ledger::default(),
                offset: 0,
                line: 0,
                expect,
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
        let head = cached.verifier.head();
        if let Err(e) = check_reached(cached.expect.as_ref(), head.as_ref()) {
            *guard = None;
            return Err(e);
        }
        cached.expect = None;
        if let Some(h) = &head {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.as_ref().is_none_or(|s| s.seq < h.seq) {
                *seen = Some(h.clone());
                if let Some(m) = &self.mark {
                    m.raise(h)?;
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
            identity: None,
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

    /// Hardening 4: a bridge that saw seq 3 refuses the log cut to seq 2,
    /// from memory, even when the mark file on disk is gone too; a fresh
    /// process reads the mark on disk.
    #[test]
    fn the_cache_refuses_a_log_cut_below_what_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mark = HighWater::for_log(&dir.path().join("state"), &path);
        let log = AuditLog::open(&path, Sealer::Sha256, Default::default())
            .unwrap()
            .with_mark(mark.clone());
        for id in ["one", "two", "three"] {
            log.append(submitted(id)).unwrap();
        }
        let cache = LedgerCache::new(Sealer::Sha256, Some(mark.clone()));
        assert_eq!(ids(&cache, &path).unwrap().len(), 3);
        let text = std::fs::read_to_string(&path).unwrap();
        let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        std::fs::remove_file(mark.path()).unwrap();
        assert!(matches!(
            ids(&cache, &path),
            Err(LedgerError::Truncated { mark, found: Some(found) }) if mark.seq == 3 && found.seq == 2
        ));
        // The next append refuses too, and writes nothing.
        mark.raise(&Head {
            seq: 3,
            hash: "sha256:x".into(),
        })
        .unwrap();
        assert!(matches!(
            log.append(submitted("four")),
            Err(crate::audit::AuditError::Truncated { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        let fresh = LedgerCache::new(Sealer::Sha256, Some(mark));
        assert!(matches!(
            ids(&fresh, &path),
            Err(LedgerError::Truncated { .. })
        ));
    }

    #[test]
    fn the_cache_follows_appends_repairs_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Sealer::Sha256, Default::default()).unwrap();
        let cache = LedgerCache::new(Sealer::Sha256, None);
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
