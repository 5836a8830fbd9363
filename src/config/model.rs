//! The validated project: what the rest of dbflow works with. Every node keeps the
//! location it came from so later errors can point at the source.

use super::diagnostic::Loc;
use super::raw::{DumpFormat, Protection, RawCondition, RawTask};
use indexmap::IndexMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A string from the Workflowfile that may contain `${VAR}` and knows where it was written.
#[derive(Debug, Clone)]
pub struct Text {
    /// The text as written (not yet interpolated).
    pub value: String,
    /// Where it was written.
    pub loc: Loc,
}

/// Where dbflow keeps its own state when `migrations.state_schema` is not set: a schema
/// of its own, so the app's schema (what `prisma migrate dev` and `prisma db pull` read)
/// holds only the app's objects.
pub const DEFAULT_STATE_SCHEMA: &str = "dbflow";

/// The whole loaded project.
#[derive(Debug)]
pub struct Project {
    /// Project name (from `project:`, else the folder name).
    pub name: String,
    /// Folder commands run in and relative paths are resolved against.
    pub root: PathBuf,
    /// The Workflowfile, or `None` when running zero-config.
    pub file: Option<Arc<PathBuf>>,
    /// Every file read (Workflowfile and includes), for `dbflow validate`.
    pub files: Vec<Arc<PathBuf>>,
    /// Environment used when nothing else decides.
    pub default_env: Option<Text>,
    /// Alias → environment name.
    pub aliases: IndexMap<String, String>,
    /// Dotenv files for interpolation that exist, in reading order: `env_file` when
    /// declared, else Prisma's `.env` and `<schema folder>/.env` (`prisma/.env`).
    pub env_files: Vec<PathBuf>,
    /// Regex a database name must match for destructive operations.
    pub sandbox_pattern: String,
    /// Migrations folder, relative to `root`.
    pub migrations_dir: String,
    /// Migration history table.
    pub migrations_table: String,
    /// Schema for dbflow's own tables on PostgreSQL (`migrations.state_schema`).
    pub state_schema: String,
    /// Server for scratch (shadow) databases (`migrations.shadow_url`, Prisma's
    /// `shadowDatabaseUrl`); `None`: the environment's own server.
    pub shadow_url: Option<Text>,
    /// Lock and timeout settings for applying migrations.
    pub migration_limits: MigrationLimits,
    /// Migration linter settings (`lint:`).
    pub lint: LintSettings,
    /// Backups folder, relative to `root`.
    pub backups_dir: String,
    /// Lua settings as written (defaults applied by the Lua host).
    pub lua: super::raw::RawLua,
    /// Backup settings (`backups:`); environments may override them.
    pub backups: BackupSettings,
    /// Prometheus textfile written after backups, drills and deploys (relative to `root`).
    pub metrics_textfile: Option<String>,
    /// What restore drills (and restores) validate.
    pub drill: DrillSettings,
    /// Safety rails configured in the Workflowfile (`guard:`).
    pub guard: GuardConfig,
    /// Declared environments, in file order.
    pub environments: IndexMap<String, Environment>,
    /// True when environments are synthesised from the detection chain (zero-config).
    pub implicit_environments: bool,
    /// Tasks by name.
    pub tasks: IndexMap<String, Task>,
    /// Workflows by name.
    pub workflows: IndexMap<String, Workflow>,
}

/// `lint:` as written; rule ids are checked against the linter's at load time
/// (`lint::validate_settings`), so they stay plain text here.
#[derive(Debug, Clone)]
pub struct LintSettings {
    /// Below this many rows, lock findings are warnings (0: never).
    pub small_table_rows: u64,
    /// `lint.allow` entries.
    pub allow: Vec<LintAllow>,
}

impl Default for LintSettings {
    fn default() -> Self {
        LintSettings {
            small_table_rows: 10_000,
            allow: Vec::new(),
        }
    }
}

/// One `lint.allow` entry.
#[derive(Debug, Clone)]
pub struct LintAllow {
    /// Migration folder name.
    pub migration: Text,
    /// Rule id.
    pub rule: Text,
    /// Why it is safe.
    pub reason: Text,
    /// Where the entry starts.
    pub loc: Loc,
}

