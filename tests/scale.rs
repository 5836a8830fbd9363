//! `migrate status` on a 5,000-migration history: the hash cache in `.dbflow/` saves the
//! re-hashing of unchanged files and the listing copy the listing of an unchanged folder,
//! and neither hides an edit, a new migration or a hand-made schema change.

use crate::support::cli::Test;
use crate::support::pg;
use std::os::unix::fs::MetadataExt;

const N: usize = 5000;
const CACHE: &str = ".dbflow/migration-hashes";

fn name(i: usize) -> String {
    format!("2024{i:010}_m{i:04}")
}

/// A project of `N` small migrations: the first creates a table, the others only
/// select (what is measured here is the history's size, not its DDL).
fn project(url: &str) -> Test {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\n",
        )
        .env("DATABASE_URL", url);
    let root = t.path().join("prisma/migrations");
    for i in 1..=N {
        let dir = root.join(name(i));
        std::fs::create_dir_all(&dir).unwrap();
        let sql = if i == 1 {
            "CREATE TABLE \"Item\" (\"id\" INTEGER NOT NULL PRIMARY KEY);\n".to_string()
        } else {
            format!("SELECT {i};\n")
        };
        std::fs::write(dir.join("migration.sql"), sql).unwrap();
    }
    t
}

/// A sandbox project on `url` with one migration, `name`, of `sql`.
fn one_migration(url: &str, name: &str, sql: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: sandbox\n",
        )
        .file(&format!("prisma/migrations/{name}/migration.sql"), sql)
        .env("DATABASE_URL", url)
}

/// Rewrites `path` with `text` of the same size and puts its mtime back as it was.
fn edit_keeping_size_and_mtime(path: &std::path::Path, text: &str) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.len(), text.len() as u64, "same size");
    let stamp = format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec());
    std::fs::write(path, text).unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-m", "-d", &stamp])
        .arg(path)
        .status()
        .unwrap();
    assert!(touched.success());
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (meta.len(), meta.mtime(), meta.mtime_nsec()),
        "size and mtime restored"
    );
}

/// How many entries the hash cache holds (its count field, after the header and the
/// folder: see `src/db/hash_cache.rs`).
fn cached_entries(t: &Test) -> usize {
    let bytes = std::fs::read(t.path().join(CACHE)).unwrap();
    let header = b"dbflow migration hashes v2\n";
    assert!(bytes.starts_with(header), "a v2 cache");
    let at = header.len();
    let folder = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let count = at + 4 + folder;
    u32::from_le_bytes(bytes[count..count + 4].try_into().unwrap()) as usize
}

#[test]
fn status_at_5000_migrations_reports_edits_and_drift_with_a_warm_cache() {
    let Some(db) = pg::database("status_at_5000_migrations") else {
        return;
    };
    let t = project(&db.url);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    // The cache's entries skip files changed in the last 2 s (a second write in the same
    // timestamp tick): wait so that every file is recorded.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(0);
    assert!(t.exists(CACHE), "status records the hashes it computed");
    assert_eq!(cached_entries(&t), N, "one entry per file");
    assert!(
        t.exists(".dbflow/migration-listing"),
        "status keeps a copy of the settled folder's listing"
    );
    t.run_with(["migrate", "status"]).assert_code(0);

    // A migration folder added (or removed) changes the folder's stamp: the copy of the
    // listing no longer stands for it, and the new migration is pending at once.
    let added = name(N + 1);
    t.write(
        &format!("prisma/migrations/{added}/migration.sql"),
        "SELECT 0;\n",
    );
    let out = t.run_with(["migrate", "status", "-v"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&added) && l.contains("pending")),
        "{}",
        out.stdout
    );
    std::fs::remove_dir_all(t.path().join(format!("prisma/migrations/{added}"))).unwrap();
    let out = t.run_with(["migrate", "status", "-v"]);
    out.assert_code(0);
    assert!(!out.stdout.contains(&added), "{}", out.stdout);

    // An applied migration edited in place, same size, mtime put back: the ctime moved,
    // so the warm cache misses and the file is re-hashed.
    let edited = name(2500);
    edit_keeping_size_and_mtime(
        &t.path()
            .join(format!("prisma/migrations/{edited}/migration.sql")),
        "SELECT 2501;\n",
    );
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&edited) && l.contains("modified")),
        "{}",
        out.stdout
    );
    // Reported on every later run too (the cache now holds the edited file's hash).
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(out.stdout.contains(&edited), "{}", out.stdout);
    edit_keeping_size_and_mtime(
        &t.path()
            .join(format!("prisma/migrations/{edited}/migration.sql")),
        "SELECT 2500;\n",
    );
    t.run_with(["migrate", "status"]).assert_code(0);

    // A cache that does not parse is ignored, not trusted: the edit still shows.
    let cache = std::fs::read(t.path().join(CACHE)).unwrap();
    std::fs::write(t.path().join(CACHE), &cache[..cache.len() - 100]).unwrap();
    t.write(
        &format!("prisma/migrations/{}/migration.sql", name(17)),
        "SELECT 1700;\n",
    );
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(out.stdout.contains(&name(17)), "{}", out.stdout);
    t.write(
        &format!("prisma/migrations/{}/migration.sql", name(17)),
        "SELECT 17;\n",
    );
    t.run_with(["migrate", "status"]).assert_code(0);

    // A hand-made change is drift, whatever the history's size.
    db.psql("ALTER TABLE \"Item\" ADD COLUMN \"by_hand\" text");
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout.contains("column public.\"Item\".by_hand text"),
        "{}",
        out.stdout
    );
}

