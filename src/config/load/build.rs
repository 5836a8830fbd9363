//! Tasks, workflows and steps as written, collected across the Workflowfile and its
//! includes (a name defined twice is an error at its second definition).

use super::yaml_error::unknown_name_help;
use crate::config::diagnostic::{did_you_mean, Diagnostic, Loc};
use crate::config::model::{Condition, FailurePolicy, StepDef, Task, Text, Workflow};
use crate::config::raw::{RawStep, RawTask, RawWorkflow, SStr};
use indexmap::IndexMap;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use std::sync::Arc;

/// Keys every step may carry besides its kind.
pub const STEP_COMMON_KEYS: &[&str] = &["id", "name", "when", "on_failure"];

pub(super) fn text_of(file: &Arc<PathBuf>, s: &SStr) -> Text {
    Text {
        value: s.value.clone(),
        loc: Loc::new(file, &s.referenced),
    }
}

/// Tasks and workflows collected so far, from every file read.
#[derive(Default)]
pub(super) struct Builder {
    /// Tasks by name, in the order they were defined.
    pub(super) tasks: IndexMap<String, Task>,
    /// Workflows by name, in the order they were defined.
    pub(super) workflows: IndexMap<String, Workflow>,
}

impl Builder {
    /// Adds the tasks of one file.
    pub(super) fn add_tasks(
        &mut self,
        file: &Arc<PathBuf>,
        tasks: IndexMap<SStr, Spanned<RawTask>>,
        errors: &mut Vec<Diagnostic>,
    ) {
        for (name, task) in tasks {
            let loc = Loc::new(file, &name.referenced);
            if let Some(existing) = self.tasks.get(&name.value) {
                errors.push(
                    Diagnostic::at(loc, format!("task `{}` is defined twice", name.value))
                        .with_note(format!("first defined at {}", existing.loc)),
                );
                continue;
            }
            self.tasks.insert(
                name.value.clone(),
                Task {
                    name: name.value,
                    loc,
                    def: task.value,
                },
            );
        }
    }

    /// Adds the workflows of one file, checking each and converting its steps.
    pub(super) fn add_workflows(
        &mut self,
        file: &Arc<PathBuf>,
        workflows: IndexMap<SStr, Spanned<RawWorkflow>>,
        errors: &mut Vec<Diagnostic>,
    ) {
        for (name, workflow) in workflows {
            let loc = Loc::new(file, &name.referenced);
            if let Some(existing) = self.workflows.get(&name.value) {
                errors.push(
                    Diagnostic::at(loc, format!("workflow `{}` is defined twice", name.value))
                        .with_note(format!("first defined at {}", existing.loc)),
                );
                continue;
            }
            if name.value == "abort" || name.value == "continue" {
                errors.push(Diagnostic::at(
                    loc.clone(),
                    format!(
                        "`{}` is reserved for on_failure and cannot name a workflow",
                        name.value
                    ),
                ));
            }
            let raw = workflow.value;
            if let Some(age) = &raw.max_backup_age {
                if let Err(e) = humantime::parse_duration(&age.value) {
                    errors.push(
                        Diagnostic::at(
                            Loc::new(file, &age.referenced),
                            format!("invalid max_backup_age `{}`: {e}", age.value),
                        )
                        .with_help("write a duration such as `30m`, `6h` or `1day`"),
                    );
                }
            }
            // Checked here, on the steps as written: a step dropped for its own error
            // must not also make the workflow look empty.
            if raw.steps.is_empty() {
                errors.push(Diagnostic::at(
                    loc.clone(),
                    format!("workflow `{}` has no steps", name.value),
                ));
            }
            let steps = raw
                .steps
                .into_iter()
                .enumerate()
                .filter_map(|(index, step)| match step_def(file, index, step) {
                    Ok(step) => Some(step),
                    Err(d) => {
                        errors.push(d);
                        None
                    }
                })
                .collect();
            self.workflows.insert(
                name.value.clone(),
                Workflow {
                    name: name.value,
                    loc,
                    description: raw.description,
                    category: raw.category,
                    private: raw.private,
                    on_failure: raw.on_failure.map(|p| {
                        (
                            FailurePolicy::parse(&p.value),
                            Loc::new(file, &p.referenced),
                        )
                    }),
                    max_backup_age: raw.max_backup_age.map(|a| a.value),
                    allow_unguarded_deploy: raw
                        .allow_unguarded_deploy
                        .as_ref()
                        .map(|reason| text_of(file, reason)),
                    allow_seed: raw.allow_seed.as_ref().map(|reason| text_of(file, reason)),
                    steps,
                },
            );
        }
    }
}

/// Splits a raw step into its kind, its parameters and the common keys. The kind itself
/// is checked against the step registry later (Lua scripts may add kinds).
fn step_def(file: &Arc<PathBuf>, index: usize, raw: RawStep) -> Result<StepDef, Diagnostic> {
    let step_loc = Loc::new(file, &raw.referenced);
    let mut kind: Option<(String, Loc, serde_json::Value, Loc)> = None;
    let mut extra: Vec<(String, Loc)> = Vec::new();
    let mut id = None;
    let mut name = None;
    let mut when = None;
    let mut on_failure = None;
    for (key, value) in raw.value {
        let key_loc = Loc::new(file, &key.referenced);
        let value_loc = Loc::new(file, &value.referenced);
        match key.value.as_str() {
            "id" => id = Some(expect_string(&value.value, &value_loc, "id")?),
            "name" => name = Some(expect_string(&value.value, &value_loc, "name")?),
            "on_failure" => {
                let policy = expect_string(&value.value, &value_loc, "on_failure")?;
                on_failure = Some((FailurePolicy::parse(&policy), value_loc));
            }
            "when" => {
                let condition = serde_json::from_value(value.value.clone()).map_err(|e| {
                    let message = e.to_string();
                    let help = unknown_name_help(&message);
                    Diagnostic::at(value_loc.clone(), format!("invalid `when`: {message}"))
                        .with_help_opt(help)
                })?;
                when = Some(Condition {
                    raw: condition,
                    loc: value_loc,
                });
            }
            other => {
                if kind.is_none() {
                    kind = Some((other.to_string(), key_loc, value.value, value_loc));
                } else {
                    extra.push((other.to_string(), key_loc));
                }
            }
        }
    }
    let Some((kind, kind_loc, params, params_loc)) = kind else {
        return Err(Diagnostic::at(
            step_loc,
            "step has no kind (e.g. `task:`, `shell:`, `workflow:`)",
        ));
    };
    if let Some((key, loc)) = extra.into_iter().next() {
        return Err(Diagnostic::at(
            loc,
            format!("step has more than one kind key: `{kind}` and `{key}`"),
        )
        .with_help_opt(
            did_you_mean(&key, STEP_COMMON_KEYS.iter().copied())
                .or_else(|| Some("a step has exactly one kind; split it into two steps".into())),
        ));
    }
    Ok(StepDef {
        id: id.unwrap_or_else(|| format!("{}-{}", kind, index + 1)),
        name,
        kind,
        kind_loc,
        params,
        params_loc,
        when,
        on_failure,
        loc: step_loc,
    })
}

fn expect_string(value: &serde_json::Value, loc: &Loc, key: &str) -> Result<String, Diagnostic> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Diagnostic::at(loc.clone(), format!("`{key}` must be a string")))
}
