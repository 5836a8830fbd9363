//! Reading the Workflowfile and its includes into a [`Project`].

use super::diagnostic::{did_you_mean, Diagnostic, Loc};
use super::model::{
    BackupOverrides, BackupSettings, Condition, DrillSettings, Environment, FailurePolicy,
    ForbiddenList, GuardConfig, Project, PromotionRules, StepDef, Task, Text, Workflow,
};
use super::raw::{
    DeployFrom, Protection, RawBackups, RawEnvBackups, RawFile, RawGuard, RawInclude, RawStep,
    RawTask, RawWorkflow, SStr,
};
use super::validate;
use indexmap::IndexMap;
use serde_saphyr::Spanned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file name dbflow looks for.
pub const WORKFLOWFILE: &str = "Workflowfile.yaml";

/// Default regex for sandbox-like database names.
pub const DEFAULT_SANDBOX_PATTERN: &str = "sandbox|scratch|seed|e2e|test|tmp";

/// Built-in workflows compiled into the binary (the repository's `workflows/` folder),
/// used when there is no Workflowfile.
pub const BUILTIN_WORKFLOWS: &[(&str, &str)] = &[
    (
        "workflows/deploy.yaml",
        include_str!("../../workflows/deploy.yaml"),
    ),
    (
        "workflows/checks.yaml",
        include_str!("../../workflows/checks.yaml"),
    ),
    (
        "workflows/backups.yaml",
        include_str!("../../workflows/backups.yaml"),
    ),
    (
        "workflows/runbooks.yaml",
        include_str!("../../workflows/runbooks.yaml"),
    ),
];

/// Keys every step may carry besides its kind.
pub const STEP_COMMON_KEYS: &[&str] = &["id", "name", "when", "on_failure"];

/// Finds the Workflowfile: the explicit path, else the nearest one upward from `start`.
pub fn find(explicit: Option<&Path>, start: &Path) -> Result<Option<PathBuf>, Diagnostic> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(Some(path.to_path_buf()));
        }
        return Err(Diagnostic::bare(format!(
            "{}: no such file",
            path.display()
        )));
    }
    let mut dir = Some(start);
    while let Some(d) = dir {
        let candidate = d.join(WORKFLOWFILE);
        if candidate.is_file() {
            return Ok(Some(relative_to_cwd(&candidate, start)));
        }
        dir = d.parent();
    }
    Ok(None)
}

