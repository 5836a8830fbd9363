//! `guard`: the safety rails as a workflow step. Checks the operations the workflow is
//! about to perform against the environment (exit 3 when blocked), and for `deploy`
//! makes sure applied migrations are unchanged and lints the pending ones (errors block
//! on shared and protected environments). Put it first, before any backup is taken.

use crate::config::Diagnostic;
use crate::db::migrate;
use crate::engine::registry::{parse_params, Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::guard::{self, migrations, GuardTarget, Operation, Overrides};
use crate::journal::{Event, LintTotals};
use crate::ui::prompt::{self, Answer};
use serde::Deserialize;

/// The `guard` step kind.
pub struct GuardKind;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Operations the workflow performs (default: `[deploy]`).
    operations: Option<Vec<String>>,
    /// Lint pending migrations and check applied ones (default: when `deploy` is checked).
    lint: Option<bool>,
}

/// A configured `guard` step.
#[derive(Debug)]
pub struct GuardStep {
    operations: Vec<Operation>,
    lint: bool,
}

impl StepKind for GuardKind {
    fn name(&self) -> &str {
        "guard"
    }

    fn summary(&self) -> &str {
        "safety rails: operations allowed here, applied migrations unchanged, pending ones linted"
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
        let mut operations = Vec::new();
        for name in params.operations.unwrap_or_else(|| vec!["deploy".into()]) {
            match Operation::parse(&name) {
                Some(op) => operations.push(op),
                None => {
                    let help = crate::config::diagnostic::did_you_mean(&name, Operation::names())
                        .map(|h| format!("; {h}"))
                        .unwrap_or_else(|| {
                            format!(
                                " (known: {})",
                                Operation::names().collect::<Vec<_>>().join(", ")
                            )
                        });
                    return Err(format!("unknown operation `{name}`{help}").into());
                }
            }
        }
        let lint = params
            .lint
            .unwrap_or_else(|| operations.contains(&Operation::Deploy));
        Ok(Box::new(GuardStep { operations, lint }))
    }
}

