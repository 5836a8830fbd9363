//! Procedures the runbooks require, enforced on real PostgreSQL: `require_applied_on`
//! (production only gets what ran on staging, same checksum), `deploy_from: ci` (and its
//! override, never enough for protected unless the environment says why), drills of
//! protected environments only onto another server, the sanctioned production seed, and
//! incident-restore stopping writes before it restores.

use crate::support::cli::{events, Test};
use crate::support::pg::{self, TestDb};

const OVERRIDE: &str = "DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI";

const INIT: &str =
    "CREATE TABLE \"User\" (\"id\" INTEGER NOT NULL PRIMARY KEY, \"email\" TEXT NOT NULL);\n";
const NICK: &str = "ALTER TABLE \"User\" ADD COLUMN \"nickname\" TEXT;\n";

/// A project with `staging` and protected `production` on two databases, and a
/// `release` workflow whose deploy step runs the same rules as `migrate deploy`.
fn two_environments(staging: &TestDb, production: &TestDb, production_keys: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:
  staging:
    url: ${{STAGING_URL}}
    protection: shared
  production:
    url: ${{PRODUCTION_URL}}
    protection: protected
{production_keys}
migrations:
  dir: prisma/migrations
workflows:
  release:
    allow_unguarded_deploy: test databases, recreated per test
    steps:
      - deploy: {{}}
"
            ),
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("STAGING_URL", &staging.url)
        .env("PRODUCTION_URL", &production.url)
        .env_remove("GITHUB_ACTIONS")
        .env_remove(OVERRIDE)
}

/// The same project folder run with `extra` variables set.
fn with_vars(t: &Test, staging: &TestDb, production: &TestDb, extra: &[(&str, &str)]) -> Test {
    let mut run = Test::in_dir(t.path())
        .env("STAGING_URL", &staging.url)
        .env("PRODUCTION_URL", &production.url)
        .env_remove("GITHUB_ACTIONS")
        .env_remove(OVERRIDE);
    for (key, value) in extra {
        run = run.env(key, value);
    }
    run
}

fn applied(db: &TestDb) -> String {
    db.psql("SELECT coalesce(string_agg(migration_name, ',' ORDER BY migration_name), '') FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL")
}

fn history_exists(db: &TestDb) -> bool {
    db.psql("SELECT to_regclass('_prisma_migrations') IS NOT NULL") == "t"
}

