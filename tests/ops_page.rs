//! The operations page (`dbflow::docs::ops`), built from a history recorded for real:
//! backups, drills and workflow runs against the test PostgreSQL over four simulated
//! days, then the page asserted by content (rows, PASS/FAIL, one chart point per event).
//!
//! The days are simulated by moving the timestamps of the records each day's commands
//! wrote (journal `ts`, drill report `date`, manifest `created_at`, and the run and
//! backup ids, which start with their time) back by whole days after the fact: the
//! records themselves are real, and dbflow's clock is left alone.

use crate::support::cli::{journal_paths, Test};
use crate::support::pg::{self, TestDb};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const INIT: &str = "CREATE TABLE \"User\" (\"id\" SERIAL PRIMARY KEY, \"email\" TEXT NOT NULL);\n";

/// A drill FAILs when this table exists in the backup it restores.
const MARKER: &str = "broken_marker";

fn workflowfile() -> String {
    format!(
        "project: acme-ops
environments:
  local:
    url: ${{DATABASE_URL}}
    protection: sandbox
  staging:
    url: ${{DATABASE_URL}}
    protection: shared
migrations:
  dir: prisma/migrations
drill:
  key_tables: [User]
  verify:
    - SELECT NOT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = '{MARKER}')
workflows:
  release:
    steps:
      - shell: echo releasing
  smoke:
    steps:
      - shell: echo smoke test failed >&2; exit 1
"
    )
}

/// A history recorded over four days, and what was recorded where.
pub(crate) struct Recorded {
    pub test: Test,
    pub _db: TestDb,
    /// The journals, in the order they were written.
    pub journals: Vec<PathBuf>,
}

/// The same folder, run as `user` (the journals' "who").
fn as_user(t: &Test, db: &TestDb, user: &str) -> Test {
    Test::in_dir(t.path())
        .env("DATABASE_URL", &db.url)
        .env("PATH", &crate::backup::pg_path())
        .env("DBFLOW_ACTOR", user)
}

fn files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn shift(value: &mut Value, key: &str, by: Duration) {
    if let Some(ts) = value[key].as_str() {
        let moved = DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .with_timezone(&Utc)
            - by;
        value[key] = Value::from(moved.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
}

/// Everything under `root` recorded since `before` (journals, drill lines, manifests),
/// dated `days` earlier.
struct Snapshot {
    journals: BTreeSet<PathBuf>,
    drill_lines: usize,
    manifests: BTreeSet<PathBuf>,
}

fn snapshot(root: &Path) -> Snapshot {
    let drills = root.join("backups/drills/drills.jsonl");
    Snapshot {
        journals: journal_paths(root).into_iter().collect(),
        drill_lines: std::fs::read_to_string(drills)
            .map(|t| t.lines().count())
            .unwrap_or(0),
        manifests: ["local", "staging"]
            .iter()
            .flat_map(|env| files(&root.join("backups").join(env)))
            .map(|dir| dir.join("manifest.json"))
            .filter(|m| m.exists())
            .collect(),
    }
}

/// `id` (a run id `YYYYMMDDTHHMMSSmmmZ-xxxx` or a backup id `YYYYMMDD_HHMMSS[_label]`)
/// with the time it starts with moved back `by`.
fn shift_id(id: &str, by: Duration) -> String {
    for (format, len) in [("%Y%m%dT%H%M%S%3fZ", 19), ("%Y%m%d_%H%M%S", 15)] {
        if let Some(at) = id
            .get(..len)
            .and_then(|head| chrono::NaiveDateTime::parse_from_str(head, format).ok())
        {
            return format!("{}{}", (at - by).format(format), &id[len..]);
        }
    }
    panic!("not a timestamped id: {id}");
}

/// Dates everything recorded since `before` (journals, drill reports, backups) `days`
/// earlier: their timestamps, and the ids that start with one (journal files and backup
/// folders are renamed, and every record naming them follows).
fn move_back(root: &Path, before: &Snapshot, days: i64) {
    let by = Duration::days(days);
    let now = snapshot(root);
    let id_of = |path: &Path| path.file_stem().unwrap().to_string_lossy().to_string();
    let journals: Vec<&PathBuf> = now.journals.difference(&before.journals).collect();
    let backups: Vec<PathBuf> = now
        .manifests
        .difference(&before.manifests)
        .map(|m| m.parent().unwrap().to_path_buf())
        .collect();
    let mut renamed: Vec<(String, String)> = journals
        .iter()
        .map(|p| id_of(p))
        .chain(
            backups
                .iter()
                .map(|d| d.file_name().unwrap().to_string_lossy().to_string()),
        )
        .map(|id| (id.clone(), shift_id(&id, by)))
        .collect();
    renamed.sort_by_key(|(old, _)| std::cmp::Reverse(old.len()));
    let rename = |text: String| {
        renamed
            .iter()
            .fold(text, |text, (old, new)| text.replace(old, new))
    };
    for path in journals {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                shift(&mut v, "ts", by);
                rename(v.to_string())
            })
            .collect();
        std::fs::remove_file(path).unwrap();
        let moved = path.with_file_name(format!("{}.jsonl", shift_id(&id_of(path), by)));
        std::fs::write(moved, lines.join("\n") + "\n").unwrap();
    }
    let drills = root.join("backups/drills/drills.jsonl");
    if let Ok(text) = std::fs::read_to_string(&drills) {
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i < before.drill_lines {
                    return l.to_string();
                }
                let mut v: Value = serde_json::from_str(l).unwrap();
                shift(&mut v, "date", by);
                rename(v.to_string())
            })
            .collect();
        std::fs::write(&drills, lines.join("\n") + "\n").unwrap();
    }
    for dir in backups {
        let path = dir.join("manifest.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        shift(&mut v, "created_at", by);
        shift(&mut v, "server_time", by);
        if let Some(verification) = v.get_mut("verification") {
            shift(verification, "checked_at", by);
        }
        let text = rename(serde_json::to_string_pretty(&v).unwrap());
        std::fs::write(&path, text).unwrap();
        let id = dir.file_name().unwrap().to_string_lossy().to_string();
        std::fs::rename(&dir, dir.with_file_name(shift_id(&id, by))).unwrap();
    }
}

