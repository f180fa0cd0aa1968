//! Team mode: the log in PostgreSQL (`crate::store::pg`), with this file
//! as the host's replica of it.
//!
//! Everything above the log reads a file: the ledger folds, the caches,
//! the engine's stop checks, the TUI and the bridge. In team mode that file
//! is a byte-identical replica of the store's chain, and an append goes to
//! the store first: under the head's row lock (one transaction across all
//! hosts) the replica is brought up to the head, the caller decides on it,
//! the records are sealed here (the audit key never reaches the database),
//! inserted and committed, and only then written to the replica. The
//! replica is a cache, never evidence: one that disagrees with the store
//! (edited, cut, left behind by a store that an operator accepted after a
//! failover) is checked at its last record, whose hash covers everything
//! before it, and rebuilt from the store. A store that went back or forked
//! since this host saw it is refused by the host's mark of the chain.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use chrono::Utc;

use super::{Appended, AuditError, AuditLog, FileLock, Sealed, Tail, seal_after};
use crate::audit::chain::GENESIS;
use crate::audit::event::Event;
use crate::audit::{Sealer, verify::Head};
use crate::core::redact::Redactor;
use crate::store::pg::{Pg, StoreError, Stored};

/// The store a replica follows.
pub(super) struct Remote {
    pg: Mutex<Pg>,
    /// The URL as given, the password included: never printed.
    url: String,
    /// The transaction this process's writers are filling, if one is
    /// open (touched only under the log's tail lock).
    batch: Mutex<Option<Batch>>,
    /// Writers waiting for the log's tail lock: while there are some, a
    /// writer leaves the batch open for them.
    waiting: AtomicUsize,
}

/// The most records one store transaction gathers from this process's
/// writers before it commits, so the head's lock is not held for long.
const MAX_BATCH: usize = 16;

/// One store transaction shared by the writers of this process.
struct Batch {
    /// The replica before the batch: a failed batch is cut back to it.
    start: Tail,
    /// The replica with the batch's records so far.
    tail: Tail,
    /// The head the batch locked.
    head: (u64, String),
    sealed: Vec<Sealed>,
    done: std::sync::Arc<Outcome>,
}

/// How a batch ended, for its writers.
#[derive(Default)]
struct Outcome {
    result: Mutex<Option<Result<(), AuditError>>>,
    ended: Condvar,
}

impl Outcome {
    fn set(&self, result: Result<(), AuditError>) {
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        self.ended.notify_all();
    }

    fn wait(&self) -> Result<(), AuditError> {
        let mut r = self.result.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(result) = r.as_ref() {
                return result.as_ref().copied().map_err(AuditError::duplicate);
            }
            r = self.ended.wait(r).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &crate::store::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl Remote {
    fn lock(&self) -> MutexGuard<'_, Pg> {
        self.pg.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The head's transaction, rolled back unless committed.
struct Txn<'a> {
    pg: MutexGuard<'a, Pg>,
    open: bool,
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if self.open {
            self.pg.abort();
        }
    }
}

impl AuditError {
    /// A store's failure as the log's: `Diverged` stays a refusal.
    pub fn from_store(url: &str, e: StoreError) -> AuditError {
        match e {
            StoreError::Diverged(m) => AuditError::Diverged(m),
            other => AuditError::Store {
                store: crate::store::redact_url(url),
                message: other.to_string(),
            },
        }
    }
}

impl AuditLog {
    /// The log in the store `pg` reached at `url`, replicated to the file
    /// at `replica` (created if absent). Nothing is read yet:
    /// [`AuditLog::refresh`] brings the replica up to the store.
    pub fn open_store(
        replica: &Path,
        url: &str,
        pg: Pg,
        sealer: Sealer,
        redactor: Redactor,
    ) -> Result<Self, AuditError> {
        let mut log = AuditLog::open(replica, sealer, redactor)?;
        register(replica, url);
        log.remote = Some(Remote {
            pg: Mutex::new(pg),
            url: url.to_owned(),
            batch: Mutex::new(None),
            waiting: AtomicUsize::new(0),
        });
        Ok(log)
    }

    /// The store this log is a replica of (its URL without a password).
    pub fn store(&self) -> Option<String> {
        self.remote
            .as_ref()
            .map(|r| crate::store::redact_url(&r.url))
    }

    /// The store's URL as given (password included), to open another
    /// connection to it (a follower).
    pub fn store_url(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.url.as_str())
    }

