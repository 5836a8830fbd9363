//! The migrator against real PostgreSQL (and SQLite): deploy, status in every state,
//! refusals, resolve, down, `--to`, non-transactional migrations, concurrency, lock
//! timeouts, crashes and Prisma-written history rows.

use crate::support::cli::Test;
use crate::support::pg::{self, TestDb};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = "CREATE TABLE \"User\" (\n    \"id\" INTEGER NOT NULL PRIMARY KEY,\n    \"email\" TEXT NOT NULL\n);\nCREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");\n";
const POSTS: &str = "CREATE TABLE \"Post\" (\n    \"id\" INTEGER NOT NULL PRIMARY KEY,\n    \"authorId\" INTEGER NOT NULL REFERENCES \"User\"(\"id\")\n);\n";
const NICK: &str = "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\n";

fn workflowfile(extra_migrations: &str) -> String {
    format!(
        "environments:\n  local:\n    url: ${{DATABASE_URL}}\n    protection: sandbox\nmigrations:\n  dir: prisma/migrations\n{extra_migrations}"
    )
}

/// A project with three migrations pointing at `db`.
fn project(db: &TestDb) -> Test {
    Test::new()
        .file("Workflowfile.yaml", &workflowfile(""))
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .file(
            "prisma/migrations/20240102000000_posts/migration.sql",
            POSTS,
        )
        .file(
            "prisma/migrations/20240103000000_nickname/migration.sql",
            NICK,
        )
        .env("DATABASE_URL", &db.url)
}

fn applied_names(db: &TestDb) -> Vec<String> {
    db.psql("SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name")
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn fresh_deploy_then_idempotent_redeploy() {
    let Some(db) = pg::database("fresh_deploy_then_idempotent_redeploy") else {
        return;
    };
    let t = project(&db);
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("applied 3 migration(s)"),
        "{}",
        out.stdout
    );
    assert_eq!(
        applied_names(&db),
        [
            "20240101000000_init",
            "20240102000000_posts",
            "20240103000000_nickname"
        ]
    );
    assert_eq!(db.psql("SELECT count(*) FROM \"User\""), "0");
    // Checksums are sha256 of the file bytes, exactly what `sha256sum` prints.
    let sha = Command::new("sha256sum")
        .arg(
            t.path()
                .join("prisma/migrations/20240101000000_init/migration.sql"),
        )
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        db.psql(
            "SELECT checksum FROM _prisma_migrations WHERE migration_name = '20240101000000_init'"
        ),
        expected
    );

    let again = t.run_with(["migrate", "deploy"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("nothing to apply"),
        "{}",
        again.stdout
    );
    assert_eq!(db.psql("SELECT count(*) FROM _prisma_migrations"), "3");
    t.run_with(["migrate", "status"]).assert_code(0);
}

