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
pub mod interrupt;
pub mod lint;
pub mod lua;
pub mod runner;
pub mod steps;
pub mod ui;

pub use error::{Error, ExitCode, Result};

/// Runs dbflow with parsed arguments and returns the process exit code.
///
/// With `--json`, stdout carries exactly one JSON document whatever happens (docs/json.md):
/// the command's own, else the error's, else a summary of the run.
pub fn run(cli: cli::Cli) -> i32 {
    interrupt::install();
    ui::color::init(cli.color);
    let json = cli.json;
    match commands::dispatch(cli) {
        Ok(code) => {
            if json {
                ui::json::finish(code.code());
            }
            code.code()
        }
        Err(err) => {
            match &err {
                Error::Config(_) => ui::eprint_styled(&err.to_string()),
                _ => ui::eprint_styled(&format!("error: {err}")),
            }
            if json {
                ui::json::print(&err.to_json());
            }
            err.exit_code().code()
        }
    }
}

/// Handles a command line clap rejected (or `--help`/`--version`, which clap reports the
/// same way): prints it, and with `--json` anywhere on the line also the error document,
/// and returns the exit code (2 for usage errors, as clap has it).
pub fn usage(err: clap::Error, args: &[std::ffi::OsString]) -> i32 {
    use clap::error::ErrorKind;
    let code = err.exit_code();
    let informational = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    if json && !informational {
        let _ = err.print();
        let text = err.render().to_string();
        let message = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid command line")
            .trim_start_matches("error:")
            .trim()
            .to_string();
        let mut doc = ui::json::error(code, &message, None, None);
        doc["error"]["usage"] = serde_json::Value::String(text.trim_end().to_string());
        ui::json::print(&ui::redact::redact_json(&doc));
        return code;
    }
    let _ = err.print();
    code
}
