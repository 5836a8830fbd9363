//! The guard's view of the migrations about to be applied: applied files must be
//! unchanged, pending ones are linted with the environment's severity, and on a
//! protected environment a person sees what will change (every statement with the lock
//! it takes, the findings, the backup it relies on) before confirming.

use crate::config::{Project, Protection};
use crate::db::migrate::{State, Status};
use crate::db::store::Store;
use crate::db::{Conn, DbError};
use crate::lint::{self, report, Catalog, FileReport, Options, Severity, TableSize};
use crate::ui::prompt::{self, Answer};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// The lint options for migrations going to an environment of this protection level.
/// Locks only matter on databases others use, so on a sandbox the lock_timeout question
/// is answered for where the file goes next: a protected environment.
pub fn lint_options(project: &Project, protection: Protection) -> Options {
    let deployed_to = match protection {
        Protection::Sandbox => Protection::Protected,
        other => other,
    };
    Options {
        small_table_rows: project.lint.small_table_rows,
        allow: Arc::new(
            project
                .lint
                .allow
                .iter()
                .map(|a| lint::AllowEntry {
                    migration: a.migration.value.clone(),
                    rule: a.rule.value.clone(),
                    reason: a.reason.value.clone(),
                    at: a.loc.to_string(),
                })
                .collect(),
        ),
        ..Options::new(
            Severity::for_protection(protection),
            crate::db::target::applies_lock_timeout(project, deployed_to),
        )
    }
}

/// Tables bigger than this (heap only) get PostgreSQL's row estimate; smaller ones are
/// counted, which takes milliseconds and tells an empty table from a never-analyzed one.
const COUNTED_BYTES: u64 = 1024 * 1024;

/// At most this many small tables are counted, the smallest first; the others get the
/// estimate. Counting locks each table (and the planner its indexes) until the query
/// ends: thousands at once exhaust the server's lock table (`out of shared memory` at
/// 2,500 tables on default settings) and the whole read fails.
const COUNTED_TABLES: usize = 1000;

/// The schemas the linter reads (not PostgreSQL's own, TOAST or temporary ones).
const SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// The one catalog query: the search path, every index with its table, and every table
/// with its size and row count (counted when small, else `reltuples` scaled to the
/// table's current size the way the planner does; unknown when never analyzed).
///
/// With `names`, only the relations of those names (in any schema) and the tables of
/// indexes of those names are read, plus a `count` row with every table: a lint of a
/// few files then costs what they name, not what the database holds.
fn catalog_sql(names: Option<&BTreeSet<String>>) -> String {
    // Hex-encoded, so no name can end the literal whatever the server's quoting settings.
    let (named, filter, count) = match names {
        Some(names) => (
            format!(
                "named AS (SELECT convert_from(decode(h, 'hex'), 'UTF8')::name AS name FROM unnest(ARRAY[{}]::text[]) h),\n",
                names
                    .iter()
                    .map(|n| format!("'{}'", hex::encode(n)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "\n    AND (c.relname IN (SELECT name FROM named) OR c.oid IN (
      SELECT i.indrelid FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
      WHERE x.relname IN (SELECT name FROM named)))",
            format!(
                "\nUNION ALL\nSELECT 'count', count(*)::text, NULL, NULL, NULL, NULL
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm', 'f') AND {SCHEMAS}"
            ),
        ),
        None => (String::new(), "", String::new()),
    };
    format!(
        r#"WITH {named}rels AS (
  SELECT c.oid, n.nspname::text AS nsp, c.relname::text AS rel, c.relkind, c.reltuples, c.relpages, c.relrowsecurity
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm', 'f', 'i', 'I')
    AND {SCHEMAS}{filter}
), counted AS (
  SELECT r.oid FROM rels r
  WHERE r.relkind IN ('r', 'm') AND pg_catalog.pg_relation_size(r.oid) <= {counted}
    AND NOT r.relrowsecurity AND pg_catalog.has_table_privilege(r.oid, 'SELECT')
  ORDER BY pg_catalog.pg_relation_size(r.oid), r.oid LIMIT {most}
)
SELECT 'path', array_to_string(current_schemas(false), ','), NULL, NULL, NULL, NULL
UNION ALL
SELECT 'index', r.nsp, r.rel, t.relname::text, NULL, NULL
  FROM rels r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
  WHERE r.relkind IN ('i', 'I')
UNION ALL
SELECT 'table', r.nsp, r.rel,
  CASE
    WHEN r.oid IN (SELECT oid FROM counted)
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks k WHERE k.relation = r.oid AND k.mode = 'AccessExclusiveLock')
      THEN (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', r.nsp, r.rel), false, true, '')))[1]::text
    WHEN r.relkind = 'p' THEN (
      SELECT CASE WHEN bool_and(l.reltuples >= 0) THEN round(sum(l.reltuples))::bigint::text END
      FROM pg_catalog.pg_partition_tree(r.oid) p JOIN pg_catalog.pg_class l ON l.oid = p.relid WHERE p.isleaf)
    WHEN r.reltuples < 0 OR (r.relpages = 0 AND pg_catalog.pg_relation_size(r.oid) > 0) THEN NULL
    WHEN r.relpages = 0 THEN round(r.reltuples)::bigint::text
    ELSE round(r.reltuples / r.relpages * (pg_catalog.pg_relation_size(r.oid) / current_setting('block_size')::int))::bigint::text
  END,
  (r.oid IN (SELECT oid FROM counted)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks k WHERE k.relation = r.oid AND k.mode = 'AccessExclusiveLock'))::text,
  CASE WHEN r.relkind = 'p' THEN (
      SELECT coalesce(sum(pg_catalog.pg_total_relation_size(p.relid)), 0)::text
      FROM pg_catalog.pg_partition_tree(r.oid) p WHERE p.isleaf)
    ELSE pg_catalog.pg_total_relation_size(r.oid)::text END
  FROM rels r WHERE r.relkind IN ('r', 'p', 'm', 'f'){count}"#,
        counted = COUNTED_BYTES,
        most = COUNTED_TABLES
    )
}