#[test]
fn status_reports_every_state() {
    let Some(db) = pg::database("status_reports_every_state") else {
        return;
    };
    let t = project(&db);
    // pending
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(out.stdout.matches("pending").count() >= 3, "{}", out.stdout);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.run_with(["migrate", "status"]).assert_code(0);

    // modified: an applied file edited; missing: an applied folder deleted; pending: a new one
    t.write(
        "prisma/migrations/20240102000000_posts/migration.sql",
        &format!("{POSTS}-- edited\n"),
    );
    std::fs::remove_dir_all(t.path().join("prisma/migrations/20240103000000_nickname")).unwrap();
    t.write(
        "prisma/migrations/20240104000000_extra/migration.sql",
        "CREATE TABLE \"Extra\" (id int);\n",
    );
    let out = t.run_with(["migrate", "status", "--json"]);
    out.assert_code(4);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let state = |name: &str| {
        doc["status"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state("20240101000000_init").as_deref(), Some("applied"));
    assert_eq!(state("20240102000000_posts").as_deref(), Some("modified"));
    assert_eq!(state("20240103000000_nickname").as_deref(), Some("missing"));
    assert_eq!(state("20240104000000_extra").as_deref(), Some("pending"));

    // a CRLF-only change is not a modification (as in Prisma)
    t.write(
        "prisma/migrations/20240102000000_posts/migration.sql",
        &POSTS.replace('\n', "\r\n"),
    );
    let out = t.run_with(["migrate", "status", "--json"]);
    assert!(
        !out.stdout.contains("\"state\": \"modified\""),
        "{}",
        out.stdout
    );
}

#[test]
fn deploy_refuses_on_modified_and_failed_then_resolve() {
    let Some(db) = pg::database("deploy_refuses_on_modified_and_failed") else {
        return;
    };
    let t = project(&db);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.write(
        "prisma/migrations/20240101000000_init/migration.sql",
        &format!("{INIT}-- tweak\n"),
    );
    t.write(
        "prisma/migrations/20240104000000_more/migration.sql",
        "CREATE TABLE \"More\" (id int);\n",
    );
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("20240101000000_init` was modified after it was applied"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("git checkout"), "{}", out.stderr);
    assert_eq!(
        db.psql("SELECT to_regclass('\"More\"') IS NULL"),
        "t",
        "nothing applied after refusing"
    );
    t.write("prisma/migrations/20240101000000_init/migration.sql", INIT);

    // A non-transactional migration failing leaves a failed row (as Prisma would).
    t.write(
        "prisma/migrations/20240105000000_bad_index/migration.sql",
        "CREATE INDEX CONCURRENTLY \"Nope_idx\" ON \"NoSuchTable\" (id);\n",
    );
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("20240105000000_bad_index` failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("applied before the failure: 20240104000000_more"),
        "{}",
        out.stderr
    );
    let logs = db.psql(
        "SELECT logs FROM _prisma_migrations WHERE migration_name = '20240105000000_bad_index'",
    );
    assert!(
        logs.contains("NoSuchTable") && logs.contains("line 1"),
        "{logs}"
    );
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(4);
    assert!(status.stdout.contains("failed"), "{}", status.stdout);

    let refused = t.run_with(["migrate", "deploy"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("dbflow migrate resolve --rolled-back 20240105000000_bad_index"),
        "{}",
        refused.stderr
    );

    // resolve --rolled-back: the next deploy retries it (now fixed).
    t.run_with([
        "migrate",
        "resolve",
        "--rolled-back",
        "20240105000000_bad_index",
    ])
    .assert_code(0);
    t.write(
        "prisma/migrations/20240105000000_bad_index/migration.sql",
        "CREATE INDEX CONCURRENTLY \"More_idx\" ON \"More\" (id);\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        db.psql("SELECT indisvalid FROM pg_index WHERE indexrelid = '\"More_idx\"'::regclass"),
        "t"
    );
    t.run_with(["migrate", "status"]).assert_code(0);

    // resolve --applied records a migration someone applied by hand.
    t.write(
        "prisma/migrations/20240106000000_by_hand/migration.sql",
        "CREATE TABLE \"Hand\" (id int);\n",
    );
    db.psql("CREATE TABLE \"Hand\" (id int)");
    t.run_with(["migrate", "resolve", "--applied", "20240106000000_by_hand"])
        .assert_code(0);
    t.run_with(["migrate", "status"]).assert_code(0);
    let again = t.run_with(["migrate", "resolve", "--applied", "20240106000000_by_hand"]);
    again.assert_code(1);
    assert!(again.stderr.contains("already applied"), "{}", again.stderr);
}

#[test]
fn transactional_failure_leaves_nothing_and_stays_pending() {
    let Some(db) = pg::database("transactional_failure_leaves_nothing") else {
        return;
    };
    let t = project(&db);
    t.write(
        "prisma/migrations/20240104000000_broken/migration.sql",
        "CREATE TABLE \"Half\" (id int);\n\nALTER TABLE \"User\" ADD COLUMN \"x\" NOSUCHTYPE;\n",
    );
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("type \"nosuchtype\" does not exist"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("at line 3 of"), "{}", out.stderr);
    assert!(out.stderr.contains("still pending"), "{}", out.stderr);
    assert_eq!(
        db.psql("SELECT to_regclass('\"Half\"') IS NULL"),
        "t",
        "the failed migration's first statement was rolled back"
    );
    assert_eq!(applied_names(&db).len(), 3);
    let json = t.run_with(["migrate", "status", "--json"]);
    assert!(json.stdout.contains("\"rolled_back\""), "{}", json.stdout);
    assert!(db
        .psql("SELECT logs FROM _prisma_migrations WHERE migration_name = '20240104000000_broken'")
        .contains("nosuchtype"));
    // Fixed file: the next deploy applies it without any resolve.
    t.write(
        "prisma/migrations/20240104000000_broken/migration.sql",
        "CREATE TABLE \"Half\" (id int);\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.run_with(["migrate", "status"]).assert_code(0);
}

#[test]
fn deploy_to_and_down() {
    let Some(db) = pg::database("deploy_to_and_down") else {
        return;
    };
    let t = project(&db).file(
        "prisma/migrations/20240103000000_nickname/down.sql",
        "ALTER TABLE \"User\" DROP COLUMN \"nickname\";\n",
    );
    t.run_with(["migrate", "deploy", "--to", "20240102000000_posts"])
        .assert_code(0);
    assert_eq!(
        applied_names(&db),
        ["20240101000000_init", "20240102000000_posts"]
    );
    let dry = t.run_with(["migrate", "deploy", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("would apply 1 migration(s)")
            && dry.stdout.contains("20240103000000_nickname"),
        "{}",
        dry.stdout
    );
    assert_eq!(applied_names(&db).len(), 2, "dry run applied nothing");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nickname'"),
        "1"
    );

    let not_newest = t.run_with(["migrate", "down", "20240102000000_posts"]);
    not_newest.assert_code(1);
    assert!(
        not_newest.stderr.contains("not the newest applied"),
        "{}",
        not_newest.stderr
    );

    t.run_with(["migrate", "down", "20240103000000_nickname"])
        .assert_code(0);
    assert_eq!(
        db.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nickname'"),
        "0"
    );
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(4);
    assert!(status.stdout.contains("rolled back"), "{}", status.stdout);
    assert!(
        status.stdout.contains("schema drift: none"),
        "down is not drift: {}",
        status.stdout
    );

    let no_down = t.run_with(["migrate", "down", "20240102000000_posts"]);
    no_down.assert_code(1);
    assert!(
        no_down.stderr.contains("has no down.sql"),
        "{}",
        no_down.stderr
    );
}

#[test]
fn drift_names_the_hand_added_column() {
    let Some(db) = pg::database("drift_names_the_hand_added_column") else {
        return;
    };
    let t = project(&db);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql("ALTER TABLE \"User\" ADD COLUMN \"shadow\" varchar(20)");
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout
            .contains("column public.\"User\".shadow character varying(20)"),
        "{}",
        out.stdout
    );
}

/// Every kind of hand-made schema change reaches the full comparison: the cheap catalog
/// token that lets `status` skip it must change for each (a change it missed would read
/// "schema drift: none").
#[test]
fn drift_token_changes_for_every_kind_of_hand_change() {
    let cases = [
        (
            "set_not_null",
            "ALTER TABLE \"User\" ALTER COLUMN nickname SET NOT NULL",
            "nickname text not null",
        ),
        (
            "rename_column",
            "ALTER TABLE \"User\" RENAME COLUMN nickname TO nick",
            "\"User\".nick text",
        ),
        (
            "retype_column",
            "ALTER TABLE \"User\" ALTER COLUMN nickname TYPE varchar(40)",
            "nickname character varying(40)",
        ),
        (
            "set_default",
            "ALTER TABLE \"User\" ALTER COLUMN nickname SET DEFAULT 'x'",
            "default 'x'::text",
        ),
        (
            "drop_foreign_key",
            "ALTER TABLE \"Post\" DROP CONSTRAINT \"Post_authorId_fkey\"",
            "Post_authorId_fkey",
        ),
        (
            "drop_column",
            "ALTER TABLE \"User\" DROP COLUMN nickname",
            "nickname",
        ),
        (
            "rename_index",
            "ALTER INDEX \"User_email_key\" RENAME TO user_email",
            "user_email",
        ),
        (
            "add_enum_value",
            "ALTER TYPE \"Role\" ADD VALUE 'ADMIN'",
            "'ADMIN'",
        ),
        (
            "rename_schema_object_type",
            "ALTER TYPE \"Role\" RENAME TO \"Kind\"",
            "Kind",
        ),
    ];
    for (name, change, named) in cases {
        let Some(db) = pg::database(&format!("drift_token_{name}")) else {
            return;
        };
        let t = project(&db).file(
            "prisma/migrations/20240104000000_role/migration.sql",
            "CREATE TYPE \"Role\" AS ENUM ('USER');\n",
        );
        t.run_with(["migrate", "deploy"]).assert_code(0);
        let clean = t.run_with(["migrate", "status"]);
        clean.assert_code(0);
        assert!(
            clean.stdout.contains("schema drift: none"),
            "{name}: {}",
            clean.stdout
        );
        db.psql(change);
        let out = t.run_with(["migrate", "status"]);
        assert!(
            out.code == 4
                && out.stdout.contains("made outside migrations")
                && out.stdout.contains(named),
            "{name}: `{change}` not reported as drift naming `{named}`:\n{}",
            out.stdout
        );
    }
}

/// A state table written before tokens existed (no `token` column) makes status take the
/// step-by-step path: still clean when nothing changed, still naming what did.
#[test]
fn status_reads_a_state_table_from_before_tokens() {
    let Some(db) = pg::database("status_reads_a_state_table_from_before_tokens") else {
        return;
    };
    let t = project(&db);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql("ALTER TABLE dbflow._dbflow_schema_state DROP COLUMN token");
    let clean = t.run_with(["migrate", "status"]);
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("3 applied") && clean.stdout.contains("schema drift: none"),
        "{}",
        clean.stdout
    );
    db.psql("ALTER TABLE \"User\" ADD COLUMN shadow int");
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout.contains("\"User\".shadow integer"),
        "{}",
        out.stdout
    );
}

