//! `rollback`: back to a known-good state after a bad deploy. Finds the backup (given,
//! taken by a given run — read from its journal —, taken earlier in this run, or the
//! newest verified one), restores it (a new database by default), optionally applies
//! the migrations that come before a bad one, validates the result, and points the
//! application at it (`switch_to_restored` task) or says how.

use super::restoring::{self, Destination};
use crate::config::Diagnostic;
use crate::db::backup::{Catalog, Entry};
use crate::db::migrate::{self, DeployOptions};
use crate::db::target::Target;
use crate::engine::journal;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `rollback` step kind.
pub struct RollbackKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    backup: Option<String>,
    run: Option<String>,
    before: Option<String>,
    into: Option<String>,
    #[serde(default)]
    in_place: bool,
    confirm: Option<String>,
}

/// A configured `rollback` step.
#[derive(Debug)]
pub struct RollbackStep {
    backup: Option<String>,
    run: Option<String>,
    before: Option<String>,
    destination: Destination,
}

impl StepKind for RollbackKind {
    fn name(&self) -> &str {
        "rollback"
    }

    fn summary(&self) -> &str {
        "restore the pre-deploy backup (new database by default), re-apply good migrations, validate"
    }

    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, String> {
        let params: Params = if params.is_null() {
            Params::default()
        } else {
            parse_params(params)?
        };
        if params.backup.is_some() && params.run.is_some() {
            return Err("give `backup` or `run`, not both".into());
        }
        Ok(Box::new(RollbackStep {
            backup: params.backup,
            run: params.run,
            before: params.before,
            destination: super::restore::destination(params.into, params.in_place, params.confirm)?,
        }))
    }
}

impl Step for RollbackStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let (where_to, mut commands) = super::restore::describe_destination(cx, &self.destination);
        let which = match (&self.backup, &self.run) {
            (Some(id), _) => format!("backup {id}"),
            (_, Some(run)) => format!("the backup run {run} took (from its journal)"),
            _ => "the backup taken earlier in this run, else the newest verified one".into(),
        };
        let mut details = vec![format!("Restores {which}, {where_to}.")];
        if let Some(before) = &self.before {
            details.push(format!(
                "Then applies the pending migrations that come before {before}, which stays unapplied."
            ));
            commands.push(format!(
                "DATABASE_URL=<restored> dbflow migrate deploy   # stopping before {before}"
            ));
        }
        details.push("Validates the result, then runs `switch_to_restored` or prints how to point the application at it.".into());
        Ok(StepDoc {
            summary: format!("Roll back to {which}"),
            details: details.join("\n"),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if self.before.as_deref() == Some("") {
            return Err(StepError {
                message: "no bad migration named: set BAD_MIGRATION=<migration folder name> (the one to leave out)".into(),
                code: crate::error::ExitCode::BadInput,
            });
        }
        restoring::check_destination(cx, &self.destination)?;
        let catalog = Catalog::new(cx.project, &cx.env.name);
        let entry = match (&self.backup, &self.run) {
            (Some(id), _) => catalog.get(id).map_err(restoring::step_error)?,
            (_, Some(run)) => backup_of_run(cx, &catalog, run)?,
            (None, None) if self.before.is_some() && cx.latest_output("backup_id").is_none() => {
                last_good_before(cx, &catalog, self.before.as_deref().unwrap_or_default())?
            }
            _ => restoring::pick_backup(cx, &catalog, None)?,
        };
        let report = restoring::restore(cx, &entry, &self.destination)?;
        let mut applied = Vec::new();
        if let Some(before) = &self.before {
            applied = apply_before(cx, &report.url, before)?;
        }
        let head = applied
            .last()
            .map(String::as_str)
            .or(entry.manifest.migration_head.as_deref());
        let checks = restoring::validate(cx, &entry, &report.url, Some(head))?;
        restoring::print_checks(cx, &checks);
        restoring::checks_passed(&checks, &format!("rolled-back `{}`", report.database))?;

        let mut switched = false;
        match &self.destination {
            Destination::InPlace { .. } => cx.ui.out(&format!(
                "  `{}` is back at backup {}: nothing to switch",
                report.database,
                entry.id()
            )),
            Destination::New(_) => {
                match cx.project.backup_settings(&cx.env.name).switch_to_restored {
                    Some(task) => {
                        cx.ui.out(&format!(
                            "  pointing the application at `{}`: task `{task}`",
                            report.database
                        ));
                        super::run_hook_task(
                            cx,
                            &task,
                            &[
                                ("DBFLOW_RESTORED_DATABASE", report.database.clone()),
                                ("DBFLOW_RESTORED_URL", report.url.expose().to_string()),
                            ],
                        )?;
                        switched = true;
                    }
                    None => {
                        cx.ui
                            .out("  point the application at the restored database:");
                        cx.ui
                            .out(&format!("    DATABASE_URL={}", report.url.redacted()));
                        cx.ui.out("  the current database is untouched; drop it once nothing needs it (or declare backups.switch_to_restored to do this step)");
                    }
                }
            }
        }
        Ok(Outcome::done()
            .with("backup_id", entry.id().to_string())
            .with("database", report.database.clone())
            .with("applied", applied)
            .with("switched", switched)
            .with("checks", serde_json::to_value(&checks).unwrap_or_default()))
    }
}

