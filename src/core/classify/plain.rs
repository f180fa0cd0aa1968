//! The fast path of the shell parser: lines made of plain words, quoted
//! words and list operators only.
//!
//! Most command lines are plain: `kubectl get pods -n prod`, `grep -r ERROR
//! /var/log | tail -n 50`, `psql -c "SELECT 1" db`, `make && make install`.
//! For those the shell's tokens are the blank-separated words (quotes only
//! group: single quotes hold anything but a line break, double quotes
//! anything bash does not expand there) and the operators `|`, `||`, `&&`,
//! `;` and `&`, so the bash grammar, which costs several microseconds a
//! line, can be skipped. Anything else (expansions, escapes, redirections,
//! subshells, braces, comments, reserved words, line breaks, unclosed
//! quotes, empty or assignment-only commands, quoted assignments) returns
//! `None` and goes to the grammar. A property test in `shell.rs` checks
//! that the two agree on every line this path accepts.
//!
//! It also holds the lenient split used when the grammar rejects a line: no
//! answer is exact then, so it over-approximates what could run.

use compact_str::CompactString;

use super::shell::{SimpleCommand, Word, is_assignment};

/// Bytes that make a line more than plain words and list operators when
/// they stand outside quotes: expansions, redirections, subshells and
/// groups, comments, history and tilde expansion, escapes, line breaks.
const NOT_PLAIN: &[u8] = b"<>()$`\\#\n\r{}!~";

/// Bytes that end a plain line's fast path inside double quotes: what bash
/// still expands there (`$`, backquotes, `\\`, `!`), and line breaks.
const NOT_PLAIN_IN_DOUBLE: &[u8] = b"$`\\!\n\r";

/// A table indexed by byte: one load a byte instead of a search of a list.
const fn byte_table(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}

static NOT_PLAIN_BYTE: [bool; 256] = byte_table(NOT_PLAIN);
static NOT_PLAIN_IN_DOUBLE_BYTE: [bool; 256] = byte_table(NOT_PLAIN_IN_DOUBLE);

/// Words that mean something else at the start of a command.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
    "in", "function", "select", "time", "coproc", "[[", "]]",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A word as written; `quoted` when it has quotes to remove.
    Word { raw: &'a str, quoted: bool },
    /// `|`: the next command reads this one's output.
    Pipe,
    /// `||`, `&&`: the next command is required.
    AndOr,
    /// `;`, `&`: ends a command; may end the line.
    End,
}

/// The tokens of a plain line, or `None` when it is not plain. Single
/// quotes hold anything but a line break; double quotes anything bash does
/// not expand there. An unclosed quote is not plain.
fn tokens(line: &str) -> Option<Vec<Token<'_>>> {
    let bytes = line.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    let mut start: Option<usize> = None;
    let mut quoted = false;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                start.get_or_insert(i);
                quoted = true;
                let close = bytes[i + 1..].iter().position(|&c| {
                    c == b
                        || (b == b'"' && NOT_PLAIN_IN_DOUBLE_BYTE[usize::from(c)])
                        || matches!(c, b'\n' | b'\r')
                })?;
                if bytes[i + 1 + close] != b {
                    return None;
                }
                i += close + 2;
                continue;
            }
            b' ' | b'\t' | b'|' | b'&' | b';' => {}
            _ if NOT_PLAIN_BYTE[usize::from(b)] => return None,
            _ => {
                start.get_or_insert(i);
                i += 1;
                continue;
            }
        }
        if let Some(s) = start.take() {
            out.push(Token::Word {
                raw: &line[s..i],
                quoted: std::mem::take(&mut quoted),
            });
        }
        let next = bytes.get(i + 1).copied();
        let (token, len) = match (b, next) {
            (b' ' | b'\t', _) => {
                i += 1;
                continue;
            }
            (b'|', Some(b'|')) | (b'&', Some(b'&')) => (Token::AndOr, 2),
            // `|&` pipes stderr too, `;;` and `;&` belong to `case`.
            (b'|', Some(b'&')) | (b';', Some(b';' | b'&')) => return None,
            (b'|', _) => (Token::Pipe, 1),
            _ => (Token::End, 1),
        };
        out.push(token);
        i += len;
    }
    if let Some(s) = start {
        out.push(Token::Word {
            raw: &line[s..],
            quoted,
        });
    }
    Some(out)
}

