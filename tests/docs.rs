//! `dbflow docs`: snapshots of every shipped template for a three-environment project,
//! the `--check` drift gate, valid compose files, no secrets, template errors.

use crate::support::cli::Test;
use std::path::Path;

const SECRETS: &[&str] = &[
    "LocalPassw0rd",
    "StagingPassw0rd",
    "ProdDirectPassw0rd",
    "ProdPoolPassw0rd",
    "tok_live_ShouldNeverAppear",
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture() -> Test {
    let test = Test::new();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs"),
        test.path(),
    );
    // Set, and never read by docs: rendering keeps `${PRODUCTION_DATABASE_URL}` a reference.
    test.env(
        "PRODUCTION_DATABASE_URL",
        "postgres://app:ProdPoolPassw0rd@prod-pool.internal:6432/bookshop?pgbouncer=true",
    )
}

fn generated(test: &Test) -> Vec<(String, String)> {
    let dir = test.path().join("docs/generated");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_template_renders_for_three_environments() {
    let test = fixture();
    test.run_with(["docs"]).assert_code(0);
    let files = generated(&test);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker-compose.local.yml",
            "docker-compose.production.yml",
            "docker-compose.staging.yml",
            "index.md",
            "pgbouncer.production.ini",
            "restore-drill-local.md",
            "restore-drill-production.md",
            "restore-drill-staging.md",
            "runbook-local.md",
            "runbook-production.md",
            "runbook-staging.md",
        ]
    );
    for (name, content) in &files {
        insta::assert_snapshot!(format!("docs__{name}"), content);
    }
}

#[test]
fn no_generated_file_contains_a_secret() {
    let test = fixture();
    let out = test.run_with(["docs"]);
    out.assert_code(0);
    let files = generated(&test);
    for (name, content) in &files {
        for secret in SECRETS {
            assert!(!content.contains(secret), "{secret} leaked into {name}");
        }
    }
    for secret in SECRETS {
        assert!(!out.all().contains(secret));
    }
    let runbook = &files
        .iter()
        .find(|(n, _)| n == "runbook-staging.md")
        .unwrap()
        .1;
    assert!(
        runbook.contains("postgres://app:****@staging-db.internal:5432/bookshop"),
        "{runbook}"
    );
}

