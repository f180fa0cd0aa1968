//! The classifier: rates a command line under a compiled rule set.
//!
//! A line's level is the highest level of the simple commands in it. Each
//! simple command is unwrapped first (`sudo`, `env X=1`, `timeout 5`,
//! `sh -c '…'`, `ssh host …`, `kubectl exec … -- …`) so the command that
//! actually runs is what gets rated. It is then matched against the rules for
//! its program; the built-in rules act as floors (the highest match wins), a
//! user rule marked `override` sets the level outright. Last come the
//! modifiers and safeguards, which no rule can lower: an explicit dry run
//! makes a mutation LOW, a production namespace or context raises a mutation
//! to HIGH, and anything only known at run time is rated fail-closed.
//!
//! Pure: no I/O, no clock; the only state is the `RuleSet`.

use std::borrow::Cow;

use super::args::{Arg, ParsedArgs, parse_args};
use super::ruleset::{RuleSet, Tool, Wrapper};
use super::schema::WrapperMode;
use super::shell::{MAX_DEPTH, SimpleCommand, Unit, Word, parse_units};
use crate::core::risk::{Classification, Reason, RiskLevel};

/// What the line is run against, when the command does not say: a plan's
/// target namespace and kube context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassifyContext {
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("empty command line: there is nothing to classify")]
    Empty,
}

/// Collects the reasons for one line.
struct Rating<'a> {
    set: &'a RuleSet,
    ctx: &'a ClassifyContext,
    out: Vec<Reason>,
}

fn reason(level: RiskLevel, part: &str, via: &[String], rule: &str, message: String) -> Reason {
    Reason {
        level,
        part: part.to_owned(),
        via: via.to_vec(),
        rule: rule.to_owned(),
        message,
    }
}

impl RuleSet {
    /// Rates one command line.
    pub fn classify(
        &self,
        line: &str,
        ctx: &ClassifyContext,
    ) -> Result<Classification, ClassifyError> {
        if line.trim().is_empty() {
            return Err(ClassifyError::Empty);
        }
        let mut rating = Rating {
            set: self,
            ctx,
            out: Vec::new(),
        };
        let units = rating.line(line, &[], 0, None);
        if units == 0 {
            return Err(ClassifyError::Empty);
        }
        Ok(Classification::from_reasons(rating.out))
    }
}

