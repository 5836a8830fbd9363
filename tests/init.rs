//! `dbflow init`: scaffolds a project that validates, never overwrites, and notices an
//! existing Prisma setup.

use crate::support::cli::Test;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` with its content, by relative path.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

const SCAFFOLD: &[&str] = &[
    ".gitignore",
    "Workflowfile.yaml",
    "prisma/migrations/.gitkeep",
    "scripts-lua/README.md",
    "templates/README.md",
    "workflows/backups.yaml",
    "workflows/checks.yaml",
    "workflows/deploy.yaml",
    "workflows/runbooks.yaml",
];

#[test]
fn init_scaffolds_a_project_that_validates() {
    let test = Test::new();
    let output = test.run_with(["init"]);
    output.assert_code(0);
    let files = snapshot(test.path());
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        SCAFFOLD
    );
    for file in SCAFFOLD {
        assert!(
            output.stdout.contains(&format!("created ./{file}")),
            "{file} not announced:\n{}",
            output.stdout
        );
    }
    let workflowfile = test.read("Workflowfile.yaml");
    let folder = test
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        workflowfile.contains(&format!("project: {folder}\n")),
        "the project is named after its folder:\n{workflowfile}"
    );
    // The built-in workflows are copied as shipped.
    assert_eq!(
        test.read("workflows/deploy.yaml"),
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/deploy.yaml")
        )
        .unwrap()
    );

    let validate = test.run_with(["validate"]);
    validate.assert_code(0);
    assert!(
        validate
            .stdout
            .starts_with("✔ Workflowfile.yaml is valid: 3 environments"),
        "{}",
        validate.stdout
    );
    // And it is usable straight away.
    let list = test.run_with(["list"]);
    list.assert_code(0);
    assert!(list.stdout.contains("deploy"), "{}", list.stdout);
    test.run_with(["run", "deploy", "--dry-run"]).assert_code(0);
    test.run_with(["run", "deploy"]).assert_code(0);
}

#[test]
fn init_into_a_named_folder() {
    let test = Test::new();
    test.run_with(["init", "app"]).assert_code(0);
    assert!(test.exists("app/Workflowfile.yaml"));
    assert!(test.exists("app/workflows/deploy.yaml"));
    assert!(!test.exists("Workflowfile.yaml"));
    let validate = test.run_with(["-f", "app/Workflowfile.yaml", "validate"]);
    validate.assert_code(0);
}

#[test]
fn init_again_refuses_and_changes_nothing() {
    let test = Test::new();
    test.run_with(["init"]).assert_code(0);
    // The team has made the file its own since.
    let edited = format!("{}\n# our own notes\n", test.read("Workflowfile.yaml"));
    test.write("Workflowfile.yaml", &edited);
    let before = snapshot(test.path());

    let output = test.run_with(["init"]);
    output.assert_code(2);
    assert!(
        output
            .stderr
            .contains("refusing to overwrite existing files (nothing was written)"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("./Workflowfile.yaml"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("./workflows/deploy.yaml"),
        "{}",
        output.stderr
    );
    assert_eq!(
        snapshot(test.path()),
        before,
        "a refused init changed files"
    );
    assert!(test
        .read("Workflowfile.yaml")
        .ends_with("# our own notes\n"));
}

#[test]
fn init_refuses_when_any_one_target_exists_and_writes_nothing() {
    let test = Test::new().file("templates/README.md", "our own templates");
    let before = snapshot(test.path());
    let output = test.run_with(["init"]);
    output.assert_code(2);
    assert!(
        output.stderr.contains("./templates/README.md"),
        "{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("./Workflowfile.yaml"),
        "only existing files are listed:\n{}",
        output.stderr
    );
    assert_eq!(snapshot(test.path()), before);
    assert!(!test.exists("Workflowfile.yaml"));
}

#[test]
fn init_detects_an_existing_prisma_folder() {
    let test = Test::new()
        .file(
            "prisma/schema.prisma",
            "
            datasource db {
              provider = \"postgresql\"
              url      = env(\"DATABASE_URL\")
            }
            ",
        )
        .file(
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE \"User\" (id serial PRIMARY KEY);",
        )
        .file(
            "prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"",
        );
    let before: BTreeMap<String, Vec<u8>> = snapshot(test.path());

    let output = test.run_with(["init"]);
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("found prisma/: migrations are read from prisma/migrations"),
        "{}",
        output.stdout
    );
    assert!(
        !test.exists("prisma/migrations/.gitkeep"),
        "nothing is added to an existing migrations folder"
    );
    let after = snapshot(test.path());
    for (path, content) in &before {
        assert_eq!(after.get(path), Some(content), "{path} was changed");
    }
    assert!(test
        .read("Workflowfile.yaml")
        .contains("dir: prisma/migrations"));
    // A PostgreSQL project's `local` is Prisma's DATABASE_URL: without it, validate says so.
    let unset = test.run_with(["validate"]);
    unset.assert_code(2);
    assert!(
        unset.stderr.contains("`DATABASE_URL` is not set"),
        "{}",
        unset.stderr
    );
    let test = test.env("DATABASE_URL", "postgres://app@127.0.0.1:1/shop_dev");
    test.run_with(["validate"]).assert_code(0);
}

#[test]
fn a_fresh_folder_without_a_workflowfile_works_zero_config() {
    let test = Test::new()
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/shop_dev")
        .env("NODE_ENV", "production");
    let output = test.run_with(["env", "--json"]);
    output.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(doc["name"], "production");
    assert_eq!(
        doc["protection"], "protected",
        "protection guessed from the name"
    );
    assert_eq!(doc["url"], "postgres://app@127.0.0.1:1/shop_dev");
    assert!(doc["workflowfile"].is_null());
    // The built-in workflows are there.
    let list = test.run_with(["list"]);
    list.assert_code(0);
    assert!(list.stdout.contains("deploy"), "{}", list.stdout);
}