/// Records four days of operations (three days ago → today) in a fresh project, or
/// `None` when no PostgreSQL is available (outside CI):
///
/// | day | who   | what                                                       |
/// |-----|-------|------------------------------------------------------------|
/// | -3  | alice | backup create (local); run release (local); drill local PASS |
/// | -2  | bob   | backup create (staging); drill staging PASS                 |
/// | -1  | bob   | drill local FAIL (marker table); run smoke (staging) fails  |
/// |  0  | alice | drill local PASS; backup create (staging)                   |
pub(crate) fn recorded_history(name: &str) -> Option<Recorded> {
    let db = pg::database(name)?;
    let t = Test::new()
        .file("Workflowfile.yaml", &workflowfile())
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT);
    let root = t.path().to_path_buf();
    let mut journals = Vec::new();
    let day = |days_ago: i64, journals: &mut Vec<PathBuf>, work: &dyn Fn()| {
        let before = snapshot(&root);
        work();
        move_back(&root, &before, days_ago);
        let after = snapshot(&root);
        journals.extend(after.journals.difference(&before.journals).cloned());
    };
    let alice = as_user(&t, &db, "alice");
    let bob = as_user(&t, &db, "bob");
    day(3, &mut journals, &|| {
        alice
            .run_with(["migrate", "deploy", "--env", "local"])
            .assert_code(0);
        db.psql("INSERT INTO \"User\" (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g");
        alice
            .run_with(["backup", "create", "--env", "local"])
            .assert_code(0);
        alice
            .run_with(["run", "release", "--env", "local"])
            .assert_code(0);
        alice.run_with(["drill", "--env", "local"]).assert_code(0);
    });
    day(2, &mut journals, &|| {
        bob.run_with(["backup", "create", "--env", "staging"])
            .assert_code(0);
        bob.run_with(["drill", "--env", "staging"]).assert_code(0);
    });
    day(1, &mut journals, &|| {
        db.psql(&format!("CREATE TABLE {MARKER} (id int)"));
        bob.run_with(["drill", "--env", "local"]).assert_code(1);
        bob.run_with(["run", "smoke", "--env", "staging"])
            .assert_code(1);
    });
    day(0, &mut journals, &|| {
        db.psql(&format!("DROP TABLE {MARKER}"));
        alice.run_with(["drill", "--env", "local"]).assert_code(0);
        alice
            .run_with(["backup", "create", "--env", "staging"])
            .assert_code(0);
    });
    Some(Recorded {
        test: t,
        _db: db,
        journals,
    })
}

/// The page of the project in `dir`, through the library (as `dbflow docs --site` does).
pub(crate) fn operations_page(dir: &Path) -> String {
    let project = dbflow::config::load(Some(&dir.join("Workflowfile.yaml")), dir)
        .unwrap_or_else(|d| panic!("loading the project: {d:?}"));
    dbflow::docs::ops::render_operations(&project)
}