impl Rating<'_> {
    fn push(&mut self, level: RiskLevel, part: &str, via: &[String], rule: &str, message: String) {
        self.out.push(reason(level, part, via, rule, message));
    }

    /// Rates every unit of a line; returns how many units there were.
    /// `stdin`: the command whose standard input the line's own commands
    /// inherit (a wrapper's), so `ssh host psql <<EOF` is rated as psql
    /// reading that here-doc.
    fn line(
        &mut self,
        line: &str,
        via: &[String],
        depth: usize,
        stdin: Option<&SimpleCommand>,
    ) -> usize {
        let units = parse_units(line, via, depth);
        for unit in &units {
            match unit {
                Unit::Command { cmd: c, via: v } => match stdin {
                    Some(outer) if v.len() == via.len() && outer.stdin_fed => {
                        let mut fed = c.clone();
                        fed.stdin_fed = true;
                        fed.stdin_texts.extend(outer.stdin_texts.iter().cloned());
                        self.command(&fed, v, depth);
                    }
                    _ => self.command(c, v, depth),
                },
                Unit::Opaque {
                    part,
                    via,
                    rule,
                    message,
                } => self.push(RiskLevel::High, part, via, rule, message.clone()),
            }
        }
        units.len()
    }

    fn command(&mut self, cmd: &SimpleCommand, via: &[String], depth: usize) {
        let part = cmd.display();
        for target in &cmd.outputs {
            self.redirect(target, &part, via);
        }
        // `NAME=value` words before the program are assignments. The shell
        // grammar separates them already; after a wrapper (`nohup X=1 cmd`)
        // they are skipped here, rating the command as if they were
        // assignments: never lower than what could run.
        let skip = cmd
            .words
            .iter()
            .take_while(|w| !w.dynamic && is_assignment(&w.text))
            .count();
        let words_after = &cmd.words[skip..];
        let Some(first) = words_after.first() else {
            return;
        };
        if depth > MAX_DEPTH {
            self.push(
                RiskLevel::High,
                &part,
                via,
                "too-deep",
                "wrappers are nested too deeply to follow".into(),
            );
            return;
        }
        if first.dynamic {
            self.push(
                RiskLevel::High,
                &part,
                via,
                "dynamic-program",
                format!("the program `{}` is only known at run time", first.raw),
            );
            return;
        }
        let words = self.expand_alias(words_after);
        let program = basename(&words[0].text);
        let args = &words[1..];
        if let Some((level, why)) = self.set.dynamic_programs.get(program) {
            self.push(*level, &part, via, "dynamic-code", why.clone());
            return;
        }
        match self.unwrap(program, args, cmd, via, depth) {
            Unwrapped::No => self.rules(program, args, cmd, &part, via, true),
            // A tool with a wrapping subcommand (`kubectl exec`, `find
            // -exec`) is still that tool: its own rules and the production
            // scope apply too, though it is not an unknown command.
            Unwrapped::AlsoRate => self.rules(program, args, cmd, &part, via, false),
            Unwrapped::Yes => {}
        }
    }

    /// Applies a policy alias to the program word (one level, like bash).
    fn expand_alias<'w>(&self, words: &'w [Word]) -> Cow<'w, [Word]> {
        let name = basename(&words[0].text);
        match self.set.aliases.get(name) {
            Some(target) => {
                let mut v: Vec<Word> = target
                    .iter()
                    .map(|t| Word {
                        text: t.clone(),
                        raw: t.clone(),
                        dynamic: false,
                    })
                    .collect();
                v.extend_from_slice(&words[1..]);
                Cow::Owned(v)
            }
            None => Cow::Borrowed(words),
        }
    }

    fn redirect(&mut self, target: &Word, part: &str, via: &[String]) {
        let spec = &self.set.redirects;
        if target.dynamic {
            self.push(
                spec.dynamic,
                part,
                via,
                "redirect",
                format!("writes to `{}`, a path only known at run time", target.raw),
            );
            return;
        }
        let path = normalize_path(&target.text);
        if spec.ignore.iter().any(|g| g.is_match(&path)) {
            return;
        }
        let mut level = spec.default;
        let mut message = format!("writes to `{path}`");
        for t in &spec.targets {
            if t.level > level && t.path.is_match(&path) {
                level = t.level;
                message = format!("writes to `{path}`: {}", t.reason);
            }
        }
        self.push(level, part, via, "redirect", message);
    }

    /// Rates the command a wrapper runs. `No` when the program is not acting
    /// as a wrapper here (no command given, or a passive flag).
    fn unwrap(
        &mut self,
        program: &str,
        args: &[Word],
        cmd: &SimpleCommand,
        via: &[String],
        depth: usize,
    ) -> Unwrapped {
        let Some(wrappers) = self.set.wrappers.get(program) else {
            return Unwrapped::No;
        };
        for w in wrappers {
            let tool = self.set.tool(program);
            let mut syntax = tool.syntax();
            if !w.value_flags.is_empty() {
                syntax.value_flags = &w.value_flags;
            }
            // A plain wrapper's flags end at the command it runs; a tool's
            // wrapping subcommand (`kubectl exec`) takes flags anywhere.
            syntax.stop_at_positional = w.spec.subcommand.is_none();
            let parsed = parse_args(args, syntax);
            if w.spec.passive_flags.iter().any(|f| parsed.has_flag(f)) {
                continue;
            }
            let inner = inner_commands(w, args, &parsed, cmd);
            if inner.is_empty() {
                continue;
            }
            let mut inner_via = via.to_vec();
            inner_via.push(w.label.clone());
            if let Some(min) = w.spec.min_level {
                self.push(
                    min,
                    &cmd.display(),
                    via,
                    "wrapper",
                    format!("`{}` runs a command somewhere else", w.label),
                );
            }
            for item in inner {
                match item {
                    Inner::Argv(words) => {
                        let inner_cmd = SimpleCommand {
                            words: words.to_vec(),
                            outputs: Vec::new(),
                            stdin_fed: cmd.stdin_fed,
                            stdin_texts: cmd.stdin_texts.clone(),
                        };
                        self.command(&inner_cmd, &inner_via, depth + 1);
                    }
                    Inner::UnseenStdin => self.push(
                        RiskLevel::High,
                        &cmd.display(),
                        via,
                        "unseen-stdin",
                        format!("`{}` runs commands fed on standard input", w.label),
                    ),
                    Inner::Line { text, dynamic, fed } => {
                        if dynamic {
                            self.push(
                                RiskLevel::High,
                                &cmd.display(),
                                via,
                                "dynamic-command-line",
                                format!(
                                    "`{}` runs a command line that is only known at run time",
                                    w.label
                                ),
                            );
                        }
                        if !text.trim().is_empty() {
                            let stdin = fed.then_some(cmd);
                            self.line(&text, &inner_via, depth + 1, stdin);
                        }
                    }
                }
            }
            let is_tool_mode = w.spec.subcommand.is_some() || w.spec.mode == WrapperMode::ExecFlags;
            return if is_tool_mode {
                Unwrapped::AlsoRate
            } else {
                Unwrapped::Yes
            };
        }
        Unwrapped::No
    }

    /// Rates a command by the rules for its program, then applies the
    /// dry-run, production and run-time safeguards.
    fn rules(
        &mut self,
        program: &str,
        args: &[Word],
        cmd: &SimpleCommand,
        part: &str,
        via: &[String],
        allow_unknown: bool,
    ) {
        let set = self.set;
        let tool = set.tool(program);
        let parsed = parse_args(args, tool.syntax());
        let positionals: Vec<usize> = parsed.positionals().collect();
        let start = positionals
            .iter()
            .position(|&i| {
                let w = &args[i];
                !w.dynamic
                    && (tool.known_first.contains(&w.text)
                        || tool.first_globs.iter().any(|g| g.is_match(&w.text)))
            })
            .unwrap_or(0);
        let path_words = &positionals[start.min(positionals.len())..];
        if tool.has_subcommands && path_words.first().is_some_and(|&i| args[i].dynamic) {
            let w = path_words.first().map_or("", |&i| args[i].raw.as_str());
            self.push(
                RiskLevel::High,
                part,
                via,
                "dynamic-subcommand",
                format!("the subcommand `{w}` of `{program}` is only known at run time"),
            );
        }

        let mut matched: Vec<(usize, bool)> = Vec::new();
        let mut rests: Vec<(usize, String)> = Vec::new();
        for idx in set.candidates(program) {
            let r = &set.rules[idx];
            let Some((len, mut assumed)) = match_path(&r.paths, args, path_words) else {
                continue;
            };
            if !r.resources.is_empty() {
                match match_resource(tool, &r.resources, args, &path_words[len..]) {
                    Some(a) => assumed |= a,
                    None => continue,
                }
            }
            if !r.flags.is_empty() && !r.flags.iter().any(|f| parsed.has_flag(f)) {
                continue;
            }
            if r.stdin.is_some_and(|s| s != cmd.stdin_fed) {
                continue;
            }
            if r.regex.is_some() || r.unless.is_some() {
                let rest = match rests.iter().find(|(l, _)| *l == len) {
                    Some((_, s)) => s.as_str(),
                    None => {
                        rests.push((len, render_rest(&parsed, args, &path_words[..len])));
                        rests.last().map_or("", |(_, s)| s.as_str())
                    }
                };
                if r.regex.as_ref().is_some_and(|re| !re.is_match(rest)) {
                    continue;
                }
                if r.unless.as_ref().is_some_and(|re| re.is_match(rest)) {
                    continue;
                }
            }
            matched.push((idx, assumed));
        }

        let deciding = decide(set, &matched);
        let level = if deciding.is_empty() {
            if !allow_unknown {
                return;
            }
            let message = if tool.known {
                let sub = path_words.first().map_or("", |&i| args[i].text.as_str());
                if sub.is_empty() {
                    format!("`{program}` without a known subcommand needs approval")
                } else {
                    format!("unknown subcommand `{sub}` of `{program}` needs approval")
                }
            } else {
                format!("unknown program `{program}` needs approval")
            };
            self.push(RiskLevel::Medium, part, via, "unknown", message);
            RiskLevel::Medium
        } else {
            let level = deciding
                .first()
                .map_or(RiskLevel::Low, |(i, _)| set.rules[*i].level);
            if level >= RiskLevel::Medium
                && let Some(flag) = dry_run(tool, &parsed, args, path_words)
            {
                let ids: Vec<&str> = deciding
                    .iter()
                    .map(|(i, _)| set.rules[*i].id.as_str())
                    .collect();
                self.push(
                    RiskLevel::Low,
                    part,
                    via,
                    "dry-run",
                    format!(
                        "explicit `{flag}` changes nothing (would be {level} by {})",
                        ids.join(", ")
                    ),
                );
                return;
            }
            for (i, assumed) in &deciding {
                let r = &set.rules[*i];
                let mut message = r
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("matches rule `{}`", r.id));
                if *assumed {
                    message.push_str(" (assumed: a word it depends on is only known at run time)");
                }
                self.push(r.level, part, via, &r.id, message);
            }
            level
        };

        if level >= RiskLevel::Medium {
            self.production(tool, &parsed, part, via);
        }
    }

    /// A mutation in a production namespace or context is at least HIGH; so is
    /// one whose namespace or context is only known at run time.
    fn production(&mut self, tool: &Tool, parsed: &ParsedArgs, part: &str, via: &[String]) {
        let scope = &self.set.scope;
        if !tool.namespace_flags.is_empty() {
            let ns = parsed
                .last_value_of(&tool.namespace_flags)
                .map(|(v, d)| (v.to_owned(), d))
                .or_else(|| self.ctx.namespace.clone().map(|n| (n, false)));
            match ns {
                Some((ns, true)) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "production-scope",
                    format!("mutation in namespace `{ns}`, which is only known at run time"),
                ),
                Some((ns, false)) if scope.is_production_namespace(&ns) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "production-scope",
                    format!("mutation in production namespace `{ns}`"),
                ),
                _ => {}
            }
        }
        if !tool.context_flags.is_empty() {
            let ctx = parsed
                .last_value_of(&tool.context_flags)
                .map(|(v, d)| (v.to_owned(), d))
                .or_else(|| self.ctx.kube_context.clone().map(|c| (c, false)));
            match ctx {
                Some((c, true)) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "production-scope",
                    format!("mutation in context `{c}`, which is only known at run time"),
                ),
                Some((c, false)) if scope.is_production_context(&c) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "production-scope",
                    format!("mutation in production context `{c}`"),
                ),
                _ => {}
            }
        }
    }
}

