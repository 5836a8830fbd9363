//! The guard's view of the migrations about to be applied: applied files must be
//! unchanged, pending ones are linted with the environment's severity, and on a
//! protected environment a person sees what will change (every statement with the lock
//! it takes, the findings, the backup it relies on) before confirming.

use crate::config::{Project, Protection};
use crate::db::migrate::{State, Status};
use crate::db::store::Store;
use crate::lint::{self, report, FileReport, Options, Severity};
use crate::ui::prompt::{self, Answer};
use std::path::Path;

/// The lint options for migrations going to an environment of this protection level.
/// Locks only matter on databases others use, so on a sandbox the lock_timeout question
/// is answered for where the file goes next: a protected environment.
pub fn lint_options(project: &Project, protection: Protection) -> Options {
    let deployed_to = match protection {
        Protection::Sandbox => Protection::Protected,
        other => other,
    };
    Options {
        severity: Severity::for_protection(protection),
        applied_with_lock_timeout: crate::db::target::applies_lock_timeout(project, deployed_to),
        with_statements: false,
    }
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
}

impl Review {
    /// Lint errors (not allowed, error severity) over every pending migration.
    pub fn errors(&self) -> usize {
        self.summary().errors
    }

    /// Totals.
    pub fn summary(&self) -> report::Summary {
        let reports: Vec<FileReport> = self.pending.iter().map(|(_, r)| r.clone()).collect();
        report::Summary::of(&reports)
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
                "{errors} lint error{} in pending migrations (fix them, or allow each with `-- dbflow:allow <rule> reason: …`)",
                if errors == 1 { "" } else { "s" }
            ));
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

/// Reviews `store` against `status` for an environment of `protection`.
pub fn review(
    project: &Project,
    protection: Protection,
    postgres: bool,
    store: &Store,
    status: &Status,
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
        with_statements: true,
        ..lint_options(project, protection)
    };
    for entry in &status.entries {
        if !matches!(entry.state, State::Pending | State::RolledBack) {
            continue;
        }
        let Some(migration) = store.get(&entry.name) else {
            continue;
        };
        let shown = shown_path(&migration.path);
        if let Some(why) = lint::too_large(migration.len) {
            review.not_linted.push((entry.name.clone(), why));
            review
                .pending
                .push((entry.name.clone(), lint::lint_sql(&shown, "", &options)));
            continue;
        }
        let sql = match migration.text() {
            Ok(sql) => sql,
            Err(e) => {
                review.not_linted.push((entry.name.clone(), e.to_string()));
                review
                    .pending
                    .push((entry.name.clone(), lint::lint_sql(&shown, "", &options)));
                continue;
            }
        };
        let text = sql.strip_prefix('\u{feff}').unwrap_or(&sql);
        review
            .pending
            .push((entry.name.clone(), lint::lint_sql(&shown, text, &options)));
    }
    review
}

/// A path as people should see it (no leading `./`).
pub fn shown_path(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

/// The review for people: modified files, then every finding, then a summary line.
pub fn render_review(review: &Review, env: &str) -> String {
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
    for (_, report) in &review.pending {
        for finding in &report.findings {
            out.push_str(&report::human_finding(&report.path, finding));
        }
    }
    let s = review.summary();
    if review.pending.is_empty() {
        out.push_str("no pending migrations to lint\n");
    } else {
        out.push_str(&format!(
            "linted {} pending migration{} for `{env}`: {}\n",
            review.pending.len() - review.not_linted.len(),
            if review.pending.len() - review.not_linted.len() == 1 {
                ""
            } else {
                "s"
            },
            s.counts()
        ));
    }
    out
}

/// What a deploy to a protected environment will do: every pending migration with each
/// statement and the lock it takes, the lint findings, and the backup it relies on.
pub fn render_preview(review: &Review, env: &str, backup: Option<&str>) -> String {
    let mut out = format!(
        "About to change the protected database of `{env}`: {} pending migration{}\n",
        review.pending.len(),
        if review.pending.len() == 1 { "" } else { "s" }
    );
    for (name, report) in &review.pending {
        out.push_str(&format!("  {name}\n"));
        for statement in &report.statements {
            let locks = statement
                .locks
                .iter()
                .map(|l| {
                    format!(
                        "{} on {}{}",
                        l.mode,
                        l.table,
                        match (l.new_table, l.rewrite) {
                            (true, _) => " (new)",
                            (false, true) => ", rewrites it",
                            (false, false) => "",
                        }
                    )
                })
                .collect::<Vec<_>>();
            let locks = if locks.is_empty() {
                "no table lock".to_string()
            } else {
                locks.join("; ")
            };
            out.push_str(&format!(
                "    line {:>3}  {}\n              → {locks}\n",
                statement.line,
                lint::ast::summary(&statement.sql)
            ));
        }
        for finding in &report.findings {
            let label = if finding.allowed.is_some() {
                "allowed"
            } else {
                finding.severity.as_str()
            };
            out.push_str(&format!(
                "    {label}[{}] line {}: {}\n",
                finding.rule, finding.line, finding.message
            ));
        }
    }
    out.push_str(&format!(
        "  backup: {}\n",
        backup
            .unwrap_or("none taken in this run (take one first: a `backup` step before `deploy`)")
    ));
    out
}

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
