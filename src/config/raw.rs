//! The Workflowfile as written: serde structs that mirror the YAML one to one, with
//! `Spanned` wherever a later check needs to point back at the source. Semantic checks
//! live in `validate`, not here. The format is specified in `docs/workflowfile.md`.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A string with its source location.
pub type SStr = Spanned<String>;

/// A step as written: one kind key (`task:`, `shell:`, …) plus the common keys.
pub type RawStep = Spanned<IndexMap<SStr, Spanned<serde_json::Value>>>;

/// The top-level `Workflowfile.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// Project name used in plans and docs.
    pub project: Option<SStr>,
    /// Environment used when nothing else decides.
    pub default_env: Option<SStr>,
    /// Alternative names: `dev: development`.
    #[serde(default)]
    pub aliases: IndexMap<SStr, SStr>,
    /// Further files with tasks and workflows (glob patterns, relative to this file).
    #[serde(default)]
    pub include: Vec<SStr>,
    /// Dotenv file read for interpolation (default `.env`, optional).
    pub env_file: Option<SStr>,
    /// Regex a database name must match for destructive operations.
    pub sandbox_pattern: Option<SStr>,
    /// Where the Prisma-layout migrations live.
    pub migrations: Option<RawMigrations>,
    /// Migration linter settings.
    pub lint: Option<RawLint>,
    /// Backup settings.
    pub backups: Option<RawBackups>,
    /// Lua extensions: where scripts live and the sandbox's limits.
    pub lua: Option<RawLua>,
    /// Prometheus textfile-collector metrics.
    pub metrics: Option<RawMetrics>,
    /// What restore drills validate.
    pub drill: Option<RawDrill>,
    /// Safety rails: which operations are forbidden where (see `dbflow check`).
    pub guard: Option<RawGuard>,
    /// The environments (local, staging, production, …).
    #[serde(default)]
    pub environments: IndexMap<SStr, Spanned<RawEnvironment>>,
    /// Tasks: shell commands with dependencies.
    #[serde(default)]
    pub tasks: IndexMap<SStr, Spanned<RawTask>>,
    /// Workflows: ordered steps.
    #[serde(default)]
    pub workflows: IndexMap<SStr, Spanned<RawWorkflow>>,
    /// Who to call when something goes wrong (rendered in the runbooks; environments
    /// may override it).
    pub contacts: Option<RawContacts>,
}

/// A file pulled in through `include:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInclude {
    /// Tasks defined in the included file.
    #[serde(default)]
    pub tasks: IndexMap<SStr, Spanned<RawTask>>,
    /// Workflows defined in the included file.
    #[serde(default)]
    pub workflows: IndexMap<SStr, Spanned<RawWorkflow>>,
}

/// `migrations:` settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMigrations {
    /// Folder holding `<timestamp>_<name>/migration.sql` (default `prisma/migrations`).
    pub dir: Option<SStr>,
    /// History table (default `_prisma_migrations`).
    pub table: Option<SStr>,
    /// Schema for dbflow's own tables on PostgreSQL (default `dbflow`).
    pub state_schema: Option<SStr>,
    /// Server for the scratch database `migrate status --shadow` builds the expected
    /// schema in (default: the environment's own server), like Prisma's
    /// `shadowDatabaseUrl`. Interpolated (`${SHADOW_DATABASE_URL}`).
    pub shadow_url: Option<SStr>,
    /// `lock_timeout` set for each migration (default `5s` on shared and protected
    /// environments, none on sandbox).
    pub lock_timeout: Option<SStr>,
    /// `statement_timeout` set for each migration (default none).
    pub statement_timeout: Option<SStr>,
    /// How often a migration that failed only on `lock_timeout` is retried (default 3).
    pub lock_retries: Option<u32>,
    /// How long to wait for another deploy's advisory lock (default `60s`).
    pub lock_wait: Option<SStr>,
}

/// `lint:` settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLint {
    /// Below this many rows (when the database is read), lock findings are warnings
    /// (default 10000; 0 disables).
    pub small_table_rows: Option<u64>,
    /// Findings allowed without touching the migration file.
    #[serde(default)]
    pub allow: Vec<Spanned<RawLintAllow>>,
}

/// One `lint.allow` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLintAllow {
    /// Migration folder name.
    pub migration: SStr,
    /// Rule id.
    pub rule: SStr,
    /// Why it is safe.
    pub reason: SStr,
}

