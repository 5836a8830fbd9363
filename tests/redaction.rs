//! Passwords and secrets never reach a person or a file: a run whose database URL has a
//! password, and whose steps print it, shows `****` on every channel (stdout, stderr,
//! the journal, the dry-run plan, `--json`, `dbflow env`, `dbflow runs`). Each channel
//! is checked on its own, and each check also finds the mask, so that a channel that
//! silently printed nothing could not pass.

use crate::support::cli::{Output, Test};

const PASSWORD: &str = "Sup3rS3cret";
const DATABASE_URL: &str = "postgres://app:Sup3rS3cret@127.0.0.1:1/shop";
const STRIPE_KEY: &str = "sk_live_51HxQeKSecretValue";
const DOTENV_PASSWORD: &str = "Tr0ub4dor-and-3";

const WORKFLOWFILE: &str = "
    environments:
      local:
        url: ${DATABASE_URL}
        vars:
          webhook_token: ${WEBHOOK_TOKEN:-whk_default_value_9}
    tasks:
      show-url:
        script: echo \"task sees $DATABASE_URL\"
    workflows:
      leak:
        steps:
          - name: Echo the URL
            shell: echo \"url=$DATABASE_URL\"
          - name: Echo the secrets
            shell: echo \"key=$STRIPE_SECRET_KEY dotenv=$DB_PASSWORD\"
          - name: Interpolated by dbflow
            shell: echo \"interpolated ${DATABASE_URL} ${STRIPE_SECRET_KEY} ${DB_PASSWORD}\"
          - name: Confirm
            confirm: Deploy to ${DATABASE_URL}?
          - task: show-url
          - name: Fails loudly
            shell: echo \"connection to ${DATABASE_URL} refused\" >&2; exit 2
            on_failure: continue
";

fn project() -> Test {
    Test::new()
        .file("Workflowfile.yaml", WORKFLOWFILE)
        .file(".env", &format!("DB_PASSWORD={DOTENV_PASSWORD}\n"))
        .env("DATABASE_URL", DATABASE_URL)
        .env("STRIPE_SECRET_KEY", STRIPE_KEY)
}

#[track_caller]
fn assert_redacted(channel: &str, text: &str) {
    for secret in [PASSWORD, STRIPE_KEY, DOTENV_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{channel} leaks `{secret}`:\n{text}"
        );
    }
    assert!(
        text.contains("****"),
        "{channel} shows no `****`, so this check proves nothing:\n{text}"
    );
}

#[track_caller]
fn assert_no_secret(channel: &str, text: &str) {
    for secret in [PASSWORD, STRIPE_KEY, DOTENV_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{channel} leaks `{secret}`:\n{text}"
        );
    }
}

fn run(test: &Test, args: &[&str]) -> Output {
    let output = test.run_with(args);
    output.assert_code(0);
    output
}