#[test]
fn compose_overrides_are_valid_compose_yaml() {
    let test = fixture();
    test.run_with(["docs"]).assert_code(0);
    for (name, content) in generated(&test)
        .iter()
        .filter(|(n, _)| n.starts_with("docker-compose."))
    {
        let doc: serde_json::Value =
            serde_saphyr::from_str(content).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"));
        let services = doc["services"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no services"));
        let app = &services["app"];
        let command = app["command"].as_array().unwrap();
        // deploy on sandbox and shared environments; on protected ones the app starts
        // only after `migrate status` is clean (tests/cli.rs runs these commands).
        let script = command[2].as_str().unwrap();
        assert!(
            script.starts_with("dbflow migrate deploy --env ")
                || script.starts_with("dbflow migrate status --env "),
            "{name}: {script}"
        );
        assert!(
            app["environment"]["DATABASE_URL"].as_str().unwrap().len() > 3,
            "{name}"
        );
        // postgres environments get the database service with the backups volume
        let postgres = &services["postgres"];
        let volumes: Vec<&str> = postgres["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            volumes.iter().any(|v| v.ends_with(":/backups")),
            "{name}: {volumes:?}"
        );
        assert!(doc["volumes"]["pgdata"].is_object(), "{name}");
        assert_eq!(
            postgres["environment"]["POSTGRES_PASSWORD"], "${POSTGRES_PASSWORD}",
            "{name}"
        );
    }
    let production: serde_json::Value =
        serde_saphyr::from_str(&test.read("docs/generated/docker-compose.production.yml")).unwrap();
    assert_eq!(
        production["services"]["app"]["environment"]["DATABASE_URL"],
        "${PRODUCTION_DATABASE_URL}"
    );
    assert!(production["services"]["pgbouncer"].is_object());
}

#[test]
fn check_fails_with_a_diff_when_a_step_changes_and_passes_after_docs() {
    let test = fixture();
    test.run_with(["docs"]).assert_code(0);
    test.run_with(["docs", "--check"]).assert_code(0);

    let workflows = test
        .read("workflows.yaml")
        .replace("name: Apply\n", "name: Apply the migrations\n");
    test.write("workflows.yaml", &workflows);
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("stale: ./docs/generated/runbook-production.md"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("-5. **Apply** (`deploy`)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("+5. **Apply the migrations** (`deploy`)"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("run `dbflow docs`"), "{}", out.stderr);

    test.run_with(["docs"]).assert_code(0);
    test.run_with(["docs", "--check"]).assert_code(0);

    std::fs::remove_file(test.path().join("docs/generated/index.md")).unwrap();
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("missing: ./docs/generated/index.md"),
        "{}",
        out.stdout
    );
}

#[test]
fn project_templates_override_and_extend_the_shipped_ones() {
    let test = fixture()
        .file(
            "templates/runbook-{env}.md.tera",
            "Custom runbook for {{ env.name }} ({{ env.protection }})\n",
        )
        .file(
            "templates/owners.md.tera",
            "{% for env in environments %}{{ env.name }}: ops@bookshop.example\n{% endfor %}",
        );
    test.run_with(["docs"]).assert_code(0);
    assert_eq!(
        test.read("docs/generated/runbook-staging.md"),
        "Custom runbook for staging (shared)\n"
    );
    assert!(test
        .read("docs/generated/owners.md")
        .contains("production: ops@bookshop.example"));
    assert!(test
        .read("docs/generated/index.md")
        .contains("# bookshop: database runbooks"));
}

#[test]
fn a_template_error_names_the_template_file_and_line() {
    let test = fixture().file("templates/broken.md.tera", "line one\n{% for x in %}\n");
    let out = test.run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("templates/broken.md.tera:2:"),
        "{}",
        out.stderr
    );
    let test = fixture().file("templates/unknown.md.tera", "{{ nothing.here }}\n");
    let out = test.run_with(["docs"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("template error in unknown.md.tera"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing.here"), "{}", out.stderr);
}

#[test]
fn the_repository_example_docs_are_up_to_date() {
    let test = Test::in_dir(env!("CARGO_MANIFEST_DIR"));
    let out = test.run_with(["docs", "--check"]);
    out.assert_code(0);
}

// --- Claims tied to behaviour: each runbook sentence below comes from the object the
// engine runs, so changing the behaviour in the Workflowfile changes the sentence, and
// the run does what the sentence says.

/// A project whose `local` environment is an SQLite sandbox and whose `production` is
/// protected; `workflows` is appended as written.
fn claims_project(workflows: &str) -> Test {
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        &format!(
            "project: claims\ndefault_env: local\nenvironments:\n  local:\n    url: sqlite:.dbflow/claims_sandbox.db\n    protection: sandbox\n  production:\n    url: ${{PRODUCTION_DATABASE_URL}}\n    protection: protected\n{workflows}"
        ),
    );
    test.env(
        "PRODUCTION_DATABASE_URL",
        "postgres://app:ProdPoolPassw0rd@127.0.0.1:1/shop",
    )
}

fn runbook(test: &Test, env: &str) -> String {
    test.run_with(["docs"]).assert_code(0);
    test.read(&format!("docs/generated/runbook-{env}.md"))
}

/// The section of `text` under the heading `## {title}` (up to the next `## `).
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("no section {title} in\n{text}"));
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    &rest[..end]
}

#[test]
fn the_runbook_quotes_the_question_the_confirm_step_asks_and_what_answers_it() {
    let workflows =
        "workflows:\n  ship:\n    steps:\n      - confirm: Ship it?\n      - shell: echo shipped\n";
    let test = claims_project(workflows);
    let text = runbook(&test, "local");
    let asked = section(&text, "Confirmations asked here");
    assert!(
        asked.contains("| `ship` | confirm Ship it? | Ship it? | `[y/N]` | `--yes` |"),
        "{asked}"
    );
    assert!(!text.contains("confirmation (or `--yes` in CI)"), "{text}");
    // What the runbook says, the run does: nobody can be asked here (no terminal), and
    // --yes answers it.
    let out = test.run_with(["run", "ship", "--env", "local"]);
    out.assert_code(1);
    assert!(out.all().contains("rerun with --yes"), "{}", out.all());
    test.run_with(["run", "ship", "--env", "local", "--yes"])
        .assert_code(0);

    // The step changes: --yes no longer answers, a variable does, the default is yes.
    let workflows = "workflows:\n  ship:\n    steps:\n      - confirm: { message: Ship it?, default: true, yes_answers: false, variable: SHIP_IT }\n      - shell: echo shipped\n";
    let test = claims_project(workflows);
    let text = runbook(&test, "local");
    let asked = section(&text, "Confirmations asked here");
    assert!(
        asked.contains("| Ship it? | `[Y/n]` | `SHIP_IT=yes` |"),
        "{asked}"
    );
    test.run_with(["run", "ship", "--env", "local", "--yes"])
        .assert_code(3);
    let test = test.env("SHIP_IT", "yes");
    test.run_with(["run", "ship", "--env", "local"])
        .assert_code(0);
}

#[test]
fn a_protected_deploy_is_documented_as_the_y_n_question_the_guard_makes_it_ask() {
    let workflows = "workflows:\n  release:\n    steps:\n      - backup: {}\n      - deploy: {}\n      - verify: { checks: [ { status_clean: true } ] }\n";
    let test = claims_project(workflows);
    let text = runbook(&test, "production");
    let asked = section(&text, "Confirmations asked here");
    assert!(
        asked.contains(
            "| `release` | deploy | Apply N migration(s) to protected `production`? | `[y/N]` | `--yes` |"
        ),
        "{asked}"
    );
    assert!(!text.contains("confirmation (or `--yes` in CI)"), "{text}");
    // On the sandbox the guard asks nothing, and the runbook says so.
    let local = section(&runbook(&test, "local"), "Confirmations asked here").to_string();
    assert!(local.contains("nothing waits for a person"), "{local}");
    // The same project with production declared shared: the question is gone there too.
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        &std::fs::read_to_string(claims_project(workflows).path().join("Workflowfile.yaml"))
            .unwrap()
            .replace("protection: protected", "protection: shared"),
    );
    let text = runbook(&test, "production");
    assert!(
        section(&text, "Confirmations asked here").contains("nothing waits for a person"),
        "{text}"
    );
}