    /// Brings the replica up to the store's head, for what is read next. A
    /// file log is left as it is. A store that went back or forked since
    /// this host saw it is refused, and the replica left untouched.
    pub fn refresh(&self) -> Result<(), AuditError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let mut cached = self.lock_tail()?;
        if remote
            .batch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            // This process's writers hold the head: the replica is at it,
            // and their commit brings a notification of its own.
            return Ok(());
        }
        let _flock = FileLock::exclusive(&self.file).map_err(|e| self.io(e))?;
        let mut pg = remote.lock();
        let store = |e| AuditError::from_store(&remote.url, e);
        pg.reconnect_if_closed().map_err(store)?;
        pg.check().map_err(store)?;
        let tail = self.replica_tail(&mut cached)?;
        let records = pg.records_from(tail.seq.max(1)).map_err(store)?;
        let tail = self.catch_up(&mut pg, &remote.url, tail, records)?;
        *cached = Some(tail);
        Ok(())
    }

    /// `write_locked` for a replica. Under the store's head lock the
    /// replica is caught up, the caller decides on it, its records are
    /// sealed and written to the replica, and the transaction commits; the
    /// replica's exclusive `flock` is held from the head's lock to the
    /// commit, so no reader (they take it shared) sees a record the store
    /// does not hold.
    ///
    /// Writers of this process share transactions (a group commit of
    /// decisions): a writer whose turn ends while another waits for the
    /// log leaves the transaction open, and the next decides on the
    /// replica with the records before it; the last one commits them all,
    /// and each writer returns once its own records are durable. A batch
    /// that fails is cut from the replica, and every writer in it gets the
    /// error: nothing of it is anywhere.
    pub(super) fn write_remote<E: From<AuditError>>(
        &self,
        remote: &Remote,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
        redact: bool,
    ) -> Result<Vec<Appended>, E> {
        remote.waiting.fetch_add(1, Ordering::SeqCst);
        let cached = self.lock_tail();
        remote.waiting.fetch_sub(1, Ordering::SeqCst);
        let mut cached = cached?;
        let mut open = remote.batch.lock().unwrap_or_else(|p| p.into_inner());
        let batch = match open.as_mut() {
            Some(b) => b,
            None => open.insert(self.begin_batch(remote, &mut cached)?),
        };
        // Records of writers before this one that are not committed yet:
        // a decision made on them stands only if they are.
        let on_uncommitted = !batch.sealed.is_empty();
        let turn =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(batch.tail.end)));
        let mut failed = None;
        let mut panicked = None;
        let mine: Result<Vec<Appended>, E> = match turn {
            Err(payload) => {
                failed = Some(AuditError::Store {
                    store: crate::store::redact_url(&remote.url),
                    message: "a writer of this process panicked: its batch was not committed"
                        .into(),
                });
                panicked = Some(payload);
                Ok(Vec::new())
            }
            Ok(Err(refused)) => Err(refused),
            Ok(Ok(events)) => match self.add_to_batch(batch, events, redact) {
                Ok(appended) => Ok(appended),
                Err(e) => {
                    failed = Some(e.duplicate());
                    Err(e.into())
                }
            },
        };
        *cached = Some(batch.tail.clone());
        let done = std::sync::Arc::clone(&batch.done);
        let last = remote.waiting.load(Ordering::SeqCst) == 0 || batch.sealed.len() >= MAX_BATCH;
        if (last || failed.is_some())
            && let Some(batch) = open.take()
        {
            self.end_batch(remote, batch, &mut cached, failed);
        }
        drop(open);
        drop(cached);
        if let Some(payload) = panicked {
            std::panic::resume_unwind(payload);
        }
        let mine = mine?;
        // Nothing to write, but decided on what may yet fail: the caller
        // must not act on a state that never was (a check that passed on
        // an approval whose batch then failed).
        if mine.is_empty() && !on_uncommitted {
            return Ok(mine);
        }
        done.wait()?;
        Ok(mine)
    }

    /// Opens a batch: the replica's `flock`, the head's row lock, the
    /// replica caught up to the head. On failure nothing stays locked.
    fn begin_batch(&self, remote: &Remote, cached: &mut Option<Tail>) -> Result<Batch, AuditError> {
        self.file.lock().map_err(|e| self.io(e))?;
        let begun = self.lock_and_catch_up(remote, cached);
        if begun.is_err() {
            let _ = self.file.unlock();
        }
        begun
    }

    fn lock_and_catch_up(
        &self,
        remote: &Remote,
        cached: &mut Option<Tail>,
    ) -> Result<Batch, AuditError> {
        let store = |e| AuditError::from_store(&remote.url, e);
        let tail = self.replica_tail(cached)?;
        let mut txn = Txn {
            pg: remote.lock(),
            open: false,
        };
        let locked = txn.pg.lock_head(tail.seq.max(1)).map_err(store)?;
        txn.open = true;
        let tail = self.catch_up(&mut txn.pg, &remote.url, tail, locked.records)?;
        if tail.seq != locked.seq || tail.hash != locked.hash {
            return Err(AuditError::Store {
                store: crate::store::redact_url(&remote.url),
                message: format!(
                    "the head is seq {} ({}) but its records end at seq {} ({})",
                    locked.seq, locked.hash, tail.seq, tail.hash
                ),
            });
        }
        // The transaction stays open for the batch.
        txn.open = false;
        *cached = Some(tail.clone());
        Ok(Batch {
            start: tail.clone(),
            head: (tail.seq, tail.hash.clone()),
            tail,
            sealed: Vec::new(),
            done: std::sync::Arc::default(),
        })
    }

    /// Seals one writer's events after the batch's records and writes them
    /// to the replica (still under the `flock`: no reader sees them yet).
    fn add_to_batch(
        &self,
        batch: &mut Batch,
        mut events: Vec<Event>,
        redact: bool,
    ) -> Result<Vec<Appended>, AuditError> {
        if redact {
            events.iter_mut().for_each(|e| e.redact(&self.redactor));
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let tail = &mut batch.tail;
        let sealed = seal_after(&self.sealer, (tail.seq, &tail.hash), Utc::now(), &events)?;
        let mut buf = Vec::new();
        let mut appended = Vec::with_capacity(sealed.len());
        for s in &sealed {
            appended.push(Appended {
                seq: s.seq,
                hash: s.hash.clone(),
                offset: tail.end + buf.len() as u64,
            });
            buf.extend_from_slice(&s.line);
        }
        (&self.file).write_all(&buf).map_err(|e| self.io(e))?;
        if let Some(s) = sealed.last() {
            tail.seq = s.seq;
            tail.hash.clone_from(&s.hash);
        }
        tail.end += buf.len() as u64;
        batch.sealed.extend(sealed);
        Ok(appended)
    }

    /// Commits a batch (or, with `failed`, rolls it back), cuts a batch the
    /// store does not hold from the replica, lets the readers in and tells
    /// the batch's writers.
    fn end_batch(
        &self,
        remote: &Remote,
        batch: Batch,
        cached: &mut Option<Tail>,
        failed: Option<AuditError>,
    ) {
        let result = {
            let mut pg = remote.lock();
            match failed {
                Some(e) => {
                    pg.abort();
                    Err(e)
                }
                None => pg
                    .commit_locked((batch.head.0, &batch.head.1), &batch.sealed)
                    .map_err(|e| AuditError::from_store(&remote.url, e)),
            }
        };
        if result.is_ok() {
            *cached = Some(batch.tail);
        } else if self.file.set_len(batch.start.end).is_ok() {
            *cached = Some(batch.start);
        } else {
            // The replica keeps records the store does not: the next
            // catch-up finds its last record is not the store's, and
            // rebuilds it.
            *cached = None;
        }
        let _ = self.file.unlock();
        batch.done.set(result);
    }
    /// The replica's last record. A torn tail is cut off and a damaged one
    /// starts the replica again: it is a cache of the store.
    fn replica_tail(&self, cached: &mut Option<Tail>) -> Result<Tail, AuditError> {
        match self.current_tail(cached) {
            Ok((tail, None)) => Ok(tail),
            Ok((tail, Some(_))) => {
                self.file.set_len(tail.end).map_err(|e| self.io(e))?;
                Ok(tail)
            }
            Err(AuditError::Damaged { .. }) => self.restart(),
            Err(e) => Err(e),
        }
    }

    /// Empties the replica (and forgets the host's mark of this file: the
    /// store's mark is the one that counts).
    fn restart(&self) -> Result<Tail, AuditError> {
        tracing::warn!(replica = %self.path.display(), "rebuilding the replica from the store");
        self.file.set_len(0).map_err(|e| self.io(e))?;
        if let Some(mark) = &self.mark {
            mark.reset(None).map_err(|e| self.mark_err(e))?;
        }
        Ok(Tail {
            end: 0,
            seq: 0,
            hash: GENESIS.to_owned(),
        })
    }

    /// Writes `records` (the store's, from the replica's last seq on) to
    /// the replica after `tail`. When the first is not the replica's last
    /// record, the replica disagrees with the store and is rebuilt from it.
    fn catch_up(
        &self,
        pg: &mut Pg,
        url: &str,
        tail: Tail,
        records: Vec<Stored>,
    ) -> Result<Tail, AuditError> {
        let agrees = tail.seq == 0
            || records
                .first()
                .is_some_and(|r| r.seq == tail.seq && r.hash == tail.hash);
        let (rebuild, records) = if agrees {
            let skip = usize::from(tail.seq > 0);
            (false, records.into_iter().skip(skip).collect::<Vec<_>>())
        } else {
            let all = pg
                .records_from(1)
                .map_err(|e| AuditError::from_store(url, e))?;
            (true, all)
        };
        if records.is_empty() && !rebuild {
            return Ok(tail);
        }
        // Records are taken into the replica (and this host's mark raised
        // to them) only from a store that still holds what this host saw.
        // A replica that disagrees is the replica's fault (edited, cut,
        // left behind by a store an operator accepted) only then; a store
        // that went back or forked under a live connection (a failover
        // behind a proxy, after this connection's first check) is refused,
        // never rebuilt from.
        let state = pg
            .mark_state()
            .map_err(|e| AuditError::from_store(url, e))?;
        if let Some(why) = state.refusal(pg.url()) {
            return Err(AuditError::Diverged(why));
        }
        let mut tail = if rebuild { self.restart()? } else { tail };
        let Some(last) = records.last() else {
            return Ok(tail);
        };
        let (seq, hash) = (last.seq, last.hash.clone());
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.line.len() + 1).sum());
        for r in &records {
            buf.extend_from_slice(&r.line);
            buf.push(b'\n');
        }
        (&self.file).write_all(&buf).map_err(|e| self.io(e))?;
        tail.end += buf.len() as u64;
        tail.seq = seq;
        tail.hash.clone_from(&hash);
        pg.saw(seq, &hash)
            .map_err(|e| AuditError::from_store(url, e))?;
        if let Some(mark) = &self.mark {
            mark.raise(&Head { seq, hash })
                .map_err(|e| self.mark_err(e))?;
        }
        Ok(tail)
    }
}

