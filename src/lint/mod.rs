//! Migration SQL analysis on PostgreSQL's own grammar (pg_query 18): every statement is
//! parsed, the locks it takes are worked out ([`lock`]), and each rule in [`rules`]
//! looks for a risky change and says why, and what the safe expand–contract way is.
//!
//! Tables created earlier in the same migration count as new: nothing uses them yet, so
//! indexes, foreign keys and constraints on them are fine (Prisma's init migrations lint
//! clean). A finding is silenced only by an annotation naming the rule and a reason
//! (`-- dbflow:allow drop-column reason: …`, see [`annotation`]); the report still
//! lists it, as allowed. Severity depends on the environment: warnings on sandbox,
//! errors on shared and protected.

pub mod annotation;
pub mod ast;
pub mod lock;
pub mod migration;
pub mod report;
pub mod rules;

pub use lock::{Lock, LockMode};
pub use migration::Migration;

use crate::config::Protection;
use serde::Serialize;
use std::path::{Path, PathBuf};

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

/// What the linter needs to know about where the migrations go.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Severity of every finding (from the environment's protection level).
    pub severity: Severity,
    /// Whether whoever applies the migrations sets a `lock_timeout` (dbflow's deploy
    /// does, per `migrations.lock_timeout`).
    pub applied_with_lock_timeout: bool,
    /// Whether reports list every statement with its locks (previews need them; plain
    /// linting does not, and skips the copies).
    pub with_statements: bool,
}

/// The annotation that silenced a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowed {
    /// Line of the annotation.
    pub line: usize,
    /// Its reason.
    pub reason: String,
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
    /// The statement.
    pub sql: String,
    /// Locks, strongest per table.
    pub locks: Vec<Lock>,
}

/// The result for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file as given.
    pub path: String,
    /// Number of statements (parsed or not).
    pub statement_count: usize,
    /// Findings, in line order.
    pub findings: Vec<Finding>,
    /// Every statement with its locks (only with [`Options::with_statements`]).
    #[serde(skip)]
    pub statements: Vec<StatementLocks>,
}

/// Lints the SQL text of one file.
pub fn lint_sql(path: &str, sql: &str, options: &Options) -> FileReport {
    let migration = Migration::parse(sql, options.applied_with_lock_timeout);
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
        });
    }
    let (annotations, bad) = annotation::collect(&migration);
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
    let mut hits = Vec::new();
    for statement in &migration.statements {
        for rule in rules::ALL {
            hits.clear();
            rule.check(&migration, statement, &mut hits);
            for hit in hits.drain(..) {
                let allowed = annotations
                    .iter()
                    .find(|a| {
                        a.statement == Some(statement.index)
                            && a.rules.iter().any(|r| r == rule.id())
                    })
                    .map(|a| Allowed {
                        line: a.line,
                        reason: a.reason.clone(),
                    });
                findings.push(Finding {
                    rule: rule.id(),
                    severity: options.severity,
                    line: statement.line,
                    statement: migration.sql(statement).to_string(),
                    message: hit.message,
                    why: hit.why,
                    instead: hit.instead,
                    lock: hit.lock,
                    allowed,
                });
            }
        }
    }
    findings.sort_by_key(|f| f.line);
    FileReport {
        path: path.to_string(),
        statement_count: migration.statements.len() + migration.syntax_errors.len(),
        statements: if options.with_statements {
            migration
                .statements
                .iter()
                .map(|s| StatementLocks {
                    line: s.line,
                    sql: migration.sql(s).to_string(),
                    locks: s.locks.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        findings,
    }
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

/// Lints files in parallel (one thread per core), keeping the input order.
pub fn lint_files(
    files: &[(String, PathBuf)],
    options: &Options,
) -> (Vec<FileReport>, Vec<Unreadable>) {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(threads).max(1);
    let results: Vec<Result<FileReport, Unreadable>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(shown, path)| lint_path(shown, path, options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a lint thread panicked"))
            .collect()
    });
    let mut reports = Vec::new();
    let mut unreadable = Vec::new();
    for result in results {
        match result {
            Ok(report) => reports.push(report),
            Err(u) => unreadable.push(u),
        }
    }
    (reports, unreadable)
}

fn lint_path(shown: &str, path: &Path, options: &Options) -> Result<FileReport, Unreadable> {
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
    // Invalid UTF-8 is refused, not replaced: the findings would be about other text
    // than the file's (and than what PostgreSQL would be sent).
    let text = crate::db::store::read_utf8(path).map_err(|e| {
        let refused = matches!(e, crate::error::Error::Usage(_));
        let message = e.to_string();
        let message = message
            .strip_prefix(&format!("{}: ", path.display()))
            .unwrap_or(&message)
            .to_string();
        unreadable(message, refused)
    })?;
    // A BOM is not SQL; PostgreSQL's parser would choke on it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(lint_sql(shown, text, options))
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
        Options {
            severity: Severity::Error,
            applied_with_lock_timeout: true,
            with_statements: false,
        }
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
            &Options {
                severity: Severity::Warning,
                applied_with_lock_timeout: false,
                with_statements: false,
            },
        );
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].rule, "syntax-error");
        assert_eq!(report.findings[0].line, 3);
        assert!(report.findings[0].is_error());
    }
}
