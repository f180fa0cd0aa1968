//! Wrappers: finding the command that `sudo`, `env`, `timeout`, `sh -c`,
//! `ssh`, `kubectl exec`, `find -exec` and the like actually run.
//!
//! Driven by the wrapper specs of the rule pack; this module only reads the
//! already split arguments and says where the inner command is. Rating it is
//! the classifier's job.

use super::args::ParsedArgs;
use super::inline::shell_quote;
use super::ruleset::Wrapper;
use super::schema::WrapperMode;
use super::shell::{SimpleCommand, Word, is_assignment};

/// What a wrapper runs.
pub(crate) enum Inner<'w> {
    Argv(&'w [Word]),
    /// A command line; with `fed`, the wrapper's standard input flows on to
    /// the line's commands (`ssh host psql <<EOF`).
    Line {
        text: String,
        dynamic: bool,
        fed: bool,
    },
    /// A script fed on standard input that cannot be read here.
    UnseenStdin,
}

pub(crate) fn inner_commands<'w>(
    w: &Wrapper,
    args: &'w [Word],
    parsed: &ParsedArgs,
    cmd: &SimpleCommand,
) -> Vec<Inner<'w>> {
    let spec = &w.spec;
    // `sudo -- cmd`: for a wrapper, what follows `--` is still the command.
    let mut positionals = parsed.all_positionals().peekable();
    if let Some(sub) = &spec.subcommand {
        match positionals.next() {
            Some(i) if !args[i].dynamic && args[i].text == *sub => {}
            _ => return Vec::new(),
        }
    }
    if spec.mode == WrapperMode::JsonCommands {
        return parsed
            .flags()
            .filter(|(name, _, _)| spec.string_flags.iter().any(|f| f == name))
            .filter_map(|(_, value, dynamic)| value.map(|v| (v, dynamic)))
            .flat_map(|(v, dynamic)| json_commands(v, dynamic))
            .collect();
    }
    // `at now <<< 'cmd'`: the script comes on standard input.
    if spec.stdin_script {
        return stdin_script(cmd);
    }
    // `su -c '…'`, `env -S '…'`, `flock -c '…'`: a flag carries a shell line.
    for (name, value, dynamic) in parsed.flags() {
        if spec.string_flags.iter().any(|f| f == name)
            && let Some(v) = value
        {
            return vec![Inner::Line {
                text: v.to_owned(),
                dynamic,
                fed: true,
            }];
        }
    }
    match spec.mode {
        // Handled above, before the string flags.
        WrapperMode::JsonCommands => Vec::new(),
        WrapperMode::ExecFlags => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < args.len() {
                if spec.exec_flags.iter().any(|f| *f == args[i].text) {
                    let begin = i + 1;
                    let mut end = begin;
                    while end < args.len() && !matches!(args[end].text.as_str(), ";" | "+") {
                        end += 1;
                    }
                    if end > begin {
                        out.push(Inner::Argv(&args[begin..end]));
                    }
                    i = end;
                }
                i += 1;
            }
            out
        }
        WrapperMode::ShellString => {
            let has_shell_flag = spec.shell_flag.as_ref().is_some_and(|f| parsed.has_flag(f));
            if has_shell_flag {
                return match positionals.next() {
                    Some(i) => vec![Inner::Line {
                        text: args[i].text.to_string(),
                        dynamic: args[i].dynamic,
                        fed: true,
                    }],
                    None => Vec::new(),
                };
            }
            // A shell reading a here-doc or here-string runs its text.
            if positionals.peek().is_none() {
                return stdin_script(cmd);
            }
            Vec::new()
        }
        WrapperMode::FirstPositionalShell => match positionals.next() {
            Some(i) => vec![Inner::Line {
                text: args[i].text.to_string(),
                dynamic: args[i].dynamic,
                fed: false,
            }],
            None => Vec::new(),
        },
        WrapperMode::Argv | WrapperMode::ShellWords => {
            let start = match (&spec.command_after, parsed.double_dash) {
                (Some(marker), Some(dd)) if marker == "--" => Some(dd + 1),
                _ => {
                    if spec.skip_assignments {
                        while positionals
                            .peek()
                            .is_some_and(|&i| is_assignment(&args[i].text))
                        {
                            positionals.next();
                        }
                    }
                    for _ in 0..spec.skip_positionals {
                        positionals.next();
                    }
                    positionals.next()
                }
            };
            // `ssh host -- cmd`: a `--` right before the command ends options.
            let start = start.map(|s| match args.get(s) {
                Some(w) if w.text == "--" && !w.dynamic => s + 1,
                _ => s,
            });
            let Some(start) = start.filter(|&s| s < args.len()) else {
                // `ssh host <<EOF`: with no command, the remote shell runs
                // what is fed on standard input.
                if spec.mode == WrapperMode::ShellWords && cmd.stdin_fed {
                    return stdin_script(cmd);
                }
                return Vec::new();
            };
            let words = &args[start..];
            if spec.mode == WrapperMode::Argv {
                vec![Inner::Argv(words)]
            } else {
                let text = words
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![Inner::Line {
                    text,
                    dynamic: words.iter().any(|w| w.dynamic),
                    fed: true,
                }]
            }
        }
    }
}