impl Step for GuardStep {
    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let target = GuardTarget::of(cx.env);
        let names: Vec<&str> = self.operations.iter().map(|o| o.name()).collect();
        let mut details = Vec::new();
        for op in &self.operations {
            let d = guard::decide(cx.project, &target, *op, &Overrides::default());
            details.push(format!(
                "`{op}` on {}: {}",
                target.describe(),
                if d.allowed {
                    if d.needs_confirmation {
                        "allowed, with confirmation".to_string()
                    } else {
                        "allowed".to_string()
                    }
                } else {
                    format!(
                        "blocked ({})",
                        d.violations
                            .iter()
                            .map(|v| v.rule)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        let mut commands: Vec<String> = self
            .operations
            .iter()
            .map(|op| format!("dbflow check {op} --env {}", cx.env.name))
            .collect();
        if self.lint {
            details.push("Stops if an applied migration's file changed, or if a pending migration has a lint error for this environment.".into());
            commands.push(format!("dbflow lint --env {}", cx.env.name));
        }
        Ok(StepDoc {
            summary: format!("Guard: {}", names.join(", ")),
            details: details.join("\n"),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        for op in &self.operations {
            let decision = guard::check(cx.project, cx.env, *op);
            guard::announce(cx.ui, &decision);
            for event in guard::decision_events(&decision) {
                cx.journal.log(event);
            }
            if !decision.allowed {
                for line in decision.render().lines() {
                    cx.ui.out(&format!("  {line}"));
                }
                return Err(StepError::blocked(decision.blocked_message()));
            }
            cx.ui.out(&format!(
                "  {}: `{op}` on {}",
                decision.verdict(),
                decision.target.describe()
            ));
        }
        let mut outcome = Outcome::done().with(
            "operations",
            self.operations.iter().map(|o| o.name()).collect::<Vec<_>>(),
        );
        if !self.lint {
            return Ok(outcome);
        }
        let target = cx.target();
        let (store, mut conn) = cx.store_and_db()?;
        let read = cx.runtime().block_on(async {
            let status = migrate::history_status(&mut conn, &store, &target.table).await?;
            // The live catalog only when something is pending (one query).
            let catalog = migrations::catalog_for_pending(&mut conn, &status).await;
            Ok::<_, crate::db::DbError>((status, catalog))
        });
        cx.session.give_back(conn);
        let (status, catalog) = read.map_err(|e| StepError::failed(e.to_string()))?;
        let review = migrations::review(
            cx.project,
            cx.env.protection,
            target.url.is_postgres(),
            &store,
            &status,
            catalog,
        );
        let review = std::sync::Arc::new(review);
        cx.session.review = Some(review.clone());
        for line in migrations::render_review(&review, &cx.env.name, cx.ui.verbose).lines() {
            cx.ui.out(&format!("  {line}"));
        }
        let summary = review.summary();
        cx.journal.log(Event::GuardLint {
            pending: review.pending.iter().map(|(n, _)| n.clone()).collect(),
            modified: review.modified.iter().map(|(n, _)| n.clone()).collect(),
            summary: LintTotals {
                files: summary.files,
                statements: summary.statements,
                errors: summary.errors,
                warnings: summary.warnings,
                allowed: summary.allowed,
            },
            skipped: review.lint_skipped.clone(),
        });
        outcome = outcome
            .with(
                "pending",
                review
                    .pending
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect::<Vec<_>>(),
            )
            .with("lint_errors", summary.errors)
            .with("lint_warnings", summary.warnings)
            .with("lint_allowed", summary.allowed);
        if let Some(reason) = review.blocked_reason() {
            return Err(StepError::blocked(format!(
                "blocked by the guard on `{}` ({}): {reason}",
                cx.env.name,
                cx.env.protection.as_str()
            )));
        }
        Ok(outcome)
    }
}

/// Before a task or shell step runs `command`: the guarded operations it performs (a
/// Prisma CLI call, `dropdb`, `npm run` of a package.json script that does) are checked
/// against the environment, and on a protected one a person confirms. `env` is the
/// command's environment: its `DATABASE_URL` names the database it really touches.
pub(crate) fn guard_command(
    cx: &mut RunContext<'_>,
    command: &str,
    env: &[(String, String)],
) -> Result<(), StepError> {
    // The same gate Lua's `dbflow.exec` goes through: one reading of command lines.
    let gate = guard::script_gate::ScriptGate::new(cx.project, cx.env, cx.options.yes, cx.ui);
    let seed = gate
        .seed_decision(command, env)
        .filter(guard::seed::liftable);
    let mut sanctioned = Vec::new();
    if seed.is_some() {
        if let Some(reason) = allow_seed(cx) {
            sanctioned_seed(cx, &reason, command)?;
            sanctioned.push(Operation::Seed);
        }
    }
    let (events, verdict) = gate.command_sanctioned(command, env, &sanctioned);
    for (event, fields) in events {
        cx.journal.record(&event, fields);
    }
    verdict.map_err(|why| {
        let sanction = if seed.is_some() && sanctioned.is_empty() {
            format!(
                "; a workflow may sanction seeding `{}` with `allow_seed: \"<reason>\"`, after a verified backup in the same run and the word {} typed",
                cx.env.name,
                guard::seed::SEED_WORD
            )
        } else {
            String::new()
        };
        StepError::blocked(format!("{why}{sanction}"))
    })
}

/// The `allow_seed` reason of the workflow this step belongs to, if it gives one.
fn allow_seed(cx: &RunContext<'_>) -> Option<String> {
    let workflow = cx.project.workflows.get(cx.workflow?)?;
    workflow.allow_seed.as_ref().map(|r| r.value.clone())
}

/// A seed on a protected environment that the step's workflow sanctions: allowed only
/// after a verified backup taken earlier in this run and the word SEED typed (or given
/// with `--confirm`; `--yes` does not answer it). Printed loudly and journaled.
fn sanctioned_seed(cx: &mut RunContext<'_>, reason: &str, command: &str) -> Result<(), StepError> {
    let workflow = cx.workflow.unwrap_or_default().to_string();
    let backup = cx
        .latest_output(crate::journal::BACKUP_ID)
        .and_then(|(_, id)| id.as_str().map(str::to_string))
        .map(|id| {
            let entry = crate::db::backup::Catalog::new(cx.project, &cx.env.name).get(&id);
            guard::seed::RunBackup {
                verified: entry.as_ref().is_ok_and(|e| e.verified()),
                taken_by_this_run: entry
                    .as_ref()
                    .is_ok_and(|e| e.manifest.run_id.as_deref() == Some(cx.run_id)),
                id,
            }
        });
    let record = |cx: &mut RunContext<'_>, outcome: &str, refused: Option<&str>| {
        cx.journal.log(Event::SeedSanctioned {
            env: cx.env.name.clone(),
            workflow: workflow.clone(),
            reason: reason.to_string(),
            command: command.to_string(),
            backup_id: backup.as_ref().map(|b| b.id.clone()),
            outcome: outcome.to_string(),
            refused: refused.map(str::to_string),
        });
    };
    if let Err(why) = guard::seed::require_backup(&cx.env.name, &workflow, backup.as_ref()) {
        record(cx, "refused", Some(&why));
        return Err(StepError::blocked(why));
    }
    let backup_id = backup.as_ref().map(|b| b.id.clone()).unwrap_or_default();
    let question = format!(
        "`{}` seeds protected `{}` (workflow `{workflow}`: {reason}; backup {backup_id})",
        crate::lint::ast::summary(command),
        cx.env.name
    );
    let word = guard::seed::SEED_WORD;
    let answer = prompt::typed(word, &question, cx.options.confirm.as_deref());
    let refused = match answer {
        Answer::Yes | Answer::AssumedYes => None,
        Answer::No => Some(format!(
            "blocked by the guard: the seed of protected `{}` was not confirmed: the word to type is {word}",
            cx.env.name
        )),
        Answer::CannotAsk(why) => Some(format!(
            "blocked by the guard: the seed of protected `{}` needs the word {word} typed and nobody can be asked ({why}); --yes does not answer it: pass --confirm {word}",
            cx.env.name
        )),
    };
    if let Some(why) = refused {
        record(cx, "refused", Some(&why));
        return Err(StepError::blocked(why));
    }
    cx.ui.warn(&format!(
        "!!! SANCTIONED seed of protected `{}` by workflow `{workflow}` ({reason}); backup {backup_id}; this is recorded in the journal",
        cx.env.name
    ));
    record(cx, "confirmed", None);
    Ok(())
}
