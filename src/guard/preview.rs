//! What a deploy to a protected environment will do, for the person who confirms it:
//! the pending migrations' statements with the locks they take and their findings.
//! A long deploy is shortened to what needs reading (`-v` shows everything), so the
//! risky statements are not lost among hundreds of harmless ones.

use super::migrations::Review;
use crate::lint::FileReport;

/// A preview of more pending migrations than this is shortened unless `-v`.
const PREVIEW_ALL_UP_TO: usize = 5;
/// Migrations a shortened preview shows in full: those with findings or locks on
/// existing tables first, else the first ones.
const PREVIEW_SHOWN: usize = 10;
const PREVIEW_FIRST: usize = 3;

/// How a deploy gate shows its preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewMode {
    /// Before asking to confirm a deploy.
    Confirm,
    /// `--dry-run`: nothing will change.
    DryRun,
}

/// What a deploy to a protected environment will do: each pending migration with each
/// statement and the lock it takes, the lint findings, and the backup it relies on.
/// With many pending migrations and not `verbose`, only those that matter in review
/// are shown in full (lint findings, or a lock on a table that exists before the
/// deploy; else the first few), the others counted, with the way to see them all.
pub fn render_preview(
    review: &Review,
    env: &str,
    backup: Option<&str>,
    verbose: bool,
    mode: PreviewMode,
) -> String {
    let n = review.pending.len();
    let mut out = format!(
        "{} the protected database of `{env}`: {n} pending migration{}\n",
        match mode {
            PreviewMode::Confirm => "About to change",
            PreviewMode::DryRun => "Would change",
        },
        if n == 1 { "" } else { "s" }
    );
    let everything = verbose || n <= PREVIEW_ALL_UP_TO;
    let shown: Vec<usize> = if everything {
        (0..n).collect()
    } else {
        let notable: Vec<usize> = (0..n).filter(|i| notable(&review.pending[*i].1)).collect();
        if notable.is_empty() {
            (0..n.min(PREVIEW_FIRST)).collect()
        } else {
            notable
        }
    };
    let cap = if everything { n } else { PREVIEW_SHOWN };
    let hidden_notable = shown.len().saturating_sub(cap);
    let shown = &shown[..shown.len().min(cap)];
    for &i in shown {
        let (name, report) = &review.pending[i];
        render_migration(&mut out, name, report);
    }
    let rest = n - shown.len();
    if rest > 0 {
        let what = if hidden_notable > 0 {
            format!(
                "{hidden_notable} more with findings or locks on existing tables, {} without",
                rest - hidden_notable
            )
        } else {
            "no lint findings, no lock on a table that exists before this deploy".to_string()
        };
        out.push_str(&format!(
            "  … and {rest} more pending migration{} ({what}); every statement of every migration: -v (without deploying: dbflow migrate deploy --env {env} --dry-run -v)\n",
            if rest == 1 { "" } else { "s" },
        ));
    }
    out.push_str(&format!(
        "  backup: {}\n",
        backup
            .unwrap_or("none taken in this run (take one first: a `backup` step before `deploy`)")
    ));
    out
}

/// A migration a person should read before confirming: it has findings or locks a
/// table that exists before the deploy.
fn notable(report: &FileReport) -> bool {
    !report.findings.is_empty()
        || report
            .statements
            .iter()
            .any(|s| s.locks.iter().any(|l| !l.new_table))
}

/// One migration of the preview: its statements with their locks, then its findings.
fn render_migration(out: &mut String, name: &str, report: &FileReport) {
    out.push_str(&format!("  {name}\n"));
    for statement in &report.statements {
        let locks = statement
            .locks
            .iter()
            .map(|l| {
                let size = match l.size {
                    Some(size) if size.is_empty() => " (empty)".to_string(),
                    Some(size) => format!(" ({size})"),
                    None => String::new(),
                };
                format!(
                    "{} on {}{}{}",
                    l.mode,
                    l.table,
                    if l.new_table { String::new() } else { size },
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
            statement.line, statement.sql
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::lock::{Lock, LockMode};
    use crate::lint::StatementLocks;

    /// A migration with one `CREATE INDEX` on `table`, new in this deploy or not.
    fn pending(i: usize, table: &str, new_table: bool) -> (String, FileReport) {
        let name = format!("m{i:03}");
        let report = FileReport {
            path: format!("prisma/migrations/{name}/migration.sql"),
            migration: Some(name.clone()),
            statement_count: 1,
            findings: Vec::new(),
            statements: vec![StatementLocks {
                line: 1,
                sql: format!("CREATE INDEX \"i{i}\" ON {table} (\"x\")"),
                locks: vec![Lock {
                    mode: LockMode::Share,
                    table: table.to_string(),
                    rewrite: false,
                    new_table,
                    size: None,
                }],
            }],
        };
        (name, report)
    }

    fn review(existing: &[usize], n: usize) -> Review {
        Review {
            pending: (0..n)
                .map(|i| pending(i, "\"T\"", !existing.contains(&i)))
                .collect(),
            ..Review::default()
        }
    }

    #[test]
    fn a_short_deploy_shows_every_migration() {
        let text = render_preview(&review(&[], 5), "prod", None, false, PreviewMode::Confirm);
        for i in 0..5 {
            assert!(text.contains(&format!("  m{i:03}\n")), "{text}");
        }
        assert!(!text.contains("more pending"), "{text}");
    }

    #[test]
    fn a_long_deploy_shows_locks_on_existing_tables_first_and_counts_the_rest() {
        let text = render_preview(
            &review(&[7, 30], 40),
            "prod",
            None,
            false,
            PreviewMode::Confirm,
        );
        assert!(
            text.contains("  m007\n") && text.contains("  m030\n"),
            "{text}"
        );
        assert!(!text.contains("  m000\n"), "{text}");
        assert!(
            text.contains("  … and 38 more pending migrations (no lint findings, no lock on a table that exists before this deploy); every statement of every migration: -v"),
            "{text}"
        );
        // At most ten in full; the hidden risky ones are counted apart.
        let existing: Vec<usize> = (0..12).collect();
        let text = render_preview(
            &review(&existing, 40),
            "prod",
            None,
            false,
            PreviewMode::Confirm,
        );
        assert!(
            text.contains("  m009\n") && !text.contains("  m010\n"),
            "{text}"
        );
        assert!(
            text.contains("… and 30 more pending migrations (2 more with findings or locks on existing tables, 28 without)"),
            "{text}"
        );
        // -v: everything.
        let text = render_preview(
            &review(&existing, 40),
            "prod",
            None,
            true,
            PreviewMode::DryRun,
        );
        assert!(text
            .starts_with("Would change the protected database of `prod`: 40 pending migrations\n"));
        for i in 0..40 {
            assert!(text.contains(&format!("  m{i:03}\n")), "{text}");
        }
    }

    #[test]
    fn without_anything_notable_the_first_few_are_shown() {
        let text = render_preview(&review(&[], 40), "prod", None, false, PreviewMode::Confirm);
        assert!(
            text.contains("  m002\n") && !text.contains("  m003\n"),
            "{text}"
        );
        assert!(text.contains("… and 37 more pending migrations"), "{text}");
    }
}