/// Reads the live catalog once (PostgreSQL only): which tables exist, how many rows and
/// bytes each holds, and which table each index belongs to. A small table is counted
/// unless someone holds (or waits for) an ACCESS EXCLUSIVE lock on it; the query waits at
/// most 200 ms for a lock and 10 s in all, and on failure linting is static.
pub async fn read_catalog(conn: &mut Conn) -> Result<Catalog, DbError> {
    read_catalog_of(conn, None).await
}

/// [`read_catalog`] limited to the relations named `names` (see `catalog_sql`) when
/// given; the catalog still counts every table.
pub async fn read_catalog_of(
    conn: &mut Conn,
    names: Option<&BTreeSet<String>>,
) -> Result<Catalog, DbError> {
    if !conn.is_postgres() {
        return Err(DbError::message(
            "the linter reads PostgreSQL catalogs only",
        ));
    }
    conn.batch("SET lock_timeout = '200ms'; SET statement_timeout = '10s'")
        .await?;
    let rows = conn.text_rows(&catalog_sql(names)).await;
    conn.batch("RESET lock_timeout; RESET statement_timeout")
        .await?;
    let rows = rows?;
    let path = rows
        .iter()
        .find(|r| r.first().and_then(|k| k.as_deref()) == Some("path"))
        .and_then(|r| r.get(1).cloned().flatten())
        .unwrap_or_default();
    let mut catalog = Catalog::new(
        path.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    );
    for row in &rows {
        let cell = |i: usize| row.get(i).and_then(|v| v.as_deref());
        match (cell(0), cell(1), cell(2)) {
            (Some("index"), Some(schema), Some(index)) => {
                if let Some(table) = cell(3) {
                    catalog.add_index(schema, index, table);
                }
            }
            (Some("count"), Some(total), _) => {
                if let Ok(total) = total.parse() {
                    catalog.set_table_count(total);
                }
            }
            (Some("table"), Some(schema), Some(table)) => {
                catalog.add_table(
                    schema,
                    table,
                    TableSize {
                        rows: cell(3).and_then(|v| v.trim().parse().ok()),
                        exact: cell(4) == Some("true"),
                        bytes: cell(5).and_then(|v| v.parse().ok()).unwrap_or(0),
                    },
                );
            }
            _ => {}
        }
    }
    Ok(catalog)
}

/// The live catalog for linting the pending migrations of `status`: `None` when nothing
/// is pending (no query then), else the catalog or why it could not be read (linting is
/// then static, as without a database).
pub async fn catalog_for_pending(
    conn: &mut Conn,
    status: &Status,
) -> Option<Result<Arc<Catalog>, String>> {
    let pending = status
        .entries
        .iter()
        .any(|e| matches!(e.state, State::Pending | State::RolledBack));
    if !pending || !conn.is_postgres() {
        return None;
    }
    Some(catalog_for_lint(conn).await)
}

/// The live catalog for linting, or why it could not be read (linting is then static,
/// as without a database).
pub async fn catalog_for_lint(conn: &mut Conn) -> Result<Arc<Catalog>, String> {
    catalog_for_lint_of(conn, None).await
}

