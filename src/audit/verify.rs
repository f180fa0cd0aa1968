//! Verifying the chain: every record's seal, its link to the one before,
//! contiguous `seq`s, no torn tail, and an optional exported head.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use super::backward::read_tail;
use super::chain::{GENESIS, Header, LineFault, Sealer, check_line};
use super::log::{describe, detail};
use super::read::{Line, LineReader, committed_len};

/// A chain position to keep elsewhere: `SEQ sha256:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.hash)
    }
}

impl FromStr for Head {
    type Err = String;

    /// `SEQ:HASH` or `SEQ HASH`, as `audit head` prints it.
    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s
            .trim()
            .split_once([':', ' '])
            .ok_or_else(|| format!("`{s}` is not SEQ:HASH (e.g. 42:sha256:ab12…)"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("`{seq}` in `{s}` is not a sequence number"))?;
        let hash = hash.trim();
        let (alg, hex) = hash.split_once(':').unwrap_or(("", ""));
        if !matches!(alg, "sha256" | "hmac-sha256")
            || hex.len() != 64
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!(
                "`{hash}` in `{s}` is not a record hash (sha256:<64 hex>)"
            ));
        }
        Ok(Head {
            seq,
            hash: hash.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    BadJson,
    UnsupportedVersion,
    HashMismatch,
    KeyMismatch,
    BrokenLink,
    SeqGap,
    TornTail,
    HeadMismatch,
    ShorterThanHead,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::BadJson => "bad JSON",
            ProblemKind::UnsupportedVersion => "unsupported version",
            ProblemKind::HashMismatch => "hash mismatch",
            ProblemKind::KeyMismatch => "key mismatch",
            ProblemKind::BrokenLink => "broken link",
            ProblemKind::SeqGap => "seq gap",
            ProblemKind::TornTail => "torn tail",
            ProblemKind::HeadMismatch => "head mismatch",
            ProblemKind::ShorterThanHead => "shorter than the expected head",
        }
    }
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// 1-based line number (for a short log: the last line, or 0 if empty).
    pub line: u64,
    pub offset: u64,
    pub seq: Option<u64>,
    pub kind: ProblemKind,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}: {}", self.kind.as_str(), self.message)
    }
}

/// What a verification saw, up to the first problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub events: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub head: Option<Head>,
    pub problem: Option<Problem>,
}

/// Checks lines one at a time, in order; usable by any forward scan.
#[derive(Debug)]
pub struct Verifier {
    sealer: Sealer,
    expect: Option<Head>,
    prev: String,
    seq: u64,
    events: u64,
    last_line: u64,
    last_offset: u64,
    first_ts: Option<String>,
    last_ts: String,
}

impl Verifier {
    pub fn new(sealer: &Sealer, expect: Option<Head>) -> Self {
        Verifier {
            sealer: sealer.clone(),
            expect,
            prev: GENESIS.to_owned(),
            seq: 0,
            events: 0,
            last_line: 0,
            last_offset: 0,
            first_ts: None,
            last_ts: String::new(),
        }
    }

