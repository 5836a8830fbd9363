//! Renderings of lint results: for people, as JSON, and as GitHub Actions workflow
//! commands (annotations on the pull request's diff).

use super::{FileReport, Finding, Severity, Unreadable};
use serde_json::json;

/// Totals over a set of reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Files linted.
    pub files: usize,
    /// Statements in them.
    pub statements: usize,
    /// Findings that are errors.
    pub errors: usize,
    /// Findings that are warnings.
    pub warnings: usize,
    /// Findings silenced by an annotation.
    pub allowed: usize,
}

impl Summary {
    /// Counts `reports`.
    pub fn of(reports: &[FileReport]) -> Self {
        Self::over(reports)
    }

    /// Counts reports held anywhere (no copy of them is made).
    pub fn over<'a>(reports: impl IntoIterator<Item = &'a FileReport>) -> Self {
        let mut s = Summary::default();
        for r in reports {
            s.files += 1;
            s.statements += r.statement_count;
            for f in &r.findings {
                if f.allowed.is_some() {
                    s.allowed += 1;
                } else if f.severity == Severity::Error {
                    s.errors += 1;
                } else {
                    s.warnings += 1;
                }
            }
        }
        s
    }

    /// `3 errors, 1 warning, 2 allowed`.
    pub fn counts(&self) -> String {
        format!(
            "{} error{}, {} warning{}, {} allowed",
            self.errors,
            plural(self.errors),
            self.warnings,
            plural(self.warnings),
            self.allowed
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How many lines of a statement a report shows.
const SHOWN_LINES: usize = 4;

/// One finding for people, rustc style.
pub fn human_finding(path: &str, f: &Finding) -> String {
    let label = if f.allowed.is_some() {
        "allowed"
    } else {
        f.severity.as_str()
    };
    let mut out = format!("{label}[{}]: {}\n", f.rule, f.message);
    out.push_str(&format!("  --> {path}:{}\n", f.line));
    let lines: Vec<&str> = f.statement.lines().collect();
    let last_shown = f.line + lines.len().min(SHOWN_LINES) - 1;
    let width = last_shown.to_string().len();
    let pad = " ".repeat(width);
    out.push_str(&format!("{pad} |\n"));
    for (i, line) in lines.iter().take(SHOWN_LINES).enumerate() {
        out.push_str(&format!("{:>width$} | {}\n", f.line + i, line.trim_end()));
    }
    if lines.len() > SHOWN_LINES {
        out.push_str(&format!(
            "{pad} | … ({} more line{})\n",
            lines.len() - SHOWN_LINES,
            plural(lines.len() - SHOWN_LINES)
        ));
    }
    out.push_str(&format!("{pad} |\n"));
    if let Some(lock) = &f.lock {
        out.push_str(&format!("{pad} = lock: {}\n", lock.describe()));
    }
    if let Some(note) = &f.note {
        out.push_str(&format!("{pad} = note: {note}\n"));
    }
    match &f.allowed {
        Some(allowed) => out.push_str(&format!("{pad} = {}\n", allowed_by(allowed))),
        None => {
            out.push_str(&format!("{pad} = why: {}\n", f.why));
            out.push_str(&format!("{pad} = instead: {}\n", f.instead));
        }
    }
    out
}

/// `allowed by the annotation at line 3: why` / `allowed by lint.allow (Workflowfile.yaml:9:7): why`.
pub fn allowed_by(allowed: &super::Allowed) -> String {
    match &allowed.config {
        Some(at) => format!("allowed by lint.allow ({at}): {}", allowed.reason),
        None => format!(
            "allowed by the annotation at line {}: {}",
            allowed.line, allowed.reason
        ),
    }
}

/// The whole report for people.
pub fn human(reports: &[FileReport], unreadable: &[Unreadable], target: &str) -> String {
    let mut out = String::new();
    for report in reports {
        for f in &report.findings {
            out.push_str(&human_finding(&report.path, f));
            out.push('\n');
        }
    }
    for u in unreadable {
        out.push_str(&format!("error: not linted: {}: {}\n\n", u.path, u.error));
    }
    let s = Summary::of(reports);
    let what = format!(
        "linted {} file{} ({} statement{}) for {target}",
        s.files,
        plural(s.files),
        s.statements,
        plural(s.statements)
    );
    if s.errors + s.warnings + s.allowed == 0 && unreadable.is_empty() {
        out.push_str(&format!("✔ {what}: no findings\n"));
    } else {
        let mark = if s.errors > 0 || !unreadable.is_empty() {
            "✘"
        } else {
            "✔"
        };
        out.push_str(&format!("{mark} {what}: {}\n", s.counts()));
    }
    out
}

/// The report as one JSON document.
pub fn json(
    reports: &[FileReport],
    unreadable: &[Unreadable],
    env: &str,
    protection: &str,
) -> serde_json::Value {
    json!({
        "env": env,
        "protection": protection,
        "files": reports,
        "unreadable": unreadable,
        "summary": Summary::of(reports),
    })
}

/// GitHub Actions workflow commands: one `::error`/`::warning`/`::notice` per finding.
pub fn github(reports: &[FileReport], unreadable: &[Unreadable]) -> String {
    let mut out = String::new();
    for report in reports {
        for f in &report.findings {
            let command = match (&f.allowed, f.severity) {
                (Some(_), _) => "notice",
                (None, Severity::Error) => "error",
                (None, Severity::Warning) => "warning",
            };
            let mut body = f.message.clone();
            if let Some(lock) = &f.lock {
                body.push_str(&format!("\nlock: {}", lock.describe()));
            }
            if let Some(note) = &f.note {
                body.push_str(&format!("\nnote: {note}"));
            }
            match &f.allowed {
                Some(a) => body.push_str(&format!("\n{}", allowed_by(a))),
                None => {
                    body.push_str(&format!("\nwhy: {}\ninstead: {}", f.why, f.instead));
                }
            }
            out.push_str(&format!(
                "::{command} file={},line={},title={}::{}\n",
                escape_property(&report.path),
                f.line,
                escape_property(&format!("dbflow lint: {}", f.rule)),
                escape_data(&body)
            ));
        }
    }
    for u in unreadable {
        out.push_str(&format!(
            "::error file={}::{}\n",
            escape_property(&u.path),
            escape_data(&format!("not linted: {}", u.error))
        ));
    }
    let s = Summary::of(reports);
    out.push_str(&format!(
        "dbflow lint: {} file{}, {}\n",
        s.files,
        plural(s.files),
        s.counts()
    ));
    out
}

/// Escaping for a workflow command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping for a workflow command's property value.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::{lint_sql, Options};

    fn report() -> FileReport {
        lint_sql(
            "m.sql",
            "-- dbflow:allow truncate reason: staging copy, refilled nightly\nTRUNCATE \"Cache\";\nALTER TABLE \"User\"\n  DROP COLUMN \"bio\";\n",
            &Options::new(Severity::Error, true),
        )
    }

    #[test]
    fn human_output_names_file_line_lock_and_alternative() {
        let text = human(&[report()], &[], "environment `production` (protected)");
        assert!(text.contains("error[drop-column]: dropping column bio from \"User\" deletes its data\n  --> m.sql:3\n"), "{text}");
        assert!(
            text.contains("3 | ALTER TABLE \"User\"\n4 |   DROP COLUMN \"bio\"\n"),
            "{text}"
        );
        assert!(text.contains("= lock: ACCESS EXCLUSIVE on \"User\" (blocks reads and writes), rewrites the table: no"), "{text}");
        assert!(text.contains("allowed[truncate]"), "{text}");
        assert!(
            text.contains("= allowed by the annotation at line 1: staging copy, refilled nightly"),
            "{text}"
        );
        assert!(text.ends_with("✘ linted 1 file (2 statements) for environment `production` (protected): 1 error, 0 warnings, 1 allowed\n"), "{text}");
    }

    #[test]
    fn github_commands_are_escaped() {
        let text = github(&[report()], &[]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("::notice file=m.sql,line=2,title=dbflow lint%3A truncate::TRUNCATE \"Cache\" deletes every row%0Alock: "), "{}", lines[0]);
        assert!(
            lines[1].starts_with("::error file=m.sql,line=3,title=dbflow lint%3A drop-column::"),
            "{}",
            lines[1]
        );
        assert!(!lines[1].contains('\n'));
        assert_eq!(escape_data("100% a\nb"), "100%25 a%0Ab");
    }
}
