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
use crate::guard::{self, migrations, Operation};
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

impl DeployStep {
    /// The guard before applying: pending migrations linted (errors block on shared and
    /// protected environments) and, on a protected one, the preview a person confirms,
    /// naming the backup taken earlier in this run.
    fn gate(
        &self,
        cx: &mut RunContext<'_>,
        target: &Target,
        store: &crate::db::store::Store,
        conn: &mut crate::db::Conn,
        confirm: bool,
    ) -> Result<(), StepError> {
        let status = cx
            .runtime()
            .block_on(migrate::history_status(conn, store, &target.table))
            .map_err(|e| StepError::failed(e.to_string()))?;
        let mut review = migrations::review(
            cx.project,
            cx.env.protection,
            target.url.is_postgres(),
            store,
            &status,
        );
        // The migrator refuses modified applied migrations itself, with the fix.
        review.modified.clear();
        if let Some(to) = &self.to {
            if let Some(end) = review.pending.iter().position(|(name, _)| name == to) {
                review.pending.truncate(end + 1);
            }
        }
        let pending = guard::promotion::pending(&status, self.to.as_deref());
        cx.runtime()
            .block_on(guard::promotion::check_deploy(
                cx.project, cx.env, cx.vars, store, &pending,
            ))
            .report(cx.ui, |event, fields| cx.journal.record(event, fields))
            .map_err(StepError::blocked)?;
        if review.pending.is_empty() {
            return Ok(());
        }
        let summary = review.summary();
        if summary.errors + summary.warnings + summary.allowed > 0 || !review.not_linted.is_empty()
        {
            for line in migrations::render_review(&review, &cx.env.name).lines() {
                cx.ui.out(&format!("  {line}"));
            }
        }
        if let Some(reason) = review.blocked_reason() {
            return Err(StepError::blocked(format!(
                "blocked by the guard: deploy to `{}` ({}): {reason}",
                cx.env.name,
                cx.env.protection.as_str()
            )));
        }
        if !confirm {
            return Ok(());
        }
        let backup = backup_in_run(cx);
        for line in migrations::render_preview(&review, &cx.env.name, backup.as_deref()).lines() {
            cx.ui.out(&format!("  {line}"));
        }
        let question = format!(
            "Apply {} migration(s) to protected `{}`?",
            review.pending.len(),
            cx.env.name
        );
        let answer = migrations::confirm(&question, cx.options.yes);
        cx.journal.record(
            "protected_confirmation",
            serde_json::json!({
                "operation": "deploy",
                "pending": review.pending.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                "backup": backup,
                "confirmed_by": answer.as_ref().ok(),
                "refused": answer.as_ref().err(),
            }),
        );
        answer.map(|_| ()).map_err(StepError::blocked)
    }
}

/// The backup an earlier step of this run took: the latest output with a `backup_id`
/// (and its `path`, when given).
fn backup_in_run(cx: &RunContext<'_>) -> Option<String> {
    cx.outputs.iter().rev().find_map(|(step, out)| {
        let id = out.get("backup_id")?.as_str()?;
        let path = out
            .get("path")
            .and_then(|p| p.as_str())
            .map(|p| format!(" at {p}"))
            .unwrap_or_default();
        Some(format!("`{id}`{path} (step `{step}`)"))
    })
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
        crate::steps::record_metrics(cx, "deploy", result.is_ok(), started.elapsed(), Vec::new());
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
        for (event, fields) in guard::journal_events(&decision) {
            cx.journal.record(event, fields);
        }
        if !decision.allowed {
            return Err(StepError::blocked(decision.blocked_message()));
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
        let runtime = cx.runtime();
        let mut conn = runtime
            .block_on(target.connect())
            .map_err(|e| StepError::failed(e.to_string()))?;
        if let Err(e) = self.gate(cx, &target, &store, &mut conn, decision.needs_confirmation) {
            runtime.block_on(conn.close());
            return Err(e);
        }
        // What this deploy commits, as it goes: a failure later in the run rolls back
        // only when something is here.
        let mut in_flight: Option<String> = None;
        let mut committed: Vec<String> = Vec::new();
        let result = runtime.block_on(async {
            let mut print = crate::commands::migrate::progress_printer(ui);
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
            conn.close().await;
            report
        });
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