/// `lua:` settings.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLua {
    /// Provider scripts (default `scripts-lua/providers`).
    pub providers_dir: Option<String>,
    /// Step kind scripts (default `scripts-lua/steps`).
    pub steps_dir: Option<String>,
    /// Allow `dbflow.exec{shell=true}` (default false).
    #[serde(default)]
    pub allow_shell: bool,
    /// Memory the Lua state may allocate, in MiB (default 64).
    pub memory_mib: Option<usize>,
    /// VM instructions per call (default 200 million).
    pub max_instructions: Option<u64>,
    /// Wall-clock time per call (default `2h`: provider waits poll for long).
    pub timeout: Option<SStr>,
}

/// `backups:` settings.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBackups {
    /// Folder for backups (default `backups`).
    pub dir: Option<SStr>,
    /// Where backups live: a folder, `file:///path`, `s3://bucket/prefix`, `gs://…` or
    /// `az://…` (default: the `dir` folder).
    pub repository: Option<SStr>,
    /// Client-side encryption of dumps in object storage.
    pub encryption: Option<RawEncryption>,
    /// `custom` (default, one file) or `directory` (parallel dump and restore).
    pub format: Option<DumpFormat>,
    /// Parallel jobs for the directory format (default 2).
    pub jobs: Option<Spanned<u32>>,
    /// How many backups `prune` keeps (default 7 daily, 4 weekly, 6 monthly, and the
    /// pre-deploy backups of the last 5 deploys).
    pub retention: Option<RawRetention>,
    /// How long pg_dump waits for a table lock before it gives up (default `60s`).
    pub lock_wait_timeout: Option<SStr>,
    /// Task run before an in-place restore, to stop the application writing.
    pub stop_writes: Option<SStr>,
    /// Task run by `rollback` to point the application at the restored database.
    pub switch_to_restored: Option<SStr>,
}

/// `environments.<name>.backups:`: the same keys as `backups:` except `dir`, overriding
/// them for one environment.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEnvBackups {
    /// Overrides `backups.repository`.
    pub repository: Option<SStr>,
    /// Overrides `backups.encryption`.
    pub encryption: Option<RawEncryption>,
    /// Overrides `backups.format`.
    pub format: Option<DumpFormat>,
    /// Overrides `backups.jobs`.
    pub jobs: Option<Spanned<u32>>,
    /// Overrides `backups.retention`, key by key.
    pub retention: Option<RawRetention>,
    /// Overrides `backups.lock_wait_timeout`.
    pub lock_wait_timeout: Option<SStr>,
    /// Overrides `backups.stop_writes`.
    pub stop_writes: Option<SStr>,
    /// Overrides `backups.switch_to_restored`.
    pub switch_to_restored: Option<SStr>,
}

/// `backups.encryption`: the `age` recipients (public keys, `age1…`) dumps are
/// encrypted to before they leave the machine.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEncryption {
    /// `age1…` public keys; any one of their identities decrypts.
    pub recipients: Vec<SStr>,
}

/// Grandfather-father-son retention: how many daily, weekly and monthly backups to keep,
/// and how many deploys keep their rollback point.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Newest backup of each of the last N days that have one.
    pub daily: Option<u32>,
    /// Newest backup of each of the last N ISO weeks that have one.
    pub weekly: Option<u32>,
    /// Newest backup of each of the last N months that have one.
    pub monthly: Option<u32>,
    /// The pre-deploy backup of each of the last N deploy runs (default 5, at least 1).
    pub keep_deploys: Option<Spanned<u32>>,
}

/// pg_dump output formats dbflow supports.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// `pg_dump --format=custom`: one compressed file.
    Custom,
    /// `pg_dump --format=directory`: one file per table, dumped and restored in parallel.
    Directory,
}

impl DumpFormat {
    /// The name as written in the Workflowfile.
    pub fn as_str(self) -> &'static str {
        match self {
            DumpFormat::Custom => "custom",
            DumpFormat::Directory => "directory",
        }
    }
}

/// `metrics:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// File for node_exporter's textfile collector (written atomically).
    pub textfile: SStr,
}

/// `drill:` settings: what a restore drill checks beyond "same tables".
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    /// Tables whose exact row counts must match the backup's.
    #[serde(default)]
    pub key_tables: Vec<SStr>,
    /// SQL queries that must return true on the restored copy.
    #[serde(default)]
    pub verify: Vec<SStr>,
    /// A PostgreSQL server (URL; its database is only used to connect) other than the
    /// primary's, where drills of protected environments restore; interpolated.
    pub server_url: Option<SStr>,
}

/// `environments.<name>.drill:`: where this environment's restore drills run.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEnvDrill {
    /// Overrides `drill.server_url` for this environment.
    pub server_url: Option<SStr>,
}

