//! Migration SQL analysis on PostgreSQL's own grammar (pg_query 18): every statement is
//! parsed, the locks it takes are worked out ([`lock`]), and each rule in [`rules`]
//! looks for a risky change and says why, and what the safe expand–contract way is.
//!
//! Tables created earlier in the same migration, or by an earlier migration of the same
//! run (one deploy's pending migrations, one `dbflow lint` run's migrations in order),
//! count as new: nothing uses them yet, so indexes, foreign keys and constraints on them
//! are fine (a fresh install lints clean, see [`context`]). When the live database could
//! be read ([`catalog`]), a table it does not have is new too, an empty one takes no
//! meaningful lock, and lock findings on tables below `lint.small_table_rows` rows are
//! warnings. A finding is silenced only by an annotation naming the rule and a reason
//! (`-- dbflow:allow drop-column reason: …`, see [`annotation`]) or by a `lint.allow`
//! entry of the Workflowfile; the report still lists it, as allowed. Severity depends on
//! the environment: warnings on sandbox, errors on shared and protected.

pub mod annotation;
pub mod ast;
pub mod catalog;
pub mod context;
pub mod lock;
pub mod migration;
pub mod names;
pub mod report;
pub mod rules;

pub use catalog::{Catalog, TableSize};
pub use context::{Context, Scope};
pub use lock::{Lock, LockMode};
pub use migration::Migration;

use crate::config::Protection;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load-time check of `lint.allow`: every entry names a rule the linter has and gives a
/// reason (an allowance nobody can explain is a finding nobody looked at).
pub fn validate_settings(
    project: &crate::config::Project,
    errors: &mut Vec<crate::config::Diagnostic>,
) {
    use crate::config::diagnostic::did_you_mean;
    use crate::config::Diagnostic;
    let ids: Vec<&str> = rules::ALL.iter().map(|r| r.id()).collect();
    for entry in &project.lint.allow {
        let rule = &entry.rule;
        if !ids.contains(&rule.value.as_str()) {
            errors.push(
                Diagnostic::at(
                    rule.loc.clone(),
                    format!("lint.allow: no lint rule is called `{}`", rule.value),
                )
                .with_help_opt(
                    did_you_mean(&rule.value, ids.iter().copied())
                        .or_else(|| Some("`dbflow lint --rules` lists the rules".to_string())),
                ),
            );
        }
        if entry.reason.value.trim().is_empty() {
            errors.push(
                Diagnostic::at(
                    entry.reason.loc.clone(),
                    format!(
                        "lint.allow: the entry for `{}` in `{}` has an empty reason",
                        rule.value, entry.migration.value
                    ),
                )
                .with_help("say why the finding is safe: it is shown wherever the finding is"),
            );
        }
        if entry.migration.value.trim().is_empty() {
            errors.push(
                Diagnostic::at(
                    entry.migration.loc.clone(),
                    "lint.allow: empty migration name",
                )
                .with_help("name the migration folder, e.g. `20240101000000_init`"),
            );
        }
    }
}

/// How serious a finding is for the selected environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; does not fail `dbflow lint`.
    Warning,
    /// Fails `dbflow lint` (exit 1) and blocks deploys.
    Error,
}

impl Severity {
    /// Warnings on sandbox, errors on shared and protected environments.
    pub fn for_protection(protection: Protection) -> Self {
        match protection {
            Protection::Sandbox => Severity::Warning,
            Protection::Shared | Protection::Protected => Severity::Error,
        }
    }

    /// `warning` / `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A `lint.allow` entry of the Workflowfile: every finding of `rule` in `migration` is
/// allowed, for `reason`, without touching the (maybe already applied) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// Migration folder name (`20240101000000_init`).
    pub migration: String,
    /// Rule id.
    pub rule: String,
    /// Why it is safe.
    pub reason: String,
    /// Where it is written (`Workflowfile.yaml:12:7`).
    pub at: String,
}

/// The default of `lint.small_table_rows`.
pub const DEFAULT_SMALL_TABLE_ROWS: u64 = 10_000;