/// [`catalog_for_lint`] reading only the relations named `names` when given (the names
/// the files being linted use, see `lint::names`).
pub async fn catalog_for_lint_of(
    conn: &mut Conn,
    names: Option<&BTreeSet<String>>,
) -> Result<Arc<Catalog>, String> {
    read_catalog_of(conn, names)
        .await
        .map(Arc::new)
        .map_err(|e| e.message)
}

/// What the guard found about the migrations of one environment.
#[derive(Debug, Clone, Default)]
pub struct Review {
    /// Pending migrations (in order) with their lint reports.
    pub pending: Vec<(String, FileReport)>,
    /// Applied migrations whose file changed since: (name, note).
    pub modified: Vec<(String, String)>,
    /// Set when linting was skipped, with why.
    pub lint_skipped: Option<String>,
    /// Pending migrations that were not linted (too large to parse), with why: listed in
    /// the review so nobody reads the silence as "no findings".
    pub not_linted: Vec<(String, String)>,
    /// Tables in the live catalog the lint read, or why it could not read one.
    pub catalog: Option<Result<usize, String>>,
}

impl Review {
    /// Lint errors (not allowed, error severity) over every pending migration.
    pub fn errors(&self) -> usize {
        self.summary().errors
    }

    /// Totals.
    pub fn summary(&self) -> report::Summary {
        report::Summary::over(self.pending.iter().map(|(_, r)| r))
    }

