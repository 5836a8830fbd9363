//! Backups, verification, the catalog, retention, restore, rollback and drills against
//! real PostgreSQL (real pg_dump / pg_restore / createdb / dropdb) and SQLite.

use crate::support::cli::{Output, Test};
use crate::support::pg::{self, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = "CREATE TYPE \"Mood\" AS ENUM ('happy', 'sad');
CREATE TABLE \"User\" (
    \"id\" BIGSERIAL PRIMARY KEY,
    \"email\" TEXT NOT NULL UNIQUE,
    \"name\" TEXT,
    \"mood\" \"Mood\",
    \"balance\" NUMERIC(12, 2),
    \"tags\" TEXT[],
    \"profile\" JSONB,
    \"avatar\" BYTEA,
    \"createdAt\" TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE \"Order\" (
    \"id\" SERIAL PRIMARY KEY,
    \"userId\" BIGINT NOT NULL REFERENCES \"User\"(\"id\"),
    \"total\" NUMERIC NOT NULL,
    \"note\" TEXT
);
CREATE INDEX \"Order_userId_idx\" ON \"Order\"(\"userId\");
";

/// Rows of every type worth round-tripping: unicode, NULLs, arrays, jsonb, bytea,
/// quotes and newlines.
const DATA: &str = "INSERT INTO \"User\" (email, name, mood, balance, tags, profile, avatar)
SELECT 'u' || g || '@example.com', CASE WHEN g % 7 = 0 THEN NULL ELSE 'Zoë ' || g END,
       CASE WHEN g % 2 = 0 THEN 'happy'::\"Mood\" ELSE 'sad' END, g * 1.5, ARRAY['a' || g, 'b'],
       jsonb_build_object('n', g, 'nested', jsonb_build_object('x', g % 3)), decode(md5(g::text), 'hex')
FROM generate_series(1, 300) g;
INSERT INTO \"Order\" (\"userId\", total, note)
SELECT (g % 300) + 1, g * 0.25, E'line\\nbreak ''quoted''' FROM generate_series(1, 900) g";

/// A secret that must never appear in output, journals or manifests.
const SECRET: &str = "Sup3r-S3cret-Pw";

fn workflowfile(extra: &str) -> String {
    format!(
        "environments:
  local:
    url: ${{DATABASE_URL}}
    protection: sandbox
  production:
    url: ${{DATABASE_URL}}
    protection: protected
migrations:
  dir: prisma/migrations
{extra}"
    )
}

