//! The executor: runs an approved plan step by step, writing every event
//! to the audit log before it acts (tokio).
//!
//! - [`shell`]: one command line in its own process group;
//! - [`engine`]: the run loop: checks, steps, stop requests, rollback;
//! - [`reaper`]: nothing a step starts outlives it (a subreaper, a marker).

pub mod engine;
pub mod files;
pub mod reaper;
pub mod shell;

/// A stop request's level, as the seed defines stop: the first request
/// lets the current step finish and then stops; the second kills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    Run,
    AfterStep,
    Kill,
}
