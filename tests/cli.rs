//! How dbflow fits the tools around it (issue 17): who ran it, colour, `--json` on every
//! command, progress in CI logs, completions and the manual page.

use crate::support::cli::{events, Test};

/// A project with one workflow that needs no database.
const HELLO: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
    workflows:
      hello:
        steps:
          - name: Say hello
            shell: echo hello
";

/// Every variable the actor may come from, removed so the host cannot leak in.
const ACTOR_VARIABLES: &[&str] = &[
    "DBFLOW_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR_EMAIL",
    "CIRCLE_USERNAME",
    "BITBUCKET_STEP_TRIGGERER_UUID",
    "BUILD_REQUESTEDFOREMAIL",
    "BUILD_REQUESTEDFOR",
    "DRONE_COMMIT_AUTHOR",
    "CI_COMMIT_AUTHOR",
    "BUILD_USER_ID",
    "USER",
    "USERNAME",
];

fn bare() -> Test {
    ACTOR_VARIABLES
        .iter()
        .fold(Test::new(), |t, v| t.env_remove(v))
        .file("Workflowfile.yaml", HELLO)
}

fn journal_user(test: &Test) -> String {
    let out = test.run_with(["run", "hello"]);
    out.assert_code(0);
    let journal = out.journals().pop().expect("a journal");
    events(&journal, "run_start")[0]["user"]
        .as_str()
        .expect("run_start has a user")
        .to_string()
}

#[test]
fn actor_without_user_is_the_os_account_not_unknown() {
    let expected = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    assert_eq!(journal_user(&bare()), expected);
}

#[test]
fn actor_comes_from_dbflow_actor_then_the_ci() {
    assert_eq!(
        journal_user(&bare().env("GITLAB_USER_LOGIN", "gitlab-ann")),
        "gitlab-ann"
    );
    assert_eq!(
        journal_user(&bare().env("GITHUB_ACTOR", "octocat")),
        "octocat"
    );
    assert_eq!(
        journal_user(
            &bare()
                .env("GITHUB_ACTOR", "octocat")
                .env("DBFLOW_ACTOR", "release-bot")
        ),
        "release-bot"
    );
}

// --- colour ------------------------------------------------------------------------------

/// A project where `dbflow check` answers BLOCKED (coloured red when colour is on).
const GUARDED: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
      production:
        url: sqlite:.dbflow/prod.db
        protection: protected
";

const ESC: char = '\u{1b}';

fn blocked(test: &Test, extra: &[&str]) -> crate::support::cli::Output {
    let mut args = vec!["check", "npx prisma migrate reset", "--env", "production"];
    args.extend_from_slice(extra);
    let out = test.run_with(args);
    out.assert_code(3);
    assert!(out.all().contains("BLOCKED"), "{}", out.all());
    out
}

fn colour_test() -> Test {
    ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR"]
        .iter()
        .fold(Test::new(), |t, v| t.env_remove(v))
        .file("Workflowfile.yaml", GUARDED)
}

#[test]
fn a_pipe_gets_no_colour_by_default_and_color_always_colours_it() {
    let test = colour_test();
    let out = blocked(&test, &[]);
    assert!(
        !out.all().contains(ESC),
        "escape codes on a pipe:\n{}",
        out.all()
    );
    let out = blocked(&test, &["--color", "never"]);
    assert!(!out.all().contains(ESC));
    let out = blocked(&test, &["--color", "always"]);
    assert!(out.stdout.contains(&format!("{ESC}[")), "{:?}", out.stdout);
    // The flag is explicit, so it wins over the variable.
    let out = blocked(&test.env("NO_COLOR", "1"), &["--color", "always"]);
    assert!(out.stdout.contains(ESC));
}

#[test]
fn no_color_beats_clicolor_force_and_clicolor_force_colours_a_pipe() {
    let out = blocked(&colour_test().env("CLICOLOR_FORCE", "1"), &[]);
    assert!(out.stdout.contains(ESC), "{:?}", out.stdout);
    let out = blocked(
        &colour_test()
            .env("CLICOLOR_FORCE", "1")
            .env("NO_COLOR", "1"),
        &[],
    );
    assert!(!out.all().contains(ESC), "{:?}", out.all());
}

