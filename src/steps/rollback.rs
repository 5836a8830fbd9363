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
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Restore)
    }

    fn name(&self) -> &str {
        "rollback"
    }

    fn summary(&self) -> &str {
        "restore the pre-deploy backup (new database by default), re-apply good migrations, validate"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
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
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Restore)
    }

    /// An in-place destination's RESTORE, then the cut-over's word when the environment
    /// has a `switch_to_restored` task (without one nothing is asked: commands are printed).
    fn confirmations(&self, cx: &PlanContext<'_>) -> Vec<crate::engine::Confirmation> {
        let mut out = restoring::destination_confirmations(cx, &self.destination);
        if let Some(task) = cx.project.backup_settings(&cx.env.name).switch_to_restored {
            out.push(crate::engine::Confirmation {
                question: cut_over_question(&cx.env.name, "<restored>", &task),
                answer: crate::ui::prompt::typed_hint(CUT_OVER_WORD),
                unattended: "--yes --cut-over".into(),
            });
        }
        out
    }

    fn operations(&self) -> Vec<crate::guard::Operation> {
        restoring::destination_operations(&self.destination)
    }

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
        details.push(format!("Validates the result. Pointing the application at it (`switch_to_restored`) needs a person: the word {CUT_OVER_WORD} typed, or a run given --yes --cut-over; otherwise the decision and the commands are printed and nothing is switched."));
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
        let remote = crate::db::backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)
            .map_err(|message| StepError {
            message,
            code: crate::error::ExitCode::BadInput,
        })?;
        let (entry, report) = match remote {
            Some(remote) => self.restore_from(cx, &remote)?,
            None => {
                let catalog = Catalog::new(cx.project, &cx.env.name);
                let entry = match (&self.backup, &self.run) {
                    (Some(id), _) => catalog.get(id).map_err(restoring::step_error)?,
                    (_, Some(run)) => backup_of_run(cx, &catalog, run)?,
                    (None, None)
                        if self.before.is_some()
                            && cx.latest_output(crate::journal::BACKUP_ID).is_none() =>
                    {
                        last_good_before(cx, &catalog, self.before.as_deref().unwrap_or_default())?
                    }
                    _ => restoring::pick_backup(cx, &catalog, None)?,
                };
                let report = restoring::restore(cx, &entry, &self.destination)?;
                (entry, report)
            }
        };
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
                switched = cut_over(cx, &report)?;
            }
        }
        Ok(Outcome::done()
            .with(crate::journal::BACKUP_ID, entry.id().to_string())
            .with("database", report.database.clone())
            .with("applied", applied)
            .with("switched", switched)
            .with("checks", serde_json::to_value(&checks).unwrap_or_default()))
    }
}

/// The question the cut-over asks.
fn cut_over_question(env: &str, database: &str, task: &str) -> String {
    format!("Point the application of `{env}` at the restored database `{database}` (task `{task}`)? Decide first: fix forward, or roll back")
}

/// The word a person types to point the application at the restored database.
pub const CUT_OVER_WORD: &str = "CUT-OVER";

/// The cut-over: runs `switch_to_restored` only when a person typed the word, or the run
/// was given `--yes --cut-over`; otherwise prints the decision and the commands, and the
/// application stays where it is. Whether it switched.
fn cut_over(
    cx: &mut RunContext<'_>,
    report: &crate::db::backup::restore::RestoreReport,
) -> Result<bool, StepError> {
    let Some(task) = cx.project.backup_settings(&cx.env.name).switch_to_restored else {
        cx.ui
            .out("  point the application at the restored database:");
        cx.ui
            .out(&format!("    DATABASE_URL={}", report.url.redacted()));
        cx.ui.out("  the current database is untouched; drop it once nothing needs it (or declare backups.switch_to_restored to do this step)");
        return Ok(false);
    };
    let question = cut_over_question(&cx.env.name, &report.database, &task);
    let given = (cx.options.yes && cx.options.cut_over).then_some(CUT_OVER_WORD);
    let answer = crate::ui::prompt::typed(CUT_OVER_WORD, &question, given);
    cx.journal.log(crate::journal::Event::CutOverConfirmation {
        question: question.clone(),
        answer: format!("{answer:?}"),
        database: report.database.clone(),
    });
    match answer {
        crate::ui::prompt::Answer::Yes | crate::ui::prompt::Answer::AssumedYes => {}
        other => {
            let why = match other {
                crate::ui::prompt::Answer::CannotAsk(reason) => format!(
                    "nobody can be asked ({reason}) and the run was not given --yes --cut-over"
                ),
                _ => format!("the word {CUT_OVER_WORD} was not typed"),
            };
            cx.ui.out(&format!(
                "  NOT cut over: {why}. The application still uses `{}`; the restored copy `{}` waits.",
                crate::db::backup::restore::display_name(&Target::for_env(cx.project, cx.env).url),
                report.database
            ));
            cx.ui.out("  decide: fix forward (`dbflow run fix-forward`), or roll back by pointing the application at the copy:");
            cx.ui.out(&format!(
                "    DBFLOW_RESTORED_DATABASE={} dbflow run {task} --env {}",
                report.database, cx.env.name
            ));
            return Ok(false);
        }
    }
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
    Ok(true)
}

