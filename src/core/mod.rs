//! The pure core: risk levels, the classifier, the policy and the plan model.
//!
//! Nothing here reads files, opens sockets, reads the clock or spawns tasks;
//! inputs (file text, the current date) are passed in. That is what keeps the
//! table tests cheap and the behaviour the same everywhere.

pub mod approval;
pub mod classify;
pub mod digest;
pub mod duration;
pub mod environment;
pub mod event;
pub mod identity;
pub mod plan;
pub mod policy;
pub mod quoting;
pub mod redact;
pub mod risk;
pub mod signers;
pub mod state;
pub mod yaml;
