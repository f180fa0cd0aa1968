//! The verb lexicon: what the words of a command say when no rule knows it.
//!
//! Most tools will never have a rule. For an unknown program, or an unknown
//! subcommand of a known one, the classifier reads the leading words and the
//! flag names as a person would: a word is split on `-`, `_`, `:`, `.`, `/`
//! and camel case (`cluster-delete`, `apps:destroy`, `_delete_by_query`,
//! `DeleteStack`), and each piece is looked up here. The highest class found
//! rates the command:
//! - `destroy` verbs (delete, drop, purge, …) are HIGH, and CRITICAL when the
//!   object is wide: a wide word (cluster, project, database, bucket, …), a
//!   wide flag (`--all`, `--recursive`), a match-everything argument (`*`,
//!   `.*`, `""`), or a verb wide by itself (`flushall`, `rb`);
//! - `disrupt` verbs (stop, kill, disable, …) are HIGH;
//! - `change` verbs are MEDIUM;
//! - `read` verbs (list, get, show, …) are LOW, when nothing else was found.
//!
//! A change (anything not LOW) whose arguments name production (`prod`,
//! `production` as a word piece: `--prod`, `acme-api-production`,
//! `prod-db-1`) is at least HIGH. A dry-run flag (`--dry-run`, `--what-if`)
//! that is not undone later makes it LOW.
//!
//! The lexicon is data: built-in in `config/rules.yaml`, extended by the
//! policy's `lexicon:`. A word in two classes counts in the higher one, so a
//! policy can add verbs but never soften a built-in one.
//!
//! Long on purpose: most of it is the word lists themselves, then the unit
//! tests.

use std::borrow::Cow;

use super::{Map, Set};

use serde::{Deserialize, Serialize};

use crate::core::risk::RiskLevel;

/// The lexicon as written in YAML. Words are matched case-insensitively; a
/// word ending in `*` matches by prefix (`flush*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LexiconSpec {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destroy: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disrupt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub change: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// Objects whose destruction is CRITICAL: clusters, projects, databases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wide: Vec<String>,
    /// Destroy verbs that are wide on their own (`flushall`, `rb`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wide_verbs: Vec<String>,
    /// Flags that widen a destroy verb to everything (`--all`, `-r`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wide_flags: Vec<String>,
    /// Objects whose change is at least HIGH: identities, permissions,
    /// secrets, firewalls (`iam`, `role`, `firewall`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    /// Objects that are access itself (`secret`, `password`, `user`, `acl`,
    /// `policy`): creating, changing or removing one is CRITICAL, like a
    /// kube secret or an IAM change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<String>,
    /// Objects whose mere reading leaks (`secret`, `password`): a read of
    /// them is MEDIUM.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret: Vec<String>,
    /// Word pieces that name production (`prod`, `production`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production: Vec<String>,
    /// Flags that are never verbs although a piece of them is one
    /// (`--format`, `--output`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inert_flags: Vec<String>,
    /// Verbs that are nouns as often (`gh run list`, `velero backup get`):
    /// they count only when no other verb is found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambiguous: Vec<String>,
    /// Verbs after which a secret object is only named, not read
    /// (`list`, `ls`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listing: Vec<String>,
    /// Environment variables that name where a change lands
    /// (`AWS_PROFILE`, `TF_WORKSPACE`, `PGHOST`): set to a production name,
    /// for a command or exported before it, they make a change at least
    /// HIGH.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope_variables: Vec<String>,
    /// Flags that make a command a dry run (`--dry-run`, `--what-if`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run_flags: Vec<String>,
    /// Flags that undo a dry-run flag before them (`--no-dry-run`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_dry_run_flags: Vec<String>,
}

impl LexiconSpec {
    pub fn is_empty(&self) -> bool {
        *self == LexiconSpec::default()
    }
}

/// The class of a verb, in rising order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum VerbClass {
    Read,
    Change,
    Disrupt,
    Destroy,
}

impl VerbClass {
    fn level(self) -> RiskLevel {
        match self {
            VerbClass::Read => RiskLevel::Low,
            VerbClass::Change => RiskLevel::Medium,
            VerbClass::Disrupt | VerbClass::Destroy => RiskLevel::High,
        }
    }

