//! Wrappers: finding the command that `sudo`, `env`, `timeout`, `sh -c`,
//! `ssh`, `kubectl exec`, `find -exec` and the like actually run.
//!
//! Driven by the wrapper specs of the rule pack; this module only reads the
//! already split arguments and says where the inner command is. Rating it is
//! the classifier's job.

use super::args::ParsedArgs;
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
            Some(i) if !args[i].dynamic && &args[i].text == sub => {}
            _ => return Vec::new(),
        }
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
        WrapperMode::ExecFlags => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < args.len() {
                if spec.exec_flags.iter().any(|f| f == &args[i].text) {
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
                        text: args[i].text.clone(),
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
                text: args[i].text.clone(),
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
