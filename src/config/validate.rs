//! Semantic checks over the loaded project: references, cycles, values. Step kinds and
//! their parameters are checked by the engine's registry (`engine::validate`).

use super::diagnostic::{did_you_mean, find_after, Diagnostic, Loc};
use super::model::{Condition, FailurePolicy, Project};
use super::raw::SStr;
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Checks that only make sense for a real Workflowfile (aliases, default_env, regex).
pub fn check_file_level(
    project: &Project,
    aliases: &IndexMap<SStr, SStr>,
    sandbox_pattern: Option<&SStr>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) {
    let env_names: Vec<&str> = project.environments.keys().map(String::as_str).collect();
    if project.environments.is_empty() {
        errors.push(
            Diagnostic::at(
                Loc { file: Arc::clone(file), line: 1, col: 1 },
                "no environments declared",
            )
            .with_help("add `environments:` with at least one entry, e.g. `local: { url: \"sqlite:dev.db\" }`"),
        );
    }
    for (alias, target) in aliases {
        if !project.environments.contains_key(&target.value) {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &target.referenced),
                    format!(
                        "alias `{}` points to unknown environment `{}`",
                        alias.value, target.value
                    ),
                )
                .with_help_opt(did_you_mean(&target.value, env_names.iter().copied())),
            );
        }
        if project.environments.contains_key(&alias.value) {
            errors.push(Diagnostic::at(
                Loc::new(file, &alias.referenced),
                format!(
                    "alias `{}` has the same name as an environment",
                    alias.value
                ),
            ));
        }
    }
    if let Some(default) = &project.default_env {
        let resolved = project
            .aliases
            .get(&default.value)
            .unwrap_or(&default.value);
        if !default.value.contains("${") && !project.environments.contains_key(resolved) {
            errors.push(
                Diagnostic::at(
                    default.loc.clone(),
                    format!(
                        "default_env `{}` is not a declared environment",
                        default.value
                    ),
                )
                .with_help_opt(did_you_mean(&default.value, env_names.iter().copied())),
            );
        }
    }
    if let Some(pattern) = sandbox_pattern {
        if let Err(e) = regex::Regex::new(&pattern.value) {
            errors.push(Diagnostic::at(
                Loc::new(file, &pattern.referenced),
                format!("sandbox_pattern is not a valid regex: {e}"),
            ));
        }
    }
}

/// Every environment named under `guard.environments` must be declared.
pub fn check_guard_environments(
    project: &Project,
    guard: &super::raw::RawGuard,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) {
    let names: Vec<&str> = project.environments.keys().map(String::as_str).collect();
    for name in guard.environments.keys() {
        if !project.environments.contains_key(&name.value) {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &name.referenced),
                    format!(
                        "guard.environments names unknown environment `{}`",
                        name.value
                    ),
                )
                .with_help_opt(did_you_mean(&name.value, names.iter().copied())),
            );
        }
    }
}

/// The promotion and origin rules of each environment: `require_applied_on` names
/// another declared environment; reasons are not empty; `allow_deploy_outside_ci` only
/// with `deploy_from: ci`.
pub fn check_promotion_rules(project: &Project, errors: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = project.environments.keys().map(String::as_str).collect();
    for env in project.environments.values() {
        let rules = &env.promotion;
        if let Some(other) = &rules.require_applied_on {
            let resolved = project.aliases.get(&other.value).unwrap_or(&other.value);
            if resolved == &env.name {
                errors.push(
                    Diagnostic::at(
                        other.loc.clone(),
                        format!(
                            "environment `{}` cannot require its own migrations to be applied on itself",
                            env.name
                        ),
                    )
                    .with_help("name the environment deploys are tested on first, e.g. `require_applied_on: staging`"),
                );
            } else if !project.environments.contains_key(resolved) {
                errors.push(
                    Diagnostic::at(
                        other.loc.clone(),
                        format!(
                            "require_applied_on names unknown environment `{}`",
                            other.value
                        ),
                    )
                    .with_help_opt(did_you_mean(&other.value, names.iter().copied())),
                );
            }
        }
        if let Some(reason) = &rules.allow_deploy_outside_ci {
            if reason.value.trim().is_empty() {
                errors.push(
                    Diagnostic::at(
                        reason.loc.clone(),
                        format!(
                            "environment `{}`: allow_deploy_outside_ci needs a reason",
                            env.name
                        ),
                    )
                    .with_help("say why a person may deploy here from outside CI, e.g. `allow_deploy_outside_ci: \"break-glass when the pipeline is down\"`"),
                );
            } else if rules.ci_only.is_none() {
                errors.push(
                    Diagnostic::at(
                        reason.loc.clone(),
                        format!(
                            "environment `{}`: allow_deploy_outside_ci has no effect without `deploy_from: ci`",
                            env.name
                        ),
                    )
                    .with_help("add `deploy_from: ci`, or remove allow_deploy_outside_ci"),
                );
            }
        }
    }
}

