//! `stop_writes`: stop the application writing to the environment's database, by running
//! the task its `backups.stop_writes` names (the same hook an in-place restore runs).
//! Without one configured the step says so loudly and is skipped: writes go on, and
//! whatever is written from now on is missing from anything restored.

use crate::config::Diagnostic;
use crate::engine::registry::{Outcome, Step, StepDoc, StepError, StepKind};
use crate::engine::{PlanContext, RunContext};
use crate::journal::Event;

/// The `stop_writes` step kind.
pub struct StopWritesKind;

/// A configured `stop_writes` step (no parameters: the task is the environment's).
#[derive(Debug)]
pub struct StopWritesStep;

impl StepKind for StopWritesKind {
    fn name(&self) -> &str {
        "stop_writes"
    }

    fn summary(&self) -> &str {
        "stop the application writing: run the environment's backups.stop_writes task"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        match params {
            serde_json::Value::Null => Ok(Box::new(StopWritesStep)),
            serde_json::Value::Object(map) if map.is_empty() => Ok(Box::new(StopWritesStep)),
            _ => Err("`stop_writes` takes no parameters (write `stop_writes: {}`); the task is the environment's `backups.stop_writes`".into()),
        }
    }
}

impl Step for StopWritesStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        Ok(
            match cx.project.backup_settings(&cx.env.name).stop_writes {
                Some(task) => StepDoc {
                    summary: format!("Stop writes: task `{task}`"),
                    details: format!(
                        "Runs `{task}` (backups.stop_writes of `{}`) so nothing is written while the database is restored.",
                        cx.env.name
                    ),
                    commands: vec![format!("dbflow run {task} --env {}", cx.env.name)],
                },
                None => StepDoc {
                    summary: "Stop writes (no task configured: skipped)".into(),
                    details: format!(
                        "`{}` has no backups.stop_writes task: stop the application's writes by hand, or configure one.",
                        cx.env.name
                    ),
                    commands: Vec::new(),
                },
            },
        )
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let Some(task) = cx.project.backup_settings(&cx.env.name).stop_writes else {
            let why = format!(
                "`{}` has no backups.stop_writes task, so this step stopped nothing: writes go on unless something else stops them, and what is written from now on is not in the restored copy",
                cx.env.name
            );
            cx.ui.warn(&why);
            cx.journal.log(Event::StopWrites {
                task: None,
                stopped: false,
            });
            let mut outcome = Outcome::done().with("stopped", false);
            outcome.skipped = Some(why);
            return Ok(outcome);
        };
        cx.ui.out(&format!("  stopping writes: task `{task}`"));
        super::run_hook_task(cx, &task, &[])?;
        cx.journal.log(Event::StopWrites {
            task: Some(task.clone()),
            stopped: true,
        });
        Ok(Outcome::done().with("stopped", true).with("task", task))
    }
}
