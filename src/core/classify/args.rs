//! Command-line arguments split into flags and positionals, the way the tool
//! itself would read them.
//!
//! Flags are found wherever they stand (`kubectl -n prod get pods` and
//! `kubectl get pods -n prod` are the same), in every spelling: `-n prod`,
//! `-nprod`, `--namespace prod`, `--namespace=prod`, and clusters such as
//! `-rf`. Which flags take a value comes from the tool's spec; a flag the spec
//! does not know is taken to stand alone.

use compact_str::{CompactString, format_compact};

use super::Set;

use super::shell::Word;

/// How a tool spells its flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSyntax<'a> {
    pub value_flags: &'a Set<String>,
    pub attached_value_flags: &'a Set<String>,
    pub single_dash_long: bool,
    pub plus_flags: bool,
    /// Options end at the first positional (POSIX `getopt` with `+`): a
    /// wrapper's own flags come before the command it runs.
    pub stop_at_positional: bool,
}

/// One argument after the program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A positional argument: the index into the argument words.
    Positional(usize),
    Flag {
        name: CompactString,
        value: Option<CompactString>,
        value_dynamic: bool,
    },
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ParsedArgs {
    pub items: Vec<Arg>,
    /// Index of the `--` word, if any. Everything after it is positional.
    pub double_dash: Option<usize>,
}

impl ParsedArgs {
    /// Positional word indices before `--`.
    pub fn positionals(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().filter_map(move |a| match a {
            Arg::Positional(i) if self.double_dash.is_none_or(|dd| *i < dd) => Some(*i),
            _ => None,
        })
    }

    /// Every positional word index, including those after `--`.
    pub fn all_positionals(&self) -> impl Iterator<Item = usize> + '_ {
        self.items.iter().filter_map(|a| match a {
            Arg::Positional(i) => Some(*i),
            Arg::Flag { .. } => None,
        })
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.flags().any(|(n, _, _)| n == name)
    }

    /// `(name, value, value_is_dynamic)` for every flag, in order.
    pub fn flags(&self) -> impl Iterator<Item = (&str, Option<&str>, bool)> {
        self.items.iter().filter_map(|a| match a {
            Arg::Flag {
                name,
                value,
                value_dynamic,
            } => Some((name.as_str(), value.as_deref(), *value_dynamic)),
            Arg::Positional(_) => None,
        })
    }

    /// The value of the last of these flags that is present.
    pub fn last_value_of<'s>(&'s self, names: &[String]) -> Option<(&'s str, bool)> {
        self.flags()
            .filter(|(n, v, _)| v.is_some() && names.iter().any(|x| x == n))
            .last()
            .and_then(|(_, v, d)| v.map(|v| (v, d)))
    }
}

/// Splits argument words into flags and positionals.
pub(crate) fn parse_args(words: &[Word], syntax: FlagSyntax<'_>) -> ParsedArgs {
    let mut out = ParsedArgs {
        items: Vec::with_capacity(words.len()),
        double_dash: None,
    };
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let t = w.text.as_str();
        if out.double_dash.is_some() {
            out.items.push(Arg::Positional(i));
            i += 1;
            continue;
        }
        if t == "--" && !w.dynamic {
            out.double_dash = Some(i);
            i += 1;
            continue;
        }
        let starts_flag = (t.starts_with('-') || (syntax.plus_flags && t.starts_with('+')))
            && t.len() > 1
            && !w.raw.starts_with(['$', '`']);
        if !starts_flag {
            out.items.push(Arg::Positional(i));
            if syntax.stop_at_positional {
                out.items.extend((i + 1..words.len()).map(Arg::Positional));
                break;
            }
            i += 1;
            continue;
        }
        let next = words.get(i + 1);
        if t.starts_with("--") || (syntax.single_dash_long && t.starts_with('-')) {
            i += push_named(&mut out, t, w.dynamic, next, syntax);
        } else {
            i += push_cluster(&mut out, t, w.dynamic, next, syntax);
        }
    }
    out
}

impl Arg {
    fn flag(
        name: impl Into<CompactString>,
        value: Option<CompactString>,
        value_dynamic: bool,
    ) -> Self {
        Arg::Flag {
            name: name.into(),
            value,
            value_dynamic,
        }
    }
}

/// The value of a value flag whose value is the next word, if there is one.
/// Returns the flag and the words consumed.
fn with_next_value(name: CompactString, next: Option<&Word>) -> (Arg, usize) {
    match next {
        Some(n) => (Arg::flag(name, Some(n.text.clone()), n.dynamic), 2),
        None => (Arg::flag(name, None, false), 1),
    }
}

