//! The linter on a long, realistic history (issue 15): a generated Prisma history of
//! 161 migrations (init, enums, `DO $$` blocks, backfills, renames, indexes and foreign
//! keys on tables created earlier in the history). A fresh protected deploy lints clean
//! (tables an earlier pending migration creates are new); the same history on a
//! populated database still flags the risky ones, with table sizes from the live
//! catalog; `lint --since` lints only what a branch adds (the README's CI recipe, end to
//! end in a git repository); `lint --pending`; `lint.allow`; `lint.small_table_rows`.

use crate::support::cli::Test;
use crate::support::pg::{self, TestDb};
use std::path::Path;
use std::process::{Command, Output};

/// Groups of 8 migrations after the init one: 20 groups → 161 migrations.
const GROUPS: usize = 20;

pub(crate) fn name(n: usize, what: &str) -> String {
    format!("2024{:010}_{what}", n)
}

/// A history shaped like a real one. Group `k` creates `Item{k}`, indexes it and a
/// table created earlier in the history, adds a foreign key to "User", grows an enum,
/// runs a `DO $$` block, adds and backfills a column, renames a column, and adds a
/// required column the way Prisma does (NOT NULL DEFAULT, then DROP DEFAULT); every
/// fifth group also indexes "User" (created by the init migration).
pub(crate) fn history(groups: std::ops::RangeInclusive<usize>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if *groups.start() == 1 {
        out.push((
            name(0, "init"),
            "-- CreateEnum\nCREATE TYPE \"Status\" AS ENUM ('active', 'archived');\n\n-- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"email\" TEXT NOT NULL,\n    \"name\" TEXT,\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n\n-- CreateIndex\nCREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n".into(),
        ));
    }
    for k in groups {
        let n = (k - 1) * 8;
        let t = format!("Item{k}");
        let earlier = format!("Item{}", k.div_ceil(2));
        out.push((
            name(n + 1, &format!("create_item{k}")),
            format!("-- CreateTable\nCREATE TABLE \"{t}\" (\n    \"id\" SERIAL NOT NULL,\n    \"userId\" INTEGER,\n    \"name\" TEXT,\n    \"status\" \"Status\" NOT NULL DEFAULT 'active',\n    CONSTRAINT \"{t}_pkey\" PRIMARY KEY (\"id\")\n);\n"),
        ));
        let mut indexes = format!(
            "-- CreateIndex\nCREATE INDEX \"{t}_name_idx\" ON \"{t}\"(\"name\");\n\n-- CreateIndex\nCREATE INDEX \"{earlier}_k{k}_idx\" ON \"{earlier}\"(\"userId\", \"id\");\n"
        );
        if k % 5 == 0 {
            indexes.push_str(&format!(
                "\n-- CreateIndex\nCREATE INDEX \"User_name_k{k}_idx\" ON \"User\"(\"name\");\n"
            ));
        }
        out.push((name(n + 2, &format!("index_item{k}")), indexes));
        out.push((
            name(n + 3, &format!("fk_item{k}")),
            format!("-- AddForeignKey\nALTER TABLE \"{t}\" ADD CONSTRAINT \"{t}_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\"(\"id\") ON DELETE SET NULL ON UPDATE CASCADE;\n"),
        ));
        out.push((
            name(n + 4, &format!("enum_state{k}")),
            format!("-- AlterEnum\nALTER TYPE \"Status\" ADD VALUE 'state{k}';\n"),
        ));
        out.push((
            name(n + 5, &format!("do_block{k}")),
            format!("DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = '{t}_user_idx') THEN\n    EXECUTE 'CREATE INDEX \"{t}_user_idx\" ON \"{t}\" (\"userId\")';\n  END IF;\nEND $$;\n"),
        ));
        out.push((
            name(n + 6, &format!("backfill_item{k}")),
            format!("-- AlterTable\nALTER TABLE \"{t}\" ADD COLUMN \"label\" TEXT;\n\n-- Backfill\nUPDATE \"{t}\" SET \"label\" = \"name\" WHERE \"label\" IS NULL;\n"),
        ));
        out.push((
            name(n + 7, &format!("rename_item{k}")),
            format!("-- AlterTable\nALTER TABLE \"{t}\" RENAME COLUMN \"name\" TO \"title\";\n"),
        ));
        out.push((
            name(n + 8, &format!("currency_item{k}")),
            format!("-- AlterTable\nALTER TABLE \"{t}\" ADD COLUMN \"currency\" TEXT NOT NULL DEFAULT 'EUR';\nALTER TABLE \"{t}\" ALTER COLUMN \"currency\" DROP DEFAULT;\n"),
        ));
    }
    out
}

