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

pub use classifier::{ClassifyContext, ClassifyError};
pub use files::FileUse;
pub use lexicon::LexiconSpec;
pub use ruleset::{ProductionScope, RuleSet, RuleSetError, ScopeKind, UserRules};
