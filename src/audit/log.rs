//! Appending to the log: `O_APPEND`, an exclusive `flock` per append, one
//! `write` per batch of lines, and `fdatasync` before an append returns.
//!
//! Group commit: appends from several threads of one process share one
//! `write` and one fsync. A writer queues its events; if no batch is in
//! flight it becomes the leader, takes everything queued, writes it with
//! one `write`, syncs once, and hands every waiter its result. Writers that
//! queued meanwhile wait for the next batch. Nobody returns before the
//! fsync that covers their events.
//!
//! Long on purpose: the write path (the log's lock, torn tails, group
//! commit, the high-water mark, fsync) is one set of invariants, easier to
//! review in one file than across several.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use chrono::Utc;

use super::backward::read_tail;
use super::chain::{GENESIS, LineFault, Sealer, check_line};
use super::event::{Event, Unsealed, VERSION};
use super::mark::HighWater;
use super::read::LineReader;
use super::verify::{Head, Verifier};
use crate::core::redact::Redactor;

mod replica;
pub use replica::{Held, hold_lease, lease_live};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log `{}`: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "audit log `{}` is damaged at its last record (byte {offset}): {message}; nothing was written. Run `opsgate audit verify`",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    #[error(
        "audit log `{}`: an earlier fsync failed, so nothing more is written by this process",
        path.display()
    )]
    Poisoned { path: PathBuf },
    #[error(
        "audit log `{}` does not verify, so nothing was written: {problem}. Run `opsgate audit verify`",
        path.display()
    )]
    Broken { path: PathBuf, problem: String },
    #[error("cannot serialize an audit event: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(
        "audit log `{}` ends with {bytes} byte(s) of an unfinished record (at byte {offset}), left by an interrupted write or a cut; nothing was written. `opsgate audit repair` restores a complete record's newline or moves the bytes aside",
        path.display()
    )]
    TornTail {
        path: PathBuf,
        offset: u64,
        bytes: u64,
    },
    #[error("audit log `{}`: {}", path.display(), truncation(mark, found.as_ref()))]
    Truncated {
        path: PathBuf,
        /// The last record this host saw.
        mark: Head,
        /// The log's last record now (`None`: the log is empty).
        found: Option<Head>,
    },
    /// Team mode: the store could not be reached or refused the write
    /// (nothing was recorded).
    #[error("audit store {store}: {message}; nothing was recorded")]
    Store { store: String, message: String },
    /// Team mode: the store went back or forked since this host saw it.
    #[error("{0}")]
    Diverged(String),
    #[error("audit log `{}`: its high-water mark `{}`: {source}", path.display(), mark.display())]
    Mark {
        path: PathBuf,
        mark: PathBuf,
        source: io::Error,
    },
}

/// A truncation in words: both heads, and what the operator does next.
pub fn truncation(mark: &Head, found: Option<&Head>) -> String {
    let now = match found {
        Some(h) if h.seq == mark.seq => {
            format!("holds another record at seq {} ({})", h.seq, h.hash)
        }
        Some(h) => format!("ends at seq {} ({})", h.seq, h.hash),
        None => "is empty".to_owned(),
    };
    format!(
        "the log {now}, but this host saw it reach seq {} ({}): records were removed or rewritten. Nothing is decided, run or recorded until an operator checks it (`opsgate audit verify --expect-head {}:{}`) and accepts the log as it is (`opsgate audit verify --acknowledge-truncation --reason TEXT`)",
        mark.seq, mark.hash, mark.seq, mark.hash
    )
}

/// Where an appended record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
    pub offset: u64,
}

/// A record sealed and chained, ready to be written.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub seq: u64,
    pub hash: String,
    /// The record's line, newline included.
    pub line: Vec<u8>,
}

/// Seals `events` as the records after `(seq, hash)` of the chain, all at
/// `ts`: the one way records are made, for the file log and the store.
pub fn seal_after(
    sealer: &Sealer,
    (mut seq, prev): (u64, &str),
    ts: chrono::DateTime<Utc>,
    events: &[Event],
) -> Result<Vec<Sealed>, AuditError> {
    let mut prev = prev.to_owned();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let canonical = serde_json::to_vec(&Unsealed {
            v: VERSION,
            seq,
            ts,
            event,
            alg: sealer.alg(),
            key_id: sealer.key_id(),
            prev: &prev,
        })
        .map_err(AuditError::from)?;
        let (line, hash) = sealer.seal(canonical);
        prev.clone_from(&hash);
        out.push(Sealed { seq, hash, line });
    }
    Ok(out)
}