/// The newest verified backup taken before `bad` was applied: its migration head sorts
/// before `bad` (migration names sort by their timestamp), or it has none.
fn last_good_before(cx: &RunContext<'_>, catalog: &Catalog, bad: &str) -> Result<Entry, StepError> {
    let entry = catalog
        .scan()
        .entries
        .into_iter()
        .find(|e| {
            e.verified()
                && e.manifest
                    .migration_head
                    .as_deref()
                    .is_none_or(|head| head < bad)
        })
        .ok_or_else(|| {
            StepError::failed(format!(
                "no verified backup of `{}` was taken before {bad} was applied",
                catalog.env
            ))
        })?;
    cx.ui.out(&format!(
        "  using backup {}: the newest verified one from before {bad} (migration head {})",
        entry.id(),
        entry.manifest.migration_head.as_deref().unwrap_or("none")
    ));
    Ok(entry)
}

/// The backup run `run` took (its first `backup_id` output), else the newest verified
/// backup taken before it started.
fn backup_of_run(cx: &RunContext<'_>, catalog: &Catalog, run: &str) -> Result<Entry, StepError> {
    let root = cx.project.root.clone();
    let path = journal::list(&root)
        .into_iter()
        .find(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy().starts_with(run))
        })
        .ok_or_else(|| StepError {
            message: format!("no run `{run}` in {}", journal::RUNS_DIR),
            code: crate::error::ExitCode::BadInput,
        })?;
    let events = journal::read(&path).map_err(restoring::step_error)?;
    let start = events.iter().find(|e| e["event"] == "run_start");
    if let Some(env) = start.and_then(|s| s["env"].as_str()) {
        if env != cx.env.name {
            return Err(StepError {
                message: format!(
                    "run `{run}` ran on environment `{env}`, not `{}`: add --env {env}",
                    cx.env.name
                ),
                code: crate::error::ExitCode::BadInput,
            });
        }
    }
    let mut taken = None;
    for event in events.iter().filter(|e| e["event"] == "step_end") {
        if let Some(id) = event["outputs"]["backup_id"].as_str() {
            taken = Some(id.to_string());
            break;
        }
    }
    if let Some(id) = taken {
        cx.ui
            .out(&format!("  run {run} took backup {id} (from its journal)"));
        return catalog.get(&id).map_err(restoring::step_error);
    }
    let started = start
        .and_then(|s| s["ts"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or_else(|| StepError::failed(format!("the journal of run `{run}` has no start")))?;
    let entry = catalog
        .scan()
        .entries
        .into_iter()
        .find(|e| e.verified() && e.manifest.created_at < started)
        .ok_or_else(|| {
            StepError::failed(format!(
                "run `{run}` took no backup and no verified backup of `{}` is older than it",
                catalog.env
            ))
        })?;
    cx.ui.out(&format!(
        "  run {run} took no backup; using {}, the newest verified one before it",
        entry.id()
    ));
    Ok(entry)
}

/// Applies the pending migrations before `before` to the restored database.
fn apply_before(
    cx: &RunContext<'_>,
    url: &crate::config::DbUrl,
    before: &str,
) -> Result<Vec<String>, StepError> {
    let mut target = Target::for_env(cx.project, cx.env);
    target.url = url.clone();
    let store = target.store().map_err(restoring::step_error)?;
    let options = DeployOptions {
        before: Some(before.to_string()),
        ..DeployOptions::default()
    };
    let ui = cx.ui;
    cx.ui.out(&format!(
        "  applying the migrations before {before} to the restored database"
    ));
    let report = cx.runtime().block_on(async {
        let mut conn = target
            .connect()
            .await
            .map_err(|e| StepError::failed(format!("re-applying migrations: {e}")))?;
        let mut on_event = crate::commands::migrate::progress_printer(ui);
        let report = migrate::deploy(
            &mut conn,
            &store,
            &target.table,
            &target.limits,
            &options,
            &mut on_event,
        )
        .await;
        conn.close().await;
        report.map_err(|e| StepError {
            message: format!("re-applying migrations: {e}"),
            code: match e.interrupted_by() {
                Some(signal) => crate::error::ExitCode::Interrupted(signal),
                None => crate::error::ExitCode::Failed,
            },
        })
    })?;
    if report.applied.is_empty() {
        cx.ui.out(&format!("  nothing to apply before {before}"));
    }
    Ok(report.applied)
}