#[test]
fn require_applied_on_refuses_what_staging_has_not_run_then_allows() {
    let (Some(staging), Some(production)) = (
        pg::database("promo_require_staging"),
        pg::database("promo_require_production"),
    ) else {
        return;
    };
    let t = two_environments(&staging, &production, "    require_applied_on: staging");

    let out = t.run_with(["migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("blocked by the guard: deploys to `production` need every pending migration applied on `staging` first (require_applied_on at Workflowfile.yaml:8:25): 20240101000000_init (not applied there); deploy them to `staging` first"),
        "{}",
        out.stderr
    );
    assert!(!history_exists(&production), "nothing ran on production");
    let out = t.run_with(["check", "deploy", "--env", "production"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("  note: a deploy to `production` also needs every pending migration applied on `staging` first"),
        "{}",
        out.stdout
    );

    t.run_with(["migrate", "deploy", "--env", "staging"])
        .assert_code(0);
    let out = t.run_with(["migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("✔ require_applied_on: staging: all 1 pending migration(s) are applied there with the same checksum"),
        "{}",
        out.stdout
    );
    assert_eq!(applied(&production), "20240101000000_init");

    // A migration that ran on staging and was edited afterwards is not what staging
    // tested: refused, through the deploy step as well.
    t.write("prisma/migrations/20240102000000_nick/migration.sql", NICK);
    t.run_with(["migrate", "deploy", "--env", "staging"])
        .assert_code(0);
    t.write(
        "prisma/migrations/20240102000000_nick/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"nickname\" VARCHAR(40);\n",
    );
    let out = t.run_with(["run", "release", "--env", "production", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains(
            "20240102000000_nick (applied there with another checksum: the file changed since)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(applied(&production), "20240101000000_init");
    let journal = out.journals().pop().unwrap();
    let check = events(&journal, "promotion_check");
    assert_eq!(check[0]["required_on"], "staging", "{journal:?}");

    // Staging unreachable: nobody can tell, so the deploy is refused (fail closed).
    t.write("prisma/migrations/20240102000000_nick/migration.sql", NICK);
    let unreachable = with_vars(
        &t,
        &staging,
        &production,
        &[("STAGING_URL", "postgres://postgres@127.0.0.1:1/nowhere")],
    );
    let out = unreachable.run_with(["migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("cannot read the migration history of `staging` (cannot connect to"),
        "{}",
        out.stderr
    );
    assert_eq!(applied(&production), "20240101000000_init");
}

#[test]
fn deploy_from_ci_refuses_outside_ci_and_the_override_never_unlocks_protected_alone() {
    let (Some(staging), Some(production)) = (
        pg::database("promo_ci_staging"),
        pg::database("promo_ci_production"),
    ) else {
        return;
    };
    let keys = "    deploy_from: ci\n    ci_variable: GITHUB_ACTIONS";
    let t = two_environments(&staging, &production, keys);
    // Staging too: `deploy_from: ci` is per environment.
    t.write(
        "Workflowfile.yaml",
        &t.read("Workflowfile.yaml").replace(
            "    protection: shared\n",
            "    protection: shared\n    deploy_from: ci\n",
        ),
    );

    let out = t.run_with(["migrate", "deploy", "--env", "staging"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("blocked by the guard: deploys to `staging` run from CI only (deploy_from: ci at Workflowfile.yaml:5:18) and CI is not `true`: run it from the pipeline, or set DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1 for one run (printed and journaled)"),
        "{}",
        out.stderr
    );
    assert!(!history_exists(&staging));

    // The override unlocks a shared environment, loudly and journaled.
    let over = with_vars(&t, &staging, &production, &[(OVERRIDE, "1")]);
    let out = over.run_with(["migrate", "deploy", "--env", "staging"]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("!!! OVERRIDE DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1 lifts rule `deploy-from-ci` for `deploy` on `staging` (shared): CI is not `true`; this is recorded in the journal"),
        "{}",
        out.stderr
    );
    assert_eq!(applied(&staging), "20240101000000_init");
    let journal = out.journals().pop().unwrap();
    let checked = over.run_with(["check", "deploy", "--env", "staging"]);
    checked.assert_code(0);
    assert!(
        checked
            .stderr
            .contains("!!! OVERRIDE DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1")
            && !checked.stderr.contains("is not a dbflow override"),
        "{}",
        checked.stderr
    );
    let used = events(&journal, "guard_override");
    assert_eq!(used[0]["rule"], "deploy-from-ci", "{journal:?}");
    assert_eq!(used[0]["variable"], "DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI");

    // …but not a protected one, from the command or the deploy step.
    for args in [
        ["migrate", "deploy", "--env", "production", "--yes"].as_slice(),
        ["run", "release", "--env", "production", "--yes"].as_slice(),
    ] {
        let out = over.run_with(args);
        out.assert_code(3);
        assert!(
            out.stderr.contains("!!! IGNORED DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1: `production` is protected and does not allow deploys outside CI (no `allow_deploy_outside_ci`)"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("CI is not `true` and GITHUB_ACTIONS is not set: run it from the pipeline; `production` is protected, so DBFLOW_ALLOW_DEPLOY_OUTSIDE_CI=1 unlocks it only if the environment says why with `allow_deploy_outside_ci: \"<reason>\"`"),
            "{}",
            out.stderr
        );
        let journal = out.journals().pop().unwrap();
        assert_eq!(
            events(&journal, "guard_override_refused").len(),
            1,
            "{journal:?}"
        );
    }
    assert!(!history_exists(&production));
    // `dbflow check` answers as the deploy does.
    let out = t.run_with(["check", "deploy", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stdout
            .contains("BLOCKED: `deploy` on `production` (protected, database ")
            && out
                .stdout
                .contains("  ✘ rule deploy-from-ci: deploys to `production` run from CI only"),
        "{}",
        out.stdout
    );

    // In CI (the configured variable) it deploys.
    let ci = with_vars(&t, &staging, &production, &[("GITHUB_ACTIONS", "true")]);
    ci.run_with(["check", "deploy", "--env", "production"])
        .assert_code(0);
    ci.run_with(["run", "release", "--env", "production", "--yes"])
        .assert_code(0);
    assert_eq!(applied(&production), "20240101000000_init");

    // An environment that says why lets the override through, loudly.
    t.write("prisma/migrations/20240102000000_nick/migration.sql", NICK);
    t.write(
        "Workflowfile.yaml",
        &t.read("Workflowfile.yaml").replace(
            "    ci_variable: GITHUB_ACTIONS",
            "    ci_variable: GITHUB_ACTIONS\n    allow_deploy_outside_ci: break-glass when the pipeline is down",
        ),
    );
    let out = over.run_with(["migrate", "deploy", "--env", "production", "--yes"]);
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("; the environment allows it: break-glass when the pipeline is down"),
        "{}",
        out.stderr
    );
    assert_eq!(
        applied(&production),
        "20240101000000_init,20240102000000_nick"
    );
}

#[test]
fn incident_restore_runs_the_stop_writes_task_before_it_restores() {
    let Some(db) = pg::database("promo_incident_stop_writes") else {
        return;
    };
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              production:
                url: ${DATABASE_URL}
                protection: protected
            backups:
              stop_writes: maintenance-on
            tasks:
              maintenance-on:
                script: echo \"writes stopped for $DBFLOW_ENV\" > maintenance.marker
            include: [workflows/*.yaml]
            ",
        )
        .file(
            "workflows/runbooks.yaml",
            include_str!("../workflows/runbooks.yaml"),
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &crate::backup::pg_path());
    t.run_with(["migrate", "deploy", "--env", "production", "--yes"])
        .assert_code(0);
    db.psql("INSERT INTO \"User\" SELECT g, 'u' || g FROM generate_series(1, 20) g");
    t.run_with(["backup", "create", "--env", "production"])
        .assert_code(0);
    t.write("prisma/migrations/20240102000000_nick/migration.sql", NICK);
    t.run_with(["migrate", "deploy", "--env", "production", "--yes"])
        .assert_code(0);

    let t = t.env("BAD_MIGRATION", "20240102000000_nick");
    let out = t.run_with(["run", "incident-restore", "--env", "production", "--yes"]);
    out.assert_code(0);
    assert_eq!(
        t.read("maintenance.marker"),
        "writes stopped for production\n"
    );
    let journal = out.journals().pop().unwrap();
    let position = |event: &str| {
        journal
            .iter()
            .position(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {journal:?}"))
    };
    let task_ran = journal
        .iter()
        .position(|e| e["event"] == "task" && e["task"] == "maintenance-on")
        .expect("the stop_writes task ran");
    assert!(
        task_ran < position("stop_writes") && position("stop_writes") < position("restore_start"),
        "{journal:?}"
    );
    let restored = events(&journal, "restore_end")[0]["database"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(restored, db.name, "restored into a new database");
    db.psql(&format!(
        "DROP DATABASE IF EXISTS \"{restored}\" WITH (FORCE)"
    ));
}

#[test]
fn a_protected_drill_never_restores_onto_the_primarys_server() {
    let Some(db) = pg::database("promo_drill_protected") else {
        return;
    };
    let workflowfile = |top: &str, env: &str| {
        format!(
            "environments:
  production:
    url: ${{DATABASE_URL}}
    protection: protected
{env}
drill:
  key_tables: [User]
{top}
migrations:
  dir: prisma/migrations
"
        )
    };
    let t = Test::new()
        .file("Workflowfile.yaml", &workflowfile("", ""))
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &crate::backup::pg_path());
    t.run_with(["migrate", "deploy", "--env", "production", "--yes"])
        .assert_code(0);
    db.psql("INSERT INTO \"User\" SELECT g, 'u' || g FROM generate_series(1, 50) g");
    let drill_dbs = "SELECT count(*) FROM pg_database WHERE datname LIKE '%restore\\_drill\\_%'";

    // No drill server: refused before anything is dumped, saying how.
    let out = t.run_with(["drill", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("`production` is protected: a restore drill never restores onto the primary's server. Set `drill.server_url` to another PostgreSQL server"),
        "{}",
        out.stderr
    );
    assert!(!t.exists("backups/production"), "no backup was taken");
    assert_eq!(db.psql(drill_dbs), "0");

    // A drill server that is the primary's own server (another database on it): the
    // server says who it is, so the spelling of the URL does not matter. Refused.
    t.write(
        "Workflowfile.yaml",
        &workflowfile(&format!("  server_url: {}", db.admin_url()), ""),
    );
    let out = t.run_with(["drill", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("reaches the primary's own server (system identifier"),
        "{}",
        out.stderr
    );
    assert_eq!(db.psql(drill_dbs), "0");

    // Another server (the environment's own setting wins over the project's): restored
    // there, validated, kept on request, never on the primary's server.
    let Some(other) = pg::second_server() else {
        return;
    };
    t.write(
        "Workflowfile.yaml",
        &workflowfile(
            &format!("  server_url: {}", db.admin_url()),
            "    drill:\n      server_url: ${DRILL_SERVER_URL}",
        ),
    );
    let t = t.env("DRILL_SERVER_URL", &other);
    let out = t.run_with(["drill", "--env", "production"]);
    out.assert_code(0);
    assert!(out.stdout.contains("drill PASS"), "{}", out.stdout);
    assert_eq!(
        crate::backup::psql(&other, drill_dbs),
        "0",
        "the drill database was dropped on the drill server"
    );
    let out = t.run_with(["drill", "--env", "production", "--keep"]);
    out.assert_code(0);
    assert!(out.stdout.contains("drill PASS"), "{}", out.stdout);
    assert_eq!(
        db.psql(drill_dbs),
        "0",
        "nothing restored on the primary's server"
    );
    let kept = events(&out.journals().pop().unwrap(), "restore_end")[0]["database"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        crate::backup::psql(
            &format!("{}/{kept}", other.rsplit_once('/').unwrap().0),
            "SELECT count(*) FROM \"User\""
        ),
        "50",
        "the copy is on the other server"
    );
    let report = t.read("backups/drills/drills.jsonl");
    assert!(
        report.contains(&format!("\"server\":\"{other}\"")),
        "{report}"
    );
    crate::backup::psql(&other, &format!("DROP DATABASE \"{kept}\""));
}

/// A project whose seed task the guard classifies as `prisma db seed`. There is no Node
/// or Prisma here, so the task's own script defines `prisma` as a shell function that
/// seeds with the real psql: the classification, the guard and the rows are real.
fn seed_project(db: &TestDb) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              production:
                url: ${DATABASE_URL}
                protection: protected
            migrations:
              dir: prisma/migrations
            tasks:
              seed-minimal:
                script: |
                  prisma() { psql \"$DATABASE_URL\" -X -q -v ON_ERROR_STOP=1 -c \"INSERT INTO \\\"User\\\" VALUES (1, 'admin@example.com')\"; }
                  prisma db seed
            workflows:
              seed-unsanctioned:
                steps:
                  - backup: { label: pre-seed }
                  - task: seed-minimal
              seed-without-backup:
                allow_seed: minimal production seed from the runbook (the admin user)
                steps:
                  - task: seed-minimal
              seed-production:
                allow_seed: minimal production seed from the runbook (the admin user)
                steps:
                  - backup: { label: pre-seed }
                  - task: seed-minimal
            ",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file("prisma/migrations/20240101000000_init/migration.sql", INIT)
        .env("DATABASE_URL", &db.url)
        .env("PATH", &crate::backup::pg_path())
}

#[test]
fn a_production_seed_runs_only_through_a_sanctioning_workflow_after_a_backup_and_the_typed_word() {
    let Some(db) = pg::database("promo_sanctioned_seed") else {
        return;
    };
    let t = seed_project(&db);
    t.run_with(["migrate", "deploy", "--env", "production", "--yes"])
        .assert_code(0);
    let users = || db.psql("SELECT count(*) FROM \"User\"");

    // As today: a workflow that does not declare allow_seed cannot seed production.
    let out = t.run_with(["run", "seed-unsanctioned", "--env", "production", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("`seed` is forbidden on `production` (protected)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("a workflow may sanction seeding `production` with `allow_seed: \"<reason>\"`, after a verified backup in the same run and the word SEED typed"),
        "{}",
        out.stderr
    );
    assert_eq!(users(), "0");

    // Declared, but no backup in the run.
    let out = t.run_with([
        "run",
        "seed-without-backup",
        "--env",
        "production",
        "--confirm",
        "SEED",
    ]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("workflow `seed-without-backup` may seed protected `production` (allow_seed) only after a verified backup taken earlier in the same run, and no backup was taken earlier in this run"),
        "{}",
        out.stderr
    );
    assert_eq!(users(), "0");

    // A backup, but only --yes: the word must be typed.
    let out = t.run_with(["run", "seed-production", "--env", "production", "--yes"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("needs the word SEED typed and nobody can be asked (no terminal); --yes does not answer it: pass --confirm SEED"),
        "{}",
        out.stderr
    );
    let out = t.run_with([
        "run",
        "seed-production",
        "--env",
        "production",
        "--confirm",
        "seed",
    ]);
    out.assert_code(3);
    assert_eq!(users(), "0");

    let out = t.run_with([
        "run",
        "seed-production",
        "--env",
        "production",
        "--confirm",
        "SEED",
    ]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("!!! SANCTIONED seed of protected `production` by workflow `seed-production` (minimal production seed from the runbook (the admin user)); backup "),
        "{}",
        out.stderr
    );
    assert_eq!(users(), "1");
    let journal = out.journals().pop().unwrap();
    let sanctioned = events(&journal, "seed_sanctioned");
    assert_eq!(sanctioned.len(), 1, "{journal:?}");
    assert_eq!(sanctioned[0]["outcome"], "confirmed");
    let backup_id = sanctioned[0]["backup_id"].as_str().unwrap();
    let backup_step = events(&journal, "step_end")
        .into_iter()
        .find(|e| e["kind"] == "backup")
        .unwrap();
    assert_eq!(backup_step["outputs"]["backup_id"], backup_id);
    assert!(events(&journal, "guard_blocked").is_empty(), "{journal:?}");
}