    fn name(self) -> &'static str {
        match self {
            VerbClass::Read => "a read verb",
            VerbClass::Change => "a change verb",
            VerbClass::Disrupt => "a disruptive verb",
            VerbClass::Destroy => "a destructive verb",
        }
    }
}

/// A set of words: exact ones, and prefixes from `word*`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WordSet {
    exact: Set<String>,
    prefixes: Vec<String>,
    /// The first two bytes (one for a one-letter word) of every word and
    /// prefix: a word in which none occurs has no piece in the set.
    starts: Vec<Vec<u8>>,
}

impl WordSet {
    fn add(&mut self, w: &str) {
        let w = w.to_ascii_lowercase();
        let start: Vec<u8> = w.trim_end_matches('*').bytes().take(2).collect();
        if !self.starts.contains(&start) {
            self.starts.push(start);
        }
        match w.strip_suffix('*') {
            Some(p) => self.prefixes.push(p.to_owned()),
            None => {
                self.exact.insert(w);
            }
        }
    }

    pub(crate) fn contains(&self, piece: &str) -> bool {
        self.exact.contains(piece) || self.prefixes.iter().any(|p| piece.starts_with(p.as_str()))
    }

    /// Whether some piece of `word` may be in the set: a quick refusal
    /// before splitting the word (a piece is a run of the word's bytes,
    /// lowered, so it holds the first bytes of the entry it equals).
    pub(crate) fn may_have_piece_of(&self, word: &str) -> bool {
        let b = word.as_bytes();
        self.starts.iter().any(|start| match start.as_slice() {
            [] => true,
            [one] => b.iter().any(|c| c.to_ascii_lowercase() == *one),
            [x, y, ..] => b
                .windows(2)
                .any(|w| w[0].to_ascii_lowercase() == *x && w[1].to_ascii_lowercase() == *y),
        })
    }

    /// The first piece of `word` in the set.
    pub(crate) fn piece_of<'w>(&self, word: &'w str) -> Option<Cow<'w, str>> {
        // Worth it only for a set of a few starts (the production words).
        if self.starts.len() <= 4 && !self.may_have_piece_of(word) {
            return None;
        }
        pieces(word).find(|p| self.contains(p))
    }
}

/// The compiled lexicon.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lexicon {
    verbs: Map<String, VerbClass>,
    verb_prefixes: Vec<(String, VerbClass)>,
    wide: WordSet,
    wide_verbs: WordSet,
    wide_flags: Set<String>,
    sensitive: WordSet,
    identity: WordSet,
    secret: WordSet,
    production: WordSet,
    inert_flags: Set<String>,
    scope_variables: Set<String>,
    ambiguous: WordSet,
    listing: WordSet,
    dry_run_flags: Set<String>,
    not_dry_run_flags: Set<String>,
}

/// What the lexicon found in a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub level: RiskLevel,
    /// The level of the verb alone, before wide objects, identities and
    /// production raise it.
    pub base: RiskLevel,
    pub message: String,
}

/// The words of a command the lexicon reads: the leading positionals (the
/// subcommand path and its object), every flag name, and every argument.
pub(crate) struct Words<'a> {
    /// Leading positional words, where verbs and objects stand.
    pub path: Vec<&'a str>,
    /// The positional words after those: a destroy or disrupt verb there
    /// still counts (`wg set wg0 peer KEY remove`), never a read.
    pub later: Vec<&'a str>,
    /// Flag names as written (`--delete`, `-r`), in order.
    pub flags: Vec<&'a str>,
    /// The names of the flags given a value (`--login=jdoe`): settings as
    /// often as actions, so a read or change verb in one counts only when
    /// no other verb is found.
    pub valued: Vec<&'a str>,
    /// Every argument and flag value, for production names and
    /// match-everything patterns.
    pub all: Vec<&'a str>,
    /// Phrases whose words are read as well (the SQL a SQL client was given
    /// and could not parse).
    pub phrases: Vec<&'a str>,
    /// Arguments of several words (a script, a query in a language opsgate
    /// does not parse): a destroy or disrupt verb in one counts, never a
    /// read (`cypher-shell "MATCH (n) DETACH DELETE n"`).
    pub scripts: Vec<&'a str>,
}

