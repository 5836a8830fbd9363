//! The guard applied by the commands and steps that change a database: lint errors in
//! pending migrations block deploys to shared and protected environments until allowed,
//! a protected deploy shows every statement with its lock and needs confirmation
//! (`--yes` when nobody can be asked), the `guard` step refuses modified applied
//! migrations, and task commands are checked against the rails before they run.

use crate::support::cli::{events, Test};
use crate::support::pg::{self, TestDb};

const INIT: &str = "CREATE TABLE \"User\" (\n    \"id\" INTEGER NOT NULL PRIMARY KEY,\n    \"email\" TEXT NOT NULL,\n    \"bio\" TEXT\n);\n";
const DROP_BIO: &str = "-- AlterTable\nALTER TABLE \"User\" DROP COLUMN \"bio\";\n";
const NICKNAME: &str = "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\n";

fn project(db: &TestDb, protection: &str, workflows: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  target:\n    url: ${{DATABASE_URL}}\n    protection: {protection}\n{workflows}"
            ),
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
}

fn has_column(db: &TestDb, column: &str) -> bool {
    db.psql(&format!(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'User' AND column_name = '{column}'"
    )) == "1"
}

#[test]
fn lint_errors_block_a_shared_deploy_until_allowed() {
    let Some(db) = pg::database("guard_lint_blocks_shared_deploy") else {
        return;
    };
    let t = project(&db, "shared", "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.write(
        "prisma/migrations/20240102000000_drop_bio/migration.sql",
        DROP_BIO,
    );

    // A deploy summarises the findings per migration, with where to see them in full.
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(3);
    assert!(
        out.stdout.contains("linted 1 pending migration for `target` against its database (")
            && out.stdout.contains("): 1 error, 0 warnings, 0 allowed\n  20240102000000_drop_bio: 1 error (drop-column on \"User\" (0 rows, ")
            && out.stdout.contains("  every finding with why and the safe way: dbflow lint --pending --env target (or -v)\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("error[drop-column]"), "{}", out.stdout);
    let full = t.run_with(["migrate", "deploy", "-v"]);
    full.assert_code(3);
    assert!(
        full.stdout.contains("error[drop-column]: dropping column bio from \"User\" deletes its data\n  --> prisma/migrations/20240102000000_drop_bio/migration.sql:2\n"),
        "{}",
        full.stdout
    );
    let listed = t.run_with(["lint", "--pending", "--env", "target"]);
    listed.assert_code(1);
    assert!(
        listed.stdout.starts_with("error[drop-column]: dropping column bio from \"User\" deletes its data\n  --> prisma/migrations/20240102000000_drop_bio/migration.sql:2\n"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains(
            "linted 1 file (1 statement) for environment `target` (shared) against its database ("
        ),
        "{}",
        listed.stdout
    );
    assert!(
        out.stderr.contains(
            "blocked by the guard: deploy to `target` (shared): 1 lint error in pending migrations"
        ),
        "{}",
        out.stderr
    );
    assert!(has_column(&db, "bio"), "nothing was applied");

    // Dry runs show the findings and do not block.
    let dry = t.run_with(["migrate", "deploy", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("1 error (drop-column"),
        "{}",
        dry.stdout
    );

    t.write(
        "prisma/migrations/20240102000000_drop_bio/migration.sql",
        &format!("-- dbflow:allow drop-column reason: bio unused since v3, backup in the release runbook\n{DROP_BIO}"),
    );
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("20240102000000_drop_bio: 1 allowed (drop-column on \"User\""),
        "{}",
        out.stdout
    );
    assert!(!has_column(&db, "bio"));
}

#[test]
fn a_protected_deploy_shows_its_locks_and_needs_confirmation() {
    let Some(db) = pg::database("guard_protected_deploy_confirms") else {
        return;
    };
    let t = project(&db, "protected", "");
    t.run_with(["migrate", "deploy", "--yes"]).assert_code(0);
    t.write(
        "prisma/migrations/20240102000000_nickname/migration.sql",
        NICKNAME,
    );

    // No terminal and no --yes: nobody can confirm, so nothing happens.
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(3);
    assert!(
        out.stdout.contains("About to change the protected database of `target`: 1 pending migration\n  20240102000000_nickname\n    line   2  ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT\n              → ACCESS EXCLUSIVE on \"User\" (empty)\n  backup: none taken in this run"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("rerun with --yes to confirm"),
        "{}",
        out.stderr
    );
    assert!(!has_column(&db, "nickname"));

    let out = t.run_with(["migrate", "deploy", "--yes"]);
    out.assert_code(0);
    assert!(has_column(&db, "nickname"));
    let journals = out.journals();
    let confirmation = journals
        .iter()
        .flat_map(|j| events(j, "protected_confirmation"))
        .last()
        .expect("the confirmation is journaled")
        .clone();
    assert_eq!(confirmation["confirmed_by"], "--yes");
    assert_eq!(confirmation["pending"][0], "20240102000000_nickname");

    // Going back needs the same confirmation.
    t.write(
        "prisma/migrations/20240102000000_nickname/down.sql",
        "ALTER TABLE \"User\" DROP COLUMN \"nickname\";\n",
    );
    t.run_with(["migrate", "down", "20240102000000_nickname"])
        .assert_code(3);
    assert!(has_column(&db, "nickname"));
    t.run_with(["migrate", "down", "20240102000000_nickname", "--yes"])
        .assert_code(0);
    assert!(!has_column(&db, "nickname"));
}

#[test]
fn the_guard_step_refuses_modified_applied_migrations_and_protected_deploys_confirm() {
    let Some(db) = pg::database("guard_step_modified_and_confirm") else {
        return;
    };
    let t = project(
        &db,
        "protected",
        "workflows:\n  release:\n    allow_unguarded_deploy: \"test database, recreated per run\"\n    steps:\n      - guard: {}\n      - deploy: {}\n",
    );
    let out = t.run_with(["run", "release", "--yes"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("workflow `release` deploys to protected `target` without the backup-before / verify-after steps; the Workflowfile allows it: test database, recreated per run"),
        "{}",
        out.stderr
    );
    let journal = out.journal();
    assert_eq!(events(&journal, "unguarded_deploy").len(), 1);
    assert_eq!(events(&journal, "guard_lint").len(), 1);
    assert_eq!(
        events(&journal, "protected_confirmation")[0]["confirmed_by"],
        "--yes"
    );

    // An applied file edited afterwards: the guard step stops the run before anything.
    t.write(
        "prisma/migrations/20240101000000_init/migration.sql",
        &format!("{INIT}-- reformatted\n"),
    );
    t.write(
        "prisma/migrations/20240102000000_nickname/migration.sql",
        NICKNAME,
    );
    let out = t.run_with(["run", "release", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("applied migration changed since it was applied (20240101000000_init); applied migrations are immutable"),
        "{}",
        out.stderr
    );
    assert!(!has_column(&db, "nickname"));

    // Restored: the deploy step itself asks, and without --yes nobody can answer.
    t.write("prisma/migrations/20240101000000_init/migration.sql", INIT);
    let out = t.run_with(["run", "release"]);
    out.assert_code(3);
    assert!(
        out.stdout
            .contains("About to change the protected database of `target`"),
        "{}",
        out.stdout
    );
    assert!(!has_column(&db, "nickname"));
}

/// A stand-in for Prisma's CLI that records how it was called.
const FAKE_PRISMA: &str = "#!/bin/sh\necho \"prisma $* on $DATABASE_URL\" >> prisma-calls.txt\n";

fn task_project() -> Test {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: postgres://app@localhost/shop_dev
                protection: sandbox
              staging:
                url: postgres://app@staging/shop_staging
                protection: shared
              production:
                url: postgres://app@prod/shop
            tasks:
              reset:
                script: ./node_modules/.bin/prisma migrate reset --force --skip-seed
              e2e-reset:
                script: ./node_modules/.bin/prisma migrate reset --force --skip-seed
                env:
                  DATABASE_URL: postgres://app@localhost/shop_e2e
              release:
                command: ./node_modules/.bin/prisma
                args: [migrate, deploy]
            ",
        )
        .file("node_modules/.bin/prisma", FAKE_PRISMA);
    std::process::Command::new("chmod")
        .args(["+x", "node_modules/.bin/prisma"])
        .current_dir(t.path())
        .status()
        .unwrap();
    t
}

#[test]
fn task_commands_are_checked_before_they_run() {
    let t = task_project();
    // shop_staging is shared: reset is forbidden there, and its name is no sandbox.
    let out = t.run_with(["run", "reset", "--env", "staging"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains(
            "blocked by the guard: `migrate-reset` on `staging` (shared, database `shop_staging`)"
        ),
        "{}",
        out.stderr
    );
    assert!(!t.exists("prisma-calls.txt"), "the command must not run");
    // On local the database name (shop_dev) is no sandbox either.
    t.run_with(["run", "reset", "--env", "local"])
        .assert_code(3);
    // The task's own DATABASE_URL names the database it really resets.
    t.run_with(["run", "e2e-reset", "--env", "local"])
        .assert_code(0);
    assert_eq!(
        t.read("prisma-calls.txt"),
        "prisma migrate reset --force --skip-seed on postgres://app@localhost/shop_e2e\n"
    );
    // The override for one run is loud and journaled.
    let out = Test::in_dir(t.path())
        .env("DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB", "1")
        .run_with(["run", "reset", "--env", "local"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("!!! OVERRIDE DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB=1"),
        "{}",
        out.stderr
    );
    let journals = out.journals();
    assert_eq!(
        events(journals.last().unwrap(), "guard_override")[0]["variable"],
        "DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB"
    );
    // A deploy through Prisma on a protected environment needs a confirmation.
    let out = t.run_with(["run", "release", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("rerun with --yes to confirm"),
        "{}",
        out.stderr
    );
    t.run_with(["run", "release", "--env", "production", "--yes"])
        .assert_code(0);
    assert!(t
        .read("prisma-calls.txt")
        .ends_with("prisma migrate deploy on postgres://app@prod/shop\n"));
}

#[test]
fn a_refused_protected_deploy_is_journaled_by_the_command_and_the_workflow_alike() {
    let Some(db) = pg::database("guard_refused_deploy_journaled") else {
        return;
    };
    let t = project(
        &db,
        "protected",
        "workflows:\n  deploy:\n    allow_unguarded_deploy: \"test database\"\n    steps:\n      - deploy: {}\n",
    );
    t.run_with(["migrate", "deploy", "--yes"]).assert_code(0);
    t.write(
        "prisma/migrations/20240102000000_nickname/migration.sql",
        NICKNAME,
    );
    // Nobody can confirm (no terminal, no --yes): both paths refuse through one gate,
    // and both journal the refusal.
    for (i, command) in [&["migrate", "deploy"][..], &["run", "deploy"][..]]
        .into_iter()
        .enumerate()
    {
        let before = t.journals().len();
        let out = t.run_with(command.iter().copied());
        out.assert_code(3);
        assert!(
            out.stderr.contains("rerun with --yes to confirm"),
            "{}",
            out.stderr
        );
        let journals = t.journals();
        assert_eq!(journals.len(), before + 1, "{command:?} writes one journal");
        let refused: Vec<_> = journals
            .iter()
            .flat_map(|j| events(j, "protected_confirmation"))
            .filter(|e| e["refused"].is_string())
            .collect();
        assert_eq!(refused.len(), i + 1, "{command:?}: {refused:#?}");
        let last = refused.last().unwrap();
        assert_eq!(last["pending"][0], "20240102000000_nickname");
        assert!(last["confirmed_by"].is_null());
    }
    assert!(!has_column(&db, "nickname"));
}

#[test]
fn a_deploy_of_many_migrations_still_reports_a_finding_in_the_last_one() {
    // The guard lints a deploy's pending migrations in batches, dropping each batch's
    // texts and parse trees: the last of 1,200 must still be linted, with what the first
    // created (an index on a table made earlier in the run is no finding).
    let Some(db) = pg::database("guard_many_pending_last_finding") else {
        return;
    };
    let t = project(&db, "shared", "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    let root = t.path().join("prisma/migrations");
    let n = 1200;
    for i in 1..n {
        let dir = root.join(format!("2024020{i:07}_m{i:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sql = match i {
            1 => "CREATE TABLE \"Early\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"x\" INTEGER);\n"
                .to_string(),
            _ => format!("SELECT {i};\n"),
        };
        std::fs::write(dir.join("migration.sql"), sql).unwrap();
    }
    let last = format!("2024020{n:07}_last");
    t.write(
        &format!("prisma/migrations/{last}/migration.sql"),
        &format!("CREATE INDEX \"Early_x_idx\" ON \"Early\"(\"x\");\n{DROP_BIO}"),
    );

    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(3);
    assert!(
        out.stdout.contains(&format!(
            "linted {n} pending migrations for `target` against its database ("
        )) && out.stdout.contains("): 1 error, 0 warnings, 0 allowed\n")
            && out.stdout.contains(&format!(
                "  {last}: 1 error (drop-column on \"User\" (0 rows, "
            )),
        "{}",
        out.stdout
    );
    assert!(has_column(&db, "bio"), "nothing was applied");
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'Early'"),
        "0"
    );
}
