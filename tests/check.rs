//! `dbflow check`: every operation on every protection level with the built-in rules,
//! against a database whose name matches the sandbox pattern and one whose name does
//! not; the overrides (and that none unlocks `protected`); a custom sandbox pattern; the
//! Workflowfile's `guard:` section; real command lines; zero-config protection.

use crate::support::cli::{events, Test};
use serde_json::Value;

/// Three environments whose database names come from variables.
fn project() -> Test {
    Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: postgres://app@localhost:5432/${LOCAL_DB:-shop_dev}
            protection: sandbox
          staging:
            url: postgres://app@staging:5432/${STAGING_DB:-shop_staging}
            protection: shared
          production:
            url: postgres://app@prod:5432/${PRODUCTION_DB:-shop}
            protection: protected
        ",
    )
}

/// `(allowed, blocking rules, overridden rules, refused overrides)` of one operation.
fn decide(t: &Test, env: &str, what: &str) -> (bool, Vec<String>, Vec<String>, Vec<String>, i32) {
    let out = t.run_with(["check", what, "--env", env, "--json"]);
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", out.stdout, out.stderr));
    let rules = |state: &str| -> Vec<String> {
        doc["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["violations"].as_array().unwrap())
            .filter(|v| v["override_state"] == state)
            .map(|v| v["rule"].as_str().unwrap().to_string())
            .collect()
    };
    (
        doc["allowed"].as_bool().unwrap(),
        rules("not_set"),
        rules("used"),
        rules("refused"),
        out.code,
    )
}

/// The built-in rules: which rules block each operation on a database whose name does
/// not look like a sandbox (`F` = forbidden at that level, `N` = sandbox-name).
const DEFAULTS: &[(&str, [&str; 3])] = &[
    //  operation                   sandbox  shared  protected
    ("migrate-dev", ["N", "FN", "FN"]),
    ("db-push", ["", "F", "F"]),
    ("db-push-accept-data-loss", ["N", "FN", "FN"]),
    ("db-push-force-reset", ["N", "FN", "FN"]),
    ("migrate-reset", ["N", "FN", "FN"]),
    ("seed", ["", "", "F"]),
    ("drop-database", ["N", "FN", "FN"]),
    ("restore-in-place", ["N", "FN", "FN"]),
    ("deploy", ["", "", ""]),
    ("migrate-down", ["", "", ""]),
    ("migrate-resolve", ["", "", ""]),
    ("db-execute", ["", "", ""]),
];

fn expected(code: &str, sandbox_db: bool) -> Vec<String> {
    let mut out = Vec::new();
    if code.contains('F') {
        out.push("forbidden".to_string());
    }
    if code.contains('N') && !sandbox_db {
        out.push("sandbox-name".to_string());
    }
    out
}

#[test]
fn every_default_rule_on_every_protection_level() {
    let envs = ["local", "staging", "production"];
    let real_names = project();
    let sandbox_names = project()
        .env("LOCAL_DB", "shop_sandbox")
        .env("STAGING_DB", "shop_e2e")
        .env("PRODUCTION_DB", "scratch_copy");
    let mut mismatches = Vec::new();
    for (op, codes) in DEFAULTS {
        for (env, code) in envs.iter().zip(codes) {
            for (t, sandbox_db) in [(&real_names, false), (&sandbox_names, true)] {
                let (allowed, blocking, used, refused, exit) = decide(t, env, op);
                let want = expected(code, sandbox_db);
                let ok = blocking == want
                    && used.is_empty()
                    && refused.is_empty()
                    && allowed == want.is_empty()
                    && exit == if want.is_empty() { 0 } else { 3 };
                if !ok {
                    mismatches.push(format!(
                        "{op} on {env} (sandbox-like name: {sandbox_db}): expected {want:?}, got {blocking:?} (exit {exit})"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn blocked_output_names_the_rule_the_reason_and_the_way_out() {
    let out = project().run_with(["check", "migrate-reset", "--env", "staging"]);
    out.assert_code(3);
    assert_eq!(
        out.stdout,
        "\
BLOCKED: `migrate-reset` on `staging` (shared, database `shop_staging`)
  ✘ rule forbidden: `migrate-reset` is forbidden on `staging` (shared)
      source: dbflow's default for shared environments
      override: set DBFLOW_ALLOW_MIGRATE_RESET=1 for one run (printed and journaled)
  ✘ rule sandbox-name: `migrate-reset` can delete data, so it needs a database whose name matches the sandbox pattern `sandbox|scratch|seed|e2e|test|tmp`; `shop_staging` does not
      source: dbflow's default sandbox_pattern
      override: set DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB=1 for one run (printed and journaled)
  what it does: `prisma migrate reset` drops every table, re-applies all migrations and seeds: every row is lost
  instead: reset only a disposable database (its name must match sandbox_pattern); to go back in time, restore a backup into a new database (`dbflow restore`)
"
    );
    let out = project().run_with(["check", "deploy", "--env", "production"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "\
ALLOWED: `deploy` on `production` (protected, database `shop`)
  changes a protected database: dbflow asks for confirmation first (non-interactive runs need --yes)
"
    );
}

#[test]
fn overrides_unlock_sandbox_and_shared_loudly_and_are_journaled() {
    // The sandbox-name rule on a sandbox environment: the issue's own example.
    let t = project().env("DBFLOW_ALLOW_MIGRATE_DEV_ANY_DB", "1");
    let (allowed, blocking, used, _, exit) = decide(&t, "local", "migrate-dev");
    assert!(allowed && blocking.is_empty() && exit == 0);
    assert_eq!(used, ["sandbox-name"]);

    // On shared, each rule needs its own variable.
    let one = project().env("DBFLOW_ALLOW_MIGRATE_RESET", "1");
    let (allowed, blocking, used, _, exit) = decide(&one, "staging", "migrate-reset");
    assert!(!allowed && exit == 3);
    assert_eq!(
        (blocking, used),
        (
            vec!["sandbox-name".to_string()],
            vec!["forbidden".to_string()]
        )
    );

    let both = project()
        .env("DBFLOW_ALLOW_MIGRATE_RESET", "1")
        .env("DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB", "true");
    let out = both.run_with(["check", "migrate-reset", "--env", "staging"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .starts_with("ALLOWED (override): `migrate-reset` on `staging`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("warning: !!! OVERRIDE DBFLOW_ALLOW_MIGRATE_RESET=1 lifts rule `forbidden` for `migrate-reset` on `staging` (shared, database `shop_staging`)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("!!! OVERRIDE DBFLOW_ALLOW_MIGRATE_RESET_ANY_DB=1"),
        "{}",
        out.stderr
    );
    let journal = out.journal();
    let overrides = events(&journal, "guard_override");
    assert_eq!(overrides.len(), 2);
    assert_eq!(overrides[0]["variable"], "DBFLOW_ALLOW_MIGRATE_RESET");
    assert_eq!(overrides[0]["env"], "staging");
    assert_eq!(overrides[0]["operation"], "migrate-reset");
    assert_eq!(
        events(&journal, "run_start")[0]["target"],
        "check migrate-reset"
    );

    // A value that is not yes does not override; a misspelt variable is pointed out.
    let t = project()
        .env("DBFLOW_ALLOW_DB_PUSH", "0")
        .env("DBFLOW_ALLOW_DBPUSH", "1");
    let out = t.run_with(["check", "db-push", "--env", "staging"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("DBFLOW_ALLOW_DBPUSH is not a dbflow override and is ignored (did you mean `DBFLOW_ALLOW_DB_PUSH`?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_override_ever_unlocks_protected() {
    let mut t = project().env("PRODUCTION_DB", "shop");
    for (op, _) in DEFAULTS {
        let name = op.to_ascii_uppercase().replace('-', "_");
        t = t
            .env(&format!("DBFLOW_ALLOW_{name}"), "1")
            .env(&format!("DBFLOW_ALLOW_{name}_ANY_DB"), "1");
    }
    for (op, codes) in DEFAULTS {
        let (allowed, blocking, used, refused, exit) = decide(&t, "production", op);
        assert!(used.is_empty(), "{op}: an override was used on protected");
        assert_eq!(refused, expected(codes[2], false), "{op}");
        assert_eq!(blocking, Vec::<String>::new(), "{op}");
        assert_eq!(allowed, codes[2].is_empty(), "{op}");
        assert_eq!(exit, if codes[2].is_empty() { 0 } else { 3 }, "{op}");
    }
    let out = t.run_with(["check", "migrate-reset", "--env", "production"]);
    assert!(
        out.stderr.contains(
            "!!! IGNORED DBFLOW_ALLOW_MIGRATE_RESET=1: no override unlocks a protected environment"
        ),
        "{}",
        out.stderr
    );
    let journals = out.journals();
    let last = journals.last().expect("refused overrides are journaled");
    assert_eq!(events(last, "guard_override_refused").len(), 2);
}

#[test]
fn a_custom_sandbox_pattern_decides_which_names_are_disposable() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        sandbox_pattern: ^ci_[0-9]+$|_scratch$
        environments:
          local:
            url: postgres://app@localhost/${DB}
            protection: sandbox
        ",
    );
    for (db, ok) in [
        ("ci_42", true),
        ("shop_scratch", true),
        ("shop_test", false),
        ("ci_main", false),
    ] {
        let t = Test::new()
            .file("Workflowfile.yaml", &t.read("Workflowfile.yaml"))
            .env("DB", db);
        let out = t.run_with(["check", "drop-database"]);
        out.assert_code(if ok { 0 } else { 3 });
        if !ok {
            assert!(
                out.stdout
                    .contains("matches the sandbox pattern `^ci_[0-9]+$|_scratch$`"),
                "{}",
                out.stdout
            );
            assert!(out
                .stdout
                .contains("source: sandbox_pattern in the Workflowfile"));
        }
    }
}

#[test]
fn the_workflowfile_says_what_is_forbidden_where() {
    let t = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          preview:
            url: postgres://app@h/preview_1
            protection: shared
          staging:
            url: postgres://app@h/shop_staging
            protection: shared
          production:
            url: postgres://app@h/shop
        guard:
          forbidden:
            shared: [db-push, seed]
          environments:
            production:
              forbidden: [migrate-dev, db-push, migrate-reset, seed, drop-database, restore-in-place, migrate-down]
        ",
    );
    // The level list replaces the default one: seeding staging is forbidden now,
    // `db push` still is, migrate-reset only by the sandbox-name rule.
    let (_, blocking, ..) = decide(&t, "staging", "seed");
    assert_eq!(blocking, ["forbidden"]);
    let (_, blocking, ..) = decide(&t, "staging", "migrate-reset");
    assert_eq!(blocking, ["sandbox-name"]);
    let out = t.run_with(["check", "db-push", "--env", "preview"]);
    out.assert_code(3);
    assert!(
        out.stdout
            .contains("source: guard.forbidden.shared at Workflowfile.yaml:12:13"),
        "{}",
        out.stdout
    );
    // The environment's own list wins over its level's.
    let out = t.run_with(["check", "migrate-down", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stdout
            .contains("source: guard.environments.production at Workflowfile.yaml:15:18"),
        "{}",
        out.stdout
    );
    t.run_with(["check", "deploy", "--env", "production"])
        .assert_code(0);
}

#[test]
fn real_command_lines() {
    let t = project().file(
        "package.json",
        r#"{ "scripts": { "db:reset": "prisma migrate reset --force", "reset": "npm run db:reset" } }"#,
    );
    let cases: &[(&str, &str, i32, &str)] = &[
        (
            "staging",
            "pnpm prisma migrate dev --name add_users",
            3,
            "runs: migrate-dev",
        ),
        (
            "staging",
            "npx prisma db push --accept-data-loss",
            3,
            "runs: db-push, db-push-accept-data-loss",
        ),
        ("local", "yarn prisma db push", 0, "runs: db-push"),
        ("production", "npx prisma migrate deploy", 0, "runs: deploy"),
        ("production", "bunx prisma db seed", 3, "runs: seed"),
        (
            "staging",
            "npm run reset",
            3,
            "runs: migrate-reset, seed (through package.json script `db:reset`)",
        ),
        (
            "staging",
            "DATABASE_URL=postgres://app@h/shop_test npx prisma migrate reset --force --skip-seed",
            3,
            "runs: migrate-reset",
        ),
        (
            "local",
            "DATABASE_URL=postgres://app@h/shop_test npx prisma migrate reset --force --skip-seed",
            0,
            "on `local` (sandbox, database `shop_dev`)",
        ),
        (
            "production",
            "ls -la && echo prisma migrate reset",
            0,
            "performs no operation the guard rules on",
        ),
    ];
    for (env, line, code, needle) in cases {
        let out = t.run_with(["check", line, "--env", env]);
        assert_eq!(
            out.code, *code,
            "{line} on {env}\n{}{}",
            out.stdout, out.stderr
        );
        assert!(
            out.stdout.contains(needle),
            "{line} on {env}: expected `{needle}` in\n{}",
            out.stdout
        );
    }
    // The inline DATABASE_URL names the database the sandbox rule looks at.
    let out = t.run_with([
        "check",
        "DATABASE_URL=postgres://app@h/shop_test npx prisma migrate reset --force --skip-seed",
        "--env",
        "local",
        "--json",
    ]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["decisions"][0]["database"], "shop_test");

    let out = t.run_with(["check", "migrate-rest"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("did you mean `migrate-reset`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn zero_config_protection_comes_from_the_environment_name() {
    // No Workflowfile and no DATABASE_URL: production is protected by its name alone.
    let out = Test::new()
        .env("DATABASE_ENV", "production")
        .run_with(["check", "npx prisma migrate reset"]);
    out.assert_code(3);
    assert!(
        out.stdout.starts_with(
            "BLOCKED: `npx prisma migrate reset` on `production` (protected, database unknown)"
        ),
        "{}",
        out.stdout
    );
    for (var, env, code) in [
        ("NODE_ENV", "staging", 3),
        ("DBFLOW_ENV", "prod", 3),
        ("NODE_ENV", "development", 0),
    ] {
        let out = Test::new()
            .env(var, env)
            .env("DATABASE_URL", "postgres://app@h/app_test")
            .run_with(["check", "prisma migrate reset --skip-seed"]);
        assert_eq!(out.code, code, "{var}={env}\n{}", out.stdout);
    }
}

/// A stand-in for Prisma's CLI that records how it was called.
const FAKE_PRISMA: &str = "#!/bin/sh\necho \"prisma $*\" >> prisma-calls.txt\n";

/// Command lines, where, and whether the guard blocks them. One table drives
/// `dbflow check LINE`, a task whose script is LINE and a Lua step's `dbflow.exec` of
/// LINE (both run with `--yes`), so the answer and the real commands cannot disagree.
/// The package.json is the usual Prisma seed setup; most blocked rows (the issue's
/// `pnpm db:seed` and `migrate reset` among them) answered ALLOWED before.
const COMMAND_LINES: &[(&str, &str, bool)] = &[
    // Bare operation phrases and `prisma` without a launcher.
    ("production", "migrate reset", true),
    ("production", "db push", true),
    ("staging", "migrate dev", true),
    ("production", "db seed", true),
    ("production", "prisma db seed", true),
    (
        "staging",
        "./node_modules/.bin/prisma --schema prisma/schema.prisma migrate reset --force",
        true,
    ),
    // Package-manager scripts resolved through package.json.
    ("production", "pnpm db:seed", true),
    ("production", "npm run db:seed", true),
    ("production", "yarn x", true),
    ("staging", "bun run x", true),
    ("staging", "npm run reset", true),
    ("production", "pnpm setup", true),
    ("production", "pnpm build && pnpm db:seed", true),
    ("production", "pnpm build; npm run db:seed", true),
    ("production", "false || pnpm db:seed", true),
    // The seed command itself, and a script that is not in package.json.
    ("production", "tsx prisma/seed.ts", true),
    ("production", "npx tsx ./prisma/seed.ts", true),
    ("production", "pnpm db:seed-demo", true),
    // Wrapped, quoted, or in one of the project's shell scripts.
    ("production", "sh -c 'pnpm db:seed'", true),
    ("staging", "./scripts/reset-db.sh", true),
    ("staging", "npm run db:wipe", true),
    ("production", "echo 'DROP DATABASE shop' | psql", true),
    (
        "staging",
        "docker compose exec -T app npx prisma migrate reset --force",
        true,
    ),
    // Allowed: nothing recognised, or allowed where it runs.
    ("production", "ls -la && echo prisma migrate reset", false),
    ("production", "pnpm build", false),
    ("local", "db seed", false),
    (
        "production",
        "./node_modules/.bin/prisma migrate deploy",
        false,
    ),
];

#[test]
fn check_and_the_real_command_agree_on_every_command_line() {
    let tasks: String = COMMAND_LINES
        .iter()
        .enumerate()
        .map(|(i, (_, line, _))| {
            format!(
                "  t{i}:\n    script: {}\n",
                serde_json::to_string(line).unwrap()
            )
        })
        .collect();
    // The same lines through Lua's `dbflow.exec` (a shell the step allows).
    let workflows: String = COMMAND_LINES
        .iter()
        .enumerate()
        .map(|(i, (_, line, _))| {
            format!(
                "  l{i}:\n    steps:\n      - exec_line: {{ line: {} }}\n",
                serde_json::to_string(line).unwrap()
            )
        })
        .collect();
    let t = Test::new()
        .file(
            "Workflowfile.yaml",
            &format!(
                "environments:\n  local:\n    url: postgres://app@localhost:5432/shop_sandbox\n    protection: sandbox\n  staging:\n    url: postgres://app@staging:5432/shop_staging\n    protection: shared\n  production:\n    url: postgres://app@prod:5432/shop\n    protection: protected\ntasks:\n{tasks}workflows:\n{workflows}"
            ),
        )
        .file(
            "scripts-lua/steps/exec_line.lua",
            "return {\n  allow_shell = true,\n  params = { line = { type = \"string\", required = true } },\n  run = function(ctx, params)\n    local r = dbflow.exec{ params.line, shell = true }\n    return { code = r.code }\n  end,\n}\n",
        )
        .file(
            "package.json",
            r#"{
              "scripts": {
                "build": "true",
                "db:seed": "tsx prisma/seed.ts",
                "setup": "pnpm build && pnpm run db:seed",
                "reset": "npm run db:reset",
                "db:reset": "prisma migrate reset --force",
                "x": "prisma db push",
                "db:wipe": "bash scripts/reset-db.sh"
              },
              "prisma": { "seed": "tsx prisma/seed.ts" }
            }"#,
        )
        .file("node_modules/.bin/prisma", FAKE_PRISMA)
        .file(
            "scripts/reset-db.sh",
            "#!/bin/sh\nset -e\n./node_modules/.bin/prisma migrate reset --force\n",
        );
    std::process::Command::new("chmod")
        .args(["+x", "node_modules/.bin/prisma", "scripts/reset-db.sh"])
        .current_dir(t.path())
        .status()
        .unwrap();
    let mut wrong = Vec::new();
    for (i, (env, line, blocked)) in COMMAND_LINES.iter().enumerate() {
        let check = t.run_with(["check", line, "--env", env]);
        let want = if *blocked { 3 } else { 0 };
        if check.code != want {
            wrong.push(format!(
                "check `{line}` on {env}: exit {} (want {want})\n{}{}",
                check.code, check.stdout, check.stderr
            ));
        }
        let _ = std::fs::remove_file(t.path().join("prisma-calls.txt"));
        let task = format!("t{i}");
        let run = t.run_with(["run", &task, "--env", env, "--yes"]);
        if (run.code == 3) != *blocked {
            wrong.push(format!(
                "task `{line}` on {env}: exit {} (check said {})\n{}",
                run.code, check.code, run.stderr
            ));
        }
        let _ = std::fs::remove_file(t.path().join("prisma-calls.txt"));
        let lua = t.run_with(["run", &format!("l{i}"), "--env", env, "--yes"]);
        if (lua.code == 3) != *blocked {
            wrong.push(format!(
                "Lua exec `{line}` on {env}: exit {} (check said {})\n{}",
                lua.code, check.code, lua.stderr
            ));
        }
        if *blocked {
            for (what, out) in [("task", &run), ("Lua exec", &lua)] {
                if !out.stderr.contains("blocked by the guard") {
                    wrong.push(format!("{what} `{line}` on {env}: {}", out.stderr));
                }
            }
            if t.exists("prisma-calls.txt") {
                wrong.push(format!("`{line}` on {env} ran Prisma"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert_eq!(t.read("prisma-calls.txt"), "prisma migrate deploy\n");

    // The issue's two cases, as a person sees them.
    let out = t.run_with(["check", "pnpm db:seed", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stdout.starts_with(
            "BLOCKED: `pnpm db:seed` on `production` (protected, database `shop`)\n  runs: seed (through package.json script `db:seed`)\n"
        ),
        "{}",
        out.stdout
    );
    let out = t.run_with(["check", "migrate reset", "--env", "production"]);
    out.assert_code(3);
    assert!(
        out.stdout.contains("runs: migrate-reset, seed"),
        "{}",
        out.stdout
    );
    // A script asked about by its name alone.
    t.run_with(["check", "db:seed", "--env", "production"])
        .assert_code(3);
}
