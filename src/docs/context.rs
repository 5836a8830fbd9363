//! The template context, built from the loaded project and its plans — never from
//! hand-kept lists. Documented field by field in `templates/README.md`.

use crate::config::environment::resolve;
use crate::config::{Project, Protection, ResolvedEnv, Vars};
use crate::engine::plan::{plan_workflow, Plan, PlanContext};
use crate::engine::Registry;
use crate::guard::Operation;
use serde::Serialize;

/// Everything a template sees.
#[derive(Debug, Serialize, Clone)]
pub struct DocContext {
    /// Project-wide settings.
    pub project: ProjectDoc,
    /// Every environment.
    pub environments: Vec<EnvDoc>,
    /// The environment a per-environment template is rendered for (`None` for index-like
    /// templates).
    pub env: Option<EnvDoc>,
    /// Workflows planned for `env` (or for the first environment in index-like templates).
    pub workflows: Vec<WorkflowDoc>,
    /// Tasks with their descriptions and commands.
    pub tasks: Vec<TaskDoc>,
    /// Step kinds dbflow knows.
    pub step_kinds: Vec<KindDoc>,
    /// "dbflow 0.1.0".
    pub generated_by: String,
}

/// Project-wide settings.
#[derive(Debug, Serialize, Clone)]
pub struct ProjectDoc {
    /// Project name.
    pub name: String,
    /// dbflow version.
    pub dbflow_version: String,
    /// Migrations folder.
    pub migrations_dir: String,
    /// History table.
    pub migrations_table: String,
    /// lock_timeout configured for migrations ("" when the protection default applies).
    pub lock_timeout: String,
    /// Retries after lock_timeout.
    pub lock_retries: u32,
    /// Backups folder.
    pub backups_dir: String,
    /// Regex for sandbox-like database names.
    pub sandbox_pattern: String,
}

/// One environment as documentation shows it (secrets never included).
#[derive(Debug, Serialize, Clone)]
pub struct EnvDoc {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `sandbox`, `shared` or `protected`.
    pub protection: String,
    /// Provider name ("" when none).
    pub provider: String,
    /// The URL as written in the Workflowfile (variable references, passwords masked).
    pub url: String,
    /// The direct URL as written ("" when none).
    pub direct_url: String,
    /// The variable the URL comes from, when it is a single reference (`PRODUCTION_DATABASE_URL`).
    pub url_var: String,
    /// Every variable the URL and the direct URL reference (for compose `environment:`).
    pub url_vars: Vec<String>,
    /// The variable the direct URL comes from first ("" when none).
    pub direct_url_var: String,
    /// `postgresql` or `sqlite`.
    pub engine: String,
    /// Free values.
    pub vars: indexmap::IndexMap<String, String>,
    /// Pooler settings, when declared.
    pub pooling: Option<crate::config::raw::RawPooling>,
    /// Operations that must never run here (from its protection level).
    pub never: Vec<NeverDoc>,
    /// The environment pending migrations must already be applied on ("" when none).
    pub require_applied_on: String,
    /// Whether deploys here run from CI only (`deploy_from: ci`).
    pub deploy_from_ci: bool,
    /// The variable that also means CI ("" when only `CI=true` does).
    pub ci_variable: String,
    /// Why the override may unlock deploys outside CI ("" when it may not).
    pub allow_deploy_outside_ci: String,
    /// Whether the guard allows `restore-in-place` here ("" when it does), else why not:
    /// the very decision `dbflow check restore-in-place` prints.
    pub in_place_refused: String,
    /// Who to call: `contacts:` with this environment's overrides.
    pub contacts: crate::config::raw::RawContacts,
    /// The task that stops the application writing (`backups.stop_writes`), if any.
    pub stop_writes: Option<TaskRef>,
    /// The task that points the application at a restored database
    /// (`backups.switch_to_restored`), if any.
    pub switch_to_restored: Option<TaskRef>,
    /// Health endpoints: the `http` checks of the verify steps run here.
    pub health: Vec<HealthDoc>,
    /// Where backups physically live: the repository URL (redacted) or the folder.
    pub backups_location: String,
    /// Whether backups live in object storage (else a folder on this machine).
    pub backups_remote: bool,
    /// The quick reference: only commands the guard allows here.
    pub quick: Vec<QuickDoc>,
    /// Workflows the guard refuses here, and why (not in the quick reference).
    pub refused: Vec<QuickDoc>,
    /// Its fleet of target databases, when it declares one.
    pub fleet: Option<super::fleet::FleetDoc>,
}