const WORKFLOWFILE: &str =
    "environments:\n  production:\n    url: ${DATABASE_URL}\n    protection: protected\n";

fn project(url: &str) -> Test {
    Test::new()
        .file("Workflowfile.yaml", WORKFLOWFILE)
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .env("DATABASE_URL", url)
}

pub(crate) fn write_history(t: &Test, groups: std::ops::RangeInclusive<usize>) {
    for (name, sql) in history(groups) {
        t.write(&format!("prisma/migrations/{name}/migration.sql"), &sql);
    }
}

pub(crate) fn applied(db: &TestDb) -> usize {
    db.psql("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
        .parse()
        .unwrap()
}

#[test]
fn a_fresh_protected_deploy_of_a_long_history_lints_clean() {
    let Some(db) = pg::database("lint_history_fresh_deploy") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=GROUPS);
    // Statically too: the whole folder is one run, in migration order.
    let out = t.run_with(["lint", "--env", "production", "--static"]);
    out.assert_code(0);
    assert!(
        out.stdout.ends_with(
            "linted 161 files (227 statements) for environment `production` (protected): no findings\n"
        ),
        "{}",
        out.stdout
    );
    let out = t.run_with(["migrate", "deploy", "--yes"]);
    out.assert_code(0);
    // No finding, so no lint summary; the preview lists every migration.
    assert!(
        out.stdout.contains(
            "About to change the protected database of `production`: 161 pending migrations\n"
        ),
        "{}",
        out.stdout
    );
    for noise in ["error", "warning", "linted"] {
        assert!(!out.stdout.contains(noise), "{noise}: {}", out.stdout);
    }
    assert_eq!(applied(&db), 161);
}