#[test]
fn a_run_shows_the_password_nowhere() {
    let test = project();
    let output = run(&test, &["run", "leak", "--yes"]);
    // The steps really ran and printed what they were given, masked.
    assert!(
        output
            .stdout
            .contains("url=postgres://app:****@127.0.0.1:1/shop"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("key=**** dotenv=****"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("interpolated postgres://app:****@127.0.0.1:1/shop **** ****"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("task sees postgres://app:****@"),
        "{}",
        output.stdout
    );
    assert_redacted("stdout of `run`", &output.stdout);
    // stderr carries the failure of the last step (on_failure: continue).
    assert!(
        output.stderr.contains("✘ Fails loudly"),
        "{}",
        output.stderr
    );
    assert_no_secret("stderr of `run`", &output.stderr);
}

#[test]
fn the_journal_shows_the_password_nowhere() {
    let test = project();
    let output = run(&test, &["run", "leak", "--yes"]);
    let paths = crate::support::cli::journal_paths(test.path());
    assert_eq!(paths.len(), 1);
    let journal = std::fs::read_to_string(&paths[0]).unwrap();
    assert_redacted("the journal file", &journal);
    let events = output.journal();
    assert_eq!(events[0]["url"], "postgres://app:****@127.0.0.1:1/shop");
    let confirmation = crate::support::cli::events(&events, "confirmation")[0];
    assert_eq!(
        confirmation["question"],
        "Deploy to postgres://app:****@127.0.0.1:1/shop?"
    );

    // Read back by `dbflow runs`, human and JSON.
    assert_redacted("`runs --last`", &run(&test, &["runs", "--last"]).stdout);
    assert_redacted(
        "`runs --last --json`",
        &run(&test, &["runs", "--last", "--json"]).stdout,
    );
    assert_no_secret("`runs --json`", &run(&test, &["runs", "--json"]).stdout);
    // Nothing else under .dbflow/ holds it either (task hashes, …).
    for entry in walk(&test.path().join(".dbflow")) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert_no_secret(&entry.display().to_string(), &text);
    }
}

#[test]
fn the_dry_run_plan_shows_the_password_nowhere() {
    let test = project();
    let output = run(&test, &["run", "leak", "--dry-run"]);
    assert!(
        output
            .stdout
            .contains("$ echo \"interpolated postgres://app:****@127.0.0.1:1/shop **** ****\""),
        "{}",
        output.stdout
    );
    assert_redacted("the plan", &output.stdout);
    assert_no_secret("stderr of the plan", &output.stderr);

    let json = run(&test, &["run", "leak", "--dry-run", "--json"]);
    serde_json::from_str::<serde_json::Value>(&json.stdout).expect("JSON plan");
    assert_redacted("the JSON plan", &json.stdout);
}

#[test]
fn json_output_shows_the_password_nowhere() {
    let test = project();
    let output = run(&test, &["run", "leak", "--yes", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON result");
    assert_eq!(doc["result"], "succeeded");
    assert_no_secret("stdout of `run --json`", &output.stdout);
    // With --json the human output, child output included, moves to stderr.
    assert!(
        output.stderr.contains("url=postgres://app:****@"),
        "{}",
        output.stderr
    );
    assert_redacted("stderr of `run --json`", &output.stderr);
}

#[test]
fn env_shows_the_password_nowhere() {
    let test = project();
    let human = run(&test, &["env"]);
    assert!(
        human
            .stdout
            .contains("url:         postgres://app:****@127.0.0.1:1/shop"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("var webhook_token = ****"),
        "a var named like a token is masked:\n{}",
        human.stdout
    );
    assert_redacted("`env`", &human.stdout);

    let json = run(&test, &["env", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["url"], "postgres://app:****@127.0.0.1:1/shop");
    assert_eq!(doc["database"], "shop");
    assert_redacted("`env --json`", &json.stdout);
}

#[test]
fn a_percent_encoded_password_is_masked_in_both_forms() {
    // p@ss:w0rd/!x, as it must be written in a URL.
    let test = Test::new()
        .env(
            "DATABASE_URL",
            "postgres://app:p%40ss%3Aw0rd%2F%21x@127.0.0.1:1/shop",
        )
        .env("DECODED", "p@ss:w0rd/!x")
        .file(
            "Workflowfile.yaml",
            "
            environments:
              local:
                url: ${DATABASE_URL}
            workflows:
              leak:
                steps:
                  - shell: echo \"raw=$DATABASE_URL decoded=$DECODED\"
            ",
        );
    let output = run(&test, &["run", "leak"]);
    assert!(
        output
            .stdout
            .contains("raw=postgres://app:****@127.0.0.1:1/shop decoded=****"),
        "{}",
        output.stdout
    );
    for text in [&output.stdout, &output.stderr] {
        assert!(!text.contains("p%40ss"), "{text}");
        assert!(!text.contains("p@ss:w0rd"), "{text}");
    }
}

#[test]
fn a_diagnostic_quoting_a_line_with_a_password_masks_it() {
    let test = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          production:
            url: postgres://app:Sup3rS3cret@db.internal:5432/shop
            protection: protected
            provder: aws_rds
        ",
    );
    let output = test.run_with(["validate"]);
    output.assert_code(2);
    assert!(output.stderr.contains("provder"), "{}", output.stderr);
    assert_no_secret("a diagnostic", &output.stderr);

    // The line quoted is the one holding the password.
    let test = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          production:
            url: postgres://app:Sup3rS3cret@db.internal:5432/${DB_NAME}
        ",
    );
    let output = test.run_with(["validate"]);
    output.assert_code(2);
    assert!(
        output
            .stderr
            .contains("url: postgres://app:****@db.internal:5432/${DB_NAME}"),
        "{}",
        output.stderr
    );
    assert_redacted("a diagnostic", &output.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