    /// Checks the next line; returns its header when it is sound.
    pub fn feed<'a>(&mut self, line: &Line<'a>) -> Result<Header<'a>, Problem> {
        let problem = |kind, seq, message: String| Problem {
            line: line.number,
            offset: line.offset,
            seq,
            kind,
            message,
        };
        if !line.complete {
            return Err(problem(
                ProblemKind::TornTail,
                None,
                format!(
                    "{} byte(s) without a newline, left by an interrupted write and never acknowledged; `opsgate audit repair` moves them aside",
                    line.bytes.len()
                ),
            ));
        }
        let header = check_line(line.bytes, &self.sealer).map_err(|fault| {
            let kind = match fault {
                LineFault::BadJson(_) => ProblemKind::BadJson,
                LineFault::Version(_) => ProblemKind::UnsupportedVersion,
                LineFault::HashMismatch => ProblemKind::HashMismatch,
                LineFault::Key(_) => ProblemKind::KeyMismatch,
            };
            let seq = serde_json::from_slice::<SeqOnly>(line.bytes)
                .ok()
                .map(|s| s.seq);
            problem(kind, seq, detail(&fault))
        })?;
        if header.seq != self.seq + 1 {
            return Err(problem(
                ProblemKind::SeqGap,
                Some(header.seq),
                format!("expected seq {}, found {}", self.seq + 1, header.seq),
            ));
        }
        if header.prev != self.prev {
            return Err(problem(
                ProblemKind::BrokenLink,
                Some(header.seq),
                format!(
                    "prev is {} but the record before has hash {}",
                    header.prev, self.prev
                ),
            ));
        }
        if let Some(h) = self.expect.as_ref().filter(|h| h.seq == header.seq)
            && h.hash != header.hash
        {
            return Err(problem(
                ProblemKind::HeadMismatch,
                Some(header.seq),
                format!(
                    "the expected head has hash {}, the log {}",
                    h.hash, header.hash
                ),
            ));
        }
        self.seq = header.seq;
        self.prev.clear();
        self.prev.push_str(&header.hash);
        self.events += 1;
        self.last_line = line.number;
        self.last_offset = line.offset;
        if self.first_ts.is_none() {
            self.first_ts = Some(header.ts.to_string());
        }
        self.last_ts.clear();
        self.last_ts.push_str(&header.ts);
        Ok(header)
    }

    /// The last sound record's position so far; `None` before the first.
    pub fn head(&self) -> Option<Head> {
        (self.events > 0).then(|| Head {
            seq: self.seq,
            hash: self.prev.clone(),
        })
    }

    /// The head this verification expects the log to reach, if any.
    pub fn expected(&self) -> Option<&Head> {
        self.expect.as_ref()
    }

    /// The report after the last line, checking the expected head.
    pub fn finish(self, problem: Option<Problem>) -> Report {
        let problem = problem.or_else(|| {
            let h = self.expect.as_ref()?;
            (self.seq < h.seq).then(|| Problem {
                line: self.last_line,
                offset: self.last_offset,
                seq: Some(self.seq),
                kind: ProblemKind::ShorterThanHead,
                message: format!(
                    "the log ends at seq {} but the expected head is seq {}: records were removed from the tail",
                    self.seq, h.seq
                ),
            })
        });
        Report {
            ok: problem.is_none(),
            events: self.events,
            first_ts: self.first_ts,
            last_ts: (self.events > 0).then_some(self.last_ts),
            head: (self.events > 0).then_some(Head {
                seq: self.seq,
                hash: self.prev,
            }),
            problem,
        }
    }
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Verifies the whole log at `path`, streaming, in constant memory.
pub fn verify_file(path: &Path, sealer: &Sealer, expect: Option<Head>) -> io::Result<Report> {
    verify_lines(LineReader::open(path)?, sealer, expect)
}

/// Verifies the first `len` bytes, for a caller that holds the log's lock.
pub fn verify_until(
    path: &Path,
    len: u64,
    sealer: &Sealer,
    expect: Option<Head>,
) -> io::Result<Report> {
    verify_lines(LineReader::open_until(path, len)?, sealer, expect)
}

fn verify_lines(
    mut reader: LineReader,
    sealer: &Sealer,
    expect: Option<Head>,
) -> io::Result<Report> {
    let mut v = Verifier::new(sealer, expect);
    let mut problem = None;
    while let Some(line) = reader.next_line() {
        if let Err(p) = v.feed(&line?) {
            problem = Some(p);
            break;
        }
    }
    Ok(v.finish(problem))
}

/// The last record's position, read from the end of the file; `None` for
/// an empty log. The record's own seal is checked.
pub fn read_head(path: &Path, sealer: &Sealer) -> io::Result<Result<Option<Head>, String>> {
    let file = File::open(path)?;
    let len = committed_len(&file)?;
    let view = read_tail(&file, len, 1)?;
    let Some((offset, line)) = view.lines.last() else {
        return Ok(Ok(None));
    };
    Ok(match check_line(line, sealer) {
        Ok(h) => Ok(Some(Head {
            seq: h.seq,
            hash: h.hash.into_owned(),
        })),
        Err(f) => Err(format!(
            "the last record (byte {offset}) does not check: {}",
            describe(&f)
        )),
    })
}