/// In a real terminal (a pty from util-linux `script`), colour is on unless NO_COLOR.
#[test]
fn a_terminal_is_coloured_unless_no_color() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "util-linux `script` is needed (scripts/prereqs.sh installs it)"
        );
        eprintln!("skipping: util-linux `script` is not installed");
        return;
    }
    let test = colour_test();
    let bin = env!("CARGO_BIN_EXE_dbflow");
    let in_pty = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args([
            "-qec",
            &format!("{bin} check 'npx prisma migrate reset' --env production"),
            "/dev/null",
        ])
        .current_dir(test.path())
        .env("TERM", "xterm-256color")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("running script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = in_pty(false);
    assert!(
        coloured.contains("BLOCKED") && coloured.contains(ESC),
        "{coloured:?}"
    );
    let plain = in_pty(true);
    assert!(
        plain.contains("BLOCKED") && !plain.contains(ESC),
        "{plain:?}"
    );
}

// --- --json --------------------------------------------------------------------------------

/// One project for the `--json` tests: `staging` points at a port nothing listens on.
const UNREACHABLE: &str = "
    environments:
      local:
        url: sqlite:.dbflow/app.db
      staging:
        url: postgres://app:hunter2secret@127.0.0.1:1/app
    workflows:
      release:
        steps:
          - name: Back up
            backup: {}
          - name: Deploy
            deploy: {}
";

/// Parses stdout as exactly one JSON document (trailing text fails), and checks an
/// error document's code against the exit code.
#[track_caller]
fn one_document(out: &crate::support::cli::Output, what: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`{what}`: stdout is not one JSON document ({e}):\n{}\n--- stderr ---\n{}",
            out.stdout, out.stderr
        )
    });
    if let Some(error) = doc.get("error").filter(|e| e.is_object()) {
        assert_eq!(
            error["code"], out.code,
            "`{what}`: code differs from the exit code: {doc}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "`{what}`: {doc}"
        );
    }
    assert!(
        !out.all().contains("hunter2secret"),
        "`{what}` leaked the password"
    );
    doc
}

/// The command lines that reach a database, and the others.
const COMMANDS: &[&[&str]] = &[
    &["list"],
    &["run", "release", "--yes"],
    &["env"],
    &["validate"],
    &["runs"],
    &["docs", "--check"],
    &["migrate", "status"],
    &["migrate", "deploy", "--yes"],
    &["migrate", "resolve", "--applied", "x", "--yes"],
    &["migrate", "down", "x", "--yes"],
    &["migrate", "new", "x"],
    &["backup", "create"],
    &["backup", "list"],
    &["backup", "verify", "x"],
    &["backup", "prune", "--dry-run"],
    &["backup", "pin", "x"],
    &["backup", "unpin", "x"],
    &["restore", "latest"],
    &["restore", "list"],
    &["restore", "drop", "x_restore_1"],
    &["rollback", "--backup", "x"],
    &["drill"],
    &["check", "deploy"],
    &["lint"],
    &["scan"],
    &["hook", "install"],
    &["completions", "bash"],
    &["man"],
];

#[test]
fn every_command_prints_one_json_document_on_a_bad_argument() {
    let test = Test::new().file("Workflowfile.yaml", UNREACHABLE);
    for command in COMMANDS {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--json", "--no-such-flag"]);
        let out = test.run_with(&args);
        let what = args.join(" ");
        out.assert_code(2);
        let doc = one_document(&out, &what);
        assert!(
            doc["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--no-such-flag"),
            "{what}: {doc}"
        );
    }
}

#[test]
fn every_command_prints_one_json_document_against_an_unreachable_database() {
    let test = Test::new().file("Workflowfile.yaml", UNREACHABLE);
    for command in COMMANDS {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--json", "--env", "staging"]);
        let out = test.run_with(&args);
        one_document(&out, &args.join(" "));
    }
    // Failures that are not errors of the command line keep their own exit code.
    let out = test.run_with(["migrate", "status", "--json", "--env", "staging"]);
    assert_eq!(one_document(&out, "status")["error"]["code"], 1);
    let out = test.run_with(["init", "--json"]);
    one_document(&out, "init");
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON")
}

