//! SIGINT and SIGTERM on real PostgreSQL: a deploy cancels its running statement through
//! the server, waits for the rollback, reports where every migration was left and exits
//! 130/143; a backup stops pg_dump and leaves nothing behind.

use crate::support::cli::{events, Test};
use crate::support::pg::{self, TestDb};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = "CREATE TABLE \"User\" (\"id\" INTEGER NOT NULL PRIMARY KEY);\n";
const SLOW: &str = "CREATE TABLE \"Slow\" (\"id\" INTEGER);\nSELECT pg_sleep(5);\n";
const AFTER: &str = "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\n";

fn project(db: &TestDb, slow: &str, workflows: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            &format!("environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\n{workflows}"),
        )
        .file("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n")
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .file("prisma/migrations/20240102000000_slow/migration.sql", slow)
        .file("prisma/migrations/20240103000000_after/migration.sql", AFTER)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path())
}

fn pg_path() -> String {
    let bin = pg::bin_dir().expect("PostgreSQL binaries");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn wait_for(what: &str, check: &dyn Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Signals `child` and waits for it; returns its output and how long it took to exit.
fn interrupt(child: Child, name: &str) -> (Output, Duration) {
    let sent = Instant::now();
    signal(child.id(), name);
    let output = child.wait_with_output().unwrap();
    (output, sent.elapsed())
}

fn sleeping(db: &TestDb) -> String {
    db.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(5)%' AND state = 'active' AND pid <> pg_backend_pid()")
}

fn history(db: &TestDb) -> String {
    db.psql("SELECT migration_name || ' ' || (finished_at IS NOT NULL)::text || ' ' || (rolled_back_at IS NOT NULL)::text FROM _prisma_migrations ORDER BY started_at")
}

#[test]
fn sigint_mid_migration_cancels_it_reports_and_exits_130() {
    let Some(db) = pg::database("sigint_mid_migration") else {
        return;
    };
    let t = project(&db, SLOW, "");
    let child = t.spawn_with(["migrate", "deploy"]);
    wait_for("the slow migration to run", &|| sleeping(&db) == "1");
    let (output, took) = interrupt(child, "INT");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert!(stdout.contains("✔ 20240101000000_init"), "{stdout}");
    for expected in [
        "interrupted by SIGINT: the running statement of `20240102000000_slow` was cancelled and PostgreSQL rolled it back",
        "✔ 20240101000000_init  applied",
        "↺ 20240102000000_slow  rolled back: nothing of it was applied, it is still pending",
        "… 20240103000000_after  pending",
        "1 applied by this deploy, 1 rolled back, 0 half applied, 1 pending",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    // The server no longer runs it, nothing of it stayed, and it is not in the history.
    assert_eq!(sleeping(&db), "0");
    assert_eq!(db.psql("SELECT to_regclass('\"Slow\"') IS NULL"), "t");
    assert_eq!(history(&db), "20240101000000_init true false");
    // The interruption is in the journal.
    let journal = t.journals().pop().expect("a journal");
    let interrupted = events(&journal, "interrupted");
    assert_eq!(interrupted.len(), 1, "{journal:?}");
    assert_eq!(interrupted[0]["signal"], "SIGINT");
    assert!(interrupted[0]["state"]
        .as_str()
        .unwrap()
        .contains("20240102000000_slow  rolled back"));
    assert_eq!(events(&journal, "run_end")[0]["result"], "interrupted");
    // A re-run applies the rest.
    t.write(
        "prisma/migrations/20240102000000_slow/migration.sql",
        "CREATE TABLE \"Slow\" (\"id\" INTEGER);\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.run_with(["migrate", "status"]).assert_code(0);
}

#[test]
fn sigterm_mid_migration_in_a_workflow_exits_143_and_journals_it() {
    let Some(db) = pg::database("sigterm_mid_migration") else {
        return;
    };
    let t = project(
        &db,
        SLOW,
        "workflows:\n  release:\n    on_failure: cleanup\n    steps:\n      - deploy: {}\n      - shell: echo after-deploy\n  cleanup:\n    steps:\n      - shell: echo cleanup-ran\n",
    );
    let child = t.spawn_with(["run", "release"]);
    wait_for("the slow migration to run", &|| sleeping(&db) == "1");
    let (output, took) = interrupt(child, "TERM");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(
        !stdout.contains("after-deploy") && !stdout.contains("cleanup-ran"),
        "nothing runs after an interruption: {stdout}"
    );
    assert_eq!(db.psql("SELECT to_regclass('\"Slow\"') IS NULL"), "t");
    assert_eq!(history(&db), "20240101000000_init true false");
    let journal = t.journals().pop().expect("a journal");
    let interrupted = events(&journal, "interrupted");
    assert_eq!(interrupted.len(), 1, "{journal:?}");
    assert_eq!(interrupted[0]["signal"], "SIGTERM");
    let end = &events(&journal, "run_end")[0];
    assert_eq!(end["result"], "interrupted");
    assert_eq!(end["exit_code"], 143);
}

#[test]
fn sigint_in_a_non_transactional_migration_names_it_half_applied() {
    let Some(db) = pg::database("sigint_half_applied") else {
        return;
    };
    let half = "CREATE TABLE \"Half\" (\"id\" INTEGER);\nCREATE INDEX CONCURRENTLY \"Half_id_idx\" ON \"Half\"(\"id\");\nSELECT pg_sleep(5);\nALTER TABLE \"Half\" ADD COLUMN \"x\" INTEGER;\n";
    let t = project(&db, half, "");
    let child = t.spawn_with(["migrate", "deploy"]);
    wait_for("the slow statement to run", &|| sleeping(&db) == "1");
    let (output, took) = interrupt(child, "INT");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    for expected in [
        "interrupted by SIGINT while `20240102000000_slow` ran OUTSIDE A TRANSACTION: it is HALF APPLIED",
        "✘ 20240102000000_slow  HALF APPLIED, marked failed",
        "dbflow migrate resolve --rolled-back 20240102000000_slow",
        "… 20240103000000_after  pending",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    // What ran before the cancel stayed; the status says failed.
    assert_eq!(db.psql("SELECT to_regclass('\"Half\"') IS NOT NULL"), "t");
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(4);
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.contains("20240102000000_slow") && l.contains("failed")),
        "{}",
        status.stdout
    );
}

/// The pid of `parent`'s child running `program`, if any.
fn child_named(parent: u32, program: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == program && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

fn backup_dirs(t: &Test) -> Vec<String> {
    std::fs::read_dir(t.path().join("backups/local"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigint_during_backup_stops_pg_dump_and_removes_the_partial_backup() {
    let Some(db) = pg::database("sigint_backup") else {
        return;
    };
    let t = project(&db, "CREATE TABLE \"Slow\" (\"id\" INTEGER);\n", "");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    // A session holding an exclusive lock makes pg_dump wait, so it is still running
    // when the signal comes.
    let mut locker = Command::new(pg::bin_dir().unwrap().join("psql"))
        .args([
            "-X",
            "-q",
            "-d",
            &db.url,
            "-c",
            "BEGIN; LOCK TABLE \"Slow\" IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the lock", &|| {
        db.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation = '\"Slow\"'::regclass") == "1"
    });
    let dbflow = t.spawn_with(["backup", "create"]);
    let dbflow_pid = dbflow.id();
    wait_for("pg_dump to wait for the lock", &|| {
        db.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'") == "1"
    });
    let pg_dump = child_named(dbflow_pid, "pg_dump").expect("pg_dump runs as dbflow's child");
    assert!(backup_dirs(&t)[0].starts_with(".partial-"));
    let (output, took) = interrupt(dbflow, "INT");
    let _ = locker.kill();
    let _ = locker.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert!(
        stderr.contains(
            "interrupted by SIGINT: pg_dump was stopped and the unfinished backup removed"
        ),
        "{stderr}"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pg_dump}")).exists()
            || std::fs::read_to_string(format!("/proc/{pg_dump}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "pg_dump was stopped"
    );
    assert_eq!(
        backup_dirs(&t),
        Vec::<String>::new(),
        "no entry, no partial folder"
    );
    wait_for("pg_dump's session to end", &|| {
        db.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'") == "0"
    });
    let journal = t.journals().pop().unwrap();
    assert_eq!(events(&journal, "interrupted").len(), 1, "{journal:?}");
    assert_eq!(events(&journal, "run_end")[0]["result"], "interrupted");
}

#[test]
fn a_second_sigint_exits_at_once_and_names_the_statement_left_running() {
    let Some(db) = pg::database("second_sigint") else {
        return;
    };
    // The migration swallows the first cancel, so the clean stop keeps waiting for it.
    let stubborn = "DO $$ BEGIN FOR i IN 1..20 LOOP BEGIN PERFORM pg_sleep(5); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$;\n";
    let t = project(&db, stubborn, "");
    let child = t.spawn_with(["migrate", "deploy"]);
    let pid = child.id();
    wait_for("the slow migration to run", &|| sleeping(&db) == "1");
    signal(pid, "INT");
    wait_for("the first cancel to be swallowed", &|| {
        db.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbflow (cancel)'")
            == "0"
            && sleeping(&db) == "1"
    });
    std::thread::sleep(Duration::from_millis(200));
    let (output, took) = interrupt(child, "INT");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    assert!(stderr.contains("SIGINT: stopping at once"), "{stderr}");
    assert!(
        stderr.contains("may still be running on the server (backend pid"),
        "{stderr}"
    );
    // The statement is indeed still there; the test ends it.
    assert_eq!(sleeping(&db), "1");
    db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'dbflow'");
}
