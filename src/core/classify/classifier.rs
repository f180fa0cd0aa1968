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
//!
//! Long on purpose: one `impl Rating` whose steps (unwrap, match the rules,
//! modifiers, safeguards) share one line's state; split by file, each step
//! would take that state whole. Its table of cases is `tests/classify_table.rs`.

use std::borrow::Cow;

use super::args::{ParsedArgs, parse_args};
use super::files::{FileUse, file_uses, is_remote};
use super::inline::{self, Effect, Language, Script};
use super::lexicon::Words;
use super::matching::{
    basename, decide, dry_run, match_path, match_resource, normalize_path, render_rest,
};
use super::ruleset::{RuleSet, ScopeKind, Tool};
use super::schema::GlobPattern;
use super::schema::WrapperMode;
use super::schema::{SqlClientSpec, SqlDialectName, StdinCommands};
use super::shell::is_assignment;
use super::shell::{MAX_DEPTH, SimpleCommand, Unit, Word, parse_units};
use super::sql::{self, Dialect, SqlRating};
use super::wrappers::{Inner, inner_commands};
use crate::core::risk::{Classification, Reason, RiskLevel};

/// What the line is run against, when the command does not say: a plan's
/// target namespace and kube context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassifyContext {
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
}

/// How many leading positionals the lexicon reads for a verb and its
/// object (`gcloud compute instances delete` has it fourth).
const LEXICON_PATH_WORDS: usize = 4;

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
    /// When asked for: the local files the commands run or read.
    files: Option<Vec<FileUse>>,
    /// What earlier commands of the line set for the later ones: the
    /// working directory (`cd /etc && rm -rf *`) and the kube context and
    /// namespace (`kubectl config use-context prod && kubectl …`). `Some("")`
    /// when set to something only known at run time.
    cwd: Option<String>,
    kube_context: Option<String>,
    kube_namespace: Option<String>,
    /// Scope variables set for the commands that follow (`export
    /// AWS_PROFILE=prod`, `terraform workspace select prod`), and those set
    /// for the command being rated (`AWS_PROFILE=prod aws …`).
    scope_env: Vec<(String, String)>,
    command_env: Vec<(String, String)>,
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
            files: None,
            cwd: None,
            kube_context: None,
            kube_namespace: None,
            scope_env: Vec::new(),
            command_env: Vec::new(),
        };
        let units = rating.line(line, &[], 0, None);
        if units == 0 {
            return Err(ClassifyError::Empty);
        }
        Ok(Classification::from_reasons(rating.out))
    }

    /// The local files a command line runs or reads (`core::classify::
    /// files`), found by the same walk as the rating: through wrappers and
    /// `sh -c`, not into remote commands.
    pub fn files(&self, line: &str, ctx: &ClassifyContext) -> Vec<FileUse> {
        let mut rating = Rating {
            set: self,
            ctx,
            out: Vec::new(),
            files: Some(Vec::new()),
            cwd: None,
            kube_context: None,
            kube_namespace: None,
            scope_env: Vec::new(),
            command_env: Vec::new(),
        };
        rating.line(line, &[], 0, None);
        rating.files.unwrap_or_default()
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
                        fed.stdin_from.extend(outer.stdin_from.iter().cloned());
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
        self.command_env = cmd.env.clone();
        self.command_env.extend(
            cmd.words[..skip]
                .iter()
                .filter_map(|w| w.text.split_once('='))
                .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
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
        // `/???/?m`, `/bin/r?`, `/usr/bin/[r]m`: the program is whatever the
        // glob matches. At least HIGH, and rated as every known program it
        // could be.
        if unquoted_glob(&first.raw) {
            self.globbed_program(cmd, words_after, &part, via, depth);
            return;
        }
        let words = self.expand_alias(words_after);
        let words = self.track_line_state(words);
        let program = basename(&words[0].text);
        let args = &words[1..];
        if let Some(files) = &mut self.files
            && !via.iter().any(|v| is_remote(v))
        {
            files.extend(file_uses(program, &words, cmd));
        }
        if let Some((level, why)) = self.set.dynamic_programs.get(program) {
            self.push(*level, &part, via, "dynamic-code", why.clone());
            return;
        }
        if let Some(language) = Language::of(program) {
            let argv: Vec<(String, bool)> = args
                .iter()
                .map(|w| (w.text.to_string(), w.dynamic))
                .collect();
            if let Some(script) = inline::script(language, &argv) {
                self.inline_script(program, args, &script, &part, via, depth);
                // awk is still awk: its own rules (`-i inplace`) apply too.
                if language != Language::Awk {
                    return;
                }
            }
        }
        match self.unwrap(program, args, cmd, via, depth) {
            Unwrapped::No => self.rules(program, args, cmd, Site::new(&part, via, depth), true),
            // A tool with a wrapping subcommand (`kubectl exec`, `find
            // -exec`) is still that tool: its own rules and the production
            // scope apply too, though it is not an unknown command.
            Unwrapped::AlsoRate => {
                self.rules(program, args, cmd, Site::new(&part, via, depth), false);
            }
            Unwrapped::Yes => {}
        }
    }

    /// Rates an inline script (`python3 -c`, `perl -e`, an awk program) by
    /// the calls in it (`core::classify::inline`).
    fn inline_script(
        &mut self,
        program: &str,
        args: &[Word],
        script: &Script,
        part: &str,
        via: &[String],
        depth: usize,
    ) {
        let label = format!("{program} script");
        if script.dynamic {
            let what = if script.code.is_empty() {
                format!("`{program}` runs a program from a file this classifier cannot read")
            } else {
                format!("the script of `{program}` is only known at run time")
            };
            self.push(RiskLevel::High, part, via, "inline-script", what);
            return;
        }
        if script.in_place {
            self.push(
                RiskLevel::Medium,
                part,
                via,
                "inline-script",
                format!("`{program} -i` edits files in place"),
            );
            // The files it edits, as if written by a redirect (`/etc/…`).
            for w in args
                .iter()
                .filter(|w| !w.text.starts_with('-') && w.text != script.code)
            {
                self.redirect(w, part, via);
            }
        }
        let found = inline::findings(script.language, &script.code);
        if found.is_empty() && !script.in_place {
            self.push(
                RiskLevel::Low,
                part,
                via,
                "inline-script",
                format!("the `{program}` script runs no command, removes and writes nothing"),
            );
            return;
        }
        let mut inner_via = via.to_vec();
        inner_via.push(label);
        for f in found {
            let call = f.call;
            match (f.effect, f.literal) {
                (Effect::Shell | Effect::Argv, Some(line)) if !line.trim().is_empty() => {
                    self.line(&line, &inner_via, depth + 1, None);
                }
                (Effect::RemoveTree, Some(path)) => {
                    let line = format!("rm -rf {}", inline::shell_quote(&path));
                    self.line(&line, &inner_via, depth + 1, None);
                }
                (Effect::RemoveFile, Some(path)) => {
                    let line = format!("rm -f {}", inline::shell_quote(&path));
                    self.line(&line, &inner_via, depth + 1, None);
                }
                (Effect::Write, Some(path)) => {
                    let target = Word::literal(&path);
                    self.redirect(&target, part, &inner_via);
                }
                (Effect::Write, None) => self.push(
                    RiskLevel::Medium,
                    part,
                    via,
                    "inline-script",
                    format!("`{call}` in the `{program}` script writes a file"),
                ),
                (Effect::Opaque, _) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "inline-script",
                    format!("`{call}` in the `{program}` script runs or hides code this classifier cannot read"),
                ),
                (_, _) => self.push(
                    RiskLevel::High,
                    part,
                    via,
                    "inline-script",
                    format!("`{call}` in the `{program}` script acts on a command or path only known at run time"),
                ),
            }
        }
    }

    /// A program word that is a glob: rated as each known program whose
    /// name it matches, and at least HIGH.
    fn globbed_program(
        &mut self,
        cmd: &SimpleCommand,
        words: &[Word],
        part: &str,
        via: &[String],
        depth: usize,
    ) {
        let raw = &words[0].raw;
        let name = basename(raw);
        let mut candidates: Vec<String> = match GlobPattern::new(name) {
            Ok(g) => self
                .set
                .known_programs()
                .filter(|p| g.is_match(p))
                .map(str::to_owned)
                .collect(),
            Err(_) => Vec::new(),
        };
        candidates.sort();
        candidates.truncate(MAX_GLOB_CANDIDATES);
        self.push(
            RiskLevel::High,
            part,
            via,
            "dynamic-program",
            if candidates.is_empty() {
                format!("the program `{raw}` is a glob: what runs is only known at run time")
            } else {
                format!(
                    "the program `{raw}` is a glob: it could be {}",
                    candidates.join(", ")
                )
            },
        );
        for c in candidates {
            let mut as_c = cmd.clone();
            as_c.words = std::iter::once(Word::literal(&c))
                .chain(words[1..].iter().cloned())
                .collect();
            self.command(&as_c, via, depth + 1);
        }
    }

    /// Follows what a command sets for the rest of the line (`cd DIR`,
    /// `kubectl config use-context X`, `kubectx X`), and applies the
    /// working directory and path globs to a path tool's arguments:
    /// `cd /etc && rm -rf *` removes `/etc/*`, and `rm -rf /e*c` may remove
    /// `/etc`.
    fn track_line_state<'w>(&mut self, words: Cow<'w, [Word]>) -> Cow<'w, [Word]> {
        let name = basename(&words[0].text);
        let tracked = matches!(
            name,
            "cd" | "pushd"
                | "popd"
                | "kubectx"
                | "kubens"
                | "kubectl"
                | "oc"
                | "export"
                | "declare"
                | "typeset"
                | "setenv"
                | "terraform"
                | "tofu"
        );
        if !tracked && (self.cwd.is_none() && !words.iter().any(|w| unquoted_glob(&w.raw))) {
            return words;
        }
        let program = name;
        let text = |i: usize| words.get(i).filter(|w| !w.dynamic).map(|w| w.text.as_str());
        match program {
            "cd" | "pushd" => {
                self.cwd = match words.get(1) {
                    None => Some("~".into()),
                    Some(w) if w.dynamic || w.text == "-" => Some(String::new()),
                    Some(w) if w.text.starts_with('/') => Some(normalize_path(&w.text)),
                    Some(w) => self
                        .cwd
                        .as_ref()
                        .filter(|c| !c.is_empty())
                        .map(|c| normalize_path(&format!("{c}/{}", w.text))),
                };
                return words;
            }
            "kubectx" => {
                if words.len() == 2 && !words[1].text.starts_with('-') {
                    self.kube_context = Some(text(1).unwrap_or_default().to_owned());
                }
                return words;
            }
            "kubens" => {
                if words.len() == 2 && !words[1].text.starts_with('-') {
                    self.kube_namespace = Some(text(1).unwrap_or_default().to_owned());
                }
                return words;
            }
            "export" | "declare" | "typeset" | "setenv" => {
                for w in words.iter().skip(1) {
                    if let Some((n, v)) = w.text.split_once('=') {
                        // A value only known at run time is kept as empty.
                        let v = if w.dynamic { "" } else { v };
                        self.scope_env.retain(|(k, _)| k != n);
                        self.scope_env.push((n.to_owned(), v.to_owned()));
                    }
                }
                return words;
            }
            "popd" => {
                self.cwd = Some(String::new());
                return words;
            }
            "terraform" | "tofu"
                if text(1) == Some("workspace") && matches!(text(2), Some("select" | "new")) =>
            {
                let v = text(3).unwrap_or_default().to_owned();
                self.scope_env.retain(|(k, _)| k != "TF_WORKSPACE");
                self.scope_env.push(("TF_WORKSPACE".into(), v));
                return words;
            }
            "kubectl" | "oc" if text(1) == Some("config") && text(2) == Some("use-context") => {
                self.kube_context = Some(text(3).unwrap_or_default().to_owned());
                return words;
            }
            _ => {}
        }
        if !self.set.tool(program).path_args {
            return words;
        }
        // Copied only when a word changes.
        let mut out: Option<Vec<Word>> = None;
        for (i, w) in words.iter().enumerate().skip(1) {
            if w.dynamic || w.text.starts_with('-') {
                continue;
            }
            let mut path = w.text.clone();
            if !path.starts_with('/') && !path.starts_with('~') {
                match self.cwd.as_deref() {
                    Some(c) if c.starts_with('/') => {
                        path = normalize_path(&format!("{c}/{path}")).into();
                    }
                    _ => continue,
                }
                // `rm -rf *` under `/etc` is `/etc/*`: keep the glob visible.
                if w.text == "*" {
                    path = compact_str::format_compact!(
                        "{}/*",
                        path.trim_end_matches("/*")
                            .trim_end_matches('*')
                            .trim_end_matches('/')
                    );
                }
            }
            // `/etc/*` is already what rules read; `/e*c` is not.
            let plain_children = path
                .strip_suffix("/*")
                .is_some_and(|dir| !dir.contains(['*', '?', '[']));
            if unquoted_glob(&w.raw)
                && !plain_children
                && let Some(worst) = worst_case_path(&path)
            {
                path = worst.into();
            }
            if path != w.text {
                out.get_or_insert_with(|| words.to_vec())[i].text = path;
            }
        }
        match out {
            Some(out) => Cow::Owned(out),
            None => words,
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
                        text: t.as_str().into(),
                        raw: t.as_str().into(),
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
            // A wrapping subcommand (`kubectl exec`) must be on the line at
            // all; most lines skip the argument parse this way.
            if let Some(sub) = &w.spec.subcommand
                && !args.iter().any(|a| a.dynamic || a.text == *sub)
            {
                continue;
            }
            let tool = self.set.tool(program);
            let mut syntax = tool.syntax();
            if !w.value_flags.is_empty() {
                syntax.value_flags = &w.value_flags;
            }
            // A plain wrapper's flags end at the command it runs; a tool's
            // wrapping subcommand (`kubectl exec`) takes flags anywhere.
            // `su root -c '…'` passes `-c` after the user: a wrapper whose
            // command comes in a flag reads flags anywhere.
            syntax.stop_at_positional =
                w.spec.subcommand.is_none() && w.spec.string_flags.is_empty();
            let parsed = parse_args(args, syntax);
            if w.spec.passive_flags.iter().any(|f| parsed.has_flag(f)) {
                continue;
            }
            if w.spec.when.is_some() || w.spec.unless.is_some() {
                let rest = render_rest(&parsed, args, &[]);
                if w.spec.when.as_ref().is_some_and(|re| !re.is_match(&rest))
                    || w.spec.unless.as_ref().is_some_and(|re| re.is_match(&rest))
                {
                    continue;
                }
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
            let inner_from = self.out.len();
            for item in inner {
                match item {
                    Inner::Argv(words) => {
                        let mut words = words.to_vec();
                        if w.spec.args_from_stdin {
                            words.extend(
                                cmd.stdin_from
                                    .iter()
                                    .filter(|p| p.starts_with('/'))
                                    .map(|p| Word::literal(p)),
                            );
                        }
                        let inner_cmd = SimpleCommand {
                            words,
                            outputs: Vec::new(),
                            inputs: Vec::new(),
                            stdin_fed: cmd.stdin_fed,
                            stdin_texts: cmd.stdin_texts.clone(),
                            stdin_from: cmd.stdin_from.clone(),
                            env: Vec::new(),
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
            // `pdsh -w web[01-40] 'systemctl restart nginx'`: a change on
            // many hosts at once is at least HIGH.
            if w.spec.fleet
                && self.out[inner_from..]
                    .iter()
                    .any(|r| r.level >= RiskLevel::Medium && r.rule != "wrapper")
            {
                self.push(
                    RiskLevel::High,
                    &cmd.display(),
                    via,
                    "fleet",
                    format!("`{}` makes the change on many hosts at once", w.label),
                );
            }
            // `ssh db-prod-1 'systemctl restart postgresql'`: a change on a
            // production host is at least HIGH.
            if w.spec.scope_host {
                let changed = self.out[inner_from..]
                    .iter()
                    .any(|r| r.level >= RiskLevel::Medium);
                let host = parsed
                    .positionals()
                    .next()
                    .filter(|&i| !args[i].dynamic)
                    .map(|i| args[i].text.as_str());
                if changed
                    && let Some(host) = host
                    && (self.set.lexicon.names_production(uri_host(host))
                        || self
                            .set
                            .scope
                            .is_production_scope(ScopeKind::Host, uri_host(host)))
                {
                    self.push(
                        RiskLevel::High,
                        &cmd.display(),
                        via,
                        crate::core::plan::PRODUCTION_RULE,
                        format!("a change on production host `{host}`"),
                    );
                }
            }
            let is_tool_mode = w.spec.subcommand.is_some()
                || w.spec.mode == WrapperMode::ExecFlags
                || w.spec.also_rate;
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
        site: Site<'_>,
        allow_unknown: bool,
    ) {
        let Site { part, via, .. } = site;
        let set = self.set;
        let tool = set.tool(program);
        let parsed = parse_args(args, tool.syntax());
        // Only a tool with subcommands (a CLI framework that answers
        // `--help` itself: kubectl, aws, gcloud, docker, git, …), and never an
        // interpreter or a wrapper, whose script or command may ignore it
        // (`bash deploy.sh --help` runs deploy.sh). A known single-purpose
        // tool only when `--help` is all it is given (`chmod --help`).
        if (tool.has_subcommands || (tool.known && args.len() == 1))
            && !set
                .wrappers
                .get(program)
                .is_some_and(|ws| ws.iter().any(|w| w.spec.subcommand.is_none()))
            && Language::of(program).is_none()
            && let Some(flag) = asks_for_help(program, args, &parsed)
        {
            self.push(
                RiskLevel::Low,
                part,
                via,
                "help",
                format!("`{flag}` only prints the program's help"),
            );
            return;
        }
        let positionals: Vec<usize> = parsed.positionals().collect();
        let start = positionals
            .iter()
            .position(|&i| {
                let w = &args[i];
                !w.dynamic
                    && (tool.known_first.contains(w.text.as_str())
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

        // An HTTP request that changes something is read for what its path
        // names (`POST /v1/auth/token/create`, `DELETE /_all`).
        if tool.http {
            self.http_request(args, &parsed, part, via);
        }
        // A SQL client's SQL is parsed; the regex table for SQL is then only
        // the fallback, for what could not be parsed or seen.
        let sql = tool
            .sql
            .as_ref()
            .and_then(|spec| self.sql(program, spec, args, &parsed, cmd, site));
        let sql_parsed = sql.is_some_and(|(all, _)| all);
        // What a client runs from standard input is rated as that command
        // line; the client itself is then not "unknown".
        let allow_unknown = allow_unknown
            && !(cmd.stdin_fed
                && tool.stdin_commands.as_ref().is_some_and(|how| {
                    self.stdin_commands(program, how, args, path_words, cmd, site)
                }));

        let mut matched: Vec<(usize, bool)> = Vec::new();
        let mut rests: Vec<(usize, String)> = Vec::new();
        // The first subcommand word, when it is literal: a rule whose paths
        // all start with other exact words cannot match (most rules of a
        // tool are skipped this way, without walking their paths).
        let first_word = path_words
            .first()
            .map(|&i| &args[i])
            .filter(|w| !w.dynamic)
            .map(|w| w.text.as_str());
        for &idx in set.candidates(program).iter() {
            let r = &set.rules[idx];
            if r.sql_fallback && sql_parsed {
                continue;
            }
            if !r.paths.is_empty()
                && !r.first_glob
                && first_word.is_some_and(|f| !r.first_exact.iter().any(|e| &**e == f))
            {
                continue;
            }
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
            if let Some((true, level)) = sql {
                level
            } else {
                if !allow_unknown {
                    return;
                }
                let word = cmd
                    .words
                    .iter()
                    .find(|w| w.dynamic || !is_assignment(&w.text))
                    .map_or(program, |w| w.text.as_str());
                self.unknown(program, word, tool, args, &parsed, path_words, site)
            }
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
            let level = level.max(sql.map_or(RiskLevel::Low, |(_, l)| l));
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
            // A read rule that only looks for a word anywhere on the line
            // (`^logs$`) cannot vouch for the rest (a program-wide read
            // rule, `echo` or `grep`, can: its arguments are data): `kamal app exec 'rm -rf
            // /data' logs` is read for its verbs too, which can only raise it.
            // Only for plain read rules: an exception (`override`) is a
            // deliberate, whitelisted form; and only a destroy or disrupt
            // verb in the arguments counts, not the program's own name.
            let mut level = level;
            if level == RiskLevel::Low
                && deciding.iter().all(|(i, _)| {
                    let r = &set.rules[*i];
                    r.paths.is_empty() && r.regex.is_some() && !r.override_level
                })
                && let Some(v) = self.set.lexicon.rate(&{
                    let mut w = lexicon_words(program, tool, args, &parsed, path_words);
                    w.path.remove(0);
                    w
                })
                && v.base >= RiskLevel::High
            {
                self.push(v.level, part, via, "lexicon", v.message);
                level = v.level;
            }
            level
        };

        if level >= RiskLevel::Medium {
            // Arguments that name production count only for a command that
            // says it changes something (not a secret read or a dump).
            let lexicon = &self.set.lexicon;
            let named = parsed
                .flags()
                .filter(|(_, _, d)| !d)
                .filter_map(|(_, v, _)| v)
                .chain(
                    parsed
                        .all_positionals()
                        .filter(|&i| !args[i].dynamic)
                        .map(|i| args[i].text.as_str()),
                )
                .find(|w| lexicon.names_production(w))
                .filter(|_| {
                    lexicon.says_change(&lexicon_words(program, tool, args, &parsed, path_words))
                });
            self.production(tool, &parsed, args, part, via, named);
        }
    }

    /// Rates what a tool runs from its standard input (`redis-cli <<<
    /// FLUSHALL`) as the command line it amounts to; input that is not seen
    /// (a pipe from a program, a file) is at least HIGH. Returns whether it
    /// applied (for `lines`: no command on the line).
    #[allow(clippy::too_many_arguments)]
    fn stdin_commands(
        &mut self,
        program: &str,
        how: &StdinCommands,
        args: &[Word],
        path_words: &[usize],
        cmd: &SimpleCommand,
        site: Site<'_>,
    ) -> bool {
        let Site { part, via, depth } = site;
        let applies = match how {
            StdinCommands::Lines => path_words.is_empty(),
            // Even beside the flag: `mongosh --eval '…' --shell` goes on
            // to run what it reads.
            StdinCommands::Flag(_) => true,
        };
        if !applies {
            return false;
        }
        if cmd.stdin_texts.is_empty() {
            self.push(
                RiskLevel::High,
                part,
                via,
                "unseen-stdin",
                format!("`{program}` runs commands fed on standard input, which are only known at run time"),
            );
            return true;
        }
        // The line as written, with the input in place of standard input.
        let mut head = program.to_owned();
        for w in args {
            head.push(' ');
            head.push_str(&w.raw);
        }
        let mut inner_via = via.to_vec();
        inner_via.push(format!("{program} standard input"));
        for text in &cmd.stdin_texts {
            match how {
                StdinCommands::Lines => {
                    for line in text.lines().map(str::trim) {
                        if !line.is_empty() && !line.starts_with('#') {
                            self.line(&format!("{head} {line}"), &inner_via, depth + 1, None);
                        }
                    }
                }
                StdinCommands::Flag(flag) => {
                    let line = format!("{head} {flag}={}", inline::shell_quote(text));
                    self.line(&line, &inner_via, depth + 1, None);
                }
            }
        }
        true
    }

    /// Rates the SQL a SQL client runs (`core::classify::sql`): from its
    /// flags (`psql -c`), a positional (`sqlite3 DB SQL`) and standard
    /// input. Returns whether every piece of SQL was seen and parsed, and
    /// the highest level found; `None` when the line carries no SQL.
    fn sql(
        &mut self,
        program: &str,
        spec: &SqlClientSpec,
        args: &[Word],
        parsed: &ParsedArgs,
        cmd: &SimpleCommand,
        site: Site<'_>,
    ) -> Option<(bool, RiskLevel)> {
        let Site { part, via, depth } = site;
        let dialect = match spec.dialect {
            SqlDialectName::Postgres => Dialect::Postgres,
            SqlDialectName::Mysql => Dialect::MySql,
            SqlDialectName::Sqlite => Dialect::Sqlite,
            SqlDialectName::Generic => Dialect::Generic,
        };
        // (text, read as a script: meta- and dot-commands allowed)
        let mut texts: Vec<(String, bool)> = Vec::new();
        let mut unseen: Vec<String> = Vec::new();
        for (name, value, dynamic) in parsed.flags() {
            if !spec.flags.iter().any(|f| f == name) {
                continue;
            }
            match value {
                Some(v) if dynamic => unseen.push(format!("`{name} {v}`")),
                Some(v) => texts.push((v.to_owned(), dialect == Dialect::Sqlite)),
                None => {}
            }
        }
        if let Some(n) = spec.positional
            && let Some(i) = parsed.positionals().nth(n.saturating_sub(1))
        {
            if args[i].dynamic {
                unseen.push(format!("`{}`", args[i].raw));
            } else {
                texts.push((args[i].text.to_string(), true));
            }
        }
        if cmd.stdin_fed && cmd.stdin_texts.is_empty() {
            unseen.push("standard input".into());
            // What it reads may be made from the writer's templates: rate
            // the SQL in them as if it ran (`SELECT format('DROP TABLE
            // %I;', …) … | psql`).
            for t in &cmd.stdin_from {
                self.generated_sql(t, dialect, part, via);
            }
        }
        texts.extend(cmd.stdin_texts.iter().map(|t| (t.clone(), true)));
        if texts.is_empty() && unseen.is_empty() {
            return None;
        }
        let mut level = RiskLevel::Low;
        let mut all = unseen.is_empty();
        for u in unseen {
            self.push(
                RiskLevel::High,
                part,
                via,
                "sql",
                format!("runs SQL from {u}, which is only known at run time"),
            );
            level = RiskLevel::High;
        }
        let mut inner_via = via.to_vec();
        inner_via.push(format!("{program} shell escape"));
        for (text, script) in texts {
            let split = match dialect {
                Dialect::Postgres if script || text.trim_start().starts_with('\\') => {
                    sql::split_psql(&text)
                }
                Dialect::Sqlite if script => sql::split_sqlite(&text),
                _ => sql::PsqlScript {
                    sql: text.clone(),
                    ..sql::PsqlScript::default()
                },
            };
            for v in split.verdicts {
                level = level.max(v.level);
                self.push(v.level, part, via, "sql", v.reason);
            }
            for line in split.shell.iter().filter(|l| !l.trim().is_empty()) {
                self.line(line, &inner_via, depth + 1, None);
            }
            match sql::rate_sql(&split.sql, dialect) {
                SqlRating::Parsed(verdicts) => {
                    for v in verdicts {
                        level = level.max(v.level);
                        self.push(v.level, part, via, "sql", v.reason);
                    }
                }
                SqlRating::Unparseable(e) => {
                    all = false;
                    self.push(
                        RiskLevel::Low,
                        part,
                        via,
                        "sql-unparsed",
                        format!("the SQL could not be parsed ({e}); the regex table rates it"),
                    );
                }
            }
        }
        Some((all, level))
    }

    /// Rates SQL statements found inside a template (a string literal of
    /// the command writing to a SQL client's input): each from its leading
    /// keyword to the end of the template.
    fn generated_sql(&mut self, template: &str, dialect: Dialect, part: &str, via: &[String]) {
        const KEYWORDS: &[&str] = &[
            "drop ",
            "truncate ",
            "delete ",
            "update ",
            "alter ",
            "grant ",
            "insert ",
        ];
        let lower = template.to_ascii_lowercase();
        for k in KEYWORDS {
            let Some(at) = lower.find(k) else {
                continue;
            };
            let stmt: String = template[at..]
                .split(['\'', ';'])
                .next()
                .unwrap_or("")
                .replace(['%', '$', '{', '}'], "x");
            if let SqlRating::Parsed(verdicts) = sql::rate_sql(&stmt, dialect) {
                for v in verdicts {
                    self.push(
                        v.level,
                        part,
                        via,
                        "sql-generated",
                        format!("reads SQL made from `{}`: {}", template.trim(), v.reason),
                    );
                }
            }
        }
    }

    /// Rates the URL path of an HTTP request that is not a read (a method
    /// other than GET/HEAD/OPTIONS, or a body) with the verb lexicon: the
    /// method is a verb, and so are the path's words.
    fn http_request(&mut self, args: &[Word], parsed: &ParsedArgs, part: &str, via: &[String]) {
        const METHOD_FLAGS: &[&str] = &["-X", "--request", "--method"];
        const BODY_FLAGS: &[&str] = &[
            "-d",
            "--data",
            "--data-raw",
            "--data-binary",
            "--data-urlencode",
            "--json",
            "-F",
            "--form",
            "-T",
            "--upload-file",
            "--post-data",
            "--post-file",
            "--body-data",
            "--body-file",
        ];
        let mut method = parsed
            .flags()
            .filter(|(n, _, _)| METHOD_FLAGS.contains(n))
            .filter_map(|(_, v, _)| v)
            .last()
            .map(str::to_ascii_uppercase);
        // httpie and xh: the method is the first positional.
        let positionals: Vec<&Word> = parsed.positionals().map(|i| &args[i]).collect();
        if method.is_none()
            && let Some(first) = positionals.first()
            && matches!(
                first.text.as_str(),
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
            )
        {
            method = Some(first.text.to_string());
        }
        let body = parsed.flags().any(|(n, _, _)| BODY_FLAGS.contains(&n));
        let reading = match method.as_deref() {
            Some("GET" | "HEAD" | "OPTIONS") => true,
            Some(_) => false,
            None => !body,
        };
        if reading {
            return;
        }
        let method = method.unwrap_or_else(|| "POST".into());
        for url in positionals
            .iter()
            .filter(|w| !w.dynamic && looks_like_url(&w.text))
        {
            let path = url_path(&url.text);
            let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            let verb = method.to_ascii_lowercase();
            let words = Words {
                path: std::iter::once(verb.as_str())
                    .chain(segments.iter().copied())
                    .collect(),
                flags: Vec::new(),
                valued: Vec::new(),
                later: Vec::new(),
                all: segments.clone(),
                phrases: Vec::new(),
                scripts: Vec::new(),
            };
            if let Some(v) = self.set.lexicon.rate(&words) {
                // `DELETE /v1/users/42` acts on one item of a collection:
                // the verb decides, not what the collection is called.
                let one_item = segments.last().is_some_and(|s| looks_like_id(s));
                let level = if one_item { v.base } else { v.level };
                self.push(
                    level,
                    part,
                    via,
                    "lexicon",
                    format!("HTTP {method} {path}: {}", v.message),
                );
            }
        }
    }

    /// SQL handed to a tool no rule knows: any argument or flag value that
    /// starts with a SQL keyword and parses (generic, then MySQL, then
    /// PostgreSQL grammar). Its level, with a reason per statement.
    fn embedded_sql(
        &mut self,
        args: &[Word],
        parsed: &ParsedArgs,
        part: &str,
        via: &[String],
    ) -> Option<RiskLevel> {
        const STARTS: &[&str] = &[
            "select", "insert", "update", "delete", "drop", "truncate", "alter", "create", "grant",
            "revoke", "with", "explain", "show", "merge", "replace",
        ];
        let values = parsed
            .flags()
            .filter(|(_, _, d)| !d)
            .filter_map(|(_, v, _)| v)
            .chain(args.iter().filter(|w| !w.dynamic).map(|w| w.text.as_str()));
        let mut found: Option<RiskLevel> = None;
        for v in values {
            let first = v
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !STARTS.contains(&first.as_str()) || !v.contains(char::is_whitespace) {
                continue;
            }
            let Some(verdicts) = [Dialect::Generic, Dialect::MySql, Dialect::Postgres]
                .into_iter()
                .find_map(|d| match sql::rate_sql(v, d) {
                    SqlRating::Parsed(verdicts) => Some(verdicts),
                    SqlRating::Unparseable(_) => None,
                })
            else {
                continue;
            };
            for verdict in verdicts {
                found = Some(found.map_or(verdict.level, |l| l.max(verdict.level)));
                self.push(verdict.level, part, via, "sql", verdict.reason);
            }
            found.get_or_insert(RiskLevel::Low);
        }
        found
    }

    /// What no rule knows: rated by the verb lexicon, or MEDIUM when no
    /// word of it is a known verb.
    #[allow(clippy::too_many_arguments)]
    fn unknown(
        &mut self,
        program: &str,
        program_word: &str,
        tool: &Tool,
        args: &[Word],
        parsed: &ParsedArgs,
        path_words: &[usize],
        site: Site<'_>,
    ) -> RiskLevel {
        let Site { part, via, .. } = site;
        let what = if tool.known {
            match path_words.first().map(|&i| args[i].text.as_str()) {
                None | Some("") => format!("`{program}` without a known subcommand"),
                Some(sub) => format!("unknown subcommand `{sub}` of `{program}`"),
            }
        } else {
            format!("unknown program `{program}`")
        };
        // `doppler run -- kubectl delete ns prod`, `mytool exec -- rm -rf
        // /data`: what follows `--` is, for most tools that take one, the
        // command they run. A tool no rule knows is not trusted to do
        // otherwise: the tail is rated as a command too (which can only
        // raise the line).
        if let Some(dd) = parsed.double_dash
            && let Some(first) = args.get(dd + 1)
            && (first.dynamic || !first.text.starts_with('-'))
        {
            let inner = SimpleCommand {
                words: args[dd + 1..].to_vec(),
                ..SimpleCommand::default()
            };
            let mut inner_via = via.to_vec();
            inner_via.push(format!("{program} --"));
            self.command(&inner, &inner_via, site.depth + 1);
        }
        let words = lexicon_words(program, tool, args, parsed, path_words);
        // SQL handed to a tool no rule knows (`wrangler d1 execute
        // --command="DROP TABLE users"`): rated by the SQL parser.
        if let Some(level) = self.embedded_sql(args, parsed, part, via) {
            return level;
        }
        // A script (`./deploy.sh`, `scripts/migrate`, `/opt/x/reindex.sh`)
        // or an interpreter running one (`bash deploy.sh`, `python3
        // manage.py`): the script decides, and the line
        // does not show it. Its words can raise the level, never lower it
        // below HIGH.
        let interpreter = Language::of(program).is_some()
            || self.set.wrappers.get(program).is_some_and(|ws| {
                ws.iter()
                    .any(|w| w.spec.mode == WrapperMode::ShellString && w.spec.subcommand.is_none())
            });
        let script = if interpreter {
            // `python3 -m http.server`: an installed module, not a script.
            // (`bash -- deploy.sh` is rated by its `--` tail, above.)
            parsed
                .positionals()
                .next()
                .filter(|_| !parsed.has_flag("-m"))
                .map(|i| args[i].raw.as_str())
        } else {
            // `kafka-topics.sh` is a known tool's spelling, not a script.
            // The word as written, or the program an alias names.
            (!tool.known && (is_script_path(program_word) || is_script_path(program)))
                .then_some(program_word)
        };
        if let Some(v) = self.set.lexicon.rate(&words)
            && (script.is_none() || v.level > RiskLevel::High)
        {
            self.push(
                v.level,
                part,
                via,
                "lexicon",
                format!("{what}: {}", v.message),
            );
            return v.level;
        }
        if let Some(script) = script {
            let what = if interpreter {
                format!("`{program}` runs `{script}`, a script that the line does not show")
            } else {
                format!("`{script}` is a script that the line does not show")
            };
            self.push(RiskLevel::High, part, via, "script", what);
            return RiskLevel::High;
        }
        if let Some(flag) = self.set.lexicon.dry_run(&words) {
            self.push(
                RiskLevel::Low,
                part,
                via,
                "lexicon",
                format!("{what}: `{flag}` only shows what it would do"),
            );
            return RiskLevel::Low;
        }
        // `heroku apps`, `cf apps`, `restic snapshots`: a bare plural noun,
        // no flag, lists.
        // Only one word: with two, the first may be a verb no list knows
        // (`kubectl frobnicate pods`).
        let nouns: Vec<&str> = words.path[1..].to_vec();
        if nouns.len() == 1
            && words.flags.is_empty()
            && nouns
                .iter()
                .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
            && nouns
                .last()
                .is_some_and(|w| w.len() > 3 && w.ends_with('s') && !w.ends_with("ss"))
        {
            self.push(
                RiskLevel::Low,
                part,
                via,
                "lexicon",
                format!(
                    "{what}: a bare plural noun (`{}`) lists what there is",
                    nouns.join(" ")
                ),
            );
            return RiskLevel::Low;
        }
        // An unknown word is not a read: beside a production name
        // (`vercel --prod`, `./deploy.sh --env production`) it is HIGH.
        if let Some(p) = words
            .all
            .iter()
            .find(|w| self.set.lexicon.names_production(w))
        {
            self.push(
                RiskLevel::High,
                part,
                via,
                "unknown",
                format!("{what}: unknown: no rule knows this program, and `{p}` names production"),
            );
            return RiskLevel::High;
        }
        self.push(
            RiskLevel::Medium,
            part,
            via,
            "unknown",
            format!("{what}: unknown: no rule knows this program"),
        );
        RiskLevel::Medium
    }

    /// A mutation in a production namespace or context is at least HIGH; so is
    /// one whose namespace or context is only known at run time.
    fn production(
        &mut self,
        tool: &Tool,
        parsed: &ParsedArgs,
        args: &[Word],
        part: &str,
        via: &[String],
        named_arg: Option<&str>,
    ) {
        let before = self.out.len();
        /// One kind of scope: the flags that name it, the plan target's value,
        /// and what counts as production.
        struct Scope<'s> {
            flags: &'s [String],
            fallback: &'s Option<String>,
            what: &'static str,
            is_production: &'s dyn Fn(&str) -> bool,
        }
        let set = self.set;
        // A context or namespace switched earlier on the line wins over the
        // plan's target.
        let pick = |line: &Option<String>, target: &Option<String>, flags: &[String]| {
            if flags.is_empty() {
                None
            } else {
                line.clone().or_else(|| target.clone())
            }
        };
        let context_fallback = &pick(
            &self.kube_context,
            &self.ctx.kube_context,
            &tool.context_flags,
        );
        let namespace_fallback = &pick(
            &self.kube_namespace,
            &self.ctx.namespace,
            &tool.namespace_flags,
        );
        let scopes = [
            Scope {
                flags: &tool.namespace_flags,
                fallback: namespace_fallback,
                what: "namespace",
                is_production: &|ns| {
                    set.scope.is_production_namespace(ns) || set.lexicon.names_production(ns)
                },
            },
            Scope {
                flags: &tool.context_flags,
                fallback: context_fallback,
                what: "context",
                is_production: &|c| {
                    set.scope.is_production_context(c) || set.lexicon.names_production(c)
                },
            },
        ];
        // Other scopes (`--profile prod`, `--project acme-prod`, a host in
        // a URI `mongodb://mongo-prod-1/app`): named on the line only.
        let lexicon = &set.lexicon;
        let named = |kind: ScopeKind, v: &str| {
            lexicon.names_production(v) || set.scope.is_production_scope(kind, v)
        };
        let scoped = parsed
            .flags()
            .filter(|(n, _, d)| !d && tool.scope_flags.iter().any(|f| f == n))
            .filter_map(|(n, v, _)| v.map(|v| (n, v)))
            .find(|(n, v)| named(ScopeKind::of(n), v))
            .map(|(n, v)| format!("{n} {v}"))
            .or_else(|| {
                parsed
                    .all_positionals()
                    .map(|i| args[i].text.as_str())
                    .find(|w| w.contains("://") && named(ScopeKind::Host, uri_host(w)))
                    .map(str::to_owned)
            });
        // `AWS_PROFILE=prod aws …`, `export TF_WORKSPACE=prod; terraform …`.
        let scoped = scoped.or_else(|| {
            self.command_env
                .iter()
                .chain(self.scope_env.iter())
                .find(|(n, v)| {
                    lexicon.is_scope_variable(n) && (v.is_empty() || named(ScopeKind::of(n), v))
                })
                .map(|(n, v)| {
                    if v.is_empty() {
                        format!("{n}, set at run time")
                    } else {
                        format!("{n}={v}")
                    }
                })
        });
        if let Some(s) = scoped {
            self.push(
                RiskLevel::High,
                part,
                via,
                crate::core::plan::PRODUCTION_RULE,
                format!("mutation in production scope `{s}`"),
            );
        }
        for Scope {
            flags,
            fallback,
            what,
            is_production,
        } in scopes
        {
            if flags.is_empty() {
                continue;
            }
            // The command's own flag wins; the plan's target is the fallback.
            let value = parsed
                .last_value_of(flags)
                .map(|(v, dynamic)| (v.to_owned(), dynamic))
                .or_else(|| {
                    fallback.clone().map(|v| {
                        let dynamic = v.is_empty();
                        (v, dynamic)
                    })
                });
            let message = match value {
                Some((v, true)) => {
                    format!("mutation in {what} `{v}`, which is only known at run time")
                }
                Some((v, false)) if is_production(&v) => {
                    format!("mutation in production {what} `{v}`")
                }
                _ => continue,
            };
            self.push(
                RiskLevel::High,
                part,
                via,
                crate::core::plan::PRODUCTION_RULE,
                message,
            );
        }
        // `aws rds reboot-db-instance --db-instance-identifier db-prod-1`:
        // what the change acts on is named production (when no scope said
        // so already).
        if self.out.len() == before
            && let Some(w) = named_arg
        {
            self.push(
                RiskLevel::High,
                part,
                via,
                crate::core::plan::PRODUCTION_RULE,
                format!("a change to `{w}`, which names production"),
            );
        }
    }
}

/// The help flag of a command that only asks for help: `--help` or
/// `-help` before any `--`, or a last word `help` (`aws ec2
/// terminate-instances help`). Not for a script named by its path, which
/// may ignore it.
fn asks_for_help<'a>(program: &str, args: &'a [Word], parsed: &ParsedArgs) -> Option<&'a str> {
    if program.ends_with(".sh") || program.ends_with(".py") || program.contains('/') {
        return None;
    }
    let before_dd = parsed.double_dash.unwrap_or(args.len());
    let words = &args[..before_dd];
    if words.iter().any(|w| w.dynamic) {
        return None;
    }
    if let Some(w) = words
        .iter()
        .find(|w| matches!(w.text.as_str(), "--help" | "-help"))
    {
        return Some(w.text.as_str());
    }
    match words.last() {
        Some(w) if w.text == "help" && words.len() > 1 => Some(w.text.as_str()),
        _ => None,
    }
}

/// The words of a command as the verb lexicon reads them: the program
/// name (`dropdb`, `kafka-delete-records`), the leading positionals, the
/// flag names, every argument and flag value, the SQL a SQL client could
/// not parse, and the arguments of several words (scripts).
fn lexicon_words<'a>(
    program: &'a str,
    tool: &'a Tool,
    args: &'a [Word],
    parsed: &'a ParsedArgs,
    path_words: &[usize],
) -> Words<'a> {
    let mut all: Vec<&str> = args
        .iter()
        .filter(|w| !w.dynamic)
        .map(|w| w.text.as_str())
        .collect();
    all.extend(parsed.flags().filter_map(|(_, v, d)| v.filter(|_| !d)));
    let sql_words = tool.sql.iter().flat_map(|spec| {
        parsed
            .flags()
            .filter(|(n, _, d)| !d && spec.flags.iter().any(|f| f == n))
            .filter_map(|(_, v, _)| v)
    });
    Words {
        path: std::iter::once(program)
            .chain(
                path_words
                    .iter()
                    .take(LEXICON_PATH_WORDS)
                    .filter(|&&i| !args[i].dynamic)
                    .map(|&i| args[i].text.as_str()),
            )
            .collect(),
        // Not a word right after a flag: it may be the flag's value
        // (`--snapshot-name pre-upgrade`).
        later: path_words
            .iter()
            .skip(LEXICON_PATH_WORDS)
            .filter(|&&i| !(args[i].dynamic || i > 0 && args[i - 1].text.starts_with('-')))
            .map(|&i| args[i].text.as_str())
            .collect(),
        phrases: sql_words.collect(),
        scripts: args
            .iter()
            .filter(|w| !w.dynamic && w.text.contains(char::is_whitespace))
            .map(|w| w.text.as_str())
            .collect(),
        flags: parsed.flags().map(|(n, _, _)| n).collect(),
        valued: parsed
            .flags()
            .filter(|(_, v, _)| v.is_some())
            .map(|(n, _, _)| n)
            .collect(),
        all,
    }
}

/// A program word that names a script rather than an installed program:
/// a relative or home path (`./deploy.sh`, `scripts/migrate`,
/// `~/bin/rotate`) or a script's extension (`/opt/ops/reindex.sh`).
fn is_script_path(word: &str) -> bool {
    const EXTENSIONS: &[&str] = &[
        "sh", "bash", "zsh", "ksh", "py", "rb", "pl", "js", "mjs", "cjs", "ts", "php", "ps1",
        "lua", "tcl", "groovy", "r",
    ];
    let relative = word.starts_with("./")
        || word.starts_with("../")
        || word.starts_with("~/")
        || (word.contains('/') && !word.starts_with('/'));
    let extension = basename(word).rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
    });
    relative || extension
}

