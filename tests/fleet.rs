//! Fleets on real PostgreSQL: 50 tenant databases deployed in waves, a data-dependent
//! failure on two of them (rolled back, the others deployed), a run killed half-way and
//! resumed, four shards at once.

use crate::support::cli::{Output, Test};
use crate::support::pg::{self, TestDb};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A password the test URLs carry (the test server trusts local connections, so it is
/// never checked) that must never be printed or journaled.
const SECRET: &str = "Fl33t-S3cret-pw";

const M1: &str = "CREATE TABLE account (id int PRIMARY KEY, email text NOT NULL);\n";
const M2: &str = "ALTER TABLE account ADD COLUMN plan text NOT NULL DEFAULT 'free';\n";
/// Fails where two accounts share an email: data-dependent.
const M3: &str = "DO $$ BEGIN
  IF EXISTS (SELECT email FROM account GROUP BY email HAVING count(*) > 1) THEN
    RAISE EXCEPTION 'duplicate emails: clean them up first';
  END IF;
END $$;
UPDATE account SET plan = 'pro' WHERE id = 1;
";

struct Fleet {
    test: Test,
    /// By target name, in listing order.
    tenants: Vec<(String, TestDb)>,
}

fn with_secret(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{SECRET}@"),
        1,
    )
}

/// `n` tenant databases (two canaries first), listed by a command, and the first
/// migration in the folder.
fn fleet(test_name: &str, n: usize, extra: &str) -> Option<Fleet> {
    let mut tenants = Vec::new();
    for i in 0..n {
        let name = if i < 2 {
            format!("canary-{}", i + 1)
        } else {
            format!("tenant_{i:02}")
        };
        tenants.push((name, pg::database(test_name)?));
    }
    let listing: String = tenants
        .iter()
        .map(|(name, db)| format!("{name} {}\n", with_secret(&db.url)))
        .collect();
    let test = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:
  tenants:
    protection: shared
    fleet:
      command: cat targets.txt
      concurrency: 4
      waves: [{{ targets: [canary-*] }}, {{ percent: 10 }}, {{ rest: true }}]
{extra}
migrations:
  dir: prisma/migrations
workflows:
  migrate:
    description: apply pending migrations
    steps:
      - deploy: {{}}
  deploy:
    on_failure: rollback
    steps:
      - guard: {{}}
      - status: {{ fail_on: [failed, modified, missing] }}
      - backup: {{ label: pre-deploy }}
      - deploy: {{}}
      - verify: {{ checks: [{{ name: clean, status_clean: true }}] }}
  rollback:
    steps:
      - rollback: {{}}
"
            ),
        )
        .file("targets.txt", &listing)
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file(
            "prisma/migrations/20250101000000_accounts/migration.sql",
            M1,
        )
        .env("PATH", &crate::backup::pg_path());
    Some(Fleet { test, tenants })
}

impl Fleet {
    fn run(&self, args: &[&str]) -> Output {
        let out = self.test.run_with(args);
        assert!(
            !out.all().contains(SECRET),
            "the password leaked:\n{}",
            out.all()
        );
        out
    }

    fn add(&self, name: &str, sql: &str) {
        self.test
            .write(&format!("prisma/migrations/{name}/migration.sql"), sql);
    }

    /// How many times each migration is recorded as applied (finished, not rolled back).
    fn applied(&self, db: &TestDb) -> BTreeMap<String, usize> {
        if db.psql("SELECT to_regclass('_prisma_migrations') IS NULL") == "t" {
            return BTreeMap::new();
        }
        let rows = db.psql(
            "SELECT migration_name, count(*) FROM _prisma_migrations \
             WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL GROUP BY 1",
        );
        rows.lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(m, c)| (m.to_string(), c.parse().unwrap()))
            .collect()
    }

    fn fleet_journal(&self, run_id: &str) -> Vec<Value> {
        let dir = self.test.path().join(".dbflow/fleets").join(run_id);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(
                !text.contains(SECRET),
                "the password leaked into the fleet journal"
            );
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
        out
    }
}