/// A verb found in a word: its class, the piece, the word it is in, and
/// whether it is as often a noun (`run`, `backup`).
struct Found<'w> {
    class: VerbClass,
    verb: Cow<'w, str>,
    word: &'w str,
    ambiguous: bool,
}

impl Lexicon {
    pub(crate) fn extend(&mut self, spec: &LexiconSpec) {
        for (class, words) in [
            (VerbClass::Read, &spec.read),
            (VerbClass::Change, &spec.change),
            (VerbClass::Disrupt, &spec.disrupt),
            (VerbClass::Destroy, &spec.destroy),
        ] {
            for w in words {
                let w = w.to_ascii_lowercase();
                match w.strip_suffix('*') {
                    Some(p) => self.verb_prefixes.push((p.to_owned(), class)),
                    None => {
                        let e = self.verbs.entry(w).or_insert(class);
                        *e = (*e).max(class);
                    }
                }
            }
        }
        for w in &spec.wide {
            self.wide.add(w);
        }
        for w in &spec.wide_verbs {
            self.wide_verbs.add(w);
        }
        self.wide_flags.extend(spec.wide_flags.iter().cloned());
        for (set, words) in [
            (&mut self.production, &spec.production),
            (&mut self.sensitive, &spec.sensitive),
            (&mut self.identity, &spec.identity),
            (&mut self.secret, &spec.secret),
        ] {
            for w in words {
                set.add(w);
            }
        }
        self.inert_flags.extend(spec.inert_flags.iter().cloned());
        self.scope_variables
            .extend(spec.scope_variables.iter().cloned());
        for w in &spec.ambiguous {
            self.ambiguous.add(w);
        }
        for w in &spec.listing {
            self.listing.add(w);
        }
        self.dry_run_flags
            .extend(spec.dry_run_flags.iter().cloned());
        self.not_dry_run_flags
            .extend(spec.not_dry_run_flags.iter().cloned());
    }

    /// The class of one word piece (already lower case), if it is a verb.
    pub(crate) fn class_of(&self, piece: &str) -> Option<VerbClass> {
        let exact = self.verbs.get(piece).copied();
        let prefix = self
            .verb_prefixes
            .iter()
            .filter(|(p, _)| piece.starts_with(p.as_str()))
            .map(|(_, c)| *c)
            .max();
        exact.max(prefix)
    }

    /// Whether an environment variable names a scope (`AWS_PROFILE`).
    pub(crate) fn is_scope_variable(&self, name: &str) -> bool {
        self.scope_variables.contains(name)
    }

    /// Whether a word names production (`acme-api-production`, `prod-db-1`,
    /// `mongodb://mongo-prod-1/app`).
    pub(crate) fn names_production(&self, word: &str) -> bool {
        self.production.piece_of(word).is_some()
    }