/// What the linter needs to know about where the migrations go.
#[derive(Debug, Clone)]
pub struct Options {
    /// Severity of every finding (from the environment's protection level).
    pub severity: Severity,
    /// Whether whoever applies the migrations sets a `lock_timeout` (dbflow's deploy
    /// does, per `migrations.lock_timeout`).
    pub applied_with_lock_timeout: bool,
    /// Whether reports list every statement with its locks (previews need them; plain
    /// linting does not, and skips the copies).
    pub with_statements: bool,
    /// Below this many rows (live database read), lock findings are warnings; 0 never.
    pub small_table_rows: u64,
    /// `lint.allow` entries.
    pub allow: Arc<Vec<AllowEntry>>,
}

impl Options {
    /// Options with the defaults for everything but severity and lock_timeout.
    pub fn new(severity: Severity, applied_with_lock_timeout: bool) -> Self {
        Options {
            severity,
            applied_with_lock_timeout,
            with_statements: false,
            small_table_rows: DEFAULT_SMALL_TABLE_ROWS,
            allow: Arc::default(),
        }
    }
}

/// The annotation (or `lint.allow` entry) that silenced a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowed {
    /// Line of the annotation (of the statement, for a `lint.allow` entry).
    pub line: usize,
    /// Its reason.
    pub reason: String,
    /// Where the `lint.allow` entry is written, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Rule id.
    pub rule: &'static str,
    /// Severity for the selected environment.
    pub severity: Severity,
    /// 1-based line of the statement.
    pub line: usize,
    /// The statement.
    pub statement: String,
    /// What is risky, in one line.
    pub message: String,
    /// Why.
    pub why: String,
    /// The safe way instead.
    pub instead: String,
    /// The lock involved: mode, table, rewrite.
    pub lock: Option<Lock>,
    /// Set when an annotation allows it.
    pub allowed: Option<Allowed>,
    /// Why the severity is not the environment's (a small table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Finding {
    /// Whether it counts as an error (not allowed, error severity).
    pub fn is_error(&self) -> bool {
        self.allowed.is_none() && self.severity == Severity::Error
    }

    /// Whether it counts as a warning.
    pub fn is_warning(&self) -> bool {
        self.allowed.is_none() && self.severity == Severity::Warning
    }
}

/// A statement with the locks it takes (for previews of what a deploy will do).
#[derive(Debug, Clone, Serialize)]
pub struct StatementLocks {
    /// 1-based line.
    pub line: usize,
    /// The statement's first line, shortened ([`ast::summary`]): what a preview shows.
    /// Not the whole text, which a deploy of thousands of migrations would otherwise
    /// hold all at once.
    pub sql: String,
    /// Locks, strongest per table.
    pub locks: Vec<Lock>,
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file as given.
    pub path: String,
    /// The migration's name (its folder), for files in Prisma's layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
    /// Number of statements (parsed or not).
    pub statement_count: usize,
    /// Findings, in line order.
    pub findings: Vec<Finding>,
    /// Every statement with its locks (only with [`Options::with_statements`]).
    #[serde(skip)]
    pub statements: Vec<StatementLocks>,
}

/// Lints the SQL text of one file on its own (no run, no live database).
pub fn lint_sql(path: &str, sql: &str, options: &Options) -> FileReport {
    let migration = Migration::parse(sql, options.applied_with_lock_timeout);
    lint_migration(path, None, &migration, options)
}

