//! Inline scripts: the code of `python -c`, `perl -e`, `ruby -e`, `node -e`,
//! `php -r` and awk programs, read for what they make happen.
//!
//! A one-line script is a command line in another language. It is not
//! parsed; it is searched for the calls that matter: a process spawn
//! (`os.system("…")`, `system(…)`, backticks, `child_process.execSync`), a
//! removal (`shutil.rmtree`, `unlink`, `FileUtils.rm_rf`), a file write, and
//! what hides code from a reader (`eval`, `exec`, `__import__`, base64). The
//! classifier rates a spawned command line with a literal argument as a
//! shell line, and a removal of a literal path as `rm`; anything it cannot
//! read is HIGH (fail closed). A script with none of these is LOW: it
//! computes and prints.
//!
//! Pure: no I/O.
//!
//! About 590 lines of code, then its unit tests.

/// What a call in a script does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Runs its first argument as a shell command line.
    Shell,
    /// Runs its first argument as an argument vector (`["rm", "-rf", x]`)
    /// or as a shell line when it is a string.
    Argv,
    /// Removes its first argument recursively.
    RemoveTree,
    /// Removes its first argument.
    RemoveFile,
    /// Writes a file.
    Write,
    /// Runs code this reader cannot see.
    Opaque,
}

/// One finding in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub effect: Effect,
    /// The call as written (`os.system`).
    pub call: &'static str,
    /// The literal argument, when the call's first argument is one.
    pub literal: Option<String>,
}

/// The code of an inline script, and its language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    pub language: Language,
    pub code: String,
    /// The code is only known at run time.
    pub dynamic: bool,
    /// `perl -i`, `ruby -i`: the script edits files in place.
    pub in_place: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Python,
    Perl,
    Ruby,
    Node,
    Php,
    Awk,
}

impl Language {
    pub(crate) fn of(program: &str) -> Option<Language> {
        let p = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        Some(match p {
            "python" | "pypy" => Language::Python,
            "perl" => Language::Perl,
            "ruby" => Language::Ruby,
            "node" | "nodejs" | "deno" | "bun" => Language::Node,
            "php" => Language::Php,
            "awk" | "gawk" | "mawk" | "nawk" | "busybox awk" => Language::Awk,
            _ => return None,
        })
    }