#[test]
fn the_same_history_on_a_populated_database_still_flags_the_risky_ones() {
    let Some(db) = pg::database("lint_history_populated") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=10);
    t.run_with(["migrate", "deploy", "--yes"]).assert_code(0);
    assert_eq!(applied(&db), 81);
    // Production data: many users, a handful of rows in the item tables.
    db.psql("INSERT INTO \"User\" (\"email\", \"name\") SELECT 'u' || i || '@example.com', 'user ' || i FROM generate_series(1, 20000) i");
    for k in 1..=10 {
        db.psql(&format!(
            "INSERT INTO \"Item{k}\" (\"userId\", \"title\", \"currency\") SELECT i, 'item ' || i, 'EUR' FROM generate_series(1, 5) i"
        ));
    }
    db.psql("ANALYZE");
    write_history(&t, 11..=GROUPS);

    let out = t.run_with(["migrate", "deploy", "--yes"]);
    out.assert_code(3);
    let text = out.stdout.clone();
    assert!(
        text.contains("linted 80 pending migrations for `production` against its database ("),
        "{text}"
    );
    // "User" (20,000 rows) is risky: errors, with its size.
    assert!(
        text.contains(&format!(
            "  {}: 1 error (create-index-non-concurrently on \"User\" (",
            name(14 * 8 + 2, "index_item15")
        )) && text.contains(" rows, "),
        "{text}"
    );
    // Item6…Item10 (5 rows): below lint.small_table_rows, warnings.
    assert!(
        text.contains("1 warning (create-index-non-concurrently on \"Item6\" (5 rows, "),
        "{text}"
    );
    assert!(
        text.contains("every finding with why and the safe way: dbflow lint --pending --env production (or -v)"),
        "{text}"
    );
    assert!(
        out.stderr
            .contains("blocked by the guard: deploy to `production` (protected): 2 lint errors"),
        "{}",
        out.stderr
    );
    assert_eq!(applied(&db), 81, "nothing applied");

    // The full list, for the pending ones only.
    let out = t.run_with(["lint", "--pending", "--env", "production"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("error[create-index-non-concurrently]: CREATE INDEX \"User_name_k15_idx\" on \"User\" without CONCURRENTLY"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("= lock: SHARE on \"User\" (") && out.stdout.contains("20"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("= note: a warning, not an error: \"Item6\" has 5 rows, ")
            && out
                .stdout
                .contains("below lint.small_table_rows (10000), so the lock is held briefly"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("linted 80 files (")
            && out.stdout.contains(": 2 errors, 10 warnings, 0 allowed"),
        "{}",
        out.stdout
    );

    let out = t.run_with(["lint", "--pending", "--env", "production", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 2);
    assert_eq!(doc["database_read"], true);
}

#[test]
fn small_and_big_tables_get_different_severities() {
    let Some(db) = pg::database("lint_history_table_sizes") else {
        return;
    };
    let t = project(&db.url).file(
        "prisma/migrations/20240101000000_init/migration.sql",
        "CREATE TABLE \"Small\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT);\nCREATE TABLE \"Big\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT);\nCREATE TABLE \"Empty\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT);\n",
    );
    t.run_with(["migrate", "deploy", "--yes"]).assert_code(0);
    db.psql("INSERT INTO \"Small\" SELECT i, 'v' FROM generate_series(1, 5) i");
    db.psql("INSERT INTO \"Big\" SELECT i, 'v' || i FROM generate_series(1, 200000) i");
    db.psql("ANALYZE \"Big\"");
    t.write(
        "prisma/migrations/20240102000000_indexes/migration.sql",
        "CREATE INDEX \"Small_v_idx\" ON \"Small\"(\"v\");\nCREATE INDEX \"Big_v_idx\" ON \"Big\"(\"v\");\nCREATE INDEX \"Empty_v_idx\" ON \"Empty\"(\"v\");\n",
    );
    let out = t.run_with(["lint", "--pending", "--env", "production", "--json"]);
    out.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let findings = doc["files"][0]["findings"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["lock"]["table"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    // The empty table takes no meaningful lock: no finding at all.
    assert_eq!(summary, [("\"Small\"", "warning"), ("\"Big\"", "error")]);
    assert_eq!(findings[0]["lock"]["size"]["rows"], 5);
    assert_eq!(findings[0]["lock"]["size"]["exact"], true);
    let big_rows = findings[1]["lock"]["size"]["rows"].as_u64().unwrap();
    assert!((150_000..=250_000).contains(&big_rows), "{big_rows}");

    let out = t.run_with(["lint", "--pending", "--env", "production"]);
    assert!(
        out.stdout
            .contains("= lock: SHARE on \"Big\" (~200 k rows, "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("warning[create-index-non-concurrently]: CREATE INDEX \"Small_v_idx\""),
        "{}",
        out.stdout
    );

    // lint.small_table_rows: 0 turns the threshold off.
    t.write(
        "Workflowfile.yaml",
        &format!("{WORKFLOWFILE}lint:\n  small_table_rows: 0\n"),
    );
    let out = t.run_with(["lint", "--pending", "--env", "production", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 2);

    // Without the database (--static), every index is an error, as before.
    let out = t.run_with([
        "lint",
        "--env",
        "production",
        "--static",
        "--json",
        "prisma/migrations/20240102000000_indexes/migration.sql",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 3);
    assert_eq!(doc["database_read"], false);
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const RISKY: &str = "-- AlterTable\nALTER TABLE \"User\" DROP COLUMN \"name\";\n\n-- CreateIndex\nCREATE INDEX \"Item3_title_idx\" ON \"Item3\"(\"title\");\n";

/// The README's CI recipe: `dbflow lint --since origin/main --env production --static
/// --format github` on a pull request of a project with a long history.
#[test]
fn the_ci_recipe_lints_only_what_a_branch_adds() {
    let t = project("postgres://app@db.invalid/shop");
    write_history(&t, 1..=GROUPS);
    let dir = t.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "three years of migrations"]);
    git(dir, &["checkout", "-q", "-b", "feature"]);

    let out = t.run_with(["lint", "--since", "main", "--env", "production", "--static"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "✔ no migration added or changed since main in prisma/migrations: nothing to lint\n"
    );

    // A safe migration: the recipe passes.
    t.write(
        "prisma/migrations/20250101000000_add_bio/migration.sql",
        "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT;\n",
    );
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "bio"]);
    let out = t.run_with(["lint", "--since", "main", "--env", "production", "--static"]);
    out.assert_code(0);
    assert!(
        out.stdout.ends_with(
            "✔ linted 1 file (1 statement) for environment `production` (protected): no findings\n"
        ),
        "{}",
        out.stdout
    );

    // A risky one (uncommitted, as on a developer's machine): only it is reported.
    t.write(
        "prisma/migrations/20250102000000_cleanup/migration.sql",
        RISKY,
    );
    let out = t.run_with([
        "lint",
        "--since",
        "main",
        "--env",
        "production",
        "--static",
        "--format",
        "github",
    ]);
    out.assert_code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("::error file=prisma/migrations/20250102000000_cleanup/migration.sql,line=2,title=dbflow lint%3A drop-column::"), "{}", lines[0]);
    assert!(lines[1].starts_with("::error file=prisma/migrations/20250102000000_cleanup/migration.sql,line=5,title=dbflow lint%3A create-index-non-concurrently::"), "{}", lines[1]);
    assert_eq!(
        lines[2],
        "dbflow lint: 2 files, 2 errors, 0 warnings, 0 allowed"
    );

    // The whole history, as one run, is a fresh install: only the new file's risks on
    // tables it does not create are left.
    let out = t.run_with(["lint", "--env", "production", "--static", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["files"], 163);

    // lint.allow allows without touching the file.
    t.write(
        "Workflowfile.yaml",
        &format!("{WORKFLOWFILE}lint:\n  allow:\n    - migration: 20250102000000_cleanup\n      rule: drop-column\n      reason: name moved to Profile in v4, unused since\n    - {{ migration: 20250102000000_cleanup, rule: create-index-non-concurrently, reason: Item3 holds 12 rows }}\n"),
    );
    let out = t.run_with(["lint", "--since", "main", "--env", "production", "--static"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("  = allowed by lint.allow (Workflowfile.yaml:7:7): name moved to Profile in v4, unused since\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with(": 0 errors, 0 warnings, 2 allowed\n"),
        "{}",
        out.stdout
    );

    // A ref git does not know is bad input.
    let out = t.run_with(["lint", "--since", "no-such-branch", "--static"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--since no-such-branch"),
        "{}",
        out.stderr
    );
}

#[test]
fn lint_allow_is_validated_when_the_workflowfile_loads() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  production:\n    url: postgres://app@db/shop\nlint:\n  allow:\n    - migration: 20240101000000_init\n      rule: drop-colum\n      reason: typo in the rule\n    - migration: 20240101000000_init\n      rule: truncate\n      reason: \"  \"\n",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("Workflowfile.yaml:7:13")
            && out
                .stderr
                .contains("lint.allow: no lint rule is called `drop-colum`")
            && out.stderr.contains("did you mean `drop-column`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Workflowfile.yaml:11:15")
            && out.stderr.contains("has an empty reason"),
        "{}",
        out.stderr
    );
    t.run_with(["lint"]).assert_code(2);
}

/// `lint --pending` reads the catalog rows of the tables its files name only (issue 20):
/// on a database with more small tables than the whole-catalog read counts (1,000), a
/// named small table is still counted exactly, a named empty one is still known empty,
/// a big one still gets its size-dependent error, and the header still counts every
/// table of the database.
#[test]
fn pending_lint_reads_the_named_tables_of_a_big_catalog() {
    let Some(db) = pg::database("lint_history_named_tables") else {
        return;
    };
    let t = project(&db.url).file(
        "prisma/migrations/20240101000000_init/migration.sql",
        "CREATE TABLE \"Big\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT);\n",
    );
    t.run_with(["migrate", "deploy", "--yes"]).assert_code(0);
    db.psql("INSERT INTO \"Big\" SELECT i, 'v' || i FROM generate_series(1, 200000) i");
    db.psql("ANALYZE \"Big\"");
    // 1,200 empty tables (the smallest, so a whole-catalog read counts them first), then
    // the two the migration names, created last.
    db.psql("DO $$ BEGIN FOR i IN 1..1200 LOOP EXECUTE format('CREATE TABLE filler_%s (id int)', i); END LOOP; END $$");
    db.psql("CREATE TABLE \"Small\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT)");
    db.psql("INSERT INTO \"Small\" SELECT i, 'v' FROM generate_series(1, 5) i");
    db.psql("CREATE TABLE \"Empty\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"v\" TEXT)");
    t.write(
        "prisma/migrations/20240102000000_indexes/migration.sql",
        "CREATE INDEX \"Small_v_idx\" ON \"Small\"(\"v\");\nCREATE INDEX \"Big_v_idx\" ON \"Big\"(\"v\");\nCREATE INDEX \"Empty_v_idx\" ON \"Empty\"(\"v\");\n",
    );
    let out = t.run_with(["lint", "--pending", "--env", "production", "--json"]);
    out.assert_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["database_read"], true);
    let findings = doc["files"][0]["findings"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["lock"]["table"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("\"Small\"", "warning"), ("\"Big\"", "error")],
        "{}",
        out.stdout
    );
    assert_eq!(findings[0]["lock"]["size"]["rows"], 5);
    assert_eq!(findings[0]["lock"]["size"]["exact"], true);
    let big_rows = findings[1]["lock"]["size"]["rows"].as_u64().unwrap();
    assert!((150_000..=250_000).contains(&big_rows), "{big_rows}");

    let out = t.run_with(["lint", "--pending", "--env", "production"]);
    // Every table of the database (the fillers, ours, the history table, dbflow's own).
    let tables = db.psql(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
    );
    assert!(tables.parse::<usize>().unwrap() > 1200, "{tables}");
    assert!(
        out.stdout.contains(&format!(
            "for environment `production` (protected) against its database ({tables} tables)"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("= lock: SHARE on \"Big\" (~200 k rows, "),
        "{}",
        out.stdout
    );
}

/// `lint --since` reads only the folders that changed, but a changed migration (or any
/// migration folder) that is a link leading outside the migrations folder is still
/// refused, never read.
#[test]
fn since_still_refuses_links_that_leave_the_folder() {
    let t = project("postgres://app@db.invalid/shop");
    write_history(&t, 1..=2);
    let dir = t.path();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "history"]);
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path();
    std::fs::write(outside.join("migration.sql"), "SELECT 'outside';\n").unwrap();

    // A changed migration.sql linking outside.
    let folder = dir.join("prisma/migrations/20250101000000_planted");
    std::fs::create_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(outside.join("migration.sql"), folder.join("migration.sql"))
        .unwrap();
    let out = t.run_with(["lint", "--since", "main", "--static"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("resolves outside the migrations folder"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("outside'"), "{}", out.stdout);
    std::fs::remove_dir_all(&folder).unwrap();

    // A migration folder that is itself a link outside, even when nothing under the
    // folder changed per git.
    std::os::unix::fs::symlink(outside, &folder).unwrap();
    let out = t.run_with(["lint", "--since", "main", "--static"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("resolves outside the migrations folder"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(&folder).unwrap();

    // Nothing left changed: nothing to lint.
    let out = t.run_with(["lint", "--since", "main", "--static"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "✔ no migration added or changed since main in prisma/migrations: nothing to lint\n"
    );
}