impl AuditLog {
    /// Keeps this log's replica up to date from a thread of its own, for a
    /// long-lived door (the TUI, the bridge): woken by the store's
    /// `LISTEN` (on its own connection), and every `every` at the latest,
    /// so a record committed on any host is in the replica within a
    /// notification's time. A file log needs nothing. The thread lives as
    /// long as the process; a failure is logged and tried again.
    pub fn follow(&self, state: &Path, every: std::time::Duration) -> std::io::Result<()> {
        let Some(url) = self.store_url().map(str::to_owned) else {
            return Ok(());
        };
        let shown = crate::store::redact_url(&url);
        let replica = self.path.clone();
        let sealer = self.sealer.clone();
        let mark = self.mark.clone();
        let state = state.to_owned();
        let open = move || -> Result<(AuditLog, crate::store::pg::Follower), AuditError> {
            let store = |e| AuditError::from_store(&url, e);
            let pg = Pg::connect(&url)
                .and_then(|pg| pg.with_mark(&state))
                .map_err(store)?;
            let mut log =
                AuditLog::open_store(&replica, &url, pg, sealer.clone(), Redactor::default())?;
            log.mark.clone_from(&mark);
            // Listening before the first read: a record committed in
            // between is heard, not left for the timer.
            let follower = crate::store::pg::Follower::new(&url, 0).map_err(store)?;
            log.refresh()?;
            Ok((log, follower))
        };
        std::thread::Builder::new()
            .name("opsgate-follow".into())
            .spawn(move || {
                loop {
                    let (log, mut follower) = match open() {
                        Ok(o) => o,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot follow the store; trying again");
                            std::thread::sleep(std::time::Duration::from_secs(1));
                            continue;
                        }
                    };
                    loop {
                        let woke = follower
                            .wait(every)
                            .map_err(|e| AuditError::Store {
                                store: shown.clone(),
                                message: e.to_string(),
                            })
                            .and_then(|_| log.refresh());
                        if let Err(e) = woke {
                            tracing::warn!(error = %e, "following the store failed; reconnecting");
                            std::thread::sleep(std::time::Duration::from_secs(1));
                            break;
                        }
                    }
                }
            })
            .map(|_| ())
    }
}