/// A task named by a hook (`stop_writes`, `switch_to_restored`).
#[derive(Debug, Serialize, Clone)]
pub struct TaskRef {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// What it runs (redacted): the script, or the command and its arguments.
    pub runs: String,
}

/// A health endpoint from a verify step's `http` check.
#[derive(Debug, Serialize, Clone)]
pub struct HealthDoc {
    /// The workflow whose verify step checks it.
    pub workflow: String,
    /// The check's name.
    pub name: String,
    /// The URL as written (redacted).
    pub url: String,
    /// The status it must answer.
    pub status: u64,
}

/// A quick-reference row.
#[derive(Debug, Serialize, Clone)]
pub struct QuickDoc {
    /// What it is for.
    pub task: String,
    /// The command.
    pub command: String,
    /// Why the guard refuses it ("" when allowed).
    pub refused: String,
}

/// A forbidden operation and why.
#[derive(Debug, Serialize, Clone)]
pub struct NeverDoc {
    /// The command people type.
    pub command: String,
    /// Why it is forbidden.
    pub reason: String,
    /// What to do instead.
    pub instead: String,
}

/// A workflow with its steps' documentation.
#[derive(Debug, Serialize, Clone)]
pub struct WorkflowDoc {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// The workflow run when a step fails ("" when none).
    pub on_failure: String,
    /// Whether `on_failure` restores a backup, so runs only after a migration committed.
    pub on_failure_restores: bool,
    /// What happens when it fails, in one sentence derived from the plan.
    pub failure: String,
    /// Shipped in dbflow (else defined by the project).
    pub builtin: bool,
    /// `dbflow run NAME --env ENV`.
    pub command: String,
    /// Why the guard refuses it here ("" when it allows every step).
    pub refused: String,
    /// Every question it asks here (nested workflows included), in order.
    pub confirmations: Vec<ConfirmDoc>,
    /// The questions its `on_failure` workflow asks here, asked only if that runs.
    pub on_failure_confirmations: Vec<ConfirmDoc>,
    /// Variables its steps read (`${BAD_MIGRATION}`, `when: env_set`).
    pub variables: Vec<String>,
    /// Its flowchart as Mermaid.
    pub mermaid: String,
    /// The graph both drawings come from.
    #[serde(skip)]
    pub flow: super::flow::Flow,
    /// The steps.
    pub steps: Vec<StepDocOut>,
}

/// A question a step asks, as the engine asks it.
#[derive(Debug, Serialize, Clone)]
pub struct ConfirmDoc {
    /// The step that asks.
    pub step: String,
    /// The question.
    pub question: String,
    /// `[y/N]`, `[Y/n]` or `type WORD to go on`.
    pub answer: String,
    /// What answers it without a person ("" when only a person can).
    pub unattended: String,
}

/// One step's documentation.
#[derive(Debug, Serialize, Clone)]
pub struct StepDocOut {
    /// 1-based position.
    pub index: usize,
    /// Display name.
    pub name: String,
    /// Step kind.
    pub kind: String,
    /// One line.
    pub summary: String,
    /// More lines.
    pub details: String,
    /// Equivalent manual commands.
    pub commands: Vec<String>,
    /// Why it is skipped in this environment ("" when it runs).
    pub skip: String,
    /// Failure policy.
    pub on_failure: String,
    /// The `when` condition in words ("" when it always runs).
    pub when: String,
    /// The questions it asks here.
    pub confirmations: Vec<ConfirmDoc>,
    /// Steps of a called workflow.
    pub nested: Vec<StepDocOut>,
}

/// A task.
#[derive(Debug, Serialize, Clone)]
pub struct TaskDoc {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Hidden from `dbflow list`.
    pub private: bool,
}

/// A step kind.
#[derive(Debug, Serialize, Clone)]
pub struct KindDoc {
    /// Name.
    pub name: String,
    /// One line.
    pub summary: String,
}