#[test]
fn json_error_shapes() {
    let bad = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
            protections: protected
        ",
    );
    let out = bad.run_with(["validate", "--json"]);
    out.assert_code(2);
    insta::assert_snapshot!("json_config_error", pretty(&one_document(&out, "validate")));

    let test = Test::new().file("Workflowfile.yaml", UNREACHABLE);
    let out = test.run_with(["migrate", "statu", "--json"]);
    out.assert_code(2);
    insta::assert_snapshot!(
        "json_usage_error",
        pretty(&one_document(&out, "migrate statu"))
    );

    let out = test.run_with(["migrate", "status", "--json", "--env", "staging"]);
    out.assert_code(1);
    insta::assert_snapshot!(
        "json_unreachable",
        pretty(&one_document(&out, "migrate status"))
    );
}

#[test]
fn migrate_status_json_has_counts() {
    let test = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: sqlite:.dbflow/app.db
            ",
        )
        .file(
            "prisma/migrations/20250101000000_init/migration.sql",
            "CREATE TABLE a (id int);\n",
        )
        .file(
            "prisma/migrations/20250102000000_more/migration.sql",
            "CREATE TABLE b (id int);\n",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"sqlite\"\n",
        );
    test.run_with(["migrate", "deploy", "--to", "20250101000000_init"])
        .assert_code(0);
    let out = test.run_with(["migrate", "status", "--json"]);
    out.assert_code(4);
    let doc = one_document(&out, "migrate status");
    insta::assert_snapshot!("json_migrate_status_counts", pretty(&doc["counts"]));
    assert_eq!(doc["clean"], false);
}

// --- progress in logs ----------------------------------------------------------------------

/// The done-when of issue 17: a pgbench scale-20 database (~300 MB) backed up with output
/// piped (not a terminal) prints progress lines with percentages and ends with the total,
/// never a carriage return. With the default interval (10 s) the lines come from the 10 %
/// steps: progress is measured on what pg_dump reads (pg_stat_progress_copy) against the
/// tables' size, so the archive's compression (256 MiB of tables, a 5 MiB dump) does not
/// flatten it.
#[test]
fn backup_progress_in_a_log_has_percentages_and_the_total() {
    let Some(db) = crate::support::pg::database("backup_progress_in_a_log") else {
        return;
    };
    let bin = crate::support::pg::bin_dir().expect("PostgreSQL binaries");
    let pgbench = std::process::Command::new(bin.join("pgbench"))
        .args(["-i", "-s", "20", "-q", "--no-vacuum", &db.url])
        .output()
        .expect("running pgbench");
    assert!(
        pgbench.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&pgbench.stderr)
    );
    let test = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              staging:
                url: ${DATABASE_URL}
            ",
        )
        .env("DATABASE_URL", &db.url)
        .env_remove("DBFLOW_PROGRESS_INTERVAL")
        .env("PATH", &crate::backup::pg_path());
    let started = std::time::Instant::now();
    let out = test.run_with(["backup", "create", "--env", "staging"]);
    out.assert_code(0);
    let all = out.all();
    assert!(!all.contains('\r'), "a carriage return in a log:\n{all:?}");
    let progress: Vec<&str> = all
        .lines()
        .filter(|l| l.trim_start().starts_with("pg_dump:"))
        .collect();
    let with_percent = progress.iter().filter(|l| l.contains("%)")).count();
    // Progress is sampled every 250 ms: a quiet machine dumps this database in well under
    // a second (two samples seen in CI), so ask for one, not a count that depends on speed.
    assert!(
        with_percent >= 1,
        "expected a progress line with a percentage (backup took {:?}):\n{all}",
        started.elapsed()
    );
    assert!(progress[0].contains("pg_dump: started, about"), "{all}");
    let last = progress.last().expect("progress lines");
    assert!(
        last.contains("pg_dump: done, ") && last.contains(" in ") && last.contains("/s)"),
        "the last progress line should give the total and the rate:\n{all}"
    );
}

// --- completions, manual, examples ---------------------------------------------------------

