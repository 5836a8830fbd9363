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
