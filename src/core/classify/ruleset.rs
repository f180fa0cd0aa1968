//! The compiled rule set: everything the classifier knows, indexed for fast
//! lookup.
//!
//! Built once when the policy loads, from the built-in pack plus the user's
//! tools, rules and aliases. Rules are looked up by program name, so the cost
//! of classifying a line does not grow with rules for other programs.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Map, Set};

use super::args::FlagSyntax;
use super::lexicon::{Lexicon, LexiconSpec};
use super::schema::{
    DryRunSpec, GlobPattern, Pattern, RedirectSpec, RulePack, RuleSpec, ToolSpec, WrapperSpec,
};
use crate::core::risk::RiskLevel;

/// Where production starts: namespaces by name, kube contexts by glob.
#[derive(Debug, Clone, Default)]
pub struct ProductionScope {
    pub namespaces: Vec<String>,
    pub contexts: Vec<GlobPattern>,
    /// Profiles, projects, resource groups, hosts and stacks (globs) that
    /// are production, beyond the lexicon's production words.
    pub scopes: Vec<GlobPattern>,
    /// Globs for one kind of scope only (`safety.production_profiles`, …).
    pub by_kind: Vec<(ScopeKind, GlobPattern)>,
}

/// The kind of scope a flag or variable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Profile,
    Project,
    ResourceGroup,
    Subscription,
    Host,
    Stack,
    Other,
}

impl ScopeKind {
    /// The kind a scope flag or variable names, by its name: `--profile`
    /// and `AWS_PROFILE` name a profile, `-h`, `--endpoints` and `PGHOST`
    /// a host, `--stack` and `TF_WORKSPACE` a stack.
    pub fn of(name: &str) -> ScopeKind {
        let n = name.trim_start_matches('-').to_ascii_lowercase();
        if n.contains("profile") {
            ScopeKind::Profile
        } else if n.contains("project") {
            ScopeKind::Project
        } else if n == "g" || n.contains("resource-group") || n.contains("resource_group") {
            ScopeKind::ResourceGroup
        } else if n.contains("subscription") {
            ScopeKind::Subscription
        } else if n.contains("stack") || n.contains("workspace") || n == "s" {
            ScopeKind::Stack
        } else if n == "h"
            || n == "u"
            || ["host", "endpoint", "server", "url", "addr", "zookeeper"]
                .iter()
                .any(|k| n.contains(k))
        {
            ScopeKind::Host
        } else {
            ScopeKind::Other
        }
    }
}

impl ProductionScope {
    /// Whether a scope value of this kind is production by the policy's
    /// globs (`production_scopes` for any kind, or the kind's own list).
    pub fn is_production_scope(&self, kind: ScopeKind, value: &str) -> bool {
        self.scopes.iter().any(|g| g.is_match(value))
            || self
                .by_kind
                .iter()
                .any(|(k, g)| *k == kind && g.is_match(value))
    }

    pub fn is_production_namespace(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|n| n == ns)
    }

    pub fn is_production_context(&self, ctx: &str) -> bool {
        self.contexts.iter().any(|g| g.is_match(ctx))
    }
}

/// The user's additions to the built-in pack.
#[derive(Debug, Clone, Copy)]
pub struct UserRules<'a> {
    pub tools: &'a BTreeMap<String, ToolSpec>,
    pub rules: &'a [RuleSpec],
    pub aliases: &'a BTreeMap<String, String>,
    pub lexicon: &'a LexiconSpec,
}

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Exact(String),
    Pattern(WordPattern),
}

impl Segment {
    fn new(s: &str) -> Result<Self, globset::Error> {
        if GlobPattern::is_glob(s) {
            WordPattern::new(s).map(Segment::Pattern)
        } else {
            Ok(Segment::Exact(s.to_owned()))
        }
    }

    pub(crate) fn matches(&self, word: &str) -> bool {
        match self {
            Segment::Exact(e) => e == word,
            Segment::Pattern(p) => p.is_match(word),
        }
    }
}

/// A glob on one word. The shapes the rule tables use most, `*` and
/// `describe-*`, are matched with plain string operations; anything else goes
/// through `globset`. (Measured: this halves the cost of matching aws rules.)
#[derive(Debug, Clone)]
pub(crate) enum WordPattern {
    Any,
    Prefix(String),
    Glob(GlobPattern),
}

