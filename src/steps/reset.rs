//! `reset`: drop and re-create the environment's database, then apply every migration —
//! for sandboxes only. The guard decides first (`migrate-reset`: refused unless the
//! database name looks like a sandbox, never on shared or protected environments), so a
//! local reset can never reach a shared database by accident.

use crate::config::Diagnostic;
use crate::db::backup::restore::drop_database;
use crate::db::migrate::{self, DeployOptions};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::guard::{self, Operation};
use serde::Deserialize;

/// The `reset` step kind.
pub struct ResetKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {}

/// A configured `reset` step.
#[derive(Debug)]
pub struct ResetStep;

impl StepKind for ResetKind {
    fn name(&self) -> &str {
        "reset"
    }

    fn summary(&self) -> &str {
        "drop, re-create and re-migrate a sandbox database (guarded)"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        if !params.is_null() {
            parse_params::<Params>(params)?;
        }
        Ok(Box::new(ResetStep))
    }
}

impl Step for ResetStep {
    fn operations(&self) -> Vec<Operation> {
        vec![Operation::MigrateReset]
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let sqlite = cx.env.url.is_sqlite();
        let db = cx.env.url.database_name().unwrap_or_else(|| "$DB".into());
        Ok(StepDoc {
            summary: "Drop and re-create the database, then apply every migration".into(),
            details: format!(
                "Refused unless the database name matches `{}` and the environment is a sandbox.",
                cx.project.sandbox_pattern
            ),
            commands: if sqlite {
                vec![
                    format!("rm {db}.db"),
                    format!("dbflow migrate deploy --env {}", cx.env.name),
                ]
            } else {
                vec![
                    format!("dropdb --force {db}"),
                    format!("createdb {db}"),
                    format!("dbflow migrate deploy --env {}", cx.env.name),
                ]
            },
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let decision = guard::check(cx.project, cx.env, Operation::MigrateReset);
        guard::announce(cx.ui, &decision);
        for event in guard::decision_events(&decision) {
            cx.journal.log(event);
        }
        let why = |decision: &guard::Decision| {
            let why: Vec<String> = decision
                .violations
                .iter()
                .filter(|v| v.blocks())
                .map(|v| format!("{} ({})", v.reason, v.rule))
                .collect();
            format!(
                "refusing to reset {}: {}",
                decision.target.describe(),
                if why.is_empty() {
                    "the database name is unknown".to_string()
                } else {
                    why.join("; ")
                }
            )
        };
        let permit =
            guard::permit::permit_for(decision).map_err(|d| StepError::blocked(why(&d)))?;
        let target = Target::for_env(cx.project, cx.env);
        let store = target
            .store()
            .map_err(|e| StepError::failed(e.to_string()))?;
        let shown = crate::db::backup::restore::display_name(&target.url);
        let exists = crate::db::backup::restore::database_exists(&target.url, cx.runtime())
            .map_err(|e| StepError::failed(e.to_string()))?;
        if exists {
            drop_database(&target.url, &permit)
                .map_err(|e| StepError::failed(format!("dropping {shown}: {e}")))?;
            cx.ui.out(&format!("  dropped {shown}"));
        }
        if target.url.is_postgres() {
            let tools = crate::db::pgtools::PgTools::locate(None)
                .map_err(|e| StepError::failed(e.to_string()))?;
            let conn = crate::db::pgtools::PgConn::from_url(&target.url)
                .map_err(|e| StepError::failed(e.to_string()))?;
            tools
                .createdb(&conn, &conn.database(), None)
                .map_err(|e| StepError::failed(e.to_string()))?;
            cx.ui.out(&format!("  created {shown}"));
        }
        let ui = cx.ui;
        let report = cx
            .runtime()
            .block_on(async {
                let mut conn = target.connect().await.map_err(|e| e.to_string())?;
                let mut on_event = crate::ui::migrate::progress_printer(ui);
                let report = migrate::deploy(
                    &mut conn,
                    &store,
                    &target.table,
                    &target.limits,
                    &DeployOptions::default(),
                    &mut on_event,
                )
                .await;
                conn.close().await;
                report.map_err(|e| e.to_string())
            })
            .map_err(StepError::failed)?;
        Ok(Outcome::done()
            .with("database", shown)
            .with("applied", report.applied))
    }
}
