//! `migrate status` skips reading the catalog when no transaction completed since the
//! catalog token was last read (the deploy's record, or an earlier status remembered in
//! `.dbflow/catalog-horizons`), and never lets that hide a change. Each test runs on a
//! cluster of its own with autovacuum off, so nothing else completes transactions there.

use crate::support::cli::Test;
use crate::support::pg;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

const MEMO: &str = ".dbflow/catalog-horizons";

fn project(url: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\n",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"Item\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"name\" TEXT NOT NULL);\nCREATE INDEX \"Item_name_idx\" ON \"Item\"(\"name\");\n",
        )
        .env("DATABASE_URL", url)
}

/// A cluster of this test's own with the project deployed into its database `app`.
fn deployed(name: &str) -> Option<(pg::Cluster, Test)> {
    pg::own_deployed(name, project)
}

/// Makes the state table look as a dbflow from before horizons left it (no `horizon`
/// column until the next deploy).
fn as_recorded_before_horizons(cluster: &pg::Cluster) {
    cluster
        .psql(
            "app",
            "ALTER TABLE dbflow._dbflow_schema_state DROP COLUMN horizon",
        )
        .unwrap();
}

/// Adds a second migration and deploys it (the deploy records the schema again).
fn deploy_a_second_migration(t: &Test) {
    t.write(
        "prisma/migrations/20240102000000_tag/migration.sql",
        "ALTER TABLE \"Item\" ADD COLUMN \"tag\" TEXT;\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
}

/// `migrate status --json`: its exit code and document.
fn status(t: &Test) -> (i32, serde_json::Value) {
    let out = t.run_with(["migrate", "status", "--json"]);
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    (out.code, doc)
}

fn catalog_read(doc: &serde_json::Value) -> bool {
    doc["status"]["catalog_read"]
        .as_bool()
        .unwrap_or_else(|| panic!("no catalog_read in {doc}"))
}

fn drift(doc: &serde_json::Value) -> String {
    doc["status"]["drift"].to_string()
}

#[test]
fn status_reads_the_catalog_only_after_a_transaction_completed_and_still_sees_every_change() {
    let Some((cluster, t)) = deployed("catalog_horizon") else {
        return;
    };

    // Nothing completed since the deploy recorded the token: it is the live one.
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"]["drift_checked"], true, "{doc}");
    assert!(!catalog_read(&doc), "{doc}");
    assert!(!t.exists(MEMO), "nothing read, nothing to remember");

    // Any committed transaction (here one that changes no catalog row) moves the horizon:
    // the catalog is read, and what was read is remembered for the next status.
    cluster.psql("app", "SELECT pg_current_xact_id()").unwrap();
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert!(catalog_read(&doc), "{doc}");
    let memo = t.read(MEMO);
    assert!(
        memo.starts_with("dbflow catalog horizons v1\n") && memo.lines().count() == 2,
        "{memo}"
    );
    assert!(!memo.contains("postgres://"), "no URL in the memo: {memo}");
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert!(!catalog_read(&doc), "the remembered horizon: {doc}");

    // A hand-made change completes a transaction: read, reported, and reported again by
    // the status that finds the memo current.
    cluster
        .psql("app", "ALTER TABLE \"Item\" ADD COLUMN \"by_hand\" text")
        .unwrap();
    for _ in 0..2 {
        let (code, doc) = status(&t);
        assert_eq!(code, 4, "{doc}");
        assert!(drift(&doc).contains("by_hand"), "{doc}");
    }

    // A memo written for another server (or edited by hand) is not this server's: the
    // catalog is read. A memo that is not exactly what dbflow writes is ignored whole.
    t.write(MEMO, &memo.replace("\t", "\t9"));
    let (code, doc) = status(&t);
    assert_eq!(code, 4, "{doc}");
    assert!(catalog_read(&doc), "{doc}");
    t.write(MEMO, "dbflow catalog horizons v1\nnot\ta memo'\n");
    let (code, doc) = status(&t);
    assert_eq!(code, 4, "{doc}");
    assert!(drift(&doc).contains("by_hand"), "{doc}");
}

/// A DDL transaction that was running while the deploy recorded the schema, and commits
/// after it: the recorded horizon counted it as running, so its commit moves the horizon
/// and status reads the catalog and reports the change.
#[test]
fn ddl_in_flight_while_the_deploy_records_is_reported_once_it_commits() {
    let Some((cluster, t)) = deployed("catalog_horizon_in_flight") else {
        return;
    };

    let sneaky = Open::after(&cluster, "CREATE TABLE \"Sneaky\" (id int);");
    // A second running transaction with an id: the horizons compared list two, in order.
    let other = Open::after(
        &cluster,
        "DO $$ BEGIN PERFORM pg_current_xact_id(); END $$;",
    );

    // A second migration is deployed (and the schema recorded) meanwhile.
    deploy_a_second_migration(&t);
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert!(
        !catalog_read(&doc),
        "nothing completed since the record: {doc}"
    );

    sneaky.commit();
    let (code, doc) = status(&t);
    assert_eq!(code, 4, "{doc}");
    assert!(catalog_read(&doc), "{doc}");
    assert!(drift(&doc).contains("Sneaky"), "{doc}");
    other.commit();
}

/// A schema recorded by a dbflow from before horizons (no `horizon` column until the next
/// deploy) is still read in one round trip that remembers the horizon (the step-by-step
/// path would not), and drift is still checked.
#[test]
fn a_record_without_a_horizon_column_still_uses_the_memo() {
    let Some((cluster, t)) = deployed("catalog_horizon_old_record") else {
        return;
    };
    as_recorded_before_horizons(&cluster);
    let scans = history_scans(&cluster, None);
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"]["drift_checked"], true, "{doc}");
    assert!(t.exists(MEMO), "the probe remembered the horizon: {doc}");
    // The probe that meets the old table fails before it reads the history: one read of
    // the history table per status, not one for each attempt.
    assert_eq!(history_scans(&cluster, Some(scans)), scans + 1);
    // The next deploy adds the column back and records a horizon.
    deploy_a_second_migration(&t);
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert!(!catalog_read(&doc), "{doc}");
}

/// How many times the history table of `app` was scanned, as the statistics say. With
/// `after`, waits (up to 10 s) until the count moved past it: a backend's counts reach
/// the statistics when it exits, all at once, some time after dbflow closed it.
fn history_scans(cluster: &pg::Cluster, after: Option<i64>) -> i64 {
    let read = || {
        cluster
            .psql(
                "app",
                "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = '_prisma_migrations'",
            )
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let scans = read();
        match after {
            Some(before) if scans == before && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => return scans,
        }
    }
}

/// The catalog token is read in a statement after the one that takes the horizon (issue
/// 20): a DDL transaction that commits in between (here: held on a catalog lock until
/// status waits for it) is in the token status reads and remembers with that horizon, so
/// neither this status nor any later one takes it for the recorded schema. On a record
/// from before horizons (no `horizon` column), where the token must be read.
#[test]
fn ddl_committed_between_the_horizon_and_the_token_read_is_reported() {
    let Some((cluster, t)) = deployed("catalog_horizon_token_race") else {
        return;
    };
    as_recorded_before_horizons(&cluster);
    // pg_enum is read by the token's statement, not by the one that takes the horizon.
    let sneaky = Open::after(
        &cluster,
        "CREATE TABLE \"Sneaky\" (id int);\nLOCK TABLE pg_catalog.pg_enum IN ACCESS EXCLUSIVE MODE;",
    );

    let status_run = t.spawn_with(["migrate", "status", "--json"]);
    // Status has taken its horizon and waits to read the token.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting = cluster
            .psql(
                "app",
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%2147483647%'",
            )
            .unwrap();
        if waiting == "1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never waited for the token's catalog lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sneaky.commit();

    let out = status_run.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(4), "{doc}");
    assert!(drift(&doc).contains("Sneaky"), "{doc}");
    // Nothing completes from here on: the later runs find the memo current.
    for _ in 0..2 {
        let (code, doc) = status(&t);
        assert_eq!(code, 4, "{doc}");
        assert!(drift(&doc).contains("Sneaky"), "{doc}");
    }
}

