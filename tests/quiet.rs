//! Quiet by default on long histories (issue 15, item 9): a deploy of 161 migrations
//! (the generated history of `lint_history`) prints a summary — the first and last few
//! ✔ lines, "… N more applied", the count — and so does status (every row that is not
//! applied, the last few applied); `-v` lists everything; a failure in the middle still
//! names the failing migration and what was applied; `--json` stays one document.

use crate::lint_history::{applied, history, name, write_history};
use crate::support::cli::{Output, Test};
use crate::support::pg;

const WORKFLOWFILE: &str = "environments:\n  dev:\n    url: ${DATABASE_URL}\n    protection: sandbox\n  production:\n    url: ${DATABASE_URL}\n    protection: protected\nworkflows:\n  release:\n    allow_unguarded_deploy: \"a test of the output, on throw-away databases\"\n    steps:\n      - deploy: {}\n      - status: {}\n";

fn project(url: &str) -> Test {
    Test::new()
        .file("Workflowfile.yaml", WORKFLOWFILE)
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .env("DATABASE_URL", url)
}

/// Lines a person reads: stdout and stderr.
fn lines(out: &Output) -> usize {
    out.stdout.lines().count() + out.stderr.lines().count()
}

fn all_names() -> Vec<String> {
    history(1..=20).into_iter().map(|(name, _)| name).collect()
}

