//! Reading the log forwards: a streaming line reader with byte offsets
//! (constant memory), a light per-record view for filters and tables, and
//! a follower that picks up lines other processes append.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The length of the log's committed bytes: taken under a shared `flock`,
/// so no append is half-way through its `write`.
pub fn committed_len(file: &File) -> io::Result<u64> {
    file.lock_shared()?;
    let len = file.metadata().map(|m| m.len());
    let unlocked = file.unlock();
    let len = len?;
    unlocked?;
    Ok(len)
}

/// One line of the log.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u64,
    pub offset: u64,
    /// Without the newline.
    pub bytes: &'a [u8],
    /// False for a last line without `\n`: a torn tail.
    pub complete: bool,
}

/// Streams the lines of a snapshot of the log, one buffer reused.
#[derive(Debug)]
pub struct LineReader {
    reader: BufReader<io::Take<File>>,
    buf: Vec<u8>,
    offset: u64,
    number: u64,
}

impl LineReader {
    /// Opens the committed part of the log at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = committed_len(&file)?;
        Ok(Self::from_file(file, len))
    }

    /// Opens the first `len` bytes of the log without taking the shared
    /// lock: for a caller that holds the log's exclusive lock itself.
    pub fn open_until(path: &Path, len: u64) -> io::Result<Self> {
        Ok(Self::from_file(File::open(path)?, len))
    }

    /// Opens the bytes `[start, end)` of the log, numbering lines from
    /// `first_line`, without the shared lock (`end` is a committed length).
    pub fn open_range(path: &Path, start: u64, end: u64, first_line: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut r = Self::from_file(file, end.saturating_sub(start));
        r.offset = start;
        r.number = first_line.saturating_sub(1);
        Ok(r)
    }

    fn from_file(file: File, len: u64) -> Self {
        LineReader {
            reader: BufReader::with_capacity(256 * 1024, file.take(len)),
            buf: Vec::with_capacity(4096),
            offset: 0,
            number: 0,
        }
    }

    /// The next line, or `None` at the end of the snapshot.
    pub fn next_line(&mut self) -> Option<io::Result<Line<'_>>> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(n) => {
                let offset = self.offset;
                self.offset += n as u64;
                self.number += 1;
                let complete = self.buf.last() == Some(&b'\n');
                let bytes = if complete {
                    &self.buf[..n - 1]
                } else {
                    &self.buf[..]
                };
                Some(Ok(Line {
                    number: self.number,
                    offset,
                    bytes,
                    complete,
                }))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// The commonly useful fields of any record, for filters, tables and CSV.
/// Fields an event does not have are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub seq: u64,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub plan_id: Option<String>,
    pub run_id: Option<String>,
    pub step: Option<u32>,
    pub name: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub risk: Option<String>,
    pub status: Option<String>,
    pub approver: Option<String>,
    pub channel: Option<String>,
    pub user: Option<String>,
    pub author: Option<String>,
    pub dry_run: Option<bool>,
    pub exit_code: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub reason: Option<String>,
    pub plan_hash: Option<String>,
    pub policy_hash: Option<String>,
    pub hash: String,
}

impl RecordView {
    pub fn parse(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }

    /// Who acted: the approver, the user who ran or stopped, or the author.
    pub fn who(&self) -> Option<&str> {
        self.approver
            .as_deref()
            .or(self.user.as_deref())
            .or(self.author.as_deref())
    }
}

/// Follows a log as other processes append to it: each poll returns the
/// complete lines added since the last one.
#[derive(Debug)]
pub struct Follower {
    file: File,
    offset: u64,
}

impl Follower {
    /// Starts at byte `offset` (usually the end of what was already read).
    pub fn new(path: &Path, offset: u64) -> io::Result<Self> {
        Ok(Follower {
            file: File::open(path)?,
            offset,
        })
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The complete lines appended since the last poll, without newlines.
    pub fn poll(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let len = committed_len(&self.file)?;
        if len < self.offset {
            // Only a repair truncates, and only bytes past the last
            // complete line, which were never returned.
            self.offset = len;
        }
        if len == self.offset {
            return Ok(Vec::new());
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = Vec::new();
        (&self.file)
            .take(len - self.offset)
            .read_to_end(&mut chunk)?;
        let Some(last_nl) = chunk.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        self.offset += last_nl as u64 + 1;
        Ok(chunk[..last_nl]
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect())
    }
}