/// Picks the rules that set the level, from all that matched:
/// 1. the first matching user rule marked `override` sets it alone;
/// 2. otherwise the built-in level is the first matching built-in exception
///    (`override`), or else the highest matching built-in rule, and the level
///    is the highest of that and every matching user rule.
fn decide(set: &RuleSet, matched: &[(usize, bool)]) -> Vec<(usize, bool)> {
    let rule = |m: &(usize, bool)| &set.rules[m.0];
    if let Some(m) = matched
        .iter()
        .find(|m| rule(m).user && rule(m).override_level)
    {
        return vec![*m];
    }
    let mut pool: Vec<(usize, bool)> = match matched
        .iter()
        .find(|m| !rule(m).user && rule(m).override_level)
    {
        Some(m) => vec![*m],
        None => matched.iter().copied().filter(|m| !rule(m).user).collect(),
    };
    pool.extend(matched.iter().copied().filter(|m| rule(m).user));
    let Some(max) = pool.iter().map(|m| rule(m).level).max() else {
        return Vec::new();
    };
    pool.retain(|m| rule(m).level == max);
    pool
}

enum Unwrapped {
    No,
    Yes,
    AlsoRate,
}

/// What a wrapper runs.
enum Inner<'w> {
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

fn inner_commands<'w>(
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

