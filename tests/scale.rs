//! `migrate status` on a 5,000-migration history: the hash cache in `.dbflow/` saves the
//! re-hashing of unchanged files, and never hides an edit or a hand-made schema change.

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
    let cache = t.read(CACHE);
    assert_eq!(
        cache.lines().count(),
        N + 2,
        "header, folder, one line per file"
    );
    t.run_with(["migrate", "status"]).assert_code(0);

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
    t.write(CACHE, "dbflow migration hashes v1\nnot a folder\ngarbage\n");
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