/// A psql session on `app` inside a transaction that ran some SQL and stays open until
/// [`Open::commit`].
struct Open {
    psql: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl Open {
    /// Begins a transaction, runs `sql` in it and returns once it ran.
    fn after(cluster: &pg::Cluster, sql: &str) -> Open {
        let mut psql = Command::new(pg::bin_dir().unwrap().join("psql"))
            .args(["-X", "-q", "-At", "-d", &cluster.url("app")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = psql.stdin.take().unwrap();
        writeln!(stdin, "BEGIN;\n{sql}\nSELECT 'ran';").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(psql.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ran");
        Open { psql, stdin }
    }

    /// Commits and waits for the session to end.
    fn commit(mut self) {
        writeln!(self.stdin, "COMMIT;").unwrap();
        drop(self.stdin);
        assert!(self.psql.wait().unwrap().success());
    }
}

/// A catalog table held locked (a `VACUUM FULL` or an explicit `LOCK` on it) when status
/// must read the catalog token does not make status hang: the token and the listing each
/// give up after the catalog wait, and status says the drift was not checked and why.
#[test]
fn a_locked_catalog_makes_status_say_so_instead_of_hanging() {
    let Some((cluster, t)) = deployed("catalog_horizon_locked") else {
        return;
    };
    // A completed transaction moves the horizon: the token must be read.
    cluster.psql("app", "SELECT txid_current()").unwrap();
    let holder = Open::after(
        &cluster,
        "LOCK TABLE pg_catalog.pg_enum IN ACCESS EXCLUSIVE MODE;",
    );
    let mut run = t.spawn_with(["migrate", "status", "--json"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            holder.commit();
            panic!("status still waiting on the locked catalog after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["status"]["drift_checked"], false, "{doc}");
    let note = doc["status"]["drift_note"].as_str().unwrap_or_default();
    assert!(note.contains("locked"), "{doc}");
    holder.commit();
    let (code, doc) = status(&t);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(doc["status"]["drift_checked"], true, "{doc}");
    assert_eq!(drift(&doc), "[]");
}
