//! `dbflow validate`: every broken Workflowfile under `tests/fixtures/bad/<case>/` is
//! rejected with exit code 2 and a message that names file:line:col; the example
//! project's own file is accepted; nothing runs when validation fails.
//!
//! A fixture's first lines say where the error must point: `# expect: FILE:LINE:COL`.
//! A new folder under `tests/fixtures/bad/` becomes a case without touching this file.

use crate::support::cli::Test;
use std::path::{Path, PathBuf};

fn bad_fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

/// The `# expect: FILE:LINE:COL` lines at the top of a fixture.
fn expected_locations(workflowfile: &Path) -> Vec<String> {
    std::fs::read_to_string(workflowfile)
        .unwrap_or_else(|e| panic!("reading {}: {e}", workflowfile.display()))
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| l.trim().to_string())
        .collect()
}

fn check_bad_fixture(dir: &Path) {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let workflowfile = dir.join("Workflowfile.yaml");
    assert!(workflowfile.is_file(), "{name}: no Workflowfile.yaml");
    let expected = expected_locations(&workflowfile);
    assert!(
        !expected.is_empty(),
        "{name}: start the fixture with `# expect: FILE:LINE:COL`"
    );

    let output = Test::in_dir(dir)
        // Variables some fixtures rely on being unset.
        .env_remove("STAGING_DATABASE_URL")
        .env_remove("APP_URL")
        .args(["validate"])
        .run();

    assert_eq!(
        output.code, 2,
        "{name}: expected exit code 2\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.stdout, output.stderr
    );
    assert_eq!(output.stdout, "", "{name}: nothing on stdout");
    assert!(
        output.stderr.starts_with("error: "),
        "{name}: stderr should start with `error: `:\n{}",
        output.stderr
    );
    for location in &expected {
        assert!(
            output.stderr.contains(&format!("--> {location}\n")),
            "{name}: stderr should point at {location}:\n{}",
            output.stderr
        );
    }
    // Only the error the fixture is about: a broken step must not also produce
    // follow-on errors about what it left behind.
    let errors = output.stderr.matches("error: ").count();
    assert_eq!(
        errors,
        expected.len(),
        "{name}: expected {} error(s):\n{}",
        expected.len(),
        output.stderr
    );
    insta::assert_snapshot!(name, output.stderr);
}

#[test]
fn every_bad_workflowfile_is_rejected_with_its_location() {
    let cases = bad_fixtures();
    assert!(
        cases.len() >= 12,
        "expected at least 12 cases under tests/fixtures/bad, found {}",
        cases.len()
    );
    let mut failed = Vec::new();
    for dir in &cases {
        if std::panic::catch_unwind(|| check_bad_fixture(dir)).is_err() {
            failed.push(dir.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    assert!(failed.is_empty(), "failing fixtures: {}", failed.join(", "));
}

#[test]
fn the_example_workflowfile_is_valid() {
    let output = Test::in_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["validate"])
        .run();
    output.assert_code(0);
    assert!(
        output
            .stdout
            .starts_with("✔ Workflowfile.yaml is valid: 3 environments"),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("checked for environment `local`"),
        "{}",
        output.stdout
    );
}

#[test]
fn the_example_is_valid_for_every_environment_when_its_variables_are_set() {
    for env in ["staging", "production", "prod"] {
        Test::in_dir(env!("CARGO_MANIFEST_DIR"))
            .env(
                "STAGING_DATABASE_URL",
                "postgres://app:pw-staging@127.0.0.1:1/shop",
            )
            .env(
                "PRODUCTION_DATABASE_URL",
                "postgres://app:pw-production@127.0.0.1:1/shop",
            )
            .args(["validate", "--env", env])
            .run()
            .assert_code(0);
    }
}

#[test]
fn nothing_runs_when_a_later_step_is_invalid() {
    let test = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          deploy:
            steps:
              - shell: touch ran.txt
              - shell:
                  command: echo second
                  retries: 3
        ",
    );
    for args in [
        &["run", "deploy"][..],
        &["run", "deploy", "--yes"],
        &["run", "deploy", "--dry-run"],
    ] {
        let output = test.run_with(args);
        output.assert_code(2);
        assert!(
            output
                .stderr
                .contains("error: unknown parameter `retries` for step kind `shell`"),
            "{}",
            output.stderr
        );
        assert!(
            output.stderr.contains("--> Workflowfile.yaml:10:11"),
            "{}",
            output.stderr
        );
        assert!(
            !test.exists("ran.txt"),
            "a step ran although validation failed"
        );
        assert!(
            output.journals().is_empty(),
            "no journal is written for a run that never started"
        );
    }
}

#[test]
fn nothing_runs_when_another_workflow_is_invalid() {
    // The broken workflow is not the one asked for: the whole file is still rejected,
    // so a typo anywhere cannot half-run a runbook.
    let test = Test::new().file(
        "Workflowfile.yaml",
        "
        environments:
          local:
            url: sqlite:.dbflow/app.db
        workflows:
          deploy:
            steps:
              - shell: touch ran.txt
          verify:
            steps:
              - sehll: echo verify
        ",
    );
    let output = test.run_with(["run", "deploy"]);
    output.assert_code(2);
    assert!(
        output.stderr.contains("did you mean `shell`?"),
        "{}",
        output.stderr
    );
    assert!(!test.exists("ran.txt"));
}
