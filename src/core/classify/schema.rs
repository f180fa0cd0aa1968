//! The serialized form of the classifier's knowledge: tools, wrappers,
//! redirect targets and rules.
//!
//! The built-in pack (`config/rules.yaml`) and the user's policy share these
//! types. Patterns (regexes and globs) are compiled while the YAML is read, so a
//! bad pattern is reported at its file, line and column, and classification
//! never compiles a pattern per call.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::risk::RiskLevel;

/// A value that may be written as one string or as a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany(pub Vec<String>);

impl OneOrMany {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let raw = Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?;
        let v = match raw {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        };
        if v.iter().any(|s| s.trim().is_empty()) {
            return Err(serde::de::Error::custom("empty string in list"));
        }
        Ok(OneOrMany(v))
    }
}

/// A regular expression compiled when the policy loads. Rule regexes run in
/// multi-line mode, so `^` and `$` match at each argument's start and end.
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn new(src: &str) -> Result<Self, regex::Error> {
        regex::RegexBuilder::new(src)
            .multi_line(true)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.0.is_match(haystack)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.0.as_str())
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(|e| {
            serde::de::Error::custom(format!("invalid regex `{s}`: {}", one_line(&e.to_string())))
        })
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A shell-style glob (`*prod*`, `mkfs*`, `/dev/sd*`) compiled when the
/// policy loads. `*` also matches `/`.
#[derive(Clone)]
pub struct GlobPattern {
    src: String,
    matcher: globset::GlobMatcher,
}

impl GlobPattern {
    pub fn new(src: &str) -> Result<Self, globset::Error> {
        let glob = globset::GlobBuilder::new(src)
            .literal_separator(false)
            .build()?;
        Ok(GlobPattern {
            src: src.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }

    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Whether a program or subcommand word is meant as a glob. Only `*` and
    /// `?` make it one, so that a program named `[` stays a name.
    pub fn is_glob(s: &str) -> bool {
        s.contains(['*', '?'])
    }
}

impl fmt::Debug for GlobPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "glob({})", self.src)
    }
}

impl PartialEq for GlobPattern {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

impl<'de> Deserialize<'de> for GlobPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GlobPattern::new(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid glob `{s}`: {e}")))
    }
}

impl Serialize for GlobPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.src)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One classification rule. Every condition that is present must hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A name for the rule, shown in reasons. Derived from the conditions
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The program (after aliases and `/usr/bin/` are removed): a name, a
    /// glob such as `mkfs*`, or a list of them.
    pub program: OneOrMany,
    /// Alternative subcommand paths such as `delete` or `rollout restart`;
    /// each word may be a glob (`describe-*`).
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub subcommand: OneOrMany,
    /// Resource kinds (kubectl), after the tool's aliases are applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Matches when any of these flags is present, wherever it stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Matches when this regex matches the rest of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<Pattern>,
    /// Does not match when this regex matches the rest of the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Pattern>,
    /// `true`: only when standard input is fed (a pipe, `<`, a here-doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    pub level: RiskLevel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Only when the line's SQL could not be parsed (or was not seen): the
    /// regex table for SQL is the fallback of the parser.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sql_fallback: bool,
    /// Set the level outright instead of acting as a floor (see the
    /// precedence in docs/policy.md).
    #[serde(default, rename = "override", skip_serializing_if = "is_false")]
    pub override_level: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What opsgate knows about a tool's command line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolSpec {
    /// Flags that take a value (`-n prod`, `-nprod`, `--namespace=prod`).
    pub value_flags: Vec<String>,
    /// Flags whose value can only be attached (`-pSECRET`, `-i.bak`).
    pub attached_value_flags: Vec<String>,
    /// The tool spells long flags with one dash (`terraform -destroy`).
    pub single_dash_long: bool,
    /// Words starting with `+` are flags too (`bash +x`).
    pub plus_flags: bool,
    pub namespace_flags: Vec<String>,
    pub context_flags: Vec<String>,
    /// Flags that name where a change lands beyond kube (`--profile`,
    /// `--project`, `-g`, `--host`, `--stack`): a value that names
    /// production (the lexicon's `production` words, or the policy's
    /// `safety.production_scopes` globs) makes a change at least HIGH.
    pub scope_flags: Vec<String>,
    /// Resource aliases: short and plural names to the canonical kind.
    pub resource_aliases: BTreeMap<String, String>,
    /// An HTTP client: a request that is not a read is rated by the verbs
    /// and objects its URL path names.
    #[serde(skip_serializing_if = "is_false")]
    pub http: bool,
    /// Its positional arguments are paths: they follow a `cd` earlier on the
    /// line, and a glob in one is rated as the worst path it can match.
    #[serde(skip_serializing_if = "is_false")]
    pub path_args: bool,
    /// The tool is a SQL client: where its SQL is, and in which dialect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlClientSpec>,
    /// The tool runs what it reads on standard input when the line gives it
    /// nothing to run (`redis-cli <<< FLUSHALL`, `mongosh <<EOF`): that
    /// input is rated as if it were on the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_commands: Option<StdinCommands>,
    /// How the tool asks for a dry run: one spec, or a list (`aws ec2
    /// --dry-run`, `aws s3 --dryrun`).
    #[serde(deserialize_with = "one_or_many_specs")]
    pub dry_run: Vec<DryRunSpec>,
}

fn one_or_many_specs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<DryRunSpec>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(DryRunSpec),
        Many(Vec<DryRunSpec>),
    }
    match Raw::deserialize(d) {
        Ok(Raw::One(s)) => Ok(vec![s]),
        Ok(Raw::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a dry-run spec `{flag: …}` or a list of them",
        )),
    }
}

