//! Pre-commit scanning: dangerous database operations in changed files (shell scripts,
//! package.json scripts, SQL, CI configs, JS/TS scripts).
//!
//! SQL files are parsed with PostgreSQL's grammar (comments, strings and dollar-quoted
//! bodies never match); other files are read line by line, comment lines skipped. A
//! finding is silenced by `dbflow:allow <rule> reason: …` in a comment on the same line
//! or the line above (in SQL: the same annotations as `dbflow lint`).

use crate::lint::annotation;
use crate::lint::ast::TableRef;
use crate::lint::Migration;
use pg_query::protobuf::node::Node as NodeEnum;
use pg_query::protobuf::ObjectType;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// What kind of file a path is, for scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQL, parsed.
    Sql,
    /// `package.json`: its `scripts` are read.
    PackageJson,
    /// A script or config read line by line; `deploy` when it runs in deploys (CI
    /// configs, Dockerfiles, files named like `deploy`/`release`), where even
    /// `migrate dev` is dangerous.
    Lines {
        /// Runs as part of a deploy.
        deploy: bool,
    },
}

/// Which kind `path` is, or `None` for files that are not scanned.
pub fn kind_of(path: &str) -> Option<Kind> {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    if name == "package.json" {
        return Some(Kind::PackageJson);
    }
    if name.ends_with(".sql") {
        return Some(Kind::Sql);
    }
    let ci = lower.starts_with(".github/workflows/")
        || lower.contains("/.github/workflows/")
        || lower.starts_with(".circleci/")
        || matches!(
            name,
            ".gitlab-ci.yml"
                | "bitbucket-pipelines.yml"
                | "azure-pipelines.yml"
                | "jenkinsfile"
                | "procfile"
                | "fly.toml"
                | "render.yaml"
                | "app.yaml"
                | "vercel.json"
                | "netlify.toml"
        )
        || name.starts_with("dockerfile")
        || name.ends_with(".dockerfile");
    let deploy_name = name.contains("deploy") || name.contains("release") || name.contains("prod");
    let scripty = [
        ".sh", ".bash", ".zsh", ".yml", ".yaml", ".toml", ".js", ".mjs", ".cjs", ".ts", ".mts",
        ".cts", ".py", ".rb", ".ps1",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || matches!(name, "makefile" | "justfile" | "taskfile");
    (ci || scripty).then_some(Kind::Lines {
        deploy: ci || deploy_name,
    })
}

/// One dangerous pattern found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanFinding {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// Rule id.
    pub rule: &'static str,
    /// The offending line or statement.
    pub text: String,
    /// What it does.
    pub message: String,
    /// The annotation's reason, when one allows it.
    pub allowed: Option<String>,
}

struct Pattern {
    rule: &'static str,
    regex: Regex,
    message: &'static str,
    deploy_only: bool,
}

fn patterns() -> &'static [Pattern] {
    static PATTERNS: OnceLock<Vec<Pattern>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let p = |rule, re: &str, message, deploy_only| Pattern {
            rule,
            regex: Regex::new(re).expect("scan pattern"),
            message,
            deploy_only,
        };
        vec![
            p("migrate-reset", r"\bprisma(?:@\S+)?\s+migrate\s+reset\b", "`prisma migrate reset` drops every table and re-applies the migrations: run with the wrong DATABASE_URL it wipes a shared database", false),
            p("db-push-accept-data-loss", r"\bprisma(?:@\S+)?\s+db\s+push\b.*--accept-data-loss", "`prisma db push --accept-data-loss` drops columns and tables missing from schema.prisma, with their data", false),
            p("db-push-force-reset", r"\bprisma(?:@\S+)?\s+db\s+push\b.*--force-reset", "`prisma db push --force-reset` drops and recreates the whole schema", false),
            p("migrate-dev-in-deploy", r"\bprisma(?:@\S+)?\s+migrate\s+dev\b", "`prisma migrate dev` in a deploy script: it is a development command that resets the database when it finds drift; deploys use `prisma migrate deploy`", true),
            p("drop-database", r"(?i)\bdrop\s+database\b|(?:^|[\s;&|(`])dropdb\s", "drops a whole database", false),
            p("drop-table", r"(?i)\bdrop\s+table\b", "`DROP TABLE` deletes a table and every row in it", false),
            p("truncate", r#"(?i)\btruncate\s+(?:table\s+)?(?:only\s+)?["\w]"#, "`TRUNCATE` deletes every row of a table", false),
            p("delete-without-where", r#"(?i)\bdelete\s+from\s+[\w".]+(?:\s+(?:as\s+)?\w+)?\s*(?:;|$|["'`)])"#, "`DELETE` without `WHERE` deletes every row of a table", false),
        ]
    })
}

/// Rule ids the scan reports.
pub fn rule_ids() -> Vec<&'static str> {
    patterns().iter().map(|p| p.rule).collect()
}

