//! Command-line arguments split into flags and positionals, the way the tool
//! itself would read them.
//!
//! Flags are found wherever they stand (`kubectl -n prod get pods` and
//! `kubectl get pods -n prod` are the same), in every spelling: `-n prod`,
//! `-nprod`, `--namespace prod`, `--namespace=prod`, and clusters such as
//! `-rf`. Which flags take a value comes from the tool's spec; a flag the spec
//! does not know is taken to stand alone.

use std::collections::HashSet;

use super::shell::Word;

/// How a tool spells its flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlagSyntax<'a> {
    pub value_flags: &'a HashSet<String>,
    pub attached_value_flags: &'a HashSet<String>,
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
        name: String,
        value: Option<String>,
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
    let mut out = ParsedArgs::default();
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

/// `--name`, `--name=value`, `--name value`. Returns the words consumed.
fn push_named(
    out: &mut ParsedArgs,
    t: &str,
    dynamic: bool,
    next: Option<&Word>,
    syntax: FlagSyntax<'_>,
) -> usize {
    if let Some((name, value)) = t.split_once('=') {
        out.items.push(Arg::Flag {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            value_dynamic: dynamic,
        });
        return 1;
    }
    if syntax.value_flags.contains(t)
        && let Some(n) = next
    {
        out.items.push(Arg::Flag {
            name: t.to_owned(),
            value: Some(n.text.clone()),
            value_dynamic: n.dynamic,
        });
        return 2;
    }
    out.items.push(Arg::Flag {
        name: t.to_owned(),
        value: None,
        value_dynamic: false,
    });
    1
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
        let name = format!("{sign}{c}");
        let rest = &t[pos + c.len_utf8()..];
        if syntax.value_flags.contains(&name) {
            let rest = rest.strip_prefix('=').unwrap_or(rest);
            if !rest.is_empty() {
                out.items.push(Arg::Flag {
                    name,
                    value: Some(rest.to_owned()),
                    value_dynamic: dynamic,
                });
                return 1;
            }
            if let Some(n) = next {
                out.items.push(Arg::Flag {
                    name,
                    value: Some(n.text.clone()),
                    value_dynamic: n.dynamic,
                });
                return 2;
            }
            out.items.push(Arg::Flag {
                name,
                value: None,
                value_dynamic: false,
            });
            return 1;
        }
        if syntax.attached_value_flags.contains(&name) {
            out.items.push(Arg::Flag {
                name,
                value: (!rest.is_empty()).then(|| rest.to_owned()),
                value_dynamic: dynamic,
            });
            return 1;
        }
        out.items.push(Arg::Flag {
            name,
            value: None,
            value_dynamic: false,
        });
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Word> {
        s.split_whitespace().map(Word::literal).collect()
    }

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn flags_of(p: &ParsedArgs) -> Vec<(String, Option<String>)> {
        p.flags()
            .map(|(n, v, _)| (n.to_owned(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn value_flags_in_every_spelling() {
        let vf = set(&["-n", "--namespace"]);
        let none = HashSet::new();
        let syntax = FlagSyntax {
            value_flags: &vf,
            attached_value_flags: &none,
            single_dash_long: false,
            plus_flags: false,
            stop_at_positional: false,
        };
        for line in [
            "-n prod get pods",
            "get -nprod pods",
            "get pods --namespace prod",
            "get pods --namespace=prod",
            "get -n=prod pods",
        ] {
            let w = words(line);
            let p = parse_args(&w, syntax);
            assert_eq!(
                p.last_value_of(&["-n".into(), "--namespace".into()])
                    .map(|v| v.0),
                Some("prod"),
                "{line}"
            );
            let pos: Vec<_> = p.positionals().map(|i| w[i].text.as_str()).collect();
            assert_eq!(pos, ["get", "pods"], "{line}");
        }
    }

    #[test]
    fn clusters_split_and_double_dash_ends_flags() {
        let none = HashSet::new();
        let syntax = FlagSyntax {
            value_flags: &none,
            attached_value_flags: &none,
            single_dash_long: false,
            plus_flags: false,
            stop_at_positional: false,
        };
        let w = words("-rf /tmp -- -x");
        let p = parse_args(&w, syntax);
        assert_eq!(
            flags_of(&p),
            [("-r".to_string(), None), ("-f".to_string(), None)]
        );
        assert_eq!(p.double_dash, Some(2));
        assert_eq!(p.positionals().count(), 1);
    }

    #[test]
    fn single_dash_long_flags_stay_whole() {
        let none = HashSet::new();
        let syntax = FlagSyntax {
            value_flags: &none,
            attached_value_flags: &none,
            single_dash_long: true,
            plus_flags: false,
            stop_at_positional: false,
        };
        let p = parse_args(&words("apply -destroy -auto-approve"), syntax);
        assert!(p.has_flag("-destroy"));
        assert!(p.has_flag("-auto-approve"));
    }
}