#[test]
fn bash_completion_loads_and_completes_project_names() {
    let test = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
          staging:
            url: sqlite:.dbflow/staging.db
        workflows:
          release:
            steps:
              - name: Say hello
                shell: echo hello
        ",
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_dbflow"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The done-when line, verbatim, then a completion as bash would ask for it.
    let script = r#"
        set -e
        source <(dbflow completions bash)
        complete -p dbflow
        COMP_WORDS=(dbflow run re); COMP_CWORD=2; _dbflow_names dbflow re run
        echo "run: ${COMPREPLY[*]}"
        COMP_WORDS=(dbflow migrate status --env st); COMP_CWORD=4; _dbflow_names dbflow st --env
        echo "env: ${COMPREPLY[*]}"
        COMP_WORDS=(dbflow mig); COMP_CWORD=1; _dbflow_names dbflow mig dbflow
        echo "sub: ${COMPREPLY[*]}"
    "#;
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(test.path())
        .env("PATH", path)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bash failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("-F _dbflow_names dbflow"), "{stdout}");
    assert!(stdout.contains("run: release"), "{stdout}");
    assert!(stdout.contains("env: staging"), "{stdout}");
    assert!(stdout.contains("sub: migrate"), "{stdout}");
    // The done-when command itself.
    let ok = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("source <({} completions bash)", bin.display()),
        ])
        .status()
        .expect("bash");
    assert!(ok.success());
}

