//! Command-line definitions (clap). Doc comments here are the `--help` text.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// dbflow: executable database runbooks. Environments, tasks and workflows from one
/// Workflowfile.yaml; guard → backup → status → deploy → verify, with a journal of
/// every run.
#[derive(Debug, Parser)]
#[command(name = "dbflow", version, about, long_about = None, propagate_version = true,
    after_help = "Examples:
  dbflow list                                   # workflows and tasks
  dbflow run deploy --env staging --dry-run
  dbflow migrate status --env production --json")]
pub struct Cli {
    /// Workflowfile to use (default: the nearest Workflowfile.yaml upward from here).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Target environment (overrides DBFLOW_ENV, DATABASE_ENV, NODE_ENV, default_env).
    #[arg(short = 'e', long = "env", global = true, value_name = "ENV")]
    pub env: Option<String>,

    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// When to colour output: auto (terminals only; NO_COLOR and CLICOLOR_FORCE are
    /// honoured), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = crate::ui::color::ColorWhen::Auto)]
    pub color: crate::ui::color::ColorWhen,
    /// List everything instead of a summary: every migration a long deploy applies,
    /// every row of a long status, every statement of a protected preview, every lint
    /// finding of a deploy.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,

    /// Fleet targets to work on (repeatable; globs such as `canary-*`): narrows a fleet
    /// run, or picks the one database a single-database command works on.
    #[arg(long = "target", global = true, value_name = "NAME")]
    pub target: Vec<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `dbflow restore list|drop`.
#[derive(Debug, Subcommand)]
pub enum RestoreAction {
    /// The databases dbflow made beside the environment's database and left there:
    /// restored copies, databases an in-place restore kept aside, kept drill copies.
    List,
    /// Drop such a database (never the environment's own; asks first, or --yes).
    Drop {
        /// The database to drop (from `dbflow restore list`).
        #[arg(required_unless_present = "older_than", conflicts_with = "older_than")]
        name: Option<String>,
        /// Drop every one older than this (`7d`, `12h`).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Answer yes (required when not interactive).
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List tasks and workflows with their descriptions, grouped by category.
    List {
        /// Include private tasks and workflows.
        #[arg(long)]
        all: bool,
    },
    /// Run a workflow or a task.
    #[command(after_help = "Examples:
  dbflow run deploy --env staging --dry-run     # print the plan, run nothing
  dbflow run deploy --env production --yes      # unattended (CI, after an approval)
  dbflow run drill --env staging --json | jq .result")]
    Run {
        /// Workflow or task name.
        name: String,
        /// Print the plan (every command, interpolated and redacted) and stop.
        #[arg(long)]
        dry_run: bool,
        /// Answer yes to confirmations (required when not interactive).
        #[arg(short = 'y', long)]
        yes: bool,
        /// The word typed confirmations ask for, for non-interactive runs: SEED for a
        /// seed a workflow sanctions on a protected environment (`--yes` never answers it).
        #[arg(long, value_name = "WORD")]
        confirm: Option<String>,
        /// With --yes: a rollback may point the application at the restored database
        /// (`backups.switch_to_restored`) without a person; without it, dbflow asks, or
        /// prints the decision and the commands.
        #[arg(long, requires = "yes")]
        cut_over: bool,
        /// Over a fleet: waves, concurrency, resume, shards.
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// List the targets of a fleet environment (names and redacted URLs).
    #[command(after_help = "Examples:
  dbflow targets --env production
  dbflow targets --env production --target 'eu-*' --shard 1/4")]
    Targets {
        /// Only the targets of this shard (`I/N`, or `auto/N` with JOB_COMPLETION_INDEX).
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
    },
    /// Fleet runs: merge the journals of a run's shards into one summary.
    Fleet {
        /// What to do.
        #[command(subcommand)]
        action: FleetAction,
    },
    /// Show the detected environment, what decided it, and its (redacted) URL.
    Env,
    /// Check the Workflowfile, its includes and every step without running anything.
    Validate,
    /// Show past runs from the journal.
    Runs {
        /// Show the most recent run in full.
        #[arg(long, conflicts_with = "id")]
        last: bool,
        /// Show this run in full.
        id: Option<String>,
    },
    /// Render the runbooks and compose overrides from templates/ (Tera).
    Docs {
        /// Folder to write into (default: docs/generated beside the Workflowfile).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write the HTML site (every environment's runbook and restore drill, each
        /// workflow's flowchart as SVG; no JavaScript) into DIR. `dbflow docs` refreshes
        /// docs/site and `--check` checks it when that folder exists.
        #[arg(long, value_name = "DIR", conflicts_with = "env")]
        site: Option<PathBuf>,
        /// Render in memory and fail (exit 1) with a diff when the files on disk differ.
        #[arg(long)]
        check: bool,
        /// Render for every environment (the default unless --env is given).
        #[arg(long, conflicts_with = "env")]
        all: bool,
    },
    /// Migrations: status, deploy, resolve, down, new (Prisma-compatible).
    #[command(after_help = "Examples:
  dbflow migrate status --env staging           # exit 4 when something is pending
  dbflow migrate deploy --env production --yes
  dbflow migrate new add_user_nickname --down")]
    Migrate {
        /// What to do.
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Backups: create (verified before it counts), list, verify, prune (GFS retention).
    #[command(after_help = "Examples:
  dbflow backup create --env production --label before-release
  dbflow backup list --env production
  dbflow backup prune --env production --dry-run")]
    Backup {
        /// What to do.
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Restore a verified backup into a NEW database (`<db>_restore_<ts>` unless --into);
    /// in place only with --in-place, where the guard allows `restore-in-place`, and the
    /// word RESTORE typed: restored beside, validated, then swapped in under the deployers'
    /// lock (the old database kept aside). Without ID, in a terminal, offers the verified
    /// backups. `restore list` / `restore drop` manage the copies.
    #[command(args_conflicts_with_subcommands = true)]
    #[command(after_help = "Examples:
  dbflow restore latest --env staging           # into <db>_restore_<timestamp>
  dbflow restore latest --into app_copy --env staging
  dbflow restore latest --in-place --confirm RESTORE --env staging")]
    Restore {
        /// `list` or `drop` the databases dbflow restored or kept aside.
        #[command(subcommand)]
        action: Option<RestoreAction>,
        /// Backup id (a unique prefix is enough), or `latest`.
        id: Option<String>,
        /// Name of the new database (PostgreSQL) or file (SQLite).
        #[arg(long, value_name = "NAME", conflicts_with = "in_place")]
        into: Option<String>,
        /// Replace the environment's own database (asks for the word RESTORE).
        #[arg(long)]
        in_place: bool,
        /// The confirmation word, for non-interactive in-place restores: RESTORE.
        #[arg(long, value_name = "WORD", requires = "in_place")]
        confirm: Option<String>,
    },
    /// Roll back after a bad deploy: restore the backup a deploy run took (or the newest
    /// verified one before it) into a new database, optionally re-apply the migrations
    /// before the bad one, validate; pointing the application at it (the cut-over) needs
    /// a person, or --yes --cut-over.
    #[command(after_help = "Examples:
  dbflow runs --env production                  # the bad deploy's run id
  dbflow rollback --run <RUN_ID> --env production
  dbflow rollback --run <RUN_ID> --to 20250102000000_bad --yes --cut-over --env staging")]
    Rollback {
        /// The deploy run whose backup to restore (from `dbflow runs`): the one it took
        /// before deploying, else the newest verified one taken before it started (by
        /// the database server's clock), never a later one.
        #[arg(long, value_name = "RUN_ID", conflicts_with = "backup")]
        run: Option<String>,
        /// The backup to restore instead.
        #[arg(long, value_name = "ID")]
        backup: Option<String>,
        /// After restoring, apply the pending migrations up to but excluding MIGRATION
        /// (the bad one).
        #[arg(long, value_name = "MIGRATION")]
        to: Option<String>,
        /// Name of the new database.
        #[arg(long, value_name = "NAME", conflicts_with = "in_place")]
        into: Option<String>,
        /// Restore over the environment's own database (asks for the word RESTORE).
        #[arg(long)]
        in_place: bool,
        /// The confirmation word, for non-interactive in-place rollbacks: RESTORE.
        #[arg(long, value_name = "WORD", requires = "in_place")]
        confirm: Option<String>,
        /// Answer yes to confirmations (the cut-over also needs --cut-over).
        #[arg(short = 'y', long)]
        yes: bool,
        /// With --yes: point the application at the restored database
        /// (`backups.switch_to_restored`) without a person typing the confirmation.
        #[arg(long, requires = "yes")]
        cut_over: bool,
    },
    /// Restore drill: back up, restore into `<db>_restore_drill_<ts>`, validate (tables,
    /// key row counts, migration status, drill.verify), drop, and append the report
    /// (PASS/FAIL, RPO, RTO) to `<backups.dir>/drills/`. The primary is only read.
    #[command(after_help = "Examples:
  dbflow drill --env staging
  dbflow drill --backup latest --keep --env production")]
    Drill {
        /// Keep the drill database instead of dropping it.
        #[arg(long)]
        keep: bool,
        /// Drill an existing backup (an id, or `latest`) instead of taking a fresh one.
        #[arg(long, value_name = "ID")]
        backup: Option<String>,
    },
    /// Is an operation or command line allowed on the environment? Answers ALLOWED (exit
    /// 0) or BLOCKED (exit 3) with the rule and the reason.
    ///
    /// WHAT is an operation name (migrate-dev, db-push, db-push-accept-data-loss,
    /// db-push-force-reset, migrate-reset, seed, drop-database, restore-in-place, deploy,
    /// migrate-down, migrate-resolve, db-execute) or a command line such as
    /// "npx prisma migrate reset" or "pnpm prisma db push --accept-data-loss".
    /// Overrides for one run: DBFLOW_ALLOW_<OPERATION>=1 (the forbidden rule) and
    /// DBFLOW_ALLOW_<OPERATION>_ANY_DB=1 (the sandbox-name rule); none unlocks a protected
    /// environment.
    #[command(after_help = "Examples:
  dbflow check migrate-reset --env production
  dbflow check 'npx prisma db push --accept-data-loss' --env staging")]
    Check {
        /// Operation name or command line (quote it).
        what: String,
    },
    /// Lint migration SQL on PostgreSQL's grammar: risky statements, the lock each takes,
    /// and the safe way instead. Exit 1 when a finding is an error for the environment
    /// (warnings on sandbox, errors on shared and protected).
    #[command(after_help = "Examples:
  dbflow lint
  dbflow lint prisma/migrations/20250102000000_add_index --format github")]
    Lint {
        /// Files or folders (default: the migrations folder). Folders are searched for
        /// .sql files; down.sql files are linted only when named.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LintFormat::Human)]
        format: LintFormat,
        /// List the rules and stop.
        #[arg(long)]
        rules: bool,
        /// Lint only the migrations added or changed since this git ref (compared from
        /// its merge base with HEAD to the working tree, uncommitted files included).
        #[arg(long, value_name = "GIT_REF", conflicts_with_all = ["paths", "pending"])]
        since: Option<String>,
        /// Lint only the migrations not yet applied on the environment (reads its
        /// database).
        #[arg(long, conflicts_with = "paths")]
        pending: bool,
        /// Lint the SQL alone: do not read the environment's database (table sizes,
        /// which tables exist) even when --env names one that is reachable.
        #[arg(long = "static", conflicts_with = "pending")]
        static_only: bool,
    },
    /// Scan changed files for dangerous database operations (DROP TABLE, TRUNCATE,
    /// DELETE without WHERE, prisma migrate reset, db push --accept-data-loss, migrate dev
    /// in deploy scripts). Exit 1 on a finding not allowed by a `dbflow:allow` comment.
    Scan {
        /// Scan what is staged for commit (the index), only the lines it changes.
        #[arg(long, conflicts_with = "paths")]
        staged: bool,
        /// Files or folders to scan whole (default: files changed since HEAD).
        paths: Vec<PathBuf>,
    },
    /// Git hooks.
    Hook {
        /// What to do.
        #[command(subcommand)]
        action: HookAction,
    },
    /// Scaffold Workflowfile.yaml, workflows/, templates/ and scripts-lua/ here.
    Init {
        /// Folder to initialise (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script (bash and fish also complete workflow, task and
    /// environment names from the Workflowfile).
    #[command(after_help = "Examples:
  source <(dbflow completions bash)                         # this bash session
  dbflow completions bash > ~/.local/share/bash-completion/completions/dbflow
  dbflow completions fish > ~/.config/fish/completions/dbflow.fish
  dbflow completions zsh > \"${fpath[1]}/_dbflow\"")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, or write one page per command into a folder.
    #[command(after_help = "Examples:
  dbflow man | man -l -
  dbflow man --out /usr/local/share/man/man1")]
    Man {
        /// Write `dbflow.1`, `dbflow-run.1`, … into this folder instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Names for shell completion, one per line (used by the completion scripts).
    #[command(name = "__names", hide = true)]
    Names {
        /// Which names.
        #[arg(value_enum)]
        kind: NamesKind,
    },
}

/// `dbflow run` options that apply when the environment is a fleet.
#[derive(Debug, Default, clap::Args)]
pub struct FleetArgs {
    /// Targets run at the same time (default `fleet.concurrency`, else 4).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Stop starting targets once more than this many failed: a count or `N%`
    /// (default `fleet.max_failures`, else 0: the first failure stops new starts).
    #[arg(long, value_name = "N|N%")]
    pub max_failures: Option<String>,
    /// Continue fleet run RUN_ID: targets that succeeded or failed are skipped, the
    /// interrupted and never-started ones run (each re-checked from its history table).
    #[arg(long, value_name = "RUN_ID", conflicts_with = "run_id")]
    pub resume: Option<String>,
    /// The fleet run id (default: a new one); give every shard the same one.
    #[arg(long, value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Only the targets whose stable hash falls in shard I of N (`auto/N`: I from
    /// JOB_COMPLETION_INDEX, as in a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `dbflow fleet …`
#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// One summary of a fleet run from its journal parts (every shard's): target,
    /// outcome, migrations applied, duration, backup id. Exit 1 when a target did not
    /// succeed.
    Summary {
        /// The fleet run id.
        run_id: String,
        /// Folders holding the run's journal parts (`.dbflow/fleets/RUN_ID/` copied
        /// from each machine); default: this project's `.dbflow/fleets/RUN_ID/`.
        #[arg(long, value_name = "DIR")]
        from: Vec<PathBuf>,
    },
}

/// What `dbflow __names` lists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NamesKind {
    /// Environments and their aliases.
    Environments,
    /// Workflows and tasks `dbflow run` accepts.
    Targets,
}

/// `dbflow backup …`
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Take a backup now: streamed to `<backups.dir>/<env>/<YYYYMMDD_HHMMSS>[_label]/`,
    /// verified, then cataloged.
    Create {
        /// Appended to the backup id (letters, digits, `-`, `_`).
        #[arg(long, value_name = "LABEL")]
        label: Option<String>,
        /// pg_dump format (default from `backups.format`, else custom).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Parallel jobs for the directory format (default from `backups.jobs`, else 2).
        #[arg(long, value_name = "N")]
        jobs: Option<u32>,
    },
    /// List the environment's backups, newest first: age, size, label, migration head,
    /// verification state, pins; flags backups dated in the future.
    List,
    /// Check a backup again: sha256 and that the archive reads back. A failure marks it.
    Verify {
        /// Backup id (a unique prefix is enough).
        id: String,
    },
    /// Copy a backup, with its manifest, to another repository (e.g. a folder to S3),
    /// hashed on the way and checked against its manifest before it is cataloged there.
    Copy {
        /// Backup id in the environment's repository.
        id: String,
        /// The destination repository: s3://bucket/prefix, gs://…, az://…, file:///path
        /// or a folder.
        #[arg(long, value_name = "REPO")]
        to: String,
    },
    /// Remove backups outside the retention (default 7 daily, 4 weekly, 6 monthly; the
    /// rollback points of the last 5 deploys, pinned backups and the newest verified one
    /// always stay).
    Prune {
        /// Only say what would be removed and why each kept backup stays.
        #[arg(long)]
        dry_run: bool,
    },
    /// Keep a backup whatever the retention says (`prune` never removes it).
    Pin {
        /// Backup id (a unique prefix is enough).
        id: String,
        /// Why it is kept (shown by `backup list` and `backup prune`).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Remove a backup's pin: the retention decides about it again.
    Unpin {
        /// Backup id (a unique prefix is enough).
        id: String,
    },
    /// Generate an age identity for `backups.encryption` into a new file (0600), in the
    /// format `age-keygen` writes, and print its public key (the recipient). The secret
    /// key is never printed: point DBFLOW_BACKUP_IDENTITY_FILE at the file to restore.
    Keygen {
        /// The identity file to create (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `--format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    /// One compressed file (`pg_dump --format=custom`).
    Custom,
    /// A folder, dumped and restored with parallel jobs.
    Directory,
}

/// Output formats of `dbflow lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    /// For people.
    Human,
    /// One JSON document (same as --json).
    Json,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
}

/// `dbflow hook …`
#[derive(Debug, Subcommand)]
pub enum HookAction {
    /// Install a git pre-commit hook running `dbflow scan --staged` (an existing hook is
    /// kept and run first; `git commit --no-verify` skips the hook).
    Install,
}

/// `dbflow migrate …`
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Show each migration's state and schema drift (exit 4 when not clean).
    Status {
        /// Compare the schema with one built from the applied migrations in a scratch
        /// database (dropped afterwards), not with the schema recorded at the last deploy:
        /// truthful after another tool applied migrations. Automatic on shared and
        /// protected environments when the recorded schema is stale or missing.
        #[arg(long)]
        shadow: bool,
    },
    /// Apply pending migrations, one deployer at a time.
    Deploy {
        /// List what would be applied and stop.
        #[arg(long)]
        dry_run: bool,
        /// Stop after this migration.
        #[arg(long, value_name = "NAME")]
        to: Option<String>,
        /// Confirm changing a protected database (required when not interactive).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Mark a failed migration as applied or rolled back (Prisma's semantics).
    #[command(group(clap::ArgGroup::new("mark").required(true).args(["applied", "rolled_back"])))]
    Resolve {
        /// Record NAME as applied (after finishing it by hand).
        #[arg(long, value_name = "NAME")]
        applied: Option<String>,
        /// Record the failed NAME as rolled back (the next deploy retries it).
        #[arg(long, value_name = "NAME")]
        rolled_back: Option<String>,
        /// Confirm changing a protected database (required when not interactive).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Create a new migration folder `<timestamp>_<name>/migration.sql` (Prisma's layout).
    New {
        /// What the migration does (`add_user_nickname`).
        name: String,
        /// Also create an empty down.sql for partial rollback.
        #[arg(long)]
        down: bool,
    },
    /// Run the newest applied migration's down.sql and mark it rolled back.
    Down {
        /// The newest applied migration.
        name: String,
        /// Confirm changing a protected database (required when not interactive).
        #[arg(short = 'y', long)]
        yes: bool,
    },
}