/// The chain position after the last complete record.
#[derive(Debug, Clone)]
struct Tail {
    /// File length after the record's newline.
    end: u64,
    seq: u64,
    hash: String,
}

/// What an append under the lock is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    /// Refuses a torn tail and a log behind its high-water mark.
    Normal,
    /// `opsgate audit repair`: completes or moves aside a torn tail.
    Repair,
    /// Records an operator's acceptance of a log behind its mark.
    Acknowledge,
}

/// An audit log open for appending. Share it between threads by reference.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    sealer: Sealer,
    redactor: Redactor,
    /// The host's high-water mark of this log, when it keeps one.
    mark: Option<HighWater>,
    /// The cached tail; valid while the file length matches.
    tail: Mutex<Option<Tail>>,
    /// Events waiting for the group commit, and its results.
    queue: Mutex<Queue>,
    /// Writes made, and how many of them an fsync has covered.
    written: std::sync::atomic::AtomicU64,
    synced: Mutex<u64>,
    batch_done: Condvar,
    poisoned: AtomicBool,
    /// Team mode: the store this file replicates, which appends go to
    /// first (`replica`).
    remote: Option<replica::Remote>,
}

/// Holds the exclusive `flock`; unlocks on drop.
struct FileLock<'f>(&'f File);

impl<'f> FileLock<'f> {
    fn exclusive(f: &'f File) -> io::Result<Self> {
        f.lock()?;
        Ok(FileLock(f))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; nothing to do on failure.
        let _ = self.0.unlock();
    }
}

impl AuditLog {
    /// Opens (creating, with its directory) the log at `path` for appending.
    pub fn open(path: &Path, sealer: Sealer, redactor: Redactor) -> Result<Self, AuditError> {
        let io_err = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        Ok(AuditLog {
            path: path.to_owned(),
            file,
            sealer,
            redactor,
            mark: None,
            tail: Mutex::new(None),
            queue: Mutex::new(Queue::default()),
            written: std::sync::atomic::AtomicU64::new(0),
            synced: Mutex::new(0),
            batch_done: Condvar::new(),
            poisoned: AtomicBool::new(false),
            remote: None,
        })
    }

    /// Keeps `mark` as this log's high-water mark: every append checks the
    /// log against it and raises it.
    pub fn with_mark(mut self, mark: HighWater) -> Self {
        self.mark = Some(mark);
        self
    }