fn relative_to_cwd(path: &Path, cwd: &Path) -> PathBuf {
    path.strip_prefix(cwd)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Loads the project from `file`, or the zero-config project when `file` is `None`.
/// Returns every problem found, not just the first.
pub fn load(file: Option<&Path>, cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
    match file {
        Some(path) => load_file(path, cwd),
        None => zero_config(cwd),
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Arc<PathBuf>,
    text: &str,
) -> Result<T, Diagnostic> {
    serde_saphyr::from_str::<T>(text).map_err(|err| yaml_error(path, text, &err))
}

/// Converts a serde-saphyr error into a diagnostic, adding a suggestion for unknown
/// keys and values.
fn yaml_error(path: &Arc<PathBuf>, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let mut message = err.without_snippet().to_string();
    if let Some(index) = message.rfind(" at line ") {
        message.truncate(index);
    }
    let loc = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Loc::new(path, &l));
    let mut help = unknown_name_help(&message);
    if let Some((shape_message, shape_help)) =
        loc.as_ref().and_then(|l| wrong_shape(&message, text, l))
    {
        message = shape_message;
        help = Some(shape_help);
    }
    let diagnostic = Diagnostic {
        message,
        loc,
        help,
        notes: Vec::new(),
    };
    if diagnostic.loc.is_none() {
        return diagnostic.with_note(format!("in {}", path.display()));
    }
    diagnostic
}

/// serde-saphyr reports a value of the wrong shape as "expected sequence start" or
/// "invalid boolean", naming neither the key nor what to write. The key is taken from the
/// source line when the value sits right after it (`dependencies: generate`).
fn wrong_shape(message: &str, text: &str, loc: &Loc) -> Option<(String, String)> {
    let (wanted, example) = if message.starts_with("expected sequence start") {
        (
            "a list",
            "write `[a, b]`, or one `- item` per line below the key",
        )
    } else if message.starts_with("expected mapping start") {
        (
            "a mapping",
            "write `key: value` lines, indented below the key",
        )
    } else if message.starts_with("invalid boolean") {
        ("`true` or `false`", "write `true` or `false`")
    } else {
        return None;
    };
    let line = text
        .lines()
        .nth(usize::try_from(loc.line).ok()?.checked_sub(1)?)?;
    let before: String = line
        .chars()
        .take(usize::try_from(loc.col).ok()?.saturating_sub(1))
        .collect();
    let key = before
        .trim()
        .trim_start_matches("- ")
        .strip_suffix(':')
        .map(str::trim)
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
    Some(match key {
        Some(key) => (format!("`{key}` must be {wanted}"), example.to_string()),
        None => (format!("expected {wanted} here"), example.to_string()),
    })
}

/// serde says "unknown field `comand`, expected one of command, args"; turn the list
/// into a "did you mean".
fn unknown_name_help(message: &str) -> Option<String> {
    let re = regex::Regex::new(r"unknown (?:field|variant) `([^`]+)`, expected (?:one of )?(.+)$")
        .ok()?;
    let caps = re.captures(message)?;
    let name = caps.get(1)?.as_str();
    let expected: Vec<String> = caps
        .get(2)?
        .as_str()
        .split(", ")
        .map(|s| s.trim_matches(|c| c == '`' || c == ' ').to_string())
        .collect();
    did_you_mean(name, expected.iter().map(String::as_str))
}

/// The largest Workflowfile or include dbflow reads. Real ones are a few KB; the limit
/// keeps a file that is not one (a log, a device) from growing memory without bound.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

fn read(path: &Path) -> Result<String, Diagnostic> {
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

/// Why an include must not be read: it resolves outside the project folder `root`, or is
/// not a regular file. Checked before the file is opened, so that nothing of it (not even
/// an error snippet) can reach the output: `include: [/proc/self/environ]` would otherwise
/// print the process environment.
fn include_refusal(included: &Path, root: &Path) -> Option<String> {
    let real = match included.canonicalize() {
        Ok(real) => real,
        Err(e) => return Some(format!("cannot be resolved ({e})")),
    };
    if !real.starts_with(root) {
        return Some(format!(
            "resolves outside the project folder {}",
            root.display()
        ));
    }
    match std::fs::metadata(&real) {
        Ok(meta) if meta.is_file() => None,
        Ok(_) => Some("is not a regular file".into()),
        Err(e) => Some(format!("cannot be read ({e})")),
    }
}

fn load_file(path: &Path, cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
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
    super::diagnostic::set_project_root(&real_root);
    let mut errors = Vec::new();
    let mut builder = Builder::default();
    let mut files = vec![Arc::clone(&file)];

    builder.add_tasks(&file, raw.tasks, &mut errors);
    builder.add_workflows(&file, raw.workflows, &mut errors);

    for pattern in &raw.include {
        let at = Loc::new(&file, &pattern.referenced);
        let full = root.join(&pattern.value);
        let full_text = full.to_string_lossy().to_string();
        let matches: Vec<PathBuf> = match glob::glob(&full_text) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                errors.push(Diagnostic::at(
                    at,
                    format!("bad include pattern `{}`: {e}", pattern.value),
                ));
                continue;
            }
        };
        if matches.is_empty() {
            errors.push(
                Diagnostic::at(at, format!("include `{}` matches no file", pattern.value))
                    .with_note(format!("looked for {full_text}")),
            );
            continue;
        }
        for included in matches {
            if let Some(why) = include_refusal(&included, &real_root) {
                errors.push(
                    Diagnostic::at(
                        at.clone(),
                        format!(
                            "include `{}`: {} {why}; dbflow does not read it",
                            pattern.value,
                            included.display()
                        ),
                    )
                    .with_help(
                        "include YAML files that live in the project, e.g. `workflows/*.yaml`",
                    ),
                );
                continue;
            }
            let inc_file = Arc::new(included.clone());
            files.push(Arc::clone(&inc_file));
            match read(&included).and_then(|t| parse_yaml::<RawInclude>(&inc_file, &t)) {
                Ok(inc) => {
                    builder.add_tasks(&inc_file, inc.tasks, &mut errors);
                    builder.add_workflows(&inc_file, inc.workflows, &mut errors);
                }
                Err(d) => errors.push(d),
            }
        }
    }

    let mut environments = IndexMap::new();
    let mut hook_tasks: Vec<&SStr> = Vec::new();
    let global_backups = raw.backups.as_ref();
    if let Some(b) = global_backups {
        hook_tasks.extend(b.stop_writes.iter().chain(b.switch_to_restored.iter()));
    }
    let backups = backup_settings(global_backups, &file, &mut errors);
    for env in raw.environments.values() {
        if let Some(b) = &env.value.backups {
            hook_tasks.extend(b.stop_writes.iter().chain(b.switch_to_restored.iter()));
        }
    }
    for task in hook_tasks {
        if !builder.tasks.contains_key(&task.value) {
            let names: Vec<&str> = builder.tasks.keys().map(String::as_str).collect();
            errors.push(
                Diagnostic::at(
                    Loc::new(&file, &task.referenced),
                    format!("backups hook names unknown task `{}`", task.value),
                )
                .with_help_opt(did_you_mean(&task.value, names.iter().copied())),
            );
        }
    }
    super::names::check_env_names(
        &file,
        raw.environments.keys().cloned(),
        &raw.aliases,
        &mut errors,
    );
    for (name, env) in raw.environments {
        let env_loc = Loc::new(&file, &name.referenced);
        let env = env.value;
        let env_backups = backup_overrides(env.backups.as_ref(), &file, &mut errors);
        let protection = env
            .protection
            .map(|p| p.value)
            .unwrap_or_else(|| Protection::from_env_name(&name.value));
        environments.insert(
            name.value.clone(),
            Environment {
                name: name.value.clone(),
                loc: Some(env_loc),
                url: env_url(
                    &file,
                    &name,
                    env.url.as_ref(),
                    env.fleet.is_some(),
                    &mut errors,
                ),
                direct_url: env.direct_url.as_ref().map(|u| text_of(&file, u)),
                protection,
                provider: env.provider.map(|p| p.value),
                description: env.description,
                vars: env
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), text_of(&file, v)))
                    .collect(),
                pooling: env.pooling.clone(),
                backups: env_backups,
                promotion: PromotionRules {
                    require_applied_on: env.require_applied_on.as_ref().map(|e| text_of(&file, e)),
                    ci_only: env
                        .deploy_from
                        .as_ref()
                        .filter(|d| d.value == DeployFrom::Ci)
                        .map(|d| Loc::new(&file, &d.referenced)),
                    ci_variable: env.ci_variable.as_ref().map(|v| v.value.clone()),
                    allow_deploy_outside_ci: env
                        .allow_deploy_outside_ci
                        .as_ref()
                        .map(|r| text_of(&file, r)),
                },
                drill_server_url: env
                    .drill
                    .as_ref()
                    .and_then(|d| d.server_url.as_ref())
                    .map(|u| text_of(&file, u)),
                fleet: env
                    .fleet
                    .as_ref()
                    .and_then(|f| super::fleet::build(&file, &name.value, f, &mut errors)),
            },
        );
    }

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
            .unwrap_or_else(|| super::model::DEFAULT_STATE_SCHEMA.into()),
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
    super::names::check_interpolation(&project, &mut errors);
    if errors.is_empty() {
        Ok(project)
    } else {
        Err(errors)
    }
}