/// The replicas this process opened, by path, each with a connection of
/// its own for questions asked while an append holds the head
/// (`run_is_live` inside a decision): whether a run's engine, on any host,
/// still renews its lease.
static REPLICAS: std::sync::LazyLock<
    Mutex<std::collections::HashMap<std::path::PathBuf, std::sync::Arc<Liveness>>>,
> = std::sync::LazyLock::new(Mutex::default);

struct Liveness {
    url: String,
    pg: Mutex<Option<Pg>>,
}

fn register(replica: &Path, url: &str) {
    let mut map = REPLICAS.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(replica.to_owned()).or_insert_with(|| {
        std::sync::Arc::new(Liveness {
            url: url.to_owned(),
            pg: Mutex::new(None),
        })
    });
}

fn replica_of(log: &Path) -> Option<std::sync::Arc<Liveness>> {
    let map = REPLICAS.lock().unwrap_or_else(|p| p.into_inner());
    map.get(log).cloned()
}

impl Liveness {
    fn run_live(&self, run_id: &str) -> Result<bool, StoreError> {
        let mut pg = self.pg.lock().unwrap_or_else(|p| p.into_inner());
        if pg.as_ref().is_none_or(Pg::is_closed) {
            *pg = Some(Pg::connect(&self.url)?);
        }
        pg.as_ref().map_or(Ok(true), |pg| pg.run_live(run_id))
    }
}

