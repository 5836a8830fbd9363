//! dbflow: executable database runbooks.
//!
//! Data flow: [`config`] loads and validates the Workflowfile → the environment is
//! resolved and interpolated → [`engine::plan`] resolves a workflow into a plan →
//! [`engine::run`] executes it step by step (steps are plugins from [`steps`]), writing
//! a journal. [`ui`] is the only module that talks to a person.
//!
//! # Layers
//!
//! Imports go one way: a module may use the modules on the lines below its own, never
//! one above it nor a peer on its own line. This list is the one place the order is
//! written down; `tests/layers.rs` reads it and fails on any `crate::…` path that goes
//! up (or sideways) without an entry under "allowed upward edges".
//!
//! ```text
//! layers (top first):
//!   main, lib      the binary and the crate root: parse, dispatch, map errors to exit codes
//!   commands       one file per CLI command; thin: most run a one-step plan through the engine
//!   app            the loaded project, registry, Lua host and UI a command works with
//!   fleet          many databases per environment: targets, waves, shards, the fleet runner
//!   cli            clap definitions only
//!   steps          built-in step kinds (plugins); they never call each other or the commands
//!   docs           Tera rendering of runbooks from plans
//!   lua            the Lua host and the step kinds Lua files register
//!   engine         plan, step registry, run context and its database session, failure policy
//!   guard          what may run where; hands out the Permit destructive db calls require
//!   ui             prompts, progress, output formats (incl. how migrations look)
//!   runner         tasks: dependency graph, child processes, conditions
//!   lint           migration SQL analysis (reads files through the store's hardened reader)
//!   db             connections, migrations store and migrator, backups, pg tools
//!   journal        the run journal's format (JSON lines), read and written
//!   error          the CLI error type and exit codes
//!   config         the Workflowfile model, loading, interpolation, validation
//!   redact, sql, interrupt, actor   leaves: secret redaction; SQL statement splitting; signals; who ran it
//!
//! allowed upward edges (each one deliberate):
//!   db -> guard::Permit    a type-only edge: every call that drops, overwrites or
//!                          replaces a database takes a Permit, which only the guard
//!                          can make, so destruction goes through the guard by construction
//!   db -> guard::permit    restore's cleanup of the half-restored database it created
//!                          asks the guard for that Permit (`permit::half_restored`)
//!   docs -> fleet::record  the operations page reads the fleet journals (their format
//!                          lives with the runner that writes them; never a database)
//! ```
//!
//! Within a module, files may use each other; leaves inside a module (such as
//! `db::backup::hashing`) are kept free of the files that use them.

pub mod actor;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod docs;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod guard;
pub mod interrupt;
pub mod journal;
pub mod lint;
pub mod lua;
pub mod redact;
pub mod runner;
pub mod sql;
pub mod steps;
pub mod ui;

pub use error::{Error, ExitCode, Result};

/// Runs dbflow with parsed arguments and returns the process exit code.
///
/// With `--json`, stdout carries exactly one JSON document whatever happens (docs/json.md):
/// the command's own, else the error's, else a summary of the run.
pub fn run(cli: cli::Cli) -> i32 {
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
