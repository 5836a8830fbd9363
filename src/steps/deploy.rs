//! `deploy`: apply pending migrations the `prisma migrate deploy` way (never resets,
//! never seeds), one deployer at a time, each migration atomic where PostgreSQL allows.
//! The guard runs first: the rails for `deploy`, lint errors in pending migrations block
//! on shared and protected environments, and on a protected one a person confirms after
//! seeing every statement with its lock and the backup taken earlier in the run.

use crate::config::Diagnostic;
use crate::db::migrate::{self, DeployOptions};
use crate::db::target::{pooler_warning, Target};
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::guard::deploy_gate::{DeployGate, GateError};
use crate::guard::{self, Operation};
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
    /// Only show what would be applied (`migrate deploy --dry-run`).
    dry_run: bool,
}

impl DeployStep {
    /// The step `dbflow migrate deploy [--to NAME] [--dry-run]` runs.
    pub fn for_command(to: Option<String>, dry_run: bool) -> Self {
        DeployStep {
            to,
            max_backup_age: None,
            dry_run,
        }
    }
}

impl StepKind for DeployKind {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Deploy)
    }

    fn name(&self) -> &str {
        "deploy"
    }

    fn summary(&self) -> &str {
        "apply pending migrations (never resets, never seeds)"
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
            dry_run: false,
        }))
    }
}

impl DeployStep {
    /// The guard before applying (shared with `migrate deploy`), naming the backup
    /// taken earlier in this run.
    fn gate(
        &self,
        cx: &mut RunContext<'_>,
        target: &Target,
        store: &crate::db::store::Store,
        conn: &mut crate::db::Conn,
        confirm: bool,
    ) -> Result<(), StepError> {
        let gate = DeployGate {
            project: cx.project,
            env: cx.env,
            vars: cx.vars,
            ui: cx.ui,
            to: self.to.as_deref(),
            dry_run: self.dry_run,
            yes: cx.options.yes,
            needs_confirmation: confirm,
            backup: backup_in_run(cx),
            indent: cx.indent(),
            reviewed: cx.session.review.as_deref(),
        };
        let runtime = cx.runtime();
        let journal = &mut *cx.journal;
        runtime
            .block_on(gate.check(conn, store, target, &mut |event, fields| {
                journal.record(event, fields)
            }))
            .map_err(|e| match e {
                GateError::Blocked(m) => StepError::blocked(m),
                GateError::Failed(m) => StepError::failed(m),
            })
    }
}

/// The backup an earlier step of this run took: the latest output with a `backup_id`
/// (and its `path`, when given).
fn backup_in_run(cx: &RunContext<'_>) -> Option<String> {
    cx.outputs.iter().rev().find_map(|(step, out)| {
        let id = out.get(crate::journal::BACKUP_ID)?.as_str()?;
        let path = out
            .get("path")
            .and_then(|p| p.as_str())
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        Some(format!("`{id}`{path} (step `{step}`)"))
    })
}

impl Step for DeployStep {
    fn role(&self) -> Option<crate::engine::registry::Role> {
        Some(crate::engine::registry::Role::Deploy)
    }

    fn uses_db_session(&self) -> bool {
        true
    }

    fn operations(&self) -> Vec<Operation> {
        vec![Operation::Deploy]
    }