/// Checks tasks and workflows: references, cycles, command shape, durations, conditions.
pub fn check_project(project: &Project, errors: &mut Vec<Diagnostic>) {
    let task_names: Vec<&str> = project.tasks.keys().map(String::as_str).collect();
    let workflow_names: Vec<&str> = project.workflows.keys().map(String::as_str).collect();

    for task in project.tasks.values() {
        let def = &task.def;
        if def.command.is_some() && def.script.is_some() {
            errors.push(
                Diagnostic::at(
                    task.loc.clone(),
                    format!("task `{}` has both `command` and `script`", task.name),
                )
                .with_help(
                    "use `command` + `args` to run a program, or `script` for shell code, not both",
                ),
            );
        }
        if def.command.is_none() && def.script.is_none() && def.dependencies.is_empty() {
            errors.push(
                Diagnostic::at(
                    task.loc.clone(),
                    format!("task `{}` has nothing to run", task.name),
                )
                .with_help("give it a `command`, a `script`, or `dependencies`"),
            );
        }
        if !def.args.is_empty() && def.command.is_none() {
            errors.push(Diagnostic::at(
                task.loc.clone(),
                format!("task `{}` has `args` but no `command`", task.name),
            ));
        }
        for dep in &def.dependencies {
            if !project.tasks.contains_key(&dep.value) {
                errors.push(
                    Diagnostic::at(
                        Loc::new(&task.loc.file, &dep.referenced),
                        format!(
                            "task `{}` depends on unknown task `{}`",
                            task.name, dep.value
                        ),
                    )
                    .with_help_opt(did_you_mean(&dep.value, task_names.iter().copied())),
                );
            }
        }
        if let Some(timeout) = &def.timeout {
            if let Err(e) = humantime::parse_duration(&timeout.value) {
                errors.push(
                    Diagnostic::at(
                        Loc::new(&task.loc.file, &timeout.referenced),
                        format!("invalid timeout `{}`: {e}", timeout.value),
                    )
                    .with_help("write a duration such as `30s`, `5m` or `1h 30m`"),
                );
            }
        }
        if let Some(condition) = &def.condition {
            check_condition_envs(
                project,
                &Condition {
                    raw: condition.clone(),
                    loc: task.loc.clone(),
                },
                errors,
            );
        }
    }
    check_task_cycles(project, errors);

    for workflow in project.workflows.values() {
        if let Some(reason) = &workflow.allow_unguarded_deploy {
            if reason.value.trim().is_empty() {
                errors.push(
                    Diagnostic::at(
                        reason.loc.clone(),
                        format!(
                            "workflow `{}`: allow_unguarded_deploy needs a reason",
                            workflow.name
                        ),
                    )
                    .with_help("say why this workflow may deploy to a protected environment without a backup before and a verify after, e.g. `allow_unguarded_deploy: \"the provider snapshots before every deploy\"`"),
                );
            }
        }
        if let Some(reason) = &workflow.allow_seed {
            if reason.value.trim().is_empty() {
                errors.push(
                    Diagnostic::at(
                        reason.loc.clone(),
                        format!("workflow `{}`: allow_seed needs a reason", workflow.name),
                    )
                    .with_help("say why this workflow may seed a protected environment, e.g. `allow_seed: \"minimal production seed from the runbook: roles and plans\"`"),
                );
            }
        }
        if let Some((FailurePolicy::Workflow(target), loc)) = &workflow.on_failure {
            check_workflow_ref(project, target, loc, &workflow_names, errors);
            if target == &workflow.name {
                errors.push(Diagnostic::at(
                    loc.clone(),
                    format!(
                        "workflow `{}` names itself as its on_failure handler",
                        workflow.name
                    ),
                ));
            }
        }
        for step in &workflow.steps {
            if let Some((FailurePolicy::Workflow(target), loc)) = &step.on_failure {
                check_workflow_ref(project, target, loc, &workflow_names, errors);
            }
            if let Some(when) = &step.when {
                check_condition_envs(project, when, errors);
            }
        }
        let mut seen_ids: IndexMap<&str, &Loc> = IndexMap::new();
        for step in &workflow.steps {
            if let Some(first) = seen_ids.insert(&step.id, &step.loc) {
                errors.push(
                    Diagnostic::at(
                        step.loc.clone(),
                        format!(
                            "duplicate step id `{}` in workflow `{}`",
                            step.id, workflow.name
                        ),
                    )
                    .with_note(format!("first used at {first}")),
                );
            }
        }
    }
}