/// The command lines inside a JSON value: each `commands` entry is a shell
/// line; a `command` array with its `args` is one argument vector. A value
/// that is not JSON, or only known at run time, runs something unknown.
fn json_commands<'w>(value: &str, dynamic: bool) -> Vec<Inner<'w>> {
    let unknown = || {
        vec![Inner::Line {
            text: String::new(),
            dynamic: true,
            fed: false,
        }]
    };
    if dynamic {
        return unknown();
    }
    let body = value.strip_prefix("commands=").map_or(value, str::trim);
    let json: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        // `commands=uptime` (the CLI's shorthand): one command.
        Err(_) if value.starts_with("commands=") => {
            return vec![Inner::Line {
                text: body.trim_matches(['[', ']', '"']).to_owned(),
                dynamic: false,
                fed: false,
            }];
        }
        Err(_) => return unknown(),
    };
    let mut out = Vec::new();
    collect_json_commands(&json, &mut out);
    out
}

fn collect_json_commands<'w>(v: &serde_json::Value, out: &mut Vec<Inner<'w>>) {
    let strings = |a: &serde_json::Value| -> Vec<String> {
        a.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(shell_quote))
                    .collect()
            })
            .unwrap_or_default()
    };
    match v {
        serde_json::Value::Array(items) => {
            // A bare list of shell lines (`commands=[…]` after the prefix).
            for i in items {
                match i.as_str() {
                    Some(line) => out.push(Inner::Line {
                        text: line.to_owned(),
                        dynamic: false,
                        fed: false,
                    }),
                    None => collect_json_commands(i, out),
                }
            }
        }
        serde_json::Value::Object(map) => {
            if let Some(lines) = map.get("commands").and_then(|c| c.as_array()) {
                for line in lines.iter().filter_map(|l| l.as_str()) {
                    out.push(Inner::Line {
                        text: line.to_owned(),
                        dynamic: false,
                        fed: false,
                    });
                }
            }
            let mut argv = map.get("command").map(&strings).unwrap_or_default();
            argv.extend(map.get("args").map(&strings).unwrap_or_default());
            if !argv.is_empty() {
                out.push(Inner::Line {
                    text: argv.join(" "),
                    dynamic: false,
                    fed: false,
                });
            }
            for (k, child) in map {
                if !matches!(k.as_str(), "commands" | "command" | "args") {
                    collect_json_commands(child, out);
                }
            }
        }
        _ => {}
    }
}

/// What a shell runs when it reads its script from standard input: the
/// here-doc or here-string texts, or, when the input is a pipe or a file,
/// something this classifier cannot see.
fn stdin_script<'w>(cmd: &SimpleCommand) -> Vec<Inner<'w>> {
    if cmd.stdin_texts.is_empty() {
        if cmd.stdin_fed {
            return vec![Inner::UnseenStdin];
        }
        return Vec::new();
    }
    cmd.stdin_texts
        .iter()
        .map(|t| Inner::Line {
            text: t.clone(),
            dynamic: false,
            fed: false,
        })
        .collect()
}