    /// The verbs in one word or flag name, at least `min`, added to `found`.
    fn consider<'w>(
        &self,
        found: &mut Vec<Found<'w>>,
        word: &'w str,
        is_flag: bool,
        min: VerbClass,
    ) {
        let name = if is_flag {
            let bare = word.trim_start_matches('-');
            // Only long flags are words; `--no-delete`, `--keep-deleted`
            // and `--disable-x` are settings, not verbs.
            if !word.starts_with("--")
                || self.inert_flags.contains(word)
                || pieces(bare)
                    .next()
                    .is_some_and(|p| FLAG_MODIFIERS.contains(&&*p))
            {
                return;
            }
            bare
        } else {
            word
        };
        // A flag is a destroy or disrupt verb by any piece
        // (`--delete-after`, `--security-erase`), and a read or change
        // verb only as the whole flag (`--list`, `--create`; not
        // `--bootstrap-server`).
        let whole = pieces(name).nth(1).is_none();
        for p in pieces(name) {
            if let Some(c) = self.class_of(&p)
                && c >= min
                && (!is_flag || whole || c >= VerbClass::Disrupt)
                && (!is_flag || c != VerbClass::Read || READ_FLAGS.contains(&&*p))
            {
                let ambiguous = self.ambiguous.contains(&p);
                found.push(Found {
                    class: c,
                    verb: p,
                    word,
                    ambiguous,
                });
            }
        }
    }

    /// Rates a command by its words. `None` when no verb was found.
    pub(crate) fn rate<'w>(&self, words: &'w Words<'w>) -> Option<Verdict> {
        let (class, verb, word) = self.verb(words)?;
        self.verdict(words, class, &verb, word)
    }

    /// Whether the words say the command changes something: a change,
    /// disrupt or destroy verb, and no dry-run flag. Cheaper than `rate`
    /// (no message).
    pub(crate) fn says_change<'w>(&self, words: &'w Words<'w>) -> bool {
        self.verb(words)
            .is_some_and(|(class, _, _)| class >= VerbClass::Change)
            && self.dry_run(words).is_none()
    }

    /// The verb: its class, the piece, and the word it is in.
    fn verb<'w>(&self, words: &'w Words<'w>) -> Option<(VerbClass, Cow<'w, str>, &'w str)> {
        // The verb: the highest class among the leading words and the flag
        // names (`kafka-topics --delete`, `--reset-offsets`). A word that is
        // a noun as often (`run`, `backup`) counts only when no other verb
        // is found.
        let mut found: Vec<Found<'w>> = Vec::new();
        // A path, a file name or a host (`./dump.tar.gz`, `acme/backups`,
        // `app.conf`) names an object, not a verb; so does a phrase (a
        // script or a query), except the SQL a SQL client was given.
        for w in words.path.iter().filter(|w| !is_object_word(w)) {
            self.consider(&mut found, w, false, VerbClass::Read);
        }
        let tokens = |phrases: &'w [&'w str]| {
            phrases
                .iter()
                .flat_map(|w| w.split_whitespace())
                .filter(|w| !is_object_word(w))
        };
        for w in tokens(&words.phrases) {
            self.consider(&mut found, w, false, VerbClass::Read);
        }
        for w in words.later.iter().filter(|w| !is_object_word(w)) {
            self.consider(&mut found, w, false, VerbClass::Disrupt);
        }
        // A flag given a value is a setting as often as an action
        // (`--login=jdoe`): its read or change verb counts only when no
        // other verb is found (`iamctl user --create=bob`).
        for f in &words.flags {
            let valued = words.valued.contains(f);
            let from = found.len();
            self.consider(&mut found, f, true, VerbClass::Read);
            if valued {
                for v in &mut found[from..] {
                    v.ambiguous |= v.class < VerbClass::Disrupt;
                }
            }
        }
        for w in tokens(&words.scripts) {
            self.consider(&mut found, w, false, VerbClass::Disrupt);
        }
        let clear = found.iter().any(|f| !f.ambiguous);
        found
            .into_iter()
            .filter(|f| !clear || !f.ambiguous)
            .max_by_key(|f| f.class)
            .map(|f| (f.class, f.verb, f.word))
    }

    /// The verdict for the verb found: dry runs, wide and sensitive objects,
    /// production names.
    fn verdict(
        &self,
        words: &Words<'_>,
        class: VerbClass,
        verb: &str,
        word: &str,
    ) -> Option<Verdict> {
        let shown = if word.eq_ignore_ascii_case(verb) {
            format!("`{word}`")
        } else {
            format!("`{verb}` (in `{word}`)")
        };

        if let Some(flag) = self.dry_run(words) {
            return Some(Verdict {
                level: RiskLevel::Low,
                base: RiskLevel::Low,
                message: format!(
                    "{shown} is {}, but `{flag}` only shows what it would do",
                    class.name()
                ),
            });
        }
        let mut level = class.level();
        let mut message = format!("{shown} is {} (lexicon)", class.name());
        if class == VerbClass::Destroy
            && let Some(why) = self.wide_object(words, verb)
        {
            level = RiskLevel::Critical;
            message = format!("{message}, and {why}");
        }
        // The object: in the leading words, or in a long flag that is a
        // verb and its object (`--accept-routes`, `--add-role`).
        let object = |set: &WordSet| {
            words.path.iter().find_map(|w| set.piece_of(w)).or_else(|| {
                words
                    .flags
                    .iter()
                    .filter_map(|f| f.strip_prefix("--"))
                    .filter(|bare| {
                        pieces(bare)
                            .next()
                            .and_then(|p| self.class_of(&p))
                            .is_some_and(|c| c >= VerbClass::Change)
                    })
                    .find_map(|f| pieces(f).skip(1).find(|p| set.contains(p)))
            })
        };
        if class == VerbClass::Read
            && !self.listing.contains(verb)
            && let Some(o) = object(&self.secret)
        {
            level = RiskLevel::Medium;
            message = format!("{message}, but `{o}` is a secret: reading it leaks");
        }
        if class > VerbClass::Read
            && let Some(o) = object(&self.identity)
        {
            level = RiskLevel::Critical;
            message = format!(
                "{message}, and `{o}` is access itself (identities, permissions or secrets)"
            );
        } else if class == VerbClass::Change
            && let Some(o) = object(&self.sensitive)
        {
            level = RiskLevel::High;
            message =
                format!("{message}, and `{o}` guards access (network exposure or privileges)");
        }
        if class > VerbClass::Read
            && let Some(p) = words.all.iter().find(|w| self.names_production(w))
        {
            // A change in production is at least HIGH; destroying there is
            // CRITICAL.
            let floor = if class == VerbClass::Destroy {
                RiskLevel::Critical
            } else {
                RiskLevel::High
            };
            if level < floor {
                level = floor;
                message = format!("{message}, and `{p}` names production");
            }
        }
        Some(Verdict {
            level,
            base: class.level(),
            message,
        })
    }

    /// Why a destroy verb reaches everything, if it does.
    fn wide_object(&self, words: &Words<'_>, verb: &str) -> Option<String> {
        if self.wide_verbs.contains(verb) {
            return Some(format!("`{verb}` empties or removes a whole store"));
        }
        for w in words.path.iter().filter(|w| !is_object_word(w)) {
            if let Some(p) = self.wide.piece_of(w) {
                return Some(format!("the object is {p}-wide (`{w}`)"));
            }
        }
        for f in &words.flags {
            let bare = f.trim_start_matches('-');
            let ps: Vec<Cow<'_, str>> = pieces(bare).collect();
            // `--all…`, a wide flag, `rm -r`, or a destroying flag that
            // names a wide object (`--delete-volumes`, `--remove-all-storage`).
            let destroying = ps
                .iter()
                .any(|p| self.class_of(p) == Some(VerbClass::Destroy));
            if self.wide_flags.contains(*f)
                || (f.starts_with("--") && ps.first().is_some_and(|p| p == "all"))
                || (matches!(verb, "rm" | "rmdir") && matches!(*f, "-r" | "-R" | "-rf" | "-fr"))
                || (f.starts_with("--")
                    && destroying
                    && ps.iter().any(|p| p == "all" || self.wide.contains(p)))
            {
                return Some(format!("`{f}` reaches everything"));
            }
        }
        for w in &words.all {
            if matches_everything(w) || w.ends_with("/*") || w.ends_with(":*") {
                return Some(format!("`{w}` matches everything"));
            }
            if w.starts_with("/dev/") {
                return Some(format!("`{w}` is a device: the data on it goes"));
            }
        }
        None
    }

    /// The dry-run flag in force: the last of the dry-run and not-dry-run
    /// flags decides.
    pub(crate) fn dry_run<'w>(&self, words: &Words<'w>) -> Option<&'w str> {
        let last = words.flags.iter().rev().find(|f| {
            let name = f.split('=').next().unwrap_or(f);
            self.dry_run_flags.contains(name) || self.not_dry_run_flags.contains(name)
        })?;
        let name = last.split('=').next().unwrap_or(last);
        self.dry_run_flags.contains(name).then_some(*last)
    }
}

