//! `task`: run a task from the Workflowfile, its dependencies first (each once per run).

use crate::config::Diagnostic;
use crate::engine::registry::{
    parse_params, Outcome, Reference, Step, StepDoc, StepError, StepKind,
};
use crate::engine::{PlanContext, RunContext};
use crate::error::ExitCode;
use crate::journal::Event;
use crate::runner::exec::Exit;
use crate::runner::{self, TaskResult};
use crate::ui::ChildOutput;
use serde::Deserialize;

/// The `task` step kind.
pub struct TaskKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    name: String,
}

/// A configured `task` step.
#[derive(Debug)]
pub struct TaskStep {
    name: String,
}

impl StepKind for TaskKind {
    fn name(&self) -> &str {
        "task"
    }

    fn summary(&self) -> &str {
        "run a task (and its dependencies) from the Workflowfile"
    }

    fn parse(
        &self,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Step>, crate::engine::registry::ParamError> {
        let name = match params {
            serde_json::Value::String(name) => name.clone(),
            other => parse_params::<Params>(other)?.name,
        };
        Ok(Box::new(TaskStep { name }))
    }
}

impl Step for TaskStep {
    fn describe(&self, cx: &PlanContext<'_>) -> Result<StepDoc, Diagnostic> {
        let invocations = runner::plan(cx.project, cx.env, cx.vars, &self.name)?;
        let task = cx.project.tasks.get(&self.name);
        let mut commands = Vec::new();
        let mut details = Vec::new();
        for inv in &invocations {
            if let Some(reason) = &inv.skip {
                details.push(format!("task `{}` will be skipped: {reason}", inv.task));
                continue;
            }
            for (check, message) in &inv.preconditions {
                details.push(format!(
                    "requires `{}`{}",
                    check.command.display(),
                    message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
            if let Some(command) = &inv.command {
                let cd = runner::display_cwd(cx.project, inv)
                    .map(|d| format!("cd {} && ", shell_words::quote(&d.to_string_lossy())))
                    .unwrap_or_default();
                commands.push(format!("{cd}{}", command.command.display()));
            }
            if !inv.sources.is_empty() {
                details.push(format!(
                    "task `{}` is skipped when its sources are unchanged",
                    inv.task
                ));
            }
        }
        if invocations.len() > 1 {
            details.insert(
                0,
                format!(
                    "runs in order: {}",
                    invocations
                        .iter()
                        .map(|i| i.task.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            );
        }
        Ok(StepDoc {
            summary: task
                .and_then(|t| t.def.description.clone())
                .unwrap_or_else(|| format!("Run task `{}`", self.name)),
            details: details.join("\n"),
            commands,
        })
    }

    fn run(&self, cx: &mut RunContext<'_>) -> Result<Outcome, StepError> {
        let invocations =
            runner::plan(cx.project, cx.env, cx.vars, &self.name).map_err(|d| StepError {
                message: d.message,
                code: ExitCode::BadInput,
            })?;
        let sink = ChildOutput { ui: cx.ui };
        let mut ran = Vec::new();
        let mut skipped_self = None;
        for inv in &invocations {
            // Dependencies run once per run; the task a step names runs every time the
            // workflow asks for it (e.g. `notify` at the start and at the end).
            if inv.task != self.name && cx.tasks_done.contains(&inv.task) {
                cx.ui.out(&format!(
                    "  ○ dependency `{}` already ran in this run",
                    inv.task
                ));
                continue;
            }
            if let Some(command) = &inv.command {
                if inv.skip.is_none() {
                    super::guard::guard_command(cx, &command.command.display(), &command.env)?;
                }
                cx.ui.out(&format!("  $ {}", command.command.display()));
            }
            let result = runner::run_one(cx.project, inv, &sink).map_err(|e| {
                StepError::failed(format!("task `{}` could not start: {e}", inv.task))
            })?;
            cx.journal.log(Event::Task {
                task: inv.task.clone(),
                result: format!("{result:?}"),
            });
            match result {
                TaskResult::Ran => ran.push(inv.task.clone()),
                TaskResult::Skipped(reason) => {
                    cx.ui
                        .out(&format!("  ○ task `{}` skipped: {reason}", inv.task));
                    if inv.task == self.name {
                        skipped_self = Some(reason);
                    }
                }
                TaskResult::PreconditionFailed(message) => {
                    return Err(StepError::failed(format!(
                        "precondition of task `{}` failed: {message}",
                        inv.task
                    )));
                }
                TaskResult::Failed(Exit::Code(code)) => {
                    return Err(StepError {
                        message: format!("task `{}` exited with code {code}", inv.task),
                        code: ExitCode::Child(code),
                    });
                }
                TaskResult::Failed(Exit::TimedOut(limit)) => {
                    return Err(StepError::failed(format!(
                        "task `{}` timed out after {} and was killed",
                        inv.task,
                        humantime::format_duration(limit)
                    )));
                }
            }
            cx.tasks_done.insert(inv.task.clone());
        }
        let mut outcome = Outcome::done().with("tasks_run", ran);
        outcome.skipped = skipped_self;
        Ok(outcome)
    }

    fn references(&self) -> Vec<Reference> {
        vec![Reference::Task(self.name.clone())]
    }
}