fn check_workflow_ref(
    project: &Project,
    target: &str,
    loc: &Loc,
    workflow_names: &[&str],
    errors: &mut Vec<Diagnostic>,
) {
    if !project.workflows.contains_key(target) {
        errors.push(
            Diagnostic::at(
                loc.clone(),
                format!("on_failure names unknown workflow `{target}`"),
            )
            .with_help_opt(
                did_you_mean(
                    target,
                    workflow_names.iter().copied().chain(["abort", "continue"]),
                )
                .or_else(|| Some("use `abort`, `continue`, or the name of a workflow".into())),
            ),
        );
    }
}

fn check_condition_envs(project: &Project, condition: &Condition, errors: &mut Vec<Diagnostic>) {
    if project.implicit_environments {
        return;
    }
    let names: Vec<&str> = project
        .environments
        .keys()
        .map(String::as_str)
        .chain(project.aliases.keys().map(String::as_str))
        .collect();
    for env in &condition.raw.environments {
        if !names.contains(&env.value.as_str()) {
            errors.push(
                Diagnostic::at(
                    condition_part_loc(condition, env),
                    format!("condition names unknown environment `{}`", env.value),
                )
                .with_help_opt(did_you_mean(&env.value, names.iter().copied())),
            );
        }
    }
}

/// Where a name inside a condition was written. A step's `when:` is read through JSON,
/// which loses the spans of its parts; then the name is searched for from the start
/// of the condition.
fn condition_part_loc(condition: &Condition, part: &SStr) -> Loc {
    if part.referenced.line() > 0 {
        return Loc::new(&condition.loc.file, &part.referenced);
    }
    find_after(&condition.loc, &part.value).unwrap_or_else(|| condition.loc.clone())
}

/// Depth-first search for dependency cycles; each cycle is reported once, printed in full.
fn check_task_cycles(project: &Project, errors: &mut Vec<Diagnostic>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        project: &'a Project,
        name: &'a str,
        marks: &mut IndexMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        errors: &mut Vec<Diagnostic>,
    ) {
        match marks.get(name).copied().unwrap_or(Mark::New) {
            Mark::Done => return,
            Mark::Active => {
                let start = stack.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..].to_vec();
                cycle.push(name);
                let task = &project.tasks[name];
                errors.push(
                    Diagnostic::at(
                        task.loc.clone(),
                        format!("task dependency cycle: {}", cycle.join(" -> ")),
                    )
                    .with_help("remove one of these dependencies"),
                );
                return;
            }
            Mark::New => {}
        }
        let Some(task) = project.tasks.get(name) else {
            return;
        };
        marks.insert(name, Mark::Active);
        stack.push(name);
        for dep in &task.def.dependencies {
            if project.tasks.contains_key(&dep.value) {
                visit(project, &dep.value, marks, stack, errors);
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
    }
    let mut marks = IndexMap::new();
    for name in project.tasks.keys() {
        visit(project, name, &mut marks, &mut Vec::new(), errors);
    }
}
