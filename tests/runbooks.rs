//! The shipped workflows end to end on real PostgreSQL (zero-config: only DATABASE_URL,
//! the built-in workflows, the real pg_dump/pg_restore).

use crate::backup::{fingerprint, pg_path};
use crate::support::cli::{events, Test};
use crate::support::pg::{self, TestDb};

const INIT: &str = "CREATE TABLE \"User\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"email\" TEXT NOT NULL);\nCREATE TABLE \"Order\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"userId\" INTEGER NOT NULL REFERENCES \"User\"(\"id\"), \"total\" INTEGER NOT NULL);\n";
const DATA: &str = "INSERT INTO \"User\" SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 200) g; INSERT INTO \"Order\" SELECT g, 1 + g % 200, g * 3 FROM generate_series(1, 500) g;";

fn project(db: &TestDb) -> Test {
    Test::new()
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path())
}

/// The database a run's step restored into (its `database` output).
fn restored_database(journal: &[serde_json::Value]) -> String {
    events(journal, "step_end")
        .iter()
        .find_map(|e| e["outputs"]["database"].as_str().map(str::to_string))
        .expect("a step restored a database")
}

fn url_of(db: &TestDb, name: &str) -> String {
    let (base, _) = db.url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn drop_db(db: &TestDb, name: &str) {
    db.psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
}

#[test]
fn a_deploy_failing_at_its_third_migration_rolls_back_to_the_exact_pre_deploy_state() {
    let Some(db) = pg::database("rb_deploy_rollback") else {
        return;
    };
    let t = project(&db);
    t.run_with(["run", "deploy"]).assert_code(0);
    db.psql(DATA);
    let before = fingerprint(&db.url);

    t.write(
        "prisma/migrations/20240201000000_nickname/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\n",
    );
    t.write(
        "prisma/migrations/20240202000000_index/migration.sql",
        "CREATE INDEX \"Order_total_idx\" ON \"Order\"(\"total\");\n",
    );
    t.write(
        "prisma/migrations/20240203000000_bad/migration.sql",
        "CREATE TABLE \"Audit\" (id int);\nUPDATE \"Order\" SET \"total\" = \"total\" / 0;\n",
    );
    let out = t.run_with(["run", "deploy"]);
    out.assert_code(1);
    assert!(out.stderr.contains("division by zero"), "{}", out.stderr);
    let journal = out.journals().pop().unwrap();
    let names: Vec<&str> = journal
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let deploy_failed = journal
        .iter()
        .position(|e| e["event"] == "step_end" && e["kind"] == "deploy" && e["outcome"] == "failed")
        .expect("deploy failed");
    let rollback_started = journal
        .iter()
        .position(|e| e["event"] == "on_failure_start" && e["handler"] == "rollback")
        .expect("rollback ran");
    let rollback_ok = journal
        .iter()
        .position(|e| e["event"] == "on_failure_end" && e["result"] == "succeeded")
        .expect("rollback succeeded");
    assert!(
        deploy_failed < rollback_started && rollback_started < rollback_ok,
        "{names:?}"
    );

    let restored = restored_database(&journal);
    assert_ne!(restored, db.name, "restored into a NEW database");
    assert_eq!(
        fingerprint(&url_of(&db, &restored)),
        before,
        "the restored database equals the pre-deploy state"
    );
    // The primary kept what committed: migrations 2 and 3… of which PostgreSQL rolled 3 back.
    assert_eq!(db.psql("SELECT to_regclass('\"Audit\"') IS NULL"), "t");
    drop_db(&db, &restored);
}

#[test]
fn incident_restore_leaves_out_the_migration_that_deleted_rows() {
    let Some(db) = pg::database("rb_incident_restore") else {
        return;
    };
    let t = project(&db);
    t.run_with(["run", "deploy"]).assert_code(0);
    db.psql(DATA);
    t.write(
        "prisma/migrations/20240301000000_cleanup/migration.sql",
        "DELETE FROM \"Order\" WHERE \"total\" > 300;\n",
    );
    t.run_with(["run", "deploy"]).assert_code(0);
    assert_eq!(db.psql("SELECT count(*) FROM \"Order\""), "100");

    let missing = t.run_with(["run", "incident-restore"]);
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("set BAD_MIGRATION"),
        "{}",
        missing.stderr
    );

    let t = t.env("BAD_MIGRATION", "20240301000000_cleanup");
    let out = t.run_with(["run", "incident-restore"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("the newest verified one from before 20240301000000_cleanup"),
        "{}",
        out.stdout
    );
    let restored = restored_database(&out.journals().pop().unwrap());
    let copy = url_of(&db, &restored);
    assert_eq!(
        crate::backup::psql(&copy, "SELECT count(*) FROM \"Order\""),
        "500",
        "the deleted rows are back"
    );
    assert_eq!(
        crate::backup::psql(&copy, "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20240301000000_cleanup' AND rolled_back_at IS NULL"),
        "0",
        "the bad migration is not applied on the copy"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM \"Order\""),
        "100",
        "the primary was not touched"
    );
    drop_db(&db, &restored);
}

