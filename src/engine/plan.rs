//! Turning a workflow (or a task) into a [`Plan`]: the ordered, fully resolved steps.
//! `--dry-run` prints it; the docs renderer reads it.

use super::registry::{ParamError, Reference, Registry, Role, Step, StepDoc};
use crate::config::diagnostic::did_you_mean;
use crate::config::interpolate::interpolate_json;
use crate::config::{Diagnostic, FailurePolicy, Project, ResolvedEnv, StepDef, Vars};
use serde::Serialize;
use std::sync::Arc;

/// What planning needs to know.
pub struct PlanContext<'a> {
    /// The project.
    pub project: &'a Project,
    /// The target environment.
    pub env: &'a ResolvedEnv,
    /// Interpolation variables.
    pub vars: &'a Vars,
    /// Step kinds.
    pub registry: &'a Registry,
}

/// A resolved workflow run.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Workflow name (or the task's name for a task run).
    pub workflow: String,
    /// Whether this plan runs a single task rather than a workflow.
    pub is_task: bool,
    /// Target environment.
    pub env: String,
    /// Redacted database URL of the environment.
    pub url: String,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// The workflow-level failure handler.
    pub on_failure: Option<Box<Plan>>,
}

/// One resolved step.
#[derive(Debug, Serialize)]
pub struct PlannedStep {
    /// Identifier (journal, outputs).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Step kind.
    pub kind: String,
    /// Explanation and manual commands.
    pub doc: StepDoc,
    /// Set when `when` does not hold: the step will be skipped, and why.
    pub skip: Option<String>,
    /// What happens when it fails.
    pub on_failure: String,
    /// Whether a failure is ignored.
    #[serde(skip)]
    pub continue_on_failure: bool,
    /// The step's own failure handler.
    pub handler: Option<Box<Plan>>,
    /// For a `workflow` step: the nested plan the engine runs.
    pub nested: Option<Box<Plan>>,
    /// The configured step.
    #[serde(skip)]
    pub step: Arc<dyn Step>,
}

/// Plans workflow `name`.
pub fn plan_workflow(cx: &PlanContext<'_>, name: &str) -> Result<Plan, Vec<Diagnostic>> {
    plan_workflow_inner(cx, name, &mut Vec::new(), None)
}

