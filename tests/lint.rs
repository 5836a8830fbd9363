//! `dbflow lint`: the corpus under `tests/fixtures/lint/` (every rule fired and not
//! fired, Prisma-generated SQL, comments and dollar-quoted bodies that merely contain
//! the words, multi-statement files, syntax errors), each file's report an insta
//! snapshot; then the formats, severities per environment and exit codes.
//!
//! Every `.sql` file in the corpus is linted for `production` with the Workflowfile of
//! its folder. A new file becomes a case without touching this file.

use crate::support::cli::Test;
use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

fn corpus(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            corpus(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
}

fn snapshot_name(file: &Path) -> String {
    file.strip_prefix(corpus_root())
        .unwrap()
        .with_extension("")
        .to_string_lossy()
        .replace('/', "__")
}

fn check_fixture(file: &Path) {
    let dir = file.parent().unwrap();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let output = Test::in_dir(dir)
        .args(["lint", "--env", "production", "--static", name.as_str()])
        .run();
    assert_eq!(output.stderr, "", "{name}: nothing on stderr");
    let errors = output.stdout.matches("\nerror[").count()
        + usize::from(output.stdout.starts_with("error["));
    assert_eq!(
        output.code,
        i32::from(errors > 0),
        "{name}: exit code 1 exactly when there are errors\n{}",
        output.stdout
    );
    insta::assert_snapshot!(
        snapshot_name(file),
        format!("exit code: {}\n{}", output.code, output.stdout)
    );
}

#[test]
fn the_corpus_reports_match_their_snapshots() {
    let mut files = Vec::new();
    corpus(&corpus_root(), &mut files);
    assert!(
        files.len() >= 40,
        "expected at least 40 migrations under tests/fixtures/lint, found {}",
        files.len()
    );
    let mut failed = Vec::new();
    for file in &files {
        if std::panic::catch_unwind(|| check_fixture(file)).is_err() {
            failed.push(snapshot_name(file));
        }
    }
    assert!(failed.is_empty(), "failing fixtures: {}", failed.join(", "));
}

#[test]
fn every_rule_fires_somewhere_in_the_corpus_and_some_files_are_clean() {
    // Each folder with the Workflowfile it is linted with.
    let mut files = Vec::new();
    for dir in [corpus_root(), corpus_root().join("prisma-deploy")] {
        let output = Test::in_dir(&dir)
            .args(["lint", "--env", "production", "--static", "--json", "."])
            .run();
        output.assert_code(1);
        let doc: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
        files.extend(doc["files"].as_array().unwrap().iter().cloned());
    }
    let fired: std::collections::BTreeSet<&str> = files
        .iter()
        .flat_map(|f| f["findings"].as_array().unwrap())
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    let rules = Test::in_dir(corpus_root()).args(["lint", "--rules"]).run();
    rules.assert_code(0);
    for line in rules.stdout.lines() {
        let id = line.split_whitespace().next().unwrap();
        assert!(
            fired.contains(id),
            "rule `{id}` fires nowhere in the corpus"
        );
    }
    let clean = files
        .iter()
        .filter(|f| f["findings"].as_array().unwrap().is_empty())
        .count();
    assert!(clean >= 15, "only {clean} clean files");
}

const RISKY: &str = "ALTER TABLE \"User\" DROP COLUMN \"bio\";\n";

fn project() -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: postgres://app@localhost/shop_dev
                protection: sandbox
              staging:
                url: postgres://app@staging/shop
                protection: shared
              production:
                url: postgres://app@prod/shop
            ",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        // "User" predates the migrations folder (a baseline): it is not new for the run.
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"Post\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"bio\" TEXT);\n",
        )
        .file("prisma/migrations/20240102000000_bio/migration.sql", RISKY)
        .file(
            "prisma/migrations/20240102000000_bio/down.sql",
            "ALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT;\n",
        )
}