#[test]
fn the_decision_tree_follows_on_failure_and_the_rule_that_rollback_needs_a_change() {
    // A handler that restores a backup: a failure before any migration committed runs
    // nothing, and the runbook says exactly that.
    let restoring = "workflows:\n  release:\n    on_failure: undo\n    steps:\n      - shell: exit 1\n      - backup: {}\n      - deploy: {}\n      - verify: { checks: [ { status_clean: true } ] }\n  undo:\n    steps:\n      - rollback: {}\n";
    let test = claims_project(restoring);
    let text = runbook(&test, "local");
    let tree = section(&text, "Rollback decision tree");
    assert!(
        tree.contains("- `release`: a failure after a migration committed (or may have) runs `undo`, which restores a backup; a failure before any migration committed (guard block, declined or missing confirmation, lock timeout) changed nothing: the run stops and says \"nothing changed, nothing to roll back\" without running `undo`."),
        "{tree}"
    );
    let out = test.run_with(["run", "release", "--env", "local"]);
    out.assert_code(1);
    assert!(
        out.all()
            .contains("nothing changed, nothing to roll back (on_failure `undo` not run)"),
        "{}",
        out.all()
    );

    // A handler that restores nothing runs on any failure: the runbook no longer says
    // "nothing to roll back" for it, and the run does run it.
    let notifying = "workflows:\n  release:\n    on_failure: undo\n    steps:\n      - shell: exit 1\n      - backup: {}\n      - deploy: {}\n      - verify: { checks: [ { status_clean: true } ] }\n  undo:\n    steps:\n      - shell: echo undoing by hand\n";
    let test = claims_project(notifying);
    let text = runbook(&test, "local");
    let tree = section(&text, "Rollback decision tree");
    assert!(
        tree.contains("- `release`: any failed step runs `undo` (it restores nothing, so it runs whether or not anything changed), then the run fails."),
        "{tree}"
    );
    assert!(!tree.contains("nothing to roll back"), "{tree}");
    let out = test.run_with(["run", "release", "--env", "local"]);
    out.assert_code(1);
    assert!(
        out.all().contains("running on_failure workflow `undo`"),
        "{}",
        out.all()
    );
    // The flowchart draws the same paths.
    assert!(text.contains("-.->|\"fails\"| n"), "{text}");
}