#[test]
fn completions_for_every_shell() {
    let test = Test::new();
    for (shell, marker) in [
        ("bash", "_dbflow()"),
        ("zsh", "#compdef dbflow"),
        ("fish", "complete -c dbflow"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = test.run_with(["completions", shell]);
        out.assert_code(0);
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
    }
    // zsh completes environments and workflows from the Workflowfile too (no zsh here to
    // load it: the helpers exist and replace clap's `_default` for those values).
    let zsh = test.run_with(["completions", "zsh"]).stdout;
    assert!(
        zsh.starts_with("#compdef dbflow\n\n_dbflow_environments() {"),
        "{zsh}"
    );
    assert!(zsh.contains(":ENV:_dbflow_environments'") && !zsh.contains(":ENV:_default'"));
    assert!(zsh.contains("Workflow or task name:_dbflow_targets'"));
    let out = test.run_with(["completions", "tcsh"]);
    out.assert_code(2);
}

#[test]
fn man_page_renders_with_man_l() {
    let test = Test::new();
    let out = test.run_with(["man"]);
    out.assert_code(0);
    assert!(
        out.stdout.starts_with(".ie") || out.stdout.contains(".TH dbflow"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    test.write("dbflow.1", &out.stdout);
    let page = test.path().join("dbflow.1");
    let rendered = if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        std::process::Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&page)
            .env("MANWIDTH", "100")
            .output()
            .expect("man -l")
    } else {
        eprintln!("`man` is not installed: rendering with groff instead");
        std::process::Command::new("groff")
            .args(["-man", "-Tutf8"])
            .arg(&page)
            .output()
            .expect("groff")
    };
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    for needle in ["NAME", "dbflow", "SYNOPSIS", "completions", "migrate"] {
        assert!(
            text.contains(needle),
            "{needle} missing from the rendered page:\n{text}"
        );
    }
    // One page per command.
    let out = test.run_with(["man", "--out", "man1"]);
    out.assert_code(0);
    assert!(test.exists("man1/dbflow.1") && test.exists("man1/dbflow-migrate-status.1"));
}

#[test]
fn main_commands_help_ends_with_examples() {
    let test = Test::new();
    for command in [
        &["run"][..],
        &["migrate"],
        &["backup"],
        &["restore"],
        &["rollback"],
        &["drill"],
        &["check"],
        &["lint"],
        &["completions"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = test.run_with(&args);
        out.assert_code(0);
        let tail: Vec<&str> = out.stdout.trim_end().lines().rev().take(4).collect();
        let examples = tail
            .iter()
            .filter(|l| l.trim_start().starts_with("dbflow ") || l.contains("<(dbflow"))
            .count();
        assert!(
            examples >= 2,
            "{command:?}: no examples at the end:\n{}",
            out.stdout
        );
        assert!(out.stdout.contains("\nExamples:\n"), "{}", out.stdout);
    }
}

// --- compose overrides, unattended ---------------------------------------------------------

/// Compose's interpolation of a value: `${NAME}`, `${NAME:-default}` from `host`, `$$` → `$`.
fn compose_interpolate(text: &str, host: &std::collections::HashMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').expect("closing brace");
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match host.get(name).filter(|v| !v.is_empty()) {
                Some(v) => out.push_str(v),
                None => out.push_str(default.unwrap_or("")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Runs a generated override's `app` service the way `docker compose up` would, without
/// a terminal: its `command:` in `sh`, with only its `environment:` (interpolated from
/// `host`), dbflow and the PostgreSQL tools on PATH.
fn compose_up(
    test: &Test,
    env: &str,
    host: &std::collections::HashMap<&str, String>,
) -> (i32, String) {
    let file = test.read(&format!("docs/generated/docker-compose.{env}.yml"));
    let doc: serde_json::Value = serde_saphyr::from_str(&file).expect("compose YAML");
    let app = &doc["services"]["app"];
    let command: Vec<String> = app["command"]
        .as_array()
        .expect("command is a list")
        .iter()
        .map(|c| compose_interpolate(c.as_str().unwrap(), host))
        .collect();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_dbflow"));
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(test.path())
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                crate::backup::pg_path()
            ),
        )
        .stdin(std::process::Stdio::null());
    for (key, value) in app["environment"].as_object().expect("environment map") {
        cmd.env(key, compose_interpolate(value.as_str().unwrap(), host));
    }
    let out = cmd.output().expect("running the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn compose_overrides_run_unattended_with_pending_migrations() {
    let (Some(staging), Some(production), Some(opt_in)) = (
        crate::support::pg::database("compose_staging"),
        crate::support::pg::database("compose_production"),
        crate::support::pg::database("compose_opt_in"),
    ) else {
        return;
    };
    let test = Test::new()
        .file(
            "Workflowfile.yaml",
            "
            environments:
              staging:
                url: ${STAGING_DATABASE_URL}
                protection: shared
                vars: { app_command: echo APP STARTED }
              production:
                url: ${PRODUCTION_DATABASE_URL}
                protection: protected
                vars: { app_command: echo APP STARTED }
              canary:
                url: ${CANARY_DATABASE_URL}
                protection: protected
                vars: { app_command: echo APP STARTED, compose_migrations: deploy }
            ",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        )
        .file(
            "prisma/migrations/20250101000000_init/migration.sql",
            "CREATE TABLE account (id int PRIMARY KEY);\n",
        )
        .file(
            "prisma/migrations/20250102000000_more/migration.sql",
            "ALTER TABLE account ADD COLUMN name text;\n",
        );
    test.run_with(["docs"]).assert_code(0);
    for env in ["production", "canary"] {
        let text = test.read(&format!("docs/generated/docker-compose.{env}.yml"));
        assert!(
            text.contains("# migrations: "),
            "the decision is written down:\n{text}"
        );
    }
    let mut host = std::collections::HashMap::new();
    host.insert("STAGING_DATABASE_URL", staging.url.clone());
    host.insert("PRODUCTION_DATABASE_URL", production.url.clone());
    host.insert("CANARY_DATABASE_URL", opt_in.url.clone());
    let applied = |db: &crate::support::pg::TestDb| {
        db.psql("SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'") == "1"
            && db.psql("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
                == "2"
    };

    // shared: deploys, then starts.
    let (code, out) = compose_up(&test, "staging", &host);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APP STARTED") && applied(&staging), "{out}");

    // protected, default `check`: refuses to start, says what to do, changes nothing.
    let (code, out) = compose_up(&test, "production", &host);
    assert_eq!(code, 4, "{out}");
    assert!(!out.contains("APP STARTED"), "{out}");
    assert!(
        out.contains("dbflow run deploy --env production --yes"),
        "{out}"
    );
    assert!(!applied(&production));

    // protected, `deploy` without the opt-in variable: the same refusal.
    let (code, out) = compose_up(&test, "canary", &host);
    assert_eq!(code, 4, "{out}");
    assert!(!out.contains("APP STARTED") && !applied(&opt_in), "{out}");

    // ... and with DBFLOW_DEPLOY_ON_START=yes: deploys, then starts.
    host.insert("DBFLOW_DEPLOY_ON_START", "yes".into());
    let (code, out) = compose_up(&test, "canary", &host);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APP STARTED") && applied(&opt_in), "{out}");

    // Once the pipeline deployed, the protected app starts.
    let deploy = std::process::Command::new(env!("CARGO_BIN_EXE_dbflow"))
        .args(["migrate", "deploy", "--env", "production", "--yes"])
        .current_dir(test.path())
        .env("PRODUCTION_DATABASE_URL", &production.url)
        .env("PATH", crate::backup::pg_path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("dbflow migrate deploy");
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let (code, out) = compose_up(&test, "production", &host);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("APP STARTED"), "{out}");
}

// --- Dockerfile ------------------------------------------------------------------------------

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// No Docker engine here: the Dockerfile is parsed, each RUN is checked by `sh -n`, the
/// stages and what the runtime image holds are checked against the project (Rust version,
/// Cargo.lock, the binary's name and entry point).
#[test]
fn dockerfile_is_multi_stage_and_consistent_with_the_project() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let instructions = dockerfile_instructions(&text);
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"));
    assert!(froms[1].starts_with("debian:") && froms[1].contains("-slim AS runtime"));
    for (op, args) in &instructions {
        if op == "RUN" {
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", args])
                .status()
                .unwrap();
            assert!(status.success(), "not valid sh: {args}");
        }
    }
    let run = |needle: &str| {
        instructions
            .iter()
            .any(|(op, a)| op == "RUN" && a.contains(needle))
    };
    assert!(run("cargo build --release --locked --bin dbflow"));
    assert!(
        root.join("Cargo.lock").exists(),
        "--locked needs Cargo.lock"
    );
    assert!(run("postgresql-client-${PG_CLIENT}"));
    let arg = |name: &str| {
        instructions
            .iter()
            .find_map(|(op, a)| (op == "ARG").then(|| a.strip_prefix(&format!("{name}=")))?)
            .unwrap_or_else(|| panic!("ARG {name}"))
            .to_string()
    };
    // The image's Rust must build the crate: at least the package's rust-version.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let needed = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(version(&arg("RUST_VERSION")) >= version(needed));
    // pg_dump must be at least the server's major: the client is not older than the
    // PostgreSQL the tests run against.
    let client: u32 = arg("PG_CLIENT").parse().unwrap();
    if let Some(bin) = crate::support::pg::bin_dir() {
        let server: u32 = bin
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            client >= server,
            "PG_CLIENT {client} < test server {server}"
        );
    }
    assert!(instructions
        .iter()
        .any(|(op, a)| op == "COPY"
            && a == "--from=build /usr/local/bin/dbflow /usr/local/bin/dbflow"));
    assert!(instructions
        .iter()
        .any(|(op, a)| op == "ENTRYPOINT" && a == "[\"dbflow\"]"));
    assert!(instructions
        .iter()
        .any(|(op, a)| op == "USER" && a != "root"));
    // What the build stage runs last, run here: the binary answers --version.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbflow"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("dbflow "));
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "the build context skips target/"
    );
}

// --- CI recipes (docs/ci.md, action.yml) -------------------------------------------------

/// The YAML block after `<!-- ci-recipe: NAME -->` in docs/ci.md.
fn ci_recipe(name: &str) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docs/ci.md")).unwrap();
    let marker = format!("<!-- ci-recipe: {name} -->\n```yaml\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} recipe"))
        + marker.len();
    let end = start + text[start..].find("\n```").unwrap();
    serde_saphyr::from_str(&text[start..end]).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Replaces GitHub's `${{ expr }}` with the documented values (`||` takes the first set).
/// An expression the test does not know fails it: a recipe must use only what is listed.
fn github_expr(text: &str, values: &std::collections::HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("}}").expect("closing }}") + i;
        let expr = rest[i + 3..end].trim();
        let value = expr
            .split("||")
            .map(str::trim)
            .find_map(|e| values.get(e).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| panic!("unknown expression `{expr}`"));
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn string_map(value: &serde_json::Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `script` the way the CI does (bash, -e, pipefail), in `dir`, with `env` only
/// (plus PATH and HOME); panics with the output when it fails.
fn ci_shell(dir: &std::path::Path, script: &str, env: &[(String, String)], what: &str) -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_dbflow"));
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                crate::backup::pg_path()
            ),
        )
        .env("HOME", dir)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n$ {script}\n{text}",
        out.status
    );
    text
}