fn is_assignment(s: &str) -> bool {
    match s.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// Matches a rule's subcommand paths against the leading positionals.
/// Returns the path length, and whether a dynamic word had to be assumed to
/// match (the worst case).
fn match_path(
    paths: &[Vec<super::ruleset::Segment>],
    args: &[Word],
    path_words: &[usize],
) -> Option<(usize, bool)> {
    if paths.is_empty() {
        return Some((0, false));
    }
    for p in paths {
        if p.len() > path_words.len() {
            continue;
        }
        let mut assumed = false;
        let ok = p.iter().zip(path_words).all(|(seg, &i)| {
            if args[i].dynamic {
                assumed = true;
                true
            } else {
                seg.matches(&args[i].text)
            }
        });
        if ok {
            return Some((p.len(), assumed));
        }
    }
    None
}

/// The resources a command names: the word after the subcommand
/// (`pods,secrets`, `deploy/api`), and any later `kind/name` words.
fn match_resource(
    tool: &Tool,
    wanted: &[String],
    args: &[Word],
    after_path: &[usize],
) -> Option<bool> {
    for (n, &i) in after_path.iter().enumerate() {
        let w = &args[i];
        if w.dynamic {
            if n == 0 {
                return Some(true);
            }
            continue;
        }
        if n > 0 && !w.text.contains('/') {
            continue;
        }
        for piece in w.text.split(',') {
            let kind = piece.split('/').next().unwrap_or(piece);
            if kind.is_empty() {
                continue;
            }
            if wanted.iter().any(|r| *r == tool.canonical_resource(kind)) {
                return Some(false);
            }
        }
    }
    None
}

/// The rest of a command line as rule regexes see it: every argument after
/// the subcommand path, one per line, flags as `name` or `name=value`, with
/// runs of whitespace inside an argument collapsed to one space, absolute
/// paths normalized.
fn render_rest(parsed: &ParsedArgs, args: &[Word], path: &[usize]) -> String {
    let mut out = String::new();
    for item in &parsed.items {
        let line: Cow<'_, str> = match item {
            Arg::Positional(i) if path.contains(i) => continue,
            Arg::Positional(i) => {
                let t = args[*i].text.as_str();
                // `/etc/`, `//etc` and `/tmp/../etc` all name `/etc`.
                if t.len() > 1
                    && t.starts_with('/')
                    && (t.ends_with('/') || t.contains("/.") || t.contains("//"))
                {
                    Cow::Owned(normalize_path(t))
                } else {
                    Cow::Borrowed(t)
                }
            }
            Arg::Flag { name, value, .. } => match value {
                Some(v) => Cow::Owned(format!("{name}={v}")),
                None => Cow::Borrowed(name.as_str()),
            },
        };
        if !out.is_empty() {
            out.push('\n');
        }
        let mut first = true;
        for piece in line.split_whitespace() {
            if !first {
                out.push(' ');
            }
            out.push_str(piece);
            first = false;
        }
    }
    out
}