/// The drift token's arithmetic against real transaction ids: the same rows give the
/// same token however many transactions ran since, a rewritten row changes it, and many
/// bootstrap rows (age `INT_MAX`, as PostgreSQL 18's catalog NOT NULL constraints have)
/// neither overflow nor make it drift.
#[test]
fn drift_token_is_stable_across_transactions_and_changes_with_a_rewrite() {
    let Some(db) = pg::database("drift_token_arithmetic") else {
        return;
    };
    db.psql("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 50) g");
    let token = |ages: &str| db.psql(&format!("SELECT {}", dbflow::db::schema::token_over(ages)));
    let rows = "SELECT age(xmin) AS a FROM t";
    let with_bootstrap =
        "SELECT 2147483647 AS a FROM generate_series(1, 100000) UNION ALL SELECT age(xmin) FROM t";
    let (before, before_bootstrap) = (token(rows), token(with_bootstrap));
    assert!(
        before_bootstrap.starts_with("100050:100000:"),
        "{before_bootstrap}"
    );
    for _ in 0..3 {
        db.psql("SELECT txid_current()");
    }
    assert_eq!(token(rows), before, "other transactions moved the token");
    assert_eq!(token(with_bootstrap), before_bootstrap);
    db.psql("UPDATE t SET v = v WHERE id = 7");
    assert_ne!(token(rows), before, "a rewritten row kept the token");
}

