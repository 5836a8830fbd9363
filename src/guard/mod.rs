//! The guard: safety rails that decide before anything runs.
//!
//! - [`rails`]: may a named [`Operation`] run against an environment's database
//!   (protection levels, the Workflowfile's `guard:` section, the sandbox name pattern,
//!   overrides that are loud, journaled and never unlock `protected`);
//! - [`command_line`]: which operations a real command line performs;
//! - [`migrations`]: applied migrations unchanged, pending ones linted, the preview a
//!   person confirms before a protected database changes;
//! - [`promotion`]: where a deploy may come from (`deploy_from: ci`) and what must have
//!   run elsewhere first (`require_applied_on`);
//! - [`seed`]: the one sanctioned way to seed a protected environment;
//! - [`server`]: which server a URL reaches, so a drill of a protected environment
//!   never restores onto the primary's;
//! - [`scan`] and [`hook`]: the pre-commit scan of changed files and its git hook.
//!
//! Other modules ask through [`check`]; the functions that drop, overwrite or replace a
//! database take a [`Permit`], which only [`permit`] hands out.

pub mod command_line;
pub mod deploy_gate;
pub mod gate;
pub mod hook;
pub mod migrations;
pub mod operation;
pub mod package_scripts;
pub mod permit;
pub mod preview;
pub mod promotion;
pub mod rails;
pub mod scan;
pub mod script_gate;
pub mod seed;
pub mod server;

pub use operation::Operation;
pub use permit::{authorize, own_copy, Permit};
pub use rails::{decide, Decision, GuardTarget, OverrideState, Overrides, Violation};

use crate::config::diagnostic::did_you_mean;
use crate::config::{Diagnostic, Project, ResolvedEnv};
use crate::journal::{new_run_id, Event, GuardRule, Journal};
use crate::ui::Ui;
use serde_json::{json, Value};
use std::path::Path;

/// Rules on `operation` against `env`'s database, with the overrides set in the
/// process environment. The caller prints [`announce`] and journals [`journal_events`].
pub fn check(project: &Project, env: &ResolvedEnv, operation: Operation) -> Decision {
    decide(
        project,
        &GuardTarget::of(env),
        operation,
        &Overrides::from_process(),
    )
}

/// Prints, loudly, every override a decision used or refused.
pub fn announce(ui: &Ui, decision: &Decision) {
    for v in decision.overrides_used() {
        ui.warn(&format!(
            "!!! OVERRIDE {}=1 lifts rule `{}` for `{}` on {} ({}); this is recorded in the journal",
            v.override_var,
            v.rule,
            decision.operation,
            decision.target.describe(),
            v.reason
        ));
    }
    for v in decision.overrides_refused() {
        ui.warn(&format!(
            "!!! IGNORED {}=1: no override unlocks a protected environment ({})",
            v.override_var,
            decision.target.describe()
        ));
    }
}

/// Journal events for a decision: one per override used or refused, and the block.
/// (By name and fields, for the gates that hand events on so: Lua, `dbflow check`.)
pub fn journal_events(decision: &Decision) -> Vec<(&'static str, Value)> {
    decision_events(decision)
        .into_iter()
        .map(Event::into_named)
        .collect()
}

/// The journal events of a decision, typed: overrides used and refused, and the block.
pub fn decision_events(decision: &Decision) -> Vec<Event> {
    let mut out = Vec::new();
    let base = |v: &Violation| GuardRule {
        operation: decision.operation.name().to_string(),
        env: decision.target.env.clone(),
        protection: decision.target.protection.as_str().to_string(),
        database: decision.target.database.clone(),
        rule: v.rule.to_string(),
        variable: v.override_var.clone(),
        reason: v.reason.clone(),
    };
    for v in decision.overrides_used() {
        out.push(Event::GuardOverride(base(v)));
    }
    for v in decision.overrides_refused() {
        out.push(Event::GuardOverrideRefused(base(v)));
    }
    if !decision.allowed {
        out.push(Event::GuardBlocked {
            operation: decision.operation.name().to_string(),
            env: decision.target.env.clone(),
            protection: decision.target.protection.as_str().to_string(),
            database: decision.target.database.clone(),
            rules: decision
                .violations
                .iter()
                .filter(|v| v.blocks())
                .map(|v| v.rule.to_string())
                .collect(),
        });
    }
    out
}

/// Writes a journal for a command that ran outside `dbflow run` (so `dbflow runs` shows
/// guard overrides and protected confirmations given to `dbflow check` or `dbflow
/// migrate`). Does nothing without events.
pub fn journal_command(
    root: &Path,
    command: &str,
    target: &GuardTarget,
    events: &[(&'static str, Value)],
    result: &str,
) {
    if events.is_empty() {
        return;
    }
    let run_id = new_run_id();
    let Ok(mut journal) = Journal::create(root, &run_id) else {
        return;
    };
    journal.record(
        "run_start",
        json!({
            "run_id": run_id,
            "target": command,
            "kind": "command",
            "env": target.env,
            "protection": target.protection.as_str(),
            "user": crate::actor::actor(),
            "dbflow_version": env!("CARGO_PKG_VERSION"),
        }),
    );
    for (event, fields) in events {
        journal.record(event, fields.clone());
    }
    journal.record("run_end", json!({ "result": result, "duration_ms": 0 }));
}

/// Load-time check of the `guard:` section: every operation name must be known.
pub fn validate(project: &Project, errors: &mut Vec<Diagnostic>) {
    let lists = project
        .guard
        .levels
        .iter()
        .map(|(_, list)| list)
        .chain(project.guard.environments.values());
    for list in lists {
        for name in &list.operations {
            if Operation::parse(&name.value).is_none() {
                errors.push(
                    Diagnostic::at(
                        name.loc.clone(),
                        format!("unknown guard operation `{}`", name.value),
                    )
                    .with_help_opt(
                        did_you_mean(&name.value, Operation::names()).or_else(|| {
                            Some(format!(
                                "known operations: {}",
                                Operation::names().collect::<Vec<_>>().join(", ")
                            ))
                        }),
                    ),
                );
            }
        }
    }
}
