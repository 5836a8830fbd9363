//! Lua extensions: the shipped providers against stand-ins for the cloud CLIs (which cannot
//! run here) that record their argv and answer like the real ones; the sandbox; Lua step
//! kinds in plans and validation.

use crate::support::cli::{events, Output, Test};
use crate::support::pg;
use std::path::Path;

fn fakes_dir() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fakes")
        .display()
        .to_string()
}

/// A project whose `prod` environment uses `provider` with `vars`, and a workflow running
/// the given provider actions in order.
fn provider_project(provider: &str, vars: &str, actions: &[&str]) -> Test {
    let steps: String = actions
        .iter()
        .map(|a| format!("      - provider: {{ action: {a} }}\n"))
        .collect();
    let test = Test::new().file(
        "Workflowfile.yaml",
        &format!(
            "environments:\n  prod:\n    url: sqlite:prod.db\n    provider: {provider}\n    vars:\n{vars}\nworkflows:\n  flow:\n    steps:\n{steps}"
        ),
    );
    let log = test.path().join("cli.log").display().to_string();
    test.env(
        "PATH",
        &format!(
            "{}:{}",
            fakes_dir(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .env("FAKE_LOG", &log)
}

fn recorded(test: &Test) -> Vec<String> {
    std::fs::read_to_string(test.path().join("cli.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn outputs(out: &Output) -> serde_json::Value {
    let journal = out.journal();
    let mut outputs = serde_json::Map::new();
    for event in journal.iter().filter(|e| e["event"] == "step_end") {
        outputs.insert(
            event["step"].as_str().unwrap().to_string(),
            event["outputs"].clone(),
        );
    }
    serde_json::Value::Object(outputs)
}

#[test]
fn aws_rds_ids_flow_from_snapshot_to_wait_restore_and_delete() {
    let t = provider_project(
        "aws_rds",
        "      rds_instance: acme-prod\n      region: eu-west-1",
        &["snapshot", "wait", "list", "restore", "delete"],
    );
    let out = t.run_with(["run", "flow"]);
    out.assert_code(0);
    let log = recorded(&t);
    assert_eq!(log.len(), 5, "{log:?}");
    let id = outputs(&out)["provider-1"]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        id.starts_with("dbflow-prod-") && id.len() == "dbflow-prod-".len() + 14,
        "{id}"
    );
    assert_eq!(log[0], format!("aws rds create-db-snapshot --db-instance-identifier acme-prod --db-snapshot-identifier {id} --region eu-west-1 --output json"));
    assert_eq!(
        log[1],
        format!(
            "aws rds wait db-snapshot-available --db-snapshot-identifier {id} --region eu-west-1"
        )
    );
    assert_eq!(log[2], "aws rds describe-db-snapshots --db-instance-identifier acme-prod --region eu-west-1 --output json");
    assert!(log[3].starts_with("aws rds restore-db-instance-from-db-snapshot --db-instance-identifier acme-prod-restore-"), "{}", log[3]);
    assert!(
        log[3].contains(&format!(
            "--db-snapshot-identifier {id} --region eu-west-1 --output json"
        )),
        "{}",
        log[3]
    );
    assert_eq!(log[4], format!("aws rds delete-db-snapshot --db-snapshot-identifier {id} --region eu-west-1 --output json"));
    let outputs = outputs(&out);
    assert_eq!(outputs["provider-3"]["snapshots"][1]["kind"], "automated");
    assert_eq!(outputs["provider-4"]["restored"]["status"], "creating");
    assert_eq!(outputs["provider-5"]["snapshot_id"], id.as_str());
}

#[test]
fn gcp_cloudsql_uses_the_backup_id_from_the_operation() {
    let t = provider_project(
        "gcp_cloudsql",
        "      cloudsql_instance: acme-sql\n      gcp_project: acme-prod-123",
        &["snapshot", "wait", "list", "restore", "delete"],
    );
    t.run_with(["run", "flow"]).assert_code(0);
    let log = recorded(&t);
    assert!(
        log[0].starts_with(
            "gcloud sql backups create --instance=acme-sql --description=dbflow prod run "
        ),
        "{}",
        log[0]
    );
    assert!(
        log[0].ends_with(" --async --project=acme-prod-123 --format=json"),
        "{}",
        log[0]
    );
    assert_eq!(log[1], "gcloud sql backups describe 1763695200123 --instance=acme-sql --project=acme-prod-123 --format=json");
    assert_eq!(
        log[2],
        "gcloud sql backups list --instance=acme-sql --project=acme-prod-123 --format=json"
    );
    assert_eq!(log[3], "gcloud sql backups restore 1763695200123 --restore-instance=acme-sql-restore --backup-instance=acme-sql --quiet --project=acme-prod-123 --format=json");
    assert_eq!(log[4], "gcloud sql backups delete 1763695200123 --instance=acme-sql --quiet --project=acme-prod-123");
}

#[test]
fn azure_flexible_restores_to_a_new_server_at_the_backup_time() {
    let t = provider_project(
        "azure_flexible",
        "      azure_resource_group: acme-rg\n      azure_server: acme-pg",
        &["snapshot", "wait", "restore", "delete"],
    );
    let out = t.run_with(["run", "flow"]);
    out.assert_code(0);
    let log = recorded(&t);
    let id = outputs(&out)["provider-1"]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(log[0], format!("az postgres flexible-server backup create --resource-group acme-rg --name acme-pg --backup-name {id} --output json"));
    assert_eq!(log[1], format!("az postgres flexible-server backup show --resource-group acme-rg --name acme-pg --backup-name {id} --output json"));
    assert!(
        log[3].starts_with(
            "az postgres flexible-server restore --resource-group acme-rg --name acme-pg-restore-"
        ),
        "{}",
        log[3]
    );
    assert!(
        log[3].ends_with(
            "--source-server acme-pg --restore-time 2026-11-21T10:15:30.123456+00:00 --output json"
        ),
        "{}",
        log[3]
    );
    assert_eq!(log[4], format!("az postgres flexible-server backup delete --resource-group acme-rg --name acme-pg --backup-name {id} --yes --output json"));
}

#[test]
fn compose_dumps_inside_the_database_service_and_stops_the_app() {
    let t = provider_project(
        "compose",
        "      db_user: shop",
        &["stop_writes", "snapshot", "wait", "list", "resume_writes"],
    );
    // The compose provider needs a database name: give the environment a PostgreSQL URL.
    t.write(
        "Workflowfile.yaml",
        &t.read("Workflowfile.yaml")
            .replace("sqlite:prod.db", "postgres://shop:secret99@db:5432/shop"),
    );
    let out = t.run_with(["run", "flow"]);
    out.assert_code(0);
    let log = recorded(&t);
    let id = outputs(&out)["provider-2"]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(log[0], "docker compose stop app");
    assert_eq!(log[1], format!("docker compose exec -T postgres pg_dump --format=custom --username=shop --file=/backups/{id}.dump shop"));
    assert_eq!(
        log[2],
        format!("docker compose exec -T postgres pg_restore --list /backups/{id}.dump")
    );
    assert_eq!(log[3], "docker compose exec -T postgres ls -1 /backups");
    assert_eq!(log[4], "docker compose start app");
    let listed = &outputs(&out)["provider-4"]["snapshots"];
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "notes.txt is not a dump: {listed}"
    );
}

#[test]
fn cli_failures_and_malformed_json_become_clear_step_failures() {
    let t = provider_project("aws_rds", "      rds_instance: acme-prod", &["snapshot"])
        .env("FAKE_FAIL", "1");
    let out = t.run_with(["run", "flow"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("aws create-db-snapshot failed (exit 254)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("DBInstanceNotFound"), "{}", out.stderr);
    assert!(out.stderr.contains("aws_rds.lua"), "{}", out.stderr);

    let t = provider_project("aws_rds", "      rds_instance: acme-prod", &["snapshot"])
        .env("FAKE_MALFORMED", "1");
    let out = t.run_with(["run", "flow"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("returned malformed JSON"),
        "{}",
        out.stderr
    );

    let t = provider_project("aws_rds", "      region: eu-west-1", &["snapshot"]);
    let out = t.run_with(["run", "flow"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("set vars.rds_instance"),
        "{}",
        out.stderr
    );
    assert!(recorded(&t).is_empty(), "nothing ran");
}

/// A Lua step kind `probe` whose `run` executes `body`, in a workflow whose failure handler
/// writes `handled.txt`.
fn sandbox_project(body: &str) -> Test {
    Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:app.db\nlua:\n  max_instructions: 20000000\n  memory_mib: 32\n  timeout: 20s\nworkflows:\n  probe:\n    on_failure: handled\n    steps:\n      - probe: {}\n  handled:\n    steps:\n      - shell: touch handled.txt\n",
        )
        .file("scripts-lua/steps/probe.lua", &format!("return {{\n  summary = \"sandbox probe\",\n  run = function(ctx, params)\n    {body}\n  end,\n}}\n"))
}

#[test]
fn the_sandbox_stops_dangerous_scripts_and_the_run_goes_on_to_on_failure() {
    let cases: &[(&str, &str)] = &[
        (
            "os.execute('touch pwned.txt')",
            "os.execute is not allowed in dbflow scripts; use dbflow.exec{...}",
        ),
        (
            "local f = io.popen('touch pwned.txt'); f:read('a')",
            "io.popen is not allowed",
        ),
        (
            "local f = io.open('/etc/passwd'); return { text = f:read('a') }",
            "io.open(\"/etc/passwd\") is not allowed",
        ),
        ("while true do end", "instruction limit exceeded"),
        (
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end",
            "memory",
        ),
        (
            "local f = load(string.char(27) .. 'Lua', 'x', 'b')",
            "binary chunks are not allowed",
        ),
        ("return debug.getinfo(1)", "debug"),
        (
            "dbflow.exec{ 'touch pwned.txt', shell = true }",
            "shell=true} is not allowed",
        ),
    ];
    for (body, expected) in cases {
        let t = sandbox_project(body);
        let out = t.run_with(["run", "probe"]);
        out.assert_code(1);
        assert!(
            out.stderr.contains(expected),
            "`{body}`: expected `{expected}` in\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("scripts-lua/steps/probe.lua"),
            "{}",
            out.stderr
        );
        assert!(!t.exists("pwned.txt"), "`{body}` executed something");
        assert!(t.exists("handled.txt"), "`{body}`: on_failure did not run");
    }
}

#[test]
fn files_inside_the_project_and_the_host_api_work() {
    let t = sandbox_project(
        "local f = assert(io.open('notes.txt', 'w')); f:write('hello'); f:close()\n    local r = dbflow.exec{ 'sh', '-c', 'echo from-exec; echo oops >&2; exit 3' }\n    local doc = dbflow.json.decode('{\"a\": [1, 2]}')\n    dbflow.log.info('env is ' .. ctx.env)\n    dbflow.sleep(0.01)\n    return { code = r.code, out = r.stdout, err = r.stderr, second = doc.a[2], encoded = dbflow.json.encode({ x = 1 }), who = dbflow.env('DBFLOW_PROBE') }",
    )
    .env("DBFLOW_PROBE", "probe-value");
    // A shell runs only for a step that declares it may.
    t.write(
        "scripts-lua/steps/probe.lua",
        &t.read("scripts-lua/steps/probe.lua")
            .replace("return {\n", "return {\n  allow_shell = true,\n"),
    );
    let out = t.run_with(["run", "probe"]);
    out.assert_code(0);
    assert_eq!(t.read("notes.txt"), "hello");
    assert!(out.stdout.contains("env is local"), "{}", out.stdout);
    let step = outputs(&out);
    let o = &step["probe-1"];
    assert_eq!(o["code"], 3);
    assert_eq!(o["out"], "from-exec\n");
    assert_eq!(o["err"], "oops\n");
    assert_eq!(o["second"], 2);
    assert_eq!(o["encoded"], "{\"x\":1}");
    assert_eq!(o["who"], "probe-value");
    let journal = out.journal();
    assert!(
        journal
            .iter()
            .any(|e| e["event"] == "lua_exec" && e["exit_code"] == 3),
        "exec is journaled"
    );
}

#[test]
fn sql_is_read_only_unless_the_step_says_otherwise() {
    let t = sandbox_project("local rows = dbflow.sql('SELECT 1 AS one, ? AS two', { 'x' }); dbflow.sql('CREATE TABLE t (id int)'); return rows[1]");
    let out = t.run_with(["run", "probe"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("readonly") || out.stderr.contains("read-only"),
        "{}",
        out.stderr
    );
    let t = sandbox_project(
        "local rows = dbflow.sql('SELECT 1 AS one, ? AS two', { 'x' }); return rows[1]",
    );
    let out = t.run_with(["run", "probe"]);
    out.assert_code(0);
    assert_eq!(outputs(&out)["probe-1"]["two"], "x");
}

#[test]
fn a_lua_step_kind_runs_shows_in_dry_run_and_validates_its_parameters() {
    let script = r#"return {
  name = "announce",
  summary = "post a message to the team channel",
  params = {
    channel = { type = "string", required = true },
    level = { type = "string", default = "info", one_of = { "info", "warn" } },
  },
  describe = function(params)
    return { summary = "Announce in #" .. params.channel, commands = { "curl -X POST https://chat.example/" .. params.channel } }
  end,
  run = function(ctx, params)
    return { said = params.level .. " in " .. params.channel .. " for " .. ctx.env }
  end,
}
"#;
    let wf = |params: &str| {
        format!("environments:\n  local:\n    url: sqlite:app.db\nworkflows:\n  tell:\n    steps:\n      - announce: {params}\n")
    };
    let t = Test::new()
        .file("Workflowfile.yaml", &wf("{ channel: ops }"))
        .file("scripts-lua/steps/announce.lua", script);
    let dry = t.run_with(["run", "tell", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("1. announce [announce]"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("Announce in #ops"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("$ curl -X POST https://chat.example/ops"),
        "{}",
        dry.stdout
    );
    let out = t.run_with(["run", "tell"]);
    out.assert_code(0);
    assert_eq!(outputs(&out)["announce-1"]["said"], "info in ops for local");

    t.write("Workflowfile.yaml", &wf("{ chanel: ops }"));
    let bad = t.run_with(["validate"]);
    bad.assert_code(2);
    assert!(
        bad.stderr
            .contains("unknown parameter `chanel` for step kind `announce`"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("did you mean `channel`?"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("Workflowfile.yaml:7:21"),
        "{}",
        bad.stderr
    );

    t.write("Workflowfile.yaml", &wf("{ channel: ops, level: loud }"));
    let bad = t.run_with(["validate"]);
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("expected one of \"info\", \"warn\""),
        "{}",
        bad.stderr
    );
}

#[test]
fn a_lua_syntax_error_is_a_validation_error_with_file_and_line() {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            "environments:\n  local:\n    url: sqlite:app.db\n",
        )
        .file(
            "scripts-lua/steps/broken.lua",
            "return {\n  run = function(ctx)\n    local x = = 1\n  end,\n}\n",
        );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("scripts-lua/steps/broken.lua:3"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unexpected symbol"), "{}", out.stderr);
    let out = t.run_with(["run", "anything"]);
    out.assert_code(2);
}

#[test]
fn an_unknown_provider_is_a_validation_error_with_a_suggestion() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  prod:\n    url: sqlite:app.db\n    provider: aws_rsd\n",
    );
    let out = t.run_with(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("unknown provider `aws_rsd`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `aws_rds`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_provider_backup_joins_the_catalog_and_its_id_flows_to_restore() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "environments:\n  prod:\n    url: sqlite:prod.db\n    provider: aws_rds\n    vars:\n      rds_instance: acme-prod\nworkflows:\n  snap:\n    steps:\n      - backup: { via: provider, label: nightly }\n      - provider: { action: restore }\n",
    );
    let log = t.path().join("cli.log").display().to_string();
    let t = t
        .env(
            "PATH",
            &format!(
                "{}:{}",
                fakes_dir(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("FAKE_LOG", &log);
    let out = t.run_with(["run", "snap"]);
    out.assert_code(0);
    let o = outputs(&out);
    let snapshot = o["backup-1"]["snapshot_id"].as_str().unwrap().to_string();
    let backup_id = o["backup-1"]["backup_id"].as_str().unwrap().to_string();
    assert!(backup_id.ends_with("_nightly"), "{backup_id}");
    let log = recorded(&t);
    assert!(log[0].starts_with("aws rds create-db-snapshot"), "{log:?}");
    assert!(
        log[2].contains(&format!("--db-snapshot-identifier {snapshot}"))
            && log[2].starts_with("aws rds restore-db-instance-from-db-snapshot"),
        "{log:?}"
    );

    let list = t.run_with(["backup", "list", "--json"]);
    list.assert_code(0);
    assert!(
        list.stdout.contains(&backup_id) && list.stdout.contains("provider"),
        "{}",
        list.stdout
    );
    let manifest = t.read(&format!("backups/prod/{backup_id}/manifest.json"));
    assert!(
        manifest.contains(&format!("\"snapshot_id\": \"{snapshot}\"")),
        "{manifest}"
    );
    let restore = t.run_with(["restore", &backup_id, "--into", "copy"]);
    assert_ne!(restore.code, 0);
    assert!(
        restore.stderr.contains("restore it through the provider"),
        "{}",
        restore.stderr
    );
}

#[test]
fn exec_refuses_every_shell_unless_the_step_allows_it() {
    let cases = [
        "dbflow.exec{ 'sh', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ 'bash', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ 'dash', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ 'zsh', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ '/bin/sh', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ 'env', 'sh', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ '/usr/bin/env', '-S', 'sh -c id' }",
        "dbflow.exec{ 'busybox', 'sh', '-c', 'touch pwned.txt' }",
        "dbflow.exec{ 'python3', '-c', 'open(\\'pwned.txt\\', \\'w\\')' }",
        "dbflow.exec{ 'perl', '-e', 'open(F, \\'>pwned.txt\\')' }",
        "dbflow.exec{ 'sh', shell = false }",
    ];
    for body in cases {
        let t = sandbox_project(body);
        let out = t.run_with(["run", "probe"]);
        out.assert_code(1);
        assert!(
            out.stderr.contains("is not allowed") && out.stderr.contains("allow_shell = true"),
            "`{body}`:\n{}",
            out.stderr
        );
        assert!(!t.exists("pwned.txt"), "`{body}` ran a shell");
        assert!(t.exists("handled.txt"), "`{body}`: on_failure did not run");
    }
    // Declared by the step, the shell runs (and what it runs is still read by the guard).
    let t = sandbox_project("dbflow.exec{ 'sh', '-c', 'touch allowed.txt' }");
    t.write(
        "scripts-lua/steps/probe.lua",
        &t.read("scripts-lua/steps/probe.lua")
            .replace("return {\n", "return {\n  allow_shell = true,\n"),
    );
    t.run_with(["run", "probe"]).assert_code(0);
    assert!(t.exists("allowed.txt"));
}

/// A project whose `target` environment (at `protection`) is `db`, with a Lua step kind
/// `probe` running `body` (declared writing when `writes`).
fn guarded_lua_project(db: &pg::TestDb, protection: &str, body: &str, writes: bool) -> Test {
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!("environments:\n  target:\n    url: ${{DATABASE_URL}}\n    protection: {protection}\nworkflows:\n  probe:\n    steps:\n      - probe: {{}}\n"),
        )
        .file(
            "scripts-lua/steps/probe.lua",
            &format!("return {{\n  writes = {writes},\n  run = function(ctx, params)\n    {body}\n  end,\n}}\n"),
        )
        .file("node_modules/.bin/prisma", "#!/bin/sh\necho \"prisma $*\" >> prisma-calls.txt\n")
        .env("DATABASE_URL", &db.url)
        .env("PATH", &crate::backup::pg_path());
    std::process::Command::new("chmod")
        .args(["+x", "node_modules/.bin/prisma"])
        .current_dir(t.path())
        .status()
        .unwrap();
    t
}

#[test]
fn exec_and_sql_go_through_the_guard_of_the_environment() {
    let Some(db) = pg::database("lua_exec_sql_guarded") else {
        return;
    };
    db.psql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)");
    let name = db.name.clone();
    let url = db.url.clone();
    let cases: Vec<(&str, String, bool, &str)> = vec![
        (
            "protected",
            format!("dbflow.exec{{ 'dropdb', '{name}' }}"),
            false,
            "drop-database",
        ),
        (
            "shared",
            format!("dbflow.exec{{ 'dropdb', '--force', '{name}' }}"),
            false,
            "drop-database",
        ),
        (
            "protected",
            format!("dbflow.exec{{ 'psql', '{url}', '-c', 'DROP DATABASE {name}' }}"),
            false,
            "drop-database",
        ),
        (
            "protected",
            "dbflow.exec{ './node_modules/.bin/prisma', 'migrate', 'reset', '--force' }"
                .to_string(),
            false,
            "migrate-reset",
        ),
        (
            "shared",
            "dbflow.exec{ 'npx', 'prisma', 'db', 'push', '--accept-data-loss' }".to_string(),
            false,
            "db-push",
        ),
        (
            "protected",
            format!("dbflow.sql('DROP DATABASE {name}')"),
            true,
            "drop-database",
        ),
        (
            "protected",
            format!("dbflow.sql('drop  database if exists {name} with (force)')"),
            true,
            "drop-database",
        ),
    ];
    for (protection, body, writes, op) in &cases {
        let t = guarded_lua_project(&db, protection, body, *writes);
        let out = t.run_with(["run", "probe", "--yes"]);
        out.assert_code(3);
        assert!(
            out.stderr.contains(&format!(
                "blocked by the guard: `{op}` on `target` ({protection}"
            )),
            "`{body}`:\n{}",
            out.stderr
        );
        assert!(!t.exists("prisma-calls.txt"), "`{body}` ran Prisma");
        let journal = out.journal();
        assert_eq!(
            events(&journal, "guard_blocked")[0]["operation"],
            *op,
            "`{body}`: the refusal is journaled"
        );
        assert!(db.database_exists(&name), "`{body}` dropped the database");
        assert_eq!(db.psql("SELECT count(*) FROM kept"), "1");
    }
    // What the guard allows runs: a deploy on protected is confirmed by --yes.
    let t = guarded_lua_project(
        &db,
        "protected",
        "local r = dbflow.exec{ './node_modules/.bin/prisma', 'migrate', 'deploy' }; return { code = r.code }",
        false,
    );
    let out = t.run_with(["run", "probe"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("rerun with --yes to confirm"),
        "{}",
        out.stderr
    );
    assert!(!t.exists("prisma-calls.txt"));
    t.run_with(["run", "probe", "--yes"]).assert_code(0);
    assert_eq!(t.read("prisma-calls.txt"), "prisma migrate deploy\n");
}

#[test]
fn read_only_sql_runs_read_only_and_cannot_touch_other_sessions() {
    let Some(db) = pg::database("lua_read_only_sql") else {
        return;
    };
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    // Another session, as an application's would be.
    let mut sleeper = std::process::Command::new(pg::bin_dir().unwrap().join("psql"))
        .args([db.url.as_str(), "-c", "SELECT pg_sleep(60)"])
        .env("PGAPPNAME", "dbflow_test_victim")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let victims = || {
        db.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dbflow_test_victim'",
        )
    };
    for _ in 0..100 {
        if victims() == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(victims(), "1");
    let refused = [
        ("dbflow.sql(\"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dbflow_test_victim'\")", "pg_terminate_backend"),
        ("dbflow.sql(\"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'dbflow_test_victim'\")", "pg_cancel_backend"),
        ("dbflow.sql('SELECT pg_reload_conf()')", "pg_reload_conf"),
        ("dbflow.sql(\"SELECT set_config('default_transaction_read_only', 'off', false)\")", "set_config"),
        ("dbflow.sql('WITH d AS (DELETE FROM t RETURNING id) SELECT count(*) FROM d')", "read-only transaction"),
    ];
    for (body, expected) in refused {
        let t = guarded_lua_project(&db, "shared", body, false);
        let out = t.run_with(["run", "probe"]);
        assert_ne!(out.code, 0, "`{body}` ran");
        assert!(out.stderr.contains(expected), "`{body}`:\n{}", out.stderr);
        assert_eq!(victims(), "1", "`{body}` reached another session");
    }
    assert_eq!(db.psql("SELECT count(*) FROM t"), "1");
    // Reading works, inside a READ ONLY transaction.
    let t = guarded_lua_project(
        &db,
        "shared",
        "return dbflow.sql('SELECT current_setting(\\'transaction_read_only\\') AS ro, count(*) AS n FROM t')[1]",
        false,
    );
    let out = t.run_with(["run", "probe"]);
    out.assert_code(0);
    assert_eq!(outputs(&out)["probe-1"]["ro"], "on");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// Runs `dbflow run probe` in `t`, killing it after `secs` (a sandbox that does not
/// hold would otherwise hang the test): the exit code (None when killed) and stderr.
fn run_within(t: &Test, secs: u64) -> (Option<i32>, String) {
    use std::io::Read as _;
    let mut child = t.spawn_with(["run", "probe"]);
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A `probe` step running `body` under `lua:` settings `limits`.
fn limited_project(limits: &str, body: &str) -> Test {
    let t = sandbox_project(body);
    t.write(
        "Workflowfile.yaml",
        &t.read("Workflowfile.yaml").replace(
            "lua:\n  max_instructions: 20000000\n  memory_mib: 32\n  timeout: 20s\n",
            &format!("lua:\n{limits}"),
        ),
    );
    t
}

#[test]
fn pcall_cannot_swallow_the_instruction_or_time_limit() {
    let bodies = [
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function(e) return e end) end",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "local ok = pcall(function() while true do end end); return { survived = ok }",
        "while true do pcall(pcall, function() while true do end end) end",
    ];
    for (limits, expected) in [
        (
            "  max_instructions: 5000000\n",
            "instruction limit exceeded",
        ),
        (
            "  max_instructions: 100000000000\n  timeout: 2s\n",
            "time limit exceeded",
        ),
    ] {
        for body in bodies {
            let t = limited_project(limits, body);
            let (code, stderr) = run_within(&t, 60);
            assert_eq!(code, Some(1), "`{body}` did not stop ({limits})\n{stderr}");
            assert!(
                stderr.contains(expected),
                "`{body}`: expected `{expected}` in\n{stderr}"
            );
            assert!(t.exists("handled.txt"), "`{body}`: on_failure did not run");
        }
    }
}

#[test]
fn string_patterns_respect_the_time_limit() {
    let subject = "local s = string.rep('a', 300000)";
    for call in [
        "string.find(s, '(.-)(.-)(.-)b')",
        "s:match('(.-)(.-)(.-)b')",
        "for x in s:gmatch('(.-)(.-)(.-)b') do end",
        "s:gsub('(.-)(.-)(.-)b', 'x')",
        "pcall(string.find, s, '(.-)(.-)(.-)b'); while true do end",
    ] {
        let t = limited_project(
            "  max_instructions: 100000000000\n  timeout: 2s\n",
            &format!("{subject}\n    {call}"),
        );
        let started = std::time::Instant::now();
        let (code, stderr) = run_within(&t, 60);
        assert_eq!(code, Some(1), "`{call}` did not stop\n{stderr}");
        assert!(
            stderr.contains("time limit exceeded"),
            "`{call}`:\n{stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "`{call}` took {:?}",
            started.elapsed()
        );
        assert!(t.exists("handled.txt"), "`{call}`: on_failure did not run");
    }
    // Ordinary parsing of a long output still works.
    let t = limited_project(
        "  timeout: 20s\n",
        "local out = string.rep('snapshot-1 available\\n', 3000)\n    local n = 0\n    for line in out:gmatch('[^\\n]+') do n = n + 1 end\n    return { lines = n, fixed = select(2, out:gsub('(%w+)%-(%d)', '%2')) }",
    );
    let out = t.run_with(["run", "probe"]);
    out.assert_code(0);
    assert_eq!(outputs(&out)["probe-1"]["lines"], 3000);
    assert_eq!(outputs(&out)["probe-1"]["fixed"], 3000);
}
