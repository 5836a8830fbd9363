//! The pre-commit hook in a real git repository: `dbflow hook install` keeps an existing
//! hook and chains it, a commit staging a script with `DROP TABLE` is blocked, the same
//! commit passes with `git commit --no-verify`, and later commits are judged on the lines
//! they change. Also `dbflow scan` on paths.

use crate::support::cli::Test;
use std::path::Path;
use std::process::{Command, Output};

/// Runs git in `dir`, isolated from the host's configuration.
fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("DATABASE_URL")
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn commits(dir: &Path) -> usize {
    let out = git(dir, &["rev-list", "--count", "HEAD"]);
    if !out.status.success() {
        return 0;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn the_hook_blocks_a_dangerous_commit_and_no_verify_bypasses_it() {
    let t = Test::new();
    let dir = t.path().to_path_buf();
    ok(&dir, &["init", "--quiet", "--initial-branch=main"]);
    ok(&dir, &["config", "user.name", "Test User"]);
    ok(&dir, &["config", "user.email", "test@example.com"]);
    // A hook the team already had: it must keep running.
    t.write(
        ".git/hooks/pre-commit",
        "#!/bin/sh\necho ran >> \"$(git rev-parse --show-toplevel)/existing-hook-ran\"\n",
    );
    std::process::Command::new("chmod")
        .args(["+x", ".git/hooks/pre-commit"])
        .current_dir(&dir)
        .status()
        .unwrap();

    let out = t.run_with(["hook", "install"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .starts_with("✔ installed .git/hooks/pre-commit: runs `"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("the previous pre-commit hook is kept as .git/hooks/pre-commit.dbflow-chained and runs first"),
        "{}",
        out.stdout
    );
    let hook = t.read(".git/hooks/pre-commit");
    let binary = Path::new(env!("CARGO_BIN_EXE_dbflow"))
        .canonicalize()
        .unwrap();
    assert!(
        hook.contains(&format!("dbflow={}", binary.display())),
        "the hook calls dbflow by absolute path:\n{hook}"
    );

    t.write(
        "scripts/cleanup.sh",
        "#!/bin/sh\nset -e\npsql \"$DATABASE_URL\" -c \"DROP TABLE users\"\n",
    );
    t.write(".gitignore", "existing-hook-ran\n");
    ok(&dir, &["add", "scripts/cleanup.sh", ".gitignore"]);
    let blocked = git(&dir, &["commit", "-m", "add cleanup script"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&blocked.stdout),
        String::from_utf8_lossy(&blocked.stderr)
    );
    assert!(
        !blocked.status.success(),
        "the commit went through:\n{said}"
    );
    assert_eq!(commits(&dir), 0);
    assert!(
        said.contains("error[drop-table]: `DROP TABLE` deletes a table and every row in it\n  --> scripts/cleanup.sh:3\n"),
        "{said}"
    );
    assert!(said.contains("the commit is blocked"), "{said}");
    assert!(t.exists("existing-hook-ran"), "the chained hook ran first");

    let bypass = git(&dir, &["commit", "--no-verify", "-m", "add cleanup script"]);
    assert!(bypass.status.success(), "{bypass:?}");
    assert_eq!(commits(&dir), 1);

    // Only the lines a commit changes count: the old DROP TABLE does not block an edit.
    t.write(
        "scripts/cleanup.sh",
        "#!/bin/sh\nset -e\necho cleaning\npsql \"$DATABASE_URL\" -c \"DROP TABLE users\"\n",
    );
    ok(&dir, &["add", "scripts/cleanup.sh"]);
    ok(&dir, &["commit", "-m", "say what it does"]);
    assert_eq!(commits(&dir), 2);

    // A new dangerous line in package.json blocks; an annotated one passes.
    t.write(
        "package.json",
        "{\n  \"scripts\": {\n    \"build\": \"prisma migrate dev && next build\"\n  }\n}\n",
    );
    ok(&dir, &["add", "package.json"]);
    let blocked = git(&dir, &["commit", "-m", "build"]);
    assert!(!blocked.status.success());
    // git shows a hook's output on stderr.
    assert!(
        String::from_utf8_lossy(&blocked.stderr).contains("error[migrate-dev-in-deploy]"),
        "{blocked:?}"
    );
    t.write(
        "package.json",
        "{\n  \"scripts\": {\n    \"build\": \"prisma migrate deploy && next build\"\n  }\n}\n",
    );
    t.write(
        "scripts/e2e-reset.sh",
        "# dbflow:allow migrate-reset reason: runs against the e2e database only\nnpx prisma migrate reset --force\n",
    );
    ok(&dir, &["add", "package.json", "scripts/e2e-reset.sh"]);
    ok(&dir, &["commit", "-m", "build with deploy"]);
    assert_eq!(commits(&dir), 3);

    // Installing again refreshes the hook and keeps the chain.
    let again = t.run_with(["hook", "install"]);
    again.assert_code(0);
    assert!(
        again.stdout.starts_with("✔ updated .git/hooks/pre-commit"),
        "{}",
        again.stdout
    );
    assert!(t.exists(".git/hooks/pre-commit.dbflow-chained"));
}

#[test]
fn scan_paths_and_exit_codes() {
    let t = Test::new()
        .file(
            "db/cleanup.sql",
            "-- DROP TABLE users would be bad\nSELECT 'TRUNCATE orders';\nDELETE FROM sessions;\n",
        )
        .file(
            ".github/workflows/deploy.yml",
            "jobs:\n  deploy:\n    steps:\n      - run: npx prisma migrate deploy\n",
        )
        .file(
            "README.md",
            "Never run `prisma migrate reset` on staging.\n",
        );
    let out = t.run_with(["scan", "."]);
    out.assert_code(1);
    assert!(
        out.stdout.starts_with("error[delete-without-where]: `DELETE FROM sessions` without WHERE deletes every row\n  --> db/cleanup.sql:3\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("✘ scanned 2 given files (1 other file skipped: not a script, SQL or CI config): 1 dangerous operation\n"),
        "{}",
        out.stdout
    );
    t.run_with(["scan", ".github"]).assert_code(0);
    let json = t.run_with(["scan", "db", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["findings"][0]["rule"], "delete-without-where");
    assert_eq!(doc["findings"][0]["line"], 3);
    t.run_with(["scan", "nope"]).assert_code(2);
}