fn migration_limits(
    raw: Option<&super::raw::RawMigrations>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> super::model::MigrationLimits {
    let mut duration = |value: Option<&SStr>| -> Option<std::time::Duration> {
        let value = value?;
        match humantime::parse_duration(&value.value) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(
                    Diagnostic::at(
                        Loc::new(file, &value.referenced),
                        format!("invalid duration `{}`: {e}", value.value),
                    )
                    .with_help("write a duration such as `5s`, `2m` or `1h`"),
                );
                None
            }
        }
    };
    super::model::MigrationLimits {
        lock_timeout: duration(raw.and_then(|r| r.lock_timeout.as_ref())),
        statement_timeout: duration(raw.and_then(|r| r.statement_timeout.as_ref())),
        lock_retries: raw.and_then(|r| r.lock_retries).unwrap_or(3),
        lock_wait: duration(raw.and_then(|r| r.lock_wait.as_ref()))
            .unwrap_or(std::time::Duration::from_secs(60)),
    }
}

fn backup_settings(
    raw: Option<&RawBackups>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> BackupSettings {
    let mut settings = BackupSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    settings.format = raw.format.unwrap_or(settings.format);
    if let Some(jobs) = &raw.jobs {
        settings.jobs = check_jobs(jobs, file, errors);
    }
    if let Some(r) = &raw.retention {
        settings.retention.daily = r.daily.unwrap_or(settings.retention.daily);
        settings.retention.weekly = r.weekly.unwrap_or(settings.retention.weekly);
        settings.retention.monthly = r.monthly.unwrap_or(settings.retention.monthly);
        if let Some(keep) = &r.keep_deploys {
            settings.retention.keep_deploys = check_keep_deploys(keep, file, errors);
        }
    }
    if let Some(timeout) = &raw.lock_wait_timeout {
        settings.lock_wait_timeout = check_lock_wait_timeout(timeout, file, errors);
    }
    settings.stop_writes = raw.stop_writes.as_ref().map(|t| t.value.clone());
    settings.switch_to_restored = raw.switch_to_restored.as_ref().map(|t| t.value.clone());
    settings.repository = raw
        .repository
        .as_ref()
        .map(|r| check_repository(r, file, errors));
    if let Some(e) = &raw.encryption {
        settings.recipients = check_recipients(e, file, errors);
    }
    settings
}

/// `backups.encryption.recipients`: each an `age1…` public key (an identity,
/// `AGE-SECRET-KEY-1…`, is refused without being echoed: it must never be in the file).
fn check_recipients(
    raw: &crate::config::raw::RawEncryption,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<String> {
    if raw.recipients.is_empty() {
        errors.push(Diagnostic::bare(format!(
            "{}: `backups.encryption.recipients` is empty: name at least one age1… public key",
            file.display()
        )));
    }
    for r in &raw.recipients {
        if let Err(why) = super::repository::recipient(&r.value) {
            errors.push(Diagnostic::at(Loc::new(file, &r.referenced), why).with_help(
                "`age-keygen -o key.txt` prints the public key (age1…) to put here; the key file stays with whoever restores",
            ));
        }
    }
    raw.recipients.iter().map(|r| r.value.clone()).collect()
}

/// `backups.repository`: checked here when it holds no `${VAR}` (interpolated ones are
/// checked when used, with the same messages).
fn check_repository(value: &SStr, file: &Arc<PathBuf>, errors: &mut Vec<Diagnostic>) -> String {
    if value.value.contains("${") && !value.value.contains("://") {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &value.referenced),
                "a folder `backups.repository` cannot use ${VAR}: write the folder, or an s3://, gs:// or az:// URL",
            )
            .with_help("object-storage URLs may use ${VAR}, e.g. `s3://${BACKUP_BUCKET}/dbflow`"),
        );
    } else if !value.value.contains("${") {
        if let Err(why) =
            super::repository::Location::parse(&value.value, std::path::Path::new("."))
        {
            errors.push(Diagnostic::at(Loc::new(file, &value.referenced), why).with_help(
                "e.g. `repository: s3://my-bucket/dbflow` (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, endpoint from AWS_ENDPOINT_URL), or a folder",
            ));
        }
    }
    value.value.clone()
}

