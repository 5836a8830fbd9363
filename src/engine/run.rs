//! Executing a [`Plan`]: steps in order, `when` skips, failure policies, handlers, and a
//! journal entry for everything.

use super::context::{Changes, RunContext, RunOptions};
use super::plan::{Plan, PlannedStep};
use super::registry::{Role, StepError};
use crate::config::{Project, ResolvedEnv, Vars};
use crate::error::ExitCode;
use crate::journal::{Event, Journal, StepEnd};
use crate::ui::Ui;
use indexmap::IndexMap;
use std::collections::HashSet;
use std::time::Instant;

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// Exit code for the process.
    pub code: ExitCode,
    /// The step that failed, and why, when the run failed.
    pub failure: Option<(String, String)>,
    /// Steps that succeeded, in order.
    pub succeeded: Vec<String>,
    /// Outputs of every step, by id.
    pub outputs: IndexMap<String, serde_json::Value>,
    /// What the run changed in the database (migrations committed).
    pub changes: Changes,
}

/// Everything the executor needs besides the plan.
pub struct Executor<'a> {
    /// The project.
    pub project: &'a Project,
    /// The target environment.
    pub env: &'a ResolvedEnv,
    /// Variables.
    pub vars: &'a Vars,
    /// Run-wide options.
    pub options: &'a RunOptions,
    /// Output.
    pub ui: &'a Ui,
}

struct State {
    journal: Journal,
    outputs: IndexMap<String, serde_json::Value>,
    tasks_done: HashSet<String>,
    succeeded: Vec<String>,
    changes: Changes,
    session: super::session::DbSession,
}

struct Failure {
    step: String,
    error: StepError,
    handled: bool,
}

