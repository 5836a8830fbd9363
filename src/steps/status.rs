//! `status`: migration status (applied / pending / failed / modified / missing / rolled
//! back) plus schema drift; fails with exit code 4 on the categories in `fail_on`.

use crate::config::Diagnostic;
use crate::db::migrate::{self, ALL_CATEGORIES};
use crate::db::target::Target;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::error::ExitCode;
use serde::Deserialize;

/// The `status` step kind.
pub struct StatusKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    fail_on: Option<Vec<String>>,
}

/// A configured `status` step.
#[derive(Debug)]
pub struct StatusStep {
    fail_on: Vec<String>,
}

impl StatusStep {
    /// The step `dbflow migrate status` runs: every category is a problem (exit 4).
    pub fn for_command() -> Self {
        StatusStep {
            fail_on: ALL_CATEGORIES.iter().map(|c| c.to_string()).collect(),
        }
    }
}

impl StepKind for StatusKind {
    fn name(&self) -> &str {
        "status"
    }

    fn summary(&self) -> &str {
        "migration status and schema drift; fails (exit 4) on `fail_on`"
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
        let fail_on = params.fail_on.unwrap_or_else(|| {
            vec![
                "failed".into(),
                "modified".into(),
                "missing".into(),
                "drift".into(),
            ]
        });
        for category in &fail_on {
            if !ALL_CATEGORIES.contains(&category.as_str()) {
                let help = crate::config::diagnostic::did_you_mean(
                    category,
                    ALL_CATEGORIES.iter().copied(),
                )
                .unwrap_or_default();
                return Err(format!(
                    "unknown fail_on category `{category}` (expected one of {}) {help}",
                    ALL_CATEGORIES.join(", ")
                )
                .trim_end()
                .to_string()
                .into());
            }
        }
        Ok(Box::new(StatusStep { fail_on }))
    }
}

impl Step for StatusStep {
    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let target = Target::for_env(cx.project, cx.env);
        Ok(StepDoc {
            summary: "Check migration status and schema drift".into(),
            details: format!(
                "Compares {} with the `{}` table and the schema recorded at the last deploy; stops on: {}.",
                cx.project.migrations_dir,
                target.table,
                self.fail_on.join(", ")
            ),
            commands: vec![format!("dbflow migrate status --env {}", cx.env.name), "npx prisma migrate status".into()],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = cx.target();
        let (store, mut conn) = cx.store_and_db()?;
        let status = cx
            .runtime()
            .block_on(migrate::status(&mut conn, &store, &target.table));
        cx.session.give_back(conn);
        let status = status.map_err(|e| StepError::failed(e.to_string()))?;
        let problems = status.problems(&self.fail_on);
        if cx.options.bare {
            let url = target.url.redacted();
            crate::ui::migrate::print_status(
                cx.ui,
                &cx.env.name,
                &url,
                &status,
                problems.is_empty(),
            );
        } else {
            for line in crate::ui::migrate::render_status(&status).lines() {
                cx.ui.out(&format!("  {line}"));
            }
        }
        let count = |s| status.with_state(s).count();
        let outcome = Outcome::done()
            .with("applied", count(migrate::State::Applied))
            .with(
                "pending",
                count(migrate::State::Pending) + count(migrate::State::RolledBack),
            )
            .with("head", status.head().map(str::to_string))
            .with("drift", status.drift.len());
        if problems.is_empty() {
            Ok(outcome)
        } else {
            Err(StepError {
                message: format!("migration status not clean: {}", problems.join("; ")),
                code: ExitCode::NotClean,
            })
        }
    }
}
