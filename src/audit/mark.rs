//! The high-water mark: the last record (seq and hash) a host saw of a log,
//! kept outside the log, in the user's state directory.
//!
//! A hash chain shows an edit, a deletion inside the log or an insertion,
//! but not records cut from its tail: a shorter chain is still a chain.
//! Every process that folds or appends to the log checks it against the
//! mark, and raises the mark to what it saw. A log that ends before the
//! mark (or holds another record at the mark's seq) lost records: nothing
//! is decided, run or recorded until an operator has checked the log
//! (`opsgate audit verify --expect-head`) and accepted it as it is
//! (`opsgate audit verify --acknowledge-truncation`), which records that
//! and resets the mark.
//!
//! The mark file is `<state>/heads/<id>.json`, where `<id>` names the log
//! by its canonical path (symlinks resolved):
//! `{"log":…,"seq":…,"hash":…,"check":…}`. It is raised under its own
//! `flock`, so two processes never lower it, and rewritten in place; the
//! `check` lets a reader that overlapped a write see it and read again.
//! A writer of the log who can also write the state directory of every
//! user who uses it defeats the mark; see `docs/threat-model.md`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::verify::Head;

/// One log's high-water mark in one state directory.
#[derive(Debug, Clone)]
pub struct HighWater {
    file: PathBuf,
    log: PathBuf,
}

/// The mark file's one line. `check` is a digest of the other fields: a
/// read that overlaps a write (the file is rewritten in place) sees a
/// mixture that fails it, and reads again.
#[derive(Debug, Serialize, Deserialize)]
struct MarkFile {
    log: String,
    seq: u64,
    hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
}

impl MarkFile {
    fn check_of(log: &str, seq: u64, hash: &str) -> String {
        let digest = Sha256::digest(format!("{log}\n{seq}\n{hash}").as_bytes());
        hex::encode(&digest[..8])
    }
}

/// How often a read that overlapped a write is tried again.
const READ_ATTEMPTS: usize = 50;

impl HighWater {
    /// The mark of the log at `log`, kept under `state_dir/heads/`. The log
    /// is named by its canonical path, so a symlink to it shares its mark.
    pub fn for_log(state_dir: &Path, log: &Path) -> Self {
        let canonical = canonical(log);
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let file = state_dir
            .join("heads")
            .join(format!("{}.json", &hex::encode(digest)[..24]));
        HighWater {
            file,
            log: canonical,
        }
    }

    /// The mark of a PostgreSQL store's chain (team mode), named by its
    /// `chain_id`, kept under `state_dir/heads/` too.
    pub fn for_store(state_dir: &Path, chain_id: &str) -> Self {
        let name = format!("postgres chain {chain_id}");
        let digest = Sha256::digest(name.as_bytes());
        HighWater {
            file: state_dir
                .join("heads")
                .join(format!("pg-{}.json", &hex::encode(digest)[..24])),
            log: PathBuf::from(name),
        }
    }

    /// Where the mark is kept.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The mark, or `None` when this host never saw the log.
    pub fn get(&self) -> io::Result<Option<Head>> {
        let mut f = match File::open(&self.file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        read_mark(&mut f, &self.file)
    }

    /// Raises the mark to `head` if `head` is further along; never lowers
    /// it. Returns the mark as it is afterwards.
    pub fn raise(&self, head: &Head) -> io::Result<Head> {
        // Already there: no lock, no write.
        if let Some(m) = self.get()?
            && m.seq >= head.seq
        {
            return Ok(m);
        }
        self.update(|current| match current {
            Some(c) if c.seq >= head.seq => None,
            _ => Some(head.clone()),
        })
    }

    /// Sets the mark to `head` whatever it was (after an operator accepted
    /// a truncated log); `None` forgets it.
    pub fn reset(&self, head: Option<&Head>) -> io::Result<()> {
        match head {
            Some(h) => self.update(|_| Some(h.clone())).map(drop),
            None => match std::fs::remove_file(&self.file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Under the mark's lock (a `.lock` file beside it): reads the mark,
    /// asks `change` for a new one (`None`: keep it), and writes it in
    /// place with one `pwrite` (a reader that overlaps it fails the
    /// line's check and reads again). Returns the mark afterwards.
    ///
    /// In place rather than a temporary file renamed over the mark: the
    /// rename cost 160 µs on ext4 here, a third of a bridge decision.
    fn update(&self, change: impl FnOnce(Option<&Head>) -> Option<Head>) -> io::Result<Head> {
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
        };
        let lock_path = self.file.with_extension("lock");
        let lock = match open(&lock_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.file.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)?;
                }
                open(&lock_path)?
            }
            other => other?,
        };
        lock.lock()?;
        let mut f = open(&self.file)?;
        let current = read_mark(&mut f, &self.file)?;
        let Some(new) = change(current.as_ref()) else {
            return current.ok_or_else(|| io::Error::other("the mark is empty"));
        };
        let log = self.log.display().to_string();
        let mut text = serde_json::to_vec(&MarkFile {
            check: Some(MarkFile::check_of(&log, new.seq, &new.hash)),
            log,
            seq: new.seq,
            hash: new.hash.clone(),
        })
        .map_err(io::Error::other)?;
        text.push(b'\n');
        f.write_all_at(&text, 0)?;
        f.set_len(text.len() as u64)?;
        Ok(new)
    }
}

