//! `status`: migration status (applied / pending / failed / modified / missing / rolled
//! back) plus schema drift; fails with exit code 4 on the categories in `fail_on`.

use crate::config::Diagnostic;
use crate::db::migrate::{self, Category};
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
    /// An unknown name is refused by serde, with the names it accepts.
    fail_on: Option<Vec<Category>>,
}

/// A configured `status` step.
#[derive(Debug)]
pub struct StatusStep {
    fail_on: Vec<Category>,
    /// `migrate status --shadow`: always compare with the migrations built in a scratch
    /// database (and fail when that comparison could not be made).
    shadow: bool,
}

impl StatusStep {
    /// The step `dbflow migrate status [--shadow]` runs: every category is a problem
    /// (exit 4).
    pub fn for_command(shadow: bool) -> Self {
        StatusStep {
            fail_on: Category::ALL.to_vec(),
            shadow,
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
                Category::Failed,
                Category::Modified,
                Category::Missing,
                Category::Drift,
            ]
        });
        Ok(Box::new(StatusStep {
            fail_on,
            shadow: false,
        }))
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
                self.fail_on
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            commands: vec![format!("dbflow migrate status --env {}", cx.env.name), "npx prisma migrate status".into()],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let target = cx.target();
        // The connection is opened and the database read while the folder is: neither
        // the history nor the catalog check needs a migration file, and on a long
        // history the folder's thousands of stats take as long as a fresh backend's
        // start-up. A folder that cannot be read is reported before a database that
        // cannot be reached.
        let open = cx.session.take_open();
        let runtime = cx.runtime();
        let (observed, store) = std::thread::scope(|scope| {
            let observing = scope.spawn(|| {
                runtime.block_on(async {
                    let mut conn = match open {
                        Some(conn) => conn,
                        None => target
                            .connect()
                            .await
                            .map_err(|e| StepError::failed(e.to_string()))?,
                    };
                    let observed = migrate::observe(&mut conn, &target.table).await;
                    Ok::<_, StepError>((conn, observed))
                })
            });
            let store = cx.store();
            (observing.join(), store)
        });
        let store = store?;
        let (conn, observed) =
            observed.map_err(|_| StepError::failed("reading the migration status failed"))??;
        cx.session.give_back(conn);
        let status = observed
            .map(|o| o.status(&store))
            .map_err(|e| StepError::failed(e.to_string()))?;
        // A stale or missing record on shared/protected environments (or --shadow) is
        // settled by building the migrations in a scratch database; only a step that
        // fails on drift pays for that build.
        let mode = if self.shadow {
            crate::db::shadow::Mode::Forced
        } else if self.fail_on.contains(&Category::Drift) {
            crate::db::shadow::Mode::Auto(cx.env.protection)
        } else {
            crate::db::shadow::Mode::Auto(crate::config::Protection::Sandbox)
        };
        let server = crate::db::target::shadow_server(cx.project, cx.vars)
            .map_err(crate::steps::restoring::step_error)?;
        let guard_target = crate::guard::GuardTarget::of(cx.env);
        let status = cx.runtime().block_on(crate::db::shadow::settle(
            &target,
            server.as_ref(),
            &store,
            status,
            mode,
            |name| crate::guard::own_copy(&guard_target, name),
        ));
        let problems = status.problems_in(&self.fail_on);
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
            for line in crate::ui::migrate::render_status(&status, cx.ui.verbose).lines() {
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
        if problems.is_empty() && self.shadow && !status.drift_checked {
            // Asked for the comparison and did not get it: not a clean bill of health.
            Err(StepError {
                message: "--shadow: the schema could not be compared with the migrations (see the drift line above)".into(),
                code: ExitCode::Failed,
            })
        } else if problems.is_empty() {
            Ok(outcome)
        } else {
            Err(StepError {
                message: format!("migration status not clean: {}", problems.join("; ")),
                code: ExitCode::NotClean,
            })
        }
    }
}