/// `PATH` with the PostgreSQL binaries first, as an operator's shell would have it.
pub(crate) fn pg_path() -> String {
    let bin = pg::bin_dir().expect("PostgreSQL binaries");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A project on `url` with the first migration, applied, and data in it.
fn project(db: &TestDb, url: &str, extra: &str) -> Test {
    let t = Test::new()
        .file("Workflowfile.yaml", &workflowfile(extra))
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", url)
        .env("PATH", &pg_path());
    t.run_with(["migrate", "deploy"]).assert_code(0);
    db.psql(DATA);
    t
}

/// The URL with a password, so tests can check it never leaks (the test cluster trusts
/// local connections and ignores it; a server given by DBFLOW_TEST_PG_URL has its own).
fn with_secret(url: &str) -> (String, String) {
    let parsed = url::Url::parse(url).unwrap();
    if let Some(password) = parsed.password() {
        return (url.to_string(), password.to_string());
    }
    let mut parsed = parsed;
    parsed.set_password(Some(SECRET)).unwrap();
    (parsed.to_string(), SECRET.to_string())
}

fn url_for(db: &TestDb, name: &str) -> String {
    let mut parsed = url::Url::parse(&db.url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// psql on any database of the test server.
pub(crate) fn psql(url: &str, sql: &str) -> String {
    let psql = pg::bin_dir().unwrap().join("psql");
    let out = Command::new(psql)
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Drops the databases a test had dbflow create, also when the test fails.
struct Dropper {
    admin: String,
    names: Vec<String>,
}

impl Dropper {
    fn new(db: &TestDb) -> Self {
        Dropper {
            admin: db.admin_url().to_string(),
            names: Vec::new(),
        }
    }

    fn add(&mut self, name: &str) -> String {
        self.names.push(name.to_string());
        name.to_string()
    }
}

impl Drop for Dropper {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new(pg::bin_dir().unwrap().join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-d",
                    &self.admin,
                    "-c",
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                ])
                .output();
        }
    }
}

/// What a database holds: its schema (columns, indexes, constraints, sequences' values)
/// and, per table, a digest of every row.
pub(crate) fn fingerprint(url: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "schema".into(),
        psql(
            url,
            "SELECT concat_ws(E'\\n',
               (SELECT string_agg(format('%s.%s %s %s %s', table_name, column_name, udt_name, is_nullable, coalesce(column_default, '')), E'\\n' ORDER BY table_name, column_name)
                  FROM information_schema.columns WHERE table_schema = 'public'),
               (SELECT string_agg(indexdef, E'\\n' ORDER BY indexdef) FROM pg_indexes WHERE schemaname = 'public'),
               (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER BY conname) FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
               (SELECT string_agg(sequencename || '=' || coalesce(last_value::text, 'null'), E'\\n' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = 'public'))",
        ),
    );
    for table in psql(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .lines()
    {
        let digest = psql(
            url,
            &format!(
                "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM public.\"{table}\" t"
            ),
        );
        out.insert(table.to_string(), digest);
    }
    out
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

fn backup_dirs(t: &Test, env: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(t.path().join("backups").join(env))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn create(t: &Test, args: &[&str]) -> String {
    let mut all = vec!["backup", "create", "--json"];
    all.extend(args);
    let out = t.run_with(all);
    out.assert_code(0);
    json(&out)["outputs"]["backup"]["backup_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// create, verify, list

#[test]
fn pg_backup_is_streamed_verified_and_cataloged_with_its_manifest() {
    let Some(db) = pg::database("bk_create") else {
        return;
    };
    let (url, secret) = with_secret(&db.url);
    let t = project(&db, &url, "");
    let out = t.run_with(["backup", "create", "--label", "pre-deploy", "--json"]);
    out.assert_code(0);
    assert_contains(&out.stderr, "using PostgreSQL client tools");
    assert_contains(&out.stderr, &pg::bin_dir().unwrap().display().to_string());
    let doc = json(&out);
    let id = doc["outputs"]["backup"]["backup_id"].as_str().unwrap();
    assert!(
        regex::Regex::new(r"^\d{8}_\d{6}_pre-deploy$")
            .unwrap()
            .is_match(id),
        "{id}"
    );

    let dir = t.path().join("backups/local").join(id);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let dump = dir.join("dump.pgdump");
    assert_eq!(manifest["id"], id);
    assert_eq!(manifest["environment"], "local");
    assert_eq!(manifest["database"], db.name.as_str());
    assert_eq!(manifest["format"], "custom");
    assert_eq!(manifest["label"], "pre-deploy");
    assert_eq!(manifest["migration_head"], "20240101000000_init");
    assert_eq!(manifest["run_id"], doc["run_id"]);
    assert_eq!(
        manifest["size"].as_u64().unwrap(),
        std::fs::metadata(&dump).unwrap().len()
    );
    assert_eq!(manifest["sha256"], sha256sum(&dump).as_str());
    assert_eq!(manifest["verification"]["state"], "verified");
    assert!(manifest["server_version"]
        .as_str()
        .unwrap()
        .starts_with(|c: char| c.is_ascii_digit()));
    assert!(manifest["tool_version"].is_string());
    let tables: Vec<&str> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tables.contains(&"public.\"User\""), "{tables:?}");
    assert_contains(manifest["url"].as_str().unwrap(), "****");

    // The password is nowhere: output, journal, manifest.
    let manifest_text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let journals = serde_json::to_string(&t.journals()).unwrap();
    for text in [&out.stdout, &out.stderr, &manifest_text, &journals] {
        assert!(!text.contains(&secret), "password leaked into:\n{text}");
    }

    let list = t.run_with(["backup", "list", "--json"]);
    list.assert_code(0);
    let listed = &json(&list)["backups"][0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["state"], "verified");
    assert_eq!(listed["label"], "pre-deploy");
    assert_eq!(listed["migration_head"], "20240101000000_init");

    let human = t.run_with(["backup", "list"]);
    human.assert_code(0);
    assert_contains(&human.stdout, "ID ");
    let row = human.stdout.lines().find(|l| l.starts_with(id)).unwrap();
    for column in ["pre-deploy", "20240101000000_init", "verified", "KiB"] {
        assert_contains(row, column);
    }

    // Verify again, by a unique prefix of the id.
    let verify = t.run_with(["backup", "verify", &id[..15]]);
    verify.assert_code(0);
    assert_contains(&verify.stdout, "sha256 matches; pg_restore --list read");
}

#[test]
fn pg_corrupted_dump_fails_verification_and_restore_refuses_it() {
    let Some(db) = pg::database("bk_corrupt") else {
        return;
    };
    let t = project(&db, &db.url, "");
    let mut dropper = Dropper::new(&db);
    let first = create(&t, &["--label", "a"]);
    let second = create(&t, &["--label", "b"]);

    // Verified after a flip: refused and marked.
    flip_a_byte(
        &t.path()
            .join("backups/local")
            .join(&first)
            .join("dump.pgdump"),
    );
    let out = t.run_with(["backup", "verify", &first]);
    out.assert_code(1);
    assert_contains(&out.stderr, "FAILED verification: sha256 mismatch");
    let list = json(&t.run_with(["backup", "list", "--json"]));
    let state = |id: &str| {
        list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state(&first), "failed");
    assert_eq!(state(&second), "verified");
    let name = dropper.add(&format!("{}_a", db.name));
    let out = t.run_with(["restore", &first, "--into", &name]);
    out.assert_code(1);
    assert_contains(&out.stderr, "failed verification");
    assert!(!db.database_exists(&name), "nothing was created");

    // Flipped without a verify in between: the restore checks the sha256 itself.
    flip_a_byte(
        &t.path()
            .join("backups/local")
            .join(&second)
            .join("dump.pgdump"),
    );
    let name = dropper.add(&format!("{}_b", db.name));
    let out = t.run_with(["restore", &second, "--into", &name]);
    out.assert_code(1);
    assert_contains(&out.stderr, "changed since it was taken (sha256 mismatch");
    assert!(!db.database_exists(&name));
    let list = json(&t.run_with(["backup", "list", "--json"]));
    assert!(list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["state"] == "failed"));
    // Nothing verified is left to restore.
    let out = t.run_with(["restore", "latest"]);
    out.assert_code(1);
    assert_contains(&out.stderr, "no verified backup of `local`");
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
        // pid (comm) state ppid …; comm may contain spaces, so split after the ')'.
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

#[test]
fn pg_interrupted_backup_leaves_no_catalog_entry_and_no_partial_file() {
    let Some(db) = pg::database("bk_interrupt") else {
        return;
    };
    let t = project(&db, &db.url, "");
    // A session holding an exclusive lock makes pg_dump wait, so it is still running
    // when it gets killed.
    let mut locker = Command::new(pg::bin_dir().unwrap().join("psql"))
        .args([
            "-X",
            "-q",
            "-d",
            &db.url,
            "-c",
            "BEGIN; LOCK TABLE \"Order\" IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let started = Instant::now();
        while !check() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("the lock", &|| {
        db.psql("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND relation = '\"Order\"'::regclass") == "1"
    });
    let dbflow = t.spawn_with(["backup", "create"]);
    let dbflow_pid = dbflow.id();
    wait_for("pg_dump to wait for the lock", &|| {
        db.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'") == "1"
    });
    let pg_dump = child_named(dbflow_pid, "pg_dump").expect("pg_dump runs as dbflow's child");
    assert!(
        !backup_dirs(&t, "local").is_empty(),
        "the partial folder exists meanwhile"
    );
    assert!(backup_dirs(&t, "local")[0].starts_with(".partial-"));
    Command::new("kill")
        .args(["-9", &pg_dump.to_string()])
        .status()
        .unwrap();
    let output = dbflow.wait_with_output().unwrap();
    let _ = locker.kill();
    let _ = locker.wait();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_contains(&stderr, "pg_dump was killed by signal 9");
    assert_eq!(
        backup_dirs(&t, "local"),
        Vec::<String>::new(),
        "no entry, no partial file"
    );
    let list = t.run_with(["backup", "list"]);
    assert_contains(&list.stdout, "no backups of `local`");
    // The failure reached the journal.
    let journal = t.journals().pop().unwrap();
    let end = journal.iter().find(|e| e["event"] == "run_end").unwrap();
    assert_eq!(end["result"], "failed");
}

// ---------------------------------------------------------------------------------------
// retention

/// A manifest for a synthetic backup (retention reads nothing else).
fn synthetic_backup(t: &Test, env: &str, created_at: &str, verified: bool) -> String {
    let ts = chrono::DateTime::parse_from_rfc3339(created_at).unwrap();
    let id = ts.format("%Y%m%d_%H%M%S").to_string();
    let manifest = serde_json::json!({
        "format_version": 1, "id": id, "environment": env, "engine": "sqlite",
        "database": "app", "url": "sqlite:data/app.db", "created_at": created_at,
        "duration_ms": 5, "format": "sqlite", "dump": "database.sqlite", "size": 1024,
        "sha256": "0".repeat(64), "tool_version": "SQLite 3", "server_version": "3",
        "migration_head": null, "run_id": null, "label": null, "tables": [], "row_counts": {},
        "verification": {
            "state": if verified { "verified" } else { "failed" },
            "checked_at": created_at,
            "detail": if verified { "synthetic" } else { "sha256 mismatch (synthetic)" }
        }
    });
    t.write(
        &format!("backups/{env}/{id}/manifest.json"),
        &serde_json::to_string_pretty(&manifest).unwrap(),
    );
    t.write(&format!("backups/{env}/{id}/database.sqlite"), "x");
    id
}

fn sqlite_project() -> Test {
    Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  local:\n    url: sqlite:data/app.db\n",
    )
}

#[test]
fn retention_on_a_400_day_catalog_keeps_exactly_the_gfs_set() {
    let t = sqlite_project();
    let last = chrono::NaiveDate::from_ymd_opt(2024, 7, 4).unwrap();
    for n in 0..400 {
        let day = last - chrono::Duration::days(n);
        synthetic_backup(&t, "local", &format!("{day}T02:00:00Z"), true);
    }
    // A second backup on the last day: only the newest of a day counts.
    let same_day = synthetic_backup(&t, "local", "2024-07-04T01:00:00Z", true);
    // A failed one newer than everything: it takes no slot and goes.
    let failed = synthetic_backup(&t, "local", "2024-07-05T02:00:00Z", false);
    // A run in progress (this test process is alive) uses an old backup: it stays.
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    t.write(
        ".dbflow/runs/20240704T020000000Z-beef.jsonl",
        &format!(
            "{}\n{}\n",
            serde_json::json!({"ts": "2024-07-04T02:00:00Z", "event": "run_start", "run_id": "20240704T020000000Z-beef", "env": "local", "host": host, "pid": std::process::id()}),
            serde_json::json!({"ts": "2024-07-04T02:00:01Z", "event": "step_end", "step": "restore", "outputs": {"backup_id": "20231001_020000"}}),
        ),
    );
    assert_eq!(backup_dirs(&t, "local").len(), 402);

    let dry = t.run_with(["backup", "prune", "--dry-run"]);
    dry.assert_code(0);
    assert_eq!(
        backup_dirs(&t, "local").len(),
        402,
        "a dry run deletes nothing"
    );
    assert_contains(&dry.stdout, "14 kept, 388 would be deleted");
    assert_contains(&dry.stdout, &format!("would delete {failed}"));
    assert_contains(&dry.stdout, "failed verification");
    assert_contains(&dry.stdout, &format!("would delete {same_day}"));
    let line = |id: &str| {
        dry.stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{}", dry.stdout))
            .to_string()
    };
    assert!(line("20231001_020000").trim_start().starts_with("keep "));
    assert!(line("20231001_020000")
        .ends_with("used by run 20240704T020000000Z-beef, still in progress"));
    assert!(line("20240704_020000").ends_with(
        "newest verified backup, daily (2024-07-04), weekly (2024-W27), monthly (2024-07)"
    ));
    assert!(line("20240630_020000")
        .ends_with("daily (2024-06-30), weekly (2024-W26), monthly (2024-06)"));
    assert!(
        line("20240627_020000").ends_with("outside the retention (7 daily, 4 weekly, 6 monthly)")
    );

    t.run_with(["backup", "prune"]).assert_code(0);
    let expected = [
        // daily
        "20240704_020000",
        "20240703_020000",
        "20240702_020000",
        "20240701_020000",
        "20240630_020000",
        "20240629_020000",
        "20240628_020000",
        // weekly (ISO weeks 26, 25, 24 closed on Sundays; week 27's is 07-04)
        "20240623_020000",
        "20240616_020000",
        // monthly
        "20240531_020000",
        "20240430_020000",
        "20240331_020000",
        "20240229_020000",
        // in use by the run in progress
        "20231001_020000",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(backup_dirs(&t, "local"), expected);

    // Once the run is over, its backup goes with the next prune.
    std::fs::remove_file(t.path().join(".dbflow/runs/20240704T020000000Z-beef.jsonl")).unwrap();
    t.run_with(["backup", "prune"]).assert_code(0);
    assert_eq!(backup_dirs(&t, "local").len(), 13);
}

#[test]
fn retention_is_configurable_per_environment() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:data/app.db
          production:
            url: sqlite:data/prod.db
            backups:
              retention: { daily: 2, weekly: 0 }
        backups:
          retention: { daily: 3, weekly: 0, monthly: 0 }
        ",
    );
    for env in ["local", "production"] {
        for day in 1..=9 {
            synthetic_backup(&t, env, &format!("2024-03-0{day}T02:00:00Z"), true);
        }
    }
    t.run_with(["backup", "prune"]).assert_code(0);
    t.run_with(["backup", "prune", "--env", "production"])
        .assert_code(0);
    assert_eq!(
        backup_dirs(&t, "local"),
        ["20240307_020000", "20240308_020000", "20240309_020000"]
    );
    // production: its own daily 2 and weekly 0, monthly 0 from `backups:`.
    assert_eq!(
        backup_dirs(&t, "production"),
        ["20240308_020000", "20240309_020000"]
    );
}

#[test]
fn list_and_prune_reports_read_well() {
    let t = sqlite_project();
    synthetic_backup(&t, "local", "2024-07-01T02:00:00Z", true);
    synthetic_backup(&t, "local", "2024-07-02T02:00:00Z", true);
    synthetic_backup(&t, "local", "2024-07-02T14:30:00Z", false);
    let filters = vec![
        (r"\s+\d+d\d+h\s", " [age] "),
        (r"\s+AGE\s+", " AGE "),
        (r"\(\d+ms\)", "([duration])"),
    ];
    let list = t.run_with(["backup", "list"]);
    list.assert_code(0);
    insta::with_settings!({ filters => filters.clone() }, {
        insta::assert_snapshot!("backup_list", list.stdout);
    });
    let prune = t.run_with(["backup", "prune", "--dry-run"]);
    prune.assert_code(0);
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("backup_prune_dry_run", prune.stdout);
    });
}

// ---------------------------------------------------------------------------------------
// restore

#[test]
fn pg_restore_into_a_new_database_reproduces_the_data_exactly() {
    let Some(db) = pg::database("bk_restore") else {
        return;
    };
    let t = project(&db, &db.url, "drill:\n  key_tables: [User, Order]\n");
    let mut dropper = Dropper::new(&db);
    let before = fingerprint(&db.url);
    let id = create(&t, &[]);

    // Default name: <db>_restore_<ts>, next to the original, which is untouched.
    let out = t.run_with(["restore", &id, "--json"]);
    out.assert_code(0);
    let doc = json(&out);
    let restored = dropper.add(doc["outputs"]["restore"]["database"].as_str().unwrap());
    assert!(
        regex::Regex::new(&format!("^{}_restore_\\d{{8}}_\\d{{6}}$", db.name))
            .unwrap()
            .is_match(&restored),
        "{restored}"
    );
    assert_eq!(fingerprint(&url_for(&db, &restored)), before);
    assert_eq!(fingerprint(&db.url), before);
    for check in [
        "same tables",
        "row count of User",
        "row count of Order",
        "migration status",
    ] {
        assert_contains(&out.stderr, &format!("✔ {check}"));
    }
    assert_contains(&out.stderr, "no schema drift");

    // --into a name that exists is refused: a restore never overwrites.
    let out = t.run_with(["restore", &id, "--into", &restored]);
    out.assert_code(1);
    assert_contains(
        &out.stderr,
        "already exists: a restore never overwrites one",
    );

    // Directory format, parallel jobs, restored with --into.
    let dir_id = create(
        &t,
        &["--format", "directory", "--jobs", "2", "--label", "dir"],
    );
    let manifest: Value =
        serde_json::from_str(&t.read(&format!("backups/local/{dir_id}/manifest.json"))).unwrap();
    assert_eq!(manifest["format"], "directory");
    assert!(manifest["files"].as_array().unwrap().len() > 2);
    let into = dropper.add(&format!("{}_dir", db.name));
    t.run_with(["restore", &dir_id, "--into", &into])
        .assert_code(0);
    assert_eq!(fingerprint(&url_for(&db, &into)), before);
    // Sequences go on where they were.
    assert_eq!(
        psql(&url_for(&db, &into), "SELECT nextval('\"User_id_seq\"')"),
        "301"
    );
}

#[test]
fn pg_in_place_restore_needs_the_typed_word_and_is_refused_on_protected() {
    let Some(db) = pg::database("bk_inplace") else {
        return;
    };
    let t = project(
        &db,
        &db.url,
        "sandbox_pattern: \"^dbflow_t_\"\ntasks:\n  stop-app:\n    script: echo stopped >> stopped.txt\nbackups:\n  stop_writes: stop-app\n",
    );
    let before = fingerprint(&db.url);
    let id = create(&t, &[]);
    db.psql("DELETE FROM \"Order\"; UPDATE \"User\" SET name = 'changed'");
    let changed = fingerprint(&db.url);
    assert_ne!(changed, before);

    // No terminal and no --confirm: refused, exit 3, nothing stopped or touched.
    let out = t.run_with(["restore", &id, "--in-place"]);
    out.assert_code(3);
    assert_contains(&out.stderr, "needs the word RESTORE typed");
    let out = t.run_with(["restore", &id, "--in-place", "--confirm", "yes"]);
    out.assert_code(3);
    assert_contains(&out.stderr, "not confirmed: the word to type is RESTORE");
    // Protected: refused whatever is typed.
    let out = t.run_with([
        "restore",
        &id,
        "--in-place",
        "--confirm",
        "RESTORE",
        "--env",
        "production",
    ]);
    out.assert_code(3);
    assert_contains(
        &out.stderr,
        "blocked by the guard: `restore-in-place` on `production`",
    );
    assert_eq!(fingerprint(&db.url), changed);
    assert!(!t.exists("stopped.txt"));

    // With the word: stop_writes runs, then the database is replaced.
    let out = t.run_with(["restore", &id, "--in-place", "--confirm", "RESTORE"]);
    out.assert_code(0);
    assert_eq!(t.read("stopped.txt"), "stopped\n", "stop_writes ran once");
    assert_eq!(fingerprint(&db.url), before);
    let journal = t.journals().pop().unwrap();
    assert!(journal
        .iter()
        .any(|e| e["event"] == "confirmation" && e["answer"] == "AssumedYes"));
}

// ---------------------------------------------------------------------------------------
// rollback

#[test]
fn pg_rollback_after_a_failed_deploy_returns_to_the_pre_deploy_state() {
    let Some(db) = pg::database("bk_rollback") else {
        return;
    };
    let t = project(
        &db,
        &db.url,
        "sandbox_pattern: '^dbflow_t_'
workflows:
  release:
    allow_unguarded_deploy: 'these tests are about backups'
    steps:
      - id: backup
        backup: { label: pre-deploy }
      - deploy: {}
",
    );
    let mut dropper = Dropper::new(&db);
    let pre_deploy = fingerprint(&db.url);
    t.write(
        "prisma/migrations/20240102000000_nickname/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\nUPDATE \"User\" SET \"nickname\" = 'n' || id;\n",
    );
    t.write(
        "prisma/migrations/20240103000000_bad/migration.sql",
        "ALTER TABLE \"Order\" ADD COLUMN \"paid\" BOOLEAN;\nSELECT 1 / 0;\n",
    );
    let deploy = t.run_with(["run", "release"]);
    deploy.assert_code(1);
    assert_contains(&deploy.stderr, "20240103000000_bad` failed");
    let run_id = t.journals().pop().unwrap()[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        fingerprint(&db.url),
        pre_deploy,
        "the deploy changed the database"
    );

    // Into a new database (the default): exactly the pre-deploy state.
    let out = t.run_with(["rollback", "--run", &run_id, "--json"]);
    out.assert_code(0);
    assert_contains(&out.stderr, &format!("run {run_id} took backup"));
    assert_contains(
        &out.stderr,
        "point the application at the restored database:",
    );
    assert_contains(&out.stderr, "DATABASE_URL=postgres");
    let restored = dropper.add(
        json(&out)["outputs"]["rollback"]["database"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(fingerprint(&url_for(&db, &restored)), pre_deploy);

    // Up to, but excluding, the bad migration.
    let partial = dropper.add(&format!("{}_good", db.name));
    let out = t.run_with([
        "rollback",
        "--run",
        &run_id,
        "--to",
        "20240103000000_bad",
        "--into",
        &partial,
    ]);
    out.assert_code(0);
    let partial_url = url_for(&db, &partial);
    assert_eq!(
        psql(&partial_url, "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY 1"),
        "20240101000000_init\n20240102000000_nickname"
    );
    assert_eq!(
        psql(&partial_url, "SELECT nickname FROM \"User\" WHERE id = 7"),
        "n7"
    );
    assert_eq!(
        psql(
            &partial_url,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'paid'"
        ),
        "0"
    );

    // In place, with the typed word: the original database itself goes back.
    let out = t.run_with([
        "rollback",
        "--run",
        &run_id,
        "--in-place",
        "--confirm",
        "RESTORE",
    ]);
    out.assert_code(0);
    assert_eq!(fingerprint(&db.url), pre_deploy);
}

// ---------------------------------------------------------------------------------------
// drill

#[test]
fn pg_drill_passes_leaves_no_drill_database_and_never_writes_the_primary() {
    let Some(db) = pg::database("bk_drill") else {
        return;
    };
    let drill_config = "drill:
  key_tables: [User, Order]
  verify:
    - SELECT count(*) = 300 FROM \"User\"
metrics:
  textfile: metrics/dbflow.prom
";
    let t = project(&db, &db.url, drill_config);
    let before = fingerprint(&db.url);
    let drill_dbs = format!(
        "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_restore\\_drill\\_%'",
        db.name
    );

    let out = t.run_with(["drill"]);
    out.assert_code(0);
    assert_contains(&out.stdout, "drill PASS");
    assert_eq!(fingerprint(&db.url), before, "the primary was not written");
    assert_eq!(db.psql(&drill_dbs), "0", "the drill database was dropped");

    let report: Value = serde_json::from_str(
        t.read("backups/drills/drills.jsonl")
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(report["result"], "PASS");
    assert_eq!(report["environment"], "local");
    assert_eq!(report["dropped"], true);
    assert!(report["backup_age_seconds"].as_f64().unwrap() >= 0.0);
    assert!(report["restore_seconds"].as_f64().unwrap() > 0.0);
    let checks: Vec<(&str, bool)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("same tables", true),
            ("row count of User", true),
            ("row count of Order", true),
            ("migration status", true),
            ("verify: SELECT count(*) = 300 FROM \"User\"", true),
        ]
    );
    let markdown = t.read("backups/drills/drills.md");
    insta::with_settings!({ filters => vec![
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[date]"),
        (r"\d{8}_\d{6}", "[ts]"),
        (r"\d{8}T\d{9}Z-[0-9a-f]{4}", "[run]"),
        (r"\d+\.\ds", "[s]"),
        (r"dbflow_t_bk_drill_\d+_\d+", "[db]"),
    ]}, {
        insta::assert_snapshot!("drill_report", markdown);
    });
    let metrics = t.read("metrics/dbflow.prom");
    assert_contains(&metrics, "dbflow_drill_last_success{project=");
    assert_contains(&metrics, "env=\"local\"} 1\n");
    assert_contains(&metrics, "dbflow_drill_last_rto_seconds{");
    assert_contains(&metrics, "dbflow_backup_last_size_bytes{");

    // A failing check fails the drill (exit 1, FAIL report), and it still cleans up.
    t.write(
        "Workflowfile.yaml",
        &workflowfile(&drill_config.replace("= 300", "= 0")),
    );
    let out = t.run_with(["drill", "--backup", "latest"]);
    out.assert_code(1);
    assert_contains(&out.stderr, "drill FAILED: 1 check(s) failed: verify:");
    assert_eq!(db.psql(&drill_dbs), "0");
    let last: Value = serde_json::from_str(
        t.read("backups/drills/drills.jsonl")
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["result"], "FAIL");
    assert_eq!(last["fresh_backup"], false);
    let metrics = t.read("metrics/dbflow.prom");
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("dbflow_drill_failures_total{"))
        .unwrap();
    assert!(failures.ends_with("env=\"local\"} 1"), "{failures}");
    assert_eq!(fingerprint(&db.url), before);
}

// ---------------------------------------------------------------------------------------
// freshness gate, reuse, zero-config, SQLite

#[test]
fn max_backup_age_blocks_deploys_without_a_fresh_verified_backup() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:data/app.db
            metrics:
              textfile: metrics/dbflow.prom
            workflows:
              release:
                allow_unguarded_deploy: 'these tests are about backups'
                max_backup_age: 1h
                steps:
                  - deploy: {}
              careful:
                allow_unguarded_deploy: 'these tests are about backups'
                steps:
                  - deploy: { max_backup_age: 10m }
              routine:
                allow_unguarded_deploy: 'these tests are about backups'
                steps:
                  - backup: { reuse_if_younger_than: 30m }
                  - deploy: {}
            ",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE items (id INTEGER PRIMARY KEY);\n",
        );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    let out = t.run_with(["run", "release"]);
    out.assert_code(3);
    assert_contains(
        &out.stderr,
        "no verified backup of `local` exists and max_backup_age is 1h",
    );
    let dry = t.run_with(["run", "release", "--dry-run"]);
    assert_contains(
        &dry.stdout,
        "Refuses (exit 3) unless the newest verified backup of `local` is younger than 1h",
    );

    let id = create(&t, &[]);
    // Make it two days old.
    let path = format!("backups/local/{id}/manifest.json");
    let mut manifest: Value = serde_json::from_str(&t.read(&path)).unwrap();
    let old = chrono::Utc::now() - chrono::Duration::hours(49);
    manifest["created_at"] = old.to_rfc3339().into();
    t.write(&path, &serde_json::to_string(&manifest).unwrap());
    for workflow in ["release", "careful"] {
        let out = t.run_with(["run", workflow]);
        out.assert_code(3);
        assert_contains(
            &out.stderr,
            &format!("the newest verified backup of `local` is `{id}`, taken 2d1h ago"),
        );
    }

    // A workflow that backs up first passes; a second run reuses that backup.
    t.run_with(["run", "routine"]).assert_code(0);
    let out = t.run_with(["run", "routine", "--json"]);
    out.assert_code(0);
    assert_eq!(json(&out)["outputs"]["backup-1"]["reused"], true);
    assert_eq!(backup_dirs(&t, "local").len(), 2, "one old, one reused");
    t.run_with(["run", "release"]).assert_code(0);
    let metrics = t.read("metrics/dbflow.prom");
    let sample = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
            .to_string()
    };
    // Blocked deploys never started; the three that ran succeeded; one backup was taken.
    assert_eq!(sample("dbflow_deploy_successes_total"), "3");
    assert_eq!(sample("dbflow_deploy_failures_total"), "0");
    assert_eq!(sample("dbflow_deploy_last_success"), "1");
    assert_eq!(sample("dbflow_backup_successes_total"), "2");
}