#[test]
fn the_quick_reference_lists_only_what_the_guard_allows_there() {
    let workflows = "workflows:\n  local-reset:\n    description: Reset the sandbox\n    steps:\n      - reset: {}\n";
    let test = claims_project(workflows);
    let production = runbook(&test, "production");
    let quick = section(&production, "Quick reference");
    assert!(
        !quick.contains("| `dbflow run local-reset --env production` |"),
        "{quick}"
    );
    assert!(
        quick.contains("- `dbflow run local-reset --env production`: `migrate-reset` is forbidden on `production` (protected)"),
        "{quick}"
    );
    let local = runbook(&test, "local");
    assert!(
        section(&local, "Quick reference")
            .contains("| Reset the sandbox | `dbflow run local-reset --env local` |"),
        "{local}"
    );
    // The guard that wrote the table is the one that runs: refused (exit 3) before
    // anything is touched on production.
    let out = test.run_with(["run", "local-reset", "--env", "production"]);
    out.assert_code(3);

    // Production declared a sandbox with a sandbox-like database: the guard allows it,
    // and the quick reference lists it.
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        &format!(
            "project: claims\nenvironments:\n  production:\n    url: sqlite:.dbflow/prod_scratch.db\n    protection: sandbox\n{workflows}"
        ),
    );
    let production = runbook(&test, "production");
    assert!(
        section(&production, "Quick reference")
            .contains("| Reset the sandbox | `dbflow run local-reset --env production` |"),
        "{production}"
    );
}

