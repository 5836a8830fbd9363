//! One run, one database session: a `deploy` workflow (guard → status → backup → deploy
//! → verify) connects to its database once (pg_dump adds its own), reads the migrations
//! folder once and lints the pending migrations once, however many steps need them.

use crate::support::cli::Test;
use crate::support::pg::{self, TestDb};
use std::time::Duration;

const INIT: &str = "CREATE TABLE \"User\" (\n    \"id\" INTEGER NOT NULL PRIMARY KEY,\n    \"email\" TEXT NOT NULL\n);\n";
const POSTS: &str = "CREATE TABLE \"Post\" (\n    \"id\" INTEGER NOT NULL PRIMARY KEY,\n    \"title\" TEXT NOT NULL\n);\n";

const WORKFLOW: &str = "environments:\n  target:\n    url: ${DATABASE_URL}\n    protection: sandbox\nworkflows:\n  release:\n    steps:\n      - guard: {}\n      - status: { fail_on: [failed, modified] }\n      - backup: {}\n      - deploy: {}\n      - verify: { checks: [ { name: clean, status_clean: true }, { name: users, sql: \"SELECT count(*) FROM \\\"User\\\"\", equals: 0 } ] }\n";

fn project(db: &TestDb) -> Test {
    Test::new()
        .file("Workflowfile.yaml", WORKFLOW)
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .file(
            "prisma/migrations/20240102000000_posts/migration.sql",
            POSTS,
        )
        .env("DATABASE_URL", &db.url)
}

/// Sessions ever opened to the test's database, as the server counts them. A session
/// is counted once its backend has flushed its statistics (at the latest when it
/// ends), so every reading is counted by the next one.
fn sessions(db: &TestDb) -> i64 {
    std::thread::sleep(Duration::from_millis(500));
    db.psql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        .parse()
        .expect("a count")
}

#[test]
fn a_deploy_workflow_opens_one_connection_to_its_database() {
    let Some(db) = pg::database("session_deploy_workflow_connects_once") else {
        return;
    };
    let t = project(&db);
    let r0 = sessions(&db);
    let r1 = sessions(&db);
    // What one reading adds to the next (1: itself).
    let reading = r1 - r0;
    let out = t.run_with(["run", "release"]);
    out.assert_code(0);
    let r2 = sessions(&db);
    let by_run = r2 - r1 - reading;
    // dbflow's one session, and pg_dump's.
    assert_eq!(by_run, 2, "sessions opened by the run\n{}", out.stdout);
    assert_eq!(
        db.psql("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL"),
        "2"
    );
}

#[test]
fn a_deploy_workflow_reads_the_migrations_folder_once() {
    let Some(db) = pg::database("session_deploy_workflow_reads_once") else {
        return;
    };
    let usable = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        // With CI=true a missing tool is a failure, never a silent skip.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strace is needed by this test (scripts/prereqs.sh installs it)"
        );
        eprintln!("strace is not available (or may not trace here): skipped");
        return;
    }
    let t = project(&db);
    let trace = t.path().join("trace.txt");
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_dbflow"))
        .args(["run", "release"])
        .current_dir(t.path())
        .env("DATABASE_URL", &db.url)
        .env_remove("DBFLOW_ENV")
        .env_remove("DATABASE_ENV")
        .env_remove("NODE_ENV")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace runs");
    assert!(status.success());
    let trace = std::fs::read_to_string(&trace).unwrap();
    let opens = |file: &str| {
        trace
            .lines()
            .filter(|l| l.contains(file) && !l.contains("= -1"))
            .count()
    };
    // The folder is listed (and every script hashed) once for the whole run.
    let listings = trace
        .lines()
        .filter(|l| l.contains("prisma/migrations\"") && l.contains("O_DIRECTORY"))
        .count();
    assert_eq!(listings, 1, "{trace}");
    // The store keeps no text (a 50 MB script costs no memory until used), so a script
    // is opened to be hashed, to be linted (once: the deploy reuses the guard step's
    // review) and to be applied: three times, whatever the number of steps.
    assert_eq!(opens("20240101000000_init/migration.sql"), 3, "{trace}");
    assert_eq!(opens("20240102000000_posts/migration.sql"), 3);
}