impl Executor<'_> {
    /// Runs the plan and journals it under `run_id`.
    pub fn execute(&self, plan: &Plan, run_id: &str, journal: Journal) -> RunReport {
        let started = Instant::now();
        let mut state = State {
            journal,
            outputs: IndexMap::new(),
            tasks_done: HashSet::new(),
            succeeded: Vec::new(),
            changes: Changes::default(),
            session: Default::default(),
        };
        let start = (
            run_id.to_string(),
            plan.workflow.clone(),
            if plan.is_task { "task" } else { "workflow" },
            self.env.name.clone(),
            self.env.decided_by.to_string(),
            self.env.protection.as_str(),
            self.env.url.redacted(),
            self.options.yes,
        );
        state.journal.log_run_start(move || {
            let (run_id, target, kind, env, env_decided_by, protection, url, yes) = start;
            Event::RunStart {
                run_id,
                target,
                kind: kind.into(),
                env,
                env_decided_by,
                protection: protection.into(),
                url,
                user: whoami(),
                host: hostname(),
                pid: std::process::id(),
                dbflow_version: env!("CARGO_PKG_VERSION").into(),
                yes,
            }
        });
        if let Some(reason) = self.unguarded_deploy(plan) {
            self.ui.warn(&format!(
                "workflow `{}` deploys to protected `{}` without the backup-before / verify-after steps; the Workflowfile allows it: {reason}",
                plan.workflow, self.env.name
            ));
            state.journal.log(Event::UnguardedDeploy {
                workflow: plan.workflow.clone(),
                env: self.env.name.clone(),
                reason: reason.to_string(),
            });
        }
        let result = self.run_plan(plan, run_id, &mut state, 0);
        state.session.close(super::context::runtime());
        let (code, failure) = match result {
            Ok(()) => (ExitCode::Ok, None),
            Err(f) => (f.error.code, Some((f.step, f.error.message))),
        };
        let result = match (&failure, code) {
            (None, _) => "succeeded",
            (Some(_), ExitCode::Interrupted(_)) => "interrupted",
            (Some(_), _) => "failed",
        };
        state.journal.log(Event::RunEnd {
            result: result.into(),
            exit_code: code.code(),
            failed_step: failure.as_ref().map(|f| f.0.clone()),
            changes: state.changes.clone(),
            error: failure.as_ref().map(|f| f.1.clone()),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        RunReport {
            run_id: run_id.to_string(),
            code,
            failure,
            succeeded: state.succeeded,
            outputs: state.outputs,
            changes: state.changes,
        }
    }

    /// The reason a workflow gives for deploying to a protected environment without a
    /// backup before and a verify after, when this run is such a deploy.
    fn unguarded_deploy(&self, plan: &Plan) -> Option<String> {
        if plan.is_task || self.env.protection != crate::config::Protection::Protected {
            return None;
        }
        let workflow = self.project.workflows.get(&plan.workflow)?;
        let reason = workflow.allow_unguarded_deploy.as_ref()?;
        plan.steps
            .iter()
            .any(|s| s.step.role() == Some(Role::Deploy))
            .then(|| reason.value.clone())
    }

    fn run_plan(
        &self,
        plan: &Plan,
        run_id: &str,
        state: &mut State,
        depth: usize,
    ) -> Result<(), Failure> {
        let total = plan.steps.len();
        let mut result = Ok(());
        for (index, step) in plan.steps.iter().enumerate() {
            if let Err(failure) = self.run_step(plan, step, index, total, run_id, state, depth) {
                result = Err(failure);
                break;
            }
        }
        if let Err(mut failure) = result {
            // A person who pressed Ctrl-C wants things to stop, not a rollback to start.
            let interrupted = matches!(failure.error.code, ExitCode::Interrupted(_));
            if !failure.handled && !interrupted {
                if let Some(handler) = &plan.on_failure {
                    self.run_handler(&plan.workflow, handler, &failure, run_id, state, depth);
                    failure.handled = true;
                }
            }
            return Err(failure);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        plan: &Plan,
        step: &PlannedStep,
        index: usize,
        total: usize,
        run_id: &str,
        state: &mut State,
        depth: usize,
    ) -> Result<(), Failure> {
        let label = format!("{}/{}", index + 1, total);
        if let Some(reason) = &step.skip {
            if !self.options.bare {
                self.ui.step_skipped(depth, &label, &step.name, reason);
            }
            state.journal.log(Event::StepSkipped {
                workflow: plan.workflow.clone(),
                step: step.id.clone(),
                name: step.name.clone(),
                kind: step.kind.clone(),
                reason: reason.clone(),
            });
            return Ok(());
        }
        if let Some(signal) = crate::interrupt::received() {
            // The step that received it finished anyway; nothing more starts.
            let message = format!(
                "{} received: step `{}` and the ones after it were not started",
                crate::interrupt::name(signal),
                step.name
            );
            state.journal.log(Event::Interrupted {
                workflow: plan.workflow.clone(),
                step: step.id.clone(),
                kind: step.kind.clone(),
                signal: crate::interrupt::name(signal).to_string(),
                state: message.clone(),
            });
            return Err(Failure {
                step: step.id.clone(),
                error: StepError {
                    message,
                    code: ExitCode::Interrupted(signal),
                },
                handled: false,
            });
        }
        if step.nested.is_none() && !step.step.uses_db_session() {
            state.session.close(super::context::runtime());
        }
        if !self.options.bare {
            self.ui.step_start(depth, &label, &step.name, &step.kind);
        }
        state.journal.log(Event::StepStart {
            workflow: plan.workflow.clone(),
            step: step.id.clone(),
            name: step.name.clone(),
            kind: step.kind.clone(),
            index: index + 1,
        });
        let started = Instant::now();
        let result = match &step.nested {
            Some(nested) => self
                .run_plan(nested, run_id, state, depth + 1)
                .map(|()| super::registry::Outcome::done())
                .map_err(|f| StepError {
                    message: format!(
                        "workflow `{}` failed at step `{}`: {}",
                        nested.workflow, f.step, f.error.message
                    ),
                    code: f.error.code,
                }),
            None => {
                let mut cx = RunContext {
                    project: self.project,
                    env: self.env,
                    vars: self.vars,
                    run_id,
                    options: self.options,
                    workflow: (!plan.is_task).then_some(plan.workflow.as_str()),
                    journal: &mut state.journal,
                    session: &mut state.session,
                    ui: self.ui,
                    outputs: &mut state.outputs,
                    tasks_done: &mut state.tasks_done,
                    changes: &mut state.changes,
                };
                step.step.run(&mut cx)
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(outcome) => {
                let outputs = serde_json::Value::Object(outcome.outputs.clone());
                state.journal.log(Event::StepEnd(StepEnd::Done {
                    workflow: plan.workflow.clone(),
                    step: step.id.clone(),
                    kind: step.kind.clone(),
                    outcome: if outcome.skipped.is_some() {
                        "skipped"
                    } else {
                        "succeeded"
                    }
                    .into(),
                    reason: outcome.skipped.clone(),
                    duration_ms,
                    outputs: outputs.clone(),
                }));
                if !self.options.bare {
                    self.ui
                        .step_done(depth, &step.name, duration_ms, outcome.skipped.as_deref());
                }
                // Steps of nested and on_failure workflows carry their workflow's name:
                // ids like `shell-1` repeat from one workflow to the next.
                let key = if depth == 0 {
                    step.id.clone()
                } else {
                    format!("{}/{}", plan.workflow, step.id)
                };
                state.outputs.insert(key.clone(), outputs);
                state.succeeded.push(key);
                Ok(())
            }
            Err(error) => {
                state.journal.log(Event::StepEnd(StepEnd::Failed {
                    workflow: plan.workflow.clone(),
                    step: step.id.clone(),
                    kind: step.kind.clone(),
                    outcome: "failed".into(),
                    error: error.message.clone(),
                    exit_code: error.code.code(),
                    duration_ms,
                }));
                if !self.options.bare {
                    self.ui.step_failed(depth, &step.name, &error.message);
                }
                if let ExitCode::Interrupted(signal) = error.code {
                    // Recorded once, by the step that was running (not again by the
                    // nested workflow around it).
                    if step.nested.is_none() {
                        state.journal.log(Event::Interrupted {
                            workflow: plan.workflow.clone(),
                            step: step.id.clone(),
                            kind: step.kind.clone(),
                            signal: crate::interrupt::name(signal).to_string(),
                            state: error.message.clone(),
                        });
                    }
                    return Err(Failure {
                        step: step.id.clone(),
                        error,
                        handled: false,
                    });
                }
                if step.continue_on_failure {
                    self.ui.warn(&format!(
                        "step `{}` failed; continuing (on_failure: continue)",
                        step.name
                    ));
                    state.journal.log(Event::FailureIgnored {
                        step: step.id.clone(),
                    });
                    return Ok(());
                }
                let mut failure = Failure {
                    step: step.id.clone(),
                    error,
                    handled: false,
                };
                if let Some(handler) = &step.handler {
                    self.run_handler(&plan.workflow, handler, &failure, run_id, state, depth);
                    failure.handled = true;
                }
                Err(failure)
            }
        }
    }

    fn run_handler(
        &self,
        workflow: &str,
        handler: &Plan,
        failure: &Failure,
        run_id: &str,
        state: &mut State,
        depth: usize,
    ) {
        if restores(handler) && !state.changes.any() {
            // A block, a refusal, a declined confirmation, a lock timeout: nothing was
            // committed, so restoring a backup could only lose writes made since.
            self.ui.out(&format!(
                "step `{}` of `{workflow}` failed before any migration was committed: nothing changed, nothing to roll back (on_failure `{}` not run)",
                failure.step, handler.workflow
            ));
            state.journal.log(Event::OnFailureSkipped {
                workflow: workflow.to_string(),
                failed_step: failure.step.clone(),
                handler: handler.workflow.clone(),
                reason: "nothing changed".into(),
            });
            return;
        }
        self.ui.warn(&format!(
            "step `{}` of `{workflow}` failed; running on_failure workflow `{}`",
            failure.step, handler.workflow
        ));
        state.journal.log(Event::OnFailureStart {
            workflow: workflow.to_string(),
            failed_step: failure.step.clone(),
            handler: handler.workflow.clone(),
        });
        let result = self.run_plan(handler, run_id, state, depth + 1);
        state.journal.log(Event::OnFailureEnd {
            handler: handler.workflow.clone(),
            result: if result.is_ok() {
                "succeeded"
            } else {
                "failed"
            }
            .into(),
            error: result.as_ref().err().map(|f| f.error.message.clone()),
        });
        if let Err(f) = result {
            self.ui.error(&format!(
                "on_failure workflow `{}` failed too: {}",
                handler.workflow, f.error.message
            ));
        }
    }
}

/// Whether `plan` (or a workflow it nests) restores a backup ([`Role::Restore`]): as a
/// failure handler it only runs after a change.
pub fn restores(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| {
        s.step.role() == Some(Role::Restore) || s.nested.as_ref().is_some_and(|n| restores(n))
    })
}

fn whoami() -> String {
    crate::actor::actor()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
