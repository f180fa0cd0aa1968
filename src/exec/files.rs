//! Hashing the local files a plan's `run:` lines run or read, at load time,
//! and checking them again before a run and before each step: an edited
//! script, manifest or SQL file is a different plan, and never runs under
//! the old approval.
//!
//! A path is resolved as the step's shell resolves it: relative to the
//! working directory. A directory (`kubectl apply -k DIR`) is hashed whole:
//! every file under it, by relative path and content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::core::plan::LocalFile;

/// The most files, and bytes, a hashed directory may hold.
const MAX_DIR_FILES: usize = 10_000;
const MAX_DIR_BYTES: u64 = 256 * 1024 * 1024;

/// The canonical path and SHA-256 of the file or directory `word` names.
pub fn digest(word: &str) -> Result<LocalFile, String> {
    let path = canonical(word)?;
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sha256 = if meta.is_dir() {
        digest_dir(&path)?
    } else {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    };
    Ok(LocalFile {
        path: path.display().to_string(),
        sha256,
    })
}

fn canonical(word: &str) -> Result<PathBuf, String> {
    let p = Path::new(word);
    std::fs::canonicalize(p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "it does not exist here (in {})",
            std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string())
        ),
        _ => e.to_string(),
    })
}

/// Every regular file under `dir`, sorted by relative path: the path, a
/// NUL, and the file's own SHA-256 each.
fn digest_dir(dir: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut bytes = 0u64;
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", d.display()))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                bytes += meta.len();
                files.push(path);
            }
            if files.len() > MAX_DIR_FILES || bytes > MAX_DIR_BYTES {
                return Err(format!(
                    "{} holds more than {MAX_DIR_FILES} files or {} MiB: too much to hash with a plan",
                    dir.display(),
                    MAX_DIR_BYTES / 1024 / 1024
                ));
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let content = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(Sha256::digest(&content));
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Checks that every file is still what was hashed: the same path from
/// here, and the same content. The error names the first that is not.
pub fn check(files: &BTreeMap<String, LocalFile>) -> Result<(), String> {
    for (word, then) in files {
        let now = digest(word)
            .map_err(|e| format!("`{word}` ({}) cannot be read now: {e}", then.path))?;
        if now.path != then.path {
            return Err(format!(
                "`{word}` now names {}, not {} as when the plan was submitted: run it from the directory it was submitted in",
                now.path, then.path
            ));
        }
        if now.sha256 != then.sha256 {
            return Err(format!(
                "`{word}` ({}) changed since the plan was submitted ({} → {}): it is not what was approved; submit the plan again",
                then.path,
                crate::core::event::short(&then.sha256),
                crate::core::event::short(&now.sha256)
            ));
        }
    }
    Ok(())
}