/// `guard:` as written: operation names are checked against the guard's list at load
/// time (`guard::validate`), so they stay plain text here.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Forbidden operations per protection level (replacing the built-in list).
    pub levels: Vec<(Protection, ForbiddenList)>,
    /// Forbidden operations per environment (replacing its level's list).
    pub environments: IndexMap<String, ForbiddenList>,
}

/// A list of forbidden operations and where it was written.
#[derive(Debug, Clone)]
pub struct ForbiddenList {
    /// Operation names as written.
    pub operations: Vec<Text>,
    /// Where the list was written.
    pub loc: Loc,
}

/// Lock and timeout settings for applying migrations (durations already parsed).
#[derive(Debug, Clone, Default)]
pub struct MigrationLimits {
    /// `lock_timeout` per migration; `None` = the default for the protection level.
    pub lock_timeout: Option<std::time::Duration>,
    /// `statement_timeout` per migration.
    pub statement_timeout: Option<std::time::Duration>,
    /// Retries of a migration that failed only on `lock_timeout`.
    pub lock_retries: u32,
    /// How long to wait for the deploy lock.
    pub lock_wait: std::time::Duration,
}

/// How backups are taken, kept and restored (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// pg_dump format.
    pub format: DumpFormat,
    /// Parallel jobs (directory format).
    pub jobs: u32,
    /// GFS retention.
    pub retention: Retention,
    /// How long pg_dump waits for a table lock (`--lock-wait-timeout`).
    pub lock_wait_timeout: std::time::Duration,
    /// Task that stops the application writing, run before an in-place restore.
    pub stop_writes: Option<String>,
    /// Task that points the application at a restored database (`rollback`).
    pub switch_to_restored: Option<String>,
    /// `backups.repository` as written (interpolated when used); `None`: the
    /// `backups.dir` folder.
    pub repository: Option<String>,
    /// `backups.encryption.recipients` (checked `age1…` keys); empty: not encrypted.
    pub recipients: Vec<String>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            format: DumpFormat::Custom,
            jobs: 2,
            retention: Retention::default(),
            lock_wait_timeout: std::time::Duration::from_secs(60),
            stop_writes: None,
            switch_to_restored: None,
            repository: None,
            recipients: Vec::new(),
        }
    }
}

/// Grandfather-father-son retention counts, and how many deploys keep their rollback
/// point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Retention {
    /// Newest backup of each of the last N days that have one.
    pub daily: u32,
    /// Newest backup of each of the last N ISO weeks that have one.
    pub weekly: u32,
    /// Newest backup of each of the last N months that have one.
    pub monthly: u32,
    /// The pre-deploy backup of each of the last N deploy runs.
    pub keep_deploys: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: 7,
            weekly: 4,
            monthly: 6,
            keep_deploys: 5,
        }
    }
}

/// Per-environment overrides of [`BackupSettings`] (`environments.<name>.backups`).
#[derive(Debug, Clone, Default)]
pub struct BackupOverrides {
    /// Replaces the format.
    pub format: Option<DumpFormat>,
    /// Replaces the jobs.
    pub jobs: Option<u32>,
    /// Replace the retention counts given.
    pub daily: Option<u32>,
    /// See `daily`.
    pub weekly: Option<u32>,
    /// See `daily`.
    pub monthly: Option<u32>,
    /// See `daily`.
    pub keep_deploys: Option<u32>,
    /// Replaces the lock wait timeout.
    pub lock_wait_timeout: Option<std::time::Duration>,
    /// Replaces the stop_writes task.
    pub stop_writes: Option<String>,
    /// Replaces the switch_to_restored task.
    pub switch_to_restored: Option<String>,
    /// Replaces the repository.
    pub repository: Option<String>,
    /// Replaces the encryption recipients.
    pub recipients: Option<Vec<String>>,
}

/// What a restore drill validates besides the table list and the migration status.
#[derive(Debug, Clone, Default)]
pub struct DrillSettings {
    /// Tables whose exact row counts must equal the backup's.
    pub key_tables: Vec<String>,
    /// SQL queries that must return true on the restored copy.
    pub verify: Vec<String>,
    /// Another server for drills of protected environments (`drill.server_url`).
    pub server_url: Option<Text>,
}