/// Reads the mark from `f` (from its start); `None` for an empty file (one
/// being created). A read that overlapped a write is tried again.
fn read_mark(f: &mut File, path: &Path) -> io::Result<Option<Head>> {
    let mut last = None;
    for _ in 0..READ_ATTEMPTS {
        let mut bytes = Vec::with_capacity(256);
        f.seek(SeekFrom::Start(0))?;
        f.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        match parse(&bytes, path) {
            Ok(head) => return Ok(Some(head)),
            Err(e) => last = Some(e),
        }
        std::thread::yield_now();
    }
    Err(last.unwrap_or_else(|| io::Error::other("the mark cannot be read")))
}

fn parse(bytes: &[u8], file: &Path) -> io::Result<Head> {
    let damaged = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the high-water mark `{}` cannot be read ({why}); remove it only after checking the log with `opsgate audit verify --expect-head`",
                file.display()
            ),
        )
    };
    let m: MarkFile = serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
    // A mark written before the check existed was written whole (renamed
    // into place): it has none.
    if let Some(check) = &m.check
        && *check != MarkFile::check_of(&m.log, m.seq, &m.hash)
    {
        return Err(damaged("its check does not match its fields".into()));
    }
    Ok(Head {
        seq: m.seq,
        hash: m.hash,
    })
}

/// The log's path with symlinks resolved; for a log that does not exist
/// yet, its directory's canonical path and its name.
fn canonical(log: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(log) {
        return p;
    }
    let name = log.file_name().map(PathBuf::from).unwrap_or_default();
    let dir = log
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).map_or_else(|_| log.to_path_buf(), |d| d.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64) -> Head {
        Head {
            seq,
            hash: format!("sha256:{seq:064}"),
        }
    }

    #[test]
    fn the_mark_only_rises_and_a_symlink_shares_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        std::fs::write(&log, "").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let state = dir.path().join("state");
        let mark = HighWater::for_log(&state, &log);
        assert_eq!(mark.get().unwrap(), None);
        assert_eq!(mark.raise(&head(5)).unwrap(), head(5));
        assert_eq!(mark.raise(&head(3)).unwrap(), head(5), "never lowered");
        let via_link = HighWater::for_log(&state, &link);
        assert_eq!(via_link.get().unwrap(), Some(head(5)));
        via_link.reset(Some(&head(2))).unwrap();
        assert_eq!(mark.get().unwrap(), Some(head(2)));
        mark.reset(None).unwrap();
        assert_eq!(mark.get().unwrap(), None);
    }

    /// The mark is rewritten in place: a reader racing the writer never
    /// errs and never sees it go down, and a line whose check does not
    /// match (half of one write, half of another) is refused.
    #[test]
    fn readers_racing_the_writer_see_whole_marks_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let mark = HighWater::for_log(dir.path(), &log);
        mark.raise(&head(1)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut seen = 0;
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let m = mark.get().expect("a whole mark").expect("a mark");
                    assert!(m.seq >= seen, "the mark went down: {} < {seen}", m.seq);
                    assert_eq!(m, head(m.seq));
                    seen = m.seq;
                    reads += 1;
                }
                reads
            });
            // Across 9 → 10 → 100 → 1000: the line grows as it is rewritten.
            for seq in 2..=2000 {
                mark.raise(&head(seq)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(reader.join().unwrap() > 0);
        });
        // Reset (an acknowledged truncation) once the reader is done: the
        // only write that lowers the mark.
        mark.reset(Some(&head(7))).unwrap();
        assert_eq!(
            mark.get().unwrap(),
            Some(head(7)),
            "a shorter line replaces a longer one"
        );
        let text = std::fs::read_to_string(mark.path()).unwrap();
        std::fs::write(mark.path(), text.replace("\"seq\":7", "\"seq\":9")).unwrap();
        let e = mark.get().unwrap_err();
        assert!(e.to_string().contains("check does not match"), "{e}");
    }

    #[test]
    fn a_damaged_mark_is_an_error_not_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let mark = HighWater::for_log(dir.path(), &dir.path().join("audit.jsonl"));
        std::fs::create_dir_all(mark.path().parent().unwrap()).unwrap();
        std::fs::write(mark.path(), "garbage").unwrap();
        assert!(mark.get().is_err());
        assert!(mark.raise(&head(1)).is_err());
    }
}
