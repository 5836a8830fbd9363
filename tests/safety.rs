//! The safety rails of issue 12 on real PostgreSQL: one door for destruction (in-place
//! restore through the guard, the same answer as `dbflow check`), in-place restore by
//! swap under the deployers' lock, rollback only after a change, cut-over only with a
//! person, and names that can never become options.

use crate::backup::{fingerprint, pg_path, psql};
use crate::support::cli::{events, Output, Test};
use crate::support::pg::{self, TestDb};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str =
    "CREATE TABLE \"User\" (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE);\n";

fn project(db: &TestDb, extra: &str) -> Test {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:
  local:
    url: ${{DATABASE_URL}}
    protection: sandbox
  staging:
    url: ${{DATABASE_URL}}
    protection: shared
  production:
    url: ${{DATABASE_URL}}
    protection: protected
include:
  - workflows/*.yaml
migrations:
  dir: prisma/migrations
{extra}"
            ),
        )
        // The shipped deploy and rollback workflows, as `dbflow init` copies them.
        .file(
            "workflows/deploy.yaml",
            include_str!("../workflows/deploy.yaml"),
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path())
        .env("DBFLOW_ENV", "local");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql("INSERT INTO \"User\" (email) SELECT 'u' || g || '@x' FROM generate_series(1, 500) g");
    t
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", out.stdout, out.stderr))
}

#[track_caller]
fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find {needle:?} in:\n{haystack}"
    );
}

fn backup(t: &Test) -> String {
    let out = t.run_with(["backup", "create", "--json"]);
    out.assert_code(0);
    json(&out)["outputs"]["backup"]["backup_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The test's database and every database named after it (other tests run beside).
fn databases(db: &TestDb) -> Vec<String> {
    psql(db.admin_url(), "SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .filter(|n| n.starts_with(&db.name))
        .map(str::to_string)
        .collect()
}

/// Drops every database the test left beside its own (restored copies, kept-aside ones).
fn drop_copies(db: &TestDb) {
    for name in databases(db) {
        if name.starts_with(&db.name) && name != db.name {
            psql(
                db.admin_url(),
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 1. In-place restore goes through the guard, and agrees with `dbflow check`.

#[test]
fn in_place_restore_is_refused_where_the_guard_blocks_it_and_check_agrees() {
    let Some(db) = pg::database("safety_inplace_guard") else {
        return;
    };
    let t = project(&db, "");
    let id = backup(&t);
    db.psql("INSERT INTO \"User\" (email) VALUES ('written-after-the-backup@x')");
    let after = fingerprint(&db.url);

    // staging (shared) and local with a name that is no sandbox's (like `app_dev`).
    for env in ["staging", "local", "production"] {
        let check = t.run_with(["check", "restore-in-place", "--env", env]);
        check.assert_code(3);
        assert_contains(&check.stdout, "BLOCKED");
        let out = t.run_with([
            "restore",
            &id,
            "--in-place",
            "--confirm",
            "RESTORE",
            "--env",
            env,
        ]);
        out.assert_code(3);
        assert_contains(&out.stderr, "blocked by the guard: `restore-in-place`");
        assert_eq!(fingerprint(&db.url), after, "{env}: nothing was touched");
    }
    // Nothing was restored beside it either.
    assert_eq!(
        databases(&db)
            .iter()
            .filter(|n| n.starts_with(&db.name))
            .count(),
        1
    );
    // The override for the sandbox-name rule unlocks it on the sandbox environment only,
    // and `check` says so too.
    let t = t.env("DBFLOW_ALLOW_RESTORE_IN_PLACE_ANY_DB", "1");
    t.run_with(["check", "restore-in-place", "--env", "local"])
        .assert_code(0);
    t.run_with(["check", "restore-in-place", "--env", "production"])
        .assert_code(3);
    let out = t.run_with([
        "restore",
        &id,
        "--in-place",
        "--confirm",
        "RESTORE",
        "--env",
        "local",
    ]);
    out.assert_code(0);
    assert_contains(
        &out.stderr,
        "OVERRIDE DBFLOW_ALLOW_RESTORE_IN_PLACE_ANY_DB=1",
    );
    assert_eq!(db.psql("SELECT count(*) FROM \"User\""), "500");
    drop_copies(&db);
}

// ---------------------------------------------------------------------------------------
// 5. In place by swap: never an empty database under the live name.

#[test]
fn in_place_restore_swaps_so_the_live_name_is_never_empty_and_keeps_the_old_one() {
    let Some(db) = pg::database("safety_swap") else {
        return;
    };
    let t = project(&db, "sandbox_pattern: \"^dbflow_t_\"\n");
    // Enough rows that the restore takes a moment.
    db.psql(
        "INSERT INTO \"User\" (email) SELECT 'bulk' || g || '@x' FROM generate_series(1, 200000) g",
    );
    let id = backup(&t);
    db.psql("DELETE FROM \"User\" WHERE id % 2 = 0");
    let rows_before_restore = db.psql("SELECT count(*) FROM \"User\"");

    let mut restore = t.spawn_with(["restore", &id, "--in-place", "--confirm", "RESTORE"]);
    // Meanwhile: a reader and a deployer hammer the live name.
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut deploys = 0;
    while restore.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        let out = Command::new(pg::bin_dir().unwrap().join("psql"))
            .args([
                "-X",
                "-At",
                "-d",
                &db.url,
                "-c",
                "SELECT count(*) FROM \"User\"",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.success() {
            seen.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        } else {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            // Refused while the swap runs: never "relation does not exist".
            assert!(
                err.contains("not currently accepting connections")
                    || err.contains("does not exist")
                    || err.contains("terminat"),
                "{err}"
            );
            assert!(!err.contains("relation"), "{err}");
        }
        let d = t.run_with(["migrate", "deploy"]);
        assert!(d.code == 0 || d.code == 1, "deploy exit {}", d.code);
        deploys += 1;
    }
    let status = restore.wait().unwrap();
    assert!(status.success(), "the in-place restore succeeded");
    assert!(deploys > 0);
    for count in &seen {
        assert!(
            count == &rows_before_restore || count == "200500",
            "the live name showed {count} rows (before {rows_before_restore}, backup 200500)"
        );
    }
    // The live name holds the backup now; history intact; status clean.
    assert_eq!(db.psql("SELECT count(*) FROM \"User\""), "200500");
    t.run_with(["migrate", "status"]).assert_code(0);

    // The replaced database is kept aside and listed; `restore drop` removes it.
    let listed = t.run_with(["restore", "list", "--json"]);
    listed.assert_code(0);
    let copies = json(&listed)["databases"].as_array().unwrap().clone();
    let aside: Vec<&Value> = copies
        .iter()
        .filter(|c| c["kind"] == "pre_restore")
        .collect();
    assert_eq!(aside.len(), 1, "{copies:?}");
    let aside = aside[0]["name"].as_str().unwrap().to_string();
    assert_eq!(
        psql(
            &db.url
                .replace(&format!("/{}", db.name), &format!("/{aside}")),
            "SELECT count(*) FROM \"User\""
        ),
        rows_before_restore
    );
    // Never the live database, never a name dbflow did not make.
    t.run_with(["restore", "drop", &db.name, "--yes"])
        .assert_code(3);
    assert!(db.database_exists(&db.name));
    let out = t.run_with(["restore", "drop", &aside]);
    out.assert_code(3);
    assert_contains(&out.stderr, "pass --yes");
    assert!(db.database_exists(&aside));
    t.run_with(["restore", "drop", "--older-than", "0s", "--yes"])
        .assert_code(0);
    assert!(!db.database_exists(&aside));
    drop_copies(&db);
}

#[test]
fn in_place_restore_is_refused_while_a_deploy_holds_the_lock_naming_it() {
    let Some(db) = pg::database("safety_swap_lock") else {
        return;
    };
    let t = project(&db, "sandbox_pattern: \"^dbflow_t_\"\n");
    // Waits as long as deployers wait for each other, then refuses.
    t.write(
        "Workflowfile.yaml",
        &t.read("Workflowfile.yaml").replace(
            "  dir: prisma/migrations\n",
            "  dir: prisma/migrations\n  lock_wait: 2s\n",
        ),
    );
    let id = backup(&t);
    db.psql("INSERT INTO \"User\" (email) VALUES ('after@x')");
    // A "deploy" holding the migration lock.
    let mut holder = Command::new(pg::bin_dir().unwrap().join("psql"))
        .args([
            "-X",
            "-q",
            "-d",
            &db.url,
            "-c",
            "SET application_name = 'deployer-under-test'",
            "-c",
            "SELECT pg_advisory_lock(72707369)",
            "-c",
            "SELECT pg_sleep(30)",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369 AND granted") != "1" {
        assert!(Instant::now() < deadline, "the holder took the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = t.run_with(["restore", &id, "--in-place", "--confirm", "RESTORE"]);
    let _ = holder.kill();
    let _ = holder.wait();
    out.assert_code(3);
    assert_contains(&out.stderr, "a deploy holds the migration lock");
    assert_contains(&out.stderr, "(waited 2s)");
    assert_contains(&out.stderr, "deployer-under-test");
    assert_eq!(
        db.psql("SELECT count(*) FROM \"User\" WHERE email = 'after@x'"),
        "1"
    );
    // The copy it restored first is not left behind.
    assert_eq!(
        databases(&db)
            .iter()
            .filter(|n| n.starts_with(&db.name))
            .count(),
        1,
        "{:?}",
        databases(&db)
    );
}

// ---------------------------------------------------------------------------------------
// 2. Rollback only after a change.

#[test]
fn a_deploy_that_changed_nothing_is_not_rolled_back() {
    let Some(db) = pg::database("safety_no_change") else {
        return;
    };
    let t = project(&db, "");
    t.write(
        "prisma/migrations/20240102000000_more/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN nickname TEXT;\n",
    );
    let before = databases(&db);
    // Protected, not interactive, no --yes; the same with CI=true; and a guard block.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (vec!["run", "deploy", "--env", "production"], vec![]),
        (
            vec!["run", "deploy", "--env", "production"],
            vec![("CI", "true")],
        ),
        (
            vec!["run", "deploy", "--env", "staging"],
            vec![("DBFLOW_TEST_FORBID", "1")],
        ),
    ];
    for (args, vars) in cases {
        let mut run = Test::in_dir(t.path())
            .env("DATABASE_URL", &db.url)
            .env("PATH", &pg_path());
        for (k, v) in &vars {
            run = run.env(k, v);
        }
        if vars.iter().any(|(k, _)| *k == "DBFLOW_TEST_FORBID") {
            t.write(
                "Workflowfile.yaml",
                &t.read("Workflowfile.yaml").replace(
                    "migrations:\n",
                    "guard:\n  environments:\n    staging:\n      forbidden: [deploy]\nmigrations:\n",
                ),
            );
        }
        let out = run.run_with(args.clone());
        assert!(out.code == 3 || out.code == 1, "{args:?}: {}", out.stderr);
        assert_contains(&out.all(), "nothing changed, nothing to roll back");
        assert!(
            !out.all().contains("running on_failure workflow `rollback`"),
            "{}",
            out.all()
        );
        let journal = out.journals().pop().unwrap();
        assert_eq!(events(&journal, "on_failure_skipped").len(), 1);
        assert!(events(&journal, "restore_start").is_empty());
        assert_eq!(databases(&db), before, "{args:?}: no new database");
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nickname'"),
        "0"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Cut-over needs a person.

#[test]
fn cut_over_needs_a_typed_word_or_yes_and_cut_over() {
    let Some(db) = pg::database("safety_cut_over") else {
        return;
    };
    let t = project(
        &db,
        "tasks:
  switch:
    script: echo \"$DBFLOW_RESTORED_DATABASE\" >> switched.txt
backups:
  switch_to_restored: switch
workflows:
  release:
    on_failure: rollback
    allow_unguarded_deploy: the test is about the cut-over
    steps:
      - backup: { label: pre-deploy }
      - deploy: {}
      - verify:
          checks:
            - name: nobody is called bad
              sql: SELECT 1 FROM \"User\" WHERE email = 'bad@x'
              no_rows: true
",
    );
    t.write(
        "prisma/migrations/20240102000000_bad/migration.sql",
        "INSERT INTO \"User\" (email) VALUES ('bad@x');\n",
    );
    // --yes alone: the verify fails after a commit, the rollback restores a copy, and
    // nobody is switched over.
    let out = t.run_with(["run", "release", "--yes"]);
    out.assert_code(1);
    assert_contains(&out.all(), "running on_failure workflow `rollback`");
    assert_contains(&out.all(), "NOT cut over");
    assert_contains(&out.all(), "decide: fix forward");
    assert!(!t.exists("switched.txt"), "no cut-over without --cut-over");
    let journal = out.journals().pop().unwrap();
    assert_eq!(events(&journal, "cut_over_confirmation").len(), 1);

    // `dbflow rollback` without a terminal: no cut-over either. (Restores in the same
    // second get distinct names.)
    let out = t.run_with(["rollback", "--env", "local"]);
    out.assert_code(0);
    assert!(!t.exists("switched.txt"));
    // --yes --cut-over: the person said so on the command line.
    let out = t.run_with(["rollback", "--env", "local", "--yes", "--cut-over"]);
    out.assert_code(0);
    let switched = t.read("switched.txt");
    assert!(
        switched.starts_with(&db.name) && switched.contains("_restore_"),
        "{switched}"
    );
    // --cut-over alone is a usage error.
    t.run_with(["rollback", "--cut-over"]).assert_code(2);
    drop_copies(&db);
}

// ---------------------------------------------------------------------------------------
// 7. Names never become options.

#[test]
fn option_like_database_names_are_refused_before_anything_runs() {
    let Some(db) = pg::database("safety_names") else {
        return;
    };
    let t = project(&db, "");
    let id = backup(&t);
    let before = databases(&db);
    for name in ["--template=canary", "-x", "a/b", ""] {
        let out = t.run_with(["restore", &id, &format!("--into={name}")]);
        assert_eq!(out.code, 2, "{name:?}: {}", out.stderr);
        assert_contains(&out.stderr, "cannot name a database");
    }
    assert_eq!(databases(&db), before);
}
