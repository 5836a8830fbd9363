//! Loading a Workflowfile: reading it (size-limited), its includes, its environments
//! and settings, into a validated [`Project`].

use super::build::{text_of, Builder};
use super::include::add_includes;
use super::settings::{
    backup_overrides, backup_settings, guard_config, lint_settings, migration_limits,
};
use super::yaml_error::parse_yaml;
use super::DEFAULT_SANDBOX_PATTERN;
use crate::config::diagnostic::{did_you_mean, Diagnostic, Loc};
use crate::config::model::{DrillSettings, Environment, Project, PromotionRules};
use crate::config::raw::{DeployFrom, Protection, RawBackups, RawEnvironment, RawFile, SStr};
use crate::config::validate;
use indexmap::IndexMap;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest Workflowfile or include dbflow reads. Real ones are a few KB; the limit
/// keeps a file that is not one (a log, a device) from growing memory without bound.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

pub(super) fn read(path: &Path) -> Result<String, Diagnostic> {
    read_limited(path, MAX_CONFIG_BYTES)
}

/// Reads a regular file of at most `limit` bytes as UTF-8 (a FIFO, a device or
/// `/proc/...` is refused before a byte is read).
pub fn read_limited(path: &Path, limit: u64) -> Result<String, Diagnostic> {
    use std::io::Read;
    let cannot = |e: &dyn std::fmt::Display| {
        Diagnostic::bare(format!("cannot read {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(|e| cannot(&e))?;
    let meta = file.metadata().map_err(|e| cannot(&e))?;
    if !meta.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    if meta.len() > limit {
        return Err(cannot(&format!(
            "{} bytes is over the limit of {} MiB for this file",
            meta.len(),
            limit / (1024 * 1024)
        )));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cannot(&e))?;
    if bytes.len() as u64 > limit {
        return Err(cannot(&format!(
            "over the limit of {} MiB for this file",
            limit / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        cannot(&format!(
            "not valid UTF-8 at byte {}",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Loads the Workflowfile at `path` (relative to `cwd`) and its includes; every problem
/// found is returned, not just the first.
pub(super) fn load_file(path: &Path, cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
    let file = Arc::new(path.to_path_buf());
    let text = read(path).map_err(|d| vec![d])?;
    let raw: RawFile = parse_yaml(&file, &text).map_err(|d| vec![d])?;
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let abs_root = if root.is_absolute() {
        root.clone()
    } else {
        cwd.join(&root)
    };
    let real_root = abs_root.canonicalize().unwrap_or_else(|_| abs_root.clone());
    crate::config::diagnostic::set_project_root(&real_root);
    let mut errors = Vec::new();
    let mut builder = Builder::default();
    let mut files = vec![Arc::clone(&file)];

    builder.add_tasks(&file, raw.tasks, &mut errors);
    builder.add_workflows(&file, raw.workflows, &mut errors);

    add_includes(
        &file,
        &root,
        &real_root,
        &raw.include,
        &mut builder,
        &mut files,
        &mut errors,
    );

    let backups = backup_settings(raw.backups.as_ref(), &file, &mut errors);
    check_hook_tasks(
        raw.backups.as_ref(),
        &raw.environments,
        &builder,
        &file,
        &mut errors,
    );
    crate::config::names::check_env_names(
        &file,
        raw.environments.keys().cloned(),
        &raw.aliases,
        &mut errors,
    );
    let environments = environments(raw.environments, &file, &mut errors);

    let migrations_dir = raw
        .migrations
        .as_ref()
        .and_then(|m| m.dir.as_ref().map(|d| d.value.clone()))
        .unwrap_or_else(|| "prisma/migrations".into());
    let env_files = match &raw.env_file {
        Some(declared) => vec![root.join(&declared.value)],
        None => prisma_env_files(&root, &migrations_dir),
    }
    .into_iter()
    .filter(|p| p.is_file())
    .collect();
    if let Some(declared) = raw
        .migrations
        .as_ref()
        .and_then(|m| m.state_schema.as_ref())
    {
        // Drift checks skip dbflow's schema entirely: it must never be one the app uses.
        let name = declared.value.as_str();
        if name.is_empty()
            || name == "public"
            || name == "information_schema"
            || name.starts_with("pg_")
        {
            errors.push(Diagnostic::at(
                Loc::new(&file, &declared.referenced),
                format!("migrations.state_schema `{name}` cannot hold dbflow's state: use a schema of its own (default `dbflow`)"),
            ));
        }
    }
    if let Some(declared) = &raw.env_file {
        if !root.join(&declared.value).is_file() {
            errors.push(Diagnostic::at(
                Loc::new(&file, &declared.referenced),
                format!("env_file `{}` does not exist", declared.value),
            ));
        }
    }

    let project = Project {
        name: raw
            .project
            .map(|p| p.value)
            .unwrap_or_else(|| folder_name(&abs_root)),
        root,
        file: Some(Arc::clone(&file)),
        files,
        default_env: raw.default_env.as_ref().map(|d| text_of(&file, d)),
        aliases: raw
            .aliases
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect(),
        env_files,
        sandbox_pattern: raw
            .sandbox_pattern
            .as_ref()
            .map(|p| p.value.clone())
            .unwrap_or_else(|| DEFAULT_SANDBOX_PATTERN.into()),
        migrations_dir,
        migrations_table: raw
            .migrations
            .as_ref()
            .and_then(|m| m.table.as_ref().map(|d| d.value.clone()))
            .unwrap_or_else(|| "_prisma_migrations".into()),
        state_schema: raw
            .migrations
            .as_ref()
            .and_then(|m| m.state_schema.as_ref().map(|d| d.value.clone()))
            .unwrap_or_else(|| crate::config::model::DEFAULT_STATE_SCHEMA.into()),
        shadow_url: raw
            .migrations
            .as_ref()
            .and_then(|m| m.shadow_url.as_ref())
            .map(|u| text_of(&file, u)),
        migration_limits: migration_limits(raw.migrations.as_ref(), &file, &mut errors),
        lint: lint_settings(raw.lint.as_ref(), &file),
        lua: raw.lua.clone().unwrap_or_default(),
        backups_dir: raw
            .backups
            .as_ref()
            .and_then(|b| b.dir.as_ref().map(|d| d.value.clone()))
            .unwrap_or_else(|| "backups".into()),
        backups,
        metrics_textfile: raw.metrics.as_ref().map(|m| m.textfile.value.clone()),
        drill: raw
            .drill
            .as_ref()
            .map(|d| DrillSettings {
                key_tables: d.key_tables.iter().map(|t| t.value.clone()).collect(),
                verify: d.verify.iter().map(|v| v.value.clone()).collect(),
                server_url: d.server_url.as_ref().map(|u| text_of(&file, u)),
            })
            .unwrap_or_default(),
        guard: guard_config(raw.guard.as_ref(), &file),
        environments,
        implicit_environments: false,
        tasks: builder.tasks,
        workflows: builder.workflows,
    };

    validate::check_file_level(
        &project,
        &raw.aliases,
        raw.sandbox_pattern.as_ref(),
        &file,
        &mut errors,
    );
    if let Some(guard) = &raw.guard {
        validate::check_guard_environments(&project, guard, &file, &mut errors);
    }
    validate::check_promotion_rules(&project, &mut errors);
    validate::check_project(&project, &mut errors);
    crate::config::names::check_interpolation(&project, &mut errors);
    if errors.is_empty() {
        Ok(project)
    } else {
        Err(errors)
    }
}

/// The project folder's name: the project's name when the file gives none.
pub(super) fn folder_name(root: &Path) -> String {
    root.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "project".into())
}

/// Where Prisma's CLI reads `.env` files, in its order: the project root, then the
/// folder of the schema (`prisma/`, the migrations folder's parent).
pub(super) fn prisma_env_files(root: &Path, migrations_dir: &str) -> Vec<PathBuf> {
    let mut files = vec![root.join(".env")];
    if let Some(schema_dir) = Path::new(migrations_dir).parent() {
        if !schema_dir.as_os_str().is_empty() {
            files.push(root.join(schema_dir).join(".env"));
        }
    }
    files
}

/// Every task named by a `backups` hook (`stop_writes`, `switch_to_restored`), at the top
/// level or in an environment, exists.
fn check_hook_tasks(
    backups: Option<&RawBackups>,
    environments: &IndexMap<SStr, Spanned<RawEnvironment>>,
    builder: &Builder,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) {
    let mut hook_tasks: Vec<&SStr> = Vec::new();
    if let Some(b) = backups {
        hook_tasks.extend(b.stop_writes.iter().chain(b.switch_to_restored.iter()));
    }
    for env in environments.values() {
        if let Some(b) = &env.value.backups {
            hook_tasks.extend(b.stop_writes.iter().chain(b.switch_to_restored.iter()));
        }
    }
    for task in hook_tasks {
        if !builder.tasks.contains_key(&task.value) {
            let names: Vec<&str> = builder.tasks.keys().map(String::as_str).collect();
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &task.referenced),
                    format!("backups hook names unknown task `{}`", task.value),
                )
                .with_help_opt(did_you_mean(&task.value, names.iter().copied())),
            );
        }
    }
}

/// The `environments:` section, in the order written.
fn environments(
    raw: IndexMap<SStr, Spanned<RawEnvironment>>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> IndexMap<String, Environment> {
    let mut environments = IndexMap::new();
    for (name, env) in raw {
        let env_loc = Loc::new(file, &name.referenced);
        let env = env.value;
        let env_backups = backup_overrides(env.backups.as_ref(), file, errors);
        let protection = env
            .protection
            .map(|p| p.value)
            .unwrap_or_else(|| Protection::from_env_name(&name.value));
        environments.insert(
            name.value.clone(),
            Environment {
                name: name.value.clone(),
                loc: Some(env_loc),
                url: env_url(file, &name, env.url.as_ref(), env.fleet.is_some(), errors),
                direct_url: env.direct_url.as_ref().map(|u| text_of(file, u)),
                protection,
                provider: env.provider.map(|p| p.value),
                description: env.description,
                vars: env
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), text_of(file, v)))
                    .collect(),
                pooling: env.pooling.clone(),
                backups: env_backups,
                promotion: PromotionRules {
                    require_applied_on: env.require_applied_on.as_ref().map(|e| text_of(file, e)),
                    ci_only: env
                        .deploy_from
                        .as_ref()
                        .filter(|d| d.value == DeployFrom::Ci)
                        .map(|d| Loc::new(file, &d.referenced)),
                    ci_variable: env.ci_variable.as_ref().map(|v| v.value.clone()),
                    allow_deploy_outside_ci: env
                        .allow_deploy_outside_ci
                        .as_ref()
                        .map(|r| text_of(file, r)),
                },
                drill_server_url: env
                    .drill
                    .as_ref()
                    .and_then(|d| d.server_url.as_ref())
                    .map(|u| text_of(file, u)),
                fleet: env
                    .fleet
                    .as_ref()
                    .and_then(|f| crate::config::fleet::build(file, &name.value, f, errors)),
            },
        );
    }

    environments
}

/// An environment's `url`; only one with a `fleet` may leave it out (its targets have
/// theirs), and then it is empty: commands on one database refuse the bare fleet.
fn env_url(
    file: &Arc<PathBuf>,
    name: &SStr,
    url: Option<&SStr>,
    fleet: bool,
    errors: &mut Vec<Diagnostic>,
) -> crate::config::model::Text {
    match url {
        Some(url) => text_of(file, url),
        None => {
            if !fleet {
                errors.push(Diagnostic::at(
                    Loc::new(file, &name.referenced),
                    format!("environment `{}` has no `url` (and no `fleet`)", name.value),
                ));
            }
            crate::config::model::Text {
                value: String::new(),
                loc: Loc::new(file, &name.referenced),
            }
        }
    }
}