#[test]
fn prisma_written_rows_read_as_applied() {
    let Some(db) = pg::database("prisma_written_rows_read_as_applied") else {
        return;
    };
    let t = project(&db);
    // The table and rows exactly as Prisma's migration engine writes them.
    db.psql(
        "CREATE TABLE \"_prisma_migrations\" (\
            \"id\" VARCHAR(36) PRIMARY KEY NOT NULL, \"checksum\" VARCHAR(64) NOT NULL, \"finished_at\" TIMESTAMPTZ, \
            \"migration_name\" VARCHAR(255) NOT NULL, \"logs\" TEXT, \"rolled_back_at\" TIMESTAMPTZ, \
            \"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(), \"applied_steps_count\" INTEGER NOT NULL DEFAULT 0)",
    );
    let sum = |sql: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(sql.as_bytes()))
    };
    db.psql(INIT);
    db.psql(&format!(
        "INSERT INTO _prisma_migrations VALUES ('3f1b8a52-6c4c-4f0e-9a55-1d2f6f1e0a11', '{}', '2024-01-01 10:00:01.123+00', '20240101000000_init', NULL, NULL, '2024-01-01 10:00:00.987+00', 1)",
        sum(INIT)
    ));
    let out = t.run_with(["migrate", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["status"]["entries"][0]["state"], "applied");
    assert_eq!(doc["status"]["entries"][1]["state"], "pending");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(applied_names(&db).len(), 3);
}

