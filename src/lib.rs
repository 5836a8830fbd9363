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
//!   redact, sql, interrupt   leaves: secret redaction; SQL statement splitting; signals
//!
//! allowed upward edges (each one deliberate):
//!   db -> guard::Permit    a type-only edge: every call that drops, overwrites or
//!                          replaces a database takes a Permit, which only the guard
//!                          can make, so destruction goes through the guard by construction
//!   db -> guard::permit    restore's cleanup of the half-restored database it created
//!                          asks the guard for that Permit (`permit::half_restored`)
//! ```
//!
//! Within a module, files may use each other; leaves inside a module (such as
//! `db::backup::hashing`) are kept free of the files that use them.

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
pub fn run(cli: cli::Cli) -> i32 {
    interrupt::install();
    match commands::dispatch(cli) {
        Ok(code) => code.code(),
        Err(err) => {
            let text = crate::redact::redact(&err.to_string());
            match &err {
                Error::Config(_) => eprintln!("{text}"),
                _ => eprintln!("error: {text}"),
            }
            err.exit_code().code()
        }
    }
}