/// Scans one file's text. `changed` limits findings to those lines (a staged diff);
/// `None` means every line counts.
pub fn scan(
    path: &str,
    text: &str,
    kind: Kind,
    changed: Option<&BTreeSet<usize>>,
) -> Vec<ScanFinding> {
    let mut found = match kind {
        Kind::Sql => scan_sql(path, text),
        Kind::PackageJson => scan_package_json(path, text),
        Kind::Lines { deploy } => scan_lines(path, text, deploy),
    };
    if let Some(changed) = changed {
        found.retain(|f| {
            let lines = f.text.lines().count().max(1);
            (f.line..f.line + lines).any(|l| changed.contains(&l))
        });
    }
    found
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#')
        || t.starts_with("//")
        || t.starts_with("--")
        || t.starts_with("/*")
        || t.starts_with('*')
        || t.starts_with("REM ")
}

/// `dbflow:allow` on this line or the line above, allowing `rule`.
fn line_allowance(lines: &[&str], index: usize, rule: &str) -> Option<String> {
    let candidates = [Some(index), index.checked_sub(1)];
    for i in candidates.into_iter().flatten() {
        let line = lines.get(i)?;
        let Some(at) = line.find(annotation::MARKER) else {
            continue;
        };
        if let Some(Ok((rules, reason))) = annotation::parse_comment(&line[at..]) {
            if rules.iter().any(|r| r == rule) {
                return Some(reason);
            }
        }
    }
    None
}

fn scan_lines(path: &str, text: &str, deploy: bool) -> Vec<ScanFinding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if is_comment(line) {
            continue;
        }
        for p in patterns() {
            if p.deploy_only && !deploy {
                continue;
            }
            if p.regex.is_match(line) {
                out.push(ScanFinding {
                    path: path.to_string(),
                    line: i + 1,
                    rule: p.rule,
                    text: line.trim().to_string(),
                    message: p.message.to_string(),
                    allowed: line_allowance(&lines, i, p.rule),
                });
            }
        }
    }
    out
}

/// Scripts that run when the application is built, started or deployed.
fn deploy_script(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "build"
            | "start"
            | "postinstall"
            | "prestart"
            | "prebuild"
            | "postbuild"
            | "vercel-build"
            | "heroku-postbuild"
            | "release"
    ) || n.contains("deploy")
        || n.contains("release")
        || n.contains("prod")
}

fn scan_package_json(path: &str, text: &str) -> Vec<ScanFinding> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(scripts) = doc.get("scripts").and_then(|s| s.as_object()) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (name, body) in scripts {
        let Some(body) = body.as_str() else { continue };
        let key = format!("\"{name}\"");
        let index = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&key))
            .unwrap_or(0);
        for p in patterns() {
            if p.deploy_only && !deploy_script(name) {
                continue;
            }
            if p.regex.is_match(body) {
                out.push(ScanFinding {
                    path: path.to_string(),
                    line: index + 1,
                    rule: p.rule,
                    text: format!("\"{name}\": \"{body}\""),
                    message: p.message.to_string(),
                    // JSON has no comments: an annotation can only sit in the script
                    // itself (`… # dbflow:allow …` would run) or the key's line above.
                    allowed: line_allowance(&lines, index, p.rule),
                });
            }
        }
    }
    out
}

fn scan_sql(path: &str, text: &str) -> Vec<ScanFinding> {
    let m = Migration::parse(text, true);
    let (annotations, _) = annotation::collect(&m);
    let mut out = Vec::new();
    for s in &m.statements {
        let hit = |rule: &'static str, message: String| ScanFinding {
            path: path.to_string(),
            line: s.line,
            rule,
            text: m.sql(s).to_string(),
            message,
            allowed: annotations
                .iter()
                .find(|a| a.statement == Some(s.index) && a.rules.iter().any(|r| r == rule))
                .map(|a| a.reason.clone()),
        };
        match &s.node {
            NodeEnum::DropStmt(d)
                if ObjectType::try_from(d.remove_type) == Ok(ObjectType::ObjectTable) =>
            {
                for t in crate::lint::ast::object_names(&d.objects) {
                    if !m.is_new(&t, s.index) {
                        out.push(hit(
                            "drop-table",
                            format!(
                                "`DROP TABLE {}` deletes the table and every row in it",
                                t.display()
                            ),
                        ));
                    }
                }
            }
            NodeEnum::TruncateStmt(t) => {
                for r in &t.relations {
                    if let Some(NodeEnum::RangeVar(rv)) = r.node.as_ref() {
                        let table = TableRef::from(rv);
                        if !m.is_new(&table, s.index) {
                            out.push(hit(
                                "truncate",
                                format!("`TRUNCATE {}` deletes every row", table.display()),
                            ));
                        }
                    }
                }
            }
            NodeEnum::DeleteStmt(d) if d.where_clause.is_none() => {
                if let Some(table) = d.relation.as_ref().map(TableRef::from) {
                    if !m.is_new(&table, s.index) {
                        out.push(hit(
                            "delete-without-where",
                            format!(
                                "`DELETE FROM {}` without WHERE deletes every row",
                                table.display()
                            ),
                        ));
                    }
                }
            }
            NodeEnum::DropdbStmt(d) => {
                out.push(hit(
                    "drop-database",
                    format!("`DROP DATABASE {}` deletes a whole database", d.dbname),
                ));
            }
            _ => {}
        }
    }
    // Statements PostgreSQL cannot parse (psql meta-commands, templates) are still read
    // line by line, so a DROP TABLE next to a `\c` is not missed.
    for e in &m.syntax_errors {
        let offset = e.line - 1;
        for mut f in scan_lines(path, &e.sql, false) {
            if patterns()
                .iter()
                .any(|p| p.rule == f.rule && !p.deploy_only)
            {
                f.line += offset;
                out.push(f);
            }
        }
    }
    out
}

