//! `migrate status` takes the history rows from its copy (`.dbflow/history-copy`) when the
//! history statement's snapshot has the horizon the copy was read at, so an unchanged
//! history is not sent again; any completed transaction makes it read the table, and a
//! copy that does not add up is not used. Each test runs on a cluster of its own with
//! autovacuum off, so nothing else completes transactions there.

use crate::support::cli::Test;
use crate::support::pg;
use dbflow::db::history_copy;

const COPY: &str = ".dbflow/history-copy";

fn project(url: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\n",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"Item\" (\"id\" INTEGER NOT NULL PRIMARY KEY);\n",
        )
        .file(
            "prisma/migrations/20240102000000_tag/migration.sql",
            "ALTER TABLE \"Item\" ADD COLUMN \"tag\" TEXT;\n",
        )
        .env("DATABASE_URL", url)
}

/// A cluster of this test's own with the project deployed into its database `app`.
fn deployed(name: &str) -> Option<(pg::Cluster, Test)> {
    pg::own_deployed(name, project)
}

/// `migrate status --json`: exit code and each migration's `name state note`.
fn status(t: &Test) -> (i32, Vec<String>) {
    let out = t.run_with(["migrate", "status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    let entries = doc["status"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {doc}"))
        .iter()
        .map(|e| format!("{} {} {}", e["name"], e["state"], e["note"]))
        .collect();
    (out.code, entries)
}

fn both_applied() -> Vec<String> {
    vec![
        "\"20240101000000_init\" \"applied\" null".to_string(),
        "\"20240102000000_tag\" \"applied\" null".to_string(),
    ]
}

/// The copy at `COPY` with the row of `name` taken out (as if the table had lost it).
fn forge_without(t: &Test, name: &str) {
    let path = t.path().join(COPY);
    let mut copy = history_copy::load(&path).expect("a copy to forge");
    copy.rows.retain(|r| r.migration_name != name);
    history_copy::save(&path, &copy.key, &copy.rows);
}

#[test]
fn status_reads_the_history_from_its_copy_only_while_no_transaction_completed() {
    let Some((cluster, t)) = deployed("history_copy") else {
        return;
    };
    // The first status reads the table and keeps a copy; the second finds it current.
    assert_eq!(status(&t), (0, both_applied()));
    let copy = std::fs::read(t.path().join(COPY)).unwrap();
    assert!(
        !String::from_utf8_lossy(&copy).contains("postgres://"),
        "no URL in the copy"
    );
    assert_eq!(status(&t), (0, both_applied()));
    assert_eq!(
        std::fs::read(t.path().join(COPY)).unwrap(),
        copy,
        "a copy that is current is not written again"
    );

    // Proof that the rows then come from the copy, not the table: one taken out of the
    // copy is missing from what status sees (nothing completed since it was read).
    forge_without(&t, "20240102000000_tag");
    let (code, entries) = status(&t);
    assert_eq!(code, 4, "pending is one of `migrate status`'s problems");
    assert_eq!(
        entries[1], "\"20240102000000_tag\" \"pending\" null",
        "{entries:?}"
    );

    // Any completed transaction (here one that changes nothing) moves the horizon: the
    // table is read again and the copy replaced.
    cluster.psql("app", "SELECT pg_current_xact_id()").unwrap();
    assert_eq!(status(&t), (0, both_applied()));
    assert_ne!(std::fs::read(t.path().join(COPY)).unwrap(), copy);
    assert_eq!(status(&t), (0, both_applied()));

    // A row changed by hand is seen at once, and by the status that finds the copy current.
    cluster
        .psql(
            "app",
            "UPDATE _prisma_migrations SET checksum = repeat('0', 64) WHERE migration_name = '20240102000000_tag'",
        )
        .unwrap();
    for _ in 0..2 {
        let (code, entries) = status(&t);
        assert_eq!(code, 4, "{entries:?}");
        assert!(
            entries[1].starts_with("\"20240102000000_tag\" \"modified\""),
            "{entries:?}"
        );
    }

    // A copy that is not exactly what dbflow writes is ignored whole.
    t.write(COPY, "dbflow history copy v1\nnot a copy");
    let (code, entries) = status(&t);
    assert_eq!(code, 4);
    assert!(entries[1].contains("modified"), "{entries:?}");
}

/// A failed migration's error output can quote data: the copy never holds it, and status
/// still shows its first line when the rest comes from the copy.
#[test]
fn rows_with_logs_are_read_from_the_table_and_never_written_to_the_copy() {
    let Some((cluster, t)) = deployed("history_copy_logs") else {
        return;
    };
    t.write(
        "prisma/migrations/20240103000000_unique/migration.sql",
        "CREATE UNIQUE INDEX \"Item_tag_key\" ON \"Item\"(\"tag\");\n",
    );
    cluster
        .psql(
            "app",
            "INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at, applied_steps_count)
             VALUES ('f1', repeat('a', 64), '20240103000000_unique',
                     'ERROR: could not create unique index; Key (tag)=(alice@example.com) is duplicated.', now(), 0)",
        )
        .unwrap();
    for round in 0..2 {
        let (code, entries) = status(&t);
        assert_eq!(code, 4, "round {round}: {entries:?}");
        assert!(
            entries[2].contains("\"failed\"") && entries[2].contains("alice@example.com"),
            "round {round}: {entries:?}"
        );
        let copy = std::fs::read(t.path().join(COPY)).unwrap();
        assert!(
            !String::from_utf8_lossy(&copy).contains("alice"),
            "round {round}: the error output is not in the copy"
        );
    }

    // A copy saying there is a row with logs that the table no longer has (it cannot,
    // while nothing completed) is not trusted: the table is read in full.
    let path = t.path().join(COPY);
    let mut copy = history_copy::load(&path).unwrap();
    assert_eq!(copy.with_logs, 1);
    // (Saved with the rows it counts: two with logs, where the table has one.)
    for _ in 0..2 {
        let mut extra = copy.rows[0].clone();
        extra.logs = Some("x".into());
        copy.rows.push(extra);
    }
    history_copy::save(&path, &copy.key, &copy.rows);
    assert_eq!(history_copy::load(&path).unwrap().with_logs, 2);
    let (code, entries) = status(&t);
    assert_eq!(code, 4);
    assert_eq!(entries[0], "\"20240101000000_init\" \"applied\" null");
    assert_eq!(history_copy::load(&path).unwrap().with_logs, 1);
}