#[test]
fn severity_follows_the_environment() {
    let t = project();
    // Default: the migrations folder, for the default environment (local, sandbox).
    let out = t.run_with(["lint"]);
    out.assert_code(0);
    assert!(out.stdout.starts_with("warning[drop-column]: dropping column bio from \"User\" deletes its data\n  --> prisma/migrations/20240102000000_bio/migration.sql:1\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .ends_with("for environment `local` (sandbox): 0 errors, 1 warning, 0 allowed\n"),
        "{}",
        out.stdout
    );
    for env in ["staging", "production"] {
        let out = t.run_with(["lint", "--env", env]);
        out.assert_code(1);
        assert!(
            out.stdout.starts_with("error[drop-column]"),
            "{}",
            out.stdout
        );
    }
    // production's protection comes from its name.
    let out = t.run_with(["lint", "--env", "production"]);
    assert!(
        out.stdout
            .contains("for environment `production` (protected): 1 error"),
        "{}",
        out.stdout
    );
}

#[test]
fn folders_skip_down_sql_unless_it_is_named() {
    let t = project();
    let out = t.run_with(["lint", "prisma/migrations"]);
    out.assert_code(0);
    assert!(
        out.stdout.starts_with("skipped 1 down.sql file (rollback scripts are linted only when named): prisma/migrations/20240102000000_bio/down.sql\n"),
        "{}",
        out.stdout
    );
    let out = t.run_with(["lint", "prisma/migrations/20240102000000_bio/down.sql"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("linted 1 file (1 statement)"),
        "{}",
        out.stdout
    );
    t.run_with(["lint", "no/such.sql"]).assert_code(2);
}

#[test]
fn json_and_github_formats() {
    let t = project();
    let out = t.run_with(["lint", "--env", "staging", "--json"]);
    out.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["env"], "staging");
    assert_eq!(doc["protection"], "shared");
    assert_eq!(doc["summary"]["errors"], 1);
    let finding = &doc["files"][1]["findings"][0];
    assert_eq!(finding["rule"], "drop-column");
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["line"], 1);
    assert_eq!(
        finding["statement"],
        "ALTER TABLE \"User\" DROP COLUMN \"bio\""
    );
    assert_eq!(finding["lock"]["mode"], "ACCESS EXCLUSIVE");
    assert_eq!(finding["lock"]["table"], "\"User\"");
    assert_eq!(finding["lock"]["rewrite"], false);
    assert!(finding["instead"]
        .as_str()
        .unwrap()
        .contains("expand–contract"));
    // --format json is the same document.
    let same = t.run_with(["lint", "--env", "staging", "--format", "json"]);
    assert_eq!(same.stdout, out.stdout);

    let out = t.run_with(["lint", "--env", "staging", "--format", "github"]);
    out.assert_code(1);
    let first = out.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("::error file=prisma/migrations/20240102000000_bio/migration.sql,line=1,title=dbflow lint%3A drop-column::dropping column bio from \"User\" deletes its data%0Alock: ACCESS EXCLUSIVE on \"User\""),
        "{first}"
    );
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    let out = t.run_with(["lint", "--format", "github"]);
    assert!(out.stdout.starts_with("::warning file="), "{}", out.stdout);
}

#[test]
fn rules_are_listed_with_stable_ids() {
    let out = Test::new().run_with(["lint", "--rules"]);
    out.assert_code(0);
    let ids: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "drop-table",
            "drop-column",
            "rename-column",
            "rename-table",
            "change-column-type",
            "set-not-null",
            "add-column-not-null",
            "add-column-volatile-default",
            "drop-default-after-add",
            "create-index-non-concurrently",
            "drop-index-non-concurrently",
            "add-foreign-key",
            "add-check-constraint",
            "add-unique-constraint",
            "truncate",
            "delete-without-where",
            "update-without-where",
            "concurrently-in-transaction",
            "mixed-schema-and-data",
            "missing-lock-timeout",
            "syntax-error",
            "invalid-annotation",
        ]
    );
}

#[test]
fn sqlite_projects_have_nothing_to_lint() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:dev.db\n",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"sqlite\"\n",
        )
        .file(
            "prisma/migrations/1_init/migration.sql",
            "CREATE TABLE \"A\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT);\n",
        );
    let out = t.run_with(["lint"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "holds sqlite migrations (migration_lock.toml) and the linter reads PostgreSQL"
        ),
        "{}",
        out.stdout
    );
}
