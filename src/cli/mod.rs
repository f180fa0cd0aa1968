//! The command line: argument types, one module per subcommand, terminal
//! rendering, and the mapping of errors to exit codes. This is the edge: it
//! reads files and the clock and hands plain values to `core`.

mod app;
pub(crate) mod approve_cmd;
pub mod args;
mod audit_cmd;
mod classify_cmd;
pub(crate) mod config;
pub mod error;
pub(crate) mod plan_cmd;
pub(crate) mod plan_view;
mod policy_cmd;
pub(crate) mod refusal;
pub(crate) mod run_cmd;
mod status_cmd;
pub(crate) mod style;
pub(crate) mod submit_cmd;

pub use app::run;