/// `inherited_max_age`: the `max_backup_age` of the workflow that calls this one.
fn plan_workflow_inner(
    cx: &PlanContext<'_>,
    name: &str,
    stack: &mut Vec<String>,
    inherited_max_age: Option<&str>,
) -> Result<Plan, Vec<Diagnostic>> {
    let Some(workflow) = cx.project.workflows.get(name) else {
        let names: Vec<&str> = cx
            .project
            .workflows
            .keys()
            .chain(cx.project.tasks.keys())
            .map(String::as_str)
            .collect();
        return Err(vec![Diagnostic::bare(format!(
            "no workflow or task named `{name}`"
        ))
        .with_help_opt(
            did_you_mean(name, names.iter().copied())
                .or_else(|| Some("`dbflow list` shows what there is".into())),
        )]);
    };
    if stack.iter().any(|n| n == name) {
        let mut cycle = stack.clone();
        cycle.push(name.to_string());
        return Err(vec![Diagnostic::at(
            workflow.loc.clone(),
            format!("workflow cycle: {}", cycle.join(" -> ")),
        )]);
    }
    stack.push(name.to_string());
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    let max_age = workflow.max_backup_age.as_deref().or(inherited_max_age);
    for def in &workflow.steps {
        let def = with_max_backup_age(cx.registry, def, max_age);
        match plan_step(cx, &def, stack, max_age) {
            Ok(step) => steps.push(step),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let on_failure = match &workflow.on_failure {
        Some((FailurePolicy::Workflow(handler), _)) => match plan_handler(cx, handler, stack) {
            Ok(plan) => Some(Box::new(plan)),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        _ => None,
    };
    stack.pop();
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Plan {
        workflow: name.to_string(),
        is_task: false,
        env: cx.env.name.clone(),
        url: cx.env.url.redacted(),
        steps,
        on_failure,
    })
}

/// A handler may legitimately be the same workflow that another branch calls, so it is
/// planned with a fresh stack except for the workflow that installed it (a handler that
/// calls back into its own workflow would loop forever).
fn plan_handler(
    cx: &PlanContext<'_>,
    handler: &str,
    stack: &[String],
) -> Result<Plan, Vec<Diagnostic>> {
    let mut handler_stack = stack.to_vec();
    plan_workflow_inner(cx, handler, &mut handler_stack, None)
}

/// A workflow's `max_backup_age` is the default of its deploy steps' own parameter (the
/// steps whose kind declares [`Role::Deploy`]): the deploy step is what refuses, and its
/// plan line says so.
fn with_max_backup_age(registry: &Registry, def: &StepDef, max_age: Option<&str>) -> StepDef {
    let mut def = def.clone();
    let Some(age) = max_age else {
        return def;
    };
    if registry.get(&def.kind).and_then(|k| k.role()) != Some(Role::Deploy) {
        return def;
    }
    match &mut def.params {
        serde_json::Value::Null => {
            def.params = serde_json::json!({ "max_backup_age": age });
        }
        serde_json::Value::Object(map) if !map.contains_key("max_backup_age") => {
            map.insert("max_backup_age".into(), age.into());
        }
        _ => {}
    }
    def
}

/// Builds the configured step for `def` in this environment: interpolates its parameters,
/// parses them with its kind. Also used by validation.
pub fn build_step(cx: &PlanContext<'_>, def: &StepDef) -> Result<Arc<dyn Step>, Diagnostic> {
    let kind = cx
        .registry
        .get(&def.kind)
        .ok_or_else(|| unknown_kind(cx.registry, def))?;
    let params = interpolate_json(
        &def.params,
        cx.vars,
        &def.params_loc,
        &format!("step `{}`", def.display_name()),
    )?;
    kind.parse(&params)
        .map(Arc::from)
        .map_err(|message| param_error(def, &message))
}

/// The diagnostic for a step kind nobody registered.
pub fn unknown_kind(registry: &Registry, def: &StepDef) -> Diagnostic {
    Diagnostic::at(
        def.kind_loc.clone(),
        format!("unknown step kind `{}`", def.kind),
    )
    .with_help_opt(did_you_mean(&def.kind, registry.names()).or_else(|| {
        Some(format!(
            "known kinds: {}",
            registry.names().collect::<Vec<_>>().join(", ")
        ))
    }))
}

/// Points a parameter error at the offending key or value when it is an unknown one,
/// with the nearest accepted name.
pub fn param_error(def: &StepDef, error: &ParamError) -> Diagnostic {
    let message = &error.message;
    if let Some(unknown) = &error.unknown {
        let key = unknown.field.as_str();
        let expected = &unknown.expected;
        let loc = crate::config::diagnostic::find_after(&def.params_loc, &format!("{key}:"))
            .unwrap_or_else(|| def.params_loc.clone());
        return Diagnostic::at(
            loc,
            format!("unknown parameter `{key}` for step kind `{}`", def.kind),
        )
        .with_help_opt(
            did_you_mean(key, expected.iter().map(String::as_str)).or_else(|| {
                Some(match expected.is_empty() {
                    true => "this step kind takes no parameters".to_string(),
                    false => format!("expected one of: {}", expected.join(", ")),
                })
            }),
        );
    }
    if let Some(unknown) = &error.unknown_value {
        let value = unknown.value.as_str();
        let expected = &unknown.expected;
        let loc = crate::config::diagnostic::find_after(&def.params_loc, value)
            .unwrap_or_else(|| def.params_loc.clone());
        return Diagnostic::at(
            loc,
            format!(
                "unknown value `{value}` for step kind `{}` (expected one of: {})",
                def.kind,
                expected.join(", ")
            ),
        )
        .with_help_opt(did_you_mean(value, expected.iter().map(String::as_str)));
    }
    Diagnostic::at(
        def.params_loc.clone(),
        format!("invalid parameters for step kind `{}`: {message}", def.kind),
    )
}

fn plan_step(
    cx: &PlanContext<'_>,
    def: &StepDef,
    stack: &mut Vec<String>,
    max_age: Option<&str>,
) -> Result<PlannedStep, Vec<Diagnostic>> {
    let step = build_step(cx, def).map_err(|d| vec![d])?;
    let doc = step.describe(cx).map_err(|d| vec![d])?;
    let skip = match &def.when {
        Some(condition) => {
            crate::runner::condition::evaluate(&condition.raw, cx.env, cx.vars).err()
        }
        None => None,
    };
    let mut nested = None;
    for reference in step.references() {
        if let Reference::Workflow(name) = reference {
            nested = Some(Box::new(plan_workflow_inner(cx, &name, stack, max_age)?));
        }
    }
    let policy = def
        .on_failure
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or(FailurePolicy::Abort);
    let handler = match &policy {
        FailurePolicy::Workflow(name) => Some(Box::new(plan_handler(cx, name, stack)?)),
        _ => None,
    };
    Ok(PlannedStep {
        id: def.id.clone(),
        name: def.display_name(),
        kind: def.kind.clone(),
        doc,
        skip,
        on_failure: policy.label(),
        continue_on_failure: policy == FailurePolicy::Continue,
        handler,
        nested,
        step,
    })
}

/// Plans a single task run (the task and its dependencies) as a one-step plan.
pub fn plan_task(cx: &PlanContext<'_>, name: &str) -> Result<Plan, Vec<Diagnostic>> {
    let kind = cx
        .registry
        .get("task")
        .expect("the task step kind is built in");
    let step: Arc<dyn Step> = Arc::from(
        kind.parse(&serde_json::Value::String(name.into()))
            .map_err(|m| vec![Diagnostic::bare(m.to_string())])?,
    );
    let doc = step.describe(cx).map_err(|d| vec![d])?;
    Ok(Plan {
        workflow: name.to_string(),
        is_task: true,
        env: cx.env.name.clone(),
        url: cx.env.url.redacted(),
        steps: vec![PlannedStep {
            id: format!("task-{name}"),
            name: format!("task {name}"),
            kind: "task".into(),
            doc,
            skip: None,
            on_failure: FailurePolicy::Abort.label(),
            continue_on_failure: false,
            handler: None,
            nested: None,
            step,
        }],
        on_failure: None,
    })
}

/// A plan for a CLI command made of built-in steps (`dbflow backup create` runs one
/// `backup` step), so commands journal and report like workflows do. Each step is
/// `(kind, display name, parameters)`.
pub fn plan_command(
    cx: &PlanContext<'_>,
    command: &str,
    steps: Vec<(&str, String, serde_json::Value)>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut built = Vec::new();
    for (kind_name, name, params) in steps {
        let kind = cx.registry.get(kind_name).ok_or_else(|| {
            vec![Diagnostic::bare(format!(
                "{command}: step kind `{kind_name}` is not registered (a Lua file in scripts-lua/steps/ may have replaced or removed it)"
            ))]
        })?;
        let step: Arc<dyn Step> = Arc::from(
            kind.parse(&params)
                .map_err(|m| vec![Diagnostic::bare(format!("{command}: {m}"))])?,
        );
        built.push((kind_name, name, step));
    }
    plan_steps(cx, command, built)
}

/// A plan for a CLI command from steps it built itself with their typed constructors
/// (`DeployStep::for_command`): `(kind, display name, step)`.
pub fn plan_steps(
    cx: &PlanContext<'_>,
    command: &str,
    steps: Vec<(&str, String, Arc<dyn Step>)>,
) -> Result<Plan, Vec<Diagnostic>> {
    let mut planned = Vec::new();
    for (kind_name, name, step) in steps {
        let doc = step.describe(cx).map_err(|d| vec![d])?;
        planned.push(PlannedStep {
            id: kind_name.to_string(),
            name,
            kind: kind_name.to_string(),
            doc,
            skip: None,
            on_failure: FailurePolicy::Abort.label(),
            continue_on_failure: false,
            handler: None,
            nested: None,
            step,
        });
    }
    Ok(Plan {
        workflow: command.to_string(),
        is_task: false,
        env: cx.env.name.clone(),
        url: cx.env.url.redacted(),
        steps: planned,
        on_failure: None,
    })
}

impl Plan {
    /// Renders the plan for people (redacted).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let what = if self.is_task { "task" } else { "workflow" };
        out.push_str(&format!(
            "Plan: {what} `{}` on environment `{}` ({})\n",
            self.workflow, self.env, self.url
        ));
        self.render_steps(&mut out, "  ");
        crate::redact::redact(&out)
    }

    fn render_steps(&self, out: &mut String, indent: &str) {
        for (i, step) in self.steps.iter().enumerate() {
            let skip = step
                .skip
                .as_ref()
                .map(|r| format!("  (skipped: {r})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{indent}{}. {} [{}]{skip}\n",
                i + 1,
                step.name,
                step.kind
            ));
            out.push_str(&format!("{indent}     {}\n", step.doc.summary));
            for line in step.doc.details.lines().filter(|l| !l.is_empty()) {
                out.push_str(&format!("{indent}     {line}\n"));
            }
            for command in &step.doc.commands {
                let mut lines = command.lines();
                if let Some(first) = lines.next() {
                    out.push_str(&format!("{indent}     $ {first}\n"));
                }
                for more in lines {
                    out.push_str(&format!("{indent}       {more}\n"));
                }
            }
            if let Some(nested) = &step.nested {
                nested.render_steps(out, &format!("{indent}     "));
            }
            if step.on_failure != "abort" {
                out.push_str(&format!("{indent}     on failure: {}\n", step.on_failure));
            }
        }
        if let Some(handler) = &self.on_failure {
            out.push_str(&format!(
                "{indent}on failure: run workflow `{}`\n",
                handler.workflow
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{environment, load};

    #[test]
    fn a_command_naming_an_unregistered_kind_is_an_error_not_a_panic() {
        let project = load::load(None, std::path::Path::new(".")).expect("zero-config project");
        // Documentation mode: variables read as references, none need to be set.
        let vars = Vars::references_only();
        let env = environment::resolve(&project, Some("local"), &vars).expect("local");
        let registry = Registry::default();
        let cx = PlanContext {
            project: &project,
            env: &env,
            vars: &vars,
            registry: &registry,
        };
        let err = plan_command(
            &cx,
            "backup create",
            vec![("backup", "backup".into(), serde_json::Value::Null)],
        )
        .expect_err("no kinds registered");
        assert!(
            err[0]
                .to_string()
                .contains("step kind `backup` is not registered"),
            "{}",
            err[0]
        );
    }
}