#[test]
fn contacts_stop_writes_cut_over_health_and_backup_location_are_rendered() {
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        "project: claims\ncontacts:\n  on_call: \"#oncall\"\n  escalation: [Dana, Sam]\nbackups:\n  stop_writes: maintenance-on\n  switch_to_restored: cut-over\nenvironments:\n  production:\n    url: ${PRODUCTION_DATABASE_URL}\n    protection: protected\n    contacts: { on_call: PagerDuty prod }\n    backups:\n      repository: s3://acme-backups/prod\n  staging:\n    url: ${STAGING_DATABASE_URL}\n    protection: shared\ntasks:\n  maintenance-on: { description: Maintenance mode on, script: echo on }\n  cut-over: { description: Point the app at the copy, script: echo cut }\nworkflows:\n  release:\n    steps:\n      - verify: { checks: [ { name: shop, http: { url: \"https://shop.example/healthz\" } }, { name: api, http: { url: \"${API_URL:-https://api.example}/healthz\", status: 204 } } ] }\n",
    );
    let production = runbook(&test, "production");
    let who = section(&production, "Who to call");
    assert!(who.contains("- On call: PagerDuty prod"), "{who}");
    assert!(
        who.contains("- Escalation 1: Dana\n- Escalation 2: Sam"),
        "{who}"
    );
    let staging = runbook(&test, "staging");
    assert!(section(&staging, "Who to call").contains("- On call: #oncall"));
    let stop = section(&production, "Stop writes and cut over");
    assert!(
        stop.contains("task `maintenance-on` (Maintenance mode on)")
            && stop.contains("`dbflow run maintenance-on --env production`")
            && stop.contains("task `cut-over` (Point the app at the copy)"),
        "{stop}"
    );
    let health = section(&production, "Health endpoints");
    assert!(
        health.contains("| `https://shop.example/healthz` | HTTP 200 | `release`: shop |"),
        "{health}"
    );
    assert!(
        health
            .contains("| `${API_URL:-https://api.example}/healthz` | HTTP 204 | `release`: api |"),
        "{health}"
    );
    // By hand, the shell expands the variable the run would read (double quotes).
    assert!(
        production.contains("curl -fsS \"${API_URL:-https://api.example}/healthz\""),
        "{production}"
    );
    assert!(
        production.contains("| Backups | object storage, `s3://acme-backups/prod"),
        "{production}"
    );
    assert!(
        staging.contains("| Backups | `backups/staging/`"),
        "{staging}"
    );
    // The cut-over question the rollback step asks, once a task is declared.
    let incident = "workflows:\n  incident:\n    category: incidents\n    steps:\n      - rollback: { before: \"${BAD_MIGRATION:-}\" }\n";
    let test = Test::new();
    test.write(
        "Workflowfile.yaml",
        &format!("project: claims\nbackups:\n  switch_to_restored: cut-over\nenvironments:\n  production:\n    url: ${{PRODUCTION_DATABASE_URL}}\n    protection: protected\ntasks:\n  cut-over: {{ script: echo cut }}\n{incident}"),
    );
    let production = runbook(&test, "production");
    assert!(
        section(&production, "Confirmations asked here")
            .contains("| `type CUT-OVER to go on` | `--yes --cut-over` |"),
        "{production}"
    );
    let playbooks = section(&production, "Incident playbooks");
    assert!(
        playbooks.contains("`BAD_MIGRATION=<migration folder> dbflow run incident --env production` — reads `BAD_MIGRATION`"),
        "{playbooks}"
    );
}

#[test]
fn a_step_that_depends_on_variables_is_conditional_in_the_runbook_never_skipped() {
    // Variables are only known where the run happens: rendering the docs without them
    // must not call the step skipped; the environment's own protection may.
    let workflows = "workflows:\n  seed:\n    steps:\n      - name: Seed\n        when: { env_set: [SEED_TASK] }\n        shell: echo SEEDED-NOW\n      - name: Only protected\n        when: { protection: [protected] }\n        shell: echo guarded\n";
    let test = claims_project(workflows);
    let text = runbook(&test, "local");
    assert!(
        text.contains("1. **Seed** (`shell`) — only when SEED_TASK is set\\\n"),
        "{text}"
    );
    assert!(
        text.contains("2. **Only protected** (`shell`) — only when protection is protected — *skipped here: environment `local` is sandbox*"),
        "{text}"
    );
    assert!(text.contains("n1{\"when SEED_TASK is set?\"}"), "{text}");
    // And the run does what the runbook says: the variable decides.
    let out = test.run_with(["run", "seed", "--env", "local"]);
    out.assert_code(0);
    assert!(!out.all().contains("SEEDED-NOW"), "{}", out.all());
    let test = test.env("SEED_TASK", "db:seed");
    let out = test.run_with(["run", "seed", "--env", "local"]);
    out.assert_code(0);
    assert!(out.all().contains("SEEDED-NOW"), "{}", out.all());
}

