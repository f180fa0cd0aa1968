//! opsgate: an approval-gated DevOps execution engine.
//!
//! The crate is split along one seam: `core` is pure (no I/O, no clock, no
//! async) and holds the risk classifier, the policy, and the plan model;
//! `cli` is the edge that reads files, talks to the terminal and maps errors
//! to exit codes. Later layers (the audit log, the executor, the TUI and the
//! chat bridge) sit on top of `core` and never bypass it.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod bridge;
pub mod cli;
pub mod core;
pub mod exec;
pub mod native;
pub mod store;
pub mod tui;