#[test]
fn eight_concurrent_deployers_apply_each_migration_once() {
    let Some(db) = pg::database("eight_concurrent_deployers") else {
        return;
    };
    let mut t = project(&db);
    for i in 0..20 {
        t = t.file(
            &format!("prisma/migrations/20240201{i:06}_t{i}/migration.sql"),
            &format!("CREATE TABLE \"T{i}\" (id int);\nSELECT pg_sleep(0.01);\n"),
        );
    }
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_dbflow"))
                .args(["migrate", "deploy"])
                .current_dir(t.path())
                .env("DATABASE_URL", &db.url)
                .env_remove("DBFLOW_ENV")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(db.psql("SELECT count(*) FROM _prisma_migrations"), "23");
    assert_eq!(db.psql("SELECT count(DISTINCT migration_name) FROM _prisma_migrations WHERE finished_at IS NOT NULL"), "23");
}

#[test]
fn lock_wait_timeout_names_the_holder() {
    let Some(db) = pg::database("lock_wait_timeout_names_the_holder") else {
        return;
    };
    let t = project(&db).file("Workflowfile.yaml", &workflowfile("  lock_wait: 1s\n"));
    let mut holder = hold(&db, &format!("SELECT pg_advisory_lock({});", 72707369));
    wait_for_lock(&db, "l.locktype = 'advisory'");
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("another deploy holds the migration lock"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("pid ") && out.stderr.contains("holder-session"),
        "{}",
        out.stderr
    );
    release(&mut holder);
    t.run_with(["migrate", "deploy"]).assert_code(0);
}

#[test]
fn lock_timeout_is_retried_until_the_table_is_free() {
    let Some(db) = pg::database("lock_timeout_is_retried") else {
        return;
    };
    let t = project(&db).file(
        "Workflowfile.yaml",
        &workflowfile("  lock_timeout: 300ms\n  lock_retries: 8\n"),
    );
    t.run_with(["migrate", "deploy", "--to", "20240102000000_posts"])
        .assert_code(0);
    let mut holder = hold(&db, "BEGIN; LOCK TABLE \"User\" IN ACCESS EXCLUSIVE MODE;");
    wait_for_lock(
        &db,
        "l.relation = '\"User\"'::regclass AND l.mode = 'AccessExclusiveLock'",
    );
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        release(&mut holder);
    });
    let started = Instant::now();
    let out = t.run_with(["migrate", "deploy"]);
    releaser.join().unwrap();
    out.assert_code(0);
    assert!(
        out.stderr.contains("hit lock_timeout; retry 1"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(applied_names(&db).len(), 3);
}

/// A psql session (application_name holder-session) that runs `sql` and stays open.
fn hold(db: &TestDb, sql: &str) -> std::process::Child {
    let psql = pg::bin_dir()
        .map(|d| d.join("psql"))
        .unwrap_or_else(|| "psql".into());
    let mut child = Command::new(psql)
        .args(["-X", "-q", "-d", &db.url])
        .env("PGAPPNAME", "holder-session")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.as_mut().unwrap(), "{sql}").unwrap();
    child
}