    /// The preview-then-confirm of a protected deploy: asked when the guard's decision
    /// says so, the decision `apply` acts on.
    fn confirmations(&self, cx: &PlanContext<'_>) -> Vec<crate::engine::Confirmation> {
        let decision = guard::check(cx.project, cx.env, Operation::Deploy);
        if self.dry_run || !decision.allowed || !decision.needs_confirmation {
            return Vec::new();
        }
        vec![crate::engine::Confirmation {
            question: crate::guard::deploy_gate::question("N", &cx.env.name),
            answer: crate::ui::prompt::yes_no_hint(false).to_string(),
            unattended: "--yes".into(),
        }]
    }

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
        let guard = match cx.env.protection {
            crate::config::Protection::Sandbox => {
                " Lint findings in pending migrations are shown as warnings."
            }
            crate::config::Protection::Shared => {
                " Lint errors in pending migrations stop it (unless allowed by a `dbflow:allow` annotation)."
            }
            crate::config::Protection::Protected => {
                " Lint errors in pending migrations stop it; then every statement is shown with the lock it takes and a person confirms (--yes when not interactive)."
            }
        };
        Ok(StepDoc {
            summary: format!("Apply pending migrations{}", self.to.as_ref().map(|t| format!(" up to {t}")).unwrap_or_default()),
            details: format!(
                "Applies pending migrations from {} in order, each with its history row in one transaction, holding advisory lock {}.{lock}{gate}{guard}",
                cx.project.migrations_dir,
                migrate::ADVISORY_LOCK_KEY
            ),
            commands: vec![format!("dbflow migrate deploy --env {}{to}", cx.env.name), "npx prisma migrate deploy".into()],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if let Some((limit, text)) = &self.max_backup_age {
            let catalog = crate::db::backup::Catalog::new(cx.project, &cx.env.name);
            let entry =
                match crate::db::backup::repository::remote_for(cx.project, &cx.env.name, cx.vars)
                    .map_err(|message| StepError {
                    message,
                    code: crate::error::ExitCode::BadInput,
                })? {
                    Some(remote) => crate::db::backup::repository::object::require_fresh(
                        &remote,
                        &cx.env.name,
                        *limit,
                        text,
                    ),
                    None => crate::db::backup::require_fresh(&catalog, *limit, text),
                }
                .map_err(StepError::blocked)?;
            cx.ui.out(&format!(
                "  ✔ backup {} is {} old (max_backup_age {text})",
                entry.id(),
                crate::db::backup::human_age(entry.age(chrono::Utc::now()))
            ));
        }
        let started = std::time::Instant::now();
        let result = self.apply(cx);
        // Metrics count workflow deploys, as they always have (`migrate deploy` never did).
        if !self.dry_run && !cx.options.bare {
            crate::steps::record_metrics(
                cx,
                "deploy",
                result.is_ok(),
                started.elapsed(),
                Vec::new(),
            );
        }
        result
    }
}

impl DeployStep {
    fn apply(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        if let Some(warning) = pooler_warning(cx.env) {
            cx.ui.warn(&warning);
        }
        let decision = guard::check(cx.project, cx.env, Operation::Deploy);
        guard::announce(cx.ui, &decision);
        for event in guard::decision_events(&decision) {
            cx.journal.log(event);
        }
        if !decision.allowed {
            return Err(StepError::blocked(decision.blocked_message()));
        }
        let target = cx.target();
        let (store, mut conn) = cx.store_and_db()?;
        let options = DeployOptions {
            to: self.to.clone(),
            dry_run: self.dry_run,
            ..DeployOptions::default()
        };
        let ui = cx.ui;
        let runtime = cx.runtime();
        if let Err(e) = self.gate(cx, &target, &store, &mut conn, decision.needs_confirmation) {
            cx.session.give_back(conn);
            return Err(e);
        }
        // What this deploy commits, as it goes: a failure later in the run rolls back
        // only when something is here.
        let mut in_flight: Option<String> = None;
        let mut committed: Vec<String> = Vec::new();
        let result = runtime.block_on(async {
            let mut print = crate::ui::migrate::progress_printer(ui);
            let mut on_event = |event: migrate::Event<'_>| {
                match &event {
                    migrate::Event::Applying(name, _, _) => in_flight = Some(name.to_string()),
                    migrate::Event::Applied(name, _, _) => {
                        committed.push(name.to_string());
                        in_flight = None;
                    }
                    _ => {}
                }
                print(event)
            };
            let report = migrate::deploy(
                &mut conn,
                &store,
                &target.table,
                &target.limits,
                &options,
                &mut on_event,
            )
            .await;
            (conn, report)
        });
        let (conn, result) = result;
        // A connection whose deploy failed is in doubt (it may have died): not reused.
        match &result {
            Ok(_) => cx.session.give_back(conn),
            Err(_) => runtime.block_on(conn.close()),
        }
        cx.changes.committed.extend(committed);
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                let uncertain = match (&e, in_flight) {
                    // Rolled back with its transaction unless it ran outside one.
                    (
                        migrate::DeployError::MigrationFailed {
                            name,
                            partial: true,
                            ..
                        },
                        _,
                    ) => Some(format!("{name} (left half applied)")),
                    // The connection died while it ran: it may have committed.
                    (migrate::DeployError::Db(_), Some(name)) => {
                        Some(format!("{name} (fate unknown)"))
                    }
                    _ => None,
                };
                if uncertain.is_some() {
                    cx.changes.uncertain = uncertain;
                }
                return Err(StepError {
                    message: e.to_string(),
                    code: match e.interrupted_by() {
                        Some(signal) => crate::error::ExitCode::Interrupted(signal),
                        None => crate::error::ExitCode::Failed,
                    },
                });
            }
        };
        for warning in &report.warnings {
            cx.ui.warn(warning);
        }
        if cx.options.bare {
            crate::ui::migrate::print_deploy(cx.ui, &cx.env.name, self.dry_run, &report);
        }
        if self.dry_run {
            return Ok(Outcome::done().with("pending", report.pending));
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