    pub fn mark(&self) -> Option<&HighWater> {
        self.mark.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mark_err(&self, source: io::Error) -> AuditError {
        AuditError::Mark {
            path: self.path.clone(),
            mark: self
                .mark
                .as_ref()
                .map(|m| m.path().to_owned())
                .unwrap_or_default(),
            source,
        }
    }

    /// Raises the mark to the last of `appended` (once it is durable).
    fn raise_mark(&self, appended: &[Appended]) -> Result<(), AuditError> {
        if let (Some(mark), Some(last)) = (&self.mark, appended.last()) {
            mark.raise(&Head {
                seq: last.seq,
                hash: last.hash.clone(),
            })
            .map_err(|e| self.mark_err(e))?;
        }
        Ok(())
    }

    /// Refuses to go on when the log is behind this host's mark (records
    /// cut from its tail) or holds another record at the mark's seq.
    fn check_mark(&self, tail: &Tail) -> Result<(), AuditError> {
        let Some(mark) = &self.mark else {
            return Ok(());
        };
        let Some(m) = mark.get().map_err(|e| self.mark_err(e))? else {
            return Ok(());
        };
        if tail.seq < m.seq || (tail.seq == m.seq && tail.hash != m.hash) {
            return Err(AuditError::Truncated {
                path: self.path.clone(),
                found: (tail.seq > 0).then(|| Head {
                    seq: tail.seq,
                    hash: tail.hash.clone(),
                }),
                mark: m,
            });
        }
        Ok(())
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    fn io(&self, source: io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one event; returns once it is durable.
    pub fn append(&self, event: Event) -> Result<Appended, AuditError> {
        let mut done = self.append_all(vec![event])?;
        done.pop().ok_or_else(|| AuditError::Damaged {
            path: self.path.clone(),
            offset: 0,
            message: "the append wrote nothing".into(),
        })
    }

    /// Appends events, in order and contiguous, through the group commit;
    /// returns once they are durable.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Vec<Appended>, AuditError> {
        let started = std::time::Instant::now();
        let result = self.append_queued(events);
        if result.is_ok() {
            super::stats::APPENDS.durable(started.elapsed());
        }
        result
    }

    fn append_queued(&self, mut events: Vec<Event>) -> Result<Vec<Appended>, AuditError> {
        // Redact here, in the caller's thread, not in the leader's.
        events.iter_mut().for_each(|e| e.redact(&self.redactor));
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.pending.push((ticket, events));
        loop {
            if let Some(result) = q.done.remove(&ticket) {
                return result;
            }
            if self.poisoned.load(Ordering::SeqCst) {
                super::stats::APPENDS.failed();
                return Err(AuditError::Poisoned {
                    path: self.path.clone(),
                });
            }
            if !q.leader_active {
                break;
            }
            q = self.batch_done.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        // Lead: commit everything queued so far, ours included. Whatever
        // queued meanwhile is committed next without a hand-over, for a few
        // rounds, so a busy log keeps its disk busy.
        q.leader_active = true;
        let guard = LeaderGuard(self);
        for _ in 0..LEAD_ROUNDS {
            // Writers released by the last batch are about to queue again:
            // give them the CPU while the queue still grows, so they share
            // this fsync instead of waiting for the next one. One writer
            // alone pays one yield.
            let mut seen = q.pending.len();
            for _ in 0..MAX_YIELDS {
                drop(q);
                std::thread::yield_now();
                q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.pending.len() == seen {
                    break;
                }
                seen = q.pending.len();
            }
            let batch = std::mem::take(&mut q.pending);
            drop(q);
            let results = self.commit_batch(batch);
            q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.done.extend(results);
            self.batch_done.notify_all();
            if q.pending.is_empty() {
                break;
            }
        }
        q.leader_active = false;
        std::mem::forget(guard);
        self.batch_done.notify_all();
        q.done.remove(&ticket).unwrap_or_else(|| {
            Err(AuditError::Damaged {
                path: self.path.clone(),
                offset: 0,
                message: "the group commit lost a result".into(),
            })
        })
    }

    /// Writes a batch of queued appends with one write and one fsync.
    fn commit_batch(
        &self,
        batch: Vec<(u64, Vec<Event>)>,
    ) -> Vec<(u64, Result<Vec<Appended>, AuditError>)> {
        let counts: Vec<(u64, usize)> = batch.iter().map(|(t, e)| (*t, e.len())).collect();
        let events: Vec<Event> = batch.into_iter().flat_map(|(_, e)| e).collect();
        let written = self
            .write_locked(|_| Ok::<_, AuditError>(events), false, WriteMode::Normal)
            .and_then(|a| self.sync().map(|()| a))
            .and_then(|a| self.raise_mark(&a).map(|()| a));
        match written {
            Ok(mut appended) => {
                // A `log_repaired` record may come first; callers own the rest.
                let total: usize = counts.iter().map(|(_, n)| n).sum();
                let mut mine = appended.split_off(appended.len().saturating_sub(total));
                counts
                    .into_iter()
                    .map(|(t, n)| {
                        let rest = mine.split_off(n.min(mine.len()));
                        (t, Ok(std::mem::replace(&mut mine, rest)))
                    })
                    .collect()
            }
            Err(e) => counts
                .into_iter()
                .map(|(t, _)| (t, Err(e.duplicate())))
                .collect(),
        }
    }

    /// Under the log's lock, asks `decide` which events to append (given
    /// the length of the log's committed bytes, which it may read), appends
    /// them in one write and returns once they are durable. Other
    /// processes cannot append in between.
    pub fn append_with<E: From<AuditError>>(
        &self,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
    ) -> Result<Vec<Appended>, E> {
        self.append_locked(decide, WriteMode::Normal)
    }

    /// `append_with` for an operator who accepted a log behind its mark:
    /// the mark is not checked, and is set to what is appended.
    pub fn append_acknowledged<E: From<AuditError>>(
        &self,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
    ) -> Result<Vec<Appended>, E> {
        self.append_locked(decide, WriteMode::Acknowledge)
    }

    fn append_locked<E: From<AuditError>>(
        &self,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
        mode: WriteMode,
    ) -> Result<Vec<Appended>, E> {
        let started = std::time::Instant::now();
        let appended = self.write_locked(decide, true, mode)?;
        if !appended.is_empty() {
            self.sync()?;
            if let (WriteMode::Acknowledge, Some(mark), Some(last)) =
                (mode, &self.mark, appended.last())
            {
                mark.reset(Some(&Head {
                    seq: last.seq,
                    hash: last.hash.clone(),
                }))
                .map_err(|e| self.mark_err(e))?;
            } else {
                self.raise_mark(&appended)?;
            }
            super::stats::APPENDS.durable(started.elapsed());
        }
        Ok(appended)
    }

    /// True once an append's fate was unknown (a failed fsync, a leader
    /// that panicked): this handle appends nothing more.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Marks the handle poisoned, as a failed fsync does (for tests of
    /// what readers of [`Self::is_poisoned`] do).
    #[cfg(test)]
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// Writes under the lock, without syncing. A torn tail is refused
    /// (only `opsgate audit repair` mends one), and so is a log behind its
    /// high-water mark, unless an operator acknowledged it.
    fn write_locked<E: From<AuditError>>(
        &self,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
        redact: bool,
        mode: WriteMode,
    ) -> Result<Vec<Appended>, E> {
        if let Some(remote) = &self.remote {
            return self.write_remote(remote, decide, redact);
        }
        let mut cached = self.lock_tail()?;
        let _flock = FileLock::exclusive(&self.file).map_err(|e| self.io(e))?;
        let (mut tail, torn) = self.current_tail(&mut cached)?;
        if let (Some(len), WriteMode::Normal | WriteMode::Acknowledge) = (torn, mode) {
            *cached = None;
            return Err(AuditError::TornTail {
                path: self.path.clone(),
                offset: tail.end,
                bytes: len - tail.end,
            }
            .into());
        }
        if mode == WriteMode::Normal {
            self.check_mark(&tail)?;
        }
        // Decide first, so a refusal leaves the file untouched.
        let mut decided = decide(tail.end)?;
        if redact {
            decided.iter_mut().for_each(|e| e.redact(&self.redactor));
        }
        let mut events = Vec::with_capacity(decided.len() + 1);
        if let Some(len) = torn {
            events.push(self.mend_torn_tail(&mut tail, len)?);
        }
        events.extend(decided);
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = Vec::new();
        let mut appended = Vec::with_capacity(events.len());
        for s in seal_after(&self.sealer, (tail.seq, &tail.hash), Utc::now(), &events)? {
            let offset = tail.end + buf.len() as u64;
            buf.extend_from_slice(&s.line);
            tail.seq = s.seq;
            tail.hash.clone_from(&s.hash);
            appended.push(Appended {
                seq: s.seq,
                hash: s.hash,
                offset,
            });
        }
        if let Err(e) = (&self.file).write_all(&buf) {
            // A partial write is a torn tail; the next append repairs it.
            super::stats::APPENDS.failed();
            *cached = None;
            return Err(self.io(e).into());
        }
        tail.end += buf.len() as u64;
        *cached = Some(tail);
        // Counted under the lock, after the write: a sync that reads this
        // count afterwards covers the write.
        self.written.fetch_add(1, Ordering::SeqCst);
        Ok(appended)
    }

    /// Mends a torn tail and records `log_repaired`; `None` when the log
    /// had no torn tail. A tail that is a complete record, sealed and
    /// chained, missing only its newline, gets its newline back: a record
    /// is never removed. Anything else is moved aside.
    ///
    /// The whole chain before the torn tail must verify first: damage
    /// before the tail is never repaired, and then nothing changes.
    pub fn repair(&self) -> Result<Option<Appended>, AuditError> {
        let mut done = self.append_locked(
            |len| {
                let mut reader = LineReader::open_until(&self.path, len).map_err(|e| self.io(e))?;
                let mut verifier = Verifier::new(&self.sealer, None);
                while let Some(line) = reader.next_line() {
                    let line = line.map_err(|e| self.io(e))?;
                    if let Err(problem) = verifier.feed(&line) {
                        return Err(AuditError::Broken {
                            path: self.path.clone(),
                            problem: problem.to_string(),
                        });
                    }
                }
                Ok(Vec::new())
            },
            WriteMode::Repair,
        )?;
        Ok(done.pop())
    }

    fn lock_tail(&self) -> Result<MutexGuard<'_, Option<Tail>>, AuditError> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        // A panic while holding the lock leaves the cache unknown: drop it.
        Ok(self.tail.lock().unwrap_or_else(|p| {
            let mut g = p.into_inner();
            *g = None;
            g
        }))
    }

    /// The tail to chain onto, read from the file when another process
    /// appended since, and the file's length when a torn tail follows it.
    /// Called under the `flock`.
    fn current_tail(&self, cached: &mut Option<Tail>) -> Result<(Tail, Option<u64>), AuditError> {
        let len = self.file.metadata().map_err(|e| self.io(e))?.len();
        if let Some(t) = cached.as_ref().filter(|t| t.end == len) {
            return Ok((t.clone(), None));
        }
        let view = read_tail(&self.file, len, 1).map_err(|e| self.io(e))?;
        let mut tail = Tail {
            end: len,
            seq: 0,
            hash: GENESIS.to_owned(),
        };
        if let Some((offset, line)) = view.lines.last() {
            let header = check_line(line, &self.sealer).map_err(|fault| match fault {
                LineFault::Key(problem) => AuditError::Broken {
                    path: self.path.clone(),
                    problem,
                },
                fault => AuditError::Damaged {
                    path: self.path.clone(),
                    offset: *offset,
                    message: describe(&fault),
                },
            })?;
            tail.seq = header.seq;
            tail.hash = header.hash.into_owned();
        }
        let mut torn = None;
        if let Some(torn_at) = view.torn_at {
            torn = Some(len);
            tail.end = torn_at;
        }
        *cached = None;
        Ok((tail, torn))
    }

    /// Mends the torn bytes after `tail` (up to `len`): restores the
    /// newline of a complete record (and moves `tail` past it), or moves
    /// the bytes aside. Returns the `log_repaired` event.
    fn mend_torn_tail(&self, tail: &mut Tail, len: u64) -> Result<Event, AuditError> {
        let torn_at = tail.end;
        let mut torn = vec![0; (len - torn_at) as usize];
        self.file
            .read_exact_at(&mut torn, torn_at)
            .map_err(|e| self.io(e))?;
        if let Ok(header) = check_line(&torn, &self.sealer)
            && header.seq == tail.seq + 1
            && header.prev == tail.hash
        {
            (&self.file).write_all(b"\n").map_err(|e| self.io(e))?;
            self.file.sync_data().map_err(|e| self.io(e))?;
            tail.seq = header.seq;
            tail.hash = header.hash.into_owned();
            tail.end = len + 1;
            tracing::warn!(log = %self.path.display(), seq = tail.seq, "restored the newline of the last record");
            return Ok(Event::LogRepaired {
                offset: torn_at,
                torn_bytes: torn.len() as u64,
                moved_to: String::new(),
                newline_restored: true,
            });
        }
        self.move_torn_tail(torn_at, torn)
    }

    fn move_torn_tail(&self, torn_at: u64, torn: Vec<u8>) -> Result<Event, AuditError> {
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let aside = PathBuf::from(format!("{}.torn-{stamp}", self.path.display()));
        let write_aside = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&aside)?;
            f.write_all(&torn)?;
            f.sync_all()?;
            // Make the new file's name durable before the log shrinks.
            match aside.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => File::open(dir)?.sync_all(),
                None => File::open(".")?.sync_all(),
            }
        };
        write_aside().map_err(|source| AuditError::Io {
            path: aside.clone(),
            source,
        })?;
        self.file.set_len(torn_at).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        tracing::warn!(
            log = %self.path.display(),
            bytes = torn.len(),
            moved_to = %aside.display(),
            "moved a torn tail aside"
        );
        Ok(Event::LogRepaired {
            offset: torn_at,
            torn_bytes: torn.len() as u64,
            moved_to: aside
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            newline_restored: false,
        })
    }

    /// Makes every write so far durable: one `fdatasync` covers all the
    /// writes made before it started, so concurrent callers (the queue's
    /// leaders and `append_with`) share fsyncs. After a failure the log is
    /// poisoned.
    fn sync(&self) -> Result<(), AuditError> {
        // A replica's durability is the store's commit.
        if self.remote.is_some() {
            return Ok(());
        }
        let mine = self.written.load(Ordering::SeqCst);
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= mine {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            super::stats::APPENDS.failed();
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let target = self.written.load(Ordering::SeqCst);
        self.file.sync_data().map_err(|e| {
            super::stats::APPENDS.failed();
            // After a failed fsync the kernel may have dropped the dirty
            // pages; a later fsync could falsely succeed. Stop writing.
            self.poisoned.store(true, Ordering::SeqCst);
            self.io(e)
        })?;
        *synced = target;
        Ok(())
    }
}