    /// The calls that matter, by language. A call matches where the name
    /// is not preceded by a letter, digit or `_`.
    fn calls(self) -> &'static [(&'static str, Effect)] {
        use Effect::*;
        match self {
            Language::Python => &[
                ("os.system", Shell),
                ("os.popen", Shell),
                ("subprocess.getoutput", Shell),
                ("subprocess.getstatusoutput", Shell),
                ("subprocess.run", Argv),
                ("subprocess.call", Argv),
                ("subprocess.check_call", Argv),
                ("subprocess.check_output", Argv),
                ("subprocess.Popen", Argv),
                ("system", Shell),
                ("popen", Shell),
                ("os.exec", Opaque),
                ("os.spawn", Opaque),
                ("os.posix_spawn", Opaque),
                ("pty.spawn", Argv),
                ("shutil.rmtree", RemoveTree),
                ("rmtree", RemoveTree),
                ("shutil.move", Write),
                ("shutil.copy", Write),
                ("os.remove", RemoveFile),
                ("os.unlink", RemoveFile),
                ("os.rmdir", RemoveFile),
                ("os.removedirs", RemoveFile),
                (".unlink", RemoveFile),
                (".rmdir", RemoveFile),
                ("os.truncate", RemoveFile),
                ("os.kill", Opaque),
                ("os.chmod", Write),
                ("os.rename", Write),
                (".write_text", Write),
                (".write_bytes", Write),
                ("exec", Opaque),
                ("eval", Opaque),
                ("compile", Opaque),
                ("__import__", Opaque),
                ("importlib", Opaque),
                ("getattr", Opaque),
                ("ctypes", Opaque),
                ("marshal", Opaque),
                ("pickle.loads", Opaque),
                ("requests.delete", Opaque),
                ("requests.post", Write),
                ("requests.put", Write),
            ],
            Language::Perl => &[
                ("system", Shell),
                ("exec", Shell),
                ("qx", Opaque),
                ("readpipe", Shell),
                ("unlink", RemoveFile),
                ("rmdir", RemoveFile),
                ("rmtree", RemoveTree),
                ("remove_tree", RemoveTree),
                ("truncate", RemoveFile),
                ("kill", Opaque),
                ("eval", Opaque),
                ("do", Opaque),
                ("require", Opaque),
                ("chmod", Write),
                ("chown", Write),
                ("rename", Write),
                ("syscall", Opaque),
            ],
            Language::Ruby => &[
                ("system", Shell),
                ("exec", Shell),
                ("spawn", Shell),
                ("IO.popen", Shell),
                ("Open3.", Opaque),
                ("%x", Opaque),
                ("FileUtils.rm_rf", RemoveTree),
                ("FileUtils.rm_r", RemoveTree),
                ("FileUtils.remove_dir", RemoveTree),
                ("FileUtils.remove_entry", RemoveTree),
                ("FileUtils.rm", RemoveFile),
                ("File.delete", RemoveFile),
                ("File.unlink", RemoveFile),
                ("Dir.rmdir", RemoveFile),
                ("Dir.delete", RemoveFile),
                ("File.write", Write),
                ("File.truncate", RemoveFile),
                ("FileUtils.mv", Write),
                ("Process.kill", Opaque),
                ("eval", Opaque),
                ("instance_eval", Opaque),
                ("send", Opaque),
            ],
            Language::Node => &[
                ("execSync", Shell),
                ("exec", Shell),
                ("execFileSync", Argv),
                ("execFile", Argv),
                ("spawnSync", Argv),
                ("spawn", Argv),
                ("fork", Opaque),
                ("rmSync", RemoveTree),
                ("rmdirSync", RemoveTree),
                ("rimraf", RemoveTree),
                ("fs.rm", RemoveTree),
                ("rmdir", RemoveTree),
                ("unlinkSync", RemoveFile),
                ("unlink", RemoveFile),
                ("truncateSync", RemoveFile),
                ("writeFileSync", Write),
                ("writeFile", Write),
                ("appendFileSync", Write),
                ("renameSync", Write),
                ("process.kill", Opaque),
                ("eval", Opaque),
                ("Function", Opaque),
                ("import(", Opaque),
                ("vm.", Opaque),
            ],
            Language::Php => &[
                ("shell_exec", Shell),
                ("system", Shell),
                ("exec", Shell),
                ("passthru", Shell),
                ("popen", Shell),
                ("proc_open", Shell),
                ("pcntl_exec", Opaque),
                ("unlink", RemoveFile),
                ("rmdir", RemoveFile),
                ("file_put_contents", Write),
                ("fwrite", Write),
                ("rename", Write),
                ("eval", Opaque),
                ("assert", Opaque),
                ("create_function", Opaque),
                ("include", Opaque),
                ("require", Opaque),
                ("posix_kill", Opaque),
            ],
            Language::Awk => &[("system", Shell)],
        }
    }
}

/// Finds the inline script of a command: `python3 -c CODE`, `perl -ne
/// CODE`, `node --eval CODE`, `php -r CODE`, an awk program. `None` when
/// the program is not an interpreter or runs a script file instead.
pub(crate) fn script(language: Language, args: &[(String, bool)]) -> Option<Script> {
    let mut in_place = false;
    let mut i = 0;
    while i < args.len() {
        let (w, dynamic) = (&args[i].0, args[i].1);
        let next = args.get(i + 1);
        let take = |n: Option<&(String, bool)>| {
            n.map(|(code, d)| Script {
                language,
                code: code.clone(),
                dynamic: *d,
                in_place: false,
            })
        };
        match language {
            Language::Awk => {
                // `-F SEP`, `-v X=1`, `-f FILE` take a value; the first
                // other word is the program.
                if w == "-f"
                    || w == "--file"
                    || w.starts_with("-f") && w.len() > 2 && !w.starts_with("-F")
                {
                    return Some(Script {
                        language,
                        code: String::new(),
                        dynamic: true,
                        in_place: false,
                    });
                }
                if matches!(w.as_str(), "-F" | "-v" | "--assign" | "--field-separator") {
                    i += 2;
                    continue;
                }
                if w == "--" {
                    return take(next);
                }
                if w.starts_with('-') && w.len() > 1 {
                    i += 1;
                    continue;
                }
                return Some(Script {
                    language,
                    code: w.clone(),
                    dynamic,
                    in_place: false,
                });
            }
            Language::Python => {
                if w == "-c" {
                    return take(next);
                }
                if let Some(code) = w.strip_prefix("-c").filter(|c| !c.is_empty()) {
                    return Some(Script {
                        language,
                        code: code.to_owned(),
                        dynamic,
                        in_place: false,
                    });
                }
                if !w.starts_with('-') || w == "-" || w == "-m" {
                    // A script file, a module, or standard input.
                    return None;
                }
            }
            Language::Node => {
                if matches!(w.as_str(), "-e" | "--eval" | "-p" | "--print") {
                    return take(next);
                }
                if !w.starts_with('-') {
                    return None;
                }
            }
            Language::Php => {
                if w == "-r" {
                    return take(next);
                }
                if !w.starts_with('-') {
                    return None;
                }
            }
            Language::Perl | Language::Ruby => {
                if let Some(cluster) = w.strip_prefix('-').filter(|c| !c.starts_with('-')) {
                    if cluster.contains('i') {
                        in_place = true;
                    }
                    if let Some(pos) = cluster.find(['e', 'E']) {
                        let rest = &cluster[pos + 1..];
                        let mut s = if rest.is_empty() {
                            take(next)?
                        } else {
                            Script {
                                language,
                                code: rest.to_owned(),
                                dynamic,
                                in_place: false,
                            }
                        };
                        s.in_place = in_place;
                        return Some(s);
                    }
                } else if !w.starts_with('-') {
                    return None;
                }
            }
        }
        i += 1;
    }
    None
}