/// What a plain word means once its quotes are removed (a plain word has
/// no escapes and no expansions, so quotes only group).
fn unquote(raw: &str) -> CompactString {
    let mut text = CompactString::with_capacity(raw.len());
    let mut quote: Option<char> = None;
    for c in raw.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => text.push(c),
        }
    }
    text
}

/// The simple commands of a plain line, in order, or `None` when the line
/// is not plain (the grammar then decides).
pub(crate) fn plain_list(line: &str) -> Option<Vec<SimpleCommand>> {
    let mut commands = Vec::new();
    let mut words: Vec<(&str, bool)> = Vec::new();
    let mut piped = false;
    // Whether the command being read must have words (after `|`, `&&`, `||`).
    let mut required = false;
    let toks = tokens(line)?;
    for (n, tok) in toks.iter().enumerate() {
        match *tok {
            Token::Word { raw, quoted } => words.push((raw, quoted)),
            Token::Pipe | Token::AndOr | Token::End => {
                commands.push(command(&words, piped)?);
                words.clear();
                piped = *tok == Token::Pipe;
                required = *tok != Token::End;
                // `a ; ; b` and `a & ; b` are syntax errors.
                if *tok == Token::End && matches!(toks.get(n + 1), Some(Token::End)) {
                    return None;
                }
            }
        }
    }
    if !words.is_empty() || required {
        commands.push(command(&words, piped)?);
    }
    (!commands.is_empty()).then_some(commands)
}

/// One simple command from its words. Leading `NAME=value` words are
/// assignments, not arguments; a command with none left (or none at all), or
/// starting with a reserved word, is not plain.
fn command(words: &[(&str, bool)], piped: bool) -> Option<SimpleCommand> {
    let assignments = words.iter().take_while(|(w, _)| is_assignment(w)).count();
    // A quoted assignment (`X='a b' cmd`) is left to the grammar.
    if words[..assignments].iter().any(|&(_, quoted)| quoted) {
        return None;
    }
    let env = words[..assignments]
        .iter()
        .filter_map(|(w, _)| w.split_once('='))
        .filter(|(n, _)| !n.contains('['))
        .map(|(n, v)| (n.trim_end_matches('+').to_owned(), v.to_owned()))
        .collect();
    let words = &words[assignments..];
    let &(first, _) = words.first()?;
    if RESERVED.contains(&first) {
        return None;
    }
    Some(SimpleCommand {
        words: words
            .iter()
            .map(|&(raw, quoted)| Word {
                text: if quoted { unquote(raw) } else { raw.into() },
                raw: raw.into(),
                dynamic: false,
            })
            .collect(),
        stdin_fed: piped,
        env,
        ..SimpleCommand::default()
    })
}

