//! `rehearse`: prove pending migrations apply cleanly before they reach a shared database —
//! restore the newest verified backup (or the one an earlier step took) into a scratch
//! database `<db>_rehearsal_<ts>`, apply every pending migration there, check the status
//! is clean, then drop the scratch copy (unless `keep`). The environment's database is
//! only read (by the backup).

use crate::config::Diagnostic;
use crate::db::backup::{restore, Catalog};
use crate::db::migrate::{self, DeployOptions};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `rehearse` step kind.
pub struct RehearseKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    keep: bool,
}

/// A configured `rehearse` step.
#[derive(Debug)]
pub struct RehearseStep {
    keep: bool,
}

impl StepKind for RehearseKind {
    fn name(&self) -> &str {
        "rehearse"
    }

    fn summary(&self) -> &str {
        "apply pending migrations to a scratch copy restored from the latest backup"
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
        Ok(Box::new(RehearseStep { keep: params.keep }))
    }
}

impl Step for RehearseStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        Ok(StepDoc {
            summary: "Rehearse the pending migrations on a scratch copy".into(),
            details: format!(
                "Restores the newest verified backup of `{}` into `<db>_rehearsal_<timestamp>`, applies every pending migration there, checks the status is clean, then {}.",
                cx.env.name,
                if self.keep { "keeps the copy" } else { "drops the copy" }
            ),
            commands: vec![
                format!("dbflow restore latest --env {} --into <db>_rehearsal", cx.env.name),
                "DATABASE_URL=<the copy> dbflow migrate deploy".into(),
            ],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = Target::for_env(cx.project, cx.env);
        let taken = cx
            .latest_output(crate::journal::BACKUP_ID)
            .and_then(|(_, v)| v.as_str().map(str::to_string));
        let remote = crate::db::backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)
            .map_err(|message| StepError {
            message,
            code: crate::error::ExitCode::BadInput,
        })?;
        let source_db = target.url.database_name().unwrap_or_else(|| "db".into());
        let name = restore::default_name(&source_db, "rehearsal", chrono::Utc::now());
        let report = match &remote {
            // The same scratch copy, its dump streamed from the repository.
            Some(remote) => {
                use crate::db::backup::repository::object;
                let rt = object::runtime().map_err(super::restoring::step_error)?;
                let id = taken.unwrap_or_else(|| "latest".into());
                let entry = rt
                    .block_on(object::get(remote, &cx.env.name, &id))
                    .map_err(|e| StepError::failed(e.to_string()))?;
                let identities = object::identities_for(&entry, cx.vars)
                    .map_err(super::restoring::step_error)?;
                cx.ui.out(&format!(
                    "  restoring backup {} from {} into {name}",
                    entry.id(),
                    remote.shown
                ));
                let origin = super::restoring::Origin::Repository {
                    remote,
                    identities: identities.as_deref(),
                };
                let report = super::restoring::restore_copy(cx, &entry, &target.url, &name, origin)
                    .map_err(|e| StepError {
                        message: format!("restoring the scratch copy: {}", e.message),
                        code: e.code,
                    })?;
                (entry, report)
            }
            None => {
                let catalog = Catalog::new(cx.project, &cx.env.name);
                let entry = match taken {
                    Some(id) => catalog.get(&id).map_err(|e| StepError::failed(e.to_string()))?,
                    None => catalog
                        .newest_verified()
                        .ok_or_else(|| StepError::failed(format!("no verified backup of `{}` to rehearse on: take one first (`dbflow backup create`)", cx.env.name)))?,
                };
                cx.ui
                    .out(&format!("  restoring backup {} into {name}", entry.id()));
                let jobs = cx.project.backup_settings(&cx.env.name).jobs;
                let report = restore::restore_into_new(
                    &entry,
                    &target.url,
                    &name,
                    jobs,
                    cx.runtime(),
                    &mut |_| {},
                )
                .map_err(|e| StepError::failed(format!("restoring the scratch copy: {e}")))?;
                (entry, report)
            }
        };
        let (entry, report) = report;
        let copy = report.url.clone();
        let store = target
            .store()
            .map_err(|e| StepError::failed(e.to_string()))?;
        let ui = cx.ui;
        let limits = target.limits.clone();
        let table = target.table.clone();
        let result = cx.runtime().block_on(async {
            let mut conn = crate::db::Conn::connect(&copy)
                .await
                .map_err(|e| e.to_string())?;
            let mut on_event = crate::ui::migrate::progress_printer(ui);
            let deployed = migrate::deploy(
                &mut conn,
                &store,
                &table,
                &limits,
                &DeployOptions::default(),
                &mut on_event,
            )
            .await;
            let status = migrate::status(&mut conn, &store, &table).await;
            conn.close().await;
            let deployed = deployed.map_err(|e| e.to_string())?;
            let status = status.map_err(|e| e.to_string())?;
            let all: Vec<String> = ["pending", "failed", "modified", "missing"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let problems = status.problems(&all);
            if problems.is_empty() {
                Ok(deployed.applied)
            } else {
                Err(format!(
                    "status on the copy is not clean: {}",
                    problems.join("; ")
                ))
            }
        });
        let shown = restore::display_name(&copy);
        if !self.keep {
            match super::restoring::drop_own_copy(cx, &copy) {
                Ok(()) => cx.ui.out(&format!("  dropped the scratch copy {shown}")),
                Err(e) => cx
                    .ui
                    .warn(&format!("could not drop the scratch copy {shown}: {e}")),
            }
        }
        let applied = result.map_err(|e| {
            StepError::failed(format!(
                "rehearsal on a copy of backup {} failed: {e}",
                entry.id()
            ))
        })?;
        cx.ui.out(&format!(
            "  ✔ {} pending migration(s) apply cleanly on a copy of backup {}",
            applied.len(),
            entry.id()
        ));
        Ok(Outcome::done()
            .with("rehearsed_on", entry.id().to_string())
            .with("applied", applied)
            .with("copy", if self.keep { shown } else { String::new() }))
    }
}
