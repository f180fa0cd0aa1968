//! The fast path of the shell parser: lines made of plain words and list
//! operators only.
//!
//! Most command lines are plain: `kubectl get pods -n prod`, `grep -r ERROR
//! /var/log | tail -n 50`, `make && make install`. For those the shell's
//! tokens are the blank-separated words and the operators `|`, `||`, `&&`,
//! `;` and `&`, so the bash grammar, which costs several microseconds a
//! line, can be skipped. Anything else (quotes, expansions, redirections,
//! subshells, braces, comments, reserved words, line breaks, empty or
//! assignment-only commands) returns `None` and goes to the grammar. A
//! property test in `shell.rs` checks that the two agree on every line this
//! path accepts.

use super::shell::{SimpleCommand, Word, is_assignment};

/// Bytes that make a line more than plain words and list operators: quoting,
/// expansions, redirections, subshells and groups, comments, history and
/// tilde expansion, line breaks.
const NOT_PLAIN: &[u8] = b"<>()$`\\\"'#\n\r{}!~";

/// Words that mean something else at the start of a command.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
    "in", "function", "select", "time", "coproc", "[[", "]]",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    /// `|`: the next command reads this one's output.
    Pipe,
    /// `||`, `&&`: the next command is required.
    AndOr,
    /// `;`, `&`: ends a command; may end the line.
    End,
}

fn tokens(line: &str) -> Option<Vec<Token<'_>>> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if !matches!(b, b' ' | b'\t' | b'|' | b'&' | b';') {
            start.get_or_insert(i);
            i += 1;
            continue;
        }
        if let Some(s) = start.take() {
            out.push(Token::Word(&line[s..i]));
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
        out.push(Token::Word(&line[s..]));
    }
    Some(out)
}

/// The simple commands of a plain line, in order, or `None` when the line
/// is not plain (the grammar then decides).
pub(crate) fn plain_list(line: &str) -> Option<Vec<SimpleCommand>> {
    if line.bytes().any(|b| NOT_PLAIN.contains(&b)) {
        return None;
    }
    let mut commands = Vec::new();
    let mut words: Vec<&str> = Vec::new();
    let mut piped = false;
    // Whether the command being read must have words (after `|`, `&&`, `||`).
    let mut required = false;
    let toks = tokens(line)?;
    for (n, tok) in toks.iter().enumerate() {
        match tok {
            Token::Word(w) => words.push(w),
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
fn command(words: &[&str], piped: bool) -> Option<SimpleCommand> {
    let words: Vec<&str> = words
        .iter()
        .copied()
        .skip_while(|w| is_assignment(w))
        .collect();
    let first = words.first()?;
    if RESERVED.contains(first) {
        return None;
    }
    Some(SimpleCommand {
        words: words
            .into_iter()
            .map(|w| Word {
                text: w.to_owned(),
                raw: w.to_owned(),
                dynamic: false,
            })
            .collect(),
        stdin_fed: piped,
        ..SimpleCommand::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(line: &str) -> Option<Vec<(String, bool)>> {
        plain_list(line).map(|cmds| {
            cmds.into_iter()
                .map(|c| (c.words[0].text.clone(), c.stdin_fed))
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
    fn anything_else_goes_to_the_grammar() {
        for line in [
            "echo 'x'",
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