/// Whether a live engine holds `run_id` on the store that `log` is a
/// replica of: `None` when `log` is no replica (the file's own run locks
/// say). A store that cannot be asked says live: nothing treats a run as
/// dead by mistake.
pub fn lease_live(log: &Path, run_id: &str) -> Option<bool> {
    let replica = replica_of(log)?;
    Some(replica.run_live(run_id).unwrap_or_else(|e| {
        tracing::warn!(error = %e, run_id, "cannot read the run's lease; taking it as live");
        true
    }))
}

/// How long a run's lease lasts unrenewed (`OPSGATE_RUN_LEASE_SECS`,
/// default 15 s): how soon other hosts see a dead engine's run as
/// interrupted. Its engine renews it three times as often.
fn lease_ttl() -> std::time::Duration {
    let secs = std::env::var("OPSGATE_RUN_LEASE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(15);
    std::time::Duration::from_secs(secs)
}

/// A run's lease in the store, renewed by a thread of its own until
/// dropped, then released. A renewal refused (the lease lapsed, say after
/// the process was stopped) is logged and the thread ends: the run shows
/// as interrupted to every host.
#[derive(Debug)]
pub struct Held {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Takes the lease of `plan_id` for `run_id` when `log` is a store's
/// replica (`None` for a file log). Refused (`WouldBlock`, naming the
/// holder) while another host's engine holds the plan.
pub fn hold_lease(log: &Path, plan_id: &str, run_id: &str) -> std::io::Result<Option<Held>> {
    let Some(replica) = replica_of(log) else {
        return Ok(None);
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let holder = format!("{host}:{}", std::process::id());
    let pg = Pg::connect(&replica.url).map_err(std::io::Error::other)?;
    let ttl = lease_ttl();
    let lease = pg
        .take_lease(plan_id, run_id, &holder, ttl)
        .map_err(|e| match e {
            StoreError::Leased(m) => std::io::Error::new(std::io::ErrorKind::WouldBlock, m),
            other => std::io::Error::other(other.to_string()),
        })?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("opsgate-lease".into())
        .spawn(move || {
            let mut lease = lease;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(ttl / 3)
            {
                match pg.renew_lease(&lease, ttl) {
                    Ok(renewed) => lease = renewed,
                    Err(e) => {
                        tracing::error!(error = %e, run_id = %lease.run_id, "the run's lease was not renewed");
                        return;
                    }
                }
            }
            if let Err(e) = pg.release_lease(&lease) {
                tracing::warn!(error = %e, "the run's lease was not released; it lapses");
            }
        })?;
    Ok(Some(Held {
        stop: Some(stop),
        thread: Some(thread),
    }))
}