fn never_list(protection: Protection) -> Vec<NeverDoc> {
    let n = |command: &str, reason: &str, instead: &str| NeverDoc {
        command: command.into(),
        reason: reason.into(),
        instead: instead.into(),
    };
    let mut out = vec![n(
        "editing an applied migration.sql",
        "applied migrations are immutable: the checksum no longer matches and every deploy refuses",
        "put the change in a new migration (`dbflow migrate new NAME` or `prisma migrate dev --create-only`)",
    )];
    if protection != Protection::Sandbox {
        out.push(n(
            "prisma migrate dev",
            "it may reset the database and generates migrations against live data",
            "`dbflow migrate deploy` (or `prisma migrate deploy`)",
        ));
        out.push(n(
            "prisma db push",
            "it changes the schema without a migration, so history and drift checks lie",
            "create a migration and deploy it",
        ));
        out.push(n(
            "prisma db push --accept-data-loss",
            "it drops columns and tables with their data",
            "expand–contract: add, backfill, switch, then drop in a later release",
        ));
        out.push(n(
            "prisma migrate reset",
            "it drops the whole database",
            "restore a backup into a new database (`dbflow restore ID`)",
        ));
    }
    if protection == Protection::Protected {
        out.push(n(
            "restoring in place without a fresh backup",
            "it overwrites the only copy of current data",
            "restore into a new database first and switch the app over",
        ));
        out.push(n(
            "deploying without a verified backup",
            "there is no way back if the migration corrupts data",
            "the `deploy` workflow takes one before it applies anything",
        ));
    }
    out
}

fn step_docs(cx: &PlanContext<'_>, project: &Project, plan: &Plan) -> Vec<StepDocOut> {
    let defs = project.workflows.get(&plan.workflow).map(|w| &w.steps);
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepDocOut {
            when: defs
                .and_then(|d| d.get(i))
                .and_then(|d| d.when.as_ref())
                .map(|c| super::flow::condition_text(&c.raw))
                .unwrap_or_default(),
            confirmations: step
                .step
                .confirmations(cx)
                .into_iter()
                .map(|c| confirm_doc(&step.name, c))
                .collect(),
            index: i + 1,
            name: step.name.clone(),
            kind: step.kind.clone(),
            summary: step.doc.summary.clone(),
            details: step.doc.details.clone(),
            commands: step.doc.commands.clone(),
            skip: super::flow::skipped_here(project, plan, i).unwrap_or_default(),
            on_failure: step.on_failure.clone(),
            nested: step
                .nested
                .as_ref()
                .map(|n| step_docs(cx, project, n))
                .unwrap_or_default(),
        })
        .collect()
}

/// Builds the context for one environment (`None`: project-level templates).
pub fn build(
    project: &Project,
    registry: &Registry,
    env_name: Option<&str>,
) -> Result<DocContext, Vec<crate::config::Diagnostic>> {
    let contacts = crate::config::model::ProjectContacts::read(project).map_err(|d| vec![d])?;
    build_with(project, registry, env_name, &contacts)
}