/// Armed while a thread leads the group commit. If the leader panics, its
/// batch's fate is unknown: the log is poisoned and the waiters released
/// with an error rather than left waiting forever.
struct LeaderGuard<'a>(&'a AuditLog);

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        self.0.poisoned.store(true, Ordering::SeqCst);
        // The panic may have come while this thread held the queue; then no
        // waiter is between its check and its wait, and the notify suffices.
        match self.0.queue.try_lock() {
            Ok(mut q) => q.leader_active = false,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().leader_active = false,
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        self.0.batch_done.notify_all();
    }
}

/// How many batches in a row one leader commits before handing over.
const LEAD_ROUNDS: usize = 4;

/// How many times a leader yields, at most, while the queue grows.
pub(crate) const MAX_YIELDS: usize = 16;

/// The group commit's shared state.
#[derive(Debug, Default)]
struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Vec<Event>)>,
    leader_active: bool,
    done: HashMap<u64, Result<Vec<Appended>, AuditError>>,
}

impl AuditError {
    /// The same error for another waiter of a failed batch.
    fn duplicate(&self) -> AuditError {
        match self {
            AuditError::Io { path, source } => AuditError::Io {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            AuditError::Damaged {
                path,
                offset,
                message,
            } => AuditError::Damaged {
                path: path.clone(),
                offset: *offset,
                message: message.clone(),
            },
            AuditError::Poisoned { path } => AuditError::Poisoned { path: path.clone() },
            AuditError::Broken { path, problem } => AuditError::Broken {
                path: path.clone(),
                problem: problem.clone(),
            },
            AuditError::Serialize(e) => AuditError::Damaged {
                path: PathBuf::new(),
                offset: 0,
                message: format!("cannot serialize an audit event: {e}"),
            },
            AuditError::TornTail {
                path,
                offset,
                bytes,
            } => AuditError::TornTail {
                path: path.clone(),
                offset: *offset,
                bytes: *bytes,
            },
            AuditError::Truncated { path, mark, found } => AuditError::Truncated {
                path: path.clone(),
                mark: mark.clone(),
                found: found.clone(),
            },
            AuditError::Mark { path, mark, source } => AuditError::Mark {
                path: path.clone(),
                mark: mark.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            AuditError::Store { store, message } => AuditError::Store {
                store: store.clone(),
                message: message.clone(),
            },
            AuditError::Diverged(m) => AuditError::Diverged(m.clone()),
        }
    }
}

/// A line fault in words.
pub fn describe(fault: &LineFault) -> String {
    match fault {
        LineFault::BadJson(_) => format!("bad JSON: {}", detail(fault)),
        LineFault::HashMismatch => format!("hash mismatch: {}", detail(fault)),
        LineFault::Version(_) | LineFault::Key(_) => detail(fault),
    }
}

/// A line fault's detail, for a report that names the kind itself.
pub fn detail(fault: &LineFault) -> String {
    match fault {
        LineFault::BadJson(e) => e.clone(),
        LineFault::Version(v) => format!("unsupported record version {v}"),
        LineFault::HashMismatch => "the record was changed after it was written".into(),
        LineFault::Key(m) => m.clone(),
    }
}