/// `--name`, `--name=value`, `--name value`. Returns the words consumed.
fn push_named(
    out: &mut ParsedArgs,
    t: &str,
    dynamic: bool,
    next: Option<&Word>,
    syntax: FlagSyntax<'_>,
) -> usize {
    let (arg, used) = match t.split_once('=') {
        Some((name, value)) => (Arg::flag(name, Some(value.into()), dynamic), 1),
        None if syntax.value_flags.contains(t) => with_next_value(t.into(), next),
        None => (Arg::flag(t, None, false), 1),
    };
    out.items.push(arg);
    used
}

/// `-abc`, `-nprod`, `-n prod`, `-n=prod`. Returns the words consumed.
fn push_cluster(
    out: &mut ParsedArgs,
    t: &str,
    dynamic: bool,
    next: Option<&Word>,
    syntax: FlagSyntax<'_>,
) -> usize {
    let mut chars = t.char_indices();
    let sign = chars.next().map_or('-', |(_, c)| c);
    for (pos, c) in chars {
        let name = format_compact!("{sign}{c}");
        let rest = &t[pos + c.len_utf8()..];
        if syntax.value_flags.contains(name.as_str()) {
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            let (arg, used) = if rest.is_empty() {
                with_next_value(name, next)
            } else {
                (Arg::flag(name, Some(rest.into()), dynamic), 1)
            };
            out.items.push(arg);
            return used;
        }
        if syntax.attached_value_flags.contains(name.as_str()) {
            let value = (!rest.is_empty()).then(|| rest.into());
            out.items.push(Arg::flag(name, value, dynamic));
            return 1;
        }
        out.items.push(Arg::flag(name, None, false));
    }
    1
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    static NONE: LazyLock<Set<String>> = LazyLock::new(Set::default);
    static NAMESPACE: LazyLock<Set<String>> = LazyLock::new(|| {
        ["-n", "--namespace"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    });

    fn syntax(value_flags: &'static Set<String>) -> FlagSyntax<'static> {
        FlagSyntax {
            value_flags,
            attached_value_flags: &NONE,
            single_dash_long: false,
            plus_flags: false,
            stop_at_positional: false,
        }
    }

    fn words(s: &str) -> Vec<Word> {
        s.split_whitespace().map(Word::literal).collect()
    }

    fn flags_of(p: &ParsedArgs) -> Vec<(String, Option<String>)> {
        p.flags()
            .map(|(n, v, _)| (n.to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn value_flags_in_every_spelling() {
        for line in [
            "-n prod get pods",
            "get -nprod pods",
            "get pods --namespace prod",
            "get pods --namespace=prod",
            "get -n=prod pods",
        ] {
            let w = words(line);
            let p = parse_args(&w, syntax(&NAMESPACE));
            let ns = p.last_value_of(&["-n".into(), "--namespace".into()]);
            assert_eq!(ns.map(|v| v.0), Some("prod"), "{line}");
            let pos: Vec<_> = p.positionals().map(|i| w[i].text.as_str()).collect();
            assert_eq!(pos, ["get", "pods"], "{line}");
        }
    }

    #[test]
    fn clusters_split_and_double_dash_ends_flags() {
        let w = words("-rf /tmp -- -x");
        let p = parse_args(&w, syntax(&NONE));
        assert_eq!(
            flags_of(&p),
            [("-r".to_string(), None), ("-f".to_string(), None)]
        );
        assert_eq!(p.double_dash, Some(2));
        assert_eq!(p.positionals().count(), 1);
        assert_eq!(p.all_positionals().count(), 2);
    }

    #[test]
    fn single_dash_long_flags_stay_whole() {
        let s = FlagSyntax {
            single_dash_long: true,
            ..syntax(&NONE)
        };
        let p = parse_args(&words("apply -destroy -auto-approve"), s);
        assert!(p.has_flag("-destroy"));
        assert!(p.has_flag("-auto-approve"));
    }

    #[test]
    fn wrapper_options_end_at_the_first_positional() {
        let s = FlagSyntax {
            stop_at_positional: true,
            ..syntax(&NONE)
        };
        let p = parse_args(&words("-E bash -lc x"), s);
        assert_eq!(flags_of(&p), [("-E".to_string(), None)]);
        assert_eq!(p.all_positionals().count(), 3);
    }
}
