//! YAML reading with positions: every error names the file, line and column.
//!
//! Plans and policies are YAML read through `serde-saphyr`, which reports the
//! location of unknown keys, wrong types and values rejected by a type's own
//! `Deserialize` (a bad duration, regex or risk level).

use std::fmt;

use serde::de::DeserializeOwned;

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    pub fn from_location(loc: &serde_saphyr::Location) -> Self {
        Position {
            line: loc.line(),
            column: loc.column(),
        }
    }
}

/// A problem found in a file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub position: Position,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.position.line, self.position.column, self.message
        )
    }
}

impl std::error::Error for FileError {}

/// Whether a YAML text holds no document at all (only blank lines, comments
/// or a bare `---`).
pub fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Deserializes one YAML document, turning any error into a `FileError`.
pub fn from_str<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, FileError> {
    if is_blank(text) {
        return Err(FileError {
            file: file.to_owned(),
            position: Position { line: 1, column: 1 },
            message: "the file is empty".into(),
        });
    }
    serde_saphyr::from_str::<T>(text).map_err(|e| to_file_error(file, &e))
}

pub fn to_file_error(file: &str, e: &serde_saphyr::Error) -> FileError {
    let position = e
        .location()
        .map(|l| Position::from_location(&l))
        .unwrap_or(Position { line: 1, column: 1 });
    FileError {
        file: file.to_owned(),
        position,
        message: bare_message(&e.without_snippet().to_string()),
    }
}

/// serde-saphyr appends " at line L, column C" to its messages; the position
/// is printed in front instead, so drop it, and keep the message on one line.
fn bare_message(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    let trimmed = match first.rfind(" at line ") {
        Some(i) if first[i..].contains(", column ") => &first[..i],
        _ => first,
    };
    let trimmed = trimmed.strip_prefix("error: ").unwrap_or(trimmed);
    // Say what was expected in the words of the file, not of the parser.
    match trimmed {
        "expected sequence start" => "expected a list here".to_owned(),
        "expected mapping start" => "expected a mapping (`key: value`) here".to_owned(),
        t if t.starts_with("invalid u") || t.starts_with("invalid i") => {
            "expected a whole number here".to_owned()
        }
        t => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the error matters here")]
    struct T {
        a: u32,
    }

    #[test]
    fn unknown_keys_are_located() {
        let e = from_str::<T>("x.yaml", "a: 1\nb: 2\n").unwrap_err();
        assert_eq!(e.position, Position { line: 2, column: 1 });
        assert!(
            e.to_string().starts_with("x.yaml:2:1: unknown field `b`"),
            "{e}"
        );
    }

    #[test]
    fn blank_files_are_reported_as_empty() {
        let e = from_str::<T>("x.yaml", "# nothing\n\n").unwrap_err();
        assert_eq!(e.to_string(), "x.yaml:1:1: the file is empty");
    }
}