impl WordPattern {
    fn new(s: &str) -> Result<Self, globset::Error> {
        if s == "*" {
            return Ok(WordPattern::Any);
        }
        match s.strip_suffix('*') {
            Some(prefix) if !GlobPattern::is_glob(prefix) && !prefix.contains('[') => {
                Ok(WordPattern::Prefix(prefix.to_owned()))
            }
            _ => GlobPattern::new(s).map(WordPattern::Glob),
        }
    }

    pub(crate) fn is_match(&self, word: &str) -> bool {
        match self {
            WordPattern::Any => true,
            WordPattern::Prefix(p) => word.starts_with(p.as_str()),
            WordPattern::Glob(g) => g.is_match(word),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub id: String,
    pub user: bool,
    pub override_level: bool,
    pub level: RiskLevel,
    pub reason: Option<String>,
    pub paths: Vec<Vec<Segment>>,
    pub resources: Vec<String>,
    pub flags: Vec<String>,
    pub regex: Option<Pattern>,
    pub unless: Option<Pattern>,
    pub stdin: Option<bool>,
    pub sql_fallback: bool,
    /// The exact first words of the subcommand paths, and whether any path
    /// starts with a pattern: a quick refusal before `match_path`. A rule
    /// has one to a few paths, so a slice beats hashing the word per rule.
    pub first_exact: Box<[Box<str>]>,
    pub first_glob: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Tool {
    pub value_flags: Set<String>,
    pub attached_value_flags: Set<String>,
    pub single_dash_long: bool,
    pub plus_flags: bool,
    pub namespace_flags: Vec<String>,
    pub context_flags: Vec<String>,
    pub scope_flags: Vec<String>,
    pub resource_aliases: Map<String, String>,
    pub sql: Option<super::schema::SqlClientSpec>,
    pub stdin_commands: Option<super::schema::StdinCommands>,
    pub path_args: bool,
    pub http: bool,
    pub dry_run: Vec<DryRunSpec>,
    /// First subcommand words that some rule names exactly.
    pub known_first: Set<String>,
    /// First subcommand words that some rule names by a glob (`* describe-*`).
    pub first_globs: Vec<WordPattern>,
    /// Some rule names a subcommand of this tool.
    pub has_subcommands: bool,
    /// Whether any spec or rule mentions the tool.
    pub known: bool,
}

impl Tool {
    pub(crate) fn syntax(&self) -> FlagSyntax<'_> {
        FlagSyntax {
            value_flags: &self.value_flags,
            attached_value_flags: &self.attached_value_flags,
            single_dash_long: self.single_dash_long,
            plus_flags: self.plus_flags,
            stop_at_positional: false,
        }
    }

    /// The canonical kind for a resource word: `ns`, `namespaces` and
    /// `namespace.v1` all name `namespace`.
    pub(crate) fn canonical_resource<'w>(&'w self, word: &'w str) -> Cow<'w, str> {
        let base = word.split('.').next().unwrap_or(word);
        let lower: Cow<'_, str> = if base.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(base.to_ascii_lowercase())
        } else {
            Cow::Borrowed(base)
        };
        match self.resource_aliases.get(&*lower) {
            Some(c) => Cow::Borrowed(c.as_str()),
            None => lower,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Wrapper {
    pub spec: WrapperSpec,
    pub value_flags: Set<String>,
    pub label: String,
}

/// Everything the classifier needs, compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) by_program: Map<String, Vec<usize>>,
    pub(crate) glob_programs: Vec<(WordPattern, usize)>,
    pub(crate) tools: Map<String, Tool>,
    pub(crate) wrappers: Map<String, Vec<Wrapper>>,
    pub(crate) redirects: RedirectSpec,
    pub(crate) dynamic_programs: Map<String, (RiskLevel, String)>,
    pub(crate) aliases: Map<String, Vec<String>>,
    pub(crate) scope: ProductionScope,
    pub(crate) lexicon: Lexicon,
    empty_tool: Tool,
    user_rule_count: usize,
}

/// A rule that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    #[error("{origin} rule {index}: invalid subcommand pattern `{pattern}`: {detail}")]
    BadSegment {
        origin: &'static str,
        index: usize,
        pattern: String,
        detail: String,
    },
}

impl RuleSet {
    pub fn compile(
        pack: &RulePack,
        user: UserRules<'_>,
        scope: ProductionScope,
    ) -> Result<Self, RuleSetError> {
        let mut set = RuleSet {
            rules: Vec::new(),
            by_program: Map::default(),
            glob_programs: Vec::new(),
            tools: Map::default(),
            wrappers: Map::default(),
            redirects: pack.redirects.clone(),
            dynamic_programs: Map::default(),
            aliases: Map::default(),
            scope,
            lexicon: Lexicon::default(),
            empty_tool: Tool::default(),
            user_rule_count: user.rules.len(),
        };
        set.lexicon.extend(&pack.lexicon);
        set.lexicon.extend(user.lexicon);
        for (name, spec) in &pack.tools {
            set.tool_mut(name).extend(spec);
        }
        for (name, spec) in user.tools {
            set.tool_mut(name).extend(spec);
        }
        for (i, r) in pack.rules.iter().enumerate() {
            set.add_rule(r, false, i)?;
        }
        for (i, r) in user.rules.iter().enumerate() {
            set.add_rule(r, true, i)?;
        }
        for w in &pack.wrappers {
            for program in w.program.iter() {
                let label = match (&w.subcommand, &w.shell_flag) {
                    (Some(sub), _) => format!("{program} {sub}"),
                    (None, Some(flag)) => format!("{program} {flag}"),
                    (None, None) => program.to_owned(),
                };
                set.wrappers
                    .entry(program.to_owned())
                    .or_default()
                    .push(Wrapper {
                        spec: w.clone(),
                        value_flags: w.value_flags.iter().cloned().collect(),
                        label,
                    });
            }
        }
        for d in &pack.dynamic_programs {
            for p in d.program.iter() {
                set.dynamic_programs
                    .insert(p.to_owned(), (d.level, d.reason.clone()));
            }
        }
        for (alias, target) in pack.aliases.iter().chain(user.aliases) {
            let words: Vec<String> = target.split_whitespace().map(str::to_owned).collect();
            if !words.is_empty() {
                set.aliases.insert(alias.clone(), words);
            }
        }
        for (program, idxs) in &set.by_program {
            let mut known_first = Set::default();
            let mut first_globs = Vec::new();
            for first in idxs
                .iter()
                .flat_map(|&i| set.rules[i].paths.iter())
                .filter_map(|p| p.first())
            {
                match first {
                    Segment::Exact(e) => {
                        known_first.insert(e.clone());
                    }
                    Segment::Pattern(g) => first_globs.push(g.clone()),
                }
            }
            let has_paths = idxs.iter().any(|&i| !set.rules[i].paths.is_empty());
            let tool = set.tools.entry(program.clone()).or_default();
            tool.known = true;
            tool.known_first = known_first;
            tool.first_globs = first_globs;
            tool.has_subcommands = has_paths;
        }
        // Resource conditions are written in any spelling; store canonical.
        let tools = set.tools.clone();
        for (program, idxs) in &set.by_program {
            let Some(tool) = tools.get(program) else {
                continue;
            };
            for &i in idxs {
                let canon: Vec<String> = set.rules[i]
                    .resources
                    .iter()
                    .map(|r| tool.canonical_resource(r).into_owned())
                    .collect();
                set.rules[i].resources = canon;
            }
        }
        Ok(set)
    }

    fn tool_mut(&mut self, name: &str) -> &mut Tool {
        let t = self.tools.entry(name.to_owned()).or_default();
        t.known = true;
        t
    }

    fn add_rule(&mut self, r: &RuleSpec, user: bool, index: usize) -> Result<(), RuleSetError> {
        let origin = if user { "user" } else { "built-in" };
        let mut paths = Vec::new();
        for path in r.subcommand.iter() {
            let mut segs = Vec::new();
            for s in path.split_whitespace() {
                segs.push(Segment::new(s).map_err(|e| RuleSetError::BadSegment {
                    origin,
                    index,
                    pattern: path.to_owned(),
                    detail: e.to_string(),
                })?);
            }
            paths.push(segs);
        }
        let id = r.id.clone().unwrap_or_else(|| derive_rule_id(user, index));
        let first_exact = paths
            .iter()
            .filter_map(|p: &Vec<Segment>| match p.first() {
                Some(Segment::Exact(e)) => Some(e.as_str().into()),
                _ => None,
            })
            .collect::<Vec<Box<str>>>()
            .into_boxed_slice();
        let first_glob = paths
            .iter()
            .any(|p| matches!(p.first(), Some(Segment::Pattern(_)) | None));
        let compiled = CompiledRule {
            id,
            user,
            override_level: r.override_level,
            level: r.level,
            reason: r.reason.clone(),
            paths,
            resources: r.resources.iter().map(|s| s.to_ascii_lowercase()).collect(),
            flags: r.flags.clone(),
            regex: r.regex.clone(),
            unless: r.unless.clone(),
            stdin: r.stdin,
            sql_fallback: r.sql_fallback,
            first_exact,
            first_glob,
        };
        let idx = self.rules.len();
        self.rules.push(compiled);
        for program in r.program.iter() {
            if GlobPattern::is_glob(program) {
                let g = WordPattern::new(program).map_err(|e| RuleSetError::BadSegment {
                    origin,
                    index,
                    pattern: program.to_owned(),
                    detail: e.to_string(),
                })?;
                self.glob_programs.push((g, idx));
            } else {
                self.by_program
                    .entry(program.to_owned())
                    .or_default()
                    .push(idx);
            }
        }
        Ok(())
    }

    pub(crate) fn tool(&self, program: &str) -> &Tool {
        self.tools.get(program).unwrap_or(&self.empty_tool)
    }

    /// Indices of the rules that name this program, in rule order.
    pub(crate) fn candidates(&self, program: &str) -> Cow<'_, [usize]> {
        let named = self.by_program.get(program).map_or(&[][..], Vec::as_slice);
        let mut globbed = self
            .glob_programs
            .iter()
            .filter(|(g, _)| g.is_match(program))
            .map(|(_, idx)| *idx)
            .peekable();
        if globbed.peek().is_none() {
            return Cow::Borrowed(named);
        }
        let mut v: Vec<usize> = named.iter().copied().chain(globbed).collect();
        v.sort_unstable();
        Cow::Owned(v)
    }

    /// Every program a rule, a wrapper or a tool spec names (for a globbed
    /// program word).
    pub(crate) fn known_programs(&self) -> impl Iterator<Item = &str> {
        self.by_program
            .keys()
            .chain(self.wrappers.keys())
            .chain(self.tools.keys())
            .map(String::as_str)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn user_rule_count(&self) -> usize {
        self.user_rule_count
    }
}

impl Tool {
    fn extend(&mut self, spec: &ToolSpec) {
        self.value_flags.extend(spec.value_flags.iter().cloned());
        self.attached_value_flags
            .extend(spec.attached_value_flags.iter().cloned());
        self.single_dash_long |= spec.single_dash_long;
        self.plus_flags |= spec.plus_flags;
        for f in &spec.namespace_flags {
            if !self.namespace_flags.contains(f) {
                self.namespace_flags.push(f.clone());
            }
            self.value_flags.insert(f.clone());
        }
        for f in &spec.context_flags {
            if !self.context_flags.contains(f) {
                self.context_flags.push(f.clone());
            }
            self.value_flags.insert(f.clone());
        }
        self.path_args |= spec.path_args;
        self.http |= spec.http;
        if let Some(sql) = &spec.sql {
            self.value_flags.extend(sql.flags.iter().cloned());
            self.sql = Some(sql.clone());
        }
        if let Some(s) = &spec.stdin_commands {
            self.stdin_commands = Some(s.clone());
        }
        for f in &spec.scope_flags {
            if !self.scope_flags.contains(f) {
                self.scope_flags.push(f.clone());
            }
            self.value_flags.insert(f.clone());
        }
        for (k, v) in &spec.resource_aliases {
            self.resource_aliases
                .insert(k.to_ascii_lowercase(), v.to_ascii_lowercase());
        }
        if !spec.dry_run.is_empty() {
            self.dry_run = spec.dry_run.clone();
        }
    }
}

/// Rules without an `id` are named by origin and position: `user#3` is the
/// third rule of the user's policy.
fn derive_rule_id(user: bool, index: usize) -> String {
    let origin = if user { "user" } else { "builtin" };
    format!("{origin}#{}", index + 1)
}