/// [`build`] with the contacts already read (once for every environment).
pub fn build_with(
    project: &Project,
    registry: &Registry,
    env_name: Option<&str>,
    contacts: &crate::config::model::ProjectContacts,
) -> Result<DocContext, Vec<crate::config::Diagnostic>> {
    let health = health_endpoints(project);
    // Docs describe every machine: variables stay references, nothing is read.
    let vars = Vars::references_only();
    let mut environments = Vec::new();
    for name in project.environments.keys() {
        let resolved = resolve(project, Some(name), &vars).map_err(|d| vec![d])?;
        let env = &project.environments[name];
        let raw_url = env.url.value.trim();
        let url_var = raw_url
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .map(|r| r.split(":-").next().unwrap_or(r).to_string())
            .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or_default();
        let engine = if raw_url.starts_with("sqlite:") || raw_url.starts_with("file:") {
            "sqlite"
        } else {
            "postgresql"
        };
        environments.push(EnvDoc {
            name: name.clone(),
            description: env.description.clone().unwrap_or_default(),
            protection: env.protection.as_str().into(),
            provider: env.provider.clone().unwrap_or_default(),
            url: resolved.url.redacted(),
            direct_url: resolved
                .direct_url
                .as_ref()
                .map(|u| u.redacted())
                .unwrap_or_default(),
            url_var,
            url_vars: {
                let mut vars = crate::config::interpolate::referenced_vars(&env.url.value);
                for v in env
                    .direct_url
                    .iter()
                    .flat_map(|d| crate::config::interpolate::referenced_vars(&d.value))
                {
                    if !vars.contains(&v) {
                        vars.push(v);
                    }
                }
                vars
            },
            direct_url_var: env
                .direct_url
                .as_ref()
                .and_then(|d| {
                    crate::config::interpolate::referenced_vars(&d.value)
                        .into_iter()
                        .next()
                })
                .unwrap_or_default(),
            engine: engine.into(),
            vars: resolved
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), crate::redact::redact(v)))
                .collect(),
            pooling: env.pooling.clone(),
            never: never_list(env.protection),
            require_applied_on: env
                .promotion
                .require_applied_on
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            deploy_from_ci: env.promotion.ci_only.is_some(),
            ci_variable: env.promotion.ci_variable.clone().unwrap_or_default(),
            allow_deploy_outside_ci: env
                .promotion
                .allow_deploy_outside_ci
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            in_place_refused: {
                let decision = crate::guard::check(
                    project,
                    &resolved,
                    crate::guard::Operation::RestoreInPlace,
                );
                if decision.allowed {
                    String::new()
                } else {
                    decision
                        .violations
                        .iter()
                        .filter(|v| v.blocks())
                        .map(|v| v.reason.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            },
            contacts: contacts.for_env(name),
            stop_writes: task_ref(project, project.backup_settings(name).stop_writes),
            switch_to_restored: task_ref(project, project.backup_settings(name).switch_to_restored),
            health: health.clone(),
            backups_location: match project.backup_settings(name).repository {
                Some(repository) => crate::redact::redact(&repository),
                None => format!("{}/{name}/", project.backups_dir),
            },
            backups_remote: project
                .backup_settings(name)
                .repository
                .is_some_and(|r| r.contains("://") && !r.starts_with("file://")),
            quick: Vec::new(),
            refused: Vec::new(),
            fleet: env
                .fleet
                .as_ref()
                .map(|f| super::fleet::fleet_doc(f, crate::config::fleet::DEFAULT_CONCURRENCY)),
        });
    }
    let plan_env = env_name.or_else(|| project.environments.keys().next().map(String::as_str));
    let mut workflows = Vec::new();
    if let Some(plan_env) = plan_env {
        let resolved = resolve(project, Some(plan_env), &vars).map_err(|d| vec![d])?;
        let cx = PlanContext {
            project,
            env: &resolved,
            vars: &vars,
            registry,
        };
        let mut rulings = CommandRulings::new(project, &resolved);
        for (name, workflow) in &project.workflows {
            let plan = plan_workflow(&cx, name)?;
            let flow = super::flow::build(&cx, &plan, workflow);
            let mut ops = Vec::new();
            operations(project, &plan, &mut ops);
            let mut refusals: Vec<String> = ops
                .iter()
                .map(|op| refusal(project, &resolved, *op))
                .filter(|r| !r.is_empty())
                .collect();
            command_refusals(&cx, &mut rulings, &plan, &mut refusals);
            let refused = refusals.join("; ");
            let mut confirmations = Vec::new();
            all_confirmations(&cx, &plan, &mut confirmations);
            let mut on_failure_confirmations = Vec::new();
            if let Some(handler) = &plan.on_failure {
                all_confirmations(&cx, handler, &mut on_failure_confirmations);
            }
            workflows.push(WorkflowDoc {
                name: name.clone(),
                description: workflow.description.clone().unwrap_or_default(),
                category: workflow.category.clone().unwrap_or_default(),
                on_failure: plan
                    .on_failure
                    .as_ref()
                    .map(|h| h.workflow.clone())
                    .unwrap_or_default(),
                on_failure_restores: plan
                    .on_failure
                    .as_ref()
                    .is_some_and(|h| crate::engine::run::restores(h)),
                failure: failure_sentence(&plan),
                builtin: workflow.loc.file.starts_with("<builtin>"),
                command: format!("dbflow run {name} --env {plan_env}"),
                refused,
                confirmations,
                on_failure_confirmations,
                variables: workflow_variables(workflow),
                mermaid: flow.to_mermaid(),
                flow,
                steps: step_docs(&cx, project, &plan),
            });
        }
        if let Some(env) = environments
            .iter_mut()
            .find(|e| Some(e.name.as_str()) == env_name)
        {
            let (quick, refused) = quick_reference(project, &resolved, &workflows);
            env.quick = quick;
            env.refused = refused;
        }
    }
    let env = env_name.and_then(|n| environments.iter().find(|e| e.name == n).cloned());
    Ok(DocContext {
        project: ProjectDoc {
            name: project.name.clone(),
            dbflow_version: env!("CARGO_PKG_VERSION").into(),
            migrations_dir: project.migrations_dir.clone(),
            migrations_table: project.migrations_table.clone(),
            lock_timeout: project
                .migration_limits
                .lock_timeout
                .map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_default(),
            lock_retries: project.migration_limits.lock_retries,
            backups_dir: project.backups_dir.clone(),
            sandbox_pattern: project.sandbox_pattern.clone(),
        },
        environments,
        env,
        workflows,
        tasks: project
            .tasks
            .values()
            .map(|t| TaskDoc {
                name: t.name.clone(),
                description: t.def.description.clone().unwrap_or_default(),
                category: t.def.category.clone().unwrap_or_default(),
                private: t.def.private,
            })
            .collect(),
        step_kinds: registry
            .kinds()
            .map(|k| KindDoc {
                name: k.name().into(),
                summary: k.summary().into(),
            })
            .collect(),
        generated_by: format!("dbflow {}", env!("CARGO_PKG_VERSION")),
    })
}