/// A project with a protected `tenants` fleet: two listed targets (one with its own
/// URL, a password in it), a URL template, three waves and a failure budget.
fn fleet_project() -> Test {
    claims_project(
        "  tenants:
    protection: protected
    fleet:
      targets: [canary-1, acme, { name: initech, url: \"postgres://app:TenantPassw0rd@db-2:5432/initech\" }]
      url: \"postgres://app:${TENANT_DB_PASSWORD}@db-1:5432/tenant_{name}\"
      concurrency: 6
      waves:
        - { targets: [canary-*] }
        - { percent: 10 }
        - { rest: true }
      max_failures: \"5%\"
workflows:
  release:
    on_failure: undo
    steps:
      - backup: {}
      - deploy: {}
      - verify: { checks: [ { status_clean: true } ] }
  undo:
    steps:
      - rollback: {}
",
    )
}

#[test]
fn a_fleet_environment_runbook_explains_its_fleet_from_the_workflowfile() {
    let test = fleet_project();
    let text = runbook(&test, "tenants");
    assert!(!text.contains("TenantPassw0rd"), "{text}");
    let fleet = section(&text, "Fleet");
    insta::assert_snapshot!("fleet_section", fleet);
    for claim in [
        "`canary-1`, `acme`, `initech` at `postgres://app:****@db-2:5432/initech`",
        "`postgres://app:****@db-1:5432/tenant_{name}`",
        "1. the targets whose names match `canary-*`",
        "2. 10 % of the selected targets",
        "3. every target not run in an earlier wave",
        "**Concurrency**: 6 targets at once (`fleet.concurrency`",
        "5 % of the selected targets",
        "`release` runs `undo`, which restores that target's own backup",
        "--resume RUN_ID",
        "--shard I/N",
        "docs/fleet.md",
        "`dbflow targets --env tenants`",
        "`dbflow fleet summary RUN_ID`",
        "exit 4 if any target is not clean",
        "needs `--yes`",
    ] {
        assert!(fleet.contains(claim), "missing {claim:?} in\n{fleet}");
    }
    // Not a fleet: no such section.
    assert!(!runbook(&test, "production").contains("\n## Fleet\n"));

    // Changing the fleet changes the runbook: no waves, no budget, default concurrency.
    test.write(
        "Workflowfile.yaml",
        &test
            .read("Workflowfile.yaml")
            .replace("      concurrency: 6\n", "")
            .replace("      max_failures: \"5%\"\n", ""),
    );
    let fleet = section(&runbook(&test, "tenants"), "Fleet").to_string();
    assert!(
        fleet.contains(&format!(
            "**Concurrency**: {} targets at once (dbflow's default",
            dbflow::config::fleet::DEFAULT_CONCURRENCY
        )),
        "{fleet}"
    );
    assert!(
        fleet.contains("0: the first failed target stops new starts"),
        "{fleet}"
    );
}

#[test]
fn a_fleet_defined_by_a_command_or_a_query_says_so_with_urls_redacted() {
    let test = claims_project(
        "  tenants:
    protection: shared
    url: postgres://cat:CatalogPassw0rd@catalog:5432/catalog
    fleet:
      query: SELECT name FROM tenants WHERE active
      url: \"postgres://app:TplPassw0rd@db-1:5432/tenant_{name}\"
",
    );
    let text = runbook(&test, "tenants");
    let fleet = section(&text, "Fleet");
    assert!(
        fleet.contains("a query on the catalog database (the environment's own `url`)"),
        "{fleet}"
    );
    assert!(
        fleet.contains("`SELECT name FROM tenants WHERE active`"),
        "{fleet}"
    );
    assert!(
        fleet.contains("1. every selected target (no `waves:` declared: one wave)"),
        "{fleet}"
    );
    assert!(!text.contains("TplPassw0rd") && !text.contains("CatalogPassw0rd"));
    let test = claims_project(
        "  tenants:
    protection: shared
    fleet:
      command: ./list-tenants --json
      url: \"postgres://app:x@db-1:5432/tenant_{name}\"
",
    );
    let fleet = section(&runbook(&test, "tenants"), "Fleet").to_string();
    assert!(
        fleet.contains("the output of a command run with `sh -c`")
            && fleet.contains("`./list-tenants --json`"),
        "{fleet}"
    );
}

#[test]
fn a_task_running_prisma_migrate_reset_is_refused_in_the_quick_reference_as_at_run_time() {
    let workflows = "tasks:
  wipe:
    description: Reset the database
    command: npx
    args: [prisma, migrate, reset, --force]
workflows:
  fresh-start:
    description: Start over from an empty database
    steps:
      - task: wipe
  drop-it:
    description: Drop the shop
    steps:
      - shell: dropdb shop
";
    let test = claims_project(workflows);
    let production = runbook(&test, "production");
    let quick = section(&production, "Quick reference");
    assert!(
        !quick.contains("| `dbflow run fresh-start --env production` |"),
        "{quick}"
    );
    let reason = "`migrate-reset` is forbidden on `production` (protected)";
    assert!(
        quick.contains(&format!(
            "- `dbflow run fresh-start --env production`: task `wipe` runs `npx prisma migrate reset --force`: {reason}"
        )),
        "{quick}"
    );
    assert!(
        quick.contains("- `dbflow run drop-it --env production`: step `shell dropdb shop` runs `dropdb shop`: `drop-database` is forbidden on `production` (protected)"),
        "{quick}"
    );
    // The gate that wrote the sentence is the one the task meets: refused (exit 3)
    // with the same reason, before the command runs.
    let out = test.run_with(["run", "fresh-start", "--env", "production"]);
    out.assert_code(3);
    assert!(out.all().contains(reason), "{}", out.all());
    // On the sandbox the guard allows the reset: listed.
    let local = runbook(&test, "local");
    assert!(
        section(&local, "Quick reference").contains(
            "| Start over from an empty database | `dbflow run fresh-start --env local` |"
        ),
        "{local}"
    );
}

#[test]
fn a_handlers_questions_are_listed_under_the_workflow_whose_failure_runs_it() {
    let workflows = "workflows:
  release:
    on_failure: undo
    steps:
      - shell: exit 1
  undo:
    steps:
      - name: Ask first
        confirm: Really undo the release?
";
    let test = claims_project(workflows);
    let text = runbook(&test, "local");
    let asked = section(&text, "Confirmations asked here");
    assert!(
        asked.contains("| `release` | Ask first, in `undo` (asked if its on_failure runs) | Really undo the release? | `[y/N]` |"),
        "{asked}"
    );
    assert!(
        asked.contains("| `undo` | Ask first | Really undo the release? |"),
        "{asked}"
    );
    let steps = section(&text, "Workflows, step by step");
    assert!(
        steps.contains("Asked if its on_failure (`undo`) runs:\n\n- Ask first: \"Really undo the release?\" `[y/N]`"),
        "{steps}"
    );
    // And the run does ask it when `release` fails: with nobody to ask, it stops there
    // and names `--yes`, the answer the table gives.
    let out = test.run_with(["run", "release", "--env", "local"]);
    out.assert_code(1);
    assert!(
        out.all().contains("running on_failure workflow `undo`")
            && out
                .all()
                .contains("Ask first: confirmation required but nobody can be asked")
            && out.all().contains("--yes"),
        "{}",
        out.all()
    );

    // Without the handler, the question is no longer listed under `release`.
    test.write(
        "Workflowfile.yaml",
        &test
            .read("Workflowfile.yaml")
            .replace("    on_failure: undo\n", ""),
    );
    let text = runbook(&test, "local");
    assert!(
        !section(&text, "Confirmations asked here").contains("| `release` |"),
        "{text}"
    );
}