impl Project {
    /// The server drills of `env` restore onto, when one is configured (the
    /// environment's `drill.server_url`, else the project's), not yet interpolated.
    pub fn drill_server_url(&self, env: &str) -> Option<&Text> {
        self.environments
            .get(super::fleet::base_env(env))
            .and_then(|e| e.drill_server_url.as_ref())
            .or(self.drill.server_url.as_ref())
    }

    /// The backup settings of environment `env`: `backups:` with the environment's
    /// overrides applied.
    pub fn backup_settings(&self, env: &str) -> BackupSettings {
        // A fleet target (`production/acme`) has its environment's settings.
        let env = super::fleet::base_env(env);
        let mut settings = self.backups.clone();
        if let Some(o) = self.environments.get(env).map(|e| &e.backups) {
            settings.format = o.format.unwrap_or(settings.format);
            settings.jobs = o.jobs.unwrap_or(settings.jobs);
            settings.retention.daily = o.daily.unwrap_or(settings.retention.daily);
            settings.retention.weekly = o.weekly.unwrap_or(settings.retention.weekly);
            settings.retention.monthly = o.monthly.unwrap_or(settings.retention.monthly);
            settings.retention.keep_deploys =
                o.keep_deploys.unwrap_or(settings.retention.keep_deploys);
            settings.lock_wait_timeout = o.lock_wait_timeout.unwrap_or(settings.lock_wait_timeout);
            if o.stop_writes.is_some() {
                settings.stop_writes = o.stop_writes.clone();
            }
            if o.switch_to_restored.is_some() {
                settings.switch_to_restored = o.switch_to_restored.clone();
            }
            if o.repository.is_some() {
                settings.repository = o.repository.clone();
            }
            if let Some(recipients) = &o.recipients {
                settings.recipients = recipients.clone();
            }
        }
        settings
    }
}

/// One declared environment (values not yet interpolated).
#[derive(Debug, Clone)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// Where it was declared (`None` when synthesised).
    pub loc: Option<Loc>,
    /// Database URL template.
    pub url: Text,
    /// Direct (non-pooled) URL template.
    pub direct_url: Option<Text>,
    /// Protection level.
    pub protection: Protection,
    /// Lua provider name.
    pub provider: Option<String>,
    /// One-line description.
    pub description: Option<String>,
    /// Free template values.
    pub vars: IndexMap<String, Text>,
    /// Pooler in front of the database, if declared.
    pub pooling: Option<super::raw::RawPooling>,
    /// Backup settings that differ from `backups:`.
    pub backups: BackupOverrides,
    /// Promotion and origin rules for deploys here.
    pub promotion: PromotionRules,
    /// `drill.server_url` of this environment (overrides the project's).
    pub drill_server_url: Option<Text>,
    /// Its fleet of target databases, when it declares one.
    pub fleet: Option<super::fleet::Fleet>,
}

/// Rules on where a deploy to an environment comes from (`require_applied_on`,
/// `deploy_from`, `ci_variable`, `allow_deploy_outside_ci`).
#[derive(Debug, Clone, Default)]
pub struct PromotionRules {
    /// The environment every pending migration must already be applied on.
    pub require_applied_on: Option<Text>,
    /// Set when `deploy_from: ci`: where it was written.
    pub ci_only: Option<Loc>,
    /// A variable that also means "running in CI" when set.
    pub ci_variable: Option<String>,
    /// Why `DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1` may unlock a protected environment.
    pub allow_deploy_outside_ci: Option<Text>,
}

/// A task and where it was defined.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its name.
    pub name: String,
    /// Where it was defined.
    pub loc: Loc,
    /// Its definition as written.
    pub def: RawTask,
}

/// A condition plus the file it was written in (to locate its parts).
#[derive(Debug, Clone)]
pub struct Condition {
    /// The condition as written.
    pub raw: RawCondition,
    /// Where it was written.
    pub loc: Loc,
}

/// What happens when a step (or a workflow) fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Stop the workflow (the default).
    Abort,
    /// Record the failure and go on with the next step.
    Continue,
    /// Run this workflow, then stop.
    Workflow(String),
}

impl FailurePolicy {
    /// Parses `abort`, `continue` or a workflow name.
    pub fn parse(value: &str) -> Self {
        match value {
            "abort" => FailurePolicy::Abort,
            "continue" => FailurePolicy::Continue,
            other => FailurePolicy::Workflow(other.to_string()),
        }
    }