/// How a tool's standard input becomes a command line to rate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum StdinCommands {
    /// Each line is one command: `redis-cli -h h <<< FLUSHALL` is rated as
    /// `redis-cli -h h FLUSHALL`. Only when no command is on the line.
    Lines,
    /// The whole input is a script given as this flag's value: `mongosh
    /// <<< 'db.dropDatabase()'` is rated as `mongosh --eval=…`, also when
    /// the flag is on the line (`--eval '…' --shell` runs the input after).
    Flag(String),
}

/// Where a SQL client takes its SQL: flag values (`psql -c`), a positional
/// (`sqlite3 DB SQL`), and standard input (a here-doc, `<<<`, `echo … |`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlClientSpec {
    /// `postgres`, `mysql`, `sqlite` or `generic`.
    pub dialect: SqlDialectName,
    #[serde(default)]
    pub flags: Vec<String>,
    /// The 1-based positional that holds SQL (`sqlite3 app.db "…"`: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positional: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlDialectName {
    Postgres,
    Mysql,
    Sqlite,
    Generic,
}

/// How a tool asks for a dry run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunSpec {
    pub flag: String,
    /// Values that make it a dry run (`client`, `server`).
    #[serde(default)]
    pub values: Vec<String>,
    /// The flag alone (no value) is a dry run.
    #[serde(default)]
    pub bare: bool,
    /// Only for these first subcommands (`ec2`); empty means all.
    #[serde(default)]
    pub subcommands: Vec<String>,
}

/// How a wrapper finds the command it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WrapperMode {
    /// The remaining words are the command (`sudo`, `env`, `timeout 5`).
    Argv,
    /// The remaining words, joined by spaces, are a shell line (`ssh`, `watch`).
    ShellWords,
    /// The first positional is a shell line, when `shell_flag` is present
    /// (`sh -c '…'`); or the value of `string_flag` (`su -c '…'`).
    ShellString,
    /// The first positional is a shell line (`trap '…' EXIT`).
    FirstPositionalShell,
    /// Commands between an exec flag and `;` or `+` (`find -exec … ;`).
    ExecFlags,
    /// Commands inside a JSON value of a string flag: the `command` and
    /// `args` arrays of a pod (`kubectl run --overrides`), or a `commands`
    /// list (`aws ssm send-command --parameters 'commands=[…]'`).
    JsonCommands,
}

/// A program that runs another command.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WrapperSpec {
    pub program: OneOrMany,
    /// Only when the first positional is this subcommand (`kubectl exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcommand: Option<String>,
    pub mode: WrapperMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_flags: Vec<String>,
    /// Positionals to skip before the command (`timeout DURATION`, `ssh HOST`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip_positionals: usize,
    /// Skip leading `NAME=value` words (`env`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_assignments: bool,
    /// The command is everything after this word (`kubectl exec … -- CMD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_flag: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub string_flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_flags: Vec<String>,
    /// With any of these flags the wrapper runs nothing (`sudo -l`,
    /// `command -v`); it is then rated as a command of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passive_flags: Vec<String>,
    /// Only when this regex matches the arguments (one per line, flags as
    /// `name=value`, as rule regexes see them): `ansible -m shell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Pattern>,
    /// Not when this regex matches the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<Pattern>,
    /// The wrapper is also a tool of its own: its rules apply as well as
    /// the command it runs being rated (`ansible -m shell -a '…'`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub also_rate: bool,
    /// The first positional is a host (`ssh HOST CMD`): a change on a
    /// production host is at least HIGH.
    #[serde(default, skip_serializing_if = "is_false")]
    pub scope_host: bool,
    /// The command's arguments come from standard input (`xargs`): the paths
    /// the writer was given are its worst case (`find /etc | xargs rm -rf`
    /// removes under `/etc`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_from_stdin: bool,
    /// Runs what is fed on standard input as a shell script, whatever its
    /// positionals (`at now <<< 'cmd'`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin_script: bool,
    /// It runs the command on many hosts at once (`pdsh`, `clush`, `pssh`):
    /// a change there is at least HIGH.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fleet: bool,
    /// The wrapper itself is at least this risky (`ssh`, `kubectl exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<RiskLevel>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A redirect target and the level writing to it carries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectTarget {
    pub path: GlobPattern,
    pub level: RiskLevel,
    pub reason: String,
}

/// Output redirections: targets that are harmless, and levels for the rest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSpec {
    pub ignore: Vec<GlobPattern>,
    pub targets: Vec<RedirectTarget>,
    /// Any other file.
    pub default: RiskLevel,
    /// A target that is only known at run time (`> $FILE`).
    pub dynamic: RiskLevel,
}

impl Default for RedirectSpec {
    fn default() -> Self {
        RedirectSpec {
            ignore: Vec::new(),
            targets: Vec::new(),
            default: RiskLevel::Medium,
            dynamic: RiskLevel::High,
        }
    }
}

/// Programs that run code only known at run time (`eval`, `source`, `.`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicProgram {
    pub program: OneOrMany,
    pub level: RiskLevel,
    pub reason: String,
}

/// The built-in knowledge, shipped as `config/rules.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulePack {
    pub tools: BTreeMap<String, ToolSpec>,
    pub wrappers: Vec<WrapperSpec>,
    pub redirects: RedirectSpec,
    pub dynamic_programs: Vec<DynamicProgram>,
    /// Programs that are another program's spelling (`docker-compose` is
    /// `docker compose`, `kafka-topics.sh` is `kafka-topics`), applied like a
    /// policy's aliases; the policy's own aliases win.
    pub aliases: BTreeMap<String, String>,
    /// The verb lexicon for what no rule knows (`core::classify::lexicon`).
    pub lexicon: super::lexicon::LexiconSpec,
    pub rules: Vec<RuleSpec>,
}