fn backup_overrides(
    raw: Option<&RawEnvBackups>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> BackupOverrides {
    let Some(raw) = raw else {
        return BackupOverrides::default();
    };
    BackupOverrides {
        format: raw.format,
        jobs: raw.jobs.as_ref().map(|j| check_jobs(j, file, errors)),
        daily: raw.retention.as_ref().and_then(|r| r.daily),
        weekly: raw.retention.as_ref().and_then(|r| r.weekly),
        monthly: raw.retention.as_ref().and_then(|r| r.monthly),
        keep_deploys: raw
            .retention
            .as_ref()
            .and_then(|r| r.keep_deploys.as_ref())
            .map(|k| check_keep_deploys(k, file, errors)),
        lock_wait_timeout: raw
            .lock_wait_timeout
            .as_ref()
            .map(|t| check_lock_wait_timeout(t, file, errors)),
        stop_writes: raw.stop_writes.as_ref().map(|t| t.value.clone()),
        switch_to_restored: raw.switch_to_restored.as_ref().map(|t| t.value.clone()),
        repository: raw
            .repository
            .as_ref()
            .map(|r| check_repository(r, file, errors)),
        recipients: raw
            .encryption
            .as_ref()
            .map(|e| check_recipients(e, file, errors)),
    }
}

/// `retention.keep_deploys`: 0 would let `prune` delete the rollback point of the
/// deploy that just ran, the backup most needed after a bad deploy.
fn check_keep_deploys(
    keep: &Spanned<u32>,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> u32 {
    if keep.value == 0 {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &keep.referenced),
                "`keep_deploys` must be at least 1: the last deploy's pre-deploy backup is its rollback point",
            )
            .with_help("the default is 5; unwanted rollback points go with `dbflow backup prune` once newer deploys replace them"),
        );
        return 1;
    }
    keep.value
}

