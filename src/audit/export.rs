//! Filters over records, and streaming export as JSON Lines or CSV.

use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use super::read::{LineReader, RecordView};

/// A point in time as the CLI accepts it: RFC 3339, a date (midnight UTC),
/// or an age such as `30d` or `12h` before `now`.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let age = humantime::parse_duration(s).map_err(|_| {
        format!("`{s}` is not a time: use RFC 3339 (2026-01-26T13:00:00Z), a date (2026-01-26) or an age (30d, 12h)")
    })?;
    let age = chrono::Duration::from_std(age).map_err(|_| format!("`{s}` is too long ago"))?;
    now.checked_sub_signed(age)
        .ok_or_else(|| format!("`{s}` is too long ago"))
}

/// Which records to keep; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub plan: Option<String>,
    pub run: Option<String>,
    pub kind: Option<String>,
    pub status: Option<String>,
    pub risk: Option<String>,
    pub approver: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &RecordView) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        if self.since.is_some() || self.until.is_some() {
            let Ok(ts) = DateTime::parse_from_rfc3339(&r.ts) else {
                return false;
            };
            if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts >= u) {
                return false;
            }
        }
        eq(&self.plan, r.plan_id.as_deref())
            && eq(&self.run, r.run_id.as_deref())
            && eq(&self.kind, Some(&r.kind))
            && eq(&self.status, r.status.as_deref())
            && eq(&self.risk, r.risk.as_deref())
            && eq(&self.approver, r.who())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

pub const CSV_COLUMNS: &[&str] = &[
    "seq",
    "ts",
    "type",
    "plan_id",
    "run_id",
    "step",
    "name",
    "action",
    "resource",
    "risk",
    "status",
    "approver",
    "channel",
    "user",
    "dry_run",
    "exit_code",
    "duration_seconds",
    "reason",
    "plan_hash",
    "hash",
];

fn csv_row(r: &RecordView) -> [String; 20] {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let n = |o: Option<String>| o.unwrap_or_default();
    [
        r.seq.to_string(),
        r.ts.clone(),
        r.kind.clone(),
        s(&r.plan_id),
        s(&r.run_id),
        n(r.step.map(|v| v.to_string())),
        s(&r.name),
        s(&r.action),
        s(&r.resource),
        s(&r.risk),
        s(&r.status),
        s(&r.approver),
        s(&r.channel),
        s(&r.user),
        n(r.dry_run.map(|v| v.to_string())),
        n(r.exit_code.map(|v| v.to_string())),
        n(r.duration_seconds.map(|v| v.to_string())),
        s(&r.reason),
        s(&r.plan_hash),
        r.hash.clone(),
    ]
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        match e.into_kind() {
            csv::ErrorKind::Io(e) => ExportError::Io(e),
            other => ExportError::Io(io::Error::other(format!("{other:?}"))),
        }
    }
}

/// Calls `each` with every record of the log at `path` that matches, with
/// its line, streaming in constant memory. A torn tail is skipped (it was
/// never acknowledged); a line that is not a record stops the scan with its
/// line number. Returns the count of matches.
pub fn for_each_match(
    path: &Path,
    filter: &Filter,
    mut each: impl FnMut(&[u8], &RecordView) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let mut reader = LineReader::open(path)?;
    let mut count = 0;
    while let Some(line) = reader.next_line() {
        let line = line?;
        if !line.complete {
            break;
        }
        let view = RecordView::parse(line.bytes).map_err(|e| ExportError::Line {
            line: line.number,
            message: format!("not an audit record: {e}"),
        })?;
        if filter.matches(&view) {
            count += 1;
            each(line.bytes, &view)?;
        }
    }
    Ok(count)
}

/// Streams the matching records to `out`. JSON Lines are the records' own
/// lines, byte for byte; CSV has a header row and RFC 4180 quoting.
pub fn export(
    path: &Path,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    match format {
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .buffer_capacity(64 * 1024)
                .terminator(csv::Terminator::CRLF)
                .from_writer(out);
            w.write_record(CSV_COLUMNS)?;
            let n = for_each_match(path, filter, |_, view| Ok(w.write_record(csv_row(view))?))?;
            w.flush()?;
            Ok(n)
        }
        Format::Jsonl => {
            let mut w = io::BufWriter::with_capacity(64 * 1024, out);
            let n = for_each_match(path, filter, |line, _| {
                w.write_all(line)?;
                Ok(w.write_all(b"\n")?)
            })?;
            w.flush()?;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_three_ways() {
        let now = DateTime::parse_from_rfc3339("2026-01-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time("2026-01-25", now).unwrap().to_rfc3339(),
            "2026-01-25T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("12h", now).unwrap().to_rfc3339(),
            "2026-01-26T00:00:00+00:00"
        );
        assert_eq!(parse_time("2026-01-26T13:00:00+01:00", now).unwrap(), now);
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("yesterday")
        );
    }
}