/// A project as the recipes expect it: built-in workflows, staging and a protected
/// production deployable from CI only, a drill server, the metrics textfile; a git
/// repository whose `main` has one migration and whose HEAD adds a second.
fn ci_project(staging: &str, production: &str, drill: &str) -> Test {
    let test = Test::new();
    test.run_with(["init"]).assert_code(0);
    test.write(
        "Workflowfile.yaml",
        "
        include:
          - workflows/*.yaml
        default_env: local
        metrics: { textfile: metrics/dbflow.prom }
        drill:
          server_url: ${DRILL_SERVER_URL}
        environments:
          local:
            url: sqlite:.dbflow/local.db
            protection: sandbox
          staging:
            url: ${STAGING_DATABASE_URL}
            protection: shared
          production:
            url: ${PRODUCTION_DATABASE_URL}
            protection: protected
            require_applied_on: staging
            deploy_from: ci
        ",
    );
    test.write(
        "prisma/migrations/migration_lock.toml",
        "provider = \"postgresql\"\n",
    );
    test.write(
        "prisma/migrations/20250101000000_init/migration.sql",
        "CREATE TABLE account (id bigint PRIMARY KEY, email text NOT NULL);\n",
    );
    test.write(".gitignore", ".dbflow/\nbackups/\nmetrics/\n");
    test.run_with(["docs"]).assert_code(0);
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(test.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
    test.write(
        "prisma/migrations/20250102000000_add_name/migration.sql",
        "ALTER TABLE account ADD COLUMN name text;\n",
    );
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "add name"]);
    let _ = (staging, production, drill);
    test
}

fn applied(url: &str) -> String {
    crate::backup::psql(
        url,
        "SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL",
    )
}

#[test]
fn ci_recipes_run_green() {
    let (Some(staging), Some(production), Some(gl_staging), Some(gl_production)) = (
        crate::support::pg::database("ci_gh_staging"),
        crate::support::pg::database("ci_gh_production"),
        crate::support::pg::database("ci_gl_staging"),
        crate::support::pg::database("ci_gl_production"),
    ) else {
        return;
    };
    let drill = crate::support::pg::second_server().expect("a second server for drills");
    let local_major = crate::support::pg::bin_dir()
        .and_then(|b| b.parent()?.file_name()?.to_str()?.parse::<u32>().ok())
        .map(|m| m.to_string())
        .unwrap_or_default();

    // ---- GitHub Actions: every job in turn, as the events would run them.
    let test = ci_project(&staging.url, &production.url, &drill);
    let workflow = ci_recipe("github");
    let action: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut values: std::collections::HashMap<String, String> = [
        ("secrets.STAGING_DATABASE_URL", staging.url.clone()),
        ("secrets.PRODUCTION_DATABASE_URL", production.url.clone()),
        ("secrets.DRILL_SERVER_URL", drill.clone()),
        ("github.base_ref", "main".into()),
        ("github.actor", "octo-tester".into()),
        ("github.triggering_actor", "octo-tester".into()),
        ("github.action_repository", "OWNER/dbflow".into()),
        ("github.action_ref", "v0.1.0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let github_env = |dir: &std::path::Path| -> Vec<(String, String)> {
        vec![
            ("CI".into(), "true".into()),
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("GITHUB_ACTOR".into(), "octo-tester".into()),
            (
                "GITHUB_OUTPUT".into(),
                dir.join(".github_output").display().to_string(),
            ),
            (
                "GITHUB_PATH".into(),
                dir.join(".github_path").display().to_string(),
            ),
            (
                "RUNNER_TOOL_CACHE".into(),
                dir.join(".tools").display().to_string(),
            ),
        ]
    };
    let jobs = workflow["jobs"].as_object().expect("jobs");
    assert_eq!(
        jobs.keys().collect::<Vec<_>>(),
        ["lint", "deploy-staging", "deploy-production", "nightly"]
    );
    let mut ran = 0;
    for (job_name, job) in jobs {
        let mut job_env = github_env(test.path());
        for (k, v) in string_map(&job["env"]) {
            job_env.push((k, github_expr(&v, &values)));
        }
        for step in job["steps"].as_array().unwrap() {
            let uses = step["uses"].as_str().unwrap_or("");
            if uses.ends_with("/dbflow@v0.1.0") {
                // The composite action: its own steps, with the step's inputs.
                for (input, spec) in action["inputs"].as_object().unwrap() {
                    let given = step["with"][input.as_str()].as_str().map(str::to_string);
                    let mut value =
                        given.unwrap_or_else(|| spec["default"].as_str().unwrap().to_string());
                    if input == "postgresql-client" && !value.is_empty() {
                        // The runner's client is provisioned here by the test harness.
                        value = local_major.clone();
                    }
                    values.insert(format!("inputs.{input}"), value);
                }
                for astep in action["runs"]["steps"].as_array().unwrap() {
                    if let Some(cond) = astep["if"].as_str() {
                        let input = cond
                            .trim_start_matches("inputs.")
                            .split_whitespace()
                            .next()
                            .unwrap();
                        assert!(cond.ends_with("!= ''"), "{cond}");
                        if values[&format!("inputs.{input}")].is_empty() {
                            continue;
                        }
                    }
                    let mut env = job_env.clone();
                    for (k, v) in string_map(&astep["env"]) {
                        env.push((k, github_expr(&v, &values)));
                    }
                    let script = github_expr(astep["run"].as_str().unwrap(), &values);
                    ci_shell(
                        test.path(),
                        &script,
                        &env,
                        &format!("{job_name}: action step"),
                    );
                    ran += 1;
                }
                continue;
            }
            if uses == "actions/upload-artifact@v4" {
                for path in step["with"]["path"].as_str().unwrap().split_whitespace() {
                    assert!(
                        test.path().join(path).exists(),
                        "{job_name}: artifact {path} missing"
                    );
                }
                continue;
            }
            if !uses.is_empty() {
                assert_eq!(uses, "actions/checkout@v4", "{job_name}: unexpected action");
                continue;
            }
            let mut env = job_env.clone();
            for (k, v) in string_map(&step["env"]) {
                env.push((k, github_expr(&v, &values)));
            }
            let script = github_expr(step["run"].as_str().expect("run"), &values);
            ci_shell(test.path(), &script, &env, job_name);
            ran += 1;
        }
    }
    assert!(ran >= 10, "only {ran} commands ran");
    assert_eq!(applied(&staging.url), "2");
    assert_eq!(applied(&production.url), "2");
    assert!(test.read("metrics/dbflow.prom").contains("dbflow_"));
    let deploys: Vec<_> = test
        .journals()
        .into_iter()
        .filter(|j| j[0]["target"] == "deploy" && j[0]["env"] == "production")
        .collect();
    assert_eq!(deploys.len(), 1);
    assert_eq!(
        deploys[0][0]["user"], "octo-tester",
        "the journal names the CI's actor"
    );

    // ---- GitLab CI: each job's script in one shell, with the CI/CD variables.
    let test = ci_project(&gl_staging.url, &gl_production.url, &drill);
    let pipeline = ci_recipe("gitlab");
    let variables: Vec<(String, String)> = [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("GITLAB_USER_LOGIN", "gl-tester"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([
        ("STAGING_DATABASE_URL".to_string(), gl_staging.url.clone()),
        (
            "PRODUCTION_DATABASE_URL".to_string(),
            gl_production.url.clone(),
        ),
        ("DRILL_SERVER_URL".to_string(), drill.clone()),
    ])
    .collect();
    let mut jobs = 0;
    for (name, job) in pipeline.as_object().unwrap() {
        let Some(script) = job["script"].as_array() else {
            continue;
        };
        let lines: Vec<&str> = script.iter().map(|l| l.as_str().unwrap()).collect();
        ci_shell(test.path(), &lines.join("\n"), &variables, name);
        for path in job["artifacts"]["paths"].as_array().into_iter().flatten() {
            let path = path.as_str().unwrap();
            if path != "lint.json" || lines.iter().any(|l| l.contains("lint.json")) {
                assert!(
                    test.path().join(path).exists(),
                    "{name}: artifact {path} missing"
                );
            }
        }
        jobs += 1;
    }
    assert_eq!(jobs, 4);
    assert_eq!(applied(&gl_production.url), "2");
    let deploy = test
        .journals()
        .into_iter()
        .find(|j| j[0]["target"] == "deploy" && j[0]["env"] == "production")
        .expect("a production deploy journal");
    assert_eq!(deploy[0]["user"], "gl-tester");
}