fn sqlite_rows(path: &Path, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    })
}

#[test]
fn sqlite_backup_restore_and_drill() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:data/app.db
            sandbox_pattern: \"^app$\"
            drill:
              key_tables: [items]
              verify: [\"SELECT count(*) = 3 FROM items\"]
            ",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO items (name) VALUES ('a'), ('Zoë'), (NULL);\n",
        );
    t.run_with(["migrate", "deploy"]).assert_code(0);
    // What a dbflow killed mid-backup leaves behind: listed as unfinished, swept by the
    // next backup once its process is gone.
    t.write(
        "backups/local/.partial-20240101_000000-4194999/database.sqlite",
        "half",
    );
    let list = t.run_with(["backup", "list"]);
    assert_contains(&list.stdout, "no backups of `local`");
    assert_contains(
        &list.stderr,
        ".partial-20240101_000000-4194999 is an unfinished backup",
    );
    let id = create(&t, &["--label", "first"]);
    assert_eq!(backup_dirs(&t, "local"), std::slice::from_ref(&id));
    let manifest: Value =
        serde_json::from_str(&t.read(&format!("backups/local/{id}/manifest.json"))).unwrap();
    assert_eq!(manifest["format"], "sqlite");
    assert_eq!(manifest["row_counts"]["items"], 3);
    assert_eq!(
        manifest["verification"]["detail"],
        "sha256 recorded while writing; PRAGMA integrity_check: ok"
    );
    t.run_with(["backup", "verify", &id]).assert_code(0);

    let out = t.run_with(["restore", &id, "--into", "copy"]);
    out.assert_code(0);
    let copy = t.path().join("data/copy.db");
    assert_eq!(
        sqlite_rows(
            &copy,
            "SELECT coalesce(name, 'NULL') FROM items ORDER BY id"
        ),
        ["a", "Zoë", "NULL"]
    );

    let out = t.run_with(["drill"]);
    out.assert_code(0);
    assert_contains(&out.stdout, "drill PASS");
    let leftovers: Vec<String> = std::fs::read_dir(t.path().join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("drill"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // In place, with the word typed: the file is replaced by the backup, the old one
    // kept aside. (Only because the sandbox pattern says `app` is disposable: the guard
    // refuses it otherwise.)
    sqlite_rows(
        &t.path().join("data/app.db"),
        "DELETE FROM items RETURNING 'x'",
    );
    t.run_with(["restore", &id, "--in-place", "--confirm", "RESTORE"])
        .assert_code(0);
    assert_eq!(
        sqlite_rows(
            &t.path().join("data/app.db"),
            "SELECT CAST(count(*) AS TEXT) FROM items"
        ),
        ["3"]
    );
    let aside: Vec<String> = std::fs::read_dir(t.path().join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("app_pre_restore_") && n.ends_with(".db"))
        .collect();
    assert_eq!(aside.len(), 1, "the replaced file is kept aside");
    assert_eq!(
        sqlite_rows(
            &t.path().join("data").join(&aside[0]),
            "SELECT CAST(count(*) AS TEXT) FROM items"
        ),
        ["0"]
    );
}

#[test]
fn pg_zero_config_backup_restore_and_drill_with_only_database_url() {
    let Some(db) = pg::database("bk_zero") else {
        return;
    };
    db.psql("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'n' || g FROM generate_series(1, 50) g");
    let t = Test::new()
        .env("DATABASE_URL", &db.url)
        .env("PATH", &pg_path());
    let mut dropper = Dropper::new(&db);
    let id = create(&t, &[]);
    assert!(t.exists(&format!("backups/development/{id}/manifest.json")));
    t.run_with(["backup", "list"]).assert_code(0);
    t.run_with(["backup", "verify", &id]).assert_code(0);
    let into = dropper.add(&format!("{}_copy", db.name));
    t.run_with(["restore", &id, "--into", &into]).assert_code(0);
    assert_eq!(
        psql(&url_for(&db, &into), "SELECT count(*) FROM notes"),
        "50"
    );
    let out = t.run_with(["drill"]);
    out.assert_code(0);
    assert!(t.exists("backups/drills/drills.md"));
    // Without an id and without a terminal, restore says which backups there are.
    let out = t.run_with(["restore"]);
    out.assert_code(2);
    assert_contains(&out.stderr, "name the backup to restore");
    assert_contains(&out.stderr, &id);
}

#[test]
fn backup_settings_are_validated_with_suggestions() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:data/app.db
        backups:
          retention: { daly: 7 }
        ",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert_contains(&out.stderr, "unknown field `daly`");
    assert_contains(&out.stderr, "did you mean `daily`?");

    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:data/app.db
            backups: { stop_writes: stop-ap, jobs: 0 }
        tasks:
          stop-app:
            script: 'true'
        workflows:
          release:
            allow_unguarded_deploy: 'these tests are about backups'
            max_backup_age: soon
            steps:
              - deploy: {}
        ",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert_contains(&out.stderr, "backups hook names unknown task `stop-ap`");
    assert_contains(&out.stderr, "did you mean `stop-app`?");
    assert_contains(&out.stderr, "`jobs` must be at least 1");
    assert_contains(&out.stderr, "invalid max_backup_age `soon`");

    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:data/app.db
        workflows:
          release:
            allow_unguarded_deploy: 'these tests are about backups'
            steps:
              - backup: { label: x, labl: x }
          nightly:
            steps:
              - backup: { reuse_if_younger_than: soonish }
        ",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert_contains(
        &out.stderr,
        "unknown parameter `labl` for step kind `backup`",
    );
    assert_contains(&out.stderr, "did you mean `label`?");
    assert_contains(&out.stderr, "invalid reuse_if_younger_than `soonish`");
}

#[test]
fn dry_run_documents_backup_restore_and_drill_steps() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          production:
            url: postgres://app:${DB_PASSWORD:-hunter22}@db.internal:5432/shop
        backups:
          format: directory
          jobs: 4
        workflows:
          release:
            allow_unguarded_deploy: 'these tests are about backups'
            max_backup_age: 6h
            steps:
              - backup: { label: pre-deploy, reuse_if_younger_than: 30m }
              - deploy: {}
          recover:
            steps:
              - rollback: { before: 20240103000000_bad }
              - restore: { backup: latest, into: shop_copy }
              - drill: {}
              - prune: { dry_run: true }
        ",
    );
    let release = t.run_with(["run", "release", "--dry-run", "--env", "production"]);
    release.assert_code(0);
    let recover = t.run_with(["run", "recover", "--dry-run", "--env", "production"]);
    recover.assert_code(0);
    assert!(!release.stdout.contains("hunter22"));
    insta::assert_snapshot!("dry_run_release", release.stdout);
    insta::assert_snapshot!("dry_run_recover", recover.stdout);
}