/// Where deploys to an environment may start from (`deploy_from:`).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeployFrom {
    /// Only from CI (`CI=true`, or the environment's `ci_variable` set).
    Ci,
    /// From anywhere (the default).
    Anywhere,
}

/// `guard:` settings: the operations forbidden per protection level and per environment.
/// A list given here replaces the built-in list for that level or environment.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// Forbidden operations per protection level.
    pub forbidden: Option<RawGuardLevels>,
    /// Forbidden operations per environment (replaces its level's list).
    #[serde(default)]
    pub environments: IndexMap<SStr, RawGuardEnvironment>,
}

/// `guard.forbidden`: one list per protection level.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGuardLevels {
    /// Forbidden on `sandbox` environments.
    pub sandbox: Option<Spanned<Vec<SStr>>>,
    /// Forbidden on `shared` environments.
    pub shared: Option<Spanned<Vec<SStr>>>,
    /// Forbidden on `protected` environments.
    pub protected: Option<Spanned<Vec<SStr>>>,
}

/// `guard.environments.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardEnvironment {
    /// Forbidden operations for this environment.
    pub forbidden: Spanned<Vec<SStr>>,
}

/// How careful dbflow must be with an environment's database.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Disposable: anything goes.
    Sandbox,
    /// Shared with other people (staging): no data-loss commands.
    Shared,
    /// Production: confirmation, backups first, no override unlocks it.
    Protected,
}

impl Protection {
    /// The level's name as written in the Workflowfile.
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::Sandbox => "sandbox",
            Protection::Shared => "shared",
            Protection::Protected => "protected",
        }
    }

    /// The level dbflow assumes for an environment known only by its name.
    pub fn from_env_name(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "production" | "prod" | "live" => Protection::Protected,
            "staging" | "stage" | "preprod" | "qa" | "uat" => Protection::Shared,
            _ => Protection::Sandbox,
        }
    }
}

/// One environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    /// Database URL (`postgres://…` or `sqlite:…`); interpolated. Optional with `fleet`.
    pub url: Option<SStr>,
    /// Direct (non-pooled) URL for migrations, locks and backups.
    pub direct_url: Option<SStr>,
    /// Protection level (default from the name: production → protected, staging → shared).
    pub protection: Option<Spanned<Protection>>,
    /// Lua provider name (aws_rds, gcp_cloudsql, …).
    pub provider: Option<SStr>,
    /// One line for `dbflow env` and the docs.
    pub description: Option<String>,
    /// Free values for templates; interpolated.
    #[serde(default)]
    pub vars: IndexMap<String, SStr>,
    /// Backup settings for this environment.
    pub backups: Option<RawEnvBackups>,
    /// A connection pooler (PgBouncer) in front of the database, for the generated
    /// `pgbouncer.<env>.ini` and compose override.
    pub pooling: Option<RawPooling>,
    /// Another environment every pending migration must already be applied on (same
    /// checksum) before a deploy here: `require_applied_on: staging`.
    pub require_applied_on: Option<SStr>,
    /// `ci`: deploys here are refused outside CI unless `DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1`.
    pub deploy_from: Option<Spanned<DeployFrom>>,
    /// A variable that also means "running in CI" when set (e.g. `GITHUB_ACTIONS`);
    /// `CI=true` always does.
    pub ci_variable: Option<SStr>,
    /// Why `DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1` may unlock a deploy to this protected
    /// environment outside CI (without it, the variable never does).
    pub allow_deploy_outside_ci: Option<SStr>,
    /// Where this environment's restore drills run.
    pub drill: Option<RawEnvDrill>,
    /// Many databases (tenants, regions, shards) instead of (or beside) one `url`.
    pub fleet: Option<Spanned<super::fleet::RawFleet>>,
    /// Overrides the top-level `contacts:` for this environment, key by key.
    pub contacts: Option<RawContacts>,
}

/// `contacts:`: who is on call and who to escalate to, in order. Documentation only:
/// dbflow renders it in the runbooks and never contacts anyone.
#[derive(Debug, Deserialize, Clone, Default, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawContacts {
    /// Who answers first (a rota, a pager service, a channel).
    pub on_call: Option<String>,
    /// Who to call next, in order, when the on-call person cannot fix it.
    #[serde(default)]
    pub escalation: Vec<String>,
}

/// `pooling:` of an environment.
#[derive(Debug, Deserialize, Clone, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPooling {
    /// `transaction` (default), `session` or `statement`.
    #[serde(default = "default_pool_mode")]
    pub mode: String,
    /// Port the pooler listens on (default 6432).
    #[serde(default = "default_pool_port")]
    pub port: u16,
    /// Server connections per database/user pair (default 20).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Client connections accepted (default 500).
    #[serde(default = "default_max_client_conn")]
    pub max_client_conn: u32,
}