/// Waits until the holder session has the lock (sleeping a fixed time is flaky on a busy
/// machine).
fn wait_for_lock(db: &TestDb, condition: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let sql = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.granted AND a.application_name = 'holder-session' AND {condition}"
    );
    while db.psql(&sql) == "0" {
        assert!(
            Instant::now() < deadline,
            "the holder session never got its lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn release(child: &mut std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

#[test]
fn killed_mid_migration_leaves_it_pending() {
    let Some(db) = pg::database("killed_mid_migration_leaves_it_pending") else {
        return;
    };
    let t = project(&db).file(
        "prisma/migrations/20240104000000_slow/migration.sql",
        "CREATE TABLE \"Slow\" (id int);\nSELECT pg_sleep(30);\n",
    );
    t.run_with(["migrate", "deploy", "--to", "20240103000000_nickname"])
        .assert_code(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbflow"))
        .args(["migrate", "deploy"])
        .current_dir(t.path())
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the slow migration is running, then SIGKILL the deployer.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()") == "0" {
        assert!(Instant::now() < deadline, "migration never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // PostgreSQL notices the dropped connection and rolls the transaction back.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()") != "0" {
        assert!(Instant::now() < deadline, "server kept the killed session");
        db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(db.psql("SELECT to_regclass('\"Slow\"') IS NULL"), "t");
    let json = t.run_with(["migrate", "status", "--json"]);
    assert!(json.stdout.contains("\"pending\""), "{}", json.stdout);
    t.write(
        "prisma/migrations/20240104000000_slow/migration.sql",
        "CREATE TABLE \"Slow\" (id int);\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
}

#[test]
fn zero_config_drop_in_for_prisma_migrate_deploy() {
    let Some(db) = pg::database("zero_config_drop_in") else {
        return;
    };
    let t = Test::new()
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(applied_names(&db), ["20240101000000_init"]);
    let wrong = Test::new()
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"sqlite\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url);
    let out = wrong.run_with(["migrate", "deploy"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("provider = \"sqlite\""),
        "{}",
        out.stderr
    );
}

#[test]
fn sqlite_deploy_status_failure_and_drift() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:data/app.db\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .file(
            "prisma/migrations/20240102000000_posts/migration.sql",
            POSTS,
        );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert!(t.exists("data/app.db"));
    t.run_with(["migrate", "status"]).assert_code(0);
    t.write(
        "prisma/migrations/20240103000000_bad/migration.sql",
        "CREATE TABLE \"Half\" (id int);\nINSERT INTO nope VALUES (1);\n",
    );
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(1);
    assert!(out.stderr.contains("no such table: nope"), "{}", out.stderr);
    let json = t.run_with(["migrate", "status", "--json"]);
    assert!(json.stdout.contains("\"rolled_back\""), "{}", json.stdout);
    t.write(
        "prisma/migrations/20240103000000_bad/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"nick\" TEXT;\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    t.run_with(["migrate", "status"]).assert_code(0);
    sqlite_exec(
        &t.path().join("data/app.db"),
        "ALTER TABLE \"Post\" ADD COLUMN \"color\" TEXT",
    );
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout.contains("column Post.color TEXT"),
        "{}",
        out.stdout
    );
}

fn sqlite_exec(path: &std::path::Path, sql: &'static str) {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    });
}

#[test]
fn a_pooled_url_without_direct_url_is_warned_about_before_deploy() {
    let Some(db) = pg::database("a_pooled_url_without_direct_url") else {
        return;
    };
    let pooled = format!("{}?pgbouncer=true", db.url);
    let t = project(&db).env("DATABASE_URL", &pooled);
    let out = t.run_with(["migrate", "deploy"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("connects through a pooler (pgbouncer=true) and has no direct_url"),
        "{}",
        out.stderr
    );

    let with_direct = project(&db)
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    direct_url: ${DIRECT_URL}\n    protection: sandbox\n",
        )
        .env("DATABASE_URL", &pooled)
        .env("DIRECT_URL", &db.url);
    let out = with_direct.run_with(["migrate", "deploy"]);
    out.assert_code(0);
    assert!(!out.stderr.contains("pooler"), "{}", out.stderr);
}

#[test]
fn migrate_new_creates_a_timestamped_prisma_folder() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:app.db\n",
    );
    let out = t.run_with(["migrate", "new", "Add user Nickname!", "--down"]);
    out.assert_code(0);
    let dirs: Vec<String> = std::fs::read_dir(t.path().join("prisma/migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(dirs.len(), 1);
    let name = &dirs[0];
    assert!(
        name.ends_with("_add_user_nickname") && name.len() == 14 + "_add_user_nickname".len(),
        "{name}"
    );
    assert!(t.exists(&format!("prisma/migrations/{name}/migration.sql")));
    assert!(t.exists(&format!("prisma/migrations/{name}/down.sql")));
    let status = t.run_with(["migrate", "status"]);
    status.assert_code(4);
    assert!(
        status.stdout.contains(name.as_str()) && status.stdout.contains("pending"),
        "{}",
        status.stdout
    );
}
