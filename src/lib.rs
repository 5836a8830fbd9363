//! dbflow: executable database runbooks.
//!
//! Data flow: [`config`] loads and validates the Workflowfile → the environment is
//! resolved and interpolated → [`engine::plan`] resolves a workflow into a plan →
//! [`engine::run`] executes it step by step (steps are plugins from [`steps`]), writing
//! a journal. [`ui`] is the only module that talks to a person.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod docs;
pub mod engine;
pub mod error;
pub mod guard;
pub mod lint;
pub mod lua;
pub mod runner;
pub mod steps;
pub mod ui;

pub use error::{Error, ExitCode, Result};

/// Runs dbflow with parsed arguments and returns the process exit code.
pub fn run(cli: cli::Cli) -> i32 {
    ui::color::init(cli.color);
    match commands::dispatch(cli) {
        Ok(code) => code.code(),
        Err(err) => {
            match &err {
                Error::Config(_) => ui::eprint_styled(&err.to_string()),
                _ => ui::eprint_styled(&format!("error: {err}")),
            }
            err.exit_code().code()
        }
    }
}