    /// Why the guard blocks, if it does.
    pub fn blocked_reason(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if !self.modified.is_empty() {
            reasons.push(format!(
                "applied migration{} changed since {} applied ({}); applied migrations are immutable: restore the file and put the change in a new migration",
                if self.modified.len() == 1 { "" } else { "s" },
                if self.modified.len() == 1 { "it was" } else { "they were" },
                self.modified
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let errors = self.errors();
        if errors > 0 {
            reasons.push(format!(
                "{errors} lint error{} in pending migrations (fix them, or allow each with `-- dbflow:allow <rule> reason: …` before the statement, or a `lint.allow` entry in the Workflowfile)",
                if errors == 1 { "" } else { "s" }
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Reviews `store` against `status` for an environment of `protection`. The pending
/// migrations are linted as one run, in order (a table an earlier one creates is new for
/// the later ones), against the live `catalog` when it could be read.
pub fn review(
    project: &Project,
    protection: Protection,
    postgres: bool,
    store: &Store,
    status: &Status,
    catalog: Option<Result<Arc<Catalog>, String>>,
) -> Review {
    let mut review = Review::default();
    for entry in status.with_state(State::Modified) {
        review
            .modified
            .push((entry.name.clone(), entry.note.clone().unwrap_or_default()));
    }
    if !postgres {
        review.lint_skipped = Some(
            "the linter reads PostgreSQL migrations and this environment's database is not PostgreSQL".into(),
        );
        return review;
    }
    let options = Options {
        // Each statement with its locks is for the preview a person confirms, which only
        // a protected environment shows (see `guard::rails`): elsewhere it is not kept.
        with_statements: protection == Protection::Protected,
        ..lint_options(project, protection)
    };
    review.catalog = catalog
        .as_ref()
        .map(|c| c.as_ref().map(|c| c.table_count()).map_err(Clone::clone));
    let catalog = catalog.and_then(Result::ok);
    // Streamed: each script is read when its batch is linted and its text and parse tree
    // dropped after, so what stays per migration is its report (findings, and each
    // statement's first line with its locks for the preview), not the script.
    let mut not_linted = Vec::new();
    let sources = status
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending | State::RolledBack))
        .filter_map(|entry| {
            let migration = store.get(&entry.name)?;
            let text = match lint::too_large(migration.len) {
                Some(why) => Err(why),
                None => migration.text().map_err(|e| e.to_string()),
            };
            let text = match text {
                Ok(sql) => match sql.strip_prefix('\u{feff}') {
                    Some(rest) => rest.to_string(),
                    None => sql,
                },
                Err(why) => {
                    // Listed as not linted, so nobody reads the silence as "no findings".
                    not_linted.push((entry.name.clone(), why));
                    String::new()
                }
            };
            Some(lint::Source {
                shown: shown_path(&migration.path),
                migration: Some(entry.name.clone()),
                text,
            })
        });
    let count = status
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Pending | State::RolledBack))
        .count();
    let mut pending = Vec::with_capacity(count);
    lint::lint_stream(sources, &options, catalog, |mut report| {
        let name = report.migration.take().unwrap_or_default();
        if report.findings.is_empty() && report.statements.is_empty() {
            // Kept for its counts only: a report's path is shown with its findings, and
            // a clean one has none (20,000 pending migrations: ~3 MB less to hold).
            report.path = String::new();
        }
        pending.push((name, report));
    });
    review.pending = pending;
    review.not_linted = not_linted;
    review
}

/// A path as people should see it (no leading `./`).
pub fn shown_path(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

/// The review for people: modified files, then the findings, then a summary line.
/// Findings are summarised per migration (rules and counts, with a pointer to
/// `dbflow lint --pending`) unless `verbose`, which lists each one in full.
pub fn render_review(review: &Review, env: &str, verbose: bool) -> String {
    let mut out = String::new();
    for (name, note) in &review.modified {
        out.push_str(&format!(
            "✘ applied migration `{name}` was modified after it was applied ({note})\n"
        ));
    }
    if let Some(why) = &review.lint_skipped {
        out.push_str(&format!("○ lint skipped: {why}\n"));
        return out;
    }
    for (name, why) in &review.not_linted {
        out.push_str(&format!("○ `{name}` not linted: {why}\n"));
    }
    if review.pending.is_empty() {
        out.push_str("no pending migrations to lint\n");
        return out;
    }
    let s = review.summary();
    let against = match &review.catalog {
        Some(Ok(tables)) => format!(
            " against its database ({tables} table{})",
            if *tables == 1 { "" } else { "s" }
        ),
        Some(Err(why)) => format!(" statically (its database could not be read: {why})"),
        None => String::new(),
    };
    if verbose {
        for (_, report) in &review.pending {
            for finding in &report.findings {
                out.push_str(&report::human_finding(&report.path, finding));
            }
        }
    }
    let linted = review.pending.len() - review.not_linted.len();
    out.push_str(&format!(
        "linted {linted} pending migration{} for `{env}`{against}: {}\n",
        if linted == 1 { "" } else { "s" },
        s.counts()
    ));
    if verbose || s.errors + s.warnings + s.allowed == 0 {
        return out;
    }
    for (name, report) in &review.pending {
        if let Some(line) = migration_summary(report) {
            out.push_str(&format!("  {name}: {line}\n"));
        }
    }
    out.push_str(&format!(
        "  every finding with why and the safe way: dbflow lint --pending --env {env} (or -v)\n"
    ));
    out
}

/// `2 errors (create-index-non-concurrently ×2 on "Order" ~2.1 M rows, 480 MB), 1 allowed`
/// for one migration, `None` when it has no findings.
fn migration_summary(report: &FileReport) -> Option<String> {
    let mut parts = Vec::new();
    for (label, pick) in [
        (
            "error",
            Box::new(|f: &lint::Finding| f.is_error()) as Box<dyn Fn(&lint::Finding) -> bool>,
        ),
        ("warning", Box::new(|f: &lint::Finding| f.is_warning())),
        ("allowed", Box::new(|f: &lint::Finding| f.allowed.is_some())),
    ] {
        let found: Vec<&lint::Finding> = report.findings.iter().filter(|f| pick(f)).collect();
        if found.is_empty() {
            continue;
        }
        let mut rules: Vec<(String, usize)> = Vec::new();
        for f in &found {
            let what = match f.lock.as_ref() {
                Some(lock) if !lock.new_table => match lock.size {
                    Some(size) => format!("{} on {} ({size})", f.rule, lock.table),
                    None => format!("{} on {}", f.rule, lock.table),
                },
                _ => f.rule.to_string(),
            };
            match rules.iter_mut().find(|(r, _)| *r == what) {
                Some((_, n)) => *n += 1,
                None => rules.push((what, 1)),
            }
        }
        let rules = rules
            .into_iter()
            .map(|(r, n)| if n > 1 { format!("{r} ×{n}") } else { r })
            .collect::<Vec<_>>()
            .join(", ");
        let n = found.len();
        let noun = match label {
            "allowed" => "allowed".to_string(),
            other => format!("{other}{}", if n == 1 { "" } else { "s" }),
        };
        parts.push(format!("{n} {noun} ({rules})"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

pub use super::preview::{render_preview, PreviewMode};

/// Asks a person to confirm a change to a protected database. `Err` says why it may
/// not go on (declined, or nobody to ask without `--yes`).
pub fn confirm(question: &str, yes: bool) -> Result<&'static str, String> {
    match prompt::confirm(question, yes, false) {
        Answer::Yes => Ok("person"),
        Answer::AssumedYes => Ok("--yes"),
        Answer::No => Err("not confirmed".into()),
        Answer::CannotAsk(reason) => Err(format!(
            "this changes a protected database and needs confirmation, but nobody can be asked ({reason}); rerun with --yes to confirm"
        )),
    }
}