    /// The policy as written.
    pub fn label(&self) -> String {
        match self {
            FailurePolicy::Abort => "abort".into(),
            FailurePolicy::Continue => "continue".into(),
            FailurePolicy::Workflow(name) => format!("run workflow `{name}`"),
        }
    }
}

/// A workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// Where it was defined.
    pub loc: Loc,
    /// One-line description.
    pub description: Option<String>,
    /// Group in `dbflow list`.
    pub category: Option<String>,
    /// Hidden from `dbflow list`.
    pub private: bool,
    /// Workflow-level failure policy and where it was written.
    pub on_failure: Option<(FailurePolicy, Loc)>,
    /// `max_backup_age` as written (already checked to be a duration), applied to every
    /// `deploy` step of the workflow that does not set its own.
    pub max_backup_age: Option<String>,
    /// Why it may deploy to a protected environment without backup and verify steps.
    pub allow_unguarded_deploy: Option<Text>,
    /// Why its task and shell steps may seed a protected environment.
    pub allow_seed: Option<Text>,
    /// The steps, in order.
    pub steps: Vec<StepDef>,
}

/// A step as declared: its kind, raw parameters (validated by the step registry) and
/// the common keys.
#[derive(Debug, Clone)]
pub struct StepDef {
    /// Identifier for outputs and the journal (`id:`, else `<kind>-<n>`).
    pub id: String,
    /// Display name (`name:`), if any.
    pub name: Option<String>,
    /// Step kind (`task`, `shell`, …).
    pub kind: String,
    /// Where the kind key was written.
    pub kind_loc: Loc,
    /// Parameters as written (not yet interpolated).
    pub params: serde_json::Value,
    /// Where the parameters were written.
    pub params_loc: Loc,
    /// Run only when this holds.
    pub when: Option<Condition>,
    /// Step-level failure policy and where it was written.
    pub on_failure: Option<(FailurePolicy, Loc)>,
    /// Where the step starts.
    pub loc: Loc,
}

impl StepDef {
    /// The name people see: `name:` or the kind and its short parameter.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match &self.params {
            serde_json::Value::String(s) => format!("{} {}", self.kind, first_line(s)),
            _ => self.kind.clone(),
        }
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(59).collect::<String>())
    } else {
        line.to_string()
    }
}

/// The `contacts:` of every environment: the top-level ones with each environment's
/// overrides applied. Contacts are documentation only, so they are read from the
/// Workflowfile when the docs are rendered rather than carried by every [`Project`];
/// their shape was checked when the file was loaded (`RawFile::contacts`).
#[derive(Debug, Clone, Default)]
pub struct ProjectContacts {
    /// `contacts:` at the top level.
    pub default: super::raw::RawContacts,
    /// `environments.<name>.contacts:`.
    pub environments: IndexMap<String, super::raw::RawContacts>,
}

impl ProjectContacts {
    /// Reads `contacts:` from the project's Workflowfile (none for a zero-config project).
    pub fn read(project: &Project) -> Result<Self, super::Diagnostic> {
        #[derive(serde::Deserialize)]
        struct File {
            contacts: Option<super::raw::RawContacts>,
            #[serde(default)]
            environments: IndexMap<String, Env>,
        }
        #[derive(serde::Deserialize)]
        struct Env {
            contacts: Option<super::raw::RawContacts>,
        }
        let Some(path) = &project.file else {
            return Ok(Self::default());
        };
        let text = super::load::read_limited(path, super::load::MAX_CONFIG_BYTES)?;
        let file: File = serde_saphyr::from_str(&text)
            .map_err(|e| super::Diagnostic::bare(format!("{}: contacts: {e}", path.display())))?;
        Ok(ProjectContacts {
            default: file.contacts.unwrap_or_default(),
            environments: file
                .environments
                .into_iter()
                .filter_map(|(name, env)| env.contacts.map(|c| (name, c)))
                .collect(),
        })
    }

    /// The contacts of `env`: its own keys where it sets them, else the top-level ones.
    pub fn for_env(&self, env: &str) -> super::raw::RawContacts {
        let mut out = self.default.clone();
        if let Some(own) = self.environments.get(env) {
            if own.on_call.is_some() {
                out.on_call = own.on_call.clone();
            }
            if !own.escalation.is_empty() {
                out.escalation = own.escalation.clone();
            }
        }
        out
    }
}
