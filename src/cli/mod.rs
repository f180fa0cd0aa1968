//! The command line: argument types, one module per subcommand, terminal
//! rendering, and the mapping of errors to exit codes. This is the edge: it
//! reads files and the clock and hands plain values to `core`.

mod app;
mod approve_cmd;
pub mod args;
mod audit_cmd;
mod classify_cmd;
mod config;
pub mod error;
mod plan_cmd;
mod plan_view;
mod policy_cmd;
mod run_cmd;
mod status_cmd;
mod style;
mod submit_cmd;

pub use app::run;
