//! Subcommands of the `swimnet` binary that live outside `main.rs`: one
//! module per group of commands, each with its clap arguments and the
//! function that runs it against the agent's API.

pub mod config_file;
pub mod info;
pub mod keys;
pub mod log_level;
pub mod monitor;
pub mod overlay;
pub mod packaging;
pub mod serf;