fn run_id_of(out: &Output) -> String {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Fleet run "))
        .unwrap_or_else(|| panic!("no fleet run line in\n{}\n{}", out.stdout, out.stderr));
    line["Fleet run ".len()..]
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn fifty_tenants_deploy_in_three_waves() {
    let Some(f) = fleet("fleet_waves", 50, "") else {
        return;
    };
    let listed = f.run(&["targets", "--env", "tenants"]);
    listed.assert_code(0);
    assert!(
        listed.stdout.contains("50 targets of `tenants`"),
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("canary-1"), "{}", listed.stdout);

    let out = f.run(&["run", "migrate", "--env", "tenants"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("50 targets in 3 waves"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("50 targets: 50 succeeded, 0 failed"),
        "{}",
        out.stdout
    );
    for (name, db) in &f.tenants {
        assert_eq!(
            f.applied(db).get("20250101000000_accounts"),
            Some(&1),
            "{name}"
        );
    }
    let status = f.run(&["migrate", "status", "--env", "tenants"]);
    status.assert_code(0);
    assert!(
        status
            .stdout
            .contains("20250101000000_accounts  50 targets"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Every target is clean."),
        "{}",
        status.stdout
    );
    // Waves in order: canaries, then 10 % (5), then the rest; a wave starts only after
    // every target of the one before ended.
    let journal = f.fleet_journal(&run_id_of(&out));
    let waves: Vec<usize> = journal
        .iter()
        .filter(|e| e["event"] == "wave_start")
        .map(|e| e["targets"].as_array().unwrap().len())
        .collect();
    assert_eq!(waves, vec![2, 5, 43]);
    let first: Vec<&str> = journal.iter().find(|e| e["event"] == "wave_start").unwrap()["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(first, vec!["canary-1", "canary-2"]);
    let mut wave_of_event = Vec::new();
    for e in &journal {
        if e["event"] == "target_start" || e["event"] == "target_end" {
            wave_of_event.push(e["wave"].as_u64().unwrap());
        }
    }
    assert!(
        wave_of_event.windows(2).all(|w| w[0] <= w[1]),
        "waves overlap: {wave_of_event:?}"
    );
    // Each target is an environment instance with its own run journal.
    let journals = out.journals();
    assert_eq!(journals.len(), 50);
    assert!(journals.iter().any(|j| j[0]["env"] == "tenants/tenant_17"));
}

#[test]
fn a_data_dependent_failure_rolls_back_two_tenants_and_deploys_the_others() {
    let Some(f) = fleet("fleet_fail", 50, "      max_failures: 5") else {
        return;
    };
    f.run(&["run", "migrate", "--env", "tenants"])
        .assert_code(0);
    for (i, (_, db)) in f.tenants.iter().enumerate() {
        // Two tenants hold the same email twice.
        let dup = if i == 17 || i == 33 { 1 } else { 2 };
        db.psql(&format!(
            "INSERT INTO account VALUES (1, 'a@example.com'), (2, 'b{dup}@example.com'), (3, 'b1@example.com')"
        ));
    }
    f.add("20250102000000_plans", M2);
    f.add("20250103000000_unique_email", M3);
    let out = f.run(&["run", "deploy", "--env", "tenants"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("50 targets: 48 succeeded, 2 failed"),
        "{}",
        out.stderr
    );
    for bad in ["tenant_17", "tenant_33"] {
        let row = out
            .stderr
            .lines()
            .find(|l| l.starts_with(bad) && l.contains("failed"))
            .unwrap_or_else(|| panic!("no summary row for {bad}:\n{}", out.stderr));
        assert!(
            row.contains(" 1 "),
            "one migration committed before the failure: {row}"
        );
    }
    for (i, (name, db)) in f.tenants.iter().enumerate() {
        let applied = f.applied(db);
        if i == 17 || i == 33 {
            assert_eq!(applied.get("20250103000000_unique_email"), None, "{name}");
            // Rolled back: the pre-deploy backup restored into a new database.
            let restored = db.psql(&format!(
                "SELECT count(*) FROM pg_database WHERE datname LIKE '{}_restore_%'",
                db.name
            ));
            assert_eq!(restored, "1", "{name} was not restored into a new database");
        } else {
            assert_eq!(
                applied.get("20250103000000_unique_email"),
                Some(&1),
                "{name}"
            );
        }
    }
    // The version matrix: targets per head, the two behind named; exit 4.
    let status = f.run(&["migrate", "status", "--env", "tenants"]);
    status.assert_code(4);
    for needle in [
        "20250103000000_unique_email  48 targets",
        "20250102000000_plans         2 targets",
        "Not clean (2):",
        "tenant_17  1 pending",
        "tenant_33  1 pending",
    ] {
        assert!(
            status.stdout.contains(needle),
            "missing `{needle}` in\n{}",
            status.stdout
        );
    }
    // Backups of each target live under <env>/<target>/.
    assert!(f.test.path().join("backups/tenants/tenant_17").is_dir());
    // The summary again, from the fleet journal.
    let again = f.run(&["fleet", "summary", &run_id_from_stderr(&out)]);
    again.assert_code(1);
    assert!(
        again.stderr.contains("48 succeeded, 2 failed"),
        "{}",
        again.stderr
    );
}

fn run_id_from_stderr(out: &Output) -> String {
    run_id_of(out)
}

#[test]
fn a_killed_fleet_run_resumes_and_applies_each_migration_once() {
    let Some(f) = fleet("fleet_resume", 50, "") else {
        return;
    };
    // The 25th target kills dbflow (SIGKILL: no clean stop) right after its deploy,
    // once; the workers running beside it die mid-flight.
    f.test.write(
        "Workflowfile.yaml",
        &f.test.read("Workflowfile.yaml").replace(
            "      - deploy: {}\n",
            "      - deploy: {}\n      - shell: '[ \"$DBFLOW_ENV\" != tenants/tenant_25 ] || [ \"$DBFLOW_TARGET\" != tenant_25 ] || [ -f killed ] || { touch killed; kill -9 $PPID; }'\n",
        ),
    );
    f.add("20250102000000_plans", M2);
    let out = f.run(&["run", "migrate", "--env", "tenants", "--run-id", "rel-1"]);
    assert_eq!(out.code, -1, "killed\n{}\n{}", out.stdout, out.stderr);
    let done_before = f
        .tenants
        .iter()
        .filter(|(_, db)| f.applied(db).len() == 2)
        .count();
    assert!(
        done_before > 0 && done_before < 50,
        "half-way: {done_before}"
    );

    let resumed = f.run(&["run", "migrate", "--env", "tenants", "--resume", "rel-1"]);
    resumed.assert_code(0);
    assert!(
        resumed.stdout.contains("done in an earlier attempt"),
        "{}",
        resumed.stdout
    );
    for (name, db) in &f.tenants {
        let applied = f.applied(db);
        assert_eq!(applied.len(), 2, "{name}: {applied:?}");
        assert!(applied.values().all(|c| *c == 1), "{name}: {applied:?}");
    }
    let summary = f.run(&["fleet", "summary", "rel-1"]);
    summary.assert_code(0);
    assert!(
        summary.stdout.contains("50 targets: 50 succeeded"),
        "{}",
        summary.stdout
    );
}

#[test]
fn four_shards_at_once_deploy_every_tenant_exactly_once() {
    let Some(f) = fleet("fleet_shards", 50, "") else {
        return;
    };
    // A backup repository every runner shares: each shard uploads its journal part.
    f.test.write(
        "Workflowfile.yaml",
        &format!(
            "{}backups:\n  repository: shared-repo\n",
            f.test.read("Workflowfile.yaml")
        ),
    );
    let children: Vec<_> = (0..4)
        .map(|i| {
            f.test.spawn_with([
                "run",
                "migrate",
                "--env",
                "tenants",
                "--shard",
                &format!("{i}/4"),
                "--run-id",
                "rel-2",
            ])
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (name, db) in &f.tenants {
        assert_eq!(
            f.applied(db).get("20250101000000_accounts"),
            Some(&1),
            "{name}"
        );
    }
    let journal = f.fleet_journal("rel-2");
    let mut ran: Vec<&str> = journal
        .iter()
        .filter(|e| e["event"] == "target_end")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    ran.sort();
    let mut all: Vec<&str> = f.tenants.iter().map(|(n, _)| n.as_str()).collect();
    all.sort();
    assert_eq!(ran, all, "every tenant exactly once over the four shards");
    let summary = f.run(&["fleet", "summary", "rel-2"]);
    summary.assert_code(0);
    assert!(
        summary
            .stdout
            .contains("shard-0-of-4, shard-1-of-4, shard-2-of-4, shard-3-of-4"),
        "{}",
        summary.stdout
    );
    assert!(
        summary.stdout.contains("50 targets: 50 succeeded"),
        "{}",
        summary.stdout
    );
}

#[test]
fn a_single_database_command_on_a_fleet_needs_one_target() {
    let Some(f) = fleet("fleet_single", 3, "") else {
        return;
    };
    // The targets come from a catalog database this time.
    let Some(catalog) = pg::database("fleet_catalog") else {
        return;
    };
    catalog.psql("CREATE TABLE tenants (name text, url text)");
    for (name, db) in &f.tenants {
        catalog.psql(&format!(
            "INSERT INTO tenants VALUES ('{name}', '{}')",
            with_secret(&db.url)
        ));
    }
    f.test.write(
        "Workflowfile.yaml",
        &f.test.read("Workflowfile.yaml").replace(
            "      command: cat targets.txt\n",
            &format!(
                "      query: SELECT name, url FROM tenants ORDER BY name\n      catalog_url: {}\n",
                catalog.url
            ),
        ),
    );
    let listed = f.run(&["targets", "--env", "tenants", "--json"]);
    listed.assert_code(0);
    let doc: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(doc["targets"].as_array().unwrap().len(), 3);
    assert_eq!(doc["targets"][0]["env"], "tenants/canary-1");
    let out = f.run(&["migrate", "deploy", "--env", "tenants"]);
    out.assert_code(2);
    assert!(out.stderr.contains("is a fleet"), "{}", out.stderr);
    let out = f.run(&["migrate", "deploy", "--env", "tenants", "--target", "*"]);
    out.assert_code(2);
    assert!(out.stderr.contains("matches 3 targets"), "{}", out.stderr);
    f.run(&[
        "migrate", "deploy", "--env", "tenants", "--target", "canary-2",
    ])
    .assert_code(0);
    assert_eq!(f.applied(&f.tenants[1].1).len(), 1);
    assert_eq!(f.applied(&f.tenants[0].1).len(), 0);
    f.run(&["migrate", "deploy", "--env", "tenants/canary-1"])
        .assert_code(0);
    assert_eq!(f.applied(&f.tenants[0].1).len(), 1);
    let out = f.run(&["migrate", "deploy", "--env", "tenants/canary-9"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("did you mean `canary-1`?") || out.stderr.contains("has no target"),
        "{}",
        out.stderr
    );
}

#[test]
fn fleet_keys_are_validated_with_their_place() {
    let test = Test::new().file(
        "Workflowfile.yaml",
        "environments:
  tenants:
    fleet:
      targets: [a, b]
      query: select 1
  eu:
    fleet:
      targets: [a]
      url: postgres://h/tenant
      waves: [{ rest: true }, { percent: 10 }]
      max_failures: lots
",
    );
    let out = test.run_with(["validate"]);
    out.assert_code(2);
    for needle in [
        "Workflowfile.yaml:4:",
        "needs exactly one of `targets`, `query`, `command` (found targets, query)",
        "has no `{name}`",
        "must be the last wave",
        "`max_failures` is a count",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing `{needle}` in\n{}",
            out.stderr
        );
    }
    assert!(!Path::new("x").exists());
}

/// Holds a SHARE lock on `account` in `db` until dropped (a psql session in a
/// transaction): reads go on, the migration's ALTER TABLE waits.
struct Holder(std::process::Child);

impl Holder {
    fn lock(db: &TestDb) -> Holder {
        use std::io::Write;
        let psql = pg::bin_dir().unwrap().join("psql");
        let mut child = std::process::Command::new(psql)
            .args(["-X", "-q", &db.url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN; LOCK TABLE account IN SHARE MODE; SELECT 1;").unwrap();
        stdin.flush().unwrap();
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Polls (no fixed sleep) until `check` holds, for at most a minute.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed().as_secs() < 60,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_lets_running_targets_finish_their_migration_and_starts_no_other() {
    let Some(f) = fleet("fleet_sigint", 6, "") else {
        return;
    };
    // No lock_timeout on a sandbox: the blocked migrations wait for the test's locks.
    f.test.write(
        "Workflowfile.yaml",
        &f.test
            .read("Workflowfile.yaml")
            .replace("protection: shared", "protection: sandbox"),
    );
    f.run(&["run", "migrate", "--env", "tenants"])
        .assert_code(0);
    f.add("20250102000000_plans", M2);
    f.add(
        "20250103000000_more",
        "ALTER TABLE account ADD COLUMN note text;\n",
    );
    let holders: Vec<Holder> = f.tenants[..2]
        .iter()
        .map(|(_, db)| Holder::lock(db))
        .collect();
    until("the locks", || {
        f.tenants[0]
            .1
            .psql("SELECT count(*) FROM pg_locks WHERE relation = 'account'::regclass AND granted")
            == "1"
    });
    let mut child = f
        .test
        .spawn_with(["run", "migrate", "--env", "tenants", "--run-id", "rel-3"]);
    // Both canaries (the first wave) are blocked inside their first migration.
    until("both canaries to wait for their lock", || {
        f.tenants.iter().take(2).all(|(_, db)| {
            db.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") == "1"
        })
    });
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    // Once dbflow says it took the signal, the locks go and the running migrations
    // finish.
    use std::io::{BufRead, Read};
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    while !stderr.contains("starting nothing new") {
        assert!(
            err.read_line(&mut stderr).unwrap() > 0,
            "no soft stop: {stderr}"
        );
    }
    drop(holders);
    err.read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("starting nothing new"), "{stderr}");
    for (i, (name, db)) in f.tenants.iter().enumerate() {
        let applied = f.applied(db);
        if i < 2 {
            // The running migration finished; the next one never started.
            assert!(
                applied.contains_key("20250102000000_plans"),
                "{name}: {applied:?}\n{stderr}"
            );
            assert!(
                !applied.contains_key("20250103000000_more"),
                "{name}: {applied:?}"
            );
        } else {
            assert_eq!(
                applied.len(),
                1,
                "{name} must not have started: {applied:?}"
            );
        }
    }
    assert!(stderr.contains("--resume rel-3"), "{stderr}");
    let resumed = f.run(&["run", "migrate", "--env", "tenants", "--resume", "rel-3"]);
    resumed.assert_code(0);
    for (name, db) in &f.tenants {
        let applied = f.applied(db);
        assert_eq!(applied.len(), 3, "{name}: {applied:?}");
        assert!(applied.values().all(|c| *c == 1), "{name}: {applied:?}");
    }
}

#[test]
fn the_first_failure_stops_new_starts_by_default_and_target_narrows_a_run() {
    let Some(f) = fleet("fleet_budget", 6, "      concurrency: 1") else {
        return;
    };
    f.test.write(
        "Workflowfile.yaml",
        &f.test
            .read("Workflowfile.yaml")
            .replace("      concurrency: 4\n", ""),
    );
    // Only the two canaries get the new migration through --target.
    let out = f.run(&["run", "migrate", "--env", "tenants", "--target", "canary-*"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("2 targets: 2 succeeded"),
        "{}",
        out.stdout
    );
    assert_eq!(f.applied(&f.tenants[2].1).len(), 0);
    // A migration that fails on tenant_02 (data-dependent) with the default budget (0).
    f.tenants[2]
        .1
        .psql("CREATE TABLE account (id int PRIMARY KEY, email text NOT NULL)");
    let out = f.run(&["run", "migrate", "--env", "tenants", "--target", "tenant_*"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("more than 0 targets failed (max_failures)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("4 targets: 0 succeeded, 1 failed, 0 interrupted, 3 not started"),
        "{}",
        out.stderr
    );
    for (name, db) in &f.tenants[3..] {
        assert_eq!(f.applied(db).len(), 0, "{name} must not have started");
    }
    let typo = f.run(&[
        "run",
        "migrate",
        "--env",
        "tenants",
        "--target",
        "tenant-02",
    ]);
    typo.assert_code(2);
    assert!(typo.stderr.contains("matches no target"), "{}", typo.stderr);
}
