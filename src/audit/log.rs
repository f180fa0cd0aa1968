//! Appending to the log: `O_APPEND`, an exclusive `flock` per append, one
//! `write` per batch of lines, and `fdatasync` before an append returns.
//!
//! Group commit: appends from several threads of one process share fsyncs.
//! A writer writes its lines under the lock, then waits for a sync that
//! covers them; whoever syncs first syncs everything written so far, and
//! the writers it covered return without another fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use chrono::Utc;

use super::backward::read_tail;
use super::chain::{GENESIS, LineFault, Sealer, check_line};
use super::event::{Event, Unsealed, VERSION};
use crate::core::redact::Redactor;

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
    #[error("cannot serialize an audit event: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Where an appended record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
    pub offset: u64,
}

/// The chain position after the last complete record.
#[derive(Debug, Clone)]
struct Tail {
    /// File length after the record's newline.
    end: u64,
    seq: u64,
    hash: String,
}

/// An audit log open for appending. Share it between threads by reference.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    sealer: Sealer,
    redactor: Redactor,
    /// The cached tail; valid while the file length matches.
    tail: Mutex<Option<Tail>>,
    /// Batches written so far, and the highest one known durable.
    written: AtomicU64,
    synced: Mutex<u64>,
    poisoned: AtomicBool,
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
            tail: Mutex::new(None),
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
            poisoned: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let mut done = self.append_with(|_| Ok::<_, AuditError>(vec![event]))?;
        done.pop().ok_or_else(|| AuditError::Damaged {
            path: self.path.clone(),
            offset: 0,
            message: "the append wrote nothing".into(),
        })
    }

    /// Under the log's lock, asks `decide` which events to append (given
    /// the length of the log's committed bytes, which it may read), appends
    /// them in one write and returns once they are durable. Other
    /// processes cannot append in between.
    pub fn append_with<E: From<AuditError>>(
        &self,
        decide: impl FnOnce(u64) -> Result<Vec<Event>, E>,
    ) -> Result<Vec<Appended>, E> {
        let (generation, appended) = {
            let mut cached = self.lock_tail()?;
            let _flock = FileLock::exclusive(&self.file).map_err(|e| self.io(e))?;
            let (mut tail, torn) = self.current_tail(&mut cached)?;
            // Decide first, so a refusal leaves the file untouched.
            let decided = decide(tail.end)?;
            let mut events = Vec::with_capacity(decided.len() + 1);
            if let Some(len) = torn {
                events.push(self.move_torn_tail(tail.end, len)?);
            }
            events.extend(decided);
            if events.is_empty() {
                return Ok(Vec::new());
            }
            let mut buf = Vec::new();
            let mut appended = Vec::with_capacity(events.len());
            for mut event in events {
                event.redact(&self.redactor);
                let canonical = serde_json::to_vec(&Unsealed {
                    v: VERSION,
                    seq: tail.seq + 1,
                    ts: Utc::now(),
                    event: &event,
                    alg: self.sealer.alg(),
                    key_id: self.sealer.key_id(),
                    prev: &tail.hash,
                })
                .map_err(AuditError::from)?;
                let (line, hash) = self.sealer.seal(canonical);
                let offset = tail.end + buf.len() as u64;
                buf.extend_from_slice(&line);
                tail.seq += 1;
                tail.hash.clone_from(&hash);
                appended.push(Appended {
                    seq: tail.seq,
                    hash,
                    offset,
                });
            }
            if let Err(e) = (&self.file).write_all(&buf) {
                // A partial write is a torn tail; the next append repairs it.
                *cached = None;
                return Err(self.io(e).into());
            }
            tail.end += buf.len() as u64;
            *cached = Some(tail);
            let generation = self.written.fetch_add(1, Ordering::SeqCst) + 1;
            (generation, appended)
        };
        self.sync_to(generation)?;
        Ok(appended)
    }

    /// Moves a torn tail aside and records `log_repaired`; `None` when the
    /// log had no torn tail.
    pub fn repair(&self) -> Result<Option<Appended>, AuditError> {
        let mut done = self.append_with(|_| Ok::<_, AuditError>(Vec::new()))?;
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
            let header = check_line(line, &self.sealer).map_err(|fault| AuditError::Damaged {
                path: self.path.clone(),
                offset: *offset,
                message: describe(&fault),
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

    fn move_torn_tail(&self, torn_at: u64, len: u64) -> Result<Event, AuditError> {
        let mut torn = vec![0; (len - torn_at) as usize];
        self.file
            .read_exact_at(&mut torn, torn_at)
            .map_err(|e| self.io(e))?;
        let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let aside = PathBuf::from(format!("{}.torn-{stamp}", self.path.display()));
        let write_aside = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&aside)?;
            f.write_all(&torn)?;
            f.sync_all()
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
        })
    }

    /// Waits until batch `generation` is durable, syncing if nobody has.
    fn sync_to(&self, generation: u64) -> Result<(), AuditError> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= generation {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let target = self.written.load(Ordering::SeqCst);
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty
            // pages; a later fsync could falsely succeed. Stop writing.
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(self.io(e));
        }
        *synced = target;
        Ok(())
    }
}

/// A line fault in words.
pub fn describe(fault: &LineFault) -> String {
    match fault {
        LineFault::BadJson(e) => format!("bad JSON: {e}"),
        LineFault::Version(v) => format!("unsupported record version {v}"),
        LineFault::HashMismatch => {
            "hash mismatch: the record was changed after it was written".into()
        }
        LineFault::Key(m) => m.clone(),
    }
}