/// `backups.lock_wait_timeout`: a duration of at least one second (pg_dump would read 0
/// as "wait forever", the very hang the setting exists to prevent).
fn check_lock_wait_timeout(
    value: &SStr,
    file: &Arc<PathBuf>,
    errors: &mut Vec<Diagnostic>,
) -> std::time::Duration {
    let default = BackupSettings::default().lock_wait_timeout;
    match humantime::parse_duration(&value.value) {
        Ok(d) if d >= std::time::Duration::from_secs(1) => d,
        Ok(_) => {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &value.referenced),
                    format!("`lock_wait_timeout` `{}` is too short: use at least 1s", value.value),
                )
                .with_help("the default is 60s; pg_dump gives up (naming the session holding the lock) when a table stays locked this long"),
            );
            default
        }
        Err(e) => {
            errors.push(
                Diagnostic::at(
                    Loc::new(file, &value.referenced),
                    format!("invalid duration `{}`: {e}", value.value),
                )
                .with_help("write a duration such as `30s`, `2m` or `1h`"),
            );
            default
        }
    }
}

fn check_jobs(jobs: &Spanned<u32>, file: &Arc<PathBuf>, errors: &mut Vec<Diagnostic>) -> u32 {
    if jobs.value == 0 {
        errors.push(
            Diagnostic::at(
                Loc::new(file, &jobs.referenced),
                "`jobs` must be at least 1",
            )
            .with_help("1 dumps and restores with one process; 2–8 suits most servers"),
        );
        return 1;
    }
    jobs.value
}

fn lint_settings(
    raw: Option<&super::raw::RawLint>,
    file: &Arc<PathBuf>,
) -> super::model::LintSettings {
    let mut settings = super::model::LintSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    if let Some(rows) = raw.small_table_rows {
        settings.small_table_rows = rows;
    }
    settings.allow = raw
        .allow
        .iter()
        .map(|entry| super::model::LintAllow {
            migration: text_of(file, &entry.value.migration),
            rule: text_of(file, &entry.value.rule),
            reason: text_of(file, &entry.value.reason),
            loc: Loc::new(file, &entry.referenced),
        })
        .collect();
    settings
}

fn guard_config(raw: Option<&RawGuard>, file: &Arc<PathBuf>) -> GuardConfig {
    let Some(raw) = raw else {
        return GuardConfig::default();
    };
    let list = |ops: &Spanned<Vec<SStr>>| ForbiddenList {
        operations: ops.value.iter().map(|o| text_of(file, o)).collect(),
        loc: Loc::new(file, &ops.referenced),
    };
    let mut levels = Vec::new();
    if let Some(forbidden) = &raw.forbidden {
        for (level, ops) in [
            (Protection::Sandbox, &forbidden.sandbox),
            (Protection::Shared, &forbidden.shared),
            (Protection::Protected, &forbidden.protected),
        ] {
            if let Some(ops) = ops {
                levels.push((level, list(ops)));
            }
        }
    }
    GuardConfig {
        levels,
        environments: raw
            .environments
            .iter()
            .map(|(name, env)| (name.value.clone(), list(&env.forbidden)))
            .collect(),
    }
}