#[test]
fn local_reset_is_refused_on_app_dev_and_done_on_app_scratch() {
    let Some(db) = pg::database("rb_local_reset") else {
        return;
    };
    let suffix = std::process::id();
    for name in [format!("app_dev_{suffix}"), format!("app_scratch_{suffix}")] {
        drop_db(&db, &name);
        db.psql(&format!("CREATE DATABASE \"{name}\""));
    }
    let dev = url_of(&db, &format!("app_dev_{suffix}"));
    let scratch = url_of(&db, &format!("app_scratch_{suffix}"));

    let t = project(&db).env("DATABASE_URL", &dev);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    crate::backup::psql(&dev, "INSERT INTO \"User\" VALUES (1, 'keep@example.com')");
    let refused = t.run_with(["run", "local-reset"]);
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("matches the sandbox pattern")
            && refused.stderr.contains("(sandbox-name)"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        crate::backup::psql(&dev, "SELECT count(*) FROM \"User\""),
        "1",
        "nothing was dropped"
    );

    let t = project(&db).env("DATABASE_URL", &scratch);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    crate::backup::psql(
        &scratch,
        "INSERT INTO \"User\" VALUES (1, 'gone@example.com')",
    );
    let out = t.run_with(["run", "local-reset"]);
    out.assert_code(0);
    assert_eq!(
        crate::backup::psql(&scratch, "SELECT count(*) FROM \"User\""),
        "0",
        "re-created empty"
    );
    assert_eq!(
        crate::backup::psql(
            &scratch,
            "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL"
        ),
        "1",
        "re-migrated"
    );
    drop_db(&db, &format!("app_dev_{suffix}"));
    drop_db(&db, &format!("app_scratch_{suffix}"));
}

#[test]
fn preflight_fails_without_a_backup_on_shared_and_passes_after_one() {
    let Some(db) = pg::database("rb_preflight") else {
        return;
    };
    let t = project(&db).env("DBFLOW_ENV", "staging");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    let out = t.run_with(["run", "preflight"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("PASS  database reachable: PostgreSQL"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("FAIL  newest verified backup: none"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("PASS  pg_dump matches the server"),
        "{}",
        out.stdout
    );
    t.run_with(["backup", "create"]).assert_code(0);
    let out = t.run_with(["run", "preflight"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("PASS  newest verified backup"),
        "{}",
        out.stdout
    );
}

#[test]
fn fix_forward_rehearses_new_migrations_on_a_scratch_copy() {
    let Some(db) = pg::database("rb_fix_forward") else {
        return;
    };
    let t = project(&db);
    t.run_with(["run", "deploy"]).assert_code(0);
    db.psql(DATA);
    let new = t.run_with(["migrate", "new", "add order note"]);
    new.assert_code(0);
    let folder = std::fs::read_dir(t.path().join("prisma/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .find(|n| n.ends_with("_add_order_note"))
        .unwrap();
    t.write(
        &format!("prisma/migrations/{folder}/migration.sql"),
        "ALTER TABLE \"Order\" ADD COLUMN \"note\" TEXT;\n",
    );
    let out = t.run_with(["run", "fix-forward"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("1 pending migration(s) apply cleanly on a copy of backup"),
        "{}",
        out.stdout
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"),
        "0",
        "the primary is untouched"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%rehearsal%'"),
        "0",
        "the scratch copy was dropped"
    );

    t.write(
        &format!("prisma/migrations/{folder}/migration.sql"),
        "ALTER TABLE \"Order\" ADD COLUMN \"note\" TEXT NOT NULL;\n",
    );
    let out = t.run_with(["run", "fix-forward"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("contains null values"),
        "{}",
        out.stderr
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%rehearsal%'"),
        "0"
    );
}
