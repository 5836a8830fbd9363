//! The steps `dbflow migrate down NAME` and `dbflow migrate resolve` run (built by the
//! commands, not step kinds of the Workflowfile): they change the migration history, so
//! on a protected environment a person confirms first, and the guard's decision and the
//! answer are journaled.

use crate::config::Diagnostic;
use crate::db::migrate;
use crate::engine::registry::{Outcome, Step, StepDoc, StepError};
use crate::engine::{PlanContext, RunContext};
use crate::guard::{self, migrations, Operation};
use crate::journal::Event;

/// `migrate down NAME`: runs the `down.sql` of the newest applied migration `name`.
#[derive(Debug)]
pub struct DownStep {
    name: String,
}

impl DownStep {
    /// Reverts `name` (it must be the newest applied migration and have a `down.sql`).
    pub fn new(name: String) -> Self {
        DownStep { name }
    }
}

/// `migrate resolve --applied NAME | --rolled-back NAME`: marks a migration in the
/// history without running it.
#[derive(Debug)]
pub struct ResolveStep {
    name: String,
    applied: bool,
}

impl ResolveStep {
    /// Marks `name` as applied (`true`) or rolled back (`false`).
    pub fn new(name: String, applied: bool) -> Self {
        ResolveStep { name, applied }
    }
}

impl Step for DownStep {
    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        Ok(StepDoc {
            summary: format!("Run the down.sql of {}", self.name),
            details: String::new(),
            commands: vec![format!(
                "dbflow migrate down {} --env {}",
                self.name, cx.env.name
            )],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let question = format!(
            "Run the down.sql of `{}` on protected `{}`?",
            self.name, cx.env.name
        );
        confirmed(cx, Operation::MigrateDown, &question)?;
        let name = self.name.clone();
        change_history(cx, |conn, store, table| {
            Box::pin(async move { migrate::down(conn, store, table, &name).await })
        })
    }
}

impl Step for ResolveStep {
    fn uses_db_session(&self) -> bool {
        true
    }

    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let flag = if self.applied {
            "--applied"
        } else {
            "--rolled-back"
        };
        Ok(StepDoc {
            summary: format!("Mark {} in the migration history", self.name),
            details: String::new(),
            commands: vec![format!(
                "dbflow migrate resolve {flag} {} --env {}",
                self.name, cx.env.name
            )],
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let question = format!(
            "Mark `{}` as {} in the history of protected `{}`?",
            self.name,
            if self.applied {
                "applied"
            } else {
                "rolled back"
            },
            cx.env.name
        );
        confirmed(cx, Operation::MigrateResolve, &question)?;
        let (name, applied) = (self.name.clone(), self.applied);
        change_history(cx, |conn, store, table| {
            Box::pin(async move { migrate::resolve(conn, store, table, &name, applied).await })
        })
    }
}

/// The rails for `operation`, then on a protected environment a person's confirmation;
/// the decision and the answer (given or refused) are journaled.
fn confirmed(
    cx: &mut RunContext<'_>,
    operation: Operation,
    question: &str,
) -> Result<(), StepError> {
    let decision = guard::check(cx.project, cx.env, operation);
    guard::announce(cx.ui, &decision);
    for event in guard::decision_events(&decision) {
        cx.journal.log(event);
    }
    if !decision.allowed {
        return Err(StepError::blocked(decision.blocked_message()));
    }
    if decision.needs_confirmation {
        let answer = migrations::confirm(question, cx.options.yes);
        cx.journal.log(Event::ProtectedConfirmation {
            operation: operation.name().to_string(),
            question: question.to_string(),
            confirmed_by: answer.as_ref().ok().map(|by| by.to_string()),
            refused: answer.as_ref().err().cloned(),
        });
        answer.map_err(StepError::blocked)?;
    }
    Ok(())
}

type HistoryChange<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, migrate::DeployError>> + Send + 'a>,
>;

/// Runs `change` over the run's session and prints the message it returns.
fn change_history(
    cx: &mut RunContext<'_>,
    change: impl for<'a> FnOnce(
        &'a mut crate::db::Conn,
        &'a crate::db::store::Store,
        &'a str,
    ) -> HistoryChange<'a>,
) -> Result<Outcome, StepError> {
    let target = cx.target();
    let store = cx.store()?;
    let mut conn = cx.take_db()?;
    let result = cx
        .runtime()
        .block_on(change(&mut conn, &store, &target.table));
    cx.session.give_back(conn);
    let message = result.map_err(|e| StepError::failed(e.to_string()))?;
    cx.ui.out(&message);
    Ok(Outcome::done().with("message", message))
}
