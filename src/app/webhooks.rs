//! Where each webhook of the bridge stands, and what it gave up on: files
//! in the state directory, one pair per webhook and log, read by the
//! bridge that delivers and by `opsgate status --webhooks`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a webhook stands: the last record done with (delivered, or
/// dead-lettered), durable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Position {
    pub after_seq: u64,
}

/// One dead letter: what could not be delivered, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub at: String,
    pub seq: u64,
    pub event: String,
    pub attempts: u32,
    pub error: String,
}

/// The files of webhook `name` for the log at `log`, in `state`.
#[derive(Debug, Clone)]
pub struct Files {
    pub position: PathBuf,
    pub dead: PathBuf,
}

impl Files {
    pub fn of(state: &Path, log: &Path, name: &str) -> Self {
        use sha2::{Digest, Sha256};
        let canonical = std::fs::canonicalize(log).unwrap_or_else(|_| log.to_path_buf());
        let id = hex::encode(&Sha256::digest(canonical.display().to_string().as_bytes())[..8]);
        let dir = state.join("webhooks");
        Files {
            position: dir.join(format!("{id}-{name}.json")),
            dead: dir.join(format!("{id}-{name}.dead.jsonl")),
        }
    }

    pub fn read_position(&self) -> std::io::Result<Option<Position>> {
        match std::fs::read(&self.position) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the position durably: aside, fsync'd, renamed over.
    pub fn write_position(&self, p: &Position) -> std::io::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = self.position.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let aside = self.position.with_extension("json.tmp");
        let mut f = std::fs::File::create(&aside)?;
        f.write_all(&serde_json::to_vec(p).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&aside, &self.position)?;
        if let Some(dir) = self.position.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    pub fn dead_letters(&self) -> std::io::Result<Vec<DeadLetter>> {
        match std::fs::read_to_string(&self.dead) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(std::io::Error::other))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub fn add_dead_letter(&self, d: &DeadLetter) -> std::io::Result<()> {
        use std::io::Write as _;
        if let Some(dir) = self.dead.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead)?;
        let mut line = serde_json::to_vec(d).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()
    }
}

/// A webhook's URL as shown to people: scheme and host only, since the
/// path of a chat platform's URL is its secret.
pub fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if host.len() < rest.len() {
                format!("{scheme}://{host}/…")
            } else {
                format!("{scheme}://{host}")
            }
        }
        None => "…".to_owned(),
    }
}