/// The dry-run flag that applies, if the command asks for one explicitly.
/// The last spelling of the flag counts (`--dry-run=server --dry-run=none`
/// is not a dry run).
fn dry_run(tool: &Tool, parsed: &ParsedArgs, args: &[Word], path: &[usize]) -> Option<String> {
    let first = path.first().map(|&i| args[i].text.as_str());
    tool.dry_run.iter().find_map(|spec| {
        if !spec.subcommands.is_empty()
            && !spec.subcommands.iter().any(|s| Some(s.as_str()) == first)
        {
            return None;
        }
        let (name, value, dynamic) = parsed.flags().filter(|(n, _, _)| *n == spec.flag).last()?;
        match value {
            Some(v) if !dynamic && spec.values.iter().any(|x| x == v) => {
                Some(format!("{name}={v}"))
            }
            None if spec.bare => Some(name.to_owned()),
            _ => None,
        }
    })
}

/// `/usr/bin/kubectl` is `kubectl`.
fn basename(program: &str) -> &str {
    match program.rsplit_once('/') {
        Some((_, base)) if !base.is_empty() => base,
        _ => program,
    }
}

/// Resolves `.`, `..` and repeated slashes in an absolute path, without
/// touching the file system, so `/tmp/../etc/x` is seen as `/etc/x`.
pub(crate) fn normalize_path(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize_path("/tmp/../etc//passwd"), "/etc/passwd");
        assert_eq!(normalize_path("/../../dev/sda"), "/dev/sda");
        assert_eq!(normalize_path("out.txt"), "out.txt");
        assert_eq!(normalize_path("/"), "/");
    }

    #[test]
    fn assignments_are_recognized() {
        assert!(is_assignment("FOO=bar"));
        assert!(is_assignment("_X1="));
        assert!(!is_assignment("1X=2"));
        assert!(!is_assignment("--opt=x"));
    }
}