fn confirm_doc(step: &str, c: crate::engine::Confirmation) -> ConfirmDoc {
    ConfirmDoc {
        step: step.to_string(),
        question: crate::redact::redact(&c.question),
        answer: c.answer,
        unattended: c.unattended,
    }
}

/// Every question `plan` asks, nested workflows included, skipped steps left out.
fn all_confirmations(cx: &PlanContext<'_>, plan: &Plan, out: &mut Vec<ConfirmDoc>) {
    let here = |i: &(usize, &crate::engine::plan::PlannedStep)| {
        super::flow::skipped_here(cx.project, plan, i.0).is_none()
    };
    for (_, step) in plan.steps.iter().enumerate().filter(here) {
        out.extend(
            step.step
                .confirmations(cx)
                .into_iter()
                .map(|c| confirm_doc(&step.name, c)),
        );
        if let Some(nested) = &step.nested {
            all_confirmations(cx, nested, out);
        }
    }
}

/// The guarded operations `plan` performs (steps skipped there left out, nested
/// included).
fn operations(project: &Project, plan: &Plan, out: &mut Vec<Operation>) {
    for (i, step) in plan.steps.iter().enumerate() {
        if super::flow::skipped_here(project, plan, i).is_some() {
            continue;
        }
        for op in step.step.operations() {
            if !out.contains(&op) {
                out.push(op);
            }
        }
        if let Some(nested) = &step.nested {
            operations(project, nested, out);
        }
    }
}

/// A command line a step runs: the line, the environment it runs with, where it comes
/// from ("task `wipe`").
type CommandRun = (String, Vec<(String, String)>, String);

/// The script gate of one environment, with what it already answered: 50 workflows
/// running the same task ask about the same line once.
struct CommandRulings {
    gate: crate::guard::script_gate::ScriptGate,
    tasks: std::collections::HashMap<String, Vec<CommandRun>>,
    lines: std::collections::HashMap<(String, Option<String>, bool), Vec<String>>,
}

impl CommandRulings {
    fn new(project: &Project, env: &ResolvedEnv) -> Self {
        CommandRulings {
            gate: crate::guard::script_gate::ScriptGate::for_docs(project, env),
            tasks: Default::default(),
            lines: Default::default(),
        }
    }