/// The newest verified backup taken before `bad` was applied: its migration head sorts
/// before `bad` (migration names sort by their timestamp), or it has none.
fn last_good_before(cx: &RunContext<'_>, catalog: &Catalog, bad: &str) -> Result<Entry, StepError> {
    let now = chrono::Utc::now();
    let entry = catalog
        .scan()
        .entries
        .into_iter()
        // A future-dated backup (a skewed clock) is never "the last good one".
        .find(|e| {
            e.usable(now)
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

/// The backup run `run` took before its deploy step, else the newest verified backup
/// taken before it started by the database server's clock (see
/// [`Catalog::backup_for_run`]).
fn backup_of_run(cx: &RunContext<'_>, catalog: &Catalog, run: &str) -> Result<Entry, StepError> {
    let chosen = catalog
        .backup_for_run(&cx.project.root, run)
        .map_err(restoring::step_error)?;
    cx.ui.out(&format!("  {}", chosen.why));
    Ok(chosen.entry)
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
        let mut on_event = crate::ui::migrate::progress_printer(ui);
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

impl RollbackStep {
    /// Chooses the backup in an object-storage repository and restores it into a new
    /// database. `--run RUN_ID` finds the backup whose manifest names that run, so a
    /// rollback works from any working copy, whose journal never saw the run.
    fn restore_from(
        &self,
        cx: &mut RunContext<'_>,
        remote: &crate::db::backup::repository::Remote,
    ) -> Result<(Entry, crate::db::backup::restore::RestoreReport), StepError> {
        use crate::db::backup::repository::object;
        if self.before.is_some() && self.backup.is_none() && self.run.is_none() {
            return Err(StepError {
                message: format!(
                    "choosing the last good backup before a migration is not supported for {} yet: name it with --backup ID or --run RUN_ID",
                    remote.shown
                ),
                code: crate::error::ExitCode::BadInput,
            });
        }
        let runtime = object::runtime().map_err(restoring::step_error)?;
        let env = cx.env.name.clone();
        let entry = match (&self.backup, &self.run) {
            (Some(id), _) => runtime
                .block_on(object::get(remote, &env, id))
                .map_err(restoring::step_error)?,
            (_, Some(run)) => {
                let (entries, _) = runtime
                    .block_on(object::list(remote, &env))
                    .map_err(restoring::step_error)?;
                let now = chrono::Utc::now();
                let of_run: Vec<Entry> = entries
                    .into_iter()
                    .filter(|e| e.manifest.run_id.as_deref() == Some(run.as_str()))
                    .collect();
                let chosen = of_run
                    .iter()
                    .find(|e| {
                        e.usable(now)
                            && e.manifest.label.as_deref()
                                == Some(crate::db::backup::catalog::PRE_DEPLOY_LABEL)
                    })
                    .or_else(|| of_run.iter().find(|e| e.usable(now)))
                    .cloned();
                match chosen {
                    Some(entry) => {
                        cx.ui.out(&format!(
                            "  backup {} was taken by run {run} (its manifest in {} says so)",
                            entry.id(),
                            remote.shown
                        ));
                        entry
                    }
                    None if of_run.is_empty() => {
                        return Err(StepError::failed(format!(
                            "run {run} took no backup of `{env}` in {}: nothing to roll back to (`dbflow backup list --env {env}`)",
                            remote.shown
                        )))
                    }
                    None => {
                        return Err(StepError::failed(format!(
                            "the backups run {run} took in {} ({}) failed verification: none can be restored",
                            remote.shown,
                            of_run.iter().map(|e| e.id().to_string()).collect::<Vec<_>>().join(", ")
                        )))
                    }
                }
            }
            _ => {
                let id = cx
                    .latest_output("backup_id")
                    .and_then(|(_, id)| id.as_str().map(str::to_string))
                    .unwrap_or_else(|| "latest".into());
                runtime
                    .block_on(object::get(remote, &env, &id))
                    .map_err(restoring::step_error)?
            }
        };
        let Destination::New(name) = &self.destination else {
            // In place: restored beside, validated, then swapped, as from a folder.
            let identities =
                object::identities_for(&entry, cx.vars).map_err(restoring::step_error)?;
            cx.ui.out(&format!("  from {}", remote.shown));
            let origin = restoring::Origin::Repository {
                remote,
                identities: identities.as_deref(),
            };
            let report = restoring::restore_from(cx, &entry, &self.destination, origin)?;
            return Ok((entry, report));
        };
        cx.journal.log(crate::journal::Event::RestoreStart {
            backup_id: entry.id().to_string(),
            repository: Some(remote.shown.to_string()),
            destination: "new".into(),
        });
        let target = Target::for_env(cx.project, cx.env);
        let now = chrono::Utc::now();
        let source_db = crate::db::backup::restore::display_name(&target.url);
        let name = name.clone().unwrap_or_else(|| {
            crate::db::backup::restore::default_name(&source_db, "restore", now)
        });
        let identities = object::identities_for(&entry, cx.vars).map_err(restoring::step_error)?;
        let mut transfer = crate::ui::progress::Transfer::new(cx.ui);
        let result = object::restore_into_new(
            remote,
            &entry,
            &target.url,
            &name,
            &runtime,
            identities.as_deref(),
            &mut super::show(&mut transfer),
        );
        transfer.finish();
        let report = result.map_err(restoring::step_error)?;
        Ok((entry, report))
    }
}