/// The calls in a script that matter, in order of appearance.
pub(crate) fn findings(language: Language, code: &str) -> Vec<Finding> {
    let mut out: Vec<(usize, Finding)> = Vec::new();
    let masked = mask_strings(language, code);
    for &(call, effect) in language.calls() {
        let mut from = 0;
        while let Some(pos) = masked[from..].find(call).map(|p| p + from) {
            from = pos + call.len();
            let before = masked[..pos].chars().next_back();
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
            if call.chars().next().is_some_and(ident) && before.is_some_and(ident) {
                continue;
            }
            let after = &masked[from..];
            // A call name must be called (or, for a module name, used).
            let called = after.trim_start().starts_with('(')
                || call.ends_with('.')
                || call.ends_with('(')
                || matches!(call, "ctypes" | "marshal" | "importlib")
                || language != Language::Python
                    && language != Language::Node
                    && after.starts_with([' ', '"', '\''])
                || matches!(call, "qx" | "%x") && after.starts_with(['{', '(', '/', '|', '[', '!'])
                || language == Language::Ruby
                    && matches!(call, "system" | "exec" | "spawn" | "eval");
            if !called {
                continue;
            }
            if out
                .iter()
                .any(|(p, f)| *p <= pos && pos < *p + f.call.len())
            {
                continue;
            }
            out.push((
                pos,
                Finding {
                    effect,
                    call,
                    literal: first_literal(&code[from..]),
                },
            ));
        }
    }
    // Backticks run a shell line in Perl, Ruby and PHP.
    if matches!(language, Language::Perl | Language::Ruby | Language::Php)
        && let Some(start) = code.find('`')
    {
        let lit = code[start + 1..].split('`').next().map(str::to_owned);
        out.push((
            start,
            Finding {
                effect: Effect::Shell,
                call: "`…`",
                literal: lit.filter(|l| !l.contains("${") && !l.contains("#{") && !l.contains('$')),
            },
        ));
    }
    if language == Language::Awk {
        awk_io(code, &mut out);
    }
    out.sort_by_key(|(p, _)| *p);
    out.into_iter().map(|(_, f)| f).collect()
}

