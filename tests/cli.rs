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
    assert!(
        with_percent >= 3,
        "expected at least 3 progress lines with a percentage (backup took {:?}):\n{all}",
        started.elapsed()
    );
    assert!(progress[0].contains("pg_dump: started, about"), "{all}");
    let last = progress.last().expect("progress lines");
    assert!(
        last.contains("pg_dump: done, ") && last.contains(" in ") && last.contains("/s)"),
        "the last progress line should give the total and the rate:\n{all}"
    );
}
