//! The terminal UI, in the Elm shape: [`state::AppState`] is the model,
//! [`update::update`] the only place it changes (returning effects), and
//! [`view::view`] draws it and changes nothing. The terminal loop in
//! [`app`] is the only place with crossterm events, and it runs the
//! effects. Every decision goes through the same approval module and audit
//! log as the CLI.

pub mod app;
pub mod effects;
pub mod load;
pub mod runner;
pub mod state;
pub mod update;
pub mod view;
