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
//! by its canonical path (symlinks resolved): `{"log":…,"seq":…,"hash":…}`.
//! It is raised under its own `flock`, so two processes never lower it.
//! A writer of the log who can also write the state directory of every
//! user who uses it defeats the mark; see `docs/threat-model.md`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

#[derive(Debug, Serialize, Deserialize)]
struct MarkFile {
    log: String,
    seq: u64,
    hash: String,
}

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

    /// Where the mark is kept.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The mark, or `None` when this host never saw the log.
    pub fn get(&self) -> io::Result<Option<Head>> {
        match std::fs::read(&self.file) {
            Ok(bytes) => parse(&bytes, &self.file).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Raises the mark to `head` if `head` is further along; never lowers
    /// it. Returns the mark as it is afterwards.
    pub fn raise(&self, head: &Head) -> io::Result<Head> {
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
    /// asks `change` for a new one (`None`: keep it), and writes it to a
    /// temporary file renamed over the mark, so a reader without the lock
    /// sees the old mark or the new one, never half of one. Returns the
    /// mark afterwards.
    fn update(&self, change: impl FnOnce(Option<&Head>) -> Option<Head>) -> io::Result<Head> {
        if let Some(dir) = self.file.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.file.with_extension("lock"))?;
        lock.lock()?;
        let current = self.get()?;
        let Some(new) = change(current.as_ref()) else {
            return current.ok_or_else(|| io::Error::other("the mark is empty"));
        };
        let mut text = serde_json::to_vec(&MarkFile {
            log: self.log.display().to_string(),
            seq: new.seq,
            hash: new.hash.clone(),
        })
        .map_err(io::Error::other)?;
        text.push(b'\n');
        let tmp = self
            .file
            .with_extension(format!("tmp-{}", std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        drop(f);
        std::fs::rename(&tmp, &self.file)?;
        Ok(new)
    }
}

fn parse(bytes: &[u8], file: &Path) -> io::Result<Head> {
    let m: MarkFile = serde_json::from_slice(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the high-water mark `{}` cannot be read ({e}); remove it only after checking the log with `opsgate audit verify --expect-head`",
                file.display()
            ),
        )
    })?;
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