/// 2,500 tables with an index each, made by one migration (a loop), so the schema is
/// large without 2,500 deploys.
const MANY_TABLES: &str = "DO $$ BEGIN FOR i IN 1..2500 LOOP
  EXECUTE format('CREATE TABLE %I (id integer PRIMARY KEY, name text NOT NULL DEFAULT '''')', 't' || i);
  EXECUTE format('CREATE INDEX %I ON %I (name)', 't' || i || '_name_idx', 't' || i);
END LOOP; END $$;
";

/// The record a deploy leaves on a large schema: written by the server (no copy of the
/// listing in dbflow), with a catalog token only when it is exactly the live catalog. A
/// clean deploy's record has one (status may skip the listing); a hand-made change made
/// before a deploy stays reported after it, and that record has none (status always
/// compares in full while the drift lasts), until the change is undone.
#[test]
fn deploys_onto_a_large_schema_keep_earlier_drift_and_token_only_exact_records() {
    let Some(db) = pg::database("deploys_onto_a_large_schema") else {
        return;
    };
    let t = one_migration(&db.url, "20240000000001_tables", MANY_TABLES);
    let has_token = || db.psql("SELECT token IS NOT NULL FROM dbflow._dbflow_schema_state");
    let status_clean = |why: &str| {
        let out = t.run_with(["migrate", "status"]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("schema drift: none"),
            "{why}: {}",
            out.stdout
        );
    };
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(has_token(), "t", "a fresh record is the live catalog");
    status_clean("first deploy");

    t.write(
        "prisma/migrations/20240000000002_more/migration.sql",
        "ALTER TABLE t1 ADD COLUMN extra integer;\n",
    );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(
        has_token(),
        "t",
        "a clean deploy's record is the live catalog"
    );
    status_clean("second deploy");

    db.psql("ALTER TABLE t2 ADD COLUMN by_hand text");
    t.write(
        "prisma/migrations/20240000000003_again/migration.sql",
        "ALTER TABLE t3 ADD COLUMN extra integer;\n",
    );
    let deploy = t.run_with(["migrate", "deploy"]);
    deploy.assert_code(0);
    assert!(deploy.all().contains("t2.by_hand"), "{}", deploy.all());
    assert_eq!(
        has_token(),
        "f",
        "a record without the hand-made change is not the live catalog"
    );
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(4);
    assert!(
        out.stdout.contains("column public.t2.by_hand text") && !out.stdout.contains("t3.extra"),
        "the hand-made change, and only it, is drift: {}",
        out.stdout
    );

    db.psql("ALTER TABLE t2 DROP COLUMN by_hand");
    status_clean("hand-made change undone");
}

#[test]
fn lint_pending_reads_the_catalog_of_a_database_with_5000_tables() {
    // Counting every small table in one query locks each (and its indexes) until it
    // ends: on a server with default lock settings 5,000 tables exhausted the lock table
    // ("out of shared memory") and `lint --pending` could not even tell what was pending.
    let Some(cluster) = pg::own_cluster(
        "lint_pending_5000_tables",
        "-c fsync=off -c max_connections=100 -c max_locks_per_transaction=64",
    ) else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE wide").unwrap();
    // In transactions of 1,000 tables: one of 5,000 runs out of locks too.
    for from in (1..=5000).step_by(1000) {
        cluster
            .psql("wide", &format!(
                "DO $$ BEGIN FOR i IN {from}..{} LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, name text); CREATE INDEX t%s_name ON t%s (name)', i, i, i); END LOOP; END $$",
                from + 999
            ))
            .unwrap();
    }
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: ${DATABASE_URL}\n    protection: shared\n",
        )
        .file(
            "prisma/migrations/20990101000000_drop/migration.sql",
            "ALTER TABLE t1 DROP COLUMN name;\n",
        )
        .env("DATABASE_URL", &cluster.url("wide"));
    let out = t.run_with(["lint", "--pending", "--env", "local"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("error[drop-column]")
            && out
                .stdout
                .contains("for environment `local` (shared) against its database (5000 tables)"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

/// The folder's mtime as `touch -d` takes it (`@seconds.nanoseconds`).
fn mtime_of(path: &std::path::Path) -> String {
    let meta = std::fs::metadata(path).unwrap();
    format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec())
}

fn touch_mtime(path: &std::path::Path, stamp: &str) {
    let touched = std::process::Command::new("touch")
        .args(["-m", "-d", stamp])
        .arg(path)
        .status()
        .unwrap();
    assert!(touched.success());
}

/// What `rsync -a`, `cp -a` or `tar x` do to a migrations folder after the listing copy
/// was recorded: a migration added and the folder's mtime put back as it was, or the
/// whole folder swapped for another with that same mtime. Neither leaves the folder's
/// stamp as recorded (the ctime moves, the inode differs): `deploy` applies the new
/// migration at once.
#[test]
fn deploy_applies_a_migration_added_behind_a_folder_mtime_put_back_or_a_folder_swap() {
    let Some(db) = pg::database("listing_copy_mtime_put_back") else {
        return;
    };
    let t = one_migration(&db.url, "20240101000000_a", "CREATE TABLE a (id int);\n");
    let migrations = t.path().join("prisma/migrations");
    t.run_with(["migrate", "deploy"]).assert_code(0);
    // The copy records only a folder unchanged for 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    t.run_with(["migrate", "status"]).assert_code(0);
    assert!(
        t.exists(".dbflow/migration-listing"),
        "the copy is recorded"
    );
    let recorded = mtime_of(&migrations);

    // Added in place, the folder's mtime put back.
    t.write(
        "prisma/migrations/20240102000000_b/migration.sql",
        "CREATE TABLE b (id int);\n",
    );
    touch_mtime(&migrations, &recorded);
    assert_eq!(mtime_of(&migrations), recorded);
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(db.psql("SELECT count(*) FROM b"), "0", "b was applied");

    // The whole folder swapped for a copy with one more migration and the same mtime.
    let next = t.path().join("prisma/next");
    std::fs::create_dir(&next).unwrap();
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let from = entry.unwrap().path();
        let to = next.join(from.file_name().unwrap());
        std::fs::create_dir(&to).unwrap();
        std::fs::copy(from.join("migration.sql"), to.join("migration.sql")).unwrap();
    }
    std::fs::create_dir(next.join("20240103000000_c")).unwrap();
    std::fs::write(
        next.join("20240103000000_c/migration.sql"),
        "CREATE TABLE c (id int);\n",
    )
    .unwrap();
    touch_mtime(&next, &mtime_of(&migrations));
    std::fs::rename(&migrations, t.path().join("prisma/old")).unwrap();
    std::fs::rename(&next, &migrations).unwrap();
    t.run_with(["migrate", "deploy"]).assert_code(0);
    assert_eq!(db.psql("SELECT count(*) FROM c"), "0", "c was applied");
    let out = t.run_with(["migrate", "status"]);
    out.assert_code(0);
    assert!(out.stdout.contains("3 applied, 0 pending"), "{}", out.all());
}
