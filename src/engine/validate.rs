//! Load-time checks that need the step registry: every step's kind exists, its
//! parameters parse, and the tasks and workflows it names exist.

use super::plan::{param_error, unknown_kind};
use super::registry::{Reference, Registry, Role};
use crate::config::diagnostic::did_you_mean;
use crate::config::{Diagnostic, Project};

/// Checks every step of every workflow (parameters as written, before interpolation).
pub fn check_steps(project: &Project, registry: &Registry, errors: &mut Vec<Diagnostic>) {
    let tasks: Vec<&str> = project.tasks.keys().map(String::as_str).collect();
    let workflows: Vec<&str> = project.workflows.keys().map(String::as_str).collect();
    for workflow in project.workflows.values() {
        for def in &workflow.steps {
            let Some(kind) = registry.get(&def.kind) else {
                errors.push(unknown_kind(registry, def));
                continue;
            };
            let step = match kind.parse(&def.params) {
                Ok(step) => step,
                Err(message) => {
                    errors.push(param_error(def, &message));
                    continue;
                }
            };
            for reference in step.references() {
                let (what, name, known) = match &reference {
                    Reference::Task(name) => ("task", name, &tasks),
                    Reference::Workflow(name) => ("workflow", name, &workflows),
                };
                if name.contains("${") || known.contains(&name.as_str()) {
                    continue;
                }
                errors.push(
                    Diagnostic::at(
                        def.params_loc.clone(),
                        format!("step refers to unknown {what} `{name}`"),
                    )
                    .with_help_opt(did_you_mean(name, known.iter().copied())),
                );
            }
            if let Some(super::registry::Reference::Workflow(name)) = step
                .references()
                .into_iter()
                .find(|r| matches!(r, Reference::Workflow(n) if n == &workflow.name))
            {
                errors.push(Diagnostic::at(
                    def.params_loc.clone(),
                    format!("workflow `{name}` calls itself"),
                ));
            }
        }
    }
    check_workflow_cycles(project, registry, errors);
}

/// A workflow that (indirectly) calls itself through `workflow:` steps would never end.
fn check_workflow_cycles(project: &Project, registry: &Registry, errors: &mut Vec<Diagnostic>) {
    let calls = |name: &str| -> Vec<String> {
        project
            .workflows
            .get(name)
            .map(|w| {
                w.steps
                    .iter()
                    .filter_map(|d| registry.get(&d.kind).and_then(|k| k.parse(&d.params).ok()))
                    .flat_map(|s| s.references())
                    .filter_map(|r| match r {
                        Reference::Workflow(n) => Some(n),
                        Reference::Task(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut reported = std::collections::HashSet::new();
    for start in project.workflows.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((current, path)) = stack.pop() {
            for next in calls(&current) {
                if &next == start && path.len() > 1 {
                    let mut cycle = path.clone();
                    cycle.push(next.clone());
                    let mut key = path.clone();
                    key.sort();
                    if reported.insert(key) {
                        errors.push(Diagnostic::at(
                            project.workflows[start].loc.clone(),
                            format!("workflow cycle: {}", cycle.join(" -> ")),
                        ));
                    }
                } else if !path.contains(&next) && path.len() < 32 {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next, p));
                }
            }
        }
    }
}

/// The workflow rule for protected environments: a workflow whose `deploy` step can run
/// on a protected environment needs a `backup` step before that deploy step and a
/// `verify` step after it (directly, or inside a workflow it calls), unless the workflow
/// says why not with `allow_unguarded_deploy: "<reason>"`.
pub fn check_protected_deploys(
    project: &Project,
    registry: &Registry,
    errors: &mut Vec<Diagnostic>,
) {
    let protected: Vec<&str> = if project.implicit_environments {
        vec!["production"]
    } else {
        project
            .environments
            .values()
            .filter(|e| e.protection == crate::config::Protection::Protected)
            .map(|e| e.name.as_str())
            .collect()
    };
    if protected.is_empty() {
        return;
    }
    for workflow in project.workflows.values() {
        if workflow.allow_unguarded_deploy.is_some() {
            continue;
        }
        for (index, step) in workflow.steps.iter().enumerate() {
            if role_of(registry, step) != Some(Role::Deploy)
                || !may_run_on_protected(project, step, &protected)
            {
                continue;
            }
            let has = |steps: &[crate::config::StepDef], role: Role| {
                steps.iter().any(|s| {
                    may_run_on_protected(project, s, &protected)
                        && provides(project, registry, s, role, 0)
                })
            };
            let backup = has(&workflow.steps[..index], Role::Backup);
            let verify = has(&workflow.steps[index + 1..], Role::Verify);
            if backup && verify {
                continue;
            }
            let missing = match (backup, verify) {
                (false, false) => {
                    "without a `backup` step before its deploy step and a `verify` step after it"
                }
                (false, true) => "without a `backup` step before its deploy step",
                _ => "without a `verify` step after its deploy step",
            };
            errors.push(
                Diagnostic::at(
                    step.kind_loc.clone(),
                    format!(
                        "workflow `{}` can deploy to protected environment{} {} {missing}",
                        workflow.name,
                        if protected.len() == 1 { "" } else { "s" },
                        protected
                            .iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_help(format!(
                    "add {} to the workflow, or say on the workflow why it is safe without: `allow_unguarded_deploy: \"<reason>\"`",
                    match (backup, verify) {
                        (false, false) => "`- backup: {}` before the deploy step and a `- verify: …` step after it",
                        (false, true) => "`- backup: {}` before the deploy step",
                        _ => "a `- verify: …` step after the deploy step",
                    }
                )),
            );
        }
    }
}

/// Whether a step's `when` lets it run on one of the protected environments.
fn may_run_on_protected(
    project: &Project,
    step: &crate::config::StepDef,
    protected: &[&str],
) -> bool {
    let Some(when) = &step.when else {
        return true;
    };
    let raw = &when.raw;
    if !raw.protection.is_empty()
        && !raw
            .protection
            .contains(&crate::config::Protection::Protected)
    {
        return false;
    }
    if !raw.environments.is_empty() {
        return raw.environments.iter().any(|e| {
            let name = project.aliases.get(&e.value).unwrap_or(&e.value);
            protected.contains(&name.as_str()) || name.contains("${")
        });
    }
    true
}

/// Whether a step is of `kind`, or calls a workflow that has such a step.
fn provides(
    project: &Project,
    registry: &Registry,
    step: &crate::config::StepDef,
    role: Role,
    depth: usize,
) -> bool {
    if role_of(registry, step) == Some(role) {
        return true;
    }
    if depth > 16 {
        return false;
    }
    let Some(parsed) = registry
        .get(&step.kind)
        .and_then(|k| k.parse(&step.params).ok())
    else {
        return false;
    };
    parsed.references().into_iter().any(|r| match r {
        Reference::Workflow(name) => project.workflows.get(&name).is_some_and(|w| {
            w.steps
                .iter()
                .any(|s| provides(project, registry, s, role, depth + 1))
        }),
        Reference::Task(_) => false,
    })
}

/// The role its kind declares for `step` (none for an unknown kind).
fn role_of(registry: &Registry, step: &crate::config::StepDef) -> Option<Role> {
    registry.get(&step.kind).and_then(|k| k.role())
}
