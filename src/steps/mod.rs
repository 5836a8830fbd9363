//! Built-in step kinds, one file each. Adding a kind = one file + one line in [`builtin`].

pub mod backup;
pub mod confirm;
pub mod deploy;
pub mod drill;
pub mod guard;
pub mod history;
pub mod preflight;
pub mod provider;
pub mod prune;
pub mod rehearse;
pub mod reset;
pub mod restore;
mod restoring;
pub mod rollback;
pub mod shell;
pub mod status;
pub mod stop_writes;
pub mod task;
pub mod verify;
pub mod workflow;

use crate::db::backup::Event;
use crate::engine::Registry;
use crate::engine::{RunContext, StepError};
use crate::error::ExitCode;
use crate::runner::{self, exec::Exit, TaskResult};
use crate::ui::progress::Transfer;
use std::sync::Arc;

/// The registry of built-in step kinds.
pub fn builtin() -> Registry {
    let mut registry = Registry::default();
    registry.register(Arc::new(task::TaskKind));
    registry.register(Arc::new(shell::ShellKind));
    registry.register(Arc::new(confirm::ConfirmKind));
    registry.register(Arc::new(workflow::WorkflowKind));
    registry.register(Arc::new(status::StatusKind));
    registry.register(Arc::new(deploy::DeployKind));
    registry.register(Arc::new(verify::VerifyKind));
    registry.register(Arc::new(backup::BackupKind::default()));
    registry.register(Arc::new(restore::RestoreKind));
    registry.register(Arc::new(rollback::RollbackKind));
    registry.register(Arc::new(drill::DrillKind));
    registry.register(Arc::new(prune::PruneKind));
    registry.register(Arc::new(guard::GuardKind));
    registry.register(Arc::new(preflight::PreflightKind));
    registry.register(Arc::new(rehearse::RehearseKind));
    registry.register(Arc::new(reset::ResetKind));
    registry.register(Arc::new(stop_writes::StopWritesKind));
    registry
}

/// Shows the progress events of a backup operation.
pub(crate) fn show<'t, 'u>(transfer: &'t mut Transfer<'u>) -> impl FnMut(Event) + use<'t, 'u> {
    move |event| match event {
        Event::Note(text) => transfer.line(&text),
        Event::Phase(text) => transfer.phase(&text),
        Event::Total(n) => transfer.total(n),
        Event::Bytes(n) => transfer.bytes(n),
        Event::Read(n) => transfer.read(n),
    }
}

/// Runs a task the configuration names as a hook (`stop_writes`, …), its dependencies
/// first, with extra variables.
pub(crate) fn run_hook_task(
    cx: &mut RunContext<'_>,
    task: &str,
    extra_env: &[(&str, String)],
) -> Result<(), StepError> {
    let invocations = runner::plan(cx.project, cx.env, cx.vars, task).map_err(|d| StepError {
        message: d.message,
        code: ExitCode::BadInput,
    })?;
    let sink = crate::ui::ChildOutput { ui: cx.ui };
    for mut inv in invocations {
        if let Some(command) = &mut inv.command {
            command
                .env
                .extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            cx.ui.out(&format!("  $ {}", command.command.display()));
        }
        let result = runner::run_one(cx.project, &inv, &sink)
            .map_err(|e| StepError::failed(format!("task `{}` could not start: {e}", inv.task)))?;
        cx.journal.log(crate::journal::Event::Task {
            task: inv.task.clone(),
            result: format!("{result:?}"),
        });
        match result {
            TaskResult::Ran => {}
            TaskResult::Skipped(reason) => cx
                .ui
                .out(&format!("  ○ task `{}` skipped: {reason}", inv.task)),
            TaskResult::PreconditionFailed(message) => {
                return Err(StepError::failed(format!(
                    "precondition of task `{}` failed: {message}",
                    inv.task
                )))
            }
            TaskResult::Failed(Exit::Code(code)) => {
                return Err(StepError::failed(format!(
                    "task `{}` exited with code {code}",
                    inv.task
                )))
            }
            TaskResult::Failed(Exit::TimedOut(limit)) => {
                return Err(StepError::failed(format!(
                    "task `{}` timed out after {}",
                    inv.task,
                    humantime::format_duration(limit)
                )))
            }
        }
    }
    Ok(())
}

/// Records a backup, drill or deploy outcome in the metrics textfile, if configured.
pub(crate) fn record_metrics(
    cx: &RunContext<'_>,
    operation: &'static str,
    success: bool,
    duration: std::time::Duration,
    gauges: Vec<(&'static str, f64)>,
) {
    let sample = crate::engine::metrics::Sample {
        operation,
        env: cx.env.name.clone(),
        success,
        duration_seconds: duration.as_secs_f64(),
        gauges,
    };
    if let Err(e) = crate::engine::metrics::record(cx.project, &sample) {
        cx.ui.warn(&format!("metrics not written: {e}"));
    }
}
