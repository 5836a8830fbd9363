//! `deploy`: apply pending migrations the `prisma migrate deploy` way (never resets,
//! never seeds), one deployer at a time, each migration atomic where PostgreSQL allows.

use crate::config::Diagnostic;
use crate::db::migrate::{self, DeployOptions};
use crate::db::target::{pooler_warning, Target};
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use serde::Deserialize;

/// The `deploy` step kind.
pub struct DeployKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    to: Option<String>,
    max_backup_age: Option<String>,
}

/// A configured `deploy` step.
#[derive(Debug)]
pub struct DeployStep {
    to: Option<String>,
    /// Refuse (exit 3) unless a verified backup younger than this exists.
    max_backup_age: Option<(std::time::Duration, String)>,
}

impl StepKind for DeployKind {
    fn name(&self) -> &str {
        "deploy"
    }

    fn summary(&self) -> &str {
        "apply pending migrations (never resets, never seeds)"
    }

    fn parse(&self, params: &serde_json::Value) -> Result<Box<dyn Step>, String> {
        let params: Params = if params.is_null() {
            Params::default()
        } else {
            parse_params(params)?
        };
        let max_backup_age = match params.max_backup_age {
            Some(text) => Some((
                humantime::parse_duration(&text)
                    .map_err(|e| format!("invalid max_backup_age `{text}`: {e}"))?,
                text,
            )),
            None => None,
        };
        Ok(Box::new(DeployStep {
            to: params.to,
            max_backup_age,
        }))
    }
}

impl Step for DeployStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let target = Target::for_env(cx.project, cx.env);
        let lock = target
            .limits
            .lock_timeout
            .map(|t| {
                format!(
                    " lock_timeout {} per migration (retried {}×).",
                    humantime::format_duration(t),
                    target.limits.lock_retries
                )
            })
            .unwrap_or_default();
        let to = self
            .to
            .as_ref()
            .map(|t| format!(" --to {t}"))
            .unwrap_or_default();
        let gate = self
            .max_backup_age
            .as_ref()
            .map(|(_, text)| format!(" Refuses (exit 3) unless the newest verified backup of `{}` is younger than {text}.", cx.env.name))
            .unwrap_or_default();
        Ok(StepDoc {
            summary: format!("Apply pending migrations{}", self.to.as_ref().map(|t| format!(" up to {t}")).unwrap_or_default()),
            details: format!(
                "Applies pending migrations from {} in order, each with its history row in one transaction, holding advisory lock {}.{lock}{gate}",
                cx.project.migrations_dir,
                migrate::ADVISORY_LOCK_KEY
            ),
            commands: vec![format!("dbflow migrate deploy --env {}{to}", cx.env.name), "npx prisma migrate deploy".into()],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if let Some((limit, text)) = &self.max_backup_age {
            let catalog = crate::db::backup::Catalog::new(cx.project, &cx.env.name);
            let entry = crate::db::backup::require_fresh(&catalog, *limit, text)
                .map_err(StepError::blocked)?;
            cx.ui.out(&format!(
                "  ✔ backup {} is {} old (max_backup_age {text})",
                entry.id(),
                crate::db::backup::human_age(entry.age(chrono::Utc::now()))
            ));
        }
        let started = std::time::Instant::now();
        let result = self.apply(cx);
        crate::steps::record_metrics(cx, "deploy", result.is_ok(), started.elapsed(), Vec::new());
        result
    }
}

impl DeployStep {
    fn apply(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if let Some(warning) = pooler_warning(cx.env) {
            cx.ui.warn(&warning);
        }
        let target = Target::for_env(cx.project, cx.env);
        let store = target
            .store()
            .map_err(|e| StepError::failed(e.to_string()))?;
        let options = DeployOptions {
            to: self.to.clone(),
            ..DeployOptions::default()
        };
        let ui = cx.ui;
        let result = cx.runtime().block_on(async {
            let mut conn = target.connect().await.map_err(|e| e.to_string())?;
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
            report.map_err(|e| e.to_string())
        });
        let report = result.map_err(StepError::failed)?;
        for warning in &report.warnings {
            cx.ui.warn(warning);
        }
        if report.applied.is_empty() {
            let mut outcome = Outcome::done().with("applied", Vec::<String>::new());
            outcome.skipped = Some("no pending migrations".into());
            return Ok(outcome);
        }
        Ok(Outcome::done()
            .with("applied", report.applied.clone())
            .with("head", report.applied.last().cloned()))
    }
}