/// A finding for people.
pub fn render(f: &ScanFinding) -> String {
    let label = if f.allowed.is_some() {
        "allowed"
    } else {
        "error"
    };
    let mut out = format!(
        "{label}[{}]: {}\n  --> {}:{}\n",
        f.rule, f.message, f.path, f.line
    );
    let first = f.text.lines().next().unwrap_or("");
    out.push_str(&format!(
        "   | {}{}\n",
        first,
        if f.text.lines().count() > 1 {
            " …"
        } else {
            ""
        }
    ));
    match &f.allowed {
        Some(reason) => out.push_str(&format!("   = allowed: {reason}\n")),
        None => out.push_str(&format!(
            "   = if it is meant, say so in a comment on the line above: `dbflow:allow {} reason: …`\n",
            f.rule
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(path: &str, text: &str) -> Vec<(usize, &'static str, bool)> {
        scan(path, text, kind_of(path).unwrap(), None)
            .into_iter()
            .map(|f| (f.line, f.rule, f.allowed.is_some()))
            .collect()
    }

    #[test]
    fn shell_scripts() {
        let text = "#!/bin/sh\n# prisma migrate reset would be bad\nnpx prisma migrate reset --force\npsql \"$URL\" -c \"DROP TABLE users\"\npsql -c 'DELETE FROM sessions;'\npsql -c \"DELETE FROM sessions WHERE expired\"\n# dbflow:allow truncate reason: test fixture table\npsql -c 'TRUNCATE fixtures'\nnpx prisma migrate dev\n";
        assert_eq!(
            rules("scripts/reset.sh", text),
            [
                (3, "migrate-reset", false),
                (4, "drop-table", false),
                (5, "delete-without-where", false),
                (8, "truncate", true)
            ]
        );
        assert_eq!(
            rules("scripts/deploy.sh", "npx prisma migrate dev\n"),
            [(1, "migrate-dev-in-deploy", false)]
        );
    }

    #[test]
    fn ci_configs_and_package_json() {
        assert_eq!(
            rules(".github/workflows/ci.yml", "jobs:\n  deploy:\n    steps:\n      - run: npx prisma migrate dev\n      - run: npx prisma db push --accept-data-loss\n"),
            [(4, "migrate-dev-in-deploy", false), (5, "db-push-accept-data-loss", false)]
        );
        let pkg = "{\n  \"scripts\": {\n    \"dev\": \"prisma migrate dev\",\n    \"build\": \"prisma migrate dev && next build\",\n    \"db:wipe\": \"prisma db push --force-reset\"\n  }\n}\n";
        assert_eq!(
            rules("package.json", pkg),
            [
                (4, "migrate-dev-in-deploy", false),
                (5, "db-push-force-reset", false)
            ]
        );
    }

    #[test]
    fn sql_is_parsed() {
        let text = "-- DROP TABLE in a comment\nSELECT 'DROP TABLE x';\nDO $$ BEGIN EXECUTE 'TRUNCATE y'; END $$;\nCREATE TABLE tmp (id int);\nDROP TABLE tmp;\nDROP TABLE users;\n-- dbflow:allow delete-without-where reason: queue is drained on purpose\nDELETE FROM jobs;\n\\c other\nDROP TABLE legacy;\n";
        assert_eq!(
            rules("db/cleanup.sql", text),
            [
                (6, "drop-table", false),
                (8, "delete-without-where", true),
                (10, "drop-table", false)
            ]
        );
    }

    #[test]
    fn only_changed_lines_count_when_given() {
        let text = "npx prisma migrate reset\necho ok\npsql -c 'DROP TABLE t'\n";
        let changed: BTreeSet<usize> = [3].into_iter().collect();
        let found = scan("a.sh", text, kind_of("a.sh").unwrap(), Some(&changed));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "drop-table");
        assert!(kind_of("README.md").is_none());
        assert!(kind_of("logo.png").is_none());
    }
}