/// A word that names an HTTP resource: a URL, or `host[:port]/path`.
fn looks_like_url(w: &str) -> bool {
    w.contains("://")
        || (w.contains('/')
            && !w.starts_with(['/', '.', '-', '@'])
            && !w.contains(char::is_whitespace))
}

/// The path of a URL, without its scheme, host, query or fragment:
/// `http://es:9200/logs/_delete_by_query?x=1` is `/logs/_delete_by_query`.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

/// A URL path segment that names one item: a number, a UUID, a hash.
fn looks_like_id(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_digit())
        || (s.len() >= 8 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

/// How many known programs a globbed program word is rated as.
const MAX_GLOB_CANDIDATES: usize = 16;

/// Whether a word as written has a glob character outside quotes.
fn unquoted_glob(raw: &str) -> bool {
    if !raw.bytes().any(|b| matches!(b, b'*' | b'?' | b'[')) {
        return false;
    }
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in raw.char_indices() {
        match quote {
            _ if escaped => escaped = false,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\\' => escaped = true,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if matches!(c, '*' | '?') => return true,
            // A bracket is a glob only with its closing `]` (`[`, `[[` are
            // programs).
            None if c == '[' && raw[i + 1..].contains(']') => return true,
            None => {}
        }
    }
    false
}

/// The worst path a path glob can name: the first of the system and data
/// directories it matches (`/e*c` is `/etc`, `/[e]tc` too).
fn worst_case_path(glob: &str) -> Option<&'static str> {
    const WORST: &[&str] = &[
        "/",
        "/etc",
        "/usr",
        "/boot",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/var",
        "/var/lib",
        "/home",
        "/root",
        "/opt",
        "/srv",
        "/var/lib/mysql",
        "/var/lib/postgresql",
        "/var/lib/docker",
        "/var/lib/etcd",
        "/var/lib/kubelet",
        "/etc/passwd",
        "/etc/shadow",
        "/etc/sudoers",
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/vda",
    ];
    let g = GlobPattern::new(glob).ok()?;
    WORST.iter().copied().find(|p| g.is_match(p))
}

/// The host of a URI: `mongodb://user@mongo-prod-1:27017/app` is
/// `mongo-prod-1:27017`.
fn uri_host(uri: &str) -> &str {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Where a command stands: its text for reasons, the wrappers it runs
/// under, and how deep.
#[derive(Clone, Copy)]
struct Site<'s> {
    part: &'s str,
    via: &'s [String],
    depth: usize,
}

impl<'s> Site<'s> {
    fn new(part: &'s str, via: &'s [String], depth: usize) -> Self {
        Site { part, via, depth }
    }
}

enum Unwrapped {
    No,
    Yes,
    AlsoRate,
}
