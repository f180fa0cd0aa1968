//! How each byte of a shell command line is quoted: unquoted, inside single
//! quotes (literal), inside double quotes (expansions still run), or in a
//! here-doc body (literal when its delimiter was quoted).
//!
//! This is a lexer, not a parser: it answers one question for the audit
//! log's redaction, "does this masked text stay inside one value, or does it
//! cover shell syntax that runs?", and errs towards "it covers syntax" (an
//! unterminated quote makes the rest of the line unquoted).

/// How one byte is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// Shell syntax: words, operators, expansions.
    Unquoted,
    /// Inside `'…'` or a here-doc whose delimiter is quoted: literal text.
    Literal,
    /// Inside `"…"`, or a here-doc with a bare delimiter: `$…` and `` `…` ``
    /// still expand.
    Expanding,
}

/// The quoting of every byte of `line`.
pub fn quoting(line: &str) -> Vec<Quoting> {
    let b = line.as_bytes();
    let mut out = vec![Quoting::Unquoted; b.len()];
    // Here-docs opened on the current line: (delimiter, body is literal).
    let mut pending: Vec<(String, bool)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                // An escaped byte is part of a word, not syntax.
                out[i + 1] = Quoting::Literal;
                i += 2;
            }
            b'\'' => match find(b, i + 1, |c| c == b'\'') {
                Some(end) => {
                    fill(&mut out, i + 1, end, Quoting::Literal);
                    i = end + 1;
                }
                // Unterminated: treated as syntax, the cautious reading.
                None => i += 1,
            },
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                if j < b.len() {
                    fill(&mut out, i + 1, j, Quoting::Expanding);
                    i = j + 1;
                } else {
                    i += 1;
                }
            }
            b'<' if b.get(i + 1) == Some(&b'<') && b.get(i + 2) != Some(&b'<') => {
                let (delim, quoted, next) = here_doc_delimiter(b, i + 2);
                if !delim.is_empty() {
                    pending.push((delim, quoted));
                }
                i = next;
            }
            b'\n' if !pending.is_empty() => {
                i += 1;
                for (delim, literal) in std::mem::take(&mut pending) {
                    i = here_doc_body(b, i, &delim, literal, &mut out);
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn fill(out: &mut [Quoting], from: usize, to: usize, q: Quoting) {
    if let Some(s) = out.get_mut(from..to.min(out.len())) {
        s.fill(q);
    }
}

fn find(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|c| pred(*c))
        .map(|p| from + p)
}

/// After `<<` (at `at`): the delimiter word, whether it was quoted (then
/// the body is literal), and where scanning goes on.
fn here_doc_delimiter(b: &[u8], mut at: usize) -> (String, bool, usize) {
    if b.get(at) == Some(&b'-') {
        at += 1;
    }
    while b.get(at).is_some_and(|c| *c == b' ' || *c == b'\t') {
        at += 1;
    }
    let mut delim = String::new();
    let mut quoted = false;
    while let Some(&c) = b.get(at) {
        match c {
            b'\'' | b'"' => {
                quoted = true;
                let end = find(b, at + 1, |x| x == c).unwrap_or(b.len());
                delim.push_str(&String::from_utf8_lossy(&b[at + 1..end]));
                at = end + 1;
            }
            b'\\' => {
                quoted = true;
                at += 1;
            }
            c if c.is_ascii_whitespace() || b";&|<>()".contains(&c) => break,
            c => {
                delim.push(char::from(c));
                at += 1;
            }
        }
    }
    (delim, quoted, at)
}

/// Marks a here-doc body starting at `at`, up to and including its
/// delimiter line; returns where the line after it starts.
fn here_doc_body(
    b: &[u8],
    mut at: usize,
    delim: &str,
    literal: bool,
    out: &mut [Quoting],
) -> usize {
    let q = if literal {
        Quoting::Literal
    } else {
        Quoting::Expanding
    };
    while at < b.len() {
        let end = find(b, at, |c| c == b'\n').unwrap_or(b.len());
        let text = String::from_utf8_lossy(&b[at..end]);
        let next = (end + 1).min(b.len());
        if text.trim_start_matches('\t') == delim {
            return next;
        }
        // A body line and its newline are the here-doc's text.
        fill(out, at, next, q);
        at = next;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(line: &str) -> String {
        quoting(line)
            .iter()
            .map(|q| match q {
                Quoting::Unquoted => 'u',
                Quoting::Literal => 'l',
                Quoting::Expanding => 'e',
            })
            .collect()
    }

    #[test]
    fn quotes_and_here_docs() {
        assert_eq!(classes("a 'b c' \"d\""), "uuullluuueu");
        assert_eq!(classes("a\\ b"), "uulu");
        let line = "cat <<EOF\nx $y\nEOF\nrm";
        let c = classes(line);
        assert_eq!(&c[10..14], "eeee", "{c}");
        assert_eq!(&c[c.len() - 2..], "uu", "{c}");
        let line = "cat <<'EOF'\nx $y\nEOF\nrm";
        let c = classes(line);
        assert_eq!(&c[12..16], "llll", "{c}");
        assert_eq!(&c[c.len() - 2..], "uu", "{c}");
        assert_eq!(classes("echo 'open"), "uuuuuuuuuu", "unterminated: syntax");
    }
}