/// Lints one parsed file (placed in its run with [`Migration::set_scope`]).
pub fn lint_migration(
    path: &str,
    name: Option<&str>,
    migration: &Migration<'_>,
    options: &Options,
) -> FileReport {
    let mut findings = Vec::new();
    for error in &migration.syntax_errors {
        findings.push(Finding {
            rule: rules::SYNTAX_ERROR,
            // A statement that does not parse fails on every database.
            severity: Severity::Error,
            line: error.line,
            statement: error.sql.clone(),
            message: format!("PostgreSQL cannot parse this statement: {}", error.message),
            why: "the migration fails at this statement wherever it is applied".into(),
            instead: "fix the statement (the linter reads PostgreSQL 18's grammar)".into(),
            lock: None,
            allowed: None,
            note: None,
        });
    }
    let (annotations, bad) = annotation::collect(migration);
    let known: Vec<&str> = rules::all_ids().collect();
    for b in &bad {
        findings.push(invalid_annotation(b.line, &b.text, &b.problem, options));
    }
    for a in &annotations {
        for rule in &a.rules {
            if !known.contains(&rule.as_str()) {
                let help = crate::config::diagnostic::did_you_mean(rule, known.iter().copied())
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                findings.push(invalid_annotation(
                    a.line,
                    &format!("dbflow:allow {rule}"),
                    &format!("no rule is called `{rule}`{help}"),
                    options,
                ));
            }
        }
        if a.statement.is_none() {
            findings.push(invalid_annotation(
                a.line,
                &format!("dbflow:allow {}", a.rules.join(", ")),
                "no statement follows this annotation",
                options,
            ));
        }
    }
    let configured: Vec<&AllowEntry> = match name {
        Some(name) => options
            .allow
            .iter()
            .filter(|a| a.migration == name)
            .collect(),
        None => Vec::new(),
    };
    let mut hits = Vec::new();
    for statement in &migration.statements {
        for rule in rules::ALL {
            hits.clear();
            rule.check(migration, statement, &mut hits);
            for hit in hits.drain(..) {
                let (severity, note) = match severity_of(*rule, &hit, options) {
                    Some(decided) => decided,
                    // An empty table: the lock is not worth a finding.
                    None => continue,
                };
                let allowed = annotations
                    .iter()
                    .find(|a| {
                        a.statement == Some(statement.index)
                            && a.rules.iter().any(|r| r == rule.id())
                    })
                    .map(|a| Allowed {
                        line: a.line,
                        reason: a.reason.clone(),
                        config: None,
                    })
                    .or_else(|| {
                        configured
                            .iter()
                            .find(|a| a.rule == rule.id())
                            .map(|a| Allowed {
                                line: statement.line,
                                reason: a.reason.clone(),
                                config: Some(a.at.clone()),
                            })
                    });
                findings.push(Finding {
                    rule: rule.id(),
                    severity,
                    line: statement.line,
                    statement: migration.sql(statement).to_string(),
                    message: hit.message,
                    why: hit.why,
                    instead: hit.instead,
                    lock: hit.lock,
                    allowed,
                    note,
                });
            }
        }
    }
    findings.sort_by_key(|f| f.line);
    FileReport {
        path: path.to_string(),
        migration: name.map(str::to_string),
        statement_count: migration.statements.len() + migration.syntax_errors.len(),
        statements: if options.with_statements {
            migration
                .statements
                .iter()
                .map(|s| StatementLocks {
                    line: s.line,
                    sql: ast::summary(migration.sql(s)),
                    locks: s.locks.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        findings,
    }
}

/// The severity of a hit and why it differs from the environment's; `None` when the
/// finding is not worth reporting (a lock on a table the live database shows empty).
fn severity_of(
    rule: &dyn rules::Rule,
    hit: &rules::Hit,
    options: &Options,
) -> Option<(Severity, Option<String>)> {
    let mut severity = options.severity;
    let mut note = None;
    if rule.lock_risk() {
        if let Some(lock) = &hit.lock {
            if let Some(size) = lock.size {
                if size.is_empty() {
                    return None;
                }
                let small = options.small_table_rows > 0
                    && size.rows.is_some_and(|r| r < options.small_table_rows);
                if small && severity == Severity::Error {
                    severity = Severity::Warning;
                    note = Some(format!(
                        "a warning, not an error: {} has {}, below lint.small_table_rows ({}), so the lock is held briefly",
                        lock.table, size, options.small_table_rows
                    ));
                }
            }
        }
    }
    if rule.warning_only() && severity == Severity::Error {
        severity = Severity::Warning;
    }
    Some((severity, note))
}

fn invalid_annotation(line: usize, text: &str, problem: &str, options: &Options) -> Finding {
    Finding {
        rule: rules::INVALID_ANNOTATION,
        severity: options.severity,
        line,
        statement: text.to_string(),
        message: format!("annotation not used: {problem}"),
        why: "an annotation silences a finding only when it names a rule and gives a reason".into(),
        instead: format!(
            "write `-- {} <rule> reason: <why this is safe>` right before the statement",
            annotation::MARKER
        ),
        lock: None,
        allowed: None,
        note: None,
    }
}

/// A file that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// The path.
    pub path: String,
    /// Why.
    pub error: String,
    /// Refused as bad input (not UTF-8), rather than unreadable or too large.
    #[serde(skip)]
    pub refused: bool,
}

/// One file of a lint run.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as shown.
    pub shown: String,
    /// The migration's name (its folder) when the file is a migration of Prisma's
    /// layout; only migrations share a run's context (loose `.sql` files stand alone).
    pub migration: Option<String>,
    /// The SQL.
    pub text: String,
}

impl Source {
    /// Reads `path`: too large to parse, or not UTF-8, is [`Unreadable`] (invalid UTF-8 is
    /// refused, not replaced: the findings would be about other text than the file's, and
    /// than what PostgreSQL would be sent). A BOM is dropped: it is not SQL.
    pub fn read(shown: &str, path: &Path) -> Result<Source, Unreadable> {
        let unreadable = |error: String, refused: bool| Unreadable {
            path: shown.to_string(),
            error,
            refused,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| unreadable(e.to_string(), false))?
            .len();
        if let Some(why) = too_large(len) {
            return Err(unreadable(why, false));
        }
        let text = crate::db::store::read_utf8(path).map_err(|e| {
            let refused = e.is_bad_input();
            let message = e.to_string();
            let message = message
                .strip_prefix(&format!("{}: ", path.display()))
                .unwrap_or(&message)
                .to_string();
            unreadable(message, refused)
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        Ok(Source {
            shown: shown.to_string(),
            migration: migration_name(path),
            text,
        })
    }
}

/// The migration a path belongs to: the folder of a `migration.sql`.
pub fn migration_name(path: &Path) -> Option<String> {
    if path.file_name()? != "migration.sql" {
        return None;
    }
    Some(path.parent()?.file_name()?.to_string_lossy().to_string())
}

/// Files parsed at once per thread: parse trees are large (tens of times the SQL), so a
/// run is linted in batches, in order, and each batch's trees are dropped before the next.
const BATCH_PER_THREAD: usize = 32;

/// Lints the files of one run, in order: each migration sees the tables, indexes and
/// columns earlier migrations of the run create, and the live `catalog` when given.
/// Parsing and rules run in parallel (one thread per core).
pub fn lint_run(
    sources: &[Source],
    options: &Options,
    catalog: Option<Arc<Catalog>>,
) -> Vec<FileReport> {
    let mut reports = Vec::with_capacity(sources.len());
    lint_stream(sources.iter().cloned(), options, catalog, |r| {
        reports.push(r)
    });
    reports
}

/// [`lint_run`] over sources read as they are needed, each report handed to `each` in
/// order: only one batch of texts and parse trees is held at a time, so a run over
/// thousands of migrations keeps in memory what the caller keeps of the reports (and the
/// run's context: the names earlier files create), not every file.
pub fn lint_stream(
    sources: impl IntoIterator<Item = Source>,
    options: &Options,
    catalog: Option<Arc<Catalog>>,
    mut each: impl FnMut(FileReport),
) {
    let standalone = Arc::new(Context::new(catalog.clone()));
    let mut context = Arc::new(Context::new(catalog));
    let batch = BATCH_PER_THREAD * threads();
    let mut sources = sources.into_iter();
    let mut first = 1;
    loop {
        let chunk: Vec<Source> = sources.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let mut migrations: Vec<Migration<'_>> = par_map(&chunk, |s| {
            Migration::parse_unscoped(&s.text, options.applied_with_lock_timeout)
        });
        {
            // Nothing else holds the context between batches: no copy is made.
            let run = Arc::make_mut(&mut context);
            for (i, (source, migration)) in chunk.iter().zip(&migrations).enumerate() {
                if source.migration.is_some() {
                    run.add(first + i, &migration.created());
                }
            }
        }
        for (i, (source, migration)) in chunk.iter().zip(&mut migrations).enumerate() {
            migration.set_scope(Scope {
                context: if source.migration.is_some() {
                    context.clone()
                } else {
                    standalone.clone()
                },
                file: first + i,
            });
        }
        let pairs: Vec<(&Source, &Migration<'_>)> = chunk.iter().zip(&migrations).collect();
        for report in par_map(&pairs, |(source, migration)| {
            lint_migration(
                &source.shown,
                source.migration.as_deref(),
                migration,
                options,
            )
        }) {
            each(report);
        }
        first += chunk.len();
        // The batch's parse trees (and the scopes they hold) go before the next batch.
        drop(pairs);
        drop(migrations);
    }
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Lints files as one run (see [`lint_run`]), keeping the input order.
pub fn lint_files(
    files: &[(String, PathBuf)],
    options: &Options,
    catalog: Option<Arc<Catalog>>,
) -> (Vec<FileReport>, Vec<Unreadable>) {
    let mut unreadable = Vec::new();
    let mut reports = Vec::with_capacity(files.len());
    // Each file is read when its batch is linted, not all before the first is parsed.
    let sources = files
        .iter()
        .filter_map(|(shown, path)| match Source::read(shown, path) {
            Ok(source) => Some(source),
            Err(u) => {
                unreadable.push(u);
                None
            }
        });
    lint_stream(sources, options, catalog, |r| reports.push(r));
    (reports, unreadable)
}

/// `f` over `items` on one thread per core, keeping the order.
fn par_map<'a, T: Sync, R: Send>(items: &'a [T], f: impl Fn(&'a T) -> R + Sync) -> Vec<R> {
    let threads = threads().min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a lint thread panicked"))
            .collect()
    })
}

/// The largest file the linter parses. PostgreSQL's parse tree of a file takes about 80
/// times the file's size in memory (4.3 GB for a 50 MB file of INSERTs), and a file this
/// big is data, not a schema change, so it is not linted rather than exhausting memory.
pub const MAX_LINT_BYTES: u64 = 4 * 1024 * 1024;

/// Why a file of `len` bytes is not linted, when it is too large.
pub fn too_large(len: u64) -> Option<String> {
    (len > MAX_LINT_BYTES).then(|| {
        format!(
            "too large to lint: {:.1} MiB (the linter reads files up to {} MiB; its parse tree takes ~80× the file's size). Split the migration, or review it by hand",
            len as f64 / (1024.0 * 1024.0),
            MAX_LINT_BYTES / (1024 * 1024)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options::new(Severity::Error, true)
    }

    fn source(name: Option<&str>, sql: &str) -> Source {
        Source {
            shown: name.unwrap_or("loose.sql").to_string(),
            migration: name.map(str::to_string),
            text: sql.to_string(),
        }
    }

    fn rules_fired(reports: &[FileReport]) -> Vec<Vec<&'static str>> {
        reports
            .iter()
            .map(|r| r.findings.iter().map(|f| f.rule).collect())
            .collect()
    }

    #[test]
    fn a_run_sees_what_earlier_migrations_create() {
        let sources = [
            source(Some("1_init"), "CREATE TABLE t (id int, c int);"),
            source(
                Some("2_index"),
                "CREATE INDEX t_c ON t (c);\nALTER TABLE t RENAME TO u;",
            ),
            source(
                Some("3_more"),
                "CREATE INDEX u_c ON u (c);\nDROP INDEX t_c;\nCREATE INDEX o_c ON other (c);",
            ),
            // Loose files stand alone: `t` exists for them.
            source(None, "CREATE INDEX t_d ON t (c);"),
        ];
        let reports = lint_run(&sources, &options(), None);
        assert_eq!(
            rules_fired(&reports),
            [
                vec![],
                vec![],
                vec!["create-index-non-concurrently"],
                vec!["create-index-non-concurrently"]
            ]
        );
        // Alone, every file is linted as today.
        let alone = lint_run(&sources[1..2], &options(), None);
        assert_eq!(
            rules_fired(&alone),
            [vec!["create-index-non-concurrently", "rename-table"]]
        );
    }

    #[test]
    fn the_catalog_decides_what_exists_and_how_big_it_is() {
        let mut catalog = Catalog::new(vec!["public".into()]);
        let size = |rows| TableSize {
            rows: Some(rows),
            exact: true,
            bytes: 8192,
        };
        catalog.add_table("public", "big", size(50_000));
        catalog.add_table("public", "small", size(5));
        catalog.add_table("public", "empty", size(0));
        let sources = [source(
            Some("1_x"),
            "CREATE INDEX a ON big (c);\nCREATE INDEX b ON small (c);\nCREATE INDEX c ON empty (c);\nCREATE INDEX d ON missing (c);\nALTER TABLE small RENAME TO tiny;\nALTER TABLE tiny DROP COLUMN c;",
        )];
        let reports = lint_run(&sources, &options(), Some(Arc::new(catalog)));
        let found: Vec<(usize, &str, Severity)> = reports[0]
            .findings
            .iter()
            .map(|f| (f.line, f.rule, f.severity))
            .collect();
        assert_eq!(
            found,
            [
                (1, "create-index-non-concurrently", Severity::Error),
                (2, "create-index-non-concurrently", Severity::Warning),
                (5, "rename-table", Severity::Error),
                (6, "drop-column", Severity::Error),
            ]
        );
        assert_eq!(
            reports[0].findings[3].lock.as_ref().unwrap().size,
            Some(size(5)),
            "a renamed table keeps its size"
        );
    }

    #[test]
    fn annotations_allow_but_still_list() {
        let sql = "-- dbflow:allow drop-column reason: unused since v2\nALTER TABLE users DROP COLUMN bio;\nALTER TABLE users DROP COLUMN age;\n";
        let report = lint_sql("m.sql", sql, &options());
        let summary: Vec<(usize, &str, bool)> = report
            .findings
            .iter()
            .map(|f| (f.line, f.rule, f.allowed.is_some()))
            .collect();
        assert_eq!(
            summary,
            [(2, "drop-column", true), (3, "drop-column", false)]
        );
        assert_eq!(
            report.findings[0].allowed.as_ref().unwrap().reason,
            "unused since v2"
        );
    }

    #[test]
    fn bad_annotations_are_findings() {
        let sql = "-- dbflow:allow drop-colum reason: typo\nALTER TABLE users DROP COLUMN bio;\n-- dbflow:allow drop-column\nALTER TABLE users DROP COLUMN age;\n";
        let report = lint_sql("m.sql", sql, &options());
        let rules: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
        assert_eq!(
            rules,
            [
                "invalid-annotation",
                "drop-column",
                "invalid-annotation",
                "drop-column"
            ]
        );
        assert!(report.findings[0]
            .message
            .contains("did you mean `drop-column`?"));
    }

    #[test]
    fn prisma_init_migrations_lint_clean() {
        let sql = include_str!("../../prisma/migrations/20240105090000_init/migration.sql");
        assert!(lint_sql("init.sql", sql, &options()).findings.is_empty());
        let sql = include_str!("../../prisma/migrations/20240212143000_orders/migration.sql");
        assert!(lint_sql("orders.sql", sql, &options()).findings.is_empty());
    }

    #[test]
    fn syntax_errors_are_errors_even_on_sandbox() {
        let report = lint_sql(
            "m.sql",
            "SELECT 1;\n\nCREATE TABLEE x (id int);\n",
            &Options::new(Severity::Warning, false),
        );
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].rule, "syntax-error");
        assert_eq!(report.findings[0].line, 3);
        assert!(report.findings[0].is_error());
    }
}