#[test]
fn a_sandbox_deploy_of_a_long_history_prints_a_summary_and_every_line_with_v() {
    let Some(db) = pg::database("quiet_sandbox_deploy") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let names = all_names();
    assert_eq!(names.len(), 161);

    let out = t.run_with(["migrate", "deploy", "--env", "dev"]);
    out.assert_code(0);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    let text = &out.stdout;
    // The first three and the last three ✔ lines, the rest counted, then the total.
    for shown in names[..3].iter().chain(&names[158..]) {
        assert!(text.contains(&format!("  ✔ {shown} (")), "{shown}: {text}");
    }
    assert!(!text.contains(&format!("✔ {} (", names[80])), "{text}");
    assert!(!text.contains("applying"), "{text}");
    assert!(
        text.contains("  … 155 more applied (-v lists every migration)\n"),
        "{text}"
    );
    // A progress line at every 10 % in a log (no terminal here).
    assert!(text.contains("  … 17/161 applied (10%), "), "{text}");
    assert!(
        text.contains("✔ applied 161 migration(s) to `dev`"),
        "{text}"
    );
    assert_eq!(applied(&db), 161);

    // Status: counts, the last five applied, the others folded.
    let out = t.run_with(["migrate", "status", "--env", "dev"]);
    out.assert_code(0);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    assert!(
        out.stdout
            .contains("  … 156 applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
    for shown in &names[156..] {
        assert!(
            out.stdout.contains(&format!("✔ {shown} ")),
            "{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains("161 applied, 0 pending, 0 failed, 0 modified, 0 missing locally"),
        "{}",
        out.stdout
    );
    let out = t.run_with(["-v", "migrate", "status", "--env", "dev"]);
    out.assert_code(0);
    for shown in &names {
        assert!(
            out.stdout.contains(&format!("✔ {shown} ")),
            "{}",
            out.stdout
        );
    }
    // A row that is not applied is listed wherever it is, the applied ones around it
    // folded.
    let gone = &names[40];
    std::fs::remove_dir_all(t.path().join(format!("prisma/migrations/{gone}"))).unwrap();
    let out = t.run_with(["migrate", "status", "--env", "dev"]);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    assert!(
        out.stdout.contains(&format!(
            "  … 40 applied (-v lists every migration)\n✘ {gone} "
        )) && out
            .stdout
            .contains("  … 115 applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );

    // -v lists every migration as before, on a second database.
    let Some(db) = pg::database("quiet_sandbox_deploy_verbose") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let out = t.run_with(["-v", "migrate", "deploy", "--env", "dev"]);
    out.assert_code(0);
    for (i, shown) in names.iter().enumerate() {
        assert!(
            out.stdout
                .contains(&format!("  [{}/161] applying {shown}\n", i + 1)),
            "{shown}: {}",
            out.stdout
        );
        assert!(out.stdout.contains(&format!("  ✔ {shown} (")), "{shown}");
    }
    assert!(!out.stdout.contains("more applied"), "{}", out.stdout);
    assert_eq!(applied(&db), 161);
}

#[test]
fn a_protected_deploy_of_a_long_history_with_yes_prints_a_short_preview() {
    let Some(db) = pg::database("quiet_protected_deploy") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let names = all_names();

    // A dry run lists the first and last few pending migrations.
    let out = t.run_with(["migrate", "deploy", "--env", "production", "--dry-run"]);
    out.assert_code(0);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    assert!(
        out.stdout.contains("would apply 161 migration(s):\n")
            && out
                .stdout
                .contains("  … 155 more (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
    // `--dry-run -v` shows the whole preview without deploying.
    let out = t.run_with([
        "-v",
        "migrate",
        "deploy",
        "--env",
        "production",
        "--dry-run",
    ]);
    out.assert_code(0);
    assert!(
        out.stdout.contains(
            "Would change the protected database of `production`: 161 pending migrations\n"
        ),
        "{}",
        out.stdout
    );
    let preview = out.stdout.split("Would change").nth(1).expect("a preview");
    for shown in &names {
        assert!(
            preview.contains(&format!("\n  {shown}\n    line ")),
            "{shown}"
        );
    }
    assert_eq!(
        db.psql("SELECT to_regclass('_prisma_migrations') IS NULL"),
        "t",
        "a dry run applies nothing"
    );

    let out = t.run_with(["migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(0);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    let text = &out.stdout;
    assert!(
        text.contains(
            "About to change the protected database of `production`: 161 pending migrations\n"
        ),
        "{text}"
    );
    // A fresh database: no finding and no lock on an existing table, so the first
    // three migrations in full and the rest counted, with the way to see them all.
    assert!(
        text.contains(&format!("  {}\n    line   2  CREATE TYPE", names[0])),
        "{text}"
    );
    assert!(
        text.contains("  … and 158 more pending migrations (no lint findings, no lock on a table that exists before this deploy); every statement of every migration: -v (without deploying: dbflow migrate deploy --env production --dry-run -v)\n"),
        "{text}"
    );
    assert!(text.contains("  … 155 more applied"), "{text}");
    assert!(
        text.contains("✔ applied 161 migration(s) to `production`"),
        "{text}"
    );
    assert_eq!(applied(&db), 161);

    // With -v, a new database gets every statement of every migration and every line.
    let Some(db) = pg::database("quiet_protected_deploy_verbose") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let out = t.run_with(["-v", "migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(0);
    for shown in &names {
        assert!(
            out.stdout.contains(&format!("\n  {shown}\n")),
            "{shown}: {}",
            out.stdout
        );
        assert!(out.stdout.contains(&format!("  ✔ {shown} (")), "{shown}");
    }
    assert!(!out.stdout.contains("more pending"), "{}", out.stdout);
    assert_eq!(applied(&db), 161);
}

#[test]
fn a_failure_in_the_middle_of_a_long_deploy_names_itself_and_what_was_applied() {
    let Some(db) = pg::database("quiet_failure") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let names = all_names();
    // The 81st migration fails (PostgreSQL rolls it back).
    let broken = &names[80];
    t.write(
        &format!("prisma/migrations/{broken}/migration.sql"),
        "SELECT 1 / 0;\n",
    );
    let out = t.run_with(["migrate", "deploy", "--env", "dev"]);
    out.assert_code(1);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    assert!(
        out.stderr
            .contains(&format!("migration `{broken}` failed: ")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "applied before the failure: {}",
            names[..80].join(", ")
        )),
        "{}",
        out.stderr
    );
    // The summary ends with the last migrations applied before the failure.
    assert!(
        out.stdout
            .contains("  … 74 more applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
    for shown in &names[77..80] {
        assert!(
            out.stdout.contains(&format!("  ✔ {shown} (")),
            "{}",
            out.stdout
        );
    }
    assert_eq!(applied(&db), 80);
    // Status lists every row that is not applied, so the failed one is named.
    let out = t.run_with(["migrate", "status", "--env", "dev"]);
    assert!(
        out.stdout.contains(&format!("… {broken} ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  … 75 applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn json_stays_one_document_on_a_long_deploy() {
    let Some(db) = pg::database("quiet_json") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let out = t.run_with(["--json", "migrate", "deploy", "--env", "dev"]);
    out.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["report"]["applied"].as_array().unwrap().len(), 161);
    let out = t.run_with(["--json", "migrate", "status", "--env", "dev"]);
    out.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["status"]["entries"].as_array().unwrap().len(), 161);
    assert_eq!(name(0, "init"), doc["status"]["entries"][0]["name"]);
}

#[test]
fn the_deploy_and_status_steps_of_a_workflow_are_summarised_too() {
    let Some(db) = pg::database("quiet_workflow") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let names = all_names();
    let out = t.run_with(["run", "release", "--env", "dev"]);
    out.assert_code(0);
    assert!(lines(&out) < 60, "{} lines:\n{}", lines(&out), out.all());
    assert!(
        out.stdout
            .contains("  … 155 more applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  … 156 applied (-v lists every migration)\n"),
        "{}",
        out.stdout
    );
    assert_eq!(applied(&db), 161);

    let Some(db) = pg::database("quiet_workflow_verbose") else {
        return;
    };
    let t = project(&db.url);
    write_history(&t, 1..=20);
    let out = t.run_with(["-v", "run", "release", "--env", "dev"]);
    out.assert_code(0);
    for shown in &names {
        // Applied by the deploy step, then listed by the status step.
        assert_eq!(
            out.stdout.matches(&format!("✔ {shown} ")).count(),
            2,
            "{shown}: {}",
            out.stdout
        );
    }
}