fn folder_name(root: &Path) -> String {
    root.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "project".into())
}

/// The project dbflow assumes when there is no Workflowfile: environments come from the
/// detection chain with `DATABASE_URL`, workflows are the built-in ones.
/// Where Prisma's CLI reads `.env` files, in its order: the project root, then the
/// folder of the schema (`prisma/`, the migrations folder's parent).
fn prisma_env_files(root: &Path, migrations_dir: &str) -> Vec<PathBuf> {
    let mut files = vec![root.join(".env")];
    if let Some(schema_dir) = Path::new(migrations_dir).parent() {
        if !schema_dir.as_os_str().is_empty() {
            files.push(root.join(schema_dir).join(".env"));
        }
    }
    files
}

fn zero_config(cwd: &Path) -> Result<Project, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut builder = Builder::default();
    for (name, text) in BUILTIN_WORKFLOWS {
        let file = Arc::new(PathBuf::from(format!("<builtin>/{name}")));
        match parse_yaml::<RawInclude>(&file, text) {
            Ok(inc) => {
                builder.add_tasks(&file, inc.tasks, &mut errors);
                builder.add_workflows(&file, inc.workflows, &mut errors);
            }
            Err(d) => errors.push(d),
        }
    }
    let env_files = prisma_env_files(cwd, "prisma/migrations")
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let project = Project {
        name: folder_name(cwd),
        root: PathBuf::from("."),
        file: None,
        files: Vec::new(),
        default_env: None,
        aliases: [("dev", "development"), ("prod", "production")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        env_files,
        sandbox_pattern: DEFAULT_SANDBOX_PATTERN.into(),
        migrations_dir: "prisma/migrations".into(),
        migrations_table: "_prisma_migrations".into(),
        state_schema: super::model::DEFAULT_STATE_SCHEMA.into(),
        shadow_url: None,
        migration_limits: migration_limits(None, &Arc::new(PathBuf::new()), &mut errors),
        lint: Default::default(),
        lua: Default::default(),
        backups_dir: "backups".into(),
        backups: BackupSettings::default(),
        metrics_textfile: None,
        drill: DrillSettings::default(),
        guard: GuardConfig::default(),
        environments: IndexMap::new(),
        implicit_environments: true,
        tasks: builder.tasks,
        workflows: builder.workflows,
    };
    validate::check_project(&project, &mut errors);
    if errors.is_empty() {
        Ok(project)
    } else {
        Err(errors)
    }
}

/// An environment's `url`; only one with a `fleet` may leave it out (its targets have
/// theirs), and then it is empty: commands on one database refuse the bare fleet.
fn env_url(
    file: &Arc<PathBuf>,
    name: &SStr,
    url: Option<&SStr>,
    fleet: bool,
    errors: &mut Vec<Diagnostic>,
) -> Text {
    match url {
        Some(url) => text_of(file, url),
        None => {
            if !fleet {
                errors.push(Diagnostic::at(
                    Loc::new(file, &name.referenced),
                    format!("environment `{}` has no `url` (and no `fleet`)", name.value),
                ));
            }
            Text {
                value: String::new(),
                loc: Loc::new(file, &name.referenced),
            }
        }
    }
}

fn text_of(file: &Arc<PathBuf>, s: &SStr) -> Text {
    Text {
        value: s.value.clone(),
        loc: Loc::new(file, &s.referenced),
    }
}

#[derive(Default)]
struct Builder {
    tasks: IndexMap<String, Task>,
    workflows: IndexMap<String, Workflow>,
}

impl Builder {
    fn add_tasks(
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

    fn add_workflows(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_gets_a_suggestion() {
        assert_eq!(
            unknown_name_help("unknown field `comand`, expected one of command, args, script"),
            Some("did you mean `command`?".into())
        );
        assert_eq!(
            unknown_name_help(
                "unknown variant `protectd`, expected one of `sandbox`, `shared`, `protected`"
            ),
            Some("did you mean `protected`?".into())
        );
    }
}
