//! The risk classifier: shell parsing, wrapper unwrapping, and rule matching.
//!
//! Pure: no I/O, no clock. `RuleSet::classify` is the entry point; the rule
//! data comes from `config/rules.yaml` and the user's policy.

mod args;
mod classifier;
pub mod files;
mod inline;
pub mod lexicon;
mod matching;
mod plain;
pub mod ruleset;
pub mod schema;
mod shell;
mod sql;
mod unescape;
mod wrappers;

/// The classifier's hash maps and sets: foldhash instead of SipHash. Their
/// keys come from the rule pack and the policy (approved data); command
/// lines only look things up, so flooding is not a concern, and a lookup is
/// most of a line's hashing cost.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub use classifier::{ClassifyContext, ClassifyError};
pub use files::FileUse;
pub use lexicon::LexiconSpec;
pub use ruleset::{ProductionScope, RuleSet, RuleSetError, ScopeKind, UserRules};