/// Awk's other ways to run or write: `print … | "cmd"`, `"cmd" | getline`,
/// `print … > "file"`.
fn awk_io(code: &str, out: &mut Vec<(usize, Finding)>) {
    let masked = mask_strings(Language::Awk, code);
    let bytes = masked.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'|' => {
                let after = masked[i + 1..].trim_start();
                if after.starts_with("getline") {
                    // `"cmd" | getline`: the command is the string before.
                    let lit = last_literal(&code[..i]);
                    out.push((
                        i,
                        Finding {
                            effect: Effect::Shell,
                            call: "| getline",
                            literal: lit,
                        },
                    ));
                } else if after.starts_with('"')
                    || after.starts_with(|c: char| c.is_ascii_alphabetic())
                {
                    let rest = &code[i + 1..];
                    let rest = rest.strip_prefix('&').unwrap_or(rest);
                    out.push((
                        i,
                        Finding {
                            effect: Effect::Shell,
                            call: "| command",
                            literal: first_literal(rest),
                        },
                    ));
                }
            }
            b'>' => {
                // `print > "file"`, not a comparison `$1 > 5`.
                let before = masked[..i].trim_end();
                let after = masked[i + 1..].trim_start_matches('>').trim_start();
                let printing = ["print", "printf"].iter().any(|p| {
                    masked[..i]
                        .rfind(p)
                        .is_some_and(|q| !masked[q..i].contains(';') && !masked[q..i].contains('{'))
                });
                if printing
                    && (after.starts_with('"')
                        || after.starts_with(|c: char| c.is_ascii_alphabetic()))
                    && !before.ends_with(['>', '=', '!', '<'])
                {
                    out.push((
                        i,
                        Finding {
                            effect: Effect::Write,
                            call: "print >",
                            literal: first_literal(&code[i + 1..]),
                        },
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The code with the contents of string literals replaced by spaces, so a
/// call name inside a string (`print("os.system")`) does not count. Byte
/// positions are kept.
fn mask_strings(language: Language, code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in code.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                    push_blank(&mut out, c);
                } else if c == '\\' {
                    escaped = true;
                    push_blank(&mut out, c);
                } else if c == q {
                    quote = None;
                    out.push(c);
                } else {
                    push_blank(&mut out, c);
                }
            }
            None => {
                let quotes: &[char] = match language {
                    Language::Awk => &['"'],
                    _ => &['"', '\''],
                };
                if quotes.contains(&c) {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

fn push_blank(out: &mut String, c: char) {
    for _ in 0..c.len_utf8() {
        out.push(' ');
    }
}

/// The first argument after a call name, when it is a plain string literal
/// (`("rm -rf /x")`, `["rm", "-rf", "/x"]` joined with spaces, `'…'`).
/// `None` when it is built at run time (a variable, a concatenation, an
/// interpolation).
fn first_literal(after: &str) -> Option<String> {
    let s = after.trim_start();
    let s = s.strip_prefix('(').unwrap_or(s).trim_start();
    if let Some(list) = s.strip_prefix('[') {
        // An argument vector of literals.
        let mut words = Vec::new();
        let mut rest = list.trim_start();
        loop {
            let (lit, tail) = string_literal(rest)?;
            words.push(shell_quote(&lit));
            rest = tail.trim_start();
            if let Some(t) = rest.strip_prefix(',') {
                rest = t.trim_start();
                continue;
            }
            if rest.starts_with(']') {
                return Some(words.join(" "));
            }
            return None;
        }
    }
    let (lit, tail) = string_literal(s)?;
    let tail = tail.trim_start();
    // `"rm " + x` or `"rm " . $x` is built at run time.
    if tail.starts_with(['+', '.', '%']) && !tail.starts_with("..") {
        return None;
    }
    Some(lit)
}

/// The last string literal before a position (`"date" | getline`).
fn last_literal(before: &str) -> Option<String> {
    let t = before.trim_end();
    let inner = t.strip_suffix('"')?;
    let start = inner.rfind('"')?;
    Some(inner[start + 1..].to_owned())
}

/// A string literal at the start of `s`: its unescaped text and the rest.
/// Interpolating strings (`"…$x…"` in Perl, `"#{x}"` in Ruby, template
/// strings) are not literals.
fn string_literal(s: &str) -> Option<(String, &str)> {
    let q = s.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s[1..].char_indices() {
        if escaped {
            out.push(match c {
                'n' => '\n',
                't' => '\t',
                other => other,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            if q == '"' && (out.contains('$') || out.contains("#{")) {
                return None;
            }
            return Some((out, &s[1 + i + 1..]));
        } else {
            out.push(c);
        }
    }
    None
}

/// Quotes a word for a shell line.
pub(crate) fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<(String, bool)> {
        words.iter().map(|w| ((*w).to_owned(), false)).collect()
    }

    fn found(lang: Language, code: &str) -> Vec<(Effect, Option<String>)> {
        findings(lang, code)
            .into_iter()
            .map(|f| (f.effect, f.literal))
            .collect()
    }

    #[test]
    fn the_code_is_found_after_each_interpreters_flag() {
        let s = script(Language::Python, &argv(&["-u", "-c", "print(1)"])).map(|s| s.code);
        assert_eq!(s.as_deref(), Some("print(1)"));
        assert_eq!(
            script(Language::Python, &argv(&["manage.py", "-c", "x"])),
            None
        );
        let s = script(Language::Perl, &argv(&["-lne", "print", "f"])).map(|s| s.code);
        assert_eq!(s.as_deref(), Some("print"));
        let s = script(Language::Perl, &argv(&["-pi", "-e", "s/a/b/", "f"]));
        assert!(s.is_some_and(|s| s.in_place));
        let s = script(Language::Node, &argv(&["--eval", "1"])).map(|s| s.code);
        assert_eq!(s.as_deref(), Some("1"));
        let s = script(Language::Awk, &argv(&["-F:", "{print $1}", "/etc/passwd"])).map(|s| s.code);
        assert_eq!(s.as_deref(), Some("{print $1}"));
        let s = script(Language::Awk, &argv(&["-F", ":", "{print $1}"])).map(|s| s.code);
        assert_eq!(s.as_deref(), Some("{print $1}"));
    }

    #[test]
    fn spawns_and_removals_are_found_with_their_literals() {
        assert_eq!(
            found(Language::Python, r#"import os; os.system("rm -rf /data")"#),
            vec![(Effect::Shell, Some("rm -rf /data".into()))]
        );
        assert_eq!(
            found(
                Language::Python,
                r#"import subprocess; subprocess.run(["rm", "-rf", "/x y"])"#
            ),
            vec![(Effect::Argv, Some("rm -rf '/x y'".into()))]
        );
        assert_eq!(
            found(
                Language::Python,
                r#"import shutil; shutil.rmtree("/var/lib/postgresql")"#
            ),
            vec![(Effect::RemoveTree, Some("/var/lib/postgresql".into()))]
        );
        assert_eq!(
            found(Language::Perl, r#"system("iptables -F")"#),
            vec![(Effect::Shell, Some("iptables -F".into()))]
        );
        assert_eq!(
            found(Language::Perl, r#"system("rm -rf $dir")"#),
            vec![(Effect::Shell, None)]
        );
        assert_eq!(
            found(Language::Ruby, r#"FileUtils.rm_rf("/srv/app")"#),
            vec![(Effect::RemoveTree, Some("/srv/app".into()))]
        );
        assert_eq!(
            found(
                Language::Node,
                r#"require("child_process").execSync("reboot")"#
            )
            .into_iter()
            .filter(|(e, _)| *e == Effect::Shell)
            .collect::<Vec<_>>(),
            vec![(Effect::Shell, Some("reboot".into()))]
        );
        assert_eq!(
            found(Language::Awk, r#"BEGIN{system("rm -rf /tmp/x")}"#),
            vec![(Effect::Shell, Some("rm -rf /tmp/x".into()))]
        );
    }

    #[test]
    fn awk_pipes_and_writes_are_found() {
        assert_eq!(
            found(Language::Awk, r#"{print | "sh"}"#),
            vec![(Effect::Shell, Some("sh".into()))]
        );
        assert_eq!(
            found(Language::Awk, r#"BEGIN{"date" | getline d; print d}"#),
            vec![(Effect::Shell, Some("date".into()))]
        );
        assert_eq!(
            found(Language::Awk, r#"{print $1 > "/etc/passwd"}"#),
            vec![(Effect::Write, Some("/etc/passwd".into()))]
        );
        assert!(found(Language::Awk, r#"$3 > 5 {print $1}"#).is_empty());
        assert!(found(Language::Awk, r#"{s += $2} END {print s}"#).is_empty());
    }

    #[test]
    fn names_inside_strings_and_identifiers_do_not_count() {
        assert!(found(Language::Python, r#"print("os.system is dangerous")"#).is_empty());
        assert!(
            found(
                Language::Python,
                r#"import json,sys; print(json.load(sys.stdin)["evaluation"])"#
            )
            .is_empty()
        );
        assert!(found(Language::Perl, r#"print "ok\n""#).is_empty());
    }

    #[test]
    fn hidden_code_is_opaque() {
        let f = found(
            Language::Python,
            "exec(__import__('base64').b64decode('cm0gLXJmIC8='))",
        );
        assert!(f.iter().any(|(e, _)| *e == Effect::Opaque));
        let f = found(Language::Perl, "eval $x");
        assert!(f.iter().any(|(e, _)| *e == Effect::Opaque));
    }
}