/// The first pieces that make a flag a setting, not a verb
/// (`--no-delete`, `--keep-deleted`, `--disable-purge`).
const FLAG_MODIFIERS: &[&str] = &[
    "no", "keep", "skip", "ignore", "preserve", "protect", "without", "exclude", "disable",
    "enable", "dont", "show", "hide", "include", "allow", "with", "use", "log", "print", "max",
    "min",
];

/// Whether a word names an object rather than an action: a path, a URL, a
/// host, a file with an extension (`app.conf`, `dump.tar.gz`), a version or
/// a phrase. A dotted subcommand (`vm.destroy`, `state.apply`) is a word.
pub(crate) fn is_object_word(w: &str) -> bool {
    if w.contains('/') || w.contains(char::is_whitespace) || w.contains("://") {
        return true;
    }
    match w.rsplit_once('.') {
        Some((head, ext)) => {
            head.is_empty()
                || ext.is_empty()
                || ext.len() <= 4
                || ext.chars().all(|c| c.is_ascii_digit())
                || w.matches('.').count() > 1
        }
        None => false,
    }
}

/// The read verbs that count as a whole flag (`--list`); others, such as
/// `--type` or `--time`, are settings.
const READ_FLAGS: &[&str] = &[
    "list", "ls", "show", "get", "describe", "status", "info", "version", "check", "validate",
    "verify", "diff", "plan", "preview", "explain", "print", "dump", "view", "inspect",
];