fn count(page: &str, needle: &str) -> usize {
    page.matches(needle).count()
}

/// The `<tbody>` rows of the table with `class`.
fn rows<'a>(page: &'a str, class: &str) -> Vec<&'a str> {
    let start = page
        .find(&format!("<table class=\"{class}\">"))
        .unwrap_or_else(|| panic!("no table {class} in\n{page}"));
    let table = &page[start..start + page[start..].find("</table>").unwrap()];
    table.split("<tr").skip(2).collect()
}

#[test]
fn the_drill_reports_path_is_the_one_drills_write() {
    assert_eq!(
        dbflow::docs::ops::history::DRILL_REPORTS,
        format!("{}/drills.jsonl", dbflow::steps::drill::REPORTS_DIR)
    );
}

#[test]
fn operations_page_from_four_days_of_recorded_history() {
    let Some(rec) = recorded_history("ops_page") else {
        return;
    };
    let dir = rec.test.path();
    let page = operations_page(dir);
    std::fs::write(dir.join("operations.html"), &page).unwrap();

    // Drills: four, one FAIL, on four different days, one point each in every chart.
    let drills = rows(&page, "drills");
    assert_eq!(drills.len(), 4, "{page}");
    let results: Vec<&str> = drills
        .iter()
        .map(|r| if r.contains(">PASS<") { "PASS" } else { "FAIL" })
        .collect();
    // Newest first.
    assert_eq!(results, ["PASS", "FAIL", "PASS", "PASS"]);
    assert!(
        drills[1].contains("failed checks:") && drills[1].contains("verify: SELECT NOT EXISTS"),
        "the FAIL row says why: {}",
        drills[1]
    );
    assert!(drills[1].contains(">local<") && drills[2].contains(">staging<"));
    let days: BTreeSet<String> = drills
        .iter()
        .map(|r| r[r.find("<td>").unwrap() + 4..][..10].to_string())
        .collect();
    assert_eq!(days.len(), 4, "four different days: {days:?}");
    assert!(page.contains("3 PASS</span> <span class=\"badge fail\">1 FAIL</span> of 4 drills"));
    assert_eq!(count(&page, r#"data-series="drill-result""#), 4);
    assert_eq!(
        count(&page, r#"class="point s0 pass" data-series="drill-result""#),
        3
    );
    assert_eq!(
        count(&page, r#"class="point s0 fail" data-series="drill-result""#),
        1
    );
    assert_eq!(count(&page, r#"data-series="rpo""#), 4);
    assert_eq!(count(&page, r#"data-series="rto""#), 4);

    // Backups: local has the one taken by hand and the three the drills took; staging the
    // two taken by hand and the one its drill took. One point per backup in each chart.
    let manifests = |env: &str| {
        std::fs::read_dir(dir.join("backups").join(env))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().join("manifest.json").exists())
            .count()
    };
    assert_eq!((manifests("local"), manifests("staging")), (4, 3));
    assert_eq!(count(&page, r#"data-series="backup-count:local""#), 4);
    assert_eq!(count(&page, r#"data-series="backup-size:local""#), 4);
    assert_eq!(count(&page, r#"data-series="backup-count:staging""#), 3);
    assert_eq!(count(&page, r#"data-series="backup-size:staging""#), 3);
    let envs = rows(&page, "backups");
    assert!(
        envs[0].contains("<td>local</td><td><code>backups/local</code></td><td>4</td>"),
        "{}",
        envs[0]
    );
    assert!(
        envs[1].contains("<td>staging</td><td><code>backups/staging</code></td><td>3</td>"),
        "{}",
        envs[1]
    );
    assert!(
        envs[0].contains("4 of 4"),
        "every backup verified: {}",
        envs[0]
    );

    // Runs: one row per journal, newest first, with workflow, outcome, duration and who.
    let runs = rows(&page, "runs");
    assert_eq!(runs.len(), rec.journals.len(), "{page}");
    let release = runs
        .iter()
        .find(|r| r.contains("<td>release</td>"))
        .unwrap();
    assert!(
        release.contains("<td>local</td>")
            && release.contains(">succeeded<")
            && release.contains("<td>alice</td>"),
        "{release}"
    );
    let smoke = runs.iter().find(|r| r.contains("<td>smoke</td>")).unwrap();
    assert!(
        smoke.contains("<td>staging</td>")
            && smoke.contains(">failed<")
            && smoke.contains("<td>bob</td>"),
        "{smoke}"
    );
    assert!(
        smoke.contains("class=\"why\">at "),
        "the failed step is named: {smoke}"
    );
    let failed_drill = runs
        .iter()
        .filter(|r| r.contains("<td>drill") && r.contains(">failed<"))
        .count();
    assert_eq!(failed_drill, 1, "{runs:?}");
    let duration = regex::Regex::new(r"<td>\d+(\.\d+)?(ms|s)</td>").unwrap();
    assert!(
        runs.iter().all(|r| duration.is_match(r)),
        "every run has a duration"
    );
    let started: Vec<&str> = runs
        .iter()
        .map(|r| &r[r.find("<td>").unwrap() + 4..][..16])
        .collect();
    let mut sorted = started.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(started, sorted, "newest first");
    assert!(
        !page.contains("Records not shown"),
        "everything was readable"
    );

    // Readable from file:// with no script and no network: nothing to fetch.
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains(" src="));
    assert_eq!(
        page.matches("http").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "the only URLs are SVG namespaces"
    );

    // The example project's operations page (docs/site/operations.html) is this history
    // under the example's Workflowfile (it has the same `local` and `staging`):
    // `DBFLOW_SITE_OPERATIONS=docs/site/operations.html cargo test … four_days` writes it.
    let example = example_operations_page(dir);
    assert!(example.contains("Operations · acme-shop"));
    assert_eq!(count(&example, r#"data-series="drill-result""#), 4);
    if let Some(out) = std::env::var_os("DBFLOW_SITE_OPERATIONS") {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join(out);
        std::fs::write(&out, example).unwrap();
        eprintln!("wrote {}", out.display());
    }
}

/// The example project (the repository's Workflowfile) over the history recorded in
/// `dir`.
fn example_operations_page(dir: &Path) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut project = dbflow::config::load(Some(&repo.join("Workflowfile.yaml")), repo)
        .unwrap_or_else(|d| panic!("loading the example project: {d:?}"));
    project.root = dir.to_path_buf();
    dbflow::docs::ops::render_operations(&project)
}

#[test]
fn an_empty_history_says_how_to_record_one() {
    let t = Test::new().file("Workflowfile.yaml", &workflowfile());
    let page = operations_page(t.path());
    assert!(page.contains("No restore drill recorded yet"));
    assert!(page.contains("No backup in a catalog yet"));
    assert!(page.contains("No run journaled yet"));
    assert_eq!(count(&page, "<circle"), 0);
}

#[test]
fn backups_in_object_storage_are_named_not_listed() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:
           production:
             url: postgres://localhost/shop
             protection: protected
             backups:
               repository: s3://acme-backups/db/prod
         ",
    );
    let page = operations_page(t.path());
    let envs = rows(&page, "backups");
    assert_eq!(envs.len(), 1);
    assert!(
        envs[0].contains("<code>s3://acme-backups/db/prod</code>")
            && envs[0].contains("<code>dbflow backup list --env production</code> lists them"),
        "{}",
        envs[0]
    );
}

#[test]
fn unreadable_records_are_named_not_dropped_silently() {
    let t = Test::new()
        .file("Workflowfile.yaml", &workflowfile())
        .file("backups/drills/drills.jsonl", "{not json\n")
        .file(
            ".dbflow/runs/20260101T000000000Z-0000.jsonl",
            "{\"event\":\"step_start\"}\n",
        );
    let page = operations_page(t.path());
    assert!(page.contains("Records not shown"));
    assert!(
        page.contains("backups/drills/drills.jsonl:1: not a drill report"),
        "{page}"
    );
    assert!(
        page.contains(".dbflow/runs/20260101T000000000Z-0000.jsonl: no run_start event"),
        "{page}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A password in a recorded URL or error message never reaches the page, whatever
    /// wrote the record (dbflow redacts as it records; the page does not rely on it).
    #[test]
    fn secrets_in_records_never_reach_the_page(
        secret in "[A-Za-z0-9][A-Za-z0-9!$%*+~_-]{9,20}",
        user in "[a-z]{3,8}",
    ) {
        let url = format!("postgres://{user}:{secret}@db.internal:5432/shop");
        let drill = serde_json::json!({
            "date": "2026-11-20T10:00:00Z", "environment": "local", "result": "FAIL",
            "run_id": "r1", "backup_id": null, "fresh_backup": true,
            "backup_age_seconds": 1.0, "restore_seconds": 2.0, "duration_seconds": 3.0,
            "server": url, "checks": [],
            "error": format!("pg_restore: connection to {url} failed: password={secret} rejected"),
        });
        let start = serde_json::json!({
            "ts": "2026-11-20T10:00:00.000Z", "event": "run_start", "run_id": "r1",
            "target": format!("deploy {url}"), "kind": "workflow", "env": "local",
            "url": url, "user": user,
        });
        let end = serde_json::json!({
            "ts": "2026-11-20T10:00:01.000Z", "event": "run_end", "result": "failed",
            "failed_step": "deploy", "duration_ms": 1000,
            "error": format!("could not connect to {url}; PGPASSWORD={secret}"),
        });
        let t = Test::new()
            .file("Workflowfile.yaml", &workflowfile())
            .file("backups/drills/drills.jsonl", &format!("{drill}\n"))
            .file(".dbflow/runs/20261120T100000000Z-0001.jsonl", &format!("{start}\n{end}\n"));
        let page = operations_page(t.path());
        prop_assert!(page.contains("could not connect to"), "the error is shown");
        prop_assert!(!page.contains(&secret), "secret leaked");
        let escaped = page.replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">");
        prop_assert!(!escaped.contains(&secret), "secret leaked (HTML-escaped)");
    }
}

/// A year of history (10 environments × 100 backups, 365 drills, 5,000 journals): the
/// page lists the newest 50 runs without reading the other journals, and draws one
/// point per backup and per drill.
#[test]
fn a_long_history_stays_one_bounded_page() {
    let mut workflowfile = String::from("project: big\nenvironments:\n");
    for e in 0..10 {
        workflowfile.push_str(&format!("  env{e}:\n    url: postgres://localhost/db{e}\n"));
    }
    let t = Test::new().file("Workflowfile.yaml", &workflowfile);
    let start = DateTime::parse_from_rfc3339("2025-01-01T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let iso = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for e in 0..10 {
        for b in 0..100 {
            let at = start + Duration::hours(87 * b + e);
            let id = format!("{}_b{b}", at.format("%Y%m%d_%H%M%S"));
            let manifest = serde_json::json!({
                "format_version": 1, "id": id, "environment": format!("env{e}"),
                "engine": "postgresql", "database": "db", "url": "postgres://localhost/db",
                "created_at": iso(at), "duration_ms": 10, "format": "custom",
                "dump": "dump.pgcustom", "size": 1000 + b * 10, "sha256": "00",
                "tool_version": null, "server_version": null, "migration_head": null,
                "run_id": null, "label": null, "tables": [],
                "verification": { "state": "verified", "checked_at": iso(at), "detail": "" },
            });
            t.write(
                &format!("backups/env{e}/{id}/manifest.json"),
                &manifest.to_string(),
            );
        }
    }
    let drills: String = (0..365)
        .map(|d| {
            serde_json::json!({
                "date": iso(start + Duration::days(d)), "environment": "env0",
                "result": if d % 30 == 0 { "FAIL" } else { "PASS" }, "run_id": format!("d{d}"),
                "backup_id": "x", "backup_age_seconds": 3600.0, "restore_seconds": 12.5,
                "checks": [],
            })
            .to_string()
                + "\n"
        })
        .collect();
    t.write("backups/drills/drills.jsonl", &drills);
    for r in 0..5000 {
        let at = start + Duration::minutes(97 * r);
        let id = format!("{}-{:04x}", at.format("%Y%m%dT%H%M%S%3fZ"), r);
        let lines = format!(
            "{}\n{}\n",
            serde_json::json!({"ts": iso(at), "event": "run_start", "run_id": id, "target": "deploy", "kind": "workflow", "env": "env1", "user": "ci"}),
            serde_json::json!({"ts": iso(at), "event": "run_end", "result": "succeeded", "duration_ms": 1200}),
        );
        t.write(&format!(".dbflow/runs/{id}.jsonl"), &lines);
    }
    // Baseline in the same run: only reading what the page must read (the ten catalogs'
    // manifests and the drill reports), through the same library calls.
    let project = dbflow::config::load(Some(&t.path().join("Workflowfile.yaml")), t.path())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let began = std::time::Instant::now();
    let scanned: usize = project
        .environments
        .keys()
        .map(|env| {
            dbflow::db::backup::Catalog::new(&project, env)
                .scan()
                .entries
                .len()
        })
        .sum();
    let _ = std::fs::read_to_string(t.path().join("backups/drills/drills.jsonl")).unwrap();
    let baseline = began.elapsed();
    assert_eq!(scanned, 1000);
    let began = std::time::Instant::now();
    let page = operations_page(t.path());
    let took = began.elapsed();
    eprintln!(
        "operations page over a year of history: {took:?} ({:.1}× reading its catalogs and drill reports, {baseline:?}), {} KiB",
        took.as_secs_f64() / baseline.as_secs_f64(),
        page.len() / 1024
    );
    assert_eq!(rows(&page, "runs").len(), 50);
    assert!(page.contains("The newest 50 of 5000 journals"), "{page}");
    assert_eq!(rows(&page, "drills").len(), 50);
    assert!(page.contains("The newest 50 of 365 drills"));
    assert_eq!(count(&page, r#"data-series="drill-result""#), 365);
    assert_eq!(count(&page, r#"class="point s0 fail""#), 13);
    for e in 0..10 {
        assert_eq!(
            count(&page, &format!(r#"data-series="backup-size:env{e}""#)),
            100
        );
    }
    // Generous for a debug build on a shared machine; it catches a quadratic reader.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// The page's markup for a small fixed history (the stylesheet left out), for review.
#[test]
fn operations_page_snapshot() {
    let drill = |date: &str, result: &str, rpo: f64, rto: f64, error: Value| {
        serde_json::json!({
            "date": date, "environment": "local", "result": result, "run_id": "r",
            "backup_id": "20261101_100000", "backup_age_seconds": rpo, "restore_seconds": rto,
            "checks": [{ "name": "row count of User", "passed": result == "PASS" }], "error": error,
        })
        .to_string()
    };
    let manifest = |id: &str, at: &str, size: u64| {
        serde_json::json!({
            "format_version": 1, "id": id, "environment": "local", "engine": "postgresql",
            "database": "shop", "url": "postgres://localhost/shop", "created_at": at,
            "duration_ms": 10, "format": "custom", "dump": "dump.pgcustom", "size": size,
            "sha256": "00", "tool_version": null, "server_version": null,
            "migration_head": null, "run_id": null, "label": null, "tables": [],
            "verification": { "state": "verified", "checked_at": at, "detail": "" },
        })
        .to_string()
    };
    let run = |id: &str, at: &str, target: &str, result: &str, error: Value| {
        format!(
            "{}\n{}\n",
            serde_json::json!({"ts": at, "event": "run_start", "run_id": id, "target": target, "kind": "workflow", "env": "local", "user": "alice"}),
            serde_json::json!({"ts": at, "event": "run_end", "result": result, "duration_ms": 1500, "failed_step": if error.is_null() { Value::Null } else { Value::from("deploy") }, "error": error}),
        )
    };
    let t = Test::new()
        .file("Workflowfile.yaml", &workflowfile())
        .file(
            "backups/drills/drills.jsonl",
            &format!(
                "{}\n{}\n",
                drill("2026-11-01T10:00:00Z", "PASS", 60.0, 4.5, Value::Null),
                drill(
                    "2026-11-02T10:00:00Z",
                    "FAIL",
                    86_400.0,
                    7.25,
                    Value::from("restore of postgres://app:hunter22@db/shop failed")
                ),
            ),
        )
        .file(
            "backups/local/20261101_100000/manifest.json",
            &manifest("20261101_100000", "2026-11-01T10:00:00Z", 2048),
        )
        .file(
            "backups/local/20261102_100000/manifest.json",
            &manifest("20261102_100000", "2026-11-02T10:00:00Z", 4096),
        )
        .file(
            ".dbflow/runs/20261101T100000000Z-0001.jsonl",
            &run(
                "20261101T100000000Z-0001",
                "2026-11-01T10:00:00.000Z",
                "release",
                "succeeded",
                Value::Null,
            ),
        )
        .file(
            ".dbflow/runs/20261102T100000000Z-0002.jsonl",
            &run(
                "20261102T100000000Z-0002",
                "2026-11-02T10:00:00.000Z",
                "deploy",
                "failed",
                Value::from("migration 2 failed: <syntax error> & more"),
            ),
        );
    let page = operations_page(t.path());
    assert!(!page.contains("hunter22"));
    let style = page.find("<style>").unwrap();
    let end = page.find("</style>").unwrap();
    let markup =
        format!("{}<style>…</style>{}", &page[..style], &page[end + 8..]).replace("><", ">\n<");
    insta::assert_snapshot!("operations_page", markup);
}