    /// The command lines task `name` (its dependencies first) runs here.
    fn task(&mut self, cx: &PlanContext<'_>, name: &str) -> Vec<CommandRun> {
        self.tasks
            .entry(name.to_string())
            .or_insert_with(|| {
                crate::runner::plan(cx.project, cx.env, cx.vars, name)
                    .map(|invocations| {
                        invocations
                            .iter()
                            .filter(|i| i.skip.is_none())
                            .filter_map(|inv| {
                                inv.command.as_ref().map(|c| {
                                    (
                                        c.command.display(),
                                        c.env.clone(),
                                        format!("task `{}`", inv.task),
                                    )
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .clone()
    }

    /// The gate's blocking reasons for `line` ("" when it allows it).
    fn reasons(&mut self, line: &str, env: &[(String, String)], allow_seed: bool) -> &[String] {
        // The command's environment matters only through the database it names.
        let database_url = env
            .iter()
            .rev()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone());
        let gate = &self.gate;
        self.lines
            .entry((line.to_string(), database_url, allow_seed))
            .or_insert_with(|| {
                gate.refusals(line, env, allow_seed)
                    .iter()
                    .flat_map(|d| d.violations.iter().filter(|v| v.blocks()))
                    .map(|v| v.reason.clone())
                    .collect()
            })
    }
}

/// The refusals of the command lines `plan`'s task and shell steps run (steps skipped
/// there left out, nested workflows included): each line asked of the very gate that
/// rules on it before the step runs ([`crate::guard::script_gate::ScriptGate`]), since
/// these steps declare no operations of their own (`prisma migrate reset`, `dropdb` in
/// a task).
fn command_refusals(
    cx: &PlanContext<'_>,
    rulings: &mut CommandRulings,
    plan: &Plan,
    out: &mut Vec<String>,
) {
    let allow_seed = cx
        .project
        .workflows
        .get(&plan.workflow)
        .is_some_and(|w| w.allow_seed.is_some());
    for (i, step) in plan.steps.iter().enumerate() {
        if super::flow::skipped_here(cx.project, plan, i).is_some() {
            continue;
        }
        let mut lines: Vec<CommandRun> = Vec::new();
        match step.kind.as_str() {
            "task" => {
                for reference in step.step.references() {
                    if let crate::engine::registry::Reference::Task(task) = reference {
                        lines.extend(rulings.task(cx, &task));
                    }
                }
            }
            "shell" => {
                for command in &step.doc.commands {
                    lines.push((command.clone(), Vec::new(), format!("step `{}`", step.name)));
                }
            }
            _ => {}
        }
        for (line, env, from) in lines {
            let reasons = rulings.reasons(&line, &env, allow_seed);
            if !reasons.is_empty() {
                let refusal = crate::redact::redact(&format!(
                    "{from} runs `{}`: {}",
                    crate::lint::ast::summary(&line),
                    reasons.join("; ")
                ));
                if !out.contains(&refusal) {
                    out.push(refusal);
                }
            }
        }
        if let Some(nested) = &step.nested {
            command_refusals(cx, rulings, nested, out);
        }
    }
}

/// The guard's ruling on `operation` here, without any override: "" when allowed, else
/// its reasons. Docs describe the rules, not what one shell's variables would unlock.
fn refusal(project: &Project, env: &ResolvedEnv, operation: Operation) -> String {
    let decision = crate::guard::decide(
        project,
        &crate::guard::GuardTarget::of(env),
        operation,
        &crate::guard::Overrides::default(),
    );
    if decision.allowed {
        return String::new();
    }
    decision
        .violations
        .iter()
        .filter(|v| v.blocks())
        .map(|v| v.reason.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What happens when `plan` fails, from its handler and the engine's rule that a
/// handler which restores runs only after a change.
fn failure_sentence(plan: &Plan) -> String {
    match &plan.on_failure {
        None => "a failed step stops the run with its exit code; nothing runs after it".into(),
        Some(handler) if crate::engine::run::restores(handler) => format!(
            "a failure after a migration committed (or may have) runs `{}`, which restores a backup; a failure before any migration committed (guard block, declined or missing confirmation, lock timeout) changed nothing: the run stops and says \"nothing changed, nothing to roll back\" without running `{}`",
            handler.workflow, handler.workflow
        ),
        Some(handler) => format!(
            "any failed step runs `{}` (it restores nothing, so it runs whether or not anything changed), then the run fails",
            handler.workflow
        ),
    }
}

/// Variables a workflow's steps read: `${NAME}` in parameters, `when:` variables.
fn workflow_variables(workflow: &crate::config::Workflow) -> Vec<String> {
    fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            // Most parameters reference nothing; finding that out needs no regex.
            serde_json::Value::String(s) if s.contains("${") => {
                for v in crate::config::interpolate::referenced_vars(s) {
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for step in &workflow.steps {
        strings(&step.params, &mut out);
        if let Some(when) = &step.when {
            let c = &when.raw;
            for v in c
                .env_set
                .iter()
                .chain(&c.env_not_set)
                .chain(c.env_equals.keys())
            {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
        }
    }
    out
}

/// The `http` checks of the verify steps of every workflow.
fn health_endpoints(project: &Project) -> Vec<HealthDoc> {
    let mut out: Vec<HealthDoc> = Vec::new();
    for (name, workflow) in &project.workflows {
        for step in workflow.steps.iter().filter(|s| s.kind == "verify") {
            let checks = step.params.get("checks").and_then(|c| c.as_array());
            for check in checks.into_iter().flatten() {
                let Some(http) = check.get("http") else {
                    continue;
                };
                let Some(url) = http.get("url").and_then(|u| u.as_str()) else {
                    continue;
                };
                let url = crate::redact::redact(url);
                if out.iter().any(|h| h.url == url) {
                    continue;
                }
                out.push(HealthDoc {
                    workflow: name.clone(),
                    name: check
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("http check")
                        .to_string(),
                    url,
                    status: http.get("status").and_then(|s| s.as_u64()).unwrap_or(200),
                });
            }
        }
    }
    out
}

/// A hook's task with what it runs.
fn task_ref(project: &Project, name: Option<String>) -> Option<TaskRef> {
    let name = name?;
    let task = project.tasks.get(&name);
    let runs = task
        .map(|t| match (&t.def.script, &t.def.command) {
            (Some(script), _) => script.value.clone(),
            (None, Some(command)) => std::iter::once(command.value.clone())
                .chain(t.def.args.iter().map(|a| a.value.clone()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default();
    Some(TaskRef {
        description: task
            .and_then(|t| t.def.description.clone())
            .unwrap_or_default(),
        runs: crate::redact::redact(runs.trim()),
        name,
    })
}

/// The quick reference of `env`: every row the guard allows there, and the workflows it
/// refuses (kept out of the reference, listed apart with the guard's reasons).
fn quick_reference(
    project: &Project,
    env: &ResolvedEnv,
    workflows: &[WorkflowDoc],
) -> (Vec<QuickDoc>, Vec<QuickDoc>) {
    let name = &env.name;
    let row = |task: &str, command: String, refused: String| QuickDoc {
        task: task.into(),
        command,
        refused,
    };
    let deploy = workflows.iter().find(|w| w.name == "deploy");
    let mut rows = vec![
        row(
            "Which environment am I on?",
            format!("dbflow env --env {name}"),
            String::new(),
        ),
        row(
            "Migration status and drift",
            format!("dbflow migrate status --env {name}"),
            String::new(),
        ),
    ];
    if let Some(deploy) = deploy {
        rows.push(row(
            "What would deploy do?",
            format!("dbflow run deploy --env {name} --dry-run"),
            String::new(),
        ));
        rows.push(row(
            "Deploy",
            deploy.command.clone(),
            deploy.refused.clone(),
        ));
    }
    rows.push(row(
        "Past runs",
        format!("dbflow runs --env {name}"),
        String::new(),
    ));
    rows.push(row(
        "Mark a failed migration",
        format!("dbflow migrate resolve --rolled-back NAME --env {name}"),
        refusal(project, env, Operation::MigrateResolve),
    ));
    for workflow in workflows.iter().filter(|w| w.name != "deploy") {
        let task = if workflow.description.is_empty() {
            workflow.name.clone()
        } else {
            workflow.description.clone()
        };
        rows.push(row(
            &task,
            workflow.command.clone(),
            workflow.refused.clone(),
        ));
    }
    rows.into_iter().partition(|r| r.refused.is_empty())
}