fn default_pool_mode() -> String {
    "transaction".into()
}

fn default_pool_port() -> u16 {
    6432
}

fn default_pool_size() -> u32 {
    20
}

fn default_max_client_conn() -> u32 {
    500
}

/// A condition on the run (used by tasks' `condition` and steps' `when`). All given
/// parts must hold.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// The selected environment is one of these.
    #[serde(default)]
    pub environments: Vec<SStr>,
    /// The selected environment has one of these protection levels.
    #[serde(default)]
    pub protection: Vec<Protection>,
    /// These variables are set (and non-empty).
    #[serde(default)]
    pub env_set: Vec<String>,
    /// These variables are unset or empty.
    #[serde(default)]
    pub env_not_set: Vec<String>,
    /// These variables have exactly these values.
    #[serde(default)]
    pub env_equals: IndexMap<String, String>,
    /// The operating system is one of these (`linux`, `macos`, `windows`).
    #[serde(default)]
    pub platforms: Vec<Spanned<Platform>>,
}

/// Operating systems tasks can be specialised for.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Linux.
    Linux,
    /// macOS.
    Macos,
    /// Windows.
    Windows,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn current() -> Self {
        if cfg!(target_os = "windows") {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::Macos
        } else {
            Platform::Linux
        }
    }
}

/// A check that must pass before a task runs.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPrecondition {
    /// Shell command; the precondition holds when it exits 0.
    pub command: SStr,
    /// Shown when it does not hold.
    pub message: Option<String>,
}

/// A task, cargo-make style.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// One line for `dbflow list`.
    pub description: Option<String>,
    /// Group in `dbflow list`.
    pub category: Option<String>,
    /// Hidden from `dbflow list` and not runnable directly.
    #[serde(default)]
    pub private: bool,
    /// Program to run (with `args`), no shell involved.
    pub command: Option<SStr>,
    /// Arguments for `command`.
    #[serde(default)]
    pub args: Vec<SStr>,
    /// Shell script (run with `sh -c`, `cmd /C` on Windows).
    pub script: Option<SStr>,
    /// Extra environment variables; interpolated.
    #[serde(default)]
    pub env: IndexMap<String, SStr>,
    /// Working directory, relative to the project root.
    pub cwd: Option<SStr>,
    /// Tasks that run first (each once).
    #[serde(default)]
    pub dependencies: Vec<SStr>,
    /// Skip the task (saying why) unless this holds.
    pub condition: Option<RawCondition>,
    /// Commands that must succeed before the task runs.
    #[serde(default)]
    pub preconditions: Vec<RawPrecondition>,
    /// Input files (globs); with `generates`, the task is skipped when unchanged.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Output files (globs).
    #[serde(default)]
    pub generates: Vec<String>,
    /// Kill the command after this long (`30s`, `5m`).
    pub timeout: Option<SStr>,
    /// Linux-specific overrides.
    pub linux: Option<Box<RawTaskOverride>>,
    /// macOS-specific overrides.
    pub macos: Option<Box<RawTaskOverride>>,
    /// Windows-specific overrides.
    pub windows: Option<Box<RawTaskOverride>>,
}

/// Fields a platform override may replace.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTaskOverride {
    /// Replaces `command`.
    pub command: Option<SStr>,
    /// Replaces `args`.
    pub args: Option<Vec<SStr>>,
    /// Replaces `script`.
    pub script: Option<SStr>,
    /// Merged over `env`.
    #[serde(default)]
    pub env: IndexMap<String, SStr>,
    /// Replaces `cwd`.
    pub cwd: Option<SStr>,
}

/// A workflow: ordered steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkflow {
    /// One line for `dbflow list`.
    pub description: Option<String>,
    /// Group in `dbflow list`.
    pub category: Option<String>,
    /// Hidden from `dbflow list`.
    #[serde(default)]
    pub private: bool,
    /// `abort` (default), `continue`, or a workflow to run when a step fails.
    pub on_failure: Option<SStr>,
    /// Every `deploy` step of this workflow refuses (exit 3) unless a verified backup
    /// younger than this exists.
    pub max_backup_age: Option<SStr>,
    /// Why this workflow may deploy to a protected environment without a backup step
    /// before its deploy step and a verify step after it.
    pub allow_unguarded_deploy: Option<SStr>,
    /// Why this workflow's task and shell steps may seed a protected environment (after a
    /// verified backup taken in the same run, and the word SEED typed).
    pub allow_seed: Option<SStr>,
    /// The steps, in order.
    pub steps: Vec<RawStep>,
}