/// A pattern argument that selects everything: `*`, `.*`, `%`, `""`, `/*`.
pub(crate) fn matches_everything(w: &str) -> bool {
    matches!(
        w.trim(),
        "" | "*" | ".*" | "%" | "'*'" | "^.*$" | ".+" | "/*" | "*:*" | "_all"
    )
}

/// The lower-case pieces of a word, split on `-`, `_`, `:`, `.`, `/`, `@`,
/// `=`, `,`, spaces and camel case: `DeleteDBCluster` is `delete`, `db`,
/// `cluster`. A piece is borrowed from the word unless it has capitals to
/// lower.
pub(crate) fn pieces(word: &str) -> Pieces<'_> {
    Pieces { word, at: 0 }
}

/// The iterator of [`pieces`].
pub(crate) struct Pieces<'a> {
    word: &'a str,
    at: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let b = self.word.as_bytes();
        // Skip to the next ASCII letter or digit.
        while self.at < b.len() && !b[self.at].is_ascii_alphanumeric() {
            self.at += 1;
        }
        if self.at >= b.len() {
            return None;
        }
        let start = self.at;
        let mut i = start + 1;
        // A capital starts a new piece after a lower-case letter or a
        // digit, and after capitals when a lower-case letter follows it
        // (`DBCluster` is `db`, `cluster`).
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            let c = b[i];
            let prev = b[i - 1];
            let boundary = c.is_ascii_uppercase()
                && (prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase()
                        && b.get(i + 1).is_some_and(u8::is_ascii_lowercase)));
            if boundary {
                break;
            }
            i += 1;
        }
        self.at = i;
        let piece = &self.word[start..i];
        Some(if piece.bytes().any(|c| c.is_ascii_uppercase()) {
            Cow::Owned(piece.to_ascii_lowercase())
        } else {
            Cow::Borrowed(piece)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> Lexicon {
        let mut l = Lexicon::default();
        l.extend(&LexiconSpec {
            destroy: vec![
                "delete".into(),
                "destroy".into(),
                "flush*".into(),
                "rb".into(),
            ],
            disrupt: vec!["stop".into()],
            change: vec!["create".into()],
            read: vec!["list".into(), "get".into()],
            wide: vec!["cluster".into(), "clusters".into()],
            wide_verbs: vec!["flushall".into(), "rb".into()],
            wide_flags: vec!["--recursive".into()],
            sensitive: vec!["firewall".into()],
            identity: vec!["iam".into()],
            secret: vec!["secret".into()],
            production: vec!["prod".into(), "production".into()],
            dry_run_flags: vec!["--dry-run".into()],
            not_dry_run_flags: vec!["--no-dry-run".into()],
            ..LexiconSpec::default()
        });
        l
    }

    fn rate(path: &[&str], flags: &[&str]) -> Option<RiskLevel> {
        let mut all: Vec<&str> = path.to_vec();
        all.extend(flags);
        lexicon()
            .rate(&Words {
                path: path.to_vec(),
                flags: flags.to_vec(),
                valued: Vec::new(),
                later: Vec::new(),
                all,
                phrases: Vec::new(),
                scripts: Vec::new(),
            })
            .map(|v| v.level)
    }

    #[test]
    fn words_split_on_separators_and_camel_case() {
        let p: Vec<String> = pieces("DeleteDBCluster").map(Cow::into_owned).collect();
        assert_eq!(p, ["delete", "db", "cluster"]);
        let p: Vec<String> = pieces("apps:destroy").map(Cow::into_owned).collect();
        assert_eq!(p, ["apps", "destroy"]);
        let p: Vec<String> = pieces("_delete_by_query").map(Cow::into_owned).collect();
        assert_eq!(p, ["delete", "by", "query"]);
        let p: Vec<String> = pieces("dropDatabase()").map(Cow::into_owned).collect();
        assert_eq!(p, ["drop", "database"]);
        let p: Vec<String> = pieces("XMLHttpRequest v2Delete é-rm")
            .map(Cow::into_owned)
            .collect();
        assert_eq!(p, ["xml", "http", "request", "v2", "delete", "rm"]);
        // Lower-case pieces are borrowed, not copied.
        assert!(pieces("delete-db").all(|p| matches!(p, Cow::Borrowed(_))));
    }

    #[test]
    fn verbs_rate_by_class_and_widen() {
        assert_eq!(rate(&["apps:destroy", "web"], &[]), Some(RiskLevel::High));
        assert_eq!(
            rate(&["cluster-delete", "x"], &[]),
            Some(RiskLevel::Critical)
        );
        assert_eq!(rate(&["rm", "x"], &["--recursive"]), None);
        assert_eq!(
            rate(&["delete", "x"], &["--recursive"]),
            Some(RiskLevel::Critical)
        );
        assert_eq!(
            rate(&["delete", "x"], &["--all-collections"]),
            Some(RiskLevel::Critical)
        );
        assert_eq!(rate(&["FLUSHALL"], &[]), Some(RiskLevel::Critical));
        assert_eq!(rate(&["list", "clusters"], &[]), Some(RiskLevel::Low));
        assert_eq!(rate(&["create", "x"], &[]), Some(RiskLevel::Medium));
        assert_eq!(
            rate(&["create", "acme-api-production"], &[]),
            Some(RiskLevel::High)
        );
        assert_eq!(rate(&["stop", "x"], &[]), Some(RiskLevel::High));
        assert_eq!(rate(&["frobnicate"], &[]), None);
        assert_eq!(
            rate(&["iam", "create", "x"], &[]),
            Some(RiskLevel::Critical)
        );
        assert_eq!(
            rate(&["firewall", "create", "x"], &[]),
            Some(RiskLevel::High)
        );
        assert_eq!(rate(&["get", "secret/db"], &[]), Some(RiskLevel::Medium));
        assert_eq!(rate(&["x"], &["--create"]), Some(RiskLevel::Medium));
        assert_eq!(rate(&["x"], &["--create-server"]), None);
        // A flag is a verb by its first piece only.
        assert_eq!(rate(&["x"], &["--delete"]), Some(RiskLevel::High));
        assert_eq!(rate(&["list"], &["--show-deleted"]), Some(RiskLevel::Low));
        assert_eq!(rate(&["list"], &["--no-delete"]), Some(RiskLevel::Low));
    }

    #[test]
    fn a_read_verb_never_hides_a_destructive_one() {
        assert_eq!(rate(&["get", "delete"], &[]), Some(RiskLevel::High));
        assert_eq!(rate(&["list"], &["--delete"]), Some(RiskLevel::High));
    }

    #[test]
    fn a_dry_run_is_low_unless_undone() {
        assert_eq!(
            rate(&["delete", "cluster"], &["--dry-run"]),
            Some(RiskLevel::Low)
        );
        assert_eq!(
            rate(&["delete", "cluster"], &["--dry-run", "--no-dry-run"]),
            Some(RiskLevel::Critical)
        );
    }

    #[test]
    fn a_policy_cannot_soften_a_verb() {
        let mut l = lexicon();
        l.extend(&LexiconSpec {
            read: vec!["delete".into()],
            ..LexiconSpec::default()
        });
        assert_eq!(l.class_of("delete"), Some(VerbClass::Destroy));
    }
}
