//! The template context, built from the loaded project and its plans — never from
//! hand-kept lists. Documented field by field in `templates/README.md`.

use crate::config::environment::resolve;
use crate::config::{Project, Protection, Vars};
use crate::engine::plan::{plan_workflow, Plan, PlanContext};
use crate::engine::Registry;
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
    /// The steps.
    pub steps: Vec<StepDocOut>,
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

fn step_docs(plan: &Plan) -> Vec<StepDocOut> {
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, step)| StepDocOut {
            index: i + 1,
            name: step.name.clone(),
            kind: step.kind.clone(),
            summary: step.doc.summary.clone(),
            details: step.doc.details.clone(),
            commands: step.doc.commands.clone(),
            skip: step.skip.clone().unwrap_or_default(),
            on_failure: step.on_failure.clone(),
            nested: step
                .nested
                .as_ref()
                .map(|n| step_docs(n))
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
        for (name, workflow) in &project.workflows {
            let plan = plan_workflow(&cx, name)?;
            workflows.push(WorkflowDoc {
                name: name.clone(),
                description: workflow.description.clone().unwrap_or_default(),
                category: workflow.category.clone().unwrap_or_default(),
                on_failure: plan
                    .on_failure
                    .as_ref()
                    .map(|h| h.workflow.clone())
                    .unwrap_or_default(),
                steps: step_docs(&plan),
            });
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
