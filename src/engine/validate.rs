//! Load-time checks that need the step registry: every step's kind exists, its
//! parameters parse, and the tasks and workflows it names exist.

use super::plan::{param_error, unknown_kind};
use super::registry::{Reference, Registry};
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
