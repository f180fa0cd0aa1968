//! The command line door: argument types, one module per subcommand,
//! terminal rendering, and the mapping of errors to exit codes. The use
//! cases are the application layer's (`app`); this door parses, calls and
//! prints.

mod app;
mod approve_cmd;
pub mod args;
mod audit_cmd;
mod classify_cmd;
pub mod error;
mod plan_cmd;
mod policy_cmd;
mod run_cmd;
mod status_cmd;
mod store_cmd;
mod submit_cmd;

pub use app::run;