/// The commands a line that the grammar rejects plainly names, for rating
/// only. Quotes group words as the shell would (an unclosed quote runs to
/// the end of the line), backslashes escape, and every operator or bracket
/// ends a command. A word with a `$` or a backquote outside single quotes is
/// dynamic.
pub(crate) fn lenient_commands(line: &str) -> Vec<SimpleCommand> {
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word: Option<Word> = None;
    let mut chars = line.chars();
    let end_command = |words: &mut Vec<Word>, commands: &mut Vec<SimpleCommand>| {
        if !words.is_empty() {
            commands.push(SimpleCommand {
                words: std::mem::take(words),
                ..SimpleCommand::default()
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() || matches!(c, '<' | '>') => words.extend(word.take()),
            ';' | '|' | '&' | '(' | ')' | '`' | '{' | '}' => {
                words.extend(word.take());
                end_command(&mut words, &mut commands);
            }
            _ => {
                let w = word.get_or_insert_with(|| Word {
                    text: CompactString::default(),
                    raw: CompactString::default(),
                    dynamic: false,
                });
                w.raw.push(c);
                match c {
                    '\'' => {
                        for q in chars.by_ref() {
                            w.raw.push(q);
                            if q == '\'' {
                                break;
                            }
                            w.text.push(q);
                        }
                    }
                    '"' => {
                        while let Some(q) = chars.next() {
                            w.raw.push(q);
                            match q {
                                '"' => break,
                                '\\' => {
                                    if let Some(e) = chars.next() {
                                        w.raw.push(e);
                                        w.text.push(e);
                                    }
                                }
                                q => {
                                    w.dynamic |= matches!(q, '$' | '`');
                                    w.text.push(q);
                                }
                            }
                        }
                    }
                    '\\' => {
                        if let Some(e) = chars.next() {
                            w.raw.push(e);
                            w.text.push(e);
                        }
                    }
                    c => {
                        w.dynamic |= c == '$';
                        w.text.push(c);
                    }
                }
            }
        }
    }
    words.extend(word);
    end_command(&mut words, &mut commands);
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(line: &str) -> Option<Vec<(String, bool)>> {
        plain_list(line).map(|cmds| {
            cmds.into_iter()
                .map(|c| (c.words[0].text.to_string(), c.stdin_fed))
                .collect()
        })
    }

    #[test]
    fn plain_lines_split_into_commands() {
        let p = |s: &str| (s.to_string(), false);
        assert_eq!(
            programs("kubectl get pods -n prod"),
            Some(vec![p("kubectl")])
        );
        assert_eq!(
            programs("grep -r x /var/log | tail -n 5 && echo ok; ls &"),
            Some(vec![p("grep"), ("tail".into(), true), p("echo"), p("ls")])
        );
        assert_eq!(programs("X=1 make install"), Some(vec![p("make")]));
    }

    #[test]
    fn quotes_only_group_on_the_fast_path() {
        let cmds = plain_list(
            "psql -c \"SELECT 1; DROP TABLE t\" db | awk '{print $1}' && echo x'a b'\"c\" ''",
        );
        let words: Option<Vec<Vec<(&str, &str)>>> = cmds.as_ref().map(|cmds| {
            cmds.iter()
                .map(|c| {
                    c.words
                        .iter()
                        .map(|w| (w.text.as_str(), w.raw.as_str()))
                        .collect()
                })
                .collect()
        });
        assert_eq!(
            words,
            Some(vec![
                vec![
                    ("psql", "psql"),
                    ("-c", "-c"),
                    ("SELECT 1; DROP TABLE t", "\"SELECT 1; DROP TABLE t\""),
                    ("db", "db"),
                ],
                vec![("awk", "awk"), ("{print $1}", "'{print $1}'")],
                vec![("echo", "echo"), ("xa bc", "x'a b'\"c\""), ("", "''")],
            ])
        );
    }

    #[test]
    fn the_lenient_split_keeps_quoted_words_together() {
        let cmds = lenient_commands("sudo ( sh -c 'dd of=/dev/sda' ) ; kubectl delete ns prod 'x");
        let words: Vec<Vec<&str>> = cmds
            .iter()
            .map(|c| c.words.iter().map(|w| w.text.as_str()).collect())
            .collect();
        assert_eq!(
            words,
            [
                vec!["sudo"],
                vec!["sh", "-c", "dd of=/dev/sda"],
                vec!["kubectl", "delete", "ns", "prod", "x"],
            ]
        );
        let dynamic = lenient_commands("echo \"$X\" 'a$b' c\\ d");
        let flags: Vec<(&str, bool)> = dynamic[0]
            .words
            .iter()
            .map(|w| (w.text.as_str(), w.dynamic))
            .collect();
        assert_eq!(
            flags,
            [
                ("echo", false),
                ("$X", true),
                ("a$b", false),
                ("c d", false)
            ]
        );
    }

    #[test]
    fn anything_else_goes_to_the_grammar() {
        for line in [
            "echo \"$HOME\"",
            "echo \"a\\\\b\"",
            "echo 'unclosed",
            "echo \"unclosed",
            "echo 'a\nb'",
            "X='a b' make",
            "ls > out",
            "echo $HOME",
            "if true",
            "ls ~",
            "X=1",
            "  ",
            "ls # c",
            "{ ls; }",
            "a\nb",
            "| a",
            "a |",
            "a && ",
            "a ; ; b",
            "a |& b",
            "a ;; b",
            "(ls)",
        ] {
            assert!(plain_list(line).is_none(), "{line:?}");
        }
    }
}
